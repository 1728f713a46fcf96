// toggles/client/http_client.h: URL parsing, error mapping, the SSE parser, and the
// client against a cpp-httplib server on 127.0.0.1.
#include "toggles/client/http_client.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace ladle::toggles {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// "host|port|prefix", or the error message.
std::string Url(const std::string& text) {
  ServerUrl u;
  Status s = ParseServerUrl(text, &u);
  if (!s.ok()) return s.message();
  return u.host + "|" + std::to_string(u.port) + "|" + u.prefix;
}

TEST(ParseServerUrl, Forms) {
  EXPECT_EQ("127.0.0.1|7707|", Url("http://127.0.0.1:7707"));
  EXPECT_EQ("127.0.0.1|7707|", Url("http://127.0.0.1:7707/"));
  EXPECT_EQ("toggles.example|80|", Url("http://toggles.example"));
  EXPECT_EQ("localhost|8080|/ladle", Url("HTTP://localhost:8080/ladle/"));
  EXPECT_EQ("h|1|/a/b", Url("h:1/a/b"));
  EXPECT_EQ("::1|7707|", Url("http://[::1]:7707"));
  EXPECT_EQ("::1|80|/x", Url("http://[::1]/x"));
}

TEST(ParseServerUrl, Errors) {
  EXPECT_EQ("server URL \"https://h\": https is not supported (the client speaks plain http: reach the "
            "server on loopback, or through a proxy that terminates TLS)",
            Url("https://h"));
  EXPECT_EQ("server URL \"ftp://h\": only http:// URLs are supported", Url("ftp://h"));
  EXPECT_EQ("server URL \"http://h:0\": port must be a number from 1 to 65535, got \"0\"", Url("http://h:0"));
  EXPECT_EQ("server URL \"http://h:99999\": port must be a number from 1 to 65535, got \"99999\"",
            Url("http://h:99999"));
  EXPECT_EQ("server URL \"http://h:x\": port must be a number from 1 to 65535, got \"x\"", Url("http://h:x"));
  EXPECT_EQ("server URL \"http://h:\": empty port", Url("http://h:"));
  EXPECT_EQ("server URL \"http://\": no host", Url("http://"));
  EXPECT_EQ("server URL \"http://:80\": no host", Url("http://:80"));
  EXPECT_EQ("server URL \"http://u:p@h\": no user or password in the URL (pass the token with --token or "
            "LADLE_TOKEN)",
            Url("http://u:p@h"));
  EXPECT_EQ("server URL \"http://h/x?y=1\": no query or fragment allowed", Url("http://h/x?y=1"));
  EXPECT_EQ("server URL \"http://::1:80\": an IPv6 host needs brackets, e.g. http://[::1]:7707",
            Url("http://::1:80"));
  EXPECT_EQ("server URL \"http://[::1\": unclosed '[' in the host", Url("http://[::1"));
}

TEST(ServerUrl, ToStringRoundTrips) {
  for (std::string text : {"http://127.0.0.1:7707", "http://[::1]:80/ladle", "http://h:1/a/b"}) {
    ServerUrl u;
    ASSERT_TRUE(ParseServerUrl(text, &u).ok());
    EXPECT_EQ(text, u.ToString());
  }
}

TEST(EncodePathSegment, KeepsUnreservedEncodesTheRest) {
  EXPECT_EQ("new-checkout_v2.1~x", EncodePathSegment("new-checkout_v2.1~x"));
  EXPECT_EQ("a%2Fb%20c%3F%25%C3%A9", EncodePathSegment("a/b c?%\xC3\xA9"));
}

TEST(StatusFromHttp, MapsCodesAndKeepsTheServersMessage) {
  struct Case {
    int http;
    Code code;
    int exit;
  } cases[] = {{400, Code::kInvalid, 2},       {401, Code::kUnauthorized, 2}, {403, Code::kPermission, 2},
               {404, Code::kNotFound, 2},      {409, Code::kConflict, 2},     {412, Code::kPrecondition, 2},
               {413, Code::kTooLarge, 2},      {422, Code::kInvalid, 2},      {500, Code::kUnavailable, 3},
               {503, Code::kUnavailable, 3}};
  for (const Case& c : cases) {
    Status s = StatusFromHttp(c.http, R"({"error": "x", "message": "boom"})");
    EXPECT_EQ(c.code, s.code()) << c.http;
    EXPECT_EQ(c.exit, s.ExitCode()) << c.http;
  }
  EXPECT_EQ("toggle 'x' not found (404)",
            StatusFromHttp(404, R"({"error": "not_found", "message": "toggle 'x' not found"})").message());
  EXPECT_EQ("toggle server error: database is locked (503)",
            StatusFromHttp(503, R"({"error": "unavailable", "message": "database is locked"})").message());
  EXPECT_EQ("no_such_thing (400)", StatusFromHttp(400, R"({"error": "no_such_thing"})").message());
  EXPECT_EQ("Bad Gateway (502)", StatusFromHttp(502, "Bad Gateway\n<html>...").message().substr(21));
  EXPECT_EQ("HTTP 404 (404)", StatusFromHttp(404, "").message());
}

