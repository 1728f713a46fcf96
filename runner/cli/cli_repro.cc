// `ladle repro`: runs one step of a run that `ladle serve` ran, here
// (docs/running.md "Reproduce a server's step"). It asks the server for the
// run (commit, branch, pipeline file), takes the source at that commit from
// the current repository (or the working tree with --worktree), downloads
// the artifacts of the steps before it (GET /api/v1/runs/{id}/artifacts),
// and runs the step through the Executor as `ladle run --step` does.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <set>

#include <nlohmann/json.hpp>

#include "core/base/text.h"
#include "env/docker_engine.h"
#include "env/subprocess.h"
#include "runner/cli/cancel_target.h"
#include "runner/cli/cli_commands.h"
#include "runner/cli/cli_remote.h"
#include "runner/cli/signals.h"
#include "runner/cli/terminal_view.h"
#include "runner/config/pipeline.h"
#include "runner/config/server_config.h"
#include "runner/exec/backend.h"
#include "runner/exec/executor.h"
#include "runner/exec/workspace.h"
#include "runner/store/run_store.h"

namespace fs = std::filesystem;

namespace ladle::runner {
namespace {

using json = nlohmann::json;

// The most artifact bytes one repro downloads (a bound on what a server can
// make us write), and how long a download may go without a byte.
constexpr uint64_t kMaxArtifactBytes = 16ull << 30;
constexpr std::chrono::seconds kDownloadIdle{30};

bool AllDigits(std::string_view s) {
  return !s.empty() && s.size() < 19 && s.find_first_not_of("0123456789") == std::string_view::npos;
}

bool IsHex(std::string_view s) {
  return s.size() >= 7 && s.size() <= 64 && s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}


// RUN is an id, or a web UI address "http://HOST:PORT/#/runs/ID[/STAGE/STEP]",
// which also names the server and maybe the step.
Status ParseRunArgument(const std::string& arg, ReproFlags* f, int64_t* id) {
  if (AllDigits(arg)) {
    *id = std::stoll(arg);
    return *id > 0 ? Status::OK() : Status::Invalid("run: expected a positive run id, got '" + arg + "'");
  }
  auto at = arg.find("/runs/");
  if (arg.rfind("http://", 0) != 0 || at == std::string::npos)
    return Status::Invalid("run '" + arg + "': expected a run id or a web UI address "
                           "(http://HOST:PORT/#/runs/ID)");
  std::string server = arg.substr(0, at);
  if (server.size() >= 2 && server.compare(server.size() - 2, 2, "/#") == 0) server.resize(server.size() - 2);
  std::string rest = arg.substr(at + 6);
  std::vector<std::string> parts;
  for (size_t start = 0; start <= rest.size();) {
    size_t end = rest.find('/', start);
    if (end == std::string::npos) end = rest.size();
    parts.push_back(rest.substr(start, end - start));
    start = end + 1;
  }
  if (parts.empty() || !AllDigits(parts[0]) || std::stoll(parts[0]) <= 0)
    return Status::Invalid("run '" + arg + "': no run id after /runs/");
  *id = std::stoll(parts[0]);
  if (f->server.empty()) f->server = server;
  if (f->step.empty() && parts.size() >= 3 && !parts[1].empty() && !parts[2].empty())
    f->step = parts[1] + "/" + parts[2];
  return Status::OK();
}

// "STAGE/STEP", or a step name unique in the run.
Status ResolveRunStep(const json& run, const std::string& name, StepRef* ref) {
  std::vector<StepRef> matches;
  for (const json& stage : run.value("stages", json::array())) {
    for (const json& step : stage.value("steps", json::array())) {
      StepRef r{stage.value("name", ""), step.value("name", "")};
      // docs/pipeline.md "Matrix": a combination also by its display name.
      const std::string display = step.value("display", r.step);
      if (name == r.stage + "/" + r.step || name == r.step || name == display ||
          name == r.stage + "/" + display)
        matches.push_back(r);
    }
  }
  if (matches.size() == 1) {
    *ref = matches[0];
    return Status::OK();
  }
  std::string id = std::to_string(run.value("id", int64_t{0}));
  if (matches.empty()) return Status::NotFound("run " + id + " has no step '" + name + "'");
  std::string list;
  for (const StepRef& m : matches) list += (list.empty() ? "" : ", ") + m.stage + "/" + m.step;
  return Status::Invalid("step '" + name + "' is ambiguous in run " + id + ": " + list);
}

Status Git(const std::vector<std::string>& args, const std::string& cwd, env::CommandResult* r) {
  std::vector<std::string> argv = {"git"};
  argv.insert(argv.end(), args.begin(), args.end());
  return env::RunCommand(argv, cwd, r, std::chrono::minutes(5));
}

// The git top level of the current directory that has `commit`, or a
// message saying how to get it.
Status FindRepository(const std::string& commit, const json& run, std::string* top) {
  env::CommandResult r;
  Status s = Git({"rev-parse", "--show-toplevel"}, "", &r);
  if (!s.ok()) return s.WithContext("git");
  const std::string where = "run " + std::to_string(run.value("id", int64_t{0})) + " of repository '" +
                            run.value("repo", "") + "', branch '" + run.value("branch", "") + "'";
  if (r.exit_code != 0)
    return Status::Invalid("ladle repro needs a clone of the repository of " + where +
                           ": run it inside one (the current directory is not in a git repository)");
  *top = r.out.substr(0, r.out.find('\n'));
  s = Git({"cat-file", "-e", commit + "^{commit}"}, *top, &r);
  if (!s.ok()) return s.WithContext("git");
  if (r.exit_code != 0)
    return Status::NotFound("commit " + commit + " of " + where + " is not in " + *top +
                            ": fetch it (git fetch origin " + run.value("branch", "BRANCH") +
                            ") and run ladle repro again");
  return Status::OK();
}

// The tree of `commit` into `dest` (created), without touching the
// repository's index or working tree.
Status ExtractCommit(const std::string& top, const std::string& commit, const std::string& dest) {
  std::error_code ec;
  fs::create_directories(dest, ec);
  if (ec) return Status::IoError("create " + dest + ": " + ec.message());
  env::CommandResult r;
  Status s = env::RunCommand({"sh", "-c", "git archive --format=tar \"$1\" | tar -x -C \"$2\"", "sh",
                              commit, dest},
                             top, &r, std::chrono::minutes(10));
  if (!s.ok()) return s.WithContext("git archive " + commit);
  if (r.exit_code != 0)
    return Status::IoError("git archive " + commit + " into " + dest + ": " + r.err);
  return Status::OK();
}

// Which steps' artifacts the step needs: every step of the stages before
// its own, and the steps of its stage that it needs (transitively).
std::set<std::pair<std::string, std::string>> StepsBefore(const Pipeline& p, const StepRef& ref) {
  std::set<std::pair<std::string, std::string>> out;
  for (const Stage& stage : p.stages) {
    if (stage.name != ref.stage) {
      for (const Step& step : stage.steps) out.insert({stage.name, step.name});
      continue;
    }
    for (const std::string& need : NeedsClosure(stage, {ref.step})) out.insert({stage.name, need});
    break;
  }
  return out;
}

// Downloads one artifact file to `dest`, checking it has `size` bytes.
Status DownloadFile(const toggles::HttpClient& http, const std::string& target,
                    const std::string& dest, uint64_t size) {
  std::error_code ec;
  fs::create_directories(fs::path(dest).parent_path(), ec);
  ::unlink(dest.c_str());  // a file of the source tree with that name is replaced
  int fd = ::open(dest.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IoError("create " + dest + ": " + std::strerror(errno));
  uint64_t got = 0;
  bool write_failed = false;
  int status = 0;
  toggles::ClientResponse raw;
  toggles::HttpCanceller cancel;
  Status s = http.Stream(
      target, {}, kDownloadIdle, [&](int st) { status = st; return true; },
      [&](std::string_view data) {
        got += data.size();
        if (got > size) return false;
        for (size_t off = 0; off < data.size();) {
          ssize_t n = ::write(fd, data.data() + off, data.size() - off);
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) return !(write_failed = true);
          off += static_cast<size_t>(n);
        }
        return true;
      },
      &cancel, &raw);
  ::close(fd);
  if (!s.ok()) return s.WithContext("GET " + target);
  if (status < 200 || status > 299) return toggles::StatusFromHttp(status, raw.body).WithContext("GET " + target);
  if (write_failed) return Status::IoError("write " + dest + ": " + std::strerror(errno));
  if (got != size)
    return Status::IoError("GET " + target + ": got " + std::to_string(got) + " bytes, the list said " +
                           std::to_string(size));
  return Status::OK();
}

// Downloads the artifacts of `steps` of run `id` into `workspace`, in the
// pipeline's order (later steps' files win, as RestoreArtifacts does).
Status DownloadArtifacts(Remote& remote, int64_t id, const Pipeline& pipeline,
                         const std::set<std::pair<std::string, std::string>>& steps,
                         const std::string& workspace, RunObserver* view) {
  json list;
  Status s = remote.Call("GET", "/api/v1/runs/" + std::to_string(id) + "/artifacts", nullptr, &list);
  if (!s.ok()) return s.WithContext("list the artifacts of run " + std::to_string(id));
  if (list.value("truncated", false))
    return Status::TooLarge("run " + std::to_string(id) + " kept more artifact files than the server lists");
  uint64_t total = 0;
  for (const Stage& stage : pipeline.stages) {
    for (const Step& step : stage.steps) {
      if (!steps.count({stage.name, step.name})) continue;
      size_t files = 0;
      uint64_t bytes = 0;
      for (const json& a : list.value("artifacts", json::array())) {
        if (!a.is_object() || a.value("stage", "") != stage.name || a.value("step", "") != step.name) continue;
        const std::string path = a.value("path", "");
        const uint64_t size = a.value("size", uint64_t{0});
        if (!PlainRelativePath(path))
          return Status::Invalid("the server listed an artifact path '" + path + "' of " + stage.name + "/" +
                                 step.name + " that is not a plain relative path");
        if ((total += size) > kMaxArtifactBytes)
          return Status::TooLarge("the artifacts of run " + std::to_string(id) + " exceed " +
                                  std::to_string(kMaxArtifactBytes >> 30) + " GiB");
        std::string target = "/api/v1/runs/" + std::to_string(id) + "/artifacts/" +
                             toggles::EncodePathSegment(stage.name) + "/" + toggles::EncodePathSegment(step.name);
        for (size_t start = 0; start <= path.size();) {
          size_t end = path.find('/', start);
          if (end == std::string::npos) end = path.size();
          target += "/" + toggles::EncodePathSegment(path.substr(start, end - start));
          start = end + 1;
        }
        s = DownloadFile(remote.http(), target, (fs::path(workspace) / path).string(), size);
        if (!s.ok()) return s;
        ++files;
        bytes += size;
      }
      if (files > 0 && view)
        view->Note("downloaded the artifacts of " + stage.name + "/" + step.name + " from run " +
                   std::to_string(id) + ": " + std::to_string(files) + " files, " + std::to_string(bytes) +
                   " bytes");
    }
  }
  return Status::OK();
}

// --env K=V and --env-file FILE: secrets of the pipeline go to `secrets`, the
// rest to `extra`.
Status CollectEnv(const ReproFlags& f, const Pipeline& pipeline, Vars* secrets, Vars* extra) {
  Vars all;
  if (!f.env_file.empty()) {
    Status s = LoadSecretsFile(f.env_file, &all);
    if (!s.ok()) return s.WithContext("--env-file");
  }
  for (const std::string& kv : f.env) {
    auto eq = kv.find('=');
    if (eq == 0 || eq == std::string::npos) return Status::Invalid("--env '" + kv + "': expected KEY=VALUE");
    all.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  for (auto& [name, value] : all) {
    bool secret = std::find(pipeline.secrets.begin(), pipeline.secrets.end(), name) != pipeline.secrets.end();
    (secret ? secrets : extra)->emplace_back(name, value);
  }
  return Status::OK();
}

}  // namespace

int CmdRepro(const GlobalFlags& g, ReproFlags f) {
  auto target = std::make_shared<CancelTarget>();
  SignalHandlerScope signals([target](int sig) { target->Signal(sig); });

  int64_t id = 0;
  Status s = ParseRunArgument(f.run, &f, &id);
  if (!s.ok()) return Fail(s);
  if (f.step.empty()) return Fail(Status::Invalid("which step? ladle repro RUN STAGE/STEP"));
  Remote remote;
  s = remote.Open(g, f.server, f.token);
  json run;
  if (s.ok()) s = remote.Call("GET", "/api/v1/runs/" + std::to_string(id), nullptr, &run);
  if (!s.ok()) return Fail(s);
  const std::string commit = run.value("commit", "");
  const std::string file = run.value("file", "ladle.yml");
  if (!IsHex(commit)) return Fail(Status::Invalid("run " + std::to_string(id) + " has no commit to reproduce"));
  StepRef ref;
  s = ResolveRunStep(run, f.step, &ref);
  if (!s.ok()) return Fail(s);

  // The source: the commit's tree, or the working tree (--worktree, to try a fix).
  std::error_code ec;
  fs::create_directories(g.data, ec);
  if (ec) return Fail(Status::IoError("create data dir " + g.data + ": " + ec.message()));
  std::string data_dir = fs::absolute(g.data).lexically_normal().string();
  if (data_dir.size() > 1 && data_dir.back() == '/') data_dir.pop_back();
  char tmpl_buf[4096];
  std::snprintf(tmpl_buf, sizeof tmpl_buf, "%s/workspaces/repro-%lld-XXXXXX", data_dir.c_str(),
                static_cast<long long>(id));
  fs::create_directories(fs::path(tmpl_buf).parent_path(), ec);
  if (::mkdtemp(tmpl_buf) == nullptr)
    return Fail(Status::IoError(std::string("create ") + tmpl_buf + ": " + std::strerror(errno)));
  const std::string tree = tmpl_buf;
  // The workspace goes when the step passed (or never ran); a failed one is
  // kept for a look, and its path said.
  struct Cleanup {
    std::string dir;
    bool keep = false;
    ~Cleanup() {
      std::error_code e;
      if (!keep) fs::remove_all(dir, e);
    }
  } cleanup{tree};
  std::string top;
  if (f.worktree) {
    // The pipeline file as the server names it, from the top of this working tree.
    env::CommandResult r;
    s = Git({"rev-parse", "--show-toplevel"}, "", &r);
    SourceInfo source;
    if (s.ok()) {
      top = r.exit_code == 0 ? r.out.substr(0, r.out.find('\n')) : fs::current_path(ec).string();
      s = DescribeSource((fs::path(top) / file).string(), &source);
    }
    if (s.ok()) s = CopyWorkingTree(source, tree, data_dir);
  } else {
    s = FindRepository(commit, run, &top);
    if (s.ok()) s = ExtractCommit(top, commit, tree);
  }
  if (!s.ok()) return Fail(s);

  Pipeline pipeline;
  std::vector<Diagnostic> diagnostics;
  bool ok = LoadPipeline((fs::path(tree) / file).string(), &pipeline, &diagnostics);
  for (const Diagnostic& d : diagnostics) std::fprintf(stderr, "%s\n", d.ToString().c_str());
  if (!ok) return 2;
  // As ladle serve names it (the repository's path), marked as a repro of the
  // server's run: `ladle runs` shows where it came from, and --step of a
  // local run never takes its artifacts for this pipeline's.
  pipeline.file = file + " (repro of run " + std::to_string(id) + " at " + remote.http().url().ToString() + ")";
  RunOptions options;
  options.data_dir = data_dir;
  options.steps = {ref};
  options.artifacts_restored = true;
  s = CollectEnv(f, pipeline, &options.secrets, &options.extra_env);
  if (!s.ok()) return Fail(s);
  if (!pipeline.FindStage(ref.stage)) return Fail(Status::NotFound("the pipeline at " + commit + " has no stage '" + ref.stage + "'"));

  auto view = MakeTerminalView(DetectViewOptions(g.quiet));
  view->Note("reproducing " + ref.stage + "/" + ref.step + " of run " + std::to_string(id) + " (" +
             run.value("repo", "") + ", branch " + run.value("branch", "") + ", commit " +
             commit.substr(0, 12) + (f.worktree ? "; source: this working tree" : "") + ")");
  // docs/running.md "Reproduce a server's step": secrets live on the server; name the missing ones.
  std::vector<std::string> missing;
  for (const std::string& name : pipeline.secrets)
    if (SecretValue(options.secrets, name).empty()) missing.push_back(name);
  if (!missing.empty()) {
    std::string names;
    for (const std::string& m : missing) names += (names.empty() ? "" : ", ") + m;
    view->Note("secrets not set here: " + names + " (the server keeps them; give them with --env NAME=VALUE "
               "or --env-file FILE)");
  }
  s = DownloadArtifacts(remote, id, pipeline, StepsBefore(pipeline, ref), tree, view.get());
  if (!s.ok()) return Fail(s);

  std::unique_ptr<RunStore> store;
  s = RunStore::Open(data_dir, &store);
  if (!s.ok()) return Fail(s.WithContext("open the run store in " + data_dir));
  std::vector<int64_t> interrupted;
  // Dead runs are marked by every command that opens the store; one that
  // cannot be marked now stays for the next (as `ladle run`, which warns).
  store->MarkInterrupted(&interrupted).IgnoreError();
  std::unique_ptr<env::Engine> engine;
  std::vector<std::string> backend_notes;
  EndProcessesOfDeadRuns(store.get(), data_dir, &backend_notes);
  s = PickEngine(f.backend, pipeline, data_dir, store.get(), &engine, &backend_notes);
  if (!s.ok()) return Fail(s);
  for (const std::string& note : backend_notes) view->Note(note);
  options.commit = commit;
  options.branch = run.value("branch", "");
  options.repo = run.value("repo", "");
  options.keep = f.keep;
  options.actor = "ladle repro";
  options.trigger = "repro";
  options.workspace = tree;
  if (auto* docker = dynamic_cast<env::DockerEngine*>(engine.get()))
    docker->SetNoteCallback([v = view.get()](const std::string& line) { v->Note(line); });
  Executor executor(pipeline, store.get(), engine.get(), view.get());
  target->Attach(&executor);
  RunRecord local;
  s = executor.Run(options, &local);
  target->Attach(nullptr);
  if (!s.ok()) return Fail(s);
  if (local.status != kSuccess) {
    cleanup.keep = true;
    view->Note("workspace kept at " + tree + " (remove it when done)");
  }
  if (local.status == kCancelled) return 128 + (executor.cancel_signal() ? executor.cancel_signal() : 2);
  if (local.status != kFailed) return 0;
  return executor.outside_failure().ok() ? 1 : 3;
}

}  // namespace ladle::runner
