#include "core/base/time_util.h"

#include <cstdint>
#include <cstdio>
#include <ctime>

namespace ladle {
namespace {

using std::chrono::system_clock;

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
// days_from_civil): pure arithmetic, no time zone or libc state involved.
int64_t DaysFromCivil(int64_t y, int m, int d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

int DaysInMonth(int y, int m) {
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : kDays[m - 1];
}

// Reads exactly `n` digits at *pos into *value.
bool Digits(std::string_view s, size_t* pos, int n, int* value) {
  if (*pos + n > s.size()) return false;
  int v = 0;
  for (int i = 0; i < n; ++i) {
    char c = s[*pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *pos += n;
  *value = v;
  return true;
}

bool Expect(std::string_view s, size_t* pos, std::string_view any_of) {
  if (*pos >= s.size() || any_of.find(s[*pos]) == std::string_view::npos) return false;
  ++*pos;
  return true;
}

// Fractional seconds after the '.', as nanoseconds (digits past 9 ignored).
bool Fraction(std::string_view s, size_t* pos, int64_t* nanos) {
  size_t start = *pos;
  int64_t value = 0, scale = 1000000000;
  while (*pos < s.size() && s[*pos] >= '0' && s[*pos] <= '9') {
    if (scale > 1) {
      scale /= 10;
      value += (s[*pos] - '0') * scale;
    }
    ++*pos;
  }
  *nanos = value;
  return *pos > start;
}

// "Z", or "+hh:mm" / "-hh:mm" as seconds east of UTC.
bool Offset(std::string_view s, size_t* pos, int* seconds) {
  if (Expect(s, pos, "Zz")) {
    *seconds = 0;
    return true;
  }
  if (*pos >= s.size() || (s[*pos] != '+' && s[*pos] != '-')) return false;
  int sign = s[(*pos)++] == '-' ? -1 : 1;
  int hh = 0, mm = 0;
  if (!Digits(s, pos, 2, &hh) || !Expect(s, pos, ":") || !Digits(s, pos, 2, &mm)) return false;
  if (hh > 23 || mm > 59) return false;
  *seconds = sign * (hh * 3600 + mm * 60);
  return true;
}

}  // namespace

std::string FormatRfc3339(system_clock::time_point t) {
  using std::chrono::milliseconds;
  // floor, not duration_cast: times before 1970 must round toward the past too.
  const int64_t ms = std::chrono::floor<milliseconds>(t.time_since_epoch()).count();
  int64_t secs = ms / 1000, frac = ms % 1000;
  if (frac < 0) {
    frac += 1000;
    secs -= 1;
  }
  std::time_t tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[80];  // room for any int fields, so the compiler sees no truncation
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(frac));
  return buf;
}

std::string NowRfc3339() { return FormatRfc3339(system_clock::now()); }

bool ParseRfc3339Micros(std::string_view s, int64_t* unix_micros) {
  size_t pos = 0;
  int y, mo, d, h, mi, sec, offset = 0;
  int64_t nanos = 0;
  bool ok = Digits(s, &pos, 4, &y) && Expect(s, &pos, "-") && Digits(s, &pos, 2, &mo) &&
            Expect(s, &pos, "-") && Digits(s, &pos, 2, &d) && Expect(s, &pos, "Tt ") &&
            Digits(s, &pos, 2, &h) && Expect(s, &pos, ":") && Digits(s, &pos, 2, &mi) &&
            Expect(s, &pos, ":") && Digits(s, &pos, 2, &sec);
  if (ok && pos < s.size() && s[pos] == '.') {
    ++pos;
    ok = Fraction(s, &pos, &nanos);
  }
  ok = ok && Offset(s, &pos, &offset) && pos == s.size();
  // Second 60 is a leap second: it reads as the first second of the next minute.
  if (!ok || mo < 1 || mo > 12 || d < 1 || d > DaysInMonth(y, mo) || h > 23 || mi > 59 ||
      sec > 60) {
    return false;
  }
  const int64_t epoch_secs =
      DaysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset;
  *unix_micros = epoch_secs * 1000000 + nanos / 1000;  // years 0000-9999 fit easily
  return true;
}

bool ParseRfc3339(std::string_view s, system_clock::time_point* t) {
  int64_t micros = 0;
  if (!ParseRfc3339Micros(s, &micros)) return false;
  // system_clock counts nanoseconds in 64 bits: about 1678 to 2262.
  const std::chrono::microseconds since_epoch(micros);
  if (since_epoch > std::chrono::duration_cast<std::chrono::microseconds>(system_clock::duration::max()) ||
      since_epoch < std::chrono::duration_cast<std::chrono::microseconds>(system_clock::duration::min()))
    return false;
  *t = system_clock::time_point(std::chrono::duration_cast<system_clock::duration>(since_epoch));
  return true;
}

std::string FormatDuration(std::chrono::milliseconds d) {
  const int64_t ms = d.count() < 0 ? 0 : d.count();
  char buf[48];
  if (ms < 1000) {
    std::snprintf(buf, sizeof buf, "%lldms", static_cast<long long>(ms));
  } else if (ms < 60 * 1000) {
    std::snprintf(buf, sizeof buf, "%lld.%llds", static_cast<long long>(ms / 1000),
                  static_cast<long long>(ms % 1000 / 100));
  } else if (ms < 3600 * 1000) {
    const int64_t s = ms / 1000;
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else {
    const int64_t m = ms / 60000;
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(m / 60),
                  static_cast<long long>(m % 60));
  }
  return buf;
}

}  // namespace ladle
