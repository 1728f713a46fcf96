#include "runner/executor.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <thread>

#include "core/time_util.h"
#include "runner/junit.h"
#include "runner/step_log.h"
#include "runner/workspace.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace ladle::runner {

std::string ArtifactDir(const std::string& data_dir, int64_t run, const std::string& stage,
                        const std::string& step) {
  return (fs::path(data_dir) / "artifacts" / std::to_string(run) / stage / step).string();
}

Status ResolveStep(const Pipeline& pipeline, const std::string& name, StepRef* ref) {
  auto slash = name.find('/');
  std::vector<StepRef> matches;
  for (const Stage& stage : pipeline.stages) {
    for (const Step& step : stage.steps) {
      bool hit = slash == std::string::npos
                     ? step.name == name
                     : stage.name == name.substr(0, slash) && step.name == name.substr(slash + 1);
      if (hit) matches.push_back({stage.name, step.name});
    }
  }
  if (matches.size() == 1) {
    *ref = matches[0];
    return Status::OK();
  }
  if (matches.empty()) return Status::Invalid("no step '" + name + "' in " + pipeline.file);
  std::string list;
  for (const StepRef& m : matches) list += (list.empty() ? "" : ", ") + m.stage + "/" + m.step;
  return Status::Invalid("step name '" + name + "' is ambiguous: " + list +
                         "; name it as STAGE/STEP");
}

// One step of the stage being run: shared by its thread and the supervisor.
struct Executor::StepRun {
  const Step* step = nullptr;
  StepRecord* rec = nullptr;       // inside run_->stages[i].steps, guarded by mu_
  enum State { kPending, kRunning, kDone } state = kPending;
  std::thread thread;
  bool success = false;            // ended with exit 0 (after retries)

  std::mutex mu;                   // guards the fields below (never take mu_ while holding it)
  env::Step* current = nullptr;    // the attempt in flight, for Kill
  Clock::time_point deadline;
  Clock::time_point term_sent;     // zero until TERM was sent
  bool timed_out = false;

  // Written by the step thread before it reports kDone, read after.
  bool has_reports = false;
  TestCounts tests;
  std::vector<std::string> report_notes;
  std::vector<std::string> failures;
  std::string report_error;        // a report that could not be read
};

struct Executor::StageContext {
  const Stage* stage = nullptr;
  StageRecord* rec = nullptr;
  std::vector<std::unique_ptr<StepRun>> steps;
  int running = 0;

  StepRun* Find(const std::string& name) {
    for (auto& sr : steps)
      if (sr->step->name == name) return sr.get();
    return nullptr;
  }
};

Executor::Executor(const Pipeline& pipeline, RunStore* store, env::Engine* engine,
                   RunObserver* observer)
    : pipeline_(pipeline), store_(store), engine_(engine), observer_(observer) {}

void Executor::Cancel(int signal) {
  int expected = 0;
  cancel_signal_.compare_exchange_strong(expected, signal);
  std::lock_guard<std::mutex> lock(mu_);
  cv_.notify_all();
}

Status Executor::outside_failure() const {
  std::lock_guard<std::mutex> lock(mu_);
  return outside_failure_;
}

void Executor::Notify(const std::string& text) {
  if (observer_) observer_->Note(text);
}

