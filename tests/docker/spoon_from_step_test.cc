// `ladle env from-step` end to end (docs/spoons.md "From a pipeline step"):
// after a `ladle run` of a two-step pipeline, the second step's spoon holds
// the first step's artifact, the step's variables and .ladle-step.sh in
// /workspace, where its shell opens; secrets only with --with-secrets.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "tests/docker/docker_test_util.h"

namespace ladle::docker_test {
namespace {

namespace fs = std::filesystem;

constexpr char kSpoonImage[] = "ladle-test-spoon:latest";

class SpoonFromStepTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LADLE_REQUIRE_DOCKER();
    daemon_ = true;
    ASSERT_EQ(0, Docker({"image", "inspect", kSpoonImage}).code)
        << kSpoonImage << " is missing: run tests/env/docker_setup.sh";
    src_ = root_.path() / "src";
    data_ = (root_.path() / "data").string();
    fs::create_directories(src_);
    WriteFile(src_ / "ladle.yml", std::string("name: fromstep\nimage: ") + kSpoonImage +
                                      "\nenv: {MYVAR: pipeline-var}\nsecrets: [MYSECRET]\n"
                                      "stages:\n"
                                      "  - name: build\n    network: none\n    steps:\n"
                                      "      - name: make\n"
                                      "        run: mkdir -p out && echo built-by-make > out/artifact.txt\n"
                                      "        artifacts: [out/artifact.txt]\n"
                                      "  - name: test\n    network: none\n    steps:\n"
                                      "      - name: check\n"
                                      "        env: {STEPVAR: step-var}\n"
                                      "        run: |\n          cat out/artifact.txt\n          echo checked\n");
    WriteFile(src_ / "source.txt", "from-the-working-tree\n");
  }
  void TearDown() override {
    if (!daemon_) return;
    for (const std::string& c : created_) Docker({"rm", "-f", c});
    for (const std::string& name : ContainersOf(data_)) Docker({"rm", "-f", name});
  }

  // ladle ARGS with `input` on stdin (no terminal).
  CommandOutput Ladle(std::vector<std::string> args, const std::string& input,
                      std::vector<std::string> env = {}) {
    WriteFile(root_.path() / "stdin.txt", input);
    std::vector<std::string> argv = {"sh", "-c", "exec \"$@\" < " + (root_.path() / "stdin.txt").string(), "sh",
                                     "env", "NO_COLOR=1", "HOME=" + root_.str(), "MYSECRET=s3cret"};
    argv.insert(argv.end(), env.begin(), env.end());
    argv.insert(argv.end(), {LADLE_BINARY, "--data", data_});
    argv.insert(argv.end(), args.begin(), args.end());
    return docker_test::Run(argv, src_.string());
  }

  TempDir root_;
  fs::path src_;
  std::string data_;
  bool daemon_ = false;
  std::vector<std::string> created_;
};

TEST_F(SpoonFromStepTest, SecondStepsSpoonHasTheFirstStepsArtifactAndItsScript) {
  CommandOutput run = Ladle({"run", "--backend", "docker"}, "");
  ASSERT_EQ(0, run.code) << run.out << run.err;

  std::string name = "fs" + std::to_string(::getpid());
  created_.push_back("spoon-" + name);
  CommandOutput r = Ladle({"env", "from-step", "test/check", "--name", name, "--no-tmux"},
                          "pwd\ncat out/artifact.txt\ncat source.txt\ncat .ladle-step.sh\n"
                          "echo \"vars: $MYVAR $STEPVAR $LADLE_STEP secret=[$MYSECRET]\"\nexit 7\n");
  EXPECT_EQ(7, r.code) << r.out << r.err;  // the shell's exit code
  EXPECT_NE(std::string::npos, r.out.find("/workspace\n")) << r.out;
  EXPECT_NE(std::string::npos, r.out.find("built-by-make")) << r.out;          // the artifact, restored
  EXPECT_NE(std::string::npos, r.out.find("from-the-working-tree")) << r.out;  // the workspace copy
  EXPECT_NE(std::string::npos, r.out.find("cat out/artifact.txt\necho checked")) << r.out;  // .ladle-step.sh
  EXPECT_NE(std::string::npos, r.out.find("vars: pipeline-var step-var check secret=[]")) << r.out;
  // The script is shown when the shell opens, and what was left out is said.
  EXPECT_NE(std::string::npos, r.err.find("step test/check, saved as /workspace/.ladle-step.sh")) << r.err;
  EXPECT_NE(std::string::npos, r.err.find("secrets not passed: MYSECRET")) << r.err;
  EXPECT_NE(std::string::npos, r.err.find("restored the artifacts of build/make from run 1")) << r.err;

  // It is a spoon like the others: listed, entered again in /workspace.
  CommandOutput list = Ladle({"env", "list"}, "");
  EXPECT_NE(std::string::npos, list.out.find(name)) << list.out;
  CommandOutput again = Ladle({"env", name, "--no-tmux"}, "pwd; ls .ladle-step.sh\n");
  EXPECT_EQ(0, again.code) << again.err;
  EXPECT_NE(std::string::npos, again.out.find("/workspace\n.ladle-step.sh")) << again.out;

  // The same name again: a clear refusal, nothing replaced.
  CommandOutput twice = Ladle({"env", "from-step", "test/check", "--name", name, "--no-tmux"}, "exit\n");
  EXPECT_NE(0, twice.code);
  EXPECT_NE(std::string::npos, twice.err.find("exists already")) << twice.err;
}

TEST_F(SpoonFromStepTest, SecretsOnlyWhenAsked) {
  std::string name = "fss" + std::to_string(::getpid());
  created_.push_back("spoon-" + name);
  CommandOutput r = Ladle({"env", "from-step", "ladle.yml", "check", "--name", name, "--no-tmux", "--with-secrets"},
                          "echo \"secret=[$MYSECRET]\"; test -f out/artifact.txt || echo no-artifact\n");
  EXPECT_EQ(0, r.code) << r.out << r.err;
  EXPECT_NE(std::string::npos, r.out.find("secret=[s3cret]")) << r.out;
  // No run kept the artifact yet: said, and the spoon is made all the same.
  EXPECT_NE(std::string::npos, r.out.find("no-artifact")) << r.out;
  EXPECT_NE(std::string::npos, r.err.find("no run of this pipeline kept the artifacts of build/make")) << r.err;
}

TEST_F(SpoonFromStepTest, UnknownStepIsNamed) {
  CommandOutput r = Ladle({"env", "from-step", "test/chekc"}, "");
  EXPECT_EQ(2, r.code) << r.out << r.err;
  EXPECT_NE(std::string::npos, r.err.find("chekc")) << r.err;
}

}  // namespace
}  // namespace ladle::docker_test
