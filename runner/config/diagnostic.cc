#include "runner/config/diagnostic.h"

namespace ladle::runner {

std::string Diagnostic::ToString() const {
  std::string where = file;
  if (location.line > 0)
    where += ":" + std::to_string(location.line) + ":" + std::to_string(location.column);
  return where + ": " + (warning ? "warning: " : "") + message;
}

}  // namespace ladle::runner
