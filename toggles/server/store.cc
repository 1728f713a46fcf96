#include "toggles/server/store.h"

#include <set>
#include <utility>

#include "core/sqlite.h"
#include "core/base/text.h"
#include "core/base/time_util.h"

namespace ladle::toggles {
namespace {

using json = nlohmann::json;

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

std::string Quote(const std::string& key) { return "\"" + key + "\""; }

// dump() throws on invalid UTF-8, which a toggle built in code (not parsed
// from JSON) can carry.
Status Dump(const json& j, std::string* out) {
  try {
    *out = j.dump();
    return Status::OK();
  } catch (const json::exception&) {
    return Status::Invalid("text must be valid UTF-8");
  }
}

// JSON this store wrote; a failure means the file was damaged or edited.
Status ParseStored(const std::string& text, const std::string& what, json* out) {
  if (JsonDeeperThan(text, kMaxJsonDepth))
    return Status::Internal("toggles.db: " + what + ": stored JSON nests deeper than " +
                            std::to_string(kMaxJsonDepth) + " levels");
  *out = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!out->is_discarded()) return Status::OK();
  return Status::Internal("toggles.db: " + what + ": stored JSON does not parse");
}

// Environment names follow the key rule; the message names "environment".
Status CheckEnvironment(const std::string& env) {
  Status s = ValidateKey(env);
  if (s.ok()) return s;
  return Status::Invalid("environment" + s.message().substr(std::string_view("key").size()));
}

void ApplyFields(const ToggleFields& f, Toggle* t) {
  if (f.type) t->type = *f.type;
  if (f.description) t->description = *f.description;
  if (f.variants) t->variants = *f.variants;
}

// --- rows ---

Status SaveToggle(Database* db, const Toggle& t, const std::string& now) {
  std::string variants;
  Status s = Dump(ToJson(t.variants), &variants);
  if (s.ok()) {
    s = Exec(db,
             "INSERT INTO toggles (toggle_key, type, description, variants, revision,"
             " created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)"
             " ON CONFLICT (toggle_key) DO UPDATE SET type = excluded.type,"
             " description = excluded.description, variants = excluded.variants,"
             " revision = excluded.revision, updated_at = excluded.updated_at",
             t.key, ToString(t.type), t.description, variants, t.revision, now);
  }
  if (s.ok()) s = Exec(db, "DELETE FROM toggle_environments WHERE toggle_key = ?1", t.key);
  for (const auto& [env, config] : t.environments) {
    std::string strategies;
    if (s.ok()) s = Dump(ToJson(config)["strategies"], &strategies);
    if (!s.ok()) return s;
    s = Exec(db,
             "INSERT INTO toggle_environments (toggle_key, environment, enabled, strategies)"
             " VALUES (?1, ?2, ?3, ?4)",
             t.key, env, config.enabled ? 1 : 0, strategies);
  }
  return s;
}

// Before and after as JSON text, NULL for a null document.
Status InsertEvent(Database* db, const AuditEvent& e) {
  std::optional<std::string> before, after;
  Status s = e.before.is_null() ? Status::OK() : Dump(e.before, &before.emplace());
  if (s.ok() && !e.after.is_null()) s = Dump(e.after, &after.emplace());
  if (!s.ok()) return s;
  return Exec(db,
              "INSERT INTO events (revision, at, actor, action, toggle_key, environment,"
              " before_json, after_json, note) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
              e.revision, e.time, e.actor, e.action, e.key, OrNull(e.environment), before,
              after, OrNull(e.note));
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
  const std::string what = "event " + std::to_string(e->revision);
  Status s = st.ColumnIsNull(6) ? Status::OK() : ParseStored(st.ColumnText(6), what, &e->before);
  if (s.ok() && !st.ColumnIsNull(7)) s = ParseStored(st.ColumnText(7), what, &e->after);
  return s;
}

// Runs a query of kEventColumns with ?1.. bound to `args`.
template <typename... Args>
Status QueryEvents(Database* db, const std::string& where, std::vector<AuditEvent>* out,
                   const Args&... args) {
  Statement st;
  Status s = db->Prepare(std::string("SELECT ") + kEventColumns + " FROM events " + where, &st);
  if (s.ok()) s = st.BindAll(args...);
  for (bool row = true; s.ok();) {
    s = st.Step(&row);
    if (!s.ok() || !row) break;
    s = ReadEvent(st, &out->emplace_back());
  }
  return s;
}

Status ReadToggle(const Statement& st, Toggle* t) {
  t->key = st.ColumnText(0);
  t->description = st.ColumnText(2);
  t->revision = st.ColumnInt64(4);
  const std::string what = "toggle " + Quote(t->key);
  json variants;
  Status s = ParseToggleType(st.ColumnText(1), &t->type);
  if (s.ok()) s = ParseStored(st.ColumnText(3), what, &variants);
  if (s.ok()) s = ParseVariants(variants, &t->variants);
  return s.ok() ? s : Status::Internal("toggles.db: " + what + ": " + s.message());
}

Status ReadConfig(const Statement& st, EnvironmentConfig* config) {
  const std::string what = "toggle " + Quote(st.ColumnText(0)) + " in " + st.ColumnText(1);
  json strategies;
  Status s = ParseStored(st.ColumnText(3), what, &strategies);
  if (s.ok()) {
    s = ParseEnvironmentConfig({{"enabled", st.ColumnInt(2) != 0}, {"strategies", strategies}},
                               config);
  }
  return s.ok() ? s : Status::Internal("toggles.db: " + what + ": " + s.message());
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

struct EventInfo {
  std::string_view action, environment, actor, note;
};

}  // namespace

// --- state and one change ---

struct ToggleStore::State {
  int64_t revision = 0;
  std::map<std::string, Toggle> toggles;
  std::set<std::string> environments;
  // What changed since the published snapshot was built, for Publish to
  // build the next one from it: the compiled toggles written (nullopt:
  // deleted), or, after a Load, everything (`rebuild`).
  bool rebuild = true;
  std::map<std::string, std::optional<CompiledToggle>> changed;

