#include "runner/serve/git_source.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "env/subprocess.h"

namespace fs = std::filesystem;

namespace ladle::runner {
namespace {

class GitSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ladle-git-XXXXXX";
    root_ = mkdtemp(tmpl);
    repo_ = (root_ / "repo").string();
    Sh("git init -q -b main " + repo_);
  }
  void TearDown() override { fs::remove_all(root_); }

  std::string Sh(const std::string& script) {
    env::CommandResult r;
    EXPECT_TRUE(env::RunCommand({"sh", "-c", script}, root_.string(), &r).ok());
    EXPECT_EQ(0, r.exit_code) << script << ": " << r.err;
    std::string out = r.out;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }
  std::string Commit(const std::string& file, const std::string& text) {
    std::ofstream(fs::path(repo_) / file) << text;
    Sh("cd " + repo_ + " && git add -A && git -c user.email=t@t -c user.name=t commit -qm " + file);
    return Sh("git -C " + repo_ + " rev-parse HEAD");
  }

  fs::path root_;
  std::string repo_;
};

TEST_F(GitSourceTest, ListsBranchHeads) {
  std::string c1 = Commit("a", "1");
  Sh("git -C " + repo_ + " branch release/1");
  std::string c2 = Commit("b", "2");
  std::map<std::string, std::string> heads;
  ASSERT_TRUE(ListBranches(repo_, &heads).ok());
  EXPECT_EQ((std::map<std::string, std::string>{{"main", c2}, {"release/1", c1}}), heads);
}

TEST_F(GitSourceTest, UnreachableRepositoryIsUnavailable) {
  std::map<std::string, std::string> heads;
  Status s = ListBranches((root_ / "nope").string(), &heads);
  EXPECT_EQ(Code::kUnavailable, s.code());
  EXPECT_NE(std::string::npos, s.message().find("list the branches of")) << s.message();
}

TEST_F(GitSourceTest, ChecksOutACommitFetchingNewOnesOnDemand) {
  std::string c1 = Commit("a", "one");
  GitMirror mirror(repo_, (root_ / "mirror.git").string());
  ASSERT_TRUE(mirror.Fetch().ok());
  std::string c2 = Commit("a", "two");  // not in the mirror yet
  ASSERT_TRUE(mirror.Checkout(c2, (root_ / "w2").string()).ok());
  ASSERT_TRUE(mirror.Checkout(c1, (root_ / "w1").string()).ok());
  std::ifstream a1(root_ / "w1/a"), a2(root_ / "w2/a");
  std::string t1, t2;
  a1 >> t1;
  a2 >> t2;
  EXPECT_EQ("one", t1);
  EXPECT_EQ("two", t2);
  EXPECT_EQ(c1, Sh("git -C " + (root_ / "w1").string() + " rev-parse HEAD"));
}

TEST_F(GitSourceTest, UnknownCommitIsNotFound) {
  Commit("a", "1");
  GitMirror mirror(repo_, (root_ / "mirror.git").string());
  Status s = mirror.Checkout("0123456789abcdef0123456789abcdef01234567", (root_ / "w").string());
  EXPECT_EQ(Code::kNotFound, s.code()) << s.message();
}

// A local directory is read in place; a file:// URL goes through the mirror.
TEST_F(GitSourceTest, ReadsAFileAtACommitFetchingOnce) {
  std::string c1 = Commit("ladle.yml", "one");
  for (const std::string& url : {repo_, "file://" + repo_}) {
    SCOPED_TRACE(url);
    fs::remove_all(root_ / "mirror.git");
    GitMirror mirror(url, (root_ / "mirror.git").string());
    std::string text;
    ASSERT_TRUE(mirror.ReadFile(c1, "ladle.yml", &text).ok());
    EXPECT_EQ("one", text);
    std::string c2 = Commit("ladle.yml", "two " + url);
    ASSERT_TRUE(mirror.ReadFile(c2, "ladle.yml", &text, "main").ok());  // new: fetched if mirrored
    EXPECT_EQ("two " + url, text);
    ASSERT_TRUE(mirror.ReadFile(c1, "ladle.yml", &text).ok());
    EXPECT_EQ("one", text);
    Status s = mirror.ReadFile(c2, "missing.yml", &text);
    EXPECT_EQ(Code::kNotFound, s.code());
    EXPECT_EQ("missing.yml is not in commit " + c2.substr(0, 12) + " of " + url, s.message());
    s = mirror.ReadFile("0123456789abcdef0123456789abcdef01234567", "ladle.yml", &text);
    EXPECT_EQ(Code::kNotFound, s.code());
    EXPECT_EQ(url == repo_, !fs::exists(root_ / "mirror.git"));
  }
}

TEST_F(GitSourceTest, CheckoutIsARepositoryOfItsOwnAtTheCommit) {
  std::string c1 = Commit("a", "1");
  int n = 0;
  for (const std::string& url : {repo_, "file://" + repo_}) {
    SCOPED_TRACE(url);
    GitMirror mirror(url, (root_ / ("mirror" + std::to_string(n) + ".git")).string());
    const std::string w = (root_ / ("w" + std::to_string(n++))).string();
    ASSERT_TRUE(mirror.Checkout(c1, w).ok());
    // Steps can use git in their workspace: HEAD is the commit, the tree clean.
    EXPECT_EQ(c1, Sh("git -C " + w + " rev-parse HEAD"));
    EXPECT_EQ("", Sh("git -C " + w + " status --porcelain"));
    EXPECT_FALSE(fs::exists(fs::path(w) / ".git" / "hooks"));  // no template copied
  }
}

// docs/server.md "Webhook trust": a push is taken only for the branch's head.
TEST_F(GitSourceTest, BranchHeadOfALocalRepositoryIsReadNow) {
  std::string c1 = Commit("a", "1");
  Sh("git -C " + repo_ + " branch side");
  GitMirror mirror(repo_, (root_ / "unused.git").string());
  std::string head;
  ASSERT_TRUE(mirror.BranchHead("main", &head).ok());
  EXPECT_EQ(c1, head);
  std::string c2 = Commit("b", "2");
  ASSERT_TRUE(mirror.BranchHead("main", &head).ok());
  EXPECT_EQ(c2, head);
  ASSERT_TRUE(mirror.BranchHead("side", &head).ok());
  EXPECT_EQ(c1, head);
  Status s = mirror.BranchHead("nope", &head);
  EXPECT_EQ(Code::kNotFound, s.code()) << s.message();
}

TEST_F(GitSourceTest, BranchHeadOfARemoteRepositoryIsFetched) {
  std::string c1 = Commit("a", "1");
  GitMirror mirror("file://" + repo_, (root_ / "mirror.git").string());
  ASSERT_TRUE(mirror.Fetch().ok());
  std::string c2 = Commit("b", "2");  // the mirror has c1 until the next fetch
  std::string head;
  ASSERT_TRUE(mirror.BranchHead("main", &head).ok());
  EXPECT_EQ(c2, head);
  Status s = mirror.BranchHead("gone", &head);
  EXPECT_EQ(Code::kNotFound, s.code()) << s.message();
  EXPECT_EQ("branch gone does not exist in file://" + repo_, s.message());
  bool is = false;
  ASSERT_TRUE(mirror.IsAncestor(c1, c2, &is).ok());
  EXPECT_TRUE(is);
  ASSERT_TRUE(mirror.IsAncestor(c2, c1, &is).ok());
  EXPECT_FALSE(is);
  EXPECT_FALSE(mirror.IsAncestor(c1, "0123456789abcdef0123456789abcdef01234567", &is).ok());
}

}  // namespace
}  // namespace ladle::runner
