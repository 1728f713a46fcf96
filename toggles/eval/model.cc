#include "toggles/eval/model.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <set>
#include <utility>

#include "core/base/text.h"
#include "core/base/time_util.h"
#include "toggles/eval/semver.h"

namespace ladle::toggles {
namespace {

using json = nlohmann::json;

constexpr std::array<std::pair<ToggleType, std::string_view>, 6> kTypeNames{{
    {ToggleType::kRelease, "release"},
    {ToggleType::kExperiment, "experiment"},
    {ToggleType::kOps, "ops"},
    {ToggleType::kKillSwitch, "kill-switch"},
    {ToggleType::kPermission, "permission"},
    {ToggleType::kDarkLaunch, "dark-launch"},
}};

constexpr std::array<std::pair<Operator, std::string_view>, 16> kOperatorNames{{
    {Operator::kIn, "in"},
    {Operator::kNotIn, "not_in"},
    {Operator::kContains, "contains"},
    {Operator::kStartsWith, "starts_with"},
    {Operator::kEndsWith, "ends_with"},
    {Operator::kEq, "eq"},
    {Operator::kNeq, "neq"},
    {Operator::kLt, "lt"},
    {Operator::kLte, "lte"},
    {Operator::kGt, "gt"},
    {Operator::kGte, "gte"},
    {Operator::kSemverEq, "semver_eq"},
    {Operator::kSemverLt, "semver_lt"},
    {Operator::kSemverGt, "semver_gt"},
    {Operator::kBefore, "before"},
    {Operator::kAfter, "after"},
}};

constexpr std::string_view kNameRule = "only A-Z a-z 0-9 . _ - allowed, up to 128 characters";

template <typename Names>
std::string JoinNames(const Names& names) {
  std::string out;
  for (const auto& n : names) {
    if (!out.empty()) out += ", ";
    out += n.second;
  }
  return out;
}

// --- paths and messages ---

std::string Field(const std::string& base, std::string_view name) {
  return base.empty() ? std::string(name) : base + "." + std::string(name);
}

std::string Index(const std::string& base, size_t i) {
  return base + "[" + std::to_string(i) + "]";
}

Status Error(const std::string& path, const std::string& msg) {
  return Status::Invalid(path.empty() ? msg : path + ": " + msg);
}

// JSON's names, except that integers and fractions are told apart, since
// "expected integer, found number" is the message that explains 12.5.
std::string TypeName(const json& j) {
  if (j.is_number_integer()) return "integer";
  return j.type_name();
}

Status TypeError(const std::string& path, const std::string& expected, const json& j) {
  return Error(path, "expected " + expected + ", found " + TypeName(j));
}

// Replaces invalid UTF-8 rather than throwing: messages quote user input.
std::string Quote(std::string_view s) {
  return json(std::string(s)).dump(-1, ' ', false, json::error_handler_t::replace);
}

// --- readers: each checks presence and JSON type, and names the field ---

Status CheckObject(const json& j, const std::string& path,
                   std::initializer_list<std::string_view> known) {
  if (!j.is_object()) return TypeError(path, "object", j);
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (std::find(known.begin(), known.end(), it.key()) != known.end()) continue;
    std::string list;
    for (std::string_view k : known) list += (list.empty() ? "" : ", ") + std::string(k);
    return Error(Field(path, it.key()), "unknown field (known: " + list + ")");
  }
  return Status::OK();
}

// Null when absent; an error status when required and absent.
const json* Member(const json& obj, std::string_view name) {
  auto it = obj.find(std::string(name));
  return it == obj.end() ? nullptr : &*it;
}

Status ReadString(const json& obj, std::string_view name, const std::string& base,
                  bool required, std::string* out) {
  const json* v = Member(obj, name);
  if (v == nullptr) return required ? Error(Field(base, name), "required") : Status::OK();
  if (!v->is_string()) return TypeError(Field(base, name), "string", *v);
  *out = v->get<std::string>();
  return Status::OK();
}

Status ReadBool(const json& obj, std::string_view name, const std::string& base, bool* out) {
  const json* v = Member(obj, name);
  if (v == nullptr) return Status::OK();
  if (!v->is_boolean()) return TypeError(Field(base, name), "boolean", *v);
  *out = v->get<bool>();
  return Status::OK();
}

// An integer in [lo, hi]; the message quotes the range and the value.
Status ReadInt(const json& obj, std::string_view name, const std::string& base, bool required,
               int64_t lo, int64_t hi, int64_t* out) {
  const std::string path = Field(base, name);
  const json* v = Member(obj, name);
  if (v == nullptr) return required ? Error(path, "required") : Status::OK();
  if (!v->is_number_integer()) return TypeError(path, "integer", *v);
  if (v->is_number_unsigned() &&
      v->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return Error(path, "must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                           ", got " + v->dump());
  }
  int64_t n = v->get<int64_t>();
  if (n < lo || n > hi) {
    std::string range =
        hi == std::numeric_limits<int64_t>::max()
            ? "must be >= " + std::to_string(lo)
            : "must be between " + std::to_string(lo) + " and " + std::to_string(hi);
    return Error(path, range + ", got " + std::to_string(n));
  }
  *out = n;
  return Status::OK();
}

// A non-empty array of strings.
Status ReadStringList(const json& j, const std::string& path, std::vector<std::string>* out) {
  if (!j.is_array()) return TypeError(path, "array", j);
  if (j.empty()) return Error(path, "must not be empty");
  std::vector<std::string> list;
  for (size_t i = 0; i < j.size(); ++i) {
    if (!j[i].is_string()) return TypeError(Index(path, i), "string", j[i]);
    list.push_back(j[i].get<std::string>());
  }
  *out = std::move(list);
  return Status::OK();
}

bool ValidName(std::string_view s) {
  if (s.empty() || s.size() > kMaxKeyLength) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
  });
}

