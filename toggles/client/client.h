// Client: feature toggles inside an application (docs/toggles.md "Client library").
//
// Fetches one environment's toggles from a ladle toggle server, compiles them
// with the server's own engine (evaluate.h) and answers IsEnabled/Variant in
// process, without a network round trip. A background thread keeps the set
// current: it follows the server's event stream (GET /api/v1/stream) and
// refetches the set on each change; while the stream is unavailable it polls
// with If-None-Match (304: unchanged). Each new set is written to a cache file
// (temp file + rename), and the next start loads it first, so an application
// starts with its last known toggles while the server is down.
//
// Failures never throw and never stop the application: a toggle the client
// does not know (no set yet, or not in it) evaluates to the caller's default,
// and the client keeps the last good set until a fetch succeeds. last_error()
// says what went wrong last.
//
// Thread-safety: every method may be called from any thread. Evaluation takes
// no lock and does not allocate (IsEnabled; Variant allocates only its
// returned string): each thread keeps a reference to the set it last used and
// checks one atomic generation number per call, so a thread holds on to an old
// set until its next evaluation (or its exit). The destructor stops the
// background thread promptly (it cancels a request in flight).
//
//   ladle::toggles::ClientOptions options;
//   options.server = "http://127.0.0.1:7707";
//   if (const char* t = std::getenv("LADLE_TOKEN")) options.token = t;  // a client token
//   options.cache_file = "/var/cache/shop/toggles.json";
//   std::unique_ptr<ladle::toggles::Client> toggles;
//   ladle::Status s = ladle::toggles::Client::Start(options, &toggles);
//   ...
//   ladle::toggles::EvaluationContext user;
//   user.SetTargetingKey("alice");
//   if (toggles->IsEnabled("new-checkout", user)) { ... }
#ifndef LADLE_TOGGLES_CLIENT_CLIENT_H_
#define LADLE_TOGGLES_CLIENT_CLIENT_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/base/status.h"
#include "toggles/eval/evaluate.h"
#include "toggles/client/http_client.h"

namespace ladle::toggles {

struct ClientOptions {
  std::string server{kDefaultServerUrl};  // http://host:port[/prefix]
  std::string token;                      // a client token bound to `environment`, or admin
  std::string environment = "production";
  // Where the last good set is kept; "" keeps none. The directory is created
  // if missing. The file is private (0600): strategies may list user ids.
  std::string cache_file;

  bool stream = true;                              // follow /api/v1/stream; false: poll only
  std::chrono::milliseconds poll_interval{15000};  // while there is no stream
  // After the stream failed to open, poll this long before trying it again.
  std::chrono::milliseconds stream_retry{30000};
  // The server sends a comment every 15 s: no byte for this long means the
  // stream is dead and is reopened.
  std::chrono::milliseconds stream_idle_timeout{45000};
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds read_timeout{5000};

  // false: no background thread; the set changes only on Refresh().
  bool background = true;
  // Called after a new set is in use, with its revision, on the thread that
  // fetched it (Start's, Refresh's caller's, or the background thread). Keep
  // it quick; it must not destroy the Client.
  std::function<void(int64_t revision)> on_update;
};

// Where the set in use came from.
enum class ToggleSource { kNone, kCache, kServer };
std::string_view ToString(ToggleSource source);  // "none", "cache", "server"

// One evaluation with everything the engine says (an OFREP answer's fields).
struct ToggleDetails {
  bool found = false;     // false: FLAG_NOT_FOUND, and the rest is the default
  bool on = false;
  std::string variant;    // "on", "off" or a variant's name (off: the default
                          // variant's); "" when not found
  nlohmann::json value;   // true/false or the variant's value; null when not found
  Reason reason = Reason::kDefault;
  std::optional<ErrorCode> error;  // with Reason::kError
  int64_t revision = 0;   // of the set that answered
};

class Client {
 public:
  // Invalid (and *out untouched) only for bad options: an unparsable server
  // URL or an empty environment. Otherwise *out is set and OK returned even
  // when the server is down: the client then runs on the cache file (or with
  // no toggles: defaults everywhere) and keeps trying; see source() and
  // last_error(). Loads the cache file, then fetches once (this waits up to
  // connect_timeout + read_timeout), then starts the background thread.
  static Status Start(ClientOptions options, std::unique_ptr<Client>* out);

  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // On or off for this context; `default_value` when the toggle is unknown or
  // the answer needs a targeting key the context lacks. Lock-free, no
  // allocation.
  bool IsEnabled(std::string_view key, const EvaluationContext& context,
                 bool default_value = false) const;
  // The variant's name ("on"/"off" for a toggle without variants; a toggle
  // with variants that is off or matches nothing gives its default variant,
  // the first, as OFREP does); `default_variant` where IsEnabled gives its
  // default.
  std::string Variant(std::string_view key, const EvaluationContext& context,
                      std::string_view default_variant = "") const;
  // Everything, copied out of the set (allocates).
  ToggleDetails Evaluate(std::string_view key, const EvaluationContext& context) const;

  // The set in use (never null; empty before any set arrived).
  std::shared_ptr<const Snapshot> snapshot() const;
  int64_t revision() const { return snapshot()->revision(); }
  ToggleSource source() const { return source_.load(std::memory_order_acquire); }
  // OK when the last fetch (and cache write) succeeded; else why not.
  Status last_error() const;
  // Whether the event stream is open right now.
  bool streaming() const { return streaming_.load(std::memory_order_acquire); }

  // Fetches the set now (If-None-Match), as the background thread does.
  Status Refresh();

 private:
  Client(ClientOptions options, ServerUrl url);

  const Snapshot* Current() const;  // the hot path's view; see client.cc
  void Publish(std::shared_ptr<const Snapshot> snapshot, ToggleSource source);
  Status FetchLocked();
  Status Fetch();
  void LoadCache();
  Status WriteCache(const nlohmann::json& toggles, int64_t revision);
  void SetError(const Status& s);
  void Run();
  bool OpenStream();
  bool OnEvent(const std::string& id);
  bool WaitFor(std::chrono::milliseconds delay);  // false: stopping

  const ClientOptions options_;
  const HttpClient http_;

  // The set: written under fetch_mu_ by Publish, read lock-free.
  std::shared_ptr<const Snapshot> snapshot_;  // std::atomic_load/atomic_store only
  std::atomic<uint64_t> generation_{0};       // process-unique per Publish
  std::atomic<ToggleSource> source_{ToggleSource::kNone};
  std::atomic<bool> streaming_{false};

  std::mutex fetch_mu_;          // serializes fetches; guards the fields below
  std::string etag_;             // of the last 200 answer
  std::string set_text_;         // the toggles in use, as JSON text
  std::string cache_text_;       // the toggles last written to (or read from) the cache
  int64_t seen_revision_ = 0;    // every change up to this is in the set

  mutable std::mutex error_mu_;
  Status last_error_;

  std::mutex run_mu_;  // guards stopping_, exited_
  std::condition_variable run_cv_;
  bool stopping_ = false;
  bool exited_ = false;
  HttpCanceller cancel_stream_, cancel_fetch_;
  std::thread thread_;
};

}  // namespace ladle::toggles

#endif  // LADLE_TOGGLES_CLIENT_CLIENT_H_
