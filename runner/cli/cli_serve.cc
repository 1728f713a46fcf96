// `ladle serve`, and the commands around its deployments: `ladle
// deployments`, `ladle approve`, `ladle rollback`.
#include <signal.h>

#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "core/http_server.h"
#include "env/docker_engine.h"
#include "runner/cli/cli_commands.h"
#include "runner/cli/cli_remote.h"
#include "runner/exec/prune.h"
#include "runner/store/run_store.h"
#include "runner/serve/server.h"
#include "runner/config/server_config.h"
#include "runner/cli/signals.h"
#include "toggles/client/http_client.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace ladle::runner {
namespace {

std::string Short(const std::string& commit) { return commit.substr(0, 12); }

std::string Dash(const std::string& s) { return s.empty() ? "-" : s; }

}  // namespace

int CmdServe(const GlobalFlags& g, const ServeFlags& f) {
  struct Stop {
    std::mutex mu;
    std::condition_variable cv;
    int signal = 0;
  };
  auto stop = std::make_shared<Stop>();
  // Before any thread: signals go to the signal thread only.
  InstallSignalHandler([stop](int sig) {
    if (sig == SIGHUP) return;
    std::lock_guard<std::mutex> lock(stop->mu);
    if (stop->signal == 0) stop->signal = sig;
    stop->cv.notify_all();
  });
  if (g.verbose) spdlog::set_level(spdlog::level::debug);
  if (g.quiet) spdlog::set_level(spdlog::level::warn);

  ServerConfig config;
  if (!f.config.empty()) {
    std::vector<Diagnostic> diagnostics;
    bool ok = LoadServerConfig(f.config, &config, &diagnostics);
    for (const Diagnostic& d : diagnostics) std::fprintf(stderr, "%s\n", d.ToString().c_str());
    if (!ok) return 2;
  }
  if (!f.listen.empty()) config.listen = f.listen;
  if (f.max_connections > 0) config.max_connections = f.max_connections;
  if (f.io_threads > 0) config.io_threads = f.io_threads;
  // Every connection is a descriptor: the soft limit on open files goes up
  // to the hard one (docs/server.md "Top level", max_connections).
  uint64_t files_before = 0;
  uint64_t files = RaiseOpenFileLimit(&files_before);
  if (files != files_before)
    spdlog::info("open files: soft limit raised from {} to {}", files_before, files);
  if (config.data.empty()) config.data = fs::absolute(g.data).lexically_normal().string();
  if (config.data.size() > 1 && config.data.back() == '/') config.data.pop_back();
  if (config.file.empty()) config.file = "the server's configuration";

  std::unique_ptr<Server> server;
  Status s = Server::Open(config, &server);
  if (s.ok()) s = server->Start();
  if (!s.ok()) return Fail(s);
  std::fflush(stdout);
  {
    std::unique_lock<std::mutex> lock(stop->mu);
    stop->cv.wait(lock, [&] { return stop->signal != 0; });
  }
  spdlog::info("signal {}: stopping (no new runs; running steps get TERM and their grace)",
               stop->signal);
  server->Drain(stop->signal);
  server.reset();
  spdlog::info("stopped");
  return 0;
}

int CmdDeployments(const GlobalFlags& g, const std::string& environment, int limit) {
  std::vector<DeploymentRecord> list;
  // A data dir without a run store has no deployments, as `ladle runs` says
  // of its runs; opening the store would create the directory.
  std::error_code ec;
  if (fs::exists(fs::path(g.data) / "ladle.db", ec)) {
    std::unique_ptr<RunStore> store;
    Status s = RunStore::Open(g.data, &store);
    if (!s.ok()) return Fail(s.WithContext("open the run store in " + g.data));
    s = store->ListDeployments(environment, limit, 0, &list);
    if (!s.ok()) return Fail(s);
  }
  if (g.json) {
    json out = json::array();
    for (const DeploymentRecord& d : list) out.push_back(DeploymentToJson(d));
    std::printf("%s\n", json({{"deployments", out}}).dump(2).c_str());
    return 0;
  }
  if (list.empty()) {
    std::printf("no deployments%s yet\n", environment.empty() ? "" : (" to " + environment).c_str());
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const DeploymentRecord& d : list)
    rows.push_back({std::to_string(d.id), d.environment, std::to_string(d.run_id), d.repo,
                    Dash(d.branch), Short(d.commit) + (d.dirty ? "+dirty" : ""), ToString(d.status) + std::string(d.rollback ? " (rollback)" : ""),
                    d.started_at, Dash(d.finished_at)});
  std::printf("%s", FormatTable({"ID", "ENVIRONMENT", "RUN", "REPO", "BRANCH", "COMMIT", "STATUS",
                                 "STARTED", "FINISHED"},
                                rows)
                        .c_str());
  return 0;
}

