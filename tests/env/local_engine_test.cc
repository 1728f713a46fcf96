#include "env/local_engine.h"
#include "tests/proc_util.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace ladle::env {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

bool WaitUntil(const std::function<bool()>& done, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return true;
}

// --- Looking at processes, independently of the code under test ---------

struct Proc {
  pid_t pid;
  std::string comm;
  char state;
  pid_t pgid;
  pid_t sid;
};

bool ReadProc(pid_t pid, Proc* proc) {
  const std::string text = ladle::testing::ReadProcFile(pid, "stat");
  size_t open = text.find('('), close = text.rfind(')');
  if (open == std::string::npos || close == std::string::npos) return false;
  proc->pid = pid;
  proc->comm = text.substr(open + 1, close - open - 1);
  std::istringstream rest(text.substr(close + 2));
  pid_t ppid;
  rest >> proc->state >> ppid >> proc->pgid >> proc->sid;
  return true;
}

bool Alive(pid_t pid) {
  Proc p;
  return ReadProc(pid, &p) && p.state != 'Z';
}

// Live processes whose environment has exactly `entry` ("NAME=value").
std::vector<Proc> ProcessesWith(const std::string& entry) {
  std::vector<Proc> found;
  for (const auto& dir : fs::directory_iterator("/proc", fs::directory_options::skip_permission_denied)) {
    const std::string name = dir.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string text = ladle::testing::ReadProcFile(dir.path() / "environ");
    const std::string nul(1, '\0');
    if ((nul + text).find(nul + entry + nul) == std::string::npos) continue;
    Proc p;
    if (ReadProc(std::stoi(name), &p) && p.state != 'Z') found.push_back(p);
  }
  return found;
}

// --- Running steps ------------------------------------------------------

// Collects output; thread-safe so that a test can watch it while Stream runs.
class TestSink : public OutputSink {
 public:
  void Write(OutputStream stream, std::string_view data) override {
    std::lock_guard<std::mutex> lock(mu_);
    (stream == OutputStream::kStdout ? out_ : err_).append(data);
    cv_.notify_all();
  }
  std::string out() {
    std::lock_guard<std::mutex> lock(mu_);
    return out_;
  }
  std::string err() {
    std::lock_guard<std::mutex> lock(mu_);
    return err_;
  }
  bool WaitForOut(const std::string& text, milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return out_.find(text) != std::string::npos; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::string out_, err_;
};

class LocalEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/ladle-local-XXXXXX";
    ASSERT_NE(nullptr, ::mkdtemp(dir));
    workspace_ = dir;
  }
  void TearDown() override {
    // Whatever a failed test left behind must not outlive it.
    for (const std::string& id : ids_) {
      for (const Proc& p : ProcessesWith(std::string(kStepIdVariable) + "=" + id)) ::kill(p.pid, SIGKILL);
    }
    fs::remove_all(workspace_);
  }

  // Ids unique across test processes running at once (ctest -j), so that
  // the /proc scans see only this test's processes.
  StepSpec Spec(const std::string& script) {
    StepSpec spec;
    spec.id = "test/" + std::to_string(::getpid()) + "/" + std::to_string(ids_.size());
    spec.script = script;
    spec.workspace = workspace_;
    ids_.push_back(spec.id);
    return spec;
  }

  static std::string Marker(const StepSpec& spec) { return std::string(kStepIdVariable) + "=" + spec.id; }

  std::unique_ptr<Step> CreateAndStart(const StepSpec& spec) {
    std::unique_ptr<Step> step;
    Status s = engine_.Create(spec, &step);
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (!s.ok()) return nullptr;
    s = step->Start();
    EXPECT_TRUE(s.ok()) << s.ToString();
    return s.ok() ? std::move(step) : nullptr;
  }

  // Streams on another thread; fails (instead of hanging) after `timeout`,
  // then kills the step's processes so that Stream can return.
  bool StreamWithin(Step* step, OutputSink* sink, const StepSpec& spec, milliseconds timeout) {
    auto done = std::async(std::launch::async, [&] { return step->Stream(sink); });
    if (done.wait_for(timeout) == std::future_status::ready) return done.get().ok();
    ADD_FAILURE() << "Stream did not return within " << timeout.count() << " ms";
    step->Kill(SIGKILL);
    for (const Proc& p : ProcessesWith(Marker(spec))) ::kill(p.pid, SIGKILL);
    done.wait();
    return false;
  }

  struct Result {
    ExitStatus status;
    std::string out, err;
  };

  Result Run(const StepSpec& spec) {
    Result r;
    std::unique_ptr<Step> step = CreateAndStart(spec);
    if (step == nullptr) return r;
    TestSink sink;
    StreamWithin(step.get(), &sink, spec, milliseconds(5000));
    EXPECT_TRUE(step->Wait(&r.status).ok());
    EXPECT_TRUE(step->Remove().ok());
    r.out = sink.out();
    r.err = sink.err();
    return r;
  }

  LocalEngine engine_;
  std::string workspace_;
  std::vector<std::string> ids_;
};

