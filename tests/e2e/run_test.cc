// End-to-end tests of `ladle run` and the history commands: the real binary,
// real pipelines in temp dirs, the local backend, real SQLite.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "env/subprocess.h"
#include "runner/cli/terminal_view.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct Result {
  int code = -1;
  std::string out, err;
  std::string all() const { return out + err; }
};

class RunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = ladle::testing::MakeTempDir("/tmp/ladle-e2e-XXXXXX");
    src_ = root_ / "src";
    data_ = root_ / "data";
    fs::create_directories(src_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  void Write(const std::string& rel, const std::string& text) {
    fs::path p = src_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }
  static std::string Read(const fs::path& p) { return ladle::testing::ReadFile(p); }

  // Where a test's steps append the pids of what they leave behind, so a
  // failing test ends exactly those processes (by id) and nothing else.
  fs::path PidFile() const { return root_ / "pids"; }
  void KillRecordedPids() const {
    std::ifstream in(PidFile());
    for (long pid; in >> pid;)
      if (pid > 1) ::kill(static_cast<pid_t>(pid), SIGKILL);
  }

  // Runs `ladle --data DATA ARGS...` in the source dir, with extra variables.
  Result Ladle(std::vector<std::string> args, std::vector<std::string> env = {}) {
    std::vector<std::string> argv = {"env", "NO_COLOR=1"};
    argv.insert(argv.end(), env.begin(), env.end());
    argv.push_back(LADLE_BINARY);
    argv.push_back("--data");
    argv.push_back(data_.string());
    argv.insert(argv.end(), args.begin(), args.end());
    return Exec(argv);
  }
  Result Exec(const std::vector<std::string>& argv) {
    ladle::env::CommandResult r;
    ladle::Status s = ladle::env::RunCommand(argv, src_.string(), &r, std::chrono::seconds(120));
    EXPECT_TRUE(s.ok()) << s.ToString();
    return {r.exit_code, r.out, r.err};
  }
  Result Sh(const std::string& script) { return Exec({"sh", "-c", script}); }

  json Show(int run) {
    Result r = Ladle({"--json", "show", std::to_string(run)});
    EXPECT_EQ(0, r.code) << r.all();
    return json::parse(r.out, nullptr, false);
  }
  static json Stage(const json& run, const std::string& name) {
    for (const json& s : run["stages"])
      if (s["name"] == name) return s;
    return json();
  }
  static json StepOf(const json& run, const std::string& stage, const std::string& step) {
    const json st = Stage(run, stage);
    for (const json& s : st["steps"])
      if (s["name"] == step) return s;
    return json();
  }

  fs::path root_, src_, data_;
};

TEST_F(RunTest, DemoPipelineDeploysToProduction) {
  fs::path demo = fs::path(LADLE_SOURCE_DIR) / "pipelines";
  fs::copy(demo, src_ / "pipelines", fs::copy_options::recursive);
  fs::path deploy = root_ / "deploy";
  Result r = Ladle({"run", "pipelines/demo.yml", "--backend", "local", "--env",
                    "DEPLOY_DIR=" + deploy.string()});
  ASSERT_EQ(0, r.code) << r.all();
  EXPECT_NE(std::string::npos, r.out.find("run 1 success")) << r.out;
  EXPECT_NE(std::string::npos, r.out.find("tests 4 passed, 0 failed")) << r.out;
  EXPECT_EQ("hello, world\n", Sh(deploy.string() + "/production/app").out);
  json run = Show(1);
  EXPECT_EQ("success", run["status"]);
  EXPECT_EQ(4, Stage(run, "test")["tests"]["total"]);
  EXPECT_FALSE(fs::exists(src_ / "build")) << "the user's tree must stay untouched";
}

