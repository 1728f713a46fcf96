// The PostgreSQL backend of ToggleStore (toggles/server/pg_store.h) and all
// the PostgreSQL SQL of the toggle store.
#include "toggles/server/pg_store.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "core/pg.h"

namespace ladle::toggles {
namespace {

using json = nlohmann::json;
using Params = std::vector<PgConnection::Param>;

// Schema migrations, applied in order; ladle_schema_versions('toggles')
// counts the steps applied. Append only, as toggles.db's (sqlite_store.cc).
// Times are text (RFC 3339, as the store writes them), so that both stores
// answer byte for byte the same.
const std::vector<std::string>& Migrations() {
  static const std::vector<std::string> kSteps = {
      R"sql(
CREATE TABLE toggle_revision (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  value BIGINT NOT NULL
);
INSERT INTO toggle_revision (id, value) VALUES (1, 0);
CREATE SEQUENCE toggle_revision_seq AS BIGINT START 1;
CREATE TABLE toggle_environment_names (
  name TEXT PRIMARY KEY,
  created_at TEXT NOT NULL
);
INSERT INTO toggle_environment_names (name, created_at)
  VALUES ('production', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'));
CREATE TABLE toggles (
  toggle_key TEXT PRIMARY KEY,
  type TEXT NOT NULL,
  description TEXT NOT NULL,
  variants TEXT NOT NULL,
  revision BIGINT NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE TABLE toggle_environments (
  toggle_key TEXT NOT NULL REFERENCES toggles (toggle_key) ON DELETE CASCADE,
  environment TEXT NOT NULL REFERENCES toggle_environment_names (name),
  enabled BOOLEAN NOT NULL,
  strategies TEXT NOT NULL,
  PRIMARY KEY (toggle_key, environment)
);
CREATE TABLE toggle_events (
  revision BIGINT PRIMARY KEY,
  at TEXT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  toggle_key TEXT NOT NULL,
  environment TEXT,
  before_json TEXT,
  after_json TEXT,
  note TEXT
);
CREATE INDEX toggle_events_by_key ON toggle_events (toggle_key, revision);
)sql",
  };
  return kSteps;
}


std::optional<std::string> OrNull(const std::string& s) {
  return s.empty() ? std::nullopt : std::optional<std::string>(s);
}

constexpr const char* kEventColumns =
    "revision, at, actor, action, toggle_key, environment, before_json, after_json, note";

class PgBackend : public ToggleStoreBackend {
 public:
  PgBackend(std::string uri, std::unique_ptr<PgConnection> conn)
      : uri_(std::move(uri)), conn_(std::move(conn)) {}
  ~PgBackend() override { StopWatching(); }

  // Writers queue on the counter row's lock; in READ COMMITTED every later
  // statement of the transaction sees what committed before it got the lock,
  // so revisions commit in order and a catch-up read never skips one.
  // One round trip for both statements (PQexec runs them in turn, and
  // answers the last one's rows: the revision, which ReadRevision reuses).
  Status BeginWrite() override {
    PgResult r;
    Status s = Begin("BEGIN; SELECT value FROM toggle_revision WHERE id = 1 FOR UPDATE", &r);
    int64_t value = 0;
    if (s.ok() && r.rows() == 1 && r.Int64(0, 0, &value).ok()) locked_revision_ = value;
    return s;
  }
  Status BeginRead() override { return Begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); }
  Status Commit() override {
    in_txn_ = false;
    locked_revision_.reset();
    return conn_->Exec("COMMIT");
  }
  void Rollback() override {
    locked_revision_.reset();
    if (!in_txn_) return;
    in_txn_ = false;
    // A failed rollback means a lost connection: the server rolls back, and
    // the next Begin reconnects.
    conn_->Exec("ROLLBACK").IgnoreError();
  }

  // Another replica may have committed at any time: every read checks the
  // counter (one round trip), so a replica reads its peers' writes at once.
  Status MayHaveChanged(bool* out) override {
    *out = true;
    return Status::OK();
  }

  Status ReadRevision(int64_t* out) override {
    if (locked_revision_) {  // nobody can move it while the lock is ours
      *out = *locked_revision_;
      return Status::OK();
    }
    PgResult r;
    Status s = conn_->Exec("SELECT value FROM toggle_revision WHERE id = 1", {}, &r);
    if (s.ok() && r.rows() != 1) s = Status::Internal(conn_->uri() + ": no toggle_revision row");
    if (s.ok()) s = r.Int64(0, 0, out);
    return s;
  }

  Status LoadEnvironments(std::set<std::string>* out) override {
    PgResult r;
    Status s = conn_->Exec("SELECT name FROM toggle_environment_names", {}, &r);
    for (int i = 0; s.ok() && i < r.rows(); ++i) out->insert(r.Text(i, 0));
    return s;
  }

  Status LoadToggles(std::map<std::string, Toggle>* out) override {
    PgResult r;
    Status s = conn_->Exec(
        "SELECT toggle_key, type, description, variants, revision FROM toggles", {}, &r);
    for (int i = 0; s.ok() && i < r.rows(); ++i) {
      Toggle t;
      int64_t revision = 0;
      s = r.Int64(i, 4, &revision);
      if (s.ok()) {
        s = ToggleFromRow(conn_->uri(), r.Text(i, 0), r.Text(i, 1), r.Text(i, 2), r.Text(i, 3),
                          revision, &t);
      }
      if (s.ok()) out->emplace(t.key, std::move(t));
    }
    PgResult c;
    if (s.ok()) {
      s = conn_->Exec(
          "SELECT toggle_key, environment, enabled, strategies FROM toggle_environments", {}, &c);
    }
    for (int i = 0; s.ok() && i < c.rows(); ++i) {
      auto it = out->find(c.Text(i, 0));
      if (it == out->end()) continue;  // foreign keys rule this out
      const std::string env = c.Text(i, 1);
      s = ConfigFromRow(conn_->uri(), it->first, env, c.Text(i, 2) == "t", c.Text(i, 3),
                        &it->second.environments[env]);
    }
    return s;
  }

  // From the sequence. Writers are serialised (BeginWrite), so values come
  // in commit order; a write that rolls back leaves a gap.
  Status NextRevision(int64_t last, int64_t* out) override {
    (void)last;
    PgResult r;
    Status s = conn_->Exec("SELECT nextval('toggle_revision_seq')", {}, &r);
    if (s.ok()) s = r.Int64(0, 0, out);
    return s;
  }

  Status SaveToggle(const Toggle& t, const std::string& now) override {
    std::string variants;
    Status s = DumpJson(ToJson(t.variants), &variants);
    if (s.ok()) {
      s = conn_->Exec(
          "INSERT INTO toggles (toggle_key, type, description, variants, revision,"
          " created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)"
          " ON CONFLICT (toggle_key) DO UPDATE SET type = excluded.type,"
          " description = excluded.description, variants = excluded.variants,"
          " revision = excluded.revision, updated_at = excluded.updated_at",
          {t.key, std::string(ToString(t.type)), t.description, variants,
           std::to_string(t.revision), now});
    }
    if (s.ok()) s = conn_->Exec("DELETE FROM toggle_environments WHERE toggle_key = $1", {t.key});
    for (const auto& [env, config] : t.environments) {
      std::string strategies;
      if (s.ok()) s = DumpJson(ToJson(config)["strategies"], &strategies);
      if (!s.ok()) return s;
      s = conn_->Exec(
          "INSERT INTO toggle_environments (toggle_key, environment, enabled, strategies)"
          " VALUES ($1, $2, $3, $4)",
          {t.key, env, std::string(config.enabled ? "true" : "false"), strategies});
    }
    return s;
  }

  Status DeleteToggle(const std::string& key) override {
    return conn_->Exec("DELETE FROM toggles WHERE toggle_key = $1", {key});
  }

  Status InsertEnvironment(const std::string& name, const std::string& now) override {
    return conn_->Exec(
        "INSERT INTO toggle_environment_names (name, created_at) VALUES ($1, $2)"
        " ON CONFLICT (name) DO NOTHING",
        {name, now});
  }

  Status InsertEvent(const AuditEvent& e) override {
    std::optional<std::string> before, after;
    Status s = e.before.is_null() ? Status::OK() : DumpJson(e.before, &before.emplace());
    if (s.ok() && !e.after.is_null()) s = DumpJson(e.after, &after.emplace());
    if (!s.ok()) return s;
    return conn_->Exec(
        "INSERT INTO toggle_events (revision, at, actor, action, toggle_key, environment,"
        " before_json, after_json, note) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        {std::to_string(e.revision), e.time, e.actor, e.action, e.key, OrNull(e.environment),
         before, after, OrNull(e.note)});
  }

