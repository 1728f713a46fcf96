// The toggle service's routes through a Router, without a socket.
#include "toggles/server/api.h"
#include "tests/fakes/string_stream_writer.h"

#include <unistd.h>

#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace ladle::toggles {
namespace {

using json = nlohmann::json;

class ToggleApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ladle_api_test.XXXXXX";
    ASSERT_NE(nullptr, mkdtemp(tmpl));
    dir_ = tmpl;
    ASSERT_TRUE(ToggleStore::Open(dir_, &store_).ok());
    ASSERT_TRUE(TokenStore::Open(dir_, &tokens_).ok());
    TokenInfo info;
    ASSERT_TRUE(tokens_->Create("root", Role::kAdmin, "", &admin_, &info).ok());
    ASSERT_TRUE(tokens_->Create("web", Role::kClient, "staging", &client_, &info).ok());
    api_ = std::make_unique<ToggleApi>(*store_, *tokens_, &metrics_);
    api_->Register(&router_);
    ASSERT_TRUE(router_.status().ok()) << router_.status().ToString();
  }
  void TearDown() override {
    api_.reset();
    store_.reset();
    tokens_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Sends a request with `token` ("" for none) and extra headers.
  HttpResponse Send(const std::string& method, const std::string& target,
                    const std::string& body = "", const std::string& token = "admin",
                    std::vector<std::pair<std::string, std::string>> headers = {}) {
    HttpRequest r = HttpRequest::For(method, target, body);
    std::string secret = token == "admin" ? admin_ : token == "client" ? client_ : token;
    if (!secret.empty()) r.headers.Add("Authorization", "Bearer " + secret);
    for (auto& [n, v] : headers) r.headers.Set(n, v);
    return router_.Dispatch(r);
  }
  static json Body(const HttpResponse& r) { return json::parse(r.body, nullptr, false); }

  void CreateRollout(const std::string& key, int percent) {
    json t = {{"key", key},
              {"environments",
               {{"production", {{"enabled", true}, {"strategies", {{{"rollout", {{"percent", percent}}}}}}}}}}};
    ASSERT_EQ(201, Send("POST", "/api/v1/toggles", t.dump()).status);
  }
  void CreatePlain(const std::string& key) {
    ASSERT_EQ(201, Send("POST", "/api/v1/toggles", json{{"key", key}}.dump()).status);
  }

  std::string dir_;
  std::unique_ptr<ToggleStore> store_;
  std::unique_ptr<TokenStore> tokens_;
  MetricsRegistry metrics_;
  std::unique_ptr<ToggleApi> api_;
  Router router_;
  std::string admin_, client_;
};

TEST_F(ToggleApiTest, CreateGetListDelete) {
  HttpResponse r = Send("POST", "/api/v1/toggles", R"({"key":"checkout","type":"release"})");
  ASSERT_EQ(201, r.status) << r.body;
  EXPECT_EQ("\"1\"", r.headers.Get("ETag"));
  EXPECT_EQ("checkout", Body(r)["key"]);
  EXPECT_EQ(409, Send("POST", "/api/v1/toggles", R"({"key":"checkout"})").status);
  r = Send("GET", "/api/v1/toggles/checkout");
  EXPECT_EQ(200, r.status);
  EXPECT_EQ(1, Body(r)["revision"]);
  r = Send("GET", "/api/v1/toggles");
  ASSERT_EQ(200, r.status);
  EXPECT_EQ(1u, Body(r)["toggles"].size());
  EXPECT_EQ(404, Send("GET", "/api/v1/toggles/nope").status);
  EXPECT_EQ(204, Send("DELETE", "/api/v1/toggles/checkout").status);
  EXPECT_EQ(404, Send("DELETE", "/api/v1/toggles/checkout").status);
}

// A body nested 53,000 deep once crashed the server (dump() of the bulk
// ETag recursed per level): now refused before it is parsed, naming the limit.
TEST_F(ToggleApiTest, DeeplyNestedBodiesAre400NotACrash) {
  CreateRollout("deep", 50);
  const std::string deep_context =
      R"({"context":{"targetingKey":"a","x":)" + std::string(53000, '[') + std::string(53000, ']') + "}}";
  for (const char* target : {"/ofrep/v1/evaluate/flags", "/ofrep/v1/evaluate/flags/deep"}) {
    HttpResponse r = Send("POST", target, deep_context, "client");
    EXPECT_EQ(400, r.status) << target;
    EXPECT_NE(std::string::npos, r.body.find("deeper than 64 levels")) << r.body;
  }
  HttpResponse r = Send("POST", "/api/v1/toggles",
                        R"({"key":"v","variants":[{"name":"a","value":)" + std::string(100, '[') +
                            std::string(100, ']') + "}]}");
  EXPECT_EQ(400, r.status);
  EXPECT_EQ("the request body nests deeper than 64 levels", Body(r)["message"]) << r.body;
  // 64 levels are fine: the limit is not off by one.
  std::string ok_context = R"({"context":{"targetingKey":"a","x":)" + std::string(62, '[') +
                           std::string(62, ']') + "}}";
  EXPECT_EQ(200, Send("POST", "/ofrep/v1/evaluate/flags/deep", ok_context, "client").status);
}

