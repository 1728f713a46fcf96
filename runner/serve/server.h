// `ladle serve` in one process (docs/server.md): the data dir's lock, the
// stores, the HTTP server with the toggle API, the runs API and the web UI,
// the poller that offers new commits, retention; the Scheduler does the runs.
//
// Ownership, top down, no arrow back: Server owns RunEvents, the Scheduler
// (which publishes to RunEvents) and the RunsApi (which calls the Scheduler
// as its RunControl and subscribes clients to RunEvents).
//
// The queue lives in SQLite, so a restart loses nothing: queued runs stay
// queued, runs that a dead server left running are marked interrupted (and
// queued again when configured).
//
// Thread-safety: Drain may be called from any thread; Start and Wait from
// the owning thread.
#ifndef LADLE_RUNNER_SERVE_SERVER_H_
#define LADLE_RUNNER_SERVE_SERVER_H_

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/http.h"
#include "core/http_server.h"
#include "core/metrics.h"
#include "core/base/status.h"
#include "runner/store/run_store.h"
#include "runner/serve/run_events.h"
#include "runner/serve/scheduler.h"
#include "runner/serve/runs_api.h"
#include "runner/config/server_config.h"
#include "toggles/server/api.h"
#include "toggles/server/store.h"
#include "toggles/server/tokens.h"

namespace ladle::runner {

class ToggleOps;

class Server {
 public:
  // REQUIRES: config.data is the data dir to use (absolute). Opens the
  // stores, takes the data dir's server lock (Unavailable when another
  // `ladle serve` holds it), reads the secrets file.
  static Status Open(const ServerConfig& config, std::unique_ptr<Server>* out);
  ~Server();

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

  // The scheduler (for the tests of a server that is not started).
  Scheduler* scheduler() { return scheduler_.get(); }

 private:
  explicit Server(const ServerConfig& config);
  void PollLoop();  // offers new commits, prunes with `retention`, refreshes the toggles

  ServerConfig config_;
  int lock_fd_ = -1;
  std::unique_ptr<RunStore> store_;
  std::string store_location_;  // the data dir, or the redacted postgresql:// URI
  std::unique_ptr<toggles::ToggleStore> toggles_;
  std::unique_ptr<toggles::TokenStore> tokens_;
  std::unique_ptr<ToggleOps> toggle_ops_;
  RunEvents events_;
  std::unique_ptr<Scheduler> scheduler_;

  MetricsRegistry metrics_;
  Router router_;
  std::unique_ptr<toggles::ToggleApi> toggle_api_;
  std::unique_ptr<RunsApi> runs_api_;
  std::unique_ptr<HttpServer> http_;

  std::mutex mu_;  // guards the fields below
  std::condition_variable cv_;
  bool draining_ = false;
  std::atomic<bool> stopping_{false};       // draining_, readable without mu_
  bool drained_ = false;
  std::thread poller_;
};

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_SERVE_SERVER_H_
