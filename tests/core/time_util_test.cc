#include "core/base/time_util.h"

#include <gtest/gtest.h>

#include <regex>

namespace ladle {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;
using std::chrono::system_clock;

system_clock::time_point At(int64_t epoch_ms) {
  return system_clock::time_point(milliseconds(epoch_ms));
}

// Parses and formats back, so expectations read as times.
std::string Roundtrip(const std::string& text) {
  system_clock::time_point t;
  if (!ParseRfc3339(text, &t)) return "invalid";
  return FormatRfc3339(t);
}

TEST(TimeUtilTest, FormatsUtcWithMilliseconds) {
  EXPECT_EQ("1970-01-01T00:00:00.000Z", FormatRfc3339(At(0)));
  EXPECT_EQ("2026-11-29T10:04:49.123Z", FormatRfc3339(At(1795946689123)));
  // Sub-millisecond digits drop, before 1970 too (toward the past).
  EXPECT_EQ("2026-11-29T10:04:49.123Z",
            FormatRfc3339(At(1795946689123) + std::chrono::microseconds(999)));
  EXPECT_EQ("1969-12-31T23:59:59.999Z",
            FormatRfc3339(system_clock::time_point(std::chrono::microseconds(-1))));
}

TEST(TimeUtilTest, NowHasTheFixedFormat) {
  const std::string now = NowRfc3339();
  EXPECT_TRUE(std::regex_match(now, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")))
      << now;
  system_clock::time_point t;
  ASSERT_TRUE(ParseRfc3339(now, &t));
  EXPECT_LT(system_clock::now() - t, seconds(5));
}

TEST(TimeUtilTest, ParsesZuluAndOffsets) {
  EXPECT_EQ("2026-11-29T10:04:49.000Z", Roundtrip("2026-11-29T10:04:49Z"));
  EXPECT_EQ("2026-11-29T10:04:49.000Z", Roundtrip("2026-11-29t10:04:49z"));
  EXPECT_EQ("2026-11-29T10:04:49.000Z", Roundtrip("2026-11-29 10:04:49Z"));
  EXPECT_EQ("2026-11-29T08:04:49.000Z", Roundtrip("2026-11-29T10:04:49+02:00"));
  EXPECT_EQ("2026-11-29T15:34:49.000Z", Roundtrip("2026-11-29T10:04:49-05:30"));
  EXPECT_EQ("2026-11-28T23:30:00.000Z", Roundtrip("2026-11-29T00:00:00+00:30"));
}

TEST(TimeUtilTest, ParsesFractionsOfAnyLength) {
  EXPECT_EQ("2026-11-29T10:04:49.500Z", Roundtrip("2026-11-29T10:04:49.5Z"));
  EXPECT_EQ("2026-11-29T10:04:49.123Z", Roundtrip("2026-11-29T10:04:49.123Z"));
  EXPECT_EQ("2026-11-29T10:04:49.123Z", Roundtrip("2026-11-29T10:04:49.123456789123Z"));
  system_clock::time_point t;
  ASSERT_TRUE(ParseRfc3339("1970-01-01T00:00:00.000001Z", &t));
  EXPECT_EQ(std::chrono::microseconds(1), t.time_since_epoch());
}

TEST(TimeUtilTest, ParsesCalendarEdges) {
  EXPECT_EQ("2024-02-29T00:00:00.000Z", Roundtrip("2024-02-29T00:00:00Z"));
  EXPECT_EQ("2000-02-29T00:00:00.000Z", Roundtrip("2000-02-29T00:00:00Z"));
  EXPECT_EQ("1969-07-20T20:17:40.000Z", Roundtrip("1969-07-20T20:17:40Z"));
  // A leap second reads as the next minute's first second.
  EXPECT_EQ("2017-01-01T00:00:00.000Z", Roundtrip("2016-12-31T23:59:60Z"));
}

TEST(TimeUtilTest, RejectsMalformedTimes) {
  for (const char* bad :
       {"", "2026-11-29", "2026-11-29T10:04:49", "2026-11-29T10:04Z", "2026-13-01T00:00:00Z",
        "2026-00-01T00:00:00Z", "2026-02-29T00:00:00Z", "1900-02-29T00:00:00Z",
        "2026-04-31T00:00:00Z", "2026-11-29T24:00:00Z", "2026-11-29T10:60:00Z",
        "2026-11-29T10:04:61Z", "2026-11-29T10:04:49.Z", "2026-11-29T10:04:49+0200",
        "2026-11-29T10:04:49+24:00", "2026-11-29T10:04:49Z ", "2026-11-29X10:04:49Z",
        "+026-11-29T10:04:49Z", "2026-11-29T10:04:49UTC"}) {
    system_clock::time_point t = At(42);
    EXPECT_FALSE(ParseRfc3339(bad, &t)) << bad;
    EXPECT_EQ(At(42), t) << bad;
  }
}

TEST(TimeUtilTest, FormatsDurationsForPeople) {
  EXPECT_EQ("0ms", FormatDuration(milliseconds(0)));
  EXPECT_EQ("850ms", FormatDuration(milliseconds(850)));
  EXPECT_EQ("999ms", FormatDuration(milliseconds(999)));
  EXPECT_EQ("1.0s", FormatDuration(milliseconds(1000)));
  EXPECT_EQ("12.3s", FormatDuration(milliseconds(12345)));
  EXPECT_EQ("59.9s", FormatDuration(milliseconds(59999)));
  EXPECT_EQ("1m00s", FormatDuration(seconds(60)));
  EXPECT_EQ("4m05s", FormatDuration(minutes(4) + seconds(5) + milliseconds(999)));
  EXPECT_EQ("59m59s", FormatDuration(minutes(59) + seconds(59)));
  EXPECT_EQ("1h00m", FormatDuration(hours(1)));
  EXPECT_EQ("1h02m", FormatDuration(hours(1) + minutes(2) + seconds(59)));
  EXPECT_EQ("100h00m", FormatDuration(hours(100)));
  EXPECT_EQ("0ms", FormatDuration(milliseconds(-5)));
}

// Found by the toggle request fuzzer: a year past 2262 overflowed
// system_clock's nanoseconds (undefined behaviour) instead of being refused.
TEST(TimeUtilTest, YearsBeyondSystemClockAreRefusedNotOverflowed) {
  std::chrono::system_clock::time_point t;
  EXPECT_FALSE(ParseRfc3339("2520-05-01T10:00:00Z", &t));
  EXPECT_FALSE(ParseRfc3339("1600-01-01T00:00:00Z", &t));
  int64_t micros = 0;
  ASSERT_TRUE(ParseRfc3339Micros("2520-05-01T10:00:00Z", &micros));
  EXPECT_EQ(17366781600000000, micros);
  ASSERT_TRUE(ParseRfc3339Micros("1970-01-01T00:00:01.5+01:00", &micros));
  EXPECT_EQ(-3598500000, micros);
}

}  // namespace
}  // namespace ladle
