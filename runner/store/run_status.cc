#include "runner/store/run_status.h"

#include <ostream>

#include <nlohmann/json.hpp>

namespace ladle::runner {
namespace {

template <typename E>
struct Word {
  E value;
  const char* word;
};

constexpr Word<RunStatus> kStatusWords[] = {
    {RunStatus::kQueued, "queued"},       {RunStatus::kRunning, "running"},
    {RunStatus::kWaiting, "waiting"},     {RunStatus::kSuccess, "success"},
    {RunStatus::kFailed, "failed"},       {RunStatus::kSkipped, "skipped"},
    {RunStatus::kCancelled, "cancelled"}, {RunStatus::kInterrupted, "interrupted"},
    {RunStatus::kSuperseded, "superseded"},
};

constexpr Word<FailureReason> kReasonWords[] = {
    {FailureReason::kNone, ""},              {FailureReason::kTimeout, "timeout"},
    {FailureReason::kExitCode, "exit_code"}, {FailureReason::kCancelled, "cancelled"},
    {FailureReason::kNeeds, "needs"},        {FailureReason::kError, "error"},
};

template <typename E, size_t N>
const char* WordOf(const Word<E> (&words)[N], E value) {
  for (const Word<E>& w : words)
    if (w.value == value) return w.word;
  return "unknown";  // a value cast from outside the enum
}

template <typename E, size_t N>
bool ValueOf(const Word<E> (&words)[N], std::string_view text, E* out) {
  for (const Word<E>& w : words) {
    if (text == w.word) {
      *out = w.value;
      return true;
    }
  }
  return false;
}

}  // namespace

const char* ToString(RunStatus status) { return WordOf(kStatusWords, status); }

bool ParseRunStatus(std::string_view text, RunStatus* out) {
  return ValueOf(kStatusWords, text, out);
}

bool IsFinished(RunStatus status) {
  return status != RunStatus::kQueued && status != RunStatus::kRunning &&
         status != RunStatus::kWaiting;
}

const char* ToString(FailureReason reason) { return WordOf(kReasonWords, reason); }

bool ParseFailureReason(std::string_view text, FailureReason* out) {
  return ValueOf(kReasonWords, text, out);
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
