// Copying a data dir's SQLite stores into PostgreSQL: what `ladle store
// migrate` does (docs/server.md "Moving to PostgreSQL").
//
// DATA/ladle.db (runs, stages, steps, deployments, deliveries, schedules) and
// DATA/toggles.db (toggle environments, toggles and their configs, the audit
// trail, tokens, the revision) are copied row by row, ids kept, into one
// PostgreSQL database whose schema the stores created (RunStore::OpenLocation,
// toggles::ToggleStore::Open, toggles::TokenStore::OpenLocation) and which
// holds no rows yet. The copy is one PostgreSQL transaction: all or nothing.
// It works on SQL alone, so it follows both schemas: the columns both tables
// have are copied, each value converted by its PostgreSQL column's type.
#ifndef LADLE_RUNNER_STORE_STORE_COPY_H_
#define LADLE_RUNNER_STORE_STORE_COPY_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "core/base/status.h"

namespace ladle::runner {

struct CopiedTable {
  std::string file;   // "ladle.db" or "toggles.db"
  std::string from;   // its table in SQLite
  std::string to;     // the PostgreSQL table
  int64_t rows = 0;
  std::chrono::milliseconds elapsed{0};
};

struct StoreCopyReport {
  std::vector<CopiedTable> tables;          // in the order copied
  std::vector<std::string> missing_files;   // "toggles.db" when the data dir has none
  // "ladle.db runs.x": SQLite columns the PostgreSQL table does not have.
  std::vector<std::string> skipped_columns;
  int64_t toggle_revision = 0;              // the toggles' revision, as copied
  std::chrono::milliseconds elapsed{0};
};

// Copies DATA/ladle.db and DATA/toggles.db (those that exist) into the
// database at `uri`.
// REQUIRES: the PostgreSQL schema is this ladle's (the three stores were
// opened on `uri`), the SQLite files were migrated to this ladle's schema
// (their stores opened), and no `ladle serve` uses `data_dir` (DATA/serve.lock
// held by the caller).
// Errors, with nothing written to PostgreSQL:
// - Conflict naming the first table holding rows and how many (the database
//   is not empty);
// - Precondition when a run of ladle.db is still running in a live process
//   (a `ladle run` in progress);
// - Invalid naming the file, table, row (its key) and column of a value that
//   the PostgreSQL column cannot hold;
// - Unavailable when PostgreSQL does not answer, Internal for what it refused.
Status CopyDataDirToPostgres(const std::string& data_dir, const std::string& uri,
                             StoreCopyReport* report);

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_STORE_STORE_COPY_H_