TEST_F(LocalEngineTest, NameIsLocal) { EXPECT_EQ("local", engine_.Name()); }

TEST_F(LocalEngineTest, ReportsExitCodes) {
  EXPECT_EQ(0, Run(Spec("true")).status.code);
  EXPECT_EQ(3, Run(Spec("exit 3")).status.code);
  EXPECT_EQ(255, Run(Spec("exit 255")).status.code);
  Result killed = Run(Spec("kill -KILL $$"));
  EXPECT_EQ(SIGKILL, killed.status.signal);
  EXPECT_EQ(128 + SIGKILL, killed.status.code);
  EXPECT_EQ(0, Run(Spec("exit 3")).status.signal);
}

TEST_F(LocalEngineTest, KeepsStdoutAndStderrApart) {
  Result r = Run(Spec("echo out; echo err >&2; echo more; printf tail >&2"));
  EXPECT_EQ("out\nmore\n", r.out);
  EXPECT_EQ("err\ntail", r.err);
}

TEST_F(LocalEngineTest, OverlaysTheEnvironmentInOrderAndMarksTheStep) {
  StepSpec spec = Spec(R"(printf '%s|%s|%s|%s|%s' "$A" "$B" "${EMPTY-unset}" "$HOME" "$LADLE_STEP_ID"; )"
                       R"(test "$PATH" = "$HOST_PATH")");
  spec.env = {{"A", "1"}, {"B", "two words"}, {"A", "3"}, {"EMPTY", ""}, {"HOME", "/overridden"},
              {"HOST_PATH", ::getenv("PATH")}};
  Result r = Run(spec);
  EXPECT_EQ("3|two words||/overridden|" + spec.id, r.out);
  EXPECT_EQ(0, r.status.code) << "the host's PATH did not reach the step";
}

// docs/backends.md "Environment": under ladle serve only the base of the
// host's environment reaches a step; under ladle run all of it.
TEST_F(LocalEngineTest, WithoutTheHostEnvironmentOnlyItsBaseReachesTheStep) {
  ASSERT_EQ(0, ::setenv("LADLE_TEST_SERVER_TOKEN", "s3cret", 1));
  ASSERT_EQ(0, ::setenv("LC_TEST_LOCALE", "kept", 1));
  const std::string script =
      R"(printf '%s|%s|%s' "${LADLE_TEST_SERVER_TOKEN-unset}" "${LC_TEST_LOCALE-unset}" "$A"; )"
      R"(test "$PATH" = "$HOST_PATH")";
  StepSpec spec = Spec(script);
  spec.env = {{"A", "own"}, {"HOST_PATH", ::getenv("PATH")}};
  spec.host_environment = false;
  Result r = Run(spec);
  EXPECT_EQ("unset|kept|own", r.out);
  EXPECT_EQ(0, r.status.code) << "the host's PATH did not reach the step";
  StepSpec inherit = Spec(script);
  inherit.env = spec.env;
  r = Run(inherit);
  EXPECT_EQ("s3cret|kept|own", r.out);
  ::unsetenv("LADLE_TEST_SERVER_TOKEN");
  ::unsetenv("LC_TEST_LOCALE");
}

TEST_F(LocalEngineTest, RunsInTheWorkdir) {
  fs::create_directories(workspace_ + "/sub/dir");
  StepSpec spec = Spec("pwd -P");
  spec.workdir = "sub/dir";
  EXPECT_EQ(fs::canonical(workspace_).string() + "/sub/dir\n", Run(spec).out);
  spec = Spec("pwd -P");
  EXPECT_EQ(fs::canonical(workspace_).string() + "\n", Run(spec).out);
}

