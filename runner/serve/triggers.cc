// The Scheduler's triggers beyond branch pushes (docs/server.md "Triggers"),
// and its commit statuses (docs/server.md "Commit statuses").
#include "runner/serve/triggers.h"

#include <algorithm>
#include <cstdlib>
#include <set>

#include <spdlog/spdlog.h>

#include "core/base/text.h"
#include "runner/serve/scheduler.h"

namespace ladle::runner {

bool IsPullRequestRef(const std::string& ref) {
  return ref.rfind("refs/pull/", 0) == 0 || ref.rfind("refs/merge-requests/", 0) == 0;
}

bool AnyGlobMatches(const std::vector<std::string>& globs, const std::string& name) {
  if (globs.empty()) return true;
  for (const std::string& glob : globs)
    if (BranchMatches(glob, name)) return true;
  return false;
}

bool IsFullObjectId(const std::string& text) {
  return (text.size() == 40 || text.size() == 64) &&
         text.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos;
}

std::function<int64_t()> ScheduleClockFromEnvironment(std::chrono::milliseconds* tick) {
  *tick = std::chrono::seconds(2);
  const char* env = std::getenv("LADLE_SCHEDULE_CLOCK");
  if (env != nullptr && *env != '\0') {
    char* end = nullptr;
    const long long start = std::strtoll(env, &end, 10);
    double rate = 1;
    if (end != nullptr && *end == ':') rate = std::strtod(end + 1, &end);
    if (end != nullptr && *end == '\0' && start > 0 && rate > 0 && rate <= 100000) {
      *tick = std::max(std::chrono::milliseconds(50),
                       std::chrono::milliseconds(static_cast<int64_t>(1000 / rate)));
      const auto began = std::chrono::steady_clock::now();
      spdlog::warn("schedules: LADLE_SCHEDULE_CLOCK={}: the clock starts at {} and runs {}x", env,
                   start, rate);
      return [began, start, rate] {
        const double elapsed =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
        return start + static_cast<int64_t>(elapsed * rate);
      };
    }
    spdlog::warn("schedules: LADLE_SCHEDULE_CLOCK='{}' is not START[:RATE]; the system clock is used",
                 env);
  }
  return [] {
    return static_cast<int64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count());
  };
}

// ---- reading pipelines, queuing runs ----

Status Scheduler::ReadPipelineAt(Repo* repo, const std::string& commit, const std::string& branch,
                                 Pipeline* pipeline, bool* found, bool* valid, std::string* why) {
  *found = *valid = false;
  std::string text;
  Status s = repo->mirror->ReadFile(commit, repo->config->pipeline, &text, branch);
  if (s.code() == Code::kNotFound) {
    *why = s.message();
    return Status::OK();
  }
  if (!s.ok()) return s;
  *found = true;
  std::vector<Diagnostic> diagnostics;
  *valid = ParsePipeline(text, repo->config->pipeline, pipeline, &diagnostics);
  return Status::OK();
}

Status Scheduler::QueueRun(RunRecord* run) {
  if (run->file.empty()) run->file = FindRepo(run->repo)->config->pipeline;
  std::vector<int64_t> superseded;
  Status s = store_->EnqueueRun(run, &superseded);
  if (!s.ok()) return s;
  spdlog::info("run {} queued: {} {} at {} ({})", run->id, run->repo,
               run->ref.empty() ? run->branch : run->ref, run->commit.substr(0, 12), run->trigger);
  for (int64_t old : superseded) queue_.Remove(old);
  for (int64_t old : superseded) {
    if (metrics_) metrics_->RunEnded(kSuperseded);
    RunRecord r;
    if (store_->GetRun(old, &r).ok()) events_->PublishRun(r);
    spdlog::info("run {} superseded by run {}", old, run->id);
  }
  events_->PublishRun(*run);
  queue_.Push(run->id);
  return Status::OK();
}

// ---- tag pushes ----

