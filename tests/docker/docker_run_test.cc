// `ladle run` on the docker backend, end to end: the real binary, pipelines
// in temp dirs, the real daemon and the test image. Every step has network
// "none".
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "runner/store/step_log.h"
#include "tests/docker/docker_test_util.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace ladle::docker_test {
namespace {

class DockerRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Prepare();
    LADLE_REQUIRE_DOCKER();
    daemon_ = true;
  }
  void Prepare() {
    src_ = root_.path() / "src";
    data_ = (root_.path() / "data").string();
    fs::create_directories(src_);
  }
  void TearDown() override {
    if (!daemon_) return;  // skipped
    for (const std::string& name : ContainersOf(data_)) Docker({"rm", "-f", name});
  }

  // A pipeline on the test image, every stage without network.
  void Pipeline(const std::string& stages) {
    WriteFile(src_ / "ladle.yml", "name: docker-e2e\nimage: " + std::string(kTestImage) + "\nstages:\n" + stages);
  }
  CommandOutput Ladle(std::vector<std::string> args, std::vector<std::string> env = {}) {
    std::vector<std::string> argv = {"env", "NO_COLOR=1"};
    argv.insert(argv.end(), env.begin(), env.end());
    argv.insert(argv.end(), {LADLE_BINARY, "--data", data_});
    argv.insert(argv.end(), args.begin(), args.end());
    return docker_test::Run(argv, src_.string());
  }
  CommandOutput Sh(const std::string& script) { return docker_test::Run({"sh", "-c", script}, src_.string()); }
  json StepOf(int run, const std::string& stage, const std::string& step) {
    CommandOutput r = Ladle({"--json", "show", std::to_string(run)});
    json j = json::parse(r.out, nullptr, false);
    for (const json& s : j["stages"])
      if (s["name"] == stage)
        for (const json& st : s["steps"])
          if (st["name"] == step) return st;
    return json();
  }
  std::string Log(int run, const std::string& stage, const std::string& step) {
    return ReadFile(runner::StepLogPath(data_, run, stage, step));
  }

  TempDir root_;
  fs::path src_;
  std::string data_;
  bool daemon_ = false;
};

TEST_F(DockerRunTest, WorkspaceCarriesFilesToTheNextStageAndNoContainerRemains) {
  Pipeline(R"yml(  - name: build
    network: none
    steps:
      - {name: make, run: 'echo "built in $(hostname)" > out.txt; cat /proc/1/comm'}
  - name: test
    network: none
    steps:
      - {name: check, run: 'cat /workspace/out.txt; test "$LADLE_WORKSPACE" = /workspace'}
)yml");
  CommandOutput r = Ladle({"run"});
  ASSERT_EQ(0, r.code) << r.out << r.err;
  std::string all = r.out + r.err;
  EXPECT_NE(std::string::npos, all.find("backend: docker (daemon at ")) << all;
  EXPECT_NE(std::string::npos, r.out.find("[build/make] docker-init")) << "init is PID 1: " << r.out;
  EXPECT_NE(std::string::npos, r.out.find("[test/check] built in ")) << r.out;
  EXPECT_TRUE(ContainersOf(data_).empty()) << "a passing run leaves no container";
  EXPECT_FALSE(fs::exists(src_ / "out.txt")) << "the working tree is untouched";
}

TEST_F(DockerRunTest, EnvironmentAndMaskedSecretsReachTheContainer) {
  WriteFile(src_ / "ladle.yml", "name: env\nimage: " + std::string(kTestImage) + R"yml(
env: {LEVEL: pipeline, WHO: nobody}
secrets: [DEPLOY_TOKEN]
stages:
  - name: deploy
    network: none
    env: {WHO: world}
    steps:
      - name: show
        run: 'echo "$LEVEL $WHO $EXTRA"; echo "token is $DEPLOY_TOKEN"; echo "$DEPLOY_TOKEN" >&2'
)yml");
  CommandOutput r = Ladle({"run", "--env", "EXTRA=flag"}, {"DEPLOY_TOKEN=hunter2-very-secret"});
  ASSERT_EQ(0, r.code) << r.out << r.err;
  EXPECT_NE(std::string::npos, r.out.find("pipeline world flag")) << r.out;
  EXPECT_NE(std::string::npos, r.out.find("token is ***")) << r.out;
  EXPECT_EQ(std::string::npos, (r.out + r.err).find("hunter2"));
  std::string log = Log(1, "deploy", "show");
  EXPECT_EQ(std::string::npos, log.find("hunter2")) << log;
  EXPECT_NE(std::string::npos, log.find("e ***\n")) << "masked on stderr too: " << log;
}

