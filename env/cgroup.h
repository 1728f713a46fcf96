// StepCgroup: a control group per local step, so that every process a step
// starts can be found and ended, whatever it does to its process group,
// session or environment (docs/backends.md "How kill works").
//
// Two kinds, chosen once per ladle process (DetectCgroups):
//  - cgroup v2 (a cgroup2 file system at /sys/fs/cgroup): SIGKILL through
//    `cgroup.kill`, which the kernel applies to every member and descendant;
//  - cgroup v1 with the `freezer` controller: freeze the group, SIGKILL every
//    pid in `cgroup.procs` (frozen processes can neither fork nor exit, so
//    the list is complete and no pid is reused), thaw.
// Where neither can be used (no such hierarchy, not writable: not root, no
// delegation), there is none, and the caller keeps to the process group and
// the marker. LADLE_CGROUPS=off forces that.
//
// Groups live below ladle's own cgroup, so a ladle run by a step nests its
// steps' groups inside that step's (ending the outer step ends them too):
// BASE/ladle-<data dir hash>-r<run>/<step>. The run's directory is how a
// restarted server finds what a dead run left (EndRunCgroups).
#ifndef LADLE_ENV_CGROUP_H_
#define LADLE_ENV_CGROUP_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/base/status.h"

namespace ladle::env {

enum class CgroupKind { kNone, kV1Freezer, kV2 };

struct CgroupSupport {
  CgroupKind kind = CgroupKind::kNone;
  std::string base;  // the directory groups are made in (ladle's own cgroup)
  std::string why;   // kNone: why not, for messages
};

// What this host offers, detected on first use (LADLE_CGROUPS=off: none).
// Thread-safe.
const CgroupSupport& DetectCgroups();

// Detection from explicit places, for tests: `unified` is where a cgroup2
// file system would be mounted, `freezer` a v1 freezer hierarchy,
// `self_cgroup` the text of /proc/self/cgroup.
CgroupSupport DetectCgroupsAt(const std::string& unified, const std::string& freezer,
                              const std::string& self_cgroup);

// "ladle-<16 hex digits of the data dir's hash>-r<run>": the run's group.
std::string RunCgroupName(const std::string& data_dir, int64_t run_id);
// "ladle-p<pid>": the group of this ladle's trees that belong to no run
// (helper commands, steps without a run).
std::string ProcessCgroupName();

// The step groups of one run that their steps have finished with, kept for
// the run's next steps: a group whose step ended with nothing left in it
// goes to the next step instead of being removed and made again (a cgroup's
// mkdir and rmdir were the dearest system calls of a short local step:
// docs/benchmarks.md "ladle run on the local backend"). A LocalEngine has
// one and lives for one run, and RunCommand one for the helpers; the last
// owner's destructor removes what it kept, and the parent group once it is
// empty. Thread-safe.
class CgroupPool {
 public:
  // More are removed as before: no run keeps more steps at once.
  static constexpr size_t kMaxKept = 64;

  CgroupPool() = default;
  ~CgroupPool();
  CgroupPool(const CgroupPool&) = delete;
  CgroupPool& operator=(const CgroupPool&) = delete;

  // A kept group below `parent_dir` that still exists, taken out of the
  // pool; "" when there is none.
  std::string Take(const std::string& parent_dir);
  // Keeps `dir`, an empty group below `parent_dir`. False when the pool is
  // full: the caller removes it.
  bool Keep(const std::string& dir, const std::string& parent_dir);

 private:
  std::mutex mu_;
  std::vector<std::pair<std::string, std::string>> kept_;  // (parent_dir, dir)
};

// One step's group. Thread-safety: Signal, KillAll, Empty from any thread;
// the destructor from one (it removes the directory when the group is
// empty, and leaves it for EndRunCgroups otherwise).
class StepCgroup {
 public:
  // Makes BASE/<parent>/<leaf>, or takes a group below BASE/<parent> that
  // `pool` kept (then named after the step that made it). Returns null (and
  // makes nothing) when the host has no usable cgroups or the directory
  // cannot be made. With a pool, the destructor gives an empty group back
  // to it rather than removing it.
  static std::unique_ptr<StepCgroup> Create(const CgroupSupport& support, const std::string& parent,
                                            const std::string& leaf,
                                            std::shared_ptr<CgroupPool> pool = nullptr);
  ~StepCgroup();
  StepCgroup(const StepCgroup&) = delete;
  StepCgroup& operator=(const StepCgroup&) = delete;

  // "BASE/<parent>/<leaf>/cgroup.procs": a child writes "0" there between
  // fork and exec to join (async-signal-safe: open, write, close).
  const char* procs_path() const { return procs_path_.c_str(); }
  // Whether `pid` is a member (the join worked).
  bool Contains(pid_t pid) const;

  // Sends `signal` to every member, descendants' groups included. SIGKILL is
  // the whole group at once (cgroup.kill, or freeze-kill-thaw).
  void Signal(int signal);
  // True when no process is left in the group or below it.
  bool Empty() const;

 private:
  StepCgroup(CgroupKind kind, std::string dir, std::string parent_dir,
             std::shared_ptr<CgroupPool> pool);
  const CgroupKind kind_;
  const std::string dir_;
  const std::string parent_dir_;
  const std::string procs_path_;
  const std::shared_ptr<CgroupPool> pool_;  // null: removed when done
};

// Ends every process in BASE/RunCgroupName(data_dir, run_id) and below
// (SIGKILL), waiting up to `wait` for them to go, and removes the groups.
// Returns how many processes were found; NotFound-free: no group is 0.
int EndRunCgroups(const CgroupSupport& support, const std::string& data_dir, int64_t run_id,
                  std::chrono::milliseconds wait);

// Removes the empty step groups (older than a minute: a new one is empty
// for the moment before its process joins) and run groups that ladles left
// below BASE, of any data dir: a ladle killed with -9 whose data dir is gone
// would leave them forever. Groups with processes are not touched.
void SweepEmptyCgroups(const CgroupSupport& support);

// The runs of `data_dir` that have a group on this host (finished or not).
std::vector<int64_t> RunsWithCgroups(const CgroupSupport& support, const std::string& data_dir);

}  // namespace ladle::env

#endif  // LADLE_ENV_CGROUP_H_
