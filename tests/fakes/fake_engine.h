// FakeEngine: an in-memory Engine for the runner's unit tests.
//
// Nothing runs. Each step's outcome comes from the first rule whose `match`
// is a substring of the step's id or script; without one, a script that is
// exactly "exit N" exits N and anything else exits 0 silently. Stream emits
// the outcome's stdout then stderr, then "runs" for its duration, which Kill
// cuts short (SIGTERM unless the outcome ignores it; SIGKILL always), ending
// the step with 128 + signal. The engine records what it was asked to do.
//
//   FakeOutcome fail;
//   fail.exit_code = 3;
//   fail.err = "no route\n";
//   engine.AddRule("deploy", fail);     // any step whose id or script has "deploy"
//   ... run the pipeline ...
//   EXPECT_EQ(engine.kills(), (std::vector<FakeKill>{{"1/test/slow", SIGTERM}}));
#ifndef LADLE_TESTS_FAKES_FAKE_ENGINE_H_
#define LADLE_TESTS_FAKES_FAKE_ENGINE_H_

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "env/engine.h"

namespace ladle::env {

struct FakeOutcome {
  int exit_code = 0;
  int signal = 0;  // non-zero: ends as if killed by it (code 128 + signal)
  std::string out;
  std::string err;
  std::chrono::milliseconds duration{0};  // how long it runs after its output
  bool ignores_term = false;              // like `trap '' TERM`
  // Kill blocks this long before it takes effect (a docker daemon that is
  // slow to answer POST /kill).
  std::chrono::milliseconds kill_blocks{0};
  Status create_error;                    // returned by Create when not ok
  Status start_error;                     // returned by Start when not ok
};

struct FakeKill {
  std::string step_id;
  int signal;
  bool operator==(const FakeKill& o) const { return step_id == o.step_id && signal == o.signal; }
};

// What the engine has seen; shared with its steps, which may outlive it.
struct FakeJournal {
  std::mutex mu;
  std::vector<StepSpec> created;
  std::vector<FakeKill> kills;
  std::vector<std::string> removed;
  int kills_in_progress = 0;  // Kill calls that are blocking (kill_blocks)
};

// Thread-safe: steps may be created, run and killed from any threads.
class FakeEngine : public Engine {
 public:
  FakeEngine();
  std::string Name() const override { return "fake"; }
  Status Create(const StepSpec& spec, std::unique_ptr<Step>* step) override;

  // Rules are tried in the order they were added.
  void AddRule(std::string match, FakeOutcome outcome);

  std::vector<StepSpec> created() const;       // every Create call, in order
  std::vector<FakeKill> kills() const;         // every Kill call, in order
  std::vector<std::string> removed() const;    // ids of removed steps, in order
  int kills_in_progress() const;               // Kill calls blocking right now

 private:
  FakeOutcome OutcomeFor(const StepSpec& spec) const;

  mutable std::mutex mu_;
  std::vector<std::pair<std::string, FakeOutcome>> rules_;
  std::shared_ptr<FakeJournal> journal_;
};

}  // namespace ladle::env

#endif  // LADLE_TESTS_FAKES_FAKE_ENGINE_H_
