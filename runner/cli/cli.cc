#include "runner/cli/cli.h"

#include <cstdio>
#include <cstdlib>

#include <CLI/CLI.hpp>

#include "runner/cli/cli_commands.h"
#include "runner/config/yaml_check.h"  // DidYouMean

namespace ladle::runner {

std::string ResolveDataDir(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* home = std::getenv("LADLE_HOME"); home && *home) return home;
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg && *xdg) return std::string(xdg) + "/ladle";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.local/share/ladle";
}

int Fail(const Status& status) {
  std::fprintf(stderr, "ladle: %s\n", status.message().c_str());
  return status.ExitCode();
}

namespace {

void AddRun(CLI::App& app, RunFlags* f) {
  CLI::App* run = app.add_subcommand("run", "Run a pipeline here, now");
  run->add_option("file", f->file, "Pipeline file")->capture_default_str();
  // One value per flag (allow_extra_args(false)): `--env K=V ladle.yml` must
  // not read the file as a second K=V.
  run->add_option("--stage", f->stages, "Run only this stage (repeatable)")->allow_extra_args(false);
  run->add_option("--step", f->steps, "Run only this step, STAGE/STEP (repeatable)")
      ->allow_extra_args(false);
  run->add_option("--from", f->from, "Resume at this step: it, its dependents, later stages");
  run->add_option("--backend", f->backend, "docker or local (default: docker when a daemon answers)")
      ->check(CLI::IsMember({"docker", "local"}));
  run->add_option("--jobs,-j", f->jobs, "Steps of a stage run at once")->check(CLI::Range(1, 256))
      ->capture_default_str();
  run->add_option("--keep", f->keep, "Keep step containers: never, on-failure, always")
      ->check(CLI::IsMember({"never", "on-failure", "always"}));
  run->add_option("--env", f->env, "Set a variable for every step, K=V (repeatable)")
      ->allow_extra_args(false);
  run->add_flag("--bind", f->bind, "Use the working tree in place instead of a copy");
  run->add_option("--host,-H", f->host,
                  "Docker daemon of the docker backend: unix:///PATH, tcp://HOST:PORT, ssh://USER@HOST "
                  "(default $DOCKER_HOST)");
  run->add_flag("--list", f->list, "Print the stages, steps, needs, images and environments; run nothing");
  run->add_flag("--needs", f->needs,
                "With --step/--from: run the steps they depend on first, rather than restoring "
                "their artifacts");
}

// docs/running.md "Find your way": `ladle rnu` says which word is not a
// command, suggests the closest one and lists them all. The word is the
// first argument that is not an option (nor --data's value); true when it
// was unknown and said so.
bool ReportUnknownCommand(CLI::App& app, int argc, char** argv) {
  std::string word;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--data") ++i;
    else if (arg.empty() || arg[0] != '-') {
      word = arg;
      break;
    }
  }
  if (word.empty()) return false;
  std::vector<std::string> names;
  for (const CLI::App* sub : app.get_subcommands({})) names.push_back(sub->get_name());
  for (const std::string& name : names)
    if (name == word) return false;
  std::vector<std::string_view> candidates(names.begin(), names.end());
  std::string list;
  for (const std::string& name : names) list += (list.empty() ? "" : ", ") + name;
  std::fprintf(stderr, "ladle: unknown command '%s'%s\ncommands: %s (ladle --help)\n", word.c_str(),
               DidYouMean(word, candidates).c_str(), list.c_str());
  return true;
}

}  // namespace

