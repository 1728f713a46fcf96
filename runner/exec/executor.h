// Executor: runs one pipeline run, stage after stage, on an env::Engine.
//
// Stages run in order; the steps of a stage run in parallel up to `jobs`,
// ordered by `needs`. The executor owns the policy that engines do not:
// timeouts and cancel (TERM, 5 s grace, KILL), retries, allow_failure, test
// gates, artifacts, and the record of every state change in the RunStore.
// What happens is reported to a RunObserver (the terminal view).
#ifndef LADLE_RUNNER_EXEC_EXECUTOR_H_
#define LADLE_RUNNER_EXEC_EXECUTOR_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/base/status.h"
#include "env/engine.h"
#include "runner/config/pipeline.h"
#include "runner/config/server_config.h"
#include "runner/store/run_store.h"
#include "runner/store/step_log.h"
#include "runner/exec/workspace.h"

namespace ladle::runner {

class ToggleOps;

// Told about a run as it happens. Called from several threads (one per running
// step, and the executor's own): implementations synchronise themselves.
class RunObserver {
 public:
  virtual ~RunObserver() = default;
  virtual void RunStarted(const RunRecord& run) {}
  virtual void Note(const std::string& text) {}  // a line from ladle to the person
  virtual void StageChanged(const RunRecord& run, const StageRecord& stage) {}
  virtual void StepChanged(const RunRecord& run, const std::string& stage, const StepRecord& step) {}
  virtual void StepOutput(const std::string& stage, const std::string& step,
                          env::OutputStream stream, std::string_view line) {}
  virtual void RunFinished(const RunRecord& run) {}
  // Asked before a stage with `approval: manual`; false leaves it waiting.
  // The default (no person to ask) leaves it waiting.
  virtual bool Approve(const std::string& stage) { return false; }
};

struct StepRef {
  std::string stage;
  std::string step;
};

struct RunOptions {
  std::string data_dir;
  std::vector<std::string> stages;  // --stage: only these stages; empty: all
  std::vector<StepRef> steps;       // --step: only these steps, needs ignored
  std::optional<StepRef> from;      // --from: this step, its dependents, later stages
  // --needs: with --step or --from, the steps the selected ones depend on
  // (earlier stages, `needs` in their stage) run first instead of having their
  // artifacts restored (docs/running.md "Artifacts of steps that do not run").
  bool needs = false;
  int jobs = 4;
  std::string keep;                 // --keep, overrides the steps' own
  Vars extra_env;                   // --env
  std::string workspace;            // the workspace, when the caller prepared it already
  // Otherwise called once the run has its id, to make the workspace (a
  // checkout of the working tree under DATA/workspaces/RUN); it says in *tree
  // what the workspace holds (docs/running.md "Same inputs as CI").
  std::function<Status(int64_t run_id, std::string* workspace, TreeState* tree)>
      prepare_workspace;
  std::string commit, branch, repo;
  // The run's project and pipeline path (RunRecord): artifacts are restored
  // only from runs of the same two. Empty project: by the pipeline file.
  std::string project, pipeline_path;
  std::chrono::milliseconds kill_grace{std::chrono::seconds(5)};

  // Secret values by name (the server's secrets file); a secret not listed
  // here is read from the process environment when secrets_from_environment.
  Vars secrets;
  bool secrets_from_environment = true;
  // docs/server.md "Scoped secrets": a secret that an entry names reaches a
  // step only where one such entry matches the run and the stage.
  std::vector<SecretScope> secret_scopes;
  // docs/server.md "Protected environments": a stage deploying to one of
  // these fails before its steps when the run's branch may not deploy there.
  std::vector<ProtectedEnvironment> protected_environments;
  // docs/server.md "Webhook trust": sets *is to whether commit `ancestor` is
  // an ancestor of `descendant`. When set, a deployment of an ancestor of the
  // environment's current commit is refused (unless this is a rollback).
  std::function<Status(const std::string& ancestor, const std::string& descendant, bool* is)>
      is_ancestor;
  // Where `toggles:` syncs and `rollout:` stages act; null: they are skipped
  // with a note. Not owned. `actor` names the writer in the audit trail.
  ToggleOps* toggles = nullptr;
  std::string actor = "ladle run";
  // Why the run exists, for a run recorded here: "" (ladle run) or "repro".
  std::string trigger;

