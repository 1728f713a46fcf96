#include "runner/serve/webhook.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "runner/serve/git_source.h"

namespace ladle::runner {
namespace {

struct Hook {
  std::map<std::string, std::string> headers;
  HeaderLookup Lookup() const {
    return [this](std::string_view name) {
      for (const auto& [k, v] : headers)
        if (strcasecmp(k.c_str(), std::string(name).c_str()) == 0) return v;
      return std::string();
    };
  }
};

const char* kPush = R"({"ref": "refs/heads/main", "before": "1111111111111111111111111111111111111111",
  "after": "2222222222222222222222222222222222222222", "repository": {"full_name": "acme/shop"}})";

TEST(WebhookTest, HmacMatchesGitHubsDocumentedExample) {
  EXPECT_EQ("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            HmacSha256Hex("It's a Secret to Everybody", "Hello, World!"));
}

TEST(WebhookTest, GitHubPushWithGoodSignature) {
  Hook h{{{"X-GitHub-Event", "push"}, {"x-hub-signature-256", HmacSha256Hex("s3cret", kPush)}}};
  PushEvent e;
  ASSERT_TRUE(ParsePushHook(h.Lookup(), kPush, "s3cret", &e).ok());
  EXPECT_EQ("github", e.provider);
  EXPECT_TRUE(e.is_push);
  EXPECT_EQ("main", e.branch);
  EXPECT_EQ("2222222222222222222222222222222222222222", e.commit);
  EXPECT_FALSE(e.deleted);
}

TEST(WebhookTest, ADeeplyNestedSignedBodyIsInvalidNotACrash) {
  const std::string body = R"({"ref":"refs/heads/main","x":)" + std::string(50000, '[') +
                           std::string(50000, ']') + "}";
  Hook h{{{"X-GitHub-Event", "push"}, {"x-hub-signature-256", HmacSha256Hex("s3cret", body)}}};
  PushEvent e;
  Status s = ParsePushHook(h.Lookup(), body, "s3cret", &e);
  EXPECT_EQ(Code::kInvalid, s.code());
  EXPECT_EQ("body: nests deeper than 64 levels", s.message());
}

TEST(WebhookTest, GitHubBadOrMissingSignatureIsUnauthorized) {
  Hook bad{{{"X-GitHub-Event", "push"}, {"X-Hub-Signature-256", HmacSha256Hex("other", kPush)}}};
  PushEvent e;
  Status s = ParsePushHook(bad.Lookup(), kPush, "s3cret", &e);
  EXPECT_EQ(Code::kUnauthorized, s.code());
  EXPECT_EQ("X-Hub-Signature-256 does not match the body signed with the repository's secret", s.message());
  Hook missing{{{"X-GitHub-Event", "push"}}};
  EXPECT_EQ("missing X-Hub-Signature-256 header", ParsePushHook(missing.Lookup(), kPush, "s3cret", &e).message());
}

TEST(WebhookTest, TamperedBodyFailsTheSignature) {
  Hook h{{{"X-GitHub-Event", "push"}, {"X-Hub-Signature-256", HmacSha256Hex("s3cret", kPush)}}};
  PushEvent e;
  std::string tampered = std::string(kPush) + " ";
  EXPECT_EQ(Code::kUnauthorized, ParsePushHook(h.Lookup(), tampered, "s3cret", &e).code());
}

TEST(WebhookTest, RepositoryWithoutSecretAcceptsNoHooks) {
  Hook h{{{"X-GitHub-Event", "push"}, {"X-Hub-Signature-256", HmacSha256Hex("", kPush)}}};
  PushEvent e;
  EXPECT_EQ(Code::kUnauthorized, ParsePushHook(h.Lookup(), kPush, "", &e).code());
}

TEST(WebhookTest, GitLabUsesTheSecretAsToken) {
  Hook h{{{"X-Gitlab-Event", "Push Hook"}, {"X-Gitlab-Token", "s3cret"}}};
  PushEvent e;
  ASSERT_TRUE(ParsePushHook(h.Lookup(), kPush, "s3cret", &e).ok());
  EXPECT_EQ("gitlab", e.provider);
  EXPECT_EQ("main", e.branch);
  Hook wrong{{{"X-Gitlab-Event", "Push Hook"}, {"X-Gitlab-Token", "guess"}}};
  EXPECT_EQ(Code::kUnauthorized, ParsePushHook(wrong.Lookup(), kPush, "s3cret", &e).code());
}

TEST(WebhookTest, GiteaSignsWithBareHex) {
  std::string sig = HmacSha256Hex("s3cret", kPush).substr(7);
  Hook h{{{"X-Gitea-Event", "push"}, {"X-Gitea-Signature", sig}}};
  PushEvent e;
  ASSERT_TRUE(ParsePushHook(h.Lookup(), kPush, "s3cret", &e).ok());
  EXPECT_EQ("gitea", e.provider);
}

TEST(WebhookTest, BranchDeletionStartsNothing) {
  std::string body = R"({"ref": "refs/heads/old", "after": "0000000000000000000000000000000000000000", "deleted": true})";
  Hook h{{{"X-GitHub-Event", "push"}, {"X-Hub-Signature-256", HmacSha256Hex("k", body)}}};
  PushEvent e;
  ASSERT_TRUE(ParsePushHook(h.Lookup(), body, "k", &e).ok());
  EXPECT_TRUE(e.deleted);
  EXPECT_EQ("", e.commit);
  EXPECT_EQ("branch old was deleted", e.note);
}

TEST(WebhookTest, TagPushHasNoBranch) {
  std::string body = R"({"ref": "refs/tags/v1", "after": "3333333333333333333333333333333333333333"})";
  Hook h{{{"X-GitHub-Event", "push"}, {"X-Hub-Signature-256", HmacSha256Hex("k", body)}}};
  PushEvent e;
  ASSERT_TRUE(ParsePushHook(h.Lookup(), body, "k", &e).ok());
  EXPECT_EQ("", e.branch);
  // docs/server.md "Triggers": a tag push names its tag; the pipeline's
  // on.push.tags decides (the scheduler).
  EXPECT_EQ("v1", e.tag);
  EXPECT_EQ("3333333333333333333333333333333333333333", e.commit);
  EXPECT_EQ("", e.note);
}

TEST(WebhookTest, PingIsAcceptedButIsNoPush) {
  std::string body = R"({"zen": "Keep it logically awesome."})";
  Hook h{{{"X-GitHub-Event", "ping"}, {"X-Hub-Signature-256", HmacSha256Hex("k", body)}}};
  PushEvent e;
  ASSERT_TRUE(ParsePushHook(h.Lookup(), body, "k", &e).ok());
  EXPECT_FALSE(e.is_push);
  EXPECT_EQ("ignored github event 'ping'", e.note);
}

TEST(WebhookTest, MalformedBodiesAreInvalid) {
  PushEvent e;
  for (std::string body : {"not json", "[]", R"({"after": "x"})", R"({"ref": 3, "after": "x"})"}) {
    Hook h{{{"X-GitHub-Event", "push"}, {"X-Hub-Signature-256", HmacSha256Hex("k", body)}}};
    EXPECT_EQ(Code::kInvalid, ParsePushHook(h.Lookup(), body, "k", &e).code()) << body;
  }
  // Only an object id reaches git's command line.
  for (std::string after : {"--upload-pack=touch /tmp/x", "main", "2222", "g222222222222222222222222222222222222222"}) {
    std::string body = R"({"ref": "refs/heads/main", "after": ")" + after + R"("})";
    Hook h{{{"X-GitHub-Event", "push"}, {"X-Hub-Signature-256", HmacSha256Hex("k", body)}}};
    Status s = ParsePushHook(h.Lookup(), body, "k", &e);
    EXPECT_EQ(Code::kInvalid, s.code()) << after;
    EXPECT_EQ("body: 'after' is not a commit id (40 or 64 hex digits): '" + after + "'", s.message());
  }
  Hook none{{{"Content-Type", "application/json"}}};
  EXPECT_EQ(Code::kInvalid, ParsePushHook(none.Lookup(), kPush, "k", &e).code());
}

// ---- docs/server.md "Webhook trust" ----

std::string PushOf(const std::string& ref) {
  return nlohmann::json{{"ref", ref},
                        {"before", std::string(40, '1')},
                        {"after", std::string(40, '2')}}
      .dump();
}

Status ParseGithub(const std::string& body, PushEvent* e,
                   const std::string& delivery = "72d3162e-cc78-11e3-81ab-4c9367dc0958") {
  Hook h{{{"X-GitHub-Event", "push"},
          {"X-GitHub-Delivery", delivery},
          {"X-Hub-Signature-256", HmacSha256Hex("s3cret", body)}}};
  return ParsePushHook(h.Lookup(), body, "s3cret", e);
}

TEST(WebhookTest, BadBranchNamesAre400NamingTheRule) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"refs/heads/a\nb", "body: 'ref' is not a valid git ref name: it contains a control character"},
      {"refs/heads/a..b", "body: 'ref' is not a valid git ref name: it contains '..'"},
      {"refs/heads/a@{1}", "body: 'ref' is not a valid git ref name: it contains '@{'"},
      {"refs/heads/main.lock", "body: 'ref' is not a valid git ref name: a component ends with '.lock'"},
      {"refs/heads/.hidden", "body: 'ref' is not a valid git ref name: a component starts with '.'"},
      {"refs/heads/a b", "body: 'ref' is not a valid git ref name: it contains a space"},
      {"refs/heads/a~1", "body: 'ref' is not a valid git ref name: it contains '~'"},
      {"refs/heads/a^", "body: 'ref' is not a valid git ref name: it contains '^'"},
      {"refs/heads/a:b", "body: 'ref' is not a valid git ref name: it contains ':'"},
      {"refs/heads/a*", "body: 'ref' is not a valid git ref name: it contains '*'"},
      {"refs/heads/a\\b", "body: 'ref' is not a valid git ref name: it contains '\\'"},
      {"refs/heads/a//b", "body: 'ref' is not a valid git ref name: it has an empty component ('//', or '/' at either end)"},
      {"refs/heads/a/", "body: 'ref' is not a valid git ref name: it has an empty component ('//', or '/' at either end)"},
      {"refs/heads/a.", "body: 'ref' is not a valid git ref name: it ends with '.'"},
      {"refs/heads/-x", "body: 'ref' names an invalid git branch: it starts with '-'"},
      {"refs/heads/HEAD", "body: 'ref' names an invalid git branch: it is 'HEAD'"},
      {"refs/heads/" + std::string(300, 'a'), "body: 'ref' is not a valid git ref name: it is longer than 255 bytes"},
  };
  for (const auto& [ref, message] : cases) {
    PushEvent e;
    Status s = ParseGithub(PushOf(ref), &e);
    EXPECT_EQ(Code::kInvalid, s.code()) << ref;
    EXPECT_EQ(message, s.message()) << ref;
  }
  PushEvent e;
  ASSERT_TRUE(ParseGithub(PushOf("refs/heads/release/1.2_x-y"), &e).ok());
  EXPECT_EQ("release/1.2_x-y", e.branch);
  EXPECT_EQ("72d3162e-cc78-11e3-81ab-4c9367dc0958", e.delivery);
}