TEST_F(ToggleApiTest, BadBodiesAre400NamingTheFieldAndStoreNothing) {
  HttpResponse r = Send("POST", "/api/v1/toggles", "{not json");
  EXPECT_EQ(400, r.status);
  EXPECT_EQ("bad_request", Body(r)["error"]);
  r = Send("POST", "/api/v1/toggles", R"({"key":"a","colour":"red"})");
  EXPECT_EQ(400, r.status);
  EXPECT_NE(std::string::npos, Body(r)["message"].get<std::string>().find("colour")) << r.body;
  r = Send("POST", "/api/v1/toggles", R"({"key":"a","type":7})");
  EXPECT_EQ(400, r.status);
  EXPECT_NE(std::string::npos, Body(r)["message"].get<std::string>().find("type")) << r.body;
  EXPECT_EQ(0, store_->CurrentRevision());
  CreatePlain("a");
  r = Send("PUT", "/api/v1/toggles/a/environments/production",
           R"({"enabled":true,"strategies":[{"rollout":{"percent":120}}]})");
  EXPECT_EQ(400, r.status);
  EXPECT_NE(std::string::npos, r.body.find("percent")) << r.body;
  EXPECT_EQ(400, Send("PATCH", "/api/v1/toggles/a", R"({"owner":"x"})").status);
  EXPECT_EQ(1, store_->CurrentRevision());
}

TEST_F(ToggleApiTest, PatchPutAndIfMatch) {
  CreatePlain("a");
  HttpResponse r = Send("PATCH", "/api/v1/toggles/a", R"({"description":"new"})", "admin",
                        {{"If-Match", "\"1\""}});
  ASSERT_EQ(200, r.status) << r.body;
  EXPECT_EQ("\"2\"", r.headers.Get("ETag"));
  r = Send("PUT", "/api/v1/toggles/a/environments/production", R"({"enabled":true})", "admin",
           {{"If-Match", "1"}});
  EXPECT_EQ(412, r.status);
  EXPECT_EQ("precondition_failed", Body(r)["error"]);
  EXPECT_EQ(412, Send("DELETE", "/api/v1/toggles/a", "", "admin", {{"If-Match", "\"1\""}}).status);
  EXPECT_EQ(412, Send("POST", "/api/v1/toggles/a/environments/production/on", "", "admin",
                      {{"If-Match", "1"}}).status);
  EXPECT_EQ(400, Send("POST", "/api/v1/toggles/a/environments/production/on", "", "admin",
                      {{"If-Match", "abc"}}).status);
  r = Send("PUT", "/api/v1/toggles/a/environments/production", R"({"enabled":true})", "admin",
           {{"If-Match", "\"2\""}});
  EXPECT_EQ(200, r.status) << r.body;
  EXPECT_EQ(true, Body(r)["environments"]["production"]["enabled"]);
}

TEST_F(ToggleApiTest, FlipIsIdempotent) {
  CreatePlain("a");
  HttpResponse r = Send("POST", "/api/v1/toggles/a/environments/production/on");
  ASSERT_EQ(200, r.status) << r.body;
  EXPECT_EQ("\"2\"", r.headers.Get("ETag"));
  r = Send("POST", "/api/v1/toggles/a/environments/production/on");
  EXPECT_EQ(200, r.status);
  EXPECT_EQ("\"2\"", r.headers.Get("ETag"));
  EXPECT_EQ(2, store_->CurrentRevision());
  EXPECT_EQ(200, Send("POST", "/api/v1/toggles/a/environments/production/off").status);
  EXPECT_EQ(404, Send("POST", "/api/v1/toggles/zz/environments/production/off").status);
  r = Send("GET", "/api/v1/toggles/a/history");
  ASSERT_EQ(200, r.status);
  EXPECT_EQ(3u, Body(r)["events"].size());
  r = Send("GET", "/api/v1/events?after=1");
  ASSERT_EQ(200, r.status);
  ASSERT_EQ(2u, Body(r)["events"].size());
  EXPECT_EQ("enable", Body(r)["events"][0]["action"]);
  EXPECT_EQ(400, Send("GET", "/api/v1/events?after=x").status);
  EXPECT_EQ(404, Send("GET", "/api/v1/toggles/never/history").status);
}

// Every route that writes: 401 without a token, 401 with an unknown one,
// 403 with a client token, and nothing stored.
TEST_F(ToggleApiTest, EveryWriteRouteNeedsAnAdminToken) {
  CreatePlain("a");
  const std::vector<std::pair<std::string, std::string>> writes = {
      {"POST", "/api/v1/toggles"},
      {"PATCH", "/api/v1/toggles/a"},
      {"DELETE", "/api/v1/toggles/a"},
      {"PUT", "/api/v1/toggles/a/environments/staging"},
      {"POST", "/api/v1/toggles/a/environments/staging/on"},
      {"POST", "/api/v1/toggles/a/environments/staging/off"},
      {"GET", "/api/v1/tokens"},
      {"POST", "/api/v1/tokens"},
      {"DELETE", "/api/v1/tokens/web"},
  };
  for (const auto& [method, target] : writes) {
    SCOPED_TRACE(method + " " + target);
    std::string body = method == "POST" && target == "/api/v1/toggles" ? R"({"key":"b"})"
                       : target == "/api/v1/tokens"                    ? R"({"name":"x"})"
                       : method == "PUT"                               ? R"({"enabled":true})"
                                                                       : "{}";
    HttpResponse r = Send(method, target, body, "");
    EXPECT_EQ(401, r.status);
    EXPECT_EQ("unauthorized", Body(r)["error"]);
    EXPECT_EQ(401, Send(method, target, body, "ladle_bogus").status);
    r = Send(method, target, body, "client");
    EXPECT_EQ(403, r.status);
    EXPECT_EQ("forbidden", Body(r)["error"]);
  }
  EXPECT_EQ(1, store_->CurrentRevision());
  EXPECT_EQ(404, Send("GET", "/api/v1/toggles/b").status);
}

