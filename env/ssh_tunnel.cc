#include "env/ssh_tunnel.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string_view>
#include <vector>

#include "env/subprocess.h"

namespace ladle::env {
namespace {

constexpr size_t kStderrKeep = 4096;
constexpr size_t kMaxSocketPath = 100;  // sun_path is 108 bytes

bool IsDigits(std::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

// Keeps the tail of ssh's stderr (and drops stdout: -N prints nothing).
class TailSink : public OutputSink {
 public:
  TailSink(std::mutex* mu, std::string* tail) : mu_(mu), tail_(tail) {}
  void Write(OutputStream stream, std::string_view data) override {
    if (stream != OutputStream::kStderr) return;
    std::lock_guard<std::mutex> lock(*mu_);
    tail_->append(data);
    if (tail_->size() > kStderrKeep) tail_->erase(0, tail_->size() - kStderrKeep);
  }

 private:
  std::mutex* mu_;
  std::string* tail_;
};

// Whether something listens on 127.0.0.1:port (/proc/net/tcp, state 0A):
// asking this way does not open a channel through the tunnel.
bool ListeningOnLoopback(int port) {
  std::ifstream in("/proc/net/tcp");
  std::string line;
  char want[32];
  std::snprintf(want, sizeof want, "0100007F:%04X", port);
  while (std::getline(in, line)) {
    // "  0: 0100007F:1F90 00000000:0000 0A ..."
    std::size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string rest = line.substr(colon + 1);
    char local[64], remote[64], state[8];
    if (std::sscanf(rest.c_str(), "%63s %63s %7s", local, remote, state) != 3) continue;
    if (std::string(local) == want && std::string(state) == "0A") return true;
  }
  return false;
}

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

Status ParseSshUrl(const std::string& url, const std::string& what, SshTarget* target) {
  auto bad = [&](const std::string& why) {
    return Status::Invalid(what + " '" + url + "': " + why + " (expected ssh://[USER@]HOST[:PORT])");
  };
  if (url.rfind("ssh://", 0) != 0) return bad("not an ssh:// address");
  std::string rest = url.substr(6);
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.find_first_of("/?#") != std::string::npos) return bad("no path or query may follow the host");
  for (char c : rest)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return bad("no spaces or control characters");
  SshTarget t;
  std::size_t at = rest.rfind('@');
  if (at != std::string::npos) {
    t.user = rest.substr(0, at);
    rest = rest.substr(at + 1);
    if (t.user.empty()) return bad("an empty user");
    if (t.user[0] == '-') return bad("a user may not start with '-'");
  }
  std::string port;
  if (!rest.empty() && rest[0] == '[') {
    std::size_t close = rest.find(']');
    if (close == std::string::npos) return bad("an unclosed '['");
    t.host = rest.substr(1, close - 1);
    std::string after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return bad("text after the host");
      port = after.substr(1);
      if (port.empty()) return bad("an empty port");
    }
  } else {
    std::size_t colon = rest.find(':');
    t.host = rest.substr(0, colon);
    if (colon != std::string::npos) {
      port = rest.substr(colon + 1);
      if (port.empty()) return bad("an empty port");
    }
  }
  if (t.host.empty()) return bad("no host");
  if (t.host[0] == '-') return bad("a host may not start with '-'");
  if (!port.empty()) {
    if (!IsDigits(port) || port.size() > 5 || std::atoi(port.c_str()) < 1 ||
        std::atoi(port.c_str()) > 65535)
      return bad("the port must be 1-65535");
    t.port = std::atoi(port.c_str());
  }
  *target = t;
  return Status::OK();
}

Status SshTunnel::Start(const SshTarget& target, const std::string& forward,
                        std::chrono::milliseconds timeout, std::unique_ptr<SshTunnel>* tunnel) {
  long connect_seconds = std::max<long>(1, static_cast<long>(timeout.count() / 1000));
  std::vector<std::string> args = {"-N",
                                   "-T",
                                   "-o", "ExitOnForwardFailure=yes",
                                   "-o", "BatchMode=yes",
                                   "-o", "StreamLocalBindUnlink=yes",
                                   "-o", "ServerAliveInterval=30",
                                   "-o", "ConnectTimeout=" + std::to_string(connect_seconds),
                                   "-o", "LogLevel=ERROR"};
  if (target.port) {
    args.push_back("-p");
    args.push_back(std::to_string(target.port));
  }
  args.push_back("-L");
  args.push_back(forward);
  args.push_back("--");
  args.push_back(target.Destination());

  LaunchSpec spec;
  const char* command = std::getenv("LADLE_SSH_COMMAND");
  if (command && *command) {
    // As git runs $GIT_SSH_COMMAND: by the shell, the arguments after it.
    spec.exe = "/bin/sh";
    spec.args = {"-c", std::string(command) + " \"$@\"", "ladle-ssh"};
    spec.args.insert(spec.args.end(), args.begin(), args.end());
  } else {
    Status found = FindInPath("ssh", &spec.exe);
    if (!found.ok())
      return Status::NotFound("ssh:// needs OpenSSH's client: " + found.message() +
                              " (apt-get install openssh-client)");
    spec.args = args;
  }
  std::unique_ptr<Subprocess> child;
  Status s = Subprocess::Start(spec, &child);
  if (!s.ok()) return s.WithContext("start ssh to " + target.Destination());
  SshTunnel* t = tunnel->get();
  t->ssh_ = std::move(child);
  t->pump_ = std::thread([t] {
    TailSink sink(&t->mu_, &t->stderr_);
    while (!t->ssh_->Pump(&sink)) {
    }
    t->exit_code_ = t->ssh_->Wait().code;
    t->exited_ = true;
  });
  return t->WaitReady(target, timeout);
}

bool SshTunnel::Ready() const {
  if (local_port_) return ListeningOnLoopback(local_port_);
  struct stat st;
  return ::lstat(local_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

Status SshTunnel::WaitReady(const SshTarget& target, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string where = "ssh to " + target.Destination() +
                      (target.port ? " port " + std::to_string(target.port) : "");
  while (true) {
    if (exited_) {
      std::string said = Trimmed(Stderr());
      return Status::Unavailable(where + " failed (exit " + std::to_string(exit_code_) + ")" +
                                 (said.empty() ? "" : ": " + said));
    }
    if (Ready()) return Status::OK();
    if (std::chrono::steady_clock::now() > deadline) {
      std::string said = Trimmed(Stderr());
      return Status::Unavailable(where + ": no forward after " +
                                 std::to_string(timeout.count() / 1000) + " s" +
                                 (said.empty() ? "" : ": " + said));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Status SshTunnel::ForwardSocket(const SshTarget& target, const std::string& remote_socket,
                                std::chrono::milliseconds timeout,
                                std::unique_ptr<SshTunnel>* out) {
  std::string base = "/tmp";
  if (const char* tmp = std::getenv("TMPDIR"); tmp && *tmp == '/' && std::strlen(tmp) < 60)
    base = tmp;
  std::string templ = base + "/ladle-ssh-XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data()))  // mode 0700
    return Status::FromErrno("make a private folder for the ssh tunnel in " + base, errno);
  std::unique_ptr<SshTunnel> tunnel(new SshTunnel());
  tunnel->dir_ = buf.data();
  tunnel->local_ = tunnel->dir_ + "/docker.sock";
  if (tunnel->local_.size() > kMaxSocketPath)
    return Status::Invalid("the tunnel's socket path is too long: " + tunnel->local_);
  Status s = Start(target, tunnel->local_ + ":" + remote_socket, timeout, &tunnel);
  if (!s.ok()) return s;
  *out = std::move(tunnel);
  return Status::OK();
}

Status SshTunnel::ForwardPort(const SshTarget& target, int local_port,
                              const std::string& remote_host, int remote_port,
                              std::chrono::milliseconds timeout, std::unique_ptr<SshTunnel>* out) {
  if (local_port < 1 || local_port > 65535 || remote_port < 1 || remote_port > 65535)
    return Status::Invalid("a forwarded port must be 1-65535");
  if (ListeningOnLoopback(local_port))
    return Status::Unavailable("cannot forward port " + std::to_string(local_port) +
                               ": 127.0.0.1:" + std::to_string(local_port) +
                               " is already taken on this machine");
  std::unique_ptr<SshTunnel> tunnel(new SshTunnel());
  tunnel->local_port_ = local_port;
  tunnel->local_ = "127.0.0.1:" + std::to_string(local_port);
  std::string host = remote_host.find(':') != std::string::npos ? "[" + remote_host + "]" : remote_host;
  Status s = Start(target, tunnel->local_ + ":" + host + ":" + std::to_string(remote_port), timeout,
                   &tunnel);
  if (!s.ok()) return s;
  *out = std::move(tunnel);
  return Status::OK();
}

SshTunnel::~SshTunnel() {
  if (ssh_) ssh_->Kill(SIGTERM);
  if (pump_.joinable()) pump_.join();
  ssh_.reset();
  if (!dir_.empty()) {
    ::unlink(local_.c_str());
    ::rmdir(dir_.c_str());
  }
}

std::string SshTunnel::Stderr() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stderr_;
}

}  // namespace ladle::env
