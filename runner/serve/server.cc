#include "runner/serve/server.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <spdlog/spdlog.h>

#include "core/base/time_util.h"
#include "env/docker_engine.h"
#include "env/subprocess.h"
#include "runner/exec/backend.h"
#include "runner/exec/executor.h"
#include "runner/config/pipeline.h"
#include "runner/exec/prune.h"
#include "runner/exec/toggle_ops.h"
#include "runner/serve/web_ui.h"
#include "runner/serve/webhook.h"

namespace fs = std::filesystem;

namespace ladle::runner {

// Tells the runs API (its SSE stream) and the server's log what a run does.
class Server::Observer : public RunObserver {
 public:
  explicit Observer(RunsApi* api) : api_(api) {}
  // `lock` is released once the executor has recorded the run as started.
  void ReleaseOnStart(std::unique_lock<std::mutex>* lock) { release_on_start_ = lock; }
  void RunStarted(const RunRecord& run) override {
    if (release_on_start_ && release_on_start_->owns_lock()) release_on_start_->unlock();
    id_ = run.id;
    api_->PublishRun(run);
    spdlog::info("run {}: {} {} at {} started", run.id, run.repo, run.branch,
                 run.commit.substr(0, 12));
  }
  void Note(const std::string& text) override { spdlog::info("run {}: {}", id_, text); }
  void StageChanged(const RunRecord& run, const StageRecord& stage) override {
    api_->PublishStage(run.id, stage);
  }
  void StepChanged(const RunRecord& run, const std::string& stage,
                   const StepRecord& step) override {
    api_->PublishStep(run.id, stage, step);
  }
  void RunFinished(const RunRecord& run) override {
    api_->PublishRun(run);
    spdlog::info("run {}: {}{}", run.id, ToString(run.status), run.message.empty() ? "" : ": " + run.message);
  }

