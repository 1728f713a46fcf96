// Ctrl-C and SIGTERM for commands that run steps.
//
// Signals are blocked in every thread and received by one thread with
// sigwait, so the handler may lock, log and kill like any other code (no
// async-signal-safety puzzles). Children unblock them before exec.
#ifndef LADLE_RUNNER_CLI_SIGNALS_H_
#define LADLE_RUNNER_CLI_SIGNALS_H_

#include <functional>

namespace ladle::runner {

// Blocks SIGINT, SIGTERM and SIGHUP and starts the waiting thread; the handler
// is called on that thread for each signal. REQUIRES: called before any other
// thread exists (the mask is inherited by threads created after it).
void InstallSignalHandler(std::function<void(int)> handler);

// Replaces the handler (thread-safe).
void SetSignalHandler(std::function<void(int)> handler);

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_CLI_SIGNALS_H_
