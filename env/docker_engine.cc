#include "env/docker_engine.h"
#include "core/base/text.h"
#include "env/docker_services.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <utility>

namespace ladle::env {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr size_t kMaxNameBody = 100;  // keeps names readable in `docker ps`
constexpr char kHostsMount[] = "/etc/hosts";  // docs/backends.md "Network none"

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

std::string RandomSuffix() {
  static thread_local std::mt19937 rng{std::random_device{}()};
  static const char kHex[] = "0123456789abcdef";
  std::string out(6, '0');
  for (char& c : out) c = kHex[rng() % 16];
  return out;
}

// Reads a non-negative decimal ("123", "1.5", ".5") at the start of `s`;
// `end` is where it stops. False when there is none.
bool ParseDecimal(const std::string& s, size_t* end, long double* value) {
  size_t i = 0, digits = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
  if (i < s.size() && s[i] == '.') {
    size_t frac = 0;
    for (++i; i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])); ++i) ++frac;
    if (frac == 0) return false;
    digits += frac;
  }
  if (digits == 0) return false;
  *value = std::strtold(s.substr(0, i).c_str(), nullptr);  // no exceptions, even for 10^5000
  *end = i;
  return true;
}

// value * multiplier, rounded, when it is a positive int64.
bool ToPositiveInt64(long double value, long double multiplier, int64_t* out) {
  long double scaled = std::round(value * multiplier);
  if (scaled < 1 || scaled > static_cast<long double>(std::numeric_limits<int64_t>::max())) return false;
  *out = static_cast<int64_t>(scaled);
  return true;
}

bool IsImageReference(const std::string& image) {
  if (image.empty()) return false;
  for (unsigned char c : image)
    if (!std::isalnum(c) && std::string("._/:@-").find(static_cast<char>(c)) == std::string::npos) return false;
  return true;
}

Status CheckEnvironment(const StepSpec& spec) {
  Status s = CheckStepVariables(spec);
  if (!s.ok()) return s;
  // Sourced by the shell: a secret's name must be one it can assign.
  for (const auto& [name, value] : spec.secrets) {
    if (std::isdigit(static_cast<unsigned char>(name[0])) ||
        std::any_of(name.begin(), name.end(), [](char c) {
          return !std::isalnum(static_cast<unsigned char>(c)) && c != '_';
        }))
      return Status::Invalid("invalid secret name '" + name + "'");
  }
  return Status::OK();
}

bool IsTmpfs(const std::string& dir) {
  struct statfs fs;
  return !dir.empty() && ::statfs(dir.c_str(), &fs) == 0 &&
         static_cast<unsigned long>(fs.f_type) == TMPFS_MAGIC;
}

// 'VALUE' for a shell: single quotes, each ' written as '\''.
std::string ShellQuote(const std::string& value) {
  std::string out = "'";
  for (char c : value) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// "a/../b" stays inside the workspace; "/x", "../x" and "a/../../x" do not.
Status CheckWorkdir(const std::string& workdir) {
  if (!workdir.empty() && workdir[0] == '/')
    return Status::Invalid("workdir '" + workdir + "' must be relative to the workspace");
  int depth = 0;
  size_t start = 0;
  while (start <= workdir.size()) {
    size_t slash = std::min(workdir.find('/', start), workdir.size());
    std::string part = workdir.substr(start, slash - start);
    if (part == "..") depth--;
    else if (!part.empty() && part != ".") depth++;
    if (depth < 0) return Status::Invalid("workdir '" + workdir + "' leaves the workspace");
    start = slash + 1;
  }
  return Status::OK();
}

// The step's variables, later ones winning, then LADLE_STEP_ID.
json EnvironmentList(const StepSpec& spec) {
  std::vector<std::pair<std::string, std::string>> vars;
  std::map<std::string, size_t> index;
  auto set = [&](const std::string& k, const std::string& v) {
    auto [it, inserted] = index.emplace(k, vars.size());
    if (inserted) vars.emplace_back(k, v);
    else vars[it->second].second = v;
  };
  for (const auto& [k, v] : spec.env) set(k, v);
  set("LADLE_STEP_ID", spec.id);
  json out = json::array();
  for (const auto& [k, v] : vars) out.push_back(k + "=" + v);
  return out;
}

Status HostConfig(const StepSpec& spec, json* host) {
  const Resources& r = spec.resources;
  json h = {{"Init", true},
            {"Mounts", json::array({{{"Type", "bind"}, {"Source", spec.workspace}, {"Target", kWorkspaceMount}}})}};
  if (!r.volumes.empty()) h["Binds"] = r.volumes;
  if (!r.network.empty()) h["NetworkMode"] = r.network;
  if (r.privileged) h["Privileged"] = true;
  if (!r.dns.empty()) h["Dns"] = r.dns;
  if (!r.cpus.empty()) {
    int64_t nano = 0;
    Status s = ParseNanoCpus(r.cpus, &nano);
    if (!s.ok()) return s;
    h["NanoCpus"] = nano;
  }
  if (!r.memory.empty()) {
    int64_t bytes = 0;
    Status s = ParseMemoryBytes(r.memory, &bytes);
    if (!s.ok()) return s;
    h["Memory"] = bytes;
  }
  *host = std::move(h);
  return Status::OK();
}

// A daemon on this machine (a unix socket, not a tunnel over ssh): it mounts
// this machine's files, FIFOs included.
bool LocalDaemon(const DockerEndpoint& endpoint) {
  return !endpoint.socket_path.empty() && endpoint.ssh_host.empty();
}

// The workspace must be there for the daemon to mount it. Only checked when
// the daemon is on this machine (a unix socket); a tcp daemon sees its own
// file system.
Status CheckWorkspaceOnHost(const StepSpec& spec, const DockerEndpoint& endpoint) {
  // A tcp:// daemon, or one reached over ssh (its socket is a local tunnel),
  // is on another machine: the workspace path is the remote one's to check.
  if (!LocalDaemon(endpoint)) return Status::OK();
  if (!IsDirectory(spec.workspace)) return Status::NotFound("workspace '" + spec.workspace + "' does not exist");
  if (!spec.workdir.empty() && !IsDirectory(spec.workspace + "/" + spec.workdir))
    return Status::NotFound("workdir '" + spec.workdir + "' does not exist in the workspace");
  return Status::OK();
}

}  // namespace

