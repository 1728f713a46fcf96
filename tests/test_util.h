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
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>

namespace ladle {
namespace testing {

// A loopback port nothing listens on right now, for a server a test starts.
// Drawn below Linux's ephemeral range (32768-60999): a port the kernel picked
// for port 0 is one it also hands to outgoing connections, which took such a
// port between the pick and the server's bind (a flake seen in CI). Tests
// running at once draw at random, so they rarely pick the same one.
inline int FreePort() {
  static thread_local unsigned seed =
      static_cast<unsigned>(::getpid()) * 2654435761u ^ static_cast<unsigned>(::time(nullptr));
  for (int attempt = 0; attempt < 200; ++attempt) {
    seed = seed * 1103515245u + 12345u;
    const int port = 20000 + static_cast<int>((seed >> 8) % 12000);
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) break;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    const bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    if (free) return port;
  }
  return 0;  // the server then says it cannot listen
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
