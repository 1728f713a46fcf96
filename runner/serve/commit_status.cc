#include "runner/serve/commit_status.h"

#include <algorithm>
#include <cctype>

#include <httplib.h>
#include <nlohmann/json.hpp>

namespace ladle::runner {
namespace {

// Percent-encodes everything but unreserved characters: GitLab takes a
// project's path as one segment ("group%2Fproject").
std::string EncodeSegment(const std::string& text) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// OWNER/NAME as two encoded segments.
std::string OwnerAndName(const std::string& repo) {
  size_t slash = repo.find('/');
  if (slash == std::string::npos) return EncodeSegment(repo);
  return EncodeSegment(repo.substr(0, slash)) + "/" + EncodeSegment(repo.substr(slash + 1));
}

// "https://host:port/api/v4" -> ("https://host:port", "/api/v4").
void SplitBase(const std::string& base, std::string* origin, std::string* prefix) {
  size_t scheme = base.find("://");
  size_t slash = base.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  *origin = slash == std::string::npos ? base : base.substr(0, slash);
  *prefix = slash == std::string::npos ? "" : base.substr(slash);
}

}  // namespace

// docs/server.md "Commit statuses": the mapping table there.
std::string ForgeState(const std::string& kind, RunStatus status) {
  const bool gitlab = kind == "gitlab";
  switch (status) {
    case kQueued:
    case kWaiting:
      return "pending";
    case kRunning:
      return gitlab ? "running" : "pending";
    case kSuccess:
      return "success";
    case kFailed:
      return gitlab ? "failed" : "failure";
    case kCancelled:
    case kSuperseded:
    case kSkipped:
      return gitlab ? "canceled" : "error";
    case kInterrupted:
      return gitlab ? "failed" : "error";
  }
  return gitlab ? "failed" : "error";
}

ForgeRequest BuildStatusRequest(const CommitStatusConfig& config, const std::string& token,
                                const std::string& commit, RunStatus status,
                                const std::string& target_url, const std::string& description) {
  ForgeRequest r;
  r.base = config.api;
  nlohmann::json body = {{"state", ForgeState(config.kind, status)},
                         {"target_url", target_url},
                         {"description", description.substr(0, 140)}};
  if (config.kind == "gitlab") {
    // POST /projects/:id/statuses/:sha, PRIVATE-TOKEN.
    r.path = "/projects/" + EncodeSegment(config.repo) + "/statuses/" + commit;
    r.headers = {{"PRIVATE-TOKEN", token}};
    body["name"] = config.context;
  } else if (config.kind == "gitea") {
    // POST /repos/{owner}/{repo}/statuses/{sha}, Authorization: token.
    r.path = "/repos/" + OwnerAndName(config.repo) + "/statuses/" + commit;
    r.headers = {{"Authorization", "token " + token}};
    body["context"] = config.context;
  } else {
    // GitHub: POST /repos/{owner}/{repo}/statuses/{sha}, a Bearer token.
    r.path = "/repos/" + OwnerAndName(config.repo) + "/statuses/" + commit;
    r.headers = {{"Authorization", "Bearer " + token},
                 {"Accept", "application/vnd.github+json"},
                 {"X-GitHub-Api-Version", "2022-11-28"}};
    body["context"] = config.context;
  }
  r.headers.emplace_back("User-Agent", "ladle");
  r.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  r.key = r.base + r.path + "\n" + config.context;
  return r;
}

CommitStatusPoster::CommitStatusPoster(Options options)
    : options_(std::move(options)), thread_(&CommitStatusPoster::Loop, this) {}

CommitStatusPoster::~CommitStatusPoster() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void CommitStatusPoster::Enqueue(ForgeRequest request) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    Pending& p = pending_[request.key];
    p.request = std::move(request);
    p.generation = ++generation_;
    p.attempts = 0;
    p.first_try = p.next_try = std::chrono::steady_clock::now();
  }
  cv_.notify_all();
}

size_t CommitStatusPoster::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pending_.size();
}

int CommitStatusPoster::Send(const ForgeRequest& request, std::string* error) const {
  std::string origin, prefix;
  SplitBase(request.base, &origin, &prefix);
  httplib::Client client(origin);
  auto seconds = [](std::chrono::milliseconds ms) {
    return std::make_pair(static_cast<time_t>(ms.count() / 1000),
                          static_cast<time_t>(ms.count() % 1000 * 1000));
  };
  auto [cs, cus] = seconds(options_.connect_timeout);
  auto [rs, rus] = seconds(options_.read_timeout);
  client.set_connection_timeout(cs, cus);
  client.set_read_timeout(rs, rus);
  client.set_write_timeout(rs, rus);
  httplib::Headers headers;
  for (const auto& [name, value] : request.headers) headers.emplace(name, value);
  auto result = client.Post((prefix + request.path).c_str(), headers, request.body,
                            "application/json");
  if (!result) {
    *error = httplib::to_string(result.error());
    return 0;
  }
  if (result->status < 200 || result->status > 299)
    *error = "HTTP " + std::to_string(result->status) + ": " + result->body.substr(0, 200);
  return result->status;
}

void CommitStatusPoster::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    auto now = std::chrono::steady_clock::now();
    auto due = pending_.end();
    for (auto it = pending_.begin(); it != pending_.end(); ++it)
      if (due == pending_.end() || it->second.next_try < due->second.next_try) due = it;
    if (due == pending_.end()) {
      cv_.wait(lock);
      continue;
    }
    if (due->second.next_try > now) {
      cv_.wait_until(lock, due->second.next_try);
      continue;
    }
    const std::string key = due->first;
    const ForgeRequest request = due->second.request;
    const uint64_t generation = due->second.generation;
    lock.unlock();
    std::string error;
    const int status = Send(request, &error);
    lock.lock();
    auto it = pending_.find(key);
    const bool current = it != pending_.end() && it->second.generation == generation;
    const bool ok = status >= 200 && status <= 299;
    bool final = ok;
    if (current && ok) {
      pending_.erase(it);
    } else if (current) {
      Pending& p = it->second;
      ++p.attempts;
      auto backoff = options_.first_backoff * (1LL << std::min(p.attempts - 1, 20));
      backoff = std::min<std::chrono::milliseconds>(
          std::chrono::duration_cast<std::chrono::milliseconds>(backoff), options_.max_backoff);
      now = std::chrono::steady_clock::now();
      if (p.attempts >= options_.max_attempts || now + backoff - p.first_try > options_.give_up_after) {
        pending_.erase(it);
        final = true;
      } else {
        p.next_try = now + backoff;
      }
    }
    // A newer status of the key came meanwhile: it goes next, this one is done.
    if (!current) final = true;
    if (options_.on_result) {
      lock.unlock();
      options_.on_result(request, status, error, final);
      lock.lock();
    }
  }
}

}  // namespace ladle::runner
