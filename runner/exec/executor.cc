#include "runner/exec/executor.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <thread>

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/file.h>

#include <cstring>

#include "core/base/time_util.h"
#include "runner/exec/cache.h"
#include "runner/exec/junit.h"
#include "runner/exec/rollout.h"
#include "runner/exec/toggle_ops.h"
#include "runner/config/toggles_file.h"
#include "runner/store/step_log.h"
#include "runner/exec/workspace.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace ladle::runner {

std::string ArtifactDir(const std::string& data_dir, int64_t run, const std::string& stage,
                        const std::string& step) {
  return (fs::path(data_dir) / "artifacts" / std::to_string(run) / stage / step).string();
}

namespace {

// "test [GO=1.21]" -> "test" and {GO: 1.21}; false when `text` is not
// of that form (docs/running.md "Matrix steps").
bool ParseMatrixSelector(const std::string& text, std::string* base, Vars* values) {
  auto open = text.find(" [");
  if (open == std::string::npos || text.size() < open + 3 || text.back() != ']') return false;
  *base = text.substr(0, open);
  const std::string inner = text.substr(open + 2, text.size() - open - 3);
  for (size_t start = 0; start <= inner.size();) {
    size_t end = std::min(inner.find(", ", start), inner.size());
    std::string pair = inner.substr(start, end - start);
    auto eq = pair.find('=');
    if (eq == std::string::npos || eq == 0) return false;
    values->emplace_back(pair.substr(0, eq), pair.substr(eq + 1));
    start = end + 2;
  }
  return !values->empty();
}

// Whether `step` is what `name` (without its stage) names; *whole: it does
// so as one of all the combinations of its matrix step.
bool StepNamed(const Step& step, const std::string& name, bool* whole) {
  *whole = false;
  if (step.name == name || step.DisplayName() == name) return true;
  if (step.matrix_of.empty()) return false;
  if (step.matrix_of == name) return *whole = true;
  std::string base;
  Vars values;
  if (!ParseMatrixSelector(name, &base, &values) || base != step.matrix_of) return false;
  for (const auto& wanted : values)
    if (std::find(step.matrix_values.begin(), step.matrix_values.end(), wanted) ==
        step.matrix_values.end())
      return false;
  return true;
}

struct StepMatch {
  StepRef ref;
  std::string shown;  // stage/step as a person names it
  bool whole = false;
};

std::vector<StepMatch> MatchSteps(const Pipeline& pipeline, const std::string& name) {
  auto slash = name.find('/');
  std::vector<StepMatch> matches;
  for (const Stage& stage : pipeline.stages) {
    if (slash != std::string::npos && stage.name != name.substr(0, slash)) continue;
    const std::string rest = slash == std::string::npos ? name : name.substr(slash + 1);
    for (const Step& step : stage.steps) {
      bool whole = false;
      if (StepNamed(step, rest, &whole))
        matches.push_back({{stage.name, step.name},
                           stage.name + "/" + (step.matrix_of.empty() ? step.name : step.matrix_of),
                           whole});
    }
  }
  return matches;
}

// Invalid when the matches are in several stages (or none).
Status OneStage(const Pipeline& pipeline, const std::string& name,
                const std::vector<StepMatch>& matches) {
  if (matches.empty()) return Status::Invalid("no step '" + name + "' in " + pipeline.file);
  std::vector<std::string> places;
  for (const StepMatch& m : matches)
    if (std::find(places.begin(), places.end(), m.shown) == places.end()) places.push_back(m.shown);
  bool one_stage = std::all_of(matches.begin(), matches.end(), [&](const StepMatch& m) {
    return m.ref.stage == matches[0].ref.stage;
  });
  if (one_stage) return Status::OK();
  std::string list;
  for (const std::string& place : places) list += (list.empty() ? "" : ", ") + place;
  return Status::Invalid("step name '" + name + "' is ambiguous: " + list +
                         "; name it as STAGE/STEP");
}

}  // namespace

Status ResolveSteps(const Pipeline& pipeline, const std::string& name, std::vector<StepRef>* refs) {
  std::vector<StepMatch> matches = MatchSteps(pipeline, name);
  Status s = OneStage(pipeline, name, matches);
  if (!s.ok()) return s;
  for (const StepMatch& m : matches) refs->push_back(m.ref);
  return Status::OK();
}

Status ResolveStep(const Pipeline& pipeline, const std::string& name, StepRef* ref) {
  std::vector<StepMatch> matches = MatchSteps(pipeline, name);
  Status s = OneStage(pipeline, name, matches);
  if (!s.ok()) return s;
  if (matches.size() == 1) {
    *ref = matches[0].ref;
    return Status::OK();
  }
  // Every combination of one matrix step: named by the step as written.
  if (matches[0].whole) {
    *ref = {matches[0].ref.stage, matches[0].shown.substr(matches[0].ref.stage.size() + 1)};
    return Status::OK();
  }
  std::string list;
  for (const StepMatch& m : matches) list += (list.empty() ? "" : ", ") + m.ref.stage + "/" + m.ref.step;
  return Status::Invalid("step name '" + name + "' names " + std::to_string(matches.size()) +
                         " steps: " + list + "; name one, or the matrix step as written");
}

// One step of the stage being run: shared by its thread and the supervisor.
struct Executor::StepRun {
  const Step* step = nullptr;
  StepRecord* rec = nullptr;       // inside run_->stages[i].steps, guarded by mu_
  enum State { kPending, kRunning, kDone } state = kPending;
  std::future<void> thread;        // its run on a StepWorkers thread
  bool success = false;            // ended with exit 0 (after retries)
  bool started = false;            // its thread was started (guarded by mu_)
  bool rollout_check = false;      // a rollout stage's check: run by the rollout, not scheduled
  // Chained (TakeNextStep): its first attempt's `running` went to the store
  // with the end of the step before it (guarded by mu_).
  bool running_recorded = false;

  std::mutex mu;                   // guards the fields below (never take mu_ while holding it)
  env::Step* current = nullptr;    // the attempt in flight, for Kill
  Clock::time_point deadline;
  Clock::time_point term_sent;     // zero until TERM was sent
  bool timed_out = false;

  // Written by the step thread before it reports kDone, read after.
  bool has_reports = false;
  TestCounts tests;
  std::vector<std::string> report_notes;
  std::vector<FailedTest> failures;
  std::string report_error;        // a report that could not be read

  // docs/backends.md "Overlapped containers": this step's first attempt,
  // created by the engine while the step before it ran; taken by the step's
  // own thread when its spec is the same, else dropped (which removes it).
  struct Prepared {
    env::StepSpec spec;
    std::unique_ptr<env::Step> step;  // null: the engine made none
  };
  std::future<Prepared> prepared;   // set under mu_, before the step can start
};

struct Executor::StageContext {
  const Stage* stage = nullptr;
  StageRecord* rec = nullptr;
  size_t index = 0;                // in pipeline_.stages
  std::vector<std::unique_ptr<StepRun>> steps;  // the selected ones
  std::vector<StepRun*> by_index;  // per step of the stage; null when not selected
  int running = 0;                 // guarded by mu_
  std::string sync_error;          // the toggles sync failed: the stage fails, no step runs
  bool rollout_failed = false;

  StepRun* Find(const std::string& name) {
    for (auto& sr : steps)
      if (sr->step->name == name) return sr.get();
    return nullptr;
  }
};

