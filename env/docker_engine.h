// DockerEngine: runs every step in a fresh container (a "spoon") through the
// Docker Engine API (env/docker_client.h); see docs/backends.md.
//
// One step is one container: the step's image, `sh -e -c SCRIPT` behind
// docker-init (HostConfig.Init, so TERM reaches the script), the workspace
// bind-mounted at /workspace, the step's variables, labels and resources.
// Its output is read from the attach stream as it comes, stdout and stderr
// apart; the container is removed when the step ends unless it is kept.
// Containers of the steps next in line are made (and on this machine's
// daemon started, held at a gate) ahead of their turn: docs/backends.md
// "Overlapped containers".
//
// Keeping: the runner calls ShellCommand() when it keeps a step (keep: always,
// or on-failure after a failure) and then does not call Remove(). ShellCommand
// commits the stopped container to an untagged image and replaces it with a
// stopped container of that image named "ladle-kept-...", labelled ladle.keep,
// whose command is an idle `sh`; the command it returns, `ladle env NAME`
// (runner/spoon/spoon.h), therefore opens a shell in the step's file system
// without running the script again (`ladle env NAME -- COMMAND` runs one).
// Start-up cleanup (CleanupStale) leaves containers labelled ladle.keep or
// named ladle-kept-*.
#ifndef LADLE_ENV_DOCKER_ENGINE_H_
#define LADLE_ENV_DOCKER_ENGINE_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "env/docker_client.h"
#include "env/engine.h"

namespace ladle::env {

constexpr char kContainerPrefix[] = "ladle-";
constexpr char kKeptContainerPrefix[] = "ladle-kept-";
constexpr char kKeepLabel[] = "ladle.keep";
constexpr char kWorkspaceMount[] = "/workspace";
// Where a step's secrets file is mounted (read-only) in its container; the
// step's shell sources it (docs/server.md "How secrets reach a step").
constexpr char kSecretsMount[] = "/run/ladle-secrets";
// Where the gate of a container started ahead of its turn is mounted
// (docs/backends.md "Containers started ahead"): a FIFO its shell reads one
// line from before it runs the step's script.
constexpr char kGateMount[] = "/run/ladle-gate";

// Lines for a person ("pulling busybox:1: 3f4d: Pull complete"). Called from
// the threads that create steps; must be thread-safe.
using NoteCallback = std::function<void(const std::string&)>;

// Docker's --memory: bytes, or a number (a decimal is fine) with k, m, g, t
// (binary units, an optional trailing "b" or "ib"). Invalid otherwise.
Status ParseMemoryBytes(const std::string& text, int64_t* bytes);
// Docker's --cpus: a positive decimal, as nano-CPUs ("1.5" -> 1500000000).
Status ParseNanoCpus(const std::string& text, int64_t* nano_cpus);
// "ladle-" + the step id made safe for a container name ("12/test/unit#2" ->
// "ladle-12-test-unit-2") + "-" + suffix.
std::string ContainerName(const std::string& step_id, const std::string& suffix);
// The name a kept container gets: "ladle-kept-..." for "ladle-...".
std::string KeptContainerName(const std::string& name);
// The body of POST /containers/create for `spec`. Invalid for what a
// container cannot carry (no image, a relative workspace, a workdir that
// leaves the workspace, a bad variable name, bad cpus or memory).
Status ContainerConfig(const StepSpec& spec, nlohmann::json* config);
// Writes spec.secrets as `export NAME='VALUE'` lines to a new file in a new
// private (0700) directory on a tmpfs (/dev/shm, else $XDG_RUNTIME_DIR), so
// they never touch a disk; *dir is that directory, for RemoveSecretsFile.
// Unavailable when there is no tmpfs to write to.
Status WriteSecretsFile(const StepSpec& spec, std::string* dir);
void RemoveSecretsFile(const std::string& dir);
// Mounts `dir`'s secrets file at kSecretsMount and makes the command source
// it before the script runs: no value enters the container's configuration.
void AddSecretsFile(const std::string& dir, nlohmann::json* config);
// A step's own files on this machine (docs/backends.md "Containers started
// ahead" and "Network none"): a new private (0700) directory on a tmpfs.
// Unavailable when there is no tmpfs.
Status MakeStepDir(std::string* dir);
// The gate: a FIFO `dir`/go, held open by this process for reading and
// writing (*fd), so that a line written before the container opens it waits
// in the pipe.
Status OpenGate(const std::string& dir, int* fd);
// Mounts `dir`'s FIFO at kGateMount and wraps the command: the container's
// shell reads one line from the gate, then execs the command it had.
void AddGate(const std::string& dir, nlohmann::json* config);
// `dir`/hosts: localhost and the IPv6 names, as the daemon writes them for a
// container of network "none".
Status WriteHostsFile(const std::string& dir);
// Network "none" without the daemon's network set-up: NetworkDisabled, and
// `dir`/hosts mounted at /etc/hosts (docs/backends.md "Network none").
void AddHostsFile(const std::string& dir, nlohmann::json* config);
// Where those directories are made: /dev/shm, then $XDG_RUNTIME_DIR (the
// first that is a tmpfs and writable).
std::vector<std::string> TmpfsBases();
// Removes the secrets and step directories below `bases` whose ladle is gone
// (their names carry its pid; a live or unknown pid is left alone), with
// what is in them. Returns how many went. DockerEngine::CleanupStale calls it.
int SweepStaleStepFiles(const std::vector<std::string>& bases);
// Closes the gate's descriptor and removes the directory and what is in it;
// a container still waiting at its gate reads end of file and exits without
// running the script. Idempotent (*dir emptied, *fd -1).
void RemoveStepDir(std::string* dir, int* fd);

class DockerStep;
class DockerServices;  // env/docker_services.h

struct DockerEngineOptions {
  std::string docker_host;  // empty: $DOCKER_HOST, else unix:///var/run/docker.sock
  std::chrono::milliseconds connect_timeout{500};
  // The data dir whose containers this engine owns (label ladle.data), as the
  // runner writes it into StepSpec::labels. Needed by CleanupStale only.
  std::string data_dir;
};

class DockerEngine : public Engine {
 public:
  // Connects to the daemon (a /_ping within options.connect_timeout) and
  // negotiates the API version. Invalid for a malformed DOCKER_HOST;
  // Unavailable, saying what to do, when no daemon answers.
  static Status Open(const DockerEngineOptions& options, std::unique_ptr<DockerEngine>* engine);

