// The runs API through a Router, without a socket (one test over a real
// HttpServer at the end): a real RunStore in a temp dir, a fake RunControl.
#include "runner/serve/runs_api.h"
#include "tests/fakes/string_stream_writer.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <future>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/http_server.h"
#include "core/sqlite.h"
#include "runner/store/step_log.h"
#include "toggles/client/http_client.h"

namespace ladle::runner {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// Records every call; answers with the statuses the test sets.
class FakeRunControl : public RunControl {
 public:
  Status Cancel(int64_t run, const std::string& actor) override {
    calls.push_back("cancel " + std::to_string(run) + " by " + actor);
    return result;
  }
  Status Approve(int64_t run, const std::string& stage, const std::string& actor) override {
    calls.push_back("approve " + std::to_string(run) + " " + stage + " by " + actor);
    return result;
  }
  Status Rollback(const std::string& environment, int64_t to_run, const std::string& actor,
                  int64_t* run_id) override {
    calls.push_back("rollback " + environment + " to " + std::to_string(to_run) + " by " + actor);
    *run_id = 42;
    return result;
  }
  Status Push(const std::string& repo, const HeaderLookup& header, std::string_view body,
              std::vector<int64_t>* runs, std::string* note, bool* replay) override {
    ++pushes_entered;
    if (push_gate.valid()) push_gate.wait();  // a slow fetch of a remote repository
    calls.push_back("push " + repo + " sig=" + header("x-hub-signature-256") + " body=" +
                    std::string(body));
    push_thread = std::this_thread::get_id();
    *runs = push_runs;
    *note = push_note;
    *replay = push_replay;
    return result;
  }

  Status Trigger(const std::string& repo, const std::string& branch, const std::string& tag,
                 const std::string& commit, const std::string& actor, int64_t* run_id) override {
    calls.push_back("trigger " + repo + " branch=" + branch + " tag=" + tag + " commit=" + commit +
                    " by " + actor);
    *run_id = trigger_run;
    return result;
  }
  Status Rerun(int64_t run, const std::string& actor, int64_t* run_id) override {
    calls.push_back("rerun " + std::to_string(run) + " by " + actor);
    *run_id = trigger_run;
    return result;
  }

