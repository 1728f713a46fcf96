// The subcommands behind runner/cli/cli.cc, one function each. Each returns the
// process exit code and prints its own messages (stdout for results, stderr
// for errors). Internal to the CLI.
#ifndef LADLE_RUNNER_CLI_CLI_COMMANDS_H_
#define LADLE_RUNNER_CLI_CLI_COMMANDS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/base/status.h"
#include "runner/spoon/settings.h"

namespace CLI {
class App;
}

namespace ladle::runner {
namespace spoon {
struct SpoonInfo;
}

struct GlobalFlags {
  std::string data;   // resolved data dir
  bool json = false;
  bool quiet = false;
  bool verbose = false;
};

struct RunFlags {
  std::string file = "ladle.yml";
  std::vector<std::string> stages, steps, env;
  std::string from, backend, keep;
  std::string host;  // --host: the Docker daemon ("" = $DOCKER_HOST)
  int jobs = 4;
  bool bind = false;
  bool needs = false;  // --needs: run the dependencies rather than restore their artifacts
  bool list = false;   // --list: print the stages and steps, run nothing
};

int CmdRun(const GlobalFlags& g, const RunFlags& f);
int CmdValidate(const GlobalFlags& g, const std::string& file);
int CmdRuns(const GlobalFlags& g, const std::string& status, int limit);
int CmdShow(const GlobalFlags& g, int64_t run);
int CmdLogs(const GlobalFlags& g, int64_t run, const std::string& step, bool follow);
int CmdCancel(const GlobalFlags& g, int64_t run);

// --- `ladle serve` and its deployments (runner/cli/cli_serve.cc) ---

struct ServeFlags {
  std::string config;  // --config FILE; "" for the defaults (no repositories)
  std::string listen;  // --listen, over the config's
  int max_connections = 0;  // --max-connections, over the config's; 0 = not given
  int io_threads = 0;       // --io-threads, over the config's; 0 = not given
};
// Until SIGINT/SIGTERM, then drains; exit 0. 2 for a bad config, 3 when the
// address is taken or another server holds the data dir.
int CmdServe(const GlobalFlags& g, const ServeFlags& f);

// A client of the server's API: --server/$LADLE_SERVER, --token/$LADLE_TOKEN.
struct ServerFlags {
  std::string server, token;
};
int CmdDeployments(const GlobalFlags& g, const std::string& environment, int limit);
int CmdApprove(const GlobalFlags& g, const ServerFlags& f, int64_t run, const std::string& stage);
int CmdRollback(const GlobalFlags& g, const ServerFlags& f, const std::string& environment,
                int64_t to_run);
// `ladle trigger REPO REF [--tag]` and `ladle rerun ID` (runner/cli/cli_trigger.cc,
// docs/server.md "Triggers"): REF is a branch, refs/heads/B, refs/tags/T, a
// full commit id, or with --tag a tag.
int CmdTrigger(const GlobalFlags& g, const ServerFlags& f, const std::string& repo,
               const std::string& ref, bool tag);
int CmdRerun(const GlobalFlags& g, const ServerFlags& f, int64_t run);
// `ladle prune --older-than AGE`: runs finished before now - AGE go, with
// their logs, artifacts and workspaces.
int CmdPrune(const GlobalFlags& g, const std::string& older_than);
// `ladle prune --kept`: removes this data dir's kept step containers and the
// images ladle committed for them (docs/backends.md "keep").
int CmdPruneKept(const GlobalFlags& g);
// `ladle cancel` of a run that `ladle serve` owns: asks the server.
int CancelOnServer(const GlobalFlags& g, int64_t run);

// `ladle store migrate --to postgresql://...` (runner/cli/cli_store.cc,
// docs/server.md "Moving to PostgreSQL"): copies the data dir's runs,
// deployments, toggles, audit trail and tokens into an empty PostgreSQL
// database. Exit 2 when it is not empty (or a `ladle run` still runs), 3
// when `ladle serve` holds the data dir or PostgreSQL does not answer.
int CmdStoreMigrate(const GlobalFlags& g, const std::string& to);

// `ladle repro RUN [STEP]` (runner/cli/cli_repro.cc): one step of a run of
// `ladle serve`, run here with its commit, pipeline and the artifacts of the
// steps before (docs/running.md "Reproduce a server's step"). Exit codes as
// `ladle run`.
struct ReproFlags {
  std::string run;   // an id, or a web UI address http://HOST:PORT/#/runs/ID[/STAGE/STEP]
  std::string step;  // STAGE/STEP or a step name unique in the run
  std::string server, token;
  std::vector<std::string> env;  // --env K=V
  std::string env_file;          // --env-file FILE (KEY=VALUE lines)
  std::string backend, keep;
  bool worktree = false;  // the working tree (a fix in progress) instead of the run's commit
};
int CmdRepro(const GlobalFlags& g, ReproFlags f);

// --- `ladle env ...` (runner/cli/cli_env.cc): spoons, docs/spoons.md ---

struct EnvFlags {
  std::vector<std::string> words;  // NAME [COMMAND...], or VERB [NAME [IMAGE]]
  std::vector<std::string> command;  // the rest after "--", when CLI11 puts it apart
  std::string name;                // the spoon entered (set by CmdEnv)
  std::string image, cpus, memory, shell, prefix, profile, host, network;
  std::vector<std::string> ports, volumes, dns, env, copy_specs, run;
  bool privileged = false, keep = false, force = false, no_tmux = false;
  // `env config` / `env from-step` / --forward (runner/cli/cli_env_config.cc,
  // runner/cli/cli_env_from_step.cc; options added by AddEnvExtraOptions).
  std::string spoon_name;             // from-step --name
  bool with_secrets = false;          // from-step --with-secrets
  std::vector<std::string> forwards;  // --forward [LOCAL:]PORT (ssh:// hosts)
};
// Registers `env` on `app` (values land in *f, which must outlive parsing).
CLI::App* AddEnvCommands(CLI::App& app, EnvFlags* f);
// Exit codes: the shell's when entering; 2 for a missing spoon or bad
// input, 3 when the daemon does not answer (docs/design.md "Exit codes").
int CmdEnv(const GlobalFlags& g, EnvFlags f);
// The settings of a spoon: env.yml files, --profile and the flags.
Status LoadEnvSettings(const EnvFlags& f, spoon::SpoonSettings* settings);
// The options of `env config`, `env from-step` and --forward on `env`
// (AddEnvCommands calls it). CmdEnv hands the words "config" and
// "from-step" to these (docs/spoons.md "Profiles and env.yml", "From a pipeline step"):
void AddEnvExtraOptions(CLI::App* env, EnvFlags* f);
int CmdEnvConfig(const GlobalFlags& g, const EnvFlags& f);
int CmdEnvFromStep(const GlobalFlags& g, const EnvFlags& f);
// `ladle env NAME --forward [LOCAL:]PORT` with an ssh:// host: forwards the
// spoon's PORT (its published host port, or PORT itself on the remote's
// 127.0.0.1 when unpublished: a spoon on the host network) to 127.0.0.1:LOCAL
// here, for as long as *keep lives (docs/spoons.md "A shared host over ssh").
// OK and nothing when f.forwards is empty; Invalid for a host that is not ssh://.
Status ForwardSpoonPorts(const EnvFlags& f, const std::string& docker_host,
                         const spoon::SpoonInfo& info, std::vector<std::shared_ptr<void>>* keep);

// Prints "ladle: MESSAGE" to stderr and returns the status's exit code.
int Fail(const Status& status);

// --- `ladle toggles ...` (runner/cli/cli_toggles.cc): a client of the toggle
// server's HTTP API (docs/toggles.md "HTTP API"). Exit 2 for a 4xx or a missing token, 3 when
// the server is unreachable or answers 5xx. ---

struct TogglesFlags {
  std::string command;  // the leaf: "list", "get", ..., "token create", "token revoke"
  std::string environment = "production";  // -e/--environment
  bool environment_given = false;
  std::string server;  // --server; "" means $LADLE_SERVER, else http://127.0.0.1:7707
  std::string token;   // --token; "" means $LADLE_TOKEN, else DATA/admin.token
  std::string key, type, description, percent;
  std::string name, role;  // token create / revoke
};

// Registers `toggles` and its subcommands on `app` (parsed values land in
// *f, which must outlive parsing); returns the `toggles` subcommand.
CLI::App* AddTogglesCommands(CLI::App& app, TogglesFlags* f);
int CmdToggles(const GlobalFlags& g, const TogglesFlags& f);

// Table output, exposed for tests. FormatTable left-aligns columns two
// spaces apart (the last one unpadded, no trailing blanks), one line each.
std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows);
// KEY TYPE ENABLED(ENV) STRATEGIES REVISION DESCRIPTION, for a JSON array of
// toggles (docs/design.md "JSON shapes").
std::string FormatToggleTable(const nlohmann::json& toggles, const std::string& environment);
// "-" for none; else "rollout 25% & country in NL | users alice,bob".
std::string SummarizeStrategies(const nlohmann::json& strategies);

// `ladle toggles serve [--listen ADDR:PORT]` (runner/cli/cli_toggles_serve.cc):
// the toggle service alone (docs/toggles.md "HTTP API") over DATA/toggles.db until SIGINT or
// SIGTERM (exit 0). Exit 3 when the address is taken. `max_connections` 0:
// core's default (docs/design.md "HTTP API conventions"); `io_threads` 1..64,
// 0: core's default (docs/toggles.md "HTTP API"). `store`: --store, a
// postgresql:// URI or "" ($LADLE_STORE, else DATA/toggles.db; docs/toggles.md "Store").
int CmdTogglesServe(const GlobalFlags& g, const std::string& listen, int max_connections,
                    int io_threads, const std::string& store = "");

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_CLI_CLI_COMMANDS_H_
