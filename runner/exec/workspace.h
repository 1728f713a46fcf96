// Workspaces and artifacts of a run.
//
// `ladle run` never touches the user's tree (unless --bind): the run gets a
// copy of the tracked and untracked-not-ignored files (what `git ls-files -co
// --exclude-standard` lists), or of the whole directory when it is not a git
// tree. Artifacts are copied out of the workspace after their step succeeds
// and restored into later runs' workspaces by --step and --from.
#ifndef LADLE_RUNNER_EXEC_WORKSPACE_H_
#define LADLE_RUNNER_EXEC_WORKSPACE_H_

#include <string>
#include <vector>

#include "core/base/status.h"

namespace ladle::runner {

struct SourceInfo {
  // The working tree: the git top level; outside git, the current directory
  // when the pipeline file lies below it, else the file's directory.
  std::string root;
  bool is_git = false;
  std::string commit;   // HEAD, empty outside git
  std::string branch;   // current branch, empty when detached or outside git
};

// Finds the working tree that holds `pipeline_file` and its git state.
Status DescribeSource(const std::string& pipeline_file, SourceInfo* info);

// Copies the working tree into `dest` (created). `exclude` (absolute, may be
// empty) is skipped, so a data dir inside the tree is not copied into itself.
Status CopyWorkingTree(const SourceInfo& source, const std::string& dest,
                       const std::string& exclude);

// Copies what `patterns` (globs relative to `workspace`) match into `dest`,
// keeping relative paths. Reports patterns that matched nothing in `missing`.
Status SaveArtifacts(const std::string& workspace, const std::vector<std::string>& patterns,
                     const std::string& dest, std::vector<std::string>* missing);

// Copies everything under `saved` back into `workspace`, overwriting.
Status RestoreArtifacts(const std::string& saved, const std::string& workspace);

// Copies a file, a symlink or a directory tree; parents of `to` are created.
Status CopyPath(const std::string& from, const std::string& to);

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_EXEC_WORKSPACE_H_
