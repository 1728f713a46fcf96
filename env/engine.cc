#include "env/engine.h"

namespace ladle::env {

Status CheckStepVariables(const StepSpec& spec) {
  for (const auto* vars : {&spec.env, &spec.secrets}) {
    for (const auto& [name, value] : *vars) {
      if (name.empty() || name.find_first_of(std::string("=\0", 2)) != std::string::npos)
        return Status::Invalid("invalid environment variable name '" + name + "'");
      if (value.find('\0') != std::string::npos)
        return Status::Invalid("the value of " + name + " contains a NUL byte");
    }
  }
  return Status::OK();
}

}  // namespace ladle::env
