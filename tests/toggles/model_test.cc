#include "toggles/eval/model.h"

#include <string>

#include <gtest/gtest.h>

namespace ladle::toggles {
namespace {

using json = nlohmann::json;

// A toggle using every field, in the shape of docs/design.md "JSON shapes".
const char* kFullToggle = R"({
  "key": "new-checkout",
  "type": "experiment",
  "description": "One-page checkout",
  "variants": [
    {"name": "control", "weight": 500, "value": {"layout": "classic"}},
    {"name": "one-page", "weight": 500, "value": {"layout": "single"}}
  ],
  "revision": 42,
  "environments": {
    "production": {
      "enabled": true,
      "strategies": [
        {"rollout": {"percent": 25, "stickiness": "targetingKey"},
         "constraints": [{"attribute": "country", "operator": "in", "values": ["NL", "BE"]}]},
        {"users": ["alice", "bob"]},
        {"rollout": {"percent": 10, "stickiness": "sessionId", "group": "checkout"}},
        {"constraints": [
          {"attribute": "age", "operator": "gte", "values": ["18"]},
          {"attribute": "app", "operator": "semver_gt", "values": ["2.0.0-rc.1"]},
          {"attribute": "signup", "operator": "after", "values": ["2024-05-01T12:00:00Z"]}
        ]}
      ]
    },
    "staging": {"enabled": false, "strategies": []}
  }
})";

std::string ToggleError(const std::string& text) {
  Toggle t;
  return ParseToggleText(text, &t).ToString();
}

std::string EnvError(const std::string& text) {
  EnvironmentConfig c;
  return ParseEnvironmentConfig(json::parse(text), &c).ToString();
}

// A toggle whose production environment has this one strategy.
std::string WithStrategy(const std::string& strategy) {
  return R"({"key": "k", "environments": {"production": {"enabled": true, "strategies": [)" +
         strategy + "]}}}";
}

std::string WithVariants(const std::string& variants) {
  return R"({"key": "k", "variants": )" + variants + "}";
}

TEST(ModelTest, ParsesEveryField) {
  Toggle t;
  ASSERT_TRUE(ParseToggleText(kFullToggle, &t).ok());
  EXPECT_EQ("new-checkout", t.key);
  EXPECT_EQ(ToggleType::kExperiment, t.type);
  EXPECT_EQ("One-page checkout", t.description);
  ASSERT_EQ(2u, t.variants.size());
  EXPECT_EQ("single", t.variants[1].value["layout"]);
  EXPECT_EQ(42, t.revision);
  const EnvironmentConfig& prod = t.environments.at("production");
  EXPECT_TRUE(prod.enabled);
  ASSERT_EQ(4u, prod.strategies.size());
  EXPECT_EQ(25, prod.strategies[0].rollout->percent);
  EXPECT_FALSE(prod.strategies[0].rollout->group.has_value());
  EXPECT_EQ(Operator::kIn, prod.strategies[0].constraints[0].op);
  EXPECT_EQ((std::vector<std::string>{"alice", "bob"}), *prod.strategies[1].users);
  EXPECT_EQ("checkout", *prod.strategies[2].rollout->group);
  EXPECT_EQ(Operator::kAfter, prod.strategies[3].constraints[2].op);
  EXPECT_FALSE(t.environments.at("staging").enabled);
}

TEST(ModelTest, RoundTripsExactly) {
  Toggle t, again;
  ASSERT_TRUE(ParseToggleText(kFullToggle, &t).ok());
  EXPECT_EQ(json::parse(kFullToggle), ToJson(t));
  ASSERT_TRUE(ParseToggle(ToJson(t), &again).ok());
  EXPECT_EQ(t, again);
}

TEST(ModelTest, FillsDefaults) {
  Toggle t;
  ASSERT_TRUE(ParseToggleText((R"({"key": "k", "environments": {"production":
      {"strategies": [{"rollout": {"percent": 5}}]}}})"), &t).ok());
  EXPECT_EQ(json::parse(R"({"key": "k", "type": "release", "description": "", "variants": [],
      "revision": 0, "environments": {"production": {"enabled": false,
      "strategies": [{"rollout": {"percent": 5, "stickiness": "targetingKey"}}]}}})"),
            ToJson(t));
}

