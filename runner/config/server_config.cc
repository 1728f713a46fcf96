#include "runner/config/server_config.h"
#include "core/base/text.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <system_error>
#include <tuple>

#include "core/http_server.h"
#include "core/pg.h"
#include "runner/config/text_file.h"
#include "runner/config/yaml_check.h"
#include "runner/config/yaml_file.h"
#include "runner/config/yaml_tree.h"

namespace ladle::runner {
namespace {

namespace fs = std::filesystem;
using Kind = YamlNode::Kind;
using Keys = std::vector<std::string_view>;

// A server.yml is a few dozen lines; a secrets file a few hundred.
constexpr YamlFileRules kRules = [] {
  YamlFileRules rules;
  rules.empty_message = "the file is empty: the server runs with the defaults and no repositories";
  rules.empty_is_warning = true;
  rules.limits = YamlLimits{1 << 20, 64, 100000};
  return rules;
}();
constexpr std::size_t kMaxSecretsBytes = 1 << 20;
constexpr std::size_t kMaxRepositoryName = 64;

const Keys kServerKeys = {"listen",    "data",         "workers",
                          "backend",   "secrets_file", "requeue_interrupted",
                          "retention", "repositories", "secrets",
                          "environments", "max_connections", "io_threads", "external_url",
                          "store",     "replica_url", "lease"};
const Keys kRepositoryKeys = {"name", "url",                "branches", "pipeline",
                              "poll", "webhook_secret_env", "status"};
const Keys kStatusKeys = {"kind", "api", "token_env", "repo", "context"};
const Keys kSecretKeys = {"name", "repositories", "branches", "environments"};
const Keys kEnvironmentKeys = {"name", "branches"};

const char kVariableRule[] = "letters, digits and '_', not starting with a digit";

// ---- Lexical rules -------------------------------------------------------

bool AllOf(std::string_view s, std::string_view allowed) {
  return s.find_first_not_of(allowed) == std::string_view::npos;
}

constexpr std::string_view kLowerDigits = "abcdefghijklmnopqrstuvwxyz0123456789";
constexpr std::string_view kDigits = "0123456789";

// Repository names appear in URLs (/api/v1/hooks/push/{repo}) and paths.
bool IsRepositoryName(std::string_view s) {
  return !s.empty() && s.size() <= kMaxRepositoryName && AllOf(s.substr(0, 1), kLowerDigits) &&
         AllOf(s, "abcdefghijklmnopqrstuvwxyz0123456789._-");
}

bool IsVariableName(std::string_view s) {
  constexpr std::string_view kFirst = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_";
  return !s.empty() && AllOf(s.substr(0, 1), kFirst) &&
         AllOf(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789");
}

// As a pipeline's stage names its environment (docs/pipeline.md "Stages").
bool IsEnvironmentName(std::string_view s) {
  constexpr std::string_view kAlnum =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  return !s.empty() && AllOf(s.substr(0, 1), kAlnum) &&
         s.find_first_not_of(std::string(kAlnum) + "._-") == std::string_view::npos;
}

bool HasControl(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

// The name a map gives itself, read without checks, to label messages about
// it before it has been validated.
std::string PeekName(const YamlNode& node) {
  for (const auto& [key, value] : node.pairs())
    if (key->kind == Kind::kScalar && key->value() == "name" && value->kind == Kind::kScalar)
      return value->value();
  return "";
}

// Git's own rule: "scheme://..." is a URL, "host:path" (a colon before any
// slash) is scp-like, anything else is a path on this machine.
// http(s)://HOST[:PORT][/PATH], nothing else (no query, fragment, userinfo
// or control characters): links and API bases.
bool IsHttpUrl(std::string_view url) {
  std::string_view rest;
  if (url.substr(0, 7) == "http://") rest = url.substr(7);
  else if (url.substr(0, 8) == "https://") rest = url.substr(8);
  else return false;
  return !rest.empty() && rest.front() != '/' && url.size() <= 1024 &&
         rest.find_first_of("?#@ \\") == std::string_view::npos && !HasControl(url);
}

bool IsLocalPath(std::string_view url) {
  if (url.find("://") != std::string_view::npos) return false;
  std::size_t colon = url.find(':');
  return colon == std::string_view::npos || url.find('/') < colon;
}

bool HasDotDot(std::string_view path) {
  for (std::size_t start = 0; start <= path.size();) {
    std::size_t end = std::min(path.find('/', start), path.size());
    if (path.substr(start, end - start) == "..") return true;
    start = end + 1;
  }
  return false;
}

// `path` made absolute against `base` (itself absolute), without "." and "..".
std::string Resolve(const fs::path& base, const std::string& path) {
  std::string out = (base / path).lexically_normal().string();
  if (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

// The absolute directory of `filename`, against the working directory.
fs::path BaseDirectory(const std::string& filename) {
  std::error_code ec;
  fs::path dir = fs::absolute(fs::path(filename), ec).parent_path();
  if (ec) dir = fs::path("/");  // no working directory: paths stay as written, under /
  return dir;
}

// ---- Retention -------------------------------------------------------------

struct PeriodUnit {
  char suffix;
  long long seconds;
};
constexpr PeriodUnit kPeriodUnits[] = {
    {'w', 604800}, {'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}};
constexpr long long kMaxRetention = 100LL * 365 * 86400;
constexpr std::size_t kMaxPeriodDigits = 9;

// ---- Files -----------------------------------------------------------------

// ---- server.yml ------------------------------------------------------------

// Reads a YamlDocument into a ServerConfig against the schema of
// docs/server.md "server.yml". Reading goes on after a problem, so one pass reports them all.
class ConfigReader {
 public:
  ConfigReader(YamlChecker* checker, fs::path base) : c_(*checker), base_(std::move(base)) {}

  void Read(const YamlNode& root, ServerConfig* config);

 private:
  void ReadServer(const YamlMap& m, ServerConfig* config);
  void ReadRepositories(const YamlNode* key, const YamlNode* node, const YamlNode& root,
                        ServerConfig* config);
  void ReadRepository(const YamlNode& node, std::size_t index, RepositoryConfig* repo);
  void ReadSecretScopes(const YamlNode& node, ServerConfig* config);
  void ReadProtectedEnvironments(const YamlNode& node, ServerConfig* config);
  // A map's required 'name', checked by `valid`; `label` is the entry's
  // name in messages ("secret #2").
  std::string ReadEntryName(const YamlMap& m, const YamlNode& node, const std::string& label,
                            bool (*valid)(std::string_view), const char* rule);
  // A list of globs (or one), not empty.
  void ReadGlobs(const YamlMap& m, const char* key, std::vector<std::string>* out);
  void ReadRepositoryOptions(const YamlMap& m, RepositoryConfig* repo);
  void ReadUrl(const YamlNode& node, std::string* url);
  void ReadStatus(const YamlNode& node, RepositoryConfig* repo);
  void ReadPipelinePath(const YamlNode& node, std::string* path);
  bool ReadNonEmpty(const YamlNode& node, std::string_view what, std::string* out);
  void ReadLocalPath(const YamlNode& node, std::string_view what, std::string* out);

  YamlChecker& c_;
  fs::path base_;
};

void ConfigReader::Read(const YamlNode& root, ServerConfig* config) {
  if (root.kind != Kind::kMap) {
    c_.Error(root.location, "the top level must be a map, got " + DescribeYaml(root));
    return;
  }
  YamlMap m = c_.Map(root, "at the top level", kServerKeys, YamlKeys::kKnownAndHidden);
  ReadServer(m, config);
  const YamlField* repositories = m.Find("repositories");
  ReadRepositories(repositories ? repositories->key_node : nullptr,
                   repositories ? repositories->value : nullptr, root, config);
  if (const YamlNode* v = m.Get("secrets"); v && v->kind != Kind::kNull)
    ReadSecretScopes(*v, config);
  if (const YamlNode* v = m.Get("environments"); v && v->kind != Kind::kNull)
    ReadProtectedEnvironments(*v, config);
}

// docs/server.md "Scoped secrets".
void ConfigReader::ReadSecretScopes(const YamlNode& node, ServerConfig* config) {
  std::vector<const YamlNode*> items;
  if (!c_.Items(node, "'secrets'", false, &items)) return;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const YamlNode& item = *items[i];
    if (!c_.Expect(item, Kind::kMap, "each entry of 'secrets'")) continue;
    std::string peeked = PeekName(item);
    std::string label = "secret " + (peeked.empty() ? "#" + std::to_string(i + 1) : Quote(peeked));
    YamlMap m = c_.Map(item, "in " + label, kSecretKeys);
    SecretScope scope;
    scope.location = item.location;
    scope.name = ReadEntryName(m, item, label, IsVariableName, kVariableRule);
    ReadGlobs(m, "repositories", &scope.repositories);
    ReadGlobs(m, "branches", &scope.branches);
    ReadGlobs(m, "environments", &scope.environments);
    if (!scope.name.empty()) config->secrets.push_back(std::move(scope));
  }
}

// docs/server.md "Protected environments".
void ConfigReader::ReadProtectedEnvironments(const YamlNode& node, ServerConfig* config) {
  std::vector<const YamlNode*> items;
  if (!c_.Items(node, "'environments'", false, &items)) return;
  std::map<std::string, int> first_line;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const YamlNode& item = *items[i];
    if (!c_.Expect(item, Kind::kMap, "each entry of 'environments'")) continue;
    std::string peeked = PeekName(item);
    std::string label =
        "environment " + (peeked.empty() ? "#" + std::to_string(i + 1) : Quote(peeked));
    YamlMap m = c_.Map(item, "in " + label, kEnvironmentKeys);
    ProtectedEnvironment env;
    env.location = item.location;
    env.name = ReadEntryName(m, item, label, IsEnvironmentName,
                             "letters, digits, '.', '_' and '-', starting with a letter or digit");
    if (m.Get("branches"))
      ReadGlobs(m, "branches", &env.branches);
    else
      c_.Error(item.location, "missing required key 'branches' in " + label +
                                  " (the branches that may deploy there)");
    if (env.name.empty()) continue;
    auto [first, fresh] = first_line.emplace(env.name, env.location.line);
    if (!fresh)
      c_.Error(env.location, "duplicate environment " + Quote(env.name) + " (first at line " +
                                 std::to_string(first->second) + ")");
    else
      config->environments.push_back(std::move(env));
  }
}

std::string ConfigReader::ReadEntryName(const YamlMap& m, const YamlNode& node,
                                        const std::string& label,
                                        bool (*valid)(std::string_view), const char* rule) {
  const YamlNode* v = m.Get("name");
  if (v == nullptr) {
    c_.Error(node.location, "missing required key 'name' in " + label);
    return "";
  }
  std::string name;
  if (!c_.String(*v, "'name'", &name)) return "";
  if (valid(name)) return name;
  c_.Error(v->location, "invalid name " + Quote(name) + " in " + label + ": use " + rule);
  return "";
}

void ConfigReader::ReadGlobs(const YamlMap& m, const char* key, std::vector<std::string>* out) {
  const YamlNode* v = m.Get(key);
  if (v == nullptr) return;
  const std::string what = "'" + std::string(key) + "'";
  std::vector<const YamlNode*> items;
  if (c_.Items(*v, what, true, &items) && items.empty())
    c_.Error(v->location, what + " must list at least one glob (leave it out for any)");
  for (const YamlNode* item : items) {
    std::string glob;
    if (ReadNonEmpty(*item, what + " entries", &glob)) out->push_back(glob);
  }
}

void ConfigReader::ReadServer(const YamlMap& m, ServerConfig* config) {
  if (const YamlNode* v = m.Get("listen"); v && c_.String(*v, "'listen'", &config->listen)) {
    std::string host;
    uint16_t port;
    Status status = ParseListenAddress(config->listen, &host, &port);
    if (!status.ok()) c_.Error(v->location, "'listen': " + status.message());
  }
  if (const YamlNode* v = m.Get("data")) ReadLocalPath(*v, "'data'", &config->data);
  if (const YamlNode* v = m.Get("workers")) c_.Int(*v, "'workers'", 1, 64, &config->workers);
  if (const YamlNode* v = m.Get("max_connections"))
    c_.Int(*v, "'max_connections'", 1, 1000000, &config->max_connections);
  if (const YamlNode* v = m.Get("io_threads"))
    c_.Int(*v, "'io_threads'", 1, 64, &config->io_threads);
  if (const YamlNode* v = m.Get("backend")) {
    if (c_.String(*v, "'backend'", &config->backend) && config->backend != "docker" &&
        config->backend != "local")
      c_.Error(v->location, "'backend' must be 'docker' or 'local', got " + DescribeYaml(*v));
  }
  if (const YamlNode* v = m.Get("secrets_file"))
    ReadLocalPath(*v, "'secrets_file'", &config->secrets_file);
  if (const YamlNode* v = m.Get("requeue_interrupted"))
    c_.Bool(*v, "'requeue_interrupted'", &config->requeue_interrupted);
  if (const YamlNode* v = m.Get("external_url"))
    c_.Scalar(*v, "'external_url'", "an http:// or https:// URL", [&](const std::string& s) {
      if (!IsHttpUrl(s)) return false;
      config->external_url = s;
      while (!config->external_url.empty() && config->external_url.back() == '/')
        config->external_url.pop_back();
      return true;
    });
  // docs/server.md "Replicas".
  if (const YamlNode* v = m.Get("store"))
    c_.Scalar(*v, "'store'", "a postgresql:// URI (leave it out for the data dir's SQLite)",
              [&](const std::string& s) {
                if (!IsPostgresUri(s)) return false;
                config->store = s;
                return true;
              });
  if (const YamlNode* v = m.Get("replica_url"))
    c_.Scalar(*v, "'replica_url'", "an http:// or https:// URL", [&](const std::string& s) {
      if (!IsHttpUrl(s)) return false;
      config->replica_url = s;
      while (!config->replica_url.empty() && config->replica_url.back() == '/')
        config->replica_url.pop_back();
      return true;
    });
  if (const YamlNode* v = m.Get("lease"))
    c_.Scalar(*v, "'lease'", "a period from 2s to 10m, like 15s", [&](const std::string& s) {
      std::chrono::seconds lease{0};
      if (!ParseRetention(s, &lease) || lease.count() < 2 || lease.count() > 600) return false;
      config->lease = lease;
      return true;
    });
  if (const YamlNode* v = m.Get("retention"))
    c_.Scalar(*v, "'retention'",
              "a period like 30d, 2w, 12h or 1d12h, at most 100 years (0 keeps every run)",
              [&](const std::string& s) { return ParseRetention(s, &config->retention); });
}

void ConfigReader::ReadRepositories(const YamlNode* key, const YamlNode* node, const YamlNode& root,
                                    ServerConfig* config) {
  std::vector<const YamlNode*> items;
  // `repositories:` with every entry commented out is an empty list.
  if (node && node->kind != Kind::kNull && !c_.Items(*node, "'repositories'", false, &items))
    return;
  if (items.empty())
    c_.Warning(key ? key->location : root.location,
               "no repositories: the server starts no runs of its own (its toggle and run APIs "
               "still work)");
  std::map<std::string, int> first_line;
  for (std::size_t i = 0; i < items.size(); ++i) {
    RepositoryConfig& repo = config->repositories.emplace_back();
    ReadRepository(*items[i], i, &repo);
    if (repo.name.empty()) continue;
    auto [first, fresh] = first_line.emplace(repo.name, repo.location.line);
    if (!fresh)
      c_.Error(repo.location, "duplicate repository name " + Quote(repo.name) + " (first at line " +
                                  std::to_string(first->second) + ")");
  }
}

void ConfigReader::ReadRepository(const YamlNode& node, std::size_t index, RepositoryConfig* repo) {
  repo->location = node.location;
  if (!c_.Expect(node, Kind::kMap, "each entry of 'repositories'")) return;
  std::string peeked = PeekName(node);
  std::string label =
      "repository " + (peeked.empty() ? "#" + std::to_string(index + 1) : Quote(peeked));
  YamlMap m = c_.Map(node, "in " + label, kRepositoryKeys);
  if (const YamlNode* v = m.Get("name")) {
    std::string name;
    if (c_.String(*v, "'name'", &name) && IsRepositoryName(name))
      repo->name = name;
    else if (v->kind == Kind::kScalar)
      c_.Error(v->location, "invalid repository name " + Quote(name) +
                                ": use lowercase letters, digits, '.', '-' and '_', starting "
                                "with a letter or digit, at most 64 characters");
  } else {
    c_.Error(node.location, "missing required key 'name' in " + label);
  }
  if (const YamlNode* v = m.Get("url"))
    ReadUrl(*v, &repo->url);
  else
    c_.Error(node.location, "missing required key 'url' in " + label);
  ReadRepositoryOptions(m, repo);
  if (repo->poll.count() == 0 && !m.Get("webhook_secret_env"))
    c_.Warning(node.location, label +
                                  " has neither 'poll' nor 'webhook_secret_env': no push will "
                                  "start a run");
}

void ConfigReader::ReadRepositoryOptions(const YamlMap& m, RepositoryConfig* repo) {
  if (const YamlNode* v = m.Get("branches")) {
    std::vector<const YamlNode*> items;
    if (c_.Items(*v, "'branches'", true, &items) && items.empty())
      c_.Error(v->location,
               "'branches' must list at least one branch glob (leave it out for every branch "
               "the pipeline accepts)");
    for (const YamlNode* item : items) {
      std::string glob;
      if (ReadNonEmpty(*item, "'branches' entries", &glob)) repo->branches.push_back(glob);
    }
  }
  if (const YamlNode* v = m.Get("pipeline")) ReadPipelinePath(*v, &repo->pipeline);
  if (const YamlNode* v = m.Get("poll")) {
    if (c_.Scalar(*v, "'poll'", "a duration like 90s, 10m or 1h30m (0: webhooks only)",
                  [&](const std::string& s) { return ParseDuration(s, &repo->poll); }) &&
        repo->poll.count() > 0 && repo->poll < std::chrono::seconds(1))
      c_.Error(v->location,
               "'poll' must be 0 (webhooks only) or at least 1s, got " + DescribeYaml(*v));
  }
  if (const YamlNode* v = m.Get("status")) ReadStatus(*v, repo);
  if (const YamlNode* v = m.Get("webhook_secret_env")) {
    c_.Scalar(*v, "'webhook_secret_env'",
              "a variable name (" + std::string(kVariableRule) + ")", [&](const std::string& s) {
                if (!IsVariableName(s)) return false;
                repo->webhook_secret_env = s;
                return true;
              });
  }
}

// docs/server.md "Commit statuses".
void ConfigReader::ReadStatus(const YamlNode& node, RepositoryConfig* repo) {
  if (!c_.Expect(node, Kind::kMap, "'status'")) return;
  YamlMap m = c_.Map(node, "in 'status'", kStatusKeys);
  CommitStatusConfig status;
  status.location = node.location;
  bool ok = true;
  auto required = [&](const char* key) {
    const YamlNode* v = m.Get(key);
    if (v == nullptr) {
      c_.Error(node.location, std::string("missing required key '") + key + "' in 'status'");
      ok = false;
    }
    return v;
  };
  if (const YamlNode* v = required("kind")) {
    ok &= c_.Scalar(*v, "'status.kind'", "github, gitlab or gitea", [&](const std::string& s) {
      status.kind = s;
      return s == "github" || s == "gitlab" || s == "gitea";
    });
  }
  if (const YamlNode* v = required("api")) {
    ok &= c_.Scalar(*v, "'status.api'", "an http:// or https:// URL such as https://api.github.com",
                    [&](const std::string& s) {
                      status.api = s;
                      while (!status.api.empty() && status.api.back() == '/') status.api.pop_back();
                      return IsHttpUrl(s);
                    });
  }
  if (const YamlNode* v = required("token_env")) {
    ok &= c_.Scalar(*v, "'status.token_env'", "a variable name (" + std::string(kVariableRule) + ")",
                    [&](const std::string& s) {
                      status.token_env = s;
                      return IsVariableName(s);
                    });
  }
  if (const YamlNode* v = required("repo")) {
    ok &= c_.Scalar(*v, "'status.repo'", "OWNER/NAME (GitHub, Gitea) or a project id or path (GitLab)",
                    [&](const std::string& s) {
                      status.repo = s;
                      return !s.empty() && s.size() <= 255 && s.front() != '/' && s.back() != '/' &&
                             AllOf(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/");
                    });
  }
  if (const YamlNode* v = m.Get("context"))
    ok &= c_.Scalar(*v, "'status.context'", "a name of 1 to 100 printable characters",
                    [&](const std::string& s) {
                      status.context = s;
                      return !s.empty() && s.size() <= 100 && !HasControl(s);
                    });
  if (ok) repo->status = status;
}

void ConfigReader::ReadUrl(const YamlNode& node, std::string* url) {
  std::string value;
  if (!ReadNonEmpty(node, "'url'", &value)) return;
  if (value[0] == '-') {
    // git would take it for an option.
    c_.Error(node.location, "'url' must not start with '-', got " + Quote(value));
  } else if (HasControl(value)) {
    c_.Error(node.location, "'url' must not contain control characters, got " + Quote(value));
  } else if (IsLocalPath(value)) {
    ReadLocalPath(node, "'url'", url);
  } else {
    *url = value;
  }
}

void ConfigReader::ReadPipelinePath(const YamlNode& node, std::string* path) {
  std::string value;
  if (!ReadNonEmpty(node, "'pipeline'", &value)) return;
  if (value[0] == '/')
    c_.Error(node.location,
             "'pipeline' must be a path relative to the repository's root, got " + Quote(value));
  else if (HasDotDot(value))
    c_.Error(node.location, "'pipeline' must not contain '..', got " + Quote(value));
  else
    *path = value;
}

bool ConfigReader::ReadNonEmpty(const YamlNode& node, std::string_view what, std::string* out) {
  std::string value;
  if (!c_.String(node, what, &value)) return false;
  if (value.empty()) {
    c_.Error(node.location, std::string(what) + " must not be empty");
    return false;
  }
  *out = value;
  return true;
}

// A path on this machine; a relative one is against the config's directory.
void ConfigReader::ReadLocalPath(const YamlNode& node, std::string_view what, std::string* out) {
  std::string value;
  if (!ReadNonEmpty(node, what, &value)) return;
  if (value[0] == '~')
    c_.Error(node.location, std::string(what) +
                                " must not start with '~' (ladle does not expand it), got " +
                                Quote(value));
  else
    *out = Resolve(base_, value);
}

// ---- Secrets file ------------------------------------------------------------

// Parses one line into *key and *value; "" or the problem. A problem never
// quotes the line: it may hold a secret.
std::string ParseSecretLine(std::string_view line, std::string* key, std::string* value) {
  if (line.find('\0') != std::string_view::npos) return "contains a NUL byte";
  if (line.substr(0, 6) == "export" && line.size() > 6 && (line[6] == ' ' || line[6] == '\t'))
    line = Trim(line.substr(6));
  std::size_t eq = line.find('=');
  if (eq == std::string_view::npos) return "expected KEY=VALUE";
  *key = std::string(Trim(line.substr(0, eq)));
  if (!IsVariableName(*key))
    return std::string("invalid variable name before '=': use ") + kVariableRule;
  std::string_view v = Trim(line.substr(eq + 1));
  if (!v.empty() && (v[0] == '"' || v[0] == '\'')) {
    if (v.size() < 2 || v.back() != v[0])
      return std::string("the value's opening ") + (v[0] == '"' ? "double" : "single") +
             " quote is not closed at the end of the line";
    v = v.substr(1, v.size() - 2);
  }
  *value = std::string(v);
  return "";
}

Status ParseSecrets(const std::string& path, std::string_view text, Vars* vars) {
  std::map<std::string, int> first_line;
  int number = 0;
  for (std::size_t start = 0; start < text.size();) {
    std::size_t end = std::min(text.find('\n', start), text.size());
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    line = Trim(line);
    if (line.empty() || line[0] == '#') continue;
    std::string key, value;
    std::string problem = ParseSecretLine(line, &key, &value);
    if (problem.empty()) {
      auto [first, fresh] = first_line.emplace(key, number);
      if (!fresh)
        problem = "duplicate variable " + Quote(key) + " (first at line " +
                  std::to_string(first->second) + ")";
    }
    if (!problem.empty())
      return Status::Invalid(path + ":" + std::to_string(number) + ": " + problem);
    vars->emplace_back(std::move(key), std::move(value));
  }
  return Status::OK();
}

// Empties *config for the file `file` and returns what fills it in from the
// file's document (relative paths in it are relative to the file).
YamlFileReader ConfigFiller(const std::string& file, ServerConfig* config) {
  *config = ServerConfig();
  config->file = file;
  return [config, file](const YamlNode& root, YamlChecker* checker) {
    ConfigReader(checker, BaseDirectory(file)).Read(root, config);
  };
}

}  // namespace

// ---- Public ----------------------------------------------------------------

const RepositoryConfig* ServerConfig::FindRepository(std::string_view name) const {
  for (const RepositoryConfig& repo : repositories)
    if (repo.name == name) return &repo;
  return nullptr;
}

namespace {

bool AnyMatches(const std::vector<std::string>& globs, const std::string& text) {
  if (globs.empty()) return true;
  for (const std::string& glob : globs)
    if (BranchMatches(glob, text)) return true;
  return false;
}

}  // namespace

bool SecretIsScoped(const std::vector<SecretScope>& scopes, const std::string& name) {
  for (const SecretScope& scope : scopes)
    if (scope.name == name) return true;
  return false;
}

bool SecretInScope(const std::vector<SecretScope>& scopes, const std::string& name,
                   const std::string& repo, const std::string& branch,
                   const std::string& environment) {
  bool named = false;
  for (const SecretScope& scope : scopes) {
    if (scope.name != name) continue;
    named = true;
    // A stage without an environment matches only an entry without 'environments'.
    bool env_ok = scope.environments.empty() ||
                  (!environment.empty() && AnyMatches(scope.environments, environment));
    if (env_ok && !branch.empty() && AnyMatches(scope.repositories, repo) &&
        AnyMatches(scope.branches, branch))
      return true;
  }
  return !named;
}

std::string EnvironmentRefusal(const std::vector<ProtectedEnvironment>& environments,
                               const std::string& environment, const std::string& branch) {
  for (const ProtectedEnvironment& env : environments) {
    if (env.name != environment) continue;
    if (!branch.empty() && AnyMatches(env.branches, branch)) return "";
    std::string list;
    for (const std::string& glob : env.branches) list += (list.empty() ? "" : ", ") + glob;
    return "environment '" + environment + "' takes deployments from branches " + list + " only";
  }
  return "";
}

bool ParseServerConfig(std::string_view text, const std::string& filename, ServerConfig* config,
                       std::vector<Diagnostic>* diagnostics) {
  return ParseYamlFile(text, filename, kRules, ConfigFiller(filename, config), diagnostics);
}

bool LoadServerConfig(const std::string& path, ServerConfig* config,
                      std::vector<Diagnostic>* diagnostics) {
  return LoadYamlFile(path, kRules, ConfigFiller(path, config), diagnostics);
}

bool ParseRetention(std::string_view text, std::chrono::seconds* out) {
  if (text == "0") {
    *out = std::chrono::seconds(0);
    return true;
  }
  long long total = 0;
  std::size_t next_unit = 0;  // units come largest first, each at most once
  while (!text.empty()) {
    std::size_t digits = std::min(text.find_first_not_of(kDigits), text.size());
    if (digits == 0 || digits > kMaxPeriodDigits || digits == text.size()) return false;
    long long value = std::stoll(std::string(text.substr(0, digits)));
    while (next_unit < std::size(kPeriodUnits) && kPeriodUnits[next_unit].suffix != text[digits])
      ++next_unit;
    if (next_unit == std::size(kPeriodUnits)) return false;
    total += value * kPeriodUnits[next_unit++].seconds;
    text.remove_prefix(digits + 1);
  }
  if (total <= 0 || total > kMaxRetention) return false;
  *out = std::chrono::seconds(total);
  return true;
}

Status LoadSecretsFile(const std::string& path, Vars* vars) {
  vars->clear();
  struct stat st;
  std::string error, text;
  int errno_value;
  int fd = OpenRegularFile(path, kMaxSecretsBytes, &error, &st, &errno_value);
  if (fd < 0) {
    if (errno_value == ENOENT) return Status::NotFound("secrets file " + path + " does not exist");
    if (errno_value != 0) return Status::FromErrno("read secrets file " + path, errno_value);
    return Status::Invalid("secrets file " + path + ": " + error);
  }
  if (st.st_mode & 077) {
    close(fd);
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return Status::Invalid("secrets file " + path + " has mode " + mode +
                           ", which lets group or others at it: run `chmod 600 " + path + "`");
  }
  if (!ReadOpenFile(fd, kMaxSecretsBytes, &text, &error))
    return Status::IoError("secrets file " + path + ": " + error);
  if (text.size() > kMaxSecretsBytes)
    return Status::Invalid("secrets file " + path + ": the file is too large");
  Status status = ParseSecrets(path, text, vars);
  if (!status.ok()) vars->clear();
  return status;
}

namespace {

std::string JoinList(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + items[i];
  return out + "]";
}

}  // namespace

std::string SharedConfigText(const ServerConfig& c) {
  std::string out;
  auto line = [&](const std::string& key, const std::string& value) {
    out += key + ": " + value + "\n";
  };
  line("backend", c.backend);
  line("secrets_file", c.secrets_file.empty() ? "" : "set");
  line("requeue_interrupted", c.requeue_interrupted ? "true" : "false");
  line("retention", std::to_string(c.retention.count()) + "s");
  line("external_url", c.external_url);
  line("store", c.store.empty() ? "" : RedactPostgresUri(c.store));
  line("lease", std::to_string(c.lease.count()) + "s");
  for (size_t i = 0; i < c.repositories.size(); ++i) {
    const RepositoryConfig& r = c.repositories[i];
    const std::string key = "repositories[" + std::to_string(i) + "]";
    line(key + ".name", r.name);
    line(key + ".url", r.url);
    line(key + ".branches", JoinList(r.branches));
    line(key + ".pipeline", r.pipeline);
    line(key + ".poll", std::to_string(r.poll.count()) + "ms");
    line(key + ".webhook_secret_env", r.webhook_secret_env);
    if (r.status)
      line(key + ".status", r.status->kind + " " + r.status->api + " " + r.status->repo + " " +
                                r.status->token_env + " " + r.status->context);
  }
  for (size_t i = 0; i < c.secrets.size(); ++i) {
    const SecretScope& sc = c.secrets[i];
    line("secrets[" + std::to_string(i) + "]",
         sc.name + " repositories " + JoinList(sc.repositories) + " branches " +
             JoinList(sc.branches) + " environments " + JoinList(sc.environments));
  }
  for (size_t i = 0; i < c.environments.size(); ++i)
    line("environments[" + std::to_string(i) + "]",
         c.environments[i].name + " branches " + JoinList(c.environments[i].branches));
  return out;
}

}  // namespace ladle::runner