  std::string Name() const override { return "docker"; }
  // Creates the step's container (not started), pulling its image first when
  // the daemon does not have it. Invalid (see ContainerConfig), NotFound for
  // a missing workspace or workdir, Unavailable when the daemon fails or the
  // image cannot be pulled. Thread-safe; concurrent pulls are serialized.
  Status Create(const StepSpec& spec, std::unique_ptr<Step>* step) override;
  // docs/backends.md "Overlapped containers": Create for a step without
  // services, not kept, whose image the daemon has. Whether it has the image
  // is asked once per run and image (then remembered; a step created at its
  // turn tells it too); Precondition, nothing created, when it has not (the
  // step is then created, and its image pulled, at its turn as before).
  // Never pulls. With a daemon on this machine (a unix socket, not ssh) the
  // container is also started, held at a gate until Start opens it
  // (docs/backends.md "Containers started ahead").
  Status Precreate(const StepSpec& spec, std::unique_ptr<Step>* step) override;

  // Removes the containers labelled ladle.data=<data_dir> that a runner left
  // behind: those whose ladle.run is not live (run_is_live(id) false, or no
  // readable id), except kept ones (label ladle.keep or a ladle-kept-* name).
  // Goes on after a failed removal; returns the first error. Names of the
  // removed containers go to `removed`. REQUIRES: options.data_dir was set.
  Status CleanupStale(const std::function<bool(int64_t run_id)>& run_is_live,
                      std::vector<std::string>* removed = nullptr);

  // Removes every container of this data dir that belongs to one of `runs`,
  // kept ones too (`ladle prune`). Goes on after a failed removal; returns
  // the first error. Names of the removed containers go to `removed`.
  // REQUIRES: options.data_dir was set.
  Status RemoveRunContainers(const std::set<int64_t>& runs,
                             std::vector<std::string>* removed = nullptr);

  // Removes every kept container of this data dir (label ladle.keep or a
  // ladle-kept-* name) with the image ladle committed for it (`ladle prune
  // --kept`), running or not. Goes on after a failed removal; returns the
  // first error. REQUIRES: options.data_dir was set.
  Status RemoveKeptContainers(std::vector<std::string>* removed = nullptr);

  // Where pull progress and keep problems are reported. REQUIRES: set
  // before the first Create (it is not guarded).
  void SetNoteCallback(NoteCallback notes) { notes_ = std::move(notes); }

  // "daemon at unix:///var/run/docker.sock, API 1.41"
  std::string Describe() const;
  const DockerClient& client() const { return *client_; }

