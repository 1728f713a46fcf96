#include "runner/spoon/spoon.h"

#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/base/text.h"
#include "env/docker_engine.h"
#include "env/docker_hijack.h"
#include "runner/spoon/spoon_archive.h"

namespace ladle::runner::spoon {

using nlohmann::json;

namespace {

constexpr char kShellLabel[] = "ladle.spoon.shell";
// The spoon's command: idle until stopped, behind docker-init (HostConfig.Init),
// which reaps what tmux leaves and passes SIGTERM on (docs/spoons.md).
constexpr char kIdleScript[] = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done";
constexpr size_t kMaxCommandOutput = 64 * 1024;
constexpr int kStopSeconds = 3;

std::string Str(const json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

std::string Label(const json& c, const char* key) {
  if (!c.is_object() || !c.contains("Labels") || !c["Labels"].is_object()) return "";
  return Str(c["Labels"], key);
}

bool AllDigits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

bool ValidPort(const std::string& s) {
  if (!AllDigits(s) || s.size() > 5) return false;
  int n = std::atoi(s.c_str());
  return n >= 1 && n <= 65535;
}

std::string HomeDir() {
  const char* home = std::getenv("HOME");
  return home != nullptr && *home ? home : "/";
}

std::string ExpandHome(const std::string& path) {
  if (path == "~") return HomeDir();
  if (path.rfind("~/", 0) == 0) return HomeDir() + path.substr(1);
  return path;
}

std::string Absolute(const std::string& path) {
  std::string p = ExpandHome(path);
  if (!p.empty() && p[0] == '/') return p;
  char buf[4096];
  if (::getcwd(buf, sizeof(buf)) == nullptr) return p;
  return std::string(buf) + "/" + p;
}

// One container of GET /containers/json as a SpoonInfo.
SpoonInfo InfoFromSummary(const json& c) {
  SpoonInfo info;
  info.id = Str(c, "Id");
  if (c.contains("Names") && c["Names"].is_array() && !c["Names"].empty() && c["Names"][0].is_string()) {
    info.container = c["Names"][0].get<std::string>();
    if (!info.container.empty() && info.container[0] == '/') info.container.erase(0, 1);
  }
  info.state = Str(c, "State");
  info.image = Str(c, "Image");
  if (c.contains("Created") && c["Created"].is_number_integer()) info.created = c["Created"].get<int64_t>();
  info.kept_step = !Label(c, env::kKeepLabel).empty();
  info.name = info.kept_step ? info.container : Label(c, kSpoonLabel);
  info.shell = Label(c, kShellLabel);
  if (c.contains("Ports") && c["Ports"].is_array()) {
    for (const json& p : c["Ports"]) {
      if (!p.is_object() || !p.contains("PrivatePort") || !p["PrivatePort"].is_number_integer()) continue;
      std::string line = std::to_string(p["PrivatePort"].get<int>()) + "/" + Str(p, "Type");
      if (p.contains("PublicPort") && p["PublicPort"].is_number_integer()) {
        std::string ip = Str(p, "IP");
        line += " -> " + (ip.empty() ? "0.0.0.0" : ip) + ":" + std::to_string(p["PublicPort"].get<int>());
      }
      info.ports.push_back(line);
    }
  }
  std::sort(info.ports.begin(), info.ports.end());
  info.ports.erase(std::unique(info.ports.begin(), info.ports.end()), info.ports.end());
  return info;
}

Status ListRaw(const env::DockerClient& client, const json& filters, std::vector<SpoonInfo>* out) {
  env::DockerResponse r;
  Status s = client.Call("GET", "/containers/json?all=1&filters=" + PercentEncode(filters.dump()), "", &r);
  if (!s.ok()) return s;
  if (r.status != 200) return Status::Unavailable("list containers: " + r.ErrorMessage());
  json j = json::parse(r.body, nullptr, false);
  if (!j.is_array()) return Status::Unavailable("list containers: unexpected answer");
  for (const json& c : j)
    if (c.is_object()) out->push_back(InfoFromSummary(c));
  return Status::OK();
}

// "^/NAME$" for Docker's name filter (a regular expression).
std::string ExactNameFilter(const std::string& name) {
  std::string re = "^/";
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') re += '\\';
    re += c;
  }
  return re + "$";
}

Status Simple(const env::DockerClient& client, const std::string& what, const std::string& path) {
  env::DockerResponse r;
  Status s = client.Call("POST", path, "", &r);
  if (!s.ok()) return s.WithContext(what);
  if (r.status == 404) return Status::NotFound(what + ": " + r.ErrorMessage());
  if (r.status / 100 != 2) return Status::Unavailable(what + ": " + r.ErrorMessage());
  return Status::OK();
}

// The daemon's message for a port or bind it could not set up, with what to do.
std::string ExplainStartError(const std::string& message) {
  if (message.find("port is already allocated") != std::string::npos ||
      message.find("address already in use") != std::string::npos)
    return message + " (a host port of --port is taken: choose another, or CONTAINER alone for a free one)";
  return message;
}

// A status of s's code with another message (Status keeps its constructor private).
Status SameCode(const Status& s, const std::string& message) {
  switch (s.code()) {
    case Code::kOk: return Status::OK();
    case Code::kInvalid: return Status::Invalid(message);
    case Code::kNotFound: return Status::NotFound(message);
    case Code::kConflict: return Status::Conflict(message);
    case Code::kPrecondition: return Status::Precondition(message);
    case Code::kPermission: return Status::Permission(message);
    case Code::kUnauthorized: return Status::Unauthorized(message);
    case Code::kTooLarge: return Status::TooLarge(message);
    case Code::kUnavailable: return Status::Unavailable(message);
    case Code::kIoError: return Status::IoError(message);
    case Code::kCancelled: return Status::Cancelled(message);
    case Code::kFailed: return Status::Failed(message);
    case Code::kInternal: return Status::Internal(message);
  }
  return Status::Internal(message);
}

}  // namespace

Status ParsePortSpec(const std::string& spec, std::string* container_port, std::string* host_ip,
                     std::string* host_port) {
  std::string text = spec, proto = "tcp";
  if (auto slash = text.rfind('/'); slash != std::string::npos) {
    proto = text.substr(slash + 1);
    text.resize(slash);
    if (proto != "tcp" && proto != "udp" && proto != "sctp")
      return Status::Invalid("port '" + spec + "': the protocol is tcp, udp or sctp");
  }
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t colon; (colon = text.find(':', start)) != std::string::npos; start = colon + 1)
    parts.push_back(text.substr(start, colon - start));
  parts.push_back(text.substr(start));
  host_ip->clear();
  host_port->clear();
  if (parts.size() == 3) {
    *host_ip = parts[0];
    *host_port = parts[1];
  } else if (parts.size() == 2) {
    *host_port = parts[0];
  } else if (parts.size() != 1) {
    return Status::Invalid("port '" + spec + "': expected CONTAINER, HOST:CONTAINER or IP:HOST:CONTAINER");
  }
  if (!ValidPort(parts.back()))
    return Status::Invalid("port '" + spec + "': the container port is a number from 1 to 65535");
  if (!host_port->empty() && !ValidPort(*host_port))
    return Status::Invalid("port '" + spec + "': the host port is a number from 1 to 65535");
  if (parts.size() == 3 && host_ip->empty())
    return Status::Invalid("port '" + spec + "': the host address is empty");
  *container_port = parts.back() + "/" + proto;
  return Status::OK();
}

