#include "toggles/server/store.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/sqlite.h"
#include "tests/pg_util.h"

namespace ladle::toggles {
namespace {

using json = nlohmann::json;

constexpr const char* kNow = "2026-11-29T10:00:00.000Z";

std::string CodeName(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kInvalid: return "invalid";
    case Code::kNotFound: return "not_found";
    case Code::kConflict: return "conflict";
    case Code::kPrecondition: return "precondition";
    default: return "other";
  }
}

// "ok", or "CODE: message": what a route would answer.
std::string Result(const Status& s) {
  return s.ok() ? "ok" : CodeName(s.code()) + ": " + s.message();
}

Toggle MakeToggle(const std::string& text) {
  Toggle t;
  Status s = ParseToggleText(text, &t);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return t;
}

EnvironmentConfig MakeConfig(const std::string& text) {
  EnvironmentConfig c;
  Status s = ParseEnvironmentConfig(json::parse(text), &c);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return c;
}

// Every test runs on both stores (docs/design.md "Two stores: SQLite and
// PostgreSQL"): "sqlite" on a temp data dir, "postgresql" on a new database
// of the fixture's server (tests/pg_util.h).
class ToggleStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ladle_store_test.XXXXXX";
    ASSERT_NE(nullptr, mkdtemp(tmpl));
    dir_ = tmpl;
    location_ = dir_;
    if (pg()) {
      LADLE_REQUIRE_POSTGRES();
      location_ = testing::PostgresServer::Get()->CreateDatabase(
          ::testing::UnitTest::GetInstance()->current_test_info()->name());
    }
    store_ = OpenStore();
  }
  bool pg() const { return GetParam() == "postgresql"; }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::unique_ptr<ToggleStore> OpenStore() {
    ToggleStore::Options options;
    options.now = [] { return std::string(kNow); };
    std::unique_ptr<ToggleStore> store;
    Status s = ToggleStore::Open(location_, options, &store);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return store;
  }

  void Reopen() {
    store_.reset();
    store_ = OpenStore();
  }

  std::string Create(const std::string& text) {
    WriteResult r;
    return Result(store_->Create(MakeToggle(text), "alice", &r));
  }

  std::string Flip(const std::string& key, const std::string& env, bool on,
                   std::optional<int64_t> expected = std::nullopt) {
    WriteResult r;
    Status s = store_->Flip(key, env, on, expected, "alice", &r);
    return s.ok() ? (r.changed ? "changed" : "unchanged") : Result(s);
  }

  // The toggle's JSON, or the error.
  std::string Dump(const std::string& key, std::optional<std::string> env = std::nullopt) {
    Toggle t;
    Status s = store_->Get(key, env, &t);
    return s.ok() ? ToJson(t).dump() : Result(s);
  }

  // "REV ACTION KEY[@ENV][ (NOTE)]" for every event, comma separated.
  std::string EventLog(ToggleStore* store = nullptr) {
    std::vector<AuditEvent> events;
    Status s = (store ? store : store_.get())->Events(0, 0, &events);
    if (!s.ok()) return Result(s);
    std::string out;
    for (const AuditEvent& e : events) {
      if (!out.empty()) out += ", ";
      out += std::to_string(e.revision) + " " + e.action + " " + e.key;
      if (!e.environment.empty()) out += "@" + e.environment;
      if (!e.note.empty()) out += " (" + e.note + ")";
    }
    return out;
  }

  AuditEvent LastEvent() {
    std::vector<AuditEvent> events;
    EXPECT_TRUE(store_->Events(store_->CurrentRevision() - 1, 1, &events).ok());
    return events.empty() ? AuditEvent{} : events[0];
  }

  std::string Environments() {
    std::vector<std::string> envs;
    Status s = store_->ListEnvironments(&envs);
    if (!s.ok()) return Result(s);
    std::string out;
    for (const std::string& e : envs) out += (out.empty() ? "" : ",") + e;
    return out;
  }

  std::string dir_;
  std::string location_;  // dir_, or a postgresql:// URI
  std::unique_ptr<ToggleStore> store_;
};

