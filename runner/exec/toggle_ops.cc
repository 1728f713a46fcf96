#include "runner/exec/toggle_ops.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include <nlohmann/json.hpp>

#include "toggles/client/http_client.h"
#include "toggles/eval/model.h"
#include "toggles/server/tokens.h"

namespace ladle::runner {
namespace {

using json = nlohmann::json;
using toggles::EnvironmentConfig;
using toggles::SyncEntry;
using toggles::SyncResult;
using toggles::Toggle;
using toggles::ToggleFields;
using toggles::ConfigIn;
using toggles::WithRollout;

constexpr std::size_t kMaxNoteBytes = 200;  // what the server keeps of X-Ladle-Note
constexpr int kAttempts = 3;                // read-modify-write rounds against concurrent edits

// ---- shared by both kinds ----

int RolloutPercent(const EnvironmentConfig& c) {
  if (!c.enabled) return 0;
  if (c.strategies.empty()) return 100;
  if (c.strategies.size() == 1 && c.strategies[0].rollout) return c.strategies[0].rollout->percent;
  return -1;
}


Status CheckEnvironment(const std::string& environment) {
  if (toggles::ValidateKey(environment).ok()) return Status::OK();
  return Status::Invalid("environment \"" + environment +
                         "\": only A-Z a-z 0-9 . _ - allowed, up to 128 characters");
}

// ---- in this process ----

class StoreOps : public ToggleOps {
 public:
  StoreOps(toggles::ToggleStore* store, std::unique_ptr<toggles::ToggleStore> owned,
           std::string where)
      : store_(store), owned_(std::move(owned)), where_(std::move(where)) {}

  std::string Describe() const override { return where_; }

  Status Sync(const std::vector<SyncEntry>& entries, const std::string& actor,
              const std::string& note, SyncResult* out) override {
    return store_->Sync(entries, actor, note, out);
  }

  Status GetRollout(const std::string& key, const std::string& environment, bool* enabled,
                    int* percent) override {
    Toggle t;
    Status s = store_->Get(key, environment, &t);
    if (!s.ok()) return s;
    EnvironmentConfig c = ConfigIn(t, environment);
    *enabled = c.enabled;
    *percent = RolloutPercent(c);
    return s;
  }

  Status SetRollout(const std::string& key, const std::string& environment, int percent,
                    const std::string& actor, const std::string& note) override {
    toggles::WriteResult w;
    return store_->SetRollout(key, environment, percent, actor, note, &w);
  }

  Status TurnOff(const std::string& key, const std::string& environment, const std::string& actor,
                 const std::string& note) override {
    toggles::WriteResult w;
    return store_->Flip(key, environment, false, std::nullopt, actor, &w, note);
  }