  // REQUIRES: inside a transaction, for a consistent read.
  Status Load(Database* db) {
    State loaded;
    Status s = QueryInt(db, "SELECT value FROM revision WHERE id = 1", &loaded.revision);
    if (s.ok()) {
      s = ForEachRow(db, "SELECT name FROM environments", [&](const Statement& st) {
        loaded.environments.insert(st.ColumnText(0));
        return Status::OK();
      });
    }
    if (s.ok()) {
      s = ForEachRow(db,
                     "SELECT toggle_key, type, description, variants, revision FROM toggles",
                     [&](const Statement& st) {
                       Toggle t;
                       Status r = ReadToggle(st, &t);
                       if (r.ok()) loaded.toggles.emplace(t.key, std::move(t));
                       return r;
                     });
    }
    if (s.ok()) s = loaded.LoadConfigs(db);
    if (s.ok()) *this = std::move(loaded);
    return s;
  }

  Status LoadConfigs(Database* db) {
    return ForEachRow(
        db, "SELECT toggle_key, environment, enabled, strategies FROM toggle_environments",
        [&](const Statement& st) {
          auto it = toggles.find(st.ColumnText(0));
          if (it == toggles.end()) return Status::OK();  // foreign keys rule this out
          return ReadConfig(st, &it->second.environments[st.ColumnText(1)]);
        });
  }
};

// One write in progress: reads see its own changes over the committed state;
// the committed state changes only in Apply, after COMMIT.
class ToggleStore::Change {
 public:
  Change(Database* db, const State& state, std::string now)
      : db_(db), state_(state), now_(std::move(now)), revision_(state.revision) {}

  bool Exists(const std::string& key) const { return Find(key) != nullptr; }

  // NotFound, or Precondition when `expected` is given and stale.
  Status Current(const std::string& key, std::optional<int64_t> expected, Toggle* out) const {
    const Toggle* t = Find(key);
    if (t == nullptr) return Status::NotFound("toggle " + Quote(key) + " not found");
    if (expected && *expected != t->revision) {
      return Status::Precondition("toggle " + Quote(key) + " is at revision " +
                                  std::to_string(t->revision) + ", not " +
                                  std::to_string(*expected) + " (If-Match)");
    }
    *out = *t;
    return Status::OK();
  }

  std::set<std::string> Environments() const {
    std::set<std::string> all = state_.environments;
    all.insert(new_environments_.begin(), new_environments_.end());
    return all;
  }

