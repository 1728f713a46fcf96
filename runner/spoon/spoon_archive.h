// The tar stream that copies a host file or folder into a spoon
// (`copy:`, docs/spoons.md "Settings"), made with libarchive.
#ifndef LADLE_RUNNER_SPOON_SPOON_ARCHIVE_H_
#define LADLE_RUNNER_SPOON_SPOON_ARCHIVE_H_

#include <cstddef>
#include <string>

#include "core/base/status.h"

namespace ladle::runner::spoon {

constexpr size_t kMaxCopyBytes = size_t{256} << 20;  // what one copy may hold in total
constexpr size_t kMaxCopyEntries = 200000;

// A tar (pax) of `host_path` (absolute; a file, a folder with everything
// below it, or a symbolic link, kept as a link) named `target` inside
// ("a/b/c", relative to where it is extracted), preceded by entries for
// target's parent folders (mode 0755). Everything is owned by root (0:0);
// modes and times come from the host. Sockets, fifos and devices are left
// out. Invalid when host_path is missing; TooLarge past kMaxCopyBytes or
// kMaxCopyEntries; IoError (naming the file) when one cannot be read.
Status BuildCopyArchive(const std::string& host_path, const std::string& target, std::string* tar);

}  // namespace ladle::runner::spoon

#endif  // LADLE_RUNNER_SPOON_SPOON_ARCHIVE_H_
