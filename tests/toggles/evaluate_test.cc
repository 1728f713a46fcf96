#include "toggles/eval/evaluate.h"

#include <map>
#include <string>

#include <gtest/gtest.h>

#include "toggles/eval/bucketing.h"

namespace ladle::toggles {
namespace {

using json = nlohmann::json;

CompiledToggle Compile(const json& toggle) {
  Toggle t;
  Status s = ParseToggle(toggle, &t);
  EXPECT_TRUE(s.ok()) << s.ToString();
  CompiledToggle c;
  s = CompiledToggle::Compile(std::move(t), &c);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return c;
}

// A toggle KEY enabled in production with these strategies (JSON text).
CompiledToggle Enabled(const std::string& key, const std::string& strategies,
                      const std::string& variants = "[]") {
  return Compile(json::parse(R"({"key": ")" + key + R"(", "variants": )" + variants +
                             R"(, "environments": {"production": {"enabled": true,
                                 "strategies": )" + strategies + "}}}"));
}

EvaluationContext Context(const json& context) {
  EvaluationContext ctx;
  Status s = ContextFromJson(context, &ctx);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return ctx;
}

EvaluationContext Key(const std::string& targeting_key) {
  EvaluationContext ctx;
  ctx.SetTargetingKey(targeting_key);
  return ctx;
}

// "VALUE VARIANT REASON[ ERROR]", e.g. "true on STATIC".
std::string Describe(const Evaluation& e) {
  std::string out = e.value->dump() + " " + std::string(e.variant) + " " +
                    std::string(ToString(e.reason));
  if (e.error) out += " " + std::string(ToString(*e.error));
  EXPECT_EQ(e.on, e.reason != Reason::kDisabled && e.reason != Reason::kDefault &&
                      e.reason != Reason::kError);
  return out;
}

std::string Eval(const CompiledToggle& t, const EvaluationContext& ctx,
                 const std::string& env = "production") {
  return Describe(t.Evaluate(env, ctx));
}

std::string Eval(const CompiledToggle& t, const json& context) { return Eval(t, Context(context)); }

// --- reasons ---

TEST(EvaluateTest, DisabledIsOffWithReasonDisabled) {
  CompiledToggle t = Compile(json::parse(R"({"key": "k", "environments": {
      "production": {"enabled": false, "strategies": []}, "staging": {"enabled": true}}})"));
  EXPECT_EQ("false off DISABLED", Eval(t, Key("u1")));
  EXPECT_EQ("true on STATIC", Eval(t, Key("u1"), "staging"));
  EXPECT_EQ("false off DISABLED", Eval(t, Key("u1"), "qa"));  // not listed
}

TEST(EvaluateTest, EnabledWithoutStrategiesIsStaticOnForEveryone) {
  CompiledToggle t = Enabled("k", "[]");
  EXPECT_EQ("true on STATIC", Eval(t, Key("u1")));
  EXPECT_EQ("true on STATIC", Eval(t, EvaluationContext{}));  // no targeting key needed
}

TEST(EvaluateTest, UsersMatchIsTargetingMatch) {
  CompiledToggle t = Enabled("k", R"([{"users": ["bob", "alice"]}])");
  EXPECT_EQ("true on TARGETING_MATCH", Eval(t, Key("alice")));
  EXPECT_EQ("true on TARGETING_MATCH", Eval(t, Key("bob")));
  EXPECT_EQ("false off DEFAULT", Eval(t, Key("carol")));
  // Users need no error: without a key the user is simply not listed.
  EXPECT_EQ("false off DEFAULT", Eval(t, EvaluationContext{}));
}

TEST(EvaluateTest, ConstraintMatchIsTargetingMatch) {
  CompiledToggle t = Enabled("k", R"([{"constraints": [
      {"attribute": "country", "operator": "in", "values": ["NL"]}]}])");
  EXPECT_EQ("true on TARGETING_MATCH", Eval(t, json{{"country", "NL"}}));
  EXPECT_EQ("false off DEFAULT", Eval(t, json{{"country", "DE"}}));
  EXPECT_EQ("false off DEFAULT", Eval(t, json::object()));
}

