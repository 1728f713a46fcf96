#include "core/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <sys/resource.h>
#include <unistd.h>

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

namespace {

void ProcessFamily(const char* name, const char* type, const char* help, double value,
                   std::string* out) {
  *out += "# HELP ";
  *out += name;
  *out += ' ';
  *out += help;
  *out += "\n# TYPE ";
  *out += name;
  *out += ' ';
  *out += type;
  *out += '\n';
  *out += name;
  *out += ' ';
  *out += FormatMetricValue(value);
  *out += '\n';
}

std::string ReadSmallFile(const char* path) {
  std::ifstream in(path);
  std::string text;
  std::getline(in, text, '\0');
  return text;
}

}  // namespace

void RenderProcessMetrics(std::string* out) {
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  // /proc/self/stat: the fields after the command's closing parenthesis,
  // from field 3 (state); proc(5) numbers utime 14, stime 15, starttime 22,
  // vsize 23, rss 24.
  std::string stat = ReadSmallFile("/proc/self/stat");
  size_t paren = stat.rfind(')');
  if (paren != std::string::npos && ticks > 0) {
    std::istringstream fields(stat.substr(paren + 1));
    std::vector<std::string> f{"", "", ""};  // fields 1 and 2 are before the parenthesis
    for (std::string word; fields >> word;) f.push_back(word);
    if (f.size() > 24) {
      double utime = std::strtod(f[14].c_str(), nullptr);
      double stime = std::strtod(f[15].c_str(), nullptr);
      ProcessFamily("process_cpu_seconds_total", "counter",
                    "Total user and system CPU time spent in seconds.", (utime + stime) / ticks, out);
      // Boot time (btime in /proc/stat) plus the start in ticks since boot.
      std::istringstream proc_stat(ReadSmallFile("/proc/stat"));
      for (std::string line; std::getline(proc_stat, line);) {
        if (line.rfind("btime ", 0) == 0) {
          double btime = std::strtod(line.c_str() + 6, nullptr);
          ProcessFamily("process_start_time_seconds", "gauge",
                        "Start time of the process since unix epoch in seconds.",
                        btime + std::strtod(f[22].c_str(), nullptr) / ticks, out);
          break;
        }
      }
      ProcessFamily("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
                    std::strtod(f[23].c_str(), nullptr), out);
      ProcessFamily("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
                    std::strtod(f[24].c_str(), nullptr) * page, out);
    }
  }
  std::error_code ec;
  size_t fds = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
       it.increment(ec)) {
    ++fds;
  }
  // The iterator's own descriptor was open while it counted.
  if (!ec && fds > 0) {
    ProcessFamily("process_open_fds", "gauge", "Number of open file descriptors.",
                  static_cast<double>(fds - 1), out);
  }
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    ProcessFamily("process_max_fds", "gauge", "Maximum number of open file descriptors.",
                  static_cast<double>(limit.rlim_cur), out);
  }
}

}  // namespace ladle
