#include "runner/exec/prune.h"

#include <filesystem>

#include <set>

#include "core/base/time_util.h"
#include "env/docker_engine.h"
#include "runner/exec/cache.h"

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
  // The workspaces `ladle repro` kept for a failed step (docs/running.md
  // "Reproduce a server's step") are named repro-RUN-XXXXXX after the
  // server's run, not a local one: they go by their age.
  std::error_code ec;
  const auto limit = fs::file_time_type::clock::now() - older_than;
  for (fs::directory_iterator it(fs::path(data_dir) / "workspaces", ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().filename().string().rfind("repro-", 0) != 0) continue;
    std::error_code tec;
    const auto when = fs::last_write_time(it->path(), tec);
    if (tec || when >= limit) continue;
    fs::remove_all(it->path(), tec);
    if (tec) return Status::IoError("prune: remove " + it->path().string() + ": " + tec.message());
  }
  // docs/pipeline.md "Caches": those not used for the same age.
  int caches = 0;
  return PruneCaches(data_dir, older_than, &caches);
}

}  // namespace ladle::runner
