// `ladle env from-step [FILE] STEP` (docs/spoons.md "From a pipeline step").
#include <stdlib.h>

#include <cerrno>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "runner/cli/cli_commands.h"
#include "runner/spoon/from_step.h"
#include "runner/spoon/spoon.h"

namespace ladle::runner {
namespace {

namespace fs = std::filesystem;

constexpr std::chrono::milliseconds kConnectTimeout{3000};

// Which settings the command line gave: they win over the step's.
std::set<std::string> FlagsGiven(const EnvFlags& f) {
  std::set<std::string> given;
  if (!f.image.empty()) given.insert("image");
  if (!f.cpus.empty()) given.insert("cpus");
  if (!f.memory.empty()) given.insert("memory");
  if (!f.dns.empty()) given.insert("dns");
  if (!f.volumes.empty()) given.insert("volumes");
  if (f.privileged) given.insert("privileged");
  if (!f.env.empty()) given.insert("env");
  return given;
}

// A folder removed with everything in it when the scope ends.
struct TempDir {
  std::string path;
  ~TempDir() {
    if (path.empty()) return;
    std::error_code ec;
    fs::remove_all(path, ec);  // best effort: a leftover in DATA/workspaces is pruned with the rest
  }
};

}  // namespace

int CmdEnvFromStep(const GlobalFlags& g, const EnvFlags& f) {
  if (f.words.size() < 2 || f.words.size() > 3) {
    std::fprintf(stderr, "ladle: usage: ladle env from-step [FILE] STEP [--name NAME] [--with-secrets]\n");
    return 2;
  }
  spoon::FromStepRequest request;
  if (f.words.size() == 3) request.pipeline_file = f.words[1];
  request.step = f.words.back();
  request.name = f.spoon_name;
  request.with_secrets = f.with_secrets;
  request.data_dir = g.data;
  request.flags_given = FlagsGiven(f);

  spoon::SpoonSettings base;
  Status s = LoadEnvSettings(f, &base);
  if (!s.ok()) return Fail(s);
  spoon::FromStepPlan plan;
  s = spoon::PlanFromStep(request, base, &plan);
  if (!s.ok()) return Fail(s);
  if (!f.network.empty()) plan.options.network = f.network;
  plan.options.keep = f.keep;

  std::unique_ptr<spoon::SpoonManager> m;
  s = spoon::SpoonManager::Open(plan.settings.docker_host, plan.settings.prefix, kConnectTimeout, &m);
  if (!s.ok()) return Fail(s);
  spoon::SpoonInfo info;
  bool found = false;
  s = m->Find(plan.name, &info, &found);
  if (!s.ok()) return Fail(s);
  if (found)
    return Fail(Status::Conflict("spoon " + plan.name + " exists already: enter it with `ladle env " +
                                 plan.name + "`, or give another --name (or ladle env destroy " +
                                 plan.name + ")"));

  // The workspace copy, made under the data dir and copied in on creation.
  std::error_code ec;
  fs::path parent = fs::path(g.data) / "workspaces";
  fs::create_directories(parent, ec);
  if (ec) return Fail(Status::IoError("create " + parent.string() + ": " + ec.message()));
  std::string templ = (parent / ("from-step-" + plan.name + "-XXXXXX")).string();
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data())) return Fail(Status::FromErrno("create a folder in " + parent.string(), errno));
  TempDir tmp{buf.data()};
  std::string workspace = tmp.path + "/workspace";
  s = spoon::PrepareStepWorkspace(request, &plan, workspace);
  if (!s.ok()) return Fail(s);
  for (const std::string& note : plan.notes)
    if (!g.quiet) std::fprintf(stderr, "ladle: %s\n", note.c_str());
  plan.settings.copy.insert(plan.settings.copy.begin(), spoon::CopySpec{workspace, "/workspace"});

  if (!g.quiet)
    plan.options.progress = [](const std::string& line) { std::fprintf(stderr, "ladle: %s\n", line.c_str()); };
  std::string id;
  s = m->Create(plan.name, plan.settings, plan.options, &id);
  if (!s.ok()) return Fail(s);
  s = m->Get(plan.name, &info);
  if (!s.ok()) return Fail(s);
  if (!g.quiet)
    std::fprintf(stderr, "ladle: spoon %s is step %s/%s; enter it again with: ladle env %s\n", plan.name.c_str(),
                 plan.stage.c_str(), plan.step.c_str(), plan.name.c_str());

  spoon::AttachOptions attach;
  attach.tmux = !f.no_tmux;
  attach.banner = spoon::StepBanner(plan);
  std::vector<std::shared_ptr<void>> forwards;
  s = ForwardSpoonPorts(f, plan.settings.docker_host, info, &forwards);
  if (!s.ok()) return Fail(s);
  int code = 0;
  s = m->Attach(info, attach, &code);
  if (!s.ok()) return Fail(s);
  return code;
}

}  // namespace ladle::runner