  // --- ladle serve ---
  // Carry out this queued run (RunStore::EnqueueRun) rather than record a new
  // one; its trigger and created_at are kept.
  int64_t run_id = 0;
  // With run_id: resume at this stage, which was approved; the stages before
  // it keep their records.
  std::string resume_stage;
  // A rollback (docs/server.md "Rollback"): only this environment's stage runs, its `rollback`
  // script (a step named "rollback") or else its steps, with no gate, no
  // toggles sync and no approval; its deployment is recorded as a rollback.
  std::string rollback_environment;
  // With rollback_environment: the run whose deployment is repeated; the
  // artifacts it kept are restored into the workspace first.
  int64_t artifacts_from = 0;
  // ladle repro (docs/running.md "Reproduce a server's step"): the caller put
  // the artifacts of the steps before into the workspace already (downloaded
  // from the server); none are looked for in this data dir.
  bool artifacts_restored = false;
  // docs/server.md "Pull requests": when set, every stage with an
  // `environment` is skipped with this reason (a pull request's run never
  // deploys).
  std::string no_deploy;
  // False under `ladle serve`: local steps get only the base of the host's
  // environment (docs/backends.md "Environment").
  bool host_environment = true;
};

// DATA/locks/ENVIRONMENT.lock: held (flock) while a run deploys there, by
// any ladle process on this data dir, so deployments to one environment
// happen one at a time; released by the kernel when the holder dies.
std::string DeploymentLockPath(const std::string& data_dir, const std::string& environment);

// DATA/artifacts/RUN/STAGE/STEP: where a step's artifacts are kept.
std::string ArtifactDir(const std::string& data_dir, int64_t run, const std::string& stage,
                        const std::string& step);

// Resolves a step name as the CLI takes it: "stage/step", or a bare step name
// when it is unique (otherwise Invalid, listing the matches). A matrix step
// (docs/pipeline.md "Matrix") is named by its id ("test.1.21-linux"), its
// display name ("test [GO=1.21, OS=linux]") or, for all of its
// combinations, its name as written ("test": *ref names it so).
Status ResolveStep(const Pipeline& pipeline, const std::string& name, StepRef* ref);

// The same for --step, which may select several steps: "test" selects every
// combination of the matrix step test, "test [GO=1.21]" those with GO=1.21.
// All matches must be in one stage.
Status ResolveSteps(const Pipeline& pipeline, const std::string& name, std::vector<StepRef>* refs);

class Executor {
 public:
  Executor(const Pipeline& pipeline, RunStore* store, env::Engine* engine,
           RunObserver* observer);
  ~Executor();

  // Runs the pipeline; fills `run` (its id is assigned when the run is
  // recorded, before any step starts). Returns a non-ok Status only when the
  // run could not be carried out at all (store or workspace failure); a failed
  // step is run->status == "failed" with an ok Status.
  Status Run(const RunOptions& options, RunRecord* run);

  // Cancels the run: running steps get TERM, then KILL after the grace.
  // Thread-safe; callable from a signal-handling thread. `signal` is recorded
  // for the exit code (SIGINT: 130, SIGTERM: 143).
  void Cancel(int signal);
  int cancel_signal() const { return cancel_signal_.load(); }
  // The first failure of an outside dependency (Unavailable: docker daemon
  // down, image missing) that failed a step; ok when there was none. The CLI
  // exits 3 for it rather than 1.
  Status outside_failure() const;

 private:
  struct StepRun;
  struct StageContext;
  class StepWorkers;