 private:
  toggles::ToggleStore* store_;
  std::unique_ptr<toggles::ToggleStore> owned_;  // null when the caller owns the store
  std::string where_;
};

// ---- over HTTP ----

// A header value: no control characters, at most kMaxNoteBytes, never cut
// inside a UTF-8 sequence.
std::string HeaderSafe(const std::string& note) {
  std::string out;
  for (char c : note) {
    unsigned char u = static_cast<unsigned char>(c);
    out += u < 0x20 || u == 0x7f ? ' ' : c;
  }
  if (out.size() > kMaxNoteBytes) {
    std::size_t end = kMaxNoteBytes;
    while (end > 0 && (static_cast<unsigned char>(out[end]) & 0xC0) == 0x80) --end;
    out.resize(end);
  }
  return out;
}

std::string ToggleTarget(const std::string& key) {
  return "/api/v1/toggles/" + toggles::EncodePathSegment(key);
}

std::string EnvTarget(const std::string& key, const std::string& environment) {
  return ToggleTarget(key) + "/environments/" + toggles::EncodePathSegment(environment);
}

// The fields of `f` that differ from `t` (all given ones when t is null), as
// a POST or PATCH body.
json FieldsBody(const ToggleFields& f, const Toggle* t) {
  json body = json::object();
  if (f.type && (!t || t->type != *f.type)) body["type"] = std::string(toggles::ToString(*f.type));
  if (f.description && (!t || t->description != *f.description))
    body["description"] = *f.description;
  if (f.variants && (!t || t->variants != *f.variants))
    body["variants"] = toggles::ToJson(*f.variants);
  return body;
}

int64_t RevisionOf(const json& j) {
  auto it = j.is_object() ? j.find("revision") : j.end();
  return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

class HttpOps : public ToggleOps {
 public:
  explicit HttpOps(toggles::HttpClient http) : http_(std::move(http)) {}

  std::string Describe() const override { return "the toggle server at " + http_.url().ToString(); }

  Status Sync(const std::vector<SyncEntry>& entries, const std::string& actor,
              const std::string& note, SyncResult* out) override;
  Status GetRollout(const std::string& key, const std::string& environment, bool* enabled,
                    int* percent) override;
  Status SetRollout(const std::string& key, const std::string& environment, int percent,
                    const std::string& actor, const std::string& note) override;
  Status TurnOff(const std::string& key, const std::string& environment, const std::string& actor,
                 const std::string& note) override;

 private:
  // One JSON request; `note` ("" for none) goes into X-Ladle-Note.
  Status Call(const std::string& method, const std::string& target, const json* body,
              const std::string& note, json* out, toggles::ClientResponse* raw = nullptr,
              toggles::HttpHeaders extra = {}) const;
  Status Fetch(const std::string& key, Toggle* t, std::string* etag) const;
  Status ParseAnswer(const json& j, Toggle* t) const;
  // Brings an existing toggle's fields in line with `entry`.
  Status Update(const Toggle& current, const SyncEntry& entry, const std::string& note,
                SyncResult* r, int64_t* revision) const;

  const toggles::HttpClient http_;
};

Status HttpOps::Call(const std::string& method, const std::string& target, const json* body,
                     const std::string& note, json* out, toggles::ClientResponse* raw,
                     toggles::HttpHeaders extra) const {
  std::string safe = HeaderSafe(note);
  if (!safe.empty()) extra.emplace_back("X-Ladle-Note", safe);
  toggles::ClientResponse r;
  Status s = http_.Json(method, target, body, out, &r, extra);
  if (r.failure == toggles::HttpFailure::kConnect) {
    s = Status::Unavailable(s.message() +
                            ": is `ladle serve` running there? (unset LADLE_SERVER to use the "
                            "data dir's toggle store instead)");
  }
  if (raw != nullptr) *raw = std::move(r);
  return s;
}

Status HttpOps::ParseAnswer(const json& j, Toggle* t) const {
  Status s = toggles::ParseToggle(j, t);
  if (s.ok()) return s;
  return Status::Unavailable(Describe() + " sent a toggle that ladle cannot read: " + s.message());
}

Status HttpOps::Fetch(const std::string& key, Toggle* t, std::string* etag) const {
  json j;
  toggles::ClientResponse raw;
  Status s = Call("GET", ToggleTarget(key), nullptr, "", &j, &raw);
  if (s.ok()) s = ParseAnswer(j, t);
  if (etag != nullptr) *etag = !raw.etag.empty() ? raw.etag : std::to_string(t->revision);
  return s;
}

Status HttpOps::Update(const Toggle& current, const SyncEntry& entry, const std::string& note,
                       SyncResult* r, int64_t* revision) const {
  json body = FieldsBody(entry.fields, &current);
  if (body.empty()) {
    r->unchanged.push_back(entry.key);
    return Status::OK();
  }
  json answer;
  Status s = Call("PATCH", ToggleTarget(entry.key), &body, note, &answer);
  if (!s.ok()) return s.WithContext("update toggle '" + entry.key + "'");
  r->updated.push_back(entry.key);
  *revision = std::max(*revision, RevisionOf(answer));
  return s;
}

Status HttpOps::Sync(const std::vector<SyncEntry>& entries, const std::string& actor,
                     const std::string& note, SyncResult* out) {
  Status s = toggles::CheckSyncEntries(entries);  // a bad file writes nothing
  json list;
  if (s.ok()) s = Call("GET", "/api/v1/toggles", nullptr, "", &list);
  if (!s.ok()) return s;
  std::map<std::string, Toggle> current;
  const json& items = list.is_object() && list.contains("toggles") ? list["toggles"] : list;
  for (const json& item : items.is_array() ? items : json::array()) {
    Toggle t;
    if (s = ParseAnswer(item, &t); !s.ok()) return s;
    current.emplace(t.key, std::move(t));
  }
  SyncResult r;
  int64_t revision = RevisionOf(list);
  for (const SyncEntry& entry : entries) {
    auto it = current.find(entry.key);
    if (it != current.end()) {
      s = Update(it->second, entry, note, &r, &revision);
    } else {
      json body = FieldsBody(entry.fields, nullptr), answer;
      body["key"] = entry.key;
      s = Call("POST", "/api/v1/toggles", &body, note, &answer);
      if (s.ok()) {
        r.created.push_back(entry.key);
        revision = std::max(revision, RevisionOf(answer));
      } else if (s.code() == Code::kConflict) {  // created meanwhile by someone else
        Toggle t;
        s = Fetch(entry.key, &t, nullptr);
        if (s.ok()) s = Update(t, entry, note, &r, &revision);
      } else {
        s = s.WithContext("create toggle '" + entry.key + "'");
      }
    }
    if (!s.ok()) return s;
  }
  std::set<std::string> listed;
  for (const SyncEntry& entry : entries) listed.insert(entry.key);
  for (const auto& [key, t] : current)  // a std::map: sorted
    if (listed.count(key) == 0) r.removal_candidates.push_back(key);
  r.revision = revision;
  *out = std::move(r);
  return Status::OK();
}

Status HttpOps::GetRollout(const std::string& key, const std::string& environment, bool* enabled,
                           int* percent) {
  Status s = CheckEnvironment(environment);
  Toggle t;
  if (s.ok()) s = Fetch(key, &t, nullptr);
  if (!s.ok()) return s;
  EnvironmentConfig c = ConfigIn(t, environment);
  *enabled = c.enabled;
  *percent = RolloutPercent(c);
  return s;
}

// GET, then PUT with If-Match, so that a change made in between is not lost.
Status HttpOps::SetRollout(const std::string& key, const std::string& environment, int percent,
                           const std::string& actor, const std::string& note) {
  if (percent < 0 || percent > 100)
    return Status::Invalid("percent: must be between 0 and 100, got " + std::to_string(percent));
  Status s = CheckEnvironment(environment);
  if (!s.ok()) return s;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    Toggle t;
    std::string etag;
    s = Fetch(key, &t, &etag);
    if (!s.ok()) return s;
    EnvironmentConfig before = ConfigIn(t, environment);
    EnvironmentConfig after = WithRollout(before, percent);
    if (after == before) return s;
    json body = toggles::ToJson(after), answer;
    s = Call("PUT", EnvTarget(key, environment), &body, note, &answer, nullptr,
             {{"If-Match", etag}});
    if (s.code() != Code::kPrecondition) return s;
  }
  return s.WithContext("toggle '" + key + "' kept changing while its rollout was set");
}

Status HttpOps::TurnOff(const std::string& key, const std::string& environment,
                        const std::string& actor, const std::string& note) {
  json answer;
  return Call("POST", EnvTarget(key, environment) + "/off", nullptr, note, &answer);
}

}  // namespace

std::unique_ptr<ToggleOps> StoreToggleOps(toggles::ToggleStore* store) {
  return std::make_unique<StoreOps>(store, nullptr, "this server's toggle store");
}

Status OpenStoreToggleOps(const std::string& data_dir, std::unique_ptr<ToggleOps>* out) {
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) return Status::IoError("create data directory " + data_dir + ": " + ec.message());
  std::unique_ptr<toggles::ToggleStore> store;
  // $LADLE_STORE: the servers' PostgreSQL, when they share one (docs/toggles.md "Store").
  const std::string location = toggles::ToggleStoreLocation("", data_dir);
  Status s = toggles::ToggleStore::Open(location, &store);
  if (!s.ok()) return s;
  toggles::ToggleStore* raw = store.get();
  *out = std::make_unique<StoreOps>(raw, std::move(store),
                                    location == data_dir ? "the toggle store in " + data_dir
                                                         : "the shared toggle store");
  return s;
}

Status HttpToggleOps(const std::string& server_url, const std::string& token,
                     std::unique_ptr<ToggleOps>* out) {
  toggles::ServerUrl url;
  Status s = toggles::ParseServerUrl(server_url, &url);
  if (!s.ok()) return s;
  *out = std::make_unique<HttpOps>(toggles::HttpClient(url, toggles::HttpClient::Options{token}));
  return s;
}

Status FindToggleToken(const std::string& data_dir, std::string* token) {
  if (const char* env = std::getenv("LADLE_TOKEN"); env && *env) {
    *token = env;
    return Status::OK();
  }
  std::string secret = toggles::ReadAdminTokenFile(data_dir);
  if (secret.empty()) {
    return Status::Invalid(
        "no token for the toggle server: set LADLE_TOKEN to an admin token, or "
        "run on the server's data dir, where it writes " +
        toggles::AdminTokenPath(data_dir));
  }
  *token = secret;
  return Status::OK();
}

}  // namespace ladle::runner
