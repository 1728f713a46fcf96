// A small libpq wrapper for the PostgreSQL stores (docs/design.md "Two
// stores: SQLite and PostgreSQL"), parallel to core/sqlite.h: one connection,
// statements with $1.. text parameters, results as text, every error a Status
// naming the statement. libpq rather than libpqxx: the stores need a handful
// of calls, and libpq's notification API (PQsocket, PQconsumeInput,
// PQnotifies) is what LISTEN needs, without exceptions to translate.
//
// Thread-safety: a PgConnection is used by one thread at a time.
#ifndef LADLE_CORE_PG_H_
#define LADLE_CORE_PG_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/base/status.h"

struct pg_conn;
struct pg_result;

namespace ladle {

// Whether `location` names a PostgreSQL database (postgresql:// or postgres://).
bool IsPostgresUri(const std::string& location);

// The URI without its password, for messages and logs.
std::string RedactPostgresUri(const std::string& uri);

// One result: rows of text columns; NULL is nullopt.
class PgResult {
 public:
  PgResult() = default;
  explicit PgResult(pg_result* r);
  ~PgResult();
  PgResult(PgResult&& other) noexcept;
  PgResult& operator=(PgResult&& other) noexcept;
  PgResult(const PgResult&) = delete;
  PgResult& operator=(const PgResult&) = delete;

  int rows() const;
  bool IsNull(int row, int col) const;
  std::string Text(int row, int col) const;  // "" for NULL
  std::optional<std::string> Nullable(int row, int col) const;
  // Internal when the column is not an integer (a damaged database).
  Status Int64(int row, int col, int64_t* out) const;

 private:
  pg_result* r_ = nullptr;
};

class PgConnection {
 public:
  using Param = std::optional<std::string>;  // nullopt binds NULL
  // How long every part of ladle waits for PostgreSQL to accept a connection.
  static constexpr std::chrono::seconds kConnectTimeout{10};

  // Connects within `timeout`; Unavailable names the (redacted) URI and
  // libpq's reason.
  // `application_name` shows in pg_stat_activity.
  static Status Connect(const std::string& uri, std::chrono::seconds timeout,
                        std::unique_ptr<PgConnection>* out,
                        const std::string& application_name = "ladle");
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // Runs one statement (or, without params, several separated by ';').
  // A failed statement is Unavailable when the connection is gone, else
  // Internal with PostgreSQL's message; `sqlstate` gets its code.
  Status Exec(const std::string& sql, const std::vector<Param>& params = {},
              PgResult* out = nullptr, std::string* sqlstate = nullptr);

  bool ok() const;  // the connection is up
  int socket() const;  // for poll(); -1 when down
  // Reads what the server sent; appends the payloads of notifications.
  Status ConsumeNotifications(std::vector<std::string>* payloads);
  pg_conn* raw() { return conn_; }
  const std::string& uri() const { return redacted_; }

 private:
  PgConnection(pg_conn* conn, std::string redacted) : conn_(conn), redacted_(std::move(redacted)) {}
  pg_conn* conn_;
  std::string redacted_;
};

// A transaction: BEGIN in Begin(), ROLLBACK unless committed.
class PgTransaction {
 public:
  explicit PgTransaction(PgConnection* c) : c_(c) {}
  ~PgTransaction();
  PgTransaction(const PgTransaction&) = delete;
  PgTransaction& operator=(const PgTransaction&) = delete;
  Status Begin(const std::string& statement = "BEGIN");
  Status Commit();  // REQUIRES: Begin succeeded

 private:
  PgConnection* c_;
  bool open_ = false;
};

// Brings part `part` ("runs", "toggles", "tokens") of the schema to
// `steps.size()`: runs the steps after the version recorded in
// ladle_schema_versions, in one transaction under the advisory lock every
// part takes (parts creating ladle_schema_versions at once under different
// locks fail with a duplicate key), so that servers starting at once migrate
// once. Invalid when the database is newer than this ladle; `what` names the
// schema in messages ("run", "toggle", "token").
Status MigratePart(PgConnection* c, const std::string& part, const std::string& what,
                   const std::vector<std::string>& steps);

}  // namespace ladle

#endif  // LADLE_CORE_PG_H_