namespace {

RunRecord PlanRecord(const Pipeline& pipeline) {
  RunRecord run;
  run.pipeline = pipeline.name;
  run.file = pipeline.file;
  for (const Stage& stage : pipeline.stages) {
    StageRecord sr;
    sr.name = stage.name;
    sr.environment = stage.environment;
    for (const Step& step : stage.steps) {
      StepRecord st;
      st.name = step.name;
      sr.steps.push_back(st);
    }
    run.stages.push_back(sr);
  }
  return run;
}

bool Contains(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

// Steps of `stage` that depend on `root`, directly or not, plus root itself.
std::set<std::string> WithDependents(const Stage& stage, const std::string& root) {
  std::set<std::string> out = {root};
  for (bool grew = true; grew;) {
    grew = false;
    for (const Step& step : stage.steps) {
      if (out.count(step.name)) continue;
      for (const std::string& need : step.needs) {
        if (out.count(need)) {
          out.insert(step.name);
          grew = true;
          break;
        }
      }
    }
  }
  return out;
}

}  // namespace

Status Executor::Run(const RunOptions& options, RunRecord* run) {
  options_ = options;
  *run = PlanRecord(pipeline_);
  run->repo = options.repo;
  run->commit = options.commit;
  run->branch = options.branch;
  run->workspace = options.workspace;
  run->status = kRunning;
  run->created_at = run->started_at = NowRfc3339();
  run->owner_pid = getpid();
  run->owner_start = ProcessStartTime(getpid());
  for (const std::string& name : pipeline_.secrets) {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr)
      Notify("warning: secret " + name + " is not set in the environment; steps see it empty");
    else
      secrets_.push_back(value);
  }
  Status s = store_->CreateRun(run);
  if (!s.ok()) return s.WithContext("record the run");
  run_ = run;
  if (observer_) observer_->RunStarted(*run);
  if (options.prepare_workspace) {
    s = options.prepare_workspace(run->id, &run->workspace);
    if (!s.ok()) {
      run->status = kFailed;
      run->message = "could not prepare the workspace: " + s.message();
      run->finished_at = NowRfc3339();
      store_->UpdateRun(*run);
      if (observer_) observer_->RunFinished(*run);
      run_ = nullptr;
      return s.WithContext("prepare the workspace");
    }
    store_->UpdateRun(*run);
  }
  RestoreNeededArtifacts(run);

  for (size_t i = 0; i < pipeline_.stages.size(); ++i) RunStage(pipeline_.stages[i], i, run);

  bool failed = false, waiting = false;
  for (const StageRecord& stage : run->stages) {
    failed |= stage.status == kFailed;
    waiting |= stage.status == kWaiting;
  }
  run->status = cancel_signal_ ? kCancelled : failed ? kFailed : waiting ? kWaiting : kSuccess;
  run->finished_at = NowRfc3339();
  s = store_->UpdateRun(*run);
  if (observer_) observer_->RunFinished(*run);
  run_ = nullptr;
  return s;
}

bool Executor::StageSelected(const Stage& stage, std::string* why) const {
  if (!options_.stages.empty() && !Contains(options_.stages, stage.name)) {
    *why = "not selected by --stage";
    return false;
  }
  if (!options_.steps.empty()) {
    for (const StepRef& ref : options_.steps)
      if (ref.stage == stage.name) return true;
    *why = "not selected by --step";
    return false;
  }
  if (options_.from) {
    for (const Stage& s : pipeline_.stages) {
      if (s.name == options_.from->stage) break;
      if (&s == &stage) {
        *why = "before --from " + options_.from->stage + "/" + options_.from->step;
        return false;
      }
    }
  }
  return true;
}

std::set<std::string> Executor::SelectedSteps(const Stage& stage) const {
  std::set<std::string> out;
  if (!options_.steps.empty()) {
    for (const StepRef& ref : options_.steps)
      if (ref.stage == stage.name) out.insert(ref.step);
    return out;
  }
  if (options_.from && options_.from->stage == stage.name)
    return WithDependents(stage, options_.from->step);
  for (const Step& step : stage.steps) out.insert(step.name);
  return out;
}