  // NOTIFY is delivered at COMMIT, and only if the transaction commits.
  Status SetRevision(int64_t revision) override {
    return conn_->Exec(std::string("WITH bump AS (UPDATE toggle_revision SET value = $1::bigint"
                                   " WHERE id = 1) SELECT pg_notify('") +
                           kToggleChannel + "', $1::text)",
                       {std::to_string(revision)});
  }

  Status ScanEvents(const EventQuery& q,
                    const std::function<bool(AuditEvent&&)>& each) override {
    std::string sql = std::string("SELECT ") + kEventColumns +
                      " FROM toggle_events WHERE revision > $1";
    Params params = {std::to_string(q.after)};
    if (q.key) {
      params.push_back(*q.key);
      sql += " AND toggle_key = $" + std::to_string(params.size());
    }
    if (q.environment) {
      params.push_back(*q.environment);
      sql += " AND (environment IS NULL OR environment = $" + std::to_string(params.size()) + ")";
    }
    sql += " ORDER BY revision LIMIT ";
    // Pages of 1000, keyed on the revision: memory stays bounded however long
    // the trail (the SQLite store steps row by row).
    int64_t after = q.after;
    int64_t left = q.limit > 0 ? q.limit : -1;
    constexpr int64_t kPage = 1000;
    for (;;) {
      params[0] = std::to_string(after);
      const int64_t page = left < 0 ? kPage : std::min(left, kPage);
      PgResult r;
      Status s = conn_->Exec(sql + std::to_string(page), params, &r);
      if (!s.ok()) return s;
      for (int i = 0; i < r.rows(); ++i) {
        AuditEvent e;
        s = r.Int64(i, 0, &e.revision);
        e.time = r.Text(i, 1);
        e.actor = r.Text(i, 2);
        e.action = r.Text(i, 3);
        e.key = r.Text(i, 4);
        e.environment = r.Text(i, 5);
        e.note = r.Text(i, 8);
        if (s.ok()) s = EventJsonFromRow(conn_->uri(), r.Nullable(i, 6), r.Nullable(i, 7), &e);
        if (!s.ok()) return s;
        after = e.revision;
        if (!each(std::move(e))) return Status::OK();
      }
      if (left > 0) left -= r.rows();
      if (r.rows() < page || left == 0) return Status::OK();
    }
  }

