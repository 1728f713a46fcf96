#include "runner/store/run_store.h"

#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "core/pg.h"
#include "core/sqlite.h"
#include "core/base/time_util.h"
#include "runner/exec/prune.h"
#include "tests/pg_util.h"

namespace ladle::runner {
namespace {

// Every test of RunStoreTest and RunStoreQueueTest runs on both stores
// (docs/design.md "Two stores: SQLite and PostgreSQL"): "sqlite" on a temp
// data dir, "postgresql" on a new database of the fixture's server
// (tests/pg_util.h), where the store is a replica registered with a lease.
class RunStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ladle_run_store_test.XXXXXX";
    ASSERT_NE(nullptr, mkdtemp(tmpl));
    dir_ = tmpl;
    location_ = dir_;
    if (pg()) {
      LADLE_REQUIRE_POSTGRES();
      location_ = testing::PostgresServer::Get()->CreateDatabase(
          ::testing::UnitTest::GetInstance()->current_test_info()->name());
    }
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  bool pg() const { return GetParam() == "postgresql"; }

  // Another store on the same location: on PostgreSQL another replica
  // (registered with `lease` unless 0).
  std::unique_ptr<RunStore> OpenStore(std::chrono::seconds lease = std::chrono::seconds(60)) {
    std::unique_ptr<RunStore> store;
    Status s = RunStore::OpenLocation(location_, dir_, &store);
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (s.ok() && pg() && lease.count() > 0) {
      s = store->RegisterReplica("http://127.0.0.1:1", lease);
      EXPECT_TRUE(s.ok()) << s.ToString();
    }
    return store;
  }

  void Reopen() {
    store_.reset();
    store_ = OpenStore();
    ASSERT_NE(nullptr, store_);
  }

  // A connection to the test's PostgreSQL database.
  std::unique_ptr<PgConnection> Pg() {
    std::unique_ptr<PgConnection> c;
    Status s = PgConnection::Connect(location_, std::chrono::seconds(10), &c, "ladle-test");
    EXPECT_TRUE(s.ok()) << s.ToString();
    return c;
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
                                     "2026-11-29T10:04:50.500Z", "", FailureReason::kNone, false});
    build.steps.push_back(StepRecord{"lint", kQueued, std::nullopt, 0, "", "", FailureReason::kNone, true});
    StageRecord deploy{"deploy", kQueued, "staging", std::nullopt, "", {}};
    deploy.steps.push_back(StepRecord{"push", kQueued, std::nullopt, 0, "", "", FailureReason::kNone, false});
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
      out += (out.empty() ? "" : " ") + std::to_string(run.id) + ":" + ToString(run.status);
      EXPECT_TRUE(run.stages.empty());
    }
    return out;
  }

  // "stage(status)[step:status,...]" for every stage, in order.
  static std::string Shape(const RunRecord& run) {
    std::string out;
    for (const StageRecord& stage : run.stages) {
      out += stage.name + "(" + ToString(stage.status) + ")[";
      for (const StepRecord& step : stage.steps) out += step.name + ":" + ToString(step.status) + ",";
      out += "] ";
    }
    return out;
  }

  std::string dir_;
  std::string location_;  // dir_, or a postgresql:// URI
  std::unique_ptr<RunStore> store_;
};

