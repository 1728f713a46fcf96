// toggles/client/client.h against a fake toggle server (cpp-httplib on 127.0.0.1,
// an ephemeral port) that serves canned toggle sets with ETags and an SSE
// stream whose events the test sends.
#include "toggles/client/client.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

namespace ladle::toggles {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr char kToken[] = "client-secret";

// A toggle set at some revision: "static-on" on for everyone, "half" at a
// 50% rollout, "colours" with variants; "switch" is on or off as asked.
json Set(int64_t revision, bool switch_on) {
  return json::parse(R"([
    {"key": "static-on", "revision": 1, "environments": {"production": {"enabled": true}}},
    {"key": "half", "revision": 2, "environments": {"production": {"enabled": true,
       "strategies": [{"rollout": {"percent": 50}}]}}},
    {"key": "colours", "revision": 3, "type": "experiment", "variants": [
       {"name": "red", "weight": 500, "value": "#f00"}, {"name": "blue", "weight": 500, "value": "#00f"}],
     "environments": {"production": {"enabled": true}}},
    {"key": "switch", "revision": )" + std::to_string(revision) + R"(, "environments": {"production":
       {"enabled": )" + (switch_on ? "true" : "false") + R"(}}}])");
}

class FakeServer {
 public:
  // port 0: any free port.
  explicit FakeServer(int port = 0) {
    server_.set_tcp_nodelay(true);
    server_.Get("/api/v1/toggles", [this](const httplib::Request& q, httplib::Response& r) { Toggles(q, r); });
    server_.Get("/api/v1/stream", [this](const httplib::Request& q, httplib::Response& r) { Stream(q, r); });
    port_ = port == 0 ? server_.bind_to_any_port("127.0.0.1")
                      : (server_.bind_to_port("127.0.0.1", port) ? port : -1);
    if (port_ <= 0) return;
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(1ms);
  }
  ~FakeServer() { Stop(); }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (!thread_.joinable()) return;
    server_.stop();
    thread_.join();
  }

  bool ok() const { return port_ > 0; }
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  void SetToggles(json toggles, int64_t revision) {
    std::lock_guard<std::mutex> lock(mu_);
    toggles_ = std::move(toggles);
    etag_ = "\"" + std::to_string(revision) + "\"";
  }
  void SetBody(std::string raw) {  // served as is, without an ETag
    std::lock_guard<std::mutex> lock(mu_);
    raw_ = std::move(raw);
    etag_.clear();
  }
  // Sends "id: REVISION" to every open stream.
  void Publish(int64_t revision) {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(revision);
    cv_.notify_all();
  }
  void set_stream(bool on) { stream_on_ = on; }

  int fetches() const { return fetches_; }
  int not_modified() const { return not_modified_; }
  int stream_opens() const { return stream_opens_; }
  std::string last_environment() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_environment_;
  }
  std::string last_event_id() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_event_id_;
  }

 private:
  void Toggles(const httplib::Request& q, httplib::Response& r) {
    std::lock_guard<std::mutex> lock(mu_);
    ++fetches_;
    last_environment_ = q.get_param_value("environment");
    if (q.get_header_value("Authorization") != std::string("Bearer ") + kToken) {
      r.status = 401;
      r.set_content(R"({"error": "unauthorized", "message": "unknown or revoked token"})", "application/json");
      return;
    }
    if (!etag_.empty() && q.get_header_value("If-None-Match") == etag_) {
      ++not_modified_;
      r.status = 304;
      return;
    }
    if (!etag_.empty()) r.set_header("ETag", etag_);
    r.set_content(raw_.empty() ? toggles_.dump() : raw_, "application/json");
  }

  void Stream(const httplib::Request& q, httplib::Response& r) {
    if (!stream_on_) {
      r.status = 404;
      r.set_content(R"({"error": "not_found", "message": "no such route"})", "application/json");
      return;
    }
    size_t next;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++stream_opens_;
      last_event_id_ = q.get_header_value("Last-Event-ID");
      next = events_.size();
    }
    auto cursor = std::make_shared<size_t>(next);
    r.set_chunked_content_provider("text/event-stream", [this, cursor](size_t, httplib::DataSink& sink) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, 50ms, [&] { return stopping_ || *cursor < events_.size(); });
      if (stopping_) return false;
      std::string out = ": keep-alive\n\n";
      for (; *cursor < events_.size(); ++*cursor)
        out += "id: " + std::to_string(events_[*cursor]) + "\nevent: change\ndata: {}\n\n";
      return sink.write(out.data(), out.size());
    });
  }

  httplib::Server server_;
  int port_ = -1;
  std::thread thread_;
  std::atomic<bool> stream_on_{true};
  std::atomic<int> fetches_{0}, not_modified_{0}, stream_opens_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  json toggles_ = json::array();
  std::string raw_, etag_, last_environment_, last_event_id_;
  std::vector<int64_t> events_;
};

