// docs/pipeline.md "Triggers": the top-level `on:` key.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "runner/config/pipeline.h"

namespace ladle::runner {
namespace {

const char kStages[] = "stages:\n  - name: test\n    steps:\n      - name: unit\n        run: true\n";

// The errors of a pipeline with `on` as given, one per line; "" when valid.
std::string Errors(const std::string& on, Pipeline* p = nullptr) {
  Pipeline local;
  std::vector<Diagnostic> diagnostics;
  ParsePipeline("name: shop\n" + on + kStages, "ladle.yml", p ? p : &local, &diagnostics);
  std::string out;
  for (const Diagnostic& d : diagnostics)
    if (!d.warning) out += d.ToString() + "\n";
  return out;
}

TEST(PipelineTriggersTest, AbsentOnKeepsBranchPushes) {
  Pipeline p;
  EXPECT_EQ("", Errors("", &p));
  EXPECT_TRUE(p.on_push);
  EXPECT_TRUE(p.push_branches.empty());
  EXPECT_TRUE(p.push_tags.empty());
  EXPECT_FALSE(p.on_pull_request);
  EXPECT_TRUE(p.schedules.empty());
}

TEST(PipelineTriggersTest, EveryKindOfTrigger) {
  Pipeline p;
  EXPECT_EQ("", Errors("on:\n"
                       "  push: {branches: [main], tags: ['v*']}\n"
                       "  pull_request: {branches: [main, 'release/*']}\n"
                       "  schedule:\n"
                       "    - {cron: '0 3 * * *', branch: main}\n"
                       "    - {cron: '@weekly', branch: develop}\n",
                       &p));
  EXPECT_TRUE(p.on_push);
  EXPECT_EQ(std::vector<std::string>{"main"}, p.push_branches);
  EXPECT_EQ(std::vector<std::string>{"v*"}, p.push_tags);
  EXPECT_TRUE(p.on_pull_request);
  EXPECT_EQ((std::vector<std::string>{"main", "release/*"}), p.pull_request_branches);
  ASSERT_EQ(2u, p.schedules.size());
  EXPECT_EQ("0 3 * * *", p.schedules[0].cron);
  EXPECT_EQ("main", p.schedules[0].branch);
  EXPECT_EQ(6, p.schedules[0].location.line);
  EXPECT_EQ("develop", p.schedules[1].branch);
}

TEST(PipelineTriggersTest, OnWithoutPushStartsNoBranchPushes) {
  Pipeline p;
  EXPECT_EQ("", Errors("on:\n  pull_request:\n", &p));
  EXPECT_FALSE(p.on_push);
  EXPECT_TRUE(p.on_pull_request);
  EXPECT_TRUE(p.pull_request_branches.empty());
}

TEST(PipelineTriggersTest, ABadCronIsAnErrorAtItsLineNamingTheField) {
  EXPECT_EQ(
      "ladle.yml:5:13: 'on.schedule' entry #1: 'cron' '0 3 * * 8' is not a cron expression: "
      "day-of-week: 8 is out of range 0-7\n",
      Errors("on:\n  schedule:\n    - branch: main\n      cron: '0 3 * * 8'\n"));
  EXPECT_EQ(
      "ladle.yml:4:14: 'on.schedule' entry #1: 'cron' 'every day' is not a cron expression: needs 5 "
      "fields (minute hour day-of-month month day-of-week), got 2\n",
      Errors("on:\n  schedule:\n    - {cron: every day, branch: main}\n"));
}

TEST(PipelineTriggersTest, ScheduleEntriesNeedCronAndBranch) {
  EXPECT_EQ("ladle.yml:4:7: missing required key 'branch' in 'on.schedule' entry #1\n",
            Errors("on:\n  schedule:\n    - {cron: '* * * * *'}\n"));
  EXPECT_EQ("ladle.yml:4:7: missing required key 'cron' in 'on.schedule' entry #1\n",
            Errors("on:\n  schedule:\n    - {branch: main}\n"));
  EXPECT_NE("", Errors("on:\n  schedule:\n    - {cron: '* * * * *', branch: main, at: 3}\n"));
  EXPECT_NE("", Errors("on:\n  push: {tag: ['v*']}\n"));  // unknown key
  EXPECT_NE("", Errors("on:\n  pull_request: {branches: main, types: [opened]}\n"));
}

}  // namespace
}  // namespace ladle::runner
