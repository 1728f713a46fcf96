#include "toggles/server/api.h"
#include "core/base/text.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace ladle::toggles {
namespace {

using json = nlohmann::json;

constexpr std::string_view kEnvironmentHeader = "X-Ladle-Environment";
// Why a write happened ("run 12: rollout check failed"), for its audit event.
constexpr std::string_view kNoteHeader = "X-Ladle-Note";
constexpr size_t kMaxNoteBytes = 200;
// Pages of the audit trail (docs/toggles.md "HTTP API").
constexpr int64_t kDefaultEventPage = 100;
constexpr int64_t kMaxEventPage = 1000;
// A page stops early past this size: events carry whole toggles, which may be
// large (up to the 1 MiB body limit each).
constexpr size_t kMaxPageBytes = 4 << 20;

// The X-Ladle-Note header, trimmed and cut to kMaxNoteBytes (never inside a
// UTF-8 sequence); "" when absent.
std::string NoteOf(const HttpRequest& r) {
  std::string_view note = Trim(r.Header(kNoteHeader));
  if (note.size() > kMaxNoteBytes) {
    size_t end = kMaxNoteBytes;
    while (end > 0 && (static_cast<unsigned char>(note[end]) & 0xC0) == 0x80) --end;
    note = Trim(note.substr(0, end));
  }
  return std::string(note);
}

// JSON string escaping for the hand-written OFREP bodies.
void AppendJsonString(std::string* out, std::string_view s) {
  out->push_back('"');
  for (char c : s) {
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out->append(buf);
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

void AppendValue(std::string* out, const json& v) {
  if (v.is_boolean()) {
    out->append(v.get<bool>() ? "true" : "false");
  } else {
    out->append(v.dump(-1, ' ', false, json::error_handler_t::replace));
  }
}

// {"key":K,"value":V,"reason":R,"variant":X,"metadata":{}}
void AppendSuccess(std::string* out, std::string_view key, const Evaluation& e) {
  out->append("{\"key\":");
  AppendJsonString(out, key);
  out->append(",\"value\":");
  AppendValue(out, *e.value);
  out->append(",\"reason\":\"");
  out->append(ToString(e.reason));
  out->append("\",\"variant\":");
  AppendJsonString(out, e.variant);
  out->append(",\"metadata\":{}}");
}

// OFREP's evaluationFailure / flagNotFound: {"key","errorCode","errorDetails"}.
void AppendFailure(std::string* out, std::string_view key, ErrorCode code,
                   std::string_view details) {
  out->append("{\"key\":");
  AppendJsonString(out, key);
  out->append(",\"errorCode\":\"");
  out->append(ToString(code));
  out->append("\",\"errorDetails\":");
  AppendJsonString(out, details);
  out->push_back('}');
}

// The answers of one io thread, built once per toggle, variant, value and
// reason of one snapshot and then only copied into each response (the copy
// is the one allocation left: HttpResponse owns its body). The snapshot is
// pinned, so the pointers compared below stay valid; a new snapshot empties
// the cache. Bounded: past kMax answers it starts again from empty.
class AnswerCache {
 public:
  const std::string& Get(const std::shared_ptr<const Snapshot>& snap, std::string_view key,
                         const Evaluation& e) {
    if (snap_ != snap || entries_.size() >= kMax) {
      snap_ = snap;
      entries_.clear();
    }
    for (const Entry& entry : entries_) {
      if (entry.value == e.value && entry.reason == e.reason && entry.variant == e.variant &&
          entry.key == key)
        return entry.body;
    }
    Entry& entry = entries_.emplace_back();
    entry.key.assign(key);
    entry.value = e.value;
    entry.reason = e.reason;
    entry.variant = e.variant;  // points into the pinned snapshot (or static storage)
    AppendSuccess(&entry.body, key, e);
    return entry.body;
  }

 private:
  static constexpr size_t kMax = 64;
  struct Entry {
    std::string key;
    const json* value = nullptr;
    Reason reason = Reason::kDefault;
    std::string_view variant;
    std::string body;
  };
  std::shared_ptr<const Snapshot> snap_;
  std::vector<Entry> entries_;
};

HttpResponse JsonText(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.headers.Add("Content-Type", "application/json");
  r.body = std::move(body);
  return r;
}

HttpResponse OfrepFailure(int status, std::string_view key, ErrorCode code,
                          std::string_view details) {
  std::string body;
  AppendFailure(&body, key, code, details);
  return JsonText(status, std::move(body));
}

std::string_view ErrorDetails(ErrorCode code) {
  switch (code) {
    case ErrorCode::kTargetingKeyMissing:
      return "the toggle's rollout needs context.targetingKey";
    default:
      return "evaluation failed";
  }
}

std::string Quoted(int64_t revision) { return "\"" + std::to_string(revision) + "\""; }

HttpResponse ToggleResponse(int status, const Toggle& t) {
  HttpResponse r = HttpResponse::Json(status, ToJson(t));
  r.headers.Set("ETag", Quoted(t.revision));
  return r;
}

// 304 with the ETag when the client's If-None-Match names `etag`
// (IfNoneMatchHolds).
std::optional<HttpResponse> NotModified(const HttpRequest& r, const std::string& etag) {
  if (!r.headers.Has("If-None-Match")) return std::nullopt;  // the usual case: no allocation
  bool holds = false;
  for (std::string_view field : r.headers.GetAll("If-None-Match")) {
    holds = holds || IfNoneMatchHolds(field, etag);  // several fields make one list
  }
  if (!holds) return std::nullopt;
  HttpResponse not_modified;
  not_modified.status = 304;
  not_modified.headers.Set("ETag", etag);
  return not_modified;
}

// {"NAME": [each item's ToJson, ...]}: the body of the list routes.
template <typename T>
json JsonList(const char* name, const std::vector<T>& items) {
  json out = {{name, json::array()}};
  for (const T& item : items) out[name].push_back(ToJson(item));
  return out;
}

// If-Match: "12", 12 or W/"12"; absent or "*" means unconditional.
std::optional<HttpResponse> ParseIfMatch(const HttpRequest& r, std::optional<int64_t>* out) {
  std::string_view v = Trim(r.Header("If-Match"));
  out->reset();
  if (v.empty() || v == "*") return std::nullopt;
  if (StartsWithNoCase(v, "W/")) v.remove_prefix(2);
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  int64_t rev = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), rev);
  if (ec != std::errc() || end != v.data() + v.size()) {
    return HttpResponse::Error(400, "bad_request", "If-Match: expected a revision, got " +
                                                       std::string(r.Header("If-Match")));
  }
  *out = rev;
  return std::nullopt;
}

// What an admin write brings besides its path: ReadAdminWrite fills it.
struct AdminWrite {
  Principal principal;
  std::optional<int64_t> if_match;  // with kWithIfMatch; unset: unconditional
  json body;                        // with kWithBody: a JSON object
  std::string note;                 // the X-Ladle-Note header (NoteOf)
};
enum AdminWriteParts : unsigned { kWithIfMatch = 1, kWithBody = 2 };

// The preamble of every admin write, in the order its errors take: an admin
// token (401, 403), then If-Match and the JSON body when `parts` asks for
// them (400). nullopt with *out filled, or the error response.
std::optional<HttpResponse> ReadAdminWrite(const TokenStore& tokens, const HttpRequest& r,
                                           unsigned parts, AdminWrite* out) {
  if (auto e = RequireAdminRequest(tokens, r, &out->principal)) return e;
  if (parts & kWithIfMatch) {
    if (auto e = ParseIfMatch(r, &out->if_match)) return e;
  }
  if (parts & kWithBody) {
    if (auto e = ParseJsonObjectBody(r, &out->body)) return e;
  }
  out->note = NoteOf(r);
  return std::nullopt;
}

// A toggle write's answer: the toggle written (with its ETag) as `status`,
// or the store's error.
HttpResponse WrittenResponse(const Status& s, int status, const WriteResult& w) {
  if (!s.ok()) return HttpResponse::FromStatus(s);
  return ToggleResponse(status, w.toggle);
}

// Reads the common OFREP body, {"context": {...}} with a flat context of
// strings, numbers, booleans and nulls, with nlohmann's SAX parser straight
// into an EvaluationContext, without a JSON tree (docs/benchmarks.md
// "OFREP"): the single evaluation route's hot path. The context is reused
// between calls: a member seen again keeps its node and string capacity.
// Anything else (invalid JSON, a nested or non-object context, a
// targetingKey that is not a string) makes Read false, and the caller
// parses the whole tree for the same answer and errors as before.
class FlatContextReader : public nlohmann::json_sax<json> {
 public:
  // False: not the common shape; *ctx is then unspecified.
  bool Read(std::string_view body, EvaluationContext* ctx) {
    ctx_ = ctx;
    depth_ = 0;
    in_context_ = false;
    context_seen_ = false;
    member_ = Member::kOther;
    ctx_->has_targeting_key = false;
    ctx_->targeting_key.clear();
    seen_ = 0;
    if (!json::sax_parse(body.begin(), body.end(), this, json::input_format_t::json, true)) return false;
    // Members of an earlier body that this one does not have go.
    if (seen_ != ctx_->attributes.size()) {
      for (auto it = ctx_->attributes.begin(); it != ctx_->attributes.end();) {
        bool keep = std::find(names_.begin(), names_.begin() + seen_, it->first) != names_.begin() + seen_;
        it = keep ? std::next(it) : ctx_->attributes.erase(it);
      }
    }
    return true;
  }

