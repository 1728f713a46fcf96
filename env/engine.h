// Engine: where a pipeline step runs.
//
// The runner drives every backend through this interface and never knows
// which one it has: LocalEngine runs the script on the host in its own process
// group, DockerEngine in a fresh container, FakeEngine (tests) in memory.
//
// Life cycle of one step: Create -> Start -> Stream (until output ends) ->
// Wait -> Remove. Kill may be called from any thread at any time after Start,
// and ends the whole process tree (or container).
#ifndef LADLE_ENV_ENGINE_H_
#define LADLE_ENV_ENGINE_H_

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/base/status.h"

namespace ladle::env {

enum class OutputStream { kStdout = 1, kStderr = 2 };

// Receives a step's output as it arrives, in arbitrary chunks (not lines).
// Called only from the thread that runs Step::Stream.
class OutputSink {
 public:
  virtual ~OutputSink() = default;
  virtual void Write(OutputStream stream, std::string_view data) = 0;
};

// Container settings from the pipeline; the local backend ignores them.
struct Resources {
  std::string cpus;                  // "1.5"; empty: unlimited
  std::string memory;                // "512m", "2g"; empty: unlimited
  std::string network;               // "none", "host" or a network name; empty: daemon's default
  bool privileged = false;
  std::vector<std::string> dns;
  std::vector<std::string> volumes;  // HOST:CONTAINER[:ro]
};

// A container started beside a docker step, in the step's network namespace
// (docs/pipeline.md "Services"): the step reaches it at `name` (127.0.0.1).
struct ServiceSpec {
  std::string name;
  std::string image;
  std::vector<std::pair<std::string, std::string>> env;
  // Empty: the image's own command. One entry with shell == true: run with
  // `sh -c` (entrypoint cleared); otherwise replaces the image's CMD.
  std::vector<std::string> command;
  bool shell = false;
  int port = 0;                      // the port it listens on; 0: none declared
  std::string ready_command;         // readiness: `sh -c` in the service, exit 0
  int ready_port = 0;                // readiness: a TCP connect to 127.0.0.1:PORT
  std::chrono::milliseconds ready_timeout{std::chrono::seconds(60)};
};

struct StepSpec {
  std::string id;        // unique and readable, e.g. "12/test/unit#2"; names containers
  std::string image;     // docker: the image; local: ignored
  std::string script;    // run as `sh -e -c SCRIPT`
  // Variables set for the step, in order (later ones win). The local backend
  // adds them to the host's environment, docker to the image's.
  std::vector<std::pair<std::string, std::string>> env;
  // Secret variables, set after `env` (docs/server.md "How secrets reach a
  // step"): the local backend adds them to the process's environment; docker
  // hands them over in a file and never puts them in the container's
  // configuration.
  std::vector<std::pair<std::string, std::string>> secrets;
  // The local backend: false passes only the base of the host's environment
  // (PATH, HOME, the locale...; env/subprocess.h kBaseEnvironment) under
  // `env`, as `ladle serve` does, so nothing of the server's own environment
  // reaches a step (docs/backends.md "Environment"). Docker: unused (a
  // container starts from its image's environment).
  bool host_environment = true;
  std::string workspace;  // host path of the run's workspace (mounted at /workspace)
  std::string workdir;    // relative to the workspace; empty: the workspace itself
  std::map<std::string, std::string> labels;  // docker labels (ladle.run, ladle.stage, ...)
  Resources resources;
  bool keep = false;      // docker: do not remove the container in Remove()
  // docker only (docs/pipeline.md "Services"): started, in this order, before
  // the step, removed with it; the local backend refuses a step with any.
  std::vector<ServiceSpec> services;
  // Polled while services are being made ready: true stops the wait (the run
  // was cancelled). May be empty.
  std::function<bool()> cancelled;
};

// The checks every backend makes before it starts a step: a variable name
// with '=' or a NUL byte, or a NUL in a value, would silently become a
// different environment at exec.
Status CheckStepVariables(const StepSpec& spec);

// True when a step made for `a` is a step for `b`: every field but
// `cancelled` is equal (docs/backends.md "Overlapped containers": a step
// created ahead of its turn is used only for the spec it was made for).
bool SameStep(const StepSpec& a, const StepSpec& b);

struct ExitStatus {
  int code = -1;    // exit code, or 128 + signal when killed by a signal
  int signal = 0;   // the signal that ended it, 0 if it exited
};

// One created step. Not copyable. Thread-safety: Kill() may be called
// concurrently with Stream() and Wait(); everything else from one thread.
class Step {
 public:
  virtual ~Step() = default;

  virtual Status Start() = 0;
  // Reads output until the step's stdout and stderr close, feeding `sink`.
  // Returns once the step's main process has ended and its output is drained.
  virtual Status Stream(OutputSink* sink) = 0;
  // Blocks until the step has ended. REQUIRES: Stream returned.
  virtual Status Wait(ExitStatus* status) = 0;
  // Sends `signal` to every process of the step (SIGTERM, SIGKILL).
  virtual void Kill(int signal) = 0;
  // Releases what the step holds (a container, a pid). Idempotent. Honours
  // StepSpec::keep.
  virtual Status Remove() = 0;
  // A command that opens a shell where the step ran (a kept container);
  // empty when there is none.
  virtual std::string ShellCommand() const { return ""; }
  // Writes the output of the step's services (StepSpec::services), each line
  // prefixed "[service NAME] ", to `sink`; a no-op without services.
  // REQUIRES: Wait returned (or the step never started).
  virtual void WriteServiceLogs(OutputSink* sink) {}
};

class Engine {
 public:
  virtual ~Engine() = default;
  virtual std::string Name() const = 0;  // "local", "docker"
  virtual Status Create(const StepSpec& spec, std::unique_ptr<Step>* step) = 0;
  // Creates `spec`'s step ahead of its turn, while an earlier step of the
  // same run is running (docs/backends.md "Overlapped containers"): as
  // Create, but only where nothing is waited for or reported on the way (the
  // image is present, no services, not kept). Precondition when it would
  // not; the runner then creates the step at its turn with Create. The
  // runner may drop the step unstarted (destroying it releases all it holds).
  // Thread-safe. The default makes none.
  virtual Status Precreate(const StepSpec& spec, std::unique_ptr<Step>* step) {
    return Status::Precondition(Name() + " backend creates steps at their turn only");
  }
};

}  // namespace ladle::env

#endif  // LADLE_ENV_ENGINE_H_
