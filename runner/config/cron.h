// Cron expressions for `on.schedule` (docs/pipeline.md "Triggers").
//
// Standard five fields, "MINUTE HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK": each a
// '*', a number, a range A-B, a list A,B-C, and steps (*/N, A-B/N, A/N meaning
// A to the field's end); months and days of the week also by their English
// names' first three letters (jan, mon; any case); day of week 0-7, 0 and 7
// both Sunday. As Vixie cron: when both day fields are restricted (neither
// starts with '*'), a day matches when either does; otherwise both must.
// The macros @yearly (@annually), @monthly, @weekly, @daily (@midnight) and
// @hourly stand for their usual expansions. Times are UTC: no daylight saving
// time, every day has 1440 minutes.
//
// Pure functions: thread-safe.
#ifndef LADLE_RUNNER_CONFIG_CRON_H_
#define LADLE_RUNNER_CONFIG_CRON_H_

#include <bitset>
#include <cstdint>
#include <string>
#include <string_view>

namespace ladle::runner {

struct CronSchedule {
  std::bitset<60> minutes;
  std::bitset<24> hours;
  std::bitset<32> days;      // 1..31
  std::bitset<13> months;    // 1..12
  std::bitset<7> weekdays;   // 0..6, Sunday 0
  bool days_star = true;     // the day-of-month field starts with '*'
  bool weekdays_star = true; // the day-of-week field starts with '*'
  std::string text;          // as written

  // Whether the minute starting at `unix_seconds` (UTC) matches.
  bool Matches(int64_t unix_seconds) const;
};

// An expression is at most this long.
constexpr std::size_t kMaxCronLength = 256;

// Parses `text`. On failure returns false and sets *error to what is wrong,
// naming the field: "day-of-week: 8 is out of range 0-7".
bool ParseCron(std::string_view text, CronSchedule* out, std::string* error);

// The first minute strictly after `after` (seconds since the epoch, UTC)
// that the schedule matches, in *next (a multiple of 60). False when none
// comes within the next 8 years (such as "0 0 30 2 *": February 30).
bool NextCronTime(const CronSchedule& schedule, int64_t after, int64_t* next);

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_CONFIG_CRON_H_
