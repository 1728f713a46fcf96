// Step logs: one file per step attempt, appended as output arrives.
//
// Format (docs/logs.md): one record per line, "o " for stdout and "e " for
// stderr, then the text. A line longer than 64 KiB is split into records; a
// final line without newline is written at Close. Secrets are masked before
// anything reaches the file. Memory use is bounded whatever the step prints.
#ifndef LADLE_RUNNER_STORE_STEP_LOG_H_
#define LADLE_RUNNER_STORE_STEP_LOG_H_

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/status.h"
#include "env/engine.h"

namespace ladle::runner {

// Replaces every occurrence of each secret value by "***". Values shorter
// than 3 characters are not masked (they would mask half of every log).
// Logs are masked line by line, so a value with newlines (a key file) is
// masked as its separate lines. Where occurrences overlap, the leftmost wins,
// and the longest of those starting there.
class SecretMasker {
 public:
  explicit SecretMasker(std::vector<std::string> secrets);
  std::string Mask(std::string_view text) const;
  bool empty() const { return secrets_.empty(); }

  // Appends Mask(text) to *out (no allocation when *out has room).
  void MaskAppend(std::string_view text, std::string* out) const;
  // For text that continues later: appends the masked form of the longest
  // prefix that later bytes cannot change, and returns that prefix's length
  // (at least text.size() - max_length() + 1, all of it when `final`).
  // Masking a stream piece by piece this way gives the same as Mask(whole).
  size_t MaskPrefix(std::string_view text, bool final, std::string* out) const;
  size_t max_length() const { return secrets_.empty() ? 0 : secrets_.front().size(); }

 private:
  // Leftmost occurrence at or after `from` (longest there); npos if none.
  // next[i] caches where secrets_[i] occurs next.
  size_t Find(std::string_view text, size_t from, size_t* next, size_t* length) const;

  std::vector<std::string> secrets_;  // longest first
};

// A complete line of output (without its newline), after masking.
using LineCallback = std::function<void(env::OutputStream, std::string_view line)>;

// An OutputSink that splits chunks into lines per stream, masks them, appends
// them to a log file and hands each to an optional callback (the terminal).
// Complete records are flushed at the end of each Write and Note, so a
// reader in another process (`ladle logs -f`) never waits on a buffer and
// never sees half a record. Memory: under 1 MiB whatever the step prints.
// Not thread-safe: Write, Note and Close from one thread at a time.
// `masker` (may be null) must outlive the writer.
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

  // The longest record text; longer lines are split into several records.
  static constexpr size_t kMaxRecord = 64 * 1024;

 private:
  void EmitLine(env::OutputStream stream, std::string_view line);
  void EmitMasked(env::OutputStream stream, std::string_view masked);
  void WriteRecord(env::OutputStream stream);
  void AppendPartial(env::OutputStream stream, std::string_view data);
  void DrainLongLine(env::OutputStream stream, bool final);
  void EndLine(env::OutputStream stream);
  void Flush();

  const SecretMasker* masker_;
  LineCallback on_line_;
  std::FILE* file_ = nullptr;
  std::string partial_[2];  // stdout, stderr
  uint64_t bytes_written_ = 0;
  Status error_;

  std::string path_;
  std::unique_ptr<char[]> buffer_;  // the FILE's buffer, 256 KiB
  // A line longer than kMaxRecord is masked as it streams in: partial_ keeps
  // only the raw tail a secret could still straddle, masked_ the masked text
  // not yet written as a record. Empty while the line is short.
  std::string masked_[2];
  std::string record_;  // reused for every record: no allocation per line
  bool dirty_ = false;  // records written since the last flush
};

struct LogRecord {
  env::OutputStream stream;
  std::string text;
};

// Reads records from `path` starting at byte `*offset`, advancing it past the
// last complete line. Used by `ladle logs` and, repeatedly, by `-f`.
// Replaces *records. NotFound when the file does not exist (yet). A line not
// in the "o "/"e " form (a record torn by a crash) reads as stdout text, whole.
Status ReadLogRecords(const std::string& path, uint64_t* offset,
                      std::vector<LogRecord>* records);
// The same, stopping after about `max_bytes` (at least one record), so a
// follower can page through a huge log with bounded memory.
Status ReadLogRecords(const std::string& path, uint64_t* offset,
                      std::vector<LogRecord>* records, size_t max_bytes);

// Where a step's log lives: DATA/logs/RUN/STAGE/STEP.log (docs/logs.md).
std::string StepLogPath(const std::string& data_dir, int64_t run_id, const std::string& stage,
                        const std::string& step);

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_STORE_STEP_LOG_H_
