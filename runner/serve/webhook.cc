#include "runner/serve/webhook.h"
#include "core/base/text.h"
#include "runner/serve/git_source.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <initializer_list>

#include <nlohmann/json.hpp>

namespace ladle::runner {
namespace {

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// SHA-1 or SHA-256 object name, lowercase or not.
bool IsObjectId(const std::string& text) {
  return (text.size() == 40 || text.size() == 64) &&
         text.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos;
}

bool AllZeros(const std::string& sha) {
  return !sha.empty() && sha.find_first_not_of('0') == std::string::npos;
}

// Which provider sent it, from the event header each one sets.
std::string Provider(const HeaderLookup& header, std::string* event) {
  if (!(*event = header("X-Gitea-Event")).empty()) return "gitea";
  if (!(*event = header("X-GitHub-Event")).empty()) return "github";
  if (!(*event = header("X-Gitlab-Event")).empty()) return "gitlab";
  return "";
}

Status Authenticate(const std::string& provider, const HeaderLookup& header,
                    std::string_view body, const std::string& secret) {
  if (secret.empty())
    return Status::Unauthorized("this repository has no webhook secret; set webhook_secret_env in server.yml");
  if (provider == "gitlab") {
    std::string token = header("X-Gitlab-Token");
    if (token.empty()) return Status::Unauthorized("missing X-Gitlab-Token header");
    if (!ConstantTimeEquals(token, secret)) return Status::Unauthorized("X-Gitlab-Token does not match the repository's secret");
    return Status::OK();
  }
  const char* name = provider == "gitea" ? "X-Gitea-Signature" : "X-Hub-Signature-256";
  std::string given = Lower(header(name));
  if (given.empty()) return Status::Unauthorized(std::string("missing ") + name + " header");
  std::string expected = HmacSha256Hex(secret, body);
  if (provider == "gitea") expected = expected.substr(7);  // Gitea sends the hex alone
  if (!ConstantTimeEquals(given, expected))
    return Status::Unauthorized(std::string(name) + " does not match the body signed with the repository's secret");
  return Status::OK();
}

// The sender's id of this delivery, bounded and plain (it is stored and logged).
Status ReadDelivery(const std::string& provider, const HeaderLookup& header, std::string* id) {
  const char* name = provider == "gitea"    ? "X-Gitea-Delivery"
                     : provider == "gitlab" ? "X-Gitlab-Event-UUID"
                                            : "X-GitHub-Delivery";
  *id = header(name);
  if (id->size() > kMaxDeliveryId)
    return Status::Invalid(std::string(name) + " is longer than " +
                           std::to_string(kMaxDeliveryId) + " characters");
  if (id->find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") !=
      std::string::npos)
    return Status::Invalid(std::string(name) +
                           " may hold only letters, digits, '-', '_' and '.'");
  return Status::OK();
}

bool IsPushEvent(const std::string& provider, const std::string& event) {
  if (provider == "gitlab") return event == "Push Hook" || event == "Tag Push Hook";
  return event == "push";
}

bool IsPullRequestEvent(const std::string& provider, const std::string& event) {
  if (provider == "gitlab") return event == "Merge Request Hook";
  return event == "pull_request";
}

// A JSON string at `path` ("pull_request", "head", "sha"), or "" when absent
// or not a string.
std::string Text(const nlohmann::json& j, std::initializer_list<const char*> path) {
  const nlohmann::json* at = &j;
  for (const char* key : path) {
    if (!at->is_object() || !at->contains(key)) return "";
    at = &(*at)[key];
  }
  return at->is_string() ? at->get<std::string>() : "";
}

const nlohmann::json* Member(const nlohmann::json& j, std::initializer_list<const char*> path) {
  const nlohmann::json* at = &j;
  for (const char* key : path) {
    if (!at->is_object() || !at->contains(key)) return nullptr;
    at = &(*at)[key];
  }
  return at;
}

Status ParsePullRequestBody(const std::string& provider, std::string_view body, PushEvent* e) {
  if (JsonDeeperThan(body, kMaxJsonDepth))
    return Status::Invalid("body: nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::Invalid("body: not a JSON object");
  std::string action;
  const nlohmann::json* number = nullptr;
  if (provider == "gitlab") {
    // docs/server.md "Pull requests": GitLab's merge request events.
    if (Text(j, {"object_kind"}) != "merge_request")
      return Status::Invalid("body: 'object_kind' is not 'merge_request'");
    action = Text(j, {"object_attributes", "action"});
    number = Member(j, {"object_attributes", "iid"});
    e->commit = Text(j, {"object_attributes", "last_commit", "id"});
    e->base = Text(j, {"object_attributes", "target_branch"});
    e->head_branch = Text(j, {"object_attributes", "source_branch"});
    const nlohmann::json* source = Member(j, {"object_attributes", "source_project_id"});
    const nlohmann::json* target = Member(j, {"object_attributes", "target_project_id"});
    e->same_repo = source && target && source->is_number_integer() && *source == *target;
  } else {
    // GitHub's and Gitea's pull_request events share this shape.
    action = Text(j, {"action"});
    number = Member(j, {"number"});
    e->commit = Text(j, {"pull_request", "head", "sha"});
    e->base = Text(j, {"pull_request", "base", "ref"});
    e->head_branch = Text(j, {"pull_request", "head", "ref"});
    std::string head_repo = Text(j, {"pull_request", "head", "repo", "full_name"});
    std::string base_repo = Text(j, {"pull_request", "base", "repo", "full_name"});
    e->same_repo = !head_repo.empty() && head_repo == base_repo;
  }
  if (!number || !number->is_number_integer() || number->get<int64_t>() <= 0 ||
      number->get<int64_t>() > 1000000000000LL)
    return Status::Invalid(std::string("body: '") +
                           (provider == "gitlab" ? "object_attributes.iid" : "number") +
                           "' missing or not a positive integer");
  e->number = number->get<int64_t>();
  const bool wanted = provider == "gitlab"
                          ? action == "open" || action == "update" || action == "reopen"
                          : action == "opened" || action == "synchronize" ||
                                action == "synchronized" || action == "reopened";
  if (!wanted) {
    e->note = "ignored " + provider + " pull request action '" + action.substr(0, 40) + "'";
    e->is_pull_request = false;
    return Status::OK();
  }
  if (!IsObjectId(e->commit))
    return Status::Invalid("body: the pull request's head is not a commit id (40 or 64 hex digits): '" +
                           e->commit.substr(0, 80) + "'");
  if (std::string problem = BranchNameProblem(e->base); e->base.empty() || !problem.empty())
    return Status::Invalid("body: the pull request's target branch is not a valid git branch: " +
                           (e->base.empty() ? std::string("it is missing") : problem));
  if (std::string problem = BranchNameProblem(e->head_branch);
      e->head_branch.empty() || !problem.empty())
    e->same_repo = false;  // only fetched by its pull request ref then
  e->ref = provider == "gitlab" ? "refs/merge-requests/" + std::to_string(e->number) + "/head"
                                : "refs/pull/" + std::to_string(e->number) + "/head";
  return Status::OK();
}

Status ParseBody(std::string_view body, PushEvent* e) {
  if (JsonDeeperThan(body, kMaxJsonDepth))
    return Status::Invalid("body: nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::Invalid("body: not a JSON object");
  if (!j.contains("ref") || !j["ref"].is_string()) return Status::Invalid("body: 'ref' missing or not a string");
  if (!j.contains("after") || !j["after"].is_string()) return Status::Invalid("body: 'after' missing or not a string");
  e->ref = j["ref"].get<std::string>();
  // docs/server.md "Webhook trust": the ref reaches git, logs and the run
  // store, so it must be one git itself would accept.
  if (std::string problem = RefNameProblem(e->ref); !problem.empty())
    return Status::Invalid("body: 'ref' is not a valid git ref name: " + problem);
  std::string after = j["after"].get<std::string>();
  e->deleted = AllZeros(after) || (j.contains("deleted") && j["deleted"].is_boolean() && j["deleted"].get<bool>());
  // The commit goes to git's command line: only an object id may get there
  // (one starting with '-' would be read as an option).
  if (!e->deleted && !IsObjectId(after))
    return Status::Invalid("body: 'after' is not a commit id (40 or 64 hex digits): '" +
                           after.substr(0, 80) + "'");
  e->commit = e->deleted ? "" : after;
  const std::string heads = "refs/heads/";
  const std::string tags = "refs/tags/";
  if (e->ref.compare(0, heads.size(), heads) == 0) e->branch = e->ref.substr(heads.size());
  if (e->ref.compare(0, tags.size(), tags) == 0 && e->ref.size() > tags.size()) {
    e->tag = e->ref.substr(tags.size());
    // GitLab names the commit of an annotated tag apart (checkout_sha).
    if (j.contains("checkout_sha") && j["checkout_sha"].is_string() &&
        IsObjectId(j["checkout_sha"].get<std::string>()))
      e->peeled = j["checkout_sha"].get<std::string>();
    if (e->deleted) e->note = "tag " + e->tag + " was deleted";
    return Status::OK();
  }
  if (std::string problem = BranchNameProblem(e->branch);
      e->ref.size() > heads.size() && !e->branch.empty() && !problem.empty())
    return Status::Invalid("body: 'ref' names an invalid git branch: " + problem);
  if (e->branch.empty()) e->note = "not a branch: " + e->ref;
  else if (e->deleted) e->note = "branch " + e->branch + " was deleted";
  return Status::OK();
}

}  // namespace

std::string HmacSha256Hex(std::string_view secret, std::string_view body) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &length);
  static const char* kHex = "0123456789abcdef";
  std::string out = "sha256=";
  for (unsigned int i = 0; i < length; ++i) {
    out += kHex[mac[i] >> 4];
    out += kHex[mac[i] & 15];
  }
  return out;
}

Status ParsePushHook(const HeaderLookup& header, std::string_view body, const std::string& secret,
                     PushEvent* event) {
  *event = PushEvent();
  std::string kind;
  event->provider = Provider(header, &kind);
  if (event->provider.empty())
    return Status::Invalid("not a GitHub, GitLab or Gitea webhook (no X-GitHub-Event, X-Gitlab-Event or X-Gitea-Event header)");
  Status s = Authenticate(event->provider, header, body, secret);
  if (!s.ok()) return s;
  s = ReadDelivery(event->provider, header, &event->delivery);
  if (!s.ok()) return s;
  event->is_push = IsPushEvent(event->provider, kind);
  if (IsPullRequestEvent(event->provider, kind)) {
    event->is_pull_request = true;
    return ParsePullRequestBody(event->provider, body, event);
  }
  if (!event->is_push) {
    event->note = "ignored " + event->provider + " event '" + kind + "'";
    return Status::OK();
  }
  return ParseBody(body, event);
}

}  // namespace ladle::runner
