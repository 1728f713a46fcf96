// The steps every loader of a YAML file shares (pipelines, server.yml,
// toggles.yml): read the file within its size limit, parse one document
// into a YamlDocument, report what goes wrong as Diagnostics of the file,
// hand the root to the loader's schema reader, and tidy what it reported.
#ifndef LADLE_RUNNER_CONFIG_YAML_FILE_H_
#define LADLE_RUNNER_CONFIG_YAML_FILE_H_

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "runner/config/diagnostic.h"
#include "runner/config/yaml_check.h"
#include "runner/config/yaml_tree.h"

namespace ladle::runner {

// What differs between the loaders.
struct YamlFileRules {
  // Reported at 1:1 when the file holds no document or a null one; the
  // schema reader is then not called.
  std::string_view empty_message;
  // An empty file is a warning (the loader goes on with its defaults)
  // rather than an error.
  bool empty_is_warning = false;
  // When a second document follows the first, the error is reported and:
  // true, the first document is still read (more problems are reported in
  // one pass); false, reading stops there.
  bool read_before_second_document = true;
  YamlLimits limits;  // limits.max_bytes also bounds the file read
  std::size_t max_visits = 100000;  // the YamlChecker's budget
};

// Reads the schema from a document's root, reporting through the checker.
using YamlFileReader = std::function<void(const YamlNode& root, YamlChecker* checker)>;

// Parses `text`, the content of `filename`, and calls `read` with its root.
// Appends the diagnostics (parse error, empty file, what `read` reports,
// sorted and without repeats) to *diagnostics; true when none is an error.
bool ParseYamlFile(std::string_view text, const std::string& filename,
                   const YamlFileRules& rules, const YamlFileReader& read,
                   std::vector<Diagnostic>* diagnostics);

// Reads the file `path` (at most rules.limits.max_bytes) and parses it as
// ParseYamlFile does. A file that cannot be read is one diagnostic of `path`
// without a position ("cannot read: ...", "the file is too large: ...") and
// `read` is not called.
bool LoadYamlFile(const std::string& path, const YamlFileRules& rules,
                  const YamlFileReader& read, std::vector<Diagnostic>* diagnostics);

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_CONFIG_YAML_FILE_H_
