#include "runner/serve/scheduler.h"

#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "core/base/text.h"
#include "core/base/time_util.h"
#include "env/docker_engine.h"
#include "env/subprocess.h"
#include "runner/exec/backend.h"
#include "runner/exec/executor.h"
#include "runner/exec/prune.h"
#include "runner/exec/toggle_ops.h"
#include "runner/serve/rollback_target.h"
#include "runner/serve/triggers.h"
#include "runner/serve/webhook.h"

namespace fs = std::filesystem;

namespace ladle::runner {

// Tells the run events (the SSE stream) and the server's log what a run does.
class Scheduler::Observer : public RunObserver {
 public:
  Observer(RunEvents* events, ServeMetrics* metrics, std::string backend)
      : events_(events), metrics_(metrics), backend_(std::move(backend)) {}
  // Whether the executor recorded the run as started (the store's StartRun
  // refuses a run superseded or cancelled since the worker took it).
  bool started() const { return id_ != 0; }
  void RunStarted(const RunRecord& run) override {
    id_ = run.id;
    std::chrono::system_clock::time_point queued_at;
    if (metrics_ != nullptr && run.resume_stage.empty() &&
        ParseRfc3339(run.created_at, &queued_at)) {
      metrics_->QueueWait(std::max(std::chrono::system_clock::duration::zero(),
                                   std::chrono::system_clock::now() - queued_at));
    }
    events_->PublishRun(run);
    spdlog::info("run {}: {} {} at {} started", run.id, run.repo, run.branch,
                 run.commit.substr(0, 12));
  }
  void Note(const std::string& text) override { spdlog::info("run {}: {}", id_, text); }
  void StageChanged(const RunRecord& run, const StageRecord& stage) override {
    events_->PublishStage(run.id, stage);
    // A deployment: a stage with an environment that ran (the executor
    // begins the deployment before the stage runs) and ended.
    if (!stage.environment.empty()) {
      std::lock_guard<std::mutex> lock(mu_);
      if (stage.status == kRunning) {
        deploying_.insert(stage.name);
      } else if (IsFinished(stage.status) && deploying_.erase(stage.name) != 0) {
        deployments_.emplace_back(stage.environment, stage.status);
      }
    }
  }
  void StepChanged(const RunRecord& run, const std::string& stage,
                   const StepRecord& step) override {
    events_->PublishStep(run.id, stage, step);
    if (metrics_ == nullptr) return;
    const std::string key = stage + "\n" + step.name;
    std::lock_guard<std::mutex> lock(mu_);
    if (step.status == kRunning) {
      step_began_.emplace(key, std::chrono::steady_clock::now());
    } else if (IsFinished(step.status) && steps_ended_.insert(key).second) {
      metrics_->StepEnded(step.status);
      if (auto it = step_began_.find(key); it != step_began_.end()) {
        metrics_->StepDuration(backend_, std::chrono::steady_clock::now() - it->second);
      }
    }
  }
  // The deployments that ended, in order (environment, status).
  std::vector<std::pair<std::string, RunStatus>> deployments() {
    std::lock_guard<std::mutex> lock(mu_);
    return deployments_;
  }
  void RunFinished(const RunRecord& run) override {
    events_->PublishRun(run);
    spdlog::info("run {}: {}{}", run.id, ToString(run.status), run.message.empty() ? "" : ": " + run.message);
  }

