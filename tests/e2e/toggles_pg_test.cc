// End to end: two `ladle toggles serve` replicas on one PostgreSQL (the
// fixture's, tests/pg_util.h), docs/toggles.md "Store". A flip through one
// replica's REST API reaches the other's OFREP answers and its SSE stream;
// a token created or revoked through one is honoured by the other.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "tests/pg_util.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using ladle::testing::FreePort;
using ladle::testing::ReadFile;

constexpr char kAdminToken[] = "ladle-e2e-admin-token-0123456789abcdef";

class TogglesPgTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LADLE_REQUIRE_POSTGRES();
    uri_ = ladle::testing::PostgresServer::Get()->CreateDatabase("toggles_e2e");
    root_ = ladle::testing::MakeTempDir("/tmp/ladle-pg-e2e-XXXXXX");
  }
  void TearDown() override {
    for (pid_t pid : pids_) {
      kill(pid, SIGKILL);
      int status = 0;
      waitpid(pid, &status, 0);
    }
    std::error_code ec;
    if (!root_.empty()) fs::remove_all(root_, ec);
  }

  // A replica with a data dir of its own; `by_env`: the store from
  // LADLE_STORE rather than --store. Returns its port.
  // `admin_from_env`: LADLE_ADMIN_TOKEN set (else the first start writes
  // an admin.token).
  int StartReplica(const std::string& name, bool by_env, const std::string& store,
                   bool admin_from_env = true) {
    const int port = FreePort();
    const fs::path data = root_ / name;
    std::vector<std::string> args = {LADLE_BINARY, "toggles", "serve", "--listen",
                                     "127.0.0.1:" + std::to_string(port), "--data",
                                     data.string()};
    if (!by_env) args.insert(args.end(), {"--store", store});
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const std::string log = (root_ / (name + ".log")).string();
    pid_t pid = fork();
    if (pid == 0) {
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      if (admin_from_env) setenv("LADLE_ADMIN_TOKEN", kAdminToken, 1);
      else unsetenv("LADLE_ADMIN_TOKEN");
      if (by_env) setenv("LADLE_STORE", store.c_str(), 1);
      else unsetenv("LADLE_STORE");
      execv(LADLE_BINARY, argv.data());
      _exit(127);
    }
    pids_.push_back(pid);
    httplib::Client c("127.0.0.1", port);
    for (int i = 0; i < 400; ++i) {
      if (auto r = c.Get("/healthz"); r && r->status == 200) return port;
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    ADD_FAILURE() << name << " did not answer: " << ReadFile(log);
    return 0;
  }

  static httplib::Client Client(int port) {
    httplib::Client c("127.0.0.1", port);
    c.set_bearer_token_auth(kAdminToken);
    c.set_read_timeout(5, 0);
    return c;
  }

  // The status of GET /api/v1/toggles on `port` with `token`; 0: no answer.
  static int ListWith(int port, const std::string& token) {
    httplib::Client c("127.0.0.1", port);
    c.set_bearer_token_auth(token);
    c.set_read_timeout(5, 0);
    auto r = c.Get("/api/v1/toggles");
    return r ? r->status : 0;
  }

  // Polls ListWith until it answers `want`, for up to 5 s (the servers
  // refresh their tokens every second); the last status.
  static int WaitForStatus(int port, const std::string& token, int want) {
    int got = 0;
    for (int i = 0; i < 100; ++i) {
      got = ListWith(port, token);
      if (got == want) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return got;
  }

  static std::string Ofrep(int port, const std::string& key) {
    auto r = Client(port).Post("/ofrep/v1/evaluate/flags/" + key,
                               R"({"context":{"targetingKey":"u"}})", "application/json");
    return r ? r->body : "no answer";
  }

  std::string uri_;
  fs::path root_;
  std::vector<pid_t> pids_;
};

TEST_F(TogglesPgTest, AFlipOnOneReplicaReachesTheOthersOfrepAndStream) {
  const int a = StartReplica("a", /*by_env=*/false, uri_);
  const int b = StartReplica("b", /*by_env=*/true, uri_);
  ASSERT_TRUE(a && b);
  auto r = Client(a).Post("/api/v1/toggles", R"({"key":"banner"})", "application/json");
  ASSERT_TRUE(r && r->status == 201) << (r ? r->body : "no answer");
  // b's stream, live from before the flip, read until it shows the enable.
  std::string live;
  std::mutex mu;
  std::thread reader([&] {
    httplib::Client sse = Client(b);
    sse.Get("/api/v1/stream", [&](const char* data, size_t n) {
      std::lock_guard<std::mutex> lock(mu);
      live.append(data, n);
      return live.find("\"enable\"") == std::string::npos;
    });
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // subscribed
  r = Client(a).Post("/api/v1/toggles/banner/environments/production/on", "", "application/json");
  ASSERT_TRUE(r && r->status == 200) << (r ? r->body : "no answer");
  reader.join();
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_NE(std::string::npos, live.find("\"enable\"")) << live;
    EXPECT_NE(std::string::npos, live.find("\"key\":\"banner\"")) << live;
  }
  // The stream delivered the change after b's snapshot took it.
  EXPECT_EQ(R"({"key":"banner","value":true,"reason":"STATIC","variant":"on","metadata":{}})",
            Ofrep(b, "banner"));
  // And back, through b this time: a answers off.
  r = Client(b).Post("/api/v1/toggles/banner/environments/production/off", "", "application/json");
  ASSERT_TRUE(r && r->status == 200) << (r ? r->body : "no answer");
  std::string answer;
  for (int i = 0; i < 200; ++i) {
    answer = Ofrep(a, "banner");
    if (answer.find("\"value\":false") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_NE(std::string::npos, answer.find("\"value\":false")) << answer;
}

TEST_F(TogglesPgTest, ATokenCreatedThroughOneReplicaWorksOnTheOtherUntilRevoked) {
  const int a = StartReplica("a", /*by_env=*/false, uri_);
  const int b = StartReplica("b", /*by_env=*/true, uri_);
  ASSERT_TRUE(a && b);
  auto r = Client(a).Post("/api/v1/tokens", R"({"name":"shop","role":"client"})",
                          "application/json");
  ASSERT_TRUE(r && r->status == 201) << (r ? r->body : "no answer");
  const std::string secret = json::parse(r->body).value("secret", "");
  ASSERT_FALSE(secret.empty()) << r->body;
  EXPECT_EQ(200, ListWith(a, secret));
  EXPECT_EQ(200, WaitForStatus(b, secret, 200));
  // b lists it too: one table for both.
  r = Client(b).Get("/api/v1/tokens");
  ASSERT_TRUE(r && r->status == 200);
  EXPECT_NE(std::string::npos, r->body.find("\"shop\"")) << r->body;
  // Revoked through b, refused by a within its refresh interval.
  r = Client(b).Delete("/api/v1/tokens/shop");
  ASSERT_TRUE(r && r->status == 204) << (r ? r->body : "no answer");
  EXPECT_EQ(401, ListWith(b, secret));
  EXPECT_EQ(401, WaitForStatus(a, secret, 401));
  // The name is free again, for both.
  r = Client(a).Post("/api/v1/tokens", R"({"name":"shop","role":"client"})", "application/json");
  EXPECT_TRUE(r && r->status == 201) << (r ? r->body : "no answer");
}

TEST_F(TogglesPgTest, TheFirstReplicaCreatesTheAdminTokenForAll) {
  const int a = StartReplica("a", /*by_env=*/false, uri_, /*admin_from_env=*/false);
  const int b = StartReplica("b", /*by_env=*/true, uri_, /*admin_from_env=*/false);
  ASSERT_TRUE(a && b);
  // a wrote the file in its data dir; b found the token and wrote none.
  ASSERT_TRUE(fs::exists(root_ / "a" / "admin.token"));
  EXPECT_FALSE(fs::exists(root_ / "b" / "admin.token"));
  const std::string secret = ReadFile(root_ / "a" / "admin.token");
  EXPECT_EQ(200, ListWith(a, secret));
  EXPECT_EQ(200, ListWith(b, secret));
  EXPECT_NE(std::string::npos, ReadFile(root_ / "b.log").find("an admin token exists"))
      << ReadFile(root_ / "b.log");
}

TEST_F(TogglesPgTest, ADatabaseThatDoesNotAnswerExits3NamingIt) {
  const std::string uri =
      "postgresql://ladle:secret@127.0.0.1:" + std::to_string(FreePort()) + "/nothing";
  const std::string log = (root_ / "down.log").string();
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    const std::string data = (root_ / "data").string();
    execl(LADLE_BINARY, LADLE_BINARY, "toggles", "serve", "--listen", "127.0.0.1:0", "--data",
          data.c_str(), "--store", uri.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  ASSERT_EQ(pid, waitpid(pid, &status, 0));
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(3, WEXITSTATUS(status)) << ReadFile(log);
  const std::string out = ReadFile(log);
  EXPECT_NE(std::string::npos, out.find("postgresql://ladle:***@127.0.0.1:")) << out;
  EXPECT_EQ(std::string::npos, out.find("secret")) << out;
}

}  // namespace
