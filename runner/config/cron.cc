#include "runner/config/cron.h"

#include <time.h>

#include <cctype>
#include <charconv>
#include <vector>

namespace ladle::runner {
namespace {

struct Field {
  const char* name;
  int min, max;
  const char* const* names;  // three-letter names from `min`, or null
};

const char* const kMonthNames[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                   "jul", "aug", "sep", "oct", "nov", "dec"};
const char* const kDayNames[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

const Field kFields[5] = {
    {"minute", 0, 59, nullptr},
    {"hour", 0, 23, nullptr},
    {"day-of-month", 1, 31, nullptr},
    {"month", 1, 12, kMonthNames},
    {"day-of-week", 0, 7, kDayNames},
};

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// A number or (for months and days) a name.
bool ParseValue(std::string_view text, const Field& f, int* out, std::string* error) {
  if (text.empty()) {
    *error = std::string(f.name) + ": a value is missing";
    return false;
  }
  if (f.names != nullptr && std::isalpha(static_cast<unsigned char>(text[0]))) {
    const std::string word = Lower(text);
    const int count = f.max - f.min + (f.max == 7 ? 0 : 1);
    for (int i = 0; i < count; ++i) {
      if (word == f.names[i]) {
        *out = f.min + i;
        return true;
      }
    }
    *error = std::string(f.name) + ": '" + std::string(text) + "' is not a " +
             (f.max == 7 ? "day name (sun to sat)" : "month name (jan to dec)");
    return false;
  }
  int v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) {
    *error = std::string(f.name) + ": '" + std::string(text) + "' is not a number";
    return false;
  }
  if (v < f.min || v > f.max) {
    *error = std::string(f.name) + ": " + std::string(text) + " is out of range " +
             std::to_string(f.min) + "-" + std::to_string(f.max);
    return false;
  }
  *out = v;
  return true;
}

// One element of a list: *, A, A-B, each with an optional /STEP.
bool ParseElement(std::string_view text, const Field& f, std::vector<bool>* set,
                  std::string* error) {
  int step = 1;
  if (size_t slash = text.find('/'); slash != std::string_view::npos) {
    std::string_view step_text = text.substr(slash + 1);
    auto [end, ec] = std::from_chars(step_text.data(), step_text.data() + step_text.size(), step);
    if (step_text.empty() || ec != std::errc() || end != step_text.data() + step_text.size() ||
        step < 1 || step > f.max) {
      *error = std::string(f.name) + ": step '" + std::string(step_text) +
               "' must be a number from 1 to " + std::to_string(f.max);
      return false;
    }
    text = text.substr(0, slash);
    if (text.empty()) {
      *error = std::string(f.name) + ": a step needs a range before it (*/" +
               std::string(step_text) + ")";
      return false;
    }
  }
  int low = f.min, high = f.max;
  if (text != "*") {
    size_t dash = text.find('-', 1);
    if (!ParseValue(text.substr(0, dash), f, &low, error)) return false;
    if (dash != std::string_view::npos) {
      if (!ParseValue(text.substr(dash + 1), f, &high, error)) return false;
      if (high < low) {
        *error = std::string(f.name) + ": range " + std::string(text) + " runs backwards";
        return false;
      }
    } else if (step == 1) {
      high = low;  // a single value; A/N runs to the field's end
    }
  }
  for (int v = low; v <= high; v += step) (*set)[v] = true;
  return true;
}

bool ParseField(std::string_view text, const Field& f, std::vector<bool>* set,
                std::string* error) {
  set->assign(f.max + 1, false);
  size_t start = 0;
  while (true) {
    size_t comma = text.find(',', start);
    std::string_view element = text.substr(start, comma - start);
    if (element.empty()) {
      *error = std::string(f.name) + ": empty entry in list '" + std::string(text) + "'";
      return false;
    }
    if (!ParseElement(element, f, set, error)) return false;
    if (comma == std::string_view::npos) return true;
    start = comma + 1;
  }
}

std::string_view Macro(std::string_view text) {
  if (text == "@yearly" || text == "@annually") return "0 0 1 1 *";
  if (text == "@monthly") return "0 0 1 * *";
  if (text == "@weekly") return "0 0 * * 0";
  if (text == "@daily" || text == "@midnight") return "0 0 * * *";
  if (text == "@hourly") return "0 * * * *";
  return "";
}

struct Civil {
  int year, month, day, hour, minute, weekday;
};

Civil ToCivil(int64_t t) {
  time_t tt = static_cast<time_t>(t);
  struct tm tm {};
  gmtime_r(&tt, &tm);
  return {tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_wday};
}

int64_t FromCivil(int year, int month, int day, int hour, int minute) {
  struct tm tm {};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  return static_cast<int64_t>(timegm(&tm));  // normalizes overflowing fields
}

bool DayMatches(const CronSchedule& s, const Civil& c) {
  const bool dom = s.days[c.day];
  const bool dow = s.weekdays[c.weekday];
  if (s.days_star || s.weekdays_star) return dom && dow;  // '*' sets every bit
  return dom || dow;                                      // Vixie: either
}

}  // namespace

bool ParseCron(std::string_view text, CronSchedule* out, std::string* error) {
  *out = CronSchedule();
  out->text = std::string(text);
  if (text.size() > kMaxCronLength) {
    *error = "longer than " + std::to_string(kMaxCronLength) + " characters";
    return false;
  }
  std::string_view expanded = text;
  while (!expanded.empty() && expanded.front() == ' ') expanded.remove_prefix(1);
  while (!expanded.empty() && expanded.back() == ' ') expanded.remove_suffix(1);
  if (!expanded.empty() && expanded.front() == '@') {
    std::string_view macro = Macro(Lower(expanded));
    if (macro.empty()) {
      *error = "unknown macro '" + std::string(expanded) +
               "' (known: @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly)";
      return false;
    }
    expanded = macro;
  }
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (i < expanded.size()) {
    while (i < expanded.size() && (expanded[i] == ' ' || expanded[i] == '\t')) ++i;
    size_t start = i;
    while (i < expanded.size() && expanded[i] != ' ' && expanded[i] != '\t') ++i;
    if (i > start) parts.push_back(expanded.substr(start, i - start));
  }
  if (parts.size() != 5) {
    *error = "needs 5 fields (minute hour day-of-month month day-of-week), got " +
             std::to_string(parts.size());
    return false;
  }
  std::vector<bool> set;
  for (int f = 0; f < 5; ++f) {
    if (!ParseField(parts[f], kFields[f], &set, error)) return false;
    for (int v = kFields[f].min; v <= kFields[f].max; ++v) {
      if (!set[v]) continue;
      switch (f) {
        case 0: out->minutes[v] = true; break;
        case 1: out->hours[v] = true; break;
        case 2: out->days[v] = true; break;
        case 3: out->months[v] = true; break;
        case 4: out->weekdays[v % 7] = true; break;
      }
    }
  }
  out->days_star = parts[2].front() == '*';
  out->weekdays_star = parts[4].front() == '*';
  return true;
}

bool CronSchedule::Matches(int64_t t) const {
  Civil c = ToCivil(t);
  return minutes[c.minute] && hours[c.hour] && months[c.month] && DayMatches(*this, c);
}

bool NextCronTime(const CronSchedule& s, int64_t after, int64_t* next) {
  int64_t t = after - ((after % 60) + 60) % 60 + 60;  // the next whole minute
  const int last_year = ToCivil(t).year + 8;
  // Each round moves to the start of the next month, day, hour or minute
  // that might match: at most a few thousand rounds for 8 years.
  while (true) {
    Civil c = ToCivil(t);
    if (c.year > last_year) return false;
    if (!s.months[c.month]) {
      t = FromCivil(c.year, c.month + 1, 1, 0, 0);
    } else if (!DayMatches(s, c)) {
      t = FromCivil(c.year, c.month, c.day + 1, 0, 0);
    } else if (!s.hours[c.hour]) {
      t = FromCivil(c.year, c.month, c.day, c.hour + 1, 0);
    } else if (!s.minutes[c.minute]) {
      t = FromCivil(c.year, c.month, c.day, c.hour, c.minute + 1);
    } else {
      *next = t;
      return true;
    }
  }
}

}  // namespace ladle::runner