 private:
  RunEvents* events_;
  ServeMetrics* metrics_;  // may be null
  const std::string backend_;  // the engine's name: "local" or "docker"
  int64_t id_ = 0;
  std::mutex mu_;  // steps end on several threads
  std::set<std::string> steps_ended_;  // "stage\nstep" counted
  std::map<std::string, std::chrono::steady_clock::time_point> step_began_;  // seen running
  std::set<std::string> deploying_;    // stages with an environment that run
  std::vector<std::pair<std::string, RunStatus>> deployments_;
};

// ---- ServeMetrics ----

const std::vector<double>& ServeMetrics::RunDurationBuckets() {
  static const std::vector<double> buckets{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600};
  return buckets;
}

const std::vector<double>& ServeMetrics::QueueWaitBuckets() {
  static const std::vector<double> buckets{0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600};
  return buckets;
}

ServeMetrics::ServeMetrics(MetricsRegistry* registry)
    : registry_(registry),
      duration_(registry->GetHistogram("ladle_run_duration_seconds",
                                       "Time the runs that ended took to carry out.", {},
                                       RunDurationBuckets())),
      queue_wait_(registry->GetHistogram("ladle_run_queue_wait_seconds",
                                         "Time runs waited in the queue before a worker started them.",
                                         {}, QueueWaitBuckets())),
      queued_(registry->GetGauge("ladle_runs_queued", "Runs waiting in the queue.")),
      running_(registry->GetGauge("ladle_runs_running", "Runs being carried out.")),
      workers_(registry->GetGauge("ladle_workers", "Workers configured (server.yml workers).")),
      busy_(registry->GetGauge("ladle_workers_busy", "Workers preparing or carrying out a run.")) {
  // Every status shows, at 0 until it happens.
  for (RunStatus status : {kSuccess, kFailed, kCancelled, kInterrupted, kSuperseded}) {
    registry_->GetCounter("ladle_runs_total", "Runs that ended, by status.",
                          {{"status", ToString(status)}});
  }
}

void ServeMetrics::RunEnded(RunStatus status) {
  registry_->GetCounter("ladle_runs_total", "Runs that ended, by status.",
                        {{"status", ToString(status)}})
      .Inc();
}

void ServeMetrics::RunDuration(std::chrono::nanoseconds duration) { duration_.Observe(duration); }

void ServeMetrics::QueueWait(std::chrono::nanoseconds wait) { queue_wait_.Observe(wait); }

void ServeMetrics::StepDuration(const std::string& backend, std::chrono::nanoseconds duration) {
  registry_->GetHistogram("ladle_step_duration_seconds",
                          "Time steps took from running to their end, by backend.",
                          {{"backend", backend}}, RunDurationBuckets())
      .Observe(duration);
}

void ServeMetrics::StepEnded(RunStatus status) {
  registry_->GetCounter("ladle_steps_total", "Steps that ended, by status.",
                        {{"status", ToString(status)}})
      .Inc();
}

void ServeMetrics::DeploymentEnded(const std::string& environment, RunStatus status) {
  std::string label = environment;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!environments_.count(environment)) {
      if (environments_.size() < kMaxEnvironments) {
        environments_.insert(environment);
      } else {
        label = "other";
      }
    }
  }
  registry_->GetCounter("ladle_deployments_total",
                        "Deployments that ended, by environment and status (environments "
                        "past the first 100 count as \"other\").",
                        {{"environment", label}, {"status", ToString(status)}})
      .Inc();
}

namespace {

// Webhook secrets and commit status tokens (docs/server.md "Commit statuses")
// are the server's own: pipelines get them only where an entry scopes them.
bool IsWebhookSecret(const ServerConfig& config, const std::string& name) {
  for (const RepositoryConfig& repo : config.repositories)
    if (repo.webhook_secret_env == name || (repo.status && repo.status->token_env == name))
      return true;
  return false;
}

// Webhook deliveries are remembered this long (docs/server.md "Webhook trust").
constexpr std::chrono::hours kKeepDeliveries{8 * 24};

bool BranchWatched(const std::vector<std::string>& globs, const std::string& branch) {
  if (globs.empty()) return true;
  for (const std::string& glob : globs)
    if (BranchMatches(glob, branch)) return true;
  return false;
}

}  // namespace

void Scheduler::EndBeforeStart(RunRecord* run, RunStatus status, const std::string& message) {
  run->status = status;
  run->message = message;
  if (run->started_at.empty()) run->started_at = NowRfc3339();
  run->finished_at = NowRfc3339();
  Status s = store_->UpdateRun(*run);
  if (!s.ok()) spdlog::error("run {}: {}", run->id, s.ToString());
  events_->PublishRun(*run);
  if (metrics_) metrics_->RunEnded(status);
  spdlog::warn("run {}: {}: {}", run->id, ToString(status), message);
}

Scheduler::Scheduler(const ServerConfig& config, Vars secrets, RunStore* store,
                     ToggleOps* toggle_ops, RunEvents* events)
    : config_(config),
      secrets_(std::move(secrets)),
      store_(store),
      toggle_ops_(toggle_ops),
      events_(events) {
  for (const RepositoryConfig& repo : config_.repositories) {
    auto r = std::make_unique<Repo>();
    r->config = &repo;
    r->mirror = std::make_unique<GitMirror>(repo.url, config_.data + "/repos/" + repo.name + ".git");
    repos_[repo.name] = std::move(r);
  }
  // docs/server.md "Scoped secrets": what any branch's pipeline may read.
  std::string unscoped;
  for (const auto& [name, value] : secrets_) {
    if (!SecretIsScoped(config_.secrets, name) && !IsWebhookSecret(config_, name))
      unscoped += (unscoped.empty() ? "" : ", ") + name;
  }
  if (!unscoped.empty())
    spdlog::warn("secrets that no 'secrets:' entry of {} scopes reach every branch's pipelines: {}",
                 config_.file.empty() ? std::string("server.yml") : config_.file, unscoped);
  // docs/server.md "Commit statuses" and "Schedules".
  if (std::any_of(config_.repositories.begin(), config_.repositories.end(),
                  [](const RepositoryConfig& r) { return r.status.has_value(); })) {
    CommitStatusOptions options;
    options.on_result = [](const ForgeRequest& r, int status, const std::string& error, bool final) {
      if (!error.empty())
        spdlog::warn("commit status {}{}: {}{}", r.base, r.path, error,
                     final ? " (given up)" : " (will try again)");
    };
    statuses_ = std::make_unique<CommitStatusPoster>(options);
    events_->SetRunListener([this](const RunRecord& run) { RunChanged(run); });
  }
  clock_ = ScheduleClockFromEnvironment(&tick_);
}

