// The runs API of `ladle serve` (docs/server.md "HTTP API: runs"): run history, step logs (followed
// while they grow), cancel, approve, deployments, rollback, push webhooks and
// the SSE stream of run, stage and step changes.
//
// Routes are plain handlers registered on a core Router, like the toggle API
// (toggles/server/api.h): tests call them through Router::Dispatch without a socket.
// What the routes ask of the running server (cancel a run, take a push) goes
// through the RunControl interface, which `ladle serve` implements and tests
// fake. Reads go straight to the RunStore.
//
// Log following costs no thread per client: one follower thread polls every
// followed log (new bytes, and the step's status in the store) every
// follow_poll and queues what it reads on the client's StreamWriter; a client
// that stops reading is not read for (its queue bounds the memory).
//
// Ownership: RunsApi owns its SseHub, its event ring and the follower thread
// (joined by the destructor, which ends open streams); it only refers to the
// stores and the control, which must outlive it.
//
// Thread-safety: Register once, before serving; the handlers and the
// Publish* methods may then run on any number of threads at once.
#ifndef LADLE_RUNNER_SERVE_RUNS_API_H_
#define LADLE_RUNNER_SERVE_RUNS_API_H_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/thread_pool.hpp>

#include "core/http.h"
#include "core/sse.h"
#include "core/base/status.h"
#include "runner/store/run_store.h"
#include "runner/serve/webhook.h"
#include "toggles/server/tokens.h"

namespace ladle::runner {

// What the runs API asks of the server; implemented by ladle serve
// (runner/serve/server.cc), faked in tests. Errors map to HTTP codes through
// HttpResponse::FromStatus: NotFound 404, Invalid 400, Conflict 409 (the run
// is not running, the stage is not waiting), Unauthorized 401, Unavailable 503.
// Called on the server's io threads: must not block for long.
class RunControl {
 public:
  virtual ~RunControl() = default;
  // `actor` is the token's name (who did it, for logs and messages).
  virtual Status Cancel(int64_t run, const std::string& actor) = 0;
  virtual Status Approve(int64_t run, const std::string& stage, const std::string& actor) = 0;
  // to_run 0: the environment's previous good deployment. Sets *run_id to
  // the queued rollback run.
  virtual Status Rollback(const std::string& environment, int64_t to_run,
                          const std::string& actor, int64_t* run_id) = 0;
  // Authenticates (Unauthorized -> 401) and handles a push payload; *runs
  // gets the queued run ids (may be empty), *note why nothing started (for
  // the 202 body; may be empty).
  virtual Status Push(const std::string& repo, const HeaderLookup& header, std::string_view body,
                      std::vector<int64_t>* runs, std::string* note) = 0;
};

// (Outside RunsApi so that `Options options = {}` compiles as a default argument.)
struct RunsApiOptions {
  SseHubOptions sse;            // keep-alive every 15 s (docs/design.md "HTTP API conventions")
  size_t max_events = 1000;     // events kept for Last-Event-ID replay
  // How often the follower thread looks at followed logs and their steps.
  std::chrono::milliseconds follow_poll{100};
  // Bytes read per log per round; a stream whose queue holds more than this
  // is not read until it drains.
  size_t follow_chunk = 64 << 10;
  size_t stream_max_queued_bytes = 1 << 20;  // per log stream (StreamOptions)
  // A log bigger than this is streamed rather than answered in one body.
  uint64_t max_log_body = 8 << 20;
  // Threads that handle push webhooks: a push may wait for a fetch of a
  // remote repository, which must hold no HTTP io thread (OFREP, the API).
  int hook_threads = 2;
};

class RunsApi {
 public:
  using Options = RunsApiOptions;

  // REQUIRES: store, tokens and control outlive this object.
  RunsApi(RunStore& store, toggles::TokenStore& tokens, RunControl& control,
          Options options = {});
  // Stops the hook threads (a push not yet started is answered 503 if its
  // client still waits), ends open log and event streams and joins the
  // follower thread.
  ~RunsApi();
  RunsApi(const RunsApi&) = delete;
  RunsApi& operator=(const RunsApi&) = delete;

  // Adds every route of docs/server.md "HTTP API: runs" but GET / (the UI) and the toggle routes
  // (toggles/server/api.h). Call once.
  void Register(Router* router);

  // Called by the server on every run, stage and step change; published on
  // GET /api/v1/runs/stream as SSE events `run` (the run's JSON without
  // stages), `stage` ({"run_id", "name", "status", ...} without steps) and
  // `step` ({"run_id", "stage", "name", "status", "exit_code", ...}). Event
  // ids are a sequence seeded from the clock at construction, so they keep
  // growing across restarts: a Last-Event-ID older than the ring (or from an
  // earlier process) gets one `reset` event: re-fetch the runs.
  void PublishRun(const RunRecord& run);
  void PublishStage(int64_t run_id, const StageRecord& stage);
  void PublishStep(int64_t run_id, const std::string& stage, const StepRecord& step);

  SseHub& hub() { return hub_; }
  // Log streams being followed (for tests and metrics).
  size_t follower_count() const;

  class Follower;  // runs_api.cc: the follower thread and its logs

 private:
  HttpResponse ListRuns(const HttpRequest& r);
  HttpResponse GetRun(const HttpRequest& r);
  HttpResponse Log(const HttpRequest& r);
  HttpResponse Cancel(const HttpRequest& r);
  HttpResponse Approve(const HttpRequest& r);
  HttpResponse ListDeployments(const HttpRequest& r);
  HttpResponse Rollback(const HttpRequest& r);
  HttpResponse Push(const HttpRequest& r);  // deferred to hooks_
  HttpResponse HandlePush(const HttpRequest& r);
  HttpResponse Stream(const HttpRequest& r);

  // Adds an event to the ring and publishes it, under events_mu_ so that ids
  // reach the hub in order.
  void Publish(std::string_view event, std::string data);
  void Replay(uint64_t after, const SseHub::EmitFn& emit);

  RunStore& store_;
  toggles::TokenStore& tokens_;
  RunControl& control_;
  const Options options_;

  std::mutex events_mu_;         // guards last_id_, events_; held while publishing
  uint64_t last_id_ = 0;         // the newest id published (the seed before any)
  std::deque<SseEvent> events_;  // the newest max_events, oldest first

  std::shared_ptr<Follower> follower_;
  SseHub hub_;  // after the ring: its replay reads it
  std::atomic<bool> hooks_stopping_{false};  // set by ~RunsApi: queued pushes answer 503
  boost::asio::thread_pool hooks_;           // runs HandlePush
};

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_SERVE_RUNS_API_H_
