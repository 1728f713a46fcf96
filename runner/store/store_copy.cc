// `ladle store migrate`'s copy (runner/store/store_copy.h; docs/server.md
// "Moving to PostgreSQL"): SQLite rows read in a read transaction per file,
// converted by the PostgreSQL column's type, and sent with COPY FROM STDIN
// in one PostgreSQL transaction.
#include "runner/store/store_copy.h"

#include <libpq-fe.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <utility>

#include "core/base/time_util.h"
#include "core/pg.h"
#include "core/sqlite.h"
#include "runner/store/run_rows.h"

namespace ladle::runner {
namespace {

// COPY data goes out in pieces of about this size: memory stays bounded
// whatever the tables hold.
constexpr size_t kFlushBytes = 1 << 20;

struct TablePlan {
  const char* file;  // in the data dir
  const char* from;  // SQLite table
  const char* to;    // PostgreSQL table
};

// Every table of both files, in an order that satisfies the foreign keys
// (stages after runs, steps after stages, configs after toggles and
// environments). The names differ where toggles.db's would be ambiguous in a
// database the run store shares (toggles/server/pg_store.cc).
constexpr TablePlan kPlan[] = {
    {"ladle.db", "runs", "runs"},
    {"ladle.db", "stages", "stages"},
    {"ladle.db", "steps", "steps"},
    {"ladle.db", "deployments", "deployments"},
    {"ladle.db", "deliveries", "deliveries"},
    {"ladle.db", "schedules", "schedules"},
    {"toggles.db", "environments", "toggle_environment_names"},
    {"toggles.db", "toggles", "toggles"},
    {"toggles.db", "toggle_environments", "toggle_environments"},
    {"toggles.db", "events", "toggle_events"},
    {"toggles.db", "tokens", "tokens"},
};

// What a freshly migrated schema holds, which does not make a database "not
// empty": per table, the condition of the rows that count.
const std::map<std::string, std::string>& SeededTables() {
  static const std::map<std::string, std::string> kSeeded = {
      {"ladle_schema_versions", "false"},
      {"toggle_environment_names", "name <> 'production'"},  // the default environment
      {"toggle_revision", "value <> 0"},
      {"tokens_revision", "value <> 0"},
  };
  return kSeeded;
}

std::string Ident(const std::string& name) {
  std::string out = "\"";
  for (char c : name) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// ---- PostgreSQL columns and conversions ----

enum class Kind { kText, kInt, kBool, kTime, kReal, kBytes, kOther };

struct PgColumn {
  std::string name;
  std::string type;  // information_schema's data_type
  Kind kind = Kind::kOther;
  int64_t min = std::numeric_limits<int64_t>::min();
  int64_t max = std::numeric_limits<int64_t>::max();
  bool nullable = true;
};

void Classify(PgColumn* c) {
  const std::string& t = c->type;
  if (t == "text" || t == "character varying" || t == "character" || t == "json" ||
      t == "jsonb") {
    c->kind = Kind::kText;
  } else if (t == "bigint") {
    c->kind = Kind::kInt;
  } else if (t == "integer") {
    c->kind = Kind::kInt;
    c->min = std::numeric_limits<int32_t>::min();
    c->max = std::numeric_limits<int32_t>::max();
  } else if (t == "smallint") {
    c->kind = Kind::kInt;
    c->min = std::numeric_limits<int16_t>::min();
    c->max = std::numeric_limits<int16_t>::max();
  } else if (t == "boolean") {
    c->kind = Kind::kBool;
  } else if (t.rfind("timestamp", 0) == 0 || t == "date") {
    c->kind = Kind::kTime;
  } else if (t == "double precision" || t == "real" || t == "numeric") {
    c->kind = Kind::kReal;
  } else if (t == "bytea") {
    c->kind = Kind::kBytes;
  }
}

Status ReadPgColumns(PgConnection* pg, const std::string& table, std::vector<PgColumn>* out) {
  PgResult r;
  Status s = pg->Exec(
      "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
      " WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
      {table}, &r);
  if (!s.ok()) return s;
  if (r.rows() == 0)
    return Status::Internal(pg->uri() + " has no table " + table + " (the stores create it)");
  for (int i = 0; i < r.rows(); ++i) {
    PgColumn c;
    c.name = r.Text(i, 0);
    c.type = r.Text(i, 1);
    c.nullable = r.Text(i, 2) == "YES";
    Classify(&c);
    out->push_back(std::move(c));
  }
  return Status::OK();
}

bool ValidUtf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == 0) return false;  // PostgreSQL text holds no NUL
    if (c < 0x80) {
      ++i;
      continue;
    }
    const size_t more = (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xE ? 2 : (c >> 3) == 0x1E ? 3 : 0;
    if (more == 0 || i + more >= s.size()) return false;  // a stray or cut-off sequence
    uint32_t cp = c & (0x7F >> (more + 1));
    for (size_t k = 1; k <= more; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d >> 6) != 0x2) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    // Overlong forms, surrogates, and code points past U+10FFFF.
    static const uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[more] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += more + 1;
  }
  return true;
}

