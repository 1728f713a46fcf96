// End-to-end tests of the triggers beyond branch pushes (docs/server.md
// "Triggers"): tag pushes, pull requests, POST /api/v1/runs and `ladle
// trigger`, re-runs, schedules. The real `ladle serve` on a loopback port, a
// real git repository, the local backend.
#include <gtest/gtest.h>

#include <signal.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "env/subprocess.h"
#include "tests/test_util.h"
#include "tests/e2e/hook_util.h"

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

constexpr const char* kToken = "e2e-admin-token-0123456789abcdef";
constexpr const char* kHookSecret = "e2e-hook-secret";

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string Signature(const std::string& body) {
  return ladle::testing::GithubSignature(kHookSecret, body);
}

struct Result {
  int code = -1;
  std::string out, err;
  std::string all() const { return out + err; }
};

class TriggersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = ladle::testing::MakeTempDir("/tmp/ladle-triggers-e2e-XXXXXX");
    repo_ = root_ / "repo";
    data_ = root_ / "data";
    fs::create_directories(repo_);
    port_ = ladle::testing::FreePort();
    Git({"init", "-q", "-b", "main"});
  }
  void TearDown() override {
    Stop(SIGKILL);
    if (HasFailure())
      std::fprintf(stderr, "---- server log ----\n%s\n",
                   ladle::testing::ReadFile(root_ / "server.log").c_str());
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  Result Exec(const std::vector<std::string>& argv, const fs::path& cwd) {
    ladle::env::CommandResult r;
    ladle::Status s = ladle::env::RunCommand(argv, cwd.string(), &r, std::chrono::seconds(60));
    EXPECT_TRUE(s.ok()) << s.ToString();
    return {r.exit_code, r.out, r.err};
  }
  Result Git(std::vector<std::string> args) {
    std::vector<std::string> argv = {"git", "-c", "user.name=e2e", "-c", "user.email=e2e@ladle.invalid",
                                     "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"};
    argv.insert(argv.end(), args.begin(), args.end());
    Result r = Exec(argv, repo_);
    EXPECT_EQ(0, r.code) << "git " << args.front() << ": " << r.all();
    return r;
  }
  std::string Commit(const std::string& pipeline, const std::string& message) {
    std::ofstream(repo_ / "ladle.yml") << pipeline;
    Git({"add", "-A"});
    Git({"commit", "-q", "--allow-empty", "-m", message});
    return Trim(Git({"rev-parse", "HEAD"}).out);
  }

  void Start(const std::string& extra_env_name = "", const std::string& extra_env_value = "") {
    std::ostringstream c;
    c << "listen: 127.0.0.1:" << port_ << "\n"
      << "data: " << data_.string() << "\n"
      << "backend: local\n"
      << "external_url: http://ci.example.test\n"
      << "secrets_file: secrets.env\n"
      // Scoped to the repository only: a pull request's run would match it.
      << "secrets:\n  - {name: DEPLOY_KEY, repositories: [app]}\n"
      << "repositories:\n  - name: app\n    url: " << repo_.string()
      << "\n    webhook_secret_env: HOOK_SECRET\n";
    std::ofstream(root_ / "server.yml") << c.str();
    std::ofstream(root_ / "secrets.env") << "DEPLOY_KEY=scoped-secret-value\nFREE=free-value\n";
    fs::permissions(root_ / "secrets.env", fs::perms::owner_read | fs::perms::owner_write);
    ladle::env::LaunchSpec spec;
    spec.exe = "/bin/sh";
    std::string log = (root_ / "server.log").string();
    spec.args = {"-c", "exec \"$0\" \"$@\" >>'" + log + "' 2>&1", LADLE_BINARY, "--data",
                 data_.string(), "serve", "--config", (root_ / "server.yml").string()};
    spec.env = {{"LADLE_ADMIN_TOKEN", kToken}, {"HOOK_SECRET", kHookSecret},
                {"NO_COLOR", "1"}};
    if (!extra_env_name.empty()) spec.env.emplace_back(extra_env_name, extra_env_value);
    spec.cwd = root_.string();
    ladle::Status s = ladle::env::Subprocess::Start(spec, &server_);
    ASSERT_TRUE(s.ok()) << s.ToString();
    httplib::Client client("127.0.0.1", port_);
    client.set_connection_timeout(1, 0);
    for (auto deadline = Clock::now() + 20s; Clock::now() < deadline;) {
      if (auto r = client.Get("/healthz"); r && r->status == 200) return;
      if (server_->Pump(nullptr, Clock::now() + 50ms)) FAIL() << "ladle serve exited";
    }
    FAIL() << "ladle serve did not answer /healthz";
  }
  void Stop(int signal) {
    if (!server_) return;
    ::kill(server_->pid(), signal);
    server_->Wait();
    server_.reset();
  }

  Result Ladle(std::vector<std::string> args) {
    std::vector<std::string> argv = {"env", "NO_COLOR=1",
                                     "LADLE_SERVER=http://127.0.0.1:" + std::to_string(port_),
                                     std::string("LADLE_TOKEN=") + kToken, LADLE_BINARY, "--data",
                                     data_.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return Exec(argv, root_);
  }

  httplib::Client Http() {
    httplib::Client c("127.0.0.1", port_);
    c.set_bearer_token_auth(kToken);
    c.set_read_timeout(30, 0);
    return c;
  }
  json Get(const std::string& path) {
    auto r = Http().Get(path.c_str());
    if (!r) return json();
    return json::parse(r->body, nullptr, false);
  }
  httplib::Result Hook(const std::string& event, const std::string& body) {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(30, 0);
    return c.Post("/api/v1/hooks/push/app",
                  {{"X-GitHub-Event", event},
                   {"X-GitHub-Delivery", "d-" + std::to_string(++deliveries_)},
                   {"X-Hub-Signature-256", Signature(body)}},
                  body, "application/json");
  }

  bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
    for (auto deadline = Clock::now() + timeout; Clock::now() < deadline;) {
      if (done()) return true;
      std::this_thread::sleep_for(50ms);
    }
    return done();
  }
  json WaitRun(int64_t id, const std::string& status) {
    json run;
    EXPECT_TRUE(WaitFor(
        [&] {
          run = Get("/api/v1/runs/" + std::to_string(id));
          return run.is_object() && run.value("status", "") == status;
        },
        60s))
        << run.dump(1);
    return run;
  }
  // The runs with this trigger, newest first.
  std::vector<json> RunsBy(const std::string& trigger) {
    std::vector<json> out;
    json j = Get("/api/v1/runs?limit=100");
    if (j.is_object())
      for (const json& r : j["runs"])
        if (r["trigger"] == trigger) out.push_back(r);
    return out;
  }
  static json StageOf(const json& run, const std::string& name) {
    for (const json& s : run["stages"])
      if (s["name"] == name) return s;
    return json();
  }

  fs::path root_, repo_, data_;
  int port_ = 0;
  int deliveries_ = 0;
  std::unique_ptr<ladle::env::Subprocess> server_;
};

