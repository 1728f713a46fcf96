// Tests of the server.yml loader and the secrets file reader: the config they
// build, and the exact text of their messages (users read them, tools parse
// FILE:LINE:COL).
#include "runner/config/server_config.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace ladle::runner {
namespace {

namespace fs = std::filesystem;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::seconds;

// An absolute name, so that relative paths resolve the same anywhere.
const char kFile[] = "/etc/ladle/server.yml";

const char kSpecExample[] = R"(# server.yml
listen: 127.0.0.1:7707
data: /var/lib/ladle              # default: the data dir of section 1
workers: 2                        # runs at a time
backend: docker                   # or local; default: docker when a daemon answers
secrets_file: secrets.env         # KEY=VALUE lines; refused unless mode 0600
requeue_interrupted: true
retention: 30d                    # runs, logs, artifacts and workspaces older than this are pruned
repositories:
  - name: webshop
    url: /srv/git/webshop.git     # a path or any URL git can fetch
    branches: [main]              # further narrowed by the pipeline's on.push.branches
    pipeline: ladle.yml
    poll: 30s                     # absent or 0: webhooks only
    webhook_secret_env: WEBSHOP_HOOK_SECRET
)";

// A repository that triggers (no warning), for tests about other keys.
const char kRepo[] = "repositories:\n  - {name: a, url: /a.git, poll: 1m}\n";

// The diagnostics of parsing `yaml` as kFile, one per line; warnings only
// when `warnings`, errors only otherwise.
std::string Report(std::string_view yaml, bool warnings) {
  ServerConfig config;
  std::vector<Diagnostic> diagnostics;
  ParseServerConfig(yaml, kFile, &config, &diagnostics);
  std::string out;
  for (const Diagnostic& d : diagnostics) {
    if (d.warning != warnings) continue;
    out += (out.empty() ? "" : "\n") + d.ToString();
  }
  return out;
}

std::string Errors(std::string_view yaml) { return Report(yaml, false); }
std::string Warnings(std::string_view yaml) { return Report(yaml, true); }

// Errors of a config made of one repository entry `fields` (on line 2,
// starting at column 5) that is otherwise valid.
std::string RepoErrors(const std::string& fields) {
  return Errors("repositories:\n  - {" + fields + "}\n");
}

ServerConfig Valid(std::string_view yaml) {
  ServerConfig config;
  std::vector<Diagnostic> diagnostics;
  EXPECT_TRUE(ParseServerConfig(yaml, kFile, &config, &diagnostics)) << Errors(yaml);
  return config;
}

