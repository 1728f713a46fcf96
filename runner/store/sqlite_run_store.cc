// The run store in SQLite: DATA/ladle.db (docs/design.md "Two stores:
// SQLite and PostgreSQL"). One connection guarded by a mutex: writes are
// tiny, and readers in other processes see them through WAL.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>

#include "core/base/time_util.h"
#include "core/sqlite.h"
#include "runner/store/run_rows.h"
#include "runner/store/run_store.h"
#include "runner/store/sqlite_run_store.h"

namespace ladle::runner {
namespace {

using rows::Count;
using rows::FailedTestsText;
using rows::MatrixText;
using rows::OrNull;
using rows::OwnerAlive;
using rows::ParseFailedTests;
using rows::ParseMatrix;
using rows::PathsFromJson;
using rows::PathsToJson;

// Schema migrations, applied in order by PRAGMA user_version. Append only:
// a released step is never edited, a change is a new step.
const std::vector<std::string>& Migrations() {
  static const std::vector<std::string> kSteps = {
      // 1: runs, their stages and steps. AUTOINCREMENT so a pruned run's id
      // (and its logs directory) is never reused. Empty times are NULL.
      R"sql(
CREATE TABLE runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  repo TEXT NOT NULL,
  pipeline TEXT NOT NULL,
  file TEXT NOT NULL,
  commit_id TEXT NOT NULL,
  branch TEXT NOT NULL,
  status TEXT NOT NULL,
  created_at TEXT NOT NULL,
  started_at TEXT,
  finished_at TEXT,
  message TEXT NOT NULL DEFAULT '',
  workspace TEXT NOT NULL DEFAULT '',
  owner_pid INTEGER NOT NULL DEFAULT 0,
  owner_start INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_by_repo ON runs (repo, id DESC);
CREATE INDEX runs_by_branch ON runs (branch, id DESC);
CREATE INDEX runs_by_status ON runs (status, id DESC);
CREATE INDEX runs_by_file ON runs (file, id DESC);
CREATE TABLE stages (
  run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  ordinal INTEGER NOT NULL,
  status TEXT NOT NULL,
  environment TEXT NOT NULL DEFAULT '',
  tests_total INTEGER,
  tests_passed INTEGER,
  tests_failed INTEGER,
  tests_skipped INTEGER,
  message TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (run_id, name)
) WITHOUT ROWID;
CREATE TABLE steps (
  run_id INTEGER NOT NULL,
  stage TEXT NOT NULL,
  name TEXT NOT NULL,
  ordinal INTEGER NOT NULL,
  status TEXT NOT NULL,
  exit_code INTEGER,
  attempts INTEGER NOT NULL DEFAULT 0,
  started_at TEXT,
  finished_at TEXT,
  failure_reason TEXT NOT NULL DEFAULT '',
  allow_failure INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (run_id, stage, name),
  FOREIGN KEY (run_id, stage) REFERENCES stages (run_id, name) ON DELETE CASCADE
) WITHOUT ROWID;
)sql",
      // 2: the server's queue and deployments.
      R"sql(
ALTER TABLE runs ADD COLUMN trigger TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN rollback_environment TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN resume_stage TEXT NOT NULL DEFAULT '';
CREATE INDEX runs_by_commit ON runs (repo, commit_id);
CREATE TABLE deployments (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  environment TEXT NOT NULL,
  run_id INTEGER NOT NULL,
  stage TEXT NOT NULL,
  repo TEXT NOT NULL,
  commit_id TEXT NOT NULL,
  branch TEXT NOT NULL,
  status TEXT NOT NULL,
  rollback INTEGER NOT NULL DEFAULT 0,
  started_at TEXT NOT NULL,
  finished_at TEXT
);
CREATE INDEX deployments_by_environment ON deployments (environment, id DESC);
CREATE INDEX deployments_by_run ON deployments (run_id, id DESC);
)sql",
      // 3: a rollback run redeploys what an earlier run built.
      R"sql(
ALTER TABLE runs ADD COLUMN source_run INTEGER NOT NULL DEFAULT 0;
)sql",
      // 4: webhook deliveries already handled (docs/server.md "Webhook
      // trust"); received_at in seconds since the epoch.
      R"sql(
CREATE TABLE deliveries (
  id TEXT PRIMARY KEY,
  repo TEXT NOT NULL,
  received_at INTEGER NOT NULL
);
CREATE INDEX deliveries_by_time ON deliveries (received_at);
)sql",
      // 5: where a run comes from (docs/running.md "Same inputs as CI"): its
      // project (a repository's root, or the server's repository name), its
      // pipeline's path inside it, and whether the working tree differed
      // from the commit (changed_paths a JSON array; tree the git tree id of
      // what ran).
      R"sql(
ALTER TABLE runs ADD COLUMN project TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN pipeline_path TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN dirty INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN changed_paths TEXT NOT NULL DEFAULT '[]';
ALTER TABLE runs ADD COLUMN tree TEXT NOT NULL DEFAULT '';
CREATE INDEX runs_by_project ON runs (project, pipeline_path, id DESC);
)sql",
      // 6: the failed test cases of a step's reports (a JSON array of
      // {suite, name, message}, at most the first 10) and how many more;
      // the command that enters the step's kept container, '' when none.
      R"sql(
ALTER TABLE steps ADD COLUMN failed_tests TEXT NOT NULL DEFAULT '[]';
ALTER TABLE steps ADD COLUMN failed_tests_more INTEGER NOT NULL DEFAULT 0;
ALTER TABLE steps ADD COLUMN kept TEXT NOT NULL DEFAULT '';
)sql",
      // 7: triggers (docs/server.md "Triggers"): the git ref a run was
      // taken from ('' when unknown), the run a re-run repeats, and per
      // repository, branch and cron expression of `on.schedule` the last
      // minute handled (seconds since the epoch), so that a restart never
      // fires one twice.
      R"sql(
