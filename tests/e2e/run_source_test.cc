// End-to-end tests of what a `ladle run` starts from (docs/running.md "Same
// inputs as CI", "Artifacts of steps that do not run"): workspaces that are
// git checkouts with the working tree's changes, runs from a dirty tree marked
// +dirty, artifacts restored only from the same project and pipeline and only
// for steps that come before the selected ones, stale artifacts named, and
// --needs. The real binary, real git repositories, the local backend.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "env/subprocess.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct Result {
  int code = -1;
  std::string out, err;
  std::string all() const { return out + err; }
};

// build/compile copies src.txt into out/bin; test/unit checks it says "good"
// and that deploy's dist/ is not there; deploy/release makes dist/.
constexpr const char* kPipeline = R"(name: app
stages:
  - name: build
    steps:
      - {name: compile, run: "mkdir -p out && cat src.txt > out/bin", artifacts: [out/]}
  - name: test
    steps:
      - {name: unit, run: "cat out/bin && grep -q good out/bin && test ! -e dist"}
  - name: deploy
    environment: production
    steps:
      - {name: release, run: "mkdir -p dist && cp out/bin dist/", artifacts: [dist/]}
)";

class RunSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = ladle::testing::MakeTempDir("/tmp/ladle-e2e-src-XXXXXX");
    data_ = root_ / "data";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  // A git repository `name` under the test's root holding `files`, committed.
  fs::path Repo(const std::string& name, const std::vector<std::pair<std::string, std::string>>& files) {
    fs::path dir = root_ / name;
    fs::create_directories(dir);
    for (const auto& [rel, text] : files) Write(dir / rel, text);
    EXPECT_EQ(0, Exec({"git", "init", "-q", "-b", "main"}, dir).code);
    EXPECT_EQ(0, Exec({"git", "add", "-A"}, dir).code);
    EXPECT_EQ(0, Exec({"git", "-c", "user.name=e2e", "-c", "user.email=e2e@ladle.invalid", "-c",
                       "commit.gpgsign=false", "commit", "-qm", "init"},
                      dir)
                     .code);
    return dir;
  }
  static void Write(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }
  Result Exec(const std::vector<std::string>& argv, const fs::path& cwd) {
    ladle::env::CommandResult r;
    ladle::Status s = ladle::env::RunCommand(argv, cwd.string(), &r, std::chrono::seconds(120));
    EXPECT_TRUE(s.ok()) << s.ToString();
    return {r.exit_code, r.out, r.err};
  }
  // `ladle --data DATA ARGS...` in `cwd`.
  Result Ladle(const fs::path& cwd, std::vector<std::string> args) {
    std::vector<std::string> argv = {"env", "NO_COLOR=1", LADLE_BINARY, "--data", data_.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return Exec(argv, cwd);
  }
  json Show(int run) {
    Result r = Ladle(root_, {"--json", "show", std::to_string(run)});
    EXPECT_EQ(0, r.code) << r.all();
    return json::parse(r.out, nullptr, false);
  }
  std::string Head(const fs::path& repo) {
    std::string out = Exec({"git", "rev-parse", "HEAD"}, repo).out;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }

  fs::path root_, data_;
};

// The issue: `--step test/unit` restored another project's build because both
// name their pipeline ladle.yml and share the data dir.
TEST_F(RunSourceTest, ArtifactsComeOnlyFromTheSameProject) {
  fs::path a = Repo("a", {{"ladle.yml", kPipeline}, {"src.txt", "good a\n"}});
  fs::path b = Repo("b", {{"ladle.yml", kPipeline}, {"src.txt", "good b\n"}});
  ASSERT_EQ(0, Ladle(a, {"run", "--backend", "local"}).code);
  ASSERT_EQ(0, Ladle(b, {"run", "--backend", "local", "--step", "build/compile"}).code);
  // a's unit step, spelled ./ladle.yml: restores a's build (run 1), not b's (run 2).
  Result r = Ladle(a, {"run", "--backend", "local", "--step", "test/unit", "./ladle.yml"});
  EXPECT_EQ(0, r.code) << r.all();
  EXPECT_NE(std::string::npos, r.all().find("good a")) << r.all();
  EXPECT_NE(std::string::npos, r.all().find("from run 1 (commit " + Head(a).substr(0, 7) + ")"))
      << r.all();
  json run = Show(3);
  EXPECT_EQ(a.string(), run["project"]);
  EXPECT_EQ("ladle.yml", run["pipeline_path"]);
  // A project that never built has none to restore.
  fs::path c = Repo("c", {{"ladle.yml", kPipeline}, {"src.txt", "good c\n"}});
  r = Ladle(c, {"run", "--backend", "local", "--step", "test/unit"});
  EXPECT_EQ(1, r.code) << r.all();
  EXPECT_NE(std::string::npos, r.all().find("no earlier run of this pipeline has the artifacts of build/compile"))
      << r.all();
}

// --step restores only what comes before the selected step: test/unit does
// not see deploy/release's dist/.
TEST_F(RunSourceTest, StepRestoresOnlyEarlierStepsArtifacts) {
  fs::path a = Repo("a", {{"ladle.yml", kPipeline}, {"src.txt", "good\n"}});
  Result r = Ladle(a, {"run", "--backend", "local"});
  ASSERT_EQ(0, r.code) << r.all();
  r = Ladle(a, {"run", "--backend", "local", "--step", "test/unit"});
  EXPECT_EQ(0, r.code) << r.all();
  EXPECT_EQ(std::string::npos, r.all().find("deploy/release")) << r.all();
}