TEST_F(DockerRunTest, StdoutAndStderrAreApartInTheLog) {
  Pipeline(R"yml(  - name: s
    network: none
    steps:
      - {name: both, run: 'echo to-out; echo to-err >&2; echo out-again'}
)yml");
  ASSERT_EQ(0, Ladle({"run"}).code);
  std::string log = Log(1, "s", "both");
  EXPECT_NE(std::string::npos, log.find("o to-out\n")) << log;
  EXPECT_NE(std::string::npos, log.find("e to-err\n")) << log;
  EXPECT_NE(std::string::npos, log.find("o out-again\n")) << log;
}

TEST_F(DockerRunTest, ExitCodeFailsTheStepAndTheRun) {
  Pipeline(R"yml(  - name: s
    network: none
    steps:
      - {name: bad, run: 'echo trying; exit 3'}
)yml");
  CommandOutput r = Ladle({"run"});
  EXPECT_EQ(1, r.code) << r.out << r.err;
  json step = StepOf(1, "s", "bad");
  EXPECT_EQ("failed", step["status"]);
  EXPECT_EQ(3, step["exit_code"]);
  EXPECT_EQ("exit_code", step["failure_reason"]);
  EXPECT_TRUE(ContainersOf(data_).empty());
}

TEST_F(DockerRunTest, TimeoutKillsTheContainerAndRemovesIt) {
  Pipeline(R"yml(  - name: s
    network: none
    steps:
      - {name: hang, run: 'sleep 1000', timeout: 1s}
      - name: trapper
        run: |
          trap 'echo got-term; exit 9' TERM
          while :; do sleep 1; done
        timeout: 1s
)yml");
  auto start = std::chrono::steady_clock::now();
  CommandOutput r = Ladle({"run"});
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(1, r.code) << r.out << r.err;
  EXPECT_LT(took, std::chrono::seconds(30));
  for (const char* name : {"hang", "trapper"}) {
    json step = StepOf(1, "s", name);
    EXPECT_EQ("failed", step["status"]) << name;
    EXPECT_EQ("timeout", step["failure_reason"]) << name;
  }
  EXPECT_EQ(143, StepOf(1, "s", "hang")["exit_code"]) << "TERM ended it (PID 1 is an init), not KILL";
  EXPECT_NE(std::string::npos, Log(1, "s", "trapper").find("o got-term\n")) << "the script's trap ran";
  EXPECT_TRUE(ContainersOf(data_).empty());
}

TEST_F(DockerRunTest, SigtermMidStepCancelsAndLeavesNoContainer) {
  Pipeline(R"yml(  - name: s
    network: none
    steps:
      - {name: a, run: 'echo started; sleep 1013'}
      - {name: b, run: "trap '' TERM; echo started; sleep 1014"}
  - name: later
    network: none
    steps:
      - {name: c, run: 'true'}
)yml");
  std::string ladle = std::string(LADLE_BINARY) + " --data " + data_;
  // Waits until both containers print, then TERMs ladle.
  CommandOutput r = Sh("NO_COLOR=1 " + ladle + " run > out.txt 2>&1 & pid=$!; i=0; "
                       "while [ $(grep -c started out.txt) -lt 2 ] && [ $i -lt 150 ]; do sleep 0.2; i=$((i+1)); done; "
                       "kill -TERM $pid; wait $pid; echo $?");
  EXPECT_EQ("143\n", r.out) << ReadFile(src_ / "out.txt");
  EXPECT_EQ("cancelled", StepOf(1, "s", "a")["status"]);
  EXPECT_TRUE(ContainersOf(data_).empty()) << ReadFile(src_ / "out.txt");
  EXPECT_NE(0, docker_test::Run({"pgrep", "-f", "sleep 101[34]"}).code);
}