// Pipelines get: the secrets file's variables, less the webhook secrets
// (those reach a step only when an entry scopes them), and, for the
// variables an entry scopes, the server's environment when the file lacks
// them. Which steps get which is the executor's part (RunOptions).
Vars Scheduler::RunSecrets() const {
  Vars out;
  for (const auto& [name, value] : secrets_)
    if (SecretIsScoped(config_.secrets, name) || !IsWebhookSecret(config_, name))
      out.emplace_back(name, value);
  for (const SecretScope& scope : config_.secrets) {
    bool have = std::any_of(out.begin(), out.end(),
                            [&](const auto& var) { return var.first == scope.name; });
    const char* value = have ? nullptr : std::getenv(scope.name.c_str());
    if (value != nullptr) out.emplace_back(scope.name, value);
  }
  return out;
}

Scheduler::~Scheduler() {
  Stop(SIGTERM);
  if (statuses_) events_->SetRunListener(nullptr);
}

void Scheduler::SetMetrics(MetricsRegistry* registry) {
  metrics_ = std::make_unique<ServeMetrics>(registry);
  queue_.SetGauges(&metrics_->queued(), &metrics_->running(), &metrics_->busy());
}

void Scheduler::Start(int workers) {
  if (metrics_) metrics_->workers().Set(std::max(1, workers));
  queue_.Start(std::max(1, workers), [this](int64_t id) { TakeRun(id); });
  schedule_thread_ = std::thread(&Scheduler::ScheduleLoop, this);
  if (replica_tick_.count() > 0) replica_thread_ = std::thread(&Scheduler::ReplicaLoop, this);
}

void Scheduler::SetReplica(std::string url, std::chrono::seconds lease,
                           std::chrono::milliseconds tick) {
  replica_url_ = std::move(url);
  lease_ = lease;
  replica_tick_ = tick;
  leader_ = false;  // until the first round takes the lock
  lease_renewed_ = std::chrono::steady_clock::now();
  next_renewal_ = lease_renewed_ + lease / 3;
}

void Scheduler::ReplicaLoop() {
  std::unique_lock<std::mutex> lock(schedules_mu_);
  while (!schedules_stop_) {
    lock.unlock();
    ReplicaRound();
    lock.lock();
    schedules_cv_.wait_for(lock, replica_tick_, [&] { return schedules_stop_; });
  }
  lock.unlock();
  leader_lock_.reset();  // the next replica takes over at once
  leader_ = false;
}

void Scheduler::ReplicaRound() {
  using Clock = std::chrono::steady_clock;
  const auto now = Clock::now();
  // The lease: a replica that cannot renew it for longer than its length
  // stops claiming work (its runs may be taken over) and says so.
  if (now >= next_renewal_) {
    Status s = store_->RenewLease();
    if (s.code() == Code::kPrecondition) {
      spdlog::error("{}; registering again", s.message());
      s = store_->RegisterReplica(replica_url_, lease_);
    }
    if (s.ok()) {
      lease_renewed_ = now;
      next_renewal_ = now + lease_ / 3;
      if (!claiming_.exchange(true)) spdlog::warn("the store answers again: claiming work again");
    } else {
      next_renewal_ = now + std::chrono::seconds(1);  // retried every second
      if (now - lease_renewed_ > lease_ && claiming_.exchange(false))
        spdlog::error("cannot renew this replica's lease for {}s, longer than the lease ({}s): "
                      "no new runs are claimed here until the store answers ({})",
                      std::chrono::duration_cast<std::chrono::seconds>(now - lease_renewed_).count(),
                      lease_.count(), s.message());
      else if (!s.ok())
        spdlog::warn("renew the lease: {}", s.message());
    }
  }
  if (!claiming_) return;
  // Runs of replicas whose lease expired.
  TakeOverInterrupted();
  // Leadership: polling and schedules run on one replica at a time.
  if (leader_lock_ && !leader_lock_->held()) leader_lock_.reset();
  if (!leader_lock_) {
    std::unique_ptr<StoreLock> got;
    Status s = store_->TryLock("leader", &got);
    if (!s.ok()) spdlog::warn("take the leadership: {}", s.message());
    leader_lock_ = std::move(got);
  }
  const bool lead = leader_lock_ != nullptr;
  if (leader_.exchange(lead) != lead)
    spdlog::info(lead ? "this replica now polls the repositories and fires the schedules"
                      : "this replica no longer leads: another polls and fires the schedules");
  // The queue is the store's: runs other replicas queued are offered here too.
  std::vector<RunRecord> queued;
  Status s = store_->ListQueued(&queued);
  if (!s.ok()) spdlog::warn("{}", s.ToString());
  for (const RunRecord& run : queued) queue_.Offer(run.id);
  // Cancels asked for on other replicas.
  std::vector<int64_t> cancels;
  s = store_->TakeCancelRequests(&cancels);
  if (!s.ok()) spdlog::warn("{}", s.ToString());
  for (int64_t id : cancels)
    if (queue_.CancelRunning(id, SIGINT)) spdlog::info("run {}: cancelled from another replica", id);
}

