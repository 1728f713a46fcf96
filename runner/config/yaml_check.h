// YamlChecker: typed reading of a YamlDocument for a schema.
//
// Every reader reports what is wrong as a Diagnostic ("'retry' must be an
// integer, got a string 'abc'") and returns false, so a schema walk keeps
// going and reports every error in one pass. Maps are read with their
// duplicate and unknown keys reported and YAML merge keys ("<<") resolved.
// Aliases can make a document much bigger than its text: the checker counts
// every node it is asked to visit and stops the walk past a budget.
#ifndef LADLE_RUNNER_CONFIG_YAML_CHECK_H_
#define LADLE_RUNNER_CONFIG_YAML_CHECK_H_

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "runner/config/pipeline.h"
#include "runner/config/yaml_tree.h"

namespace ladle::runner {

struct YamlField {
  std::string key;
  const YamlNode* key_node;
  const YamlNode* value;
};

// The checked pairs of one map: each key once, in document order.
class YamlMap {
 public:
  const YamlNode* Get(std::string_view key) const;    // nullptr when absent
  const YamlField* Find(std::string_view key) const;  // nullptr when absent
  const std::vector<YamlField>& fields() const { return fields_; }

 private:
  friend class YamlChecker;
  static constexpr std::size_t kRejected = static_cast<std::size_t>(-1);
  struct Entry {
    const YamlNode* key_node;  // the first occurrence
    std::size_t field;         // index in fields_, or kRejected (unknown, hidden)
  };
  std::vector<YamlField> fields_;
  // Every key seen, so that a repeat costs a lookup: maps may be big, and
  // merge keys may bring the same keys again and again.
  std::unordered_map<std::string, Entry> index_;
  // The maps merged in so far (by content): merging one again adds nothing.
  std::unordered_set<const void*> merged_;
};

// Which keys a map may hold.
enum class YamlKeys {
  kKnown,           // only the listed ones
  kKnownAndHidden,  // also keys starting with '.', ignored (GitLab's templates for anchors)
  kAny,             // any (a map of variables)
};

class YamlChecker {
 public:
  static constexpr long long kNoMax = 2147483647;  // Int(): no upper bound but int's

  YamlChecker(std::string file, std::vector<Diagnostic>* out, std::size_t max_visits);

  void Error(Location at, std::string message);
  void Warning(Location at, std::string message);

  // Counts one node of the walk; false once the budget is spent (reported
  // once, at `node`).
  bool Visit(const YamlNode& node);

  // true when `node` is a `kind`; otherwise reports "WHAT must be a map,
  // got ...". `what` is the value's name as shown: "'gate'".
  bool Expect(const YamlNode& node, YamlNode::Kind kind, std::string_view what);

  // Reads a map's keys (REQUIRES: node is a map). `where` ends the
  // unknown-key message: "unknown key 'x' in step 'unit'".
  YamlMap Map(const YamlNode& node, std::string_view where,
              const std::vector<std::string_view>& known, YamlKeys keys = YamlKeys::kKnown);

  // The entries of a list, visited; a lone scalar counts as one entry when
  // `single_ok`. False (reported) for anything else.
  bool Items(const YamlNode& node, std::string_view what, bool single_ok,
             std::vector<const YamlNode*>* out);

  bool String(const YamlNode& node, std::string_view what, std::string* out);  // any scalar
  bool Int(const YamlNode& node, std::string_view what, long long min, long long max, int* out);
  bool Bool(const YamlNode& node, std::string_view what, bool* out);
  // A scalar that `accept` takes (it keeps what it needs of the value);
  // otherwise reports "WHAT must be RULE, got ...":
  //   Scalar(node, "'poll'", "a duration like 90s", [&](auto& s) { return Parse(s, &poll); })
  bool Scalar(const YamlNode& node, std::string_view what, std::string_view rule,
              const std::function<bool(const std::string&)>& accept);

 private:
  void AddPairs(const YamlNode& node, std::string_view where,
                const std::vector<std::string_view>& known, YamlKeys keys, int merge_depth,
                YamlMap* map);
  void AddPair(const YamlNode& key, const YamlNode& value, std::string_view where,
               const std::vector<std::string_view>& known, YamlKeys keys, bool merged,
               YamlMap* map);
  void Merge(const YamlNode& source, std::string_view where,
             const std::vector<std::string_view>& known, YamlKeys keys, int merge_depth,
             YamlMap* map);

  std::string file_;
  std::vector<Diagnostic>* out_;
  std::size_t visits_left_;
};

// "a string 'abc'", "an integer 3", "a boolean true", "a list", "null",
// "nothing" (an empty value): what a type error says was found.
std::string DescribeYaml(const YamlNode& node);

// 'text', cut short and with line breaks escaped, for messages.
std::string Quote(std::string_view text);

// Orders the diagnostics from index `first` on by position and drops
// repeats (a template merged into many places repeats its problems). True
// when none of them is an error.
bool TidyDiagnostics(std::vector<Diagnostic>* diagnostics, std::size_t first);

// "; did you mean 'X'?" for the candidate closest to `word` within edit
// distance 2, or "".
std::string DidYouMean(std::string_view word, const std::vector<std::string_view>& candidates);

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_CONFIG_YAML_CHECK_H_
