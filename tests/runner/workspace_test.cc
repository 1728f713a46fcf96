// Tests of runner/exec/workspace.cc: a `ladle run` workspace is a git
// checkout of HEAD with the working tree's changes on top (docs/running.md
// "Same inputs as CI"), made without touching the person's tree or index.
#include "runner/exec/workspace.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "env/subprocess.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;

namespace ladle::runner {
namespace {

class WorkspaceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = ladle::testing::MakeTempDir("/tmp/ladle-workspace-XXXXXX");
    repo_ = root_ / "repo";
    fs::create_directories(repo_);
    Git({"init", "-q", "-b", "main"});
    Write("kept.txt", "kept\n");
    Write("changed.txt", "old\n");
    Write("deleted.txt", "gone soon\n");
    Write(".gitignore", "ignored.txt\ndata/\n");
    Git({"add", "-A"});
    Git({"commit", "-qm", "init"});
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  std::string Git(std::vector<std::string> args, const fs::path& cwd = {}) {
    std::vector<std::string> argv = {"git", "-c", "user.name=t", "-c", "user.email=t@t", "-c",
                                     "commit.gpgsign=false"};
    argv.insert(argv.end(), args.begin(), args.end());
    env::CommandResult r;
    Status s = env::RunCommand(argv, (cwd.empty() ? repo_ : cwd).string(), &r);
    EXPECT_TRUE(s.ok() && r.exit_code == 0) << s.ToString() << r.err;
    return r.out;
  }
  void Write(const std::string& rel, const std::string& text) {
    fs::create_directories((repo_ / rel).parent_path());
    std::ofstream(repo_ / rel) << text;
  }
  SourceInfo Source() {
    SourceInfo source;
    EXPECT_TRUE(DescribeSource((repo_ / "ladle.yml").string(), &source).ok());
    return source;
  }

