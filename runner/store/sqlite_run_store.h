// Opens the run store in SQLite (sqlite_run_store.cc); docs/design.md "Two
// stores: SQLite and PostgreSQL". Callers use RunStore::Open.
#ifndef LADLE_RUNNER_STORE_SQLITE_RUN_STORE_H_
#define LADLE_RUNNER_STORE_SQLITE_RUN_STORE_H_

#include <memory>
#include <string>

#include "core/base/status.h"
#include "runner/store/run_store.h"

namespace ladle::runner {

// Opens or creates DATA/ladle.db and migrates it. `data_dir` must exist.
Status OpenSqliteRunStore(const std::string& data_dir, std::unique_ptr<RunStore>* store);

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_STORE_SQLITE_RUN_STORE_H_
