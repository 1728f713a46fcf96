// Times as ladle writes them (JSON, the database, logs) and shows them.
//
// One format everywhere: RFC 3339 in UTC with milliseconds,
// "2026-11-29T10:04:49.123Z". It is fixed-width, so stored times sort as text.
#ifndef LADLE_CORE_BASE_TIME_UTIL_H_
#define LADLE_CORE_BASE_TIME_UTIL_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace ladle {

// The current time as "YYYY-MM-DDTHH:MM:SS.mmmZ".
std::string NowRfc3339();

// `t` as "YYYY-MM-DDTHH:MM:SS.mmmZ" (sub-millisecond digits are dropped,
// rounding toward the past).
std::string FormatRfc3339(std::chrono::system_clock::time_point t);

// Parses any RFC 3339 date-time: "T" or "t" (or a space) between date and
// time, optional fractional seconds of any length, "Z"/"z" or a "+hh:mm" /
// "-hh:mm" offset. Returns false, leaving *t alone, on anything else
// (including out-of-range fields such as February 30th).
// Times outside what system_clock holds (about 1678 to 2262) are refused.
bool ParseRfc3339(std::string_view text, std::chrono::system_clock::time_point* t);

// The same, as microseconds since 1970 UTC: every year 0000-9999 fits.
// Sub-microsecond digits are dropped.
bool ParseRfc3339Micros(std::string_view text, int64_t* unix_micros);

// A duration for people, truncated to the unit shown: "850ms", "12.3s",
// "4m05s", "1h02m". Negative durations show as "0ms".
std::string FormatDuration(std::chrono::milliseconds d);

}  // namespace ladle

#endif  // LADLE_CORE_BASE_TIME_UTIL_H_
