#include <signal.h>

#include "runner/cli/cli.h"

int main(int argc, char** argv) {
  // docs/running.md "What it prints": a reader that goes away (`ladle run | head`)
  // must not end ladle in the middle of a run, leaving its steps behind.
  // Writes to the closed pipe fail with EPIPE instead; the run goes on, its
  // output going to the step logs only. Steps start with SIGPIPE at its
  // default again (env/subprocess.cc).
  ::signal(SIGPIPE, SIG_IGN);
  return ladle::runner::RunCli(argc, argv);
}
