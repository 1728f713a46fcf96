#include "runner/serve/web_ui.h"

#include <cstdio>
#include <functional>
#include <string>

namespace ladle::runner {
namespace {

constexpr std::string_view kContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

std::string_view ContentType(std::string_view name) {
  auto ends = [&](std::string_view ext) {
    return name.size() >= ext.size() && name.substr(name.size() - ext.size()) == ext;
  };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".js")) return "text/javascript; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  return "application/octet-stream";
}

// A validator that changes whenever the file does (a new ladle binary).
std::string ETag(std::string_view content) {
  char tag[32];
  std::snprintf(tag, sizeof tag, "\"%016zx\"", std::hash<std::string_view>()(content));
  return tag;
}

HttpResponse Serve(const WebAsset& asset, const std::string& etag, const HttpRequest& r) {
  HttpResponse response;
  if (r.Header("If-None-Match") == etag) {
    response.status = 304;
  } else {
    response = HttpResponse::Text(200, std::string(asset.data, asset.size), ContentType(asset.name));
  }
  response.headers.Set("ETag", etag);
  response.headers.Set("Cache-Control", "no-cache");
  response.headers.Set("Content-Security-Policy", kContentSecurityPolicy);
  response.headers.Set("X-Content-Type-Options", "nosniff");
  response.headers.Set("Referrer-Policy", "no-referrer");
  return response;
}

HttpHandler Handler(const WebAsset& asset) {
  std::string etag = ETag(std::string_view(asset.data, asset.size));
  return [&asset, etag](const HttpRequest& r) { return Serve(asset, etag, r); };
}

}  // namespace

const WebAsset* FindWebAsset(std::string_view name) {
  for (size_t i = 0; i < kWebAssetCount; ++i) {
    if (name == kWebAssets[i].name) return &kWebAssets[i];
  }
  return nullptr;
}

void RegisterWebUi(Router* router) {
  for (size_t i = 0; i < kWebAssetCount; ++i) {
    const WebAsset& asset = kWebAssets[i];
    std::string_view name = asset.name;
    router->Add("GET", name == "index.html" ? std::string("/") : "/ui/" + std::string(name),
                Handler(asset));
  }
}

}  // namespace ladle::runner
