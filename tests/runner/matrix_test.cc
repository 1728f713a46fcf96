// docs/pipeline.md "Matrix" and "needs across stages": what the loader makes
// of `matrix:` and of `needs: [stage/step]`, and the exact text of their
// errors (FILE:LINE:COL).
#include "runner/config/matrix.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "runner/config/pipeline.h"

namespace ladle::runner {
namespace {

std::string Errors(std::string_view yaml) {
  Pipeline pipeline;
  std::vector<Diagnostic> diagnostics;
  ParsePipeline(yaml, "p.yml", &pipeline, &diagnostics);
  std::string out;
  for (const Diagnostic& d : diagnostics)
    if (!d.warning) out += (out.empty() ? "" : "\n") + d.ToString();
  return out;
}

Pipeline Valid(std::string_view yaml) {
  Pipeline pipeline;
  std::vector<Diagnostic> diagnostics;
  EXPECT_TRUE(ParsePipeline(yaml, "p.yml", &pipeline, &diagnostics)) << Errors(yaml);
  return pipeline;
}

std::vector<std::string> Names(const Stage& stage) {
  std::vector<std::string> out;
  for (const Step& step : stage.steps) out.push_back(step.name);
  return out;
}

std::vector<std::string> DisplayNames(const Stage& stage) {
  std::vector<std::string> out;
  for (const Step& step : stage.steps) out.push_back(step.DisplayName());
  return out;
}

std::string EnvOf(const Step& step, const std::string& key) {
  for (const auto& [k, v] : step.env)
    if (k == key) return v;
  return "<unset>";
}

TEST(MatrixTest, ExpandsInTheOrderWrittenFirstVariableSlowest) {
  Pipeline p = Valid(R"(name: p
stages:
  - name: test
    steps:
      - {name: lint, run: "true"}
      - name: test
        run: go test
        matrix: {GO: ["1.21", "1.22"], OS: [linux, mac, win]}
      - {name: after, run: "true"}
)");
  ASSERT_EQ(1u, p.stages.size());
  EXPECT_EQ((std::vector<std::string>{"lint", "test [GO=1.21, OS=linux]", "test [GO=1.21, OS=mac]",
                                      "test [GO=1.21, OS=win]", "test [GO=1.22, OS=linux]",
                                      "test [GO=1.22, OS=mac]", "test [GO=1.22, OS=win]", "after"}),
            DisplayNames(p.stages[0]));
  EXPECT_EQ((std::vector<std::string>{"lint", "test.1.21-linux", "test.1.21-mac", "test.1.21-win",
                                      "test.1.22-linux", "test.1.22-mac", "test.1.22-win", "after"}),
            Names(p.stages[0]));
  const Step& one = p.stages[0].steps[5];
  EXPECT_EQ("test", one.matrix_of);
  EXPECT_EQ((Vars{{"GO", "1.22"}, {"OS", "mac"}}), one.matrix_values);
  EXPECT_TRUE(one.matrix.empty());
  EXPECT_EQ("go test", one.run);
  EXPECT_TRUE(p.stages[0].steps[0].matrix_of.empty());
}

TEST(MatrixTest, EachCombinationHasItsValuesInItsEnvOverTheStepsOwn) {
  Pipeline p = Valid(R"(name: p
stages:
  - name: test
    steps:
      - name: test
        run: "true"
        env: {GO: "0.0", KEEP: "yes"}
        matrix: {GO: ["1.21", "1.22"], DB: [pg]}
)");
  const auto& steps = p.stages[0].steps;
  ASSERT_EQ(2u, steps.size());
  EXPECT_EQ("1.21", EnvOf(steps[0], "GO"));
  EXPECT_EQ("1.22", EnvOf(steps[1], "GO"));
  EXPECT_EQ("pg", EnvOf(steps[1], "DB"));
  EXPECT_EQ("yes", EnvOf(steps[1], "KEEP"));
  // GO once: replaced, not added twice.
  int count = 0;
  for (const auto& [k, v] : steps[0].env) count += k == "GO";
  EXPECT_EQ(1, count);
}

TEST(MatrixTest, ValuesThatAreNotSafeInPathsGetReplacedInTheId) {
  Pipeline p = Valid(R"(name: p
stages:
  - name: s
    steps:
      - {name: t, run: "true", matrix: {IMG: ["debian:12", "a/b c"], N: [1, true]}}
)");
  EXPECT_EQ((std::vector<std::string>{"t.debian_12-1", "t.debian_12-true", "t.a_b_c-1",
                                      "t.a_b_c-true"}),
            Names(p.stages[0]));
  EXPECT_EQ("t [IMG=a/b c, N=true]", p.stages[0].steps[3].DisplayName());
}

TEST(MatrixTest, IdsThatWouldCollideOrBeTooLongAreNumbered) {
  Pipeline p = Valid(R"(name: p
stages:
  - name: s
    steps:
      - {name: t, run: "true", matrix: {V: ["a b", "a/b"]}}
)");
  EXPECT_EQ((std::vector<std::string>{"t.1", "t.2"}), Names(p.stages[0]));
  std::string long_value(80, 'x');
  Pipeline q = Valid("name: p\nstages:\n  - name: s\n    steps:\n      - {name: t, run: \"true\", "
                     "matrix: {V: [a, " + long_value + "]}}\n");
  EXPECT_EQ((std::vector<std::string>{"t.1", "t.2"}), Names(q.stages[0]));
}

TEST(MatrixTest, NeedsOnAMatrixStepNeedAllItsCombinations) {
  Pipeline p = Valid(R"(name: p
stages:
  - name: build
    steps:
      - {name: b, run: "true", matrix: {ARCH: [amd64, arm64]}}
  - name: test
    steps:
      - {name: t, run: "true", matrix: {GO: ["1.21", "1.22"]}, needs: [build/b]}
      - {name: report, run: "true", needs: [t]}
)");
  const Stage& test = p.stages[1];
  EXPECT_EQ((std::vector<std::string>{"t.1.21", "t.1.22", "report"}), Names(test));
  EXPECT_EQ((std::vector<std::string>{"build/b.amd64", "build/b.arm64"}), test.steps[0].needs);
  EXPECT_EQ((std::vector<std::string>{"build/b.amd64", "build/b.arm64"}), test.steps[1].needs);
  EXPECT_EQ((std::vector<std::string>{"t.1.21", "t.1.22"}), test.steps[2].needs);
}

TEST(MatrixTest, AtMost64Combinations) {
  // 8 x 8 = 64 is fine.
  std::string eight = "[a, b, c, d, e, f, g, h]";
  Pipeline p = Valid("name: p\nstages:\n  - name: s\n    steps:\n      - name: t\n        run: x\n"
                     "        matrix: {A: " + eight + ", B: " + eight + "}\n");
  EXPECT_EQ(64u, p.stages[0].steps.size());
  EXPECT_EQ("p.yml:7:17: 'matrix' of step 't' makes 72 combinations (8 x 9); at most 64",
            Errors("name: p\nstages:\n  - name: s\n    steps:\n      - name: t\n        run: x\n"
                   "        matrix: {A: " + eight + ", B: [a, b, c, d, e, f, g, h, i]}\n"));
}

TEST(MatrixTest, AProductThatWouldOverflowIsReportedNotComputed) {
  std::string lists;
  for (char c = 'A'; c <= 'T'; ++c) lists += std::string(lists.empty() ? "" : ", ") + c + ": [1, 2, 3, 4, 5, 6, 7, 8]";
  std::string errors = Errors("name: p\nstages:\n  - name: s\n    steps:\n      - name: t\n"
                              "        run: x\n        matrix: {" + lists + "}\n");
  EXPECT_NE(std::string::npos, errors.find("p.yml:7:17: 'matrix' of step 't' makes over a million "
                                           "combinations"))
      << errors;
}

TEST(MatrixTest, EmptyListsAndBadValuesAreErrorsAtTheirPlace) {
  EXPECT_EQ("p.yml:7:22: 'matrix.GO' must list at least one value",
            Errors(R"(name: p
stages:
  - name: s
    steps:
      - name: t
        run: x
        matrix: {GO: [], OS: [linux]}
)"));
  EXPECT_EQ("p.yml:7:17: 'matrix' of step 't' must list at least one variable",
            Errors("name: p\nstages:\n  - name: s\n    steps:\n      - name: t\n        run: x\n"
                   "        matrix: {}\n"));
  EXPECT_EQ("p.yml:7:17: 'matrix' must be a map, got a list",
            Errors("name: p\nstages:\n  - name: s\n    steps:\n      - name: t\n        run: x\n"
                   "        matrix: [a]\n"));
  EXPECT_EQ("p.yml:7:22: 'matrix.GO' must be a list, got a string '1.21'",
            Errors("name: p\nstages:\n  - name: s\n    steps:\n      - name: t\n        run: x\n"
                   "        matrix: {GO: \"1.21\"}\n"));
  EXPECT_EQ("p.yml:7:26: 'matrix.GO' lists '1' twice",
            Errors("name: p\nstages:\n  - name: s\n    steps:\n      - name: t\n        run: x\n"
                   "        matrix: {GO: [1, 1]}\n"));
  EXPECT_EQ("p.yml:7:23: 'matrix.GO' entries must be a string, got a map",
            Errors("name: p\nstages:\n  - name: s\n    steps:\n      - name: t\n        run: x\n"
                   "        matrix: {GO: [{a: 1}]}\n"));
  EXPECT_EQ("p.yml:7:18: invalid variable name '1GO' in 'matrix': use letters, digits and '_', "
            "not starting with a digit",
            Errors("name: p\nstages:\n  - name: s\n    steps:\n      - name: t\n        run: x\n"
                   "        matrix: {1GO: [a]}\n"));
}

TEST(MatrixTest, APipelineOfTooManyCombinationsIsAnError) {
  std::string yaml = "name: p\nstages:\n  - name: s\n    steps:\n";
  for (int i = 0; i < 17; ++i)
    yaml += "      - {name: t" + std::to_string(i) +
            ", run: x, matrix: {A: [1, 2, 3, 4, 5, 6, 7, 8], B: [1, 2, 3, 4, 5, 6, 7, 8]}}\n";
  EXPECT_EQ("p.yml:21:37: the matrices of this pipeline make more than 1024 steps", Errors(yaml));
}

// ---- needs across stages ---------------------------------------------------

TEST(StageNeedsTest, AStepMayNeedAStepOfAnEarlierStage) {
  Pipeline p = Valid(R"(name: p
stages:
  - name: build
    steps:
      - {name: compile, run: x}
  - name: test
    steps:
      - {name: unit, run: x, needs: [build/compile, lint]}
      - {name: lint, run: x, needs: [test/fmt]}
      - {name: fmt, run: x}
)");
  EXPECT_EQ((std::vector<std::string>{"build/compile", "lint"}), p.stages[1].steps[0].needs);
  // Its own stage written in full is the bare name.
  EXPECT_EQ((std::vector<std::string>{"fmt"}), p.stages[1].steps[1].needs);
  EXPECT_EQ((std::set<std::pair<std::string, std::string>>{
                {"build", "compile"}, {"test", "lint"}, {"test", "fmt"}}),
            NeedsClosure(p, "test", {"unit"}));
  // The stage's own closure leaves the other stage out.
  EXPECT_EQ((std::set<std::string>{"lint", "fmt"}), NeedsClosure(p.stages[1], {"unit"}));
}

TEST(StageNeedsTest, UnknownStagesAndStepsAreNamedWithASuggestion) {
  EXPECT_EQ(
      "p.yml:8:38: step 'unit' of stage 'test' needs 'biuld/compile', but there is no stage "
      "'biuld'; did you mean 'build'?\n"
      "p.yml:9:38: step 'lint' of stage 'test' needs 'build/compil', but stage 'build' has no "
      "step 'compil'; did you mean 'compile'?",
      Errors(R"(name: p
stages:
  - name: build
    steps:
      - {name: compile, run: x}
  - name: test
    steps:
      - {name: unit, run: x, needs: [biuld/compile]}
      - {name: lint, run: x, needs: [build/compil]}
)"));
}

TEST(StageNeedsTest, AStepOfALaterStageIsAnError) {
  EXPECT_EQ(
      "p.yml:5:41: step 'compile' of stage 'build' needs 'test/unit', a step of a later stage: "
      "stages run in order, so a step can need only steps of its own or earlier stages",
      Errors(R"(name: p
stages:
  - name: build
    steps:
      - {name: compile, run: x, needs: [test/unit]}
  - name: test
    steps:
      - {name: unit, run: x}
)"));
}

TEST(StageNeedsTest, ACycleAcrossStagesIsNamed) {
  std::string errors = Errors(R"(name: p
stages:
  - name: build
    steps:
      - {name: a, run: x, needs: [test/b]}
  - name: test
    steps:
      - {name: b, run: x, needs: [c]}
      - {name: c, run: x, needs: [build/a]}
)");
  EXPECT_NE(std::string::npos,
            errors.find("p.yml:5:35: 'needs' cycle across stages: build/a -> test/b -> test/c -> "
                        "build/a"))
      << errors;
}

TEST(StageNeedsTest, TwiceIsAnError) {
  EXPECT_EQ("p.yml:8:53: step 'unit' of stage 'test' lists 'build/compile' twice in 'needs'",
            Errors(R"(name: p
stages:
  - name: build
    steps:
      - {name: compile, run: x}
  - name: test
    steps:
      - {name: unit, run: x, needs: [build/compile, build/compile]}
)"));
}

}  // namespace
}  // namespace ladle::runner
