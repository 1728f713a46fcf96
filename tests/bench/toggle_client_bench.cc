// The client library's evaluation (toggles/client/client.h): what an application
// pays per IsEnabled call. Target: < 200 ns for a rollout toggle; the engine
// alone is the floor (BM_Engine_Rollout50).
//
// The Client is real: it starts from a cache file (the server it names is
// down), so no HTTP is involved and nothing changes the set while timing.
// 1004 toggles, contexts for 1024 users built before the timed loop.
// BM_AtomicLoad_Rollout50 shows what the per-thread snapshot cache saves:
// std::atomic_load of a shared_ptr (a mutex in libstdc++) on every call.
//
// Run: BUILD/tests/bench/toggle_client_bench [--benchmark_filter=Client]
#include <benchmark/benchmark.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "toggles/client/client.h"

namespace ladle::toggles {
namespace {

using json = nlohmann::json;

constexpr size_t kUsers = 1024;  // a power of two: the index is a mask

json Toggles() {
  json out = json::array();
  for (int i = 0; i < 1000; ++i) {
    out.push_back({{"key", "filler-" + std::to_string(i)},
                   {"environments", {{"production", {{"enabled", true},
                     {"strategies", {{{"rollout", {{"percent", 30}}}}}}}}}}});
  }
  out.push_back(json::parse(R"({"key": "static-on", "environments": {"production": {"enabled": true}}})"));
  out.push_back(json::parse(R"({"key": "rollout-50", "environments": {"production":
      {"enabled": true, "strategies": [{"rollout": {"percent": 50}}]}}})"));
  out.push_back(json::parse(R"({"key": "colours", "variants": [
        {"name": "red", "weight": 200, "value": "#f00"},
        {"name": "green", "weight": 300, "value": "#0f0"},
        {"name": "blue", "weight": 500, "value": "#00f"}],
      "environments": {"production": {"enabled": true}}})"));
  return out;
}

Client& TheClient() {
  static std::unique_ptr<Client> client = [] {
    std::string dir = std::filesystem::temp_directory_path() / ("ladle-client-bench-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    ClientOptions o;
    o.server = "http://127.0.0.1:1";  // nothing listens: the cache is all there is
    o.cache_file = dir + "/toggles.json";
    o.background = false;
    std::ofstream(o.cache_file) << json{{"format", 1}, {"environment", "production"},
                                        {"revision", 1}, {"toggles", Toggles()}}.dump();
    std::unique_ptr<Client> c;
    if (!Client::Start(o, &c).ok() || c->source() != ToggleSource::kCache) std::abort();
    std::filesystem::remove_all(dir);
    return c;
  }();
  return *client;
}

const std::vector<EvaluationContext>& Contexts() {
  static const std::vector<EvaluationContext> contexts = [] {
    std::vector<EvaluationContext> out(kUsers);
    for (size_t i = 0; i < kUsers; ++i) {
      out[i].SetTargetingKey("user-" + std::to_string(i * 7919));
      out[i].Set("country", AttributeValue::String(i % 2 ? "NL" : "BE"));
    }
    return out;
  }();
  return contexts;
}

void IsEnabled(benchmark::State& state, const std::string& key) {
  const Client& client = TheClient();
  const std::vector<EvaluationContext>& contexts = Contexts();
  size_t i = 0, on = 0;
  for (auto _ : state) {
    bool v = client.IsEnabled(key, contexts[i++ & (kUsers - 1)]);
    benchmark::DoNotOptimize(v);
    on += v;
  }
  state.counters["on_ratio"] = benchmark::Counter(static_cast<double>(on) / static_cast<double>(state.iterations()),
                                                 benchmark::Counter::kAvgThreads);
}

void BM_Client_IsEnabled_Rollout50(benchmark::State& state) { IsEnabled(state, "rollout-50"); }
void BM_Client_IsEnabled_Static(benchmark::State& state) { IsEnabled(state, "static-on"); }
void BM_Client_IsEnabled_Unknown(benchmark::State& state) { IsEnabled(state, "no-such-toggle"); }

void BM_Client_Variant(benchmark::State& state) {
  const Client& client = TheClient();
  const std::vector<EvaluationContext>& contexts = Contexts();
  const std::string key = "colours";
  size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(client.Variant(key, contexts[i++ & (kUsers - 1)]));
}

void BM_Client_Evaluate_Details(benchmark::State& state) {
  const Client& client = TheClient();
  const std::vector<EvaluationContext>& contexts = Contexts();
  const std::string key = "rollout-50";
  size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(client.Evaluate(key, contexts[i++ & (kUsers - 1)]));
}

// The floor: the engine on a snapshot held directly, key lookup included.
void BM_Engine_Rollout50(benchmark::State& state) {
  std::shared_ptr<const Snapshot> snap = TheClient().snapshot();
  const std::vector<EvaluationContext>& contexts = Contexts();
  const std::string key = "rollout-50";
  size_t i = 0;
  for (auto _ : state) {
    Evaluation e = snap->Find(key)->Evaluate("production", contexts[i++ & (kUsers - 1)]);
    benchmark::DoNotOptimize(e);
  }
}

// The design not taken: std::atomic_load of the shared_ptr on every call.
void BM_AtomicLoad_Rollout50(benchmark::State& state) {
  static std::shared_ptr<const Snapshot> shared = TheClient().snapshot();
  const std::vector<EvaluationContext>& contexts = Contexts();
  const std::string key = "rollout-50";
  size_t i = 0;
  for (auto _ : state) {
    std::shared_ptr<const Snapshot> snap = std::atomic_load(&shared);
    Evaluation e = snap->Find(key)->Evaluate("production", contexts[i++ & (kUsers - 1)]);
    benchmark::DoNotOptimize(e);
  }
}

BENCHMARK(BM_Client_IsEnabled_Rollout50)->ThreadRange(1, 2);
BENCHMARK(BM_Client_IsEnabled_Static);
BENCHMARK(BM_Client_IsEnabled_Unknown);
BENCHMARK(BM_Client_Variant);
BENCHMARK(BM_Client_Evaluate_Details);
BENCHMARK(BM_Engine_Rollout50);
BENCHMARK(BM_AtomicLoad_Rollout50)->ThreadRange(1, 2);

}  // namespace
}  // namespace ladle::toggles

BENCHMARK_MAIN();
