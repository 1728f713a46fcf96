#include "toggles/server/store.h"

#include "core/pg.h"
#include "toggles/server/pg_store.h"
#include "toggles/server/store_backend.h"

#include <cstdlib>
#include <set>
#include <utility>

#include "core/base/text.h"
#include "core/base/time_util.h"

namespace ladle::toggles {
namespace {

using json = nlohmann::json;

std::string Quote(const std::string& key) { return "\"" + key + "\""; }

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

}  // namespace

// --- row helpers (store_backend.h) ---

Status DumpJson(const json& j, std::string* out) {
  try {
    *out = j.dump();
    return Status::OK();
  } catch (const json::exception&) {
    return Status::Invalid("text must be valid UTF-8");
  }
}

Status ParseStoredJson(const std::string& text, const std::string& where,
                       const std::string& what, json* out) {
  if (JsonDeeperThan(text, kMaxJsonDepth))
    return Status::Internal(where + ": " + what + ": stored JSON nests deeper than " +
                            std::to_string(kMaxJsonDepth) + " levels");
  *out = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!out->is_discarded()) return Status::OK();
  return Status::Internal(where + ": " + what + ": stored JSON does not parse");
}

Status ToggleFromRow(const std::string& where, const std::string& key, const std::string& type,
                     const std::string& description, const std::string& variants,
                     int64_t revision, Toggle* t) {
  t->key = key;
  t->description = description;
  t->revision = revision;
  const std::string what = "toggle " + Quote(key);
  json parsed;
  Status s = ParseToggleType(type, &t->type);
  if (s.ok()) s = ParseStoredJson(variants, where, what, &parsed);
  if (s.ok()) s = ParseVariants(parsed, &t->variants);
  return s.ok() ? s : Status::Internal(where + ": " + what + ": " + s.message());
}

Status ConfigFromRow(const std::string& where, const std::string& key, const std::string& env,
                     bool enabled, const std::string& strategies, EnvironmentConfig* config) {
  const std::string what = "toggle " + Quote(key) + " in " + env;
  json parsed;
  Status s = ParseStoredJson(strategies, where, what, &parsed);
  if (s.ok()) {
    s = ParseEnvironmentConfig({{"enabled", enabled}, {"strategies", parsed}}, config);
  }
  return s.ok() ? s : Status::Internal(where + ": " + what + ": " + s.message());
}

Status EventJsonFromRow(const std::string& where, const std::optional<std::string>& before,
                        const std::optional<std::string>& after, AuditEvent* e) {
  const std::string what = "event " + std::to_string(e->revision);
  Status s = before ? ParseStoredJson(*before, where, what, &e->before) : Status::OK();
  if (s.ok() && after) s = ParseStoredJson(*after, where, what, &e->after);
  return s;
}

namespace {

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

  // Another connection's changes, from their audit events (each holds the
  // whole toggle after it): only the toggles they name are parsed and
  // compiled, as after a write of this store's own. False when an event
  // does not parse; the caller then Loads everything.
  bool Apply(const std::vector<AuditEvent>& events, int64_t to_revision) {
    for (const AuditEvent& e : events) {
      if (e.after.is_null()) {
        toggles.erase(e.key);
        changed[e.key] = std::nullopt;
        continue;
      }
      Toggle t;
      CompiledToggle compiled;
      if (!ParseToggle(e.after, &t).ok() || t.key != e.key ||
          !CompiledToggle::Compile(t, &compiled).ok()) {
        return false;
      }
      for (const auto& [env, config] : t.environments) environments.insert(env);
      changed[e.key] = std::move(compiled);
      toggles[e.key] = std::move(t);
    }
    revision = to_revision;
    return true;
  }

  // REQUIRES: inside a transaction, for a consistent read.
  Status Load(ToggleStoreBackend* db) {
    State loaded;
    Status s = db->ReadRevision(&loaded.revision);
    if (s.ok()) s = db->LoadEnvironments(&loaded.environments);
    if (s.ok()) s = db->LoadToggles(&loaded.toggles);
    if (s.ok()) *this = std::move(loaded);
    return s;
  }
};

// One write in progress: reads see its own changes over the committed state;
// the committed state changes only in Apply, after COMMIT.
class ToggleStore::Change {
 public:
  Change(ToggleStoreBackend* db, const State& state, std::string now)
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
    Status s = db_->NextRevision(revision_, &revision_);
    after.revision = revision_;
    CompiledToggle compiled;
    if (s.ok()) s = CompiledToggle::Compile(after, &compiled);
    for (auto it = after.environments.begin(); s.ok() && it != after.environments.end(); ++it) {
      s = UseEnvironment(it->first);
    }
    if (s.ok()) s = db_->SaveToggle(after, now_);
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
    Status s = db_->NextRevision(revision_, &revision_);
    if (s.ok()) s = db_->DeleteToggle(before.key);
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
    return db_->SetRevision(revision_);
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
    Status s = db_->InsertEnvironment(env, now_);
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
    Status s = db_->InsertEvent(e);
    if (s.ok()) events_.push_back(std::move(e));
    return s;
  }

  ToggleStoreBackend* db_;
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

