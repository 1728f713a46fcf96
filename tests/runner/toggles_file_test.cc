// runner/config/toggles_file.h: toggles.yml into sync entries, and its messages.
#include "runner/config/toggles_file.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace ladle::runner {
namespace {

using toggles::SyncEntry;
using toggles::ToggleType;

// Every diagnostic, one per line, or "ok".
std::string Errors(const std::string& text, std::vector<SyncEntry>* entries = nullptr) {
  std::vector<SyncEntry> local;
  std::vector<Diagnostic> diagnostics;
  bool ok = ParseTogglesFile(text, "toggles.yml", entries ? entries : &local, &diagnostics);
  std::string out;
  for (const Diagnostic& d : diagnostics) out += d.ToString() + "\n";
  if (ok != out.empty()) out += ok ? "(returned true)\n" : "(returned false without a message)\n";
  return out.empty() ? "ok" : out;
}

TEST(TogglesFile, ReadsAListOfToggles) {
  std::vector<SyncEntry> entries;
  ASSERT_EQ("ok", Errors(R"(
- key: new-checkout
  type: release
  description: One-page checkout
- key: button.color
  type: experiment
  variants:
    - {name: blue, weight: 500, value: "#00f"}
    - {name: red, weight: 500, value: "#f00"}
- key: Kill_switch-2
)",
                         &entries));
  ASSERT_EQ(3u, entries.size());
  EXPECT_EQ("new-checkout", entries[0].key);
  EXPECT_EQ(ToggleType::kRelease, entries[0].fields.type);
  EXPECT_EQ("One-page checkout", entries[0].fields.description);
  EXPECT_FALSE(entries[0].fields.variants);
  EXPECT_EQ(ToggleType::kExperiment, entries[1].fields.type);
  ASSERT_TRUE(entries[1].fields.variants);
  ASSERT_EQ(2u, entries[1].fields.variants->size());
  EXPECT_EQ("red", (*entries[1].fields.variants)[1].name);
  EXPECT_EQ(500, (*entries[1].fields.variants)[1].weight);
  EXPECT_EQ("#f00", (*entries[1].fields.variants)[1].value);
  // Absent fields stay absent: a sync leaves them as they are.
  EXPECT_EQ("Kill_switch-2", entries[2].key);
  EXPECT_FALSE(entries[2].fields.type);
  EXPECT_FALSE(entries[2].fields.description);
}

TEST(TogglesFile, ReadsTheMapFormToo) {
  std::vector<SyncEntry> entries;
  ASSERT_EQ("ok", Errors("toggles:\n  - {key: a, type: kill-switch}\n  - key: b\n", &entries));
  ASSERT_EQ(2u, entries.size());
  EXPECT_EQ(ToggleType::kKillSwitch, entries[0].fields.type);
  EXPECT_EQ("b", entries[1].key);
  ASSERT_EQ("ok", Errors("toggles: []\n", &entries));
  EXPECT_TRUE(entries.empty());
}

TEST(TogglesFile, VariantValuesFollowYamlTypes) {
  std::vector<SyncEntry> entries;
  ASSERT_EQ("ok", Errors(R"(
- key: n
  variants: [{name: small, weight: 250, value: 1}, {name: big, weight: 750, value: 2.5}]
- key: o
  variants:
    - {name: x, weight: 1000, value: {size: 3, on: true, tags: [a, "1"], none: null}}
- key: s
  variants: [{name: one, weight: 1000, value: "1"}]
- key: b
  variants: [{name: t, weight: 600, value: true}, {name: f, weight: 400, value: false}]
)",
                         &entries));
  ASSERT_EQ(4u, entries.size());
  EXPECT_EQ("1", (*entries[0].fields.variants)[0].value.dump());
  EXPECT_EQ("2.5", (*entries[0].fields.variants)[1].value.dump());
  EXPECT_EQ(R"({"none":null,"on":true,"size":3,"tags":["a","1"]})",
            (*entries[1].fields.variants)[0].value.dump());
  EXPECT_EQ(R"("1")", (*entries[2].fields.variants)[0].value.dump());
  EXPECT_EQ("false", (*entries[3].fields.variants)[1].value.dump());
}

TEST(TogglesFile, ToggleErrorsNameTheirPlace) {
  EXPECT_EQ(
      "toggles.yml:2:3: unknown key 'descripton' in toggle 'checkout'; did you mean "
      "'description'?\n"
      "toggles.yml:3:8: duplicate toggle key 'checkout' (first at line 1)\n"
      "toggles.yml:4:8: 'key' must be letters, digits, '.', '_' and '-', up to 128 characters, "
      "got a string 'bad key'\n"
      "toggles.yml:5:9: 'type' must be one of release, experiment, ops, kill-switch, permission, "
      "dark-launch, got a string 'relase'; did you mean 'release'?\n"
      "toggles.yml:6:3: missing required key 'key' in toggle #4\n"
      "toggles.yml:7:16: 'description' must be a string, got a list\n"
      "toggles.yml:8:3: toggle #5 must be a map, got a string 'just-a-name'\n",
      Errors("- key: checkout\n"
             "  descripton: x\n"
             "- key: checkout\n"
             "- key: bad key\n"
             "  type: relase\n"
             "- type: ops\n"
             "  description: [a]\n"
             "- just-a-name\n"));
}

