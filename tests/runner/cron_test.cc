#include "runner/config/cron.h"

#include <time.h>

#include <gtest/gtest.h>

namespace ladle::runner {
namespace {

int64_t At(const char* text) {  // "2026-12-05 04:20" UTC
  struct tm tm {};
  EXPECT_NE(nullptr, strptime(text, "%Y-%m-%d %H:%M", &tm)) << text;
  return static_cast<int64_t>(timegm(&tm));
}

std::string Show(int64_t t) {
  time_t tt = static_cast<time_t>(t);
  struct tm tm {};
  gmtime_r(&tt, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%d %H:%M %a", &tm);
  return buf;
}

// The next fire time after `after`, as text; "none" or the parse error.
std::string Next(const char* cron, const char* after) {
  CronSchedule s;
  std::string error;
  if (!ParseCron(cron, &s, &error)) return "error: " + error;
  int64_t next = 0;
  if (!NextCronTime(s, At(after), &next)) return "none";
  return Show(next);
}

std::string Error(const char* cron) {
  CronSchedule s;
  std::string error;
  if (ParseCron(cron, &s, &error)) return "parsed";
  return error;
}

TEST(CronTest, EveryMinuteIsTheNextWholeMinute) {
  EXPECT_EQ("2026-12-05 04:21 Sat", Next("* * * * *", "2026-12-05 04:20"));
  CronSchedule s;
  std::string error;
  ASSERT_TRUE(ParseCron("* * * * *", &s, &error));
  int64_t next = 0;
  ASSERT_TRUE(NextCronTime(s, At("2026-12-05 04:20") + 59, &next));
  EXPECT_EQ(At("2026-12-05 04:21"), next);  // strictly after, whole minutes
}

TEST(CronTest, DailyAtThree) {
  EXPECT_EQ("2026-12-06 03:00 Sun", Next("0 3 * * *", "2026-12-05 04:20"));
  EXPECT_EQ("2026-12-05 03:00 Sat", Next("0 3 * * *", "2026-12-05 02:59"));
  EXPECT_EQ("2026-12-06 03:00 Sun", Next("0 3 * * *", "2026-12-05 03:00"));
}

TEST(CronTest, ListsRangesAndSteps) {
  EXPECT_EQ("2026-12-05 04:30 Sat", Next("*/15 * * * *", "2026-12-05 04:20"));
  EXPECT_EQ("2026-12-05 05:05 Sat", Next("5,35 */5 * * *", "2026-12-05 04:40"));
  EXPECT_EQ("2026-12-05 11:00 Sat", Next("0 9-17/2 * * *", "2026-12-05 09:00"));
  EXPECT_EQ("2026-12-05 04:55 Sat", Next("50/5 * * * *", "2026-12-05 04:50"));  // A/N: A to the end
  EXPECT_EQ("2026-12-05 05:50 Sat", Next("50/5 * * * *", "2026-12-05 04:55"));
}

TEST(CronTest, NamesOfMonthsAndDays) {
  EXPECT_EQ("2026-12-07 09:00 Mon", Next("0 9 * * MON-fri", "2026-12-05 04:20"));
  EXPECT_EQ("2027-03-01 00:00 Mon", Next("0 0 1 mar *", "2026-12-05 04:20"));
  EXPECT_EQ("2026-12-06 00:00 Sun", Next("0 0 * * 7", "2026-12-05 04:20"));  // 7 is Sunday
  EXPECT_EQ("2026-12-06 00:00 Sun", Next("0 0 * * sun", "2026-12-05 04:20"));
}

TEST(CronTest, BothDayFieldsRestrictedMeansEither) {
  // Vixie: the 13th OR a Friday.
  EXPECT_EQ("2026-12-11 00:00 Fri", Next("0 0 13 * 5", "2026-12-05 04:20"));
  EXPECT_EQ("2026-12-13 00:00 Sun", Next("0 0 13 * 5", "2026-12-11 00:00"));
  // One starting with '*' means both: odd days that are Mondays.
  EXPECT_EQ("2026-12-07 00:00 Mon", Next("0 0 */2 * 1", "2026-12-05 04:20"));
  EXPECT_EQ("2026-12-21 00:00 Mon", Next("0 0 */2 * 1", "2026-12-07 00:00"));
}

TEST(CronTest, MonthEndsAndLeapYears) {
  EXPECT_EQ("2027-01-31 00:00 Sun", Next("0 0 31 * *", "2026-12-31 00:00"));
  EXPECT_EQ("2028-02-29 12:00 Tue", Next("0 12 29 2 *", "2026-12-05 04:20"));
  EXPECT_EQ("2027-01-01 00:00 Fri", Next("@yearly", "2026-12-05 04:20"));
  EXPECT_EQ("2026-12-05 05:00 Sat", Next("@hourly", "2026-12-05 04:20"));
  EXPECT_EQ("none", Next("0 0 30 2 *", "2026-12-05 04:20"));  // February 30 never comes
}

TEST(CronTest, MatchesAMinute) {
  CronSchedule s;
  std::string error;
  ASSERT_TRUE(ParseCron("0 3 * * *", &s, &error));
  EXPECT_TRUE(s.Matches(At("2026-12-05 03:00")));
  EXPECT_FALSE(s.Matches(At("2026-12-05 03:01")));
}

TEST(CronTest, ErrorsNameTheField) {
  EXPECT_EQ("minute: 60 is out of range 0-59", Error("60 * * * *"));
  EXPECT_EQ("hour: 'x' is not a number", Error("0 x * * *"));
  EXPECT_EQ("day-of-month: 0 is out of range 1-31", Error("0 0 0 * *"));
  EXPECT_EQ("month: 'foo' is not a month name (jan to dec)", Error("0 0 1 foo *"));
  EXPECT_EQ("day-of-week: 8 is out of range 0-7", Error("0 3 * * 8"));
  EXPECT_EQ("hour: range 5-1 runs backwards", Error("0 5-1 * * *"));
  EXPECT_EQ("minute: step '0' must be a number from 1 to 59", Error("*/0 * * * *"));
  EXPECT_EQ("minute: empty entry in list '1,,2'", Error("1,,2 * * * *"));
  EXPECT_EQ("needs 5 fields (minute hour day-of-month month day-of-week), got 4",
            Error("0 3 * *"));
  EXPECT_EQ("needs 5 fields (minute hour day-of-month month day-of-week), got 0", Error(""));
  EXPECT_EQ("needs 5 fields (minute hour day-of-month month day-of-week), got 6",
            Error("0 3 * * * 2026"));
  EXPECT_EQ(
      "unknown macro '@reboot' (known: @yearly, @annually, @monthly, @weekly, @daily, "
      "@midnight, @hourly)",
      Error("@reboot"));
  EXPECT_EQ("longer than 256 characters", Error(std::string(300, '1').c_str()));
  EXPECT_EQ("minute: a step needs a range before it (*/5)", Error("/5 * * * *"));
}

}  // namespace
}  // namespace ladle::runner
