// SpoonManager: named, long-lived development containers ("spoons", `ladle
// env`, docs/spoons.md) over the Docker Engine API (env/docker_client.h).
//
// A spoon NAME is the container PREFIX+NAME (prefix default "spoon-"),
// hostname NAME, labelled kSpoonLabel=NAME and kSpoonPrefixLabel=PREFIX so
// ladle finds its own; its command is an idle shell loop behind docker-init,
// so it runs until stopped. Entering it (Attach) is an exec with a hijacked
// connection (env/docker_hijack.h): `tmux new -A -s NAME` when the image has
// tmux (a second attach joins the same session), else settings.shell.
// Step containers that `keep:` preserved (env/docker_engine.h, named
// ladle-kept-...) are found, listed and entered the same way, by their name.
//
// Thread-safety: the methods may be called from several threads at once
// (the client is), but Attach owns the process's terminal while it runs.
#ifndef LADLE_RUNNER_SPOON_SPOON_H_
#define LADLE_RUNNER_SPOON_SPOON_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/base/status.h"
#include "env/docker_client.h"
#include "runner/spoon/settings.h"

namespace ladle::runner::spoon {

constexpr char kSpoonLabel[] = "ladle.spoon";               // = NAME
constexpr char kSpoonPrefixLabel[] = "ladle.spoon.prefix";  // = PREFIX

// How a creation goes, besides the settings.
struct CreateOptions {
  // --keep: a creation that fails (a run_on_create command, Ctrl-C) leaves
  // its half-made container for a look inside instead of removing it.
  bool keep = false;
  // The working directory of the spoon and of every shell opened in it
  // ("" = the image's). `ladle env from-step` uses "/workspace".
  std::string workdir;
  // The Docker network ("" = the daemon's default). Ports are published
  // only on a bridge network; a daemon started with --bridge=none has none
  // by default (give a user-defined network).
  std::string network;
  // Extra labels on the container (from-step: which pipeline and step).
  std::map<std::string, std::string> labels;
  // Polled between the steps of a creation (and while a run_on_create
  // command runs); true (Ctrl-C) stops it: Cancelled, nothing left unless keep.
  std::function<bool()> cancelled;
  // Lines for a person ("creating spoon-dev from ladle-test-spoon:latest",
  // "running: apt-get install -y vim", pull progress). May be empty.
  std::function<void(const std::string&)> progress;
};

// One spoon, or one kept step container, as ladle sees it.
struct SpoonInfo {
  std::string name;       // NAME (without the prefix); a kept container: its container name
  std::string container;  // the container's name
  std::string id;
  std::string state;      // "running", "exited", "created", ...
  std::string image;      // as created ("ladle-test-spoon:latest")
  std::vector<std::string> ports;  // "CONTAINER/tcp -> HOSTIP:HOSTPORT", sorted
  int64_t created = 0;             // unix seconds
  bool kept_step = false;          // a step container that `keep:` preserved
  std::string shell;               // the shell it was created with ("" = /bin/sh)
};

// How Attach runs the shell.
struct AttachOptions {
  // The command instead of tmux/the shell (empty: the default); `ladle env
  // NAME -- CMD...`.
  std::vector<std::string> command;
  // Written to stderr just before the shell starts (before raw mode, so
  // plain "\n" line ends): from-step prints the step's script here.
  std::string banner;
  // Use tmux when the image has it and stdin is a terminal (false: the
  // plain shell).
  bool tmux = true;
};

class SpoonManager {
 public:
  // `prefix` names the containers this manager deals with.
  SpoonManager(std::shared_ptr<const env::DockerClient> client, std::string prefix);

  // Connects to the daemon at `docker_host` ("" = $DOCKER_HOST or the
  // default socket) within `timeout`. Invalid for a malformed host;
  // Unavailable, saying what to do, when no daemon answers (exit 3).
  static Status Open(const std::string& docker_host, const std::string& prefix,
                     std::chrono::milliseconds timeout, std::unique_ptr<SpoonManager>* manager);

  const env::DockerClient& client() const { return *client_; }
  const std::string& prefix() const { return prefix_; }

  // The spoon PREFIX+NAME, or else a kept step container named NAME (label
  // ladle.keep). *found false (and OK) when there is neither.
  Status Find(const std::string& name, SpoonInfo* info, bool* found) const;
  // Find, with NotFound ("no spoon named 'x' (ladle env list shows them)";
  // exit 2) when missing.
  Status Get(const std::string& name, SpoonInfo* info) const;