bool ParseInt(const std::string& text, int64_t* out) {
  if (text.empty()) return false;
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || end == nullptr || *end != '\0') return false;
  *out = v;
  return true;
}

// A SQLite value (its typeof() and its text) as the text PostgreSQL's input
// function of `col` takes; false with *why when it cannot hold it.
bool Convert(const PgColumn& col, const std::string& type, const std::string& value,
             std::optional<std::string>* out, std::string* why) {
  if (type == "null") {
    if (!col.nullable) {
      *why = "NULL, but the PostgreSQL column is NOT NULL";
      return false;
    }
    out->reset();
    return true;
  }
  switch (col.kind) {
    case Kind::kInt: {
      int64_t v = 0;
      bool ok = type == "integer" || type == "text" ? ParseInt(value, &v) : false;
      if (!ok && type == "real") {
        const double d = std::strtod(value.c_str(), nullptr);
        ok = d >= -9.2e18 && d <= 9.2e18 && static_cast<double>(static_cast<int64_t>(d)) == d;
        v = ok ? static_cast<int64_t>(d) : 0;
      }
      if (!ok) {
        *why = "'" + value.substr(0, 40) + "' (" + type + ") is not an integer";
        return false;
      }
      if (v < col.min || v > col.max) {
        *why = value + " does not fit PostgreSQL's " + col.type;
        return false;
      }
      *out = std::to_string(v);
      return true;
    }
    case Kind::kBool:
      if (value == "0" || value == "1" || value == "t" || value == "f" || value == "true" ||
          value == "false") {
        *out = value == "1" || value == "t" || value == "true" ? "t" : "f";
        return true;
      }
      *why = "'" + value.substr(0, 40) + "' is not a boolean (0 or 1)";
      return false;
    case Kind::kTime: {
      int64_t micros = 0;
      if (type != "text" || !ParseRfc3339Micros(value, &micros)) {
        *why = "'" + value.substr(0, 40) + "' is not an RFC 3339 time";
        return false;
      }
      *out = value;
      return true;
    }
    case Kind::kReal:
      if (type != "integer" && type != "real") {
        *why = "'" + value.substr(0, 40) + "' (" + type + ") is not a number";
        return false;
      }
      *out = value;
      return true;
    case Kind::kBytes: {
      static const char kHex[] = "0123456789abcdef";
      std::string hex = "\\x";
      for (unsigned char c : value) {
        hex += kHex[c >> 4];
        hex += kHex[c & 0xF];
      }
      *out = std::move(hex);
      return true;
    }
    case Kind::kText:
    case Kind::kOther:
      if (type == "blob" || !ValidUtf8(value)) {
        *why = "not UTF-8 text (PostgreSQL text holds neither NUL bytes nor invalid UTF-8)";
        return false;
      }
      *out = value;
      return true;
  }
  return false;
}

// Appends one field of COPY's text format.
void AppendCopyField(const std::optional<std::string>& v, std::string* buf) {
  if (!v) {
    *buf += "\\N";
    return;
  }
  for (char c : *v) {
    switch (c) {
      case '\\': *buf += "\\\\"; break;
      case '\n': *buf += "\\n"; break;
      case '\r': *buf += "\\r"; break;
      case '\t': *buf += "\\t"; break;
      default: *buf += c;
    }
  }
}

