// End-to-end tests of `ladle toggles serve`: the real binary on a loopback
// port and a temp data dir, driven over HTTP with cpp-httplib; a SIGKILL in
// the middle of concurrent flips; OpenFeature's JavaScript SDK with the OFREP
// provider against it.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "tests/node_util.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using ladle::testing::FreePort;
using ladle::testing::ReadFile;

class ToggleServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = ladle::testing::MakeTempDir("/tmp/ladle-serve-e2e-XXXXXX");
    data_ = root_ / "data";
    port_ = FreePort();
  }
  void TearDown() override {
    Kill(SIGKILL);
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  // Starts `ladle toggles serve --listen 127.0.0.1:PORT --data DATA EXTRA...`.
  pid_t Spawn(int port, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {LADLE_BINARY, "toggles", "serve", "--listen",
                                     "127.0.0.1:" + std::to_string(port), "--data", data_.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::string log = (root_ / "server.log").string();
    pid_t pid = fork();
    if (pid == 0) {
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      execv(LADLE_BINARY, argv.data());
      _exit(127);
    }
    return pid;
  }

  void Start(const std::vector<std::string>& extra = {}) {
    pid_ = Spawn(port_, extra);
    httplib::Client c("127.0.0.1", port_);
    for (int i = 0; i < 200; ++i) {
      if (auto r = c.Get("/healthz"); r && r->status == 200) {
        token_ = ReadFile(data_ / "admin.token");
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    FAIL() << "server did not answer: " << ReadFile(root_ / "server.log");
  }

  // Sends `sig` and returns the exit status (waitpid's).
  int Kill(int sig) {
    if (pid_ <= 0) return -1;
    kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

  httplib::Client Client() {
    httplib::Client c("127.0.0.1", port_);
    c.set_bearer_token_auth(token_.c_str());
    c.set_read_timeout(5, 0);
    return c;
  }

  fs::path root_, data_;
  int port_ = 0;
  pid_t pid_ = -1;
  std::string token_;
};

TEST_F(ToggleServerTest, ServesTheApiAndStopsOnSigterm) {
  Start();
  ASSERT_NE("", token_);
  EXPECT_NE(std::string::npos, ReadFile(root_ / "server.log").find("admin token written to " + (data_ / "admin.token").string()));
  httplib::Client c = Client();
  auto r = c.Post("/api/v1/toggles", R"({"key":"banner","environments":{"production":{"enabled":true}}})",
                  "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(201, r->status) << r->body;
  r = c.Post("/ofrep/v1/evaluate/flags/banner", R"({"context":{"targetingKey":"u"}})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(R"({"key":"banner","value":true,"reason":"STATIC","variant":"on","metadata":{}})", r->body);
  std::string big(2 << 20, 'x');
  r = c.Post("/api/v1/toggles", big, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(413, r->status);
  httplib::Client anon("127.0.0.1", port_);
  r = anon.Post("/api/v1/toggles/banner/environments/production/off", "", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(401, r->status);
  int status = Kill(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(0, WEXITSTATUS(status));
}

// docs/toggles.md "HTTP API": --io-threads is 1 to 64; outside, exit 2 naming the flag.
TEST_F(ToggleServerTest, IoThreadsFlag) {
  pid_t bad = Spawn(port_, {"--io-threads", "0"});
  int status = 0;
  waitpid(bad, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(2, WEXITSTATUS(status));
  EXPECT_NE(std::string::npos, ReadFile(root_ / "server.log").find("--io-threads"))
      << ReadFile(root_ / "server.log");
  Start({"--io-threads", "1"});
  ASSERT_NE("", token_);
  httplib::Client c = Client();
  auto r = c.Post("/api/v1/toggles", R"({"key":"one","environments":{"production":{"enabled":true}}})",
                  "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(201, r->status) << r->body;
  r = c.Post("/ofrep/v1/evaluate/flags/one", R"({"context":{"targetingKey":"u"}})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(200, r->status) << r->body;
  int exit_status = Kill(SIGTERM);
  ASSERT_TRUE(WIFEXITED(exit_status));
  EXPECT_EQ(0, WEXITSTATUS(exit_status));
}

TEST_F(ToggleServerTest, PortInUseExits3) {
  Start();
  pid_t second = Spawn(port_);
  int status = 0;
  waitpid(second, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(3, WEXITSTATUS(status));
  EXPECT_NE(std::string::npos, ReadFile(root_ / "server.log").find("listen on 127.0.0.1:"));
}

// Concurrent flips, SIGKILL in the middle: every flip that got a 2xx is in
// the audit trail after a restart, and the trail agrees with the toggles.
TEST_F(ToggleServerTest, AcknowledgedFlipsSurviveSigkill) {
  Start();
  constexpr int kThreads = 4;
  {
    httplib::Client c = Client();
    for (int i = 0; i < kThreads; ++i) {
      auto r = c.Post("/api/v1/toggles", json{{"key", "k" + std::to_string(i)}}.dump(), "application/json");
      ASSERT_TRUE(r && r->status == 201);
    }
  }
  std::mutex mu;
  std::map<int64_t, std::pair<std::string, bool>> acked;  // revision -> (key, on)
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      httplib::Client c = Client();
      std::string key = "k" + std::to_string(i);
      for (bool on = true; !stop; on = !on) {
        auto r = c.Post("/api/v1/toggles/" + key + "/environments/production/" + (on ? "on" : "off"), "",
                        "application/json");
        if (!r) return;  // the server is gone
        if (r->status / 100 != 2) continue;
        std::string etag = r->get_header_value("ETag");
        std::lock_guard<std::mutex> lock(mu);
        acked[std::stoll(etag.substr(1, etag.size() - 2))] = {key, on};
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  Kill(SIGKILL);
  stop = true;
  for (auto& t : threads) t.join();
  ASSERT_GT(acked.size(), 10u);

  Start();
  httplib::Client c = Client();
  json events = json::array();  // every page of the audit trail
  for (std::string next = "/api/v1/events?after=0&limit=1000"; !next.empty();) {
    auto r = c.Get(next);
    ASSERT_TRUE(r && r->status == 200);
    json page = json::parse(r->body);
    for (json& e : page["events"]) events.push_back(std::move(e));
    next = page["next"].is_string() ? page["next"].get<std::string>() : "";
  }
  std::map<int64_t, json> by_revision;
  int64_t expect = 1;
  for (const json& e : events) {
    EXPECT_EQ(expect++, e["revision"].get<int64_t>()) << "revisions have no gaps";
    by_revision[e["revision"]] = e;
  }
  for (const auto& [rev, flip] : acked) {
    ASSERT_TRUE(by_revision.count(rev)) << "acknowledged flip at revision " << rev << " lost";
    const json& e = by_revision[rev];
    EXPECT_EQ(flip.first, e["key"]);
    EXPECT_EQ(flip.second ? "enable" : "disable", e["action"]);
  }
  // Each toggle's state is what its last event says.
  std::map<std::string, bool> last;
  for (const json& e : events) {
    if (e["action"] == "enable" || e["action"] == "disable") last[e["key"]] = e["action"] == "enable";
  }
  for (const auto& [key, on] : last) {
    auto t = c.Get("/api/v1/toggles/" + key);
    ASSERT_TRUE(t && t->status == 200);
    EXPECT_EQ(on, json::parse(t->body)["environments"]["production"]["enabled"].get<bool>()) << key;
  }
}

// Regression (issue 10): a client token's 106 KB bulk body nested 53,000
// deep crashed the server (SIGSEGV). It is a 400 naming the limit, and the
// server goes on answering; variant values of the same depth with an admin
// token the same.
TEST_F(ToggleServerTest, DeeplyNestedBodiesAre400AndTheServerLivesOn) {
  Start();
  httplib::Client admin = Client();
  auto r = admin.Post("/api/v1/tokens", R"({"name":"web","role":"client","environment":"production"})",
                      "application/json");
  ASSERT_TRUE(r && r->status == 201) << (r ? r->body : "no answer");
  httplib::Client client("127.0.0.1", port_);
  client.set_bearer_token_auth(json::parse(r->body)["secret"].get<std::string>().c_str());
  const std::string deep = std::string(53000, '[') + std::string(53000, ']');
  r = client.Post("/ofrep/v1/evaluate/flags", R"({"context":{"targetingKey":"u","a":)" + deep + "}}",
                  "application/json");
  ASSERT_TRUE(r) << "no answer: the server died";
  EXPECT_EQ(400, r->status) << r->body;
  EXPECT_NE(std::string::npos, r->body.find("64")) << "the answer names the limit: " << r->body;
  r = admin.Post("/api/v1/toggles", R"({"key":"v","variants":[{"name":"a","value":)" + deep + "}]}",
                 "application/json");
  ASSERT_TRUE(r) << "no answer: the server died";
  EXPECT_EQ(400, r->status) << r->body;
  r = admin.Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(200, r->status);
}

// A client token bound to staging, over real HTTP: every read route, and the
// first events of the change stream (live and replayed), show none of
// production's strategies or users (docs/toggles.md "HTTP API").
TEST_F(ToggleServerTest, StagingTokenReadsNoProductionConfigOverHttp) {
  Start();
  httplib::Client admin = Client();
  auto r = admin.Post("/api/v1/tokens", R"({"name":"web","role":"client","environment":"staging"})",
                      "application/json");
  ASSERT_TRUE(r && r->status == 201) << (r ? r->body : "no answer");
  const std::string secret = json::parse(r->body)["secret"];
  httplib::Client client("127.0.0.1", port_);
  client.set_bearer_token_auth(secret.c_str());
  client.set_read_timeout(5, 0);
  // The client's stream, live from before the changes: read on a thread
  // until it has seen the last change (the "update" of the description).
  std::string live;
  std::mutex live_mu;
  std::thread reader([&] {
    httplib::Client sse("127.0.0.1", port_);
    sse.set_bearer_token_auth(secret.c_str());
    sse.set_read_timeout(5, 0);
    sse.Get("/api/v1/stream", [&](const char* data, size_t n) {
      std::lock_guard<std::mutex> lock(live_mu);
      live.append(data, n);
      return live.find("\"update\"") == std::string::npos;
    });
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // subscribed
  const std::string kMarkers[] = {"prod-only-user-5d1e", "prod-only-country-b7c4"};
  json t = {{"key", "checkout"},
            {"environments",
             {{"production",
               {{"enabled", true},
                {"strategies",
                 {{{"users", {kMarkers[0]}},
                   {"constraints",
                    {{{"attribute", "country"}, {"operator", "in"}, {"values", {kMarkers[1]}}}}}}}}}},
              {"staging", {{"enabled", true}}}}}};
  ASSERT_EQ(201, admin.Post("/api/v1/toggles", t.dump(), "application/json")->status);
  ASSERT_EQ(200, admin.Post("/api/v1/toggles/checkout/environments/production/off", "", "application/json")->status);
  ASSERT_EQ(200, admin.Post("/api/v1/toggles/checkout/environments/staging/off", "", "application/json")->status);
  ASSERT_EQ(200, admin.Patch("/api/v1/toggles/checkout", R"({"description":"d"})", "application/json")->status);
  reader.join();
  auto expect_clean = [&](const std::string& what, const std::string& text) {
    for (const std::string& m : kMarkers) EXPECT_EQ(std::string::npos, text.find(m)) << what << ": " << text;
  };
  ASSERT_NE(std::string::npos, admin.Get("/api/v1/events")->body.find(kMarkers[0]));
  for (const char* target : {"/api/v1/toggles", "/api/v1/toggles/checkout", "/api/v1/toggles/checkout/history",
                             "/api/v1/events", "/healthz", "/metrics"}) {
    auto got = client.Get(target);
    ASSERT_TRUE(got) << target;
    EXPECT_EQ(200, got->status) << target << ": " << got->body;
    expect_clean(target, got->body);
  }
  EXPECT_EQ(403, client.Get("/api/v1/toggles?environment=production")->status);
  EXPECT_EQ(403, client.Get("/api/v1/tokens")->status);
  auto bulk = client.Post("/ofrep/v1/evaluate/flags", R"({"context":{"targetingKey":"u"}})", "application/json");
  ASSERT_TRUE(bulk && bulk->status == 200);
  expect_clean("OFREP bulk", bulk->body);
  EXPECT_NE(std::string::npos, live.find("\"create\"")) << live;
  EXPECT_NE(std::string::npos, live.find("\"disable\"")) << live;
  expect_clean("the live stream", live);
  // The replay from the start, with Last-Event-ID.
  std::string replayed;
  httplib::Headers from_start = {{"Last-Event-ID", "0"}};
  client.Get("/api/v1/stream", from_start, [&](const char* data, size_t n) {
    replayed.append(data, n);
    return replayed.find("\"update\"") == std::string::npos;
  });
  EXPECT_NE(std::string::npos, replayed.find("\"update\"")) << replayed;
  expect_clean("the replayed stream", replayed);
}

// ---- OpenFeature's JavaScript SDK with the OFREP provider (npm) ----

TEST_F(ToggleServerTest, OpenFeatureJavaScriptSdk) {
  // The SDK, in tests/toggles/ofrep_sdk/node_modules (scripts/install-deps.sh --test).
  const std::string missing =
      ladle::testing::NodeTestMissing(fs::path(LADLE_SOURCE_DIR) / "tests/toggles/ofrep_sdk", false);
  if (!missing.empty()) {
    if (ladle::testing::InCi()) FAIL() << missing;
    GTEST_SKIP() << missing;
  }
  Start();
  httplib::Client c = Client();
  const char* toggles[] = {
      R"({"key":"on-flag","environments":{"production":{"enabled":true}}})",
      R"({"key":"off-flag"})",
      R"({"key":"users-flag","environments":{"production":{"enabled":true,"strategies":[{"users":["alice"]}]}}})",
      R"({"key":"colour","variants":[{"name":"red","weight":1000,"value":"#f00"}],
          "environments":{"production":{"enabled":true}}})",
  };
  for (const char* t : toggles) {
    auto r = c.Post("/api/v1/toggles", t, "application/json");
    ASSERT_TRUE(r && r->status == 201) << (r ? r->body : "no answer");
  }
  std::string out, error;
  ASSERT_TRUE(ladle::testing::Run({"node", std::string(LADLE_SOURCE_DIR) + "/tests/toggles/ofrep_sdk/evaluate.js",
                                   "http://127.0.0.1:" + std::to_string(port_), token_, "alice", "on-flag:boolean",
                                   "off-flag:boolean", "users-flag:boolean", "colour:string", "missing:boolean"},
                                  "", &out, &error, std::chrono::seconds(60)))
      << error;
  json j = json::parse(out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out;
  EXPECT_EQ(json({{"value", true}, {"variant", "on"}, {"reason", "STATIC"}, {"errorCode", nullptr}}), j["on-flag"]);
  EXPECT_EQ(json({{"value", false}, {"variant", "off"}, {"reason", "DISABLED"}, {"errorCode", nullptr}}), j["off-flag"]);
  EXPECT_EQ(json({{"value", true}, {"variant", "on"}, {"reason", "TARGETING_MATCH"}, {"errorCode", nullptr}}),
            j["users-flag"]);
  EXPECT_EQ(json({{"value", "#f00"}, {"variant", "red"}, {"reason", "SPLIT"}, {"errorCode", nullptr}}), j["colour"]);
  EXPECT_EQ(false, j["missing"]["value"]);
  EXPECT_EQ("FLAG_NOT_FOUND", j["missing"]["errorCode"]);
}

// A toggle with variants that is off, or that matches no strategy, answers
// its default variant (the first): a value of the variants' type, so the SDK
// reports DISABLED or DEFAULT and no TYPE_MISMATCH (docs/design.md "OFREP").
TEST_F(ToggleServerTest, OpenFeatureSdkGetsTheDefaultVariantOfOffToggles) {
  const std::string missing =
      ladle::testing::NodeTestMissing(fs::path(LADLE_SOURCE_DIR) / "tests/toggles/ofrep_sdk", false);
  if (!missing.empty()) {
    if (ladle::testing::InCi()) FAIL() << missing;
    GTEST_SKIP() << missing;
  }
  Start();
  httplib::Client c = Client();
  const std::map<std::string, std::pair<json, json>> variants = {
      {"string", {"small", "large"}},
      {"number", {1.5, 42}},
      {"object", {{{"layout", "old"}, {"columns", 1}}, {{"layout", "new"}, {"columns", 3}}}},
  };
  std::vector<std::string> args = {"node", std::string(LADLE_SOURCE_DIR) + "/tests/toggles/ofrep_sdk/evaluate.js",
                                   "http://127.0.0.1:" + std::to_string(port_), token_, "alice"};
  for (const auto& [type, values] : variants) {
    json list = {{{"name", "first"}, {"weight", 0}, {"value", values.first}},
                 {{"name", "second"}, {"weight", 1000}, {"value", values.second}}};
    json off = {{"key", type + "-off"}, {"variants", list}};
    json unmatched = {{"key", type + "-unmatched"},
                      {"variants", list},
                      {"environments",
                       {{"production", {{"enabled", true}, {"strategies", {{{"users", {"bob"}}}}}}}}}};
    for (const json& t : {off, unmatched}) {
      auto r = c.Post("/api/v1/toggles", t.dump(), "application/json");
      ASSERT_TRUE(r && r->status == 201) << (r ? r->body : "no answer");
      args.push_back(t["key"].get<std::string>() + ":" + type);
    }
  }
  std::string out, error;
  ASSERT_TRUE(ladle::testing::Run(args, "", &out, &error, std::chrono::seconds(60))) << error;
  json j = json::parse(out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out;
  for (const auto& [type, values] : variants) {
    SCOPED_TRACE(type);
    EXPECT_EQ(json({{"value", values.first}, {"variant", "first"}, {"reason", "DISABLED"}, {"errorCode", nullptr}}),
              j[type + "-off"]);
    EXPECT_EQ(json({{"value", values.first}, {"variant", "first"}, {"reason", "DEFAULT"}, {"errorCode", nullptr}}),
              j[type + "-unmatched"]);
  }
}

}  // namespace
