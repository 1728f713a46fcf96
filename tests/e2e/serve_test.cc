// End-to-end tests of `ladle serve` (docs/server.md): the real binary on a
// loopback port and a temp data dir, real git repositories made with git
// commands, the local backend, real HTTP (cpp-httplib). Triggers (push
// webhooks, polling, what was pushed while the server was down), the queue
// (supersede), deployments (one per environment at a time, rollback,
// approval), toggles sync and rollout stages, kill -9 and SIGTERM.
//
// The server is started through env::Subprocess, so its whole tree (steps
// that a kill -9 orphaned too) carries a marker and is killed at the end of
// every test. Every wait polls the API every 50 ms and has a deadline.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "env/subprocess.h"
#include "tests/node_util.h"
#include "tests/proc_util.h"
#include "tests/test_util.h"
#include "tests/e2e/hook_util.h"

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

constexpr const char* kToken = "e2e-admin-token-0123456789abcdef";
constexpr const char* kHookSecret = "e2e-hook-secret";

using ladle::testing::FreePort;
using ladle::testing::ReadFile;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  return out;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

void Replace(std::string* text, const std::string& from, const std::string& to) {
  for (size_t at = text->find(from); at != std::string::npos; at = text->find(from, at + to.size()))
    text->replace(at, from.size(), to);
}

using ladle::testing::GithubSignature;

// Pids of live processes (ours) whose environment holds `entry` ("K=V").
std::vector<pid_t> ProcessesWithEnv(const std::string& entry) {
  std::vector<pid_t> out;
  for (const auto& d : fs::directory_iterator("/proc")) {
    const std::string name = d.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string env = ladle::testing::ReadProcFile(d.path() / "environ");
    std::string stat = ladle::testing::ReadProcFile(d.path() / "stat");
    auto paren = stat.rfind(')');
    if (paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z') continue;
    for (size_t at = 0; at < env.size();) {
      size_t end = env.find('\0', at);
      if (end == std::string::npos) end = env.size();
      if (env.compare(at, end - at, entry) == 0) {
        out.push_back(std::stoi(name));
        break;
      }
      at = end + 1;
    }
  }
  return out;
}

std::string GithubPush(const std::string& branch, const std::string& before,
                       const std::string& after, bool deleted = false) {
  return json{{"ref", "refs/heads/" + branch},
              {"before", before},
              {"after", after},
              {"created", false},
              {"deleted", deleted},
              {"forced", false},
              {"repository", {{"name", "app"}, {"full_name", "e2e/app"}}},
              {"head_commit", deleted ? json() : json{{"id", after}}}}
      .dump();
}

std::string GitlabPush(const std::string& branch, const std::string& before, const std::string& after) {
  return json{{"object_kind", "push"},
              {"event_name", "push"},
              {"ref", "refs/heads/" + branch},
              {"before", before},
              {"after", after},
              {"checkout_sha", after},
              {"project", {{"name", "app"}}},
              {"total_commits_count", 1}}
      .dump();
}

struct Result {
  int code = -1;
  std::string out, err;
  std::string all() const { return out + err; }
};

struct ServerOptions {
  int workers = 2;
  std::string poll;           // "" = webhooks only
  bool secret = true;         // webhook_secret_env: HOOK_SECRET
  bool requeue = false;
  std::string extra;          // appended to server.yml (top-level keys)
};

class ServeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = ladle::testing::MakeTempDir("/tmp/ladle-serve-e2e-XXXXXX");
    repo_ = root_ / "repo";
    data_ = root_ / "data";
    out_ = root_ / "out";
    fs::create_directories(repo_);
    fs::create_directories(out_);
    port_ = FreePort();
    ASSERT_EQ(0, Git({"init", "-q", "-b", "main"}).code);
  }

  void TearDown() override {
    if (server_) {
      ::kill(server_->pid(), SIGKILL);
      server_->Wait();
    }
    // Each Subprocess ends what is left of its tree: steps that a kill -9
    // orphaned carry its marker too.
    server_.reset();
    dead_.clear();
    if (HasFailure()) std::fprintf(stderr, "---- server log ----\n%s\n", ReadFile(root_ / "server.log").c_str());
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  // ---- processes ----

  Result Exec(const std::vector<std::string>& argv, const fs::path& cwd) {
    ladle::env::CommandResult r;
    ladle::Status s = ladle::env::RunCommand(argv, cwd.string(), &r, std::chrono::seconds(60));
    EXPECT_TRUE(s.ok()) << s.ToString();
    return {r.exit_code, r.out, r.err};
  }

  Result Git(std::vector<std::string> args) {
    std::vector<std::string> argv = {"git", "-c", "user.name=ladle e2e", "-c",
                                     "user.email=e2e@ladle.invalid", "-c", "commit.gpgsign=false"};
    argv.insert(argv.end(), args.begin(), args.end());
    Result r = Exec(argv, repo_);
    EXPECT_EQ(0, r.code) << "git " << args.front() << ": " << r.all();
    return r;
  }

  // Writes `files` into the repository and commits everything; returns the
  // new commit.
  std::string Commit(const std::map<std::string, std::string>& files, const std::string& message) {
    for (const auto& [rel, text] : files) {
      fs::path p = repo_ / rel;
      fs::create_directories(p.parent_path());
      std::ofstream(p) << text;
    }
    Git({"add", "-A"});
    Git({"commit", "-q", "--allow-empty", "-m", message});
    return Trim(Git({"rev-parse", "HEAD"}).out);
  }

  // A pipeline file: @OUT@ becomes the test's output dir.
  std::string Pipeline(std::string text) {
    Replace(&text, "@OUT@", out_.string());
    return text;
  }

  void WriteConfig(const ServerOptions& o) {
    std::ostringstream c;
    c << "listen: 127.0.0.1:" << port_ << "\n"
      << "data: " << data_.string() << "\n"
      << "workers: " << o.workers << "\n"
      << "backend: local\n"
      << "requeue_interrupted: " << (o.requeue ? "true" : "false") << "\n"
      << "repositories:\n"
      << "  - name: app\n"
      << "    url: " << repo_.string() << "\n"
      << "    pipeline: ladle.yml\n";
    if (!o.poll.empty()) c << "    poll: " << o.poll << "\n";
    if (o.secret) c << "    webhook_secret_env: HOOK_SECRET\n";
    c << o.extra;
    std::ofstream(root_ / "server.yml") << c.str();
  }

  // Starts `ladle serve --config server.yml` and waits for /healthz.
  void Start(const ServerOptions& o) {
    WriteConfig(o);
    ladle::env::LaunchSpec spec;
    spec.exe = "/bin/sh";
    std::string log = (root_ / "server.log").string();
    spec.args = {"-c", "exec \"$0\" \"$@\" >>'" + log + "' 2>&1", LADLE_BINARY, "--data",
                 data_.string(), "serve", "--config", (root_ / "server.yml").string()};
    spec.env = {{"LADLE_ADMIN_TOKEN", kToken}, {"HOOK_SECRET", kHookSecret}, {"NO_COLOR", "1"}};
    spec.cwd = root_.string();
    ladle::Status s = ladle::env::Subprocess::Start(spec, &server_);
    ASSERT_TRUE(s.ok()) << s.ToString();
    httplib::Client c("127.0.0.1", port_);
    c.set_connection_timeout(1, 0);
    const auto deadline = Clock::now() + 20s;
    while (Clock::now() < deadline) {
      if (auto r = c.Get("/healthz"); r && r->status == 200) return;
      if (server_->Pump(nullptr, Clock::now() + 50ms)) {
        FAIL() << "ladle serve exited with " << server_->Wait().code << ": "
               << ReadFile(root_ / "server.log");
      }
    }
    FAIL() << "ladle serve did not answer /healthz within 20 s";
  }

  pid_t ServerPid() const { return server_ ? server_->pid() : -1; }

  // kill -9: the server dies, its steps are orphaned (kept until TearDown).
  void KillHard() {
    ASSERT_TRUE(server_);
    ::kill(server_->pid(), SIGKILL);
    EXPECT_EQ(SIGKILL, server_->Wait().signal);
    dead_.push_back(std::move(server_));
  }

  // `ladle --data DATA ARGS...` against the server, with the admin token.
  Result Ladle(std::vector<std::string> args) {
    std::vector<std::string> argv = {"env", "NO_COLOR=1",
                                     "LADLE_SERVER=http://127.0.0.1:" + std::to_string(port_),
                                     std::string("LADLE_TOKEN=") + kToken, LADLE_BINARY, "--data",
                                     data_.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return Exec(argv, root_);
  }

  // ---- HTTP ----

  httplib::Client Http() {
    httplib::Client c("127.0.0.1", port_);
    c.set_bearer_token_auth(kToken);
    c.set_connection_timeout(2, 0);
    c.set_read_timeout(10, 0);
    return c;
  }

  json Get(const std::string& path) {
    auto r = Http().Get(path.c_str());
    if (!r) {
      ADD_FAILURE() << "GET " << path << ": no answer";
      return json();
    }
    EXPECT_EQ(200, r->status) << "GET " << path << ": " << r->body;
    return json::parse(r->body, nullptr, false);
  }

  httplib::Result PostJson(const std::string& path, const std::string& body) {
    return Http().Post(path.c_str(), body, "application/json");
  }

  httplib::Result Hook(const std::string& body, httplib::Headers headers) {
    httplib::Client c("127.0.0.1", port_);  // webhooks carry no token
    c.set_read_timeout(30, 0);
    return c.Post("/api/v1/hooks/push/app", headers, body, "application/json");
  }

  // Each call is a new delivery unless `delivery` names one.
  httplib::Result GithubHook(const std::string& body, const std::string& secret = kHookSecret,
                             std::string delivery = "") {
    if (delivery.empty()) delivery = "e2e-" + std::to_string(++deliveries_);
    return Hook(body, {{"X-GitHub-Event", "push"},
                       {"X-GitHub-Delivery", delivery},
                       {"X-Hub-Signature-256", GithubSignature(secret, body)}});
  }

  // Sends a signed GitHub push of `commit` to `branch` and returns the one
  // run it queued (0 and a test failure otherwise).
  int64_t PushRun(const std::string& branch, const std::string& before, const std::string& commit) {
    auto r = GithubHook(GithubPush(branch, before, commit));
    if (!r) {
      ADD_FAILURE() << "push hook: no answer";
      return 0;
    }
    EXPECT_EQ(202, r->status) << r->body;
    json j = json::parse(r->body, nullptr, false);
    if (!j.is_object() || !j["runs"].is_array() || j["runs"].size() != 1) {
      ADD_FAILURE() << "push hook queued no single run: " << r->body;
      return 0;
    }
    return j["runs"][0].get<int64_t>();
  }

  // ---- waiting ----

  bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (done()) return true;
      std::this_thread::sleep_for(50ms);
    }
    return done();
  }

  json Run(int64_t id) { return Get("/api/v1/runs/" + std::to_string(id)); }

  json Runs() {
    json j = Get("/api/v1/runs?limit=100");
    return j.is_object() && j.contains("runs") ? j["runs"] : json::array();
  }

  // The newest run of `commit` (null when none).
  json RunOfCommit(const std::string& commit) {
    for (const json& r : Runs())
      if (r["commit"] == commit) return r;
    return json();
  }

  // Waits until run `id` has one of `statuses`; returns the run.
  json WaitRun(int64_t id, std::set<std::string> statuses, std::chrono::milliseconds timeout = 60s) {
    json run;
    bool ok = WaitFor(
        [&] {
          run = Run(id);
          return run.is_object() && statuses.count(run.value("status", ""));
        },
        timeout);
    EXPECT_TRUE(ok) << "run " << id << " did not reach the expected status; it is "
                    << (run.is_object() ? run.dump(1) : "missing");
    return run;
  }

  // Waits for a run of `commit` to exist; returns its id (0 on timeout).
  int64_t WaitRunOfCommit(const std::string& commit, std::chrono::milliseconds timeout = 30s) {
    int64_t id = 0;
    WaitFor(
        [&] {
          json r = RunOfCommit(commit);
          if (r.is_object()) id = r["id"].get<int64_t>();
          return id != 0;
        },
        timeout);
    EXPECT_NE(0, id) << "no run of commit " << commit << ": " << Runs().dump(1);
    return id;
  }

  bool WaitFile(const fs::path& p, std::chrono::milliseconds timeout = 30s) {
    bool ok = WaitFor([&] { return fs::exists(p); }, timeout);
    EXPECT_TRUE(ok) << p << " did not appear";
    return ok;
  }

  static json Stage(const json& run, const std::string& name) {
    for (const json& s : run["stages"])
      if (s["name"] == name) return s;
    return json();
  }
  static json StepOf(const json& run, const std::string& stage, const std::string& step) {
    const json st = Stage(run, stage);
    if (st.is_object())
      for (const json& s : st["steps"])
        if (s["name"] == step) return s;
    return json();
  }

  // The production environment of a toggle (null when it has none).
  json ToggleEnv(const std::string& key, const std::string& env = "production") {
    json t = Get("/api/v1/toggles/" + key);
    if (!t.is_object() || !t.contains("environments") || !t["environments"].contains(env)) return json();
    return t["environments"][env];
  }

  fs::path root_, repo_, data_, out_;
  int port_ = 0;
  std::atomic<int> deliveries_{0};
  std::unique_ptr<ladle::env::Subprocess> server_;
  std::vector<std::unique_ptr<ladle::env::Subprocess>> dead_;  // kill -9'd, kept for their orphans
};

