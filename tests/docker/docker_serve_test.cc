// `ladle serve` on the docker backend: a commit's steps run in containers,
// and after a kill -9 the next start removes the containers the dead
// server's run left (issue 5, restart safety). The real binary, a git
// repository in a temp dir, the real daemon and the test image.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/test_util.h"
#include "tests/docker/docker_test_util.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace ladle::docker_test {
namespace {

class DockerServeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    repo_ = root_.path() / "repo";
    data_ = (root_.path() / "data").string();
    LADLE_REQUIRE_DOCKER();
    daemon_ = true;
    port_ = ladle::testing::FreePort();
  }
  void TearDown() override {
    for (auto& server : servers_) ::kill(server->pid(), SIGKILL);
    if (!daemon_) return;
    for (const std::string& name : ContainersOf(data_)) Docker({"rm", "-f", name});
  }

  void Repository(const std::string& steps) {
    WriteFile(repo_ / "ladle.yml", "name: served\nimage: " + std::string(kTestImage) +
                                       "\nstages:\n  - name: s\n    network: none\n    steps:\n" +
                                       steps);
    CommandOutput r = docker_test::Run({"sh", "-c",
                           "git init -q -b main && git add -A && "
                           "git -c user.email=t@t -c user.name=t commit -qm one"},
                          repo_.string());
    ASSERT_EQ(0, r.code) << r.err;
    WriteFile(root_.path() / "server.yml",
              "listen: 127.0.0.1:" + std::to_string(port_) + "\ndata: " + data_ +
                  "\nbackend: docker\nrepositories:\n  - {name: app, url: " + repo_.string() +
                  "}\n");
  }
  // Starts `ladle serve` (env::Subprocess: its tree is ended with the
  // object); its pid.
  int StartServer(std::vector<std::pair<std::string, std::string>> env = {}) {
    env::LaunchSpec spec;
    spec.env = std::move(env);
    spec.exe = "/bin/sh";
    const std::string log = (root_.path() / "serve.log").string();
    spec.args = {"-c", "exec \"$0\" \"$@\" >>'" + log + "' 2>&1", LADLE_BINARY, "serve",
                 "--config", (root_.path() / "server.yml").string()};
    spec.cwd = root_.str();
    std::unique_ptr<env::Subprocess> server;
    Status s = env::Subprocess::Start(spec, &server);
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (!s.ok()) return -1;
    servers_.push_back(std::move(server));
    return servers_.back()->pid();
  }
  json Show(int run) {
    CommandOutput r = docker_test::Run({LADLE_BINARY, "--data", data_, "--json", "show", std::to_string(run)});
    json j = json::parse(r.out, nullptr, false);
    return j.is_object() ? j : json::object();  // not recorded yet
  }
  // Polls `done` every 100 ms for up to `seconds`.
  static bool WaitFor(const std::function<bool()>& done, int seconds) {
    for (int i = 0; i < seconds * 10; ++i) {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return done();
  }
  std::string ServerLog() { return ReadFile(root_.path() / "serve.log"); }

  TempDir root_;
  fs::path repo_;
  std::string data_;
  int port_ = 0;
  bool daemon_ = false;
  std::vector<std::unique_ptr<env::Subprocess>> servers_;  // ended with the test
};

TEST_F(DockerServeTest, CommitRunsInContainersAndLeavesNone) {
  Repository("      - {name: a, run: 'echo in-a-container; test -d /workspace/.git'}\n");
  int pid = StartServer();
  ASSERT_TRUE(WaitFor([&] { return Show(1).value("status", "") == "success"; }, 60))
      << Show(1).dump() << ServerLog();
  EXPECT_NE(std::string::npos,
            ReadFile(fs::path(data_) / "logs" / "1" / "s" / "a.log").find("in-a-container"));
  EXPECT_TRUE(ContainersOf(data_).empty());
  ::kill(pid, SIGTERM);
}

TEST_F(DockerServeTest, RestartAfterKill9RemovesTheDeadRunsContainers) {
  Repository("      - {name: a, run: 'echo started; sleep 1031'}\n");
  int pid = StartServer();
  ASSERT_TRUE(WaitFor([&] { return !ContainersOf(data_).empty(); }, 60)) << ServerLog();
  ASSERT_TRUE(WaitFor([&] { return Show(1).value("status", "") == "running"; }, 10));
  ::kill(pid, SIGKILL);
  servers_.back()->Wait();
  EXPECT_FALSE(ContainersOf(data_).empty()) << "the daemon keeps a dead server's container";

  // Its step's files on the tmpfs (/etc/hosts of network none) outlive it.
  const std::string mine = "ladle-step-" + std::to_string(pid) + "-";
  auto left = [&] {
    int n = 0;
    for (const auto& e : fs::directory_iterator("/dev/shm"))
      n += e.path().filename().string().rfind(mine, 0) == 0;
    return n;
  };
  EXPECT_EQ(1, left()) << "the killed server's step directory, before the restart";

  pid = StartServer();
  EXPECT_TRUE(WaitFor([&] { return ContainersOf(data_).empty(); }, 30)) << ServerLog();
  EXPECT_EQ(0, left()) << "swept by the next server's start-up (docs/server.md \"How secrets reach a step\")";
  json run = Show(1);
  EXPECT_EQ("interrupted", run["status"]) << run.dump();
  EXPECT_NE(std::string::npos, ServerLog().find("run 1 was left running by a ladle that is gone"))
      << ServerLog();
  ::kill(pid, SIGTERM);
}