// Every admin write checks, in order: the token, then If-Match (the routes
// that take one), then the JSON body (the routes that take one). A route
// ignores the header or the body it does not take.
TEST_F(ToggleApiTest, AdminWritesCheckTokenThenIfMatchThenBody) {
  CreatePlain("a");
  const std::string kBadIfMatch = "If-Match: expected a revision, got abc";
  const std::string kBadJson = "invalid JSON in the request body";
  const std::string kNotObject = "the request body must be a JSON object";
  struct Route {
    std::string method, target;
    bool if_match, body;
  };
  const std::vector<Route> routes = {
      {"POST", "/api/v1/toggles", false, true},
      {"PATCH", "/api/v1/toggles/a", true, true},
      {"PUT", "/api/v1/toggles/a/environments/production", true, true},
      {"DELETE", "/api/v1/toggles/a", true, false},
      {"POST", "/api/v1/toggles/a/environments/production/on", true, false},
      {"POST", "/api/v1/toggles/a/environments/production/off", true, false},
      {"POST", "/api/v1/tokens", false, true},
  };
  auto message = [](const HttpResponse& r) {
    return std::to_string(r.status) + " " + Body(r).value("message", std::string());
  };
  for (const Route& route : routes) {
    SCOPED_TRACE(route.method + " " + route.target);
    HttpResponse r = Send(route.method, route.target, "{bad", "client", {{"If-Match", "abc"}});
    EXPECT_EQ(403, r.status);
    r = Send(route.method, route.target, "{bad", "admin", {{"If-Match", "abc"}});
    if (route.if_match) {
      EXPECT_EQ("400 " + kBadIfMatch, message(r));
    } else {
      EXPECT_EQ("400 " + kBadJson, message(r));
    }
    // Revision 9 never matches: a route that reaches the store answers 412.
    r = Send(route.method, route.target, "{bad", "admin", {{"If-Match", "\"9\""}});
    if (route.body) {
      EXPECT_EQ("400 " + kBadJson, message(r));
      EXPECT_EQ("400 " + kNotObject,
                message(Send(route.method, route.target, "[1]", "admin", {{"If-Match", "9"}})));
    } else {
      EXPECT_EQ(412, r.status) << r.body;
    }
  }
  EXPECT_EQ(1, store_->CurrentRevision());
}

TEST_F(ToggleApiTest, ClientTokensReadTheirEnvironmentOnly) {
  CreatePlain("a");
  HttpResponse r = Send("GET", "/api/v1/toggles", "", "client");
  ASSERT_EQ(200, r.status) << r.body;
  json envs = Body(r)["toggles"][0]["environments"];
  EXPECT_EQ(1u, envs.size());
  EXPECT_TRUE(envs.contains("staging"));
  EXPECT_EQ(403, Send("GET", "/api/v1/toggles?environment=production", "", "client").status);
  EXPECT_EQ(200, Send("GET", "/api/v1/toggles?environment=staging", "", "client").status);
  EXPECT_EQ(401, Send("GET", "/api/v1/toggles", "", "").status);
  // Polling with the ETag: 304 until something changes.
  r = Send("GET", "/api/v1/toggles", "", "client");
  std::string etag(r.headers.Get("ETag"));
  EXPECT_EQ(304, Send("GET", "/api/v1/toggles", "", "client", {{"If-None-Match", etag}}).status);
  Send("POST", "/api/v1/toggles/a/environments/staging/on");
  EXPECT_EQ(200, Send("GET", "/api/v1/toggles", "", "client", {{"If-None-Match", etag}}).status);
}

TEST_F(ToggleApiTest, Tokens) {
  HttpResponse r = Send("POST", "/api/v1/tokens", R"({"name":"ci","role":"client","environment":"production"})");
  ASSERT_EQ(201, r.status) << r.body;
  std::string secret = Body(r)["secret"];
  EXPECT_EQ(0u, secret.rfind("ladle_", 0));
  EXPECT_EQ(409, Send("POST", "/api/v1/tokens", R"({"name":"ci"})").status);
  EXPECT_EQ(400, Send("POST", "/api/v1/tokens", R"({"name":"x","role":"boss"})").status);
  EXPECT_EQ(400, Send("POST", "/api/v1/tokens", R"({"name":"x","color":"red"})").status);
  r = Send("GET", "/api/v1/tokens");
  ASSERT_EQ(200, r.status);
  EXPECT_EQ(3u, Body(r)["tokens"].size());
  EXPECT_EQ(r.body.find(secret), std::string::npos);
  EXPECT_EQ(200, Send("GET", "/api/v1/toggles", "", secret).status);
  EXPECT_EQ(204, Send("DELETE", "/api/v1/tokens/ci").status);
  EXPECT_EQ(401, Send("GET", "/api/v1/toggles", "", secret).status);
  EXPECT_EQ(404, Send("DELETE", "/api/v1/tokens/ci").status);
}

TEST_F(ToggleApiTest, HealthAndMetrics) {
  EXPECT_EQ(200, Send("GET", "/healthz", "", "").status);
  CreateRollout("r", 100);
  Send("POST", "/ofrep/v1/evaluate/flags/r", R"({"context":{"targetingKey":"u"}})");
  HttpResponse r = Send("GET", "/metrics", "", "");
  ASSERT_EQ(200, r.status);
  EXPECT_NE(std::string::npos, r.body.find("ladle_toggles_revision 1")) << r.body;
  EXPECT_NE(std::string::npos,
            r.body.find(R"(ladle_toggle_evaluations_total{key="r",reason="SPLIT"} 1)"))
      << r.body;
}