// libpq's error text on one line.
std::string OneLine(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  for (char& c : text)
    if (c == '\n') c = ' ';
  return text;
}

// ---- SQLite sources ----

struct SqliteColumn {
  std::string name;
  int pk = 0;  // position in the primary key, 0 when not in it
};

Status ReadSqliteColumns(Database* db, const std::string& table, std::vector<SqliteColumn>* out) {
  Statement st;
  Status s = db->Prepare("PRAGMA table_info(" + Ident(table) + ")", &st);
  for (bool row = true; s.ok();) {
    s = st.Step(&row);
    if (!s.ok() || !row) break;
    out->push_back({st.ColumnText(1), st.ColumnInt(5)});
  }
  return s;
}

// One SQLite file read in a read transaction, so that every table is read
// as of one moment, whatever another process writes meanwhile.
class Source {
 public:
  Status Open(const std::string& path, const std::string& file) {
    file_ = file;
    Status s = Database::Open(path, &db_);
    if (s.ok()) s = db_->Exec("BEGIN");
    if (!s.ok()) return s;
    open_ = true;
    // A deferred transaction reads from its first SELECT on: start it now.
    Statement st;
    bool row = false;
    s = db_->Prepare("SELECT count(*) FROM sqlite_master", &st);
    if (s.ok()) s = st.Step(&row);
    return s;
  }
  ~Source() {
    // Only ever read: ending the transaction cannot lose anything.
    if (open_) db_->Exec("ROLLBACK").IgnoreError();
  }
  Database* db() { return db_.get(); }
  const std::string& file() const { return file_; }

 private:
  std::string file_;
  std::unique_ptr<Database> db_;
  bool open_ = false;
};

// Refuses runs that a live process still runs (a `ladle run` in progress):
// what it writes after the copy would stay in SQLite.
Status CheckNoLiveRuns(Database* db) {
  Statement st;
  Status s = db->Prepare(
      "SELECT id, owner_pid, owner_start FROM runs WHERE status IN ('running', 'waiting')"
      " ORDER BY id",
      &st);
  for (bool row = true; s.ok();) {
    s = st.Step(&row);
    if (!s.ok() || !row) break;
    const int pid = st.ColumnInt(1);
    if (pid > 0 && pid != ::getpid() && rows::OwnerAlive(pid, st.ColumnInt64(2))) {
      return Status::Precondition("run " + std::to_string(st.ColumnInt64(0)) +
                                  " is still running (process " + std::to_string(pid) +
                                  "): let it finish or cancel it, then migrate");
    }
  }
  return s;
}

// The highest id SQLite ever gave in `table` (AUTOINCREMENT's
// sqlite_sequence): pruned runs' ids are not given again either.
int64_t SqliteSequence(Database* db, const std::string& table) {
  Statement st;
  bool row = false;
  if (!db->Prepare("SELECT seq FROM sqlite_sequence WHERE name = ?1", &st).ok() ||
      !st.Bind(1, table).ok() || !st.Step(&row).ok() || !row)
    return 0;
  return st.ColumnInt64(0);
}

// ---- the copy ----

class Copier {
 public:
  Copier(PgConnection* pg, StoreCopyReport* report) : pg_(pg), report_(report) {}