ALTER TABLE runs ADD COLUMN ref TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN rerun_of INTEGER NOT NULL DEFAULT 0;
CREATE TABLE schedules (
  repo TEXT NOT NULL,
  branch TEXT NOT NULL,
  cron TEXT NOT NULL,
  last_fired INTEGER NOT NULL,
  PRIMARY KEY (repo, branch, cron)
) WITHOUT ROWID;
)sql",
      // 8: a matrix combination's step as written and its values
      // (docs/pipeline.md "Matrix"), as the JSON text
      // {"of": "test", "values": {"GO": "1.21"}} in the order written; ''
      // for other steps.
      R"sql(
ALTER TABLE steps ADD COLUMN matrix TEXT NOT NULL DEFAULT '';
)sql",
      // 9: what the pipeline said of a step: its needs, services and cache
      // (StepRecord::plan), as JSON text; '' for none.
      R"sql(
ALTER TABLE steps ADD COLUMN plan TEXT NOT NULL DEFAULT '';
)sql",
  };
  return kSteps;
}

constexpr const char* kRunColumns =
    "id, repo, pipeline, file, commit_id, branch, status, created_at, started_at,"
    " finished_at, message, workspace, owner_pid, owner_start, trigger,"
    " rollback_environment, resume_stage, source_run, project, pipeline_path, dirty,"
    " changed_paths, tree, ref, rerun_of";

// A status column: the word back as the enum. A word this ladle does not
// know means the database is not one it wrote.
Status StatusColumn(const Statement& st, int column, const char* table, RunStatus* out) {
  std::string word = st.ColumnText(column);
  if (ParseRunStatus(word, out)) return Status::OK();
  return Status::Internal(std::string("ladle.db: unknown status '") + word + "' in table " + table);
}

Status ReadRun(const Statement& st, RunRecord* run) {
  run->id = st.ColumnInt64(0);
  run->repo = st.ColumnText(1);
  run->pipeline = st.ColumnText(2);
  run->file = st.ColumnText(3);
  run->commit = st.ColumnText(4);
  run->branch = st.ColumnText(5);
  run->created_at = st.ColumnText(7);
  run->started_at = st.ColumnText(8);
  run->finished_at = st.ColumnText(9);
  run->message = st.ColumnText(10);
  run->workspace = st.ColumnText(11);
  run->owner_pid = st.ColumnInt(12);
  run->owner_start = st.ColumnInt64(13);
  run->trigger = st.ColumnText(14);
  run->rollback_environment = st.ColumnText(15);
  run->resume_stage = st.ColumnText(16);
  run->source_run = st.ColumnInt64(17);
  run->project = st.ColumnText(18);
  run->pipeline_path = st.ColumnText(19);
  run->dirty = st.ColumnInt(20) != 0;
  run->changed_paths = PathsFromJson(st.ColumnText(21));
  run->tree = st.ColumnText(22);
  run->ref = st.ColumnText(23);
  run->rerun_of = st.ColumnInt64(24);
  return StatusColumn(st, 6, "runs", &run->status);
}

// Every row of a prepared SELECT of kRunColumns, in order.
Status ReadRuns(Statement* st, std::vector<RunRecord>* runs) {
  runs->clear();
  bool row = false;
  Status s;
  while ((s = st->Step(&row)).ok() && row) {
    runs->emplace_back();
    if (!(s = ReadRun(*st, &runs->back())).ok()) break;
  }
  return s;
}

Status InsertStage(Database* db, int64_t run_id, int ordinal, const StageRecord& stage) {
  return Exec(db,
              "INSERT INTO stages (run_id, name, ordinal, status, environment, tests_total,"
              " tests_passed, tests_failed, tests_skipped, message)"
              " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
              run_id, stage.name, ordinal, ToString(stage.status), stage.environment,
              Count(stage.tests, &TestCounts::total), Count(stage.tests, &TestCounts::passed),
              Count(stage.tests, &TestCounts::failed), Count(stage.tests, &TestCounts::skipped),
              stage.message);
}

Status InsertStep(Database* db, int64_t run_id, const std::string& stage, int ordinal,
                  const StepRecord& step) {
  return Exec(db,
              "INSERT INTO steps (run_id, stage, name, ordinal, status, exit_code, attempts,"
              " started_at, finished_at, failure_reason, allow_failure, failed_tests,"
              " failed_tests_more, kept, matrix, plan)"
              " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
              run_id, stage, step.name, ordinal, ToString(step.status), step.exit_code, step.attempts,
              OrNull(step.started_at), OrNull(step.finished_at), ToString(step.failure_reason),
              step.allow_failure ? 1 : 0, FailedTestsText(step.failed_tests),
              step.failed_tests_more, step.kept, MatrixText(step), step.plan);
}

Status InsertRun(Database* db, RunRecord* run) {
  Status s = Exec(db,
                  "INSERT INTO runs (repo, pipeline, file, commit_id, branch, status,"
                  " created_at, started_at, finished_at, message, workspace, owner_pid,"
                  " owner_start, trigger, rollback_environment, resume_stage, source_run,"
                  " project, pipeline_path, dirty, changed_paths, tree, ref, rerun_of)"
                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,"
                  " ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24)",
                  run->repo, run->pipeline, run->file, run->commit, run->branch, ToString(run->status),
                  run->created_at, OrNull(run->started_at), OrNull(run->finished_at),
                  run->message, run->workspace, run->owner_pid, run->owner_start, run->trigger,
                  run->rollback_environment, run->resume_stage, run->source_run, run->project,
                  run->pipeline_path, run->dirty ? 1 : 0, PathsToJson(run->changed_paths),
                  run->tree, run->ref, run->rerun_of);
  if (s.ok()) run->id = db->last_insert_rowid();
  return s;
}

