// Small text helpers that every part needs, in one place: ASCII case,
// trimming, and RFC 3986 percent-encoding. Pure functions, thread-safe.
#ifndef LADLE_CORE_BASE_TEXT_H_
#define LADLE_CORE_BASE_TEXT_H_

#include <string>
#include <string_view>

namespace ladle {

// `s` without leading and trailing whitespace (space, \t, \r, \n, \v, \f).
// The view points into `s`.
std::string_view Trim(std::string_view s);

// `s` with ASCII A-Z as a-z; other bytes (UTF-8 included) unchanged.
std::string Lower(std::string_view s);

// True when `s` begins with `prefix`, ASCII case ignored.
bool StartsWithNoCase(std::string_view s, std::string_view prefix);

// Percent-decodes `in` into `*out` ('+' becomes a space when plus_is_space).
// Returns false on a malformed escape or a NUL byte.
bool PercentDecode(std::string_view in, bool plus_is_space, std::string* out);

// Percent-encodes everything but RFC 3986's unreserved characters
// (A-Z a-z 0-9 - . _ ~): safe as a path segment and as a query value.
std::string PercentEncode(std::string_view in);

// True when `path` names a directory (symbolic links followed).
bool IsDirectory(const std::string& path);

}  // namespace ladle

#endif  // LADLE_CORE_BASE_TEXT_H_
