#include "env/docker_hijack.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "core/base/text.h"

namespace ladle::env {

using nlohmann::json;

namespace {

constexpr std::chrono::milliseconds kConnectTimeout{10000};
constexpr std::chrono::milliseconds kHeaderTimeout{30000};
constexpr std::chrono::milliseconds kWriteTimeout{30000};
constexpr size_t kMaxErrorBody = 64 * 1024;

using Clock = std::chrono::steady_clock;

Status DaemonError(const std::string& what, long status, const std::string& body) {
  DockerResponse r;
  r.status = status;
  r.body = body;
  std::string msg = what + ": " + r.ErrorMessage();
  switch (status) {
    case 400: return Status::Invalid(msg);
    case 404: return Status::NotFound(msg);
    case 409: return Status::Conflict(msg);
    default: return Status::Unavailable(msg);
  }
}

// The Host header: "localhost" for a unix socket, else HOST:PORT of base_url.
std::string HostHeader(const DockerEndpoint& ep) {
  std::string host = ep.base_url;
  if (auto p = host.find("://"); p != std::string::npos) host = host.substr(p + 3);
  if (auto slash = host.find('/'); slash != std::string::npos) host.resize(slash);
  return host.empty() ? "localhost" : host;
}

bool WaitFd(int fd, short events, Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  if (left <= 0) return false;
  pollfd p{fd, events, 0};
  int r;
  do {
    r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
  } while (r < 0 && errno == EINTR);
  return r > 0;
}

Status ConnectError(const DockerEndpoint& ep, CURL* h, CURLcode code, const char* errbuf) {
  long os_errno = 0;
  curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
  std::string detail = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(code);
  if (code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST || code == CURLE_OPERATION_TIMEDOUT)
    return Status::Unavailable(DescribeConnectError(ep, static_cast<int>(os_errno), detail,
                                                    code == CURLE_OPERATION_TIMEDOUT));
  return Status::Unavailable("docker daemon at " + ep.host + ": " + detail);
}

size_t Collect(char* data, size_t size, size_t count, void* user) {
  auto* body = static_cast<std::string*>(user);
  size_t len = size * count;
  if (body->size() < kMaxErrorBody) body->append(data, std::min(len, kMaxErrorBody - body->size()));
  return len;
}

// One plain request with its own handle: PUT with a body, or HEAD.
Status Raw(const DockerClient& client, const std::string& method, const std::string& path,
           const std::string& body, const char* content_type, long* status, std::string* response) {
  const DockerEndpoint& ep = client.endpoint();
  CURL* h = curl_easy_init();
  if (h == nullptr) return Status::Internal("curl_easy_init failed");
  char errbuf[CURL_ERROR_SIZE] = {0};
  std::string url = ep.base_url + "/v" + client.api_version() + path;
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  ApplyEndpoint(h, ep);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(kConnectTimeout.count()));
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(DockerClient::kRequestTimeout.count() * 1000));
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, Collect);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, response);
  curl_slist* headers = nullptr;
  if (method == "HEAD") {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
    headers = curl_slist_append(headers, (std::string("Content-Type: ") + content_type).c_str());
    headers = curl_slist_append(headers, "Expect:");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  }
  CURLcode code = curl_easy_perform(h);
  Status s = code == CURLE_OK ? Status::OK() : ConnectError(ep, h, code, errbuf);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
  if (headers != nullptr) curl_slist_free_all(headers);
  curl_easy_cleanup(h);
  return s;
}

}  // namespace

Status ExecCreate(const DockerClient& client, const std::string& container_id, const ExecConfig& config,
                  std::string* exec_id) {
  json body = {{"AttachStdin", config.attach_stdin},
               {"AttachStdout", true},
               {"AttachStderr", true},
               {"Tty", config.tty},
               {"Cmd", config.cmd},
               {"Env", config.env}};
  if (!config.working_dir.empty()) body["WorkingDir"] = config.working_dir;
  std::string text;
  try {
    text = body.dump();
  } catch (const json::exception&) {
    return Status::Invalid("exec: the command or a variable is not valid UTF-8");
  }
  DockerResponse r;
  Status s = client.Call("POST", "/containers/" + PercentEncode(container_id) + "/exec", text, &r);
  if (!s.ok()) return s;
  if (r.status != 201) return DaemonError("exec in the container", r.status, r.body);
  json j = json::parse(r.body, nullptr, false);
  if (!j.is_object() || !j.contains("Id") || !j["Id"].is_string())
    return Status::Unavailable("exec in the container: no Id in the daemon's answer");
  *exec_id = j["Id"].get<std::string>();
  return Status::OK();
}

