// `ladle run` and `ladle validate`.
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "env/docker_engine.h"
#include "env/local_engine.h"
#include "runner/cli_commands.h"
#include "runner/executor.h"
#include "runner/pipeline.h"
#include "runner/run_store.h"
#include "runner/signals.h"
#include "runner/terminal_view.h"
#include "runner/workspace.h"

namespace fs = std::filesystem;

namespace ladle::runner {
namespace {

// Prints every diagnostic; returns false when one of them is an error.
bool Report(const std::vector<Diagnostic>& diagnostics) {
  bool ok = true;
  for (const Diagnostic& d : diagnostics) {
    std::fprintf(stderr, "%s\n", d.ToString().c_str());
    ok &= d.warning;
  }
  return ok;
}

Status ParseEnvFlags(const std::vector<std::string>& flags, Vars* vars) {
  for (const std::string& kv : flags) {
    auto eq = kv.find('=');
    if (eq == 0 || eq == std::string::npos)
      return Status::Invalid("--env '" + kv + "': expected KEY=VALUE");
    vars->emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  return Status::OK();
}

Status SelectSteps(const Pipeline& pipeline, const RunFlags& f, RunOptions* o) {
  for (const std::string& name : f.stages) {
    if (!pipeline.FindStage(name)) return Status::Invalid("--stage " + name + ": no such stage in " + pipeline.file);
    o->stages.push_back(name);
  }
  for (const std::string& name : f.steps) {
    StepRef ref;
    Status s = ResolveStep(pipeline, name, &ref);
    if (!s.ok()) return s.WithContext("--step");
    o->steps.push_back(ref);
  }
  if (!f.from.empty()) {
    StepRef ref;
    Status s = ResolveStep(pipeline, f.from, &ref);
    if (!s.ok()) return s.WithContext("--from");
    o->from = ref;
  }
  if (!o->steps.empty() && o->from) return Status::Invalid("--step and --from cannot be combined");
  return Status::OK();
}

// The first step without an image ("stage/step"), or "" when all have one.
std::string StepWithoutImage(const Pipeline& pipeline) {
  for (const Stage& stage : pipeline.stages)
    for (const Step& step : stage.steps)
      if (step.image.empty()) return stage.name + "/" + step.name;
  return "";
}

// A run is live while its owner (pid and start time) is: its containers stay.
bool RunIsLive(RunStore* store, int64_t id) {
  RunRecord run;
  if (!store->GetRun(id, &run).ok() || run.status != kRunning) return false;
  int64_t start = ProcessStartTime(run.owner_pid);
  return start != 0 && start == run.owner_start;
}

// Removes what crashed runs of this data dir left; kept containers stay.
void CleanupStaleContainers(env::DockerEngine* docker, RunStore* store,
                            std::vector<std::string>* notes) {
  std::vector<std::string> removed;
  Status s = docker->CleanupStale([store](int64_t id) { return RunIsLive(store, id); }, &removed);
  if (!removed.empty()) {
    std::string names;
    for (const std::string& n : removed) names += (names.empty() ? "" : ", ") + n;
    notes->push_back("removed " + std::to_string(removed.size()) +
                     " container(s) left by runs that ended: " + names);
  }
  if (!s.ok()) notes->push_back("warning: " + s.message());
}

// --backend docker|local, or by default docker when a daemon answers (a
// short ping) and every step has an image, local otherwise. The lines for
// the person (which backend and why, cleanup) go to *notes.
Status PickEngine(const std::string& wanted, const Pipeline& pipeline, const std::string& data_dir,
                  RunStore* store, std::unique_ptr<env::Engine>* engine,
                  std::vector<std::string>* notes) {
  auto use_local = [&](const std::string& why) {
    *engine = std::make_unique<env::LocalEngine>();
    notes->push_back("backend: local (" + why + ")");
    return Status::OK();
  };
  if (wanted == "local") return use_local("--backend local");
  if (!wanted.empty() && wanted != "docker")
    return Status::Invalid("--backend '" + wanted + "': expected docker or local");
  const bool asked = wanted == "docker";
  std::string imageless = StepWithoutImage(pipeline);
  if (!imageless.empty()) {
    if (!asked) return use_local("step " + imageless + " has no image");
    return Status::Invalid("--backend docker: step " + imageless +
                           " has no image (set image: on the step, its stage or the pipeline)");
  }
  env::DockerEngineOptions options;
  options.data_dir = data_dir;
  options.connect_timeout = asked ? std::chrono::seconds(5) : std::chrono::milliseconds(500);
  std::unique_ptr<env::DockerEngine> docker;
  Status s = env::DockerEngine::Open(options, &docker);
  if (!s.ok()) {
    if (asked) return s;
    if (s.code() == Code::kInvalid) return use_local(s.message());  // a DOCKER_HOST ladle cannot use
    return use_local("no docker daemon answered at " + env::DockerHostFromEnvironment());
  }
  notes->push_back("backend: docker (" + docker->Describe() + ")");
  CleanupStaleContainers(docker.get(), store, notes);
  *engine = std::move(docker);
  return Status::OK();
}

int ExitCodeFor(const RunRecord& run, const Executor& executor) {
  if (run.status == kCancelled) return 128 + (executor.cancel_signal() ? executor.cancel_signal() : SIGINT);
  if (run.status != kFailed) return 0;
  return executor.outside_failure().ok() ? 1 : 3;
}

}  // namespace

int CmdValidate(const GlobalFlags& g, const std::string& file) {
  Pipeline pipeline;
  std::vector<Diagnostic> diagnostics;
  bool ok = LoadPipeline(file, &pipeline, &diagnostics);
  Report(diagnostics);
  if (!ok) return 2;
  size_t steps = 0;
  for (const Stage& stage : pipeline.stages) steps += stage.steps.size();
  if (!g.quiet)
    std::printf("%s: ok, pipeline '%s': %zu stages, %zu steps\n", file.c_str(),
                pipeline.name.c_str(), pipeline.stages.size(), steps);
  return 0;
}

int CmdRun(const GlobalFlags& g, const RunFlags& f) {
  Executor* active = nullptr;
  std::mutex active_mu;
  int early_signal = 0;
  InstallSignalHandler([&](int sig) {
    std::lock_guard<std::mutex> lock(active_mu);
    if (active) active->Cancel(sig);
    else early_signal = sig;
  });

  Pipeline pipeline;
  std::vector<Diagnostic> diagnostics;
  bool ok = LoadPipeline(f.file, &pipeline, &diagnostics);
  if (!Report(diagnostics) && !ok) return 2;
  RunOptions options;
  Status s = SelectSteps(pipeline, f, &options);
  if (s.ok()) s = ParseEnvFlags(f.env, &options.extra_env);
  if (!s.ok()) return Fail(s);

  std::error_code ec;
  fs::create_directories(g.data, ec);
  if (ec) return Fail(Status::IoError("create data dir " + g.data + ": " + ec.message()));
  std::unique_ptr<RunStore> store;
  s = RunStore::Open(g.data, &store);
  if (!s.ok()) return Fail(s.WithContext("open the run store in " + g.data));
  std::vector<int64_t> interrupted;
  store->MarkInterrupted(&interrupted);

  SourceInfo source;
  s = DescribeSource(f.file, &source);
  if (!s.ok()) return Fail(s);
  options.data_dir = fs::absolute(g.data).lexically_normal().string();
  // One spelling per data dir: containers are found by it (label ladle.data).
  if (options.data_dir.size() > 1 && options.data_dir.back() == '/') options.data_dir.pop_back();
  std::unique_ptr<env::Engine> engine;
  std::vector<std::string> backend_notes;
  s = PickEngine(f.backend, pipeline, options.data_dir, store.get(), &engine, &backend_notes);
  if (!s.ok()) return Fail(s);

  options.jobs = f.jobs;
  options.keep = f.keep;
  options.commit = source.commit;
  options.branch = source.branch;
  options.repo = source.root;
  if (f.bind) {
    options.workspace = source.root;
  } else {
    options.prepare_workspace = [&](int64_t id, std::string* path) {
      *path = (fs::path(options.data_dir) / "workspaces" / std::to_string(id)).string();
      return CopyWorkingTree(source, *path, options.data_dir);
    };
  }

  auto view = MakeTerminalView(DetectViewOptions(g.quiet));
  for (int64_t id : interrupted)
    view->Note("run " + std::to_string(id) + " was left running by a ladle that is gone: marked interrupted");
  for (const std::string& note : backend_notes) view->Note(note);
  if (auto* docker = dynamic_cast<env::DockerEngine*>(engine.get()))
    docker->SetNoteCallback([v = view.get()](const std::string& line) { v->Note(line); });
  Executor executor(pipeline, store.get(), engine.get(), view.get());
  {
    std::lock_guard<std::mutex> lock(active_mu);
    active = &executor;
    if (early_signal) executor.Cancel(early_signal);
  }
  RunRecord run;
  s = executor.Run(options, &run);
  {
    std::lock_guard<std::mutex> lock(active_mu);
    active = nullptr;
  }
  SetSignalHandler(nullptr);
  if (!s.ok()) return Fail(s);
  return ExitCodeFor(run, executor);
}

}  // namespace ladle::runner
