// Reading the small text files ladle is given (pipelines, server.yml,
// toggles.yml, secrets files) with the same limits and messages everywhere.
#ifndef LADLE_RUNNER_CONFIG_TEXT_FILE_H_
#define LADLE_RUNNER_CONFIG_TEXT_FILE_H_

#include <sys/stat.h>

#include <cstddef>
#include <string>

namespace ladle::runner {

// Opens `path` for reading when it is a regular file of at most `limit`
// bytes (opening a FIFO does not hang); the descriptor, or -1 with *error
// ("cannot read: ...", "the file is too large: N bytes, over the M MB
// limit"). *st, when given, gets the file's stat; *errno_value, when given,
// the OS error (0 for the type and size checks).
int OpenRegularFile(const std::string& path, std::size_t limit, std::string* error,
                    struct stat* st = nullptr, int* errno_value = nullptr);

// Reads what is left of `fd`, at most `limit` + 1 bytes (so a file that grew
// past the limit while being read shows it), and closes it.
bool ReadOpenFile(int fd, std::size_t limit, std::string* text, std::string* error);

// The two together.
bool ReadTextFile(const std::string& path, std::size_t limit, std::string* text,
                  std::string* error);

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_CONFIG_TEXT_FILE_H_
