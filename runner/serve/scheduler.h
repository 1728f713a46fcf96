// Scheduler: what `ladle serve` runs, when (docs/server.md "From commit to production").
//
// A new commit on a watched branch (offered by the poller, a push webhook, or
// the listing at start) becomes one queued run in the RunStore; a newer
// commit of the branch supersedes the queued older ones. Workers (RunQueue)
// take queued runs oldest first, check the commit out of the repository's
// mirror into the run's own workspace, and carry it out with the Executor
// that `ladle run` uses. Cancel, approve, rollback and push are the
// RunControl the runs API calls. Every change is published to RunEvents.
//
// The store refuses to start a run that is no longer queued
// (RunStore::StartRun), so a run superseded or cancelled while its workspace
// was prepared never starts, and a started one is never superseded.
//
// Thread-safety: RunControl methods and OfferCommit may be called from any
// thread; Recover, Start and Stop from the owning thread.
#ifndef LADLE_RUNNER_SERVE_SCHEDULER_H_
#define LADLE_RUNNER_SERVE_SCHEDULER_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <thread>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/status.h"
#include "core/metrics.h"
#include "runner/config/cron.h"
#include "runner/config/pipeline.h"
#include "runner/config/server_config.h"
#include "runner/serve/commit_status.h"
#include "runner/serve/git_source.h"
#include "runner/serve/run_events.h"
#include "runner/serve/run_queue.h"
#include "runner/serve/runs_api.h"
#include "runner/serve/webhook.h"
#include "runner/store/run_store.h"

namespace ladle::env {
class DockerEngine;
}

namespace ladle::runner {

class ToggleOps;

// docs/server.md "Metrics": what `ladle serve` counts of its runs, steps,
// deployments, queue and workers, in a MetricsRegistry. Environment names
// come from pipelines: the first kMaxEnvironments distinct ones are labels,
// later ones count as "other".
//
// Thread-safety: every method may be called from any thread.
class ServeMetrics {
 public:
  static constexpr size_t kMaxEnvironments = 100;
  // Buckets of ladle_run_duration_seconds: 1 s to an hour.
  static const std::vector<double>& RunDurationBuckets();
  // Buckets of ladle_run_queue_wait_seconds: 10 ms to an hour.
  static const std::vector<double>& QueueWaitBuckets();

  // REQUIRES: registry outlives this object.
  explicit ServeMetrics(MetricsRegistry* registry);

  // A run ended with `status` (success, failed, cancelled, interrupted,
  // superseded); `duration` is observed when the run was carried out.
  void RunEnded(RunStatus status);
  void RunDuration(std::chrono::nanoseconds duration);
  void StepEnded(RunStatus status);
  // A run's wait from queued to started (runs resumed after an approval are
  // not counted: their wait is a person's).
  void QueueWait(std::chrono::nanoseconds wait);
  // A step's time from running to its end, by the backend that ran it.
  void StepDuration(const std::string& backend, std::chrono::nanoseconds duration);
  void DeploymentEnded(const std::string& environment, RunStatus status);

  Gauge& queued() { return queued_; }
  Gauge& running() { return running_; }
  Gauge& workers() { return workers_; }
  Gauge& busy() { return busy_; }

 private:
  MetricsRegistry* registry_;
  Histogram& duration_;
  Histogram& queue_wait_;
  Gauge& queued_;
  Gauge& running_;
  Gauge& workers_;
  Gauge& busy_;
  std::mutex mu_;
  std::set<std::string> environments_;  // the labelled ones
};

class Scheduler : public RunControl {
 public:
  // REQUIRES: config, store, toggle_ops and events outlive this object;
  // config.data is the data dir (absolute).
  Scheduler(const ServerConfig& config, Vars secrets, RunStore* store, ToggleOps* toggle_ops,
            RunEvents* events);
  ~Scheduler() override;  // Stop(SIGTERM)
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // What a previous server left: its running runs become interrupted (queued
  // again with requeue_interrupted), their leftover step processes killed,
  // their containers removed; the docker daemon is opened when one answers;
  // queued runs are queued here. Before Start.
  void Recover();
  // docs/server.md "Metrics": counts runs, steps and deployments, and keeps
  // the queue's and workers' gauges, in `registry` (which must outlive this
  // object). Before Recover.
  void SetMetrics(MetricsRegistry* registry);
  // Starts the workers.
  void Start(int workers);
  // No new runs; running ones get `signal` (TERM and their grace) and become
  // interrupted. Returns once the workers are done; later calls do nothing.
  void Stop(int signal);
  bool stopping() const { return stopping_; }
  size_t running() const { return queue_.running(); }

  // A new head of `branch` in `repo`: queues one run for it unless a run of
  // that commit exists or no pipeline watches the branch. *run_id 0 when
  // nothing was queued (*why says why).
  Status OfferCommit(const RepositoryConfig& repo, const std::string& branch,
                     const std::string& commit, const std::string& trigger, int64_t* run_id,
                     std::string* why);

  // --- RunControl (the runs API) ---
  Status Cancel(int64_t run, const std::string& actor) override;
  Status Approve(int64_t run, const std::string& stage, const std::string& actor) override;
  Status Rollback(const std::string& environment, int64_t to_run, const std::string& actor,
                  int64_t* run_id) override;
  Status Push(const std::string& repo, const HeaderLookup& header, std::string_view body,
              std::vector<int64_t>* runs, std::string* note, bool* replay) override;
  Status Trigger(const std::string& repo, const std::string& branch, const std::string& tag,
                 const std::string& commit, const std::string& actor, int64_t* run_id) override;
  Status Rerun(int64_t run, const std::string& actor, int64_t* run_id) override;