TEST(EvaluateTest, RolloutFollowsUnleashBuckets) {
  CompiledToggle t = Enabled("Feature.flexibleRollout.10", R"([{"rollout": {"percent": 10}}])");
  EXPECT_EQ("true on SPLIT", Eval(t, Key("174")));   // bucket 10
  EXPECT_EQ("false off DEFAULT", Eval(t, Key("499")));  // bucket 32
  CompiledToggle half = Enabled("half", R"([{"rollout": {"percent": 50}}])");
  for (int i = 0; i < 500; ++i) {
    std::string id = "user-" + std::to_string(i);
    bool on = NormalizedBucket("half", id) <= 50;
    EXPECT_EQ(on ? "true on SPLIT" : "false off DEFAULT", Eval(half, Key(id))) << id;
  }
}

TEST(EvaluateTest, RolloutWithoutTargetingKeyIsAnError) {
  CompiledToggle t = Enabled("k", R"([{"rollout": {"percent": 50}}])");
  EXPECT_EQ("false off ERROR TARGETING_KEY_MISSING", Eval(t, EvaluationContext{}));
  EXPECT_EQ("false off ERROR TARGETING_KEY_MISSING", Eval(t, json{{"targetingKey", ""}}));
}

// The error only when the answer depends on the key.
TEST(EvaluateTest, MissingKeyIsNoErrorWhenAnotherStrategyDecides) {
  CompiledToggle t = Enabled("k", R"([{"rollout": {"percent": 50}},
      {"constraints": [{"attribute": "plan", "operator": "eq", "values": ["pro"]}]}])");
  EXPECT_EQ("true on TARGETING_MATCH", Eval(t, json{{"plan", "pro"}}));
  EXPECT_EQ("false off ERROR TARGETING_KEY_MISSING", Eval(t, json{{"plan", "free"}}));
  CompiledToggle nl = Enabled("k", R"([{"rollout": {"percent": 50}, "constraints": [
      {"attribute": "country", "operator": "in", "values": ["NL"]}]}])");
  EXPECT_EQ("false off DEFAULT", Eval(nl, json{{"country", "DE"}}));
  EXPECT_EQ("false off ERROR TARGETING_KEY_MISSING", Eval(nl, json{{"country", "NL"}}));
}

TEST(EvaluateTest, ZeroAndHundredPercentNeedNoKey) {
  EXPECT_EQ("false off DEFAULT", Eval(Enabled("k", R"([{"rollout": {"percent": 0}}])"),
                                      EvaluationContext{}));
  EXPECT_EQ("true on SPLIT", Eval(Enabled("k", R"([{"rollout": {"percent": 100}}])"),
                                  EvaluationContext{}));
  CompiledToggle zero = Enabled("k", R"([{"rollout": {"percent": 0}}])");
  CompiledToggle all = Enabled("k", R"([{"rollout": {"percent": 100}}])");
  for (int i = 0; i < 200; ++i) {
    EXPECT_EQ("false off DEFAULT", Eval(zero, Key(std::to_string(i))));
    EXPECT_EQ("true on SPLIT", Eval(all, Key(std::to_string(i))));
  }
}

// --- AND inside a strategy, OR across strategies ---

TEST(EvaluateTest, QuarterOfUsersInNlIsOneStrategy) {
  CompiledToggle t = Enabled("nl-quarter", R"([{"rollout": {"percent": 25}, "constraints": [
      {"attribute": "country", "operator": "in", "values": ["NL"]}]}])");
  int on_nl = 0;
  for (int i = 0; i < 10000; ++i) {
    std::string id = "user-" + std::to_string(i);
    EvaluationContext nl = Context(json{{"targetingKey", id}, {"country", "NL"}});
    EvaluationContext de = Context(json{{"targetingKey", id}, {"country", "DE"}});
    Evaluation e = t.Evaluate("production", nl);
    EXPECT_EQ(NormalizedBucket("nl-quarter", id) <= 25, e.on);
    if (e.on) {
      EXPECT_EQ(Reason::kSplit, e.reason);  // a rollout decided
    }
    on_nl += e.on;
    EXPECT_FALSE(t.Evaluate("production", de).on);
  }
  EXPECT_NEAR(2500, on_nl, 200);
}

