// Database: a small RAII wrapper over one sqlite3 connection.
//
// Shared by the run store, the toggle store and the server; it knows nothing
// of what they keep. Every sqlite3 return code is checked and turned into a
// Status whose message names the database, the SQL and sqlite3_errmsg. A busy
// or locked database is Code::kUnavailable ("database is locked (another
// ladle holds it?)"), a constraint violation Code::kConflict, a file problem
// Code::kIoError, a bad statement Code::kInternal.
//
// Thread-safety: none. A Database and its Statements are used by one thread at
// a time; callers that share one (RunStore) guard it with their own mutex.
#ifndef LADLE_CORE_SQLITE_H_
#define LADLE_CORE_SQLITE_H_

#include <cstdint>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/base/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace ladle {

class Database;

// A prepared statement. Movable, not copyable. REQUIRES: it does not outlive
// the Database that prepared it. Parameter indexes are 1-based (as in SQL
// "?1"), column indexes 0-based (as in sqlite3_column_*).
class Statement {
 public:
  Statement() = default;
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  bool valid() const { return stmt_ != nullptr; }

  Status Bind(int index, int value) { return Bind(index, static_cast<int64_t>(value)); }
  Status Bind(int index, int64_t value);
  Status Bind(int index, double value);
  Status Bind(int index, std::string_view value);  // copied by sqlite
  Status Bind(int index, const char* value) { return Bind(index, std::string_view(value)); }
  Status Bind(int index, const std::string& value) { return Bind(index, std::string_view(value)); }
  Status BindNull(int index);
  Status Bind(int index, std::nullptr_t) { return BindNull(index); }
  template <typename T>
  Status Bind(int index, const std::optional<T>& value) {
    return value ? Bind(index, *value) : BindNull(index);
  }
  // Binds ?1, ?2, ... in order (nullptr or an empty optional: NULL); stops
  // at the first error.
  template <typename... Args>
  Status BindAll(const Args&... args) {
    Status s;
    int index = 0;
    ((s = s.ok() ? Bind(++index, args) : s), ...);
    return s;
  }
  // Named parameters (":name", "@name" or "$name", spelled as in the SQL).
  template <typename T>
  Status Bind(std::string_view name, const T& value) {
    int index = 0;
    Status s = ParameterIndex(name, &index);
    return s.ok() ? Bind(index, value) : s;
  }
  Status BindNull(std::string_view name);

  // Advances: *row is true when a row is available, false when done.
  Status Step(bool* row);
  // Steps until done, ignoring rows (INSERT, UPDATE, PRAGMA x = y).
  Status Run();
  // Rewinds to run again and clears the bindings.
  Status Reset();

  int ColumnCount() const;
  bool ColumnIsNull(int column) const;
  int64_t ColumnInt64(int column) const;
  int ColumnInt(int column) const { return static_cast<int>(ColumnInt64(column)); }
  double ColumnDouble(int column) const;
  std::string ColumnText(int column) const;  // "" for NULL

 private:
  friend class Database;
  Statement(const Database* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  Status ParameterIndex(std::string_view name, int* index) const;
  Status Check(int rc, const char* what) const;

  const Database* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
};

class Database {
 public:
  // Opens or creates the file at `path` (":memory:" works too) in WAL mode
  // with synchronous=NORMAL, foreign_keys=ON and a 5000 ms busy timeout.
  static Status Open(const std::string& path, std::unique_ptr<Database>* db);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Runs one or more statements that return no rows of interest.
  Status Exec(const std::string& sql);
  Status Prepare(const std::string& sql, Statement* stmt);

  // Brings the schema up to date: applies steps[user_version..] in order,
  // each in its own transaction that also sets PRAGMA user_version to its
  // index + 1. Safe when several processes open a new database at once (the
  // version is re-read under the write lock). A database newer than `steps`
  // is refused with Code::kUnavailable.
  Status Migrate(const std::vector<std::string>& steps);
  Status UserVersion(int* version);

  // How long a statement waits for another connection's lock before failing
  // with kUnavailable. Tests lower it; 0 fails at once.
  Status SetBusyTimeout(int milliseconds);

  int64_t last_insert_rowid() const;
  int changes() const;  // rows changed by the last INSERT, UPDATE or DELETE
  const std::string& path() const { return path_; }

 private:
  friend class Statement;
  Database(std::string path, sqlite3* db) : path_(std::move(path)), db_(db) {}
  // Turns a failed sqlite3 return code into a Status: "PATH: WHAT: errmsg".
  Status Error(int rc, std::string_view what) const;
  Status MigrateOne(const std::vector<std::string>& steps, bool* done);

  std::string path_;
  sqlite3* db_ = nullptr;
};

// A write transaction: BEGIN IMMEDIATE takes the write lock up front, so a
// busy database fails at Begin (kUnavailable) rather than halfway through.
// Rolled back on destruction unless committed.
//
//   Transaction txn(db);
//   if (Status s = txn.Begin(); !s.ok()) return s;
//   ... writes ...
//   return txn.Commit();
class Transaction {
 public:
  explicit Transaction(Database* db) : db_(db) {}
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  Status Begin();
  Status Commit();  // REQUIRES: Begin succeeded

 private:
  Database* db_;
  bool open_ = false;
};

// Prepares `sql`, binds ?1.. to `args` and runs it: one statement that
// returns no rows.
template <typename... Args>
Status Exec(Database* db, const std::string& sql, const Args&... args) {
  Statement st;
  Status s = db->Prepare(sql, &st);
  if (s.ok()) s = st.BindAll(args...);
  return s.ok() ? st.Run() : s;
}

}  // namespace ladle

#endif  // LADLE_CORE_SQLITE_H_
