// DockerClient: the Docker Engine API over the daemon's socket, with libcurl.
//
// Speaks plain HTTP/1.1 to `unix://PATH` (CURLOPT_UNIX_SOCKET_PATH) or
// `tcp://HOST:PORT` (no TLS), under the /vX.YZ prefix negotiated at Connect
// (the lower of the daemon's version and kMaxApiVersion). Only endpoints
// that Podman's Docker-compatible API serves too are used, so a Podman socket
// works the same. Proxies from the environment are ignored: the daemon is
// always reached directly.
//
// Thread-safety: every call uses its own curl handle and connection, and the
// object is immutable after Connect, so any method may be called from any
// thread concurrently (Kill from one thread while another follows the logs).
#ifndef LADLE_ENV_DOCKER_CLIENT_H_
#define LADLE_ENV_DOCKER_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include "core/base/status.h"
#include "env/engine.h"

namespace ladle::env {

constexpr char kDefaultDockerHost[] = "unix:///var/run/docker.sock";

// Where the daemon listens.
struct DockerEndpoint {
  std::string host;         // as the user gave it, for messages ("unix:///var/run/docker.sock")
  std::string socket_path;  // unix: the socket file; empty for tcp
  std::string base_url;     // "http://localhost" (unix), "http://HOST:PORT" or "https://..." (tcp)
  // tcp:// with TLS, as the docker CLI reads DOCKER_TLS_VERIFY, DOCKER_TLS
  // and DOCKER_CERT_PATH (docs/spoons.md "A shared host over tcp and TLS").
  bool tls = false;
  bool tls_verify = false;  // check the daemon's certificate against ca_file
  std::string ca_file, cert_file, key_file;  // "" = none
  // ssh://[USER@]HOST[:PORT]: DockerClient::Connect forwards the remote
  // daemon's socket to a local one over ssh (env/ssh_tunnel.h) and sets
  // socket_path to it; `tunnel` keeps the ssh child alive as long as any
  // copy of the connected endpoint lives (docs/spoons.md "A shared host over ssh").
  std::string ssh_user, ssh_host;
  int ssh_port = 0;
  std::shared_ptr<const void> tunnel;
};

// The docker CLI's TLS variables, as this process sees them (the real
// environment by default; tests give their own).
struct DockerTlsEnvironment {
  std::string tls;         // $DOCKER_TLS: non-empty = TLS without checking the daemon
  std::string tls_verify;  // $DOCKER_TLS_VERIFY: non-empty = TLS, daemon checked
  std::string cert_path;   // $DOCKER_CERT_PATH; "" = ~/.docker
  std::string home;        // $HOME
  static DockerTlsEnvironment FromProcess();
};

// Sets on a curl handle how it reaches the daemon at `endpoint` (its unix
// socket or TLS settings, no proxy, no signals); every connection to the
// daemon goes through it, the hijacked ones included.
void ApplyEndpoint(CURL* handle, const DockerEndpoint& endpoint);

// $DOCKER_HOST, or kDefaultDockerHost when it is unset or empty.
std::string DockerHostFromEnvironment();

// Parses `unix:///PATH`, `tcp://HOST:PORT` or `ssh://[USER@]HOST[:PORT]`;
// empty means kDefaultDockerHost. tcp:// speaks TLS when $DOCKER_TLS_VERIFY
// or $DOCKER_TLS is set (port default 2376, else 2375), with ca.pem,
// cert.pem and key.pem from $DOCKER_CERT_PATH (default ~/.docker): ca.pem
// is required to verify, cert.pem and key.pem go together; a missing one is
// Invalid, naming the file. Invalid for other schemes (npipe://) and
// malformed values, naming DOCKER_HOST. Starts nothing (ssh:// connects in
// DockerClient::Connect).
Status ParseDockerHost(const std::string& docker_host, DockerEndpoint* endpoint);
Status ParseDockerHost(const std::string& docker_host, const DockerTlsEnvironment& tls,
                       DockerEndpoint* endpoint);

// The message for a connection that failed before any HTTP was spoken,
// saying what to do: refused or missing socket ("is dockerd running?"),
// permission denied ("add yourself to the docker group"), timeout.
// `os_errno` is the errno curl saw (0 when unknown).
std::string DescribeConnectError(const DockerEndpoint& endpoint, int os_errno,
                                 const std::string& curl_error, bool timed_out);

// Adds what to do to a daemon's error message when it is one the user can
// fix: a missing init binary (Podman without catatonit) names the package.
std::string ExplainDaemonError(const std::string& message);

// "podman" when a GET /version body names Podman (Platform.Name or a
// Components[].Name), else "docker": the CLI that matches the daemon.
std::string DaemonCliFromVersion(const std::string& version_body);

// "1.41" < "1.43": compares MAJOR.MINOR numerically; malformed sorts first.
int CompareApiVersions(const std::string& a, const std::string& b);

// Splits an image reference into the fromImage and tag parameters of
// POST /images/create: "reg:5000/a/b:1" -> ("reg:5000/a/b", "1"); no tag ->
// "latest"; "x@sha256:..." -> ("x", "sha256:...").
void SplitImageReference(const std::string& image, std::string* name, std::string* tag);

// Splits the multiplexed stream of /containers/{id}/logs (no TTY) into
// stdout and stderr. Each frame is an 8-byte header (stream id: 0 stdin,
// 1 stdout, 2 stderr, 3 a daemon error; 3 zero bytes; big-endian payload
// length) and the payload. Payloads are passed on as their bytes arrive,
// not held until a frame is complete, so memory stays bounded by the chunk.
// Not thread-safe.
class LogDemuxer {
 public:
  using Callback = std::function<void(OutputStream, std::string_view)>;
  explicit LogDemuxer(Callback on_output) : on_output_(std::move(on_output)) {}

