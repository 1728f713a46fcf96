#include "runner/exec/backend.h"

#include "env/docker_engine.h"
#include "env/local_engine.h"

namespace ladle::runner {
namespace {


// A run is live while its owner (pid and start time) is: its containers stay.
bool RunIsLive(RunStore* store, int64_t id) {
  RunRecord run;
  if (!store->GetRun(id, &run).ok() || run.status != kRunning) return false;
  int64_t start = ProcessStartTime(run.owner_pid);
  return start != 0 && start == run.owner_start;
}

}  // namespace

std::string StepWithoutImage(const Pipeline& pipeline) {
  for (const Stage& stage : pipeline.stages) {
    for (const Step& step : stage.steps)
      if (step.image.empty()) return stage.name + "/" + step.name;
    // A rollout's checks run in the pipeline's image (executor.cc, Plan).
    if (stage.rollout && pipeline.image.empty()) return stage.name + "/check";
  }
  return "";
}

Status PickEngine(const std::string& wanted, const Pipeline& pipeline, const std::string& data_dir,
                  RunStore* store, std::unique_ptr<env::Engine>* engine,
                  std::vector<std::string>* notes, const std::string& setting) {
  auto use_local = [&](const std::string& why) {
    *engine = std::make_unique<env::LocalEngine>();
    notes->push_back("backend: local (" + why + ")");
    return Status::OK();
  };
  if (wanted == "local") return use_local(setting + " local");
  if (!wanted.empty() && wanted != "docker")
    return Status::Invalid(setting + " '" + wanted + "': expected docker or local");
  const bool asked = wanted == "docker";
  std::string imageless = StepWithoutImage(pipeline);
  if (!imageless.empty()) {
    if (!asked) return use_local("step " + imageless + " has no image");
    return Status::Invalid(setting + " docker: step " + imageless +
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

}  // namespace ladle::runner
