// SpoonSettings: everything a spoon is created with, and where each value
// came from (docs/spoons.md "Settings"). Filled by the settings files and the
// command line (runner/spoon/env_config.h), used by the spoon manager
// (runner/spoon/spoon.h) to create the container.
#ifndef LADLE_RUNNER_SPOON_SETTINGS_H_
#define LADLE_RUNNER_SPOON_SETTINGS_H_

#include <map>
#include <string>
#include <vector>

namespace ladle::runner::spoon {

constexpr char kDefaultPrefix[] = "spoon-";

// A file copied into the spoon when it is created: a file or a folder on the
// host (`~` expanded), its path inside (parent folders created).
struct CopySpec {
  std::string from;
  std::string to;
};

struct SpoonSettings {
  std::string image;                      // required to create; no built-in default
  std::string prefix = kDefaultPrefix;    // container name = prefix + NAME
  std::string shell = "/bin/sh";          // the shell when the image has no tmux
  std::vector<std::string> ports;         // "HOST:CONTAINER" or "CONTAINER" (a dynamic host port)
  std::vector<std::string> volumes;       // "HOST:CONTAINER[:ro]"
  std::string cpus;                       // "1.5"; "" = no limit
  std::string memory;                     // "2g"; "" = no limit
  std::vector<std::string> dns;
  bool privileged = false;
  std::map<std::string, std::string> env;
  std::vector<CopySpec> copy;
  std::vector<std::string> run_on_create;  // in order; a failure stops creation
  std::string docker_host;                 // "" = $DOCKER_HOST or the default socket

  // Where each value came from, for `ladle env config`: field name ("image",
  // "ports", "env.FOO") -> "built-in", "~/.config/ladle/env.yml:3",
  // ".ladle/env.yml profile rust:7", "--image".
  std::map<std::string, std::string> origin;
};

// "" when `name` can name a spoon: Docker's container name rules
// ([a-zA-Z0-9][a-zA-Z0-9_.-]*) and at most 64 characters, the limit of a
// hostname label; else what is wrong with it, for the message.
std::string SpoonNameProblem(const std::string& name);

}  // namespace ladle::runner::spoon

#endif  // LADLE_RUNNER_SPOON_SETTINGS_H_
