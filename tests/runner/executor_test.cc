// The executor's policy (order, needs, timeouts, cancel, retries, gates,
// selection, approval, masking) against the FakeEngine and a real store.
#include "runner/exec/executor.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/fakes/fake_engine.h"

namespace fs = std::filesystem;

namespace ladle::runner {
namespace {

// Records the order of step starts and answers approval questions.
class Recorder : public RunObserver {
 public:
  void StepChanged(const RunRecord&, const std::string& stage, const StepRecord& step) override {
    std::lock_guard<std::mutex> lock(mu);
    if (step.status == kRunning) started.push_back(stage + "/" + step.name);
  }
  void Note(const std::string& text) override {
    std::lock_guard<std::mutex> lock(mu);
    notes.push_back(text);
  }
  bool Approve(const std::string&) override { return approve; }
  std::mutex mu;
  std::vector<std::string> started, notes;
  bool approve = false;
};

class ExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ladle-exec-XXXXXX";
    root_ = mkdtemp(tmpl);
    fs::create_directories(root_ / "ws");
    ASSERT_TRUE(RunStore::Open(root_.string(), &store_).ok());
  }
  void TearDown() override { fs::remove_all(root_); }

  RunRecord Run(const std::string& yaml, RunOptions options = RunOptions()) {
    std::vector<Diagnostic> diags;
    EXPECT_TRUE(ParsePipeline(yaml, "p.yml", &pipeline_, &diags)) << Diags(diags);
    options.data_dir = root_.string();
    options.workspace = (root_ / "ws").string();
    if (options.kill_grace == std::chrono::seconds(5)) options.kill_grace = std::chrono::milliseconds(200);
    Executor executor(pipeline_, store_.get(), &engine_, &recorder_);
    executor_ = &executor;
    RunRecord run;
    Status s = executor.Run(options, &run);
    outside_failure_ = executor.outside_failure();
    executor_ = nullptr;
    EXPECT_TRUE(s.ok()) << s.ToString();
    return run;
  }
  static std::string Diags(const std::vector<Diagnostic>& diags) {
    std::string out;
    for (const Diagnostic& d : diags) out += d.ToString() + "\n";
    return out;
  }
  static const StepRecord& StepOf(const RunRecord& run, const std::string& stage, const std::string& step) {
    for (const StageRecord& s : run.stages)
      if (s.name == stage)
        for (const StepRecord& st : s.steps)
          if (st.name == step) return st;
    static StepRecord none;
    return none;
  }
  static const StageRecord& StageOf(const RunRecord& run, const std::string& stage) {
    for (const StageRecord& s : run.stages)
      if (s.name == stage) return s;
    static StageRecord none;
    return none;
  }
  static std::string Env(const env::StepSpec& spec, const std::string& key) {
    std::string value = "<unset>";
    for (const auto& [k, v] : spec.env)
      if (k == key) value = v;
    for (const auto& [k, v] : spec.secrets)  // set after env
      if (k == key) value = v;
    return value;
  }

  fs::path root_;
  std::unique_ptr<RunStore> store_;
  env::FakeEngine engine_;
  Recorder recorder_;
  Pipeline pipeline_;
  Executor* executor_ = nullptr;
  Status outside_failure_;
};

TEST_F(ExecutorTest, StagesRunInOrderAndNeedsOrderSteps) {
  RunRecord run = Run(R"(name: p
stages:
  - name: build
    steps:
      - {name: c, run: "true", needs: [b]}
      - {name: b, run: "true", needs: [a]}
      - {name: a, run: "true"}
  - name: test
    steps:
      - {name: t, run: "true"}
)");
  EXPECT_EQ(kSuccess, run.status);
  EXPECT_EQ((std::vector<std::string>{"build/a", "build/b", "build/c", "test/t"}), recorder_.started);
  RunRecord stored;
  ASSERT_TRUE(store_->GetRun(run.id, &stored).ok());
  EXPECT_EQ(kSuccess, StepOf(stored, "build", "c").status);
}