  void RunStage(const Stage& stage, size_t index, RunRecord* run);
  bool StageSelected(const Stage& stage, std::string* why) const;
  std::set<std::string> SelectedSteps(const Stage& stage) const;
  // The same, before --needs adds the dependencies.
  bool StageChosen(const Stage& stage, std::string* why) const;
  std::set<std::string> StepsChosen(const Stage& stage) const;
  // Runs the pending steps of `ctx` as their needs allow and waits for all
  // of its steps; meanwhile starts steps of later stages early
  // (docs/pipeline.md "needs across stages").
  void ScheduleSteps(StageContext* ctx);
  // Whether a pending step of `ctx` may start as far as its needs go: one
  // failed (and not allow_failure) blocks it, one not done keeps it
  // waiting. REQUIRES: mu_ held.
  enum class Readiness { kReady, kWaiting, kBlocked };
  Readiness ReadinessOf(StageContext* ctx, const StepRun& sr);
  // --step without --needs: the chosen steps run whatever their needs.
  bool IgnoreNeeds() const { return !options_.steps.empty() && !options_.needs; }
  // Runs `sr` on the calling worker thread, then the steps chained after it
  // (TakeNextStep).
  void RunStepThread(StepRun* sr, StageContext* ctx);
  // One step; returns the step chained after it, or null.
  StepRun* RunOneStep(StepRun* sr, StageContext* ctx);
  // REQUIRES: mu_ held, by the thread of a step of `ctx` that just ended
  // (done, but still counted as running: `ending` of them). The next step of
  // `ctx` that ScheduleSteps would start now, marked running, for the same
  // thread to run without waking the scheduler; null where the scheduler has
  // to decide (a step to skip, a cancel, a step that may start early in a
  // later stage). *more_ready: another step could start beside it, once the
  // ending ones no longer count (the caller then wakes the scheduler).
  StepRun* TakeNextStep(StageContext* ctx, int ending, bool* more_ready);
  // The record's status and its start or end time, as SetStep writes them.
  // REQUIRES: mu_ held.
  static void MarkStep(StepRecord* rec, RunStatus status);
  void SuperviseRunning();
  // docs/pipeline.md "needs across stages": one context per stage, made
  // before the first stage runs, so a step can start before its stage's turn.
  void PrepareContexts(size_t first);
  // The step that `need` (a `needs` entry of a step of `ctx`) names; null
  // when it was not selected (it counts as done).
  StepRun* FindNeed(StageContext* ctx, const std::string& need);
  // REQUIRES: mu_ held. Starts the steps of stages after turn_ whose needs
  // have passed, where the rules let them start early.
  void StartEarlySteps(std::unique_lock<std::mutex>* lock);
  bool MayEnterEarly(const StageContext& ctx) const;  // REQUIRES: mu_ held
  // docs/backends.md "Overlapped containers": has the engine make the
  // containers of the steps next in line, at most --jobs + 1 of them waiting
  // at a time. REQUIRES: mu_ held.
  void PrepareAhead();
  // A stage that does not run: its steps that started early finish (and
  // make its status), the others never start. Returns the stage's status.
  RunStatus SettleSkippedStage(StageContext* ctx, RunStatus status, std::string* why);
  // Every step of `ctx` that never started is done (so dependents of later
  // stages do not wait for it).
  void CloseStage(StageContext* ctx);
  void FinishStage(StageContext* ctx, const std::string& rollout_message);
  env::StepSpec MakeSpec(const Stage& stage, const Step& step, int attempt) const;
  std::string CacheScope() const;  // whose caches a step uses (cache.h CacheDir)
  void RestoreNeededArtifacts(RunRecord* run);
  // The steps (stage, step) that the selected ones (--step, --from) depend
  // on and that are not selected: every step of an earlier stage than a
  // selected one, and the `needs` of selected steps in their stage.
  std::set<std::pair<std::string, std::string>> Dependencies() const;
  // RestoreNeededArtifacts: the note for artifacts taken from `from`, with a
  // warning when the tree that made them differs from this run's.
  void NoteArtifactSource(const RunRecord& run, const RunRecord& from,
                          const std::vector<std::string>& steps);
  void SetStep(const Stage& stage, StepRecord* rec, RunStatus status);
  void SetStage(StageRecord* rec, RunStatus status, const std::string& message);
  // Notes a write the run store refused; the run is then not a success.
  void RecordStoreFailure(const Status& s);
  void Notify(const std::string& text);

  // Prepares pipeline_ for options_: rollback substitution, rollout checks
  // as steps "check-P".
  void Plan();
  Status BeginRun(RunRecord* run);
  // Deployments: waits for the environment's lock (false: cancelled), then
  // records the deployment.
  bool AcquireEnvironment(const Stage& stage, StageRecord* rec,
                          std::unique_ptr<StoreLock>* lock);
  // Why the run may not deploy `stage` now ("" when it may): a commit older
  // than the environment's current one (docs/server.md "Webhook trust").
  std::string OlderCommitRefusal(const Stage& stage);
  void SyncToggles(const Stage& stage, StageContext* ctx);
  bool RunRolloutStage(const Stage& stage, StageContext* ctx, std::string* message);
  std::string AuditNote(const Stage& stage) const;

  Pipeline pipeline_;                 // a copy: Plan() adapts it to the run
  RunStore* store_;
  env::Engine* engine_;
  RunObserver* observer_;
  RunOptions options_;
  RunRecord* run_ = nullptr;
  std::vector<std::string> secrets_;  // values to mask
  Vars secret_env_;                   // the pipeline's secrets as the steps see them

  mutable std::mutex mu_;             // guards run_'s records and the step states
  std::condition_variable cv_;
  std::atomic<int> cancel_signal_{0};
  Status outside_failure_;            // guarded by mu_
  Status store_failure_;              // the first write the store refused; guarded by mu_
  std::set<std::pair<std::string, std::string>> dependencies_;  // with --needs: Dependencies()
  std::vector<std::unique_ptr<StageContext>> contexts_;  // per stage: PrepareContexts()
  size_t turn_ = 0;                   // the stage whose turn it is; guarded by mu_
  int running_ = 0;                   // step threads running, all stages; guarded by mu_
  // A step needs one of another stage, so steps may start before their
  // stage's turn (StartEarlySteps): steps are not chained (TakeNextStep).
  bool early_starts_possible_ = false;
  // The threads that run steps, kept for the next step (declared last: gone
  // before the contexts whose steps they ran).
  std::unique_ptr<StepWorkers> workers_;
};

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_EXEC_EXECUTOR_H_