TEST(WebhookTest, RefNameRulesOfGitCheckRefFormat) {
  EXPECT_EQ("", RefNameProblem("refs/heads/feature/ünïcode"));
  EXPECT_EQ("", RefNameProblem("refs/heads/a.b"));
  EXPECT_EQ("it is '@'", RefNameProblem("@"));
  EXPECT_EQ("it is empty", RefNameProblem(""));
  EXPECT_EQ("it contains '?'", RefNameProblem("refs/heads/a?"));
  EXPECT_EQ("it contains '['", RefNameProblem("refs/heads/a[1]"));
  EXPECT_EQ("it contains a control character", RefNameProblem(std::string("refs/heads/a\x7f", 13)));
  EXPECT_EQ("it has an empty component ('//', or '/' at either end)", RefNameProblem("/refs/heads/a"));
  EXPECT_EQ("", BranchNameProblem("main"));
  EXPECT_EQ("it starts with '-'", BranchNameProblem("-rf"));
  EXPECT_EQ("it is 'HEAD'", BranchNameProblem("HEAD"));
  EXPECT_EQ("a component ends with '.lock'", BranchNameProblem("x.lock/y"));
}

TEST(WebhookTest, DeliveryIdsAreReadPerProviderAndBounded) {
  const std::string body = PushOf("refs/heads/main");
  PushEvent e;
  EXPECT_TRUE(ParseGithub(body, &e, "").ok());
  EXPECT_EQ("", e.delivery);
  Status s = ParseGithub(body, &e, std::string(129, 'a'));
  EXPECT_EQ(Code::kInvalid, s.code());
  EXPECT_EQ("X-GitHub-Delivery is longer than 128 characters", s.message());
  s = ParseGithub(body, &e, "abc\ndef");
  EXPECT_EQ("X-GitHub-Delivery may hold only letters, digits, '-', '_' and '.'", s.message());
  Hook gitlab{{{"X-Gitlab-Event", "Push Hook"}, {"X-Gitlab-Token", "s3cret"},
               {"X-Gitlab-Event-UUID", "13792a34-cac6-4fda-95a8-c58e00a3954e"}}};
  ASSERT_TRUE(ParsePushHook(gitlab.Lookup(), body, "s3cret", &e).ok());
  EXPECT_EQ("13792a34-cac6-4fda-95a8-c58e00a3954e", e.delivery);
  Hook gitea{{{"X-Gitea-Event", "push"}, {"X-Gitea-Delivery", "g-1"},
              {"X-Gitea-Signature", HmacSha256Hex("s3cret", body).substr(7)}}};
  ASSERT_TRUE(ParsePushHook(gitea.Lookup(), body, "s3cret", &e).ok());
  EXPECT_EQ("g-1", e.delivery);
}

}  // namespace
}  // namespace ladle::runner

