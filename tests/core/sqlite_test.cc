#include "core/sqlite.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace ladle {
namespace {

class DatabaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ladle_sqlite_test.XXXXXX";
    ASSERT_NE(nullptr, mkdtemp(tmpl));
    dir_ = tmpl;
    path_ = dir_ + "/test.db";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<Database> OpenDb() {
    std::unique_ptr<Database> db;
    Status s = Database::Open(path_, &db);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return db;
  }

  // The single value of a one-row, one-column query, as text.
  static std::string Query(Database* db, const std::string& sql) {
    Statement st;
    Status s = db->Prepare(sql, &st);
    bool row = false;
    if (s.ok()) s = st.Step(&row);
    if (!s.ok()) return "error: " + s.ToString();
    return row ? st.ColumnText(0) : "no row";
  }

  std::string dir_, path_;
};

const std::vector<std::string> kSteps = {
    "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)",
    "ALTER TABLE t ADD COLUMN note TEXT",
};

TEST_F(DatabaseTest, OpenSetsPragmas) {
  auto db = OpenDb();
  EXPECT_EQ("wal", Query(db.get(), "PRAGMA journal_mode"));
  EXPECT_EQ("1", Query(db.get(), "PRAGMA synchronous"));  // NORMAL
  EXPECT_EQ("1", Query(db.get(), "PRAGMA foreign_keys"));
  EXPECT_EQ("5000", Query(db.get(), "PRAGMA busy_timeout"));
}

TEST_F(DatabaseTest, OpenFailureNamesThePath) {
  std::unique_ptr<Database> db;
  Status s = Database::Open(dir_ + "/missing/dir/x.db", &db);
  EXPECT_EQ(Code::kIoError, s.code());
  EXPECT_EQ(dir_ + "/missing/dir/x.db: open: unable to open database file", s.message());
  EXPECT_EQ(nullptr, db);
}

TEST_F(DatabaseTest, MigrateAppliesStepsAndTracksVersion) {
  auto db = OpenDb();
  int version = -1;
  ASSERT_TRUE(db->UserVersion(&version).ok());
  EXPECT_EQ(0, version);
  ASSERT_TRUE(db->Migrate({kSteps[0]}).ok());
  ASSERT_TRUE(db->UserVersion(&version).ok());
  EXPECT_EQ(1, version);
  // Only the new step runs (re-running step 0 would fail: table exists).
  Status s = db->Migrate(kSteps);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_TRUE(db->UserVersion(&version).ok());
  EXPECT_EQ(2, version);
  EXPECT_TRUE(db->Exec("INSERT INTO t (name, note) VALUES ('a', 'b')").ok());
}

TEST_F(DatabaseTest, MigrateIsIdempotentAcrossReopen) {
  ASSERT_TRUE(OpenDb()->Migrate(kSteps).ok());
  auto db = OpenDb();
  Status s = db->Migrate(kSteps);
  EXPECT_TRUE(s.ok()) << s.ToString();
  int version = 0;
  ASSERT_TRUE(db->UserVersion(&version).ok());
  EXPECT_EQ(2, version);
}

TEST_F(DatabaseTest, FailedMigrationStepLeavesVersionAndSchema) {
  auto db = OpenDb();
  Status s = db->Migrate({"CREATE TABLE a (x); CREATE TABLE oops (;"});
  EXPECT_EQ(Code::kInternal, s.code());
  EXPECT_NE(std::string::npos, s.message().find("migrate to schema version 1")) << s.message();
  int version = -1;
  ASSERT_TRUE(db->UserVersion(&version).ok());
  EXPECT_EQ(0, version);
  EXPECT_EQ("0", Query(db.get(), "SELECT count(*) FROM sqlite_master WHERE name = 'a'"));
}

TEST_F(DatabaseTest, NewerSchemaIsRefused) {
  auto db = OpenDb();
  ASSERT_TRUE(db->Migrate(kSteps).ok());
  Status s = db->Migrate({kSteps[0]});
  EXPECT_EQ(Code::kUnavailable, s.code());
  EXPECT_EQ(path_ + ": schema version 2 is newer than this ladle knows (1); upgrade ladle",
            s.message());
}

TEST_F(DatabaseTest, TransactionRollsBackOnScopeExit) {
  auto db = OpenDb();
  ASSERT_TRUE(db->Migrate(kSteps).ok());
  {
    Transaction txn(db.get());
    ASSERT_TRUE(txn.Begin().ok());
    ASSERT_TRUE(db->Exec("INSERT INTO t (name) VALUES ('gone')").ok());
  }
  EXPECT_EQ("0", Query(db.get(), "SELECT count(*) FROM t"));
  {
    Transaction txn(db.get());
    ASSERT_TRUE(txn.Begin().ok());
    ASSERT_TRUE(db->Exec("INSERT INTO t (name) VALUES ('kept')").ok());
    ASSERT_TRUE(txn.Commit().ok());
  }
  EXPECT_EQ("kept", Query(db.get(), "SELECT name FROM t"));
}

TEST_F(DatabaseTest, BusyDatabaseIsUnavailable) {
  auto first = OpenDb();
  auto second = OpenDb();
  ASSERT_TRUE(first->Migrate(kSteps).ok());
  ASSERT_TRUE(second->SetBusyTimeout(10).ok());
  Transaction holding(first.get());
  ASSERT_TRUE(holding.Begin().ok());

  Transaction waiting(second.get());
  Status s = waiting.Begin();
  EXPECT_EQ(Code::kUnavailable, s.code());
  EXPECT_EQ(3, s.ExitCode());
  EXPECT_EQ(path_ + ": exec 'BEGIN IMMEDIATE': database is locked (another ladle holds it?)",
            s.message());
  s = second->Exec("INSERT INTO t (name) VALUES ('x')");
  EXPECT_EQ(Code::kUnavailable, s.code());
}

