// Reaper: the one place in ladle that waits for child processes.
//
// waitpid(-1) and per-child waits cannot coexist: whoever calls the former
// steals the statuses the latter wait for (and Boost.Process's waits install a
// process-wide SIGCHLD handler, boostorg/process issues 306 and 347). So ladle
// has exactly one reaper, a thread that collects every child that exits and
// hands each status to whoever registered the pid. It also makes ladle a child
// subreaper, so that processes a step orphans (a double fork, `sleep &`) are
// reparented to ladle and reaped here instead of becoming zombies of init.
//
// Where the kernel has pidfds that waitid() accepts (Linux 5.4), a registered
// child is reaped by its owner instead, through its pidfd, the moment the
// owner sees it exit: the Reaper thread leaves it alone and waits for that.
// Handing every exit through the Reaper's thread cost a short local step two
// thread wake-ups in a row on the path to the next step (docs/benchmarks.md
// "ladle run on the local backend"). Reaping happens only under the Reaper's
// lock, so a pid is never reused while the Reaper decides what it is.
//
// Contract for the rest of ladle: never call wait(), waitpid(), system(),
// popen()/pclose() or Boost.Process wait functions, and never set SIGCHLD to
// SIG_IGN. Create children only inside a Reaper::Launch (Subprocess does).
#ifndef LADLE_ENV_REAPER_H_
#define LADLE_ENV_REAPER_H_

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "env/engine.h"

namespace ladle::env {

class Reaper;

// The exit of one registered child. Shared by the Reaper and whoever
// registered the child (its owner). Thread-safe.
class ChildState {
 public:
  // Takes ownership of exit_fd: the child's pidfd when `owner_reaps` (the
  // owner reaps the child through it, see Exited), else an eventfd the
  // Reaper signals once it has reaped the child.
  ChildState(pid_t pid, int exit_fd, bool owner_reaps, Reaper* reaper);
  ~ChildState();
  ChildState(const ChildState&) = delete;
  ChildState& operator=(const ChildState&) = delete;

  pid_t pid() const { return pid_; }
  bool owner_reaps() const { return owner_reaps_; }
  // True once the child has exited and been reaped (its pid may be reused
  // from then on: do not signal it). With owner_reaps, this is what reaps
  // it once it has exited: call it when exit_fd() turns readable.
  bool Exited() const;
  // Blocks until the child has exited; returns its status.
  ExitStatus Wait() const;
  // Like Wait, but gives up after `timeout`; returns whether it exited.
  bool WaitFor(std::chrono::milliseconds timeout, ExitStatus* status) const;
  // Readable (POLLIN) once the child has exited, for poll loops. Owned by
  // this object; never read from or close it.
  int exit_fd() const { return exit_fd_; }
  // The owner stops waiting for a child that has not exited (one in
  // uninterruptible sleep that ignored SIGKILL for seconds): the Reaper
  // reaps it when it exits. Without this the Reaper would wait for the owner
  // forever. A no-op once exited or without owner_reaps.
  void Abandon();

 private:
  friend class Reaper;
  void Deliver(const ExitStatus& status) const;

  const pid_t pid_;
  const int exit_fd_;
  const bool owner_reaps_;
  Reaper* const reaper_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  mutable bool exited_ = false;
  mutable ExitStatus status_;
  bool abandoned_ = false;  // guarded by the Reaper's mu_
};

// Process-wide singleton, started on first use (call Reaper::Get() early in
// main() so that orphans are reparented to ladle from the start). Never
// destroyed: its thread blocks in waitid() until the process exits.
class Reaper {
 public:
  static Reaper& Get();

  // Brackets the creation of one child: construct it before fork, Register
  // the pid after. A child that exits before it is registered is not lost:
  // while any Launch is open the Reaper leaves an unknown zombie alone
  // (which also keeps its pid from being reused). Only exits of pids that no
  // open Launch can claim are discarded (orphans reparented to ladle).
  // Not copyable; use from one thread.
  class Launch {
   public:
    Launch();
    ~Launch();
    Launch(const Launch&) = delete;
    Launch& operator=(const Launch&) = delete;

    // REQUIRES: `pid` is a child of this process, created in this Launch;
    // at most one call. Returns null only when neither a pidfd nor an eventfd
    // can be had (out of descriptors); the caller must then kill the child,
    // which the Reaper reaps as an orphan.
    std::shared_ptr<ChildState> Register(pid_t pid);

   private:
    Reaper& reaper_;
  };

 private:
  friend class ChildState;
  Reaper();
  void Loop();
  void Collect(pid_t pid);
  void BeginLaunch();
  void EndLaunch();
  // ChildState's side (owner_reaps): reaps `child` if it has exited; true
  // and its status then.
  bool ReapOwn(const ChildState* child, ExitStatus* status);
  void Abandon(ChildState* child);

  std::mutex mu_;               // held by whoever reaps
  std::condition_variable cv_;  // signals `events_`
  std::unordered_map<pid_t, std::shared_ptr<ChildState>> registered_;
  int open_launches_ = 0;  // between fork and Register: unknown zombies may be theirs
  // Registrations, ends of launches, children reaped or abandoned by their
  // owners so far.
  uint64_t events_ = 0;
};

// Converts what waitid() reported for an exited child (si_code, si_status).
ExitStatus ExitStatusFromSiginfo(int code, int value);

}  // namespace ladle::env

#endif  // LADLE_ENV_REAPER_H_
