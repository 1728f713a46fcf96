#include "runner/config/toggles_file.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <tuple>

#include <nlohmann/json.hpp>

#include "runner/config/yaml_check.h"
#include "runner/config/yaml_file.h"
#include "runner/config/yaml_tree.h"
#include "toggles/eval/model.h"

namespace ladle::runner {
namespace {

using Kind = YamlNode::Kind;
using Keys = std::vector<std::string_view>;
using json = nlohmann::json;
using toggles::SyncEntry;
using toggles::ToggleFields;
using toggles::ToggleType;

// A second document is an error that stops the reading: the first one is
// not read either.
constexpr YamlFileRules kRules = [] {
  YamlFileRules rules;
  rules.empty_message =
      "the file is empty; list toggles as '- key: NAME', or write 'toggles: []' for none";
  rules.read_before_second_document = false;
  return rules;
}();

const Keys kTopKeys = {"toggles"};
const Keys kToggleKeys = {"key", "type", "description", "variants"};
const Keys kVariantKeys = {"name", "weight", "value"};

const Keys& TypeNames() {
  static const Keys kTypes = [] {
    Keys names;
    for (ToggleType t : {ToggleType::kRelease, ToggleType::kExperiment, ToggleType::kOps,
                         ToggleType::kKillSwitch, ToggleType::kPermission, ToggleType::kDarkLaunch})
      names.push_back(toggles::ToString(t));
    return names;
  }();
  return kTypes;
}

std::string Join(const Keys& words) {
  std::string out;
  for (std::string_view w : words) out += (out.empty() ? "" : ", ") + std::string(w);
  return out;
}

std::string Ordinal(std::size_t index) { return "#" + std::to_string(index + 1); }

// YAML's core schema for plain scalars, as far as JSON can hold it.
bool IsBoolean(const std::string& s, bool* value) {
  for (const char* word : {"true", "True", "TRUE", "false", "False", "FALSE"}) {
    if (s == word) {
      *value = word[0] == 't' || word[0] == 'T';
      return true;
    }
  }
  return false;
}

bool IsInteger(const std::string& s, int64_t* value) {
  std::size_t i = !s.empty() && (s[0] == '-' || s[0] == '+') ? 1 : 0;
  if (i == s.size() || s.find_first_not_of("0123456789", i) != std::string::npos) return false;
  errno = 0;
  long long v = std::strtoll(s.c_str(), nullptr, 10);
  *value = v;
  return errno != ERANGE;
}

bool IsFloat(const std::string& s, double* value) {
  if (s.empty() || s.find_first_not_of("0123456789+-.eE") != std::string::npos ||
      s.find_first_of("0123456789") == std::string::npos)
    return false;
  char* end = nullptr;
  *value = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

// The key a toggle map gives itself, unchecked, to label messages about it.
std::string PeekKey(const YamlNode& node) {
  for (const auto& [key, value] : node.pairs())
    if (key->kind == Kind::kScalar && key->value() == "key" && value->kind == Kind::kScalar &&
        toggles::ValidateKey(value->value()).ok())
      return value->value();
  return "";
}

// Reads a toggles.yml document into sync entries; reading goes on after a
// problem, so that one pass reports them all.
class TogglesReader {
 public:
  explicit TogglesReader(YamlChecker* checker) : c_(*checker) {}

  void Read(const YamlNode& root, std::vector<SyncEntry>* entries);

 private:
  void ReadToggle(const YamlNode& node, std::size_t index, std::vector<SyncEntry>* entries);
  void ReadKey(const YamlNode& node, std::string* key);
  void ReadType(const YamlNode& node, ToggleFields* fields);
  void ReadVariants(const YamlNode& node, const std::string& label, ToggleFields* fields);
  bool ReadVariant(const YamlNode& node, std::size_t index, const std::string& label, json* out);
  void CheckVariants(const json& variants, const std::string& label, ToggleFields* fields);
  bool ToJson(const YamlNode& node, json* out);

  YamlChecker& c_;
  std::map<std::string, int> first_line_;  // toggle key -> the line it was first declared on
  // Where each part of the variants being read is ("variants[1].weight"),
  // to place the model's messages, which name the field by that path.
  std::map<std::string, Location> places_;
};

void TogglesReader::Read(const YamlNode& root, std::vector<SyncEntry>* entries) {
  const YamlNode* list = &root;
  if (root.kind == Kind::kMap) {
    YamlMap m = c_.Map(root, "at the top level", kTopKeys);
    list = m.Get("toggles");
    if (list == nullptr) {
      c_.Error(root.location, "missing required key 'toggles' at the top level");
      return;
    }
  } else if (root.kind != Kind::kList) {
    c_.Error(root.location,
             "the top level must be a list of toggles (or a map with 'toggles'), got " +
                 DescribeYaml(root));
    return;
  }
  std::vector<const YamlNode*> items;
  if (!c_.Items(*list, "'toggles'", false, &items)) return;
  for (std::size_t i = 0; i < items.size(); ++i) ReadToggle(*items[i], i, entries);
}

void TogglesReader::ReadToggle(const YamlNode& node, std::size_t index,
                               std::vector<SyncEntry>* entries) {
  std::string peeked = PeekKey(node);
  std::string label = "toggle " + (peeked.empty() ? Ordinal(index) : Quote(peeked));
  if (!c_.Expect(node, Kind::kMap, label)) return;
  YamlMap m = c_.Map(node, "in " + label, kToggleKeys);
  SyncEntry entry;
  if (const YamlNode* v = m.Get("key"))
    ReadKey(*v, &entry.key);
  else
    c_.Error(node.location, "missing required key 'key' in " + label);
  if (const YamlNode* v = m.Get("type")) ReadType(*v, &entry.fields);
  if (const YamlNode* v = m.Get("description")) {
    std::string description;
    if (c_.String(*v, "'description'", &description)) entry.fields.description = description;
  }
  if (const YamlNode* v = m.Get("variants")) ReadVariants(*v, label, &entry.fields);
  entries->push_back(std::move(entry));
}

void TogglesReader::ReadKey(const YamlNode& node, std::string* key) {
  if (!c_.Scalar(node, "'key'", "letters, digits, '.', '_' and '-', up to 128 characters",
                 [](const std::string& s) { return toggles::ValidateKey(s).ok(); }))
    return;
  auto [first, fresh] = first_line_.emplace(node.value(), node.location.line);
  if (!fresh) {
    c_.Error(node.location, "duplicate toggle key " + Quote(node.value()) + " (first at line " +
                                std::to_string(first->second) + ")");
    return;
  }
  *key = node.value();
}

void TogglesReader::ReadType(const YamlNode& node, ToggleFields* fields) {
  ToggleType type;
  if (node.kind == Kind::kScalar && toggles::ParseToggleType(node.value(), &type).ok()) {
    fields->type = type;
    return;
  }
  std::string hint = node.kind == Kind::kScalar ? DidYouMean(node.value(), TypeNames()) : "";
  c_.Error(node.location,
           "'type' must be one of " + Join(TypeNames()) + ", got " + DescribeYaml(node) + hint);
}

void TogglesReader::ReadVariants(const YamlNode& node, const std::string& label,
                                 ToggleFields* fields) {
  std::vector<const YamlNode*> items;
  if (!c_.Items(node, "'variants'", false, &items)) return;
  places_ = {{"variants", node.location}};
  json variants = json::array();
  bool ok = true;
  for (std::size_t i = 0; i < items.size(); ++i) {
    json variant;
    ok = ReadVariant(*items[i], i, label, &variant) && ok;
    variants.push_back(std::move(variant));
  }
  // The model checks the rest (names, value types, weights that sum to
  // 1000) so that the file and the API agree; only once each entry is whole.
  if (ok) CheckVariants(variants, label, fields);
}

bool TogglesReader::ReadVariant(const YamlNode& node, std::size_t index, const std::string& label,
                                json* out) {
  std::string what = "variant " + Ordinal(index) + " of " + label;
  if (!c_.Expect(node, Kind::kMap, what)) return false;
  std::string path = "variants[" + std::to_string(index) + "]";
  places_[path] = node.location;
  YamlMap m = c_.Map(node, "in " + what, kVariantKeys);
  bool ok = true;
  for (std::string_view key : kVariantKeys) {
    if (!m.Get(key)) {
      c_.Error(node.location, "missing required key '" + std::string(key) + "' in " + what);
      ok = false;
    }
  }
  *out = json::object();
  std::string name;
  int weight = 0;
  json value;
  if (const YamlNode* v = m.Get("name")) {
    places_[path + ".name"] = v->location;
    ok = c_.String(*v, "'name'", &name) && ok;
    (*out)["name"] = name;
  }
  if (const YamlNode* v = m.Get("weight")) {
    places_[path + ".weight"] = v->location;
    ok = c_.Int(*v, "'weight'", 0, toggles::kTotalVariantWeight, &weight) && ok;
    (*out)["weight"] = weight;
  }
  if (const YamlNode* v = m.Get("value")) {
    places_[path + ".value"] = v->location;
    ok = ToJson(*v, &value) && ok;
    (*out)["value"] = std::move(value);
  }
  return ok;
}

void TogglesReader::CheckVariants(const json& variants, const std::string& label,
                                  ToggleFields* fields) {
  std::vector<toggles::Variant> parsed;
  Status s = toggles::ParseVariants(variants, &parsed);
  if (s.ok()) {
    fields->variants = std::move(parsed);
    return;
  }
  // "variants[1].name: duplicate variant ..." -> the most precise place known.
  std::string path = s.message().substr(0, s.message().find(": "));
  Location at = places_["variants"];
  for (std::string p = path;;) {
    auto it = places_.find(p);
    if (it != places_.end()) {
      at = it->second;
      break;
    }
    std::size_t cut = p.find_last_of(".[");
    if (cut == std::string::npos) break;
    p.resize(cut);
  }
  c_.Error(at, label + ": " + s.message());
}

// A variant's value as JSON: plain scalars by YAML's core schema (true,
// 12, 1.5, null), quoted ones as strings, maps as objects.
bool TogglesReader::ToJson(const YamlNode& node, json* out) {
  if (!c_.Visit(node)) return false;
  switch (node.kind) {
    case Kind::kNull:
      *out = nullptr;
      return true;
    case Kind::kScalar: {
      const std::string& s = node.value();
      bool b;
      int64_t i;
      double d;
      if (!node.plain)
        *out = s;
      else if (IsBoolean(s, &b))
        *out = b;
      else if (IsInteger(s, &i))
        *out = i;
      else if (IsFloat(s, &d))
        *out = d;
      else
        *out = s;
      return true;
    }
    case Kind::kList: {
      *out = json::array();
      for (const YamlNode* item : node.items()) {
        json j;
        if (!ToJson(*item, &j)) return false;
        out->push_back(std::move(j));
      }
      return true;
    }
    case Kind::kMap: {
      *out = json::object();
      YamlMap m = c_.Map(node, "", {}, YamlKeys::kAny);
      for (const YamlField& f : m.fields()) {
        json j;
        if (!ToJson(*f.value, &j)) return false;
        (*out)[f.key] = std::move(j);
      }
      return true;
    }
  }
  return false;
}

// Empties *entries and returns what fills them in from the file's document.
YamlFileReader EntriesFiller(std::vector<SyncEntry>* entries) {
  entries->clear();
  return [entries](const YamlNode& root, YamlChecker* checker) {
    TogglesReader(checker).Read(root, entries);
  };
}

// The entries are kept only when the file has no error: `valid`.
bool KeepIfValid(bool valid, std::vector<SyncEntry>* entries) {
  if (!valid) entries->clear();
  return valid;
}

}  // namespace

bool ParseTogglesFile(std::string_view text, const std::string& filename,
                      std::vector<SyncEntry>* entries, std::vector<Diagnostic>* diagnostics) {
  return KeepIfValid(
      ParseYamlFile(text, filename, kRules, EntriesFiller(entries), diagnostics), entries);
}

bool LoadTogglesFile(const std::string& path, std::vector<SyncEntry>* entries,
                     std::vector<Diagnostic>* diagnostics) {
  return KeepIfValid(LoadYamlFile(path, kRules, EntriesFiller(entries), diagnostics), entries);
}

}  // namespace ladle::runner
