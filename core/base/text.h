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

// How deep JSON may nest in anything ladle reads from outside (HTTP bodies,
// stored values): deeper input is refused before it is parsed, since writing
// it back out (nlohmann-json's dump) recurses once per level.
inline constexpr int kMaxJsonDepth = 64;

// True when the arrays and objects of JSON `text` nest deeper than
// `max_depth` (brackets inside strings do not count). Linear, no allocation;
// says nothing about whether the text is valid JSON.
bool JsonDeeperThan(std::string_view text, int max_depth);

// True when `path` is a relative path of plain segments: not empty, at most
// 4096 bytes, no NUL, and no "", "." or ".." segment, so that joined to a
// directory it cannot leave it.
bool PlainRelativePath(std::string_view path);

// True when `path` names a directory (symbolic links followed).
bool IsDirectory(const std::string& path);

}  // namespace ladle

#endif  // LADLE_CORE_BASE_TEXT_H_
