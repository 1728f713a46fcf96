// End to end: three `ladle serve` replicas on one PostgreSQL (the fixture's,
// tests/pg_util.h), docs/server.md "Replicas". Pushes spread over the
// replicas each run exactly once; a replica killed with SIGKILL mid-deploy
// has its run taken over by another, and no environment is ever deployed by
// two replicas at once; a toggle flipped through one replica reaches
// another's SSE stream; a cancel asked of one replica reaches the run on
// another; a second replica with a different server.yml refuses to start.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "env/subprocess.h"
#include "tests/pg_util.h"
#include "tests/e2e/hook_util.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

using ladle::testing::FreePort;
using ladle::testing::ReadFile;

constexpr char kToken[] = "replicas-e2e-admin-token-0123456789abcdef";
constexpr char kHookSecret[] = "replicas-e2e-hook-secret";

std::string Signature(const std::string& body) {
  return ladle::testing::GithubSignature(kHookSecret, body);
}

std::string Push(const std::string& branch, const std::string& commit) {
  return json{{"ref", "refs/heads/" + branch},
              {"before", std::string(40, '0')},
              {"after", commit},
              {"created", true},
              {"deleted", false},
              {"forced", false},
              {"repository", {{"name", "app"}, {"full_name", "e2e/app"}}},
              {"head_commit", {{"id", commit}}}}
      .dump();
}

std::vector<std::string> Lines(const fs::path& p) {
  std::vector<std::string> out;
  std::ifstream in(p);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  return out;
}

class ReplicasTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LADLE_REQUIRE_POSTGRES();
    uri_ = ladle::testing::PostgresServer::Get()->CreateDatabase("replicas_e2e");
    root_ = ladle::testing::MakeTempDir("/tmp/ladle-replicas-e2e-XXXXXX");
    repo_ = root_ / "repo";
    out_ = root_ / "out";
    fs::create_directories(repo_);
    fs::create_directories(out_);
    Git({"init", "-q", "-b", "main"});
  }

  void TearDown() override {
    for (auto& r : replicas_) {
      if (!r.process) continue;
      ::kill(r.process->pid(), SIGKILL);
      r.process->Wait();
    }
    if (HasFailure()) {
      for (const auto& r : replicas_)
        std::fprintf(stderr, "---- %s ----\n%s\n", r.name.c_str(),
                     ReadFile(root_ / (r.name + ".log")).c_str());
    }
    replicas_.clear();
    std::error_code ec;
    if (!root_.empty()) fs::remove_all(root_, ec);
  }

  void Git(std::vector<std::string> args) {
    std::vector<std::string> argv = {"git", "-c", "user.name=e2e", "-c",
                                     "user.email=e2e@ladle.invalid", "-c", "commit.gpgsign=false"};
    argv.insert(argv.end(), args.begin(), args.end());
    ladle::env::CommandResult r;
    ladle::Status s = ladle::env::RunCommand(argv, repo_.string(), &r, std::chrono::seconds(60));
    ASSERT_TRUE(s.ok() && r.exit_code == 0) << "git " << args.front() << ": " << r.out << r.err;
    last_git_ = r.out;
  }

  // Commits ladle.yml with `pipeline` (@OUT@: the output dir); returns the commit.
  std::string CommitPipeline(std::string pipeline) {
    for (size_t at = pipeline.find("@OUT@"); at != std::string::npos;
         at = pipeline.find("@OUT@", at))
      pipeline.replace(at, 5, out_.string());
    std::ofstream(repo_ / "ladle.yml") << pipeline;
    Git({"add", "-A"});
    Git({"commit", "-q", "-m", "pipeline"});
    Git({"rev-parse", "HEAD"});
    std::string commit = last_git_;
    while (!commit.empty() && (commit.back() == '\n' || commit.back() == ' ')) commit.pop_back();
    return commit;
  }

  struct Replica {
    std::string name;
    int port = 0;
    std::unique_ptr<ladle::env::Subprocess> process;
  };

  // server.yml of replica `name`: the shared settings plus its own listen
  // and data; `extra` is appended (top-level keys).
  std::string Config(const Replica& r, const std::string& extra) {
    std::ostringstream c;
    c << "listen: 127.0.0.1:" << r.port << "\n"
      << "data: " << (root_ / ("data-" + r.name)).string() << "\n"
      << "workers: 2\n"
      << "backend: local\n"
      << "store: " << uri_ << "\n"
      << "lease: 2s\n"
      << "requeue_interrupted: true\n"
      << "repositories:\n"
      << "  - name: app\n"
      << "    url: " << repo_.string() << "\n"
      << "    pipeline: ladle.yml\n"
      << "    webhook_secret_env: HOOK_SECRET\n"
      << extra;
    return c.str();
  }

  // Starts replica `name`; false (with the log in *why) when it exits.
  bool StartReplica(const std::string& name, const std::string& extra = "",
                    std::string* why = nullptr) {
    Replica r;
    r.name = name;
    r.port = FreePort();
    const fs::path config = root_ / (name + ".yml");
    std::ofstream(config) << Config(r, extra);
    ladle::env::LaunchSpec spec;
    spec.exe = "/bin/sh";
    const std::string log = (root_ / (name + ".log")).string();
    spec.args = {"-c", "exec \"$0\" \"$@\" >>'" + log + "' 2>&1", LADLE_BINARY, "serve",
                 "--config", config.string()};
    spec.env = {{"LADLE_ADMIN_TOKEN", kToken}, {"HOOK_SECRET", kHookSecret}, {"NO_COLOR", "1"}};
    spec.cwd = root_.string();
    ladle::Status s = ladle::env::Subprocess::Start(spec, &r.process);
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (!s.ok()) return false;
    httplib::Client c("127.0.0.1", r.port);
    c.set_connection_timeout(1, 0);
    const auto deadline = Clock::now() + 30s;
    while (Clock::now() < deadline) {
      if (auto res = c.Get("/healthz"); res && res->status == 200) {
        replicas_.push_back(std::move(r));
        return true;
      }
      if (r.process->Pump(nullptr, Clock::now() + 50ms)) {
        if (why) *why = ReadFile(log);
        r.process->Wait();
        return false;
      }
    }
    ADD_FAILURE() << name << " did not answer /healthz within 30 s: " << ReadFile(log);
    return false;
  }

  httplib::Client Http(int port) {
    httplib::Client c("127.0.0.1", port);
    c.set_bearer_token_auth(kToken);
    c.set_connection_timeout(2, 0);
    c.set_read_timeout(20, 0);
    return c;
  }

  // A signed push of `commit` to `branch`, to replica `i`; the run ids it queued.
  std::vector<int64_t> PushTo(size_t i, const std::string& branch, const std::string& commit) {
    const std::string body = Push(branch, commit);
    httplib::Client c("127.0.0.1", replicas_[i].port);
    c.set_read_timeout(30, 0);
    auto r = c.Post("/api/v1/hooks/push/app",
                    {{"X-GitHub-Event", "push"},
                     {"X-GitHub-Delivery", "d-" + branch + "-" + std::to_string(++deliveries_)},
                     {"X-Hub-Signature-256", Signature(body)}},
                    body, "application/json");
    std::vector<int64_t> ids;
    if (!r) {
      ADD_FAILURE() << "push " << branch << " to " << replicas_[i].name << ": no answer";
      return ids;
    }
    EXPECT_EQ(202, r->status) << r->body;
    json j = json::parse(r->body, nullptr, false);
    if (j.is_object() && j["runs"].is_array())
      for (const json& id : j["runs"]) ids.push_back(id.get<int64_t>());
    return ids;
  }

  json GetJson(int port, const std::string& path) {
    auto r = Http(port).Get(path.c_str());
    if (!r || r->status != 200) return json();
    return json::parse(r->body, nullptr, false);
  }

  // Every run, through replica `i`, page by page.
  std::vector<json> AllRuns(size_t i) {
    std::vector<json> out;
    std::string path = "/api/v1/runs?limit=100";
    for (int page = 0; page < 100; ++page) {
      json j = GetJson(replicas_[i].port, path);
      if (!j.is_object() || !j["runs"].is_array()) break;
      for (const json& r : j["runs"]) out.push_back(r);
      if (!j.contains("next_before")) break;
      path = "/api/v1/runs?limit=100&before=" + std::to_string(j["next_before"].get<int64_t>());
    }
    return out;
  }

  // The leader lists every repository once at start and queues a run of
  // each branch's head: waits for that (main's) run, so that the branches a
  // test makes afterwards are started by their pushes alone.
  void WaitForTheStartListing() {
    ASSERT_TRUE(WaitFor([&] { return !AllRuns(0).empty(); }, 30s)) << "main was never listed";
  }

  bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (done()) return true;
      std::this_thread::sleep_for(100ms);
    }
    return done();
  }

  std::string uri_;
  fs::path root_, repo_, out_;
  std::string last_git_;
  std::vector<Replica> replicas_;
  int deliveries_ = 0;
};