namespace ladle::runner {
namespace {

const char kHead[] = "4444444444444444444444444444444444444444";

// GitHub's pull_request payload (the fields ladle reads).
std::string GitHubPullRequest(const std::string& action, const std::string& head_repo = "acme/shop") {
  return R"({"action": ")" + action + R"(", "number": 7, "pull_request": {"number": 7,
    "head": {"ref": "feature/x", "sha": ")" + kHead + R"(", "repo": {"full_name": ")" + head_repo + R"("}},
    "base": {"ref": "main", "sha": "1111111111111111111111111111111111111111",
             "repo": {"full_name": "acme/shop"}}}, "repository": {"full_name": "acme/shop"}})";
}

TEST(WebhookTest, GitHubPullRequestOpened) {
  std::string body = GitHubPullRequest("opened");
  Hook h{{{"X-GitHub-Event", "pull_request"}, {"X-Hub-Signature-256", HmacSha256Hex("k", body)}}};
  PushEvent e;
  Status s = ParsePushHook(h.Lookup(), body, "k", &e);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(e.is_pull_request);
  EXPECT_EQ(7, e.number);
  EXPECT_EQ(kHead, e.commit);
  EXPECT_EQ("refs/pull/7/head", e.ref);
  EXPECT_EQ("main", e.base);
  EXPECT_EQ("feature/x", e.head_branch);
  EXPECT_TRUE(e.same_repo);
  EXPECT_EQ("", e.branch);
}

