// Semantic versions (semver.org 2.0.0) for the semver_* constraint operators.
//
// Strict: MAJOR.MINOR.PATCH without leading zeros, optional -PRERELEASE and
// +BUILD; a leading "v" is rejected, as Unleash rejects it. Parsing does not
// allocate: a Semver views the text it was parsed from.
#ifndef LADLE_TOGGLES_EVAL_SEMVER_H_
#define LADLE_TOGGLES_EVAL_SEMVER_H_

#include <cstdint>
#include <string_view>

namespace ladle::toggles {

struct Semver {
  uint64_t major = 0;
  uint64_t minor = 0;
  uint64_t patch = 0;
  std::string_view prerelease;  // "" when none; views the parsed text
};

// False when `text` is not a semantic version. REQUIRES: `text` outlives *out.
bool ParseSemver(std::string_view text, Semver* out);

// Precedence as semver.org section 11: <0, 0 or >0. Build metadata is ignored;
// a pre-release sorts before its release (1.0.0-rc.1 < 1.0.0), numeric
// identifiers numerically and before alphanumeric ones.
int CompareSemver(const Semver& a, const Semver& b);

}  // namespace ladle::toggles

#endif  // LADLE_TOGGLES_EVAL_SEMVER_H_
