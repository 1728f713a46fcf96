#include "core/http.h"

#include <cctype>
#include <condition_variable>

#include <nlohmann/json.hpp>

namespace ladle {
namespace {

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// Splits "a=1&b=2" into decoded pairs; "a" alone has an empty value.
bool ParseQuery(std::string_view query, HttpFields* out) {
  std::string name, value;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string_view raw_value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    if (!PercentDecode(pair.substr(0, eq), true, &name) ||
        !PercentDecode(raw_value, true, &value)) {
      return false;
    }
    out->Add(name, value);
  }
  return true;
}

// The status each Status code stands for at the HTTP edge, with its error CODE.
std::pair<int, const char*> HttpErrorFor(Code code) {
  switch (code) {
    case Code::kInvalid: return {400, "bad_request"};
    case Code::kUnauthorized: return {401, "unauthorized"};
    case Code::kPermission: return {403, "forbidden"};
    case Code::kNotFound: return {404, "not_found"};
    case Code::kConflict: return {409, "conflict"};
    case Code::kPrecondition: return {412, "precondition_failed"};
    case Code::kTooLarge: return {413, "payload_too_large"};
    case Code::kUnavailable: return {503, "unavailable"};
    case Code::kCancelled: return {503, "cancelled"};
    default: return {500, "internal"};
  }
}

}  // namespace

// ---- HttpFields ----

