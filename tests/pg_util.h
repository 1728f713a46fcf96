// A real PostgreSQL for tests (docs/design.md "Two stores: SQLite and
// PostgreSQL"): Debian's postgresql-15, initdb'd into a temp dir, listening on
// a unix socket in that dir and on 127.0.0.1 at a free port, stopped by its
// pid (SIGINT: fast shutdown) when the test process ends.
//
// PostgreSQL refuses to run as root: as root the fixture runs initdb and
// postgres as the `postgres` user the package creates, and owns the files
// accordingly. initdb runs once per machine into a template dir that every
// test process copies (initdb takes seconds; a copy a fraction of one).
//
// PostgresServer::Get() starts it on first use; LADLE_REQUIRE_POSTGRES()
// FAILS the test under CI=true when it cannot start, and skips it elsewhere.
#ifndef LADLE_TESTS_PG_UTIL_H_
#define LADLE_TESTS_PG_UTIL_H_

#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <libpq-fe.h>

#include "core/pg.h"
#include "tests/test_util.h"

namespace ladle::testing {

inline constexpr char kPostgresBin[] = "/usr/lib/postgresql/15/bin";

class PostgresServer {
 public:
  // The one server of this process, started on first call; nullptr when it
  // could not start (why() says why).
  static PostgresServer* Get() {
    static std::once_flag once;
    static PostgresServer* server = nullptr;
    std::call_once(once, [] {
      auto* s = new PostgresServer();
      s->Start();
      server = s;
      // Stopped at exit, by its pid; the server also dies with this process
      // (PR_SET_PDEATHSIG) if it never gets there.
      std::atexit([] { server->Stop(); });
    });
    return server;
  }
  static std::string& Why() {
    static std::string why;
    return why;
  }

  bool running() const { return pid_ > 0; }
  const std::string& dir() const { return dir_; }
  int port() const { return port_; }

  // A URI of database `db` over TCP on 127.0.0.1.
  std::string Uri(const std::string& db) const {
    return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/" + db;
  }
  // The same over the unix socket in dir().
  std::string SocketUri(const std::string& db) const {
    return "postgresql:///" + db + "?host=" + dir_ + "&port=" + std::to_string(port_) +
           "&user=postgres";
  }

  // A new empty database, named after `hint` and a counter; its URI.
  std::string CreateDatabase(const std::string& hint = "t") {
    static std::atomic<int> counter{0};
    std::string name;
    for (char c : hint) name += std::isalnum(static_cast<unsigned char>(c)) ? std::tolower(c) : '_';
    name = name.substr(0, 40) + "_" + std::to_string(++counter);
    Status s = Admin("CREATE DATABASE " + name);
    if (!s.ok()) ADD_FAILURE() << s.ToString();
    return Uri(name);
  }

  // Runs `sql` in the `postgres` database.
  Status Admin(const std::string& sql, PgResult* out = nullptr) {
    std::unique_ptr<PgConnection> c;
    Status s = PgConnection::Connect(Uri("postgres"), std::chrono::seconds(10), &c,
                                     "ladle-test-admin");
    return s.ok() ? c->Exec(sql, {}, out) : s;
  }

  void Stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGINT);  // fast shutdown
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = 0;
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

