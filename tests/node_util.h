// Node.js from the e2e tests: the OpenFeature SDK check and the web UI's
// browser check run a script with node. The npm packages a script needs are
// pinned in the package.json next to it and installed into node_modules/
// there by the test command's install step (scripts/install-deps.sh --test);
// the tests run no npm and need no network.
#ifndef LADLE_TESTS_NODE_UTIL_H_
#define LADLE_TESTS_NODE_UTIL_H_

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <chrono>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "env/subprocess.h"

namespace ladle {
namespace testing {

// Whether `name` is an executable on $PATH. Looked up, not run: the e2e
// tests' processes reap their children themselves, which would take
// std::system's exit status away.
inline bool HaveCommand(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    const std::string dir = end > start ? dirs.substr(start, end - start) : ".";
    if (::access((dir + "/" + name).c_str(), X_OK) == 0) return true;
    start = end + 1;
  }
  return false;
}

// Whether a missing tool fails the test (CI=true) rather than skipping it.
inline bool InCi() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

// Runs argv (through PATH) in `cwd`: stdout in `out`, stdout and stderr
// in the message when it fails. Through env::RunCommand, which works beside
// the reaper of these test processes (popen/pclose would lose the status).
inline bool Run(const std::vector<std::string>& argv, const std::string& cwd, std::string* out,
                std::string* error, std::chrono::seconds timeout = std::chrono::seconds(300)) {
  env::CommandResult r;
  Status s = env::RunCommand(argv, cwd, &r, timeout);
  if (out) *out = r.out;
  if (!s.ok()) {
    *error = argv[0] + ": " + s.ToString();
    return false;
  }
  if (r.exit_code != 0) {
    *error = argv[0] + " exited with " + std::to_string(r.exit_code) + ": " + r.out + r.err;
    return false;
  }
  return true;
}

inline std::string ReadWhole(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// "" when `dir`/node_modules holds every version that `dir`/package.json
// pins, else which are missing and how to install them.
inline std::string NodePackagesMissing(const std::filesystem::path& dir) {
  const nlohmann::json want = nlohmann::json::parse(ReadWhole(dir / "package.json"), nullptr, false);
  if (!want.is_object()) return "cannot read " + (dir / "package.json").string();
  const nlohmann::json deps = want.value("dependencies", nlohmann::json::object());
  std::string missing;
  for (const auto& [name, version] : deps.items()) {
    const nlohmann::json got =
        nlohmann::json::parse(ReadWhole(dir / "node_modules" / name / "package.json"), nullptr, false);
    const std::string have = got.is_object() ? got.value("version", "") : "";
    const std::string pinned = version.is_string() ? version.get<std::string>() : version.dump();
    if (have == pinned) continue;
    missing += " " + name + "@" + pinned + (have.empty() ? "" : " (found " + have + ")");
  }
  if (missing.empty()) return "";
  return "npm packages missing in " + (dir / "node_modules").string() + ":" + missing +
         "; install them with scripts/install-deps.sh --test";
}

// "" when node (and with `chromium`, Debian's chromium) and the npm packages
// of `dir` are there, else what is missing: a test fails with it under CI
// (CI=true), else skips.
inline std::string NodeTestMissing(const std::filesystem::path& dir, bool chromium) {
  if (!HaveCommand("node")) return "node is not installed; install it with scripts/install-deps.sh --test";
  if (chromium && !std::filesystem::exists("/usr/bin/chromium")) {
    return "/usr/bin/chromium is not installed; install it with scripts/install-deps.sh --test";
  }
  return NodePackagesMissing(dir);
}

}  // namespace testing
}  // namespace ladle

#endif  // LADLE_TESTS_NODE_UTIL_H_
