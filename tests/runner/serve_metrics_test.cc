// runner/serve/scheduler.h ServeMetrics and run_queue.h's gauges: what
// `ladle serve` shows of runs, steps, deployments, the queue and workers on
// /metrics (docs/server.md "Metrics"), without a server.
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>

#include <gtest/gtest.h>

#include "core/metrics.h"
#include "runner/serve/run_queue.h"
#include "runner/serve/scheduler.h"

namespace ladle::runner {
namespace {

bool Has(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos;
}

TEST(ServeMetricsTest, CountsRunsStepsAndDurationsByStatus) {
  MetricsRegistry registry;
  ServeMetrics metrics(&registry);
  // Every run status shows before anything ends.
  std::string text = registry.Render();
  EXPECT_TRUE(Has(text, "ladle_runs_total{status=\"success\"} 0")) << text;
  EXPECT_TRUE(Has(text, "ladle_runs_total{status=\"superseded\"} 0")) << text;
  EXPECT_TRUE(Has(text, "# TYPE ladle_run_duration_seconds histogram")) << text;

  metrics.RunEnded(kSuccess);
  metrics.RunEnded(kSuccess);
  metrics.RunEnded(kFailed);
  metrics.RunEnded(kInterrupted);
  metrics.RunDuration(std::chrono::seconds(3));
  metrics.RunDuration(std::chrono::seconds(700));
  metrics.StepEnded(kSuccess);
  metrics.StepEnded(kSkipped);
  text = registry.Render();
  EXPECT_TRUE(Has(text, "ladle_runs_total{status=\"success\"} 2")) << text;
  EXPECT_TRUE(Has(text, "ladle_runs_total{status=\"failed\"} 1")) << text;
  EXPECT_TRUE(Has(text, "ladle_runs_total{status=\"interrupted\"} 1")) << text;
  EXPECT_TRUE(Has(text, "ladle_runs_total{status=\"cancelled\"} 0")) << text;
  EXPECT_TRUE(Has(text, "ladle_run_duration_seconds_bucket{le=\"1\"} 0")) << text;
  EXPECT_TRUE(Has(text, "ladle_run_duration_seconds_bucket{le=\"5\"} 1")) << text;
  EXPECT_TRUE(Has(text, "ladle_run_duration_seconds_bucket{le=\"600\"} 1")) << text;
  EXPECT_TRUE(Has(text, "ladle_run_duration_seconds_bucket{le=\"1800\"} 2")) << text;
  EXPECT_TRUE(Has(text, "ladle_run_duration_seconds_bucket{le=\"3600\"} 2")) << text;
  EXPECT_TRUE(Has(text, "ladle_run_duration_seconds_count 2")) << text;
  EXPECT_TRUE(Has(text, "ladle_run_duration_seconds_sum 703")) << text;
  EXPECT_TRUE(Has(text, "ladle_steps_total{status=\"success\"} 1")) << text;
  EXPECT_TRUE(Has(text, "ladle_steps_total{status=\"skipped\"} 1")) << text;
}

TEST(ServeMetricsTest, EnvironmentLabelsAreCappedThenOther) {
  MetricsRegistry registry;
  ServeMetrics metrics(&registry);
  for (size_t i = 0; i < ServeMetrics::kMaxEnvironments; ++i)
    metrics.DeploymentEnded("env" + std::to_string(i), kSuccess);
  metrics.DeploymentEnded("env0", kFailed);         // a known one keeps its label
  metrics.DeploymentEnded("one-too-many", kSuccess);
  metrics.DeploymentEnded("and-another", kSuccess);
  const std::string text = registry.Render();
  EXPECT_TRUE(Has(text, "ladle_deployments_total{environment=\"env0\",status=\"success\"} 1"))
      << text;
  EXPECT_TRUE(Has(text, "ladle_deployments_total{environment=\"env0\",status=\"failed\"} 1"));
  EXPECT_TRUE(Has(text, "ladle_deployments_total{environment=\"env99\",status=\"success\"} 1"));
  EXPECT_TRUE(Has(text, "ladle_deployments_total{environment=\"other\",status=\"success\"} 2"));
  EXPECT_EQ(std::string::npos, text.find("one-too-many"));
}

TEST(ServeMetricsTest, QueueGaugesFollowTheQueue) {
  Gauge queued, running, busy;
  RunQueue queue;
  queue.SetGauges(&queued, &running, &busy);
  EXPECT_TRUE(queue.Push(1));
  EXPECT_TRUE(queue.Push(2));
  EXPECT_TRUE(queue.Push(3));
  EXPECT_EQ(3, queued.value());
  EXPECT_TRUE(queue.Remove(2));
  EXPECT_EQ(2, queued.value());
  queue.CancelQueued(3);
  EXPECT_EQ(1, queued.value());
  EXPECT_EQ(RunQueue::Begin::kRun, queue.BeginRun(1, nullptr));
  EXPECT_EQ(1, running.value());
  EXPECT_FALSE(queue.EndRun(1));
  EXPECT_EQ(0, running.value());
  EXPECT_EQ(0, busy.value());
}

TEST(ServeMetricsTest, BusyCountsWorkersInsideTheirWork) {
  Gauge queued, running, busy;
  RunQueue queue;
  queue.SetGauges(&queued, &running, &busy);
  std::mutex mu;
  std::condition_variable cv;
  int inside = 0;
  bool release = false;
  queue.Start(2, [&](int64_t) {
    std::unique_lock<std::mutex> lock(mu);
    ++inside;
    cv.notify_all();
    cv.wait(lock, [&] { return release; });
  });
  queue.Push(1);
  queue.Push(2);
  queue.Push(3);
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(5), [&] { return inside == 2; }));
  }
  EXPECT_EQ(2, busy.value());
  EXPECT_EQ(2u, queue.busy());
  EXPECT_EQ(1, queued.value());
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
    cv.notify_all();
  }
  queue.Stop(0);
  EXPECT_EQ(0, busy.value());
}

}  // namespace
}  // namespace ladle::runner
