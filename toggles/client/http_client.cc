#include "toggles/client/http_client.h"
#include "core/base/text.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <mutex>



namespace ladle::toggles {
namespace {

constexpr size_t kMaxErrorBody = 64 * 1024;  // enough for any {"error","message"}
constexpr size_t kMaxSseLine = 1 << 20;

Status BadUrl(std::string_view text, const std::string& why) {
  return Status::Invalid("server URL \"" + std::string(text) + "\": " + why);
}

bool ParsePort(std::string_view text, int* port) {
  if (text.empty() || text.size() > 5) return false;
  int value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  if (value < 1 || value > 65535) return false;
  *port = value;
  return true;
}

// "HOST[:PORT]" or "[V6][:PORT]".
Status ParseAuthority(std::string_view url, std::string_view authority, ServerUrl* out) {
  std::string_view port_text;
  if (!authority.empty() && authority[0] == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return BadUrl(url, "unclosed '[' in the host");
    out->host = std::string(authority.substr(1, close - 1));
    std::string_view rest = authority.substr(close + 1);
    if (!rest.empty() && rest[0] != ':') return BadUrl(url, "unexpected text after ']'");
    if (!rest.empty()) port_text = rest.substr(1);
    if (rest == ":") return BadUrl(url, "empty port");
  } else {
    size_t colon = authority.find(':');
    if (colon != std::string_view::npos && authority.find(':', colon + 1) != std::string_view::npos)
      return BadUrl(url, "an IPv6 host needs brackets, e.g. http://[::1]:7707");
    out->host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) return BadUrl(url, "empty port");
    }
  }
  if (out->host.empty()) return BadUrl(url, "no host");
  if (!port_text.empty() && !ParsePort(port_text, &out->port))
    return BadUrl(url, "port must be a number from 1 to 65535, got \"" + std::string(port_text) + "\"");
  return Status::OK();
}

// What the server said, in one line: its JSON message, else its text.
std::string ServerMessage(int http_status, std::string_view body) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_object()) {
    for (const char* field : {"message", "error"}) {
      auto it = j.find(field);
      if (it != j.end() && it->is_string() && !it->get<std::string>().empty())
        return it->get<std::string>();
    }
  }
  std::string text(Trim(body.substr(0, std::min<size_t>(body.size(), 200))));
  if (size_t nl = text.find('\n'); nl != std::string::npos) text = std::string(Trim(std::string_view(text).substr(0, nl)));
  if (!text.empty()) return text;
  return "HTTP " + std::to_string(http_status);
}

std::string Seconds(std::chrono::milliseconds ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", ms.count() / 1000.0);
  return buf;
}

}  // namespace

std::string ServerUrl::ToString() const {
  bool v6 = host.find(':') != std::string::npos;
  return "http://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port) + prefix;
}

Status ParseServerUrl(std::string_view text, ServerUrl* out) {
  std::string_view rest = text;
  if (StartsWithNoCase(rest, "https://"))
    return BadUrl(text, "https is not supported (the client speaks plain http: reach the "
                        "server on loopback, or through a proxy that terminates TLS)");
  if (StartsWithNoCase(rest, "http://")) rest.remove_prefix(7);
  else if (rest.find("://") != std::string_view::npos) return BadUrl(text, "only http:// URLs are supported");
  if (rest.find_first_of("?#") != std::string_view::npos)
    return BadUrl(text, "no query or fragment allowed");
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (authority.find('@') != std::string_view::npos)
    return BadUrl(text, "no user or password in the URL (pass the token with --token or LADLE_TOKEN)");
  ServerUrl url;
  Status s = ParseAuthority(text, authority, &url);
  if (!s.ok()) return s;
  std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  url.prefix = std::string(path);
  *out = std::move(url);
  return Status::OK();
}

std::string EncodePathSegment(std::string_view segment) { return PercentEncode(segment); }

Status StatusFromHttp(int http_status, std::string_view body) {
  std::string msg = ServerMessage(http_status, body) + " (" + std::to_string(http_status) + ")";
  switch (http_status) {
    case 400: return Status::Invalid(msg);
    case 401: return Status::Unauthorized(msg);
    case 403: return Status::Permission(msg);
    case 404: return Status::NotFound(msg);
    case 409: return Status::Conflict(msg);
    case 412: return Status::Precondition(msg);
    case 413: return Status::TooLarge(msg);
    default: break;
  }
  if (http_status >= 400 && http_status < 500) return Status::Invalid(msg);
  return Status::Unavailable("toggle server error: " + msg);
}

// --- HttpCanceller ---