// ---- OFREP ----

TEST_F(ToggleApiTest, OfrepSingleShapes) {
  CreatePlain("off");
  CreateRollout("half", 50);
  CreateRollout("all", 100);
  Send("POST", "/api/v1/toggles/off/environments/staging/on");
  Send("PUT", "/api/v1/toggles/off/environments/production", R"({"enabled":false})");
  HttpResponse r = Send("POST", "/ofrep/v1/evaluate/flags/all", R"({"context":{"targetingKey":"u1"}})");
  ASSERT_EQ(200, r.status) << r.body;
  EXPECT_EQ(R"({"key":"all","value":true,"reason":"SPLIT","variant":"on","metadata":{}})", r.body);
  r = Send("POST", "/ofrep/v1/evaluate/flags/off", R"({"context":{"targetingKey":"u1"}})");
  EXPECT_EQ(R"({"key":"off","value":false,"reason":"DISABLED","variant":"off","metadata":{}})", r.body);
  r = Send("POST", "/ofrep/v1/evaluate/flags/nope", R"({"context":{"targetingKey":"u1"}})");
  EXPECT_EQ(404, r.status);
  EXPECT_EQ("FLAG_NOT_FOUND", Body(r)["errorCode"]);
  EXPECT_EQ("nope", Body(r)["key"]);
  r = Send("POST", "/ofrep/v1/evaluate/flags/half", R"({"context":{}})");
  EXPECT_EQ(400, r.status);
  EXPECT_EQ("TARGETING_KEY_MISSING", Body(r)["errorCode"]);
  r = Send("POST", "/ofrep/v1/evaluate/flags/half", R"({"context":{"targetingKey":5}})");
  EXPECT_EQ(400, r.status);
  EXPECT_EQ("INVALID_CONTEXT", Body(r)["errorCode"]);
  r = Send("POST", "/ofrep/v1/evaluate/flags/half", "{oops");
  EXPECT_EQ(400, r.status);
  EXPECT_EQ("PARSE_ERROR", Body(r)["errorCode"]);
  EXPECT_EQ("half", Body(r)["key"]);
}

// The single route reads the common body without a JSON tree, into a context
// reused between requests (api.cc FlatContextReader); the bulk route parses
// the tree. Both must answer alike for every shape, flat or not, in any order.
TEST_F(ToggleApiTest, OfrepSingleAnswersAsTheFullParseForEveryContextShape) {
  json t = {{"key", "pro"},
            {"environments",
             {{"production",
               {{"enabled", true},
                {"strategies",
                 {{{"constraints", {{{"attribute", "plan"}, {"operator", "in"}, {"values", {"pro"}}},
                                    {{"attribute", "seats"}, {"operator", "gt"}, {"values", {"10"}}}}}}}}}}}}};
  ASSERT_EQ(201, Send("POST", "/api/v1/toggles", t.dump()).status);
  CreateRollout("half", 50);
  const std::vector<std::string> bodies = {
      R"({"context":{"targetingKey":"u1","plan":"pro","seats":11}})",
      R"({"context":{"targetingKey":"u1"}})",  // plan and seats of the body before must go
      R"({"context":{"plan":"pro","seats":11.5,"targetingKey":"u2"}})",
      R"({"context":{"targetingKey":"u2","plan":"pro","seats":9}})",
      R"({"context":{"targetingKey":"u3","plan":"pro","seats":12,"tags":{"a":1}}})",  // nested
      R"({"context":{"targetingKey":"u3","plan":"pro","seats":12,"list":[1,2]}})",
      R"({"context":{"targetingKey":"u4","plan":null,"seats":true}})",
      R"({"other":{"x":[1,{"y":2}]},"context":{"targetingKey":"u5","plan":"pro","seats":100}})",
      R"({"context":{"plan":"pro"},"context":{"targetingKey":"u6","seats":50}})",  // the last one counts
      R"({"context":null})",
      R"({"context":{"targetingKey":"u7","seats":18446744073709551615,"plan":"pro"}})",
      R"({"context":{"targetingKey":"u8","targetingKey":"","plan":"pro","seats":11}})",
      R"({"context":[1]})",
      R"({"context":"x"})",
      R"({"context":{"targetingKey":null}})",
      R"({"context":{"targetingKey":["a"]}})",
      R"([{"context":{}}])",
      R"("context")",
      R"({"context":{"targetingKey":"u1"})",
      "",
  };
  for (int round = 0; round < 2; ++round) {
    for (const std::string& body : bodies) {
      SCOPED_TRACE(body);
      HttpResponse bulk = Send("POST", "/ofrep/v1/evaluate/flags", body);
      for (const char* key : {"pro", "half"}) {
        HttpResponse one = Send("POST", std::string("/ofrep/v1/evaluate/flags/") + key, body);
        json got = Body(one);
        if (bulk.status != 200) {
          EXPECT_EQ(bulk.status, one.status);
          EXPECT_EQ(Body(bulk)["errorCode"], got["errorCode"]);
          EXPECT_EQ(Body(bulk)["errorDetails"], got["errorDetails"]);
          continue;
        }
        for (const json& f : Body(bulk)["flags"]) {
          if (f["key"] != key) continue;
          EXPECT_EQ(f, got) << key;
          EXPECT_EQ(f.contains("errorCode") ? 400 : 200, one.status) << key;
        }
      }
    }
  }
}

