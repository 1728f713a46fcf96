// RunStore: the history of runs, their stages and steps, the server's queue
// and the deployments; an interface with two implementations
// (docs/design.md "Two stores: SQLite and PostgreSQL"):
// - SQLite (sqlite_run_store.cc): one database file per data dir
//   (DATA/ladle.db), WAL mode, schema tracked by PRAGMA user_version; a run's
//   owner is a process on this machine (pid and start time).
// - PostgreSQL (pg_run_store.cc): one database shared by several `ladle
//   serve` replicas; a run's owner is a replica holding a lease.
// Every write is one short transaction, so a crashed ladle leaves the last
// acknowledged state. Thread-safe: every method may be called from any thread.
#ifndef LADLE_RUNNER_STORE_RUN_STORE_H_
#define LADLE_RUNNER_STORE_RUN_STORE_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/base/status.h"
#include "runner/store/run_status.h"

namespace ladle::runner {

struct TestCounts {
  int total = 0;
  int passed = 0;
  int failed = 0;
  int skipped = 0;
};

// A failed test case of a step's JUnit reports (docs/running.md "Tests by
// name"): its suite (the classname, else the suite's name), its name, and the
// first line of its message.
struct FailedTest {
  std::string suite;
  std::string name;
  std::string message;
};

// "suite.name: message" (the suite dropped when the name already starts with
// it, as jest-junit repeats it), for people.
std::string FailedTestLine(const FailedTest& test);

struct StepRecord {
  std::string name;
  RunStatus status = kQueued;
  std::optional<int> exit_code;
  int attempts = 0;
  std::string started_at;       // RFC 3339 UTC, empty when not started
  std::string finished_at;
  FailureReason failure_reason = FailureReason::kNone;
  bool allow_failure = false;
  std::vector<FailedTest> failed_tests;  // the first ones (kMaxListedFailures), in report order
  int failed_tests_more = 0;             // failed tests not listed
  std::string kept;  // the command that enters its kept container, "" when none
  // docs/pipeline.md "Matrix": a combination's step as written ("test")
  // and its values in the order written; "" and none for other steps.
  std::string matrix_of;
  std::vector<std::pair<std::string, std::string>> matrix_values;
  // What the pipeline said of the step, for people and the web UI's graph
  // (docs/design.md "JSON shapes"): a JSON object with `needs` (the steps it
  // waits for, "STEP" or "STAGE/STEP"), `services` ([{name, image, port}])
  // and `cache` ({paths, key | files, policy}), each only when set; "" when
  // none. Written when the run is planned, never changed.
  std::string plan;

