// Tests of the pipeline loader: the model it builds, and the exact text of
// every kind of diagnostic (users read these, and tools parse FILE:LINE:COL).
#include "runner/config/pipeline.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#ifndef LADLE_TEST_DATA
#define LADLE_TEST_DATA "tests/runner/data"
#endif
#ifndef LADLE_SOURCE_DIR
#define LADLE_SOURCE_DIR "."
#endif

namespace ladle::runner {
namespace {

using std::chrono::milliseconds;
namespace fs = std::filesystem;

const std::string kPipelines = std::string(LADLE_TEST_DATA) + "/pipelines";

// The diagnostics of parsing `yaml` as p.yml, one per line; warnings only
// when `warnings`, errors only otherwise.
std::string Report(std::string_view yaml, bool warnings) {
  Pipeline pipeline;
  std::vector<Diagnostic> diagnostics;
  ParsePipeline(yaml, "p.yml", &pipeline, &diagnostics);
  std::string out;
  for (const Diagnostic& d : diagnostics) {
    if (d.warning != warnings) continue;
    out += (out.empty() ? "" : "\n") + d.ToString();
  }
  return out;
}

std::string Errors(std::string_view yaml) { return Report(yaml, false); }
std::string Warnings(std::string_view yaml) { return Report(yaml, true); }

// Parses a pipeline that must be valid.
Pipeline Valid(std::string_view yaml) {
  Pipeline pipeline;
  std::vector<Diagnostic> diagnostics;
  EXPECT_TRUE(ParsePipeline(yaml, "p.yml", &pipeline, &diagnostics)) << Errors(yaml);
  return pipeline;
}

// A pipeline of one stage 'test' with one step 'unit'; `fields` are more
// lines of that step and start on line 6, column 9.
std::string WithStep(const std::string& fields) {
  std::string yaml = "name: p\nstages:\n  - name: test\n    steps:\n      - name: unit\n";
  std::istringstream lines(fields);
  for (std::string line; std::getline(lines, line);) yaml += "        " + line + "\n";
  return yaml;
}

// A pipeline whose stages are `stages`, starting on line 3.
std::string WithStages(const std::string& stages) { return "name: p\nstages:\n" + stages; }

std::string Load(const std::string& path) {
  Pipeline pipeline;
  std::vector<Diagnostic> diagnostics;
  LoadPipeline(path, &pipeline, &diagnostics);
  std::string out;
  for (const Diagnostic& d : diagnostics) out += (out.empty() ? "" : "\n") + d.ToString();
  return out;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// ---- ParseDuration ----------------------------------------------------------

milliseconds Duration(std::string_view text) {
  milliseconds out{-1};
  return ParseDuration(text, &out) ? out : milliseconds{-1};
}

TEST(ParseDurationTest, Units) {
  EXPECT_EQ(milliseconds(500), Duration("500ms"));
  EXPECT_EQ(milliseconds(90000), Duration("90s"));
  EXPECT_EQ(milliseconds(600000), Duration("10m"));
  EXPECT_EQ(milliseconds(3600000), Duration("1h"));
  EXPECT_EQ(milliseconds(0), Duration("0s"));
}

TEST(ParseDurationTest, Combinations) {
  EXPECT_EQ(milliseconds(5400000), Duration("1h30m"));
  EXPECT_EQ(milliseconds(3723004), Duration("1h2m3s4ms"));
  EXPECT_EQ(milliseconds(61000), Duration("1m1s"));
  EXPECT_EQ(milliseconds(60250), Duration("1m250ms"));
}

TEST(ParseDurationTest, PlainIntegersAreSeconds) {
  EXPECT_EQ(milliseconds(90000), Duration("90"));
  EXPECT_EQ(milliseconds(0), Duration("0"));
}

TEST(ParseDurationTest, RejectsMalformed) {
  for (const char* bad : {"", "s", "10", "1.5h", "2d", "-1s", "1h 30m", "30m1h", "1m1m", "10x",
                          "1h30", "ms", " 5s", "9999999999999s", "99999999999999"}) {
    if (std::string(bad) == "10") continue;  // plain seconds: valid
    EXPECT_EQ(milliseconds(-1), Duration(bad)) << bad;
  }
}

// ---- BranchMatches ----------------------------------------------------------

TEST(BranchMatchesTest, LiteralsAndStar) {
  EXPECT_TRUE(BranchMatches("main", "main"));
  EXPECT_FALSE(BranchMatches("main", "maint"));
  EXPECT_TRUE(BranchMatches("release/*", "release/1.0"));
  EXPECT_TRUE(BranchMatches("release/*", "release/"));
  EXPECT_TRUE(BranchMatches("*", "feature"));
  EXPECT_TRUE(BranchMatches("feat-*-x", "feat-abc-x"));
}

TEST(BranchMatchesTest, StarDoesNotCrossSlash) {
  EXPECT_FALSE(BranchMatches("release/*", "release/1.0/hotfix"));
  EXPECT_FALSE(BranchMatches("*", "feature/x"));
  EXPECT_FALSE(BranchMatches("?", "/"));
}

TEST(BranchMatchesTest, DoubleStarCrossesSlash) {
  EXPECT_TRUE(BranchMatches("release/**", "release/1.0/hotfix"));
  EXPECT_TRUE(BranchMatches("**", "a/b/c"));
  EXPECT_TRUE(BranchMatches("**/fix", "fix"));
  EXPECT_TRUE(BranchMatches("**/fix", "a/b/fix"));
  EXPECT_FALSE(BranchMatches("**/fix", "a/bfix"));
  EXPECT_TRUE(BranchMatches("team/**/wip", "team/wip"));
  EXPECT_TRUE(BranchMatches("team/**/wip", "team/a/b/wip"));
}

TEST(BranchMatchesTest, QuestionMarkClassesAndEscapes) {
  EXPECT_TRUE(BranchMatches("v?", "v1"));
  EXPECT_FALSE(BranchMatches("v?", "v12"));
  EXPECT_TRUE(BranchMatches("v[0-9]", "v7"));
  EXPECT_FALSE(BranchMatches("v[0-9]", "vx"));
  EXPECT_TRUE(BranchMatches("v[!0-9]", "vx"));
  EXPECT_TRUE(BranchMatches("a\\*", "a*"));
  EXPECT_FALSE(BranchMatches("a\\*", "ab"));
  EXPECT_TRUE(BranchMatches("[", "["));  // an unclosed class is a literal
}

TEST(BranchMatchesTest, PathologicalGlobStaysFast) {
  std::string branch(5000, 'a');
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(BranchMatches("*a*a*a*a*a*a*a*a*a*a*b", branch));
  EXPECT_FALSE(BranchMatches("**a**a**a**a**a**a**b", branch));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

// ---- The model ----------------------------------------------------------------

TEST(PipelineTest, SpecExampleLoadsFieldByField) {
  Pipeline p;
  std::vector<Diagnostic> diagnostics;
  std::string path = kPipelines + "/spec_example.yml";
  ASSERT_TRUE(LoadPipeline(path, &p, &diagnostics)) << Load(path);
  EXPECT_TRUE(diagnostics.empty()) << Load(path);
  EXPECT_EQ(path, p.file);
  EXPECT_EQ("webshop", p.name);
  EXPECT_EQ("debian:bookworm-slim", p.image);
  EXPECT_EQ((Vars{{"APP_ENV", "ci"}}), p.env);
  EXPECT_EQ(std::vector<std::string>{"DEPLOY_TOKEN"}, p.secrets);
  EXPECT_EQ((std::vector<std::string>{"main", "release/*"}), p.push_branches);
  ASSERT_EQ(5u, p.stages.size());

  const Stage& build = p.stages[0];
  EXPECT_EQ("build", build.name);
  EXPECT_EQ(9, build.location.line);
  EXPECT_EQ(5, build.location.column);
  EXPECT_FALSE(build.gate);
  ASSERT_EQ(1u, build.steps.size());
  const Step& compile = build.steps[0];
  EXPECT_EQ("compile", compile.name);
  EXPECT_EQ(11, compile.location.line);
  EXPECT_EQ("make -j2", compile.run);
  EXPECT_EQ("debian:bookworm-slim", compile.image);
  EXPECT_EQ(std::vector<std::string>{"build/app"}, compile.artifacts);
  EXPECT_EQ(milliseconds(std::chrono::hours(1)), compile.timeout);

  const Stage& test = p.stages[1];
  EXPECT_EQ("test", test.name);
  ASSERT_TRUE(test.gate);
  EXPECT_EQ(1, test.gate->min_tests);
  ASSERT_EQ(2u, test.steps.size());
  const Step& unit = test.steps[0];
  EXPECT_EQ("build/app --test --junit out/unit.xml", unit.run);
  EXPECT_EQ(std::vector<std::string>{"out/*.xml"}, unit.junit);
  EXPECT_EQ(milliseconds(std::chrono::minutes(10)), unit.timeout);
  EXPECT_EQ(1, unit.retry);
  EXPECT_FALSE(unit.allow_failure);
  const Step& lint = test.steps[1];
  EXPECT_EQ("lint", lint.name);
  EXPECT_TRUE(lint.allow_failure);
  EXPECT_EQ(0, lint.retry);

  const Stage& staging = p.stages[2];
  EXPECT_EQ("staging", staging.environment);
  ASSERT_EQ(2u, staging.steps.size());
  EXPECT_EQ("./deploy.sh staging", staging.steps[0].run);
  EXPECT_EQ(std::vector<std::string>{"deploy"}, staging.steps[1].needs);

  const Stage& production = p.stages[3];
  EXPECT_EQ("production", production.environment);
  EXPECT_EQ(std::vector<std::string>{"main"}, production.when_branches);
  EXPECT_TRUE(production.manual_approval);
  EXPECT_EQ("toggles.yml", production.toggles_file);
  EXPECT_EQ("./deploy.sh production --previous", production.rollback);
  ASSERT_EQ(1u, production.steps.size());

  const Stage& release = p.stages[4];
  EXPECT_TRUE(release.steps.empty());
  ASSERT_TRUE(release.rollout);
  EXPECT_EQ("new-checkout", release.rollout->toggle);
  EXPECT_EQ("production", release.rollout->environment);
  EXPECT_EQ((std::vector<int>{1, 10, 50, 100}), release.rollout->percent);
  EXPECT_EQ(milliseconds(std::chrono::minutes(5)), release.rollout->interval);
  EXPECT_EQ("./health.sh", release.rollout->check);
  EXPECT_EQ(39, release.rollout->location.line);

  EXPECT_EQ(&p.stages[3], p.FindStage("production"));
  EXPECT_EQ(nullptr, p.FindStage("nope"));
}

TEST(PipelineTest, StepDefaults) {
  Pipeline p = Valid(WithStep("run: make"));
  const Step& step = p.stages[0].steps[0];
  EXPECT_EQ("", step.image);
  EXPECT_TRUE(step.env.empty());
  EXPECT_EQ("", step.workdir);
  EXPECT_EQ("", step.keep);
  EXPECT_TRUE(step.needs.empty());
  EXPECT_EQ(milliseconds(std::chrono::hours(1)), step.timeout);
  EXPECT_EQ(0, step.retry);
  EXPECT_FALSE(step.allow_failure);
  EXPECT_EQ("", step.resources.cpus);
  EXPECT_FALSE(step.resources.privileged);
  EXPECT_TRUE(step.resources.volumes.empty());
}

TEST(PipelineTest, EveryStepField) {
  Pipeline p = Valid(WithStep(R"(run: |
  make
  make check
image: gcc:12
env: {CC: gcc, JOBS: 2, DEBUG: true, EMPTY: ""}
workdir: src/app
keep: on-failure
artifacts: [build/app, "dist/**/*.tar.gz"]
reports: {junit: [a.xml, "b/*.xml"]}
timeout: 90
retry: 10
allow_failure: false
cpus: "1.5"
memory: 512m
network: none
privileged: true
dns: [1.1.1.1, "::1"]
volumes: ["/cache:/cache", "data:/data:ro"])"));
  const Step& s = p.stages[0].steps[0];
  EXPECT_EQ("make\nmake check\n", s.run);
  EXPECT_EQ("gcc:12", s.image);
  EXPECT_EQ((Vars{{"CC", "gcc"}, {"JOBS", "2"}, {"DEBUG", "true"}, {"EMPTY", ""}}), s.env);
  EXPECT_EQ("src/app", s.workdir);
  EXPECT_EQ("on-failure", s.keep);
  EXPECT_EQ((std::vector<std::string>{"build/app", "dist/**/*.tar.gz"}), s.artifacts);
  EXPECT_EQ((std::vector<std::string>{"a.xml", "b/*.xml"}), s.junit);
  EXPECT_EQ(milliseconds(90000), s.timeout);
  EXPECT_EQ(10, s.retry);
  EXPECT_EQ("1.5", s.resources.cpus);
  EXPECT_EQ("512m", s.resources.memory);
  EXPECT_EQ("none", s.resources.network);
  EXPECT_TRUE(s.resources.privileged);
  EXPECT_EQ((std::vector<std::string>{"1.1.1.1", "::1"}), s.resources.dns);
  EXPECT_EQ((std::vector<std::string>{"/cache:/cache", "data:/data:ro"}), s.resources.volumes);
}

TEST(PipelineTest, StageSettingsAreStepDefaultsAndStepsOverrideThem) {
  Pipeline p = Valid(R"(name: p
image: base:1
stages:
  - name: build
    image: stage:2
    cpus: 2
    memory: 1g
    network: host
    privileged: true
    dns: [10.0.0.1]
    volumes: ["/a:/a"]
    env: {A: stage}
    steps:
      - {name: inherits, run: x}
      - name: overrides
        run: x
        image: own:3
        cpus: 0.5
        privileged: false
        volumes: []
        env: {A: step}
  - name: plain
    steps:
      - {name: pipeline-image, run: x}
)");
  const Stage& build = p.stages[0];
  EXPECT_EQ((Vars{{"A", "stage"}}), build.env);
  const Step& inherits = build.steps[0];
  EXPECT_EQ("stage:2", inherits.image);
  EXPECT_EQ("2", inherits.resources.cpus);
  EXPECT_EQ("1g", inherits.resources.memory);
  EXPECT_EQ("host", inherits.resources.network);
  EXPECT_TRUE(inherits.resources.privileged);
  EXPECT_EQ(std::vector<std::string>{"10.0.0.1"}, inherits.resources.dns);
  EXPECT_EQ(std::vector<std::string>{"/a:/a"}, inherits.resources.volumes);
  EXPECT_TRUE(inherits.env.empty());  // Step::env is the step's own only
  const Step& overrides = build.steps[1];
  EXPECT_EQ("own:3", overrides.image);
  EXPECT_EQ("0.5", overrides.resources.cpus);
  EXPECT_EQ("1g", overrides.resources.memory);
  EXPECT_FALSE(overrides.resources.privileged);
  EXPECT_TRUE(overrides.resources.volumes.empty());
  EXPECT_EQ(std::vector<std::string>{"10.0.0.1"}, overrides.resources.dns);
  EXPECT_EQ((Vars{{"A", "step"}}), overrides.env);
  EXPECT_EQ("base:1", p.stages[1].steps[0].image);
}

TEST(PipelineTest, WhenBranchAndJunitAcceptOneString) {
  Pipeline p = Valid(WithStages(R"(  - name: a
    when: {branch: "release/*"}
    steps:
      - {name: s, run: x, reports: {junit: out.xml}}
)"));
  EXPECT_EQ(std::vector<std::string>{"release/*"}, p.stages[0].when_branches);
  EXPECT_EQ(std::vector<std::string>{"out.xml"}, p.stages[0].steps[0].junit);
}

TEST(PipelineTest, MergeKeysAndHiddenTemplates) {
  Pipeline p = Valid(R"(name: p
.defaults: &defaults
  image: alpine:3
  retry: 2
  env: &vars {A: "1"}
stages:
  - name: a
    steps:
      - <<: *defaults
        name: one
        run: x
        retry: 1
      - {<<: [*defaults], name: two, run: y, env: *vars}
)");
  const Step& one = p.stages[0].steps[0];
  EXPECT_EQ("alpine:3", one.image);
  EXPECT_EQ(1, one.retry);  // the map's own key wins over the merged one
  EXPECT_EQ((Vars{{"A", "1"}}), one.env);
  EXPECT_EQ(2, p.stages[0].steps[1].retry);
  EXPECT_EQ((Vars{{"A", "1"}}), p.stages[0].steps[1].env);
}

TEST(PipelineTest, RepositoryPipelinesLoad) {
  fs::path dir = fs::path(LADLE_SOURCE_DIR) / "pipelines";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) GTEST_SKIP() << dir << " does not exist yet";
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.path().extension() != ".yml") continue;
    Pipeline p;
    std::vector<Diagnostic> diagnostics;
    EXPECT_TRUE(LoadPipeline(entry.path().string(), &p, &diagnostics)) << Load(entry.path());
  }
}

// Each tests/runner/data/pipelines/NAME.yml with a NAME.expected next to it
// produces exactly those diagnostics.
TEST(PipelineTest, FixturesProduceTheirExpectedDiagnostics) {
  int checked = 0;
  for (const auto& entry : fs::directory_iterator(kPipelines)) {
    fs::path expected = entry.path();
    expected.replace_extension(".expected");
    if (entry.path().extension() != ".yml" || !fs::exists(expected)) continue;
    std::string want = ReadText(expected.string());
    while (!want.empty() && want.back() == '\n') want.pop_back();
    std::string got = Load(entry.path().string());
    std::string prefix = entry.path().string() + ":";
    for (std::size_t at; (at = got.find(prefix)) != std::string::npos;)
      got.replace(at, prefix.size(), entry.path().filename().string() + ":");
    EXPECT_EQ(want, got) << entry.path();
    ++checked;
  }
  EXPECT_GE(checked, 3);
}

// ---- Errors: keys -----------------------------------------------------------

TEST(PipelineErrorsTest, UnknownKeyWithSuggestion) {
  EXPECT_EQ("p.yml:7:9: unknown key 'neeeds' in step 'unit'; did you mean 'needs'?",
            Errors(WithStep("run: x\nneeeds: [a]")));
  EXPECT_EQ("p.yml:2:1: unknown key 'stagse' at the top level; did you mean 'stages'?",
            Errors("name: p\nstagse: []\nstages:\n  - {name: a, steps: [{name: s, run: x}]}\n"));
  EXPECT_EQ(
      "p.yml:4:5: unknown key 'envirnoment' in stage 'a'; did you mean 'environment'?",
      Errors(WithStages("  - name: a\n    envirnoment: prod\n    steps: [{name: s, run: x}]\n")));
}

TEST(PipelineErrorsTest, UnknownKeyWithoutSuggestion) {
  EXPECT_EQ("p.yml:7:9: unknown key 'script' in step 'unit'",
            Errors(WithStep("run: x\nscript: make")));
  EXPECT_EQ("p.yml:3:22: unknown key 'mintests' in 'gate' of stage 'a'; did you mean 'min_tests'?",
            Errors(WithStages("  - {name: a, gate: {mintests: 1}, steps: [{name: s, run: x}]}\n")));
}

TEST(PipelineErrorsTest, WrongTypesSayWhatWasExpectedAndFound) {
  EXPECT_EQ(
      "p.yml:7:16: 'retry' must be an integer, got a string 'abc'\n"
      "p.yml:8:16: 'image' must be a string, got a list\n"
      "p.yml:9:24: 'allow_failure' must be true or false, got a string 'yes'\n"
      "p.yml:10:14: 'env' must be a map, got a list\n"
      "p.yml:11:16: 'needs' must be a list, got a string 'a'\n"
      "p.yml:12:18: 'timeout' must be a duration like 90s, 10m or 1h30m, got a string '5 min'\n"
      "p.yml:13:18: 'reports' must be a map, got a string 'x.xml'\n"
      "p.yml:14:21: 'artifacts' entries must be a string, got a map",
      Errors(WithStep("run: x\nretry: abc\nimage: [a]\nallow_failure: yes\nenv: [A]\nneeds: a\n"
                      "timeout: 5 min\nreports: x.xml\nartifacts: [{a: b}]")));
  EXPECT_EQ("p.yml:7:16: 'retry' must be an integer, got a string '3'",
            Errors(WithStep("run: x\nretry: \"3\"")));
  EXPECT_EQ("p.yml:6:9: 'run' must be a string, got nothing", Errors(WithStep("run:")));
  EXPECT_EQ("p.yml:6:14: 'run' must be a string, got a map", Errors(WithStep("run: {a: 1}")));
  EXPECT_EQ("p.yml:7:16: 'retry' must be an integer, got a number 1.5",
            Errors(WithStep("run: x\nretry: 1.5")));
}

TEST(PipelineErrorsTest, ValuesOutOfRange) {
  EXPECT_EQ(
      "p.yml:7:16: 'retry' must be between 0 and 10, got 11\n"
      "p.yml:8:18: 'timeout' must be longer than 0",
      Errors(WithStep("run: x\nretry: 11\ntimeout: 0s")));
  EXPECT_EQ(
      "p.yml:3:33: 'gate.min_tests' must be at least 0, got -1",
      Errors(WithStages("  - {name: a, gate: {min_tests: -1}, steps: [{name: s, run: x}]}\n")));
  EXPECT_EQ("p.yml:7:16: 'retry' must be between 0 and 10, got 999999999999999999999...",
            Errors(WithStep("run: x\nretry: 999999999999999999999999999999")));
}

TEST(PipelineErrorsTest, EnumerationsAndNames) {
  EXPECT_EQ(
      "p.yml:7:15: 'keep' must be 'never', 'on-failure' or 'always', got a string 'sometimes'",
      Errors(WithStep("run: x\nkeep: sometimes")));
  EXPECT_EQ("p.yml:3:25: 'approval' must be 'manual', got a string 'auto'",
            Errors(WithStages("  - {name: a, approval: auto, steps: [{name: s, run: x}]}\n")));
  EXPECT_EQ(
      "p.yml:3:12: invalid stage name 'Build': use lowercase letters, digits, '-' and '_', "
      "starting with a letter or digit",
      Errors(WithStages("  - {name: Build, steps: [{name: s, run: x}]}\n")));
  EXPECT_EQ(
      "p.yml:5:15: invalid step name '-unit': use lowercase letters, digits, '-' and '_', "
      "starting with a letter or digit",
      Errors("name: p\nstages:\n  - name: test\n    steps:\n      - name: \"-unit\"\n"
             "        run: x\n"));
  EXPECT_EQ(
      "p.yml:3:28: 'environment' must be letters, digits, '.', '_' and '-', starting with a "
      "letter or digit, got a string 'pro duction'",
      Errors(WithStages("  - {name: a, environment: pro duction, when: {branch: main}, "
                        "steps: [{name: s, run: x}]}\n")));
}

TEST(PipelineErrorsTest, SecretsAndVariables) {
  EXPECT_EQ(
      "p.yml:2:14: invalid secret name 'my-token': use letters, digits and '_', not starting "
      "with a digit\n"
      "p.yml:2:24: duplicate secret 'A'\n"
      "p.yml:3:7: invalid variable name '1X': use letters, digits and '_', not starting with "
      "a digit\n"
      "p.yml:3:17: 'env.B' must be a string, got a list",
      Errors("name: p\nsecrets: [A, my-token, A]\nenv: {1X: a, B: [1]}\nstages:\n"
             "  - {name: a, steps: [{name: s, run: x}]}\n"));
}

TEST(PipelineErrorsTest, PathsStayInsideTheWorkspace) {
  EXPECT_EQ(
      "p.yml:7:18: 'workdir' must stay inside the workspace, got 'a/../../b'\n"
      "p.yml:8:21: 'artifacts' entries must be a relative path, got '/etc/passwd'\n"
      "p.yml:9:26: 'reports.junit' entries must stay inside the workspace, got '../x.xml'",
      Errors(WithStep("run: x\nworkdir: a/../../b\nartifacts: [/etc/passwd, ok/./a/..]\n"
                      "reports: {junit: ../x.xml}")));
}

TEST(PipelineErrorsTest, ContainerSettings) {
  EXPECT_EQ(
      "p.yml:7:15: 'cpus' must be a positive number like 1.5, got an integer 0\n"
      "p.yml:8:17: 'memory' must be a size like 512m or 2g (b, k, m, g), got a string '1tb'\n"
      "p.yml:9:18: 'network' must not be empty\n"
      "p.yml:10:21: 'privileged' must be true or false, got an integer 1\n"
      "p.yml:11:24: 'dns' entries must be IP addresses, got 'dns.example'\n"
      "p.yml:12:19: 'volumes' entries must be HOST:CONTAINER[:ro|:rw] with an absolute CONTAINER "
      "path, got 'a:b'\n"
      "p.yml:12:24: 'volumes' entries must be HOST:CONTAINER[:ro|:rw] with an absolute CONTAINER "
      "path, got '/a:/b:rx'",
      Errors(WithStep("run: x\ncpus: 0\nmemory: 1tb\nnetwork: \"\"\nprivileged: 1\n"
                      "dns: [8.8.8.8, dns.example]\nvolumes: [a:b, /a:/b:rx, /c:/d:rw]")));
}

TEST(PipelineErrorsTest, DuplicateKeysNamesTheFirstLine) {
  EXPECT_EQ("p.yml:8:9: duplicate key 'run' (first at line 6)",
            Errors(WithStep("run: make\nretry: 1\nrun: make again")));
  EXPECT_EQ("p.yml:3:43: duplicate key 'name' (first at line 3)",
            Errors(WithStages("  - {name: a, steps: [{name: s, run: x}], name: b}\n")));
  EXPECT_EQ("p.yml:3:1: duplicate key 'name' (first at line 1)",
            Errors("name: p\nstages: [{name: a, steps: [{name: s, run: x}]}]\nname: q\n"));
  EXPECT_EQ(
      "p.yml:2:13: duplicate key 'A' (first at line 2)",
      Errors("name: p\nenv: {A: 1, A: 2}\nstages: [{name: a, steps: [{name: s, run: x}]}]\n"));
}

TEST(PipelineErrorsTest, DuplicateStageAndStepNames) {
  EXPECT_EQ(
      "p.yml:4:5: duplicate stage name 'a' (first at line 3)\n"
      "p.yml:5:42: duplicate step name 's' in stage 'b' (first at line 5)",
      Errors(WithStages("  - {name: a, steps: [{name: s, run: x}]}\n"
                        "  - {name: a, steps: [{name: s, run: x}]}\n"
                        "  - {name: b, steps: [{name: s, run: x}, {name: s, run: y}]}\n")));
}

TEST(PipelineErrorsTest, MissingRequiredKeys) {
  EXPECT_EQ(
      "p.yml:1:1: missing required key 'name' at the top level\n"
      "p.yml:1:1: missing required key 'stages' at the top level",
      Errors("image: x\n"));
  EXPECT_EQ(
      "p.yml:3:5: missing required key 'name' in stage #1\n"
      "p.yml:4:9: missing required key 'run' in step 's'\n"
      "p.yml:6:9: missing required key 'name' in step #2 of stage #1",
      Errors(WithStages("  - steps:\n      - name: s\n        image: x\n      - run: y\n")));
  EXPECT_EQ("p.yml:2:9: 'stages' must list at least one stage", Errors("name: p\nstages: []\n"));
  EXPECT_EQ("p.yml:1:7: 'name' must not be empty",
            Errors("name: \"\"\nstages: [{name: a, steps: [{name: s, run: x}]}]\n"));
}

TEST(PipelineErrorsTest, StagesNeedStepsUnlessTheyRollOut) {
  EXPECT_EQ(
      "p.yml:3:5: stage 'a' has no steps; only a 'rollout' stage may have none\n"
      "p.yml:4:22: stage 'b' has no steps; only a 'rollout' stage may have none",
      Errors(WithStages("  - name: a\n  - {name: b, steps: []}\n")));
  EXPECT_EQ("",
            Errors(WithStages("  - name: deploy\n    environment: prod\n"
                              "    when: {branch: main}\n    steps: [{name: s, run: x}]\n"
                              "  - name: r\n    when: {branch: main}\n"
                              "    rollout: {toggle: t, environment: prod, percent: [100]}\n")));
}

TEST(PipelineErrorsTest, EmptyRunScript) {
  EXPECT_EQ("p.yml:6:14: 'run' must not be empty", Errors(WithStep("run: \"  \"")));
}

TEST(PipelineErrorsTest, NeedsUnknownStepWithSuggestion) {
  EXPECT_EQ(
      "p.yml:6:39: step 'smoke' needs 'deplyo', which is not a step of stage 'staging'; "
      "did you mean 'deploy'?\n"
      "p.yml:7:39: step 'other' needs 'build', which is not a step of stage 'staging'",
      Errors(WithStages("  - name: staging\n    steps:\n"
                        "      - {name: deploy, run: x}\n"
                        "      - {name: smoke, run: x, needs: [deplyo]}\n"
                        "      - {name: other, run: x, needs: [build]}\n")));
}

TEST(PipelineErrorsTest, NeedsItselfAndTwice) {
  EXPECT_EQ("p.yml:7:17: step 'unit' needs itself", Errors(WithStep("run: x\nneeds: [unit]")));
  EXPECT_EQ("p.yml:6:38: step 'b' lists 'a' twice in 'needs'",
            Errors(WithStages("  - name: s\n    steps:\n      - {name: a, run: x}\n"
                              "      - {name: b, run: x, needs: [a, a]}\n")));
}

TEST(PipelineErrorsTest, NeedsCycleShowsItsPath) {
  EXPECT_EQ("p.yml:5:35: 'needs' cycle in stage 's': a -> b -> c -> a",
            Errors(WithStages("  - name: s\n    steps:\n"
                              "      - {name: a, run: x, needs: [b]}\n"
                              "      - {name: b, run: x, needs: [c]}\n"
                              "      - {name: c, run: x, needs: [a]}\n"
                              "      - {name: d, run: x, needs: [c]}\n")));
  EXPECT_EQ("p.yml:6:35: 'needs' cycle in stage 's': b -> c -> b",
            Errors(WithStages("  - name: s\n    steps:\n"
                              "      - {name: a, run: x, needs: [b]}\n"
                              "      - {name: b, run: x, needs: [c]}\n"
                              "      - {name: c, run: x, needs: [b]}\n")));
}

TEST(PipelineErrorsTest, Rollouts) {
  EXPECT_EQ(
      "p.yml:5:23: 'rollout.toggle' must be letters, digits, '.', '_' and '-', up to 128 "
      "characters, got a string 'new checkout'\n"
      "p.yml:5:63: 'rollout.percent' entries must be between 1 and 100, got 0\n"
      "p.yml:5:70: 'rollout.percent' must increase: 50 comes after 50\n"
      "p.yml:5:74: 'rollout.percent' entries must be between 1 and 100, got 101\n"
      "p.yml:5:90: 'rollout.interval' must be a duration like 90s, 10m or 1h30m, got a string "
      "'soon'\n"
      "p.yml:5:103: missing required key 'run' in 'rollout.check'",
      Errors(WithStages("  - name: r\n    when: {branch: main}\n"
                        "    rollout: {toggle: new checkout, environment: p, percent: [0, 50, 50, "
                        "101], interval: soon, check: {}}\n")));
  EXPECT_EQ(
      "p.yml:5:14: missing required key 'toggle' in 'rollout' of stage 'r'\n"
      "p.yml:5:14: missing required key 'environment' in 'rollout' of stage 'r'\n"
      "p.yml:5:14: missing required key 'interval' in 'rollout' of stage 'r': the wait "
      "between two percentages",
      Errors(WithStages("  - name: r\n    when: {branch: main}\n"
                        "    rollout: {percent: [10, 100]}\n")));
}

TEST(PipelineErrorsTest, RollbackNeedsAnEnvironment) {
  EXPECT_EQ(
      "p.yml:3:43: 'rollback' needs an 'environment' in stage 'a': only a deployment can be "
      "rolled back",
      Errors(WithStages("  - {name: a, steps: [{name: s, run: x}], rollback: {run: x}}\n")));
}

TEST(PipelineErrorsTest, WhenAndOn) {
  EXPECT_EQ(
      "p.yml:3:21: missing required key 'branch' in 'when' of stage 'a'\n"
      "p.yml:4:30: 'when.branch' must list at least one branch glob\n"
      "p.yml:6:5: 'on' must be a map, got a string 'push'",
      Errors("name: p\nstages:\n  - {name: a, when: {}, steps: [{name: s, run: x}]}\n"
             "  - {name: b, when: {branch: []}, steps: [{name: s, run: x}]}\n"
             "\non: push\n"));
  EXPECT_EQ("p.yml:2:32: unknown key 'pull' in 'on'; did you mean 'push'?",
            Errors("name: p\non: {push: {branches: [main]}, pull: {}}\n"
                   "stages: [{name: a, steps: [{name: s, run: x}]}]\n"));
}

TEST(PipelineErrorsTest, EveryErrorIsReportedInOnePass) {
  EXPECT_EQ(
      "p.yml:2:1: unknown key 'colour' at the top level\n"
      "p.yml:8:16: 'retry' must be an integer, got a string 'x'\n"
      "p.yml:9:9: unknown key 'neeeds' in step 'unit'; did you mean 'needs'?\n"
      "p.yml:10:11: invalid stage name 'Bad': use lowercase letters, digits, '-' and '_', "
      "starting with a letter or digit\n"
      "p.yml:11:12: stage 'Bad' has no steps; only a 'rollout' stage may have none",
      Errors(R"(name: p
colour: red
stages:
  - name: test
    steps:
      - name: unit
        run: x
        retry: x
        neeeds: [a]
  - name: Bad
    steps: []
)"));
}

// ---- Warnings -----------------------------------------------------------------

const char kUnprotected[] =
    "no earlier stage has a 'gate' and the stage has no 'when': ladle exists to ship only what "
    "the tests let through";

TEST(PipelineWarningsTest, UnprotectedDeploymentWarns) {
  std::string yaml =
      WithStages("  - {name: deploy, environment: prod, steps: [{name: s, run: x}]}\n");
  EXPECT_EQ(
      "p.yml:3:33: warning: stage 'deploy' deploys to 'prod' but " + std::string(kUnprotected),
      Warnings(yaml));
  Pipeline p;
  std::vector<Diagnostic> diagnostics;
  EXPECT_TRUE(ParsePipeline(yaml, "p.yml", &p, &diagnostics));  // warnings do not fail
}

TEST(PipelineWarningsTest, EarlierGateOrOwnWhenProtects) {
  EXPECT_EQ("", Warnings(WithStages(
                    "  - {name: test, gate: {min_tests: 1}, steps: [{name: s, run: x}]}\n"
                    "  - {name: deploy, environment: prod, steps: [{name: s, run: x}]}\n")));
  EXPECT_EQ("", Warnings(WithStages("  - {name: deploy, environment: prod, when: {branch: main}, "
                                    "steps: [{name: s, run: x}]}\n")));
}

TEST(PipelineWarningsTest, OwnOrLaterGateDoesNotProtect) {
  EXPECT_EQ(
      "p.yml:3:33: warning: stage 'deploy' deploys to 'prod' but " + std::string(kUnprotected),
      Warnings(WithStages("  - {name: deploy, environment: prod, gate: {min_tests: 1}, "
                          "steps: [{name: s, run: x}]}\n"
                          "  - {name: test, gate: {min_tests: 1}, steps: [{name: s, run: x}]}\n")));
}

TEST(PipelineWarningsTest, UnprotectedRolloutWarns) {
  EXPECT_EQ(
      "p.yml:5:5: warning: stage 'release' rolls out 'checkout' but " + std::string(kUnprotected),
      Warnings(WithStages("  - {name: deploy, environment: prod, when: {branch: main}, "
                          "steps: [{name: s, run: x}]}\n"
                          "  - name: release\n"
                          "    rollout: {toggle: checkout, environment: prod, percent: [100]}\n")));
}

TEST(PipelineWarningsTest, RolloutWithoutAnEarlierDeploymentNeverRuns) {
  EXPECT_EQ(
      "p.yml:6:5: warning: stage 'release' rolls out in 'prod', which no stage up to here "
      "deploys to: it will never run",
      Warnings(WithStages("  - {name: test, gate: {min_tests: 1}, steps: [{name: s, run: x}]}\n"
                          "  - {name: deploy, environment: staging, steps: [{name: s, run: x}]}\n"
                          "  - name: release\n"
                          "    rollout: {toggle: t, environment: prod, percent: [100]}\n")));
}

// ---- Bad input ----------------------------------------------------------------

TEST(PipelineInputTest, EmptyFile) {
  const std::string kEmpty =
      "p.yml:1:1: the file is empty; a pipeline needs at least 'name' and 'stages'";
  EXPECT_EQ(kEmpty, Errors(""));
  EXPECT_EQ(kEmpty, Errors("# only a comment\n\n"));
  EXPECT_EQ(kEmpty, Errors("---\n"));
}

TEST(PipelineInputTest, BinaryData) {
  EXPECT_EQ("p.yml:2:5: the file contains a NUL byte; is it a binary file?",
            Errors(std::string("name: p\nab: \0x\n", 14)));
  EXPECT_EQ("p.yml:1:7: the file is not UTF-8 text (byte 0xFF); is it a binary file?",
            Errors("name: \xff\xfe\n"));
  EXPECT_EQ("p.yml:1:7: the file is not UTF-8 text (byte 0xC0); is it a binary file?",
            Errors("name: \xc0\xaf\n"));  // an overlong '/'
  EXPECT_EQ("p.yml:1:3: the file contains a control character (0x1B); is it a binary file?",
            Errors("a:\x1b[0m\n"));
  EXPECT_EQ("p.yml:1:1: the file contains a NUL byte; is it a binary file?",
            Errors(std::string("\0\0\0n\0a\0m\0e", 11)));  // UTF-16
}

TEST(PipelineInputTest, Utf8AndByteOrderMarkAreFine) {
  Pipeline p = Valid(
      "\xEF\xBB\xBFname: caf\xC3\xA9\nstages: [{name: a, steps: [{name: s, run: echo "
      "\xE2\x9C\x93}]}]\n");
  EXPECT_EQ("caf\xC3\xA9", p.name);
  EXPECT_EQ("p.yml:1:1: unknown key 'x' at the top level",
            Errors("\xEF\xBB\xBFx: 1\nname: p\nstages: [{name: a, steps: [{name: s, run: x}]}]\n"));
  EXPECT_EQ("p.yml:1:7: the file is not UTF-8 text (byte 0xFF); is it a binary file?",
            Errors("\xEF\xBB\xBFname: \xff\n"));
}

TEST(PipelineInputTest, TooLargeIsRefusedBeforeParsing) {
  std::string big(10 * 1024 * 1024 + 1, '#');
  EXPECT_EQ("p.yml: the file is too large: 10485761 bytes, over the 10 MB limit", Errors(big));
}

TEST(PipelineInputTest, DeepNestingIsBounded) {
  // The top-level map is the first level.
  EXPECT_EQ("p.yml:1:70: nesting deeper than 64 levels",
            Errors("name: " + std::string(100, '[') + std::string(100, ']') + "\n"));
  // yaml-cpp reads unclosed "[[" as sequences of single-pair maps.
  EXPECT_EQ("p.yml:1:39: nesting deeper than 64 levels",
            Errors("name: " + std::string(100000, '[') + "\n"));
}

// Found by fuzzing: merge keys re-walked every map they reached, so each such
// input spent the whole visit budget (2 s under ASan) and repeated its errors.
TEST(PipelineInputTest, BillionLaughsOfMergeKeysStaysLinear) {
  // Merge keys five levels deep, ten aliases each: 10^5 maps for a naive
  // walk, past its budget of visits; 3 MB expanded, within the byte budget
  // (deeper ones are refused by that: AThousandAliasesOfAMegabyte).
  std::string yaml = "name: p\n.m0: &m0 {retry: 1, colour: red}\n";
  for (int i = 1; i < 6; ++i) {
    yaml += ".m" + std::to_string(i) + ": &m" + std::to_string(i) + " {<<: [";
    for (int k = 0; k < 10; ++k) yaml += std::string(k ? ", " : "") + "*m" + std::to_string(i - 1);
    yaml += "]}\n";
  }
  yaml += "stages:\n  - name: a\n    steps: [{<<: *m5, name: s, run: x}]\n";
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ("p.yml:2:21: unknown key 'colour' in step 's'", Errors(yaml));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST(PipelineInputTest, MergeChainsAreBounded) {
  // Each map merges the previous one: recursion as deep as the anchors.
  std::string yaml = "name: p\n.m0: &m0 {retry: 1}\n";
  for (int i = 1; i < 40; ++i)
    yaml += ".m" + std::to_string(i) + ": &m" + std::to_string(i) + " {<<: *m" +
            std::to_string(i - 1) + "}\n";
  yaml += "stages:\n  - name: a\n    steps: [{<<: *m39, name: s, run: x}]\n";
  EXPECT_EQ("p.yml:10:15: merge keys ('<<') nested too deeply", Errors(yaml));
}

TEST(PipelineInputTest, AliasedListsAreCheckedWhereTheyAreUsed) {
  EXPECT_EQ(
      "p.yml:3:11: 'artifacts' entries must be a string, got a list\n"
      "p.yml:3:16: 'artifacts' entries must be a string, got a list\n"
      "p.yml:6:14: 'env.A' must be a string, got a list",
      Errors("name: p\n.l0: &l0 [a, b]\n.l1: &l1 [*l0, *l0]\nstages:\n  - name: a\n"
             "    env: {A: *l1}\n    steps: [{name: s, run: x, artifacts: *l1}]\n"));
}

TEST(PipelineInputTest, AliasExpansionIsBudgeted) {
  // A thousand steps used by two hundred stages: 200k step maps.
  std::string yaml = "name: p\n.s: &s [";
  for (int i = 0; i < 1000; ++i)
    yaml += (i ? ", " : "") + std::string("{name: s") + std::to_string(i) + ", run: x}";
  yaml += "]\nstages:\n";
  for (int i = 0; i < 200; ++i) yaml += "  - {name: s" + std::to_string(i) + ", steps: *s}\n";
  auto start = std::chrono::steady_clock::now();
  std::string errors = Errors(yaml);
  EXPECT_NE(std::string::npos,
            errors.find(": the pipeline is too large to check: too many YAML nodes (each use of "
                        "an alias counts)"))
      << errors.substr(0, 500);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

// Issue 10: one 1 MiB anchored scalar and 1,000 aliases of it took 2 GB to
// validate. The alias that takes the document past 10 MB is refused while
// parsing, before a value is copied out.
TEST(PipelineInputTest, AThousandAliasesOfAMegabyte) {
  std::string yaml = "name: p\n.big: &big " + std::string(1 << 20, 'x') + "\nenv:\n";
  for (int i = 0; i < 1000; ++i) yaml += "  V" + std::to_string(i) + ": *big\n";
  yaml += "stages: [{name: a, steps: [{name: s, run: x}]}]\n";
  EXPECT_EQ(
      "p.yml:12:7: with its aliases expanded, the document is larger than 10 MB (this alias "
      "repeats 1 MB; each use of an alias counts its anchor's whole size)",
      Errors(yaml));
}

TEST(PipelineInputTest, TooManyNodes) {
  std::string yaml = "name: p\nstages: [";
  for (int i = 0; i < 100001; ++i) yaml += "1,";
  EXPECT_EQ("p.yml:2:200000: more than 100000 YAML nodes; this is not a pipeline file",
            Errors(yaml + "]\n"));
}

TEST(PipelineInputTest, AliasInsideItsOwnAnchor) {
  EXPECT_EQ("p.yml:2:16: this alias refers to a node that contains it",
            Errors("name: p\nstages: &s [a, *s]\n"));
}

TEST(PipelineInputTest, AliasProblemsPointAtTheAlias) {
  EXPECT_EQ("p.yml:5:36: duplicate step name 's' in stage 'a' (first at line 5)",
            Errors("name: p\n.s: &s {name: s, run: x}\nstages:\n  - name: a\n"
                   "    steps: [*s, {name: t, run: x}, *s]\n"));
}

TEST(PipelineInputTest, TabIndentation) {
  EXPECT_EQ("p.yml:3:1: a tab indents this line; YAML indents with spaces only",
            Errors("name: p\nstages:\n\t- name: a\n"));
  EXPECT_EQ("p.yml:4:3: a tab indents this line; YAML indents with spaces only",
            Errors("name: p\nstages:\n  - name: a\n  \tsteps: []\n"));
  // yaml-cpp refuses a tab even on an otherwise blank line.
  EXPECT_EQ("p.yml:2:1: a tab indents this line; YAML indents with spaces only",
            Errors("name: p\n\t\nstages: []\n"));
  // Tabs between tokens are fine.
  EXPECT_EQ("", Errors("name:\tp\nstages: [{name: a,\n\tsteps: [{name: s, run: x}]}]\n"));
}

TEST(PipelineInputTest, TopLevelMustBeAMap) {
  EXPECT_EQ("p.yml:1:1: the top level must be a map with 'name' and 'stages', got a list",
            Errors("- name: p\n"));
  EXPECT_EQ("p.yml:1:1: the top level must be a map with 'name' and 'stages', got a string 'hello'",
            Errors("hello\n"));
}

TEST(PipelineInputTest, SyntaxErrors) {
  EXPECT_EQ("p.yml:3:1: YAML syntax error: end of sequence flow not found",
            Errors("name: p\nstages: [a, b\n"));
  EXPECT_EQ("p.yml:2:10: YAML syntax error: the referenced anchor is not defined",
            Errors("name: p\nstages: [*nowhere]\n"));
  EXPECT_EQ("p.yml:1:5: YAML syntax error: illegal map value", Errors("a: b: c\n"));
}

TEST(PipelineInputTest, OneDocumentOnly) {
  // The first document is still checked.
  EXPECT_EQ(
      "p.yml:1:1: missing required key 'stages' at the top level\n"
      "p.yml:2:1: a second YAML document starts here; a pipeline file holds exactly one",
      Errors("name: p\n---\nname: q\n"));
}

TEST(PipelineInputTest, ApplicationTagsAreRefused) {
  EXPECT_EQ("p.yml:2:9: unsupported YAML tag '!reference'",
            Errors("name: p\nstages: !reference [.x, y]\n"));
}

TEST(PipelineInputTest, KeysMustBeStrings) {
  EXPECT_EQ("p.yml:3:3: keys must be strings, got a list",
            Errors("name: p\nstages: [{name: a, steps: [{name: s, run: x}]}]\n? [a]\n: b\n"));
}

// ---- LoadPipeline -----------------------------------------------------------

TEST(LoadPipelineTest, MissingFile) {
  EXPECT_EQ("/nonexistent/ladle.yml: cannot read: No such file or directory",
            Load("/nonexistent/ladle.yml"));
  std::string file = kPipelines + "/spec_example.yml";
  EXPECT_EQ(file + "/x.yml: cannot read: Not a directory", Load(file + "/x.yml"));
}

TEST(LoadPipelineTest, Directory) {
  EXPECT_EQ(kPipelines + ": cannot read: Is a directory", Load(kPipelines));
}

TEST(LoadPipelineTest, UnreadableFile) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads anything";
  std::string path = ::testing::TempDir() + "/ladle_unreadable.yml";
  std::ofstream(path) << "name: p\n";
  fs::permissions(path, fs::perms::none);
  EXPECT_EQ(path + ": cannot read: Permission denied", Load(path));
  fs::remove(path);
}

TEST(LoadPipelineTest, OversizedFileIsNotReadWhole) {
  std::string path = ::testing::TempDir() + "/ladle_big.yml";
  {
    std::ofstream out(path);
    std::string chunk(1 << 20, '#');
    for (int i = 0; i < 12; ++i) out << chunk;
  }
  EXPECT_EQ(path + ": the file is too large: 12582912 bytes, over the 10 MB limit", Load(path));
  fs::remove(path);
}

TEST(DiagnosticTest, ToString) {
  EXPECT_EQ("f.yml:3:7: boom", (Diagnostic{"f.yml", {3, 7}, false, "boom"}).ToString());
  EXPECT_EQ("f.yml:3:7: warning: hm", (Diagnostic{"f.yml", {3, 7}, true, "hm"}).ToString());
  EXPECT_EQ("f.yml: cannot read: x", (Diagnostic{"f.yml", {}, false, "cannot read: x"}).ToString());
}

}  // namespace
}  // namespace ladle::runner