TEST_F(RunTest, InvalidPipelineExitsTwoWithLocation) {
  Write("ladle.yml", "name: x\nstages:\n  - name: build\n    steps:\n      - name: a\n        runn: true\n");
  Result r = Ladle({"run"});
  EXPECT_EQ(2, r.code);
  EXPECT_NE(std::string::npos, r.err.find("ladle.yml:6:9:")) << r.err;
  EXPECT_FALSE(fs::exists(data_ / "ladle.db")) << "nothing recorded for an invalid pipeline";
  EXPECT_EQ(2, Ladle({"validate"}).code);
}

TEST_F(RunTest, GateFailsWhenNoTestRanAndLaterStagesAreSkipped) {
  Write("ladle.yml", R"(name: gated
stages:
  - name: test
    gate: {min_tests: 1}
    steps:
      - name: unit
        run: echo "all good, trust me"
        reports: {junit: "out/*.xml"}
  - name: deploy
    environment: production
    steps:
      - {name: ship, run: touch shipped}
)");
  Result r = Ladle({"run"});
  EXPECT_EQ(1, r.code) << r.all();
  json run = Show(1);
  EXPECT_EQ("failed", run["status"]);
  EXPECT_EQ("failed", Stage(run, "test")["status"]);
  EXPECT_EQ("success", StepOf(run, "test", "unit")["status"]);
  EXPECT_EQ(0, Stage(run, "test")["tests"]["total"]);
  EXPECT_EQ("skipped", Stage(run, "deploy")["status"]);
  EXPECT_NE(std::string::npos, r.out.find("out/*.xml")) << "the message names the glob: " << r.out;
}

TEST_F(RunTest, FailedStepSkipsItsDependentsButSiblingsFinish) {
  Write("ladle.yml", R"(name: deps
stages:
  - name: build
    steps:
      - {name: broken, run: "echo oops >&2; exit 3"}
      - {name: after, run: "true", needs: [broken]}
      - {name: sibling, run: "sleep 0.3; echo sibling done"}
  - name: later
    steps:
      - {name: never, run: "true"}
)");
  Result r = Ladle({"run"});
  EXPECT_EQ(1, r.code);
  json run = Show(1);
  EXPECT_EQ("failed", StepOf(run, "build", "broken")["status"]);
  EXPECT_EQ(3, StepOf(run, "build", "broken")["exit_code"]);
  EXPECT_EQ("skipped", StepOf(run, "build", "after")["status"]);
  EXPECT_EQ("success", StepOf(run, "build", "sibling")["status"]);
  EXPECT_EQ("skipped", Stage(run, "later")["status"]);
  Result logs = Ladle({"logs", "1", "build/broken"});
  EXPECT_NE(std::string::npos, logs.out.find("oops")) << logs.all();
}

TEST_F(RunTest, SecretsAreMaskedInOutputAndLogs) {
  Write("ladle.yml", R"(name: secrets
secrets: [DEPLOY_TOKEN]
stages:
  - name: deploy
    steps:
      - {name: show, run: 'echo "token is $DEPLOY_TOKEN"; echo "$DEPLOY_TOKEN" >&2'}
)");
  Result r = Ladle({"run"}, {"DEPLOY_TOKEN=hunter2-very-secret"});
  EXPECT_EQ(0, r.code) << r.all();
  EXPECT_EQ(std::string::npos, r.all().find("hunter2")) << r.all();
  EXPECT_NE(std::string::npos, r.out.find("token is ***")) << r.out;
  Result logs = Ladle({"logs", "1", "show"});
  EXPECT_EQ(std::string::npos, logs.all().find("hunter2"));
  EXPECT_NE(std::string::npos, logs.out.find("token is ***"));
}

TEST_F(RunTest, TimeoutKillsTheWholeTree) {
  Write("ladle.yml", R"(name: slow
stages:
  - name: build
    steps:
      - name: hang
        run: |
          sleep 1001 &
          sleep 1002
        timeout: 1s
)");
  auto start = std::chrono::steady_clock::now();
  Result r = Ladle({"run"});
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(1, r.code);
  EXPECT_LT(took, std::chrono::seconds(15));
  json step = StepOf(Show(1), "build", "hang");
  EXPECT_EQ("failed", step["status"]);
  EXPECT_EQ("timeout", step["failure_reason"]);
  EXPECT_NE(0, Sh("pgrep -f 'sleep 100[12]'").code) << "no sleep may survive the timeout";
}