// --- Pure helpers -----------------------------------------------------------

Status ParseMemoryBytes(const std::string& text, int64_t* bytes) {
  auto invalid = [&] {
    return Status::Invalid("memory '" + text + "': expected a size like 512m or 2g (b, k, m, g, t)");
  };
  long double value = 0;
  size_t i = 0;
  if (!ParseDecimal(text, &i, &value)) return invalid();
  if (i < text.size() && text[i] == ' ') ++i;
  long double multiplier = 1;
  static const std::string kUnits = "kmgtp";
  if (i < text.size()) {
    auto unit = kUnits.find(static_cast<char>(std::tolower(static_cast<unsigned char>(text[i]))));
    if (unit != std::string::npos) {
      for (size_t n = 0; n <= unit; ++n) multiplier *= 1024;
      ++i;
      if (i < text.size() && (text[i] == 'i' || text[i] == 'I')) ++i;
    }
  }
  if (i < text.size() && (text[i] == 'b' || text[i] == 'B')) ++i;
  if (i != text.size()) return invalid();
  if (!ToPositiveInt64(value, multiplier, bytes)) return invalid();
  return Status::OK();
}

Status ParseNanoCpus(const std::string& text, int64_t* nano_cpus) {
  long double value = 0;
  size_t end = 0;
  if (!ParseDecimal(text, &end, &value) || end != text.size() || !ToPositiveInt64(value, 1e9L, nano_cpus))
    return Status::Invalid("cpus '" + text + "': expected a positive number like 1.5");
  return Status::OK();
}

std::string ContainerName(const std::string& step_id, const std::string& suffix) {
  std::string body;
  for (unsigned char c : step_id) {
    char out = std::isalnum(c) || c == '_' || c == '.' ? static_cast<char>(c) : '-';
    if (out == '-' && (body.empty() || body.back() == '-')) continue;
    body += out;
  }
  if (body.size() > kMaxNameBody) body.resize(kMaxNameBody);
  while (!body.empty() && body.back() == '-') body.pop_back();
  return kContainerPrefix + (body.empty() ? "" : body + "-") + suffix;
}

std::string KeptContainerName(const std::string& name) {
  std::string prefix = kContainerPrefix;
  std::string rest = name.rfind(prefix, 0) == 0 ? name.substr(prefix.size()) : name;
  return kKeptContainerPrefix + rest;
}