TEST_F(ReplicasTest, TwoHundredPushesSpreadOverThreeReplicasEachRunOnce) {
  const std::string commit = CommitPipeline(R"yml(name: app
stages:
  - name: build
    steps:
      - name: record
        run: echo "$LADLE_RUN $LADLE_BRANCH" >> @OUT@/runs.log
)yml");
  constexpr int kPushes = 200;
  ASSERT_TRUE(StartReplica("a"));
  ASSERT_TRUE(StartReplica("b"));
  ASSERT_TRUE(StartReplica("c"));
  WaitForTheStartListing();  // `main`: a run of its own, not counted
  for (int i = 0; i < kPushes; ++i) Git({"branch", "b" + std::to_string(i), commit});
  std::set<int64_t> queued;
  for (int i = 0; i < kPushes; ++i) {
    std::vector<int64_t> ids = PushTo(i % 3, "b" + std::to_string(i), commit);
    ASSERT_EQ(1u, ids.size()) << "push " << i;
    EXPECT_TRUE(queued.insert(ids[0]).second) << "run " << ids[0] << " queued twice";
  }
  // Every run ends, whichever replica took it.
  std::map<std::string, int> by_replica;
  ASSERT_TRUE(WaitFor(
      [&] {
        std::vector<json> runs = AllRuns(0);
        int done = 0;
        by_replica.clear();
        for (const json& r : runs) {
          if (!queued.count(r["id"].get<int64_t>())) continue;
          if (r["status"] == "success") ++done;
          by_replica[r.value("replica", "")]++;
        }
        return done == kPushes;
      },
      180s))
      << "runs not all successful; by replica: " << json(by_replica).dump();
  // Each run's step ran once: one line per run, one per branch.
  std::vector<std::string> lines = Lines(out_ / "runs.log");
  std::map<std::string, int> per_branch;
  std::set<std::string> run_ids;
  for (const std::string& line : lines) {
    const size_t space = line.find(' ');
    ASSERT_NE(std::string::npos, space) << line;
    const std::string branch = line.substr(space + 1);
    if (branch == "main") continue;
    per_branch[branch]++;
    EXPECT_TRUE(run_ids.insert(line.substr(0, space)).second) << "run ran twice: " << line;
  }
  EXPECT_EQ(static_cast<size_t>(kPushes), per_branch.size());
  for (const auto& [branch, n] : per_branch) EXPECT_EQ(1, n) << branch << " ran " << n << " times";
  // Spread: more than one replica took runs.
  by_replica.erase("");
  EXPECT_GE(by_replica.size(), 2u) << json(by_replica).dump();
}