TEST(EvaluateTest, AllConstraintsOfAStrategyMustHold) {
  CompiledToggle t = Enabled("k", R"([{"constraints": [
      {"attribute": "country", "operator": "in", "values": ["NL"]},
      {"attribute": "age", "operator": "gte", "values": ["18"]}]}])");
  EXPECT_EQ("true on TARGETING_MATCH", Eval(t, json{{"country", "NL"}, {"age", 18}}));
  EXPECT_EQ("false off DEFAULT", Eval(t, json{{"country", "NL"}, {"age", 17}}));
  EXPECT_EQ("false off DEFAULT", Eval(t, json{{"country", "BE"}, {"age", 30}}));
  EXPECT_EQ("false off DEFAULT", Eval(t, json{{"country", "NL"}}));
}

TEST(EvaluateTest, UsersAndRolloutInOneStrategyMustBothHold) {
  CompiledToggle t = Enabled("k", R"([{"users": ["u1", "u2", "u3", "u4", "u5", "u6"],
                                      "rollout": {"percent": 50}}])");
  for (const char* id : {"u1", "u2", "u3", "u4", "u5", "u6"}) {
    EXPECT_EQ(NormalizedBucket("k", id) <= 50, t.Evaluate("production", Key(id)).on) << id;
  }
  EXPECT_FALSE(t.Evaluate("production", Key("174")).on);
}

TEST(EvaluateTest, AnyStrategyMatchingTurnsItOn) {
  CompiledToggle t = Enabled("k", R"([
      {"users": ["alice"]},
      {"constraints": [{"attribute": "email", "operator": "ends_with", "values": ["@ladle.dev"]}]},
      {"rollout": {"percent": 0}}])");
  EXPECT_EQ("true on TARGETING_MATCH", Eval(t, Key("alice")));
  EXPECT_EQ("true on TARGETING_MATCH",
            Eval(t, json{{"targetingKey", "bob"}, {"email", "bob@ladle.dev"}}));
  EXPECT_EQ("false off DEFAULT", Eval(t, json{{"targetingKey", "bob"}, {"email", "bob@x.org"}}));
}

TEST(EvaluateTest, FirstMatchingStrategyGivesTheReason) {
  CompiledToggle t = Enabled("k", R"([{"users": ["alice"]}, {"rollout": {"percent": 100}}])");
  EXPECT_EQ("true on TARGETING_MATCH", Eval(t, Key("alice")));
  EXPECT_EQ("true on SPLIT", Eval(t, Key("bob")));
}

// --- stickiness and groups ---

TEST(EvaluateTest, StickinessReadsTheNamedAttribute) {
  CompiledToggle t = Enabled("Feature.flexibleRollout.sessionId.42",
                            R"([{"rollout": {"percent": 42, "stickiness": "sessionId"}}])");
  EXPECT_EQ("true on SPLIT", Eval(t, json{{"sessionId", "147"}}));  // bucket 42, no key needed
  for (int i = 0; i < 300; ++i) {
    std::string session = std::to_string(i);
    EXPECT_EQ(NormalizedBucket("Feature.flexibleRollout.sessionId.42", session) <= 42,
              t.Evaluate("production", Context(json{{"targetingKey", "same-user"},
                                                    {"sessionId", session}})).on);
  }
  // A missing stickiness attribute: the strategy does not match, no error.
  EXPECT_EQ("false off DEFAULT", Eval(t, json{{"targetingKey", "u1"}}));
  // Numbers bucket by their string form, as Unleash's stringified context does.
  EXPECT_EQ("true on SPLIT", Eval(t, json{{"sessionId", 147}}));
}

TEST(EvaluateTest, GroupDecouplesBucketsFromTheKey) {
  CompiledToggle a = Enabled("a", R"([{"rollout": {"percent": 30, "group": "shared"}}])");
  CompiledToggle b = Enabled("b", R"([{"rollout": {"percent": 30, "group": "shared"}}])");
  CompiledToggle own = Enabled("a", R"([{"rollout": {"percent": 30}}])");
  int differ = 0;
  for (int i = 0; i < 500; ++i) {
    EvaluationContext ctx = Key("user-" + std::to_string(i));
    bool on_a = a.Evaluate("production", ctx).on;
    EXPECT_EQ(on_a, b.Evaluate("production", ctx).on);
    EXPECT_EQ(NormalizedBucket("shared", ctx.targeting_key) <= 30, on_a);
    differ += on_a != own.Evaluate("production", ctx).on;
  }
  EXPECT_GT(differ, 0);
}