  // Creates the spoon NAME (which must not exist) from `settings`: pulls
  // the image when the daemon does not have it (its error shown), creates
  // the container, starts it, copies settings.copy in, runs
  // settings.run_on_create in order. Any failure, and Ctrl-C
  // (options.cancelled), removes the half-made container unless
  // options.keep. *id: the new container. Invalid for bad settings (a port,
  // a volume whose host path is missing, cpus, memory, a name) before
  // anything is created; Conflict when the name is taken; Unavailable for
  // the daemon's errors (a port already taken, with the daemon's words).
  Status Create(const std::string& name, const SpoonSettings& settings, const CreateOptions& options,
                std::string* id);
  // Find; Create when missing; start it when stopped. *info: the spoon.
  Status Ensure(const std::string& name, const SpoonSettings& settings, const CreateOptions& options,
                SpoonInfo* info);

  // Copies the host file or folder `host_path` (`~/` expanded) into the
  // container `id` at `container_path` (absolute; parent folders created;
  // a folder's content lands at container_path), owned by root. Symbolic
  // links are copied as links. Invalid for a missing host path; TooLarge
  // past kMaxCopyBytes (256 MiB) or kMaxCopyEntries (spoon_archive.h).
  Status CopyIn(const std::string& id, const std::string& host_path, const std::string& container_path);
  // Runs `command` (`sh -c COMMAND`) in the running container `id` without a
  // terminal; its exit code and its output (stdout and stderr interleaved,
  // the last 64 KiB). `cancelled` as CreateOptions::cancelled.
  Status RunCommand(const std::string& id, const std::string& command, const std::string& workdir,
                    int* exit_code, std::string* output,
                    const std::function<bool()>& cancelled = nullptr) const;

  // Opens the interactive shell in the running container `info` on this
  // process's terminal (raw mode, window size kept in sync, Ctrl-C passed
  // through) until it ends; *exit_code is the shell's. Without a terminal
  // on stdin, stdin and stdout are passed through (no tty). Unavailable
  // (with a message) when the spoon is destroyed or stopped meanwhile.
  Status Attach(const SpoonInfo& info, const AttachOptions& options, int* exit_code) const;

  // Spoons of this prefix and every kept step container, sorted by name.
  Status List(std::vector<SpoonInfo>* out) const;
  // Stops the container (it stays, `ladle env NAME` starts it again).
  Status Kill(const std::string& name) const;
  Status Restart(const std::string& name) const;
  Status Destroy(const std::string& name) const;
  // "CONTAINER/tcp -> HOSTIP:HOSTPORT" of a running spoon; empty when none.
  Status Ports(const std::string& name, std::vector<std::string>* ports) const;
  // A new image `image` ("repo:tag") of the spoon's file system. *image_id.
  Status Commit(const std::string& name, const std::string& image, std::string* image_id) const;

 private:
  Status StartIfStopped(SpoonInfo* info) const;
  Status Provision(const std::string& id, const SpoonSettings& settings, const CreateOptions& options);

  const std::shared_ptr<const env::DockerClient> client_;
  const std::string prefix_;
};

// The body of POST /containers/create for a spoon (exposed for tests).
// Invalid for what cannot be created: a bad port, a volume with a relative
// container path or (when `check_host_paths`) a missing host path, bad cpus
// or memory, a bad variable name, no image.
Status SpoonContainerConfig(const std::string& name, const std::string& prefix,
                            const SpoonSettings& settings, const CreateOptions& options,
                            bool check_host_paths, nlohmann::json* config);

// "8080" -> ("8080/tcp", "", ""); "9000:8080" -> ("8080/tcp", "", "9000");
// "127.0.0.1:9000:8080/udp" -> ("8080/udp", "127.0.0.1", "9000"). Invalid
// otherwise, naming the port.
Status ParsePortSpec(const std::string& spec, std::string* container_port, std::string* host_ip,
                     std::string* host_port);

// The command Attach runs: `tmux new -A -s NAME` when tmux is there, else
// `shell` (as `sh -c` script, one exec, no round trip to look first).
std::vector<std::string> ShellCommandFor(const std::string& name, const std::string& shell, bool tmux);

}  // namespace ladle::runner::spoon

#endif  // LADLE_RUNNER_SPOON_SPOON_H_