  // Every table of the schema, the plan's first: Conflict naming the first
  // that holds rows.
  Status CheckEmpty() {
    PgResult r;
    Status s = pg_->Exec(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        " AND table_type = 'BASE TABLE' ORDER BY table_name",
        {}, &r);
    if (!s.ok()) return s;
    std::vector<std::string> existing, tables;
    for (int i = 0; i < r.rows(); ++i) existing.push_back(r.Text(i, 0));
    for (const TablePlan& p : kPlan) {
      if (std::find(existing.begin(), existing.end(), p.to) != existing.end()) tables.push_back(p.to);
    }
    for (const std::string& t : existing) {
      if (std::find(tables.begin(), tables.end(), t) == tables.end()) tables.push_back(t);
    }
    // No writer may slip in between the check and the copy.
    std::string lock;
    for (const std::string& t : existing) lock += (lock.empty() ? "" : ", ") + Ident(t);
    if (!lock.empty()) s = pg_->Exec("LOCK TABLE " + lock + " IN EXCLUSIVE MODE");
    for (size_t i = 0; s.ok() && i < tables.size(); ++i) {
      const auto seeded = SeededTables().find(tables[i]);
      PgResult count;
      s = pg_->Exec("SELECT count(*) FROM " + Ident(tables[i]) +
                        (seeded == SeededTables().end() ? "" : " WHERE " + seeded->second),
                    {}, &count);
      int64_t n = 0;
      if (s.ok()) s = count.Int64(0, 0, &n);
      if (s.ok() && n > 0) {
        return Status::Conflict(pg_->uri() + " is not empty: table " + tables[i] + " has " +
                                std::to_string(n) + (n == 1 ? " row" : " rows") +
                                " (ladle store migrate copies into an empty database only)");
      }
    }
    return s;
  }

  Status CopyTable(Source* src, const TablePlan& plan) {
    Columns cols;
    Status s = MatchColumns(src, plan, &cols);
    if (!s.ok() || cols.pg.empty()) return s;  // no such table in an older file: nothing to copy
    const auto start = std::chrono::steady_clock::now();
    CopiedTable copied{src->file(), plan.from, plan.to, 0, {}};
    Statement st;
    s = src->db()->Prepare(
        "SELECT " + cols.select + " FROM " + Ident(plan.from) + " ORDER BY " + cols.order, &st);
    if (s.ok()) s = BeginCopy(plan.to, cols.names);
    if (!s.ok()) return s;
    std::string buf;
    for (bool row = true; s.ok();) {
      s = st.Step(&row);
      if (!s.ok() || !row) break;
      s = AppendRow(src, plan, cols, st, &buf);
      ++copied.rows;
      if (s.ok() && buf.size() >= kFlushBytes) s = Put(&buf);
    }
    if (s.ok() && !buf.empty()) s = Put(&buf);
    Status end = EndCopy(plan.to, s.ok() ? nullptr : "ladle: a row could not be converted");
    if (!s.ok()) return s;
    if (!end.ok()) return end;
    copied.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    report_->tables.push_back(copied);
    return Status::OK();
  }

  // Identity and serial columns of the copied tables continue past the
  // highest id copied (or ever given, for SQLite's AUTOINCREMENT).
  Status AdvanceSequences(Source* src, const TablePlan& plan) {
    PgResult r;
    Status s = pg_->Exec(
        "SELECT column_name, pg_get_serial_sequence(quote_ident(table_name), column_name)"
        " FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND table_name = $1"
        " AND pg_get_serial_sequence(quote_ident(table_name), column_name) IS NOT NULL",
        {plan.to}, &r);
    for (int i = 0; s.ok() && i < r.rows(); ++i) {
      const int64_t given = SqliteSequence(src->db(), plan.from);
      s = pg_->Exec("SELECT setval($1, v) FROM (SELECT greatest(max(" + Ident(r.Text(i, 0)) +
                        "), $2::bigint) AS v FROM " + Ident(plan.to) + ") m WHERE v > 0",
                    {r.Text(i, 1), std::to_string(given)});
    }
    return s;
  }

  // The toggles' revision (toggles/server/pg_store.cc): the counter row and
  // the sequence the next revision comes from, at the copied revision (or
  // the newest event's, were the counter behind it).
  Status SetToggleRevision(Source* src) {
    Statement st;
    bool row = false;
    Status s = src->db()->Prepare(
        "SELECT max((SELECT value FROM revision WHERE id = 1),"
        " coalesce((SELECT max(revision) FROM events), 0))",
        &st);
    if (s.ok()) s = st.Step(&row);
    if (!s.ok()) return s;
    const int64_t revision = row ? st.ColumnInt64(0) : 0;
    report_->toggle_revision = revision;
    s = pg_->Exec("UPDATE toggle_revision SET value = $1 WHERE id = 1", {std::to_string(revision)});
    if (s.ok() && revision > 0) {
      s = pg_->Exec("SELECT setval('toggle_revision_seq', $1)", {std::to_string(revision)});
    }
    return s;
  }