 private:
  RunsApi* api_;
  int64_t id_ = 0;
  std::unique_lock<std::mutex>* release_on_start_ = nullptr;
};

namespace {

// Marks a run that never reached the executor as failed (or cancelled).
void EndBeforeStart(RunStore* store, RunsApi* api, RunRecord* run, RunStatus status,
                    const std::string& message) {
  run->status = status;
  run->message = message;
  if (run->started_at.empty()) run->started_at = NowRfc3339();
  run->finished_at = NowRfc3339();
  Status s = store->UpdateRun(*run);
  if (!s.ok()) spdlog::error("run {}: {}", run->id, s.ToString());
  api->PublishRun(*run);
  spdlog::warn("run {}: {}: {}", run->id, ToString(status), message);
}

// Local steps outlive a server killed with SIGKILL (each runs in its own
// process group). Ends those of the run whose workspace this is (found by the
// LADLE_WORKSPACE their environment carries), so that they do not go on
// beside the run's next attempt, or hold a deployment past its lock. Returns
// how many processes it killed.
int KillLeftoverSteps(const std::string& workspace) {
  // The whole entry with its NUL, so ".../workspaces/1" does not match "/12".
  return env::SignalProcessesWith("LADLE_WORKSPACE=" + workspace + std::string(1, '\0'), SIGKILL);
}

bool BranchWatched(const std::vector<std::string>& globs, const std::string& branch) {
  if (globs.empty()) return true;
  for (const std::string& glob : globs)
    if (BranchMatches(glob, branch)) return true;
  return false;
}

}  // namespace

Server::Server(const ServerConfig& config) : config_(config) {}

Server::~Server() {
  Drain(SIGTERM);
  // Joins the hook threads while every member a push touches still exists
  // (mu_, queue_ and the rest are declared after runs_api_).
  runs_api_.reset();
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

Status Server::Open(const ServerConfig& config, std::unique_ptr<Server>* out) {
  std::unique_ptr<Server> server(new Server(config));
  const std::string& data = server->config_.data;
  std::error_code ec;
  fs::create_directories(data, ec);
  if (ec) return Status::IoError("create data dir " + data + ": " + ec.message());
  const std::string lock_path = data + "/serve.lock";
  server->lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (server->lock_fd_ < 0) return Status::FromErrno("open " + lock_path, errno);
  if (::flock(server->lock_fd_, LOCK_EX | LOCK_NB) != 0)
    return Status::Unavailable("another `ladle serve` uses the data dir " + data +
                               " (it holds " + lock_path + ")");
  if (!config.secrets_file.empty()) {
    Status s = LoadSecretsFile(config.secrets_file, &server->secrets_);
    if (!s.ok()) return s;
  }
  Status s = RunStore::Open(data, &server->store_);
  if (s.ok()) s = toggles::ToggleStore::Open(data, &server->toggles_);
  if (s.ok()) s = toggles::TokenStore::Open(data, &server->tokens_);
  if (!s.ok()) return s.WithContext("open the stores in " + data);
  server->toggle_ops_ = StoreToggleOps(server->toggles_.get());
  for (const RepositoryConfig& repo : server->config_.repositories) {
    auto r = std::make_unique<Repo>();
    r->config = &repo;
    r->mirror = std::make_unique<GitMirror>(repo.url, data + "/repos/" + repo.name + ".git");
    server->repos_[repo.name] = std::move(r);
  }
  *out = std::move(server);
  return Status::OK();
}

std::string Server::address() const { return http_ ? http_->address() : ""; }

Server::Repo* Server::FindRepo(const std::string& name) {
  auto it = repos_.find(name);
  return it == repos_.end() ? nullptr : it->second.get();
}

Status Server::Start() {
  toggles::AdminTokenSetup what = toggles::AdminTokenSetup::kExisting;
  Status s = tokens_->EnsureAdminToken(&what);
  if (!s.ok()) return s;
  if (what == toggles::AdminTokenSetup::kWroteFile)
    spdlog::info("admin token written to {}", toggles::AdminTokenPath(config_.data));

  toggle_api_ = std::make_unique<toggles::ToggleApi>(*toggles_, *tokens_, &metrics_);
  toggle_api_->Register(&router_);
  runs_api_ = std::make_unique<RunsApi>(*store_, *tokens_, *this);
  runs_api_->Register(&router_);
  RegisterWebUi(&router_);

  HttpServerOptions options;
  s = ParseListenAddress(config_.listen, &options.host, &options.port);
  if (!s.ok()) return Status::Invalid("listen: " + s.message());
  options.metrics = &metrics_;
  // Two io threads (one per core here): nothing slow runs on them. A push
  // webhook that waits for a fetch of a remote repository waits on a hook
  // thread of the runs API (a deferred response), not on an io thread.
  options.on_request = [](const HttpRequestLog& l) {
    spdlog::debug("{} {} {} {} {:.3f} ms", l.remote, l.method, l.path, l.status,
                  std::chrono::duration<double, std::milli>(l.duration).count());
  };
  // Before listening: nobody sees a dead server's runs as running.
  Recover();
  http_ = std::make_unique<HttpServer>(router_, options);
  s = http_->Start();
  if (!s.ok()) return Status::Unavailable("listen on " + config_.listen + ": " + s.message());

  const int workers = std::max(1, config_.workers);
  for (int i = 0; i < workers; ++i) workers_.emplace_back(&Server::WorkerLoop, this);
  poller_ = std::thread(&Server::PollLoop, this);
  spdlog::info("ladle serve listening on http://{} (data {}, {} worker(s), {} repositor{})",
               http_->address(), config_.data, workers, config_.repositories.size(),
               config_.repositories.size() == 1 ? "y" : "ies");
  spdlog::info("web UI: http://{}/ (it asks for a token; `ladle toggles token create NAME "
               "--role client` makes one)",
               http_->address());
  return Status::OK();
}

// What a dead server left: its running runs become interrupted (their
// deployment records too; the kernel released its deployment locks), their
// containers are removed, and they are queued again when configured. Queued
// runs stay queued.
void Server::Recover() {
  std::vector<int64_t> interrupted;
  Status s = store_->MarkInterrupted(&interrupted);
  if (!s.ok()) spdlog::error("{}", s.ToString());
  for (int64_t id : interrupted) {
    spdlog::warn("run {} was left running by a ladle that is gone: marked interrupted{}", id,
                 config_.requeue_interrupted ? ", queued again" : "");
    RunRecord run;
    if (store_->GetRun(id, &run).ok() && !run.workspace.empty()) {
      if (int n = KillLeftoverSteps(run.workspace))
        spdlog::warn("run {}: killed {} process(es) its steps left running", id, n);
    }
    if (config_.requeue_interrupted) {
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
      CleanupStaleContainers(docker.get(), store_.get(), &notes);
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
  for (const RunRecord& run : queued) Enqueue(run.id);
  if (!queued.empty()) spdlog::info("{} queued run(s) waiting from before", queued.size());
}

void Server::Enqueue(int64_t run_id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!queued_.insert(run_id).second) return;
  queue_.push_back(run_id);
  cv_.notify_all();
}

Status Server::OfferCommit(const RepositoryConfig& config, const std::string& branch,
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
  if (ParsePipeline(text, config.pipeline, &pipeline, &diagnostics) &&
      !BranchWatched(pipeline.push_branches, branch)) {
    *why = "the pipeline's on.push.branches does not list " + branch;
    return Status::OK();
  }
  RunRecord run;
  run.repo = config.name;
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
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int64_t old : superseded) {
      queued_.erase(old);
      queue_.erase(std::remove(queue_.begin(), queue_.end(), old), queue_.end());
    }
  }
  for (int64_t old : superseded) {
    RunRecord r;
    if (store_->GetRun(old, &r).ok()) runs_api_->PublishRun(r);
    spdlog::info("run {} superseded by run {}", old, run.id);
  }
  runs_api_->PublishRun(run);
  Enqueue(run.id);
  return Status::OK();
}

void Server::WorkerLoop() {
  for (;;) {
    int64_t id = 0;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return draining_ || !queue_.empty(); });
      if (draining_) return;
      id = queue_.front();
      queue_.pop_front();
      queued_.erase(id);
    }
    RunRecord run;
    Status s = store_->GetRun(id, &run);
    if (!s.ok()) {
      spdlog::error("run {}: {}", id, s.ToString());
      continue;
    }
    if (run.status != kQueued) continue;  // superseded or cancelled meanwhile
    Execute(std::move(run));
  }
}