// Regression (issue 10): processes that left the process group and cleared
// their environment (`setsid env -i`, a daemon) outlived their step.
TEST_F(RunTest, NoProcessOutlivesTheRunEvenSetsidEnvDashI) {
  Write("ladle.yml", R"(name: leaky
stages:
  - name: build
    steps:
      - name: daemon
        run: |
          setsid env -i sh -c 'exec sleep 2001' >/dev/null 2>&1 &
          echo $! >> "$PIDS"
          sleep 0.5
          echo left a daemon
      - name: no-workspace
        run: |
          (unset LADLE_WORKSPACE; exec setsid sleep 2002) >/dev/null 2>&1 &
          echo $! >> "$PIDS"
          sleep 0.5
)");
  Result r = Ladle({"run"}, {"PIDS=" + PidFile().string()});
  EXPECT_EQ(0, r.code) << r.all();
  EXPECT_EQ("success", Show(1)["status"]);
  EXPECT_NE(0, Sh("pgrep -f 'sleep 200[12]'").code) << "a step's process outlived the run";
  KillRecordedPids();
}

// The fallback where no cgroup can be used (docs/backends.md "How kill
// works"): the process group and the marker still end what keeps its
// environment, `setsid` included.
TEST_F(RunTest, WithoutCgroupsTheGroupAndMarkerStillEndTheTree) {
  Write("ladle.yml", R"(name: fallback
stages:
  - name: build
    steps:
      - name: daemons
        run: |
          sleep 2004 &
          echo $! >> "$PIDS"
          setsid sleep 2005 >/dev/null 2>&1 &
          echo $! >> "$PIDS"
          sleep 0.5
)");
  Result r = Ladle({"run"}, {"LADLE_CGROUPS=off", "PIDS=" + PidFile().string()});
  EXPECT_EQ(0, r.code) << r.all();
  EXPECT_NE(0, Sh("pgrep -f 'sleep 200[45]'").code) << "a step's process outlived the run";
  KillRecordedPids();
}

// Regression (issue 10): `ladle run | head -3` died of SIGPIPE and left its
// step running. It now runs the pipeline to its end, the rest of the output
// going to the logs only.
TEST_F(RunTest, ReaderThatGoesAwayDoesNotStopTheRun) {
  Write("ladle.yml", R"(name: chatty
stages:
  - name: first
    steps:
      - {name: lines, run: "seq 1 2000; sleep 2003 & echo $! >> \"$PIDS\"; sleep 0.5"}
  - name: later
    steps:
      - {name: last, run: "sleep 0.5; echo later-output"}
)");
  std::string ladle = std::string(LADLE_BINARY) + " --data " + data_.string();
  Result r = Sh("NO_COLOR=1 PIDS=" + PidFile().string() + " " + ladle + " run | head -3; echo \"head=$?\"");
  EXPECT_NE(std::string::npos, r.out.find("head=0")) << r.all();
  json run = Show(1);
  EXPECT_EQ("success", run["status"]) << run.dump(1);
  EXPECT_EQ("success", StepOf(run, "later", "last")["status"]);
  Result logs = Ladle({"logs", "1", "later/last"});
  EXPECT_NE(std::string::npos, logs.out.find("later-output")) << logs.all();
  EXPECT_NE(0, Sh("pgrep -f 'sleep 200[3]'").code) << "a step's process outlived the run";
  KillRecordedPids();
  // (sh waits for every command of the pipeline: had ladle not exited as its
  // run ended, Sh would not have returned.)
}