bool HttpFields::Matches(const std::string& a, std::string_view b) const {
  if (a.size() != b.size()) return false;
  if (!ignore_case_) return a == b;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

const std::string* HttpFields::Find(std::string_view name) const {
  for (const Entry& e : *this) {
    if (Matches(e.first, name)) return &e.second;
  }
  return nullptr;
}

std::string_view HttpFields::Get(std::string_view name) const {
  const std::string* v = Find(name);
  return v ? std::string_view(*v) : std::string_view();
}

std::vector<std::string_view> HttpFields::GetAll(std::string_view name) const {
  std::vector<std::string_view> all;
  for (const Entry& e : *this) {
    if (Matches(e.first, name)) all.push_back(e.second);
  }
  return all;
}

void HttpFields::Add(std::string_view name, std::string_view value) {
  if (size_ == entries_.size()) entries_.emplace_back();
  // assign() reuses the spare entry's capacity.
  entries_[size_].first.assign(name.data(), name.size());
  entries_[size_].second.assign(value.data(), value.size());
  ++size_;
}

void HttpFields::Set(std::string_view name, std::string_view value) {
  Remove(name);
  Add(name, value);
}

void HttpFields::Remove(std::string_view name) {
  size_t kept = 0;
  for (size_t i = 0; i < size_; ++i) {
    if (Matches(entries_[i].first, name)) continue;
    if (kept != i) std::swap(entries_[kept], entries_[i]);
    ++kept;
  }
  size_ = kept;
}

// ---- HttpRequest ----

HttpRequest HttpRequest::For(std::string method, std::string_view target, std::string body) {
  HttpRequest request;
  request.method = std::move(method);
  request.SetTarget(target);
  request.body = std::move(body);
  return request;
}

std::string_view HttpRequest::OriginForm(std::string_view target) {
  // Absolute form: drop "scheme://authority".
  size_t scheme = target.find("://");
  if (!target.empty() && target[0] != '/' && scheme != std::string_view::npos) {
    size_t slash = target.find('/', scheme + 3);
    target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
  }
  return target;
}

bool HttpRequest::SetTarget(std::string_view raw) {
  target.assign(raw.data(), raw.size());
  path.clear();
  query.Clear();
  std::string_view rest = OriginForm(raw);
  size_t q = rest.find('?');
  if (!PercentDecode(rest.substr(0, q), false, &path)) return false;
  if (q != std::string_view::npos && !ParseQuery(rest.substr(q + 1), &query)) return false;
  return true;
}

void HttpRequest::Reset() {
  method.clear();
  target.clear();
  path.clear();
  query.Clear();
  headers.Clear();
  body.clear();
  version = 11;
  params.Clear();
  route = std::string_view();
  route_id = -1;
}

// ---- HttpResponse ----

HttpResponse HttpResponse::Json(int status, const nlohmann::json& body) {
  HttpResponse response;
  response.status = status;
  response.headers.Add("Content-Type", "application/json");
  // Replace invalid UTF-8 rather than throw: a response must always render.
  response.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return response;
}

HttpResponse HttpResponse::Text(int status, std::string body, std::string_view content_type) {
  HttpResponse response;
  response.status = status;
  response.headers.Add("Content-Type", content_type);
  response.body = std::move(body);
  return response;
}

HttpResponse HttpResponse::NoContent() {
  HttpResponse response;
  response.status = 204;
  return response;
}

HttpResponse HttpResponse::Error(int status, std::string_view code, std::string_view message) {
  return Json(status, nlohmann::json{{"error", code}, {"message", message}});
}

HttpResponse HttpResponse::FromStatus(const Status& status) {
  auto [http_status, code] = HttpErrorFor(status.code());
  return Error(http_status, code, status.message());
}

HttpResponse HttpResponse::Stream(std::shared_ptr<StreamSource> source,
                                  std::string_view content_type, StreamOptions options) {
  HttpResponse response;
  response.headers.Add("Content-Type", content_type);
  response.stream = std::move(source);
  response.stream_options = std::move(options);
  return response;
}

namespace {
class LambdaSource : public StreamSource {
 public:
  explicit LambdaSource(std::function<void(std::shared_ptr<StreamWriter>)> start)
      : start_(std::move(start)) {}
  void Start(std::shared_ptr<StreamWriter> writer) override { start_(std::move(writer)); }

 private:
  std::function<void(std::shared_ptr<StreamWriter>)> start_;
};
}  // namespace

HttpResponse HttpResponse::Stream(std::function<void(std::shared_ptr<StreamWriter>)> start,
                                  std::string_view content_type, StreamOptions options) {
  return Stream(std::make_shared<LambdaSource>(std::move(start)), content_type,
                std::move(options));
}

HttpResponse HttpResponse::Deferred(std::function<void(std::shared_ptr<Responder>)> start) {
  HttpResponse response;
  response.deferred = std::move(start);
  return response;
}

namespace {
// Hands a deferred response's answer to AwaitResponse.
class WaitingResponder : public Responder {
 public:
  void Complete(HttpResponse response) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (done_) return;
    done_ = true;
    response_ = std::move(response);
    cv_.notify_all();
  }
  bool Wait(std::chrono::milliseconds timeout, HttpResponse* out) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, timeout, [this] { return done_; })) {
      done_ = true;  // a late answer is dropped
      return false;
    }
    *out = std::move(response_);
    return true;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  HttpResponse response_;
};
}  // namespace

std::optional<HttpResponse> ParseJsonObjectBody(const HttpRequest& r, nlohmann::json* out) {
  if (JsonDeeperThan(r.body, kMaxJsonDepth)) {
    return HttpResponse::Error(400, "bad_request", "the request body nests deeper than " +
                                                       std::to_string(kMaxJsonDepth) + " levels");
  }
  *out = nlohmann::json::parse(r.body, nullptr, false);
  if (out->is_discarded()) {
    return HttpResponse::Error(400, "bad_request", "invalid JSON in the request body");
  }
  if (!out->is_object()) {
    return HttpResponse::Error(400, "bad_request", "the request body must be a JSON object");
  }
  return std::nullopt;
}

HttpResponse AwaitResponse(HttpResponse response, std::chrono::milliseconds timeout) {
  if (!response.is_deferred()) return response;
  auto responder = std::make_shared<WaitingResponder>();
  try {
    response.deferred(responder);
  } catch (const std::exception& e) {
    responder->Complete(HttpResponse::Error(500, "internal", std::string("internal error: ") + e.what()));
  }
  HttpResponse answer;
  if (!responder->Wait(timeout, &answer)) {
    return HttpResponse::Error(504, "timeout", "no answer within " + std::to_string(timeout.count()) + " ms");
  }
  return answer;
}

}  // namespace ladle
