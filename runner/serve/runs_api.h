// The runs API of `ladle serve` (docs/server.md "HTTP API: runs"): run history, step logs (followed
// while they grow), cancel, approve, deployments, rollback, push webhooks and
// the SSE stream of run, stage and step changes.
//
// Routes are plain handlers registered on a core Router, like the toggle API
// (toggles/server/api.h): tests call them through Router::Dispatch without a socket.
// What the routes ask of the running server (cancel a run, take a push) goes
// through the RunControl interface, which the scheduler (scheduler.h)
// implements and tests fake; the event stream is RunEvents', which the
// scheduler publishes to. Reads go straight to the RunStore. Nothing here
// calls back into the server that owns it.
//
// Log following costs no thread per client: one follower thread polls every
// followed log (new bytes, and the step's status in the store) every
// follow_poll and queues what it reads on the client's StreamWriter; a client
// that stops reading is not read for (its queue bounds the memory).
//
// Ownership: RunsApi owns the follower thread and the hook threads (joined
// by the destructor, which ends open log streams); it only refers to the
// stores, the control and the events, which must outlive it.
//
// Thread-safety: Register once, before serving; the handlers may then run
// on any number of threads at once.
#ifndef LADLE_RUNNER_SERVE_RUNS_API_H_
#define LADLE_RUNNER_SERVE_RUNS_API_H_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
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
#include "runner/serve/run_events.h"
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
  // the 202 body; may be empty). *replay is set when the delivery was
  // handled before (docs/server.md "Webhook trust": answered 200, no run).
  virtual Status Push(const std::string& repo, const HeaderLookup& header, std::string_view body,
                      std::vector<int64_t>* runs, std::string* note, bool* replay) = 0;
  // docs/server.md "HTTP API: runs", POST /api/v1/runs: queues a run of
  // `repo` at the head of `branch`, at `tag`, or at `commit` (exactly one
  // is set); *run_id is the queued run. May fetch a remote repository.
  virtual Status Trigger(const std::string& repo, const std::string& branch,
                         const std::string& tag, const std::string& commit,
                         const std::string& actor, int64_t* run_id) = 0;
  // POST /api/v1/runs/{id}/rerun: a new run of the same repository, commit
  // and pipeline (trigger "rerun", rerun_of the original).
  virtual Status Rerun(int64_t run, const std::string& actor, int64_t* run_id) = 0;
};

// (Outside RunsApi so that `Options options = {}` compiles as a default argument.)
struct RunsApiOptions {
  // How often the follower thread looks at followed logs and their steps.
  std::chrono::milliseconds follow_poll{100};
  // Bytes read per log per round; a stream whose queue holds more than this
  // is not read until it drains.
  size_t follow_chunk = 64 << 10;
  size_t stream_max_queued_bytes = 1 << 20;  // per log stream (StreamOptions)
  // A log bigger than this is streamed rather than answered in one body.
  uint64_t max_log_body = 8 << 20;
  // GET /api/v1/runs/{id}/artifacts lists at most this many files (then
  // "truncated": true); an artifact file is sent in pieces of artifact_chunk.
  size_t max_artifact_files = 10000;
  size_t artifact_chunk = 256 << 10;
  // Threads that handle push webhooks: a push may wait for a fetch of a
  // remote repository, which must hold no HTTP io thread (OFREP, the API).
  int hook_threads = 2;
};

class RunsApi {
 public:
  using Options = RunsApiOptions;

  // REQUIRES: store, tokens, control and events outlive this object.
  RunsApi(RunStore& store, toggles::TokenStore& tokens, RunControl& control, RunEvents& events,
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

  // Log streams being followed (for tests and metrics).
  size_t follower_count() const;

  class Follower;  // runs_api.cc: the follower thread and its logs

 private:
  HttpResponse ListRuns(const HttpRequest& r);
  HttpResponse GetRun(const HttpRequest& r);
  HttpResponse Log(const HttpRequest& r);
  // docs/server.md "HTTP API: runs": the files a run's steps kept, and one of them.
  HttpResponse ListArtifacts(const HttpRequest& r);
  HttpResponse Artifact(const HttpRequest& r);
  HttpResponse Cancel(const HttpRequest& r);
  HttpResponse Approve(const HttpRequest& r);
  HttpResponse ListDeployments(const HttpRequest& r);
  HttpResponse ListReplicas(const HttpRequest& r);  // docs/server.md "Replicas"
  // The owner replica's answer when `run`'s logs and artifacts are in
  // another replica's data dir; nullopt when they are here.
  std::optional<HttpResponse> FromOwner(const HttpRequest& r, const RunRecord& run,
                                        const std::string& what);
  HttpResponse Rollback(const HttpRequest& r);
  HttpResponse Trigger(const HttpRequest& r);  // deferred to hooks_ (it may fetch)
  HttpResponse HandleTrigger(const HttpRequest& r);
  HttpResponse Rerun(const HttpRequest& r);
  HttpResponse CreatedRun(int64_t run_id) const;
  HttpResponse Push(const HttpRequest& r);  // deferred to hooks_
  HttpResponse HandlePush(const HttpRequest& r);
  HttpResponse Stream(const HttpRequest& r);

  RunStore& store_;
  toggles::TokenStore& tokens_;
  RunControl& control_;
  RunEvents& events_;
  const Options options_;

  std::shared_ptr<Follower> follower_;
  std::atomic<bool> hooks_stopping_{false};  // set by ~RunsApi: queued pushes answer 503
  boost::asio::thread_pool hooks_;           // runs HandlePush
};

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_SERVE_RUNS_API_H_
