// HttpServer over Boost.Beast's request parser and Asio sockets.
//
// Shape: one io_context per io thread; the acceptor lives on the first and
// hands each socket to the next context in turn, so a Connection's handlers
// all run on one thread and need no strand or lock. Cross-thread entry points
// (StreamChannel::Send, Stop) post to that thread.
//
// Speed (the OFREP route must stay near nginx): a Connection reuses one
// HttpRequest, read buffer and response-head string for all its requests,
// the parser writes straight into the HttpRequest (no Beast message or
// fields), and the head is formatted by hand and written with the body in
// one gathered write.
#include "core/http_server.h"

#include <boost/asio.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/status.hpp>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <ctime>
#include <list>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <thread>
#include <vector>

namespace ladle {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using Executor = asio::io_context::executor_type;

constexpr size_t kReadChunk = 8192;
// After a response that ends the connection, unread input is drained for at
// most this long (and this much) so that closing does not reset the
// connection before the client has read the response (a 413 in particular).
constexpr std::chrono::milliseconds kLingerTime{2000};
constexpr size_t kLingerBytes = 16 << 20;
// A connection refused with 503 (over the cap) is drained more briefly, and
// at most this many are being refused at once; past that they are closed
// without an answer.
constexpr std::chrono::milliseconds kRejectLingerTime{500};
constexpr size_t kRejectLingerBytes = 64 << 10;
constexpr int64_t kMaxRejecting = 256;
// How long the accept loop waits after an error it cannot work around.
constexpr std::chrono::milliseconds kAcceptBackoff{50};
// Warnings (cap reached, out of descriptors) are repeated at most this often.
constexpr std::chrono::seconds kWarningInterval{60};
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr std::string_view kLastChunk = "0\r\n\r\n";

std::string_view View(beast::string_view s) { return {s.data(), s.size()}; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

// "Date: ..." for this second; formatted once a second per thread.
std::string_view DateHeader() {
  thread_local std::time_t cached = 0;
  thread_local char text[64];
  thread_local size_t length = 0;
  std::time_t now = std::time(nullptr);
  if (now != cached) {
    std::tm tm;
    gmtime_r(&now, &tm);
    length = std::strftime(text, sizeof text, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    cached = now;
  }
  return {text, length};
}

std::string_view Reason(int status) {
  beast::string_view reason = bhttp::obsolete_reason(static_cast<bhttp::status>(status));
  return reason.empty() ? std::string_view("Unknown") : View(reason);
}

void AppendNumber(std::string* out, uint64_t n) {
  char digits[24];
  auto result = std::to_chars(digits, digits + sizeof digits, n);
  out->append(digits, result.ptr);
}

bool IsFramingHeader(std::string_view name) {
  return EqualsIgnoreCase(name, "Content-Length") ||
         EqualsIgnoreCase(name, "Transfer-Encoding") || EqualsIgnoreCase(name, "Connection") ||
         EqualsIgnoreCase(name, "Date");
}

bool HasLineBreak(std::string_view text) {
  return text.find_first_of("\r\n") != std::string_view::npos;
}

std::string FormatEndpoint(const tcp::endpoint& endpoint) {
  std::string address = endpoint.address().to_string();
  if (endpoint.address().is_v6()) address = "[" + address + "]";
  return address + ":" + std::to_string(endpoint.port());
}

// The whole of a 503 that is written before any request is read: JSON as
// every error (docs/design.md "HTTP API conventions"), and "Connection:
// close" since the connection is closed after it.
std::string BusyResponse(const std::string& message) {
  std::string body = R"({"error":"unavailable","message":")" + message + "\"}";
  return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
         "Content-Length: " + std::to_string(body.size()) +
         "\r\nRetry-After: 1\r\nConnection: close\r\n\r\n" + body;
}

// Feeds Beast's HTTP/1 request parser straight into an HttpRequest.
class RequestParser final : public bhttp::basic_parser<true> {
 public:
  RequestParser(HttpRequest* request, size_t body_limit)
      : request_(request), body_limit_(body_limit) {}
  bool bad_target() const { return bad_target_; }

 private:
  void on_request_impl(bhttp::verb, beast::string_view method, beast::string_view target,
                       int version, beast::error_code&) override {
    request_->method.assign(method.data(), method.size());
    bad_target_ = !request_->SetTarget(View(target));
    request_->version = version;
  }
  void on_response_impl(int, beast::string_view, int, beast::error_code&) override {}
  void on_field_impl(bhttp::field, beast::string_view name, beast::string_view value,
                     beast::error_code&) override {
    request_->headers.Add(View(name), View(value));
  }
  void on_header_impl(beast::error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>& length,
                         beast::error_code&) override {
    if (length) request_->body.reserve(std::min<uint64_t>(*length, body_limit_));
  }
  size_t on_body_impl(beast::string_view body, beast::error_code&) override {
    request_->body.append(body.data(), body.size());
    return body.size();
  }
  void on_chunk_header_impl(std::uint64_t, beast::string_view, beast::error_code&) override {}
  size_t on_chunk_body_impl(std::uint64_t, beast::string_view body,
                            beast::error_code&) override {
    request_->body.append(body.data(), body.size());
    return body.size();
  }
  void on_finish_impl(beast::error_code&) override {}

  HttpRequest* request_;
  size_t body_limit_;
  bool bad_target_ = false;
};


// Requests by route, method and status class. Each series is created on its
// first use and then found by index, so recording takes no lock.
class RequestMetrics {
 public:
  RequestMetrics(const Router& router, MetricsRegistry* registry)
      : router_(router), registry_(registry), rows_(router.route_count() + 1),
        slots_(new Slot[rows_ * 5]) {
    if (!registry_) return;
    connections = &registry_->GetGauge("ladle_http_connections", "Open HTTP connections.");
    rejected = &registry_->GetCounter("ladle_http_connections_rejected_total",
                                      "HTTP connections answered 503 and closed: over the "
                                      "connection cap, or out of file descriptors.");
    streams = &registry_->GetGauge("ladle_http_streams", "Open streaming HTTP responses.");
  }

  // route_id -1: no route matched.
  void Record(int route_id, int status, std::chrono::nanoseconds duration) {
    if (!registry_) return;
    size_t row = route_id >= 0 ? static_cast<size_t>(route_id) : rows_ - 1;
    int status_class = std::clamp(status / 100, 1, 5);
    Slot& slot = slots_[row * 5 + status_class - 1];
    Counter* count = slot.count.load(std::memory_order_acquire);
    if (!count) count = Create(slot, row, status_class);
    count->Inc();
    slot.latency.load(std::memory_order_relaxed)->Observe(duration);
  }

  void AddConnections(int n) { if (connections) connections->Add(n); }
  void AddStreams(int n) { if (streams) streams->Add(n); }
  void AddRejected() { if (rejected) rejected->Inc(); }

 private:
  struct Slot {
    std::atomic<Counter*> count{nullptr};
    std::atomic<Histogram*> latency{nullptr};
  };

  Counter* Create(Slot& slot, size_t row, int status_class) {
    std::lock_guard<std::mutex> lock(mu_);
    if (Counter* count = slot.count.load(std::memory_order_acquire)) return count;
    bool matched = row + 1 < rows_;
    MetricLabels labels{{"method", matched ? router_.method(row) : "any"},
                        {"route", matched ? router_.pattern(row) : "unmatched"},
                        {"code", std::to_string(status_class) + "xx"}};
    slot.latency.store(&registry_->GetHistogram("ladle_http_request_duration_seconds",
                                                "Time to answer an HTTP request.", labels),
                       std::memory_order_relaxed);
    Counter* count = &registry_->GetCounter("ladle_http_requests_total",
                                            "HTTP requests answered.", labels);
    slot.count.store(count, std::memory_order_release);  // after latency: readers see both
    return count;
  }

  const Router& router_;
  MetricsRegistry* registry_;
  size_t rows_;  // one per route, and a last one for requests no route matched
  std::unique_ptr<Slot[]> slots_;
  std::mutex mu_;
  Gauge* connections = nullptr;
  Gauge* streams = nullptr;
  Counter* rejected = nullptr;
};

class Connection;

// What the server shares with its connections and their stream writers,
// which may outlive it (a hub holding a writer): each holds a shared_ptr.
struct ServerShared {
  ServerShared(const Router& r, HttpServerOptions o)
      : router(r), options(std::move(o)), metrics(r, options.metrics) {}

  const Router& router;
  const HttpServerOptions options;
  RequestMetrics metrics;
  std::atomic<bool> stopping{false};

  // Stop closes the gate before the io_contexts go; a stream writer posts
  // to its connection only while the gate is open.
  std::shared_mutex gate_mu;
  bool gate_open = true;

  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> rejected{0};
  std::atomic<int64_t> rejecting{0};  // refused connections still draining
  size_t max_connections = 0;         // set by Start, before any connection
  std::string over_cap_response;      // the whole 503, head and body
  std::string no_descriptor_response;
  std::atomic<int64_t> open_connections{0};
  std::atomic<int64_t> open_streams{0};
  std::mutex idle_mu;
  std::condition_variable idle_cv;  // Stop waits here for open_connections == 0

  std::mutex registry_mu;
  std::list<std::weak_ptr<Connection>> registry;  // every live connection, for Stop
};

using Socket = asio::basic_stream_socket<tcp, Executor>;
using Timer = asio::basic_waitable_timer<Clock, asio::wait_traits<Clock>, Executor>;

// The StreamWriter of one streaming response: a queue that any thread fills
// and the connection's io thread drains.
class StreamChannel final : public StreamWriter {
 public:
  struct Batch {
    std::vector<std::shared_ptr<const std::string>> items;
    size_t bytes = 0;
    bool end = false;       // Close() was called: write the last chunk after items
    bool overflow = false;  // the client fell too far behind: drop the connection
  };

  StreamChannel(std::weak_ptr<Connection> connection, Executor executor,
                std::shared_ptr<ServerShared> shared, size_t max_bytes)
      : connection_(std::move(connection)), executor_(executor), shared_(std::move(shared)),
        max_bytes_(max_bytes) {}

  using StreamWriter::Send;
  bool Send(std::shared_ptr<const std::string> data) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return false;
    if (!data || data->empty()) return true;  // an empty chunk would end the stream
    if (queued_bytes_ + data->size() > max_bytes_) {
      closed_ = overflow_ = true;
      notify_pending_ = false;  // a write may be stuck on this very client: wake anyway
      NotifyLocked();
      return false;
    }
    queued_bytes_ += data->size();
    queue_.push_back(std::move(data));
    NotifyLocked();
    return true;
  }

  void Close() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    closed_ = end_requested_ = true;
    NotifyLocked();
  }