void Scheduler::TakeOverInterrupted() {
  std::vector<int64_t> interrupted;
  Status s = store_->MarkInterrupted(&interrupted);
  if (!s.ok()) spdlog::error("{}", s.ToString());
  for (int64_t id : interrupted) {
    if (metrics_) metrics_->RunEnded(kInterrupted);
    RunRecord run;
    bool known = store_->GetRun(id, &run).ok();
    spdlog::warn("run {} was left running by a ladle that is gone ({}): marked interrupted{}", id,
                 known ? run.message : "", config_.requeue_interrupted ? ", queued again" : "");
    if (config_.requeue_interrupted) {
      s = store_->RequeueRun(id, "");
      if (!s.ok()) spdlog::error("requeue run {}: {}", id, s.ToString());
      else if (store_->GetRun(id, &run).ok()) known = true;
    }
    if (known) events_->PublishRun(run);
    if (config_.requeue_interrupted) queue_.Offer(id);
  }
}

void Scheduler::Stop(int signal) {
  if (stopping_.exchange(true)) return;
  stop_signal_ = signal;
  {
    std::lock_guard<std::mutex> lock(schedules_mu_);
    schedules_stop_ = true;
  }
  schedules_cv_.notify_all();
  if (schedule_thread_.joinable()) schedule_thread_.join();
  if (replica_thread_.joinable()) replica_thread_.join();
  if (size_t n = queue_.running())
    spdlog::info("stopping: {} running run(s) get TERM and their grace", n);
  queue_.Stop(signal);
}

Scheduler::Repo* Scheduler::FindRepo(const std::string& name) {
  auto it = repos_.find(name);
  return it == repos_.end() ? nullptr : it->second.get();
}

// What a dead server left: its running runs become interrupted (their
// deployment records too; the kernel released its deployment locks), their
// containers are removed, and they are queued again when configured. Queued
// runs stay queued.
void Scheduler::Recover() {
  std::vector<int64_t> interrupted;
  Status s = store_->MarkInterrupted(&interrupted);
  if (!s.ok()) spdlog::error("{}", s.ToString());
  for (int64_t id : interrupted) {
    if (metrics_) metrics_->RunEnded(kInterrupted);
    spdlog::warn("run {} was left running by a ladle that is gone: marked interrupted{}", id,
                 config_.requeue_interrupted ? ", queued again" : "");
  }
  // Local steps outlive a server killed with SIGKILL. End them (their
  // cgroups, else their run's marker) before any worker starts, holding the
  // environment's deployment lock meanwhile, so that they do not go on
  // beside the run's next attempt or the next deploy (docs/backends.md
  // "After a crash"). Also the runs another ladle already marked.
  std::vector<std::string> ended;
  EndProcessesOfDeadRuns(store_, config_.data, &ended);
  for (const std::string& note : ended) spdlog::warn("{}", note);
  if (config_.requeue_interrupted) {
    for (int64_t id : interrupted) {
      s = store_->RequeueRun(id, "");
      if (!s.ok()) spdlog::error("requeue run {}: {}", id, s.ToString());
    }
  }
  if (config_.backend != "local") {
    env::DockerEngineOptions options;
    options.data_dir = config_.data;
    options.connect_timeout = std::chrono::milliseconds(500);
    std::unique_ptr<env::DockerEngine> docker;
    if (env::DockerEngine::Open(options, &docker).ok()) {
      std::vector<std::string> notes;
      CleanupStaleContainers(docker.get(), store_, &notes);
      for (const std::string& note : notes) spdlog::info("{}", note);
      docker->SetNoteCallback([](const std::string& line) { spdlog::info("docker: {}", line); });
      spdlog::info("backend: docker ({}) for pipelines whose steps all have an image{}",
                   docker->Describe(), config_.backend.empty() ? ", else local" : "");
      docker_ = std::move(docker);
    }
  }
  std::vector<RunRecord> queued;
  s = store_->ListQueued(&queued);
  if (!s.ok()) spdlog::error("{}", s.ToString());
  for (const RunRecord& run : queued) queue_.Push(run.id);
  if (!queued.empty()) spdlog::info("{} queued run(s) waiting from before", queued.size());
}

