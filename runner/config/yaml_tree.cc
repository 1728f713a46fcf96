#include "runner/config/yaml_tree.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <sstream>
#include <unordered_map>

namespace ladle::runner {
namespace {

// Thrown by the builder to abandon a parse; caught in ParseYaml, never
// escapes this file.
struct YamlStop {
  YamlError error;
};

std::string Hex(unsigned char byte) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02X", byte);
  return buf;
}

// Line and byte column (both 1-based) of `pos`, as yaml-cpp counts them.
Location LocationAt(std::string_view text, std::size_t pos) {
  Location loc{1, 1};
  for (std::size_t i = 0; i < pos && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++loc.line;
      loc.column = 1;
    } else {
      ++loc.column;
    }
  }
  return loc;
}

// Length of the valid UTF-8 sequence starting at text[i], 0 if invalid
// (overlong forms, surrogates and code points past U+10FFFF included).
std::size_t Utf8Length(std::string_view text, std::size_t i) {
  auto byte = [&](std::size_t k) -> unsigned {
    return i + k < text.size() ? static_cast<unsigned char>(text[i + k]) : 0u;
  };
  unsigned lead = byte(0);
  if (lead < 0x80) return 1;
  unsigned lo = 0x80, hi = 0xBF;
  std::size_t length;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) lo = 0xA0;
    if (lead == 0xED) hi = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) lo = 0x90;
    if (lead == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (byte(1) < lo || byte(1) > hi) return 0;
  for (std::size_t k = 2; k < length; ++k)
    if (byte(k) < 0x80 || byte(k) > 0xBF) return 0;
  return length;
}

// The problem with byte text[i], or "" when it is acceptable YAML text.
std::string BadByte(std::string_view text, std::size_t i, std::size_t* length) {
  unsigned char c = static_cast<unsigned char>(text[i]);
  *length = Utf8Length(text, i);
  if (c == 0) return "the file contains a NUL byte; is it a binary file?";
  if (*length == 0) return "the file is not UTF-8 text (byte " + Hex(c) + "); is it a binary file?";
  // YAML allows no C0 control characters but tab and line breaks.
  if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F)
    return "the file contains a control character (" + Hex(c) + "); is it a binary file?";
  return "";
}

// "10 MB" for whole megabytes (the limits as documented), else "N bytes".
std::string SizeText(std::size_t bytes) {
  if (bytes >= (1u << 20) && bytes % (1u << 20) == 0) return std::to_string(bytes >> 20) + " MB";
  return std::to_string(bytes) + " bytes";
}

// Rejects what yaml-cpp should never see: oversized or binary input.
bool CheckInput(std::string_view text, const YamlLimits& limits, YamlError* error) {
  if (text.size() > limits.max_bytes) {
    error->location = Location{};
    error->message = "the file is too large: " + std::to_string(text.size()) + " bytes, over the " +
                     std::to_string(limits.max_bytes >> 20) + " MB limit";
    return false;
  }
  for (std::size_t i = 0, length = 1; i < text.size(); i += length) {
    std::string problem = BadByte(text, i, &length);
    if (!problem.empty()) {
      *error = YamlError{LocationAt(text, i), problem};
      return false;
    }
  }
  return true;
}

std::string_view LineAt(std::string_view text, int line) {
  std::size_t start = 0;
  for (int n = 1; n < line; ++n) {
    start = text.find('\n', start);
    if (start == std::string_view::npos) return {};
    ++start;
  }
  std::size_t end = text.find('\n', start);
  return text.substr(start, end == std::string_view::npos ? end : end - start);
}

// 1-based column of a tab in the indentation of a line, 0 if none. Unless
// `blank_ok`, only lines with content count (not blank, not a comment).
int IndentTab(std::string_view line, bool blank_ok) {
  std::size_t content = std::min(line.find_first_not_of(" \t\r"), line.size());
  if (!blank_ok && (content == line.size() || line[content] == '#')) return 0;
  std::size_t tab = line.substr(0, content).find('\t');
  return tab == std::string_view::npos ? 0 : static_cast<int>(tab) + 1;
}

// yaml-cpp reports a tab in the indentation as "illegal map value" or
// "illegal block entry" on that line or the next, or, on a blank line, as
// "illegal tab when looking for indentation"; name the real cause.
YamlError Translate(std::string_view text, const YAML::Exception& e) {
  if (e.mark.line < 0) return YamlError{Location{}, "YAML syntax error: " + e.msg};
  Location at{e.mark.line + 1, e.mark.column + 1};
  bool tab_error = e.msg == YAML::ErrorMsg::TAB_IN_INDENTATION;
  for (int line = at.line; line >= 1 && line >= at.line - 1; --line) {
    if (int column = IndentTab(LineAt(text, line), tab_error))
      return YamlError{Location{line, column},
                       "a tab indents this line; YAML indents with spaces only"};
  }
  return YamlError{at, "YAML syntax error: " + e.msg};
}

}  // namespace