Status ContainerConfig(const StepSpec& spec, json* config) {
  if (spec.image.empty())
    return Status::Invalid("no image: the docker backend needs one (set image: on the step, its stage or "
                           "the pipeline, or use --backend local)");
  if (!IsImageReference(spec.image)) return Status::Invalid("image '" + spec.image + "' is not a valid image reference");
  if (spec.workspace.empty() || spec.workspace[0] != '/')
    return Status::Invalid("workspace '" + spec.workspace + "' is not an absolute host path");
  if (spec.script.find('\0') != std::string::npos) return Status::Invalid("the script contains a NUL byte");
  Status s = CheckWorkdir(spec.workdir);
  if (s.ok()) s = CheckEnvironment(spec);
  json host;
  if (s.ok()) s = HostConfig(spec, &host);
  if (!s.ok()) return s;
  json labels = json::object();
  for (const auto& [k, v] : spec.labels) labels[k] = v;
  if (spec.keep) labels[kKeepLabel] = "true";
  *config = {{"Image", spec.image},
             // The image's ENTRYPOINT would receive `sh -e -c SCRIPT` as arguments: the
             // step's script is the whole command (as in Drone and Woodpecker).
             {"Entrypoint", json::array({""})},
             {"Cmd", {"sh", "-e", "-c", spec.script}},
             {"Env", EnvironmentList(spec)},
             {"WorkingDir", spec.workdir.empty() ? std::string(kWorkspaceMount)
                                                 : std::string(kWorkspaceMount) + "/" + spec.workdir},
             {"Labels", labels},
             {"Tty", false},
             {"OpenStdin", false},
             {"AttachStdin", false},
             {"AttachStdout", false},
             {"AttachStderr", false},
             {"HostConfig", host}};
  return Status::OK();
}

// --- Secrets ----------------------------------------------------------------

namespace {

// A new private (0700) directory "ladle-NAME-PID-XXXXXX" on a tmpfs (/dev/shm,
// else $XDG_RUNTIME_DIR): what it holds never touches a disk. `what` says
// what for, in errors ("the step's secrets").
Status MakeTmpfsDir(const std::string& name, const std::string& what, std::string* dir) {
  std::string base;
  for (const std::string& b : TmpfsBases())
    if (IsTmpfs(b) && ::access(b.c_str(), W_OK | X_OK) == 0) base = b;
  if (base.empty()) return Status::Unavailable("no tmpfs for " + what + " (/dev/shm, $XDG_RUNTIME_DIR)");
  // The pid tells SweepStaleStepFiles whose it is.
  std::string tmpl = base + "/ladle-" + name + "-" + std::to_string(::getpid()) + "-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr)  // mode 0700
    return Status::FromErrno("create a directory for " + what + " in " + base, errno);
  *dir = tmpl;
  return Status::OK();
}

}  // namespace

Status WriteSecretsFile(const StepSpec& spec, std::string* dir) {
  dir->clear();
  std::string tmpl;
  Status s = MakeTmpfsDir("secrets", "the step's secrets", &tmpl);
  if (!s.ok()) return s;
  std::string text;
  for (const auto& [name, value] : spec.secrets) text += "export " + name + "=" + ShellQuote(value) + "\n";
  const std::string file = tmpl + "/env";
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  bool ok = fd >= 0;
  for (size_t at = 0; ok && at < text.size();) {
    ssize_t n = ::write(fd, text.data() + at, text.size() - at);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) at += static_cast<size_t>(n);
  }
  // Readable by any user of the container (the directory keeps the host's
  // other users out), so that an image's non-root USER can source it.
  ok = ok && ::fchmod(fd, 0444) == 0;
  int saved = errno;
  if (fd >= 0) ::close(fd);
  if (!ok) {
    RemoveSecretsFile(tmpl);
    return Status::FromErrno("write the step's secrets to " + file, saved);
  }
  *dir = tmpl;
  return Status::OK();
}

void RemoveSecretsFile(const std::string& dir) {
  if (dir.empty()) return;
  ::unlink((dir + "/env").c_str());
  ::rmdir(dir.c_str());
}

void AddSecretsFile(const std::string& dir, json* config) {
  (*config)["HostConfig"]["Mounts"].push_back({{"Type", "bind"},
                                                {"Source", dir + "/env"},
                                                {"Target", kSecretsMount},
                                                {"ReadOnly", true}});
  // The script runs as before (`sh -e -c SCRIPT`), in a shell whose
  // environment the file has extended.
  const std::string script = (*config)["Cmd"].back().get<std::string>();
  (*config)["Cmd"] = {"sh", "-c", std::string(". ") + kSecretsMount + " && exec sh -e -c \"$0\"",
                      script};
}

// --- A step's own files (docs/backends.md "Containers started ahead", "Network none")

Status MakeStepDir(std::string* dir) { return MakeTmpfsDir("step", "the step's files", dir); }

Status OpenGate(const std::string& dir, int* fd) {
  *fd = -1;
  const std::string fifo = dir + "/go";
  // Readable by any user of the container; the directory keeps the host's
  // other users from writing the line.
  if (::mkfifo(fifo.c_str(), 0600) != 0 || ::chmod(fifo.c_str(), 0644) != 0)
    return Status::FromErrno("create the gate " + fifo, errno);
  // Read and write: never blocks, and keeps the pipe (and a line written
  // into it) alive until the container has opened it.
  *fd = ::open(fifo.c_str(), O_RDWR | O_CLOEXEC);
  if (*fd < 0) return Status::FromErrno("open the gate " + fifo, errno);
  return Status::OK();
}

