// TokenStore: the API tokens of the toggle service (docs/toggles.md "Store"),
// beside the toggles (DATA/toggles.db, or table `tokens` of a PostgreSQL
// database that several servers share), and the in-memory table that
// authenticates every request without touching the database. The rows are a
// TokenStoreBackend's (token_backend.h); everything else here holds for both.
//
// A secret is "ladle_" + 64 hex digits (32 bytes from OpenSSL's RAND_bytes),
// returned once by Create and never stored: the database keeps its SHA-256
// (hex). Authenticate hashes the presented secret and looks the hash up, so no
// comparison ever runs over a secret. Token names are the "actor" of the
// audit trail; a name is unique among tokens that are not revoked.
//
// Thread-safety: every method may be called from any thread. Authenticate
// takes no lock (it reads an immutable table, swapped atomically after each
// change); the other methods serialize on a mutex. Another process's token
// changes (another server's, on PostgreSQL) reach the table on Refresh().
#ifndef LADLE_TOGGLES_SERVER_TOKENS_H_
#define LADLE_TOGGLES_SERVER_TOKENS_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/base/status.h"

namespace ladle::toggles {

class TokenStoreBackend;
struct TokenRow;

// admin: everything; client: evaluate and read, in one environment.
enum class Role { kAdmin, kClient };

std::string_view ToString(Role role);  // "admin", "client"
// "role: must be admin or client, got \"x\""
Status ParseRole(std::string_view text, Role* out);

// Who a request comes from.
struct Principal {
  std::string name;
  Role role = Role::kClient;
  std::string environment;  // client tokens only; "" for admin
};

// A token as listed: never its secret.
struct TokenInfo {
  std::string name;
  Role role = Role::kClient;
  std::string environment;   // "" for admin
  std::string created_at;    // RFC 3339 UTC
  std::string last_used_at;  // "" when never used
  bool revoked = false;
};

// {name, role, environment, created_at, last_used_at, revoked}; environment
// and last_used_at are null when empty.
nlohmann::json ToJson(const TokenInfo& t);

// The SHA-256 of `secret`, as 64 lowercase hex digits: what the database keeps.
std::string TokenHash(std::string_view secret);

// Where the first start leaves the admin token's secret.
std::string AdminTokenPath(const std::string& data_dir);  // DATA/admin.token
// The secret in AdminTokenPath without trailing white space; "" when the
// file is missing or empty (clients on the server's machine use it).
std::string ReadAdminTokenFile(const std::string& data_dir);

enum class AdminTokenSetup {
  kExisting,         // an admin token exists: nothing done
  kWroteFile,        // created token "admin", its secret in AdminTokenPath
  kFromEnvironment,  // token "admin" has LADLE_ADMIN_TOKEN's secret
};

class TokenStore {
 public:
  // Opens DATA/toggles.db (`data_dir` must exist) and loads the table.
  static Status Open(const std::string& data_dir, std::unique_ptr<TokenStore>* out);
  // Opens the tokens at `location`, as ToggleStore::Open takes it (see
  // ToggleStoreLocation): a postgresql:// URI (table `tokens`, its schema
  // brought up to date; Unavailable when the database does not answer), or
  // a data dir, or "" for `data_dir`. `data_dir` is where this server keeps
  // DATA/admin.token in every case (it must exist).
  static Status OpenLocation(const std::string& location, const std::string& data_dir,
                             std::unique_ptr<TokenStore>* out);
  ~TokenStore();  // writes last-used times (best effort)
  TokenStore(const TokenStore&) = delete;
  TokenStore& operator=(const TokenStore&) = delete;

  // Creates a token and returns its secret, the only time it is seen.
  // A client token's environment defaults to production; an admin token has
  // none (Invalid if given). Conflict when an unrevoked token has the name.
  Status Create(const std::string& name, Role role, const std::string& environment,
                std::string* secret, TokenInfo* info);
  // Every token, revoked ones too, oldest first.
  Status List(std::vector<TokenInfo>* out);
  // NotFound unless an unrevoked token has the name. Takes effect at once.
  Status Revoke(const std::string& name);

  // Unauthorized ("unknown or revoked token") unless `secret` is a live
  // token's. No lock, no database access: a hash and a lookup.
  Status Authenticate(std::string_view secret, Principal* out) const;

  // On server start. With LADLE_ADMIN_TOKEN set (and not empty): token
  // "admin" (role admin) gets that secret, created or refreshed (a revoked
  // one comes back: the environment wins), no file is written, and a stale
  // admin.token is removed. Otherwise, when no unrevoked admin token exists:
  // creates "admin" and writes its secret (no newline) to DATA/admin.token,
  // created with O_EXCL and mode 0600 (never readable by others, even
  // briefly), replacing an old file; the token exists only if the file was
  // written. Servers sharing a PostgreSQL database are serialised here: of
  // several starting at once, one creates the token and writes the file in
  // its own data dir, the others find it (kExisting).
  Status EnsureAdminToken(AdminTokenSetup* what = nullptr);

  // Reloads the table if another connection changed the tokens: one cheap
  // query when none did (SQLite: PRAGMA data_version; PostgreSQL: the
  // tokens_revision row). Servers call it every second, which bounds how long
  // a token revoked on another server still works.
  Status Refresh();

 private:
  struct Table;

  TokenStore(std::string data_dir, std::unique_ptr<TokenStoreBackend> db);
  Status ReloadLocked();
  Status FlushLastUsedLocked();
  Status InsertLocked(const TokenRow& t);
  Status AdminFromEnvironmentLocked(const std::string& secret);
  Status AdminFileLocked(AdminTokenSetup* what);

  const std::string data_dir_;
  std::mutex mu_;  // guards db_, change_counter_; serializes table_ swaps
  std::unique_ptr<TokenStoreBackend> db_;
  int64_t change_counter_ = 0;  // db_->ChangeCounter() as of the last reload
  std::shared_ptr<const Table> table_;  // std::atomic_load/atomic_store only
};

}  // namespace ladle::toggles

#endif  // LADLE_TOGGLES_SERVER_TOKENS_H_