Status LoadStages(Database* db, RunRecord* run) {
  Statement st;
  Status s = db->Prepare(
      "SELECT name, status, environment, tests_total, tests_passed, tests_failed,"
      " tests_skipped, message FROM stages WHERE run_id = ?1 ORDER BY ordinal",
      &st);
  if (s.ok()) s = st.BindAll(run->id);
  bool row = false;
  while (s.ok() && (s = st.Step(&row)).ok() && row) {
    StageRecord stage;
    stage.name = st.ColumnText(0);
    if (!(s = StatusColumn(st, 1, "stages", &stage.status)).ok()) break;
    stage.environment = st.ColumnText(2);
    if (!st.ColumnIsNull(3)) {
      stage.tests = TestCounts{st.ColumnInt(3), st.ColumnInt(4), st.ColumnInt(5),
                               st.ColumnInt(6)};
    }
    stage.message = st.ColumnText(7);
    run->stages.push_back(std::move(stage));
  }
  return s;
}

Status LoadSteps(Database* db, RunRecord* run) {
  std::map<std::string, StageRecord*> by_name;
  for (StageRecord& stage : run->stages) by_name[stage.name] = &stage;
  Statement st;
  Status s = db->Prepare(
      "SELECT stage, name, status, exit_code, attempts, started_at, finished_at,"
      " failure_reason, allow_failure, failed_tests, failed_tests_more, kept, matrix, plan"
      " FROM steps"
      " WHERE run_id = ?1 ORDER BY ordinal",
      &st);
  if (s.ok()) s = st.BindAll(run->id);
  bool row = false;
  while (s.ok() && (s = st.Step(&row)).ok() && row) {
    StepRecord step;
    step.name = st.ColumnText(1);
    if (!(s = StatusColumn(st, 2, "steps", &step.status)).ok()) break;
    if (!st.ColumnIsNull(3)) step.exit_code = st.ColumnInt(3);
    step.attempts = st.ColumnInt(4);
    step.started_at = st.ColumnText(5);
    step.finished_at = st.ColumnText(6);
    if (!ParseFailureReason(st.ColumnText(7), &step.failure_reason)) {
      s = Status::Internal("ladle.db: unknown failure reason '" + st.ColumnText(7) + "'");
      break;
    }
    step.allow_failure = st.ColumnInt(8) != 0;
    step.failed_tests = ParseFailedTests(st.ColumnText(9));
    step.failed_tests_more = st.ColumnInt(10);
    step.kept = st.ColumnText(11);
    ParseMatrix(st.ColumnText(12), &step);
    step.plan = st.ColumnText(13);
    auto it = by_name.find(st.ColumnText(0));
    if (it != by_name.end()) it->second->steps.push_back(std::move(step));
  }
  return s;
}

// Runs an UPDATE of one row; NotFound when it matched nothing.
template <typename... Args>
Status UpdateOne(Database* db, const std::string& what, const std::string& sql,
                 const Args&... args) {
  Status s = Exec(db, sql, args...);
  if (s.ok() && db->changes() == 0) return Status::NotFound(what + " not found");
  return s;
}

constexpr const char* kDeploymentColumns =
    "id, environment, run_id, stage, repo, commit_id, branch, status, rollback, started_at,"
    " finished_at, (SELECT runs.dirty FROM runs WHERE runs.id = deployments.run_id)";

Status ReadDeployment(const Statement& st, DeploymentRecord* d) {
  d->id = st.ColumnInt64(0);
  d->environment = st.ColumnText(1);
  d->run_id = st.ColumnInt64(2);
  d->stage = st.ColumnText(3);
  d->repo = st.ColumnText(4);
  d->commit = st.ColumnText(5);
  d->branch = st.ColumnText(6);
  d->rollback = st.ColumnInt(8) != 0;
  d->started_at = st.ColumnText(9);
  d->finished_at = st.ColumnText(10);
  d->dirty = st.ColumnInt(11) != 0;
  return StatusColumn(st, 7, "deployments", &d->status);
}

Status LoadRunDeployment(Database* db, RunRecord* run) {
  Statement st;
  Status s = db->Prepare(std::string("SELECT ") + kDeploymentColumns +
                             " FROM deployments WHERE run_id = ?1 ORDER BY id DESC LIMIT 1",
                         &st);
  bool row = false;
  if (s.ok()) s = st.BindAll(run->id);
  if (s.ok()) s = st.Step(&row);
  if (s.ok() && row) {
    run->deployment.emplace();
    s = ReadDeployment(st, &*run->deployment);
  }
  return s;
}

Status InsertStagesAndSteps(Database* db, const RunRecord& run) {
  Status s;
  for (size_t i = 0; s.ok() && i < run.stages.size(); ++i) {
    const StageRecord& stage = run.stages[i];
    s = InsertStage(db, run.id, static_cast<int>(i), stage);
    for (size_t j = 0; s.ok() && j < stage.steps.size(); ++j) {
      s = InsertStep(db, run.id, stage.name, static_cast<int>(j), stage.steps[j]);
    }
  }
  return s;
}

// The running/waiting runs whose owner is gone. Queued runs are the
// server's queue: they wait for the next `ladle serve`, whoever queued them. A waiting run that has
// finished_at was ended by `ladle run` on purpose (no one to approve): it
// stays waiting, resumed by `ladle run --from`.
Status FindOrphans(Database* db, std::vector<std::pair<int64_t, int>>* orphans) {
  Statement st;
  Status s = db->Prepare(
      "SELECT id, owner_pid, owner_start FROM runs"
      " WHERE status = 'running'"
      " OR (status = 'waiting' AND (finished_at IS NULL OR finished_at = ''))"
      " ORDER BY id",
      &st);
  bool row = false;
  while (s.ok() && (s = st.Step(&row)).ok() && row) {
    if (!OwnerAlive(st.ColumnInt(1), st.ColumnInt64(2))) {
      orphans->emplace_back(st.ColumnInt64(0), st.ColumnInt(1));
    }
  }
  return s;
}

