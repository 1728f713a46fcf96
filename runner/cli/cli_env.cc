// `ladle env ...`: spoons, named development containers (docs/spoons.md).
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "core/base/time_util.h"
#include "runner/cli/cli_commands.h"
#include "runner/spoon/env_config.h"
#include "runner/spoon/settings.h"
#include "runner/spoon/spoon.h"

namespace ladle::runner {

namespace {

using spoon::SpoonInfo;
using spoon::SpoonManager;
using spoon::SpoonSettings;

constexpr std::chrono::milliseconds kConnectTimeout{3000};

std::atomic<bool> g_interrupted{false};

void OnInterrupt(int) { g_interrupted = true; }

// Ctrl-C while a spoon is being made: noted, and the creation stops at its
// next step and removes what it made (SpoonManager::Create).
class InterruptGuard {
 public:
  InterruptGuard() {
    g_interrupted = false;
    struct sigaction sa {};
    sa.sa_handler = OnInterrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
    sigaction(SIGHUP, &sa, &old_hup_);  // the terminal closed: stop as for Ctrl-C
  }
  ~InterruptGuard() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
    sigaction(SIGHUP, &old_hup_, nullptr);
  }

 private:
  struct sigaction old_int_ {}, old_term_ {}, old_hup_ {};
};

// The command line's part of the settings, as the settings hierarchy takes it
// (runner/spoon/env_config.h): the values, and which were given.
spoon::SettingsSources SourcesFromFlags(const EnvFlags& f) {
  spoon::SettingsSources src;
  src.profile = f.profile;
  SpoonSettings& s = src.flags;
  auto given = [&](const char* field, bool is_given) {
    if (is_given) src.flags_given.insert(field);
  };
  // A flag sets its setting, and counts as given, when it is not empty.
  auto text = [&](const char* field, std::string SpoonSettings::*to, const std::string& from) {
    s.*to = from;
    given(field, !from.empty());
  };
  auto list = [&](const char* field, std::vector<std::string> SpoonSettings::*to,
                   const std::vector<std::string>& from) {
    s.*to = from;
    given(field, !from.empty());
  };
  text("image", &SpoonSettings::image, f.image);
  text("prefix", &SpoonSettings::prefix, f.prefix);
  text("shell", &SpoonSettings::shell, f.shell);
  list("ports", &SpoonSettings::ports, f.ports);
  list("volumes", &SpoonSettings::volumes, f.volumes);
  text("cpus", &SpoonSettings::cpus, f.cpus);
  text("memory", &SpoonSettings::memory, f.memory);
  list("dns", &SpoonSettings::dns, f.dns);
  s.privileged = f.privileged;
  given("privileged", f.privileged);
  for (const std::string& kv : f.env) {
    auto eq = kv.find('=');
    s.env[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
  }
  given("env", !f.env.empty());
  given("copy", !f.copy_specs.empty());
  list("run_on_create", &SpoonSettings::run_on_create, f.run);
  text("docker_host", &SpoonSettings::docker_host, f.host);
  src.flag_names = {{"ports", "--port"}, {"volumes", "--volume"}, {"run_on_create", "--run"},
                    {"docker_host", "--host"}};
  return src;
}

Status CheckFlags(const EnvFlags& f) {
  for (const std::string& kv : f.env) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0)
      return Status::Invalid("--env '" + kv + "': expected NAME=VALUE");
  }
  return Status::OK();
}

std::string Created(int64_t unix_seconds) {
  if (unix_seconds <= 0) return "-";
  return FormatRfc3339(std::chrono::system_clock::time_point(std::chrono::seconds(unix_seconds)));
}

std::string Join(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (const std::string& i : items) out += (out.empty() ? "" : sep) + i;
  return out;
}

int List(const GlobalFlags& g, const SpoonManager& m) {
  std::vector<SpoonInfo> all;
  Status s = m.List(&all);
  if (!s.ok()) return Fail(s);
  if (g.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const SpoonInfo& i : all)
      out.push_back({{"name", i.name}, {"container", i.container}, {"state", i.state}, {"image", i.image},
                     {"ports", i.ports}, {"created", Created(i.created)},
                     {"kind", i.kept_step ? "kept-step" : "spoon"}});
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  if (all.empty()) {
    if (!g.quiet)
      std::fprintf(stderr, "no spoons (prefix %s) and no kept step containers at %s\n", m.prefix().c_str(),
                   m.client().endpoint().host.c_str());
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const SpoonInfo& i : all)
    rows.push_back({i.name, i.state, i.image, i.ports.empty() ? "-" : Join(i.ports, ", "), Created(i.created),
                    i.kept_step ? "kept step (ladle env " + i.name + ")" : "spoon"});
  std::cout << FormatTable({"NAME", "STATE", "IMAGE", "PORTS", "CREATED", "KIND"}, rows);
  return 0;
}

