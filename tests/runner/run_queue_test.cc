// runner/serve/run_queue.h: the order of queued runs, the workers, and how a
// cancel or a stop reaches a run, without a server.
#include "runner/serve/run_queue.h"

#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <vector>

#include <gtest/gtest.h>

namespace ladle::runner {
namespace {

using namespace std::chrono_literals;

// Collects what the workers took; a taken id can be held until released.
class Recorder {
 public:
  void Take(int64_t id) {
    std::unique_lock<std::mutex> lock(mu_);
    taken_.push_back(id);
    cv_.notify_all();
    cv_.wait(lock, [&] { return held_ != id; });
  }
  bool WaitFor(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, 5s, [&] { return taken_.size() >= n; });
  }
  void Hold(int64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    held_ = id;
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    held_ = -1;
    cv_.notify_all();
  }
  std::vector<int64_t> taken() {
    std::lock_guard<std::mutex> lock(mu_);
    return taken_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int64_t> taken_;
  int64_t held_ = -1;
};

TEST(RunQueueTest, OneWorkerTakesRunsOldestFirstAndEachOnce) {
  RunQueue queue;
  EXPECT_TRUE(queue.Push(3));
  EXPECT_TRUE(queue.Push(1));
  EXPECT_FALSE(queue.Push(3));  // queued already
  EXPECT_TRUE(queue.Push(2));
  EXPECT_EQ(3u, queue.queued());
  Recorder rec;
  queue.Start(1, [&](int64_t id) { rec.Take(id); });
  ASSERT_TRUE(rec.WaitFor(3));
  EXPECT_EQ((std::vector<int64_t>{3, 1, 2}), rec.taken());
  EXPECT_EQ(0u, queue.queued());
  EXPECT_TRUE(queue.Push(3));  // taken, so it may be queued again
  ASSERT_TRUE(rec.WaitFor(4));
}

TEST(RunQueueTest, RemovedAndCancelledQueuedRunsAreNotTaken) {
  RunQueue queue;
  queue.Push(1);
  queue.Push(2);
  queue.Push(3);
  EXPECT_TRUE(queue.Remove(2));   // superseded
  EXPECT_FALSE(queue.Remove(2));
  queue.CancelQueued(3);
  Recorder rec;
  queue.Start(1, [&](int64_t id) { rec.Take(id); });
  queue.Push(4);
  ASSERT_TRUE(rec.WaitFor(2));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ((std::vector<int64_t>{1, 4}), rec.taken());
}

TEST(RunQueueTest, ACancelWhileAWorkerPreparesTheRunMakesItBeginCancelled) {
  RunQueue queue;
  Recorder rec;
  rec.Hold(7);
  queue.Start(1, [&](int64_t id) { rec.Take(id); });
  queue.Push(7);
  ASSERT_TRUE(rec.WaitFor(1));  // taken: out of the queue, not begun
  queue.CancelQueued(7);
  int signal_seen = 0;
  EXPECT_EQ(RunQueue::Begin::kCancelled, queue.BeginRun(7, [&](int s) { signal_seen = s; }));
  EXPECT_TRUE(queue.EndRun(7));  // it was cancelled by request
  EXPECT_EQ(RunQueue::Begin::kRun, queue.BeginRun(7, nullptr));  // the cancel is used up
  EXPECT_FALSE(queue.EndRun(7));
  rec.Release();
}

TEST(RunQueueTest, CancelRunningReachesTheRunWithItsSignalUntilItEnds) {
  RunQueue queue;
  std::vector<int> signals;
  EXPECT_FALSE(queue.CancelRunning(5, SIGINT));  // nothing runs
  EXPECT_EQ(RunQueue::Begin::kRun, queue.BeginRun(5, [&](int s) { signals.push_back(s); }));
  EXPECT_EQ(1u, queue.running());
  EXPECT_TRUE(queue.CancelRunning(5, SIGINT));
  EXPECT_EQ(std::vector<int>{SIGINT}, signals);
  EXPECT_TRUE(queue.EndRun(5));
  EXPECT_EQ(0u, queue.running());
  EXPECT_FALSE(queue.CancelRunning(5, SIGINT));
  EXPECT_EQ(1u, signals.size());
}

TEST(RunQueueTest, ForgetDropsACancelOfARunThatNeverBegan) {
  RunQueue queue;
  queue.CancelQueued(9);  // not queued here: remembered
  queue.Forget(9);        // the worker found it was no longer queued in the store
  EXPECT_EQ(RunQueue::Begin::kRun, queue.BeginRun(9, nullptr));
  EXPECT_FALSE(queue.EndRun(9));
}

TEST(RunQueueTest, StopCancelsRunningRunsWithItsSignalAndLeavesTheQueue) {
  RunQueue queue;
  std::atomic<int> stop_signal{0};
  std::atomic<bool> in_work{false};
  std::mutex mu;
  std::condition_variable cv;
  bool cancelled = false;
  queue.Start(1, [&](int64_t id) {
    ASSERT_EQ(RunQueue::Begin::kRun, queue.BeginRun(id, [&](int s) {
      stop_signal = s;
      std::lock_guard<std::mutex> lock(mu);
      cancelled = true;
      cv.notify_all();
    }));
    in_work = true;
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return cancelled; });  // a step that ends on its signal
    lock.unlock();
    EXPECT_FALSE(queue.EndRun(id));  // stopped, not cancelled by request
  });
  queue.Push(1);
  queue.Push(2);
  for (int i = 0; i < 500 && !in_work; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(in_work);
  queue.Stop(SIGTERM);  // returns once the worker is done
  EXPECT_EQ(SIGTERM, stop_signal);
  EXPECT_TRUE(queue.stopping());
  EXPECT_EQ(1u, queue.queued());  // run 2 stays queued for the next start
  EXPECT_EQ(RunQueue::Begin::kStopping, queue.BeginRun(2, nullptr));
  EXPECT_EQ(0u, queue.running());
  queue.Stop(SIGTERM);  // again: nothing
}

}  // namespace
}  // namespace ladle::runner
