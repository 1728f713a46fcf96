#include "runner/exec/workspace.h"

#include <filesystem>
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
  std::error_code ec;
  fs::path file = fs::absolute(pipeline_file, ec);
  fs::path dir = file.parent_path();
  std::string top;
  if (Git(dir.string(), {"rev-parse", "--show-toplevel"}, &top) && !top.empty()) {
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
