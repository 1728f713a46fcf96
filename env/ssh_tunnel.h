// SshTunnel: an OpenSSH child forwarding a local socket or port to the far
// side of an ssh connection, for `ssh://` Docker hosts and `ladle env NAME
// --forward` (docs/spoons.md "A shared host over ssh").
//
// The child is `ssh -N -o ExitOnForwardFailure=yes -o BatchMode=yes -L
// LOCAL:REMOTE DESTINATION`, started through env/subprocess.h (so it is
// reaped by the one reaper), with $LADLE_SSH_COMMAND in place of `ssh` when
// set (run by /bin/sh, as git runs $GIT_SSH_COMMAND: "ssh -i KEY -F CONFIG").
// The tunnel is ready once ssh listens on the local end; it ends (TERM to the
// ssh process, its socket and private folder removed) with the object. A
// forward of the remote Docker socket lands on a socket in a fresh 0700
// folder, so only this user reaches the remote daemon through it.
//
// Thread-safety: const methods from any thread; the destructor once.
#ifndef LADLE_ENV_SSH_TUNNEL_H_
#define LADLE_ENV_SSH_TUNNEL_H_

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/base/status.h"

namespace ladle::env {

class Subprocess;

// Where ssh connects: "ssh://[USER@]HOST[:PORT]".
struct SshTarget {
  std::string user;  // "" = ssh's default (the ssh config, the local user)
  std::string host;
  int port = 0;      // 0 = ssh's default
  std::string Destination() const { return user.empty() ? host : user + "@" + host; }
};

// Parses "ssh://[USER@]HOST[:PORT]" (HOST may be "[v6]"); Invalid, naming
// `what` ("DOCKER_HOST"), for a path, a query, an empty host, a port outside
// 1-65535, or a user or host starting with '-' (it would be read as an
// option by ssh).
Status ParseSshUrl(const std::string& url, const std::string& what, SshTarget* target);

class SshTunnel {
 public:
  static constexpr std::chrono::seconds kDefaultTimeout{20};
  // The remote daemon's socket, as on any Linux Docker host.
  static constexpr char kRemoteDockerSocket[] = "/var/run/docker.sock";

  // Forwards a new local unix socket (in a fresh 0700 folder) to the unix
  // socket `remote_socket` on `target`, and waits up to `timeout` for ssh
  // to listen. Unavailable with ssh's own words (its stderr) when ssh
  // exits (authentication, an unknown host key, a refused forward) or is
  // not ready in time; NotFound when there is no ssh program.
  static Status ForwardSocket(const SshTarget& target, const std::string& remote_socket,
                              std::chrono::milliseconds timeout, std::unique_ptr<SshTunnel>* out);
  // Forwards 127.0.0.1:`local_port` to `remote_host`:`remote_port` as seen
  // from `target` (`ladle env NAME --forward`); as ForwardSocket. Unavailable
  // when the local port is taken.
  static Status ForwardPort(const SshTarget& target, int local_port, const std::string& remote_host,
                            int remote_port, std::chrono::milliseconds timeout,
                            std::unique_ptr<SshTunnel>* out);

  ~SshTunnel();
  SshTunnel(const SshTunnel&) = delete;
  SshTunnel& operator=(const SshTunnel&) = delete;

  // The local end: a socket path, or "127.0.0.1:PORT".
  const std::string& local() const { return local_; }
  // False once ssh has exited (the connection dropped).
  bool alive() const { return !exited_; }
  // The last few KB ssh wrote to stderr.
  std::string Stderr() const;

 private:
  SshTunnel() = default;
  static Status Start(const SshTarget& target, const std::string& forward,
                      std::chrono::milliseconds timeout, std::unique_ptr<SshTunnel>* tunnel);
  Status WaitReady(const SshTarget& target, std::chrono::milliseconds timeout);
  bool Ready() const;

  std::string local_;
  std::string dir_;       // the private folder of a socket forward ("" for a port)
  int local_port_ = 0;    // a port forward's
  std::unique_ptr<Subprocess> ssh_;
  std::thread pump_;      // reads ssh's output until it exits
  std::atomic<bool> exited_{false};
  int exit_code_ = -1;    // written by pump_ before exited_
  mutable std::mutex mu_;
  std::string stderr_;    // guarded by mu_; the last kStderrKeep bytes
};

}  // namespace ladle::env

#endif  // LADLE_ENV_SSH_TUNNEL_H_