TEST(EvaluateTest, IsDeterministic) {
  CompiledToggle t1 = Enabled("det", R"([{"rollout": {"percent": 37}}])");
  CompiledToggle t2 = Enabled("det", R"([{"rollout": {"percent": 37}}])");
  for (int i = 0; i < 1000; ++i) {
    EvaluationContext ctx = Key("user-" + std::to_string(i));
    std::string first = Eval(t1, ctx);
    EXPECT_EQ(first, Eval(t1, ctx));
    EXPECT_EQ(first, Eval(t2, ctx));
  }
}

// A user on at N% stays on at every higher percentage.
TEST(EvaluateTest, RaisingThePercentageKeepsUsersOn) {
  CompiledToggle low = Enabled("grow", R"([{"rollout": {"percent": 10}}])");
  CompiledToggle high = Enabled("grow", R"([{"rollout": {"percent": 50}}])");
  for (int i = 0; i < 1000; ++i) {
    EvaluationContext ctx = Key("user-" + std::to_string(i));
    if (low.Evaluate("production", ctx).on) {
      EXPECT_TRUE(high.Evaluate("production", ctx).on);
    }
  }
}

// --- variants ---

const char* kThreeVariants = R"([
    {"name": "red", "weight": 200, "value": "#f00"},
    {"name": "green", "weight": 300, "value": "#0f0"},
    {"name": "blue", "weight": 500, "value": "#00f"}])";

TEST(EvaluateTest, VariantsSplitByWeight) {
  CompiledToggle t = Enabled("colours", "[]", kThreeVariants);
  std::map<std::string, int> counts;
  for (int i = 0; i < 10000; ++i) {
    Evaluation e = t.Evaluate("production", Key("id-" + std::to_string(i)));
    ASSERT_TRUE(e.on);
    EXPECT_EQ(Reason::kSplit, e.reason);
    counts[std::string(e.variant)]++;
  }
  EXPECT_NEAR(2000, counts["red"], 200);  // ±2% of 10k
  EXPECT_NEAR(3000, counts["green"], 200);
  EXPECT_NEAR(5000, counts["blue"], 200);
}

TEST(EvaluateTest, VariantIsTheFirstWhoseRunningWeightExceedsTheBucket) {
  CompiledToggle t = Enabled("colours", "[]", kThreeVariants);
  for (int i = 0; i < 1000; ++i) {
    std::string id = "id-" + std::to_string(i);
    int bucket = VariantBucket("colours", id);
    std::string expected = bucket < 200 ? "red" : bucket < 500 ? "green" : "blue";
    EXPECT_EQ(expected, t.Evaluate("production", Key(id)).variant) << id;
  }
  // "my-feature:user-123" has bucket 217: a running total of 217 does not exceed it.
  const char* edge = R"([{"name": "a", "weight": 217, "value": 1},
      {"name": "b", "weight": 1, "value": 2}, {"name": "c", "weight": 782, "value": 3}])";
  EXPECT_EQ("2 b SPLIT", Eval(Enabled("my-feature", "[]", edge), Key("user-123")));
  const char* edge2 = R"([{"name": "a", "weight": 218, "value": 1},
      {"name": "b", "weight": 782, "value": 2}])";
  EXPECT_EQ("1 a SPLIT", Eval(Enabled("my-feature", "[]", edge2), Key("user-123")));
}

TEST(EvaluateTest, ZeroWeightVariantIsNeverPicked) {
  CompiledToggle t = Enabled("k", "[]", R"([{"name": "never", "weight": 0, "value": false},
      {"name": "always", "weight": 1000, "value": true}])");
  for (int i = 0; i < 500; ++i) {
    EXPECT_EQ("true always SPLIT", Eval(t, Key(std::to_string(i))));
  }
}

TEST(EvaluateTest, VariantValueComesFromTheSnapshot) {
  CompiledToggle t = Enabled("k", R"([{"users": ["alice"]}])",
                            R"([{"name": "only", "weight": 1000, "value": {"layout": "new"}}])");
  Evaluation e = t.Evaluate("production", Key("alice"));
  EXPECT_EQ("{\"layout\":\"new\"} only SPLIT", Describe(e));  // a variant pick: SPLIT
  EXPECT_EQ(&t.toggle().variants[0].value, e.value);
}