  bool closed() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return closed_;
  }

  size_t queued_bytes() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return queued_bytes_;
  }

  // io thread: moves what is queued into `batch`. Once it comes back empty
  // the next Send posts a wake-up again.
  void Take(Batch* batch) {
    std::lock_guard<std::mutex> lock(mu_);
    batch->items.clear();
    batch->items.swap(queue_);
    batch->bytes = queued_bytes_;
    queued_bytes_ = 0;
    batch->overflow = overflow_;
    batch->end = end_requested_ && !end_taken_;
    end_taken_ = end_taken_ || batch->end;
    if (batch->items.empty() && !batch->end && !batch->overflow) notify_pending_ = false;
  }

  bool overflowed() const {
    std::lock_guard<std::mutex> lock(mu_);
    return overflow_;
  }

  // io thread: the connection is done with this stream.
  void MarkEnded() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    queue_.clear();
    queued_bytes_ = 0;
  }

 private:
  void NotifyLocked();

  const std::weak_ptr<Connection> connection_;
  const Executor executor_;
  const std::shared_ptr<ServerShared> shared_;
  const size_t max_bytes_;

  mutable std::mutex mu_;
  std::vector<std::shared_ptr<const std::string>> queue_;
  size_t queued_bytes_ = 0;
  bool closed_ = false;
  bool overflow_ = false;
  bool end_requested_ = false;
  bool end_taken_ = false;
  bool notify_pending_ = false;  // the connection will Take() again without a new post
};

