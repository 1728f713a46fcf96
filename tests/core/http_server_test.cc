// The real server on 127.0.0.1, port 0: cpp-httplib's client where a
// well-behaved client is wanted, raw sockets where the test needs to control
// the bytes (pipelining, slow readers, many subscribers without threads).
#include "core/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/sse.h"

namespace ladle {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

int ThreadCount() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
  }
  return -1;
}

// Waits up to `timeout` for `done()`.
template <typename Pred>
bool WaitFor(Pred done, std::chrono::milliseconds timeout = 5000ms) {
  Clock::time_point deadline = Clock::now() + timeout;
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// A blocking TCP client that keeps everything it received.
class RawClient {
 public:
  explicit RawClient(uint16_t port, int receive_buffer = 0) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    if (receive_buffer > 0) {
      setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawClient() { close(fd_); }

  bool connected() const { return connected_; }
  int fd() const { return fd_; }
  bool eof() const { return eof_; }
  const std::string& received() const { return received_; }

  void Send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      data.remove_prefix(n);
    }
  }

  // Reads what is there within `timeout_ms`; false on EOF, error or nothing.
  bool ReadOnce(int timeout_ms) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) return false;
    char buf[65536];
    ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    received_.append(buf, n);
    return true;
  }

  bool ReadUntil(std::string_view needle, std::chrono::milliseconds timeout = 5000ms) {
    Clock::time_point deadline = Clock::now() + timeout;
    while (received_.find(needle) == std::string::npos) {
      if (eof_ || Clock::now() > deadline) return false;
      ReadOnce(10);
    }
    return true;
  }

  bool ReadUntilClosed(std::chrono::milliseconds timeout = 5000ms) {
    Clock::time_point deadline = Clock::now() + timeout;
    while (!eof_ && Clock::now() < deadline) ReadOnce(10);
    return eof_;
  }

  size_t Count(std::string_view needle) const {
    size_t count = 0;
    for (size_t at = received_.find(needle); at != std::string::npos;
         at = received_.find(needle, at + 1)) {
      ++count;
    }
    return count;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  std::string received_;
};

// Reads from all clients at once (one thread, poll) until each has `needle`.
bool ReadAllUntil(std::vector<std::unique_ptr<RawClient>>& clients, std::string_view needle,
                  std::chrono::milliseconds timeout = 5000ms) {
  Clock::time_point deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    std::vector<pollfd> fds;
    std::vector<RawClient*> waiting;
    for (auto& c : clients) {
      if (c->received().find(needle) != std::string::npos) continue;
      if (c->eof()) return false;
      fds.push_back({c->fd(), POLLIN, 0});
      waiting.push_back(c.get());
    }
    if (waiting.empty()) return true;
    if (poll(fds.data(), fds.size(), 10) <= 0) continue;
    for (size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents) waiting[i]->ReadOnce(0);
    }
  }
  return false;
}

std::string SubscribeRequest(std::string_view path = "/stream",
                             std::string_view extra_headers = "") {
  return "GET " + std::string(path) + " HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n" +
         std::string(extra_headers) + "\r\n";
}

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    router_.Add("GET", "/hello", [](const HttpRequest&) { return HttpResponse::Text(200, "hello"); });
    router_.Add("POST", "/echo", [](const HttpRequest& request) {
      return HttpResponse::Json(200, json{{"bytes", request.body.size()},
                                          {"type", request.Header("content-type")}});
    });
    router_.Add("GET", "/query/{name}", [](const HttpRequest& request) {
      return HttpResponse::Json(200, json{{"name", request.Param("name")},
                                          {"q", request.Query("q")},
                                          {"remote_set", !request.remote.empty()}});
    });
    router_.Add("GET", "/boom", [](const HttpRequest&) -> HttpResponse {
      throw std::runtime_error("handler bug");
    });
    router_.Add("GET", "/stream", [this](const HttpRequest& request) {
      return hub_->Subscribe(request);
    });
  }

  void StartServer() {
    options_.metrics = &metrics_;
    options_.on_request = [this](const HttpRequestLog& log) {
      std::lock_guard<std::mutex> lock(log_mu_);
      remotes_.push_back(std::string(log.remote));
      statuses_.push_back(log.status);
    };
    hub_ = std::make_unique<SseHub>(hub_options_);
    server_ = std::make_unique<HttpServer>(router_, options_);
    Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started.ToString();
    ASSERT_NE(0, server_->port());
  }

  void TearDown() override {
    if (server_) server_->Stop();
  }

  httplib::Client Client() {
    httplib::Client client("127.0.0.1", server_->port());
    client.set_keep_alive(true);
    return client;
  }

  std::vector<std::string> Remotes() {
    std::lock_guard<std::mutex> lock(log_mu_);
    return remotes_;
  }

  Router router_;
  MetricsRegistry metrics_;
  HttpServerOptions options_;
  SseHub::Options hub_options_;
  std::unique_ptr<SseHub> hub_;
  std::unique_ptr<HttpServer> server_;
  std::mutex log_mu_;
  std::vector<std::string> remotes_;
  std::vector<int> statuses_;
};