Status ExecResize(const DockerClient& client, const std::string& exec_id, int rows, int cols) {
  DockerResponse r;
  Status s = client.Call("POST", "/exec/" + PercentEncode(exec_id) + "/resize?h=" + std::to_string(rows) +
                                     "&w=" + std::to_string(cols),
                         "", &r, std::chrono::milliseconds(10000));
  if (!s.ok()) return s;
  if (r.status / 100 != 2) return DaemonError("resize the terminal", r.status, r.body);
  return Status::OK();
}

Status ExecInspect(const DockerClient& client, const std::string& exec_id, bool* running, int* exit_code) {
  DockerResponse r;
  Status s = client.Call("GET", "/exec/" + PercentEncode(exec_id) + "/json", "", &r,
                         std::chrono::milliseconds(10000));
  if (!s.ok()) return s;
  if (r.status != 200) return DaemonError("inspect the exec", r.status, r.body);
  json j = json::parse(r.body, nullptr, false);
  if (!j.is_object()) return Status::Unavailable("inspect the exec: unexpected answer");
  *running = j.contains("Running") && j["Running"].is_boolean() && j["Running"].get<bool>();
  *exit_code = j.contains("ExitCode") && j["ExitCode"].is_number_integer() ? j["ExitCode"].get<int>() : -1;
  return Status::OK();
}

Status ParseHijackAnswer(const std::string& head, long* status, long long* content_length) {
  *content_length = -1;
  auto eol = head.find("\r\n");
  std::string line = head.substr(0, eol);
  if (line.rfind("HTTP/1.", 0) != 0 || line.size() < 12 || line[8] != ' ')
    return Status::Unavailable("the docker daemon's answer is not HTTP: '" + line.substr(0, 80) + "'");
  char* end = nullptr;
  long code = std::strtol(line.c_str() + 9, &end, 10);
  if (end != line.c_str() + 12 || code < 100 || code > 599)
    return Status::Unavailable("the docker daemon's answer has a bad status line: '" + line.substr(0, 80) + "'");
  *status = code;
  size_t pos = eol == std::string::npos ? head.size() : eol + 2;
  while (pos < head.size()) {
    auto next = head.find("\r\n", pos);
    if (next == std::string::npos) next = head.size();
    std::string_view h(head.data() + pos, next - pos);
    pos = next + 2;
    auto colon = h.find(':');
    if (colon == std::string_view::npos) continue;
    if (Lower(h.substr(0, colon)) == "content-length") {
      std::string v(Trim(h.substr(colon + 1)));
      long long n = std::strtoll(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n < 0)
        return Status::Unavailable("the docker daemon's answer has a bad Content-Length: '" + v + "'");
      *content_length = n;
    }
  }
  return Status::OK();
}

// --- HijackedStream ------------------------------------------------------------

HijackedStream::~HijackedStream() {
  if (curl_ != nullptr) curl_easy_cleanup(curl_);
}

Status HijackedStream::StartExec(const DockerClient& client, const std::string& exec_id, bool tty,
                                 std::unique_ptr<HijackedStream>* stream) {
  const DockerEndpoint& ep = client.endpoint();
  CURL* h = curl_easy_init();
  if (h == nullptr) return Status::Internal("curl_easy_init failed");
  std::unique_ptr<HijackedStream> s(new HijackedStream(h, -1, ""));
  char errbuf[CURL_ERROR_SIZE] = {0};
  std::string url = ep.base_url + "/";
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  ApplyEndpoint(h, ep);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(kConnectTimeout.count()));
  CURLcode code = curl_easy_perform(h);
  if (code != CURLE_OK) return ConnectError(ep, h, code, errbuf);
  curl_socket_t fd = CURL_SOCKET_BAD;
  if (curl_easy_getinfo(h, CURLINFO_ACTIVESOCKET, &fd) != CURLE_OK || fd == CURL_SOCKET_BAD)
    return Status::Unavailable("docker daemon at " + ep.host + ": no socket after connecting");
  s->fd_ = fd;

  std::string body = json{{"Detach", false}, {"Tty", tty}}.dump();
  std::string request = "POST /v" + client.api_version() + "/exec/" + PercentEncode(exec_id) +
                        "/start HTTP/1.1\r\nHost: " + HostHeader(ep) +
                        "\r\nUser-Agent: ladle\r\nContent-Type: application/json\r\n"
                        "Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: " +
                        std::to_string(body.size()) + "\r\n\r\n" + body;
  Status st = s->Write(request.data(), request.size());
  if (!st.ok()) return st.WithContext("start the exec");

  // The answer's header, bounded in size and time; what follows it is the stream.
  std::string head;
  auto deadline = Clock::now() + kHeaderTimeout;
  size_t end = std::string::npos;
  char buf[4096];
  while ((end = head.find("\r\n\r\n")) == std::string::npos) {
    if (head.size() > kMaxHeader)
      return Status::Unavailable("start the exec: the daemon's answer header is over 64 KiB");
    size_t n = 0;
    bool eof = false;
    st = s->Read(buf, sizeof(buf), &n, &eof);
    if (!st.ok()) return st.WithContext("start the exec");
    if (eof) return Status::Unavailable("start the exec: the docker daemon closed the connection before answering");
    if (n == 0 && !WaitFd(fd, POLLIN, deadline))
      return Status::Unavailable("start the exec: no answer from the docker daemon in 30 s");
    head.append(buf, n);
  }
  std::string rest = head.substr(end + 4);
  head.resize(end + 2);
  long status = 0;
  long long length = -1;
  st = ParseHijackAnswer(head, &status, &length);
  if (!st.ok()) return st;
  if (status == 101 || status == 200) {
    s->pending_ = std::move(rest);
    *stream = std::move(s);
    return Status::OK();
  }
  // An error: its body (bounded) is the daemon's message.
  size_t want = length < 0 ? kMaxErrorBody : static_cast<size_t>(std::min<long long>(length, kMaxErrorBody));
  while (rest.size() < want) {
    size_t n = 0;
    bool eof = false;
    if (!s->Read(buf, sizeof(buf), &n, &eof).ok() || eof) break;
    if (n == 0 && !WaitFd(fd, POLLIN, deadline)) break;
    rest.append(buf, std::min(n, want - rest.size()));
  }
  return DaemonError("start the exec", status, rest);
}

