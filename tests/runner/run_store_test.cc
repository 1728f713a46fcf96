#include "runner/run_store.h"

#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "core/sqlite.h"

namespace ladle::runner {
namespace {

class RunStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ladle_run_store_test.XXXXXX";
    ASSERT_NE(nullptr, mkdtemp(tmpl));
    dir_ = tmpl;
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  void Reopen() {
    store_.reset();
    Status s = RunStore::Open(dir_, &store_);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  // A run of two stages: build (compile, lint) and deploy (push).
  static RunRecord SampleRun(const std::string& repo = "webshop",
                             const std::string& branch = "main") {
    RunRecord run;
    run.repo = repo;
    run.pipeline = "webshop";
    run.file = "/src/webshop/ladle.yml";
    run.commit = "0123abcd";
    run.branch = branch;
    run.status = kRunning;
    run.created_at = "2026-11-29T10:04:49.000Z";
    run.started_at = "2026-11-29T10:04:50.000Z";
    StageRecord build{"build", kRunning, "", std::nullopt, "", {}};
    build.steps.push_back(StepRecord{"compile", kRunning, std::nullopt, 1,
                                     "2026-11-29T10:04:50.500Z", "", "", false});
    build.steps.push_back(StepRecord{"lint", kQueued, std::nullopt, 0, "", "", "", true});
    StageRecord deploy{"deploy", kQueued, "staging", std::nullopt, "", {}};
    deploy.steps.push_back(StepRecord{"push", kQueued, std::nullopt, 0, "", "", "", false});
    run.stages = {build, deploy};
    return run;
  }

  RunRecord Get(int64_t id) {
    RunRecord run;
    Status s = store_->GetRun(id, &run);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return run;
  }

  // "id:status" of each listed run, newest first.
  std::string List(const RunFilter& filter) {
    std::vector<RunRecord> runs;
    Status s = store_->ListRuns(filter, &runs);
    if (!s.ok()) return "error: " + s.ToString();
    std::string out;
    for (const RunRecord& run : runs) {
      out += (out.empty() ? "" : " ") + std::to_string(run.id) + ":" + run.status;
      EXPECT_TRUE(run.stages.empty());
    }
    return out;
  }

  // "stage(status)[step:status,...]" for every stage, in order.
  static std::string Shape(const RunRecord& run) {
    std::string out;
    for (const StageRecord& stage : run.stages) {
      out += stage.name + "(" + stage.status + ")[";
      for (const StepRecord& step : stage.steps) out += step.name + ":" + step.status + ",";
      out += "] ";
    }
    return out;
  }

  std::string dir_;
  std::unique_ptr<RunStore> store_;
};

TEST_F(RunStoreTest, CreateAndGetKeepOrder) {
  RunRecord run = SampleRun();
  // Names that sort the other way round than declared.
  run.stages[0].name = "zeta";
  run.stages[0].steps[0].name = "z-step";
  ASSERT_TRUE(store_->CreateRun(&run).ok());
  EXPECT_EQ(1, run.id);
  RunRecord got = Get(run.id);
  EXPECT_EQ("zeta(running)[z-step:running,lint:queued,] deploy(queued)[push:queued,] ",
            Shape(got));
  EXPECT_EQ("webshop", got.repo);
  EXPECT_EQ("/src/webshop/ladle.yml", got.file);
  EXPECT_EQ("0123abcd", got.commit);
  EXPECT_EQ("2026-11-29T10:04:49.000Z", got.created_at);
  EXPECT_EQ("2026-11-29T10:04:50.000Z", got.started_at);
  EXPECT_EQ("", got.finished_at);
  EXPECT_EQ("staging", got.stages[1].environment);
  EXPECT_TRUE(got.stages[0].steps[1].allow_failure);
  EXPECT_EQ(1, got.stages[0].steps[0].attempts);
}

TEST_F(RunStoreTest, CreateRunDefaultsOwnerAndCreatedAt) {
  RunRecord run = SampleRun();
  run.created_at.clear();
  ASSERT_TRUE(store_->CreateRun(&run).ok());
  EXPECT_EQ(getpid(), run.owner_pid);
  EXPECT_EQ(ProcessStartTime(getpid()), run.owner_start);
  EXPECT_NE(0, run.owner_start);
  EXPECT_EQ(24u, run.created_at.size());
  RunRecord got = Get(run.id);
  EXPECT_EQ(run.created_at, got.created_at);
  EXPECT_EQ(run.owner_pid, got.owner_pid);
  EXPECT_EQ(run.owner_start, got.owner_start);
}

TEST_F(RunStoreTest, DuplicateStageFailsWholeRun) {
  RunRecord run = SampleRun();
  run.stages[1].name = "build";
  Status s = store_->CreateRun(&run);
  EXPECT_EQ(Code::kConflict, s.code());
  EXPECT_EQ(0, run.id);
  EXPECT_EQ("", List(RunFilter{}));  // nothing half-written
}

TEST_F(RunStoreTest, UpdatesRunStageAndStep) {
  RunRecord run = SampleRun();
  ASSERT_TRUE(store_->CreateRun(&run).ok());

  StepRecord step = run.stages[0].steps[0];
  step.status = kFailed;
  step.exit_code = 2;
  step.attempts = 2;
  step.finished_at = "2026-11-29T10:05:00.000Z";
  step.failure_reason = "timeout";
  ASSERT_TRUE(store_->UpdateStep(run.id, "build", step).ok());

  StageRecord stage = run.stages[0];
  stage.status = kFailed;
  stage.tests = TestCounts{10, 7, 2, 1};
  stage.message = "gate: 2 tests failed";
  ASSERT_TRUE(store_->UpdateStage(run.id, stage).ok());

  run.status = kFailed;
  run.finished_at = "2026-11-29T10:05:01.000Z";
  run.message = "stage build failed";
  run.workspace = "/data/workspaces/1";
  ASSERT_TRUE(store_->UpdateRun(run).ok());

  RunRecord got = Get(run.id);
  EXPECT_EQ(kFailed, got.status);
  EXPECT_EQ("2026-11-29T10:05:01.000Z", got.finished_at);
  EXPECT_EQ("stage build failed", got.message);
  EXPECT_EQ("/data/workspaces/1", got.workspace);
  ASSERT_TRUE(got.stages[0].tests.has_value());
  EXPECT_EQ(7, got.stages[0].tests->passed);
  EXPECT_EQ(1, got.stages[0].tests->skipped);
  EXPECT_EQ("gate: 2 tests failed", got.stages[0].message);
  const StepRecord& s = got.stages[0].steps[0];
  EXPECT_EQ(kFailed, s.status);
  EXPECT_EQ(std::optional<int>(2), s.exit_code);
  EXPECT_EQ(2, s.attempts);
  EXPECT_EQ("timeout", s.failure_reason);
  EXPECT_EQ("2026-11-29T10:05:00.000Z", s.finished_at);

  // Clearing optional fields stores NULL again.
  stage.tests.reset();
  ASSERT_TRUE(store_->UpdateStage(run.id, stage).ok());
  EXPECT_FALSE(Get(run.id).stages[0].tests.has_value());
}

TEST_F(RunStoreTest, UpdatesOfMissingThingsAreNotFound) {
  RunRecord run = SampleRun();
  ASSERT_TRUE(store_->CreateRun(&run).ok());
  RunRecord missing = run;
  missing.id = 99;
  EXPECT_EQ("run 99 not found", store_->UpdateRun(missing).message());
  StageRecord stage;
  stage.name = "nope";
  EXPECT_EQ("stage nope of run 1 not found", store_->UpdateStage(run.id, stage).message());
  StepRecord step;
  step.name = "nope";
  Status s = store_->UpdateStep(run.id, "build", step);
  EXPECT_EQ(Code::kNotFound, s.code());
  EXPECT_EQ("step build/nope of run 1 not found", s.message());
  RunRecord out;
  EXPECT_EQ(Code::kNotFound, store_->GetRun(42, &out).code());
}

TEST_F(RunStoreTest, ListFiltersAndPagesNewestFirst) {
  const char* repos[] = {"a", "b", "a", "a", "b"};
  const char* branches[] = {"main", "main", "dev", "main", "dev"};
  for (int i = 0; i < 5; ++i) {
    RunRecord run = SampleRun(repos[i], branches[i]);
    run.status = i == 3 ? kFailed : kSuccess;
    ASSERT_TRUE(store_->CreateRun(&run).ok());
  }
  EXPECT_EQ("5:success 4:failed 3:success 2:success 1:success", List(RunFilter{}));
  EXPECT_EQ("4:failed 3:success 1:success", List(RunFilter{"a", "", "", 50, 0}));
  EXPECT_EQ("4:failed 2:success 1:success", List(RunFilter{"", "main", "", 50, 0}));
  EXPECT_EQ("4:failed 1:success", List(RunFilter{"a", "main", "", 50, 0}));
  EXPECT_EQ("4:failed", List(RunFilter{"", "", kFailed, 50, 0}));
  EXPECT_EQ("", List(RunFilter{"c", "", "", 50, 0}));
  // Paging: two at a time, each page below the last id seen.
  EXPECT_EQ("5:success 4:failed", List(RunFilter{"", "", "", 2, 0}));
  EXPECT_EQ("3:success 2:success", List(RunFilter{"", "", "", 2, 4}));
  EXPECT_EQ("1:success", List(RunFilter{"", "", "", 2, 2}));
  EXPECT_EQ("3:success 1:success", List(RunFilter{"a", "", "", 0, 4}));  // 0: no limit
}

TEST_F(RunStoreTest, FindLastSuccessfulStep) {
  for (const char* status : {kSuccess, kSuccess, kFailed}) {
    RunRecord run = SampleRun();
    run.stages[0].steps[0].status = status;
    ASSERT_TRUE(store_->CreateRun(&run).ok());
  }
  int64_t id = -1;
  ASSERT_TRUE(store_->FindLastSuccessfulStep("/src/webshop/ladle.yml", "build", "compile", 0,
                                             &id).ok());
  EXPECT_EQ(2, id);
  ASSERT_TRUE(store_->FindLastSuccessfulStep("/src/webshop/ladle.yml", "build", "compile", 2,
                                             &id).ok());
  EXPECT_EQ(1, id);
  id = 0;  // the in-out form: no bound
  ASSERT_TRUE(store_->FindLastSuccessfulStep("/src/webshop/ladle.yml", "build", "compile",
                                             &id).ok());
  EXPECT_EQ(2, id);
  ASSERT_TRUE(store_->FindLastSuccessfulStep("/src/webshop/ladle.yml", "build", "lint", 0,
                                             &id).ok());
  EXPECT_EQ(0, id);
  ASSERT_TRUE(store_->FindLastSuccessfulStep("other.yml", "build", "compile", 0, &id).ok());
  EXPECT_EQ(0, id);
}

TEST_F(RunStoreTest, RunToJsonHasTheSpecShape) {
  RunRecord run = SampleRun();
  run.id = 12;
  run.stages[0].tests = TestCounts{3, 2, 1, 0};
  run.stages[0].message = "gate: 1 test failed";
  run.stages[0].steps[0].exit_code = 0;
  run.stages[0].steps[0].status = kSuccess;
  run.stages[0].steps[0].finished_at = "2026-11-29T10:04:55.000Z";
  run.stages[0].steps[1].status = kFailed;
  run.stages[0].steps[1].exit_code = 1;
  run.stages[0].steps[1].failure_reason = "exit_code";
  EXPECT_EQ(nlohmann::json::parse(R"({
    "id": 12, "repo": "webshop", "pipeline": "webshop", "file": "/src/webshop/ladle.yml",
    "commit": "0123abcd", "branch": "main", "status": "running",
    "created_at": "2026-11-29T10:04:49.000Z", "started_at": "2026-11-29T10:04:50.000Z",
    "finished_at": null,
    "stages": [
      {"name": "build", "status": "running", "environment": null,
       "tests": {"total": 3, "passed": 2, "failed": 1, "skipped": 0},
       "message": "gate: 1 test failed",
       "steps": [
         {"name": "compile", "status": "success", "exit_code": 0, "attempts": 1,
          "started_at": "2026-11-29T10:04:50.500Z", "finished_at": "2026-11-29T10:04:55.000Z",
          "failure_reason": null},
         {"name": "lint", "status": "failed", "exit_code": 1, "attempts": 0,
          "started_at": null, "finished_at": null, "failure_reason": "exit_code",
          "allow_failure": true}]},
      {"name": "deploy", "status": "queued", "environment": "staging", "tests": null,
       "steps": [
         {"name": "push", "status": "queued", "exit_code": null, "attempts": 0,
          "started_at": null, "finished_at": null, "failure_reason": null}]}],
    "deployment": null,
    "trigger": null
  })"),
            RunToJson(run));
  run.message = "stage build failed";
  EXPECT_EQ("stage build failed", RunToJson(run)["message"]);
}

TEST_F(RunStoreTest, RunToJsonOfStoredRunMatchesRecord) {
  RunRecord run = SampleRun();
  run.owner_pid = 1;  // not part of the JSON
  ASSERT_TRUE(store_->CreateRun(&run).ok());
  EXPECT_EQ(RunToJson(run), RunToJson(Get(run.id)));
}

// A pid that is certainly gone: a child that exited and was reaped.
int DeadPid() {
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  waitpid(pid, nullptr, 0);
  return pid;
}

TEST_F(RunStoreTest, MarkInterruptedOnlyTouchesRunsOfDeadOwners) {
  RunRecord dead = SampleRun();
  dead.owner_pid = DeadPid();
  dead.owner_start = 12345;
  RunRecord live = SampleRun();  // owned by this process
  RunRecord reused = SampleRun();  // our pid, but another start time: a reused pid
  reused.owner_pid = getpid();
  reused.owner_start = ProcessStartTime(getpid()) + 1;
  RunRecord finished = SampleRun();
  finished.status = kSuccess;
  finished.owner_pid = dead.owner_pid;
  for (RunRecord* run : {&dead, &live, &reused, &finished}) {
    ASSERT_TRUE(store_->CreateRun(run).ok());
  }

  std::vector<int64_t> ids;
  ASSERT_TRUE(store_->MarkInterrupted(&ids).ok());
  EXPECT_EQ((std::vector<int64_t>{dead.id, reused.id}), ids);

  RunRecord got = Get(dead.id);
  EXPECT_EQ(kInterrupted, got.status);
  EXPECT_FALSE(got.finished_at.empty());
  EXPECT_EQ("interrupted: the ladle process that ran it (pid " +
                std::to_string(dead.owner_pid) + ") is gone",
            got.message);
  EXPECT_EQ("build(interrupted)[compile:interrupted,lint:skipped,] "
            "deploy(skipped)[push:skipped,] ",
            Shape(got));
  EXPECT_FALSE(got.stages[0].steps[0].finished_at.empty());
  EXPECT_TRUE(got.stages[0].steps[1].finished_at.empty());

  EXPECT_EQ(kRunning, Get(live.id).status);
  EXPECT_EQ("build(running)[compile:running,lint:queued,] deploy(queued)[push:queued,] ",
            Shape(Get(live.id)));
  EXPECT_EQ(kInterrupted, Get(reused.id).status);
  EXPECT_EQ(kSuccess, Get(finished.id).status);

  ASSERT_TRUE(store_->MarkInterrupted(&ids).ok());
  EXPECT_TRUE(ids.empty());
}

TEST_F(RunStoreTest, MarkInterruptedSparesAnotherLiveProcess) {
  // A second "ladle" on the same data dir: a live child process.
  pid_t child = fork();
  if (child == 0) {
    pause();
    _exit(0);
  }
  RunRecord run = SampleRun();
  run.status = kWaiting;
  run.owner_pid = child;
  run.owner_start = ProcessStartTime(child);
  ASSERT_TRUE(store_->CreateRun(&run).ok());
  std::vector<int64_t> ids;
  ASSERT_TRUE(store_->MarkInterrupted(&ids).ok());
  EXPECT_TRUE(ids.empty());

  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  ASSERT_TRUE(store_->MarkInterrupted(&ids).ok());
  EXPECT_EQ(std::vector<int64_t>{run.id}, ids);
}

TEST_F(RunStoreTest, ProcessStartTimeSurvivesParenthesesInName) {
  int ready[2];
  ASSERT_EQ(0, pipe(ready));
  pid_t child = fork();
  if (child == 0) {
    prctl(PR_SET_NAME, "a) b (c) d", 0, 0, 0);
    char c = 'x';
    (void)!write(ready[1], &c, 1);
    pause();
    _exit(0);
  }
  const int64_t before = ProcessStartTime(child);
  char c;
  ASSERT_EQ(1, read(ready[0], &c, 1));
  const int64_t after = ProcessStartTime(child);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  close(ready[0]);
  close(ready[1]);
  EXPECT_NE(0, before);
  EXPECT_EQ(before, after);
  EXPECT_EQ(0, ProcessStartTime(child));
  EXPECT_EQ(0, ProcessStartTime(0));
  EXPECT_EQ(0, ProcessStartTime(-1));
}

TEST_F(RunStoreTest, ZombieOwnerCountsAsGone) {
  pid_t child = fork();
  if (child == 0) _exit(0);
  // Not reaped yet: /proc still lists it, as a zombie.
  for (int i = 0; i < 200 && ProcessStartTime(child) != 0; ++i) usleep(5000);
  EXPECT_EQ(0, ProcessStartTime(child));
  waitpid(child, nullptr, 0);
}

TEST_F(RunStoreTest, ReopenKeepsDataAndSchemaVersionIsTwo) {
  RunRecord run = SampleRun();
  ASSERT_TRUE(store_->CreateRun(&run).ok());
  Reopen();
  EXPECT_EQ("build(running)[compile:running,lint:queued,] deploy(queued)[push:queued,] ",
            Shape(Get(run.id)));
  store_.reset();

  std::unique_ptr<Database> db;
  ASSERT_TRUE(Database::Open(dir_ + "/ladle.db", &db).ok());
  int version = 0;
  ASSERT_TRUE(db->UserVersion(&version).ok());
  EXPECT_EQ(2, version);
}

TEST_F(RunStoreTest, IdsAreNotReusedAfterDelete) {
  RunRecord run = SampleRun();
  ASSERT_TRUE(store_->CreateRun(&run).ok());
  ASSERT_TRUE(store_->CreateRun(&run).ok());
  EXPECT_EQ(2, run.id);
  store_.reset();
  {
    std::unique_ptr<Database> db;
    ASSERT_TRUE(Database::Open(dir_ + "/ladle.db", &db).ok());
    ASSERT_TRUE(db->Exec("DELETE FROM runs WHERE id = 2").ok());
    std::string left;
    Statement st;
    ASSERT_TRUE(db->Prepare("SELECT count(*) FROM steps WHERE run_id = 2", &st).ok());
    bool row = false;
    ASSERT_TRUE(st.Step(&row).ok());
    EXPECT_EQ(0, st.ColumnInt(0));  // cascaded
  }
  Reopen();
  ASSERT_TRUE(store_->CreateRun(&run).ok());
  EXPECT_EQ(3, run.id);
}

TEST_F(RunStoreTest, OpenNeedsAnExistingDataDir) {
  std::unique_ptr<RunStore> store;
  Status s = RunStore::Open(dir_ + "/missing", &store);
  EXPECT_EQ(Code::kIoError, s.code());
  EXPECT_EQ("open run store: data dir " + dir_ + "/missing is not a directory", s.message());
}

}  // namespace
}  // namespace ladle::runner
