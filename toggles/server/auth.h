// Bearer-token authentication of HTTP requests, shared by the toggle API and
// the runs API of `ladle serve` (docs/design.md "HTTP API conventions"):
// nullopt with *p filled, or the error response to send (401 without a
// token or with an unknown one; RequireAdminRequest: 403 for a client token).
// Thread-safe as TokenStore::Authenticate is.
#ifndef LADLE_TOGGLES_SERVER_AUTH_H_
#define LADLE_TOGGLES_SERVER_AUTH_H_

#include <optional>

#include "core/http.h"
#include "toggles/server/tokens.h"

namespace ladle::toggles {

// allow_api_key also takes OFREP's X-API-Key header.
std::optional<HttpResponse> AuthenticateRequest(const TokenStore& tokens, const HttpRequest& r,
                                                bool allow_api_key, Principal* p);
std::optional<HttpResponse> RequireAdminRequest(const TokenStore& tokens, const HttpRequest& r,
                                                Principal* p);

}  // namespace ladle::toggles

#endif  // LADLE_TOGGLES_SERVER_AUTH_H_
