#include "runner/serve/webhook.h"
#include "core/base/text.h"
#include "runner/serve/git_source.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

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
  if (provider == "gitlab") return event == "Push Hook";
  return event == "push";
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
  if (e->ref.compare(0, heads.size(), heads) == 0) e->branch = e->ref.substr(heads.size());
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
  if (!event->is_push) {
    event->note = "ignored " + event->provider + " event '" + kind + "'";
    return Status::OK();
  }
  return ParseBody(body, event);
}

}  // namespace ladle::runner