TEST_F(ExecutorTest, FailedStageSkipsLaterStagesAndDependents) {
  RunRecord run = Run(R"(name: p
stages:
  - name: build
    steps:
      - {name: bad, run: "exit 3"}
      - {name: dep, run: "true", needs: [bad]}
      - {name: free, run: "true"}
  - name: deploy
    steps: [{name: d, run: "true"}]
)");
  EXPECT_EQ(kFailed, run.status);
  EXPECT_EQ(3, StepOf(run, "build", "bad").exit_code.value_or(-1));
  EXPECT_EQ(FailureReason::kExitCode, StepOf(run, "build", "bad").failure_reason);
  EXPECT_EQ(kSkipped, StepOf(run, "build", "dep").status);
  EXPECT_EQ(FailureReason::kNeeds, StepOf(run, "build", "dep").failure_reason);
  EXPECT_EQ(kSuccess, StepOf(run, "build", "free").status);
  EXPECT_EQ(kSkipped, StageOf(run, "deploy").status);
  EXPECT_EQ("stage 'build' failed", StageOf(run, "deploy").message);
}

TEST_F(ExecutorTest, TimeoutSendsTermThenKill) {
  env::FakeOutcome slow;
  slow.duration = std::chrono::seconds(30);
  slow.ignores_term = true;
  engine_.AddRule("stubborn", slow);
  RunRecord run = Run(R"(name: p
stages:
  - name: s
    steps: [{name: stubborn, run: "sleep", timeout: 100ms}]
)");
  const StepRecord& step = StepOf(run, "s", "stubborn");
  EXPECT_EQ(kFailed, step.status);
  EXPECT_EQ(FailureReason::kTimeout, step.failure_reason);
  EXPECT_EQ((std::vector<env::FakeKill>{{"1/s/stubborn#1", SIGTERM}, {"1/s/stubborn#1", SIGKILL}}),
            engine_.kills());
}

TEST_F(ExecutorTest, CancelStopsRunningStepsAndSkipsTheRest) {
  env::FakeOutcome slow;
  slow.duration = std::chrono::seconds(30);
  engine_.AddRule("slow", slow);
  std::thread canceller([this] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    while (executor_ == nullptr) std::this_thread::yield();
    executor_->Cancel(SIGINT);
  });
  RunRecord run = Run(R"(name: p
stages:
  - name: s
    steps: [{name: slow, run: "sleep"}]
  - name: later
    steps: [{name: l, run: "true"}]
)");
  canceller.join();
  EXPECT_EQ(kCancelled, run.status);
  EXPECT_EQ(kCancelled, StepOf(run, "s", "slow").status);
  EXPECT_EQ(kSkipped, StageOf(run, "later").status);
  EXPECT_EQ((std::vector<env::FakeKill>{{"1/s/slow#1", SIGTERM}}), engine_.kills());
}

// docs/backends.md "keep": on-failure keeps a step that failed, not one a
// cancel stopped; the step's record names the command that enters it.
TEST_F(ExecutorTest, KeepOnFailureKeepsFailedStepsNotCancelledOnes) {
  env::FakeOutcome slow;
  slow.duration = std::chrono::seconds(30);
  engine_.AddRule("slow", slow);
  std::thread canceller([this] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    while (executor_ == nullptr) std::this_thread::yield();
    executor_->Cancel(SIGINT);
  });
  RunRecord run = Run(R"(name: p
stages:
  - name: s
    steps:
      - {name: broken, run: "exit 3", keep: on-failure}
      - {name: slow, run: "sleep", keep: on-failure}
)");
  canceller.join();
  EXPECT_EQ(kCancelled, StepOf(run, "s", "slow").status);
  EXPECT_EQ("", StepOf(run, "s", "slow").kept);
  EXPECT_EQ(kFailed, StepOf(run, "s", "broken").status);
  EXPECT_EQ("enter 1/s/broken#1", StepOf(run, "s", "broken").kept);
  EXPECT_EQ(std::vector<std::string>{"1/s/slow#1"}, engine_.removed()) << "the cancelled one goes";
}