  // "test [GO=1.21, OS=linux]" for a combination, else the name.
  std::string DisplayName() const;
};

struct StageRecord {
  std::string name;
  RunStatus status = kQueued;
  std::string environment;
  std::optional<TestCounts> tests;  // set when the stage has reports or a gate
  std::string message;              // why it failed or was skipped, for people
  std::vector<StepRecord> steps;
};

// A deployment: a stage with `environment` that ran (docs/server.md "Deployments").
struct DeploymentRecord {
  int64_t id = 0;
  std::string environment;
  int64_t run_id = 0;
  std::string stage;
  std::string repo, commit, branch;
  RunStatus status = kRunning;  // running, success, failed, cancelled, interrupted
  bool rollback = false;          // a rollback run's redeploy
  bool dirty = false;             // its run's working tree differed from the commit
  std::string started_at, finished_at;
};

// How many changed paths a run records.
constexpr size_t kMaxChangedPaths = 1000;

// "abc1234" or "abc1234+dirty": a commit as people read it (runs, show,
// deployments); "" for no commit.
std::string ShortCommit(const std::string& commit, bool dirty);

struct RunRecord {
  int64_t id = 0;
  std::string repo;        // the repository name (serve) or the working tree's path (run)
  std::string pipeline;    // the pipeline's name
  std::string file;        // the pipeline file
  std::string commit;
  std::string branch;
  RunStatus status = kQueued;
  std::string created_at;
  std::string started_at;
  std::string finished_at;
  std::string message;
  std::string workspace;   // host path of the run's workspace
  int owner_pid = 0;       // the process running it, with its start time (from /proc),
  int64_t owner_start = 0; // so a dead owner is told apart from a live one
  // Why the run exists: "" (ladle run), "repro" (ladle repro), "push"
  // (webhook), "poll", "start" (found at server start), "rollback", "requeue",
  // "pull_request", "schedule", "api" (POST /api/v1/runs), "rerun".
  std::string trigger;
  std::string rollback_environment;  // a rollback run: the environment it redeploys
  std::string resume_stage;          // a queued run that resumes at this stage (approval)
  int64_t source_run = 0;            // a rollback: the run whose deployment it repeats
  // Where the run comes from (docs/running.md "Same inputs as CI"): its
  // project (the repository's root for `ladle run`, the repository's name for
  // `ladle serve`, the pipeline file's directory outside git) and the
  // pipeline's path relative to it. Artifacts are restored only between runs
  // of the same project and pipeline path.
  std::string project;
  std::string pipeline_path;
  // True when the working tree differed from `commit` (`ladle run`); the
  // paths that differed (at most kMaxChangedPaths), and the git tree id of
  // what ran ("" outside git).
  bool dirty = false;
  std::vector<std::string> changed_paths;
  std::string tree;
  // docs/server.md "Triggers": the git ref the run was taken from
  // ("refs/heads/main", "refs/tags/v1.2", "refs/pull/7/head",
  // "refs/merge-requests/7/head"; "" for a commit asked for by id, and for
  // runs recorded before refs were), and the run a re-run repeats (0: none).
  std::string ref;
  int64_t rerun_of = 0;
  // docs/server.md "Replicas": the replica that runs it ("" on SQLite, and
  // before a replica started it).
  std::string replica;
  std::vector<StageRecord> stages;
  std::optional<DeploymentRecord> deployment;  // GetRun: the run's latest deployment
};

// A `ladle serve` sharing a PostgreSQL store (docs/server.md "Replicas").
struct ReplicaInfo {
  std::string id;           // unique per process start
  std::string url;          // its API's base URL, for the other replicas
  std::string started_at;   // RFC 3339 UTC
  std::string lease_until;  // on the database's clock
};

// A named lock a store holds for this process until destroyed.
class StoreLock {
 public:
  virtual ~StoreLock() = default;
  // False once the lock may have been lost (PostgreSQL: the connection that
  // holds it ended, so another replica may take it).
  virtual bool held() const { return true; }
};

struct RunFilter {
  std::string repo, branch, status;
  int limit = 50;          // <= 0: no limit
  int64_t before = 0;      // only ids below this; 0: no bound
};

class RunStore {
 public:
  // Opens or creates DATA/ladle.db and migrates it. `data_dir` must exist.
  static Status Open(const std::string& data_dir, std::unique_ptr<RunStore>* store);
  // Opens the store at `location`: a postgresql:// URI (migrated on open;
  // docs/server.md "Replicas"), else DATA/ladle.db as Open. `data_dir`
  // (which must exist) holds the logs and artifacts either way.
  static Status OpenLocation(const std::string& location, const std::string& data_dir,
                             std::unique_ptr<RunStore>* store);
  virtual ~RunStore();
  RunStore(const RunStore&) = delete;
  RunStore& operator=(const RunStore&) = delete;

  // Inserts the run with its stages and steps (statuses as given); sets run->id.
  // An empty created_at becomes now; owner_pid 0 becomes this process (with
  // its start time), both written back to *run.
  virtual Status CreateRun(RunRecord* run) = 0;
  // Run-level fields: status, started_at, finished_at, message, workspace.
  virtual Status UpdateRun(const RunRecord& run) = 0;
  // Stage-level fields (status, tests, message) of run_id's stage `stage.name`.
  virtual Status UpdateStage(int64_t run_id, const StageRecord& stage) = 0;
  // Step-level fields of run_id's step `stage`/`step.name`.
  virtual Status UpdateStep(int64_t run_id, const std::string& stage, const StepRecord& step) = 0;
  // The same for several steps of `stage`, in order, in one transaction
  // where the store has them (a step's end and the next step's start: one
  // commit instead of two). This default writes them one by one.
  virtual Status UpdateSteps(int64_t run_id, const std::string& stage,
                             const std::vector<StepRecord>& steps);

  virtual Status GetRun(int64_t id, RunRecord* run) = 0;  // NotFound when missing
  // Newest first, without stages.
  virtual Status ListRuns(const RunFilter& filter, std::vector<RunRecord>* runs) = 0;
  // Newest run id (below `before`, 0 for none) of the same file whose step
  // `stage`/`step` succeeded; 0 when there is none.
  virtual Status FindLastSuccessfulStep(const std::string& file, const std::string& stage,
                                        const std::string& step, int64_t before,
                                        int64_t* run_id) = 0;
  // The same with `before` read from *run_id on entry (0: no bound).
  Status FindLastSuccessfulStep(const std::string& file, const std::string& stage,
                                const std::string& step, int64_t* run_id) {
    return FindLastSuccessfulStep(file, stage, step, *run_id, run_id);
  }

