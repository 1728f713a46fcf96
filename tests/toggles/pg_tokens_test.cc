// The token store on PostgreSQL shared by several servers (docs/toggles.md
// "Store"): what one server's TokenStore writes, another's sees after its
// Refresh; first-start races create one admin token. Each store has a data
// dir of its own, as each server does. tests/toggles/tokens_test.cc holds
// the tests both stores share.
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/pg.h"
#include "tests/pg_util.h"
#include "toggles/server/store.h"
#include "toggles/server/token_backend.h"
#include "toggles/server/tokens.h"

namespace ladle::toggles {
namespace {

std::string Who(TokenStore* store, const std::string& secret) {
  Principal p;
  Status s = store->Authenticate(secret, &p);
  if (!s.ok()) return s.message();
  return p.name + " " + std::string(ToString(p.role)) + " " + p.environment;
}

class PgTokensTest : public ::testing::Test {
 protected:
  void SetUp() override {
    unsetenv("LADLE_ADMIN_TOKEN");
    LADLE_REQUIRE_POSTGRES();
    uri_ = NewDatabase();
  }
  void TearDown() override {
    unsetenv("LADLE_ADMIN_TOKEN");
    for (const std::string& d : dirs_) std::filesystem::remove_all(d);
  }

  std::string NewDatabase() {
    return testing::PostgresServer::Get()->CreateDatabase(
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
  }

  // A new data dir, as each server has.
  std::string NewDir() {
    char tmpl[] = "/tmp/ladle_pg_tokens_test.XXXXXX";
    EXPECT_NE(nullptr, mkdtemp(tmpl));
    dirs_.push_back(tmpl);
    return tmpl;
  }

  std::unique_ptr<TokenStore> Open(const std::string& uri = "") {
    std::unique_ptr<TokenStore> store;
    Status s = TokenStore::OpenLocation(uri.empty() ? uri_ : uri, NewDir(), &store);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return store;
  }

  // The first column of the first row of `sql`.
  std::string Query(const std::string& sql, const std::string& uri = "") {
    std::unique_ptr<PgConnection> c;
    Status s = PgConnection::Connect(uri.empty() ? uri_ : uri, std::chrono::seconds(10), &c);
    PgResult r;
    if (s.ok()) s = c->Exec(sql, {}, &r);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return s.ok() && r.rows() > 0 ? r.Text(0, 0) : "";
  }

  int AdminFiles() {
    int n = 0;
    for (const std::string& d : dirs_) n += std::filesystem::exists(AdminTokenPath(d)) ? 1 : 0;
    return n;
  }

  std::string uri_;
  std::vector<std::string> dirs_;
};

TEST_F(PgTokensTest, ATokenCreatedOnOneServerAuthenticatesOnTheOtherAfterRefresh) {
  auto a = Open();
  auto b = Open();
  std::string secret;
  ASSERT_TRUE(a->Create("web", Role::kClient, "staging", &secret, nullptr).ok());
  EXPECT_EQ("web client staging", Who(a.get(), secret));
  EXPECT_EQ("unknown or revoked token", Who(b.get(), secret));  // no database access
  ASSERT_TRUE(b->Refresh().ok());
  EXPECT_EQ("web client staging", Who(b.get(), secret));
  // The name is taken on every server.
  std::string other;
  EXPECT_EQ(Code::kConflict, b->Create("web", Role::kClient, "", &other, nullptr).code());
}

TEST_F(PgTokensTest, ARevokeOnOneServerIsRefusedOnTheOtherAfterRefresh) {
  auto a = Open();
  auto b = Open();
  std::string secret;
  ASSERT_TRUE(a->Create("ci", Role::kAdmin, "", &secret, nullptr).ok());
  ASSERT_TRUE(b->Refresh().ok());
  ASSERT_EQ("ci admin ", Who(b.get(), secret));
  ASSERT_TRUE(b->Revoke("ci").ok());
  EXPECT_EQ("unknown or revoked token", Who(b.get(), secret));
  EXPECT_EQ("ci admin ", Who(a.get(), secret));  // until a refreshes
  ASSERT_TRUE(a->Refresh().ok());
  EXPECT_EQ("unknown or revoked token", Who(a.get(), secret));
  EXPECT_EQ(Code::kNotFound, a->Revoke("ci").code());
}

TEST_F(PgTokensTest, RefreshReloadsOnlyWhenTokensChanged) {
  auto a = Open();
  auto b = Open();
  const std::string before = Query("SELECT value FROM tokens_revision");
  ASSERT_TRUE(b->Refresh().ok());
  // A toggle change and a last-use write are not token changes.
  std::unique_ptr<ToggleStore> toggles;
  ASSERT_TRUE(ToggleStore::Open(uri_, &toggles).ok());
  Toggle t;
  t.key = "a";
  WriteResult r;
  ASSERT_TRUE(toggles->Create(t, "web", &r).ok());
  std::string secret;
  ASSERT_TRUE(a->Create("web", Role::kClient, "", &secret, nullptr).ok());
  EXPECT_EQ(std::to_string(std::stoll(before) + 1), Query("SELECT value FROM tokens_revision"));
  ASSERT_EQ("web client production", Who(a.get(), secret));
  std::vector<TokenInfo> list;
  ASSERT_TRUE(a->List(&list).ok());  // writes the last use
  ASSERT_EQ(1u, list.size());
  EXPECT_FALSE(list[0].last_used_at.empty());
  EXPECT_EQ(std::to_string(std::stoll(before) + 1), Query("SELECT value FROM tokens_revision"));
  ASSERT_TRUE(a->Revoke("web").ok());
  EXPECT_EQ(std::to_string(std::stoll(before) + 2), Query("SELECT value FROM tokens_revision"));
}

TEST_F(PgTokensTest, ALastUseTimeNeverGoesBack) {
  auto a = Open();
  std::string secret;
  ASSERT_TRUE(a->Create("web", Role::kClient, "", &secret, nullptr).ok());
  ASSERT_EQ("web client production", Who(a.get(), secret));
  // Another server wrote a later use meanwhile: a's must not replace it.
  Query("UPDATE tokens SET last_used_at = '2999-01-01T00:00:00.000Z' WHERE name = 'web'"
        " RETURNING id");
  std::vector<TokenInfo> list;
  ASSERT_TRUE(a->List(&list).ok());  // writes a's
  ASSERT_EQ(1u, list.size());
  EXPECT_EQ("2999-01-01T00:00:00.000Z", list[0].last_used_at);
}

// The race of several servers starting on a new database: every one
// succeeds, one creates "admin" and writes its admin.token, the others find it.
TEST_F(PgTokensTest, ServersEnsuringTheAdminTokenAtOnceCreateOne) {
  constexpr int kRounds = 4, kServers = 4;
  for (int round = 0; round < kRounds; ++round) {
    const std::string uri = NewDatabase();
    const size_t first_dir = dirs_.size();
    std::vector<std::unique_ptr<TokenStore>> stores;
    for (int i = 0; i < kServers; ++i) stores.push_back(Open(uri));
    ASSERT_EQ(kServers, static_cast<int>(stores.size()));
    std::atomic<int> ready{0}, wrote{0}, existing{0}, failed{0};
    std::vector<std::thread> threads;
    for (auto& store : stores) {
      threads.emplace_back([&, s = store.get()] {
        ++ready;
        while (ready < kServers) std::this_thread::yield();
        AdminTokenSetup what;
        Status st = s->EnsureAdminToken(&what);
        if (!st.ok()) {
          ++failed;
          ADD_FAILURE() << st.ToString();
        } else if (what == AdminTokenSetup::kWroteFile) {
          ++wrote;
        } else if (what == AdminTokenSetup::kExisting) {
          ++existing;
        }
      });
    }
    for (std::thread& t : threads) t.join();
    EXPECT_EQ(0, failed.load());
    EXPECT_EQ(1, wrote.load());
    EXPECT_EQ(kServers - 1, existing.load());
    EXPECT_EQ("1", Query("SELECT count(*) FROM tokens", uri));
    std::string secret;
    int files = 0;
    for (size_t d = first_dir; d < dirs_.size(); ++d) {
      if (!std::filesystem::exists(AdminTokenPath(dirs_[d]))) continue;
      ++files;
      secret = ReadAdminTokenFile(dirs_[d]);
    }
    EXPECT_EQ(1, files);
    for (auto& store : stores) {
      ASSERT_TRUE(store->Refresh().ok());
      EXPECT_EQ("admin admin ", Who(store.get(), secret));
    }
  }
}

TEST_F(PgTokensTest, ServersWithTheSameAdminVariableAtOnceCreateOne) {
  setenv("LADLE_ADMIN_TOKEN", "shared-admin-secret", 1);
  constexpr int kServers = 4;
  std::vector<std::unique_ptr<TokenStore>> stores;
  for (int i = 0; i < kServers; ++i) stores.push_back(Open());
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (auto& store : stores) {
    threads.emplace_back([&, s = store.get()] {
      ++ready;
      while (ready < kServers) std::this_thread::yield();
      Status st = s->EnsureAdminToken();
      EXPECT_TRUE(st.ok()) << st.ToString();
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ("1", Query("SELECT count(*) FROM tokens"));
  for (auto& store : stores) EXPECT_EQ("admin admin ", Who(store.get(), "shared-admin-secret"));
  EXPECT_EQ(0, AdminFiles());
}

// Toggle and token schemas migrate under one advisory lock: servers opening
// both stores on a new database at once all succeed.
TEST_F(PgTokensTest, ServersStartingAtOnceOnANewDatabaseAllMigrate) {
  for (int round = 0; round < 3; ++round) {
    const std::string uri = NewDatabase();
    std::vector<std::string> dirs = {NewDir(), NewDir(), NewDir(), NewDir()};
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (size_t i = 0; i < dirs.size(); ++i) {
      threads.emplace_back([&, i] {
        ++ready;
        while (ready < static_cast<int>(dirs.size())) std::this_thread::yield();
        Status s;
        if (i % 2 == 0) {
          std::unique_ptr<ToggleStore> toggles;
          s = ToggleStore::Open(uri, &toggles);
        } else {
          std::unique_ptr<TokenStore> tokens;
          s = TokenStore::OpenLocation(uri, dirs[i], &tokens);
        }
        EXPECT_TRUE(s.ok()) << s.ToString();
      });
    }
    for (std::thread& t : threads) t.join();
    EXPECT_EQ("1", Query("SELECT version FROM ladle_schema_versions WHERE part = 'tokens'", uri));
  }
}

TEST_F(PgTokensTest, ANewerTokenSchemaIsRefused) {
  Open();
  Query("UPDATE ladle_schema_versions SET version = 99 WHERE part = 'tokens' RETURNING part");
  std::unique_ptr<TokenStore> store;
  Status s = TokenStore::OpenLocation(uri_, NewDir(), &store);
  EXPECT_NE(std::string::npos, s.message().find("token schema version 99 is newer than this"))
      << s.ToString();
}

TEST_F(PgTokensTest, ALostConnectionReconnectsOnRefresh) {
  auto a = Open();
  auto b = Open();
  const std::string db = uri_.substr(uri_.rfind('/') + 1);
  PgResult r;
  ASSERT_TRUE(testing::PostgresServer::Get()
                  ->Admin(std::string("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                      " WHERE application_name = '") +
                              kTokenConnectionName + "' AND datname = '" + db + "'",
                          &r)
                  .ok());
  ASSERT_EQ(2, r.rows());
  std::string secret;
  Status s = a->Create("web", Role::kClient, "", &secret, nullptr);
  if (!s.ok()) {  // a write finds its connection gone at BEGIN and reconnects
    ADD_FAILURE() << s.ToString();
  }
  ASSERT_TRUE(b->Refresh().ok());
  EXPECT_EQ("web client production", Who(b.get(), secret));
}

TEST(PgTokensOpenTest, ADatabaseThatDoesNotAnswerIsUnavailableNamingIt) {
  const std::string uri =
      "postgresql://ladle:secret@127.0.0.1:" + std::to_string(testing::FreePort()) + "/nothing";
  char tmpl[] = "/tmp/ladle_pg_tokens_test.XXXXXX";
  ASSERT_NE(nullptr, mkdtemp(tmpl));
  std::unique_ptr<TokenStore> store;
  Status s = TokenStore::OpenLocation(uri, tmpl, &store);
  std::filesystem::remove_all(tmpl);
  EXPECT_EQ(Code::kUnavailable, s.code()) << s.ToString();
  EXPECT_NE(std::string::npos, s.message().find("postgresql://ladle:***@127.0.0.1:"))
      << s.message();
  EXPECT_EQ(std::string::npos, s.message().find("secret")) << s.message();
}

}  // namespace
}  // namespace ladle::toggles