void AddGate(const std::string& dir, json* config) {
  (*config)["HostConfig"]["Mounts"].push_back(
      {{"Type", "bind"}, {"Source", dir + "/go"}, {"Target", kGateMount}, {"ReadOnly", true}});
  // `sh -c 'read ... && exec "$@"' sh CMD...`: the command it had, after the
  // line; end of file (ladle gone, the step dropped) runs nothing.
  json cmd = {"sh", "-c", std::string("read -r _ < ") + kGateMount + " && exec \"$@\"", "sh"};
  for (const json& arg : (*config)["Cmd"]) cmd.push_back(arg);
  (*config)["Cmd"] = cmd;
}

Status WriteHostsFile(const std::string& dir) {
  static constexpr char kHosts[] =
      "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
      "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";
  const std::string file = dir + "/hosts";
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  bool ok = fd >= 0 && ::write(fd, kHosts, sizeof kHosts - 1) == static_cast<ssize_t>(sizeof kHosts - 1);
  int saved = errno;
  if (fd >= 0) ::close(fd);
  if (!ok) return Status::FromErrno("write " + file, saved);
  return Status::OK();
}

void AddHostsFile(const std::string& dir, json* config) {
  (*config)["NetworkDisabled"] = true;
  (*config)["HostConfig"]["Mounts"].push_back(
      {{"Type", "bind"}, {"Source", dir + "/hosts"}, {"Target", kHostsMount}});
}

void RemoveStepDir(std::string* dir, int* fd) {
  if (*fd >= 0) ::close(*fd);
  *fd = -1;
  if (dir->empty()) return;
  for (const char* name : {"/go", "/hosts"}) ::unlink((*dir + name).c_str());
  ::rmdir(dir->c_str());
  dir->clear();
}

std::vector<std::string> TmpfsBases() {
  std::vector<std::string> bases = {"/dev/shm"};
  if (const char* runtime = std::getenv("XDG_RUNTIME_DIR")) bases.push_back(runtime);
  return bases;
}

int SweepStaleStepFiles(const std::vector<std::string>& bases) {
  int swept = 0;
  for (const std::string& base : bases) {
    DIR* dir = ::opendir(base.c_str());
    if (dir == nullptr) continue;
    std::vector<std::string> stale;
    while (const dirent* e = ::readdir(dir)) {
      const std::string name = e->d_name;
      size_t at = 0;
      for (const char* prefix : {"ladle-secrets-", "ladle-step-"})
        if (name.rfind(prefix, 0) == 0) at = std::strlen(prefix);
      if (at == 0) continue;
      char* end = nullptr;
      const long pid = std::strtol(name.c_str() + at, &end, 10);
      // Only a process that is gone (ESRCH; EPERM is someone else's, alive).
      if (end == name.c_str() + at || *end != '-' || pid <= 0 || pid == ::getpid()) continue;
      if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) stale.push_back(base + "/" + name);
    }
    ::closedir(dir);
    for (const std::string& path : stale) {
      if (DIR* d = ::opendir(path.c_str())) {
        while (const dirent* e = ::readdir(d))
          if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0)
            ::unlink((path + "/" + e->d_name).c_str());
        ::closedir(d);
      }
      swept += ::rmdir(path.c_str()) == 0;
    }
  }
  return swept;
}

// --- DockerEngine -----------------------------------------------------------

Status DockerEngine::Open(const DockerEngineOptions& options, std::unique_ptr<DockerEngine>* engine) {
  DockerEndpoint endpoint;
  Status s = ParseDockerHost(options.docker_host.empty() ? DockerHostFromEnvironment() : options.docker_host,
                             &endpoint);
  if (!s.ok()) return s;
  std::unique_ptr<DockerClient> client;
  s = DockerClient::Connect(endpoint, options.connect_timeout, &client);
  if (!s.ok()) return s;
  engine->reset(new DockerEngine(std::shared_ptr<const DockerClient>(std::move(client)), options.data_dir));
  return Status::OK();
}

std::string DockerEngine::Describe() const {
  return (client_->cli() == "podman" ? "podman " : "") + std::string("daemon at ") +
         client_->endpoint().host + ", API " + client_->api_version();
}

Status DockerEngine::Create(const StepSpec& spec, std::unique_ptr<Step>* step) {
  return CreateStep(spec, /*may_pull=*/true, /*gated=*/false, step);
}