void Executor::RestoreNeededArtifacts(RunRecord* run) {
  if (options_.steps.empty() && !options_.from) return;
  for (const Stage& stage : pipeline_.stages) {
    std::string why;
    bool stage_runs = StageSelected(stage, &why);
    std::set<std::string> selected = stage_runs ? SelectedSteps(stage) : std::set<std::string>();
    for (const Step& step : stage.steps) {
      if (step.artifacts.empty() || selected.count(step.name)) continue;
      int64_t from_run = 0;
      Status s = store_->FindLastSuccessfulStep(pipeline_.file, stage.name, step.name, &from_run);
      if (!s.ok() || from_run == 0) {
        Notify("no earlier run has the artifacts of " + stage.name + "/" + step.name +
               "; steps that need them may fail");
        continue;
      }
      s = RestoreArtifacts(ArtifactDir(options_.data_dir, from_run, stage.name, step.name),
                           run->workspace);
      Notify(s.ok() ? "restored the artifacts of " + stage.name + "/" + step.name + " from run " +
                          std::to_string(from_run)
                    : "could not restore artifacts of " + stage.name + "/" + step.name + ": " +
                          s.message());
    }
  }
}

void Executor::SetStage(StageRecord* rec, const std::string& status, const std::string& message) {
  StageRecord copy;
  {
    std::lock_guard<std::mutex> lock(mu_);
    rec->status = status;
    if (!message.empty()) rec->message = message;
    copy = *rec;
  }
  Status s = store_->UpdateStage(run_->id, copy);
  if (!s.ok()) Notify("warning: could not record stage " + copy.name + ": " + s.message());
  if (observer_) observer_->StageChanged(*run_, copy);
}

void Executor::SetStep(const Stage& stage, StepRecord* rec, const std::string& status) {
  StepRecord copy;
  {
    std::lock_guard<std::mutex> lock(mu_);
    rec->status = status;
    if (status == kRunning && rec->started_at.empty()) rec->started_at = NowRfc3339();
    if (status != kRunning && status != kQueued) rec->finished_at = NowRfc3339();
    copy = *rec;
  }
  Status s = store_->UpdateStep(run_->id, stage.name, copy);
  if (!s.ok()) Notify("warning: could not record step " + copy.name + ": " + s.message());
  if (observer_) observer_->StepChanged(*run_, stage.name, copy);
}

void Executor::RunStage(const Stage& stage, size_t index, RunRecord* run) {
  StageRecord* rec = &run->stages[index];
  auto skip_all = [&](const std::string& status, const std::string& why) {
    if (status == kSkipped)  // a waiting stage's steps stay queued until approved
      for (StepRecord& step : rec->steps) SetStep(stage, &step, kSkipped);
    SetStage(rec, status, why);
  };
  std::string blocker;
  for (size_t i = 0; i < index && blocker.empty(); ++i) {
    const StageRecord& earlier = run->stages[i];
    if (earlier.status == kFailed) blocker = "stage '" + earlier.name + "' failed";
    if (earlier.status == kWaiting) blocker = "stage '" + earlier.name + "' waits for approval";
    if (earlier.status == kCancelled) blocker = "the run was cancelled";
  }
  if (cancel_signal_ && blocker.empty()) blocker = "the run was cancelled";
  if (!blocker.empty()) return skip_all(kSkipped, blocker);
  std::string why;
  if (!StageSelected(stage, &why)) return skip_all(kSkipped, why);
  if (!stage.when_branches.empty()) {
    bool match = false;
    for (const std::string& glob : stage.when_branches)
      match |= !options_.branch.empty() && BranchMatches(glob, options_.branch);
    if (!match)
      return skip_all(kSkipped, options_.branch.empty()
                                    ? "when: branch: the branch is unknown (not a git checkout?)"
                                    : "when: branch '" + options_.branch + "' does not match");
  }
  if (stage.rollout)
    return skip_all(kSkipped, "rollout stages run under `ladle serve` only (not yet by ladle run)");
  if (stage.manual_approval && !(observer_ && observer_->Approve(stage.name))) {
    std::string first = stage.steps.empty() ? "" : "/" + stage.steps.front().name;
    return skip_all(kWaiting, "waits for approval; to go on: ladle run " + pipeline_.file +
                                  " --from " + stage.name + first);
  }
  if (!stage.toggles_file.empty())
    Notify("stage " + stage.name + ": toggles sync of " + stage.toggles_file +
           " is not available under ladle run yet; skipped");

  StageContext ctx;
  ctx.stage = &stage;
  ctx.rec = rec;
  std::set<std::string> selected = SelectedSteps(stage);
  for (size_t i = 0; i < stage.steps.size(); ++i) {
    if (!selected.count(stage.steps[i].name)) {
      SetStep(stage, &rec->steps[i], kSkipped);
      continue;
    }
    auto sr = std::make_unique<StepRun>();
    sr->step = &stage.steps[i];
    sr->rec = &rec->steps[i];
    ctx.steps.push_back(std::move(sr));
  }
  SetStage(rec, kRunning, "");
  ScheduleSteps(&ctx);
  FinishStage(&ctx);
}

