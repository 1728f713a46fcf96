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

// What a `ladle run` ran, besides HEAD (docs/running.md "Same inputs as CI").
struct TreeState {
  std::string tree;                        // git tree id of HEAD plus the changes
  bool dirty = false;                      // tree differs from HEAD's
  std::vector<std::string> changed_paths;  // vs HEAD, at most kMaxTreePaths
};
constexpr size_t kMaxTreePaths = 1000;

// The tree of the working tree as it is now: HEAD plus its changes, and
// untracked files that are not ignored, written as git objects into the
// repository's object store (as `git stash` does; nothing else of the
// repository changes) through a temporary index `scratch_index`. Paths
// under `exclude` (absolute, may be empty) are left out. REQUIRES:
// source.is_git.
Status ReadTreeState(const SourceInfo& source, const std::string& scratch_index,
                     const std::string& exclude, TreeState* state);

// Makes `dest` a git checkout like `ladle serve`'s (a `.git` that borrows the
// repository's objects, HEAD detached at source.commit) whose files are
// `state.tree`: HEAD with the working tree's changes on top, the index at
// HEAD, so `git status` in a step shows the changes. Fills *state
// (ReadTreeState). Outside git (or before the first commit) it falls back to
// CopyWorkingTree, with state->tree empty or not dirty.
// Writes DEST/.git: the skeleton `git init` would write (less the process),
// with `head` as HEAD ("ref: refs/heads/main" or a commit) and `objects`, a
// repository's objects directory, borrowed through alternates, so no object
// is copied. The server's checkouts and `ladle run`'s both start this way.
Status WriteBorrowingGitDir(const std::string& dest, const std::string& head,
                            const std::string& objects);

Status CheckoutWorkingTree(const SourceInfo& source, const std::string& dest,
                           const std::string& exclude, TreeState* state);

// Up to `limit` paths that differ between two trees of `source`'s
// repository (`git diff --name-only`), and in *more how many more.
Status ChangedPaths(const SourceInfo& source, const std::string& from_tree,
                    const std::string& to_tree, size_t limit, std::vector<std::string>* paths,
                    size_t* more);

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
