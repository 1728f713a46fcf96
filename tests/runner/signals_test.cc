// SignalHandlerScope: a handler that captures locals cannot outlive them.
// Run in a forked child, whose only thread is the test's: the signal mask
// and the sigwait thread then belong to that child alone.
#include "runner/cli/signals.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace ladle::runner {
namespace {

void Say(int fd, const char* text) {
  ssize_t n = ::write(fd, text, std::char_traits<char>::length(text));
  (void)n;
}

// Child: a handler in a scope, a signal while it exists, another after.
void ChildBody(int out) {
  {
    std::atomic<int> got{0};  // a local the handler uses by reference
    SignalHandlerScope scope([&got, out](int sig) {
      got = sig;
      Say(out, sig == SIGTERM ? "called TERM\n" : "called other\n");
    });
    ::kill(::getpid(), SIGTERM);
    for (int i = 0; i < 500 && got.load() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // `got` is gone: the handler must be too. This signal is dropped.
  ::kill(::getpid(), SIGINT);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  Say(out, "done\n");
}

std::string ReadAll(int fd, std::chrono::seconds limit) {
  std::string text;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  char buf[256];
  while (std::chrono::steady_clock::now() < deadline) {
    struct pollfd p = {fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    text.append(buf, n);
  }
  return text;
}

// Regression (issue 10): `ladle run`'s handler captured CmdRun's locals by
// reference and stayed installed after an early return.
TEST(SignalHandlerScopeTest, HandlerIsRemovedWhenTheScopeEnds) {
  int fds[2];
  ASSERT_EQ(0, ::pipe2(fds, O_CLOEXEC));
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(fds[0]);
    ChildBody(fds[1]);
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string out = ReadAll(fds[0], std::chrono::seconds(20));
  ::close(fds[0]);
  // The child is reaped by whoever reaps in this binary (a test may have
  // started ladle's Reaper); its output is the verdict.
  EXPECT_EQ("called TERM\ndone\n", out);
}

}  // namespace
}  // namespace ladle::runner
