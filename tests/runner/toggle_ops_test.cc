// runner/exec/toggle_ops.h: the same contract against a real ToggleStore in a temp
// dir and against the real toggle API served on a loopback port.
#include "runner/exec/toggle_ops.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/http_server.h"
#include "toggles/server/api.h"
#include "toggles/server/tokens.h"
#include "tests/test_util.h"

namespace ladle::runner {
namespace {

using toggles::AuditEvent;
using toggles::EnvironmentConfig;
using toggles::SyncEntry;
using toggles::SyncResult;
using toggles::Toggle;

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

// "created=a,b updated=c unchanged= remove=d"
std::string Summary(const SyncResult& r) {
  return "created=" + Join(r.created) + " updated=" + Join(r.updated) +
         " unchanged=" + Join(r.unchanged) + " remove=" + Join(r.removal_candidates);
}

SyncEntry Entry(const std::string& key, const std::string& description) {
  SyncEntry e;
  e.key = key;
  e.fields.description = description;
  return e;
}

// "enabled 25", "disabled 0", or the error.
std::string Rollout(ToggleOps* ops, const std::string& key, const std::string& env = "production") {
  bool enabled = false;
  int percent = 0;
  Status s = ops->GetRollout(key, env, &enabled, &percent);
  if (!s.ok()) return s.message();
  return std::string(enabled ? "enabled " : "disabled ") + std::to_string(percent);
}

EnvironmentConfig Config(bool enabled, const std::string& strategies_json) {
  EnvironmentConfig c;
  Status s = toggles::ParseEnvironmentConfig(
      nlohmann::json::parse("{\"enabled\":" + std::string(enabled ? "true" : "false") +
                            ",\"strategies\":" + strategies_json + "}"),
      &c);
  EXPECT_TRUE(s.ok()) << s.message();
  return c;
}

// A data dir with a toggle store, and the ToggleOps under test over it: the
// store itself (param false) or the toggle API on a loopback port (true).
// Assertions read the store directly either way.
class ToggleOpsTest : public ::testing::TestWithParam<bool> {
 protected:
  bool http() const { return GetParam(); }

  void SetUp() override {
    char tmpl[] = "/tmp/ladle_toggle_ops_test.XXXXXX";
    ASSERT_NE(nullptr, mkdtemp(tmpl));
    dir_ = tmpl;
    ASSERT_TRUE(toggles::ToggleStore::Open(dir_, &store_).ok());
    if (!http()) {
      ops_ = StoreToggleOps(store_.get());
      return;
    }
    ASSERT_TRUE(toggles::TokenStore::Open(dir_, &tokens_).ok());
    toggles::TokenInfo info;
    ASSERT_TRUE(tokens_->Create("pipeline", toggles::Role::kAdmin, "", &token_, &info).ok());
    api_ = std::make_unique<toggles::ToggleApi>(*store_, *tokens_, nullptr);
    api_->Register(&router_);
    server_ = std::make_unique<HttpServer>(router_, HttpServerOptions{});
    ASSERT_TRUE(server_->Start().ok());
    url_ = "http://127.0.0.1:" + std::to_string(server_->port());
    ASSERT_TRUE(HttpToggleOps(url_, token_, &ops_).ok());
  }