Status Scheduler::OfferCommit(const RepositoryConfig& config, const std::string& branch,
                           const std::string& commit, const std::string& trigger,
                           int64_t* run_id, std::string* why) {
  *run_id = 0;
  Repo* repo = FindRepo(config.name);
  if (repo == nullptr) return Status::NotFound("no repository '" + config.name + "'");
  if (!BranchWatched(config.branches, branch)) {
    *why = "branch " + branch + " is not watched (server.yml: branches of " + config.name + ")";
    return Status::OK();
  }
  std::lock_guard<std::mutex> repo_lock(repo->mu);
  NoteSchedules(repo, branch, commit);  // docs/server.md "Schedules"
  bool exists = false;
  Status s = store_->HasRunForCommit(config.name, branch, commit, &exists);
  if (!s.ok()) return s;
  if (exists) {
    *why = "commit " + commit.substr(0, 12) + " of " + branch + " has a run already";
    return Status::OK();
  }
  std::string text;
  s = repo->mirror->ReadFile(commit, config.pipeline, &text, branch);
  if (s.code() == Code::kNotFound) {  // no such file, or no such commit
    *why = s.message();
    return Status::OK();
  }
  if (!s.ok()) return s;
  Pipeline pipeline;
  std::vector<Diagnostic> diagnostics;
  // An invalid pipeline is still queued: its run fails and shows the errors.
  const bool valid = ParsePipeline(text, config.pipeline, &pipeline, &diagnostics);
  if (valid && !BranchWatched(pipeline.push_branches, branch)) {
    *why = "the pipeline's on.push.branches does not list " + branch;
    return Status::OK();
  }
  if (valid && !pipeline.on_push) {  // docs/pipeline.md "Triggers"
    *why = "the pipeline's 'on' has no 'push': branch pushes start no run";
    return Status::OK();
  }
  RunRecord run;
  run.repo = config.name;
  run.ref = "refs/heads/" + branch;
  run.branch = branch;
  run.commit = commit;
  run.trigger = trigger;
  run.pipeline = pipeline.name;
  run.file = config.pipeline;
  std::vector<int64_t> superseded;
  s = store_->EnqueueRun(&run, &superseded);
  if (!s.ok()) return s;
  *run_id = run.id;
  spdlog::info("run {} queued: {} {} at {} ({})", run.id, config.name, branch,
               commit.substr(0, 12), trigger);
  for (int64_t old : superseded) queue_.Remove(old);
  for (int64_t old : superseded) {
    if (metrics_) metrics_->RunEnded(kSuperseded);
    RunRecord r;
    if (store_->GetRun(old, &r).ok()) events_->PublishRun(r);
    spdlog::info("run {} superseded by run {}", old, run.id);
  }
  events_->PublishRun(run);
  queue_.Push(run.id);
  return Status::OK();
}

void Scheduler::TakeRun(int64_t id) {
  RunRecord run;
  Status s = store_->GetRun(id, &run);
  if (!s.ok()) {
    spdlog::error("run {}: {}", id, s.ToString());
    return;
  }
  if (run.status != kQueued) {  // superseded or cancelled meanwhile
    queue_.Forget(id);
    return;
  }
  // docs/server.md "Replicas": one replica takes a run; the others let go.
  bool claimed = claiming_;
  if (claimed) s = store_->ClaimRun(id, &claimed);
  if (!s.ok()) spdlog::warn("run {}: {}", id, s.ToString());
  if (!s.ok() || !claimed) {
    queue_.Forget(id);
    return;
  }
  Execute(std::move(run));
}

Status Scheduler::PrepareWorkspace(Repo* repo, const RunRecord& run, std::string* workspace) {
  *workspace = (fs::path(config_.data) / "workspaces" / std::to_string(run.id)).string();
  std::error_code ec;
  // An approved run resumes in the workspace it left.
  if (!run.resume_stage.empty() && fs::is_directory(*workspace, ec)) return Status::OK();
  fs::remove_all(*workspace, ec);
  fs::create_directories(fs::path(*workspace).parent_path(), ec);
  std::lock_guard<std::mutex> lock(repo->mu);
  return repo->mirror->Checkout(run.commit, *workspace);
}

