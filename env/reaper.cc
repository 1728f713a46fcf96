#include "env/reaper.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

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

ChildState::ChildState(pid_t pid, int exit_fd) : pid_(pid), exit_fd_(exit_fd) {}

ChildState::~ChildState() { ::close(exit_fd_); }

bool ChildState::Exited() const {
  std::lock_guard<std::mutex> lock(mu_);
  return exited_;
}

ExitStatus ChildState::Wait() const {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return exited_; });
  return status_;
}

bool ChildState::WaitFor(std::chrono::milliseconds timeout, ExitStatus* status) const {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, timeout, [this] { return exited_; })) return false;
  if (status != nullptr) *status = status_;
  return true;
}

void ChildState::Deliver(const ExitStatus& status) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    exited_ = true;
    status_ = status;
  }
  uint64_t one = 1;
  // Cannot fail short of a counter overflow; the fd is never read.
  (void)!::write(exit_fd_, &one, sizeof one);
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

void Reaper::Collect(pid_t pid) {
  std::shared_ptr<ChildState> owner = AwaitOwner(pid);
  siginfo_t info = {};
  // WNOHANG: never block the only reaper on one pid.
  if (::waitid(P_PID, pid, &info, WEXITED | WNOHANG) != 0 || info.si_pid != pid) return;
  if (owner) owner->Deliver(ExitStatusFromSiginfo(info.si_code, info.si_status));
}

// Returns the registered owner of `pid`, or null for an orphan. A Launch that
// was open when the zombie was seen may still register it, so wait for those
// (and only those: newer launches cannot have created an existing zombie).
std::shared_ptr<ChildState> Reaper::AwaitOwner(pid_t pid) {
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t horizon = next_ticket_;
  cv_.wait(lock, [&] {
    return registered_.count(pid) != 0 || open_launches_.empty() ||
           *open_launches_.begin() >= horizon;
  });
  auto it = registered_.find(pid);
  if (it == registered_.end()) return nullptr;
  std::shared_ptr<ChildState> owner = std::move(it->second);
  registered_.erase(it);
  return owner;
}

uint64_t Reaper::BeginLaunch() {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t ticket = next_ticket_++;
  open_launches_.insert(ticket);
  return ticket;
}

void Reaper::EndLaunch(uint64_t ticket) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    open_launches_.erase(ticket);
    ++events_;
  }
  cv_.notify_all();
}

Reaper::Launch::Launch() : reaper_(Reaper::Get()), ticket_(reaper_.BeginLaunch()) {}

Reaper::Launch::~Launch() { reaper_.EndLaunch(ticket_); }

std::shared_ptr<ChildState> Reaper::Launch::Register(pid_t pid) {
  int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) return nullptr;
  auto state = std::make_shared<ChildState>(pid, fd);
  {
    std::lock_guard<std::mutex> lock(reaper_.mu_);
    reaper_.registered_[pid] = state;
    ++reaper_.events_;
  }
  reaper_.cv_.notify_all();
  return state;
}

}  // namespace ladle::env