void Executor::ScheduleSteps(StageContext* ctx) {
  const bool ignore_needs = !options_.steps.empty();
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    bool pending = false;
    for (auto& sr : ctx->steps) {
      if (sr->state != StepRun::kPending) continue;
      std::string blocked_by;
      bool ready = true;
      for (const std::string& need : ignore_needs ? std::vector<std::string>() : sr->step->needs) {
        StepRun* dep = ctx->Find(need);
        if (dep == nullptr) continue;  // not selected (--from): treated as done
        if (dep->state != StepRun::kDone) ready = false;
        else if (!dep->success && !dep->step->allow_failure) blocked_by = need;
      }
      if (!blocked_by.empty() || cancel_signal_) {
        sr->state = StepRun::kDone;
        sr->rec->failure_reason = cancel_signal_ ? "cancelled" : "needs";
        lock.unlock();
        SetStep(*ctx->stage, sr->rec, cancel_signal_ ? kCancelled : kSkipped);
        lock.lock();
        continue;
      }
      pending = true;
      if (!ready || ctx->running >= std::max(1, options_.jobs)) continue;
      sr->state = StepRun::kRunning;
      ctx->running++;
      sr->thread = std::thread(&Executor::RunStepThread, this, sr.get(), ctx);
    }
    if (!pending && ctx->running == 0) break;
    cv_.wait_for(lock, std::chrono::milliseconds(100));
    SuperviseRunning(ctx);
    // Join finished threads now: their stacks would otherwise stay mapped,
    // and every later fork would copy more page tables.
    for (auto& sr : ctx->steps)
      if (sr->state == StepRun::kDone && sr->thread.joinable()) {
        lock.unlock();
        sr->thread.join();
        lock.lock();
      }
  }
  lock.unlock();
  for (auto& sr : ctx->steps)
    if (sr->thread.joinable()) sr->thread.join();
}

// Timeouts and cancel: TERM first, KILL after the grace. REQUIRES: mu_ held.
void Executor::SuperviseRunning(StageContext* ctx) {
  const auto now = Clock::now();
  for (auto& sr : ctx->steps) {
    if (sr->state != StepRun::kRunning) continue;
    std::lock_guard<std::mutex> lock(sr->mu);
    if (sr->current == nullptr) continue;
    bool expired = now >= sr->deadline;
    if (sr->term_sent == Clock::time_point() && (expired || cancel_signal_)) {
      sr->timed_out = expired && !cancel_signal_;
      sr->term_sent = now;
      sr->current->Kill(SIGTERM);
    } else if (sr->term_sent != Clock::time_point() &&
               now >= sr->term_sent + options_.kill_grace) {
      sr->current->Kill(SIGKILL);
    }
  }
}

