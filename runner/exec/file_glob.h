// Workspace-relative globs, for JUnit report paths and artifacts.
//
// One matcher, one semantics, shell-like (bash with globstar, no dotglob):
//   *, ?, [...]  match within one path component (fnmatch(3)); they do not
//                match a leading '.', so hidden files need an explicit ".*".
//   **           as a whole component: zero or more directories. A trailing
//                "dir/**" means everything below dir (as "dir/**/*").
//                It does not descend into hidden directories (.git, .venv)
//                nor through symbolic links (no cycles, no leaving the tree).
// Unreadable directories are skipped, as glob(3), bash and Python do.
// Thread-safe: no shared state, no chdir.
#ifndef LADLE_RUNNER_EXEC_FILE_GLOB_H_
#define LADLE_RUNNER_EXEC_FILE_GLOB_H_

#include <string>
#include <vector>

#include "core/base/status.h"

namespace ladle::runner {

// Replaces *matches with every regular file or directory under `root` that
// one of `patterns` names: relative paths ("out/unit.xml"), sorted, unique.
// A path that resolves outside `root` (a symbolic link out of the workspace)
// is left out, so an artifact glob can never copy /etc/passwd to the store.
//
// Invalid, naming the pattern, when a pattern is empty, absolute, contains a
// ".." component or names `root` itself. IoError when `root` is not a
// readable directory. A pattern that matches nothing is not an error: the
// caller decides what that means (CollectJUnitReports turns it into a note).
Status ExpandGlobs(const std::string& root, const std::vector<std::string>& patterns,
                   std::vector<std::string>* matches);

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_EXEC_FILE_GLOB_H_
