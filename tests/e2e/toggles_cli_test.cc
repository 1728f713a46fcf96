// `ladle toggles ...` (runner/cli/cli_toggles.cc): the table formatting, then the
// real binary against a fake server (cpp-httplib on 127.0.0.1) for exit
// codes and messages, then the real binary and the client library against
// the real server (`ladle toggles serve`); those tests skip while the serve
// command does not exist yet.
#include <gtest/gtest.h>
#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "env/subprocess.h"
#include "runner/cli/cli_commands.h"
#include "toggles/client/client.h"
#include "toggles/client/http_client.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;

namespace ladle::runner {
namespace {

// --- formatting ---

TEST(FormatTable, AlignsColumnsAndTrimsTheLast) {
  EXPECT_EQ("A    BB  C\n"
            "xyz  1   long text\n"
            "é    22\n",
            FormatTable({"A", "BB", "C"}, {{"xyz", "1", "long text"}, {"\xC3\xA9", "22", ""}}));
}

TEST(SummarizeStrategies, Shapes) {
  EXPECT_EQ("-", SummarizeStrategies(json::array()));
  EXPECT_EQ("-", SummarizeStrategies(json()));
  EXPECT_EQ("rollout 25%", SummarizeStrategies(json::parse(R"([{"rollout": {"percent": 25}}])")));
  EXPECT_EQ("rollout 5% by userId & country in NL,BE | users a,b,c,+2",
            SummarizeStrategies(json::parse(R"([
              {"rollout": {"percent": 5, "stickiness": "userId"},
               "constraints": [{"attribute": "country", "operator": "in", "values": ["NL", "BE"]}]},
              {"users": ["a", "b", "c", "d", "e"]}])")));
}

TEST(FormatToggleTable, OneRowPerToggle) {
  json toggles = json::parse(R"([
    {"key": "new-checkout", "type": "release", "description": "One-page checkout", "revision": 12,
     "environments": {"production": {"enabled": true, "strategies": [{"rollout": {"percent": 25}}]},
                      "staging": {"enabled": true, "strategies": []}}},
    {"key": "kill-recs", "type": "kill-switch", "description": "", "revision": 3,
     "environments": {"staging": {"enabled": true, "strategies": []}}}])");
  EXPECT_EQ("KEY           TYPE         ENABLED(production)  STRATEGIES   REVISION  DESCRIPTION\n"
            "new-checkout  release      on                   rollout 25%  12        One-page checkout\n"
            "kill-recs     kill-switch  off                  -            3\n",
            FormatToggleTable(toggles, "production"));
}

// --- processes and ports ---

struct Result {
  int code = -1;
  std::string out, err;
  std::string all() const { return out + err; }
};

int FreePort() {
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

class TogglesCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ladle-toggles-cli-XXXXXX";
    root_ = mkdtemp(tmpl);
    data_ = root_ / "data";
    fs::create_directories(data_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // `ladle --data DATA ARGS...` with LADLE_TOKEN and LADLE_SERVER unset
  // unless `env` sets them.
  Result Ladle(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
    std::vector<std::string> argv = {"env", "-u", "LADLE_TOKEN", "-u", "LADLE_SERVER", "NO_COLOR=1"};
    argv.insert(argv.end(), env.begin(), env.end());
    argv.insert(argv.end(), {LADLE_BINARY, "--data", data_.string()});
    argv.insert(argv.end(), args.begin(), args.end());
    env::CommandResult r;
    Status s = env::RunCommand(argv, root_.string(), &r, 60s);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return {r.exit_code, r.out, r.err};
  }

  void WriteAdminToken(const std::string& secret) { std::ofstream(data_ / "admin.token") << secret; }

  fs::path root_, data_;
};

// --- against a fake server ---

constexpr char kAdmin[] = "admin-secret";

json ToggleJson(const std::string& key, const std::string& strategies, int revision) {
  return json::parse(R"({"key": ")" + key + R"(", "type": "release", "description": "d", "variants": [],
    "revision": )" + std::to_string(revision) + R"(, "environments": {"production": {"enabled": true,
    "strategies": )" + strategies + "}}}");
}

class FakeServer {
 public:
  FakeServer() {
    server_.set_tcp_nodelay(true);
    server_.set_pre_routing_handler([](const httplib::Request& q, httplib::Response& r) {
      if (q.get_header_value("Authorization") == std::string("Bearer ") + kAdmin)
        return httplib::Server::HandlerResponse::Unhandled;
      Error(r, 401, "unauthorized", "unknown or revoked token");
      return httplib::Server::HandlerResponse::Handled;
    });
    server_.Get("/api/v1/toggles", [](const httplib::Request&, httplib::Response& r) {
      r.set_content(json::array({Rollout(), Users()}).dump(), "application/json");
    });
    server_.Get("/api/v1/toggles/missing", [](const httplib::Request&, httplib::Response& r) {
      Error(r, 404, "not_found", "toggle 'missing' not found");
    });
    server_.Get("/api/v1/toggles/t1", [](const httplib::Request&, httplib::Response& r) {
      r.set_header("ETag", "\"5\"");
      r.set_content(Rollout().dump(), "application/json");
    });
    server_.Get("/api/v1/toggles/t2", [](const httplib::Request&, httplib::Response& r) {
      r.set_content(Users().dump(), "application/json");
    });
    server_.Put(R"(/api/v1/toggles/(t1|t2)/environments/production)",
                [this](const httplib::Request& q, httplib::Response& r) {
      std::lock_guard<std::mutex> lock(mu_);
      put_body_ = json::parse(q.body);
      if_match_ = q.get_header_value("If-Match");
      r.set_content(ToggleJson(q.matches[1], put_body_["strategies"].dump(), 6).dump(), "application/json");
    });
    server_.Post("/api/v1/toggles", [](const httplib::Request&, httplib::Response& r) {
      Error(r, 409, "conflict", "toggle 't1' exists");
    });
    server_.Post("/api/v1/tokens", [](const httplib::Request& q, httplib::Response& r) {
      json body = json::parse(q.body);
      body["secret"] = "ladle_0123";
      r.status = 201;
      r.set_content(body.dump(), "application/json");
    });
    server_.Get("/api/v1/events", [](const httplib::Request&, httplib::Response& r) {
      Error(r, 500, "internal", "database is locked");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(1ms);
  }
  ~FakeServer() {
    server_.stop();
    thread_.join();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  json put_body() {
    std::lock_guard<std::mutex> lock(mu_);
    return put_body_;
  }
  std::string if_match() {
    std::lock_guard<std::mutex> lock(mu_);
    return if_match_;
  }

  static json Rollout() {
    return ToggleJson("t1", R"([{"rollout": {"percent": 10, "stickiness": "userId", "group": "g"}}])", 5);
  }
  static json Users() { return ToggleJson("t2", R"([{"users": ["alice"]}])", 4); }

 private:
  static void Error(httplib::Response& r, int status, const std::string& code, const std::string& message) {
    r.status = status;
    r.set_content(json({{"error", code}, {"message", message}}).dump(), "application/json");
  }

  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  json put_body_;
  std::string if_match_;
};

class TogglesCliFakeTest : public TogglesCliTest {
 protected:
  Result Toggles(std::vector<std::string> args, const std::vector<std::string>& env = {}) {
    args.insert(args.begin(), "toggles");
    args.insert(args.end(), {"--server", server_.url()});
    return Ladle(args, env);
  }
  FakeServer server_;
};

TEST_F(TogglesCliFakeTest, ANotFoundIsExit2WithTheServersMessage) {
  WriteAdminToken(kAdmin);
  Result r = Toggles({"get", "missing"});
  EXPECT_EQ(2, r.code) << r.all();
  EXPECT_EQ("ladle: toggle 'missing' not found (404)\n", r.err);
  EXPECT_EQ("", r.out);
}

TEST_F(TogglesCliFakeTest, AConflictIsExit2) {
  WriteAdminToken(kAdmin);
  Result r = Toggles({"create", "t1"});
  EXPECT_EQ(2, r.code) << r.all();
  EXPECT_EQ("ladle: toggle 't1' exists (409)\n", r.err);
}

TEST_F(TogglesCliFakeTest, AServerErrorIsExit3) {
  WriteAdminToken(kAdmin);
  Result r = Toggles({"history"});
  EXPECT_EQ(3, r.code) << r.all();
  EXPECT_EQ("ladle: toggle server error: database is locked (500)\n", r.err);
}

TEST_F(TogglesCliFakeTest, ListsATableWithTheTokenFromTheDataDir) {
  WriteAdminToken(std::string(kAdmin) + "\n");
  Result r = Toggles({"list"});
  EXPECT_EQ(0, r.code) << r.all();
  EXPECT_EQ("KEY  TYPE     ENABLED(production)  STRATEGIES             REVISION  DESCRIPTION\n"
            "t1   release  on                   rollout 10% by userId  5         d\n"
            "t2   release  on                   users alice            4         d\n",
            r.out);
}

TEST_F(TogglesCliFakeTest, JsonPrintsTheServersJson) {
  Result r = Toggles({"list", "--json"}, {std::string("LADLE_TOKEN=") + kAdmin});
  ASSERT_EQ(0, r.code) << r.all();
  EXPECT_EQ(json::array({FakeServer::Rollout(), FakeServer::Users()}), json::parse(r.out));
}

TEST_F(TogglesCliFakeTest, TheTokenFlagWinsAndA401SaysWhereTheTokenCameFrom) {
  WriteAdminToken(kAdmin);
  Result r = Toggles({"list", "--token", "wrong"}, {std::string("LADLE_TOKEN=") + kAdmin});
  EXPECT_EQ(2, r.code) << r.all();
  EXPECT_EQ("ladle: unknown or revoked token (401); the token came from --token\n", r.err);
  r = Toggles({"list"}, {"LADLE_TOKEN=wrong"});
  EXPECT_EQ("ladle: unknown or revoked token (401); the token came from LADLE_TOKEN\n", r.err);
}

TEST_F(TogglesCliFakeTest, NoTokenIsExit2AndSaysWhereToGetOne) {
  Result r = Toggles({"list"});
  EXPECT_EQ(2, r.code) << r.all();
  EXPECT_EQ("ladle: no API token: pass --token, set LADLE_TOKEN, or start the server on this data dir "
            "(`ladle toggles serve` or `ladle serve`), which writes " + (data_ / "admin.token").string() + "\n",
            r.err);
}

TEST_F(TogglesCliFakeTest, RolloutKeepsALoneRolloutsStickinessAndUsesIfMatch) {
  WriteAdminToken(kAdmin);
  Result r = Toggles({"rollout", "t1", "40%"});
  ASSERT_EQ(0, r.code) << r.all();
  EXPECT_EQ("t1: rollout 40% in production, enabled (revision 6)\n", r.out);
  EXPECT_EQ(json::parse(R"({"enabled": true, "strategies": [
              {"rollout": {"percent": 40, "stickiness": "userId", "group": "g"}}]})"),
            server_.put_body());
  EXPECT_EQ("\"5\"", server_.if_match());  // the ETag of the GET
}

TEST_F(TogglesCliFakeTest, RolloutReplacesOtherStrategies) {
  WriteAdminToken(kAdmin);
  Result r = Toggles({"rollout", "t2", "10"});
  ASSERT_EQ(0, r.code) << r.all();
  EXPECT_EQ(json::parse(R"({"enabled": true, "strategies": [{"rollout": {"percent": 10}}]})"),
            server_.put_body());
  EXPECT_EQ("4", server_.if_match());  // no ETag header: the toggle's revision
}

TEST_F(TogglesCliFakeTest, TokenCreatePrintsOnlyTheSecretOnStdout) {
  WriteAdminToken(kAdmin);
  Result r = Toggles({"token", "create", "ci", "--role", "client", "-e", "staging"});
  ASSERT_EQ(0, r.code) << r.all();
  EXPECT_EQ("ladle_0123\n", r.out);
  EXPECT_EQ("created client token 'ci' for staging; its secret is shown this once:\n", r.err);
}

TEST_F(TogglesCliFakeTest, UsageErrorsAreExit2) {
  WriteAdminToken(kAdmin);
  EXPECT_EQ(2, Toggles({"rollout", "t1", "101"}).code);
  EXPECT_EQ(2, Toggles({"create", "bad key"}).code);
  EXPECT_EQ(2, Toggles({"create", "k", "--type", "feature"}).code);
  EXPECT_EQ(2, Toggles({"token", "create", "x"}).code);  // --role is required
  EXPECT_EQ(2, Ladle({"toggles"}).code);
}

TEST_F(TogglesCliTest, NoServerIsExit3AndSaysWhatToDo) {
  WriteAdminToken(kAdmin);
  std::string url = "http://127.0.0.1:" + std::to_string(FreePort());
  Result r = Ladle({"toggles", "list"}, {"LADLE_SERVER=" + url});
  EXPECT_EQ(3, r.code) << r.all();
  EXPECT_EQ("ladle: no ladle server at " + url +
                " (start one with `ladle toggles serve` or `ladle serve`, or set --server/LADLE_SERVER)\n",
            r.err);
}

// --- against the real server (`ladle toggles serve`) ---

class TogglesServeTest : public TogglesCliTest {
 protected:
  void SetUp() override {
    TogglesCliTest::SetUp();
    if (Ladle({"toggles", "serve", "--help"}).code != 0)
      GTEST_SKIP() << "`ladle toggles serve` does not exist yet";
    port_ = FreePort();
    url_ = "http://127.0.0.1:" + std::to_string(port_);
    pid_ = fork();
    if (pid_ == 0) {
      unsetenv("LADLE_ADMIN_TOKEN");
      std::string listen = "127.0.0.1:" + std::to_string(port_);
      execl(LADLE_BINARY, LADLE_BINARY, "--data", data_.c_str(), "toggles", "serve", "--listen", listen.c_str(),
            static_cast<char*>(nullptr));
      _exit(127);
    }
    ASSERT_TRUE(WaitUntilUp()) << "the server did not come up at " << url_;
  }
  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status;
      waitpid(pid_, &status, 0);
    }
    TogglesCliTest::TearDown();
  }