  Status result;
  int64_t trigger_run = 0;
  std::shared_future<void> push_gate;
  std::atomic<int> pushes_entered{0};
  std::thread::id push_thread;
  std::vector<int64_t> push_runs;
  std::string push_note;
  bool push_replay = false;
  std::vector<std::string> calls;
};

// Polls `done` for up to 5 s.
bool WaitFor(const std::function<bool()>& done) {
  for (auto end = std::chrono::steady_clock::now() + 5s; std::chrono::steady_clock::now() < end;) {
    if (done()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return done();
}

class RunsApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ladle_runs_api_test.XXXXXX";
    ASSERT_NE(nullptr, mkdtemp(tmpl));
    dir_ = tmpl;
    ASSERT_TRUE(RunStore::Open(dir_, &store_).ok());
    ASSERT_TRUE(toggles::TokenStore::Open(dir_, &tokens_).ok());
    toggles::TokenInfo info;
    ASSERT_TRUE(tokens_->Create("root", toggles::Role::kAdmin, "", &admin_, &info).ok());
    ASSERT_TRUE(tokens_->Create("web", toggles::Role::kClient, "staging", &client_, &info).ok());
    MakeApi(RunsApi::Options());
  }
  void TearDown() override {
    server_.reset();
    api_.reset();
    events_.reset();
    store_.reset();
    tokens_.reset();
    std::filesystem::remove_all(dir_);
  }

  // A new API with new events (a new server process, as far as event ids go).
  void MakeApi(RunsApi::Options options, RunEvents::Options events = {}) {
    api_.reset();
    events_ = std::make_unique<RunEvents>(events);
    router_ = std::make_unique<Router>();
    api_ = std::make_unique<RunsApi>(*store_, *tokens_, control_, *events_, options);
    api_->Register(router_.get());
    ASSERT_TRUE(router_->status().ok()) << router_->status().ToString();
  }
  // Remakes the API with log follows polling every `poll`.
  void MakeApiWithFollowPoll(std::chrono::milliseconds poll) {
    RunsApi::Options options;
    options.follow_poll = poll;
    MakeApi(options);
  }
  // Serves the router over a real socket on one io thread; its address is in url_.
  void StartServer() {
    HttpServerOptions options;
    options.threads = 1;
    server_ = std::make_unique<HttpServer>(*router_, options);
    ASSERT_TRUE(server_->Start().ok());
    ASSERT_TRUE(toggles::ParseServerUrl("http://" + server_->address(), &url_).ok());
  }
  // Runs `sql` on a second connection: CreateRun one by one is slow for bulk inserts.
  void ExecOnSecondConnection(const std::string& sql) {
    std::unique_ptr<Database> db;
    ASSERT_TRUE(Database::Open(dir_ + "/ladle.db", &db).ok());
    ASSERT_TRUE(db->Exec(sql).ok());
  }

  // Sends a request with `token` ("admin", "client", "" for none, or a secret).
  HttpResponse Send(const std::string& method, const std::string& target,
                    const std::string& body = "", const std::string& token = "admin",
                    std::vector<std::pair<std::string, std::string>> headers = {}) {
    HttpRequest r = HttpRequest::For(method, target, body);
    std::string secret = token == "admin" ? admin_ : token == "client" ? client_ : token;
    if (!secret.empty()) r.headers.Add("Authorization", "Bearer " + secret);
    for (auto& [n, v] : headers) r.headers.Set(n, v);
    return AwaitResponse(router_->Dispatch(r));  // a push answers from a hook thread
  }
  static json Body(const HttpResponse& r) { return json::parse(r.body, nullptr, false); }
  static std::string Message(const HttpResponse& r) {
    json j = Body(r);
    return j.is_object() && j.contains("message") ? j["message"].get<std::string>() : r.body;
  }

  // A run with stages build (compile running, lint queued) and deploy (push queued).
  int64_t AddRun(const std::string& repo = "webshop", const std::string& branch = "main",
                 RunStatus status = kRunning) {
    RunRecord run;
    run.repo = repo;
    run.pipeline = "webshop";
    run.file = "/src/webshop/ladle.yml";
    run.commit = "0123abcd";
    run.branch = branch;
    run.status = status;
    StageRecord build{"build", kRunning, "", std::nullopt, "", {}};
    build.steps.push_back(StepRecord{"compile", kRunning, std::nullopt, 1, "", "", FailureReason::kNone, false});
    build.steps.push_back(StepRecord{"lint", kQueued, std::nullopt, 0, "", "", FailureReason::kNone, true});
    StageRecord deploy{"deploy", kQueued, "staging", std::nullopt, "", {}};
    deploy.steps.push_back(StepRecord{"push", kQueued, std::nullopt, 0, "", "", FailureReason::kNone, false});
    run.stages = {build, deploy};
    Status s = store_->CreateRun(&run);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return run.id;
  }

  void SetStep(int64_t run, const std::string& stage, const std::string& step,
               RunStatus status) {
    StepRecord rec{step, status, std::nullopt, 1, "", "", FailureReason::kNone, false};
    if (status != kRunning && status != kQueued) rec.exit_code = 0;
    Status s = store_->UpdateStep(run, stage, rec);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  void AppendLog(int64_t run, const std::string& stage, const std::string& step,
                 const std::string& records) {
    std::string path = StepLogPath(dir_, run, stage, step);
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    std::ofstream out(path, std::ios::app | std::ios::binary);
    out << records;
  }

  // "id id id" of a list response's runs.
  static std::string Ids(const HttpResponse& r, const char* list = "runs") {
    json body = Body(r);
    std::string out;
    for (const json& run : body[list]) out += (out.empty() ? "" : " ") + run["id"].dump();
    return out;
  }

  // Starts a streaming response on an in-memory writer.
  static std::shared_ptr<StringStreamWriter> Start(const HttpResponse& r) {
    auto writer = std::make_shared<StringStreamWriter>();
    EXPECT_TRUE(r.is_stream()) << r.status << " " << r.body;
    if (r.is_stream()) r.stream->Start(writer);
    return writer;
  }
  // Starts the runs stream as admin, resuming after `last_event_id` if one is given.
  std::shared_ptr<StringStreamWriter> StartStream(const std::string& last_event_id = "") {
    if (last_event_id.empty()) return Start(Send("GET", "/api/v1/runs/stream"));
    return Start(
        Send("GET", "/api/v1/runs/stream", "", "admin", {{"Last-Event-ID", last_event_id}}));
  }
  // Publishes bare runs with the ids first to last.
  void PublishRuns(int64_t first, int64_t last) {
    RunRecord run;
    for (int64_t i = first; i <= last; ++i) {
      run.id = i;
      events_->PublishRun(run);
    }
  }

  std::string dir_;
  std::unique_ptr<RunStore> store_;
  std::unique_ptr<toggles::TokenStore> tokens_;
  FakeRunControl control_;
  std::unique_ptr<Router> router_;
  std::unique_ptr<RunEvents> events_;
  std::unique_ptr<RunsApi> api_;
  std::unique_ptr<HttpServer> server_;  // by StartServer
  toggles::ServerUrl url_;
  std::string admin_, client_;
};

// ---- auth ----

TEST_F(RunsApiTest, RunsApiEveryTokenRouteNeedsATokenAndWritesNeedAdmin) {
  int64_t id = AddRun();
  std::string run = "/api/v1/runs/" + std::to_string(id);
  struct Route {
    std::string method, target;
    bool write;
  };
  std::vector<Route> routes = {
      {"GET", "/api/v1/runs", false},
      {"GET", run, false},
      {"GET", run + "/steps/build/compile/log", false},
      {"GET", "/api/v1/deployments", false},
      {"GET", "/api/v1/runs/stream", false},
      {"POST", run + "/cancel", true},
      {"POST", run + "/stages/deploy/approve", true},
      {"POST", "/api/v1/environments/staging/rollback", true},
  };
  for (const Route& route : routes) {
    SCOPED_TRACE(route.method + " " + route.target);
    HttpResponse r = Send(route.method, route.target, "", "");
    EXPECT_EQ(401, r.status);
    EXPECT_EQ("unauthorized", Body(r)["error"]);
    EXPECT_EQ(401, Send(route.method, route.target, "", "ladle_wrong").status);
    r = Send(route.method, route.target, "", "client");
    if (route.write) {
      EXPECT_EQ(403, r.status);
      EXPECT_EQ("forbidden", Body(r)["error"]);
    } else {
      EXPECT_EQ(200, r.status) << r.body;
    }
  }
  EXPECT_TRUE(control_.calls.empty());
  // The hook takes no token: the control authenticates it.
  EXPECT_EQ(202, Send("POST", "/api/v1/hooks/push/webshop", "{}", "").status);
  EXPECT_EQ(1u, control_.calls.size());
}

// ---- GET /api/v1/runs ----

TEST_F(RunsApiTest, RunsApiListIsNewestFirstWithoutStagesAndFilters) {
  int64_t a = AddRun("webshop", "main", kSuccess);
  int64_t b = AddRun("webshop", "dev", kFailed);
  int64_t c = AddRun("blog", "main", kFailed);
  HttpResponse r = Send("GET", "/api/v1/runs");
  ASSERT_EQ(200, r.status) << r.body;
  EXPECT_EQ(std::to_string(c) + " " + std::to_string(b) + " " + std::to_string(a), Ids(r));
  EXPECT_FALSE(Body(r)["runs"][0].contains("stages"));
  EXPECT_EQ("blog", Body(r)["runs"][0]["repo"]);
  EXPECT_FALSE(Body(r).contains("next_before"));
  EXPECT_EQ(std::to_string(b) + " " + std::to_string(a), Ids(Send("GET", "/api/v1/runs?repo=webshop")));
  EXPECT_EQ(std::to_string(c) + " " + std::to_string(a), Ids(Send("GET", "/api/v1/runs?branch=main")));
  EXPECT_EQ(std::to_string(c) + " " + std::to_string(b), Ids(Send("GET", "/api/v1/runs?status=failed")));
  EXPECT_EQ(std::to_string(b), Ids(Send("GET", "/api/v1/runs?status=failed&repo=webshop")));
  EXPECT_EQ("", Ids(Send("GET", "/api/v1/runs?status=superseded")));
  EXPECT_EQ("", Ids(Send("GET", "/api/v1/runs?repo=nope")));
}

TEST_F(RunsApiTest, RunsApiListPagesWithLimitAndBefore) {
  std::vector<int64_t> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(AddRun());
  HttpResponse r = Send("GET", "/api/v1/runs?limit=2");
  ASSERT_EQ(200, r.status);
  EXPECT_EQ(std::to_string(ids[4]) + " " + std::to_string(ids[3]), Ids(r));
  ASSERT_EQ(ids[3], Body(r)["next_before"]);
  r = Send("GET", "/api/v1/runs?limit=2&before=" + std::to_string(ids[3]));
  EXPECT_EQ(std::to_string(ids[2]) + " " + std::to_string(ids[1]), Ids(r));
  ASSERT_EQ(ids[1], Body(r)["next_before"]);
  r = Send("GET", "/api/v1/runs?limit=2&before=" + std::to_string(ids[1]));
  EXPECT_EQ(std::to_string(ids[0]), Ids(r));
  EXPECT_FALSE(Body(r).contains("next_before"));
  // Exactly `limit` left: no next page announced.
  r = Send("GET", "/api/v1/runs?limit=5");
  EXPECT_EQ(5u, Body(r)["runs"].size());
  EXPECT_FALSE(Body(r).contains("next_before"));
  // Over the maximum: capped, not refused.
  EXPECT_EQ(200, Send("GET", "/api/v1/runs?limit=100000").status);
}

TEST_F(RunsApiTest, RunsApiListDefaultLimitIs50AndMaxIs500) {
  ASSERT_NO_FATAL_FAILURE(ExecOnSecondConnection(
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 600)"
      " INSERT INTO runs (repo, pipeline, file, commit_id, branch, status, created_at)"
      " SELECT 'webshop', 'p', 'f', 'c', 'main', 'success', '2026-01-01T00:00:00Z'"
      " FROM n"));
  HttpResponse r = Send("GET", "/api/v1/runs");
  EXPECT_EQ(50u, Body(r)["runs"].size());
  EXPECT_EQ(551, Body(r)["next_before"]);
  r = Send("GET", "/api/v1/runs?limit=1000");
  EXPECT_EQ(500u, Body(r)["runs"].size());
  EXPECT_EQ(101, Body(r)["next_before"]);
}

TEST_F(RunsApiTest, RunsApiListBadParametersAre400NamingThem) {
  struct Case {
    std::string query, names;
  };
  for (const Case& c : std::vector<Case>{{"status=done", "status"},
                                         {"status=Running", "status"},
                                         {"limit=abc", "limit"},
                                         {"limit=0", "limit"},
                                         {"limit=-3", "limit"},
                                         {"limit=5x", "limit"},
                                         {"before=", "before"},
                                         {"before=1.5", "before"},
                                         {"before=99999999999999999999", "before"}}) {
    SCOPED_TRACE(c.query);
    HttpResponse r = Send("GET", "/api/v1/runs?" + c.query);
    EXPECT_EQ(400, r.status);
    EXPECT_EQ("bad_request", Body(r)["error"]);
    EXPECT_EQ(0u, Message(r).rfind(c.names + ":", 0)) << Message(r);
  }
  EXPECT_EQ(400, Send("GET", "/api/v1/deployments?limit=x").status);
}

TEST_F(RunsApiTest, RunsApiListStaysFastWith100000Runs) {
  ASSERT_NO_FATAL_FAILURE(ExecOnSecondConnection(
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)"
      " INSERT INTO runs (repo, pipeline, file, commit_id, branch, status, created_at)"
      " SELECT 'repo' || (i % 20), 'p', 'f', printf('%040d', i), 'branch' || (i % 7),"
      " CASE WHEN i % 100 = 0 THEN 'failed' ELSE 'success' END,"
      " '2026-01-01T00:00:00Z' FROM n"));
  auto start = std::chrono::steady_clock::now();
  for (const char* q : {"", "?repo=repo3", "?branch=branch2", "?status=failed",
                        "?repo=repo0&status=failed", "?limit=500&before=50000",
                        "?status=failed&before=20000&limit=500"}) {
    HttpResponse r = Send("GET", std::string("/api/v1/runs") + q);
    ASSERT_EQ(200, r.status) << q;
    EXPECT_FALSE(Body(r)["runs"].empty()) << q;
  }
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, 1s) << "7 list requests over 100000 runs took "
                      << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms";
}

