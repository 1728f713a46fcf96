#include "env/docker_client.h"
#include "core/base/text.h"

#include <curl/curl.h>
#include <errno.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <utility>

#include "core/http.h"
#include "env/ssh_tunnel.h"

namespace ladle::env {

using nlohmann::json;

namespace {

constexpr std::chrono::milliseconds kConnectTimeout{10000};
// An error or listing body bigger than this is cut: it is only ever read for
// a message or a few fields.
constexpr size_t kMaxCollectedBody = 64u << 20;
constexpr char kRunHint[] = "is dockerd running? start it, or use --backend local";

// j[key] when j is an object and that is a string, else "": the daemon's
// JSON is read without trusting its shape (json::value throws on a type).
std::string Str(const json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}


// curl_global_init is not guaranteed thread-safe on every build: once, first.
void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// The state of one HTTP exchange, shared with curl's callbacks.
struct Exchange {
  CURL* curl = nullptr;
  long status = 0;
  std::map<std::string, std::string> headers;  // lower-case names, last response only
  std::string body;                            // collected unless streamed
  const DockerClient::DataCallback* on_data = nullptr;
  const DockerClient::AbortCheck* abort = nullptr;
  bool stopped = false;  // on_data or abort ended it
  bool head_done = false;  // the final response's header has ended
};

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* ex = static_cast<Exchange*>(user);
  std::string_view line(data, size * count);
  if (line == "\r\n" || line == "\n") {
    ex->head_done = ex->status / 100 != 1;
  } else if (line.substr(0, 5) == "HTTP/") {  // a new response (after 100 Continue, say)
    ex->headers.clear();
    auto sp = line.find(' ');
    ex->status = sp == std::string_view::npos ? 0 : std::atol(std::string(line.substr(sp + 1, 3)).c_str());
  } else if (auto colon = line.find(':'); colon != std::string_view::npos) {
    ex->headers[Lower(line.substr(0, colon))] = std::string(Trim(line.substr(colon + 1)));
  }
  return size * count;
}

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  auto* ex = static_cast<Exchange*>(user);
  size_t len = size * count;
  if (ex->on_data != nullptr && ex->status / 100 == 2) {
    if ((*ex->on_data)(std::string_view(data, len))) return len;
    ex->stopped = true;
    return 0;  // makes curl end the transfer with CURLE_WRITE_ERROR
  }
  if (ex->body.size() < kMaxCollectedBody) ex->body.append(data, std::min(len, kMaxCollectedBody - ex->body.size()));
  return len;
}

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* ex = static_cast<Exchange*>(user);
  if (ex->abort != nullptr && *ex->abort && (*ex->abort)()) {
    ex->stopped = true;
    return 1;
  }
  return 0;
}

class Curl {
 public:
  Curl() : h_(curl_easy_init()) {}
  ~Curl() {
    if (headers_ != nullptr) curl_slist_free_all(headers_);
    if (h_ != nullptr) curl_easy_cleanup(h_);
  }
  Curl(const Curl&) = delete;
  Curl& operator=(const Curl&) = delete;
  CURL* get() const { return h_; }
  void AddHeader(const char* header) { headers_ = curl_slist_append(headers_, header); }
  curl_slist* headers() const { return headers_; }

 private:
  CURL* h_;
  curl_slist* headers_ = nullptr;
};

void SetMethodAndBody(Curl* c, const std::string& method, const std::string& body) {
  CURL* h = c->get();
  if (method == "GET") return;
  if (method == "POST") {
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.c_str());
    c->AddHeader("Content-Type: application/json");
    c->AddHeader("Expect:");  // the daemon answers at once; skip the 100-continue round trip
  } else {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
  }
}

// Turns curl's failure into the status the caller reports.
Status TransportError(const DockerEndpoint& ep, CURLcode code, const Exchange& ex, const char* errbuf) {
  if (ex.stopped) return Status::Cancelled("stopped while reading from the docker daemon");
  long os_errno = 0;
  curl_easy_getinfo(ex.curl, CURLINFO_OS_ERRNO, &os_errno);
  std::string detail = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(code);
  bool before_answer = ex.status == 0;
  if (before_answer && (code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST ||
                        code == CURLE_OPERATION_TIMEDOUT)) {
    return Status::Unavailable(
        DescribeConnectError(ep, static_cast<int>(os_errno), detail, code == CURLE_OPERATION_TIMEDOUT));
  }
  return Status::Unavailable("docker daemon at " + ep.host + ": " + detail);
}

}  // namespace