  // Newest run id (below `before`, 0 for none) of the same project and
  // pipeline path whose step `stage`/`step` succeeded; 0 when there is none
  // (docs/running.md "Artifacts of steps that do not run").
  virtual Status FindLastSuccessfulStepOf(const std::string& project,
                                          const std::string& pipeline_path,
                                          const std::string& stage, const std::string& step,
                                          int64_t before, int64_t* run_id) = 0;
  // Marks `running`/`waiting` runs whose owner is gone as interrupted
  // (queued runs are the server's queue and stay queued). Returns their ids.
  // Their running and waiting stages and steps become interrupted, queued
  // ones skipped. SQLite: an owner is alive when its pid exists, is not a
  // zombie, and has the recorded start time (a reused pid does not count).
  // PostgreSQL: when its replica's lease has not expired.
  virtual Status MarkInterrupted(std::vector<int64_t>* ids) = 0;

  // --- the server's queue (ladle serve) ---

  // Records a queued run (no stages yet: the pipeline is read from the
  // commit when a worker takes it) and, in the same transaction, marks the
  // older queued runs of the same repo and branch superseded by it (their
  // ids in *superseded). Sets run->id.
  virtual Status EnqueueRun(RunRecord* run, std::vector<int64_t>* superseded) = 0;
  // True when a run of this repo, branch and commit exists (any status but
  // a rollback's): a commit seen twice is run once.
  virtual Status HasRunForCommit(const std::string& repo, const std::string& branch,
                                 const std::string& commit, bool* exists) = 0;
  // True when a run of this repo, ref and commit exists that a push, poll,
  // tag or pull request made (re-runs, schedules and API runs do not count).
  virtual Status HasRunForRef(const std::string& repo, const std::string& ref,
                              const std::string& commit, bool* exists) = 0;

  // --- schedules (docs/server.md "Schedules") ---

  // The last minute (seconds since the epoch) handled for this schedule; 0
  // when none was recorded.
  virtual Status LastScheduleFire(const std::string& repo, const std::string& branch,
                                  const std::string& cron, int64_t* last) = 0;
  // Records `minute` as handled; *fresh is false, and nothing is written,
  // when that minute or a later one was recorded before.
  virtual Status ClaimScheduleFire(const std::string& repo, const std::string& branch,
                                   const std::string& cron, int64_t minute, bool* fresh) = 0;

  // --- webhook deliveries (docs/server.md "Webhook trust") ---

  // Records delivery `id` (of `repo`) as handled; *fresh is false, and
  // nothing is written, when it was recorded before: a replay. Deliveries
  // older than `keep` are forgotten first.
  virtual Status ClaimDelivery(const std::string& id, const std::string& repo,
                               std::chrono::seconds keep, bool* fresh) = 0;
  // Forgets delivery `id`: its handling failed, so a retry is no replay.
  virtual Status ForgetDelivery(const std::string& id) = 0;

  // The queued runs, oldest first.
  virtual Status ListQueued(std::vector<RunRecord>* runs) = 0;
  // A worker takes a queued run: its stages and steps become `run`'s (the
  // old ones, if any, are replaced), and pipeline, file, status, started_at,
  // workspace, owner and resume_stage are written. Conflict (and nothing
  // written) when the run is no longer queued in the store: superseded or
  // cancelled since the worker took it. REQUIRES: run->id set.
  virtual Status StartRun(RunRecord* run) = 0;
  // Puts a finished (interrupted or waiting) run back in the queue: status
  // queued, finished_at cleared, owner this process, `resume_stage` as given
  // ("" runs it from the start), trigger "requeue" unless resuming.
  virtual Status RequeueRun(int64_t id, const std::string& resume_stage) = 0;

  // Deletes the finished runs (not queued, running or waiting) that ended
  // before `cutoff` (RFC 3339), with their stages and steps; their ids in
  // *ids. Deployments stay: they are the environments' history.
  virtual Status DeleteFinishedBefore(const std::string& cutoff, std::vector<int64_t>* ids) = 0;

  // Forgets every step's kept container (`ladle prune --kept` removed them).
  virtual Status ClearKept() = 0;

  // --- deployments ---