std::vector<std::string> ShellCommandFor(const std::string& name, const std::string& shell, bool tmux) {
  std::string sh = shell.empty() ? "/bin/sh" : shell;
  if (!tmux) return {"/bin/sh", "-c", "exec $1", "ladle-env", sh};
  // One exec: look for tmux in the container and run it or the shell
  // (docs/spoons.md "Pairing"). -u: tmux assumes a UTF-8 terminal.
  return {"/bin/sh", "-c",
          "if command -v tmux >/dev/null 2>&1; then exec tmux -u new -A -s \"$0\"; fi; exec $1", name, sh};
}

Status SpoonContainerConfig(const std::string& name, const std::string& prefix,
                            const SpoonSettings& settings, const CreateOptions& options,
                            bool check_host_paths, json* config) {
  if (std::string problem = SpoonNameProblem(name); !problem.empty())
    return Status::Invalid("spoon '" + name + "': " + problem);
  if (settings.image.empty())
    return Status::Invalid("no image for spoon '" + name +
                           "': give --image, or set image: in ~/.config/ladle/env.yml or .ladle/env.yml");
  json exposed = json::object(), bindings = json::object();
  for (const std::string& spec : settings.ports) {
    std::string port, ip, host;
    Status s = ParsePortSpec(spec, &port, &ip, &host);
    if (!s.ok()) return s;
    exposed[port] = json::object();
    if (!bindings.contains(port)) bindings[port] = json::array();
    bindings[port].push_back({{"HostIp", ip}, {"HostPort", host}});
  }
  json binds = json::array();
  for (const std::string& v : settings.volumes) {
    auto colon = v.find(':');
    if (colon == std::string::npos || colon == 0)
      return Status::Invalid("volume '" + v + "': expected HOST:CONTAINER[:ro]");
    std::string host = Absolute(v.substr(0, colon));
    std::string rest = v.substr(colon + 1);
    std::string target = rest, mode;
    if (auto c2 = rest.find(':'); c2 != std::string::npos) {
      target = rest.substr(0, c2);
      mode = rest.substr(c2 + 1);
      if (mode != "ro" && mode != "rw")
        return Status::Invalid("volume '" + v + "': the mode after the container path is ro or rw");
    }
    if (target.empty() || target[0] != '/')
      return Status::Invalid("volume '" + v + "': the container path must be absolute");
    struct stat st;
    if (check_host_paths && ::stat(host.c_str(), &st) != 0)
      return Status::Invalid("volume '" + v + "': the host path " + host +
                             " does not exist (create it first, or fix the path)");
    binds.push_back(host + ":" + target + (mode.empty() ? "" : ":" + mode));
  }
  json host_config = {{"Init", true}, {"PortBindings", bindings}, {"Binds", binds},
                      {"Privileged", settings.privileged}};
  if (!options.network.empty()) host_config["NetworkMode"] = options.network;
  if (!settings.cpus.empty()) {
    int64_t nano = 0;
    Status s = env::ParseNanoCpus(settings.cpus, &nano);
    if (!s.ok()) return s;
    host_config["NanoCpus"] = nano;
  }
  if (!settings.memory.empty()) {
    int64_t bytes = 0;
    Status s = env::ParseMemoryBytes(settings.memory, &bytes);
    if (!s.ok()) return s;
    host_config["Memory"] = bytes;
  }
  if (!settings.dns.empty()) host_config["Dns"] = settings.dns;
  json env_list = json::array();
  for (const auto& [k, v] : settings.env) {
    if (k.empty() || k.find('=') != std::string::npos || k.find('\0') != std::string::npos)
      return Status::Invalid("env '" + k + "': a variable name is not empty and has no '='");
    env_list.push_back(k + "=" + v);
  }
  json labels = json::object();
  for (const auto& [k, v] : options.labels) labels[k] = v;
  labels[kSpoonLabel] = name;
  labels[kSpoonPrefixLabel] = prefix;
  labels[kShellLabel] = settings.shell;
  *config = {{"Image", settings.image},
             {"Hostname", name},
             {"Entrypoint", json::array({""})},
             {"Cmd", {"/bin/sh", "-c", kIdleScript}},
             {"Env", env_list},
             {"Labels", labels},
             {"Tty", false},
             {"OpenStdin", false},
             {"ExposedPorts", exposed},
             {"HostConfig", host_config}};
  if (!options.workdir.empty()) (*config)["WorkingDir"] = options.workdir;
  return Status::OK();
}

