// The SQLite backend of ToggleStore (toggles/server/store_backend.h):
// DATA/toggles.db, and all the SQLite SQL of the toggle store.
#include <memory>
#include <utility>

#include "core/sqlite.h"
#include "toggles/server/store_backend.h"

namespace ladle::toggles {
namespace {

using json = nlohmann::json;

constexpr const char* kWhere = "toggles.db";

// Schema migrations, applied in order by PRAGMA user_version. Append only:
// a released step is never edited, a change is a new step. Tokens live here
// too (toggles/server/tokens.h) so that one file holds the whole toggle service.
const std::vector<std::string>& Migrations() {
  static const std::vector<std::string> kSteps = {
      // 1. Variants and strategies are JSON as model.h writes them: they are
      // only ever read whole. Events keep their toggle's key after a delete.
      R"sql(
CREATE TABLE revision (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  value INTEGER NOT NULL
);
INSERT INTO revision (id, value) VALUES (1, 0);
CREATE TABLE environments (
  name TEXT PRIMARY KEY,
  created_at TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO environments (name, created_at)
  VALUES ('production', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
CREATE TABLE toggles (
  toggle_key TEXT PRIMARY KEY,
  type TEXT NOT NULL,
  description TEXT NOT NULL,
  variants TEXT NOT NULL,
  revision INTEGER NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE toggle_environments (
  toggle_key TEXT NOT NULL REFERENCES toggles (toggle_key) ON DELETE CASCADE,
  environment TEXT NOT NULL REFERENCES environments (name),
  enabled INTEGER NOT NULL,
  strategies TEXT NOT NULL,
  PRIMARY KEY (toggle_key, environment)
) WITHOUT ROWID;
CREATE TABLE events (
  revision INTEGER PRIMARY KEY,
  at TEXT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  toggle_key TEXT NOT NULL,
  environment TEXT,
  before_json TEXT,
  after_json TEXT,
  note TEXT
);
CREATE INDEX events_by_key ON events (toggle_key, revision);
CREATE TABLE tokens (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('admin', 'client')),
  environment TEXT,
  hash TEXT NOT NULL,
  created_at TEXT NOT NULL,
  last_used_at TEXT,
  revoked INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX tokens_active_name ON tokens (name) WHERE revoked = 0;
CREATE UNIQUE INDEX tokens_active_hash ON tokens (hash) WHERE revoked = 0;
)sql",
  };
  return kSteps;
}

// A single integer from a one-row query.
Status QueryInt(Database* db, const std::string& sql, int64_t* out) {
  Statement st;
  bool row = false;
  Status s = db->Prepare(sql, &st);
  if (s.ok()) s = st.Step(&row);
  if (s.ok() && !row) s = Status::Internal(db->path() + ": no row from '" + sql + "'");
  if (s.ok()) *out = st.ColumnInt64(0);
  return s;
}

std::optional<std::string> OrNull(const std::string& s) {
  return s.empty() ? std::nullopt : std::optional<std::string>(s);
}

std::optional<std::string> Column(const Statement& st, int i) {
  if (st.ColumnIsNull(i)) return std::nullopt;
  return st.ColumnText(i);
}

// Calls `row` for each row of `sql`.
Status ForEachRow(Database* db, const std::string& sql,
                  const std::function<Status(const Statement&)>& row) {
  Statement st;
  Status s = db->Prepare(sql, &st);
  for (bool more = true; s.ok();) {
    s = st.Step(&more);
    if (!s.ok() || !more) break;
    s = row(st);
  }
  return s;
}

constexpr const char* kEventColumns =
    "revision, at, actor, action, toggle_key, environment, before_json, after_json, note";

Status ReadEvent(const Statement& st, AuditEvent* e) {
  e->revision = st.ColumnInt64(0);
  e->time = st.ColumnText(1);
  e->actor = st.ColumnText(2);
  e->action = st.ColumnText(3);
  e->key = st.ColumnText(4);
  e->environment = st.ColumnText(5);
  e->note = st.ColumnText(8);
  return EventJsonFromRow(kWhere, Column(st, 6), Column(st, 7), e);
}

class SqliteBackend : public ToggleStoreBackend {
 public:
  explicit SqliteBackend(std::unique_ptr<Database> db) : db_(std::move(db)) {}

  Status BeginWrite() override { return Begin(); }
  Status BeginRead() override { return Begin(); }
  Status Commit() override {
    auto txn = std::move(txn_);
    return txn ? txn->Commit() : Status::Internal("toggles.db: commit without a transaction");
  }
  void Rollback() override { txn_.reset(); }

  Status MayHaveChanged(bool* out) override {
    int64_t version = 0;
    Status s = QueryInt(db_.get(), "PRAGMA data_version", &version);
    if (!s.ok()) return s;
    *out = version != data_version_;
    data_version_ = version;
    return s;
  }

  Status ReadRevision(int64_t* out) override {
    return QueryInt(db_.get(), "SELECT value FROM revision WHERE id = 1", out);
  }

  Status LoadEnvironments(std::set<std::string>* out) override {
    return ForEachRow(db_.get(), "SELECT name FROM environments", [&](const Statement& st) {
      out->insert(st.ColumnText(0));
      return Status::OK();
    });
  }

  Status LoadToggles(std::map<std::string, Toggle>* out) override {
    Status s = ForEachRow(
        db_.get(), "SELECT toggle_key, type, description, variants, revision FROM toggles",
        [&](const Statement& st) {
          Toggle t;
          Status r = ToggleFromRow(kWhere, st.ColumnText(0), st.ColumnText(1), st.ColumnText(2),
                                   st.ColumnText(3), st.ColumnInt64(4), &t);
          if (r.ok()) out->emplace(t.key, std::move(t));
          return r;
        });
    if (!s.ok()) return s;
    return ForEachRow(
        db_.get(), "SELECT toggle_key, environment, enabled, strategies FROM toggle_environments",
        [&](const Statement& st) {
          auto it = out->find(st.ColumnText(0));
          if (it == out->end()) return Status::OK();  // foreign keys rule this out
          return ConfigFromRow(kWhere, st.ColumnText(0), st.ColumnText(1), st.ColumnInt(2) != 0,
                               st.ColumnText(3), &it->second.environments[st.ColumnText(1)]);
        });
  }

  // The counter row, under the write lock BEGIN IMMEDIATE holds: gapless.
  Status NextRevision(int64_t last, int64_t* out) override {
    *out = last + 1;
    return Status::OK();
  }

  Status SaveToggle(const Toggle& t, const std::string& now) override {
    std::string variants;
    Status s = DumpJson(ToJson(t.variants), &variants);
    if (s.ok()) {
      s = Exec(db_.get(),
               "INSERT INTO toggles (toggle_key, type, description, variants, revision,"
               " created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)"
               " ON CONFLICT (toggle_key) DO UPDATE SET type = excluded.type,"
               " description = excluded.description, variants = excluded.variants,"
               " revision = excluded.revision, updated_at = excluded.updated_at",
               t.key, ToString(t.type), t.description, variants, t.revision, now);
    }
    if (s.ok()) s = Exec(db_.get(), "DELETE FROM toggle_environments WHERE toggle_key = ?1", t.key);
    for (const auto& [env, config] : t.environments) {
      std::string strategies;
      if (s.ok()) s = DumpJson(ToJson(config)["strategies"], &strategies);
      if (!s.ok()) return s;
      s = Exec(db_.get(),
               "INSERT INTO toggle_environments (toggle_key, environment, enabled, strategies)"
               " VALUES (?1, ?2, ?3, ?4)",
               t.key, env, config.enabled ? 1 : 0, strategies);
    }
    return s;
  }

  Status DeleteToggle(const std::string& key) override {
    return Exec(db_.get(), "DELETE FROM toggles WHERE toggle_key = ?1", key);
  }

  Status InsertEnvironment(const std::string& name, const std::string& now) override {
    return Exec(db_.get(), "INSERT INTO environments (name, created_at) VALUES (?1, ?2)", name,
                now);
  }

  // Before and after as JSON text, NULL for a null document.
  Status InsertEvent(const AuditEvent& e) override {
    std::optional<std::string> before, after;
    Status s = e.before.is_null() ? Status::OK() : DumpJson(e.before, &before.emplace());
    if (s.ok() && !e.after.is_null()) s = DumpJson(e.after, &after.emplace());
    if (!s.ok()) return s;
    return Exec(db_.get(),
                "INSERT INTO events (revision, at, actor, action, toggle_key, environment,"
                " before_json, after_json, note) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                e.revision, e.time, e.actor, e.action, e.key, OrNull(e.environment), before,
                after, OrNull(e.note));
  }

  Status SetRevision(int64_t revision) override {
    return Exec(db_.get(), "UPDATE revision SET value = ?1 WHERE id = 1", revision);
  }

  Status ScanEvents(const EventQuery& q,
                    const std::function<bool(AuditEvent&&)>& each) override {
    // Only the conditions asked for, so that a toggle's history reads the
    // events_by_key index from `after` on rather than the whole trail. The
    // environment column is NULL for changes that are not about one environment.
    std::string sql = std::string("SELECT ") + kEventColumns + " FROM events WHERE revision > ?1";
    if (q.key) sql += " AND toggle_key = ?3";
    if (q.environment) sql += " AND (environment IS NULL OR environment = ?4)";
    sql += " ORDER BY revision LIMIT ?2";
    Statement st;
    Status s = db_->Prepare(sql, &st);
    if (s.ok()) s = st.Bind(1, q.after);
    if (s.ok()) s = st.Bind(2, q.limit > 0 ? q.limit : int64_t{-1});
    if (s.ok() && q.key) s = st.Bind(3, *q.key);
    if (s.ok() && q.environment) s = st.Bind(4, *q.environment);
    for (bool row = true; s.ok();) {
      s = st.Step(&row);
      if (!s.ok() || !row) break;
      AuditEvent e;
      s = ReadEvent(st, &e);
      if (!s.ok() || !each(std::move(e))) break;
    }
    return s;
  }

  Status HasHistory(const std::string& key, bool* out) override {
    Statement st;
    Status s = db_->Prepare("SELECT 1 FROM events WHERE toggle_key = ?1 LIMIT 1", &st);
    if (s.ok()) s = st.BindAll(key);
    if (s.ok()) s = st.Step(out);
    return s;
  }

 private:
  Status Begin() {
    txn_ = std::make_unique<Transaction>(db_.get());
    Status s = txn_->Begin();
    if (!s.ok()) txn_.reset();
    return s;
  }

  std::unique_ptr<Database> db_;
  std::unique_ptr<Transaction> txn_;
  int64_t data_version_ = -1;  // PRAGMA data_version at the last MayHaveChanged
};

}  // namespace

Status OpenToggleDatabase(const std::string& data_dir, std::unique_ptr<Database>* db) {
  std::unique_ptr<Database> opened;
  Status s = Database::Open(data_dir + "/toggles.db", &opened);
  if (s.ok()) s = opened->Migrate(Migrations());
  if (s.ok()) *db = std::move(opened);
  return s;
}

Status OpenSqliteToggleBackend(const std::string& data_dir,
                               std::unique_ptr<ToggleStoreBackend>* out) {
  std::unique_ptr<Database> db;
  Status s = OpenToggleDatabase(data_dir, &db);
  if (s.ok()) *out = std::make_unique<SqliteBackend>(std::move(db));
  return s;
}

}  // namespace ladle::toggles
