// docs/pipeline.md "Matrix": a step's `matrix:` read and expanded into one
// step per combination, at load, so that every reader of the pipeline model
// (the executor, `ladle run --list/--step`, the run store, `ladle repro`)
// sees the combinations as steps of their own.
#ifndef LADLE_RUNNER_CONFIG_MATRIX_H_
#define LADLE_RUNNER_CONFIG_MATRIX_H_

#include <cstddef>
#include <string>
#include <vector>

#include "runner/config/pipeline.h"
#include "runner/config/yaml_check.h"
#include "runner/config/yaml_tree.h"

namespace ladle::runner {

// At most this many combinations per matrix step.
constexpr std::size_t kMaxMatrixCombinations = 64;
// At most this many combinations of all matrix steps of one pipeline.
constexpr std::size_t kMaxMatrixStepsPerPipeline = 1024;
// A combination id whose values part would be longer than this numbers the
// step's combinations instead.
constexpr std::size_t kMaxMatrixIdValues = 64;

// Reads `matrix:` (`node`) of the step `label` ("step 'test'") into
// step->matrix. Every problem is reported on `checker`, at its FILE:LINE:COL;
// a matrix with a problem is left empty.
void ReadMatrix(const YamlNode& node, const std::string& label, YamlChecker* checker, Step* step);

// The combinations of `matrix`, in the order written: the first variable
// varies slowest. REQUIRES: every list non-empty.
std::vector<Vars> MatrixCombinations(
    const std::vector<std::pair<std::string, std::vector<std::string>>>& matrix);

// The ids of the combinations of step `name` (docs/pipeline.md "Matrix"):
// "NAME.V1-V2" with characters other than letters, digits, '.' and '_'
// replaced by '_'; "NAME.1", "NAME.2", ... for all of them when two would
// be equal or one too long. They never equal a step name as written (those
// have no '.').
std::vector<std::string> MatrixStepIds(const std::string& name,
                                       const std::vector<Vars>& combinations);

// Replaces each matrix step of `pipeline` by its combinations (in place, in
// order) and every `needs` entry naming one by all of its combinations.
// Reports a pipeline whose matrices make more than kMaxMatrixStepsPerPipeline
// steps on `checker`.
void ExpandMatrices(Pipeline* pipeline, YamlChecker* checker);

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_CONFIG_MATRIX_H_