Status Server::PrepareWorkspace(Repo* repo, const RunRecord& run, std::string* workspace) {
  *workspace = (fs::path(config_.data) / "workspaces" / std::to_string(run.id)).string();
  std::error_code ec;
  // An approved run resumes in the workspace it left.
  if (!run.resume_stage.empty() && fs::is_directory(*workspace, ec)) return Status::OK();
  fs::remove_all(*workspace, ec);
  fs::create_directories(fs::path(*workspace).parent_path(), ec);
  std::lock_guard<std::mutex> lock(repo->mu);
  return repo->mirror->Checkout(run.commit, *workspace);
}

void Server::Execute(RunRecord run) {
  Repo* repo = FindRepo(run.repo);
  if (repo == nullptr)
    return EndBeforeStart(store_.get(), runs_api_.get(), &run, kFailed,
                          "repository '" + run.repo + "' is no longer in " + config_.file);
  std::string workspace;
  Status s = PrepareWorkspace(repo, run, &workspace);
  if (!s.ok())
    return EndBeforeStart(store_.get(), runs_api_.get(), &run, kFailed,
                          "could not check out the commit: " + s.message());
  run.workspace = workspace;
  Pipeline pipeline;
  std::vector<Diagnostic> diagnostics;
  const std::string file = (fs::path(workspace) / repo->config->pipeline).string();
  if (!LoadPipeline(file, &pipeline, &diagnostics)) {
    std::string message = repo->config->pipeline + " is invalid:";
    for (const Diagnostic& d : diagnostics)
      if (!d.warning) message += "\n" + d.ToString();
    return EndBeforeStart(store_.get(), runs_api_.get(), &run, kFailed, message);
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
    s = PickEngine(config_.backend, pipeline, config_.data, store_.get(), &own_engine, &notes,
                   "backend (" + config_.file + "):");
    if (!s.ok())
      return EndBeforeStart(store_.get(), runs_api_.get(), &run, kFailed, s.message());
    for (const std::string& note : notes) spdlog::info("run {}: {}", run.id, note);
    engine = own_engine.get();
  }

  Observer observer(runs_api_.get());
  Executor executor(pipeline, store_.get(), engine, &observer);
  // OfferCommit supersedes queued runs under the repository's lock: holding
  // it from this check until the executor has marked the run running means a
  // run superseded (or cancelled) while its workspace was prepared is never
  // started, and a started one is never marked superseded.
  std::unique_lock<std::mutex> repo_lock(repo->mu);
  RunRecord now;
  if (store_->GetRun(run.id, &now).ok() && now.status != kQueued) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      cancelled_.erase(run.id);
    }
    spdlog::info("run {}: {} before it started", run.id, ToString(now.status));
    std::error_code ec;
    if (run.resume_stage.empty()) fs::remove_all(workspace, ec);
    return;
  }
  observer.ReleaseOnStart(&repo_lock);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (cancelled_.erase(run.id)) {
      executor.Cancel(SIGINT);
    } else if (draining_) {
      // Taken just as the server stops: leave it queued for the next start.
      return;
    }
    running_[run.id] = &executor;
  }
  RunOptions options;
  options.data_dir = config_.data;
  options.run_id = run.id;
  options.workspace = workspace;
  options.commit = run.commit;
  options.branch = run.branch;
  options.repo = run.repo;
  options.secrets = secrets_;
  options.toggles = toggle_ops_.get();
  options.actor = "ladle serve";
  options.resume_stage = run.resume_stage;
  options.rollback_environment = run.rollback_environment;
  options.artifacts_from = run.source_run;
  RunRecord result;
  s = executor.Run(options, &result);
  if (repo_lock.owns_lock()) repo_lock.unlock();  // the run never started
  bool interrupted = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    running_.erase(run.id);
    interrupted = draining_ && !cancelled_.erase(run.id) && result.status == kCancelled;
  }
  if (!s.ok()) spdlog::error("run {}: {}", run.id, s.ToString());
  if (interrupted) {
    // docs/design.md "Statuses": a server stopped by a signal leaves its runs interrupted.
    result.status = kInterrupted;
    result.message = "interrupted: ladle serve stopped (signal " +
                     std::to_string(drain_signal_) + ")";
    store_->UpdateRun(result);
    if (config_.requeue_interrupted) store_->RequeueRun(run.id, "");
    spdlog::warn("run {}: {}{}", run.id, result.message,
                 config_.requeue_interrupted ? "; queued again for the next start" : "");
    return;
  }
  if (result.status == kSuccess || result.status == kCancelled) {
    std::error_code ec;
    fs::remove_all(workspace, ec);
  }
}