// Turns yaml-cpp events into YamlNodes, enforcing the limits as it goes.
class YamlTreeBuilder : public YAML::EventHandler {
 public:
  YamlTreeBuilder(std::string_view text, const YamlLimits& limits, YamlDocument* doc)
      : text_(text), limits_(limits), doc_(doc) {}

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++documents_ == 1) return;
    YamlError error{Location{mark.line + 1, mark.column + 1},
                    "a second YAML document starts here; a pipeline file holds exactly one", true};
    throw YamlStop{error};
  }
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    YamlNode* node = New(mark, YamlNode::Kind::kNull);
    node->value_ = ExplicitNull(mark);
    if (node->value_.empty()) node->location = EmptyLocation(mark);
    Register(anchor, node);
    Add(node);
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = anchors_.find(anchor);
    // yaml-cpp registers an anchor before its content, so `&a [*a]` parses:
    // a cycle that would make every walk infinite.
    if (it == anchors_.end()) Stop(mark, "this alias refers to a node that contains it");
    const YamlNode* target = it->second;
    // Checked before the alias exists: past the budget, no reader ever gets
    // to copy the expansion out (docs/pipeline.md "Bad input").
    AddBytes(mark, target->expanded_bytes_, true);
    YamlNode* node = New(mark, target->kind);
    node->plain = target->plain;
    node->alias_of_ = target;
    node->expanded_bytes_ = target->expanded_bytes_;
    Add(node);
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    YamlNode* node = New(mark, YamlNode::Kind::kScalar);
    node->plain = IsPlain(mark, tag);
    AddBytes(mark, value.size(), false);
    node->value_ = value;
    node->expanded_bytes_ = value.size();
    Register(anchor, node);
    Add(node);
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    Open(mark, tag, anchor, YamlNode::Kind::kList);
  }
  void OnSequenceEnd() override { Close(); }

  void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    Open(mark, tag, anchor, YamlNode::Kind::kMap);
  }
  void OnMapEnd() override { Close(); }

 private:
  struct Frame {
    YamlNode* node;
    YAML::anchor_t anchor;
    const YamlNode* key;     // a map's key waiting for its value
    std::size_t bytes_from;  // bytes_ when the node opened
  };

  [[noreturn]] void Stop(const YAML::Mark& mark, std::string message) {
    throw YamlStop{YamlError{Location{mark.line + 1, mark.column + 1}, std::move(message)}};
  }

  void Count(const YAML::Mark& mark) {
    if (++count_ > limits_.max_nodes)
      Stop(mark, "more than " + std::to_string(limits_.max_nodes) +
                     " YAML nodes; this is not a pipeline file");
  }

  // Counts `bytes` more of the document as expanded; stops past the limit.
  void AddBytes(const YAML::Mark& mark, std::size_t bytes, bool alias) {
    // No overflow: bytes_ never passes the limit, and bytes is at most the
    // limit (an anchor) or the file's size (a scalar).
    bytes_ += bytes;
    if (bytes_ <= limits_.max_expanded_bytes) return;
    std::string message = "with its aliases expanded, the document is larger than " +
                          SizeText(limits_.max_expanded_bytes);
    if (alias)
      message += " (this alias repeats " + SizeText(bytes) +
                 "; each use of an alias counts its anchor's whole size)";
    Stop(mark, message);
  }

  YamlNode* New(const YAML::Mark& mark, YamlNode::Kind kind) {
    Count(mark);
    YamlNode& node = doc_->nodes_.emplace_back();
    node.kind = kind;
    node.location = Location{mark.line + 1, mark.column + 1};
    return &node;
  }

  // Core schema tags are accepted; application tags (GitLab's !reference)
  // have no meaning here and would be silently dropped otherwise.
  void CheckTag(const YAML::Mark& mark, const std::string& tag) {
    if (tag == "?" || tag == "!" || tag.compare(0, kCoreTag.size(), kCoreTag) == 0) return;
    Stop(mark, "unsupported YAML tag '" + tag + "'");
  }

  // "?" is a plain scalar; "!" a quoted or block one; !!str forces a string.
  bool IsPlain(const YAML::Mark& mark, const std::string& tag) {
    CheckTag(mark, tag);
    return tag == "?" || (tag != "!" && tag != std::string(kCoreTag) + "str");
  }

  static constexpr std::string_view kCoreTag = "tag:yaml.org,2002:";

  // "~" or "null" as written, "" for an empty value.
  std::string ExplicitNull(const YAML::Mark& mark) const {
    std::size_t pos = mark.pos < 0 ? 0 : static_cast<std::size_t>(mark.pos);
    std::string_view rest = text_.substr(std::min(pos, text_.size()));
    for (std::string_view word : {"~", "null", "Null", "NULL"}) {
      // yaml-cpp marks the next token for an empty value: "nullable: 1"
      // on the next line must not count as "null".
      if (rest.substr(0, word.size()) != word) continue;
      if (rest.size() == word.size() ||
          std::string_view(" \t\r\n,]}").find(rest[word.size()]) != std::string_view::npos)
        return std::string(word);
    }
    return "";
  }

  // An empty value has no text: yaml-cpp marks the next token, which may be
  // lines below. Point at the key it belongs to, or at the line of the text
  // before it (a list's "-").
  Location EmptyLocation(const YAML::Mark& mark) {
    if (!stack_.empty() && stack_.back().key) return stack_.back().key->location;
    std::size_t pos = std::min(mark.pos < 0 ? 0 : static_cast<std::size_t>(mark.pos), text_.size());
    while (pos > 0 && std::string_view(" \t\r\n").find(text_[pos - 1]) != std::string_view::npos)
      --pos;
    if (pos > 0) --pos;
    if (line_starts_.empty()) IndexLines();
    auto line = std::upper_bound(line_starts_.begin(), line_starts_.end(), pos) - 1;
    // The line's first character, unless the indentation is absurdly long:
    // this runs once per empty value and must stay cheap.
    std::size_t first = *line;
    while (first < pos && first - *line < 256 && (text_[first] == ' ' || text_[first] == '\t'))
      ++first;
    return Location{static_cast<int>(line - line_starts_.begin()) + 1,
                    static_cast<int>(first - *line) + 1};
  }

  void IndexLines() {
    line_starts_.push_back(0);
    for (std::size_t i = 0; i < text_.size(); ++i)
      if (text_[i] == '\n') line_starts_.push_back(i + 1);
  }

  void Open(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
            YamlNode::Kind kind) {
    CheckTag(mark, tag);
    if (static_cast<int>(stack_.size()) >= limits_.max_depth)
      Stop(mark, "nesting deeper than " + std::to_string(limits_.max_depth) + " levels");
    YamlNode* node = New(mark, kind);
    Add(node);
    stack_.push_back(Frame{node, anchor, nullptr, bytes_});
  }

  void Close() {
    Frame frame = stack_.back();
    stack_.pop_back();
    frame.node->expanded_bytes_ = bytes_ - frame.bytes_from;
    Register(frame.anchor, frame.node);  // only now may aliases use it
  }

  void Register(YAML::anchor_t anchor, const YamlNode* node) {
    if (anchor != YAML::NullAnchor) anchors_[anchor] = node;
  }

  void Add(const YamlNode* node) {
    if (stack_.empty()) {
      doc_->root_ = node;
      return;
    }
    Frame& parent = stack_.back();
    if (parent.node->kind == YamlNode::Kind::kList) {
      parent.node->items_.push_back(node);
    } else if (!parent.key) {
      parent.key = node;
    } else {
      parent.node->pairs_.emplace_back(parent.key, node);
      parent.key = nullptr;
    }
  }

  std::string_view text_;
  const YamlLimits& limits_;
  YamlDocument* doc_;
  std::vector<Frame> stack_;
  std::unordered_map<YAML::anchor_t, const YamlNode*> anchors_;  // completed nodes only
  std::vector<std::size_t> line_starts_;                         // built on first use
  std::size_t count_ = 0;
  std::size_t bytes_ = 0;  // scalar text so far, aliases expanded
  int documents_ = 0;
};

bool ParseYaml(std::string_view text, const YamlLimits& limits, YamlDocument* doc,
               YamlError* error) {
  // yaml-cpp skips a byte order mark without counting it; so do we, to agree
  // on columns.
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  if (!CheckInput(text, limits, error)) return false;
  std::istringstream in{std::string(text)};
  try {
    YAML::Parser parser(in);
    YamlTreeBuilder builder(text, limits, doc);
    while (parser.HandleNextDocument(builder)) {
    }
    return true;
  } catch (const YamlStop& stop) {
    *error = stop.error;
  } catch (const YAML::Exception& e) {
    *error = Translate(text, e);
  } catch (const std::exception& e) {  // std::bad_alloc and the like
    *error = YamlError{Location{}, std::string("cannot parse the file: ") + e.what()};
  }
  return false;
}

}  // namespace ladle::runner