TEST(ModelTest, EnvironmentConfigOnItsOwn) {
  EnvironmentConfig c;
  ASSERT_TRUE(ParseEnvironmentConfig(json::parse(R"({"enabled": true, "strategies":
      [{"users": ["alice"]}]})"), &c).ok());
  EXPECT_TRUE(c.enabled);
  EXPECT_EQ(json::parse(R"({"enabled": true, "strategies": [{"users": ["alice"]}]})"), ToJson(c));
}

TEST(ModelErrorTest, RolloutPercentOutOfRange) {
  EXPECT_EQ("strategies[0].rollout.percent: must be between 0 and 100, got 120",
            EnvError(R"({"enabled": true, "strategies": [{"rollout": {"percent": 120}}]})"));
  EXPECT_EQ("environments.production.strategies[0].rollout.percent: must be between 0 and 100, "
            "got -1",
            ToggleError(WithStrategy(R"({"rollout": {"percent": -1}})")));
  EXPECT_EQ("environments.production.strategies[0].rollout.percent: must be between 0 and 100, "
            "got 18446744073709551615",
            ToggleError(WithStrategy(R"({"rollout": {"percent": 18446744073709551615}})")));
}

TEST(ModelErrorTest, Key) {
  EXPECT_EQ("key: only A-Z a-z 0-9 . _ - allowed, up to 128 characters",
            ToggleError(R"({"key": "new checkout"})"));
  EXPECT_EQ("key: only A-Z a-z 0-9 . _ - allowed, up to 128 characters",
            ToggleError(R"({"key": ")" + std::string(129, 'k') + R"("})"));
  EXPECT_EQ("ok", ToggleError(R"({"key": ")" + std::string(128, 'k') + R"("})"));
  EXPECT_EQ("key: must not be empty", ToggleError(R"({"key": ""})"));
  EXPECT_EQ("key: required", ToggleError(R"({"type": "ops"})"));
  EXPECT_EQ("key: expected string, found integer", ToggleError(R"({"key": 7})"));
  EXPECT_TRUE(ValidateKey("A-z_0.9").ok());
}

TEST(ModelErrorTest, Type) {
  EXPECT_EQ("type: must be one of release, experiment, ops, kill-switch, permission, "
            "dark-launch, got \"feature\"",
            ToggleError(R"({"key": "k", "type": "feature"})"));
  ToggleType unused;
  EXPECT_EQ("type: must be one of release, experiment, ops, kill-switch, permission, "
            "dark-launch, got \"\xef\xbf\xbd\"",
            ParseToggleType("\xff", &unused).ToString());  // invalid UTF-8: no throw
  for (const char* type : {"release", "experiment", "ops", "kill-switch", "permission",
                           "dark-launch"}) {
    ToggleType t;
    ASSERT_TRUE(ParseToggleType(type, &t).ok()) << type;
    EXPECT_EQ(type, ToString(t));
  }
}

TEST(ModelErrorTest, UnknownFields) {
  EXPECT_EQ("colour: unknown field (known: key, type, description, variants, revision, "
            "environments)",
            ToggleError(R"({"key": "k", "colour": "red"})"));
  EXPECT_EQ("environments.production.strategies[0].rollout.percnt: unknown field (known: "
            "percent, stickiness, group)",
            ToggleError(WithStrategy(R"({"rollout": {"percnt": 5}})")));
  EXPECT_EQ("strategies[0].segments: unknown field (known: rollout, users, constraints)",
            EnvError(R"({"strategies": [{"segments": []}]})"));
  EXPECT_EQ("strategies[0].constraints[0].inverted: unknown field (known: attribute, operator, "
            "values)",
            EnvError(R"({"strategies": [{"constraints": [{"attribute": "a", "operator": "in",
                "values": ["x"], "inverted": true}]}]})"));
  EXPECT_EQ("variants[0].payload: unknown field (known: name, weight, value)",
            ToggleError(WithVariants(R"([{"name": "a", "weight": 1000, "payload": "x"}])")));
  EXPECT_EQ("on: unknown field (known: enabled, strategies)", EnvError(R"({"on": true})"));
}

