#include "core/base/status.h"

#include <cstring>

namespace ladle {

Status Status::FromErrno(const std::string& what, int errno_value) {
  return Status(errno_value == EACCES || errno_value == EPERM ? Code::kPermission
                                                              : Code::kIoError,
                what + ": " + std::strerror(errno_value));
}

Status Status::WithContext(const std::string& context) const {
  if (ok()) return *this;
  return Status(code_, context + ": " + message_);
}

int Status::ExitCode() const {
  switch (code_) {
    case Code::kOk:
      return 0;
    case Code::kFailed:
      return 1;
    case Code::kInvalid:
    case Code::kNotFound:
    case Code::kConflict:
    case Code::kPrecondition:
    case Code::kPermission:
    case Code::kUnauthorized:
    case Code::kTooLarge:
      return 2;
    case Code::kUnavailable:
    case Code::kIoError:
      return 3;
    case Code::kCancelled:
      return 130;
    case Code::kInternal:
      return 70;
  }
  return 1;
}

}  // namespace ladle
