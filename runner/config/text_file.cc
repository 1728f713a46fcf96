#include "runner/config/text_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace ladle::runner {

int OpenRegularFile(const std::string& path, std::size_t limit, std::string* error,
                    struct stat* st, int* errno_value) {
  struct stat own;
  if (st == nullptr) st = &own;
  int ignored;
  if (errno_value == nullptr) errno_value = &ignored;
  *errno_value = 0;
  // O_NONBLOCK: opening a FIFO must not hang; the file type is checked next.
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0 || fstat(fd, st) != 0) {
    *errno_value = errno;
    *error = std::string("cannot read: ") + std::strerror(errno);
  } else if (!S_ISREG(st->st_mode)) {
    *error = std::string("cannot read: ") +
             (S_ISDIR(st->st_mode) ? std::strerror(EISDIR) : "not a regular file");
  } else if (static_cast<std::size_t>(st->st_size) > limit) {
    *error = "the file is too large: " + std::to_string(st->st_size) + " bytes, over the " +
             std::to_string(limit >> 20) + " MB limit";
  } else {
    return fd;
  }
  if (fd >= 0) close(fd);
  return -1;
}

bool ReadOpenFile(int fd, std::size_t limit, std::string* text, std::string* error) {
  char buf[65536];
  while (text->size() <= limit) {
    ssize_t got = read(fd, buf, std::min(sizeof buf, limit + 1 - text->size()));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) *error = std::string("cannot read: ") + std::strerror(errno);
    if (got <= 0) break;
    text->append(buf, static_cast<std::size_t>(got));
  }
  close(fd);
  return error->empty();
}

bool ReadTextFile(const std::string& path, std::size_t limit, std::string* text,
                  std::string* error) {
  int fd = OpenRegularFile(path, limit, error);
  return fd >= 0 && ReadOpenFile(fd, limit, text, error);
}

}  // namespace ladle::runner
