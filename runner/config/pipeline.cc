#include "runner/config/pipeline.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <tuple>

#include "runner/config/cron.h"
#include "runner/config/yaml_check.h"
#include "runner/config/yaml_file.h"
#include "runner/config/yaml_tree.h"
#include "runner/config/matrix.h"
#include "runner/config/stage_needs.h"

namespace ladle::runner {
namespace {

using Kind = YamlNode::Kind;
using Keys = std::vector<std::string_view>;

// How a pipeline file is read; the default limits bound what one may cost,
// whatever it holds.
constexpr YamlFileRules kRules = [] {
  YamlFileRules rules;
  rules.empty_message = "the file is empty; a pipeline needs at least 'name' and 'stages'";
  return rules;
}();

const Keys kPipelineKeys = {"name", "image", "env", "secrets", "on", "stages"};
const Keys kStageKeys = {"name",    "steps",      "env",     "image",    "cpus",   "memory",
                         "network", "privileged", "dns",     "volumes",  "gate",   "environment",
                         "when",    "approval",   "toggles", "rollback", "rollout",
                         "services"};
const Keys kStepKeys = {"name",  "run",       "image",   "env",        "workdir", "keep",
                        "needs", "artifacts", "reports", "timeout",    "retry",   "allow_failure",
                        "cpus",  "memory",    "network", "privileged", "dns",     "volumes",
                        "services", "cache",   "matrix"};
const Keys kOnKeys = {"push", "pull_request", "schedule"};
const Keys kPushKeys = {"branches", "tags"};
const Keys kPullRequestKeys = {"branches"};
const Keys kScheduleKeys = {"cron", "branch"};
constexpr std::size_t kMaxSchedules = 32;  // on.schedule entries
const Keys kGateKeys = {"min_tests"};
const Keys kWhenKeys = {"branch"};
const Keys kRunKeys = {"run"};
const Keys kRolloutKeys = {"toggle", "environment", "percent", "interval", "check"};
const Keys kReportsKeys = {"junit"};
const Keys kServiceKeys = {"name", "image", "env", "command", "port", "ready"};
const Keys kReadyKeys = {"command", "port", "timeout"};
const Keys kCacheKeys = {"paths", "key", "policy", "max_size"};
const Keys kCacheKeyKeys = {"files", "prefix"};
// docs/pipeline.md "Services": what one step may start beside it.
constexpr std::size_t kMaxServices = 16;

const char kProtectionHint[] =
    "no earlier stage has a 'gate' and the stage has no 'when': ladle exists to ship only "
    "what the tests let through";

// ---- Lexical rules -------------------------------------------------------

bool AllOf(std::string_view s, const char* allowed) {
  return s.find_first_not_of(allowed) == std::string_view::npos;
}

constexpr char kLowerDigits[] = "abcdefghijklmnopqrstuvwxyz0123456789";
constexpr char kLetters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
constexpr char kDigits[] = "0123456789";

// Stage and step names: [a-z0-9][a-z0-9_-]*, so they work in
// STAGE/STEP addresses, container names and URLs.
bool IsName(std::string_view s) {
  return !s.empty() && AllOf(s.substr(0, 1), kLowerDigits) &&
         AllOf(s, "abcdefghijklmnopqrstuvwxyz0123456789_-");
}

// Variable and secret names: [A-Za-z_][A-Za-z0-9_]*, what a shell accepts.
bool IsVariableName(std::string_view s) {
  std::string first = std::string(kLetters) + "_";
  return !s.empty() && AllOf(s.substr(0, 1), first.c_str()) && AllOf(s, (first + kDigits).c_str());
}

// Environment names end up in URLs (/api/v1/environments/ENV).
bool IsEnvironmentName(std::string_view s) {
  std::string alnum = std::string(kLetters) + kDigits;
  return !s.empty() && AllOf(s.substr(0, 1), alnum.c_str()) && AllOf(s, (alnum + "._-").c_str());
}

// Toggle keys as docs/design.md "Toggle model and evaluation" defines them.
bool IsToggleKey(std::string_view s) {
  std::string allowed = std::string(kLetters) + kDigits + "._-";
  return !s.empty() && s.size() <= 128 && AllOf(s, allowed.c_str());
}

bool IsBlank(std::string_view s) { return AllOf(s, " \t\r\n"); }

// Docker's --cpus: a positive decimal such as 2, 1.5 or .5.
bool IsCpus(std::string_view s) {
  std::size_t dot = s.find('.');
  std::string_view whole = s.substr(0, dot);
  std::string_view fraction = dot == std::string_view::npos ? "" : s.substr(dot + 1);
  bool digits =
      AllOf(whole, kDigits) && AllOf(fraction, kDigits) && whole.size() + fraction.size() > 0;
  return digits && (dot == std::string_view::npos || !fraction.empty()) &&
         s.find_first_of("123456789") != std::string_view::npos;
}

// Docker's --memory: bytes, or a number with b, k, m or g.
bool IsMemory(std::string_view s) {
  if (!s.empty() && std::string_view("bkmgBKMG").find(s.back()) != std::string_view::npos)
    s.remove_suffix(1);
  return !s.empty() && AllOf(s, kDigits) && s.find_first_not_of('0') != std::string_view::npos;
}

bool IsIpAddress(const std::string& s) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// HOST:CONTAINER[:ro|:rw], with an absolute CONTAINER path.
bool IsVolume(std::string_view s) {
  std::size_t first = s.find(':');
  if (first == 0 || first == std::string_view::npos) return false;
  std::string_view rest = s.substr(first + 1);
  std::size_t second = rest.find(':');
  std::string_view container = rest.substr(0, second);
  if (container.size() < 1 || container[0] != '/') return false;
  if (second == std::string_view::npos) return true;
  std::string_view mode = rest.substr(second + 1);
  return mode == "ro" || mode == "rw";
}

// "" when `path` is relative and stays inside the workspace, else the problem.
std::string PathProblem(std::string_view path) {
  if (path.empty()) return "must not be empty";
  if (path[0] == '/') return "must be a relative path";
  int depth = 0;
  for (std::size_t start = 0; start <= path.size();) {
    std::size_t end = std::min(path.find('/', start), path.size());
    std::string_view part = path.substr(start, end - start);
    if (part == "..") {
      if (--depth < 0) return "must stay inside the workspace";
    } else if (!part.empty() && part != ".") {
      ++depth;
    }
    start = end + 1;
  }
  return "";
}

std::string Ordinal(std::size_t index) { return "#" + std::to_string(index + 1); }

// The name a map gives itself, read without checks, to label messages about
// it before it has been validated.
std::string PeekName(const YamlNode& node) {
  for (const auto& [key, value] : node.pairs())
    if (key->kind == Kind::kScalar && key->value() == "name" && value->kind == Kind::kScalar)
      return value->value();
  return "";
}

// ---- Container settings ---------------------------------------------------

// Container settings as written on a stage or a step; unset fields of a
// step fall through to its stage.
struct ResourceSpec {
  std::optional<std::string> cpus, memory, network;
  std::optional<bool> privileged;
  std::optional<std::vector<std::string>> dns, volumes;
};

env::Resources Effective(const ResourceSpec& step, const ResourceSpec& stage) {
  env::Resources r;
  r.cpus = step.cpus.value_or(stage.cpus.value_or(""));
  r.memory = step.memory.value_or(stage.memory.value_or(""));
  r.network = step.network.value_or(stage.network.value_or(""));
  r.privileged = step.privileged.value_or(stage.privileged.value_or(false));
  r.dns = step.dns.value_or(stage.dns.value_or(std::vector<std::string>{}));
  r.volumes = step.volumes.value_or(stage.volumes.value_or(std::vector<std::string>{}));
  return r;
}

// What a stage hands down to its steps.
struct StepDefaults {
  std::string image;  // the stage's, else the pipeline's
  ResourceSpec resources;
  std::vector<env::ServiceSpec> services;  // the stage's
};

// Where things are, for the checks that run once the model is built.
struct StageMarks {
  std::string label;  // "stage 'deploy'", "stage #3"
  Location environment;
  std::vector<std::vector<const YamlNode*>> needs;  // per step: its `needs` entries
};

using NeedsGraph = std::vector<std::vector<std::pair<std::size_t, const YamlNode*>>>;

// Reads a YamlDocument into a Pipeline against the schema of docs/pipeline.md.
// Reading goes on after a problem, so one pass reports them all.
class PipelineReader {
 public:
  explicit PipelineReader(YamlChecker* checker) : c_(*checker) {}