void Scheduler::Execute(RunRecord run) {
  Repo* repo = FindRepo(run.repo);
  if (repo == nullptr)
    return EndBeforeStart(&run, kFailed,
                          "repository '" + run.repo + "' is no longer in " + config_.file);
  std::string workspace;
  Status s = PrepareWorkspace(repo, run, &workspace);
  if (!s.ok())
    return EndBeforeStart(&run, kFailed,
                          "could not check out the commit: " + s.message());
  run.workspace = workspace;
  Pipeline pipeline;
  std::vector<Diagnostic> diagnostics;
  const std::string file = (fs::path(workspace) / repo->config->pipeline).string();
  if (!LoadPipeline(file, &pipeline, &diagnostics)) {
    std::string message = repo->config->pipeline + " is invalid:";
    for (const Diagnostic& d : diagnostics)
      if (!d.warning) message += "\n" + d.ToString();
    return EndBeforeStart(&run, kFailed, message);
  }
  pipeline.file = repo->config->pipeline;  // as the repository names it, not the workspace path
  // The daemon connection opened at start serves every run (its start-up
  // cleanup is done); PickEngine decides, and says why, for the others.
  env::Engine* engine = nullptr;
  std::unique_ptr<env::Engine> own_engine;
  if (docker_ != nullptr && StepWithoutImage(pipeline).empty()) {
    engine = docker_.get();
  } else {
    std::vector<std::string> notes;
    s = PickEngine(config_.backend, pipeline, config_.data, store_, &own_engine, &notes,
                   "backend (" + config_.file + "):");
    if (!s.ok())
      return EndBeforeStart(&run, kFailed, s.message());
    for (const std::string& note : notes) spdlog::info("run {}: {}", run.id, note);
    engine = own_engine.get();
  }

  Observer observer(events_, metrics_.get(), engine->Name());
  Executor executor(pipeline, store_, engine, &observer);
  switch (queue_.BeginRun(run.id, [&executor](int signal) { executor.Cancel(signal); })) {
    case RunQueue::Begin::kRun:
      break;
    case RunQueue::Begin::kCancelled:
      executor.Cancel(SIGINT);
      break;
    case RunQueue::Begin::kStopping:  // taken just as the server stops: queued for the next start
      return;
  }
  RunOptions options;
  options.data_dir = config_.data;
  options.run_id = run.id;
  options.workspace = workspace;
  options.commit = run.commit;
  options.branch = run.branch;
  options.repo = run.repo;
  // docs/running.md "Same inputs as CI": a served run's project is its
  // repository's name.
  options.project = run.repo;
  options.pipeline_path = repo->config->pipeline;
  options.secrets = RunSecrets();
  options.secrets_from_environment = false;
  options.host_environment = false;  // docs/backends.md "Environment"
  if (IsPullRequestRef(run.ref)) {
    // docs/server.md "Pull requests": no deployments, no scoped secrets, no
    // toggle writes for code nobody has merged yet.
    options.no_deploy = "a pull request's run never deploys (" + run.ref + ")";
    Vars unscoped;
    for (auto& var : options.secrets)
      if (!SecretIsScoped(config_.secrets, var.first)) unscoped.push_back(var);
    options.secrets = std::move(unscoped);
  }
  options.secret_scopes = config_.secrets;
  options.protected_environments = config_.environments;
  options.is_ancestor = [repo](const std::string& a, const std::string& d, bool* is) {
    std::lock_guard<std::mutex> lock(repo->mu);
    return repo->mirror->IsAncestor(a, d, is);
  };
  options.toggles = IsPullRequestRef(run.ref) ? nullptr : toggle_ops_;
  options.actor = "ladle serve";
  options.resume_stage = run.resume_stage;
  options.rollback_environment = run.rollback_environment;
  options.artifacts_from = run.source_run;
  RunRecord result;
  const auto began = std::chrono::steady_clock::now();
  s = executor.Run(options, &result);
  const bool cancelled_by_request = queue_.EndRun(run.id);
  // docs/server.md "Metrics": counted once the run's last status is known
  // (below: interrupted when the server stops).
  struct CountEnd {
    ServeMetrics* metrics;
    Observer* observer;
    RunRecord* result;
    std::chrono::steady_clock::time_point began;
    ~CountEnd() {
      if (metrics == nullptr || !observer->started()) return;
      const bool interrupted = result->status == kInterrupted;
      for (const auto& [environment, status] : observer->deployments())
        metrics->DeploymentEnded(environment,
                                 interrupted && status == kCancelled ? kInterrupted : status);
      if (!IsFinished(result->status)) return;  // waiting for an approval: not ended
      metrics->RunEnded(result->status);
      metrics->RunDuration(std::chrono::steady_clock::now() - began);
    }
  } count_end{metrics_.get(), &observer, &result, began};
  if (!observer.started()) {
    // Superseded or cancelled while its workspace was prepared: the store
    // refused to start it (RunStore::StartRun), so it never ran.
    spdlog::info("run {}: {}", run.id, s.ok() ? "did not start" : s.message());
    std::error_code ec;
    if (run.resume_stage.empty()) fs::remove_all(workspace, ec);
    return;
  }
  if (!s.ok()) spdlog::error("run {}: {}", run.id, s.ToString());
  if (queue_.stopping() && !cancelled_by_request && result.status == kCancelled) {
    // docs/design.md "Statuses": a server stopped by a signal leaves its runs interrupted.
    result.status = kInterrupted;
    result.message = "interrupted: ladle serve stopped (signal " +
                     std::to_string(stop_signal_) + ")";
    Status us = store_->UpdateRun(result);
    if (!us.ok()) spdlog::error("run {}: could not record it interrupted: {}", run.id, us.message());
    // Its deployment too: stopped with the server, not cancelled by anyone.
    if (us.ok() && result.deployment && result.deployment->status == kCancelled) {
      Status ds = store_->FinishDeployment(result.deployment->id, kInterrupted);
      if (!ds.ok()) spdlog::error("run {}: could not record its deployment interrupted: {}", run.id, ds.message());
    }
    if (us.ok() && config_.requeue_interrupted) us = store_->RequeueRun(run.id, "");
    if (!us.ok()) spdlog::error("run {}: could not queue it again: {}", run.id, us.message());
    spdlog::warn("run {}: {}{}", run.id, result.message,
                 config_.requeue_interrupted ? "; queued again for the next start" : "");
    return;
  }
  if (result.status == kSuccess || result.status == kCancelled) {
    std::error_code ec;
    fs::remove_all(workspace, ec);
  }
}

