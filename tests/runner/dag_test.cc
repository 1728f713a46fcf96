// docs/pipeline.md "needs across stages" and "Matrix" in the executor: a
// step starts as soon as what it needs has passed, before its stage's turn,
// while deployments, approvals and failed stages still hold; a matrix's
// combinations run as steps of their own. Against the FakeEngine and a real
// store.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <mutex>
#include <signal.h>
#include <string>
#include <thread>
#include <vector>

#include "runner/exec/executor.h"
#include "runner/store/step_log.h"
#include "tests/fakes/fake_engine.h"

namespace fs = std::filesystem;

namespace ladle::runner {
namespace {

// "start STAGE/STEP" and "end STAGE/STEP" in the order they happened.
class Timeline : public RunObserver {
 public:
  void StepChanged(const RunRecord&, const std::string& stage, const StepRecord& step) override {
    std::lock_guard<std::mutex> lock(mu);
    if (step.status == kRunning) events.push_back("start " + stage + "/" + step.name);
    if (step.status == kSuccess || step.status == kFailed || step.status == kCancelled)
      events.push_back("end " + stage + "/" + step.name);
  }
  void Note(const std::string& text) override {
    std::lock_guard<std::mutex> lock(mu);
    notes.push_back(text);
  }
  // Position of `event`, or -1.
  int At(const std::string& event) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = std::find(events.begin(), events.end(), event);
    return it == events.end() ? -1 : static_cast<int>(it - events.begin());
  }
  std::mutex mu;
  std::vector<std::string> events, notes;
};

class DagTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ladle-dag-XXXXXX";
    root_ = mkdtemp(tmpl);
    fs::create_directories(root_ / "ws");
    ASSERT_TRUE(RunStore::Open(root_.string(), &store_).ok());
  }
  void TearDown() override { fs::remove_all(root_); }

  RunRecord Run(const std::string& yaml, RunOptions options = RunOptions()) {
    std::vector<Diagnostic> diags;
    EXPECT_TRUE(ParsePipeline(yaml, "p.yml", &pipeline_, &diags));
    for (const Diagnostic& d : diags) ADD_FAILURE() << d.ToString();
    options.data_dir = root_.string();
    options.workspace = (root_ / "ws").string();
    options.kill_grace = std::chrono::milliseconds(200);
    Executor executor(pipeline_, store_.get(), &engine_, &timeline_);
    RunRecord run;
    Status s = executor.Run(options, &run);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return run;
  }
  static const StepRecord& StepOf(const RunRecord& run, const std::string& stage,
                                  const std::string& step) {
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
  void Slow(const std::string& match, int ms, int exit_code = 0) {
    env::FakeOutcome o;
    o.duration = std::chrono::milliseconds(ms);
    o.exit_code = exit_code;
    engine_.AddRule(match, o);
  }

  fs::path root_;
  std::unique_ptr<RunStore> store_;
  env::FakeEngine engine_;
  Timeline timeline_;
  Pipeline pipeline_;
};

TEST_F(DagTest, AStepOfALaterStageStartsWhenItsNeedsPassedBeforeTheSlowStepEnds) {
  Slow("slow-script", 1500);
  RunRecord run = Run(R"(name: p
stages:
  - name: build
    steps:
      - {name: compile, run: "true"}
      - {name: slow, run: slow-script}
  - name: test
    steps:
      - {name: unit, run: "true", needs: [build/compile]}
      - {name: other, run: "true"}
)");
  EXPECT_EQ(kSuccess, run.status);
  const int unit = timeline_.At("start test/unit");
  ASSERT_GE(unit, 0);
  EXPECT_GT(unit, timeline_.At("end build/compile"));
  EXPECT_LT(unit, timeline_.At("end build/slow")) << ::testing::PrintToString(timeline_.events);
  // A step without needs still waits for its stage's turn.
  EXPECT_GT(timeline_.At("start test/other"), timeline_.At("end build/slow"));
  EXPECT_EQ(kSuccess, StageOf(run, "test").status);
  EXPECT_EQ(kSuccess, StageOf(run, "build").status);
  RunRecord stored;
  ASSERT_TRUE(store_->GetRun(run.id, &stored).ok());
  EXPECT_EQ(kSuccess, StepOf(stored, "test", "unit").status);
  bool noted = false;
  for (const std::string& n : timeline_.notes)
    noted |= n == "stage test: step unit starts before its stage's turn: build/compile passed";
  EXPECT_TRUE(noted) << ::testing::PrintToString(timeline_.notes);
}

