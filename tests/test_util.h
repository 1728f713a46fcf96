// Small helpers shared by the tests: a free loopback port, a file's text,
// a fresh temp dir.
#ifndef LADLE_TESTS_TEST_UTIL_H_
#define LADLE_TESTS_TEST_UTIL_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>

namespace ladle {
namespace testing {

// A port nothing listens on right now (the kernel's pick for port 0).
inline int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// The whole text of a file; "" if it is missing or unreadable.
inline std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A new empty directory made by mkdtemp(3) from `tmpl`, a path that ends in
// XXXXXX (e.g. "/tmp/ladle-e2e-XXXXXX"). Throws if it cannot be made.
inline std::filesystem::path MakeTempDir(std::string tmpl) {
  const char* dir = ::mkdtemp(tmpl.data());
  if (dir == nullptr) throw std::system_error(errno, std::generic_category(), "mkdtemp " + tmpl);
  return dir;
}

}  // namespace testing
}  // namespace ladle

#endif  // LADLE_TESTS_TEST_UTIL_H_
