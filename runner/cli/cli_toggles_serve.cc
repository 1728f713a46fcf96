// `ladle toggles serve [--listen ADDR:PORT]`: the toggle service alone
// (docs/toggles.md "HTTP API") on core's HttpServer, over the data dir's toggles.db.
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>

#include <signal.h>
#include <spdlog/spdlog.h>

#include "core/http.h"
#include "core/http_server.h"
#include "core/metrics.h"
#include "core/pg.h"
#include "runner/cli/cli_commands.h"
#include "runner/cli/signals.h"
#include "toggles/server/api.h"
#include "toggles/server/store.h"
#include "toggles/server/tokens.h"

namespace ladle::runner {
namespace {

namespace fs = std::filesystem;

// Set by the signal thread, waited on by the main thread, which also wakes
// every second to pick up other processes' writes.
struct StopSignal {
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  int signal = 0;
};

// Toggles and tokens at `location` (the data dir or a postgresql:// URI);
// DATA/admin.token stays in the data dir (docs/toggles.md "Store").
Status OpenStores(const std::string& data, const std::string& location,
                  std::unique_ptr<toggles::ToggleStore>* store,
                  std::unique_ptr<toggles::TokenStore>* tokens) {
  std::error_code ec;
  fs::create_directories(data, ec);
  if (ec) return Status::IoError("create data dir " + data + ": " + ec.message());
  Status s = toggles::ToggleStore::Open(location, store);
  if (!s.ok()) {
    const bool pg = IsPostgresUri(location);
    return s.WithContext(pg ? "open toggle store " + RedactPostgresUri(location)
                            : "open toggle store in " + location);
  }
  s = toggles::TokenStore::OpenLocation(location, data, tokens);
  if (!s.ok() && IsPostgresUri(location)) {
    return s.WithContext("open token store " + RedactPostgresUri(location));
  }
  return s.WithContext("open token store in " + location);
}

void ReportAdminToken(const std::string& data, toggles::AdminTokenSetup what) {
  const std::string path = toggles::AdminTokenPath(data);
  if (what == toggles::AdminTokenSetup::kFromEnvironment) {
    spdlog::info("admin token from LADLE_ADMIN_TOKEN");
  } else if (what == toggles::AdminTokenSetup::kExisting && !fs::exists(path)) {
    // Another server on the same PostgreSQL database created it, in its own
    // data dir (docs/toggles.md "Store").
    spdlog::info("an admin token exists; {} is not here (another server's data dir?)", path);
  } else {
    std::printf("admin token written to %s\n", toggles::AdminTokenPath(data).c_str());
    std::fflush(stdout);
  }
}

HttpServerOptions ServerOptions(const std::string& host, uint16_t port, int max_connections,
                                int io_threads, MetricsRegistry* m) {
  HttpServerOptions o;
  o.threads = io_threads;
  o.host = host;
  o.port = port;
  o.max_connections = static_cast<size_t>(max_connections);  // 0: core's default
  o.metrics = m;
  o.on_warning = [](const std::string& message) { spdlog::warn("http: {}", message); };
  o.on_request = [](const HttpRequestLog& l) {
    spdlog::debug("{} {} {} {} {:.3f} ms", l.remote, l.method, l.path, l.status,
                  std::chrono::duration<double, std::milli>(l.duration).count());
  };
  return o;
}

// Blocks until SIGINT/SIGTERM, refreshing both stores every second.
void ServeUntilStopped(StopSignal* stop, toggles::ToggleStore* store,
                       toggles::TokenStore* tokens) {
  std::unique_lock<std::mutex> lock(stop->mu);
  while (!stop->stop) {
    if (stop->cv.wait_for(lock, std::chrono::seconds(1), [&] { return stop->stop; })) break;
    lock.unlock();
    Status s = store->Refresh();
    if (s.ok()) s = tokens->Refresh();
    if (!s.ok()) spdlog::warn("refresh: {}", s.ToString());
    lock.lock();
  }
}

}  // namespace

int CmdTogglesServe(const GlobalFlags& g, const std::string& listen, int max_connections,
                    int io_threads, const std::string& store_flag) {
  // Before any thread: signals go to the signal thread only.
  auto stop = std::make_shared<StopSignal>();
  InstallSignalHandler([stop](int sig) {
    if (sig == SIGHUP) return;
    std::lock_guard<std::mutex> lock(stop->mu);
    stop->stop = true;
    stop->signal = sig;
    stop->cv.notify_all();
  });
  if (g.verbose) spdlog::set_level(spdlog::level::debug);
  std::string host;
  uint16_t port = 0;
  Status s = ParseListenAddress(listen, &host, &port);
  if (!s.ok()) return Fail(Status::Invalid("--listen: " + s.message()));
  std::unique_ptr<toggles::ToggleStore> store;
  std::unique_ptr<toggles::TokenStore> tokens;
  s = OpenStores(g.data, toggles::ToggleStoreLocation(store_flag, g.data), &store, &tokens);
  toggles::AdminTokenSetup what = toggles::AdminTokenSetup::kExisting;
  if (s.ok()) s = tokens->EnsureAdminToken(&what);
  if (!s.ok()) return Fail(s);
  if (what != toggles::AdminTokenSetup::kExisting || !g.quiet) ReportAdminToken(g.data, what);

  MetricsRegistry metrics;
  Router router;
  toggles::ToggleApi api(*store, *tokens, &metrics);
  api.Register(&router);
  // Every connection is a descriptor (docs/design.md "HTTP API conventions").
  uint64_t files_before = 0;
  uint64_t files = RaiseOpenFileLimit(&files_before);
  if (files != files_before)
    spdlog::info("open files: soft limit raised from {} to {}", files_before, files);
  HttpServer server(router, ServerOptions(host, port, max_connections, io_threads, &metrics));
  s = server.Start();
  if (!s.ok()) {
    // The address is taken or not ours: an outside condition, exit 3.
    return Fail(Status::Unavailable("listen on " + listen + ": " + s.message()));
  }
  spdlog::info("toggle server listening on http://{} (data {}, revision {})", server.address(),
               g.data, store->CurrentRevision());
  ServeUntilStopped(stop.get(), store.get(), tokens.get());
  spdlog::info("signal {}: stopping", stop->signal);
  server.Stop();
  return 0;
}

}  // namespace ladle::runner