TEST(EvaluateTest, VariantPickWithoutKeyIsAnError) {
  CompiledToggle t = Enabled("k", "[]", kThreeVariants);
  EXPECT_EQ("false off ERROR TARGETING_KEY_MISSING", Eval(t, EvaluationContext{}));
}

// Off or unmatched, a toggle with variants answers its default variant (the
// first), so the value keeps the variants' type (docs/design.md "OFREP").
TEST(EvaluateTest, VariantToggleOffAnswersItsDefaultVariant) {
  CompiledToggle t = Enabled("k", R"([{"users": ["alice"]}])", kThreeVariants);
  EXPECT_EQ("\"#f00\" red DEFAULT", Eval(t, Key("bob")));
  EXPECT_EQ("\"#f00\" red DISABLED", Eval(t, Key("bob"), "staging"));
  EXPECT_FALSE(t.Evaluate("staging", Key("bob")).on);
  EXPECT_EQ(&t.toggle().variants[0].value, t.Evaluate("production", Key("bob")).value);
}

// --- operators ---

// Whether one constraint on attribute "a" holds for the context {"a": value}
// (value absent when null).
bool Holds(const std::string& op, const json& values, const json& value) {
  json constraint = {{"attribute", "a"}, {"operator", op}, {"values", values}};
  json strategies = json::array({{{"constraints", json::array({constraint})}}});
  CompiledToggle t = Enabled("k", strategies.dump());
  json context = {{"targetingKey", "u1"}};
  if (!value.is_null()) context["a"] = value;
  return t.Evaluate("production", Context(context)).on;
}

TEST(OperatorTest, In) {
  EXPECT_TRUE(Holds("in", {"NL", "BE"}, "NL"));
  EXPECT_TRUE(Holds("in", {"c", "b", "a"}, "a"));  // sorted internally
  EXPECT_FALSE(Holds("in", {"NL", "BE"}, "nl"));  // case-sensitive
  EXPECT_FALSE(Holds("in", {"NL"}, nullptr));
  EXPECT_TRUE(Holds("in", {"42"}, 42));  // string form of a number
  EXPECT_TRUE(Holds("in", {"true"}, true));
}

TEST(OperatorTest, NotIn) {
  EXPECT_TRUE(Holds("not_in", {"NL"}, "DE"));
  EXPECT_FALSE(Holds("not_in", {"NL", "BE"}, "BE"));
  EXPECT_FALSE(Holds("not_in", {"NL"}, nullptr));  // missing never matches
}

TEST(OperatorTest, StringMatches) {
  EXPECT_TRUE(Holds("contains", {"@example."}, "bob@example.com"));
  EXPECT_FALSE(Holds("contains", {"@example."}, "bob@other.com"));
  EXPECT_TRUE(Holds("starts_with", {"alpha-", "beta-"}, "beta-7"));
  EXPECT_FALSE(Holds("starts_with", {"beta-"}, "beta"));
  EXPECT_TRUE(Holds("ends_with", {".nl", ".be"}, "shop.nl"));
  EXPECT_FALSE(Holds("ends_with", {"longer.nl"}, ".nl"));
  EXPECT_FALSE(Holds("contains", {"x"}, nullptr));
  EXPECT_TRUE(Holds("starts_with", {"12"}, 123));
}

TEST(OperatorTest, EqualAndNotEqual) {
  EXPECT_TRUE(Holds("eq", {"pro"}, "pro"));
  EXPECT_FALSE(Holds("eq", {"pro"}, "Pro"));
  EXPECT_TRUE(Holds("eq", {"42"}, 42));
  EXPECT_FALSE(Holds("eq", {"42"}, 42.5));
  EXPECT_TRUE(Holds("eq", {"false"}, false));
  EXPECT_TRUE(Holds("neq", {"pro"}, "free"));
  EXPECT_FALSE(Holds("neq", {"pro"}, "pro"));
  EXPECT_FALSE(Holds("neq", {"pro"}, nullptr));  // missing never matches
}

