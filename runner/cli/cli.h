// The `ladle` command line (docs/design.md "Exit codes"): parses arguments, turns Status
// values into messages and exit codes. Nothing below this layer prints to the
// terminal on its own or exits the process.
#ifndef LADLE_RUNNER_CLI_CLI_H_
#define LADLE_RUNNER_CLI_CLI_H_

#include <string>

namespace ladle::runner {

// Runs the command line; returns the process exit code.
int RunCli(int argc, char** argv);

// The data dir: `flag`, else $LADLE_HOME, else $XDG_DATA_HOME/ladle, else
// ~/.local/share/ladle.
std::string ResolveDataDir(const std::string& flag);

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_CLI_CLI_H_
