// The evaluation engine: is a toggle on for this context, with which value,
// and why: OFREP's reasons and error codes (docs/design.md "OFREP").
//
// Pure: no I/O, no clock, no locks. Toggles are compiled once per revision into
// an immutable Snapshot (bucketing prefixes built, users and `in` lists sorted,
// numbers, versions and times parsed), so that evaluating one toggle is a few
// comparisons and at most one murmur3 hash, without allocating.
//
// Thread-safety: a Snapshot and its CompiledToggles are immutable after Build;
// any number of threads may evaluate against one shared_ptr<const Snapshot>
// while a writer builds the next one. An EvaluationContext is a plain value.
//
// Semantics (docs/design.md "Toggle model and evaluation"):
// - Within one strategy, constraints (all), users and rollout must all hold
//   ("25% of users in NL" is one strategy); strategies are OR-ed in order.
// - A missing attribute makes every operator false, not_in and neq included.
//   Null, array and object attributes count as missing.
// - String operators compare the attribute's string form (numbers as JSON
//   writes them, "true"/"false"); numeric operators parse string attributes,
//   and a non-numeric one does not match. Comparisons are case-sensitive.
// - The attribute "targetingKey" is the targeting key. "before"/"after" on
//   "currentTime" use EvaluationContext::now_micros when the context does not
//   carry "currentTime" itself (the engine never reads a clock).
// - Rollout stickiness "targetingKey" with no targeting key gives
//   TARGETING_KEY_MISSING only if no later strategy matches (OFREP: only when
//   the answer depends on it); any other stickiness attribute that is missing
//   makes the strategy not match. A rollout of 0% or 100% reads no stickiness
//   value at all, so 100% is on even without a targeting key.
// - Variants always bucket by the targeting key with the toggle key as group.
// - Off answers (DISABLED, DEFAULT) of a toggle with variants carry its
//   default variant, the first one listed, so that the value keeps the
//   variants' type (an OpenFeature SDK reports TYPE_MISMATCH otherwise); a
//   toggle without variants answers false / "off". Errors are false / "off"
//   (docs/design.md "OFREP").
#ifndef LADLE_TOGGLES_EVAL_EVALUATE_H_
#define LADLE_TOGGLES_EVAL_EVALUATE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/base/status.h"
#include "toggles/eval/model.h"

namespace ladle::toggles {

// OpenFeature's reasons; kError goes with an ErrorCode.
enum class Reason { kStatic, kTargetingMatch, kSplit, kDefault, kDisabled, kError };

// OFREP's error codes. The engine itself only gives kTargetingKeyMissing; the
// others are here so that the HTTP layer speaks one vocabulary.
enum class ErrorCode {
  kParseError,
  kTargetingKeyMissing,
  kInvalidContext,
  kFlagNotFound,
  kGeneral,
};

std::string_view ToString(Reason reason);    // "STATIC", "TARGETING_MATCH", ...
std::string_view ToString(ErrorCode code);   // "TARGETING_KEY_MISSING", ...

// A context attribute, kept in the two forms the operators need.
struct AttributeValue {
  std::string text;        // what string operators compare
  bool is_number = false;  // a JSON number: `number` holds it
  double number = 0;

  static AttributeValue String(std::string s);
  static AttributeValue Number(double d);  // text as JSON writes it: 42.0 -> "42.0"
  static AttributeValue Integer(int64_t i);
  static AttributeValue Bool(bool b);
};

struct EvaluationContext {
  std::string targeting_key;
  bool has_targeting_key = false;
  std::map<std::string, AttributeValue, std::less<>> attributes;
  std::optional<int64_t> now_micros;  // for "currentTime"; see the file comment

  void SetTargetingKey(std::string key);
  void Set(std::string name, AttributeValue value);
  const AttributeValue* Find(std::string_view name) const;  // null when absent
};

// OFREP's "context" object: "targetingKey" (a string; absent or "" means none)
// and any other members as attributes. Invalid (for INVALID_CONTEXT) when the
// context is not an object or targetingKey is not a string.
Status ContextFromJson(const nlohmann::json& context, EvaluationContext* out);

// The answer for one toggle. `value` and `variant` point into the Snapshot (or
// static storage) and stay valid while the Snapshot lives.
struct Evaluation {
  bool on = false;
  const nlohmann::json* value = nullptr;  // never null in a returned Evaluation
  std::string_view variant;               // "on", "off" or the picked variant's name
  Reason reason = Reason::kDefault;
  std::optional<ErrorCode> error;         // set only with Reason::kError
};

// One toggle, compiled for evaluation in every environment it lists. A copy
// shares the compiled rules (immutable), so snapshots share unchanged toggles.
class CompiledToggle {
 public:
  // Validates (model.h's rules) and compiles; the message names the field.
  static Status Compile(Toggle toggle, CompiledToggle* out);

  CompiledToggle();
  CompiledToggle(const CompiledToggle&);
  CompiledToggle& operator=(const CompiledToggle&);
  CompiledToggle(CompiledToggle&&) noexcept;
  CompiledToggle& operator=(CompiledToggle&&) noexcept;
  ~CompiledToggle();

  const Toggle& toggle() const;  // REQUIRES: compiled
  const std::string& key() const { return toggle().key; }

  // An environment the toggle does not list has it disabled.
  // REQUIRES: compiled. Never allocates.
  Evaluation Evaluate(std::string_view environment, const EvaluationContext& ctx) const;

  struct Impl;  // compiled rules; defined in evaluate.cc

 private:
  std::shared_ptr<const Impl> impl_;
};

// Every toggle at one global revision, immutable once built.
class Snapshot {
 public:
  // Fails with the first invalid toggle ("toggle \"KEY\": variants: ...") or a
  // duplicate key.
  static Status Build(int64_t revision, std::vector<Toggle> toggles,
                      std::shared_ptr<const Snapshot>* out);
  // The snapshot at `revision` that is `base` with the toggles in `changed`
  // put in (replacing those of the same key) and the keys in `removed` taken
  // out. Every other toggle is shared with `base`, not compiled again, and
  // when the set of keys stays the same so is the key index: a write costs a
  // copy of n pointers, not n compilations. `changed` must not repeat a key
  // (Invalid); a removed key that `base` lacks is ignored.
  static Status Update(const Snapshot& base, int64_t revision,
                       std::vector<CompiledToggle> changed,
                       const std::vector<std::string>& removed,
                       std::shared_ptr<const Snapshot>* out);

  int64_t revision() const { return revision_; }
  const CompiledToggle* Find(std::string_view key) const;  // null: FLAG_NOT_FOUND
  const std::vector<CompiledToggle>& toggles() const { return toggles_; }  // sorted by key

  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;

 private:
  Snapshot() = default;

  // Key -> position in toggles_; immutable, shared by the snapshots that
  // hold the same keys. The views point into `keys`, which never changes.
  struct KeyIndex {
    std::vector<std::string> keys;
    std::unordered_map<std::string_view, size_t> position;
  };
  void IndexKeys();  // builds index_ from toggles_

  int64_t revision_ = 0;
  std::vector<CompiledToggle> toggles_;
  std::shared_ptr<const KeyIndex> index_;
};

}  // namespace ladle::toggles

#endif  // LADLE_TOGGLES_EVAL_EVALUATE_H_
