// The pipeline model of docs/pipeline.md, and its loader.
//
// LoadPipeline parses a ladle.yml with yaml-cpp, validates every key, and
// reports every problem as a Diagnostic (FILE:LINE:COL: message), not only
// the first. A Pipeline that loaded without errors is complete: defaults are
// applied (step timeouts, effective image and resources from the stage), so
// the executor never consults the YAML again.
#ifndef LADLE_RUNNER_CONFIG_PIPELINE_H_
#define LADLE_RUNNER_CONFIG_PIPELINE_H_

#include <chrono>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "env/engine.h"
#include "runner/config/diagnostic.h"

namespace ladle::runner {

using Vars = std::vector<std::pair<std::string, std::string>>;  // ordered, no duplicates

// docs/pipeline.md "Caches": files kept between runs of one repository.
struct Cache {
  Location location;
  std::vector<std::string> paths;     // relative to the workspace
  std::string key;                    // a string with ${VAR}s; empty with key_files
  std::vector<std::string> key_files; // key.files: their contents make the key
  std::string key_prefix;             // key.prefix, with key.files
  std::string policy = "pull-push";   // "pull", "push" or "pull-push"
  long long max_size = 1LL << 30;     // bytes; a bigger cache is not saved
};

struct Step {
  std::string name;
  Location location;
  std::string run;                    // the script, run with sh -e
  std::string image;                  // effective: step, else stage, else pipeline (may be empty)
  Vars env;                           // the step's own `env` only
  std::string workdir;                // relative to the workspace
  std::string keep;                   // "", "never", "on-failure", "always"
  // Steps that must pass first: names of steps of the same stage, or
  // "stage/step" of an earlier stage (docs/pipeline.md "needs across
  // stages"). After loading, a matrix step's name is replaced by the names
  // of all its combinations.
  std::vector<std::string> needs;
  std::vector<std::string> artifacts; // paths or globs relative to the workspace
  std::vector<std::string> junit;     // reports.junit globs (a string or a list in YAML)
  std::chrono::milliseconds timeout{std::chrono::hours(1)};
  int retry = 0;
  bool allow_failure = false;
  env::Resources resources;           // effective: step fields over the stage's
  std::vector<env::ServiceSpec> services;  // effective: the step's, else the stage's
  std::optional<Cache> cache;
  // docs/pipeline.md "Matrix". As written, before loading expands it:
  // variable -> values, in the order written.
  std::vector<std::pair<std::string, std::vector<std::string>>> matrix;
  Location matrix_location;
  // After expansion, on each combination: the step as written (its `name`
  // is then the combination's id, "test.1.21-linux") and its values.
  std::string matrix_of;
  Vars matrix_values;

  // "test [GO=1.21, OS=linux]" for a combination, else the name.
  std::string DisplayName() const;
};

struct Gate {
  int min_tests = 0;
};

struct Rollout {
  Location location;
  std::string toggle;
  std::string environment;
  std::vector<int> percent;           // strictly increasing, 1..100
  std::chrono::milliseconds interval{0};
  std::string check;                  // check.run
};

struct Stage {
  std::string name;
  Location location;
  Vars env;
  std::optional<Gate> gate;
  std::string environment;            // deployment target; empty: not a deployment
  std::vector<std::string> when_branches;  // when.branch; empty: always
  bool manual_approval = false;       // approval: manual
  std::string toggles_file;           // toggles: FILE
  std::string rollback;               // rollback.run
  std::optional<Rollout> rollout;
  std::vector<Step> steps;
};

// An `on.schedule` entry (docs/pipeline.md "Triggers"): a run of `branch`'s
// head whenever the cron expression matches, in UTC.
struct ScheduleTrigger {
  Location location;
  std::string cron;    // as written; valid (runner/config/cron.h)
  std::string branch;
};

struct Pipeline {
  std::string file;                   // the path it was loaded from
  std::string name;
  std::string image;
  Vars env;
  std::vector<std::string> secrets;
  std::vector<std::string> push_branches;  // on.push.branches (globs)
  // docs/pipeline.md "Triggers": false when `on` is given without `push`
  // (branch pushes start nothing).
  bool on_push = true;
  std::vector<std::string> push_tags;      // on.push.tags (globs); empty: tag pushes start nothing
  bool on_pull_request = false;            // on.pull_request is given
  std::vector<std::string> pull_request_branches;  // on.pull_request.branches: target branches; empty: any
  std::vector<ScheduleTrigger> schedules;  // on.schedule
  std::vector<Stage> stages;

  const Stage* FindStage(std::string_view name) const;
};

// The steps of `stage` that the steps named in `names` need, directly or
// through other needs (the names themselves only when one needs another).
// Needs of earlier stages ("stage/step") are left out: see the next one.
std::set<std::string> NeedsClosure(const Stage& stage, const std::set<std::string>& names);

// The same across stages: the steps (stage, step) that the steps `names` of
// stage `stage` need, directly or not, in their stage or earlier ones.
std::set<std::pair<std::string, std::string>> NeedsClosure(const Pipeline& pipeline,
                                                           const std::string& stage,
                                                           const std::set<std::string>& names);

// Splits a `needs` entry: "build/compile" -> ("build", "compile"); a bare
// name -> ("", name).
std::pair<std::string, std::string> SplitNeed(const std::string& need);

// Loads and validates `path`. Returns true when there are no errors (warnings
// may be present). Never throws.

bool LoadPipeline(const std::string& path, Pipeline* pipeline,
                  std::vector<Diagnostic>* diagnostics);

// Same, from text already in memory; `filename` names it in diagnostics.
bool ParsePipeline(std::string_view text, const std::string& filename,
                   Pipeline* pipeline, std::vector<Diagnostic>* diagnostics);

// A secret's value: from `secrets` (the server's secrets file) when it is
// there, else from the process environment, else "".
std::string SecretValue(const Vars& secrets, const std::string& name);

// Parses "90s", "10m", "1h", "1h30m", "500ms"; false when malformed.
bool ParseDuration(std::string_view text, std::chrono::milliseconds* out);

// Matches a branch name against a glob such as "release/*".
bool BranchMatches(std::string_view glob, std::string_view branch);

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_CONFIG_PIPELINE_H_