INSTANTIATE_TEST_SUITE_P(Stores, ToggleStoreTest, ::testing::Values("sqlite", "postgresql"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

// --- create, read, reopen ---

TEST_P(ToggleStoreTest, NewStoreHasProductionOnlyAndRevisionZero) {
  EXPECT_EQ("production", Environments());
  EXPECT_EQ(0, store_->CurrentRevision());
  EXPECT_EQ(0, store_->GetSnapshot()->revision());
  EXPECT_TRUE(store_->GetSnapshot()->toggles().empty());
}

TEST_P(ToggleStoreTest, CreateIsDisabledInEveryEnvironment) {
  ASSERT_EQ("ok", Create(R"({"key": "seed"})"));
  ASSERT_EQ("changed", Flip("seed", "staging", true));
  ASSERT_EQ("ok", Create(R"({"key": "a", "type": "ops", "description": "d"})"));
  EXPECT_EQ(R"({"description":"d","environments":{"production":{"enabled":false,)"
            R"("strategies":[]},"staging":{"enabled":false,"strategies":[]}},"key":"a",)"
            R"("revision":3,"type":"ops","variants":[]})",
            Dump("a"));
}

TEST_P(ToggleStoreTest, CreateKeepsTheEnvironmentsTheBodyGivesAndCreatesThem) {
  ASSERT_EQ("ok", Create(R"({"key": "a", "environments": {"dev": {"enabled": true}}})"));
  EXPECT_EQ(R"({"dev":{"enabled":true,"strategies":[]},)"
            R"("production":{"enabled":false,"strategies":[]}})",
            json::parse(Dump("a"))["environments"].dump());
  EXPECT_EQ("dev,production", Environments());
}

TEST_P(ToggleStoreTest, CreateWritesAnEventWithExactAfterJson) {
  ASSERT_EQ("ok", Create(R"({"key": "a", "revision": 99})"));
  AuditEvent e = LastEvent();
  EXPECT_EQ(1, e.revision);
  EXPECT_EQ(kNow, e.time);
  EXPECT_EQ("alice", e.actor);
  EXPECT_EQ("create", e.action);
  EXPECT_EQ("a", e.key);
  EXPECT_EQ("", e.environment);
  EXPECT_TRUE(e.before.is_null());
  EXPECT_EQ(R"({"description":"","environments":{"production":{"enabled":false,)"
            R"("strategies":[]}},"key":"a","revision":1,"type":"release","variants":[]})",
            e.after.dump());
}

TEST_P(ToggleStoreTest, CreateExistingKeyIsConflictAndStoresNothing) {
  ASSERT_EQ("ok", Create(R"({"key": "a"})"));
  EXPECT_EQ("conflict: toggle \"a\" already exists", Create(R"({"key": "a", "type": "ops"})"));
  EXPECT_EQ(1, store_->CurrentRevision());
  EXPECT_EQ("1 create a", EventLog());
}

TEST_P(ToggleStoreTest, InvalidToggleIsInvalidNamingTheFieldAndStoresNothing) {
  Toggle t;
  t.key = "bad key";
  WriteResult r;
  EXPECT_EQ("invalid: key: only A-Z a-z 0-9 . _ - allowed, up to 128 characters",
            Result(store_->Create(t, "alice", &r)));
  t.key = "a";
  t.variants = {{"x", 400, true}, {"y", 400, false}};
  EXPECT_EQ("invalid: variants: weights must sum to 1000, got 800",
            Result(store_->Create(t, "alice", &r)));
  t.variants.clear();
  t.environments["staging"].strategies.emplace_back();
  EXPECT_EQ("invalid: environments.staging.strategies[0]: must have rollout, users or constraints",
            Result(store_->Create(t, "alice", &r)));
  EXPECT_EQ(0, store_->CurrentRevision());
  EXPECT_EQ("", EventLog());
  EXPECT_EQ("production", Environments());
}

TEST_P(ToggleStoreTest, ReopenKeepsEverything) {
  ASSERT_EQ("ok", Create(R"({"key": "a", "variants": [{"name": "x", "weight": 1000,
                                                       "value": "blue"}]})"));
  WriteResult r;
  ASSERT_TRUE(store_->SetEnvironment("a", "staging",
                                     MakeConfig(R"({"enabled": true, "strategies": [
                                         {"rollout": {"percent": 5, "group": "g"},
                                          "constraints": [{"attribute": "country",
                                            "operator": "in", "values": ["NL"]}]}]})"),
                                     std::nullopt, "bob", &r)
                  .ok());
  ASSERT_EQ("changed", Flip("a", "production", true));
  const std::string before = Dump("a"), log = EventLog();
  Reopen();
  EXPECT_EQ(before, Dump("a"));
  EXPECT_EQ(log, EventLog());
  EXPECT_EQ("1 create a, 2 set_strategies a@staging, 3 enable a@production", log);
  EXPECT_EQ(3, store_->CurrentRevision());
  EXPECT_EQ("production,staging", Environments());
  ASSERT_NE(nullptr, store_->GetSnapshot()->Find("a"));
  EXPECT_EQ(3, store_->GetSnapshot()->revision());
}

TEST_P(ToggleStoreTest, ListIsSortedAndFiltersByEnvironment) {
  ASSERT_EQ("ok", Create(R"({"key": "b"})"));
  ASSERT_EQ("ok", Create(R"({"key": "a"})"));
  ASSERT_EQ("changed", Flip("a", "staging", true));
  std::vector<Toggle> list;
  ASSERT_TRUE(store_->List(std::string("staging"), &list).ok());
  ASSERT_EQ(2u, list.size());
  EXPECT_EQ("a", list[0].key);
  EXPECT_EQ(R"({"staging":{"enabled":true,"strategies":[]}})",
            ToJson(list[0]).at("environments").dump());
  // b does not list staging: shown disabled there.
  EXPECT_EQ(R"({"staging":{"enabled":false,"strategies":[]}})",
            ToJson(list[1]).at("environments").dump());
  ASSERT_TRUE(store_->List(std::nullopt, &list).ok());
  EXPECT_EQ(2u, list[0].environments.size());
  EXPECT_EQ(R"({"production":{"enabled":false,"strategies":[]}})",
            json::parse(Dump("a", "production"))["environments"].dump());
  EXPECT_EQ("not_found: toggle \"zz\" not found", Dump("zz"));
  EXPECT_EQ("invalid: environment: must not be empty", Dump("a", ""));
  EXPECT_EQ("invalid: environment: must not be empty",
            Result(store_->List(std::string(), &list)));
}

// --- revisions and events ---