// --- constraints and strategies ---

enum class OperandKind { kString, kNumber, kSemver, kTime };

OperandKind KindOf(Operator op) {
  switch (op) {
    case Operator::kLt: case Operator::kLte: case Operator::kGt: case Operator::kGte:
      return OperandKind::kNumber;
    case Operator::kSemverEq: case Operator::kSemverLt: case Operator::kSemverGt:
      return OperandKind::kSemver;
    case Operator::kBefore: case Operator::kAfter:
      return OperandKind::kTime;
    default:
      return OperandKind::kString;
  }
}

// Operands are parsed once here so that the engine can rely on them.
Status CheckOperand(Operator op, const std::string& value, const std::string& path) {
  double d;
  Semver v;
  int64_t t;
  switch (KindOf(op)) {
    case OperandKind::kNumber:
      return ParseNumber(value, &d) ? Status::OK() : Error(path, "not a number: " + Quote(value));
    case OperandKind::kSemver:
      return ParseSemver(value, &v)
                 ? Status::OK()
                 : Error(path, "not a semantic version (MAJOR.MINOR.PATCH[-PRE][+BUILD]): " +
                                   Quote(value));
    case OperandKind::kTime:
      return ParseRfc3339(value, &t)
                 ? Status::OK()
                 : Error(path, "not an RFC 3339 date-time (2024-05-01T12:00:00Z): " + Quote(value));
    case OperandKind::kString:
      break;
  }
  return Status::OK();
}

Status ParseOperatorAt(const json& c, const std::string& path, Operator* out) {
  std::string name;
  Status s = ReadString(c, "operator", path, true, &name);
  if (!s.ok()) return s;
  if (ParseOperator(name, out)) return Status::OK();
  return Error(Field(path, "operator"), "unknown operator " + Quote(name) +
                                            " (known: " + JoinNames(kOperatorNames) + ")");
}

