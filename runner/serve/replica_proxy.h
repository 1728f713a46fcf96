// ProxyToReplica: docs/server.md "Replicas". A step's log and a run's
// artifacts live in the data dir of the replica that carried out the run;
// any other replica passes such a request on to it and streams its answer
// back, status, headers and body as the owner sent them (a live log keeps
// following). docs/design.md "Logs and artifacts of replicas" says why a
// proxy rather than log chunks in the database, and what it costs.
#ifndef LADLE_RUNNER_SERVE_REPLICA_PROXY_H_
#define LADLE_RUNNER_SERVE_REPLICA_PROXY_H_

#include <string>

#include "core/http.h"

namespace ladle::runner {

// The header a proxied request carries, so that the owner answers from its
// own data dir and never passes the request on again.
inline constexpr char kProxiedHeader[] = "X-Ladle-Proxied-By";

// Answers `request` (a GET) with the answer of the replica at `base_url`
// ("http://HOST:PORT") to the same target, its Authorization header passed
// on. `what` names what is asked for ("the log of run 7's step build/test"),
// for the 502 answered when the owner does not answer.
HttpResponse ProxyToReplica(const std::string& base_url, const std::string& replica_id,
                            const std::string& self_id, const HttpRequest& request,
                            const std::string& what);

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_SERVE_REPLICA_PROXY_H_
