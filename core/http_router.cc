// Router: (method, pattern) -> handler. See core/http.h for the contract.
#include "core/http.h"

#include <algorithm>
#include <exception>
#include <string>

namespace ladle {
namespace {

// Patterns and paths have at most this many segments; deeper paths are 404.
constexpr size_t kMaxSegments = 32;

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// The raw (still percent-encoded) path of a request-target, as SetTarget reads it.
std::string_view RawPath(std::string_view target) {
  target = HttpRequest::OriginForm(target);
  return target.substr(0, target.find('?'));
}

// "/a/b" -> {"a", "b"}; "/" -> {""}. False when not absolute or too deep.
bool Split(std::string_view path, std::vector<std::string_view>* parts) {
  parts->clear();
  if (path.empty() || path[0] != '/') return false;
  path.remove_prefix(1);
  while (true) {
    if (parts->size() == kMaxSegments) return false;
    size_t slash = path.find('/');
    parts->push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) return true;
    path.remove_prefix(slash + 1);
  }
}

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}

}  // namespace

bool Router::Parse(std::string_view pattern, std::vector<Segment>* segments) {
  std::vector<std::string_view> parts;
  if (!Split(pattern, &parts)) return false;
  for (size_t i = 0; i < parts.size(); ++i) {
    std::string_view part = parts[i];
    bool braced = part.size() >= 2 && part.front() == '{' && part.back() == '}';
    if (!braced) {
      if (part.find_first_of("{}%?#") != std::string_view::npos) return false;
      segments->push_back({Segment::kLiteral, std::string(part)});
      continue;
    }
    std::string_view name = part.substr(1, part.size() - 2);
    Segment::Kind kind = Segment::kParam;
    if (name.size() > 3 && name.substr(name.size() - 3) == "...") {
      if (i + 1 != parts.size()) return false;  // the rest is only ever last
      kind = Segment::kRest;
      name.remove_suffix(3);
    }
    if (name.empty() || !std::all_of(name.begin(), name.end(), IsNameChar)) return false;
    segments->push_back({kind, std::string(name)});
  }
  return true;
}

// Literal before {param} before {rest...}, at the first segment that differs.
bool Router::MoreSpecific(const Route& a, const Route& b) {
  return std::lexicographical_compare(
      a.segments.begin(), a.segments.end(), b.segments.begin(), b.segments.end(),
      [](const Segment& x, const Segment& y) { return x.kind < y.kind; });
}

void Router::Add(std::string_view method, std::string_view pattern, HttpHandler handler) {
  Route route{std::string(method), std::string(pattern), {}, std::move(handler),
              static_cast<int>(routes_.size())};
  std::string where = route.method + " " + route.pattern;
  if (method.empty() || !Parse(pattern, &route.segments)) {
    if (status_.ok()) status_ = Status::Internal("malformed route " + where);
    return;
  }
  for (const Route& other : routes_) {
    if (other.method == route.method && other.pattern == route.pattern && status_.ok()) {
      status_ = Status::Internal("duplicate route " + where);
    }
  }
  auto at = std::upper_bound(routes_.begin(), routes_.end(), route, MoreSpecific);
  by_id_.push_back(0);
  routes_.insert(at, std::move(route));
  for (size_t i = 0; i < routes_.size(); ++i) by_id_[routes_[i].id] = i;
}

bool Router::Match(const Route& route, const std::vector<std::string_view>& parts,
                   HttpRequest* request) const {
  const std::vector<Segment>& segs = route.segments;
  bool rest = !segs.empty() && segs.back().kind == Segment::kRest;
  if (rest ? parts.size() < segs.size() : parts.size() != segs.size()) return false;
  std::string decoded;
  for (size_t i = 0; i < segs.size(); ++i) {
    const Segment& seg = segs[i];
    if (seg.kind == Segment::kLiteral) {
      if (parts[i] != seg.text) return false;
      continue;
    }
    if (parts[i].empty()) return false;
    if (!request) continue;
    std::string value;
    size_t last = seg.kind == Segment::kRest ? parts.size() : i + 1;
    for (size_t j = i; j < last; ++j) {
      if (!PercentDecode(parts[j], false, &decoded)) return false;
      if (j > i) value += '/';
      value += decoded;
    }
    request->params.Add(seg.text, value);
  }
  return true;
}

HttpResponse Router::Run(const Route& route, const std::vector<std::string_view>& parts,
                         HttpRequest& request) const {
  request.params.Clear();
  if (!Match(route, parts, &request)) {
    return HttpResponse::Error(400, "bad_request", "malformed percent-escape in the path");
  }
  request.route = route.pattern;
  request.route_id = route.id;
  try {
    return route.handler(request);
  } catch (const std::exception& e) {
    return HttpResponse::Error(500, "internal", std::string("internal error: ") + e.what());
  } catch (...) {
    return HttpResponse::Error(500, "internal", "internal error");
  }
}

HttpResponse Router::Dispatch(HttpRequest& request) const {
  request.params.Clear();
  request.route = std::string_view();
  request.route_id = -1;
  // Reused per thread: splitting the path then allocates nothing once warm.
  thread_local std::vector<std::string_view> parts;
  std::string_view raw = request.target.empty() ? request.path : RawPath(request.target);
  if (!Split(raw, &parts)) return NotFound(request);

  bool head = request.method == "HEAD";
  bool path_known = false;
  const Route* get_for_head = nullptr;
  for (const Route& route : routes_) {
    if (!Match(route, parts, nullptr)) continue;
    path_known = true;
    if (route.method == request.method) {
      return head ? DropBody(Run(route, parts, request)) : Run(route, parts, request);
    }
    if (head && route.method == "GET" && !get_for_head) get_for_head = &route;
  }
  if (get_for_head) return DropBody(Run(*get_for_head, parts, request));
  if (!path_known) return NotFound(request);
  return MethodNotAllowed(request, parts);
}

HttpResponse Router::NotFound(const HttpRequest& request) {
  return HttpResponse::Error(404, "not_found", "no route for " + request.method + " " + request.path);
}

HttpResponse Router::MethodNotAllowed(const HttpRequest& request,
                                      const std::vector<std::string_view>& parts) const {
  std::vector<std::string> allowed;
  for (const Route& route : routes_) {
    if (!Match(route, parts, nullptr)) continue;
    if (std::find(allowed.begin(), allowed.end(), route.method) == allowed.end()) {
      allowed.push_back(route.method);
    }
  }
  bool get = std::find(allowed.begin(), allowed.end(), "GET") != allowed.end();
  bool head = std::find(allowed.begin(), allowed.end(), "HEAD") != allowed.end();
  if (get && !head) allowed.push_back("HEAD");
  std::string list = Join(allowed);
  HttpResponse response = HttpResponse::Error(
      405, "method_not_allowed",
      request.method + " is not allowed on " + request.path + " (allowed: " + list + ")");
  response.headers.Set("Allow", list);
  return response;
}

// HEAD: the headers GET would send, with the length of the body it would send.
HttpResponse Router::DropBody(HttpResponse response) {
  if (!response.stream && !response.headers.Has("Content-Length")) {
    response.headers.Set("Content-Length", std::to_string(response.body.size()));
  }
  response.body.clear();
  response.stream = nullptr;  // never started, so it needs no OnClosed
  return response;
}

}  // namespace ladle