TEST_F(ReplicasTest, AReplicaKilledMidDeployIsTakenOverAndNoDeployOverlaps) {
  // main's pipeline deploys nothing; the branches d0..d3 deploy. Each
  // deploy records its start and end with the time in ns; a deploy whose
  // replica died has a start and no end (its shell dies with it).
  CommitPipeline("name: app\nstages:\n  - name: s\n    steps:\n      - name: t\n        run: true\n");
  ASSERT_TRUE(StartReplica("a"));
  ASSERT_TRUE(StartReplica("b"));
  ASSERT_TRUE(StartReplica("c"));
  WaitForTheStartListing();
  Git({"checkout", "-q", "-b", "d0"});
  const std::string commit = CommitPipeline(R"yml(name: app
stages:
  - name: deploy
    environment: production
    steps:
      - name: ship
        run: |
          echo "start $LADLE_RUN $(date +%s%N)" >> @OUT@/deploy.log
          sleep 2
          echo "end $LADLE_RUN $(date +%s%N)" >> @OUT@/deploy.log
)yml");
  for (int i = 1; i < 4; ++i) Git({"branch", "d" + std::to_string(i), commit});
  std::set<int64_t> runs;
  for (int i = 0; i < 4; ++i)
    for (int64_t id : PushTo(i % 3, "d" + std::to_string(i), commit)) runs.insert(id);
  ASSERT_EQ(4u, runs.size());
  // The replica deploying first is killed while its step sleeps.
  std::string victim_run, victim;
  ASSERT_TRUE(WaitFor(
      [&] {
        std::vector<std::string> lines = Lines(out_ / "deploy.log");
        for (const std::string& l : lines)
          if (l.rfind("start ", 0) == 0) {
            victim_run = l.substr(6, l.find(' ', 6) - 6);
            return true;
          }
        return false;
      },
      60s));
  json run = GetJson(replicas_[0].port, "/api/v1/runs/" + victim_run);
  victim = run.value("replica", "");
  ASSERT_FALSE(victim.empty()) << run.dump();
  // Replica ids name the process; the replicas list gives its URL.
  json list = GetJson(replicas_[0].port, "/api/v1/replicas");
  int victim_port = 0;
  for (const json& r : list["replicas"])
    if (r["id"] == victim) victim_port = std::stoi(r["url"].get<std::string>().substr(
                               r["url"].get<std::string>().rfind(':') + 1));
  ASSERT_NE(0, victim_port) << list.dump();
  size_t survivor = 0;
  for (size_t i = 0; i < replicas_.size(); ++i) {
    if (replicas_[i].port == victim_port) {
      ::kill(replicas_[i].process->pid(), SIGKILL);
      replicas_[i].process->Wait();
      replicas_[i].process.reset();
    } else {
      survivor = i;
    }
  }
  // The killed run is marked interrupted by another replica, queued again
  // (requeue_interrupted) and deployed; every run ends in success.
  ASSERT_TRUE(WaitFor(
      [&] {
        int ok = 0;
        for (int64_t id : runs) {
          json r = GetJson(replicas_[survivor].port, "/api/v1/runs/" + std::to_string(id));
          if (r.value("status", "") == "success") ++ok;
        }
        return ok == static_cast<int>(runs.size());
      },
      120s))
      << ReadFile(out_ / "deploy.log");
  // No two deploys overlap: each start comes after the previous deploy's
  // end, or after its replica died (a start without an end, the next start
  // closes it).
  std::vector<std::string> lines = Lines(out_ / "deploy.log");
  std::string open_run;
  int starts = 0;
  for (const std::string& l : lines) {
    std::istringstream in(l);
    std::string what, id;
    in >> what >> id;
    if (what == "start") {
      ++starts;
      EXPECT_TRUE(open_run.empty() || open_run == victim_run)
          << "run " << id << " started deploying while run " << open_run << " was:\n"
          << ReadFile(out_ / "deploy.log");
      open_run = id;
    } else {
      EXPECT_EQ(open_run, id) << ReadFile(out_ / "deploy.log");
      open_run.clear();
    }
  }
  EXPECT_EQ(5, starts) << "4 deploys and the killed one's first attempt:\n"
                       << ReadFile(out_ / "deploy.log");
  json again = GetJson(replicas_[survivor].port, "/api/v1/runs/" + victim_run);
  EXPECT_NE(victim, again.value("replica", "")) << again.dump();
}

