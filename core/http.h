// HTTP as plain values: requests, responses, streaming responses and a router.
//
// Routes are functions from an HttpRequest to an HttpResponse, so every route
// is unit-tested without a socket; core/http_server.h only moves bytes between
// sockets and a Router. core knows nothing of toggles or pipelines.
//
// Thread-safety: HttpRequest/HttpResponse are values (one thread at a time).
// A Router is built on one thread, then Dispatch may run on many at once.
#ifndef LADLE_CORE_HTTP_H_
#define LADLE_CORE_HTTP_H_

#include <nlohmann/json_fwd.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/base/status.h"
#include "core/base/text.h"

namespace ladle {

// An ordered list of name/value pairs (headers, query or path parameters) that
// keeps its strings' storage across Clear(), so a server connection reusing
// one HttpRequest allocates nothing per request once warm. Duplicates keep
// their order; lookups return the first match.
class HttpFields {
 public:
  using Entry = std::pair<std::string, std::string>;

  // `ignore_case`: names compare ASCII case-insensitively (headers).
  explicit HttpFields(bool ignore_case = false) : ignore_case_(ignore_case) {}

  // The first value named `name`, or nullptr.
  const std::string* Find(std::string_view name) const;
  // The first value named `name`, or "" when there is none.
  std::string_view Get(std::string_view name) const;
  bool Has(std::string_view name) const { return Find(name) != nullptr; }
  // Every value named `name`, in order.
  std::vector<std::string_view> GetAll(std::string_view name) const;

  // Appends; keeps existing entries of the same name.
  void Add(std::string_view name, std::string_view value);
  // Replaces every entry named `name` by one.
  void Set(std::string_view name, std::string_view value);
  void Remove(std::string_view name);
  void Clear() { size_ = 0; }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const Entry* begin() const { return entries_.data(); }
  const Entry* end() const { return entries_.data() + size_; }

 private:
  bool Matches(const std::string& a, std::string_view b) const;

  bool ignore_case_;
  size_t size_ = 0;              // entries_[size_..] are spare, kept for their storage
  std::vector<Entry> entries_;
};

// A parsed request. The server fills every field but `params` and `route`,
// which Router::Dispatch fills. Tests build one with HttpRequest::For().
struct HttpRequest {
  std::string method;   // as sent, e.g. "GET"
  std::string target;   // as sent, e.g. "/api/v1/runs?limit=5"
  std::string path;     // target's path, percent-decoded, without the query
  HttpFields query;     // decoded ('+' is a space); repeated names kept in order
  HttpFields headers{true};
  std::string body;
  std::string remote;   // peer "ADDR:PORT" ("[ADDR]:PORT" for IPv6); "" in tests
  int version = 11;     // 10 for HTTP/1.0, 11 for HTTP/1.1

  // Filled by Router::Dispatch: the {name} captures (decoded) and the pattern
  // that matched ("" when none did). `route` points into the Router.
  HttpFields params;
  std::string_view route;
  int route_id = -1;    // index of the matched route in its Router, -1 when none

  // A request as a test or an in-process caller would send it. REQUIRES: a
  // well-formed target (a bad one leaves path and query empty).
  static HttpRequest For(std::string method, std::string_view target, std::string body = {});

  // Sets target, path and query from a request-target (origin form
  // "/p?q", or absolute form "http://host/p?q"). Returns false on a malformed
  // percent-escape or a NUL byte, which the server answers with 400.
  bool SetTarget(std::string_view target);
  // A request-target in origin form, still percent-encoded: "/p?q" as it
  // is; "http://host/p?q" as "/p?q" ("/" when nothing follows the host).
  static std::string_view OriginForm(std::string_view target);

  std::string_view Header(std::string_view name) const { return headers.Get(name); }
  std::string_view Query(std::string_view name) const { return query.Get(name); }
  std::string_view Param(std::string_view name) const { return params.Get(name); }

  // Empties every field but `remote`, keeping storage for the next request.
  void Reset();
};

// The sending end of a streaming response. The server implements it over a
// socket; tests use an in-memory one (tests/fakes/string_stream_writer.h).
// Thread-safe: any thread may call any method at any time; none blocks on the
// network. Data is written in the order Send was called.
class StreamWriter {
 public:
  virtual ~StreamWriter() = default;

