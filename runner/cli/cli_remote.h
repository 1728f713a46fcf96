// The CLI's client of `ladle serve`'s (or `ladle toggles serve`'s) HTTP API.
#ifndef LADLE_RUNNER_CLI_CLI_REMOTE_H_
#define LADLE_RUNNER_CLI_CLI_REMOTE_H_

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "core/base/status.h"
#include "runner/cli/cli_commands.h"
#include "toggles/client/http_client.h"

namespace ladle::runner {

struct Token {
  std::string secret;
  std::string source;  // "--token", "LADLE_TOKEN" or the file's path
};

class Remote {
 public:
  // `server` "" means $LADLE_SERVER, else http://127.0.0.1:7707; `token` ""
  // means $LADLE_TOKEN, else DATA/admin.token.
  Status Open(const GlobalFlags& g, const std::string& server, const std::string& token);

  // A JSON request; the messages say what to do about the usual failures
  // (no server: Unavailable; a bad token: says where it came from).
  Status Call(const std::string& method, const std::string& target, const nlohmann::json* body,
              nlohmann::json* out, toggles::ClientResponse* raw = nullptr,
              const toggles::HttpHeaders& extra = {});

  // The client itself, for downloads (ladle repro). REQUIRES: Open succeeded.
  const toggles::HttpClient& http() const { return *http_; }

 private:
  Token token_;
  std::unique_ptr<toggles::HttpClient> http_;
};

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_CLI_CLI_REMOTE_H_