env::StepSpec Executor::MakeSpec(const Stage& stage, const Step& step, int attempt) const {
  env::StepSpec spec;
  std::string run_id = std::to_string(run_->id);
  spec.id = run_id + "/" + stage.name + "/" + step.name + "#" + std::to_string(attempt);
  spec.image = step.image;
  spec.script = step.run;
  spec.workspace = run_->workspace;
  spec.workdir = step.workdir;
  spec.resources = step.resources;
  for (const auto* layer : {&pipeline_.env, &stage.env, &step.env})
    spec.env.insert(spec.env.end(), layer->begin(), layer->end());
  for (const std::string& name : pipeline_.secrets) {
    const char* value = std::getenv(name.c_str());
    spec.env.emplace_back(name, value ? value : "");
  }
  spec.env.insert(spec.env.end(), options_.extra_env.begin(), options_.extra_env.end());
  spec.env.emplace_back("LADLE_RUN", run_id);
  spec.env.emplace_back("LADLE_STAGE", stage.name);
  spec.env.emplace_back("LADLE_STEP", step.name);
  spec.env.emplace_back("LADLE_COMMIT", options_.commit);
  spec.env.emplace_back("LADLE_BRANCH", options_.branch);
  spec.env.emplace_back("LADLE_WORKSPACE", engine_->Name() == "docker" ? "/workspace"
                                                                       : run_->workspace);
  if (!stage.environment.empty()) spec.env.emplace_back("LADLE_ENVIRONMENT", stage.environment);
  spec.labels = {{"ladle.run", run_id},
                 {"ladle.stage", stage.name},
                 {"ladle.step", step.name},
                 {"ladle.data", options_.data_dir}};
  const std::string& keep = options_.keep.empty() ? step.keep : options_.keep;
  spec.keep = keep == "always";
  return spec;
}

void Executor::RunStepThread(StepRun* sr, StageContext* ctx) {
  const Stage& stage = *ctx->stage;
  const Step& step = *sr->step;
  SecretMasker masker(secrets_);
  const std::string& keep = options_.keep.empty() ? step.keep : options_.keep;
  std::string failure;
  env::ExitStatus exit;
  const int attempts = step.retry + 1;
  for (int attempt = 1; attempt <= attempts && !cancel_signal_; ++attempt) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      sr->rec->attempts = attempt;
    }
    SetStep(stage, sr->rec, kRunning);
    StepLogWriter log(&masker, [&](env::OutputStream stream, std::string_view line) {
      if (observer_) observer_->StepOutput(stage.name, step.name, stream, line);
    });
    Status s = log.Open(StepLogPath(options_.data_dir, run_->id, stage.name, step.name));
    if (attempt > 1) log.Note("attempt " + std::to_string(attempt) + " of " + std::to_string(attempts));
    env::StepSpec spec = MakeSpec(stage, step, attempt);
    std::unique_ptr<env::Step> proc;
    if (s.ok()) s = engine_->Create(spec, &proc);
    if (s.ok()) s = proc->Start();
    if (s.ok()) {
      {
        std::lock_guard<std::mutex> lock(sr->mu);
        sr->current = proc.get();
        sr->deadline = Clock::now() + step.timeout;
        sr->term_sent = Clock::time_point();
        sr->timed_out = false;
      }
      s = proc->Stream(&log);
      if (s.ok()) s = proc->Wait(&exit);
      std::lock_guard<std::mutex> lock(sr->mu);
      sr->current = nullptr;
    }
    bool timed_out;
    {
      std::lock_guard<std::mutex> lock(sr->mu);
      timed_out = sr->timed_out;
    }
    failure = !s.ok() ? "error" : timed_out ? "timeout" : cancel_signal_ ? "cancelled"
              : exit.code != 0 ? "exit_code" : "";
    if (!s.ok()) {
      log.Note(s.message());
      Notify(stage.name + "/" + step.name + ": " + s.message());
      if (s.code() == Code::kUnavailable) {
        std::lock_guard<std::mutex> lock(mu_);
        if (outside_failure_.ok()) outside_failure_ = s;
      }
    }
    if (timed_out) log.Note("timed out after " + FormatDuration(step.timeout));
    if (failure == "exit_code") log.Note("exited with code " + std::to_string(exit.code));
    if (!step.junit.empty()) {
      sr->has_reports = true;
      sr->tests = TestCounts();
      sr->report_notes.clear();
      sr->failures.clear();
      Status rs = CollectJUnitReports(run_->workspace, step.junit, &sr->tests, &sr->failures,
                                      &sr->report_notes);
      sr->report_error = rs.ok() ? "" : rs.message();
    }
    bool last = failure.empty() || attempt == attempts || cancel_signal_;
    bool keep_it = keep == "always" || (keep == "on-failure" && !failure.empty() && last);
    if (proc && keep_it && !proc->ShellCommand().empty()) {
      log.Note("container kept; open a shell in it with: " + proc->ShellCommand());
      Notify(stage.name + "/" + step.name + ": container kept; open a shell in it with: " +
             proc->ShellCommand());
    } else if (proc) {
      Status rs = proc->Remove();
      if (!rs.ok()) log.Note("cleanup: " + rs.message());
    }
    log.Close();
    {
      std::lock_guard<std::mutex> lock(mu_);
      sr->rec->exit_code = s.ok() ? std::optional<int>(exit.code) : std::nullopt;
    }
    if (failure.empty() || cancel_signal_) break;
  }
  if (failure.empty() && !step.artifacts.empty()) {
    std::vector<std::string> missing;
    Status s = SaveArtifacts(run_->workspace, step.artifacts,
                             ArtifactDir(options_.data_dir, run_->id, stage.name, step.name),
                             &missing);
    if (!s.ok()) failure = "error", Notify(stage.name + "/" + step.name + ": " + s.message());
    for (const std::string& m : missing)
      Notify("warning: " + stage.name + "/" + step.name + ": artifact '" + m +
             "' matched no file");
  }
  if (failure.empty() && cancel_signal_ && sr->rec->attempts == 0) failure = "cancelled";
  {
    std::lock_guard<std::mutex> lock(mu_);
    sr->rec->failure_reason = failure;
    sr->rec->allow_failure = !failure.empty() && step.allow_failure;
  }
  SetStep(stage, sr->rec, failure.empty() ? kSuccess : failure == "cancelled" ? kCancelled : kFailed);
  std::lock_guard<std::mutex> lock(mu_);
  sr->success = failure.empty();
  sr->state = StepRun::kDone;
  ctx->running--;
  cv_.notify_all();
}

