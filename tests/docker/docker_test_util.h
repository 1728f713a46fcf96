// Shared by the docker tests: the daemon check, the test image, temp dirs, a
// collecting sink and the docker CLI (for looking at what ladle did).
//
// Every test container runs with network "none": the daemon has no bridge
// (tests/env/docker_setup.sh) and nothing may leave 127.0.0.0/8.
#ifndef LADLE_TESTS_DOCKER_DOCKER_TEST_UTIL_H_
#define LADLE_TESTS_DOCKER_DOCKER_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <stdlib.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "env/docker_client.h"
#include "env/engine.h"
#include "env/subprocess.h"

namespace ladle::docker_test {

inline constexpr char kTestImage[] = "ladle-test-busybox:latest";

// Nothing answers: a failure under CI (CI set), else a skip, so that a
// machine without docker still runs the rest of the suite.
#define LADLE_REQUIRE_DOCKER()                                                              \
  do {                                                                                      \
    std::string why_;                                                                       \
    if (!::ladle::docker_test::DaemonAnswers(&why_)) {                                      \
      if (std::getenv("CI") != nullptr && *std::getenv("CI") != '\0')                       \
        FAIL() << "no docker daemon (CI is set, so this is a failure): " << why_;           \
      GTEST_SKIP() << "no docker daemon: " << why_                                          \
                   << " (run tests/env/docker_setup.sh, or ctest with the docker fixture)"; \
    }                                                                                       \
  } while (0)

inline bool DaemonAnswers(std::string* why) {
  env::DockerEndpoint endpoint;
  Status s = env::ParseDockerHost(env::DockerHostFromEnvironment(), &endpoint);
  std::unique_ptr<env::DockerClient> client;
  if (s.ok()) s = env::DockerClient::Connect(endpoint, std::chrono::seconds(3), &client);
  if (!s.ok()) *why = s.message();
  return s.ok();
}

inline std::unique_ptr<env::DockerClient> Client() {
  env::DockerEndpoint endpoint;
  std::unique_ptr<env::DockerClient> client;
  Status s = env::ParseDockerHost(env::DockerHostFromEnvironment(), &endpoint);
  if (s.ok()) s = env::DockerClient::Connect(endpoint, std::chrono::seconds(3), &client);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return client;
}

// A fresh directory under /tmp, removed with the object.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/ladle-docker-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

inline std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void WriteFile(const std::filesystem::path& p, const std::string& text) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

// Keeps stdout and stderr apart, and the order of the chunks.
class CollectingSink : public env::OutputSink {
 public:
  void Write(env::OutputStream stream, std::string_view data) override {
    std::lock_guard<std::mutex> lock(mu_);
    (stream == env::OutputStream::kStdout ? out_ : err_).append(data);
    chunks_++;
  }
  std::string out() const { std::lock_guard<std::mutex> l(mu_); return out_; }
  std::string err() const { std::lock_guard<std::mutex> l(mu_); return err_; }

 private:
  mutable std::mutex mu_;
  std::string out_, err_;
  size_t chunks_ = 0;
};

struct CommandOutput {
  int code = -1;
  std::string out, err;
};

// Runs a command (the docker CLI, a shell) to completion.
inline CommandOutput Run(const std::vector<std::string>& argv, const std::string& cwd = "",
                         std::chrono::seconds timeout = std::chrono::seconds(120)) {
  env::CommandResult r;
  Status s = env::RunCommand(argv, cwd, &r, timeout);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return {r.exit_code, r.out, r.err};
}

inline CommandOutput Docker(std::vector<std::string> args) {
  args.insert(args.begin(), "docker");
  return Run(args);
}

// Names of the containers (running or not) labelled ladle.data=`data_dir`.
inline std::vector<std::string> ContainersOf(const std::string& data_dir) {
  CommandOutput r = Docker({"ps", "-a", "--filter", "label=ladle.data=" + data_dir, "--format", "{{.Names}}"});
  EXPECT_EQ(0, r.code) << r.err;
  std::vector<std::string> names;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) names.push_back(line);
  return names;
}

}  // namespace ladle::docker_test

#endif  // LADLE_TESTS_DOCKER_DOCKER_TEST_UTIL_H_
