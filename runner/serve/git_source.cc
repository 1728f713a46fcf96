#include "runner/serve/git_source.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "env/subprocess.h"
#include "runner/exec/workspace.h"

namespace fs = std::filesystem;

namespace ladle::runner {
namespace {

// Runs git; a non-zero exit becomes a Status carrying git's own words.
Status Git(const std::vector<std::string>& args, const std::string& cwd, std::string* out = nullptr) {
  std::vector<std::string> argv = {"git", "-c", "gc.autoDetach=false", "-c", "advice.detachedHead=false"};
  argv.insert(argv.end(), args.begin(), args.end());
  env::CommandResult r;
  Status s = env::RunCommand(argv, cwd, &r, std::chrono::minutes(10));
  if (!s.ok()) return s;
  if (r.exit_code != 0) {
    std::string err = r.err;
    while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
    return Status::Unavailable("git " + args.front() + ": " + err);
  }
  if (out) *out = r.out;
  return Status::OK();
}

constexpr std::size_t kMaxRefName = 255;

// One component of a ref: what git's check_refname_component refuses.
std::string ComponentProblem(std::string_view c) {
  if (c.empty()) return "it has an empty component ('//', or '/' at either end)";
  if (c.front() == '.') return "a component starts with '.'";
  const std::string_view lock = ".lock";
  if (c.size() >= lock.size() && c.substr(c.size() - lock.size()) == lock)
    return "a component ends with '.lock'";
  return "";
}

}  // namespace

// git check-ref-format(1), rules 1 to 10.
std::string RefNameProblem(std::string_view ref) {
  if (ref.empty()) return "it is empty";
  if (ref.size() > kMaxRefName)
    return "it is longer than " + std::to_string(kMaxRefName) + " bytes";
  for (unsigned char c : ref) {
    if (c < 0x20 || c == 0x7f) return "it contains a control character";
    if (c == ' ') return "it contains a space";
    if (std::string_view("~^:?*[\\").find(static_cast<char>(c)) != std::string_view::npos)
      return std::string("it contains '") + static_cast<char>(c) + "'";
  }
  if (ref.find("..") != std::string_view::npos) return "it contains '..'";
  if (ref.find("@{") != std::string_view::npos) return "it contains '@{'";
  if (ref == "@") return "it is '@'";
  if (ref.back() == '.') return "it ends with '.'";
  for (std::size_t start = 0; start <= ref.size();) {
    std::size_t end = std::min(ref.find('/', start), ref.size());
    std::string problem = ComponentProblem(ref.substr(start, end - start));
    if (!problem.empty()) return problem;
    start = end + 1;
  }
  return "";
}

std::string BranchNameProblem(std::string_view branch) {
  if (!branch.empty() && branch.front() == '-') return "it starts with '-'";
  if (branch == "HEAD") return "it is 'HEAD'";
  return RefNameProblem(branch);
}

Status ListBranches(const std::string& url, std::map<std::string, std::string>* heads) {
  std::string out;
  Status s = Git({"ls-remote", "--heads", "--", url}, "/", &out);
  if (!s.ok()) return s.WithContext("list the branches of " + url);
  heads->clear();
  std::istringstream lines(out);
  std::string line;
  const std::string prefix = "refs/heads/";
  while (std::getline(lines, line)) {
    auto tab = line.find('\t');
    if (tab == std::string::npos) continue;
    std::string ref = line.substr(tab + 1);
    if (ref.compare(0, prefix.size(), prefix) == 0) (*heads)[ref.substr(prefix.size())] = line.substr(0, tab);
  }
  return Status::OK();
}

GitMirror::GitMirror(std::string url, std::string mirror_dir)
    : url_(std::move(url)), dir_(std::move(mirror_dir)) {}

void GitMirror::Resolve() {
  if (resolved_) return;
  resolved_ = true;
  const bool url_like = url_.find("://") != std::string::npos ||
                        url_.find(':') < url_.find('/');  // scp-like host:path
  std::error_code ec;
  if (url_like || !fs::is_directory(url_, ec)) return;
  std::string out;
  if (!Git({"-C", url_, "rev-parse", "--path-format=absolute", "--git-common-dir"}, "/", &out).ok())
    return;  // not a repository (yet): treated as a URL, the fetch says what is wrong
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  dir_ = out;
  local_ = true;
}

Status GitMirror::Fetch(const std::string& branch) {
  Resolve();
  if (local_) return Status::OK();  // its objects are read in place
  std::error_code ec;
  if (!fs::exists(fs::path(dir_) / "HEAD", ec)) {
    fs::create_directories(fs::path(dir_).parent_path(), ec);
    Status s = Git({"clone", "--quiet", "--mirror", "--", url_, dir_}, "/");
    return s.WithContext("mirror " + url_);
  }
  // One branch when it is known: a repository with many branches is not
  // negotiated whole for every push.
  const std::string refspec =
      branch.empty() ? "+refs/heads/*:refs/heads/*" : "+refs/heads/" + branch + ":refs/heads/" + branch;
  std::vector<std::string> args = {"--git-dir", dir_, "fetch", "--quiet"};
  if (branch.empty()) args.push_back("--prune");
  args.insert(args.end(), {"origin", refspec});
  return Git(args, "/").WithContext("fetch " + url_);
}

Status GitMirror::BranchHead(const std::string& branch, std::string* commit) {
  Resolve();
  Status s = Fetch(branch);
  if (!s.ok()) {
    // A branch the remote does not have fails the fetch: say which it is.
    std::map<std::string, std::string> heads;
    if (ListBranches(url_, &heads).ok() && heads.count(branch) == 0)
      return Status::NotFound("branch " + branch + " does not exist in " + url_);
    return s;
  }
  std::string out;
  if (!Git({"--git-dir", dir_, "rev-parse", "--verify", "--quiet",
            "refs/heads/" + branch + "^{commit}"},
           "/", &out)
           .ok())
    return Status::NotFound("branch " + branch + " does not exist in " + url_);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  *commit = out;
  return Status::OK();
}

Status GitMirror::ResolveRef(const std::string& ref, std::string* object, std::string* commit) {
  Resolve();
  if (!local_) {
    std::error_code ec;
    Status s = fs::exists(fs::path(dir_) / "HEAD", ec) ? Status::OK() : Fetch();
    if (s.ok())
      s = Git({"--git-dir", dir_, "fetch", "--quiet", "origin", "+" + ref + ":" + ref}, "/")
              .WithContext("fetch " + ref + " of " + url_);
    if (!s.ok()) return Status::NotFound(ref + " does not exist in " + url_ + " (" + s.message() + ")");
  }
  auto parse = [&](const std::string& rev, std::string* out) {
    if (!Git({"--git-dir", dir_, "rev-parse", "--verify", "--quiet", rev}, "/", out).ok())
      return false;
    while (!out->empty() && (out->back() == '\n' || out->back() == '\r')) out->pop_back();
    return true;
  };
  if (!parse(ref, object) || !parse(ref + "^{commit}", commit))
    return Status::NotFound(ref + " does not exist in " + url_);
  return Status::OK();
}

Status GitMirror::HasCommitFetched(const std::string& commit) {
  Status s = EnsureCommit(commit, "");
  return s.code() == Code::kNotFound ? Status::NotFound("commit " + commit + " is not in " + url_) : s;
}

Status GitMirror::IsAncestor(const std::string& ancestor, const std::string& descendant,
                             bool* is) {
  Resolve();
  env::CommandResult r;
  Status s = env::RunCommand({"git", "--git-dir", dir_, "merge-base", "--is-ancestor", "--",
                              ancestor, descendant},
                             "/", &r, std::chrono::minutes(1));
  if (!s.ok()) return s;
  if (r.exit_code == 0 || r.exit_code == 1) {
    *is = r.exit_code == 0;
    return Status::OK();
  }
  std::string err = r.err;
  while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
  return Status::Unavailable("git merge-base: " + err);
}

bool GitMirror::HasCommit(const std::string& commit) {
  Resolve();
  std::error_code ec;
  if (!fs::exists(fs::path(dir_) / "HEAD", ec)) return false;
  return Git({"--git-dir", dir_, "cat-file", "-e", commit + "^{commit}"}, "/").ok();
}

Status GitMirror::EnsureCommit(const std::string& commit, const std::string& branch) {
  if (HasCommit(commit)) return Status::OK();
  Status s = Fetch(branch);
  if (!s.ok()) return s;
  if (!HasCommit(commit)) return Status::NotFound("commit " + commit + " is not in " + url_);
  return Status::OK();
}

// The common case (the commit is in the mirror) costs one git process; a
// miss fetches and tries once more.
Status GitMirror::ReadFile(const std::string& commit, const std::string& path,
                           std::string* content, const std::string& branch) {
  Resolve();
  auto read = [&] {
    std::error_code ec;
    return fs::exists(fs::path(dir_) / "HEAD", ec) &&
           Git({"--git-dir", dir_, "cat-file", "blob", commit + ":" + path}, "/", content).ok();
  };
  if (read()) return Status::OK();
  if (local_) return HasCommit(commit) ? Status::NotFound(path + " is not in commit " + commit.substr(0, 12) + " of " + url_)
                                       : Status::NotFound("commit " + commit + " is not in " + url_);
  Status s = Fetch(branch);
  if (!s.ok()) return s;
  if (read()) return Status::OK();
  if (!HasCommit(commit)) return Status::NotFound("commit " + commit + " is not in " + url_);
  return Status::NotFound(path + " is not in commit " + commit.substr(0, 12) + " of " + url_);
}

// A new repository that borrows the mirror's objects (alternates), detached
// at the commit: no refs are copied (a clone of a mirror with a thousand
// branches copies a thousand refs) and one git process runs. The skeleton is
// what `git init --template=` writes, less the process: commit to first step
// is the latency that matters here.
Status GitMirror::Checkout(const std::string& commit, const std::string& dest) {
  Resolve();
  Status s = WriteBorrowingGitDir(dest, "ref: refs/heads/main",
                                  fs::absolute(fs::path(dir_) / "objects").string());
  if (!s.ok()) return s.WithContext("check out " + commit.substr(0, 12) + " into " + dest);
  if (!Git({"-C", dest, "checkout", "--quiet", "--detach", commit}, "/").ok()) {
    s = EnsureCommit(commit, "");
    if (s.ok()) s = Git({"-C", dest, "checkout", "--quiet", "--detach", commit}, "/");
  }
  return s.WithContext("check out " + commit.substr(0, 12) + " into " + dest);
}

}  // namespace ladle::runner