// Thread-local scratch for input that is read only to be thrown away; each
// io_context runs on one thread, so reads on a thread never overlap in time.
asio::mutable_buffer SinkBuffer() {
  thread_local std::array<char, 4096> sink;
  return asio::buffer(sink);
}

// One accepted socket: reads requests, answers them in order, and may turn
// into a stream. Every member function runs on the connection's io thread.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  // `reject`: over the cap; Start answers 503 and closes, and the connection
  // is not counted among the open ones.
  Connection(Socket socket, asio::io_context& context, std::shared_ptr<ServerShared> shared,
             std::string remote, bool reject)
      : socket_(std::move(socket)), context_(context), shared_(std::move(shared)),
        timer_(context.get_executor()), rejected_(reject) {
    request_.remote = std::move(remote);
    if (rejected_) {
      ++shared_->rejecting;
      return;
    }
    ++shared_->open_connections;
    shared_->metrics.AddConnections(1);
  }

  ~Connection() {
    Close();
    std::lock_guard<std::mutex> lock(shared_->registry_mu);
    shared_->registry.erase(registry_entry);
  }

  std::list<std::weak_ptr<Connection>>::iterator registry_entry;

  Executor executor() { return context_.get_executor(); }
  void Start() { rejected_ ? Reject() : ReadRequest(); }
  void Shutdown();
  // A deferred response's answer (DeferredResponder::Complete posts it here).
  void OnDeferred(uint64_t seq, HttpResponse response);
  void OnChannelReady() {
    if (state_ != State::kStreaming) return;
    if (!stream_writing_) FlushStream();
    else if (channel_->overflowed()) Close();  // cancels the stuck write
  }

 private:
  enum class State { kReading, kWaiting, kWriting, kStreaming, kLingering, kClosed };

  void ReadRequest();
  void ReadSome();
  void Parse();
  bool MaybeContinue();
  void OnParseError(beast::error_code ec);
  void Handle();
  HttpResponse Dispatch();
  void Defer(Clock::time_point start, bool keep_alive);
  void Answer(Clock::time_point start, bool keep_alive);
  void Respond(Clock::time_point start, bool keep_alive);
  void FormatHead(bool keep_alive);
  void OnWritten(beast::error_code ec);
  Clock::time_point Record(Clock::time_point start);

  void StartStream();
  bool FlushStream();
  void OnStreamWritten(beast::error_code ec);
  void FinishStream();
  void EndStream();
  void StreamTick(Clock::time_point now);

  void Reject();
  void Linger(std::chrono::milliseconds time, size_t bytes);
  void DrainPeer();
  void Close();

  void SetDeadline(Clock::time_point deadline, Clock::time_point now);
  void Arm(Clock::time_point at);
  void OnTimer(beast::error_code ec);

  Socket socket_;
  asio::io_context& context_;
  std::shared_ptr<ServerShared> shared_;
  Timer timer_;
  State state_ = State::kReading;
  Clock::time_point deadline_ = Clock::time_point::max();

  // Reused from request to request.
  beast::flat_buffer buffer_;
  HttpRequest request_;
  std::optional<RequestParser> parser_;
  HttpResponse response_;
  std::string head_;
  bool continue_sent_ = false;
  bool head_request_ = false;
  bool close_after_write_ = false;
  bool draining_ = false;  // a DrainPeer read is pending
  size_t drained_bytes_ = 0;
  size_t drain_limit_ = 0;
  const bool rejected_;

  // A deferred response being waited for (state kWaiting): which one (a
  // late answer to an earlier request must not answer this one), and what
  // Answer needs when it comes.
  uint64_t deferred_seq_ = 0;
  Clock::time_point deferred_start_;
  bool deferred_keep_alive_ = false;

  // Streaming.
  std::shared_ptr<StreamChannel> channel_;
  std::shared_ptr<StreamSource> source_;
  StreamOptions stream_options_;
  std::shared_ptr<const std::string> keep_alive_chunk_;
  StreamChannel::Batch batch_;
  std::vector<asio::const_buffer> buffers_;
  char chunk_line_[24];
  bool chunked_ = false;
  bool stream_head_pending_ = false;
  bool stream_writing_ = false;
  bool stream_ending_ = false;
  Clock::time_point last_send_;
};

void StreamChannel::NotifyLocked() {
  if (notify_pending_) return;
  std::shared_lock<std::shared_mutex> gate(shared_->gate_mu);
  if (!shared_->gate_open) {  // the server is gone: nobody will write
    closed_ = true;
    return;
  }
  notify_pending_ = true;
  asio::post(executor_, [connection = connection_] {
    if (auto c = connection.lock()) c->OnChannelReady();
  });
}

// ---- Reading a request ----

void Connection::ReadRequest() {
  if (shared_->stopping) return Close();
  state_ = State::kReading;
  request_.Reset();
  parser_.emplace(&request_, shared_->options.body_limit);
  parser_->body_limit(shared_->options.body_limit);
  parser_->header_limit(shared_->options.header_limit);
  parser_->eager(true);
  continue_sent_ = false;
  Clock::time_point now = Clock::now();
  SetDeadline(now + shared_->options.idle_timeout, now);
  Parse();  // a pipelined request may be buffered already
}

void Connection::ReadSome() {
  socket_.async_read_some(buffer_.prepare(kReadChunk),
                          [self = shared_from_this()](beast::error_code ec, size_t n) {
                            if (ec) return self->Close();  // EOF, reset or timed out
                            self->buffer_.commit(n);
                            self->Parse();
                          });
}