  bool null() override { return Scalar(nullptr); }
  bool boolean(bool b) override { return Scalar(b ? "true" : "false", false, 0); }
  bool number_integer(number_integer_t i) override {
    return Scalar(std::to_string(i), true, static_cast<double>(i));
  }
  bool number_unsigned(number_unsigned_t u) override {
    return Scalar(std::to_string(u), true, static_cast<double>(u));
  }
  bool number_float(number_float_t d, const string_t&) override {
    return Scalar(json(d).dump(), true, d);  // the text ContextFromJson gives it
  }
  bool string(string_t& v) override {
    if (member_ == Member::kTargetingKey) {
      ctx_->targeting_key.assign(v);
      ctx_->has_targeting_key = !v.empty();
      return true;
    }
    return Scalar(v, false, 0);
  }
  bool binary(binary_t&) override { return false; }
  bool start_object(std::size_t) override {
    ++depth_;
    if (depth_ == 2 && member_ == Member::kContext) in_context_ = true;
    else if (depth_ == 1 || !InContext()) return true;
    else return false;  // a nested value in the context: the full parse
    return true;
  }
  bool end_object() override {
    if (depth_ == 2) in_context_ = false;
    --depth_;
    member_ = Member::kOther;
    return true;
  }
  bool start_array(std::size_t) override {
    ++depth_;
    // A top-level array, an array context or one in it: the full parse.
    return depth_ > 1 && member_ != Member::kContext && !InContext();
  }
  bool end_array() override {
    --depth_;
    member_ = Member::kOther;
    return true;
  }
  bool key(string_t& k) override {
    if (depth_ == 1) {
      member_ = k == "context" ? Member::kContext : Member::kOther;
      // A second "context" replaces the first in the tree: the full parse.
      if (member_ == Member::kContext && context_seen_) return false;
      context_seen_ = context_seen_ || member_ == Member::kContext;
    } else if (in_context_ && depth_ == 2) {
      member_ = k == "targetingKey" ? Member::kTargetingKey : Member::kAttribute;
      key_.assign(k);
    } else {
      member_ = Member::kOther;
    }
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;
  }