// docs/running.md "Reproduce a server's step": a step that failed in a
// container on the server fails the same way here, in a container of the
// same image, with the artifacts of the step before it from the server.
TEST_F(DockerServeTest, ReproRunsTheServersFailedStepInTheSameImage) {
  const std::string token = "docker-repro-admin-token-0123456789";
  Repository(
      "      - {name: compile, run: 'mkdir -p out && echo v7 > out/version', artifacts: [out/]}\n"
      "      - name: unit\n"
      "        needs: [compile]\n"
      "        run: 'test \"$PWD\" = /workspace && echo \"in-a-container with $(cat out/version)\"; exit 1'\n");
  int pid = StartServer({{"LADLE_ADMIN_TOKEN", token}});
  ASSERT_TRUE(WaitFor([&] { return Show(1).value("status", "") == "failed"; }, 60))
      << Show(1).dump() << ServerLog();
  ASSERT_NE(std::string::npos,
            ReadFile(fs::path(data_) / "logs" / "1" / "s" / "unit.log").find("in-a-container with v7"));
  const std::string local = (root_.path() / "local-data").string();
  CommandOutput r = docker_test::Run({LADLE_BINARY, "--data", local, "repro", "1", "s/unit", "--server",
                                      "http://127.0.0.1:" + std::to_string(port_), "--token", token},
                                     repo_.string());
  EXPECT_EQ(1, r.code) << r.out << r.err;
  EXPECT_NE(std::string::npos, (r.out + r.err).find("in-a-container with v7")) << r.out << r.err;
  EXPECT_NE(std::string::npos, (r.out + r.err).find("backend: docker")) << r.out << r.err;
  EXPECT_TRUE(ContainersOf(local).empty()) << "the repro's container is removed";
  ::kill(pid, SIGTERM);
}

// docs/server.md "How secrets reach a step": the step has its secret as a
// variable, yet no container's configuration holds it, while it runs or once
// kept, and the file that carried it is gone with the step.
TEST_F(DockerServeTest, SecretsReachTheStepButNotTheContainersConfiguration) {
  const std::string value = "s3cret-" + std::to_string(::getpid()) + "-value";
  WriteFile(repo_ / "ladle.yml", "name: served\nimage: " + std::string(kTestImage) +
                                     "\nsecrets: [DEPLOY_TOKEN]\nstages:\n  - name: s\n"
                                     "    network: none\n    steps:\n"
                                     "      - name: a\n        keep: always\n"
                                     "        run: 'echo \"seen:${DEPLOY_TOKEN#s3cret-}\"; "
                                     "echo \"$DEPLOY_TOKEN\"; sleep 2'\n");
  CommandOutput r = docker_test::Run({"sh", "-c",
                                      "git init -q -b main && git add -A && "
                                      "git -c user.email=t@t -c user.name=t commit -qm one"},
                                     repo_.string());
  ASSERT_EQ(0, r.code) << r.err;
  const fs::path secrets = root_.path() / "secrets.env";
  WriteFile(secrets, "DEPLOY_TOKEN=" + value + "\n");
  fs::permissions(secrets, fs::perms::owner_read | fs::perms::owner_write);
  WriteFile(root_.path() / "server.yml",
            "listen: 127.0.0.1:" + std::to_string(port_) + "\ndata: " + data_ +
                "\nbackend: docker\nsecrets_file: " + secrets.string() +
                "\nsecrets:\n  - {name: DEPLOY_TOKEN, branches: [main]}\n"
                "repositories:\n  - {name: app, url: " + repo_.string() + "}\n");
  int pid = StartServer();

  // While the step runs.
  ASSERT_TRUE(WaitFor([&] { return !ContainersOf(data_).empty(); }, 60)) << ServerLog();
  for (const std::string& name : ContainersOf(data_)) {
    CommandOutput inspect = Docker({"inspect", name});
    EXPECT_EQ(0, inspect.code) << inspect.err;
    EXPECT_EQ(std::string::npos, inspect.out.find(value)) << inspect.out;
    EXPECT_NE(std::string::npos, inspect.out.find("/run/ladle-secrets")) << inspect.out;
  }
  ASSERT_TRUE(WaitFor([&] { return Show(1).value("status", "") == "success"; }, 60))
      << Show(1).dump() << ServerLog();
  const std::string log = ReadFile(fs::path(data_) / "logs" / "1" / "s" / "a.log");
  // The script does not hold the value; the step printed part of it.
  EXPECT_NE(std::string::npos, log.find("o seen:" + value.substr(7) + "\n")) << log;
  EXPECT_NE(std::string::npos, log.find("o ***")) << "masked: " << log;
  EXPECT_EQ(std::string::npos, log.find(value)) << log;

  // The kept container.
  std::vector<std::string> kept = ContainersOf(data_);
  ASSERT_EQ(1u, kept.size());
  EXPECT_EQ(0u, kept[0].rfind("ladle-kept-", 0)) << kept[0];
  CommandOutput inspect = Docker({"inspect", kept[0]});
  EXPECT_EQ(0, inspect.code) << inspect.err;
  EXPECT_EQ(std::string::npos, inspect.out.find(value)) << inspect.out;
  EXPECT_EQ(std::string::npos, inspect.out.find("/run/ladle-secrets")) << "no mount of a file that is gone";

  // No file on the host holds the value any more.
  for (const auto& entry : fs::directory_iterator("/dev/shm")) {
    if (entry.path().filename().string().rfind("ladle-secrets-", 0) != 0) continue;
    EXPECT_EQ(std::string::npos, ReadFile(entry.path() / "env").find(value)) << entry.path();
  }
  ::kill(pid, SIGTERM);
}

}  // namespace
}  // namespace ladle::docker_test
