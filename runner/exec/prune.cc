#include "runner/exec/prune.h"

#include <filesystem>

#include <set>

#include "core/base/time_util.h"
#include "env/docker_engine.h"

namespace fs = std::filesystem;

namespace ladle::runner {

Status PruneRuns(RunStore* store, const std::string& data_dir, std::chrono::seconds older_than,
                 env::DockerEngine* docker, std::vector<int64_t>* pruned) {
  const std::string cutoff = FormatRfc3339(std::chrono::system_clock::now() - older_than);
  Status s = store->DeleteFinishedBefore(cutoff, pruned);
  if (!s.ok()) return s;
  if (docker != nullptr && !pruned->empty()) {
    s = docker->RemoveRunContainers(std::set<int64_t>(pruned->begin(), pruned->end()));
    if (!s.ok()) return s.WithContext("prune");
  }
  // The rows go first: a crash in between leaves directories that no run
  // names, which the next prune does not see but which hurt no one.
  for (int64_t id : *pruned) {
    for (const char* dir : {"logs", "artifacts", "workspaces"}) {
      std::error_code ec;
      fs::remove_all(fs::path(data_dir) / dir / std::to_string(id), ec);
      if (ec)
        return Status::IoError("prune run " + std::to_string(id) + ": remove " +
                               (fs::path(data_dir) / dir / std::to_string(id)).string() + ": " +
                               ec.message());
    }
  }
  return Status::OK();
}

}  // namespace ladle::runner