TEST_F(DagTest, ADeploymentStageWaitsForTheGatesBeforeIt) {
  Slow("slow-tests", 800);
  RunRecord run = Run(R"(name: p
stages:
  - name: build
    steps:
      - {name: compile, run: "true"}
  - name: test
    gate: {min_tests: 0}
    steps:
      - {name: slow, run: slow-tests}
  - name: staging
    environment: staging
    steps:
      - {name: ship, run: "true", needs: [build/compile]}
)");
  EXPECT_EQ(kSuccess, run.status);
  ASSERT_GE(timeline_.At("start staging/ship"), 0);
  EXPECT_GT(timeline_.At("start staging/ship"), timeline_.At("end test/slow"))
      << ::testing::PrintToString(timeline_.events);
}

TEST_F(DagTest, AFailedGateKeepsTheDeploymentFromStartingAtAll) {
  env::FakeOutcome fail;
  fail.exit_code = 1;
  fail.duration = std::chrono::milliseconds(300);
  engine_.AddRule("failing-tests", fail);
  RunRecord run = Run(R"(name: p
stages:
  - name: build
    steps:
      - {name: compile, run: "true"}
  - name: test
    gate: {min_tests: 0}
    steps:
      - {name: unit, run: failing-tests}
  - name: staging
    environment: staging
    steps:
      - {name: ship, run: "true", needs: [build/compile]}
)");
  EXPECT_EQ(kFailed, run.status);
  EXPECT_EQ(-1, timeline_.At("start staging/ship"));
  EXPECT_EQ(kSkipped, StepOf(run, "staging", "ship").status);
  EXPECT_EQ(kSkipped, StageOf(run, "staging").status);
}

TEST_F(DagTest, NoStepStartsEarlyPastADeploymentOrAnApproval) {
  Slow("slow-script", 600);
  RunRecord run = Run(R"(name: p
stages:
  - name: build
    steps:
      - {name: compile, run: "true"}
      - {name: slow, run: slow-script}
  - name: staging
    environment: staging
    when: {branch: main}
    steps:
      - {name: ship, run: "true"}
  - name: smoke
    steps:
      - {name: check, run: "true", needs: [build/compile]}
)");
  // The deployment is skipped (no branch), but not before build ended.
  EXPECT_EQ(kSuccess, run.status);
  EXPECT_GT(timeline_.At("start smoke/check"), timeline_.At("end build/slow"))
      << ::testing::PrintToString(timeline_.events);
}

TEST_F(DagTest, AStageWhoseStepsStartedEarlyReportsThemWhenAnEarlierStageFails) {
  Slow("slow-fail", 600, 1);
  Slow("early-step", 200);
  RunRecord run = Run(R"(name: p
stages:
  - name: build
    steps:
      - {name: compile, run: "true"}
      - {name: slow, run: slow-fail}
  - name: test
    steps:
      - {name: unit, run: early-step, needs: [build/compile]}
      - {name: other, run: "true"}
)");
  EXPECT_EQ(kFailed, run.status);
  EXPECT_EQ(kFailed, StageOf(run, "build").status);
  EXPECT_EQ(kSuccess, StepOf(run, "test", "unit").status);
  EXPECT_EQ(kSkipped, StepOf(run, "test", "other").status);
  EXPECT_EQ(kSkipped, StageOf(run, "test").status);
  EXPECT_EQ("stage 'build' failed; steps that started early: unit success",
            StageOf(run, "test").message);
  RunRecord stored;
  ASSERT_TRUE(store_->GetRun(run.id, &stored).ok());
  EXPECT_EQ(kSuccess, StepOf(stored, "test", "unit").status);
  EXPECT_EQ(kSkipped, StageOf(stored, "test").status);
}