// docs/spoons.md "Commands": on a terminal, destroy asks first.
bool Confirm(const SpoonInfo& info) {
  if (!::isatty(STDIN_FILENO)) return true;
  std::fprintf(stderr, "destroy %s %s (container %s) and everything in it? [y/N] ",
               info.kept_step ? "kept step container" : "spoon", info.name.c_str(), info.container.c_str());
  std::string answer;
  if (!std::getline(std::cin, answer)) return false;
  return answer == "y" || answer == "Y" || answer == "yes";
}

int Enter(const GlobalFlags& g, const EnvFlags& f, SpoonManager* m, const SpoonSettings& settings) {
  spoon::CreateOptions options;
  options.keep = f.keep;
  options.network = f.network;
  options.cancelled = [] { return g_interrupted.load(); };
  if (!g.quiet) options.progress = [](const std::string& line) { std::fprintf(stderr, "ladle: %s\n", line.c_str()); };
  SpoonInfo info;
  {
    InterruptGuard guard;
    Status s = m->Ensure(f.name, settings, options, &info);
    if (s.ok() && g_interrupted) s = Status::Cancelled("interrupted");
    if (!s.ok()) return Fail(s);
  }
  spoon::AttachOptions attach;
  attach.tmux = !f.no_tmux;
  // `ladle env NAME -- COMMAND...`: that command instead of the shell.
  attach.command.assign(f.words.begin() + 1, f.words.end());
  std::vector<std::shared_ptr<void>> forwards;  // --forward: ssh tunnels for the session
  Status fs = ForwardSpoonPorts(f, settings.docker_host, info, &forwards);
  if (!fs.ok()) return Fail(fs);
  int code = 0;
  Status s = m->Attach(info, attach, &code);
  if (!s.ok()) return Fail(s);
  return code;
}

}  // namespace

CLI::App* AddEnvCommands(CLI::App& app, EnvFlags* f) {
  CLI::App* env = app.add_subcommand(
      "env", "Spoons: named development containers. ladle env NAME creates (if missing), starts and enters one");
  env->add_option("words", f->words,
                  "NAME [-- COMMAND...] | list | kill NAME | restart NAME | destroy NAME | ports NAME | commit NAME IMAGE")
      ->expected(1)
      ->allow_extra_args(false);
  // The words after the first: a second positional keeps CLI11 in `env`
  // after "--" (it hands the rest to the parent once every positional has
  // its values). CmdEnv joins the two.
  env->add_option("command", f->command, "NAME, IMAGE, or after --: a command to run instead of the shell");
  env->add_option("--image", f->image, "Image of a new spoon");
  env->add_option("--port,-p", f->ports, "Publish a port: HOST:CONTAINER, or CONTAINER for a free host port (repeatable)")
      ->allow_extra_args(false);
  env->add_option("--volume", f->volumes, "Mount HOST:CONTAINER[:ro] (repeatable)")->allow_extra_args(false);
  env->add_option("--cpus", f->cpus, "CPU limit (1.5)");
  env->add_option("--memory", f->memory, "Memory limit (2g)");
  env->add_option("--dns", f->dns, "DNS server (repeatable)")->allow_extra_args(false);
  env->add_flag("--privileged", f->privileged, "Privileged container");
  env->add_option("--env,-e", f->env, "Variable K=V (repeatable)")->allow_extra_args(false);
  env->add_option("--copy", f->copy_specs, "Copy a host file or folder in on creation, FROM:TO (repeatable)")
      ->allow_extra_args(false);
  env->add_option("--run", f->run, "Run a command on creation, in order (repeatable)")->allow_extra_args(false);
  env->add_option("--shell", f->shell, "The shell when the image has no tmux (default /bin/sh)");
  env->add_option("--prefix", f->prefix, "Container name prefix (default spoon-)");
  env->add_option("--network", f->network, "Docker network of a new spoon (ports need a bridge network)");
  env->add_flag("--keep", f->keep, "Keep a half-made spoon when its creation fails");
  env->add_option("--profile", f->profile, "Settings profile from env.yml");
  env->add_option("--host,-H", f->host, "Docker daemon: unix:///PATH, tcp://HOST:PORT, ssh://USER@HOST");
  env->add_flag("--force,-f", f->force, "destroy: do not ask");
  env->add_flag("--no-tmux", f->no_tmux, "Enter with the plain shell even when the image has tmux");
  AddEnvExtraOptions(env, f);  // config, from-step, --forward (runner/cli/cli_env_config.cc)
  return env;
}

