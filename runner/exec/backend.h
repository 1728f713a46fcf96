// Which backend runs a pipeline: `ladle run` and `ladle serve` decide alike.
#ifndef LADLE_RUNNER_EXEC_BACKEND_H_
#define LADLE_RUNNER_EXEC_BACKEND_H_

#include <memory>
#include <string>
#include <vector>

#include "core/base/status.h"
#include "env/engine.h"
#include "runner/config/pipeline.h"
#include "runner/store/run_store.h"

namespace ladle::env {
class DockerEngine;
}

namespace ladle::runner {

// `wanted` is docker, local, or "" for docker when every step has an image
// and local otherwise; never local for a pipeline whose steps all name
// images unless asked (docs/backends.md "Docker backend"): a daemon that does
// not answer is then the daemon's error (Unavailable). Opening docker also
// removes the containers that ended runs of this data dir left (kept ones
// stay). The lines for the person (which backend and why, cleanup) go to
// *notes. Invalid for an unknown `wanted` or docker asked for a step
// without an image; the daemon's error when docker was asked for. `setting`
// names where `wanted` came from in messages ("--backend", "backend:").
Status PickEngine(const std::string& wanted, const Pipeline& pipeline, const std::string& data_dir,
                  RunStore* store, std::unique_ptr<env::Engine>* engine,
                  std::vector<std::string>* notes, const std::string& setting = "--backend",
                  const std::string& docker_host = "");  // "" = $DOCKER_HOST (docs/spoons.md "A shared host over ssh")

// The first step without an image ("stage/step"), or "" when all have one.
std::string StepWithoutImage(const Pipeline& pipeline);

// Removes the containers that runs of this data dir left when they ended
// (their owner gone); kept containers stay. What it did goes to *notes.
void CleanupStaleContainers(env::DockerEngine* docker, RunStore* store,
                            std::vector<std::string>* notes);

// Ends the processes that local steps of dead runs of this data dir left
// (a ladle killed with -9): found through the runs' cgroups and markers
// (env/local_engine.h), for every run whose owner is gone. While a dead run's
// processes are ended, the deployment lock of its environment is held, so
// that no new deploy there starts beside them (docs/backends.md "After a
// crash"). What it did goes to *notes. Call it before any run of this
// process starts.
void EndProcessesOfDeadRuns(RunStore* store, const std::string& data_dir,
                            std::vector<std::string>* notes);

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_EXEC_BACKEND_H_
