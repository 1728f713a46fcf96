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

struct Step {
  std::string name;
  Location location;
  std::string run;                    // the script, run with sh -e
  std::string image;                  // effective: step, else stage, else pipeline (may be empty)
  Vars env;                           // the step's own `env` only
  std::string workdir;                // relative to the workspace
  std::string keep;                   // "", "never", "on-failure", "always"
  std::vector<std::string> needs;     // names of steps in the same stage
  std::vector<std::string> artifacts; // paths or globs relative to the workspace
  std::vector<std::string> junit;     // reports.junit globs (a string or a list in YAML)
  std::chrono::milliseconds timeout{std::chrono::hours(1)};
  int retry = 0;
  bool allow_failure = false;
  env::Resources resources;           // effective: step fields over the stage's
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

struct Pipeline {
  std::string file;                   // the path it was loaded from
  std::string name;
  std::string image;
  Vars env;
  std::vector<std::string> secrets;
  std::vector<std::string> push_branches;  // on.push.branches (globs)
  std::vector<Stage> stages;

  const Stage* FindStage(std::string_view name) const;
};

// Loads and validates `path`. Returns true when there are no errors (warnings
// may be present). Never throws.
// The steps of `stage` that the steps named in `names` need, directly or
// through other needs (the names themselves only when one needs another).
std::set<std::string> NeedsClosure(const Stage& stage, const std::set<std::string>& names);

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