TEST_F(RunTest, RetryRunsAgainAndOnlyTheLastAttemptCounts) {
  Write("ladle.yml", R"(name: flaky
stages:
  - name: test
    steps:
      - name: flaky
        run: |
          n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count
          echo "attempt $n"
          test $n -ge 2
        retry: 2
      - {name: lint, run: "exit 1", allow_failure: true}
)");
  Result r = Ladle({"run"});
  EXPECT_EQ(0, r.code) << r.all();
  json run = Show(1);
  EXPECT_EQ("success", StepOf(run, "test", "flaky")["status"]);
  EXPECT_EQ(2, StepOf(run, "test", "flaky")["attempts"]);
  EXPECT_EQ("failed", StepOf(run, "test", "lint")["status"]);
  EXPECT_EQ(true, StepOf(run, "test", "lint")["allow_failure"]);
  EXPECT_EQ("success", Stage(run, "test")["status"]);
}

TEST_F(RunTest, SigtermCancelsAndLeavesNoProcess) {
  Write("ladle.yml", R"(name: cancel
stages:
  - name: build
    steps:
      - {name: a, run: "sleep 1003"}
      - {name: b, run: "trap '' TERM; sleep 1004"}
  - name: later
    steps:
      - {name: c, run: "true"}
)");
  std::string ladle = std::string(LADLE_BINARY) + " --data " + data_.string();
  Result r = Sh("NO_COLOR=1 " + ladle + " run > out.txt 2>&1 & pid=$!; sleep 1; kill -TERM $pid; wait $pid; echo $?");
  EXPECT_EQ("143\n", r.out) << Read(src_ / "out.txt");
  json run = Show(1);
  EXPECT_EQ("cancelled", run["status"]);
  EXPECT_EQ("cancelled", StepOf(run, "build", "a")["status"]);
  EXPECT_EQ("skipped", Stage(run, "later")["status"]);
  EXPECT_NE(0, Sh("pgrep -f 'sleep 100[34]'").code) << "every step's tree must end";
}

TEST_F(RunTest, CtrlCCancelsWithExit130) {
  Write("ladle.yml", "name: i\nstages:\n  - name: s\n    steps:\n      - {name: a, run: sleep 1007}\n");
  std::string ladle = std::string(LADLE_BINARY) + " --data " + data_.string();
  Result r = Sh(ladle + " run > out.txt 2>&1 & pid=$!; sleep 1; kill -INT $pid; wait $pid; echo $?");
  EXPECT_EQ("130\n", r.out) << Read(src_ / "out.txt");
  EXPECT_EQ("cancelled", Show(1)["status"]);
  EXPECT_NE(0, Sh("pgrep -f 'sleep 100[7]'").code);
}

TEST_F(RunTest, CancelCommandStopsARunOfAnotherProcess) {
  Write("ladle.yml", "name: c\nstages:\n  - name: s\n    steps:\n      - {name: a, run: sleep 1006}\n");
  std::string ladle = std::string(LADLE_BINARY) + " --data " + data_.string();
  Result r = Sh(ladle + " run > /dev/null 2>&1 & pid=$!; sleep 1; " + ladle +
                " cancel 1; wait $pid; echo \"exit=$?\"");
  EXPECT_NE(std::string::npos, r.out.find("cancelling run 1")) << r.all();
  EXPECT_NE(std::string::npos, r.out.find("exit=143")) << r.all();
  EXPECT_EQ("cancelled", Show(1)["status"]);
  EXPECT_EQ(2, Ladle({"cancel", "1"}).code) << "a finished run cannot be cancelled";
}

