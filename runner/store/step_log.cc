#include "runner/store/step_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

namespace ladle::runner {
namespace {

using env::OutputStream;

constexpr size_t kFileBuffer = 256 * 1024;
constexpr size_t kReadBlock = 64 * 1024;
constexpr size_t kNotSearched = std::string_view::npos - 1;
constexpr size_t kInlineSecrets = 8;

int Index(OutputStream stream) { return stream == OutputStream::kStderr ? 1 : 0; }

char Prefix(OutputStream stream) { return stream == OutputStream::kStderr ? 'e' : 'o'; }

bool IsUtf8Continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// Where to cut a record of at most `max` bytes from `text` (longer than
// `max`): backs off the middle of a UTF-8 sequence, unless it is not UTF-8.
size_t RecordCut(std::string_view text, size_t max) {
  size_t cut = max;
  while (cut > max - 3 && IsUtf8Continuation(text[cut])) --cut;
  return IsUtf8Continuation(text[cut]) ? max : cut;
}

// The lines of a secret value; the masker sees the log one line at a time.
void AddLines(std::string_view secret, std::vector<std::string>* out) {
  while (true) {
    const size_t end = std::min(secret.find('\n'), secret.size());
    std::string_view line = secret.substr(0, end);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() >= 3) out->emplace_back(line);
    if (end == secret.size()) return;
    secret.remove_prefix(end + 1);
  }
}

LogRecord ParseRecord(std::string_view line) {
  if (line.size() >= 2 && line[1] == ' ' && (line[0] == 'o' || line[0] == 'e')) {
    return {line[0] == 'e' ? OutputStream::kStderr : OutputStream::kStdout,
            std::string(line.substr(2))};
  }
  return {OutputStream::kStdout, std::string(line)};
}

}  // namespace

// ---- SecretMasker ----

SecretMasker::SecretMasker(std::vector<std::string> secrets) {
  for (const std::string& secret : secrets) AddLines(secret, &secrets_);
  std::sort(secrets_.begin(), secrets_.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() > b.size() : a < b;
  });
  secrets_.erase(std::unique(secrets_.begin(), secrets_.end()), secrets_.end());
}

std::string SecretMasker::Mask(std::string_view text) const {
  std::string out;
  MaskAppend(text, &out);
  return out;
}

void SecretMasker::MaskAppend(std::string_view text, std::string* out) const {
  MaskPrefix(text, /*final=*/true, out);
}

// `next` caches each secret's next occurrence, so text with many matches of
// one secret is not rescanned for the others after every match.
size_t SecretMasker::Find(std::string_view text, size_t from, size_t* next,
                          size_t* length) const {
  size_t best = std::string_view::npos;
  for (size_t i = 0; i < secrets_.size(); ++i) {
    if (next[i] == kNotSearched || next[i] < from) next[i] = text.find(secrets_[i], from);
    // Strictly less: at a tie the earlier, longer secret stays.
    if (next[i] < best) {
      best = next[i];
      *length = secrets_[i].size();
    }
  }
  return best;
}

size_t SecretMasker::MaskPrefix(std::string_view text, bool final, std::string* out) const {
  if (secrets_.empty()) {
    out->append(text);
    return text.size();
  }
  // An occurrence starting before `limit` lies wholly inside text; past it,
  // later bytes could complete a secret, so that tail waits.
  const size_t hold = std::min(max_length() - 1, text.size());
  const size_t limit = final ? text.size() : text.size() - hold;
  size_t inline_next[kInlineSecrets];
  std::vector<size_t> heap_next;
  size_t* next = inline_next;
  if (secrets_.size() > kInlineSecrets) next = (heap_next.resize(secrets_.size()), heap_next.data());
  std::fill(next, next + secrets_.size(), kNotSearched);
  size_t pos = 0, length = 0;
  for (size_t at; (at = Find(text, pos, next, &length)) < limit; pos = at + length) {
    out->append(text.substr(pos, at - pos));
    out->append("***");
  }
  const size_t end = std::max(pos, limit);
  out->append(text.substr(pos, end - pos));
  return end;
}