TEST_F(ExecutorTest, RetryRunsUpToNMoreTimes) {
  RunRecord run = Run("name: p\nstages:\n  - name: s\n    steps: [{name: f, run: 'exit 1', retry: 2}]\n");
  EXPECT_EQ(3, StepOf(run, "s", "f").attempts);
  EXPECT_EQ(3u, engine_.created().size());
  EXPECT_EQ("1/s/f#3", engine_.created().back().id);
}

TEST_F(ExecutorTest, AllowFailureDoesNotFailTheStage) {
  RunRecord run = Run("name: p\nstages:\n  - name: s\n    steps: [{name: lint, run: 'exit 1', allow_failure: true}]\n");
  EXPECT_EQ(kSuccess, run.status);
  EXPECT_EQ(kFailed, StepOf(run, "s", "lint").status);
  EXPECT_TRUE(StepOf(run, "s", "lint").allow_failure);
}

TEST_F(ExecutorTest, VariablesLayerInSpecOrder) {
  RunOptions options;
  options.extra_env = {{"D", "flag"}};
  options.commit = "abc123";
  options.branch = "main";
  Run(R"(name: p
env: {A: pipeline, B: pipeline, C: pipeline, D: pipeline}
stages:
  - name: deploy
    environment: staging
    env: {B: stage, C: stage}
    steps: [{name: s, run: "true", env: {C: step}, workdir: sub}]
)",
      options);
  ASSERT_EQ(1u, engine_.created().size());
  const env::StepSpec spec = engine_.created()[0];
  EXPECT_EQ("pipeline", Env(spec, "A"));
  EXPECT_EQ("stage", Env(spec, "B"));
  EXPECT_EQ("step", Env(spec, "C"));
  EXPECT_EQ("flag", Env(spec, "D"));
  EXPECT_EQ("1", Env(spec, "LADLE_RUN"));
  EXPECT_EQ("deploy", Env(spec, "LADLE_STAGE"));
  EXPECT_EQ("s", Env(spec, "LADLE_STEP"));
  EXPECT_EQ("abc123", Env(spec, "LADLE_COMMIT"));
  EXPECT_EQ("main", Env(spec, "LADLE_BRANCH"));
  EXPECT_EQ("staging", Env(spec, "LADLE_ENVIRONMENT"));
  EXPECT_EQ("sub", spec.workdir);
  EXPECT_EQ("1", spec.labels.at("ladle.run"));
  EXPECT_EQ("deploy", spec.labels.at("ladle.stage"));
}

TEST_F(ExecutorTest, GateCountsReportsOfTheStage) {
  fs::create_directories(root_ / "ws/out");
  std::ofstream(root_ / "ws/out/a.xml")
      << "<testsuite><testcase name='x'/><testcase name='y'><failure/></testcase></testsuite>";
  RunRecord run = Run(R"(name: p
stages:
  - name: test
    gate: {min_tests: 1}
    steps: [{name: unit, run: "true", reports: {junit: "out/*.xml"}}]
  - name: ship
    steps: [{name: s, run: "true"}]
)");
  const StageRecord& test = StageOf(run, "test");
  EXPECT_EQ(kFailed, test.status);
  ASSERT_TRUE(test.tests.has_value());
  EXPECT_EQ(2, test.tests->total);
  EXPECT_EQ(1, test.tests->failed);
  EXPECT_NE(std::string::npos, test.message.find("gate failed")) << test.message;
  EXPECT_EQ(kSkipped, StageOf(run, "ship").status);
}