void Executor::FinishStage(StageContext* ctx) {
  bool failed = false, has_reports = false;
  TestCounts total;
  std::vector<std::string> notes, report_errors;
  for (auto& sr : ctx->steps) {
    if (sr->rec->status == kFailed && !sr->step->allow_failure) failed = true;
    if (!sr->has_reports) continue;
    if (!sr->report_error.empty()) report_errors.push_back(sr->report_error);
    has_reports = true;
    total.total += sr->tests.total;
    total.passed += sr->tests.passed;
    total.failed += sr->tests.failed;
    total.skipped += sr->tests.skipped;
    notes.insert(notes.end(), sr->report_notes.begin(), sr->report_notes.end());
  }
  std::string message;
  if (has_reports || ctx->stage->gate) {
    std::lock_guard<std::mutex> lock(mu_);
    ctx->rec->tests = total;
  }
  if (ctx->stage->gate && !report_errors.empty()) {
    // A report that cannot be read must not let a gate pass on zero counts.
    failed = true;
    message = "gate failed: unreadable test report: " + report_errors.front();
  } else if (ctx->stage->gate && !failed && !cancel_signal_) {
    GateResult gate = EvaluateGate(ctx->stage->gate->min_tests, total, notes);
    message = gate.message;
    failed = !gate.passed;
  } else if (!notes.empty() || !report_errors.empty()) {
    notes.insert(notes.end(), report_errors.begin(), report_errors.end());
    for (const std::string& n : notes) message += (message.empty() ? "" : "; ") + n;
  }
  if (failed && message.empty()) {
    for (auto& sr : ctx->steps)
      if (sr->rec->status == kFailed && !sr->step->allow_failure)
        message += (message.empty() ? "failed: " : ", ") + sr->step->name;
  }
  SetStage(ctx->rec, cancel_signal_ ? kCancelled : failed ? kFailed : kSuccess, message);
}

}  // namespace ladle::runner