  // Every token write bumps tokens_revision (toggles/server/pg_tokens.cc);
  // this one too, so that a server that read the table before sees it moved.
  Status MarkTokensChanged() {
    return pg_->Exec("UPDATE tokens_revision SET value = value + 1 WHERE id = 1");
  }

 private:
  // The columns both tables have, and how to read them from SQLite: each
  // as typeof() and value, then the primary key (rows in key order; the key
  // names a row in errors).
  struct Columns {
    std::vector<PgColumn> all;             // the PostgreSQL table's
    std::vector<const PgColumn*> pg;       // both have them, in SQLite's order
    std::vector<std::string> key;
    std::string select, names, order;
  };

  Status MatchColumns(Source* src, const TablePlan& plan, Columns* cols) {
    std::vector<SqliteColumn> from;
    Status s = ReadSqliteColumns(src->db(), plan.from, &from);
    if (s.ok() && !from.empty()) s = ReadPgColumns(pg_, plan.to, &cols->all);
    if (!s.ok() || from.empty()) return s;
    for (const SqliteColumn& c : from) {
      auto it = std::find_if(cols->all.begin(), cols->all.end(),
                             [&](const PgColumn& p) { return p.name == c.name; });
      if (it == cols->all.end()) {
        report_->skipped_columns.push_back(src->file() + " " + plan.from + "." + c.name);
        continue;
      }
      cols->pg.push_back(&*it);
      cols->select += (cols->select.empty() ? "" : ", ") +
                      ("typeof(" + Ident(c.name) + "), " + Ident(c.name));
      cols->names += (cols->names.empty() ? "" : ", ") + Ident(c.name);
    }
    for (int pos = 1;; ++pos) {
      auto it = std::find_if(from.begin(), from.end(),
                             [&](const SqliteColumn& c) { return c.pk == pos; });
      if (it == from.end()) break;
      cols->key.push_back(it->name);
    }
    if (cols->key.empty()) cols->key.push_back("rowid");
    for (const std::string& k : cols->key) {
      cols->select += ", " + Ident(k);
      cols->order += (cols->order.empty() ? "" : ", ") + Ident(k);
    }
    return Status::OK();
  }

  // One row of `st` as a line of COPY's text format; Invalid naming the
  // file, table, row and column of a value PostgreSQL's column cannot hold.
  static Status AppendRow(Source* src, const TablePlan& plan, const Columns& cols,
                          const Statement& st, std::string* buf) {
    std::string why;
    for (size_t i = 0; i < cols.pg.size(); ++i) {
      std::optional<std::string> value;
      const int at = static_cast<int>(2 * i);
      if (!Convert(*cols.pg[i], st.ColumnText(at), st.ColumnText(at + 1), &value, &why)) {
        return Status::Invalid(src->file() + ": table " + plan.from + ", row " +
                               RowKey(st, cols.key, static_cast<int>(2 * cols.pg.size())) +
                               ", column " + cols.pg[i]->name + ": " + why);
      }
      if (i > 0) *buf += '\t';
      AppendCopyField(value, buf);
    }
    *buf += '\n';
    return Status::OK();
  }

  static std::string RowKey(const Statement& st, const std::vector<std::string>& key, int first) {
    std::string out;
    for (size_t i = 0; i < key.size(); ++i) {
      out += (i > 0 ? ", " : "") + key[i] + "=" + st.ColumnText(first + static_cast<int>(i)).substr(0, 80);
    }
    return key.size() > 1 ? "(" + out + ")" : out;
  }

  Status BeginCopy(const std::string& table, const std::string& names) {
    const std::string sql = "COPY " + Ident(table) + " (" + names + ") FROM STDIN";
    pg_result* raw = PQexec(pg_->raw(), sql.c_str());
    PgResult r(raw);
    if (raw != nullptr && PQresultStatus(raw) == PGRES_COPY_IN) return Status::OK();
    const std::string why = OneLine(raw ? PQresultErrorMessage(raw) : PQerrorMessage(pg_->raw()));
    const std::string msg = pg_->uri() + ": copy into " + table + ": " + why;
    return pg_->ok() ? Status::Internal(msg) : Status::Unavailable(msg);
  }