  std::vector<std::string> Keys() const {
    std::vector<std::string> keys;
    for (const auto& [key, t] : state_.toggles) {
      if (Exists(key)) keys.push_back(key);
    }
    for (const auto& [key, t] : pending_) {
      if (t && state_.toggles.count(key) == 0) keys.push_back(key);
    }
    return keys;
  }

  // Stores `after` as the new state of after.key, with its event.
  Status Put(const Toggle* before, Toggle after, const EventInfo& info, WriteResult* out) {
    after.revision = ++revision_;
    CompiledToggle compiled;
    Status s = CompiledToggle::Compile(after, &compiled);
    for (auto it = after.environments.begin(); s.ok() && it != after.environments.end(); ++it) {
      s = UseEnvironment(it->first);
    }
    if (s.ok()) s = SaveToggle(db_, after, now_);
    if (s.ok()) s = Record(info, after.key, before ? ToJson(*before) : json(), ToJson(after));
    if (!s.ok()) return s;
    if (out) *out = WriteResult{after, true};
    compiled_[after.key] = std::move(compiled);
    pending_[after.key] = std::move(after);
    return s;
  }

  static Status Unchanged(const Toggle& t, WriteResult* out) {
    if (out) *out = WriteResult{t, false};
    return Status::OK();
  }

  Status Remove(const Toggle& before, const EventInfo& info) {
    ++revision_;
    Status s = Exec(db_, "DELETE FROM toggles WHERE toggle_key = ?1", before.key);
    if (s.ok()) s = Record(info, before.key, ToJson(before), json());
    if (s.ok()) pending_[before.key] = std::nullopt;
    if (s.ok()) compiled_[before.key] = std::nullopt;
    return s;
  }

  // Shared by SetEnvironment, Flip and SetRollout: no change, no event.
  Status SetConfig(const Toggle& before, const std::string& env, EnvironmentConfig config,
                   const EventInfo& info, WriteResult* out) {
    if (ConfigIn(before, env) == config) return Unchanged(before, out);
    Toggle after = before;
    after.environments[env] = std::move(config);
    return Put(&before, std::move(after), info, out);
  }

  // Creates or updates one toggle of a sync. A new toggle lists every
  // environment, disabled; an existing one keeps its environments as they are.
  Status Sync(const SyncEntry& entry, const EventInfo& info, SyncResult* r) {
    Toggle before;
    if (!Exists(entry.key)) {
      Toggle t;
      t.key = entry.key;
      ApplyFields(entry.fields, &t);
      for (const std::string& env : Environments()) t.environments.try_emplace(env);
      r->created.push_back(entry.key);
      return Put(nullptr, std::move(t), info, nullptr);
    }
    Status s = Current(entry.key, std::nullopt, &before);
    if (!s.ok()) return s;
    Toggle after = before;
    ApplyFields(entry.fields, &after);
    if (after == before) {
      r->unchanged.push_back(entry.key);
      return s;
    }
    r->updated.push_back(entry.key);
    return Put(&before, std::move(after), info, nullptr);
  }

  int64_t revision() const { return revision_; }

  // Writes the revision counter; REQUIRES: the last call before COMMIT.
  Status Finish() {
    if (events_.empty()) return Status::OK();
    return Exec(db_, "UPDATE revision SET value = ?1 WHERE id = 1", revision_);
  }

  // After COMMIT: the committed state catches up; the events go to listeners.
  void Apply(State* state, std::vector<AuditEvent>* events) {
    for (auto& [key, t] : pending_) {
      if (t) {
        state->toggles[key] = std::move(*t);
      } else {
        state->toggles.erase(key);
      }
    }
    for (auto& [key, t] : compiled_) state->changed[key] = std::move(t);
    state->environments.insert(new_environments_.begin(), new_environments_.end());
    state->revision = revision_;
    for (AuditEvent& e : events_) events->push_back(std::move(e));
  }

 private:
  const Toggle* Find(const std::string& key) const {
    auto p = pending_.find(key);
    if (p != pending_.end()) return p->second ? &*p->second : nullptr;
    auto it = state_.toggles.find(key);
    return it == state_.toggles.end() ? nullptr : &it->second;
  }

  Status UseEnvironment(const std::string& env) {
    if (state_.environments.count(env) || new_environments_.count(env)) return Status::OK();
    Status s = Exec(db_, "INSERT INTO environments (name, created_at) VALUES (?1, ?2)", env,
                    now_);
    if (s.ok()) new_environments_.insert(env);
    return s;
  }