TEST_F(ReplicasTest, ACancelReachesTheRunOnAnotherReplica) {
  CommitPipeline(R"yml(name: app
stages:
  - name: build
    steps:
      - name: wait
        run: echo started >> @OUT@/started; sleep 60
)yml");
  ASSERT_TRUE(StartReplica("a"));
  ASSERT_TRUE(StartReplica("b"));
  // The run of main's head, queued by the leader's listing at start.
  WaitForTheStartListing();
  std::vector<int64_t> ids = {AllRuns(0).at(0)["id"].get<int64_t>()};
  const std::string path = "/api/v1/runs/" + std::to_string(ids[0]);
  ASSERT_TRUE(WaitFor([&] { return fs::exists(out_ / "started"); }, 60s));
  json run = GetJson(replicas_[0].port, path);
  json list = GetJson(replicas_[0].port, "/api/v1/replicas");
  // Ask the replica that does not run it.
  size_t other = 0;
  for (const json& r : list["replicas"])
    if (r["id"] != run["replica"])
      for (size_t i = 0; i < replicas_.size(); ++i)
        if (r["url"] == "http://127.0.0.1:" + std::to_string(replicas_[i].port)) other = i;
  auto r = Http(replicas_[other].port).Post((path + "/cancel").c_str(), "", "application/json");
  ASSERT_TRUE(r) << "no answer";
  EXPECT_TRUE(r->status == 200 || r->status == 202) << r->status << " " << r->body;
  ASSERT_TRUE(WaitFor([&] { return GetJson(replicas_[0].port, path).value("status", "") == "cancelled"; },
                      20s))
      << GetJson(replicas_[0].port, path).dump();
}

TEST_F(ReplicasTest, ALiveLogAndTheArtifactsAreServedByEveryReplica) {
  CommitPipeline(R"yml(name: app
stages:
  - name: build
    steps:
      - name: slow
        run: |
          mkdir -p out && echo shipped > out/a.txt
          echo first
          while [ ! -f @OUT@/go ]; do sleep 0.1; done
          echo second
        artifacts: [out/a.txt]
)yml");
  ASSERT_TRUE(StartReplica("a"));
  ASSERT_TRUE(StartReplica("b"));
  // The run of main's head, queued by the leader's listing at start.
  WaitForTheStartListing();
  std::vector<int64_t> ids = {AllRuns(0).at(0)["id"].get<int64_t>()};
  const std::string run_path = "/api/v1/runs/" + std::to_string(ids[0]);
  json run;
  ASSERT_TRUE(WaitFor(
      [&] {
        run = GetJson(replicas_[0].port, run_path);
        return run.value("status", "") == "running" && run.contains("replica");
      },
      60s));
  // The replica that does not run it follows the log through the owner.
  json list = GetJson(replicas_[0].port, "/api/v1/replicas");
  ASSERT_EQ(2u, list["replicas"].size()) << list.dump();
  size_t other = 0;
  for (size_t i = 0; i < replicas_.size(); ++i) {
    json self = GetJson(replicas_[i].port, "/api/v1/replicas");
    if (self["self"] != run["replica"]) other = i;
  }
  std::string live;
  std::mutex mu;
  std::thread follower([&] {
    httplib::Client c("127.0.0.1", replicas_[other].port);
    c.set_bearer_token_auth(kToken);
    c.set_read_timeout(30, 0);
    c.Get((run_path + "/steps/build/slow/log?follow=1").c_str(), [&](const char* data, size_t n) {
      std::lock_guard<std::mutex> lock(mu);
      live.append(data, n);
      return true;
    });
  });
  ASSERT_TRUE(WaitFor(
      [&] {
        std::lock_guard<std::mutex> lock(mu);
        return live.find("first") != std::string::npos;
      },
      20s));
  std::ofstream(out_ / "go") << "go";
  follower.join();  // the stream ends with the step
  EXPECT_NE(std::string::npos, live.find("second")) << live;
  ASSERT_TRUE(WaitFor([&] { return GetJson(replicas_[other].port, run_path).value("status", "") == "success"; },
                      30s));
  // The artifacts too, listed and downloaded through the other replica.
  json artifacts = GetJson(replicas_[other].port, run_path + "/artifacts");
  ASSERT_EQ(1u, artifacts["artifacts"].size()) << artifacts.dump();
  auto file = Http(replicas_[other].port).Get((run_path + "/artifacts/build/slow/out/a.txt").c_str());
  ASSERT_TRUE(file);
  EXPECT_EQ(200, file->status);
  EXPECT_EQ("shipped\n", file->body);
  // A token that the owner refuses is refused through the proxy too.
  httplib::Client anonymous("127.0.0.1", replicas_[other].port);
  auto refused = anonymous.Get((run_path + "/artifacts/build/slow/out/a.txt").c_str());
  ASSERT_TRUE(refused);
  EXPECT_EQ(401, refused->status);
}