TEST_F(LocalEngineTest, CreateFailsForAMissingWorkdir) {
  StepSpec spec = Spec("true");
  spec.workdir = "nope";
  std::unique_ptr<Step> step;
  Status s = engine_.Create(spec, &step);
  EXPECT_EQ(Code::kNotFound, s.code());
  EXPECT_EQ("workdir 'nope' does not exist in the workspace", s.message());
  EXPECT_EQ(nullptr, step);

  spec.workspace = workspace_ + "/gone";
  spec.workdir = "";
  EXPECT_EQ("workspace '" + spec.workspace + "' does not exist", engine_.Create(spec, &step).message());
}

TEST_F(LocalEngineTest, CreateRejectsAnUnusableEnvironment) {
  StepSpec spec = Spec("true");
  spec.env = {{"A=B", "1"}};
  std::unique_ptr<Step> step;
  Status s = engine_.Create(spec, &step);
  EXPECT_EQ(Code::kInvalid, s.code());
  EXPECT_EQ("invalid environment variable name 'A=B'", s.message());
}

TEST_F(LocalEngineTest, ShellStopsAtTheFirstFailingCommand) {
  Result r = Run(Spec("echo one\nfalse\necho two"));
  EXPECT_EQ("one\n", r.out);
  EXPECT_EQ(1, r.status.code);
}

TEST_F(LocalEngineTest, StartTwiceIsAnError) {
  StepSpec spec = Spec("true");
  std::unique_ptr<Step> step = CreateAndStart(spec);
  ASSERT_NE(nullptr, step);
  EXPECT_EQ(Code::kPrecondition, step->Start().code());
  TestSink sink;
  EXPECT_TRUE(StreamWithin(step.get(), &sink, spec, milliseconds(5000)));
}

// A background job holding stdout would keep the pipe open forever.
TEST_F(LocalEngineTest, BackgroundJobHoldingTheOutputDoesNotHangTheStep) {
  StepSpec spec = Spec("sleep 1000 & echo $!");
  std::unique_ptr<Step> step = CreateAndStart(spec);
  ASSERT_NE(nullptr, step);
  TestSink sink;
  auto start = Clock::now();
  ASSERT_TRUE(StreamWithin(step.get(), &sink, spec, milliseconds(5000)));
  EXPECT_LT(SecondsSince(start), 1.0);  // TERM ends sleep at once: no grace wait
  ExitStatus status;
  ASSERT_TRUE(step->Wait(&status).ok());
  EXPECT_EQ(0, status.code);
  pid_t sleep_pid = std::stoi(sink.out());
  EXPECT_TRUE(WaitUntil([&] { return !Alive(sleep_pid); }, milliseconds(500)));
  EXPECT_TRUE(ProcessesWith(Marker(spec)).empty());
}

// Not holding the pipes, it would not block Stream: it must still be ended.
TEST_F(LocalEngineTest, NothingOfTheStepOutlivesStream) {
  // Waits for setsid to have happened, or the group kill alone would do.
  StepSpec spec = Spec(
      "sleep 1000 >/dev/null 2>&1 &\n"
      "setsid sleep 1000 >/dev/null 2>&1 &\n"
      "until [ \"$(cut -d' ' -f6 /proc/$!/stat)\" = $! ]; do sleep 0.01; done\n"
      "echo started");
  Result r = Run(spec);
  EXPECT_EQ("started\n", r.out);
  EXPECT_TRUE(ProcessesWith(Marker(spec)).empty());
}

TEST_F(LocalEngineTest, KillTermEndsTheStepWithSignal15) {
  StepSpec spec = Spec("echo ready; sleep 1000");
  std::unique_ptr<Step> step = CreateAndStart(spec);
  ASSERT_NE(nullptr, step);
  TestSink sink;
  auto streamed = std::async(std::launch::async, [&] { return step->Stream(&sink); });
  ASSERT_TRUE(sink.WaitForOut("ready", milliseconds(2000)));
  auto start = Clock::now();
  step->Kill(SIGTERM);
  ASSERT_EQ(std::future_status::ready, streamed.wait_for(milliseconds(2000)));
  EXPECT_LT(SecondsSince(start), 1.0);
  ExitStatus status;
  ASSERT_TRUE(step->Wait(&status).ok());
  EXPECT_EQ(SIGTERM, status.signal);
  EXPECT_EQ(128 + SIGTERM, status.code);
  EXPECT_TRUE(ProcessesWith(Marker(spec)).empty());
}