TEST(OperatorTest, Numbers) {
  EXPECT_TRUE(Holds("lt", {"10"}, 9));
  EXPECT_FALSE(Holds("lt", {"10"}, 10));
  EXPECT_TRUE(Holds("lte", {"10"}, 10));
  EXPECT_FALSE(Holds("lte", {"10"}, 10.5));
  EXPECT_TRUE(Holds("gt", {"10"}, 10.5));
  EXPECT_FALSE(Holds("gt", {"10"}, 10));
  EXPECT_TRUE(Holds("gte", {"-1.5"}, -1.5));
  EXPECT_FALSE(Holds("gte", {"10"}, 9.99));
  EXPECT_TRUE(Holds("lt", {"10"}, "9"));        // numeric strings are numbers
  EXPECT_FALSE(Holds("lt", {"10"}, "nine"));    // non-numeric: no match
  EXPECT_FALSE(Holds("gt", {"10"}, "11 "));
  EXPECT_FALSE(Holds("lt", {"10"}, true));
  EXPECT_FALSE(Holds("gt", {"0"}, nullptr));
}

TEST(OperatorTest, Semver) {
  EXPECT_TRUE(Holds("semver_eq", {"1.2.3"}, "1.2.3"));
  EXPECT_TRUE(Holds("semver_eq", {"1.2.3"}, "1.2.3+build.7"));
  EXPECT_FALSE(Holds("semver_eq", {"1.2.3"}, "1.2.4"));
  EXPECT_FALSE(Holds("semver_eq", {"1.2.3"}, "v1.2.3"));
  EXPECT_TRUE(Holds("semver_lt", {"2.0.0"}, "2.0.0-rc.1"));
  EXPECT_TRUE(Holds("semver_lt", {"2.0.0"}, "1.10.0"));
  EXPECT_FALSE(Holds("semver_lt", {"2.0.0"}, "2.0.0"));
  EXPECT_TRUE(Holds("semver_gt", {"2.0.0-rc.2"}, "2.0.0-rc.10"));
  EXPECT_TRUE(Holds("semver_gt", {"2.0.0-rc.1"}, "2.0.0"));
  EXPECT_FALSE(Holds("semver_gt", {"2.0.0-rc.1"}, "2.0.0-beta"));
  EXPECT_FALSE(Holds("semver_gt", {"1.0.0"}, "not-a-version"));
  EXPECT_FALSE(Holds("semver_gt", {"1.0.0"}, nullptr));
}

TEST(OperatorTest, Timestamps) {
  EXPECT_TRUE(Holds("before", {"2024-05-01T12:00:00Z"}, "2024-05-01T11:59:59Z"));
  EXPECT_FALSE(Holds("before", {"2024-05-01T12:00:00Z"}, "2024-05-01T14:00:00+02:00"));  // equal
  EXPECT_TRUE(Holds("after", {"2024-05-01T12:00:00Z"}, "2024-05-01T12:00:00.000001Z"));
  EXPECT_FALSE(Holds("after", {"2024-05-01T12:00:00Z"}, "2024-05-01T12:00:00Z"));
  EXPECT_FALSE(Holds("after", {"2024-05-01T12:00:00Z"}, "tomorrow"));
  EXPECT_FALSE(Holds("after", {"2024-05-01T12:00:00Z"}, 1714564801));
  EXPECT_FALSE(Holds("before", {"2024-05-01T12:00:00Z"}, nullptr));
}

TEST(OperatorTest, CurrentTimeFallsBackToTheCallersClock) {
  CompiledToggle t = Enabled("launch", R"([{"constraints": [
      {"attribute": "currentTime", "operator": "after", "values": ["2024-05-01T12:00:00Z"]}]}])");
  const int64_t launch = 1714564800LL * 1000000;
  EvaluationContext ctx;
  EXPECT_FALSE(t.Evaluate("production", ctx).on);  // no clock given: missing
  ctx.now_micros = launch - 1;
  EXPECT_FALSE(t.Evaluate("production", ctx).on);
  ctx.now_micros = launch + 1;
  EXPECT_TRUE(t.Evaluate("production", ctx).on);
  ctx.Set("currentTime", AttributeValue::String("2024-04-01T00:00:00Z"));  // the context wins
  EXPECT_FALSE(t.Evaluate("production", ctx).on);
}

TEST(OperatorTest, TargetingKeyIsAnAttribute) {
  CompiledToggle t = Enabled("k", R"([{"constraints": [
      {"attribute": "targetingKey", "operator": "starts_with", "values": ["staff-"]}]}])");
  EXPECT_EQ("true on TARGETING_MATCH", Eval(t, Key("staff-7")));
  EXPECT_EQ("false off DEFAULT", Eval(t, Key("user-7")));
  EXPECT_EQ("false off DEFAULT", Eval(t, EvaluationContext{}));
}

