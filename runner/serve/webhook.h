// Push webhooks from GitHub, GitLab and Gitea (docs/server.md "From commit to production").
//
// Webhooks carry no ladle token: a request is authentic when it proves the
// repository's secret: an HMAC-SHA256 of the body (GitHub: X-Hub-Signature-256
// "sha256=HEX"; Gitea: X-Gitea-Signature "HEX") or the secret itself (GitLab:
// X-Gitlab-Token). A repository without a secret accepts no webhooks.
#ifndef LADLE_RUNNER_SERVE_WEBHOOK_H_
#define LADLE_RUNNER_SERVE_WEBHOOK_H_

#include <functional>
#include <string>
#include <string_view>

#include "core/base/status.h"

namespace ladle::runner {

struct PushEvent {
  std::string provider;     // "github", "gitlab", "gitea"
  bool is_push = false;     // false: another event (a ping): accepted, starts nothing
  std::string ref;          // "refs/heads/main"; a pull request's "refs/pull/7/head"
  std::string branch;       // "main"; empty for a tag or another ref
  std::string tag;          // "v1.2" for a push of refs/tags/v1.2
  std::string commit;       // the new head (for a tag: what the sender says it points at)
  std::string peeled;       // GitLab's checkout_sha of a tag push: the commit; may be ""
  bool deleted = false;     // the push deleted the branch or tag
  std::string note;         // why the event starts nothing, for the response
  // X-GitHub-Delivery, X-Gitea-Delivery or X-Gitlab-Event-UUID; "" when the
  // sender sent none (docs/server.md "Webhook trust").
  std::string delivery;

  // A pull request (docs/server.md "Pull requests"): GitHub's and Gitea's
  // `pull_request` (opened, synchronize(d), reopened), GitLab's merge request
  // (open, update, reopen). `commit` is its head, `ref` the forge's ref of
  // that head (refs/pull/N/head, refs/merge-requests/N/head).
  bool is_pull_request = false;
  int64_t number = 0;
  std::string base;         // the target branch
  std::string head_branch;  // the source branch
  bool same_repo = false;   // the source branch is in the repository itself
};

// A delivery id is at most this long, of letters, digits, '-', '_' and '.'.
constexpr std::size_t kMaxDeliveryId = 128;

// Returns a header's value ("" when absent); names are matched case-insensitively
// by the caller's implementation.
using HeaderLookup = std::function<std::string(std::string_view name)>;

// Authenticates and parses a push, tag push or pull request hook. Unauthorized (401) when the secret is
// empty, the signature or token is missing or wrong; Invalid (400) when the
// body is not a push payload this provider sends, its ref is not a valid git
// ref name (the message says which rule it breaks), or the delivery id is
// malformed. Never throws.
Status ParsePushHook(const HeaderLookup& header, std::string_view body, const std::string& secret,
                     PushEvent* event);

// "sha256=" + lowercase hex HMAC-SHA256 of `body` with `secret` (GitHub's form).
std::string HmacSha256Hex(std::string_view secret, std::string_view body);

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_SERVE_WEBHOOK_H_