TEST(ModelErrorTest, WrongTypes) {
  EXPECT_EQ("expected object, found array", ToggleError("[1]"));
  EXPECT_EQ("revision: expected integer, found string",
            ToggleError(R"({"key": "k", "revision": "3"})"));
  EXPECT_EQ("revision: must be >= 0, got -1", ToggleError(R"({"key": "k", "revision": -1})"));
  EXPECT_EQ("description: expected string, found null",
            ToggleError(R"({"key": "k", "description": null})"));
  EXPECT_EQ("environments: expected object, found array",
            ToggleError(R"({"key": "k", "environments": []})"));
  EXPECT_EQ("environments.production.enabled: expected boolean, found string",
            ToggleError(R"({"key": "k", "environments": {"production": {"enabled": "yes"}}})"));
  EXPECT_EQ("strategies: expected array, found object", EnvError(R"({"strategies": {}})"));
  EXPECT_EQ("strategies[0]: expected object, found string", EnvError(R"({"strategies": ["x"]})"));
  EXPECT_EQ("strategies[0].rollout.percent: expected integer, found number",
            EnvError(R"({"strategies": [{"rollout": {"percent": 25.5}}]})"));
  EXPECT_EQ("strategies[0].rollout.group: expected string, found integer",
            EnvError(R"({"strategies": [{"rollout": {"percent": 5, "group": 3}}]})"));
  EXPECT_EQ("strategies[0].users[1]: expected string, found integer",
            EnvError(R"({"strategies": [{"users": ["alice", 7]}]})"));
  EXPECT_EQ("strategies[0].constraints: expected array, found object",
            EnvError(R"({"strategies": [{"constraints": {}}]})"));
  EXPECT_EQ("variants: expected array, found object", ToggleError(WithVariants("{}")));
}

TEST(ModelErrorTest, InvalidJsonText) {
  EXPECT_EQ("invalid JSON: parse error at line 1, column 2: syntax error while parsing object "
            "key - unexpected end of input; expected string literal",
            ToggleError("{"));
}

TEST(ModelErrorTest, Strategies) {
  EXPECT_EQ("strategies[0]: must have rollout, users or constraints",
            EnvError(R"({"strategies": [{}]})"));
  EXPECT_EQ("strategies[1].users: must not be empty",
            EnvError(R"({"strategies": [{"users": ["a"]}, {"users": []}]})"));
  EXPECT_EQ("strategies[0].constraints: must not be empty",
            EnvError(R"({"strategies": [{"constraints": []}]})"));
  EXPECT_EQ("strategies[0].rollout.percent: required",
            EnvError(R"({"strategies": [{"rollout": {}}]})"));
  EXPECT_EQ("strategies[0].rollout.stickiness: must not be empty",
            EnvError(R"({"strategies": [{"rollout": {"percent": 5, "stickiness": ""}}]})"));
}

std::string ConstraintError(const std::string& constraint) {
  return EnvError(R"({"strategies": [{"constraints": [)" + constraint + "]}]}");
}

