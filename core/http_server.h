// The HTTP/1.1 server that `ladle serve` and `ladle toggles serve` mount a
// Router on. It only moves bytes: parse a request, call Router::Dispatch,
// write the response, or stream one (Server-Sent Events, log following).
//
// Built on Boost.Beast's parser and Asio, one io_context per io thread: a
// connection lives on one thread, and an open stream costs a socket and a
// queue, not a thread (cpp-httplib holds a thread per SSE client).
//
// Handlers run on the io threads and are called synchronously: a handler
// that blocks (a slow SQLite write) delays that thread's other connections.
//
// Limits and their answers: a body over body_limit gets 413 before the rest
// is read, a header over header_limit 431, a malformed request 400, a handler
// exception 500; each is JSON {"error", "message"} and closes the connection.
// A request must arrive (and a response be written) within idle_timeout, and
// a keep-alive connection waits that long for its next request; streaming
// responses have no timeout (their writer's queue bound catches a client that
// stopped reading).
//
// Connections are capped (max_connections): past the cap a new connection
// gets a fixed 503 with "Connection: close" and is closed without its request
// being read. When the process runs out of file descriptors (EMFILE, ENFILE)
// the server answers the waiting connection 503 through a descriptor it keeps
// in reserve, backs off briefly and goes on serving the connections it has:
// the accept loop never stalls (docs/design.md "HTTP API conventions").
#ifndef LADLE_CORE_HTTP_SERVER_H_
#define LADLE_CORE_HTTP_SERVER_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/http.h"
#include "core/metrics.h"
#include "core/base/status.h"

namespace ladle {

// One answered request, for logs and metrics.
struct HttpRequestLog {
  std::string_view method;
  std::string_view path;
  std::string_view route;   // the matched pattern, "" when none matched
  std::string_view remote;
  int status = 0;
  // From the complete request to the response handed to the socket (for a
  // stream: to its headers).
  std::chrono::nanoseconds duration{0};
};

struct HttpServerOptions {
  std::string host = "127.0.0.1";  // an IPv4 or IPv6 address, or a host name
  uint16_t port = 0;               // 0: a free port, see HttpServer::port()
  int threads = 0;                 // io threads; 0: 2, or 1 on a single core
  size_t body_limit = 1 << 20;     // 413 over 1 MiB (docs/design.md "HTTP API conventions")
  uint32_t header_limit = 16 << 10;
  std::chrono::milliseconds idle_timeout{60000};
  // Open connections at most (streams included); 0: DefaultMaxConnections()
  // when the server starts.
  size_t max_connections = 0;
  std::chrono::milliseconds stop_grace{2000};  // how long Stop waits for responses in flight
  // How long a deferred response (HttpResponse::Deferred) may take before
  // the client gets a 504 instead; a later answer is dropped.
  std::chrono::milliseconds deferred_timeout{120000};
  // When set (and outliving the server): requests by route, method and status
  // class as ladle_http_requests_total and ladle_http_request_duration_seconds,
  // and open connections and streams as gauges.
  MetricsRegistry* metrics = nullptr;
  // Called on an io thread after each request is answered; must not block.
  std::function<void(const HttpRequestLog&)> on_request;
  // Called on an io thread, at most once a minute for each kind, with a
  // condition the server works around (the connection cap reached, out of
  // file descriptors); must not block. Unset: written to stderr.
  std::function<void(const std::string&)> on_warning;
};

// The connection cap when none is set: 10,000, or the soft limit on open
// files less 256 (kept for the rest of the process: step logs, SQLite, git)
// when that is lower, but at least 16.
size_t DefaultMaxConnections();

// Raises this process's soft limit on open files (RLIMIT_NOFILE) to its
// hard limit, as `ladle serve` and `ladle toggles serve` do at start: every
// connection is a descriptor, and the usual soft limit is 1,024. Returns the
// soft limit now in force; *before* (when set) gets the one before.
uint64_t RaiseOpenFileLimit(uint64_t* before = nullptr);

// "ADDR:PORT" (IPv4 or a host name) or "[IPv6]:PORT" into host and port.
Status ParseListenAddress(std::string_view text, std::string* host, uint16_t* port);

class HttpServer {
 public:
  struct Stats {
    uint64_t connections_accepted = 0;
    int64_t connections_open = 0;
    int64_t streams_open = 0;
    uint64_t connections_rejected = 0;  // answered 503: over the cap or out of descriptors
  };

  // REQUIRES: `router` outlives the server and gets no more routes.
  HttpServer(const Router& router, HttpServerOptions options);
  ~HttpServer();  // Stop()s
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds, listens and starts the io threads. Fails (kUnavailable, naming
  // the address) when the address is taken or invalid, or kInternal when the
  // router has a malformed route. Call once.
  Status Start();

  // Stops accepting, closes idle connections, ends open streams (their
  // sources see OnClosed), lets responses in flight finish for up to
  // stop_grace, then drops what is left and joins the threads. Idempotent;
  // safe from any thread but an io thread (a handler must not call it).
  void Stop();

  // The bound port (useful with port 0); 0 before Start.
  uint16_t port() const;
  // "ADDR:PORT" as bound, e.g. "127.0.0.1:41234" or "[::1]:7707".
  std::string address() const;
  Stats stats() const;
  // The connection cap in force (after Start: the option, or its default).
  size_t max_connections() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ladle

#endif  // LADLE_CORE_HTTP_SERVER_H_