Status ParseConstraint(const json& c, const std::string& path, Constraint* out) {
  Status s = CheckObject(c, path, {"attribute", "operator", "values"});
  if (s.ok()) s = ReadString(c, "attribute", path, true, &out->attribute);
  if (s.ok() && out->attribute.empty()) s = Error(Field(path, "attribute"), "must not be empty");
  if (s.ok()) s = ParseOperatorAt(c, path, &out->op);
  if (!s.ok()) return s;
  const std::string vpath = Field(path, "values");
  const json* values = Member(c, "values");
  if (values == nullptr) return Error(vpath, "required");
  s = ReadStringList(*values, vpath, &out->values);
  if (!s.ok()) return s;
  if (!TakesManyValues(out->op) && out->values.size() != 1) {
    return Error(vpath, "operator " + std::string(ToString(out->op)) +
                            " takes exactly 1 value, got " + std::to_string(out->values.size()));
  }
  for (size_t i = 0; i < out->values.size() && s.ok(); ++i) {
    s = CheckOperand(out->op, out->values[i], Index(vpath, i));
  }
  return s;
}

Status ParseRollout(const json& r, const std::string& path, Rollout* out) {
  Status s = CheckObject(r, path, {"percent", "stickiness", "group"});
  int64_t percent = 0;
  if (s.ok()) s = ReadInt(r, "percent", path, true, 0, 100, &percent);
  if (s.ok()) s = ReadString(r, "stickiness", path, false, &out->stickiness);
  if (s.ok() && out->stickiness.empty()) s = Error(Field(path, "stickiness"), "must not be empty");
  if (s.ok() && Member(r, "group") != nullptr) {
    out->group.emplace();
    s = ReadString(r, "group", path, true, &*out->group);
  }
  out->percent = static_cast<int>(percent);
  return s;
}

Status ParseConstraints(const json& j, const std::string& path, std::vector<Constraint>* out) {
  if (!j.is_array()) return TypeError(path, "array", j);
  if (j.empty()) return Error(path, "must not be empty");
  out->resize(j.size());
  for (size_t i = 0; i < j.size(); ++i) {
    Status s = ParseConstraint(j[i], Index(path, i), &(*out)[i]);
    if (!s.ok()) return s;
  }
  return Status::OK();
}

Status ParseStrategy(const json& j, const std::string& path, Strategy* out) {
  Status s = CheckObject(j, path, {"rollout", "users", "constraints"});
  if (!s.ok()) return s;
  const json* rollout = Member(j, "rollout");
  const json* users = Member(j, "users");
  const json* constraints = Member(j, "constraints");
  if (!rollout && !users && !constraints) {
    return Error(path, "must have rollout, users or constraints");
  }
  if (rollout) s = ParseRollout(*rollout, Field(path, "rollout"), &out->rollout.emplace());
  if (s.ok() && users) s = ReadStringList(*users, Field(path, "users"), &out->users.emplace());
  if (s.ok() && constraints) {
    s = ParseConstraints(*constraints, Field(path, "constraints"), &out->constraints);
  }
  return s;
}

Status ParseEnvironmentAt(const json& j, const std::string& path, EnvironmentConfig* out) {
  Status s = CheckObject(j, path, {"enabled", "strategies"});
  if (s.ok()) s = ReadBool(j, "enabled", path, &out->enabled);
  if (!s.ok()) return s;
  const json* strategies = Member(j, "strategies");
  if (strategies == nullptr) return Status::OK();
  const std::string spath = Field(path, "strategies");
  if (!strategies->is_array()) return TypeError(spath, "array", *strategies);
  out->strategies.resize(strategies->size());
  for (size_t i = 0; i < strategies->size(); ++i) {
    s = ParseStrategy((*strategies)[i], Index(spath, i), &out->strategies[i]);
    if (!s.ok()) return s;
  }
  return Status::OK();
}

// --- variants ---

// OFREP carries a flag's type in its value's JSON type: null and arrays have
// no OpenFeature type, and mixing types would make some evaluations a
// TYPE_MISMATCH in the provider.
std::string ValueType(const json& v) {
  if (v.is_boolean()) return "boolean";
  if (v.is_string()) return "string";
  if (v.is_number()) return "number";
  if (v.is_object()) return "object";
  return "";
}