// --- SpoonManager ---------------------------------------------------------------

SpoonManager::SpoonManager(std::shared_ptr<const env::DockerClient> client, std::string prefix)
    : client_(std::move(client)), prefix_(std::move(prefix)) {}

Status SpoonManager::Open(const std::string& docker_host, const std::string& prefix,
                          std::chrono::milliseconds timeout, std::unique_ptr<SpoonManager>* manager) {
  env::DockerEndpoint ep;
  Status s = env::ParseDockerHost(docker_host.empty() ? env::DockerHostFromEnvironment() : docker_host, &ep);
  if (!s.ok()) return s;
  std::unique_ptr<env::DockerClient> client;
  s = env::DockerClient::Connect(ep, timeout, &client);
  if (!s.ok()) return s;
  manager->reset(new SpoonManager(std::shared_ptr<const env::DockerClient>(std::move(client)), prefix));
  return Status::OK();
}

Status SpoonManager::Find(const std::string& name, SpoonInfo* info, bool* found) const {
  *found = false;
  std::vector<SpoonInfo> list;
  Status s = ListRaw(*client_, {{"name", {ExactNameFilter(prefix_ + name)}}}, &list);
  if (!s.ok()) return s;
  for (SpoonInfo& c : list) {
    if (c.container != prefix_ + name) continue;
    if (c.name.empty() && !c.kept_step)
      return Status::Conflict("container " + c.container +
                              " exists and is not a spoon of ladle's (no label " + kSpoonLabel +
                              "): rename or remove it, or use another --prefix");
    *info = c;
    info->name = name;
    *found = true;
    return Status::OK();
  }
  // A step container that `keep:` preserved, by its own name (docs/backends.md "keep").
  list.clear();
  s = ListRaw(*client_, {{"name", {ExactNameFilter(name)}}, {"label", {env::kKeepLabel}}}, &list);
  if (!s.ok()) return s;
  for (SpoonInfo& c : list) {
    if (c.container != name) continue;
    *info = c;
    *found = true;
    return Status::OK();
  }
  return Status::OK();
}

