// Router, HttpRequest and HttpResponse: all without a socket.
#include "core/http.h"
#include "tests/fakes/string_stream_writer.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <stdexcept>

namespace ladle {
namespace {

using nlohmann::json;

// A handler that answers "ROUTE key=value ..." with its captured params.
HttpHandler Echo(std::string name) {
  return [name](const HttpRequest& request) {
    std::string text = name;
    for (const auto& [key, value] : request.params) text += " " + key + "=" + value;
    return HttpResponse::Text(200, text);
  };
}

std::string Body(const Router& router, const std::string& method, const std::string& target) {
  HttpResponse response = router.Dispatch(HttpRequest::For(method, target));
  return std::to_string(response.status) + " " + response.body;
}

std::string ErrorCode(const HttpResponse& response) {
  return json::parse(response.body).at("error").get<std::string>();
}

class RouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    router_.Add("GET", "/healthz", Echo("health"));
    router_.Add("GET", "/api/v1/toggles", Echo("list"));
    router_.Add("POST", "/api/v1/toggles", Echo("create"));
    router_.Add("GET", "/api/v1/toggles/{key}", Echo("get"));
    router_.Add("DELETE", "/api/v1/toggles/{key}", Echo("delete"));
    router_.Add("POST", "/api/v1/toggles/{key}/environments/{env}/on", Echo("on"));
    router_.Add("GET", "/api/v1/runs/{id}", Echo("run"));
    router_.Add("GET", "/api/v1/runs/stream", Echo("runs-stream"));  // after {id}, still wins
    router_.Add("GET", "/ui/{file...}", Echo("ui"));
    ASSERT_TRUE(router_.status().ok()) << router_.status().ToString();
  }
  Router router_;
};

TEST_F(RouterTest, MatchesLiteralRoutes) {
  EXPECT_EQ("200 health", Body(router_, "GET", "/healthz"));
  EXPECT_EQ("200 list", Body(router_, "GET", "/api/v1/toggles"));
  EXPECT_EQ("200 create", Body(router_, "POST", "/api/v1/toggles"));
}

TEST_F(RouterTest, CapturesParams) {
  EXPECT_EQ("200 get key=checkout.v2", Body(router_, "GET", "/api/v1/toggles/checkout.v2"));
  EXPECT_EQ("200 on key=dark env=staging",
            Body(router_, "POST", "/api/v1/toggles/dark/environments/staging/on"));
}

TEST_F(RouterTest, DecodesParamsButNotSegmentBoundaries) {
  // An encoded slash stays inside its segment.
  EXPECT_EQ("200 get key=a/b c", Body(router_, "GET", "/api/v1/toggles/a%2Fb%20c"));
  EXPECT_EQ("200 get key=a+b", Body(router_, "GET", "/api/v1/toggles/a+b"));
}

TEST_F(RouterTest, FillsRequestFields) {
  HttpRequest request = HttpRequest::For("GET", "/api/v1/toggles/x%21?limit=5&q=a+b&q=c%26d");
  HttpResponse response = router_.Dispatch(request);
  EXPECT_EQ(200, response.status);
  EXPECT_EQ("/api/v1/toggles/x!", request.path);
  EXPECT_EQ("x!", request.Param("key"));
  EXPECT_EQ("/api/v1/toggles/{key}", request.route);
  EXPECT_EQ("GET", router_.method(request.route_id));
  EXPECT_EQ("/api/v1/toggles/{key}", router_.pattern(request.route_id));
  EXPECT_EQ("5", request.Query("limit"));
  EXPECT_EQ("a b", request.Query("q"));  // the first of two
  EXPECT_EQ((std::vector<std::string_view>{"a b", "c&d"}), request.query.GetAll("q"));
  EXPECT_EQ("", request.Query("missing"));
}

TEST_F(RouterTest, LiteralSegmentBeatsParamWhateverTheOrder) {
  EXPECT_EQ("200 runs-stream", Body(router_, "GET", "/api/v1/runs/stream"));
  EXPECT_EQ("200 run id=12", Body(router_, "GET", "/api/v1/runs/12"));
}