 private:
  enum class Member { kOther, kContext, kTargetingKey, kAttribute };

  bool InContext() const { return in_context_ && depth_ >= 2; }
  // A value outside any object is not an OFREP body; "context": null is none.
  bool Scalar(std::nullptr_t) {
    if (depth_ == 0) return false;
    if (member_ == Member::kTargetingKey) return false;
    member_ = Member::kOther;
    return true;  // null attributes are left out, as ContextFromJson does
  }
  template <typename Text>
  bool Scalar(Text&& text, bool is_number, double number) {
    if (depth_ == 0 || member_ == Member::kContext || member_ == Member::kTargetingKey) return false;
    if (member_ == Member::kAttribute) {
      auto it = ctx_->attributes.find(key_);
      if (it == ctx_->attributes.end()) it = ctx_->attributes.emplace(key_, AttributeValue{}).first;
      it->second.text.assign(text);
      it->second.is_number = is_number;
      it->second.number = number;
      if (seen_ == names_.size()) names_.emplace_back();
      names_[seen_++].assign(key_);
    }
    member_ = Member::kOther;
    return true;
  }

  EvaluationContext* ctx_ = nullptr;
  int depth_ = 0;
  bool in_context_ = false;
  bool context_seen_ = false;
  Member member_ = Member::kOther;
  std::string key_;                 // the context member being read
  std::vector<std::string> names_;  // the attributes of this body: [0, seen_)
  size_t seen_ = 0;
};

// OFREP's request body {"context": {...}}; an empty body is an empty context.
// Fills *canonical with the context's sorted compact JSON (for the ETag).
std::optional<std::pair<ErrorCode, std::string>> ParseOfrepBody(
    const std::string& body, EvaluationContext* ctx, std::string* canonical) {
  if (Trim(body).empty()) return std::nullopt;
  if (JsonDeeperThan(body, kMaxJsonDepth)) {
    return std::make_pair(ErrorCode::kInvalidContext,
                          "the body nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  }
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return std::make_pair(ErrorCode::kParseError, std::string("invalid JSON"));
  if (!j.is_object()) {
    return std::make_pair(ErrorCode::kInvalidContext, std::string("the body must be an object"));
  }
  auto it = j.find("context");
  if (it == j.end() || it->is_null()) return std::nullopt;
  Status s = ContextFromJson(*it, ctx);
  if (!s.ok()) return std::make_pair(ErrorCode::kInvalidContext, "context: " + s.message());
  if (canonical) *canonical = it->dump(-1, ' ', false, json::error_handler_t::replace);
  return std::nullopt;
}

uint64_t Fnv1a(uint64_t h, std::string_view s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// A query parameter that must be an integer in [min, max]; absent: fallback.
// The 400 names the parameter.
std::optional<HttpResponse> QueryInt(const HttpRequest& r, std::string_view name, int64_t min,
                                     int64_t max, int64_t fallback, int64_t* out) {
  *out = fallback;
  if (!r.query.Has(name)) return std::nullopt;
  std::string_view text = r.Query(name);
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || v < min ||
      v > max) {
    return HttpResponse::Error(400, "bad_request",
                               std::string(name) + ": expected an integer from " +
                                   std::to_string(min) + " to " + std::to_string(max) +
                                   ", got '" + std::string(text) + "'");
  }
  *out = v;
  return std::nullopt;
}

// One entity-tag of an If-None-Match list at *p (RFC 9110 section 8.8.3:
// [W/] DQUOTE *etagc DQUOTE): its opaque part, quotes included, and *p moves
// past it. False when the text there is not an entity-tag.
bool NextEntityTag(std::string_view* p, std::string_view* opaque) {
  std::string_view v = *p;
  if (v.size() >= 2 && v[0] == 'W' && v[1] == '/') v.remove_prefix(2);
  if (v.empty() || v.front() != '"') return false;
  size_t close = v.find('"', 1);
  if (close == v.npos) return false;
  *opaque = v.substr(0, close + 1);
  *p = v.substr(close + 1);
  return true;
}

std::string_view OpaqueTag(std::string_view etag) {
  return etag.size() >= 2 && etag[0] == 'W' && etag[1] == '/' ? etag.substr(2) : etag;
}

int ReasonIndex(Reason r) { return static_cast<int>(r); }

}  // namespace

bool IfNoneMatchHolds(std::string_view header, std::string_view etag) {
  std::string_view rest = Trim(header);
  if (rest == "*") return true;
  const std::string_view want = OpaqueTag(etag);
  while (!rest.empty()) {
    std::string_view opaque;
    if (!NextEntityTag(&rest, &opaque)) return false;  // malformed: no match, a full answer
    if (opaque == want) return true;                    // weak comparison
    rest = Trim(rest);
    if (rest.empty()) break;
    if (rest.front() != ',') return false;
    while (!rest.empty() && (rest.front() == ',' || rest.front() == ' ' || rest.front() == '\t')) {
      rest.remove_prefix(1);
    }
  }
  return false;
}

std::string BulkEtag(int64_t revision, std::string_view environment,
                     std::string_view canonical_context) {
  uint64_t h = 14695981039346656037ull;
  h = Fnv1a(h, std::to_string(revision));
  h = Fnv1a(h, std::string_view("\0", 1));
  h = Fnv1a(h, environment);
  h = Fnv1a(h, std::string_view("\0", 1));
  h = Fnv1a(h, canonical_context);
  char buf[40];
  std::snprintf(buf, sizeof buf, "\"%lld-%016llx\"", static_cast<long long>(revision),
                static_cast<unsigned long long>(h));
  return buf;
}

ToggleApi::ToggleApi(ToggleStore& store, TokenStore& tokens, MetricsRegistry* metrics,
                     Options options)
    : store_(store),
      tokens_(tokens),
      metrics_(metrics),
      options_(std::move(options)),
      hub_(options_.sse, [this](uint64_t after, const SseHub::EmitFn& emit) {
        Replay(after, std::nullopt, emit);
      }) {
  if (metrics_) {
    revision_gauge_ = &metrics_->GetGauge("ladle_toggles_revision",
                                          "The toggle store's current global revision");
    revision_gauge_->Set(store_.CurrentRevision());
  }
  listener_id_ = store_.OnChange([this](const AuditEvent& e) { OnStoreChange(e); });
}

ToggleApi::~ToggleApi() {
  store_.RemoveListener(listener_id_);
  hub_.CloseAll();
  std::lock_guard<std::mutex> lock(env_hubs_mu_);
  for (const auto& [env, hub] : env_hubs_) hub->CloseAll();
}

void ToggleApi::Register(Router* router) {
  router->Add("POST", "/ofrep/v1/evaluate/flags/{key}", this, &ToggleApi::EvaluateOne);
  router->Add("POST", "/ofrep/v1/evaluate/flags", this, &ToggleApi::EvaluateBulk);
  router->Add("GET", "/api/v1/toggles", this, &ToggleApi::ListToggles);
  router->Add("POST", "/api/v1/toggles", this, &ToggleApi::CreateToggle);
  router->Add("GET", "/api/v1/toggles/{key}", this, &ToggleApi::GetToggle);
  router->Add("PATCH", "/api/v1/toggles/{key}", this, &ToggleApi::PatchToggle);
  router->Add("DELETE", "/api/v1/toggles/{key}", this, &ToggleApi::DeleteToggle);
  router->Add("PUT", "/api/v1/toggles/{key}/environments/{env}", this, &ToggleApi::PutEnvironment);
  router->Add("POST", "/api/v1/toggles/{key}/environments/{env}/on", this, &ToggleApi::FlipOn);
  router->Add("POST", "/api/v1/toggles/{key}/environments/{env}/off", this, &ToggleApi::FlipOff);
  router->Add("GET", "/api/v1/toggles/{key}/history", this, &ToggleApi::History);
  router->Add("GET", "/api/v1/events", this, &ToggleApi::Events);
  router->Add("GET", "/api/v1/stream", this, &ToggleApi::Stream);
  router->Add("GET", "/api/v1/tokens", this, &ToggleApi::ListTokens);
  router->Add("POST", "/api/v1/tokens", this, &ToggleApi::CreateToken);
  router->Add("DELETE", "/api/v1/tokens/{name}", this, &ToggleApi::RevokeToken);
  router->Add("GET", "/healthz", this, &ToggleApi::Health);
  router->Add("GET", "/metrics", this, &ToggleApi::Metrics);
}

std::optional<HttpResponse> ToggleApi::Authenticate(const HttpRequest& r, bool ofrep,
                                                    Principal* p) const {
  return AuthenticateRequest(tokens_, r, ofrep, p);
}

std::optional<HttpResponse> ToggleApi::RequireAdmin(const HttpRequest& r, Principal* p) const {
  return RequireAdminRequest(tokens_, r, p);
}

std::optional<HttpResponse> ToggleApi::EvaluationEnvironment(const HttpRequest& r,
                                                             const Principal& p,
                                                             std::string_view* env) const {
  std::string_view named = Trim(r.Header(kEnvironmentHeader));
  if (p.role == Role::kAdmin) {
    *env = named.empty() ? kProduction : named;
    return std::nullopt;
  }
  if (!named.empty() && named != p.environment) {
    return HttpResponse::Error(403, "forbidden",
                               r.method + " " + r.path + ": " + std::string(kEnvironmentHeader) +
                                   " names '" + std::string(named) + "', but token '" + p.name +
                                   "' is bound to environment '" + p.environment + "'");
  }
  *env = p.environment;
  return std::nullopt;
}

// ---- OFREP ----

void ToggleApi::CountEvaluation(std::string_view key, Reason reason) {
  if (!metrics_) return;
  {
    std::shared_lock<std::shared_mutex> lock(counters_mu_);
    auto it = counters_.find(key);
    if (it != counters_.end()) {
      it->second[ReasonIndex(reason)]->Inc();
      return;
    }
  }
  // First evaluation of this key: create its series once, off the fast path.
  ReasonCounters c{};
  for (Reason x : {Reason::kStatic, Reason::kTargetingMatch, Reason::kSplit, Reason::kDefault,
                   Reason::kDisabled, Reason::kError}) {
    c[ReasonIndex(x)] = &metrics_->GetCounter(
        "ladle_toggle_evaluations_total", "OFREP evaluations by toggle and reason",
        {{"key", std::string(key)}, {"reason", std::string(ToString(x))}});
  }
  std::unique_lock<std::shared_mutex> lock(counters_mu_);
  auto it = counters_.emplace(std::string(key), c).first;
  it->second[ReasonIndex(reason)]->Inc();
}

HttpResponse ToggleApi::EvaluateOne(const HttpRequest& r) {
  Principal p;
  if (auto e = Authenticate(r, true, &p)) return *e;
  std::string_view env;
  if (auto e = EvaluationEnvironment(r, p, &env)) return *e;
  std::string_view key = r.Param("key");
  // One context and reader per io thread, reused: the common body costs no
  // JSON tree (FlatContextReader); any other takes the full parse.
  thread_local FlatContextReader reader;
  thread_local EvaluationContext ctx;
  ctx.now_micros.reset();
  if (Trim(r.body).empty()) {
    ctx = EvaluationContext();
  } else if (JsonDeeperThan(r.body, kMaxJsonDepth) || !reader.Read(r.body, &ctx)) {
    ctx = EvaluationContext();
    if (auto err = ParseOfrepBody(r.body, &ctx, nullptr)) {
      return OfrepFailure(400, key, err->first, err->second);
    }
  }
  std::shared_ptr<const Snapshot> snap = store_.GetSnapshot();
  const CompiledToggle* t = snap->Find(key);
  if (!t) {
    return OfrepFailure(404, key, ErrorCode::kFlagNotFound,
                        "no toggle '" + std::string(key) + "'");
  }
  Evaluation e = t->Evaluate(env, ctx);
  CountEvaluation(key, e.reason);
  if (e.error) return OfrepFailure(400, key, *e.error, ErrorDetails(*e.error));
  thread_local AnswerCache answers;
  return JsonText(200, answers.Get(snap, key, e));
}

HttpResponse ToggleApi::EvaluateBulk(const HttpRequest& r) {
  Principal p;
  if (auto e = Authenticate(r, true, &p)) return *e;
  std::string_view env;
  if (auto e = EvaluationEnvironment(r, p, &env)) return *e;
  EvaluationContext ctx;
  std::string canonical = "{}";
  if (auto err = ParseOfrepBody(r.body, &ctx, &canonical)) {
    json body = {{"errorCode", ToString(err->first)}, {"errorDetails", err->second}};
    return HttpResponse::Json(400, body);
  }
  std::shared_ptr<const Snapshot> snap = store_.GetSnapshot();
  std::string etag = BulkEtag(snap->revision(), env, canonical);
  if (auto e = NotModified(r, etag)) return *e;
  std::string body = "{\"flags\":[";
  bool first = true;
  for (const CompiledToggle& t : snap->toggles()) {
    if (!first) body.push_back(',');
    first = false;
    Evaluation e = t.Evaluate(env, ctx);
    CountEvaluation(t.key(), e.reason);
    if (e.error) AppendFailure(&body, t.key(), *e.error, ErrorDetails(*e.error));
    else AppendSuccess(&body, t.key(), e);
  }
  body.append("]}");
  HttpResponse resp = JsonText(200, std::move(body));
  resp.headers.Set("ETag", etag);
  resp.headers.Set("Cache-Control", "private, no-cache");
  return resp;
}

// ---- toggles ----

HttpResponse ToggleApi::ListToggles(const HttpRequest& r) {
  Principal p;
  if (auto e = Authenticate(r, false, &p)) return *e;
  std::optional<std::string> env;
  if (r.query.Has("environment")) env = std::string(r.Query("environment"));
  if (p.role == Role::kClient) {
    if (env && *env != p.environment) {
      return HttpResponse::Error(403, "forbidden",
                                 "GET /api/v1/toggles?environment=" + *env + ": token '" +
                                     p.name + "' may only read environment '" +
                                     p.environment + "'");
    }
    env = p.environment;
  }
  // A client polling with the last ETag gets 304 while nothing changed. The
  // revision is read before the list, so a change in between makes the ETag
  // older than the body: the next poll fetches again rather than miss it.
  int64_t rev = store_.CurrentRevision();
  std::string etag = "\"" + std::to_string(rev) + "-" + (env ? *env : std::string("*")) + "\"";
  std::vector<Toggle> list;
  Status s = store_.List(env, &list);
  if (!s.ok()) return HttpResponse::FromStatus(s);
  if (auto e = NotModified(r, etag)) return *e;
  json out = JsonList("toggles", list);
  out["revision"] = rev;
  HttpResponse resp = HttpResponse::Json(200, out);
  resp.headers.Set("ETag", etag);
  return resp;
}

HttpResponse ToggleApi::CreateToggle(const HttpRequest& r) {
  AdminWrite a;
  if (auto e = ReadAdminWrite(tokens_, r, kWithBody, &a)) return *e;
  Toggle t;
  Status s = ParseToggle(a.body, &t);
  WriteResult w;
  if (s.ok()) s = store_.Create(t, a.principal.name, &w, a.note);
  return WrittenResponse(s, 201, w);
}

HttpResponse ToggleApi::GetToggle(const HttpRequest& r) {
  Principal p;
  if (auto e = Authenticate(r, false, &p)) return *e;
  std::optional<std::string> env;
  if (p.role == Role::kClient) env = p.environment;
  Toggle t;
  Status s = store_.Get(std::string(r.Param("key")), env, &t);
  if (!s.ok()) return HttpResponse::FromStatus(s);
  return ToggleResponse(200, t);
}

HttpResponse ToggleApi::PatchToggle(const HttpRequest& r) {
  AdminWrite a;
  if (auto e = ReadAdminWrite(tokens_, r, kWithIfMatch | kWithBody, &a)) return *e;
  ToggleFields fields;
  Status s = ParseToggleFields(a.body, &fields);
  WriteResult w;
  if (s.ok()) {
    s = store_.Patch(std::string(r.Param("key")), fields, a.if_match, a.principal.name, &w,
                     a.note);
  }
  return WrittenResponse(s, 200, w);
}

HttpResponse ToggleApi::DeleteToggle(const HttpRequest& r) {
  AdminWrite a;
  if (auto e = ReadAdminWrite(tokens_, r, kWithIfMatch, &a)) return *e;
  Status s = store_.Delete(std::string(r.Param("key")), a.if_match, a.principal.name, a.note);
  if (!s.ok()) return HttpResponse::FromStatus(s);
  return HttpResponse::NoContent();
}

HttpResponse ToggleApi::PutEnvironment(const HttpRequest& r) {
  AdminWrite a;
  if (auto e = ReadAdminWrite(tokens_, r, kWithIfMatch | kWithBody, &a)) return *e;
  EnvironmentConfig config;
  Status s = ParseEnvironmentConfig(a.body, &config);
  WriteResult w;
  if (s.ok()) {
    s = store_.SetEnvironment(std::string(r.Param("key")), std::string(r.Param("env")), config,
                              a.if_match, a.principal.name, &w, a.note);
  }
  return WrittenResponse(s, 200, w);
}

HttpResponse ToggleApi::Flip(const HttpRequest& r, bool on) {
  AdminWrite a;
  if (auto e = ReadAdminWrite(tokens_, r, kWithIfMatch, &a)) return *e;
  WriteResult w;
  Status s = store_.Flip(std::string(r.Param("key")), std::string(r.Param("env")), on,
                         a.if_match, a.principal.name, &w, a.note);
  return WrittenResponse(s, 200, w);
}

// A page of the audit trail, as GET /api/v1/events and .../history answer it
// (docs/toggles.md "HTTP API"): ?after=REV (default 0) and ?limit=N (default
// 100, at most 1000). The page is written event by event while the store
// reads it, and stops early past kMaxPageBytes, so one request holds at most
// one page, whatever the audit trail holds. "next" is the target of the next
// page, null on the last one.
std::optional<HttpResponse> ToggleApi::EventPage(const HttpRequest& r, const Principal& p,
                                                 std::optional<std::string> key,
                                                 std::string* body) {
  EventQuery q;
  q.key = std::move(key);
  if (auto e = QueryInt(r, "after", 0, INT64_MAX, 0, &q.after)) return e;
  int64_t limit = 0;
  if (auto e = QueryInt(r, "limit", 1, kMaxEventPage, kDefaultEventPage, &limit)) return e;
  q.limit = limit + 1;  // one more tells whether there is a next page
  if (p.role == Role::kClient) q.environment = p.environment;
  body->assign("{\"events\":[");
  int64_t count = 0, last = q.after;
  bool more = false;
  Status s = store_.ScanEvents(q, [&](const AuditEvent& e) {
    if (count == limit || (count > 0 && body->size() > kMaxPageBytes)) {
      more = true;
      return false;
    }
    if (count++ > 0) body->push_back(',');
    body->append(ToJson(e).dump(-1, ' ', false, json::error_handler_t::replace));
    last = e.revision;
    return true;
  });
  if (!s.ok()) return HttpResponse::FromStatus(s);
  body->append("],\"next\":");
  if (more) {
    std::string next = std::string(r.path) + "?after=" + std::to_string(last) +
                       "&limit=" + std::to_string(limit);
    AppendJsonString(body, next);
  } else {
    body->append("null");
  }
  return std::nullopt;
}

HttpResponse ToggleApi::History(const HttpRequest& r) {
  Principal p;
  if (auto e = Authenticate(r, false, &p)) return *e;
  std::string key(r.Param("key"));
  bool exists = false;
  Status s = store_.HasHistory(key, &exists);
  if (!s.ok()) return HttpResponse::FromStatus(s);
  if (!exists) return HttpResponse::FromStatus(Status::NotFound("toggle \"" + key + "\" not found"));
  std::string body;
  if (auto e = EventPage(r, p, key, &body)) return *e;
  body.push_back('}');
  return JsonText(200, std::move(body));
}

HttpResponse ToggleApi::Events(const HttpRequest& r) {
  Principal p;
  if (auto e = Authenticate(r, false, &p)) return *e;
  const int64_t revision = store_.CurrentRevision();
  std::string body;
  if (auto e = EventPage(r, p, std::nullopt, &body)) return *e;
  body.append(",\"revision\":" + std::to_string(revision) + "}");
  return JsonText(200, std::move(body));
}

// A client token's stream carries only what its environment may see; each
// environment has its own hub (created on its first subscriber), admins
// share hub_.
HttpResponse ToggleApi::Stream(const HttpRequest& r) {
  Principal p;
  if (auto e = Authenticate(r, false, &p)) return *e;
  if (p.role != Role::kClient) return hub_.Subscribe(r);
  return HubFor(p.environment).Subscribe(r);
}

SseHub& ToggleApi::HubFor(const std::string& environment) {
  std::lock_guard<std::mutex> lock(env_hubs_mu_);
  std::unique_ptr<SseHub>& hub = env_hubs_[environment];
  if (!hub) {
    hub = std::make_unique<SseHub>(options_.sse, [this, environment](uint64_t after,
                                                                     const SseHub::EmitFn& emit) {
      Replay(after, environment, emit);
    });
  }
  return *hub;
}

void ToggleApi::Replay(uint64_t after, const std::optional<std::string>& environment,
                       const SseHub::EmitFn& emit) {
  EventQuery q;
  q.after = static_cast<int64_t>(after);
  q.limit = options_.max_replay + 1;
  q.environment = environment;
  std::vector<AuditEvent> events;
  Status s = store_.ScanEvents(q, [&](const AuditEvent& e) {
    events.push_back(e);
    return true;
  });
  if (!s.ok() || static_cast<int>(events.size()) > options_.max_replay) {
    // Too far behind (or unreadable): tell the client to re-fetch everything.
    json data = {{"revision", store_.CurrentRevision()}};
    emit(SseEvent{static_cast<uint64_t>(store_.CurrentRevision()), "reset", data.dump()});
    return;
  }
  for (const AuditEvent& e : events) {
    emit(SseEvent{static_cast<uint64_t>(e.revision), "change",
                  ToJson(e).dump(-1, ' ', false, json::error_handler_t::replace)});
  }
}

// Runs on the writing thread: only formats and queues (SseHub never blocks).
void ToggleApi::OnStoreChange(const AuditEvent& e) {
  if (revision_gauge_) revision_gauge_->Set(e.revision);
  hub_.Publish(static_cast<uint64_t>(e.revision), "change",
               ToJson(e).dump(-1, ' ', false, json::error_handler_t::replace));
  std::lock_guard<std::mutex> lock(env_hubs_mu_);
  for (const auto& [env, hub] : env_hubs_) {
    if (!VisibleIn(e, env)) continue;
    hub->Publish(static_cast<uint64_t>(e.revision), "change",
                 ToJson(ForEnvironment(e, env)).dump(-1, ' ', false,
                                                     json::error_handler_t::replace));
  }
}

// ---- tokens, health, metrics ----

HttpResponse ToggleApi::ListTokens(const HttpRequest& r) {
  Principal p;
  if (auto e = RequireAdmin(r, &p)) return *e;
  std::vector<TokenInfo> list;
  Status s = tokens_.List(&list);
  if (!s.ok()) return HttpResponse::FromStatus(s);
  return HttpResponse::Json(200, JsonList("tokens", list));
}

HttpResponse ToggleApi::CreateToken(const HttpRequest& r) {
  AdminWrite a;
  if (auto e = ReadAdminWrite(tokens_, r, kWithBody, &a)) return *e;
  json& body = a.body;
  std::string name, role_text = "client", env;
  for (const auto& [field, value] : body.items()) {
    if (field != "name" && field != "role" && field != "environment") {
      return HttpResponse::Error(400, "bad_request", field + ": unknown field");
    }
    if (!value.is_string()) return HttpResponse::Error(400, "bad_request", field + ": must be a string");
  }
  if (body.contains("name")) name = body["name"].get<std::string>();
  if (body.contains("role")) role_text = body["role"].get<std::string>();
  if (body.contains("environment")) env = body["environment"].get<std::string>();
  if (name.empty()) return HttpResponse::Error(400, "bad_request", "name: required");
  Role role;
  Status s = ParseRole(role_text, &role);
  std::string secret;
  TokenInfo info;
  if (s.ok()) s = tokens_.Create(name, role, env, &secret, &info);
  if (!s.ok()) return HttpResponse::FromStatus(s);
  json out = ToJson(info);
  out["secret"] = secret;
  return HttpResponse::Json(201, out);
}

HttpResponse ToggleApi::RevokeToken(const HttpRequest& r) {
  Principal p;
  if (auto e = RequireAdmin(r, &p)) return *e;
  Status s = tokens_.Revoke(std::string(r.Param("name")));
  if (!s.ok()) return HttpResponse::FromStatus(s);
  return HttpResponse::NoContent();
}

HttpResponse ToggleApi::Health(const HttpRequest&) {
  json out = {{"status", "ok"}, {"revision", store_.CurrentRevision()}};
  return HttpResponse::Json(200, out);
}

// Unauthenticated, as Prometheus scrapes usually are: it shows counts only.
HttpResponse ToggleApi::Metrics(const HttpRequest&) {
  if (!metrics_) return HttpResponse::Text(200, "");
  revision_gauge_->Set(store_.CurrentRevision());
  std::string text = metrics_->Render();
  RenderProcessMetrics(&text);
  return HttpResponse::Text(200, std::move(text), kPrometheusContentType);
}

}  // namespace ladle::toggles