Status ParseVariant(const json& j, const std::string& path, Variant* out) {
  Status s = CheckObject(j, path, {"name", "weight", "value"});
  if (s.ok()) s = ReadString(j, "name", path, true, &out->name);
  if (s.ok() && !ValidName(out->name)) s = Error(Field(path, "name"), std::string(kNameRule));
  int64_t weight = 0;
  if (s.ok()) s = ReadInt(j, "weight", path, true, 0, kTotalVariantWeight, &weight);
  if (!s.ok()) return s;
  out->weight = static_cast<int>(weight);
  const json* value = Member(j, "value");
  if (value == nullptr) return Error(Field(path, "value"), "required");
  if (ValueType(*value).empty()) {
    return Error(Field(path, "value"),
                 "expected boolean, string, number or object, found " + TypeName(*value));
  }
  out->value = *value;
  return Status::OK();
}

Status CheckVariantSet(const std::vector<Variant>& variants, const std::string& path) {
  std::set<std::string_view> names;
  int total = 0;
  for (size_t i = 0; i < variants.size(); ++i) {
    const std::string at = Index(path, i);
    if (!names.insert(variants[i].name).second) {
      return Error(Field(at, "name"), "duplicate variant " + Quote(variants[i].name));
    }
    std::string type = ValueType(variants[i].value), first = ValueType(variants[0].value);
    if (type != first) {
      return Error(Field(at, "value"), "expected " + first + " like " + Index(path, 0) +
                                           ".value, found " + type);
    }
    total += variants[i].weight;
  }
  if (!variants.empty() && total != kTotalVariantWeight) {
    return Error(path, "weights must sum to 1000, got " + std::to_string(total));
  }
  return Status::OK();
}

Status ParseVariantsAt(const json& j, const std::string& path, std::vector<Variant>* out) {
  if (!j.is_array()) return TypeError(path, "array", j);
  std::vector<Variant> variants(j.size());
  for (size_t i = 0; i < j.size(); ++i) {
    Status s = ParseVariant(j[i], Index(path, i), &variants[i]);
    if (!s.ok()) return s;
  }
  Status s = CheckVariantSet(variants, path);
  if (s.ok()) *out = std::move(variants);
  return s;
}

// --- toggle ---

Status ParseEnvironments(const json& j, Toggle* t) {
  if (!j.is_object()) return TypeError("environments", "object", j);
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!ValidName(it.key())) {
      return Error("environments", "name " + Quote(it.key()) + ": " + std::string(kNameRule));
    }
    Status s = ParseEnvironmentAt(*it, "environments." + it.key(), &t->environments[it.key()]);
    if (!s.ok()) return s;
  }
  return Status::OK();
}

Status ParseToggleAt(const json& j, Toggle* out) {
  Status s = CheckObject(j, "", {"key", "type", "description", "variants", "revision",
                                 "environments"});
  Toggle t;
  if (s.ok()) s = ReadString(j, "key", "", true, &t.key);
  if (s.ok()) s = ValidateKey(t.key);
  std::string type;
  if (s.ok() && Member(j, "type") != nullptr) {
    s = ReadString(j, "type", "", true, &type);
    if (s.ok()) s = ParseToggleType(type, &t.type);
  }
  if (s.ok()) s = ReadString(j, "description", "", false, &t.description);
  if (s.ok() && Member(j, "variants")) {
    s = ParseVariantsAt(*Member(j, "variants"), "variants", &t.variants);
  }
  if (s.ok()) {
    s = ReadInt(j, "revision", "", false, 0, std::numeric_limits<int64_t>::max(), &t.revision);
  }
  if (s.ok() && Member(j, "environments")) s = ParseEnvironments(*Member(j, "environments"), &t);
  if (s.ok()) *out = std::move(t);
  return s;
}

// nlohmann's messages start with "[json.exception.parse_error.101] ".
std::string StripExceptionTag(const std::string& what) {
  size_t pos = what.find("] ");
  return what.rfind("[json.exception.", 0) == 0 && pos != std::string::npos ? what.substr(pos + 2)
                                                                            : what;
}

// Readers check types before reading, so nlohmann should never throw; the API
// promises not to throw even if that reasoning has a hole.
template <typename F>
Status NoThrow(F&& f) {
  try {
    return f();
  } catch (const nlohmann::json::exception& e) {
    return Status::Invalid(StripExceptionTag(e.what()));
  } catch (const std::exception& e) {
    return Status::Internal(e.what());
  }
}