TEST(WebhookTest, GitHubPullRequestFromAForkAndOtherActions) {
  std::string body = GitHubPullRequest("synchronize", "mallory/shop");
  Hook h{{{"X-GitHub-Event", "pull_request"}, {"X-Hub-Signature-256", HmacSha256Hex("k", body)}}};
  PushEvent e;
  ASSERT_TRUE(ParsePushHook(h.Lookup(), body, "k", &e).ok());
  EXPECT_TRUE(e.is_pull_request);
  EXPECT_FALSE(e.same_repo);
  body = GitHubPullRequest("closed");
  Hook closed{{{"X-GitHub-Event", "pull_request"}, {"X-Hub-Signature-256", HmacSha256Hex("k", body)}}};
  ASSERT_TRUE(ParsePushHook(closed.Lookup(), body, "k", &e).ok());
  EXPECT_FALSE(e.is_pull_request);
  EXPECT_EQ("ignored github pull request action 'closed'", e.note);
  // Unsigned: refused like a push.
  Hook unsigned_hook{{{"X-GitHub-Event", "pull_request"}}};
  EXPECT_EQ(Code::kUnauthorized, ParsePushHook(unsigned_hook.Lookup(), body, "k", &e).code());
}

TEST(WebhookTest, GiteaPullRequestSynchronized) {
  std::string body = GitHubPullRequest("synchronized");  // Gitea's word, same shape
  Hook h{{{"X-Gitea-Event", "pull_request"},
          {"X-Gitea-Signature", HmacSha256Hex("k", body).substr(7)}}};
  PushEvent e;
  ASSERT_TRUE(ParsePushHook(h.Lookup(), body, "k", &e).ok());
  EXPECT_TRUE(e.is_pull_request);
  EXPECT_EQ("refs/pull/7/head", e.ref);
  EXPECT_EQ(kHead, e.commit);
}