Status Scheduler::HandleTagPush(Repo* repo, const PushEvent& event, std::vector<int64_t>* runs,
                                std::string* note) {
  if (event.deleted || event.commit.empty()) {
    *note = event.note.empty() ? "tag " + event.tag + " was deleted" : event.note;
    return Status::OK();
  }
  std::lock_guard<std::mutex> lock(repo->mu);
  // docs/server.md "Webhook trust": the tag must point where the sender
  // says, now.
  std::string object, commit;
  Status s = repo->mirror->ResolveRef(event.ref, &object, &commit);
  if (s.code() == Code::kNotFound) return Status::Conflict(s.message() + ": the push is not taken");
  if (!s.ok()) return s;
  const std::string said = Lower(event.commit);
  if (said != Lower(object) && said != Lower(commit))
    return Status::Conflict("tag " + event.tag + " points at " + commit.substr(0, 12) +
                            " in repository '" + repo->config->name + "', not at " +
                            event.commit.substr(0, 12) + ": the push is not taken");
  bool exists = false;
  s = store_->HasRunForRef(repo->config->name, event.ref, commit, &exists);
  if (!s.ok()) return s;
  if (exists) {
    *note = "tag " + event.tag + " at " + commit.substr(0, 12) + " has a run already";
    return Status::OK();
  }
  Pipeline pipeline;
  bool found = false, valid = false;
  s = ReadPipelineAt(repo, commit, "", &pipeline, &found, &valid, note);
  if (!s.ok() || !found) return s;
  if (valid && pipeline.push_tags.empty()) {
    *note = "tag " + event.tag + " starts no run: the pipeline's on.push has no 'tags' "
            "(docs/pipeline.md \"Triggers\")";
    return Status::OK();
  }
  if (valid && !AnyGlobMatches(pipeline.push_tags, event.tag)) {
    std::string globs;
    for (const std::string& g : pipeline.push_tags) globs += (globs.empty() ? "" : ", ") + g;
    *note = "tag " + event.tag + " does not match the pipeline's on.push.tags (" + globs + ")";
    return Status::OK();
  }
  RunRecord run;
  run.repo = repo->config->name;
  run.commit = commit;
  run.ref = event.ref;
  run.trigger = "push";
  run.pipeline = pipeline.name;
  s = QueueRun(&run);
  if (s.ok()) runs->push_back(run.id);
  return s;
}

// ---- pull requests ----

Status Scheduler::HandlePullRequest(Repo* repo, const PushEvent& event,
                                    std::vector<int64_t>* runs, std::string* note) {
  const std::string label = "pull request " + std::to_string(event.number);
  std::lock_guard<std::mutex> lock(repo->mu);
  // The head as the repository has it now: the forge's ref of the pull
  // request, else (same repository) its source branch.
  std::string object, head;
  Status s = repo->mirror->ResolveRef(event.ref, &object, &head);
  if (!s.ok() && event.same_repo) s = repo->mirror->BranchHead(event.head_branch, &head);
  if (s.code() == Code::kNotFound)
    return Status::Conflict(label + ": its head could not be fetched (" + s.message() +
                            "): not taken");
  if (!s.ok()) return s;
  if (Lower(head) != Lower(event.commit))
    return Status::Conflict(label + ": its head is " + head.substr(0, 12) + " now, not " +
                            event.commit.substr(0, 12) + ": not taken");
  Pipeline pipeline;
  bool found = false, valid = false;
  s = ReadPipelineAt(repo, head, "", &pipeline, &found, &valid, note);
  if (!s.ok() || !found) return s;
  if (valid && !pipeline.on_pull_request) {
    *note = label + " starts no run: the pipeline's 'on' has no 'pull_request' "
            "(docs/pipeline.md \"Triggers\")";
    return Status::OK();
  }
  if (valid && !AnyGlobMatches(pipeline.pull_request_branches, event.base)) {
    *note = label + " targets " + event.base +
            ", which the pipeline's on.pull_request.branches does not list";
    return Status::OK();
  }
  bool exists = false;
  s = store_->HasRunForRef(repo->config->name, event.ref, head, &exists);
  if (!s.ok()) return s;
  if (exists) {
    *note = label + " at " + head.substr(0, 12) + " has a run already";
    return Status::OK();
  }
  RunRecord run;
  run.repo = repo->config->name;
  run.commit = Lower(head);
  run.ref = event.ref;
  run.trigger = "pull_request";
  run.pipeline = pipeline.name;
  s = QueueRun(&run);
  if (s.ok()) runs->push_back(run.id);
  return s;
}

// ---- the API: trigger and re-run ----