// ---- GET /api/v1/runs/{id} ----

TEST_F(RunsApiTest, RunsApiGetRunIsRunToJsonAnd404Or400) {
  int64_t id = AddRun();
  HttpResponse r = Send("GET", "/api/v1/runs/" + std::to_string(id));
  ASSERT_EQ(200, r.status) << r.body;
  RunRecord run;
  ASSERT_TRUE(store_->GetRun(id, &run).ok());
  EXPECT_EQ(RunToJson(run), Body(r));
  EXPECT_EQ("compile", Body(r)["stages"][0]["steps"][0]["name"]);
  r = Send("GET", "/api/v1/runs/999");
  EXPECT_EQ(404, r.status);
  EXPECT_EQ("not_found", Body(r)["error"]);
  EXPECT_NE(std::string::npos, Message(r).find("run 999")) << r.body;
  for (const char* bad : {"abc", "0", "-1", "12x"}) {
    r = Send("GET", std::string("/api/v1/runs/") + bad);
    EXPECT_EQ(400, r.status) << bad;
    EXPECT_EQ("run id: expected a positive integer, got '" + std::string(bad) + "'", Message(r));
  }
}

// docs/running.md "Tests by name": the runs API carries a step's failed
// tests and its kept container.
TEST_F(RunsApiTest, RunsApiGetRunNamesFailedTestsAndKeptContainer) {
  int64_t id = AddRun();
  StepRecord rec{"compile", kFailed, 1, 1, "", "", FailureReason::kExitCode, false};
  rec.failed_tests = {FailedTest{"cart", "t0", "expected 1"}};
  rec.failed_tests_more = 4;
  rec.kept = "docker start k >/dev/null && docker exec -i k sh";
  ASSERT_TRUE(store_->UpdateStep(id, "build", rec).ok());
  HttpResponse r = Send("GET", "/api/v1/runs/" + std::to_string(id));
  ASSERT_EQ(200, r.status) << r.body;
  nlohmann::json step = Body(r)["stages"][0]["steps"][0];
  EXPECT_EQ(nlohmann::json::parse(R"([{"suite": "cart", "name": "t0", "message": "expected 1"}])"),
            step["failed_tests"]);
  EXPECT_EQ(4, step["failed_tests_more"]);
  EXPECT_EQ(rec.kept, step["kept"]);
}

// ---- logs ----

TEST_F(RunsApiTest, RunsApiLogIsTextOrJsonLines) {
  int64_t id = AddRun();
  AppendLog(id, "build", "compile", "o compiling\ne warning: x\no done\n");
  std::string log = "/api/v1/runs/" + std::to_string(id) + "/steps/build/compile/log";
  HttpResponse r = Send("GET", log);
  ASSERT_EQ(200, r.status) << r.body;
  EXPECT_EQ("text/plain; charset=utf-8", r.headers.Get("Content-Type"));
  EXPECT_EQ("compiling\nwarning: x\ndone\n", r.body);
  r = Send("GET", log + "?format=json", "", "client");
  ASSERT_EQ(200, r.status);
  EXPECT_EQ("application/x-ndjson", r.headers.Get("Content-Type"));
  EXPECT_EQ("{\"stream\":\"stdout\",\"text\":\"compiling\"}\n"
            "{\"stream\":\"stderr\",\"text\":\"warning: x\"}\n"
            "{\"stream\":\"stdout\",\"text\":\"done\"}\n",
            r.body);
  // A step that has not started has no file yet: an empty log.
  r = Send("GET", "/api/v1/runs/" + std::to_string(id) + "/steps/deploy/push/log");
  EXPECT_EQ(200, r.status);
  EXPECT_EQ("", r.body);
}