TEST_F(ToggleApiTest, OfrepAuthAndEnvironment) {
  CreatePlain("a");
  Send("POST", "/api/v1/toggles/a/environments/staging/on");
  const std::string ctx = R"({"context":{"targetingKey":"u1"}})";
  EXPECT_EQ(401, Send("POST", "/ofrep/v1/evaluate/flags/a", ctx, "").status);
  // The client token evaluates in staging (on); admin in production (off).
  EXPECT_EQ(true, Body(Send("POST", "/ofrep/v1/evaluate/flags/a", ctx, "client"))["value"]);
  EXPECT_EQ(false, Body(Send("POST", "/ofrep/v1/evaluate/flags/a", ctx))["value"]);
  EXPECT_EQ(true, Body(Send("POST", "/ofrep/v1/evaluate/flags/a", ctx, "admin",
                            {{"X-Ladle-Environment", "staging"}}))["value"]);
  HttpResponse refused = Send("POST", "/ofrep/v1/evaluate/flags/a", ctx, "client",
                              {{"X-Ladle-Environment", "production"}});
  EXPECT_EQ(403, refused.status);
  EXPECT_EQ("POST /ofrep/v1/evaluate/flags/a: X-Ladle-Environment names 'production', but token "
            "'web' is bound to environment 'staging'",
            Body(refused)["message"]);
  refused = Send("GET", "/api/v1/toggles?environment=production", "", "client");
  EXPECT_EQ("GET /api/v1/toggles?environment=production: token 'web' may only read environment "
            "'staging'",
            Body(refused)["message"]);
  HttpRequest r = HttpRequest::For("POST", "/ofrep/v1/evaluate/flags/a", ctx);
  r.headers.Add("X-API-Key", client_);
  EXPECT_EQ(200, router_.Dispatch(r).status);
}

TEST_F(ToggleApiTest, OfrepVariants) {
  json t = {{"key", "colour"},
            {"variants", {{{"name", "red"}, {"weight", 500}, {"value", "#f00"}},
                          {{"name", "blue"}, {"weight", 500}, {"value", "#00f"}}}},
            {"environments", {{"production", {{"enabled", true}}}}}};
  ASSERT_EQ(201, Send("POST", "/api/v1/toggles", t.dump()).status);
  json out = Body(Send("POST", "/ofrep/v1/evaluate/flags/colour", R"({"context":{"targetingKey":"u1"}})"));
  EXPECT_TRUE(out["value"] == "#f00" || out["value"] == "#00f") << out;
  EXPECT_EQ(out["value"] == "#f00" ? "red" : "blue", out["variant"]);
  EXPECT_EQ("SPLIT", out["reason"]);
}

TEST_F(ToggleApiTest, OfrepBulkEtagAnd304) {
  CreatePlain("a");
  CreateRollout("half", 50);
  const std::string ctx1 = R"({"context":{"targetingKey":"u1"}})";
  HttpResponse r = Send("POST", "/ofrep/v1/evaluate/flags", ctx1);
  ASSERT_EQ(200, r.status) << r.body;
  json flags = Body(r)["flags"];
  ASSERT_EQ(2u, flags.size());  // disabled toggles too
  EXPECT_EQ("a", flags[0]["key"]);
  EXPECT_EQ("DISABLED", flags[0]["reason"]);
  EXPECT_FALSE(flags[0]["value"].get<bool>());
  std::string etag(r.headers.Get("ETag"));
  ASSERT_FALSE(etag.empty());
  r = Send("POST", "/ofrep/v1/evaluate/flags", ctx1, "admin", {{"If-None-Match", etag}});
  EXPECT_EQ(304, r.status);
  EXPECT_EQ("", r.body);
  // Another context, even a non-key attribute: another ETag.
  r = Send("POST", "/ofrep/v1/evaluate/flags", R"({"context":{"targetingKey":"u1","plan":"pro"}})",
           "admin", {{"If-None-Match", etag}});
  EXPECT_EQ(200, r.status);
  EXPECT_NE(etag, r.headers.Get("ETag"));
  // A change of the flags: another ETag for the same context.
  Send("POST", "/api/v1/toggles/a/environments/production/on");
  r = Send("POST", "/ofrep/v1/evaluate/flags", ctx1, "admin", {{"If-None-Match", etag}});
  EXPECT_EQ(200, r.status);
  EXPECT_NE(etag, r.headers.Get("ETag"));
  // A failed flag is inline; a bad context fails the whole request.
  flags = Body(Send("POST", "/ofrep/v1/evaluate/flags", R"({"context":{}})"))["flags"];
  EXPECT_EQ("TARGETING_KEY_MISSING", flags[1]["errorCode"]);
  r = Send("POST", "/ofrep/v1/evaluate/flags", R"({"context":[1]})");
  EXPECT_EQ(400, r.status);
  EXPECT_EQ("INVALID_CONTEXT", Body(r)["errorCode"]);
  EXPECT_FALSE(Body(r).contains("key"));
}

TEST_F(ToggleApiTest, ChangesArePublishedToTheStream) {
  auto writer = std::make_shared<StringStreamWriter>();
  api_->hub().Attach(writer, std::nullopt);
  CreatePlain("a");
  Send("POST", "/api/v1/toggles/a/environments/production/on");
  Send("POST", "/api/v1/toggles/a/environments/production/on");  // no change, no event
  std::string data = writer->data();
  EXPECT_NE(std::string::npos, data.find("id: 1\nevent: change\ndata: ")) << data;
  EXPECT_NE(std::string::npos, data.find("id: 2\nevent: change\ndata: ")) << data;
  EXPECT_EQ(std::string::npos, data.find("id: 3")) << data;
  // Last-Event-ID replays what was missed.
  auto late = std::make_shared<StringStreamWriter>();
  api_->hub().Attach(late, 1);
  EXPECT_EQ(std::string::npos, late->data().find("id: 1\n")) << late->data();
  EXPECT_NE(std::string::npos, late->data().find("id: 2\n")) << late->data();
  EXPECT_EQ(401, Send("GET", "/api/v1/stream", "", "").status);
  HttpResponse r = Send("GET", "/api/v1/stream", "", "client");
  EXPECT_TRUE(r.is_stream());
  EXPECT_EQ("text/event-stream", r.headers.Get("Content-Type").substr(0, 17));
}