void Server::PollLoop() {
  using Clock = std::chrono::steady_clock;
  std::map<std::string, Clock::time_point> due;
  std::set<std::string> listed;
  Clock::time_point next_prune = Clock::now();
  // At start every repository is listed once, webhook-only ones too: what
  // was pushed while the server was down is not missed.
  for (const RepositoryConfig& repo : config_.repositories) due[repo.name] = Clock::now();
  std::unique_lock<std::mutex> lock(mu_);
  while (!draining_) {
    const auto now = Clock::now();
    for (const RepositoryConfig& repo : config_.repositories) {
      auto it = due.find(repo.name);
      if (it == due.end() || it->second > now) continue;
      lock.unlock();
      std::map<std::string, std::string> heads;
      Status s = ListBranches(repo.url, &heads);
      const bool first = !listed.count(repo.name);
      if (!s.ok()) {
        spdlog::warn("poll {}: {}", repo.name, s.message());
        // A webhook-only repository is listed again until its first listing
        // works: what was pushed while the server was down must not be lost.
        it->second = Clock::now() + (repo.poll.count() > 0 ? repo.poll : std::chrono::seconds(30));
      } else if (repo.poll.count() > 0) {
        listed.insert(repo.name);
        it->second = Clock::now() + repo.poll;
      } else {
        listed.insert(repo.name);
        due.erase(it);
      }
      for (const auto& [branch, commit] : heads) {
        if (stopping_) return;
        int64_t id = 0;
        std::string why;
        s = OfferCommit(repo, branch, commit, first ? "start" : "poll", &id, &why);
        if (!s.ok()) spdlog::warn("{} {}: {}", repo.name, branch, s.message());
      }
      lock.lock();
      if (draining_) return;
    }
    auto next = Clock::now() + std::chrono::seconds(1);
    for (const auto& [name, when] : due) next = std::min(next, when);
    cv_.wait_until(lock, next, [&] { return draining_; });
    lock.unlock();
    if (config_.retention.count() > 0 && Clock::now() >= next_prune) {
      next_prune = Clock::now() + std::chrono::hours(1);
      std::vector<int64_t> pruned;
      Status ps = PruneRuns(store_.get(), config_.data, config_.retention, docker_.get(),
                            &pruned);
      if (!ps.ok()) spdlog::warn("{}", ps.ToString());
      if (!pruned.empty())
        spdlog::info("retention: pruned {} run(s) older than {}", pruned.size(),
                     FormatDuration(config_.retention));
    }
    Status s = toggles_->Refresh();  // writes by `ladle run` or the CLI on this data dir
    if (s.ok()) s = tokens_->Refresh();
    if (!s.ok()) spdlog::warn("refresh: {}", s.ToString());
    lock.lock();
  }
}