TEST_F(ReplicasTest, AReplicaWithADifferentServerYmlRefusesToStart) {
  CommitPipeline("name: app\nstages:\n  - name: s\n    steps:\n      - name: t\n        run: true\n");
  ASSERT_TRUE(StartReplica("a"));
  std::string why;
  EXPECT_FALSE(StartReplica("b", "retention: 30d\n", &why)) << why;
  EXPECT_NE(std::string::npos, why.find("retention")) << "[" << why << "]" << ReadFile(root_ / "b.log");
  EXPECT_NE(std::string::npos, why.find("differs")) << why;
}

TEST_F(ReplicasTest, APostgresThatDoesNotAnswerAtStartIsExit3NamingIt) {
  CommitPipeline("name: app\nstages:\n  - name: s\n    steps:\n      - name: t\n        run: true\n");
  const fs::path config = root_ / "down.yml";
  std::ofstream(config) << "listen: 127.0.0.1:" << FreePort() << "\n"
                        << "data: " << (root_ / "data-down").string() << "\n"
                        << "store: postgresql://ladle:hunter2@127.0.0.1:" << FreePort() << "/ladle\n";
  ladle::env::CommandResult r;
  ladle::Status s = ladle::env::RunCommand({LADLE_BINARY, "serve", "--config", config.string()},
                                           root_.string(), &r, std::chrono::seconds(60));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(3, r.exit_code) << r.out << r.err;
  EXPECT_NE(std::string::npos, r.err.find("postgresql://ladle:***@127.0.0.1:")) << r.err;
  EXPECT_EQ(std::string::npos, r.err.find("hunter2")) << "the password is never shown: " << r.err;
}

TEST_F(ReplicasTest, AToggleFlippedOnOneReplicaReachesAnothersStream) {
  CommitPipeline("name: app\nstages:\n  - name: s\n    steps:\n      - name: t\n        run: true\n");
  ASSERT_TRUE(StartReplica("a"));
  ASSERT_TRUE(StartReplica("b"));
  auto r = Http(replicas_[0].port).Post("/api/v1/toggles", R"({"key":"banner"})", "application/json");
  ASSERT_TRUE(r && r->status == 201) << (r ? r->body : "no answer");
  std::string live;
  std::mutex mu;
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    httplib::Client c("127.0.0.1", replicas_[1].port);
    c.set_bearer_token_auth(kToken);
    c.set_read_timeout(15, 0);
    c.Get("/api/v1/stream", [&](const char* data, size_t n) {
      std::lock_guard<std::mutex> lock(mu);
      live.append(data, n);
      return !stop && live.find("\"enable\"") == std::string::npos;
    });
  });
  std::this_thread::sleep_for(500ms);
  const auto flipped = Clock::now();
  r = Http(replicas_[0].port).Post("/api/v1/toggles/banner/environments/production/on", "",
                                   "application/json");
  ASSERT_TRUE(r && r->status == 200) << (r ? r->body : "no answer");
  const bool arrived = WaitFor(
      [&] {
        std::lock_guard<std::mutex> lock(mu);
        return live.find("\"enable\"") != std::string::npos;
      },
      10s);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - flipped);
  stop = true;
  reader.join();
  EXPECT_TRUE(arrived) << live;
  std::printf("flip on a to b's stream: %lld ms (polled every 100 ms)\n",
              static_cast<long long>(took.count()));
}

}  // namespace