// Threads that run steps, one step at a time each, kept for the next one:
// a thread per step cost its stack's mapping, guard page and unmapping (TLB
// flushes, which a VM pays dearly) and a malloc arena's growth per step
// (docs/benchmarks.md "`ladle run` on the local backend"). A step gets an
// idle thread, or a new one when none is idle; they end with the executor.
class Executor::StepWorkers {
 public:
  ~StepWorkers() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_) t.join();
  }
  std::future<void> Run(std::function<void()> fn) {
    std::packaged_task<void()> task(std::move(fn));
    std::future<void> done = task.get_future();
    std::lock_guard<std::mutex> lock(mu_);
    tasks_.push_back(std::move(task));
    if (tasks_.size() > idle_)
      threads_.emplace_back([this] { Loop(); });
    else
      cv_.notify_one();
    return done;
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      ++idle_;
      cv_.wait(lock, [this] { return stop_ || !tasks_.empty(); });
      --idle_;
      if (tasks_.empty()) return;  // stopped
      std::packaged_task<void()> task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::packaged_task<void()>> tasks_;  // guarded by mu_
  std::vector<std::thread> threads_;              // guarded by mu_
  size_t idle_ = 0;                               // threads waiting for a task; guarded by mu_
  bool stop_ = false;                             // guarded by mu_
};

Executor::Executor(const Pipeline& pipeline, RunStore* store, env::Engine* engine,
                   RunObserver* observer)
    : pipeline_(pipeline),
      store_(store),
      engine_(engine),
      observer_(observer),
      workers_(std::make_unique<StepWorkers>()) {}

Executor::~Executor() {
  // Every stage waits for its steps (RunStage); this only keeps a step that
  // outlived its run from running on after its executor.
  for (auto& ctx : contexts_)
    for (auto& sr : ctx->steps)
      if (sr->thread.valid()) sr->thread.wait();
}

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