void Server::Drain(int signal) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (draining_) return;
    draining_ = true;
    stopping_ = true;
    drain_signal_ = signal;
    if (!running_.empty())
      spdlog::info("stopping: {} running run(s) get TERM and their grace", running_.size());
    for (auto& [id, executor] : running_) executor->Cancel(signal);
    cv_.notify_all();
  }
  for (std::thread& t : workers_)
    if (t.joinable()) t.join();
  if (poller_.joinable()) poller_.join();
  if (http_) http_->Stop();
  std::lock_guard<std::mutex> lock(mu_);
  drained_ = true;
  cv_.notify_all();
}

void Server::Wait() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return drained_; });
}

// ---- RunControl ----

Status Server::Cancel(int64_t id, const std::string& actor) {
  RunRecord run;
  Status s = store_->GetRun(id, &run);
  if (!s.ok()) return s;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = running_.find(id);
    if (it != running_.end()) {
      cancelled_.insert(id);
      it->second->Cancel(SIGINT);
      spdlog::info("run {}: cancelled by {}", id, actor);
      return Status::OK();
    }
    if (run.status == kQueued) {
      // Not in the queue any more: a worker is preparing it right now, and
      // its executor starts cancelled.
      if (queued_.erase(id) == 0) cancelled_.insert(id);
      queue_.erase(std::remove(queue_.begin(), queue_.end(), id), queue_.end());
    }
  }
  if (run.status != kQueued && run.status != kWaiting)
    return Status::Conflict("run " + std::to_string(id) + " is " + ToString(run.status) +
                            ": only queued, running or waiting runs can be cancelled");
  EndBeforeStart(store_.get(), runs_api_.get(), &run, kCancelled, "cancelled by " + actor);
  return Status::OK();
}

Status Server::Approve(int64_t id, const std::string& stage, const std::string& actor) {
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
  if (store_->GetRun(id, &run).ok()) runs_api_->PublishRun(run);
  Enqueue(id);
  return Status::OK();
}

Status Server::Rollback(const std::string& environment, int64_t to_run, const std::string& actor,
                        int64_t* run_id) {
  std::vector<DeploymentRecord> history;
  Status s = store_->ListDeployments(environment, 0, 0, &history);
  if (!s.ok()) return s;
  // Newest first. The target is the deployment before the current one, as in
  // GitLab: the newest good deployment of another commit, a rollback's too
  // (after A, B, rollback to A, C: A; after A, B, rollback to A: B again).
  const DeploymentRecord* current = nullptr;
  const DeploymentRecord* target = nullptr;
  for (const DeploymentRecord& d : history) {
    if (d.status != kSuccess) continue;
    if (to_run != 0) {
      if (d.run_id == to_run) {
        target = &d;
        break;
      }
      continue;
    }
    if (current == nullptr) {
      current = &d;
    } else if (d.commit != current->commit) {
      target = &d;
      break;
    }
  }
  if (target == nullptr) {
    if (to_run != 0)
      return Status::NotFound("run " + std::to_string(to_run) +
                              " has no successful deployment to " + environment);
    return Status::NotFound(
        current == nullptr
            ? "nothing was deployed to " + environment + " yet"
            : "no earlier successful deployment to " + environment + " than commit " +
                  current->commit.substr(0, 12) + " (run " + std::to_string(current->run_id) +
                  ") to roll back to");
  }
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
  spdlog::info("run {} queued by {}: roll {} back to {} (run {})", run.id, actor, environment,
               run.commit.substr(0, 12), target->run_id);
  runs_api_->PublishRun(run);
  Enqueue(run.id);
  return Status::OK();
}

Status Server::Push(const std::string& name, const HeaderLookup& header, std::string_view body,
                    std::vector<int64_t>* runs, std::string* note) {
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
  if (!event.is_push || event.deleted || event.branch.empty() || event.commit.empty()) {
    *note = event.note.empty() ? "nothing to build" : event.note;
    return Status::OK();
  }
  int64_t id = 0;
  s = OfferCommit(*repo->config, event.branch, event.commit, "push", &id, note);
  if (s.ok() && id != 0) runs->push_back(id);
  return s;
}

}  // namespace ladle::runner
