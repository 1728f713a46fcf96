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
// A request must arrive (and a response be written) within idle_timeout;
// streaming responses have no timeout (their writer's queue bound catches a
// client that stopped reading).
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
};

// "ADDR:PORT" (IPv4 or a host name) or "[IPv6]:PORT" into host and port.
Status ParseListenAddress(std::string_view text, std::string* host, uint16_t* port);

class HttpServer {
 public:
  struct Stats {
    uint64_t connections_accepted = 0;
    int64_t connections_open = 0;
    int64_t streams_open = 0;
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

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ladle

#endif  // LADLE_CORE_HTTP_SERVER_H_
