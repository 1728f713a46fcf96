// Node.js and npm from the e2e tests: the OpenFeature SDK check and the web
// UI's browser check install their pinned npm packages once into a cache
// directory, then run a script with node.
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

// Installs the packages of `package_json` into `cache` once: again only when
// the package.json changed or node_modules/`installed` is missing. Returns ""
// or what npm said.
inline std::string NpmInstall(const std::filesystem::path& package_json,
                              const std::filesystem::path& cache, const std::string& installed) {
  namespace fs = std::filesystem;
  const std::string want = ReadWhole(package_json);
  if (fs::exists(cache / "node_modules" / installed) && ReadWhole(cache / "package.json") == want) {
    return "";
  }
  fs::create_directories(cache);
  fs::copy_file(package_json, cache / "package.json", fs::copy_options::overwrite_existing);
  std::string error;
  if (Run({"npm", "install", "--no-audit", "--no-fund"}, cache.string(), nullptr, &error)) return "";
  return "npm install failed: " + error;
}

}  // namespace testing
}  // namespace ladle

#endif  // LADLE_TESTS_NODE_UTIL_H_
