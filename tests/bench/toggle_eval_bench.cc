// In-process toggle evaluation, the hot path behind every OFREP request
// (issue 4; target: well under 200 ns per evaluation).
//
// Contexts are built before the timed loop: the HTTP layer builds one per
// request however many toggles it evaluates. Keys vary across 1024 users so
// that the hash sees realistic, changing input. BM_ContextFromJson shows what
// building a context costs on its own.
//
// Run: BUILD/tests/bench/toggle_eval_bench [--benchmark_filter=Rollout]
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "toggles/eval/evaluate.h"

namespace ladle::toggles {
namespace {

using json = nlohmann::json;

constexpr size_t kUsers = 1024;  // a power of two: the index is a mask

Toggle Parse(const std::string& text) {
  Toggle t;
  if (!ParseToggleText(text, &t).ok()) std::abort();
  return t;
}

// 1000 toggles, like a large Unleash project, plus the ones measured.
std::shared_ptr<const Snapshot> BuildSnapshot() {
  std::vector<Toggle> toggles;
  for (int i = 0; i < 1000; ++i) {
    toggles.push_back(Parse(R"({"key": "filler-)" + std::to_string(i) +
                            R"(", "environments": {"production": {"enabled": true,
                               "strategies": [{"rollout": {"percent": 30}}]}}})"));
  }
  toggles.push_back(Parse(R"({"key": "static-on", "environments": {"production":
      {"enabled": true}}})"));
  toggles.push_back(Parse(R"({"key": "rollout-50", "environments": {"production":
      {"enabled": true, "strategies": [{"rollout": {"percent": 50}}]}}})"));
  // "25% of pro users on app > 2.0 in the Benelux", and a fallback list.
  toggles.push_back(Parse(R"({"key": "constrained", "environments": {"production":
      {"enabled": true, "strategies": [
        {"users": ["alice", "bob", "carol", "dave"]},
        {"rollout": {"percent": 25}, "constraints": [
          {"attribute": "country", "operator": "in", "values": ["NL", "BE", "LU"]},
          {"attribute": "app_version", "operator": "semver_gt", "values": ["2.0.0"]},
          {"attribute": "plan", "operator": "not_in", "values": ["free", "trial"]},
          {"attribute": "age", "operator": "gte", "values": ["18"]}]}]}}})"));
  toggles.push_back(Parse(R"({"key": "colours", "variants": [
        {"name": "red", "weight": 200, "value": "#f00"},
        {"name": "green", "weight": 300, "value": "#0f0"},
        {"name": "blue", "weight": 500, "value": "#00f"}],
      "environments": {"production": {"enabled": true}}})"));
  std::shared_ptr<const Snapshot> snap;
  if (!Snapshot::Build(1, std::move(toggles), &snap).ok()) std::abort();
  return snap;
}

const std::shared_ptr<const Snapshot>& TheSnapshot() {
  static const std::shared_ptr<const Snapshot> snap = BuildSnapshot();
  return snap;
}

json ContextJson(size_t i) {
  static const char* kCountries[] = {"NL", "BE", "DE", "FR"};
  return {{"targetingKey", "user-" + std::to_string(i * 7919)},
          {"country", kCountries[i % 4]},
          {"app_version", i % 3 == 0 ? "1.9.3" : "2.4.0"},
          {"plan", i % 5 == 0 ? "free" : "pro"},
          {"age", 16 + static_cast<int>(i % 40)}};
}

const std::vector<EvaluationContext>& Contexts() {
  static const std::vector<EvaluationContext> contexts = [] {
    std::vector<EvaluationContext> out(kUsers);
    for (size_t i = 0; i < kUsers; ++i) {
      if (!ContextFromJson(ContextJson(i), &out[i]).ok()) std::abort();
    }
    return out;
  }();
  return contexts;
}

void EvaluateOne(benchmark::State& state, const char* key) {
  const CompiledToggle* toggle = TheSnapshot()->Find(key);
  const std::vector<EvaluationContext>& contexts = Contexts();
  size_t i = 0, on = 0;
  for (auto _ : state) {
    Evaluation e = toggle->Evaluate("production", contexts[i++ & (kUsers - 1)]);
    benchmark::DoNotOptimize(e);
    on += e.on;
  }
  state.counters["on_ratio"] =
      static_cast<double>(on) / static_cast<double>(state.iterations());
}

void BM_Static(benchmark::State& state) { EvaluateOne(state, "static-on"); }
void BM_Rollout50(benchmark::State& state) { EvaluateOne(state, "rollout-50"); }
void BM_Constraints(benchmark::State& state) { EvaluateOne(state, "constrained"); }
void BM_Variants(benchmark::State& state) { EvaluateOne(state, "colours"); }

// What an OFREP single-flag request does: find the key among 1004, evaluate.
void BM_Rollout50_FindAndEvaluate(benchmark::State& state) {
  const Snapshot& snap = *TheSnapshot();
  const std::vector<EvaluationContext>& contexts = Contexts();
  const std::string key = "rollout-50";
  size_t i = 0;
  for (auto _ : state) {
    Evaluation e = snap.Find(key)->Evaluate("production", contexts[i++ & (kUsers - 1)]);
    benchmark::DoNotOptimize(e);
  }
}

// OFREP bulk: every toggle of the snapshot for one context; reported per toggle.
void BM_BulkPerToggle(benchmark::State& state) {
  const Snapshot& snap = *TheSnapshot();
  const std::vector<EvaluationContext>& contexts = Contexts();
  size_t i = 0;
  for (auto _ : state) {
    const EvaluationContext& ctx = contexts[i++ & (kUsers - 1)];
    for (const CompiledToggle& t : snap.toggles()) {
      Evaluation e = t.Evaluate("production", ctx);
      benchmark::DoNotOptimize(e);
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(snap.toggles().size()));
}

void BM_ContextFromJson(benchmark::State& state) {
  const json context = ContextJson(1);
  for (auto _ : state) {
    EvaluationContext ctx;
    benchmark::DoNotOptimize(ContextFromJson(context, &ctx));
  }
}

BENCHMARK(BM_Static);
BENCHMARK(BM_Rollout50);
BENCHMARK(BM_Rollout50_FindAndEvaluate);
BENCHMARK(BM_Constraints);
BENCHMARK(BM_Variants);
BENCHMARK(BM_BulkPerToggle);
BENCHMARK(BM_ContextFromJson);

}  // namespace
}  // namespace ladle::toggles

BENCHMARK_MAIN();
