// The HTTP server benchmark's target: core's HttpServer and Router serving a
// static ~100-byte JSON body, as nginx's `return 200 '...'` does in
// tests/bench/http_bench.sh.
//
//   http_bench_server [--port N] [--threads N] [--body TEXT]
//
// Prints "listening on ADDR:PORT" once bound, then serves GET and POST
// /bench on 127.0.0.1 until SIGINT or SIGTERM.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/http.h"
#include "core/http_server.h"

namespace {

const char* kDefaultBody =
    R"({"key":"bench-flag","reason":"STATIC","variant":"on","value":true,"metadata":{"source":"ladle-bench"}})";

}  // namespace

int main(int argc, char** argv) {
  ladle::HttpServerOptions options;
  options.threads = 1;
  std::string body = kDefaultBody;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--port")) options.port = static_cast<uint16_t>(std::atoi(argv[i + 1]));
    else if (!std::strcmp(argv[i], "--threads")) options.threads = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--body")) body = argv[i + 1];
    else return std::fprintf(stderr, "usage: %s [--port N] [--threads N] [--body TEXT]\n", argv[0]), 2;
  }

  // Block the signals before any thread starts, then wait for one here.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  ladle::Router router;
  auto handler = [&body](const ladle::HttpRequest&) {
    return ladle::HttpResponse::Text(200, body, "application/json");
  };
  router.Add("GET", "/bench", handler);
  router.Add("POST", "/bench", handler);
  ladle::HttpServer server(router, options);
  ladle::Status started = server.Start();
  if (!started.ok()) {
    std::fprintf(stderr, "http_bench_server: %s\n", started.ToString().c_str());
    return 3;
  }
  std::printf("listening on %s (%zu-byte body)\n", server.address().c_str(), body.size());
  std::fflush(stdout);
  int signal = 0;
  sigwait(&signals, &signal);
  server.Stop();
  return 0;
}
