// RunEvents: what runs, stages and steps do, as server-sent events
// (GET /api/v1/runs/stream; docs/server.md "HTTP API: runs").
//
// The scheduler publishes every change here; the runs API subscribes clients.
// Events `run` (the run's JSON without stages), `stage` ({"run_id", "name",
// "status", ...} without steps) and `step` ({"run_id", "stage", "name",
// "status", "exit_code", ...}) carry ids from a sequence seeded from the
// clock at construction, so they keep growing across restarts. The newest
// max_events are kept for Last-Event-ID replay; a client further behind (or
// from an earlier process) gets one `reset` event: re-fetch the runs.
//
// Thread-safety: every method may be called from any number of threads.
#ifndef LADLE_RUNNER_SERVE_RUN_EVENTS_H_
#define LADLE_RUNNER_SERVE_RUN_EVENTS_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>

#include "core/http.h"
#include "core/sse.h"
#include "runner/store/run_store.h"

namespace ladle::runner {

struct RunEventsOptions {
  SseHubOptions sse;         // keep-alive every 15 s (docs/design.md "HTTP API conventions")
  size_t max_events = 1000;  // events kept for Last-Event-ID replay
};

class RunEvents {
 public:
  using Options = RunEventsOptions;

  explicit RunEvents(Options options = {});
  ~RunEvents();  // ends open streams
  RunEvents(const RunEvents&) = delete;
  RunEvents& operator=(const RunEvents&) = delete;

  void PublishRun(const RunRecord& run);
  // Also calls `listener` with every run published (docs/server.md "Commit
  // statuses"), outside the lock; null: none. It must not block.
  void SetRunListener(std::function<void(const RunRecord&)> listener);
  void PublishStage(int64_t run_id, const StageRecord& stage);
  void PublishStep(int64_t run_id, const std::string& stage, const StepRecord& step);

  // The event stream for one client, replaying from its Last-Event-ID.
  // REQUIRES: the request is authenticated (the caller's job).
  HttpResponse Subscribe(const HttpRequest& r);
  // Ends every open stream (a server that stops).
  void CloseAll();

  SseHub& hub() { return hub_; }

 private:
  // Adds an event to the ring and publishes it, under mu_ so that ids reach
  // the hub in order.
  void Publish(std::string_view event, std::string data);
  void Replay(uint64_t after, const SseHub::EmitFn& emit);

  const Options options_;
  std::mutex mu_;                // guards last_id_, events_; held while publishing
  uint64_t last_id_ = 0;         // the newest id published (the seed before any)
  std::deque<SseEvent> events_;  // the newest max_events, oldest first
  SseHub hub_;                   // after the ring: its replay reads it
  std::mutex listener_mu_;
  std::function<void(const RunRecord&)> listener_;
};

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_SERVE_RUN_EVENTS_H_