// --- SseParser ---

std::string Parse(const std::vector<std::string>& chunks) {
  std::string out;
  SseParser parser([&](const SseParser::Event& e) {
    out += "[" + e.id + "|" + e.event + "|" + e.data + "]";
    return true;
  });
  for (const std::string& c : chunks) EXPECT_TRUE(parser.Feed(c));
  return out;
}

TEST(SseParser, Events) {
  EXPECT_EQ("[7|change|{\"a\":1}]", Parse({"id: 7\nevent: change\ndata: {\"a\":1}\n\n"}));
  EXPECT_EQ("[|| x]", Parse({"data:  x\n\n"}));  // one space is the separator, the next is data
  EXPECT_EQ("[||a\nb]", Parse({"data: a\ndata: b\n\n"}));
  EXPECT_EQ("", Parse({": keep-alive\n\n", "event: x\n\n", "data: unfinished\n"}));
  EXPECT_EQ("[||]", Parse({"data\n\n"}));
}

TEST(SseParser, LineEndingsAndSplits) {
  EXPECT_EQ("[1||a][2||b]", Parse({"id: 1\r\ndata: a\r\n\r\nid: 2\rdata: b\r\r"}));
  EXPECT_EQ("[1||a]", Parse({"id: 1\r", "\ndata: a\r", "\n\r", "\n"}));
  EXPECT_EQ("[12||hello]", Parse({"i", "d: 1", "2\nda", "ta: hel", "lo\n", "\n"}));
}

TEST(SseParser, IdPersistsAndABareIdIsAnEvent) {
  EXPECT_EQ("[3||a][3||b][4||]", Parse({"id: 3\ndata: a\n\ndata: b\n\nid: 4\n\n"}));
}

TEST(SseParser, StopsWhenTheCallbackSaysSo) {
  int n = 0;
  SseParser parser([&](const SseParser::Event&) { return ++n < 2; });
  EXPECT_FALSE(parser.Feed("data: 1\n\ndata: 2\n\ndata: 3\n\n"));
  EXPECT_EQ(2, n);
}

TEST(SseParser, RefusesEndlessLines) {
  SseParser parser([](const SseParser::Event&) { return true; });
  EXPECT_FALSE(parser.Feed(std::string(2 << 20, 'x')));
}

// --- HttpClient against a real socket ---

// A loopback port that nothing listens on (it was free a moment ago).
int DeadPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

class HttpClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.set_tcp_nodelay(true);
    server_.Get("/p/api/v1/echo", [](const httplib::Request& req, httplib::Response& res) {
      json j = {{"auth", req.get_header_value("Authorization")}, {"method", req.method}};
      res.set_header("ETag", "\"42\"");
      res.set_content(j.dump(), "application/json");
    });
    server_.Post("/p/api/v1/echo", [](const httplib::Request& req, httplib::Response& res) {
      res.status = 201;
      res.set_content(json({{"got", json::parse(req.body)}, {"type", req.get_header_value("Content-Type")}}).dump(),
                      "application/json");
    });
    server_.Delete("/p/api/v1/gone", [](const httplib::Request&, httplib::Response& res) { res.status = 204; });
    server_.Get("/p/api/v1/missing", [](const httplib::Request&, httplib::Response& res) {
      res.status = 404;
      res.set_content(R"({"error": "not_found", "message": "toggle 'x' not found"})", "application/json");
    });
    server_.Get("/p/api/v1/garbage", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("<html>", "text/html");
    });
    server_.Get("/p/api/v1/slow", [](const httplib::Request&, httplib::Response& res) {
      std::this_thread::sleep_for(1500ms);
      res.set_content("{}", "application/json");
    });
    server_.Get("/p/api/v1/stream", [this](const httplib::Request&, httplib::Response& res) {
      res.set_chunked_content_provider("text/event-stream", [this](size_t, httplib::DataSink& sink) {
        if (!sent_.exchange(true)) sink.write("data: hi\n\n", 10);
        std::this_thread::sleep_for(20ms);
        return !stop_;
      });
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    ASSERT_GT(port_, 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // stop() before the server runs is lost, and join() would wait forever.
    while (!server_.is_running()) std::this_thread::sleep_for(1ms);
  }
  void TearDown() override {
    stop_ = true;
    server_.stop();
    thread_.join();
  }

  HttpClient Client(std::chrono::milliseconds read_timeout = 5000ms) {
    ServerUrl url;
    EXPECT_TRUE(ParseServerUrl("http://127.0.0.1:" + std::to_string(port_) + "/p", &url).ok());
    return HttpClient(url, {"secret", 1000ms, read_timeout});
  }

  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false}, sent_{false};
};

