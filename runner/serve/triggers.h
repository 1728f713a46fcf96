// Helpers of the triggers beyond branch pushes (docs/server.md "Triggers"):
// tag pushes, pull requests, runs asked for by the API, re-runs, schedules.
// The Scheduler's methods for them live in triggers.cc.
#ifndef LADLE_RUNNER_SERVE_TRIGGERS_H_
#define LADLE_RUNNER_SERVE_TRIGGERS_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace ladle::runner {

// A pull request's ref: refs/pull/N/head (GitHub, Gitea) or
// refs/merge-requests/N/head (GitLab). Runs of such refs never deploy.
bool IsPullRequestRef(const std::string& ref);

// True when `globs` is empty or one of them matches `name` (BranchMatches).
bool AnyGlobMatches(const std::vector<std::string>& globs, const std::string& name);

// The schedules' clock: seconds since the epoch (UTC). Normally the system
// clock, looked at every 2 s. For tests, LADLE_SCHEDULE_CLOCK=START[:RATE]
// (docs/server.md "Schedules") starts it at START and runs it RATE times as
// fast, looked at RATE times as often (at least every 50 ms).
std::function<int64_t()> ScheduleClockFromEnvironment(std::chrono::milliseconds* tick);

// Lowercase hex object id of 40 or 64 digits (what the API and git accept).
bool IsFullObjectId(const std::string& text);

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_SERVE_TRIGGERS_H_
