// Server-Sent Events: one publisher, many subscribers, no thread per client.
//
// An SseHub turns GET requests into streaming responses (Subscribe) and fans
// each Publish out to every open stream. Publish formats the event once and
// only queues it on each subscriber's StreamWriter: it never waits for a
// socket, and a subscriber whose queue passes max_queued_bytes (a client that
// stopped reading) is disconnected; it may reconnect with Last-Event-ID.
//
// History: the hub keeps none. Ids are the owner's sequence (a toggle
// revision, say) and replay comes from the owner's store through ReplayFn,
// which the hub calls for a client that sends Last-Event-ID. Events
// published while a replay runs are held back and sent after it, minus
// those the replay already sent, so a client sees each id once, in order.
//
// Keep-alive: after keep_alive with nothing sent, the server sends the
// comment ": keep-alive" every 15 s, which also reveals clients that went
// away (docs/design.md "HTTP API conventions").
//
// Thread-safety: every method may be called from any thread. Publish must
// be called in id order (ids only grow); id 0 means "no id" and is always
// delivered.
#ifndef LADLE_CORE_SSE_H_
#define LADLE_CORE_SSE_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/http.h"

namespace ladle {

struct SseEvent {
  uint64_t id = 0;     // 0: no "id:" line
  std::string event;   // "": no "event:" line (the client sees "message")
  std::string data;    // one "data:" line per line of text
};

// The wire form: "id: 7\nevent: change\ndata: {...}\n\n". Line breaks in
// `data` (\n, \r\n or \r) become separate data lines; in `event` they are
// dropped.
std::string FormatSseEvent(uint64_t id, std::string_view event, std::string_view data);

// (Outside SseHub so that `Options options = {}` compiles as a default argument.)
struct SseHubOptions {
  std::chrono::milliseconds keep_alive{15000};
  // Per subscriber. A replay bigger than this disconnects the client, so a
  // ReplayFn should send a "reset" event instead of a long backlog.
  size_t max_queued_bytes = 1 << 20;
  // > 0: sent as "retry: MS" first, the client's reconnection delay.
  std::chrono::milliseconds retry{0};
};

class SseHub {
 public:
  using Options = SseHubOptions;

  // Calls emit(event) for each event after `after_id`, oldest first. Runs on
  // the subscribing connection's io thread: keep it short. May throw (the
  // replay then ends where it stopped).
  using EmitFn = std::function<void(const SseEvent&)>;
  using ReplayFn = std::function<void(uint64_t after_id, const EmitFn& emit)>;

  explicit SseHub(Options options = {}, ReplayFn replay = nullptr);
  // Ends every stream. Streams subscribed later end at once.
  ~SseHub();
  SseHub(const SseHub&) = delete;
  SseHub& operator=(const SseHub&) = delete;

  // The streaming response for an SSE route. The Last-Event-ID header (or a
  // `last_event_id` query parameter, for clients that cannot set headers)
  // selects the replay. The hub may be destroyed before the response ends.
  HttpResponse Subscribe(const HttpRequest& request);

  // Subscribes an existing writer (a test's in-memory writer, or another
  // transport); with last_event_id, replays first.
  void Attach(std::shared_ptr<StreamWriter> writer, std::optional<uint64_t> last_event_id);

  void Publish(uint64_t id, std::string_view event, std::string_view data);
  void Publish(const SseEvent& event) { Publish(event.id, event.event, event.data); }

  // Open subscribers (a stream counts until the hub notices it closed).
  size_t subscriber_count() const;

  // Ends every current stream (clients may reconnect).
  void CloseAll();

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace ladle

#endif  // LADLE_CORE_SSE_H_