TEST_F(ExecutorTest, GatePassesWithEnoughTests) {
  fs::create_directories(root_ / "ws/out");
  std::ofstream(root_ / "ws/out/a.xml") << "<testsuite><testcase name='x'/><testcase name='y'/></testsuite>";
  RunRecord run = Run(R"(name: p
stages:
  - name: test
    gate: {min_tests: 2}
    steps: [{name: unit, run: "true", reports: {junit: "out/*.xml"}}]
)");
  EXPECT_EQ(kSuccess, run.status) << StageOf(run, "test").message;
  EXPECT_EQ(2, StageOf(run, "test").tests->passed);
}

TEST_F(ExecutorTest, UnreadableReportFailsTheGateEvenWithMinimumZero) {
  fs::create_directories(root_ / "ws/out");
  std::ofstream(root_ / "ws/out/a.xml") << "<testsuite><testcase name='x'";
  RunRecord run = Run(R"(name: p
stages:
  - name: test
    gate: {min_tests: 0}
    steps: [{name: unit, run: "true", reports: {junit: "out/*.xml"}}]
)");
  EXPECT_EQ(kFailed, StageOf(run, "test").status);
  EXPECT_NE(std::string::npos, StageOf(run, "test").message.find("unreadable test report"))
      << StageOf(run, "test").message;
}

TEST_F(ExecutorTest, StepOptionRunsOnlyThatStepIgnoringNeeds) {
  RunOptions options;
  options.steps = {{"build", "b"}};
  RunRecord run = Run(R"(name: p
stages:
  - name: build
    steps:
      - {name: a, run: "true"}
      - {name: b, run: "true", needs: [a]}
  - name: test
    steps: [{name: t, run: "true"}]
)",
                      options);
  EXPECT_EQ((std::vector<std::string>{"build/b"}), recorder_.started);
  EXPECT_EQ(kSkipped, StepOf(run, "build", "a").status);
  EXPECT_EQ(kSkipped, StageOf(run, "test").status);
  EXPECT_EQ(kSuccess, run.status);
}

TEST_F(ExecutorTest, FromRunsTheStepItsDependentsAndLaterStages) {
  RunOptions options;
  options.from = StepRef{"build", "b"};
  RunRecord run = Run(R"(name: p
stages:
  - name: prep
    steps: [{name: p, run: "true"}]
  - name: build
    steps:
      - {name: a, run: "true"}
      - {name: b, run: "true"}
      - {name: c, run: "true", needs: [b]}
  - name: test
    steps: [{name: t, run: "true"}]
)",
                      options);
  EXPECT_EQ((std::vector<std::string>{"build/b", "build/c", "test/t"}), recorder_.started);
  EXPECT_EQ(kSkipped, StageOf(run, "prep").status);
}

TEST_F(ExecutorTest, ManualApprovalWaitsWithoutAPerson) {
  RunRecord run = Run(R"(name: p
stages:
  - name: test
    gate: {min_tests: 0}
    steps: [{name: t, run: "true"}]
  - name: production
    environment: production
    approval: manual
    steps: [{name: deploy, run: "true"}]
  - name: after
    steps: [{name: a, run: "true"}]
)");
  EXPECT_EQ(kWaiting, run.status);
  EXPECT_EQ(kWaiting, StageOf(run, "production").status);
  EXPECT_NE(std::string::npos, StageOf(run, "production").message.find("--from production/deploy"));
  EXPECT_EQ(kSkipped, StageOf(run, "after").status);
  EXPECT_EQ((std::vector<std::string>{"test/t"}), recorder_.started);
}

TEST_F(ExecutorTest, ApprovedStageRuns) {
  recorder_.approve = true;
  RunRecord run = Run("name: p\nstages:\n  - name: prod\n    approval: manual\n    steps: [{name: d, run: 'true'}]\n");
  EXPECT_EQ(kSuccess, run.status);
}

