#include "runner/exec/backend.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include "env/docker_engine.h"
#include "env/local_engine.h"
#include "runner/exec/executor.h"

namespace ladle::runner {
namespace {


// A run is live while its owner (pid and start time) is: its containers stay.
bool RunIsLive(RunStore* store, int64_t id) {
  RunRecord run;
  if (!store->GetRun(id, &run).ok() || run.status != kRunning) return false;
  int64_t start = ProcessStartTime(run.owner_pid);
  return start != 0 && start == run.owner_start;
}

// How long a dead run's processes get to go after SIGKILL.
constexpr std::chrono::seconds kLeftoverWait{5};

}  // namespace

void EndProcessesOfDeadRuns(RunStore* store, const std::string& data_dir,
                            std::vector<std::string>* notes) {
  for (int64_t id : env::LocalRunsWithProcesses(data_dir)) {
    if (RunIsLive(store, id)) continue;
    RunRecord run;
    std::string environment;
    if (store->GetRun(id, &run).ok() && run.deployment) environment = run.deployment->environment;
    // Held while they end when nobody holds it (a live run deploying there
    // keeps it: the dead run's processes are ended anyway).
    std::unique_ptr<StoreLock> lock;
    if (!environment.empty()) store->TryLock("environment/" + environment, &lock).IgnoreError();
    const int n = env::EndLocalRunProcesses(data_dir, id, kLeftoverWait);
    lock.reset();
    if (n > 0)
      notes->push_back("run " + std::to_string(id) + ": ended " + std::to_string(n) +
                       " process(es) its steps left running" +
                       (environment.empty() ? "" : " (deploying to " + environment + ")"));
  }
}

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
                  std::vector<std::string>* notes, const std::string& setting,
                  const std::string& docker_host) {
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
  // docs/backends.md "Docker backend": steps that name images never run on
  // the host unless --backend local says so; a daemon that does not answer
  // is the run's error (memory, network: none would silently not apply).
  env::DockerEngineOptions options;
  options.data_dir = data_dir;
  options.docker_host = docker_host;
  options.connect_timeout = std::chrono::seconds(5);
  std::unique_ptr<env::DockerEngine> docker;
  Status s = env::DockerEngine::Open(options, &docker);
  if (!s.ok()) {
    if (asked) return s;
    return s.WithContext("the steps name images, so they run in containers (" + setting +
                         " local runs them on the host instead)");
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