  // docs/server.md "Schedules": the clock the schedules read (seconds since
  // the epoch, UTC) and how often they look at it. Before Start.
  void SetScheduleClock(std::function<int64_t()> clock, std::chrono::milliseconds tick);
  // Fires the schedules that are due now (the schedule thread's round).
  void FireDueSchedules();
  // The schedules known, "REPO BRANCH CRON" each (for tests).
  std::vector<std::string> schedules();

  // docs/server.md "Replicas": whether this server polls repositories and
  // fires schedules. Always true on SQLite; on a shared store, the one
  // replica holding the store's "leader" lock.
  bool leader() const { return leader_; }
  // Whether this server claims queued runs: false once its lease expired
  // (the database could not be written for longer than the lease).
  bool claiming() const { return claiming_; }
  // With a shared store: the replica's round, every `tick`, on its own
  // thread from Start: renew the lease (`url` and `lease` register it again
  // after it expired), mark the runs of replicas whose lease expired
  // interrupted (queued again with requeue_interrupted), offer the queued
  // runs of the store to the workers, pass on cancels asked for on other
  // replicas, and take the leadership when it is free. Before Start.
  void SetReplica(std::string url, std::chrono::seconds lease, std::chrono::milliseconds tick);
  // One round of the above (the replica thread's; tests call it).
  void ReplicaRound();

  // The daemon opened by Recover, or null.
  env::DockerEngine* docker() const { return docker_.get(); }

 private:
  class Observer;
  struct Repo {
    const RepositoryConfig* config = nullptr;
    std::unique_ptr<GitMirror> mirror;
    std::mutex mu;  // one fetch, read or checkout at a time; orders OfferCommit
  };

  Repo* FindRepo(const std::string& name);
  // docs/server.md "Webhook trust": OK when `commit` is `branch`'s head now.
  Status CheckBranchHead(Repo* repo, const std::string& branch, const std::string& commit);
  // A push that was authenticated and is no replay.
  Status HandlePush(Repo* repo, const PushEvent& event, std::vector<int64_t>* runs,
                    std::string* note);
  // docs/server.md "Triggers" (triggers.cc).
  Status HandleTagPush(Repo* repo, const PushEvent& event, std::vector<int64_t>* runs,
                       std::string* note);
  Status HandlePullRequest(Repo* repo, const PushEvent& event, std::vector<int64_t>* runs,
                           std::string* note);
  // Reads the pipeline at `commit`: *found false (with *why) when the
  // commit lacks the file; *valid false when it does not validate.
  // REQUIRES: repo->mu held.
  Status ReadPipelineAt(Repo* repo, const std::string& commit, const std::string& branch,
                        Pipeline* pipeline, bool* found, bool* valid, std::string* why);
  // Records and queues `run` (its repo, commit, branch, ref and trigger set).
  Status QueueRun(RunRecord* run);
  // Keeps the `on.schedule` entries of `branch`'s pipeline at `commit`.
  // REQUIRES: repo->mu held.
  void NoteSchedules(Repo* repo, const std::string& branch, const std::string& commit);
  void ScheduleLoop();
  void ReplicaLoop();
  // Runs MarkInterrupted and logs, counts and (requeue_interrupted) queues
  // again what it marked; `by` says whose runs they were.
  void TakeOverInterrupted();
  // docs/server.md "Commit statuses": a run changed; posts its status.
  void RunChanged(const RunRecord& run);
  // The secrets a run may be given (docs/server.md "Scoped secrets").
  Vars RunSecrets() const;
  void TakeRun(int64_t run_id);  // a worker's work
  void Execute(RunRecord run);
  Status PrepareWorkspace(Repo* repo, const RunRecord& run, std::string* workspace);
  // Marks a run that never reached the executor as failed (or cancelled).
  void EndBeforeStart(RunRecord* run, RunStatus status, const std::string& message);

  const ServerConfig& config_;
  const Vars secrets_;
  RunStore* store_;
  ToggleOps* toggle_ops_;
  RunEvents* events_;
  std::unique_ptr<env::DockerEngine> docker_;  // opened by Recover when a daemon answers
  std::map<std::string, std::unique_ptr<Repo>> repos_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> stop_signal_{0};
  std::unique_ptr<ServeMetrics> metrics_;  // null without SetMetrics

  // docs/server.md "Schedules".
  struct ScheduleEntry {
    std::string repo, branch, cron;
    CronSchedule schedule;
    int64_t last = -1;  // the last minute handled; -1: not read from the store yet
  };
  std::mutex schedules_mu_;  // guards the fields below
  std::condition_variable schedules_cv_;
  bool schedules_stop_ = false;
  std::map<std::string, std::vector<ScheduleEntry>> schedules_;  // by "REPO\nBRANCH"
  std::map<std::string, std::string> schedule_commits_;           // the commit each was read at
  std::function<int64_t()> clock_;
  std::chrono::milliseconds tick_{1000};
  std::thread schedule_thread_;
  std::unique_ptr<CommitStatusPoster> statuses_;  // docs/server.md "Commit statuses"

  // docs/server.md "Replicas" (a shared store only).
  std::atomic<bool> leader_{true};
  std::atomic<bool> claiming_{true};
  std::string replica_url_;
  std::chrono::seconds lease_{15};
  std::chrono::milliseconds replica_tick_{0};  // 0: no replica thread
  std::unique_ptr<StoreLock> leader_lock_;     // the replica thread's
  std::chrono::steady_clock::time_point lease_renewed_;  // the last renewal that worked
  std::chrono::steady_clock::time_point next_renewal_;
  std::thread replica_thread_;
  RunQueue queue_;  // last: its workers use everything above
};

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_SERVE_SCHEDULER_H_
