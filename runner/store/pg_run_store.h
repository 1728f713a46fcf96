// Opens the run store in PostgreSQL (pg_run_store.cc); docs/design.md "Two
// stores: SQLite and PostgreSQL", docs/server.md "Replicas". Callers use
// RunStore::OpenLocation.
#ifndef LADLE_RUNNER_STORE_PG_RUN_STORE_H_
#define LADLE_RUNNER_STORE_PG_RUN_STORE_H_

#include <memory>
#include <string>

#include "core/base/status.h"
#include "runner/store/run_store.h"

namespace ladle::runner {

// Connects to `uri` and migrates its schema (part 'runs' of
// ladle_schema_versions). `data_dir` must exist: the logs and artifacts of
// this replica's runs are there. Unavailable naming the (redacted) URI when
// the database does not answer.
Status OpenPgRunStore(const std::string& uri, const std::string& data_dir,
                      std::unique_ptr<RunStore>* store);

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_STORE_PG_RUN_STORE_H_
