// `ladle serve`: per-commit triggers, the run queue and its workers,
// deployments, and the HTTP API (toggles and runs) in one process (docs/server.md).
//
// A new commit on a watched branch (found by polling, by a push webhook, or
// at start for what arrived while the server was down) becomes one queued
// run in the RunStore; a newer commit of the branch supersedes the queued
// older ones. Workers take queued runs oldest first, check the commit out
// of the repository's mirror into the run's own workspace, and carry it out
// with the Executor that `ladle run` uses. The queue lives in SQLite, so a
// restart loses nothing: queued runs stay queued, runs that a dead server
// left running are marked interrupted (and queued again when configured).
//
// Thread-safety: RunControl methods may be called from any thread; Start,
// Drain and Wait from the owning thread.
#ifndef LADLE_RUNNER_SERVE_SERVER_H_
#define LADLE_RUNNER_SERVE_SERVER_H_

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/http.h"
#include "core/http_server.h"
#include "core/metrics.h"
#include "core/base/status.h"
#include "runner/serve/git_source.h"
#include "runner/store/run_store.h"
#include "runner/serve/runs_api.h"
#include "runner/config/server_config.h"
#include "toggles/server/api.h"
#include "toggles/server/store.h"
#include "toggles/server/tokens.h"

namespace ladle::env {
class DockerEngine;
}

namespace ladle::runner {

class Executor;
class ToggleOps;

class Server : public RunControl {
 public:
  // REQUIRES: config.data is the data dir to use (absolute). Opens the
  // stores, takes the data dir's server lock (Unavailable when another
  // `ladle serve` holds it), reads the secrets file.
  static Status Open(const ServerConfig& config, std::unique_ptr<Server>* out);
  ~Server() override;

  // Recovers what a previous server left, listens, starts the workers and
  // the pollers. Unavailable when the address is taken.
  Status Start();
  // Stops taking runs; running steps get TERM and their grace; their runs
  // become interrupted (queued again with requeue_interrupted). Returns once
  // the workers are done. Thread-safe; later calls do nothing.
  void Drain(int signal);
  // Blocks until Drain has finished.
  void Wait();

  std::string address() const;  // "127.0.0.1:7707" once started
  const std::string& data_dir() const { return config_.data; }

  // --- RunControl (the runs API) ---
  Status Cancel(int64_t run, const std::string& actor) override;
  Status Approve(int64_t run, const std::string& stage, const std::string& actor) override;
  Status Rollback(const std::string& environment, int64_t to_run, const std::string& actor,
                  int64_t* run_id) override;
  Status Push(const std::string& repo, const HeaderLookup& header, std::string_view body,
              std::vector<int64_t>* runs, std::string* note) override;

  // A new head of `branch` in `repo`: queues one run for it unless a run of
  // that commit exists or no pipeline watches the branch. *run_id 0 when
  // nothing was queued (*why says why). Thread-safe.
  Status OfferCommit(const RepositoryConfig& repo, const std::string& branch,
                     const std::string& commit, const std::string& trigger, int64_t* run_id,
                     std::string* why);

 private:
  class Observer;
  struct Repo {
    const RepositoryConfig* config = nullptr;
    std::unique_ptr<GitMirror> mirror;
    std::mutex mu;  // one fetch, read or checkout at a time; orders OfferCommit
  };

  explicit Server(const ServerConfig& config);
  Repo* FindRepo(const std::string& name);
  void Recover();
  void Enqueue(int64_t run_id);
  void WorkerLoop();
  void Execute(RunRecord run);
  Status PrepareWorkspace(Repo* repo, const RunRecord& run, std::string* workspace);
  void PollLoop();
  void PruneOld();

  ServerConfig config_;
  Vars secrets_;
  int lock_fd_ = -1;
  std::unique_ptr<RunStore> store_;
  std::unique_ptr<toggles::ToggleStore> toggles_;
  std::unique_ptr<toggles::TokenStore> tokens_;
  std::unique_ptr<ToggleOps> toggle_ops_;
  std::unique_ptr<env::DockerEngine> docker_;  // opened at start when a daemon answers
  std::map<std::string, std::unique_ptr<Repo>> repos_;

  MetricsRegistry metrics_;
  Router router_;
  std::unique_ptr<toggles::ToggleApi> toggle_api_;
  std::unique_ptr<RunsApi> runs_api_;
  std::unique_ptr<HttpServer> http_;

  std::mutex mu_;  // guards the fields below
  std::condition_variable cv_;
  std::deque<int64_t> queue_;
  std::set<int64_t> queued_;                // ids in queue_
  std::map<int64_t, Executor*> running_;    // run id -> its executor
  std::set<int64_t> cancelled_;             // cancelled before its executor existed
  bool draining_ = false;
  std::atomic<bool> stopping_{false};       // draining_, readable without mu_
  bool drained_ = false;
  int drain_signal_ = 0;
  std::vector<std::thread> workers_;
  std::thread poller_;
};

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_SERVE_SERVER_H_
