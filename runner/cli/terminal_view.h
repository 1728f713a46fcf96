// What a person sees while `ladle run` works.
//
// On a terminal (and without NO_COLOR): a live view, redrawn ten times a
// second, of the stages with their status and duration, the steps of the
// running stage and the last line each printed. Otherwise: plain lines, each
// prefixed with [stage/step], fit for logs and pipes. Both end with the same
// summary: what ran, what failed and why, and the command that shows its log.
#ifndef LADLE_RUNNER_CLI_TERMINAL_VIEW_H_
#define LADLE_RUNNER_CLI_TERMINAL_VIEW_H_

#include <cstdio>
#include <memory>
#include <string>

#include "runner/exec/executor.h"

namespace ladle::runner {

struct ViewOptions {
  bool live = false;        // redraw in place (a TTY without NO_COLOR)
  bool color = false;
  bool quiet = false;       // -q: no step output, only the summary
  bool ask = false;         // stdin and stdout are a terminal: approval may be asked
  std::FILE* out = stdout;
};

// Picks live or plain from the environment (isatty, NO_COLOR, TERM=dumb).
ViewOptions DetectViewOptions(bool quiet);

std::unique_ptr<RunObserver> MakeTerminalView(const ViewOptions& options);

// The end-of-run summary, as both views print it (without color codes).
std::string FormatSummary(const RunRecord& run, bool color);

// Text with terminal control sequences and other control characters removed,
// so a step's output cannot move the live view's cursor.
std::string SanitizeForTerminal(std::string_view text);

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_CLI_TERMINAL_VIEW_H_