  Status Record(const EventInfo& info, const std::string& key, json before, json after) {
    AuditEvent e{revision_,
                 now_,
                 std::string(info.actor),
                 std::string(info.action),
                 key,
                 std::string(info.environment),
                 std::move(before),
                 std::move(after),
                 std::string(info.note)};
    Status s = InsertEvent(db_, e);
    if (s.ok()) events_.push_back(std::move(e));
    return s;
  }

  Database* db_;
  const State& state_;
  const std::string now_;
  int64_t revision_;
  std::map<std::string, std::optional<Toggle>> pending_;  // nullopt: deleted
  // pending_, compiled for the snapshot. Callers validate their input with
  // the model's parsers (for messages that name the field); compiling in Put
  // guards the snapshot built after COMMIT, and Publish reuses the result.
  std::map<std::string, std::optional<CompiledToggle>> compiled_;
  std::set<std::string> new_environments_;
  std::vector<AuditEvent> events_;
};

// --- free functions ---

Status OpenToggleDatabase(const std::string& data_dir, std::unique_ptr<Database>* db) {
  std::unique_ptr<Database> opened;
  Status s = Database::Open(data_dir + "/toggles.db", &opened);
  if (s.ok()) s = opened->Migrate(Migrations());
  if (s.ok()) *db = std::move(opened);
  return s;
}

nlohmann::json ToJson(const AuditEvent& e) {
  return {{"revision", e.revision},
          {"time", e.time},
          {"actor", e.actor},
          {"action", e.action},
          {"key", e.key},
          {"environment", e.environment.empty() ? json() : json(e.environment)},
          {"before", e.before},
          {"after", e.after},
          {"note", e.note.empty() ? json() : json(e.note)}};
}

namespace {

// A toggle's JSON (ToJson) with only `env` under "environments"; null stays null.
json ToggleJsonIn(json toggle, const std::string& env) {
  if (!toggle.is_object()) return toggle;
  auto envs = toggle.find("environments");
  if (envs == toggle.end() || !envs->is_object()) return toggle;
  auto it = envs->find(env);
  json only = json::object();
  only[env] = it != envs->end() ? std::move(*it) : ToJson(EnvironmentConfig());
  *envs = std::move(only);
  return toggle;
}

}  // namespace

AuditEvent ForEnvironment(AuditEvent e, const std::string& environment) {
  e.before = ToggleJsonIn(std::move(e.before), environment);
  e.after = ToggleJsonIn(std::move(e.after), environment);
  return e;
}

bool VisibleIn(const AuditEvent& e, const std::string& environment) {
  return e.environment.empty() || e.environment == environment;
}

nlohmann::json ToJson(const SyncResult& r) {
  return {{"created", r.created},
          {"updated", r.updated},
          {"unchanged", r.unchanged},
          {"removal_candidates", r.removal_candidates},
          {"revision", r.revision}};
}

namespace {

}  // namespace

// --- ToggleStore ---

ToggleStore::ToggleStore(std::unique_ptr<Database> db, Options options)
    : options_(std::move(options)), db_(std::move(db)), state_(std::make_unique<State>()) {}

ToggleStore::~ToggleStore() = default;

Status ToggleStore::Open(const std::string& data_dir, std::unique_ptr<ToggleStore>* out) {
  return Open(data_dir, Options{}, out);
}

Status ToggleStore::Open(const std::string& data_dir, Options options,
                         std::unique_ptr<ToggleStore>* out) {
  if (!options.now) options.now = [] { return NowRfc3339(); };
  std::unique_ptr<Database> db;
  Status s = OpenToggleDatabase(data_dir, &db);
  if (!s.ok()) return s;
  std::unique_ptr<ToggleStore> store(new ToggleStore(std::move(db), std::move(options)));
  std::unique_lock<std::mutex> lock(store->mu_);
  Transaction txn(store->db_.get());
  s = txn.Begin();
  if (s.ok()) s = store->state_->Load(store->db_.get());
  if (s.ok()) s = txn.Commit();
  if (s.ok()) s = QueryInt(store->db_.get(), "PRAGMA data_version", &store->data_version_);
  if (s.ok()) s = store->Publish(&lock, {});
  if (s.ok()) *out = std::move(store);
  return s;
}

std::shared_ptr<const Snapshot> ToggleStore::GetSnapshot() const {
  return std::atomic_load(&snapshot_);
}

// Builds and publishes the snapshot of state_, then hands the events to the
// listeners. REQUIRES: *lock holds mu_; it is released on return.
Status ToggleStore::Publish(std::unique_lock<std::mutex>* lock,
                            const std::vector<AuditEvent>& events) {
  const int64_t revision = state_->revision;
  Status s = BuildSnapshotLocked();
  std::lock_guard<std::mutex> notify(notify_mu_);
  lock->unlock();
  for (const AuditEvent& e : events) {
    for (const auto& [id, listener] : listeners_) {
      try {
        listener(e);
      } catch (...) {
        // A listener's failure must not turn a committed change into an error.
      }
    }
  }
  if (s.ok()) return s;
  return Status::Internal("revision " + std::to_string(revision) +
                          " is committed but its snapshot failed: " + s.message());
}

// The snapshot of state_: from the published one and state_->changed when it
// can (a write compiles only the toggles it changed, docs/toggles.md
// "Store"), from every toggle after a Load. REQUIRES: mu_ held.
Status ToggleStore::BuildSnapshotLocked() {
  std::shared_ptr<const Snapshot> base = GetSnapshot();
  std::shared_ptr<const Snapshot> next;
  Status s;
  if (state_->rebuild || base == nullptr) {
    std::vector<Toggle> all;
    all.reserve(state_->toggles.size());
    for (const auto& [key, t] : state_->toggles) all.push_back(t);
    s = Snapshot::Build(state_->revision, std::move(all), &next);
  } else {
    std::vector<CompiledToggle> changed;
    std::vector<std::string> removed;
    for (auto& [key, t] : state_->changed) {
      if (t) changed.push_back(std::move(*t));
      else removed.push_back(key);
    }
    s = Snapshot::Update(*base, state_->revision, std::move(changed), removed, &next);
  }
  state_->rebuild = !s.ok();  // a failed build is tried whole the next time
  state_->changed.clear();
  if (s.ok()) std::atomic_store(&snapshot_, std::move(next));
  return s;
}

Status ToggleStore::Write(const std::function<Status(Change*)>& change) {
  std::unique_lock<std::mutex> lock(mu_);
  std::vector<AuditEvent> events;
  Status s = WriteLocked(change, &events);
  if (events.empty()) return s;
  Status p = Publish(&lock, events);
  return s.ok() ? p : s;
}

// `events` gets other processes' commits found first, then this change's.
Status ToggleStore::WriteLocked(const std::function<Status(Change*)>& change,
                                std::vector<AuditEvent>* events) {
  Transaction txn(db_.get());
  Status s = txn.Begin();
  if (s.ok()) s = CatchUpLocked(events);
  if (!s.ok()) return s;
  Change c(db_.get(), *state_, options_.now());
  s = change(&c);
  if (s.ok()) s = c.Finish();
  if (s.ok()) s = txn.Commit();
  if (s.ok()) c.Apply(state_.get(), events);
  return s;
}

// Reloads state_ when another connection moved the revision, and returns
// the events it missed. REQUIRES: mu_ held, inside a transaction.
Status ToggleStore::CatchUpLocked(std::vector<AuditEvent>* events) {
  int64_t revision = 0;
  Status s = QueryInt(db_.get(), "SELECT value FROM revision WHERE id = 1", &revision);
  if (!s.ok() || revision == state_->revision) return s;
  std::vector<AuditEvent> missed;
  s = QueryEvents(db_.get(), "WHERE revision > ?1 ORDER BY revision", &missed, state_->revision);
  if (s.ok()) s = state_->Load(db_.get());
  if (s.ok()) events->insert(events->end(), missed.begin(), missed.end());
  return s;
}

// Cheap unless another connection committed since the last check.
Status ToggleStore::RefreshLocked(std::vector<AuditEvent>* events) {
  int64_t version = 0;
  Status s = QueryInt(db_.get(), "PRAGMA data_version", &version);
  if (!s.ok() || version == data_version_) return s;
  Transaction txn(db_.get());
  s = txn.Begin();
  if (s.ok()) s = CatchUpLocked(events);
  if (s.ok()) s = txn.Commit();
  if (s.ok()) data_version_ = version;
  return s;
}

Status ToggleStore::Read(const std::function<Status()>& read) {
  std::unique_lock<std::mutex> lock(mu_);
  std::vector<AuditEvent> events;
  Status s = RefreshLocked(&events);
  if (s.ok()) s = read();
  if (events.empty()) return s;
  Status p = Publish(&lock, events);
  return s.ok() ? p : s;
}

Status ToggleStore::Refresh() {
  return Read([] { return Status::OK(); });
}

int64_t ToggleStore::OnChange(ChangeListener listener) {
  std::lock_guard<std::mutex> lock(notify_mu_);
  listeners_.emplace(next_listener_id_, std::move(listener));
  return next_listener_id_++;
}

void ToggleStore::RemoveListener(int64_t id) {
  std::lock_guard<std::mutex> lock(notify_mu_);
  listeners_.erase(id);
}

// --- reads ---

namespace {

// The toggle as a client bound to `env` sees it.
Toggle OnlyIn(const Toggle& t, const std::optional<std::string>& env) {
  if (!env) return t;
  Toggle out = t;
  out.environments = {{*env, ConfigIn(t, *env)}};
  return out;
}

}  // namespace

Status ToggleStore::List(const std::optional<std::string>& environment,
                         std::vector<Toggle>* out) {
  if (environment) {
    if (Status s = CheckEnvironment(*environment); !s.ok()) return s;
  }
  return Read([&] {
    out->clear();
    for (const auto& [key, t] : state_->toggles) out->push_back(OnlyIn(t, environment));
    return Status::OK();
  });
}

Status ToggleStore::Get(const std::string& key, const std::optional<std::string>& environment,
                        Toggle* out) {
  if (environment) {
    if (Status s = CheckEnvironment(*environment); !s.ok()) return s;
  }
  return Read([&] {
    auto it = state_->toggles.find(key);
    if (it == state_->toggles.end()) return Status::NotFound("toggle " + Quote(key) + " not found");
    *out = OnlyIn(it->second, environment);
    return Status::OK();
  });
}

Status ToggleStore::ListEnvironments(std::vector<std::string>* out) {
  return Read([&] {
    out->assign(state_->environments.begin(), state_->environments.end());
    return Status::OK();
  });
}

Status ToggleStore::History(const std::string& key, std::vector<AuditEvent>* out) {
  return Read([&] {
    out->clear();
    Status s = QueryEvents(db_.get(), "WHERE toggle_key = ?1 ORDER BY revision", out, key);
    if (s.ok() && out->empty()) s = Status::NotFound("toggle " + Quote(key) + " not found");
    return s;
  });
}

Status ToggleStore::ScanEvents(const EventQuery& q,
                               const std::function<bool(const AuditEvent&)>& each) {
  if (q.environment) {
    if (Status s = CheckEnvironment(*q.environment); !s.ok()) return s;
  }
  // Only the conditions asked for, so that a toggle's history reads the
  // events_by_key index from `after` on rather than the whole trail. The
  // environment column is NULL for changes that are not about one environment.
  std::string sql = std::string("SELECT ") + kEventColumns + " FROM events WHERE revision > ?1";
  if (q.key) sql += " AND toggle_key = ?3";
  if (q.environment) sql += " AND (environment IS NULL OR environment = ?4)";
  sql += " ORDER BY revision LIMIT ?2";
  return Read([&] {
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
      if (!s.ok()) break;
      if (q.environment) e = ForEnvironment(std::move(e), *q.environment);
      if (!each(e)) break;
    }
    return s;
  });
}