  bool WaitUntilUp() {
    toggles::ServerUrl url;
    if (!toggles::ParseServerUrl(url_, &url).ok()) return false;
    toggles::HttpClient http(url, {});
    for (int i = 0; i < 200; ++i) {
      toggles::ClientResponse r;
      if (fs::exists(data_ / "admin.token") && http.Send("GET", "/healthz", "", {}, &r).ok() && r.status == 200)
        return true;
      std::this_thread::sleep_for(25ms);
    }
    return false;
  }
  Result Toggles(std::vector<std::string> args) {
    args.insert(args.begin(), "toggles");
    args.insert(args.end(), {"--server", url_});
    return Ladle(args);
  }
  json Get(const std::string& key) {
    Result r = Toggles({"get", key, "--json"});
    EXPECT_EQ(0, r.code) << r.all();
    return json::parse(r.out, nullptr, false);
  }

  int port_ = 0;
  pid_t pid_ = -1;
  std::string url_;
};

TEST_F(TogglesServeTest, ToggleLifecycle) {
  Result r = Toggles({"create", "demo", "--type", "experiment", "--description", "A demo"});
  ASSERT_EQ(0, r.code) << r.all();
  EXPECT_EQ(2, Toggles({"create", "demo"}).code);  // 409
  r = Toggles({"list"});
  ASSERT_EQ(0, r.code) << r.all();
  EXPECT_NE(std::string::npos, r.out.find("demo")) << r.out;
  EXPECT_FALSE(Get("demo")["environments"]["production"]["enabled"].get<bool>());

  ASSERT_EQ(0, Toggles({"on", "demo"}).code);
  EXPECT_TRUE(Get("demo")["environments"]["production"]["enabled"].get<bool>());
  ASSERT_EQ(0, Toggles({"rollout", "demo", "25"}).code);
  EXPECT_EQ(25, Get("demo")["environments"]["production"]["strategies"][0]["rollout"]["percent"]);
  ASSERT_EQ(0, Toggles({"rollout", "demo", "50"}).code);
  EXPECT_EQ(50, Get("demo")["environments"]["production"]["strategies"][0]["rollout"]["percent"]);
  ASSERT_EQ(0, Toggles({"on", "demo", "-e", "staging"}).code);
  EXPECT_TRUE(Get("demo")["environments"]["staging"]["enabled"].get<bool>());
  ASSERT_EQ(0, Toggles({"off", "demo"}).code);
  EXPECT_FALSE(Get("demo")["environments"]["production"]["enabled"].get<bool>());

  r = Toggles({"history", "demo"});
  ASSERT_EQ(0, r.code) << r.all();
  EXPECT_NE(std::string::npos, r.out.find("create")) << r.out;
  EXPECT_EQ(0, Toggles({"history"}).code);

  ASSERT_EQ(0, Toggles({"delete", "demo"}).code);
  r = Toggles({"get", "demo"});
  EXPECT_EQ(2, r.code) << r.all();
  EXPECT_EQ(2, Toggles({"on", "demo"}).code);
}

// The server answers the audit trail a page at a time (at most 1,000 events):
// `ladle toggles history` follows `next` and shows all of it.
TEST_F(TogglesServeTest, HistoryFollowsEveryPage) {
  std::string admin;
  std::ifstream(data_ / "admin.token") >> admin;
  httplib::Client c("127.0.0.1", port_);
  c.set_bearer_token_auth(admin);
  for (int i = 0; i < 1010; ++i) {
    auto res = c.Post("/api/v1/toggles", json{{"key", "t" + std::to_string(i)}}.dump(), "application/json");
    ASSERT_TRUE(res && res->status == 201) << i << ": " << (res ? res->body : "no answer");
  }
  Result r = Toggles({"history", "--json"});
  ASSERT_EQ(0, r.code) << r.err;
  json out = json::parse(r.out, nullptr, false);
  ASSERT_TRUE(out.is_object()) << r.out.substr(0, 300);
  ASSERT_EQ(1010u, out["events"].size());
  EXPECT_EQ("t0", out["events"][0]["key"]);
  EXPECT_EQ("t1009", out["events"][1009]["key"]);
  r = Toggles({"history"});
  ASSERT_EQ(0, r.code) << r.err;
  EXPECT_NE(std::string::npos, r.out.find(" t1009 ")) << "the table ends with the newest event";
}

TEST_F(TogglesServeTest, Tokens) {
  Result r = Toggles({"token", "create", "ci", "--role", "client", "-e", "staging"});
  ASSERT_EQ(0, r.code) << r.all();
  std::string secret = r.out.substr(0, r.out.find('\n'));
  EXPECT_EQ(0u, secret.find("ladle_")) << secret;
  r = Toggles({"token", "list"});
  ASSERT_EQ(0, r.code) << r.all();
  EXPECT_NE(std::string::npos, r.out.find("ci")) << r.out;
  // A client token reads but does not write.
  EXPECT_EQ(0, Ladle({"toggles", "list", "-e", "staging", "--server", url_, "--token", secret}).code);
  EXPECT_EQ(2, Ladle({"toggles", "create", "x", "--server", url_, "--token", secret}).code);  // 403
  ASSERT_EQ(0, Toggles({"token", "revoke", "ci"}).code);
  EXPECT_EQ(2, Toggles({"token", "revoke", "ci"}).code);
  EXPECT_EQ(2, Ladle({"toggles", "list", "--server", url_, "--token", secret}).code);  // 401
}

TEST_F(TogglesServeTest, ClientLibraryFollowsTheServer) {
  ASSERT_EQ(0, Toggles({"create", "live"}).code);
  Result r = Toggles({"token", "create", "app", "--role", "client"});  // bound to production
  ASSERT_EQ(0, r.code) << r.all();
  toggles::ClientOptions o;
  o.server = url_;
  o.token = r.out.substr(0, r.out.find('\n'));
  o.cache_file = (root_ / "cache.json").string();
  o.poll_interval = 60s;  // only the event stream can bring changes in time
  std::unique_ptr<toggles::Client> client;
  ASSERT_TRUE(toggles::Client::Start(o, &client).ok());
  ASSERT_TRUE(client->last_error().ok()) << client->last_error().ToString();
  toggles::EvaluationContext ctx;
  ctx.SetTargetingKey("alice");
  EXPECT_FALSE(client->IsEnabled("live", ctx));
  for (int i = 0; i < 200 && !client->streaming(); ++i) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(client->streaming());

  ASSERT_EQ(0, Toggles({"on", "live"}).code);
  bool on = false;
  for (int i = 0; i < 200 && !on; ++i, std::this_thread::sleep_for(10ms)) on = client->IsEnabled("live", ctx);
  EXPECT_TRUE(on) << "no change within 2 s of the flip";

  // A client token reads only its own environment.
  toggles::ClientOptions staging = o;
  staging.environment = "staging";
  staging.cache_file.clear();
  std::unique_ptr<toggles::Client> other;
  ASSERT_TRUE(toggles::Client::Start(staging, &other).ok());
  EXPECT_EQ(Code::kPermission, other->last_error().code()) << other->last_error().ToString();
  other.reset();

  // The server goes away; a new client starts from the cache.
  kill(pid_, SIGTERM);
  int status;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  client.reset();
  ASSERT_TRUE(toggles::Client::Start(o, &client).ok());
  EXPECT_EQ(toggles::ToggleSource::kCache, client->source());
  EXPECT_TRUE(client->IsEnabled("live", ctx));
}

}  // namespace
}  // namespace ladle::runner
