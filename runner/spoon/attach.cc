// SpoonManager::Attach: the interactive shell in a spoon, over an exec with
// a hijacked connection (env/docker_hijack.h), docs/spoons.md "Entering a spoon".
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <thread>

#include <nlohmann/json.hpp>

#include "env/docker_hijack.h"
#include "runner/spoon/spoon.h"
#include "runner/spoon/terminal.h"

namespace ladle::runner::spoon {

namespace {

// Writes all of `data` to `fd`; false when it cannot (the terminal is gone).
bool WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, 1000);
      continue;
    }
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// tmux refuses '.' and ':' in a session name.
std::string SessionName(const std::string& name) {
  std::string out = name;
  for (char& c : out)
    if (c == '.' || c == ':') c = '_';
  return out;
}

// Resizes the exec's terminal to ours. The process may not be running yet
// right after the start answer: the daemon refuses until it is, so retry a
// little (as the docker CLI does).
void SyncSize(const env::DockerClient& client, const std::string& exec_id, bool retry) {
  int rows = 0, cols = 0;
  if (!TerminalSize(STDOUT_FILENO, &rows, &cols) && !TerminalSize(STDIN_FILENO, &rows, &cols)) return;
  for (int i = 0; i < (retry ? 10 : 1); ++i) {
    if (env::ExecResize(client, exec_id, rows, cols).ok()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10 * (i + 1)));
  }
  // A terminal of the wrong size is a nuisance, not a failure: the shell runs on.
}

// Why the shell ended killed or without an exit code: the spoon destroyed
// or stopped. The daemon ends the exec a moment before it records the
// container as gone, so look for up to 2 s. OK when the spoon still runs
// (the shell was killed by someone inside).
Status WhyEnded(const env::DockerClient& client, const SpoonInfo& info) {
  const Status destroyed =
      Status::Unavailable("spoon " + info.name + " was destroyed while you were attached; the shell ended");
  bool going = false;
  for (int i = 0; i < 40; ++i) {
    env::DockerResponse r;
    Status s = client.Call("GET", "/containers/" + info.id + "/json", "", &r, std::chrono::milliseconds(10000));
    if (!s.ok()) return s.WithContext("spoon " + info.name);
    if (r.status == 404) return destroyed;
    nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
    bool has_state = j.is_object() && j.contains("State") && j["State"].is_object();
    bool running = has_state && j["State"].value("Running", false);
    std::string status = has_state ? j["State"].value("Status", "") : "";
    going = status == "removing" || status == "dead";  // a destroy under way
    if (r.status == 200 && !running && !going && status != "running")
      return Status::Unavailable("spoon " + info.name + " was stopped while you were attached; the shell ended "
                                 "(`ladle env " + info.name + "` starts it again)");
    if (!going && i >= 5) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return going ? destroyed : Status::OK();
}

// After a program killed mid-screen (tmux in its alternate screen): the
// normal screen, attributes and cursor back, on a new line.
void ResetTerminal() {
  static const char kReset[] = "\x1b[?1049l\x1b[0m\x1b[?25h\r\n";
  WriteAll(STDOUT_FILENO, kReset, sizeof(kReset) - 1);
}

}  // namespace