Status ToggleStore::HasHistory(const std::string& key, bool* out) {
  return Read([&] {
    Statement st;
    Status s = db_->Prepare("SELECT 1 FROM events WHERE toggle_key = ?1 LIMIT 1", &st);
    if (s.ok()) s = st.BindAll(key);
    if (s.ok()) s = st.Step(out);
    return s;
  });
}

Status ToggleStore::Events(int64_t after_revision, int limit, std::vector<AuditEvent>* out) {
  return Read([&] {
    out->clear();
    return QueryEvents(db_.get(), "WHERE revision > ?1 ORDER BY revision LIMIT ?2", out,
                       after_revision, static_cast<int64_t>(limit > 0 ? limit : -1));
  });
}

// --- writes ---

Status ToggleStore::Create(const Toggle& toggle, const std::string& actor, WriteResult* out,
                           const std::string& note) {
  if (Status s = Validate(toggle); !s.ok()) return s;
  return Write([&](Change* c) {
    if (c->Exists(toggle.key)) {
      return Status::Conflict("toggle " + Quote(toggle.key) + " already exists");
    }
    Toggle t = toggle;
    for (const std::string& env : c->Environments()) t.environments.try_emplace(env);
    return c->Put(nullptr, std::move(t), {"create", "", actor, note}, out);
  });
}

