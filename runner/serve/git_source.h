// Git repositories that `ladle serve` watches: their branch heads, and
// checkouts of one commit into a run's workspace. Everything goes through the
// git command line (env::RunCommand), so any URL git can fetch works, and a
// local path needs no network.
#ifndef LADLE_RUNNER_SERVE_GIT_SOURCE_H_
#define LADLE_RUNNER_SERVE_GIT_SOURCE_H_

#include <map>
#include <string>
#include <string_view>

#include "core/base/status.h"

namespace ladle::runner {

// Why `ref` ("refs/heads/main") is not a valid git ref name, or "" when it
// is: the rules of `git check-ref-format` (docs/server.md "Webhook trust"),
// and at most 255 bytes.
std::string RefNameProblem(std::string_view ref);
// The same for a branch name ("main", "release/1.2"), with the rules of
// `git check-ref-format --branch`: also not "HEAD", not starting with '-'.
std::string BranchNameProblem(std::string_view branch);

// Branch name -> commit of every branch of `url` (git ls-remote --heads).
// Unavailable when git cannot reach the repository.
Status ListBranches(const std::string& url, std::map<std::string, std::string>* heads);

// A local mirror of one repository (DATA/repos/NAME.git), fetched on demand,
// from which checkouts are made without touching the network again. A
// repository that is a local directory needs no mirror: its own objects are
// read and borrowed directly, so a commit there is seen without a fetch.
// Not thread-safe: one caller at a time (ladle serve holds a lock per
// repository).
class GitMirror {
 public:
  GitMirror(std::string url, std::string mirror_dir);

  // Clones the mirror the first time, fetches every branch after that (or
  // only `branch` when given).
  Status Fetch(const std::string& branch = "");
  // Checks `commit` out into `dest` (created; must not exist): a repository
  // that borrows the mirror's objects (git alternates, so the mirror must
  // outlive it), detached at the commit. Fetches once when the commit is not
  // in the mirror yet.
  Status Checkout(const std::string& commit, const std::string& dest);

  // The content of `path` at `commit` (fetching once when the commit is not
  // in the mirror yet); NotFound when the commit has no such file.
  // `branch`, when known, narrows that fetch.
  Status ReadFile(const std::string& commit, const std::string& path, std::string* content,
                  const std::string& branch = "");

  // The commit `branch` points at in the repository: a local one as read
  // now, a remote one as fetched now (that branch only). NotFound when the
  // repository has no such branch. REQUIRES: BranchNameProblem(branch) == "".
  Status BranchHead(const std::string& branch, std::string* commit);
  // docs/server.md "Triggers": what `ref` ("refs/tags/v1", "refs/pull/7/head")
  // names in the repository now: a local one as read now, a remote one as
  // fetched now (that ref only). *object is the ref's own object (an
  // annotated tag's tag object), *commit the commit it leads to. NotFound
  // when there is no such ref. REQUIRES: RefNameProblem(ref) == "".
  Status ResolveRef(const std::string& ref, std::string* object, std::string* commit);
  // Whether `commit` (an object id) is a commit of the repository, fetching
  // every branch once when the mirror lacks it.
  Status HasCommitFetched(const std::string& commit);

  // Whether commit `ancestor` is an ancestor of `descendant` (git merge-base
  // --is-ancestor); an error when git cannot tell (a commit it lacks).
  Status IsAncestor(const std::string& ancestor, const std::string& descendant, bool* is);

  const std::string& url() const { return url_; }

 private:
  // Decides once whether url_ is a local directory; if so, dir_ becomes its
  // git directory.
  void Resolve();
  bool HasCommit(const std::string& commit);
  Status EnsureCommit(const std::string& commit, const std::string& branch);

  std::string url_;
  std::string dir_;  // the mirror, or a local repository's own git directory
  bool resolved_ = false;
  bool local_ = false;
};

}  // namespace ladle::runner

#endif  // LADLE_RUNNER_SERVE_GIT_SOURCE_H_