TEST_F(RouterTest, RestParamTakesTheRestOfThePath) {
  EXPECT_EQ("200 ui file=assets/app.js", Body(router_, "GET", "/ui/assets/app.js"));
  EXPECT_EQ("404", Body(router_, "GET", "/ui").substr(0, 3));
}

TEST_F(RouterTest, UnknownPathIs404Json) {
  HttpResponse response = router_.Dispatch(HttpRequest::For("GET", "/nope"));
  EXPECT_EQ(404, response.status);
  EXPECT_EQ("application/json", response.headers.Get("content-type"));
  EXPECT_EQ("not_found", ErrorCode(response));
  EXPECT_EQ("no route for GET /nope", json::parse(response.body)["message"]);
}

TEST_F(RouterTest, EmptySegmentsAndTrailingSlashDoNotMatch) {
  EXPECT_EQ(404, router_.Dispatch(HttpRequest::For("GET", "/api/v1/toggles/")).status);
  EXPECT_EQ(404, router_.Dispatch(HttpRequest::For("GET", "/healthz/")).status);
  EXPECT_EQ(404, router_.Dispatch(HttpRequest::For("GET", "/api//v1/toggles")).status);
}

TEST_F(RouterTest, EncodedLiteralDoesNotMatch) {
  EXPECT_EQ(404, router_.Dispatch(HttpRequest::For("GET", "/%68ealthz")).status);
}

TEST_F(RouterTest, KnownPathOtherMethodIs405WithAllow) {
  HttpResponse response = router_.Dispatch(HttpRequest::For("PUT", "/api/v1/toggles/k"));
  EXPECT_EQ(405, response.status);
  EXPECT_EQ("GET, DELETE, HEAD", response.headers.Get("Allow"));
  EXPECT_EQ("method_not_allowed", ErrorCode(response));

  response = router_.Dispatch(HttpRequest::For("DELETE", "/api/v1/toggles"));
  EXPECT_EQ(405, response.status);
  EXPECT_EQ("GET, POST, HEAD", response.headers.Get("allow"));
}

TEST_F(RouterTest, HeadRunsGetWithoutBody) {
  HttpResponse response = router_.Dispatch(HttpRequest::For("HEAD", "/api/v1/toggles/k"));
  EXPECT_EQ(200, response.status);
  EXPECT_EQ("", response.body);
  EXPECT_EQ(std::to_string(std::string("get key=k").size()), response.headers.Get("Content-Length"));
  EXPECT_EQ("text/plain; charset=utf-8", response.headers.Get("Content-Type"));
  // No GET route: HEAD is not allowed either.
  EXPECT_EQ(405, router_.Dispatch(HttpRequest::For("HEAD", "/api/v1/toggles/k/environments/e/on"))
                     .status);
}

TEST_F(RouterTest, HeadOnAStreamDropsTheStream) {
  Router router;
  router.Add("GET", "/s", [](const HttpRequest&) {
    return HttpResponse::Stream([](std::shared_ptr<StreamWriter>) {}, "text/event-stream");
  });
  HttpResponse response = router.Dispatch(HttpRequest::For("HEAD", "/s"));
  EXPECT_EQ(200, response.status);
  EXPECT_FALSE(response.is_stream());
}

// An API class as ToggleApi and RunsApi are: its routes are member functions.
class CounterApi {
 public:
  void Register(Router* router) {
    router->Add("GET", "/count", this, &CounterApi::Get);
    router->Add("POST", "/count/{by}", this, &CounterApi::Increment);
  }
  int count() const { return count_; }

 private:
  HttpResponse Get(const HttpRequest&) { return HttpResponse::Text(200, std::to_string(count_)); }
  HttpResponse Increment(const HttpRequest& r) {
    count_ += std::stoi(std::string(r.Param("by")));
    return HttpResponse::NoContent();
  }

  int count_ = 0;
};