TEST_F(RunsApiTest, RunsApiLog404NamesTheRunStageOrStep) {
  int64_t id = AddRun();
  std::string run = std::to_string(id);
  HttpResponse r = Send("GET", "/api/v1/runs/999/steps/build/compile/log");
  EXPECT_EQ(404, r.status);
  EXPECT_EQ("run 999 not found", Message(r));
  r = Send("GET", "/api/v1/runs/" + run + "/steps/test/compile/log");
  EXPECT_EQ(404, r.status);
  EXPECT_EQ("run " + run + " has no stage 'test'", Message(r));
  r = Send("GET", "/api/v1/runs/" + run + "/steps/build/link/log");
  EXPECT_EQ(404, r.status);
  EXPECT_EQ("run " + run + " has no step 'build/link'", Message(r));
  r = Send("GET", "/api/v1/runs/" + run + "/steps/build/compile/log?format=xml");
  EXPECT_EQ(400, r.status);
  EXPECT_EQ(0u, Message(r).rfind("format:", 0));
  r = Send("GET", "/api/v1/runs/" + run + "/steps/build/compile/log?follow=yes");
  EXPECT_EQ(400, r.status);
  EXPECT_EQ(0u, Message(r).rfind("follow:", 0));
}

TEST_F(RunsApiTest, RunsApiLogFollowStreamsWhileItGrowsAndEndsWhenTheStepFinished) {
  MakeApiWithFollowPoll(20ms);
  int64_t id = AddRun();
  AppendLog(id, "build", "compile", "o one\n");
  HttpResponse r = Send("GET", "/api/v1/runs/" + std::to_string(id) +
                                   "/steps/build/compile/log?follow=1", "", "client");
  ASSERT_EQ(200, r.status);
  EXPECT_EQ("text/plain; charset=utf-8", r.headers.Get("Content-Type"));
  auto writer = Start(r);
  ASSERT_TRUE(WaitFor([&] { return writer->data() == "one\n"; })) << writer->data();
  EXPECT_EQ(1u, api_->follower_count());
  AppendLog(id, "build", "compile", "e two\no thr");  // an incomplete record waits
  ASSERT_TRUE(WaitFor([&] { return writer->data() == "one\ntwo\n"; })) << writer->data();
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(writer->closed());
  AppendLog(id, "build", "compile", "ee\no last\n");
  SetStep(id, "build", "compile", kSuccess);
  ASSERT_TRUE(WaitFor([&] { return writer->closed(); }));
  EXPECT_EQ("one\ntwo\nthree\nlast\n", writer->data());
  r.stream->OnClosed();
  EXPECT_TRUE(WaitFor([&] { return api_->follower_count() == 0; }));
}

TEST_F(RunsApiTest, RunsApiLogFollowOfAFinishedStepSendsTheLogAndEnds) {
  int64_t id = AddRun();
  AppendLog(id, "build", "compile", "o a\no b\n");
  SetStep(id, "build", "compile", kFailed);
  HttpResponse r = Send("GET", "/api/v1/runs/" + std::to_string(id) +
                                   "/steps/build/compile/log?follow=1&format=json");
  auto writer = Start(r);
  ASSERT_TRUE(WaitFor([&] { return writer->closed(); }));
  EXPECT_EQ("{\"stream\":\"stdout\",\"text\":\"a\"}\n{\"stream\":\"stdout\",\"text\":\"b\"}\n",
            writer->data());
}

TEST_F(RunsApiTest, RunsApiLogFollowEndsWhenTheRunEndedWithoutTheStep) {
  MakeApiWithFollowPoll(20ms);
  int64_t id = AddRun();
  HttpResponse r = Send("GET", "/api/v1/runs/" + std::to_string(id) + "/steps/deploy/push/log?follow=1");
  auto writer = Start(r);
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(writer->closed());  // queued: the log may still come
  RunRecord run;
  ASSERT_TRUE(store_->GetRun(id, &run).ok());
  run.status = kCancelled;
  ASSERT_TRUE(store_->UpdateRun(run).ok());
  ASSERT_TRUE(WaitFor([&] { return writer->closed(); }));
  EXPECT_EQ("", writer->data());
}

// A client that does not read is not read for: its queue bounds the memory.
class SlowWriter : public StringStreamWriter {
 public:
  size_t queued_bytes() const override { return queued.load(); }
  std::atomic<size_t> queued{1 << 20};
};

TEST_F(RunsApiTest, RunsApiLogFollowWaitsForASlowClientToDrain) {
  MakeApiWithFollowPoll(10ms);
  int64_t id = AddRun();
  AppendLog(id, "build", "compile", "o hello\n");
  HttpResponse r = Send("GET", "/api/v1/runs/" + std::to_string(id) + "/steps/build/compile/log?follow=1");
  auto writer = std::make_shared<SlowWriter>();
  r.stream->Start(writer);
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ("", writer->data());
  writer->queued = 0;
  r.stream->OnDrained();
  ASSERT_TRUE(WaitFor([&] { return writer->data() == "hello\n"; })) << writer->data();
  writer->Close();
  r.stream->OnClosed();
  EXPECT_TRUE(WaitFor([&] { return api_->follower_count() == 0; }));
}

TEST_F(RunsApiTest, RunsApiBigLogIsStreamedInPiecesNotFollowed) {
  RunsApi::Options options;
  options.max_log_body = 100;
  options.follow_chunk = 64;
  MakeApi(options);
  int64_t id = AddRun();  // compile is running, but this is no follow
  std::string records, expected;
  for (int i = 0; i < 100; ++i) {
    records += "o line " + std::to_string(i) + "\n";
    expected += "line " + std::to_string(i) + "\n";
  }
  AppendLog(id, "build", "compile", records);
  HttpResponse r = Send("GET", "/api/v1/runs/" + std::to_string(id) + "/steps/build/compile/log");
  auto writer = Start(r);
  ASSERT_TRUE(WaitFor([&] { return writer->closed(); }));
  EXPECT_EQ(expected, writer->data());
}

TEST_F(RunsApiTest, RunsApiDestructorEndsOpenLogStreams) {
  int64_t id = AddRun();
  HttpResponse r = Send("GET", "/api/v1/runs/" + std::to_string(id) + "/steps/build/compile/log?follow=1");
  auto writer = Start(r);
  ASSERT_TRUE(WaitFor([&] { return api_->follower_count() == 1; }));
  api_.reset();
  EXPECT_TRUE(writer->closed());
  auto late = std::make_shared<StringStreamWriter>();
  r.stream->Start(late);  // a stream started after the API is gone ends at once
  EXPECT_TRUE(late->closed());
}

// ---- control ----

