#include "runner/pipeline.h"

namespace ladle::runner {

const Stage* Pipeline::FindStage(std::string_view name) const {
  for (const Stage& stage : stages)
    if (stage.name == name) return &stage;
  return nullptr;
}

std::string Diagnostic::ToString() const {
  return file + ":" + std::to_string(location.line) + ":" + std::to_string(location.column) +
         ": " + (warning ? "warning: " : "") + message;
}

}  // namespace ladle::runner
