// The settings hierarchy of `ladle env` (docs/spoons.md "Profiles and env.yml"):
//
//   built-in defaults < $DOCKER_HOST (host only) < ~/.config/ladle/env.yml
//   < .ladle/env.yml of the project < --profile P (the user file's profile,
//   then the project file's) < command-line flags
//
// Each file has a `default:` map and named `profiles:` maps, both with the
// SpoonSettings keys. Merging a layer over the ones below: a scalar
// overrides, a list replaces the whole list, `env` merges by variable
// name. SpoonSettings::origin records, for each field (and each "env.NAME"),
// the layer that set it last, as "FILE:LINE" (with " profile P" for a
// profile), "--flag", "$DOCKER_HOST" or "built-in".
//
// A missing file is fine. A file that cannot be read, is too large, is not
// YAML, holds an unknown key (with did-you-mean) or a value of the wrong
// type is an Invalid status whose message lists every problem as
// FILE:LINE:COL: message. An unknown profile is Invalid and lists the
// profiles both files define.
#ifndef LADLE_RUNNER_SPOON_ENV_CONFIG_H_
#define LADLE_RUNNER_SPOON_ENV_CONFIG_H_

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/base/status.h"
#include "runner/spoon/settings.h"

namespace ladle::runner::spoon {

// What the hierarchy is built from. Defaults read the process's environment.
struct SettingsSources {
  // The user's home: the user file is HOME/.config/ladle/env.yml
  // ($XDG_CONFIG_HOME/ladle/env.yml when XDG_CONFIG_HOME is set and `home`
  // is empty). "" = $HOME.
  std::string home;
  // Where to look for the project file .ladle/env.yml: this folder, then
  // each parent up to and including the git root (the first folder holding
  // `.git`); outside a git repository, this folder only. "" = the current
  // directory.
  std::string project_dir;
  // --profile; "" = none.
  std::string profile;
  // The command line's values; only the fields named in flags_given count.
  SpoonSettings flags;
  // SpoonSettings field names given on the command line: "image", "prefix",
  // "shell", "ports", "volumes", "cpus", "memory", "dns", "privileged",
  // "env", "copy", "run_on_create", "docker_host". For "env" each variable
  // of flags.env overrides (merges by name).
  std::set<std::string> flags_given;
  // How each field's flag is spelled, for SpoonSettings::origin ("ports" ->
  // "--port"); a field not listed is "--" + its name with '_' as '-', and
  // "docker_host" is "--host".
  std::map<std::string, std::string> flag_names;
  // $DOCKER_HOST as seen by this process; nullopt = read it with getenv.
  std::optional<std::string> docker_host_env;
};

// What LoadSpoonSettings found, for `ladle env config`.
struct SettingsReport {
  std::vector<std::string> files_read;  // the settings files that exist, lowest first
  std::vector<std::string> profiles;    // every profile either file defines, sorted
};

// Merges the layers into *settings (which it resets first). `report` may be
// null. Invalid on a bad file (every problem, FILE:LINE:COL) or an unknown
// profile.
Status LoadSpoonSettings(const SettingsSources& sources, SpoonSettings* settings,
                         SettingsReport* report = nullptr);

// The paths LoadSpoonSettings reads: the user file, and the project file it
// found ("" when none exists).
std::string UserSettingsFile(const SettingsSources& sources);
std::string FindProjectSettingsFile(const SettingsSources& sources);

// "FROM:TO" (the last ':' splits, so "C:/x:/y" is not special-cased) into
// a CopySpec. Invalid when either side is empty.
Status ParseCopySpec(const std::string& text, CopySpec* out);

// The merged settings as `ladle env config` prints them: one "KEY: VALUE"
// line per key in env.yml order (lists and env one item per line), each with
// "# ORIGIN" beside it.
std::string FormatSpoonSettings(const SpoonSettings& settings);

}  // namespace ladle::runner::spoon

#endif  // LADLE_RUNNER_SPOON_ENV_CONFIG_H_
