// Retention: `ladle prune --older-than 30d`, and `ladle serve`'s `retention`.
#ifndef LADLE_RUNNER_EXEC_PRUNE_H_
#define LADLE_RUNNER_EXEC_PRUNE_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "core/base/status.h"
#include "runner/store/run_store.h"

namespace ladle::env {
class DockerEngine;
}

namespace ladle::runner {

// Deletes the runs that finished more than `older_than` ago (queued, running
// and waiting runs stay, whatever their age) with their logs, artifacts and
// workspaces under `data_dir`, and, when `docker` is given, their
// containers, kept ones too. Their ids in *pruned. Deployment records stay.
Status PruneRuns(RunStore* store, const std::string& data_dir, std::chrono::seconds older_than,
                 env::DockerEngine* docker, std::vector<int64_t>* pruned);

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_EXEC_PRUNE_H_