TEST(RouterMemberTest, RoutesCallTheObjectsMemberFunctions) {
  CounterApi api;
  Router router;
  api.Register(&router);
  ASSERT_TRUE(router.status().ok()) << router.status().ToString();
  EXPECT_EQ(2u, router.route_count());
  EXPECT_EQ("POST", router.method(1));
  EXPECT_EQ("/count/{by}", router.pattern(1));
  EXPECT_EQ("200 0", Body(router, "GET", "/count"));
  EXPECT_EQ(204, router.Dispatch(HttpRequest::For("POST", "/count/5")).status);
  EXPECT_EQ(5, api.count());
  EXPECT_EQ("200 5", Body(router, "GET", "/count"));
  EXPECT_EQ(405, router.Dispatch(HttpRequest::For("DELETE", "/count")).status);
  // The member overload reports duplicates as the plain one does.
  api.Register(&router);
  EXPECT_EQ("duplicate route GET /count", router.status().ToString());
}

TEST(RouterErrors, ThrowingHandlerGives500) {
  Router router;
  router.Add("GET", "/boom", [](const HttpRequest&) -> HttpResponse {
    throw std::runtime_error("disk on fire");
  });
  router.Add("GET", "/int", [](const HttpRequest&) -> HttpResponse { throw 42; });
  HttpResponse response = router.Dispatch(HttpRequest::For("GET", "/boom"));
  EXPECT_EQ(500, response.status);
  EXPECT_EQ(json({{"error", "internal"}, {"message", "internal error: disk on fire"}}),
            json::parse(response.body));
  EXPECT_EQ(500, router.Dispatch(HttpRequest::For("GET", "/int")).status);
}

TEST(RouterErrors, BadPatternsAndDuplicatesAreReported) {
  Router bad;
  bad.Add("GET", "no-slash", Echo("x"));
  EXPECT_EQ("malformed route GET no-slash", bad.status().ToString());

  Router partial;
  partial.Add("GET", "/v{n}", Echo("x"));
  EXPECT_FALSE(partial.status().ok());

  Router rest_not_last;
  rest_not_last.Add("GET", "/{a...}/b", Echo("x"));
  EXPECT_FALSE(rest_not_last.status().ok());

  Router twice;
  twice.Add("GET", "/a/{x}", Echo("x"));
  twice.Add("GET", "/a/{x}", Echo("y"));
  EXPECT_EQ("duplicate route GET /a/{x}", twice.status().ToString());
}

TEST(RouterErrors, MalformedEscapeInParamIs400) {
  Router router;
  router.Add("GET", "/t/{key}", Echo("t"));
  HttpRequest request;
  request.method = "GET";
  request.target = "/t/%zz";
  EXPECT_EQ(400, router.Dispatch(request).status);
}

TEST(HttpRequestTest, SetTargetDecodes) {
  HttpRequest request;
  EXPECT_TRUE(request.SetTarget("/a%20b/c?x=1+2&flag&y=%2F"));
  EXPECT_EQ("/a b/c", request.path);
  EXPECT_EQ("1 2", request.Query("x"));
  EXPECT_TRUE(request.query.Has("flag"));
  EXPECT_EQ("/", request.Query("y"));
}

TEST(HttpRequestTest, SetTargetAcceptsAbsoluteForm) {
  HttpRequest request;
  EXPECT_TRUE(request.SetTarget("http://example.test:80/p/q?x=1"));
  EXPECT_EQ("/p/q", request.path);
  EXPECT_EQ("1", request.Query("x"));
}

TEST(HttpRequestTest, OriginFormDropsSchemeAndAuthorityOnly) {
  EXPECT_EQ("/p/a%2Fb?x=1", HttpRequest::OriginForm("http://example.test:80/p/a%2Fb?x=1"));
  EXPECT_EQ("/", HttpRequest::OriginForm("https://example.test"));
  EXPECT_EQ("/p?u=http://x/y", HttpRequest::OriginForm("/p?u=http://x/y"));
  EXPECT_EQ("", HttpRequest::OriginForm(""));
  // The router matches the absolute form's path as the origin form's.
  Router router;
  router.Add("GET", "/p/{name}", Echo("p"));
  EXPECT_EQ("200 p name=a/b", Body(router, "GET", "http://example.test/p/a%2Fb?x=1"));
}

