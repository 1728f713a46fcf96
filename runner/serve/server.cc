#include "runner/serve/server.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "core/base/time_util.h"
#include "core/pg.h"
#include "env/docker_engine.h"
#include "env/local_engine.h"
#include "runner/exec/prune.h"
#include "runner/exec/toggle_ops.h"
#include "runner/serve/web_ui.h"

namespace fs = std::filesystem;

namespace ladle::runner {

Server::Server(const ServerConfig& config) : config_(config) {}

Server::~Server() {
  Drain(SIGTERM);
  // The runs API's hook threads call the scheduler: they end first.
  runs_api_.reset();
  scheduler_.reset();
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
  Vars secrets;
  if (!config.secrets_file.empty()) {
    Status s = LoadSecretsFile(config.secrets_file, &secrets);
    if (!s.ok()) return s;
  }
  // docs/server.md "Replicas": store: in server.yml, else $LADLE_STORE, else
  // the data dir's SQLite files.
  const std::string location = !config.store.empty()
                                   ? config.store
                                   : toggles::ToggleStoreLocation("", data);
  const std::string where = IsPostgresUri(location) ? RedactPostgresUri(location) : data;
  Status s = RunStore::OpenLocation(location, data, &server->store_);
  if (s.ok()) s = toggles::ToggleStore::Open(location, &server->toggles_);
  if (s.ok()) s = toggles::TokenStore::OpenLocation(location, data, &server->tokens_);
  if (!s.ok()) return s.WithContext("open the stores in " + where);
  server->store_location_ = where;
  server->toggle_ops_ = StoreToggleOps(server->toggles_.get());
  server->scheduler_ = std::make_unique<Scheduler>(server->config_, std::move(secrets),
                                                   server->store_.get(),
                                                   server->toggle_ops_.get(), &server->events_);
  server->scheduler_->SetMetrics(&server->metrics_);  // docs/server.md "Metrics"
  *out = std::move(server);
  return Status::OK();
}

std::string Server::address() const { return http_ ? http_->address() : ""; }

Status Server::Start() {
  toggles::AdminTokenSetup what = toggles::AdminTokenSetup::kExisting;
  Status s = tokens_->EnsureAdminToken(&what);
  if (!s.ok()) return s;
  if (what == toggles::AdminTokenSetup::kWroteFile)
    spdlog::info("admin token written to {}", toggles::AdminTokenPath(config_.data));

  toggle_api_ = std::make_unique<toggles::ToggleApi>(*toggles_, *tokens_, &metrics_);
  toggle_api_->Register(&router_);
  runs_api_ = std::make_unique<RunsApi>(*store_, *tokens_, *scheduler_, events_);
  runs_api_->Register(&router_);
  RegisterWebUi(&router_);

  HttpServerOptions options;
  s = ParseListenAddress(config_.listen, &options.host, &options.port);
  if (!s.ok()) return Status::Invalid("listen: " + s.message());
  options.metrics = &metrics_;
  // docs/server.md "Top level", max_connections; 0 leaves core's default.
  options.max_connections = static_cast<size_t>(config_.max_connections);
  // docs/server.md "Top level", io_threads; 0 leaves core's default.
  options.threads = config_.io_threads;
  options.on_warning = [](const std::string& message) { spdlog::warn("http: {}", message); };
  // Two io threads by default (one per core here): nothing slow runs on them. A push
  // webhook that waits for a fetch of a remote repository waits on a hook
  // thread of the runs API (a deferred response), not on an io thread.
  options.on_request = [](const HttpRequestLog& l) {
    spdlog::debug("{} {} {} {} {:.3f} ms", l.remote, l.method, l.path, l.status,
                  std::chrono::duration<double, std::milli>(l.duration).count());
  };
  // Before listening: nobody sees a dead server's runs as running.
  scheduler_->Recover();
  if (store_->shared()) {
    // docs/server.md "Replicas": the other replicas reach this one at
    // replica_url, else at the address it listens on. Before listening: a
    // replica refused here never answers a load balancer's health check.
    const std::string url =
        !config_.replica_url.empty() ? config_.replica_url : "http://" + config_.listen;
    s = store_->RegisterReplica(url, config_.lease);
    if (!s.ok()) return s.WithContext("register this replica");
    // After registering: two replicas starting at once see each other.
    std::string difference;
    s = store_->CheckSharedConfig(SharedConfigText(config_), &difference);
    if (!s.ok()) return s.WithContext("compare server.yml with the other replicas'");
    if (!difference.empty())
      return Status::Precondition(
          (config_.file.empty() ? std::string("the default settings") : config_.file) +
          " differs from the server.yml of the replicas already on " + store_location_ + ": " +
          difference + " (every replica needs the same settings but listen, data, "
          "replica_url, workers and io_threads)");
    scheduler_->SetReplica(url, config_.lease,
                           std::chrono::milliseconds(std::clamp<int64_t>(
                               config_.lease.count() * 1000 / 10, 100, 1000)));
    spdlog::info("replica {} on {} (lease {}s)", store_->replica_id(), url, config_.lease.count());
    env::SetLocalStepsDieWithLadle(true);
  }

  http_ = std::make_unique<HttpServer>(router_, options);
  s = http_->Start();
  if (!s.ok()) return Status::Unavailable("listen on " + config_.listen + ": " + s.message());

  const int workers = std::max(1, config_.workers);
  scheduler_->Start(workers);
  poller_ = std::thread(&Server::PollLoop, this);
  spdlog::info("ladle serve listening on http://{} (data {}, {} worker(s), {} repositor{})",
               http_->address(), config_.data, workers, config_.repositories.size(),
               config_.repositories.size() == 1 ? "y" : "ies");
  spdlog::info("web UI: http://{}/ (it asks for a token; `ladle toggles token create NAME "
               "--role client` makes one)",
               http_->address());
  return Status::OK();
}

void Server::PollLoop() {
  using Clock = std::chrono::steady_clock;
  std::map<std::string, Clock::time_point> due;
  std::set<std::string> listed;
  Clock::time_point next_prune = Clock::now();
  // At start every repository is listed once, webhook-only ones too: what
  // was pushed while the server was down is not missed.
  for (const RepositoryConfig& repo : config_.repositories) due[repo.name] = Clock::now();
  bool led = true;
  std::unique_lock<std::mutex> lock(mu_);
  while (!draining_) {
    // docs/server.md "Replicas": one replica polls; a new leader lists every
    // repository first, as at a start.
    const bool lead = scheduler_->leader();
    if (lead && !led) {
      listed.clear();
      for (const RepositoryConfig& repo : config_.repositories) due[repo.name] = Clock::now();
    }
    led = lead;
    const auto now = lead ? Clock::now() : Clock::time_point::min();
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
        s = scheduler_->OfferCommit(repo, branch, commit, first ? "start" : "poll", &id, &why);
        if (!s.ok()) spdlog::warn("{} {}: {}", repo.name, branch, s.message());
      }
      lock.lock();
      if (draining_) return;
    }
    auto next = Clock::now() + std::chrono::seconds(1);
    if (lead)
      for (const auto& [name, when] : due) next = std::min(next, when);
    cv_.wait_until(lock, next, [&] { return draining_; });
    lock.unlock();
    if (config_.retention.count() > 0 && Clock::now() >= next_prune) {
      next_prune = Clock::now() + std::chrono::hours(1);
      std::vector<int64_t> pruned;
      Status ps = PruneRuns(store_.get(), config_.data, config_.retention, scheduler_->docker(),
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
    cv_.notify_all();
  }
  if (scheduler_) scheduler_->Stop(signal);  // null when Open failed before making it
  if (poller_.joinable()) poller_.join();
  // docs/server.md "Replicas": a clean stop leaves no lease to wait for.
  if (store_ && store_->shared() && !store_->replica_id().empty()) {
    Status s = store_->UnregisterReplica();
    if (!s.ok()) spdlog::warn("unregister this replica: {}", s.message());
  }
  if (http_) http_->Stop();
  std::lock_guard<std::mutex> lock(mu_);
  drained_ = true;
  cv_.notify_all();
}

void Server::Wait() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return drained_; });
}

}  // namespace ladle::runner