// How a handle reaches the daemon: its socket, no proxy, no signals.
void ApplyEndpoint(CURL* h, const DockerEndpoint& ep) {
  if (!ep.socket_path.empty()) curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, ep.socket_path.c_str());
  if (ep.tls) {  // docs/spoons.md "A shared host over tcp and TLS"
    if (!ep.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, ep.ca_file.c_str());
    if (!ep.cert_file.empty()) curl_easy_setopt(h, CURLOPT_SSLCERT, ep.cert_file.c_str());
    if (!ep.key_file.empty()) curl_easy_setopt(h, CURLOPT_SSLKEY, ep.key_file.c_str());
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, ep.tls_verify ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, ep.tls_verify ? 2L : 0L);
  }
  curl_easy_setopt(h, CURLOPT_PROXY, "");  // never through $http_proxy
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);  // threads: no SIGALRM for timeouts
}

namespace {

// Sets up `c` for one request to a full path, its callbacks writing to
// `ex`. `body` and `errbuf` must outlive the transfer.
void Configure(Curl* c, const DockerEndpoint& ep, const std::string& method, const std::string& path,
               const std::string& body, std::chrono::milliseconds timeout, Exchange* ex, char* errbuf) {
  CURL* h = c->get();
  ex->curl = h;
  std::string url = ep.base_url + path;
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  ApplyEndpoint(h, ep);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, ex);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, ex);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(timeout.count() > 0 ? std::min(timeout, kConnectTimeout).count()
                                                         : kConnectTimeout.count()));
  if (timeout.count() > 0) curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  if (ex->abort != nullptr) {
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, OnProgress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, ex);
  }
  SetMethodAndBody(c, method, body);
  if (c->headers() != nullptr) curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->headers());
}

// One request to a full path (with or without the version prefix).
Status Perform(const DockerEndpoint& ep, const std::string& method, const std::string& path,
               const std::string& body, std::chrono::milliseconds timeout, Exchange* ex) {
  GlobalInit();
  Curl c;
  if (c.get() == nullptr) return Status::Internal("curl_easy_init failed");
  char errbuf[CURL_ERROR_SIZE] = {0};
  Configure(&c, ep, method, path, body, timeout, ex, errbuf);
  CURLcode code = curl_easy_perform(c.get());
  Status s = code == CURLE_OK ? Status::OK() : TransportError(ep, code, *ex, errbuf);
  ex->curl = nullptr;
  return s;
}

// "1.41" -> {1, 41}; {-1, -1} when malformed.
std::pair<int, int> ParseVersion(const std::string& v) {
  auto dot = v.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 >= v.size()) return {-1, -1};
  for (size_t i = 0; i < v.size(); ++i)
    if (i != dot && !std::isdigit(static_cast<unsigned char>(v[i]))) return {-1, -1};
  return {std::atoi(v.substr(0, dot).c_str()), std::atoi(v.substr(dot + 1).c_str())};
}

// The daemon's API version: /_ping's API-Version header (Docker and Podman
// both send it), else /version's ApiVersion.
Status DaemonApiVersion(const DockerEndpoint& ep, std::chrono::milliseconds timeout, std::string* version) {
  Exchange ping;
  Status s = Perform(ep, "GET", "/_ping", "", timeout, &ping);
  if (!s.ok()) return s;
  if (ping.status != 200)
    return Status::Unavailable("docker daemon at " + ep.host + ": /_ping answered HTTP " +
                               std::to_string(ping.status) + " (is this a docker daemon? " + kRunHint + ")");
  if (auto it = ping.headers.find("api-version"); it != ping.headers.end() && ParseVersion(it->second).first >= 0) {
    *version = it->second;
    return Status::OK();
  }
  Exchange ver;
  s = Perform(ep, "GET", "/version", "", timeout, &ver);
  if (!s.ok()) return s;
  json j = json::parse(ver.body, nullptr, false);
  if (ver.status == 200 && !Str(j, "ApiVersion").empty()) {
    *version = Str(j, "ApiVersion");
    return Status::OK();
  }
  return Status::Unavailable("docker daemon at " + ep.host + ": no API version in /_ping or /version");
}