void Connection::Parse() {
  while (true) {
    beast::error_code ec = bhttp::error::need_more;
    if (buffer_.size() > 0) {
      size_t used = parser_->put(buffer_.data(), ec);
      buffer_.consume(used);
      if (!ec && used == 0 && !parser_->is_done()) ec = bhttp::error::need_more;
    }
    if (ec == bhttp::error::need_more) {
      if (!MaybeContinue()) ReadSome();
      return;
    }
    if (ec) return OnParseError(ec);
    if (parser_->is_done()) return Handle();
  }
}

// A client that sent "Expect: 100-continue" waits for this before its body.
bool Connection::MaybeContinue() {
  if (continue_sent_ || !parser_->is_header_done() || request_.version < 11) return false;
  if (!EqualsIgnoreCase(request_.Header("Expect"), "100-continue")) return false;
  continue_sent_ = true;
  asio::async_write(socket_, asio::buffer(kContinue.data(), kContinue.size()),
                    [self = shared_from_this()](beast::error_code ec, size_t) {
                      if (ec) return self->Close();
                      self->ReadSome();
                    });
  return true;
}

void Connection::OnParseError(beast::error_code ec) {
  if (ec == bhttp::error::body_limit) {
    response_ = HttpResponse::Error(
        413, "payload_too_large",
        "request body over " + std::to_string(shared_->options.body_limit) + " bytes");
  } else if (ec == bhttp::error::header_limit) {
    response_ = HttpResponse::Error(
        431, "header_too_large",
        "request header over " + std::to_string(shared_->options.header_limit) + " bytes");
  } else {
    response_ = HttpResponse::Error(400, "bad_request", "malformed HTTP request: " + ec.message());
  }
  head_request_ = false;
  // The rest of the input cannot be framed: answer, then drain and close.
  Respond(Clock::now(), /*keep_alive=*/false);
}

// ---- Answering it ----

void Connection::Handle() {
  Clock::time_point start = Clock::now();
  bool keep_alive = parser_->keep_alive() && !shared_->stopping;
  head_request_ = request_.method == "HEAD";
  if (parser_->bad_target()) {
    response_ = HttpResponse::Error(400, "bad_request", "malformed request target");
  } else {
    response_ = Dispatch();
  }
  if (response_.deferred) return Defer(start, keep_alive);
  Answer(start, keep_alive);
}

// Writes response_ (or starts its stream).
void Connection::Answer(Clock::time_point start, bool keep_alive) {
  if (response_.status < 200 || response_.status > 599 || response_.deferred) {
    // 1xx would need more than a head; a deferred answer must be final.
    response_ = HttpResponse::Error(500, "internal",
                                    "handler answered status " + std::to_string(response_.status));
  }
  if (response_.stream && !head_request_) {
    Record(start);
    return StartStream();
  }
  Respond(start, keep_alive && !shared_->stopping);
}

// ---- Deferred responses ----

// Completes a deferred response from any thread by posting the answer to
// the connection's io thread, while the server runs.
class DeferredResponder final : public Responder {
 public:
  DeferredResponder(std::weak_ptr<Connection> connection, Executor executor,
                    std::shared_ptr<ServerShared> shared, uint64_t seq)
      : connection_(std::move(connection)), executor_(executor), shared_(std::move(shared)),
        seq_(seq) {}

  ~DeferredResponder() override {
    if (!done_.load()) {
      Complete(HttpResponse::Error(500, "internal", "internal error: the handler gave no answer"));
    }
  }

  void Complete(HttpResponse response) override {
    if (done_.exchange(true)) return;
    std::shared_lock<std::shared_mutex> gate(shared_->gate_mu);
    if (!shared_->gate_open) return;  // the server is gone: nobody to answer
    auto answer = std::make_shared<HttpResponse>(std::move(response));
    asio::post(executor_, [connection = connection_, seq = seq_, answer] {
      if (auto c = connection.lock()) c->OnDeferred(seq, std::move(*answer));
    });
  }

 private:
  const std::weak_ptr<Connection> connection_;
  const Executor executor_;
  const std::shared_ptr<ServerShared> shared_;
  const uint64_t seq_;
  std::atomic<bool> done_{false};
};

// Waits for the handler's Responder without holding the io thread. The
// connection's timer, armed for deferred_timeout, keeps it alive meanwhile
// (and answers 504 when it fires first); Stop closes it like any other.
void Connection::Defer(Clock::time_point start, bool keep_alive) {
  state_ = State::kWaiting;
  deferred_start_ = start;
  deferred_keep_alive_ = keep_alive;
  const uint64_t seq = ++deferred_seq_;
  auto begin = std::move(response_.deferred);
  response_ = HttpResponse();
  Clock::time_point now = Clock::now();
  deadline_ = now + shared_->options.deferred_timeout;
  Arm(deadline_);
  auto responder = std::make_shared<DeferredResponder>(weak_from_this(), executor(), shared_, seq);
  try {
    begin(responder);
  } catch (const std::exception& e) {
    responder->Complete(HttpResponse::Error(500, "internal", std::string("internal error: ") + e.what()));
  } catch (...) {
    responder->Complete(HttpResponse::Error(500, "internal", "internal error"));
  }
}

void Connection::OnDeferred(uint64_t seq, HttpResponse response) {
  if (state_ != State::kWaiting || seq != deferred_seq_) return;
  response_ = std::move(response);
  Answer(deferred_start_, deferred_keep_alive_);
}

HttpResponse Connection::Dispatch() {
  try {
    return shared_->router.Dispatch(request_);
  } catch (const std::exception& e) {  // Router catches handlers; this is the backstop
    return HttpResponse::Error(500, "internal", std::string("internal error: ") + e.what());
  } catch (...) {
    return HttpResponse::Error(500, "internal", "internal error");
  }
}

