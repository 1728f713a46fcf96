#include "toggles/server/tokens.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "core/sqlite.h"
#include "core/base/time_util.h"
#include "toggles/eval/model.h"
#include "toggles/server/store.h"

namespace ladle::toggles {

// The in-memory view of the unrevoked tokens, by hash. Immutable once
// published, except for the last-use times, which requests update.
struct TokenStore::Table {
  struct Entry {
    Principal who;
    int64_t id = 0;
    mutable std::atomic<int64_t> last_used_ms{0};  // 0: not used since loaded
    mutable std::atomic<int64_t> flushed_ms{0};    // last_used_ms as last written
  };
  std::unordered_map<std::string, Entry> by_hash;
};

namespace {

using json = nlohmann::json;

constexpr const char* kAdminName = "admin";
constexpr std::string_view kSecretPrefix = "ladle_";
constexpr int kSecretBytes = 32;
// Requests record their time at most this often, to keep the hot path to
// one relaxed load per request.
constexpr int64_t kLastUsedResolutionMs = 1000;

std::string Hex(const unsigned char* bytes, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[bytes[i] >> 4]);
    out.push_back(kDigits[bytes[i] & 0xf]);
  }
  return out;
}

Status NewSecret(std::string* out) {
  unsigned char bytes[kSecretBytes];
  if (RAND_bytes(bytes, kSecretBytes) != 1) {
    return Status::Internal("OpenSSL RAND_bytes failed: cannot make a token secret");
  }
  *out = std::string(kSecretPrefix) + Hex(bytes, kSecretBytes);
  return Status::OK();
}

int64_t NowMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// ValidateKey's message names "key"; this names `field` instead.
Status Renamed(const Status& s, const std::string& field) {
  if (s.ok()) return s;
  return Status::Invalid(field + s.message().substr(std::string_view("key").size()));
}

// Checks a new token; a client's environment defaults to production.
Status CheckToken(const std::string& name, Role role, std::string* env) {
  Status s = Renamed(ValidateKey(name), "name");
  if (!s.ok()) return s;
  if (role == Role::kAdmin) {
    return env->empty() ? s : Status::Invalid("environment: only client tokens have one");
  }
  if (env->empty()) *env = std::string(kProduction);
  return Renamed(ValidateKey(*env), "environment");
}


// The first column of the first row as an integer; 0 when there is no row.
template <typename... Args>
Status QueryInt(Database* db, const std::string& sql, int64_t* out, const Args&... args) {
  Statement st;
  bool row = false;
  Status s = db->Prepare(sql, &st);
  if (s.ok()) s = st.BindAll(args...);
  if (s.ok()) s = st.Step(&row);
  if (s.ok()) *out = row ? st.ColumnInt64(0) : 0;
  return s;
}

std::optional<std::string> OrNull(const std::string& s) {
  return s.empty() ? std::nullopt : std::optional<std::string>(s);
}

// REQUIRES: inside a transaction (the name check and the insert are one).
Status InsertToken(Database* db, const TokenInfo& t, const std::string& hash) {
  int64_t taken = 0;
  Status s = QueryInt(db, "SELECT COUNT(*) FROM tokens WHERE name = ?1 AND revoked = 0", &taken,
                      t.name);
  if (s.ok() && taken > 0) return Status::Conflict("token \"" + t.name + "\" already exists");
  if (s.ok() && hash.empty()) return Status::Internal("OpenSSL SHA-256 failed");
  if (!s.ok()) return s;
  return Exec(db,
              "INSERT INTO tokens (name, role, environment, hash, created_at)"
              " VALUES (?1, ?2, ?3, ?4, ?5)",
              t.name, ToString(t.role), OrNull(t.environment), hash, t.created_at);
}

Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("write " + path, errno);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::OK();
}

// So that a committed admin token never outlives its file after a power cut.
Status SyncDirectory(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("open " + dir, errno);
  Status s = fsync(fd) == 0 ? Status::OK() : Status::FromErrno("sync " + dir, errno);
  close(fd);
  return s;
}