struct HttpCanceller::State {
  std::mutex mu;
  bool cancelled = false;
  httplib::Client* active = nullptr;  // the request's client while it runs
};

HttpCanceller::HttpCanceller() : state_(std::make_unique<State>()) {}
HttpCanceller::~HttpCanceller() = default;

void HttpCanceller::Cancel() {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->cancelled = true;
  // stop() shuts the socket down, which wakes the reader. A stop() that lands
  // while the client is still connecting finds no socket yet; callers that
  // must not wait call Cancel() again (see Client::~Client).
  if (state_->active != nullptr) state_->active->stop();
}

bool HttpCanceller::cancelled() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->cancelled;
}

// --- HttpClient ---

namespace {

void SetTimeout(httplib::Client* cli, std::chrono::milliseconds connect,
                std::chrono::milliseconds read) {
  auto sec = [](std::chrono::milliseconds ms) { return static_cast<time_t>(ms.count() / 1000); };
  auto usec = [](std::chrono::milliseconds ms) { return static_cast<time_t>(ms.count() % 1000 * 1000); };
  cli->set_connection_timeout(sec(connect), usec(connect));
  cli->set_read_timeout(sec(read), usec(read));
  cli->set_write_timeout(sec(read), usec(read));
}

Status Transport(const ServerUrl& url, httplib::Error error, std::chrono::milliseconds read_timeout,
                 ClientResponse* out) {
  out->status = 0;
  switch (error) {
    case httplib::Error::Connection:
    case httplib::Error::ConnectionTimeout:
      out->failure = HttpFailure::kConnect;
      return Status::Unavailable("no toggle server at " + url.ToString() + " (could not connect)");
    case httplib::Error::Canceled:
      out->failure = HttpFailure::kCancelled;
      return Status::Cancelled("request to " + url.ToString() + " cancelled");
    case httplib::Error::Read:
      out->failure = HttpFailure::kNoAnswer;
      return Status::Unavailable("toggle server at " + url.ToString() + " sent no answer within " +
                                 Seconds(read_timeout) + " or closed the connection");
    default:
      out->failure = HttpFailure::kNoAnswer;
      return Status::Unavailable("toggle server at " + url.ToString() + ": " + httplib::to_string(error));
  }
}

httplib::Request MakeRequest(const ServerUrl& url, const HttpClient::Options& options,
                             std::string_view method, const std::string& target,
                             const HttpHeaders& headers) {
  httplib::Request req;
  req.method = std::string(method);
  req.path = url.prefix + target;
  if (!options.token.empty()) req.headers.emplace("Authorization", "Bearer " + options.token);
  for (const auto& [name, value] : headers) req.headers.emplace(name, value);
  return req;
}

// Sends `req` on `cli`, registered with `state` (if any) so that Cancel()
// can stop it. *cancelled: whether Cancel() came before the end.
httplib::Result SendCancellable(httplib::Client* cli, const httplib::Request& req,
                                HttpCanceller::State* state, bool* cancelled) {
  *cancelled = false;
  if (state == nullptr) return cli->send(req);
  {
    std::lock_guard<std::mutex> lock(state->mu);
    if (state->cancelled) {
      *cancelled = true;
      return httplib::Result(nullptr, httplib::Error::Canceled);
    }
    state->active = cli;
  }
  httplib::Result res = cli->send(req);
  std::lock_guard<std::mutex> lock(state->mu);
  state->active = nullptr;
  *cancelled = state->cancelled;
  return res;
}

}  // namespace

HttpClient::HttpClient(ServerUrl url, Options options)
    : url_(std::move(url)), options_(std::move(options)) {}

Status HttpClient::Send(std::string_view method, const std::string& target, const std::string& body,
                        const HttpHeaders& headers, ClientResponse* out,
                        HttpCanceller* control) const {
  *out = ClientResponse();
  httplib::Client cli(url_.host, url_.port);
  SetTimeout(&cli, options_.connect_timeout, options_.read_timeout);
  httplib::Request req = MakeRequest(url_, options_, method, target, headers);
  req.body = body;
  bool cancelled;
  httplib::Result res =
      SendCancellable(&cli, req, control ? control->state_.get() : nullptr, &cancelled);
  if (cancelled) return Transport(url_, httplib::Error::Canceled, options_.read_timeout, out);
  if (!res) return Transport(url_, res.error(), options_.read_timeout, out);
  out->status = res->status;
  out->body = std::move(res->body);
  out->etag = res->get_header_value("ETag");
  return Status::OK();
}