TEST_F(RunsApiTest, RunsApiCancelAndApproveCallTheControlAndMapErrors) {
  HttpResponse r = Send("POST", "/api/v1/runs/7/cancel");
  ASSERT_EQ(202, r.status) << r.body;
  EXPECT_EQ(7, Body(r)["run_id"]);
  r = Send("POST", "/api/v1/runs/7/stages/production/approve");
  ASSERT_EQ(202, r.status) << r.body;
  EXPECT_EQ("production", Body(r)["stage"]);
  EXPECT_EQ((std::vector<std::string>{"cancel 7 by root", "approve 7 production by root"}),
            control_.calls);

  control_.result = Status::Conflict("run 7 is not running (it is success)");
  r = Send("POST", "/api/v1/runs/7/cancel");
  EXPECT_EQ(409, r.status);
  EXPECT_EQ("conflict", Body(r)["error"]);
  EXPECT_EQ("run 7 is not running (it is success)", Message(r));
  control_.result = Status::NotFound("run 7 has no stage 'prod'");
  r = Send("POST", "/api/v1/runs/7/stages/prod/approve");
  EXPECT_EQ(404, r.status);
  EXPECT_EQ("run 7 has no stage 'prod'", Message(r));
  control_.result = Status::Invalid("stage 'build' does not wait for approval");
  EXPECT_EQ(400, Send("POST", "/api/v1/runs/7/stages/build/approve").status);
  size_t calls = control_.calls.size();
  EXPECT_EQ(400, Send("POST", "/api/v1/runs/x/cancel").status);
  EXPECT_EQ(calls, control_.calls.size());
}

TEST_F(RunsApiTest, RunsApiRollbackTakesAnOptionalToRun) {
  HttpResponse r = Send("POST", "/api/v1/environments/production/rollback");
  ASSERT_EQ(202, r.status) << r.body;
  EXPECT_EQ(json({{"run_id", 42}}), Body(r));
  EXPECT_EQ(202, Send("POST", "/api/v1/environments/production/rollback", R"({"to_run": 12})").status);
  EXPECT_EQ(202, Send("POST", "/api/v1/environments/staging/rollback", R"({"to_run": null})").status);
  EXPECT_EQ((std::vector<std::string>{"rollback production to 0 by root",
                                      "rollback production to 12 by root",
                                      "rollback staging to 0 by root"}),
            control_.calls);
  struct Case {
    std::string body, starts;
  };
  for (const Case& c : std::vector<Case>{{"{nope", "invalid JSON"},
                                         {"[1]", "the request body must be a JSON object"},
                                         {R"({"to_run": "12"})", "to_run:"},
                                         {R"({"to_run": 0})", "to_run:"},
                                         {R"({"to_run": 1.5})", "to_run:"},
                                         {R"({"run": 3})", "run: unknown field"}}) {
    r = Send("POST", "/api/v1/environments/production/rollback", c.body);
    EXPECT_EQ(400, r.status) << c.body;
    EXPECT_EQ(0u, Message(r).rfind(c.starts, 0)) << Message(r);
  }
  EXPECT_EQ(3u, control_.calls.size());
  control_.result = Status::NotFound("no earlier successful deployment to production");
  r = Send("POST", "/api/v1/environments/production/rollback");
  EXPECT_EQ(404, r.status);
  EXPECT_EQ("no earlier successful deployment to production", Message(r));
}

// ---- webhooks ----

TEST_F(RunsApiTest, RunsApiPushMapsTheControlsAnswer) {
  control_.push_runs = {7, 8};
  HttpResponse r = Send("POST", "/api/v1/hooks/push/webshop", R"({"ref":"refs/heads/main"})", "",
                        {{"X-Hub-Signature-256", "sha256=ab"}});
  ASSERT_EQ(202, r.status) << r.body;
  EXPECT_EQ(json::array({7, 8}), Body(r)["runs"]);
  EXPECT_EQ("queued 2 runs", Body(r)["message"]);
  ASSERT_EQ(1u, control_.calls.size());
  EXPECT_EQ(R"(push webshop sig=sha256=ab body={"ref":"refs/heads/main"})", control_.calls[0]);

  control_.push_runs = {};
  control_.push_note = "branch 'gh-pages' is not built";
  r = Send("POST", "/api/v1/hooks/push/webshop", "{}", "");
  EXPECT_EQ(202, r.status);
  EXPECT_EQ(json::array(), Body(r)["runs"]);
  EXPECT_EQ("branch 'gh-pages' is not built", Body(r)["message"]);

  // A delivery handled before: 200, no run (docs/server.md "Webhook trust").
  control_.push_replay = true;
  control_.push_note = "delivery d-1 was handled before";
  r = Send("POST", "/api/v1/hooks/push/webshop", "{}", "");
  EXPECT_EQ(200, r.status) << r.body;
  EXPECT_EQ(json::array(), Body(r)["runs"]);
  EXPECT_EQ("delivery d-1 was handled before", Body(r)["message"]);
  control_.push_replay = false;

  control_.result = Status::Unauthorized("webshop: signature does not match");
  r = Send("POST", "/api/v1/hooks/push/webshop", "{}", "");
  EXPECT_EQ(401, r.status);
  EXPECT_EQ("unauthorized", Body(r)["error"]);
  EXPECT_EQ("webshop: signature does not match", Message(r));
  control_.result = Status::NotFound("no repository 'nope'");
  EXPECT_EQ(404, Send("POST", "/api/v1/hooks/push/nope", "{}", "").status);
  control_.result = Status::Invalid("not a push payload");
  EXPECT_EQ(400, Send("POST", "/api/v1/hooks/push/webshop", "x", "").status);
}

// A push may wait for a git fetch: it runs on a hook thread, and the HTTP
// server's only io thread keeps answering meanwhile.
TEST_F(RunsApiTest, RunsApiPushWaitsOnAHookThreadNotOnTheIoThread) {
  std::promise<void> release;
  control_.push_gate = release.get_future().share();
  control_.push_runs = {9};
  ASSERT_NO_FATAL_FAILURE(StartServer());
  std::thread pusher([&] {
    toggles::HttpClient hook(url_, {""});
    toggles::ClientResponse r;
    ASSERT_TRUE(hook.Send("POST", "/api/v1/hooks/push/webshop", "{}", {}, &r).ok());
    EXPECT_EQ(202, r.status);
    EXPECT_EQ(json::array({9}), json::parse(r.body)["runs"]);
  });
  ASSERT_TRUE(WaitFor([&] { return control_.pushes_entered == 1; }));  // held in the control
  toggles::HttpClient api(url_, {admin_});
  toggles::ClientResponse list;
  ASSERT_TRUE(api.Send("GET", "/api/v1/runs", "", {}, &list).ok()) << "the io thread is held by the push";
  EXPECT_EQ(200, list.status);
  release.set_value();
  pusher.join();
  EXPECT_NE(std::this_thread::get_id(), control_.push_thread);
  server_->Stop();
}