Status Scheduler::Cancel(int64_t id, const std::string& actor) {
  RunRecord run;
  Status s = store_->GetRun(id, &run);
  if (!s.ok()) return s;
  if (queue_.CancelRunning(id, SIGINT)) {
    spdlog::info("run {}: cancelled by {}", id, actor);
    return Status::OK();
  }
  // docs/server.md "Replicas": another replica runs it; it reads the request
  // within its round.
  if (run.status == kRunning && store_->shared() && !run.replica.empty() &&
      run.replica != store_->replica_id()) {
    s = store_->RequestCancel(id);
    if (s.ok()) spdlog::info("run {}: cancel by {} passed to replica {}", id, actor, run.replica);
    return s;
  }
  // Out of the queue; or, when a worker is preparing it right now, its
  // executor starts cancelled (and the store refuses to start it anyway).
  if (run.status == kQueued) queue_.CancelQueued(id);
  if (run.status != kQueued && run.status != kWaiting)
    return Status::Conflict("run " + std::to_string(id) + " is " + ToString(run.status) +
                            ": only queued, running or waiting runs can be cancelled");
  EndBeforeStart(&run, kCancelled, "cancelled by " + actor);
  return Status::OK();
}

Status Scheduler::Approve(int64_t id, const std::string& stage, const std::string& actor) {
  RunRecord run;
  Status s = store_->GetRun(id, &run);
  if (!s.ok()) return s;
  const StageRecord* rec = nullptr;
  for (const StageRecord& st : run.stages)
    if (st.name == stage) rec = &st;
  if (rec == nullptr)
    return Status::NotFound("run " + std::to_string(id) + " has no stage '" + stage + "'");
  if (run.trigger.empty())  // a `ladle run` run: that ladle is gone, no one to resume it here
    return Status::Conflict("run " + std::to_string(id) + " was started by `ladle run`, not by " +
                            "ladle serve; it " + rec->message);
  if (run.status != kWaiting || rec->status != kWaiting)
    return Status::Conflict("stage " + stage + " of run " + std::to_string(id) + " is " +
                            ToString(rec->status) + ", not waiting for approval");
  if (stopping_) return Status::Unavailable("ladle serve is stopping; approve after its restart");
  s = store_->RequeueRun(id, stage);
  if (!s.ok()) return s;
  spdlog::info("run {}: stage {} approved by {}", id, stage, actor);
  if (store_->GetRun(id, &run).ok()) events_->PublishRun(run);
  queue_.Push(id);
  return Status::OK();
}