Status SpoonManager::Get(const std::string& name, SpoonInfo* info) const {
  bool found = false;
  Status s = Find(name, info, &found);
  if (!s.ok()) return s;
  if (!found)
    return Status::NotFound("no spoon named '" + name + "' (container " + prefix_ + name +
                            "); `ladle env list` shows them, `ladle env " + name + " --image IMAGE` makes it");
  return Status::OK();
}

Status SpoonManager::Create(const std::string& name, const SpoonSettings& settings,
                            const CreateOptions& options, std::string* id) {
  auto note = [&](const std::string& line) {
    if (options.progress) options.progress(line);
  };
  auto cancelled = [&] { return options.cancelled && options.cancelled(); };
  const std::string container = prefix_ + name;
  json config;
  bool local = client_->endpoint().host.rfind("unix://", 0) == 0;
  Status s = SpoonContainerConfig(name, prefix_, settings, options, local, &config);
  if (!s.ok()) return s;
  note("creating spoon " + name + " (container " + container + ") from " + settings.image);
  s = client_->CreateContainer(container, config, id);
  if (s.code() == Code::kNotFound && s.message().find("image") != std::string::npos) {
    note("pulling " + settings.image);
    s = client_->PullImage(settings.image, note);
    if (!s.ok()) return s;
    if (cancelled()) return Status::Cancelled("creating spoon " + name + " cancelled");
    s = client_->CreateContainer(container, config, id);
  }
  if (s.code() == Code::kConflict)
    return Status::Conflict("spoon " + name + ": a container named " + container +
                            " already exists (`ladle env list`; destroy it with `ladle env destroy " + name + "`)");
  if (!s.ok()) return s.WithContext("create spoon " + name);
  s = client_->StartContainer(*id);
  if (!s.ok()) s = Status::Unavailable("start spoon " + name + ": " + ExplainStartError(s.message()));
  if (s.ok() && cancelled()) s = Status::Cancelled("creating spoon " + name + " cancelled");
  if (s.ok()) s = Provision(*id, settings, options);
  if (s.ok()) return Status::OK();
  if (options.keep) {
    return SameCode(s, s.message() + "\nkept the half-made container " + container +
                                " (--keep): look inside with `ladle env " + name +
                                "`, remove it with `ladle env destroy " + name + " --force`");
  }
  Status r = client_->RemoveContainer(*id);
  std::string what = r.ok() ? "removed the half-made container " + container + " (--keep keeps it)"
                            : "could not remove the half-made container " + container + ": " + r.message();
  return SameCode(s, s.message() + "\n" + what);
}

Status SpoonManager::Provision(const std::string& id, const SpoonSettings& settings,
                               const CreateOptions& options) {
  auto cancelled = [&] { return options.cancelled && options.cancelled(); };
  for (const CopySpec& c : settings.copy) {
    if (options.progress) options.progress("copying " + c.from + " to " + c.to);
    Status s = CopyIn(id, c.from, c.to);
    if (!s.ok()) return s.WithContext("copy " + c.from + " to " + c.to);
    if (cancelled()) return Status::Cancelled("creating the spoon cancelled");
  }
  for (size_t i = 0; i < settings.run_on_create.size(); ++i) {
    const std::string& command = settings.run_on_create[i];
    if (options.progress) options.progress("running: " + command);
    int code = 0;
    std::string output;
    Status s = RunCommand(id, command, options.workdir, &code, &output, options.cancelled);
    if (!s.ok()) return s.WithContext("run_on_create command " + std::to_string(i + 1) + " '" + command + "'");
    if (code != 0) {
      std::string shown = output.empty() ? "(no output)" : output;
      if (!shown.empty() && shown.back() != '\n') shown += '\n';
      return Status::Failed("run_on_create command " + std::to_string(i + 1) + " '" + command +
                            "' failed with exit code " + std::to_string(code) + "; its output:\n" + shown +
                            "(the spoon was not created)");
    }
  }
  return Status::OK();
}