TEST(HttpRequestTest, SetTargetRejectsBadEscapesAndNul) {
  HttpRequest request;
  EXPECT_FALSE(request.SetTarget("/a%2"));
  EXPECT_FALSE(request.SetTarget("/a%g1"));
  EXPECT_FALSE(request.SetTarget("/a%00b"));
  EXPECT_FALSE(request.SetTarget("/a?x=%"));
}

TEST(HttpFieldsTest, HeadersIgnoreCaseAndKeepOrder) {
  HttpFields headers(true);
  headers.Add("Set-Cookie", "a=1");
  headers.Add("set-cookie", "b=2");
  headers.Add("X-Other", "x");
  EXPECT_EQ("a=1", headers.Get("SET-COOKIE"));
  EXPECT_EQ(2u, headers.GetAll("Set-Cookie").size());
  headers.Set("SET-cookie", "c=3");
  EXPECT_EQ((std::vector<std::string_view>{"c=3"}), headers.GetAll("set-cookie"));
  EXPECT_EQ(2u, headers.size());
  headers.Remove("x-other");
  EXPECT_FALSE(headers.Has("X-Other"));
}

TEST(HttpFieldsTest, ClearKeepsStorageForReuse) {
  HttpFields fields;
  fields.Add("name", std::string(100, 'v'));
  const char* storage = fields.begin()->second.data();
  fields.Clear();
  EXPECT_TRUE(fields.empty());
  fields.Add("other", "short");
  EXPECT_EQ(storage, fields.begin()->second.data());  // same buffer, no new allocation
  EXPECT_EQ("short", fields.Get("other"));
  EXPECT_EQ("", fields.Get("name"));
}

TEST(HttpResponseTest, Helpers) {
  HttpResponse json_response = HttpResponse::Json(201, json{{"key", "k"}});
  EXPECT_EQ(201, json_response.status);
  EXPECT_EQ(R"({"key":"k"})", json_response.body);
  EXPECT_EQ("application/json", json_response.headers.Get("Content-Type"));

  HttpResponse error = HttpResponse::Error(409, "conflict", "toggle 'k' exists");
  EXPECT_EQ(R"({"error":"conflict","message":"toggle 'k' exists"})", error.body);

  EXPECT_EQ(204, HttpResponse::NoContent().status);
  EXPECT_EQ("", HttpResponse::NoContent().body);

  HttpResponse text = HttpResponse::Text(200, "ok", "text/html");
  EXPECT_EQ("text/html", text.headers.Get("content-type"));
}

TEST(HttpResponseTest, FromStatusMapsCodes) {
  EXPECT_EQ(400, HttpResponse::FromStatus(Status::Invalid("bad field 'x'")).status);
  EXPECT_EQ(404, HttpResponse::FromStatus(Status::NotFound("no toggle")).status);
  EXPECT_EQ(409, HttpResponse::FromStatus(Status::Conflict("exists")).status);
  EXPECT_EQ(412, HttpResponse::FromStatus(Status::Precondition("stale")).status);
  EXPECT_EQ(401, HttpResponse::FromStatus(Status::Unauthorized("no token")).status);
  EXPECT_EQ(403, HttpResponse::FromStatus(Status::Permission("client token")).status);
  EXPECT_EQ(413, HttpResponse::FromStatus(Status::TooLarge("big")).status);
  EXPECT_EQ(503, HttpResponse::FromStatus(Status::Unavailable("db locked")).status);
  HttpResponse internal = HttpResponse::FromStatus(Status::Internal("bug"));
  EXPECT_EQ(R"({"error":"internal","message":"bug"})", internal.body);
}

TEST(HttpResponseTest, JsonWithInvalidUtf8StillRenders) {
  HttpResponse response = HttpResponse::Json(200, json{{"s", std::string("a\xff")}});
  EXPECT_EQ(200, response.status);
  EXPECT_NE(std::string::npos, response.body.find("a"));
}

TEST(StringStreamWriterTest, RecordsAndOverflows) {
  StringStreamWriter writer(5);
  EXPECT_TRUE(writer.Send("abc"));
  EXPECT_FALSE(writer.Send("def"));  // over 5 bytes: closed like a slow client
  EXPECT_TRUE(writer.closed());
  EXPECT_EQ("abc", writer.data());
}

}  // namespace
}  // namespace ladle