Status HttpClient::Json(std::string_view method, const std::string& target,
                        const nlohmann::json* body, nlohmann::json* out, ClientResponse* raw,
                        const HttpHeaders& extra) const {
  HttpHeaders headers = {{"Accept", "application/json"}};
  headers.insert(headers.end(), extra.begin(), extra.end());
  if (body != nullptr) headers.emplace_back("Content-Type", "application/json");
  ClientResponse r;
  Status s = Send(method, target, body != nullptr ? body->dump() : "", headers, &r);
  if (s.ok() && (r.status < 200 || r.status > 299)) s = StatusFromHttp(r.status, r.body);
  if (s.ok()) {
    *out = r.body.empty() ? nlohmann::json() : nlohmann::json::parse(r.body, nullptr, false);
    if (out->is_discarded())
      s = Status::Unavailable("toggle server at " + url_.ToString() + " answered " +
                              std::string(method) + " " + target + " with invalid JSON");
  }
  if (raw != nullptr) *raw = std::move(r);
  return s;
}

Status HttpClient::Stream(const std::string& target, const HttpHeaders& headers,
                          std::chrono::milliseconds idle_timeout,
                          const std::function<bool(int status)>& on_open,
                          const std::function<bool(std::string_view data)>& on_data,
                          HttpCanceller* control, ClientResponse* out) const {
  *out = ClientResponse();
  httplib::Client cli(url_.host, url_.port);
  SetTimeout(&cli, options_.connect_timeout, idle_timeout);
  bool stopped_by_caller = false;
  httplib::Request req = MakeRequest(url_, options_, "GET", target, headers);
  req.response_handler = [&](const httplib::Response& r) {
    out->status = r.status;
    out->etag = r.get_header_value("ETag");
    stopped_by_caller = !on_open(r.status);
    return !stopped_by_caller;
  };
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    if (out->status < 200 || out->status > 299) {
      out->body.append(data, std::min(n, kMaxErrorBody - std::min(kMaxErrorBody, out->body.size())));
      return true;
    }
    stopped_by_caller = !on_data(std::string_view(data, n));
    return !stopped_by_caller;
  };
  bool cancelled;
  httplib::Result res = SendCancellable(&cli, req, control->state_.get(), &cancelled);
  if (cancelled) return Transport(url_, httplib::Error::Canceled, idle_timeout, out);
  if (res || stopped_by_caller) return Status::OK();
  if (out->status != 0) {  // it had answered: the stream broke or went quiet
    out->failure = HttpFailure::kNoAnswer;
    return Status::Unavailable("stream from " + url_.ToString() + target + " ended: no data for " +
                               Seconds(idle_timeout) + ", or the connection broke");
  }
  return Transport(url_, res.error(), idle_timeout, out);
}

// --- SseParser ---

bool SseParser::Feed(std::string_view bytes) {
  size_t i = 0;
  if (skip_lf_ && !bytes.empty()) {
    if (bytes[0] == '\n') i = 1;  // the \n of a \r\n split across two reads
    skip_lf_ = false;
  }
  while (i < bytes.size()) {
    size_t end = bytes.find_first_of("\r\n", i);
    if (end == std::string_view::npos) {
      partial_.append(bytes.substr(i));
      return partial_.size() <= kMaxSseLine;
    }
    partial_.append(bytes.substr(i, end - i));
    if (bytes[end] == '\r') {
      if (end + 1 == bytes.size()) skip_lf_ = true;
      else if (bytes[end + 1] == '\n') ++end;
    }
    i = end + 1;
    std::string line;
    line.swap(partial_);
    if (!Line(line)) return false;
  }
  return true;
}

bool SseParser::Line(std::string_view line) {
  if (line.empty()) {
    bool deliver = has_data_ || has_id_;
    pending_.id = last_id_;
    Event event = std::move(pending_);
    pending_ = Event();
    has_data_ = has_id_ = false;
    return !deliver || on_event_(event);
  }
  if (line[0] == ':') return true;  // a comment: the server's keep-alive
  size_t colon = line.find(':');
  std::string_view field = line.substr(0, colon);
  std::string_view value = colon == std::string_view::npos ? "" : line.substr(colon + 1);
  if (!value.empty() && value[0] == ' ') value.remove_prefix(1);
  if (field == "data") {
    if (has_data_) pending_.data += '\n';
    pending_.data.append(value);
    has_data_ = true;
  } else if (field == "event") {
    pending_.event = std::string(value);
  } else if (field == "id" && value.find('\0') == std::string_view::npos) {
    last_id_ = std::string(value);
    has_id_ = true;
  }
  return true;  // "retry" and unknown fields: ignored
}

}  // namespace ladle::toggles
