// runner/exec/rollout.h: rollout stages against a real ToggleStore in a temp dir,
// with hooks that record what the executor would have been asked to do.
#include "runner/exec/rollout.h"

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace ladle::runner {
namespace {

using namespace std::chrono_literals;
using toggles::AuditEvent;
using toggles::EnvironmentConfig;
using toggles::Toggle;

std::string Join(const std::vector<std::string>& v, const char* sep = ",") {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

std::string Join(const std::vector<RunStatus>& v) {
  std::string out;
  for (RunStatus s : v) out += (out.empty() ? "" : ",") + std::string(ToString(s));
  return out;
}

class RolloutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ladle_rollout_test.XXXXXX";
    ASSERT_NE(nullptr, mkdtemp(tmpl));
    dir_ = tmpl;
    ASSERT_TRUE(toggles::ToggleStore::Open(dir_, &store_).ok());
    ops_ = StoreToggleOps(store_.get());
    rollout_.toggle = "new-checkout";
    rollout_.environment = "production";
    rollout_.percent = {1, 10, 50, 100};
    rollout_.interval = 5min;
    hooks_.check = [this](size_t index, int percent) {
      checks_.push_back(std::to_string(index) + ":" + std::to_string(percent));
      return percent != fail_at_;
    };
    hooks_.wait = [this](std::chrono::milliseconds d) {
      waits_.push_back(std::to_string(d.count() / 1000) + "s");
      if (during_wait_) during_wait_();
      return waits_.size() != cancel_at_wait_;
    };
    hooks_.note = [this](const std::string& line) { notes_.push_back(line); };
  }
  void TearDown() override {
    ops_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Creates the toggle with `config` in production (disabled when omitted).
  void Create(const std::string& config_json = R"({"enabled":false})") {
    Toggle t;
    t.key = "new-checkout";
    ASSERT_TRUE(toggles::ParseEnvironmentConfig(nlohmann::json::parse(config_json),
                                                &t.environments["production"])
                    .ok());
    toggles::WriteResult w;
    ASSERT_TRUE(store_->Create(t, "alice", &w).ok());
  }

  Status Run() { return RunRollout(rollout_, ops_.get(), "ladle run", "run 7", hooks_, &result_); }

  // The toggle's production config as JSON.
  std::string Production() {
    Toggle t;
    EXPECT_TRUE(store_->Get("new-checkout", std::nullopt, &t).ok());
    return toggles::ToJson(t.environments["production"]).dump();
  }

  std::vector<AuditEvent> Events() {
    std::vector<AuditEvent> events;
    EXPECT_TRUE(store_->History("new-checkout", &events).ok());
    return events;
  }

  std::string dir_;
  std::unique_ptr<toggles::ToggleStore> store_;
  std::unique_ptr<ToggleOps> ops_;
  Rollout rollout_;
  RolloutHooks hooks_;
  RolloutResult result_;
  int fail_at_ = -1;           // the check fails at this percent
  size_t cancel_at_wait_ = 0;  // the n-th wait (1-based) reports a cancel
  std::function<void()> during_wait_;
  std::vector<std::string> checks_, waits_, notes_;
};

TEST_F(RolloutTest, RaisesStepByStepWithChecksAndWaits) {
  Create();
  Status s = Run();
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ("success,success,success,success", Join(result_.step_status));
  EXPECT_EQ("0:1,1:10,2:50,3:100", Join(checks_));
  EXPECT_EQ("300s,300s,300s", Join(waits_));  // between raises only
  EXPECT_FALSE(result_.turned_off);
  EXPECT_EQ("new-checkout in production is at 100%", result_.message);
  EXPECT_EQ(
      R"({"enabled":true,"strategies":[{"rollout":{"percent":100,"stickiness":"targetingKey"}}]})",
      Production());
  EXPECT_EQ(
      "raised new-checkout to 1% in production\n"
      "waiting 5m00s before raising new-checkout in production to 10%\n"
      "raised new-checkout to 10% in production\n"
      "waiting 5m00s before raising new-checkout in production to 50%\n"
      "raised new-checkout to 50% in production\n"
      "waiting 5m00s before raising new-checkout in production to 100%\n"
      "raised new-checkout to 100% in production",
      Join(notes_, "\n"));
  std::vector<AuditEvent> events = Events();
  ASSERT_EQ(5u, events.size());  // create + 4 raises
  for (size_t i = 1; i < events.size(); ++i) {
    EXPECT_EQ("rollout", events[i].action);
    EXPECT_EQ("ladle run", events[i].actor);
    EXPECT_EQ("run 7", events[i].note);
    EXPECT_EQ("production", events[i].environment);
  }
}

TEST_F(RolloutTest, SkipsStepsAlreadyReachedAndNeverLowers) {
  Create(R"({"enabled":true,"strategies":[{"rollout":{"percent":50,"group":"g"}}]})");
  ASSERT_TRUE(Run().ok()) << result_.message;
  EXPECT_EQ("skipped,skipped,skipped,success", Join(result_.step_status));
  EXPECT_EQ("3:100", Join(checks_));
  EXPECT_EQ("", Join(waits_));  // no wait before the first raise of this run
  EXPECT_EQ(
      "new-checkout in production is at 50% already: step 1% skipped (a rollout never "
      "lowers a percentage)",
      notes_.at(0));
  // The rollout strategy keeps its group: users keep their buckets.
  EXPECT_EQ(
      R"({"enabled":true,"strategies":[{"rollout":{"group":"g","percent":100,"stickiness":"targetingKey"}}]})",
      Production());
}

TEST_F(RolloutTest, AToggleAt100StaysAt100) {
  Create(R"({"enabled":true})");  // on for everyone
  ASSERT_TRUE(Run().ok()) << result_.message;
  EXPECT_EQ("skipped,skipped,skipped,skipped", Join(result_.step_status));
  EXPECT_EQ("", Join(checks_));
  EXPECT_EQ("new-checkout in production was at 100% already: nothing to raise", result_.message);
  EXPECT_EQ(R"({"enabled":true,"strategies":[]})", Production());
  EXPECT_EQ(1u, Events().size());  // nothing written
}

TEST_F(RolloutTest, FailedCheckTurnsTheToggleOff) {
  Create();
  fail_at_ = 10;
  Status s = Run();
  EXPECT_EQ(Code::kFailed, s.code());
  EXPECT_EQ("the rollout check failed at 10%: turned new-checkout in production off", s.message());
  EXPECT_EQ(s.message(), result_.message);
  EXPECT_EQ("success,failed,skipped,skipped", Join(result_.step_status));
  EXPECT_TRUE(result_.turned_off);
  EXPECT_EQ("0:1,1:10", Join(checks_));
  EXPECT_EQ(
      R"({"enabled":false,"strategies":[{"rollout":{"percent":10,"stickiness":"targetingKey"}}]})",
      Production());
  AuditEvent last = Events().back();
  EXPECT_EQ("disable", last.action);
  EXPECT_EQ("ladle run", last.actor);
  EXPECT_EQ("run 7: rollout check failed at 10%", last.note);
  EXPECT_EQ("the check failed at 10%: turned new-checkout in production off", notes_.back());
}

TEST_F(RolloutTest, CancelDuringTheWaitLeavesTheToggleWhereItIs) {
  Create();
  cancel_at_wait_ = 2;
  Status s = Run();
  EXPECT_EQ(Code::kCancelled, s.code());
  EXPECT_EQ("rollout of new-checkout in production cancelled before 50%; it stays at 10%",
            s.message());
  EXPECT_EQ("success,success,cancelled,cancelled", Join(result_.step_status));
  EXPECT_FALSE(result_.turned_off);
  EXPECT_EQ("0:1,1:10", Join(checks_));
  EXPECT_EQ(
      R"({"enabled":true,"strategies":[{"rollout":{"percent":10,"stickiness":"targetingKey"}}]})",
      Production());
}

TEST_F(RolloutTest, MissingToggleSaysToAddItToTogglesYml) {
  Status s = Run();
  EXPECT_EQ(Code::kNotFound, s.code());
  EXPECT_EQ(
      "toggle 'new-checkout' does not exist in this server's toggle store: add it to "
      "toggles.yml (synced by a stage's 'toggles:') so that the run creates it before its "
      "rollout",
      s.message());
  EXPECT_EQ("skipped,skipped,skipped,skipped", Join(result_.step_status));
  EXPECT_EQ("", Join(checks_));
}

TEST_F(RolloutTest, RefusesAToggleThatIsNotAPlainRollout) {
  Create(R"({"enabled":true,"strategies":[{"users":["alice"]}]})");
  Status s = Run();
  EXPECT_EQ(Code::kFailed, s.code());
  EXPECT_NE(std::string::npos, s.message().find("is not a plain percentage rollout in production"))
      << s.message();
  EXPECT_EQ(R"({"enabled":true,"strategies":[{"users":["alice"]}]})", Production());
  EXPECT_EQ(1u, Events().size());
}

TEST_F(RolloutTest, RaisesMadeByHandDuringTheWaitAreRespected) {
  Create();
  // Someone raises it to 60% while the rollout waits before 10%: 10 and 50 skip.
  during_wait_ = [this] {
    if (waits_.size() == 1) {
      ASSERT_TRUE(ops_->SetRollout("new-checkout", "production", 60, "bob", "").ok());
    }
  };
  ASSERT_TRUE(Run().ok()) << result_.message;
  EXPECT_EQ("success,skipped,skipped,success", Join(result_.step_status));
  EXPECT_EQ("300s,300s", Join(waits_));
}

TEST_F(RolloutTest, StopsWhenTurnedOffByHandDuringTheWait) {
  Create();
  // Someone turns it off while the rollout waits: it stops, and leaves it off.
  during_wait_ = [this] {
    ASSERT_TRUE(ops_->TurnOff("new-checkout", "production", "bob", "").ok());
  };
  Status s = Run();
  EXPECT_EQ(Code::kFailed, s.code());
  EXPECT_EQ(
      "toggle new-checkout in production was turned off during the rollout, not by this "
      "run: stopping rather than turn it back on",
      s.message());
  EXPECT_EQ("success,skipped,skipped,skipped", Join(result_.step_status));
  EXPECT_EQ(
      R"({"enabled":false,"strategies":[{"rollout":{"percent":1,"stickiness":"targetingKey"}}]})",
      Production());
}

TEST_F(RolloutTest, RejectsPercentagesThatDoNotIncrease) {
  Create();
  rollout_.percent = {10, 10};
  EXPECT_EQ(Code::kInvalid, Run().code());
  rollout_.percent = {};
  EXPECT_EQ(Code::kInvalid, Run().code());
  EXPECT_EQ(1u, Events().size());
}

}  // namespace
}  // namespace ladle::runner
