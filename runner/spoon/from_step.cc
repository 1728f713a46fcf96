#include "runner/spoon/from_step.h"

#include <sys/stat.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <system_error>

#include "env/docker_engine.h"
#include "runner/exec/executor.h"
#include "runner/exec/workspace.h"
#include "runner/store/run_store.h"

namespace ladle::runner::spoon {
namespace {

namespace fs = std::filesystem;

const Stage* FindStageOf(const Pipeline& pipeline, const std::string& name) {
  for (const Stage& stage : pipeline.stages)
    if (stage.name == name) return &stage;
  return nullptr;
}

const Step* FindStepOf(const Stage& stage, const std::string& name) {
  for (const Step& step : stage.steps)
    if (step.name == name) return &step;
  return nullptr;
}

void SetEnv(SpoonSettings* s, const std::string& name, const std::string& value,
            const std::string& origin, const std::set<std::string>& flags_given) {
  // A variable the command line set (--env) keeps its value.
  if (flags_given.count("env") && s->origin.count("env." + name) &&
      s->origin["env." + name].rfind("--", 0) == 0)
    return;
  s->env[name] = value;
  s->origin["env." + name] = origin;
}

// The steps (stage, step) whose artifacts the step would find in its
// workspace under `ladle run`: every step of the stages before it and the
// ones it needs in its own stage (docs/running.md "Artifacts of steps that
// do not run").
std::set<std::pair<std::string, std::string>> StepsBefore(const Pipeline& pipeline,
                                                          const std::string& stage,
                                                          const std::string& step) {
  std::set<std::pair<std::string, std::string>> out = NeedsClosure(pipeline, stage, {step});
  for (const Stage& s : pipeline.stages) {
    if (s.name == stage) break;
    for (const Step& st : s.steps) out.insert({s.name, st.name});
  }
  out.erase({stage, step});
  return out;
}

}  // namespace

std::string SpoonNameForStep(const std::string& stage, const std::string& step) {
  std::string name = stage + "-" + step;
  for (char& c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-';
    if (!ok) c = '-';
  }
  while (!name.empty() && !std::isalnum(static_cast<unsigned char>(name[0]))) name.erase(0, 1);
  if (name.size() > 64) name.resize(64);
  if (name.empty()) name = "step";
  return name;
}

Status PlanFromStep(const FromStepRequest& request, const SpoonSettings& base, FromStepPlan* plan) {
  Pipeline pipeline;
  std::vector<Diagnostic> diagnostics;
  if (!LoadPipeline(request.pipeline_file, &pipeline, &diagnostics)) {
    std::string message = "invalid pipeline:";
    for (const Diagnostic& d : diagnostics)
      if (!d.warning) message += "\n  " + d.ToString();
    return Status::Invalid(message);
  }
  StepRef ref;
  Status s = ResolveStep(pipeline, request.step, &ref);
  if (!s.ok()) return s;
  const Stage* stage = FindStageOf(pipeline, ref.stage);
  const Step* step = stage ? FindStepOf(*stage, ref.step) : nullptr;
  if (!step)
    return Status::Invalid("step '" + request.step + "' names a matrix step's every combination: "
                           "give one (ladle run --list shows them)");

  FromStepPlan out;
  out.stage = stage->name;
  out.step = step->name;
  out.script = step->run;
  out.name = request.name.empty() ? SpoonNameForStep(stage->name, step->name) : request.name;
  std::string problem = SpoonNameProblem(out.name);
  if (!problem.empty()) return Status::Invalid("spoon name '" + out.name + "': " + problem + " (--name)");

  SpoonSettings& st = out.settings;
  st = base;
  const std::string where = request.pipeline_file + " step " + stage->name + "/" + step->name;
  auto take = [&](const char* field, const std::string& value, std::string* into) {
    if (value.empty() || request.flags_given.count(field)) return;
    *into = value;
    st.origin[field] = where;
  };
  take("image", step->image, &st.image);
  if (st.image.empty())
    return Status::Invalid("step " + stage->name + "/" + step->name +
                           " has no image (a spoon needs one: --image)");
  const env::Resources& r = step->resources;
  take("cpus", r.cpus, &st.cpus);
  take("memory", r.memory, &st.memory);
  if (!r.dns.empty() && !request.flags_given.count("dns")) {
    st.dns = r.dns;
    st.origin["dns"] = where;
  }
  if (!r.volumes.empty() && !request.flags_given.count("volumes")) {
    st.volumes = r.volumes;
    st.origin["volumes"] = where;
  }
  if (r.privileged && !request.flags_given.count("privileged")) {
    st.privileged = true;
    st.origin["privileged"] = where;
  }
  for (const Vars* layer : std::initializer_list<const Vars*>{&pipeline.env, &stage->env, &step->env})
    for (const auto& [name, value] : *layer) SetEnv(&st, name, value, where, request.flags_given);
  SetEnv(&st, "LADLE_STAGE", stage->name, where, request.flags_given);
  SetEnv(&st, "LADLE_STEP", step->name, where, request.flags_given);
  SetEnv(&st, "LADLE_WORKSPACE", env::kWorkspaceMount, where, request.flags_given);
  if (!stage->environment.empty())
    SetEnv(&st, "LADLE_ENVIRONMENT", stage->environment, where, request.flags_given);
  // docs/spoons.md "From a pipeline step": secrets stay out unless asked;
  // a spoon's variables show in `docker inspect` to whoever reaches the daemon.
  std::string left_out;
  for (const std::string& name : pipeline.secrets) {
    if (!request.with_secrets) {
      left_out += (left_out.empty() ? "" : ", ") + name;
      continue;
    }
    std::string value = SecretValue({}, name);
    if (value.empty()) out.notes.push_back("secret " + name + " is not set here; the spoon sees it empty");
    SetEnv(&st, name, value, "secret " + name + " (--with-secrets)", request.flags_given);
  }
  if (!left_out.empty())
    out.notes.push_back("secrets not passed: " + left_out + " (--with-secrets passes them)");

  out.options.workdir = env::kWorkspaceMount;
  out.options.network = r.network;
  out.options.labels[kFromStepLabel] = request.pipeline_file + " " + stage->name + "/" + step->name;
  *plan = std::move(out);
  return Status::OK();
}

Status PrepareStepWorkspace(const FromStepRequest& request, FromStepPlan* plan, const std::string& dir) {
  SourceInfo source;
  Status s = DescribeSource(request.pipeline_file, &source);
  if (!s.ok()) return s;
  std::error_code ec;
  std::string data = fs::absolute(request.data_dir, ec).lexically_normal().string();
  if (data.size() > 1 && data.back() == '/') data.pop_back();
  // A plain copy (no .git borrowing host paths, which the container cannot see).
  s = CopyWorkingTree(source, dir, data);
  if (!s.ok()) return s.WithContext("copy the working tree");

  Pipeline pipeline;
  std::vector<Diagnostic> diagnostics;
  if (!LoadPipeline(request.pipeline_file, &pipeline, &diagnostics))
    return Status::Invalid("invalid pipeline " + request.pipeline_file);
  // As `ladle run --step` finds them: the newest successful run of the same
  // project and pipeline path, per step.
  std::string pipeline_path =
      fs::absolute(request.pipeline_file).lexically_normal().lexically_relative(source.root).string();
  std::unique_ptr<RunStore> store;
  bool have_store = fs::exists(fs::path(data) / "ladle.db", ec);
  if (have_store) {
    s = RunStore::Open(data, &store);
    if (!s.ok()) return s.WithContext("open the run store in " + data);
  }
  for (const auto& [stage_name, step_name] : StepsBefore(pipeline, plan->stage, plan->step)) {
    const Stage* stage = FindStageOf(pipeline, stage_name);
    const Step* step = stage ? FindStepOf(*stage, step_name) : nullptr;
    if (!step || step->artifacts.empty()) continue;
    int64_t from_run = 0;
    if (store) {
      s = store->FindLastSuccessfulStepOf(source.root, pipeline_path, stage_name, step_name, 0, &from_run);
      if (!s.ok()) return s;
    }
    if (from_run == 0) {
      plan->notes.push_back("no run of this pipeline kept the artifacts of " + stage_name + "/" + step_name +
                            " (ladle run --step " + stage_name + "/" + step_name + " makes them)");
      continue;
    }
    s = RestoreArtifacts(ArtifactDir(data, from_run, stage_name, step_name), dir);
    if (!s.ok()) return s.WithContext("restore the artifacts of " + stage_name + "/" + step_name);
    plan->notes.push_back("restored the artifacts of " + stage_name + "/" + step_name + " from run " +
                          std::to_string(from_run));
  }

  std::string script = (fs::path(dir) / kStepScriptName).string();
  std::ofstream out(script, std::ios::binary | std::ios::trunc);
  out << "#!/bin/sh -e\n# " << plan->stage << "/" << plan->step << " of " << request.pipeline_file
      << " (ladle env from-step)\n"
      << plan->script << (plan->script.empty() || plan->script.back() == '\n' ? "" : "\n");
  out.close();
  if (!out) return Status::IoError("write " + script);
  ::chmod(script.c_str(), 0755);
  return Status::OK();
}

std::string StepBanner(const FromStepPlan& plan) {
  std::string out = "# step " + plan.stage + "/" + plan.step + ", saved as /workspace/" +
                    kStepScriptName + " (run it: sh -e " + kStepScriptName + ")\r\n";
  std::string line;
  for (char c : plan.script) {
    if (c == '\n') {
      out += "#   " + line + "\r\n";
      line.clear();
    } else {
      line += c;
    }
  }
  if (!line.empty()) out += "#   " + line + "\r\n";
  return out;
}

}  // namespace ladle::runner::spoon