  // Records the start of a deployment (status running, started_at now);
  // sets d->id.
  virtual Status BeginDeployment(DeploymentRecord* d) = 0;
  // Sets status and finished_at of deployment `id`.
  virtual Status FinishDeployment(int64_t id, RunStatus status) = 0;
  // Newest first; `environment` "" for all; limit <= 0 for no limit;
  // before > 0: only ids below it.
  virtual Status ListDeployments(const std::string& environment, int limit, int64_t before,
                                 std::vector<DeploymentRecord>* out) = 0;

  // --- locks and replicas (docs/server.md "Replicas") ---

  // Takes the lock `name` when it is free: *lock set, else null (held by
  // another process or replica). Names: "environment/ENV" (one deployment
  // of ENV at a time), "leader" (polling and schedules). Released when *lock
  // is destroyed, or when the process (SQLite: a flock on DATA/locks/) or
  // its database connection (PostgreSQL: an advisory lock) ends.
  virtual Status TryLock(const std::string& name, std::unique_ptr<StoreLock>* lock) = 0;

  // A worker claims queued run `id` before it prepares it: *claimed false,
  // and nothing written, when the run is no longer queued or another live
  // replica claimed it. SQLite: claimed when queued.
  virtual Status ClaimRun(int64_t id, bool* claimed) = 0;

  // True when several `ladle serve` may share the store (PostgreSQL).
  virtual bool shared() const { return false; }
  // This process as a replica: "" until RegisterReplica.
  virtual std::string replica_id() const { return ""; }
  // Registers this process as a replica answering at `url`, with a lease of
  // `lease` on the database's clock that RenewLease extends. Runs this
  // replica starts are its own; once its lease has expired, any replica's
  // MarkInterrupted marks them interrupted and its claims are released.
  virtual Status RegisterReplica(const std::string& url, std::chrono::seconds lease) {
    return Status::OK();
  }
  // Extends the lease; Unavailable when the database cannot be written.
  // Precondition when the lease had expired (the runs may have been taken
  // over): the replica must stop claiming work.
  virtual Status RenewLease() { return Status::OK(); }
  // Removes this replica's row (a clean stop): its runs were ended or
  // requeued before.
  virtual Status UnregisterReplica() { return Status::OK(); }
  // The replicas whose lease has not expired, oldest first.
  virtual Status ListReplicas(std::vector<ReplicaInfo>* out) {
    out->clear();
    return Status::OK();
  }
  // Asks the replica that runs `id` to cancel it (the owner reads the
  // request with TakeCancelRequests).
  virtual Status RequestCancel(int64_t id) { return Status::OK(); }
  // The ids of this replica's runs whose cancel was asked for since the
  // last call; the requests are cleared.
  virtual Status TakeCancelRequests(std::vector<int64_t>* ids) {
    ids->clear();
    return Status::OK();
  }
  // The replicas' shared server.yml, canonical text: the first replica
  // records `text`; a later one whose text differs gets *difference naming
  // the first line that differs, and nothing changes. SQLite: always "".
  virtual Status CheckSharedConfig(const std::string& text, std::string* difference) {
    difference->clear();
    return Status::OK();
  }

  // Where the logs and artifacts of runs are (DATA).
  const std::string& data_dir() const { return data_dir_; }

 protected:
  explicit RunStore(std::string data_dir) : data_dir_(std::move(data_dir)) {}

 private:
  std::string data_dir_;
};

// The run JSON of docs/design.md "JSON shapes" (`ladle show --json`,
// GET /api/v1/runs/{id}).
// A field without a value is null, never "": times, exit_code, tests,
// environment, failure_reason, deployment. Also "file", "trigger";
// "message" (run, stage) only when non-empty; a step's "allow_failure" only
// when true.
nlohmann::json RunToJson(const RunRecord& run);
// The run's JSON for lists and events: RunToJson without "stages" and
// without "deployment" (a list does not load it, and null would say "none").
nlohmann::json RunSummaryToJson(const RunRecord& run);
// One stage (with its steps) and one step, as RunToJson writes them.
nlohmann::json StageToJson(const StageRecord& stage);
nlohmann::json StepToJson(const StepRecord& step);
// {id, environment, run_id, stage, repo, commit, branch, status, rollback,
// started_at, finished_at}
nlohmann::json DeploymentToJson(const DeploymentRecord& d);

// Start time of process `pid` (field 22 of /proc/PID/stat, clock ticks since
// boot), 0 when gone or a zombie.
int64_t ProcessStartTime(int pid);

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_STORE_RUN_STORE_H_