  Status Put(std::string* buf) {
    if (PQputCopyData(pg_->raw(), buf->data(), static_cast<int>(buf->size())) != 1)
      return Status::Unavailable(pg_->uri() + ": COPY: " + OneLine(PQerrorMessage(pg_->raw())));
    buf->clear();
    return Status::OK();
  }

  Status EndCopy(const std::string& table, const char* abort) {
    Status s;
    if (PQputCopyEnd(pg_->raw(), abort) != 1)
      s = Status::Unavailable(pg_->uri() + ": COPY: " + OneLine(PQerrorMessage(pg_->raw())));
    while (pg_result* raw = PQgetResult(pg_->raw())) {
      PgResult r(raw);
      if (PQresultStatus(raw) != PGRES_COMMAND_OK && s.ok() && abort == nullptr) {
        s = Status::Internal(pg_->uri() + ": copy into " + table + ": " +
                             OneLine(PQresultErrorMessage(raw)));
      }
    }
    if (s.ok() && !pg_->ok()) s = Status::Unavailable(pg_->uri() + ": connection lost");
    return s;
  }

  PgConnection* pg_;
  StoreCopyReport* report_;
};

}  // namespace

namespace {

using Sources = std::map<std::string, std::unique_ptr<Source>>;

// The files of the data dir that exist, each in its read transaction.
Status OpenSources(const std::string& data_dir, Sources* sources, StoreCopyReport* report) {
  for (const char* file : {"ladle.db", "toggles.db"}) {
    const std::string path = data_dir + "/" + file;
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
      report->missing_files.push_back(file);
      continue;
    }
    auto src = std::make_unique<Source>();
    Status s = src->Open(path, file);
    if (!s.ok()) return s.WithContext("read " + path);
    (*sources)[file] = std::move(src);
  }
  return sources->count("ladle.db") ? CheckNoLiveRuns((*sources)["ladle.db"]->db())
                                    : Status::OK();
}

// Everything, in one transaction of `pg`.
Status CopyAll(PgConnection* pg, Sources* sources, StoreCopyReport* report) {
  PgTransaction txn(pg);
  Status s = txn.Begin();
  // Another session's lock (a replica started meanwhile) fails the copy
  // rather than hanging it.
  if (s.ok()) s = pg->Exec("SET LOCAL lock_timeout = '10s'");
  Copier copier(pg, report);
  if (s.ok()) s = copier.CheckEmpty();
  // toggles.db's environments, its 'production' included, replace the
  // fresh schema's.
  if (s.ok() && sources->count("toggles.db")) s = pg->Exec("DELETE FROM toggle_environment_names");
  for (const TablePlan& plan : kPlan) {
    auto it = sources->find(plan.file);
    if (!s.ok() || it == sources->end()) continue;
    s = copier.CopyTable(it->second.get(), plan);
    if (s.ok()) s = copier.AdvanceSequences(it->second.get(), plan);
  }
  if (s.ok() && sources->count("toggles.db")) {
    s = copier.SetToggleRevision((*sources)["toggles.db"].get());
    if (s.ok()) s = copier.MarkTokensChanged();
  }
  return s.ok() ? txn.Commit() : s;
}

}  // namespace

Status CopyDataDirToPostgres(const std::string& data_dir, const std::string& uri,
                             StoreCopyReport* report) {
  const auto start = std::chrono::steady_clock::now();
  Sources sources;
  Status s = OpenSources(data_dir, &sources, report);
  std::unique_ptr<PgConnection> pg;
  if (s.ok()) s = PgConnection::Connect(uri, PgConnection::kConnectTimeout, &pg, "ladle-store-migrate");
  if (s.ok()) s = CopyAll(pg.get(), &sources, report);
  report->elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  return s;
}

}  // namespace ladle::runner
