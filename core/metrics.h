// Counters, gauges and histograms rendered in Prometheus' text format (0.0.4).
//
// A series (a metric name with one set of label values) is created once,
// under the registry's lock, and then updated with relaxed atomics only: look
// a series up once, keep the reference, and the hot path takes no lock.
//
// Thread-safety: every method of every class here may be called from any
// thread. Render() reads the atomics one at a time, so a histogram scraped
// mid-update may be off by the observations in flight (as in every client).
#ifndef LADLE_CORE_METRICS_H_
#define LADLE_CORE_METRICS_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace ladle {

// Label name/value pairs, rendered in the order given.
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

// The Content-Type of Render()'s output.
inline constexpr const char* kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

class Counter {
 public:
  void Inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Set(int64_t v) { value_.store(v, std::memory_order_relaxed); }
  void Add(int64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

class Histogram {
 public:
  // REQUIRES: `bounds` ascending (the +Inf bucket is implicit).
  explicit Histogram(std::vector<double> bounds);

  void Observe(double value);
  void Observe(std::chrono::nanoseconds d) { Observe(std::chrono::duration<double>(d).count()); }

  const std::vector<double>& bounds() const { return bounds_; }
  // Observations <= bounds()[i], cumulative; the last entry (+Inf) is the count.
  std::vector<uint64_t> CumulativeCounts() const;
  uint64_t count() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  // Per bucket, not cumulative (one atomic add per observation); the last
  // counts what is above every bound.
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<double> sum_{0};
};

class MetricsRegistry {
 public:
  // Seconds, from 100 µs (an in-memory toggle evaluation) to 10 s.
  static const std::vector<double>& LatencyBuckets();

  // The series of family `name` with `labels`, created on first use. `help`
  // is kept from the family's first call. The reference lives as long as
  // the registry. Asking for an existing name with another type is a bug:
  // it returns a series that is never rendered.
  Counter& GetCounter(const std::string& name, const std::string& help,
                      const MetricLabels& labels = {});
  Gauge& GetGauge(const std::string& name, const std::string& help,
                  const MetricLabels& labels = {});
  Histogram& GetHistogram(const std::string& name, const std::string& help,
                          const MetricLabels& labels = {},
                          const std::vector<double>& bounds = LatencyBuckets());

  // Every family, sorted by name, each series sorted by its rendered labels:
  //   # HELP name help
  //   # TYPE name counter|gauge|histogram
  //   name{label="value"} 42
  // Histograms add _bucket{...,le="0.005"} lines, _sum and _count.
  std::string Render() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Family {
    Type type;
    std::string help;
    // Rendered labels ("a=\"1\",b=\"2\"") -> series; std::map keeps output sorted.
    std::map<std::string, std::unique_ptr<Counter>> counters;
    std::map<std::string, std::unique_ptr<Gauge>> gauges;
    std::map<std::string, std::unique_ptr<Histogram>> histograms;
  };

  Family* FamilyFor(const std::string& name, const std::string& help, Type type);
  static void RenderFamily(const std::string& name, const Family& family, std::string* out);

  mutable std::mutex mu_;
  std::map<std::string, Family> families_;
  // Series handed out for a name used with two types: updated, never shown.
  std::vector<std::unique_ptr<Counter>> stray_counters_;
  std::vector<std::unique_ptr<Gauge>> stray_gauges_;
  std::vector<std::unique_ptr<Histogram>> stray_histograms_;
};

// The standard process_* families of Prometheus' client libraries, read
// from /proc at the time of the call and appended to `out`:
// process_cpu_seconds_total, process_resident_memory_bytes,
// process_virtual_memory_bytes, process_open_fds, process_max_fds,
// process_start_time_seconds. A figure that cannot be read is left out.
void RenderProcessMetrics(std::string* out);

// A number as Prometheus expects it: shortest text that reads back exactly,
// "+Inf", "-Inf", "NaN".
std::string FormatMetricValue(double value);

}  // namespace ladle

#endif  // LADLE_CORE_METRICS_H_
