// End to end: `ladle store migrate --to postgresql://...` (docs/server.md
// "Moving to PostgreSQL") on a data dir that real `ladle run`s and the
// toggle and token stores filled, into a database of the fixture's
// PostgreSQL (tests/pg_util.h). The PostgreSQL stores then answer what the
// SQLite ones did: every run's JSON, the deployments, toggles, environments,
// audit trail, revision and tokens; new ids and revisions continue past the
// copied ones. A non-empty database, a running `ladle serve` and a value
// PostgreSQL cannot hold are refused with nothing written.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "core/pg.h"
#include "core/sqlite.h"
#include "env/subprocess.h"
#include "runner/store/run_store.h"
#include "tests/pg_util.h"
#include "tests/test_util.h"
#include "toggles/eval/model.h"
#include "toggles/server/store.h"
#include "toggles/server/tokens.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using ladle::Status;
using ladle::runner::RunRecord;
using ladle::runner::RunStore;
using ladle::toggles::Role;
using ladle::toggles::ToggleStore;
using ladle::toggles::TokenStore;

constexpr char kAdminToken[] = "ladle-migrate-e2e-admin-0123456789abcdef";

struct Result {
  int code = -1;
  std::string out, err;
  std::string all() const { return out + err; }
};

constexpr char kPipeline[] = R"(name: migrate
stages:
  - name: build
    steps:
      - name: compile
        run: echo built; echo built > out.txt
      - {name: lint, run: "exit 3", allow_failure: true}
  - name: deploy
    environment: staging
    steps:
      - name: ship
        run: test -z "$FAIL"
)";

class StoreMigrateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = ladle::testing::MakeTempDir("/tmp/ladle-migrate-e2e-XXXXXX");
    src_ = root_ / "src";
    data_ = root_ / "data";
    fs::create_directories(src_);
    fs::create_directories(data_);
    std::ofstream(src_ / "ladle.yml") << kPipeline;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  Result Ladle(std::vector<std::string> args, std::vector<std::string> env = {}) {
    std::vector<std::string> argv = {"env", "NO_COLOR=1", "LADLE_STORE="};
    argv.insert(argv.end(), env.begin(), env.end());
    argv.insert(argv.end(), {LADLE_BINARY, "--data", data_.string()});
    argv.insert(argv.end(), args.begin(), args.end());
    ladle::env::CommandResult r;
    Status s = ladle::env::RunCommand(argv, src_.string(), &r, std::chrono::seconds(120));
    EXPECT_TRUE(s.ok()) << s.ToString();
    return {r.exit_code, r.out, r.err};
  }
  Result Migrate(const std::string& uri) { return Ladle({"store", "migrate", "--to", uri}); }

  // Two runs of the pipeline: one that deploys, one whose deploy fails.
  void FillRuns() {
    Result r = Ladle({"run", "--backend", "local"});
    ASSERT_EQ(0, r.code) << r.all();
    r = Ladle({"run", "--backend", "local"}, {"FAIL=1"});
    ASSERT_EQ(1, r.code) << r.all();
    std::unique_ptr<RunStore> store;
    ASSERT_TRUE(RunStore::Open(data_.string(), &store).ok());
    bool fresh = false;
    ASSERT_TRUE(store->ClaimDelivery("delivery-1", "app", std::chrono::hours(24), &fresh).ok());
    ASSERT_TRUE(store->ClaimScheduleFire("app", "main", "0 * * * *", 1764900000, &fresh).ok());
  }

  // Toggles with configs in two environments, a deleted one, a rollout, and
  // tokens (one revoked). Returns the client token's secret.
  std::string FillToggles() {
    std::unique_ptr<ToggleStore> store;
    Status s = ToggleStore::Open(data_.string(), &store);
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (!s.ok()) return "";
    auto create = [&](const std::string& text) {
      ladle::toggles::Toggle t;
      ASSERT_TRUE(ladle::toggles::ParseToggleText(text, &t).ok()) << text;
      ladle::toggles::WriteResult w;
      Status c = store->Create(t, "alice", &w, "run 1");
      ASSERT_TRUE(c.ok()) << c.ToString();
    };
    create(R"({"key": "checkout", "description": "new checkout",
               "environments": {"production": {"enabled": false}, "staging": {"enabled": true}}})");
    create(R"({"key": "banner"})");
    create(R"({"key": "gone"})");
    ladle::toggles::WriteResult w;
    EXPECT_TRUE(store->Flip("banner", "production", true, std::nullopt, "bob", &w).ok());
    EXPECT_TRUE(store->SetRollout("checkout", "production", 25, "bob", "rollout stage", &w).ok());
    EXPECT_TRUE(store->Delete("gone", std::nullopt, "alice").ok());
    std::unique_ptr<TokenStore> tokens;
    EXPECT_TRUE(TokenStore::Open(data_.string(), &tokens).ok());
    std::string secret, other;
    ladle::toggles::TokenInfo info;
    EXPECT_TRUE(tokens->Create("web", Role::kClient, "production", &secret, &info).ok());
    EXPECT_TRUE(tokens->Create("old", Role::kAdmin, "", &other, &info).ok());
    EXPECT_TRUE(tokens->Revoke("old").ok());
    return secret;
  }

  // What the stores at `location` ("" for the data dir's SQLite files)
  // answer, as JSON: every run, deployment, toggle, environment, event and
  // token.
  static json Dump(const std::string& location, const std::string& data) {
    json out = DumpRuns(location, data);
    out.update(DumpToggles(location, data));
    return out;
  }
  static json DumpRuns(const std::string& location, const std::string& data) {
    json out;
    std::unique_ptr<RunStore> runs;
    Status s = RunStore::OpenLocation(location, data, &runs);
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (!s.ok()) return out;
    ladle::runner::RunFilter all;
    all.limit = 0;
    std::vector<RunRecord> list;
    EXPECT_TRUE(runs->ListRuns(all, &list).ok());
    out["runs"] = json::array();
    for (const RunRecord& r : list) {
      RunRecord full;
      EXPECT_TRUE(runs->GetRun(r.id, &full).ok()) << r.id;
      out["runs"].push_back(ladle::runner::RunToJson(full));
    }
    std::vector<ladle::runner::DeploymentRecord> deployments;
    EXPECT_TRUE(runs->ListDeployments("", 0, 0, &deployments).ok());
    out["deployments"] = json::array();
    for (const auto& d : deployments) out["deployments"].push_back(ladle::runner::DeploymentToJson(d));
    int64_t last = 0;
    EXPECT_TRUE(runs->LastScheduleFire("app", "main", "0 * * * *", &last).ok());
    out["schedule"] = last;
    return out;
  }
  static json DumpToggles(const std::string& location, const std::string& data) {
    json out;
    std::unique_ptr<ToggleStore> toggles;
    Status s = ToggleStore::Open(location.empty() ? data : location, &toggles);
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (!s.ok()) return out;
    std::vector<ladle::toggles::Toggle> list_t;
    EXPECT_TRUE(toggles->List(std::nullopt, &list_t).ok());
    out["toggles"] = json::array();
    for (const auto& t : list_t) out["toggles"].push_back(ladle::toggles::ToJson(t));
    std::vector<std::string> envs;
    EXPECT_TRUE(toggles->ListEnvironments(&envs).ok());
    out["environments"] = envs;
    std::vector<ladle::toggles::AuditEvent> events;
    EXPECT_TRUE(toggles->Events(0, 0, &events).ok());
    out["events"] = json::array();
    for (const auto& e : events) out["events"].push_back(ladle::toggles::ToJson(e));
    out["revision"] = toggles->CurrentRevision();

    std::unique_ptr<TokenStore> tokens;
    EXPECT_TRUE(TokenStore::OpenLocation(location, data, &tokens).ok());
    std::vector<ladle::toggles::TokenInfo> infos;
    EXPECT_TRUE(tokens->List(&infos).ok());
    out["tokens"] = json::array();
    for (const auto& t : infos) out["tokens"].push_back(ladle::toggles::ToJson(t));
    return out;
  }

  // One integer from `sql` on `uri`; -1 on error.
  static int64_t Scalar(const std::string& uri, const std::string& sql) {
    std::unique_ptr<ladle::PgConnection> c;
    Status s = ladle::PgConnection::Connect(uri, std::chrono::seconds(10), &c);
    ladle::PgResult r;
    if (s.ok()) s = c->Exec(sql, {}, &r);
    int64_t n = -1;
    if (s.ok()) s = r.Int64(0, 0, &n);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return n;
  }
  static int64_t CountRows(const std::string& uri, const std::string& table) {
    return Scalar(uri, "SELECT count(*) FROM " + table);
  }
  static int64_t CountTables(const std::string& uri) {
    return CountRows(uri, "information_schema.tables WHERE table_schema = current_schema()");
  }

  fs::path root_, src_, data_;
};

