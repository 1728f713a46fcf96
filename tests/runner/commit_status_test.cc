// Commit statuses against a fake forge on 127.0.0.1 that checks each call
// as the forges document it (docs/server.md "Commit statuses").
#include "runner/serve/commit_status.h"

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

namespace ladle::runner {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

const char kSha[] = "3f2a9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b";

// A forge: records every call, answers from a script (200-like by default).
class FakeForge {
 public:
  struct Call {
    std::string method, path, authorization, private_token, content_type, accept, api_version;
    json body;
  };
  FakeForge() {
    server_.Post(".*", [this](const httplib::Request& req, httplib::Response& res) {
      Call c{req.method,
             req.target.substr(0, req.target.find('?')),  // as sent, not decoded
             req.get_header_value("Authorization"),
             req.get_header_value("PRIVATE-TOKEN"),
             req.get_header_value("Content-Type"),
             req.get_header_value("Accept"),
             req.get_header_value("X-GitHub-Api-Version"),
             json::parse(req.body, nullptr, false)};
      int status = 201;
      std::chrono::milliseconds delay{0};
      {
        std::lock_guard<std::mutex> lock(mu_);
        calls_.push_back(c);
        if (!script_.empty()) {
          status = script_.front().first;
          delay = script_.front().second;
          script_.erase(script_.begin());
        }
      }
      if (delay.count() > 0) std::this_thread::sleep_for(delay);
      res.status = status;
      res.set_content(status == 201 ? R"({"id": 1})" : R"({"message": "boom"})",
                      "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(1ms);
  }
  ~FakeForge() {
    server_.stop();
    thread_.join();
  }
  std::string url(const std::string& prefix = "") const {
    return "http://127.0.0.1:" + std::to_string(port_) + prefix;
  }
  // The next answers: (HTTP status, delay before answering).
  void Script(std::vector<std::pair<int, std::chrono::milliseconds>> answers) {
    std::lock_guard<std::mutex> lock(mu_);
    script_ = std::move(answers);
  }
  std::vector<Call> calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::vector<Call> calls_;
  std::vector<std::pair<int, std::chrono::milliseconds>> script_;
};

CommitStatusConfig Config(const std::string& kind, const std::string& api,
                          const std::string& repo) {
  CommitStatusConfig c;
  c.kind = kind;
  c.api = api;
  c.token_env = "FORGE_TOKEN";
  c.repo = repo;
  return c;
}

// Results the poster reports: "STATUS final|retry".
struct Results {
  std::mutex mu;
  std::vector<std::string> seen;
  void Add(int status, bool final) {
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back(std::to_string(status) + (final ? " final" : " retry"));
  }
  std::vector<std::string> Get() {
    std::lock_guard<std::mutex> lock(mu);
    return seen;
  }
};

CommitStatusOptions FastOptions(Results* results) {
  CommitStatusOptions o;
  o.first_backoff = 20ms;
  o.max_backoff = 100ms;
  o.max_attempts = 4;
  o.connect_timeout = 1s;
  o.read_timeout = 300ms;
  o.on_result = [results](const ForgeRequest&, int status, const std::string&, bool final) {
    results->Add(status, final);
  };
  return o;
}

bool WaitFor(const std::function<bool()>& done) {
  for (auto end = std::chrono::steady_clock::now() + 10s; std::chrono::steady_clock::now() < end;) {
    if (done()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return done();
}

TEST(CommitStatusTest, GitHubCallAsDocumented) {
  FakeForge forge;
  Results results;
  CommitStatusPoster poster(FastOptions(&results));
  poster.Enqueue(BuildStatusRequest(Config("github", forge.url(), "acme/webshop"), "ghp_secret",
                                    kSha, kRunning, "https://ci.example.com/#/runs/12",
                                    "run 12 running"));
  ASSERT_TRUE(WaitFor([&] { return results.Get().size() == 1; }));
  auto calls = forge.calls();
  ASSERT_EQ(1u, calls.size());
  EXPECT_EQ("POST", calls[0].method);
  EXPECT_EQ(std::string("/repos/acme/webshop/statuses/") + kSha, calls[0].path);
  EXPECT_EQ("Bearer ghp_secret", calls[0].authorization);
  EXPECT_EQ("application/vnd.github+json", calls[0].accept);
  EXPECT_EQ("2022-11-28", calls[0].api_version);
  EXPECT_EQ("application/json", calls[0].content_type);
  EXPECT_EQ(json({{"state", "pending"},
                  {"target_url", "https://ci.example.com/#/runs/12"},
                  {"description", "run 12 running"},
                  {"context", "ladle"}}),
            calls[0].body);
  EXPECT_EQ(std::vector<std::string>{"201 final"}, results.Get());
}

TEST(CommitStatusTest, GitLabCallAsDocumented) {
  FakeForge forge;
  Results results;
  CommitStatusPoster poster(FastOptions(&results));
  CommitStatusConfig config = Config("gitlab", forge.url("/api/v4"), "group/webshop");
  config.context = "ladle/ci";
  poster.Enqueue(BuildStatusRequest(config, "glpat-secret", kSha, kFailed,
                                    "http://127.0.0.1:7707/#/runs/3", "run 3 failed"));
  ASSERT_TRUE(WaitFor([&] { return results.Get().size() == 1; }));
  auto calls = forge.calls();
  ASSERT_EQ(1u, calls.size());
  EXPECT_EQ(std::string("/api/v4/projects/group%2Fwebshop/statuses/") + kSha, calls[0].path);
  EXPECT_EQ("glpat-secret", calls[0].private_token);
  EXPECT_EQ("", calls[0].authorization);
  EXPECT_EQ(json({{"state", "failed"},
                  {"target_url", "http://127.0.0.1:7707/#/runs/3"},
                  {"description", "run 3 failed"},
                  {"name", "ladle/ci"}}),
            calls[0].body);
}

TEST(CommitStatusTest, GiteaCallAsDocumented) {
  FakeForge forge;
  Results results;
  CommitStatusPoster poster(FastOptions(&results));
  poster.Enqueue(BuildStatusRequest(Config("gitea", forge.url("/api/v1"), "acme/webshop"),
                                    "gitea-secret", kSha, kSuccess, "http://ci/#/runs/4",
                                    "run 4 success"));
  ASSERT_TRUE(WaitFor([&] { return results.Get().size() == 1; }));
  auto calls = forge.calls();
  ASSERT_EQ(1u, calls.size());
  EXPECT_EQ(std::string("/api/v1/repos/acme/webshop/statuses/") + kSha, calls[0].path);
  EXPECT_EQ("token gitea-secret", calls[0].authorization);
  EXPECT_EQ(json({{"state", "success"},
                  {"target_url", "http://ci/#/runs/4"},
                  {"description", "run 4 success"},
                  {"context", "ladle"}}),
            calls[0].body);
}

TEST(CommitStatusTest, StatesPerForge) {
  EXPECT_EQ("pending", ForgeState("github", kQueued));
  EXPECT_EQ("pending", ForgeState("github", kRunning));
  EXPECT_EQ("running", ForgeState("gitlab", kRunning));
  EXPECT_EQ("failure", ForgeState("github", kFailed));
  EXPECT_EQ("failure", ForgeState("gitea", kFailed));
  EXPECT_EQ("failed", ForgeState("gitlab", kFailed));
  EXPECT_EQ("error", ForgeState("github", kCancelled));
  EXPECT_EQ("canceled", ForgeState("gitlab", kCancelled));
  EXPECT_EQ("canceled", ForgeState("gitlab", kSuperseded));
  EXPECT_EQ("error", ForgeState("gitea", kInterrupted));
  EXPECT_EQ("pending", ForgeState("gitlab", kWaiting));
}

TEST(CommitStatusTest, A500IsTriedAgainUntilItIsTaken) {
  FakeForge forge;
  forge.Script({{500, 0ms}, {201, 0ms}});
  Results results;
  CommitStatusPoster poster(FastOptions(&results));
  poster.Enqueue(BuildStatusRequest(Config("github", forge.url(), "acme/webshop"), "t", kSha,
                                    kSuccess, "http://ci/#/runs/1", "run 1 success"));
  ASSERT_TRUE(WaitFor([&] { return results.Get().size() == 2; }));
  EXPECT_EQ((std::vector<std::string>{"500 retry", "201 final"}), results.Get());
  EXPECT_EQ(2u, forge.calls().size());
  EXPECT_EQ(0u, poster.pending());
}

TEST(CommitStatusTest, GivesUpAfterItsAttempts) {
  FakeForge forge;
  forge.Script({{500, 0ms}, {502, 0ms}, {500, 0ms}, {500, 0ms}, {500, 0ms}});
  Results results;
  CommitStatusPoster poster(FastOptions(&results));
  poster.Enqueue(BuildStatusRequest(Config("gitea", forge.url(), "a/b"), "t", kSha, kFailed,
                                    "http://ci/#/runs/1", "run 1 failed"));
  ASSERT_TRUE(WaitFor([&] { return !results.Get().empty() && results.Get().back() == "500 final"; }));
  EXPECT_EQ(4u, forge.calls().size());  // max_attempts
  EXPECT_EQ(0u, poster.pending());
}

TEST(CommitStatusTest, AForgeThatTimesOutDelaysNothingAndIsTriedAgain) {
  FakeForge forge;
  forge.Script({{201, 1500ms}, {201, 0ms}});  // the first answer comes after the read timeout
  Results results;
  CommitStatusPoster poster(FastOptions(&results));
  ForgeRequest request = BuildStatusRequest(Config("github", forge.url(), "acme/webshop"), "t",
                                            kSha, kRunning, "http://ci/#/runs/1", "run 1 running");
  poster.Enqueue(request);  // returns at once: the call is made on the poster's thread
  EXPECT_EQ(1u, poster.pending());
  EXPECT_TRUE(results.Get().empty());
  ASSERT_TRUE(WaitFor([&] { return results.Get().size() == 2; }));
  EXPECT_EQ((std::vector<std::string>{"0 retry", "201 final"}), results.Get());
}

TEST(CommitStatusTest, TheNewestStatusOfACommitWins) {
  FakeForge forge;
  forge.Script({{500, 0ms}, {201, 0ms}, {201, 0ms}});
  Results results;
  CommitStatusOptions options = FastOptions(&results);
  options.first_backoff = 300ms;  // the newer status arrives while the older waits
  CommitStatusPoster poster(options);
  CommitStatusConfig config = Config("github", forge.url(), "acme/webshop");
  poster.Enqueue(BuildStatusRequest(config, "t", kSha, kRunning, "u", "run 1 running"));
  ASSERT_TRUE(WaitFor([&] { return results.Get().size() == 1; }));  // 500, waits to try again
  poster.Enqueue(BuildStatusRequest(config, "t", kSha, kSuccess, "u", "run 1 success"));
  ASSERT_TRUE(WaitFor([&] { return poster.pending() == 0; }));
  std::this_thread::sleep_for(400ms);  // past the older one's back-off: it must not come back
  auto calls = forge.calls();
  ASSERT_EQ(2u, calls.size());
  EXPECT_EQ("pending", calls[0].body["state"]);
  EXPECT_EQ("success", calls[1].body["state"]);
}

}  // namespace
}  // namespace ladle::runner