void Connection::Respond(Clock::time_point start, bool keep_alive) {
  close_after_write_ = !keep_alive;
  FormatHead(keep_alive);
  Clock::time_point now = Record(start);
  state_ = State::kWriting;
  SetDeadline(now + shared_->options.idle_timeout, now);
  int status = response_.status;
  bool body = !head_request_ && status >= 200 && status != 204 && status != 304;
  std::array<asio::const_buffer, 2> buffers{
      asio::buffer(head_), body ? asio::buffer(response_.body) : asio::const_buffer()};
  asio::async_write(socket_, buffers, [self = shared_from_this()](beast::error_code ec, size_t) {
    self->OnWritten(ec);
  });
}

// The status line and headers. The server owns framing and Date; header
// lines with CR or LF are dropped so a value can never split the response.
void Connection::FormatHead(bool keep_alive) {
  int status = response_.status;
  head_.clear();
  head_ += "HTTP/1.1 ";
  AppendNumber(&head_, status);
  head_ += ' ';
  head_ += Reason(status);
  head_ += "\r\n";
  for (const auto& [name, value] : response_.headers) {
    if (HasLineBreak(name) || HasLineBreak(value)) continue;
    bool head_length = head_request_ && EqualsIgnoreCase(name, "Content-Length");
    if (IsFramingHeader(name) && !head_length) continue;
    head_ += name;
    head_ += ": ";
    head_ += value;
    head_ += "\r\n";
  }
  head_ += DateHeader();
  if (response_.stream) {
    if (chunked_) head_ += "Transfer-Encoding: chunked\r\n";
    head_ += "Connection: close\r\n\r\n";
    return;
  }
  if (!head_request_ && status >= 200 && status != 204 && status != 304) {
    head_ += "Content-Length: ";
    AppendNumber(&head_, response_.body.size());
    head_ += "\r\n";
  }
  if (!keep_alive) {
    head_ += "Connection: close\r\n";
  } else if (request_.version == 10) {
    head_ += "Connection: keep-alive\r\n";
  }
  head_ += "\r\n";
}

void Connection::OnWritten(beast::error_code ec) {
  if (ec) return Close();
  if (shared_->stopping) return Close();  // nothing is unread: closing is clean
  if (close_after_write_) {
    return rejected_ ? Linger(kRejectLingerTime, kRejectLingerBytes)
                     : Linger(kLingerTime, kLingerBytes);
  }
  ReadRequest();
}

Clock::time_point Connection::Record(Clock::time_point start) {
  Clock::time_point now = Clock::now();
  shared_->metrics.Record(request_.route_id, response_.status, now - start);
  if (shared_->options.on_request) {
    HttpRequestLog log{request_.method, request_.path, request_.route, request_.remote,
                       response_.status, now - start};
    try {
      shared_->options.on_request(log);
    } catch (...) {  // a broken log hook must not take the connection down
    }
  }
  return now;
}

void Connection::Shutdown() {
  switch (state_) {
    case State::kReading:
    case State::kLingering:
      return Close();
    case State::kStreaming:
      if (channel_) channel_->Close();  // the last chunk goes out, then we close
      return;
    case State::kWaiting:  // a deferred answer within stop_grace is still written
    case State::kWriting:  // OnWritten closes
    case State::kClosed:
      return;
  }
}

// ---- Streaming ----

void Connection::StartStream() {
  state_ = State::kStreaming;
  deadline_ = Clock::time_point::max();
  chunked_ = request_.version >= 11;
  FormatHead(false);
  source_ = std::move(response_.stream);
  stream_options_ = std::move(response_.stream_options);
  if (!stream_options_.keep_alive_data.empty()) {
    keep_alive_chunk_ = std::make_shared<const std::string>(stream_options_.keep_alive_data);
  }
  channel_ = std::make_shared<StreamChannel>(weak_from_this(), executor(), shared_,
                                             stream_options_.max_queued_bytes);
  stream_head_pending_ = true;
  ++shared_->open_streams;
  shared_->metrics.AddStreams(1);
  last_send_ = Clock::now();
  try {
    source_->Start(channel_);
  } catch (...) {  // a source that cannot start ends its stream at once
    channel_->Close();
  }
  if (state_ != State::kStreaming) return;
  FlushStream();
  DrainPeer();  // notices a client that goes away while nothing is sent
  if (keep_alive_chunk_ && stream_options_.keep_alive_interval.count() > 0) {
    Arm(last_send_ + stream_options_.keep_alive_interval);
  }
}

// Writes the head (first time), what is queued as one chunk, and the last
// chunk after Close(). Returns false when there was nothing to write.
bool Connection::FlushStream() {
  if (stream_writing_ || state_ != State::kStreaming) return true;
  channel_->Take(&batch_);
  if (batch_.overflow) {
    Close();
    return true;
  }
  buffers_.clear();
  if (stream_head_pending_) buffers_.push_back(asio::buffer(head_));
  stream_head_pending_ = false;
  if (!batch_.items.empty()) {
    int n = chunked_ ? std::snprintf(chunk_line_, sizeof chunk_line_, "%zx\r\n", batch_.bytes) : 0;
    if (n > 0) buffers_.push_back(asio::buffer(chunk_line_, n));
    for (const auto& item : batch_.items) buffers_.push_back(asio::buffer(*item));
    if (chunked_) buffers_.push_back(asio::buffer("\r\n", 2));
  }
  if (batch_.end) {
    if (chunked_) buffers_.push_back(asio::buffer(kLastChunk.data(), kLastChunk.size()));
    stream_ending_ = true;
  }
  if (buffers_.empty()) {
    if (!stream_ending_) return false;
    FinishStream();  // unframed (HTTP/1.0): no last chunk to write
    return true;
  }
  stream_writing_ = true;
  last_send_ = Clock::now();
  asio::async_write(socket_, buffers_, [self = shared_from_this()](beast::error_code ec, size_t) {
    self->OnStreamWritten(ec);
  });
  return true;
}

