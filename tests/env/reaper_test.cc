#include "env/reaper.h"
#include "tests/proc_util.h"

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace ladle::env {
namespace {

using std::chrono::milliseconds;

bool WaitUntil(const std::function<bool()>& done, milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return true;
}

// Fields of /proc/PID/stat after the command name: state is [0], ppid [1].
std::vector<std::string> StatFields(pid_t pid) {
  const std::string text = ladle::testing::ReadProcFile(pid, "stat");
  std::vector<std::string> fields;
  size_t paren = text.rfind(')');
  if (paren == std::string::npos) return fields;
  std::istringstream rest(text.substr(paren + 2));
  for (std::string f; rest >> f;) fields.push_back(f);
  return fields;
}

bool Exists(pid_t pid) { return !StatFields(pid).empty(); }
bool IsZombie(pid_t pid) {
  auto f = StatFields(pid);
  return !f.empty() && f[0] == "Z";
}

// A child that exits with `code` at once; only async-signal-safe calls in it.
pid_t ForkExiting(int code) {
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(code);
  return pid;
}

// A registered child that waits until it is killed.
std::shared_ptr<ChildState> LaunchPausing(pid_t* pid) {
  Reaper::Launch launch;
  *pid = ::fork();
  if (*pid == 0) {
    for (;;) ::pause();
  }
  return launch.Register(*pid);
}

TEST(ReaperTest, MakesLadleASubreaper) {
  Reaper::Get();
  int flag = 0;
  ASSERT_EQ(0, ::prctl(PR_GET_CHILD_SUBREAPER, &flag));
  EXPECT_EQ(1, flag);
}

TEST(ReaperTest, KeepsTheStatusOfAChildThatExitedBeforeItWasRegistered) {
  Reaper::Launch launch;
  pid_t pid = ForkExiting(7);
  ASSERT_GT(pid, 0);
  // The child is a zombie before Register: the reaper must not discard it.
  ASSERT_TRUE(WaitUntil([&] { return IsZombie(pid); }, milliseconds(2000)));
  std::this_thread::sleep_for(milliseconds(20));  // let the reaper thread see it
  std::shared_ptr<ChildState> child = launch.Register(pid);
  ExitStatus status;
  ASSERT_TRUE(child->WaitFor(milliseconds(2000), &status));
  EXPECT_EQ(7, status.code);
  EXPECT_EQ(0, status.signal);
}

TEST(ReaperTest, ReportsDeathBySignalAndSignalsTheExitFd) {
  pid_t pid;
  std::shared_ptr<ChildState> child = LaunchPausing(&pid);
  struct pollfd pfd = {child->exit_fd(), POLLIN, 0};
  EXPECT_EQ(0, ::poll(&pfd, 1, 0));
  EXPECT_FALSE(child->WaitFor(milliseconds(30), nullptr));
  EXPECT_FALSE(child->Exited());

  ASSERT_EQ(0, ::kill(pid, SIGKILL));
  ExitStatus status = child->Wait();
  EXPECT_EQ(SIGKILL, status.signal);
  EXPECT_EQ(128 + SIGKILL, status.code);
  EXPECT_TRUE(child->Exited());
  EXPECT_EQ(1, ::poll(&pfd, 1, 0));
  EXPECT_FALSE(Exists(pid));  // reaped, not a zombie
}

TEST(ReaperTest, ReapsOrphansReparentedToLadle) {
  int to_parent[2], release[2];
  ASSERT_EQ(0, ::pipe(to_parent));
  ASSERT_EQ(0, ::pipe(release));
  std::shared_ptr<ChildState> child;
  {
    Reaper::Launch launch;
    pid_t pid = ::fork();
    if (pid == 0) {
      pid_t grandchild = ::fork();
      if (grandchild == 0) {
        char c;
        ::close(release[1]);
        (void)!::read(release[0], &c, 1);  // until the test closes `release`
        ::_exit(0);
      }
      (void)!::write(to_parent[1], &grandchild, sizeof grandchild);
      ::_exit(0);
    }
    child = launch.Register(pid);
  }
  ::close(to_parent[1]);
  ::close(release[0]);
  pid_t grandchild = 0;
  ASSERT_EQ(static_cast<ssize_t>(sizeof grandchild), ::read(to_parent[0], &grandchild, sizeof grandchild));
  ::close(to_parent[0]);
  EXPECT_EQ(0, child->Wait().code);

  // Its parent gone, the grandchild now belongs to ladle, not to init.
  ASSERT_TRUE(WaitUntil([&] { auto f = StatFields(grandchild); return f.size() > 1 && f[1] == std::to_string(::getpid()); },
                        milliseconds(2000)));
  ::close(release[1]);
  EXPECT_TRUE(WaitUntil([&] { return !Exists(grandchild); }, milliseconds(2000)))
      << "orphan " << grandchild << " left as a zombie";
}

TEST(ReaperTest, ManyThreadsLaunchingAtOnceLoseNoStatus) {
  constexpr int kThreads = 8, kPerThread = 25;
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t, &wrong] {
      for (int i = 0; i < kPerThread; ++i) {
        int code = (t * kPerThread + i) % 256;
        std::shared_ptr<ChildState> child;
        {
          Reaper::Launch launch;
          child = launch.Register(ForkExiting(code));
        }
        ExitStatus status;
        if (!child->WaitFor(milliseconds(5000), &status) || status.code != code) ++wrong;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(0, wrong.load());
}

// docs/design.md "Processes: one reaper": with pidfds, the owner reaps its
// child the moment it looks; the Reaper's thread leaves the zombie alone
// until then.
TEST(ReaperTest, TheOwnerReapsItsChildAndTheReaperLeavesItAlone) {
  std::shared_ptr<ChildState> child;
  pid_t pid;
  {
    Reaper::Launch launch;
    pid = ForkExiting(5);
    child = launch.Register(pid);
  }
  ASSERT_NE(nullptr, child);
  if (!child->owner_reaps()) GTEST_SKIP() << "no pidfd waitid on this kernel (Linux < 5.4)";
  ASSERT_TRUE(WaitUntil([&] { return IsZombie(pid); }, milliseconds(2000)));
  std::this_thread::sleep_for(milliseconds(100));  // the Reaper's thread saw it exit
  EXPECT_TRUE(IsZombie(pid)) << "the Reaper reaped a child its owner reaps";
  struct pollfd pfd = {child->exit_fd(), POLLIN, 0};
  EXPECT_EQ(1, ::poll(&pfd, 1, 0));
  EXPECT_TRUE(child->Exited());
  EXPECT_FALSE(Exists(pid));
  ExitStatus status;
  ASSERT_TRUE(child->WaitFor(milliseconds(0), &status));
  EXPECT_EQ(5, status.code);
}

// A child its owner gave up on (Subprocess::~Subprocess after SIGKILL did
// not end it) is reaped by the Reaper once it exits.
TEST(ReaperTest, AnAbandonedChildIsReapedByTheReaper) {
  pid_t pid;
  std::shared_ptr<ChildState> child = LaunchPausing(&pid);
  ASSERT_NE(nullptr, child);
  if (!child->owner_reaps()) GTEST_SKIP() << "no pidfd waitid on this kernel (Linux < 5.4)";
  child->Abandon();
  ASSERT_EQ(0, ::kill(pid, SIGKILL));
  EXPECT_TRUE(WaitUntil([&] { return !Exists(pid); }, milliseconds(2000)))
      << "an abandoned child was left a zombie";
  ExitStatus status;
  ASSERT_TRUE(child->WaitFor(milliseconds(2000), &status));
  EXPECT_EQ(SIGKILL, status.signal);
}

TEST(ReaperTest, ConvertsSiginfo) {
  ExitStatus exited = ExitStatusFromSiginfo(CLD_EXITED, 3);
  EXPECT_EQ(3, exited.code);
  EXPECT_EQ(0, exited.signal);
  ExitStatus dumped = ExitStatusFromSiginfo(CLD_DUMPED, SIGSEGV);
  EXPECT_EQ(128 + SIGSEGV, dumped.code);
  EXPECT_EQ(SIGSEGV, dumped.signal);
}

}  // namespace
}  // namespace ladle::env
