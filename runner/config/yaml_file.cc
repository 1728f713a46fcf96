#include "runner/config/yaml_file.h"

#include "runner/config/text_file.h"

namespace ladle::runner {

bool ParseYamlFile(std::string_view text, const std::string& filename,
                   const YamlFileRules& rules, const YamlFileReader& read,
                   std::vector<Diagnostic>* diagnostics) {
  std::size_t first = diagnostics->size();
  YamlDocument doc;
  YamlError error;
  bool parsed = ParseYaml(text, rules.limits, &doc, &error);
  if (!parsed) {
    diagnostics->push_back(Diagnostic{filename, error.location, false, error.message});
    if (!error.document_complete || !rules.read_before_second_document) return false;
  }
  const YamlNode* root = doc.root();
  bool empty = !root || root->kind == YamlNode::Kind::kNull;
  if (empty) {
    diagnostics->push_back(Diagnostic{filename, Location{1, 1}, rules.empty_is_warning,
                                      std::string(rules.empty_message)});
    // An empty file that is an error is reported as it is, not tidied.
    if (!rules.empty_is_warning) return false;
  } else {
    YamlChecker checker(filename, diagnostics, rules.max_visits);
    read(*root, &checker);
  }
  return TidyDiagnostics(diagnostics, first) && parsed;
}

bool LoadYamlFile(const std::string& path, const YamlFileRules& rules,
                  const YamlFileReader& read, std::vector<Diagnostic>* diagnostics) {
  std::string text, error;
  if (!ReadTextFile(path, rules.limits.max_bytes, &text, &error)) {
    diagnostics->push_back(Diagnostic{path, Location{}, false, error});
    return false;
  }
  return ParseYamlFile(text, path, rules, read, diagnostics);
}

}  // namespace ladle::runner
