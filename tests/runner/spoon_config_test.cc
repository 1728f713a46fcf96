// The settings hierarchy of `ladle env` (runner/spoon/env_config.h,
// docs/spoons.md "Profiles and env.yml").
#include "runner/spoon/env_config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "tests/test_util.h"

namespace ladle::runner::spoon {
namespace {

namespace fs = std::filesystem;

class SpoonConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = testing::MakeTempDir("/tmp/ladle-spoon-config-XXXXXX");
    home_ = root_ / "home";
    project_ = root_ / "project";
    fs::create_directories(home_ / ".config" / "ladle");
    fs::create_directories(project_ / ".git");
    fs::create_directories(project_ / ".ladle");
    sources_.home = home_.string();
    sources_.project_dir = project_.string();
    sources_.docker_host_env = "";
  }
  void TearDown() override { fs::remove_all(root_); }

  std::string UserFile() const { return (home_ / ".config/ladle/env.yml").string(); }
  std::string ProjectFile() const { return (project_ / ".ladle/env.yml").string(); }
  static void Write(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::trunc) << text;
  }
  Status Load(SpoonSettings* s, SettingsReport* report = nullptr) {
    return LoadSpoonSettings(sources_, s, report);
  }

  fs::path root_, home_, project_;
  SettingsSources sources_;
};

TEST_F(SpoonConfigTest, NoFilesGivesTheBuiltInDefaults) {
  SpoonSettings s;
  SettingsReport report;
  ASSERT_TRUE(Load(&s, &report).ok());
  EXPECT_EQ("", s.image);
  EXPECT_EQ("spoon-", s.prefix);
  EXPECT_EQ("/bin/sh", s.shell);
  EXPECT_EQ("built-in", s.origin["prefix"]);
  EXPECT_EQ("built-in", s.origin["image"]);
  EXPECT_TRUE(report.files_read.empty());
  EXPECT_TRUE(report.profiles.empty());
}

TEST_F(SpoonConfigTest, EachLayerOverridesTheOneBelowAndSaysWhere) {
  Write(UserFile(),
        "default:\n"
        "  image: user-image\n"
        "  prefix: u-\n"
        "  shell: /bin/bash\n"
        "  cpus: 1\n"
        "profiles:\n"
        "  rust:\n"
        "    image: user-rust\n"
        "    memory: 1g\n");
  Write(ProjectFile(),
        "default:\n"
        "  image: project-image\n"
        "  cpus: \"2\"\n"
        "profiles:\n"
        "  rust:\n"
        "    memory: 4g\n");
  SpoonSettings s;
  ASSERT_TRUE(Load(&s).ok());
  EXPECT_EQ("project-image", s.image);
  EXPECT_EQ(ProjectFile() + ":2", s.origin["image"]);
  EXPECT_EQ("u-", s.prefix);
  EXPECT_EQ(UserFile() + ":3", s.origin["prefix"]);
  EXPECT_EQ("2", s.cpus);
  EXPECT_EQ("", s.memory);  // profiles apply only when chosen

  sources_.profile = "rust";
  ASSERT_TRUE(Load(&s).ok());
  EXPECT_EQ("user-rust", s.image);  // the user's profile over both defaults
  EXPECT_EQ(UserFile() + ":8 profile rust", s.origin["image"]);
  EXPECT_EQ("4g", s.memory);  // the project's profile over the user's
  EXPECT_EQ(ProjectFile() + ":6 profile rust", s.origin["memory"]);

  sources_.flags.image = "flag-image";
  sources_.flags_given = {"image"};
  ASSERT_TRUE(Load(&s).ok());
  EXPECT_EQ("flag-image", s.image);
  EXPECT_EQ("--image", s.origin["image"]);
  EXPECT_EQ("4g", s.memory);
}

TEST_F(SpoonConfigTest, FlagNamesAreSpelledAsTheCommandLineHasThem) {
  sources_.flags.ports = {"8080"};
  sources_.flags.docker_host = "unix:///x.sock";
  sources_.flags.run_on_create = {"true"};
  sources_.flags_given = {"ports", "docker_host", "run_on_create"};
  sources_.flag_names = {{"ports", "--port"}};
  SpoonSettings s;
  ASSERT_TRUE(Load(&s).ok());
  EXPECT_EQ("--port", s.origin["ports"]);
  EXPECT_EQ("--host", s.origin["docker_host"]);
  EXPECT_EQ("--run-on-create", s.origin["run_on_create"]);
  EXPECT_EQ("unix:///x.sock", s.docker_host);
}

