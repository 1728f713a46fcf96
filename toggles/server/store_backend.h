// ToggleStoreBackend: where a ToggleStore keeps its rows, the one part of the
// store that differs between SQLite (sqlite_store.cc, DATA/toggles.db) and
// PostgreSQL (pg_store.cc); docs/design.md "Two stores: SQLite and
// PostgreSQL". The store (store.cc) holds everything else once for both:
// validation, If-Match, the committed state, the evaluation snapshot, the
// listeners. The SQL of each backend lives in its own file, beside the code
// that binds it.
//
// Thread-safety: the store calls a backend under its own mutex, one call at
// a time. Watch's `wake` is called from the backend's own thread.
#ifndef LADLE_TOGGLES_SERVER_STORE_BACKEND_H_
#define LADLE_TOGGLES_SERVER_STORE_BACKEND_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "core/base/status.h"
#include "toggles/eval/model.h"
#include "toggles/server/store.h"

namespace ladle::toggles {

class ToggleStoreBackend {
 public:
  virtual ~ToggleStoreBackend() = default;

  // A write transaction, serialised with every other writer of the database
  // (in any process), whose reads see every commit made before it began.
  virtual Status BeginWrite() = 0;
  // A read-only transaction that sees one consistent state.
  virtual Status BeginRead() = 0;
  virtual Status Commit() = 0;
  virtual void Rollback() = 0;  // best effort; no-op without a transaction

  // Cheap: false only when no other connection can have committed since the
  // last call (SQLite: PRAGMA data_version).
  virtual Status MayHaveChanged(bool* out) = 0;

  // --- inside a transaction ---
  virtual Status ReadRevision(int64_t* out) = 0;  // the last committed change's
  virtual Status LoadEnvironments(std::set<std::string>* out) = 0;
  virtual Status LoadToggles(std::map<std::string, Toggle>* out) = 0;  // with their configs
  // The revision of the next change of this write; `last` is the one before.
  virtual Status NextRevision(int64_t last, int64_t* out) = 0;
  virtual Status SaveToggle(const Toggle& t, const std::string& now) = 0;
  virtual Status DeleteToggle(const std::string& key) = 0;
  virtual Status InsertEnvironment(const std::string& name, const std::string& now) = 0;
  virtual Status InsertEvent(const AuditEvent& e) = 0;
  // The last statement of a write: the revision counter, and (PostgreSQL)
  // the notification the other replicas get once it commits.
  virtual Status SetRevision(int64_t revision) = 0;

  // --- reads, inside or outside a transaction ---
  // The events `q` selects (q.environment filters, it does not rewrite),
  // oldest first; `each` returns false to stop.
  virtual Status ScanEvents(const EventQuery& q,
                            const std::function<bool(AuditEvent&&)>& each) = 0;
  virtual Status HasHistory(const std::string& key, bool* out) = 0;

  // Starts telling the store of other connections' commits: `wake` is then
  // called (from another thread) after each, and after a lost connection
  // came back. SQLite has no such channel: its server refreshes on a timer.
  // A failed `wake` (the store could not read) is retried after a back-off.
  virtual void Watch(std::function<Status()> wake) { (void)wake; }
  // Stops the thread Watch started; `wake` is not called once it returns.
  virtual void StopWatching() {}
};

// --- row helpers both backends share (store.cc) ---

// JSON text of `j`; Invalid when it holds invalid UTF-8 (a toggle built in
// code, not parsed from JSON, can).
Status DumpJson(const nlohmann::json& j, std::string* out);
// JSON a backend wrote; Internal naming `where` (toggles.db, the database)
// and `what` when it does not parse (a damaged or edited database).
Status ParseStoredJson(const std::string& text, const std::string& where,
                       const std::string& what, nlohmann::json* out);
// A toggle row (without its configs) and one config row, as both backends store them.
Status ToggleFromRow(const std::string& where, const std::string& key, const std::string& type,
                     const std::string& description, const std::string& variants,
                     int64_t revision, Toggle* t);
Status ConfigFromRow(const std::string& where, const std::string& key, const std::string& env,
                     bool enabled, const std::string& strategies, EnvironmentConfig* config);
// The event row's before/after columns (nullopt: SQL NULL).
Status EventJsonFromRow(const std::string& where, const std::optional<std::string>& before,
                        const std::optional<std::string>& after, AuditEvent* e);

// Opens DATA/toggles.db (sqlite_store.cc); PostgreSQL's is in pg_store.h.
Status OpenSqliteToggleBackend(const std::string& data_dir,
                               std::unique_ptr<ToggleStoreBackend>* out);

}  // namespace ladle::toggles

#endif  // LADLE_TOGGLES_SERVER_STORE_BACKEND_H_
