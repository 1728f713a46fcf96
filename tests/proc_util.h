// Reading /proc from tests. A process can exit between the open and the
// read: read(2) then fails with ESRCH, which std::ifstream with
// istreambuf_iterator turns into an exception ("basic_filebuf::underflow
// error reading the file"). These helpers answer "" instead: a process that
// is gone has no environment and no state.
#ifndef LADLE_TESTS_PROC_UTIL_H_
#define LADLE_TESTS_PROC_UTIL_H_

#include <fcntl.h>
#include <unistd.h>

#include <string>

namespace ladle {
namespace testing {

inline std::string ReadProcFile(const std::string& path) {
  std::string text;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return text;
  char buf[8192];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
  ::close(fd);
  if (n < 0) text.clear();
  return text;
}

inline std::string ReadProcFile(pid_t pid, const char* name) {
  return ReadProcFile("/proc/" + std::to_string(pid) + "/" + name);
}

// Whether `pid` still runs. A child of the test that has exited stays a
// zombie until its Subprocess looks (env/reaper.h: owners reap their own
// children), and a zombie has ended.
inline bool StillRunning(pid_t pid) {
  const std::string stat = ReadProcFile(pid, "stat");
  const size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z' &&
         stat[paren + 2] != 'X';
}

}  // namespace testing
}  // namespace ladle

#endif  // LADLE_TESTS_PROC_UTIL_H_