TEST_F(SpoonConfigTest, DockerHostFromTheEnvironmentIsBelowTheFiles) {
  sources_.docker_host_env = "unix:///env.sock";
  SpoonSettings s;
  ASSERT_TRUE(Load(&s).ok());
  EXPECT_EQ("unix:///env.sock", s.docker_host);
  EXPECT_EQ("$DOCKER_HOST", s.origin["docker_host"]);
  Write(ProjectFile(), "default:\n  host: ssh://team@build.example\n");
  ASSERT_TRUE(Load(&s).ok());
  EXPECT_EQ("ssh://team@build.example", s.docker_host);
  EXPECT_EQ(ProjectFile() + ":2", s.origin["docker_host"]);
}

TEST_F(SpoonConfigTest, ListsReplaceAndEnvMergesByName) {
  Write(UserFile(),
        "default:\n"
        "  ports: [\"8080\", \"9000:9001\"]\n"
        "  env:\n"
        "    EDITOR: vim\n"
        "    LANG: C.UTF-8\n");
  Write(ProjectFile(),
        "default:\n"
        "  ports:\n"
        "    - 3000\n"
        "  env:\n"
        "    EDITOR: emacs\n"
        "    GOFLAGS: -mod=mod\n");
  sources_.flags.env = {{"LANG", "en_US.UTF-8"}};
  sources_.flags_given = {"env"};
  SpoonSettings s;
  ASSERT_TRUE(Load(&s).ok());
  EXPECT_EQ(std::vector<std::string>{"3000"}, s.ports);
  EXPECT_EQ(ProjectFile() + ":2", s.origin["ports"]);
  ASSERT_EQ(3u, s.env.size());
  EXPECT_EQ("emacs", s.env["EDITOR"]);
  EXPECT_EQ(ProjectFile() + ":5", s.origin["env.EDITOR"]);
  EXPECT_EQ("-mod=mod", s.env["GOFLAGS"]);
  EXPECT_EQ("en_US.UTF-8", s.env["LANG"]);
  EXPECT_EQ("--env", s.origin["env.LANG"]);
}

TEST_F(SpoonConfigTest, CopyTakesMapsAndFromToStrings) {
  Write(ProjectFile(),
        "default:\n"
        "  copy:\n"
        "    - {from: ~/.gitconfig, to: /root/.gitconfig}\n"
        "    - ~/.ssh/id_ed25519.pub:/root/.ssh/authorized_keys\n"
        "  run_on_create: apt-get update\n"
        "  privileged: true\n"
        "  volumes: [\"/srv/cache:/cache:ro\"]\n"
        "  dns: [127.0.0.53]\n");
  SpoonSettings s;
  ASSERT_TRUE(Load(&s).ok());
  ASSERT_EQ(2u, s.copy.size());
  EXPECT_EQ("~/.gitconfig", s.copy[0].from);
  EXPECT_EQ("/root/.gitconfig", s.copy[0].to);
  EXPECT_EQ("~/.ssh/id_ed25519.pub", s.copy[1].from);
  EXPECT_EQ("/root/.ssh/authorized_keys", s.copy[1].to);
  EXPECT_EQ(std::vector<std::string>{"apt-get update"}, s.run_on_create);
  EXPECT_TRUE(s.privileged);
  EXPECT_EQ(std::vector<std::string>{"127.0.0.53"}, s.dns);
}

TEST_F(SpoonConfigTest, WrongKeyIsFileLineColWithDidYouMean) {
  Write(ProjectFile(), "default:\n  image: x\n  prots: [\"80\"]\n");
  SpoonSettings s;
  Status st = Load(&s);
  EXPECT_EQ(Code::kInvalid, st.code());
  EXPECT_NE(std::string::npos,
            st.message().find(ProjectFile() + ":3:3: unknown key 'prots' in 'default'; did you mean 'ports'?"))
      << st.message();
}

TEST_F(SpoonConfigTest, WrongKeyInAProfileAndAtTheTop) {
  Write(UserFile(), "defaults:\n  image: x\nprofiles:\n  go:\n    imag: golang\n");
  SpoonSettings s;
  Status st = Load(&s);
  EXPECT_EQ(Code::kInvalid, st.code());
  EXPECT_NE(std::string::npos, st.message().find(UserFile() + ":1:1: unknown key 'defaults' at the top level; did you mean 'default'?"))
      << st.message();
  EXPECT_NE(std::string::npos, st.message().find(UserFile() + ":5:5: unknown key 'imag' in profile 'go'; did you mean 'image'?"))
      << st.message();
}

TEST_F(SpoonConfigTest, WrongTypesAreFileLineCol) {
  Write(ProjectFile(),
        "default:\n"
        "  privileged: maybe\n"
        "  ports: [\"http\"]\n"
        "  env: [A]\n"
        "  memory: lots\n"
        "  copy: [\"nocolon\"]\n"
        "  host: ftp://x\n");
  SpoonSettings s;
  Status st = Load(&s);
  ASSERT_EQ(Code::kInvalid, st.code());
  const std::string& m = st.message();
  EXPECT_NE(std::string::npos, m.find(ProjectFile() + ":2:15: 'privileged' must be true or false")) << m;
  EXPECT_NE(std::string::npos, m.find(ProjectFile() + ":3:11: each entry of 'ports' must be")) << m;
  EXPECT_NE(std::string::npos, m.find(ProjectFile() + ":4:8: 'env' must be a map")) << m;
  EXPECT_NE(std::string::npos, m.find(ProjectFile() + ":5:11: 'memory' must be a size")) << m;
  EXPECT_NE(std::string::npos, m.find(ProjectFile() + ":6:10: a copy is FROM:TO")) << m;
  EXPECT_NE(std::string::npos, m.find(ProjectFile() + ":7:9: 'host': DOCKER_HOST 'ftp://x'")) << m;
}