INSTANTIATE_TEST_SUITE_P(Stores, RunStoreTest, ::testing::Values("sqlite", "postgresql"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

// What only SQLite has: the ladle.db file, PRAGMA user_version, an owner
// that is a process of this machine (pid and start time, tried with fork),
// and locks that are flocks. RunStorePgTest has the PostgreSQL
// counterparts (a schema version row, replicas' leases, advisory locks).
class RunStoreSqliteTest : public RunStoreTest {};
INSTANTIATE_TEST_SUITE_P(Stores, RunStoreSqliteTest, ::testing::Values("sqlite"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

TEST_P(RunStoreTest, CreateAndGetKeepOrder) {
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

TEST_P(RunStoreTest, CreateRunDefaultsOwnerAndCreatedAt) {
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

TEST_P(RunStoreTest, DuplicateStageFailsWholeRun) {
  RunRecord run = SampleRun();
  run.stages[1].name = "build";
  Status s = store_->CreateRun(&run);
  EXPECT_EQ(Code::kConflict, s.code());
  EXPECT_EQ(0, run.id);
  EXPECT_EQ("", List(RunFilter{}));  // nothing half-written
}

// docs/running.md "Tests by name": a step's failed tests and its kept
// container are recorded, read back and in the JSON.
TEST_P(RunStoreTest, StepKeepsItsFailedTestsAndKeptContainer) {
  RunRecord run = SampleRun();
  ASSERT_TRUE(store_->CreateRun(&run).ok());
  StepRecord step = run.stages[0].steps[0];
  step.status = kFailed;
  step.failed_tests = {FailedTest{"tests.test_cart", "test_total", "assert 120 == 121"},
                       FailedTest{"Cart", "Cart totals", "Error: \"quoted\" \xE9"}};
  step.failed_tests_more = 3;
  step.kept = "docker start ladle-kept-1 >/dev/null && docker exec -i ladle-kept-1 sh";
  ASSERT_TRUE(store_->UpdateStep(run.id, "build", step).ok());
  Reopen();
  RunRecord got = Get(run.id);
  const StepRecord& s = got.stages[0].steps[0];
  ASSERT_EQ(2u, s.failed_tests.size());
  EXPECT_EQ("tests.test_cart", s.failed_tests[0].suite);
  EXPECT_EQ("test_total", s.failed_tests[0].name);
  EXPECT_EQ("assert 120 == 121", s.failed_tests[0].message);
  EXPECT_EQ(3, s.failed_tests_more);
  EXPECT_EQ(step.kept, s.kept);
  EXPECT_EQ("tests.test_cart.test_total: assert 120 == 121", FailedTestLine(s.failed_tests[0]));
  EXPECT_EQ("Cart totals: Error: \"quoted\" \xEF\xBF\xBD", FailedTestLine(s.failed_tests[1]))
      << "invalid UTF-8 is replaced, not a broken record";

  nlohmann::json j = StepToJson(s);
  EXPECT_EQ(nlohmann::json::parse(R"([{"suite": "tests.test_cart", "name": "test_total",
                                      "message": "assert 120 == 121"}])")[0],
            j["failed_tests"][0]);
  EXPECT_EQ(3, j["failed_tests_more"]);
  EXPECT_EQ(step.kept, j["kept"]);
  // A step without either has neither key.
  nlohmann::json other = StepToJson(got.stages[0].steps[1]);
  EXPECT_FALSE(other.contains("failed_tests"));
  EXPECT_FALSE(other.contains("kept"));

  ASSERT_TRUE(store_->ClearKept().ok());
  EXPECT_EQ("", Get(run.id).stages[0].steps[0].kept);
}

TEST_P(RunStoreTest, UpdatesRunStageAndStep) {
  RunRecord run = SampleRun();
  ASSERT_TRUE(store_->CreateRun(&run).ok());

  StepRecord step = run.stages[0].steps[0];
  step.status = kFailed;
  step.exit_code = 2;
  step.attempts = 2;
  step.finished_at = "2026-11-29T10:05:00.000Z";
  step.failure_reason = FailureReason::kTimeout;
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
  EXPECT_EQ(FailureReason::kTimeout, s.failure_reason);
  EXPECT_EQ("2026-11-29T10:05:00.000Z", s.finished_at);

  // Clearing optional fields stores NULL again.
  stage.tests.reset();
  ASSERT_TRUE(store_->UpdateStage(run.id, stage).ok());
  EXPECT_FALSE(Get(run.id).stages[0].tests.has_value());
}

TEST_P(RunStoreSqliteTest, StatusWordsInTheDatabaseAreReadBackOrRefused) {
  RunRecord run = SampleRun();
  run.stages[0].steps[0].failure_reason = FailureReason::kTimeout;
  ASSERT_TRUE(store_->CreateRun(&run).ok());
  {  // the words as they are stored: the text of docs/design.md "Statuses"
    std::unique_ptr<Database> db;
    ASSERT_TRUE(Database::Open(dir_ + "/ladle.db", &db).ok());
    Statement st;
    ASSERT_TRUE(db->Prepare("SELECT status, failure_reason FROM steps WHERE name = 'compile'", &st).ok());
    bool row = false;
    ASSERT_TRUE(st.Step(&row).ok() && row);
    EXPECT_EQ("running", st.ColumnText(0));
    EXPECT_EQ("timeout", st.ColumnText(1));
    // A word this ladle never writes: the read fails and names it.
    ASSERT_TRUE(db->Exec("UPDATE stages SET status = 'paused' WHERE name = 'deploy'").ok());
  }
  RunRecord back;
  Status s = store_->GetRun(run.id, &back);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(std::string::npos, s.ToString().find("unknown status 'paused' in table stages")) << s.ToString();
}

TEST_P(RunStoreTest, UpdatesOfMissingThingsAreNotFound) {
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

TEST_P(RunStoreTest, ListFiltersAndPagesNewestFirst) {
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
  EXPECT_EQ("4:failed", List(RunFilter{"", "", "failed", 50, 0}));
  EXPECT_EQ("", List(RunFilter{"c", "", "", 50, 0}));
  // Paging: two at a time, each page below the last id seen.
  EXPECT_EQ("5:success 4:failed", List(RunFilter{"", "", "", 2, 0}));
  EXPECT_EQ("3:success 2:success", List(RunFilter{"", "", "", 2, 4}));
  EXPECT_EQ("1:success", List(RunFilter{"", "", "", 2, 2}));
  EXPECT_EQ("3:success 1:success", List(RunFilter{"a", "", "", 0, 4}));  // 0: no limit
}

TEST_P(RunStoreTest, FindLastSuccessfulStep) {
  for (RunStatus status : {kSuccess, kSuccess, kFailed}) {
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

// docs/running.md "Same inputs as CI": where a run comes from is kept, and
// artifacts are found only within one project and pipeline path (two
// projects both naming their pipeline ladle.yml share a data dir).
TEST_P(RunStoreTest, SourceFieldsRoundTripAndScopeArtifactLookup) {
  RunRecord a = SampleRun();
  a.project = "/src/a";
  a.pipeline_path = "ladle.yml";
  a.dirty = true;
  a.changed_paths = {"src/x.c", "new file.txt"};
  a.tree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
  a.stages[0].steps[0].status = kSuccess;
  ASSERT_TRUE(store_->CreateRun(&a).ok());
  RunRecord b = SampleRun();
  b.project = "/src/b";
  b.pipeline_path = "ladle.yml";
  b.stages[0].steps[0].status = kSuccess;
  ASSERT_TRUE(store_->CreateRun(&b).ok());

  RunRecord back;
  ASSERT_TRUE(store_->GetRun(a.id, &back).ok());
  EXPECT_EQ("/src/a", back.project);
  EXPECT_EQ("ladle.yml", back.pipeline_path);
  EXPECT_TRUE(back.dirty);
  EXPECT_EQ(a.changed_paths, back.changed_paths);
  EXPECT_EQ(a.tree, back.tree);
  nlohmann::json j = RunToJson(back);
  EXPECT_EQ(true, j["dirty"]);
  EXPECT_EQ("/src/a", j["project"]);
  EXPECT_EQ("ladle.yml", j["pipeline_path"]);
  EXPECT_EQ(2u, j["changed_paths"].size());
  EXPECT_EQ("0123abc+dirty", ShortCommit(back.commit, back.dirty));
  EXPECT_EQ("0123abc", ShortCommit(back.commit, false));

  // UpdateRun writes them too (the executor learns them with the workspace).
  back.dirty = false;
  back.changed_paths.clear();
  ASSERT_TRUE(store_->UpdateRun(back).ok());
  ASSERT_TRUE(store_->GetRun(a.id, &back).ok());
  EXPECT_FALSE(back.dirty);
  EXPECT_TRUE(back.changed_paths.empty());

  int64_t found = 0;
  ASSERT_TRUE(store_->FindLastSuccessfulStepOf("/src/a", "ladle.yml", "build", "compile", 0, &found).ok());
  EXPECT_EQ(a.id, found);
  ASSERT_TRUE(store_->FindLastSuccessfulStepOf("/src/b", "ladle.yml", "build", "compile", 0, &found).ok());
  EXPECT_EQ(b.id, found);
  ASSERT_TRUE(store_->FindLastSuccessfulStepOf("/src/c", "ladle.yml", "build", "compile", 0, &found).ok());
  EXPECT_EQ(0, found);
  ASSERT_TRUE(store_->FindLastSuccessfulStepOf("/src/a", "ci/other.yml", "build", "compile", 0, &found).ok());
  EXPECT_EQ(0, found);
}

TEST_P(RunStoreTest, RunToJsonHasTheSpecShape) {
  RunRecord run = SampleRun();
  run.id = 12;
  run.stages[0].tests = TestCounts{3, 2, 1, 0};
  run.stages[0].message = "gate: 1 test failed";
  run.stages[0].steps[0].exit_code = 0;
  run.stages[0].steps[0].status = kSuccess;
  run.stages[0].steps[0].finished_at = "2026-11-29T10:04:55.000Z";
  run.stages[0].steps[1].status = kFailed;
  run.stages[0].steps[1].exit_code = 1;
  run.stages[0].steps[1].failure_reason = FailureReason::kExitCode;
  EXPECT_EQ(nlohmann::json::parse(R"({
    "id": 12, "repo": "webshop", "pipeline": "webshop", "file": "/src/webshop/ladle.yml",
    "commit": "0123abcd", "branch": "main", "status": "running",
    "created_at": "2026-11-29T10:04:49.000Z", "started_at": "2026-11-29T10:04:50.000Z",
    "finished_at": null, "ref": null,
    "project": "", "pipeline_path": "", "dirty": false, "changed_paths": [],
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

TEST_P(RunStoreTest, RunToJsonOfStoredRunMatchesRecord) {
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

TEST_P(RunStoreSqliteTest, MarkInterruptedOnlyTouchesRunsOfDeadOwners) {
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

TEST_P(RunStoreSqliteTest, MarkInterruptedSparesAnotherLiveProcess) {
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

TEST_P(RunStoreSqliteTest, ProcessStartTimeSurvivesParenthesesInName) {
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

TEST_P(RunStoreSqliteTest, ZombieOwnerCountsAsGone) {
  pid_t child = fork();
  if (child == 0) _exit(0);
  // Not reaped yet: /proc still lists it, as a zombie.
  for (int i = 0; i < 200 && ProcessStartTime(child) != 0; ++i) usleep(5000);
  EXPECT_EQ(0, ProcessStartTime(child));
  waitpid(child, nullptr, 0);
}

TEST_P(RunStoreTest, ReopenKeepsDataAndSchemaVersionIsCurrent) {
  RunRecord run = SampleRun();
  ASSERT_TRUE(store_->CreateRun(&run).ok());
  Reopen();
  EXPECT_EQ("build(running)[compile:running,lint:queued,] deploy(queued)[push:queued,] ",
            Shape(Get(run.id)));
  store_.reset();

  if (pg()) {  // ladle_schema_versions, part 'runs': one step so far
    PgResult r;
    ASSERT_TRUE(Pg()->Exec("SELECT version FROM ladle_schema_versions WHERE part = 'runs'", {},
                           &r).ok());
    ASSERT_EQ(1, r.rows());
    EXPECT_EQ("1", r.Text(0, 0));
    return;
  }
  std::unique_ptr<Database> db;
  ASSERT_TRUE(Database::Open(dir_ + "/ladle.db", &db).ok());
  int version = 0;
  ASSERT_TRUE(db->UserVersion(&version).ok());
  EXPECT_EQ(9, version);  // 7: triggers; 8: steps.matrix (docs/pipeline.md "Matrix"); 9: steps.plan
}

// docs/server.md "Webhook trust": a delivery id is claimed once, forgotten
// on request, and pruned once older than the time it is kept.
TEST_P(RunStoreTest, DeliveriesAreClaimedOnceAndPruned) {
  bool fresh = false;
  ASSERT_TRUE(store_->ClaimDelivery("d-1", "shop", std::chrono::hours(192), &fresh).ok());
  EXPECT_TRUE(fresh);
  ASSERT_TRUE(store_->ClaimDelivery("d-1", "shop", std::chrono::hours(192), &fresh).ok());
  EXPECT_FALSE(fresh) << "a replay";
  Reopen();
  ASSERT_TRUE(store_->ClaimDelivery("d-1", "shop", std::chrono::hours(192), &fresh).ok());
  EXPECT_FALSE(fresh) << "remembered across restarts";
  ASSERT_TRUE(store_->ForgetDelivery("d-1").ok());
  ASSERT_TRUE(store_->ClaimDelivery("d-1", "shop", std::chrono::hours(192), &fresh).ok());
  EXPECT_TRUE(fresh) << "forgotten";
  // Kept -1 s: everything is older than that, so d-1 is pruned first.
  ASSERT_TRUE(store_->ClaimDelivery("d-1", "shop", std::chrono::seconds(-1), &fresh).ok());
  EXPECT_TRUE(fresh) << "pruned";
}

TEST_P(RunStoreSqliteTest, IdsAreNotReusedAfterDelete) {
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

TEST_P(RunStoreTest, OpenNeedsAnExistingDataDir) {
  std::unique_ptr<RunStore> store;
  Status s = RunStore::OpenLocation(location_ == dir_ ? dir_ + "/missing" : location_,
                                    dir_ + "/missing", &store);
  EXPECT_EQ(Code::kIoError, s.code());
  EXPECT_EQ("open run store: data dir " + dir_ + "/missing is not a directory", s.message());
}

// ---- the server's queue, deployments and retention ----

class RunStoreQueueTest : public RunStoreTest {
 protected:
  // A queued run as the server records it (no stages).
  static RunRecord Queued(const std::string& repo, const std::string& branch,
                          const std::string& commit) {
    RunRecord run;
    run.repo = repo;
    run.branch = branch;
    run.commit = commit;
    run.trigger = "push";
    return run;
  }
  int64_t Enqueue(RunRecord run, std::vector<int64_t>* superseded = nullptr) {
    std::vector<int64_t> ignored;
    Status s = store_->EnqueueRun(&run, superseded ? superseded : &ignored);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return run.id;
  }
  int64_t Deploy(const std::string& env, int64_t run_id, bool rollback = false) {
    DeploymentRecord d;
    d.environment = env;
    d.run_id = run_id;
    d.stage = env;
    d.repo = "webshop";
    d.commit = "c" + std::to_string(run_id);
    d.branch = "main";
    d.rollback = rollback;
    Status s = store_->BeginDeployment(&d);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return d.id;
  }
  // "id" of each deployment listed, newest first.
  std::string Deployments(const std::string& env, int limit = 0, int64_t before = 0) {
    std::vector<DeploymentRecord> out;
    Status s = store_->ListDeployments(env, limit, before, &out);
    if (!s.ok()) return "error: " + s.ToString();
    std::string ids;
    for (const DeploymentRecord& d : out) ids += (ids.empty() ? "" : " ") + std::to_string(d.id);
    return ids;
  }
  int64_t CountRows(const std::string& sql) {
    if (pg()) {
      PgResult r;
      int64_t n = -1;
      std::unique_ptr<PgConnection> c = Pg();
      EXPECT_TRUE(c && c->Exec(sql, {}, &r).ok()) << sql;
      if (r.rows() > 0) EXPECT_TRUE(r.Int64(0, 0, &n).ok());
      return n;
    }
    std::unique_ptr<Database> db;
    EXPECT_TRUE(Database::Open(dir_ + "/ladle.db", &db).ok());
    Statement st;
    EXPECT_TRUE(db->Prepare(sql, &st).ok()) << sql;
    bool row = false;
    EXPECT_TRUE(st.Step(&row).ok());
    return row ? st.ColumnInt64(0) : -1;
  }
};

INSTANTIATE_TEST_SUITE_P(Stores, RunStoreQueueTest, ::testing::Values("sqlite", "postgresql"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

TEST_P(RunStoreQueueTest, EnqueueRecordsAQueuedRunOwnedByThisProcess) {
  RunRecord run = Queued("webshop", "main", "aaa");
  std::vector<int64_t> superseded = {99};
  ASSERT_TRUE(store_->EnqueueRun(&run, &superseded).ok());
  EXPECT_NE(0, run.id);
  EXPECT_TRUE(superseded.empty());
  EXPECT_EQ(kQueued, run.status);
  EXPECT_FALSE(run.created_at.empty());
  RunRecord got = Get(run.id);
  EXPECT_EQ(kQueued, got.status);
  EXPECT_EQ("push", got.trigger);
  EXPECT_EQ("aaa", got.commit);
  EXPECT_EQ(getpid(), got.owner_pid);
  EXPECT_EQ(ProcessStartTime(getpid()), got.owner_start);
  EXPECT_TRUE(got.stages.empty());
  EXPECT_EQ("", got.finished_at);
}

TEST_P(RunStoreQueueTest, EnqueueSupersedesOlderQueuedRunsOfTheSameRepoAndBranch) {
  // Runs that must survive: a rollback and a resuming run of the same
  // branch, other branches and repos, a running run.
  RunRecord rollback = Queued("webshop", "main", "r1");
  rollback.trigger = "rollback";
  rollback.rollback_environment = "production";
  const int64_t rollback_id = Enqueue(rollback);
  RunRecord resuming = SampleRun();  // as RequeueRun leaves an approved run
  resuming.status = kQueued;
  resuming.resume_stage = "deploy";
  ASSERT_TRUE(store_->CreateRun(&resuming).ok());
  const int64_t other_branch = Enqueue(Queued("webshop", "dev", "b1"));
  const int64_t other_repo = Enqueue(Queued("api", "main", "c1"));
  RunRecord running = SampleRun();
  ASSERT_TRUE(store_->CreateRun(&running).ok());
  // Two queued runs of webshop/main (one left over from before).
  RunRecord leftover = SampleRun();
  leftover.status = kQueued;
  leftover.stages.clear();
  ASSERT_TRUE(store_->CreateRun(&leftover).ok());
  std::vector<int64_t> superseded;
  const int64_t old_id = Enqueue(Queued("webshop", "main", "a1"), &superseded);
  EXPECT_EQ(std::vector<int64_t>{leftover.id}, superseded);
  // And one more queued behind it, as a crashed server may leave.
  RunRecord leftover2 = SampleRun();
  leftover2.status = kQueued;
  leftover2.stages.clear();
  ASSERT_TRUE(store_->CreateRun(&leftover2).ok());

  const int64_t newest = Enqueue(Queued("webshop", "main", "a3"), &superseded);
  std::sort(superseded.begin(), superseded.end());  // in no promised order
  EXPECT_EQ((std::vector<int64_t>{old_id, leftover2.id}), superseded);
  for (int64_t id : {leftover.id, old_id, leftover2.id}) {
    RunRecord got = Get(id);
    EXPECT_EQ(kSuperseded, got.status) << id;
    EXPECT_FALSE(got.finished_at.empty()) << id;
  }
  EXPECT_NE(std::string::npos,
            Get(old_id).message.find("superseded by run " + std::to_string(newest)))
      << Get(old_id).message;
  EXPECT_NE(std::string::npos,
            Get(leftover.id).message.find("superseded by run " + std::to_string(old_id)))
      << Get(leftover.id).message;
  for (int64_t id : {other_branch, other_repo, rollback_id, resuming.id, newest})
    EXPECT_EQ(kQueued, Get(id).status) << id;
  EXPECT_EQ(kRunning, Get(running.id).status);

  // A rollback supersedes nothing.
  RunRecord rollback2 = Queued("webshop", "main", "r2");
  rollback2.rollback_environment = "production";
  Enqueue(rollback2, &superseded);
  EXPECT_TRUE(superseded.empty());
  EXPECT_EQ(kQueued, Get(newest).status);
}

TEST_P(RunStoreQueueTest, HasRunForCommitIgnoresRollbacks) {
  Enqueue(Queued("webshop", "main", "aaa"));
  RunRecord rollback = Queued("webshop", "main", "rrr");
  rollback.rollback_environment = "production";
  Enqueue(rollback);
  RunRecord finished = SampleRun();
  finished.status = kSuccess;
  finished.commit = "fff";
  ASSERT_TRUE(store_->CreateRun(&finished).ok());

  auto has = [&](const std::string& repo, const std::string& branch, const std::string& commit) {
    bool exists = true;  // must be overwritten
    Status s = store_->HasRunForCommit(repo, branch, commit, &exists);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return exists;
  };
  EXPECT_TRUE(has("webshop", "main", "aaa"));
  EXPECT_TRUE(has("webshop", "main", "fff"));  // any status
  EXPECT_FALSE(has("webshop", "main", "rrr"));
  EXPECT_FALSE(has("webshop", "dev", "aaa"));
  EXPECT_FALSE(has("api", "main", "aaa"));
  EXPECT_FALSE(has("webshop", "main", "bbb"));
}

TEST_P(RunStoreQueueTest, ListQueuedIsOldestFirstAndOnlyQueued) {
  const int64_t a = Enqueue(Queued("webshop", "main", "a"));
  const int64_t b = Enqueue(Queued("webshop", "dev", "b"));
  RunRecord running = SampleRun();
  ASSERT_TRUE(store_->CreateRun(&running).ok());
  const int64_t c = Enqueue(Queued("api", "main", "c"));
  const int64_t d = Enqueue(Queued("webshop", "main", "d"));  // supersedes a
  std::vector<RunRecord> queued = {RunRecord()};
  ASSERT_TRUE(store_->ListQueued(&queued).ok());
  std::vector<int64_t> ids;
  for (const RunRecord& r : queued) ids.push_back(r.id);
  EXPECT_EQ((std::vector<int64_t>{b, c, d}), ids);
  EXPECT_EQ(kSuperseded, Get(a).status);
  EXPECT_EQ("b", queued[0].commit);
  EXPECT_EQ("push", queued[0].trigger);
}

TEST_P(RunStoreQueueTest, StartRunReplacesStagesAndWritesTheRunFields) {
  const int64_t id = Enqueue(Queued("webshop", "main", "aaa"));
  RunRecord run = SampleRun();
  run.id = id;
  run.status = kRunning;
  run.pipeline = "shop";
  run.file = "/data/ws/1/ladle.yml";
  run.started_at = "2026-11-29T11:00:00.000Z";
  run.workspace = "/data/workspaces/1";
  ASSERT_TRUE(store_->StartRun(&run).ok());
  EXPECT_EQ(getpid(), run.owner_pid);
  RunRecord got = Get(id);
  EXPECT_EQ(kRunning, got.status);
  EXPECT_EQ("shop", got.pipeline);
  EXPECT_EQ("/data/ws/1/ladle.yml", got.file);
  EXPECT_EQ("2026-11-29T11:00:00.000Z", got.started_at);
  EXPECT_EQ("/data/workspaces/1", got.workspace);
  EXPECT_EQ("push", got.trigger);    // kept
  EXPECT_EQ("aaa", got.commit);      // kept
  EXPECT_EQ("build(running)[compile:running,lint:queued,] deploy(queued)[push:queued,] ",
            Shape(got));

  // Taken again (requeued after an interruption): the old records go.
  RunRecord again;
  again.id = id;
  again.status = kRunning;
  again.pipeline = "shop";
  again.file = "/data/ws/1/ladle.yml";
  again.resume_stage = "deploy";
  StageRecord only{"deploy", kQueued, "staging", std::nullopt, "", {}};
  only.steps.push_back(StepRecord{"push2", kQueued, std::nullopt, 0, "", "", FailureReason::kNone, false});
  again.stages = {only};
  // Not queued: refused, nothing written.
  Status refused = store_->StartRun(&again);
  EXPECT_EQ(Code::kConflict, refused.code());
  EXPECT_EQ("start run " + std::to_string(id) + ": run " + std::to_string(id) +
                " is running, no longer queued",
            refused.ToString());
  EXPECT_EQ("build(running)[compile:running,lint:queued,] deploy(queued)[push:queued,] ",
            Shape(Get(id)));
  ASSERT_TRUE(store_->RequeueRun(id, "deploy").ok());
  ASSERT_TRUE(store_->StartRun(&again).ok());
  got = Get(id);
  EXPECT_EQ("deploy(queued)[push2:queued,] ", Shape(got));
  EXPECT_EQ("deploy", got.resume_stage);
  EXPECT_EQ(0, CountRows("SELECT count(*) FROM steps WHERE run_id = " + std::to_string(id) +
                         " AND name = 'compile'"));

  RunRecord missing;
  missing.id = 999;
  EXPECT_EQ(Code::kNotFound, store_->StartRun(&missing).code());
}

TEST_P(RunStoreQueueTest, ASupersededRunIsNeverStarted) {
  // A worker took run `old` and prepares it while a newer commit arrives.
  const int64_t old_id = Enqueue(Queued("webshop", "main", "aaa"));
  std::vector<int64_t> superseded;
  Enqueue(Queued("webshop", "main", "bbb"), &superseded);
  ASSERT_EQ(std::vector<int64_t>{old_id}, superseded);
  RunRecord run = SampleRun();
  run.id = old_id;
  run.status = kRunning;
  EXPECT_EQ(Code::kConflict, store_->StartRun(&run).code());
  RunRecord got = Get(old_id);
  EXPECT_EQ(kSuperseded, got.status);
  EXPECT_TRUE(got.stages.empty());
}

TEST_P(RunStoreQueueTest, RequeueRunPutsAFinishedRunBackInTheQueue) {
  RunRecord run = SampleRun();
  run.status = kInterrupted;
  run.finished_at = "2026-11-29T12:00:00.000Z";
  run.trigger = "push";
  run.owner_pid = DeadPid();
  ASSERT_TRUE(store_->CreateRun(&run).ok());
  ASSERT_TRUE(store_->RequeueRun(run.id, "").ok());
  RunRecord got = Get(run.id);
  EXPECT_EQ(kQueued, got.status);
  EXPECT_EQ("", got.finished_at);
  EXPECT_EQ("requeue", got.trigger);
  EXPECT_EQ("", got.resume_stage);
  EXPECT_EQ(getpid(), got.owner_pid);
  EXPECT_EQ(ProcessStartTime(getpid()), got.owner_start);

  // An approval resumes a waiting run at its stage; its trigger stays.
  RunRecord waiting = SampleRun();
  waiting.status = kWaiting;
  waiting.finished_at = "2026-11-29T12:00:00.000Z";
  waiting.trigger = "push";
  ASSERT_TRUE(store_->CreateRun(&waiting).ok());
  ASSERT_TRUE(store_->RequeueRun(waiting.id, "deploy").ok());
  got = Get(waiting.id);
  EXPECT_EQ(kQueued, got.status);
  EXPECT_EQ("deploy", got.resume_stage);
  EXPECT_EQ("push", got.trigger);
  EXPECT_EQ("", got.finished_at);
  std::vector<RunRecord> queued;
  ASSERT_TRUE(store_->ListQueued(&queued).ok());
  ASSERT_EQ(2u, queued.size());
  EXPECT_EQ("deploy", queued[1].resume_stage);

  EXPECT_EQ(Code::kNotFound, store_->RequeueRun(999, "").code());
}

TEST_P(RunStoreQueueTest, DeploymentsBeginFinishAndList) {
  DeploymentRecord d;
  d.environment = "production";
  d.run_id = 7;
  d.stage = "prod";
  d.repo = "webshop";
  d.commit = "abc";
  d.branch = "main";
  d.status = kSuccess;       // overwritten: a deployment begins running
  d.finished_at = "stale";   // cleared
  ASSERT_TRUE(store_->BeginDeployment(&d).ok());
  EXPECT_EQ(1, d.id);
  EXPECT_EQ(kRunning, d.status);
  EXPECT_FALSE(d.started_at.empty());
  EXPECT_EQ("", d.finished_at);

  std::vector<DeploymentRecord> out;
  ASSERT_TRUE(store_->ListDeployments("", 0, 0, &out).ok());
  ASSERT_EQ(1u, out.size());
  EXPECT_EQ(kRunning, out[0].status);
  EXPECT_EQ("", out[0].finished_at);
  EXPECT_EQ(7, out[0].run_id);
  EXPECT_EQ("prod", out[0].stage);
  EXPECT_EQ("abc", out[0].commit);
  EXPECT_FALSE(out[0].rollback);

  ASSERT_TRUE(store_->FinishDeployment(d.id, kFailed).ok());
  ASSERT_TRUE(store_->ListDeployments("production", 0, 0, &out).ok());
  ASSERT_EQ(1u, out.size());
  EXPECT_EQ(kFailed, out[0].status);
  EXPECT_FALSE(out[0].finished_at.empty());
  EXPECT_EQ(Code::kNotFound, store_->FinishDeployment(99, kSuccess).code());

  Deploy("staging", 8);                     // 2
  Deploy("production", 8, true);            // 3
  Deploy("staging", 9);                     // 4
  Deploy("production", 9);                  // 5
  EXPECT_EQ("5 4 3 2 1", Deployments(""));
  EXPECT_EQ("5 3 1", Deployments("production"));
  EXPECT_EQ("4 2", Deployments("staging"));
  EXPECT_EQ("", Deployments("qa"));
  EXPECT_EQ("5 3", Deployments("production", 2));
  EXPECT_EQ("3 1", Deployments("production", 0, 5));
  EXPECT_EQ("1", Deployments("production", 1, 3));
  EXPECT_EQ("3 2", Deployments("", 2, 4));
  ASSERT_TRUE(store_->ListDeployments("production", 0, 4, &out).ok());
  ASSERT_EQ(2u, out.size());
  EXPECT_TRUE(out[0].rollback);
}

TEST_P(RunStoreQueueTest, GetRunFillsTheRunsLatestDeployment) {
  RunRecord run = SampleRun();
  ASSERT_TRUE(store_->CreateRun(&run).ok());
  RunRecord other = SampleRun();
  ASSERT_TRUE(store_->CreateRun(&other).ok());
  EXPECT_FALSE(Get(run.id).deployment.has_value());

  const int64_t first = Deploy("staging", run.id);
  ASSERT_TRUE(store_->FinishDeployment(first, kSuccess).ok());
  const int64_t second = Deploy("production", run.id, true);
  Deploy("production", other.id);  // a later one, of another run
  RunRecord got = Get(run.id);
  ASSERT_TRUE(got.deployment.has_value());
  EXPECT_EQ(second, got.deployment->id);
  EXPECT_EQ("production", got.deployment->environment);
  EXPECT_EQ(run.id, got.deployment->run_id);
  EXPECT_EQ(kRunning, got.deployment->status);
  EXPECT_TRUE(got.deployment->rollback);

  nlohmann::json j = RunToJson(got);
  EXPECT_EQ(DeploymentToJson(*got.deployment), j["deployment"]);
  EXPECT_EQ(second, j["deployment"]["id"]);
}

TEST_P(RunStoreQueueTest, RunToJsonHasTriggerAndDeployment) {
  RunRecord run = SampleRun();
  run.id = 3;
  EXPECT_TRUE(RunToJson(run)["trigger"].is_null());
  EXPECT_TRUE(RunToJson(run).contains("deployment"));
  EXPECT_TRUE(RunToJson(run)["deployment"].is_null());
  EXPECT_FALSE(RunToJson(run).contains("rollback_environment"));
  run.trigger = "rollback";
  run.rollback_environment = "production";
  DeploymentRecord d;
  d.id = 4;
  d.environment = "production";
  d.run_id = 3;
  d.stage = "prod";
  d.repo = "webshop";
  d.commit = "abc";
  d.branch = "main";
  d.status = kSuccess;
  d.rollback = true;
  d.started_at = "2026-11-29T10:00:00.000Z";
  d.finished_at = "2026-11-29T10:01:00.000Z";
  run.deployment = d;
  nlohmann::json j = RunToJson(run);
  EXPECT_EQ("rollback", j["trigger"]);
  EXPECT_EQ("production", j["rollback_environment"]);
  EXPECT_EQ(nlohmann::json::parse(R"({"id": 4, "environment": "production", "run_id": 3,
      "stage": "prod", "repo": "webshop", "commit": "abc", "branch": "main",
      "status": "success", "rollback": true, "dirty": false,
      "started_at": "2026-11-29T10:00:00.000Z", "finished_at": "2026-11-29T10:01:00.000Z"})"),
            j["deployment"]);
  d.finished_at.clear();
  d.status = kRunning;
  d.rollback = false;
  nlohmann::json dj = DeploymentToJson(d);
  EXPECT_TRUE(dj["finished_at"].is_null());
  EXPECT_EQ(false, dj["rollback"]);
  EXPECT_EQ("running", dj["status"]);
}

TEST_P(RunStoreQueueTest, DeleteFinishedBeforeKeepsUnfinishedRunsAndDeployments) {
  auto make = [&](RunStatus status, const std::string& finished_at) {
    RunRecord run = SampleRun();
    run.status = status;
    run.finished_at = finished_at;
    EXPECT_TRUE(store_->CreateRun(&run).ok());
    return run.id;
  };
  const int64_t old_ok = make(kSuccess, "2020-01-01T00:00:00.000Z");
  const int64_t old_failed = make(kFailed, "2020-01-02T00:00:00.000Z");
  const int64_t recent = make(kSuccess, "2026-11-29T00:00:00.000Z");
  const int64_t old_waiting = make(kWaiting, "2020-01-01T00:00:00.000Z");
  const int64_t running = make(kRunning, "");
  const int64_t old_queued = make(kQueued, "2020-01-01T00:00:00.000Z");
  const int64_t unfinished = make(kInterrupted, "");
  const int64_t dep = Deploy("production", old_ok);
  ASSERT_TRUE(store_->FinishDeployment(dep, kSuccess).ok());

  std::vector<int64_t> ids = {42};
  ASSERT_TRUE(store_->DeleteFinishedBefore("2025-01-01T00:00:00.000Z", &ids).ok());
  EXPECT_EQ((std::vector<int64_t>{old_ok, old_failed}), ids);
  RunRecord got;
  EXPECT_EQ(Code::kNotFound, store_->GetRun(old_ok, &got).code());
  EXPECT_EQ(Code::kNotFound, store_->GetRun(old_failed, &got).code());
  for (int64_t id : {recent, old_waiting, running, old_queued, unfinished})
    EXPECT_TRUE(store_->GetRun(id, &got).ok()) << id;
  EXPECT_EQ(0, CountRows("SELECT count(*) FROM stages WHERE run_id IN (" +
                         std::to_string(old_ok) + ", " + std::to_string(old_failed) + ")"));
  EXPECT_EQ(0, CountRows("SELECT count(*) FROM steps WHERE run_id IN (" +
                         std::to_string(old_ok) + ", " + std::to_string(old_failed) + ")"));
  EXPECT_EQ(std::to_string(dep), Deployments("production"));  // the history stays

  ASSERT_TRUE(store_->DeleteFinishedBefore("2025-01-01T00:00:00.000Z", &ids).ok());
  EXPECT_TRUE(ids.empty());
}

TEST_P(RunStoreQueueTest, MarkInterruptedLeavesQueuedRunsAndInterruptsTheirDeployments) {
  const int dead = DeadPid();
  RunRecord queued = SampleRun();
  queued.status = kQueued;
  queued.stages.clear();
  queued.owner_pid = dead;
  queued.owner_start = 1;
  RunRecord orphan = SampleRun();
  orphan.owner_pid = dead;
  orphan.owner_start = 1;
  if (pg()) queued.replica = orphan.replica = "a-replica-that-is-gone";  // owners are replicas
  RunRecord live = SampleRun();
  for (RunRecord* r : {&queued, &orphan, &live}) ASSERT_TRUE(store_->CreateRun(r).ok());
  const int64_t finished = Deploy("staging", orphan.id);
  ASSERT_TRUE(store_->FinishDeployment(finished, kSuccess).ok());
  const int64_t running = Deploy("production", orphan.id);
  const int64_t live_dep = Deploy("production", live.id);

  std::vector<int64_t> ids;
  ASSERT_TRUE(store_->MarkInterrupted(&ids).ok());
  EXPECT_EQ(std::vector<int64_t>{orphan.id}, ids);
  EXPECT_EQ(kQueued, Get(queued.id).status);
  EXPECT_EQ("", Get(queued.id).finished_at);
  EXPECT_EQ(kInterrupted, Get(orphan.id).status);

  std::vector<DeploymentRecord> out;
  ASSERT_TRUE(store_->ListDeployments("", 0, 0, &out).ok());
  std::map<int64_t, DeploymentRecord> by_id;
  for (const DeploymentRecord& d : out) by_id[d.id] = d;
  EXPECT_EQ(kSuccess, by_id[finished].status);
  EXPECT_EQ(kInterrupted, by_id[running].status);
  EXPECT_FALSE(by_id[running].finished_at.empty());
  EXPECT_EQ(kRunning, by_id[live_dep].status);
  EXPECT_EQ("", by_id[live_dep].finished_at);
  ASSERT_TRUE(Get(orphan.id).deployment.has_value());
  EXPECT_EQ(kInterrupted, Get(orphan.id).deployment->status);
}

TEST_P(RunStoreQueueTest, PruneRunsDeletesThePrunedRunsDirectories) {
  namespace fs = std::filesystem;
  auto make = [&](const std::string& finished_at) {
    RunRecord run = SampleRun();
    run.status = kSuccess;
    run.finished_at = finished_at;
    EXPECT_TRUE(store_->CreateRun(&run).ok());
    for (const char* d : {"logs", "artifacts", "workspaces"}) {
      fs::create_directories(fs::path(dir_) / d / std::to_string(run.id) / "sub");
      std::ofstream(fs::path(dir_) / d / std::to_string(run.id) / "sub" / "f") << "x";
    }
    return run.id;
  };
  const int64_t old_run = make(FormatRfc3339(std::chrono::system_clock::now() -
                                             std::chrono::hours(24 * 40)));
  const int64_t new_run = make(FormatRfc3339(std::chrono::system_clock::now() -
                                             std::chrono::hours(24 * 2)));
  RunRecord running = SampleRun();  // no finished_at: never pruned
  ASSERT_TRUE(store_->CreateRun(&running).ok());
  fs::create_directories(fs::path(dir_) / "logs" / std::to_string(running.id));

  std::vector<int64_t> pruned;
  Status s = PruneRuns(store_.get(), dir_, std::chrono::hours(24 * 30), nullptr, &pruned);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(std::vector<int64_t>{old_run}, pruned);
  for (const char* d : {"logs", "artifacts", "workspaces"}) {
    EXPECT_FALSE(fs::exists(fs::path(dir_) / d / std::to_string(old_run))) << d;
    EXPECT_TRUE(fs::exists(fs::path(dir_) / d / std::to_string(new_run) / "sub" / "f")) << d;
  }
  EXPECT_TRUE(fs::exists(fs::path(dir_) / "logs" / std::to_string(running.id)));
  RunRecord got;
  EXPECT_EQ(Code::kNotFound, store_->GetRun(old_run, &got).code());
  EXPECT_TRUE(store_->GetRun(new_run, &got).ok());
  EXPECT_TRUE(store_->GetRun(running.id, &got).ok());

  // `ladle repro` workspaces go by their age.
  const fs::path old_repro = fs::path(dir_) / "workspaces" / "repro-7-aaaaaa";
  const fs::path new_repro = fs::path(dir_) / "workspaces" / "repro-8-bbbbbb";
  fs::create_directories(old_repro / "src");
  fs::create_directories(new_repro);
  fs::last_write_time(old_repro, fs::file_time_type::clock::now() - std::chrono::hours(24 * 40));
  ASSERT_TRUE(PruneRuns(store_.get(), dir_, std::chrono::hours(24 * 30), nullptr, &pruned).ok());
  EXPECT_FALSE(fs::exists(old_repro));
  EXPECT_TRUE(fs::exists(new_repro));

  // Nothing left to prune: a second pass is a no-op.
  ASSERT_TRUE(PruneRuns(store_.get(), dir_, std::chrono::hours(24 * 30), nullptr, &pruned).ok());
  EXPECT_TRUE(pruned.empty());
}


// ---- locks and claims on SQLite (docs/server.md "Deployments") ----

// Two stores on one data dir (two ladle processes): a lock is a flock on
// DATA/locks/, exclusive between them, released when the lock is destroyed.
TEST_P(RunStoreSqliteTest, TryLockIsExclusiveBetweenTwoStoresOnOneDataDir) {
  std::unique_ptr<RunStore> other = OpenStore();
  std::unique_ptr<StoreLock> mine, theirs;
  ASSERT_TRUE(store_->TryLock("environment/production", &mine).ok());
  ASSERT_NE(nullptr, mine);
  EXPECT_TRUE(mine->held());
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/locks/production.lock"));
  ASSERT_TRUE(other->TryLock("environment/production", &theirs).ok());
  EXPECT_EQ(nullptr, theirs);
  ASSERT_TRUE(store_->TryLock("environment/production", &theirs).ok());
  EXPECT_EQ(nullptr, theirs) << "held already, even by the same store";
  ASSERT_TRUE(other->TryLock("leader", &theirs).ok());
  EXPECT_NE(nullptr, theirs) << "another name is another lock";
  theirs.reset();
  mine.reset();
  ASSERT_TRUE(other->TryLock("environment/production", &theirs).ok());
  EXPECT_NE(nullptr, theirs) << "released when destroyed";
  EXPECT_FALSE(other->shared());
  EXPECT_EQ("", other->replica_id());
}

TEST_P(RunStoreSqliteTest, ClaimRunClaimsQueuedRuns) {
  RunRecord queued = SampleRun();
  queued.status = kQueued;
  queued.stages.clear();
  RunRecord running = SampleRun();
  for (RunRecord* r : {&queued, &running}) ASSERT_TRUE(store_->CreateRun(r).ok());
  std::unique_ptr<RunStore> other = OpenStore();
  bool claimed = false;
  ASSERT_TRUE(store_->ClaimRun(queued.id, &claimed).ok());
  EXPECT_TRUE(claimed);
  ASSERT_TRUE(other->ClaimRun(queued.id, &claimed).ok());
  EXPECT_TRUE(claimed) << "SQLite: one server per data dir, a queued run is claimable";
  ASSERT_TRUE(store_->ClaimRun(running.id, &claimed).ok());
  EXPECT_FALSE(claimed);
  claimed = true;
  ASSERT_TRUE(store_->ClaimRun(999, &claimed).ok());
  EXPECT_FALSE(claimed);
}

// ---- PostgreSQL: replicas (docs/server.md "Replicas") ----

// Two stores opened on one database act as two replicas: store_ (A) and
// `other` (B), both registered by OpenStore.
class RunStorePgTest : public RunStoreQueueTest {
 protected:
  // A queued run of its own branch (supersedes nothing).
  int64_t EnqueueOne(int n) {
    return Enqueue(Queued("webshop", "branch-" + std::to_string(n), "c" + std::to_string(n)));
  }
  bool Claim(RunStore* store, int64_t id) {
    bool claimed = false;
    Status s = store->ClaimRun(id, &claimed);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return claimed;
  }
  // Starts queued run `id` on `store` with one running step.
  Status Start(RunStore* store, int64_t id) {
    RunRecord run;
    run.id = id;
    run.status = kRunning;
    run.pipeline = "shop";
    run.file = "ladle.yml";
    run.started_at = NowRfc3339();
    StageRecord stage;
    stage.name = "deploy";
    stage.status = kRunning;
    stage.environment = "production";
    StepRecord step;
    step.name = "push";
    step.status = kRunning;
    step.attempts = 1;
    step.started_at = run.started_at;
    stage.steps.push_back(step);
    run.stages = {stage};
    return store->StartRun(&run);
  }
  std::string Column(const std::string& column, int64_t id) {
    PgResult r;
    std::unique_ptr<PgConnection> c = Pg();
    Status s = c->Exec("SELECT " + column + " FROM runs WHERE id = $1", {std::to_string(id)}, &r);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return r.rows() > 0 ? r.Text(0, 0) : "(no row)";
  }
  // Lets a lease of 1 s expire on the database's clock.
  static void WaitForLeaseToExpire() { std::this_thread::sleep_for(std::chrono::milliseconds(1300)); }
};
INSTANTIATE_TEST_SUITE_P(Stores, RunStorePgTest, ::testing::Values("postgresql"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

TEST_P(RunStorePgTest, ReplicasRegisterListAndUnregister) {
  std::unique_ptr<RunStore> other = OpenStore();
  EXPECT_TRUE(store_->shared());
  EXPECT_NE("", store_->replica_id());
  EXPECT_NE(store_->replica_id(), other->replica_id());
  EXPECT_NE(std::string::npos, store_->replica_id().find("-" + std::to_string(getpid()) + "-"))
      << store_->replica_id();
  std::vector<ReplicaInfo> replicas;
  ASSERT_TRUE(other->ListReplicas(&replicas).ok());
  ASSERT_EQ(2u, replicas.size());
  EXPECT_EQ(store_->replica_id(), replicas[0].id);  // oldest first
  EXPECT_EQ(other->replica_id(), replicas[1].id);
  EXPECT_EQ("http://127.0.0.1:1", replicas[0].url);
  EXPECT_EQ(24u, replicas[0].started_at.size()) << replicas[0].started_at;
  EXPECT_GT(replicas[0].lease_until, replicas[0].started_at);
  ASSERT_TRUE(store_->RenewLease().ok());
  ASSERT_TRUE(other->UnregisterReplica().ok());
  ASSERT_TRUE(store_->ListReplicas(&replicas).ok());
  ASSERT_EQ(1u, replicas.size());
  EXPECT_EQ(store_->replica_id(), replicas[0].id);
}

TEST_P(RunStorePgTest, AnExpiredLeaseIsPreconditionAndLeavesTheList) {
  std::unique_ptr<RunStore> a = OpenStore(std::chrono::seconds(1));
  ASSERT_TRUE(a->RenewLease().ok());
  WaitForLeaseToExpire();
  Status s = a->RenewLease();
  EXPECT_EQ(Code::kPrecondition, s.code()) << s.ToString();
  EXPECT_EQ(0u, s.message().find("the lease of replica " + a->replica_id() + " expired at 20"))
      << s.message();
  EXPECT_NE(std::string::npos, s.message().find("; its runs may have been taken over"));
  std::vector<ReplicaInfo> replicas;
  ASSERT_TRUE(store_->ListReplicas(&replicas).ok());
  ASSERT_EQ(1u, replicas.size());
  EXPECT_EQ(store_->replica_id(), replicas[0].id);
  std::unique_ptr<RunStore> never = OpenStore(std::chrono::seconds(0));
  EXPECT_EQ(Code::kPrecondition, never->RenewLease().code());
}

TEST_P(RunStorePgTest, ARunIsClaimedByOneLiveReplica) {
  std::unique_ptr<RunStore> b = OpenStore(std::chrono::seconds(1));
  const int64_t id = EnqueueOne(1);
  EXPECT_TRUE(Claim(b.get(), id));
  EXPECT_FALSE(Claim(store_.get(), id)) << "claimed by a live replica";
  EXPECT_TRUE(Claim(b.get(), id)) << "its own claim";
  EXPECT_EQ(b->replica_id(), Column("claimed_by", id));
  WaitForLeaseToExpire();
  EXPECT_FALSE(Claim(b.get(), EnqueueOne(2))) << "an expired replica claims nothing";
  EXPECT_TRUE(Claim(store_.get(), id)) << "the claim of a dead replica is void";
  EXPECT_FALSE(Claim(b.get(), id));
  ASSERT_TRUE(Start(store_.get(), id).ok());
  EXPECT_FALSE(Claim(store_.get(), id)) << "no longer queued";
  EXPECT_EQ(store_->replica_id(), Column("replica", id));
  RunRecord got = Get(id);
  EXPECT_EQ(store_->replica_id(), got.replica);
  EXPECT_FALSE(Claim(store_.get(), 999));
}

TEST_P(RunStorePgTest, AnotherReplicaInterruptsTheRunsOfAReplicaWhoseLeaseExpired) {
  std::unique_ptr<RunStore> b = OpenStore(std::chrono::seconds(1));
  const int64_t mine = EnqueueOne(1), theirs = EnqueueOne(2), claimed = EnqueueOne(3);
  ASSERT_TRUE(Start(store_.get(), mine).ok());
  ASSERT_TRUE(Start(b.get(), theirs).ok());
  ASSERT_TRUE(Claim(b.get(), claimed));
  DeploymentRecord d;
  d.environment = "production";
  d.run_id = theirs;
  d.stage = "deploy";
  ASSERT_TRUE(b->BeginDeployment(&d).ok());
  RunRecord unowned = SampleRun();  // running, and no replica owns it
  unowned.replica = "a-replica-that-is-gone";
  ASSERT_TRUE(store_->CreateRun(&unowned).ok());
  ASSERT_TRUE(Pg()->Exec("UPDATE runs SET replica = '' WHERE id = $1",
                         {std::to_string(unowned.id)}).ok());
  RunRecord gone = SampleRun();
  gone.replica = "a-replica-that-is-gone";
  ASSERT_TRUE(store_->CreateRun(&gone).ok());
  RunRecord ended_waiting = SampleRun();  // ended on purpose: stays waiting
  ended_waiting.status = kWaiting;
  ended_waiting.finished_at = "2026-11-29T12:00:00.000Z";
  ended_waiting.replica = "a-replica-that-is-gone";
  ASSERT_TRUE(store_->CreateRun(&ended_waiting).ok());

  std::vector<int64_t> ids;
  ASSERT_TRUE(store_->MarkInterrupted(&ids).ok());
  EXPECT_EQ((std::vector<int64_t>{unowned.id, gone.id}), ids) << "b is alive";
  EXPECT_EQ("interrupted: replica a-replica-that-is-gone is gone", Get(gone.id).message);
  EXPECT_EQ("interrupted: no replica ran it", Get(unowned.id).message);

  WaitForLeaseToExpire();
  ASSERT_TRUE(store_->MarkInterrupted(&ids).ok());
  EXPECT_EQ(std::vector<int64_t>{theirs}, ids);
  RunRecord got = Get(theirs);
  EXPECT_EQ(kInterrupted, got.status);
  EXPECT_FALSE(got.finished_at.empty());
  EXPECT_EQ("interrupted: replica " + b->replica_id() +
                " (http://127.0.0.1:1) stopped renewing its lease",
            got.message);
  EXPECT_EQ("deploy(interrupted)[push:interrupted,] ", Shape(got));
  ASSERT_TRUE(got.deployment.has_value());
  EXPECT_EQ(kInterrupted, got.deployment->status);
  EXPECT_EQ(kRunning, Get(mine).status);
  EXPECT_EQ(kWaiting, Get(ended_waiting.id).status);
  EXPECT_EQ(kQueued, Get(claimed).status) << "a queued run is not interrupted";
  EXPECT_EQ("", Column("claimed_by", claimed)) << "its claim is released";
  ASSERT_TRUE(store_->MarkInterrupted(&ids).ok());
  EXPECT_TRUE(ids.empty());

  // Requeued: no replica, no claim, and claimable again.
  ASSERT_TRUE(store_->RequeueRun(theirs, "").ok());
  EXPECT_EQ("/", Column("replica || '/' || claimed_by", theirs));
  EXPECT_TRUE(Claim(store_.get(), theirs));
}

// Two replicas sweeping at once mark each orphan once (rows locked SKIP
// LOCKED in one transaction).
TEST_P(RunStorePgTest, TwoReplicasSweepingAtOnceMarkEachRunOnce) {
  std::vector<int64_t> orphans;
  for (int i = 0; i < 60; ++i) {
    RunRecord run = SampleRun();
    run.replica = "a-replica-that-is-gone";
    ASSERT_TRUE(store_->CreateRun(&run).ok());
    orphans.push_back(run.id);
  }
  std::unique_ptr<RunStore> b = OpenStore();
  std::vector<int64_t> by_a, by_b;
  Status sa, sb;
  std::thread ta([&] { sa = store_->MarkInterrupted(&by_a); });
  std::thread tb([&] { sb = b->MarkInterrupted(&by_b); });
  ta.join();
  tb.join();
  ASSERT_TRUE(sa.ok()) << sa.ToString();
  ASSERT_TRUE(sb.ok()) << sb.ToString();
  std::vector<int64_t> all = by_a;
  all.insert(all.end(), by_b.begin(), by_b.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(orphans, all) << "each once: " << by_a.size() << " + " << by_b.size();
}

TEST_P(RunStorePgTest, ACancelRequestReachesOnlyTheRunsReplica) {
  std::unique_ptr<RunStore> b = OpenStore();
  const int64_t mine = EnqueueOne(1), theirs = EnqueueOne(2);
  ASSERT_TRUE(Start(store_.get(), mine).ok());
  ASSERT_TRUE(Start(b.get(), theirs).ok());
  ASSERT_TRUE(b->RequestCancel(mine).ok());  // asked on b, runs on a
  std::vector<int64_t> ids = {42};
  ASSERT_TRUE(b->TakeCancelRequests(&ids).ok());
  EXPECT_TRUE(ids.empty());
  ASSERT_TRUE(store_->TakeCancelRequests(&ids).ok());
  EXPECT_EQ(std::vector<int64_t>{mine}, ids);
  ASSERT_TRUE(store_->TakeCancelRequests(&ids).ok());
  EXPECT_TRUE(ids.empty()) << "taken once";
  ASSERT_TRUE(store_->RequestCancel(theirs).ok());
  ASSERT_TRUE(b->TakeCancelRequests(&ids).ok());
  EXPECT_EQ(std::vector<int64_t>{theirs}, ids);
  EXPECT_EQ(Code::kNotFound, store_->RequestCancel(999).code());
}

// The backend pid that holds an advisory lock, "" when none does.
std::string AdvisoryHolder(PgConnection* c) {
  PgResult r;
  Status s = c->Exec(
      "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND database ="
      " (SELECT oid FROM pg_database WHERE datname = current_database())",
      {}, &r);
  return s.ok() && r.rows() > 0 ? r.Text(0, 0) : "";
}

TEST_P(RunStorePgTest, TryLockIsExclusiveAcrossReplicasAndEndsWithTheHolder) {
  std::unique_ptr<RunStore> b = OpenStore();
  std::unique_ptr<StoreLock> mine, theirs;
  ASSERT_TRUE(store_->TryLock("environment/production", &mine).ok());
  ASSERT_NE(nullptr, mine);
  EXPECT_TRUE(mine->held());
  ASSERT_TRUE(b->TryLock("environment/production", &theirs).ok());
  EXPECT_EQ(nullptr, theirs);
  ASSERT_TRUE(store_->TryLock("environment/production", &theirs).ok());
  EXPECT_EQ(nullptr, theirs) << "held already, even by the same store";
  ASSERT_TRUE(b->TryLock("environment/staging", &theirs).ok());
  EXPECT_NE(nullptr, theirs) << "another name is another lock";
  theirs.reset();

  mine.reset();  // released on destruction
  ASSERT_TRUE(b->TryLock("environment/production", &theirs).ok());
  ASSERT_NE(nullptr, theirs);
  ASSERT_TRUE(store_->TryLock("environment/production", &mine).ok());
  EXPECT_EQ(nullptr, mine);

  // Released when the holder's store is destroyed, even if the lock is not.
  b.reset();
  EXPECT_FALSE(theirs->held());
  ASSERT_TRUE(store_->TryLock("environment/production", &mine).ok());
  ASSERT_NE(nullptr, mine);
  theirs.reset();  // after its store: harmless
  EXPECT_TRUE(mine->held());

  // Released when the holder's connection ends (a replica killed, a network
  // cut): the holder learns it is no longer held, another takes it.
  std::unique_ptr<RunStore> c = OpenStore();
  std::unique_ptr<PgConnection> admin = Pg();
  const std::string holder = AdvisoryHolder(admin.get());
  ASSERT_NE("", holder);
  ASSERT_TRUE(admin->Exec("SELECT pg_terminate_backend($1::int)", {holder}).ok());
  bool lost = false;
  for (int i = 0; i < 100 && !lost; ++i) {
    lost = !mine->held();
    if (!lost) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(lost);
  std::unique_ptr<StoreLock> taken;
  for (int i = 0; i < 100 && taken == nullptr; ++i) {  // the server ends the session
    ASSERT_TRUE(c->TryLock("environment/production", &taken).ok());
    if (taken == nullptr) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_NE(nullptr, taken);
  // The old holder reconnects to try again, and finds it taken.
  std::unique_ptr<StoreLock> again;
  ASSERT_TRUE(store_->TryLock("environment/production", &again).ok());
  EXPECT_EQ(nullptr, again);
  mine.reset();  // a lock of the lost session: unlocks nothing
  taken.reset();
  ASSERT_TRUE(store_->TryLock("environment/production", &again).ok());
  EXPECT_NE(nullptr, again);
}

TEST_P(RunStorePgTest, SharedConfigNamesTheFirstDifferingLine) {
  const std::string text = "workers: 2\nlease: 30\nrepos:\n  - name: shop\n";
  std::string difference = "stale";
  ASSERT_TRUE(store_->CheckSharedConfig(text, &difference).ok());
  EXPECT_EQ("", difference);
  std::unique_ptr<RunStore> b = OpenStore();
  ASSERT_TRUE(b->CheckSharedConfig(text, &difference).ok());
  EXPECT_EQ("", difference);
  ASSERT_TRUE(b->CheckSharedConfig("workers: 2\nlease: 60\nrepos:\n", &difference).ok());
  EXPECT_EQ("line 2: 'lease: 30' in the replicas' shared server.yml, here 'lease: 60'",
            difference);
  ASSERT_TRUE(b->CheckSharedConfig(text + "x: 1\n", &difference).ok());
  EXPECT_EQ("line 5: (end of file) in the replicas' shared server.yml, here 'x: 1'", difference);
  ASSERT_TRUE(b->CheckSharedConfig("workers: 2\n", &difference).ok());
  EXPECT_EQ("line 2: 'lease: 30' in the replicas' shared server.yml, here (end of file)",
            difference);
  ASSERT_TRUE(store_->CheckSharedConfig(text, &difference).ok());
  EXPECT_EQ("", difference) << "nothing changed";

  // Once every other replica stopped, a restarted one's text is the new one.
  ASSERT_TRUE(store_->UnregisterReplica().ok());
  ASSERT_TRUE(b->CheckSharedConfig("workers: 4\n", &difference).ok());
  EXPECT_EQ("", difference);
  ASSERT_TRUE(store_->RegisterReplica("http://127.0.0.1:2", std::chrono::seconds(60)).ok());
  ASSERT_TRUE(store_->CheckSharedConfig(text, &difference).ok());
  EXPECT_EQ("line 1: 'workers: 4' in the replicas' shared server.yml, here 'workers: 2'",
            difference);
}

// 200 queued runs, 2 replicas x 4 workers each claiming and starting what
// they can: each run is started exactly once, and no run is claimed by
// both replicas.
TEST_P(RunStorePgTest, ConcurrentWorkersOfTwoReplicasTakeEachRunOnce) {
  std::vector<int64_t> queued;
  for (int i = 0; i < 200; ++i) queued.push_back(EnqueueOne(i));
  std::unique_ptr<RunStore> b = OpenStore();
  RunStore* stores[2] = {store_.get(), b.get()};
  std::mutex mu;
  std::map<int64_t, int> started;
  std::set<int64_t> claimed_by[2];
  std::atomic<int> errors{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 8; ++w) {
    workers.emplace_back([&, w] {
      RunStore* store = stores[w % 2];
      std::vector<int64_t> order = queued;
      if (w % 4 >= 2) std::reverse(order.begin(), order.end());
      for (int64_t id : order) {
        bool claimed = false;
        if (!store->ClaimRun(id, &claimed).ok()) ++errors;
        if (!claimed) continue;
        {
          std::lock_guard<std::mutex> lock(mu);
          claimed_by[w % 2].insert(id);
        }
        Status s = Start(store, id);
        if (s.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          ++started[id];
        } else if (s.code() != Code::kConflict) {
          ++errors;
        }
      }
    });
  }
  for (std::thread& t : workers) t.join();
  EXPECT_EQ(0, errors.load());
  EXPECT_EQ(200u, started.size());
  for (const auto& [id, n] : started) EXPECT_EQ(1, n) << "run " << id;
  for (int64_t id : claimed_by[0]) EXPECT_EQ(0u, claimed_by[1].count(id)) << "run " << id;
  std::vector<RunRecord> left;
  ASSERT_TRUE(store_->ListQueued(&left).ok());
  EXPECT_TRUE(left.empty());
}

// Replicas receiving pushes of one branch at once: each enqueue sees the
// others' runs (enqueues of a repository are serialised), so each run is
// superseded by the very next one, as on one server, and one is left.
TEST_P(RunStorePgTest, ConcurrentEnqueuesOfOneBranchSupersedeInOrder) {
  std::vector<std::unique_ptr<RunStore>> stores;
  for (int i = 0; i < 4; ++i) stores.push_back(OpenStore());
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < 4; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < 30; ++i) {
        RunRecord run = Queued("webshop", "main", "c" + std::to_string(w * 100 + i));
        std::vector<int64_t> superseded;
        if (!stores[w]->EnqueueRun(&run, &superseded).ok()) ++errors;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(0, errors.load());
  std::vector<RunRecord> queued;
  ASSERT_TRUE(store_->ListQueued(&queued).ok());
  ASSERT_EQ(1u, queued.size());
  EXPECT_EQ(120, queued[0].id) << "the newest";
  int out_of_order = 0;
  for (int64_t id = 1; id < 120; ++id) {
    if (Get(id).message.find("superseded by run " + std::to_string(id + 1) + " ") != 0)
      ++out_of_order;
  }
  EXPECT_EQ(0, out_of_order) << "runs that missed the one enqueued just after them";
}

TEST_P(RunStorePgTest, StatusWordsInTheDatabaseAreReadBackOrRefused) {
  RunRecord run = SampleRun();
  run.stages[0].steps[0].failure_reason = FailureReason::kTimeout;
  ASSERT_TRUE(store_->CreateRun(&run).ok());
  std::unique_ptr<PgConnection> c = Pg();
  PgResult r;
  ASSERT_TRUE(c->Exec("SELECT status, failure_reason FROM steps WHERE name = 'compile'", {}, &r).ok());
  ASSERT_EQ(1, r.rows());
  EXPECT_EQ("running", r.Text(0, 0));
  EXPECT_EQ("timeout", r.Text(0, 1));
  ASSERT_TRUE(c->Exec("UPDATE stages SET status = 'paused' WHERE name = 'deploy'").ok());
  RunRecord back;
  Status s = store_->GetRun(run.id, &back);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(std::string::npos, s.ToString().find("unknown status 'paused' in table stages"))
      << s.ToString();
}

TEST_P(RunStorePgTest, IdsAreNotReusedAfterDelete) {
  RunRecord run = SampleRun();
  ASSERT_TRUE(store_->CreateRun(&run).ok());
  ASSERT_TRUE(store_->CreateRun(&run).ok());
  EXPECT_EQ(2, run.id);
  ASSERT_TRUE(Pg()->Exec("DELETE FROM runs WHERE id = 2").ok());
  EXPECT_EQ(0, CountRows("SELECT count(*) FROM steps WHERE run_id = 2"));  // cascaded
  Reopen();
  ASSERT_TRUE(store_->CreateRun(&run).ok());
  EXPECT_EQ(3, run.id);
}

// Replicas starting at once migrate once (an advisory lock around the
// migration): every one opens.
TEST_P(RunStorePgTest, ReplicasOpeningAFreshDatabaseAtOnceAllOpen) {
  location_ = testing::PostgresServer::Get()->CreateDatabase("fresh");
  std::vector<std::thread> threads;
  std::atomic<int> failed{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      std::unique_ptr<RunStore> store;
      Status s = RunStore::OpenLocation(location_, dir_, &store);
      if (!s.ok()) {
        ++failed;
        ADD_FAILURE() << s.ToString();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(0, failed.load());
  EXPECT_EQ(1, CountRows("SELECT version FROM ladle_schema_versions WHERE part = 'runs'"));
}

// A lost connection (a restarted server, pg_terminate_backend) is found at
// the next statement, which reconnects and runs it once more.
TEST_P(RunStorePgTest, AStoreReconnectsAfterItsConnectionWasLost) {
  RunRecord run = SampleRun();
  ASSERT_TRUE(store_->CreateRun(&run).ok());
  auto kill_store_connections = [&] {
    std::unique_ptr<PgConnection> admin = Pg();
    PgResult r;
    ASSERT_TRUE(admin->Exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                            " WHERE application_name = 'ladle-runs' AND datname = current_database()",
                            {}, &r).ok());
    EXPECT_LE(1, r.rows());
  };
  kill_store_connections();
  EXPECT_EQ(run.id, Get(run.id).id) << "a read";
  kill_store_connections();
  run.message = "after a reconnection";
  Status s = store_->UpdateRun(run);
  EXPECT_TRUE(s.ok()) << s.ToString();
  kill_store_connections();
  RunRecord another = SampleRun();
  s = store_->CreateRun(&another);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(run.id + 1, another.id) << "written once";
  EXPECT_EQ("after a reconnection", Get(run.id).message);
}

TEST_P(RunStorePgTest, AServerThatDoesNotAnswerIsUnavailableWithoutThePassword) {
  std::unique_ptr<RunStore> store;
  Status s = RunStore::OpenLocation("postgresql://ladle:s3cret@127.0.0.1:1/runs", dir_, &store);
  EXPECT_EQ(Code::kUnavailable, s.code()) << s.ToString();
  EXPECT_EQ(std::string::npos, s.message().find("s3cret")) << s.message();
  EXPECT_NE(std::string::npos, s.message().find("postgresql://ladle:***@127.0.0.1:1/runs"))
      << s.message();
}

}  // namespace
}  // namespace ladle::runner
