// `ladle env from-step [FILE] STEP`: a spoon that starts where a pipeline
// step would (docs/spoons.md "From a pipeline step").
//
// The spoon gets the step's image, variables (the pipeline's, the stage's,
// the step's, and LADLE_STAGE/LADLE_STEP/LADLE_WORKSPACE; secrets only when
// asked), resources (cpus, memory, dns, volumes, privileged, network) and a
// copy of the workspace `ladle run` would make (runner/exec/workspace.h:
// the working tree) with the artifacts of the steps before it restored from
// this data dir's newest successful runs, as `ladle run --step` restores
// them. The step's script is saved as /workspace/.ladle-step.sh, and the
// shell opens in /workspace.
#ifndef LADLE_RUNNER_SPOON_FROM_STEP_H_
#define LADLE_RUNNER_SPOON_FROM_STEP_H_

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "core/base/status.h"
#include "runner/config/pipeline.h"
#include "runner/spoon/settings.h"
#include "runner/spoon/spoon.h"

namespace ladle::runner::spoon {

constexpr char kStepScriptName[] = ".ladle-step.sh";
constexpr char kFromStepLabel[] = "ladle.spoon.from-step";  // = "PIPELINE_FILE STAGE/STEP"

struct FromStepRequest {
  std::string pipeline_file = "ladle.yml";
  std::string step;            // "STAGE/STEP" or a step name unique in the pipeline
  std::string name;            // the spoon's name; "" = derived from the step
  bool with_secrets = false;   // the pipeline's secrets, from the environment
  std::string data_dir;        // where `ladle run` kept the artifacts
  // Fields of `base` that the command line gave: they win over the step's
  // ("image", "cpus", "memory", ...; as SettingsSources::flags_given).
  std::set<std::string> flags_given;
};

// What the spoon is made from, before anything is made.
struct FromStepPlan {
  std::string name;            // the spoon's name
  std::string stage, step;
  std::string script;          // the step's `run`
  SpoonSettings settings;      // `base` with the step's values over it
  CreateOptions options;       // workdir /workspace, network, labels
  std::vector<std::string> notes;  // for the person: secrets left out, ...
};

// The spoon name derived from a step: "STAGE-STEP" with every character a
// name may not hold turned into '-', cut to 64.
std::string SpoonNameForStep(const std::string& stage, const std::string& step);

// Loads the pipeline, resolves the step, and merges its settings over
// `base` (the settings hierarchy's result). Invalid (with FILE:LINE:COL
// diagnostics) for a bad pipeline or an unknown step, naming the steps.
Status PlanFromStep(const FromStepRequest& request, const SpoonSettings& base, FromStepPlan* plan);

// Makes the workspace copy in `dir` (which must not exist): the working
// tree, the artifacts of the steps before the planned one, and the script
// as .ladle-step.sh. Notes (artifacts missing, restored from run N) go to
// plan->notes.
Status PrepareStepWorkspace(const FromStepRequest& request, FromStepPlan* plan, const std::string& dir);

// The banner printed when the shell opens: the step and its script.
std::string StepBanner(const FromStepPlan& plan);

}  // namespace ladle::runner::spoon

#endif  // LADLE_RUNNER_SPOON_FROM_STEP_H_
