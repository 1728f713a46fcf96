// The statuses of runs, stages, steps and deployments, and the reasons a step
// fails: enums in the code, lowercase words in JSON, in the database and on
// the screen (docs/design.md "Statuses"). ToString and the Parse functions
// below are the only places where the words are spelled in C++; the run
// store's SQL names them in its queries.
#ifndef LADLE_RUNNER_STORE_RUN_STATUS_H_
#define LADLE_RUNNER_STORE_RUN_STATUS_H_

#include <cstdint>
#include <iosfwd>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace ladle::runner {

// One vocabulary for runs, stages, steps and deployments; not every value
// applies to each (docs/design.md "Statuses").
enum class RunStatus : uint8_t {
  kQueued,       // not started
  kRunning,
  kWaiting,      // a run or stage waiting for approval (`approval: manual`)
  kSuccess,
  kFailed,
  kSkipped,      // did not run: an earlier stage failed, --stage/--step chose others
  kCancelled,
  kInterrupted,  // its process died (ladle killed, machine restarted)
  kSuperseded,   // a queued run that a newer commit of its branch replaced
};

// Short names for the values, as the code has always written them.
inline constexpr RunStatus kQueued = RunStatus::kQueued;
inline constexpr RunStatus kRunning = RunStatus::kRunning;
inline constexpr RunStatus kWaiting = RunStatus::kWaiting;
inline constexpr RunStatus kSuccess = RunStatus::kSuccess;
inline constexpr RunStatus kFailed = RunStatus::kFailed;
inline constexpr RunStatus kSkipped = RunStatus::kSkipped;
inline constexpr RunStatus kCancelled = RunStatus::kCancelled;
inline constexpr RunStatus kInterrupted = RunStatus::kInterrupted;
inline constexpr RunStatus kSuperseded = RunStatus::kSuperseded;

// "queued", "running", ... Never null.
const char* ToString(RunStatus status);
// The word back; false (and *out untouched) for any other text.
bool ParseRunStatus(std::string_view text, RunStatus* out);
// True for the statuses nothing changes any more: success, failed, skipped,
// cancelled, interrupted, superseded.
bool IsFinished(RunStatus status);

// Why a step failed (a step that did not fail has kNone).
enum class FailureReason : uint8_t {
  kNone,
  kTimeout,   // ran past its timeout
  kExitCode,  // exited with a non-zero code
  kCancelled, // the run was cancelled while it ran or before it started
  kNeeds,     // a step it needs failed, so it never ran
  kError,     // ladle could not run it (engine error, missing image, ...)
};

// "" for kNone, else "timeout", "exit_code", "cancelled", "needs", "error".
const char* ToString(FailureReason reason);
// The word back ("" is kNone); false (and *out untouched) for any other text.
bool ParseFailureReason(std::string_view text, FailureReason* out);

// JSON writes the words (a FailureReason of kNone as null); the ADL hooks of
// nlohmann-json, so `json j = status` never writes a number.
void to_json(nlohmann::json& j, RunStatus status);
void to_json(nlohmann::json& j, FailureReason reason);

// The words, for logs and test failure messages.
std::ostream& operator<<(std::ostream& out, RunStatus status);
std::ostream& operator<<(std::ostream& out, FailureReason reason);

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_STORE_RUN_STATUS_H_
