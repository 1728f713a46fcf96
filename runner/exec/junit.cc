#include "runner/exec/junit.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstring>
#include <set>

#include <pugixml.hpp>

#include "runner/exec/file_glob.h"

namespace ladle::runner {
namespace {

constexpr size_t kMaxReportBytes = size_t{256} << 20;
constexpr size_t kMaxMessageBytes = 200;  // one summary line per failed test
constexpr int kMaxSuiteDepth = 64;        // deeper is a hostile file, not a test tool

// ---- Text for people -------------------------------------------------------

// Length of the well-formed UTF-8 sequence at s[i] (RFC 3629: no overlongs,
// no surrogates), 0 when there is none.
size_t Utf8Length(const std::string& s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return 1;
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the second byte's range
  if (c >= 0xC2 && c <= 0xDF) n = 2;
  else if (c == 0xE0) n = 3, lo = 0xA0;
  else if (c == 0xED) n = 3, hi = 0x9F;
  else if (c >= 0xE1 && c <= 0xEF) n = 3;
  else if (c == 0xF0) n = 4, lo = 0x90;
  else if (c >= 0xF1 && c <= 0xF3) n = 4;
  else if (c == 0xF4) n = 4, hi = 0x8F;
  if (n == 0 || i + n > s.size()) return 0;
  const auto second = static_cast<unsigned char>(s[i + 1]);
  if (second < lo || second > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return 0;
  }
  return n;
}

// Failure lines end up in run JSON, and nlohmann::json throws on invalid
// UTF-8: a Latin-1 message from a Java test must not take the server down.
// Bad bytes become '?', whitespace runs one space, and the line is cut at
// kMaxMessageBytes on a character boundary.
std::string CleanLine(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size() && out.size() < kMaxMessageBytes;) {
    const size_t n = Utf8Length(text, i);
    if (n == 0) {
      out += '?';
      i += 1;
      continue;
    }
    if (out.size() + n > kMaxMessageBytes) break;
    if (n == 1 && std::isspace(static_cast<unsigned char>(text[i]))) {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out.append(text, i, n);
    }
    i += n;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

std::string FirstNonEmptyLine(const std::string& text) {
  size_t start = 0;
  while (start < text.size()) {
    size_t end = std::min(text.find('\n', start), text.size());
    std::string line = CleanLine(text.substr(start, end - start));
    if (!line.empty()) return line;
    start = end + 1;
  }
  return "";
}

// GoogleTest and Surefire put the message in an attribute; jest-junit only
// writes the text, whose first line is the assertion (the rest is a stack).
std::string Describe(const pugi::xml_node& failure) {
  std::string message = CleanLine(failure.attribute("message").value());
  if (message.empty()) message = FirstNonEmptyLine(failure.child_value());
  if (message.empty()) message = CleanLine(failure.attribute("type").value());
  return message.empty() ? failure.name() : message;
}

// A failed test case: its class, or its suite when there is no classname
// (pytest's suite is always "pytest": classname says more). FailedTestLine
// (run_store.cc) drops a qualifier the name already starts with: jest-junit
// repeats the describe block in both.
FailedTest Failed(const std::string& suite, const pugi::xml_node& testcase, std::string message) {
  FailedTest test;
  test.suite = CleanLine(testcase.attribute("classname").value());
  if (test.suite.empty()) test.suite = CleanLine(suite);
  test.name = CleanLine(testcase.attribute("name").value());
  test.message = std::move(message);
  return test;
}

// ---- Counting --------------------------------------------------------------

int SaturatingAdd(int a, int b) { return a > INT_MAX - b ? INT_MAX : a + b; }

void Add(TestCounts* sum, const TestCounts& more) {
  sum->total = SaturatingAdd(sum->total, more.total);
  sum->passed = SaturatingAdd(sum->passed, more.passed);
  sum->failed = SaturatingAdd(sum->failed, more.failed);
  sum->skipped = SaturatingAdd(sum->skipped, more.skipped);
}

bool Is(const pugi::xml_node& node, const char* name) { return std::strcmp(node.name(), name) == 0; }

bool IsSuite(const pugi::xml_node& node) { return Is(node, "testsuite") || Is(node, "testsuites"); }

// Bounded so that sums of a few attributes cannot overflow an int.
int CountAttribute(const pugi::xml_node& suite, const char* name) {
  return static_cast<int>(std::clamp(suite.attribute(name).as_llong(), 0LL, 100'000'000LL));
}

// For a suite without <testcase> elements. "tests" includes skipped and
// (GoogleTest) disabled tests, which did not run.
TestCounts FromAttributes(const pugi::xml_node& suite) {
  TestCounts counts;
  counts.skipped = CountAttribute(suite, "skipped") + CountAttribute(suite, "disabled");
  counts.total = std::max(0, CountAttribute(suite, "tests") - counts.skipped);
  const int failed = CountAttribute(suite, "failures") + CountAttribute(suite, "errors");
  counts.failed = std::min(counts.total, failed);
  counts.passed = counts.total - counts.failed;
  return counts;
}

bool IsSkipped(const pugi::xml_node& testcase) {
  if (testcase.child("skipped")) return true;
  // GoogleTest: GTEST_SKIP is result="skipped"; a DISABLED_ test is
  // status="notrun" result="suppressed" with no child at all.
  const std::string result = testcase.attribute("result").value();
  return result == "skipped" || result == "suppressed" ||
         std::strcmp(testcase.attribute("status").value(), "notrun") == 0;
}

// Walks one report's suites, collecting counts and the first failures.
class Counter {
 public:
  explicit Counter(size_t failure_room) : room_(failure_room) {}

  // Counts of `suite`; `*from_testcases` tells whether any <testcase> lies
  // below it (if none, its attributes are all there is).
  TestCounts CountSuite(const pugi::xml_node& suite, int depth, bool* from_testcases) {
    TestCounts counts;
    *from_testcases = false;
    if (depth > kMaxSuiteDepth) {
      too_deep_ = true;
      return counts;
    }
    for (const pugi::xml_node& child : suite.children()) {
      if (Is(child, "testcase")) {
        CountCase(suite.attribute("name").value(), child, &counts);
        *from_testcases = true;
      } else if (IsSuite(child)) {
        bool below = false;
        Add(&counts, CountSuite(child, depth + 1, &below));
        *from_testcases = *from_testcases || below;
      }
    }
    if (!*from_testcases && suite.attribute("tests")) counts = FromAttributes(suite);
    else if (*from_testcases) Reconcile(suite, &counts);
    return counts;
  }

  bool too_deep() const { return too_deep_; }
  // The first suite that disagreed with its test cases (null when none),
  // and what was said and shown there.
  pugi::xml_node disagreeing() const { return disagreeing_; }
  const std::string& disagreement() const { return disagreement_; }
  std::vector<FailedTest>& failures() { return failures_; }

 private:
  void CountCase(const std::string& suite, const pugi::xml_node& testcase, TestCounts* counts) {
    pugi::xml_node failure = testcase.child("failure");
    if (!failure) failure = testcase.child("error");
    TestCounts one;
    if (failure) {
      one.total = one.failed = 1;
      if (failures_.size() < room_) {
        failures_.push_back(Failed(suite, testcase, Describe(failure)));
      }
    } else if (IsSkipped(testcase)) {
      one.skipped = 1;
    } else {
      one.total = one.passed = 1;
    }
    Add(counts, one);
  }

  // Gates fail closed (docs/design.md "Gates and test counts"): a suite whose
  // `tests`, `failures` or `errors` attributes count more than its test
  // cases show is read by the worse count. Tests it counts that have no
  // <testcase> are failed; failures and errors beyond the failed cases turn
  // passed ones failed (and past those, count as more failed tests).
  void Reconcile(const pugi::xml_node& suite, TestCounts* counts) {
    const bool has_tests = suite.attribute("tests");
    const bool has_failed = suite.attribute("failures") || suite.attribute("errors");
    const int tests = CountAttribute(suite, "tests");
    const int failed = CountAttribute(suite, "failures") + CountAttribute(suite, "errors");
    const int shown = SaturatingAdd(counts->total, counts->skipped);
    const bool more_tests = has_tests && tests > shown;
    const bool more_failed = has_failed && failed > counts->failed;
    if (!more_tests && !more_failed) return;
    const TestCounts before = *counts;
    if (more_tests) {
      const int missing = tests - shown;
      counts->total = SaturatingAdd(counts->total, missing);
      counts->failed = SaturatingAdd(counts->failed, missing);
    }
    if (failed > counts->failed) {
      int extra = failed - counts->failed;
      const int turned = std::min(extra, counts->passed);
      counts->passed -= turned;
      counts->failed += turned;
      extra -= turned;
      counts->total = SaturatingAdd(counts->total, extra);
      counts->failed = SaturatingAdd(counts->failed, extra);
    }
    if (disagreeing_) return;
    disagreeing_ = suite;
    disagreement_ = "<" + std::string(suite.name()) + "> says " + Tests(tests) + ", " +
                    std::to_string(failed) + " failed (failures and errors), its test cases show " +
                    Tests(shown) + ", " + std::to_string(before.failed) + " failed; counted as " +
                    std::to_string(counts->total) + " ran, " + std::to_string(counts->failed) +
                    " failed";
  }

  static std::string Tests(int n) { return std::to_string(n) + (n == 1 ? " test" : " tests"); }

  size_t room_;
  bool too_deep_ = false;
  std::vector<FailedTest> failures_;
  pugi::xml_node disagreeing_;
  std::string disagreement_;
};

// ---- Files -----------------------------------------------------------------

// "NAME:LINE:COL" of a byte offset, both 1-based, as editors expect.
std::string Where(const std::string& name, const std::string& text, ptrdiff_t offset) {
  const size_t end = std::min(static_cast<size_t>(std::max<ptrdiff_t>(offset, 0)), text.size());
  int line = 1;
  size_t line_start = 0;
  for (size_t i = 0; i < end; ++i) {
    if (text[i] == '\n') ++line, line_start = i + 1;
  }
  return name + ":" + std::to_string(line) + ":" + std::to_string(end - line_start + 1);
}

// Reads `path` whole; `name` is what errors call it.
Status ReadReport(const std::string& path, const std::string& name, std::string* text) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("read report " + name, errno);
  text->clear();
  char buffer[64 * 1024];
  ssize_t n = 0;
  while (text->size() <= kMaxReportBytes) {
    n = read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text->append(buffer, static_cast<size_t>(n));
  }
  const int read_errno = errno;
  close(fd);
  if (n < 0) return Status::FromErrno("read report " + name, read_errno);
  if (text->size() > kMaxReportBytes) {
    return Status::Invalid(name + ": report is over the " +
                           std::to_string(kMaxReportBytes >> 20) + " MiB limit");
  }
  return Status::OK();
}

bool IsRegularFile(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

Status ParseJUnitString(const std::string& name, const std::string& xml, TestCounts* counts,
                        std::vector<FailedTest>* failures, std::vector<std::string>* notes) {
  pugi::xml_document doc;
  const pugi::xml_parse_result parsed = doc.load_buffer(xml.data(), xml.size());
  if (!parsed) {
    return Status::Invalid(Where(name, xml, parsed.offset) + ": not valid XML: " +
                           parsed.description());
  }
  const pugi::xml_node root = doc.document_element();
  if (!IsSuite(root)) {
    // offset_debug() is the element name's offset; editors point at its '<'.
    return Status::Invalid(Where(name, xml, root.offset_debug() - 1) +
                           ": not a JUnit report: the root element is <" + root.name() +
                           ">, not <testsuites> or <testsuite>");
  }
  Counter counter(kMaxListedFailures - std::min(failures->size(), kMaxListedFailures));
  bool from_testcases = false;
  const TestCounts result = counter.CountSuite(root, 0, &from_testcases);
  if (counter.too_deep()) {
    return Status::Invalid(name + ": not a JUnit report: suites nested over " +
                           std::to_string(kMaxSuiteDepth) + " deep");
  }
  *counts = result;
  failures->insert(failures->end(), counter.failures().begin(), counter.failures().end());
  if (counter.disagreeing() && notes) {
    notes->push_back(Where(name, xml, counter.disagreeing().offset_debug() - 1) +
                     ": the report disagrees with itself: " + counter.disagreement());
  }
  return Status::OK();
}

Status ParseJUnitFile(const std::string& path, TestCounts* counts,
                      std::vector<FailedTest>* failures, std::vector<std::string>* notes) {
  std::string text;
  Status status = ReadReport(path, path, &text);
  if (!status.ok()) return status;
  return ParseJUnitString(path, text, counts, failures, notes);
}

Status CollectJUnitReports(const std::string& root, const std::vector<std::string>& globs,
                           TestCounts* counts, std::vector<FailedTest>* failures,
                           std::vector<std::string>* notes) {
  TestCounts sum;
  std::set<std::string> seen;  // a file two globs match counts once
  for (const std::string& glob : globs) {
    std::vector<std::string> matches;
    Status status = ExpandGlobs(root, {glob}, &matches);
    if (!status.ok()) return status;
    bool any_file = false;
    for (const std::string& rel : matches) {
      const std::string path = root + "/" + rel;
      if (!IsRegularFile(path)) continue;
      any_file = true;
      if (!seen.insert(rel).second) continue;
      std::string text;
      TestCounts one;
      status = ReadReport(path, rel, &text);
      if (status.ok()) status = ParseJUnitString(rel, text, &one, failures, notes);
      if (!status.ok()) return status;
      Add(&sum, one);
    }
    if (!any_file) notes->push_back("report glob '" + glob + "' matched no file");
  }
  *counts = sum;
  return Status::OK();
}

// ---- The gate --------------------------------------------------------------

namespace {

std::string Tests(int n) { return std::to_string(n) + (n == 1 ? " test" : " tests"); }

std::string RanSummary(const TestCounts& counts, int minimum, bool passed) {
  std::string text = Tests(counts.total) + " ran";
  if (passed) text += ", 0 failed";
  if (counts.skipped > 0) text += ", " + std::to_string(counts.skipped) + " skipped";
  return text + " (minimum " + std::to_string(minimum) + ")";
}

}  // namespace

GateResult EvaluateGate(int min_tests, const TestCounts& counts,
                        const std::vector<std::string>& notes) {
  const int minimum = std::max(min_tests, 0);
  std::vector<std::string> reasons;
  if (counts.failed > 0) {
    reasons.push_back(std::to_string(counts.failed) + " of " + Tests(counts.total) + " failed");
  }
  if (counts.total < minimum) reasons.push_back(RanSummary(counts, minimum, false));

  GateResult result;
  result.passed = reasons.empty();
  if (result.passed) reasons.push_back(RanSummary(counts, minimum, true));
  reasons.insert(reasons.end(), notes.begin(), notes.end());
  result.message = result.passed ? "gate passed: " : "gate failed: ";
  for (size_t i = 0; i < reasons.size(); ++i) result.message += (i ? "; " : "") + reasons[i];
  return result;
}

}  // namespace ladle::runner