Status SpoonManager::StartIfStopped(SpoonInfo* info) const {
  if (info->state == "running") return Status::OK();
  Status s = client_->StartContainer(info->id);
  if (!s.ok()) return Status::Unavailable("start spoon " + info->name + ": " + ExplainStartError(s.message()));
  info->state = "running";
  return Status::OK();
}

Status SpoonManager::Ensure(const std::string& name, const SpoonSettings& settings,
                            const CreateOptions& options, SpoonInfo* info) {
  bool found = false;
  Status s = Find(name, info, &found);
  if (!s.ok()) return s;
  if (found) {
    if (info->state != "running" && options.progress) options.progress("starting " + info->container);
    return StartIfStopped(info);
  }
  if (std::string problem = SpoonNameProblem(name); !problem.empty())
    return Status::Invalid("spoon '" + name + "': " + problem);
  if (settings.image.empty())
    return Status::NotFound("no spoon named '" + name + "' (container " + prefix_ + name +
                            "), and no image to create it from: give --image, or set image: in "
                            "~/.config/ladle/env.yml or .ladle/env.yml (`ladle env list` shows the spoons)");
  std::string id;
  s = Create(name, settings, options, &id);
  // Made by someone else meanwhile (two `ladle env NAME` at once): theirs.
  if (s.code() == Code::kConflict && Find(name, info, &found).ok() && found) return StartIfStopped(info);
  if (!s.ok()) return s;
  // What Find would say, without another round trip (ports are read when asked).
  *info = SpoonInfo();
  info->name = name;
  info->container = prefix_ + name;
  info->id = id;
  info->state = "running";
  info->image = settings.image;
  info->shell = settings.shell;
  return Status::OK();
}

Status SpoonManager::CopyIn(const std::string& id, const std::string& host_path,
                            const std::string& container_path) {
  std::string from = Absolute(host_path);
  std::string to = container_path;
  if (to.empty() || to[0] != '/')
    return Status::Invalid("copy to '" + container_path + "': the container path must be absolute");
  if (to.size() > 1 && to.back() == '/') {
    std::string base = from;
    while (base.size() > 1 && base.back() == '/') base.pop_back();
    to += base.substr(base.rfind('/') + 1);
  }
  while (to.size() > 1 && to.back() == '/') to.pop_back();
  if (to == "/") return Status::Invalid("copy to '/': name a path below the root");
  struct stat st;
  if (::lstat(from.c_str(), &st) != 0)
    return Status::Invalid("copy: the host path " + from + " does not exist");
  // The deepest folder that exists in the container: the archive is
  // extracted there and carries the missing folders above the target.
  std::string base = to.substr(0, to.rfind('/'));
  if (base.empty()) base = "/";
  while (base != "/") {
    bool exists = false;
    Status s = env::PathExists(*client_, id, base, &exists);
    if (!s.ok()) return s;
    if (exists) break;
    base = base.substr(0, base.rfind('/'));
    if (base.empty()) base = "/";
  }
  std::string relative = to.substr(base == "/" ? 1 : base.size() + 1);
  std::string tar;
  Status s = BuildCopyArchive(from, relative, &tar);
  if (!s.ok()) return s;
  return env::PutArchive(*client_, id, base, tar);
}