const char* kPipeline = R"Y(name: app
secrets: [DEPLOY_KEY, FREE]
on:
  push: {branches: [main], tags: ['v*']}
  pull_request: {branches: [main]}
stages:
  - name: test
    steps:
      - name: unit
        run: echo "secret=${DEPLOY_KEY:-none}|${FREE:-none}"
  - name: deploy
    environment: staging
    steps:
      - name: ship
        run: echo shipped
)Y";

TEST_F(TriggersTest, TagPushRunsWhenOnPushTagsMatchesAndIsRefusedOtherwise) {
  const std::string commit = Commit(kPipeline, "pipeline");
  Git({"tag", "-a", "v1.0", "-m", "release 1.0"});
  Git({"tag", "rc-1"});
  const std::string tag_object = Trim(Git({"rev-parse", "refs/tags/v1.0"}).out);
  Start();
  // GitHub sends the tag's own object id for an annotated tag.
  auto r = Hook("push", json{{"ref", "refs/tags/v1.0"}, {"before", std::string(40, '0')},
                             {"after", tag_object}}.dump());
  ASSERT_TRUE(r);
  ASSERT_EQ(202, r->status) << r->body;
  json body = json::parse(r->body);
  ASSERT_EQ(1u, body["runs"].size()) << r->body;
  json run = WaitRun(body["runs"][0].get<int64_t>(), "success");
  EXPECT_EQ(commit, run["commit"]);
  EXPECT_EQ("refs/tags/v1.0", run["ref"]);
  EXPECT_EQ("push", run["trigger"]);

  r = Hook("push", json{{"ref", "refs/tags/rc-1"}, {"before", std::string(40, '0')},
                        {"after", commit}}.dump());
  ASSERT_TRUE(r);
  EXPECT_EQ(202, r->status);
  body = json::parse(r->body);
  EXPECT_EQ(0u, body["runs"].size());
  EXPECT_EQ("tag rc-1 does not match the pipeline's on.push.tags (v*)", body["message"]);

  // A tag that does not point where the sender says is not taken.
  r = Hook("push", json{{"ref", "refs/tags/v1.0"}, {"before", std::string(40, '0')},
                        {"after", std::string(40, 'a')}}.dump());
  ASSERT_TRUE(r);
  EXPECT_EQ(409, r->status) << r->body;
}