TEST_P(ToggleStoreTest, EveryChangeBumpsTheRevisionByOneAndStampsTheToggle) {
  WriteResult r;
  ASSERT_TRUE(store_->Create(MakeToggle(R"({"key": "a"})"), "alice", &r).ok());
  EXPECT_EQ(1, r.toggle.revision);
  ASSERT_TRUE(store_->Create(MakeToggle(R"({"key": "b"})"), "alice", &r).ok());
  EXPECT_EQ(2, r.toggle.revision);
  ASSERT_TRUE(store_->Flip("a", "production", true, std::nullopt, "alice", &r).ok());
  EXPECT_EQ(3, r.toggle.revision);
  ToggleFields f;
  f.description = "new";
  ASSERT_TRUE(store_->Patch("a", f, 3, "alice", &r).ok());
  EXPECT_EQ(4, r.toggle.revision);
  ASSERT_TRUE(store_->Delete("b", 2, "alice").ok());
  EXPECT_EQ(5, store_->CurrentRevision());
  EXPECT_EQ("1 create a, 2 create b, 3 enable a@production, 4 update a, 5 delete b",
            EventLog());
}

TEST_P(ToggleStoreTest, EventsAfterRevisionWithLimit) {
  for (std::string k : {"a", "b", "c", "d"}) ASSERT_EQ("ok", Create(R"({"key": ")" + k + "\"}"));
  std::vector<AuditEvent> events;
  ASSERT_TRUE(store_->Events(1, 2, &events).ok());
  ASSERT_EQ(2u, events.size());
  EXPECT_EQ(2, events[0].revision);
  EXPECT_EQ(3, events[1].revision);
  ASSERT_TRUE(store_->Events(4, 10, &events).ok());
  EXPECT_TRUE(events.empty());
}

TEST_P(ToggleStoreTest, AuditEventJson) {
  ASSERT_EQ("ok", Create(R"({"key": "a"})"));
  WriteResult r;
  ASSERT_TRUE(store_->SetRollout("a", "production", 10, "pipeline", "run 12", &r).ok());
  json j = ToJson(LastEvent());
  EXPECT_EQ(1, j["before"]["revision"]);
  EXPECT_EQ(2, j["after"]["revision"]);
  j.erase("before");
  j.erase("after");
  EXPECT_EQ(R"({"action":"rollout","actor":"pipeline","environment":"production","key":"a",)"
            R"("note":"run 12","revision":2,"time":"2026-11-29T10:00:00.000Z"})",
            j.dump());
  std::vector<AuditEvent> first;
  ASSERT_TRUE(store_->Events(0, 1, &first).ok());
  json create = ToJson(first[0]);
  EXPECT_TRUE(create["environment"].is_null());
  EXPECT_TRUE(create["note"].is_null());
  EXPECT_TRUE(create["before"].is_null());
}

// --- patch ---

