#include "env/subprocess.h"
#include "env/pidfd.h"
#include "core/base/text.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <random>
#include <set>
#include <system_error>

// Boost 1.74 enables its vfork launcher only for old POSIX feature levels;
// glibc has vfork at every level.
#define BOOST_POSIX_HAS_VFORK 1
#include <boost/process/args.hpp>
#include <boost/process/child.hpp>
#include <boost/process/exe.hpp>
#include <boost/process/extend.hpp>
#include <boost/process/posix.hpp>

namespace ladle::env {
namespace bp = boost::process;

namespace {

// --- Descriptors ----------------------------------------------------------

class UniqueFd {
 public:
  UniqueFd() = default;
  ~UniqueFd() { Reset(); }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  int Release() { int fd = fd_; fd_ = -1; return fd; }
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// When ladle runs with stdin/stdout/stderr closed, new descriptors can be 0-2;
// the child's dup2 onto 0-2 would then clobber them. Keep ours above.
int AboveStdio(int fd) {
  if (fd < 0 || fd > 2) return fd;
  int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  ::close(fd);
  return moved;
}

// The child's three standard descriptors and the parent's read ends. All are
// O_CLOEXEC from birth: a descriptor inherited by a concurrently launched
// step would hold this step's pipe open until that step ends.
struct Stdio {
  int null_in = -1;  // NullInput(): never closed
  UniqueFd out_read, out_write, err_read, err_write;

  Status Open() {
    null_in = NullInput();
    if (null_in < 0) return Status::FromErrno("open /dev/null", errno);
    Status s = OpenPipe(&out_read, &out_write);
    return s.ok() ? OpenPipe(&err_read, &err_write) : s;
  }

  void CloseChildEnds() {
    out_write.Reset();
    err_write.Reset();
  }

  // /dev/null for every child's stdin, opened once per process (read-only
  // and close-on-exec: the child gets it only as its descriptor 0).
  // A failed open (out of descriptors) is tried again by the next launch.
  static int NullInput() {
    static std::atomic<int> kept{-1};
    int fd = kept.load();
    if (fd >= 0) return fd;
    fd = AboveStdio(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    int expected = -1;
    if (fd >= 0 && !kept.compare_exchange_strong(expected, fd)) {
      ::close(fd);  // another thread's won
      fd = expected;
    }
    return fd;
  }

 private:
  static Status OpenPipe(UniqueFd* read_end, UniqueFd* write_end) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return Status::FromErrno("pipe2", errno);
    read_end->Reset(AboveStdio(fds[0]));
    write_end->Reset(AboveStdio(fds[1]));
    if (read_end->get() < 0 || write_end->get() < 0) return Status::FromErrno("fcntl", errno);
    // Only our end is non-blocking: O_NONBLOCK on the write end would be
    // shared with the child and make its writes fail with EAGAIN.
    ::fcntl(read_end->get(), F_SETFL, ::fcntl(read_end->get(), F_GETFL) | O_NONBLOCK);
    return Status::OK();
  }
};

// --- The child, between fork and exec -------------------------------------

// Runs in the forked child: only async-signal-safe calls. Does the stdio and
// cwd set-up itself rather than with Boost's std_out/start_dir, because
// Boost 1.74 ignores a failed chdir (the script would run in ladle's cwd) and
// only reports a failed dup2 while exec'ing anyway.
struct ChildSetup {
  int in, out, err;
  const char* cwd;           // null: stay
  const char* cgroup_procs;  // null: no cgroup; else joined by writing "0"
  const sigset_t* reset;     // the signals to set back to SIG_DFL (SignalsToReset)
  // Set to 1 by the child once it has joined: with vfork the child writes
  // the parent's memory (as Boost's own error reporting does). A plain
  // fork would leave it 0, and the tree would run without the cgroup.
  volatile int* joined;
  bool die_with_ladle;  // LaunchSpec::die_with_ladle