  void Feed(std::string_view data);
  // True when the input ended inside a frame (a truncated stream).
  bool MidFrame() const { return header_len_ != 0 || remaining_ != 0; }
  // Text the daemon sent on stream 3 (an error in the middle of the logs).
  const std::string& daemon_error() const { return daemon_error_; }

 private:
  void Emit(std::string_view payload);

  Callback on_output_;
  unsigned char header_[8] = {};
  size_t header_len_ = 0;
  uint32_t remaining_ = 0;
  int stream_ = 1;
  std::string daemon_error_;
};

// A created container's stdout and stderr, attached before it starts
// (POST /containers/{id}/attach?stream=1&stdout=1&stderr=1, no TTY: the
// frames of LogDemuxer), as `docker run` reads them: the daemon serves this
// stream about three times faster than /logs?follow=1 (docs/benchmarks.md
// "Docker backend"). Made by DockerClient::AttachOutput; used from one thread.
class AttachedOutput {
 public:
  using AbortCheck = std::function<bool()>;
  ~AttachedOutput();
  AttachedOutput(const AttachedOutput&) = delete;
  AttachedOutput& operator=(const AttachedOutput&) = delete;

  // Passes the output to `on_output` until the daemon ends the stream (the
  // container stopped). Cancelled when `abort` (polled about once a second
  // while the stream is idle, and between reads) returns true.
  Status Follow(const LogDemuxer::Callback& on_output, const AbortCheck& abort = nullptr);

