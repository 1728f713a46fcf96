#include "core/sse.h"

#include <algorithm>
#include <charconv>
#include <mutex>
#include <utility>
#include <vector>

namespace ladle {
namespace {

using Text = std::shared_ptr<const std::string>;

bool ParseId(std::string_view text, uint64_t* id) {
  auto result = std::from_chars(text.data(), text.data() + text.size(), *id);
  return !text.empty() && result.ec == std::errc() && result.ptr == text.data() + text.size();
}

}  // namespace

std::string FormatSseEvent(uint64_t id, std::string_view event, std::string_view data) {
  std::string out;
  out.reserve(data.size() + event.size() + 32);
  if (id != 0) out += "id: " + std::to_string(id) + "\n";
  if (!event.empty()) {
    out += "event: ";
    for (char c : event) {
      if (c != '\r' && c != '\n') out += c;
    }
    out += '\n';
  }
  while (true) {
    size_t end = data.find_first_of("\r\n");
    out += "data: ";
    out.append(data.substr(0, end));
    out += '\n';
    if (end == std::string_view::npos) break;
    size_t skip = (data[end] == '\r' && end + 1 < data.size() && data[end + 1] == '\n') ? 2 : 1;
    data.remove_prefix(end + skip);
  }
  out += '\n';
  return out;
}

struct SseHub::Impl {
  struct Subscriber {
    std::shared_ptr<StreamWriter> writer;
    uint64_t last_id = 0;    // the newest id this client has (been sent)
    bool replaying = false;  // live events wait in `held` meanwhile
    std::vector<std::pair<uint64_t, Text>> held;
    size_t held_bytes = 0;
  };

  Impl(Options o, ReplayFn r) : options(o), replay(std::move(r)) {}

  void Attach(std::shared_ptr<StreamWriter> writer, std::optional<uint64_t> last_id);
  void Replay(Subscriber* sub, uint64_t after_id);
  void Publish(uint64_t id, const Text& text);
  bool Deliver(Subscriber* sub, uint64_t id, const Text& text);
  void Detach(const StreamWriter* writer);
  void CloseAll(bool forever);

  const Options options;
  const ReplayFn replay;
  mutable std::mutex mu;
  std::vector<std::shared_ptr<Subscriber>> subscribers;
  bool closed = false;
};

void SseHub::Impl::Attach(std::shared_ptr<StreamWriter> writer, std::optional<uint64_t> last_id) {
  if (options.retry.count() > 0) {
    writer->Send("retry: " + std::to_string(options.retry.count()) + "\n\n");
  }
  auto sub = std::make_shared<Subscriber>();
  sub->writer = writer;
  sub->last_id = last_id.value_or(0);
  sub->replaying = last_id.has_value() && replay;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (closed) return writer->Close();
    subscribers.push_back(sub);
  }
  if (sub->replaying) Replay(sub.get(), *last_id);
}

// Registered first, replayed second: an event published in between is held,
// not lost, and sent after the replay unless the replay already had it.
void SseHub::Impl::Replay(Subscriber* sub, uint64_t after_id) {
  // Only this thread touches sub->last_id while sub->replaying is set.
  try {
    replay(after_id, [sub](const SseEvent& e) {
      if (e.id != 0 && e.id <= sub->last_id) return;
      sub->writer->Send(FormatSseEvent(e.id, e.event, e.data));
      if (e.id != 0) sub->last_id = e.id;
    });
  } catch (...) {  // the owner's store failed: go live from where it stopped
  }
  std::lock_guard<std::mutex> lock(mu);
  sub->replaying = false;
  for (auto& [id, text] : sub->held) Deliver(sub, id, text);
  sub->held.clear();
}

bool SseHub::Impl::Deliver(Subscriber* sub, uint64_t id, const Text& text) {
  if (id != 0 && id <= sub->last_id) return true;
  if (!sub->writer->Send(text)) return false;
  if (id != 0) sub->last_id = id;
  return true;
}