TEST_F(LocalEngineTest, ScriptIgnoringTermNeedsKill) {
  StepSpec spec = Spec("trap '' TERM; echo ready; sleep 1000");
  std::unique_ptr<Step> step = CreateAndStart(spec);
  ASSERT_NE(nullptr, step);
  TestSink sink;
  auto streamed = std::async(std::launch::async, [&] { return step->Stream(&sink); });
  ASSERT_TRUE(sink.WaitForOut("ready", milliseconds(2000)));
  step->Kill(SIGTERM);
  EXPECT_EQ(std::future_status::timeout, streamed.wait_for(milliseconds(300)));
  EXPECT_FALSE(ProcessesWith(Marker(spec)).empty());
  step->Kill(SIGKILL);
  ASSERT_EQ(std::future_status::ready, streamed.wait_for(milliseconds(2000)));
  ExitStatus status;
  ASSERT_TRUE(step->Wait(&status).ok());
  EXPECT_EQ(SIGKILL, status.signal);
  EXPECT_EQ(128 + SIGKILL, status.code);
}

// setsid takes a process out of the step's group: kill(-pgid) misses it.
TEST_F(LocalEngineTest, KillReachesAProcessThatLeftTheGroup) {
  StepSpec spec = Spec("setsid sleep 1000 & sleep 1000");
  std::unique_ptr<Step> step = CreateAndStart(spec);
  ASSERT_NE(nullptr, step);
  Proc escaped{};
  ASSERT_TRUE(WaitUntil([&] {
    for (const Proc& p : ProcessesWith(Marker(spec))) {
      if (p.comm == "sleep" && p.sid == p.pid) escaped = p;
    }
    return escaped.pid != 0;
  }, milliseconds(2000)));
  // No Stream is running: only Kill can end it.
  step->Kill(SIGTERM);
  EXPECT_TRUE(WaitUntil([&] { return !Alive(escaped.pid); }, milliseconds(2000)))
      << "setsid'd sleep " << escaped.pid << " survived Kill";
  TestSink sink;
  ASSERT_TRUE(StreamWithin(step.get(), &sink, spec, milliseconds(5000)));
  ExitStatus status;
  ASSERT_TRUE(step->Wait(&status).ok());
  EXPECT_EQ(SIGTERM, status.signal);
}

TEST_F(LocalEngineTest, KillEndsTheWholeTree) {
  StepSpec spec = Spec("sh -c \"sh -c 'sleep 1000; true'; true\"; true");
  std::unique_ptr<Step> step = CreateAndStart(spec);
  ASSERT_NE(nullptr, step);
  ASSERT_TRUE(WaitUntil([&] { return ProcessesWith(Marker(spec)).size() == 4; }, milliseconds(2000)))
      << "expected sh -> sh -> sh -> sleep";
  step->Kill(SIGTERM);
  EXPECT_TRUE(WaitUntil([&] { return ProcessesWith(Marker(spec)).empty(); }, milliseconds(2000)));
  TestSink sink;
  ASSERT_TRUE(StreamWithin(step.get(), &sink, spec, milliseconds(5000)));
  ExitStatus status;
  ASSERT_TRUE(step->Wait(&status).ok());
  EXPECT_EQ(SIGTERM, status.signal);
}

TEST_F(LocalEngineTest, RemoveEndsAStepThatWasNeverStreamed) {
  StepSpec spec = Spec("sleep 1000");
  std::unique_ptr<Step> step = CreateAndStart(spec);
  ASSERT_NE(nullptr, step);
  ASSERT_TRUE(WaitUntil([&] { return !ProcessesWith(Marker(spec)).empty(); }, milliseconds(2000)));
  EXPECT_TRUE(step->Remove().ok());
  EXPECT_TRUE(ProcessesWith(Marker(spec)).empty());
  EXPECT_TRUE(step->Remove().ok());  // idempotent
}