  // Queues `data`. Returns false, dropping it, when the stream is closed, or
  // when this Send would put more than the stream's max_queued_bytes in its
  // queue: the client is too slow, and the stream is closed and the
  // connection dropped (a publisher must never wait for one slow client).
  virtual bool Send(std::shared_ptr<const std::string> data) = 0;
  bool Send(std::string data) {
    return Send(std::make_shared<const std::string>(std::move(data)));
  }

  // Ends the stream once what is queued has been written. Idempotent.
  virtual void Close() = 0;

  // True once Close() was called or the stream ended otherwise (client gone,
  // overflow, server stopped). Send then returns false.
  virtual bool closed() const = 0;

  // Bytes queued and not yet handed to the socket.
  virtual size_t queued_bytes() const = 0;
};

// What a streaming handler returns (via HttpResponse::Stream). The server
// writes the status line and headers, then calls Start with the writer.
// Callbacks run on the connection's io thread: they must not block (post slow
// work elsewhere and Send from there). The source is released after OnClosed.
class StreamSource {
 public:
  virtual ~StreamSource() = default;
  // Called once. The writer stays valid (closed() tells when it is useless).
  virtual void Start(std::shared_ptr<StreamWriter> writer) = 0;
  // Called each time everything queued has reached the socket: a source that
  // can produce more than a client reads (a big log file) sends its next
  // piece here instead of all at once.
  virtual void OnDrained() {}
  // Called once when the stream has ended, for whatever reason.
  virtual void OnClosed() {}
};

struct StreamOptions {
  // The most bytes queued for a client before it counts as too slow.
  size_t max_queued_bytes = 1 << 20;
  // When > 0: after this long with nothing sent, the server sends
  // keep_alive_data (an SSE comment), so idle streams survive proxies and
  // client read timeouts and a vanished client is noticed.
  std::chrono::milliseconds keep_alive_interval{0};
  std::string keep_alive_data;
};

struct HttpResponse;

// Completes a deferred response (HttpResponse::Deferred) from any thread.
class Responder {
 public:
  virtual ~Responder() = default;
  // The answer. Only the first call counts; one that comes after the
  // client, the server or the wait's deadline has gone is dropped.
  virtual void Complete(HttpResponse response) = 0;
};

struct HttpResponse {
  int status = 200;
  // The server owns framing: it writes Content-Length, Transfer-Encoding,
  // Connection and Date itself and ignores them here (except Content-Length
  // on a HEAD response, which Router::Dispatch sets).
  HttpFields headers{true};
  std::string body;
  // Non-null: a streaming response; `body` is ignored.
  std::shared_ptr<StreamSource> stream;
  StreamOptions stream_options;
  // Non-null: the handler answers later. The server calls it once, on the
  // io thread, with the Responder to complete; it must not block (it hands
  // the work to a thread of its own). Everything else here is ignored.
  std::function<void(std::shared_ptr<Responder>)> deferred;

  // `body` serialized, Content-Type application/json.
  static HttpResponse Json(int status, const nlohmann::json& body);
  static HttpResponse Text(int status, std::string body,
                           std::string_view content_type = "text/plain; charset=utf-8");
  static HttpResponse NoContent();  // 204
  // The error shape: {"error": CODE, "message": TEXT} (docs/design.md "HTTP API conventions").
  static HttpResponse Error(int status, std::string_view code, std::string_view message);
  // The error for a non-ok Status, with the HTTP status its code implies
  // (kInvalid 400, kNotFound 404, kTooLarge 413, kUnavailable 503, ...).
  static HttpResponse FromStatus(const Status& status);
  // A 200 streaming response of `content_type`.
  static HttpResponse Stream(std::shared_ptr<StreamSource> source,
                             std::string_view content_type, StreamOptions options = {});
  // The same with a lambda as the source's Start (no OnDrained/OnClosed).
  static HttpResponse Stream(std::function<void(std::shared_ptr<StreamWriter>)> start,
                             std::string_view content_type, StreamOptions options = {});