ContainerSummary ParseSummary(const json& c) {
  ContainerSummary out;
  out.id = Str(c, "Id");
  if (c.contains("Names") && c["Names"].is_array() && !c["Names"].empty() && c["Names"][0].is_string()) {
    out.name = c["Names"][0].get<std::string>();
    if (!out.name.empty() && out.name[0] == '/') out.name.erase(0, 1);
  }
  out.state = Str(c, "State");
  out.image_id = Str(c, "ImageID");
  if (c.contains("Labels") && c["Labels"].is_object())
    for (auto& [k, v] : c["Labels"].items())
      if (v.is_string()) out.labels[k] = v.get<std::string>();
  return out;
}

// Reports each layer's state changes from the JSON lines of a pull.
class PullProgress {
 public:
  explicit PullProgress(const std::function<void(const std::string&)>& report) : report_(report) {}

  bool Feed(std::string_view data) {
    pending_.append(data.data(), data.size());
    for (size_t nl; (nl = pending_.find('\n')) != std::string::npos;) {
      Line(pending_.substr(0, nl));
      pending_.erase(0, nl + 1);
    }
    return true;
  }
  void Finish() {
    if (!Trim(pending_).empty()) Line(pending_);
    pending_.clear();
  }
  const std::string& error() const { return error_; }

 private:
  void Line(const std::string& line) {
    json j = json::parse(line, nullptr, false);
    if (!j.is_object()) return;
    if (j.contains("error") && j["error"].is_string()) {
      error_ = j["error"].get<std::string>();
      return;
    }
    std::string id = Str(j, "id"), status = Str(j, "status");
    if (status.empty()) return;
    std::string& last = last_status_[id];
    if (last == status) return;  // "Downloading" again, with more bytes
    last = status;
    if (report_) report_(id.empty() ? status : id + ": " + status);
  }

  const std::function<void(const std::string&)>& report_;
  std::string pending_;
  std::string error_;
  std::map<std::string, std::string> last_status_;
};

// The API carries text as UTF-8; other bytes in a script, a variable or a
// path cannot reach the daemon unchanged, so they are refused, not mangled.
Status DumpJson(const json& j, const std::string& what, std::string* out) {
  try {
    *out = j.dump();
    return Status::OK();
  } catch (const json::exception&) {
    return Status::Invalid(what + ": not valid UTF-8 (the script, a variable, a label or a path)");
  }
}

Status ResponseError(const std::string& what, const DockerResponse& r) {
  std::string msg = what + ": " + ExplainDaemonError(r.ErrorMessage());
  switch (r.status) {
    case 400: return Status::Invalid(msg);
    case 404: return Status::NotFound(msg);
    case 409: return Status::Conflict(msg);
    default: return Status::Unavailable(msg);
  }
}

}  // namespace

std::string DockerHostFromEnvironment() {
  const char* v = std::getenv("DOCKER_HOST");
  return v != nullptr && *v != '\0' ? v : kDefaultDockerHost;
}

DockerTlsEnvironment DockerTlsEnvironment::FromProcess() {
  auto get = [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v ? v : "");
  };
  return DockerTlsEnvironment{get("DOCKER_TLS"), get("DOCKER_TLS_VERIFY"), get("DOCKER_CERT_PATH"),
                              get("HOME")};
}

Status ParseDockerHost(const std::string& docker_host, DockerEndpoint* endpoint) {
  return ParseDockerHost(docker_host, DockerTlsEnvironment::FromProcess(), endpoint);
}