TEST_F(RunTest, KilledRunnerLeavesARunMarkedInterrupted) {
  Write("ladle.yml", "name: k\nstages:\n  - name: s\n    steps:\n      - {name: a, run: 'echo $$ >> \"$PIDS\"; exec sleep 1005'}\n");
  std::string ladle = "PIDS=" + PidFile().string() + " " + LADLE_BINARY + " --data " + data_.string();
  Sh(ladle + " run > /dev/null 2>&1 & pid=$!; sleep 1; kill -KILL $pid; wait $pid; true");
  KillRecordedPids();
  Result r = Ladle({"--json", "runs"});
  json runs = json::parse(r.out, nullptr, false);
  ASSERT_TRUE(runs.is_array()) << r.all();
  ASSERT_EQ(1u, runs.size());
  EXPECT_EQ("interrupted", runs[0]["status"]);
}

TEST_F(RunTest, StepRunsAloneWithArtifactsOfTheNewestRun) {
  Write("ladle.yml", R"(name: art
stages:
  - name: build
    steps:
      - {name: compile, run: "mkdir -p bin && echo v$RANDOM > bin/app", artifacts: [bin/app]}
  - name: test
    steps:
      - {name: unit, run: "cat bin/app"}
      - {name: other, run: "touch other-ran"}
)");
  ASSERT_EQ(0, Ladle({"run"}).code);
  std::string built = Read(data_ / "artifacts/1/build/compile/bin/app");
  ASSERT_FALSE(built.empty());
  Result r = Ladle({"run", "--step", "unit"});
  EXPECT_EQ(0, r.code) << r.all();
  EXPECT_NE(std::string::npos, r.out.find("from run 1")) << r.out;
  EXPECT_NE(std::string::npos, r.out.find(built.substr(0, built.size() - 1))) << r.out;
  json run = Show(2);
  EXPECT_EQ("skipped", StepOf(run, "build", "compile")["status"]);
  EXPECT_EQ("skipped", StepOf(run, "test", "other")["status"]);
  EXPECT_EQ(2, Ladle({"run", "--step", "nope"}).code);
}

TEST_F(RunTest, WhenBranchSkipsOnOtherBranches) {
  Write("ladle.yml", R"(name: branches
stages:
  - name: build
    steps: [{name: a, run: "true"}]
  - name: production
    when: {branch: [main]}
    steps: [{name: ship, run: "true"}]
)");
  ASSERT_EQ(0, Sh("git init -q -b feature/x && git add -A && git -c user.email=t@t -c user.name=t commit -qm init").code);
  Result r = Ladle({"run"});
  EXPECT_EQ(0, r.code) << r.all();
  json run = Show(1);
  EXPECT_EQ("feature/x", run["branch"]);
  EXPECT_EQ("skipped", Stage(run, "production")["status"]);
}

TEST_F(RunTest, WorkspaceHoldsTrackedAndUntrackedButNotIgnoredFiles) {
  Write("ladle.yml", R"(name: ws
stages:
  - name: s
    steps:
      - name: look
        run: |
          test -f tracked.txt && test -f untracked.txt && test ! -e ignored.txt
          echo made > made-by-step
)");
  Write("tracked.txt", "t");
  Write(".gitignore", "ignored.txt\n");
  ASSERT_EQ(0, Sh("git init -q -b main && git add ladle.yml tracked.txt .gitignore && "
                  "git -c user.email=t@t -c user.name=t commit -qm init").code);
  Write("untracked.txt", "u");
  Write("ignored.txt", "i");
  Result r = Ladle({"run"});
  EXPECT_EQ(0, r.code) << r.all();
  EXPECT_FALSE(fs::exists(src_ / "made-by-step"));
  EXPECT_TRUE(fs::exists(data_ / "workspaces/1/made-by-step"));
}

TEST_F(RunTest, LogsFollowWhileAnotherProcessRuns) {
  Write("ladle.yml", R"(name: follow
stages:
  - name: s
    steps:
      - name: tick
        run: for i in 1 2 3 4 5; do echo "tick $i"; sleep 0.3; done
)");
  std::string ladle = std::string(LADLE_BINARY) + " --data " + data_.string();
  Result r = Sh(ladle + " run > /dev/null 2>&1 & sleep 0.6; " + ladle + " logs 1 tick -f; wait");
  EXPECT_EQ("tick 1\ntick 2\ntick 3\ntick 4\ntick 5\n", r.out) << r.err;
}

