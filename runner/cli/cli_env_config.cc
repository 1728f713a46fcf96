// `ladle env config` (the merged settings and where each came from), the
// options of `env config` and `env from-step`, and `ladle env NAME
// --forward` (docs/spoons.md "Profiles and env.yml", "A shared host over ssh").
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "env/docker_client.h"
#include "env/ssh_tunnel.h"
#include "runner/cli/cli_commands.h"
#include "runner/spoon/env_config.h"
#include "runner/spoon/spoon.h"

namespace ladle::runner {
namespace {

std::string Joined(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}

bool ParsePort(const std::string& text, int* port) {
  if (text.empty() || text.size() > 5 || text.find_first_not_of("0123456789") != std::string::npos)
    return false;
  *port = std::atoi(text.c_str());
  return *port >= 1 && *port <= 65535;
}

// The published host address of the spoon's CONTAINER port, from
// "8080/tcp -> 0.0.0.0:32768"; false when it is not published.
bool PublishedPort(const spoon::SpoonInfo& info, int container_port, std::string* host_ip,
                   int* host_port) {
  std::string want = std::to_string(container_port) + "/tcp -> ";
  for (const std::string& p : info.ports) {
    if (p.rfind(want, 0) != 0) continue;
    std::string addr = p.substr(want.size());
    std::size_t colon = addr.rfind(':');
    if (colon == std::string::npos || !ParsePort(addr.substr(colon + 1), host_port)) continue;
    *host_ip = addr.substr(0, colon);
    if (*host_ip == "0.0.0.0" || *host_ip == "::" || *host_ip == "[::]" || host_ip->empty())
      *host_ip = "127.0.0.1";
    return true;
  }
  return false;
}

}  // namespace

void AddEnvExtraOptions(CLI::App* env, EnvFlags* f) {
  env->add_option("--name", f->spoon_name, "from-step: the spoon's name (default: the step's)");
  env->add_flag("--with-secrets", f->with_secrets,
                "from-step: pass the step's secrets too (from --env and the environment)");
  env->add_option("--forward", f->forwards,
                  "With an ssh:// host: forward the spoon's port to localhost, [LOCAL:]PORT (repeatable)")
      ->allow_extra_args(false);
}

// docs/spoons.md "Profiles and env.yml": `ladle env config [--profile P]`.
int CmdEnvConfig(const GlobalFlags& g, const EnvFlags& f) {
  if (f.words.size() != 1) {
    std::fprintf(stderr, "ladle: usage: ladle env config [--profile P] [flags]\n");
    return 2;
  }
  spoon::SpoonSettings settings;
  Status s = LoadEnvSettings(f, &settings);
  if (!s.ok()) return Fail(s);
  // Which files exist and which profiles they hold (read again, without
  // the profile and flags, which cannot change either).
  spoon::SettingsSources plain;
  spoon::SpoonSettings unused;
  spoon::SettingsReport report;
  s = spoon::LoadSpoonSettings(plain, &unused, &report);
  if (!s.ok()) return Fail(s);
  if (g.json) {
    nlohmann::json copy = nlohmann::json::array();
    for (const spoon::CopySpec& c : settings.copy) copy.push_back({{"from", c.from}, {"to", c.to}});
    nlohmann::json out = {
        {"files", report.files_read},
        {"profiles", report.profiles},
        {"profile", f.profile.empty() ? nlohmann::json(nullptr) : nlohmann::json(f.profile)},
        {"settings",
         {{"image", settings.image},
          {"prefix", settings.prefix},
          {"shell", settings.shell},
          {"host", settings.docker_host.empty() ? env::kDefaultDockerHost : settings.docker_host},
          {"ports", settings.ports},
          {"volumes", settings.volumes},
          {"cpus", settings.cpus},
          {"memory", settings.memory},
          {"dns", settings.dns},
          {"privileged", settings.privileged},
          {"env", settings.env},
          {"copy", copy},
          {"run_on_create", settings.run_on_create}}},
        {"origin", settings.origin}};
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::string files = report.files_read.empty()
                          ? "none (" + spoon::UserSettingsFile(plain) + ", .ladle/env.yml)"
                          : Joined(report.files_read);
  std::printf("# files: %s\n", files.c_str());
  std::printf("# profiles: %s\n", report.profiles.empty() ? "none" : Joined(report.profiles).c_str());
  if (!f.profile.empty()) std::printf("# profile: %s\n", f.profile.c_str());
  std::fputs(spoon::FormatSpoonSettings(settings).c_str(), stdout);
  return 0;
}

Status ForwardSpoonPorts(const EnvFlags& f, const std::string& docker_host,
                         const spoon::SpoonInfo& info, std::vector<std::shared_ptr<void>>* keep) {
  if (f.forwards.empty()) return Status::OK();
  std::string host = docker_host.empty() ? env::DockerHostFromEnvironment() : docker_host;
  if (host.rfind("ssh://", 0) != 0)
    return Status::Invalid("--forward needs an ssh:// host, not " + host +
                           " (there the spoon's published ports are reachable as they are: "
                           "ladle env ports " + info.name + ")");
  env::SshTarget target;
  Status s = env::ParseSshUrl(host, "--host", &target);
  if (!s.ok()) return s;
  for (const std::string& spec : f.forwards) {
    std::size_t colon = spec.find(':');
    int local = 0, port = 0;
    bool ok = colon == std::string::npos
                  ? ParsePort(spec, &port) && ParsePort(spec, &local)
                  : ParsePort(spec.substr(0, colon), &local) && ParsePort(spec.substr(colon + 1), &port);
    if (!ok) return Status::Invalid("--forward '" + spec + "': expected [LOCAL:]PORT, ports 1-65535");
    std::string remote_ip = "127.0.0.1";
    int remote_port = port;
    PublishedPort(info, port, &remote_ip, &remote_port);
    std::unique_ptr<env::SshTunnel> tunnel;
    s = env::SshTunnel::ForwardPort(target, local, remote_ip, remote_port,
                                    env::SshTunnel::kDefaultTimeout, &tunnel);
    if (!s.ok()) return s.WithContext("--forward " + spec);
    std::fprintf(stderr, "ladle: forwarding 127.0.0.1:%d here to port %d of %s\n", local, port,
                   info.name.c_str());
    keep->push_back(std::shared_ptr<void>(std::move(tunnel)));
  }
  return Status::OK();
}

}  // namespace ladle::runner