  Status HasHistory(const std::string& key, bool* out) override {
    PgResult r;
    Status s = conn_->Exec("SELECT 1 FROM toggle_events WHERE toggle_key = $1 LIMIT 1", {key}, &r);
    if (s.ok()) *out = r.rows() > 0;
    return s;
  }

  // --- the listener ---

  void Watch(std::function<Status()> wake) override {
    if (::pipe(stop_pipe_) != 0) {
      stop_pipe_[0] = stop_pipe_[1] = -1;
    }
    wake_ = std::move(wake);
    watcher_ = std::thread([this] { Listen(); });
  }

  void StopWatching() override {
    if (!watcher_.joinable()) return;
    stop_ = true;
    if (stop_pipe_[1] >= 0) {
      char c = 0;
      if (::write(stop_pipe_[1], &c, 1) < 0) {
        // The thread still sees stop_ within its poll timeout.
      }
    }
    watcher_.join();
    for (int& fd : stop_pipe_) {
      if (fd >= 0) ::close(fd);
      fd = -1;
    }
  }

 private:
  // A lost connection (the server restarted, a network blip, an
  // administrator's pg_terminate_backend) reconnects here, before anything
  // of the transaction ran: BEGIN on a dead connection is tried once more.
  Status Begin(const std::string& begin, PgResult* result = nullptr) {
    Status s;
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (!conn_->ok()) {
        std::unique_ptr<PgConnection> fresh;
        s = PgConnection::Connect(uri_, PgConnection::kConnectTimeout, &fresh);
        if (!s.ok()) return s;
        conn_ = std::move(fresh);
      }
      s = conn_->Exec(begin, {}, result);
      if (s.ok() || conn_->ok()) break;
    }
    in_txn_ = s.ok();
    // BEGIN may have run and the lock failed: nothing of it may linger.
    if (!s.ok() && conn_->ok()) conn_->Exec("ROLLBACK").IgnoreError();
    return s;
  }

