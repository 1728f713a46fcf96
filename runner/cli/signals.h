// Ctrl-C and SIGTERM for commands that run steps.
//
// Signals are blocked in every thread and received by one thread with
// sigwait, so the handler may lock, log and kill like any other code (no
// async-signal-safety puzzles). Children unblock them before exec.
#ifndef LADLE_RUNNER_CLI_SIGNALS_H_
#define LADLE_RUNNER_CLI_SIGNALS_H_

#include <functional>

namespace ladle::runner {

// Blocks SIGINT, SIGTERM and SIGHUP and starts the waiting thread (once per
// process); the handler is called on that thread for each signal (SIGHUP as
// SIGTERM). REQUIRES: called before any other thread exists (the mask is
// inherited by threads created after it).
void InstallSignalHandler(std::function<void(int)> handler);

// Replaces the handler (thread-safe). Once it returns, the old handler is
// not running and will not be called again.
void SetSignalHandler(std::function<void(int)> handler);

// The handler for one scope: installs it (InstallSignalHandler) on
// construction and removes it on destruction, after which it is neither
// running nor called again. A handler that captures locals by reference
// therefore cannot outlive them on any return path: declare the scope after
// the locals it uses. Signals that arrive with no handler are dropped.
class SignalHandlerScope {
 public:
  explicit SignalHandlerScope(std::function<void(int)> handler);
  ~SignalHandlerScope();
  SignalHandlerScope(const SignalHandlerScope&) = delete;
  SignalHandlerScope& operator=(const SignalHandlerScope&) = delete;
};

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_CLI_SIGNALS_H_