void Connection::OnStreamWritten(beast::error_code ec) {
  stream_writing_ = false;
  batch_.items.clear();
  if (ec || state_ != State::kStreaming) return Close();
  if (stream_ending_) return FinishStream();
  if (FlushStream() || !source_) return;
  try {
    source_->OnDrained();
  } catch (...) {
    Close();
  }
}

// The stream has been written out: "Connection: close" was sent, so close.
void Connection::FinishStream() {
  EndStream();
  if (shared_->stopping) return Close();  // the client sent nothing more: clean
  Linger(kLingerTime, kLingerBytes);
}

void Connection::EndStream() {
  if (!channel_) return;
  channel_->MarkEnded();
  channel_.reset();
  --shared_->open_streams;
  shared_->metrics.AddStreams(-1);
  std::shared_ptr<StreamSource> source = std::move(source_);
  if (!source) return;
  try {
    source->OnClosed();
  } catch (...) {
  }
}

// Sends the keep-alive text after a quiet interval; re-arms for the next.
// Streams without keep-alive have no write timeout at all.
void Connection::StreamTick(Clock::time_point now) {
  std::chrono::milliseconds interval = stream_options_.keep_alive_interval;
  if (!channel_ || !keep_alive_chunk_ || interval.count() <= 0) return;
  // A client that vanished without a reset never completes a write.
  if (stream_writing_ && now - last_send_ >= shared_->options.idle_timeout) return Close();
  if (now - last_send_ >= interval) {
    channel_->Send(keep_alive_chunk_);
    last_send_ = now;
  }
  Arm(last_send_ + interval);
}

// ---- Ending ----

// Over the cap: the fixed 503, written before anything is read, then a
// brief linger (docs/design.md "HTTP API conventions").
void Connection::Reject() {
  state_ = State::kWriting;
  close_after_write_ = true;
  Clock::time_point now = Clock::now();
  SetDeadline(now + kRejectLingerTime * 4, now);
  asio::async_write(socket_, asio::buffer(shared_->over_cap_response),
                    [self = shared_from_this()](beast::error_code ec, size_t) {
                      self->OnWritten(ec);
                    });
}

// Half-closes, then reads and drops the client's input until it closes (or
// `time` passes, or `bytes` came), so our last response is not lost to a
// reset.
void Connection::Linger(std::chrono::milliseconds time, size_t bytes) {
  beast::error_code ec;
  socket_.shutdown(asio::socket_base::shutdown_send, ec);
  state_ = State::kLingering;
  drain_limit_ = bytes;
  Clock::time_point now = Clock::now();
  SetDeadline(now + time, now);
  DrainPeer();
}

void Connection::DrainPeer() {
  if (draining_ || state_ == State::kClosed) return;
  draining_ = true;
  socket_.async_read_some(SinkBuffer(), [self = shared_from_this()](beast::error_code ec, size_t n) {
    self->draining_ = false;
    self->drained_bytes_ += n;
    if (ec || self->drained_bytes_ > self->drain_limit_) return self->Close();
    self->DrainPeer();
  });
}

void Connection::Close() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  beast::error_code ec;
  socket_.close(ec);
  timer_.cancel();
  EndStream();
  if (rejected_) {
    --shared_->rejecting;
    return;
  }
  shared_->metrics.AddConnections(-1);
  if (--shared_->open_connections == 0 && shared_->stopping) {
    std::lock_guard<std::mutex> lock(shared_->idle_mu);
    shared_->idle_cv.notify_all();
  }
}

// ---- Timeouts ----
// One timer per connection, re-armed lazily: a request only moves deadline_
// later, and the timer, when it fires early, re-arms for the new deadline. So
// a busy keep-alive connection touches the timer about once per idle_timeout.

void Connection::SetDeadline(Clock::time_point deadline, Clock::time_point now) {
  deadline_ = deadline;
  Clock::time_point armed = timer_.expiry();
  if (armed > now && armed <= deadline) return;  // it fires first and re-arms
  Arm(deadline);
}

void Connection::Arm(Clock::time_point at) {
  timer_.expires_at(at);  // cancels a pending wait
  timer_.async_wait([self = shared_from_this()](beast::error_code ec) { self->OnTimer(ec); });
}

void Connection::OnTimer(beast::error_code ec) {
  if (ec == asio::error::operation_aborted || state_ == State::kClosed) return;
  Clock::time_point now = Clock::now();
  if (state_ == State::kStreaming) return StreamTick(now);
  if (state_ == State::kWaiting && now >= deadline_) {
    response_ = HttpResponse::Error(
        504, "timeout",
        "no answer within " + std::to_string(shared_->options.deferred_timeout.count() / 1000) +
            " s; the work goes on, but its answer is lost");
    return Answer(deferred_start_, false);
  }
  if (now >= deadline_) return Close();  // idle, too slow to send or to read
  Arm(deadline_);
}

}  // namespace

// ---- HttpServer ----

class HttpServer::Impl {
 public:
  Impl(const Router& router, HttpServerOptions options)
      : shared_(std::make_shared<ServerShared>(router, std::move(options))) {}
  ~Impl() { Stop(); }

  Status Start();
  void Stop();
  uint16_t port() const { return bound_.port(); }
  std::string address() const { return FormatEndpoint(bound_); }
  Stats stats() const {
    return {shared_->accepted.load(), shared_->open_connections.load(),
            shared_->open_streams.load(), shared_->rejected.load()};
  }
  size_t max_connections() const { return shared_->max_connections; }

 private:
  enum Warning { kOverCap, kNoDescriptors, kWarningKinds };

  Status Bind();
  void Accept();
  void OnAccept(beast::error_code ec, Socket socket);
  void OnOutOfDescriptors(const beast::error_code& ec);
  void RetryAccept();
  void Warn(Warning kind, const std::string& message);
  void StopConnections();