// docs/backends.md "keep": `ladle prune` takes a pruned run's containers with it, kept ones too.
TEST_F(DockerRunTest, PruneRemovesThePrunedRunsKeptContainers) {
  Pipeline(R"yml(  - name: s
    network: none
    steps:
      - {name: a, run: 'echo kept', keep: always}
)yml");
  CommandOutput r = Ladle({"run"});
  ASSERT_EQ(0, r.code) << r.out << r.err;
  ASSERT_FALSE(ContainersOf(data_).empty()) << "keep: always leaves the container";
  const std::string kept = ContainersOf(data_).front();
  CommandOutput image = Docker({"inspect", "-f", "{{.Image}}", kept});
  ASSERT_EQ(0, image.code) << image.err;
  const std::string image_id = image.out.substr(0, image.out.find_last_not_of("\n") + 1);
  ASSERT_EQ(0, Docker({"image", "inspect", image_id}).code) << "the committed image of the kept step";
  r = Ladle({"prune", "--older-than", "1h"});
  ASSERT_EQ(0, r.code) << r.err;
  EXPECT_FALSE(ContainersOf(data_).empty()) << "a run younger than the age stays, and its container";
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  r = Ladle({"prune", "--older-than", "1s"});
  ASSERT_EQ(0, r.code) << r.err;
  EXPECT_EQ("pruned 1 run(s) that finished more than 1s ago\n", r.out);
  EXPECT_TRUE(ContainersOf(data_).empty());
  EXPECT_NE(0, Docker({"image", "inspect", image_id}).code) << "the kept container's image goes with it";
}

TEST_F(DockerRunTest, KeptFailedContainerCanBeEnteredAndSurvivesTheNextStart) {
  Pipeline(R"yml(  - name: s
    network: none
    steps:
      - {name: broken, run: 'echo state > /debug-me; exit 4', keep: on-failure}
)yml");
  CommandOutput r = Ladle({"run"});
  EXPECT_EQ(1, r.code) << r.out << r.err;
  std::string all = r.out + r.err;
  // docs/backends.md "keep": the printed command is `ladle env NAME`.
  auto at = all.find("ladle env ladle-kept-");
  ASSERT_NE(std::string::npos, at) << all;
  std::string name = all.substr(at + 10, all.find_first_of(" \n", at + 10) - (at + 10));
  // Said once in the output, and again in the summary.
  EXPECT_NE(std::string::npos, all.find("container kept; enter it with: ladle env " + name)) << all;
  EXPECT_EQ(all.find("open a shell in it with"), all.rfind("open a shell in it with")) << all;

  // A crashed runner's leftover, to be cleaned at the next start.
  CommandOutput stale = Docker({"create", "--network", "none", "--label", "ladle.data=" + data_, "--label",
                                "ladle.run=999", "--name", "ladle-999-s-x-1-abcdef", kTestImage, "true"});
  ASSERT_EQ(0, stale.code) << stale.err;

  Pipeline("  - name: s\n    network: none\n    steps:\n      - {name: ok, run: 'true'}\n");
  r = Ladle({"run"});
  ASSERT_EQ(0, r.code) << r.out << r.err;
  all = r.out + r.err;
  EXPECT_NE(std::string::npos, all.find("removed 1 container(s) left by runs that ended: ladle-999-s-x-1-abcdef"))
      << all;
  EXPECT_EQ(std::vector<std::string>{name}, ContainersOf(data_)) << "the kept one stays";

  // `ladle env NAME` starts the stopped kept container and runs in it.
  CommandOutput inside = Ladle({"env", name, "--", "cat", "/debug-me"});
  EXPECT_EQ(0, inside.code) << inside.err;
  EXPECT_EQ("state\n", inside.out);
  std::string image = Docker({"inspect", "-f", "{{.Image}}", name}).out;
  Docker({"rm", "-f", name});
  Docker({"rmi", image.substr(0, image.find('\n'))});
}

// docs/backends.md "keep": `ladle prune --kept` removes the kept containers
// (and their images), runs stay; the steps no longer name them.
TEST_F(DockerRunTest, PruneKeptRemovesKeptContainersAndKeepsTheRuns) {
  Pipeline(R"yml(  - name: s
    network: none
    steps:
      - {name: broken, run: 'exit 4', keep: on-failure}
)yml");
  CommandOutput r = Ladle({"run"});
  EXPECT_EQ(1, r.code) << r.out << r.err;
  std::vector<std::string> kept = ContainersOf(data_);
  ASSERT_EQ(1u, kept.size()) << r.out << r.err;
  std::string image = Docker({"inspect", "-f", "{{.Image}}", kept[0]}).out;
  EXPECT_NE(std::string::npos, Ladle({"show", "1"}).out.find("container kept; enter it with:"));

  r = Ladle({"prune", "--kept"});
  ASSERT_EQ(0, r.code) << r.err;
  EXPECT_EQ("removed 1 kept container(s): " + kept[0] + "\n", r.out);
  EXPECT_TRUE(ContainersOf(data_).empty());
  EXPECT_NE(0, Docker({"image", "inspect", image.substr(0, image.find('\n'))}).code)
      << "the kept container's image goes with it";
  CommandOutput show = Ladle({"show", "1"});
  EXPECT_EQ(0, show.code) << show.err << "the run stays";
  EXPECT_EQ(std::string::npos, show.out.find("container kept")) << show.out;
}

