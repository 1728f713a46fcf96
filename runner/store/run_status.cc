#include "runner/store/run_status.h"

#include <ostream>

#include <nlohmann/json.hpp>

namespace ladle::runner {
namespace {

struct StatusWord {
  RunStatus status;
  const char* word;
};
constexpr StatusWord kStatusWords[] = {
    {RunStatus::kQueued, "queued"},       {RunStatus::kRunning, "running"},
    {RunStatus::kWaiting, "waiting"},     {RunStatus::kSuccess, "success"},
    {RunStatus::kFailed, "failed"},       {RunStatus::kSkipped, "skipped"},
    {RunStatus::kCancelled, "cancelled"}, {RunStatus::kInterrupted, "interrupted"},
    {RunStatus::kSuperseded, "superseded"},
};

struct ReasonWord {
  FailureReason reason;
  const char* word;
};
constexpr ReasonWord kReasonWords[] = {
    {FailureReason::kNone, ""},           {FailureReason::kTimeout, "timeout"},
    {FailureReason::kExitCode, "exit_code"}, {FailureReason::kCancelled, "cancelled"},
    {FailureReason::kNeeds, "needs"},     {FailureReason::kError, "error"},
};

}  // namespace

const char* ToString(RunStatus status) {
  for (const StatusWord& w : kStatusWords)
    if (w.status == status) return w.word;
  return "unknown";
}

bool ParseRunStatus(std::string_view text, RunStatus* out) {
  for (const StatusWord& w : kStatusWords) {
    if (text == w.word) {
      *out = w.status;
      return true;
    }
  }
  return false;
}

bool IsFinished(RunStatus status) {
  return status != RunStatus::kQueued && status != RunStatus::kRunning &&
         status != RunStatus::kWaiting;
}

const char* ToString(FailureReason reason) {
  for (const ReasonWord& w : kReasonWords)
    if (w.reason == reason) return w.word;
  return "unknown";
}

bool ParseFailureReason(std::string_view text, FailureReason* out) {
  for (const ReasonWord& w : kReasonWords) {
    if (text == w.word) {
      *out = w.reason;
      return true;
    }
  }
  return false;
}

void to_json(nlohmann::json& j, RunStatus status) { j = ToString(status); }

void to_json(nlohmann::json& j, FailureReason reason) {
  if (reason == FailureReason::kNone) {
    j = nullptr;
  } else {
    j = ToString(reason);
  }
}

std::ostream& operator<<(std::ostream& out, RunStatus status) { return out << ToString(status); }
std::ostream& operator<<(std::ostream& out, FailureReason reason) {
  return out << (reason == FailureReason::kNone ? "none" : ToString(reason));
}

}  // namespace ladle::runner