TEST(BulkEtagTest, ChangesWithEachPart) {
  std::string base = BulkEtag(1, "production", "{}");
  EXPECT_EQ('"', base.front());
  EXPECT_NE(base, BulkEtag(2, "production", "{}"));
  EXPECT_NE(base, BulkEtag(1, "staging", "{}"));
  EXPECT_NE(base, BulkEtag(1, "production", R"({"a":1})"));
  EXPECT_EQ(base, BulkEtag(1, "production", "{}"));
}

// X-Ladle-Note (a pipeline run naming itself) reaches the audit event of
// every write route, trimmed and cut to 200 bytes; no header, no note.
TEST_F(ToggleApiTest, NoteHeaderGoesIntoTheAuditEvent) {
  auto note = [](const std::string& value) {
    return std::vector<std::pair<std::string, std::string>>{{"X-Ladle-Note", value}};
  };
  auto last_note = [this](const std::string& key) {
    json events = Body(Send("GET", "/api/v1/toggles/" + key + "/history"))["events"];
    return events.empty() ? json("no events") : events.back()["note"];
  };
  ASSERT_EQ(201, Send("POST", "/api/v1/toggles", R"({"key":"a"})", "admin", note("  run 12  ")).status);
  EXPECT_EQ("run 12", last_note("a"));
  EXPECT_EQ(200, Send("PATCH", "/api/v1/toggles/a", R"({"description":"x"})", "admin", note("run 13")).status);
  EXPECT_EQ("run 13", last_note("a"));
  EXPECT_EQ(200, Send("PUT", "/api/v1/toggles/a/environments/production",
                      R"({"enabled":true,"strategies":[{"rollout":{"percent":5}}]})", "admin", note("run 14"))
                     .status);
  EXPECT_EQ("run 14", last_note("a"));
  EXPECT_EQ(200, Send("POST", "/api/v1/toggles/a/environments/production/off", "", "admin",
                      note("run 15: rollout check failed at 5%"))
                     .status);
  EXPECT_EQ("run 15: rollout check failed at 5%", last_note("a"));
  EXPECT_EQ(200, Send("POST", "/api/v1/toggles/a/environments/production/on").status);
  EXPECT_TRUE(last_note("a").is_null());
  // 200 bytes at most, never half a UTF-8 character: 199 x 'x' then 'é' (2 bytes) keeps 199.
  EXPECT_EQ(200, Send("POST", "/api/v1/toggles/a/environments/staging/on", "", "admin",
                      note(std::string(199, 'x') + "\xC3\xA9" + std::string(50, 'y')))
                     .status);
  EXPECT_EQ(std::string(199, 'x'), last_note("a"));
  EXPECT_EQ(200, Send("POST", "/api/v1/toggles/a/environments/staging/off", "", "admin",
                      note(std::string(300, 'z')))
                     .status);
  EXPECT_EQ(std::string(200, 'z'), last_note("a"));
}


// ---- Issue 10: environments, bounded audit pages, default variants, If-None-Match ----

