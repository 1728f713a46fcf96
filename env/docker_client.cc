#include "env/docker_client.h"
#include "core/base/text.h"

#include <curl/curl.h>
#include <errno.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <utility>

#include "core/http.h"

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
};

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* ex = static_cast<Exchange*>(user);
  std::string_view line(data, size * count);
  if (line.substr(0, 5) == "HTTP/") {  // a new response (after 100 Continue, say)
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
  curl_easy_setopt(h, CURLOPT_PROXY, "");  // never through $http_proxy
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);  // threads: no SIGALRM for timeouts
}

namespace {

// One request to a full path (with or without the version prefix).
Status Perform(const DockerEndpoint& ep, const std::string& method, const std::string& path,
               const std::string& body, std::chrono::milliseconds timeout, Exchange* ex) {
  GlobalInit();
  Curl c;
  if (c.get() == nullptr) return Status::Internal("curl_easy_init failed");
  CURL* h = c.get();
  ex->curl = h;
  char errbuf[CURL_ERROR_SIZE] = {0};
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
  SetMethodAndBody(&c, method, body);
  if (c.headers() != nullptr) curl_easy_setopt(h, CURLOPT_HTTPHEADER, c.headers());
  CURLcode code = curl_easy_perform(h);
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

Status ParseDockerHost(const std::string& docker_host, DockerEndpoint* endpoint) {
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
    ep.base_url = "http://" + rest + (has_port ? "" : ":2375");
  } else {
    return Status::Invalid("DOCKER_HOST '" + host +
                           "': ladle speaks to unix:///PATH and tcp://HOST:PORT only");
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

Status DockerClient::Connect(const DockerEndpoint& endpoint, std::chrono::milliseconds timeout,
                             std::unique_ptr<DockerClient>* client) {
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