TEST_F(DatabaseTest, ErrorsCarryTheSql) {
  auto db = OpenDb();
  Statement st;
  Status s = db->Prepare("SELECT nope\n   FROM   nowhere", &st);
  EXPECT_EQ(Code::kInternal, s.code());
  EXPECT_EQ(path_ + ": prepare 'SELECT nope FROM nowhere': no such table: nowhere", s.message());
}

TEST_F(DatabaseTest, ConstraintViolationIsConflict) {
  auto db = OpenDb();
  ASSERT_TRUE(db->Migrate(kSteps).ok());
  Statement st;
  ASSERT_TRUE(db->Prepare("INSERT INTO t (name) VALUES (?1)", &st).ok());
  ASSERT_TRUE(st.BindAll("same").ok());
  ASSERT_TRUE(st.Run().ok());
  ASSERT_TRUE(st.Reset().ok());
  ASSERT_TRUE(st.BindAll("same").ok());
  Status s = st.Run();
  EXPECT_EQ(Code::kConflict, s.code());
  EXPECT_EQ(path_ + ": run 'INSERT INTO t (name) VALUES (?1)': UNIQUE constraint failed: t.name",
            s.message());
}

TEST_F(DatabaseTest, LongSqlIsShortenedInMessages) {
  auto db = OpenDb();
  Status s = db->Exec("SELECT " + std::string(300, '1') + " FROM nowhere");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string::npos, s.message().find("...': no such table")) << s.message();
  EXPECT_LT(s.message().size(), 250u);
}

TEST_F(DatabaseTest, PrepareRefusesSeveralStatements) {
  auto db = OpenDb();
  Statement st;
  Status s = db->Prepare("SELECT 1; SELECT 2", &st);
  EXPECT_EQ(Code::kInternal, s.code());
  EXPECT_NE(std::string::npos, s.message().find("expected exactly one statement"));
  EXPECT_TRUE(db->Prepare("SELECT 1;  \n", &st).ok());
}

TEST_F(DatabaseTest, BindAndReadEveryType) {
  auto db = OpenDb();
  ASSERT_TRUE(db->Exec("CREATE TABLE v (i INTEGER, d REAL, s TEXT, n TEXT)").ok());
  Statement ins;
  ASSERT_TRUE(db->Prepare("INSERT INTO v VALUES (:i, :d, :s, :n)", &ins).ok());
  ASSERT_TRUE(ins.Bind(":i", int64_t{1} << 40).ok());
  ASSERT_TRUE(ins.Bind(":d", 2.5).ok());
  ASSERT_TRUE(ins.Bind(":s", std::string("a\0b", 3)).ok());
  ASSERT_TRUE(ins.BindNull(":n").ok());
  ASSERT_TRUE(ins.Run().ok());
  EXPECT_EQ(1, db->changes());
  EXPECT_EQ(1, db->last_insert_rowid());
  Status s = ins.Bind(":missing", 1);
  EXPECT_EQ(Code::kInternal, s.code());
  EXPECT_NE(std::string::npos, s.message().find("no parameter :missing")) << s.message();

  Statement sel;
  ASSERT_TRUE(db->Prepare("SELECT i, d, s, n FROM v", &sel).ok());
  bool row = false;
  ASSERT_TRUE(sel.Step(&row).ok());
  ASSERT_TRUE(row);
  EXPECT_EQ(4, sel.ColumnCount());
  EXPECT_EQ(int64_t{1} << 40, sel.ColumnInt64(0));
  EXPECT_EQ(2.5, sel.ColumnDouble(1));
  EXPECT_EQ(std::string("a\0b", 3), sel.ColumnText(2));
  EXPECT_TRUE(sel.ColumnIsNull(3));
  EXPECT_EQ("", sel.ColumnText(3));
  ASSERT_TRUE(sel.Step(&row).ok());
  EXPECT_FALSE(row);
}

TEST_F(DatabaseTest, BindAllTakesOptionalsAndNull) {
  auto db = OpenDb();
  ASSERT_TRUE(db->Exec("CREATE TABLE v (a, b, c)").ok());
  Statement ins;
  ASSERT_TRUE(db->Prepare("INSERT INTO v VALUES (?1, ?2, ?3)", &ins).ok());
  ASSERT_TRUE(ins.BindAll(std::optional<int>(), nullptr, std::optional<std::string>("x")).ok());
  ASSERT_TRUE(ins.Run().ok());
  EXPECT_EQ("NULL NULL 'x'", Query(db.get(), "SELECT quote(a) || ' ' || quote(b) || ' ' || quote(c) FROM v"));
  Status s = ins.BindAll(1, 2, 3, 4);  // one too many
  EXPECT_FALSE(s.ok());
}

TEST_F(DatabaseTest, ForeignKeysAreEnforced) {
  auto db = OpenDb();
  ASSERT_TRUE(db->Exec("CREATE TABLE p (id INTEGER PRIMARY KEY);"
                       " CREATE TABLE c (p INTEGER REFERENCES p (id))")
                  .ok());
  EXPECT_EQ(Code::kConflict, db->Exec("INSERT INTO c VALUES (7)").code());
}

}  // namespace
}  // namespace ladle