Status Scheduler::Trigger(const std::string& name, const std::string& branch,
                          const std::string& tag, const std::string& commit,
                          const std::string& actor, int64_t* run_id) {
  *run_id = 0;
  Repo* repo = FindRepo(name);
  if (repo == nullptr) return Status::NotFound("no repository '" + name + "' in " + config_.file);
  if (stopping_) return Status::Unavailable("ladle serve is stopping");
  RunRecord run;
  run.repo = name;
  run.trigger = "api";
  std::lock_guard<std::mutex> lock(repo->mu);
  Status s;
  if (!branch.empty()) {
    if (std::string problem = BranchNameProblem(branch); !problem.empty())
      return Status::Invalid("branch: not a valid git branch name: " + problem);
    s = repo->mirror->BranchHead(branch, &run.commit);
    run.branch = branch;
    run.ref = "refs/heads/" + branch;
  } else if (!tag.empty()) {
    run.ref = "refs/tags/" + tag;
    if (std::string problem = RefNameProblem(run.ref); !problem.empty() || tag[0] == '-')
      return Status::Invalid("tag: not a valid git tag name: " +
                             (problem.empty() ? std::string("it starts with '-'") : problem));
    std::string object;
    s = repo->mirror->ResolveRef(run.ref, &object, &run.commit);
  } else {
    if (!IsFullObjectId(commit))
      return Status::Invalid("commit: must be a full commit id (40 or 64 hex digits), got '" +
                             commit.substr(0, 80) + "'");
    run.commit = Lower(commit);
    s = repo->mirror->HasCommitFetched(run.commit);
  }
  if (!s.ok()) return s;
  Pipeline pipeline;
  bool found = false, valid = false;
  std::string why;
  s = ReadPipelineAt(repo, run.commit, run.branch, &pipeline, &found, &valid, &why);
  if (!s.ok()) return s;
  if (!found) return Status::NotFound(why);
  run.pipeline = pipeline.name;
  s = QueueRun(&run);
  if (!s.ok()) return s;
  *run_id = run.id;
  spdlog::info("run {} asked for by {}", run.id, actor);
  return Status::OK();
}

Status Scheduler::Rerun(int64_t id, const std::string& actor, int64_t* run_id) {
  *run_id = 0;
  RunRecord old;
  Status s = store_->GetRun(id, &old);
  if (!s.ok()) return s;
  const std::string label = "run " + std::to_string(id);
  if (old.trigger.empty() || old.trigger == "repro")
    return Status::Conflict(label + " was started by `ladle " +
                            (old.trigger.empty() ? "run" : "repro") +
                            "`, not by ladle serve: run it again there");
  if (!old.rollback_environment.empty())
    return Status::Conflict(label + " is a rollback of " + old.rollback_environment +
                            ": use ladle rollback");
  if (old.status == kQueued || old.status == kRunning || old.status == kWaiting)
    return Status::Conflict(label + " is " + ToString(old.status) +
                            ": a run is re-run once it has ended (cancel it first)");
  if (FindRepo(old.repo) == nullptr)
    return Status::Invalid("repository '" + old.repo + "' of " + label + " is not in " +
                           config_.file);
  if (stopping_) return Status::Unavailable("ladle serve is stopping");
  RunRecord run;
  run.repo = old.repo;
  run.commit = old.commit;
  run.branch = old.branch;
  run.ref = old.ref;
  run.pipeline = old.pipeline;
  run.file = old.file;
  run.trigger = "rerun";
  run.rerun_of = id;
  s = QueueRun(&run);
  if (!s.ok()) return s;
  *run_id = run.id;
  spdlog::info("run {} re-runs run {} (asked for by {})", run.id, id, actor);
  return Status::OK();
}

// ---- schedules ----

void Scheduler::SetScheduleClock(std::function<int64_t()> clock, std::chrono::milliseconds tick) {
  clock_ = std::move(clock);
  tick_ = tick;
}

std::vector<std::string> Scheduler::schedules() {
  std::lock_guard<std::mutex> lock(schedules_mu_);
  std::vector<std::string> out;
  for (const auto& [key, entries] : schedules_)
    for (const ScheduleEntry& e : entries) out.push_back(e.repo + " " + e.branch + " " + e.cron);
  return out;
}

void Scheduler::NoteSchedules(Repo* repo, const std::string& branch, const std::string& commit) {
  const std::string key = repo->config->name + "\n" + branch;
  {
    std::lock_guard<std::mutex> lock(schedules_mu_);
    auto it = schedule_commits_.find(key);
    if (it != schedule_commits_.end() && it->second == commit) return;
  }
  Pipeline pipeline;
  bool found = false, valid = false;
  std::string why;
  Status s = ReadPipelineAt(repo, commit, branch, &pipeline, &found, &valid, &why);
  if (!s.ok()) {
    spdlog::warn("schedules of {} {}: {}", repo->config->name, branch, s.message());
    return;  // read again next time
  }
  std::vector<ScheduleEntry> entries;
  // docs/server.md "Schedules": a branch's pipeline schedules that branch only.
  for (const ScheduleTrigger& t : pipeline.schedules) {
    if (!valid || t.branch != branch) continue;
    ScheduleEntry e;
    e.repo = repo->config->name;
    e.branch = branch;
    e.cron = t.cron;
    std::string error;
    if (ParseCron(t.cron, &e.schedule, &error)) entries.push_back(std::move(e));
  }
  std::lock_guard<std::mutex> lock(schedules_mu_);
  for (ScheduleEntry& e : entries)  // keep what is known of the same entries
    for (const ScheduleEntry& old : schedules_[key])
      if (old.cron == e.cron) e.last = old.last;
  if (entries.size() != schedules_[key].size() || !entries.empty())
    spdlog::info("schedules of {} {}: {}", repo->config->name, branch,
                 entries.empty() ? std::string("none") : std::to_string(entries.size()));
  if (entries.empty()) schedules_.erase(key);
  else schedules_[key] = std::move(entries);
  schedule_commits_[key] = commit;
}

