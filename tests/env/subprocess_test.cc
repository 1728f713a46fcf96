#include "env/subprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace ladle::env {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The value of a "Name:\tvalue" line of /proc/PID/status text.
std::string StatusField(const std::string& status, const std::string& name) {
  std::istringstream in(status);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name + ":", 0) == 0) return line.substr(line.find_first_not_of(" \t", name.size() + 1));
  }
  return "";
}

TEST(RunCommandTest, CapturesStdoutStderrAndExitCode) {
  CommandResult result;
  Status s = RunCommand({"sh", "-c", "echo out; echo err >&2; echo more; exit 4"}, "", &result);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(4, result.exit_code);
  EXPECT_EQ("out\nmore\n", result.out);
  EXPECT_EQ("err\n", result.err);
}

TEST(RunCommandTest, ReportsAMissingProgram) {
  CommandResult result;
  Status s = RunCommand({"ladle-no-such-program", "--version"}, "", &result);
  EXPECT_EQ(Code::kNotFound, s.code());
  EXPECT_EQ("ladle-no-such-program not found in PATH", s.message());
}

TEST(RunCommandTest, ReportsAMissingDirectory) {
  CommandResult result;
  Status s = RunCommand({"true"}, "/nonexistent/ladle-test", &result);
  EXPECT_EQ(Code::kNotFound, s.code());
  EXPECT_EQ("directory '/nonexistent/ladle-test' does not exist", s.message());
}

TEST(RunCommandTest, RunsInTheGivenDirectoryWithArgumentsVerbatim) {
  char dir_template[] = "/tmp/ladle-subprocess-XXXXXX";
  ASSERT_NE(nullptr, ::mkdtemp(dir_template));
  const std::string dir = dir_template;
  CommandResult result;
  Status s = RunCommand({"sh", "-c", "pwd -P; printf '[%s]' \"$@\"", "sh", "a b  'c'", "", "$HOME"}, dir, &result);
  ::rmdir(dir.c_str());
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(dir + "\n[a b  'c'][][$HOME]", result.out);
}

TEST(RunCommandTest, TimesOutWithTerm) {
  CommandResult result;
  auto start = Clock::now();
  Status s = RunCommand({"sleep", "1000"}, "", &result, milliseconds(200));
  EXPECT_EQ(Code::kUnavailable, s.code()) << s.ToString();
  EXPECT_EQ("'sleep 1000' timed out after 200 ms", s.message());
  EXPECT_EQ(128 + SIGTERM, result.exit_code);
  EXPECT_LT(SecondsSince(start), 1.0);
}

TEST(RunCommandTest, TimeoutEscalatesToKillWhenTermIsIgnored) {
  CommandResult result;
  auto start = Clock::now();
  Status s = RunCommand({"sh", "-c", "trap '' TERM; echo ready; sleep 1000"}, "", &result, milliseconds(100));
  EXPECT_EQ(Code::kUnavailable, s.code());
  EXPECT_EQ(128 + SIGKILL, result.exit_code);
  EXPECT_EQ("ready\n", result.out);
  EXPECT_GE(SecondsSince(start), 1.0);  // the grace period was given
  EXPECT_LT(SecondsSince(start), 3.0);
}

TEST(RunCommandTest, BoundsCapturedOutput) {
  CommandResult result;
  Status s = RunCommand({"head", "-c", "70000000", "/dev/zero"}, "", &result);
  EXPECT_EQ(Code::kTooLarge, s.code()) << s.ToString();
  EXPECT_EQ(kMaxCommandOutput, result.out.size());
  EXPECT_EQ(0, result.exit_code);  // it was drained, not killed by SIGPIPE
}

TEST(SubprocessTest, StartFailsForAProgramThatCannotRun) {
  LaunchSpec spec;
  spec.exe = "/nonexistent/ladle-test-program";
  std::unique_ptr<Subprocess> proc;
  Status s = Subprocess::Start(spec, &proc);
  EXPECT_EQ(Code::kUnavailable, s.code());
  EXPECT_EQ("cannot start /nonexistent/ladle-test-program: No such file or directory", s.message());
  EXPECT_EQ(nullptr, proc);
}

