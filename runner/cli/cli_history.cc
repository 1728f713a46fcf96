// `ladle runs`, `ladle show`, `ladle logs` and `ladle cancel`: reading the
// run store, possibly while another ladle process writes it.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/base/time_util.h"
#include "core/pg.h"
#include "runner/cli/cli_commands.h"
#include "runner/exec/executor.h"
#include "runner/store/run_store.h"
#include "runner/store/step_log.h"
#include "toggles/server/store.h"
#include "runner/cli/terminal_view.h"

namespace fs = std::filesystem;

namespace ladle::runner {
namespace {

Status OpenStore(const GlobalFlags& g, std::unique_ptr<RunStore>* store) {
  // docs/server.md "Replicas": $LADLE_STORE names the servers' PostgreSQL.
  const std::string location = toggles::ToggleStoreLocation("", g.data);
  std::error_code ec;
  if (!IsPostgresUri(location) && !fs::exists(fs::path(g.data) / "ladle.db", ec))
    return Status::NotFound("no runs yet in " + g.data + " (run a pipeline with `ladle run`)");
  Status s = RunStore::OpenLocation(location, g.data, store);
  std::vector<int64_t> interrupted;
  // Reading commands show what is recorded even when the dead runs could not
  // be marked (a read-only data dir, say): the next `ladle run` marks them.
  // A shared store's dead runs are the replicas' to take over (and requeue).
  if (s.ok() && !(*store)->shared()) (*store)->MarkInterrupted(&interrupted).IgnoreError();
  return s;
}

Status LoadRun(const GlobalFlags& g, int64_t id, std::unique_ptr<RunStore>* store, RunRecord* run) {
  Status s = OpenStore(g, store);
  if (s.ok()) s = (*store)->GetRun(id, run);
  if (s.code() == Code::kNotFound && s.message().find("no runs yet") == std::string::npos)
    return Status::NotFound("no run " + std::to_string(id) + " in " + g.data);
  return s;
}

bool Finished(RunStatus status) {
  return status != kRunning && status != kQueued;
}

std::string Short(const std::string& commit) { return commit.substr(0, 8); }

// Prints the records of one step's log from *offset on.
void PrintRecords(const std::string& path, uint64_t* offset, bool json, const std::string& prefix) {
  std::vector<LogRecord> records;
  if (!ReadLogRecords(path, offset, &records).ok()) return;
  for (const LogRecord& r : records) {
    if (json) {
      nlohmann::json line = {{"step", prefix},
                             {"stream", r.stream == env::OutputStream::kStdout ? "stdout" : "stderr"},
                             {"text", r.text}};
      std::printf("%s\n", line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else {
      std::printf("%s%s\n", prefix.empty() ? "" : ("[" + prefix + "] ").c_str(), r.text.c_str());
    }
  }
  std::fflush(stdout);
}

struct StepName {
  std::string stage, step;
};

Status MatchStep(const RunRecord& run, const std::string& name, std::vector<StepName>* out) {
  auto slash = name.find('/');
  const std::string rest = slash == std::string::npos ? name : name.substr(slash + 1);
  std::vector<StepName> hits;
  // docs/running.md "Matrix steps": a combination also by its display name;
  // a matrix step as written names all of its combinations (one stage's).
  std::set<std::string> matrices;
  for (const StageRecord& stage : run.stages)
    for (const StepRecord& step : stage.steps) {
      if (slash != std::string::npos && stage.name != name.substr(0, slash)) continue;
      bool whole = !step.matrix_of.empty() && step.matrix_of == rest;
      if (!name.empty() && step.name != rest && step.DisplayName() != rest && !whole) continue;
      hits.push_back({stage.name, step.name});
      matrices.insert(whole ? stage.name : "/");
    }
  if (hits.empty()) return Status::Invalid("run " + std::to_string(run.id) + " has no step '" + name + "'");
  const bool one_matrix = !matrices.count("/") && matrices.size() == 1;
  if (!name.empty() && hits.size() > 1 && !one_matrix) {
    std::string list;
    for (const StepName& n : hits) list += (list.empty() ? "" : ", ") + n.stage + "/" + n.step;
    return Status::Invalid("step name '" + name + "' is ambiguous: " + list);
  }
  *out = hits;
  return Status::OK();
}

const StepRecord* FindStep(const RunRecord& run, const StepName& n) {
  for (const StageRecord& stage : run.stages)
    if (stage.name == n.stage)
      for (const StepRecord& step : stage.steps)
        if (step.name == n.step) return &step;
  return nullptr;
}

}  // namespace

int CmdRuns(const GlobalFlags& g, const std::string& status, int limit) {
  std::unique_ptr<RunStore> store;
  Status s = OpenStore(g, &store);
  if (s.code() == Code::kNotFound) {
    if (g.json) std::printf("[]\n");
    else std::printf("no runs yet\n");
    return 0;
  }
  RunFilter filter;
  filter.status = status;
  filter.limit = limit;
  std::vector<RunRecord> runs;
  if (s.ok()) s = store->ListRuns(filter, &runs);
  if (!s.ok()) return Fail(s);
  if (g.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const RunRecord& run : runs) out.push_back(RunToJson(run));
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("%-6s %-12s %-20s %-16s %-14s %-20s %s\n", "ID", "STATUS", "PIPELINE", "BRANCH",
              "COMMIT", "STARTED", "TOOK");
  for (const RunRecord& run : runs) {
    std::chrono::system_clock::time_point a, b;
    std::string took;
    if (ParseRfc3339(run.started_at, &a) && ParseRfc3339(run.finished_at, &b))
      took = FormatDuration(std::chrono::duration_cast<std::chrono::milliseconds>(b - a));
    // docs/running.md "Same inputs as CI": a dirty tree's run shows +dirty.
    std::printf("%-6lld %-12s %-20s %-16s %-14s %-20s %s\n", static_cast<long long>(run.id),
                ToString(run.status), run.pipeline.c_str(), run.branch.empty() ? "-" : run.branch.c_str(),
                run.commit.empty() ? "-" : (Short(run.commit) + (run.dirty ? "+dirty" : "")).c_str(), run.started_at.substr(0, 19).c_str(),
                took.c_str());
  }
  return 0;
}

int CmdShow(const GlobalFlags& g, int64_t id) {
  std::unique_ptr<RunStore> store;
  RunRecord run;
  Status s = LoadRun(g, id, &store, &run);
  if (!s.ok()) return Fail(s);
  if (g.json) {
    std::printf("%s\n", RunToJson(run).dump(2).c_str());
    return 0;
  }
  std::printf("run %lld of %s (%s)\n", static_cast<long long>(run.id), run.pipeline.c_str(), run.file.c_str());
  if (!run.commit.empty() && !run.branch.empty())
    std::printf("commit %s%s on %s\n", run.commit.c_str(), run.dirty ? "+dirty" : "", run.branch.c_str());
  else if (!run.commit.empty())
    std::printf("commit %s%s\n", run.commit.c_str(), run.dirty ? "+dirty" : "");
  // docs/server.md "Triggers": why the run exists, and from which ref.
  if (!run.trigger.empty()) {
    std::string line = "trigger " + run.trigger;
    if (!run.ref.empty()) line += " (" + run.ref + ")";
    if (run.rerun_of != 0) line += ", re-run of run " + std::to_string(run.rerun_of);
    std::printf("%s\n", line.c_str());
  }
  if (run.dirty) {
    // docs/running.md "Same inputs as CI": what differed from the commit.
    std::string paths;
    for (size_t i = 0; i < run.changed_paths.size() && i < 10; ++i)
      paths += (i ? ", " : "") + run.changed_paths[i];
    if (run.changed_paths.size() > 10) paths += " and " + std::to_string(run.changed_paths.size() - 10) + " more";
    std::printf("changed from the commit: %s\n", paths.c_str());
  }
  if (!run.message.empty()) std::printf("%s\n", run.message.c_str());
  std::printf("%s", FormatSummary(run, DetectViewOptions(false).color).c_str());
  return 0;
}

int CmdLogs(const GlobalFlags& g, int64_t id, const std::string& name, bool follow) {
  std::unique_ptr<RunStore> store;
  RunRecord run;
  Status s = LoadRun(g, id, &store, &run);
  std::vector<StepName> steps;
  if (s.ok()) s = MatchStep(run, name, &steps);
  if (!s.ok()) return Fail(s);
  for (const StepName& n : steps) {
    std::string path = StepLogPath(g.data, id, n.stage, n.step);
    std::string prefix = steps.size() > 1 || g.json ? n.stage + "/" + n.step : "";
    uint64_t offset = 0;
    for (;;) {
      PrintRecords(path, &offset, g.json, prefix);
      const StepRecord* rec = FindStep(run, n);
      if (!follow || rec == nullptr || Finished(rec->status) || Finished(run.status)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      if (!store->GetRun(id, &run).ok()) break;
    }
    PrintRecords(path, &offset, g.json, prefix);  // what arrived while it finished
  }
  return 0;
}

int CmdCancel(const GlobalFlags& g, int64_t id) {
  std::unique_ptr<RunStore> store;
  RunRecord run;
  Status s = LoadRun(g, id, &store, &run);
  if (!s.ok()) return Fail(s);
  if (Finished(run.status) && run.status != kWaiting)
    return Fail(Status::Invalid("run " + std::to_string(id) + " is not running (it is " + ToString(run.status) + ")"));
  // A run of `ladle serve` is cancelled by the server, which owns many.
  if (!run.trigger.empty()) return CancelOnServer(g, id);
  if (run.owner_pid <= 0 || ProcessStartTime(run.owner_pid) != run.owner_start)
    return Fail(Status::Invalid("run " + std::to_string(id) + " has no live owner; `ladle runs` marks it interrupted"));
  if (kill(run.owner_pid, SIGTERM) != 0)
    return Fail(Status::FromErrno("signal the ladle process " + std::to_string(run.owner_pid), errno));
  std::printf("cancelling run %lld (sent SIGTERM to ladle process %d)\n", static_cast<long long>(id), run.owner_pid);
  return 0;
}

}  // namespace ladle::runner