int RunCli(int argc, char** argv) {
  CLI::App app{"ladle: continuous deployment with disposable step containers and toggles"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("ladle ") + LADLE_VERSION);
  std::string data_flag;
  GlobalFlags g;
  app.add_option("--data", data_flag, "Data dir (default $LADLE_HOME, $XDG_DATA_HOME/ladle, ~/.local/share/ladle)");
  app.add_flag("--json", g.json, "Print records as JSON");
  app.add_flag("-q,--quiet", g.quiet, "Print less");
  app.add_flag("-v,--verbose", g.verbose, "Print more");

  RunFlags run_flags;
  AddRun(app, &run_flags);
  std::string validate_file = "ladle.yml";
  app.add_subcommand("validate", "Check a pipeline file")
      ->add_option("file", validate_file, "Pipeline file")->capture_default_str();
  std::string status_filter;
  int limit = 20;
  CLI::App* runs = app.add_subcommand("runs", "Run history, newest first");
  runs->add_option("--status", status_filter, "Only runs with this status");
  runs->add_option("--limit,-n", limit, "How many")->capture_default_str();
  int64_t run_id = 0;
  CLI::App* show = app.add_subcommand("show", "One run's stages and steps");
  show->add_option("run", run_id, "Run id")->required();
  std::string step;
  bool follow = false;
  CLI::App* logs = app.add_subcommand("logs", "A run's logs, or one step's");
  logs->add_option("run", run_id, "Run id")->required();
  logs->add_option("step", step, "STAGE/STEP or a unique step name");
  logs->add_flag("-f,--follow", follow, "Keep printing while the run goes on");
  CLI::App* cancel = app.add_subcommand("cancel", "Cancel a running run");
  cancel->add_option("run", run_id, "Run id")->required();
  ServeFlags serve_flags;
  CLI::App* serve = app.add_subcommand("serve", "The server: triggers, run queue, deployments, toggle and runs API");
  serve->add_option("--config", serve_flags.config, "server.yml (docs/server.md); default: no repositories");
  serve->add_option("--listen", serve_flags.listen, "ADDR:PORT (default the config's, else 127.0.0.1:7707)");
  serve->add_option("--max-connections", serve_flags.max_connections,
                    "HTTP connections at once; past it 503 (default the config's, else 10000)")
      ->check(CLI::Range(1, 1000000));
  serve->add_option("--io-threads", serve_flags.io_threads,
                    "HTTP io threads, 1 to 64 (default the config's, else 2)")
      ->check(CLI::Range(1, 64));
  ServerFlags server_flags;
  auto add_server_flags = [&](CLI::App* sub) {
    sub->add_option("--server", server_flags.server, "Server URL (default $LADLE_SERVER, else http://127.0.0.1:7707)");
    sub->add_option("--token", server_flags.token, "API token (default $LADLE_TOKEN, else DATA/admin.token)");
  };
  std::string environment;
  int deploy_limit = 20;
  CLI::App* deployments = app.add_subcommand("deployments", "Deployment history, newest first");
  deployments->add_option("environment", environment, "Only this environment");
  deployments->add_option("--limit,-n", deploy_limit, "How many")->capture_default_str();
  std::string stage;
  CLI::App* approve = app.add_subcommand("approve", "Release a stage waiting for manual approval");
  approve->add_option("run", run_id, "Run id")->required();
  approve->add_option("stage", stage, "Stage name")->required();
  add_server_flags(approve);
  int64_t to_run = 0;
  CLI::App* rollback = app.add_subcommand("rollback", "Redeploy an environment's previous good commit");
  rollback->add_option("environment", environment, "Environment")->required();
  rollback->add_option("--to", to_run, "Redeploy what this run deployed");
  add_server_flags(rollback);
  std::string trigger_repo, trigger_ref;
  bool trigger_tag = false;
  CLI::App* trigger = app.add_subcommand("trigger", "Ask ladle serve for a run of a branch, tag or commit");
  trigger->add_option("repo", trigger_repo, "Repository name (server.yml)")->required();
  trigger->add_option("ref", trigger_ref, "Branch, refs/tags/TAG, or a full commit id")->required();
  trigger->add_flag("--tag", trigger_tag, "REF is a tag");
  add_server_flags(trigger);
  CLI::App* rerun = app.add_subcommand("rerun", "Run a server's run again: same commit and pipeline");
  rerun->add_option("run", run_id, "Run id")->required();
  add_server_flags(rerun);
  ReproFlags repro_flags;
  CLI::App* repro = app.add_subcommand("repro", "Run one step of a server's run here");
  repro->add_option("run", repro_flags.run, "Run id, or its web UI address")->required();
  repro->add_option("step", repro_flags.step, "STAGE/STEP or a unique step name");
  repro->add_option("--server", repro_flags.server, "Server URL (default $LADLE_SERVER, else http://127.0.0.1:7707)");
  repro->add_option("--token", repro_flags.token, "API token (default $LADLE_TOKEN, else DATA/admin.token)");
  repro->add_option("--env", repro_flags.env, "Set a variable or a secret, K=V (repeatable)")
      ->allow_extra_args(false);
  repro->add_option("--env-file", repro_flags.env_file, "KEY=VALUE lines: variables and secrets");
  repro->add_option("--backend", repro_flags.backend, "docker or local (default: as ladle run)")
      ->check(CLI::IsMember({"docker", "local"}));
  repro->add_option("--keep", repro_flags.keep, "Keep the step's container: never, on-failure, always")
      ->check(CLI::IsMember({"never", "on-failure", "always"}));
  repro->add_flag("--worktree", repro_flags.worktree, "Use this working tree (a fix) instead of the run's commit");
  std::string older_than = "30d";
  CLI::App* prune = app.add_subcommand("prune", "Delete old runs with their logs, artifacts and workspaces");
  prune->add_option("--older-than", older_than, "Age: 30d, 2w, 12h")->capture_default_str();
  bool prune_kept = false;
  prune->add_flag("--kept", prune_kept, "Remove the kept step containers instead (keep:)");
  std::string migrate_to;
  CLI::App* store_cmd = app.add_subcommand("store", "The run and toggle stores");
  store_cmd->require_subcommand(1);
  CLI::App* store_migrate = store_cmd->add_subcommand(
      "migrate", "Copy this data dir's runs, toggles and tokens into an empty PostgreSQL database");
  store_migrate->add_option("--to", migrate_to, "postgresql://USER@HOST/DB")->required();
  store_migrate->fallthrough();  // --data after the subcommand
  EnvFlags env_flags;
  CLI::App* env_cmd = AddEnvCommands(app, &env_flags);
  TogglesFlags toggles_flags;
  CLI::App* toggles = AddTogglesCommands(app, &toggles_flags);
  std::string serve_listen = "127.0.0.1:7707";
  CLI::App* toggles_serve = toggles->add_subcommand("serve", "Serve the toggle API alone");
  toggles_serve->add_option("--listen", serve_listen, "ADDR:PORT")->capture_default_str();
  int serve_max_connections = 0;
  toggles_serve->add_option("--max-connections", serve_max_connections,
                            "HTTP connections at once; past it 503 (default 10000)")
      ->check(CLI::Range(1, 1000000));
  int serve_io_threads = 0;  // 0: core's default, 2 (docs/toggles.md "HTTP API")
  toggles_serve->add_option("--io-threads", serve_io_threads,
                            "HTTP io threads, 1 to 64 (default 2)")
      ->check(CLI::Range(1, 64));
  std::string serve_store;  // "": $LADLE_STORE, else the data dir (docs/toggles.md "Store")
  toggles_serve->add_option("--store", serve_store,
                            "postgresql://... to share toggles with other servers");
  toggles_serve->fallthrough();
  for (CLI::App* sub : app.get_subcommands({})) sub->fallthrough();

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    if (!ReportUnknownCommand(app, argc, argv)) app.exit(e);
    return 2;
  }
  g.data = ResolveDataDir(data_flag);
  if (app.got_subcommand("run")) return CmdRun(g, run_flags);
  if (app.got_subcommand("validate")) return CmdValidate(g, validate_file);
  if (app.got_subcommand("runs")) return CmdRuns(g, status_filter, limit);
  if (app.got_subcommand("show")) return CmdShow(g, run_id);
  if (app.got_subcommand("logs")) return CmdLogs(g, run_id, step, follow);
  if (app.got_subcommand("cancel")) return CmdCancel(g, run_id);
  if (serve->parsed()) return CmdServe(g, serve_flags);
  if (prune->parsed()) return prune_kept ? CmdPruneKept(g) : CmdPrune(g, older_than);
  if (repro->parsed()) return CmdRepro(g, repro_flags);
  if (store_migrate->parsed()) return CmdStoreMigrate(g, migrate_to);
  if (env_cmd->parsed()) return CmdEnv(g, env_flags);
  if (deployments->parsed()) return CmdDeployments(g, environment, deploy_limit);
  if (approve->parsed()) return CmdApprove(g, server_flags, run_id, stage);
  if (rollback->parsed()) return CmdRollback(g, server_flags, environment, to_run);
  if (trigger->parsed()) return CmdTrigger(g, server_flags, trigger_repo, trigger_ref, trigger_tag);
  if (rerun->parsed()) return CmdRerun(g, server_flags, run_id);
  if (toggles_serve->parsed()) return CmdTogglesServe(g, serve_listen, serve_max_connections,
                                                      serve_io_threads, serve_store);
  if (app.got_subcommand("toggles")) return CmdToggles(g, toggles_flags);
  return 2;
}

}  // namespace ladle::runner