 private:
  void Start() {
    std::string& why = Why();
    if (::access((std::string(kPostgresBin) + "/postgres").c_str(), X_OK) != 0) {
      why = std::string(kPostgresBin) + "/postgres not found (scripts/install-deps.sh --test)";
      return;
    }
    if (::geteuid() == 0) {
      passwd* pw = ::getpwnam("postgres");
      if (pw == nullptr) {
        why = "running as root and there is no `postgres` user to run PostgreSQL as";
        return;
      }
      uid_ = pw->pw_uid;
      gid_ = pw->pw_gid;
    }
    std::string tmpl = Template(&why);
    if (tmpl.empty()) return;
    dir_ = MakeTempDir("/tmp/ladle-pg-XXXXXX").string();
    Chown(dir_);
    if (Run({"cp", "-a", tmpl, dir_ + "/data"}, /*as_postgres=*/true) != 0) {
      why = "copy " + tmpl + " to " + dir_;
      return;
    }
    port_ = FreePort();
    std::vector<std::string> argv = {std::string(kPostgresBin) + "/postgres", "-D", dir_ + "/data",
                                     "-k", dir_, "-p", std::to_string(port_),
                                     "-c", "listen_addresses=127.0.0.1",
                                     "-c", "fsync=off", "-c", "synchronous_commit=off",
                                     "-c", "full_page_writes=off", "-c", "max_connections=200",
                                     "-c", "logging_collector=off"};
    pid_ = Spawn(argv, dir_ + "/postgres.log");
    if (pid_ <= 0) {
      why = "could not start postgres";
      return;
    }
    const std::string uri = Uri("postgres");
    for (int i = 0; i < 300; ++i) {  // 30 s
      if (PQping(uri.c_str()) == PQPING_OK) return;
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        why = "postgres exited at start: " + ReadFile(dir_ + "/postgres.log");
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    why = "postgres did not accept connections within 30 s: " + ReadFile(dir_ + "/postgres.log");
    Stop();
  }

  // The initdb'd template, made once per machine (and user, and version):
  // initdb into a temp dir, then rename, so that a half-made one is never used.
  std::string Template(std::string* why) {
    const std::string tmpl = "/tmp/ladle-pg-template-15-" + std::to_string(::geteuid());
    std::error_code ec;
    if (std::filesystem::exists(tmpl + "/PG_VERSION", ec)) return tmpl;
    const std::string work = MakeTempDir("/tmp/ladle-pg-initdb-XXXXXX").string();
    Chown(work);
    int rc = Run({std::string(kPostgresBin) + "/initdb", "-D", work + "/data", "--auth=trust",
                  "--no-sync", "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8"},
                 /*as_postgres=*/true, work + "/initdb.log");
    if (rc != 0) {
      *why = "initdb failed: " + ReadFile(work + "/initdb.log");
      std::filesystem::remove_all(work, ec);
      return "";
    }
    std::filesystem::rename(work + "/data", tmpl, ec);  // another process may have won
    std::filesystem::remove_all(work, ec);
    if (std::filesystem::exists(tmpl + "/PG_VERSION", ec)) return tmpl;
    *why = "could not make " + tmpl;
    return "";
  }

  void Chown(const std::string& path) const {
    if (uid_ != 0 && ::chown(path.c_str(), uid_, gid_) != 0) {
      // The next step (initdb, cp) fails and says so.
    }
  }

  // The child drops to the postgres user when running as root and dies
  // with this process.
  pid_t Spawn(const std::vector<std::string>& argv, const std::string& log) const {
    pid_t pid = ::fork();
    if (pid != 0) return pid;
    if (uid_ != 0) {
      if (::setgroups(0, nullptr) != 0 || ::setgid(gid_) != 0 || ::setuid(uid_) != 0) _exit(126);
    }
    ::prctl(PR_SET_PDEATHSIG, SIGINT);
    ::setpgid(0, 0);  // ctrl-C at a terminal reaches the test, which stops the server
    if (!log.empty()) {
      FILE* f = std::freopen(log.c_str(), "a", stdout);
      if (f) ::dup2(::fileno(stdout), 2);
    }
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    _exit(127);
  }

  int Run(const std::vector<std::string>& argv, bool as_postgres, const std::string& log = "") {
    (void)as_postgres;  // every child runs as the postgres user when we are root
    pid_t pid = Spawn(argv, log);
    if (pid < 0) return -1;
    int status = 0;
    if (::waitpid(pid, &status, 0) != pid) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  std::string dir_;
  int port_ = 0;
  pid_t pid_ = 0;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
};

}  // namespace ladle::testing

// The fixture's server, or a failure under CI (CI set) / a skip elsewhere.
#define LADLE_REQUIRE_POSTGRES()                                                          \
  do {                                                                                    \
    if (!::ladle::testing::PostgresServer::Get()->running()) {                            \
      const std::string why_ = ::ladle::testing::PostgresServer::Why();                   \
      if (std::getenv("CI") != nullptr && *std::getenv("CI") != '\0')                     \
        FAIL() << "no PostgreSQL (CI=true, so this is a failure): " << why_;              \
      GTEST_SKIP() << "no PostgreSQL: " << why_;                                          \
    }                                                                                     \
  } while (0)

#endif  // LADLE_TESTS_PG_UTIL_H_
