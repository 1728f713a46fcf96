#include "env/docker_services.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <thread>
#include <utility>

#include "env/docker_engine.h"

namespace ladle::env {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// Between two readiness checks: a port probe costs microseconds, an exec a
// few daemon round trips.
constexpr auto kPortProbeInterval = std::chrono::milliseconds(20);
constexpr auto kCommandInterval = std::chrono::milliseconds(200);
constexpr auto kConnectTimeoutMs = 200;

std::string Suffix() {
  static thread_local std::mt19937 rng{std::random_device{}()};
  static const char kHex[] = "0123456789abcdef";
  std::string out(6, '0');
  for (char& c : out) c = kHex[rng() % 16];
  return out;
}

std::string Ms(std::chrono::milliseconds d) {
  if (d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + "s";
  return std::to_string(d.count()) + "ms";
}

// A non-blocking connect to 127.0.0.1:port, waited for up to kConnectTimeoutMs.
bool ConnectLoopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  if (!ok && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    int err = 0;
    socklen_t len = sizeof err;
    ok = ::poll(&p, 1, kConnectTimeoutMs) == 1 &&
         ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
  }
  ::close(fd);
  return ok;
}

// The connect, from a thread of its own that joins the namespace first
// (setns changes the network namespace of the calling thread only). *error:
// the errno that kept it from joining, 0 when it joined.
bool ConnectInNamespace(int pid, int port, int* error) {
  bool open = false;
  *error = 0;
  std::thread probe([&] {
    const std::string path = "/proc/" + std::to_string(pid) + "/ns/net";
    int ns = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0 || ::setns(ns, CLONE_NEWNET) != 0) {
      *error = errno;
      if (ns >= 0) ::close(ns);
      return;
    }
    ::close(ns);
    open = ConnectLoopback(port);
  });
  probe.join();
  return open;
}

// LISTEN sockets on `port` in /proc/PID/net/tcp or tcp6 (what the process's
// namespace has). False with *readable false when neither file can be read.
bool ListeningInProc(int pid, int port, bool* readable) {
  *readable = false;
  bool found = false;
  for (const char* file : {"tcp", "tcp6"}) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/net/" + file);
    if (!in) continue;
    *readable = true;
    std::string line;
    std::getline(in, line);  // the header
    while (!found && std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state;
      fields >> slot >> local >> remote >> state;
      size_t colon = local.rfind(':');
      if (colon == std::string::npos || state != "0A") continue;  // 0A: LISTEN
      found = std::strtol(local.c_str() + colon + 1, nullptr, 16) == port;
    }
  }
  return found;
}

json EnvList(const ServiceSpec& service) {
  json env = json::array();
  for (const auto& [k, v] : service.env) env.push_back(k + "=" + v);
  return env;
}

}  // namespace

json ServiceContainerConfig(const StepSpec& spec, size_t index, const std::string& network_mode) {
  const ServiceSpec& service = spec.services[index];
  json labels = json::object();
  for (const auto& [k, v] : spec.labels) labels[k] = v;
  labels[kServiceLabel] = service.name;
  json host = {{"Init", true}, {"NetworkMode", network_mode}};
  if (index == 0) {
    // The namespace's owner holds what joined containers may not set.
    json hosts = json::array();
    for (const ServiceSpec& s : spec.services) hosts.push_back(s.name + ":127.0.0.1");
    host["ExtraHosts"] = hosts;
    if (!spec.resources.dns.empty()) host["Dns"] = spec.resources.dns;
  }
  json config = {{"Image", service.image}, {"Env", EnvList(service)}, {"Labels", labels},
                 {"Tty", false},           {"OpenStdin", false},      {"HostConfig", host}};
  if (service.shell && !service.command.empty()) {
    config["Entrypoint"] = json::array({""});
    config["Cmd"] = {"sh", "-c", service.command.front()};
  } else if (!service.command.empty()) {
    config["Cmd"] = service.command;
  }
  return config;
}

Status ProbePortInNamespace(int pid, int port, bool* open) {
  int error = 0;
  *open = ConnectInNamespace(pid, port, &error);
  if (error == 0) return Status::OK();
  bool readable = false;
  *open = ListeningInProc(pid, port, &readable);
  if (readable) return Status::OK();
  return Status::FromErrno("probe port " + std::to_string(port) + " in the namespace of pid " +
                               std::to_string(pid) +
                               " (port readiness needs the daemon on this machine; use "
                               "ready: command instead)",
                           error);
}

// --- DockerServices ---------------------------------------------------------