  void Read(const YamlNode& root, Pipeline* p);

 private:
  // Pipeline level.
  void ReadOn(const YamlNode& node, Pipeline* p);
  void ReadSchedules(const YamlNode& node, Pipeline* p);
  void ReadSecrets(const YamlNode& node, std::vector<std::string>* secrets);
  void ReadStages(const YamlNode& node, Pipeline* p);
  // Stage level.
  void ReadStage(const YamlNode& node, std::size_t index, const Pipeline& p, Stage* stage);
  void ReadStageOptions(const YamlMap& m, const std::string& label, Stage* stage);
  void ReadApproval(const YamlNode& node, Stage* stage);
  void ReadGate(const YamlNode& node, const std::string& label, Stage* stage);
  void ReadWhen(const YamlNode& node, const std::string& label, Stage* stage);
  void ReadRollback(const YamlNode& node, const std::string& label, Stage* stage);
  void ReadRollout(const YamlNode& node, const std::string& label, Stage* stage);
  void ReadRolloutFields(const YamlMap& m, const YamlNode& node, const std::string& where,
                         Rollout* rollout);
  void ReadPercents(const YamlNode& node, Rollout* rollout);
  void ReadSteps(const YamlMap& m, const YamlNode& node, const std::string& label,
                 const StepDefaults& defaults, Stage* stage);
  // Step level.
  void ReadStep(const YamlNode& node, std::size_t index, const std::string& stage_label,
                const StepDefaults& defaults, Step* step, std::vector<const YamlNode*>* needs);
  void ReadStepOptions(const YamlMap& m, const std::string& label, Step* step);
  void ReadReports(const YamlNode& node, const std::string& label, Step* step);
  // docs/pipeline.md "Services" and "Caches".
  void ReadServices(const YamlNode& node, const std::string& label,
                    std::vector<env::ServiceSpec>* services);
  void ReadService(const YamlNode& node, std::size_t index, const std::string& label,
                   env::ServiceSpec* service);
  void ReadReady(const YamlNode& node, const std::string& where, env::ServiceSpec* service);
  void ReadCache(const YamlNode& node, const std::string& label, Step* step);
  void ReadCacheKey(const YamlNode& node, const std::string& where, Cache* cache);
  ResourceSpec ReadResources(const YamlMap& m);
  void ReadResourceLists(const YamlMap& m, ResourceSpec* spec);
  // Values.
  void ReadName(const YamlMap& m, const YamlNode& node, const char* kind, const std::string& label,
                std::string* name);
  void ReadVars(const YamlNode& node, Vars* vars);
  bool ReadRun(const YamlNode& node, std::string_view what, std::string* run);
  bool ReadStrings(const YamlNode& node, std::string_view what, bool single_ok,
                   std::vector<std::string>* out, std::vector<const YamlNode*>* nodes = nullptr);
  void ReadPaths(const YamlNode& node, std::string_view what, bool single_ok,
                 std::vector<std::string>* out);
  bool ReadPath(const YamlNode& node, std::string_view what, std::string* out);
  bool ReadDuration(const YamlNode& node, std::string_view what, std::chrono::milliseconds* out);
  bool ReadNonEmpty(const YamlNode& node, std::string_view what, std::string* out);
  bool ReadMatching(const YamlNode& node, std::string_view what, bool (*ok)(std::string_view),
                    const std::string& rule, std::string* out);
  bool SubMap(const YamlNode& node, std::string_view what, const std::string& where,
              const Keys& known, YamlMap* out);
  // Checks across fields.
  void CheckNeeds(const Stage& stage, const StageMarks& marks, const std::string& label);
  void CheckCycles(const Stage& stage, const NeedsGraph& graph, const std::string& label);
  void ReportCycle(const Stage& stage, const NeedsGraph& graph,
                   std::vector<std::pair<std::size_t, std::size_t>> cycle,
                   const std::string& label);
  void Warn(const Pipeline& p);