TEST_F(RunsApiTest, RunsApiPushesNotStartedWhenTheApiGoesAreAnswered503) {
  RunsApi::Options options;
  options.hook_threads = 1;
  MakeApi(options);
  std::promise<void> release;
  control_.push_gate = release.get_future().share();
  control_.push_runs = {1};
  // Two pushes: the first holds the only hook thread, the second waits in
  // the queue.
  // Started here, in order, so that the first is the one that runs.
  struct Capture : Responder {
    std::promise<HttpResponse> answer;
    std::atomic<bool> done{false};
    void Complete(HttpResponse r) override {
      if (!done.exchange(true)) answer.set_value(std::move(r));
    }
  };
  std::vector<std::future<HttpResponse>> answers;
  for (int i = 0; i < 2; ++i) {
    HttpRequest r = HttpRequest::For("POST", "/api/v1/hooks/push/webshop", "{}");
    HttpResponse deferred = router_->Dispatch(r);
    ASSERT_TRUE(deferred.is_deferred());
    auto capture = std::make_shared<Capture>();
    answers.push_back(capture->answer.get_future());
    deferred.deferred(capture);
  }
  ASSERT_TRUE(WaitFor([&] { return control_.pushes_entered == 1; }));  // the second is queued
  std::thread stopper([&] { api_.reset(); });  // waits for the running push
  std::this_thread::sleep_for(300ms);          // for the stopper to begin
  release.set_value();
  stopper.join();
  HttpResponse first = answers[0].get(), second = answers[1].get();
  EXPECT_EQ(202, first.status) << first.body;
  EXPECT_EQ(503, second.status) << second.body;
  EXPECT_EQ("ladle serve is stopping; push again later", Message(second));
  EXPECT_EQ(1u, control_.calls.size()) << "the queued push never ran";
}

// ---- deployments ----

TEST_F(RunsApiTest, RunsApiDeploymentsAreNewestFirstAndFilterByEnvironment) {
  int64_t run = AddRun();
  std::vector<int64_t> ids;
  for (const char* env : {"staging", "production", "staging"}) {
    DeploymentRecord d;
    d.environment = env;
    d.run_id = run;
    d.stage = "deploy";
    d.repo = "webshop";
    d.commit = "0123abcd";
    d.branch = "main";
    ASSERT_TRUE(store_->BeginDeployment(&d).ok());
    ASSERT_TRUE(store_->FinishDeployment(d.id, kSuccess).ok());
    ids.push_back(d.id);
  }
  HttpResponse r = Send("GET", "/api/v1/deployments", "", "client");
  ASSERT_EQ(200, r.status) << r.body;
  EXPECT_EQ(std::to_string(ids[2]) + " " + std::to_string(ids[1]) + " " + std::to_string(ids[0]),
            Ids(r, "deployments"));
  EXPECT_EQ("success", Body(r)["deployments"][0]["status"]);
  EXPECT_EQ(run, Body(r)["deployments"][0]["run_id"]);
  r = Send("GET", "/api/v1/deployments?environment=staging&limit=1");
  EXPECT_EQ(std::to_string(ids[2]), Ids(r, "deployments"));
  ASSERT_EQ(ids[2], Body(r)["next_before"]);
  r = Send("GET", "/api/v1/deployments?environment=staging&limit=1&before=" + std::to_string(ids[2]));
  EXPECT_EQ(std::to_string(ids[0]), Ids(r, "deployments"));
  EXPECT_FALSE(Body(r).contains("next_before"));
  EXPECT_EQ("", Ids(Send("GET", "/api/v1/deployments?environment=qa"), "deployments"));
}

// ---- events ----

// The (event, data) pairs of an SSE byte stream, and the last id.
struct Events {
  std::vector<std::pair<std::string, json>> list;
  uint64_t last_id = 0;
};
Events Parse(const std::string& stream) {
  Events out;
  toggles::SseParser parser([&](const toggles::SseParser::Event& e) {
    out.list.emplace_back(e.event, json::parse(e.data, nullptr, false));
    if (!e.id.empty()) out.last_id = std::stoull(e.id);
    return true;
  });
  parser.Feed(stream);
  return out;
}

TEST_F(RunsApiTest, RunsApiStreamPublishesRunStageAndStepEvents) {
  HttpResponse r = Send("GET", "/api/v1/runs/stream", "", "client");
  ASSERT_EQ(200, r.status);
  EXPECT_EQ("text/event-stream", r.headers.Get("Content-Type"));
  auto writer = Start(r);
  int64_t id = AddRun();
  RunRecord run;
  ASSERT_TRUE(store_->GetRun(id, &run).ok());
  events_->PublishRun(run);
  events_->PublishStage(id, run.stages[0]);
  events_->PublishStep(id, "build", run.stages[0].steps[0]);
  Events got = Parse(writer->data());
  ASSERT_EQ(3u, got.list.size()) << writer->data();
  EXPECT_EQ("run", got.list[0].first);
  EXPECT_EQ(id, got.list[0].second["id"]);
  EXPECT_EQ("running", got.list[0].second["status"]);
  EXPECT_FALSE(got.list[0].second.contains("stages"));
  EXPECT_EQ("stage", got.list[1].first);
  EXPECT_EQ((json{{"run_id", id}, {"name", "build"}, {"status", "running"}, {"environment", nullptr},
                  {"tests", nullptr}}),
            got.list[1].second);
  EXPECT_EQ("step", got.list[2].first);
  EXPECT_EQ(id, got.list[2].second["run_id"]);
  EXPECT_EQ("build", got.list[2].second["stage"]);
  EXPECT_EQ("compile", got.list[2].second["name"]);
  EXPECT_EQ(nullptr, got.list[2].second["exit_code"]);
  EXPECT_EQ(1, got.list[2].second["attempts"]);
}

TEST_F(RunsApiTest, RunsApiStreamReplaysFromLastEventId) {
  auto first = StartStream();
  PublishRuns(1, 3);
  Events seen = Parse(first->data());
  ASSERT_EQ(3u, seen.list.size());
  // A client that saw the first event reconnects: it gets the other two, then live ones.
  uint64_t after_first = seen.last_id - 2;
  auto again = StartStream(std::to_string(after_first));
  PublishRuns(4, 4);
  Events got = Parse(again->data());
  ASSERT_EQ(3u, got.list.size()) << again->data();
  EXPECT_EQ(2, got.list[0].second["id"]);
  EXPECT_EQ(3, got.list[1].second["id"]);
  EXPECT_EQ(4, got.list[2].second["id"]);
  EXPECT_EQ(seen.last_id + 1, got.last_id);
  // Up to date: nothing replayed.
  auto current = StartStream(std::to_string(got.last_id));
  EXPECT_EQ("", current->data());
}

TEST_F(RunsApiTest, RunsApiStreamSendsResetWhenTheRingNoLongerHasTheEvents) {
  RunEvents::Options events;
  events.max_events = 2;
  MakeApi(RunsApi::Options(), events);
  auto first = StartStream();
  PublishRuns(1, 4);
  Events seen = Parse(first->data());
  ASSERT_EQ(4u, seen.list.size());
  // Missed event 2, which the ring of 2 no longer holds.
  auto behind = StartStream(std::to_string(seen.last_id - 3));
  Events got = Parse(behind->data());
  ASSERT_EQ(1u, got.list.size()) << behind->data();
  EXPECT_EQ("reset", got.list[0].first);
  EXPECT_EQ(seen.last_id, got.last_id);
  // Still in the ring: replayed.
  auto near = StartStream(std::to_string(seen.last_id - 2));
  EXPECT_EQ(2u, Parse(near->data()).list.size());
  // An id from an earlier server process (smaller: ids are seeded from the clock).
  auto old = StartStream("5");
  got = Parse(old->data());
  ASSERT_EQ(1u, got.list.size());
  EXPECT_EQ("reset", got.list[0].first);
  PublishRuns(5, 5);  // and live events follow the reset
  got = Parse(old->data());
  ASSERT_EQ(2u, got.list.size());
  EXPECT_EQ(5, got.list[1].second["id"]);
}