TEST_P(ToggleStoreTest, PatchRecordsExactBeforeAndAfter) {
  ASSERT_EQ("ok", Create(R"({"key": "a", "description": "old"})"));
  ToggleFields f;
  ASSERT_TRUE(ParseToggleFields(json::parse(R"({"type": "kill-switch", "description": "new",
      "variants": [{"name": "v", "weight": 1000, "value": 7}]})"), &f).ok());
  WriteResult r;
  ASSERT_TRUE(store_->Patch("a", f, 1, "bob", &r).ok());
  EXPECT_TRUE(r.changed);
  AuditEvent e = LastEvent();
  EXPECT_EQ("update", e.action);
  EXPECT_EQ("bob", e.actor);
  EXPECT_EQ(R"({"description":"old","environments":{"production":{"enabled":false,)"
            R"("strategies":[]}},"key":"a","revision":1,"type":"release","variants":[]})",
            e.before.dump());
  EXPECT_EQ(R"({"description":"new","environments":{"production":{"enabled":false,)"
            R"("strategies":[]}},"key":"a","revision":2,"type":"kill-switch",)"
            R"("variants":[{"name":"v","value":7,"weight":1000}]})",
            e.after.dump());
  EXPECT_EQ(e.after.dump(), Dump("a"));
}

TEST_P(ToggleStoreTest, PatchThatChangesNothingWritesNothing) {
  ASSERT_EQ("ok", Create(R"({"key": "a", "description": "same"})"));
  ToggleFields f;
  f.description = "same";
  WriteResult r;
  ASSERT_TRUE(store_->Patch("a", f, 1, "bob", &r).ok());
  EXPECT_FALSE(r.changed);
  EXPECT_EQ(1, r.toggle.revision);
  EXPECT_EQ(1, store_->CurrentRevision());
}

TEST_P(ToggleStoreTest, ParseToggleFieldsNamesTheField) {
  ToggleFields f;
  EXPECT_EQ("invalid: key: unknown field (known: type, description, variants)",
            Result(ParseToggleFields(json::parse(R"({"key": "x"})"), &f)));
  EXPECT_EQ("invalid: description: expected string, found number",
            Result(ParseToggleFields(json::parse(R"({"description": 3})"), &f)));
  EXPECT_EQ(R"(invalid: type: must be one of release, experiment, ops, kill-switch, )"
            R"(permission, dark-launch, got "nope")",
            Result(ParseToggleFields(json::parse(R"({"type": "nope"})"), &f)));
  EXPECT_EQ("invalid: variants[0].weight: required",
            Result(ParseToggleFields(json::parse(R"({"variants": [{"name": "x", "value": 1}]})"),
                                     &f)));
  EXPECT_EQ("invalid: expected object, found array", Result(ParseToggleFields(json::array(), &f)));
}

TEST_P(ToggleStoreTest, PatchWithInvalidVariantsStoresNothing) {
  ASSERT_EQ("ok", Create(R"({"key": "a"})"));
  ToggleFields f;
  f.variants = std::vector<Variant>{{"x", 1000, nullptr}};
  WriteResult r;
  EXPECT_EQ("invalid: variants[0].value: expected boolean, string, number or object, found null",
            Result(store_->Patch("a", f, std::nullopt, "bob", &r)));
  EXPECT_EQ(1, store_->CurrentRevision());
}

// --- If-Match and missing toggles ---

TEST_P(ToggleStoreTest, StaleIfMatchIsPreconditionAndStoresNothing) {
  ASSERT_EQ("ok", Create(R"({"key": "a"})"));
  ASSERT_EQ("changed", Flip("a", "production", true));  // a is at revision 2
  const std::string before = Dump("a");
  WriteResult r;
  ToggleFields f;
  f.description = "x";
  const std::string stale = "precondition: toggle \"a\" is at revision 2, not 1 (If-Match)";
  EXPECT_EQ(stale, Result(store_->Patch("a", f, 1, "bob", &r)));
  EXPECT_EQ(stale, Result(store_->Delete("a", 1, "bob")));
  EXPECT_EQ(stale, Result(store_->SetEnvironment("a", "production", EnvironmentConfig{}, 1,
                                                 "bob", &r)));
  // Stale even when the flip would change nothing.
  EXPECT_EQ(stale, Flip("a", "production", true, 1));
  EXPECT_EQ(stale, Flip("a", "production", false, 1));
  EXPECT_EQ(before, Dump("a"));
  EXPECT_EQ(2, store_->CurrentRevision());
  EXPECT_EQ("changed", Flip("a", "production", false, 2));
}

TEST_P(ToggleStoreTest, MissingToggleIsNotFound) {
  WriteResult r;
  const std::string missing = "not_found: toggle \"nope\" not found";
  EXPECT_EQ(missing, Result(store_->Patch("nope", ToggleFields{}, std::nullopt, "b", &r)));
  EXPECT_EQ(missing, Result(store_->Delete("nope", std::nullopt, "b")));
  EXPECT_EQ(missing, Flip("nope", "production", true));
  EXPECT_EQ(missing, Result(store_->SetRollout("nope", "production", 5, "b", "", &r)));
  EXPECT_EQ(missing, Result(store_->SetEnvironment("nope", "production", {}, 1, "b", &r)));
  std::vector<AuditEvent> history;
  EXPECT_EQ(missing, Result(store_->History("nope", &history)));
  EXPECT_EQ(0, store_->CurrentRevision());
  EXPECT_EQ("production", Environments());  // flipping nothing created nothing
}

// --- environments ---

TEST_P(ToggleStoreTest, FlipIsIdempotent) {
  ASSERT_EQ("ok", Create(R"({"key": "a"})"));
  EXPECT_EQ("unchanged", Flip("a", "production", false));
  EXPECT_EQ("changed", Flip("a", "production", true));
  EXPECT_EQ("unchanged", Flip("a", "production", true));
  EXPECT_EQ("1 create a, 2 enable a@production", EventLog());
  EXPECT_EQ(2, store_->CurrentRevision());
  // Off where the toggle is not listed is already the case.
  EXPECT_EQ("unchanged", Flip("a", "staging", false));
  EXPECT_EQ("production", Environments());
  EXPECT_EQ("changed", Flip("a", "production", false));
  EXPECT_EQ("1 create a, 2 enable a@production, 3 disable a@production", EventLog());
}

TEST_P(ToggleStoreTest, FlipRecordsExactBeforeAndAfter) {
  ASSERT_EQ("ok", Create(R"({"key": "a"})"));
  ASSERT_EQ("changed", Flip("a", "production", true));
  AuditEvent e = LastEvent();
  EXPECT_EQ("enable", e.action);
  EXPECT_EQ("production", e.environment);
  EXPECT_EQ(R"({"production":{"enabled":false,"strategies":[]}})", e.before["environments"].dump());
  EXPECT_EQ(R"({"production":{"enabled":true,"strategies":[]}})", e.after["environments"].dump());
  EXPECT_EQ(1, e.before["revision"]);
  EXPECT_EQ(2, e.after["revision"]);
}

TEST_P(ToggleStoreTest, EnvironmentsAreCreatedOnFirstUse) {
  ASSERT_EQ("ok", Create(R"({"key": "a"})"));
  ASSERT_EQ("changed", Flip("a", "staging", true));
  EXPECT_EQ("production,staging", Environments());
  // Other toggles are not rewritten: they are disabled there by not listing it.
  ASSERT_EQ("ok", Create(R"({"key": "b"})"));
  EXPECT_EQ(2u, json::parse(Dump("b"))["environments"].size());
  Reopen();
  EXPECT_EQ("production,staging", Environments());
}

TEST_P(ToggleStoreTest, SetEnvironmentReplacesConfigAndIsIdempotent) {
  ASSERT_EQ("ok", Create(R"({"key": "a"})"));
  EnvironmentConfig c = MakeConfig(R"({"enabled": true, "strategies": [{"users": ["ann"]}]})");
  WriteResult r;
  ASSERT_TRUE(store_->SetEnvironment("a", "production", c, 1, "bob", &r).ok());
  EXPECT_TRUE(r.changed);
  EXPECT_EQ(R"({"production":{"enabled":true,"strategies":[{"users":["ann"]}]}})",
            ToJson(r.toggle)["environments"].dump());
  ASSERT_TRUE(store_->SetEnvironment("a", "production", c, 2, "bob", &r).ok());
  EXPECT_FALSE(r.changed);
  EXPECT_EQ("1 create a, 2 set_strategies a@production", EventLog());
}

TEST_P(ToggleStoreTest, SetEnvironmentInvalidNamesTheFieldAndStoresNothing) {
  ASSERT_EQ("ok", Create(R"({"key": "a"})"));
  WriteResult r;
  EXPECT_EQ("invalid: environment: only A-Z a-z 0-9 . _ - allowed, up to 128 characters",
            Result(store_->SetEnvironment("a", "no/slash", {}, std::nullopt, "bob", &r)));
  EnvironmentConfig c;
  c.enabled = true;
  c.strategies.emplace_back().rollout.emplace().percent = 120;
  EXPECT_EQ("invalid: strategies[0].rollout.percent: must be between 0 and 100, got 120",
            Result(store_->SetEnvironment("a", "production", c, std::nullopt, "bob", &r)));
  EXPECT_EQ("invalid: environment: must not be empty", Flip("a", "", true));
  EXPECT_EQ(1, store_->CurrentRevision());
  EXPECT_EQ("production", Environments());
}

// --- rollout ---

TEST_P(ToggleStoreTest, SetRolloutEnablesWithOneRolloutStrategy) {
  ASSERT_EQ("ok", Create(R"({"key": "a", "environments": {"production": {"strategies": [
      {"users": ["ann"]}, {"constraints": [{"attribute": "c", "operator": "eq",
      "values": ["x"]}]}]}}})"));
  WriteResult r;
  ASSERT_TRUE(store_->SetRollout("a", "production", 10, "pipeline", "run 12", &r).ok());
  EXPECT_EQ(R"({"enabled":true,"strategies":[{"rollout":{"percent":10,)"
            R"("stickiness":"targetingKey"}}]})",
            ToJson(r.toggle.environments.at("production")).dump());
  EXPECT_EQ("1 create a, 2 rollout a@production (run 12)", EventLog());
  ASSERT_TRUE(store_->SetRollout("a", "production", 10, "pipeline", "run 13", &r).ok());
  EXPECT_FALSE(r.changed);
  EXPECT_EQ("invalid: percent: must be between 0 and 100, got 101",
            Result(store_->SetRollout("a", "production", 101, "p", "", &r)));
}