TEST_F(DagTest, AnEarlyStepThatFailsFailsItsStageAndNothingLaterStartsEarly) {
  Slow("slow-script", 600);
  Slow("mid-script", 200);
  RunRecord run = Run(R"(name: p
stages:
  - name: build
    steps:
      - {name: compile, run: "true"}
      - {name: mid, run: mid-script}
      - {name: slow, run: slow-script}
  - name: test
    steps:
      - {name: unit, run: "exit 3", needs: [build/compile]}
  - name: later
    steps:
      - {name: never, run: "true", needs: [build/mid]}
)");
  EXPECT_EQ(kFailed, run.status);
  EXPECT_EQ(kSuccess, StageOf(run, "build").status);
  EXPECT_EQ(kFailed, StageOf(run, "test").status);
  EXPECT_EQ(kSkipped, StageOf(run, "later").status);
  EXPECT_EQ(-1, timeline_.At("start later/never"));
}

TEST_F(DagTest, ANeededStepOfAnEarlierStageThatWasSkippedSkipsItsDependents) {
  RunRecord run = Run(R"(name: p
stages:
  - name: build
    when: {branch: main}
    steps:
      - {name: compile, run: "true"}
  - name: test
    steps:
      - {name: unit, run: "true", needs: [build/compile]}
      - {name: lint, run: "true"}
)");
  EXPECT_EQ(kSkipped, StepOf(run, "test", "unit").status);
  EXPECT_EQ(FailureReason::kNeeds, StepOf(run, "test", "unit").failure_reason);
  EXPECT_EQ(kSuccess, StepOf(run, "test", "lint").status);
}

TEST_F(DagTest, JobsCountStepsOfEveryStage) {
  Slow("slow-script", 500);
  Slow("early-step", 500);
  RunOptions options;
  options.jobs = 2;
  RunRecord run = Run(R"(name: p
stages:
  - name: build
    steps:
      - {name: compile, run: "true"}
      - {name: slow, run: slow-script}
  - name: test
    steps:
      - {name: a, run: early-step, needs: [build/compile]}
      - {name: b, run: early-step, needs: [build/compile]}
)",
                      options);
  EXPECT_EQ(kSuccess, run.status);
  // With two jobs, slow and one early step run; the second waits for one.
  const int first_end = std::min(timeline_.At("end build/slow"), timeline_.At("end test/a"));
  EXPECT_GT(timeline_.At("start test/b"), first_end) << ::testing::PrintToString(timeline_.events);
}

TEST_F(DagTest, CancelStopsStepsThatStartedEarly) {
  Slow("slow-script", 5000);
  Slow("early-step", 5000);
  std::vector<Diagnostic> diags;
  ASSERT_TRUE(ParsePipeline(R"(name: p
stages:
  - name: build
    steps:
      - {name: compile, run: "true"}
      - {name: slow, run: slow-script}
  - name: test
    steps:
      - {name: unit, run: early-step, needs: [build/compile]}
)",
                            "p.yml", &pipeline_, &diags));
  RunOptions options;
  options.data_dir = root_.string();
  options.workspace = (root_ / "ws").string();
  options.kill_grace = std::chrono::milliseconds(200);
  Executor executor(pipeline_, store_.get(), &engine_, &timeline_);
  std::thread canceller([&] {
    for (int i = 0; i < 100 && timeline_.At("start test/unit") < 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    executor.Cancel(SIGTERM);
  });
  RunRecord run;
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(executor.Run(options, &run).ok());
  canceller.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(4));
  EXPECT_EQ(kCancelled, run.status);
  EXPECT_EQ(kCancelled, StepOf(run, "test", "unit").status);
  EXPECT_EQ(kCancelled, StageOf(run, "test").status);
}

// ---- Matrix ------------------------------------------------------------------