// ---- StepLogWriter ----

StepLogWriter::StepLogWriter(const SecretMasker* masker, LineCallback on_line)
    : masker_(masker != nullptr && !masker->empty() ? masker : nullptr),
      on_line_(std::move(on_line)) {}

// The owner calls Close() and reports its error (the executor fails the
// step); a destructor has nobody to tell.
StepLogWriter::~StepLogWriter() { Close().IgnoreError(); }

Status StepLogWriter::Open(const std::string& path) {
  if (file_ != nullptr) return Status::Internal("open log " + path + ": already open");
  path_ = path;
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  if (ec) return Status::IoError("create directory for log " + path + ": " + ec.message());
  // 'e': O_CLOEXEC, so steps spawned later do not inherit the log.
  // '+': to read the last byte below; writes still always append.
  file_ = std::fopen(path.c_str(), "a+be");
  if (file_ == nullptr) return Status::FromErrno("open log " + path, errno);
  buffer_.reset(new char[kFileBuffer]);
  std::setvbuf(file_, buffer_.get(), _IOFBF, kFileBuffer);
  // A ladle killed mid-record left a line without its newline: end it, so
  // this attempt's first record starts on a line of its own.
  struct stat info;
  char last = '\n';
  if (::fstat(fileno(file_), &info) == 0 && info.st_size > 0 &&
      ::pread(fileno(file_), &last, 1, info.st_size - 1) == 1 && last != '\n') {
    std::fputc('\n', file_);
    dirty_ = true;
    Flush();
  }
  return error_;
}

void StepLogWriter::Write(OutputStream stream, std::string_view data) {
  const int i = Index(stream);
  while (!data.empty()) {
    const size_t newline = data.find('\n');
    if (newline == std::string_view::npos) {
      AppendPartial(stream, data);
      break;
    }
    const std::string_view line = data.substr(0, newline);
    // The common case, a whole line inside the chunk, is never copied.
    if (partial_[i].empty() && masked_[i].empty() && line.size() <= kMaxRecord) {
      EmitLine(stream, line);
    } else {
      AppendPartial(stream, line);
      EndLine(stream);
    }
    data.remove_prefix(newline + 1);
  }
  Flush();
}

void StepLogWriter::AppendPartial(OutputStream stream, std::string_view data) {
  std::string& raw = partial_[Index(stream)];
  while (!data.empty()) {
    // A slice at a time keeps raw near kMaxRecord however big the chunk.
    const size_t n = std::min(data.size(), kMaxRecord);
    raw.append(data.data(), n);
    data.remove_prefix(n);
    if (raw.size() > kMaxRecord) DrainLongLine(stream, /*final=*/false);
  }
}

// Masks what of a long line can be masked, and writes whole records of it.
// Records are cut from masked text, so a cut never splits a secret.
void StepLogWriter::DrainLongLine(OutputStream stream, bool final) {
  std::string& raw = partial_[Index(stream)];
  std::string& out = masked_[Index(stream)];
  size_t used = raw.size();
  if (masker_ != nullptr) {
    used = masker_->MaskPrefix(raw, final, &out);
  } else {
    out.append(raw);
  }
  raw.erase(0, used);
  // Until the line ends, keep some text back so its last record is not empty.
  while (out.size() > kMaxRecord || (final && !out.empty())) {
    const size_t cut = out.size() > kMaxRecord ? RecordCut(out, kMaxRecord) : out.size();
    EmitMasked(stream, std::string_view(out).substr(0, cut));
    out.erase(0, cut);
  }
}

void StepLogWriter::EndLine(OutputStream stream) {
  const int i = Index(stream);
  if (masked_[i].empty() && partial_[i].size() <= kMaxRecord) {
    EmitLine(stream, partial_[i]);
    partial_[i].clear();
  } else {
    DrainLongLine(stream, /*final=*/true);
  }
}

