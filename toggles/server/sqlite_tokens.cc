// The SQLite backend of TokenStore (toggles/server/token_backend.h) and all
// the SQLite SQL of the token store. The table is created by toggles.db's
// migrations (sqlite_store.cc), which hold the whole toggle service.
#include <optional>

#include "core/sqlite.h"
#include "toggles/server/store.h"
#include "toggles/server/token_backend.h"

namespace ladle::toggles {
namespace {

constexpr const char* kColumns =
    "id, name, role, environment, hash, created_at, last_used_at, revoked";

std::optional<std::string> OrNull(const std::string& s) {
  return s.empty() ? std::nullopt : std::optional<std::string>(s);
}

TokenRow ReadRow(const Statement& st) {
  TokenRow t;
  t.id = st.ColumnInt64(0);
  t.name = st.ColumnText(1);
  t.role = st.ColumnText(2);
  t.environment = st.ColumnText(3);
  t.hash = st.ColumnText(4);
  t.created_at = st.ColumnText(5);
  t.last_used_at = st.ColumnText(6);
  t.revoked = st.ColumnInt(7) != 0;
  return t;
}

class SqliteTokens : public TokenStoreBackend {
 public:
  explicit SqliteTokens(std::unique_ptr<Database> db) : db_(std::move(db)) {}

  const std::string& where() const override { return where_; }

  // BEGIN IMMEDIATE: the file's write lock, taken up front.
  Status BeginWrite() override {
    txn_ = std::make_unique<Transaction>(db_.get());
    Status s = txn_->Begin();
    if (!s.ok()) txn_.reset();
    return s;
  }
  // Another connection's commit changes PRAGMA data_version by itself.
  Status MarkChanged() override { return Status::OK(); }
  Status Commit() override {
    Status s = txn_ ? txn_->Commit() : Status::Internal("commit without a transaction");
    txn_.reset();  // a failed commit rolls back here
    return s;
  }
  void Rollback() override { txn_.reset(); }

  // Changes when another connection commits to the file (toggles too).
  Status ChangeCounter(int64_t* out) override {
    return Select("PRAGMA data_version", [&](const Statement& st) {
      *out = st.ColumnInt64(0);
    });
  }

  Status LoadLive(std::vector<TokenRow>* out) override {
    return Select(std::string("SELECT ") + kColumns + " FROM tokens WHERE revoked = 0",
                  [&](const Statement& st) { out->push_back(ReadRow(st)); });
  }
  Status ListAll(std::vector<TokenRow>* out) override {
    return Select(std::string("SELECT ") + kColumns + " FROM tokens ORDER BY id",
                  [&](const Statement& st) { out->push_back(ReadRow(st)); });
  }
  Status FindLive(const std::string& name, TokenRow* out, bool* found) override {
    *found = false;
    return Select(
        std::string("SELECT ") + kColumns + " FROM tokens WHERE name = ?1 AND revoked = 0",
        [&](const Statement& st) {
          *out = ReadRow(st);
          *found = true;
        },
        name);
  }
  Status CountLiveAdmins(int64_t* out) override {
    *out = 0;
    return Select("SELECT COUNT(*) FROM tokens WHERE role = 'admin' AND revoked = 0",
                  [&](const Statement& st) { *out = st.ColumnInt64(0); });
  }

  Status Insert(const TokenRow& t) override {
    return Exec(db_.get(),
                "INSERT INTO tokens (name, role, environment, hash, created_at)"
                " VALUES (?1, ?2, ?3, ?4, ?5)",
                t.name, t.role, OrNull(t.environment), t.hash, t.created_at);
  }
  Status Revoke(const std::string& name, bool* found) override {
    Status s = Exec(db_.get(), "UPDATE tokens SET revoked = 1 WHERE name = ?1 AND revoked = 0",
                    name);
    *found = s.ok() && db_->changes() > 0;
    return s;
  }
  Status SetAdmin(int64_t id, const std::string& hash) override {
    return Exec(db_.get(),
                "UPDATE tokens SET hash = ?1, role = 'admin', environment = NULL WHERE id = ?2",
                hash, id);
  }

  Status WriteLastUsed(const std::vector<std::pair<int64_t, std::string>>& times) override {
    Transaction txn(db_.get());
    Status s = txn.Begin();
    for (const auto& [id, at] : times) {
      if (!s.ok()) break;
      s = Exec(db_.get(),
               "UPDATE tokens SET last_used_at = ?1"
               " WHERE id = ?2 AND (last_used_at IS NULL OR last_used_at < ?1)",
               at, id);
    }
    return s.ok() ? txn.Commit() : s;
  }

 private:
  // Runs `sql` with `args`, calling `each` on every row.
  template <typename Each, typename... Args>
  Status Select(const std::string& sql, const Each& each, const Args&... args) {
    Statement st;
    Status s = db_->Prepare(sql, &st);
    if (s.ok()) s = st.BindAll(args...);
    for (bool row = true; s.ok();) {
      s = st.Step(&row);
      if (!s.ok() || !row) break;
      each(st);
    }
    return s;
  }

  const std::string where_ = "toggles.db";
  std::unique_ptr<Database> db_;
  std::unique_ptr<Transaction> txn_;
};

}  // namespace

Status OpenSqliteTokenBackend(const std::string& data_dir,
                              std::unique_ptr<TokenStoreBackend>* out) {
  std::unique_ptr<Database> db;
  Status s = OpenToggleDatabase(data_dir, &db);
  if (s.ok()) *out = std::make_unique<SqliteTokens>(std::move(db));
  return s;
}

}  // namespace ladle::toggles
