// The CLI's client of the server's HTTP API: `ladle toggles ...`,
// `ladle approve`, `ladle rollback`, `ladle cancel` of a server's run.
#include "runner/cli/cli_remote.h"

#include <cstdlib>

#include "toggles/server/tokens.h"

namespace ladle::runner {
namespace {

using json = nlohmann::json;

Status ResolveToken(const GlobalFlags& g, const std::string& token, Token* out) {
  if (!token.empty()) {
    *out = {token, "--token"};
    return Status::OK();
  }
  if (const char* env = std::getenv("LADLE_TOKEN"); env && *env) {
    *out = {env, "LADLE_TOKEN"};
    return Status::OK();
  }
  const std::string path = toggles::AdminTokenPath(g.data);
  const std::string secret = toggles::ReadAdminTokenFile(g.data);
  if (secret.empty()) {
    return Status::Invalid("no API token: pass --token, set LADLE_TOKEN, or start the server on this "
                           "data dir (`ladle toggles serve` or `ladle serve`), which writes " + path);
  }
  *out = {secret, path};
  return Status::OK();
}

}  // namespace

Status Remote::Open(const GlobalFlags& g, const std::string& server, const std::string& token) {
  std::string url = server;
  if (url.empty()) {
    const char* env = std::getenv("LADLE_SERVER");
    url = env && *env ? env : std::string(toggles::kDefaultServerUrl);
  }
  toggles::ServerUrl parsed;
  Status s = toggles::ParseServerUrl(url, &parsed);
  if (s.ok()) s = ResolveToken(g, token, &token_);
  if (s.ok()) http_ = std::make_unique<toggles::HttpClient>(parsed, toggles::HttpClient::Options{token_.secret});
  return s;
}

Status Remote::Call(const std::string& method, const std::string& target, const json* body, json* out,
            toggles::ClientResponse* raw, const toggles::HttpHeaders& extra) {
  toggles::ClientResponse r;
  Status s = http_->Json(method, target, body, out, &r, extra);
  if (r.failure == toggles::HttpFailure::kConnect)
    s = Status::Unavailable("no ladle server at " + http_->url().ToString() +
                            " (start one with `ladle toggles serve` or `ladle serve`, or set "
                            "--server/LADLE_SERVER)");
  else if (s.code() == Code::kUnauthorized)
    s = Status::Unauthorized(s.message() + "; the token came from " + token_.source);
  if (raw != nullptr) *raw = std::move(r);
  return s;
}

}  // namespace ladle::runner
