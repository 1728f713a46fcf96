// JUnit XML reports and the stage gate they feed
// (docs/design.md "Gates and test counts").
//
// Reports come from many tools that each bend the format: GoogleTest,
// pytest, Maven Surefire, jest-junit, PHPUnit (suites nested in suites).
// ladle counts <testcase> elements rather than trusting the summary
// attributes, which some tools get wrong; only a suite holding no <testcase>
// at all is counted from its attributes (tests, failures, errors, skipped,
// disabled). But gates fail closed: a suite whose `tests`, `failures` or
// `errors` count more than its test cases show is read by the worse count
// (tests without a <testcase> count failed, failures beyond the failed cases
// turn passed ones failed), and a note says the report disagrees with
// itself. A test case is
//   failed   when it has a <failure> or an <error> child,
//   skipped  when it has a <skipped> child, or GoogleTest marks it so
//            (result="skipped" or "suppressed", status="notrun"),
//   passed   otherwise.
// Tests that ran = passed + failed: TestCounts::total never includes skipped.
// Parsing is pugixml's: no DTD, no external entities, no network.
// Everything here is thread-safe: no shared state.
#ifndef LADLE_RUNNER_EXEC_JUNIT_H_
#define LADLE_RUNNER_EXEC_JUNIT_H_

#include <string>
#include <vector>

#include "core/base/status.h"
#include "runner/store/run_store.h"  // TestCounts, FailedTest

namespace ladle::runner {

// At most this many failed tests are listed, over all reports of a stage:
// the summary names the first ones, the report files hold the rest.
inline constexpr size_t kMaxListedFailures = 10;

// Counts the tests of one report held in memory; `name` names it in errors.
// Sets *counts; appends {class, name, message} for failed tests while
// failures->size() < kMaxListedFailures (the suite's name stands in for a
// missing classname; the message is one cleaned line of at most 200 bytes,
// valid UTF-8). Invalid, as "NAME:LINE:COL: message", when the text is not
// XML or its root is neither <testsuites> nor <testsuite>; *counts and
// *failures are then unchanged. When the report disagrees with itself, one
// note "NAME:LINE:COL: the report disagrees with itself: ..." (the first
// such suite) is appended to *notes, when given.
Status ParseJUnitString(const std::string& name, const std::string& xml, TestCounts* counts,
                        std::vector<FailedTest>* failures,
                        std::vector<std::string>* notes = nullptr);

// The same for the file at `path`, which names it in errors. IoError when it
// cannot be read; Invalid when it is over 256 MiB (no test tool writes that).
Status ParseJUnitFile(const std::string& path, TestCounts* counts,
                      std::vector<FailedTest>* failures,
                      std::vector<std::string>* notes = nullptr);

// Sums the reports that `globs` (relative to `root`, the workspace; see
// file_glob.h) match, each file once even if several globs match it. Sets
// *counts; appends to *failures as above. A glob that matches no regular file
// counts 0 and appends to *notes "report glob 'GLOB' matched no file"; a
// report that disagrees with itself appends its note too. The
// first bad glob or bad report is the error, naming it relative to `root`;
// *counts is set only on success.
Status CollectJUnitReports(const std::string& root, const std::vector<std::string>& globs,
                           TestCounts* counts, std::vector<FailedTest>* failures,
                           std::vector<std::string>* notes);

struct GateResult {
  bool passed = false;
  std::string message;  // one line, for people: "gate passed: ..." or "gate failed: ..."
};

// The gate's whole decision: it passes when no test failed and at least
// `min_tests` ran. `notes` (from CollectJUnitReports) end the message, so a
// glob that matched nothing is named whatever the outcome.
GateResult EvaluateGate(int min_tests, const TestCounts& counts,
                        const std::vector<std::string>& notes);

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_EXEC_JUNIT_H_
