// `ladle run` and `ladle validate`.
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "env/docker_engine.h"
#include "runner/exec/backend.h"
#include "runner/cli/cancel_target.h"
#include "runner/cli/cli_commands.h"
#include "runner/exec/executor.h"
#include "runner/config/pipeline.h"
#include "runner/config/yaml_check.h"  // DidYouMean
#include "runner/store/run_store.h"
#include "runner/cli/signals.h"
#include "runner/cli/terminal_view.h"
#include "runner/exec/toggle_ops.h"
#include "runner/exec/workspace.h"

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

// docs/running.md "Find your way": what `ladle run --list` prints, one row
// per step.
std::string ListPipeline(const Pipeline& pipeline) {
  std::vector<std::vector<std::string>> rows;
  auto dash = [](const std::string& s) { return s.empty() ? std::string("-") : s; };
  for (const Stage& stage : pipeline.stages)
    for (const Step& step : stage.steps) {
      std::string needs;
      for (const std::string& n : step.needs) needs += (needs.empty() ? "" : ",") + n;
      rows.push_back({stage.name, step.DisplayName(), dash(needs), dash(step.image), dash(stage.environment)});
    }
  return FormatTable({"STAGE", "STEP", "NEEDS", "IMAGE", "ENVIRONMENT"}, rows);
}

nlohmann::json ListPipelineJson(const Pipeline& pipeline) {
  nlohmann::json stages = nlohmann::json::array();
  for (const Stage& stage : pipeline.stages) {
    nlohmann::json steps = nlohmann::json::array();
    for (const Step& step : stage.steps) {
      nlohmann::json j = {{"name", step.name}, {"needs", step.needs}, {"image", step.image}};
      if (!step.matrix_of.empty()) {  // docs/design.md "JSON shapes"
        nlohmann::json values = nlohmann::json::object();
        for (const auto& [k, v] : step.matrix_values) values[k] = v;
        j["display"] = step.DisplayName();
        j["matrix"] = {{"of", step.matrix_of}, {"values", values}};
      }
      steps.push_back(j);
    }
    stages.push_back({{"name", stage.name},
                      {"environment", stage.environment.empty() ? nlohmann::json(nullptr)
                                                                : nlohmann::json(stage.environment)},
                      {"steps", steps}});
  }
  return {{"pipeline", pipeline.name}, {"file", pipeline.file}, {"stages", stages}};
}

// An unknown --stage, --step or --from: the closest name, and the list.
Status UnknownName(const Pipeline& pipeline, const std::string& flag, const std::string& name,
                   const std::string& what, bool steps) {
  std::vector<std::string> names;
  for (const Stage& stage : pipeline.stages) {
    if (!steps) names.push_back(stage.name);
    else
      for (const Step& step : stage.steps) {
        names.push_back(step.name);
        names.push_back(stage.name + "/" + step.name);
      }
  }
  std::vector<std::string_view> candidates(names.begin(), names.end());
  std::string list = ListPipeline(pipeline);
  if (!list.empty() && list.back() == '\n') list.pop_back();
  return Status::Invalid(flag + " " + name + ": no such " + what + " in " + pipeline.file +
                         DidYouMean(name, candidates) + "\n" + list);
}

Status SelectSteps(const Pipeline& pipeline, const RunFlags& f, RunOptions* o) {
  for (const std::string& name : f.stages) {
    if (!pipeline.FindStage(name)) return UnknownName(pipeline, "--stage", name, "stage", false);
    o->stages.push_back(name);
  }
  // ResolveStep says "no step" for an unknown name, "ambiguous" for a
  // name several stages use: only the first gets the suggestions.
  auto resolve = [&](const std::string& flag, const std::string& name, StepRef* ref) {
    Status s = ResolveStep(pipeline, name, ref);
    if (s.ok() || s.message().rfind("no step", 0) != 0) return s.ok() ? s : s.WithContext(flag);
    return UnknownName(pipeline, flag, name, "step", true);
  };
  // docs/running.md "Matrix steps": --step test selects every combination.
  for (const std::string& name : f.steps) {
    std::vector<StepRef> refs;
    Status s = ResolveSteps(pipeline, name, &refs);
    if (!s.ok() && s.message().rfind("no step", 0) == 0)
      return UnknownName(pipeline, "--step", name, "step", true);
    if (!s.ok()) return s.WithContext("--step");
    o->steps.insert(o->steps.end(), refs.begin(), refs.end());
  }
  if (!f.from.empty()) {
    StepRef ref;
    Status s = resolve("--from", f.from, &ref);
    if (!s.ok()) return s;
    o->from = ref;
  }
  if (!o->steps.empty() && o->from) return Status::Invalid("--step and --from cannot be combined");
  if (f.needs && o->steps.empty() && !o->from)
    return Status::Invalid("--needs goes with --step or --from");
  o->needs = f.needs;
  return Status::OK();
}

bool UsesToggles(const Pipeline& pipeline) {
  for (const Stage& stage : pipeline.stages)
    if (!stage.toggles_file.empty() || stage.rollout) return true;
  return false;
}