  template <class Executor>
  void operator()(Executor& exec) const {
    if (::dup2(in, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(err, 2) < 0) Fail(exec, "dup2 failed");
    if (cwd != nullptr && ::chdir(cwd) != 0) Fail(exec, "chdir failed");
    // Own group: Kill reaches the tree with kill(-pgid), and a Ctrl-C at
    // ladle's terminal does not reach the steps behind the runner's back.
    if (::setpgid(0, 0) != 0) Fail(exec, "setpgid failed");
    // Join the tree's cgroup before exec, so that nothing the step starts is
    // ever outside it. A failure is seen by the parent (it checks), which
    // then keeps to the process group and the marker.
    if (cgroup_procs != nullptr) {
      int fd = ::open(cgroup_procs, O_WRONLY | O_CLOEXEC);
      if (fd >= 0) {
        if (::write(fd, "0", 1) == 1) *joined = 1;
        ::close(fd);
      }
    }
    if (die_with_ladle && ::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) Fail(exec, "prctl failed");
    ResetSignals(*reset);
    // Descriptors that other threads of ladle opened without O_CLOEXEC
    // (Boost's own error pipe among them) must not leak into the tree.
    ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
  }

  template <class Executor>
  static void Fail(Executor& exec, const char* what) {
    exec.set_error(std::error_code(errno, std::system_category()), what);
    ::_exit(127);
  }

  // The mask and ignored dispositions survive exec: the runner blocks
  // SIGINT/SIGTERM for its signal thread and may ignore SIGPIPE, and a step
  // must start like a process started from a shell. Handlers are reset too:
  // exec would, but a signal let through by the mask below would otherwise
  // run ladle's handler in this child, which shares ladle's memory.
  static void ResetSignals(const sigset_t& reset) {
    struct sigaction dfl = {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig)
      if (sigismember(&reset, sig) == 1) ::sigaction(sig, &dfl, nullptr);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
  }
};

// The signals whose disposition a step must not inherit: every one that was
// not SIG_DFL when ladle first launched something (inherited from ladle's own
// parent: nohup, `trap '' INT`...), and those ladle itself handles or ignores
// later (runner/cli, runner/spoon: INT, TERM, HUP, PIPE, WINCH; QUIT, CHLD and
// the user signals for good measure). Resetting all 64 cost 64 system calls
// per step, a tenth of a millisecond on this VM (docs/benchmarks.md "ladle run
// on the local backend").
const sigset_t& SignalsToReset() {
  static const sigset_t set = [] {
    sigset_t s;
    sigemptyset(&s);
    for (int sig = 1; sig < NSIG; ++sig) {
      struct sigaction current = {};
      if (::sigaction(sig, nullptr, &current) == 0 && current.sa_handler != SIG_DFL) sigaddset(&s, sig);
    }
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGWINCH, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2,
                    SIGALRM, SIGTSTP, SIGTTIN, SIGTTOU})
      sigaddset(&s, sig);
    return s;
  }();
  return set;
}

// --- Launching ------------------------------------------------------------

// Unique names without a random_device per launch (it opened a device or
// asked the kernel each time): one random seed per process, then a counter.
uint64_t NextUniqueNumber() {
  static const uint64_t seed = [] {
    std::random_device random;
    return (static_cast<uint64_t>(random()) << 32) ^ random();
  }();
  static std::atomic<uint64_t> counter{0};
  // splitmix64 of seed + n: distinct for distinct n, and not guessable from
  // a neighbour's name.
  uint64_t z = seed + 0x9e3779b97f4a7c15ull * (++counter);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

std::string NewMarkerName() {
  char name[64];
  std::snprintf(name, sizeof name, "LADLE_TREE_%d_%016llx", static_cast<int>(::getpid()),
                static_cast<unsigned long long>(NextUniqueNumber()));
  return name;
}

}  // namespace

uint64_t UniqueLaunchNumber() { return NextUniqueNumber(); }

const char* const kBaseEnvironment[] = {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG",
                                        "LANGUAGE", "TZ", "TMPDIR", "TERM", nullptr};

namespace {

// The child's environment: ladle's (or its base, LaunchSpec::
// base_environment_only), with spec.env and the marker set.
// Built here rather than with bp::environment, whose lookup in Boost 1.74
// compares past the end of shorter entries (AddressSanitizer:
// heap-buffer-overflow in basic_environment_impl::find).
struct ChildEnvironment {
  std::vector<std::string> entries;  // "NAME=value"
  std::vector<char*> pointers;       // into entries, then nullptr: execve's envp