  // An answer that takes slow work (a git fetch) off the io thread: the
  // connection waits for Responder::Complete, up to the server's
  // deferred_timeout (then 504), while its io thread serves others.
  static HttpResponse Deferred(std::function<void(std::shared_ptr<Responder>)> start);

  bool is_stream() const { return stream != nullptr; }
  bool is_deferred() const { return deferred != nullptr; }
};

// The response itself, or for a deferred one, what its Responder is given
// (waiting up to `timeout`, else a 504 error): for tests and for callers of
// a Router outside a server.
// The request body as a JSON object into *out, or the 400 to answer: invalid
// JSON, not an object, or nested deeper than kMaxJsonDepth (refused before
// it is parsed). The one body reader of the toggle and runs APIs.
std::optional<HttpResponse> ParseJsonObjectBody(const HttpRequest& r, nlohmann::json* out);

HttpResponse AwaitResponse(HttpResponse response,
                           std::chrono::milliseconds timeout = std::chrono::seconds(60));

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

// Maps (method, path pattern) to handlers. A pattern is a path whose segments
// are literals or "{name}" (one non-empty segment, percent-decoded into
// request.params); a last segment "{name...}" takes the rest of the path
// (at least one segment, '/'s kept). Literal segments compare with the raw
// path, so "/a%62c" does not match "/abc". A trailing slash is significant.
// When several patterns match, the more literal one wins ("/runs/stream"
// beats "/runs/{id}" whatever the order of Add).
//
// Thread-safety: Add only before the first Dispatch; Dispatch is const and
// may run concurrently.
class Router {
 public:
  // A malformed pattern or a duplicate (method, pattern) is a programming
  // error: it is recorded in status() (HttpServer::Start refuses such a
  // router) and the route is ignored.
  void Add(std::string_view method, std::string_view pattern, HttpHandler handler);
  // The same with a member function of `api` as the handler, for an API
  // class registering its routes:
  //   router->Add("GET", "/api/v1/runs", this, &RunsApi::ListRuns);
  // REQUIRES: `api` outlives the router's use.
  template <typename Api>
  void Add(std::string_view method, std::string_view pattern, Api* api,
           HttpResponse (Api::*handler)(const HttpRequest&)) {
    Add(method, pattern, [api, handler](const HttpRequest& r) { return (api->*handler)(r); });
  }

  // Runs the handler for the request and fills request.params and route.
  // Unknown path: 404; known path, other method: 405 with Allow. HEAD runs
  // the GET handler when there is no HEAD route, and its body is dropped
  // (Content-Length kept). A handler that throws gives 500. Never throws.
  HttpResponse Dispatch(HttpRequest& request) const;
  HttpResponse Dispatch(HttpRequest&& request) const { return Dispatch(request); }

  const Status& status() const { return status_; }
  // Routes are numbered 0.. in the order of Add (HttpRequest::route_id).
  size_t route_count() const { return routes_.size(); }
  const std::string& method(int id) const { return routes_[by_id_[id]].method; }
  const std::string& pattern(int id) const { return routes_[by_id_[id]].pattern; }

 private:
  struct Segment {
    enum Kind { kLiteral, kParam, kRest } kind;
    std::string text;  // the literal, or the parameter's name
  };
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<Segment> segments;
    HttpHandler handler;
    int id;
  };

  static bool Parse(std::string_view pattern, std::vector<Segment>* segments);
  static bool MoreSpecific(const Route& a, const Route& b);
  // Whether `parts` (the raw path's segments) match; with a request, also
  // fills its params (false on a malformed escape).
  bool Match(const Route& route, const std::vector<std::string_view>& parts,
             HttpRequest* request) const;
  HttpResponse Run(const Route& route, const std::vector<std::string_view>& parts,
                   HttpRequest& request) const;
  static HttpResponse NotFound(const HttpRequest& request);
  HttpResponse MethodNotAllowed(const HttpRequest& request,
                                const std::vector<std::string_view>& parts) const;
  static HttpResponse DropBody(HttpResponse response);

  std::vector<Route> routes_;   // most specific first
  std::vector<size_t> by_id_;   // route id -> index in routes_
  Status status_;
};

}  // namespace ladle

#endif  // LADLE_CORE_HTTP_H_