void StepLogWriter::EmitLine(OutputStream stream, std::string_view line) {
  record_.clear();
  record_.push_back(Prefix(stream));
  record_.push_back(' ');
  if (masker_ != nullptr) {
    masker_->MaskAppend(line, &record_);
  } else {
    record_.append(line);
  }
  record_.push_back('\n');
  WriteRecord(stream);
}

void StepLogWriter::EmitMasked(OutputStream stream, std::string_view masked) {
  record_.clear();
  record_.push_back(Prefix(stream));
  record_.push_back(' ');
  record_.append(masked);
  record_.push_back('\n');
  WriteRecord(stream);
}

// After the first error the file is left alone (the step's output still
// reaches on_line); Close reports the error.
void StepLogWriter::WriteRecord(OutputStream stream) {
  if (file_ != nullptr && error_.ok()) {
    if (std::fwrite(record_.data(), 1, record_.size(), file_) == record_.size()) {
      bytes_written_ += record_.size();
      dirty_ = true;
    } else {
      error_ = Status::FromErrno("write log " + path_, errno);
    }
  }
  if (on_line_) on_line_(stream, std::string_view(record_).substr(2, record_.size() - 3));
}

void StepLogWriter::Flush() {
  if (!dirty_ || file_ == nullptr || !error_.ok()) return;
  dirty_ = false;
  if (std::fflush(file_) != 0) error_ = Status::FromErrno("write log " + path_, errno);
}

void StepLogWriter::Note(std::string_view text) {
  std::string line;
  while (true) {
    const size_t end = std::min(text.find('\n'), text.size());
    line.assign("ladle: ").append(text.substr(0, end));
    EmitLine(OutputStream::kStderr, line);
    if (end == text.size()) break;
    text.remove_prefix(end + 1);
  }
  Flush();
}

Status StepLogWriter::Close() {
  for (OutputStream stream : {OutputStream::kStdout, OutputStream::kStderr}) {
    const int i = Index(stream);
    if (!partial_[i].empty() || !masked_[i].empty()) EndLine(stream);
  }
  Flush();
  if (file_ != nullptr) {
    if (std::fclose(file_) != 0 && error_.ok()) {
      error_ = Status::FromErrno("close log " + path_, errno);
    }
    file_ = nullptr;
  }
  buffer_.reset();
  return error_;
}

// ---- Reading ----

Status ReadLogRecords(const std::string& path, uint64_t* offset,
                      std::vector<LogRecord>* records) {
  return ReadLogRecords(path, offset, records, SIZE_MAX);
}

Status ReadLogRecords(const std::string& path, uint64_t* offset,
                      std::vector<LogRecord>* records, size_t max_bytes) {
  records->clear();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) return Status::NotFound("no log at " + path);
  if (fd < 0) return Status::FromErrno("open log " + path, errno);
  std::string carry;
  std::string block(kReadBlock, '\0');
  uint64_t used = 0;
  Status status;
  while (used < max_bytes) {
    const ssize_t n = ::pread(fd, block.data(), block.size(), *offset + used + carry.size());
    if (n < 0) status = Status::FromErrno("read log " + path, errno);
    if (n <= 0) break;
    carry.append(block.data(), static_cast<size_t>(n));
    size_t start = 0;
    for (size_t nl; (nl = carry.find('\n', start)) != std::string::npos; start = nl + 1) {
      records->push_back(ParseRecord(std::string_view(carry).substr(start, nl - start)));
    }
    used += start;
    carry.erase(0, start);
  }
  ::close(fd);
  // Only whole lines count: an incomplete last line is read again next time.
  *offset += used;
  return status;
}

std::string StepLogPath(const std::string& data_dir, int64_t run_id, const std::string& stage,
                        const std::string& step) {
  return data_dir + "/logs/" + std::to_string(run_id) + "/" + stage + "/" + step + ".log";
}

}  // namespace ladle::runner