TEST(OperatorTest, NullArrayAndObjectAttributesCountAsMissing) {
  EXPECT_FALSE(Holds("not_in", {"x"}, json::array({"y"})));
  EXPECT_FALSE(Holds("neq", {"x"}, json::object({{"y", 1}})));
}

// --- context ---

TEST(ContextTest, FromOfrepJson) {
  EvaluationContext ctx;
  ASSERT_TRUE(ContextFromJson(json::parse(R"({"targetingKey": "u1", "country": "NL",
      "age": 42, "ratio": 0.5, "beta": true, "nothing": null, "tags": ["a"]})"), &ctx).ok());
  EXPECT_TRUE(ctx.has_targeting_key);
  EXPECT_EQ("u1", ctx.targeting_key);
  EXPECT_EQ(nullptr, ctx.Find("targetingKey"));
  EXPECT_EQ("NL", ctx.Find("country")->text);
  EXPECT_EQ("42", ctx.Find("age")->text);
  EXPECT_EQ(42, ctx.Find("age")->number);
  EXPECT_EQ("0.5", ctx.Find("ratio")->text);
  EXPECT_EQ("true", ctx.Find("beta")->text);
  EXPECT_EQ(nullptr, ctx.Find("nothing"));
  EXPECT_EQ(nullptr, ctx.Find("tags"));
}

TEST(ContextTest, RejectsWhatOfrepCallsInvalidContext) {
  EvaluationContext ctx;
  EXPECT_EQ("context: expected object, found array",
            ContextFromJson(json::array(), &ctx).ToString());
  EXPECT_EQ("context.targetingKey: expected string, found number",
            ContextFromJson(json{{"targetingKey", 7}}, &ctx).ToString());
  ASSERT_TRUE(ContextFromJson(json{{"targetingKey", ""}}, &ctx).ok());
  EXPECT_FALSE(ctx.has_targeting_key);
}

TEST(ContextTest, AttributeValueForms) {
  EXPECT_EQ("42.0", AttributeValue::Number(42).text);
  EXPECT_EQ("42", AttributeValue::Integer(42).text);
  EXPECT_EQ("false", AttributeValue::Bool(false).text);
}

// --- snapshot ---

Toggle Parsed(const std::string& text) {
  Toggle t;
  EXPECT_TRUE(ParseToggleText(text, &t).ok()) << text;
  return t;
}

TEST(SnapshotTest, FindsTogglesByKey) {
  std::shared_ptr<const Snapshot> snap;
  Toggle b = Parsed(R"({"key": "b", "environments": {"production": {"enabled": true}}})");
  ASSERT_TRUE(Snapshot::Build(7, {b, Parsed(R"({"key": "a"})")}, &snap).ok());
  EXPECT_EQ(7, snap->revision());
  ASSERT_EQ(2u, snap->toggles().size());
  EXPECT_EQ("a", snap->toggles()[0].key());  // sorted
  EXPECT_EQ("b", snap->toggles()[1].key());
  ASSERT_NE(nullptr, snap->Find("b"));
  EXPECT_EQ("true on STATIC", Describe(snap->Find("b")->Evaluate("production", Key("u"))));
  EXPECT_EQ("false off DISABLED", Describe(snap->Find("a")->Evaluate("production", Key("u"))));
  EXPECT_EQ(nullptr, snap->Find("c"));
}

TEST(SnapshotTest, RejectsDuplicatesAndInvalidToggles) {
  std::shared_ptr<const Snapshot> snap;
  EXPECT_EQ("toggle \"a\": duplicate key",
            Snapshot::Build(1, {Parsed(R"({"key": "a"})"), Parsed(R"({"key": "a"})")}, &snap)
                .ToString());
  Toggle bad = Parsed(R"({"key": "k"})");
  bad.variants = {Variant{"x", 900, "v"}};
  EXPECT_EQ("toggle \"k\": variants: weights must sum to 1000, got 900",
            Snapshot::Build(1, {bad}, &snap).ToString());
  EXPECT_EQ(nullptr, snap);
}

CompiledToggle CompiledOf(const std::string& text) {
  CompiledToggle t;
  EXPECT_TRUE(CompiledToggle::Compile(Parsed(text), &t).ok()) << text;
  return t;
}

// A write builds the next snapshot from the last one: the toggles it did not
// change are the same compiled objects (not compiled again), and a flip keeps
// the key index.
TEST(SnapshotTest, UpdateSharesTheTogglesThatDidNotChange) {
  std::shared_ptr<const Snapshot> base, flipped, grown, shrunk;
  ASSERT_TRUE(Snapshot::Build(3, {Parsed(R"({"key": "a"})"), Parsed(R"({"key": "c"})"),
                                  Parsed(R"({"key": "e"})")},
                              &base)
                  .ok());
  ASSERT_TRUE(Snapshot::Update(*base, 4,
                               {CompiledOf(R"({"key": "c", "revision": 4,
                                   "environments": {"production": {"enabled": true}}})")},
                               {}, &flipped)
                  .ok());
  EXPECT_EQ(4, flipped->revision());
  ASSERT_EQ(3u, flipped->toggles().size());
  EXPECT_EQ(&base->Find("a")->toggle(), &flipped->Find("a")->toggle());  // shared
  EXPECT_EQ(&base->Find("e")->toggle(), &flipped->Find("e")->toggle());
  EXPECT_EQ("true on STATIC", Describe(flipped->Find("c")->Evaluate("production", Key("u"))));
  EXPECT_EQ("false off DISABLED", Describe(base->Find("c")->Evaluate("production", Key("u"))));
  // A create and a delete: merged in key order, indexed again.
  ASSERT_TRUE(Snapshot::Update(*flipped, 5, {CompiledOf(R"({"key": "b"})"),
                                             CompiledOf(R"({"key": "z"})")},
                               {"e", "never"}, &grown)
                  .ok());
  std::vector<std::string> keys;
  for (const CompiledToggle& t : grown->toggles()) keys.push_back(t.key());
  EXPECT_EQ((std::vector<std::string>{"a", "b", "c", "z"}), keys);
  for (const std::string& k : keys) {
    ASSERT_NE(nullptr, grown->Find(k)) << k;
    EXPECT_EQ(k, grown->Find(k)->key());
  }
  EXPECT_EQ(nullptr, grown->Find("e"));
  EXPECT_EQ(&flipped->Find("c")->toggle(), &grown->Find("c")->toggle());
  ASSERT_TRUE(Snapshot::Update(*grown, 6, {}, {"a", "z"}, &shrunk).ok());
  EXPECT_EQ(2u, shrunk->toggles().size());
  EXPECT_EQ(nullptr, shrunk->Find("a"));
  EXPECT_EQ("b", shrunk->Find("b")->key());
  grown.reset();  // the older snapshots outlive nothing they share
  flipped.reset();
  base.reset();
  EXPECT_EQ("c", shrunk->Find("c")->key());
  EXPECT_EQ("toggle \"b\": duplicate key",
            Snapshot::Update(*shrunk, 7, {CompiledOf(R"({"key": "b"})"), CompiledOf(R"({"key": "b"})")},
                             {}, &base)
                .ToString());
}

TEST(ReasonTest, OfrepNames) {
  EXPECT_EQ("STATIC", ToString(Reason::kStatic));
  EXPECT_EQ("TARGETING_MATCH", ToString(Reason::kTargetingMatch));
  EXPECT_EQ("SPLIT", ToString(Reason::kSplit));
  EXPECT_EQ("DEFAULT", ToString(Reason::kDefault));
  EXPECT_EQ("DISABLED", ToString(Reason::kDisabled));
  EXPECT_EQ("ERROR", ToString(Reason::kError));
  EXPECT_EQ("TARGETING_KEY_MISSING", ToString(ErrorCode::kTargetingKeyMissing));
  EXPECT_EQ("INVALID_CONTEXT", ToString(ErrorCode::kInvalidContext));
  EXPECT_EQ("FLAG_NOT_FOUND", ToString(ErrorCode::kFlagNotFound));
  EXPECT_EQ("PARSE_ERROR", ToString(ErrorCode::kParseError));
  EXPECT_EQ("GENERAL", ToString(ErrorCode::kGeneral));
}

}  // namespace
}  // namespace ladle::toggles
