// runner/config/yaml_file.h: the prologue every YAML loader shares.
#include "runner/config/yaml_file.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace ladle::runner {
namespace {

YamlFileRules Rules(bool empty_is_warning = false, bool read_before_second_document = true) {
  YamlFileRules rules;
  rules.empty_message = "the file is empty";
  rules.empty_is_warning = empty_is_warning;
  rules.read_before_second_document = read_before_second_document;
  return rules;
}

// A schema reader that reports every top-level key of a map: "key k"
// (a warning for keys starting with "w"), and counts its calls.
struct KeyReader {
  int calls = 0;
  YamlFileReader reader() {
    return [this](const YamlNode& root, YamlChecker* checker) {
      ++calls;
      for (const auto& [key, value] : root.pairs()) {
        if (key->value()[0] == 'w')
          checker->Warning(key->location, "key " + key->value());
        else
          checker->Error(key->location, "key " + key->value());
      }
    };
  }
};

std::string Lines(const std::vector<Diagnostic>& diagnostics) {
  std::string out;
  for (const Diagnostic& d : diagnostics) out += d.ToString() + "\n";
  return out;
}

TEST(YamlFileTest, TheReaderGetsTheRootAndItsReportsAreTidied) {
  KeyReader keys;
  std::vector<Diagnostic> diagnostics = {Diagnostic{"before", {9, 9}, false, "kept"}};
  // "b" twice: the checker reports each, the tidy-up keeps one of each
  // place and sorts by position; what came before is left as it was.
  YamlFileReader twice = [&](const YamlNode& root, YamlChecker* checker) {
    YamlFileReader once = keys.reader();
    once(root, checker);
    once(root, checker);
  };
  EXPECT_FALSE(ParseYamlFile("b: 1\na: 2\n", "f.yml", Rules(), twice, &diagnostics));
  EXPECT_EQ(2, keys.calls);
  EXPECT_EQ("before:9:9: kept\nf.yml:1:1: key b\nf.yml:2:1: key a\n", Lines(diagnostics));
}

TEST(YamlFileTest, WarningsAloneAreValid) {
  KeyReader keys;
  std::vector<Diagnostic> diagnostics;
  EXPECT_TRUE(ParseYamlFile("w1: 1\n", "f.yml", Rules(), keys.reader(), &diagnostics));
  EXPECT_EQ("f.yml:1:1: warning: key w1\n", Lines(diagnostics));
  diagnostics.clear();
  EXPECT_TRUE(ParseYamlFile("[]\n", "f.yml", Rules(), keys.reader(), &diagnostics));
  EXPECT_EQ("", Lines(diagnostics));
  EXPECT_EQ(2, keys.calls);
}

TEST(YamlFileTest, AnEmptyFileIsAnErrorOrAWarningAndNotRead) {
  KeyReader keys;
  for (const char* text : {"", "# only a comment\n", "---\n", "~\n"}) {
    SCOPED_TRACE(text);
    std::vector<Diagnostic> diagnostics;
    EXPECT_FALSE(ParseYamlFile(text, "f.yml", Rules(), keys.reader(), &diagnostics));
    EXPECT_EQ("f.yml:1:1: the file is empty\n", Lines(diagnostics));
    diagnostics.clear();
    EXPECT_TRUE(ParseYamlFile(text, "f.yml", Rules(true), keys.reader(), &diagnostics));
    EXPECT_EQ("f.yml:1:1: warning: the file is empty\n", Lines(diagnostics));
  }
  EXPECT_EQ(0, keys.calls);
}

TEST(YamlFileTest, ASyntaxErrorStopsBeforeTheReader) {
  KeyReader keys;
  std::vector<Diagnostic> diagnostics;
  EXPECT_FALSE(ParseYamlFile("a: b: c\n", "f.yml", Rules(), keys.reader(), &diagnostics));
  EXPECT_EQ("f.yml:1:5: YAML syntax error: illegal map value\n", Lines(diagnostics));
  EXPECT_EQ(0, keys.calls);
}

TEST(YamlFileTest, ASecondDocumentIsAnErrorAndTheFirstIsReadOrNot) {
  const std::string kSecond =
      "f.yml:2:1: a second YAML document starts here; a pipeline file holds exactly one\n";
  KeyReader keys;
  std::vector<Diagnostic> diagnostics;
  EXPECT_FALSE(ParseYamlFile("w: 1\n---\nb: 2\n", "f.yml", Rules(false, true), keys.reader(),
                             &diagnostics));
  EXPECT_EQ(1, keys.calls);
  EXPECT_EQ("f.yml:1:1: warning: key w\n" + kSecond, Lines(diagnostics));
  diagnostics.clear();
  EXPECT_FALSE(ParseYamlFile("w: 1\n---\nb: 2\n", "f.yml", Rules(false, false), keys.reader(),
                             &diagnostics));
  EXPECT_EQ(1, keys.calls);
  EXPECT_EQ(kSecond, Lines(diagnostics));
}

TEST(YamlFileTest, LoadReadsTheFileWithinTheLimit) {
  std::filesystem::path dir = ladle::testing::MakeTempDir("/tmp/ladle_yaml_file_test.XXXXXX");
  std::string path = (dir / "f.yml").string();
  std::ofstream(path) << "a: 1\n";
  KeyReader keys;
  std::vector<Diagnostic> diagnostics;
  EXPECT_FALSE(LoadYamlFile(path, Rules(), keys.reader(), &diagnostics));
  EXPECT_EQ(path + ":1:1: key a\n", Lines(diagnostics));

  // What cannot be read is one diagnostic without a position; nothing is parsed.
  diagnostics.clear();
  EXPECT_FALSE(LoadYamlFile(path + ".missing", Rules(), keys.reader(), &diagnostics));
  EXPECT_EQ(path + ".missing: cannot read: No such file or directory\n", Lines(diagnostics));
  diagnostics.clear();
  EXPECT_FALSE(LoadYamlFile(dir.string(), Rules(), keys.reader(), &diagnostics));
  EXPECT_EQ(dir.string() + ": cannot read: Is a directory\n", Lines(diagnostics));
  diagnostics.clear();
  YamlFileRules small = Rules();
  small.limits.max_bytes = 1 << 20;
  std::ofstream(path) << "# " << std::string(1 << 20, 'x') << "\n";
  EXPECT_FALSE(LoadYamlFile(path, small, keys.reader(), &diagnostics));
  EXPECT_EQ(path + ": the file is too large: 1048579 bytes, over the 1 MB limit\n",
            Lines(diagnostics));
  EXPECT_EQ(1, keys.calls);
  std::filesystem::remove_all(dir);
}

// docs/pipeline.md "Bad input": an alias costs its anchor's whole size each time
// it is used, and the document may not expand past max_expanded_bytes.
TEST(YamlFileTest, AliasesAreBudgetedInBytes) {
  YamlFileRules rules = Rules();
  rules.limits.max_expanded_bytes = 100;
  KeyReader keys;
  std::vector<Diagnostic> diagnostics;
  // Keys "a" and "b", a 20-byte anchor and three aliases: 82 bytes.
  const std::string anchor = "a: &x " + std::string(20, 'x') + "\nb: [*x, *x, *x";
  EXPECT_FALSE(ParseYamlFile(anchor + "]\n", "f.yml", rules, keys.reader(), &diagnostics));
  EXPECT_EQ("f.yml:1:1: key a\nf.yml:2:1: key b\n", Lines(diagnostics));
  // A fourth makes 102: refused at that alias, and the reader never runs.
  diagnostics.clear();
  EXPECT_FALSE(ParseYamlFile(anchor + ", *x]\n", "f.yml", rules, keys.reader(), &diagnostics));
  EXPECT_EQ(
      "f.yml:2:17: with its aliases expanded, the document is larger than 100 bytes (this alias "
      "repeats 20 bytes; each use of an alias counts its anchor's whole size)\n",
      Lines(diagnostics));
  EXPECT_EQ(1, keys.calls);
}

TEST(YamlFileTest, AnAliasOfAListCountsEverythingInIt) {
  YamlFileRules rules = Rules();
  rules.limits.max_expanded_bytes = 1000;
  KeyReader keys;
  std::vector<Diagnostic> diagnostics;
  // l1 holds ten 10-byte scalars (100 bytes); each alias of it repeats them
  // all, aliases inside included: with the keys, the ninth use passes 1000.
  std::string yaml = "l0: &l0 " + std::string(10, 'y') + "\nl1: &l1 [";
  for (int i = 0; i < 9; ++i) yaml += "*l0, ";
  yaml += "*l0]\nl2: [";
  for (int i = 0; i < 10; ++i) yaml += (i ? ", " : "") + std::string("*l1");
  EXPECT_FALSE(ParseYamlFile(yaml + "]\n", "f.yml", rules, keys.reader(), &diagnostics));
  EXPECT_EQ(
      "f.yml:3:46: with its aliases expanded, the document is larger than 1000 bytes (this "
      "alias repeats 100 bytes; each use of an alias counts its anchor's whole size)\n",
      Lines(diagnostics));
  EXPECT_EQ(0, keys.calls);
}

TEST(YamlFileTest, TheDefaultExpansionLimitIsTenMegabytes) {
  EXPECT_EQ(std::size_t{10} << 20, YamlLimits().max_expanded_bytes);
  // A 1 MiB anchor and eight aliases of it fit; with a ninth, the ten
  // copies and the keys' two bytes pass 10 MB.
  std::string yaml = "a: &a " + std::string(1 << 20, 'x') + "\nb: [";
  for (int i = 0; i < 8; ++i) yaml += "*a, ";
  KeyReader keys;
  std::vector<Diagnostic> diagnostics;
  EXPECT_FALSE(ParseYamlFile(yaml + "]\n", "f.yml", Rules(), keys.reader(), &diagnostics));
  EXPECT_EQ("f.yml:1:1: key a\nf.yml:2:1: key b\n", Lines(diagnostics));
  diagnostics.clear();
  EXPECT_FALSE(ParseYamlFile(yaml + "*a]\n", "f.yml", Rules(), keys.reader(), &diagnostics));
  EXPECT_EQ(
      "f.yml:2:37: with its aliases expanded, the document is larger than 10 MB (this alias "
      "repeats 1 MB; each use of an alias counts its anchor's whole size)\n",
      Lines(diagnostics));
}

}  // namespace
}  // namespace ladle::runner
