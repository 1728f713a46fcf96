// Exec in a running container through the Docker Engine API, with the
// connection hijacked for a two-way stream (an interactive shell), and the
// archive upload that copies files in.
//
// POST /exec/{id}/start answers "101 UPGRADED" to a request carrying
// `Connection: Upgrade` and `Upgrade: tcp`, after which the socket carries
// the process's terminal both ways (raw bytes with a TTY, multiplexed frames
// as in LogDemuxer without one). libcurl 7.88 cannot hand such a socket
// over, so HijackedStream connects with CURLOPT_CONNECT_ONLY (after
// ApplyEndpoint: unix socket, TLS or whatever the endpoint needs), writes
// the request itself and reads the answer's header (bounded) with
// curl_easy_send/curl_easy_recv.
//
// Thread-safety: a HijackedStream is used from one thread; the free
// functions may be called from any thread (each uses its own connection).
#ifndef LADLE_ENV_DOCKER_HIJACK_H_
#define LADLE_ENV_DOCKER_HIJACK_H_

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include <curl/curl.h>

#include "core/base/status.h"
#include "env/docker_client.h"

namespace ladle::env {

struct ExecConfig {
  std::vector<std::string> cmd;
  std::vector<std::string> env;  // "K=V"
  std::string working_dir;       // "" = the container's
  bool tty = false;
  bool attach_stdin = false;
};

// POST /containers/{id}/exec. NotFound when the container is gone,
// Conflict when it is not running.
Status ExecCreate(const DockerClient& client, const std::string& container_id, const ExecConfig& config,
                  std::string* exec_id);
// POST /exec/{id}/resize?h=&w=.
Status ExecResize(const DockerClient& client, const std::string& exec_id, int rows, int cols);
// GET /exec/{id}/json: whether it still runs, and its exit code once not
// (-1 when the daemon does not know one).
Status ExecInspect(const DockerClient& client, const std::string& exec_id, bool* running, int* exit_code);

// Parses the status line and headers of an HTTP answer ending with the empty
// line, for tests: *status, *content_length (-1 when absent).
Status ParseHijackAnswer(const std::string& head, long* status, long long* content_length);

// One hijacked connection: POST /exec/{id}/start upgraded to a raw stream.
class HijackedStream {
 public:
  static constexpr size_t kMaxHeader = 64 * 1024;  // the answer's header, at most
  ~HijackedStream();
  HijackedStream(const HijackedStream&) = delete;
  HijackedStream& operator=(const HijackedStream&) = delete;

  // Starts the exec and takes over its connection. NotFound / Conflict with
  // the daemon's message when the exec or its container is gone or stopped;
  // Unavailable for a transport failure or an answer that is not 101/200.
  static Status StartExec(const DockerClient& client, const std::string& exec_id, bool tty,
                          std::unique_ptr<HijackedStream>* stream);

  // The socket, for poll(). Readable data may also sit in a TLS buffer:
  // after poll() says readable, call Read until it returns 0 bytes with OK.
  int fd() const { return fd_; }
  // Reads what is there without blocking: *n bytes (0: nothing now);
  // *eof when the daemon closed its side.
  Status Read(char* buf, size_t size, size_t* n, bool* eof);
  // Writes all of `data`, waiting for the socket as needed (up to 30 s).
  Status Write(const char* data, size_t size);
  // Ends the writing side (the process sees EOF on stdin) where the
  // transport can (a plain socket); else nothing more is written.
  void CloseWrite();

 private:
  HijackedStream(CURL* curl, int fd, std::string pending)
      : curl_(curl), fd_(fd), pending_(std::move(pending)) {}

  CURL* curl_;
  int fd_;
  std::string pending_;  // stream bytes read together with the header
};

// PUT /containers/{id}/archive?path=PATH with `tar` (an uncompressed tar
// stream) as the body: extracts it in the container below PATH, which must
// exist. NotFound when it does not; Invalid/Unavailable with the daemon's
// message otherwise.
Status PutArchive(const DockerClient& client, const std::string& container_id, const std::string& path,
                  const std::string& tar);
// HEAD /containers/{id}/archive?path=PATH: whether PATH exists in the
// container.
Status PathExists(const DockerClient& client, const std::string& container_id, const std::string& path,
                  bool* exists);

}  // namespace ladle::env

#endif  // LADLE_ENV_DOCKER_HIJACK_H_
