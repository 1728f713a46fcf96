// LocalEngine: runs a step's script on the host, as `/bin/sh -e -c SCRIPT`
// in its own process group, in the workspace (see docs/backends.md).
//
// Isolation is the process group (and a cgroup where the host allows it,
// env/cgroup.h) and nothing more: a step sees the host's file system,
// network, users and environment. Timeouts and cancel are the runner's
// policy (Kill(SIGTERM), a grace period, Kill(SIGKILL)); the engine
// guarantees that Kill reaches the whole tree, including processes that
// called setsid (and, in a cgroup, cleared their environment), and that
// nothing of a step outlives Stream/Remove.
#ifndef LADLE_ENV_LOCAL_ENGINE_H_
#define LADLE_ENV_LOCAL_ENGINE_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "env/engine.h"
#include "env/subprocess.h"

namespace ladle::env {

// The variable that names the step in its processes' environment.
constexpr char kStepIdVariable[] = "LADLE_STEP_ID";

// "LADLE_RUN_<data dir hash>_<run>": a marker every local step of that run
// carries (=1), so that what a dead ladle's run left is found without a
// cgroup (docs/backends.md "After a crash"). Steps whose StepSpec::labels lack
// ladle.data and ladle.run carry none.
std::string RunMarkerName(const std::string& data_dir, int64_t run_id);

// Ends (SIGKILL) what local steps of run `run_id` of `data_dir` left: the
// run's cgroups (env/cgroup.h) and every process carrying its marker, and
// waits up to `wait` for them to go. Returns how many processes it found.
// For a run whose ladle is gone; never for a live one.
int EndLocalRunProcesses(const std::string& data_dir, int64_t run_id, std::chrono::milliseconds wait);

// The runs of `data_dir` that have a cgroup or a marked process on this host.
// Removes the empty groups that dead ladles left first (SweepEmptyCgroups).
std::vector<int64_t> LocalRunsWithProcesses(const std::string& data_dir);

// One step run on the host. Thread-safety as env::Step: Kill() from any
// thread at any time (a no-op before Start and once the tree has ended);
// everything else from one thread. Destroying it ends what is left (Remove).
class LocalStep : public Step {
 public:
  // REQUIRES: `dir` exists (LocalEngine::Create checks). `cgroups`: the
  // run's kept groups (may be null).
  LocalStep(StepSpec spec, std::string dir, std::shared_ptr<CgroupPool> cgroups = nullptr);
  ~LocalStep() override;

  Status Start() override;
  // Returns once the script's shell has exited, the processes it left behind
  // have been ended (TERM, KILL after 1 s) and the output is drained.
  Status Stream(OutputSink* sink) override;
  Status Wait(ExitStatus* status) override;
  void Kill(int signal) override;
  Status Remove() override;

 private:
  const StepSpec spec_;
  const std::string dir_;  // absolute: workspace/workdir
  const std::shared_ptr<CgroupPool> cgroups_;
  std::mutex mu_;          // guards proc_ against a concurrent Kill
  std::unique_ptr<Subprocess> proc_;
  bool removed_ = false;
};

// docs/server.md "Replicas": from now on, the shell of every local step gets
// SIGKILL when this process ends (a replica of a shared store: a run taken
// over by another replica never overlaps its first attempt's shell).
void SetLocalStepsDieWithLadle(bool on);

class LocalEngine : public Engine {
 public:
  std::string Name() const override { return "local"; }
  // Fails with NotFound when the workspace or workdir is missing, Invalid
  // for an unusable environment variable name or a NUL in the script, and
  // Unavailable when /bin/sh cannot be executed. Thread-safe.
  Status Create(const StepSpec& spec, std::unique_ptr<Step>* step) override;

 private:
  // A LocalEngine serves one run: its steps' cgroups are kept for its next
  // steps and removed when the engine and its last step are gone.
  const std::shared_ptr<CgroupPool> cgroups_ = std::make_shared<CgroupPool>();
};

}  // namespace ladle::env

#endif  // LADLE_ENV_LOCAL_ENGINE_H_