// What was under way becomes interrupted; what had not started, skipped.
Status InterruptRun(Database* db, int64_t id, int pid, const std::string& now) {
  const std::string message =
      "interrupted: the ladle process that ran it (pid " + std::to_string(pid) + ") is gone";
  Status s = Exec(db,
                  "UPDATE runs SET status = 'interrupted', finished_at = ?2,"
                  " message = CASE WHEN message = '' THEN ?3 ELSE message END WHERE id = ?1",
                  id, now, message);
  if (s.ok()) {
    s = Exec(db,
             "UPDATE stages SET status = CASE status WHEN 'queued' THEN 'skipped'"
             " ELSE 'interrupted' END"
             " WHERE run_id = ?1 AND status IN ('running', 'waiting', 'queued')",
             id);
  }
  if (s.ok()) {
    s = Exec(db,
             "UPDATE steps SET"
             " finished_at = CASE status WHEN 'queued' THEN finished_at ELSE ?2 END,"
             " status = CASE status WHEN 'queued' THEN 'skipped' ELSE 'interrupted' END"
             " WHERE run_id = ?1 AND status IN ('running', 'waiting', 'queued')",
             id, now);
  }
  if (s.ok()) {
    s = Exec(db,
             "UPDATE deployments SET status = 'interrupted', finished_at = ?2"
             " WHERE run_id = ?1 AND status = 'running'",
             id, now);
  }
  return s;
}

void SetOwner(RunRecord* run) {
  run->owner_pid = static_cast<int>(::getpid());
  run->owner_start = ProcessStartTime(run->owner_pid);
}

// A flock on DATA/locks/FILE.lock, held while the descriptor is open.
class FileLock final : public StoreLock {
 public:
  explicit FileLock(int fd) : fd_(fd) {}
  ~FileLock() override { ::close(fd_); }  // releases the flock

 private:
  int fd_;
};

class SqliteRunStore final : public RunStore {
 public:
  SqliteRunStore(std::string data_dir, std::unique_ptr<Database> db)
      : RunStore(std::move(data_dir)), db_(std::move(db)) {}

  Status CreateRun(RunRecord* run) override;
  Status UpdateRun(const RunRecord& run) override;
  Status UpdateStage(int64_t run_id, const StageRecord& stage) override;
  Status UpdateStep(int64_t run_id, const std::string& stage, const StepRecord& step) override;
  Status UpdateSteps(int64_t run_id, const std::string& stage,
                     const std::vector<StepRecord>& steps) override;
  Status GetRun(int64_t id, RunRecord* run) override;
  Status ListRuns(const RunFilter& filter, std::vector<RunRecord>* runs) override;
  using RunStore::FindLastSuccessfulStep;
  Status FindLastSuccessfulStep(const std::string& file, const std::string& stage,
                                const std::string& step, int64_t before,
                                int64_t* run_id) override;
  Status FindLastSuccessfulStepOf(const std::string& project, const std::string& pipeline_path,
                                  const std::string& stage, const std::string& step,
                                  int64_t before, int64_t* run_id) override;
  Status MarkInterrupted(std::vector<int64_t>* ids) override;
  Status EnqueueRun(RunRecord* run, std::vector<int64_t>* superseded) override;
  Status HasRunForCommit(const std::string& repo, const std::string& branch,
                         const std::string& commit, bool* exists) override;
  Status HasRunForRef(const std::string& repo, const std::string& ref, const std::string& commit,
                      bool* exists) override;
  Status LastScheduleFire(const std::string& repo, const std::string& branch,
                          const std::string& cron, int64_t* last) override;
  Status ClaimScheduleFire(const std::string& repo, const std::string& branch,
                           const std::string& cron, int64_t minute, bool* fresh) override;
  Status ClaimDelivery(const std::string& id, const std::string& repo, std::chrono::seconds keep,
                       bool* fresh) override;
  Status ForgetDelivery(const std::string& id) override;
  Status ListQueued(std::vector<RunRecord>* runs) override;
  Status StartRun(RunRecord* run) override;
  Status RequeueRun(int64_t id, const std::string& resume_stage) override;
  Status DeleteFinishedBefore(const std::string& cutoff, std::vector<int64_t>* ids) override;
  Status ClearKept() override;
  Status BeginDeployment(DeploymentRecord* d) override;
  Status FinishDeployment(int64_t id, RunStatus status) override;
  Status ListDeployments(const std::string& environment, int limit, int64_t before,
                         std::vector<DeploymentRecord>* out) override;
  Status TryLock(const std::string& name, std::unique_ptr<StoreLock>* lock) override;
  Status ClaimRun(int64_t id, bool* claimed) override;

 private:
  Status UpdateStepLocked(int64_t run_id, const std::string& stage, const StepRecord& step);

  std::mutex mu_;  // guards db_ and the statements below
  std::unique_ptr<Database> db_;
  Statement update_step_;  // UpdateStep's, prepared on first use; before db_ goes
};

}  // namespace

