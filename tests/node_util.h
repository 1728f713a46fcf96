// Node.js and npm from the e2e tests: the OpenFeature SDK check and the web
// UI's browser check install their pinned npm packages once into a cache
// directory, then run a script with node.
#ifndef LADLE_TESTS_NODE_UTIL_H_
#define LADLE_TESTS_NODE_UTIL_H_

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace ladle {
namespace testing {

inline bool HaveCommand(const std::string& name) {
  return std::system(("command -v " + name + " >/dev/null 2>&1").c_str()) == 0;
}

// Whether a missing tool fails the test (CI=true) rather than skipping it.
inline bool InCi() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

// Runs `cmd` with sh; its standard output, and its wait status in *rc.
inline std::string RunCapture(const std::string& cmd, int* rc) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    *rc = -1;
    return out;
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  *rc = pclose(p);
  return out;
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
  int rc = 0;
  std::string out = RunCapture("cd '" + cache.string() + "' && npm install --no-audit --no-fund 2>&1", &rc);
  return rc == 0 ? "" : "npm install failed: " + out;
}

}  // namespace testing
}  // namespace ladle

#endif  // LADLE_TESTS_NODE_UTIL_H_
