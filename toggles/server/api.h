// The toggle service's HTTP routes (docs/toggles.md "HTTP API", "OFREP"):
// OFREP evaluation, the toggle and token API, the audit trail, the SSE change
// stream, health and metrics.
//
// Routes are plain handlers registered on a core Router: tests call them
// through Router::Dispatch without a socket. The OFREP routes are the hot
// path: they read the store's lock-free Snapshot and the token store's
// in-memory table, never SQLite, and write their JSON by hand.
//
// Ownership: ToggleApi owns the SseHubs of /api/v1/stream and the listener it
// registers on the store (removed by the destructor); it only refers to the
// stores and the metrics registry, which must outlive it.
//
// Thread-safety: Register once, before serving; the handlers may then run on
// any number of threads at once.
#ifndef LADLE_TOGGLES_SERVER_API_H_
#define LADLE_TOGGLES_SERVER_API_H_

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>

#include "core/http.h"
#include "core/metrics.h"
#include "core/sse.h"
#include "toggles/eval/evaluate.h"
#include "toggles/server/store.h"
#include "toggles/server/auth.h"
#include "toggles/server/tokens.h"

namespace ladle::toggles {

// The OFREP bulk ETag: a quoted hash of the snapshot revision, the
// environment and the canonical (sorted, compact) context JSON, so it
// changes with the flags and with the context.
std::string BulkEtag(int64_t revision, std::string_view environment,
                     std::string_view canonical_context);

// Whether an If-None-Match field value names `etag` (RFC 9110 section 13.1.2):
// "*"; or a comma-separated list of entity-tags, weak (W/"x") or strong,
// compared weakly (W/"x" matches "x"). A malformed value matches nothing, so
// the client gets a full answer.
bool IfNoneMatchHolds(std::string_view if_none_match, std::string_view etag);

class ToggleApi {
 public:
  struct Options {
    SseHubOptions sse;  // keep-alive every 15 s (docs/design.md "HTTP API conventions")
    // Most events a Last-Event-ID replay sends; beyond it the client gets
    // one "reset" event and should re-fetch everything.
    int max_replay = 1000;
  };

  // REQUIRES: store, tokens and metrics (may be null) outlive this object.
  ToggleApi(ToggleStore& store, TokenStore& tokens, MetricsRegistry* metrics,
            Options options);
  ToggleApi(ToggleStore& store, TokenStore& tokens, MetricsRegistry* metrics)
      : ToggleApi(store, tokens, metrics, Options()) {}
  ~ToggleApi();
  ToggleApi(const ToggleApi&) = delete;
  ToggleApi& operator=(const ToggleApi&) = delete;

  // Adds every route of docs/toggles.md "HTTP API" to `router`. Call once.
  void Register(Router* router);

  SseHub& hub() { return hub_; }

 private:
  // --- auth: an error response, or nullopt with *p filled ---
  std::optional<HttpResponse> Authenticate(const HttpRequest& r, bool ofrep,
                                           Principal* p) const;
  std::optional<HttpResponse> RequireAdmin(const HttpRequest& r, Principal* p) const;
  // The environment OFREP evaluates in, or an error (403).
  std::optional<HttpResponse> EvaluationEnvironment(const HttpRequest& r, const Principal& p,
                                                    std::string_view* env) const;

  // --- OFREP ---
  HttpResponse EvaluateOne(const HttpRequest& r);
  HttpResponse EvaluateBulk(const HttpRequest& r);
  void CountEvaluation(std::string_view key, Reason reason);

  // --- toggles ---
  HttpResponse ListToggles(const HttpRequest& r);
  HttpResponse CreateToggle(const HttpRequest& r);
  HttpResponse GetToggle(const HttpRequest& r);
  HttpResponse PatchToggle(const HttpRequest& r);
  HttpResponse DeleteToggle(const HttpRequest& r);
  HttpResponse PutEnvironment(const HttpRequest& r);
  HttpResponse FlipOn(const HttpRequest& r) { return Flip(r, true); }
  HttpResponse FlipOff(const HttpRequest& r) { return Flip(r, false); }
  HttpResponse Flip(const HttpRequest& r, bool on);
  HttpResponse History(const HttpRequest& r);
  std::optional<HttpResponse> EventPage(const HttpRequest& r, const Principal& p,
                                        std::optional<std::string> key, std::string* body);
  HttpResponse Events(const HttpRequest& r);
  HttpResponse Stream(const HttpRequest& r);

  // --- tokens, health, metrics ---
  HttpResponse ListTokens(const HttpRequest& r);
  HttpResponse CreateToken(const HttpRequest& r);
  HttpResponse RevokeToken(const HttpRequest& r);
  HttpResponse Health(const HttpRequest& r);
  HttpResponse Metrics(const HttpRequest& r);

  // Replays events after `after`; with `environment`, only what a client
  // token bound to it sees.
  void Replay(uint64_t after, const std::optional<std::string>& environment,
              const SseHub::EmitFn& emit);
  SseHub& HubFor(const std::string& environment);
  void OnStoreChange(const AuditEvent& e);

  ToggleStore& store_;
  TokenStore& tokens_;
  MetricsRegistry* metrics_;
  const Options options_;
  Gauge* revision_gauge_ = nullptr;

  // Evaluation counters by toggle key, one per Reason; created on a key's
  // first evaluation, then found under a shared lock (no allocation).
  using ReasonCounters = std::array<Counter*, 6>;
  mutable std::shared_mutex counters_mu_;
  std::map<std::string, ReasonCounters, std::less<>> counters_;

  SseHub hub_;  // after store_: its replay reads the store; admin streams
  // Client streams, one hub per environment (docs/toggles.md "HTTP API"):
  // never removed, at most one per environment that has client tokens.
  std::mutex env_hubs_mu_;
  std::map<std::string, std::unique_ptr<SseHub>> env_hubs_;
  int64_t listener_id_ = 0;
};

}  // namespace ladle::toggles

#endif  // LADLE_TOGGLES_SERVER_API_H_
