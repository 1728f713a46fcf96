#include "toggles/server/auth.h"

#include "core/base/text.h"

namespace ladle::toggles {

std::optional<HttpResponse> AuthenticateRequest(const TokenStore& tokens, const HttpRequest& r,
                                                bool allow_api_key, Principal* p) {
  std::string_view secret;
  std::string_view auth = Trim(r.Header("Authorization"));
  if (StartsWithNoCase(auth, "Bearer ")) secret = Trim(auth.substr(7));
  if (secret.empty() && allow_api_key) secret = Trim(r.Header("X-API-Key"));
  if (secret.empty()) {
    return HttpResponse::Error(401, "unauthorized",
                               allow_api_key
                                   ? "missing token: send Authorization: Bearer TOKEN or X-API-Key"
                                   : "missing token: send Authorization: Bearer TOKEN");
  }
  Status s = tokens.Authenticate(secret, p);
  if (!s.ok()) return HttpResponse::Error(401, "unauthorized", s.message());
  return std::nullopt;
}

std::optional<HttpResponse> RequireAdminRequest(const TokenStore& tokens, const HttpRequest& r,
                                                Principal* p) {
  if (auto e = AuthenticateRequest(tokens, r, false, p)) return e;
  if (p->role != Role::kAdmin) {
    return HttpResponse::Error(403, "forbidden", "this needs an admin token; token '" + p->name +
                                                     "' is a client token");
  }
  return std::nullopt;
}

}  // namespace ladle::toggles