TEST_F(StoreMigrateTest, CopiesRunsTogglesAndTokensAndRefusesASecondTime) {
  LADLE_REQUIRE_POSTGRES();
  FillRuns();
  const std::string secret = FillToggles();
  const json before = Dump("", data_.string());
  ASSERT_EQ(2u, before["runs"].size()) << before.dump(2);
  ASSERT_FALSE(before["deployments"].empty());
  ASSERT_EQ(2u, before["toggles"].size()) << before.dump(2);
  ASSERT_EQ(6u, before["events"].size()) << before.dump(2);
  ASSERT_EQ(2u, before["tokens"].size()) << before.dump(2);

  const std::string uri = ladle::testing::PostgresServer::Get()->CreateDatabase("migrate");
  Result r = Migrate(uri);
  ASSERT_EQ(0, r.code) << r.all();
  EXPECT_NE(std::string::npos, r.out.find("ladle.db steps")) << r.out;
  EXPECT_NE(std::string::npos, r.out.find("store: postgresql://")) << r.out;

  const json after = Dump(uri, data_.string());
  EXPECT_EQ(before["runs"], after["runs"]);
  EXPECT_EQ(before["deployments"], after["deployments"]);
  EXPECT_EQ(before["schedule"], after["schedule"]);
  EXPECT_EQ(before["toggles"], after["toggles"]);
  EXPECT_EQ(before["environments"], after["environments"]);
  EXPECT_EQ(before["events"], after["events"]);
  EXPECT_EQ(before["revision"], after["revision"]);
  EXPECT_EQ(before["tokens"], after["tokens"]);

  // A second migrate into the now non-empty database: exit 2, nothing changes.
  r = Migrate(uri);
  EXPECT_EQ(2, r.code) << r.all();
  EXPECT_NE(std::string::npos, r.err.find("is not empty: table runs has 2 rows")) << r.err;
  EXPECT_EQ(after, Dump(uri, data_.string()));

  // What the PostgreSQL stores give next continues past what was copied.
  std::unique_ptr<RunStore> runs;
  ASSERT_TRUE(RunStore::OpenLocation(uri, data_.string(), &runs).ok());
  RunRecord run;
  run.repo = "app";
  run.pipeline = "migrate";
  run.file = "ladle.yml";
  ASSERT_TRUE(runs->CreateRun(&run).ok());
  EXPECT_EQ(3, run.id);
  bool fresh = true;
  ASSERT_TRUE(runs->ClaimDelivery("delivery-1", "app", std::chrono::hours(24), &fresh).ok());
  EXPECT_FALSE(fresh) << "a delivery handled before the move is still a replay";

  std::unique_ptr<ToggleStore> toggles;
  ASSERT_TRUE(ToggleStore::Open(uri, &toggles).ok());
  ladle::toggles::WriteResult w;
  ASSERT_TRUE(toggles->Flip("banner", "production", false, std::nullopt, "carol", &w).ok());
  EXPECT_EQ(before["revision"].get<int64_t>() + 1, toggles->CurrentRevision());

  std::unique_ptr<TokenStore> tokens;
  ASSERT_TRUE(TokenStore::OpenLocation(uri, data_.string(), &tokens).ok());
  ladle::toggles::Principal who;
  Status s = tokens->Authenticate(secret, &who);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ("web", who.name);
  std::string fresh_secret;
  ladle::toggles::TokenInfo info;
  s = tokens->Create("old", Role::kAdmin, "", &fresh_secret, &info);
  EXPECT_TRUE(s.ok()) << "a revoked token's name is free again: " << s.ToString();
  EXPECT_EQ(3, Scalar(uri, "SELECT id FROM tokens WHERE name = 'old' AND NOT revoked"))
      << "the new token's id comes after the two copied";
}

