#include "env/reaper.h"

#include "env/pidfd.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

namespace ladle::env {

ExitStatus ExitStatusFromSiginfo(int code, int value) {
  ExitStatus status;
  if (code == CLD_EXITED) {
    status.code = value;
  } else {  // CLD_KILLED or CLD_DUMPED: WEXITED reports nothing else
    status.signal = value;
    status.code = 128 + value;
  }
  return status;
}

// --- ChildState ---------------------------------------------------------

namespace {

// Whether waitid() takes a pidfd (Linux 5.4; pidfd_open came in 5.3): asked
// once, of a pidfd of ladle itself, which is no child (ECHILD) where it does.
bool PidfdWaitWorks() {
  static const bool works = [] {
    int fd = PidfdOpen(::getpid());
    if (fd < 0) return false;
    siginfo_t info = {};
    bool ok = ::waitid(static_cast<idtype_t>(P_PIDFD), fd, &info, WEXITED | WNOHANG) != 0 && errno == ECHILD;
    ::close(fd);
    return ok;
  }();
  return works;
}

}  // namespace

ChildState::ChildState(pid_t pid, int exit_fd, bool owner_reaps, Reaper* reaper)
    : pid_(pid), exit_fd_(exit_fd), owner_reaps_(owner_reaps), reaper_(reaper) {}

ChildState::~ChildState() { ::close(exit_fd_); }

bool ChildState::Exited() const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (exited_ || !owner_reaps_) return exited_;
  }
  ExitStatus status;
  if (!reaper_->ReapOwn(this, &status)) {
    // Abandoned and then reaped by the Reaper, which delivered.
    std::lock_guard<std::mutex> lock(mu_);
    return exited_;
  }
  Deliver(status);
  return true;
}

ExitStatus ChildState::Wait() const {
  ExitStatus status;
  while (!WaitFor(std::chrono::hours(24), &status)) {
  }
  return status;
}

bool ChildState::WaitFor(std::chrono::milliseconds timeout, ExitStatus* status) const {
  if (owner_reaps_) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!Exited()) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      struct pollfd pfd = {exit_fd_, POLLIN, 0};
      ::poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left.count(), 60000)));
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (status != nullptr) *status = status_;
    return true;
  }
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, timeout, [this] { return exited_; })) return false;
  if (status != nullptr) *status = status_;
  return true;
}

void ChildState::Abandon() {
  if (owner_reaps_ && !Exited()) reaper_->Abandon(const_cast<ChildState*>(this));
}

void ChildState::Deliver(const ExitStatus& status) const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    exited_ = true;
    status_ = status;
  }
  if (!owner_reaps_) {
    uint64_t one = 1;
    // Cannot fail short of a counter overflow; the fd is never read.
    (void)!::write(exit_fd_, &one, sizeof one);
  }
  cv_.notify_all();
}

// --- Reaper -------------------------------------------------------------

Reaper& Reaper::Get() {
  static Reaper* reaper = new Reaper();  // never destroyed, see header
  return *reaper;
}

Reaper::Reaper() {
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  // waitid() finds nothing when SIGCHLD is ignored: children are then reaped
  // by the kernel and their statuses lost.
  struct sigaction sa = {};
  ::sigaction(SIGCHLD, nullptr, &sa);
  if (sa.sa_handler == SIG_IGN || (sa.sa_flags & SA_NOCLDWAIT) != 0) {
    sa = {};
    sa.sa_handler = SIG_DFL;
    ::sigaction(SIGCHLD, &sa, nullptr);
  }
  // The thread must never take a process-directed signal (SIGTERM meant for
  // the runner's signal thread): start it with everything blocked.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  std::thread([this] { Loop(); }).detach();
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

void Reaper::Loop() {
  for (;;) {
    uint64_t events;
    {
      std::lock_guard<std::mutex> lock(mu_);
      events = events_;
    }
    siginfo_t info = {};
    // WNOWAIT: look at the zombie without reaping it; Collect decides.
    if (::waitid(P_ALL, 0, &info, WEXITED | WNOWAIT) == 0) {
      if (info.si_pid > 0) Collect(info.si_pid);
    } else if (errno == ECHILD) {
      // No children at all: the next one can only come from a Launch, and
      // is worth looking for once registered or once its Launch has ended.
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return events_ != events; });
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // never spin
    }
  }
}

// Decides what the zombie `pid` is, under mu_: only holders of mu_ reap, so
// what waitid() shows with WNOWAIT stays that process while mu_ is held.
// Between two looks (mu_ released while waiting) its owner may have reaped
// it and the pid gone to a new child: each round looks again.
void Reaper::Collect(pid_t pid) {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    siginfo_t info = {};
    if (::waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid != pid)
      return;  // reaped by its owner; or the pid is a new child's, still running
    auto it = registered_.find(pid);
    if (it != registered_.end() && !(it->second->owner_reaps_ && !it->second->abandoned_)) {
      std::shared_ptr<ChildState> owner = std::move(it->second);
      registered_.erase(it);
      if (::waitid(P_PID, pid, &info, WEXITED | WNOHANG) != 0 || info.si_pid != pid) return;
      lock.unlock();
      owner->Deliver(ExitStatusFromSiginfo(info.si_code, info.si_status));
      return;
    }
    // An unknown zombie with no Launch open is an orphan reparented to
    // ladle: its status is nobody's.
    if (it == registered_.end() && open_launches_ == 0) {
      ::waitid(P_PID, pid, &info, WEXITED | WNOHANG);
      return;
    }
    // Its owner reaps it, or an open Launch may be about to register it:
    // look again after the next registration, end of launch or owner's reap.
    const uint64_t seen = events_;
    cv_.wait(lock, [&] { return events_ != seen; });
  }
}

bool Reaper::ReapOwn(const ChildState* child, ExitStatus* status) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (child->abandoned_) return false;
    siginfo_t info = {};
    if (::waitid(static_cast<idtype_t>(P_PIDFD), child->exit_fd_, &info, WEXITED | WNOHANG) != 0 ||
        info.si_pid != child->pid_)
      return false;
    *status = ExitStatusFromSiginfo(info.si_code, info.si_status);
    auto it = registered_.find(child->pid_);
    if (it != registered_.end() && it->second.get() == child) registered_.erase(it);
    ++events_;
  }
  cv_.notify_all();
  return true;
}

void Reaper::Abandon(ChildState* child) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    child->abandoned_ = true;
    ++events_;
  }
  cv_.notify_all();
}

void Reaper::BeginLaunch() {
  std::lock_guard<std::mutex> lock(mu_);
  ++open_launches_;
}

void Reaper::EndLaunch() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    --open_launches_;
    ++events_;
  }
  cv_.notify_all();
}

Reaper::Launch::Launch() : reaper_(Reaper::Get()) { reaper_.BeginLaunch(); }

Reaper::Launch::~Launch() { reaper_.EndLaunch(); }

std::shared_ptr<ChildState> Reaper::Launch::Register(pid_t pid) {
  // The child cannot be reaped before it is registered (the Reaper waits
  // for open launches), so the pidfd is this child's.
  int fd = PidfdWaitWorks() ? PidfdOpen(pid) : -1;
  const bool owner_reaps = fd >= 0;
  if (fd < 0) fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) return nullptr;
  auto state = std::make_shared<ChildState>(pid, fd, owner_reaps, &reaper_);
  {
    std::lock_guard<std::mutex> lock(reaper_.mu_);
    reaper_.registered_[pid] = state;
    ++reaper_.events_;
  }
  reaper_.cv_.notify_all();
  return state;
}

}  // namespace ladle::env