// Fills f->settings from the settings files and the flags.
Status LoadEnvSettings(const EnvFlags& f, SpoonSettings* settings) {
  Status s = CheckFlags(f);
  if (!s.ok()) return s;
  spoon::SettingsSources src = SourcesFromFlags(f);
  for (const std::string& c : f.copy_specs) {
    spoon::CopySpec spec;
    s = spoon::ParseCopySpec(c, &spec);
    if (!s.ok()) return s.WithContext("--copy");
    src.flags.copy.push_back(spec);
  }
  return spoon::LoadSpoonSettings(src, settings);
}

int CmdEnv(const GlobalFlags& g, EnvFlags f) {
  f.words.insert(f.words.end(), f.command.begin(), f.command.end());
  f.command.clear();
  if (f.words.empty()) {
    std::fprintf(stderr, "ladle env: give a spoon's NAME, or list, kill, restart, destroy, ports, commit "
                         "(ladle env --help)\n");
    return 2;
  }
  // A terminal that closes does not kill ladle half-way: creation stops and
  // cleans up (InterruptGuard), an attached shell detaches (runner/spoon/
  // terminal.h), and everything else finishes, so an ssh:// tunnel is always
  // closed on the way out (docs/spoons.md). Steps and children start with
  // default dispositions (env/subprocess.h).
  std::signal(SIGHUP, SIG_IGN);
  const std::string verb = f.words[0];
  if (verb == "config") return CmdEnvConfig(g, f);  // runner/cli/cli_env_config.cc
  if (verb == "from-step") return CmdEnvFromStep(g, f);  // runner/cli/cli_env_from_step.cc
  auto want = [&](size_t n, const char* usage) {
    if (f.words.size() == n) return true;
    std::fprintf(stderr, "ladle: usage: ladle env %s\n", usage);
    return false;
  };
  bool is_verb = verb == "list" || verb == "kill" || verb == "restart" || verb == "destroy" ||
                 verb == "ports" || verb == "commit";
  if (verb == "list" && !want(1, "list")) return 2;
  if ((verb == "kill" || verb == "restart" || verb == "destroy" || verb == "ports") &&
      !want(2, (verb + " NAME").c_str()))
    return 2;
  if (verb == "commit" && !want(3, "commit NAME IMAGE")) return 2;

  SpoonSettings settings;
  Status s = LoadEnvSettings(f, &settings);
  if (!s.ok()) return Fail(s);
  std::unique_ptr<SpoonManager> m;
  s = SpoonManager::Open(settings.docker_host, settings.prefix, kConnectTimeout, &m);
  if (!s.ok()) return Fail(s);

  if (!is_verb) {
    f.name = verb;
    return Enter(g, f, m.get(), settings);
  }
  if (verb == "list") return List(g, *m);
  const std::string& name = f.words[1];
  if (verb == "kill") {
    s = m->Kill(name);
    if (s.ok() && !g.quiet) std::printf("spoon %s stopped (ladle env %s starts it again)\n", name.c_str(), name.c_str());
  } else if (verb == "restart") {
    s = m->Restart(name);
    if (s.ok() && !g.quiet) std::printf("spoon %s restarted\n", name.c_str());
  } else if (verb == "destroy") {
    SpoonInfo info;
    s = m->Get(name, &info);
    if (s.ok() && !f.force && !Confirm(info)) {
      std::printf("not destroyed: %s lives on\n", name.c_str());
      return 0;
    }
    if (s.ok()) s = m->Destroy(name);
    if (s.ok() && !g.quiet) std::printf("spoon %s destroyed\n", name.c_str());
  } else if (verb == "ports") {
    SpoonInfo info;
    s = m->Get(name, &info);
    if (s.ok()) {
      if (info.state != "running")
        std::fprintf(stderr, "spoon %s is %s: no ports are published until it runs (ladle env %s)\n",
                     name.c_str(), info.state.c_str(), name.c_str());
      for (const std::string& p : info.ports) std::printf("%s\n", p.c_str());
    }
  } else if (verb == "commit") {
    std::string id;
    s = m->Commit(name, f.words[2], &id);
    if (s.ok()) std::printf("%s\n", g.quiet ? id.c_str() : (f.words[2] + " " + id).c_str());
  }
  if (!s.ok()) return Fail(s);
  return 0;
}

}  // namespace ladle::runner
