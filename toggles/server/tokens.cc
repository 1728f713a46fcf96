#include "toggles/server/tokens.h"

#include <fcntl.h>
#include <openssl/crypto.h>
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
#include <utility>
#include <vector>

#include "core/base/time_util.h"
#include "core/pg.h"
#include "toggles/eval/model.h"
#include "toggles/server/store.h"
#include "toggles/server/token_backend.h"

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


// A write on the backend, rolled back unless committed.
class WriteTxn {
 public:
  explicit WriteTxn(TokenStoreBackend* db) : db_(db) {}
  ~WriteTxn() {
    if (open_) db_->Rollback();
  }
  WriteTxn(const WriteTxn&) = delete;
  WriteTxn& operator=(const WriteTxn&) = delete;

  Status Begin() {
    Status s = db_->BeginWrite();
    open_ = s.ok();
    return s;
  }
  // Marks the change (the other servers' Refresh sees it), then commits.
  Status Commit() {
    Status s = db_->MarkChanged();
    if (!s.ok()) return s;
    open_ = false;
    return db_->Commit();
  }

 private:
  TokenStoreBackend* db_;
  bool open_ = false;
};

TokenRow NewRow(const std::string& name, Role role, const std::string& env,
                const std::string& hash) {
  TokenRow t;
  t.name = name;
  t.role = std::string(ToString(role));
  t.environment = env;
  t.hash = hash;
  t.created_at = NowRfc3339();
  return t;
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

Status ReadTokenInfo(const std::string& where, TokenRow&& row, TokenInfo* t) {
  t->name = std::move(row.name);
  t->environment = std::move(row.environment);
  t->created_at = std::move(row.created_at);
  t->last_used_at = std::move(row.last_used_at);
  t->revoked = row.revoked;
  Status s = ParseRole(row.role, &t->role);
  return s.ok() ? s : Status::Internal(where + ": token \"" + t->name + "\": " + s.message());
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

TokenStore::TokenStore(std::string data_dir, std::unique_ptr<TokenStoreBackend> db)
    : data_dir_(std::move(data_dir)), db_(std::move(db)) {}

TokenStore::~TokenStore() {
  std::lock_guard<std::mutex> lock(mu_);
  FlushLastUsedLocked().IgnoreError();  // nobody to report to; the times are a convenience
}

Status TokenStore::Open(const std::string& data_dir, std::unique_ptr<TokenStore>* out) {
  return OpenLocation("", data_dir, out);
}

Status TokenStore::OpenLocation(const std::string& location, const std::string& data_dir,
                                std::unique_ptr<TokenStore>* out) {
  std::unique_ptr<TokenStoreBackend> db;
  Status s = IsPostgresUri(location)
                 ? OpenPgTokenBackend(location, &db)
                 : OpenSqliteTokenBackend(location.empty() ? data_dir : location, &db);
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
  const TokenRow row = NewRow(name, role, env, TokenHash(fresh));
  std::lock_guard<std::mutex> lock(mu_);
  WriteTxn txn(db_.get());
  s = txn.Begin();
  if (s.ok()) s = InsertLocked(row);
  if (s.ok()) s = txn.Commit();
  if (s.ok()) s = ReloadLocked();
  if (!s.ok()) return s;
  *secret = std::move(fresh);
  if (info != nullptr) *info = TokenInfo{name, role, env, row.created_at, "", false};
  return s;
}

// REQUIRES: inside a write (the name check and the insert are one).
Status TokenStore::InsertLocked(const TokenRow& t) {
  TokenRow live;
  bool taken = false;
  Status s = db_->FindLive(t.name, &live, &taken);
  if (s.ok() && taken) return Status::Conflict("token \"" + t.name + "\" already exists");
  if (s.ok() && t.hash.empty()) return Status::Internal("OpenSSL SHA-256 failed");
  return s.ok() ? db_->Insert(t) : s;
}

Status TokenStore::List(std::vector<TokenInfo>* out) {
  std::lock_guard<std::mutex> lock(mu_);
  Status s = FlushLastUsedLocked();
  std::vector<TokenRow> rows;
  if (s.ok()) s = db_->ListAll(&rows);
  std::vector<TokenInfo> tokens;
  for (size_t i = 0; s.ok() && i < rows.size(); ++i) {
    s = ReadTokenInfo(db_->where(), std::move(rows[i]), &tokens.emplace_back());
  }
  if (s.ok()) *out = std::move(tokens);
  return s;
}

Status TokenStore::Revoke(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  WriteTxn txn(db_.get());
  bool found = false;
  Status s = txn.Begin();
  if (s.ok()) s = db_->Revoke(name, &found);
  if (s.ok() && !found) return Status::NotFound("token \"" + name + "\" not found");
  if (s.ok()) s = txn.Commit();
  return s.ok() ? ReloadLocked() : s;
}

namespace {

// docs/benchmarks.md "OFREP": hashing the bearer token was 4 % of an
// evaluation. Each thread keeps the last secret it authenticated with the
// table it was found in; the same secret against the same table (no token
// created or revoked since) skips the hash. The table is held, so the entry
// stays valid; the secret is compared in constant time.
struct LastToken {
  std::shared_ptr<const void> table;
  std::string secret;
  const void* entry = nullptr;
};
thread_local LastToken last_token;

}  // namespace

Status TokenStore::Authenticate(std::string_view secret, Principal* out) const {
  std::shared_ptr<const Table> table = std::atomic_load(&table_);
  LastToken& last = last_token;
  const Table::Entry* found = nullptr;
  if (!secret.empty() && last.table == table && last.secret.size() == secret.size() &&
      CRYPTO_memcmp(last.secret.data(), secret.data(), secret.size()) == 0) {
    found = static_cast<const Table::Entry*>(last.entry);
  } else {
    auto it = secret.empty() ? table->by_hash.end() : table->by_hash.find(TokenHash(secret));
    if (it == table->by_hash.end()) return Status::Unauthorized("unknown or revoked token");
    found = &it->second;
    last.table = table;
    last.secret.assign(secret);
    last.entry = found;
  }
  const Table::Entry& e = *found;
  const int64_t now = NowMs();
  if (now - e.last_used_ms.load(std::memory_order_relaxed) >= kLastUsedResolutionMs) {
    e.last_used_ms.store(now, std::memory_order_relaxed);
  }
  *out = e.who;
  return Status::OK();
}

Status TokenStore::Refresh() {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t counter = 0;
  Status s = db_->ChangeCounter(&counter);
  if (!s.ok() || counter == change_counter_) return s;
  return ReloadLocked();
}

// Builds a new table from the database, keeping the last-use times. The
// counter is read before the rows: a change committed in between makes the
// next Refresh reload again, never miss it.
Status TokenStore::ReloadLocked() {
  FlushLastUsedLocked().IgnoreError();  // best effort: revoked tokens leave the table
  std::shared_ptr<const Table> old = std::atomic_load(&table_);
  auto table = std::make_shared<Table>();
  int64_t counter = 0;
  std::vector<TokenRow> rows;
  Status s = db_->ChangeCounter(&counter);
  if (s.ok()) s = db_->LoadLive(&rows);
  for (size_t i = 0; s.ok() && i < rows.size(); ++i) {
    TokenRow& row = rows[i];
    Table::Entry& e = table->by_hash[row.hash];
    e.id = row.id;
    e.who = Principal{row.name, Role::kClient, row.environment};
    s = ParseRole(row.role, &e.who.role);
    if (!s.ok()) s = Status::Internal(db_->where() + ": token \"" + row.name + "\": " + s.message());
    if (old && old->by_hash.count(row.hash)) {
      const Table::Entry& was = old->by_hash.at(row.hash);
      e.last_used_ms.store(was.last_used_ms.load());
      e.flushed_ms.store(was.flushed_ms.load());
    }
  }
  if (!s.ok()) return s.WithContext("load tokens");
  change_counter_ = counter;
  std::atomic_store(&table_, std::shared_ptr<const Table>(std::move(table)));
  return s;
}

// Writes last-use times that requests recorded since the last flush.
Status TokenStore::FlushLastUsedLocked() {
  std::shared_ptr<const Table> table = std::atomic_load(&table_);
  if (!table) return Status::OK();
  std::vector<std::pair<const Table::Entry*, int64_t>> pending;
  for (const auto& [hash, e] : table->by_hash) {
    const int64_t used = e.last_used_ms.load(std::memory_order_relaxed);
    if (used > e.flushed_ms.load()) pending.emplace_back(&e, used);
  }
  if (pending.empty()) return Status::OK();
  std::sort(pending.begin(), pending.end(),
            [](const auto& a, const auto& b) { return a.first->id < b.first->id; });
  std::vector<std::pair<int64_t, std::string>> times;
  for (const auto& [e, used] : pending) {
    times.emplace_back(e->id, FormatRfc3339(std::chrono::system_clock::time_point(
                                  std::chrono::milliseconds(used))));
  }
  Status s = db_->WriteLastUsed(times);
  if (!s.ok()) return s;
  for (const auto& [e, used] : pending) e->flushed_ms.store(used);
  return s;
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
  WriteTxn txn(db_.get());
  TokenRow live;
  bool found = false;
  Status s = txn.Begin();
  if (s.ok()) s = db_->FindLive(kAdminName, &live, &found);
  if (!s.ok() || (found && live.hash == hash && live.role == "admin")) return s;  // already
  s = found ? db_->SetAdmin(live.id, hash)
            : InsertLocked(NewRow(kAdminName, Role::kAdmin, "", hash));
  if (s.ok()) s = txn.Commit();
  // The file's secret no longer works; leaving it would only mislead the CLI.
  if (s.ok()) unlink(AdminTokenPath(data_dir_).c_str());
  return s;
}

// The token is committed only once its file is written, so a crash cannot
// leave an admin token nobody can read. The write lock is held meanwhile:
// another server starting on the same PostgreSQL database waits, then finds
// this admin.
Status TokenStore::AdminFileLocked(AdminTokenSetup* what) {
  WriteTxn txn(db_.get());
  int64_t admins = 0;
  Status s = txn.Begin();
  if (s.ok()) s = db_->CountLiveAdmins(&admins);
  *what = AdminTokenSetup::kExisting;
  if (!s.ok() || admins > 0) return s;
  std::string secret;
  s = NewSecret(&secret);
  if (s.ok()) s = InsertLocked(NewRow(kAdminName, Role::kAdmin, "", TokenHash(secret)));
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