Status DockerEngine::Precreate(const StepSpec& spec, std::unique_ptr<Step>* step) {
  if (!spec.services.empty())
    return Status::Precondition("step '" + spec.id + "' has services: created at its turn");
  if (spec.keep) return Status::Precondition("step '" + spec.id + "' is kept: created at its turn");
  bool present = false;
  Status s = ImagePresent(spec, &present);
  if (!s.ok()) return s.WithContext("step '" + spec.id + "'");
  if (!present)
    return Status::Precondition("step '" + spec.id + "': image " + spec.image +
                                " is not here yet: created (and pulled) at its turn");
  // docs/backends.md "Containers started ahead": only where a FIFO on this
  // machine's tmpfs is the one the daemon mounts.
  s = CreateStep(spec, /*may_pull=*/false, LocalDaemon(client_->endpoint()), step);
  if (!s.ok()) return s;
  // Attached now too, so that its turn costs only the start; Start attaches
  // again if this failed.
  auto* created = static_cast<DockerStep*>(step->get());
  if (!client_->AttachOutput(created->id_, &created->output_).ok()) created->output_.reset();
  if (created->gate_fd_ < 0) return Status::OK();  // no gate: started at its turn
  // Started now, waiting at its gate: its turn costs a line into a pipe.
  // Its logs hold all it printed if the attach failed.
  s = client_->StartContainer(created->id_);
  if (!s.ok()) {
    step->reset();  // removes the container, closes the gate
    return s.WithContext("step '" + spec.id + "': start ahead");
  }
  return Status::OK();
}

namespace {
std::pair<std::string, std::string> ImageKey(const StepSpec& spec) {
  auto run = spec.labels.find("ladle.run");
  return {run == spec.labels.end() ? std::string() : run->second, spec.image};
}
}  // namespace

Status DockerEngine::ImagePresent(const StepSpec& spec, bool* present) {
  {
    std::lock_guard<std::mutex> lock(images_mu_);
    auto it = images_.find(ImageKey(spec));
    if (it != images_.end()) {
      *present = it->second;
      return Status::OK();
    }
  }
  bool exists = false;
  Status s = client_->ImageExists(spec.image, &exists);
  if (!s.ok()) return s;
  RememberImage(spec, exists);
  *present = exists;
  return Status::OK();
}

void DockerEngine::RememberImage(const StepSpec& spec, bool present) {
  std::lock_guard<std::mutex> lock(images_mu_);
  if (images_.size() >= kMaxImageEntries) images_.clear();
  images_[ImageKey(spec)] = present;
}

Status DockerEngine::CreateStep(const StepSpec& spec, bool may_pull, bool gated,
                                std::unique_ptr<Step>* step) {
  // `gated`: asked for; made only where the step's files can be
  // (docs/backends.md "Containers started ahead").
  json config;
  Status s = ContainerConfig(spec, &config);
  if (s.ok()) s = CheckWorkspaceOnHost(spec, client_->endpoint());
  if (!s.ok()) return s.WithContext("step '" + spec.id + "'");
  // docs/pipeline.md "Services": started and ready before the step's own
  // container, which joins their network namespace.
  std::unique_ptr<DockerServices> services;
  const json own_host = config["HostConfig"];
  if (!spec.services.empty()) {
    s = DockerServices::Start(
        client_, spec, [this](const std::string& image, const Status& e) { return PullMissing(image, e); },
        &services);
    if (!s.ok()) return s.WithContext("step '" + spec.id + "'");
    config["HostConfig"]["NetworkMode"] = services->NetworkMode();
    config["HostConfig"].erase("Dns");  // the namespace's owner has it
  }
  std::string secrets_dir;
  if (!spec.secrets.empty()) {
    s = WriteSecretsFile(spec, &secrets_dir);
    if (!s.ok()) return s.WithContext("step '" + spec.id + "'");
    AddSecretsFile(secrets_dir, &config);
  }
  // docs/backends.md "Network none": with a daemon on this machine, a step
  // of network "none" (no services) gets its loopback-only namespace without
  // the daemon's network set-up, and /etc/hosts from here.
  bool own_hosts = !services && LocalDaemon(client_->endpoint()) &&
                   config["HostConfig"].value("NetworkMode", "") == "none";
  if (step_files_unseen_) gated = own_hosts = false;
  json plain_config;  // without the step's files, when it has some
  std::string step_dir;
  int gate_fd = -1;
  if (gated || own_hosts) {
    plain_config = config;
    // Both are only faster ways to the same container: without a tmpfs to
    // hold their files, the daemon sets up the network and the step starts
    // at its turn, as with a remote daemon.
    Status files = MakeStepDir(&step_dir);
    if (files.ok() && own_hosts) files = WriteHostsFile(step_dir);
    if (files.ok() && gated) files = OpenGate(step_dir, &gate_fd);
    if (!files.ok()) {
      RemoveStepDir(&step_dir, &gate_fd);
      gated = own_hosts = false;
    }
    if (own_hosts) AddHostsFile(step_dir, &config);
    if (gated) AddGate(step_dir, &config);
  }
  std::string name, id;
  s = CreateContainer(spec, config, may_pull, &name, &id);
  if (!s.ok() && !step_dir.empty() && s.message().find(step_dir) != std::string::npos) {
    // The daemon cannot see this tmpfs (ladle in a mount namespace or a
    // container of its own, the daemon outside): the step goes without its
    // files, and so do the later ones of this engine.
    step_files_unseen_ = true;
    Note("the docker daemon does not see " + step_dir +
         ": containers start at their turn, with the daemon's network set-up "
         "(docs/backends.md \"Containers started ahead\")");
    RemoveStepDir(&step_dir, &gate_fd);
    config = plain_config;
    s = CreateContainer(spec, config, may_pull, &name, &id);
  }
  if (!s.ok()) {
    RemoveSecretsFile(secrets_dir);
    RemoveStepDir(&step_dir, &gate_fd);
    return s.WithContext("create container for step '" + spec.id + "'");
  }
  RememberImage(spec, true);
  // A kept copy (DockerStep::Keep) must not join a namespace that goes with
  // the services: it gets the step's own network settings back.
  if (services) {
    for (const char* key : {"NetworkMode", "Dns"}) {
      config["HostConfig"].erase(key);
      if (own_host.contains(key)) config["HostConfig"][key] = own_host[key];
    }
  }
  auto* created = new DockerStep(client_, spec, std::move(config), name, id, notes_);
  created->secrets_dir_ = secrets_dir;
  created->step_dir_ = step_dir;
  created->gate_fd_ = gate_fd;
  created->services_ = std::move(services);
  step->reset(created);
  return Status::OK();
}

