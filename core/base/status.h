// Status: the outcome of an operation that can fail, as a value.
//
// Modelled on leveldb's Status: the core never throws across module lines and
// never exits; it returns a Status and the edge (CLI, HTTP) turns it into a
// message and an exit code or a response. A Status is cheap to copy when ok.
#ifndef LADLE_CORE_BASE_STATUS_H_
#define LADLE_CORE_BASE_STATUS_H_

#include <string>
#include <utility>

namespace ladle {

enum class Code {
  kOk = 0,
  kInvalid,       // bad input from a user: a file, a flag, a request body (exit 2 / 400)
  kNotFound,      // a named thing does not exist (exit 2 / 404)
  kConflict,      // it exists already (409)
  kPrecondition,  // a stale revision (412)
  kPermission,    // not allowed (403)
  kUnauthorized,  // no or unknown credentials (401)
  kTooLarge,      // over a size limit (413)
  kUnavailable,   // an outside dependency failed: docker, a server, a locked database (exit 3)
  kIoError,       // the local file system or an OS call failed
  kCancelled,     // stopped on request
  kFailed,        // the thing ran and failed (a step, a gate): exit 1
  kInternal,      // a bug in ladle
};

// [[nodiscard]]: a Status is handled or dropped on purpose with
// IgnoreError() beside a comment that says why (docs/design.md "Errors").
class [[nodiscard]] Status {
 public:
  Status() = default;

  static Status OK() { return Status(); }
  static Status Invalid(std::string msg) { return Status(Code::kInvalid, std::move(msg)); }
  static Status NotFound(std::string msg) { return Status(Code::kNotFound, std::move(msg)); }
  static Status Conflict(std::string msg) { return Status(Code::kConflict, std::move(msg)); }
  static Status Precondition(std::string msg) { return Status(Code::kPrecondition, std::move(msg)); }
  static Status Permission(std::string msg) { return Status(Code::kPermission, std::move(msg)); }
  static Status Unauthorized(std::string msg) { return Status(Code::kUnauthorized, std::move(msg)); }
  static Status TooLarge(std::string msg) { return Status(Code::kTooLarge, std::move(msg)); }
  static Status Unavailable(std::string msg) { return Status(Code::kUnavailable, std::move(msg)); }
  static Status IoError(std::string msg) { return Status(Code::kIoError, std::move(msg)); }
  static Status Cancelled(std::string msg) { return Status(Code::kCancelled, std::move(msg)); }
  static Status Failed(std::string msg) { return Status(Code::kFailed, std::move(msg)); }
  static Status Internal(std::string msg) { return Status(Code::kInternal, std::move(msg)); }
  // An OS error: `what` is the operation, errno_value is errno.
  static Status FromErrno(const std::string& what, int errno_value);

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  // Returns a copy whose message is "context: message" (unchanged when ok).
  Status WithContext(const std::string& context) const;

  // "ok", or the message (the code is implied by how the edge renders it).
  std::string ToString() const { return ok() ? "ok" : message_; }

  // Drops this status on purpose. Every call says beside it why nobody
  // needs to hear of the failure.
  void IgnoreError() const {}

  // The process exit code the CLI uses for this status (docs/design.md "Exit codes").
  int ExitCode() const;

 private:
  Status(Code code, std::string msg) : code_(code), message_(std::move(msg)) {}

  Code code_ = Code::kOk;
  std::string message_;
};

}  // namespace ladle

#endif  // LADLE_CORE_BASE_STATUS_H_
