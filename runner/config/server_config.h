// The configuration of `ladle serve` (docs/server.md "server.yml"), and its
// secrets file.
//
// LoadServerConfig validates every key the way LoadPipeline does: every
// problem is a Diagnostic (FILE:LINE:COL: message), all of them in one pass.
// A ServerConfig that loaded without errors is complete: defaults applied and
// relative paths made absolute against the config file's directory, so the
// server never consults the YAML again. Reading the secrets file is left to
// the caller (LoadSecretsFile), when it starts serving.
#ifndef LADLE_RUNNER_CONFIG_SERVER_CONFIG_H_
#define LADLE_RUNNER_CONFIG_SERVER_CONFIG_H_

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/status.h"
#include "runner/config/pipeline.h"

namespace ladle::runner {

// docs/server.md "Commit statuses": where a repository's run statuses are posted.
struct CommitStatusConfig {
  Location location;
  std::string kind;       // "github", "gitlab" or "gitea"
  std::string api;        // the API's base URL: https://api.github.com, https://HOST/api/v4, https://HOST/api/v1
  std::string token_env;  // the variable (secrets file, else environment) holding the token
  std::string repo;       // "OWNER/NAME" (GitHub, Gitea); a project id or path (GitLab)
  std::string context = "ladle";  // the status's name on the forge
};

// One repository the server watches.
struct RepositoryConfig {
  std::string name;                    // [a-z0-9][a-z0-9._-]*, at most 64, unique
  Location location;                   // of its entry in server.yml
  std::string url;                     // a URL git can fetch, or an absolute path
  std::vector<std::string> branches;   // globs; empty: every branch the pipeline's on.push accepts
  std::string pipeline = "ladle.yml";  // relative path inside the repository, no ".."
  std::chrono::milliseconds poll{0};   // 0: webhooks only; otherwise at least 1s
  std::string webhook_secret_env;      // "" = accepts no webhooks
  std::optional<CommitStatusConfig> status;  // docs/server.md "Commit statuses"
};

// A `secrets:` entry (docs/server.md "Scoped secrets"): the secret `name`
// reaches a step only when the run's repository and branch and the stage's
// environment each match one of the globs (an empty list: any). A stage
// without an environment matches only an entry without `environments`.
struct SecretScope {
  std::string name;  // a variable name
  Location location;
  std::vector<std::string> repositories, branches, environments;  // globs; empty: any
};

// An `environments:` entry (docs/server.md "Protected environments"): a
// stage deploying to `name` runs only for runs of these branches.
struct ProtectedEnvironment {
  std::string name;
  Location location;
  std::vector<std::string> branches;  // globs, at least one
};

struct ServerConfig {
  std::string file;  // where it was loaded from; "" for the defaults
  std::string listen = "127.0.0.1:7707";
  std::string data;          // absolute; "" = the default data dir (docs/design.md "The data dir")
  int workers = 2;           // 1..64 runs at a time
  int max_connections = 0;   // HTTP connections at once; 0 = the default (docs/server.md)
  int io_threads = 0;        // HTTP io threads 1..64; 0 = the default, 2 (docs/server.md)
  std::string backend;       // "", "docker" or "local"; "" = docker when a daemon answers
  std::string secrets_file;  // absolute; "" = none
  bool requeue_interrupted = false;
  std::chrono::seconds retention{0};  // 0 = keep every run
  // docs/server.md "Commit statuses": the web UI's address as people reach
  // it ("https://ci.example.com"), for links; "" = http://LISTEN.
  std::string external_url;
  // docs/server.md "Replicas": the shared store ("" = the data dir's
  // SQLite; $LADLE_STORE when not set here), the URL the other replicas
  // reach this one at ("" = http://LISTEN), and the lease a replica holds on
  // its runs.
  std::string store;
  std::string replica_url;
  std::chrono::seconds lease{15};
  std::vector<RepositoryConfig> repositories;
  std::vector<SecretScope> secrets;                // several entries may name one secret
  std::vector<ProtectedEnvironment> environments;  // names unique

  const RepositoryConfig* FindRepository(std::string_view name) const;  // nullptr when absent
};

// Whether a step of a run of `repo` and `branch`, in a stage that deploys to
// `environment` ("" for none), may get the secret `name`: no entry of
// `scopes` names it, or one that names it matches all three.
bool SecretInScope(const std::vector<SecretScope>& scopes, const std::string& name,
                   const std::string& repo, const std::string& branch,
                   const std::string& environment);
// True when some entry of `scopes` names `name`.
bool SecretIsScoped(const std::vector<SecretScope>& scopes, const std::string& name);

// Empty when `branch` may deploy to `environment`; otherwise why not:
// "environment 'production' takes deployments from branches main only".
std::string EnvironmentRefusal(const std::vector<ProtectedEnvironment>& environments,
                               const std::string& environment, const std::string& branch);

// docs/server.md "Replicas": the settings every replica on one store must
// share, one "key: value" line each in a fixed order (everything but
// listen, data, replica_url, workers, io_threads and max_connections; a
// secret's value never appears, only the variable that holds it).
std::string SharedConfigText(const ServerConfig& config);

// Loads and validates `path` (at most 1 MB). Returns true when there are no
// errors (warnings may be present). Never throws.
bool LoadServerConfig(const std::string& path, ServerConfig* config,
                      std::vector<Diagnostic>* diagnostics);

// Same, from text already in memory: `filename` names it in diagnostics, and
// its directory (made absolute against the working directory) is the base of
// relative paths. An empty document gives the defaults.
bool ParseServerConfig(std::string_view text, const std::string& filename, ServerConfig* config,
                       std::vector<Diagnostic>* diagnostics);

// A retention period: "30d", "2w", "12h", "90m", "1d12h" (units w, d, h, m, s,
// largest first, each at most once), or "0" (keep forever). False when
// malformed, zero with units ("0d"), or longer than 100 years.
bool ParseRetention(std::string_view text, std::chrono::seconds* out);

// Reads a secrets file: KEY=VALUE lines, blank lines and # comments ignored,
// an optional `export ` prefix, a VALUE in single or double quotes has them
// removed (no escapes), KEY is [A-Za-z_][A-Za-z0-9_]* and appears once.
// NotFound when missing; Invalid when the mode gives any permission to group
// or others (the message says `chmod 600 FILE`), or naming FILE:LINE for a
// malformed line. Messages never quote a value. Replaces *vars.
Status LoadSecretsFile(const std::string& path, Vars* vars);

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_CONFIG_SERVER_CONFIG_H_
