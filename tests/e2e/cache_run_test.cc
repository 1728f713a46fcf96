// docs/pipeline.md "Caches" end to end: the real `ladle` binary on the local
// backend, two runs of one project sharing a cache, policies, the size limit
// and `ladle prune`.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "env/subprocess.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;

namespace {

struct Result {
  int code = -1;
  std::string out, err;
  std::string all() const { return out + err; }
};

class CacheRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = ladle::testing::MakeTempDir("/tmp/ladle-e2e-cache-XXXXXX");
    src_ = root_ / "src";
    data_ = root_ / "data";
    fs::create_directories(src_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  void Pipeline(const std::string& cache, const std::string& run) {
    std::ofstream(src_ / "ladle.yml") << "name: c\nstages:\n  - name: build\n    steps:\n"
                                         "      - name: deps\n        run: |\n"
                                      << run << "        cache: " << cache << "\n";
  }
  Result Ladle(std::vector<std::string> args) {
    std::vector<std::string> argv = {"env", "NO_COLOR=1", LADLE_BINARY, "--data", data_.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    ladle::env::CommandResult r;
    ladle::Status s = ladle::env::RunCommand(argv, src_.string(), &r, std::chrono::seconds(120));
    EXPECT_TRUE(s.ok()) << s.ToString();
    return {r.exit_code, r.out, r.err};
  }
  std::string Log(int run) {
    std::ifstream in(data_ / "logs" / std::to_string(run) / "build" / "deps.log");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  int CacheFiles() {
    int n = 0;
    std::error_code ec;
    for (fs::recursive_directory_iterator it(data_ / "caches", ec), end; !ec && it != end; it.increment(ec))
      n += it->path().extension() == ".tar";
    return n;
  }

  fs::path root_, src_, data_;
};

// A script that says whether it found its cache, and fills it when not.
const char kFillOnce[] =
    "          if [ -f deps/got ]; then echo \"restored: $(cat deps/got)\"; "
    "else mkdir -p deps/sub; echo \"from run $LADLE_RUN\" > deps/got; touch deps/sub/x; echo fresh; fi\n";

TEST_F(CacheRunTest, SecondRunRestoresWhatTheFirstSaved) {
  Pipeline("{paths: [deps], key: 'deps-v1'}", kFillOnce);
  Result r = Ladle({"run"});
  ASSERT_EQ(0, r.code) << r.all();
  EXPECT_NE(std::string::npos, Log(1).find("cache: none for key deps-v1 yet")) << Log(1);
  EXPECT_NE(std::string::npos, Log(1).find("fresh")) << Log(1);
  EXPECT_NE(std::string::npos, Log(1).find("cache: saved deps-v1 (2 files")) << Log(1);
  r = Ladle({"run"});
  ASSERT_EQ(0, r.code) << r.all();
  EXPECT_NE(std::string::npos, Log(2).find("cache: restored deps-v1 (2 files")) << Log(2);
  EXPECT_NE(std::string::npos, Log(2).find("restored: from run 1")) << Log(2);
  EXPECT_EQ(1, CacheFiles());
}

TEST_F(CacheRunTest, KeyFromFilesFollowsTheLockFile) {
  Pipeline("{paths: [deps], key: {files: [deps.lock], prefix: npm}}", kFillOnce);
  std::ofstream(src_ / "deps.lock") << "v1";
  ASSERT_EQ(0, Ladle({"run"}).code);
  ASSERT_EQ(0, Ladle({"run"}).code);
  EXPECT_NE(std::string::npos, Log(2).find("restored: from run 1")) << Log(2);
  std::ofstream(src_ / "deps.lock") << "v2";
  ASSERT_EQ(0, Ladle({"run"}).code);
  EXPECT_NE(std::string::npos, Log(3).find("fresh")) << "a new lock file, a new key: " << Log(3);
  EXPECT_EQ(2, CacheFiles());
}

TEST_F(CacheRunTest, FailedStepSavesNothingAndPullPolicyNeverSaves) {
  Pipeline("{paths: [deps], key: k}", "          mkdir deps; echo x > deps/f; exit 3\n");
  EXPECT_EQ(1, Ladle({"run"}).code);
  EXPECT_EQ(std::string::npos, Log(1).find("cache: saved")) << Log(1);
  Pipeline("{paths: [deps], key: k, policy: pull}", "          mkdir deps; echo x > deps/f\n");
  ASSERT_EQ(0, Ladle({"run"}).code);
  EXPECT_EQ(0, CacheFiles());
  Pipeline("{paths: [deps], key: k, policy: push}", kFillOnce);
  ASSERT_EQ(0, Ladle({"run"}).code);
  ASSERT_EQ(0, Ladle({"run"}).code);
  EXPECT_NE(std::string::npos, Log(4).find("fresh")) << "push never restores: " << Log(4);
  EXPECT_EQ(1, CacheFiles());
}

TEST_F(CacheRunTest, OverMaxSizeIsNotSavedWithAMessage) {
  Pipeline("{paths: [deps], key: k, max_size: 1k}",
           "          mkdir deps; head -c 4096 /dev/zero > deps/big\n");
  ASSERT_EQ(0, Ladle({"run"}).code);
  EXPECT_NE(std::string::npos, Log(1).find("cache: k not saved: 4.1 kB is over max_size 1.0 kB"))
      << Log(1);
  EXPECT_EQ(0, CacheFiles());
}

TEST_F(CacheRunTest, PruneRemovesCachesUnusedForTheAge) {
  Pipeline("{paths: [deps], key: k}", kFillOnce);
  ASSERT_EQ(0, Ladle({"run"}).code);
  ASSERT_EQ(1, CacheFiles());
  ASSERT_EQ(0, Ladle({"prune", "--older-than", "1h"}).code);
  EXPECT_EQ(1, CacheFiles());
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  Result r = Ladle({"prune", "--older-than", "1s"});
  ASSERT_EQ(0, r.code) << r.all();
  EXPECT_EQ(0, CacheFiles());
}

}  // namespace
