// The run store's part of docs/server.md "Triggers": refs, re-runs, who
// supersedes whom, and the schedules' last fired minute.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>

#include "runner/store/run_store.h"
#include "tests/pg_util.h"
#include "tests/test_util.h"

namespace ladle::runner {
namespace {

// On both stores, as tests/runner/run_store_test.cc.
class RunStoreTriggersTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = ladle::testing::MakeTempDir("/tmp/ladle-store-triggers-XXXXXX");
    location_ = dir_.string();
    if (GetParam() == "postgresql") {
      LADLE_REQUIRE_POSTGRES();
      location_ = testing::PostgresServer::Get()->CreateDatabase(
          ::testing::UnitTest::GetInstance()->current_test_info()->name());
    }
    Open();
  }
  void Open() {
    store_.reset();
    Status s = RunStore::OpenLocation(location_, dir_.string(), &store_);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  void TearDown() override {
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  int64_t Enqueue(const std::string& trigger, const std::string& branch, const std::string& ref,
                  std::vector<int64_t>* superseded = nullptr) {
    RunRecord run;
    run.repo = "app";
    run.branch = branch;
    run.ref = ref;
    run.commit = "c" + std::to_string(++commits_);
    run.trigger = trigger;
    std::vector<int64_t> ignored;
    EXPECT_TRUE(store_->EnqueueRun(&run, superseded ? superseded : &ignored).ok());
    return run.id;
  }
  std::string StatusOf(int64_t id) {
    RunRecord run;
    EXPECT_TRUE(store_->GetRun(id, &run).ok());
    return ToString(run.status);
  }

  std::filesystem::path dir_;
  std::string location_;  // dir_, or a postgresql:// URI
  std::unique_ptr<RunStore> store_;
  int commits_ = 0;
};

INSTANTIATE_TEST_SUITE_P(Stores, RunStoreTriggersTest, ::testing::Values("sqlite", "postgresql"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

TEST_P(RunStoreTriggersTest, RefAndRerunOfAreKeptAndShown) {
  RunRecord run;
  run.repo = "app";
  run.commit = "abc";
  run.ref = "refs/pull/7/head";
  run.trigger = "rerun";
  run.rerun_of = 3;
  std::vector<int64_t> superseded;
  ASSERT_TRUE(store_->EnqueueRun(&run, &superseded).ok());
  RunRecord back;
  ASSERT_TRUE(store_->GetRun(run.id, &back).ok());
  EXPECT_EQ("refs/pull/7/head", back.ref);
  EXPECT_EQ(3, back.rerun_of);
  nlohmann::json j = RunToJson(back);
  EXPECT_EQ("refs/pull/7/head", j["ref"]);
  EXPECT_EQ(3, j["rerun_of"]);
}

TEST_P(RunStoreTriggersTest, OnlyNewHeadsOfTheSameRefSupersede) {
  const int64_t api = Enqueue("api", "main", "refs/heads/main");
  const int64_t schedule = Enqueue("schedule", "main", "refs/heads/main");
  const int64_t pr = Enqueue("pull_request", "", "refs/pull/7/head");
  const int64_t commit_run = Enqueue("api", "", "");
  std::vector<int64_t> superseded;
  const int64_t push = Enqueue("push", "main", "refs/heads/main", &superseded);
  EXPECT_TRUE(superseded.empty());
  Enqueue("push", "main", "refs/heads/main", &superseded);
  EXPECT_EQ(std::vector<int64_t>{push}, superseded);
  Enqueue("pull_request", "", "refs/pull/8/head", &superseded);
  EXPECT_TRUE(superseded.empty());  // another pull request, and not the commit run
  Enqueue("pull_request", "", "refs/pull/7/head", &superseded);
  EXPECT_EQ(std::vector<int64_t>{pr}, superseded);
  EXPECT_EQ("queued", StatusOf(api));
  EXPECT_EQ("queued", StatusOf(schedule));
  EXPECT_EQ("queued", StatusOf(commit_run));
  Enqueue("rerun", "main", "refs/heads/main", &superseded);
  EXPECT_TRUE(superseded.empty());
}

TEST_P(RunStoreTriggersTest, HasRunForRefCountsPushesAndPullRequestsOnly) {
  RunRecord run;
  run.repo = "app";
  run.commit = "abc";
  run.ref = "refs/tags/v1";
  run.trigger = "api";
  std::vector<int64_t> superseded;
  ASSERT_TRUE(store_->EnqueueRun(&run, &superseded).ok());
  bool exists = true;
  ASSERT_TRUE(store_->HasRunForRef("app", "refs/tags/v1", "abc", &exists).ok());
  EXPECT_FALSE(exists);
  run.id = 0;
  run.trigger = "push";
  ASSERT_TRUE(store_->EnqueueRun(&run, &superseded).ok());
  ASSERT_TRUE(store_->HasRunForRef("app", "refs/tags/v1", "abc", &exists).ok());
  EXPECT_TRUE(exists);
  ASSERT_TRUE(store_->HasRunForRef("app", "refs/tags/v2", "abc", &exists).ok());
  EXPECT_FALSE(exists);
}

TEST_P(RunStoreTriggersTest, AScheduleMinuteIsClaimedOnceAndSurvivesAReopen) {
  int64_t last = -1;
  ASSERT_TRUE(store_->LastScheduleFire("app", "main", "* * * * *", &last).ok());
  EXPECT_EQ(0, last);
  bool fresh = false;
  ASSERT_TRUE(store_->ClaimScheduleFire("app", "main", "* * * * *", 120, &fresh).ok());
  EXPECT_TRUE(fresh);
  ASSERT_TRUE(store_->ClaimScheduleFire("app", "main", "* * * * *", 120, &fresh).ok());
  EXPECT_FALSE(fresh);
  ASSERT_TRUE(store_->ClaimScheduleFire("app", "main", "* * * * *", 60, &fresh).ok());
  EXPECT_FALSE(fresh);  // an older minute never goes back
  Open();
  ASSERT_TRUE(store_->LastScheduleFire("app", "main", "* * * * *", &last).ok());
  EXPECT_EQ(120, last);
  ASSERT_TRUE(store_->ClaimScheduleFire("app", "main", "* * * * *", 180, &fresh).ok());
  EXPECT_TRUE(fresh);
  ASSERT_TRUE(store_->LastScheduleFire("app", "main", "0 3 * * *", &last).ok());
  EXPECT_EQ(0, last);  // per expression
}

}  // namespace
}  // namespace ladle::runner