TEST_F(DagTest, EachCombinationRunsWithItsValuesLogAndRecord) {
  RunRecord run = Run(R"(name: p
stages:
  - name: test
    steps:
      - {name: t, run: "true", matrix: {GO: ["1.21", "1.22"], OS: [linux]}}
      - {name: report, run: "true", needs: [t]}
)");
  EXPECT_EQ(kSuccess, run.status);
  const StageRecord& stage = StageOf(run, "test");
  ASSERT_EQ(3u, stage.steps.size());
  EXPECT_EQ("t.1.21-linux", stage.steps[0].name);
  EXPECT_EQ("t [GO=1.21, OS=linux]", stage.steps[0].DisplayName());
  EXPECT_EQ("t", stage.steps[1].matrix_of);
  // report waits for every combination.
  EXPECT_GT(timeline_.At("start test/report"), timeline_.At("end test/t.1.21-linux"));
  EXPECT_GT(timeline_.At("start test/report"), timeline_.At("end test/t.1.22-linux"));
  std::map<std::string, std::string> go;
  for (const env::StepSpec& spec : engine_.created())
    for (const auto& [k, v] : spec.env)
      if (k == "GO") go[spec.id] = v;
  EXPECT_EQ("1.21", go[std::to_string(run.id) + "/test/t.1.21-linux#1"]);
  EXPECT_EQ("1.22", go[std::to_string(run.id) + "/test/t.1.22-linux#1"]);
  EXPECT_TRUE(fs::exists(StepLogPath(root_.string(), run.id, "test", "t.1.22-linux")));
  RunRecord stored;
  ASSERT_TRUE(store_->GetRun(run.id, &stored).ok());
  const StepRecord& rec = StepOf(stored, "test", "t.1.22-linux");
  EXPECT_EQ("t", rec.matrix_of);
  EXPECT_EQ((std::vector<std::pair<std::string, std::string>>{{"GO", "1.22"}, {"OS", "linux"}}),
            rec.matrix_values);
  nlohmann::json j = RunToJson(stored);
  const nlohmann::json& step = j["stages"][0]["steps"][1];
  EXPECT_EQ("t.1.22-linux", step["name"]);
  EXPECT_EQ("t [GO=1.22, OS=linux]", step["display"]);
  EXPECT_EQ(nlohmann::json({{"of", "t"}, {"values", {{"GO", "1.22"}, {"OS", "linux"}}}}),
            step["matrix"]);
  EXPECT_FALSE(j["stages"][0]["steps"][2].contains("matrix"));
}

// docs/design.md "JSON shapes": a step's needs (across stages too), services
// and cache are in the run's JSON, as the pipeline said them, for the web
// UI's graph; a step without them has none of the keys.
TEST_F(DagTest, RunJsonCarriesEachStepsNeedsServicesAndCache) {
  RunRecord run = Run(R"(name: p
stages:
  - name: build
    steps:
      - {name: compile, run: "true"}
  - name: test
    steps:
      - name: unit
        run: "true"
        needs: [build/compile]
        cache: {paths: [vendor], key: {files: [go.sum]}, policy: pull}
      - {name: report, run: "true", needs: [unit]}
)");
  EXPECT_EQ(kSuccess, run.status);
  RunRecord stored;
  ASSERT_TRUE(store_->GetRun(run.id, &stored).ok());
  nlohmann::json j = RunToJson(stored);
  const nlohmann::json& compile = j["stages"][0]["steps"][0];
  const nlohmann::json& unit = j["stages"][1]["steps"][0];
  const nlohmann::json& report = j["stages"][1]["steps"][1];
  EXPECT_FALSE(compile.contains("needs")) << compile;
  EXPECT_FALSE(compile.contains("cache")) << compile;
  EXPECT_EQ(nlohmann::json::array({"build/compile"}), unit["needs"]) << unit;
  EXPECT_EQ(nlohmann::json({{"paths", {"vendor"}}, {"policy", "pull"}, {"files", {"go.sum"}}}),
            unit["cache"]);
  EXPECT_FALSE(unit.contains("services"));
  EXPECT_EQ(nlohmann::json::array({"unit"}), report["needs"]) << report;
}

TEST_F(DagTest, OneFailedCombinationSkipsWhatNeedsTheMatrix) {
  env::FakeOutcome fail;
  fail.exit_code = 1;
  engine_.AddRule("t.1.22", fail);
  RunRecord run = Run(R"(name: p
stages:
  - name: test
    steps:
      - {name: t, run: "true", matrix: {GO: ["1.21", "1.22"]}}
      - {name: report, run: "true", needs: [t]}
)");
  EXPECT_EQ(kFailed, run.status);
  EXPECT_EQ(kSuccess, StepOf(run, "test", "t.1.21").status);
  EXPECT_EQ(kFailed, StepOf(run, "test", "t.1.22").status);
  EXPECT_EQ(kSkipped, StepOf(run, "test", "report").status);
  EXPECT_EQ("step t.1.22 failed", StageOf(run, "test").message);
}