TEST(WebhookTest, GitLabMergeRequestHook) {
  std::string body = R"({"object_kind": "merge_request", "object_attributes": {"iid": 12,
    "action": "update", "target_branch": "main", "source_branch": "fix", "source_project_id": 5,
    "target_project_id": 5, "last_commit": {"id": ")" + std::string(kHead) + R"("}}})";
  Hook h{{{"X-Gitlab-Event", "Merge Request Hook"}, {"X-Gitlab-Token", "k"}}};
  PushEvent e;
  Status s = ParsePushHook(h.Lookup(), body, "k", &e);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(e.is_pull_request);
  EXPECT_EQ(12, e.number);
  EXPECT_EQ("refs/merge-requests/12/head", e.ref);
  EXPECT_EQ("main", e.base);
  EXPECT_TRUE(e.same_repo);
  EXPECT_EQ(kHead, e.commit);
}

TEST(WebhookTest, GitLabTagPushHook) {
  std::string body = R"({"object_kind": "tag_push", "ref": "refs/tags/v2.0",
    "before": "0000000000000000000000000000000000000000",
    "after": "5555555555555555555555555555555555555555",
    "checkout_sha": ")" + std::string(kHead) + R"("})";
  Hook h{{{"X-Gitlab-Event", "Tag Push Hook"}, {"X-Gitlab-Token", "k"}}};
  PushEvent e;
  ASSERT_TRUE(ParsePushHook(h.Lookup(), body, "k", &e).ok());
  EXPECT_TRUE(e.is_push);
  EXPECT_EQ("v2.0", e.tag);
  EXPECT_EQ("5555555555555555555555555555555555555555", e.commit);
  EXPECT_EQ(kHead, e.peeled);
}

TEST(WebhookTest, BadPullRequestBodiesAreInvalid) {
  for (const std::string& body :
       {std::string(R"({"action": "opened", "pull_request": {}})"),
        std::string(R"({"action": "opened", "number": 0})"),
        std::string(R"({"action": "opened", "number": 3, "pull_request": {"head": {"sha": "--upload-pack=x"}, "base": {"ref": "main"}}})"),
        std::string(R"({"action": "opened", "number": 3, "pull_request": {"head": {"sha": ")") + kHead +
            R"("}, "base": {"ref": "a..b"}}})",
        std::string("[1]")}) {
    Hook h{{{"X-GitHub-Event", "pull_request"}, {"X-Hub-Signature-256", HmacSha256Hex("k", body)}}};
    PushEvent e;
    EXPECT_EQ(Code::kInvalid, ParsePushHook(h.Lookup(), body, "k", &e).code()) << body;
  }
}

}  // namespace
}  // namespace ladle::runner