// A client token bound to staging walks every GET route (and the first
// events of the stream, live and replayed): production's strategies and
// users never show.
TEST_F(ToggleApiTest, StagingClientTokenSeesNoProductionConfigOnAnyReadRoute) {
  const std::string kMarkers[] = {"prod-only-user-7f3a", "prod-secret-country-9c2e", "4242"};
  json t = {{"key", "checkout"},
            {"environments",
             {{"production",
               {{"enabled", true},
                {"strategies",
                 {{{"users", {kMarkers[0]}},
                   {"constraints",
                    {{{"attribute", "country"}, {"operator", "in"}, {"values", {kMarkers[1]}}}}},
                   {"rollout", {{"percent", 42}, {"group", "g" + kMarkers[2]}}}}}}}},
              {"staging", {{"enabled", true}}}}}};
  // Live stream, subscribed before the changes.
  auto live = std::make_shared<StringStreamWriter>();
  HttpResponse stream = Send("GET", "/api/v1/stream", "", "client");
  ASSERT_TRUE(stream.is_stream());
  stream.stream->Start(live);
  auto admin_live = std::make_shared<StringStreamWriter>();
  Send("GET", "/api/v1/stream").stream->Start(admin_live);

  ASSERT_EQ(201, Send("POST", "/api/v1/toggles", t.dump()).status);
  ASSERT_EQ(200, Send("PUT", "/api/v1/toggles/checkout/environments/production",
                      json{{"enabled", true},
                           {"strategies", {{{"users", {kMarkers[0], "x" + kMarkers[2]}}}}}}
                          .dump())
                     .status);
  ASSERT_EQ(200, Send("POST", "/api/v1/toggles/checkout/environments/production/off").status);
  ASSERT_EQ(200, Send("POST", "/api/v1/toggles/checkout/environments/staging/off").status);
  ASSERT_EQ(200, Send("PATCH", "/api/v1/toggles/checkout", R"({"description":"d"})").status);
  ASSERT_NE(std::string::npos, admin_live->data().find(kMarkers[0]));  // the markers are there

  auto expect_clean = [&](const std::string& what, const std::string& text) {
    for (const std::string& m : kMarkers) {
      EXPECT_EQ(std::string::npos, text.find(m)) << what << " shows " << m << ": " << text;
    }
  };
  std::set<std::string> walked;
  auto get = [&](const std::string& target) {
    HttpResponse r = Send("GET", target, "", "client");
    HttpRequest probe = HttpRequest::For("GET", target);
    router_.Dispatch(probe);
    walked.insert(std::string(probe.route));
    return r;
  };
  for (const std::string target :
       {"/api/v1/toggles", "/api/v1/toggles/checkout", "/api/v1/toggles/checkout/history",
        "/api/v1/events", "/api/v1/events?after=1&limit=1", "/healthz", "/metrics",
        "/api/v1/tokens"}) {
    HttpResponse r = get(target);
    EXPECT_TRUE(r.status == 200 || r.status == 403) << target << ": " << r.status;
    expect_clean(target, r.body);
  }
  // The stream: live, and replayed from the start.
  HttpResponse replay = get("/api/v1/stream");
  HttpRequest with_id = HttpRequest::For("GET", "/api/v1/stream");
  with_id.headers.Add("Authorization", "Bearer " + client_);
  with_id.headers.Add("Last-Event-ID", "0");
  auto replayed = std::make_shared<StringStreamWriter>();
  router_.Dispatch(with_id).stream->Start(replayed);
  EXPECT_NE(std::string::npos, live->data().find("\"create\"")) << live->data();
  EXPECT_NE(std::string::npos, replayed->data().find("\"create\"")) << replayed->data();
  EXPECT_NE(std::string::npos, replayed->data().find("\"disable\"")) << replayed->data();
  expect_clean("the live stream", live->data());
  expect_clean("the replayed stream", replayed->data());
  // The events about production are left out; those about staging or the
  // whole toggle show staging only.
  json events = Body(Send("GET", "/api/v1/events", "", "client"))["events"];
  ASSERT_EQ(3u, events.size()) << events;
  EXPECT_EQ("create", events[0]["action"]);
  EXPECT_EQ(1u, events[0]["after"]["environments"].size()) << events[0];
  EXPECT_TRUE(events[0]["after"]["environments"].contains("staging")) << events[0];
  EXPECT_EQ("disable", events[1]["action"]);
  EXPECT_EQ("update", events[2]["action"]);
  // OFREP: the client evaluates in staging only.
  HttpResponse r = Send("POST", "/ofrep/v1/evaluate/flags", R"({"context":{"targetingKey":"u"}})",
                        "client");
  expect_clean("OFREP bulk", r.body);
  // Every GET route of the API was walked.
  for (int id = 0; id < static_cast<int>(router_.route_count()); ++id) {
    if (router_.method(id) == "GET") {
      EXPECT_EQ(1u, walked.count(router_.pattern(id))) << router_.pattern(id) << " not walked";
    }
  }
}

TEST_F(ToggleApiTest, EventsArePagedWithANextLink) {
  CreatePlain("a");
  for (int i = 0; i < 150; ++i) {
    Send("POST", std::string("/api/v1/toggles/a/environments/production/") + (i % 2 ? "off" : "on"));
  }
  json page = Body(Send("GET", "/api/v1/events"));
  ASSERT_EQ(100u, page["events"].size());  // the default
  EXPECT_EQ(1, page["events"][0]["revision"]);
  EXPECT_EQ("/api/v1/events?after=100&limit=100", page["next"]);
  EXPECT_EQ(151, page["revision"]);
  page = Body(Send("GET", page["next"].get<std::string>()));
  ASSERT_EQ(51u, page["events"].size());
  EXPECT_EQ(101, page["events"][0]["revision"]);
  EXPECT_TRUE(page["next"].is_null());
  page = Body(Send("GET", "/api/v1/events?after=149&limit=1000"));
  EXPECT_EQ(2u, page["events"].size());
  page = Body(Send("GET", "/api/v1/toggles/a/history?limit=2&after=3"));
  ASSERT_EQ(2u, page["events"].size());
  EXPECT_EQ(4, page["events"][0]["revision"]);
  EXPECT_EQ("/api/v1/toggles/a/history?after=5&limit=2", page["next"]);
  auto message = [&](const std::string& target) {
    HttpResponse r = Send("GET", target);
    return std::to_string(r.status) + " " + Body(r).value("message", std::string());
  };
  EXPECT_EQ("400 limit: expected an integer from 1 to 1000, got '1001'",
            message("/api/v1/events?limit=1001"));
  EXPECT_EQ("400 limit: expected an integer from 1 to 1000, got '0'",
            message("/api/v1/events?limit=0"));
  EXPECT_EQ("400 after: expected an integer from 0 to 9223372036854775807, got '-1'",
            message("/api/v1/events?after=-1"));
  EXPECT_EQ("400 after: expected an integer from 0 to 9223372036854775807, got 'x'",
            message("/api/v1/toggles/a/history?after=x"));
  EXPECT_EQ("400 limit: expected an integer from 1 to 1000, got ''",
            message("/api/v1/events?limit="));
}

