// docs/backends.md "Overlapped containers": a step created ahead of its turn
// is used only for exactly the spec it was made for (env::SameStep).
#include <gtest/gtest.h>

#include "env/engine.h"

namespace ladle::env {
namespace {

StepSpec Spec() {
  StepSpec s;
  s.id = "1/s/a#1";
  s.image = "busybox:1";
  s.script = "make";
  s.env = {{"A", "1"}};
  s.secrets = {{"TOKEN", "x"}};
  s.workspace = "/tmp/ws";
  s.labels = {{"ladle.run", "1"}};
  s.resources.network = "none";
  return s;
}

TEST(SameStepTest, EqualSpecsAreTheSameStepWhateverTheirCancelCallback) {
  StepSpec a = Spec(), b = Spec();
  b.cancelled = [] { return true; };
  EXPECT_TRUE(SameStep(a, b));
}

TEST(SameStepTest, AnyFieldThatReachesTheContainerMakesAnother) {
  const StepSpec base = Spec();
  std::vector<std::function<void(StepSpec*)>> changes = {
      [](StepSpec* s) { s->id = "1/s/a#2"; },
      [](StepSpec* s) { s->image = "busybox:2"; },
      [](StepSpec* s) { s->script = "make test"; },
      [](StepSpec* s) { s->env.emplace_back("FROM_EARLIER_STEP", "v"); },
      [](StepSpec* s) { s->env[0].second = "2"; },
      [](StepSpec* s) { s->secrets[0].second = "y"; },
      [](StepSpec* s) { s->host_environment = false; },
      [](StepSpec* s) { s->workspace = "/tmp/other"; },
      [](StepSpec* s) { s->workdir = "sub"; },
      [](StepSpec* s) { s->labels["ladle.step"] = "b"; },
      [](StepSpec* s) { s->resources.memory = "512m"; },
      [](StepSpec* s) { s->resources.volumes = {"/a:/b"}; },
      [](StepSpec* s) { s->keep = true; },
      [](StepSpec* s) { s->services.push_back(ServiceSpec{}); },
  };
  for (size_t i = 0; i < changes.size(); ++i) {
    StepSpec changed = base;
    changes[i](&changed);
    EXPECT_FALSE(SameStep(base, changed)) << "change " << i;
    EXPECT_FALSE(SameStep(changed, base)) << "change " << i;
  }
}

}  // namespace
}  // namespace ladle::env