// Waits up to `limit` for `done`; true if it happened.
bool Eventually(const std::function<bool()>& done, std::chrono::milliseconds limit = 3000ms) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return done();
}

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ladle-client-XXXXXX";
    dir_ = mkdtemp(tmpl);
    ASSERT_TRUE(server_.ok());
    server_.SetToggles(Set(10, false), 10);
  }
  void TearDown() override { fs::remove_all(dir_); }

  ClientOptions Options(const std::string& url) {
    ClientOptions o;
    o.server = url;
    o.token = kToken;
    o.cache_file = (dir_ / "cache" / "toggles.json").string();
    o.poll_interval = 50ms;
    o.stream_retry = 60000ms;
    return o;
  }
  std::unique_ptr<Client> Start(ClientOptions o) {
    std::unique_ptr<Client> c;
    Status s = Client::Start(std::move(o), &c);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return c;
  }

  fs::path dir_;
  FakeServer server_;
  EvaluationContext alice_ = [] {
    EvaluationContext c;
    c.SetTargetingKey("alice");
    return c;
  }();
};

TEST_F(ClientTest, FetchesTheSetAndEvaluatesLikeTheServer) {
  ClientOptions o = Options(server_.url());
  o.background = false;
  auto client = Start(o);
  EXPECT_TRUE(client->last_error().ok()) << client->last_error().ToString();
  EXPECT_EQ(ToggleSource::kServer, client->source());
  EXPECT_EQ("production", server_.last_environment());
  EXPECT_EQ(10, client->revision());

  EXPECT_TRUE(client->IsEnabled("static-on", alice_));
  EXPECT_FALSE(client->IsEnabled("switch", alice_, true));  // known and off: not the default
  EXPECT_TRUE(client->IsEnabled("nope", alice_, true));
  EXPECT_FALSE(client->IsEnabled("nope", alice_));

  // The same engine as the server: compare with a Snapshot built here.
  std::vector<Toggle> toggles;
  for (const json& j : Set(10, false)) {
    toggles.emplace_back();
    ASSERT_TRUE(ParseToggle(j, &toggles.back()).ok());
  }
  std::shared_ptr<const Snapshot> reference;
  ASSERT_TRUE(Snapshot::Build(10, toggles, &reference).ok());
  for (int i = 0; i < 200; ++i) {
    EvaluationContext c;
    c.SetTargetingKey("user-" + std::to_string(i));
    EXPECT_EQ(reference->Find("half")->Evaluate("production", c).on, client->IsEnabled("half", c));
    EXPECT_EQ(reference->Find("colours")->Evaluate("production", c).variant, client->Variant("colours", c));
  }
}

TEST_F(ClientTest, VariantsAndDetails) {
  ClientOptions o = Options(server_.url());
  o.background = false;
  auto client = Start(o);
  EXPECT_EQ("on", client->Variant("static-on", alice_));
  EXPECT_EQ("off", client->Variant("switch", alice_, "dflt"));
  EXPECT_EQ("dflt", client->Variant("nope", alice_, "dflt"));
  // A rollout without a targeting key: the engine says TARGETING_KEY_MISSING.
  EXPECT_TRUE(client->IsEnabled("half", EvaluationContext(), true));
  EXPECT_EQ("dflt", client->Variant("half", EvaluationContext(), "dflt"));

  ToggleDetails d = client->Evaluate("colours", alice_);
  EXPECT_TRUE(d.found);
  EXPECT_TRUE(d.on);
  EXPECT_EQ(Reason::kSplit, d.reason);
  EXPECT_TRUE(d.variant == "red" || d.variant == "blue") << d.variant;
  EXPECT_EQ(d.variant == "red" ? json("#f00") : json("#00f"), d.value);
  EXPECT_EQ(10, d.revision);

  // Where "colours" is off, it answers its default variant (the first), as
  // OFREP does: the value keeps the variants' type.
  ClientOptions staging = Options(server_.url());
  staging.background = false;
  staging.environment = "staging";
  auto in_staging = Start(staging);
  d = in_staging->Evaluate("colours", alice_);
  EXPECT_FALSE(d.on);
  EXPECT_EQ(Reason::kDisabled, d.reason);
  EXPECT_EQ("red", d.variant);
  EXPECT_EQ(json("#f00"), d.value);
  EXPECT_EQ("red", in_staging->Variant("colours", alice_, "dflt"));

  d = client->Evaluate("nope", alice_);
  EXPECT_FALSE(d.found);
  EXPECT_EQ(Reason::kError, d.reason);
  EXPECT_EQ(ErrorCode::kFlagNotFound, d.error);
}