TEST(ModelErrorTest, Constraints) {
  EXPECT_EQ("strategies[0].constraints[0].operator: unknown operator \"like\" (known: in, "
            "not_in, contains, starts_with, ends_with, eq, neq, lt, lte, gt, gte, semver_eq, "
            "semver_lt, semver_gt, before, after)",
            ConstraintError(R"({"attribute": "a", "operator": "like", "values": ["x"]})"));
  EXPECT_EQ("strategies[0].constraints[0].attribute: required",
            ConstraintError(R"({"operator": "in", "values": ["x"]})"));
  EXPECT_EQ("strategies[0].constraints[0].attribute: must not be empty",
            ConstraintError(R"({"attribute": "", "operator": "in", "values": ["x"]})"));
  EXPECT_EQ("strategies[0].constraints[0].operator: required",
            ConstraintError(R"({"attribute": "a", "values": ["x"]})"));
  EXPECT_EQ("strategies[0].constraints[0].values: required",
            ConstraintError(R"({"attribute": "a", "operator": "in"})"));
  EXPECT_EQ("strategies[0].constraints[0].values: must not be empty",
            ConstraintError(R"({"attribute": "a", "operator": "in", "values": []})"));
  EXPECT_EQ("strategies[0].constraints[0].values[0]: expected string, found integer",
            ConstraintError(R"({"attribute": "age", "operator": "gt", "values": [18]})"));
  EXPECT_EQ("strategies[0].constraints[0].values: operator lt takes exactly 1 value, got 2",
            ConstraintError(R"({"attribute": "a", "operator": "lt", "values": ["1", "2"]})"));
  EXPECT_EQ("strategies[0].constraints[0].values: operator eq takes exactly 1 value, got 2",
            ConstraintError(R"({"attribute": "a", "operator": "eq", "values": ["1", "2"]})"));
  EXPECT_EQ("strategies[0].constraints[0].values[0]: not a number: \"ten\"",
            ConstraintError(R"({"attribute": "a", "operator": "gte", "values": ["ten"]})"));
  EXPECT_EQ("strategies[0].constraints[0].values[0]: not a semantic version "
            "(MAJOR.MINOR.PATCH[-PRE][+BUILD]): \"v1.2.3\"",
            ConstraintError(R"({"attribute": "a", "operator": "semver_eq",
                                "values": ["v1.2.3"]})"));
  EXPECT_EQ("strategies[0].constraints[0].values[0]: not an RFC 3339 date-time "
            "(2024-05-01T12:00:00Z): \"2024-05-01\"",
            ConstraintError(R"({"attribute": "a", "operator": "before",
                                "values": ["2024-05-01"]})"));
}

