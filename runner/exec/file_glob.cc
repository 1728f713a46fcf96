#include "runner/exec/file_glob.h"

#include <dirent.h>
#include <fnmatch.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <memory>
#include <set>

namespace ladle::runner {
namespace {

// One pattern being expanded under one root.
struct Walk {
  std::string root;                // as given: paths are built from it
  std::string real_root;           // realpath(root): what "inside" means
  std::vector<std::string> parts;  // the pattern's components
  std::set<std::string>* found;    // relative paths, sorted and unique
};

std::string Join(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : dir + "/" + name;
}

std::string Absolute(const Walk& w, const std::string& rel) {
  return rel.empty() ? w.root : w.root + "/" + rel;
}

bool IsWildcard(const std::string& part) {
  return part.find_first_of("*?[\\") != std::string::npos;
}

std::string Quoted(const std::string& pattern) { return "glob '" + pattern + "'"; }

// Splits `pattern` into components, dropping "." and empty ones, so that
// "./out//x.xml" and "out/x.xml" mean the same. Consecutive "**" collapse:
// they mean the same and each one multiplies the walk.
Status Split(const std::string& pattern, std::vector<std::string>* parts) {
  if (pattern.empty()) return Status::Invalid("empty glob");
  if (pattern[0] == '/')
    return Status::Invalid(Quoted(pattern) + " is absolute: globs are relative to the workspace");
  size_t start = 0;
  while (start <= pattern.size()) {
    size_t end = pattern.find('/', start);
    if (end == std::string::npos) end = pattern.size();
    std::string part = pattern.substr(start, end - start);
    start = end + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..")
      return Status::Invalid(Quoted(pattern) + " leaves the workspace: '..' is not allowed");
    if (part == "**" && !parts->empty() && parts->back() == "**") continue;
    parts->push_back(std::move(part));
  }
  if (parts->empty())
    return Status::Invalid(Quoted(pattern) + " names the workspace itself, not a file in it");
  if (parts->back() == "**") parts->push_back("*");
  return Status::OK();
}

// Entry names of directory `rel` without "." and ".." (a ".*" must never
// match ".."); empty when it is not a readable directory.
std::vector<std::string> List(const Walk& w, const std::string& rel) {
  std::vector<std::string> names;
  std::unique_ptr<DIR, int (*)(DIR*)> dir(opendir(Absolute(w, rel).c_str()), closedir);
  if (!dir) return names;
  while (const dirent* entry = readdir(dir.get())) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
  }
  return names;
}

bool InsideRoot(const Walk& w, const std::string& rel) {
  std::unique_ptr<char, void (*)(void*)> real(realpath(Absolute(w, rel).c_str(), nullptr), free);
  if (!real) return false;  // a dangling link names nothing
  const std::string path = real.get();
  if (w.real_root == "/" || path == w.real_root) return true;
  return path.compare(0, w.real_root.size() + 1, w.real_root + "/") == 0;
}

// lstat, not stat: "**" must not follow a link into a cycle or out of the tree.
bool IsPlainDirectory(const Walk& w, const std::string& rel) {
  struct stat st;
  return lstat(Absolute(w, rel).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

void Keep(const Walk& w, const std::string& rel) {
  struct stat st;
  if (stat(Absolute(w, rel).c_str(), &st) != 0) return;
  if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) return;
  if (InsideRoot(w, rel)) w.found->insert(rel);
}

void Expand(const Walk& w, const std::string& rel, size_t i);

// Zero directories, or one more and "**" again. The inside check stops
// "link-to-slash/**" from walking the whole host before filtering.
void ExpandAnyDepth(const Walk& w, const std::string& rel, size_t i) {
  if (!InsideRoot(w, rel)) return;
  Expand(w, rel, i + 1);
  for (const std::string& name : List(w, rel)) {
    const std::string child = Join(rel, name);
    if (name[0] != '.' && IsPlainDirectory(w, child)) ExpandAnyDepth(w, child, i);
  }
}

// Matches parts[i..] below directory `rel` ("" is the root).
void Expand(const Walk& w, const std::string& rel, size_t i) {
  if (i == w.parts.size()) return Keep(w, rel);
  const std::string& part = w.parts[i];
  if (part == "**") return ExpandAnyDepth(w, rel, i);
  // A literal component needs no listing: Keep or the next List finds out.
  if (!IsWildcard(part)) return Expand(w, Join(rel, part), i + 1);
  for (const std::string& name : List(w, rel)) {
    if (fnmatch(part.c_str(), name.c_str(), FNM_PERIOD) == 0) Expand(w, Join(rel, name), i + 1);
  }
}

}  // namespace

Status ExpandGlobs(const std::string& root, const std::vector<std::string>& patterns,
                   std::vector<std::string>* matches) {
  // Every pattern is checked before any walking: a typo is the user's error
  // (exit 2) whatever state the workspace is in.
  std::vector<std::vector<std::string>> split(patterns.size());
  for (size_t i = 0; i < patterns.size(); ++i) {
    Status status = Split(patterns[i], &split[i]);
    if (!status.ok()) return status;
  }
  std::unique_ptr<char, void (*)(void*)> real(realpath(root.c_str(), nullptr), free);
  struct stat st;
  if (!real || stat(real.get(), &st) != 0) return Status::FromErrno("open workspace " + root, errno);
  if (!S_ISDIR(st.st_mode)) return Status::IoError("open workspace " + root + ": not a directory");

  std::set<std::string> found;
  Walk walk{root, real.get(), {}, &found};
  for (auto& parts : split) {
    walk.parts = std::move(parts);
    Expand(walk, "", 0);
  }
  matches->assign(found.begin(), found.end());
  return Status::OK();
}

}  // namespace ladle::runner