Status SpoonManager::Attach(const SpoonInfo& info, const AttachOptions& options, int* exit_code) const {
  *exit_code = -1;
  const bool tty = ::isatty(STDIN_FILENO) && ::isatty(STDOUT_FILENO);
  env::ExecConfig exec;
  exec.tty = tty;
  exec.attach_stdin = true;
  // tmux needs a terminal: without one (piped input) the plain shell.
  exec.cmd = options.command.empty() ? ShellCommandFor(SessionName(info.name), info.shell, options.tmux && tty)
                                     : options.command;
  const char* term = std::getenv("TERM");
  exec.env.push_back(std::string("TERM=") + (term != nullptr && *term ? term : "xterm"));
  std::string exec_id;
  Status s = env::ExecCreate(*client_, info.id, exec, &exec_id);
  if (s.code() == Code::kNotFound)
    return Status::Unavailable("spoon " + info.name + " is gone (destroyed just now?)");
  if (s.code() == Code::kConflict)
    return Status::Unavailable("spoon " + info.name + " is not running: " + s.message());
  if (!s.ok()) return s.WithContext("enter spoon " + info.name);
  if (!options.banner.empty() && !WriteAll(STDERR_FILENO, options.banner.data(), options.banner.size()))
    return Status::IoError("enter spoon " + info.name + ": cannot write to the terminal");
  std::unique_ptr<env::HijackedStream> stream;
  s = env::HijackedStream::StartExec(*client_, exec_id, tty, &stream);
  if (!s.ok()) return s.WithContext("enter spoon " + info.name);

  TerminalSession session(STDIN_FILENO);
  if (tty) SyncSize(*client_, exec_id, true);
  env::LogDemuxer demux([](env::OutputStream which, std::string_view data) {
    WriteAll(which == env::OutputStream::kStderr ? STDERR_FILENO : STDOUT_FILENO, data.data(), data.size());
  });
  bool stdin_open = true, detached = false;
  char buf[32768];
  for (;;) {
    // Drain the stream first: a TLS layer may hold bytes poll() cannot see.
    bool eof = false;
    for (;;) {
      size_t n = 0;
      s = stream->Read(buf, sizeof(buf), &n, &eof);
      if (!s.ok() || eof || n == 0) break;
      if (tty) {
        if (!WriteAll(STDOUT_FILENO, buf, n)) detached = true;
      } else {
        demux.Feed(std::string_view(buf, n));
      }
    }
    if (!s.ok() || eof || detached) break;
    pollfd fds[3] = {{stream->fd(), POLLIN, 0},
                     {session.signal_fd(), POLLIN, 0},
                     {stdin_open ? STDIN_FILENO : -1, POLLIN, 0}};
    if (::poll(fds, 3, -1) < 0 && errno != EINTR) {
      s = Status::FromErrno("wait for the terminal", errno);
      break;
    }
    if (fds[1].revents & POLLIN) {
      unsigned char sig = 0;
      while (::read(session.signal_fd(), &sig, 1) == 1) {
        if (sig == SIGWINCH && tty) SyncSize(*client_, exec_id, false);
        if (sig == SIGTERM || sig == SIGHUP) detached = true;
      }
      if (detached) break;
    }
    if (fds[2].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = ::read(STDIN_FILENO, buf, sizeof(buf));
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n > 0) {
        s = stream->Write(buf, static_cast<size_t>(n));
        if (!s.ok()) break;
      } else if (tty) {
        detached = true;  // the terminal hung up: leave the shell running
        break;
      } else {
        stdin_open = false;  // the end of piped input: the shell sees EOF
        stream->CloseWrite();
      }
    }
  }
  session.Restore();
  if (!s.ok()) return s.WithContext("spoon " + info.name);
  if (detached) {
    // The terminal went away or ladle was asked to stop: the work goes on in
    // the spoon (tmux keeps it; without tmux the shell sees its input end).
    *exit_code = 0;
    return Status::OK();
  }
  // The stream ended: the shell is done, or the spoon went away under it.
  auto gone = [&]() {
    Status why = WhyEnded(*client_, info);
    if (!why.ok() && tty) ResetTerminal();
    return why;
  };
  for (int i = 0; i < 100; ++i) {
    bool running = false;
    int code = -1;
    s = env::ExecInspect(*client_, exec_id, &running, &code);
    if (s.code() == Code::kNotFound) {
      s = gone();
      return s.ok() ? Status::Unavailable("the shell in spoon " + info.name + " ended without an exit code") : s;
    }
    if (!s.ok()) return s.WithContext("spoon " + info.name);
    if (!running) {
      // A shell killed with its spoon (stop, destroy) ends like SIGKILL, or
      // without a code.
      if (code < 0 || code == 128 + SIGKILL || code == 128 + SIGTERM) {
        s = gone();
        if (!s.ok()) return s;
        if (code < 0) return Status::Unavailable("the shell in spoon " + info.name + " ended without an exit code");
      }
      *exit_code = code;
      return Status::OK();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return Status::Unavailable("the shell in spoon " + info.name + " closed its terminal but did not end");
}

}  // namespace ladle::runner::spoon