TEST_F(ClientTest, AnSseEventRefreshesTheSetWithinMilliseconds) {
  std::atomic<int64_t> updated{0};
  ClientOptions o = Options(server_.url());
  o.poll_interval = 60000ms;  // only the stream can bring the change in time
  o.on_update = [&](int64_t revision) { updated = revision; };
  auto client = Start(o);
  ASSERT_TRUE(Eventually([&] { return client->streaming(); }));
  EXPECT_EQ("10", server_.last_event_id());  // what it has, for the replay
  EXPECT_FALSE(client->IsEnabled("switch", alice_));

  server_.SetToggles(Set(11, true), 11);
  auto published = std::chrono::steady_clock::now();
  server_.Publish(11);
  ASSERT_TRUE(Eventually([&] { return client->IsEnabled("switch", alice_); }, 2000ms));
  auto took = std::chrono::steady_clock::now() - published;
  EXPECT_LT(took, 500ms);
  EXPECT_EQ(11, client->revision());
  EXPECT_TRUE(Eventually([&] { return updated == 11; }));
  std::printf("SSE event to new value: %.1f ms\n", std::chrono::duration<double, std::milli>(took).count());

  // An event it has already seen (a replay) does not refetch.
  int fetches = server_.fetches();
  server_.Publish(11);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(fetches, server_.fetches());
}

TEST_F(ClientTest, PollsWithETagWhenThereIsNoStream) {
  server_.set_stream(false);
  auto client = Start(Options(server_.url()));
  ASSERT_TRUE(Eventually([&] { return server_.not_modified() >= 3; }));  // 304s: nothing changed
  EXPECT_FALSE(client->streaming());
  EXPECT_EQ(0, server_.stream_opens());  // refused (404), never opened
  EXPECT_TRUE(client->last_error().ok()) << client->last_error().ToString();

  server_.SetToggles(Set(12, true), 12);
  EXPECT_TRUE(Eventually([&] { return client->IsEnabled("switch", alice_); }));
  EXPECT_EQ(12, client->revision());
}

TEST_F(ClientTest, PollsWhenStreamingIsOff) {
  ClientOptions o = Options(server_.url());
  o.stream = false;
  auto client = Start(o);
  server_.SetToggles(Set(13, true), 13);
  EXPECT_TRUE(Eventually([&] { return client->IsEnabled("switch", alice_); }));
  EXPECT_EQ(0, server_.stream_opens());
}

TEST_F(ClientTest, WritesTheCacheFileAtomicallyAndPrivately) {
  ClientOptions o = Options(server_.url());
  o.background = false;
  auto client = Start(o);
  ASSERT_TRUE(client->last_error().ok()) << client->last_error().ToString();
  std::ifstream in(o.cache_file);
  ASSERT_TRUE(in) << o.cache_file;
  std::stringstream text;
  text << in.rdbuf();
  json cache = json::parse(text.str());
  EXPECT_EQ(1, cache["format"]);
  EXPECT_EQ("production", cache["environment"]);
  EXPECT_EQ(10, cache["revision"]);
  EXPECT_EQ(4u, cache["toggles"].size());
  struct stat st;
  ASSERT_EQ(0, stat(o.cache_file.c_str(), &st));
  EXPECT_EQ(0600u, st.st_mode & 0777);
  // Only the file itself: no temp files left behind.
  EXPECT_EQ(1, std::distance(fs::directory_iterator(fs::path(o.cache_file).parent_path()), fs::directory_iterator()));

  // A new set rewrites it.
  server_.SetToggles(Set(14, true), 14);
  ASSERT_TRUE(client->Refresh().ok());
  std::ifstream again(o.cache_file);
  EXPECT_EQ(14, json::parse(again)["revision"]);
}

TEST_F(ClientTest, StartsWhileTheServerIsDownWithTheLastKnownToggles) {
  ClientOptions o = Options(server_.url());
  server_.SetToggles(Set(15, true), 15);
  { Start(o); }  // an earlier run of the application leaves its cache
  int port = server_.port();
  server_.Stop();

  auto client = Start(o);  // the application starts again; the server is down
  EXPECT_EQ(ToggleSource::kCache, client->source());
  EXPECT_EQ(Code::kUnavailable, client->last_error().code());
  EXPECT_TRUE(client->IsEnabled("switch", alice_));
  EXPECT_TRUE(client->IsEnabled("static-on", alice_));
  EXPECT_EQ(15, client->revision());

  // The server comes back (on the same port) with a change: picked up.
  FakeServer back(port);
  if (!back.ok()) GTEST_SKIP() << "port " << port << " was taken meanwhile";
  back.SetToggles(Set(16, false), 16);
  EXPECT_TRUE(Eventually([&] { return !client->IsEnabled("switch", alice_); }));
  EXPECT_EQ(ToggleSource::kServer, client->source());
}