  void Set(const std::string& name, const std::string& value) {
    const std::string prefix = name + "=";
    for (std::string& e : entries) {
      if (e.compare(0, prefix.size(), prefix) == 0) {
        e = prefix + value;
        return;
      }
    }
    entries.push_back(prefix + value);
  }
};

bool InBaseEnvironment(const char* entry) {
  const char* eq = std::strchr(entry, '=');
  if (eq == nullptr) return false;
  const std::string_view name(entry, static_cast<size_t>(eq - entry));
  if (name.rfind("LC_", 0) == 0) return true;
  for (const char* const* base = kBaseEnvironment; *base != nullptr; ++base)
    if (name == *base) return true;
  return false;
}

void MakeEnvironment(const LaunchSpec& spec, const std::string& marker_name,
                     ChildEnvironment* env) {
  for (char** e = environ; *e != nullptr; ++e)
    if (!spec.base_environment_only || InBaseEnvironment(*e)) env->entries.emplace_back(*e);
  for (const auto& [name, value] : spec.env) env->Set(name, value);
  env->Set(marker_name, "1");
  for (std::string& e : env->entries) env->pointers.push_back(e.data());
  env->pointers.push_back(nullptr);
}

// Forks and execs; returns the pid, or -1 with *ec set.
pid_t Spawn(const LaunchSpec& spec, ChildEnvironment& env, const ChildSetup& setup,
            std::error_code* ec) {
  try {
    // vfork: no page tables to copy and no copy-on-write faults in a parent
    // with many threads; forking cost ladle several ms per step. The child
    // only makes system calls before exec (ChildSetup allocates nothing;
    // Boost's error strings fit in the small-string buffer).
    char** envp = env.pointers.data();
    bp::child child(bp::exe = spec.exe, bp::args = spec.args,
                    bp::extend::on_setup([envp](auto& exec) { exec.env = envp; }),
                    bp::extend::on_exec_setup(setup), bp::posix::use_vfork, *ec);
    // The Reaper waits for it, never Boost; detached, ~child cannot kill it.
    child.detach();
    return *ec ? -1 : child.id();
  } catch (const std::exception&) {
    *ec = std::make_error_code(std::errc::resource_unavailable_try_again);
    return -1;
  }
}

// --- Finding a tree's processes in /proc ----------------------------------

bool ReadEnviron(pid_t pid, std::string* environ_text) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/environ", static_cast<int>(pid));
  UniqueFd fd;
  fd.Reset(::open(path, O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return false;
  environ_text->clear();
  char buf[16384];
  ssize_t n;
  while ((n = ::read(fd.get(), buf, sizeof buf)) > 0) environ_text->append(buf, n);
  return true;
}

// Whether an environment (NUL-separated entries) has an entry starting with
// `prefix` ("NAME=").
bool HasEntry(const std::string& environ_text, const std::string& prefix) {
  size_t pos = 0;
  while (pos < environ_text.size()) {
    if (environ_text.compare(pos, prefix.size(), prefix) == 0) return true;
    pos = environ_text.find('\0', pos);
    if (pos == std::string::npos) break;
    ++pos;
  }
  return false;
}

// Calls fn(pid) for every process but ladle itself.
template <class Fn>
void ForEachProcess(Fn fn) {
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr) return;
  const pid_t self = ::getpid();
  while (struct dirent* entry = ::readdir(dir)) {
    char* end = nullptr;
    long pid = std::strtol(entry->d_name, &end, 10);
    if (*end != '\0' || pid <= 0 || pid == self) continue;
    if (!fn(static_cast<pid_t>(pid))) break;
  }
  ::closedir(dir);
}

}  // namespace

bool AnyProcessWith(const std::string& marker) {
  bool found = false;
  std::string text;
  ForEachProcess([&](pid_t pid) {
    found = ReadEnviron(pid, &text) && HasEntry(text, marker);
    return !found;
  });
  return found;
}

std::vector<std::string> EnvironmentNamesWithPrefix(const std::string& prefix) {
  std::set<std::string> names;
  std::string text;
  ForEachProcess([&](pid_t pid) {
    if (!ReadEnviron(pid, &text)) return true;
    size_t pos = 0;
    while (pos < text.size() && names.size() < 10000) {
      size_t end = text.find('\0', pos);
      if (end == std::string::npos) end = text.size();
      if (text.compare(pos, prefix.size(), prefix) == 0) {
        size_t eq = text.find('=', pos);
        if (eq != std::string::npos && eq < end) names.insert(text.substr(pos, eq - pos));
      }
      pos = end + 1;
    }
    return true;
  });
  return std::vector<std::string>(names.begin(), names.end());
}

// The pidfd pins the process: if the pid was reused after the first look,
// the second look (made after pinning) sees the newcomer's environment.
int SignalProcessesWith(const std::string& marker, int signal) {
  std::string text;
  int signalled = 0;
  ForEachProcess([&](pid_t pid) {
    if (!ReadEnviron(pid, &text) || !HasEntry(text, marker)) return true;
    int pidfd = PidfdOpen(pid);
    if (pidfd < 0) {
      if (errno == ENOSYS && ::kill(pid, signal) == 0) ++signalled;  // kernel < 5.3: best effort
      return true;
    }
    if (ReadEnviron(pid, &text) && HasEntry(text, marker) && PidfdSendSignal(pidfd, signal) == 0)
      ++signalled;
    ::close(pidfd);
    return true;
  });
  return signalled;
}

// --- Subprocess -----------------------------------------------------------

constexpr std::chrono::milliseconds Subprocess::kLeftoverGrace;
constexpr std::chrono::milliseconds Subprocess::kKillWait;
constexpr std::chrono::milliseconds Subprocess::kDrainLimit;
constexpr size_t Subprocess::kReadChunk;

// How often a tree that is being ended is checked for survivors.
constexpr std::chrono::milliseconds kCheckInterval{20};

Status Subprocess::Start(const LaunchSpec& spec, std::unique_ptr<Subprocess>* out) {
  Stdio io;
  Status s = io.Open();
  if (!s.ok()) return s.WithContext("start " + spec.exe);
  const std::string marker_name = NewMarkerName();
  ChildEnvironment env;
  MakeEnvironment(spec, marker_name, &env);
  std::unique_ptr<StepCgroup> cgroup =
      StepCgroup::Create(DetectCgroups(), spec.cgroup_parent, spec.cgroup_leaf, spec.cgroup_pool);
  volatile int joined = 0;
  const ChildSetup setup{io.null_in, io.out_write.get(), io.err_write.get(),
                         spec.cwd.empty() ? nullptr : spec.cwd.c_str(),
                         cgroup ? cgroup->procs_path() : nullptr, &SignalsToReset(), &joined,
                         spec.die_with_ladle};
  std::shared_ptr<ChildState> child;
  pid_t pid;
  {
    Reaper::Launch launch;
    std::error_code ec;
    pid = Spawn(spec, env, setup, &ec);
    if (pid <= 0) return Status::Unavailable("cannot start " + spec.exe + ": " + ec.message());
    child = launch.Register(pid);
  }
  // Only the child may hold the write ends, or EOF would never come.
  io.CloseChildEnds();
  if (!child) {
    ::kill(-pid, SIGKILL);
    return Status::IoError("start " + spec.exe + ": out of file descriptors");
  }
  // vfork: the child has joined (or failed to) before Spawn returned. One
  // that could not join runs without a cgroup rather than not at all.
  if (cgroup && joined != 1) cgroup.reset();
  out->reset(new Subprocess(std::move(child), marker_name + "=", io.out_read.Release(),
                            io.err_read.Release(), std::move(cgroup)));
  return Status::OK();
}

Subprocess::Subprocess(std::shared_ptr<ChildState> child, std::string marker, int out_fd,
                       int err_fd, std::unique_ptr<StepCgroup> cgroup)
    : child_(std::move(child)),
      pgid_(child_->pid()),
      marker_(std::move(marker)),
      cgroup_(std::move(cgroup)),
      out_fd_(out_fd),
      err_fd_(err_fd),
      buffer_(kReadChunk) {}

Subprocess::~Subprocess() {
  Close();
  // One that outlived SIGKILL (uninterruptible sleep) is the Reaper's now.
  child_->Abandon();
}

bool Subprocess::Pump(OutputSink* sink, Clock::time_point deadline) {
  for (;;) {
    Advance();
    if (phase_ == Phase::kDone) return true;
    if (phase_ == Phase::kRunning && Clock::now() >= deadline) return false;
    PollOnce(sink, PollTimeoutMs(deadline));
  }
}

void Subprocess::PollOnce(OutputSink* sink, int timeout_ms) {
  struct pollfd fds[3];
  nfds_t n = 0;
  if (out_fd_ >= 0) fds[n++] = {out_fd_, POLLIN, 0};
  if (err_fd_ >= 0) fds[n++] = {err_fd_, POLLIN, 0};
  // The exit fd (a pidfd, or the Reaper's eventfd) stays readable once the
  // child has exited: watch it only while it can still tell us something.
  if (phase_ == Phase::kRunning) fds[n++] = {child_->exit_fd(), POLLIN, 0};
  if (::poll(fds, n, timeout_ms) <= 0) return;
  // One read per stream per round keeps stdout and stderr in time order.
  for (nfds_t i = 0; i < n; ++i) {
    if (fds[i].revents == 0) continue;
    if (fds[i].fd == out_fd_) ReadChunk(&out_fd_, OutputStream::kStdout, sink);
    else if (fds[i].fd == err_fd_) ReadChunk(&err_fd_, OutputStream::kStderr, sink);
    else exit_seen_ = true;
  }
}

void Subprocess::ReadChunk(int* fd, OutputStream stream, OutputSink* sink) {
  ssize_t n = ::read(*fd, buffer_.data(), buffer_.size());
  if (n > 0) {
    if (sink != nullptr) sink->Write(stream, std::string_view(buffer_.data(), n));
  } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
    ::close(*fd);
    *fd = -1;
  }
}

// Takes every transition that is due, so that no poll waits in a phase
// that is already over.
void Subprocess::Advance() {
  Phase before;
  do {
    before = phase_;
    AdvanceOnce();
  } while (phase_ != before && phase_ != Phase::kDone);
}

void Subprocess::AdvanceOnce() {
  const Clock::time_point now = Clock::now();
  switch (phase_) {
    case Phase::kRunning:
      if (exit_seen_ && child_->Exited()) BeginEnding();
      break;
    case Phase::kEnding:
      if (!DueForCheck()) break;
      if (TreeGone()) {
        BeginDraining(true);
      } else if (now >= phase_deadline_) {
        Kill(SIGKILL);
        phase_ = Phase::kKilling;
        phase_deadline_ = now + kKillWait;
      }
      break;
    case Phase::kKilling:
      if (DueForCheck() && TreeGone()) BeginDraining(true);
      else if (now >= phase_deadline_) BeginDraining(false);  // unkillable (state D)
      break;
    case Phase::kDraining:
      if ((out_fd_ < 0 && err_fd_ < 0) || now >= phase_deadline_) {
        CloseFds();
        phase_ = Phase::kDone;
      }
      break;
    case Phase::kDone:
      break;
  }
}

// The main process has exited. What it left behind (`sleep 1000 &`) would
// hold the pipes open forever: end it like a container's end would.
void Subprocess::BeginEnding() {
  if (TreeGone()) return BeginDraining(true);
  Kill(SIGTERM);
  phase_ = Phase::kEnding;
  phase_deadline_ = Clock::now() + kLeftoverGrace;
  next_check_ = Clock::now();
}

void Subprocess::BeginDraining(bool tree_gone) {
  if (tree_gone) MarkTreeEnded();
  phase_ = Phase::kDraining;
  phase_deadline_ = Clock::now() + kDrainLimit;
}

// Walking /proc costs a few milliseconds: not after every chunk of output.
bool Subprocess::DueForCheck() {
  const Clock::time_point now = Clock::now();
  if (now < next_check_) return false;
  next_check_ = now + kCheckInterval;
  return true;
}

int Subprocess::PollTimeoutMs(Clock::time_point deadline) const {
  using std::chrono::ceil;
  using std::chrono::milliseconds;
  Clock::time_point until;
  switch (phase_) {
    case Phase::kRunning:
      if (deadline == Clock::time_point::max()) return -1;
      until = deadline;
      break;
    case Phase::kEnding:
    case Phase::kKilling:
      until = std::min(next_check_, phase_deadline_);
      break;
    default:
      until = phase_deadline_;
  }
  auto ms = ceil<milliseconds>(until - Clock::now()).count();
  return ms < 0 ? 0 : static_cast<int>(std::min<long long>(ms, 60000));
}

void Subprocess::Kill(int signal) {
  std::lock_guard<std::mutex> lock(kill_mu_);
  if (tree_ended_) return;
  ::kill(-pgid_, signal);
  SignalProcessesWith(marker_, signal);
  if (cgroup_) cgroup_->Signal(signal);
}

// Zombies still count as group members, but only for the moment it takes the
// Reaper to collect them.
bool Subprocess::TreeGone() const {
  if (::kill(-pgid_, 0) == 0 || errno != ESRCH) return false;
  // The step's cgroup holds every descendant, setsid or not: where there is
  // one it is the answer, without the walk of /proc, which was most of a
  // short step's own cost (docs/benchmarks.md "ladle run on the local backend").
  if (cgroup_) return cgroup_->Empty();
  return !AnyProcessWith(marker_);
}

bool Subprocess::WaitTreeGone(Clock::time_point deadline) const {
  while (!TreeGone()) {
    if (Clock::now() >= deadline) return false;
    ::poll(nullptr, 0, static_cast<int>(kCheckInterval.count()));
  }
  return true;
}

void Subprocess::MarkTreeEnded() {
  std::lock_guard<std::mutex> lock(kill_mu_);
  tree_ended_ = true;
}

bool Subprocess::TreeEnded() {
  std::lock_guard<std::mutex> lock(kill_mu_);
  return tree_ended_;
}

void Subprocess::Close() {
  if (!TreeEnded()) {
    Kill(SIGKILL);
    child_->WaitFor(kKillWait, nullptr);
    WaitTreeGone(Clock::now() + kKillWait);
    MarkTreeEnded();
  }
  CloseFds();
  phase_ = Phase::kDone;
}

void Subprocess::CloseFds() {
  if (out_fd_ >= 0) ::close(out_fd_);
  if (err_fd_ >= 0) ::close(err_fd_);
  out_fd_ = err_fd_ = -1;
}

// --- Helpers --------------------------------------------------------------

namespace {

bool IsExecutableFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// Keeps the first kMaxCommandOutput bytes of each stream; reading goes on so
// that the program never blocks on a full pipe.
class CaptureSink : public OutputSink {
 public:
  explicit CaptureSink(CommandResult* result) : result_(result) {}
  void Write(OutputStream stream, std::string_view data) override {
    std::string& dest = stream == OutputStream::kStdout ? result_->out : result_->err;
    size_t room = kMaxCommandOutput - std::min(dest.size(), kMaxCommandOutput);
    if (data.size() > room) overflowed_ = true;
    dest.append(data.substr(0, room));
  }
  bool overflowed() const { return overflowed_; }

