// RunRollout: a rollout stage (docs/pipeline.md "`rollout`"; it only raises a
// percentage: docs/design.md "Toggles in a run"): raises a toggle's rollout percentage step by
// step in one environment, runs a check after each raise, and turns the
// toggle off there when a check fails.
//
// The steps it takes are plain ToggleOps calls, so it works the same on the
// in-process store and over HTTP; the check, the wait and the messages are
// the caller's (the executor runs the check as a step and waits on its clock
// and cancellation). It never lowers a percentage: a toggle found at or above
// a step's percentage skips that step. The toggle is read again before every
// step, so a change made by hand meanwhile is respected, never undone.
#ifndef LADLE_RUNNER_EXEC_ROLLOUT_H_
#define LADLE_RUNNER_EXEC_ROLLOUT_H_

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "core/base/status.h"
#include "runner/config/pipeline.h"
#include "runner/exec/toggle_ops.h"
#include "runner/store/run_status.h"

namespace ladle::runner {

struct RolloutHooks {
  // Runs the check after raising to `percent` (index into rollout.percent);
  // true when it passed. Unset: every check passes.
  std::function<bool(size_t index, int percent)> check;
  // Waits `d` between increases; false when the run was cancelled meanwhile.
  // Unset: no wait.
  std::function<bool(std::chrono::milliseconds d)> wait;
  // Human messages ("raised new-checkout to 10% in production"). May be unset.
  std::function<void(const std::string& line)> note;
};

struct RolloutResult {
  // One per rollout.percent: "success" (raised, check passed), "failed"
  // (raised and its check failed, or the raise itself failed), "skipped" (not
  // raised: already at or above, or an earlier step ended the rollout),
  // "cancelled" (the run was cancelled before it).
  std::vector<RunStatus> step_status;
  bool turned_off = false;  // a failed check turned the toggle off
  std::string message;      // one line on how it ended, for the stage
};

// Raises rollout.toggle in rollout.environment to each of rollout.percent in
// turn, through `ops`; every write carries `actor` and `note` (which should
// name the run: "run 12"), so the audit trail shows who did it.
//
//  - NotFound (the message says to add it to toggles.yml) when the toggle
//    does not exist; Failed when it is not a plain rollout there (GetRollout
//    percent -1), or was turned off by someone else during the rollout.
//  - After each raise runs hooks.check; a failure turns the toggle off in the
//    environment (the audit note says why and names the run), marks the
//    remaining steps skipped and returns Failed.
//  - Waits rollout.interval between two raises (not before the first nor
//    after the last); a cancelled wait returns Cancelled and leaves the toggle
//    where it is.
//  - Errors of `ops` (Unavailable, ...) are returned as they are, with the
//    toggle named.
// REQUIRES: rollout.percent strictly increasing, within 1..100 (Invalid
// otherwise: LoadPipeline guarantees it).
Status RunRollout(const Rollout& rollout, ToggleOps* ops, const std::string& actor,
                  const std::string& note, const RolloutHooks& hooks, RolloutResult* result);

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_EXEC_ROLLOUT_H_
