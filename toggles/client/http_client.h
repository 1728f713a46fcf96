// HttpClient: the one place where ladle talks HTTP to a toggle server, for the
// `ladle toggles` commands and for the client library (client.h).
//
// It knows the server's base URL (http://host:port[/prefix]), sends the
// Bearer token, speaks JSON, applies timeouts and turns every failure into a
// Status: no answer at all is Unavailable (exit 3), an HTTP error maps by
// StatusFromHttp (4xx: exit 2; 5xx: Unavailable, exit 3). Plain HTTP only:
// the toggle server listens on loopback or behind a TLS-terminating proxy.
//
// Thread-safety: an HttpClient is immutable after construction; any number of
// threads may send requests through one. Each request opens its own
// connection (no keep-alive), so a cancelled stream never poisons another
// request. cpp-httplib stays out of this header.
#ifndef LADLE_TOGGLES_CLIENT_HTTP_CLIENT_H_
#define LADLE_TOGGLES_CLIENT_HTTP_CLIENT_H_

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/base/status.h"

namespace ladle::toggles {

// Where `ladle toggles` and the client look when nothing says otherwise.
inline constexpr std::string_view kDefaultServerUrl = "http://127.0.0.1:7707";

// A parsed server URL. `prefix` is "" or starts with '/' and has no trailing
// '/': requests go to prefix + "/api/v1/...".
struct ServerUrl {
  std::string host;  // a name, an IPv4 address, or an IPv6 address without brackets
  int port = 80;
  std::string prefix;

  // "http://host:port/prefix", brackets around an IPv6 host: for messages.
  std::string ToString() const;
};

// Accepts "http://HOST[:PORT][/PREFIX][/]"; a missing scheme means http.
// Invalid, naming what is wrong, for https (not supported: put a proxy in
// front, or use http on loopback), userinfo, a query or fragment, a bad port.
Status ParseServerUrl(std::string_view text, ServerUrl* out);

// Percent-encodes one path segment (a key, an environment, a token name).
std::string EncodePathSegment(std::string_view segment);

// The Status for a non-2xx answer. The message is the server's JSON
// {"message"} (else its text, else the reason) with " (STATUS)" appended:
// "toggle 'x' not found (404)". 400 Invalid, 401 Unauthorized, 403
// Permission, 404 NotFound, 409 Conflict, 412 Precondition, 413 TooLarge,
// other 4xx Invalid; 5xx and anything else Unavailable ("toggle server
// error: ... (500)").
Status StatusFromHttp(int http_status, std::string_view body);

// Why a request got no HTTP answer.
enum class HttpFailure {
  kNone,       // an answer arrived (whatever its status)
  kConnect,    // nothing listens there, or the host does not resolve
  kNoAnswer,   // connected, but no (complete) answer in time, or it broke off
  kCancelled,  // HttpCanceller::Cancel
};

// What one request got back. Not named HttpResponse: core/http.h has a
// ladle::HttpResponse (the server's), and a code that sees both would pick one
// by lookup order (and two structs of one name across libraries break the ODR).
struct ClientResponse {
  int status = 0;            // 0 when `failure` is not kNone
  std::string body;          // empty for a stream that was answered 200
  std::string etag;          // the ETag header as sent (quotes included); "" when none
  HttpFailure failure = HttpFailure::kNone;
};

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// Lets another thread end a request (a Stream, or a Send that waits on a slow
// server): Cancel() shuts the socket down, which wakes a blocked read at once.
// Safe to call at any time, from any thread, any number of times. Once
// cancelled, it stays cancelled: later requests using it end at once. One
// canceller serves one request at a time.
class HttpCanceller {
 public:
  HttpCanceller();
  ~HttpCanceller();
  HttpCanceller(const HttpCanceller&) = delete;
  HttpCanceller& operator=(const HttpCanceller&) = delete;

  void Cancel();
  bool cancelled() const;

  struct State;  // defined in http_client.cc

 private:
  std::unique_ptr<State> state_;
  friend class HttpClient;
};

class HttpClient {
 public:
  struct Options {
    std::string token;  // "" sends no Authorization header
    std::chrono::milliseconds connect_timeout{2000};
    std::chrono::milliseconds read_timeout{5000};  // also the write timeout
  };

  HttpClient(ServerUrl url, Options options);

  const ServerUrl& url() const { return url_; }
  const Options& options() const { return options_; }

  // Sends METHOD prefix+target (target is "/api/v1/...?query", already
  // encoded). OK whenever an answer arrived, whatever its status: the caller
  // decides what a 304 or a 404 means. Unavailable when none did, with
  // out->failure saying why; Cancelled after control->Cancel().
  Status Send(std::string_view method, const std::string& target, const std::string& body,
              const HttpHeaders& headers, ClientResponse* out,
              HttpCanceller* control = nullptr) const;

  // JSON in and out: sends `body` (unless null) as application/json; a 2xx
  // answer's body is parsed into *out (null for an empty body, e.g. 204);
  // anything else becomes StatusFromHttp. `raw`, if given, gets the answer;
  // `extra` adds headers (If-Match).
  Status Json(std::string_view method, const std::string& target, const nlohmann::json* body,
              nlohmann::json* out, ClientResponse* raw = nullptr,
              const HttpHeaders& extra = {}) const;

  // GET for a long-lived answer (Server-Sent Events). `on_open` sees the
  // status once the headers arrive; for a 2xx, `on_data` then gets the body
  // as it arrives, in pieces of any size. Either callback returns false to
  // stop. Returns when the stream ends: OK when the server ended it (or a
  // callback stopped it), Unavailable when it broke or `idle_timeout` passed
  // without a byte, Cancelled after `control->Cancel()`. A non-2xx answer's
  // body is read whole into out->body. REQUIRES: control != nullptr.
  Status Stream(const std::string& target, const HttpHeaders& headers,
                std::chrono::milliseconds idle_timeout,
                const std::function<bool(int status)>& on_open,
                const std::function<bool(std::string_view data)>& on_data,
                HttpCanceller* control, ClientResponse* out) const;

 private:
  ServerUrl url_;
  Options options_;
};

// Splits a Server-Sent Events byte stream into events (the WHATWG rules that
// matter here): lines end in \n, \r\n or \r; "field: value" lines for id,
// event and data (several data lines join with \n); lines starting with ':'
// are comments; a blank line ends an event, which is delivered when it had
// any data or an id line (browsers need data; ladle also acts on a bare id).
// The last id seen persists across events, as a browser keeps it.
// Not thread-safe: one parser per stream.
class SseParser {
 public:
  struct Event {
    std::string id;     // the last "id:" seen so far on the stream ("" if none)
    std::string event;  // "" means "message"
    std::string data;
  };
  using Callback = std::function<bool(const Event& event)>;

  explicit SseParser(Callback on_event) : on_event_(std::move(on_event)) {}

  // Feeds bytes; calls on_event for each complete event. Returns false when
  // on_event did (the rest of the bytes are dropped) or a line grows past
  // 1 MiB (a server that is not speaking SSE).
  bool Feed(std::string_view bytes);

 private:
  bool Line(std::string_view line);

  Callback on_event_;
  std::string partial_;      // bytes after the last line end
  bool skip_lf_ = false;     // the previous chunk ended in \r
  std::string last_id_;
  Event pending_;
  bool has_data_ = false;
  bool has_id_ = false;  // this event had an id line
};

}  // namespace ladle::toggles

#endif  // LADLE_TOGGLES_CLIENT_HTTP_CLIENT_H_
