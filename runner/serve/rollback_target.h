// Which deployment a rollback redeploys (docs/server.md "Rollback"): a pure
// choice over an environment's deployment history, apart from the server so
// that it is tested on its own.
#ifndef LADLE_RUNNER_SERVE_ROLLBACK_TARGET_H_
#define LADLE_RUNNER_SERVE_ROLLBACK_TARGET_H_

#include <cstdint>
#include <string>
#include <vector>

#include "core/base/status.h"
#include "runner/store/run_store.h"

namespace ladle::runner {

// `history`: the environment's deployments, newest first (as
// RunStore::ListDeployments gives them). to_run 0: the deployment before the
// current one, as GitLab picks it: the newest successful deployment of
// another commit than the newest successful one, a rollback's included
// (after A, B, rollback to A, C: A; after A, B, rollback to A: B again).
// to_run > 0: the newest successful deployment made by that run.
// NotFound, with a message for people, when there is none.
Status ChooseRollbackTarget(const std::vector<DeploymentRecord>& history,
                            const std::string& environment, int64_t to_run,
                            DeploymentRecord* target);

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_SERVE_ROLLBACK_TARGET_H_