Status OpenSqliteRunStore(const std::string& data_dir, std::unique_ptr<RunStore>* store) {
  struct stat info;
  if (::stat(data_dir.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    return Status::IoError("open run store: data dir " + data_dir + " is not a directory");
  }
  std::unique_ptr<Database> db;
  Status s = Database::Open(data_dir + "/ladle.db", &db);
  if (s.ok()) s = db->Migrate(Migrations());
  if (!s.ok()) return s.WithContext("open run store");
  store->reset(new SqliteRunStore(data_dir, std::move(db)));
  return Status::OK();
}

Status SqliteRunStore::CreateRun(RunRecord* run) {
  if (run->created_at.empty()) run->created_at = NowRfc3339();
  if (run->owner_pid == 0) {
    run->owner_pid = static_cast<int>(::getpid());
    run->owner_start = ProcessStartTime(run->owner_pid);
  }
  std::lock_guard<std::mutex> lock(mu_);
  Transaction txn(db_.get());
  Status s = txn.Begin();
  if (s.ok()) s = InsertRun(db_.get(), run);
  if (s.ok()) s = InsertStagesAndSteps(db_.get(), *run);
  if (s.ok()) s = txn.Commit();
  if (!s.ok()) run->id = 0;
  return s.WithContext("create run");
}

Status SqliteRunStore::UpdateRun(const RunRecord& run) {
  std::lock_guard<std::mutex> lock(mu_);
  return UpdateOne(db_.get(), "run " + std::to_string(run.id),
                   "UPDATE runs SET status = ?2, started_at = ?3, finished_at = ?4,"
                   " message = ?5, workspace = ?6, project = ?7, pipeline_path = ?8,"
                   " dirty = ?9, changed_paths = ?10, tree = ?11 WHERE id = ?1",
                   run.id, ToString(run.status), OrNull(run.started_at), OrNull(run.finished_at),
                   run.message, run.workspace, run.project, run.pipeline_path, run.dirty ? 1 : 0,
                   PathsToJson(run.changed_paths), run.tree);
}

Status SqliteRunStore::UpdateStage(int64_t run_id, const StageRecord& stage) {
  std::lock_guard<std::mutex> lock(mu_);
  return UpdateOne(db_.get(), "stage " + stage.name + " of run " + std::to_string(run_id),
                   "UPDATE stages SET status = ?3, tests_total = ?4, tests_passed = ?5,"
                   " tests_failed = ?6, tests_skipped = ?7, message = ?8"
                   " WHERE run_id = ?1 AND name = ?2",
                   run_id, stage.name, ToString(stage.status), Count(stage.tests, &TestCounts::total),
                   Count(stage.tests, &TestCounts::passed),
                   Count(stage.tests, &TestCounts::failed),
                   Count(stage.tests, &TestCounts::skipped), stage.message);
}

Status SqliteRunStore::ClearKept() {
  std::lock_guard<std::mutex> lock(mu_);
  return Exec(db_.get(), "UPDATE steps SET kept = '' WHERE kept != ''");
}

Status SqliteRunStore::UpdateStep(int64_t run_id, const std::string& stage, const StepRecord& step) {
  std::lock_guard<std::mutex> lock(mu_);
  return UpdateStepLocked(run_id, stage, step);
}

Status SqliteRunStore::UpdateSteps(int64_t run_id, const std::string& stage,
                                   const std::vector<StepRecord>& steps) {
  std::lock_guard<std::mutex> lock(mu_);
  Transaction txn(db_.get());
  Status s = txn.Begin();
  for (size_t i = 0; s.ok() && i < steps.size(); ++i) s = UpdateStepLocked(run_id, stage, steps[i]);
  if (s.ok()) s = txn.Commit();
  return s;
}

Status SqliteRunStore::UpdateStepLocked(int64_t run_id, const std::string& stage,
                                        const StepRecord& step) {
  // Twice per step (running, then its end): prepared once, kept with the
  // connection (docs/benchmarks.md "ladle run on the local backend").
  Status s;
  if (!update_step_.valid()) {
    s = db_->Prepare(
        "UPDATE steps SET status = ?4, exit_code = ?5, attempts = ?6,"
        " started_at = ?7, finished_at = ?8, failure_reason = ?9,"
        " allow_failure = ?10, failed_tests = ?11, failed_tests_more = ?12,"
        " kept = ?13"
        " WHERE run_id = ?1 AND stage = ?2 AND name = ?3",
        &update_step_);
  }
  if (s.ok())
    s = update_step_.BindAll(run_id, stage, step.name, ToString(step.status), step.exit_code,
                             step.attempts, OrNull(step.started_at), OrNull(step.finished_at),
                             ToString(step.failure_reason), step.allow_failure ? 1 : 0,
                             FailedTestsText(step.failed_tests), step.failed_tests_more,
                             step.kept);
  if (s.ok()) s = update_step_.Run();
  Status reset = update_step_.valid() ? update_step_.Reset() : Status::OK();
  if (s.ok()) s = reset;
  if (s.ok() && db_->changes() == 0)
    return Status::NotFound("step " + stage + "/" + step.name + " of run " +
                            std::to_string(run_id) + " not found");
  return s;
}

Status SqliteRunStore::GetRun(int64_t id, RunRecord* run) {
  std::lock_guard<std::mutex> lock(mu_);
  Statement st;
  Status s = db_->Prepare(std::string("SELECT ") + kRunColumns + " FROM runs WHERE id = ?1", &st);
  bool row = false;
  if (s.ok()) s = st.BindAll(id);
  if (s.ok()) s = st.Step(&row);
  if (!s.ok()) return s;
  if (!row) return Status::NotFound("run " + std::to_string(id) + " not found");
  *run = RunRecord();
  s = ReadRun(st, run);
  if (s.ok()) s = LoadStages(db_.get(), run);
  if (s.ok()) s = LoadSteps(db_.get(), run);
  if (s.ok()) s = LoadRunDeployment(db_.get(), run);
  return s;
}

Status SqliteRunStore::ListRuns(const RunFilter& filter, std::vector<RunRecord>* runs) {
  std::string sql = std::string("SELECT ") + kRunColumns + " FROM runs WHERE 1";
  // Only the filters in use appear in the SQL, so sqlite can pick their index.
  if (!filter.repo.empty()) sql += " AND repo = :repo";
  if (!filter.branch.empty()) sql += " AND branch = :branch";
  if (!filter.status.empty()) sql += " AND status = :status";
  if (filter.before > 0) sql += " AND id < :before";
  sql += " ORDER BY id DESC LIMIT :limit";
  std::lock_guard<std::mutex> lock(mu_);
  Statement st;
  Status s = db_->Prepare(sql, &st);
  if (s.ok() && !filter.repo.empty()) s = st.Bind(":repo", filter.repo);
  if (s.ok() && !filter.branch.empty()) s = st.Bind(":branch", filter.branch);
  if (s.ok() && !filter.status.empty()) s = st.Bind(":status", filter.status);
  if (s.ok() && filter.before > 0) s = st.Bind(":before", filter.before);
  if (s.ok()) s = st.Bind(":limit", filter.limit > 0 ? filter.limit : -1);
  return s.ok() ? ReadRuns(&st, runs) : s;
}

Status SqliteRunStore::FindLastSuccessfulStep(const std::string& file, const std::string& stage,
                                        const std::string& step, int64_t before,
                                        int64_t* run_id) {
  std::lock_guard<std::mutex> lock(mu_);
  Statement st;
  Status s = db_->Prepare(
      "SELECT runs.id FROM runs JOIN steps ON steps.run_id = runs.id"
      " AND steps.stage = ?2 AND steps.name = ?3"
      " WHERE runs.file = ?1 AND steps.status = 'success' AND (?4 = 0 OR runs.id < ?4)"
      " ORDER BY runs.id DESC LIMIT 1",
      &st);
  bool row = false;
  if (s.ok()) s = st.BindAll(file, stage, step, before);
  if (s.ok()) s = st.Step(&row);
  if (s.ok()) *run_id = row ? st.ColumnInt64(0) : 0;
  return s;
}

Status SqliteRunStore::FindLastSuccessfulStepOf(const std::string& project,
                                          const std::string& pipeline_path,
                                          const std::string& stage, const std::string& step,
                                          int64_t before, int64_t* run_id) {
  std::lock_guard<std::mutex> lock(mu_);
  Statement st;
  Status s = db_->Prepare(
      "SELECT runs.id FROM runs JOIN steps ON steps.run_id = runs.id"
      " AND steps.stage = ?3 AND steps.name = ?4"
      " WHERE runs.project = ?1 AND runs.pipeline_path = ?2 AND steps.status = 'success'"
      " AND (?5 = 0 OR runs.id < ?5) ORDER BY runs.id DESC LIMIT 1",
      &st);
  bool row = false;
  if (s.ok()) s = st.BindAll(project, pipeline_path, stage, step, before);
  if (s.ok()) s = st.Step(&row);
  if (s.ok()) *run_id = row ? st.ColumnInt64(0) : 0;
  return s;
}

Status SqliteRunStore::MarkInterrupted(std::vector<int64_t>* ids) {
  std::lock_guard<std::mutex> lock(mu_);
  ids->clear();
  // Under the write lock, so two ladles starting at once do not both mark
  // (or one mark what the other has just created).
  Transaction txn(db_.get());
  std::vector<std::pair<int64_t, int>> orphans;
  Status s = txn.Begin();
  if (s.ok()) s = FindOrphans(db_.get(), &orphans);
  const std::string now = NowRfc3339();
  for (size_t i = 0; s.ok() && i < orphans.size(); ++i) {
    s = InterruptRun(db_.get(), orphans[i].first, orphans[i].second, now);
  }
  if (s.ok()) s = txn.Commit();
  if (!s.ok()) return s.WithContext("mark interrupted runs");
  for (const auto& orphan : orphans) ids->push_back(orphan.first);
  return Status::OK();
}

// ---- the server's queue ----

Status SqliteRunStore::EnqueueRun(RunRecord* run, std::vector<int64_t>* superseded) {
  run->status = kQueued;
  if (run->created_at.empty()) run->created_at = NowRfc3339();
  SetOwner(run);
  superseded->clear();
  std::lock_guard<std::mutex> lock(mu_);
  Transaction txn(db_.get());
  Status s = txn.Begin();
  if (s.ok()) s = InsertRun(db_.get(), run);
  Statement st;
  if (s.ok() && rows::Supersedes(*run)) {
    s = db_->Prepare(
        "SELECT id FROM runs WHERE repo = ?1 AND branch = ?2 AND status = 'queued'"
        " AND rollback_environment = '' AND resume_stage = '' AND id < ?3"
        " AND (ref = ?4 OR ref = '') AND trigger NOT IN ('rerun', 'schedule', 'api')"
        " ORDER BY id",
        &st);
    if (s.ok()) s = st.BindAll(run->repo, run->branch, run->id, run->ref);
    bool row = false;
    while (s.ok() && (s = st.Step(&row)).ok() && row) superseded->push_back(st.ColumnInt64(0));
  }
  const std::string now = NowRfc3339();
  for (size_t i = 0; s.ok() && i < superseded->size(); ++i) {
    s = Exec(db_.get(),
             "UPDATE runs SET status = 'superseded', finished_at = ?2, message = ?3 WHERE id = ?1",
             (*superseded)[i], now, rows::SupersededMessage(*run));
  }
  if (s.ok()) s = txn.Commit();
  if (!s.ok()) {
    run->id = 0;
    superseded->clear();
  }
  return s.WithContext("queue a run");
}

Status SqliteRunStore::HasRunForCommit(const std::string& repo, const std::string& branch,
                                 const std::string& commit, bool* exists) {
  std::lock_guard<std::mutex> lock(mu_);
  Statement st;
  Status s = db_->Prepare(
      "SELECT 1 FROM runs WHERE repo = ?1 AND commit_id = ?3 AND branch = ?2"
      " AND rollback_environment = '' LIMIT 1",
      &st);
  bool row = false;
  if (s.ok()) s = st.BindAll(repo, branch, commit);
  if (s.ok()) s = st.Step(&row);
  *exists = row;
  return s;
}

Status SqliteRunStore::HasRunForRef(const std::string& repo, const std::string& ref,
                              const std::string& commit, bool* exists) {
  std::lock_guard<std::mutex> lock(mu_);
  Statement st;
  Status s = db_->Prepare(
      "SELECT 1 FROM runs WHERE repo = ?1 AND commit_id = ?3 AND ref = ?2"
      " AND rollback_environment = '' AND trigger NOT IN ('rerun', 'api', 'schedule') LIMIT 1",
      &st);
  bool row = false;
  if (s.ok()) s = st.BindAll(repo, ref, commit);
  if (s.ok()) s = st.Step(&row);
  *exists = row;
  return s;
}

Status SqliteRunStore::LastScheduleFire(const std::string& repo, const std::string& branch,
                                  const std::string& cron, int64_t* last) {
  *last = 0;
  std::lock_guard<std::mutex> lock(mu_);
  Statement st;
  Status s = db_->Prepare(
      "SELECT last_fired FROM schedules WHERE repo = ?1 AND branch = ?2 AND cron = ?3", &st);
  bool row = false;
  if (s.ok()) s = st.BindAll(repo, branch, cron);
  if (s.ok()) s = st.Step(&row);
  if (s.ok() && row) *last = st.ColumnInt64(0);
  return s.WithContext("read the schedule of " + repo + " " + branch);
}

Status SqliteRunStore::ClaimScheduleFire(const std::string& repo, const std::string& branch,
                                   const std::string& cron, int64_t minute, bool* fresh) {
  *fresh = false;
  std::lock_guard<std::mutex> lock(mu_);
  Statement st;
  Status s = db_->Prepare(
      "INSERT INTO schedules (repo, branch, cron, last_fired) VALUES (?1, ?2, ?3, ?4)"
      " ON CONFLICT (repo, branch, cron) DO UPDATE SET last_fired = excluded.last_fired"
      " WHERE schedules.last_fired < excluded.last_fired",
      &st);
  if (s.ok()) s = st.BindAll(repo, branch, cron, minute);
  if (s.ok()) s = st.Run();
  if (s.ok()) *fresh = db_->changes() == 1;
  return s.WithContext("record the schedule of " + repo + " " + branch);
}

Status SqliteRunStore::ClaimDelivery(const std::string& id, const std::string& repo,
                               std::chrono::seconds keep, bool* fresh) {
  *fresh = false;
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  std::lock_guard<std::mutex> lock(mu_);
  Statement prune, insert;
  Status s = db_->Prepare("DELETE FROM deliveries WHERE received_at < ?1", &prune);
  if (s.ok()) s = prune.BindAll(now - keep.count());
  if (s.ok()) s = prune.Run();
  if (s.ok())
    s = db_->Prepare(
        "INSERT INTO deliveries (id, repo, received_at) VALUES (?1, ?2, ?3)"
        " ON CONFLICT (id) DO NOTHING",
        &insert);
  if (s.ok()) s = insert.BindAll(id, repo, now);
  if (s.ok()) s = insert.Run();
  if (s.ok()) *fresh = db_->changes() == 1;
  return s.WithContext("record webhook delivery " + id);
}

Status SqliteRunStore::ForgetDelivery(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  Statement st;
  Status s = db_->Prepare("DELETE FROM deliveries WHERE id = ?1", &st);
  if (s.ok()) s = st.BindAll(id);
  if (s.ok()) s = st.Run();
  return s.WithContext("forget webhook delivery " + id);
}

Status SqliteRunStore::ListQueued(std::vector<RunRecord>* runs) {
  std::lock_guard<std::mutex> lock(mu_);
  Statement st;
  Status s = db_->Prepare(
      std::string("SELECT ") + kRunColumns + " FROM runs WHERE status = 'queued' ORDER BY id", &st);
  return s.ok() ? ReadRuns(&st, runs) : s;
}

Status SqliteRunStore::StartRun(RunRecord* run) {
  SetOwner(run);
  std::lock_guard<std::mutex> lock(mu_);
  Transaction txn(db_.get());
  Status s = txn.Begin();
  // Only a queued run starts: one superseded or cancelled since a worker
  // took it stays as it is (the check and the start are one transaction).
  if (s.ok()) {
    Statement st;
    bool row = false;
    s = db_->Prepare("SELECT status FROM runs WHERE id = ?1", &st);
    if (s.ok()) s = st.BindAll(run->id);
    if (s.ok()) s = st.Step(&row);
    if (s.ok() && !row) s = Status::NotFound("run " + std::to_string(run->id) + " not found");
    if (s.ok() && st.ColumnText(0) != ToString(kQueued))
      s = Status::Conflict("run " + std::to_string(run->id) + " is " + st.ColumnText(0) +
                           ", no longer queued");
  }
  if (s.ok()) s = Exec(db_.get(), "DELETE FROM steps WHERE run_id = ?1", run->id);
  if (s.ok()) s = Exec(db_.get(), "DELETE FROM stages WHERE run_id = ?1", run->id);
  if (s.ok()) {
    s = UpdateOne(db_.get(), "run " + std::to_string(run->id),
                  "UPDATE runs SET pipeline = ?2, file = ?3, status = ?4, started_at = ?5,"
                  " finished_at = NULL, workspace = ?6, owner_pid = ?7, owner_start = ?8,"
                  " resume_stage = ?9, message = ?10, project = ?11, pipeline_path = ?12"
                  " WHERE id = ?1",
                  run->id, run->pipeline, run->file, ToString(run->status), OrNull(run->started_at),
                  run->workspace, run->owner_pid, run->owner_start, run->resume_stage,
                  run->message, run->project, run->pipeline_path);
  }
  if (s.ok()) s = InsertStagesAndSteps(db_.get(), *run);
  if (s.ok()) s = txn.Commit();
  return s.WithContext("start run " + std::to_string(run->id));
}

Status SqliteRunStore::RequeueRun(int64_t id, const std::string& resume_stage) {
  RunRecord owner;
  SetOwner(&owner);
  std::lock_guard<std::mutex> lock(mu_);
  return UpdateOne(db_.get(), "run " + std::to_string(id),
                   "UPDATE runs SET status = 'queued', finished_at = NULL, owner_pid = ?2,"
                   " owner_start = ?3, resume_stage = ?4,"
                   " trigger = CASE WHEN ?4 = '' THEN 'requeue' ELSE trigger END"
                   " WHERE id = ?1",
                   id, owner.owner_pid, owner.owner_start, resume_stage);
}

Status SqliteRunStore::DeleteFinishedBefore(const std::string& cutoff, std::vector<int64_t>* ids) {
  std::lock_guard<std::mutex> lock(mu_);
  ids->clear();
  Transaction txn(db_.get());
  Status s = txn.Begin();
  Statement st;
  if (s.ok())
    s = db_->Prepare(
        "SELECT id FROM runs WHERE status NOT IN ('queued', 'running', 'waiting')"
        " AND finished_at IS NOT NULL AND finished_at < ?1 ORDER BY id",
        &st);
  if (s.ok()) s = st.BindAll(cutoff);
  bool row = false;
  while (s.ok() && (s = st.Step(&row)).ok() && row) ids->push_back(st.ColumnInt64(0));
  for (size_t i = 0; s.ok() && i < ids->size(); ++i) {
    s = Exec(db_.get(), "DELETE FROM steps WHERE run_id = ?1", (*ids)[i]);
    if (s.ok()) s = Exec(db_.get(), "DELETE FROM stages WHERE run_id = ?1", (*ids)[i]);
    if (s.ok()) s = Exec(db_.get(), "DELETE FROM runs WHERE id = ?1", (*ids)[i]);
  }
  if (s.ok()) s = txn.Commit();
  if (!s.ok()) ids->clear();
  return s.WithContext("prune runs");
}

// ---- deployments ----

Status SqliteRunStore::BeginDeployment(DeploymentRecord* d) {
  d->status = kRunning;
  d->started_at = NowRfc3339();
  d->finished_at.clear();
  std::lock_guard<std::mutex> lock(mu_);
  Status s = Exec(db_.get(),
                  "INSERT INTO deployments (environment, run_id, stage, repo, commit_id, branch,"
                  " status, rollback, started_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                  d->environment, d->run_id, d->stage, d->repo, d->commit, d->branch, ToString(d->status),
                  d->rollback ? 1 : 0, d->started_at);
  if (s.ok()) d->id = db_->last_insert_rowid();
  return s.WithContext("record the deployment to " + d->environment);
}

Status SqliteRunStore::FinishDeployment(int64_t id, RunStatus status) {
  std::lock_guard<std::mutex> lock(mu_);
  return UpdateOne(db_.get(), "deployment " + std::to_string(id),
                   "UPDATE deployments SET status = ?2, finished_at = ?3 WHERE id = ?1", id,
                   ToString(status), NowRfc3339());
}

Status SqliteRunStore::ListDeployments(const std::string& environment, int limit, int64_t before,
                                 std::vector<DeploymentRecord>* out) {
  std::string sql = std::string("SELECT ") + kDeploymentColumns + " FROM deployments WHERE 1";
  if (!environment.empty()) sql += " AND environment = :environment";
  if (before > 0) sql += " AND id < :before";
  sql += " ORDER BY id DESC LIMIT :limit";
  std::lock_guard<std::mutex> lock(mu_);
  Statement st;
  Status s = db_->Prepare(sql, &st);
  if (s.ok() && !environment.empty()) s = st.Bind(":environment", environment);
  if (s.ok() && before > 0) s = st.Bind(":before", before);
  if (s.ok()) s = st.Bind(":limit", limit > 0 ? limit : -1);
  out->clear();
  bool row = false;
  while (s.ok() && (s = st.Step(&row)).ok() && row) {
    out->emplace_back();
    if (!(s = ReadDeployment(st, &out->back())).ok()) break;
  }
  return s;
}

// ---- locks ----

Status SqliteRunStore::TryLock(const std::string& name, std::unique_ptr<StoreLock>* lock) {
  lock->reset();
  // "environment/ENV" is DATA/locks/ENV.lock, the file `ladle run` and
  // `ladle serve` on one data dir both take (docs/server.md "Deployments").
  const std::string prefix = "environment/";
  const std::string file = name.compare(0, prefix.size(), prefix) == 0
                               ? name.substr(prefix.size())
                               : "ladle-" + name;
  const std::filesystem::path dir = std::filesystem::path(data_dir()) / "locks";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const std::string path = (dir / (file + ".lock")).string();
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Status::FromErrno("open the lock " + path, errno);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) return Status::OK();
    return Status::FromErrno("lock " + path, err);
  }
  lock->reset(new FileLock(fd));
  return Status::OK();
}

Status SqliteRunStore::ClaimRun(int64_t id, bool* claimed) {
  *claimed = false;
  std::lock_guard<std::mutex> lock(mu_);
  Statement st;
  Status s = db_->Prepare("SELECT status FROM runs WHERE id = ?1", &st);
  bool row = false;
  if (s.ok()) s = st.BindAll(id);
  if (s.ok()) s = st.Step(&row);
  if (s.ok()) *claimed = row && st.ColumnText(0) == ToString(kQueued);
  return s.WithContext("claim run " + std::to_string(id));
}

}  // namespace ladle::runner
