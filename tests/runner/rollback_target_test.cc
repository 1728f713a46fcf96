// runner/serve/rollback_target.h: which deployment a rollback redeploys.
#include "runner/serve/rollback_target.h"

#include <gtest/gtest.h>

namespace ladle::runner {
namespace {

// Deployments newest first, from "run:commit:status[:rollback]" in the
// order they happened (oldest first), as ListDeployments would give them.
std::vector<DeploymentRecord> History(std::vector<std::tuple<int64_t, std::string, RunStatus, bool>> made) {
  std::vector<DeploymentRecord> out;
  int64_t id = 0;
  for (const auto& [run, commit, status, rollback] : made) {
    DeploymentRecord d;
    d.id = ++id;
    d.environment = "production";
    d.run_id = run;
    d.commit = commit;
    d.status = status;
    d.rollback = rollback;
    out.insert(out.begin(), d);
  }
  return out;
}

int64_t Target(const std::vector<DeploymentRecord>& h, int64_t to_run = 0) {
  DeploymentRecord d;
  Status s = ChooseRollbackTarget(h, "production", to_run, &d);
  return s.ok() ? d.run_id : -1;
}

TEST(RollbackTargetTest, ThePreviousGoodDeploymentOfAnotherCommit) {
  // A, B: back to A.
  EXPECT_EQ(1, Target(History({{1, "a", kSuccess, false}, {2, "b", kSuccess, false}})));
  // A, B, B again (a re-run of the same commit): still A.
  EXPECT_EQ(1, Target(History({{1, "a", kSuccess, false}, {2, "b", kSuccess, false},
                               {3, "b", kSuccess, false}})));
  // A, B failed: the current good one is A, nothing before it.
  EXPECT_EQ(-1, Target(History({{1, "a", kSuccess, false}, {2, "b", kFailed, false}})));
  // A, B, C failed, interrupted: back to A (C never counted).
  EXPECT_EQ(1, Target(History({{1, "a", kSuccess, false}, {2, "b", kSuccess, false},
                               {3, "c", kFailed, false}, {4, "d", kInterrupted, false}})));
}

TEST(RollbackTargetTest, ARollbackCountsAsADeployment) {
  // A, B, rollback to A (run 3 redeploys a): B again.
  EXPECT_EQ(2, Target(History({{1, "a", kSuccess, false}, {2, "b", kSuccess, false},
                               {3, "a", kSuccess, true}})));
  // A, B, rollback to A, C: the rollback run 3 (commit a).
  EXPECT_EQ(3, Target(History({{1, "a", kSuccess, false}, {2, "b", kSuccess, false},
                               {3, "a", kSuccess, true}, {4, "c", kSuccess, false}})));
}

TEST(RollbackTargetTest, ToARunNamedByHand) {
  auto h = History({{1, "a", kSuccess, false}, {2, "b", kFailed, false}, {3, "c", kSuccess, false}});
  EXPECT_EQ(1, Target(h, 1));
  EXPECT_EQ(3, Target(h, 3));  // the current one: redeploy it
  EXPECT_EQ(-1, Target(h, 2));  // its deployment failed
  DeploymentRecord d;
  Status s = ChooseRollbackTarget(h, "production", 2, &d);
  EXPECT_EQ(Code::kNotFound, s.code());
  EXPECT_EQ("run 2 has no successful deployment to production", s.message());
}

TEST(RollbackTargetTest, MessagesSayWhyThereIsNone) {
  DeploymentRecord d;
  Status s = ChooseRollbackTarget({}, "staging", 0, &d);
  EXPECT_EQ("nothing was deployed to staging yet", s.message());
  s = ChooseRollbackTarget(History({{7, "0123456789abcdef", kSuccess, false}}), "staging", 0, &d);
  EXPECT_EQ(Code::kNotFound, s.code());
  EXPECT_EQ("no earlier successful deployment to staging than commit 0123456789ab (run 7) to roll back to",
            s.message());
}

}  // namespace
}  // namespace ladle::runner