Status DockerEngine::CreateContainer(const StepSpec& spec, const json& config, bool may_pull,
                                     std::string* name, std::string* id) {
  bool pulled = false;
  for (int attempt = 0;; ++attempt) {
    *name = ContainerName(spec.id, RandomSuffix());
    Status s = client_->CreateContainer(*name, config, id);
    if (s.ok()) return s;
    if (s.code() == Code::kConflict && attempt < 3) continue;  // the random suffix collided
    if (s.code() != Code::kNotFound || pulled || !may_pull) return s;
    s = PullMissing(spec.image, s);
    if (!s.ok()) return s;
    pulled = true;
  }
}

// A 404 from create means a missing image, or a missing network: pull only
// in the first case. OK means "create again".
Status DockerEngine::PullMissing(const std::string& image, const Status& create_error) {
  std::lock_guard<std::mutex> lock(pull_mu_);
  bool exists = false;
  Status s = client_->ImageExists(image, &exists);
  if (!s.ok() || exists) return s;  // exists: another step pulled it meanwhile, or the 404 was not the image
  Note("pulling image " + image);
  s = client_->PullImage(image, [&](const std::string& line) { Note("pull " + image + ": " + line); });
  if (!s.ok()) return s;
  Note("pulled image " + image);
  return Status::OK();
}

// Removes the containers of this data dir for which `remove(c, run, readable)`
// says so; `run` is the ladle.run label's id, `readable` whether it has one.
Status DockerEngine::RemoveContainersOfDataDir(
    const std::function<bool(const ContainerSummary&, int64_t, bool)>& remove,
    std::vector<std::string>* removed) {
  if (data_dir_.empty()) return Status::Internal("DockerEngine: no data dir to look for");
  std::vector<ContainerSummary> containers;
  Status s = client_->ListContainers({{"label", {"ladle.data=" + data_dir_}}}, &containers);
  if (!s.ok()) return s.WithContext("look for the containers of " + data_dir_);
  Status first;
  for (const ContainerSummary& c : containers) {
    auto run = c.labels.find("ladle.run");
    char* end = nullptr;
    long long id = run == c.labels.end() ? 0 : std::strtoll(run->second.c_str(), &end, 10);
    bool readable = run != c.labels.end() && !run->second.empty() && end != nullptr && *end == '\0';
    if (!remove(c, id, readable)) continue;
    Status r = client_->RemoveContainer(c.id);
    if (r.ok() && removed != nullptr) removed->push_back(c.name);
    if (!r.ok() && first.ok()) first = r.WithContext("remove container " + c.name);
    // A kept container runs from the image ladle committed of its step
    // (DockerStep::Keep): that image goes with it, unless something else
    // (a container or image of the user's) was made from it (409).
    if (r.ok() && c.labels.count(kKeepLabel) && !c.image_id.empty()) {
      Status i = client_->RemoveImage(c.image_id);
      if (!i.ok() && i.code() != Code::kConflict && first.ok())
        first = i.WithContext("remove the image of kept container " + c.name);
    }
  }
  return first;
}

