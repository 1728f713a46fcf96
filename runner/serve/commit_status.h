// Commit statuses on GitHub, GitLab and Gitea (docs/server.md "Commit statuses").
//
// BuildStatusRequest turns a run's status into the forge's commit status
// call; CommitStatusPoster sends such calls from a thread of its own, so a
// forge that is slow, down or answers errors never delays or fails a run.
// A failed call is tried again with a growing back-off, a bounded number of
// times within a bounded time. Calls are keyed by forge, commit and context:
// a newer status of a key replaces one not sent yet (and one waiting to be
// tried again), and calls go out one at a time, so an older state is never
// posted after a newer one.
//
// Thread-safety: Enqueue may be called from any thread.
#ifndef LADLE_RUNNER_SERVE_COMMIT_STATUS_H_
#define LADLE_RUNNER_SERVE_COMMIT_STATUS_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "runner/config/server_config.h"
#include "runner/store/run_status.h"

namespace ladle::runner {

// One commit status call: POST base + path with these headers and JSON body.
struct ForgeRequest {
  std::string base;  // "https://api.github.com" (scheme, host, port and path prefix)
  std::string path;  // "/repos/OWNER/NAME/statuses/SHA"
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // JSON
  std::string key;   // what a newer status replaces: base, path and context
};

// The forge's word for a run status: GitHub and Gitea take pending, success,
// failure, error; GitLab pending, running, success, failed, canceled.
std::string ForgeState(const std::string& kind, RunStatus status);

// The call that sets `commit`'s status for a run in `status`, linking
// `target_url`. REQUIRES: config was validated (LoadServerConfig).
ForgeRequest BuildStatusRequest(const CommitStatusConfig& config, const std::string& token,
                                const std::string& commit, RunStatus status,
                                const std::string& target_url, const std::string& description);

struct CommitStatusOptions {
  int max_attempts = 6;                                    // per status
  std::chrono::milliseconds first_backoff{std::chrono::seconds(2)};  // doubles per attempt
  std::chrono::milliseconds max_backoff{std::chrono::minutes(2)};
  std::chrono::milliseconds give_up_after{std::chrono::minutes(10)};  // since the first attempt
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(5)};
  std::chrono::milliseconds read_timeout{std::chrono::seconds(10)};
  // Told of each outcome, for logs and tests: the key, the HTTP status (0:
  // no answer), whether it is given up for good.
  std::function<void(const ForgeRequest&, int http_status, const std::string& error, bool final)>
      on_result;
};

class CommitStatusPoster {
 public:
  using Options = CommitStatusOptions;
  explicit CommitStatusPoster(Options options = {});
  // Stops the thread; statuses not sent yet are dropped (the next run's
  // statuses replace them on the forge).
  ~CommitStatusPoster();
  CommitStatusPoster(const CommitStatusPoster&) = delete;
  CommitStatusPoster& operator=(const CommitStatusPoster&) = delete;

  // Queues `request`, replacing a queued one of the same key. Never blocks
  // on the network.
  void Enqueue(ForgeRequest request);

  // Statuses queued or waiting to be tried again (for tests).
  size_t pending() const;

 private:
  struct Pending {
    ForgeRequest request;
    uint64_t generation = 0;
    int attempts = 0;
    std::chrono::steady_clock::time_point first_try{}, next_try{};
  };
  void Loop();
  // Sends one call; the HTTP status (0 when none came) and an error text.
  int Send(const ForgeRequest& request, std::string* error) const;

  const Options options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  uint64_t generation_ = 0;
  std::map<std::string, Pending> pending_;  // by key
  std::thread thread_;
};

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_SERVE_COMMIT_STATUS_H_
