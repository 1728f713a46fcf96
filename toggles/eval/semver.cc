#include "toggles/eval/semver.h"

#include <limits>

namespace ladle::toggles {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool IsIdentChar(char c) {
  return IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
}

bool AllDigits(std::string_view s) {
  for (char c : s) {
    if (!IsDigit(c)) return false;
  }
  return true;
}

// A numeric version part: digits, no leading zero, no overflow.
bool ParseNumericPart(std::string_view s, uint64_t* out) {
  if (s.empty() || !AllDigits(s) || (s.size() > 1 && s[0] == '0')) return false;
  uint64_t v = 0;
  for (char c : s) {
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

// Dot-separated non-empty identifiers; pre-release numerics have no leading zero.
bool ValidIdentifiers(std::string_view s, bool numeric_leading_zero_ok) {
  if (s.empty()) return false;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    std::string_view id = s.substr(start, dot == std::string_view::npos ? s.npos : dot - start);
    if (id.empty()) return false;
    for (char c : id) {
      if (!IsIdentChar(c)) return false;
    }
    if (!numeric_leading_zero_ok && id.size() > 1 && id[0] == '0' && AllDigits(id)) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

// Takes the text up to the next `sep` (or the end) off the front of *s.
std::string_view Take(std::string_view* s, char sep) {
  size_t pos = s->find(sep);
  std::string_view head = s->substr(0, pos);
  s->remove_prefix(pos == std::string_view::npos ? s->size() : pos + 1);
  return head;
}

int CompareIdentifier(std::string_view a, std::string_view b) {
  bool an = AllDigits(a), bn = AllDigits(b);
  if (an && bn) {
    // No leading zeros, so the longer number is the larger.
    if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
    return a.compare(b);
  }
  if (an != bn) return an ? -1 : 1;
  return a.compare(b);
}

int Sign(int v) { return (v > 0) - (v < 0); }

}  // namespace

bool ParseSemver(std::string_view text, Semver* out) {
  std::string_view rest = text;
  std::string_view core = Take(&rest, '+');
  bool has_build = text.size() != core.size();
  if (has_build && !ValidIdentifiers(rest, true)) return false;
  size_t dash = core.find('-');
  std::string_view pre;
  if (dash != std::string_view::npos) {
    pre = core.substr(dash + 1);
    core = core.substr(0, dash);
    if (!ValidIdentifiers(pre, false)) return false;
  }
  Semver v;
  v.prerelease = pre;
  std::string_view major = Take(&core, '.');
  std::string_view minor = Take(&core, '.');
  if (!ParseNumericPart(major, &v.major) || !ParseNumericPart(minor, &v.minor) ||
      !ParseNumericPart(core, &v.patch)) {
    return false;
  }
  *out = v;
  return true;
}

int CompareSemver(const Semver& a, const Semver& b) {
  if (a.major != b.major) return a.major < b.major ? -1 : 1;
  if (a.minor != b.minor) return a.minor < b.minor ? -1 : 1;
  if (a.patch != b.patch) return a.patch < b.patch ? -1 : 1;
  if (a.prerelease.empty() || b.prerelease.empty()) {
    // A release outranks any of its pre-releases.
    return static_cast<int>(a.prerelease.empty()) - static_cast<int>(b.prerelease.empty());
  }
  std::string_view x = a.prerelease, y = b.prerelease;
  while (!x.empty() && !y.empty()) {
    int c = CompareIdentifier(Take(&x, '.'), Take(&y, '.'));
    if (c != 0) return Sign(c);
  }
  // The longer list of otherwise equal identifiers has the higher precedence.
  return static_cast<int>(!x.empty()) - static_cast<int>(!y.empty());
}

}  // namespace ladle::toggles