TEST(SubprocessTest, StartFailsWhenTheDirectoryVanished) {
  LaunchSpec spec;
  spec.exe = "/bin/sh";
  spec.args = {"-c", "touch ran-in-the-wrong-place"};
  spec.cwd = "/nonexistent/ladle-test-dir";
  std::unique_ptr<Subprocess> proc;
  Status s = Subprocess::Start(spec, &proc);
  EXPECT_EQ(Code::kUnavailable, s.code());
  EXPECT_EQ(nullptr, proc);
  EXPECT_NE(0, ::access("ran-in-the-wrong-place", F_OK));
}

// The runner blocks SIGINT/SIGTERM for its signal thread and may ignore
// SIGPIPE: none of that may reach a step.
TEST(SubprocessTest, ChildStartsWithDefaultSignalsInItsOwnGroup) {
  sigset_t block, old_mask;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGINT);
  ASSERT_EQ(0, pthread_sigmask(SIG_BLOCK, &block, &old_mask));
  struct sigaction ignore = {}, old_pipe;
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(0, ::sigaction(SIGPIPE, &ignore, &old_pipe));

  CommandResult result;
  Status s = RunCommand({"sh", "-c", "cat /proc/self/status; echo pid=$$ $(cut -d' ' -f5 /proc/$$/stat)"}, "", &result);
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  ::sigaction(SIGPIPE, &old_pipe, nullptr);

  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ("0000000000000000", StatusField(result.out, "SigBlk"));
  EXPECT_EQ("0000000000000000", StatusField(result.out, "SigIgn"));
  // The shell leads its own group.
  size_t pid_at = result.out.find("pid=");
  ASSERT_NE(std::string::npos, pid_at);
  std::istringstream tail(result.out.substr(pid_at + 4));
  std::string pid, pgid;
  tail >> pid >> pgid;
  EXPECT_EQ(pid, pgid);
  EXPECT_NE(std::to_string(::getpgrp()), pgid);
}

// Only the dispositions that can differ from SIG_DFL are reset in the child
// (a system call each): one ignored by whoever started ladle (nohup, `trap ''
// VTALRM`) must be among them. The check runs in a fresh copy of this test
// binary, started with SIGVTALRM ignored, since the set is taken once per
// process.
TEST(SubprocessTest, SignalIgnoredWhenLadleStartedIsResetInTheChild) {
  if (std::getenv("LADLE_SUBPROCESS_TEST_HELPER") != nullptr) {
    CommandResult result;
    Status s = RunCommand({"sh", "-c", "cat /proc/self/status"}, "", &result);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ("0000000000000000", StatusField(result.out, "SigIgn"));
    return;
  }
  // Started through RunCommand: the Reaper of this process reaps every child.
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  ASSERT_GT(n, 0);
  self[n] = '\0';
  CommandResult result;
  Status s = RunCommand(
      {"sh", "-c",
       "trap '' VTALRM; LADLE_SUBPROCESS_TEST_HELPER=1 exec \"$0\" "
       "--gtest_filter=SubprocessTest.SignalIgnoredWhenLadleStartedIsResetInTheChild",
       self},
      "", &result, std::chrono::seconds(60));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(0, result.exit_code) << "the step inherited SIGVTALRM ignored:\n" << result.out;
  EXPECT_NE(std::string::npos, result.out.find("[  PASSED  ] 1 test")) << result.out;
}

// A descriptor another thread opened without O_CLOEXEC must not leak in.
TEST(SubprocessTest, ChildGetsOnlyStdio) {
  int leaky = ::open("/dev/null", O_RDONLY);  // no O_CLOEXEC, on purpose
  ASSERT_GE(leaky, 0);
  ASSERT_EQ(200, ::dup2(leaky, 200));
  ::close(leaky);
  CommandResult result;
  Status s = RunCommand({"sh", "-c", "ls /proc/$$/fd; true"}, "", &result);
  ::close(200);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ("0\n1\n2\n", result.out);
}

TEST(SubprocessTest, FindInPathResolvesLikeExecvp) {
  std::string path;
  ASSERT_TRUE(FindInPath("sh", &path).ok());
  EXPECT_EQ('/', path[0]);
  EXPECT_TRUE(FindInPath("/bin/sh", &path).ok());
  EXPECT_EQ("/bin/sh", path);
  EXPECT_EQ(Code::kNotFound, FindInPath("/nonexistent/sh", &path).code());
  EXPECT_EQ(Code::kNotFound, FindInPath("", &path).code());
}

}  // namespace
}  // namespace ladle::env
