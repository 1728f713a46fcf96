// runner/store/run_status.h: the one place where statuses and failure
// reasons become words and back (docs/design.md "Statuses").
#include "runner/store/run_status.h"

#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace ladle::runner {
namespace {

TEST(RunStatusTest, EveryStatusIsItsWordAndBack) {
  const std::pair<RunStatus, const char*> words[] = {
      {kQueued, "queued"},       {kRunning, "running"},         {kWaiting, "waiting"},
      {kSuccess, "success"},     {kFailed, "failed"},           {kSkipped, "skipped"},
      {kCancelled, "cancelled"}, {kInterrupted, "interrupted"}, {kSuperseded, "superseded"}};
  for (const auto& [status, word] : words) {
    EXPECT_STREQ(word, ToString(status));
    RunStatus back = kQueued;
    EXPECT_TRUE(ParseRunStatus(word, &back)) << word;
    EXPECT_EQ(status, back);
    EXPECT_EQ(nlohmann::json(word), nlohmann::json(status));  // a word in JSON, never a number
  }
}

TEST(RunStatusTest, OtherWordsAreRefusedAndLeaveTheValue) {
  RunStatus status = kWaiting;
  for (const char* word : {"", "Success", "ok", "done", "success ", "0"}) {
    EXPECT_FALSE(ParseRunStatus(word, &status)) << word;
    EXPECT_EQ(kWaiting, status);
  }
}

TEST(RunStatusTest, FinishedStatuses) {
  EXPECT_FALSE(IsFinished(kQueued));
  EXPECT_FALSE(IsFinished(kRunning));
  EXPECT_FALSE(IsFinished(kWaiting));
  for (RunStatus s : {kSuccess, kFailed, kSkipped, kCancelled, kInterrupted, kSuperseded})
    EXPECT_TRUE(IsFinished(s)) << s;
}

TEST(FailureReasonTest, WordsAndNullForNone) {
  const std::pair<FailureReason, const char*> words[] = {
      {FailureReason::kNone, ""},          {FailureReason::kTimeout, "timeout"},
      {FailureReason::kExitCode, "exit_code"}, {FailureReason::kCancelled, "cancelled"},
      {FailureReason::kNeeds, "needs"},    {FailureReason::kError, "error"}};
  for (const auto& [reason, word] : words) {
    EXPECT_STREQ(word, ToString(reason));
    FailureReason back = FailureReason::kError;
    EXPECT_TRUE(ParseFailureReason(word, &back)) << word;
    EXPECT_EQ(reason, back);
  }
  EXPECT_TRUE(nlohmann::json(FailureReason::kNone).is_null());
  EXPECT_EQ(nlohmann::json("timeout"), nlohmann::json(FailureReason::kTimeout));
  FailureReason r = FailureReason::kTimeout;
  EXPECT_FALSE(ParseFailureReason("exit", &r));
  EXPECT_EQ(FailureReason::kTimeout, r);
}

TEST(RunStatusTest, PrintsAsItsWord) {
  std::ostringstream out;
  out << kSuperseded << " " << FailureReason::kNeeds << " " << FailureReason::kNone;
  EXPECT_EQ("superseded needs none", out.str());
}

}  // namespace
}  // namespace ladle::runner