namespace {

// The certificates of a TLS endpoint, as the docker CLI finds them
// (docs/spoons.md "A shared host over tcp and TLS").
Status FindTlsFiles(const DockerTlsEnvironment& env, DockerEndpoint* ep) {
  std::string dir = env.cert_path;
  if (dir.empty()) {
    if (env.home.empty()) return Status::Invalid("DOCKER_TLS_VERIFY is set but neither DOCKER_CERT_PATH nor HOME is");
    dir = env.home + "/.docker";
  }
  auto exists = [](const std::string& path) { return ::access(path.c_str(), R_OK) == 0; };
  std::string where = env.cert_path.empty() ? " (DOCKER_CERT_PATH is unset: ~/.docker)" : " (DOCKER_CERT_PATH)";
  std::string ca = dir + "/ca.pem", cert = dir + "/cert.pem", key = dir + "/key.pem";
  if (exists(ca)) ep->ca_file = ca;
  else if (ep->tls_verify)
    return Status::Invalid("TLS to " + ep->host + ": the CA certificate " + ca +
                           " is missing or unreadable" + where);
  bool has_cert = exists(cert), has_key = exists(key);
  if (has_cert != has_key)
    return Status::Invalid("TLS to " + ep->host + ": the client " + (has_cert ? "key " + key : "certificate " + cert) +
                           " is missing or unreadable" + where);
  if (!has_cert && ep->tls_verify)
    return Status::Invalid("TLS to " + ep->host + ": the client certificate " + cert +
                           " is missing or unreadable" + where);
  if (has_cert) {
    ep->cert_file = cert;
    ep->key_file = key;
  }
  return Status::OK();
}

}  // namespace

Status ParseDockerHost(const std::string& docker_host, const DockerTlsEnvironment& tls,
                       DockerEndpoint* endpoint) {
  std::string host = docker_host.empty() ? kDefaultDockerHost : docker_host;
  DockerEndpoint ep;
  ep.host = host;
  if (host.rfind("unix://", 0) == 0) {
    ep.socket_path = host.substr(7);
    ep.base_url = "http://localhost";
    if (ep.socket_path.empty() || ep.socket_path[0] != '/')
      return Status::Invalid("DOCKER_HOST '" + host + "': expected unix:///ABSOLUTE/PATH");
  } else if (host.rfind("tcp://", 0) == 0) {
    std::string rest = host.substr(6);
    while (!rest.empty() && rest.back() == '/') rest.pop_back();
    if (rest.empty() || rest.find('/') != std::string::npos)
      return Status::Invalid("DOCKER_HOST '" + host + "': expected tcp://HOST:PORT");
    bool has_port = rest[0] == '[' ? rest.find("]:") != std::string::npos
                                   : rest.find(':') != std::string::npos;
    ep.tls_verify = !tls.tls_verify.empty();
    ep.tls = ep.tls_verify || !tls.tls.empty();
    ep.base_url = (ep.tls ? "https://" : "http://") + rest + (has_port ? "" : ep.tls ? ":2376" : ":2375");
    if (ep.tls) {
      Status s = FindTlsFiles(tls, &ep);
      if (!s.ok()) return s;
    }
  } else if (host.rfind("ssh://", 0) == 0) {
    SshTarget target;
    Status s = ParseSshUrl(host, "DOCKER_HOST", &target);
    if (!s.ok()) return s;
    ep.ssh_user = target.user;
    ep.ssh_host = target.host;
    ep.ssh_port = target.port;
    ep.base_url = "http://localhost";
  } else {
    return Status::Invalid("DOCKER_HOST '" + host +
                           "': ladle speaks to unix:///PATH, tcp://HOST:PORT and ssh://[USER@]HOST[:PORT] only");
  }
  *endpoint = ep;
  return Status::OK();
}

std::string DescribeConnectError(const DockerEndpoint& ep, int os_errno, const std::string& curl_error,
                                 bool timed_out) {
  std::string where = "docker daemon at " + ep.host + ": ";
  if (timed_out) return where + "no answer in time (is dockerd running and healthy? start it, or use --backend local)";
  if (os_errno == EACCES || os_errno == EPERM) {
    std::string what = ep.socket_path.empty() ? ep.host : ep.socket_path;
    return "permission denied on " + what + " (add yourself to the docker group or run as root)";
  }
  if (os_errno == ENOENT) return where + "no such socket (" + kRunHint + ")";
  if (os_errno == ECONNREFUSED) return where + "connection refused (" + kRunHint + ")";
  return where + curl_error + " (" + kRunHint + ")";
}

// docs/backends.md "DOCKER_HOST and Podman": Podman 4.3 (Debian 12) reports
// "container-init binary not found on the host: stat .../catatonit" or
// "lookup init binary: exec: \"catatonit\": executable file not found".
std::string ExplainDaemonError(const std::string& message) {
  if (message.find("catatonit") == std::string::npos && message.find("init binary") == std::string::npos)
    return message;
  return message + " (the daemon has no init binary for HostConfig.Init, which ladle sets on every "
                   "step container; on Podman install catatonit: apt-get install catatonit)";
}