  void TearDown() override {
    ops_.reset();
    if (server_) server_->Stop();
    server_.reset();
    api_.reset();
    tokens_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Who the store records for writes through ops_: over HTTP, the token's name.
  std::string Actor() const { return http() ? "pipeline" : "ladle run"; }

  void Create(const std::string& key, const std::map<std::string, EnvironmentConfig>& envs = {}) {
    Toggle t;
    t.key = key;
    t.environments = envs;
    toggles::WriteResult w;
    ASSERT_TRUE(store_->Create(t, "alice", &w).ok());
  }

  Toggle Get(const std::string& key) {
    Toggle t;
    Status s = store_->Get(key, std::nullopt, &t);
    EXPECT_TRUE(s.ok()) << s.message();
    return t;
  }

  AuditEvent LastEvent(const std::string& key) {
    std::vector<AuditEvent> events;
    EXPECT_TRUE(store_->History(key, &events).ok());
    return events.empty() ? AuditEvent() : events.back();
  }

  std::string dir_;
  std::unique_ptr<toggles::ToggleStore> store_;
  std::unique_ptr<toggles::TokenStore> tokens_;
  std::unique_ptr<toggles::ToggleApi> api_;
  Router router_;
  std::unique_ptr<HttpServer> server_;
  std::string url_, token_;
  std::unique_ptr<ToggleOps> ops_;
};

INSTANTIATE_TEST_SUITE_P(ToggleOps, ToggleOpsTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "Http" : "Store";
                         });

TEST_P(ToggleOpsTest, SyncCreatesDisabledInEveryEnvironment) {
  Create("old", {{"staging", Config(true, "[]")}});  // makes "staging" exist
  SyncResult r;
  Status s = ops_->Sync({Entry("new-checkout", "One-page checkout"), Entry("old", "")}, Actor(),
                        "run 12", &r);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ("created=new-checkout updated= unchanged=old remove=", Summary(r));
  EXPECT_EQ(store_->CurrentRevision(), r.revision);
  Toggle t = Get("new-checkout");
  EXPECT_EQ("One-page checkout", t.description);
  ASSERT_EQ(2u, t.environments.size());
  EXPECT_FALSE(t.environments["production"].enabled);
  EXPECT_FALSE(t.environments["staging"].enabled);
  AuditEvent e = LastEvent("new-checkout");
  EXPECT_EQ(Actor(), e.actor);
  EXPECT_EQ("run 12", e.note);
}

TEST_P(ToggleOpsTest, SyncNeverSwitchesAToggleOnOrOff) {
  Create("on", {{"production", Config(true, R"([{"rollout":{"percent":30}}])")}});
  Create("off");
  Create("stale");
  SyncEntry typed = Entry("on", "now described");
  typed.fields.type = toggles::ToggleType::kOps;
  SyncResult r;
  Status s = ops_->Sync({typed, Entry("off", "")}, Actor(), "run 3", &r);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ("created= updated=on unchanged=off remove=stale", Summary(r));
  Toggle on = Get("on");
  EXPECT_EQ("now described", on.description);
  EXPECT_EQ(toggles::ToggleType::kOps, on.type);
  EXPECT_EQ(Config(true, R"([{"rollout":{"percent":30}}])"), on.environments["production"]);
  EXPECT_FALSE(Get("off").environments["production"].enabled);
  EXPECT_EQ("run 3", LastEvent("on").note);
  EXPECT_EQ(Actor(), LastEvent("on").actor);
  // The same again changes nothing and writes nothing.
  int64_t revision = store_->CurrentRevision();
  ASSERT_TRUE(ops_->Sync({typed, Entry("off", "")}, Actor(), "run 4", &r).ok());
  EXPECT_EQ("created= updated= unchanged=on,off remove=stale", Summary(r));
  EXPECT_EQ(revision, store_->CurrentRevision());
}

TEST_P(ToggleOpsTest, SyncOfABadListWritesNothing) {
  SyncEntry bad = Entry("b", "");
  bad.fields.variants = std::vector<toggles::Variant>{{"x", 10, true}};
  SyncResult r;
  Status s = ops_->Sync({Entry("a", ""), bad}, Actor(), "", &r);
  EXPECT_EQ(Code::kInvalid, s.code());
  EXPECT_EQ("toggles[1].variants: weights must sum to 1000, got 10", s.message());
  s = ops_->Sync({Entry("a", ""), Entry("a", "")}, Actor(), "", &r);
  EXPECT_EQ("toggles[1].key: duplicate key \"a\"", s.message());
  EXPECT_EQ(0, store_->CurrentRevision());
}

TEST_P(ToggleOpsTest, GetRolloutReadsTheEnvironment) {
  Create("off");
  Create("all", {{"production", Config(true, "[]")}});
  Create("quarter", {{"production", Config(true, R"([{"rollout":{"percent":25}}])")}});
  Create("quarter-off", {{"production", Config(false, R"([{"rollout":{"percent":25}}])")}});
  Create("users", {{"production", Config(true, R"([{"users":["alice"]}])")}});
  Create("two",
         {{"production", Config(true, R"([{"rollout":{"percent":5}},{"users":["alice"]}])")}});
  EXPECT_EQ("disabled 0", Rollout(ops_.get(), "off"));
  EXPECT_EQ("enabled 100", Rollout(ops_.get(), "all"));
  EXPECT_EQ("enabled 25", Rollout(ops_.get(), "quarter"));
  EXPECT_EQ("disabled 0", Rollout(ops_.get(), "quarter-off"));
  EXPECT_EQ("enabled -1", Rollout(ops_.get(), "users"));
  EXPECT_EQ("enabled -1", Rollout(ops_.get(), "two"));
  EXPECT_EQ("disabled 0", Rollout(ops_.get(), "all", "staging"));  // not listed there: off
  bool enabled;
  int percent;
  Status s = ops_->GetRollout("nope", "production", &enabled, &percent);
  EXPECT_EQ(Code::kNotFound, s.code());
  EXPECT_EQ(http() ? "toggle \"nope\" not found (404)" : "toggle \"nope\" not found", s.message());
  EXPECT_EQ(Code::kInvalid, ops_->GetRollout("all", "a b", &enabled, &percent).code());
}

TEST_P(ToggleOpsTest, SetRolloutAndTurnOffCarryTheNote) {
  Create("sticky", {{"production",
                     Config(false, R"([{"rollout":{"percent":5,"stickiness":"accountId"}}])")}});
  Status s = ops_->SetRollout("sticky", "production", 40, Actor(), "run 9");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(Config(true, R"([{"rollout":{"percent":40,"stickiness":"accountId"}}])"),
            Get("sticky").environments["production"]);
  EXPECT_EQ("run 9", LastEvent("sticky").note);
  EXPECT_EQ(Actor(), LastEvent("sticky").actor);
  // A note is UTF-8 text, over HTTP too.
  s = ops_->TurnOff("sticky", "production", Actor(), "run 9 \xE2\x80\x94 check failed at 40%");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ("disabled 0", Rollout(ops_.get(), "sticky"));
  EXPECT_EQ("run 9 \xE2\x80\x94 check failed at 40%", LastEvent("sticky").note);
  int64_t revision = store_->CurrentRevision();
  EXPECT_TRUE(ops_->TurnOff("sticky", "production", Actor(), "again").ok());  // idempotent
  EXPECT_EQ(revision, store_->CurrentRevision());
  EXPECT_EQ(Code::kNotFound, ops_->SetRollout("nope", "production", 5, Actor(), "").code());
  EXPECT_EQ(Code::kNotFound, ops_->TurnOff("nope", "production", Actor(), "").code());
  EXPECT_EQ(Code::kInvalid, ops_->SetRollout("sticky", "production", 101, Actor(), "").code());
}

TEST_P(ToggleOpsTest, DescribeSaysWhere) {
  EXPECT_EQ(http() ? "the toggle server at " + url_ : "this server's toggle store",
            ops_->Describe());
}

TEST(ToggleOpsStore, OpenStoreToggleOpsCreatesTheDataDir) {
  char tmpl[] = "/tmp/ladle_toggle_ops_test.XXXXXX";
  ASSERT_NE(nullptr, mkdtemp(tmpl));
  std::string data = std::string(tmpl) + "/data";
  std::unique_ptr<ToggleOps> ops;
  Status s = OpenStoreToggleOps(data, &ops);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ("the toggle store in " + data, ops->Describe());
  SyncResult r;
  ASSERT_TRUE(ops->Sync({Entry("a", "")}, "ladle run", "run 1", &r).ok());
  EXPECT_TRUE(std::filesystem::exists(data + "/toggles.db"));
  ops.reset();
  // Another process's view of the same file sees it.
  std::unique_ptr<toggles::ToggleStore> store;
  ASSERT_TRUE(toggles::ToggleStore::Open(data, &store).ok());
  Toggle t;
  EXPECT_TRUE(store->Get("a", std::nullopt, &t).ok());
  store.reset();
  std::filesystem::remove_all(tmpl);
}

using ladle::testing::FreePort;

TEST(ToggleOpsHttp, UnreachableServerIsUnavailable) {
  std::unique_ptr<ToggleOps> ops;
  std::string url = "http://127.0.0.1:" + std::to_string(FreePort());
  ASSERT_TRUE(HttpToggleOps(url, "t", &ops).ok());
  SyncResult r;
  Status s = ops->Sync({Entry("a", "")}, "x", "", &r);
  EXPECT_EQ(Code::kUnavailable, s.code());
  EXPECT_EQ("no toggle server at " + url +
                " (could not connect): is `ladle serve` running there? (unset LADLE_SERVER to use "
                "the data dir's toggle store instead)",
            s.message());
  EXPECT_EQ(3, s.ExitCode());
  EXPECT_EQ(Code::kInvalid, HttpToggleOps("https://h", "t", &ops).code());
}

TEST(ToggleOpsHttp, ServerErrorsKeepTheirMessage) {
  Router router;
  router.Add("GET", "/api/v1/toggles/{key}", [](const HttpRequest& r) {
    return r.Param("key") == "broken" ? HttpResponse::Error(500, "internal", "database is locked")
                                      : HttpResponse::Error(401, "unauthorized", "unknown token");
  });
  HttpServer server(router, HttpServerOptions{});
  ASSERT_TRUE(server.Start().ok());
  std::unique_ptr<ToggleOps> ops;
  ASSERT_TRUE(HttpToggleOps("http://127.0.0.1:" + std::to_string(server.port()), "t", &ops).ok());
  bool enabled;
  int percent;
  Status s = ops->GetRollout("broken", "production", &enabled, &percent);
  EXPECT_EQ(Code::kUnavailable, s.code());
  EXPECT_EQ("toggle server error: database is locked (500)", s.message());
  s = ops->GetRollout("other", "production", &enabled, &percent);
  EXPECT_EQ(Code::kUnauthorized, s.code());
  EXPECT_EQ("unknown token (401)", s.message());
  server.Stop();
}

TEST(ToggleOpsToken, FromTheEnvironmentElseTheDataDir) {
  char tmpl[] = "/tmp/ladle_toggle_ops_test.XXXXXX";
  ASSERT_NE(nullptr, mkdtemp(tmpl));
  std::string dir = tmpl;
  const char* saved = std::getenv("LADLE_TOKEN");
  std::string saved_value = saved ? saved : "";
  unsetenv("LADLE_TOKEN");
  std::string token;
  Status s = FindToggleToken(dir, &token);
  EXPECT_EQ(Code::kInvalid, s.code());
  EXPECT_NE(std::string::npos, s.message().find(dir + "/admin.token")) << s.message();
  std::ofstream(dir + "/admin.token") << "secret-from-file\n";
  ASSERT_TRUE(FindToggleToken(dir, &token).ok());
  EXPECT_EQ("secret-from-file", token);
  setenv("LADLE_TOKEN", "secret-from-env", 1);
  ASSERT_TRUE(FindToggleToken(dir, &token).ok());
  EXPECT_EQ("secret-from-env", token);
  if (saved)
    setenv("LADLE_TOKEN", saved_value.c_str(), 1);
  else
    unsetenv("LADLE_TOKEN");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ladle::runner