// A fix after a failure: the restored build is stale and ladle says so,
// naming the changed path; --needs builds it again and passes.
TEST_F(RunSourceTest, StaleArtifactsAreNamedAndNeedsRebuildsThem) {
  fs::path a = Repo("a", {{"ladle.yml", kPipeline}, {"src.txt", "bad\n"}});
  Result r = Ladle(a, {"run", "--backend", "local"});
  ASSERT_EQ(1, r.code) << r.all();
  Write(a / "src.txt", "good\n");  // the fix, not committed
  r = Ladle(a, {"run", "--backend", "local", "--step", "test/unit"});
  EXPECT_EQ(1, r.code) << r.all();
  EXPECT_NE(std::string::npos, r.all().find("the tree differs from the one run 1 built them from (src.txt)"))
      << r.all();
  EXPECT_NE(std::string::npos, r.all().find("--needs")) << r.all();
  r = Ladle(a, {"run", "--backend", "local", "--from", "test/unit"});
  EXPECT_EQ(1, r.code) << r.all();
  EXPECT_NE(std::string::npos, r.all().find("src.txt")) << r.all();

  r = Ladle(a, {"run", "--backend", "local", "--step", "test/unit", "--needs"});
  EXPECT_EQ(0, r.code) << r.all();
  EXPECT_EQ(std::string::npos, r.all().find("restored")) << r.all();
  json run = Show(4);
  EXPECT_EQ("success", run["stages"][0]["steps"][0]["status"]);  // build/compile ran
  EXPECT_EQ("skipped", run["stages"][2]["status"]);              // deploy did not
  // Artifacts of a run from the same tree are not stale.
  r = Ladle(a, {"run", "--backend", "local", "--step", "test/unit"});
  EXPECT_EQ(0, r.code) << r.all();
  EXPECT_NE(std::string::npos, r.all().find("from run 4")) << r.all();
  EXPECT_EQ(std::string::npos, r.all().find("may be stale")) << r.all();
  EXPECT_EQ(2, Ladle(a, {"run", "--needs"}).code);
}

// A workspace is a git checkout at HEAD with the working tree's changes on
// top; the run is recorded, and deployed, as COMMIT+dirty.
TEST_F(RunSourceTest, DirtyTreeIsCheckedOutAndDeployedAsDirty) {
  const std::string pipeline = R"Y(name: app
stages:
  - name: build
    steps:
      - name: compile
        run: |
          test "$(git rev-parse HEAD)" = "$LADLE_COMMIT"
          git status --porcelain > status.txt
          cat status.txt
          grep -q good src.txt
          test ! -e ignored.txt
  - name: deploy
    environment: production
    steps:
      - {name: release, run: "true"}
)Y";
  fs::path a = Repo("a", {{"ladle.yml", pipeline}, {"src.txt", "bad\n"}, {".gitignore", "ignored.txt\n"}});
  const std::string head = Head(a);
  // Clean: no mark.
  Result r = Ladle(a, {"run", "--backend", "local"});
  ASSERT_EQ(1, r.code) << r.all();
  EXPECT_EQ(false, Show(1)["dirty"]);
  Write(a / "src.txt", "good\n");
  Write(a / "new.txt", "untracked\n");
  Write(a / "ignored.txt", "ignored\n");
  r = Ladle(a, {"run", "--backend", "local"});
  ASSERT_EQ(0, r.code) << r.all();
  EXPECT_NE(std::string::npos, r.all().find(" M src.txt")) << r.all();
  EXPECT_NE(std::string::npos, r.all().find("?? new.txt")) << r.all();
  EXPECT_NE(std::string::npos, r.all().find("recorded as " + head.substr(0, 7) + "+dirty")) << r.all();
  json run = Show(2);
  EXPECT_EQ(true, run["dirty"]);
  EXPECT_EQ((std::vector<std::string>{"new.txt", "src.txt"}), run["changed_paths"].get<std::vector<std::string>>());
  EXPECT_EQ(head, run["commit"]);
  EXPECT_EQ(true, run["deployment"]["dirty"]);
  // The user's tree and index are as they were.
  EXPECT_EQ(" M src.txt\n?? new.txt\n", Exec({"git", "status", "--porcelain"}, a).out);

  r = Ladle(a, {"runs"});
  EXPECT_NE(std::string::npos, r.out.find(head.substr(0, 8) + "+dirty")) << r.out;
  r = Ladle(a, {"show", "2"});
  EXPECT_NE(std::string::npos, r.out.find("commit " + head + "+dirty")) << r.out;
  EXPECT_NE(std::string::npos, r.out.find("new.txt, src.txt")) << r.out;
  r = Ladle(a, {"deployments"});
  EXPECT_NE(std::string::npos, r.out.find(head.substr(0, 12) + "+dirty")) << r.out;
  r = Ladle(a, {"--json", "deployments"});
  EXPECT_NE(std::string::npos, r.out.find("\"dirty\": true")) << r.out;
}

// Outside git a run still works: the project is the directory, nothing is dirty.
TEST_F(RunSourceTest, OutsideGitRunsFromACopy) {
  fs::path dir = root_ / "plain";
  Write(dir / "ladle.yml", kPipeline);
  Write(dir / "src.txt", "good\n");
  Result r = Ladle(dir, {"run", "--backend", "local"});
  ASSERT_EQ(0, r.code) << r.all();
  json run = Show(1);
  EXPECT_EQ(dir.string(), run["project"]);
  EXPECT_EQ(false, run["dirty"]);
  r = Ladle(dir, {"run", "--backend", "local", "--step", "test/unit"});
  EXPECT_EQ(0, r.code) << r.all();
  EXPECT_NE(std::string::npos, r.all().find("from run 1")) << r.all();
}

}  // namespace