TEST_F(LocalEngineTest, KillBeforeStartAndAfterTheEndIsHarmless) {
  StepSpec spec = Spec("exit 5");
  std::unique_ptr<Step> step;
  ASSERT_TRUE(engine_.Create(spec, &step).ok());
  step->Kill(SIGKILL);
  ASSERT_TRUE(step->Start().ok());
  TestSink sink;
  ASSERT_TRUE(StreamWithin(step.get(), &sink, spec, milliseconds(5000)));
  step->Kill(SIGKILL);
  ExitStatus status;
  ASSERT_TRUE(step->Wait(&status).ok());
  EXPECT_EQ(5, status.code);
  EXPECT_TRUE(step->Remove().ok());
  step->Kill(SIGKILL);
}

TEST_F(LocalEngineTest, TwoHundredConcurrentStepsAllGetTheirExitCodes) {
  constexpr int kThreads = 8, kPerThread = 25;
  std::vector<StepSpec> specs;
  for (int i = 0; i < kThreads * kPerThread; ++i) {
    specs.push_back(Spec("echo " + std::to_string(i) + "; exit " + std::to_string(i % 256)));
  }
  std::atomic<int> wrong{0};
  std::vector<std::string> errors(specs.size());
  auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t * kPerThread; i < (t + 1) * kPerThread; ++i) {
        std::unique_ptr<Step> step;
        TestSink sink;
        ExitStatus status;
        Status s = engine_.Create(specs[i], &step);
        if (s.ok()) s = step->Start();
        if (s.ok()) s = step->Stream(&sink);
        if (s.ok()) s = step->Wait(&status);
        if (s.ok()) s = step->Remove();
        if (!s.ok() || status.code != i % 256 || sink.out() != std::to_string(i) + "\n") {
          ++wrong;
          errors[i] = s.ToString() + " code " + std::to_string(status.code) + " out " + sink.out();
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(0, wrong.load());
  for (size_t i = 0; i < errors.size(); ++i) {
    if (!errors[i].empty()) ADD_FAILURE() << "step " << i << ": " << errors[i];
  }
  RecordProperty("seconds", std::to_string(SecondsSince(start)));
}

// Checks content and the largest chunk, keeps nothing: Stream itself must not
// buffer, whatever a step prints.
class CountingSink : public OutputSink {
 public:
  void Write(OutputStream stream, std::string_view data) override {
    if (stream == OutputStream::kStderr) {
      err.append(data);
      return;
    }
    max_chunk = std::max(max_chunk, data.size());
    for (char c : data) {
      if (c != kPattern[bytes % (sizeof kPattern - 1)]) ++mismatches;
      ++bytes;
    }
    if (++calls % 64 == 0) max_rss_kb = std::max(max_rss_kb, RssKb());
  }
  static long RssKb() {
    std::ifstream in("/proc/self/status");
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    }
    return 0;
  }
  static constexpr char kPattern[] = "0123456789\n";
  size_t bytes = 0, mismatches = 0, max_chunk = 0, calls = 0;
  long max_rss_kb = 0;
  std::string err;
};

TEST_F(LocalEngineTest, LargeOutputArrivesIntactInBoundedChunks) {
  constexpr size_t kBytes = 50'000'000;
  StepSpec spec = Spec("yes 0123456789 | head -c " + std::to_string(kBytes) + "; echo done >&2");
  std::unique_ptr<Step> step = CreateAndStart(spec);
  ASSERT_NE(nullptr, step);
  CountingSink sink;
  const long rss_before = CountingSink::RssKb();
  ASSERT_TRUE(StreamWithin(step.get(), &sink, spec, milliseconds(20000)));
  EXPECT_EQ(kBytes, sink.bytes);
  EXPECT_EQ(0u, sink.mismatches);
  EXPECT_EQ("done\n", sink.err);
  EXPECT_LE(sink.max_chunk, Subprocess::kReadChunk);
  EXPECT_LT(sink.max_rss_kb - rss_before, 8 * 1024) << "memory grew with the output";
  ExitStatus status;
  ASSERT_TRUE(step->Wait(&status).ok());
  EXPECT_EQ(0, status.code);
}

}  // namespace
}  // namespace ladle::env