TEST_F(SpoonConfigTest, NotYamlIsFileLineCol) {
  Write(ProjectFile(), "default: [unclosed\n");
  SpoonSettings s;
  Status st = Load(&s);
  EXPECT_EQ(Code::kInvalid, st.code());
  EXPECT_NE(std::string::npos, st.message().find(ProjectFile() + ":")) << st.message();
}

TEST_F(SpoonConfigTest, UnknownProfileListsTheProfiles) {
  Write(UserFile(), "profiles:\n  go: {image: golang}\n");
  Write(ProjectFile(), "profiles:\n  rust: {image: rust}\n");
  sources_.profile = "pyhton";
  SpoonSettings s;
  SettingsReport report;
  Status st = Load(&s, &report);
  EXPECT_EQ(Code::kInvalid, st.code());
  EXPECT_NE(std::string::npos, st.message().find("unknown profile 'pyhton': the profiles are go, rust"))
      << st.message();
}

TEST_F(SpoonConfigTest, UnknownProfileWithoutFilesSaysSo) {
  sources_.profile = "go";
  SpoonSettings s;
  Status st = Load(&s);
  EXPECT_EQ(Code::kInvalid, st.code());
  EXPECT_NE(std::string::npos, st.message().find("no profiles are defined")) << st.message();
}

TEST_F(SpoonConfigTest, ProjectFileIsFoundUpToTheGitRootOnly) {
  Write(ProjectFile(), "default: {image: from-root}\n");
  fs::create_directories(project_ / "a" / "b");
  sources_.project_dir = (project_ / "a" / "b").string();
  EXPECT_EQ(ProjectFile(), FindProjectSettingsFile(sources_));
  SpoonSettings s;
  ASSERT_TRUE(Load(&s).ok());
  EXPECT_EQ("from-root", s.image);
  // Above the git root nothing is read.
  fs::create_directories(root_ / ".ladle");
  Write((root_ / ".ladle/env.yml").string(), "default: {image: above}\n");
  fs::remove(ProjectFile());
  EXPECT_EQ("", FindProjectSettingsFile(sources_));
}

TEST_F(SpoonConfigTest, TooLargeFileIsRefused) {
  Write(ProjectFile(), "default:\n  image: x\n" + std::string(300 * 1024, '#') + "\n");
  SpoonSettings s;
  Status st = Load(&s);
  EXPECT_EQ(Code::kInvalid, st.code());
  EXPECT_NE(std::string::npos, st.message().find("too large")) << st.message();
}

TEST_F(SpoonConfigTest, EmptyFileIsFine) {
  Write(ProjectFile(), "");
  SpoonSettings s;
  SettingsReport report;
  ASSERT_TRUE(Load(&s, &report).ok());
  EXPECT_EQ(std::vector<std::string>{ProjectFile()}, report.files_read);
}

TEST_F(SpoonConfigTest, FormatShowsEveryKeyWithItsOrigin) {
  Write(ProjectFile(), "default:\n  image: img\n  env: {A: \"1\"}\n");
  SpoonSettings s;
  ASSERT_TRUE(Load(&s).ok());
  std::string text = FormatSpoonSettings(s);
  EXPECT_NE(std::string::npos, text.find("image: img  # " + ProjectFile() + ":2\n")) << text;
  EXPECT_NE(std::string::npos, text.find("prefix: spoon-  # built-in\n")) << text;
  EXPECT_NE(std::string::npos, text.find("  A: 1  # " + ProjectFile() + ":3\n")) << text;
  EXPECT_NE(std::string::npos, text.find("host: unix:///var/run/docker.sock  # built-in")) << text;
}

TEST(ParseCopySpecTest, SplitsAtTheLastColon) {
  CopySpec c;
  ASSERT_TRUE(ParseCopySpec("~/.vimrc:/root/.vimrc", &c).ok());
  EXPECT_EQ("~/.vimrc", c.from);
  EXPECT_EQ("/root/.vimrc", c.to);
  EXPECT_FALSE(ParseCopySpec("nocolon", &c).ok());
  EXPECT_FALSE(ParseCopySpec(":/x", &c).ok());
  EXPECT_FALSE(ParseCopySpec("/x:", &c).ok());
}

}  // namespace
}  // namespace ladle::runner::spoon
