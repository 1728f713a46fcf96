#include "runner/store/run_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>

#include "core/pg.h"
#include "runner/store/pg_run_store.h"
#include "runner/store/run_rows.h"
#include "runner/store/sqlite_run_store.h"

namespace ladle::runner {
namespace rows {

std::vector<std::string> PathsFromJson(const std::string& text) {
  std::vector<std::string> paths;
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_array()) return paths;
  for (const nlohmann::json& p : j)
    if (p.is_string() && paths.size() < kMaxChangedPaths) paths.push_back(p.get<std::string>());
  return paths;
}

std::string PathsToJson(const std::vector<std::string>& paths) {
  nlohmann::json j = nlohmann::json::array();
  for (size_t i = 0; i < paths.size() && i < kMaxChangedPaths; ++i) j.push_back(paths[i]);
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Empty strings are stored as NULL (times), so "" and "not set" are one thing.
std::optional<std::string> OrNull(const std::string& s) {
  return s.empty() ? std::nullopt : std::optional<std::string>(s);
}

// A step's failed tests as the JSON array stored in steps.failed_tests.
std::string FailedTestsText(const std::vector<FailedTest>& tests) {
  nlohmann::json array = nlohmann::json::array();
  for (const FailedTest& t : tests)
    array.push_back({{"suite", t.suite}, {"name", t.name}, {"message", t.message}});
  return array.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The column back; text that is not such an array (no ladle writes one)
// reads as no failed tests rather than failing the whole run's read.
std::vector<FailedTest> ParseFailedTests(const std::string& text) {
  std::vector<FailedTest> out;
  nlohmann::json array = nlohmann::json::parse(text, nullptr, false);
  if (!array.is_array()) return out;
  for (const nlohmann::json& t : array) {
    if (!t.is_object()) continue;
    FailedTest test;
    test.suite = t.value("suite", "");
    test.name = t.value("name", "");
    test.message = t.value("message", "");
    out.push_back(std::move(test));
  }
  return out;
}

// steps.matrix (docs/pipeline.md "Matrix"): ordered_json keeps the values
// in the order written.
std::string MatrixText(const StepRecord& step) {
  if (step.matrix_of.empty()) return "";
  nlohmann::ordered_json values = nlohmann::ordered_json::object();
  for (const auto& [key, value] : step.matrix_values) values[key] = value;
  nlohmann::ordered_json j = {{"of", step.matrix_of}, {"values", values}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The column back; anything else than such an object reads as no matrix.
void ParseMatrix(const std::string& text, StepRecord* step) {
  if (text.empty()) return;
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("of") || !j["of"].is_string()) return;
  step->matrix_of = j["of"].get<std::string>();
  if (!j.contains("values") || !j["values"].is_object()) return;
  for (const auto& [key, value] : j["values"].items())
    if (value.is_string()) step->matrix_values.emplace_back(key, value.get<std::string>());
}

// One counter of optional test counts, NULL when the stage has none.
std::optional<int> Count(const std::optional<TestCounts>& tests, int TestCounts::*field) {
  return tests ? std::optional<int>((*tests).*field) : std::nullopt;
}


bool OwnerAlive(int pid, int64_t start) {
  const int64_t now_start = ProcessStartTime(pid);
  return now_start != 0 && (start == 0 || now_start == start);
}

std::string SupersededMessage(const RunRecord& by) {
  return "superseded by run " + std::to_string(by.id) + " (a newer commit of " + by.branch + ")";
}

bool Supersedes(const RunRecord& run) {
  return run.rollback_environment.empty() && run.trigger != "rerun" &&
         run.trigger != "schedule" && run.trigger != "api" && run.trigger != "rollback";
}

}  // namespace rows

namespace {

// The fields of /proc/PID/stat after the command name, which may itself
// hold spaces and parentheses: only the last ')' ends it.
int64_t StartTimeFromStat(const std::string& stat) {
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  const char* p = stat.c_str() + paren + 1;
  // Field 3 (state) is the first after ')'; field 22 (starttime) the 20th.
  for (int field = 3; field <= 22; ++field) {
    while (*p == ' ') ++p;
    if (*p == '\0') return 0;
    if (field == 3 && (*p == 'Z' || *p == 'X')) return 0;  // a zombie is gone
    if (field == 22) return std::strtoll(p, nullptr, 10);
    while (*p != ' ' && *p != '\0') ++p;
  }
  return 0;
}

}  // namespace

int64_t ProcessStartTime(int pid) {
  if (pid <= 0) return 0;
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  std::string stat;
  char buf[1024];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) stat.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return StartTimeFromStat(stat);
}

RunStore::~RunStore() = default;

Status RunStore::UpdateSteps(int64_t run_id, const std::string& stage,
                             const std::vector<StepRecord>& steps) {
  for (const StepRecord& step : steps) {
    Status s = UpdateStep(run_id, stage, step);
    if (!s.ok()) return s;
  }
  return Status::OK();
}

Status RunStore::Open(const std::string& data_dir, std::unique_ptr<RunStore>* store) {
  return OpenSqliteRunStore(data_dir, store);
}

Status RunStore::OpenLocation(const std::string& location, const std::string& data_dir,
                              std::unique_ptr<RunStore>* store) {
  if (IsPostgresUri(location)) return OpenPgRunStore(location, data_dir, store);
  return OpenSqliteRunStore(data_dir, store);
}

// ---- JSON ----

namespace {

nlohmann::json OrJsonNull(const std::string& s) {
  return s.empty() ? nlohmann::json(nullptr) : nlohmann::json(s);
}

}  // namespace

std::string FailedTestLine(const FailedTest& test) {
  std::string name = test.name;
  if (name.empty()) name = test.suite;
  else if (!test.suite.empty() && name.compare(0, test.suite.size(), test.suite) != 0)
    name = test.suite + "." + name;
  return test.message.empty() ? name : name + ": " + test.message;
}

nlohmann::json StepToJson(const StepRecord& step) {
  nlohmann::json j = {
      {"name", step.name},
      {"status", step.status},
      {"exit_code", step.exit_code ? nlohmann::json(*step.exit_code) : nlohmann::json(nullptr)},
      {"attempts", step.attempts},
      {"started_at", OrJsonNull(step.started_at)},
      {"finished_at", OrJsonNull(step.finished_at)},
      {"failure_reason", step.failure_reason},
  };
  if (step.allow_failure) j["allow_failure"] = true;
  // docs/running.md "Tests by name": only a step whose reports had failures.
  if (!step.failed_tests.empty() || step.failed_tests_more > 0) {
    nlohmann::json failed = nlohmann::json::array();
    for (const FailedTest& t : step.failed_tests)
      failed.push_back({{"suite", t.suite}, {"name", t.name}, {"message", t.message}});
    j["failed_tests"] = failed;
    j["failed_tests_more"] = step.failed_tests_more;
  }
  // docs/backends.md "keep": the command that enters its kept container.
  if (!step.kept.empty()) j["kept"] = step.kept;
  // docs/design.md "JSON shapes": a matrix combination says which step it
  // belongs to, so a UI can group them.
  if (!step.matrix_of.empty()) {
    j["display"] = step.DisplayName();
    nlohmann::json values = nlohmann::json::object();
    for (const auto& [key, value] : step.matrix_values) values[key] = value;
    j["matrix"] = {{"of", step.matrix_of}, {"values", values}};
  }
  // StepRecord::plan: its needs, services and cache, as the pipeline said.
  if (!step.plan.empty()) {
    nlohmann::json plan = nlohmann::json::parse(step.plan, nullptr, false);
    if (plan.is_object()) {
      for (const char* key : {"needs", "services", "cache"})
        if (plan.contains(key)) j[key] = plan[key];
    }
  }
  return j;
}

std::string StepRecord::DisplayName() const {
  if (matrix_of.empty()) return name;
  std::string out = matrix_of + " [";
  for (size_t i = 0; i < matrix_values.size(); ++i)
    out += (i ? ", " : "") + matrix_values[i].first + "=" + matrix_values[i].second;
  return out + "]";
}

nlohmann::json StageToJson(const StageRecord& stage) {
  nlohmann::json tests = nullptr;
  if (stage.tests) {
    tests = {{"total", stage.tests->total},
             {"passed", stage.tests->passed},
             {"failed", stage.tests->failed},
             {"skipped", stage.tests->skipped}};
  }
  nlohmann::json steps = nlohmann::json::array();
  for (const StepRecord& step : stage.steps) steps.push_back(StepToJson(step));
  nlohmann::json j = {{"name", stage.name},
                      {"status", stage.status},
                      {"environment", OrJsonNull(stage.environment)},
                      {"tests", tests},
                      {"steps", steps}};
  if (!stage.message.empty()) j["message"] = stage.message;
  return j;
}

std::string ShortCommit(const std::string& commit, bool dirty) {
  if (commit.empty()) return dirty ? "+dirty" : "";
  return commit.substr(0, 7) + (dirty ? "+dirty" : "");
}

nlohmann::json RunToJson(const RunRecord& run) {
  nlohmann::json stages = nlohmann::json::array();
  for (const StageRecord& stage : run.stages) stages.push_back(StageToJson(stage));
  nlohmann::json j = {
      {"id", run.id},
      {"repo", run.repo},
      {"pipeline", run.pipeline},
      {"file", run.file},
      {"commit", run.commit},
      {"branch", run.branch},
      {"status", run.status},
      {"created_at", OrJsonNull(run.created_at)},
      {"started_at", OrJsonNull(run.started_at)},
      {"finished_at", OrJsonNull(run.finished_at)},
      {"stages", stages},
      {"deployment", run.deployment ? DeploymentToJson(*run.deployment) : nlohmann::json()},
      {"trigger", OrJsonNull(run.trigger)},
  };
  if (!run.message.empty()) j["message"] = run.message;
  if (!run.rollback_environment.empty()) j["rollback_environment"] = run.rollback_environment;
  if (run.source_run != 0) j["source_run"] = run.source_run;
  // docs/server.md "Triggers": the ref the run was taken from; a re-run's original.
  j["ref"] = OrJsonNull(run.ref);
  if (run.rerun_of != 0) j["rerun_of"] = run.rerun_of;
  // docs/server.md "Replicas": the replica that runs or ran it.
  if (!run.replica.empty()) j["replica"] = run.replica;
  // docs/running.md "Same inputs as CI".
  j["project"] = run.project;
  j["pipeline_path"] = run.pipeline_path;
  j["dirty"] = run.dirty;
  j["changed_paths"] = run.changed_paths;
  return j;
}

nlohmann::json RunSummaryToJson(const RunRecord& run) {
  nlohmann::json j = RunToJson(run);
  j.erase("stages");
  j.erase("deployment");
  return j;
}

nlohmann::json DeploymentToJson(const DeploymentRecord& d) {
  return {{"id", d.id},
          {"environment", d.environment},
          {"run_id", d.run_id},
          {"stage", d.stage},
          {"repo", d.repo},
          {"commit", d.commit},
          {"branch", d.branch},
          {"status", d.status},
          {"rollback", d.rollback},
          {"dirty", d.dirty},
          {"started_at", OrJsonNull(d.started_at)},
          {"finished_at", OrJsonNull(d.finished_at)}};
}

}  // namespace ladle::runner