// O_EXCL with mode 0600: the file is never, even for a moment, readable by
// anyone else, and a symlink planted at `path` is refused, not followed.
Status WriteSecretFile(const std::string& dir, const std::string& path,
                       const std::string& secret) {
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Status::FromErrno("remove old " + path, errno);
  }
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return Status::FromErrno("create " + path, errno);
  Status s = WriteAll(fd, secret, path);
  if (s.ok() && fsync(fd) != 0) s = Status::FromErrno("sync " + path, errno);
  if (close(fd) != 0 && s.ok()) s = Status::FromErrno("close " + path, errno);
  if (s.ok()) s = SyncDirectory(dir);
  if (!s.ok()) unlink(path.c_str());
  return s;
}

Status ReadTokenInfo(const Statement& st, TokenInfo* t) {
  t->name = st.ColumnText(0);
  t->environment = st.ColumnText(2);
  t->created_at = st.ColumnText(3);
  t->last_used_at = st.ColumnText(4);
  t->revoked = st.ColumnInt(5) != 0;
  Status s = ParseRole(st.ColumnText(1), &t->role);
  return s.ok() ? s : Status::Internal("toggles.db: token \"" + t->name + "\": " + s.message());
}

}  // namespace

// --- free functions ---

std::string_view ToString(Role role) { return role == Role::kAdmin ? "admin" : "client"; }

Status ParseRole(std::string_view text, Role* out) {
  if (text == "admin" || text == "client") {
    *out = text == "admin" ? Role::kAdmin : Role::kClient;
    return Status::OK();
  }
  return Status::Invalid("role: must be admin or client, got " + json(std::string(text)).dump(
                             -1, ' ', false, json::error_handler_t::replace));
}

nlohmann::json ToJson(const TokenInfo& t) {
  return {{"name", t.name},
          {"role", ToString(t.role)},
          {"environment", t.environment.empty() ? json() : json(t.environment)},
          {"created_at", t.created_at},
          {"last_used_at", t.last_used_at.empty() ? json() : json(t.last_used_at)},
          {"revoked", t.revoked}};
}

// "" if OpenSSL fails, which matches no token. The digest is fetched once:
// OpenSSL 3 would otherwise look it up again on every request.
std::string TokenHash(std::string_view secret) {
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (sha256 == nullptr ||
      EVP_Digest(secret.data(), secret.size(), digest, &length, sha256, nullptr) != 1) {
    return "";
  }
  return Hex(digest, length);
}

std::string AdminTokenPath(const std::string& data_dir) { return data_dir + "/admin.token"; }

std::string ReadAdminTokenFile(const std::string& data_dir) {
  std::ifstream in(AdminTokenPath(data_dir));
  std::stringstream text;
  if (in) text << in.rdbuf();
  std::string secret = text.str();
  while (!secret.empty() && std::isspace(static_cast<unsigned char>(secret.back()))) secret.pop_back();
  return secret;
}

// --- TokenStore ---

TokenStore::TokenStore(std::string data_dir, std::unique_ptr<Database> db)
    : data_dir_(std::move(data_dir)), db_(std::move(db)) {}

TokenStore::~TokenStore() {
  std::lock_guard<std::mutex> lock(mu_);
  FlushLastUsedLocked().IgnoreError();  // nobody to report to; the times are a convenience
}

Status TokenStore::Open(const std::string& data_dir, std::unique_ptr<TokenStore>* out) {
  std::unique_ptr<Database> db;
  Status s = OpenToggleDatabase(data_dir, &db);
  if (!s.ok()) return s;
  std::unique_ptr<TokenStore> store(new TokenStore(data_dir, std::move(db)));
  {
    std::lock_guard<std::mutex> lock(store->mu_);
    s = store->ReloadLocked();
  }
  if (s.ok()) *out = std::move(store);
  return s;
}