TEST_F(HttpClientTest, SendsTheTokenAndReadsJsonAndTheETag) {
  json out;
  ClientResponse raw;
  ASSERT_TRUE(Client().Json("GET", "/api/v1/echo", nullptr, &out, &raw).ok());
  EXPECT_EQ("Bearer secret", out["auth"]);
  EXPECT_EQ(200, raw.status);
  EXPECT_EQ("\"42\"", raw.etag);
}

TEST_F(HttpClientTest, SendsJsonBodies) {
  json body = {{"key", "k"}}, out;
  ASSERT_TRUE(Client().Json("POST", "/api/v1/echo", &body, &out).ok());
  EXPECT_EQ(body, out["got"]);
  EXPECT_EQ("application/json", out["type"]);
}

TEST_F(HttpClientTest, NoContentIsNull) {
  json out = 1;
  ASSERT_TRUE(Client().Json("DELETE", "/api/v1/gone", nullptr, &out).ok());
  EXPECT_TRUE(out.is_null());
}

TEST_F(HttpClientTest, HttpErrorsBecomeStatuses) {
  json out;
  Status s = Client().Json("GET", "/api/v1/missing", nullptr, &out);
  EXPECT_EQ(Code::kNotFound, s.code());
  EXPECT_EQ("toggle 'x' not found (404)", s.message());
  s = Client().Json("GET", "/api/v1/garbage", nullptr, &out);
  EXPECT_EQ(Code::kUnavailable, s.code());
  EXPECT_NE(std::string::npos, s.message().find("invalid JSON")) << s.message();
}

TEST_F(HttpClientTest, SendReturnsAnyStatusAsAnAnswer) {
  ClientResponse r;
  ASSERT_TRUE(Client().Send("GET", "/api/v1/missing", "", {}, &r).ok());
  EXPECT_EQ(404, r.status);
  EXPECT_EQ(HttpFailure::kNone, r.failure);
}

TEST_F(HttpClientTest, NoServerIsUnavailableWithConnectFailure) {
  ServerUrl url;
  ASSERT_TRUE(ParseServerUrl("http://127.0.0.1:" + std::to_string(DeadPort()), &url).ok());
  ClientResponse r;
  Status s = HttpClient(url, {}).Send("GET", "/x", "", {}, &r);
  EXPECT_EQ(Code::kUnavailable, s.code());
  EXPECT_EQ(3, s.ExitCode());
  EXPECT_EQ(HttpFailure::kConnect, r.failure);
  EXPECT_EQ("no toggle server at " + url.ToString() + " (could not connect)", s.message());
}

TEST_F(HttpClientTest, ReadTimeout) {
  ClientResponse r;
  Status s = Client(300ms).Send("GET", "/api/v1/slow", "", {}, &r);
  EXPECT_EQ(Code::kUnavailable, s.code());
  EXPECT_EQ(HttpFailure::kNoAnswer, r.failure);
  EXPECT_NE(std::string::npos, s.message().find("sent no answer within 0.3 s")) << s.message();
}

TEST_F(HttpClientTest, StreamDeliversDataAndCancelEndsItAtOnce) {
  HttpClient client = Client();
  HttpCanceller cancel;
  std::atomic<bool> got{false};
  int opened_with = 0;
  ClientResponse r;
  Status s;
  std::thread reader([&] {
    s = client.Stream("/api/v1/stream", {}, 10000ms, [&](int st) { opened_with = st; return true; },
                      [&](std::string_view d) { if (d.find("hi") != d.npos) got = true; return true; },
                      &cancel, &r);
  });
  for (int i = 0; i < 200 && !got; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(got);
  auto start = std::chrono::steady_clock::now();
  cancel.Cancel();
  reader.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 500ms);
  EXPECT_EQ(Code::kCancelled, s.code()) << s.ToString();
  EXPECT_EQ(200, opened_with);
  // Cancelled stays cancelled.
  EXPECT_EQ(Code::kCancelled, client.Stream("/api/v1/stream", {}, 1000ms, [](int) { return true; },
                                            [](std::string_view) { return true; }, &cancel, &r).code());
}

TEST_F(HttpClientTest, StreamErrorBodyIsKept) {
  HttpCanceller cancel;
  ClientResponse r;
  bool data_called = false;
  Status s = Client().Stream("/api/v1/missing", {}, 1000ms, [](int) { return true; },
                             [&](std::string_view) { data_called = true; return true; }, &cancel, &r);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(404, r.status);
  EXPECT_FALSE(data_called);
  EXPECT_EQ("toggle 'x' not found (404)", StatusFromHttp(r.status, r.body).message());
}

}  // namespace
}  // namespace ladle::toggles
