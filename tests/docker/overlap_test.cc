// docs/backends.md "Overlapped containers": the next steps' containers are
// created (and, with this machine's daemon, started and held at a gate) while
// the steps before them run, and each one is removed after its step is done.
// The real `ladle` binary, the real daemon, the test image; every container
// has network "none".
#include <gtest/gtest.h>

#include <linux/magic.h>
#include <signal.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "runner/store/step_log.h"
#include "tests/docker/docker_test_util.h"

namespace fs = std::filesystem;

namespace ladle::docker_test {
namespace {

using Clock = std::chrono::steady_clock;

class OverlapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    src_ = root_.path() / "src";
    data_ = (root_.path() / "data").string();
    fs::create_directories(src_);
    LADLE_REQUIRE_DOCKER();
    daemon_ = true;
  }
  void TearDown() override {
    if (!daemon_) return;
    for (const std::string& name : ContainersOf(data_)) Docker({"rm", "-f", name});
  }

  void Pipeline(const std::string& steps) {
    WriteFile(src_ / "ladle.yml", "name: overlap\nimage: " + std::string(kTestImage) +
                                      "\nstages:\n  - name: s\n    network: none\n    steps:\n" + steps);
  }
  std::vector<std::string> LadleArgv(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"env", "NO_COLOR=1", LADLE_BINARY, "--data", data_};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
  // "NAME STATE" of the containers of this data dir whose ladle.step is `step`.
  std::vector<std::string> StatesOf(const std::string& step) {
    CommandOutput r = Docker({"ps", "-a", "--filter", "label=ladle.data=" + data_, "--filter",
                              "label=ladle.step=" + step, "--format", "{{.Names}} {{.State}}"});
    std::vector<std::string> out;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) out.push_back(line);
    return out;
  }
  static bool AnyIn(const std::vector<std::string>& states, const std::string& state) {
    for (const std::string& s : states)
      if (s.size() > state.size() && s.compare(s.size() - state.size(), state.size(), state) == 0)
        return true;
    return false;
  }
  // Polls until step `running` has a running container and `next` one in
  // state `next_state` (or `timeout` passes). The daemon here is on this
  // machine, so a container made ahead is started ahead too, and waits at its
  // gate ("running").
  bool SawNextCreatedWhileRunning(const std::string& running, const std::string& next,
                                  std::chrono::seconds timeout,
                                  const std::string& next_state = " running") {
    return PollUntil(timeout, [&] {
      return AnyIn(StatesOf(running), " running") && AnyIn(StatesOf(next), next_state);
    });
  }
  // Calls `done` every 100 ms until it returns true (true) or `timeout`
  // passes (false).
  static bool PollUntil(std::chrono::seconds timeout, const std::function<bool()>& done) {
    const auto end = Clock::now() + timeout;
    while (Clock::now() < end) {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  // `docker inspect --format FORMAT` of step `step`'s container; "" when it
  // has none (or the daemon could not say).
  std::string InspectStep(const std::string& step, const std::string& format) {
    for (const std::string& line : StatesOf(step)) {
      CommandOutput r = Docker({"inspect", "--format", format, line.substr(0, line.find(' '))});
      if (r.code == 0) return r.out;
    }
    return "";
  }
  // The host path mounted at /run/ladle-gate in step `step`'s container; ""
  // when it has none.
  std::string GateOf(const std::string& step) {
    const std::string out = InspectStep(
        step, "{{range .Mounts}}{{if eq .Destination \"/run/ladle-gate\"}}{{.Source}}{{end}}{{end}}");
    return out.substr(0, out.find('\n'));
  }
  // docs/backends.md "Containers started ahead": ladle runs in a mount
  // namespace of its own where `mount` covers /dev/shm, $XDG_RUNTIME_DIR
  // unset; containers are made ahead but started at their turn, and network
  // none is the daemon's. Returns ladle's output.
  std::string RunWithShmCovered(const std::string& mount) {
    Pipeline(R"yml(      - {name: first, run: 'sleep 4'}
      - {name: second, run: 'ping -c1 -W2 localhost'}
)yml");
    std::string command = mount + " && exec env -u XDG_RUNTIME_DIR";
    for (const std::string& a : LadleArgv({"run", "--backend", "docker", "-j", "1"}))
      if (a != "env") command += " '" + a + "'";
    CommandOutput r;
    std::thread run([&] { r = docker_test::Run({"unshare", "-m", "sh", "-c", command}, src_.string()); });
    const bool created = SawNextCreatedWhileRunning("first", "second", std::chrono::seconds(60), " created");
    const std::string disabled = InspectStep("second", "{{.Config.NetworkDisabled}}");
    run.join();
    EXPECT_EQ(0, r.code) << r.out << r.err;
    EXPECT_TRUE(created) << "second's container waits, created and not started, while first runs";
    EXPECT_EQ("false\n", disabled);
    EXPECT_NE(std::string::npos, Log("second").find("o PING localhost (127.0.0.1)")) << Log("second");
    EXPECT_TRUE(ContainersOf(data_).empty());
    return r.out + r.err;
  }
  std::string Log(const std::string& step, const std::string& stage = "s") {
    return ReadFile(runner::StepLogPath(data_, 1, stage, step));
  }

  TempDir root_;
  fs::path src_;
  std::string data_;
  bool daemon_ = false;
};

TEST_F(OverlapTest, NextStepsContainerIsCreatedWhileThePreviousRuns) {
  Pipeline(R"yml(      - {name: first, run: 'echo one; sleep 4; echo one-err >&2'}
      - {name: second, run: 'echo two; echo "$LADLE_STEP"; exit 0'}
      - {name: third, run: 'echo three'}
)yml");
  CommandOutput r;
  std::thread run([&] { r = docker_test::Run(LadleArgv({"run", "--backend", "docker", "-j", "1"}), src_.string()); });
  const bool overlapped = SawNextCreatedWhileRunning("first", "second", std::chrono::seconds(60));
  run.join();
  EXPECT_TRUE(overlapped) << "second's container is running (at its gate) while first runs";
  ASSERT_EQ(0, r.code) << r.out << r.err;
  // The logs and the live output are what they were without the overlap.
  EXPECT_NE(std::string::npos, Log("first").find("o one\n")) << Log("first");
  EXPECT_NE(std::string::npos, Log("first").find("e one-err\n")) << Log("first");
  EXPECT_NE(std::string::npos, Log("second").find("o two\no second\n")) << Log("second");
  EXPECT_NE(std::string::npos, Log("third").find("o three\n")) << Log("third");
  EXPECT_NE(std::string::npos, r.out.find("[s/second] two")) << r.out;
  EXPECT_EQ(std::string::npos, (r.out + r.err).find("cleanup")) << r.out << r.err;
  EXPECT_TRUE(ContainersOf(data_).empty()) << "every container is removed by the end of the run";
}

TEST_F(OverlapTest, SecretsAndMaskingHoldForAStepCreatedAhead) {
  WriteFile(src_ / "ladle.yml", "name: overlap\nimage: " + std::string(kTestImage) + R"yml(
secrets: [DEPLOY_TOKEN]
stages:
  - name: s
    network: none
    steps:
      - {name: first, run: 'sleep 3'}
      - {name: second, run: 'echo "token is $DEPLOY_TOKEN"; ls /run/ladle-secrets'}
)yml");
  CommandOutput r;
  std::thread run([&] {
    std::vector<std::string> argv = LadleArgv({"run", "-j", "1"});
    argv.insert(argv.begin() + 1, "DEPLOY_TOKEN=hunter2-very-secret");
    r = docker_test::Run(argv, src_.string());
  });
  const bool overlapped = SawNextCreatedWhileRunning("first", "second", std::chrono::seconds(60));
  run.join();
  EXPECT_TRUE(overlapped);
  ASSERT_EQ(0, r.code) << r.out << r.err;
  EXPECT_NE(std::string::npos, Log("second").find("o token is ***\n")) << Log("second");
  EXPECT_EQ(std::string::npos, (r.out + r.err + Log("second")).find("hunter2"));
  EXPECT_TRUE(ContainersOf(data_).empty());
}

TEST_F(OverlapTest, CancelBetweenCreateAndStartLeavesNoContainer) {
  Pipeline(R"yml(      - {name: first, run: 'sleep 60'}
      - {name: second, run: 'echo never'}
)yml");
  const fs::path pid_file = root_.path() / "pid";
  std::string command;
  for (const std::string& a : LadleArgv({"run", "--backend", "docker", "-j", "1"}))
    command += "'" + a + "' ";
  CommandOutput r;
  std::thread run([&] {
    r = docker_test::Run({"sh", "-c", command + "& echo $! > '" + pid_file.string() + "'; wait $!"}, src_.string());
  });
  const bool overlapped = SawNextCreatedWhileRunning("first", "second", std::chrono::seconds(60));
  const std::string pid = ReadFile(pid_file);
  ASSERT_FALSE(pid.empty());
  ::kill(std::stoi(pid), SIGTERM);  // a background job of sh ignores SIGINT
  run.join();
  ASSERT_TRUE(overlapped) << "the test needs second's container created before the cancel";
  EXPECT_EQ(143, r.code) << r.out << r.err;
  EXPECT_EQ(std::string::npos, r.out.find("never")) << r.out;
  CommandOutput left = Docker({"ps", "-a", "--filter", "label=ladle.data=" + data_, "--filter",
                               "label=ladle.run=1", "--format", "{{.Names}}"});
  EXPECT_EQ(0, left.code) << left.err;
  EXPECT_EQ("", left.out) << "nothing of the cancelled run is left";
}

TEST_F(OverlapTest, MissingImageOfTheNextStepStillGetsItsError) {
  // Port 1 on loopback: the pull is refused at once, and nothing leaves this machine.
  Pipeline(R"yml(      - {name: first, run: 'sleep 2'}
      - {name: second, image: '127.0.0.1:1/ladle/nope:1', run: 'true'}
)yml");
  CommandOutput r = docker_test::Run(LadleArgv({"run", "--backend", "docker", "-j", "1"}), src_.string());
  EXPECT_EQ(3, r.code) << r.out << r.err;
  EXPECT_NE(std::string::npos,
            (r.out + r.err).find("image '127.0.0.1:1/ladle/nope:1' not found locally and could not be pulled"))
      << r.out << r.err;
  EXPECT_NE(std::string::npos, Log("second").find("could not be pulled")) << Log("second");
  EXPECT_TRUE(ContainersOf(data_).empty());
}

TEST_F(OverlapTest, StepThatNeedsAFailedOneIsNotStartedAndItsContainerGoes) {
  // second would come next, but first fails: second is skipped, third runs.
  Pipeline(R"yml(      - {name: first, run: 'sleep 3; exit 4'}
      - {name: second, needs: [first], run: 'echo never'}
      - {name: third, run: 'echo three'}
)yml");
  CommandOutput r;
  std::thread run([&] { r = docker_test::Run(LadleArgv({"run", "--backend", "docker", "-j", "1"}), src_.string()); });
  const bool overlapped = SawNextCreatedWhileRunning("first", "second", std::chrono::seconds(60));
  run.join();
  EXPECT_TRUE(overlapped);
  EXPECT_EQ(1, r.code) << r.out << r.err;
  EXPECT_EQ(std::string::npos, r.out.find("never")) << r.out;
  EXPECT_NE(std::string::npos, r.out.find("[s/third] three")) << r.out;
  EXPECT_TRUE(ContainersOf(data_).empty());
}

// docs/backends.md "Containers started ahead": the next step's container is
// started while the step before it runs, but its script waits for its turn.
TEST_F(OverlapTest, ContainerStartedAheadRunsItsScriptOnlyAtItsTurn) {
  Pipeline(R"yml(      - {name: first, run: 'sleep 4; if test -e second-ran; then echo too-early; else echo second-waits; fi'}
      - {name: second, run: 'touch second-ran; echo two'}
)yml");
  CommandOutput r;
  std::thread run([&] { r = docker_test::Run(LadleArgv({"run", "--backend", "docker", "-j", "1"}), src_.string()); });
  const bool ahead = SawNextCreatedWhileRunning("first", "second", std::chrono::seconds(60));
  const std::string gate = GateOf("second");
  const bool gate_there = !gate.empty() && fs::exists(gate);
  run.join();
  EXPECT_TRUE(ahead) << "second's container runs (at its gate) while first runs";
  EXPECT_TRUE(gate_there) << "second waits at a FIFO mounted at /run/ladle-gate: '" << gate << "'";
  ASSERT_EQ(0, r.code) << r.out << r.err;
  EXPECT_NE(std::string::npos, Log("first").find("o second-waits\n")) << Log("first");
  EXPECT_NE(std::string::npos, Log("second").find("o two\n")) << Log("second");
  EXPECT_FALSE(!gate.empty() && fs::exists(gate)) << "the gate " << gate << " is removed with its step";
  EXPECT_TRUE(ContainersOf(data_).empty());
}

// With two jobs, the next stage's steps get their containers while this
// stage runs; when this stage fails they are removed, their scripts unrun.
TEST_F(OverlapTest, NextStagesStepsAreMadeAheadAndGoWhenTheStageFails) {
  WriteFile(src_ / "ladle.yml", "name: overlap\nimage: " + std::string(kTestImage) + R"yml(
stages:
  - name: a
    network: none
    steps:
      - {name: one, run: 'sleep 4; exit 5'}
      - {name: two, run: 'sleep 5; ls; if test -e three-ran || test -e four-ran; then echo too-early; fi'}
  - name: b
    network: none
    steps:
      - {name: three, run: 'touch three-ran'}
      - {name: four, run: 'touch four-ran'}
)yml");
  CommandOutput r;
  std::thread run([&] { r = docker_test::Run(LadleArgv({"run", "--backend", "docker", "-j", "2"}), src_.string()); });
  const bool ahead = PollUntil(std::chrono::seconds(60), [&] {
    return AnyIn(StatesOf("one"), " running") && AnyIn(StatesOf("three"), " running") &&
           AnyIn(StatesOf("four"), " running");
  });
  run.join();
  EXPECT_TRUE(ahead) << "stage b's two containers wait at their gates while stage a runs";
  EXPECT_EQ(1, r.code) << r.out << r.err;
  EXPECT_NE(std::string::npos, Log("two", "a").find("o ladle.yml\n")) << Log("two", "a");
  EXPECT_EQ(std::string::npos, Log("two", "a").find("too-early")) << Log("two", "a");
  EXPECT_TRUE(ContainersOf(data_).empty()) << "stage b's containers are removed with the run";
}

// docs/backends.md "Network none": the daemon sets up no network (no hook
// per container), and the step still has loopback and resolves localhost.
TEST_F(OverlapTest, NetworkNoneStepHasLoopbackWithoutTheDaemonsNetworkSetUp) {
  Pipeline(R"yml(      - {name: first, run: 'ping -c1 -W2 localhost; ping -c1 -W2 ip6-localhost; sleep 3'}
)yml");
  CommandOutput r;
  std::thread run([&] { r = docker_test::Run(LadleArgv({"run", "--backend", "docker", "-j", "1"}), src_.string()); });
  std::string disabled;
  PollUntil(std::chrono::seconds(60), [&] {
    disabled = InspectStep("first", "{{.Config.NetworkDisabled}} {{.HostConfig.NetworkMode}}");
    return !disabled.empty();
  });
  run.join();
  EXPECT_EQ("true none\n", disabled);
  ASSERT_EQ(0, r.code) << r.out << r.err;
  EXPECT_NE(std::string::npos, Log("first").find("o PING localhost (127.0.0.1)")) << Log("first");
  EXPECT_NE(std::string::npos, Log("first").find("o PING ip6-localhost (::1)")) << Log("first");
  EXPECT_EQ(std::string::npos, Log("first").find("0 packets received")) << Log("first");
  EXPECT_TRUE(ContainersOf(data_).empty());
}

// docs/backends.md "Containers started ahead": ladle runs in a mount
// namespace of its own where `mount` covers /dev/shm; containers are made
// ahead but started at their turn, and network none is the daemon's. Returns
// ladle's output.
TEST_F(OverlapTest, WithoutATmpfsStepsStartAtTheirTurnWithTheDaemonsNetwork) {
  // Not below the temporary directory: /tmp may be a tmpfs itself. The
  // test binary's directory is on the build's disk.
  const fs::path plain = fs::current_path() / ("not-a-tmpfs-" + std::to_string(::getpid()));
  fs::create_directories(plain);
  struct Cleanup {
    fs::path p;
    ~Cleanup() { fs::remove_all(p); }
  } cleanup{plain};
  struct statfs st;
  ASSERT_EQ(0, ::statfs(plain.c_str(), &st));
  ASSERT_NE(static_cast<long>(TMPFS_MAGIC), static_cast<long>(st.f_type))
      << plain << " is on a tmpfs: the test needs a directory that is not";
  RunWithShmCovered("mount --bind '" + plain.string() + "' /dev/shm");
  EXPECT_TRUE(fs::is_empty(plain)) << "nothing was written where no tmpfs is";
}

// ladle's own tmpfs, which the daemon outside its namespace cannot see: the
// first refused mount makes ladle go on without the step's files.
TEST_F(OverlapTest, ATmpfsTheDaemonCannotSeeIsGivenUpOnce) {
  const std::string out = RunWithShmCovered("mount -t tmpfs tmpfs /dev/shm");
  EXPECT_NE(std::string::npos, out.find("the docker daemon does not see /dev/shm/ladle-step-")) << out;
}

}  // namespace
}  // namespace ladle::docker_test
