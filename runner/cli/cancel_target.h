// CancelTarget: where Ctrl-C and SIGTERM go while a command runs a pipeline
// (`ladle run`, `ladle repro`): to the executor once there is one, else
// remembered for it. Shared with the signal handler (SignalHandlerScope)
// through a shared_ptr, so the handler never outlives what it uses.
#ifndef LADLE_RUNNER_CLI_CANCEL_TARGET_H_
#define LADLE_RUNNER_CLI_CANCEL_TARGET_H_

#include <mutex>

#include "runner/exec/executor.h"

namespace ladle::runner {

struct CancelTarget {
  std::mutex mu;
  Executor* active = nullptr;  // guarded by mu
  int early_signal = 0;        // guarded by mu

  void Signal(int sig) {
    std::lock_guard<std::mutex> lock(mu);
    if (active) active->Cancel(sig);
    else early_signal = sig;
  }
  void Attach(Executor* executor) {
    std::lock_guard<std::mutex> lock(mu);
    active = executor;
    if (executor != nullptr && early_signal) executor->Cancel(early_signal);
  }
};

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_CLI_CANCEL_TARGET_H_
