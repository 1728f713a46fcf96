#include "runner/serve/run_events.h"

#include <chrono>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace ladle::runner {
namespace {

using json = nlohmann::json;

uint64_t ClockSeed() {
  auto now = std::chrono::system_clock::now().time_since_epoch();
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(now).count());
}

// Invalid UTF-8 (a step's name from a pipeline file) never stops an event.
std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace

RunEvents::RunEvents(Options options)
    : options_(std::move(options)),
      last_id_(ClockSeed()),
      hub_(options_.sse, [this](uint64_t after, const SseHub::EmitFn& emit) { Replay(after, emit); }) {}

RunEvents::~RunEvents() { hub_.CloseAll(); }

void RunEvents::PublishRun(const RunRecord& run) {
  Publish("run", Dump(RunSummaryToJson(run)));
  std::lock_guard<std::mutex> lock(listener_mu_);
  if (listener_) listener_(run);
}

void RunEvents::SetRunListener(std::function<void(const RunRecord&)> listener) {
  std::lock_guard<std::mutex> lock(listener_mu_);
  listener_ = std::move(listener);
}

void RunEvents::PublishStage(int64_t run_id, const StageRecord& stage) {
  json j = {{"run_id", run_id}};
  json fields = StageToJson(stage);
  fields.erase("steps");
  j.update(fields);
  Publish("stage", Dump(j));
}

void RunEvents::PublishStep(int64_t run_id, const std::string& stage, const StepRecord& step) {
  json j = {{"run_id", run_id}, {"stage", stage}};
  j.update(StepToJson(step));
  Publish("step", Dump(j));
}

HttpResponse RunEvents::Subscribe(const HttpRequest& r) { return hub_.Subscribe(r); }

void RunEvents::CloseAll() { hub_.CloseAll(); }

void RunEvents::Publish(std::string_view event, std::string data) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t id = ++last_id_;
  hub_.Publish(id, event, data);  // only queues: never waits for a client
  events_.push_back(SseEvent{id, std::string(event), std::move(data)});
  while (events_.size() > options_.max_events) events_.pop_front();
}

// From the ring; a client further behind than the ring (or from an earlier
// process, whose ids are older than this one's seed) gets one `reset`.
void RunEvents::Replay(uint64_t after, const SseHub::EmitFn& emit) {
  std::vector<SseEvent> out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (after == last_id_) return;
    bool missed = after > last_id_ || events_.empty() || after + 1 < events_.front().id;
    if (missed) {
      json data = {{"last_id", last_id_}};
      out.push_back(SseEvent{after < last_id_ ? last_id_ : 0, "reset", data.dump()});
    } else {
      for (const SseEvent& e : events_) {
        if (e.id > after) out.push_back(e);
      }
    }
  }
  for (const SseEvent& e : out) emit(e);
}

}  // namespace ladle::runner