Status DockerServices::Start(std::shared_ptr<const DockerClient> client, const StepSpec& spec,
                             const PullFunction& pull, std::unique_ptr<DockerServices>* out) {
  std::unique_ptr<DockerServices> services(new DockerServices(std::move(client), spec));
  for (size_t i = 0; i < spec.services.size(); ++i) {
    Status s = services->CreateAndStart(i, pull);
    if (!s.ok()) return s;  // the destructor removes those started
  }
  for (const Service& service : services->services_) {
    bool running = false;
    int pid = 0, code = 0;
    Status s = services->Inspect(service.id, &running, &pid, &code);
    if (s.ok() && !running)
      s = services->NotReady(service, "exited with code " + std::to_string(code) +
                                          " before it was ready");
    if (s.ok()) s = services->WaitReady(service, pid);
    if (!s.ok()) return s;
  }
  *out = std::move(services);
  return Status::OK();
}

DockerServices::~DockerServices() { Remove().IgnoreError(); }  // nobody left to tell

std::string DockerServices::NetworkMode() const {
  return services_.empty() ? "" : "container:" + services_.front().id;
}

Status DockerServices::CreateAndStart(size_t index, const PullFunction& pull) {
  const ServiceSpec& spec = spec_.services[index];
  const std::string network =
      index > 0 ? NetworkMode()
                : spec_.resources.network.empty() ? "none" : spec_.resources.network;
  const json config = ServiceContainerConfig(spec_, index, network);
  Service service{&spec, "", ""};
  bool pulled = false;
  for (int attempt = 0;; ++attempt) {
    service.name = ContainerName(spec_.id, "svc-" + spec.name + "-" + Suffix());
    Status s = client_->CreateContainer(service.name, config, &service.id);
    if (s.ok()) break;
    if (s.code() == Code::kConflict && attempt < 3) continue;  // the random suffix collided
    if (s.code() == Code::kNotFound && !pulled && pull) {
      pulled = true;
      s = pull(spec.image, s);
      if (s.ok()) continue;
    }
    return s.WithContext("create service '" + spec.name + "' (image " + spec.image + ")");
  }
  services_.push_back(service);
  Status s = client_->StartContainer(service.id);
  if (!s.ok()) return s.WithContext("start service '" + spec.name + "'");
  return Status::OK();
}

Status DockerServices::Inspect(const std::string& id, bool* running, int* pid,
                               int* exit_code) const {
  DockerResponse r;
  Status s = client_->Call("GET", "/containers/" + id + "/json", "", &r);
  if (!s.ok()) return s;
  if (r.status != 200) return Status::Unavailable("inspect container: " + r.ErrorMessage());
  json j = json::parse(r.body, nullptr, false);
  if (j.is_discarded() || !j.contains("State") || !j["State"].is_object())
    return Status::Unavailable("inspect container: the daemon's answer has no State");
  const json& state = j["State"];
  *running = state.value("Running", false);
  *pid = state.value("Pid", 0);
  *exit_code = state.value("ExitCode", -1);
  return Status::OK();
}