// Events carry whole toggles: a page stops early past a few MiB, whatever
// its limit, and the next link goes on from there.
TEST_F(ToggleApiTest, EventPagesStopAtTheirByteBudget) {
  std::vector<std::string> users;
  for (int i = 0; i < 20000; ++i) users.push_back("user-with-a-long-name-" + std::to_string(i));
  CreatePlain("big");
  for (int i = 0; i < 12; ++i) {
    users[0] = "v" + std::to_string(i);
    json config = {{"enabled", true}, {"strategies", {{{"users", users}}}}};
    ASSERT_EQ(200, Send("PUT", "/api/v1/toggles/big/environments/production", config.dump()).status);
  }
  HttpResponse r = Send("GET", "/api/v1/events?limit=1000");
  ASSERT_EQ(200, r.status);
  EXPECT_LT(r.body.size(), 8u << 20);
  json page = Body(r);
  EXPECT_LT(page["events"].size(), 13u);
  EXPECT_TRUE(page["next"].is_string());
}

TEST_F(ToggleApiTest, OffVariantTogglesAnswerTheirDefaultVariant) {
  struct Case {
    std::string key;
    json first, second;
  };
  const std::vector<Case> cases = {{"s", "alpha", "beta"},
                                   {"n", 1.5, 7},
                                   {"o", {{"size", 1}}, {{"size", 2}}}};
  for (const Case& c : cases) {
    json t = {{"key", c.key},
              {"variants", {{{"name", "first"}, {"weight", 0}, {"value", c.first}},
                            {{"name", "second"}, {"weight", 1000}, {"value", c.second}}}},
              {"environments",
               {{"staging", {{"enabled", true}, {"strategies", {{{"users", {"nobody"}}}}}}}}}};
    ASSERT_EQ(201, Send("POST", "/api/v1/toggles", t.dump()).status);
    SCOPED_TRACE(c.key);
    json off = Body(Send("POST", "/ofrep/v1/evaluate/flags/" + c.key, R"({"context":{"targetingKey":"u"}})"));
    EXPECT_EQ(c.first, off["value"]);
    EXPECT_EQ("first", off["variant"]);
    EXPECT_EQ("DISABLED", off["reason"]);
    json unmatched = Body(Send("POST", "/ofrep/v1/evaluate/flags/" + c.key,
                               R"({"context":{"targetingKey":"u"}})", "client"));
    EXPECT_EQ(c.first, unmatched["value"]);
    EXPECT_EQ("DEFAULT", unmatched["reason"]);
    json on = Body(Send("POST", "/ofrep/v1/evaluate/flags/" + c.key,
                        R"({"context":{"targetingKey":"nobody"}})", "client"));
    EXPECT_EQ(c.second, on["value"]);
    EXPECT_EQ("SPLIT", on["reason"]);
  }
}

TEST(IfNoneMatchTest, WeakTagsListsAndStar) {
  const std::string etag = "\"12-abc\"";
  EXPECT_TRUE(IfNoneMatchHolds("\"12-abc\"", etag));
  EXPECT_TRUE(IfNoneMatchHolds("  \"12-abc\"  ", etag));
  EXPECT_TRUE(IfNoneMatchHolds("W/\"12-abc\"", etag));       // weak comparison
  EXPECT_TRUE(IfNoneMatchHolds("\"12-abc\"", "W/\"12-abc\""));
  EXPECT_TRUE(IfNoneMatchHolds("\"x\", W/\"12-abc\"", etag));
  EXPECT_TRUE(IfNoneMatchHolds("\"x\",\"y\" ,  \"12-abc\"", etag));
  EXPECT_TRUE(IfNoneMatchHolds("\"a,b\", \"12-abc\"", etag));  // a comma inside a tag
  EXPECT_TRUE(IfNoneMatchHolds("*", etag));
  EXPECT_TRUE(IfNoneMatchHolds(" * ", etag));
  EXPECT_FALSE(IfNoneMatchHolds("\"12-abd\"", etag));
  EXPECT_FALSE(IfNoneMatchHolds("\"x\", \"y\"", etag));
  EXPECT_FALSE(IfNoneMatchHolds("12-abc", etag));             // unquoted: malformed
  EXPECT_FALSE(IfNoneMatchHolds("w/\"12-abc\"", etag));       // W/ is case-sensitive
  EXPECT_FALSE(IfNoneMatchHolds("\"12-abc", etag));
  EXPECT_FALSE(IfNoneMatchHolds("", etag));
  EXPECT_FALSE(IfNoneMatchHolds("\"x\" \"12-abc\"", etag));   // no comma: malformed
}

TEST_F(ToggleApiTest, BulkAndListAnswer304ToWeakTagsListsAndStar) {
  CreatePlain("a");
  const std::string ctx = R"({"context":{"targetingKey":"u1"}})";
  std::string etag(Send("POST", "/ofrep/v1/evaluate/flags", ctx).headers.Get("ETag"));
  for (const std::string& inm : {"W/" + etag, "\"nope\", " + etag, std::string("*")}) {
    SCOPED_TRACE(inm);
    EXPECT_EQ(304, Send("POST", "/ofrep/v1/evaluate/flags", ctx, "admin", {{"If-None-Match", inm}}).status);
  }
  EXPECT_EQ(200, Send("POST", "/ofrep/v1/evaluate/flags", ctx, "admin",
                      {{"If-None-Match", "\"nope\""}}).status);
  std::string list_etag(Send("GET", "/api/v1/toggles").headers.Get("ETag"));
  EXPECT_EQ(304, Send("GET", "/api/v1/toggles", "", "admin", {{"If-None-Match", "W/" + list_etag}}).status);
  // Two If-None-Match fields are one list.
  HttpRequest r = HttpRequest::For("GET", "/api/v1/toggles");
  r.headers.Add("Authorization", "Bearer " + admin_);
  r.headers.Add("If-None-Match", "\"nope\"");
  r.headers.Add("If-None-Match", list_etag);
  EXPECT_EQ(304, router_.Dispatch(r).status);
}

}  // namespace
}  // namespace ladle::toggles
