#include "runner/exec/rollout.h"

#include <utility>

#include "core/base/time_util.h"

namespace ladle::runner {
namespace {

std::string Percent(int p) { return std::to_string(p) + "%"; }

// One rollout in progress: the loop of RunRollout and what it remembers.
class RolloutRun {
 public:
  RolloutRun(const Rollout& rollout, ToggleOps* ops, const std::string& actor,
             const std::string& note, const RolloutHooks& hooks, RolloutResult* result)
      : r_(rollout),
        ops_(ops),
        actor_(actor),
        note_(note),
        hooks_(hooks),
        result_(result),
        what_(rollout.toggle + " in " + rollout.environment) {}

  Status Run();

 private:
  void Note(const std::string& line) const {
    if (hooks_.note) hooks_.note(line);
  }
  // Reads the toggle before step i: *skip when it is at or above that step
  // already. Errors for a missing toggle, one that is not a plain rollout,
  // and one turned off by someone else since this run raised it.
  Status Examine(size_t i, bool* skip);
  Status Wait(size_t i);
  Status Raise(size_t i);
  Status TurnOff(size_t i);
  // Ends the rollout at step i: it and the steps after it get `status`.
  Status Stop(size_t i, RunStatus status, Status s);

  const Rollout& r_;
  ToggleOps* ops_;
  const std::string& actor_;
  const std::string& note_;
  const RolloutHooks& hooks_;
  RolloutResult* result_;
  const std::string what_;  // "new-checkout in production"
  bool raised_ = false;     // this run raised it at least once
  int current_ = 0;         // its percentage as last seen or set
};

Status RolloutRun::Examine(size_t i, bool* skip) {
  bool enabled = false;
  int percent = 0;
  Status s = ops_->GetRollout(r_.toggle, r_.environment, &enabled, &percent);
  if (s.code() == Code::kNotFound) {
    return Status::NotFound("toggle '" + r_.toggle + "' does not exist in " + ops_->Describe() +
                            ": add it to toggles.yml (synced by a stage's 'toggles:') so that "
                            "the run creates it before its rollout");
  }
  if (!s.ok()) return s.WithContext("read toggle '" + r_.toggle + "'");
  if (percent < 0) {
    return Status::Failed(
        "toggle '" + r_.toggle + "' is not a plain percentage rollout in " + r_.environment +
        " (it has strategies other than one rollout): a rollout stage only raises a rollout "
        "percentage and will not replace them; turn it off there (`ladle toggles off " +
        r_.toggle + " -e " + r_.environment + "`) to let the rollout take it over");
  }
  if (raised_ && !enabled) {
    return Status::Failed("toggle " + what_ + " was turned off during the rollout, not by this " +
                          "run: stopping rather than turn it back on");
  }
  current_ = percent;
  *skip = enabled && percent >= r_.percent[i];
  if (*skip) {
    Note(what_ + " is at " + Percent(percent) + " already: step " + Percent(r_.percent[i]) +
         " skipped (a rollout never lowers a percentage)");
  }
  return s;
}

Status RolloutRun::Wait(size_t i) {
  if (!hooks_.wait) return Status::OK();
  if (r_.interval.count() > 0) {
    Note("waiting " + FormatDuration(r_.interval) + " before raising " + what_ + " to " +
         Percent(r_.percent[i]));
  }
  if (hooks_.wait(r_.interval)) return Status::OK();
  return Status::Cancelled("rollout of " + what_ + " cancelled before " + Percent(r_.percent[i]) +
                           "; it stays at " + Percent(current_));
}

Status RolloutRun::Raise(size_t i) {
  int percent = r_.percent[i];
  Status s = ops_->SetRollout(r_.toggle, r_.environment, percent, actor_, note_);
  if (!s.ok()) return s.WithContext("raise " + what_ + " to " + Percent(percent));
  raised_ = true;
  current_ = percent;
  Note("raised " + r_.toggle + " to " + Percent(percent) + " in " + r_.environment);
  return s;
}

Status RolloutRun::TurnOff(size_t i) {
  int percent = r_.percent[i];
  std::string why = "rollout check failed at " + Percent(percent);
  Status s =
      ops_->TurnOff(r_.toggle, r_.environment, actor_, note_.empty() ? why : note_ + ": " + why);
  if (!s.ok()) {
    Note("the check failed at " + Percent(percent) + ", and turning " + what_ +
         " off failed: " + s.message());
    return Status::Failed("the rollout check failed at " + Percent(percent) + ", and turning " +
                          what_ + " off failed too (" + s.message() + "): it is still on at " +
                          Percent(percent) + "; turn it off by hand (`ladle toggles off " +
                          r_.toggle + " -e " + r_.environment + "`)");
  }
  result_->turned_off = true;
  Note("the check failed at " + Percent(percent) + ": turned " + what_ + " off");
  return Status::Failed("the rollout check failed at " + Percent(percent) + ": turned " + what_ +
                        " off");
}

Status RolloutRun::Stop(size_t i, RunStatus status, Status s) {
  for (size_t j = i; j < result_->step_status.size(); ++j) result_->step_status[j] = status;
  result_->message = s.message();
  return s;
}

Status RolloutRun::Run() {
  for (size_t i = 0; i < r_.percent.size(); ++i) {
    bool skip = false;
    Status s = Examine(i, &skip);
    if (s.ok() && !skip && raised_) {
      s = Wait(i);
      if (s.code() == Code::kCancelled) return Stop(i, kCancelled, s);
      if (s.ok()) s = Examine(i, &skip);  // it may have changed meanwhile
    }
    if (!s.ok()) return Stop(i, kSkipped, s);
    if (skip) continue;
    if (s = Raise(i); !s.ok()) {
      result_->step_status[i] = kFailed;
      return Stop(i + 1, kSkipped, s);
    }
    if (hooks_.check && !hooks_.check(i, r_.percent[i])) {
      result_->step_status[i] = kFailed;
      return Stop(i + 1, kSkipped, TurnOff(i));
    }
    result_->step_status[i] = kSuccess;
  }
  result_->message = raised_
                         ? what_ + " is at " + Percent(current_)
                         : what_ + " was at " + Percent(current_) + " already: nothing to raise";
  return Status::OK();
}

Status CheckPercents(const Rollout& rollout) {
  if (rollout.percent.empty()) return Status::Invalid("rollout.percent: no percentages");
  for (size_t i = 0; i < rollout.percent.size(); ++i) {
    int p = rollout.percent[i];
    if (p < 1 || p > 100 || (i > 0 && p <= rollout.percent[i - 1])) {
      return Status::Invalid("rollout.percent: must increase strictly within 1..100, got " +
                             Percent(p) + " at #" + std::to_string(i + 1));
    }
  }
  return Status::OK();
}

}  // namespace

Status RunRollout(const Rollout& rollout, ToggleOps* ops, const std::string& actor,
                  const std::string& note, const RolloutHooks& hooks, RolloutResult* result) {
  *result = RolloutResult();
  result->step_status.assign(rollout.percent.size(), kSkipped);
  if (Status s = CheckPercents(rollout); !s.ok()) {
    result->message = s.message();
    return s;
  }
  return RolloutRun(rollout, ops, actor, note, hooks, result).Run();
}

}  // namespace ladle::runner
