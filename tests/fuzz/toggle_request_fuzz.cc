// libFuzzer target for what the toggle API reads from a request: toggle and
// environment bodies (POST/PUT), OFREP evaluation contexts, and the
// evaluation of whatever parsed. None of it may crash, hang, leak or throw;
// a body that parses must validate and evaluate.
//
// The first byte picks the reader, the rest is the request body.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/base/text.h"
#include "toggles/eval/evaluate.h"
#include "toggles/eval/model.h"

namespace {

using namespace ladle::toggles;

void Check(bool condition) {
  if (!condition) std::abort();
}

// A fixed toggle set that exercises every strategy kind, for contexts.
std::shared_ptr<const Snapshot> FixedSnapshot() {
  static std::shared_ptr<const Snapshot> snapshot = [] {
    const char* text = R"({"key": "checkout", "type": "release", "description": "",
      "variants": [{"name": "a", "weight": 500, "value": "A"}, {"name": "b", "weight": 500, "value": "B"}],
      "environments": {"production": {"enabled": true, "strategies": [
        {"users": ["alice"]},
        {"rollout": {"percent": 30, "stickiness": "sessionId"}},
        {"rollout": {"percent": 50}, "constraints": [
          {"attribute": "country", "operator": "in", "values": ["NL", "BE"]},
          {"attribute": "age", "operator": "gte", "values": ["18"]},
          {"attribute": "version", "operator": "semver_gt", "values": ["1.2.3-rc.1"]},
          {"attribute": "signup", "operator": "before", "values": ["2026-01-01T00:00:00Z"]}]}]}}})";
    Toggle toggle;
    Check(ParseToggleText(text, &toggle).ok());
    std::shared_ptr<const Snapshot> out;
    Check(Snapshot::Build(1, {toggle}, &out).ok());
    return out;
  }();
  return snapshot;
}

void EvaluateAll(const Snapshot& snapshot, const EvaluationContext& context) {
  for (const CompiledToggle& t : snapshot.toggles()) {
    for (const char* env : {"production", "staging"}) {
      Evaluation e = t.Evaluate(env, context);
      Check(e.error.has_value() || e.value != nullptr);
    }
  }
}

void FuzzToggle(std::string_view body) {
  Toggle toggle;
  if (!ParseToggleText(body, &toggle).ok()) return;
  Check(Validate(toggle).ok());
  Toggle again;  // what we write back must read back the same
  Check(ParseToggle(ToJson(toggle), &again).ok() && again == toggle);
  std::shared_ptr<const Snapshot> snapshot;
  Check(Snapshot::Build(1, {toggle}, &snapshot).ok());
  EvaluationContext context;
  context.SetTargetingKey("user-1");
  EvaluateAll(*snapshot, context);
  EvaluateAll(*snapshot, EvaluationContext());
}

// What the API does before it parses a body (ParseJsonObjectBody): JSON
// deeper than kMaxJsonDepth is refused unparsed (docs/design.md "HTTP API
// conventions"), so nothing below ever sees it.
bool ParseBody(std::string_view body, nlohmann::json* out) {
  if (ladle::JsonDeeperThan(body, ladle::kMaxJsonDepth)) return false;
  *out = nlohmann::json::parse(body, nullptr, false);
  return !out->is_discarded();
}

void FuzzEnvironment(std::string_view body) {
  nlohmann::json j;
  if (!ParseBody(body, &j)) return;
  EnvironmentConfig config;
  if (ParseEnvironmentConfig(j, &config).ok()) {
    EnvironmentConfig again;
    Check(ParseEnvironmentConfig(ToJson(config), &again).ok() && again == config);
  }
}

void FuzzContext(std::string_view body) {
  nlohmann::json j;
  if (!ParseBody(body, &j)) return;
  EvaluationContext context;
  if (ContextFromJson(j, &context).ok()) EvaluateAll(*FixedSnapshot(), context);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: FuzzToggle(body); break;
    case 1: FuzzEnvironment(body); break;
    default: FuzzContext(body); break;
  }
  return 0;
}
