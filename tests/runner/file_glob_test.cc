#include "runner/exec/file_glob.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#ifndef LADLE_TEST_DATA
#define LADLE_TEST_DATA "tests/runner/data"
#endif

namespace ladle::runner {
namespace {

namespace fs = std::filesystem;

// A scratch directory, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "ladle-glob-XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() { fs::remove_all(path_); }

  const std::string& path() const { return path_; }

  // Creates a file and its parent directories.
  void Touch(const std::string& rel) const {
    fs::create_directories(fs::path(path_ + "/" + rel).parent_path());
    std::ofstream(path_ + "/" + rel) << "x";
  }
  void MakeDir(const std::string& rel) const { fs::create_directories(path_ + "/" + rel); }
  void Link(const std::string& target, const std::string& rel) const {
    fs::create_symlink(target, path_ + "/" + rel);
  }

 private:
  std::string path_;
};

// "a b c" for the matches, or "error: MESSAGE".
std::string Glob(const std::string& root, const std::vector<std::string>& patterns) {
  std::vector<std::string> matches = {"stale"};
  Status status = ExpandGlobs(root, patterns, &matches);
  if (!status.ok()) return "error: " + status.message();
  std::string out;
  for (const std::string& match : matches) out += (out.empty() ? "" : " ") + match;
  return out;
}

class FileGlobTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_.Touch("top.xml");
    dir_.Touch("out/a.xml");
    dir_.Touch("out/b.xml");
    dir_.Touch("out/c.txt");
    dir_.Touch("out/sub/d.xml");
    dir_.Touch("out/sub/deeper/e.xml");
  }
  std::string Glob(const std::vector<std::string>& patterns) {
    return runner::Glob(dir_.path(), patterns);
  }
  TempDir dir_;
};

TEST_F(FileGlobTest, StarMatchesWithinOneDirectory) {
  EXPECT_EQ("out/a.xml out/b.xml", Glob({"out/*.xml"}));
  EXPECT_EQ("out/a.xml out/b.xml out/c.txt out/sub", Glob({"out/*"}));
}

TEST_F(FileGlobTest, QuestionMarkAndBrackets) {
  EXPECT_EQ("out/a.xml out/b.xml", Glob({"out/?.xml"}));
  EXPECT_EQ("out/b.xml out/c.txt", Glob({"out/[bc].*"}));
  EXPECT_EQ("out/a.xml", Glob({"out/[!bc].xml"}));
}

TEST_F(FileGlobTest, DoubleStarMatchesAnyNumberOfDirectoriesIncludingNone) {
  EXPECT_EQ("out/a.xml out/b.xml out/sub/d.xml out/sub/deeper/e.xml top.xml",
            Glob({"**/*.xml"}));
  EXPECT_EQ("out/sub/d.xml out/sub/deeper/e.xml", Glob({"out/sub/**/*.xml"}));
  EXPECT_EQ("out/sub/deeper/e.xml", Glob({"**/deeper/*.xml"}));
}

TEST_F(FileGlobTest, DoubleStarInTheMiddleFindsSurefireReportsOfEveryModule) {
  EXPECT_EQ(
      "maven/shop-core/target/surefire-reports/TEST-com.example.CartTest.xml "
      "maven/shop-web/target/surefire-reports/TEST-com.example.web.CheckoutControllerTest.xml",
      runner::Glob(LADLE_TEST_DATA "/junit", {"maven/**/surefire-reports/TEST-*.xml"}));
}

TEST_F(FileGlobTest, TrailingDoubleStarMeansEverythingBelow) {
  EXPECT_EQ("out/sub/d.xml out/sub/deeper out/sub/deeper/e.xml", Glob({"out/sub/**"}));
}

TEST_F(FileGlobTest, RepeatedDoubleStarsMatchLikeOne) {
  EXPECT_EQ(Glob({"**/*.xml"}), Glob({"**/**/**/*.xml"}));
}

TEST_F(FileGlobTest, ResultsAreSortedAndUniqueAcrossPatterns) {
  EXPECT_EQ("out/a.xml out/b.xml top.xml", Glob({"top.xml", "out/b.xml", "out/*.xml", "**/a.xml"}));
}

TEST_F(FileGlobTest, LiteralPathNamesAFileOrADirectory) {
  EXPECT_EQ("out/a.xml", Glob({"out/a.xml"}));
  EXPECT_EQ("out/sub", Glob({"out/sub"}));
}

TEST_F(FileGlobTest, NoMatchIsEmptyNotAnError) {
  EXPECT_EQ("", Glob({"missing.xml"}));
  EXPECT_EQ("", Glob({"out/*.json"}));
  EXPECT_EQ("", Glob({"top.xml/*"}));  // a file is not a directory
  EXPECT_EQ("", Glob({}));
}

TEST_F(FileGlobTest, DotSlashAndDoubleSlashesAreIgnored) {
  EXPECT_EQ("out/a.xml", Glob({"./out//a.xml"}));
  EXPECT_EQ("out/sub", Glob({"out/sub/"}));
}

