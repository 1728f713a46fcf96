// The toggle model: what a feature toggle is, and its JSON form
// (docs/design.md "Toggle model and evaluation" and "JSON shapes").
//
// Plain values, no behaviour beyond parsing, printing and validation; the
// evaluation engine (evaluate.h) compiles them into an immutable Snapshot.
// Every function here returns errors as a Status and never throws: parse errors
// are Status::Invalid whose message starts with the path of the offending field
// relative to the document parsed, e.g.
//   "strategies[0].rollout.percent: must be between 0 and 100, got 120".
#ifndef LADLE_TOGGLES_EVAL_MODEL_H_
#define LADLE_TOGGLES_EVAL_MODEL_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/base/status.h"

namespace ladle::toggles {

inline constexpr std::size_t kMaxKeyLength = 128;
inline constexpr int kTotalVariantWeight = 1000;
// The OpenFeature name of the context's identity; also the default stickiness.
inline constexpr std::string_view kTargetingKey = "targetingKey";

enum class ToggleType { kRelease, kExperiment, kOps, kKillSwitch, kPermission, kDarkLaunch };

enum class Operator {
  kIn, kNotIn, kContains, kStartsWith, kEndsWith, kEq, kNeq,  // strings
  kLt, kLte, kGt, kGte,                                       // numbers
  kSemverEq, kSemverLt, kSemverGt,                            // semantic versions
  kBefore, kAfter,                                            // RFC 3339 timestamps
};

// "in", "not_in", "contains", "starts_with", "ends_with", "eq", "neq" take one
// or more values and hold when any value does; the others take exactly one.
bool TakesManyValues(Operator op);

struct Variant {
  std::string name;      // [A-Za-z0-9._-], up to 128, unique within the toggle
  int weight = 0;        // 0..1000; a toggle's weights sum to 1000
  nlohmann::json value;  // boolean, string, number or object; one type per toggle

  bool operator==(const Variant& o) const;
};

struct Rollout {
  int percent = 0;                                  // 0..100
  std::string stickiness{kTargetingKey};            // a context attribute name
  std::optional<std::string> group;                 // absent: the toggle's key

  bool operator==(const Rollout& o) const;
};

struct Constraint {
  std::string attribute;  // a context attribute; "targetingKey" is the targeting key
  Operator op = Operator::kIn;
  std::vector<std::string> values;  // numbers, versions and times as text

  bool operator==(const Constraint& o) const;
};

// Holds when every part present holds: constraints (all), users, rollout.
// At least one part is present; present lists are non-empty.
struct Strategy {
  std::optional<Rollout> rollout;
  std::optional<std::vector<std::string>> users;
  std::vector<Constraint> constraints;

  bool operator==(const Strategy& o) const;
};

struct EnvironmentConfig {
  bool enabled = false;
  std::vector<Strategy> strategies;  // OR; empty: on for everyone when enabled

  bool operator==(const EnvironmentConfig& o) const;
};

struct Toggle {
  std::string key;
  ToggleType type = ToggleType::kRelease;
  std::string description;
  std::vector<Variant> variants;  // empty: the toggle's value is true/false
  int64_t revision = 0;           // the global revision of its last change
  // An environment not listed here has the toggle disabled.
  std::map<std::string, EnvironmentConfig> environments;

  bool operator==(const Toggle& o) const;
};

// The toggle's configuration in `environment` (disabled when it has none).
EnvironmentConfig ConfigIn(const Toggle& t, const std::string& environment);

// `config` after a rollout to `percent`, as ToggleStore::SetRollout and
// rollout stages write it: enabled; a lone rollout strategy keeps its
// stickiness, group, users and constraints (users keep their buckets as the
// percentage grows); any other strategies become [{rollout: {percent}}].
EnvironmentConfig WithRollout(EnvironmentConfig config, int percent);

// --- JSON (docs/design.md "JSON shapes": {key, type, description, variants, revision,
//     environments: {ENV: {enabled, strategies}}}) ---
//
// Parsing is strict: unknown fields, wrong JSON types, out-of-range numbers and
// operands that do not parse for their operator are errors naming the field.
// Optional on input: type (release), description (""), variants ([]),
// revision (0), environments ({}), enabled (false), strategies ([]),
// rollout.stickiness ("targetingKey"), rollout.group (the toggle key).

Status ParseToggle(const nlohmann::json& j, Toggle* out);
// From JSON text; also reports malformed JSON ("invalid JSON: ..."). A
// separate name: a std::string would convert to both json and string_view.
Status ParseToggleText(std::string_view json_text, Toggle* out);
// A PUT .../environments/{env} body: {enabled, strategies}.
Status ParseEnvironmentConfig(const nlohmann::json& j, EnvironmentConfig* out);
// A "variants" array on its own (PATCH); paths start at "variants".
Status ParseVariants(const nlohmann::json& j, std::vector<Variant>* out);
// "type: must be one of release, experiment, ops, kill-switch, permission, dark-launch, got \"x\""
Status ParseToggleType(std::string_view text, ToggleType* out);
// "key: only A-Z a-z 0-9 . _ - allowed, up to 128 characters"
Status ValidateKey(std::string_view key);
// Checks a Toggle built in code by the same rules as ParseToggle.
Status Validate(const Toggle& t);

// The inverse of the parsers: Parse(ToJson(x)) == x for any valid x.
// Absent optionals (group, users) are left out; everything else is written.
nlohmann::json ToJson(const Toggle& t);
nlohmann::json ToJson(const EnvironmentConfig& c);
nlohmann::json ToJson(const Strategy& s);
nlohmann::json ToJson(const std::vector<Variant>& variants);

std::string_view ToString(ToggleType type);  // "release", "kill-switch", ...
std::string_view ToString(Operator op);      // "in", "semver_eq", ...
bool ParseOperator(std::string_view text, Operator* out);

// Operand formats, shared by validation and the engine so that both agree.
// A decimal number as JSON writes it (no hex, inf or nan; the whole text).
bool ParseNumber(std::string_view text, double* out);
// RFC 3339 date-time ("2024-05-01T12:00:00Z", "...T12:00:00.5+02:00"), to
// microseconds since the Unix epoch; fractions beyond microseconds truncate.
bool ParseRfc3339(std::string_view text, int64_t* unix_micros);

// What PATCH and sync may change; an absent field is left as it is.
struct ToggleFields {
  std::optional<ToggleType> type;
  std::optional<std::string> description;
  std::optional<std::vector<Variant>> variants;
};

// A PATCH body: {type?, description?, variants?}; anything else is Invalid
// naming the field.
Status ParseToggleFields(const nlohmann::json& body, ToggleFields* out);

// The variants of `f`, when it sets them, checked as a toggle's are.
Status CheckToggleFields(const ToggleFields& f);

// One entry of toggles.yml (docs/design.md "Toggles in a run").
struct SyncEntry {
  std::string key;
  ToggleFields fields;  // absent fields keep their value (a new toggle: the defaults)
};

// What Sync checks before it writes anything: valid keys and variants, no
// key twice; errors name "toggles[i].FIELD". For a client that sends a list
// over HTTP one toggle at a time, so that a bad list writes nothing there too.
Status CheckSyncEntries(const std::vector<SyncEntry>& entries);

}  // namespace ladle::toggles

#endif  // LADLE_TOGGLES_EVAL_MODEL_H_
