// `ladle trigger REPO REF` and `ladle rerun ID`: runs asked of `ladle serve`
// through its API (docs/server.md "HTTP API: runs").
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "runner/cli/cli_commands.h"
#include "runner/cli/cli_remote.h"

namespace ladle::runner {
namespace {

using json = nlohmann::json;

bool IsHex(const std::string& s) {
  return (s.size() == 40 || s.size() == 64) &&
         s.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos;
}

void PrintQueued(const GlobalFlags& g, const json& out, const std::string& what) {
  if (g.json) {
    std::printf("%s\n", out.dump(2).c_str());
    return;
  }
  const std::string id = out.value("run_id", json()).dump();
  std::printf("%s queued as run %s; follow it with: ladle logs %s -f\n", what.c_str(), id.c_str(),
              id.c_str());
}

}  // namespace

int CmdTrigger(const GlobalFlags& g, const ServerFlags& f, const std::string& repo,
               const std::string& ref, bool tag) {
  json body = {{"repo", repo}};
  const std::string heads = "refs/heads/", tags = "refs/tags/";
  if (tag) body["tag"] = ref;
  else if (ref.rfind(tags, 0) == 0) body["tag"] = ref.substr(tags.size());
  else if (ref.rfind(heads, 0) == 0) body["branch"] = ref.substr(heads.size());
  else if (IsHex(ref)) body["commit"] = ref;
  else body["branch"] = ref;
  Remote remote;
  Status s = remote.Open(g, f.server, f.token);
  json out;
  if (s.ok()) s = remote.Call("POST", "/api/v1/runs", &body, &out);
  if (!s.ok()) return Fail(s);
  PrintQueued(g, out, "a run of " + repo + " " + ref);
  return 0;
}

int CmdRerun(const GlobalFlags& g, const ServerFlags& f, int64_t run) {
  Remote remote;
  Status s = remote.Open(g, f.server, f.token);
  json out;
  json body = json::object();
  if (s.ok()) s = remote.Call("POST", "/api/v1/runs/" + std::to_string(run) + "/rerun", &body, &out);
  if (!s.ok()) return Fail(s);
  PrintQueued(g, out, "a re-run of run " + std::to_string(run));
  return 0;
}

}  // namespace ladle::runner
