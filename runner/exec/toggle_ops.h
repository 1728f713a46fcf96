// ToggleOps: what a pipeline run does to toggles (sync, rollout stages:
// docs/design.md "Toggles in a run"), wherever they live: a ToggleStore in
// this process (`ladle serve`), the data dir's toggles.db opened directly
// (`ladle run`), or a toggle server over HTTP (`ladle run` with $LADLE_SERVER).
//
// Every write carries `actor` (the audit trail's "who") and `note` (why, and
// which run: "run 12"), so that the toggle's history names the run. Errors
// use core/base/status.h: NotFound for a missing toggle, Invalid for bad input (or
// a 4xx), Unavailable when the server or the database cannot be reached (a
// 5xx too), with the server's own message where there is one.
//
// Thread-safety: every implementation may be used from several threads at
// once (the store serializes its writes; an HTTP request is self-contained).
#ifndef LADLE_RUNNER_EXEC_TOGGLE_OPS_H_
#define LADLE_RUNNER_EXEC_TOGGLE_OPS_H_

#include <memory>
#include <string>
#include <vector>

#include "core/base/status.h"
#include "toggles/server/store.h"

namespace ladle::runner {

class ToggleOps {
 public:
  virtual ~ToggleOps() = default;

  // Where the toggles are, for messages: "the toggle server at http://...",
  // "the toggle store in DATA".
  virtual std::string Describe() const = 0;

  // docs/design.md "Toggles in a run": creates missing toggles disabled in
  // every environment, updates type, description and variants where given
  // and different, never turns anything on or off, and lists the toggles not
  // in `entries` as removal candidates (sorted). The store does it in one
  // transaction; over HTTP the entries are all checked first, then written
  // one request at a time.
  virtual Status Sync(const std::vector<toggles::SyncEntry>& entries, const std::string& actor,
                      const std::string& note, toggles::SyncResult* out) = 0;

  // The toggle's state in `environment`: enabled, and its rollout percent (0
  // when disabled; 100 when enabled with no strategies; the rollout
  // strategy's percent when it has exactly one strategy and that has a
  // rollout; otherwise -1 meaning "not a plain rollout"). NotFound when the
  // toggle does not exist.
  virtual Status GetRollout(const std::string& key, const std::string& environment, bool* enabled,
                            int* percent) = 0;

  // Enables the toggle in `environment` with a rollout at `percent` (0..100),
  // as ToggleStore::SetRollout does (a lone rollout strategy keeps its
  // stickiness and group). It does not refuse to lower: RunRollout checks.
  virtual Status SetRollout(const std::string& key, const std::string& environment, int percent,
                            const std::string& actor, const std::string& note) = 0;

  // Disables the toggle in `environment` (its strategies stay); no change
  // when it is off already.
  virtual Status TurnOff(const std::string& key, const std::string& environment,
                         const std::string& actor, const std::string& note) = 0;
};

// Over a store in this process, e.g. `ladle serve`'s. REQUIRES: `store`
// outlives the result (it is not owned).
std::unique_ptr<ToggleOps> StoreToggleOps(toggles::ToggleStore* store);

// Opens DATA/toggles.db itself (`ladle run` without $LADLE_SERVER), creating
// `data_dir` if needed; the result owns the store.
Status OpenStoreToggleOps(const std::string& data_dir, std::unique_ptr<ToggleOps>* out);

// Over HTTP to the toggle API at `server_url` (as ParseServerUrl takes it),
// with `token` as its Bearer token (an admin token: writes need one). The
// note travels in the X-Ladle-Note header (at most 200 bytes are kept).
// Invalid for a bad URL; nothing is sent until the first call.
Status HttpToggleOps(const std::string& server_url, const std::string& token,
                     std::unique_ptr<ToggleOps>* out);

// The token the way `ladle toggles` finds it without --token: $LADLE_TOKEN,
// else DATA/admin.token (trailing whitespace dropped). Invalid, saying how to
// get one, when neither has one.
Status FindToggleToken(const std::string& data_dir, std::string* token);

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_EXEC_TOGGLE_OPS_H_
