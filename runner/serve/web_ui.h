// The web UI of `ladle serve` (GET /, docs/server.md "The web UI"): a page that lists the runs,
// shows one run's stages, steps and logs, the deployments, and cancels,
// approves and rolls back, all through the runs API with the browser's
// token. Its three files live in runner/web/ and are embedded in the binary
// at build time (runner/web/embed.cmake), so the server needs nothing
// installed beside it.
#ifndef LADLE_RUNNER_SERVE_WEB_UI_H_
#define LADLE_RUNNER_SERVE_WEB_UI_H_

#include <cstddef>
#include <string_view>

#include "core/http.h"

namespace ladle::runner {

// One embedded file; `name` is its name in runner/web/.
struct WebAsset {
  const char* name;
  const char* data;
  size_t size;
};
extern const WebAsset kWebAssets[];
extern const size_t kWebAssetCount;

// The embedded file called `name`, or nullptr.
const WebAsset* FindWebAsset(std::string_view name);

// Adds GET / (the page) and GET /ui/{file} (its script and style sheet).
// The files need no token: they hold no data, and the page asks for one.
// Answers carry an ETag (304 to a matching If-None-Match), no-cache, and a
// Content-Security-Policy that lets the page load and fetch from this
// server only.
void RegisterWebUi(Router* router);

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_SERVE_WEB_UI_H_