std::string DaemonCliFromVersion(const std::string& version_body) {
  json j = json::parse(version_body, nullptr, false);
  if (!j.is_object()) return "docker";
  auto podman = [](const json& name) {
    return name.is_string() && name.get<std::string>().find("Podman") != std::string::npos;
  };
  if (j.contains("Platform") && j["Platform"].is_object() && podman(j["Platform"].value("Name", json())))
    return "podman";
  if (j.contains("Components") && j["Components"].is_array())
    for (const json& c : j["Components"])
      if (c.is_object() && podman(c.value("Name", json()))) return "podman";
  return "docker";
}

int CompareApiVersions(const std::string& a, const std::string& b) {
  auto va = ParseVersion(a), vb = ParseVersion(b);
  return va < vb ? -1 : va > vb ? 1 : 0;
}

void SplitImageReference(const std::string& image, std::string* name, std::string* tag) {
  if (auto at = image.find('@'); at != std::string::npos) {
    *name = image.substr(0, at);
    *tag = image.substr(at + 1);
    return;
  }
  auto slash = image.rfind('/');
  auto colon = image.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    *name = image.substr(0, colon);
    *tag = image.substr(colon + 1);
  } else {
    *name = image;
    *tag = "latest";
  }
}

// --- LogDemuxer ---------------------------------------------------------------

void LogDemuxer::Feed(std::string_view data) {
  while (!data.empty()) {
    if (remaining_ == 0) {
      size_t take = std::min(sizeof(header_) - header_len_, data.size());
      std::memcpy(header_ + header_len_, data.data(), take);
      header_len_ += take;
      data.remove_prefix(take);
      if (header_len_ < sizeof(header_)) return;
      header_len_ = 0;
      stream_ = header_[0];
      remaining_ = (uint32_t(header_[4]) << 24) | (uint32_t(header_[5]) << 16) |
                   (uint32_t(header_[6]) << 8) | uint32_t(header_[7]);
      continue;
    }
    size_t take = std::min<size_t>(remaining_, data.size());
    Emit(data.substr(0, take));
    remaining_ -= static_cast<uint32_t>(take);
    data.remove_prefix(take);
  }
}

void LogDemuxer::Emit(std::string_view payload) {
  if (stream_ == 3) {
    daemon_error_.append(payload.data(), std::min<size_t>(payload.size(), 64 * 1024));
  } else if (on_output_) {
    on_output_(stream_ == 2 ? OutputStream::kStderr : OutputStream::kStdout, payload);
  }
}

std::string DockerResponse::ErrorMessage() const {
  json j = json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("message") && j["message"].is_string()) return j["message"].get<std::string>();
  std::string text(Trim(body));
  return text.empty() ? "HTTP " + std::to_string(status) : text;
}

// --- DockerClient -------------------------------------------------------------

Status DockerClient::Connect(const DockerEndpoint& given, std::chrono::milliseconds timeout,
                             std::unique_ptr<DockerClient>* client) {
  DockerEndpoint endpoint = given;
  if (!endpoint.ssh_host.empty() && endpoint.socket_path.empty()) {
    // docs/spoons.md "A shared host over ssh": every call, streaming and
    // hijacked, goes through the forwarded socket.
    std::unique_ptr<SshTunnel> tunnel;
    Status t = SshTunnel::ForwardSocket(SshTarget{endpoint.ssh_user, endpoint.ssh_host, endpoint.ssh_port},
                                        SshTunnel::kRemoteDockerSocket,
                                        std::max<std::chrono::milliseconds>(timeout, SshTunnel::kDefaultTimeout),
                                        &tunnel);
    if (!t.ok()) return t.WithContext("docker daemon at " + endpoint.host);
    endpoint.socket_path = tunnel->local();
    endpoint.tunnel = std::shared_ptr<const SshTunnel>(std::move(tunnel));
  }
  std::string daemon_version;
  Status s = DaemonApiVersion(endpoint, timeout, &daemon_version);
  if (!s.ok()) return s;
  if (CompareApiVersions(daemon_version, kMinApiVersion) < 0)
    return Status::Unavailable("docker daemon at " + endpoint.host + " speaks API " + daemon_version +
                               "; ladle needs " + kMinApiVersion + " or newer (Docker 17.06+, Podman 2+)");
  std::string version = CompareApiVersions(daemon_version, kMaxApiVersion) < 0 ? daemon_version : kMaxApiVersion;
  // Which CLI matches the daemon, for the commands ladle prints (a kept
  // container's shell). Best effort: a daemon without /version is Docker.
  Exchange ver;
  std::string cli = "docker";
  if (Perform(endpoint, "GET", "/version", "", timeout, &ver).ok() && ver.status == 200)
    cli = DaemonCliFromVersion(ver.body);
  client->reset(new DockerClient(endpoint, version, cli));
  return Status::OK();
}

