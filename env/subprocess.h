// Subprocess: how ladle starts, watches and ends a process tree on the host.
//
// Shared by the local backend (one Subprocess per step) and by RunCommand
// (git and other helpers), so that every child of ladle is started the same
// way and reaped in one place (env/reaper.h). Boost.Process launches; waiting
// and signalling are ladle's own (docs/design.md "Processes: one reaper").
#ifndef LADLE_ENV_SUBPROCESS_H_
#define LADLE_ENV_SUBPROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/base/status.h"
#include "env/cgroup.h"
#include "env/engine.h"
#include "env/reaper.h"

namespace ladle::env {

// What to start.
// The variables of ladle's environment that a child started with
// LaunchSpec::base_environment_only still gets: where programs are, who and
// where it is, the locale and the time zone.
extern const char* const kBaseEnvironment[];

// A number not returned before in this process and not guessable from the
// previous one (marker and cgroup names). Thread-safe; no system call.
uint64_t UniqueLaunchNumber();

struct LaunchSpec {
  std::string exe;                // absolute path (see FindInPath)
  std::vector<std::string> args;  // argv[1..]; argv[0] is `exe`
  // Overlaid on ladle's own environment, in order (later ones win).
  std::vector<std::pair<std::string, std::string>> env;
  // True: of ladle's own environment only kBaseEnvironment is passed on, so
  // nothing else the process that runs ladle holds (a server's tokens and
  // secrets) reaches the child (docs/backends.md "Environment").
  bool base_environment_only = false;
  std::string cwd;  // empty: ladle's working directory
  // Where the host allows it (env/cgroup.h), the tree runs in its own cgroup
  // BASE/<cgroup_parent>/<cgroup_leaf>, joined between fork and exec. Empty:
  // no cgroup.
  std::string cgroup_parent;
  std::string cgroup_leaf;
  // Where a group comes from and goes back to (env/cgroup.h CgroupPool: a
  // run's steps, the helpers); null: made and removed for this tree alone.
  std::shared_ptr<CgroupPool> cgroup_pool;
  // True: the child gets SIGKILL when the thread that started it ends
  // (PR_SET_PDEATHSIG), so it dies with ladle (docs/server.md "Replicas").
  // REQUIRES: the starting thread outlives the child it waits for.
  bool die_with_ladle = false;
};

// One started process and everything it starts (its "tree").
//
// The process runs in its own process group, with signal mask and dispositions
// reset, stdin from /dev/null, stdout and stderr on two pipes that only this
// object reads, and no other descriptor of ladle. Its environment carries a
// marker variable, LADLE_TREE_<token>=1, unique on the host and inherited by
// descendants (nested ladles add their own), so that Kill also reaches
// processes that left the group (setsid, daemons) without clearing their
// environment. With LaunchSpec::cgroup_parent, and where the host has usable
// cgroups, the tree also runs in a cgroup of its own, which nothing in it can
// leave without privileges: that catches `setsid env -i` too. Nothing else is
// isolated.
//
// Thread-safety: Kill() from any thread, at any time; everything else from
// one thread. The destructor ends whatever is left of the tree (Close()).
class Subprocess {
 public:
  using Clock = std::chrono::steady_clock;

  // Grace period between TERM and KILL for what the main process leaves
  // behind (like a container ending), and the bounds on the waits after it.
  static constexpr std::chrono::milliseconds kLeftoverGrace{1000};
  static constexpr std::chrono::milliseconds kKillWait{2000};
  static constexpr std::chrono::milliseconds kDrainLimit{1000};
  static constexpr size_t kReadChunk = 64 * 1024;

  // Starts `spec`. Returns an error (and starts nothing) when the program
  // cannot be executed or cwd cannot be entered.
  static Status Start(const LaunchSpec& spec, std::unique_ptr<Subprocess>* out);

  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  // Feeds output to `sink` (may be null: discarded) in chunks of at most
  // kReadChunk, as it arrives, until: the main process has exited, the rest
  // of the tree has been ended (TERM, KILL after kLeftoverGrace) and both
  // pipes are drained (bounded by kDrainLimit in case a process outside the
  // tree holds them). Returns true then, or false when `deadline` passes
  // while the main process still runs; call again to continue.
  bool Pump(OutputSink* sink, Clock::time_point deadline = Clock::time_point::max());

