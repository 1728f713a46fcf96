// RunQueue: the order in which `ladle serve` carries out queued runs, and the
// worker threads that take them (docs/server.md "From commit to production").
//
// The runs themselves live in the RunStore, which survives restarts; this is
// the in-memory hand-off: run ids oldest first, each taken by one worker,
// plus the runs being carried out right now, so that a cancel reaches them,
// and the runs cancelled while a worker was preparing them, so that they
// start cancelled. It knows nothing of executors or pipelines: a worker's
// work is a function of a run id, a running run's cancel a function of a
// signal.
//
// Thread-safety: every method but Start may be called from any thread.
// Start once; Stop (also the destructor) joins the workers.
#ifndef LADLE_RUNNER_SERVE_RUN_QUEUE_H_
#define LADLE_RUNNER_SERVE_RUN_QUEUE_H_

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "core/metrics.h"

namespace ladle::runner {

class RunQueue {
 public:
  // What a worker does with a run id it took (on the worker's thread).
  using Work = std::function<void(int64_t run_id)>;
  // Cancels a running run with a signal (SIGINT for a cancel, the server's
  // stop signal when it stops). Called with the queue's lock held: it must
  // not block, nor call back into the queue.
  using Canceller = std::function<void(int signal)>;

  RunQueue() = default;
  ~RunQueue();  // Stop(0)
  RunQueue(const RunQueue&) = delete;
  RunQueue& operator=(const RunQueue&) = delete;

  // Starts `workers` threads; each takes the oldest queued id and calls
  // work(id), one run at a time. REQUIRES: called once, workers >= 1.
  void Start(int workers, Work work);

  // docs/server.md "Metrics": gauges kept equal to queued(), running() and
  // busy() at every change. Before Start; null ones are not kept. They must
  // outlive the queue.
  void SetGauges(Gauge* queued, Gauge* running, Gauge* busy);

  // Adds `id` at the back; false when it is queued already (and nothing
  // changes). When a worker has it, it is added once that worker is done
  // (a run queued again while its worker finishes).
  bool Push(int64_t id);
  // docs/server.md "Replicas": adds `id`, found queued in a shared store,
  // unless it is queued here already or a worker has it.
  bool Offer(int64_t id);
  // Takes `id` out of the queue; false when it is not there.
  bool Remove(int64_t id);
  size_t queued() const;

  // A worker's run starts. kRun: it runs, and CancelRunning reaches it
  // through `cancel` until EndRun. kCancelled: it was cancelled while the
  // worker prepared it; it is registered as for kRun and should start
  // cancelled. kStopping: the queue is stopping; nothing is registered and
  // the run should stay queued for the next start.
  enum class Begin { kRun, kCancelled, kStopping };
  Begin BeginRun(int64_t id, Canceller cancel);
  // The worker's run ended. True when it was cancelled by CancelRunning or
  // CancelQueued (not by Stop).
  bool EndRun(int64_t id);
  // A worker found `id` was no longer queued in the store before BeginRun:
  // forgets a cancel recorded for it.
  void Forget(int64_t id);

  // Cancels a run that a worker carries out; false when none does.
  bool CancelRunning(int64_t id, int signal);
  // Cancels a queued run: out of the queue, or, when a worker has taken it
  // already and not begun it, remembered so that BeginRun says kCancelled.
  void CancelQueued(int64_t id);
  size_t running() const;
  // Workers that took a run and are not done with it (preparing or running it).
  size_t busy() const;

  // No more work: workers finish the run they carry out (each running run is
  // cancelled with `signal`, unless 0) and stop; joins them. Queued ids stay
  // queued (in the store). Later calls do nothing.
  void Stop(int signal);
  bool stopping() const;

 private:
  void WorkerLoop();
  void UpdateGaugesLocked();  // REQUIRES: mu_ held

  Work work_;
  mutable std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  std::deque<int64_t> queue_;
  std::set<int64_t> queued_;                // the ids in queue_
  std::set<int64_t> taken_;                 // the ids workers have taken
  std::set<int64_t> again_;                 // taken ids pushed again meanwhile
  std::map<int64_t, Canceller> running_;
  std::set<int64_t> cancelled_;             // cancelled, running or about to begin
  bool stopping_ = false;
  size_t busy_ = 0;  // workers inside work_
  Gauge* queued_gauge_ = nullptr;
  Gauge* running_gauge_ = nullptr;
  Gauge* busy_gauge_ = nullptr;
  std::vector<std::thread> workers_;
};

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_SERVE_RUN_QUEUE_H_
