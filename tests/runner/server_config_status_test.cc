// docs/server.md "Commit statuses": `status:` and `external_url` in server.yml.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "runner/config/server_config.h"

namespace ladle::runner {
namespace {

std::string Errors(const std::string& text, ServerConfig* config) {
  std::vector<Diagnostic> diagnostics;
  ParseServerConfig(text, "/etc/ladle/server.yml", config, &diagnostics);
  std::string out;
  for (const Diagnostic& d : diagnostics)
    if (!d.warning) out += d.ToString() + "\n";
  return out;
}

const char kRepo[] = "repositories:\n  - name: app\n    url: /srv/app.git\n    poll: 1m\n";

TEST(ServerConfigStatusTest, StatusAndExternalUrl) {
  ServerConfig c;
  EXPECT_EQ("", Errors(std::string("external_url: https://ci.example.com/\n") + kRepo +
                           "    status: {kind: gitlab, api: 'https://gitlab.example.com/api/v4/',"
                           " token_env: GL_TOKEN, repo: group/app, context: ladle/ci}\n",
                       &c));
  EXPECT_EQ("https://ci.example.com", c.external_url);
  ASSERT_TRUE(c.repositories.at(0).status.has_value());
  const CommitStatusConfig& s = *c.repositories[0].status;
  EXPECT_EQ("gitlab", s.kind);
  EXPECT_EQ("https://gitlab.example.com/api/v4", s.api);
  EXPECT_EQ("GL_TOKEN", s.token_env);
  EXPECT_EQ("group/app", s.repo);
  EXPECT_EQ("ladle/ci", s.context);
}

TEST(ServerConfigStatusTest, BadStatusesNameTheField) {
  ServerConfig c;
  std::string e = Errors(std::string(kRepo) +
                             "    status: {kind: bitbucket, api: 'ftp://x', token_env: 1X, repo: '/a'}\n",
                         &c);
  EXPECT_NE(std::string::npos, e.find("'status.kind' must be github, gitlab or gitea")) << e;
  EXPECT_NE(std::string::npos, e.find("'status.api' must be an http:// or https:// URL")) << e;
  EXPECT_NE(std::string::npos, e.find("'status.token_env' must be a variable name")) << e;
  EXPECT_NE(std::string::npos, e.find("'status.repo' must be OWNER/NAME")) << e;
  e = Errors(std::string(kRepo) + "    status: {kind: github}\n", &c);
  EXPECT_NE(std::string::npos, e.find("server.yml:5:13: missing required key 'api' in 'status'")) << e;
  e = Errors("external_url: 'http://x/?a=1'\n", &c);
  EXPECT_NE(std::string::npos, e.find("'external_url' must be an http:// or https:// URL")) << e;
}

}  // namespace
}  // namespace ladle::runner
