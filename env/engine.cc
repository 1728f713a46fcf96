#include "env/engine.h"

#include <algorithm>

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

bool SameStep(const StepSpec& a, const StepSpec& b) {
  auto same_resources = [](const Resources& x, const Resources& y) {
    return x.cpus == y.cpus && x.memory == y.memory && x.network == y.network &&
           x.privileged == y.privileged && x.dns == y.dns && x.volumes == y.volumes;
  };
  auto same_service = [](const ServiceSpec& x, const ServiceSpec& y) {
    return x.name == y.name && x.image == y.image && x.env == y.env && x.command == y.command &&
           x.shell == y.shell && x.port == y.port && x.ready_command == y.ready_command &&
           x.ready_port == y.ready_port && x.ready_timeout == y.ready_timeout;
  };
  return a.id == b.id && a.image == b.image && a.script == b.script && a.env == b.env &&
         a.secrets == b.secrets && a.host_environment == b.host_environment &&
         a.workspace == b.workspace && a.workdir == b.workdir && a.labels == b.labels &&
         same_resources(a.resources, b.resources) && a.keep == b.keep &&
         std::equal(a.services.begin(), a.services.end(), b.services.begin(), b.services.end(),
                    same_service);
}

}  // namespace ladle::env