// docs/design.md "Toggles in a run": toggles sync under `ladle run` goes to
// $LADLE_SERVER when set, else straight to the data dir's store; the note
// says which.
Status OpenToggles(const std::string& data_dir, std::unique_ptr<ToggleOps>* ops,
                   std::string* note) {
  const char* server = std::getenv("LADLE_SERVER");
  if (server != nullptr && *server != '\0') {
    std::string token;
    Status s = FindToggleToken(data_dir, &token);
    if (s.ok()) s = HttpToggleOps(server, token, ops);
    if (!s.ok()) return s.WithContext("toggles at LADLE_SERVER=" + std::string(server));
  } else {
    Status s = OpenStoreToggleOps(data_dir, ops);
    if (!s.ok()) return s;
  }
  *note = "toggles: " + (*ops)->Describe() +
          (server != nullptr && *server != '\0' ? " (LADLE_SERVER)" : " (set LADLE_SERVER to use a server)");
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

namespace {

}  // namespace

int CmdRun(const GlobalFlags& g, const RunFlags& f) {
  // The handler owns what it uses, and the scope removes it on every return
  // path before anything it could reach (the executor) is destroyed.
  auto target = std::make_shared<CancelTarget>();
  SignalHandlerScope signals([target](int sig) { target->Signal(sig); });

  Pipeline pipeline;
  std::vector<Diagnostic> diagnostics;
  bool ok = LoadPipeline(f.file, &pipeline, &diagnostics);
  if (!Report(diagnostics) && !ok) return 2;
  if (f.list) {  // docs/running.md "Find your way": nothing runs
    if (g.json) std::printf("%s\n", ListPipelineJson(pipeline).dump(2).c_str());
    else std::printf("%s", ListPipeline(pipeline).c_str());
    return 0;
  }
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
  s = store->MarkInterrupted(&interrupted);
  if (!s.ok())
    std::fprintf(stderr, "ladle: warning: could not mark the runs of a stopped ladle as interrupted: %s\n",
                 s.message().c_str());

  SourceInfo source;
  s = DescribeSource(f.file, &source);
  if (!s.ok()) return Fail(s);
  options.data_dir = fs::absolute(g.data).lexically_normal().string();
  // One spelling per data dir: containers are found by it (label ladle.data).
  if (options.data_dir.size() > 1 && options.data_dir.back() == '/') options.data_dir.pop_back();
  std::unique_ptr<env::Engine> engine;
  std::vector<std::string> backend_notes;
  // What the steps of dead runs left running (a ladle killed with -9).
  EndProcessesOfDeadRuns(store.get(), options.data_dir, &backend_notes);
  s = PickEngine(f.backend, pipeline, options.data_dir, store.get(), &engine, &backend_notes,
                 "--backend", f.host);
  if (!s.ok()) return Fail(s);

  std::unique_ptr<ToggleOps> toggle_ops;
  if (UsesToggles(pipeline)) {
    std::string note;
    s = OpenToggles(options.data_dir, &toggle_ops, &note);
    if (!s.ok()) return Fail(s);
    backend_notes.push_back(note);
    options.toggles = toggle_ops.get();
  }
  options.jobs = f.jobs;
  options.keep = f.keep;
  options.commit = source.commit;
  options.branch = source.branch;
  options.repo = source.root;
  // docs/running.md "Same inputs as CI": the project is the working tree's
  // root, the pipeline's path is relative to it.
  options.project = source.root;
  options.pipeline_path = fs::absolute(f.file).lexically_normal().lexically_relative(source.root).string();
  if (f.bind) {
    options.workspace = source.root;
    if (source.is_git) {
      options.prepare_workspace = [&](int64_t, std::string* path, TreeState* tree) {
        *path = source.root;
        return ReadTreeState(source, (fs::path(options.data_dir) / "bind-index.tmp").string(),
                             options.data_dir, tree);
      };
    }
  } else {
    options.prepare_workspace = [&](int64_t id, std::string* path, TreeState* tree) {
      *path = (fs::path(options.data_dir) / "workspaces" / std::to_string(id)).string();
      return CheckoutWorkingTree(source, *path, options.data_dir, tree);
    };
  }

  auto view = MakeTerminalView(DetectViewOptions(g.quiet));
  for (int64_t id : interrupted)
    view->Note("run " + std::to_string(id) + " was left running by a ladle that is gone: marked interrupted");
  for (const std::string& note : backend_notes) view->Note(note);
  if (auto* docker = dynamic_cast<env::DockerEngine*>(engine.get()))
    docker->SetNoteCallback([v = view.get()](const std::string& line) { v->Note(line); });
  Executor executor(pipeline, store.get(), engine.get(), view.get());
  target->Attach(&executor);
  RunRecord run;
  s = executor.Run(options, &run);
  target->Attach(nullptr);
  if (!s.ok()) return Fail(s);
  return ExitCodeFor(run, executor);
}

}  // namespace ladle::runner
