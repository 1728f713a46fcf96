// The subcommands behind runner/cli.cc, one function each. Each returns the
// process exit code and prints its own messages (stdout for results, stderr
// for errors). Internal to the CLI.
#ifndef LADLE_RUNNER_CLI_COMMANDS_H_
#define LADLE_RUNNER_CLI_COMMANDS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace ladle::runner {

struct GlobalFlags {
  std::string data;   // resolved data dir
  bool json = false;
  bool quiet = false;
  bool verbose = false;
};

struct RunFlags {
  std::string file = "ladle.yml";
  std::vector<std::string> stages, steps, env;
  std::string from, backend, keep;
  int jobs = 4;
  bool bind = false;
};

int CmdRun(const GlobalFlags& g, const RunFlags& f);
int CmdValidate(const GlobalFlags& g, const std::string& file);
int CmdRuns(const GlobalFlags& g, const std::string& status, int limit);
int CmdShow(const GlobalFlags& g, int64_t run);
int CmdLogs(const GlobalFlags& g, int64_t run, const std::string& step, bool follow);
int CmdCancel(const GlobalFlags& g, int64_t run);

// Prints "ladle: MESSAGE" to stderr and returns the status's exit code.
int Fail(const Status& status);

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_CLI_COMMANDS_H_
