// docs/pipeline.md "needs across stages": `needs` entries that name a step
// of another stage as "stage/step", checked once every stage is read.
#ifndef LADLE_RUNNER_CONFIG_STAGE_NEEDS_H_
#define LADLE_RUNNER_CONFIG_STAGE_NEEDS_H_

#include <vector>

#include "runner/config/pipeline.h"
#include "runner/config/yaml_check.h"

namespace ladle::runner {

// Where each `needs` entry is written: [stage][step][entry], parallel to
// Pipeline::stages, Stage::steps and Step::needs.
using NeedsLocations = std::vector<std::vector<std::vector<Location>>>;

// "test/unit" in a step of stage 'test' is "unit": a step of its own stage.
void NormalizeOwnStageNeeds(Stage* stage);

// Checks the entries that name another stage's step: the stage and the step
// exist, the stage is an earlier one, no entry twice, and no cycle across
// stages ("'needs' cycle across stages: build/a -> test/b -> build/a").
// Entries of the step's own stage are CheckNeeds' (runner/config/pipeline.cc).
void CheckNeedsAcrossStages(const Pipeline& pipeline, const NeedsLocations& at,
                            YamlChecker* checker);

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_CONFIG_STAGE_NEEDS_H_
