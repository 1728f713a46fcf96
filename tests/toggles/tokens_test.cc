#include "toggles/server/tokens.h"

#include <sys/stat.h>
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
#include "core/sqlite.h"
#include "tests/pg_util.h"
#include "toggles/server/store.h"

namespace ladle::toggles {
namespace {

std::string Result(const Status& s) { return s.ok() ? "ok" : s.message(); }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Every test runs on both stores (docs/design.md "Two stores: SQLite and
// PostgreSQL"): "sqlite" on a temp data dir, "postgresql" on a new database
// of the fixture's server (tests/pg_util.h), with the temp dir as the data
// dir that holds admin.token.
class TokenStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    unsetenv("LADLE_ADMIN_TOKEN");
    char tmpl[] = "/tmp/ladle_tokens_test.XXXXXX";
    ASSERT_NE(nullptr, mkdtemp(tmpl));
    dir_ = tmpl;
    if (pg()) {
      LADLE_REQUIRE_POSTGRES();
      location_ = testing::PostgresServer::Get()->CreateDatabase(
          ::testing::UnitTest::GetInstance()->current_test_info()->name());
    }
    store_ = OpenStore();
  }
  void TearDown() override {
    unsetenv("LADLE_ADMIN_TOKEN");
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  bool pg() const { return GetParam() == "postgresql"; }

  std::unique_ptr<TokenStore> OpenStore() {
    std::unique_ptr<TokenStore> store;
    Status s = pg() ? TokenStore::OpenLocation(location_, dir_, &store)
                    : TokenStore::Open(dir_, &store);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return store;
  }

  // The secret of a new token, or "error: ...".
  std::string Create(const std::string& name, Role role, const std::string& env = "") {
    std::string secret;
    Status s = store_->Create(name, role, env, &secret, nullptr);
    return s.ok() ? secret : "error: " + s.message();
  }

  // "NAME ROLE ENV" of the request's principal, or the error.
  std::string Who(const std::string& secret) {
    Principal p;
    Status s = store_->Authenticate(secret, &p);
    if (!s.ok()) return s.message();
    return p.name + " " + std::string(ToString(p.role)) + " " + p.environment;
  }

  // Everything the database holds about tokens: on SQLite every byte on
  // disk, WAL included; on PostgreSQL every row of `tokens` as text.
  std::string DatabaseBytes() {
    if (!pg()) return ReadFile(dir_ + "/toggles.db") + ReadFile(dir_ + "/toggles.db-wal");
    return Query("SELECT coalesce(string_agg(t::text, ','), '') FROM tokens t");
  }

  // The stored hash of the live token `name`.
  std::string StoredHash(const std::string& name) {
    if (pg()) return Query("SELECT hash FROM tokens WHERE name = '" + name + "' AND NOT revoked");
    std::unique_ptr<Database> db;
    EXPECT_TRUE(OpenToggleDatabase(dir_, &db).ok());
    Statement st;
    bool row = false;
    EXPECT_TRUE(db->Prepare("SELECT hash FROM tokens WHERE name = ?1 AND revoked = 0", &st).ok());
    EXPECT_TRUE(st.BindAll(name).ok());
    EXPECT_TRUE(st.Step(&row).ok());
    return row ? st.ColumnText(0) : "";
  }

  // The first column of the first row of `sql` on this test's PostgreSQL database.
  std::string Query(const std::string& sql) {
    std::unique_ptr<PgConnection> c;
    Status s = PgConnection::Connect(location_, std::chrono::seconds(10), &c);
    PgResult r;
    if (s.ok()) s = c->Exec(sql, {}, &r);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return s.ok() && r.rows() > 0 ? r.Text(0, 0) : "";
  }

  std::string dir_;
  std::string location_;  // "" (SQLite in dir_), or a postgresql:// URI
  std::unique_ptr<TokenStore> store_;
};

INSTANTIATE_TEST_SUITE_P(Stores, TokenStoreTest, ::testing::Values("sqlite", "postgresql"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

TEST_P(TokenStoreTest, CreateReturnsTheSecretOnceAndStoresOnlyItsHash) {
  std::string secret = Create("deployer", Role::kClient, "staging");
  ASSERT_EQ(0u, secret.rfind("ladle_", 0)) << secret;
  EXPECT_EQ(6u + 64u, secret.size());
  EXPECT_NE(secret, Create("other", Role::kClient));

  std::string bytes = DatabaseBytes();
  EXPECT_NE(std::string::npos, bytes.find("deployer"));  // the right place was read
  EXPECT_EQ(std::string::npos, bytes.find(secret));
  EXPECT_EQ(std::string::npos, bytes.find(secret.substr(6)));
  EXPECT_EQ(TokenHash(secret), StoredHash("deployer"));
  EXPECT_EQ(64u, StoredHash("deployer").size());
}

TEST(TokenHashTest, IsSha256Hex) {
  EXPECT_EQ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", TokenHash(""));
  EXPECT_EQ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", TokenHash("abc"));
}

TEST_P(TokenStoreTest, AuthenticateKnowsNameRoleAndEnvironment) {
  std::string admin = Create("root", Role::kAdmin);
  std::string client = Create("web", Role::kClient, "staging");
  std::string dflt = Create("app", Role::kClient);
  EXPECT_EQ("root admin ", Who(admin));
  EXPECT_EQ("web client staging", Who(client));
  EXPECT_EQ("app client production", Who(dflt));
  EXPECT_EQ("unknown or revoked token", Who("ladle_0000"));
  EXPECT_EQ("unknown or revoked token", Who(""));
  EXPECT_EQ("unknown or revoked token", Who(client + "x"));
  Principal p;
  EXPECT_EQ(Code::kUnauthorized, store_->Authenticate("nope", &p).code());
}

TEST_P(TokenStoreTest, RevokeTakesEffectAtOnceAndFreesTheName) {
  std::string secret = Create("web", Role::kClient);
  // Authenticated first: the thread's last token (tokens.cc) must not outlive
  // the revocation.
  EXPECT_EQ("web client production", Who(secret));
  std::string near = secret;
  near.back() = near.back() == 'a' ? 'b' : 'a';
  EXPECT_EQ("unknown or revoked token", Who(near)) << "same length, one byte off";
  EXPECT_EQ("web client production", Who(secret));
  ASSERT_TRUE(store_->Revoke("web").ok());
  EXPECT_EQ("unknown or revoked token", Who(secret));
  EXPECT_EQ("token \"web\" not found", Result(store_->Revoke("web")));
  EXPECT_EQ(Code::kNotFound, store_->Revoke("nobody").code());
  std::string again = Create("web", Role::kClient);
  EXPECT_EQ("web client production", Who(again));
  EXPECT_EQ("unknown or revoked token", Who(secret));
  std::vector<TokenInfo> list;
  ASSERT_TRUE(store_->List(&list).ok());
  ASSERT_EQ(2u, list.size());
  EXPECT_TRUE(list[0].revoked);
  EXPECT_FALSE(list[1].revoked);
}

TEST_P(TokenStoreTest, CreateChecksItsInput) {
  EXPECT_EQ("error: name: only A-Z a-z 0-9 . _ - allowed, up to 128 characters",
            Create("a b", Role::kClient));
  EXPECT_EQ("error: name: must not be empty", Create("", Role::kClient));
  EXPECT_EQ("error: environment: only client tokens have one",
            Create("a", Role::kAdmin, "staging"));
  EXPECT_EQ("error: environment: only A-Z a-z 0-9 . _ - allowed, up to 128 characters",
            Create("a", Role::kClient, "x/y"));
  ASSERT_NE(0u, Create("a", Role::kClient).rfind("error", 0));
  EXPECT_EQ("error: token \"a\" already exists", Create("a", Role::kAdmin));
  std::string secret;
  EXPECT_EQ(Code::kConflict, store_->Create("a", Role::kClient, "", &secret, nullptr).code());
}

TEST(RoleTest, Names) {
  Role r;
  ASSERT_TRUE(ParseRole("admin", &r).ok());
  EXPECT_EQ(Role::kAdmin, r);
  ASSERT_TRUE(ParseRole("client", &r).ok());
  EXPECT_EQ(Role::kClient, r);
  EXPECT_EQ("role: must be admin or client, got \"root\"", Result(ParseRole("root", &r)));
}

TEST_P(TokenStoreTest, ListShowsNoSecretsAndSurvivesReopen) {
  std::string secret = Create("web", Role::kClient, "staging");
  store_ = OpenStore();
  EXPECT_EQ("web client staging", Who(secret));
  std::vector<TokenInfo> list;
  ASSERT_TRUE(store_->List(&list).ok());
  ASSERT_EQ(1u, list.size());
  nlohmann::json j = ToJson(list[0]);
  EXPECT_EQ(20u + 4u, j["created_at"].get<std::string>().size());
  j.erase("created_at");
  // Authenticate above recorded a use; List writes it.
  EXPECT_FALSE(j["last_used_at"].is_null());
  j.erase("last_used_at");
  EXPECT_EQ(R"({"environment":"staging","name":"web","revoked":false,"role":"client"})",
            j.dump());
}

TEST_P(TokenStoreTest, LastUsedIsEmptyUntilUsedAndKeptAcrossReopen) {
  std::string secret = Create("web", Role::kClient);
  std::vector<TokenInfo> list;
  ASSERT_TRUE(store_->List(&list).ok());
  EXPECT_EQ("", list[0].last_used_at);
  EXPECT_TRUE(ToJson(list[0])["last_used_at"].is_null());
  ASSERT_EQ("web client production", Who(secret));
  store_ = OpenStore();  // the destructor writes it
  ASSERT_TRUE(store_->List(&list).ok());
  EXPECT_EQ(24u, list[0].last_used_at.size());
}

// --- admin token ---

TEST_P(TokenStoreTest, FirstStartWritesAdminTokenFileWithMode0600) {
  AdminTokenSetup what;
  ASSERT_TRUE(store_->EnsureAdminToken(&what).ok());
  EXPECT_EQ(AdminTokenSetup::kWroteFile, what);
  const std::string path = AdminTokenPath(dir_);
  EXPECT_EQ(dir_ + "/admin.token", path);
  struct stat st {};
  ASSERT_EQ(0, lstat(path.c_str(), &st));
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(0600u, st.st_mode & 07777);
  std::string secret = ReadFile(path);
  EXPECT_EQ(70u, secret.size());  // no newline
  EXPECT_EQ("admin admin ", Who(secret));

  // Later starts leave it alone.
  store_ = OpenStore();
  ASSERT_TRUE(store_->EnsureAdminToken(&what).ok());
  EXPECT_EQ(AdminTokenSetup::kExisting, what);
  EXPECT_EQ(secret, ReadFile(path));
  EXPECT_EQ("admin admin ", Who(secret));
}

TEST_P(TokenStoreTest, AnyAdminTokenCountsAsExisting) {
  Create("ops", Role::kAdmin);
  AdminTokenSetup what;
  ASSERT_TRUE(store_->EnsureAdminToken(&what).ok());
  EXPECT_EQ(AdminTokenSetup::kExisting, what);
  EXPECT_FALSE(std::filesystem::exists(AdminTokenPath(dir_)));
}

TEST_P(TokenStoreTest, RevokedAdminIsReplacedWithANewFile) {
  ASSERT_TRUE(store_->EnsureAdminToken().ok());
  std::string first = ReadFile(AdminTokenPath(dir_));
  ASSERT_TRUE(store_->Revoke("admin").ok());
  ASSERT_TRUE(store_->EnsureAdminToken().ok());
  std::string second = ReadFile(AdminTokenPath(dir_));
  EXPECT_NE(first, second);
  EXPECT_EQ("unknown or revoked token", Who(first));
  EXPECT_EQ("admin admin ", Who(second));
}

TEST_P(TokenStoreTest, AdminTokenFileDoesNotFollowASymlink) {
  const std::string target = dir_ + "/elsewhere";
  std::ofstream(target) << "keep me";
  ASSERT_EQ(0, symlink(target.c_str(), AdminTokenPath(dir_).c_str()));
  ASSERT_TRUE(store_->EnsureAdminToken().ok());
  EXPECT_EQ("keep me", ReadFile(target));
  struct stat st {};
  ASSERT_EQ(0, lstat(AdminTokenPath(dir_).c_str(), &st));
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(0600u, st.st_mode & 07777);
}

TEST_P(TokenStoreTest, AdminTokenFromEnvironmentWritesNoFile) {
  setenv("LADLE_ADMIN_TOKEN", "env-secret-1", 1);
  AdminTokenSetup what;
  ASSERT_TRUE(store_->EnsureAdminToken(&what).ok());
  EXPECT_EQ(AdminTokenSetup::kFromEnvironment, what);
  EXPECT_FALSE(std::filesystem::exists(AdminTokenPath(dir_)));
  EXPECT_EQ("admin admin ", Who("env-secret-1"));
  EXPECT_EQ(std::string::npos, DatabaseBytes().find("env-secret-1"));

  // A new value replaces the old one; the same value again changes nothing.
  setenv("LADLE_ADMIN_TOKEN", "env-secret-2", 1);
  store_ = OpenStore();
  ASSERT_TRUE(store_->EnsureAdminToken(&what).ok());
  ASSERT_TRUE(store_->EnsureAdminToken(&what).ok());
  EXPECT_EQ("unknown or revoked token", Who("env-secret-1"));
  EXPECT_EQ("admin admin ", Who("env-secret-2"));
  std::vector<TokenInfo> list;
  ASSERT_TRUE(store_->List(&list).ok());
  EXPECT_EQ(1u, list.size());
}

TEST_P(TokenStoreTest, AdminTokenFromEnvironmentRemovesTheStaleFile) {
  ASSERT_TRUE(store_->EnsureAdminToken().ok());
  std::string old = ReadFile(AdminTokenPath(dir_));
  setenv("LADLE_ADMIN_TOKEN", "from-env", 1);
  ASSERT_TRUE(store_->EnsureAdminToken().ok());
  EXPECT_FALSE(std::filesystem::exists(AdminTokenPath(dir_)));
  EXPECT_EQ("unknown or revoked token", Who(old));
  EXPECT_EQ("admin admin ", Who("from-env"));
}

TEST_P(TokenStoreTest, EmptyAdminTokenVariableCountsAsUnset) {
  setenv("LADLE_ADMIN_TOKEN", "", 1);
  AdminTokenSetup what;
  ASSERT_TRUE(store_->EnsureAdminToken(&what).ok());
  EXPECT_EQ(AdminTokenSetup::kWroteFile, what);
}

// --- sharing ---

TEST_P(TokenStoreTest, RefreshSeesAnotherConnectionsTokens) {
  std::unique_ptr<TokenStore> other = OpenStore();
  std::string secret;
  ASSERT_TRUE(other->Create("cli", Role::kAdmin, "", &secret, nullptr).ok());
  EXPECT_EQ("unknown or revoked token", Who(secret));
  ASSERT_TRUE(store_->Refresh().ok());
  EXPECT_EQ("cli admin ", Who(secret));
  ASSERT_TRUE(other->Revoke("cli").ok());
  ASSERT_TRUE(store_->Refresh().ok());
  EXPECT_EQ("unknown or revoked token", Who(secret));
}

TEST_P(TokenStoreTest, SharesTheDatabaseWithTheToggleStore) {
  std::unique_ptr<ToggleStore> toggles;
  ASSERT_TRUE(ToggleStore::Open(pg() ? location_ : dir_, &toggles).ok());
  std::string secret = Create("web", Role::kClient);
  Toggle t;
  t.key = "a";
  WriteResult r;
  ASSERT_TRUE(toggles->Create(t, "web", &r).ok());
  ASSERT_TRUE(toggles->Refresh().ok());  // a token change is not a toggle change
  EXPECT_EQ(1, toggles->CurrentRevision());
  EXPECT_EQ("web client production", Who(secret));
}

TEST_P(TokenStoreTest, AuthenticateWhileTokensChange) {
  std::string secret = Create("steady", Role::kClient);
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 3; ++i) {
    readers.emplace_back([&] {
      while (!stop) {
        Principal p;
        if (!store_->Authenticate(secret, &p).ok() || p.name != "steady") ++failures;
      }
    });
  }
  for (int i = 0; i < 50; ++i) {
    std::string name = "t" + std::to_string(i);
    ASSERT_NE(0u, Create(name, Role::kClient).rfind("error", 0));
    ASSERT_TRUE(store_->Revoke(name).ok());
  }
  stop = true;
  for (std::thread& t : readers) t.join();
  EXPECT_EQ(0, failures.load());
}

}  // namespace
}  // namespace ladle::toggles
