#include "core/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace ladle {
namespace {

// Label values escape \, " and newline; HELP text escapes \ and newline.
std::string Escape(const std::string& text, bool quote) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

std::string RenderLabels(const MetricLabels& labels) {
  std::string out;
  for (const auto& [name, value] : labels) {
    if (!out.empty()) out += ',';
    out += name + "=\"" + Escape(value, true) + "\"";
  }
  return out;
}

// "name{labels} value\n", with `extra` (a rendered label) appended to labels.
void Line(std::string* out, const std::string& name, const std::string& labels,
          const std::string& extra, const std::string& value) {
  *out += name;
  if (!labels.empty() || !extra.empty()) {
    *out += '{';
    *out += labels;
    if (!labels.empty() && !extra.empty()) *out += ',';
    *out += extra;
    *out += '}';
  }
  *out += ' ';
  *out += value;
  *out += '\n';
}

}  // namespace

std::string FormatMetricValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    return std::to_string(static_cast<int64_t>(value));  // 10, not 1e+01
  }
  char buf[32];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, value);
    if (std::strtod(buf, nullptr) == value) break;
  }
  return buf;
}

// ---- Histogram ----

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double value) {
  size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  // No fetch_add for atomic<double> in C++17.
  double sum = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(sum, sum + value, std::memory_order_relaxed)) {
  }
}

std::vector<uint64_t> Histogram::CumulativeCounts() const {
  std::vector<uint64_t> counts(bounds_.size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
    counts[i] = total;
  }
  return counts;
}

uint64_t Histogram::count() const { return CumulativeCounts().back(); }

// ---- MetricsRegistry ----

const std::vector<double>& MetricsRegistry::LatencyBuckets() {
  static const std::vector<double> buckets{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                           0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                           1,      2.5,     5,      10};
  return buckets;
}

MetricsRegistry::Family* MetricsRegistry::FamilyFor(const std::string& name,
                                                    const std::string& help, Type type) {
  auto [it, inserted] = families_.try_emplace(name);
  if (inserted) {
    it->second.type = type;
    it->second.help = help;
  }
  return it->second.type == type ? &it->second : nullptr;
}

Counter& MetricsRegistry::GetCounter(const std::string& name, const std::string& help,
                                     const MetricLabels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Family* family = FamilyFor(name, help, Type::kCounter);
  if (!family) return *stray_counters_.emplace_back(std::make_unique<Counter>());
  auto& slot = family->counters[RenderLabels(labels)];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& MetricsRegistry::GetGauge(const std::string& name, const std::string& help,
                                 const MetricLabels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Family* family = FamilyFor(name, help, Type::kGauge);
  if (!family) return *stray_gauges_.emplace_back(std::make_unique<Gauge>());
  auto& slot = family->gauges[RenderLabels(labels)];
  if (!slot) slot = std::make_unique<Gauge>();
  return *slot;
}

Histogram& MetricsRegistry::GetHistogram(const std::string& name, const std::string& help,
                                         const MetricLabels& labels,
                                         const std::vector<double>& bounds) {
  std::lock_guard<std::mutex> lock(mu_);
  Family* family = FamilyFor(name, help, Type::kHistogram);
  if (!family) return *stray_histograms_.emplace_back(std::make_unique<Histogram>(bounds));
  auto& slot = family->histograms[RenderLabels(labels)];
  if (!slot) slot = std::make_unique<Histogram>(bounds);
  return *slot;
}

void MetricsRegistry::RenderFamily(const std::string& name, const Family& family,
                                   std::string* out) {
  static const char* kTypeNames[] = {"counter", "gauge", "histogram"};
  *out += "# HELP " + name + " " + Escape(family.help, false) + "\n";
  *out += "# TYPE " + name + " " + kTypeNames[static_cast<int>(family.type)] + "\n";
  for (const auto& [labels, counter] : family.counters) {
    Line(out, name, labels, "", std::to_string(counter->value()));
  }
  for (const auto& [labels, gauge] : family.gauges) {
    Line(out, name, labels, "", std::to_string(gauge->value()));
  }
  for (const auto& [labels, histogram] : family.histograms) {
    std::vector<uint64_t> counts = histogram->CumulativeCounts();
    const std::vector<double>& bounds = histogram->bounds();
    for (size_t i = 0; i < counts.size(); ++i) {
      std::string le = i < bounds.size() ? FormatMetricValue(bounds[i]) : "+Inf";
      Line(out, name + "_bucket", labels, "le=\"" + le + "\"", std::to_string(counts[i]));
    }
    Line(out, name + "_sum", labels, "", FormatMetricValue(histogram->sum()));
    Line(out, name + "_count", labels, "", std::to_string(counts.back()));
  }
}

std::string MetricsRegistry::Render() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const auto& [name, family] : families_) RenderFamily(name, family, &out);
  return out;
}

}  // namespace ladle