json RolloutToJson(const Rollout& r) {
  json j = {{"percent", r.percent}, {"stickiness", r.stickiness}};
  if (r.group) j["group"] = *r.group;
  return j;
}

json ConstraintToJson(const Constraint& c) {
  return {{"attribute", c.attribute}, {"operator", ToString(c.op)}, {"values", c.values}};
}

}  // namespace

bool TakesManyValues(Operator op) {
  switch (op) {
    case Operator::kIn: case Operator::kNotIn: case Operator::kContains:
    case Operator::kStartsWith: case Operator::kEndsWith:
      return true;
    default:
      return false;
  }
}

bool Variant::operator==(const Variant& o) const {
  return name == o.name && weight == o.weight && value == o.value;
}
bool Rollout::operator==(const Rollout& o) const {
  return percent == o.percent && stickiness == o.stickiness && group == o.group;
}
bool Constraint::operator==(const Constraint& o) const {
  return attribute == o.attribute && op == o.op && values == o.values;
}
bool Strategy::operator==(const Strategy& o) const {
  return rollout == o.rollout && users == o.users && constraints == o.constraints;
}
bool EnvironmentConfig::operator==(const EnvironmentConfig& o) const {
  return enabled == o.enabled && strategies == o.strategies;
}
bool Toggle::operator==(const Toggle& o) const {
  return key == o.key && type == o.type && description == o.description &&
         variants == o.variants && revision == o.revision && environments == o.environments;
}

Status ParseToggle(const nlohmann::json& j, Toggle* out) {
  return NoThrow([&] { return ParseToggleAt(j, out); });
}

