// `ladle store migrate --to postgresql://...` (docs/server.md "Moving to
// PostgreSQL"): a data dir's SQLite stores copied into an empty PostgreSQL
// database (runner/store/store_copy.h), for replicas to share.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <memory>

#include <nlohmann/json.hpp>

#include "core/base/text.h"
#include "core/base/time_util.h"
#include "core/pg.h"
#include "runner/cli/cli_commands.h"
#include "runner/store/run_store.h"
#include "runner/store/store_copy.h"
#include "toggles/server/store.h"
#include "toggles/server/tokens.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace ladle::runner {
namespace {

// DATA/serve.lock, taken as `ladle serve` takes it (runner/serve/server.cc):
// while held here no server can start on the data dir, and a server that
// runs refuses the migration. Released when destroyed.
class ServeLock {
 public:
  ~ServeLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  Status Take(const std::string& data) {
    const std::string path = data + "/serve.lock";
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) return Status::FromErrno("open " + path, errno);
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      return Status::Unavailable("stop ladle serve first: it uses the data dir " + data +
                                 " (it holds " + path + "), and the copy must see what "
                                 "it has finished writing");
    }
    return Status::OK();
  }

 private:
  int fd_ = -1;
};

bool Exists(const std::string& path) {
  std::error_code ec;
  return fs::exists(path, ec);
}

// Brings the SQLite files that exist to this ladle's schema (their stores
// migrate on open; a file newer than this ladle is refused there), so that
// the copy reads the columns PostgreSQL has.
Status MigrateSqlite(const std::string& data) {
  if (Exists(data + "/ladle.db")) {
    std::unique_ptr<RunStore> runs;
    Status s = RunStore::Open(data, &runs);
    if (!s.ok()) return s.WithContext(data + "/ladle.db");
  }
  if (Exists(data + "/toggles.db")) {
    std::unique_ptr<toggles::ToggleStore> store;
    Status s = toggles::ToggleStore::Open(data, &store);
    std::unique_ptr<toggles::TokenStore> tokens;
    if (s.ok()) s = toggles::TokenStore::OpenLocation("", data, &tokens);
    if (!s.ok()) return s.WithContext(data + "/toggles.db");
  }
  return Status::OK();
}

// Opens the three stores on `uri`: each creates or migrates its tables.
Status CreateSchema(const std::string& uri, const std::string& data) {
  std::unique_ptr<RunStore> runs;
  Status s = RunStore::OpenLocation(uri, data, &runs);
  std::unique_ptr<toggles::ToggleStore> store;
  if (s.ok()) s = toggles::ToggleStore::Open(uri, &store);
  std::unique_ptr<toggles::TokenStore> tokens;
  if (s.ok()) s = toggles::TokenStore::OpenLocation(uri, data, &tokens);
  return s;
}

void PrintReport(const StoreCopyReport& r, const std::string& data, const std::string& where) {
  std::printf("copied %s to %s in %s:\n", data.c_str(), where.c_str(),
              FormatDuration(r.elapsed).c_str());
  std::vector<std::vector<std::string>> rows;
  for (const CopiedTable& t : r.tables)
    rows.push_back({t.file + " " + t.from, t.to, std::to_string(t.rows), FormatDuration(t.elapsed)});
  std::printf("%s", FormatTable({"FROM", "TO", "ROWS", "TIME"}, rows).c_str());
  if (r.toggle_revision > 0)
    std::printf("toggle revision: %lld\n", static_cast<long long>(r.toggle_revision));
  for (const std::string& f : r.missing_files)
    std::printf("%s: none in the data dir, nothing copied from it\n", f.c_str());
  for (const std::string& c : r.skipped_columns)
    std::printf("not copied: %s (PostgreSQL's table has no such column)\n", c.c_str());
  std::printf(
      "\nnext: set `store: %s` in server.yml (or LADLE_STORE) and start ladle serve\n"
      "with this data dir. The logs and artifacts of these runs stay in %s: the replica\n"
      "that uses this data dir serves them, and the other replicas send requests for them\n"
      "to it. The SQLite files are left as they were; a server on PostgreSQL does not use them.\n",
      where.c_str(), data.c_str());
}

json ReportJson(const StoreCopyReport& r, const std::string& data, const std::string& where) {
  json tables = json::array();
  for (const CopiedTable& t : r.tables)
    tables.push_back({{"file", t.file},
                      {"from", t.from},
                      {"to", t.to},
                      {"rows", t.rows},
                      {"seconds", static_cast<double>(t.elapsed.count()) / 1000.0}});
  return {{"data", data},
          {"to", where},
          {"tables", tables},
          {"missing_files", r.missing_files},
          {"skipped_columns", r.skipped_columns},
          {"toggle_revision", r.toggle_revision},
          {"seconds", static_cast<double>(r.elapsed.count()) / 1000.0}};
}

}  // namespace

int CmdStoreMigrate(const GlobalFlags& g, const std::string& to) {
  if (!IsPostgresUri(to))
    return Fail(Status::Invalid("--to: a postgresql:// URI, got '" + RedactPostgresUri(to) + "'"));
  if (!IsDirectory(g.data)) return Fail(Status::NotFound("no data dir " + g.data));
  const std::string where = RedactPostgresUri(to);
  ServeLock lock;
  Status s = lock.Take(g.data);
  if (s.ok()) s = MigrateSqlite(g.data);
  if (s.ok()) {
    s = CreateSchema(to, g.data);
    if (!s.ok()) s = s.WithContext("create the tables in " + where);
  }
  StoreCopyReport report;
  if (s.ok()) s = CopyDataDirToPostgres(g.data, to, &report);
  if (!s.ok()) return Fail(s);
  if (g.json) {
    std::printf("%s\n", ReportJson(report, g.data, where).dump(2).c_str());
  } else if (!g.quiet) {
    PrintReport(report, g.data, where);
  }
  return 0;
}

}  // namespace ladle::runner