 private:
  CommandResult* result_;
  bool overflowed_ = false;
};

// TERM, then KILL if it has not exited a second later.
void StopTimedOut(Subprocess* proc, OutputSink* sink) {
  proc->Kill(SIGTERM);
  if (proc->Pump(sink, Subprocess::Clock::now() + std::chrono::seconds(1))) return;
  proc->Kill(SIGKILL);
  proc->Pump(sink);
}

std::string Quoted(const std::vector<std::string>& argv) {
  std::string text = "'";
  for (size_t i = 0; i < argv.size() && i < 3; ++i) text += (i ? " " : "") + argv[i];
  return text + (argv.size() > 3 ? " ...'" : "'");
}

}  // namespace

Status FindInPath(const std::string& name, std::string* path) {
  if (name.find('/') != std::string::npos) {
    if (!IsExecutableFile(name)) return Status::NotFound(name + " is not an executable file");
    *path = name;
    return Status::OK();
  }
  const char* env_path = std::getenv("PATH");
  std::string dirs = env_path != nullptr ? env_path : "/usr/local/bin:/usr/bin:/bin";
  size_t begin = 0;
  while (begin <= dirs.size() && !name.empty()) {
    size_t end = dirs.find(':', begin);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(begin, end - begin);
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (IsExecutableFile(candidate)) {
      *path = candidate;
      return Status::OK();
    }
    begin = end + 1;
  }
  return Status::NotFound(name + " not found in PATH");
}

Status RunCommand(const std::vector<std::string>& argv, const std::string& cwd,
                  CommandResult* result, std::chrono::milliseconds timeout,
                  const std::vector<std::pair<std::string, std::string>>& env) {
  *result = CommandResult();
  if (argv.empty()) return Status::Invalid("RunCommand: no program given");
  LaunchSpec spec;
  Status s = FindInPath(argv[0], &spec.exe);
  if (!s.ok()) return s;
  if (!cwd.empty() && !IsDirectory(cwd)) return Status::NotFound("directory '" + cwd + "' does not exist");
  spec.args.assign(argv.begin() + 1, argv.end());
  spec.cwd = cwd;
  spec.env = env;
  // A cgroup of its own, as a step's (docs/backends.md "Which cgroups"):
  // the end of the command is then one read of its group, not a walk of
  // /proc for its marker, which cost every git of a run's start-up
  // milliseconds. Its groups are kept for the next command.
  static const std::shared_ptr<CgroupPool> helper_groups = std::make_shared<CgroupPool>();
  char leaf[32];
  std::snprintf(leaf, sizeof leaf, "helper-%08x", static_cast<unsigned>(UniqueLaunchNumber()));
  spec.cgroup_parent = ProcessCgroupName();
  spec.cgroup_leaf = leaf;
  spec.cgroup_pool = helper_groups;
  std::unique_ptr<Subprocess> proc;
  s = Subprocess::Start(spec, &proc);
  if (!s.ok()) return s;
  CaptureSink sink(result);
  const bool timed_out = !proc->Pump(&sink, Subprocess::Clock::now() + timeout);
  if (timed_out) StopTimedOut(proc.get(), &sink);
  result->exit_code = proc->Wait().code;
  if (timed_out) {
    return Status::Unavailable(Quoted(argv) + " timed out after " + std::to_string(timeout.count()) + " ms");
  }
  if (sink.overflowed()) {
    return Status::TooLarge("output of " + Quoted(argv) + " exceeds " +
                            std::to_string(kMaxCommandOutput >> 20) + " MiB");
  }
  return Status::OK();
}

}  // namespace ladle::env