TEST_F(RunsApiTest, RunsApiEventIdsGrowAcrossRestarts) {
  auto writer = StartStream();
  PublishRuns(1, 1);
  uint64_t before = Parse(writer->data()).last_id;
  std::this_thread::sleep_for(2ms);
  MakeApi(RunsApi::Options());  // a new server process, as far as ids go
  writer = StartStream();
  PublishRuns(1, 1);
  EXPECT_GT(Parse(writer->data()).last_id, before);
}

// ---- over a real socket ----

TEST_F(RunsApiTest, RunsApiOverARealSocketFollowsALogToItsEnd) {
  MakeApiWithFollowPoll(20ms);
  int64_t id = AddRun();
  AppendLog(id, "build", "compile", "o start\n");
  ASSERT_NO_FATAL_FAILURE(StartServer());
  toggles::HttpClient client(url_, {client_});

  toggles::ClientResponse got;
  ASSERT_TRUE(client.Send("GET", "/api/v1/runs/" + std::to_string(id), "", {}, &got).ok());
  EXPECT_EQ(200, got.status);
  EXPECT_EQ(id, json::parse(got.body)["id"]);

  std::thread step([&] {
    std::this_thread::sleep_for(100ms);
    AppendLog(id, "build", "compile", "e middle\n");
    std::this_thread::sleep_for(100ms);
    AppendLog(id, "build", "compile", "o end\n");
    SetStep(id, "build", "compile", kSuccess);
  });
  std::string body;
  int status = 0;
  toggles::HttpCanceller cancel;
  Status s = client.Stream(
      "/api/v1/runs/" + std::to_string(id) + "/steps/build/compile/log?follow=1", {}, 5s,
      [&](int st) { status = st; return true; },
      [&](std::string_view data) { body.append(data); return true; }, &cancel, &got);
  step.join();
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(200, status);
  EXPECT_EQ("start\nmiddle\nend\n", body);
  EXPECT_TRUE(WaitFor([&] { return api_->follower_count() == 0; }));
  server_->Stop();
}

// ---- artifacts (docs/server.md "HTTP API: runs") ----

// Writes DATA/artifacts/RUN/STAGE/STEP/PATH.
void WriteArtifact(const std::string& data, int64_t run, const std::string& stage,
                   const std::string& step, const std::string& path, const std::string& text) {
  std::filesystem::path file =
      std::filesystem::path(data) / "artifacts" / std::to_string(run) / stage / step / path;
  std::filesystem::create_directories(file.parent_path());
  std::ofstream(file, std::ios::binary) << text;
}

TEST_F(RunsApiTest, RunsApiArtifactsListsEveryKeptFileWithItsSize) {
  int64_t id = AddRun();
  WriteArtifact(dir_, id, "build", "compile", "out/app", "binary");
  WriteArtifact(dir_, id, "build", "compile", "out/lib/a.so", "ab");
  WriteArtifact(dir_, id, "deploy", "push", "receipt.txt", "");
  std::filesystem::create_symlink("/etc/passwd",
                                  dir_ + "/artifacts/" + std::to_string(id) + "/build/compile/pw");
  HttpResponse r = Send("GET", "/api/v1/runs/" + std::to_string(id) + "/artifacts", "", "client");
  ASSERT_EQ(200, r.status) << r.body;
  json body = Body(r);
  EXPECT_EQ(id, body["run_id"]);
  EXPECT_FALSE(body["truncated"].get<bool>());
  std::vector<std::string> got;
  for (const json& a : body["artifacts"]) {
    got.push_back(a["stage"].get<std::string>() + "/" + a["step"].get<std::string>() + " " +
                  a["path"].get<std::string>() + " " + a["size"].dump());
  }
  std::sort(got.begin(), got.end());
  EXPECT_EQ((std::vector<std::string>{"build/compile out/app 6", "build/compile out/lib/a.so 2",
                                      "deploy/push receipt.txt 0"}),
            got);  // the symlink is neither listed nor followed
  // A run with no artifacts lists none; an unknown run is a 404.
  int64_t other = AddRun();
  r = Send("GET", "/api/v1/runs/" + std::to_string(other) + "/artifacts");
  EXPECT_EQ(200, r.status);
  EXPECT_TRUE(Body(r)["artifacts"].empty());
  r = Send("GET", "/api/v1/runs/999/artifacts");
  EXPECT_EQ(404, r.status);
  EXPECT_EQ("run 999 not found", Message(r));
  EXPECT_EQ(401, Send("GET", "/api/v1/runs/" + std::to_string(id) + "/artifacts", "", "").status);
}

TEST_F(RunsApiTest, RunsApiArtifactsListIsBounded) {
  RunsApi::Options options;
  options.max_artifact_files = 3;
  MakeApi(options);
  int64_t id = AddRun();
  for (int i = 0; i < 5; ++i) WriteArtifact(dir_, id, "build", "compile", "f" + std::to_string(i), "x");
  HttpResponse r = Send("GET", "/api/v1/runs/" + std::to_string(id) + "/artifacts");
  ASSERT_EQ(200, r.status);
  EXPECT_EQ(3u, Body(r)["artifacts"].size());
  EXPECT_TRUE(Body(r)["truncated"].get<bool>());
}

TEST_F(RunsApiTest, RunsApiArtifactDownloadStreamsTheFileInPieces) {
  RunsApi::Options options;
  options.artifact_chunk = 4096;
  MakeApi(options);
  int64_t id = AddRun();
  std::string big;
  for (int i = 0; i < 50000; ++i) big += static_cast<char>('a' + i % 26);
  WriteArtifact(dir_, id, "build", "compile", "out/app", big);
  HttpResponse r =
      Send("GET", "/api/v1/runs/" + std::to_string(id) + "/artifacts/build/compile/out/app", "",
           "client");
  ASSERT_EQ(200, r.status) << r.body;
  EXPECT_EQ("application/octet-stream", r.headers.Get("Content-Type"));
  EXPECT_EQ("50000", r.headers.Get("X-Ladle-Size"));
  auto writer = Start(r);
  ASSERT_TRUE(WaitFor([&] { return writer->closed(); }));
  EXPECT_EQ(big, writer->data());
}