  YamlChecker& c_;
  std::vector<StageMarks> marks_;  // parallel to Pipeline::stages
};

// ---- Pipeline -------------------------------------------------------------

void PipelineReader::Read(const YamlNode& root, Pipeline* p) {
  if (root.kind != Kind::kMap) {
    c_.Error(root.location,
             "the top level must be a map with 'name' and 'stages', got " + DescribeYaml(root));
    return;
  }
  YamlMap m = c_.Map(root, "at the top level", kPipelineKeys, YamlKeys::kKnownAndHidden);
  if (const YamlNode* v = m.Get("name"))
    ReadNonEmpty(*v, "'name'", &p->name);
  else
    c_.Error(root.location, "missing required key 'name' at the top level");
  if (const YamlNode* v = m.Get("image")) ReadNonEmpty(*v, "'image'", &p->image);
  if (const YamlNode* v = m.Get("env")) ReadVars(*v, &p->env);
  if (const YamlNode* v = m.Get("secrets")) ReadSecrets(*v, &p->secrets);
  if (const YamlNode* v = m.Get("on")) ReadOn(*v, p);
  if (const YamlNode* v = m.Get("stages"))
    ReadStages(*v, p);
  else
    c_.Error(root.location, "missing required key 'stages' at the top level");
  Warn(*p);
}

// docs/pipeline.md "Triggers".
void PipelineReader::ReadOn(const YamlNode& node, Pipeline* p) {
  YamlMap on, push, pr;
  if (!SubMap(node, "'on'", "in 'on'", kOnKeys, &on)) return;
  p->on_push = on.Get("push") != nullptr;
  // `push:` or `pull_request:` with no value: every branch.
  if (const YamlNode* v = on.Get("push"); v && v->kind != Kind::kNull &&
                                          SubMap(*v, "'on.push'", "in 'on.push'", kPushKeys, &push)) {
    if (const YamlNode* b = push.Get("branches"))
      ReadStrings(*b, "'on.push.branches'", false, &p->push_branches);
    if (const YamlNode* t = push.Get("tags")) ReadStrings(*t, "'on.push.tags'", false, &p->push_tags);
  }
  if (const YamlNode* v = on.Get("pull_request")) {
    p->on_pull_request = true;
    if (v->kind != Kind::kNull &&
        SubMap(*v, "'on.pull_request'", "in 'on.pull_request'", kPullRequestKeys, &pr)) {
      if (const YamlNode* b = pr.Get("branches"))
        ReadStrings(*b, "'on.pull_request.branches'", false, &p->pull_request_branches);
    }
  }
  if (const YamlNode* v = on.Get("schedule")) ReadSchedules(*v, p);
}

void PipelineReader::ReadSchedules(const YamlNode& node, Pipeline* p) {
  std::vector<const YamlNode*> items;
  if (!c_.Items(node, "'on.schedule'", false, &items)) return;
  if (items.size() > kMaxSchedules)
    c_.Error(node.location, "'on.schedule' lists " + std::to_string(items.size()) +
                                " entries; at most " + std::to_string(kMaxSchedules));
  for (std::size_t i = 0; i < items.size() && i < kMaxSchedules; ++i) {
    const std::string what = "'on.schedule' entry " + Ordinal(i);
    YamlMap m;
    if (!SubMap(*items[i], what, "in " + what, kScheduleKeys, &m)) continue;
    ScheduleTrigger trigger;
    trigger.location = items[i]->location;
    bool ok = true;
    if (const YamlNode* v = m.Get("cron")) {
      ok &= c_.String(*v, what + ": 'cron'", &trigger.cron);
      CronSchedule cron;
      std::string error;
      if (ok && !ParseCron(trigger.cron, &cron, &error)) {
        c_.Error(v->location, what + ": 'cron' " + Quote(trigger.cron) +
                                  " is not a cron expression: " + error);
        ok = false;
      }
    } else {
      c_.Error(items[i]->location, "missing required key 'cron' in " + what);
      ok = false;
    }
    if (const YamlNode* v = m.Get("branch")) {
      ok &= ReadNonEmpty(*v, what + ": 'branch'", &trigger.branch);
    } else {
      c_.Error(items[i]->location, "missing required key 'branch' in " + what);
      ok = false;
    }
    if (ok) p->schedules.push_back(std::move(trigger));
  }
}

void PipelineReader::ReadSecrets(const YamlNode& node, std::vector<std::string>* secrets) {
  std::vector<const YamlNode*> nodes;
  ReadStrings(node, "'secrets'", false, secrets, &nodes);
  std::set<std::string> seen;
  for (std::size_t i = 0; i < secrets->size(); ++i) {
    const std::string& name = (*secrets)[i];
    if (!IsVariableName(name))
      c_.Error(nodes[i]->location, "invalid secret name " + Quote(name) +
                                       ": use letters, digits and '_', not starting with a digit");
    else if (!seen.insert(name).second)
      c_.Error(nodes[i]->location, "duplicate secret " + Quote(name));
  }
}

void PipelineReader::ReadStages(const YamlNode& node, Pipeline* p) {
  std::vector<const YamlNode*> items;
  if (!c_.Items(node, "'stages'", false, &items)) return;
  if (items.empty()) c_.Error(node.location, "'stages' must list at least one stage");
  std::map<std::string, int> first_line;
  for (std::size_t i = 0; i < items.size(); ++i) {
    Stage& stage = p->stages.emplace_back();
    marks_.emplace_back();
    ReadStage(*items[i], i, *p, &stage);
    if (stage.name.empty()) continue;
    auto [first, fresh] = first_line.emplace(stage.name, stage.location.line);
    if (!fresh)
      c_.Error(stage.location, "duplicate stage name " + Quote(stage.name) + " (first at line " +
                                   std::to_string(first->second) + ")");
  }
  // docs/pipeline.md "needs across stages", then "Matrix": needs are checked
  // by the names as written, before the matrices are expanded.
  NeedsLocations at(marks_.size());
  for (std::size_t i = 0; i < marks_.size(); ++i)
    for (const auto& entries : marks_[i].needs) {
      auto& step = at[i].emplace_back();
      for (const YamlNode* entry : entries) step.push_back(entry->location);
    }
  CheckNeedsAcrossStages(*p, at, &c_);
  ExpandMatrices(p, &c_);
}

// ---- Stage ----------------------------------------------------------------

void PipelineReader::ReadStage(const YamlNode& node, std::size_t index, const Pipeline& p,
                               Stage* stage) {
  stage->location = node.location;
  if (!c_.Expect(node, Kind::kMap, "each entry of 'stages'")) return;
  std::string peeked = PeekName(node);
  std::string label = "stage " + (peeked.empty() ? Ordinal(index) : Quote(peeked));
  marks_.back().label = label;
  YamlMap m = c_.Map(node, "in " + label, kStageKeys);
  ReadName(m, node, "stage", label, &stage->name);
  if (const YamlNode* v = m.Get("env")) ReadVars(*v, &stage->env);
  ReadStageOptions(m, label, stage);
  StepDefaults defaults{p.image, ReadResources(m), {}};
  if (const YamlNode* v = m.Get("image")) ReadNonEmpty(*v, "'image'", &defaults.image);
  if (const YamlNode* v = m.Get("services")) ReadServices(*v, label, &defaults.services);
  ReadSteps(m, node, label, defaults, stage);
}

void PipelineReader::ReadStageOptions(const YamlMap& m, const std::string& label, Stage* stage) {
  if (const YamlNode* v = m.Get("gate")) ReadGate(*v, label, stage);
  if (const YamlNode* v = m.Get("environment")) {
    ReadMatching(*v, "'environment'", IsEnvironmentName,
                 "letters, digits, '.', '_' and '-', starting with a letter or digit",
                 &stage->environment);
    marks_.back().environment = v->location;
  }
  if (const YamlNode* v = m.Get("when")) ReadWhen(*v, label, stage);
  if (const YamlNode* v = m.Get("approval")) ReadApproval(*v, stage);
  if (const YamlNode* v = m.Get("toggles")) ReadPath(*v, "'toggles'", &stage->toggles_file);
  if (const YamlNode* v = m.Get("rollback")) {
    ReadRollback(*v, label, stage);
    if (!m.Get("environment"))
      c_.Error(m.Find("rollback")->key_node->location,
               "'rollback' needs an 'environment' in " + label +
                   ": only a deployment can be rolled back");
  }
  if (const YamlNode* v = m.Get("rollout")) {
    ReadRollout(*v, label, stage);
    if (stage->rollout) stage->rollout->location = m.Find("rollout")->key_node->location;
  }
}

void PipelineReader::ReadApproval(const YamlNode& node, Stage* stage) {
  std::string approval;
  if (c_.String(node, "'approval'", &approval) && approval != "manual")
    c_.Error(node.location, "'approval' must be 'manual', got " + DescribeYaml(node));
  stage->manual_approval = approval == "manual";
}

void PipelineReader::ReadGate(const YamlNode& node, const std::string& label, Stage* stage) {
  YamlMap m;
  if (!SubMap(node, "'gate'", "in 'gate' of " + label, kGateKeys, &m)) return;
  stage->gate.emplace();
  if (const YamlNode* v = m.Get("min_tests"))
    c_.Int(*v, "'gate.min_tests'", 0, YamlChecker::kNoMax, &stage->gate->min_tests);
}

void PipelineReader::ReadWhen(const YamlNode& node, const std::string& label, Stage* stage) {
  YamlMap m;
  if (!SubMap(node, "'when'", "in 'when' of " + label, kWhenKeys, &m)) return;
  const YamlNode* branch = m.Get("branch");
  if (!branch) {
    c_.Error(node.location, "missing required key 'branch' in 'when' of " + label);
  } else if (ReadStrings(*branch, "'when.branch'", true, &stage->when_branches) &&
             stage->when_branches.empty()) {
    c_.Error(branch->location, "'when.branch' must list at least one branch glob");
  }
}

void PipelineReader::ReadRollback(const YamlNode& node, const std::string& label, Stage* stage) {
  YamlMap m;
  if (!SubMap(node, "'rollback'", "in 'rollback' of " + label, kRunKeys, &m)) return;
  if (const YamlNode* v = m.Get("run"))
    ReadRun(*v, "'rollback.run'", &stage->rollback);
  else
    c_.Error(node.location, "missing required key 'run' in 'rollback' of " + label);
}

void PipelineReader::ReadRollout(const YamlNode& node, const std::string& label, Stage* stage) {
  YamlMap m;
  std::string where = "in 'rollout' of " + label;
  if (!SubMap(node, "'rollout'", where, kRolloutKeys, &m)) return;
  Rollout& rollout = stage->rollout.emplace();
  rollout.location = node.location;
  for (const char* key : {"toggle", "environment", "percent"})
    if (!m.Get(key))
      c_.Error(node.location, "missing required key '" + std::string(key) + "' " + where);
  ReadRolloutFields(m, node, where, &rollout);
}

void PipelineReader::ReadRolloutFields(const YamlMap& m, const YamlNode& node,
                                       const std::string& where, Rollout* rollout) {
  if (const YamlNode* v = m.Get("toggle"))
    ReadMatching(*v, "'rollout.toggle'", IsToggleKey,
                 "letters, digits, '.', '_' and '-', up to 128 characters", &rollout->toggle);
  if (const YamlNode* v = m.Get("environment"))
    ReadMatching(*v, "'rollout.environment'", IsEnvironmentName,
                 "letters, digits, '.', '_' and '-', starting with a letter or digit",
                 &rollout->environment);
  if (const YamlNode* v = m.Get("percent")) ReadPercents(*v, rollout);
  if (const YamlNode* v = m.Get("interval"))
    ReadDuration(*v, "'rollout.interval'", &rollout->interval);
  else if (rollout->percent.size() > 1)
    c_.Error(node.location,
             "missing required key 'interval' " + where + ": the wait between two percentages");
  YamlMap check;
  const YamlNode* v = m.Get("check");
  if (v && SubMap(*v, "'rollout.check'", "in 'rollout.check'", kRunKeys, &check)) {
    if (const YamlNode* run = check.Get("run"))
      ReadRun(*run, "'rollout.check.run'", &rollout->check);
    else
      c_.Error(v->location, "missing required key 'run' in 'rollout.check'");
  }
}

void PipelineReader::ReadPercents(const YamlNode& node, Rollout* rollout) {
  std::vector<const YamlNode*> items;
  if (!c_.Items(node, "'rollout.percent'", false, &items)) return;
  if (items.empty()) c_.Error(node.location, "'rollout.percent' must list at least one percentage");
  for (const YamlNode* item : items) {
    int percent;
    if (!c_.Int(*item, "'rollout.percent' entries", 1, 100, &percent)) continue;
    if (!rollout->percent.empty() && percent <= rollout->percent.back()) {
      c_.Error(item->location, "'rollout.percent' must increase: " + std::to_string(percent) +
                                   " comes after " + std::to_string(rollout->percent.back()));
      continue;
    }
    rollout->percent.push_back(percent);
  }
}

void PipelineReader::ReadSteps(const YamlMap& m, const YamlNode& node, const std::string& label,
                               const StepDefaults& defaults, Stage* stage) {
  const YamlNode* steps = m.Get("steps");
  std::vector<const YamlNode*> items;
  if (steps && !c_.Items(*steps, "'steps'", false, &items)) return;
  if (items.empty() && !stage->rollout)
    c_.Error(steps ? steps->location : node.location,
             label + " has no steps; only a 'rollout' stage may have none");
  std::map<std::string, int> first_line;
  for (std::size_t i = 0; i < items.size(); ++i) {
    Step& step = stage->steps.emplace_back();
    ReadStep(*items[i], i, label, defaults, &step, &marks_.back().needs.emplace_back());
    if (step.name.empty()) continue;
    auto [first, fresh] = first_line.emplace(step.name, step.location.line);
    if (!fresh)
      c_.Error(step.location, "duplicate step name " + Quote(step.name) + " in " + label +
                                  " (first at line " + std::to_string(first->second) + ")");
  }
  NormalizeOwnStageNeeds(stage);  // "test/unit" in stage 'test' is "unit"
  CheckNeeds(*stage, marks_.back(), label);
}

// ---- Step -----------------------------------------------------------------

void PipelineReader::ReadStep(const YamlNode& node, std::size_t index,
                              const std::string& stage_label, const StepDefaults& defaults,
                              Step* step, std::vector<const YamlNode*>* needs) {
  step->location = node.location;
  if (!c_.Expect(node, Kind::kMap, "each entry of 'steps'")) return;
  std::string peeked = PeekName(node);
  std::string label =
      peeked.empty() ? "step " + Ordinal(index) + " of " + stage_label : "step " + Quote(peeked);
  YamlMap m = c_.Map(node, "in " + label, kStepKeys);
  ReadName(m, node, "step", label, &step->name);
  if (const YamlNode* v = m.Get("run"))
    ReadRun(*v, "'run'", &step->run);
  else
    c_.Error(node.location, "missing required key 'run' in " + label);
  step->image = defaults.image;
  if (const YamlNode* v = m.Get("image")) ReadNonEmpty(*v, "'image'", &step->image);
  if (const YamlNode* v = m.Get("needs")) ReadStrings(*v, "'needs'", false, &step->needs, needs);
  step->resources = Effective(ReadResources(m), defaults.resources);
  ReadStepOptions(m, label, step);
  step->services = defaults.services;
  if (const YamlNode* v = m.Get("services")) {
    step->services.clear();
    ReadServices(*v, label, &step->services);
  }
  // The local backend cannot run them: an imageless step would run there.
  if (!step->services.empty() && step->image.empty())
    c_.Error(m.Get("services") ? m.Find("services")->key_node->location : node.location,
             label + " has services but no image: services need the docker backend (set "
                     "image: on the step, its stage or the pipeline)");
  if (const YamlNode* v = m.Get("cache")) ReadCache(*v, label, step);
  if (const YamlNode* v = m.Get("matrix")) ReadMatrix(*v, label, &c_, step);  // runner/config/matrix.h
}

void PipelineReader::ReadStepOptions(const YamlMap& m, const std::string& label, Step* step) {
  if (const YamlNode* v = m.Get("env")) ReadVars(*v, &step->env);
  if (const YamlNode* v = m.Get("workdir")) ReadPath(*v, "'workdir'", &step->workdir);
  if (const YamlNode* v = m.Get("keep")) {
    if (c_.String(*v, "'keep'", &step->keep) && step->keep != "never" &&
        step->keep != "on-failure" && step->keep != "always")
      c_.Error(v->location,
               "'keep' must be 'never', 'on-failure' or 'always', got " + DescribeYaml(*v));
  }
  if (const YamlNode* v = m.Get("artifacts")) ReadPaths(*v, "'artifacts'", false, &step->artifacts);
  if (const YamlNode* v = m.Get("reports")) ReadReports(*v, label, step);
  if (const YamlNode* v = m.Get("timeout")) {
    if (ReadDuration(*v, "'timeout'", &step->timeout) && step->timeout.count() <= 0)
      c_.Error(v->location, "'timeout' must be longer than 0");
  }
  if (const YamlNode* v = m.Get("retry")) c_.Int(*v, "'retry'", 0, 10, &step->retry);
  if (const YamlNode* v = m.Get("allow_failure"))
    c_.Bool(*v, "'allow_failure'", &step->allow_failure);
}

void PipelineReader::ReadReports(const YamlNode& node, const std::string& label, Step* step) {
  YamlMap m;
  if (!SubMap(node, "'reports'", "in 'reports' of " + label, kReportsKeys, &m)) return;
  if (const YamlNode* v = m.Get("junit")) ReadPaths(*v, "'reports.junit'", true, &step->junit);
}

// ---- Services and caches -----------------------------------------------

void PipelineReader::ReadServices(const YamlNode& node, const std::string& label,
                                  std::vector<env::ServiceSpec>* services) {
  std::vector<const YamlNode*> items;
  if (!c_.Items(node, "'services'", false, &items)) return;
  if (items.size() > kMaxServices)
    c_.Error(node.location, "'services' of " + label + " lists " + std::to_string(items.size()) +
                                " services; at most " + std::to_string(kMaxServices));
  std::map<std::string, int> names;   // name -> line
  std::map<int, std::string> ports;   // port -> service name
  for (std::size_t i = 0; i < items.size() && i < kMaxServices; ++i) {
    env::ServiceSpec service;
    ReadService(*items[i], i, label, &service);
    if (service.name.empty()) continue;
    const int line = items[i]->location.line;
    if (auto [first, fresh] = names.emplace(service.name, line); !fresh)
      c_.Error(items[i]->location, "duplicate service name " + Quote(service.name) + " in " +
                                       label + " (first at line " +
                                       std::to_string(first->second) + ")");
    // One network namespace: two services cannot listen on one port.
    for (int port : {service.port, service.ready_port != service.port ? service.ready_port : 0}) {
      if (port == 0) continue;
      if (auto [first, fresh] = ports.emplace(port, service.name); !fresh)
        c_.Error(items[i]->location,
                 "services " + Quote(first->second) + " and " + Quote(service.name) + " of " +
                     label + " both use port " + std::to_string(port) +
                     ": they share one network namespace with the step");
    }
    services->push_back(std::move(service));
  }
}

void PipelineReader::ReadService(const YamlNode& node, std::size_t index,
                                 const std::string& label, env::ServiceSpec* service) {
  if (!c_.Expect(node, Kind::kMap, "each entry of 'services'")) return;
  std::string peeked = PeekName(node);
  std::string where = "in service " + (peeked.empty() ? Ordinal(index) : Quote(peeked)) +
                      " of " + label;
  YamlMap m = c_.Map(node, where, kServiceKeys);
  if (const YamlNode* v = m.Get("name"))
    ReadMatching(*v, "'services.name'", IsName,
                 "lowercase letters, digits, '-' and '_', starting with a letter or digit",
                 &service->name);
  else
    c_.Error(node.location, "missing required key 'name' " + where);
  if (const YamlNode* v = m.Get("image"))
    ReadNonEmpty(*v, "'services.image'", &service->image);
  else
    c_.Error(node.location, "missing required key 'image' " + where);
  if (const YamlNode* v = m.Get("env")) {
    Vars vars;
    ReadVars(*v, &vars);
    service->env.assign(vars.begin(), vars.end());
  }
  if (const YamlNode* v = m.Get("command")) {
    service->shell = v->kind == Kind::kScalar;
    if (service->shell) {
      std::string command;
      if (ReadRun(*v, "'services.command'", &command)) service->command = {command};
    } else {
      ReadStrings(*v, "'services.command'", false, &service->command);
    }
  }
  if (const YamlNode* v = m.Get("port")) c_.Int(*v, "'services.port'", 1, 65535, &service->port);
  service->ready_port = service->port;
  if (const YamlNode* v = m.Get("ready")) ReadReady(*v, where, service);
}

void PipelineReader::ReadReady(const YamlNode& node, const std::string& where,
                               env::ServiceSpec* service) {
  YamlMap m;
  if (!SubMap(node, "'services.ready'", "in 'ready' " + where.substr(3), kReadyKeys, &m)) return;
  const YamlNode* command = m.Get("command");
  const YamlNode* port = m.Get("port");
  if (command && port)
    c_.Error(port->location, "'ready' takes 'command' or 'port', not both");
  if (command) {
    ReadRun(*command, "'services.ready.command'", &service->ready_command);
    service->ready_port = 0;
  }
  if (port) c_.Int(*port, "'services.ready.port'", 1, 65535, &service->ready_port);
  if (!command && !port && service->port == 0)
    c_.Error(node.location, "'ready' needs a 'command' or a 'port' " + where);
  if (const YamlNode* v = m.Get("timeout")) {
    if (ReadDuration(*v, "'services.ready.timeout'", &service->ready_timeout) &&
        service->ready_timeout.count() <= 0)
      c_.Error(v->location, "'services.ready.timeout' must be longer than 0");
  }
}

// "512m", "1g", "1048576": docker's sizes, binary units.
bool ParseSize(const std::string& text, long long* bytes) {
  if (!IsMemory(text)) return false;
  long long unit = 1;
  std::string digits = text;
  switch (std::tolower(static_cast<unsigned char>(digits.back()))) {
    case 'g': unit <<= 10; [[fallthrough]];
    case 'm': unit <<= 10; [[fallthrough]];
    case 'k': unit <<= 10; [[fallthrough]];
    case 'b': digits.pop_back(); break;
    default: break;
  }
  if (digits.size() > 12) return false;
  *bytes = std::stoll(digits) * unit;
  return true;
}

void PipelineReader::ReadCache(const YamlNode& node, const std::string& label, Step* step) {
  YamlMap m;
  const std::string where = "in 'cache' of " + label;
  if (!SubMap(node, "'cache'", where, kCacheKeys, &m)) return;
  Cache& cache = step->cache.emplace();
  cache.location = node.location;
  if (const YamlNode* v = m.Get("paths")) {
    ReadPaths(*v, "'cache.paths'", true, &cache.paths);
    if (v->kind == Kind::kList && v->items().empty())
      c_.Error(v->location, "'cache.paths' must list at least one path");
  } else {
    c_.Error(node.location, "missing required key 'paths' " + where +
                                ": the files to keep, relative to the workspace");
  }
  if (const YamlNode* v = m.Get("key"))
    ReadCacheKey(*v, where, &cache);
  else
    c_.Error(node.location, "missing required key 'key' " + where +
                                ": a string like ${LADLE_BRANCH}, or files: [LOCK FILES]");
  if (const YamlNode* v = m.Get("policy")) {
    if (c_.String(*v, "'cache.policy'", &cache.policy) && cache.policy != "pull" &&
        cache.policy != "push" && cache.policy != "pull-push")
      c_.Error(v->location, "'cache.policy' must be 'pull', 'push' or 'pull-push', got " +
                                DescribeYaml(*v) +
                                DidYouMean(cache.policy, {"pull", "push", "pull-push"}));
  }
  if (const YamlNode* v = m.Get("max_size"))
    c_.Scalar(*v, "'cache.max_size'", "a size like 512m or 2g (b, k, m, g)",
              [&cache](const std::string& s) { return ParseSize(s, &cache.max_size); });
}

void PipelineReader::ReadCacheKey(const YamlNode& node, const std::string& where, Cache* cache) {
  if (node.kind == Kind::kScalar) {
    ReadNonEmpty(node, "'cache.key'", &cache->key);
    return;
  }
  YamlMap m;
  if (!SubMap(node, "'cache.key'", "in 'cache.key' " + where.substr(3), kCacheKeyKeys, &m))
    return;
  if (const YamlNode* v = m.Get("files")) {
    ReadPaths(*v, "'cache.key.files'", false, &cache->key_files);
    if (v->kind == Kind::kList && v->items().empty())
      c_.Error(v->location, "'cache.key.files' must list at least one file");
  } else {
    c_.Error(node.location, "missing required key 'files' in 'cache.key' " + where.substr(3));
  }
  if (const YamlNode* v = m.Get("prefix")) ReadNonEmpty(*v, "'cache.key.prefix'", &cache->key_prefix);
}

ResourceSpec PipelineReader::ReadResources(const YamlMap& m) {
  ResourceSpec spec;
  std::string text;
  if (const YamlNode* v = m.Get("cpus"))
    if (ReadMatching(*v, "'cpus'", IsCpus, "a positive number like 1.5", &text)) spec.cpus = text;
  if (const YamlNode* v = m.Get("memory"))
    if (ReadMatching(*v, "'memory'", IsMemory, "a size like 512m or 2g (b, k, m, g)", &text))
      spec.memory = text;
  if (const YamlNode* v = m.Get("network"))
    if (ReadNonEmpty(*v, "'network'", &text)) spec.network = text;
  bool privileged;
  if (const YamlNode* v = m.Get("privileged"))
    if (c_.Bool(*v, "'privileged'", &privileged)) spec.privileged = privileged;
  ReadResourceLists(m, &spec);
  return spec;
}

void PipelineReader::ReadResourceLists(const YamlMap& m, ResourceSpec* spec) {
  std::vector<std::string> values;
  std::vector<const YamlNode*> nodes;
  if (const YamlNode* v = m.Get("dns"); v && ReadStrings(*v, "'dns'", false, &values, &nodes)) {
    for (std::size_t i = 0; i < values.size(); ++i)
      if (!IsIpAddress(values[i]))
        c_.Error(nodes[i]->location, "'dns' entries must be IP addresses, got " + Quote(values[i]));
    spec->dns = values;
  }
  values.clear();
  nodes.clear();
  if (const YamlNode* v = m.Get("volumes");
      v && ReadStrings(*v, "'volumes'", false, &values, &nodes)) {
    for (std::size_t i = 0; i < values.size(); ++i)
      if (!IsVolume(values[i]))
        c_.Error(nodes[i]->location,
                 "'volumes' entries must be HOST:CONTAINER[:ro|:rw] with an "
                 "absolute CONTAINER path, got " +
                     Quote(values[i]));
    spec->volumes = values;
  }
}

// ---- Values ---------------------------------------------------------------

void PipelineReader::ReadName(const YamlMap& m, const YamlNode& node, const char* kind,
                              const std::string& label, std::string* name) {
  const YamlNode* v = m.Get("name");
  if (!v) {
    c_.Error(node.location, "missing required key 'name' in " + label);
    return;
  }
  std::string text;
  if (!c_.String(*v, "'name'", &text)) return;
  if (IsName(text)) {
    *name = text;
    return;
  }
  c_.Error(v->location, "invalid " + std::string(kind) + " name " + Quote(text) +
                            ": use lowercase letters, digits, '-' and '_', starting with a "
                            "letter or digit");
}

void PipelineReader::ReadVars(const YamlNode& node, Vars* vars) {
  if (!c_.Expect(node, Kind::kMap, "'env'")) return;
  YamlMap m = c_.Map(node, "", {}, YamlKeys::kAny);
  for (const YamlField& field : m.fields()) {
    std::string value;
    if (!IsVariableName(field.key))
      c_.Error(field.key_node->location,
               "invalid variable name " + Quote(field.key) +
                   ": use letters, digits and '_', not starting with a digit");
    else if (c_.String(*field.value, "'env." + field.key + "'", &value))
      vars->emplace_back(field.key, value);
  }
}

bool PipelineReader::ReadRun(const YamlNode& node, std::string_view what, std::string* run) {
  if (!c_.String(node, what, run)) return false;
  if (!IsBlank(*run)) return true;
  c_.Error(node.location, std::string(what) + " must not be empty");
  return false;
}

bool PipelineReader::ReadStrings(const YamlNode& node, std::string_view what, bool single_ok,
                                 std::vector<std::string>* out,
                                 std::vector<const YamlNode*>* nodes) {
  std::vector<const YamlNode*> items;
  if (!c_.Items(node, what, single_ok, &items)) return false;
  std::string entry_what = std::string(what) + " entries";
  for (const YamlNode* item : items) {
    std::string value;
    if (!ReadNonEmpty(*item, entry_what, &value)) continue;
    out->push_back(value);
    if (nodes) nodes->push_back(item);
  }
  return true;
}

void PipelineReader::ReadPaths(const YamlNode& node, std::string_view what, bool single_ok,
                               std::vector<std::string>* out) {
  std::vector<std::string> values;
  std::vector<const YamlNode*> nodes;
  ReadStrings(node, what, single_ok, &values, &nodes);
  for (std::size_t i = 0; i < values.size(); ++i) {
    std::string problem = PathProblem(values[i]);
    if (problem.empty())
      out->push_back(values[i]);
    else
      c_.Error(nodes[i]->location,
               std::string(what) + " entries " + problem + ", got " + Quote(values[i]));
  }
}

bool PipelineReader::ReadPath(const YamlNode& node, std::string_view what, std::string* out) {
  std::string value;
  if (!c_.String(node, what, &value)) return false;
  std::string problem = PathProblem(value);
  if (problem.empty()) {
    *out = value;
    return true;
  }
  c_.Error(node.location, std::string(what) + " " + problem + ", got " + Quote(value));
  return false;
}

bool PipelineReader::ReadDuration(const YamlNode& node, std::string_view what,
                                  std::chrono::milliseconds* out) {
  return c_.Scalar(node, what, "a duration like 90s, 10m or 1h30m",
                   [out](const std::string& s) { return ParseDuration(s, out); });
}

bool PipelineReader::ReadNonEmpty(const YamlNode& node, std::string_view what, std::string* out) {
  std::string value;
  if (!c_.String(node, what, &value)) return false;
  if (value.empty()) {
    c_.Error(node.location, std::string(what) + " must not be empty");
    return false;
  }
  *out = value;
  return true;
}

bool PipelineReader::ReadMatching(const YamlNode& node, std::string_view what,
                                  bool (*ok)(std::string_view), const std::string& rule,
                                  std::string* out) {
  return c_.Scalar(node, what, rule, [ok, out](const std::string& s) {
    if (!ok(s)) return false;
    *out = s;
    return true;
  });
}

bool PipelineReader::SubMap(const YamlNode& node, std::string_view what, const std::string& where,
                            const Keys& known, YamlMap* out) {
  if (!c_.Expect(node, Kind::kMap, what)) return false;
  *out = c_.Map(node, where, known);
  return true;
}

// ---- Checks across fields -------------------------------------------------

void PipelineReader::CheckNeeds(const Stage& stage, const StageMarks& marks,
                                const std::string& label) {
  std::map<std::string, std::size_t> index;
  Keys names;
  for (std::size_t i = 0; i < stage.steps.size(); ++i) {
    if (stage.steps[i].name.empty()) continue;
    index.emplace(stage.steps[i].name, i);
    names.push_back(stage.steps[i].name);
  }
  NeedsGraph graph(stage.steps.size());
  for (std::size_t i = 0; i < stage.steps.size(); ++i) {
    const Step& step = stage.steps[i];
    std::set<std::string> seen;
    for (std::size_t k = 0; k < step.needs.size() && k < marks.needs[i].size(); ++k) {
      const std::string& need = step.needs[k];
      if (need.find('/') != std::string::npos) continue;  // another stage's: CheckNeedsAcrossStages
      Location at = marks.needs[i][k]->location;
      auto target = index.find(need);
      if (need == step.name)
        c_.Error(at, "step " + Quote(step.name) + " needs itself");
      else if (target == index.end())
        c_.Error(at, "step " + Quote(step.name) + " needs " + Quote(need) +
                         ", which is not a step of " + label + DidYouMean(need, names));
      else if (!seen.insert(need).second)
        c_.Error(at, "step " + Quote(step.name) + " lists " + Quote(need) + " twice in 'needs'");
      else
        graph[i].emplace_back(target->second, marks.needs[i][k]);
    }
  }
  CheckCycles(stage, graph, label);
}

// Depth-first search without recursion (a stage may have many steps); a
// step met again while it is on the path closes a cycle.
void PipelineReader::CheckCycles(const Stage& stage, const NeedsGraph& graph,
                                 const std::string& label) {
  enum Color { kWhite, kGrey, kBlack };
  std::vector<Color> color(graph.size(), kWhite);
  std::vector<std::pair<std::size_t, std::size_t>> path;  // (step, next edge)
  for (std::size_t start = 0; start < graph.size(); ++start) {
    if (color[start] != kWhite) continue;
    color[start] = kGrey;
    path.emplace_back(start, 0);
    while (!path.empty()) {
      auto& [step, edge] = path.back();
      if (edge == graph[step].size()) {
        color[step] = kBlack;
        path.pop_back();
        continue;
      }
      std::size_t next = graph[step][edge++].first;
      if (color[next] == kWhite) {
        color[next] = kGrey;
        path.emplace_back(next, 0);
      } else if (color[next] == kGrey) {
        auto from = std::find_if(path.begin(), path.end(),
                                 [&](const auto& entry) { return entry.first == next; });
        ReportCycle(stage, graph, {from, path.end()}, label);
      }
    }
  }
}

// Reports the cycle on `path` (each entry: a step and one past the edge
// taken from it), starting from its first step in stage order so the message
// does not depend on where the search came in.
void PipelineReader::ReportCycle(const Stage& stage, const NeedsGraph& graph,
                                 std::vector<std::pair<std::size_t, std::size_t>> cycle,
                                 const std::string& label) {
  std::rotate(cycle.begin(), std::min_element(cycle.begin(), cycle.end()), cycle.end());
  std::string text;
  for (const auto& entry : cycle) text += stage.steps[entry.first].name + " -> ";
  const YamlNode* at = graph[cycle[0].first][cycle[0].second - 1].second;
  c_.Error(at->location,
           "'needs' cycle in " + label + ": " + text + stage.steps[cycle[0].first].name);
}

// docs/pipeline.md "Warnings": a deployment or rollout that neither an earlier gate nor
// its own `when` protects ships what no test has let through.
void PipelineReader::Warn(const Pipeline& p) {
  bool gated = false;
  std::set<std::string> deployed;
  for (std::size_t i = 0; i < p.stages.size() && i < marks_.size(); ++i) {
    const Stage& stage = p.stages[i];
    const std::string& label = marks_[i].label;
    bool guarded = gated || !stage.when_branches.empty();
    if (!stage.environment.empty() && !guarded)
      c_.Warning(marks_[i].environment,
                 label + " deploys to " + Quote(stage.environment) + " but " + kProtectionHint);
    if (!stage.environment.empty()) deployed.insert(stage.environment);
    if (const auto& rollout = stage.rollout) {
      if (!guarded)
        c_.Warning(rollout->location,
                   label + " rolls out " +
                       (rollout->toggle.empty() ? "a toggle" : Quote(rollout->toggle)) + " but " +
                       kProtectionHint);
      if (!rollout->environment.empty() && !deployed.count(rollout->environment))
        c_.Warning(rollout->location,
                   label + " rolls out in " + Quote(rollout->environment) +
                       ", which no stage up to here deploys to: it will never run");
    }
    if (stage.gate) gated = true;
  }
}

// ---- Glob matching --------------------------------------------------------

// One element of a branch glob.
struct GlobToken {
  enum Op { kChar, kAny, kClass, kStar, kGlobStar, kGlobStarSlash } op = kChar;
  char c = 0;
  std::string set;  // kClass: characters and a-z ranges
  bool negated = false;
};

// Parses a [...] class at glob[*i] ('['); false when it is not closed.
bool ParseClass(std::string_view glob, std::size_t* i, GlobToken* token) {
  std::size_t j = *i + 1;
  token->negated = j < glob.size() && (glob[j] == '!' || glob[j] == '^');
  if (token->negated) ++j;
  std::size_t first = j;
  while (j < glob.size() && (glob[j] != ']' || j == first)) ++j;
  if (j >= glob.size()) return false;
  token->op = GlobToken::kClass;
  token->set = std::string(glob.substr(first, j - first));
  *i = j + 1;
  return true;
}

std::vector<GlobToken> ParseGlob(std::string_view glob) {
  std::vector<GlobToken> tokens;
  for (std::size_t i = 0; i < glob.size();) {
    GlobToken token;
    if (glob[i] == '[' && ParseClass(glob, &i, &token)) {
      tokens.push_back(token);
      continue;
    }
    if (glob.substr(i, 3) == "**/") {
      token.op = GlobToken::kGlobStarSlash;
      i += 3;
    } else if (glob.substr(i, 2) == "**") {
      token.op = GlobToken::kGlobStar;
      i += 2;
    } else if (glob[i] == '*' || glob[i] == '?') {
      token.op = glob[i++] == '*' ? GlobToken::kStar : GlobToken::kAny;
    } else {
      if (glob[i] == '\\' && i + 1 < glob.size()) ++i;
      token.c = glob[i++];
    }
    tokens.push_back(token);
  }
  return tokens;
}

bool InClass(const GlobToken& token, char c) {
  const std::string& set = token.set;
  bool found = false;
  for (std::size_t i = 0; i < set.size() && !found; ++i) {
    if (i + 2 < set.size() && set[i + 1] == '-') {
      found = set[i] <= c && c <= set[i + 2];
      i += 2;
    } else {
      found = set[i] == c;
    }
  }
  return found != token.negated;
}

// next[j]: the glob up to and including `token` matches s[0, j), given cur
// for the glob before it.
void MatchToken(const GlobToken& token, std::string_view s, const std::vector<char>& cur,
                std::vector<char>* next) {
  std::size_t n = s.size();
  bool reach = false;
  for (std::size_t j = 0; j <= n; ++j) {
    char c = j > 0 ? s[j - 1] : 0;
    bool prev = j > 0 && cur[j - 1];
    switch (token.op) {
      case GlobToken::kChar:
        (*next)[j] = prev && c == token.c;
        break;
      case GlobToken::kAny:
        (*next)[j] = prev && c != '/';
        break;
      case GlobToken::kClass:
        (*next)[j] = prev && c != '/' && InClass(token, c);
        break;
      case GlobToken::kStar:
        (*next)[j] = cur[j] || (j > 0 && (*next)[j - 1] && c != '/');
        break;
      case GlobToken::kGlobStar:
        (*next)[j] = cur[j] || (j > 0 && (*next)[j - 1]);
        break;
      case GlobToken::kGlobStarSlash:
        reach = reach || prev;
        (*next)[j] = cur[j] || (c == '/' && reach);
        break;
    }
  }
}

// ---- Durations ------------------------------------------------------------

struct DurationUnit {
  std::string_view suffix;
  long long ms;
  int rank;  // larger units first
};
// "ms" is tried before "m".
constexpr DurationUnit kDurationUnits[] = {
    {"h", 3600000, 0}, {"ms", 1, 3}, {"m", 60000, 1}, {"s", 1000, 2}};
// 12 digits of hours stay far below 2^63 milliseconds, even summed.
constexpr std::size_t kMaxDurationDigits = 12;

// Takes "<digits><unit>" from the front of *text.
bool TakeDurationPart(std::string_view* text, long long* ms, int* rank) {
  std::size_t digits = std::min(text->find_first_not_of(kDigits), text->size());
  if (digits == 0 || digits > kMaxDurationDigits) return false;
  long long value = std::stoll(std::string(text->substr(0, digits)));
  text->remove_prefix(digits);
  for (const DurationUnit& unit : kDurationUnits) {
    if (text->substr(0, unit.suffix.size()) != unit.suffix) continue;
    text->remove_prefix(unit.suffix.size());
    *ms = value * unit.ms;
    *rank = unit.rank;
    return true;
  }
  return false;
}

// ---- Files ----------------------------------------------------------------

// Empties *pipeline for the file `file` and returns what fills it in from
// the file's document.
YamlFileReader PipelineFiller(const std::string& file, Pipeline* pipeline) {
  *pipeline = Pipeline();
  pipeline->file = file;
  return [pipeline](const YamlNode& root, YamlChecker* checker) {
    PipelineReader(checker).Read(root, pipeline);
  };
}

}  // namespace

// ---- Public ---------------------------------------------------------------

const Stage* Pipeline::FindStage(std::string_view name) const {
  for (const Stage& stage : stages)
    if (stage.name == name) return &stage;
  return nullptr;
}

bool ParsePipeline(std::string_view text, const std::string& filename, Pipeline* pipeline,
                   std::vector<Diagnostic>* diagnostics) {
  return ParseYamlFile(text, filename, kRules, PipelineFiller(filename, pipeline), diagnostics);
}

std::set<std::string> NeedsClosure(const Stage& stage, const std::set<std::string>& names) {
  std::set<std::string> needed;
  std::vector<std::string> todo(names.begin(), names.end());
  while (!todo.empty()) {
    const std::string name = todo.back();
    todo.pop_back();
    for (const Step& step : stage.steps) {
      if (step.name != name) continue;
      for (const std::string& need : step.needs)
        if (need.find('/') == std::string::npos && needed.insert(need).second)
          todo.push_back(need);
    }
  }
  return needed;
}

std::set<std::pair<std::string, std::string>> NeedsClosure(const Pipeline& pipeline,
                                                           const std::string& stage,
                                                           const std::set<std::string>& names) {
  std::set<std::pair<std::string, std::string>> needed;
  std::vector<std::pair<std::string, std::string>> todo;
  for (const std::string& name : names) todo.emplace_back(stage, name);
  while (!todo.empty()) {
    const auto [stage_name, name] = todo.back();
    todo.pop_back();
    const Stage* s = pipeline.FindStage(stage_name);
    if (s == nullptr) continue;
    for (const Step& step : s->steps) {
      if (step.name != name) continue;
      for (const std::string& need : step.needs) {
        auto [other, target] = SplitNeed(need);
        std::pair<std::string, std::string> key(other.empty() ? stage_name : other, target);
        if (needed.insert(key).second) todo.push_back(key);
      }
    }
  }
  return needed;
}

bool LoadPipeline(const std::string& path, Pipeline* pipeline,
                  std::vector<Diagnostic>* diagnostics) {
  return LoadYamlFile(path, kRules, PipelineFiller(path, pipeline), diagnostics);
}

std::string SecretValue(const Vars& secrets, const std::string& name) {
  for (const auto& [key, value] : secrets)
    if (key == name) return value;
  const char* value = std::getenv(name.c_str());
  return value ? value : "";
}

bool ParseDuration(std::string_view text, std::chrono::milliseconds* out) {
  if (!text.empty() && AllOf(text, kDigits)) {  // plain seconds
    if (text.size() > kMaxDurationDigits) return false;
    *out = std::chrono::seconds(std::stoll(std::string(text)));
    return true;
  }
  long long total = 0;
  int last_rank = -1;
  while (!text.empty()) {
    long long ms;
    int rank;
    // Largest unit first, each at most once: "1h30m", not "30m1h" or "1m1m".
    if (!TakeDurationPart(&text, &ms, &rank) || rank <= last_rank) return false;
    total += ms;
    last_rank = rank;
  }
  if (last_rank < 0) return false;  // empty
  *out = std::chrono::milliseconds(total);
  return true;
}

bool BranchMatches(std::string_view glob, std::string_view branch) {
  // Dynamic programming over glob tokens: linear memory and O(glob x
  // branch) time, where a backtracking matcher can go exponential on "*a*a*a*b".
  std::vector<char> cur(branch.size() + 1, 0), next(branch.size() + 1, 0);
  cur[0] = 1;
  for (const GlobToken& token : ParseGlob(glob)) {
    MatchToken(token, branch, cur, &next);
    cur.swap(next);
  }
  return cur[branch.size()] != 0;
}

}  // namespace ladle::runner