TEST_F(FileGlobTest, HiddenEntriesNeedAnExplicitDot) {
  dir_.Touch(".hidden.xml");
  dir_.Touch(".cache/x.xml");
  dir_.Touch("out/.tox/y.xml");
  EXPECT_EQ("top.xml", Glob({"*.xml"}));
  EXPECT_EQ("out/a.xml out/b.xml out/sub/d.xml out/sub/deeper/e.xml top.xml",
            Glob({"**/*.xml"}));
  EXPECT_EQ(".hidden.xml", Glob({".*.xml"}));
  EXPECT_EQ(".cache/x.xml", Glob({".cache/*.xml"}));
  EXPECT_EQ("out/.tox/y.xml", Glob({"**/.tox/*.xml"}));
}

TEST_F(FileGlobTest, DotStarNeverMatchesDotDot) {
  TempDir parent;
  parent.Touch("secret.xml");
  parent.Touch("workspace/top.xml");
  EXPECT_EQ("", runner::Glob(parent.path() + "/workspace", {".*/secret.xml"}));
  EXPECT_EQ("", Glob({"out/.*/top.xml"}));
}

TEST_F(FileGlobTest, SymlinksOutOfTheRootAreLeftOut) {
  TempDir outside;
  outside.Touch("secret.xml");
  dir_.Link(outside.path() + "/secret.xml", "leak.xml");
  dir_.Link(outside.path(), "outside");
  EXPECT_EQ("", Glob({"leak.xml"}));
  EXPECT_EQ("top.xml", Glob({"*.xml"}));
  EXPECT_EQ("", Glob({"outside/*.xml"}));
  EXPECT_EQ("", Glob({"outside/**/*.xml"}));
}

TEST_F(FileGlobTest, SymlinksInsideTheRootAreFollowedExceptByDoubleStar) {
  dir_.Link("out/a.xml", "alias.xml");
  dir_.Link("sub", "out/loop");  // out/loop -> out/sub
  dir_.Link(".", "out/sub/self");  // a cycle "**" must not walk
  EXPECT_EQ("alias.xml top.xml", Glob({"*.xml"}));
  EXPECT_EQ("out/loop/d.xml", Glob({"out/loop/*.xml"}));
  EXPECT_EQ("out/a.xml out/b.xml out/sub/d.xml out/sub/deeper/e.xml", Glob({"out/**/*.xml"}));
}

TEST_F(FileGlobTest, DanglingSymlinksAndSpecialFilesAreLeftOut) {
  dir_.Link("nowhere.xml", "out/dangling.xml");
  ASSERT_EQ(0, mkfifo((dir_.path() + "/out/fifo.xml").c_str(), 0600));
  EXPECT_EQ("out/a.xml out/b.xml", Glob({"out/*.xml"}));
}

TEST_F(FileGlobTest, AbsolutePatternIsInvalid) {
  std::vector<std::string> matches;
  Status status = ExpandGlobs(dir_.path(), {"/etc/passwd"}, &matches);
  EXPECT_EQ(Code::kInvalid, status.code());
  EXPECT_EQ("glob '/etc/passwd' is absolute: globs are relative to the workspace",
            status.message());
}

TEST_F(FileGlobTest, PatternLeavingTheRootIsInvalid) {
  EXPECT_EQ("error: glob '../x.xml' leaves the workspace: '..' is not allowed",
            Glob({"../x.xml"}));
  EXPECT_EQ("error: glob 'out/../../x.xml' leaves the workspace: '..' is not allowed",
            Glob({"out/../../x.xml"}));
  EXPECT_EQ("error: glob '**/../*' leaves the workspace: '..' is not allowed",
            Glob({"top.xml", "**/../*"}));
}

TEST_F(FileGlobTest, EmptyPatternOrTheRootItselfIsInvalid) {
  EXPECT_EQ("error: empty glob", Glob({""}));
  EXPECT_EQ("error: glob '.' names the workspace itself, not a file in it", Glob({"."}));
  EXPECT_EQ("error: glob './/' names the workspace itself, not a file in it", Glob({".//"}));
}

TEST(FileGlobRootTest, MissingRootIsAnIoError) {
  std::vector<std::string> matches;
  Status status = ExpandGlobs("/nonexistent/ladle-workspace", {"*.xml"}, &matches);
  EXPECT_EQ(Code::kIoError, status.code());
  EXPECT_EQ("open workspace /nonexistent/ladle-workspace: No such file or directory",
            status.message());
}

TEST(FileGlobRootTest, BadPatternIsReportedBeforeAMissingRoot) {
  EXPECT_EQ("error: glob '/abs' is absolute: globs are relative to the workspace",
            Glob("/nonexistent/ladle-workspace", {"/abs"}));
}

TEST(FileGlobRootTest, RootThatIsAFileIsAnIoError) {
  TempDir dir;
  dir.Touch("file");
  EXPECT_EQ("error: open workspace " + dir.path() + "/file: not a directory",
            Glob(dir.path() + "/file", {"*"}));
}

}  // namespace
}  // namespace ladle::runner