Status SpoonManager::RunCommand(const std::string& id, const std::string& command, const std::string& workdir,
                                int* exit_code, std::string* output,
                                const std::function<bool()>& cancelled) const {
  env::ExecConfig exec;
  exec.cmd = {"/bin/sh", "-c", command};
  exec.working_dir = workdir;
  std::string exec_id;
  Status s = env::ExecCreate(*client_, id, exec, &exec_id);
  if (!s.ok()) return s;
  std::unique_ptr<env::HijackedStream> stream;
  s = env::HijackedStream::StartExec(*client_, exec_id, false, &stream);
  if (!s.ok()) return s;
  output->clear();
  env::LogDemuxer demux([&](env::OutputStream, std::string_view data) {
    output->append(data.data(), data.size());
    if (output->size() > 2 * kMaxCommandOutput) output->erase(0, output->size() - kMaxCommandOutput);
  });
  char buf[16384];
  for (;;) {
    size_t n = 0;
    bool eof = false;
    s = stream->Read(buf, sizeof(buf), &n, &eof);
    if (!s.ok()) return s;
    if (eof) break;
    if (n > 0) {
      demux.Feed(std::string_view(buf, n));
      continue;
    }
    if (cancelled && cancelled()) return Status::Cancelled("cancelled while running '" + command + "'");
    pollfd p{stream->fd(), POLLIN, 0};
    ::poll(&p, 1, 200);
  }
  if (output->size() > kMaxCommandOutput) output->erase(0, output->size() - kMaxCommandOutput);
  // The stream ends a moment before the daemon records the exit code.
  for (int i = 0; i < 200; ++i) {
    bool running = false;
    s = env::ExecInspect(*client_, exec_id, &running, exit_code);
    if (!s.ok()) return s;
    if (!running) return Status::OK();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return Status::Unavailable("'" + command + "' closed its output but did not end within 2 s");
}

Status SpoonManager::List(std::vector<SpoonInfo>* out) const {
  out->clear();
  std::vector<SpoonInfo> spoons, kept;
  Status s = ListRaw(*client_, {{"label", {std::string(kSpoonPrefixLabel) + "=" + prefix_}}}, &spoons);
  if (!s.ok()) return s;
  s = ListRaw(*client_, {{"label", {env::kKeepLabel}}}, &kept);
  if (!s.ok()) return s;
  for (SpoonInfo& i : spoons)
    if (!i.kept_step && i.container == prefix_ + i.name) out->push_back(std::move(i));
  for (SpoonInfo& i : kept) out->push_back(std::move(i));
  std::sort(out->begin(), out->end(), [](const SpoonInfo& a, const SpoonInfo& b) {
    return std::make_pair(a.kept_step, a.name) < std::make_pair(b.kept_step, b.name);
  });
  return Status::OK();
}

Status SpoonManager::Kill(const std::string& name) const {
  SpoonInfo info;
  Status s = Get(name, &info);
  if (!s.ok()) return s;
  return Simple(*client_, "stop " + info.container,
                "/containers/" + info.id + "/stop?t=" + std::to_string(kStopSeconds));
}

Status SpoonManager::Restart(const std::string& name) const {
  SpoonInfo info;
  Status s = Get(name, &info);
  if (!s.ok()) return s;
  env::DockerResponse r;
  s = client_->Call("POST", "/containers/" + info.id + "/restart?t=" + std::to_string(kStopSeconds), "", &r);
  if (!s.ok()) return s.WithContext("restart " + info.container);
  if (r.status / 100 != 2)
    return Status::Unavailable("restart " + info.container + ": " + ExplainStartError(r.ErrorMessage()));
  return Status::OK();
}

Status SpoonManager::Destroy(const std::string& name) const {
  SpoonInfo info;
  Status s = Get(name, &info);
  if (!s.ok()) return s;
  s = client_->RemoveContainer(info.id);
  if (!s.ok()) return s.WithContext("destroy " + info.container);
  // A kept step container's committed image goes with it, as with `ladle
  // prune --kept` (docs/backends.md "keep"); one still used by something stays.
  if (info.kept_step && !info.image.empty()) client_->RemoveImage(info.image).IgnoreError();
  return Status::OK();
}

Status SpoonManager::Ports(const std::string& name, std::vector<std::string>* ports) const {
  SpoonInfo info;
  Status s = Get(name, &info);
  if (!s.ok()) return s;
  *ports = info.ports;
  return Status::OK();
}

Status SpoonManager::Commit(const std::string& name, const std::string& image, std::string* image_id) const {
  SpoonInfo info;
  Status s = Get(name, &info);
  if (!s.ok()) return s;
  std::string repo, tag;
  env::SplitImageReference(image, &repo, &tag);
  if (repo.empty() || image.find('@') != std::string::npos)
    return Status::Invalid("commit: '" + image + "' is not REPOSITORY[:TAG]");
  for (char c : repo)
    if (std::isupper(static_cast<unsigned char>(c)) || std::isspace(static_cast<unsigned char>(c)))
      return Status::Invalid("commit: '" + image + "': a repository name is lower-case, without spaces");
  env::DockerResponse r;
  s = client_->Call("POST", "/commit?container=" + PercentEncode(info.id) + "&repo=" + PercentEncode(repo) +
                                "&tag=" + PercentEncode(tag),
                    "{}", &r);
  if (!s.ok()) return s.WithContext("commit " + info.container);
  if (r.status / 100 != 2) {
    std::string msg = "commit " + info.container + " as " + image + ": " + r.ErrorMessage();
    return r.status == 400 ? Status::Invalid(msg) : Status::Unavailable(msg);
  }
  json j = json::parse(r.body, nullptr, false);
  *image_id = Str(j, "Id");
  return Status::OK();
}

}  // namespace ladle::runner::spoon