  // Sends `signal` to the process group, to every process carrying the
  // marker, and to every member of the tree's cgroup (SIGKILL: the whole
  // cgroup at once). A no-op once the tree is known to have ended (its pgid
  // may then belong to someone else).
  void Kill(int signal);

  // Blocks until the main process has exited; returns its status.
  ExitStatus Wait() const { return child_->Wait(); }
  pid_t pid() const { return child_->pid(); }
  // Whether the tree runs in a cgroup of its own.
  bool in_cgroup() const { return cgroup_ != nullptr; }

  // Ends what is left of the tree with SIGKILL (waiting up to kKillWait for
  // it to go) and closes the pipes. Idempotent.
  void Close();

 private:
  enum class Phase { kRunning, kEnding, kKilling, kDraining, kDone };

  Subprocess(std::shared_ptr<ChildState> child, std::string marker, int out_fd, int err_fd,
             std::unique_ptr<StepCgroup> cgroup);
  void PollOnce(OutputSink* sink, int timeout_ms);
  void ReadChunk(int* fd, OutputStream stream, OutputSink* sink);
  void Advance();
  void AdvanceOnce();
  void BeginEnding();
  void BeginDraining(bool tree_gone);
  bool DueForCheck();
  int PollTimeoutMs(Clock::time_point deadline) const;
  bool TreeGone() const;
  bool WaitTreeGone(Clock::time_point deadline) const;
  void MarkTreeEnded();
  bool TreeEnded();
  void CloseFds();

  const std::shared_ptr<ChildState> child_;
  const pid_t pgid_;
  const std::string marker_;  // "LADLE_TREE_<token>=", an environ entry prefix
  const std::unique_ptr<StepCgroup> cgroup_;  // null: none
  int out_fd_;
  int err_fd_;
  Phase phase_ = Phase::kRunning;
  // The exit fd was readable at a poll: only then is the child asked whether
  // it exited (with a pidfd that asks the kernel, so not after every chunk
  // of output).
  bool exit_seen_ = false;
  Clock::time_point phase_deadline_;
  Clock::time_point next_check_;
  std::vector<char> buffer_;

  std::mutex kill_mu_;
  bool tree_ended_ = false;  // guarded by kill_mu_
};

// Resolves `name` like execvp: as a path when it contains '/', else through
// $PATH. NotFound "NAME not found in PATH" when there is no such executable.
Status FindInPath(const std::string& name, std::string* path);

struct CommandResult {
  int exit_code = -1;  // 128 + signal when killed by a signal
  std::string out;
  std::string err;
};

// Sends `signal` to every process (but this one) whose environment has an
// entry starting with `marker` ("NAME=", or "NAME=VALUE\0" for an exact
// entry); returns how many. Each is pinned with a pidfd before it is
// signalled, so a reused pid is not hit.
int SignalProcessesWith(const std::string& marker, int signal);

// The distinct environment entries (up to '=') of all processes but this one
// that start with `prefix`: "LADLE_RUN_" finds every run marker on the host.
std::vector<std::string> EnvironmentNamesWithPrefix(const std::string& prefix);

// Whether any process (but this one) has an entry starting with `marker`.
bool AnyProcessWith(const std::string& marker);

// The most RunCommand keeps of each of stdout and stderr.
constexpr size_t kMaxCommandOutput = 64u << 20;
// How long RunCommand lets a command run unless told otherwise.
constexpr std::chrono::milliseconds kCommandTimeout = std::chrono::minutes(10);

// Runs a helper program (git, ...) to completion: argv[0] through PATH, in
// `cwd` (empty: ladle's), with stdin from /dev/null, capturing stdout and
// stderr apart. A non-zero exit is not an error: check result->exit_code.
// Errors: NotFound when the program or cwd is missing; Unavailable when it
// ran longer than `timeout` (it is then sent TERM, KILL 1 s later); TooLarge
// when an output exceeded kMaxCommandOutput (result holds the first part).
// Like a step, processes it leaves behind are ended when it exits. `env` is
// set over ladle's environment (GIT_INDEX_FILE, ...).
// Thread-safe (each call is independent).
Status RunCommand(const std::vector<std::string>& argv, const std::string& cwd,
                  CommandResult* result,
                  std::chrono::milliseconds timeout = kCommandTimeout,
                  const std::vector<std::pair<std::string, std::string>>& env = {});

}  // namespace ladle::env

#endif  // LADLE_ENV_SUBPROCESS_H_
