// Step caches (runner/exec/cache.h): keys, restore and save, atomic saves
// under a crash, the size limit, pruning.
#include "runner/exec/cache.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace fs = std::filesystem;

namespace ladle::runner {
namespace {

class CacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ladle-cache-test-XXXXXX";
    root_ = ::mkdtemp(tmpl);
    ws_ = root_ + "/ws";
    data_ = root_ + "/data";
    fs::create_directories(ws_);
    dir_ = CacheDir(data_, "/src/project");
  }
  void TearDown() override { fs::remove_all(root_); }

  void Write(const std::string& rel, const std::string& text) {
    fs::create_directories(fs::path(ws_ + "/" + rel).parent_path());
    std::ofstream(ws_ + "/" + rel) << text;
  }
  std::string Read(const std::string& rel) {
    std::ifstream in(ws_ + "/" + rel);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  Cache Paths(std::vector<std::string> paths) {
    Cache c;
    c.paths = std::move(paths);
    c.key = "k";
    return c;
  }
  void Save(const Cache& c, const std::string& key) {
    bool saved = false;
    CacheStats stats;
    Status s = SaveCache(c, dir_, key, ws_, &saved, &stats);
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_TRUE(saved);
  }
  bool Restore(const std::string& key) {
    bool found = false;
    CacheStats stats;
    Status s = RestoreCache(dir_, key, ws_, &found, &stats);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return found;
  }

  std::string root_, ws_, data_, dir_;
};

TEST_F(CacheTest, KeyExpandsVariables) {
  Cache c;
  c.key = "deps-${LADLE_BRANCH}-${NOPE}-$X";
  std::string key;
  ASSERT_TRUE(CacheKey(c, ws_, {{"LADLE_BRANCH", "old"}, {"LADLE_BRANCH", "main"}}, &key).ok());
  EXPECT_EQ("deps-main--$X", key);
}

TEST_F(CacheTest, KeyFromFilesChangesWithTheirContent) {
  Cache c;
  c.key_files = {"package-lock.json", "missing.lock"};
  c.key_prefix = "npm";
  Write("package-lock.json", "{\"a\": 1}");
  std::string first, again, changed;
  ASSERT_TRUE(CacheKey(c, ws_, {}, &first).ok());
  ASSERT_TRUE(CacheKey(c, ws_, {}, &again).ok());
  Write("package-lock.json", "{\"a\": 2}");
  ASSERT_TRUE(CacheKey(c, ws_, {}, &changed).ok());
  EXPECT_EQ(first, again);
  EXPECT_NE(first, changed);
  EXPECT_EQ(0u, first.rfind("npm-", 0)) << first;
  EXPECT_EQ(24u, first.size());
  c.key_prefix.clear();
  ASSERT_TRUE(CacheKey(c, ws_, {}, &first).ok());
  EXPECT_EQ(0u, first.rfind("default-", 0)) << first;
  c.key_files = {"../outside"};
  EXPECT_EQ(Code::kInvalid, CacheKey(c, ws_, {}, &first).code());
}

TEST_F(CacheTest, SaveThenRestoreBringsFilesDirectoriesAndLinksBack) {
  Write("deps/a.txt", "alpha");
  Write("deps/sub/b.txt", "beta");
  Write("single.bin", std::string(100000, 'x'));
  fs::create_symlink("a.txt", ws_ + "/deps/link");
  ::chmod((ws_ + "/deps/a.txt").c_str(), 0755);
  Save(Paths({"deps", "single.bin", "not-there"}), "k1");
  fs::remove_all(ws_);
  fs::create_directories(ws_);
  ASSERT_TRUE(Restore("k1"));
  EXPECT_EQ("alpha", Read("deps/a.txt"));
  EXPECT_EQ("beta", Read("deps/sub/b.txt"));
  EXPECT_EQ(100000u, Read("single.bin").size());
  EXPECT_EQ("a.txt", fs::read_symlink(ws_ + "/deps/link").string());
  EXPECT_NE(fs::perms::none, fs::status(ws_ + "/deps/a.txt").permissions() & fs::perms::owner_exec);
  EXPECT_FALSE(Restore("other key"));
}

TEST_F(CacheTest, RestoreReplacesFilesOfTheSameName) {
  Write("deps/a.txt", "cached");
  Save(Paths({"deps"}), "k");
  Write("deps/a.txt", "newer and longer");
  ASSERT_TRUE(Restore("k"));
  EXPECT_EQ("cached", Read("deps/a.txt"));
}

TEST_F(CacheTest, OverMaxSizeIsNotSavedAndKeepsTheOldCache) {
  Write("deps/a.txt", "small");
  Save(Paths({"deps"}), "k");
  Write("deps/big", std::string(5000, 'x'));
  Cache c = Paths({"deps"});
  c.max_size = 4096;
  bool saved = true;
  CacheStats stats;
  ASSERT_TRUE(SaveCache(c, dir_, "k", ws_, &saved, &stats).ok());
  EXPECT_FALSE(saved);
  EXPECT_EQ(5005, stats.bytes);
  fs::remove_all(ws_ + "/deps");
  ASSERT_TRUE(Restore("k"));
  EXPECT_EQ("small", Read("deps/a.txt"));
  EXPECT_FALSE(fs::exists(ws_ + "/deps/big"));
  // The message the step's log gets.
  Write("deps/big", std::string(5000, 'x'));
  EXPECT_EQ("cache: k not saved: 5.0 kB is over max_size 4.1 kB",
            SaveStepCache(c, data_, "/src/project", ws_, {}));
}

// A save killed half-way (here: the process exits after 50 entries) leaves
// only a temporary file, which restore never opens: the old cache stays.
TEST_F(CacheTest, CrashDuringSaveLeavesNoHalfCache) {
  for (int i = 0; i < 200; ++i) Write("deps/f" + std::to_string(i), "v1");
  Save(Paths({"deps"}), "k");
  for (int i = 0; i < 200; ++i) Write("deps/f" + std::to_string(i), "v2");
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    CacheHooks hooks;
    hooks.after_entry = [](int64_t n) {
      if (n == 50) ::_exit(7);  // no destructors, no flush: as kill -9
    };
    bool saved;
    CacheStats stats;
    SaveCache(Paths({"deps"}), dir_, "k", ws_, &saved, &stats, hooks).IgnoreError();
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(child, ::waitpid(child, &status, 0));
  ASSERT_EQ(7, WEXITSTATUS(status));
  int temps = 0;
  for (const auto& e : fs::directory_iterator(dir_))
    temps += e.path().filename().string().rfind(".tmp-", 0) == 0;
  EXPECT_EQ(1, temps);
  fs::remove_all(ws_ + "/deps");
  ASSERT_TRUE(Restore("k"));
  for (int i = 0; i < 200; ++i) ASSERT_EQ("v1", Read("deps/f" + std::to_string(i)));
  // A crash before the first save of a key: nothing to restore at all.
  EXPECT_FALSE(Restore("never saved"));
}

// A cache file is ladle's own, but a tampered one must not write outside
// the workspace: an entry through a link it made, or with "..".
TEST_F(CacheTest, ArchiveEntriesCannotLeaveTheWorkspace) {
  fs::create_directories(root_ + "/outside");
  fs::create_directories(root_ + "/a/deps");
  fs::create_directories(root_ + "/b/deps/out");
  fs::create_symlink(root_ + "/outside", root_ + "/a/deps/out");
  std::ofstream(root_ + "/b/deps/out/evil") << "pwned";
  fs::create_directories(dir_);
  const std::string tar = CacheFile(dir_, "k");
  ASSERT_EQ(0, std::system(("tar -cf " + tar + " -C " + root_ + "/a deps/out && tar -rf " + tar +
                            " -C " + root_ + "/b deps/out/evil")
                               .c_str()));
  bool found = false;
  CacheStats stats;
  Status s = RestoreCache(dir_, "k", ws_, &found, &stats);
  EXPECT_FALSE(s.ok());
  EXPECT_FALSE(fs::exists(root_ + "/outside/evil"));

  const std::string dotdot = CacheFile(dir_, "dotdot");
  ASSERT_EQ(0, std::system(("cd " + root_ + "/b && tar -cf " + dotdot + " -P ../b/deps/out/evil")
                               .c_str()));
  s = RestoreCache(dir_, "dotdot", ws_, &found, &stats);
  EXPECT_EQ(Code::kInvalid, s.code()) << s.ToString();
  EXPECT_EQ("cache: entry '../b/deps/out/evil' would leave the workspace", s.message());
}

TEST_F(CacheTest, PruneRemovesCachesUnusedForTheAgeAndOldTemporaryFiles) {
  Write("deps/a", "1");
  Save(Paths({"deps"}), "old");
  Save(Paths({"deps"}), "fresh");
  std::ofstream(dir_ + "/.tmp-abcdef") << "half";
  const auto past = fs::file_time_type::clock::now() - std::chrono::hours(48);
  fs::last_write_time(CacheFile(dir_, "old"), past);
  fs::last_write_time(dir_ + "/.tmp-abcdef", past);
  int removed = 0;
  ASSERT_TRUE(PruneCaches(data_, std::chrono::hours(24), &removed).ok());
  EXPECT_EQ(1, removed);
  EXPECT_FALSE(fs::exists(CacheFile(dir_, "old")));
  EXPECT_TRUE(fs::exists(CacheFile(dir_, "fresh")));
  EXPECT_FALSE(fs::exists(dir_ + "/.tmp-abcdef"));
  // Restoring counts as a use.
  fs::last_write_time(CacheFile(dir_, "fresh"), past);
  ASSERT_TRUE(Restore("fresh"));
  ASSERT_TRUE(PruneCaches(data_, std::chrono::hours(24), &removed).ok());
  EXPECT_EQ(0, removed);
}

TEST_F(CacheTest, ScopesOfDifferentProjectsAreApart) {
  EXPECT_NE(CacheDir(data_, "a/b"), CacheDir(data_, "a-b"));
  EXPECT_EQ(0u, CacheDir(data_, "a/b").rfind(data_ + "/caches/a-b-", 0));
}

}  // namespace
}  // namespace ladle::runner
