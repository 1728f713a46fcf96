#include "core/sqlite.h"

#include <sqlite3.h>

namespace ladle {
namespace {

constexpr int kBusyTimeoutMs = 5000;
constexpr size_t kMaxSqlInMessage = 120;

// The SQL as a message shows it: one line, whitespace collapsed, cut short.
std::string SqlSnippet(std::string_view sql) {
  std::string out;
  for (char c : sql) {
    bool space = c == ' ' || c == '\n' || c == '\t' || c == '\r';
    if (space && (out.empty() || out.back() == ' ')) continue;
    out.push_back(space ? ' ' : c);
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  if (out.size() > kMaxSqlInMessage) out = out.substr(0, kMaxSqlInMessage) + "...";
  return out;
}

std::string Quoted(std::string_view verb, std::string_view sql) {
  return std::string(verb) + " '" + SqlSnippet(sql) + "'";
}

Code CodeFor(int rc) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Code::kUnavailable;
    case SQLITE_CONSTRAINT:
      return Code::kConflict;
    case SQLITE_CANTOPEN:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Code::kIoError;
    default:
      return Code::kInternal;
  }
}

Status Make(Code code, std::string msg) {
  switch (code) {
    case Code::kUnavailable:
      return Status::Unavailable(std::move(msg));
    case Code::kConflict:
      return Status::Conflict(std::move(msg));
    case Code::kIoError:
      return Status::IoError(std::move(msg));
    default:
      return Status::Internal(std::move(msg));
  }
}

}  // namespace

// ---- Statement ----

Statement::Statement(Statement&& other) noexcept
    : db_(other.db_), stmt_(std::exchange(other.stmt_, nullptr)) {}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    sqlite3_finalize(stmt_);
    db_ = other.db_;
    stmt_ = std::exchange(other.stmt_, nullptr);
  }
  return *this;
}

// sqlite3_finalize repeats the last step's error, already reported.
Statement::~Statement() { sqlite3_finalize(stmt_); }

Status Statement::Check(int rc, const char* what) const {
  if (rc == SQLITE_OK) return Status::OK();
  const char* sql = stmt_ ? sqlite3_sql(stmt_) : nullptr;
  return db_->Error(rc, Quoted(what, sql ? sql : ""));
}

Status Statement::Bind(int index, int64_t value) {
  return Check(sqlite3_bind_int64(stmt_, index, value), "bind");
}

Status Statement::Bind(int index, double value) {
  return Check(sqlite3_bind_double(stmt_, index, value), "bind");
}

Status Statement::Bind(int index, std::string_view value) {
  return Check(sqlite3_bind_text64(stmt_, index, value.data(), value.size(),
                                   SQLITE_TRANSIENT, SQLITE_UTF8),
               "bind");
}

Status Statement::BindNull(int index) {
  return Check(sqlite3_bind_null(stmt_, index), "bind");
}

Status Statement::BindNull(std::string_view name) {
  int index = 0;
  Status s = ParameterIndex(name, &index);
  return s.ok() ? BindNull(index) : s;
}

Status Statement::ParameterIndex(std::string_view name, int* index) const {
  *index = sqlite3_bind_parameter_index(stmt_, std::string(name).c_str());
  if (*index > 0) return Status::OK();
  return Status::Internal(Quoted("bind", sqlite3_sql(stmt_)) + ": no parameter " +
                          std::string(name));
}

Status Statement::Step(bool* row) {
  int rc = sqlite3_step(stmt_);
  *row = rc == SQLITE_ROW;
  if (rc == SQLITE_ROW || rc == SQLITE_DONE) return Status::OK();
  return Check(rc, "run");
}

Status Statement::Run() {
  bool row = true;
  while (row) {
    Status s = Step(&row);
    if (!s.ok()) return s;
  }
  return Status::OK();
}

Status Statement::Reset() {
  // sqlite3_reset repeats the last step's error, which the caller has seen.
  sqlite3_reset(stmt_);
  return Check(sqlite3_clear_bindings(stmt_), "reset");
}

int Statement::ColumnCount() const { return sqlite3_column_count(stmt_); }