Status DockerClient::Call(const std::string& method, const std::string& path, const std::string& body,
                          DockerResponse* response, std::chrono::milliseconds timeout) const {
  Exchange ex;
  Status s = Perform(endpoint_, method, "/v" + api_version_ + path, body, timeout, &ex);
  response->status = ex.status;
  response->body = std::move(ex.body);
  return s;
}

Status DockerClient::CallStreaming(const std::string& method, const std::string& path,
                                   const std::string& body, const DataCallback& on_data,
                                   DockerResponse* response, const AbortCheck& abort) const {
  Exchange ex;
  ex.on_data = &on_data;
  ex.abort = abort ? &abort : nullptr;
  Status s = Perform(endpoint_, method, "/v" + api_version_ + path, body, std::chrono::milliseconds(0), &ex);
  response->status = ex.status;
  response->body = std::move(ex.body);
  return s;
}

Status DockerClient::CreateContainer(const std::string& name, const json& config, std::string* id) const {
  std::string body;
  Status s = DumpJson(config, "create container " + name, &body);
  if (!s.ok()) return s;
  DockerResponse r;
  s = Call("POST", "/containers/create?name=" + PercentEncode(name), body, &r);
  if (!s.ok()) return s;
  if (r.status != 201) return ResponseError("create container " + name, r);
  json j = json::parse(r.body, nullptr, false);
  *id = Str(j, "Id");
  if (id->empty()) return Status::Unavailable("create container " + name + ": no Id in the daemon's answer");
  return Status::OK();
}

Status DockerClient::StartContainer(const std::string& id) const {
  DockerResponse r;
  Status s = Call("POST", "/containers/" + id + "/start", "", &r);
  if (!s.ok()) return s;
  if (r.status != 204 && r.status != 304) return ResponseError("start container", r);
  return Status::OK();
}

Status DockerClient::FollowLogs(const std::string& id, const LogDemuxer::Callback& on_output,
                                const AbortCheck& abort) const {
  LogDemuxer demux(on_output);
  DockerResponse r;
  Status s = CallStreaming("GET", "/containers/" + id + "/logs?follow=1&stdout=1&stderr=1",
                           "", [&](std::string_view d) { demux.Feed(d); return true; }, &r, abort);
  if (!s.ok()) return s.WithContext("read the container's output");
  if (r.status != 200) return ResponseError("read the container's output", r);
  if (!demux.daemon_error().empty())
    return Status::Unavailable("read the container's output: " + demux.daemon_error());
  return Status::OK();
}

// --- AttachedOutput ------------------------------------------------------------

// One attach request driven by a curl multi handle, so that AttachOutput can
// return once the answer's header is in and Follow read the body later.
struct AttachedOutput::Impl {
  Curl curl;
  CURLM* multi = curl_multi_init();
  Exchange ex;
  char errbuf[CURL_ERROR_SIZE] = {0};
  DockerEndpoint ep;       // for messages
  const std::string body;  // empty; POSTFIELDS points at it
  DockerClient::DataCallback on_data;
  bool done = false;  // the transfer has ended; `result` holds how
  CURLcode result = CURLE_OK;