TEST_F(ClientTest, WithoutServerOrCacheEverythingIsTheDefault) {
  int port = server_.port();
  server_.Stop();
  ClientOptions o = Options("http://127.0.0.1:" + std::to_string(port));
  o.background = false;
  auto client = Start(o);
  EXPECT_EQ(ToggleSource::kNone, client->source());
  EXPECT_NE(std::string::npos, client->last_error().message().find("no toggle server at"));
  EXPECT_TRUE(client->IsEnabled("static-on", alice_, true));
  EXPECT_FALSE(client->IsEnabled("static-on", alice_, false));
  EXPECT_EQ(0, client->revision());
}

TEST_F(ClientTest, IgnoresACacheOfAnotherEnvironment) {
  ClientOptions o = Options(server_.url());
  o.background = false;
  { Start(o); }
  server_.Stop();
  o.environment = "staging";
  auto client = Start(o);
  EXPECT_EQ(ToggleSource::kNone, client->source());
  EXPECT_FALSE(client->IsEnabled("static-on", alice_));
}

TEST_F(ClientTest, KeepsTheLastGoodSetWhenTheServerSendsABadOne) {
  ClientOptions o = Options(server_.url());
  o.background = false;
  auto client = Start(o);
  server_.SetBody(R"([{"key": "bad key!"}])");
  Status s = client->Refresh();
  EXPECT_EQ(Code::kInvalid, s.code());
  EXPECT_NE(std::string::npos, s.message().find("toggles[0]: key: only")) << s.message();
  EXPECT_TRUE(client->IsEnabled("static-on", alice_));
  EXPECT_EQ(ToggleSource::kServer, client->source());
}

TEST_F(ClientTest, IgnoresFieldsANewerServerAdds) {
  json set = Set(10, true);
  set[3]["created_at"] = "2024-05-01T12:00:00Z";
  server_.SetToggles(set, 10);
  ClientOptions o = Options(server_.url());
  o.background = false;
  auto client = Start(o);
  EXPECT_TRUE(client->last_error().ok()) << client->last_error().ToString();
  EXPECT_TRUE(client->IsEnabled("switch", alice_));
}

TEST_F(ClientTest, AWrongTokenIsReported) {
  ClientOptions o = Options(server_.url());
  o.token = "wrong";
  o.background = false;
  auto client = Start(o);
  EXPECT_EQ(Code::kUnauthorized, client->last_error().code());
  EXPECT_EQ("fetch toggles: unknown or revoked token (401)", client->last_error().message());
}

TEST_F(ClientTest, BadOptionsFailToStart) {
  std::unique_ptr<Client> client;
  ClientOptions o = Options("https://x");
  EXPECT_EQ(Code::kInvalid, Client::Start(o, &client).code());
  o = Options(server_.url());
  o.environment = "";
  EXPECT_EQ(Code::kInvalid, Client::Start(o, &client).code());
  EXPECT_EQ(nullptr, client);
}

TEST_F(ClientTest, DestructionIsPromptWhileStreaming) {
  auto client = Start(Options(server_.url()));
  ASSERT_TRUE(Eventually([&] { return client->streaming(); }));
  auto start = std::chrono::steady_clock::now();
  client.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 300ms);
}

TEST_F(ClientTest, DestructionIsPromptRightAfterStart) {
  for (int i = 0; i < 20; ++i) {
    auto client = Start(Options(server_.url()));
    auto start = std::chrono::steady_clock::now();
    client.reset();
    EXPECT_LT(std::chrono::steady_clock::now() - start, 300ms) << i;
  }
}

TEST_F(ClientTest, ManyThreadsEvaluateWhileTheSetChanges) {
  auto client = Start(Options(server_.url()));
  ASSERT_TRUE(Eventually([&] { return client->streaming(); }));
  std::atomic<bool> stop{false};
  std::atomic<long> evaluations{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&] {
      EvaluationContext c;
      c.SetTargetingKey("bob");
      while (!stop) {
        EXPECT_TRUE(client->IsEnabled("static-on", c));
        client->IsEnabled("switch", c);
        ++evaluations;
      }
    });
  }
  for (int rev = 20; rev < 40; ++rev) {
    server_.SetToggles(Set(rev, rev % 2 == 0), rev);
    server_.Publish(rev);
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(Eventually([&] { return client->revision() == 39; }));
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_GT(evaluations, 0);
  EXPECT_FALSE(client->IsEnabled("switch", alice_));
}

}  // namespace
}  // namespace ladle::toggles