TEST_F(RunTest, RunsListsNewestFirstAsJson) {
  Write("ladle.yml", "name: list\nstages:\n  - name: s\n    steps: [{name: a, run: 'true'}]\n");
  ASSERT_EQ(0, Ladle({"run"}).code);
  ASSERT_EQ(0, Ladle({"run"}).code);
  json runs = json::parse(Ladle({"--json", "runs"}).out, nullptr, false);
  ASSERT_EQ(2u, runs.size());
  EXPECT_EQ(2, runs[0]["id"]);
  EXPECT_EQ(1, runs[1]["id"]);
  EXPECT_NE(std::string::npos, Ladle({"runs"}).out.find("success"));
  EXPECT_EQ(2, Ladle({"show", "99"}).code);
}

TEST_F(RunTest, PruneDeletesFinishedRunsWithTheirLogs) {
  Write("ladle.yml", "name: old\nstages:\n  - name: s\n    steps: [{name: a, run: 'echo hi'}]\n");
  ASSERT_EQ(0, Ladle({"run"}).code);
  ASSERT_TRUE(fs::exists(data_ / "logs" / "1"));
  Result r = Ladle({"prune", "--older-than", "1h"});
  ASSERT_EQ(0, r.code) << r.all();
  EXPECT_EQ("pruned 0 run(s) that finished more than 1h ago\n", r.out);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  r = Ladle({"prune", "--older-than", "1s"});
  ASSERT_EQ(0, r.code) << r.all();
  EXPECT_EQ("pruned 1 run(s) that finished more than 1s ago\n", r.out);
  EXPECT_FALSE(fs::exists(data_ / "logs" / "1"));
  EXPECT_FALSE(fs::exists(data_ / "workspaces" / "1"));
  EXPECT_EQ(2, Ladle({"show", "1"}).code);
  r = Ladle({"prune", "--older-than", "soon"});
  EXPECT_EQ(2, r.code);
  EXPECT_NE(std::string::npos, r.err.find("--older-than 'soon'")) << r.err;
}

// docs/design.md "Toggles in a run": without $LADLE_SERVER the sync goes
// straight into the data dir's store, and the run says so; the new toggle is
// off, an existing one is left.
TEST_F(RunTest, TogglesSyncGoesToTheDataDirStoreWithoutAServer) {
  Write("toggles.yml", "- {key: dark-one, type: release, description: shipped dark}\n");
  Write("ladle.yml", R"(name: dark
stages:
  - name: production
    environment: production
    toggles: toggles.yml
    steps: [{name: deploy, run: 'true'}]
)");
  Result r = Ladle({"run"}, {"LADLE_SERVER="});
  ASSERT_EQ(0, r.code) << r.all();
  EXPECT_NE(std::string::npos, r.all().find("toggles: the toggle store in")) << r.all();
  EXPECT_NE(std::string::npos, r.all().find("1 created (off)")) << r.all();
  EXPECT_TRUE(fs::exists(data_ / "toggles.db"));
  r = Ladle({"--json", "deployments"});
  ASSERT_EQ(0, r.code) << r.all();
  json d = json::parse(r.out, nullptr, false)["deployments"];
  ASSERT_EQ(1u, d.size()) << r.out;
  EXPECT_EQ("production", d[0]["environment"]);
  EXPECT_EQ("success", d[0]["status"]);
  r = Ladle({"run"}, {"LADLE_SERVER="});
  ASSERT_EQ(0, r.code) << r.all();
  EXPECT_NE(std::string::npos, r.all().find("0 created (off), 0 updated, 1 unchanged")) << r.all();
}

