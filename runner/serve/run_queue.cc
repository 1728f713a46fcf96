#include "runner/serve/run_queue.h"

#include <algorithm>
#include <utility>

namespace ladle::runner {

RunQueue::~RunQueue() { Stop(0); }

void RunQueue::Start(int workers, Work work) {
  work_ = std::move(work);
  for (int i = 0; i < workers; ++i) workers_.emplace_back(&RunQueue::WorkerLoop, this);
}

void RunQueue::SetGauges(Gauge* queued, Gauge* running, Gauge* busy) {
  std::lock_guard<std::mutex> lock(mu_);
  queued_gauge_ = queued;
  running_gauge_ = running;
  busy_gauge_ = busy;
  UpdateGaugesLocked();
}

void RunQueue::UpdateGaugesLocked() {
  if (queued_gauge_) queued_gauge_->Set(static_cast<int64_t>(queue_.size()));
  if (running_gauge_) running_gauge_->Set(static_cast<int64_t>(running_.size()));
  if (busy_gauge_) busy_gauge_->Set(static_cast<int64_t>(busy_));
}

bool RunQueue::Push(int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (taken_.count(id)) return again_.insert(id).second;
  if (!queued_.insert(id).second) return false;
  queue_.push_back(id);
  UpdateGaugesLocked();
  cv_.notify_one();
  return true;
}

bool RunQueue::Offer(int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (taken_.count(id) || !queued_.insert(id).second) return false;
  queue_.push_back(id);
  UpdateGaugesLocked();
  cv_.notify_one();
  return true;
}

bool RunQueue::Remove(int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (queued_.erase(id) == 0) return false;
  queue_.erase(std::remove(queue_.begin(), queue_.end(), id), queue_.end());
  UpdateGaugesLocked();
  return true;
}

size_t RunQueue::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

RunQueue::Begin RunQueue::BeginRun(int64_t id, Canceller cancel) {
  std::lock_guard<std::mutex> lock(mu_);
  const bool cancelled = cancelled_.count(id) != 0;
  if (!cancelled && stopping_) return Begin::kStopping;
  running_[id] = std::move(cancel);
  UpdateGaugesLocked();
  return cancelled ? Begin::kCancelled : Begin::kRun;
}

bool RunQueue::EndRun(int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  running_.erase(id);
  UpdateGaugesLocked();
  return cancelled_.erase(id) != 0;
}

void RunQueue::Forget(int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_.erase(id);
}

// Cancellers are called under mu_: EndRun (and with it the end of what the
// canceller refers to) waits for them.
bool RunQueue::CancelRunning(int64_t id, int signal) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = running_.find(id);
  if (it == running_.end()) return false;
  cancelled_.insert(id);
  if (it->second) it->second(signal);
  return true;
}

void RunQueue::CancelQueued(int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (queued_.erase(id) != 0) {
    queue_.erase(std::remove(queue_.begin(), queue_.end(), id), queue_.end());
    UpdateGaugesLocked();
  } else {
    cancelled_.insert(id);  // a worker took it and has not begun it yet
  }
}

size_t RunQueue::running() const {
  std::lock_guard<std::mutex> lock(mu_);
  return running_.size();
}

size_t RunQueue::busy() const {
  std::lock_guard<std::mutex> lock(mu_);
  return busy_;
}

void RunQueue::Stop(int signal) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    if (signal != 0)
      for (auto& [id, cancel] : running_)
        if (cancel) cancel(signal);
    cv_.notify_all();
  }
  for (std::thread& t : workers_)
    if (t.joinable()) t.join();
}

bool RunQueue::stopping() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stopping_;
}

void RunQueue::WorkerLoop() {
  for (;;) {
    int64_t id = 0;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      id = queue_.front();
      queue_.pop_front();
      queued_.erase(id);
      taken_.insert(id);
      ++busy_;
      UpdateGaugesLocked();
    }
    work_(id);
    std::lock_guard<std::mutex> lock(mu_);
    taken_.erase(id);
    if (again_.erase(id) && queued_.insert(id).second) {
      queue_.push_back(id);
      cv_.notify_one();
    }
    --busy_;
    UpdateGaugesLocked();
  }
}

}  // namespace ladle::runner