TEST(ResolveStepsTest, AMatrixStepIsSelectedWholeByNameOrInPartByValues) {
  Pipeline p;
  std::vector<Diagnostic> diags;
  ASSERT_TRUE(ParsePipeline(R"(name: p
stages:
  - name: test
    steps:
      - {name: t, run: x, matrix: {GO: ["1.21", "1.22"], OS: [linux, mac]}}
      - {name: lint, run: x}
)",
                            "p.yml", &p, &diags));
  auto names = [&](const std::string& name) {
    std::vector<StepRef> refs;
    Status s = ResolveSteps(p, name, &refs);
    std::string out = s.ok() ? "" : "error: " + s.message();
    for (const StepRef& r : refs) out += (out.empty() ? "" : " ") + r.stage + "/" + r.step;
    return out;
  };
  EXPECT_EQ("test/t.1.21-linux test/t.1.21-mac test/t.1.22-linux test/t.1.22-mac", names("t"));
  EXPECT_EQ("test/t.1.21-linux test/t.1.21-mac test/t.1.22-linux test/t.1.22-mac",
            names("test/t"));
  EXPECT_EQ("test/t.1.21-linux test/t.1.21-mac", names("t [GO=1.21]"));
  EXPECT_EQ("test/t.1.22-mac", names("test/t [GO=1.22, OS=mac]"));
  EXPECT_EQ("test/t.1.22-mac", names("t [OS=mac, GO=1.22]"));
  EXPECT_EQ("test/t.1.22-mac", names("t.1.22-mac"));
  EXPECT_EQ("error: no step 't [GO=1.23]' in p.yml", names("t [GO=1.23]"));
  StepRef ref;
  ASSERT_TRUE(ResolveStep(p, "t", &ref).ok());
  EXPECT_EQ("t", ref.step);
  ASSERT_TRUE(ResolveStep(p, "t [GO=1.22, OS=linux]", &ref).ok());
  EXPECT_EQ("t.1.22-linux", ref.step);
  Status s = ResolveStep(p, "t [GO=1.22]", &ref);
  EXPECT_EQ("step name 't [GO=1.22]' names 2 steps: test/t.1.22-linux, test/t.1.22-mac; name one, "
            "or the matrix step as written",
            s.message());
}

TEST_F(DagTest, FromAMatrixStepRunsAllItsCombinations) {
  RunOptions options;
  options.from = StepRef{"test", "t"};
  RunRecord run = Run(R"(name: p
stages:
  - name: build
    steps:
      - {name: compile, run: "true"}
  - name: test
    steps:
      - {name: lint, run: "true"}
      - {name: t, run: "true", matrix: {GO: ["1.21", "1.22"]}}
)",
                      options);
  EXPECT_EQ(kSkipped, StepOf(run, "build", "compile").status);
  EXPECT_EQ(kSkipped, StepOf(run, "test", "lint").status);
  EXPECT_EQ(kSuccess, StepOf(run, "test", "t.1.21").status);
  EXPECT_EQ(kSuccess, StepOf(run, "test", "t.1.22").status);
}

TEST_F(DagTest, NeedsWithStepRunsTheNeededStepsOfEarlierStagesFirst) {
  RunOptions options;
  options.steps = {StepRef{"test", "unit"}};
  options.needs = true;
  RunRecord run = Run(R"(name: p
stages:
  - name: build
    steps:
      - {name: compile, run: "true"}
  - name: test
    steps:
      - {name: unit, run: "true", needs: [build/compile]}
      - {name: lint, run: "true"}
)",
                      options);
  EXPECT_EQ(kSuccess, StepOf(run, "build", "compile").status);
  EXPECT_EQ(kSuccess, StepOf(run, "test", "unit").status);
  EXPECT_EQ(kSkipped, StepOf(run, "test", "lint").status);
  EXPECT_GT(timeline_.At("start test/unit"), timeline_.At("end build/compile"));
}

}  // namespace
}  // namespace ladle::runner