Status ToggleStore::Patch(const std::string& key, const ToggleFields& fields,
                          std::optional<int64_t> expected_revision, const std::string& actor,
                          WriteResult* out, const std::string& note) {
  if (Status s = CheckToggleFields(fields); !s.ok()) return s;
  return Write([&](Change* c) {
    Toggle before;
    Status s = c->Current(key, expected_revision, &before);
    if (!s.ok()) return s;
    Toggle after = before;
    ApplyFields(fields, &after);
    if (after == before) return Change::Unchanged(before, out);
    return c->Put(&before, std::move(after), {"update", "", actor, note}, out);
  });
}

Status ToggleStore::Delete(const std::string& key, std::optional<int64_t> expected_revision,
                           const std::string& actor, const std::string& note) {
  return Write([&](Change* c) {
    Toggle before;
    Status s = c->Current(key, expected_revision, &before);
    return s.ok() ? c->Remove(before, {"delete", "", actor, note}) : s;
  });
}

Status ToggleStore::SetEnvironment(const std::string& key, const std::string& environment,
                                   const EnvironmentConfig& config,
                                   std::optional<int64_t> expected_revision,
                                   const std::string& actor, WriteResult* out,
                                   const std::string& note) {
  EnvironmentConfig checked;
  if (Status s = CheckEnvironment(environment); !s.ok()) return s;
  if (Status s = ParseEnvironmentConfig(ToJson(config), &checked); !s.ok()) return s;
  return Write([&](Change* c) {
    Toggle before;
    Status s = c->Current(key, expected_revision, &before);
    if (!s.ok()) return s;
    return c->SetConfig(before, environment, config,
                        {"set_strategies", environment, actor, note}, out);
  });
}