// The next step the command prints: `ladle serve` on the same data dir with
// the store in PostgreSQL answers the copied runs, serves their logs from
// the data dir, and takes the copied tokens.
TEST_F(StoreMigrateTest, ServeOnTheCopyAnswersRunsLogsAndTokens) {
  LADLE_REQUIRE_POSTGRES();
  FillRuns();
  const std::string secret = FillToggles();
  const json before = DumpRuns("", data_.string());
  const std::string uri = ladle::testing::PostgresServer::Get()->CreateDatabase("migrate_serve");
  Result r = Migrate(uri);
  ASSERT_EQ(0, r.code) << r.all();

  const int port = ladle::testing::FreePort();
  const std::string log = (root_ / "serve.log").string();
  const pid_t pid = ::fork();
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) _exit(126);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::setenv("LADLE_STORE", uri.c_str(), 1);
    ::setenv("LADLE_ADMIN_TOKEN", kAdminToken, 1);
    const std::string listen = "127.0.0.1:" + std::to_string(port);
    ::execl(LADLE_BINARY, LADLE_BINARY, "--data", data_.c_str(), "serve", "--listen",
            listen.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  ASSERT_GT(pid, 0);
  struct Stop {  // the server, by its pid, however the test ends
    pid_t pid;
    ~Stop() {
      ::kill(pid, SIGTERM);
      int status = 0;
      ::waitpid(pid, &status, 0);
    }
  } stop{pid};
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(10, 0);
  bool up = false;
  for (int i = 0; i < 400 && !up; ++i) {
    auto res = c.Get("/healthz");
    up = res && res->status == 200;
    if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ASSERT_TRUE(up) << ladle::testing::ReadFile(log);
  httplib::Headers admin = {{"Authorization", std::string("Bearer ") + kAdminToken}};
  auto run = c.Get("/api/v1/runs/1", admin);
  auto step_log = c.Get("/api/v1/runs/1/steps/build/compile/log", admin);
  auto toggles = c.Get("/api/v1/toggles", {{"Authorization", "Bearer " + secret}});
  ASSERT_TRUE(run && step_log && toggles) << ladle::testing::ReadFile(log);
  json want;
  for (const json& j : before["runs"])
    if (j["id"] == 1) want = j;
  EXPECT_EQ(want, json::parse(run->body, nullptr, false));
  EXPECT_EQ(200, step_log->status);
  EXPECT_NE(std::string::npos, step_log->body.find("built")) << step_log->body;
  EXPECT_EQ(200, toggles->status) << "the copied client token: " << toggles->body;
}

TEST_F(StoreMigrateTest, RunningServeIsRefusedAndNothingIsWritten) {
  LADLE_REQUIRE_POSTGRES();
  FillRuns();
  const std::string uri = ladle::testing::PostgresServer::Get()->CreateDatabase("migrate_lock");
  // serve.lock held as `ladle serve` holds it (runner/serve/server.cc).
  const std::string lock = (data_ / "serve.lock").string();
  int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(0, ::flock(fd, LOCK_EX | LOCK_NB));
  Result r = Migrate(uri);
  EXPECT_EQ(3, r.code) << r.all();
  EXPECT_NE(std::string::npos, r.err.find("stop ladle serve first")) << r.err;
  EXPECT_EQ(0, CountTables(uri)) << "nothing created while the server runs";
  ::close(fd);
  r = Migrate(uri);
  EXPECT_EQ(0, r.code) << r.all();
}

TEST_F(StoreMigrateTest, ValueThatDoesNotFitNamesTableRowAndColumnAndWritesNothing) {
  LADLE_REQUIRE_POSTGRES();
  FillRuns();
  {
    std::unique_ptr<ladle::Database> db;
    ASSERT_TRUE(ladle::Database::Open((data_ / "ladle.db").string(), &db).ok());
    ASSERT_TRUE(db->Exec("UPDATE steps SET allow_failure = 7 WHERE run_id = 2 AND name = 'lint'").ok());
  }
  const std::string uri = ladle::testing::PostgresServer::Get()->CreateDatabase("migrate_bad");
  Result r = Migrate(uri);
  EXPECT_EQ(2, r.code) << r.all();
  EXPECT_NE(std::string::npos,
            r.err.find("table steps, row (run_id=2, stage=build, name=lint), column "
                       "allow_failure: '7' is not a boolean"))
      << r.err;
  EXPECT_EQ(0, CountRows(uri, "runs")) << "all or nothing: the runs copied before it are not kept";
  {
    std::unique_ptr<ladle::Database> db;
    ASSERT_TRUE(ladle::Database::Open((data_ / "ladle.db").string(), &db).ok());
    ASSERT_TRUE(db->Exec("UPDATE steps SET allow_failure = 1 WHERE run_id = 2 AND name = 'lint'").ok());
  }
  r = Migrate(uri);
  EXPECT_EQ(0, r.code) << "the refused copy left the database empty: " << r.all();
  EXPECT_EQ(2, CountRows(uri, "runs"));
}

// The copy converts by the PostgreSQL column's type, whatever it is: a
// schema whose columns differ from today's (times as timestamptz, a
// smallint, a boolean as an integer, an integer as text) still gets every
// value, and a value that does not fit is named.
TEST_F(StoreMigrateTest, ValuesAreConvertedByThePostgresColumnsType) {
  LADLE_REQUIRE_POSTGRES();
  FillRuns();
  auto sqlite = [&](const std::string& sql) {
    std::unique_ptr<ladle::Database> db;
    ASSERT_TRUE(ladle::Database::Open((data_ / "ladle.db").string(), &db).ok());
    ASSERT_TRUE(db->Exec(sql).ok()) << sql;
  };
  const std::string uri = ladle::testing::PostgresServer::Get()->CreateDatabase("migrate_types");
  // The tables, created by a migrate of an empty data dir, then changed.
  const fs::path full = data_;
  data_ = root_ / "empty";
  fs::create_directories(data_);
  Result r = Migrate(uri);
  data_ = full;
  ASSERT_EQ(0, r.code) << r.all();
  std::unique_ptr<ladle::PgConnection> c;
  ASSERT_TRUE(ladle::PgConnection::Connect(uri, std::chrono::seconds(10), &c).ok());
  Status s = c->Exec(
      "ALTER TABLE runs ALTER COLUMN created_at TYPE timestamptz USING created_at::timestamptz;"
      "ALTER TABLE runs ALTER COLUMN dirty DROP DEFAULT;"
      "ALTER TABLE runs ALTER COLUMN dirty TYPE integer USING dirty::int;"
      "ALTER TABLE runs ALTER COLUMN owner_pid TYPE text;"
      "ALTER TABLE steps ALTER COLUMN exit_code TYPE smallint");
  ASSERT_TRUE(s.ok()) << s.ToString();

  sqlite("UPDATE steps SET exit_code = 70000 WHERE run_id = 1 AND name = 'lint'");
  r = Migrate(uri);
  EXPECT_EQ(2, r.code) << r.all();
  EXPECT_NE(std::string::npos,
            r.err.find("table steps, row (run_id=1, stage=build, name=lint), column exit_code: "
                       "70000 does not fit PostgreSQL's smallint"))
      << r.err;
  sqlite("UPDATE steps SET exit_code = 3 WHERE run_id = 1 AND name = 'lint'");
  sqlite("UPDATE runs SET created_at = 'yesterday' WHERE id = 2");
  r = Migrate(uri);
  EXPECT_EQ(2, r.code) << r.all();
  EXPECT_NE(std::string::npos,
            r.err.find("table runs, row id=2, column created_at: 'yesterday' is not an RFC 3339 time"))
      << r.err;
  sqlite("UPDATE runs SET created_at = '2026-12-05T08:04:51.755Z' WHERE id = 2");

  r = Migrate(uri);
  ASSERT_EQ(0, r.code) << r.all();
  EXPECT_EQ(1, Scalar(uri, "SELECT count(*) FROM runs WHERE id = 2 AND"
                           " created_at = '2026-12-05 08:04:51.755+00'::timestamptz"));
  EXPECT_EQ(3, Scalar(uri, "SELECT exit_code FROM steps WHERE run_id = 1 AND name = 'lint'"));
  EXPECT_EQ(1, Scalar(uri, "SELECT count(*) FROM runs WHERE owner_pid ~ '^[0-9]+$' AND id = 1"));
}

TEST_F(StoreMigrateTest, DataDirWithTogglesOnlyCopiesWhatExists) {
  LADLE_REQUIRE_POSTGRES();
  FillToggles();
  ASSERT_FALSE(fs::exists(data_ / "ladle.db"));
  const json before = DumpToggles("", data_.string());
  const std::string uri = ladle::testing::PostgresServer::Get()->CreateDatabase("migrate_toggles");
  Result r = Ladle({"--json", "store", "migrate", "--to", uri});
  ASSERT_EQ(0, r.code) << r.all();
  const json report = json::parse(r.out, nullptr, false);
  ASSERT_FALSE(report.is_discarded()) << r.out;
  EXPECT_EQ(json::array({"ladle.db"}), report["missing_files"]);
  EXPECT_FALSE(fs::exists(data_ / "ladle.db")) << "the migration creates no SQLite file";
  EXPECT_EQ(before, DumpToggles(uri, data_.string()));
  EXPECT_EQ(0, CountRows(uri, "runs"));
}

TEST_F(StoreMigrateTest, RunThatLadleRunStillRunsIsRefused) {
  LADLE_REQUIRE_POSTGRES();
  std::ofstream(src_ / "ladle.yml")
      << "name: slow\nstages:\n  - name: build\n    steps:\n      - {name: wait, run: \"sleep 30\"}\n";
  const pid_t pid = ::fork();
  if (pid == 0) {
    int fd = ::open("/dev/null", O_WRONLY);
    if (fd < 0 || ::chdir(src_.c_str()) != 0) _exit(126);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execl(LADLE_BINARY, LADLE_BINARY, "--data", data_.c_str(), "run", "--backend", "local",
            static_cast<char*>(nullptr));
    _exit(127);
  }
  ASSERT_GT(pid, 0);
  bool running = false;
  for (int i = 0; i < 300 && !running; ++i) {
    Result show = Ladle({"--json", "show", "1"});
    const json run = json::parse(show.out, nullptr, false);
    running = show.code == 0 && run.is_object() && run.value("status", "") == "running";
    if (!running) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const std::string uri = ladle::testing::PostgresServer::Get()->CreateDatabase("migrate_live");
  Result r = running ? Migrate(uri) : Result{};
  ::kill(pid, SIGTERM);  // ladle run cancels its step and ends
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(running) << "run 1 never ran";
  EXPECT_EQ(2, r.code) << r.all();
  EXPECT_NE(std::string::npos, r.err.find("run 1 is still running")) << r.err;
  EXPECT_EQ(0, CountRows(uri, "runs"));
}

TEST_F(StoreMigrateTest, NotAPostgresUriIsUsage) {
  Result r = Migrate("/tmp/somewhere");
  EXPECT_EQ(2, r.code) << r.all();
  EXPECT_NE(std::string::npos, r.err.find("--to: a postgresql:// URI")) << r.err;
}

}  // namespace
