#include "runner/exec/workspace.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "env/subprocess.h"
#include "runner/exec/file_glob.h"

namespace fs = std::filesystem;

namespace ladle::runner {
namespace {

// Runs git in `dir`; false when git fails or is missing (not an error here:
// a tree without git is copied whole).
bool Git(const std::string& dir, const std::vector<std::string>& args, std::string* out) {
  std::vector<std::string> argv = {"git", "-C", dir};
  argv.insert(argv.end(), args.begin(), args.end());
  env::CommandResult result;
  Status s = env::RunCommand(argv, dir, &result);
  if (!s.ok() || result.exit_code != 0) return false;
  *out = result.out;
  while (!out->empty() && (out->back() == '\n' || out->back() == '\r')) out->pop_back();
  return true;
}

std::vector<std::string> SplitNul(const std::string& text) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\0', start);
    if (end == std::string::npos) end = text.size();
    if (end > start) parts.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

bool IsWithin(const fs::path& path, const fs::path& dir) {
  if (dir.empty()) return false;
  auto rel = path.lexically_relative(dir);
  return !rel.empty() && *rel.begin() != "..";
}

Status CopyAll(const fs::path& from, const fs::path& to, const fs::path& exclude) {
  std::error_code ec;
  fs::create_directories(to, ec);
  for (auto it = fs::directory_iterator(from, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    const fs::path& p = it->path();
    if (p.filename() == ".git" || (!exclude.empty() && (p == exclude || IsWithin(p, exclude))))
      continue;
    Status s = CopyPath(p.string(), (to / p.filename()).string());
    if (!s.ok()) return s;
  }
  if (ec) return Status::IoError("read " + from.string() + ": " + ec.message());
  return Status::OK();
}

}  // namespace

Status DescribeSource(const std::string& pipeline_file, SourceInfo* info) {
  *info = SourceInfo();
  std::error_code ec;
  fs::path file = fs::absolute(pipeline_file, ec);
  fs::path dir = file.parent_path();
  std::string top, answer;
  // One git for the three answers (each git costs milliseconds on every
  // run's path): the top, HEAD's commit, and the branch HEAD names ("HEAD"
  // when detached). It fails where HEAD has no commit yet: asked apart then.
  if (Git(dir.string(), {"rev-parse", "--show-toplevel", "HEAD", "--symbolic-full-name", "HEAD"},
          &answer) &&
      std::count(answer.begin(), answer.end(), '\n') == 2) {
    const size_t a = answer.find('\n'), b = answer.find('\n', a + 1);
    info->root = answer.substr(0, a);
    info->is_git = true;
    info->commit = answer.substr(a + 1, b - a - 1);
    const std::string ref = answer.substr(b + 1);
    info->branch = ref.rfind("refs/heads/", 0) == 0 ? ref.substr(11)
                   : ref.rfind("refs/", 0) == 0     ? ref.substr(5)
                                                    : "";  // detached
  } else if (Git(dir.string(), {"rev-parse", "--show-toplevel"}, &top) && !top.empty()) {
    info->root = top;
    info->is_git = true;
    Git(top, {"rev-parse", "--verify", "-q", "HEAD"}, &info->commit);
    if (!Git(top, {"symbolic-ref", "--short", "-q", "HEAD"}, &info->branch)) info->branch.clear();
  } else {
    // Outside git, paths in the pipeline are relative to where ladle was
    // started (as with gitlab-ci-local and act), when the file lies below it.
    fs::path cwd = fs::current_path(ec);
    if (!ec && IsWithin(dir.lexically_normal(), cwd)) dir = cwd;
    info->root = dir.lexically_normal().string();
    if (info->root.size() > 1 && info->root.back() == '/') info->root.pop_back();
    info->is_git = false;
  }
  return Status::OK();
}

Status CopyPath(const std::string& from, const std::string& to) {
  std::error_code ec;
  fs::create_directories(fs::path(to).parent_path(), ec);
  auto st = fs::symlink_status(from, ec);
  if (ec) return Status::IoError("stat " + from + ": " + ec.message());
  if (fs::is_symlink(st)) {
    fs::remove(to, ec);
    fs::copy_symlink(from, to, ec);
  } else if (fs::is_directory(st)) {
    fs::copy(from, to,
             fs::copy_options::recursive | fs::copy_options::copy_symlinks |
                 fs::copy_options::overwrite_existing,
             ec);
  } else if (fs::is_regular_file(st)) {
    fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
  }
  if (ec) return Status::IoError("copy " + from + " to " + to + ": " + ec.message());
  return Status::OK();
}

Status CopyWorkingTree(const SourceInfo& source, const std::string& dest,
                       const std::string& exclude) {
  std::error_code ec;
  fs::create_directories(dest, ec);
  if (ec) return Status::IoError("create workspace " + dest + ": " + ec.message());
  if (!source.is_git) return CopyAll(source.root, dest, exclude);

  env::CommandResult listed;
  Status s = env::RunCommand({"git", "-C", source.root, "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard"},
                             source.root, &listed);
  if (!s.ok()) return s.WithContext("list the files of " + source.root);
  if (listed.exit_code != 0)
    return Status::IoError("git ls-files in " + source.root + ": " + listed.err);
  fs::path root(source.root), excluded(exclude);
  for (const std::string& rel : SplitNul(listed.out)) {
    fs::path from = root / rel;
    if (IsWithin(from, excluded)) continue;
    if (!fs::exists(fs::symlink_status(from, ec))) continue;  // tracked but deleted
    s = CopyPath(from.string(), (fs::path(dest) / rel).string());
    if (!s.ok()) return s;
  }
  return Status::OK();
}

namespace {

// Runs `git -C dir ARGS` (with GIT_INDEX_FILE=index when given); a failure
// is an error naming the command and git's message.
Status GitStatus(const std::string& dir, const std::string& index,
                 const std::vector<std::string>& args, std::string* out) {
  std::vector<std::string> argv = {"git", "-C", dir};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<std::pair<std::string, std::string>> env;
  if (!index.empty()) env.emplace_back("GIT_INDEX_FILE", index);
  env::CommandResult result;
  Status s = env::RunCommand(argv, dir, &result, env::kCommandTimeout, env);
  std::string command = "git";
  for (const std::string& a : args) command += " " + a;
  if (!s.ok()) return s.WithContext(command + " in " + dir);
  if (result.exit_code != 0) {
    std::string err = result.err;
    while (!err.empty() && (err.back() == '\n' || err.back() == '\r')) err.pop_back();
    return Status::IoError(command + " in " + dir + " failed: " + err);
  }
  if (out != nullptr) {
    *out = result.out;
    while (!out->empty() && (out->back() == '\n' || out->back() == '\r')) out->pop_back();
  }
  return Status::OK();
}

bool WriteText(const fs::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  return static_cast<bool>(out.flush());
}

}  // namespace

Status ChangedPaths(const SourceInfo& source, const std::string& from_tree,
                    const std::string& to_tree, size_t limit, std::vector<std::string>* paths,
                    size_t* more) {
  paths->clear();
  *more = 0;
  std::string out;
  Status s = GitStatus(source.root, "", {"diff", "--name-only", "-z", "--no-renames", from_tree,
                                         to_tree, "--"},
                       &out);
  if (!s.ok()) return s;
  for (std::string& p : SplitNul(out)) {
    if (paths->size() < limit) paths->push_back(std::move(p));
    else ++*more;
  }
  return Status::OK();
}

namespace {

// ReadTreeState, and the repository's object directory in *objects. One
// rev-parse answers the paths and HEAD's tree: each git process costs ~30 ms
// on a busy machine, and the checkout is on every run's path.
Status ReadTreeAndObjects(const SourceInfo& source, const std::string& scratch_index,
                          const std::string& exclude, TreeState* state, std::string* objects) {
  *state = TreeState();
  std::error_code ec;
  fs::remove(scratch_index, ec);
  std::vector<std::string> ask = {"rev-parse", "--path-format=absolute", "--git-path", "index",
                                  "--git-path", "objects"};
  if (!source.commit.empty()) ask.push_back(source.commit + "^{tree}");
  std::string answer;
  Status s = GitStatus(source.root, "", ask, &answer);
  if (!s.ok()) return s;
  std::vector<std::string> lines;
  for (size_t start = 0; start <= answer.size();) {
    size_t end = answer.find('\n', start);
    if (end == std::string::npos) end = answer.size();
    lines.push_back(answer.substr(start, end - start));
    start = end + 1;
  }
  if (lines.size() < ask.size() - 4)
    return Status::IoError("git rev-parse in " + source.root + " answered: " + answer);
  // Start from the repository's own index, so files whose stat data did not
  // change are not read again (the index of a large tree is a cache).
  const std::string index = lines[0];
  *objects = lines[1];
  const std::string head_tree = source.commit.empty() ? "" : lines[2];
  if (fs::exists(index, ec)) {
    fs::copy_file(index, scratch_index, fs::copy_options::overwrite_existing, ec);
    if (ec) return Status::IoError("copy " + index + " to " + scratch_index + ": " + ec.message());
  } else if (!source.commit.empty()) {
    s = GitStatus(source.root, scratch_index, {"read-tree", source.commit}, nullptr);
    if (!s.ok()) return s;
  }
  std::vector<std::string> add = {"add", "--all", "--", "."};
  fs::path root(source.root), excluded(exclude);
  if (!exclude.empty() && IsWithin(excluded, root)) {
    // An ignored path named in a pathspec, even an excluding one, fails
    // `git add`; an ignored data dir needs no exclusion anyway.
    const std::string rel = excluded.lexically_relative(root).string();
    env::CommandResult ignored;
    s = env::RunCommand({"git", "-C", source.root, "check-ignore", "-q", rel}, source.root, &ignored);
    if (!s.ok() || ignored.exit_code != 0) add.push_back(":(exclude)" + rel);
  }
  s = GitStatus(source.root, scratch_index, add, nullptr);
  if (s.ok()) s = GitStatus(source.root, scratch_index, {"write-tree"}, &state->tree);
  fs::remove(scratch_index, ec);
  if (!s.ok()) return s.WithContext("read the working tree of " + source.root);
  if (source.commit.empty()) return Status::OK();
  state->dirty = head_tree != state->tree;
  if (!state->dirty) return Status::OK();
  size_t more = 0;
  return ChangedPaths(source, head_tree, state->tree, kMaxTreePaths, &state->changed_paths, &more);
}

}  // namespace

Status ReadTreeState(const SourceInfo& source, const std::string& scratch_index,
                     const std::string& exclude, TreeState* state) {
  std::string objects;
  return ReadTreeAndObjects(source, scratch_index, exclude, state, &objects);
}

Status WriteBorrowingGitDir(const std::string& dest, const std::string& head,
                            const std::string& objects) {
  const fs::path git = fs::path(dest) / ".git";
  std::error_code ec;
  fs::create_directories(git / "objects" / "info", ec);
  if (!ec) fs::create_directories(git / "refs" / "heads", ec);
  if (!ec) fs::create_directories(git / "refs" / "tags", ec);
  if (ec) return Status::IoError("create " + git.string() + ": " + ec.message());
  if (!WriteText(git / "HEAD", head + "\n") ||
      !WriteText(git / "config",
                 "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n") ||
      !WriteText(git / "objects" / "info" / "alternates", objects + "\n"))
    return Status::IoError("write the git directory " + git.string());
  return Status::OK();
}

// docs/running.md "Same inputs as CI": the same skeleton as the server's
// checkout (runner/serve/git_source.cc, GitMirror::Checkout), borrowing the
// repository's objects, so no object is copied.
Status CheckoutWorkingTree(const SourceInfo& source, const std::string& dest,
                           const std::string& exclude, TreeState* state) {
  *state = TreeState();
  if (!source.is_git || source.commit.empty()) return CopyWorkingTree(source, dest, exclude);
  const fs::path git = fs::path(dest) / ".git";
  std::error_code ec;
  fs::create_directories(git, ec);
  if (ec) return Status::IoError("create " + git.string() + ": " + ec.message());
  std::string objects;
  Status s = ReadTreeAndObjects(source, (git / "ladle-scratch-index").string(), exclude, state,
                                &objects);
  if (!s.ok()) return s;
  s = WriteBorrowingGitDir(dest, source.commit, objects);
  if (!s.ok()) return s;
  // The files of what runs, then the index back at HEAD: the changes show
  // in `git status` and `git diff` as they do in the person's tree.
  s = GitStatus(dest, "", {"read-tree", "--reset", "-u", state->tree}, nullptr);
  if (s.ok() && state->dirty) s = GitStatus(dest, "", {"read-tree", source.commit}, nullptr);
  return s.WithContext("check out the working tree into " + dest);
}

Status SaveArtifacts(const std::string& workspace, const std::vector<std::string>& patterns,
                     const std::string& dest, std::vector<std::string>* missing) {
  for (const std::string& pattern : patterns) {
    std::vector<std::string> matches;
    Status s = ExpandGlobs(workspace, {pattern}, &matches);
    if (!s.ok()) return s;
    if (matches.empty()) missing->push_back(pattern);
    for (const std::string& rel : matches) {
      s = CopyPath((fs::path(workspace) / rel).string(), (fs::path(dest) / rel).string());
      if (!s.ok()) return s.WithContext("save artifact '" + rel + "'");
    }
  }
  return Status::OK();
}

Status RestoreArtifacts(const std::string& saved, const std::string& workspace) {
  std::error_code ec;
  if (!fs::is_directory(saved, ec)) return Status::OK();
  return CopyAll(saved, workspace, fs::path());
}

}  // namespace ladle::runner
