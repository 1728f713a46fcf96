#include "runner/spoon/terminal.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>

namespace ladle::runner::spoon {

namespace {

int g_pipe[2] = {-1, -1};

void OnSignal(int sig) {
  int saved = errno;
  unsigned char b = static_cast<unsigned char>(sig);
  if (g_pipe[1] >= 0) (void)!::write(g_pipe[1], &b, 1);
  errno = saved;
}

void Install(int sig, void (*handler)(int), struct sigaction* old) {
  struct sigaction sa {};
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(sig, &sa, old);
}

}  // namespace

bool TerminalSize(int fd, int* rows, int* cols) {
  winsize ws{};
  if (::ioctl(fd, TIOCGWINSZ, &ws) != 0 || ws.ws_row == 0 || ws.ws_col == 0) return false;
  *rows = ws.ws_row;
  *cols = ws.ws_col;
  return true;
}

TerminalSession::TerminalSession(int fd) : fd_(fd) {
  if (::pipe2(g_pipe, O_CLOEXEC | O_NONBLOCK) != 0) g_pipe[0] = g_pipe[1] = -1;
  Install(SIGWINCH, OnSignal, &old_winch_);
  Install(SIGTERM, OnSignal, &old_term_);
  Install(SIGHUP, OnSignal, &old_hup_);
  // A terminal that went away makes writes fail with EPIPE/EIO, not kill us.
  Install(SIGPIPE, SIG_IGN, &old_pipe_);
  if (::isatty(fd) && ::tcgetattr(fd, &saved_) == 0) {
    termios raw = saved_;
    cfmakeraw(&raw);
    raw_ = ::tcsetattr(fd, TCSADRAIN, &raw) == 0;
  }
}

TerminalSession::~TerminalSession() {
  Restore();
  sigaction(SIGWINCH, &old_winch_, nullptr);
  sigaction(SIGTERM, &old_term_, nullptr);
  sigaction(SIGHUP, &old_hup_, nullptr);
  sigaction(SIGPIPE, &old_pipe_, nullptr);
  for (int& p : g_pipe) {
    if (p >= 0) ::close(p);
    p = -1;
  }
}

void TerminalSession::Restore() {
  if (raw_) ::tcsetattr(fd_, TCSADRAIN, &saved_);
  raw_ = false;
}

int TerminalSession::signal_fd() const { return g_pipe[0]; }

}  // namespace ladle::runner::spoon