TEST_F(RunsApiTest, RunsApiArtifactDownload404sNameWhatIsMissingAndTraversalIsRefused) {
  int64_t id = AddRun();
  std::string run = "/api/v1/runs/" + std::to_string(id);
  std::string name = std::to_string(id);
  WriteArtifact(dir_, id, "build", "compile", "out/app", "binary");
  std::ofstream(dir_ + "/secret.txt") << "do not serve";
  std::filesystem::create_symlink(dir_ + "/secret.txt",
                                  dir_ + "/artifacts/" + name + "/build/compile/link");
  std::filesystem::create_directory_symlink(dir_, dir_ + "/artifacts/" + name + "/build/compile/up");
  HttpResponse r = Send("GET", "/api/v1/runs/999/artifacts/build/compile/out/app");
  EXPECT_EQ(404, r.status);
  EXPECT_EQ("run 999 not found", Message(r));
  r = Send("GET", run + "/artifacts/test/compile/out/app");
  EXPECT_EQ(404, r.status);
  EXPECT_EQ("run " + name + " has no stage 'test'", Message(r));
  r = Send("GET", run + "/artifacts/build/link/out/app");
  EXPECT_EQ(404, r.status);
  EXPECT_EQ("run " + name + " has no step 'build/link'", Message(r));
  r = Send("GET", run + "/artifacts/build/lint/out/app");
  EXPECT_EQ(404, r.status);
  EXPECT_EQ("step build/lint of run " + name + " kept no artifacts", Message(r));
  r = Send("GET", run + "/artifacts/build/compile/out/missing");
  EXPECT_EQ(404, r.status);
  EXPECT_EQ("no artifact 'out/missing' in step build/compile of run " + name, Message(r));
  for (const char* bad : {"out/../../../../secret.txt", "out/%2e%2e/x", "./out/app", "out//app"}) {
    SCOPED_TRACE(bad);
    r = Send("GET", run + "/artifacts/build/compile/" + bad);
    EXPECT_EQ(400, r.status) << r.body;
  }
  // Symlinks out of the step's dir are not followed, neither as the file nor on the way.
  EXPECT_EQ(404, Send("GET", run + "/artifacts/build/compile/link").status);
  EXPECT_EQ(404, Send("GET", run + "/artifacts/build/compile/up/secret.txt").status);
  EXPECT_EQ(404, Send("GET", run + "/artifacts/build/compile/out").status);  // a directory
  EXPECT_EQ(401, Send("GET", run + "/artifacts/build/compile/out/app", "", "").status);
}

TEST_F(RunsApiTest, RunsApiArtifactDownloadOverARealSocket) {
  int64_t id = AddRun();
  std::string big(3 << 20, 'z');
  WriteArtifact(dir_, id, "build", "compile", "blob", big);
  StartServer();
  toggles::HttpClient client(url_, toggles::HttpClient::Options{admin_});
  std::string body;
  int status = 0;
  toggles::ClientResponse got;
  toggles::HttpCanceller cancel;
  Status s = client.Stream(
      "/api/v1/runs/" + std::to_string(id) + "/artifacts/build/compile/blob", {}, 5s,
      [&](int st) { status = st; return true; },
      [&](std::string_view data) { body.append(data); return true; }, &cancel, &got);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(200, status);
  EXPECT_EQ(big.size(), body.size());
  EXPECT_TRUE(body == big);
  server_->Stop();
}

}  // namespace
}  // namespace ladle::runner

namespace ladle::runner {
namespace {

// docs/server.md "HTTP API: runs": POST /api/v1/runs and .../rerun.
TEST_F(RunsApiTest, TriggerQueuesARunOfABranchTagOrCommitForAdmins) {
  int64_t id = AddRun();
  control_.trigger_run = id;
  HttpResponse r = Send("POST", "/api/v1/runs", R"({"repo": "webshop", "branch": "main"})");
  ASSERT_EQ(201, r.status) << r.body;
  EXPECT_EQ(id, Body(r)["run_id"].get<int64_t>());
  EXPECT_EQ(id, Body(r)["id"].get<int64_t>());
  EXPECT_EQ("webshop", Body(r)["repo"]);
  EXPECT_EQ(201, Send("POST", "/api/v1/runs", R"({"repo": "webshop", "tag": "v1.2"})").status);
  EXPECT_EQ(201, Send("POST", "/api/v1/runs",
                      R"({"repo": "webshop", "commit": "0123456789012345678901234567890123456789"})")
                     .status);
  ASSERT_EQ(3u, control_.calls.size());
  EXPECT_EQ("trigger webshop branch=main tag= commit= by root", control_.calls[0]);
  EXPECT_EQ("trigger webshop branch= tag=v1.2 commit= by root", control_.calls[1]);
  EXPECT_EQ(403, Send("POST", "/api/v1/runs", R"({"repo": "webshop", "branch": "main"})", "client").status);
  EXPECT_EQ(401, Send("POST", "/api/v1/runs", R"({"repo": "webshop", "branch": "main"})", "").status);
}

TEST_F(RunsApiTest, TriggerRefusesBadBodiesNamingTheField) {
  EXPECT_EQ("give exactly one of branch, tag and commit",
            Message(Send("POST", "/api/v1/runs", R"({"repo": "webshop"})")));
  EXPECT_EQ("give exactly one of branch, tag and commit",
            Message(Send("POST", "/api/v1/runs", R"({"repo": "w", "branch": "a", "tag": "b"})")));
  EXPECT_EQ("repo: missing", Message(Send("POST", "/api/v1/runs", R"({"branch": "main"})")));
  EXPECT_EQ("branch: must be a non-empty string",
            Message(Send("POST", "/api/v1/runs", R"({"repo": "w", "branch": 3})")));
  EXPECT_EQ("ref: unknown field (expected repo, branch, tag or commit)",
            Message(Send("POST", "/api/v1/runs", R"({"repo": "w", "ref": "main"})")));
  EXPECT_EQ(400, Send("POST", "/api/v1/runs", "[1]").status);
  EXPECT_TRUE(control_.calls.empty());
  control_.result = Status::NotFound("no repository 'nope' in server.yml");
  HttpResponse r = Send("POST", "/api/v1/runs", R"({"repo": "nope", "branch": "main"})");
  EXPECT_EQ(404, r.status);
  EXPECT_EQ("no repository 'nope' in server.yml", Message(r));
}

TEST_F(RunsApiTest, RerunQueuesANewRunForAdmins) {
  int64_t id = AddRun();
  control_.trigger_run = id;
  HttpResponse r = Send("POST", "/api/v1/runs/" + std::to_string(id) + "/rerun");
  ASSERT_EQ(201, r.status) << r.body;
  EXPECT_EQ(id, Body(r)["run_id"].get<int64_t>());
  EXPECT_EQ("rerun " + std::to_string(id) + " by root", control_.calls.at(0));
  EXPECT_EQ(403, Send("POST", "/api/v1/runs/1/rerun", "", "client").status);
  EXPECT_EQ(400, Send("POST", "/api/v1/runs/abc/rerun").status);
  control_.result = Status::Conflict("run 1 is running");
  EXPECT_EQ(409, Send("POST", "/api/v1/runs/1/rerun").status);
}

}  // namespace
}  // namespace ladle::runner