Status ParseToggleText(std::string_view json_text, Toggle* out) {
  return NoThrow([&] {
    if (JsonDeeperThan(json_text, kMaxJsonDepth))
      return Status::Invalid("nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    json j;
    try {
      j = json::parse(json_text.begin(), json_text.end());
    } catch (const json::parse_error& e) {
      return Status::Invalid("invalid JSON: " + StripExceptionTag(e.what()));
    }
    return ParseToggleAt(j, out);
  });
}

Status ParseEnvironmentConfig(const nlohmann::json& j, EnvironmentConfig* out) {
  return NoThrow([&] {
    EnvironmentConfig c;
    Status s = ParseEnvironmentAt(j, "", &c);
    if (s.ok()) *out = std::move(c);
    return s;
  });
}

Status ParseVariants(const nlohmann::json& j, std::vector<Variant>* out) {
  return NoThrow([&] { return ParseVariantsAt(j, "variants", out); });
}

Status ParseToggleType(std::string_view text, ToggleType* out) {
  for (const auto& [type, name] : kTypeNames) {
    if (name == text) {
      *out = type;
      return Status::OK();
    }
  }
  return Error("type", "must be one of " + JoinNames(kTypeNames) + ", got " + Quote(text));
}

Status ValidateKey(std::string_view key) {
  if (key.empty()) return Error("key", "must not be empty");
  return ValidName(key) ? Status::OK() : Error("key", std::string(kNameRule));
}

Status Validate(const Toggle& t) {
  // One set of rules: a Toggle is valid when its JSON form parses back.
  return NoThrow([&] {
    Toggle parsed;
    return ParseToggleAt(ToJson(t), &parsed);
  });
}

nlohmann::json ToJson(const Toggle& t) {
  json envs = json::object();
  for (const auto& [name, config] : t.environments) envs[name] = ToJson(config);
  return {{"key", t.key},           {"type", ToString(t.type)},
          {"description", t.description}, {"variants", ToJson(t.variants)},
          {"revision", t.revision}, {"environments", std::move(envs)}};
}

nlohmann::json ToJson(const EnvironmentConfig& c) {
  json strategies = json::array();
  for (const Strategy& s : c.strategies) strategies.push_back(ToJson(s));
  return {{"enabled", c.enabled}, {"strategies", std::move(strategies)}};
}

nlohmann::json ToJson(const Strategy& s) {
  json j = json::object();
  if (s.rollout) j["rollout"] = RolloutToJson(*s.rollout);
  if (s.users) j["users"] = *s.users;
  if (!s.constraints.empty()) {
    json list = json::array();
    for (const Constraint& c : s.constraints) list.push_back(ConstraintToJson(c));
    j["constraints"] = std::move(list);
  }
  return j;
}

nlohmann::json ToJson(const std::vector<Variant>& variants) {
  json list = json::array();
  for (const Variant& v : variants) {
    list.push_back({{"name", v.name}, {"weight", v.weight}, {"value", v.value}});
  }
  return list;
}

std::string_view ToString(ToggleType type) {
  for (const auto& [t, name] : kTypeNames) {
    if (t == type) return name;
  }
  return "release";
}

std::string_view ToString(Operator op) {
  for (const auto& [o, name] : kOperatorNames) {
    if (o == op) return name;
  }
  return "in";
}

bool ParseOperator(std::string_view text, Operator* out) {
  for (const auto& [op, name] : kOperatorNames) {
    if (name == text) {
      *out = op;
      return true;
    }
  }
  return false;
}

bool ParseNumber(std::string_view text, double* out) {
  if (text.empty()) return false;
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

bool ParseRfc3339(std::string_view s, int64_t* unix_micros) {
  return ladle::ParseRfc3339Micros(s, unix_micros);
}

EnvironmentConfig ConfigIn(const Toggle& t, const std::string& environment) {
  auto it = t.environments.find(environment);
  return it == t.environments.end() ? EnvironmentConfig{} : it->second;
}

EnvironmentConfig WithRollout(EnvironmentConfig config, int percent) {
  config.enabled = true;
  if (config.strategies.size() == 1 && config.strategies[0].rollout) {
    config.strategies[0].rollout->percent = percent;
    return config;
  }
  Strategy s;
  s.rollout.emplace().percent = percent;
  config.strategies = {s};
  return config;
}

// --- toggle fields and sync entries (PATCH bodies, toggles files) ---

namespace {

// Messages of the model's parsers are relative to what they parsed.
Status Under(const std::string& path, const Status& s) {
  return s.ok() ? s : Status::Invalid(path + "." + s.message());
}

Status ExpectString(const json& j, const std::string& path) {
  if (j.is_string()) return Status::OK();
  return Status::Invalid(path + ": expected string, found " + j.type_name());
}

Status ParseField(const std::string& name, const json& value, ToggleFields* f) {
  if (name == "type") {
    Status s = ExpectString(value, name);
    return s.ok() ? ParseToggleType(value.get<std::string>(), &f->type.emplace()) : s;
  }
  if (name == "description") {
    Status s = ExpectString(value, name);
    if (s.ok()) f->description = value.get<std::string>();
    return s;
  }
  if (name == "variants") return ParseVariants(value, &f->variants.emplace());
  return Status::Invalid(name + ": unknown field (known: type, description, variants)");
}

}  // namespace

Status CheckToggleFields(const ToggleFields& f) {
  if (!f.variants) return Status::OK();
  std::vector<Variant> parsed;
  return ParseVariants(ToJson(*f.variants), &parsed);
}

Status ParseToggleFields(const nlohmann::json& body, ToggleFields* out) {
  if (!body.is_object()) {
    return Status::Invalid(std::string("expected object, found ") + body.type_name());
  }
  ToggleFields f;
  for (auto it = body.begin(); it != body.end(); ++it) {
    Status s = ParseField(it.key(), it.value(), &f);
    if (!s.ok()) return s;
  }
  *out = std::move(f);
  return Status::OK();
}

Status CheckSyncEntries(const std::vector<SyncEntry>& entries) {
  std::set<std::string> seen;
  for (size_t i = 0; i < entries.size(); ++i) {
    const std::string at = "toggles[" + std::to_string(i) + "]";
    Status s = Under(at, ValidateKey(entries[i].key));
    if (s.ok()) s = Under(at, CheckToggleFields(entries[i].fields));
    if (s.ok() && !seen.insert(entries[i].key).second) {
      s = Status::Invalid(at + ".key: duplicate key \"" + entries[i].key + "\"");
    }
    if (!s.ok()) return s;
  }
  return Status::OK();
}

}  // namespace ladle::toggles
