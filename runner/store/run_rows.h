// Row encodings both run stores share (sqlite_run_store.cc,
// pg_run_store.cc): the JSON text kept in a column for lists and maps, so
// that both databases hold the same text. Internal to runner/store.
#ifndef LADLE_RUNNER_STORE_RUN_ROWS_H_
#define LADLE_RUNNER_STORE_RUN_ROWS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runner/store/run_store.h"

namespace ladle::runner::rows {

// runs.changed_paths: a JSON array of strings; anything else reads as none.
std::vector<std::string> PathsFromJson(const std::string& text);
std::string PathsToJson(const std::vector<std::string>& paths);

// Empty strings are stored as NULL (times), so "" and "not set" are one thing.
std::optional<std::string> OrNull(const std::string& s);

// steps.failed_tests: a JSON array of {suite, name, message}; text that is
// not such an array (no ladle writes one) reads as no failed tests rather
// than failing the whole run's read.
std::string FailedTestsText(const std::vector<FailedTest>& tests);
std::vector<FailedTest> ParseFailedTests(const std::string& text);

// steps.matrix (docs/pipeline.md "Matrix"): {"of": STEP, "values": {...}}
// in the order written; anything else reads as no matrix.
std::string MatrixText(const StepRecord& step);
void ParseMatrix(const std::string& text, StepRecord* step);

// One counter of optional test counts, NULL when the stage has none.
std::optional<int> Count(const std::optional<TestCounts>& tests, int TestCounts::*field);

// Whether the process `pid` that started at `start` (0: unknown) still runs.
bool OwnerAlive(int pid, int64_t start);

// The superseding rule of EnqueueRun (docs/server.md "Triggers"): a new
// head of a branch or pull request supersedes older queued runs; a re-run,
// a schedule, a rollback or a run asked for by the API does not.
bool Supersedes(const RunRecord& run);

// The message of a run superseded by `by`.
std::string SupersededMessage(const RunRecord& by);

}  // namespace ladle::runner::rows

#endif  // LADLE_RUNNER_STORE_RUN_ROWS_H_
