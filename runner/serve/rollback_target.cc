#include "runner/serve/rollback_target.h"

namespace ladle::runner {

Status ChooseRollbackTarget(const std::vector<DeploymentRecord>& history,
                            const std::string& environment, int64_t to_run,
                            DeploymentRecord* target) {
  const DeploymentRecord* current = nullptr;
  const DeploymentRecord* found = nullptr;
  for (const DeploymentRecord& d : history) {
    if (d.status != kSuccess) continue;
    if (to_run != 0) {
      if (d.run_id == to_run) {
        found = &d;
        break;
      }
      continue;
    }
    if (current == nullptr) {
      current = &d;
    } else if (d.commit != current->commit) {
      found = &d;
      break;
    }
  }
  if (found != nullptr) {
    *target = *found;
    return Status::OK();
  }
  if (to_run != 0)
    return Status::NotFound("run " + std::to_string(to_run) +
                            " has no successful deployment to " + environment);
  return Status::NotFound(current == nullptr
                              ? "nothing was deployed to " + environment + " yet"
                              : "no earlier successful deployment to " + environment +
                                    " than commit " + current->commit.substr(0, 12) + " (run " +
                                    std::to_string(current->run_id) + ") to roll back to");
}

}  // namespace ladle::runner