// docs/running.md "Tests by name": the failed test cases, 10 at most and
// the count of the rest, in the summary, `ladle show` and the JSON.
TEST_F(RunTest, FailedTestsAreNamedInSummaryShowAndJson) {
  std::string xml = "<testsuite name='s'>";
  for (int i = 0; i < 12; ++i)
    xml += "<testcase classname='cart' name='t" + std::to_string(i) +
           "'><failure message='expected 1&#10;second line'/></testcase>";
  xml += "<testcase classname='cart' name='ok'/></testsuite>";
  Write("report.xml", xml);
  Write("ladle.yml", R"(name: named
stages:
  - name: test
    steps:
      - name: unit
        run: mkdir -p out && cp report.xml out/ && exit 1
        reports: {junit: "out/*.xml"}
)");
  Result r = Ladle({"run", "--backend", "local"});
  EXPECT_EQ(1, r.code) << r.all();
  EXPECT_NE(std::string::npos, r.out.find("✗ cart.t0: expected 1 second line\n")) << r.out;
  EXPECT_NE(std::string::npos, r.out.find("✗ cart.t9: expected 1")) << r.out;
  EXPECT_EQ(std::string::npos, r.out.find("cart.t10")) << r.out;
  EXPECT_NE(std::string::npos, r.out.find("and 2 more failed tests\n")) << r.out;
  // The stage's message does not repeat its status ("failed: failed: unit").
  EXPECT_NE(std::string::npos, r.out.find("[test] failed: step unit failed\n")) << r.out;
  EXPECT_EQ(std::string::npos, r.out.find("failed: failed")) << r.out;

  Result show = Ladle({"show", "1"});
  EXPECT_EQ(0, show.code) << show.all();
  EXPECT_NE(std::string::npos, show.out.find("✗ cart.t3: expected 1 second line\n")) << show.out;
  EXPECT_NE(std::string::npos, show.out.find("and 2 more failed tests\n")) << show.out;

  json step = StepOf(Show(1), "test", "unit");
  ASSERT_EQ(10u, step["failed_tests"].size()) << step.dump();
  EXPECT_EQ(json::parse(R"({"suite": "cart", "name": "t0", "message": "expected 1 second line"})"),
            step["failed_tests"][0]);
  EXPECT_EQ(2, step["failed_tests_more"]);
}

// Issue 11: `--env K=V FILE` read FILE as a second K=V.
TEST_F(RunTest, EnvTakesOneValuePerFlag) {
  Write("other.yml", R"(name: env
stages:
  - name: a
    steps:
      - {name: b, run: 'echo "K is $K and J is $J"'}
)");
  Result r = Ladle({"run", "--backend", "local", "--env", "K=1", "--env", "J=2", "other.yml"});
  EXPECT_EQ(0, r.code) << r.all();
  EXPECT_NE(std::string::npos, r.out.find("K is 1 and J is 2")) << r.out;
}

// Issue 11: `ladle deployments` on an empty data dir exited 3.
TEST_F(RunTest, DeploymentsOnAnEmptyDataDirSaysNoneYet) {
  Result r = Ladle({"deployments"});
  EXPECT_EQ(0, r.code) << r.all();
  EXPECT_EQ("no deployments yet\n", r.out);
  r = Ladle({"--json", "deployments"});
  EXPECT_EQ(0, r.code) << r.all();
  EXPECT_EQ(json::parse(R"({"deployments": []})"), json::parse(r.out, nullptr, false));
  EXPECT_FALSE(fs::exists(data_)) << "a read does not make the data dir";
}

