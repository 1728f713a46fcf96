// The PostgreSQL backend of ToggleStore (docs/toggles.md "Store",
// docs/design.md "Two stores: SQLite and PostgreSQL"): several servers
// ("replicas") share one database. Writers are serialised by a row lock on
// the revision counter, revisions come from a sequence, each change's audit
// event is inserted in the change's transaction, and the commit NOTIFYs
// kToggleChannel. Each store LISTENs on a connection of its own (on its own
// thread) and, on a notification or after that connection came back, reads
// what it missed (ToggleStore::Refresh): its snapshot and listeners (SSE)
// follow every replica's changes.
#ifndef LADLE_TOGGLES_SERVER_PG_STORE_H_
#define LADLE_TOGGLES_SERVER_PG_STORE_H_

#include <memory>
#include <string>

#include "core/base/status.h"
#include "toggles/server/store_backend.h"

namespace ladle::toggles {

inline constexpr char kToggleChannel[] = "ladle_toggles";
// application_name of the listening connection (pg_stat_activity).
inline constexpr char kToggleListenerName[] = "ladle-toggles-listen";

// Connects to `uri` (postgresql://...) and brings its toggle schema up to
// date; Unavailable when the database does not answer.
Status OpenPgToggleBackend(const std::string& uri, std::unique_ptr<ToggleStoreBackend>* out);

}  // namespace ladle::toggles

#endif  // LADLE_TOGGLES_SERVER_PG_STORE_H_
