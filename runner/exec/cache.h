// Step caches (docs/pipeline.md "Caches"): files kept between the runs of
// one repository on one data dir, under DATA/caches/SCOPE/HASH.tar.
//
// A cache is one tar archive (libarchive), written to a temporary file in
// the same directory, fsynced, then renamed over the old one, so a crash at
// any point leaves either the old cache or the new one, never a half one;
// restore opens only the final name. Restoring touches the archive, so its
// modification time is when it was last used; `ladle prune` and `retention`
// remove caches unused for longer than their age (PruneCaches).
//
// Works on the host side of the workspace, so local and docker steps are
// the same. Thread-safe: no shared state; two steps saving the same key at
// once each write their own temporary file and the last rename wins.
#ifndef LADLE_RUNNER_EXEC_CACHE_H_
#define LADLE_RUNNER_EXEC_CACHE_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "core/base/status.h"
#include "runner/config/pipeline.h"

namespace ladle::runner {

// DATA/caches/SCOPE: SCOPE is the project (or repository) made safe for a
// file name, with a short hash of it so that two names never share one.
std::string CacheDir(const std::string& data_dir, const std::string& scope);

// The key of `cache`: key with each ${NAME} replaced by its value in `vars`
// (later entries win; unknown names become ""), or, with key.files,
// PREFIX-HASH where HASH is a SHA-256 of the named files' paths and contents
// ("default" for PREFIX when none is given). A missing key file counts as
// empty, so a lock file not yet written still gives a key. IoError when a key
// file cannot be read, Invalid when it leaves the workspace.
Status CacheKey(const Cache& cache, const std::string& workspace, const Vars& vars,
                std::string* key);

// The archive of `key` in `dir`.
std::string CacheFile(const std::string& dir, const std::string& key);

struct CacheStats {
  int64_t files = 0;
  int64_t bytes = 0;
};

// Test hooks for SaveCache: called after each entry written to the
// temporary file (a test may _exit there to play a crash).
struct CacheHooks {
  std::function<void(int64_t entries)> after_entry;
};

// Extracts the archive of `key` into `workspace` (files of the same name are
// replaced). *found false, and nothing changed, when there is none. Entries
// that would leave the workspace (absolute, "..", through a symbolic link)
// are refused (Invalid) and the restore stops there.
Status RestoreCache(const std::string& dir, const std::string& key, const std::string& workspace,
                    bool* found, CacheStats* stats);

// Archives cache.paths (files, directories with what they hold, symbolic
// links as links; paths that do not exist are skipped) of `workspace` as the
// cache of `key`. *saved false, and the old cache kept, when the files add up
// to more than cache.max_size (*stats says how much they were), or when none
// of the paths exists.
Status SaveCache(const Cache& cache, const std::string& dir, const std::string& key,
                 const std::string& workspace, bool* saved, CacheStats* stats,
                 const CacheHooks& hooks = {});

// Removes the caches of every scope under DATA/caches not used (restored or
// saved) for `older_than`, and temporary files a crash left, older than an
// hour. Their number in *removed.
Status PruneCaches(const std::string& data_dir, std::chrono::seconds older_than, int* removed);

// What the executor does around a step with `cache:` (policy permitting):
// restore before its first attempt, save after it succeeded. Each returns the
// line for the step's log ("cache: restored KEY (120 files, 3.4 MB)", "cache:
// KEY not saved: 1.2 GB is over max_size 1.0 GB"); a cache that fails never
// fails the step. `scope` is the project or repository (CacheDir).
std::string RestoreStepCache(const Cache& cache, const std::string& data_dir,
                             const std::string& scope, const std::string& workspace,
                             const Vars& vars);
std::string SaveStepCache(const Cache& cache, const std::string& data_dir,
                          const std::string& scope, const std::string& workspace,
                          const Vars& vars);

// "12.3 MB", "840.2 kB", "17 B".
std::string FormatBytes(int64_t bytes);

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_EXEC_CACHE_H_