Status DockerServices::WaitReady(const Service& service, int pid) {
  const ServiceSpec& spec = *service.spec;
  if (spec.ready_port == 0 && spec.ready_command.empty()) return Status::OK();
  const auto deadline = Clock::now() + spec.ready_timeout;
  // The daemon records an exit a moment after the process is gone: a probe
  // that failed because the pid vanished is asked again for this long before
  // its error counts.
  const auto kExitNewsLag = std::chrono::seconds(2);
  std::optional<Clock::time_point> probe_failing_since;
  while (true) {
    if (spec_.cancelled && spec_.cancelled())
      return Status::Cancelled("cancelled while service '" + spec.name + "' was starting");
    bool ready = false;
    Status probe = CheckReady(service, pid, &ready);
    if (probe.ok() && ready) return probe;
    // A probe also fails when the service is gone: its exit is the news.
    bool running = false;
    int ignored_pid = 0, code = 0;
    Status s = Inspect(service.id, &running, &ignored_pid, &code);
    if (!s.ok()) return s.WithContext("service '" + spec.name + "'");
    if (running && !probe.ok()) {
      if (!probe_failing_since) probe_failing_since = Clock::now();
      if (Clock::now() - *probe_failing_since >= kExitNewsLag) return probe;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    probe_failing_since.reset();
    if (!running)
      return NotReady(service, "exited with code " + std::to_string(code) + " before it was ready");
    if (Clock::now() >= deadline) {
      std::string what = spec.ready_port ? "nothing listens on port " + std::to_string(spec.ready_port)
                                         : "'" + spec.ready_command + "' did not succeed";
      return NotReady(service, "was not ready after " + Ms(spec.ready_timeout) + ": " + what);
    }
    std::this_thread::sleep_for(spec.ready_port ? kPortProbeInterval : kCommandInterval);
  }
}

Status DockerServices::CheckReady(const Service& service, int pid, bool* ready) {
  const ServiceSpec& spec = *service.spec;
  if (spec.ready_port != 0) {
    Status s = ProbePortInNamespace(pid, spec.ready_port, ready);
    return s.ok() ? s : s.WithContext("service '" + spec.name + "'");
  }
  return RunReadyCommand(service, std::chrono::seconds(10), ready);
}

// `sh -c READY_COMMAND` in the service's container: an exec started
// detached and polled, so no hijacked connection is needed.
Status DockerServices::RunReadyCommand(const Service& service, std::chrono::milliseconds budget,
                                       bool* ok) {
  *ok = false;
  const std::string what = "service '" + service.spec->name + "': readiness command";
  json body = {{"Cmd", {"sh", "-c", service.spec->ready_command}},
               {"AttachStdout", false},
               {"AttachStderr", false}};
  DockerResponse r;
  Status s = client_->Call("POST", "/containers/" + service.id + "/exec", body.dump(), &r);
  if (!s.ok()) return s.WithContext(what);
  if (r.status == 409) return Status::OK();  // not running (yet, or any more): the caller sees
  if (r.status != 201) return Status::Unavailable(what + ": " + r.ErrorMessage());
  json created = json::parse(r.body, nullptr, false);
  const std::string exec = created.is_object() ? created.value("Id", "") : "";
  if (exec.empty()) return Status::Unavailable(what + ": the daemon's answer has no Id");
  s = client_->Call("POST", "/exec/" + exec + "/start", R"({"Detach":true,"Tty":false})", &r);
  if (!s.ok()) return s.WithContext(what);
  if (r.status != 200) return Status::OK();  // e.g. the container stopped meanwhile
  const auto deadline = Clock::now() + budget;
  while (Clock::now() < deadline) {
    s = client_->Call("GET", "/exec/" + exec + "/json", "", &r);
    if (!s.ok()) return s.WithContext(what);
    json state = json::parse(r.body, nullptr, false);
    if (r.status == 200 && state.is_object() && !state.value("Running", true)) {
      *ok = state.contains("ExitCode") && state["ExitCode"].is_number_integer() &&
            state["ExitCode"].get<int>() == 0;
      return Status::OK();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return Status::OK();  // still running: not ready; it ends with the container
}

Status DockerServices::NotReady(const Service& service, const std::string& why) const {
  std::string text = "service '" + service.spec->name + "' " + why;
  std::vector<std::string> lines = LastLines(service.id, kServiceFailureLines);
  if (lines.empty()) {
    text += "; it wrote nothing";
  } else {
    text += "; its last lines:";
    for (const std::string& line : lines) text += "\n  " + line;
  }
  // The step's own failure, not the daemon's (not an outside failure).
  return Status::Failed(text);
}

std::vector<std::string> DockerServices::LastLines(const std::string& id, int count) const {
  DockerResponse r;
  std::vector<std::string> lines;
  Status s = client_->Call("GET",
                           "/containers/" + id + "/logs?stdout=1&stderr=1&tail=" +
                               std::to_string(count),
                           "", &r, std::chrono::seconds(10));
  if (!s.ok() || r.status != 200) return lines;
  std::string text;
  LogDemuxer demux([&](OutputStream, std::string_view data) {
    if (text.size() < (1u << 20)) text.append(data);  // bounded whatever the daemon sends
  });
  demux.Feed(r.body);
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

void DockerServices::WriteLogs(OutputSink* sink) const {
  if (sink == nullptr) return;
  for (const Service& service : services_) {
    const std::string prefix = "[service " + service.spec->name + "] ";
    for (const std::string& line : LastLines(service.id, kServiceLogLines))
      sink->Write(OutputStream::kStdout, prefix + line + "\n");
  }
}

Status DockerServices::Remove() {
  if (removed_) return Status::OK();
  Status first;
  // The step's namespace owner last: the others joined it.
  for (auto it = services_.rbegin(); it != services_.rend(); ++it) {
    Status s = client_->RemoveContainer(it->id);
    if (!s.ok() && first.ok()) first = s.WithContext("remove service container " + it->name);
  }
  if (first.ok()) removed_ = true;
  return first;
}

}  // namespace ladle::env