Status ToggleStore::Flip(const std::string& key, const std::string& environment, bool on,
                         std::optional<int64_t> expected_revision, const std::string& actor,
                         WriteResult* out, const std::string& note) {
  if (Status s = CheckEnvironment(environment); !s.ok()) return s;
  return Write([&](Change* c) {
    Toggle before;
    Status s = c->Current(key, expected_revision, &before);
    if (!s.ok()) return s;
    EnvironmentConfig config = ConfigIn(before, environment);
    config.enabled = on;
    return c->SetConfig(before, environment, std::move(config),
                        {on ? "enable" : "disable", environment, actor, note}, out);
  });
}

Status ToggleStore::SetRollout(const std::string& key, const std::string& environment,
                               int percent, const std::string& actor, const std::string& note,
                               WriteResult* out) {
  if (Status s = CheckEnvironment(environment); !s.ok()) return s;
  if (percent < 0 || percent > 100) {
    return Status::Invalid("percent: must be between 0 and 100, got " + std::to_string(percent));
  }
  return Write([&](Change* c) {
    Toggle before;
    Status s = c->Current(key, std::nullopt, &before);
    if (!s.ok()) return s;
    return c->SetConfig(before, environment,
                        WithRollout(ConfigIn(before, environment), percent),
                        {"rollout", environment, actor, note}, out);
  });
}

Status ToggleStore::Sync(const std::vector<SyncEntry>& entries, const std::string& actor,
                         const std::string& note, SyncResult* out) {
  if (Status s = CheckSyncEntries(entries); !s.ok()) return s;
  return Write([&](Change* c) {
    SyncResult result;
    std::set<std::string> listed;
    for (const SyncEntry& entry : entries) {
      listed.insert(entry.key);
      Status s = c->Sync(entry, {"sync", "", actor, note}, &result);
      if (!s.ok()) return s;
    }
    for (const std::string& key : c->Keys()) {
      if (listed.count(key) == 0) result.removal_candidates.push_back(key);
    }
    result.revision = c->revision();
    *out = std::move(result);
    return Status::OK();
  });
}

}  // namespace ladle::toggles