Status DockerEngine::CleanupStale(const std::function<bool(int64_t)>& run_is_live,
                                  std::vector<std::string>* removed) {
  // Secrets files and gates of a ladle that was killed (docs/server.md "How
  // secrets reach a step").
  SweepStaleStepFiles(TmpfsBases());
  return RemoveContainersOfDataDir(
      [&](const ContainerSummary& c, int64_t run, bool readable) {
        if (c.labels.count(kKeepLabel) || c.name.rfind(kKeptContainerPrefix, 0) == 0) return false;
        return !(readable && run_is_live(run));
      },
      removed);
}

Status DockerEngine::RemoveKeptContainers(std::vector<std::string>* removed) {
  return RemoveContainersOfDataDir(
      [](const ContainerSummary& c, int64_t, bool) {
        return c.labels.count(kKeepLabel) > 0 || c.name.rfind(kKeptContainerPrefix, 0) == 0;
      },
      removed);
}

Status DockerEngine::RemoveRunContainers(const std::set<int64_t>& runs,
                                         std::vector<std::string>* removed) {
  return RemoveContainersOfDataDir(
      [&](const ContainerSummary&, int64_t run, bool readable) {
        return readable && runs.count(run) > 0;
      },
      removed);
}

// --- DockerStep -------------------------------------------------------------

DockerStep::DockerStep(std::shared_ptr<const DockerClient> client, StepSpec spec, json config,
                       std::string name, std::string id, NoteCallback notes)
    : client_(std::move(client)),
      spec_(std::move(spec)),
      config_(std::move(config)),
      name_(std::move(name)),
      id_(std::move(id)),
      notes_(std::move(notes)) {}

DockerStep::~DockerStep() {
  bool kept;
  {
    std::lock_guard<std::mutex> lock(mu_);
    kept = spec_.keep || !shell_command_.empty() || removed_;
  }
  // A destructor has nobody to tell; the executor calls Remove() itself and
  // reports its error, so this only catches steps abandoned on error paths.
  if (!kept) Remove().IgnoreError();
  DropSecrets();
  DropStepDir();
}

void DockerStep::DropSecrets() {
  std::lock_guard<std::mutex> lock(mu_);
  RemoveSecretsFile(secrets_dir_);
  secrets_dir_.clear();
}

void DockerStep::DropStepDir() {
  std::lock_guard<std::mutex> lock(mu_);
  RemoveStepDir(&step_dir_, &gate_fd_);
}

Status DockerStep::Start() {
  int gate;
  {
    std::lock_guard<std::mutex> lock(mu_);
    gate = gate_fd_;
  }
  if (gate >= 0) {
    // docs/backends.md "Containers started ahead": the line lets the
    // container's shell go on to the script. A pipe of 64 KiB takes it at
    // once; the descriptor stays open until the container has stopped.
    static constexpr char kGo[] = "go\n";
    ssize_t n;
    do n = ::write(gate, kGo, sizeof kGo - 1);
    while (n < 0 && errno == EINTR);
    if (n != static_cast<ssize_t>(sizeof kGo - 1))
      return Status::FromErrno("step '" + spec_.id + "': write the go line to the gate of container " + name_, errno);
    started_ = true;
    return Status::OK();
  }
  // Attached first, as `docker run` does, so that no output is lost. A
  // daemon that refuses to attach to a container not yet started gets its
  // logs followed instead; one that is gone fails the start below.
  // (DockerEngine::Precreate may have attached already.)
  if (output_ == nullptr && !client_->AttachOutput(id_, &output_).ok()) output_.reset();
  Status s = client_->StartContainer(id_);
  if (!s.ok()) return s.WithContext("step '" + spec_.id + "': container " + name_);
  started_ = true;
  return Status::OK();
}

bool DockerStep::StreamShouldStop() const {
  int64_t deadline = stream_deadline_ns_.load();
  return deadline != 0 && NowNs() > deadline;
}

Status DockerStep::Stream(OutputSink* sink) {
  if (!started_) return Status::Precondition("step '" + spec_.id + "' was not started");
  auto pass_on = [sink](OutputStream stream, std::string_view data) {
    if (sink != nullptr) sink->Write(stream, data);
  };
  Status s = output_ != nullptr ? output_->Follow(pass_on, [this] { return StreamShouldStop(); })
                                : client_->FollowLogs(id_, pass_on, [this] { return StreamShouldStop(); });
  output_.reset();
  // Gave up on a stream that did not end after SIGKILL: Wait has the verdict.
  if (s.code() == Code::kCancelled) return Status::OK();
  return s.ok() ? s : s.WithContext("step '" + spec_.id + "': container " + name_);
}