 private:
  DockerEngine(std::shared_ptr<const DockerClient> client, std::string data_dir)
      : client_(std::move(client)), data_dir_(std::move(data_dir)) {}
  Status CreateStep(const StepSpec& spec, bool may_pull, bool gated, std::unique_ptr<Step>* step);
  Status CreateContainer(const StepSpec& spec, const nlohmann::json& config, bool may_pull,
                         std::string* name, std::string* id);
  // Whether the daemon has spec.image, from the per-run cache or asked once.
  Status ImagePresent(const StepSpec& spec, bool* present);
  void RememberImage(const StepSpec& spec, bool present);
  Status PullMissing(const std::string& image, const Status& create_error);
  Status RemoveContainersOfDataDir(
      const std::function<bool(const ContainerSummary&, int64_t, bool)>& remove,
      std::vector<std::string>* removed);
  void Note(const std::string& text) const {
    if (notes_) notes_(text);
  }

  const std::shared_ptr<const DockerClient> client_;
  const std::string data_dir_;
  NoteCallback notes_;
  std::mutex pull_mu_;  // one pull at a time: the second step of an image waits for the first
  // (label ladle.run, image) -> whether the daemon has the image; bounded
  // (cleared when full: it is only a cache).
  static constexpr size_t kMaxImageEntries = 1024;
  std::mutex images_mu_;
  std::map<std::pair<std::string, std::string>, bool> images_;
  // The daemon refused a mount of a step's files (docs/backends.md
  // "Containers started ahead"): later steps go without them.
  std::atomic<bool> step_files_unseen_{false};
};

// One step's container. Thread-safety as env::Step: Kill() from any thread at
// any time (a no-op before Start); everything else from one thread.
// Destroying it removes the container unless it was kept (StepSpec::keep, or
// ShellCommand() was called).
class DockerStep : public Step {
 public:
  // How long Stream waits for the log stream to end after SIGKILL before it
  // gives up on it (a daemon that never closes the stream must not hang the
  // runner).
  static constexpr std::chrono::seconds kStreamEndAfterKill{10};

  DockerStep(std::shared_ptr<const DockerClient> client, StepSpec spec, nlohmann::json config,
             std::string name, std::string id, NoteCallback notes);
  ~DockerStep() override;

  // Starts the container, or opens the gate of one started ahead
  // (docs/backends.md "Containers started ahead").
  Status Start() override;
  // Passes the container's output on until it has stopped: the stream Start
  // attached, else its logs.
  Status Stream(OutputSink* sink) override;
  // The container's exit code; `signal` is set when ladle's own Kill(N) ended
  // it (exit code 128 + N), since a container cannot tell the two apart.
  Status Wait(ExitStatus* status) override;
  void Kill(int signal) override;
  // Removes the container (and a kept copy, if ShellCommand made one),
  // unless StepSpec::keep. Idempotent; a container already gone is fine.
  Status Remove() override;
  // Keeps the container (see the file comment) on the first call and returns
  // the command that opens a shell in it; empty, and nothing kept, when
  // keeping failed (the reason goes to the note callback).
  std::string ShellCommand() const override;
  // docs/pipeline.md "Services": their last lines, prefixed with their names.
  void WriteServiceLogs(OutputSink* sink) override;

  const std::string& name() const { return name_; }
  const std::string& container_id() const { return id_; }

 private:
  friend class DockerEngine;  // hands over the secrets directory; Precreate attaches
  bool StreamShouldStop() const;
  std::string Keep() const;
  void DropSecrets();  // removes the secrets file once the step no longer needs it
  void DropStepDir();  // closes the gate, removes the step's files once the container stopped or goes

  const std::shared_ptr<const DockerClient> client_;
  const StepSpec spec_;
  const nlohmann::json config_;  // what the container was created with
  const std::string name_;
  const std::string id_;
  const NoteCallback notes_;

  std::atomic<bool> started_{false};
  std::atomic<int> last_signal_{0};           // the last signal Kill sent
  std::atomic<int64_t> stream_deadline_ns_{0};  // steady clock; 0: none
  // Attached by Start (or Precreate) before the container starts; null when the daemon
  // refused to attach (Stream follows the logs instead). Start/Stream only.
  std::unique_ptr<AttachedOutput> output_;

  mutable std::mutex mu_;  // guards the fields below
  mutable bool keep_tried_ = false;
  mutable std::string shell_command_;
  mutable std::string kept_id_, kept_image_;
  bool removed_ = false;
  std::string secrets_dir_;  // WriteSecretsFile's directory; "" when none or removed
  // MakeStepDir's directory ("" when none, or dropped) and the gate's
  // descriptor when the container was started ahead (Precreate), else -1.
  std::string step_dir_;
  int gate_fd_ = -1;
  // The step's services (StepSpec::services), set by DockerEngine::Create;
  // removed by Remove() even when the step is kept, else when this goes.
  std::unique_ptr<DockerServices> services_;
};

}  // namespace ladle::env

#endif  // LADLE_ENV_DOCKER_ENGINE_H_
