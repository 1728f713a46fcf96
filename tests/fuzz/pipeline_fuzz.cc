// libFuzzer target for the pipeline loader: ParsePipeline on arbitrary bytes
// must not crash, hang, leak or throw, and what it returns must agree with
// what it reports. yaml-cpp itself is not instrumented; this covers ladle's
// code around it (input checks, the event-built tree, the schema walk).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "runner/config/pipeline.h"

namespace {

using ladle::runner::Diagnostic;
using ladle::runner::Pipeline;

void Check(bool condition) {
  if (!condition) std::abort();
}

// A pipeline that loaded without errors is complete (pipeline.h's promise).
void CheckValid(const Pipeline& p) {
  Check(!p.name.empty() && !p.stages.empty());
  for (const auto& stage : p.stages) {
    Check(!stage.name.empty() && (!stage.steps.empty() || stage.rollout));
    for (const auto& step : stage.steps) {
      Check(!step.name.empty() && !step.run.empty());
      Check(step.timeout.count() > 0 && step.retry >= 0 && step.retry <= 10);
    }
    if (stage.rollout) {
      const std::vector<int>& percent = stage.rollout->percent;
      for (std::size_t i = 0; i < percent.size(); ++i)
        Check(percent[i] >= 1 && percent[i] <= 100 && (i == 0 || percent[i] > percent[i - 1]));
    }
  }
}

// The two small parsers get the input too: a first line as a glob, the
// rest as a branch; the start as a duration.
void FuzzHelpers(std::string_view text) {
  std::chrono::milliseconds duration;
  if (ladle::runner::ParseDuration(text.substr(0, 40), &duration)) Check(duration.count() >= 0);
  std::size_t newline = text.find('\n');
  if (newline != std::string_view::npos && text.size() < 1024)
    ladle::runner::BranchMatches(text.substr(0, newline), text.substr(newline + 1));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  Pipeline pipeline;
  std::vector<Diagnostic> diagnostics;
  bool ok = ladle::runner::ParsePipeline(text, "fuzz.yml", &pipeline, &diagnostics);
  bool errors = false;
  for (const Diagnostic& d : diagnostics) {
    errors |= !d.warning;
    Check(d.location.line >= 0 && d.location.column >= 0 && !d.message.empty());
    Check(d.ToString().compare(0, 9, "fuzz.yml:") == 0);
  }
  Check(ok != errors);
  if (ok) CheckValid(pipeline);
  FuzzHelpers(text);
  return 0;
}