// docs/running.md "Find your way".
TEST_F(RunTest, ListPrintsStagesStepsNeedsImagesAndEnvironments) {
  Write("ladle.yml", R"(name: listed
stages:
  - name: build
    image: alpine:3
    steps:
      - {name: compile, run: 'touch ran'}
      - {name: lint, run: 'true', needs: [compile]}
  - name: deploy
    environment: staging
    steps:
      - {name: ship, run: 'true'}
)");
  Result r = Ladle({"run", "--list"});
  EXPECT_EQ(0, r.code) << r.all();
  EXPECT_EQ("STAGE   STEP     NEEDS    IMAGE     ENVIRONMENT\n"
            "build   compile  -        alpine:3  -\n"
            "build   lint     compile  alpine:3  -\n"
            "deploy  ship     -        -         staging\n",
            r.out);
  EXPECT_FALSE(fs::exists(src_ / "ran"));
  EXPECT_FALSE(fs::exists(data_ / "ladle.db")) << "--list runs nothing";
  r = Ladle({"--json", "run", "--list"});
  json list = json::parse(r.out, nullptr, false);
  EXPECT_EQ("lint", list["stages"][0]["steps"][1]["name"]) << r.out;
  EXPECT_EQ(json::array({"compile"}), list["stages"][0]["steps"][1]["needs"]) << r.out;
  EXPECT_EQ("staging", list["stages"][1]["environment"]) << r.out;

  r = Ladle({"run", "--step", "compil"});
  EXPECT_EQ(2, r.code) << r.all();
  EXPECT_NE(std::string::npos,
            r.err.find("ladle: --step compil: no such step in ladle.yml; did you mean 'compile'?\n"
                       "STAGE   STEP"))
      << r.err;
  r = Ladle({"run", "--stage", "biuld"});
  EXPECT_EQ(2, r.code) << r.all();
  EXPECT_NE(std::string::npos, r.err.find("--stage biuld: no such stage in ladle.yml; did you mean 'build'?"))
      << r.err;
  r = Ladle({"run", "--from", "build/lnt"});
  EXPECT_EQ(2, r.code) << r.all();
  EXPECT_NE(std::string::npos, r.err.find("--from build/lnt: no such step in ladle.yml; did you mean 'build/lint'?"))
      << r.err;
  EXPECT_NE(std::string::npos, r.err.find("deploy  ship")) << r.err;
  EXPECT_FALSE(fs::exists(data_ / "ladle.db"));
}

TEST_F(RunTest, UnknownCommandIsNamedWithASuggestion) {
  Result r = Ladle({"rnu"});
  EXPECT_EQ(2, r.code) << r.all();
  EXPECT_EQ(0u, r.err.find("ladle: unknown command 'rnu'; did you mean 'run'?\ncommands: run, validate,"))
      << r.err;
}

// Issue 11: a status as wide as its column ran into the duration
// ("interrupted74ms"); the summary lists failed tests and kept containers.
TEST(FormatSummaryTest, ColumnsStayApartAndKeptContainersAreRepeated) {
  using namespace ladle::runner;
  RunRecord run;
  run.id = 3;
  run.status = kInterrupted;
  StageRecord stage{"test", kInterrupted, "", std::nullopt, "", {}};
  StepRecord step{"unit", kInterrupted, std::nullopt, 1, "2026-01-01T00:00:00.000Z",
                  "2026-01-01T00:00:00.074Z", FailureReason::kNone, false};
  stage.steps.push_back(step);
  step.name = "a-step-name-over-sixteen";
  step.status = kFailed;
  step.exit_code = 1;
  step.failed_tests = {FailedTest{"cart", "t0", "expected 1"}};
  step.failed_tests_more = 1;
  step.kept = "docker start k >/dev/null && docker exec -i k sh";
  stage.steps.push_back(step);
  run.stages.push_back(stage);
  const std::string text = FormatSummary(run, false);
  EXPECT_NE(std::string::npos, text.find("interrupted 74ms")) << text;
  EXPECT_EQ(std::string::npos, text.find("interrupted7")) << text;
  EXPECT_NE(std::string::npos, text.find("a-step-name-over-sixteen failed")) << text;
  EXPECT_NE(std::string::npos, text.find("        ✗ cart.t0: expected 1\n        and 1 more failed test\n"))
      << text;
  EXPECT_NE(std::string::npos,
            text.find("        container kept; enter it with: docker start k >/dev/null && docker exec -i k sh\n"))
      << text;
}

}  // namespace