// What happens without a daemon, or before one is asked: these run anywhere.
class NoDaemonTest : public DockerRunTest {
 protected:
  void SetUp() override { Prepare(); }
};

TEST_F(NoDaemonTest, DaemonDownIsExitThreeWithAdvice) {
  Pipeline("  - name: s\n    network: none\n    steps:\n      - {name: a, run: 'true'}\n");
  std::string host = "DOCKER_HOST=unix://" + root_.str() + "/nothing-listens.sock";
  CommandOutput r = Ladle({"run", "--backend", "docker"}, {host});
  EXPECT_EQ(3, r.code) << r.out << r.err;
  EXPECT_NE(std::string::npos, r.err.find("docker daemon at unix://" + root_.str() + "/nothing-listens.sock: "))
      << r.err;
  EXPECT_NE(std::string::npos, r.err.find("is dockerd running? start it, or use --backend local")) << r.err;
  EXPECT_FALSE(fs::exists(fs::path(data_) / "workspaces" / "1")) << "nothing ran";

}

// Issue 10: steps that name images never fall back to the host silently,
// where `memory` and `network: none` would not apply.
TEST_F(NoDaemonTest, ImageStepsDoNotRunOnTheHostWithoutBackendLocal) {
  const std::string marker = root_.str() + "/ran-on-host";
  Pipeline("  - name: s\n    network: none\n    memory: 64m\n    steps:\n      - {name: a, run: 'touch " +
           marker + "'}\n");
  std::string host = "DOCKER_HOST=unix://" + root_.str() + "/nothing-listens.sock";
  CommandOutput r = Ladle({"run"}, {host});
  EXPECT_EQ(3, r.code) << r.out << r.err;
  EXPECT_NE(std::string::npos, r.err.find("docker daemon at unix://" + root_.str() + "/nothing-listens.sock: "))
      << r.err;
  EXPECT_NE(std::string::npos, r.err.find("--backend local")) << r.err;
  EXPECT_FALSE(fs::exists(marker)) << "a step ran on the host";
  EXPECT_EQ(std::string::npos, (r.out + r.err).find("backend: local")) << r.out << r.err;

  // Only an explicit --backend local runs them on the host.
  r = Ladle({"run", "--backend", "local"}, {host});
  EXPECT_EQ(0, r.code) << r.out << r.err;
  EXPECT_NE(std::string::npos, (r.out + r.err).find("backend: local (--backend local)")) << r.out << r.err;
  EXPECT_TRUE(fs::exists(marker));
}

TEST_F(DockerRunTest, ImageThatCannotBePulledIsExitThree) {
  // Port 1 on loopback: the pull is refused at once, and nothing leaves this machine.
  WriteFile(src_ / "ladle.yml", R"yml(name: missing
image: 127.0.0.1:1/ladle/nope:1
stages:
  - name: s
    network: none
    steps:
      - {name: a, run: 'true'}
)yml");
  CommandOutput r = Ladle({"run"});
  EXPECT_EQ(3, r.code) << r.out << r.err;
  EXPECT_NE(std::string::npos,
            (r.out + r.err).find("image '127.0.0.1:1/ladle/nope:1' not found locally and could not be pulled"))
      << r.out << r.err;
  EXPECT_TRUE(ContainersOf(data_).empty());
}

TEST_F(NoDaemonTest, StepWithoutImageRunsLocallyUnlessDockerIsAsked) {
  WriteFile(src_ / "ladle.yml", "name: noimage\nstages:\n  - name: s\n    steps:\n      - {name: a, run: 'true'}\n");
  CommandOutput r = Ladle({"run"});
  EXPECT_EQ(0, r.code) << r.out << r.err;
  EXPECT_NE(std::string::npos, (r.out + r.err).find("backend: local (step s/a has no image)")) << r.out << r.err;
  r = Ladle({"run", "--backend", "docker"});
  EXPECT_EQ(2, r.code);
  EXPECT_NE(std::string::npos, r.err.find("step s/a has no image")) << r.err;
}

}  // namespace
}  // namespace ladle::docker_test
