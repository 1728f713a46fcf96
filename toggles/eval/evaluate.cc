#include "toggles/eval/evaluate.h"

#include <algorithm>
#include <utility>

#include "toggles/eval/bucketing.h"
#include "toggles/eval/semver.h"

namespace ladle::toggles {
namespace {

using json = nlohmann::json;

// The values of toggles without variants; Evaluation points at them.
const json kTrue = true;
const json kFalse = false;

constexpr std::string_view kCurrentTime = "currentTime";

enum class Match { kNo, kYes, kNeedsTargetingKey };

}  // namespace

// --- compiled forms; string_views point into Impl::source, which never moves ---

struct CompiledConstraint {
  std::string_view attribute;
  bool is_targeting_key = false;
  bool is_current_time = false;
  Operator op = Operator::kIn;
  std::vector<std::string_view> values;  // sorted for in / not_in
  double number = 0;                     // lt, lte, gt, gte
  Semver semver;                         // semver_*
  int64_t time_micros = 0;               // before, after
};

struct CompiledRollout {
  int percent = 0;
  bool on_targeting_key = true;
  std::string_view stickiness;  // the attribute, when not the targeting key
  BucketGroup group;
};

struct CompiledStrategy {
  std::vector<CompiledConstraint> constraints;
  bool has_users = false;
  std::vector<std::string_view> users;  // sorted
  std::optional<CompiledRollout> rollout;
};

struct CompiledRules {
  std::string_view environment;
  bool enabled = false;
  std::vector<CompiledStrategy> strategies;
};

struct CompiledToggle::Impl {
  explicit Impl(Toggle t) : source(std::move(t)), variant_group(source.key) {}