Status TokenStore::Create(const std::string& name, Role role, const std::string& environment,
                          std::string* secret, TokenInfo* info) {
  std::string env = environment;
  std::string fresh;
  Status s = CheckToken(name, role, &env);
  if (s.ok()) s = NewSecret(&fresh);
  if (!s.ok()) return s;
  TokenInfo created{name, role, env, NowRfc3339(), "", false};
  std::lock_guard<std::mutex> lock(mu_);
  Transaction txn(db_.get());
  s = txn.Begin();
  if (s.ok()) s = InsertToken(db_.get(), created, TokenHash(fresh));
  if (s.ok()) s = txn.Commit();
  if (s.ok()) s = ReloadLocked();
  if (!s.ok()) return s;
  *secret = std::move(fresh);
  if (info != nullptr) *info = std::move(created);
  return s;
}

Status TokenStore::List(std::vector<TokenInfo>* out) {
  std::lock_guard<std::mutex> lock(mu_);
  Status s = FlushLastUsedLocked();
  Statement st;
  if (s.ok()) {
    s = db_->Prepare("SELECT name, role, environment, created_at, last_used_at, revoked"
                     " FROM tokens ORDER BY id",
                     &st);
  }
  std::vector<TokenInfo> tokens;
  for (bool row = true; s.ok();) {
    s = st.Step(&row);
    if (!s.ok() || !row) break;
    s = ReadTokenInfo(st, &tokens.emplace_back());
  }
  if (s.ok()) *out = std::move(tokens);
  return s;
}

Status TokenStore::Revoke(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  Status s = Exec(db_.get(), "UPDATE tokens SET revoked = 1 WHERE name = ?1 AND revoked = 0",
                  name);
  if (s.ok() && db_->changes() == 0) return Status::NotFound("token \"" + name + "\" not found");
  return s.ok() ? ReloadLocked() : s;
}

Status TokenStore::Authenticate(std::string_view secret, Principal* out) const {
  std::shared_ptr<const Table> table = std::atomic_load(&table_);
  auto it = secret.empty() ? table->by_hash.end() : table->by_hash.find(TokenHash(secret));
  if (it == table->by_hash.end()) return Status::Unauthorized("unknown or revoked token");
  const Table::Entry& e = it->second;
  const int64_t now = NowMs();
  if (now - e.last_used_ms.load(std::memory_order_relaxed) >= kLastUsedResolutionMs) {
    e.last_used_ms.store(now, std::memory_order_relaxed);
  }
  *out = e.who;
  return Status::OK();
}

Status TokenStore::Refresh() {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t version = 0;
  Status s = QueryInt(db_.get(), "PRAGMA data_version", &version);
  if (!s.ok() || version == data_version_) return s;
  return ReloadLocked();
}

// Builds a new table from the database, keeping the last-use times.
Status TokenStore::ReloadLocked() {
  FlushLastUsedLocked().IgnoreError();  // best effort: revoked tokens leave the table
  std::shared_ptr<const Table> old = std::atomic_load(&table_);
  auto table = std::make_shared<Table>();
  Statement st;
  Status s = db_->Prepare(
      "SELECT id, name, role, environment, hash FROM tokens WHERE revoked = 0", &st);
  for (bool row = true; s.ok();) {
    s = st.Step(&row);
    if (!s.ok() || !row) break;
    const std::string hash = st.ColumnText(4);
    Table::Entry& e = table->by_hash[hash];
    e.id = st.ColumnInt64(0);
    e.who = Principal{st.ColumnText(1), Role::kClient, st.ColumnText(3)};
    s = ParseRole(st.ColumnText(2), &e.who.role);
    if (old && old->by_hash.count(hash)) {
      const Table::Entry& was = old->by_hash.at(hash);
      e.last_used_ms.store(was.last_used_ms.load());
      e.flushed_ms.store(was.flushed_ms.load());
    }
  }
  if (s.ok()) s = QueryInt(db_.get(), "PRAGMA data_version", &data_version_);
  if (!s.ok()) return s.WithContext("load tokens");
  std::atomic_store(&table_, std::shared_ptr<const Table>(std::move(table)));
  return s;
}