TEST_P(ToggleStoreTest, SetRolloutKeepsStickinessGroupAndConstraints) {
  ASSERT_EQ("ok", Create(R"({"key": "a", "environments": {"production": {"strategies": [
      {"rollout": {"percent": 1, "stickiness": "userId", "group": "g"},
       "constraints": [{"attribute": "country", "operator": "in", "values": ["NL"]}]}]}}})"));
  WriteResult r;
  ASSERT_TRUE(store_->SetRollout("a", "production", 50, "pipeline", "", &r).ok());
  EXPECT_EQ(R"({"enabled":true,"strategies":[{"constraints":[{"attribute":"country",)"
            R"("operator":"in","values":["NL"]}],"rollout":{"group":"g","percent":50,)"
            R"("stickiness":"userId"}}]})",
            ToJson(r.toggle.environments.at("production")).dump());
}

// --- delete and history ---

TEST_P(ToggleStoreTest, DeleteKeepsTheHistory) {
  ASSERT_EQ("ok", Create(R"({"key": "a"})"));
  ASSERT_EQ("changed", Flip("a", "production", true));
  ASSERT_TRUE(store_->Delete("a", 2, "bob").ok());
  EXPECT_EQ("not_found: toggle \"a\" not found", Dump("a"));
  EXPECT_EQ(nullptr, store_->GetSnapshot()->Find("a"));
  std::vector<AuditEvent> history;
  ASSERT_TRUE(store_->History("a", &history).ok());
  ASSERT_EQ(3u, history.size());
  EXPECT_EQ("delete", history[2].action);
  EXPECT_EQ(history[1].after, history[2].before);
  EXPECT_TRUE(history[2].after.is_null());
  // The key can be created again and its history goes on.
  ASSERT_EQ("ok", Create(R"({"key": "a"})"));
  ASSERT_TRUE(store_->History("a", &history).ok());
  EXPECT_EQ(4u, history.size());
  Reopen();
  EXPECT_EQ(4, store_->CurrentRevision());
}

TEST_P(ToggleStoreTest, HistoryIsPerToggleOldestFirst) {
  ASSERT_EQ("ok", Create(R"({"key": "a"})"));
  ASSERT_EQ("ok", Create(R"({"key": "b"})"));
  ASSERT_EQ("changed", Flip("a", "production", true));
  std::vector<AuditEvent> history;
  ASSERT_TRUE(store_->History("a", &history).ok());
  ASSERT_EQ(2u, history.size());
  EXPECT_EQ(1, history[0].revision);
  EXPECT_EQ(3, history[1].revision);
}

// --- sync ---

SyncEntry Entry(const std::string& key, const std::string& fields_json = "{}") {
  SyncEntry e{key, {}};
  Status s = ParseToggleFields(json::parse(fields_json), &e.fields);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return e;
}