  Toggle source;
  std::vector<CompiledRules> rules;  // few environments: a scan beats a map
  BucketGroup variant_group;
  std::vector<int> running_weights;  // running totals of source.variants' weights
};

namespace {

// --- compiling ---

std::vector<std::string_view> SortedViews(const std::vector<std::string>& list) {
  std::vector<std::string_view> views(list.begin(), list.end());
  std::sort(views.begin(), views.end());
  return views;
}

// Operands were validated by the model, so the parses here cannot fail.
CompiledConstraint CompileConstraint(const Constraint& c) {
  CompiledConstraint out;
  out.attribute = c.attribute;
  out.is_targeting_key = c.attribute == kTargetingKey;
  out.is_current_time = c.attribute == kCurrentTime;
  out.op = c.op;
  out.values.assign(c.values.begin(), c.values.end());
  if (c.op == Operator::kIn || c.op == Operator::kNotIn) out.values = SortedViews(c.values);
  const std::string& first = c.values.front();
  ParseNumber(first, &out.number);
  ParseSemver(first, &out.semver);
  ParseRfc3339(first, &out.time_micros);
  return out;
}

CompiledStrategy CompileStrategy(const Strategy& s, const std::string& toggle_key) {
  CompiledStrategy out;
  for (const Constraint& c : s.constraints) out.constraints.push_back(CompileConstraint(c));
  if (s.users) {
    out.has_users = true;
    out.users = SortedViews(*s.users);
  }
  if (s.rollout) {
    const Rollout& r = *s.rollout;
    out.rollout.emplace(CompiledRollout{r.percent, r.stickiness == kTargetingKey, r.stickiness,
                                        BucketGroup(r.group ? *r.group : toggle_key)});
  }
  return out;
}

void CompileInto(CompiledToggle::Impl* impl) {
  const Toggle& t = impl->source;
  for (const auto& [env, config] : t.environments) {
    CompiledRules rules{env, config.enabled, {}};
    for (const Strategy& s : config.strategies) {
      rules.strategies.push_back(CompileStrategy(s, t.key));
    }
    impl->rules.push_back(std::move(rules));
  }
  int total = 0;
  for (const Variant& v : t.variants) impl->running_weights.push_back(total += v.weight);
}

// --- matching ---

using StringPredicate = bool (*)(std::string_view text, std::string_view value);

bool AnyValue(const CompiledConstraint& c, std::string_view text, StringPredicate pred) {
  for (std::string_view v : c.values) {
    if (pred(text, v)) return true;
  }
  return false;
}

bool StringHolds(const CompiledConstraint& c, std::string_view text) {
  switch (c.op) {
    case Operator::kIn:
      return std::binary_search(c.values.begin(), c.values.end(), text);
    case Operator::kNotIn:
      return !std::binary_search(c.values.begin(), c.values.end(), text);
    case Operator::kContains:
      return AnyValue(c, text, [](std::string_view t, std::string_view v) {
        return t.find(v) != t.npos;
      });
    case Operator::kStartsWith:
      return AnyValue(c, text, [](std::string_view t, std::string_view v) {
        return t.substr(0, v.size()) == v;
      });
    case Operator::kEndsWith:
      return AnyValue(c, text, [](std::string_view t, std::string_view v) {
        return t.size() >= v.size() && t.substr(t.size() - v.size()) == v;
      });
    case Operator::kEq:
      return text == c.values.front();
    case Operator::kNeq:
      return text != c.values.front();
    default:
      return false;
  }
}

bool NumberHolds(const CompiledConstraint& c, const AttributeValue* attr, std::string_view text) {
  double x;
  if (attr != nullptr && attr->is_number) {
    x = attr->number;
  } else if (!ParseNumber(text, &x)) {
    return false;
  }
  switch (c.op) {
    case Operator::kLt: return x < c.number;
    case Operator::kLte: return x <= c.number;
    case Operator::kGt: return x > c.number;
    case Operator::kGte: return x >= c.number;
    default: return false;
  }
}

bool SemverHolds(const CompiledConstraint& c, std::string_view text) {
  Semver v;
  if (!ParseSemver(text, &v)) return false;
  int cmp = CompareSemver(v, c.semver);
  switch (c.op) {
    case Operator::kSemverEq: return cmp == 0;
    case Operator::kSemverLt: return cmp < 0;
    case Operator::kSemverGt: return cmp > 0;
    default: return false;
  }
}

bool TimeHolds(const CompiledConstraint& c, int64_t t) {
  return c.op == Operator::kBefore ? t < c.time_micros : t > c.time_micros;
}

bool ConstraintHolds(const CompiledConstraint& c, const EvaluationContext& ctx) {
  const AttributeValue* attr = nullptr;
  std::string_view text;
  bool present;
  if (c.is_targeting_key) {
    present = ctx.has_targeting_key;
    text = ctx.targeting_key;
  } else {
    attr = ctx.Find(c.attribute);
    present = attr != nullptr;
    if (present) text = attr->text;
  }
  if (!present) {
    // Missing: false for every operator, but the caller's clock stands in
    // for a "currentTime" the context did not send.
    return c.is_current_time && ctx.now_micros &&
           (c.op == Operator::kBefore || c.op == Operator::kAfter) &&
           TimeHolds(c, *ctx.now_micros);
  }
  switch (c.op) {
    case Operator::kLt: case Operator::kLte: case Operator::kGt: case Operator::kGte:
      return NumberHolds(c, attr, text);
    case Operator::kSemverEq: case Operator::kSemverLt: case Operator::kSemverGt:
      return SemverHolds(c, text);
    case Operator::kBefore: case Operator::kAfter: {
      int64_t t;
      return ParseRfc3339(text, &t) && TimeHolds(c, t);
    }
    default:
      return StringHolds(c, text);
  }
}

Match RolloutMatches(const CompiledRollout& r, const EvaluationContext& ctx) {
  if (r.percent <= 0) return Match::kNo;
  if (r.percent >= 100) return Match::kYes;
  std::string_view id;
  if (r.on_targeting_key) {
    if (!ctx.has_targeting_key) return Match::kNeedsTargetingKey;
    id = ctx.targeting_key;
  } else {
    const AttributeValue* attr = ctx.Find(r.stickiness);
    if (attr == nullptr) return Match::kNo;
    id = attr->text;
  }
  return r.group.Normalized(id) <= r.percent ? Match::kYes : Match::kNo;
}

// Cheapest and most selective first: constraints, then users, then the hash,
// so that a context the constraints exclude never needs a targeting key.
Match StrategyMatches(const CompiledStrategy& s, const EvaluationContext& ctx) {
  for (const CompiledConstraint& c : s.constraints) {
    if (!ConstraintHolds(c, ctx)) return Match::kNo;
  }
  if (s.has_users && (!ctx.has_targeting_key ||
                      !std::binary_search(s.users.begin(), s.users.end(),
                                          std::string_view(ctx.targeting_key)))) {
    return Match::kNo;
  }
  return s.rollout ? RolloutMatches(*s.rollout, ctx) : Match::kYes;
}

// --- answers ---

// An off answer (DISABLED, DEFAULT): false / "off", or the default variant
// (the first) of a toggle with variants, so that the value keeps their type
// (docs/design.md "OFREP").
Evaluation Off(const CompiledToggle::Impl& t, Reason reason) {
  const std::vector<Variant>& variants = t.source.variants;
  if (variants.empty()) return Evaluation{false, &kFalse, "off", reason, std::nullopt};
  return Evaluation{false, &variants.front().value, variants.front().name, reason, std::nullopt};
}

Evaluation Failed(ErrorCode code) {
  return Evaluation{false, &kFalse, "off", Reason::kError, code};
}

Evaluation On(const CompiledToggle::Impl& t, Reason reason, const EvaluationContext& ctx) {
  const std::vector<Variant>& variants = t.source.variants;
  if (variants.empty()) return Evaluation{true, &kTrue, "on", reason, std::nullopt};
  if (!ctx.has_targeting_key) return Failed(ErrorCode::kTargetingKeyMissing);
  const int bucket = t.variant_group.Variant(ctx.targeting_key);
  // The first variant whose running total exceeds the bucket
  // (docs/design.md "Toggle model and evaluation").
  auto it = std::upper_bound(t.running_weights.begin(), t.running_weights.end(), bucket);
  size_t i = std::min<size_t>(it - t.running_weights.begin(), variants.size() - 1);
  return Evaluation{true, &variants[i].value, variants[i].name, Reason::kSplit, std::nullopt};
}

const CompiledRules* FindRules(const CompiledToggle::Impl& t, std::string_view env) {
  for (const CompiledRules& r : t.rules) {
    if (r.environment == env) return &r;
  }
  return nullptr;
}

}  // namespace

// --- public API ---

std::string_view ToString(Reason reason) {
  switch (reason) {
    case Reason::kStatic: return "STATIC";
    case Reason::kTargetingMatch: return "TARGETING_MATCH";
    case Reason::kSplit: return "SPLIT";
    case Reason::kDefault: return "DEFAULT";
    case Reason::kDisabled: return "DISABLED";
    case Reason::kError: return "ERROR";
  }
  return "UNKNOWN";
}

std::string_view ToString(ErrorCode code) {
  switch (code) {
    case ErrorCode::kParseError: return "PARSE_ERROR";
    case ErrorCode::kTargetingKeyMissing: return "TARGETING_KEY_MISSING";
    case ErrorCode::kInvalidContext: return "INVALID_CONTEXT";
    case ErrorCode::kFlagNotFound: return "FLAG_NOT_FOUND";
    case ErrorCode::kGeneral: return "GENERAL";
  }
  return "GENERAL";
}

AttributeValue AttributeValue::String(std::string s) { return {std::move(s), false, 0}; }
AttributeValue AttributeValue::Number(double d) { return {json(d).dump(), true, d}; }
AttributeValue AttributeValue::Integer(int64_t i) {
  return {std::to_string(i), true, static_cast<double>(i)};
}
AttributeValue AttributeValue::Bool(bool b) { return {b ? "true" : "false", false, 0}; }

void EvaluationContext::SetTargetingKey(std::string key) {
  has_targeting_key = !key.empty();
  targeting_key = std::move(key);
}

void EvaluationContext::Set(std::string name, AttributeValue value) {
  attributes.insert_or_assign(std::move(name), std::move(value));
}

const AttributeValue* EvaluationContext::Find(std::string_view name) const {
  auto it = attributes.find(name);
  return it == attributes.end() ? nullptr : &it->second;
}

Status ContextFromJson(const nlohmann::json& context, EvaluationContext* out) {
  if (!context.is_object()) {
    return Status::Invalid(std::string("context: expected object, found ") + context.type_name());
  }
  EvaluationContext ctx;
  for (auto it = context.begin(); it != context.end(); ++it) {
    const json& v = *it;
    if (it.key() == kTargetingKey) {
      if (!v.is_string()) {
        return Status::Invalid(std::string("context.targetingKey: expected string, found ") +
                               v.type_name());
      }
      ctx.SetTargetingKey(v.get<std::string>());
    } else if (v.is_string()) {
      ctx.Set(it.key(), AttributeValue::String(v.get<std::string>()));
    } else if (v.is_boolean()) {
      ctx.Set(it.key(), AttributeValue::Bool(v.get<bool>()));
    } else if (v.is_number()) {
      ctx.Set(it.key(), AttributeValue{v.dump(), true, v.get<double>()});
    }  // null, arrays and objects: no operator can match them; left out
  }
  *out = std::move(ctx);
  return Status::OK();
}

CompiledToggle::CompiledToggle() = default;
CompiledToggle::CompiledToggle(const CompiledToggle&) = default;
CompiledToggle& CompiledToggle::operator=(const CompiledToggle&) = default;
CompiledToggle::CompiledToggle(CompiledToggle&&) noexcept = default;
CompiledToggle& CompiledToggle::operator=(CompiledToggle&&) noexcept = default;
CompiledToggle::~CompiledToggle() = default;

Status CompiledToggle::Compile(Toggle toggle, CompiledToggle* out) {
  Status s = Validate(toggle);
  if (!s.ok()) return s;
  try {
    auto impl = std::make_shared<Impl>(std::move(toggle));
    CompileInto(impl.get());
    out->impl_ = std::move(impl);
  } catch (const std::exception& e) {  // bad_alloc: the API does not throw
    return Status::Internal(std::string("compile toggle: ") + e.what());
  }
  return Status::OK();
}

const Toggle& CompiledToggle::toggle() const { return impl_->source; }

Evaluation CompiledToggle::Evaluate(std::string_view environment,
                                    const EvaluationContext& ctx) const {
  const CompiledRules* rules = FindRules(*impl_, environment);
  if (rules == nullptr || !rules->enabled) return Off(*impl_, Reason::kDisabled);
  if (rules->strategies.empty()) return On(*impl_, Reason::kStatic, ctx);
  bool needs_targeting_key = false;
  for (const CompiledStrategy& s : rules->strategies) {
    switch (StrategyMatches(s, ctx)) {
      case Match::kYes:
        return On(*impl_, s.rollout ? Reason::kSplit : Reason::kTargetingMatch, ctx);
      case Match::kNeedsTargetingKey:
        needs_targeting_key = true;
        break;
      case Match::kNo:
        break;
    }
  }
  return needs_targeting_key ? Failed(ErrorCode::kTargetingKeyMissing)
                             : Off(*impl_, Reason::kDefault);
}

Status Snapshot::Build(int64_t revision, std::vector<Toggle> toggles,
                       std::shared_ptr<const Snapshot>* out) {
  std::sort(toggles.begin(), toggles.end(),
            [](const Toggle& a, const Toggle& b) { return a.key < b.key; });
  std::shared_ptr<Snapshot> snap(new Snapshot());
  snap->revision_ = revision;
  snap->toggles_.resize(toggles.size());
  for (size_t i = 0; i < toggles.size(); ++i) {
    const std::string context = "toggle \"" + toggles[i].key + "\"";
    if (i > 0 && toggles[i].key == snap->toggles_[i - 1].key()) {  // [i - 1] moved out
      return Status::Invalid(context + ": duplicate key");
    }
    Status s = CompiledToggle::Compile(std::move(toggles[i]), &snap->toggles_[i]);
    if (!s.ok()) return s.WithContext(context);
  }
  snap->IndexKeys();
  *out = std::move(snap);
  return Status::OK();
}

Status Snapshot::Update(const Snapshot& base, int64_t revision,
                        std::vector<CompiledToggle> changed,
                        const std::vector<std::string>& removed,
                        std::shared_ptr<const Snapshot>* out) {
  auto by_key = [](const CompiledToggle& a, const CompiledToggle& b) { return a.key() < b.key(); };
  std::sort(changed.begin(), changed.end(), by_key);
  for (size_t i = 1; i < changed.size(); ++i) {
    if (changed[i].key() == changed[i - 1].key()) {
      return Status::Invalid("toggle \"" + changed[i].key() + "\": duplicate key");
    }
  }
  std::shared_ptr<Snapshot> snap(new Snapshot());
  snap->revision_ = revision;
  // The common write (a flip, a new strategy): the same keys, new rules.
  bool same_keys = true;
  for (const std::string& key : removed) same_keys = same_keys && base.Find(key) == nullptr;
  for (const CompiledToggle& t : changed) same_keys = same_keys && base.Find(t.key()) != nullptr;
  if (same_keys) {
    snap->toggles_ = base.toggles_;
    for (CompiledToggle& t : changed) {
      snap->toggles_[base.index_->position.find(t.key())->second] = std::move(t);
    }
    snap->index_ = base.index_;
    *out = std::move(snap);
    return Status::OK();
  }
  // A create or a delete: merge the two sorted lists, then index again.
  std::vector<std::string_view> gone(removed.begin(), removed.end());
  std::sort(gone.begin(), gone.end());
  snap->toggles_.reserve(base.toggles_.size() + changed.size());
  auto next = changed.begin();
  for (const CompiledToggle& t : base.toggles_) {
    while (next != changed.end() && next->key() < t.key()) snap->toggles_.push_back(std::move(*next++));
    if (next != changed.end() && next->key() == t.key()) {
      snap->toggles_.push_back(std::move(*next++));
    } else if (!std::binary_search(gone.begin(), gone.end(), std::string_view(t.key()))) {
      snap->toggles_.push_back(t);
    }
  }
  while (next != changed.end()) snap->toggles_.push_back(std::move(*next++));
  snap->IndexKeys();
  *out = std::move(snap);
  return Status::OK();
}

void Snapshot::IndexKeys() {
  auto index = std::make_shared<KeyIndex>();
  index->keys.reserve(toggles_.size());
  for (const CompiledToggle& t : toggles_) index->keys.push_back(t.key());
  index->position.reserve(toggles_.size());
  for (size_t i = 0; i < index->keys.size(); ++i) index->position.emplace(index->keys[i], i);
  index_ = std::move(index);
}

const CompiledToggle* Snapshot::Find(std::string_view key) const {
  auto it = index_->position.find(key);
  return it == index_->position.end() ? nullptr : &toggles_[it->second];
}

}  // namespace ladle::toggles
