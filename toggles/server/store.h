// ToggleStore: the toggles, their per-environment configs, the global revision
// and the audit trail in SQLite (DATA/toggles.db) or in PostgreSQL shared by
// several replicas (docs/toggles.md "Store"; the backends are
// store_backend.h's), plus the evaluation Snapshot that the OFREP hot path
// reads without touching the database. What follows holds for both; the
// durability paragraph is SQLite's (PostgreSQL's is the server's own).
//
// Every write is ONE transaction holding the change, the revision bump and its
// audit event, committed before the call returns. The database runs in WAL
// mode with synchronous=NORMAL: a commit survives a crash of the process
// (SIGKILL), though not necessarily of the machine (power loss may lose the
// last commits, never corrupt the file).
//
// Each write method is one HTTP route (docs/toggles.md "HTTP API"); errors use core/base/status.h:
// Invalid (400, the message names the field), NotFound (404), Conflict (409,
// key exists), Precondition (412, stale If-Match). On any error nothing is
// stored, no revision is used and no listener is called.
//
// Thread-safety: every method may be called from any thread. Writes are
// serialized by one mutex; GetSnapshot() and CurrentRevision() take no lock.
// Another process may write the same file (`ladle run` syncing straight into
// the data dir): writes always start from the committed state, reads notice
// such changes, and Refresh() publishes them to the snapshot and listeners.
#ifndef LADLE_TOGGLES_SERVER_STORE_H_
#define LADLE_TOGGLES_SERVER_STORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/base/status.h"
#include "toggles/eval/evaluate.h"
#include "toggles/eval/model.h"

namespace ladle {
class Database;
}
namespace ladle::toggles {
class ToggleStoreBackend;
}

namespace ladle::toggles {

// Always exists; other environments are created by the first change that names them.
inline constexpr std::string_view kProduction = "production";

// Opens (creating if needed) DATA/toggles.db and brings its schema up to date
// (toggles and tokens). ToggleStore and TokenStore each hold one connection.
Status OpenToggleDatabase(const std::string& data_dir, std::unique_ptr<Database>* db);

// Where the toggle store is (docs/toggles.md "Store"): `flag` (--store) when
// not empty, else $LADLE_STORE when set and not empty, else `data_dir`.
// ToggleStore::Open takes either a data dir or a postgresql:// URI.
std::string ToggleStoreLocation(const std::string& flag, const std::string& data_dir);

// One change, as the audit trail and the SSE stream show it. Every change has
// its own revision, so `revision` identifies the event.
struct AuditEvent {
  int64_t revision = 0;
  std::string time;         // RFC 3339 UTC
  std::string actor;        // the token's name
  std::string action;       // create, update, delete, enable, disable, set_strategies,
                            // rollout, sync
  std::string key;          // the toggle
  std::string environment;  // "" when the change is not about one environment
  nlohmann::json before;    // the whole toggle (ToJson) before; null when it did not exist
  nlohmann::json after;     // ... and after; null when deleted
  std::string note;         // e.g. "run 12"; "" when none
};

// {revision, time, actor, action, key, environment, before, after, note};
// environment and note are null when empty.
nlohmann::json ToJson(const AuditEvent& e);

// The result of a change to one toggle.
struct WriteResult {
  Toggle toggle;         // as it is now; toggle.revision is its ETag
  bool changed = false;  // false: nothing was written (no event, no revision)
};

struct SyncResult {
  std::vector<std::string> created, updated, unchanged;  // in the order given
  std::vector<std::string> removal_candidates;  // in the store, not in the list; sorted
  int64_t revision = 0;                          // the global revision afterwards
};

// {created, updated, unchanged, removal_candidates, revision}
nlohmann::json ToJson(const SyncResult& r);

// The event as a client token bound to `environment` may see it
// (docs/toggles.md "HTTP API"): before and after keep only that environment's
// config (disabled when the toggle does not list it), as List shows a toggle.
AuditEvent ForEnvironment(AuditEvent e, const std::string& environment);
// Whether that client sees the event at all: not when it is about another
// environment (a flip, a rollout, new strategies there).
bool VisibleIn(const AuditEvent& e, const std::string& environment);

// Which events ScanEvents reads: a page of the audit trail.
struct EventQuery {
  int64_t after = 0;                       // events with revision > after
  int64_t limit = 0;                       // at most this many; <= 0: no limit
  std::optional<std::string> key;          // only this toggle's
  std::optional<std::string> environment;  // only what VisibleIn(e, env), ForEnvironment'd
};


class ToggleStore {
 public:
  struct Options {
    std::function<std::string()> now;  // event and row times; default NowRfc3339
  };
  // Called after commit, once per event, in revision order, on the writing
  // thread, after GetSnapshot() includes the change. It may call
  // GetSnapshot() and CurrentRevision() only: any other method of this store
  // (and OnChange/RemoveListener) deadlocks. Keep it quick (hand the event to
  // a queue): the next write waits for it. Exceptions are swallowed.
  using ChangeListener = std::function<void(const AuditEvent&)>;

  // Opens the store at `location` and builds the snapshot: a data dir (it
  // must exist) for DATA/toggles.db, or a postgresql:// URI (docs/toggles.md
  // "Store"). On PostgreSQL the store also LISTENs for the other replicas'
  // changes on a thread of its own, and publishes them (snapshot, listeners)
  // as Refresh() does; Unavailable when the database does not answer.
  static Status Open(const std::string& location, std::unique_ptr<ToggleStore>* out);
  static Status Open(const std::string& location, Options options,
                     std::unique_ptr<ToggleStore>* out);
  ~ToggleStore();
  ToggleStore(const ToggleStore&) = delete;
  ToggleStore& operator=(const ToggleStore&) = delete;