TEST(TogglesFile, VariantErrorsNameTheirPlace) {
  EXPECT_EQ("toggles.yml:3:5: toggle 'color': variants: weights must sum to 1000, got 900\n",
            Errors("- key: color\n"
                   "  variants:\n"
                   "    - {name: blue, weight: 500, value: b}\n"
                   "    - {name: red, weight: 400, value: r}\n"));
  EXPECT_EQ("toggles.yml:4:14: toggle 'color': variants[1].name: duplicate variant \"blue\"\n",
            Errors("- key: color\n"
                   "  variants:\n"
                   "    - {name: blue, weight: 500, value: b}\n"
                   "    - {name: blue, weight: 500, value: r}\n"));
  EXPECT_EQ(
      "toggles.yml:4:39: toggle 'color': variants[1].value: expected string like "
      "variants[0].value, found number\n",
      Errors("- key: color\n"
             "  variants:\n"
             "    - {name: blue, weight: 500, value: b}\n"
             "    - {name: red, weight: 500, value: 7}\n"));
  EXPECT_EQ(
      "toggles.yml:3:13: toggle 'color': variants[0].name: only A-Z a-z 0-9 . _ - allowed, up to "
      "128 characters\n",
      Errors("- key: color\n"
             "  variants:\n"
             "    - name: dark blue\n"
             "      weight: 1000\n"
             "      value: b\n"));
  EXPECT_EQ(
      "toggles.yml:3:7: missing required key 'value' in variant #1 of toggle 'color'\n"
      "toggles.yml:3:28: 'weight' must be between 0 and 1000, got 1200\n"
      "toggles.yml:3:34: unknown key 'vaule' in variant #1 of toggle 'color'; did you mean "
      "'value'?\n"
      "toggles.yml:4:7: variant #2 of toggle 'color' must be a map, got a string 'red'\n",
      Errors("- key: color\n"
             "  variants:\n"
             "    - {name: blue, weight: 1200, vaule: b}\n"
             "    - red\n"));
  EXPECT_EQ("toggles.yml:2:13: 'variants' must be a list, got a map\n",
            Errors("- key: color\n  variants: {a: 1}\n"));
}

TEST(TogglesFile, TopLevelErrors) {
  EXPECT_EQ(
      "toggles.yml:1:1: the file is empty; list toggles as '- key: NAME', or write "
      "'toggles: []' for none\n",
      Errors("# nothing yet\n"));
  EXPECT_EQ(
      "toggles.yml:1:1: the top level must be a list of toggles (or a map with 'toggles'), got a "
      "string 'checkout'\n",
      Errors("checkout\n"));
  EXPECT_EQ(
      "toggles.yml:1:1: unknown key 'toggle' at the top level; did you mean 'toggles'?\n"
      "toggles.yml:1:1: missing required key 'toggles' at the top level\n",
      Errors("toggle: [{key: a}]\n"));
  EXPECT_EQ("toggles.yml:1:10: 'toggles' must be a list, got a map\n",
            Errors("toggles: {key: a}\n"));
  EXPECT_NE("ok", Errors("- key: a\n  - b\n"));  // YAML syntax errors are reported too
}

TEST(TogglesFile, LoadsFromDisk) {
  char tmpl[] = "/tmp/ladle_toggles_file_test.XXXXXX";
  ASSERT_NE(nullptr, mkdtemp(tmpl));
  std::string dir = tmpl;
  std::ofstream(dir + "/toggles.yml") << "- key: a\n  description: from disk\n";
  std::vector<SyncEntry> entries;
  std::vector<Diagnostic> diagnostics;
  EXPECT_TRUE(LoadTogglesFile(dir + "/toggles.yml", &entries, &diagnostics));
  ASSERT_EQ(1u, entries.size());
  EXPECT_EQ("from disk", entries[0].fields.description);
  EXPECT_FALSE(LoadTogglesFile(dir + "/missing.yml", &entries, &diagnostics));
  ASSERT_EQ(1u, diagnostics.size());
  EXPECT_EQ(dir + "/missing.yml: cannot read: No such file or directory",
            diagnostics[0].ToString());
  EXPECT_TRUE(entries.empty());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ladle::runner