// StepRecord::plan: the step's needs, services and cache as the pipeline
// says them (docs/design.md "JSON shapes"); "" when it has none.
std::string PlanText(const Step& step) {
  nlohmann::json plan = nlohmann::json::object();
  if (!step.needs.empty()) plan["needs"] = step.needs;
  if (!step.services.empty()) {
    nlohmann::json services = nlohmann::json::array();
    for (const env::ServiceSpec& service : step.services) {
      nlohmann::json one = {{"name", service.name}, {"image", service.image}};
      if (service.port != 0) one["port"] = service.port;
      services.push_back(std::move(one));
    }
    plan["services"] = std::move(services);
  }
  if (step.cache) {
    nlohmann::json cache = {{"paths", step.cache->paths}, {"policy", step.cache->policy}};
    if (!step.cache->key_files.empty()) {
      cache["files"] = step.cache->key_files;
    } else {
      cache["key"] = step.cache->key;  // as written, before ${VAR}s are expanded
    }
    plan["cache"] = std::move(cache);
  }
  if (plan.empty()) return "";
  return plan.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

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
      st.matrix_of = step.matrix_of;  // docs/pipeline.md "Matrix"
      st.matrix_values = step.matrix_values;
      st.plan = PlanText(step);
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
  for (const Step& step : stage.steps)  // a matrix step as written: all its combinations
    if (!step.matrix_of.empty() && step.matrix_of == root) out.insert(step.name);
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

std::string DeploymentLockPath(const std::string& data_dir, const std::string& environment) {
  return (fs::path(data_dir) / "locks" / (environment + ".lock")).string();
}

void Executor::Plan() {
  for (Stage& stage : pipeline_.stages) {
    if (!options_.rollback_environment.empty() &&
        stage.environment == options_.rollback_environment) {
      stage.gate.reset();
      stage.toggles_file.clear();
      stage.manual_approval = false;
      if (!stage.rollback.empty()) {
        Step step;
        step.name = "rollback";
        step.run = stage.rollback;
        step.image = stage.steps.empty() ? pipeline_.image : stage.steps.front().image;
        if (!stage.steps.empty()) step.resources = stage.steps.front().resources;
        stage.steps = {step};
      }
    }
    if (stage.rollout) {
      // Each check is a step of its own: its log, status and duration show
      // like any other's.
      for (int percent : stage.rollout->percent) {
        Step step;
        step.name = "check-" + std::to_string(percent);
        while (std::any_of(stage.steps.begin(), stage.steps.end(),
                           [&](const Step& s) { return s.name == step.name; }))
          step.name += "_";
        step.run = stage.rollout->check;
        step.image = pipeline_.image;
        stage.steps.push_back(step);
      }
    }
  }
}

// The record of a new run, or of the queued run (options_.run_id) a worker
// takes, with the stages before resume_stage as they were.
Status Executor::BeginRun(RunRecord* run) {
  RunRecord planned = PlanRecord(pipeline_);
  if (options_.run_id == 0) {
    *run = planned;
    run->repo = options_.repo;
    run->commit = options_.commit;
    run->branch = options_.branch;
    run->workspace = options_.workspace;
    run->project = options_.project;
    run->pipeline_path = options_.pipeline_path;
    run->rollback_environment = options_.rollback_environment;
    run->trigger = options_.trigger;
    run->status = kRunning;
    run->created_at = run->started_at = NowRfc3339();
    run->owner_pid = getpid();
    run->owner_start = ProcessStartTime(getpid());
    Status s = store_->CreateRun(run);
    return s.ok() ? s : s.WithContext("record the run");
  }
  RunRecord queued;
  Status s = store_->GetRun(options_.run_id, &queued);
  if (!s.ok()) return s.WithContext("take queued run " + std::to_string(options_.run_id));
  std::map<std::string, StageRecord> kept;
  if (!options_.resume_stage.empty()) {
    for (const StageRecord& stage : queued.stages) {
      if (stage.name == options_.resume_stage) break;
      kept[stage.name] = stage;
    }
  }
  *run = queued;
  run->project = options_.project;
  run->pipeline_path = options_.pipeline_path;
  run->pipeline = planned.pipeline;
  run->file = planned.file;
  run->stages = planned.stages;
  for (StageRecord& stage : run->stages) {
    auto it = kept.find(stage.name);
    if (it != kept.end()) stage = it->second;
  }
  run->deployment.reset();
  run->status = kRunning;
  if (options_.resume_stage.empty() || run->started_at.empty()) run->started_at = NowRfc3339();
  run->finished_at.clear();
  run->resume_stage.clear();
  if (!options_.workspace.empty()) run->workspace = options_.workspace;
  if (options_.resume_stage.empty()) run->message.clear();
  return store_->StartRun(run);
}

Status Executor::Run(const RunOptions& options, RunRecord* run) {
  options_ = options;
  Plan();
  early_starts_possible_ = false;
  for (const Stage& stage : pipeline_.stages)
    for (const Step& step : stage.steps)
      for (const std::string& need : step.needs)
        early_starts_possible_ |= !SplitNeed(need).first.empty();
  for (const std::string& name : pipeline_.secrets) {
    std::string value;
    if (options_.secrets_from_environment) {
      value = SecretValue(options_.secrets, name);
    } else {
      for (const auto& [key, v] : options_.secrets)
        if (key == name) value = v;
    }
    secret_env_.emplace_back(name, value);
    if (value.empty())
      Notify("warning: secret " + name + " is not set; steps see it empty");
    else
      secrets_.push_back(value);
  }
  Status s = BeginRun(run);
  if (!s.ok()) return s;
  run_ = run;
  if (observer_) observer_->RunStarted(*run);
  // docs/server.md "Scoped secrets": say which secrets no stage of this run gets.
  for (const auto& [name, value] : secret_env_) {
    bool anywhere = false;
    for (const Stage& stage : pipeline_.stages)
      anywhere |= SecretInScope(options_.secret_scopes, name, options_.repo, options_.branch,
                                stage.environment);
    if (!anywhere)
      Notify("secret " + name + " is withheld from this run: server.yml's 'secrets' scopes it " +
             "to other repositories, branches or environments");
  }
  if (options_.needs) dependencies_ = Dependencies();
  if (options.prepare_workspace) {
    TreeState tree;
    s = options.prepare_workspace(run->id, &run->workspace, &tree);
    run->tree = tree.tree;
    run->dirty = tree.dirty;
    run->changed_paths = tree.changed_paths;
    if (run->dirty) {
      std::string paths;
      for (size_t i = 0; i < run->changed_paths.size() && i < 5; ++i)
        paths += (i ? ", " : "") + run->changed_paths[i];
      if (run->changed_paths.size() > 5)
        paths += " and " + std::to_string(run->changed_paths.size() - 5) + " more";
      Notify("the working tree differs from commit " + ShortCommit(run->commit, false) + " (" +
             paths + "): this run is recorded as " + ShortCommit(run->commit, true));
    }
    if (!s.ok()) {
      run->status = kFailed;
      run->message = "could not prepare the workspace: " + s.message();
      run->finished_at = NowRfc3339();
      Status us = store_->UpdateRun(*run);
      if (!us.ok()) Notify("warning: could not record run " + std::to_string(run->id) + ": " + us.message());
      if (observer_) observer_->RunFinished(*run);
      run_ = nullptr;
      return s.WithContext("prepare the workspace");
    }
    s = store_->UpdateRun(*run);
    if (!s.ok()) RecordStoreFailure(s.WithContext("record run " + std::to_string(run->id)));
  }
  RestoreNeededArtifacts(run);

  size_t first = 0;
  for (size_t i = 0; i < pipeline_.stages.size() && !options_.resume_stage.empty(); ++i)
    if (pipeline_.stages[i].name == options_.resume_stage) first = i;
  PrepareContexts(first);
  for (size_t i = first; i < pipeline_.stages.size(); ++i) RunStage(pipeline_.stages[i], i, run);
  // docs/backends.md "Overlapped containers": containers made ahead for steps
  // that never ran (their stage was skipped) go before the run ends.
  for (auto& ctx : contexts_)
    for (auto& sr : ctx->steps)
      if (sr->prepared.valid()) sr->prepared.get();

  bool failed = false, waiting = false;
  for (const StageRecord& stage : run->stages) {
    failed |= stage.status == kFailed;
    waiting |= stage.status == kWaiting;
  }
  run->status = cancel_signal_ ? kCancelled : failed ? kFailed : waiting ? kWaiting : kSuccess;
  run->finished_at = NowRfc3339();
  // docs/design.md "Errors": a run whose steps or stages the store could not
  // record is not reported a success, since `ladle show` would disagree.
  Status unrecorded;
  {
    std::lock_guard<std::mutex> lock(mu_);
    unrecorded = store_failure_;
  }
  if (!unrecorded.ok() && run->status == kSuccess) {
    run->status = kFailed;
    run->message = "the run store could not record this run: " + unrecorded.message();
  }
  s = store_->UpdateRun(*run);
  if (!s.ok() && run->status == kSuccess) {
    run->status = kFailed;
    run->message = "the run store could not record this run: " + s.message();
  }
  if (observer_) observer_->RunFinished(*run);
  run_ = nullptr;
  return s;
}

bool Executor::StageSelected(const Stage& stage, std::string* why) const {
  if (StageChosen(stage, why)) return true;
  for (const auto& dep : dependencies_) {
    if (dep.first == stage.name) {
      why->clear();
      return true;
    }
  }
  return false;
}

std::set<std::string> Executor::SelectedSteps(const Stage& stage) const {
  std::string why;
  std::set<std::string> out;
  if (StageChosen(stage, &why)) out = StepsChosen(stage);
  for (const auto& dep : dependencies_)
    if (dep.first == stage.name) out.insert(dep.second);
  return out;
}

std::set<std::pair<std::string, std::string>> Executor::Dependencies() const {
  std::set<std::pair<std::string, std::string>> deps;
  if (options_.steps.empty() && !options_.from) return deps;
  // The last stage with a selected step: every stage before it is earlier
  // than some selected step.
  size_t last = 0;
  bool any = false;
  std::vector<std::set<std::string>> chosen(pipeline_.stages.size());
  for (size_t i = 0; i < pipeline_.stages.size(); ++i) {
    std::string why;
    if (StageChosen(pipeline_.stages[i], &why)) chosen[i] = StepsChosen(pipeline_.stages[i]);
    if (!chosen[i].empty()) {
      last = i;
      any = true;
    }
  }
  for (size_t i = 0; any && i <= last; ++i) {
    const Stage& stage = pipeline_.stages[i];
    std::set<std::string> wanted;
    if (i < last) {
      for (const Step& step : stage.steps) wanted.insert(step.name);
    } else {
      wanted = chosen[i];
    }
    // What the selected steps of this stage need, transitively.
    // (Those of earlier stages are all in already.)
    for (const auto& [other, need] : NeedsClosure(pipeline_, stage.name, chosen[i]))
      if (other == stage.name) wanted.insert(need);
    for (const std::string& name : wanted)
      if (!chosen[i].count(name)) deps.insert({stage.name, name});
  }
  return deps;
}

bool Executor::StageChosen(const Stage& stage, std::string* why) const {
  if (!options_.rollback_environment.empty() &&
      stage.environment != options_.rollback_environment) {
    *why = "a rollback of " + options_.rollback_environment + " runs only its stage";
    return false;
  }
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

std::set<std::string> Executor::StepsChosen(const Stage& stage) const {
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
  if (options_.artifacts_restored) return;  // ladle repro downloaded them
  if (options_.artifacts_from != 0) {
    // A rollback redeploys what that run built: its artifacts, as they were.
    for (const Stage& stage : pipeline_.stages) {
      if (stage.environment == options_.rollback_environment) break;
      for (const Step& step : stage.steps) {
        if (step.artifacts.empty()) continue;
        std::string dir = ArtifactDir(options_.data_dir, options_.artifacts_from, stage.name,
                                      step.name);
        std::error_code ec;
        if (!fs::is_directory(dir, ec)) {
          Notify("run " + std::to_string(options_.artifacts_from) + " kept no artifacts of " +
                 stage.name + "/" + step.name + "; steps that need them may fail");
          continue;
        }
        Status s = RestoreArtifacts(dir, run->workspace);
        Notify(s.ok() ? "restored the artifacts of " + stage.name + "/" + step.name +
                            " from run " + std::to_string(options_.artifacts_from)
                      : "could not restore artifacts of " + stage.name + "/" + step.name + ": " +
                            s.message());
      }
    }
    return;
  }
  // docs/running.md "Artifacts of steps that do not run": only what the
  // selected steps depend on, only from runs of the same project and
  // pipeline; --needs runs those steps instead.
  if (options_.needs) return;
  const std::set<std::pair<std::string, std::string>> deps = Dependencies();
  std::map<int64_t, std::vector<std::string>> restored;  // run -> steps, for one note per run
  for (const Stage& stage : pipeline_.stages) {
    for (const Step& step : stage.steps) {
      if (step.artifacts.empty() || !deps.count({stage.name, step.name})) continue;
      int64_t from_run = 0;
      Status s = options_.project.empty()
                     ? store_->FindLastSuccessfulStep(pipeline_.file, stage.name, step.name,
                                                      run->id, &from_run)
                     : store_->FindLastSuccessfulStepOf(options_.project, options_.pipeline_path,
                                                        stage.name, step.name, run->id,
                                                        &from_run);
      if (!s.ok() || from_run == 0) {
        Notify("no earlier run of this pipeline has the artifacts of " + stage.name + "/" +
               step.name + "; steps that need them may fail (--needs runs it first)");
        continue;
      }
      s = RestoreArtifacts(ArtifactDir(options_.data_dir, from_run, stage.name, step.name),
                           run->workspace);
      if (s.ok())
        restored[from_run].push_back(stage.name + "/" + step.name);
      else
        Notify("could not restore artifacts of " + stage.name + "/" + step.name + ": " +
               s.message());
    }
  }
  for (const auto& [id, steps] : restored) {
    RunRecord from;
    Status s = store_->GetRun(id, &from);
    if (!s.ok()) from.id = id;
    NoteArtifactSource(*run, from, steps);
  }
}

void Executor::NoteArtifactSource(const RunRecord& run, const RunRecord& from,
                                  const std::vector<std::string>& steps) {
  std::string names;
  for (const std::string& step : steps) names += (names.empty() ? "" : ", ") + step;
  std::string note = "restored the artifacts of " + names + " from run " + std::to_string(from.id);
  if (!from.commit.empty()) note += " (commit " + ShortCommit(from.commit, from.dirty) + ")";
  Notify(note);
  std::string differs;
  if (!from.tree.empty() && !run.tree.empty()) {
    if (from.tree == run.tree) return;
    std::vector<std::string> paths;
    size_t more = 0;
    SourceInfo source;
    source.root = options_.repo;
    source.is_git = true;
    Status s = ChangedPaths(source, from.tree, run.tree, 5, &paths, &more);
    if (s.ok()) {
      for (const std::string& p : paths) differs += (differs.empty() ? "" : ", ") + p;
      if (more > 0) differs += " and " + std::to_string(more) + " more";
    }
    if (differs.empty()) differs = "tree " + run.tree.substr(0, 7) + ", was " + from.tree.substr(0, 7);
  } else if (!from.commit.empty() && !run.commit.empty() &&
             (from.commit != run.commit || from.dirty || run.dirty)) {
    differs = "commit " + ShortCommit(run.commit, run.dirty) + ", was " +
              ShortCommit(from.commit, from.dirty);
  } else {
    return;
  }
  Notify("warning: the tree differs from the one run " + std::to_string(from.id) +
         " built them from (" + differs + "): they may be stale; --needs builds them again");
}

void Executor::RecordStoreFailure(const Status& s) {
  Notify("warning: could not " + s.message());
  std::lock_guard<std::mutex> lock(mu_);
  if (store_failure_.ok()) store_failure_ = s;
}

void Executor::SetStage(StageRecord* rec, RunStatus status, const std::string& message) {
  StageRecord copy;
  {
    std::lock_guard<std::mutex> lock(mu_);
    rec->status = status;
    if (!message.empty()) rec->message = message;
    copy = *rec;
  }
  Status s = store_->UpdateStage(run_->id, copy);
  if (!s.ok()) RecordStoreFailure(s.WithContext("record stage " + copy.name));
  if (observer_) observer_->StageChanged(*run_, copy);
}

void Executor::MarkStep(StepRecord* rec, RunStatus status) {
  rec->status = status;
  if (status == kRunning && rec->started_at.empty()) rec->started_at = NowRfc3339();
  if (status != kRunning && status != kQueued) rec->finished_at = NowRfc3339();
}

void Executor::SetStep(const Stage& stage, StepRecord* rec, RunStatus status) {
  StepRecord copy;
  {
    std::lock_guard<std::mutex> lock(mu_);
    MarkStep(rec, status);
    copy = *rec;
  }
  Status s = store_->UpdateStep(run_->id, stage.name, copy);
  if (!s.ok()) RecordStoreFailure(s.WithContext("record step " + stage.name + "/" + copy.name));
  if (observer_) observer_->StepChanged(*run_, stage.name, copy);
}

void Executor::RunStage(const Stage& stage, size_t index, RunRecord* run) {
  StageRecord* rec = &run->stages[index];
  StageContext& ctx = *contexts_[index];
  {
    std::lock_guard<std::mutex> lock(mu_);
    turn_ = index;
  }
  auto skip_all = [&](RunStatus status, const std::string& why) {
    // docs/pipeline.md "needs across stages": steps that started early
    // finish and keep their status; the others never start.
    std::string message = why;
    status = SettleSkippedStage(&ctx, status, &message);
    if (status != kWaiting)  // a waiting stage's steps stay queued until approved
      for (size_t i = 0; i < rec->steps.size(); ++i) {
        StepRun* sr = i < ctx.by_index.size() ? ctx.by_index[i] : nullptr;
        if (sr == nullptr || !sr->started) SetStep(stage, &rec->steps[i], kSkipped);
      }
    SetStage(rec, status, message);
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
  if (stage.rollout) {
    bool deployed = false;
    for (size_t i = 0; i < index; ++i)
      deployed |= run->stages[i].environment == stage.rollout->environment &&
                  run->stages[i].status == kSuccess;
    if (!deployed)
      return skip_all(kSkipped, "rollout: this run did not deploy to " +
                                    stage.rollout->environment);
    if (options_.toggles == nullptr)
      return skip_all(kSkipped, "rollout: no toggle service to act on");
  }
  if (!stage.environment.empty() && !options_.no_deploy.empty())
    return skip_all(kSkipped, options_.no_deploy);  // docs/server.md "Pull requests"
  if (!stage.environment.empty()) {
    // docs/server.md "Protected environments": refused before approval and any step.
    std::string refusal =
        EnvironmentRefusal(options_.protected_environments, stage.environment, options_.branch);
    if (!refusal.empty()) return skip_all(kFailed, refusal);
  }
  if (stage.manual_approval && stage.name != options_.resume_stage &&
      !(observer_ && observer_->Approve(stage.name))) {
    std::string first = stage.steps.empty() ? "" : "/" + stage.steps.front().name;
    std::string how = options_.run_id != 0
                          ? "ladle approve " + std::to_string(run->id) + " " + stage.name
                          : "ladle run " + pipeline_.file + " --from " + stage.name + first;
    return skip_all(kWaiting, "waits for approval; to go on: " + how);
  }

  std::unique_ptr<StoreLock> environment_lock;
  if (!stage.environment.empty() && !AcquireEnvironment(stage, rec, &environment_lock))
    return skip_all(kCancelled, "cancelled while waiting for " + stage.environment);
  if (!stage.environment.empty()) {
    std::string refusal = OlderCommitRefusal(stage);  // under the lock: the current one holds
    if (!refusal.empty()) {
      environment_lock.reset();
      return skip_all(kFailed, refusal);
    }
  }
  int64_t deployment_id = 0;
  if (!stage.environment.empty()) {
    DeploymentRecord d;
    d.environment = stage.environment;
    d.run_id = run->id;
    d.stage = stage.name;
    d.repo = run->repo;
    d.commit = run->commit;
    d.branch = run->branch;
    d.rollback = !options_.rollback_environment.empty();
    Status s = store_->BeginDeployment(&d);
    if (!s.ok()) Notify("warning: " + s.message());
    deployment_id = d.id;
    std::lock_guard<std::mutex> lock(mu_);
    run->deployment = d;
  }

  for (size_t i = 0; i < stage.steps.size(); ++i)  // not selected
    if (ctx.by_index[i] == nullptr) SetStep(stage, &rec->steps[i], kSkipped);
  {
    // What the stage said while it waited (for approval, for the
    // deployment lock) is over once it runs.
    std::lock_guard<std::mutex> lock(mu_);
    rec->message.clear();
  }
  SetStage(rec, kRunning, "");
  if (!stage.toggles_file.empty()) SyncToggles(stage, &ctx);
  if (!ctx.sync_error.empty()) {
    for (auto& sr : ctx.steps) SetStep(stage, sr->rec, kSkipped);
    SetStage(rec, kFailed, ctx.sync_error);
  } else {
    ScheduleSteps(&ctx);
    std::string rollout_message;
    if (stage.rollout) RunRolloutStage(stage, &ctx, &rollout_message);
    FinishStage(&ctx, rollout_message);
  }
  CloseStage(&ctx);

  if (deployment_id != 0) {
    Status s = store_->FinishDeployment(deployment_id, rec->status);
    if (!s.ok()) Notify("warning: " + s.message());
    std::lock_guard<std::mutex> lock(mu_);
    if (run->deployment) {
      run->deployment->status = rec->status;
      run->deployment->finished_at = NowRfc3339();
    }
  }
  environment_lock.reset();  // the next deployment of the environment may start
}

// docs/server.md "Webhook trust": an environment does not go back to an
// older commit (a replayed or late push, runs finishing out of order) except
// by `ladle rollback`.
std::string Executor::OlderCommitRefusal(const Stage& stage) {
  if (!options_.is_ancestor || !options_.rollback_environment.empty() || options_.commit.empty())
    return "";
  std::vector<DeploymentRecord> recent;
  Status s = store_->ListDeployments(stage.environment, 100, 0, &recent);
  if (!s.ok()) {
    Notify("warning: cannot read the deployments of " + stage.environment + ": " + s.message());
    return "";
  }
  // The newest good deployment there of this run's branch: another
  // branch's commits are not "older" (a feature branch deploys beside main).
  const DeploymentRecord* current = nullptr;
  for (const DeploymentRecord& d : recent) {
    if (d.status == kSuccess && d.repo == options_.repo && d.branch == options_.branch) {
      current = &d;
      break;
    }
  }
  if (current == nullptr || current->commit.empty() || current->commit == options_.commit)
    return "";
  bool older = false;
  s = options_.is_ancestor(options_.commit, current->commit, &older);
  if (!s.ok()) {
    Notify("warning: cannot tell whether " + options_.commit.substr(0, 12) + " is older than " +
           current->commit.substr(0, 12) + ": " + s.message());
    return "";
  }
  if (!older) return "";
  return "commit " + options_.commit.substr(0, 12) + " is older than " +
         current->commit.substr(0, 12) + ", which run " + std::to_string(current->run_id) +
         " deployed to " + stage.environment + " from branch " + options_.branch +
         ": an environment goes back only by `ladle rollback " + stage.environment + "`";
}

// docs/server.md "Deployments": one deployment of an environment at a time,
// by the store's lock "environment/ENV" (a flock on DATA/locks/ENV.lock
// beside SQLite, an advisory lock in PostgreSQL shared by every replica).
bool Executor::AcquireEnvironment(const Stage& stage, StageRecord* rec,
                                  std::unique_ptr<StoreLock>* lock_out) {
  bool told = false;
  for (;;) {
    Status s = store_->TryLock("environment/" + stage.environment, lock_out);
    if (!s.ok()) {
      Notify("warning: cannot take the deployment lock of " + stage.environment + ": " +
             s.message() + "; deploying without it");
      return true;
    }
    if (*lock_out) return true;
    if (cancel_signal_) return false;
    if (!told) {
      told = true;
      std::vector<DeploymentRecord> current;
      std::string who = "another run";
      if (store_->ListDeployments(stage.environment, 1, 0, &current).ok() && !current.empty() &&
          current[0].status == kRunning)
        who = "run " + std::to_string(current[0].run_id);
      std::string message = "waits for " + who + " to finish deploying to " + stage.environment;
      Notify("stage " + stage.name + " " + message);
      SetStage(rec, kQueued, message);
    }
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(50));
  }
}

std::string Executor::AuditNote(const Stage& stage) const {
  std::string note = "run " + std::to_string(run_->id);
  if (!run_->repo.empty()) note += " of " + run_->repo;
  if (!run_->commit.empty()) note += " at " + run_->commit.substr(0, 12);
  return note + ", stage " + stage.name;
}

void Executor::SyncToggles(const Stage& stage, StageContext* ctx) {
  if (options_.toggles == nullptr) {
    Notify("stage " + stage.name + ": no toggle service; toggles sync of " + stage.toggles_file +
           " skipped");
    return;
  }
  const std::string path = (fs::path(run_->workspace) / stage.toggles_file).string();
  std::vector<toggles::SyncEntry> entries;
  std::vector<Diagnostic> diagnostics;
  if (!LoadTogglesFile(path, &entries, &diagnostics)) {
    std::string first_error;
    for (const Diagnostic& d : diagnostics) {
      if (d.warning) continue;
      Notify(d.ToString());
      if (first_error.empty()) first_error = d.ToString();
    }
    ctx->sync_error = "toggles sync: " + stage.toggles_file + " is invalid" +
                      (first_error.empty() ? "" : ": " + first_error);
    return;
  }
  toggles::SyncResult result;
  Status s = options_.toggles->Sync(entries, options_.actor, AuditNote(stage), &result);
  if (!s.ok()) {
    ctx->sync_error = "toggles sync to " + options_.toggles->Describe() + " failed: " + s.message();
    return;
  }
  std::string line = "stage " + stage.name + ": synced " + stage.toggles_file + " to " +
                     options_.toggles->Describe() + ": " +
                     std::to_string(result.created.size()) + " created (off), " +
                     std::to_string(result.updated.size()) + " updated, " +
                     std::to_string(result.unchanged.size()) + " unchanged";
  Notify(line);
  if (!result.removal_candidates.empty()) {
    std::string list;
    for (const std::string& key : result.removal_candidates)
      list += (list.empty() ? "" : ", ") + key;
    Notify("stage " + stage.name + ": toggles not in " + stage.toggles_file +
           " (candidates for removal): " + list);
  }
}

bool Executor::RunRolloutStage(const Stage& stage, StageContext* ctx, std::string* message) {
  for (auto& sr : ctx->steps)
    if (!sr->rollout_check && sr->rec->status == kFailed && !sr->step->allow_failure) {
      *message = "rollout not started: step " + sr->step->name + " failed";
      for (auto& check : ctx->steps)
        if (check->rollout_check) SetStep(stage, check->rec, kSkipped);
      return false;
    }
  std::vector<StepRun*> checks;
  for (auto& sr : ctx->steps)
    if (sr->rollout_check) checks.push_back(sr.get());
  RolloutHooks hooks;
  hooks.note = [&](const std::string& line) { Notify("stage " + stage.name + ": " + line); };
  hooks.wait = [&](std::chrono::milliseconds d) {
    std::unique_lock<std::mutex> lock(mu_);
    return !cv_.wait_for(lock, d, [&] { return cancel_signal_.load() != 0; });
  };
  hooks.check = [&](size_t index, int) {
    if (index >= checks.size()) return false;
    // Scheduled like any step (timeout, cancel), alone: the others are done.
    checks[index]->rollout_check = false;
    ScheduleSteps(ctx);
    return checks[index]->success;
  };
  RolloutResult result;
  Status s = RunRollout(*stage.rollout, options_.toggles, options_.actor, AuditNote(stage), hooks,
                        &result);
  for (size_t i = 0; i < checks.size(); ++i) {
    const RunStatus status = i < result.step_status.size() ? result.step_status[i] : kSkipped;
    if (checks[i]->rec->status == kQueued)
      SetStep(stage, checks[i]->rec, status == kSuccess ? kSkipped : status);
  }
  *message = s.ok() ? result.message : s.message();
  ctx->rollout_failed = !s.ok();
  return s.ok();
}

Executor::Readiness Executor::ReadinessOf(StageContext* ctx, const StepRun& sr) {
  Readiness r = Readiness::kReady;
  if (IgnoreNeeds()) return r;
  for (const std::string& need : sr.step->needs) {
    StepRun* dep = FindNeed(ctx, need);
    if (dep == nullptr) continue;  // not selected (--from): treated as done
    if (dep->state != StepRun::kDone) r = Readiness::kWaiting;
    else if (!dep->success && !dep->step->allow_failure) return Readiness::kBlocked;
  }
  return r;
}

void Executor::ScheduleSteps(StageContext* ctx) {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    bool pending = false;
    for (auto& sr : ctx->steps) {
      if (sr->state != StepRun::kPending || sr->rollout_check) continue;
      const Readiness readiness = ReadinessOf(ctx, *sr);
      if (readiness == Readiness::kBlocked || cancel_signal_) {
        sr->state = StepRun::kDone;
        sr->rec->failure_reason = cancel_signal_ ? FailureReason::kCancelled : FailureReason::kNeeds;
        lock.unlock();
        SetStep(*ctx->stage, sr->rec, cancel_signal_ ? kCancelled : kSkipped);
        // docs/backends.md "Overlapped containers": created ahead, never started.
        if (sr->prepared.valid()) sr->prepared.get();
        lock.lock();
        continue;
      }
      pending = true;
      // --jobs counts the steps of every stage (some may have started early).
      if (readiness != Readiness::kReady || running_ >= std::max(1, options_.jobs)) continue;
      sr->state = StepRun::kRunning;
      sr->started = true;
      ctx->running++;
      running_++;
      sr->thread = workers_->Run([this, step = sr.get(), ctx] { RunStepThread(step, ctx); });
    }
    StartEarlySteps(&lock);
    if (!pending && ctx->running == 0) break;
    cv_.wait_for(lock, std::chrono::milliseconds(100));
    // A docker Kill may block on the daemon for minutes: never under mu_,
    // which every step update and status read takes.
    lock.unlock();
    SuperviseRunning();
    lock.lock();
  }
  lock.unlock();
  for (auto& sr : ctx->steps)
    if (sr->thread.valid()) sr->thread.get();
  // docs/backends.md "Overlapped containers": a step created ahead that did
  // not start (cancelled, skipped) is removed with its stage.
  for (auto& sr : ctx->steps)
    if (sr->prepared.valid()) sr->prepared.get();
}

// ---- docs/pipeline.md "needs across stages" --------------------------------

namespace {

// A stage whose steps start only at its turn, and before whose end no step
// of a later stage starts: deployments, approvals, toggles and rollouts.
bool IsBarrier(const Stage& stage) {
  return !stage.environment.empty() || stage.manual_approval || !stage.toggles_file.empty() ||
         stage.rollout.has_value();
}

}  // namespace

void Executor::PrepareContexts(size_t first) {
  contexts_.clear();
  for (size_t index = 0; index < pipeline_.stages.size(); ++index) {
    const Stage& stage = pipeline_.stages[index];
    auto ctx = std::make_unique<StageContext>();
    ctx->stage = &stage;
    ctx->rec = &run_->stages[index];
    ctx->index = index;
    ctx->by_index.assign(stage.steps.size(), nullptr);
    std::string why;
    // The stages before a resumed one keep their records: nothing of them runs.
    if (index >= first && StageSelected(stage, &why)) {
      const std::set<std::string> selected = SelectedSteps(stage);
      const size_t regular =
          stage.steps.size() - (stage.rollout ? stage.rollout->percent.size() : 0);
      for (size_t i = 0; i < stage.steps.size(); ++i) {
        if (!selected.count(stage.steps[i].name)) continue;
        auto sr = std::make_unique<StepRun>();
        sr->step = &stage.steps[i];
        sr->rec = &ctx->rec->steps[i];
        sr->rollout_check = i >= regular;
        ctx->by_index[i] = sr.get();
        ctx->steps.push_back(std::move(sr));
      }
    }
    contexts_.push_back(std::move(ctx));
  }
}

Executor::StepRun* Executor::FindNeed(StageContext* ctx, const std::string& need) {
  auto [other, name] = SplitNeed(need);
  if (other.empty()) return ctx->Find(name);
  for (auto& c : contexts_)
    if (c->stage->name == other) return c->Find(name);
  return nullptr;
}

bool Executor::MayEnterEarly(const StageContext& ctx) const {
  const Stage& stage = *ctx.stage;
  if (ctx.steps.empty() || IsBarrier(stage) || !options_.rollback_environment.empty())
    return false;
  if (stage.when_branches.empty()) return true;
  for (const std::string& glob : stage.when_branches)
    if (!options_.branch.empty() && BranchMatches(glob, options_.branch)) return true;
  return false;
}

void Executor::StartEarlySteps(std::unique_lock<std::mutex>* lock) {
  // --step without --needs ignores needs: every step waits for its turn.
  if (cancel_signal_ || IgnoreNeeds()) return;
  std::vector<std::pair<StageContext*, std::string>> started;  // stage, why
  for (size_t k = 0; k < contexts_.size(); ++k) {
    StageContext* ctx = contexts_[k].get();
    if (k > turn_ && MayEnterEarly(*ctx)) {
      for (auto& sr : ctx->steps) {
        if (sr->state != StepRun::kPending || sr->rollout_check) continue;
        bool ready = true, any = false;
        std::string needs;
        for (const std::string& need : sr->step->needs) {
          StepRun* dep = FindNeed(ctx, need);
          if (dep == nullptr) continue;
          any = true;
          needs += (needs.empty() ? "" : ", ") + need;
          if (dep->state != StepRun::kDone || (!dep->success && !dep->step->allow_failure))
            ready = false;
        }
        if (!ready || !any || running_ >= std::max(1, options_.jobs)) continue;
        sr->state = StepRun::kRunning;
        sr->started = true;
        ctx->running++;
        running_++;
        sr->thread = workers_->Run([this, step = sr.get(), ctx] { RunStepThread(step, ctx); });
        started.emplace_back(ctx, "step " + sr->step->DisplayName() +
                                      " starts before its stage's turn: " + needs + " passed");
      }
    }
    // No step starts before a barrier, nor after a stage that failed or
    // waits (its later stages will be skipped).
    bool stop = IsBarrier(*ctx->stage) && k >= turn_;
    stop |= ctx->rec->status == kFailed || ctx->rec->status == kWaiting ||
            ctx->rec->status == kCancelled;
    for (auto& sr : ctx->steps)
      stop |= sr->state == StepRun::kDone && sr->rec->status == kFailed &&
              !sr->step->allow_failure;
    if (stop) break;
  }
  if (started.empty()) return;
  lock->unlock();
  for (const auto& [ctx, why] : started) {
    Notify("stage " + ctx->stage->name + ": " + why);
    if (ctx->rec->status == kQueued) SetStage(ctx->rec, kRunning, "");
  }
  lock->lock();
}

void Executor::PrepareAhead() {
  // One more than --jobs: with -j 1, while a step runs, the next two are
  // being started (docs/benchmarks.md "Docker backend": 0.35x of `docker run`
  // per step against 0.41x with one).
  const int ahead = std::max(1, options_.jobs) + 1;
  int waiting = 0;  // made ahead, not started yet
  for (size_t k = turn_; k < contexts_.size(); ++k)
    for (auto& sr : contexts_[k]->steps)
      waiting += sr->state == StepRun::kPending && sr->prepared.valid();
  const bool ignore_needs = IgnoreNeeds();
  for (size_t k = turn_; k < contexts_.size() && waiting < ahead; ++k) {
    StageContext* ctx = contexts_[k].get();
    // Later stages only where their steps will run at their turn: not past
    // one that deploys or waits for a person, nor one the branch skips.
    if (k > turn_ && !MayEnterEarly(*ctx)) break;
    bool failed = false;
    for (auto& sr : ctx->steps) {
      failed |= sr->state == StepRun::kDone && !sr->success && !sr->step->allow_failure;
      if (waiting >= ahead || sr->state != StepRun::kPending || sr->rollout_check ||
          sr->prepared.valid())
        continue;
      const Step& ns = *sr->step;
      // Services are made ready at the step's turn; a restored cache is
      // written into the workspace just before it.
      if (!ns.services.empty() || (ns.cache && ns.cache->policy != "push")) continue;
      bool blocked = false;  // it will be skipped
      for (const std::string& need : ignore_needs ? std::vector<std::string>() : ns.needs) {
        StepRun* dep = FindNeed(ctx, need);
        blocked |= dep != nullptr && dep->state == StepRun::kDone && !dep->success &&
                   !dep->step->allow_failure;
      }
      if (blocked) continue;
      sr->prepared = std::async(std::launch::async, [this, spec = MakeSpec(*ctx->stage, ns, 1)] {
        StepRun::Prepared p;
        p.spec = spec;
        // Not made (image not here, ...): the step is created at its turn.
        if (!engine_->Precreate(p.spec, &p.step).ok()) p.step.reset();
        return p;
      });
      ++waiting;
    }
    if (failed) break;  // the stages after this one will be skipped
  }
}

RunStatus Executor::SettleSkippedStage(StageContext* ctx, RunStatus status, std::string* why) {
  bool started = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& sr : ctx->steps) {
      started |= sr->started;
      if (sr->state == StepRun::kPending) sr->state = StepRun::kDone;
    }
  }
  if (!started) return status;
  ScheduleSteps(ctx);  // nothing pending: waits for the steps that started early
  std::string list;
  bool failed = false, cancelled = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& sr : ctx->steps) {
      if (!sr->started) continue;
      list += (list.empty() ? "" : ", ") + sr->step->DisplayName() + " " +
              ToString(sr->rec->status);
      failed |= sr->rec->status == kFailed && !sr->step->allow_failure;
      cancelled |= sr->rec->status == kCancelled;
    }
  }
  *why += "; steps that started early: " + list;
  if (status != kSkipped) return status;
  return failed ? kFailed : cancelled ? kCancelled : kSkipped;
}

