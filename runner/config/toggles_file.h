// toggles.yml: the toggles a repository declares, read into the entries that
// ToggleStore::Sync and ToggleOps::Sync take (docs/design.md "Toggles in a run").
//
// Two shapes are accepted, because both read naturally and neither is
// ambiguous: a top-level list of toggles, or a map whose only key is
// `toggles:` holding that list (room for later settings beside it).
//
//   - key: new-checkout          # required, [A-Za-z0-9._-], 1..128, unique
//     type: release              # release (default), experiment, ops,
//                                # kill-switch, permission, dark-launch
//     description: One-page checkout
//     variants:                  # optional; weights sum to 1000
//       - {name: blue, weight: 500, value: "#00f"}
//       - {name: red, weight: 500, value: "#f00"}
//
// Fields left out keep their value on the server (a new toggle gets the
// defaults). Every problem is reported as FILE:LINE:COL: message, all of
// them in one pass, as `ladle validate` does for pipelines.
#ifndef LADLE_RUNNER_CONFIG_TOGGLES_FILE_H_
#define LADLE_RUNNER_CONFIG_TOGGLES_FILE_H_

#include <string>
#include <string_view>
#include <vector>

#include "runner/config/pipeline.h"
#include "toggles/eval/model.h"

namespace ladle::runner {

// Reads and checks `path`. Returns true when there are no errors; then
// *entries holds the toggles in file order. Never throws.
bool LoadTogglesFile(const std::string& path, std::vector<toggles::SyncEntry>* entries,
                     std::vector<Diagnostic>* diagnostics);

// Same, from text in memory; `filename` names it in diagnostics.
bool ParseTogglesFile(std::string_view text, const std::string& filename,
                      std::vector<toggles::SyncEntry>* entries,
                      std::vector<Diagnostic>* diagnostics);

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_CONFIG_TOGGLES_FILE_H_
