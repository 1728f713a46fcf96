// Where a problem is in a file, and the problem as the user reads it:
// "FILE:LINE:COL: message". Every reader of ladle's files (pipeline,
// server.yml, toggles files) reports its errors as Diagnostics.
#ifndef LADLE_RUNNER_CONFIG_DIAGNOSTIC_H_
#define LADLE_RUNNER_CONFIG_DIAGNOSTIC_H_

#include <string>

namespace ladle::runner {

struct Location {
  int line = 0;    // 1-based; 0 when unknown
  int column = 0;  // 1-based
};

struct Diagnostic {
  std::string file;
  Location location;
  bool warning = false;
  std::string message;

  // "FILE:LINE:COL: message" or "FILE:LINE:COL: warning: message".
  std::string ToString() const;
};

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_CONFIG_DIAGNOSTIC_H_