  std::shared_ptr<ServerShared> shared_;
  std::vector<std::unique_ptr<asio::io_context>> contexts_;
  std::vector<asio::executor_work_guard<Executor>> guards_;
  std::unique_ptr<asio::basic_socket_acceptor<tcp, Executor>> acceptor_;
  std::unique_ptr<Timer> accept_retry_;
  // A descriptor held in reserve (/dev/null): out of descriptors, closing it
  // lets the accept loop take one waiting connection and answer it 503.
  int spare_fd_ = -1;
  Clock::time_point warned_[kWarningKinds] = {};  // on the acceptor's thread only
  std::vector<std::thread> threads_;
  size_t next_context_ = 0;
  tcp::endpoint bound_;
  std::mutex state_mu_;
  bool started_ = false;
  bool stopped_ = false;
};

Status HttpServer::Impl::Start() {
  std::lock_guard<std::mutex> lock(state_mu_);
  if (started_) return Status::Internal("http server: Start called twice");
  if (!shared_->router.status().ok()) return shared_->router.status().WithContext("http server");
  int threads = shared_->options.threads;
  if (threads <= 0) threads = std::thread::hardware_concurrency() > 1 ? 2 : 1;
  for (int i = 0; i < threads; ++i) {
    // Concurrency hint 1: each context is run by one thread (posting from
    // others stays safe).
    contexts_.push_back(std::make_unique<asio::io_context>(1));
  }
  Status bound = Bind();
  if (!bound.ok()) return bound;
  size_t cap = shared_->options.max_connections;
  shared_->max_connections = cap > 0 ? cap : DefaultMaxConnections();
  shared_->over_cap_response = BusyResponse(
      "too many connections: this server serves at most " +
      std::to_string(shared_->max_connections) + " at once; try again later");
  shared_->no_descriptor_response =
      BusyResponse("the server is out of file descriptors; try again later");
  spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  started_ = true;
  Accept();
  for (auto& context : contexts_) {
    guards_.push_back(asio::make_work_guard(context->get_executor()));
    threads_.emplace_back([ctx = context.get()] {
      while (true) {
        try {
          ctx->run();
          return;
        } catch (...) {  // never let a stray exception end the process
        }
      }
    });
  }
  return Status::OK();
}

Status HttpServer::Impl::Bind() {
  const HttpServerOptions& options = shared_->options;
  std::string where = options.host + ":" + std::to_string(options.port);
  beast::error_code ec;
  tcp::endpoint endpoint(asio::ip::make_address(options.host, ec), options.port);
  if (ec) {
    tcp::resolver resolver(*contexts_[0]);
    auto results = resolver.resolve(options.host, std::to_string(options.port), ec);
    if (ec || results.empty()) {
      return Status::Unavailable("listen on " + where + ": cannot resolve host: " + ec.message());
    }
    endpoint = results.begin()->endpoint();
  }
  acceptor_ = std::make_unique<asio::basic_socket_acceptor<tcp, Executor>>(
      contexts_[0]->get_executor());
  accept_retry_ = std::make_unique<Timer>(contexts_[0]->get_executor());
  acceptor_->open(endpoint.protocol(), ec);
  if (!ec) acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_->bind(endpoint, ec);
  if (!ec) acceptor_->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Status::Unavailable("listen on " + where + ": " + ec.message());
  bound_ = acceptor_->local_endpoint(ec);
  return Status::OK();
}

void HttpServer::Impl::Accept() {
  asio::io_context& context = *contexts_[next_context_];
  next_context_ = (next_context_ + 1) % contexts_.size();
  acceptor_->async_accept(context, [this](beast::error_code ec, Socket socket) {
    OnAccept(ec, std::move(socket));
  });
}

void HttpServer::Impl::OnAccept(beast::error_code ec, Socket socket) {
  if (ec == asio::error::operation_aborted || shared_->stopping) return;
  if (ec == asio::error::no_descriptors ||
      ec == boost::system::errc::too_many_files_open_in_system) {
    return OnOutOfDescriptors(ec);
  }
  if (ec) return RetryAccept();  // back off instead of spinning
  // Only this thread adds connections, so the count cannot pass the cap
  // between this check and the Connection that counts itself.
  bool reject = shared_->open_connections.load() >= static_cast<int64_t>(shared_->max_connections);
  if (reject) {
    ++shared_->rejected;
    shared_->metrics.AddRejected();
    Warn(kOverCap, "the connection cap (" + std::to_string(shared_->max_connections) +
                       ") is reached: new connections get 503 until some close");
    if (shared_->rejecting.load() >= kMaxRejecting) {  // a flood: no answer at all
      beast::error_code ignored;
      socket.close(ignored);
      return Accept();
    }
  }
  beast::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);  // streams send small pieces
  tcp::endpoint peer = socket.remote_endpoint(ignored);
  asio::io_context& context = static_cast<asio::io_context&>(socket.get_executor().context());
  auto connection = std::make_shared<Connection>(std::move(socket), context, shared_,
                                                 FormatEndpoint(peer), reject);
  {
    std::lock_guard<std::mutex> lock(shared_->registry_mu);
    connection->registry_entry = shared_->registry.insert(shared_->registry.end(), connection);
  }
  ++shared_->accepted;
  asio::post(context, [connection] { connection->Start(); });
  Accept();
}