void Executor::CloseStage(StageContext* ctx) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& sr : ctx->steps)
    if (sr->state == StepRun::kPending) sr->state = StepRun::kDone;
}

// Timeouts and cancel: TERM first, KILL after the grace. REQUIRES: mu_ not
// held (an engine's Kill may block); only sr->mu is, which keeps the attempt
// alive while it is signalled and is taken by nobody but its step's thread.
void Executor::SuperviseRunning() {
  const auto now = Clock::now();
  // Steps that started before their stage's turn are supervised too; the
  // lists are fixed once PrepareContexts has made them.
  for (auto& ctx : contexts_) {
    for (auto& sr : ctx->steps) {
      // `current` is set only while the step runs (its state is under mu_).
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
}

// docs/pipeline.md "Caches": shared by the runs of one project (ladle run:
// the working tree; ladle serve: the repository).
std::string Executor::CacheScope() const {
  if (!options_.project.empty()) return options_.project;
  return !options_.repo.empty() ? options_.repo : options_.pipeline_path;
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
  spec.host_environment = options_.host_environment;
  for (const auto* layer : {&pipeline_.env, &stage.env, &step.env})
    spec.env.insert(spec.env.end(), layer->begin(), layer->end());
  // docs/server.md "Scoped secrets"; --env still wins over a secret.
  for (const auto& [name, value] : secret_env_) {
    bool overridden = std::any_of(options_.extra_env.begin(), options_.extra_env.end(),
                                  [&](const auto& var) { return var.first == name; });
    if (!overridden && SecretInScope(options_.secret_scopes, name, options_.repo,
                                     options_.branch, stage.environment))
      spec.secrets.emplace_back(name, value);
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
  spec.services = step.services;  // docs/pipeline.md "Services"
  spec.cancelled = [this] { return cancel_signal_.load() != 0; };
  return spec;
}

void Executor::RunStepThread(StepRun* sr, StageContext* ctx) {
  while (sr != nullptr) sr = RunOneStep(sr, ctx);
}

// docs/benchmarks.md "ladle run on the local backend": a step that ends
// hands its thread to the next step of its stage instead of waking the
// scheduler, which would give the step to a thread of its own; two thread
// wake-ups fewer between two short steps.
Executor::StepRun* Executor::TakeNextStep(StageContext* ctx, int ending, bool* more_ready) {
  // A step of a later stage that needs one of another stage may start early
  // (StartEarlySteps): only the scheduler looks for those.
  if (cancel_signal_ || early_starts_possible_) return nullptr;
  StepRun* next = nullptr;
  bool more = false;  // another step is ready beside it
  for (auto& sr : ctx->steps) {
    if (sr->state != StepRun::kPending || sr->rollout_check) continue;
    const Readiness readiness = ReadinessOf(ctx, *sr);
    if (readiness == Readiness::kBlocked) return nullptr;  // to skip: the scheduler's
    if (readiness == Readiness::kWaiting) continue;
    if (next == nullptr) next = sr.get();
    else more = true;
  }
  const int jobs = std::max(1, options_.jobs);
  if (next == nullptr || running_ - ending >= jobs) return nullptr;
  next->state = StepRun::kRunning;
  next->started = true;
  ctx->running++;
  running_++;
  *more_ready = more && running_ - ending < jobs;
  return next;
}

Executor::StepRun* Executor::RunOneStep(StepRun* sr, StageContext* ctx) {
  const Stage& stage = *ctx->stage;
  const Step& step = *sr->step;
  SecretMasker masker(secrets_);
  const std::string& keep = options_.keep.empty() ? step.keep : options_.keep;
  FailureReason failure = FailureReason::kNone;
  env::ExitStatus exit;
  const int attempts = step.retry + 1;
  std::unique_ptr<env::Step> leftover;  // removed once the step is done
  for (int attempt = 1; attempt <= attempts && !cancel_signal_; ++attempt) {
    bool recorded;
    {
      std::lock_guard<std::mutex> lock(mu_);
      sr->rec->attempts = attempt;
      recorded = attempt == 1 && sr->running_recorded;
    }
    if (!recorded) SetStep(stage, sr->rec, kRunning);
    StepLogWriter log(&masker, [&](env::OutputStream stream, std::string_view line) {
      if (observer_) observer_->StepOutput(stage.name, step.name, stream, line);
    });
    Status s = log.Open(StepLogPath(options_.data_dir, run_->id, stage.name, step.name));
    if (attempt > 1) log.Note("attempt " + std::to_string(attempt) + " of " + std::to_string(attempts));
    env::StepSpec spec = MakeSpec(stage, step, attempt);
    std::unique_ptr<env::Step> proc;
    if (s.ok() && !spec.services.empty() && engine_->Name() != "docker")
      s = Status::Invalid("step '" + stage.name + "/" + step.name +
                          "' has services: they run on the docker backend only, and this run "
                          "uses the " + engine_->Name() + " backend (docs/pipeline.md \"Services\")");
    // docs/pipeline.md "Caches": restored on the host, before the first attempt.
    if (s.ok() && attempt == 1 && step.cache && step.cache->policy != "push")
      log.Note(RestoreStepCache(*step.cache, options_.data_dir, CacheScope(), run_->workspace,
                                spec.env));
    // docs/backends.md "Overlapped containers": created while the step
    // before it ran; one made for another spec is dropped (and removed).
    if (s.ok() && sr->prepared.valid()) {
      StepRun::Prepared ahead = sr->prepared.get();
      if (ahead.step && env::SameStep(ahead.spec, spec)) proc = std::move(ahead.step);
    }
    if (s.ok() && !proc) s = engine_->Create(spec, &proc);
    if (s.ok()) s = proc->Start();
    // The steps next in line get their containers while this one runs.
    if (s.ok() && engine_->Name() == "docker" && !cancel_signal_) {
      std::lock_guard<std::mutex> lock(mu_);
      PrepareAhead();
    }
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
    // A cancel that stopped the wait for the step's services is a cancel.
    failure = s.code() == Code::kCancelled && cancel_signal_ ? FailureReason::kCancelled
              : !s.ok()         ? FailureReason::kError
              : timed_out       ? FailureReason::kTimeout
              : cancel_signal_  ? FailureReason::kCancelled
              : exit.code != 0  ? FailureReason::kExitCode
                                : FailureReason::kNone;
    if (!s.ok()) {
      log.Note(s.message());
      Notify(stage.name + "/" + step.name + ": " + s.message());
      if (s.code() == Code::kUnavailable) {
        std::lock_guard<std::mutex> lock(mu_);
        if (outside_failure_.ok()) outside_failure_ = s;
      }
    }
    if (timed_out) log.Note("timed out after " + FormatDuration(step.timeout));
    if (failure == FailureReason::kExitCode) log.Note("exited with code " + std::to_string(exit.code));
    if (!step.junit.empty()) {
      sr->has_reports = true;
      sr->tests = TestCounts();
      sr->report_notes.clear();
      sr->failures.clear();
      Status rs = CollectJUnitReports(run_->workspace, step.junit, &sr->tests, &sr->failures,
                                      &sr->report_notes);
      sr->report_error = rs.ok() ? "" : rs.message();
      // docs/running.md "Tests by name": the first failed tests, and how
      // many more, go with the step's record.
      std::lock_guard<std::mutex> lock(mu_);
      sr->rec->failed_tests = sr->failures;
      sr->rec->failed_tests_more =
          std::max(0, sr->tests.failed - static_cast<int>(sr->failures.size()));
    }
    bool last = failure == FailureReason::kNone || attempt == attempts || cancel_signal_;
    // docs/backends.md "keep": on-failure keeps a step that failed by itself,
    // not one that a cancel stopped (cancelled, or timed out while the run
    // was being cancelled).
    const bool failed_itself =
        failure != FailureReason::kNone && failure != FailureReason::kCancelled && !cancel_signal_;
    bool keep_it = keep == "always" || (keep == "on-failure" && failed_itself && last);
    if (proc) proc->WriteServiceLogs(&log);  // docs/pipeline.md "Services"
    if (failure == FailureReason::kNone && step.cache && step.cache->policy != "pull")
      log.Note(SaveStepCache(*step.cache, options_.data_dir, CacheScope(), run_->workspace,
                             spec.env));
    if (proc && keep_it && !proc->ShellCommand().empty()) {
      // Into the log (and so the live output) once; the run's summary repeats
      // it from the step's record.
      log.Note("container kept; open a shell in it with: " + proc->ShellCommand());
      std::lock_guard<std::mutex> lock(mu_);
      sr->rec->kept = proc->ShellCommand();
    } else if (proc && last && engine_->Name() == "docker") {
      // docs/backends.md "Overlapped containers": removed after the step is
      // done, while the next one starts.
      leftover = std::move(proc);
    } else if (proc) {
      Status rs = proc->Remove();
      if (!rs.ok()) log.Note("cleanup: " + rs.message());
    }
    // docs/design.md "Errors": a log that could not be written completely
    // (a full disk) fails its step; the output shown live is not a record.
    Status ls = log.Close();
    if (!ls.ok()) {
      Notify(stage.name + "/" + step.name + ": " + ls.message());
      if (failure == FailureReason::kNone) failure = FailureReason::kError;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      sr->rec->exit_code = s.ok() ? std::optional<int>(exit.code) : std::nullopt;
    }
    if (failure == FailureReason::kNone || cancel_signal_) break;
  }
  if (failure == FailureReason::kNone && !step.artifacts.empty()) {
    std::vector<std::string> missing;
    Status s = SaveArtifacts(run_->workspace, step.artifacts,
                             ArtifactDir(options_.data_dir, run_->id, stage.name, step.name),
                             &missing);
    if (!s.ok()) failure = FailureReason::kError, Notify(stage.name + "/" + step.name + ": " + s.message());
    for (const std::string& m : missing)
      Notify("warning: " + stage.name + "/" + step.name + ": artifact '" + m +
             "' matched no file");
  }
  if (failure == FailureReason::kNone && cancel_signal_ && sr->rec->attempts == 0)
    failure = FailureReason::kCancelled;
  // The step's end goes to the store before its stage can end (ctx->running
  // counts it until then); with the next step chained on this thread, that
  // step's start goes in the same write.
  std::vector<StepRecord> records(1);
  StepRun* next;
  bool more_ready = false;  // the scheduler has another step to start
  {
    std::lock_guard<std::mutex> lock(mu_);
    sr->rec->failure_reason = failure;
    sr->rec->allow_failure = failure != FailureReason::kNone && step.allow_failure;
    MarkStep(sr->rec, failure == FailureReason::kNone        ? kSuccess
                      : failure == FailureReason::kCancelled ? kCancelled
                                                             : kFailed);
    records[0] = *sr->rec;
    sr->success = failure == FailureReason::kNone;
    sr->state = StepRun::kDone;
    // A container to remove goes while the next step starts on another
    // thread (docs/backends.md "Overlapped containers"): no chaining then.
    next = leftover ? nullptr : TakeNextStep(ctx, /*ending=*/1, &more_ready);
    if (next != nullptr) {
      next->rec->attempts = 1;
      MarkStep(next->rec, kRunning);
      next->running_recorded = true;
      records.push_back(*next->rec);
    }
  }
  Status ws = records.size() == 1 ? store_->UpdateStep(run_->id, stage.name, records[0])
                                  : store_->UpdateSteps(run_->id, stage.name, records);
  if (!ws.ok()) RecordStoreFailure(ws.WithContext("record step " + stage.name + "/" + step.name));
  if (observer_)
    for (const StepRecord& r : records) observer_->StepChanged(*run_, stage.name, r);
  {
    std::lock_guard<std::mutex> lock(mu_);
    ctx->running--;
    running_--;
    if (next == nullptr || more_ready) cv_.notify_all();
  }
  if (leftover) {
    Status rs = leftover->Remove();
    if (!rs.ok()) Notify(stage.name + "/" + step.name + ": cleanup: " + rs.message());
    leftover.reset();
  }
  return next;
}

void Executor::FinishStage(StageContext* ctx, const std::string& rollout_message) {
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
  if (ctx->rollout_failed) failed = true;
  if (!rollout_message.empty()) message += (message.empty() ? "" : "; ") + rollout_message;
  if (failed && message.empty()) {
    // "step unit failed": the stage's status already says "failed" before
    // its message ("[test] failed: ..."), so the message does not repeat it.
    std::string names;
    int count = 0;
    for (auto& sr : ctx->steps)
      if (sr->rec->status == kFailed && !sr->step->allow_failure)
        names += (count++ ? ", " : "") + sr->step->name;
    if (count) message = (count == 1 ? "step " : "steps ") + names + " failed";
  }
  SetStage(ctx->rec, cancel_signal_ ? kCancelled : failed ? kFailed : kSuccess, message);
}

}  // namespace ladle::runner