int CmdApprove(const GlobalFlags& g, const ServerFlags& f, int64_t run, const std::string& stage) {
  Remote remote;
  Status s = remote.Open(g, f.server, f.token);
  json out;
  if (s.ok())
    s = remote.Call("POST",
                    "/api/v1/runs/" + std::to_string(run) + "/stages/" +
                        toggles::EncodePathSegment(stage) + "/approve",
                    nullptr, &out);
  if (!s.ok()) return Fail(s);
  if (g.json) std::printf("%s\n", out.dump(2).c_str());
  else std::printf("approved stage %s of run %lld: the run goes on\n", stage.c_str(),
                   static_cast<long long>(run));
  return 0;
}

int CmdRollback(const GlobalFlags& g, const ServerFlags& f, const std::string& environment,
                int64_t to_run) {
  Remote remote;
  Status s = remote.Open(g, f.server, f.token);
  json body = json::object();
  if (to_run > 0) body["to_run"] = to_run;
  json out;
  if (s.ok())
    s = remote.Call("POST",
                    "/api/v1/environments/" + toggles::EncodePathSegment(environment) + "/rollback",
                    &body, &out);
  if (!s.ok()) return Fail(s);
  if (g.json) {
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    std::printf("rollback of %s queued as run %s; follow it with: ladle logs %s -f\n",
                environment.c_str(), out.value("run_id", json()).dump().c_str(),
                out.value("run_id", json()).dump().c_str());
  }
  return 0;
}

int CmdPrune(const GlobalFlags& g, const std::string& older_than) {
  std::chrono::seconds age;
  if (!ParseRetention(older_than, &age) || age.count() == 0)
    return Fail(Status::Invalid("--older-than '" + older_than +
                                "': expected an age such as 30d, 2w, 12h or 90m"));
  std::unique_ptr<RunStore> store;
  Status s = RunStore::Open(g.data, &store);
  if (!s.ok()) return Fail(s.WithContext("open the run store in " + g.data));
  // Containers are labelled with the data dir as `ladle run` spells it.
  std::string data = fs::absolute(g.data).lexically_normal().string();
  if (data.size() > 1 && data.back() == '/') data.pop_back();
  env::DockerEngineOptions options;
  options.data_dir = data;
  std::unique_ptr<env::DockerEngine> docker;  // none answers: no containers to remove
  if (!env::DockerEngine::Open(options, &docker).ok()) docker.reset();
  std::vector<int64_t> pruned;
  s = PruneRuns(store.get(), g.data, age, docker.get(), &pruned);
  if (!s.ok()) return Fail(s);
  if (g.json) {
    std::printf("%s\n", json({{"pruned", pruned}}).dump().c_str());
  } else if (!g.quiet) {
    std::printf("pruned %zu run(s) that finished more than %s ago\n", pruned.size(),
                older_than.c_str());
  }
  return 0;
}

int CmdPruneKept(const GlobalFlags& g) {
  std::string data = fs::absolute(g.data).lexically_normal().string();
  if (data.size() > 1 && data.back() == '/') data.pop_back();
  env::DockerEngineOptions options;
  options.data_dir = data;
  std::unique_ptr<env::DockerEngine> docker;
  Status s = env::DockerEngine::Open(options, &docker);
  if (!s.ok()) return Fail(s.WithContext("prune kept containers"));
  std::vector<std::string> removed;
  s = docker->RemoveKeptContainers(&removed);
  // The steps no longer name containers that are gone (a store that was
  // never made has none to name).
  std::error_code ec;
  if (s.ok() && fs::exists(fs::path(g.data) / "ladle.db", ec)) {
    std::unique_ptr<RunStore> store;
    s = RunStore::Open(g.data, &store);
    if (s.ok()) s = store->ClearKept();
  }
  if (!s.ok()) return Fail(s);
  if (g.json) {
    std::printf("%s\n", json({{"removed", removed}}).dump().c_str());
  } else if (!g.quiet) {
    std::printf("removed %zu kept container(s)", removed.size());
    for (size_t i = 0; i < removed.size(); ++i)
      std::printf("%s%s", i ? ", " : ": ", removed[i].c_str());
    std::printf("\n");
  }
  return 0;
}

int CancelOnServer(const GlobalFlags& g, int64_t run) {
  Remote remote;
  Status s = remote.Open(g, "", "");
  json out;
  if (s.ok()) s = remote.Call("POST", "/api/v1/runs/" + std::to_string(run) + "/cancel", nullptr, &out);
  if (!s.ok()) return Fail(s);
  std::printf("cancelling run %lld (asked ladle serve)\n", static_cast<long long>(run));
  return 0;
}

}  // namespace ladle::runner
