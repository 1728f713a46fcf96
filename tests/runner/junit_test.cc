#include "runner/exec/junit.h"

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include <gtest/gtest.h>

#ifndef LADLE_TEST_DATA
#define LADLE_TEST_DATA "tests/runner/data"
#endif

namespace ladle::runner {
namespace {

const std::string kData = LADLE_TEST_DATA "/junit";

std::string Show(const TestCounts& counts) {
  return "ran " + std::to_string(counts.total) + ", passed " + std::to_string(counts.passed) +
         ", failed " + std::to_string(counts.failed) + ", skipped " +
         std::to_string(counts.skipped);
}

// Failed tests as the lines people see ("suite.name: message"); *lines may
// hold earlier ones, which go in and come back as they were.
std::vector<FailedTest> FromLines(const std::vector<std::string>* lines) {
  std::vector<FailedTest> tests;
  if (lines)
    for (const std::string& line : *lines) tests.push_back(FailedTest{"", line, ""});
  return tests;
}

void ToLines(const std::vector<FailedTest>& tests, std::vector<std::string>* lines) {
  if (!lines) return;
  lines->clear();
  for (const FailedTest& test : tests) lines->push_back(FailedTestLine(test));
}

// The counts of fixture `file`, or "error: MESSAGE" (named relative to the
// fixture directory, as CollectJUnitReports names it).
std::string Count(const std::string& file, std::vector<std::string>* failures = nullptr) {
  std::vector<std::string> notes;
  std::vector<FailedTest> tests = FromLines(failures);
  TestCounts counts;
  Status status = CollectJUnitReports(kData, {file}, &counts, &tests, &notes);
  ToLines(tests, failures);
  if (!status.ok()) return "error: " + status.message();
  return Show(counts);
}

std::string CountXml(const std::string& xml, std::vector<std::string>* failures = nullptr) {
  std::vector<FailedTest> tests = FromLines(failures);
  TestCounts counts;
  Status status = ParseJUnitString("report.xml", xml, &counts, &tests);
  ToLines(tests, failures);
  if (!status.ok()) return "error: " + status.message();
  return Show(counts);
}

// ---- One file per tool -------------------------------------------------------

TEST(JUnitTest, GoogleTestCountsDisabledAndGtestSkipAsSkipped) {
  std::vector<std::string> failures;
  EXPECT_EQ("ran 3, passed 2, failed 1, skipped 2", Count("gtest.xml", &failures));
  EXPECT_EQ(std::vector<std::string>{"CartTest.TotalIncludesTax: /workspace/tests/cart_test.cc:3 "
                                     "Expected equality of these values: 121 120 tax rounding"},
            failures);
}

TEST(JUnitTest, PytestCountsErrorAsFailureAndXfailAsSkipped) {
  std::vector<std::string> failures;
  EXPECT_EQ("ran 6, passed 4, failed 2, skipped 2", Count("pytest.xml", &failures));
  EXPECT_EQ((std::vector<std::string>{
                "tests.test_cart.test_total_includes_tax: assert 120 == 121 + where 120 = "
                "total(Cart(items=[Item(sku='A1', price=100)]))",
                "tests.test_db.test_connect: failed on setup with \"ConnectionRefusedError: "
                "[Errno 111] Connection refused\""}),
            failures);
}

TEST(JUnitTest, SurefireIgnoresPropertiesAndOutputAndCountsErrors) {
  std::vector<std::string> failures;
  EXPECT_EQ("ran 4, passed 2, failed 2, skipped 1",
            Count("maven/shop-core/target/surefire-reports/TEST-com.example.CartTest.xml",
                  &failures));
  EXPECT_EQ((std::vector<std::string>{
                "com.example.CartTest.totalIncludesTax: expected: <121> but was: <120>",
                "com.example.CartTest.removesItem: java.lang.NullPointerException: Cannot "
                "invoke \"com.example.Item.sku()\" because \"item\" is null"}),
            failures);
}

TEST(JUnitTest, SurefireFlakyTestThatPassedOnRerunCountsAsPassed) {
  EXPECT_EQ("ran 3, passed 3, failed 0, skipped 0",
            Count("maven/shop-web/target/surefire-reports/"
                  "TEST-com.example.web.CheckoutControllerTest.xml"));
}

TEST(JUnitTest, JestJunitTakesTheFirstLineOfATextOnlyFailure) {
  std::vector<std::string> failures;
  EXPECT_EQ("ran 5, passed 4, failed 1, skipped 1", Count("jest-junit.xml", &failures));
  EXPECT_EQ(std::vector<std::string>{"Cart totals include tax: Error: "
                                     "expect(received).toBe(expected) // Object.is equality"},
            failures);
}

TEST(JUnitTest, PhpunitSuitesNestedInSuites) {
  std::vector<std::string> failures;
  EXPECT_EQ("ran 3, passed 2, failed 1, skipped 1", Count("phpunit.xml", &failures));
  EXPECT_EQ(std::vector<std::string>{"App.Tests.CartTest.testTotal with data set \"with tax\": "
                                     "App\\Tests\\CartTest::testTotal with data set \"with "
                                     "tax\" (121, 120)"},
            failures);
}

TEST(JUnitTest, EmptyTestsuiteCountsNothing) {
  EXPECT_EQ("ran 0, passed 0, failed 0, skipped 0", Count("empty-testsuite.xml"));
}

TEST(JUnitTest, SuiteWithAttributesOnlyIsCountedFromThem) {
  EXPECT_EQ("ran 5, passed 3, failed 2, skipped 2", Count("attributes-only.xml"));
}

// ---- Bad reports -----------------------------------------------------------

TEST(JUnitTest, MalformedXmlNamesFileLineColumnAndError) {
  EXPECT_EQ("error: malformed.xml:14:35: not valid XML: Error parsing element attribute",
            Count("malformed.xml"));
}

TEST(JUnitTest, ParseJUnitFileNamesThePathItWasGiven) {
  TestCounts counts;
  std::vector<FailedTest> failures;
  Status status = ParseJUnitFile(kData + "/malformed.xml", &counts, &failures);
  EXPECT_EQ(Code::kInvalid, status.code());
  EXPECT_EQ(kData + "/malformed.xml:14:35: not valid XML: Error parsing element attribute",
            status.message());
}

TEST(JUnitTest, HtmlIsNotAJUnitReport) {
  EXPECT_EQ(
      "error: html-report.xml:1:1: not a JUnit report: the root element is <html>, not "
      "<testsuites> or <testsuite>",
      Count("html-report.xml"));
}

TEST(JUnitTest, CoverageXmlIsNotAJUnitReport) {
  EXPECT_EQ(
      "error: not-junit.xml:3:1: not a JUnit report: the root element is <coverage>, not "
      "<testsuites> or <testsuite>",
      Count("not-junit.xml"));
}

TEST(JUnitTest, EmptyFileIsNotValidXml) {
  EXPECT_EQ("error: report.xml:1:1: not valid XML: No document element found", CountXml(""));
}

TEST(JUnitTest, MissingFileIsAnIoError) {
  TestCounts counts;
  std::vector<FailedTest> failures;
  Status status = ParseJUnitFile(kData + "/missing.xml", &counts, &failures);
  EXPECT_EQ(Code::kIoError, status.code());
  EXPECT_EQ("read report " + kData + "/missing.xml: No such file or directory",
            status.message());
}

TEST(JUnitTest, ErrorLeavesCountsAndFailuresUnchanged) {
  TestCounts counts;
  counts.total = 7;
  std::vector<FailedTest> failures = {FailedTest{"", "earlier", ""}};
  EXPECT_FALSE(ParseJUnitString("x.xml", "<testsuite><testcase><failure/></testcase>", &counts,
                                &failures)
                   .ok());
  EXPECT_EQ(7, counts.total);
  ASSERT_EQ(1u, failures.size());
  EXPECT_EQ("earlier", failures[0].name);
}

TEST(JUnitTest, DeeplyNestedSuitesAreRejectedNotRecursedInto) {
  std::string xml;
  for (int i = 0; i < 1000; ++i) xml += "<testsuite>";
  for (int i = 0; i < 1000; ++i) xml += "</testsuite>";
  EXPECT_EQ("error: report.xml: not a JUnit report: suites nested over 64 deep", CountXml(xml));
}

// ---- Counting rules --------------------------------------------------------

TEST(JUnitTest, TestcasesWinOverSummaryAttributesThatCountLess) {
  std::vector<FailedTest> ignored;
  std::vector<std::string> notes;
  TestCounts counts;
  ASSERT_TRUE(ParseJUnitString("report.xml", R"(<testsuite tests="1" failures="0" errors="0">
      <testcase name="a"/><testcase name="b"><failure/></testcase>
    </testsuite>)", &counts, &ignored, &notes).ok());
  EXPECT_EQ("ran 2, passed 1, failed 1, skipped 0", Show(counts));
  EXPECT_TRUE(notes.empty());
}

// Issue 10, gates fail closed: attributes that count more than the test
// cases show are read by the worse count, with a note saying so.
std::string CountXmlWithNotes(const std::string& xml) {
  std::vector<FailedTest> ignored;
  std::vector<std::string> notes;
  TestCounts counts;
  Status status = ParseJUnitString("report.xml", xml, &counts, &ignored, &notes);
  if (!status.ok()) return "error: " + status.message();
  std::string out = Show(counts);
  for (const std::string& note : notes) out += "\n" + note;
  return out;
}

TEST(JUnitTest, MoreTestsThanTestCasesCountTheMissingOnesFailed) {
  EXPECT_EQ(
      "ran 100, passed 1, failed 99, skipped 0\n"
      "report.xml:1:1: the report disagrees with itself: <testsuite> says 100 tests, 0 failed "
      "(failures and errors), its test cases show 2 tests, 1 failed; counted as 100 ran, 99 "
      "failed",
      CountXmlWithNotes(R"(<testsuite tests="100" failures="0">
                             <testcase name="a"/><testcase name="b"><failure/></testcase>
                           </testsuite>)"));
  // Skipped test cases are among those shown.
  EXPECT_EQ("ran 1, passed 1, failed 0, skipped 1",
            CountXmlWithNotes(R"(<testsuite tests="2" skipped="1">
                                   <testcase name="a"/><testcase name="b"><skipped/></testcase>
                                 </testsuite>)"));
}

TEST(JUnitTest, MoreFailuresAndErrorsThanFailedCasesTurnPassedOnesFailed) {
  EXPECT_EQ(
      "ran 3, passed 1, failed 2, skipped 0\n"
      "report.xml:1:1: the report disagrees with itself: <testsuite> says 3 tests, 2 failed "
      "(failures and errors), its test cases show 3 tests, 0 failed; counted as 3 ran, 2 failed",
      CountXmlWithNotes(R"(<testsuite tests="3" failures="1" errors="1">
          <testcase name="a"/><testcase name="b"/><testcase name="c"/></testsuite>)"));
  // More failures than tests: every test failed, and the rest count too.
  EXPECT_EQ("ran 3, passed 0, failed 3, skipped 0",
            CountXml(R"(<testsuite failures="3"><testcase name="a"/></testsuite>)"));
}

TEST(JUnitTest, DisagreementIsNamedWhereItIsAndCountedOnce) {
  // The inner suite disagrees; the outer one agrees with what the inner one
  // is read as, and adds nothing.
  EXPECT_EQ(
      "ran 5, passed 2, failed 3, skipped 0\n"
      "report.xml:2:3: the report disagrees with itself: <testsuite> says 5 tests, 0 failed "
      "(failures and errors), its test cases show 2 tests, 0 failed; counted as 5 ran, 3 "
      "failed",
      CountXmlWithNotes("<testsuites tests=\"5\" failures=\"0\">\n"
                        "  <testsuite name=\"a\" tests=\"5\" failures=\"0\">"
                        "<testcase name=\"x\"/><testcase name=\"y\"/></testsuite>\n"
                        "</testsuites>"));
}

TEST(JUnitTest, AttributesCountOnlyForSuitesWithoutTestcases) {
  EXPECT_EQ("ran 5, passed 3, failed 2, skipped 1",
            CountXml(R"(<testsuites tests="6">
                          <testsuite name="a"><testcase name="x"/><testcase name="y"/></testsuite>
                          <testsuite name="b" tests="4" failures="1" errors="1" skipped="1"/>
                        </testsuites>)"));
}

TEST(JUnitTest, GoogleTestAttributesOnlyDisabledTestsDidNotRun) {
  EXPECT_EQ("ran 4, passed 3, failed 1, skipped 1",
            CountXml(R"(<testsuites tests="5" failures="1" disabled="1" errors="0"
                                    name="AllTests"/>)"));
}

TEST(JUnitTest, FailureWinsOverSkipped) {
  EXPECT_EQ("ran 1, passed 0, failed 1, skipped 0",
            CountXml("<testsuite><testcase name='t'><skipped/><error/></testcase></testsuite>"));
}

TEST(JUnitTest, NameFallsBackToSuiteAndMessageToTypeOrElementName) {
  std::vector<std::string> failures;
  CountXml(R"(<testsuite name="cargo">
                <testcase name="parses_empty"><failure type="panic"/></testcase>
                <testcase name="parses_long"><error/></testcase>
              </testsuite>)",
           &failures);
  EXPECT_EQ((std::vector<std::string>{"cargo.parses_empty: panic", "cargo.parses_long: error"}),
            failures);
}

TEST(JUnitTest, FailedTestKeepsSuiteNameAndMessageApart) {
  std::vector<FailedTest> failures;
  std::vector<std::string> notes;
  TestCounts counts;
  ASSERT_TRUE(CollectJUnitReports(kData, {"pytest.xml"}, &counts, &failures, &notes).ok());
  ASSERT_EQ(2u, failures.size());
  EXPECT_EQ("tests.test_cart", failures[0].suite);
  EXPECT_EQ("test_total_includes_tax", failures[0].name);
  EXPECT_EQ("assert 120 == 121 + where 120 = total(Cart(items=[Item(sku='A1', price=100)]))",
            failures[0].message);
}

TEST(JUnitTest, FailureListIsCappedAcrossReports) {
  std::string xml = "<testsuite name='s'>";
  for (int i = 0; i < 15; ++i) xml += "<testcase name='t" + std::to_string(i) + "'><failure/></testcase>";
  xml += "</testsuite>";
  std::vector<std::string> failures(8, "from an earlier report");
  EXPECT_EQ("ran 15, passed 0, failed 15, skipped 0", CountXml(xml, &failures));
  ASSERT_EQ(kMaxListedFailures, failures.size());
  EXPECT_EQ("s.t0: failure", failures[8]);
  EXPECT_EQ("s.t1: failure", failures[9]);
}

TEST(JUnitTest, MessagesAreValidUtf8OfBoundedLength) {
  std::string accents;  // 100 two-byte "é": the 200-byte cut falls inside one
  for (int i = 0; i < 100; ++i) accents += "\xC3\xA9";
  // Latin-1 "é" (0xE9), as a Java test on a Windows code page writes it.
  const std::string xml =
      "<testsuite><testcase classname='Caf\xE9' name='t'><failure message='caf\xE9'/></testcase>"
      "<testcase name='u'><failure message='x" + accents + "'/></testcase></testsuite>";
  std::vector<std::string> failures;
  CountXml(xml, &failures);
  EXPECT_EQ((std::vector<std::string>{"Caf?.t: caf?", "u: x" + accents.substr(0, 198)}),
            failures);
}

// ---- Collecting ------------------------------------------------------------

TEST(JUnitCollectTest, DoubleStarSumsReportsOfNestedModules) {
  TestCounts counts;
  std::vector<FailedTest> failures;
  std::vector<std::string> notes;
  ASSERT_TRUE(CollectJUnitReports(kData, {"**/TEST-*.xml"}, &counts, &failures, &notes).ok());
  EXPECT_EQ("ran 7, passed 5, failed 2, skipped 1", Show(counts));
  EXPECT_EQ(2u, failures.size());
  EXPECT_TRUE(notes.empty());
}

TEST(JUnitCollectTest, SumsSeveralGlobsAndCountsEachFileOnce) {
  TestCounts counts;
  std::vector<FailedTest> failures;
  std::vector<std::string> notes;
  ASSERT_TRUE(CollectJUnitReports(kData, {"gtest.xml", "pytest.xml", "g*.xml", "**/gtest.xml"},
                                  &counts, &failures, &notes)
                  .ok());
  EXPECT_EQ("ran 9, passed 6, failed 3, skipped 4", Show(counts));
  EXPECT_EQ(3u, failures.size());
}

TEST(JUnitCollectTest, GlobMatchingNothingIsANoteAndCountsZero) {
  TestCounts counts;
  std::vector<FailedTest> failures;
  std::vector<std::string> notes;
  ASSERT_TRUE(
      CollectJUnitReports(kData, {"gtest.xml", "out/*.xml"}, &counts, &failures, &notes).ok());
  EXPECT_EQ("ran 3, passed 2, failed 1, skipped 2", Show(counts));
  EXPECT_EQ(std::vector<std::string>{"report glob 'out/*.xml' matched no file"}, notes);
}

TEST(JUnitCollectTest, GlobMatchingOnlyDirectoriesMatchedNoFile) {
  TestCounts counts;
  std::vector<FailedTest> failures;
  std::vector<std::string> notes;
  ASSERT_TRUE(CollectJUnitReports(kData, {"maven/*"}, &counts, &failures, &notes).ok());
  EXPECT_EQ("ran 0, passed 0, failed 0, skipped 0", Show(counts));
  EXPECT_EQ(std::vector<std::string>{"report glob 'maven/*' matched no file"}, notes);
}

TEST(JUnitCollectTest, BadGlobIsInvalidNamingIt) {
  TestCounts counts;
  std::vector<FailedTest> failures;
  std::vector<std::string> notes;
  Status status = CollectJUnitReports(kData, {"gtest.xml", "../secrets.xml"}, &counts,
                                      &failures, &notes);
  EXPECT_EQ(Code::kInvalid, status.code());
  EXPECT_EQ("glob '../secrets.xml' leaves the workspace: '..' is not allowed", status.message());
}

TEST(JUnitCollectTest, AReportThatDisagreesWithItselfFailsTheGateAndSaysSo) {
  std::filesystem::path dir = std::filesystem::temp_directory_path() /
                              ("ladle_junit_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "out");
  // Ten tests claimed, two shown (both passed): a gate of eight would have
  // passed on the attributes, and would on the test cases alone without
  // its minimum.
  std::ofstream(dir / "out/report.xml")
      << "<?xml version=\"1.0\"?>\n<testsuite name=\"unit\" tests=\"10\" failures=\"0\">\n"
         "  <testcase name=\"a\"/><testcase name=\"b\"/>\n</testsuite>\n";
  TestCounts counts;
  std::vector<FailedTest> failures;
  std::vector<std::string> notes;
  ASSERT_TRUE(CollectJUnitReports(dir.string(), {"out/*.xml"}, &counts, &failures, &notes).ok());
  EXPECT_EQ("ran 10, passed 2, failed 8, skipped 0", Show(counts));
  GateResult gate = EvaluateGate(0, counts, notes);
  EXPECT_FALSE(gate.passed);
  EXPECT_EQ(
      "gate failed: 8 of 10 tests failed; out/report.xml:2:1: the report disagrees with itself: "
      "<testsuite> says 10 tests, 0 failed (failures and errors), its test cases show 2 tests, 0 "
      "failed; counted as 10 ran, 8 failed",
      gate.message);
  std::filesystem::remove_all(dir);
}

TEST(JUnitCollectTest, FirstBadReportIsTheError) {
  // Sorted: attributes-only, empty-testsuite, gtest, then html-report fails.
  EXPECT_EQ(
      "error: html-report.xml:1:1: not a JUnit report: the root element is <html>, not "
      "<testsuites> or <testsuite>",
      Count("*.xml"));
}

// ---- The gate --------------------------------------------------------------

TestCounts Counts(int ran, int failed, int skipped = 0) {
  TestCounts counts;
  counts.total = ran;
  counts.failed = failed;
  counts.passed = ran - failed;
  counts.skipped = skipped;
  return counts;
}

std::string Gate(int min_tests, const TestCounts& counts,
                 const std::vector<std::string>& notes = {}) {
  GateResult result = EvaluateGate(min_tests, counts, notes);
  EXPECT_EQ(result.passed, result.message.rfind("gate passed: ", 0) == 0) << result.message;
  return result.message;
}

TEST(JUnitGateTest, Passes) {
  EXPECT_EQ("gate passed: 12 tests ran, 0 failed (minimum 1)", Gate(1, Counts(12, 0)));
  EXPECT_EQ("gate passed: 1 test ran, 0 failed (minimum 1)", Gate(1, Counts(1, 0)));
}

TEST(JUnitGateTest, PassesAndSaysHowManyWereSkipped) {
  EXPECT_EQ("gate passed: 12 tests ran, 0 failed, 2 skipped (minimum 1)",
            Gate(1, Counts(12, 0, 2)));
}

TEST(JUnitGateTest, PassesAndStillNamesAGlobThatMatchedNothing) {
  EXPECT_EQ(
      "gate passed: 12 tests ran, 0 failed (minimum 1); report glob 'lint/*.xml' matched no file",
      Gate(1, Counts(12, 0), {"report glob 'lint/*.xml' matched no file"}));
}

TEST(JUnitGateTest, FailsWhenNoReportWasFound) {
  EXPECT_EQ("gate failed: 0 tests ran (minimum 1); report glob 'out/*.xml' matched no file",
            Gate(1, Counts(0, 0), {"report glob 'out/*.xml' matched no file"}));
}

TEST(JUnitGateTest, FailsWhenReportsHoldNoTest) {
  EXPECT_EQ("gate failed: 0 tests ran (minimum 1)", Gate(1, Counts(0, 0)));
}

TEST(JUnitGateTest, SkippedTestsDoNotCountTowardsTheMinimum) {
  EXPECT_EQ("gate failed: 0 tests ran, 3 skipped (minimum 1)", Gate(1, Counts(0, 0, 3)));
}

TEST(JUnitGateTest, FailsBelowTheMinimum) {
  EXPECT_EQ("gate failed: 3 tests ran (minimum 5)", Gate(5, Counts(3, 0)));
}

TEST(JUnitGateTest, FailsWhenATestFailed) {
  EXPECT_EQ("gate failed: 2 of 14 tests failed", Gate(1, Counts(14, 2)));
  EXPECT_EQ("gate failed: 1 of 1 test failed", Gate(1, Counts(1, 1)));
}

TEST(JUnitGateTest, GivesEveryReasonAtOnce) {
  EXPECT_EQ(
      "gate failed: 1 of 3 tests failed; 3 tests ran (minimum 5); report glob 'it/*.xml' "
      "matched no file",
      Gate(5, Counts(3, 1), {"report glob 'it/*.xml' matched no file"}));
}

TEST(JUnitGateTest, MinimumZeroStillRequiresNoFailure) {
  EXPECT_EQ("gate passed: 0 tests ran, 0 failed (minimum 0)", Gate(0, Counts(0, 0)));
  EXPECT_EQ("gate failed: 1 of 4 tests failed", Gate(0, Counts(4, 1)));
  EXPECT_EQ("gate passed: 0 tests ran, 0 failed (minimum 0)", Gate(-3, Counts(0, 0)));
}

TEST(JUnitGateTest, EndToEndFromPytestReport) {
  TestCounts counts;
  std::vector<FailedTest> failures;
  std::vector<std::string> notes;
  ASSERT_TRUE(
      CollectJUnitReports(kData, {"pytest.xml", "out/*.xml"}, &counts, &failures, &notes).ok());
  EXPECT_EQ("gate failed: 2 of 6 tests failed; report glob 'out/*.xml' matched no file",
            Gate(1, counts, notes));
}

}  // namespace
}  // namespace ladle::runner