TEST_F(HttpServerTest, ServesRoutesOverOneKeptAliveConnection) {
  StartServer();
  httplib::Client client = Client();
  for (int i = 0; i < 5; ++i) {
    auto response = client.Get("/hello");
    ASSERT_TRUE(response) << httplib::to_string(response.error());
    EXPECT_EQ(200, response->status);
    EXPECT_EQ("hello", response->body);
    EXPECT_EQ("text/plain; charset=utf-8", response->get_header_value("Content-Type"));
    EXPECT_TRUE(response->has_header("Date"));
  }
  EXPECT_EQ(1u, server_->stats().connections_accepted);
  std::vector<std::string> remotes = Remotes();
  ASSERT_EQ(5u, remotes.size());
  EXPECT_EQ(remotes.front(), remotes.back());
  EXPECT_EQ(0u, remotes.front().rfind("127.0.0.1:", 0));
}

TEST_F(HttpServerTest, PassesBodyQueryAndParams) {
  StartServer();
  httplib::Client client = Client();
  auto echo = client.Post("/echo", std::string(1000, 'x'), "application/json");
  ASSERT_TRUE(echo);
  EXPECT_EQ(json({{"bytes", 1000}, {"type", "application/json"}}), json::parse(echo->body));
  auto query = client.Get("/query/a%20b?q=x%26y");
  ASSERT_TRUE(query);
  EXPECT_EQ(json({{"name", "a b"}, {"q", "x&y"}, {"remote_set", true}}), json::parse(query->body));
}

TEST_F(HttpServerTest, UnknownRouteIs404AndWrongMethod405) {
  StartServer();
  httplib::Client client = Client();
  auto missing = client.Get("/nope");
  ASSERT_TRUE(missing);
  EXPECT_EQ(404, missing->status);
  EXPECT_EQ("not_found", json::parse(missing->body)["error"]);
  auto wrong = client.Delete("/hello");
  ASSERT_TRUE(wrong);
  EXPECT_EQ(405, wrong->status);
  EXPECT_EQ("GET, HEAD", wrong->get_header_value("Allow"));
}

TEST_F(HttpServerTest, BodyOverOneMebibyteIs413) {
  StartServer();
  httplib::Client client = Client();
  auto response = client.Post("/echo", std::string(2 << 20, 'x'), "application/json");
  ASSERT_TRUE(response) << httplib::to_string(response.error());
  EXPECT_EQ(413, response->status);
  EXPECT_EQ("payload_too_large", json::parse(response->body)["error"]);
  // Exactly the limit is fine, and the server still serves.
  auto fits = Client().Post("/echo", std::string(1 << 20, 'x'), "application/json");
  ASSERT_TRUE(fits);
  EXPECT_EQ(200, fits->status);
}

TEST_F(HttpServerTest, OversizedContentLengthIsRefusedBeforeTheBody) {
  StartServer();
  RawClient raw(server_->port());
  raw.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2097152\r\n\r\n");
  // Not one body byte sent: the answer comes from the header alone.
  ASSERT_TRUE(raw.ReadUntil("\r\n\r\n"));
  EXPECT_EQ(0u, raw.received().rfind("HTTP/1.1 413 Payload Too Large\r\n", 0)) << raw.received();
  EXPECT_NE(std::string::npos, raw.received().find("Connection: close\r\n"));
  EXPECT_TRUE(raw.ReadUntilClosed());
}

TEST_F(HttpServerTest, ExpectContinueGetsItsInterimAnswer) {
  StartServer();
  RawClient raw(server_->port());
  raw.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
  ASSERT_TRUE(raw.ReadUntil("HTTP/1.1 100 Continue\r\n\r\n"));
  raw.Send("abcde");
  ASSERT_TRUE(raw.ReadUntil("{\"bytes\":5,\"type\":\"\"}"));
}

TEST_F(HttpServerTest, ThrowingHandlerGives500AndServingGoesOn) {
  StartServer();
  httplib::Client client = Client();
  auto boom = client.Get("/boom");
  ASSERT_TRUE(boom);
  EXPECT_EQ(500, boom->status);
  EXPECT_EQ(json({{"error", "internal"}, {"message", "internal error: handler bug"}}),
            json::parse(boom->body));
  auto after = client.Get("/hello");
  ASSERT_TRUE(after);
  EXPECT_EQ(200, after->status);
  EXPECT_EQ(1u, server_->stats().connections_accepted);  // 500 keeps the connection
}