std::string ToggleStoreLocation(const std::string& flag, const std::string& data_dir) {
  if (!flag.empty()) return flag;
  const char* env = std::getenv("LADLE_STORE");
  if (env != nullptr && *env != '\0') return env;
  return data_dir;
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

// --- ToggleStore ---

namespace {

// A backend transaction, rolled back unless committed.
class BackendTxn {
 public:
  explicit BackendTxn(ToggleStoreBackend* db) : db_(db) {}
  ~BackendTxn() {
    if (open_) db_->Rollback();
  }
  BackendTxn(const BackendTxn&) = delete;
  BackendTxn& operator=(const BackendTxn&) = delete;
  Status Begin(bool write) {
    Status s = write ? db_->BeginWrite() : db_->BeginRead();
    open_ = s.ok();
    return s;
  }
  Status Commit() {
    open_ = false;
    return db_->Commit();
  }

 private:
  ToggleStoreBackend* db_;
  bool open_ = false;
};

}  // namespace

ToggleStore::ToggleStore(std::unique_ptr<ToggleStoreBackend> db, Options options)
    : options_(std::move(options)), db_(std::move(db)), state_(std::make_unique<State>()) {}

ToggleStore::~ToggleStore() {
  // The watcher calls Refresh(): it must be gone before anything else is.
  if (db_) db_->StopWatching();
}

Status ToggleStore::Open(const std::string& location, std::unique_ptr<ToggleStore>* out) {
  return Open(location, Options{}, out);
}

Status ToggleStore::Open(const std::string& location, Options options,
                         std::unique_ptr<ToggleStore>* out) {
  if (!options.now) options.now = [] { return NowRfc3339(); };
  std::unique_ptr<ToggleStoreBackend> db;
  Status s = IsPostgresUri(location) ? OpenPgToggleBackend(location, &db)
                                     : OpenSqliteToggleBackend(location, &db);
  if (!s.ok()) return s;
  std::unique_ptr<ToggleStore> store(new ToggleStore(std::move(db), std::move(options)));
  {
    std::unique_lock<std::mutex> lock(store->mu_);
    BackendTxn txn(store->db_.get());
    s = txn.Begin(/*write=*/false);
    if (s.ok()) s = store->state_->Load(store->db_.get());
    if (s.ok()) s = txn.Commit();
    bool changed = false;  // primes the check: the next read starts from here
    if (s.ok()) s = store->db_->MayHaveChanged(&changed);
    if (s.ok()) s = store->Publish(&lock, {});
  }
  if (!s.ok()) return s;
  ToggleStore* self = store.get();
  store->db_->Watch([self] { return self->Refresh(); });
  *out = std::move(store);
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

// `events` gets other connections' commits found first, then this change's.
Status ToggleStore::WriteLocked(const std::function<Status(Change*)>& change,
                                std::vector<AuditEvent>* events) {
  BackendTxn txn(db_.get());
  Status s = txn.Begin(/*write=*/true);
  if (s.ok()) s = CatchUpLocked(events);
  if (!s.ok()) return s;
  Change c(db_.get(), *state_, options_.now());
  s = change(&c);
  if (s.ok()) s = c.Finish();
  if (s.ok()) s = txn.Commit();
  if (s.ok()) c.Apply(state_.get(), events);
  return s;
}

// Brings state_ up to another connection's commits, and returns the events
// it missed: from those events when they are few (a replica's catch-up after
// a notification costs one query), else by reloading everything.
// REQUIRES: mu_ held, inside a transaction.
Status ToggleStore::CatchUpLocked(std::vector<AuditEvent>* events) {
  constexpr int64_t kApplyAtMost = 256;
  int64_t revision = 0;
  Status s = db_->ReadRevision(&revision);
  if (!s.ok() || revision == state_->revision) return s;
  std::vector<AuditEvent> missed;
  EventQuery q;
  q.after = state_->revision;
  q.limit = kApplyAtMost + 1;
  bool all = true;  // every missed event read
  s = db_->ScanEvents(q, [&](AuditEvent&& e) {
    missed.push_back(std::move(e));
    return true;
  });
  if (s.ok() && static_cast<int64_t>(missed.size()) > kApplyAtMost) {
    all = false;
    missed.clear();
    q.limit = 0;
    s = db_->ScanEvents(q, [&](AuditEvent&& e) {
      missed.push_back(std::move(e));
      return true;
    });
  }
  if (s.ok() && !(all && state_->Apply(missed, revision))) s = state_->Load(db_.get());
  if (s.ok()) events->insert(events->end(), missed.begin(), missed.end());
  return s;
}

// Cheap unless another connection committed since the last check.
Status ToggleStore::RefreshLocked(std::vector<AuditEvent>* events) {
  bool changed = false;
  Status s = db_->MayHaveChanged(&changed);
  if (!s.ok() || !changed) return s;
  BackendTxn txn(db_.get());
  s = txn.Begin(/*write=*/false);
  if (s.ok()) s = CatchUpLocked(events);
  if (s.ok()) s = txn.Commit();
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
    EventQuery q;
    q.key = key;
    Status s = db_->ScanEvents(q, [&](AuditEvent&& e) {
      out->push_back(std::move(e));
      return true;
    });
    if (s.ok() && out->empty()) s = Status::NotFound("toggle " + Quote(key) + " not found");
    return s;
  });
}

Status ToggleStore::ScanEvents(const EventQuery& q,
                               const std::function<bool(const AuditEvent&)>& each) {
  if (q.environment) {
    if (Status s = CheckEnvironment(*q.environment); !s.ok()) return s;
  }
  return Read([&] {
    return db_->ScanEvents(q, [&](AuditEvent&& e) {
      if (q.environment) return each(ForEnvironment(std::move(e), *q.environment));
      return each(e);
    });
  });
}

Status ToggleStore::HasHistory(const std::string& key, bool* out) {
  return Read([&] { return db_->HasHistory(key, out); });
}

Status ToggleStore::Events(int64_t after_revision, int limit, std::vector<AuditEvent>* out) {
  return Read([&] {
    out->clear();
    EventQuery q;
    q.after = after_revision;
    q.limit = limit > 0 ? limit : 0;
    return db_->ScanEvents(q, [&](AuditEvent&& e) {
      out->push_back(std::move(e));
      return true;
    });
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