  // --- reads (they pick up other processes' commits first) ---

  // Sorted by key. With `environment` (Invalid if not a valid name), each
  // toggle's `environments` holds only that one (a toggle that does not list
  // it shows it disabled), as a client token bound to it sees it.
  Status List(const std::optional<std::string>& environment, std::vector<Toggle>* out);
  Status Get(const std::string& key, const std::optional<std::string>& environment,
             Toggle* out);
  Status ListEnvironments(std::vector<std::string>* out);  // sorted
  // Every event of `key`, oldest first, also after the toggle was deleted;
  // NotFound when it never existed.
  Status History(const std::string& key, std::vector<AuditEvent>* out);
  // Events with revision > after_revision, oldest first, at most `limit`
  // (<= 0: all). For GET /api/v1/events and SSE's Last-Event-ID replay.
  Status Events(int64_t after_revision, int limit, std::vector<AuditEvent>* out);
  // The events `query` selects, oldest first, one at a time without holding
  // more than one: `each` returns false to stop early. Takes the store's lock
  // for the whole scan, so keep `each` quick (format, append).
  Status ScanEvents(const EventQuery& query,
                    const std::function<bool(const AuditEvent&)>& each);
  // Whether `key` has any event (a toggle that ever existed).
  Status HasHistory(const std::string& key, bool* out);

  // Lock-free; as of the last commit or Refresh(). Never null.
  std::shared_ptr<const Snapshot> GetSnapshot() const;
  int64_t CurrentRevision() const { return GetSnapshot()->revision(); }

  // --- writes: `actor` is the token's name; `expected_revision` is If-Match
  // (the toggle's own revision; a mismatch is Precondition) ---

  // 201. Conflict when the key exists. The toggle is disabled in every
  // existing environment the body does not configure; environments the body
  // names are created. toggle.revision is ignored. `note` (here and below)
  // goes into the audit event: why, or which run ("run 12"); "" for none.
  Status Create(const Toggle& toggle, const std::string& actor, WriteResult* out,
                const std::string& note = "");
  // Changes type, description, variants. Nothing to change: changed=false.
  Status Patch(const std::string& key, const ToggleFields& fields,
               std::optional<int64_t> expected_revision, const std::string& actor,
               WriteResult* out, const std::string& note = "");
  // 204. The audit trail keeps the toggle's history.
  Status Delete(const std::string& key, std::optional<int64_t> expected_revision,
                const std::string& actor, const std::string& note = "");
  // PUT .../environments/{env}: replaces {enabled, strategies}. Action
  // "set_strategies". The same config again: changed=false, no event.
  Status SetEnvironment(const std::string& key, const std::string& environment,
                        const EnvironmentConfig& config,
                        std::optional<int64_t> expected_revision, const std::string& actor,
                        WriteResult* out, const std::string& note = "");
  // .../on and .../off; idempotent: a flip that changes nothing writes no
  // event, keeps the revision and reports changed=false. Off in an
  // environment the toggle does not list is such a no-op.
  Status Flip(const std::string& key, const std::string& environment, bool on,
              std::optional<int64_t> expected_revision, const std::string& actor,
              WriteResult* out, const std::string& note = "");
  // `ladle toggles rollout KEY PERCENT` and rollout stages: enables the toggle
  // with one rollout strategy at `percent` (0..100). When the toggle has
  // exactly one strategy there and it has a rollout, only its percent changes
  // (stickiness and group stay, so users keep their buckets; so do its users
  // and constraints); otherwise the strategies become [{rollout: {percent}}].
  // It does not refuse to lower a percentage: rollout stages check that.
  Status SetRollout(const std::string& key, const std::string& environment, int percent,
                    const std::string& actor, const std::string& note, WriteResult* out);
  // docs/design.md "Toggles in a run", all or nothing: creates missing toggles disabled in every
  // environment, updates the fields given, never enables or disables
  // anything. Invalid entries name "toggles[i].FIELD".
  Status Sync(const std::vector<SyncEntry>& entries, const std::string& actor,
              const std::string& note, SyncResult* out);

  // Publishes commits made by other connections (snapshot, listeners). Cheap
  // when there are none; the server may call it on a timer.
  Status Refresh();

  // Returns an id for RemoveListener.
  int64_t OnChange(ChangeListener listener);
  void RemoveListener(int64_t id);

 private:
  struct State;
  class Change;

  ToggleStore(std::unique_ptr<ToggleStoreBackend> db, Options options);
  Status Write(const std::function<Status(Change*)>& change);
  Status WriteLocked(const std::function<Status(Change*)>& change,
                     std::vector<AuditEvent>* events);
  Status Read(const std::function<Status()>& read);
  Status RefreshLocked(std::vector<AuditEvent>* events);
  Status CatchUpLocked(std::vector<AuditEvent>* events);
  Status Publish(std::unique_lock<std::mutex>* lock, const std::vector<AuditEvent>& events);
  Status BuildSnapshotLocked();

  const Options options_;
  std::mutex mu_;  // guards db_'s use, state_
  std::unique_ptr<ToggleStoreBackend> db_;  // store_backend.h: SQLite or PostgreSQL
  std::unique_ptr<State> state_;  // the committed state, as of state_->revision

  std::shared_ptr<const Snapshot> snapshot_;  // std::atomic_load/atomic_store only

  // Serializes delivery; taken before mu_ is released so that events reach
  // listeners in revision order.
  std::mutex notify_mu_;  // guards listeners_, next_listener_id_
  std::map<int64_t, ChangeListener> listeners_;
  int64_t next_listener_id_ = 1;
};

}  // namespace ladle::toggles

#endif  // LADLE_TOGGLES_SERVER_STORE_H_
