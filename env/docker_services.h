// DockerServices: the service containers of one docker step
// (docs/pipeline.md "Services").
//
// The services and the step share one network namespace, as the containers of
// a Kubernetes pod do: the first service owns it (network mode `none` unless
// the step asks for another) and every other service and the step join it
// (`container:ID`). Docker lets a container that joins another's namespace
// set neither ExtraHosts nor Dns (and shares the owner's /etc/hosts), so the
// owner carries "NAME:127.0.0.1" for every service and the step's `dns`.
// No bridge network: its addresses are private-range.
//
// Readiness: a service with a ready port is ready once a TCP connect to
// 127.0.0.1:PORT inside the namespace succeeds; one with a ready command once
// `sh -c COMMAND` exits 0 in the service's container (an exec); one with
// neither once it has started. A service that exits, or is not ready within
// its timeout, fails the step with its last log lines.
//
// Services carry the step's labels (ladle.run, ladle.data, ...) and
// ladle.service=NAME, so the start-up cleanup of a data dir and `ladle prune`
// find them like step containers after a crash.
#ifndef LADLE_ENV_DOCKER_SERVICES_H_
#define LADLE_ENV_DOCKER_SERVICES_H_

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/base/status.h"
#include "env/docker_client.h"
#include "env/engine.h"

namespace ladle::env {

constexpr char kServiceLabel[] = "ladle.service";
// How many of a service's last lines its readiness failure shows, and how
// many of its lines go into the step's log at the end.
constexpr int kServiceFailureLines = 20;
constexpr int kServiceLogLines = 1000;

// Pulls `image` after a create answered `create_error` (404); OK: create again.
using PullFunction = std::function<Status(const std::string& image, const Status& create_error)>;

// The body of POST /containers/create for service `index` of `spec`:
// `network_mode` is the owner's mode for the first, "container:ID" for others.
nlohmann::json ServiceContainerConfig(const StepSpec& spec, size_t index,
                                      const std::string& network_mode);

// Whether something accepts TCP connections on 127.0.0.1:port in the network
// namespace of process `pid` (of this machine): a connect from a thread that
// joined the namespace (setns, needs CAP_SYS_ADMIN), else the LISTEN sockets
// of /proc/PID/net/tcp and tcp6. Unavailable when neither can be read.
Status ProbePortInNamespace(int pid, int port, bool* open);

// Owns the started services of one step. Destroying it removes them.
// Not thread-safe: one thread at a time.
class DockerServices {
 public:
  // Creates and starts spec.services in their order, then waits until each is
  // ready. On error, what was started is removed; the message names the
  // service and shows its last lines.
  static Status Start(std::shared_ptr<const DockerClient> client, const StepSpec& spec,
                      const PullFunction& pull, std::unique_ptr<DockerServices>* out);
  ~DockerServices();

  // "container:ID": the NetworkMode for the step's container.
  std::string NetworkMode() const;
  // Each service's last kServiceLogLines lines, prefixed "[service NAME] ".
  void WriteLogs(OutputSink* sink) const;
  // Removes every service container (force). Idempotent; goes on after an
  // error and returns the first.
  Status Remove();

 private:
  struct Service {
    const ServiceSpec* spec;
    std::string name, id;
  };
  DockerServices(std::shared_ptr<const DockerClient> client, StepSpec spec)
      : client_(std::move(client)), spec_(std::move(spec)) {}
  Status CreateAndStart(size_t index, const PullFunction& pull);
  Status WaitReady(const Service& service, int pid);
  Status CheckReady(const Service& service, int pid, bool* ready);
  Status NotReady(const Service& service, const std::string& why) const;
  Status RunReadyCommand(const Service& service, std::chrono::milliseconds budget, bool* ok);
  Status Inspect(const std::string& id, bool* running, int* pid, int* exit_code) const;
  // The last `lines` lines the container wrote, stdout and stderr merged.
  std::vector<std::string> LastLines(const std::string& id, int lines) const;

  const std::shared_ptr<const DockerClient> client_;
  const StepSpec spec_;
  std::vector<Service> services_;
  bool removed_ = false;
};

}  // namespace ladle::env

#endif  // LADLE_ENV_DOCKER_SERVICES_H_