TEST_F(TriggersTest, PullRequestRunsItsHeadAndNeverDeploysNorGetsScopedSecrets) {
  Commit(kPipeline, "pipeline");
  Git({"checkout", "-q", "-b", "feature"});
  const std::string head = Commit(kPipeline, "feature work");
  Git({"checkout", "-q", "main"});
  Git({"update-ref", "refs/pull/5/head", head});  // what GitHub keeps for pull request 5
  Start();
  const std::string payload =
      json{{"action", "opened"},
           {"number", 5},
           {"pull_request",
            {{"head", {{"ref", "feature"}, {"sha", head}, {"repo", {{"full_name", "e2e/app"}}}}},
             {"base", {{"ref", "main"}, {"repo", {{"full_name", "e2e/app"}}}}}}}}
          .dump();
  auto r = Hook("pull_request", payload);
  ASSERT_TRUE(r);
  ASSERT_EQ(202, r->status) << r->body;
  json body = json::parse(r->body);
  ASSERT_EQ(1u, body["runs"].size()) << r->body;
  json run = WaitRun(body["runs"][0].get<int64_t>(), "success");
  EXPECT_EQ(head, run["commit"]);
  EXPECT_EQ("pull_request", run["trigger"]);
  EXPECT_EQ("refs/pull/5/head", run["ref"]);
  json deploy = StageOf(run, "deploy");
  EXPECT_EQ("skipped", deploy["status"]);
  EXPECT_EQ("a pull request's run never deploys (refs/pull/5/head)", deploy["message"]);
  Result log = Ladle({"logs", std::to_string(run["id"].get<int64_t>()), "test/unit"});
  // The unscoped secret arrives (masked in the log), the scoped one does not.
  EXPECT_NE(std::string::npos, log.out.find("secret=none|***")) << log.all();
  json deployments = Get("/api/v1/deployments");
  for (const json& d : deployments["deployments"]) EXPECT_NE(run["id"], d["run_id"]) << d.dump();
  // The same head again starts nothing.
  r = Hook("pull_request", payload);
  ASSERT_TRUE(r);
  EXPECT_EQ(0u, json::parse(r->body)["runs"].size()) << r->body;
}

TEST_F(TriggersTest, TriggerAndRerunByApiAndCli) {
  const std::string commit = Commit(kPipeline, "pipeline");
  Start();
  auto r = Http().Post("/api/v1/runs", R"({"repo": "app", "branch": "main"})", "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(201, r->status) << r->body;
  json created = json::parse(r->body);
  const int64_t first = created["run_id"].get<int64_t>();
  EXPECT_EQ("api", created["trigger"]);
  EXPECT_EQ(commit, created["commit"]);
  WaitRun(first, "success");

  Result cli = Ladle({"trigger", "app", "main"});
  ASSERT_EQ(0, cli.code) << cli.all();
  EXPECT_NE(std::string::npos, cli.out.find("queued as run")) << cli.out;
  cli = Ladle({"--json", "trigger", "app", commit});
  ASSERT_EQ(0, cli.code) << cli.all();
  EXPECT_EQ(commit, json::parse(cli.out)["commit"]);
  cli = Ladle({"trigger", "app", "nope"});
  EXPECT_EQ(2, cli.code) << cli.all();
  EXPECT_NE(std::string::npos, cli.err.find("branch nope does not exist")) << cli.err;
  cli = Ladle({"trigger", "other", "main"});
  EXPECT_EQ(2, cli.code) << cli.all();

  r = Http().Post(("/api/v1/runs/" + std::to_string(first) + "/rerun").c_str(), "",
                  "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(201, r->status) << r->body;
  json rerun = json::parse(r->body);
  EXPECT_EQ("rerun", rerun["trigger"]);
  EXPECT_EQ(first, rerun["rerun_of"].get<int64_t>());
  EXPECT_EQ(commit, rerun["commit"]);
  const int64_t second = rerun["run_id"].get<int64_t>();
  WaitRun(second, "success");
  cli = Ladle({"rerun", std::to_string(second)});
  ASSERT_EQ(0, cli.code) << cli.all();
  Result show = Ladle({"show", std::to_string(second)});
  EXPECT_NE(std::string::npos,
            show.out.find("trigger rerun (refs/heads/main), re-run of run " + std::to_string(first)))
      << show.out;
  // A client without the admin token may not.
  httplib::Client anonymous("127.0.0.1", port_);
  r = anonymous.Post("/api/v1/runs", R"({"repo": "app", "branch": "main"})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(401, r->status);
}

TEST_F(TriggersTest, ScheduleFiresAndIsNotFiredTwiceAcrossARestart) {
  Commit(R"Y(name: app
on:
  push: {branches: [main]}
  schedule:
    - {cron: '* * * * *', branch: main}
stages:
  - name: test
    steps:
      - name: unit
        run: "true"
)Y",
         "pipeline");
  // The clock starts 30 s before a whole minute and runs 10x: the minute
  // comes after about 3 s, the next one 6 s later.
  const int64_t start = 1800000000 - 1800000000 % 60 + 30;
  const std::string clock = std::to_string(start) + ":10";
  Start("LADLE_SCHEDULE_CLOCK", clock);
  ASSERT_TRUE(WaitFor([&] { return RunsBy("schedule").size() == 1; }, 20s))
      << Get("/api/v1/runs").dump(1);
  json run = RunsBy("schedule")[0];
  EXPECT_EQ("main", run["branch"]);
  EXPECT_EQ("refs/heads/main", run["ref"]);
  Stop(SIGTERM);
  // The same clock again: the minute it fired for comes again, and is not
  // fired twice.
  Start("LADLE_SCHEDULE_CLOCK", clock);
  std::this_thread::sleep_for(4500ms);
  EXPECT_EQ(1u, RunsBy("schedule").size()) << Get("/api/v1/runs").dump(1);
  // The next minute does fire.
  EXPECT_TRUE(WaitFor([&] { return RunsBy("schedule").size() == 2; }, 20s));
}

}  // namespace