TEST_P(ToggleStoreTest, SyncCreatesDisabledUpdatesAndNeverFlips) {
  ASSERT_EQ("ok", Create(R"({"key": "on", "description": "old"})"));
  ASSERT_EQ("changed", Flip("on", "production", true));
  ASSERT_EQ("changed", Flip("on", "staging", true));
  ASSERT_EQ("ok", Create(R"({"key": "same", "type": "ops"})"));
  ASSERT_EQ("ok", Create(R"({"key": "gone"})"));
  const int64_t before = store_->CurrentRevision();

  SyncResult r;
  ASSERT_TRUE(store_->Sync({Entry("new", R"({"type": "dark-launch", "description": "n"})"),
                            Entry("on", R"({"description": "new", "type": "kill-switch"})"),
                            Entry("same", R"({"type": "ops"})")},
                           "pipeline", "run 12", &r)
                  .ok());
  EXPECT_EQ(R"({"created":["new"],"removal_candidates":["gone"],"revision":)" +
                std::to_string(before + 2) + R"(,"unchanged":["same"],"updated":["on"]})",
            ToJson(r).dump());
  EXPECT_EQ(R"({"description":"n","environments":{"production":{"enabled":false,)"
            R"("strategies":[]},"staging":{"enabled":false,"strategies":[]}},"key":"new",)"
            R"("revision":6,"type":"dark-launch","variants":[]})",
            Dump("new"));
  json on = json::parse(Dump("on"));
  EXPECT_EQ("new", on["description"]);
  EXPECT_EQ("kill-switch", on["type"]);
  EXPECT_EQ(true, on["environments"]["production"]["enabled"]);
  EXPECT_EQ(true, on["environments"]["staging"]["enabled"]);
  EXPECT_NE(std::string::npos,
            EventLog().find("5 create gone, 6 sync new (run 12), 7 sync on (run 12)"));

  // The same file again changes nothing.
  ASSERT_TRUE(store_->Sync({Entry("new"), Entry("on"), Entry("same")}, "pipeline", "", &r).ok());
  EXPECT_EQ(R"(["new","on","same"])", json(r.unchanged).dump());
  EXPECT_EQ(before + 2, store_->CurrentRevision());
}

TEST_P(ToggleStoreTest, InvalidSyncNamesTheEntryAndStoresNothing) {
  ASSERT_EQ("ok", Create(R"({"key": "a"})"));
  SyncResult r;
  EXPECT_EQ("invalid: toggles[1].key: only A-Z a-z 0-9 . _ - allowed, up to 128 characters",
            Result(store_->Sync({Entry("b"), Entry("no way")}, "p", "", &r)));
  EXPECT_EQ("invalid: toggles[2].key: duplicate key \"b\"",
            Result(store_->Sync({Entry("b"), Entry("c"), Entry("b")}, "p", "", &r)));
  SyncEntry bad = Entry("c");
  bad.fields.variants = std::vector<Variant>{{"x", 10, 1}};
  EXPECT_EQ("invalid: toggles[1].variants: weights must sum to 1000, got 10",
            Result(store_->Sync({Entry("b"), bad}, "p", "", &r)));
  EXPECT_EQ(1, store_->CurrentRevision());
  EXPECT_EQ("not_found: toggle \"b\" not found", Dump("b"));
}

// --- snapshot and listeners ---

bool OnFor(const ToggleStore& store, const std::string& key, const std::string& user) {
  EvaluationContext ctx;
  ctx.SetTargetingKey(user);
  const CompiledToggle* t = store.GetSnapshot()->Find(key);
  return t != nullptr && t->Evaluate("production", ctx).on;
}

TEST_P(ToggleStoreTest, SnapshotReflectsEachChange) {
  ASSERT_EQ("ok", Create(R"({"key": "a"})"));
  EXPECT_EQ(1, store_->GetSnapshot()->revision());
  EXPECT_FALSE(OnFor(*store_, "a", "ann"));
  ASSERT_EQ("changed", Flip("a", "production", true));
  EXPECT_EQ(2, store_->GetSnapshot()->revision());
  EXPECT_TRUE(OnFor(*store_, "a", "ann"));
  WriteResult r;
  ASSERT_TRUE(store_->SetEnvironment("a", "production",
                                     MakeConfig(R"({"enabled": true,
                                         "strategies": [{"users": ["bob"]}]})"),
                                     std::nullopt, "x", &r)
                  .ok());
  EXPECT_FALSE(OnFor(*store_, "a", "ann"));
  EXPECT_TRUE(OnFor(*store_, "a", "bob"));
  std::shared_ptr<const Snapshot> old = store_->GetSnapshot();
  ASSERT_TRUE(store_->Delete("a", std::nullopt, "x").ok());
  EXPECT_EQ(nullptr, store_->GetSnapshot()->Find("a"));
  EXPECT_NE(nullptr, old->Find("a"));  // readers holding the old one are unaffected
  // No change, no new snapshot.
  old = store_->GetSnapshot();
  EXPECT_EQ("not_found: toggle \"a\" not found", Flip("a", "production", true));
  EXPECT_EQ(old, store_->GetSnapshot());
}

// A write compiles only the toggle it changed: the others in the next
// snapshot are the very objects of the last one (docs/toggles.md "Store").
TEST_P(ToggleStoreTest, AWriteReusesTheCompiledTogglesItDidNotChange) {
  for (const char* key : {"a", "b", "c"}) ASSERT_EQ("ok", Create(std::string(R"({"key": ")") + key + "\"}"));
  std::shared_ptr<const Snapshot> before = store_->GetSnapshot();
  ASSERT_EQ("changed", Flip("b", "production", true));
  std::shared_ptr<const Snapshot> after = store_->GetSnapshot();
  EXPECT_EQ(&before->Find("a")->toggle(), &after->Find("a")->toggle());
  EXPECT_EQ(&before->Find("c")->toggle(), &after->Find("c")->toggle());
  EXPECT_NE(&before->Find("b")->toggle(), &after->Find("b")->toggle());
  EXPECT_EQ(4, after->Find("b")->toggle().revision);
  EXPECT_TRUE(OnFor(*store_, "b", "ann"));
  ASSERT_EQ("ok", Create(R"({"key": "aa"})"));
  ASSERT_TRUE(store_->Delete("c", std::nullopt, "x").ok());
  after = store_->GetSnapshot();
  std::vector<std::string> keys;
  for (const CompiledToggle& t : after->toggles()) keys.push_back(t.key());
  EXPECT_EQ((std::vector<std::string>{"a", "aa", "b"}), keys);
  EXPECT_EQ(&before->Find("a")->toggle(), &after->Find("a")->toggle());
  // Another connection's commits: everything is built again, and agrees.
  std::unique_ptr<ToggleStore> other = OpenStore();
  WriteResult r;
  ASSERT_TRUE(other->Flip("a", "production", true, std::nullopt, "cli", &r).ok());
  ASSERT_TRUE(store_->Refresh().ok());
  EXPECT_TRUE(OnFor(*store_, "a", "ann"));
  EXPECT_TRUE(OnFor(*store_, "b", "ann"));
  EXPECT_EQ(3u, store_->GetSnapshot()->toggles().size());
}

