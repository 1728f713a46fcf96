// The pipeline loader on `services:` and `cache:` (docs/pipeline.md
// "Services" and "Caches"): the model, and the exact text of each diagnostic.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "runner/config/pipeline.h"

namespace ladle::runner {
namespace {

std::string Errors(const std::string& yaml) {
  Pipeline pipeline;
  std::vector<Diagnostic> diagnostics;
  ParsePipeline(yaml, "p.yml", &pipeline, &diagnostics);
  std::string out;
  for (const Diagnostic& d : diagnostics)
    if (!d.warning) out += (out.empty() ? "" : "\n") + d.ToString();
  return out;
}

Pipeline Valid(const std::string& yaml) {
  Pipeline pipeline;
  std::vector<Diagnostic> diagnostics;
  EXPECT_TRUE(ParsePipeline(yaml, "p.yml", &pipeline, &diagnostics)) << Errors(yaml);
  return pipeline;
}

// One stage 'test' (image busybox) with one step 'unit'; `step` holds more
// lines of the step, starting on line 7, column 9.
std::string WithStep(const std::string& step, const std::string& stage = "") {
  return "name: p\nimage: busybox\nstages:\n  - name: test\n" + stage +
         "    steps:\n      - name: unit\n        run: make\n" + step;
}

TEST(PipelineServicesTest, StepServicesAreRead) {
  Pipeline p = Valid(WithStep(R"(        services:
          - name: db
            image: postgres:16
            env: {POSTGRES_PASSWORD: x}
            command: [postgres, -c, fsync=off]
            port: 5432
            ready: {timeout: 30s}
          - name: cache
            image: busybox
            command: nc -lk -p 6379
            ready: {command: 'test -e /tmp/up', timeout: 5s}
)"));
  const Step& step = p.stages[0].steps[0];
  ASSERT_EQ(2u, step.services.size());
  const env::ServiceSpec& db = step.services[0];
  EXPECT_EQ("db", db.name);
  EXPECT_EQ("postgres:16", db.image);
  ASSERT_EQ(1u, db.env.size());
  EXPECT_EQ("POSTGRES_PASSWORD", db.env[0].first);
  EXPECT_EQ((std::vector<std::string>{"postgres", "-c", "fsync=off"}), db.command);
  EXPECT_FALSE(db.shell);
  EXPECT_EQ(5432, db.port);
  EXPECT_EQ(5432, db.ready_port);
  EXPECT_EQ(std::chrono::seconds(30), db.ready_timeout);
  const env::ServiceSpec& cache = step.services[1];
  EXPECT_TRUE(cache.shell);
  EXPECT_EQ(std::vector<std::string>{"nc -lk -p 6379"}, cache.command);
  EXPECT_EQ(0, cache.ready_port);
  EXPECT_EQ("test -e /tmp/up", cache.ready_command);
  EXPECT_EQ(std::chrono::seconds(5), cache.ready_timeout);
}

TEST(PipelineServicesTest, StageServicesGoToEachStepUnlessItHasItsOwn) {
  Pipeline p = Valid(
      "name: p\nimage: busybox\nstages:\n  - name: test\n    services:\n"
      "      - {name: db, image: busybox, port: 5432}\n    steps:\n"
      "      - {name: a, run: 'true'}\n"
      "      - {name: b, run: 'true', services: [{name: mq, image: busybox}]}\n");
  ASSERT_EQ(1u, p.stages[0].steps[0].services.size());
  EXPECT_EQ("db", p.stages[0].steps[0].services[0].name);
  ASSERT_EQ(1u, p.stages[0].steps[1].services.size());
  EXPECT_EQ("mq", p.stages[0].steps[1].services[0].name);
}

TEST(PipelineServicesTest, TwoServicesOnOnePortIsAnError) {
  EXPECT_EQ(
      "p.yml:10:13: services 'db' and 'db2' of step 'unit' both use port 5432: they share one "
      "network namespace with the step",
      Errors(WithStep("        services:\n"
                      "          - {name: db, image: busybox, port: 5432}\n"
                      "          - {name: db2, image: busybox, ready: {port: 5432}}\n")));
}

TEST(PipelineServicesTest, WrongKeysSayWhatWasMeant) {
  EXPECT_EQ("p.yml:9:13: missing required key 'image' in service 'db' of step 'unit'\n"
            "p.yml:10:13: unknown key 'imag' in service 'db' of step 'unit'; did you mean "
            "'image'?",
            Errors(WithStep("        services:\n          - name: db\n            imag: x\n")));
}

TEST(PipelineServicesTest, BadValues) {
  EXPECT_EQ("p.yml:11:19: 'services.port' must be between 1 and 65535, got 70000",
            Errors(WithStep("        services:\n          - name: db\n            image: b\n"
                            "            port: 70000\n")));
  EXPECT_EQ("p.yml:9:20: 'services.name' must be lowercase letters, digits, '-' and '_', "
            "starting with a letter or digit, got a string 'DB'",
            Errors(WithStep("        services:\n          - {name: DB, image: b}\n")));
  EXPECT_EQ("p.yml:9:60: 'ready' takes 'command' or 'port', not both",
            Errors(WithStep("        services:\n          - {name: db, image: b, ready: "
                            "{command: x, port: 1}}\n")));
}

TEST(PipelineServicesTest, ServicesNeedAnImageForTheDockerBackend) {
  std::string yaml =
      "name: p\nstages:\n  - name: test\n    steps:\n      - name: unit\n        run: make\n"
      "        services: [{name: db, image: busybox}]\n";
  EXPECT_EQ("p.yml:7:9: step 'unit' has services but no image: services need the docker "
            "backend (set image: on the step, its stage or the pipeline)",
            Errors(yaml));
}

TEST(PipelineCacheTest, CacheIsRead) {
  Pipeline p = Valid(WithStep(R"(        cache:
          paths: [node_modules, .npm]
          key: {files: [package-lock.json], prefix: npm}
          policy: pull
          max_size: 512m
)"));
  const Cache& cache = *p.stages[0].steps[0].cache;
  EXPECT_EQ((std::vector<std::string>{"node_modules", ".npm"}), cache.paths);
  EXPECT_EQ(std::vector<std::string>{"package-lock.json"}, cache.key_files);
  EXPECT_EQ("npm", cache.key_prefix);
  EXPECT_EQ("pull", cache.policy);
  EXPECT_EQ(512LL << 20, cache.max_size);

  Pipeline q = Valid(WithStep("        cache: {paths: vendor, key: 'deps-${LADLE_BRANCH}'}\n"));
  const Cache& c = *q.stages[0].steps[0].cache;
  EXPECT_EQ("deps-${LADLE_BRANCH}", c.key);
  EXPECT_EQ("pull-push", c.policy);
  EXPECT_EQ(1LL << 30, c.max_size);
}

TEST(PipelineCacheTest, CacheWithoutPathsIsAnError) {
  EXPECT_EQ("p.yml:8:16: missing required key 'paths' in 'cache' of step 'unit': the files to "
            "keep, relative to the workspace",
            Errors(WithStep("        cache: {key: x}\n")));
  EXPECT_EQ("p.yml:8:24: 'cache.paths' must list at least one path",
            Errors(WithStep("        cache: {paths: [], key: x}\n")));
}

TEST(PipelineCacheTest, PolicyMustBeOneOfThree) {
  EXPECT_EQ("p.yml:8:43: 'cache.policy' must be 'pull', 'push' or 'pull-push', got a string "
            "'pul'; did you mean 'pull'?",
            Errors(WithStep("        cache: {paths: a, key: x, policy: pul}\n")));
}

TEST(PipelineCacheTest, PathsAndKeyFilesStayInTheWorkspace) {
  EXPECT_EQ("p.yml:8:25: 'cache.paths' entries must stay inside the workspace, got '../x'",
            Errors(WithStep("        cache: {paths: [../x], key: x}\n")));
  EXPECT_EQ("p.yml:8:41: 'cache.key.files' entries must be a relative path, got '/etc/passwd'",
            Errors(WithStep("        cache: {paths: a, key: {files: [/etc/passwd]}}\n")));
}

TEST(PipelineCacheTest, WrongKeysSayWhatWasMeant) {
  EXPECT_EQ("p.yml:8:27: unknown key 'polcy' in 'cache' of step 'unit'; did you mean 'policy'?",
            Errors(WithStep("        cache: {paths: a, polcy: pull, key: x}\n")));
  EXPECT_EQ("p.yml:8:45: 'cache.max_size' must be a size like 512m or 2g (b, k, m, g), got a "
            "string 'lots'",
            Errors(WithStep("        cache: {paths: a, key: x, max_size: lots}\n")));
}

}  // namespace
}  // namespace ladle::runner
