// YamlDocument: one YAML document as a small immutable tree with 1-based
// positions, built from yaml-cpp's event parser.
//
// Why not YAML::Node: yaml-cpp 0.7 hides duplicate map keys (jbeder/yaml-cpp
// issue 826), gives no position for an empty value, and lets a naive walk of
// aliases go exponential. Here every map keeps all its pairs as written
// (duplicates included) so the caller can report them, the input is checked
// before yaml-cpp sees it (size, NUL bytes, UTF-8, control characters), and
// nesting depth, node count and the size with aliases expanded are bounded
// while parsing, before any reader copies a value out. Never throws.
#ifndef LADLE_RUNNER_CONFIG_YAML_TREE_H_
#define LADLE_RUNNER_CONFIG_YAML_TREE_H_

#include <cstddef>
#include <deque>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runner/config/diagnostic.h"

namespace ladle::runner {

// One node. An alias is a node of its own (its location is where the alias
// is written) whose content is the anchored node's.
class YamlNode {
 public:
  enum class Kind { kNull, kScalar, kList, kMap };
  using Pair = std::pair<const YamlNode*, const YamlNode*>;

  Kind kind = Kind::kNull;
  Location location;
  // A plain (unquoted, untagged) scalar: only these can be integers,
  // booleans or the merge key "<<"; `"3"` is a string.
  bool plain = true;

  const std::string& value() const {
    return content().value_;
  }  // kScalar; kNull: "~", "null" or ""
  const std::vector<const YamlNode*>& items() const { return content().items_; }  // kList
  const std::vector<Pair>& pairs() const { return content().pairs_; }  // kMap, as written

 private:
  friend class YamlTreeBuilder;
  const YamlNode& content() const { return alias_of_ ? *alias_of_ : *this; }

  std::string value_;
  std::vector<const YamlNode*> items_;
  std::vector<Pair> pairs_;
  const YamlNode* alias_of_ = nullptr;
  // Bytes of scalar text in this node with every alias below it expanded.
  std::size_t expanded_bytes_ = 0;
};

struct YamlLimits {
  std::size_t max_bytes = 10 * 1024 * 1024;
  int max_depth = 64;
  std::size_t max_nodes = 100000;  // nodes built, alias uses included
  // Bytes of scalar text (keys and values) in the document with every alias
  // expanded: an alias costs its anchor's whole size each time it is used,
  // so a 1 MB file cannot make a reader copy out more than this.
  std::size_t max_expanded_bytes = 10 * 1024 * 1024;
};

// A parse failure; location.line is 0 when it concerns the whole input.
struct YamlError {
  Location location;
  std::string message;
  // The first document was read whole and is usable; the error is about
  // what follows it (a second document).
  bool document_complete = false;
};

// Owns the nodes of one document. Aliases share their anchor's content, so
// the tree is a DAG: walkers must bound their work.
class YamlDocument {
 public:
  YamlDocument() = default;
  YamlDocument(const YamlDocument&) = delete;
  YamlDocument& operator=(const YamlDocument&) = delete;

  // nullptr when the input holds no document (empty, or only comments).
  const YamlNode* root() const { return root_; }

 private:
  friend class YamlTreeBuilder;
  std::deque<YamlNode> nodes_;  // a deque never moves what it holds
  const YamlNode* root_ = nullptr;
};

// Parses `text` (one document; a second one is an error) into `doc`.
// Returns false and fills `error` on bad input.
bool ParseYaml(std::string_view text, const YamlLimits& limits, YamlDocument* doc,
               YamlError* error);

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_CONFIG_YAML_TREE_H_