void SseHub::Impl::Publish(uint64_t id, const Text& text) {
  std::lock_guard<std::mutex> lock(mu);
  auto gone = [&](const std::shared_ptr<Subscriber>& sub) {
    if (sub->writer->closed()) return true;
    if (!sub->replaying) return !Deliver(sub.get(), id, text);
    sub->held_bytes += text->size();
    if (sub->held_bytes > options.max_queued_bytes) {  // too far behind already
      sub->writer->Close();
      return true;
    }
    sub->held.emplace_back(id, text);
    return false;
  };
  subscribers.erase(std::remove_if(subscribers.begin(), subscribers.end(), gone),
                    subscribers.end());
}

void SseHub::Impl::Detach(const StreamWriter* writer) {
  std::lock_guard<std::mutex> lock(mu);
  subscribers.erase(std::remove_if(subscribers.begin(), subscribers.end(),
                                   [&](const auto& sub) { return sub->writer.get() == writer; }),
                    subscribers.end());
}

void SseHub::Impl::CloseAll(bool forever) {
  std::vector<std::shared_ptr<Subscriber>> ending;
  {
    std::lock_guard<std::mutex> lock(mu);
    closed = closed || forever;
    ending.swap(subscribers);
  }
  for (auto& sub : ending) sub->writer->Close();
}

namespace {

// The stream behind one Subscribe: attaches its writer when the server
// starts the stream, detaches it when the stream ends.
class HubSource : public StreamSource {
 public:
  HubSource(std::weak_ptr<SseHub::Impl> hub, std::optional<uint64_t> last_id)
      : hub_(std::move(hub)), last_id_(last_id) {}

  void Start(std::shared_ptr<StreamWriter> writer) override {
    writer_ = writer.get();
    if (auto hub = hub_.lock()) return hub->Attach(std::move(writer), last_id_);
    writer->Close();
  }

  void OnClosed() override {
    if (auto hub = hub_.lock()) hub->Detach(writer_);
  }

 private:
  std::weak_ptr<SseHub::Impl> hub_;
  std::optional<uint64_t> last_id_;
  const StreamWriter* writer_ = nullptr;  // identity only
};

}  // namespace

SseHub::SseHub(Options options, ReplayFn replay)
    : impl_(std::make_shared<Impl>(options, std::move(replay))) {}

SseHub::~SseHub() { impl_->CloseAll(/*forever=*/true); }

HttpResponse SseHub::Subscribe(const HttpRequest& request) {
  std::optional<uint64_t> last_id;
  std::string_view header = request.Header("Last-Event-ID");
  if (header.empty()) header = request.Query("last_event_id");
  uint64_t id = 0;
  if (ParseId(header, &id)) last_id = id;

  StreamOptions stream;
  stream.max_queued_bytes = impl_->options.max_queued_bytes;
  stream.keep_alive_interval = impl_->options.keep_alive;
  stream.keep_alive_data = ": keep-alive\n\n";
  HttpResponse response = HttpResponse::Stream(std::make_shared<HubSource>(impl_, last_id),
                                               "text/event-stream", std::move(stream));
  response.headers.Add("Cache-Control", "no-cache");
  response.headers.Add("X-Accel-Buffering", "no");  // nginx in front: do not buffer
  return response;
}

void SseHub::Attach(std::shared_ptr<StreamWriter> writer, std::optional<uint64_t> last_event_id) {
  impl_->Attach(std::move(writer), last_event_id);
}

void SseHub::Publish(uint64_t id, std::string_view event, std::string_view data) {
  impl_->Publish(id, std::make_shared<const std::string>(FormatSseEvent(id, event, data)));
}

size_t SseHub::subscriber_count() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return std::count_if(impl_->subscribers.begin(), impl_->subscribers.end(),
                       [](const auto& sub) { return !sub->writer->closed(); });
}

void SseHub::CloseAll() { impl_->CloseAll(/*forever=*/false); }

}  // namespace ladle
