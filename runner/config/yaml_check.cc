#include "runner/config/yaml_check.h"

#include <algorithm>
#include <set>
#include <tuple>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <regex>
#include <utility>

namespace ladle::runner {
namespace {

// Merged maps that merge maps...: a chain of aliases could nest this as deep
// as the file has anchors, and it recurses.
constexpr int kMaxMergeDepth = 32;

bool IsInteger(std::string_view s) {
  std::size_t i = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  if (i == s.size()) return false;
  for (; i < s.size(); ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

bool IsBoolean(std::string_view s) {
  for (std::string_view word : {"true", "True", "TRUE", "false", "False", "FALSE"})
    if (s == word) return true;
  return false;
}

bool IsNumber(std::string_view s) {
  static const std::regex kFloat(R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)");
  // Long scalars are never numbers; do not make std::regex recurse over them.
  return s.size() < 64 && std::regex_match(s.begin(), s.end(), kFloat);
}

// Optimal string alignment distance: Levenshtein plus adjacent
// transpositions, so "stagse" is one edit from "stages".
std::size_t EditDistance(std::string_view a, std::string_view b) {
  // Rows i-2, i-1 and i of the usual table.
  std::vector<std::size_t> before(b.size() + 1), last(b.size() + 1), row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) last[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      row[j] = std::min({last[j] + 1, row[j - 1] + 1, last[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        row[j] = std::min(row[j], before[j - 2] + 1);
    }
    std::swap(before, last);
    std::swap(last, row);
  }
  return last[b.size()];
}

// An integer as written, unless it is absurdly long.
std::string Shorten(const std::string& digits) {
  return digits.size() <= 24 ? digits : digits.substr(0, 21) + "...";
}

bool IsMergeKey(const YamlNode& key) {
  return key.kind == YamlNode::Kind::kScalar && key.plain && key.value() == "<<";
}

}  // namespace

const YamlField* YamlMap::Find(std::string_view key) const {
  auto it = index_.find(std::string(key));
  if (it == index_.end() || it->second.field == kRejected) return nullptr;
  return &fields_[it->second.field];
}

const YamlNode* YamlMap::Get(std::string_view key) const {
  const YamlField* field = Find(key);
  return field ? field->value : nullptr;
}

YamlChecker::YamlChecker(std::string file, std::vector<Diagnostic>* out, std::size_t max_visits)
    : file_(std::move(file)), out_(out), visits_left_(max_visits) {}

void YamlChecker::Error(Location at, std::string message) {
  // Past the budget the walk is cut short: what it would report now is noise.
  if (visits_left_ == 0) return;
  out_->push_back(Diagnostic{file_, at, false, std::move(message)});
}

void YamlChecker::Warning(Location at, std::string message) {
  if (visits_left_ == 0) return;
  out_->push_back(Diagnostic{file_, at, true, std::move(message)});
}

bool YamlChecker::Visit(const YamlNode& node) {
  if (visits_left_ == 0) return false;
  if (visits_left_ == 1) {
    Error(node.location,
          "the pipeline is too large to check: too many YAML nodes (each use of an alias "
          "counts)");
    visits_left_ = 0;
    return false;
  }
  --visits_left_;
  return true;
}

bool YamlChecker::Expect(const YamlNode& node, YamlNode::Kind kind, std::string_view what) {
  if (node.kind == kind) return true;
  const char* expected = kind == YamlNode::Kind::kMap    ? "a map"
                         : kind == YamlNode::Kind::kList ? "a list"
                                                         : "a string";
  Error(node.location, std::string(what) + " must be " + expected + ", got " + DescribeYaml(node));
  return false;
}

YamlMap YamlChecker::Map(const YamlNode& node, std::string_view where,
                         const std::vector<std::string_view>& known, YamlKeys keys) {
  YamlMap map;
  AddPairs(node, where, known, keys, 0, &map);
  return map;
}

// Explicit pairs first, then merged ones: YAML's merge key lets a map's own
// keys override what it merges, and earlier merge sources win.
void YamlChecker::AddPairs(const YamlNode& node, std::string_view where,
                           const std::vector<std::string_view>& known, YamlKeys keys,
                           int merge_depth, YamlMap* map) {
  std::vector<const YamlNode*> merges;
  for (const auto& [key, value] : node.pairs()) {
    if (!Visit(*key)) return;
    if (IsMergeKey(*key))
      merges.push_back(value);
    else
      AddPair(*key, *value, where, known, keys, merge_depth > 0, map);
  }
  for (const YamlNode* source : merges) Merge(*source, where, known, keys, merge_depth, map);
}

void YamlChecker::Merge(const YamlNode& source, std::string_view where,
                        const std::vector<std::string_view>& known, YamlKeys keys, int merge_depth,
                        YamlMap* map) {
  if (merge_depth >= kMaxMergeDepth) {
    Error(source.location, "merge keys ('<<') nested too deeply");
    return;
  }
  if (source.kind != YamlNode::Kind::kMap && source.kind != YamlNode::Kind::kList) {
    Error(source.location,
          "'<<' (a merge key) must be a map or a list of maps, got " + DescribeYaml(source));
    return;
  }
  // Aliases share their content, and so its address: a map or list merged
  // twice, however it is reached, adds nothing the second time. This keeps
  // nested merges linear ("billion laughs" made of merge keys).
  const void* content = source.kind == YamlNode::Kind::kMap
                            ? static_cast<const void*>(&source.pairs())
                            : static_cast<const void*>(&source.items());
  if (!map->merged_.insert(content).second) return;
  if (source.kind == YamlNode::Kind::kMap) {
    AddPairs(source, where, known, keys, merge_depth + 1, map);
    return;
  }
  for (const YamlNode* item : source.items()) {
    if (!Visit(*item)) return;
    if (Expect(*item, YamlNode::Kind::kMap, "each entry of '<<'"))
      Merge(*item, where, known, keys, merge_depth, map);  // one level with its list
  }
}

void YamlChecker::AddPair(const YamlNode& key, const YamlNode& value, std::string_view where,
                          const std::vector<std::string_view>& known, YamlKeys keys, bool merged,
                          YamlMap* map) {
  if (key.kind != YamlNode::Kind::kScalar) {
    Error(key.location, "keys must be strings, got " + DescribeYaml(key));
    return;
  }
  auto [entry, fresh] =
      map->index_.try_emplace(key.value(), YamlMap::Entry{&key, YamlMap::kRejected});
  if (!fresh) {
    // A merged key that the map already has is overridden, not repeated.
    if (!merged)
      Error(key.location, "duplicate key " + Quote(key.value()) + " (first at line " +
                              std::to_string(entry->second.key_node->location.line) + ")");
    return;
  }
  if (keys == YamlKeys::kKnownAndHidden && key.value().substr(0, 1) == ".") return;
  if (keys != YamlKeys::kAny && std::find(known.begin(), known.end(), key.value()) == known.end()) {
    Error(key.location, "unknown key " + Quote(key.value()) + " " + std::string(where) +
                            DidYouMean(key.value(), known));
    return;
  }
  entry->second.field = map->fields_.size();
  map->fields_.push_back(YamlField{key.value(), &key, &value});
}

bool YamlChecker::Items(const YamlNode& node, std::string_view what, bool single_ok,
                        std::vector<const YamlNode*>* out) {
  if (single_ok && node.kind == YamlNode::Kind::kScalar) {
    out->push_back(&node);
    return true;
  }
  if (node.kind != YamlNode::Kind::kList) {
    Error(node.location, std::string(what) + " must be a list" + (single_ok ? " or a string" : "") +
                             ", got " + DescribeYaml(node));
    return false;
  }
  for (const YamlNode* item : node.items()) {
    if (!Visit(*item)) return false;
    out->push_back(item);
  }
  return true;
}

bool YamlChecker::String(const YamlNode& node, std::string_view what, std::string* out) {
  if (node.kind != YamlNode::Kind::kScalar) {
    Error(node.location, std::string(what) + " must be a string, got " + DescribeYaml(node));
    return false;
  }
  *out = node.value();
  return true;
}

bool YamlChecker::Int(const YamlNode& node, std::string_view what, long long min, long long max,
                      int* out) {
  if (node.kind != YamlNode::Kind::kScalar || !node.plain || !IsInteger(node.value())) {
    Error(node.location, std::string(what) + " must be an integer, got " + DescribeYaml(node));
    return false;
  }
  errno = 0;
  long long value = std::strtoll(node.value().c_str(), nullptr, 10);
  if (errno == ERANGE || value < min || value > max) {
    std::string range = max == kNoMax
                            ? "at least " + std::to_string(min)
                            : "between " + std::to_string(min) + " and " + std::to_string(max);
    Error(node.location,
          std::string(what) + " must be " + range + ", got " + Shorten(node.value()));
    return false;
  }
  *out = static_cast<int>(value);
  return true;
}

bool YamlChecker::Bool(const YamlNode& node, std::string_view what, bool* out) {
  if (node.kind != YamlNode::Kind::kScalar || !node.plain || !IsBoolean(node.value())) {
    Error(node.location, std::string(what) + " must be true or false, got " + DescribeYaml(node));
    return false;
  }
  *out = node.value()[0] == 't' || node.value()[0] == 'T';
  return true;
}

bool YamlChecker::Scalar(const YamlNode& node, std::string_view what, std::string_view rule,
                         const std::function<bool(const std::string&)>& accept) {
  if (node.kind == YamlNode::Kind::kScalar && accept(node.value())) return true;
  Error(node.location, std::string(what) + " must be " + std::string(rule) + ", got " +
                           DescribeYaml(node));
  return false;
}

std::string DescribeYaml(const YamlNode& node) {
  switch (node.kind) {
    case YamlNode::Kind::kNull:
      return node.value().empty() ? "nothing" : "null";
    case YamlNode::Kind::kList:
      return "a list";
    case YamlNode::Kind::kMap:
      return "a map";
    case YamlNode::Kind::kScalar:
      break;
  }
  if (!node.plain) return "a string " + Quote(node.value());
  if (IsInteger(node.value())) return "an integer " + Shorten(node.value());
  if (IsBoolean(node.value())) return "a boolean " + node.value();
  if (IsNumber(node.value())) return "a number " + node.value();
  return "a string " + Quote(node.value());
}

std::string Quote(std::string_view text) {
  std::size_t max = 60;
  // Never cut a UTF-8 sequence in two.
  while (max < text.size() && max > 0 && (static_cast<unsigned char>(text[max]) & 0xC0) == 0x80)
    --max;
  std::string out = "'";
  for (std::size_t i = 0; i < text.size() && i < max; ++i) {
    if (text[i] == '\n')
      out += "\\n";
    else if (text[i] == '\r')
      out += "\\r";
    else if (text[i] == '\t')
      out += "\\t";
    else
      out += text[i];
  }
  return out + (text.size() > max ? "...'" : "'");
}

std::string DidYouMean(std::string_view word, const std::vector<std::string_view>& candidates) {
  std::string_view best;
  std::size_t best_distance = 3;
  for (std::string_view candidate : candidates) {
    // Cheap bound first: a key of any length may arrive here.
    std::size_t gap = word.size() > candidate.size() ? word.size() - candidate.size()
                                                     : candidate.size() - word.size();
    if (gap >= best_distance) continue;
    std::size_t distance = EditDistance(word, candidate);
    // A one-letter key is not a typo of a two-letter one.
    if (distance < best_distance && distance < word.size()) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best.empty() ? "" : "; did you mean " + Quote(best) + "?";
}

bool TidyDiagnostics(std::vector<Diagnostic>* diagnostics, std::size_t first) {
  auto begin = diagnostics->begin() + static_cast<std::ptrdiff_t>(first);
  std::stable_sort(begin, diagnostics->end(), [](const Diagnostic& a, const Diagnostic& b) {
    return std::tie(a.location.line, a.location.column) <
           std::tie(b.location.line, b.location.column);
  });
  std::set<std::tuple<int, int, bool, std::string>> seen;
  auto end = std::remove_if(begin, diagnostics->end(), [&](const Diagnostic& d) {
    return !seen.emplace(d.location.line, d.location.column, d.warning, d.message).second;
  });
  diagnostics->erase(end, diagnostics->end());
  return std::none_of(diagnostics->begin() + static_cast<std::ptrdiff_t>(first), diagnostics->end(),
                      [](const Diagnostic& d) { return !d.warning; });
}

}  // namespace ladle::runner