const char* kQuickPipeline = R"Y(name: app
env: {OUT: "@OUT@"}
on:
  push: {branches: [main]}
stages:
  - name: build
    steps:
      - name: compile
        run: echo "$LADLE_COMMIT" >> "$OUT/built"
)Y";

// ---- triggers ----

TEST_F(ServeTest, ServePushWebhooksAreAuthenticated) {
  const std::string a = Commit({{"ladle.yml", Pipeline(kQuickPipeline)}}, "pipeline");
  Start({});
  // A webhook-only repository is listed once at start: its head gets a run.
  int64_t first = WaitRunOfCommit(a);
  EXPECT_EQ("start", WaitRun(first, {"success"})["trigger"]);

  // GitHub: a wrong signature (and a missing one) is 401 and queues nothing.
  const std::string b = Commit({{"b.txt", "b"}}, "b");
  const std::string body_b = GithubPush("main", a, b);
  auto r = GithubHook(body_b, "not-the-secret");
  ASSERT_TRUE(r);
  EXPECT_EQ(401, r->status) << r->body;
  r = Hook(body_b, {{"X-GitHub-Event", "push"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(401, r->status) << r->body;
  r = Hook(body_b, {{"X-GitHub-Event", "push"}, {"X-Hub-Signature-256", GithubSignature(kHookSecret, body_b + " ")}});
  ASSERT_TRUE(r);
  EXPECT_EQ(401, r->status) << "a signature of another body: " << r->body;
  EXPECT_TRUE(RunOfCommit(b).is_null()) << Runs().dump(1);

  // The right signature: 202 with the queued run, which builds that commit.
  r = GithubHook(body_b);
  ASSERT_TRUE(r);
  ASSERT_EQ(202, r->status) << r->body;
  json j = json::parse(r->body);
  ASSERT_EQ(1u, j["runs"].size()) << r->body;
  int64_t run_b = j["runs"][0];
  json run = WaitRun(run_b, {"success"});
  EXPECT_EQ(b, run["commit"]);
  EXPECT_EQ("main", run["branch"]);
  EXPECT_EQ("push", run["trigger"]);
  // The same delivery again starts nothing: a commit is run once.
  r = GithubHook(body_b);
  ASSERT_TRUE(r);
  EXPECT_EQ(202, r->status);
  EXPECT_EQ(0u, json::parse(r->body)["runs"].size()) << r->body;

  // GitLab: the secret itself in X-Gitlab-Token.
  const std::string c = Commit({{"c.txt", "c"}}, "c");
  const std::string body_c = GitlabPush("main", b, c);
  r = Hook(body_c, {{"X-Gitlab-Event", "Push Hook"}, {"X-Gitlab-Token", "wrong"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(401, r->status) << r->body;
  EXPECT_TRUE(RunOfCommit(c).is_null());
  r = Hook(body_c, {{"X-Gitlab-Event", "Push Hook"}, {"X-Gitlab-Token", kHookSecret}});
  ASSERT_TRUE(r);
  ASSERT_EQ(202, r->status) << r->body;
  j = json::parse(r->body);
  ASSERT_EQ(1u, j["runs"].size()) << r->body;
  run = WaitRun(j["runs"][0].get<int64_t>(), {"success"});
  EXPECT_EQ(c, run["commit"]);

  // A branch that no pipeline watches, and a branch deletion: 202, no runs.
  Git({"switch", "-q", "-c", "other"});
  const std::string d = Commit({{"d.txt", "d"}}, "d");
  Git({"switch", "-q", "main"});
  r = GithubHook(GithubPush("other", c, d));
  ASSERT_TRUE(r);
  EXPECT_EQ(202, r->status) << r->body;
  j = json::parse(r->body);
  EXPECT_EQ(0u, j["runs"].size()) << r->body;
  EXPECT_NE(std::string::npos, j.value("message", "").find("other")) << r->body;
  r = GithubHook(GithubPush("main", c, std::string(40, '0'), true));
  ASSERT_TRUE(r);
  EXPECT_EQ(202, r->status) << r->body;
  j = json::parse(r->body);
  EXPECT_EQ(0u, j["runs"].size()) << r->body;
  EXPECT_NE(std::string::npos, j.value("message", "").find("deleted")) << r->body;

  // A repository the server does not know.
  auto unknown = httplib::Client("127.0.0.1", port_)
                     .Post("/api/v1/hooks/push/nope",
                           {{"X-GitHub-Event", "push"}, {"X-Hub-Signature-256", GithubSignature(kHookSecret, body_b)}},
                           body_b, "application/json");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(404, unknown->status) << unknown->body;

  // Nothing else was queued: the runs are A, B and C.
  std::set<std::string> commits;
  for (const json& x : Runs()) commits.insert(x["commit"].get<std::string>());
  EXPECT_EQ((std::set<std::string>{a, b, c}), commits);
}

TEST_F(ServeTest, ServePollingFindsANewCommit) {
  const std::string a = Commit({{"ladle.yml", Pipeline(kQuickPipeline)}}, "pipeline");
  ServerOptions o;
  o.poll = "1s";
  o.secret = false;
  Start(o);
  WaitRun(WaitRunOfCommit(a), {"success"});
  const std::string b = Commit({{"b.txt", "b"}}, "b");
  int64_t id = WaitRunOfCommit(b, 20s);
  ASSERT_NE(0, id);
  json run = WaitRun(id, {"success"});
  EXPECT_EQ("poll", run["trigger"]);
  EXPECT_EQ((std::vector<std::string>{a, b}), Lines(ReadFile(out_ / "built")));
}

// docs/backends.md "Environment": what the server was started with (its
// webhook secret, its admin token) does not reach a local step; PATH does.
TEST_F(ServeTest, ServeLocalStepsGetOnlyTheBaseOfTheServersEnvironment) {
  const std::string a = Commit({{"ladle.yml", Pipeline(R"Y(name: app
stages:
  - name: build
    steps:
      - name: env
        run: |
          printf '%s|%s|%s\n' "${HOOK_SECRET-unset}" "${LADLE_ADMIN_TOKEN-unset}" \
            "$(command -v git >/dev/null && echo path)" > @OUT@/env
)Y")}},
                               "pipeline");
  ServerOptions o;
  o.poll = "1s";
  Start(o);
  EXPECT_EQ("success", WaitRun(WaitRunOfCommit(a), {"success", "failed"})["status"]);
  EXPECT_EQ("unset|unset|path\n", ReadFile(out_ / "env"));
}

// ---- the queue and deployments ----

TEST_F(ServeTest, ServeFailingTestGateStopsTheCommitBeforeStaging) {
  Commit({{"ladle.yml", Pipeline(R"Y(name: app
env: {OUT: "@OUT@"}
stages:
  - name: build
    steps:
      - {name: compile, run: echo built}
  - name: test
    gate: {min_tests: 1}
    steps:
      - name: unit
        run: |
          mkdir -p out
          printf '<testsuite name="u" tests="2" failures="1"><testcase name="ok"/><testcase name="bad"><failure message="boom"/></testcase></testsuite>' > out/unit.xml
        reports: {junit: "out/*.xml"}
  - name: staging
    environment: staging
    steps:
      - {name: deploy, run: touch "$OUT/staging-deployed"}
)Y")}},
         "pipeline");
  Start({});
  json run = WaitRun(WaitRunOfCommit(Trim(Git({"rev-parse", "HEAD"}).out)),
                     {"success", "failed", "cancelled", "interrupted"});
  EXPECT_EQ("failed", run["status"]);
  EXPECT_EQ("success", Stage(run, "build")["status"]);
  EXPECT_EQ("failed", Stage(run, "test")["status"]);
  EXPECT_EQ(1, Stage(run, "test")["tests"]["failed"]);
  EXPECT_EQ("success", StepOf(run, "test", "unit")["status"]) << "the step passed; the gate failed";
  EXPECT_EQ("skipped", Stage(run, "staging")["status"]);
  EXPECT_EQ("skipped", StepOf(run, "staging", "deploy")["status"]);
  EXPECT_FALSE(fs::exists(out_ / "staging-deployed")) << "staging's deploy step ran";
  EXPECT_EQ(0u, Get("/api/v1/deployments?environment=staging")["deployments"].size());
}

TEST_F(ServeTest, ServeNewerCommitSupersedesTheQueuedOne) {
  const std::string a = Commit({{"ladle.yml", Pipeline(R"Y(name: app
env: {OUT: "@OUT@"}
stages:
  - name: build
    steps:
      - name: work
        run: |
          echo "$LADLE_COMMIT" >> "$OUT/ran"
          i=0
          while [ ! -f "$OUT/release" ]; do i=$((i+1)); [ $i -lt 1200 ] || exit 1; sleep 0.05; done
)Y")}},
                               "pipeline");
  ServerOptions o;
  o.workers = 1;
  Start(o);
  int64_t run_a = WaitRunOfCommit(a);
  ASSERT_TRUE(WaitFile(out_ / "ran"));  // the only worker is busy with A
  const std::string b = Commit({{"b.txt", "b"}}, "b");
  int64_t run_b = PushRun("main", a, b);
  const std::string c = Commit({{"c.txt", "c"}}, "c");
  int64_t run_c = PushRun("main", b, c);
  ASSERT_NE(0, run_b);
  ASSERT_NE(0, run_c);
  json rb = Run(run_b);
  EXPECT_EQ("superseded", rb["status"]) << rb.dump(1);
  EXPECT_NE(std::string::npos, rb.value("message", "").find("run " + std::to_string(run_c)))
      << "the message names the newer run: " << rb.dump(1);
  EXPECT_EQ("queued", Run(run_c)["status"]);

  std::ofstream(out_ / "release") << "go";
  EXPECT_EQ("success", WaitRun(run_a, {"success", "failed"})["status"]);
  EXPECT_EQ("success", WaitRun(run_c, {"success", "failed"})["status"]);
  rb = Run(run_b);
  EXPECT_EQ("superseded", rb["status"]);
  EXPECT_TRUE(rb["started_at"].is_null()) << rb.dump(1);
  EXPECT_EQ((std::vector<std::string>{a, c}), Lines(ReadFile(out_ / "ran")))
      << "exactly one of the two quick commits ran";
}

// Regression: a run superseded while a worker was checking it out still ran
// (and its "superseded" turned into "success"), beside the newer run.
TEST_F(ServeTest, ServeSupersededRunNeverStartsEvenWhenAWorkerHadTakenIt) {
  std::string head = Commit({{"ladle.yml", Pipeline(R"Y(name: app
env: {OUT: "@OUT@"}
stages:
  - name: build
    steps:
      - {name: work, run: echo "$LADLE_RUN" >> "$OUT/ran"}
)Y")}},
                            "pipeline");
  ServerOptions o;
  o.workers = 2;
  Start(o);
  WaitRun(WaitRunOfCommit(head), {"success"});
  std::vector<int64_t> ids;
  for (int round = 0; round < 4; ++round) {
    // B's push races C's commit: once C is the head, B's push is refused
    // (409, docs/server.md "Webhook trust"), and this round tests nothing.
    const std::string b = Commit({{"b.txt", std::to_string(round)}}, "b");
    int64_t rb = 0;
    std::thread older([&] {
      auto r = GithubHook(GithubPush("main", head, b));
      if (r && r->status == 202) {
        json j = json::parse(r->body, nullptr, false);
        if (j.is_object() && j["runs"].size() == 1) rb = j["runs"][0].get<int64_t>();
      } else {
        EXPECT_TRUE(r && r->status == 409) << (r ? r->body : "no answer");
      }
    });
    const std::string c = Commit({{"c.txt", std::to_string(round)}}, "c");
    int64_t rc = PushRun("main", b, c);
    older.join();
    ASSERT_NE(0, rc);
    if (rb != 0) ids.push_back(rb);
    ids.push_back(rc);
    head = c;
    for (int64_t id : {rb, rc})
      if (id != 0) WaitRun(id, {"success", "failed", "superseded"});
  }
  std::this_thread::sleep_for(300ms);
  std::set<std::string> ran;
  for (const std::string& id : Lines(ReadFile(out_ / "ran"))) ran.insert(id);
  const std::string log = ReadFile(root_ / "server.log");
  for (int64_t id : ids) {
    json run = Run(id);
    const bool did_run = ran.count(std::to_string(id)) > 0;
    const bool announced = log.find("run " + std::to_string(id) + " superseded by run") != std::string::npos;
    EXPECT_FALSE(announced && did_run) << "run " << id << " was superseded, yet it ran: " << run.dump(1);
    if (run["status"] == "superseded") {
      EXPECT_FALSE(did_run) << "run " << id << " is superseded, yet it ran: " << run.dump(1);
      EXPECT_TRUE(run["started_at"].is_null()) << run.dump(1);
    } else {
      EXPECT_EQ("success", run["status"]) << run.dump(1);
      EXPECT_TRUE(did_run) << run.dump(1);
    }
  }
}

TEST_F(ServeTest, ServeOneDeploymentPerEnvironmentAtATime) {
  Commit({{"ladle.yml", Pipeline(R"Y(name: app
env: {OUT: "@OUT@"}
on:
  push: {branches: [main, feature]}
stages:
  - name: build
    steps:
      - name: meet
        run: |
          # Both runs reach the deployment together.
          touch "$OUT/ready-$LADLE_BRANCH"
          i=0
          while [ ! -f "$OUT/ready-main" ] || [ ! -f "$OUT/ready-feature" ]; do
            i=$((i+1)); [ $i -lt 1200 ] || exit 1; sleep 0.05
          done
  - name: staging
    environment: staging
    steps:
      - name: deploy
        run: |
          echo "start $LADLE_BRANCH $(date +%s%N)" >> "$OUT/deploys"
          sleep 1
          echo "end $LADLE_BRANCH $(date +%s%N)" >> "$OUT/deploys"
)Y")}},
         "pipeline");
  Git({"switch", "-q", "-c", "feature"});
  const std::string f = Commit({{"feature.txt", "f"}}, "feature");
  Git({"switch", "-q", "main"});
  const std::string m = Trim(Git({"rev-parse", "HEAD"}).out);
  ServerOptions o;
  o.workers = 2;
  Start(o);
  int64_t run_m = WaitRunOfCommit(m);
  int64_t run_f = WaitRunOfCommit(f);
  EXPECT_EQ("success", WaitRun(run_m, {"success", "failed"})["status"]);
  EXPECT_EQ("success", WaitRun(run_f, {"success", "failed"})["status"]);

  std::map<std::string, std::pair<long long, long long>> spans;
  for (const std::string& line : Lines(ReadFile(out_ / "deploys"))) {
    std::istringstream in(line);
    std::string what, branch;
    long long t = 0;
    in >> what >> branch >> t;
    (what == "start" ? spans[branch].first : spans[branch].second) = t;
  }
  ASSERT_EQ(2u, spans.size()) << ReadFile(out_ / "deploys");
  auto [m_start, m_end] = spans["main"];
  auto [f_start, f_end] = spans["feature"];
  EXPECT_TRUE(m_end <= f_start || f_end <= m_start)
      << "two deployments to staging overlapped:\n" << ReadFile(out_ / "deploys");
  json deployments = Get("/api/v1/deployments?environment=staging")["deployments"];
  ASSERT_EQ(2u, deployments.size());
  for (const json& d : deployments) EXPECT_EQ("success", d["status"]);
}

// ---- rollback and approval ----

TEST_F(ServeTest, ServeRollbackRedeploysThePreviousCommit) {
  const std::string a = Commit({{"ladle.yml", Pipeline(R"Y(name: app
env: {OUT: "@OUT@"}
stages:
  - name: build
    steps:
      - {name: compile, run: echo "$LADLE_COMMIT" >> "$OUT/builds"}
  - name: production
    environment: production
    steps:
      - {name: deploy, run: echo "$LADLE_COMMIT" > "$OUT/deployed"}
    rollback:
      run: |
        echo "$LADLE_COMMIT" > "$OUT/deployed"
        echo "$LADLE_COMMIT" >> "$OUT/rollbacks"
)Y")}},
                               "pipeline");
  Start({});
  int64_t run_a = WaitRunOfCommit(a);
  ASSERT_EQ("success", WaitRun(run_a, {"success", "failed"})["status"]);
  const std::string b = Commit({{"b.txt", "b"}}, "b");
  int64_t run_b = PushRun("main", a, b);
  ASSERT_EQ("success", WaitRun(run_b, {"success", "failed"})["status"]);
  EXPECT_EQ(b, Trim(ReadFile(out_ / "deployed")));

  // `ladle rollback production`: the previous good commit, A.
  Result r = Ladle({"--json", "rollback", "production"});
  ASSERT_EQ(0, r.code) << r.all();
  json queued = json::parse(r.out, nullptr, false);
  ASSERT_TRUE(queued.is_object() && queued["run_id"].is_number_integer()) << r.out;
  int64_t rb1 = queued["run_id"];
  json run = WaitRun(rb1, {"success", "failed", "cancelled"});
  EXPECT_EQ("success", run["status"]);
  EXPECT_EQ(a, run["commit"]);
  EXPECT_EQ("rollback", run["trigger"]);
  EXPECT_EQ("skipped", Stage(run, "build")["status"]) << "a rollback runs the environment's stage only";
  EXPECT_EQ("success", StepOf(run, "production", "rollback")["status"]) << run.dump(1);
  EXPECT_EQ(a, Trim(ReadFile(out_ / "deployed")));
  EXPECT_EQ((std::vector<std::string>{a}), Lines(ReadFile(out_ / "rollbacks")));
  EXPECT_EQ((std::vector<std::string>{a, b}), Lines(ReadFile(out_ / "builds")));

  r = Ladle({"--json", "deployments"});
  ASSERT_EQ(0, r.code) << r.all();
  json list = json::parse(r.out, nullptr, false)["deployments"];
  ASSERT_EQ(3u, list.size()) << r.out;
  EXPECT_EQ(rb1, list[0]["run_id"]);
  EXPECT_EQ(a, list[0]["commit"]);
  EXPECT_EQ(true, list[0]["rollback"]);
  EXPECT_EQ("success", list[0]["status"]);
  EXPECT_EQ("production", list[0]["environment"]);
  EXPECT_EQ(false, list[1]["rollback"]);
  EXPECT_EQ(run_b, list[1]["run_id"]);

  // The API, to a named run: B again.
  auto h = PostJson("/api/v1/environments/production/rollback", json{{"to_run", run_b}}.dump());
  ASSERT_TRUE(h);
  ASSERT_EQ(202, h->status) << h->body;
  int64_t rb2 = json::parse(h->body)["run_id"];
  run = WaitRun(rb2, {"success", "failed", "cancelled"});
  EXPECT_EQ("success", run["status"]);
  EXPECT_EQ(b, run["commit"]);
  EXPECT_EQ(b, Trim(ReadFile(out_ / "deployed")));
  json d = Get("/api/v1/deployments?environment=production")["deployments"];
  ASSERT_FALSE(d.empty());
  EXPECT_EQ(rb2, d[0]["run_id"]);
  EXPECT_EQ(true, d[0]["rollback"]);

  // The API without a body: the previous good commit before B, A.
  h = PostJson("/api/v1/environments/production/rollback", "");
  ASSERT_TRUE(h);
  ASSERT_EQ(202, h->status) << h->body;
  run = WaitRun(json::parse(h->body)["run_id"].get<int64_t>(), {"success", "failed", "cancelled"});
  EXPECT_EQ("success", run["status"]);
  EXPECT_EQ(a, run["commit"]);
  EXPECT_EQ(a, Trim(ReadFile(out_ / "deployed")));

  // Nothing to roll back to: 404, exit 2.
  h = PostJson("/api/v1/environments/nowhere/rollback", "{}");
  ASSERT_TRUE(h);
  EXPECT_EQ(404, h->status) << h->body;
  EXPECT_EQ(2, Ladle({"rollback", "nowhere"}).code);
}

// A build, then a production stage that waits for a manual approval; both
// record $LADLE_RUN.
const char* kApprovalPipeline = R"Y(name: app
env: {OUT: "@OUT@"}
stages:
  - name: build
    steps:
      - {name: compile, run: echo "$LADLE_RUN" >> "$OUT/builds"}
  - name: production
    environment: production
    approval: manual
    steps:
      - {name: deploy, run: echo "$LADLE_RUN" > "$OUT/deployed"}
)Y";

TEST_F(ServeTest, ServeManualApprovalResumesTheSameRun) {
  const std::string a = Commit({{"ladle.yml", Pipeline(kApprovalPipeline)}}, "pipeline");
  Start({});
  int64_t id = WaitRunOfCommit(a);
  json run = WaitRun(id, {"waiting", "success", "failed"});
  ASSERT_EQ("waiting", run["status"]) << run.dump(1);
  EXPECT_EQ("success", Stage(run, "build")["status"]);
  EXPECT_EQ("waiting", Stage(run, "production")["status"]);
  EXPECT_FALSE(fs::exists(out_ / "deployed"));
  // Still waiting a moment later: nothing but an approval releases it.
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ("waiting", Run(id)["status"]);

  const std::string sid = std::to_string(id);
  Result r = Ladle({"approve", sid, "build"});
  EXPECT_EQ(2, r.code) << "build is not waiting: " << r.all();
  r = Ladle({"approve", sid, "nonexistent"});
  EXPECT_EQ(2, r.code) << r.all();
  r = Ladle({"approve", sid, "production"});
  ASSERT_EQ(0, r.code) << r.all();
  run = WaitRun(id, {"success", "failed", "waiting", "cancelled"});
  EXPECT_EQ("success", run["status"]) << run.dump(1);
  EXPECT_EQ("success", Stage(run, "production")["status"]);
  EXPECT_EQ("success", StepOf(run, "production", "deploy")["status"]);
  EXPECT_EQ(sid, Trim(ReadFile(out_ / "deployed"))) << "the same run deployed";
  EXPECT_EQ((std::vector<std::string>{sid}), Lines(ReadFile(out_ / "builds"))) << "build ran once";
  EXPECT_EQ(1u, Runs().size());

  // No longer waiting: 409, exit 2.
  auto h = PostJson("/api/v1/runs/" + sid + "/stages/production/approve", "");
  ASSERT_TRUE(h);
  EXPECT_EQ(409, h->status) << h->body;
  EXPECT_EQ(2, Ladle({"approve", sid, "production"}).code);
}

// A stage waiting for approval runs nothing: restarting the server (an
// upgrade) must not lose it.
TEST_F(ServeTest, ServeApprovalSurvivesARestart) {
  const std::string a = Commit({{"ladle.yml", Pipeline(kApprovalPipeline)}}, "pipeline");
  Start({});
  int64_t id = WaitRunOfCommit(a);
  ASSERT_EQ("waiting", WaitRun(id, {"waiting", "success", "failed"})["status"]);
  const pid_t pid = ServerPid();
  ::kill(pid, SIGTERM);
  ASSERT_TRUE(WaitFor([&] { return !ladle::testing::StillRunning(pid); }, 15s));
  EXPECT_EQ(0, server_->Wait().code);
  server_.reset();
  Start({});
  json run = Run(id);
  EXPECT_EQ("waiting", run["status"]) << run.dump(1);
  Result r = Ladle({"approve", std::to_string(id), "production"});
  ASSERT_EQ(0, r.code) << r.all();
  run = WaitRun(id, {"success", "failed", "waiting", "cancelled", "interrupted"});
  EXPECT_EQ("success", run["status"]) << run.dump(1);
  EXPECT_EQ(std::to_string(id), Trim(ReadFile(out_ / "deployed")));
  EXPECT_EQ(1u, Lines(ReadFile(out_ / "builds")).size());
}

// ---- toggles ----

const char* kTogglesPipeline = R"Y(name: app
env: {OUT: "@OUT@"}
stages:
  - name: production
    environment: production
    toggles: toggles.yml
    steps:
      - {name: deploy, run: echo deployed}
)Y";

TEST_F(ServeTest, ServeTogglesSyncCreatesOffAndNeverSwitches) {
  // No pipeline yet: the toggle is made on before any run.
  const std::string a = Commit({{"README", "app\n"}}, "init");
  Start({});
  auto h = PostJson("/api/v1/toggles", R"({"key":"existing","type":"release"})");
  ASSERT_TRUE(h);
  ASSERT_EQ(201, h->status) << h->body;
  h = PostJson("/api/v1/toggles/existing/environments/production/on", "");
  ASSERT_TRUE(h);
  ASSERT_EQ(200, h->status) << h->body;
  EXPECT_EQ(true, ToggleEnv("existing")["enabled"]);

  const std::string b = Commit({{"ladle.yml", Pipeline(kTogglesPipeline)},
                                {"toggles.yml", R"Y(- key: existing
  type: release
  description: Was here before
- key: new-feature
  type: release
  description: Ships dark
)Y"}},
                               "pipeline and toggles");
  int64_t id = PushRun("main", a, b);
  ASSERT_NE(0, id);
  json run = WaitRun(id, {"success", "failed"});
  EXPECT_EQ("success", run["status"]) << run.dump(1);

  EXPECT_EQ(true, ToggleEnv("existing")["enabled"]) << "a sync never switches a toggle";
  json t = Get("/api/v1/toggles/new-feature");
  ASSERT_TRUE(t.is_object());
  EXPECT_EQ("Ships dark", t["description"]);
  json prod = ToggleEnv("new-feature");
  EXPECT_TRUE(prod.is_null() || prod["enabled"] == false) << t.dump(1);
  // OFREP agrees: off in production.
  auto e = Http().Post("/ofrep/v1/evaluate/flags/new-feature", R"({"context":{"targetingKey":"u1"}})",
                       "application/json");
  ASSERT_TRUE(e);
  EXPECT_EQ(false, json::parse(e->body)["value"]) << e->body;

  // The audit trail names the run.
  json events = Get("/api/v1/toggles/new-feature/history")["events"];
  ASSERT_FALSE(events.empty());
  bool named = false;
  for (const json& ev : events) {
    EXPECT_NE("enable", ev["action"]) << ev.dump();
    if (ev["note"].is_string() && ev["note"].get<std::string>().find("run " + std::to_string(id)) != std::string::npos)
      named = true;
  }
  EXPECT_TRUE(named) << events.dump(1);
  const json history = Get("/api/v1/toggles/existing/history");  // kept: the loop reads into it
  for (const json& ev : history["events"]) {
    if (ev["actor"] == "admin") continue;
    EXPECT_NE("enable", ev["action"]) << ev.dump();
    EXPECT_NE("disable", ev["action"]) << ev.dump();
  }
}

TEST_F(ServeTest, ServeRolloutTurnsTheToggleOffWhenTheCheckFails) {
  const std::string a = Commit({{"ladle.yml", Pipeline(R"Y(name: app
env: {OUT: "@OUT@"}
stages:
  - name: production
    environment: production
    toggles: toggles.yml
    steps:
      - {name: deploy, run: echo deployed}
  - name: release
    rollout:
      toggle: new-checkout
      environment: production
      percent: [10, 50, 100]
      interval: 100ms
      check:
        run: |
          echo "checking at $LADLE_STEP" >> "$OUT/checks"
          test "$LADLE_STEP" != check-50
)Y")},
                                {"toggles.yml", "- key: new-checkout\n  type: release\n"}},
                               "pipeline");
  Start({});
  int64_t id = WaitRunOfCommit(a);
  json run = WaitRun(id, {"success", "failed", "cancelled"});
  EXPECT_EQ("failed", run["status"]) << run.dump(1);
  EXPECT_EQ("success", Stage(run, "production")["status"]);
  EXPECT_EQ("failed", Stage(run, "release")["status"]);
  EXPECT_EQ("success", StepOf(run, "release", "check-10")["status"]) << run.dump(1);
  EXPECT_EQ("failed", StepOf(run, "release", "check-50")["status"]);
  EXPECT_EQ("skipped", StepOf(run, "release", "check-100")["status"]);
  EXPECT_EQ(2u, Lines(ReadFile(out_ / "checks")).size());

  EXPECT_EQ(false, ToggleEnv("new-checkout")["enabled"]);
  json events = Get("/api/v1/toggles/new-checkout/history")["events"];
  ASSERT_FALSE(events.empty());
  const json& last = events.back();
  EXPECT_EQ("disable", last["action"]) << events.dump(1);
  const std::string note = last["note"].is_string() ? last["note"].get<std::string>() : "";
  EXPECT_NE(std::string::npos, note.find("50%")) << note;
  EXPECT_NE(std::string::npos, note.find("run " + std::to_string(id))) << note;
  bool raised = false;
  for (const json& ev : events) raised |= ev["after"].dump().find("50") != std::string::npos;
  EXPECT_TRUE(raised) << "the trail shows the raise to 50%: " << events.dump(1);
}

// ---- crashes and stops ----

const char* kLongPipeline = R"Y(name: app
env: {OUT: "@OUT@"}
on:
  push: {branches: [main, hotfix]}
stages:
  - name: build
    steps:
      - name: long
        run: |
          echo "$LADLE_COMMIT" >> "$OUT/starts"
          # The first attempt on main takes long; a second one is quick.
          if [ "$LADLE_BRANCH" = main ] && [ "$(grep -c "$LADLE_COMMIT" "$OUT/starts")" = 1 ]; then
            sleep 120
          fi
          echo "$LADLE_COMMIT" >> "$OUT/finished"
)Y";

TEST_F(ServeTest, ServeKill9RequeuesTheInterruptedRunAndFindsWhatWasPushedMeanwhile) {
  const std::string a = Commit({{"ladle.yml", Pipeline(kLongPipeline)}}, "pipeline");
  ServerOptions o;
  o.requeue = true;  // webhook-only: no poll
  Start(o);
  int64_t id = WaitRunOfCommit(a);
  ASSERT_TRUE(WaitFile(out_ / "starts"));
  EXPECT_EQ("running", Run(id)["status"]);
  KillHard();

  // Pushed while the server is down (another branch: a newer commit of main
  // would supersede the requeued run).
  Git({"switch", "-q", "-c", "hotfix"});
  const std::string h = Commit({{"fix.txt", "fix"}}, "hotfix");
  Git({"switch", "-q", "main"});

  Start(o);
  // (interrupted for a moment at the restart, then queued again)
  json run = WaitRun(id, {"success", "failed", "cancelled"});
  EXPECT_EQ("success", run["status"]) << run.dump(1);
  EXPECT_EQ("requeue", run["trigger"]);
  EXPECT_NE(std::string::npos,
            ReadFile(root_ / "server.log")
                .find("run " + std::to_string(id) + " was left running by a ladle that is gone: marked interrupted, queued again"))
      << "first interrupted, then queued again";
  int64_t hid = WaitRunOfCommit(h);
  json hrun = WaitRun(hid, {"success", "failed"});
  EXPECT_EQ("success", hrun["status"]);
  EXPECT_EQ("start", hrun["trigger"]);
  EXPECT_EQ("hotfix", hrun["branch"]);
  std::vector<std::string> starts = Lines(ReadFile(out_ / "starts"));
  EXPECT_EQ(2, std::count(starts.begin(), starts.end(), a));
  // The first attempt's processes, orphaned by the kill -9, were ended at the
  // restart: they must not go on beside the second attempt.
  const std::string workspace = "LADLE_WORKSPACE=" + (data_ / "workspaces" / std::to_string(id)).string();
  std::vector<pid_t> left;
  WaitFor([&] { return (left = ProcessesWithEnv(workspace)).empty(); }, 5s);
  EXPECT_TRUE(left.empty()) << left.size() << " process(es) of run " << id
                            << "'s first attempt still run after the restart";
}

TEST_F(ServeTest, ServeKill9WithoutRequeueLeavesTheRunInterrupted) {
  const std::string a = Commit({{"ladle.yml", Pipeline(kLongPipeline)}}, "pipeline");
  ServerOptions o;
  o.requeue = false;
  Start(o);
  int64_t id = WaitRunOfCommit(a);
  ASSERT_TRUE(WaitFile(out_ / "starts"));
  KillHard();
  Start(o);
  json run = WaitRun(id, {"interrupted", "success", "failed", "queued"}, 20s);
  EXPECT_EQ("interrupted", run["status"]) << run.dump(1);
  EXPECT_EQ("interrupted", StepOf(run, "build", "long")["status"]) << run.dump(1);
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ("interrupted", Run(id)["status"]);
  EXPECT_EQ(1u, Lines(ReadFile(out_ / "starts")).size());
  EXPECT_EQ(1u, Runs().size());
  const std::string workspace = "LADLE_WORKSPACE=" + (data_ / "workspaces" / std::to_string(id)).string();
  std::vector<pid_t> left;
  WaitFor([&] { return (left = ProcessesWithEnv(workspace)).empty(); }, 5s);
  EXPECT_TRUE(left.empty()) << left.size() << " process(es) of interrupted run " << id << " still run";
}

TEST_F(ServeTest, ServeSigtermDrainsRunningRunsWithinTheGrace) {
  const std::string a = Commit({{"ladle.yml", Pipeline(R"Y(name: app
env: {OUT: "@OUT@"}
stages:
  - name: build
    steps:
      - name: polite
        run: |
          touch "$OUT/polite"
          sleep 120
      - name: stubborn
        run: |
          trap '' TERM
          touch "$OUT/stubborn"
          sleep 120
)Y")}},
                               "pipeline");
  Start({});
  int64_t id = WaitRunOfCommit(a);
  ASSERT_TRUE(WaitFile(out_ / "polite"));
  ASSERT_TRUE(WaitFile(out_ / "stubborn"));
  const auto start = Clock::now();
  const pid_t pid = ServerPid();
  ::kill(pid, SIGTERM);
  // The stubborn step ignores TERM: KILL after its grace (5 s). (Not Pump:
  // it would end the leftovers itself.)
  bool exited = WaitFor([&] { return !ladle::testing::StillRunning(pid); }, 15s);
  const auto took = Clock::now() - start;
  ASSERT_TRUE(exited) << "ladle serve still runs 15 s after SIGTERM";
  const std::string workspace = "LADLE_WORKSPACE=" + (data_ / "workspaces" / std::to_string(id)).string();
  EXPECT_TRUE(ProcessesWithEnv(workspace).empty()) << "the server left its steps running";
  ladle::env::ExitStatus status = server_->Wait();
  server_.reset();
  EXPECT_EQ(0, status.signal);
  EXPECT_EQ(0, status.code);
  EXPECT_LT(took, 12s) << "a step's grace is 5 s";
  EXPECT_NE(std::string::npos, ReadFile(root_ / "server.log").find("stopped"));

  Result r = Ladle({"--json", "show", std::to_string(id)});
  ASSERT_EQ(0, r.code) << r.all();
  json run = json::parse(r.out, nullptr, false);
  EXPECT_EQ("interrupted", run["status"]) << r.out;
  EXPECT_NE(std::string::npos, run.value("message", "").find("signal 15")) << r.out;
}

// A deploy whose step leaves processes that neither the process group nor
// the marker finds: a `setsid env -i` daemon, and one that cleared
// LADLE_WORKSPACE. Each deploy notes whether such processes of an earlier
// deploy were still there when it started.
// Ends, by id, the processes a test's steps recorded (one pid per line), so a
// failing test leaves nothing behind and touches nothing else.
void KillRecordedPids(const fs::path& file) {
  std::ifstream in(file);
  for (long pid; in >> pid;)
    if (pid > 1) ::kill(static_cast<pid_t>(pid), SIGKILL);
}

const char* kLeakyDeployPipeline = R"Y(name: app
env: {OUT: "@OUT@"}
stages:
  - name: production
    environment: production
    steps:
      - name: deploy
        run: |
          # (the numbers are computed: this script's own text must not match)
          if pgrep -f 'sleep 202[12]' >/dev/null; then echo "$LADLE_RUN" >> "$OUT/overlap"; fi
          n=2021
          setsid env -i sh -c "exec sleep $n" >/dev/null 2>&1 &
          echo $! >> "$OUT/pids"
          (unset LADLE_WORKSPACE; exec sleep $((n + 1))) &
          echo $! >> "$OUT/pids"
          sleep 0.5
          echo "$LADLE_RUN" >> "$OUT/starts"
          [ -f "$OUT/quick" ] || sleep 120
)Y";

// Regression (issue 10): after `kill -9` of ladle serve, a deploy's processes
// ran on beside the next deploy of the same environment.
TEST_F(ServeTest, ServeKill9EndsTheDeploysProcessesBeforeTheNextDeploy) {
  const std::string a = Commit({{"ladle.yml", Pipeline(kLeakyDeployPipeline)}}, "pipeline");
  ServerOptions o;
  Start(o);
  int64_t id = WaitRunOfCommit(a);
  ASSERT_TRUE(WaitFile(out_ / "starts"));
  KillHard();
  ASSERT_EQ(0, Exec({"pgrep", "-f", "sleep 202[12]"}, root_).code) << "the kill -9 left the deploy's processes";

  // The next deploy (a commit pushed while the server was down) is quick.
  std::ofstream(out_ / "quick") << "";
  const std::string b = Commit({{"next.txt", "b"}}, "next");
  Start(o);
  int64_t next = WaitRunOfCommit(b);
  ASSERT_NE(id, next);
  json run = WaitRun(next, {"success", "failed", "cancelled"});
  EXPECT_EQ("success", run["status"]) << run.dump(1);
  EXPECT_FALSE(fs::exists(out_ / "overlap")) << "the next deploy started beside the dead one's processes: "
                                             << ReadFile(out_ / "overlap");
  EXPECT_NE(0, Exec({"pgrep", "-f", "sleep 202[12]"}, root_).code) << "a deploy's process outlived its run";
  EXPECT_NE(std::string::npos, ReadFile(root_ / "server.log").find("run " + std::to_string(id) + ": ended "))
      << "the restart says what it ended";
  KillRecordedPids(out_ / "pids");
}

// Issue 10: a stop by SIGTERM records the deployment interrupted, like the run.
TEST_F(ServeTest, ServeSigtermRecordsTheDeploymentInterrupted) {
  const std::string a = Commit({{"ladle.yml", Pipeline(kLeakyDeployPipeline)}}, "pipeline");
  Start({});
  int64_t id = WaitRunOfCommit(a);
  ASSERT_TRUE(WaitFile(out_ / "starts"));
  const pid_t pid = ServerPid();
  ::kill(pid, SIGTERM);
  ASSERT_TRUE(WaitFor([&] { return !ladle::testing::StillRunning(pid); }, 15s)) << "ladle serve still runs 15 s after SIGTERM";
  server_->Wait();
  server_.reset();
  Result r = Ladle({"--json", "show", std::to_string(id)});
  ASSERT_EQ(0, r.code) << r.all();
  json run = json::parse(r.out, nullptr, false);
  EXPECT_EQ("interrupted", run["status"]) << r.out;
  ASSERT_TRUE(run["deployment"].is_object()) << r.out;
  EXPECT_EQ("interrupted", run["deployment"]["status"]) << r.out;
  EXPECT_NE(0, Exec({"pgrep", "-f", "sleep 202[12]"}, root_).code) << "the stop left the deploy's processes";
  KillRecordedPids(out_ / "pids");
}

// ---- the web UI ----

// GET / and its files need no token and are locked to this origin.
TEST_F(ServeTest, ServeWebUiIsServedWithoutATokenAndLockedToItsOrigin) {
  Start({});
  httplib::Client c("127.0.0.1", port_);
  auto page = c.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(200, page->status);
  EXPECT_EQ("text/html; charset=utf-8", page->get_header_value("Content-Type"));
  EXPECT_NE(std::string::npos, page->body.find("<script src=\"/ui/app.js\" defer></script>"));
  EXPECT_NE(std::string::npos, page->get_header_value("Content-Security-Policy").find("default-src 'none'"));
  EXPECT_EQ("nosniff", page->get_header_value("X-Content-Type-Options"));
  for (const char* file : {"/ui/app.js", "/ui/app.css"}) {
    auto r = c.Get(file);
    ASSERT_TRUE(r) << file;
    EXPECT_EQ(200, r->status) << file;
    const std::string etag = r->get_header_value("ETag");
    ASSERT_FALSE(etag.empty()) << file;
    auto again = c.Get(file, {{"If-None-Match", etag}});
    ASSERT_TRUE(again) << file;
    EXPECT_EQ(304, again->status) << file;
    EXPECT_EQ("", again->body) << file;
  }
  EXPECT_EQ("text/javascript; charset=utf-8", c.Get("/ui/app.js")->get_header_value("Content-Type"));
  EXPECT_EQ("text/css; charset=utf-8", c.Get("/ui/app.css")->get_header_value("Content-Type"));
  EXPECT_EQ(404, c.Get("/ui/missing.js")->status);
  // The data behind the page still needs a token.
  EXPECT_EQ(401, c.Get("/api/v1/runs")->status);
}

// The UI in a real browser (Debian's chromium driven by playwright-core):
// a person without a token is asked for one, pastes it, opens the run, reads
// a step's log, approves the waiting stage, and sees the run finish without
// reloading; then the deployments.
TEST_F(ServeTest, ServeWebUiInABrowserApprovesAWaitingRun) {
  namespace t = ladle::testing;
  // playwright-core, in tests/web/node_modules (scripts/install-deps.sh --test).
  const std::string missing = t::NodeTestMissing(fs::path(LADLE_SOURCE_DIR) / "tests/web", true);
  if (!missing.empty()) {
    if (t::InCi()) FAIL() << missing;
    GTEST_SKIP() << missing;
  }

  const std::string a = Commit({{"ladle.yml", Pipeline(R"Y(name: app
env: {OUT: "@OUT@"}
stages:
  - name: test
    steps:
      - name: unit
        run: 'echo "unit tests of <b>app</b> passed"; echo "a warning" >&2'
        reports: {junit: report.xml}
  - name: production
    environment: production
    approval: manual
    steps:
      - {name: deploy, run: echo "$LADLE_RUN" > "$OUT/deployed"}
)Y")},
                                {"report.xml", "<testsuite name='cart'><testcase name='ok'/>"
                                               "<testcase name='adds &lt;tax&gt;'><failure message='expected 1'/>"
                                               "</testcase></testsuite>"}},
                               "pipeline");
  Start({});
  const int64_t id = WaitRunOfCommit(a);
  ASSERT_EQ("waiting", WaitRun(id, {"waiting", "success", "failed"})["status"]);
  auto created = PostJson("/api/v1/toggles", R"({"key":"new-checkout","type":"release","description":"one-page checkout"})");
  ASSERT_TRUE(created && created->status == 201) << (created ? created->body : "no answer");

  // Through RunCommand, not popen: this process reaps its children itself.
  Result r = Exec({"node", std::string(LADLE_SOURCE_DIR) + "/tests/web/ui_browser.js",
                   "http://127.0.0.1:" + std::to_string(port_), kToken, std::to_string(id), "test", "unit",
                   "production", "new-checkout"},
                  root_);
  ASSERT_EQ(0, r.code) << r.all();
  const std::string out = r.out;
  json seen = json::parse(out, nullptr, false);
  ASSERT_TRUE(seen.is_object()) << out;
  SCOPED_TRACE(seen.dump(1));
  EXPECT_FALSE(seen.contains("failed_at")) << seen.value("failed_at", "");
  EXPECT_EQ(json::array(), seen["page_errors"]);
  // CSP violations and script errors show as console errors; the only ones
  // expected are the 401s of the wrong token.
  for (const json& e : seen["console_errors"]) {
    const std::string text = e.get<std::string>();
    EXPECT_TRUE(text.rfind("wrong token: ", 0) == 0 && text.find("401") != std::string::npos) << text;
  }
  EXPECT_EQ(json::array(), seen["requests_elsewhere"]);

  EXPECT_EQ(true, seen["token_form_without_token"]);
  EXPECT_NE(std::string::npos, seen.value("wrong_token_message", "").find("refused"));
  EXPECT_EQ(true, seen["token_form_hidden"]);
  const std::string row = seen.value("list_row", "");
  EXPECT_NE(std::string::npos, row.find("#" + std::to_string(id))) << row;
  EXPECT_NE(std::string::npos, row.find("waiting")) << row;
  EXPECT_NE(std::string::npos, row.find(a.substr(0, 10))) << row;
  EXPECT_EQ(true, seen["live"]);
  EXPECT_EQ("Run " + std::to_string(id) + " waiting", seen.value("run_heading", ""));
  EXPECT_EQ(json({"test", "production"}), seen["stages"]);
  EXPECT_EQ(json({"unit", "deploy"}), seen["steps"]);
  EXPECT_EQ(json({"cart.adds <tax> expected 1"}), seen["failed_tests"]);
  EXPECT_EQ("#/runs/" + std::to_string(id) + "/test/unit", seen.value("hash_after_step_click", ""));
  EXPECT_EQ("Log of test/unit", seen.value("log_title", ""));
  // The log is text, not markup: the <b> arrives as typed.
  EXPECT_EQ("unit tests of <b>app</b> passed\na warning\n", seen.value("log", ""));
  EXPECT_EQ("success", seen.value("status_after_approve", "")) << "the event stream updates the page";
  EXPECT_EQ(0, seen.value("approve_buttons_left", -1));
  EXPECT_EQ(json::array(), seen["stage_messages_after_approve"]) << "'waits for approval' is over";
  EXPECT_EQ(1u, seen["environments"].size());
  EXPECT_NE(std::string::npos, seen["environments"][0].get<std::string>().find("production"));
  EXPECT_NE(std::string::npos, seen["environments"][0].get<std::string>().find("success"));
  EXPECT_EQ(1, seen.value("rollback_buttons", 0));
  EXPECT_EQ("off Turn on Rollout…", seen.value("toggle_before", ""));
  EXPECT_EQ("on Turn off Rollout…", seen.value("toggle_after", ""));
  EXPECT_EQ("on rollout 25% Turn off Rollout…", seen.value("toggle_after_rollout", ""));
  ASSERT_EQ(2u, seen["dialogs"].size());
  EXPECT_EQ("Turn new-checkout on in production?", seen["dialogs"][0]) << "a flip asks first";
  EXPECT_EQ(0u, seen["dialogs"][1].get<std::string>().rfind("Roll new-checkout out in production", 0));
  EXPECT_EQ(true, seen["token_kept_after_reload"]);
  const json production = ToggleEnv("new-checkout");
  EXPECT_EQ(true, production["enabled"]) << "the clicks turned it on on the server";
  ASSERT_EQ(1u, production["strategies"].size()) << production.dump();
  EXPECT_EQ(25, production["strategies"][0]["rollout"]["percent"]) << production.dump();

  // The click in the browser released the stage on the server.
  json run = Run(id);
  EXPECT_EQ("success", run["status"]);
  EXPECT_EQ(std::to_string(id), Trim(ReadFile(out_ / "deployed")));
}

// ---- trust: scoped secrets, protected environments, webhooks ----

// docs/server.md "Scoped secrets" and "Protected environments": a feature
// branch neither reads the production secret nor deploys to production.
TEST_F(ServeTest, ServeScopedSecretsAndProtectedEnvironments) {
  std::ofstream(root_ / "secrets.env") << "PROD_TOKEN=prod-s3cret-value\nFREE=free-value\n";
  fs::permissions(root_ / "secrets.env", fs::perms::owner_read | fs::perms::owner_write);
  const std::string a = Commit({{"ladle.yml", Pipeline(R"Y(name: app
env: {OUT: "@OUT@"}
secrets: [PROD_TOKEN, FREE]
on:
  push: {branches: [main, "feature/*"]}
stages:
  - name: build
    steps:
      - {name: peek, run: 'echo "${PROD_TOKEN-unset}|${FREE-unset}" > "$OUT/$LADLE_RUN-build"'}
  - name: production
    environment: production
    steps:
      - {name: deploy, run: 'echo "${PROD_TOKEN-unset}" > "$OUT/$LADLE_RUN-deploy"'}
)Y")}},
                               "pipeline");
  ServerOptions o;
  o.extra = "secrets_file: secrets.env\n"
            "secrets:\n"
            "  - {name: PROD_TOKEN, repositories: [app], branches: [main], environments: [production]}\n"
            "environments:\n"
            "  - {name: production, branches: [main]}\n";
  Start(o);
  int64_t run_a = WaitRunOfCommit(a);
  json run = WaitRun(run_a, {"success", "failed"});
  ASSERT_EQ("success", run["status"]) << run.dump(1);
  const std::string ra = std::to_string(run_a);
  // main: the production stage gets the secret, the build stage (no environment) does not.
  EXPECT_EQ("unset|free-value", Trim(ReadFile(out_ / (ra + "-build"))));
  EXPECT_EQ("prod-s3cret-value", Trim(ReadFile(out_ / (ra + "-deploy"))));

  Git({"switch", "-q", "-c", "feature/leak"});
  const std::string l = Commit({{"leak.txt", "l"}}, "leak");
  int64_t run_l = PushRun("feature/leak", a, l);
  run = WaitRun(run_l, {"success", "failed"});
  EXPECT_EQ("failed", run["status"]);
  const std::string rl = std::to_string(run_l);
  EXPECT_EQ("unset|free-value", Trim(ReadFile(out_ / (rl + "-build"))))
      << "a branch outside the scope gets no secret";
  json production = Stage(run, "production");
  EXPECT_EQ("failed", production["status"]) << run.dump(1);
  EXPECT_EQ("environment 'production' takes deployments from branches main only",
            production.value("message", "")) << run.dump(1);
  EXPECT_EQ("skipped", StepOf(run, "production", "deploy")["status"]) << "no step ran";
  EXPECT_FALSE(fs::exists(out_ / (rl + "-deploy")));
  json d = Get("/api/v1/deployments?environment=production")["deployments"];
  ASSERT_EQ(1u, d.size()) << d.dump(1);
  EXPECT_EQ(run_a, d[0]["run_id"]);

  // The secret unscoped in the file is named once, at start.
  const std::string log = ReadFile(root_ / "server.log");
  EXPECT_NE(std::string::npos, log.find("scopes reach every branch's pipelines: FREE")) << log;
  EXPECT_EQ(std::string::npos, log.find("prod-s3cret-value")) << log;
}

// docs/server.md "Webhook trust": a delivery is handled once; a push names the
// branch's head; a branch name is one git accepts.
TEST_F(ServeTest, ServeWebhookTrust) {
  const std::string a = Commit({{"ladle.yml", Pipeline(kQuickPipeline)}}, "pipeline");
  Git({"switch", "-q", "-c", "side"});
  const std::string side = Commit({{"side.txt", "s"}}, "side");
  Git({"switch", "-q", "main"});
  Start({});
  WaitRun(WaitRunOfCommit(a), {"success"});

  // A commit of branch `side` sent as main's head: 409 naming the head, no run.
  auto r = GithubHook(GithubPush("main", a, side));
  ASSERT_TRUE(r);
  EXPECT_EQ(409, r->status) << r->body;
  EXPECT_EQ("commit " + side.substr(0, 12) + " is not the head of branch main in repository "
            "'app' (" + a.substr(0, 12) + " is): the push is not taken",
            json::parse(r->body).value("message", "")) << r->body;
  EXPECT_TRUE(RunOfCommit(side).is_null()) << Runs().dump(1);

  // A branch that does not exist: 409 as well.
  r = GithubHook(GithubPush("nowhere", a, side));
  ASSERT_TRUE(r);
  EXPECT_EQ(409, r->status) << r->body;

  // The head: taken once; the same delivery again is 200 with no run, even
  // after the run is gone from the list of runs of that commit.
  const std::string b = Commit({{"b.txt", "b"}}, "b");
  const std::string body_b = GithubPush("main", a, b);
  r = GithubHook(body_b, kHookSecret, "d-b-1");
  ASSERT_TRUE(r);
  ASSERT_EQ(202, r->status) << r->body;
  ASSERT_EQ(1u, json::parse(r->body)["runs"].size()) << r->body;
  r = GithubHook(body_b, kHookSecret, "d-b-1");
  ASSERT_TRUE(r);
  EXPECT_EQ(200, r->status) << r->body;
  EXPECT_EQ(json::array(), json::parse(r->body)["runs"]) << r->body;
  EXPECT_NE(std::string::npos, r->body.find("delivery d-b-1 was handled before")) << r->body;

  // A refused delivery is not remembered: its retry, once right, is taken.
  const std::string c = Commit({{"c.txt", "c"}}, "c");
  r = GithubHook(GithubPush("main", b, c), "wrong-secret", "d-c-1");
  ASSERT_TRUE(r);
  EXPECT_EQ(401, r->status);
  r = GithubHook(GithubPush("main", b, c), kHookSecret, "d-c-1");
  ASSERT_TRUE(r);
  EXPECT_EQ(202, r->status) << r->body;

  // Bad branch names: 400 naming the rule, nothing logged raw.
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"main\ninjected", "it contains a control character"},
      {"a..b", "it contains '..'"},
      {"x@{1}", "it contains '@{'"},
      {"main.lock", "a component ends with '.lock'"},
  };
  for (const auto& [branch, reason] : bad) {
    r = GithubHook(GithubPush(branch, a, c));
    ASSERT_TRUE(r);
    EXPECT_EQ(400, r->status) << branch << ": " << r->body;
    EXPECT_NE(std::string::npos, json::parse(r->body).value("message", "").find(reason)) << r->body;
  }
  EXPECT_EQ(std::string::npos, ReadFile(root_ / "server.log").find("\ninjected")) << "a newline reached the log";
}

// docs/server.md "Webhook trust": a branch forced back to an older commit
// does not take production back; `ladle rollback` does.
TEST_F(ServeTest, ServeEnvironmentNeverMovesToAnOlderCommitExceptByRollback) {
  const std::string a = Commit({{"ladle.yml", Pipeline(R"Y(name: app
env: {OUT: "@OUT@"}
stages:
  - name: production
    environment: production
    steps:
      - {name: deploy, run: echo "$LADLE_COMMIT" > "$OUT/deployed"}
)Y")}},
                               "pipeline");
  Start({});
  int64_t run_a = WaitRunOfCommit(a);
  ASSERT_EQ("success", WaitRun(run_a, {"success", "failed"})["status"]);
  const std::string a2 = Commit({{"a2.txt", "a2"}}, "a2");  // never pushed
  const std::string b = Commit({{"b.txt", "b"}}, "b");
  int64_t run_b = PushRun("main", a, b);
  ASSERT_EQ("success", WaitRun(run_b, {"success", "failed"})["status"]);
  EXPECT_EQ(b, Trim(ReadFile(out_ / "deployed")));

  Git({"reset", "-q", "--hard", a2});  // main forced back to A2, which never ran
  int64_t run_a2 = PushRun("main", b, a2);
  json run = WaitRun(run_a2, {"success", "failed"});
  EXPECT_EQ("failed", run["status"]);
  EXPECT_EQ("commit " + a2.substr(0, 12) + " is older than " + b.substr(0, 12) + ", which run " +
                std::to_string(run_b) + " deployed to production from branch main: an environment "
                "goes back only by `ladle rollback production`",
            Stage(run, "production").value("message", "")) << run.dump(1);
  EXPECT_EQ("skipped", StepOf(run, "production", "deploy")["status"]);
  EXPECT_EQ(b, Trim(ReadFile(out_ / "deployed")));

  // `ladle rollback` does take it back, to A.
  Result r = Ladle({"--json", "rollback", "production"});
  ASSERT_EQ(0, r.code) << r.all();
  run = WaitRun(json::parse(r.out)["run_id"].get<int64_t>(), {"success", "failed"});
  EXPECT_EQ("success", run["status"]) << run.dump(1);
  EXPECT_EQ(a, Trim(ReadFile(out_ / "deployed")));
}

// docs/running.md "Same inputs as CI": a step that calls git passes under
// `ladle serve` as under `ladle run` (tests/e2e/run_source_test.cc); the
// served run's project is the repository's name.
TEST_F(ServeTest, ServeStepCallingGitSeesTheCommit) {
  const std::string a = Commit({{"ladle.yml", Pipeline(R"Y(name: app
env: {OUT: "@OUT@"}
on:
  push: {branches: [main]}
stages:
  - name: build
    steps:
      - name: compile
        run: test "$(git rev-parse HEAD)" = "$LADLE_COMMIT" && git rev-parse HEAD >> "$OUT/built"
)Y")}},
                               "pipeline");
  ServerOptions o;
  o.poll = "1s";
  o.secret = false;
  Start(o);
  json run = WaitRun(WaitRunOfCommit(a), {"success", "failed"});
  EXPECT_EQ("success", run["status"]) << run.dump(1);
  EXPECT_EQ("app", run["project"]);
  EXPECT_EQ("ladle.yml", run["pipeline_path"]);
  EXPECT_EQ(false, run["dirty"]);
  EXPECT_EQ(a, Trim(ReadFile(out_ / "built")));
  // The same pipeline under `ladle run` in the repository.
  Result r = Exec({"env", "NO_COLOR=1", LADLE_BINARY, "--data", (root_ / "local-data").string(), "run",
                   "--backend", "local"},
                  repo_);
  EXPECT_EQ(0, r.code) << r.all();
  EXPECT_EQ(2u, Lines(ReadFile(out_ / "built")).size());
}

}  // namespace


// ---- metrics ----

// docs/server.md "Metrics": /metrics counts the runs, steps and deployments
// that ended, and shows the queue and the workers.
TEST_F(ServeTest, ServeMetricsCountRunsStepsDeploymentsAndWorkers) {
  const std::string a = Commit({{"ladle.yml", Pipeline(R"Y(name: app
stages:
  - name: build
    steps:
      - {name: compile, run: echo built}
  - name: staging
    environment: staging
    steps:
      - {name: deploy, run: echo deployed}
)Y")}},
                               "good");
  ServerOptions o;
  o.workers = 3;
  o.poll = "1s";
  o.secret = false;
  Start(o);
  EXPECT_EQ("success", WaitRun(WaitRunOfCommit(a), {"success", "failed"})["status"]);
  const std::string b = Commit({{"ladle.yml", Pipeline(R"Y(name: app
stages:
  - name: build
    steps:
      - {name: compile, run: exit 3}
)Y")}},
                               "bad");
  EXPECT_EQ("failed", WaitRun(WaitRunOfCommit(b, 20s), {"success", "failed"})["status"]);

  auto has = [](const std::string& text, const std::string& line) {
    return text.find("\n" + line + "\n") != std::string::npos;
  };
  std::string text;
  // The run's status is stored before its worker counts it: wait for it.
  EXPECT_TRUE(WaitFor(
      [&] {
        auto r = Http().Get("/metrics");
        text = r && r->status == 200 ? r->body : "";
        return has(text, "ladle_runs_total{status=\"failed\"} 1") &&
               has(text, "ladle_runs_running 0");
      },
      10s))
      << text;
  EXPECT_TRUE(has(text, "ladle_runs_total{status=\"success\"} 1")) << text;
  EXPECT_TRUE(has(text, "ladle_runs_total{status=\"cancelled\"} 0")) << text;
  EXPECT_TRUE(has(text, "ladle_runs_queued 0")) << text;
  EXPECT_TRUE(has(text, "ladle_workers 3")) << text;
  EXPECT_TRUE(has(text, "ladle_run_duration_seconds_count 2")) << text;
  EXPECT_TRUE(has(text, "ladle_run_duration_seconds_bucket{le=\"+Inf\"} 2")) << text;
  EXPECT_TRUE(has(text, "ladle_steps_total{status=\"success\"} 2")) << text;
  EXPECT_TRUE(has(text, "ladle_steps_total{status=\"failed\"} 1")) << text;
  EXPECT_TRUE(has(text, "ladle_deployments_total{environment=\"staging\",status=\"success\"} 1"))
      << text;
  // Queue wait of both runs, step durations by the backend that ran them.
  EXPECT_TRUE(has(text, "ladle_run_queue_wait_seconds_count 2")) << text;
  EXPECT_TRUE(has(text, "ladle_step_duration_seconds_count{backend=\"local\"} 3")) << text;
  // The standard process figures, about this server's process.
  EXPECT_NE(text.find("\nprocess_cpu_seconds_total "), std::string::npos) << text;
  EXPECT_NE(text.find("\nprocess_resident_memory_bytes "), std::string::npos) << text;
  EXPECT_NE(text.find("\nprocess_open_fds "), std::string::npos) << text;
  EXPECT_NE(text.find("\nprocess_max_fds "), std::string::npos) << text;
  EXPECT_NE(text.find("\nprocess_start_time_seconds "), std::string::npos) << text;
  EXPECT_TRUE(WaitFor([&] {
    auto r = Http().Get("/metrics");
    return r && has(r->body, "ladle_workers_busy 0");
  }, 10s));
}

// docs/server.md "Metrics": what /metrics answers is what Prometheus' own
// linter accepts (promtool check metrics reads the text on stdin).
TEST_F(ServeTest, ServeMetricsPassPromtoolCheck) {
  if (!ladle::testing::HaveCommand("promtool")) {
    if (ladle::testing::InCi()) FAIL() << "promtool is missing (Debian's prometheus, scripts/install-deps.sh --test)";
    GTEST_SKIP() << "promtool is missing";
  }
  const std::string a = Commit({{"ladle.yml", Pipeline(R"Y(name: app
stages:
  - name: build
    steps:
      - {name: compile, run: echo built}
  - name: deploy
    environment: staging
    steps:
      - {name: deploy, run: echo deployed}
)Y")}},
                               "good");
  ServerOptions o;
  o.poll = "1s";
  o.secret = false;
  Start(o);
  EXPECT_EQ("success", WaitRun(WaitRunOfCommit(a), {"success", "failed"})["status"]);
  auto r = Http().Get("/metrics");
  ASSERT_TRUE(r && r->status == 200);
  const auto file = root_ / "metrics.txt";
  { std::ofstream(file) << r->body; }
  ladle::env::CommandResult result;
  ASSERT_TRUE(ladle::env::RunCommand({"sh", "-c", "promtool check metrics < " + file.string()}, "",
                              &result, std::chrono::seconds(60))
                  .ok());
  EXPECT_EQ(0, result.exit_code) << result.out << result.err << "\n" << r->body;
}
