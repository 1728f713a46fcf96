// Step logs: one file per step attempt, appended as output arrives.
//
// Format (docs/logs.md): one record per line, "o " for stdout and "e " for
// stderr, then the text. A line longer than 64 KiB is split into records; a
// final line without newline is written at Close. Secrets are masked before
// anything reaches the file. Memory use is bounded whatever the step prints.
#ifndef LADLE_RUNNER_STEP_LOG_H_
#define LADLE_RUNNER_STEP_LOG_H_

#include <cstdio>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "env/engine.h"

namespace ladle::runner {

// Replaces every occurrence of each secret value by "***". Values shorter
// than 3 characters are not masked (they would mask half of every log).
class SecretMasker {
 public:
  explicit SecretMasker(std::vector<std::string> secrets);
  std::string Mask(std::string_view text) const;
  bool empty() const { return secrets_.empty(); }

 private:
  std::vector<std::string> secrets_;  // longest first
};

// A complete line of output (without its newline), after masking.
using LineCallback = std::function<void(env::OutputStream, std::string_view line)>;

// An OutputSink that splits chunks into lines per stream, masks them, appends
// them to a log file and hands each to an optional callback (the terminal).
class StepLogWriter : public env::OutputSink {
 public:
  StepLogWriter(const SecretMasker* masker, LineCallback on_line);
  ~StepLogWriter() override;

  // Creates parent directories; appends when the file exists.
  Status Open(const std::string& path);
  void Write(env::OutputStream stream, std::string_view data) override;
  // Writes a note from ladle itself (e.g. "attempt 2 of 3") as a stderr record
  // prefixed with "ladle: ".
  void Note(std::string_view text);
  // Flushes partial lines and closes the file.
  Status Close();
  uint64_t bytes_written() const { return bytes_written_; }

 private:
  void EmitLine(env::OutputStream stream, std::string_view line);

  const SecretMasker* masker_;
  LineCallback on_line_;
  std::FILE* file_ = nullptr;
  std::string partial_[2];  // stdout, stderr
  uint64_t bytes_written_ = 0;
  Status error_;
};

struct LogRecord {
  env::OutputStream stream;
  std::string text;
};

// Reads records from `path` starting at byte `*offset`, advancing it past the
// last complete line. Used by `ladle logs` and, repeatedly, by `-f`.
Status ReadLogRecords(const std::string& path, uint64_t* offset,
                      std::vector<LogRecord>* records);

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_STEP_LOG_H_