bool Statement::ColumnIsNull(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

int64_t Statement::ColumnInt64(int column) const {
  return sqlite3_column_int64(stmt_, column);
}

double Statement::ColumnDouble(int column) const {
  return sqlite3_column_double(stmt_, column);
}

std::string Statement::ColumnText(int column) const {
  const unsigned char* text = sqlite3_column_text(stmt_, column);
  if (text == nullptr) return "";
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

// ---- Database ----

Status Database::Open(const std::string& path, std::unique_ptr<Database>* db) {
  sqlite3* handle = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &handle,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  // sqlite3_open_v2 returns a handle even on failure; owning it at once
  // closes it on every path.
  std::unique_ptr<Database> opened(new Database(path, handle));
  if (rc != SQLITE_OK) return opened->Error(rc, "open");
  sqlite3_extended_result_codes(handle, 1);
  Status s = opened->SetBusyTimeout(kBusyTimeoutMs);
  if (s.ok()) {
    s = opened->Exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                     " PRAGMA foreign_keys = ON;");
  }
  if (!s.ok()) return s;
  *db = std::move(opened);
  return Status::OK();
}

Database::~Database() { sqlite3_close_v2(db_); }

Status Database::Error(int rc, std::string_view what) const {
  std::string detail = (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED
                           ? "database is locked (another ladle holds it?)"
                           : (db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc));
  return Make(CodeFor(rc), path_ + ": " + std::string(what) + ": " + detail);
}

Status Database::SetBusyTimeout(int milliseconds) {
  int rc = sqlite3_busy_timeout(db_, milliseconds);
  return rc == SQLITE_OK ? Status::OK() : Error(rc, "set busy timeout");
}

Status Database::Exec(const std::string& sql) {
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
  return rc == SQLITE_OK ? Status::OK() : Error(rc, Quoted("exec", sql));
}

Status Database::Prepare(const std::string& sql, Statement* stmt) {
  sqlite3_stmt* raw = nullptr;
  const char* tail = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &raw, &tail);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(raw);
    return Error(rc, Quoted("prepare", sql));
  }
  *stmt = Statement(this, raw);
  // A second statement would be silently ignored by sqlite: refuse it.
  bool blank_tail = tail == nullptr ||
                    SqlSnippet(std::string_view(tail, sql.data() + sql.size() - tail)).empty();
  if (raw == nullptr || !blank_tail) {
    return Status::Internal(path_ + ": " + Quoted("prepare", sql) +
                            ": expected exactly one statement");
  }
  return Status::OK();
}

Status Database::UserVersion(int* version) {
  Statement stmt;
  Status s = Prepare("PRAGMA user_version", &stmt);
  bool row = false;
  if (s.ok()) s = stmt.Step(&row);
  if (!s.ok()) return s;
  *version = row ? stmt.ColumnInt(0) : 0;
  return Status::OK();
}

Status Database::Migrate(const std::vector<std::string>& steps) {
  bool done = false;
  while (!done) {
    Status s = MigrateOne(steps, &done);
    if (!s.ok()) return s;
  }
  return Status::OK();
}

// One step under the write lock. The version is read inside the transaction
// so two processes creating the same database do not both apply a step.
Status Database::MigrateOne(const std::vector<std::string>& steps, bool* done) {
  Transaction txn(this);
  int version = 0;
  Status s = txn.Begin();
  if (s.ok()) s = UserVersion(&version);
  if (!s.ok()) return s;
  const int known = static_cast<int>(steps.size());
  if (version > known) {
    return Status::Unavailable(path_ + ": schema version " + std::to_string(version) +
                               " is newer than this ladle knows (" + std::to_string(known) +
                               "); upgrade ladle");
  }
  *done = version == known;
  if (*done) return Status::OK();
  s = Exec(steps[version]);
  if (s.ok()) s = Exec("PRAGMA user_version = " + std::to_string(version + 1));
  if (!s.ok()) return s.WithContext("migrate to schema version " + std::to_string(version + 1));
  return txn.Commit();
}

int64_t Database::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }

int Database::changes() const { return sqlite3_changes(db_); }

// ---- Transaction ----

Transaction::~Transaction() {
  // Nothing to report to: a failed rollback leaves the transaction for
  // sqlite to roll back when the connection closes.
  if (open_) db_->Exec("ROLLBACK").IgnoreError();
}

Status Transaction::Begin() {
  Status s = db_->Exec("BEGIN IMMEDIATE");
  open_ = s.ok();
  return s;
}

Status Transaction::Commit() {
  if (!open_) return Status::Internal(db_->path() + ": commit without a transaction");
  Status s = db_->Exec("COMMIT");
  // A failed COMMIT (busy) leaves the transaction open; the destructor
  // rolls it back.
  open_ = !s.ok();
  return s;
}

}  // namespace ladle
