#include "core/pg.h"

#include <libpq-fe.h>

#include <cstdlib>
#include <utility>

namespace ladle {

bool IsPostgresUri(const std::string& location) {
  return location.rfind("postgresql://", 0) == 0 || location.rfind("postgres://", 0) == 0;
}

std::string RedactPostgresUri(const std::string& uri) {
  // scheme://user:password@host...: drop what is between ':' and '@'.
  size_t scheme = uri.find("://");
  if (scheme == std::string::npos) return uri;
  size_t at = uri.find('@', scheme + 3);
  size_t slash = uri.find('/', scheme + 3);
  if (at == std::string::npos || (slash != std::string::npos && slash < at)) return uri;
  size_t colon = uri.find(':', scheme + 3);
  if (colon == std::string::npos || colon > at) return uri;
  return uri.substr(0, colon) + ":***" + uri.substr(at);
}

// --- PgResult ---

PgResult::PgResult(pg_result* r) : r_(r) {}
PgResult::~PgResult() {
  if (r_) PQclear(r_);
}
PgResult::PgResult(PgResult&& other) noexcept : r_(std::exchange(other.r_, nullptr)) {}
PgResult& PgResult::operator=(PgResult&& other) noexcept {
  if (this != &other) {
    if (r_) PQclear(r_);
    r_ = std::exchange(other.r_, nullptr);
  }
  return *this;
}
int PgResult::rows() const { return r_ ? PQntuples(r_) : 0; }
bool PgResult::IsNull(int row, int col) const { return PQgetisnull(r_, row, col) != 0; }
std::string PgResult::Text(int row, int col) const {
  return std::string(PQgetvalue(r_, row, col), PQgetlength(r_, row, col));
}
std::optional<std::string> PgResult::Nullable(int row, int col) const {
  if (IsNull(row, col)) return std::nullopt;
  return Text(row, col);
}
Status PgResult::Int64(int row, int col, int64_t* out) const {
  const std::string text = Text(row, col);
  char* end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || end == nullptr || *end != '\0')
    return Status::Internal("column " + std::to_string(col) + ": not an integer: '" + text + "'");
  *out = v;
  return Status::OK();
}

// --- PgConnection ---

Status PgConnection::Connect(const std::string& uri, std::chrono::seconds timeout,
                             std::unique_ptr<PgConnection>* out,
                             const std::string& application_name) {
  const std::string redacted = RedactPostgresUri(uri);
  const std::string seconds = std::to_string(std::max<int64_t>(1, timeout.count()));
  const char* keys[] = {"dbname", "connect_timeout", "application_name", nullptr};
  const char* values[] = {uri.c_str(), seconds.c_str(), application_name.c_str(), nullptr};
  // expand_dbname=1: "dbname" holds the whole URI; the other keys apply
  // unless the URI sets them.
  pg_conn* conn = PQconnectdbParams(keys, values, 1);
  if (conn == nullptr) return Status::Unavailable("connect to " + redacted + ": out of memory");
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string why = PQerrorMessage(conn);
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    PQfinish(conn);
    return Status::Unavailable("connect to " + redacted + ": " + why);
  }
  // NOTICEs ("relation ... already exists, skipping") are not errors; libpq
  // would print them on stderr.
  PQsetNoticeProcessor(conn, [](void*, const char*) {}, nullptr);
  out->reset(new PgConnection(conn, redacted));
  return Status::OK();
}

PgConnection::~PgConnection() { PQfinish(conn_); }

bool PgConnection::ok() const { return PQstatus(conn_) == CONNECTION_OK; }
int PgConnection::socket() const { return ok() ? PQsocket(conn_) : -1; }

Status PgConnection::Exec(const std::string& sql, const std::vector<Param>& params, PgResult* out,
                          std::string* sqlstate) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const Param& p : params) values.push_back(p ? p->c_str() : nullptr);
  pg_result* r = params.empty() ? PQexec(conn_, sql.c_str())
                                : PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()),
                                               nullptr, values.data(), nullptr, nullptr, 0);
  PgResult result(r);
  ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
    if (out) *out = std::move(result);
    return Status::OK();
  }
  const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  if (sqlstate) *sqlstate = state ? state : "";
  std::string why = r ? PQresultErrorMessage(r) : PQerrorMessage(conn_);
  if (why.empty()) why = PQerrorMessage(conn_);
  while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
  std::string first = sql.substr(0, sql.find_first_of("\n("));
  if (first.size() > 60) first = first.substr(0, 60) + "...";
  std::string msg = redacted_ + ": '" + first + "': " + why;
  // Class 08: connection exceptions; 57P01: terminated by an administrator.
  bool gone = !ok() || (state && (std::string(state).rfind("08", 0) == 0 ||
                                  std::string(state) == "57P01"));
  return gone ? Status::Unavailable(msg) : Status::Internal(msg);
}

Status PgConnection::ConsumeNotifications(std::vector<std::string>* payloads) {
  if (PQconsumeInput(conn_) == 0) {
    std::string why = PQerrorMessage(conn_);
    while (!why.empty() && why.back() == '\n') why.pop_back();
    return Status::Unavailable(redacted_ + ": " + why);
  }
  while (PGnotify* n = PQnotifies(conn_)) {
    payloads->push_back(n->extra ? n->extra : "");
    PQfreemem(n);
  }
  return ok() ? Status::OK() : Status::Unavailable(redacted_ + ": connection lost");
}

// --- PgTransaction ---

PgTransaction::~PgTransaction() {
  // Best effort: a rollback that fails leaves a broken connection, which the
  // next statement reports.
  if (open_) c_->Exec("ROLLBACK").IgnoreError();
}

Status PgTransaction::Begin(const std::string& statement) {
  Status s = c_->Exec(statement);
  open_ = s.ok();
  return s;
}

Status PgTransaction::Commit() {
  open_ = false;
  return c_->Exec("COMMIT");
}

Status MigratePart(PgConnection* c, const std::string& part, const std::string& what,
                   const std::vector<std::string>& steps) {
  PgTransaction txn(c);
  Status s = txn.Begin();
  if (s.ok()) s = c->Exec("SELECT pg_advisory_xact_lock(7419001)");
  if (s.ok()) {
    s = c->Exec(
        "CREATE TABLE IF NOT EXISTS ladle_schema_versions ("
        " part TEXT PRIMARY KEY, version INTEGER NOT NULL)");
  }
  PgResult r;
  if (s.ok()) s = c->Exec("SELECT version FROM ladle_schema_versions WHERE part = $1", {part}, &r);
  int64_t version = 0;
  if (s.ok() && r.rows() > 0) s = r.Int64(0, 0, &version);
  const auto known = static_cast<int64_t>(steps.size());
  if (s.ok() && version > known) {
    s = Status::Invalid(c->uri() + ": " + what + " schema version " + std::to_string(version) +
                        " is newer than this ladle's (" + std::to_string(known) +
                        "); upgrade ladle");
  }
  for (int64_t i = version; s.ok() && i < known; ++i) s = c->Exec(steps[i]);
  if (s.ok() && version < known) {
    s = c->Exec(
        "INSERT INTO ladle_schema_versions (part, version) VALUES ($1, $2)"
        " ON CONFLICT (part) DO UPDATE SET version = excluded.version",
        {part, std::to_string(known)});
  }
  if (s.ok()) s = txn.Commit();
  return s.ok() ? s : s.WithContext("migrate the " + what + " schema");
}

}  // namespace ladle