TEST(ModelErrorTest, Variants) {
  EXPECT_EQ("variants: weights must sum to 1000, got 900",
            ToggleError(WithVariants(R"([{"name": "a", "weight": 400, "value": "x"},
                                         {"name": "b", "weight": 500, "value": "y"}])")));
  EXPECT_EQ("variants[0].weight: must be between 0 and 1000, got 1001",
            ToggleError(WithVariants(R"([{"name": "a", "weight": 1001, "value": "x"}])")));
  EXPECT_EQ("variants[0].weight: required",
            ToggleError(WithVariants(R"([{"name": "a", "value": "x"}])")));
  EXPECT_EQ("variants[0].value: required",
            ToggleError(WithVariants(R"([{"name": "a", "weight": 1000}])")));
  EXPECT_EQ("variants[0].value: expected boolean, string, number or object, found array",
            ToggleError(WithVariants(R"([{"name": "a", "weight": 1000, "value": [1]}])")));
  EXPECT_EQ("variants[0].value: expected boolean, string, number or object, found null",
            ToggleError(WithVariants(R"([{"name": "a", "weight": 1000, "value": null}])")));
  EXPECT_EQ("variants[1].name: duplicate variant \"a\"",
            ToggleError(WithVariants(R"([{"name": "a", "weight": 500, "value": "x"},
                                         {"name": "a", "weight": 500, "value": "y"}])")));
  EXPECT_EQ("variants[1].value: expected string like variants[0].value, found boolean",
            ToggleError(WithVariants(R"([{"name": "a", "weight": 500, "value": "x"},
                                         {"name": "b", "weight": 500, "value": true}])")));
  EXPECT_EQ("variants[0].name: only A-Z a-z 0-9 . _ - allowed, up to 128 characters",
            ToggleError(WithVariants(R"([{"name": "a b", "weight": 1000, "value": 1}])")));
  // Integers and fractions are both OpenFeature numbers.
  EXPECT_EQ("ok", ToggleError(WithVariants(R"([{"name": "a", "weight": 500, "value": 1},
                                               {"name": "b", "weight": 500, "value": 1.5}])")));
  std::vector<Variant> variants;
  EXPECT_EQ("variants: weights must sum to 1000, got 1",
            ParseVariants(json::parse(R"([{"name": "a", "weight": 1, "value": 1}])"), &variants)
                .ToString());
}

TEST(ModelErrorTest, EnvironmentNames) {
  EXPECT_EQ("environments: name \"pro d\": only A-Z a-z 0-9 . _ - allowed, up to 128 characters",
            ToggleError(R"({"key": "k", "environments": {"pro d": {}}})"));
}

TEST(ModelErrorTest, ValidateUsesTheSameRules) {
  Toggle t;
  t.key = "k";
  Rollout rollout;
  rollout.percent = 120;
  t.environments["production"].strategies.push_back(Strategy{rollout, std::nullopt, {}});
  EXPECT_EQ("environments.production.strategies[0].rollout.percent: must be between 0 and 100, "
            "got 120",
            Validate(t).ToString());
  t.environments["production"].strategies[0].rollout->percent = 50;
  EXPECT_TRUE(Validate(t).ok());
  t.variants = {Variant{"a", 900, "x"}};
  EXPECT_EQ("variants: weights must sum to 1000, got 900", Validate(t).ToString());
}

// The API reports, never throws: every truncation and many single-byte
// mutations of a valid toggle.
TEST(ModelErrorTest, NeverThrowsOnDamagedInput) {
  const std::string full = kFullToggle;
  for (size_t n = 0; n < full.size(); ++n) {
    Toggle t;
    Status s;
    EXPECT_NO_THROW(s = ParseToggleText(full.substr(0, n), &t));
    EXPECT_FALSE(s.ok()) << n;
  }
  for (size_t i = 0; i < full.size(); ++i) {
    for (char c : {'"', '1', '-', '{', ']', 'x', '\xff', '\0'}) {
      std::string damaged = full;
      damaged[i] = c;
      Toggle t;
      EXPECT_NO_THROW(ParseToggleText(damaged, &t));
    }
  }
}

TEST(ModelErrorTest, InvalidToggleLeavesOutputAlone) {
  Toggle t;
  t.key = "before";
  EXPECT_FALSE(ParseToggleText(R"({"key": "after", "revision": "x"})", &t).ok());
  EXPECT_EQ("before", t.key);
}

TEST(NumberTest, ParsesDecimalNumbersOnly) {
  double d = 0;
  EXPECT_TRUE(ParseNumber("18", &d));
  EXPECT_EQ(18, d);
  EXPECT_TRUE(ParseNumber("-2.5e3", &d));
  EXPECT_EQ(-2500, d);
  for (const char* s : {"", "ten", "18 ", " 18", "0x10", "inf", "nan", "1e999", "1,5"}) {
    EXPECT_FALSE(ParseNumber(s, &d)) << s;
  }
}

TEST(Rfc3339Test, ConvertsToUnixMicros) {
  int64_t t = 0;
  ASSERT_TRUE(ParseRfc3339("1970-01-01T00:00:00Z", &t));
  EXPECT_EQ(0, t);
  ASSERT_TRUE(ParseRfc3339("2024-05-01T12:00:00Z", &t));
  EXPECT_EQ(1714564800LL * 1000000, t);
  ASSERT_TRUE(ParseRfc3339("2024-05-01T14:30:00+02:30", &t));
  EXPECT_EQ(1714564800LL * 1000000, t);
  ASSERT_TRUE(ParseRfc3339("2024-05-01t12:00:00.5z", &t));
  EXPECT_EQ(1714564800LL * 1000000 + 500000, t);
  ASSERT_TRUE(ParseRfc3339("2024-05-01T12:00:00.1234567Z", &t));
  EXPECT_EQ(1714564800LL * 1000000 + 123456, t);
  ASSERT_TRUE(ParseRfc3339("1969-12-31T23:59:59Z", &t));
  EXPECT_EQ(-1000000, t);
  ASSERT_TRUE(ParseRfc3339("2000-02-29T00:00:00Z", &t));
  EXPECT_EQ(951782400LL * 1000000, t);
}

TEST(Rfc3339Test, RejectsOtherForms) {
  int64_t t;
  for (const char* s : {"", "2024-05-01", "2024-05-01T12:00:00", "2024-05-01T12:00Z",
                        "2024-13-01T00:00:00Z", "2023-02-29T00:00:00Z", "2024-04-31T00:00:00Z",
                        "2024-05-01T24:00:00Z", "2024-05-01T12:60:00Z", "2024-05-01T12:00:00.Z",
                        "2024-05-01T12:00:00+0200", "2024-05-01T12:00:00Z ", "1714564800",
                        "2024/05/01T12:00:00Z"}) {
    EXPECT_FALSE(ParseRfc3339(s, &t)) << s;
  }
}

}  // namespace
}  // namespace ladle::toggles