 private:
  friend class DockerClient;
  struct Impl;
  explicit AttachedOutput(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct DockerResponse {
  long status = 0;   // HTTP status
  std::string body;
  // {"message": "..."} of an error response, else the body itself.
  std::string ErrorMessage() const;
};

// One container as GET /containers/json lists it.
struct ContainerSummary {
  std::string id;
  std::string name;   // without the leading '/'
  std::string state;  // "running", "exited", "created", ...
  std::string image_id;  // "sha256:..." of the image it was created from
  std::map<std::string, std::string> labels;
};

class DockerClient {
 public:
  static constexpr char kMaxApiVersion[] = "1.43";  // the newest API ladle was written against
  static constexpr char kMinApiVersion[] = "1.30";  // wait?condition, Init, NanoCpus
  static constexpr std::chrono::seconds kRequestTimeout{120};

  using Clock = std::chrono::steady_clock;
  // Called with each piece of a streamed body as it arrives; false stops.
  using DataCallback = std::function<bool(std::string_view)>;
  // Polled about once a second while a stream is idle; true aborts it.
  using AbortCheck = std::function<bool()>;

  // Pings the daemon (GET /_ping, with /version as a fallback for the
  // version) within `timeout` and negotiates the API version. Unavailable,
  // with a message that says what to do, when nothing usable answers. An
  // ssh:// endpoint is first forwarded over ssh within `timeout` (ssh's
  // error when that fails); endpoint() then holds the tunnel.
  static Status Connect(const DockerEndpoint& endpoint, std::chrono::milliseconds timeout,
                        std::unique_ptr<DockerClient>* client);

  const DockerEndpoint& endpoint() const { return endpoint_; }
  const std::string& api_version() const { return api_version_; }
  // The command-line tool that matches the daemon: "docker" or "podman".
  const std::string& cli() const { return cli_; }

  // --- Raw HTTP ---------------------------------------------------------
  // `path` is below the version prefix, with its query ("/containers/json?all=1").
  // A non-2xx answer is not an error here: check response->status. Errors
  // are transport failures only (Unavailable, with DescribeConnectError's
  // advice). timeout 0: none.
  Status Call(const std::string& method, const std::string& path, const std::string& body,
              DockerResponse* response,
              std::chrono::milliseconds timeout = kRequestTimeout) const;
  // The same, passing a 2xx body to `on_data` as it arrives (an error body
  // is collected into response->body instead). No overall timeout. Cancelled
  // when `on_data` returns false or `abort` returns true.
  Status CallStreaming(const std::string& method, const std::string& path,
                       const std::string& body, const DataCallback& on_data,
                       DockerResponse* response, const AbortCheck& abort = nullptr) const;

  // --- Containers ---------------------------------------------------------
  // POST /containers/create?name=NAME. NotFound when the image (or a named
  // network) is missing, Conflict when the name is taken.
  Status CreateContainer(const std::string& name, const nlohmann::json& config,
                         std::string* id) const;
  Status StartContainer(const std::string& id) const;
  // Follows stdout and stderr from the container's start until it ends
  // (GET /containers/{id}/logs?follow=1&stdout=1&stderr=1).
  Status FollowLogs(const std::string& id, const LogDemuxer::Callback& on_output,
                    const AbortCheck& abort = nullptr) const;
  // Attaches to a created container's output and returns once the daemon
  // has answered, so that nothing the container prints after a
  // StartContainer is lost. NotFound / Conflict with the daemon's message
  // when it refuses (a daemon that cannot attach before start: follow the
  // logs instead).
  Status AttachOutput(const std::string& id, std::unique_ptr<AttachedOutput>* out) const;
  // POST /containers/{id}/wait?condition=not-running: blocks until it has
  // stopped; its exit code.
  Status WaitContainer(const std::string& id, int* exit_code) const;
  // POST /containers/{id}/kill. A container that is gone or not running is
  // not an error (there is nothing left to signal).
  Status KillContainer(const std::string& id, int signal) const;
  // DELETE /containers/{id}?force=1&v=1. A missing container is not an error.
  Status RemoveContainer(const std::string& id) const;
  Status RenameContainer(const std::string& id, const std::string& new_name) const;
  // POST /commit: a new untagged image of the container's file system with
  // `config` (Cmd, Labels, ...) merged over the container's own. Its id.
  Status CommitContainer(const std::string& id, const nlohmann::json& config,
                         std::string* image_id) const;
  // GET /containers/json?all=1 with `filters` ({"label": ["k=v"]}).
  Status ListContainers(const nlohmann::json& filters, std::vector<ContainerSummary>* out) const;

  // --- Images ------------------------------------------------------------
  Status ImageExists(const std::string& image, bool* exists) const;
  // DELETE /images/{image}. A missing image is not an error.
  Status RemoveImage(const std::string& image) const;
  // POST /images/create. `progress` gets one line per layer state change
  // ("3f4d90098f5b: Pull complete") and the daemon's summary lines.
  // Unavailable with the registry's or daemon's reason when it fails.
  Status PullImage(const std::string& image,
                   const std::function<void(const std::string&)>& progress) const;

 private:
  DockerClient(DockerEndpoint endpoint, std::string api_version, std::string cli)
      : endpoint_(std::move(endpoint)), api_version_(std::move(api_version)), cli_(std::move(cli)) {}

  const DockerEndpoint endpoint_;
  const std::string api_version_;  // "1.41"
  const std::string cli_;          // "docker" or "podman"
};

}  // namespace ladle::env

#endif  // LADLE_ENV_DOCKER_CLIENT_H_