// What a client token bound to staging reads of the audit trail: no event
// about production, and production's config cut out of the others.
TEST_P(ToggleStoreTest, ScanEventsForAnEnvironment) {
  ASSERT_EQ("ok", Create(R"({"key": "a", "environments": {
      "production": {"enabled": true, "strategies": [{"users": ["prod-user"]}]},
      "staging": {"enabled": false}}})"));
  ASSERT_EQ("changed", Flip("a", "production", false));
  ASSERT_EQ("changed", Flip("a", "staging", true));
  EventQuery q;
  q.environment = "staging";
  std::vector<std::string> seen;
  ASSERT_TRUE(store_->ScanEvents(q, [&](const AuditEvent& e) {
    seen.push_back(std::to_string(e.revision) + " " + e.action + " " +
                   e.after["environments"].dump());
    return true;
  }).ok());
  EXPECT_EQ((std::vector<std::string>{
                R"(1 create {"staging":{"enabled":false,"strategies":[]}})",
                R"(3 enable {"staging":{"enabled":true,"strategies":[]}})"}),
            seen);
  // A toggle that does not list the environment shows it disabled, as List does.
  AuditEvent e;
  e.after = ToJson(MakeToggle(R"({"key": "b", "environments": {"production": {"enabled": true}}})"));
  EXPECT_EQ(R"({"qa":{"enabled":false,"strategies":[]}})",
            ForEnvironment(e, "qa").after["environments"].dump());
  // Paging: limit and after; `each` may stop early.
  q = EventQuery();
  q.after = 1;
  q.limit = 1;
  seen.clear();
  ASSERT_TRUE(store_->ScanEvents(q, [&](const AuditEvent& ev) {
    seen.push_back(std::to_string(ev.revision));
    return true;
  }).ok());
  EXPECT_EQ((std::vector<std::string>{"2"}), seen);
  q.key = "nope";
  q.limit = 0;
  seen.clear();
  ASSERT_TRUE(store_->ScanEvents(q, [&](const AuditEvent& ev) {
    seen.push_back(std::to_string(ev.revision));
    return true;
  }).ok());
  EXPECT_TRUE(seen.empty());
  bool exists = true;
  ASSERT_TRUE(store_->HasHistory("nope", &exists).ok());
  EXPECT_FALSE(exists);
  ASSERT_TRUE(store_->HasHistory("a", &exists).ok());
  EXPECT_TRUE(exists);
}

TEST_P(ToggleStoreTest, OnChangeIsCalledOncePerChangeAfterCommit) {
  std::unique_ptr<ToggleStore> other = OpenStore();  // another connection
  std::vector<std::string> seen;
  int64_t id = store_->OnChange([&](const AuditEvent& e) {
    // Committed: another connection sees it; published: the snapshot has it.
    std::vector<AuditEvent> there;
    EXPECT_TRUE(other->Events(e.revision - 1, 1, &there).ok());
    EXPECT_EQ(1u, there.size());
    EXPECT_GE(store_->GetSnapshot()->revision(), e.revision);
    seen.push_back(std::to_string(e.revision) + " " + e.action);
  });
  ASSERT_EQ("ok", Create(R"({"key": "a"})"));
  ASSERT_EQ("conflict: toggle \"a\" already exists", Create(R"({"key": "a"})"));
  ASSERT_EQ("changed", Flip("a", "production", true));
  ASSERT_EQ("unchanged", Flip("a", "production", true));
  ASSERT_EQ("precondition: toggle \"a\" is at revision 2, not 1 (If-Match)",
            Flip("a", "production", false, 1));
  SyncResult r;
  ASSERT_TRUE(store_->Sync({Entry("b"), Entry("c")}, "p", "", &r).ok());
  EXPECT_EQ((std::vector<std::string>{"1 create", "2 enable", "3 sync", "4 sync"}), seen);
  store_->RemoveListener(id);
  ASSERT_EQ("changed", Flip("a", "production", false));
  EXPECT_EQ(4u, seen.size());
}

TEST_P(ToggleStoreTest, ThrowingListenerDoesNotFailTheWrite) {
  store_->OnChange([](const AuditEvent&) { throw std::runtime_error("boom"); });
  int calls = 0;
  store_->OnChange([&](const AuditEvent&) { ++calls; });
  EXPECT_EQ("ok", Create(R"({"key": "a"})"));
  EXPECT_EQ(1, calls);
}

