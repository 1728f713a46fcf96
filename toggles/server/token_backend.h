// TokenStoreBackend: where a TokenStore keeps its rows, the one part of the
// token store that differs between SQLite (sqlite_tokens.cc, DATA/toggles.db)
// and PostgreSQL (pg_tokens.cc, table `tokens` beside the toggles);
// docs/design.md "Two stores: SQLite and PostgreSQL". The store (tokens.cc)
// holds everything else once for both: secrets and hashes, the in-memory
// table, the admin token's rules, the last-use times, Refresh.
//
// Thread-safety: the store calls a backend under its own mutex, one call at
// a time.
#ifndef LADLE_TOGGLES_SERVER_TOKEN_BACKEND_H_
#define LADLE_TOGGLES_SERVER_TOKEN_BACKEND_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/base/status.h"

namespace ladle::toggles {

// One row of the tokens table, as both backends store it. The role is the
// stored text: the store parses it (a damaged row is Internal there).
struct TokenRow {
  int64_t id = 0;
  std::string name;
  std::string role;         // "admin" or "client"
  std::string environment;  // "" for NULL
  std::string hash;         // SHA-256 hex of the secret
  std::string created_at;   // RFC 3339 UTC
  std::string last_used_at; // "" for NULL
  bool revoked = false;
};

class TokenStoreBackend {
 public:
  virtual ~TokenStoreBackend() = default;

  // What messages name: "toggles.db" or the (redacted) URI.
  virtual const std::string& where() const = 0;

  // A write transaction, serialised with every other token writer of the
  // database (in any process), whose reads see every commit made before it
  // began.
  virtual Status BeginWrite() = 0;
  // The last statement of a write that changed something, before Commit:
  // on PostgreSQL it bumps the counter ChangeCounter reads.
  virtual Status MarkChanged() = 0;
  virtual Status Commit() = 0;
  virtual void Rollback() = 0;  // best effort; no-op without a transaction

  // Cheap, outside a transaction: a number that differs from its last value
  // when another connection may have changed the tokens since (SQLite:
  // PRAGMA data_version; PostgreSQL: the tokens_revision row).
  virtual Status ChangeCounter(int64_t* out) = 0;

  // --- reads, inside or outside a transaction ---
  virtual Status LoadLive(std::vector<TokenRow>* out) = 0;  // unrevoked ones
  virtual Status ListAll(std::vector<TokenRow>* out) = 0;   // all, oldest first
  // The unrevoked token named `name`; *found = false when there is none.
  virtual Status FindLive(const std::string& name, TokenRow* out, bool* found) = 0;
  virtual Status CountLiveAdmins(int64_t* out) = 0;

  // --- inside a write ---
  // Conflict when an unrevoked token has the name (the unique index's
  // verdict, should two writers race past the store's own check).
  virtual Status Insert(const TokenRow& t) = 0;
  // *found = false when no unrevoked token has the name.
  virtual Status Revoke(const std::string& name, bool* found) = 0;
  // Token `id` becomes an admin token with secret hash `hash`.
  virtual Status SetAdmin(int64_t id, const std::string& hash) = 0;

  // In a transaction of its own: each (id, RFC 3339 time), ids ascending;
  // a time never moves backwards (another server may have written a later one).
  virtual Status WriteLastUsed(const std::vector<std::pair<int64_t, std::string>>& times) = 0;
};

// DATA/toggles.db (sqlite_tokens.cc); `data_dir` must exist.
Status OpenSqliteTokenBackend(const std::string& data_dir,
                              std::unique_ptr<TokenStoreBackend>* out);
// A postgresql:// URI (pg_tokens.cc): connects and brings the token schema up
// to date; Unavailable when the database does not answer.
Status OpenPgTokenBackend(const std::string& uri, std::unique_ptr<TokenStoreBackend>* out);

// application_name of the token store's PostgreSQL connection (pg_stat_activity).
inline constexpr char kTokenConnectionName[] = "ladle-tokens";

}  // namespace ladle::toggles

#endif  // LADLE_TOGGLES_SERVER_TOKEN_BACKEND_H_