TEST_F(HttpServerTest, HeadSendsLengthWithoutBodyAndPipelinedRequestsAnswerInOrder) {
  StartServer();
  RawClient raw(server_->port());
  raw.Send("HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(raw.ReadUntil("\r\n\r\nhello"));
  const std::string& got = raw.received();
  size_t second = got.find("HTTP/1.1 200", 1);
  ASSERT_NE(std::string::npos, second);
  std::string head = got.substr(0, second);
  EXPECT_NE(std::string::npos, head.find("Content-Length: 5\r\n"));
  EXPECT_EQ(head.size(), head.find("\r\n\r\n") + 4) << "HEAD response carried a body";
}

TEST_F(HttpServerTest, MalformedRequestIs400) {
  StartServer();
  RawClient raw(server_->port());
  raw.Send("NOT HTTP AT ALL\r\n\r\n");
  ASSERT_TRUE(raw.ReadUntil("\r\n\r\n"));
  EXPECT_EQ(0u, raw.received().rfind("HTTP/1.1 400 Bad Request\r\n", 0));
  EXPECT_TRUE(raw.ReadUntilClosed());

  RawClient bad_escape(server_->port());
  bad_escape.Send("GET /query/%zz HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(bad_escape.ReadUntil("\r\n\r\n"));
  EXPECT_EQ(0u, bad_escape.received().rfind("HTTP/1.1 400 Bad Request\r\n", 0));
}

TEST_F(HttpServerTest, HeaderOverLimitIs431) {
  options_.header_limit = 1024;
  StartServer();
  RawClient raw(server_->port());
  raw.Send("GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(2000, 'a') + "\r\n\r\n");
  ASSERT_TRUE(raw.ReadUntil("\r\n\r\n"));
  EXPECT_EQ(0u, raw.received().rfind("HTTP/1.1 431 ", 0)) << raw.received();
}

TEST_F(HttpServerTest, IdleKeepAliveConnectionIsClosed) {
  options_.idle_timeout = 200ms;
  StartServer();
  RawClient idle(server_->port());
  ASSERT_TRUE(idle.connected());
  Clock::time_point start = Clock::now();
  EXPECT_TRUE(idle.ReadUntilClosed(3000ms));
  EXPECT_GE(Clock::now() - start, 150ms);

  // A request then silence: closed after the answer's idle time too.
  RawClient once(server_->port());
  once.Send("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_TRUE(once.ReadUntil("hello"));
  EXPECT_TRUE(once.ReadUntilClosed(3000ms));
  EXPECT_TRUE(WaitFor([&] { return server_->stats().connections_open == 0; }));
}

TEST_F(HttpServerTest, RecordsMetricsByRouteAndStatusClass) {
  StartServer();
  httplib::Client client = Client();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(client.Get("/hello"));
  ASSERT_TRUE(client.Get("/nope"));
  ASSERT_TRUE(client.Get("/boom"));
  std::string text = metrics_.Render();
  EXPECT_NE(std::string::npos,
            text.find("ladle_http_requests_total{method=\"GET\",route=\"/hello\",code=\"2xx\"} 3\n"))
      << text;
  EXPECT_NE(std::string::npos,
            text.find("ladle_http_requests_total{method=\"any\",route=\"unmatched\",code=\"4xx\"} 1\n"));
  EXPECT_NE(std::string::npos,
            text.find("ladle_http_requests_total{method=\"GET\",route=\"/boom\",code=\"5xx\"} 1\n"));
  EXPECT_NE(std::string::npos,
            text.find("ladle_http_request_duration_seconds_count{method=\"GET\",route=\"/hello\","
                      "code=\"2xx\"} 3\n"));
  EXPECT_NE(std::string::npos, text.find("ladle_http_connections 1\n"));
}

TEST_F(HttpServerTest, PortInUseIsReported) {
  StartServer();
  HttpServerOptions same;
  same.port = server_->port();
  HttpServer second(router_, same);
  Status status = second.Start();
  EXPECT_EQ(Code::kUnavailable, status.code());
  EXPECT_NE(std::string::npos, status.message().find("127.0.0.1:" + std::to_string(same.port)))
      << status.ToString();
}

TEST_F(HttpServerTest, RouterWithBadRouteIsRefused) {
  router_.Add("GET", "bad", [](const HttpRequest&) { return HttpResponse::NoContent(); });
  HttpServer server(router_, options_);
  EXPECT_EQ(Code::kInternal, server.Start().code());
}

TEST_F(HttpServerTest, ListensOnIpv6Loopback) {
  options_.host = "::1";
  hub_ = std::make_unique<SseHub>();
  HttpServer server(router_, options_);
  Status started = server.Start();
  if (!started.ok()) GTEST_SKIP() << "no IPv6 loopback here: " << started.ToString();
  EXPECT_EQ("[::1]:" + std::to_string(server.port()), server.address());
  httplib::Client client("::1", server.port());
  auto response = client.Get("/hello");
  ASSERT_TRUE(response);
  EXPECT_EQ("hello", response->body);
}

// ---- Streaming ----

TEST_F(HttpServerTest, FiftySseSubscribersShareTheIoThreads) {
  int threads_before = ThreadCount();
  options_.threads = 2;
  StartServer();
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < 50; ++i) {
    clients.push_back(std::make_unique<RawClient>(server_->port()));
    clients.back()->Send(SubscribeRequest());
  }
  ASSERT_TRUE(WaitFor([&] { return hub_->subscriber_count() == 50; }));
  ASSERT_TRUE(ReadAllUntil(clients, "Content-Type: text/event-stream\r\n"));
  EXPECT_EQ(50, server_->stats().streams_open);
  // Each event arrives while the stream stays open, before the next exists.
  for (uint64_t id = 1; id <= 3; ++id) {
    hub_->Publish(id, "change", "{\"revision\":" + std::to_string(id) + "}");
    ASSERT_TRUE(ReadAllUntil(clients, "id: " + std::to_string(id) + "\n")) << "event " << id;
  }
  EXPECT_NE(std::string::npos,
            clients[7]->received().find("id: 2\nevent: change\ndata: {\"revision\":2}\n\n"));
  EXPECT_NE(std::string::npos, clients[0]->received().find("Transfer-Encoding: chunked\r\n"));
  EXPECT_LE(ThreadCount(), threads_before + 2) << "a thread per subscriber?";
}

TEST_F(HttpServerTest, IdleStreamGetsKeepAliveComments) {
  hub_options_.keep_alive = 100ms;
  StartServer();
  RawClient raw(server_->port());
  raw.Send(SubscribeRequest());
  ASSERT_TRUE(raw.ReadUntil(": keep-alive\n\n", 2000ms));
  Clock::time_point start = Clock::now();
  while (Clock::now() - start < 600ms) raw.ReadOnce(10);
  EXPECT_GE(raw.Count(": keep-alive\n\n"), 3u);
  EXPECT_LE(raw.Count(": keep-alive\n\n"), 9u);
}

TEST_F(HttpServerTest, LastEventIdReplaysOverHttp) {
  StartServer();
  hub_ = std::make_unique<SseHub>(SseHub::Options{}, [](uint64_t after, const SseHub::EmitFn& emit) {
    for (uint64_t id = after + 1; id <= 4; ++id) emit({id, "change", "r" + std::to_string(id)});
  });
  RawClient raw(server_->port());
  raw.Send(SubscribeRequest("/stream", "Last-Event-ID: 2\r\n"));
  ASSERT_TRUE(raw.ReadUntil("id: 4\n"));
  EXPECT_EQ(std::string::npos, raw.received().find("id: 2\n"));
  EXPECT_NE(std::string::npos, raw.received().find("id: 3\nevent: change\ndata: r3\n\n"));
}

TEST_F(HttpServerTest, SlowSubscriberIsDisconnectedWithoutBlockingThePublisher) {
  hub_options_.max_queued_bytes = 256 << 10;
  StartServer();
  RawClient slow(server_->port(), /*receive_buffer=*/4096);  // and never reads
  slow.Send(SubscribeRequest());
  ASSERT_TRUE(WaitFor([&] { return hub_->subscriber_count() == 1; }));
  std::string data(64 << 10, 'x');
  Clock::duration slowest{0};
  int published = 0;
  for (uint64_t id = 1; id <= 1000 && hub_->subscriber_count() > 0; ++id, ++published) {
    Clock::time_point start = Clock::now();
    hub_->Publish(id, "", data);
    slowest = std::max(slowest, Clock::now() - start);
    std::this_thread::sleep_for(200us);  // let the io thread fill the socket
  }
  EXPECT_EQ(0u, hub_->subscriber_count()) << "after " << published << " events of 64 KiB";
  EXPECT_LT(slowest, 200ms);  // copying 64 KiB; waiting on the socket would take seconds
  // Dropped at once, although its socket is full and a write is stuck.
  EXPECT_TRUE(WaitFor([&] { return server_->stats().streams_open == 0; }, 1000ms));
  EXPECT_TRUE(slow.ReadUntilClosed(5000ms));  // the connection was dropped
}

// A source that produces on demand (as a log follower does): each piece
// when the previous has reached the socket, never over its queue bound.
class PieceSource : public StreamSource {
 public:
  PieceSource(size_t pieces, size_t size) : pieces_(pieces), size_(size) {}
  void Start(std::shared_ptr<StreamWriter> writer) override {
    writer_ = std::move(writer);
    Next();
  }
  void OnDrained() override { Next(); }
  void OnClosed() override { closed_ = true; }
  static std::atomic<bool> closed_;

 private:
  void Next() {
    if (sent_ == pieces_) return writer_->Close();
    EXPECT_TRUE(writer_->Send(std::string(size_, static_cast<char>('a' + sent_ % 26))));
    ++sent_;
  }
  size_t pieces_, size_, sent_ = 0;
  std::shared_ptr<StreamWriter> writer_;
};
std::atomic<bool> PieceSource::closed_{false};

TEST_F(HttpServerTest, PullStreamDeliversEverythingThroughABoundedQueue) {
  router_.Add("GET", "/log", [](const HttpRequest&) {
    StreamOptions options;
    options.max_queued_bytes = 128 << 10;
    return HttpResponse::Stream(std::make_shared<PieceSource>(64, 64 << 10), "text/plain",
                                options);
  });
  StartServer();
  PieceSource::closed_ = false;
  httplib::Client client = Client();
  std::string body;
  auto response = client.Get("/log", [&](const char* data, size_t n) {
    body.append(data, n);
    return true;
  });
  ASSERT_TRUE(response) << httplib::to_string(response.error());
  ASSERT_EQ(64u * (64 << 10), body.size());
  EXPECT_EQ('a', body[0]);
  EXPECT_EQ('b', body[64 << 10]);
  EXPECT_EQ(static_cast<char>('a' + 63 % 26), body.back());
  EXPECT_TRUE(WaitFor([] { return PieceSource::closed_.load(); }));
}

TEST_F(HttpServerTest, HttplibSseClientReceivesEventsAsTheyArePublished) {
  StartServer();
  std::mutex mu;
  std::condition_variable cv;
  std::string got;
  std::thread subscriber([&] {
    httplib::Client client("127.0.0.1", server_->port());
    client.Get("/stream", [&](const char* data, size_t n) {
      std::lock_guard<std::mutex> lock(mu);
      got.append(data, n);
      cv.notify_all();
      return true;
    });
  });
  ASSERT_TRUE(WaitFor([&] { return hub_->subscriber_count() == 1; }));
  for (uint64_t id = 1; id <= 3; ++id) {
    hub_->Publish(id, "", "event " + std::to_string(id));
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 5s, [&] {
      return got.find("id: " + std::to_string(id) + "\n") != std::string::npos;
    }));
  }
  hub_->CloseAll();  // ends the stream: the client's Get returns
  subscriber.join();
  EXPECT_EQ("id: 1\ndata: event 1\n\nid: 2\ndata: event 2\n\nid: 3\ndata: event 3\n\n", got);
}

TEST_F(HttpServerTest, Http10StreamIsUnframedAndEndsWithTheConnection) {
  StartServer();
  RawClient raw(server_->port());
  raw.Send("GET /stream HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(WaitFor([&] { return hub_->subscriber_count() == 1; }));
  hub_->Publish(1, "", "x");
  ASSERT_TRUE(raw.ReadUntil("id: 1\ndata: x\n\n"));
  EXPECT_EQ(std::string::npos, raw.received().find("Transfer-Encoding"));
  hub_->CloseAll();
  EXPECT_TRUE(raw.ReadUntilClosed());
}

TEST_F(HttpServerTest, StopWithOpenStreamsReturnsPromptly) {
  StartServer();
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < 10; ++i) {
    clients.push_back(std::make_unique<RawClient>(server_->port()));
    clients.back()->Send(SubscribeRequest());
  }
  RawClient idle(server_->port());
  ASSERT_TRUE(WaitFor([&] { return hub_->subscriber_count() == 10; }));
  Clock::time_point start = Clock::now();
  server_->Stop();
  EXPECT_LT(Clock::now() - start, 1000ms);
  EXPECT_EQ(0u, hub_->subscriber_count());  // every source saw OnClosed
  for (auto& c : clients) {
    EXPECT_TRUE(c->ReadUntilClosed(2000ms));
    EXPECT_NE(std::string::npos, c->received().find("\r\n0\r\n\r\n")) << "no last chunk";
  }
  EXPECT_TRUE(idle.ReadUntilClosed(2000ms));
  hub_->Publish(1, "", "after stop");  // writers of a stopped server refuse quietly
  server_->Stop();                      // idempotent
}

TEST_F(HttpServerTest, StopDropsAStreamStuckOnAClientThatDoesNotRead) {
  options_.stop_grace = 200ms;
  hub_options_.max_queued_bytes = 64 << 20;  // no overflow: the write just stays stuck
  StartServer();
  RawClient stuck(server_->port(), /*receive_buffer=*/4096);
  stuck.Send(SubscribeRequest());
  ASSERT_TRUE(WaitFor([&] { return hub_->subscriber_count() == 1; }));
  std::string data(256 << 10, 'x');
  for (uint64_t id = 1; id <= 64; ++id) hub_->Publish(id, "", data);  // far over the socket buffers
  Clock::time_point start = Clock::now();
  server_->Stop();
  EXPECT_LT(Clock::now() - start, 1500ms);
  EXPECT_EQ(0u, hub_->subscriber_count());  // its source saw OnClosed all the same
  EXPECT_EQ(0, server_->stats().streams_open);
}

// ---- Deferred responses ----

// Holds the responders of /later until the test completes them.
class Parked {
 public:
  HttpHandler Handler() {
    return [this](const HttpRequest&) {
      return HttpResponse::Deferred([this](std::shared_ptr<Responder> r) {
        std::lock_guard<std::mutex> lock(mu_);
        waiting_.push_back(std::move(r));
      });
    };
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(mu_);
    return waiting_.size();
  }
  std::shared_ptr<Responder> Take() {
    std::lock_guard<std::mutex> lock(mu_);
    if (waiting_.empty()) return nullptr;
    auto r = waiting_.front();
    waiting_.erase(waiting_.begin());
    return r;
  }

 private:
  std::mutex mu_;
  std::vector<std::shared_ptr<Responder>> waiting_;
};

TEST_F(HttpServerTest, DeferredResponseLeavesTheIoThreadFreeAndIsAnsweredLater) {
  Parked parked;
  router_.Add("POST", "/later", parked.Handler());
  options_.threads = 1;  // one io thread: a held one would stall /hello below
  StartServer();
  RawClient waiting(server_->port());
  waiting.Send("POST /later HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(WaitFor([&] { return parked.count() == 1; }));
  httplib::Client other = Client();
  auto hello = other.Get("/hello");
  ASSERT_TRUE(hello);
  EXPECT_EQ("hello", hello->body) << "the io thread serves others meanwhile";
  EXPECT_FALSE(waiting.ReadOnce(50)) << "nothing is answered before Complete";

  std::thread worker([r = parked.Take()] { r->Complete(HttpResponse::Json(202, json{{"runs", {7}}})); });
  worker.join();
  ASSERT_TRUE(waiting.ReadUntil("{\"runs\":[7]}"));
  EXPECT_EQ(0u, waiting.received().rfind("HTTP/1.1 202 Accepted\r\n", 0)) << waiting.received();

  // The connection stays usable, and a second deferred answer on it is its own.
  waiting.Send("POST /later HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(WaitFor([&] { return parked.count() == 1; }));
  std::shared_ptr<Responder> second = parked.Take();
  second->Complete(HttpResponse::Text(200, "second"));
  second->Complete(HttpResponse::Text(200, "twice"));  // only the first call counts
  ASSERT_TRUE(waiting.ReadUntil("second"));
  EXPECT_FALSE(waiting.ReadUntil("twice", 200ms));
}

TEST_F(HttpServerTest, DeferredResponseTimesOutWith504AndALateAnswerIsDropped) {
  Parked parked;
  router_.Add("POST", "/later", parked.Handler());
  options_.deferred_timeout = 200ms;
  StartServer();
  httplib::Client client = Client();
  Clock::time_point start = Clock::now();
  auto r = client.Post("/later", "", "text/plain");
  ASSERT_TRUE(r);
  EXPECT_EQ(504, r->status);
  EXPECT_GE(Clock::now() - start, 150ms);
  EXPECT_NE(std::string::npos, r->body.find("no answer within")) << r->body;
  std::shared_ptr<Responder> late = parked.Take();
  ASSERT_TRUE(late);
  late->Complete(HttpResponse::Text(200, "too late"));  // nobody waits: dropped, no crash
  auto again = client.Get("/hello");
  ASSERT_TRUE(again);
  EXPECT_EQ("hello", again->body);
}

TEST_F(HttpServerTest, DeferredResponderDroppedWithoutAnAnswerGives500) {
  router_.Add("POST", "/forgetful", [](const HttpRequest&) {
    return HttpResponse::Deferred([](std::shared_ptr<Responder>) {});
  });
  router_.Add("POST", "/throws", [](const HttpRequest&) {
    return HttpResponse::Deferred([](std::shared_ptr<Responder>) { throw std::runtime_error("start bug"); });
  });
  StartServer();
  httplib::Client client = Client();
  auto r = client.Post("/forgetful", "", "text/plain");
  ASSERT_TRUE(r);
  EXPECT_EQ(500, r->status);
  EXPECT_NE(std::string::npos, r->body.find("gave no answer")) << r->body;
  r = client.Post("/throws", "", "text/plain");
  ASSERT_TRUE(r);
  EXPECT_EQ(500, r->status);
  EXPECT_NE(std::string::npos, r->body.find("start bug")) << r->body;
}

TEST_F(HttpServerTest, StopWhileADeferredResponseWaitsReturnsAndDropsItsAnswer) {
  Parked parked;
  router_.Add("POST", "/later", parked.Handler());
  options_.stop_grace = 200ms;
  StartServer();
  RawClient waiting(server_->port());
  waiting.Send("POST /later HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(WaitFor([&] { return parked.count() == 1; }));
  Clock::time_point start = Clock::now();
  server_->Stop();
  EXPECT_LT(Clock::now() - start, 1500ms);
  EXPECT_TRUE(waiting.ReadUntilClosed(2000ms));
  parked.Take()->Complete(HttpResponse::Text(200, "after stop"));  // dropped quietly
}

// ---- Connection cap and file descriptors (docs/design.md "HTTP API conventions") ----

// The process's soft RLIMIT_NOFILE, set for a test and put back after it.
class SoftFileLimit {
 public:
  SoftFileLimit() { getrlimit(RLIMIT_NOFILE, &saved_); }
  ~SoftFileLimit() { setrlimit(RLIMIT_NOFILE, &saved_); }
  bool Set(rlim_t soft) {
    rlimit limit = saved_;
    limit.rlim_cur = soft;
    return setrlimit(RLIMIT_NOFILE, &limit) == 0;
  }
  rlim_t hard() const { return saved_.rlim_max; }

 private:
  rlimit saved_{};
};

std::unique_ptr<RawClient> Connected(uint16_t port) {
  auto client = std::make_unique<RawClient>(port);
  EXPECT_TRUE(client->connected());
  return client;
}

TEST_F(HttpServerTest, ConnectionsPastTheCapGet503UntilSomeClose) {
  options_.max_connections = 20;
  StartServer();
  EXPECT_EQ(20u, server_->max_connections());
  std::vector<std::unique_ptr<RawClient>> idle;
  for (int i = 0; i < 20; ++i) idle.push_back(Connected(server_->port()));
  ASSERT_TRUE(WaitFor([&] { return server_->stats().connections_open == 20; }));

  // The 21st is answered at once, without sending anything, and closed.
  RawClient over(server_->port());
  ASSERT_TRUE(over.ReadUntilClosed(3000ms)) << over.received();
  EXPECT_EQ(0u, over.received().rfind("HTTP/1.1 503 Service Unavailable\r\n", 0)) << over.received();
  EXPECT_NE(std::string::npos, over.received().find("\r\nConnection: close\r\n"));
  std::string body = over.received().substr(over.received().find("\r\n\r\n") + 4);
  EXPECT_EQ(json({{"error", "unavailable"},
                  {"message", "too many connections: this server serves at most 20 at once; "
                              "try again later"}}),
            json::parse(body, nullptr, false));
  EXPECT_EQ(1u, server_->stats().connections_rejected);
  EXPECT_EQ(20, server_->stats().connections_open);
  EXPECT_NE(std::string::npos, metrics_.Render().find("ladle_http_connections_rejected_total 1"));

  // The connections it holds are served as before.
  idle[0]->Send("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_TRUE(idle[0]->ReadUntil("hello"));

  // Once some close, new clients are served.
  idle.resize(15);
  ASSERT_TRUE(WaitFor([&] { return server_->stats().connections_open == 15; }));
  httplib::Client client = Client();
  auto response = client.Get("/hello");
  ASSERT_TRUE(response) << httplib::to_string(response.error());
  EXPECT_EQ(200, response->status);
  EXPECT_EQ(1u, server_->stats().connections_rejected);
}

// Issue 10: 1,100 idle connections under a soft limit of 1,024 files kept
// every other client waiting for 60 s. With the limit raised and the cap at
// its default, another client is answered while they stay open.
TEST_F(HttpServerTest, ElevenHundredIdleConnectionsDoNotBlockAnotherClient) {
  // The usual soft limit, raised as `ladle serve` does at start; both ends
  // of each connection are in this process.
  SoftFileLimit limit;
  ASSERT_GE(limit.hard(), 2400u) << "the hard limit on open files is too low for this test";
  ASSERT_TRUE(limit.Set(1024));
  ASSERT_GE(RaiseOpenFileLimit(), 2400u);
  StartServer();
  EXPECT_EQ(std::min<size_t>(10000, DefaultMaxConnections()), server_->max_connections());
  std::vector<std::unique_ptr<RawClient>> idle;
  for (int i = 0; i < 1100; ++i) idle.push_back(Connected(server_->port()));
  ASSERT_TRUE(WaitFor([&] { return server_->stats().connections_open == 1100; }, 20000ms));
  httplib::Client client("127.0.0.1", server_->port());
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(5, 0);
  auto response = client.Get("/hello");
  ASSERT_TRUE(response) << httplib::to_string(response.error());
  EXPECT_EQ(200, response->status);
  EXPECT_EQ(0u, server_->stats().connections_rejected);
}

// Out of descriptors, a waiting client gets a 503 (through the descriptor
// the server keeps in reserve) instead of hanging in the backlog; open
// connections are still served, and once descriptors are free so are new
// clients.
TEST_F(HttpServerTest, OutOfDescriptorsAnswers503AndKeepsServing) {
  StartServer();
  RawClient open(server_->port());
  ASSERT_TRUE(WaitFor([&] { return server_->stats().connections_open == 1; }));
  // A socket made now, connected once nothing is left.
  int late = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(late, 0);
  SoftFileLimit limit;
  std::vector<int> fillers;
  ASSERT_TRUE(limit.Set(512));
  for (int fd; fillers.size() < 1024 && (fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;)
    fillers.push_back(fd);
  int open_errno = errno;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(server_->port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int connected = connect(late, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  std::string received;
  Clock::time_point deadline = Clock::now() + 3000ms;
  while (Clock::now() < deadline) {
    pollfd p{late, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    char buf[4096];
    ssize_t n = recv(late, buf, sizeof buf, 0);
    if (n <= 0) break;
    received.append(buf, n);
  }
  // The connection it holds is served meanwhile.
  open.Send("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
  bool served = open.ReadUntil("hello");
  for (int fd : fillers) close(fd);
  close(late);
  ASSERT_EQ(EMFILE, open_errno);
  ASSERT_EQ(0, connected);
  EXPECT_EQ(0u, received.rfind("HTTP/1.1 503 Service Unavailable\r\n", 0)) << received;
  EXPECT_NE(std::string::npos, received.find("out of file descriptors")) << received;
  EXPECT_TRUE(served);
  EXPECT_GE(server_->stats().connections_rejected, 1u);

  // Descriptors back: new clients are served.
  httplib::Client client = Client();
  client.set_connection_timeout(5, 0);
  auto response = client.Get("/hello");
  ASSERT_TRUE(response) << httplib::to_string(response.error());
  EXPECT_EQ(200, response->status);
}

TEST(OpenFileLimitTest, RaisedToTheHardLimitAndTheDefaultCapFollowsIt) {
  SoftFileLimit limit;
  if (limit.hard() != RLIM_INFINITY && limit.hard() > 1024) {
    ASSERT_TRUE(limit.Set(1024));
    EXPECT_EQ(768u, DefaultMaxConnections());  // 256 kept for the rest of the process
    uint64_t before = 0;
    EXPECT_EQ(static_cast<uint64_t>(limit.hard()), RaiseOpenFileLimit(&before));
    EXPECT_EQ(1024u, before);
  }
  ASSERT_TRUE(limit.Set(200));
  EXPECT_EQ(16u, DefaultMaxConnections());
  ASSERT_TRUE(limit.Set(100000 < limit.hard() ? 100000 : limit.hard()));
  EXPECT_EQ(std::min<size_t>(10000, limit.hard() - 256), DefaultMaxConnections());
}

TEST(AwaitResponseTest, ReturnsTheAnswerOrA504) {
  HttpResponse plain = AwaitResponse(HttpResponse::Text(201, "now"));
  EXPECT_EQ(201, plain.status);
  HttpResponse later = AwaitResponse(HttpResponse::Deferred([](std::shared_ptr<Responder> r) {
    std::thread([r] { r->Complete(HttpResponse::Text(202, "later")); }).detach();
  }));
  EXPECT_EQ(202, later.status);
  EXPECT_EQ("later", later.body);
  std::shared_ptr<Responder> kept;
  HttpResponse never = AwaitResponse(
      HttpResponse::Deferred([&kept](std::shared_ptr<Responder> r) { kept = std::move(r); }), 100ms);
  EXPECT_EQ(504, never.status);
  kept->Complete(HttpResponse::Text(200, "late"));  // dropped
}

TEST(ParseListenAddressTest, Forms) {
  std::string host;
  uint16_t port = 0;
  ASSERT_TRUE(ParseListenAddress("127.0.0.1:7707", &host, &port).ok());
  EXPECT_EQ("127.0.0.1", host);
  EXPECT_EQ(7707, port);
  ASSERT_TRUE(ParseListenAddress("[::1]:0", &host, &port).ok());
  EXPECT_EQ("::1", host);
  EXPECT_EQ(0, port);
  ASSERT_TRUE(ParseListenAddress("localhost:80", &host, &port).ok());
  EXPECT_EQ("localhost", host);
  EXPECT_EQ(Code::kInvalid, ParseListenAddress("127.0.0.1", &host, &port).code());
  EXPECT_EQ(Code::kInvalid, ParseListenAddress(":7707", &host, &port).code());
  EXPECT_EQ(Code::kInvalid, ParseListenAddress("::1:7707", &host, &port).code());
  EXPECT_EQ(Code::kInvalid, ParseListenAddress("h:70000", &host, &port).code());
  EXPECT_EQ(Code::kInvalid, ParseListenAddress("h:7a", &host, &port).code());
}

}  // namespace
}  // namespace ladle
