// End-to-end tests of docs/pipeline.md "Matrix" and "needs across stages"
// with the real `ladle` binary, the local backend and real SQLite: each
// combination in `ladle show` (text and JSON), its log, `--step` and
// `--list` with a matrix, and a step that starts before its stage's turn.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
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

const char kMatrixPipeline[] = R"(name: matrix
stages:
  - name: test
    steps:
      - name: t
        run: echo "go=$GO os=$OS step=$LADLE_STEP"
        matrix:
          GO: ["1.21", "1.22"]
          OS: [linux, "mac os"]
      - {name: lint, run: echo lint}
      - {name: report, run: echo report, needs: [t]}
  - name: pack
    steps:
      - {name: zip, run: echo zip, needs: [test/t]}
)";

class MatrixE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = ladle::testing::MakeTempDir("/tmp/ladle-e2e-matrix-XXXXXX");
    src_ = root_ / "src";
    data_ = root_ / "data";
    fs::create_directories(src_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  void Write(const std::string& rel, const std::string& text) {
    std::ofstream(src_ / rel) << text;
  }
  Result Ladle(std::vector<std::string> args) {
    std::vector<std::string> argv = {"env", "NO_COLOR=1", LADLE_BINARY, "--data", data_.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    ladle::env::CommandResult r;
    ladle::Status s = ladle::env::RunCommand(argv, src_.string(), &r, std::chrono::seconds(120));
    EXPECT_TRUE(s.ok()) << s.ToString();
    return {r.exit_code, r.out, r.err};
  }
  json Show(int run) {
    Result r = Ladle({"--json", "show", std::to_string(run)});
    EXPECT_EQ(0, r.code) << r.all();
    return json::parse(r.out, nullptr, false);
  }
  // name -> status of the steps of `stage`.
  static std::map<std::string, std::string> Statuses(const json& run, const std::string& stage) {
    std::map<std::string, std::string> out;
    for (const json& s : run["stages"])
      if (s["name"] == stage)
        for (const json& step : s["steps"]) out[step["name"]] = step["status"];
    return out;
  }

  fs::path root_, src_, data_;
};

TEST_F(MatrixE2eTest, EachCombinationIsAStepInShowJsonAndLogs) {
  Write("ladle.yml", kMatrixPipeline);
  Result r = Ladle({"run"});
  ASSERT_EQ(0, r.code) << r.all();
  Result show = Ladle({"show", "1"});
  ASSERT_EQ(0, show.code) << show.all();
  for (const char* name : {"t [GO=1.21, OS=linux]", "t [GO=1.21, OS=mac os]",
                           "t [GO=1.22, OS=linux]", "t [GO=1.22, OS=mac os]"})
    EXPECT_NE(std::string::npos, show.out.find(name)) << show.out;

  json run = Show(1);
  ASSERT_EQ("success", run["status"]);
  const json& steps = run["stages"][0]["steps"];
  ASSERT_EQ(6u, steps.size());
  std::vector<std::string> names, displays;
  for (const json& s : steps) {
    names.push_back(s["name"]);
    displays.push_back(s.value("display", ""));
  }
  EXPECT_EQ((std::vector<std::string>{"t.1.21-linux", "t.1.21-mac_os", "t.1.22-linux",
                                      "t.1.22-mac_os", "lint", "report"}),
            names);
  EXPECT_EQ("t [GO=1.22, OS=mac os]", displays[3]);
  EXPECT_EQ(json({{"of", "t"}, {"values", {{"GO", "1.22"}, {"OS", "mac os"}}}}), steps[3]["matrix"]);
  EXPECT_FALSE(steps[4].contains("matrix"));

  Result log = Ladle({"logs", "1", "test/t.1.22-mac_os"});
  ASSERT_EQ(0, log.code) << log.all();
  EXPECT_NE(std::string::npos, log.out.find("go=1.22 os=mac os step=t.1.22-mac_os")) << log.out;
  EXPECT_TRUE(fs::exists(data_ / "logs" / "1" / "test" / "t.1.21-linux.log"));
  // The step as written names all of its combinations; a display name one.
  log = Ladle({"logs", "1", "t"});
  ASSERT_EQ(0, log.code) << log.all();
  EXPECT_NE(std::string::npos, log.out.find("go=1.21 os=linux")) << log.out;
  EXPECT_NE(std::string::npos, log.out.find("go=1.22 os=mac os")) << log.out;
  log = Ladle({"logs", "1", "t [GO=1.21, OS=linux]"});
  ASSERT_EQ(0, log.code) << log.all();
  EXPECT_NE(std::string::npos, log.out.find("go=1.21 os=linux")) << log.out;
  EXPECT_EQ(std::string::npos, log.out.find("go=1.22")) << log.out;
}

TEST_F(MatrixE2eTest, StepSelectsAllCombinationsOrThoseWithTheGivenValues) {
  Write("ladle.yml", kMatrixPipeline);
  Result r = Ladle({"run", "--step", "t"});
  ASSERT_EQ(0, r.code) << r.all();
  EXPECT_EQ((std::map<std::string, std::string>{{"t.1.21-linux", "success"},
                                                {"t.1.21-mac_os", "success"},
                                                {"t.1.22-linux", "success"},
                                                {"t.1.22-mac_os", "success"},
                                                {"lint", "skipped"},
                                                {"report", "skipped"}}),
            Statuses(Show(1), "test"));

  r = Ladle({"run", "--step", "t [GO=1.22]"});
  ASSERT_EQ(0, r.code) << r.all();
  auto statuses = Statuses(Show(2), "test");
  EXPECT_EQ("skipped", statuses["t.1.21-linux"]);
  EXPECT_EQ("success", statuses["t.1.22-linux"]);
  EXPECT_EQ("success", statuses["t.1.22-mac_os"]);

  r = Ladle({"run", "--step", "test/t [OS=mac os, GO=1.21]"});
  ASSERT_EQ(0, r.code) << r.all();
  statuses = Statuses(Show(3), "test");
  EXPECT_EQ("success", statuses["t.1.21-mac_os"]);
  EXPECT_EQ("skipped", statuses["t.1.21-linux"]);

  r = Ladle({"run", "--step", "t [GO=1.23]"});
  EXPECT_EQ(2, r.code) << r.all();
  EXPECT_NE(std::string::npos, r.err.find("--step t [GO=1.23]: no such step")) << r.err;
}

TEST_F(MatrixE2eTest, ListShowsEachCombination) {
  Write("ladle.yml", kMatrixPipeline);
  Result r = Ladle({"run", "--list"});
  ASSERT_EQ(0, r.code) << r.all();
  EXPECT_NE(std::string::npos, r.out.find("t [GO=1.21, OS=mac os]")) << r.out;
  r = Ladle({"--json", "run", "--list"});
  ASSERT_EQ(0, r.code) << r.all();
  json list = json::parse(r.out, nullptr, false);
  EXPECT_EQ("t [GO=1.21, OS=linux]", list["stages"][0]["steps"][0]["display"]) << r.out;
  EXPECT_EQ((json{"t.1.21-linux", "t.1.21-mac_os", "t.1.22-linux", "t.1.22-mac_os"}),
            list["stages"][0]["steps"][5]["needs"]);
}

TEST_F(MatrixE2eTest, AMatrixOverTheLimitIsRefusedWithItsPlace) {
  Write("ladle.yml", R"(name: big
stages:
  - name: test
    steps:
      - name: t
        run: "true"
        matrix: {A: [1, 2, 3, 4, 5, 6, 7, 8, 9], B: [1, 2, 3, 4, 5, 6, 7, 8]}
)");
  Result r = Ladle({"validate"});
  EXPECT_EQ(2, r.code) << r.all();
  EXPECT_NE(std::string::npos,
            r.all().find("ladle.yml:7:17: 'matrix' of step 't' makes 72 combinations (9 x 8); "
                         "at most 64"))
      << r.all();
}

TEST_F(MatrixE2eTest, AStepOfALaterStageStartsBeforeASlowStepOfAnEarlierOne) {
  fs::path marks = root_ / "marks";
  Write("ladle.yml", "name: dag\nstages:\n  - name: build\n    steps:\n"
                     "      - {name: compile, run: \"true\"}\n"
                     "      - {name: slow, run: \"sleep 2; echo slow-end >> " + marks.string() + "\"}\n"
                     "  - name: test\n    steps:\n"
                     "      - {name: unit, run: \"echo unit >> " + marks.string() + "\", needs: [build/compile]}\n");
  Result r = Ladle({"run"});
  ASSERT_EQ(0, r.code) << r.all();
  EXPECT_NE(std::string::npos,
            r.all().find("stage test: step unit starts before its stage's turn: build/compile passed"))
      << r.all();
  EXPECT_EQ("unit\nslow-end\n", ladle::testing::ReadFile(marks));
  json run = Show(1);
  EXPECT_EQ("success", run["stages"][1]["status"]);
}

}  // namespace