void Scheduler::ScheduleLoop() {
  std::unique_lock<std::mutex> lock(schedules_mu_);
  while (!schedules_stop_) {
    lock.unlock();
    if (leader_) FireDueSchedules();  // docs/server.md "Replicas": the leader's
    lock.lock();
    schedules_cv_.wait_for(lock, tick_, [&] { return schedules_stop_; });
  }
}

void Scheduler::FireDueSchedules() {
  const int64_t now = clock_();
  const int64_t minute = now - ((now % 60) + 60) % 60;
  std::vector<ScheduleEntry> due;
  {
    std::lock_guard<std::mutex> lock(schedules_mu_);
    for (auto& [key, entries] : schedules_) {
      for (ScheduleEntry& e : entries) {
        if (e.last < 0) {
          // First sight: what the store remembers, else "handled up to now"
          // (a new schedule does not fire for minutes before it was seen).
          int64_t last = 0;
          bool fresh = false;
          Status s = store_->LastScheduleFire(e.repo, e.branch, e.cron, &last);
          if (s.ok() && last == 0) s = store_->ClaimScheduleFire(e.repo, e.branch, e.cron, minute, &fresh);
          if (!s.ok()) {
            spdlog::error("{}", s.ToString());
            continue;
          }
          e.last = last == 0 ? minute : last;
        }
        int64_t next = 0;
        if (!NextCronTime(e.schedule, e.last, &next) || next > now) continue;
        // A missed minute (the server was down) fires once, now; the store
        // says whether another round already did.
        bool fresh = false;
        Status s = store_->ClaimScheduleFire(e.repo, e.branch, e.cron, minute, &fresh);
        if (!s.ok()) {
          spdlog::error("{}", s.ToString());
          continue;
        }
        e.last = minute;
        if (fresh) due.push_back(e);
      }
    }
  }
  for (const ScheduleEntry& e : due) {
    Repo* repo = FindRepo(e.repo);
    if (repo == nullptr || stopping_) continue;
    RunRecord run;
    run.repo = e.repo;
    run.branch = e.branch;
    run.ref = "refs/heads/" + e.branch;
    run.trigger = "schedule";
    Status s;
    {
      std::lock_guard<std::mutex> lock(repo->mu);
      s = repo->mirror->BranchHead(e.branch, &run.commit);
      Pipeline pipeline;
      bool found = false, valid = false;
      std::string why;
      if (s.ok()) s = ReadPipelineAt(repo, run.commit, e.branch, &pipeline, &found, &valid, &why);
      run.pipeline = pipeline.name;
    }
    if (s.ok()) s = QueueRun(&run);
    if (!s.ok())
      spdlog::warn("schedule '{}' of {} {}: no run: {}", e.cron, e.repo, e.branch, s.message());
  }
}

// ---- commit statuses ----

void Scheduler::RunChanged(const RunRecord& run) {
  if (!statuses_ || run.commit.empty() || run.trigger.empty() || run.trigger == "repro") return;
  const RepositoryConfig* config = config_.FindRepository(run.repo);
  if (config == nullptr || !config->status) return;
  const std::string token = SecretValue(secrets_, config->status->token_env);
  if (token.empty()) {
    spdlog::warn("commit status of run {}: {} is not set (secrets file or environment)", run.id,
                 config->status->token_env);
    return;
  }
  const std::string base =
      config_.external_url.empty() ? "http://" + config_.listen : config_.external_url;
  std::string description = "run " + std::to_string(run.id) + " " + ToString(run.status);
  if (run.status == kWaiting) description = "run " + std::to_string(run.id) + " waits for approval";
  statuses_->Enqueue(BuildStatusRequest(*config->status, token, run.commit, run.status,
                                        base + "/#/runs/" + std::to_string(run.id), description));
}

}  // namespace ladle::runner
