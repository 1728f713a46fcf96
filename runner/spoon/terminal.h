// The local terminal while `ladle env NAME` is attached to a spoon
// (docs/spoons.md "Entering a spoon"): raw mode in and out, restored on every
// way out, and the signals that matter while attached (window size
// changes, hang-up, termination) turned into bytes on a pipe that the
// attach loop polls.
#ifndef LADLE_RUNNER_SPOON_TERMINAL_H_
#define LADLE_RUNNER_SPOON_TERMINAL_H_

#include <termios.h>

#include <csignal>

namespace ladle::runner::spoon {

// RAII: raw mode on `fd` (when it is a terminal) and the signal pipe, for
// the lifetime of the object. One at a time per process (the signal
// handlers are process-wide). Ctrl-C, Ctrl-Z and Ctrl-\ are plain bytes in
// raw mode: they reach the program in the spoon, not ladle.
class TerminalSession {
 public:
  explicit TerminalSession(int fd);
  ~TerminalSession();
  TerminalSession(const TerminalSession&) = delete;
  TerminalSession& operator=(const TerminalSession&) = delete;

  // Puts the terminal back as it was (also done by the destructor).
  void Restore();
  // The read end of the signal pipe: one byte per signal, its number.
  int signal_fd() const;
  bool raw() const { return raw_; }

 private:
  int fd_;
  bool raw_ = false;
  termios saved_{};
  struct sigaction old_winch_{}, old_term_{}, old_hup_{}, old_pipe_{};
};

// The terminal's size; false when `fd` is not a terminal.
bool TerminalSize(int fd, int* rows, int* cols);

}  // namespace ladle::runner::spoon

#endif  // LADLE_RUNNER_SPOON_TERMINAL_H_