// Writes last-use times that requests recorded since the last flush.
Status TokenStore::FlushLastUsedLocked() {
  std::shared_ptr<const Table> table = std::atomic_load(&table_);
  auto pending = [](const auto& entry) {
    return entry.second.last_used_ms.load() > entry.second.flushed_ms.load();
  };
  if (!table || std::none_of(table->by_hash.begin(), table->by_hash.end(), pending)) {
    return Status::OK();
  }
  Transaction txn(db_.get());
  Status s = txn.Begin();
  for (const auto& [hash, e] : table->by_hash) {
    const int64_t used = e.last_used_ms.load(std::memory_order_relaxed);
    if (!s.ok() || used <= e.flushed_ms.load()) continue;
    s = Exec(db_.get(), "UPDATE tokens SET last_used_at = ?1 WHERE id = ?2",
             FormatRfc3339(std::chrono::system_clock::time_point(std::chrono::milliseconds(used))),
             e.id);
    if (s.ok()) e.flushed_ms.store(used);
  }
  return s.ok() ? txn.Commit() : s;
}

Status TokenStore::EnsureAdminToken(AdminTokenSetup* what) {
  const char* env = std::getenv("LADLE_ADMIN_TOKEN");
  AdminTokenSetup done = AdminTokenSetup::kFromEnvironment;
  std::lock_guard<std::mutex> lock(mu_);
  Status s = env != nullptr && *env != '\0' ? AdminFromEnvironmentLocked(env)
                                            : AdminFileLocked(&done);
  if (s.ok()) s = ReloadLocked();
  if (s.ok() && what != nullptr) *what = done;
  return s;
}

Status TokenStore::AdminFromEnvironmentLocked(const std::string& secret) {
  const std::string hash = TokenHash(secret);
  Transaction txn(db_.get());
  int64_t id = 0, current = 0;
  Status s = txn.Begin();
  if (s.ok()) {
    s = QueryInt(db_.get(), "SELECT id FROM tokens WHERE name = ?1 AND revoked = 0", &id,
                 kAdminName);
  }
  if (s.ok() && id != 0) {
    s = QueryInt(db_.get(),
                 "SELECT COUNT(*) FROM tokens WHERE id = ?1 AND hash = ?2 AND role = 'admin'",
                 &current, id, hash);
  }
  if (!s.ok() || current > 0) return s;  // already this secret
  if (id != 0) {
    s = Exec(db_.get(),
             "UPDATE tokens SET hash = ?1, role = 'admin', environment = NULL WHERE id = ?2", hash,
             id);
  } else {
    s = InsertToken(db_.get(), {kAdminName, Role::kAdmin, "", NowRfc3339(), "", false}, hash);
  }
  if (s.ok()) s = txn.Commit();
  // The file's secret no longer works; leaving it would only mislead the CLI.
  if (s.ok()) unlink(AdminTokenPath(data_dir_).c_str());
  return s;
}

// The token is committed only once its file is written, so a crash cannot
// leave an admin token nobody can read.
Status TokenStore::AdminFileLocked(AdminTokenSetup* what) {
  Transaction txn(db_.get());
  int64_t admins = 0;
  Status s = txn.Begin();
  if (s.ok()) {
    s = QueryInt(db_.get(), "SELECT COUNT(*) FROM tokens WHERE role = 'admin' AND revoked = 0",
                 &admins);
  }
  *what = AdminTokenSetup::kExisting;
  if (!s.ok() || admins > 0) return s;
  std::string secret;
  s = NewSecret(&secret);
  if (s.ok()) {
    s = InsertToken(db_.get(), {kAdminName, Role::kAdmin, "", NowRfc3339(), "", false},
                    TokenHash(secret));
  }
  const std::string path = AdminTokenPath(data_dir_);
  if (s.ok()) s = WriteSecretFile(data_dir_, path, secret);
  if (s.ok()) {
    s = txn.Commit();
    if (!s.ok()) unlink(path.c_str());  // its secret matches no token
  }
  if (!s.ok()) return s.WithContext("create the admin token");
  *what = AdminTokenSetup::kWroteFile;
  return s;
}

}  // namespace ladle::toggles