  // Sleeps `ms` unless stopped first; false when stopped.
  bool Sleep(int ms) {
    pollfd p{stop_pipe_[0], POLLIN, 0};
    ::poll(&p, stop_pipe_[0] >= 0 ? 1 : 0, ms);
    return !stop_;
  }

  // LISTEN on a connection of its own; on each notification, and after
  // each (re)connection, a catch-up read (wake_, i.e. Refresh). Back-off
  // from 50 ms to 2 s between failed attempts.
  void Listen() {
    std::unique_ptr<PgConnection> listen;
    bool catch_up = false;
    int backoff_ms = 50;
    auto failed = [&] {
      bool go_on = Sleep(backoff_ms);
      backoff_ms = std::min(backoff_ms * 2, 2000);
      return go_on;
    };
    while (!stop_) {
      if (!listen || !listen->ok()) {
        listen.reset();
        Status s = PgConnection::Connect(uri_, PgConnection::kConnectTimeout, &listen, kToggleListenerName);
        if (s.ok()) s = listen->Exec(std::string("LISTEN ") + kToggleChannel);
        if (!s.ok()) {
          listen.reset();
          if (!failed()) break;
          continue;
        }
        catch_up = true;  // what committed while nobody listened
      }
      if (catch_up) {
        if (!wake_().ok()) {
          if (!failed()) break;
          continue;
        }
        catch_up = false;
        backoff_ms = 50;
      }
      pollfd fds[2] = {{listen->socket(), POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
      int n = ::poll(fds, stop_pipe_[0] >= 0 ? 2 : 1, 1000);
      if (n <= 0 || stop_) continue;
      if (fds[0].revents != 0) {
        std::vector<std::string> payloads;
        Status s = listen->ConsumeNotifications(&payloads);
        if (!s.ok()) {
          listen.reset();  // reconnect, then catch up
          continue;
        }
        if (!payloads.empty()) catch_up = true;
      }
    }
  }

  const std::string uri_;
  std::unique_ptr<PgConnection> conn_;  // the store's, under its mutex
  bool in_txn_ = false;
  // The counter as BeginWrite locked it, until the transaction ends; the
  // revisions this write takes are past it.
  std::optional<int64_t> locked_revision_;

  std::function<Status()> wake_;
  std::thread watcher_;
  std::atomic<bool> stop_{false};
  int stop_pipe_[2] = {-1, -1};
};

}  // namespace

Status OpenPgToggleBackend(const std::string& uri, std::unique_ptr<ToggleStoreBackend>* out) {
  std::unique_ptr<PgConnection> conn;
  Status s = PgConnection::Connect(uri, PgConnection::kConnectTimeout, &conn);
  if (s.ok()) s = MigratePart(conn.get(), "toggles", "toggle", Migrations());
  if (s.ok()) *out = std::make_unique<PgBackend>(uri, std::move(conn));
  return s;
}

}  // namespace ladle::toggles