  fs::path root_, repo_;
};

TEST_F(WorkspaceTest, CleanTreeIsACheckoutOfHead) {
  TreeState state;
  fs::path dest = root_ / "ws";
  ASSERT_TRUE(CheckoutWorkingTree(Source(), dest.string(), "", &state).ok());
  EXPECT_FALSE(state.dirty);
  EXPECT_TRUE(state.changed_paths.empty());
  EXPECT_EQ(Git({"rev-parse", "HEAD^{tree}"}), state.tree + "\n");
  EXPECT_EQ(Git({"rev-parse", "HEAD"}), Git({"rev-parse", "HEAD"}, dest));
  EXPECT_EQ("", Git({"status", "--porcelain"}, dest));
  EXPECT_EQ("kept\n", ladle::testing::ReadFile(dest / "kept.txt"));
}

TEST_F(WorkspaceTest, ChangesAreAppliedOnTopAndThePersonsIndexIsUntouched) {
  Write("changed.txt", "new\n");
  fs::remove(repo_ / "deleted.txt");
  Write("untracked.txt", "fresh\n");
  Write("ignored.txt", "secret stuff\n");
  Write("data/ladle.db", "the data dir inside the tree\n");
  Git({"add", "changed.txt"});  // a staged change counts like any other
  const std::string index_before = ladle::testing::ReadFile(repo_ / ".git/index");
  const std::string status_before = Git({"status", "--porcelain"});

  TreeState state;
  fs::path dest = root_ / "ws";
  Status s = CheckoutWorkingTree(Source(), dest.string(), (repo_ / "data").string(), &state);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(state.dirty);
  EXPECT_EQ((std::vector<std::string>{"changed.txt", "deleted.txt", "untracked.txt"}),
            state.changed_paths);
  EXPECT_EQ("new\n", ladle::testing::ReadFile(dest / "changed.txt"));
  EXPECT_EQ("fresh\n", ladle::testing::ReadFile(dest / "untracked.txt"));
  EXPECT_FALSE(fs::exists(dest / "deleted.txt"));
  EXPECT_FALSE(fs::exists(dest / "ignored.txt"));
  EXPECT_FALSE(fs::exists(dest / "data"));
  EXPECT_FALSE(fs::exists(dest / ".git/ladle-scratch-index"));
  // In the workspace the changes show against HEAD, as in the person's tree.
  EXPECT_EQ(" M changed.txt\n D deleted.txt\n?? untracked.txt\n", Git({"status", "--porcelain"}, dest));
  EXPECT_EQ(index_before, ladle::testing::ReadFile(repo_ / ".git/index"));
  EXPECT_EQ(status_before, Git({"status", "--porcelain"}));

  // Reading the same tree again gives the same id; a change gives another,
  // and ChangedPaths names it.
  TreeState again;
  ASSERT_TRUE(ReadTreeState(Source(), (root_ / "scratch").string(), (repo_ / "data").string(), &again).ok());
  EXPECT_EQ(state.tree, again.tree);
  Write("kept.txt", "edited\n");
  ASSERT_TRUE(ReadTreeState(Source(), (root_ / "scratch").string(), (repo_ / "data").string(), &again).ok());
  std::vector<std::string> paths;
  size_t more = 0;
  ASSERT_TRUE(ChangedPaths(Source(), state.tree, again.tree, 5, &paths, &more).ok());
  EXPECT_EQ((std::vector<std::string>{"kept.txt"}), paths);
  EXPECT_EQ(0u, more);
}

// The top, HEAD's commit and its branch, from a subfolder too; a detached
// HEAD has no branch; a repository without a commit yet has neither.
TEST_F(WorkspaceTest, DescribeSourceNamesTopCommitAndBranch) {
  fs::create_directories(repo_ / "sub");
  SourceInfo source;
  ASSERT_TRUE(DescribeSource((repo_ / "sub" / "ladle.yml").string(), &source).ok());
  EXPECT_TRUE(source.is_git);
  EXPECT_EQ(fs::canonical(repo_).string(), source.root);
  EXPECT_EQ(Git({"rev-parse", "HEAD"}), source.commit + "\n");
  EXPECT_EQ("main", source.branch);

  Git({"tag", "main"});  // a tag of the same name: still the branch "main"
  Git({"checkout", "-q", "-b", "feature/x"});
  ASSERT_TRUE(DescribeSource((repo_ / "ladle.yml").string(), &source).ok());
  EXPECT_EQ("feature/x", source.branch);

  Git({"checkout", "-q", "--detach"});
  ASSERT_TRUE(DescribeSource((repo_ / "ladle.yml").string(), &source).ok());
  EXPECT_EQ(Git({"rev-parse", "HEAD"}), source.commit + "\n");
  EXPECT_EQ("", source.branch);

  fs::path fresh = root_ / "fresh";
  fs::create_directories(fresh);
  Git({"init", "-q", "-b", "trunk"}, fresh);
  ASSERT_TRUE(DescribeSource((fresh / "ladle.yml").string(), &source).ok());
  EXPECT_TRUE(source.is_git);
  EXPECT_EQ(fs::canonical(fresh).string(), source.root);
  EXPECT_EQ("", source.commit);
  EXPECT_EQ("trunk", source.branch);
}

TEST_F(WorkspaceTest, OutsideGitTheDirectoryIsCopied) {
  fs::path plain = root_ / "plain";
  fs::create_directories(plain);
  std::ofstream(plain / "ladle.yml") << "name: x\n";
  SourceInfo source;
  ASSERT_TRUE(DescribeSource((plain / "ladle.yml").string(), &source).ok());
  TreeState state;
  ASSERT_TRUE(CheckoutWorkingTree(source, (root_ / "ws").string(), "", &state).ok());
  EXPECT_TRUE(fs::exists(root_ / "ws/ladle.yml"));
  EXPECT_FALSE(state.dirty);
  EXPECT_TRUE(state.tree.empty());
}

}  // namespace
}  // namespace ladle::runner