class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/ladle-config-XXXXXX";
    path_ = mkdtemp(pattern);
  }
  ~TempDir() { fs::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // Writes `text` to NAME with `mode` and returns its path.
  std::string Write(const std::string& name, const std::string& text, mode_t mode = 0600) {
    std::string path = path_ + "/" + name;
    std::ofstream(path, std::ios::binary) << text;
    chmod(path.c_str(), mode);
    return path;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// ---- The model ---------------------------------------------------------------

TEST(ServerConfigTest, SpecExampleParses) {
  ServerConfig config;
  std::vector<Diagnostic> diagnostics;
  ASSERT_TRUE(ParseServerConfig(kSpecExample, kFile, &config, &diagnostics));
  EXPECT_TRUE(diagnostics.empty()) << diagnostics[0].ToString();
  EXPECT_EQ(kFile, config.file);
  EXPECT_EQ("127.0.0.1:7707", config.listen);
  EXPECT_EQ("/var/lib/ladle", config.data);
  EXPECT_EQ(2, config.workers);
  EXPECT_EQ("docker", config.backend);
  EXPECT_EQ("/etc/ladle/secrets.env", config.secrets_file);
  EXPECT_TRUE(config.requeue_interrupted);
  EXPECT_EQ(hours(24 * 30), config.retention);
  ASSERT_EQ(1u, config.repositories.size());
  const RepositoryConfig& repo = config.repositories[0];
  EXPECT_EQ("webshop", repo.name);
  EXPECT_EQ(10, repo.location.line);
  EXPECT_EQ("/srv/git/webshop.git", repo.url);
  EXPECT_EQ(std::vector<std::string>{"main"}, repo.branches);
  EXPECT_EQ("ladle.yml", repo.pipeline);
  EXPECT_EQ(seconds(30), repo.poll);
  EXPECT_EQ("WEBSHOP_HOOK_SECRET", repo.webhook_secret_env);
  EXPECT_EQ(&repo, config.FindRepository("webshop"));
  EXPECT_EQ(nullptr, config.FindRepository("webshop2"));
}

TEST(ServerConfigTest, DefaultsWhereKeysAreAbsent) {
  ServerConfig config = Valid("repositories:\n  - {name: a, url: /srv/a.git}\n");
  EXPECT_EQ("127.0.0.1:7707", config.listen);
  EXPECT_EQ("", config.data);
  EXPECT_EQ(2, config.workers);
  EXPECT_EQ("", config.backend);
  EXPECT_EQ("", config.secrets_file);
  EXPECT_FALSE(config.requeue_interrupted);
  EXPECT_EQ(seconds(0), config.retention);
  ASSERT_EQ(1u, config.repositories.size());
  const RepositoryConfig& repo = config.repositories[0];
  EXPECT_TRUE(repo.branches.empty());
  EXPECT_EQ("ladle.yml", repo.pipeline);
  EXPECT_EQ(milliseconds(0), repo.poll);
  EXPECT_EQ("", repo.webhook_secret_env);
  ServerConfig defaults;
  EXPECT_EQ("", defaults.file);
  EXPECT_EQ("127.0.0.1:7707", defaults.listen);
  EXPECT_EQ(2, defaults.workers);
}

TEST(ServerConfigTest, EmptyFileGivesTheDefaultsWithAWarning) {
  ServerConfig config;
  config.workers = 9;
  std::vector<Diagnostic> diagnostics;
  EXPECT_TRUE(ParseServerConfig("# nothing yet\n", kFile, &config, &diagnostics));
  EXPECT_EQ(2, config.workers);
  EXPECT_EQ(kFile, config.file);
  EXPECT_EQ(
      "/etc/ladle/server.yml:1:1: warning: the file is empty: the server runs with the "
      "defaults and no repositories",
      Warnings(""));
}

TEST(ServerConfigTest, NoRepositoriesIsAWarning) {
  const std::string warning =
      "no repositories: the server starts no runs of its own (its toggle and run APIs still "
      "work)";
  EXPECT_EQ("/etc/ladle/server.yml:1:1: warning: " + warning, Warnings("workers: 3\n"));
  EXPECT_EQ("/etc/ladle/server.yml:2:1: warning: " + warning,
            Warnings("workers: 3\nrepositories: []\n"));
  // Every entry commented out.
  EXPECT_EQ("/etc/ladle/server.yml:1:1: warning: " + warning,
            Warnings("repositories:\n#  - {name: a, url: /a}\n"));
  EXPECT_EQ("", Errors("repositories:\n"));
  EXPECT_EQ(3, Valid("workers: 3\nrepositories: []\n").workers);
}

TEST(ServerConfigTest, RepositoryThatNothingTriggersIsAWarning) {
  EXPECT_EQ(
      "/etc/ladle/server.yml:2:5: warning: repository 'a' has neither 'poll' nor "
      "'webhook_secret_env': no push will start a run",
      Warnings("repositories:\n  - {name: a, url: /a.git, poll: 0}\n"));
  EXPECT_EQ("", Warnings("repositories:\n  - {name: a, url: /a.git, webhook_secret_env: S}\n"));
  EXPECT_EQ("", Warnings(kRepo));
}

TEST(ServerConfigTest, BranchesAndPollForms) {
  ServerConfig config = Valid(
      "repositories:\n"
      "  - {name: a, url: /a, branches: main, poll: 90}\n"
      "  - {name: b.c_d-1, url: /b, branches: [main, \"release/*\"], poll: 1h30m}\n");
  ASSERT_EQ(2u, config.repositories.size());
  EXPECT_EQ(std::vector<std::string>{"main"}, config.repositories[0].branches);
  EXPECT_EQ(seconds(90), config.repositories[0].poll);
  EXPECT_EQ((std::vector<std::string>{"main", "release/*"}), config.repositories[1].branches);
  EXPECT_EQ(milliseconds(5400000), config.repositories[1].poll);
  EXPECT_EQ(&config.repositories[1], config.FindRepository("b.c_d-1"));
}

TEST(ServerConfigTest, OtherValidValues) {
  ServerConfig config = Valid(std::string("listen: \"[::1]:8080\"\nworkers: 64\nbackend: local\n"
                                          "requeue_interrupted: false\nretention: 2w\n") +
                              kRepo);
  EXPECT_EQ("[::1]:8080", config.listen);
  EXPECT_EQ(64, config.workers);
  EXPECT_EQ("local", config.backend);
  EXPECT_EQ(hours(24 * 14), config.retention);
  EXPECT_EQ(seconds(0), Valid(std::string("retention: 0\n") + kRepo).retention);
}

// ---- Paths -------------------------------------------------------------------

TEST(ServerConfigTest, RelativePathsResolveAgainstTheConfigDirectory) {
  ServerConfig config = Valid(
      "data: state/\n"
      "secrets_file: ../secrets.env\n"
      "repositories:\n"
      "  - {name: a, url: repos/a.git, poll: 1m}\n"
      "  - {name: b, url: ./x:y, poll: 1m}\n"
      "  - {name: c, url: 'https://git.example.com/c.git', poll: 1m}\n"
      "  - {name: d, url: 'git@example.com:team/d.git', poll: 1m}\n"
      "  - {name: e, url: 'file:///srv/e.git', poll: 1m}\n"
      "  - {name: f, url: /srv/./f.git, poll: 1m}\n");
  EXPECT_EQ("/etc/ladle/state", config.data);
  EXPECT_EQ("/etc/secrets.env", config.secrets_file);
  ASSERT_EQ(6u, config.repositories.size());
  EXPECT_EQ("/etc/ladle/repos/a.git", config.repositories[0].url);
  EXPECT_EQ("/etc/ladle/x:y", config.repositories[1].url);
  EXPECT_EQ("https://git.example.com/c.git", config.repositories[2].url);
  EXPECT_EQ("git@example.com:team/d.git", config.repositories[3].url);
  EXPECT_EQ("file:///srv/e.git", config.repositories[4].url);
  EXPECT_EQ("/srv/f.git", config.repositories[5].url);
}

TEST(ServerConfigTest, RelativeFilenameResolvesAgainstTheWorkingDirectory) {
  ServerConfig config;
  std::vector<Diagnostic> diagnostics;
  ASSERT_TRUE(ParseServerConfig("data: d\n", "server.yml", &config, &diagnostics));
  EXPECT_EQ((fs::current_path() / "d").lexically_normal().string(), config.data);
}

TEST(ServerConfigTest, LoadsAFileAndResolvesAgainstItsDirectory) {
  TempDir dir;
  std::string path = dir.Write(
      "server.yml", "data: data\nrepositories:\n  - {name: a, url: a.git, poll: 1s}\n", 0644);
  ServerConfig config;
  std::vector<Diagnostic> diagnostics;
  ASSERT_TRUE(LoadServerConfig(path, &config, &diagnostics));
  EXPECT_TRUE(diagnostics.empty());
  EXPECT_EQ(path, config.file);
  EXPECT_EQ(dir.path() + "/data", config.data);
  EXPECT_EQ(dir.path() + "/a.git", config.repositories.at(0).url);
}

TEST(ServerConfigTest, MissingOrHugeFileIsAnError) {
  TempDir dir;
  ServerConfig config;
  std::vector<Diagnostic> diagnostics;
  EXPECT_FALSE(LoadServerConfig(dir.path() + "/nope.yml", &config, &diagnostics));
  ASSERT_EQ(1u, diagnostics.size());
  EXPECT_EQ(dir.path() + "/nope.yml: cannot read: No such file or directory",
            diagnostics[0].ToString());
  std::string big = dir.Write("big.yml", "# " + std::string(2 << 20, 'x') + "\n");
  diagnostics.clear();
  EXPECT_FALSE(LoadServerConfig(big, &config, &diagnostics));
  ASSERT_EQ(1u, diagnostics.size());
  EXPECT_EQ(big + ": the file is too large: 2097155 bytes, over the 1 MB limit",
            diagnostics[0].ToString());
}

// ---- Errors --------------------------------------------------------------------

TEST(ServerConfigTest, UnknownKeysSuggestTheClosest) {
  EXPECT_EQ(
      "/etc/ladle/server.yml:1:1: unknown key 'lisen' at the top level; did you mean 'listen'?",
      Errors(std::string("lisen: 127.0.0.1:1\n") + kRepo));
  EXPECT_EQ(
      "/etc/ladle/server.yml:2:28: unknown key 'pol' in repository 'a'; did you mean "
      "'poll'?",
      RepoErrors("name: a, url: /a.git, pol: 30s"));
  EXPECT_EQ(
      "/etc/ladle/server.yml:2:5: missing required key 'name' in repository #1\n"
      "/etc/ladle/server.yml:2:5: missing required key 'url' in repository #1\n"
      "/etc/ladle/server.yml:2:6: unknown key 'urls' in repository #1; did you mean "
      "'url'?",
      RepoErrors("urls: /a.git"));
  // Hidden keys hold anchors.
  EXPECT_EQ("", Errors(std::string(".common: &c {poll: 1m}\n") + kRepo));
}

TEST(ServerConfigTest, DuplicateKeysNameTheFirst) {
  EXPECT_EQ("/etc/ladle/server.yml:2:1: duplicate key 'workers' (first at line 1)",
            Errors(std::string("workers: 2\nworkers: 3\n") + kRepo));
}

TEST(ServerConfigTest, WrongTypes) {
  EXPECT_EQ(
      "/etc/ladle/server.yml:1:10: 'workers' must be an integer, got a string 'two'\n"
      "/etc/ladle/server.yml:2:22: 'requeue_interrupted' must be true or false, got a string "
      "'yes'\n"
      "/etc/ladle/server.yml:3:7: 'data' must be a string, got a list\n"
      "/etc/ladle/server.yml:4:1: 'secrets_file' must be a string, got nothing\n"
      "/etc/ladle/server.yml:5:9: 'listen' must be a string, got a map",
      Errors(std::string("workers: two\nrequeue_interrupted: yes\ndata: [a]\nsecrets_file:\n"
                         "listen: {a: 1}\n") +
             kRepo));
  EXPECT_EQ("/etc/ladle/server.yml:1:1: the top level must be a map, got a list", Errors("- a\n"));
}

TEST(ServerConfigTest, ListenMustBeAddrPort) {
  EXPECT_EQ(
      "/etc/ladle/server.yml:1:9: 'listen': listen address 'localhost': no port (expected "
      "ADDR:PORT, e.g. 127.0.0.1:7707 or [::1]:7707)",
      Errors(std::string("listen: localhost\n") + kRepo));
  EXPECT_NE("", Errors(std::string("listen: 1.2.3.4:99999\n") + kRepo));
  EXPECT_NE("", Errors(std::string("listen: ::1:80\n") + kRepo));
}

TEST(ServerConfigTest, WorkersRange) {
  EXPECT_EQ("/etc/ladle/server.yml:1:10: 'workers' must be between 1 and 64, got 0",
            Errors(std::string("workers: 0\n") + kRepo));
  EXPECT_EQ("/etc/ladle/server.yml:1:10: 'workers' must be between 1 and 64, got 65",
            Errors(std::string("workers: 65\n") + kRepo));
}

TEST(ServerConfigTest, BackendIsDockerOrLocal) {
  EXPECT_EQ(
      "/etc/ladle/server.yml:1:10: 'backend' must be 'docker' or 'local', got a string 'podman'",
      Errors(std::string("backend: podman\n") + kRepo));
}

TEST(ServerConfigTest, RetentionMustBeAPeriod) {
  const std::string message =
      "'retention' must be a period like 30d, 2w, 12h or 1d12h, at most 100 years (0 keeps "
      "every run), got ";
  EXPECT_EQ("/etc/ladle/server.yml:1:12: " + message + "an integer 30",
            Errors(std::string("retention: 30\n") + kRepo));
  EXPECT_EQ("/etc/ladle/server.yml:1:12: " + message + "a string '1d1d'",
            Errors(std::string("retention: 1d1d\n") + kRepo));
  EXPECT_EQ("/etc/ladle/server.yml:1:12: " + message + "a string '0d'",
            Errors(std::string("retention: 0d\n") + kRepo));
}

TEST(ServerConfigTest, PathsMustNotStartWithTildeOrBeEmpty) {
  EXPECT_EQ(
      "/etc/ladle/server.yml:1:7: 'data' must not start with '~' (ladle does not expand "
      "it), got '~/ladle'",
      Errors(std::string("data: ~/ladle\n") + kRepo));
  EXPECT_EQ("/etc/ladle/server.yml:1:15: 'secrets_file' must not be empty",
            Errors(std::string("secrets_file: ''\n") + kRepo));
}

TEST(ServerConfigTest, RepositoriesMustBeAListOfMaps) {
  EXPECT_EQ("/etc/ladle/server.yml:1:15: 'repositories' must be a list, got a map",
            Errors("repositories: {a: 1}\n"));
  EXPECT_EQ(
      "/etc/ladle/server.yml:2:5: each entry of 'repositories' must be a map, got a "
      "string 'webshop'",
      Errors("repositories:\n  - webshop\n"));
}

TEST(ServerConfigTest, DuplicateRepositoryNamesNameTheFirstLine) {
  EXPECT_EQ("/etc/ladle/server.yml:4:5: duplicate repository name 'a' (first at line 2)",
            Errors("repositories:\n"
                   "  - {name: a, url: /a.git, poll: 1m}\n"
                   "  - {name: b, url: /b.git, poll: 1m}\n"
                   "  - {name: a, url: /c.git, poll: 1m}\n"));
}

TEST(ServerConfigTest, RepositoryNameAndUrlAreRequired) {
  EXPECT_EQ("/etc/ladle/server.yml:2:5: missing required key 'name' in repository #1",
            RepoErrors("url: /a.git, poll: 1m"));
  EXPECT_EQ("/etc/ladle/server.yml:2:5: missing required key 'url' in repository 'a'",
            RepoErrors("name: a, poll: 1m"));
  EXPECT_EQ("/etc/ladle/server.yml:2:20: 'url' must not be empty",
            RepoErrors("name: a, url: '', poll: 1m"));
}

TEST(ServerConfigTest, BadRepositoryNames) {
  const std::string rule =
      ": use lowercase letters, digits, '.', '-' and '_', starting with a letter or digit, at "
      "most 64 characters";
  EXPECT_EQ("/etc/ladle/server.yml:2:12: invalid repository name 'Web'" + rule,
            RepoErrors("name: Web, url: /a.git, poll: 1m"));
  EXPECT_EQ("/etc/ladle/server.yml:2:12: invalid repository name '.hidden'" + rule,
            RepoErrors("name: .hidden, url: /a.git, poll: 1m"));
  EXPECT_EQ("/etc/ladle/server.yml:2:12: invalid repository name 'a/b'" + rule,
            RepoErrors("name: a/b, url: /a.git, poll: 1m"));
  EXPECT_EQ("", RepoErrors("name: " + std::string(64, 'a') + ", url: /a.git, poll: 1m"));
  EXPECT_NE("", RepoErrors("name: " + std::string(65, 'a') + ", url: /a.git, poll: 1m"));
}

TEST(ServerConfigTest, UrlThatGitWouldTakeForAnOption) {
  EXPECT_EQ(
      "/etc/ladle/server.yml:2:20: 'url' must not start with '-', got "
      "'--upload-pack=touch /tmp/x'",
      RepoErrors("name: a, url: '--upload-pack=touch /tmp/x', poll: 1m"));
  EXPECT_EQ(
      "/etc/ladle/server.yml:2:20: 'url' must not contain control characters, got "
      "'/a\\nb'",
      RepoErrors("name: a, url: \"/a\\nb\", poll: 1m"));
}

TEST(ServerConfigTest, PipelineMustStayInsideTheRepository) {
  EXPECT_EQ(
      "/etc/ladle/server.yml:2:48: 'pipeline' must be a path relative to the repository's "
      "root, got '/etc/ladle.yml'",
      RepoErrors("name: a, url: /a.git, poll: 1m, pipeline: /etc/ladle.yml"));
  EXPECT_EQ("/etc/ladle/server.yml:2:48: 'pipeline' must not contain '..', got 'ci/../../x.yml'",
            RepoErrors("name: a, url: /a.git, poll: 1m, pipeline: ci/../../x.yml"));
  EXPECT_EQ("/etc/ladle/server.yml:2:48: 'pipeline' must not contain '..', got '..'",
            RepoErrors("name: a, url: /a.git, poll: 1m, pipeline: .."));
  EXPECT_EQ("", RepoErrors("name: a, url: /a.git, poll: 1m, pipeline: ci/..ladle.yml"));
}

TEST(ServerConfigTest, PollMustBeADuration) {
  EXPECT_EQ(
      "/etc/ladle/server.yml:2:34: 'poll' must be a duration like 90s, 10m or 1h30m (0: "
      "webhooks only), got a string 'often'",
      RepoErrors("name: a, url: /a.git, poll: often"));
  EXPECT_EQ(
      "/etc/ladle/server.yml:2:34: 'poll' must be 0 (webhooks only) or at least 1s, got "
      "a string '500ms'",
      RepoErrors("name: a, url: /a.git, poll: 500ms"));
}

TEST(ServerConfigTest, WebhookSecretEnvMustBeAVariableName) {
  EXPECT_EQ(
      "/etc/ladle/server.yml:2:48: 'webhook_secret_env' must be a variable name (letters, "
      "digits and '_', not starting with a digit), got a string 'HOOK-SECRET'",
      RepoErrors("name: a, url: /a.git, webhook_secret_env: HOOK-SECRET"));
  EXPECT_NE("", RepoErrors("name: a, url: /a.git, webhook_secret_env: 1X"));
}

TEST(ServerConfigTest, BranchesMustBeNonEmptyGlobs) {
  EXPECT_EQ(
      "/etc/ladle/server.yml:2:48: 'branches' must list at least one branch glob (leave "
      "it out for every branch the pipeline accepts)",
      RepoErrors("name: a, url: /a.git, poll: 1m, branches: []"));
  EXPECT_EQ("/etc/ladle/server.yml:2:49: 'branches' entries must not be empty",
            RepoErrors("name: a, url: /a.git, poll: 1m, branches: ['']"));
}

TEST(ServerConfigTest, EveryErrorInOnePass) {
  std::string errors = Errors(
      "workers: 0\n"
      "backend: podman\n"
      "repositories:\n"
      "  - {name: A, url: /a.git, poll: x}\n"
      "  - {url: /b.git, webhook_secret_env: 'a b'}\n");
  EXPECT_EQ(
      "/etc/ladle/server.yml:1:10: 'workers' must be between 1 and 64, got 0\n"
      "/etc/ladle/server.yml:2:10: 'backend' must be 'docker' or 'local', got a string "
      "'podman'\n"
      "/etc/ladle/server.yml:4:12: invalid repository name 'A': use lowercase letters, digits, "
      "'.', '-' and '_', starting with a letter or digit, at most 64 characters\n"
      "/etc/ladle/server.yml:4:34: 'poll' must be a duration like 90s, 10m or 1h30m (0: "
      "webhooks only), got a string 'x'\n"
      "/etc/ladle/server.yml:5:5: missing required key 'name' in repository #2\n"
      "/etc/ladle/server.yml:5:39: 'webhook_secret_env' must be a variable name (letters, "
      "digits and '_', not starting with a digit), got a string 'a b'",
      errors);
}

// ---- ParseRetention ------------------------------------------------------------

TEST(ServerConfigTest, ParseRetentionTable) {
  struct Case {
    const char* text;
    long long seconds;  // -1: refused
  };
  const Case cases[] = {
      {"0", 0},
      {"30d", 30 * 86400},
      {"2w", 14 * 86400},
      {"12h", 12 * 3600},
      {"90m", 90 * 60},
      {"90s", 90},
      {"1h30m", 5400},
      {"1w2d3h4m5s", 788645},
      {"36500d", 3153600000LL},
      {"", -1},
      {"30", -1},
      {"d", -1},
      {"0d", -1},
      {"0h0m", -1},
      {"1d1d", -1},
      {"30m1h", -1},
      {"1y", -1},
      {"500ms", -1},
      {"-1d", -1},
      {"1.5d", -1},
      {" 1d", -1},
      {"1d ", -1},
      {"36501d", -1},
      {"9999999999d", -1},
  };
  for (const Case& c : cases) {
    seconds out{-7};
    bool ok = ParseRetention(c.text, &out);
    EXPECT_EQ(c.seconds >= 0, ok) << c.text;
    if (ok) {
      EXPECT_EQ(seconds(c.seconds), out) << c.text;
    }
  }
}

// ---- LoadSecretsFile -----------------------------------------------------------

std::string Show(const Vars& vars) {
  std::string out;
  for (const auto& [key, value] : vars) out += key + "=[" + value + "]\n";
  return out;
}

TEST(ServerConfigTest, SecretsFileGoodAt0600) {
  TempDir dir;
  std::string path = dir.Write("secrets.env",
                               "# hook secrets\n"
                               "\n"
                               "WEBSHOP_HOOK_SECRET=s3cr3t\n"
                               "export DEPLOY_TOKEN = \"with spaces # not a comment\"\r\n"
                               "  SINGLE='it''s'\n"
                               "EMPTY=\n"
                               "EQUALS=a=b==\n"
                               "\t# indented comment\n"
                               "exported=1\n"
                               "export_X=2",
                               0600);
  Vars vars{{"OLD", "x"}};
  Status status = LoadSecretsFile(path, &vars);
  ASSERT_TRUE(status.ok()) << status.message();
  EXPECT_EQ(
      "WEBSHOP_HOOK_SECRET=[s3cr3t]\n"
      "DEPLOY_TOKEN=[with spaces # not a comment]\n"
      "SINGLE=[it''s]\n"
      "EMPTY=[]\n"
      "EQUALS=[a=b==]\n"
      "exported=[1]\n"
      "export_X=[2]\n",
      Show(vars));
  EXPECT_TRUE(LoadSecretsFile(dir.Write("empty.env", "", 0400), &vars).ok());
  EXPECT_TRUE(vars.empty());
}

TEST(ServerConfigTest, SecretsFileRefusedUnlessOnlyTheOwnerHasAccess) {
  TempDir dir;
  for (mode_t mode : {0644, 0640, 0604, 0660, 0601}) {
    std::string path = dir.Write("secrets.env", "A=1\n", mode);
    Vars vars;
    Status status = LoadSecretsFile(path, &vars);
    EXPECT_EQ(Code::kInvalid, status.code()) << mode;
    EXPECT_TRUE(vars.empty());
    if (mode == 0644) {
      EXPECT_EQ("secrets file " + path +
                    " has mode 0644, which lets group or others at it: run `chmod 600 " + path +
                    "`",
                status.message());
    }
  }
}

TEST(ServerConfigTest, SecretsFileMissingIsNotFound) {
  TempDir dir;
  Vars vars;
  Status status = LoadSecretsFile(dir.path() + "/nope.env", &vars);
  EXPECT_EQ(Code::kNotFound, status.code());
  EXPECT_EQ("secrets file " + dir.path() + "/nope.env does not exist", status.message());
  EXPECT_EQ(Code::kInvalid, LoadSecretsFile(dir.path(), &vars).code());
}

TEST(ServerConfigTest, SecretsFileMalformedLinesNameTheLine) {
  TempDir dir;
  struct Case {
    const char* text;
    const char* message;
  };
  const Case cases[] = {
      {"A=1\n# c\nhunter2\n", ":3: expected KEY=VALUE"},
      {"A=1\nMY-KEY=1\n",
       ":2: invalid variable name before '=': use letters, digits and '_', "
       "not starting with a digit"},
      {"=1\n",
       ":1: invalid variable name before '=': use letters, digits and '_', not starting "
       "with a digit"},
      {"A=\"open\n", ":1: the value's opening double quote is not closed at the end of the line"},
      {"\n\nA='x\n", ":3: the value's opening single quote is not closed at the end of the line"},
      {"A='\n", ":1: the value's opening single quote is not closed at the end of the line"},
      {"A=\"x'\n", ":1: the value's opening double quote is not closed at the end of the line"},
      {"A=1\nB=2\nA=3\n", ":3: duplicate variable 'A' (first at line 1)"},
      {"export\n", ":1: expected KEY=VALUE"},
  };
  for (const Case& c : cases) {
    std::string path = dir.Write("secrets.env", c.text, 0600);
    Vars vars;
    Status status = LoadSecretsFile(path, &vars);
    EXPECT_EQ(Code::kInvalid, status.code()) << c.text;
    EXPECT_EQ(path + c.message, status.message()) << c.text;
    EXPECT_TRUE(vars.empty());
  }
  // A NUL byte.
  std::string path = dir.Write("secrets.env", std::string("A=1\nB=x\0y\n", 10), 0600);
  Vars vars;
  EXPECT_EQ(path + ":2: contains a NUL byte", LoadSecretsFile(path, &vars).message());
}

TEST(ServerConfigTest, SecretsFileMessagesNeverShowAValue) {
  TempDir dir;
  std::string path = dir.Write("secrets.env", "A=1\nsupersecretvalue\nB='supersecret\n", 0600);
  Vars vars;
  EXPECT_EQ(std::string::npos, LoadSecretsFile(path, &vars).message().find("supersecret"));
  path = dir.Write("secrets.env", "B='supersecret\n", 0600);
  EXPECT_EQ(std::string::npos, LoadSecretsFile(path, &vars).message().find("supersecret"));
}

}  // namespace
}  // namespace ladle::runner