Status DockerStep::Wait(ExitStatus* status) {
  if (!started_) return Status::Precondition("step '" + spec_.id + "' was not started");
  int code = -1;
  Status s = client_->WaitContainer(id_, &code);
  if (s.ok()) {  // the container has stopped: it needs them no more
    DropSecrets();
    DropStepDir();
  }
  if (!s.ok()) return s.WithContext("step '" + spec_.id + "': container " + name_);
  int signal = last_signal_.load();
  status->code = code;
  status->signal = signal > 0 && code == 128 + signal ? signal : 0;
  return Status::OK();
}

void DockerStep::Kill(int signal) {
  if (!started_) return;
  last_signal_ = signal;
  if (signal == SIGKILL) {
    int64_t expected = 0;
    stream_deadline_ns_.compare_exchange_strong(
        expected, NowNs() + std::chrono::duration_cast<std::chrono::nanoseconds>(kStreamEndAfterKill).count());
  }
  // Errors are not reported: Kill has no way to, and Wait/Remove will see a
  // daemon that is gone.
  client_->KillContainer(id_, signal).IgnoreError();
}

Status DockerStep::Remove() {
  DropSecrets();
  DropStepDir();
  // docs/pipeline.md "Services": they go with the step, kept or not.
  Status services = services_ ? services_->Remove() : Status::OK();
  std::lock_guard<std::mutex> lock(mu_);
  if (spec_.keep || removed_) return services;
  Status s = client_->RemoveContainer(id_);
  if (!kept_id_.empty()) {
    Status k = client_->RemoveContainer(kept_id_);
    // The image of a kept container that is gone is only disk space: prune
    // (docs/backends.md "keep") removes what this leaves.
    if (k.ok()) client_->RemoveImage(kept_image_).IgnoreError();
    if (s.ok()) s = k;
  }
  if (!s.ok()) return s.WithContext("remove container " + name_);
  removed_ = true;
  return services;
}

void DockerStep::WriteServiceLogs(OutputSink* sink) {
  if (services_) services_->WriteLogs(sink);
}

std::string DockerStep::ShellCommand() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!keep_tried_) {
    keep_tried_ = true;
    shell_command_ = Keep();
  }
  return shell_command_;
}

// Replaces the stopped container by a kept one: same file system (committed),
// same mounts, variables and working directory, an idle `sh` as its command
// (OpenStdin keeps it waiting), so starting it does not run the script again.
// REQUIRES: mu_ held.
std::string DockerStep::Keep() const {
  auto fail = [&](const Status& s) {
    if (notes_) notes_("could not keep the container of step '" + spec_.id + "': " + s.message());
    return std::string();
  };
  json labels = config_.value("Labels", json::object());
  labels[kKeepLabel] = "true";
  const json idle_cmd = {"sh"};
  std::string image;
  Status s = client_->CommitContainer(
      id_, {{"Labels", labels}, {"Cmd", idle_cmd}, {"Entrypoint", json::array({""})}}, &image);
  if (!s.ok()) return fail(s);
  json kept = config_;
  kept["Image"] = image;
  kept["Cmd"] = idle_cmd;
  // The secrets file, the gate and the step's /etc/hosts are gone with the
  // step: the kept container does without them, and gets the daemon's
  // network set-up (and /etc/hosts) back.
  json mounts = json::array();
  for (const json& m : kept["HostConfig"].value("Mounts", json::array())) {
    const std::string target = m.value("Target", "");
    if (target != kSecretsMount && target != kGateMount && target != kHostsMount) mounts.push_back(m);
  }
  kept.erase("NetworkDisabled");
  kept["HostConfig"]["Mounts"] = mounts;
  kept["OpenStdin"] = true;
  kept["Labels"] = labels;
  std::string kept_name = KeptContainerName(name_);
  std::string kept_id;
  s = client_->CreateContainer(kept_name, kept, &kept_id);
  if (!s.ok()) {
    client_->RemoveImage(image).IgnoreError();  // the create error is the one to report
    return fail(s);
  }
  kept_id_ = kept_id;
  kept_image_ = image;
  // Its work lives on in the image; the original would run the script again.
  s = client_->RemoveContainer(id_);
  if (!s.ok() && notes_) notes_("could not remove container " + name_ + ": " + s.message());
  // `ladle env NAME` starts it and opens a shell in it, on a terminal or
  // not (`ladle env NAME -- ls` runs a command), with Docker or Podman alike
  // (docs/backends.md "keep").
  return "ladle env " + kept_name;
}

}  // namespace ladle::env