TEST_P(ToggleStoreTest, ConcurrentWritersKeepRevisionsAndEventsConsistent) {
  constexpr int kThreads = 4, kFlips = 100;
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ("ok", Create(R"({"key": "t)" + std::to_string(t) + "\"}"));
  }
  ASSERT_EQ("ok", Create(R"({"key": "shared"})"));
  std::mutex mu;
  std::vector<int64_t> delivered;
  store_->OnChange([&](const AuditEvent& e) {
    std::lock_guard<std::mutex> lock(mu);
    delivered.push_back(e.revision);
  });
  std::atomic<int> changed{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kFlips; ++i) {
        WriteResult r;
        const std::string own = "t" + std::to_string(t);
        // Own toggle: every flip changes it. Shared: some flips are no-ops.
        for (const std::string& key : {own, std::string("shared")}) {
          bool on = key == own ? i % 2 == 0 : (i + t) % 3 == 0;
          Status s = store_->Flip(key, "production", on, std::nullopt, own, &r);
          if (!s.ok()) ++failed;
          if (s.ok() && r.changed) ++changed;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(0, failed.load());
  EXPECT_GE(changed.load(), kThreads * kFlips);
  const int64_t creates = kThreads + 1;
  EXPECT_EQ(creates + changed.load(), store_->CurrentRevision());
  std::vector<AuditEvent> events;
  ASSERT_TRUE(store_->Events(0, 0, &events).ok());
  ASSERT_EQ(static_cast<size_t>(store_->CurrentRevision()), events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(static_cast<int64_t>(i + 1), events[i].revision);
  }
  ASSERT_EQ(static_cast<size_t>(changed.load()), delivered.size());
  for (size_t i = 1; i < delivered.size(); ++i) EXPECT_EQ(delivered[i - 1] + 1, delivered[i]);
  // Each own toggle was flipped 100 times, ending off.
  for (int t = 0; t < kThreads; ++t) {
    json toggle = json::parse(Dump("t" + std::to_string(t)));
    EXPECT_EQ(false, toggle["environments"]["production"]["enabled"]);
  }
  Reopen();
  EXPECT_EQ(creates + changed.load(), store_->CurrentRevision());
}

// --- other processes ---

TEST_P(ToggleStoreTest, AnotherConnectionsChangesArePickedUp) {
  std::unique_ptr<ToggleStore> other = OpenStore();
  std::mutex mu;  // PostgreSQL's listener thread delivers too
  std::vector<int64_t> seen;
  auto Seen = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return seen;
  };
  store_->OnChange([&](const AuditEvent& e) {
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back(e.revision);
  });
  WriteResult r;
  ASSERT_TRUE(other->Create(MakeToggle(R"({"key": "a"})"), "cli", &r).ok());
  ASSERT_TRUE(other->Flip("a", "production", true, std::nullopt, "cli", &r).ok());
  // The snapshot moves on Refresh (or any read; on PostgreSQL also on the
  // notification); listeners hear of the missed events.
  if (!pg()) EXPECT_EQ(0, store_->CurrentRevision());
  ASSERT_TRUE(store_->Refresh().ok());
  EXPECT_EQ(2, store_->CurrentRevision());
  EXPECT_TRUE(OnFor(*store_, "a", "ann"));
  for (int i = 0; i < 500 && Seen().size() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ((std::vector<int64_t>{1, 2}), Seen());
  // A write starts from the committed state, whoever committed it.
  ASSERT_TRUE(other->Flip("a", "production", false, std::nullopt, "cli", &r).ok());
  EXPECT_EQ("precondition: toggle \"a\" is at revision 3, not 2 (If-Match)",
            Flip("a", "production", true, 2));
  EXPECT_EQ("changed", Flip("a", "production", true, 3));
  EXPECT_EQ((std::vector<int64_t>{1, 2, 3, 4}), Seen());
  EXPECT_EQ("1 create a, 2 enable a@production, 3 disable a@production, 4 enable a@production",
            EventLog(other.get()));
}

TEST_P(ToggleStoreTest, AcknowledgedChangesSurviveSigkill) {
  pid_t pid = fork();
  ASSERT_NE(-1, pid);
  if (pid == 0) {
    std::unique_ptr<ToggleStore> store;
    WriteResult r;
    bool ok = ToggleStore::Open(location_, &store).ok() &&
              store->Create(MakeToggle(R"({"key": "k"})"), "child", &r).ok() &&
              store->Flip("k", "production", true, std::nullopt, "child", &r).ok();
    if (ok) kill(getpid(), SIGKILL);  // no close, no checkpoint
    _exit(1);
  }
  int status = 0;
  ASSERT_EQ(pid, waitpid(pid, &status, 0));
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "child failed";
  Reopen();
  EXPECT_EQ(2, store_->CurrentRevision());
  EXPECT_EQ(true, json::parse(Dump("k"))["environments"]["production"]["enabled"]);
  EXPECT_EQ("1 create k, 2 enable k@production", EventLog());
}

TEST(ToggleDatabaseTest, DatabaseIsWalWithUserVersion) {
  char tmpl[] = "/tmp/ladle_store_test.XXXXXX";
  ASSERT_NE(nullptr, mkdtemp(tmpl));
  const std::string dir = tmpl;
  std::unique_ptr<Database> db;
  ASSERT_TRUE(OpenToggleDatabase(dir, &db).ok());
  int version = 0;
  ASSERT_TRUE(db->UserVersion(&version).ok());
  EXPECT_EQ(1, version);
  Statement st;
  bool row = false;
  ASSERT_TRUE(db->Prepare("PRAGMA journal_mode", &st).ok());
  ASSERT_TRUE(st.Step(&row).ok());
  EXPECT_EQ("wal", st.ColumnText(0));
  db.reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ladle::toggles
