#include "runner/serve/git_source.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "env/subprocess.h"

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

}  // namespace

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
  const fs::path git = fs::path(dest) / ".git";
  std::error_code ec;
  fs::create_directories(git / "objects" / "info", ec);
  if (!ec) fs::create_directories(git / "refs" / "heads", ec);
  if (!ec) fs::create_directories(git / "refs" / "tags", ec);
  if (ec) return Status::IoError("create " + git.string() + ": " + ec.message());
  auto write = [&](const fs::path& path, const std::string& text) {
    std::ofstream out(path);
    out << text;
    return static_cast<bool>(out.flush());
  };
  if (!write(git / "HEAD", "ref: refs/heads/main\n") ||
      !write(git / "config",
             "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n") ||
      !write(git / "objects" / "info" / "alternates",
             fs::absolute(fs::path(dir_) / "objects").string() + "\n"))
    return Status::IoError("write the git directory " + git.string());
  Status s;
  if (!Git({"-C", dest, "checkout", "--quiet", "--detach", commit}, "/").ok()) {
    s = EnsureCommit(commit, "");
    if (s.ok()) s = Git({"-C", dest, "checkout", "--quiet", "--detach", commit}, "/");
  }
  return s.WithContext("check out " + commit.substr(0, 12) + " into " + dest);
}

}  // namespace ladle::runner