// EMFILE or ENFILE: the waiting connection would stay in the backlog, and
// its client hang, until some descriptor is closed. Free the spare one, take
// the connection, answer it 503 without reading, close it, take the spare
// back, and go on; the connections already open are served as before.
void HttpServer::Impl::OnOutOfDescriptors(const beast::error_code& ec) {
  Warn(kNoDescriptors, "out of file descriptors (" + ec.message() +
                           "): new connections get 503 until some close; raise the "
                           "open-file limit (ulimit -n) or lower max_connections");
  if (spare_fd_ < 0) spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (spare_fd_ < 0) return RetryAccept();
  ::close(spare_fd_);
  int fd = ::accept4(acceptor_->native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (fd >= 0) {
    const std::string& busy = shared_->no_descriptor_response;
    // The answer fits any socket buffer: one non-blocking send. What the
    // client already sent is dropped, so that closing sends FIN, not RST.
    ssize_t sent = ::send(fd, busy.data(), busy.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)sent;  // a client that is gone needs no answer
    ::shutdown(fd, SHUT_WR);
    char sink[4096];
    for (int i = 0; i < 16 && ::recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; ++i) {
    }
    ::close(fd);
    ++shared_->rejected;
    shared_->metrics.AddRejected();
  }
  spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) return Accept();  // more may be waiting
  RetryAccept();
}

void HttpServer::Impl::RetryAccept() {
  accept_retry_->expires_after(kAcceptBackoff);
  accept_retry_->async_wait([this](beast::error_code wait_ec) {
    if (!wait_ec && !shared_->stopping) Accept();
  });
}

void HttpServer::Impl::Warn(Warning kind, const std::string& message) {
  Clock::time_point now = Clock::now();
  if (warned_[kind] != Clock::time_point() && now - warned_[kind] < kWarningInterval) return;
  warned_[kind] = now;
  if (shared_->options.on_warning) {
    try {
      shared_->options.on_warning(message);
    } catch (...) {  // a logger must not stop the accept loop
    }
    return;
  }
  std::fprintf(stderr, "http server %s: %s\n", FormatEndpoint(bound_).c_str(), message.c_str());
}

void HttpServer::Impl::StopConnections() {
  std::vector<std::shared_ptr<Connection>> live;
  {
    std::lock_guard<std::mutex> lock(shared_->registry_mu);
    for (auto& weak : shared_->registry) {
      if (auto connection = weak.lock()) live.push_back(std::move(connection));
    }
  }
  for (auto& connection : live) {
    asio::post(connection->executor(), [connection] { connection->Shutdown(); });
  }
}

void HttpServer::Impl::Stop() {
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    if (!started_ || stopped_) return;
    stopped_ = true;
  }
  shared_->stopping = true;
  asio::post(*contexts_[0], [this] {
    beast::error_code ignored;
    acceptor_->close(ignored);
    accept_retry_->cancel();
  });
  StopConnections();
  {
    std::unique_lock<std::mutex> lock(shared_->idle_mu);
    shared_->idle_cv.wait_for(lock, shared_->options.stop_grace,
                              [this] { return shared_->open_connections.load() == 0; });
  }
  {
    std::unique_lock<std::shared_mutex> gate(shared_->gate_mu);
    shared_->gate_open = false;
  }
  guards_.clear();
  for (auto& context : contexts_) context->stop();
  for (auto& thread : threads_) thread.join();
  acceptor_.reset();
  accept_retry_.reset();
  if (spare_fd_ >= 0) ::close(spare_fd_);
  spare_fd_ = -1;
  // Destroys the connections still queued; their streams see OnClosed here.
  contexts_.clear();
}

HttpServer::HttpServer(const Router& router, HttpServerOptions options)
    : impl_(std::make_unique<Impl>(router, std::move(options))) {}
HttpServer::~HttpServer() = default;
Status HttpServer::Start() { return impl_->Start(); }
void HttpServer::Stop() { impl_->Stop(); }
uint16_t HttpServer::port() const { return impl_->port(); }
std::string HttpServer::address() const { return impl_->address(); }
HttpServer::Stats HttpServer::stats() const { return impl_->stats(); }
size_t HttpServer::max_connections() const { return impl_->max_connections(); }

namespace {
uint64_t SoftFileLimit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return 1 << 20;
  return limit.rlim_cur;
}
}  // namespace

size_t DefaultMaxConnections() {
  uint64_t files = SoftFileLimit();
  uint64_t cap = files > 256 + 16 ? files - 256 : 16;
  return static_cast<size_t>(std::min<uint64_t>(cap, 10000));
}

uint64_t RaiseOpenFileLimit(uint64_t* before) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return SoftFileLimit();
  if (before) *before = limit.rlim_cur;
  if (limit.rlim_cur != limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    // An infinite hard limit is not a value the kernel takes for the soft
    // one; fs.nr_open is the most it allows.
    if (raised.rlim_cur == RLIM_INFINITY) {
      raised.rlim_cur = 1 << 20;
      if (FILE* f = std::fopen("/proc/sys/fs/nr_open", "r")) {
        unsigned long long nr_open = 0;
        if (std::fscanf(f, "%llu", &nr_open) == 1 && nr_open > 0) raised.rlim_cur = nr_open;
        std::fclose(f);
      }
    }
    // When refused the limit stays as it was, and the default cap, derived
    // from it, still keeps descriptors spare.
    ::setrlimit(RLIMIT_NOFILE, &raised);
  }
  return SoftFileLimit();
}

Status ParseListenAddress(std::string_view text, std::string* host, uint16_t* port) {
  auto bad = [&](const std::string& why) {
    return Status::Invalid("listen address '" + std::string(text) + "': " + why +
                           " (expected ADDR:PORT, e.g. 127.0.0.1:7707 or [::1]:7707)");
  };
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return bad("no port");
  std::string_view h = text.substr(0, colon), p = text.substr(colon + 1);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') {
    h = h.substr(1, h.size() - 2);
  } else if (h.find(':') != std::string_view::npos) {
    return bad("an IPv6 address needs brackets");
  }
  if (h.empty()) return bad("no address");
  unsigned value = 0;
  auto result = std::from_chars(p.data(), p.data() + p.size(), value);
  if (p.empty() || result.ec != std::errc() || result.ptr != p.data() + p.size() || value > 65535) {
    return bad("bad port '" + std::string(p) + "'");
  }
  *host = std::string(h);
  *port = static_cast<uint16_t>(value);
  return Status::OK();
}

}  // namespace ladle