TEST_F(ExecutorTest, SecretsAreMaskedInTheLog) {
  setenv("LADLE_TEST_SECRET", "s3cr3t-value", 1);
  env::FakeOutcome leak;
  leak.out = "the secret is s3cr3t-value\n";
  engine_.AddRule("leak", leak);
  RunRecord run = Run("name: p\nsecrets: [LADLE_TEST_SECRET]\nstages:\n  - name: s\n    steps: [{name: leak, run: leak}]\n");
  std::ifstream in(StepLogPath(root_.string(), run.id, "s", "leak"));
  std::stringstream log;
  log << in.rdbuf();
  EXPECT_EQ("o the secret is ***\n", log.str());
  EXPECT_EQ("s3cr3t-value", Env(engine_.created()[0], "LADLE_TEST_SECRET"));
}

TEST_F(ExecutorTest, JobsBoundsParallelSteps) {
  env::FakeOutcome slow;
  slow.duration = std::chrono::milliseconds(200);
  engine_.AddRule("sleep", slow);
  RunOptions options;
  options.jobs = 2;
  auto start = std::chrono::steady_clock::now();
  Run(R"(name: p
stages:
  - name: s
    steps:
      - {name: a, run: sleep}
      - {name: b, run: sleep}
      - {name: c, run: sleep}
      - {name: d, run: sleep}
)",
      options);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, std::chrono::milliseconds(400)) << "4 steps of 200 ms, 2 at a time";
}

TEST_F(ExecutorTest, OutsideDependencyFailureIsReported) {
  env::FakeOutcome down;
  down.create_error = Status::Unavailable("docker daemon at unix:///x.sock: connection refused");
  engine_.AddRule("build", down);
  RunRecord run = Run("name: p\nstages:\n  - name: s\n    steps: [{name: build, run: make}]\n");
  EXPECT_EQ(kFailed, run.status);
  EXPECT_EQ(FailureReason::kError, StepOf(run, "s", "build").failure_reason);
  EXPECT_EQ(Code::kUnavailable, outside_failure_.code());
  EXPECT_EQ(3, outside_failure_.ExitCode());
}

// docs/design.md "Errors": a log cut short by a full disk fails its step
// (/dev/full stands in for the disk: every write to it is ENOSPC).
TEST_F(ExecutorTest, LogThatCannotBeWrittenFailsTheStep) {
  env::FakeOutcome chatty;
  chatty.out = std::string(200000, 'x') + "\n";
  engine_.AddRule("chatty", chatty);
  const fs::path log = StepLogPath(root_.string(), 1, "s", "a");
  fs::create_directories(log.parent_path());
  fs::create_symlink("/dev/full", log);
  RunRecord run = Run("name: p\nstages:\n  - name: s\n    steps: [{name: a, run: chatty}]\n");
  ASSERT_EQ(1, run.id);
  EXPECT_EQ(kFailed, run.status);
  EXPECT_EQ(kFailed, StepOf(run, "s", "a").status);
  EXPECT_EQ(FailureReason::kError, StepOf(run, "s", "a").failure_reason);
  bool named = false;
  for (const std::string& note : recorder_.notes) named |= note.find("No space left on device") != std::string::npos;
  EXPECT_TRUE(named) << "the step's failure names the reason";
}

TEST(ResolveStepTest, BareNamesMustBeUnique) {
  Pipeline p;
  p.file = "p.yml";
  p.stages = {Stage(), Stage()};
  p.stages[0].name = "build";
  p.stages[1].name = "deploy";
  p.stages[0].steps = {Step(), Step()};
  p.stages[0].steps[0].name = "run";
  p.stages[0].steps[1].name = "compile";
  p.stages[1].steps = {Step()};
  p.stages[1].steps[0].name = "run";
  StepRef ref;
  ASSERT_TRUE(ResolveStep(p, "compile", &ref).ok());
  EXPECT_EQ("build", ref.stage);
  ASSERT_TRUE(ResolveStep(p, "deploy/run", &ref).ok());
  EXPECT_EQ("deploy", ref.stage);
  Status s = ResolveStep(p, "run", &ref);
  EXPECT_EQ("step name 'run' is ambiguous: build/run, deploy/run; name it as STAGE/STEP", s.message());
  EXPECT_EQ(2, s.ExitCode());
}

}  // namespace
}  // namespace ladle::runner