  ~Impl() {
    if (multi != nullptr) {
      curl_multi_remove_handle(multi, curl.get());
      curl_multi_cleanup(multi);
    }
  }
  // Runs the transfer until `until()` or its end; polls `abort` between
  // waits of at most a second.
  Status Drive(const std::function<bool()>& until, const AbortCheck& abort) {
    while (!done && !until()) {
      if (abort && abort()) {
        ex.stopped = true;
        return TransportError(ep, CURLE_ABORTED_BY_CALLBACK, ex, errbuf);
      }
      int running = 0;
      CURLMcode mc = curl_multi_perform(multi, &running);
      if (mc == CURLM_OK && running == 0) {
        int left = 0;
        CURLMsg* msg = curl_multi_info_read(multi, &left);
        done = true;
        result = msg != nullptr && msg->msg == CURLMSG_DONE ? msg->data.result : CURLE_RECV_ERROR;
        break;
      }
      if (mc == CURLM_OK && !until()) mc = curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
      if (mc != CURLM_OK)
        return Status::Unavailable("docker daemon at " + ep.host + ": " + curl_multi_strerror(mc));
    }
    if (done && result != CURLE_OK) return TransportError(ep, result, ex, errbuf);
    return Status::OK();
  }
};

AttachedOutput::AttachedOutput(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AttachedOutput::~AttachedOutput() = default;

Status AttachedOutput::Follow(const LogDemuxer::Callback& on_output, const AbortCheck& abort) {
  Impl& a = *impl_;
  LogDemuxer demux(on_output);
  // What arrived with the header was collected; the rest goes straight on.
  demux.Feed(a.ex.body);
  a.ex.body.clear();
  a.on_data = [&](std::string_view d) { demux.Feed(d); return true; };
  a.ex.on_data = &a.on_data;
  Status s = a.Drive([] { return false; }, abort);
  a.ex.on_data = nullptr;
  if (!s.ok()) return s.WithContext("read the container's output");
  if (!demux.daemon_error().empty())
    return Status::Unavailable("read the container's output: " + demux.daemon_error());
  return Status::OK();
}

Status DockerClient::AttachOutput(const std::string& id, std::unique_ptr<AttachedOutput>* out) const {
  GlobalInit();
  auto impl = std::make_unique<AttachedOutput::Impl>();
  if (impl->curl.get() == nullptr || impl->multi == nullptr) return Status::Internal("curl init failed");
  Configure(&impl->curl, endpoint_, "POST",
            "/v" + api_version_ + "/containers/" + id + "/attach?stream=1&stdout=1&stderr=1", impl->body,
            std::chrono::milliseconds(0), &impl->ex, impl->errbuf);
  // Big reads: a step may print hundreds of megabytes (curl's default is 16 KiB).
  curl_easy_setopt(impl->curl.get(), CURLOPT_BUFFERSIZE, 256L * 1024);
  curl_multi_add_handle(impl->multi, impl->curl.get());
  impl->ep = endpoint_;
  const auto deadline = Clock::now() + kRequestTimeout;
  Exchange& ex = impl->ex;
  // The header; an error's body too (the daemon closes after it).
  Status s = impl->Drive([&] { return ex.head_done && ex.status / 100 == 2; },
                         [&] { return Clock::now() > deadline; });
  if (!s.ok() && ex.stopped)
    return Status::Unavailable("attach to the container's output: docker daemon at " + endpoint_.host +
                               ": no answer within " + std::to_string(kRequestTimeout.count()) + " s");
  if (!s.ok()) return s.WithContext("attach to the container's output");
  if (ex.status / 100 != 2) {
    DockerResponse r;
    r.status = ex.status;
    r.body = ex.body;
    return ResponseError("attach to the container's output", r);
  }
  out->reset(new AttachedOutput(std::move(impl)));
  return Status::OK();
}

Status DockerClient::WaitContainer(const std::string& id, int* exit_code) const {
  DockerResponse r;
  Status s = Call("POST", "/containers/" + id + "/wait?condition=not-running", "", &r,
                  std::chrono::milliseconds(0));
  if (!s.ok()) return s;
  if (r.status != 200) return ResponseError("wait for the container", r);
  json j = json::parse(r.body, nullptr, false);
  if (!j.is_object() || !j.contains("StatusCode") || !j["StatusCode"].is_number_integer())
    return Status::Unavailable("wait for the container: unexpected answer " + r.body);
  if (j.contains("Error") && !Str(j["Error"], "Message").empty())
    return Status::Unavailable("wait for the container: " + Str(j["Error"], "Message"));
  *exit_code = j["StatusCode"].get<int>();
  return Status::OK();
}

Status DockerClient::KillContainer(const std::string& id, int signal) const {
  DockerResponse r;
  Status s = Call("POST", "/containers/" + id + "/kill?signal=" + std::to_string(signal), "", &r);
  if (!s.ok()) return s;
  if (r.status == 204 || r.status == 404 || r.status == 409) return Status::OK();
  return ResponseError("kill container", r);
}

Status DockerClient::RemoveContainer(const std::string& id) const {
  DockerResponse r;
  Status s = Call("DELETE", "/containers/" + id + "?force=1&v=1", "", &r);
  if (!s.ok()) return s;
  // 409: a removal is already in progress, which is what we want.
  if (r.status == 204 || r.status == 404 || r.status == 409) return Status::OK();
  return ResponseError("remove container", r);
}

Status DockerClient::RenameContainer(const std::string& id, const std::string& new_name) const {
  DockerResponse r;
  Status s = Call("POST", "/containers/" + id + "/rename?name=" + PercentEncode(new_name), "", &r);
  if (!s.ok()) return s;
  if (r.status != 204 && r.status != 200) return ResponseError("rename container to " + new_name, r);
  return Status::OK();
}

Status DockerClient::CommitContainer(const std::string& id, const json& config, std::string* image_id) const {
  std::string body;
  Status s = DumpJson(config, "commit container", &body);
  if (!s.ok()) return s;
  DockerResponse r;
  s = Call("POST", "/commit?container=" + PercentEncode(id), body, &r);
  if (!s.ok()) return s;
  if (r.status != 201 && r.status != 200) return ResponseError("commit container", r);
  json j = json::parse(r.body, nullptr, false);
  *image_id = Str(j, "Id");
  if (image_id->empty()) return Status::Unavailable("commit container: no Id in the daemon's answer");
  return Status::OK();
}

Status DockerClient::ListContainers(const json& filters, std::vector<ContainerSummary>* out) const {
  std::string query;
  Status s = DumpJson(filters, "list containers", &query);
  if (!s.ok()) return s;
  DockerResponse r;
  s = Call("GET", "/containers/json?all=1&filters=" + PercentEncode(query), "", &r);
  if (!s.ok()) return s;
  if (r.status != 200) return ResponseError("list containers", r);
  json j = json::parse(r.body, nullptr, false);
  if (!j.is_array()) return Status::Unavailable("list containers: unexpected answer");
  out->clear();
  for (const json& c : j)
    if (c.is_object()) out->push_back(ParseSummary(c));
  return Status::OK();
}

Status DockerClient::ImageExists(const std::string& image, bool* exists) const {
  DockerResponse r;
  Status s = Call("GET", "/images/" + image + "/json", "", &r);
  if (!s.ok()) return s;
  if (r.status != 200 && r.status != 404) return ResponseError("inspect image " + image, r);
  *exists = r.status == 200;
  return Status::OK();
}

Status DockerClient::RemoveImage(const std::string& image) const {
  DockerResponse r;
  Status s = Call("DELETE", "/images/" + image, "", &r);
  if (!s.ok()) return s;
  if (r.status == 200 || r.status == 404) return Status::OK();
  return ResponseError("remove image " + image, r);
}

Status DockerClient::PullImage(const std::string& image,
                               const std::function<void(const std::string&)>& progress) const {
  std::string name, tag;
  SplitImageReference(image, &name, &tag);
  PullProgress parser(progress);
  DockerResponse r;
  Status s = CallStreaming("POST", "/images/create?fromImage=" + PercentEncode(name) + "&tag=" + PercentEncode(tag),
                           "", [&](std::string_view d) { return parser.Feed(d); }, &r);
  parser.Finish();
  std::string what = "image '" + image + "' not found locally and could not be pulled: ";
  if (!s.ok()) return Status::Unavailable(what + s.message());
  if (r.status != 200) return Status::Unavailable(what + r.ErrorMessage());
  // The daemon answers 200 before it knows; a failure comes as {"error": ...}.
  if (!parser.error().empty()) return Status::Unavailable(what + parser.error());
  return Status::OK();
}

}  // namespace ladle::env