Status Scheduler::Rollback(const std::string& environment, int64_t to_run, const std::string& actor,
                        int64_t* run_id) {
  std::vector<DeploymentRecord> history;
  Status s = store_->ListDeployments(environment, 0, 0, &history);
  if (!s.ok()) return s;
  DeploymentRecord chosen;
  s = ChooseRollbackTarget(history, environment, to_run, &chosen);
  if (!s.ok()) return s;
  const DeploymentRecord* target = &chosen;
  if (FindRepo(target->repo) == nullptr)
    return Status::Invalid("repository '" + target->repo + "' of run " +
                           std::to_string(target->run_id) + " is not in " + config_.file);
  if (stopping_) return Status::Unavailable("ladle serve is stopping");
  RunRecord run;
  run.repo = target->repo;
  run.branch = target->branch;
  run.commit = target->commit;
  run.trigger = "rollback";
  run.rollback_environment = environment;
  run.source_run = target->run_id;
  RunRecord source;
  if (store_->GetRun(target->run_id, &source).ok()) {
    run.pipeline = source.pipeline;
    run.file = source.file;
    // A rollback's own artifacts are those of the run it repeated.
    if (target->rollback && source.source_run != 0) run.source_run = source.source_run;
  }
  std::vector<int64_t> superseded;
  s = store_->EnqueueRun(&run, &superseded);
  if (!s.ok()) return s;
  *run_id = run.id;
  for (int64_t old : superseded) {
    queue_.Remove(old);
    if (metrics_) metrics_->RunEnded(kSuperseded);
  }
  spdlog::info("run {} queued by {}: roll {} back to {} (run {})", run.id, actor, environment,
               run.commit.substr(0, 12), target->run_id);
  events_->PublishRun(run);
  queue_.Push(run.id);
  return Status::OK();
}

Status Scheduler::CheckBranchHead(Repo* repo, const std::string& branch,
                                  const std::string& commit) {
  std::string head;
  Status s;
  {
    std::lock_guard<std::mutex> lock(repo->mu);
    s = repo->mirror->BranchHead(branch, &head);
  }
  if (s.code() == Code::kNotFound)
    return Status::Conflict(s.message() + ": the push is not taken");
  if (!s.ok()) return s;
  if (Lower(head) != Lower(commit))
    return Status::Conflict("commit " + commit.substr(0, 12) + " is not the head of branch " +
                            branch + " in repository '" + repo->config->name + "' (" +
                            head.substr(0, 12) + " is): the push is not taken");
  return Status::OK();
}

Status Scheduler::Push(const std::string& name, const HeaderLookup& header, std::string_view body,
                    std::vector<int64_t>* runs, std::string* note, bool* replay) {
  *replay = false;
  Repo* repo = FindRepo(name);
  if (repo == nullptr) return Status::NotFound("no repository '" + name + "' in " + config_.file);
  const std::string secret = repo->config->webhook_secret_env.empty()
                                 ? ""
                                 : SecretValue(secrets_, repo->config->webhook_secret_env);
  PushEvent event;
  Status s = ParsePushHook(header, body, secret, &event);
  if (!s.ok()) {
    if (s.code() == Code::kUnauthorized && secret.empty())
      return Status::Unauthorized(
          "repository '" + name + "' accepts no webhooks: " +
          (repo->config->webhook_secret_env.empty()
               ? std::string("set webhook_secret_env in ") + config_.file
               : repo->config->webhook_secret_env + " is not set"));
    return s;
  }
  if (stopping_) return Status::Unavailable("ladle serve is stopping; push again later");
  // docs/server.md "Webhook trust": a delivery is handled once. Claimed
  // before the work, so that two copies at once start one run; forgotten
  // when the work fails, so that the sender's retry is not a replay.
  if (!event.delivery.empty()) {
    bool fresh = false;
    s = store_->ClaimDelivery(event.delivery, name, kKeepDeliveries, &fresh);
    if (!s.ok()) return s;
    if (!fresh) {
      *replay = true;
      *note = "delivery " + event.delivery + " was handled before: nothing to do";
      spdlog::warn("repository {}: replayed webhook delivery {} ignored", name, event.delivery);
      return Status::OK();
    }
  }
  s = HandlePush(repo, event, runs, note);
  if (!s.ok() && !event.delivery.empty()) {
    Status forget = store_->ForgetDelivery(event.delivery);
    if (!forget.ok()) spdlog::error("{}", forget.ToString());
  }
  return s;
}

Status Scheduler::HandlePush(Repo* repo, const PushEvent& event, std::vector<int64_t>* runs,
                             std::string* note) {
  if (event.is_pull_request) return HandlePullRequest(repo, event, runs, note);
  if (event.is_push && !event.tag.empty()) return HandleTagPush(repo, event, runs, note);
  if (!event.is_push || event.deleted || event.branch.empty() || event.commit.empty()) {
    *note = event.note.empty() ? "nothing to build" : event.note;
    return Status::OK();
  }
  if (!BranchWatched(repo->config->branches, event.branch)) {
    *note = "branch " + event.branch + " is not watched (server.yml: branches of " +
            repo->config->name + ")";
    return Status::OK();
  }
  Status s = CheckBranchHead(repo, event.branch, event.commit);
  if (!s.ok()) return s;
  int64_t id = 0;
  s = OfferCommit(*repo->config, event.branch, event.commit, "push", &id, note);
  if (s.ok() && id != 0) runs->push_back(id);
  return s;
}

}  // namespace ladle::runner