Status HijackedStream::Read(char* buf, size_t size, size_t* n, bool* eof) {
  *n = 0;
  *eof = false;
  if (!pending_.empty()) {
    *n = std::min(size, pending_.size());
    std::copy(pending_.begin(), pending_.begin() + static_cast<long>(*n), buf);
    pending_.erase(0, *n);
    return Status::OK();
  }
  size_t got = 0;
  CURLcode code = curl_easy_recv(curl_, buf, size, &got);
  if (code == CURLE_AGAIN) return Status::OK();
  if (code == CURLE_OK) {
    *n = got;
    *eof = got == 0;
    return Status::OK();
  }
  // A reset connection (the container removed under us) ends the stream.
  if (code == CURLE_RECV_ERROR || code == CURLE_GOT_NOTHING) {
    *eof = true;
    return Status::OK();
  }
  return Status::Unavailable(std::string("read from the docker daemon: ") + curl_easy_strerror(code));
}

Status HijackedStream::Write(const char* data, size_t size) {
  auto deadline = Clock::now() + kWriteTimeout;
  while (size > 0) {
    size_t sent = 0;
    CURLcode code = curl_easy_send(curl_, data, size, &sent);
    if (code == CURLE_AGAIN) {
      if (!WaitFd(fd_, POLLOUT, deadline))
        return Status::Unavailable("write to the docker daemon: it takes nothing for 30 s");
      continue;
    }
    if (code != CURLE_OK)
      return Status::Unavailable(std::string("write to the docker daemon: ") + curl_easy_strerror(code));
    data += sent;
    size -= sent;
  }
  return Status::OK();
}

void HijackedStream::CloseWrite() {
  // Over TLS a half-close would end the session: only plain sockets do it.
  char* scheme = nullptr;
  curl_easy_getinfo(curl_, CURLINFO_SCHEME, &scheme);
  if (scheme != nullptr && Lower(scheme) == "https") return;
  ::shutdown(fd_, SHUT_WR);
}

// --- Archives --------------------------------------------------------------------

Status PutArchive(const DockerClient& client, const std::string& container_id, const std::string& path,
                  const std::string& tar) {
  long status = 0;
  std::string body;
  Status s = Raw(client, "PUT", "/containers/" + PercentEncode(container_id) + "/archive?path=" + PercentEncode(path),
                 tar, "application/x-tar", &status, &body);
  if (!s.ok()) return s;
  if (status == 200) return Status::OK();
  return DaemonError("copy into " + path, status, body);
}

Status PathExists(const DockerClient& client, const std::string& container_id, const std::string& path,
                  bool* exists) {
  long status = 0;
  std::string body;
  Status s = Raw(client, "HEAD", "/containers/" + PercentEncode(container_id) + "/archive?path=" + PercentEncode(path),
                 "", "", &status, &body);
  if (!s.ok()) return s;
  if (status != 200 && status != 404) return DaemonError("look up " + path + " in the container", status, body);
  *exists = status == 200;
  return Status::OK();
}

}  // namespace ladle::env