// ---- Scoped secrets and protected environments (docs/server.md) ---------------

namespace ladle::runner {
namespace {

const char kScoped[] = R"(repositories:
  - {name: shop, url: /shop.git, poll: 1m}
secrets:
  - name: PROD_TOKEN
    repositories: [shop]
    branches: [main]
    environments: [production]
  - name: NPM_TOKEN
    branches: ["release/*", main]
  - name: PROD_TOKEN
    branches: [hotfix]
    environments: [production]
environments:
  - {name: production, branches: [main, "hotfix"]}
  - {name: staging, branches: "**"}
)";

TEST(ServerConfigTest, SecretsAndEnvironmentsAreRead) {
  ServerConfig config = Valid(kScoped);
  ASSERT_EQ(3u, config.secrets.size());
  EXPECT_EQ("PROD_TOKEN", config.secrets[0].name);
  EXPECT_EQ(std::vector<std::string>{"shop"}, config.secrets[0].repositories);
  EXPECT_EQ(std::vector<std::string>{"production"}, config.secrets[0].environments);
  EXPECT_TRUE(config.secrets[1].repositories.empty());
  EXPECT_TRUE(config.secrets[1].environments.empty());
  ASSERT_EQ(2u, config.environments.size());
  EXPECT_EQ("production", config.environments[0].name);
  EXPECT_EQ((std::vector<std::string>{"main", "hotfix"}), config.environments[0].branches);
  EXPECT_EQ(std::vector<std::string>{"**"}, config.environments[1].branches);
}

TEST(ServerConfigTest, SecretScopeMatchesRepositoryBranchAndEnvironment) {
  ServerConfig c = Valid(kScoped);
  // Every field must match; absent fields match anything.
  EXPECT_TRUE(SecretInScope(c.secrets, "PROD_TOKEN", "shop", "main", "production"));
  EXPECT_FALSE(SecretInScope(c.secrets, "PROD_TOKEN", "shop", "feature/leak", "production"));
  EXPECT_FALSE(SecretInScope(c.secrets, "PROD_TOKEN", "blog", "main", "production"));
  EXPECT_FALSE(SecretInScope(c.secrets, "PROD_TOKEN", "shop", "main", "staging"));
  // A stage without an environment matches only entries without 'environments'.
  EXPECT_FALSE(SecretInScope(c.secrets, "PROD_TOKEN", "shop", "main", ""));
  EXPECT_TRUE(SecretInScope(c.secrets, "NPM_TOKEN", "shop", "main", ""));
  EXPECT_TRUE(SecretInScope(c.secrets, "NPM_TOKEN", "blog", "release/2", "staging"));
  EXPECT_FALSE(SecretInScope(c.secrets, "NPM_TOKEN", "blog", "feature/x", ""));
  // Several entries of one name: any of them.
  EXPECT_TRUE(SecretInScope(c.secrets, "PROD_TOKEN", "blog", "hotfix", "production"));
  // A name no entry scopes is everywhere.
  EXPECT_TRUE(SecretInScope(c.secrets, "OTHER", "blog", "feature/x", ""));
  EXPECT_TRUE(SecretIsScoped(c.secrets, "NPM_TOKEN"));
  EXPECT_FALSE(SecretIsScoped(c.secrets, "OTHER"));
}

TEST(ServerConfigTest, ProtectedEnvironmentRefusesOtherBranches) {
  ServerConfig c = Valid(kScoped);
  EXPECT_EQ("", EnvironmentRefusal(c.environments, "production", "main"));
  EXPECT_EQ("", EnvironmentRefusal(c.environments, "production", "hotfix"));
  EXPECT_EQ("environment 'production' takes deployments from branches main, hotfix only",
            EnvironmentRefusal(c.environments, "production", "feature/leak"));
  EXPECT_EQ("", EnvironmentRefusal(c.environments, "staging", "feature/leak"));
  EXPECT_EQ("", EnvironmentRefusal(c.environments, "qa", "anything"));  // not protected
}

TEST(ServerConfigTest, SecretAndEnvironmentEntryErrors) {
  EXPECT_EQ(
      "/etc/ladle/server.yml:2:5: missing required key 'name' in secret #1\n"
      "/etc/ladle/server.yml:2:6: unknown key 'branch' in secret #1; did you mean 'branches'?",
      Errors(std::string("secrets:\n  - {branch: [main]}\n") + kRepo));
  EXPECT_EQ(
      "/etc/ladle/server.yml:2:12: invalid name 'A-B' in secret 'A-B': use letters, digits and "
      "'_', not starting with a digit\n"
      "/etc/ladle/server.yml:2:27: 'branches' must list at least one glob (leave it out for any)",
      Errors(std::string("secrets:\n  - {name: A-B, branches: []}\n") + kRepo));
  EXPECT_EQ("/etc/ladle/server.yml:1:10: 'secrets' must be a list, got a map",
            Errors(std::string("secrets: {A: 1}\n") + kRepo));
  EXPECT_EQ(
      "/etc/ladle/server.yml:2:5: missing required key 'branches' in environment 'production' "
      "(the branches that may deploy there)\n"
      "/etc/ladle/server.yml:3:5: duplicate environment 'production' (first at line 2)",
      Errors(std::string("environments:\n  - {name: production}\n  - {name: production, "
                         "branches: main}\n") +
             kRepo));
  EXPECT_EQ(
      "/etc/ladle/server.yml:2:33: unknown key 'brnches' in environment 'prod'; did you mean "
      "'branches'?",
      Errors(std::string("environments:\n  - {name: prod, branches: [a], brnches: [b]}\n") +
             kRepo));
  EXPECT_EQ("/etc/ladle/server.yml:1:1: unknown key 'secret' at the top level; did you mean "
            "'secrets'?",
            Errors(std::string("secret: []\n") + kRepo));
}

// docs/server.md "Top level": the HTTP connection cap.
TEST(ServerConfigTest, MaxConnections) {
  EXPECT_EQ(0, Valid(kRepo).max_connections);  // core's default
  EXPECT_EQ(500, Valid(std::string("max_connections: 500\n") + kRepo).max_connections);
  EXPECT_EQ("/etc/ladle/server.yml:1:18: 'max_connections' must be between 1 and 1000000, got 0",
            Errors(std::string("max_connections: 0\n") + kRepo));
  EXPECT_EQ(
      "/etc/ladle/server.yml:1:18: 'max_connections' must be an integer, got a string 'many'",
      Errors(std::string("max_connections: many\n") + kRepo));
}

// docs/server.md "Top level": the HTTP io threads.
TEST(ServerConfigTest, IoThreads) {
  EXPECT_EQ(0, Valid(kRepo).io_threads);  // core's default, 2
  EXPECT_EQ(1, Valid(std::string("io_threads: 1\n") + kRepo).io_threads);
  EXPECT_EQ(64, Valid(std::string("io_threads: 64\n") + kRepo).io_threads);
  EXPECT_EQ("/etc/ladle/server.yml:1:13: 'io_threads' must be between 1 and 64, got 65",
            Errors(std::string("io_threads: 65\n") + kRepo));
  EXPECT_EQ("/etc/ladle/server.yml:1:13: 'io_threads' must be an integer, got a string 'two'",
            Errors(std::string("io_threads: two\n") + kRepo));
}

}  // namespace
}  // namespace ladle::runner
