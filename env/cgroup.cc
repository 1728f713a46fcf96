#include "env/cgroup.h"

#include "env/pidfd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>

namespace ladle::env {
namespace {

using Clock = std::chrono::steady_clock;

// How long a freeze may take before ladle kills what it has frozen so far
// (a process in uninterruptible sleep keeps the group FREEZING), and how
// often a group is looked at while it empties.
constexpr std::chrono::milliseconds kFreezeWait{1000};
constexpr std::chrono::milliseconds kPollInterval{10};

bool ReadSmallFile(const std::string& path, std::string* text) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  text->clear();
  char buf[4096];
  ssize_t n;
  // Bounded: a cgroup.procs of a million pids is 8 MB; more is not ours.
  while ((n = ::read(fd, buf, sizeof buf)) > 0 && text->size() < (16u << 20)) text->append(buf, n);
  ::close(fd);
  return n >= 0;
}

bool WriteSmallFile(const std::string& path, const std::string& text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  return ok;
}

bool IsDir(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// The child groups of `dir` (every subdirectory of a cgroup is one).
std::vector<std::string> ChildGroups(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (struct dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    std::string path = dir + "/" + e->d_name;
    if (e->d_type == DT_DIR || (e->d_type == DT_UNKNOWN && IsDir(path))) out.push_back(path);
  }
  ::closedir(d);
  return out;
}

// A cgroup directory's link count is 2 plus its child groups (kernfs keeps
// it so), so one stat answers without listing the control files.
bool HasChildGroups(const std::string& dir) {
  struct stat st;
  return ::stat(dir.c_str(), &st) != 0 || st.st_nlink != 2;
}

// Members of `dir` and of every group below it (nested ladles), bounded in
// depth like any input from outside.
void CollectPids(const std::string& dir, int depth, std::vector<pid_t>* pids) {
  std::string text;
  if (ReadSmallFile(dir + "/cgroup.procs", &text)) {
    const char* p = text.c_str();
    while (*p != '\0') {
      char* end = nullptr;
      long pid = std::strtol(p, &end, 10);
      if (end == p) break;
      if (pid > 0) pids->push_back(static_cast<pid_t>(pid));
      p = end;
      while (*p == '\n') ++p;
    }
  }
  if (depth >= 32) return;
  for (const std::string& child : ChildGroups(dir)) CollectPids(child, depth + 1, pids);
}

std::vector<pid_t> AllPids(const std::string& dir) {
  std::vector<pid_t> pids;
  CollectPids(dir, 0, &pids);
  std::sort(pids.begin(), pids.end());
  pids.erase(std::unique(pids.begin(), pids.end()), pids.end());
  return pids;
}

// Removes `dir` and the groups below it, deepest first. Only empty groups
// can go; the others stay (EBUSY).
void RemoveGroups(const std::string& dir, int depth = 0) {
  if (depth < 32)
    for (const std::string& child : ChildGroups(dir)) RemoveGroups(child, depth + 1);
  ::rmdir(dir.c_str());
}

// Any signal to the members, without freezing: each pid is pinned with a
// pidfd, then signalled only if it is still a member (a pid cannot belong to
// two processes at once, so a pinned member is the process that was listed).
void SignalMembers(const std::string& dir, int signal) {
  std::vector<pid_t> pids = AllPids(dir);
  std::vector<std::pair<pid_t, int>> pinned;
  for (pid_t pid : pids) {
    int fd = PidfdOpen(pid);
    if (fd >= 0) pinned.emplace_back(pid, fd);
  }
  std::vector<pid_t> still = AllPids(dir);
  for (auto [pid, fd] : pinned) {
    if (std::binary_search(still.begin(), still.end(), pid)) PidfdSendSignal(fd, signal);
    ::close(fd);
  }
}

// cgroup v1: freeze, SIGKILL every member, thaw. Frozen processes cannot
// fork or exit, so the list is complete and its pids are not reused.
void FreezeKillThaw(const std::string& dir) {
  const std::string state = dir + "/freezer.state";
  if (WriteSmallFile(state, "FROZEN")) {
    const auto deadline = Clock::now() + kFreezeWait;
    std::string text;
    while (ReadSmallFile(state, &text) && text.rfind("FROZEN", 0) != 0 && Clock::now() < deadline)
      ::poll(nullptr, 0, static_cast<int>(kPollInterval.count()));
  }
  for (pid_t pid : AllPids(dir)) ::kill(pid, SIGKILL);
  WriteSmallFile(state, "THAWED");
}

void KillGroup(CgroupKind kind, const std::string& dir) {
  if (kind == CgroupKind::kV2) {
    // cgroup.kill (Linux 5.14) takes the group and its descendants at once.
    if (WriteSmallFile(dir + "/cgroup.kill", "1")) return;
    SignalMembers(dir, SIGKILL);
  } else if (kind == CgroupKind::kV1Freezer) {
    FreezeKillThaw(dir);
  }
}

bool WaitEmpty(const std::string& dir, std::chrono::milliseconds wait) {
  const auto deadline = Clock::now() + wait;
  while (!AllPids(dir).empty()) {
    if (Clock::now() >= deadline) return false;
    ::poll(nullptr, 0, static_cast<int>(kPollInterval.count()));
  }
  return true;
}

// /proc/self/cgroup: "ID:CONTROLLERS:PATH" lines. The path of the hierarchy
// whose controllers include `controller` ("" for the v2 line "0::PATH").
bool CgroupPathFor(const std::string& self_cgroup, const std::string& controller, std::string* path) {
  size_t pos = 0;
  while (pos < self_cgroup.size()) {
    size_t end = self_cgroup.find('\n', pos);
    if (end == std::string::npos) end = self_cgroup.size();
    std::string line = self_cgroup.substr(pos, end - pos);
    pos = end + 1;
    size_t a = line.find(':');
    size_t b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    std::string controllers = line.substr(a + 1, b - a - 1);
    bool match = controller.empty() ? controllers.empty() && line.compare(0, a, "0") == 0
                                    : ("," + controllers + ",").find("," + controller + ",") != std::string::npos;
    if (!match) continue;
    *path = line.substr(b + 1);
    return true;
  }
  return false;
}

bool FsTypeIs(const std::string& path, long magic) {
  struct statfs fs;
  return ::statfs(path.c_str(), &fs) == 0 && static_cast<long>(fs.f_type) == magic;
}

std::string Join(const std::string& mount, const std::string& path) {
  std::string out = mount;
  if (!path.empty() && path != "/") out += path[0] == '/' ? path : "/" + path;
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

}  // namespace

CgroupSupport DetectCgroupsAt(const std::string& unified, const std::string& freezer,
                              const std::string& self_cgroup) {
  CgroupSupport out;
  std::string path;
  if (!unified.empty() && FsTypeIs(unified, CGROUP2_SUPER_MAGIC) && CgroupPathFor(self_cgroup, "", &path)) {
    out.base = Join(unified, path);
    if (::access(out.base.c_str(), W_OK) == 0) {
      out.kind = CgroupKind::kV2;
      return out;
    }
    out.why = out.base + " is not writable";
    out.base.clear();
    return out;
  }
  if (!freezer.empty() && FsTypeIs(freezer, CGROUP_SUPER_MAGIC) && CgroupPathFor(self_cgroup, "freezer", &path)) {
    out.base = Join(freezer, path);
    if (::access(out.base.c_str(), W_OK) == 0) {
      out.kind = CgroupKind::kV1Freezer;
      return out;
    }
    out.why = out.base + " is not writable";
    out.base.clear();
    return out;
  }
  out.why = "no cgroup2 file system at " + unified + " and no cgroup v1 freezer at " + freezer;
  return out;
}

const CgroupSupport& DetectCgroups() {
  static std::once_flag once;
  static CgroupSupport support;
  std::call_once(once, [] {
    const char* off = std::getenv("LADLE_CGROUPS");
    if (off != nullptr && std::strcmp(off, "off") == 0) {
      support.why = "LADLE_CGROUPS=off";
      return;
    }
    std::string self;
    if (!ReadSmallFile("/proc/self/cgroup", &self)) {
      support.why = "cannot read /proc/self/cgroup";
      return;
    }
    support = DetectCgroupsAt("/sys/fs/cgroup", "/sys/fs/cgroup/freezer", self);
  });
  return support;
}

std::string RunCgroupName(const std::string& data_dir, int64_t run_id) {
  uint64_t hash = 14695981039346656037ull;  // FNV-1a 64
  for (unsigned char c : data_dir) hash = (hash ^ c) * 1099511628211ull;
  char name[64];
  std::snprintf(name, sizeof name, "ladle-%016llx-r%lld", static_cast<unsigned long long>(hash),
                static_cast<long long>(run_id));
  return name;
}

CgroupPool::~CgroupPool() {
  for (const auto& [parent_dir, dir] : kept_) {
    ::rmdir(dir.c_str());
    ::rmdir(parent_dir.c_str());  // only once the run's last group is gone
  }
}

std::string CgroupPool::Take(const std::string& parent_dir) {
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = kept_.size(); i-- > 0;) {
    if (kept_[i].first != parent_dir) continue;
    std::string dir = std::move(kept_[i].second);
    kept_.erase(kept_.begin() + static_cast<std::ptrdiff_t>(i));
    // Gone when a sweep of another ladle took it (empty and over a minute
    // old looks left behind); the caller makes a new one.
    if (IsDir(dir)) return dir;
  }
  return "";
}

bool CgroupPool::Keep(const std::string& dir, const std::string& parent_dir) {
  std::lock_guard<std::mutex> lock(mu_);
  if (kept_.size() >= kMaxKept) return false;
  kept_.emplace_back(parent_dir, dir);
  return true;
}

std::string ProcessCgroupName() { return "ladle-p" + std::to_string(::getpid()); }

std::unique_ptr<StepCgroup> StepCgroup::Create(const CgroupSupport& support, const std::string& parent,
                                               const std::string& leaf,
                                               std::shared_ptr<CgroupPool> pool) {
  if (support.kind == CgroupKind::kNone || parent.empty() || leaf.empty()) return nullptr;
  const std::string parent_dir = support.base + "/" + parent;
  if (pool) {
    std::string kept = pool->Take(parent_dir);
    if (!kept.empty())
      return std::unique_ptr<StepCgroup>(new StepCgroup(support.kind, std::move(kept), parent_dir, pool));
  }
  const std::string dir = parent_dir + "/" + leaf;
  // The run's group may vanish between the two mkdirs: its last other step
  // removes it when it ends (or SweepEmptyCgroups does). Make it again.
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (::mkdir(parent_dir.c_str(), 0755) != 0 && errno != EEXIST) return nullptr;
    if (::mkdir(dir.c_str(), 0755) == 0)
      return std::unique_ptr<StepCgroup>(new StepCgroup(support.kind, dir, parent_dir, std::move(pool)));
    if (errno != ENOENT) break;
  }
  ::rmdir(parent_dir.c_str());  // only if empty
  return nullptr;
}

StepCgroup::StepCgroup(CgroupKind kind, std::string dir, std::string parent_dir,
                       std::shared_ptr<CgroupPool> pool)
    : kind_(kind),
      dir_(std::move(dir)),
      parent_dir_(std::move(parent_dir)),
      procs_path_(dir_ + "/cgroup.procs"),
      pool_(std::move(pool)) {}

StepCgroup::~StepCgroup() {
  // Given back only when nothing is in it or below it: the next step must
  // start in a group of its own alone.
  std::string text;
  if (pool_ && !HasChildGroups(dir_) && ReadSmallFile(procs_path_, &text) && text.empty() &&
      pool_->Keep(dir_, parent_dir_))
    return;
  // The kernel refuses (EBUSY) to remove a group with members, so no look
  // first: a group left by an unkillable process (state D) stays, and
  // EndRunCgroups tries again. Groups below (nested ladles) go first.
  if (::rmdir(dir_.c_str()) != 0 && errno != ENOENT) {
    if (!HasChildGroups(dir_)) return;
    RemoveGroups(dir_);
  }
  ::rmdir(parent_dir_.c_str());  // the run's group, once its last step is gone
}

bool StepCgroup::Contains(pid_t pid) const {
  std::vector<pid_t> pids = AllPids(dir_);
  return std::binary_search(pids.begin(), pids.end(), pid);
}

void StepCgroup::Signal(int signal) {
  if (signal == SIGKILL) KillGroup(kind_, dir_);
  else SignalMembers(dir_, signal);
}

// Called at the end of every step: one read, plus a walk below only where
// there are groups below (a nested ladle's).
bool StepCgroup::Empty() const {
  std::string text;
  if (ReadSmallFile(procs_path_, &text) && !text.empty()) return false;
  return !HasChildGroups(dir_) || AllPids(dir_).empty();
}

int EndRunCgroups(const CgroupSupport& support, const std::string& data_dir, int64_t run_id,
                  std::chrono::milliseconds wait) {
  if (support.kind == CgroupKind::kNone) return 0;
  const std::string dir = support.base + "/" + RunCgroupName(data_dir, run_id);
  if (!IsDir(dir)) return 0;
  const int found = static_cast<int>(AllPids(dir).size());
  if (found > 0) {
    KillGroup(support.kind, dir);
    WaitEmpty(dir, wait);
  }
  RemoveGroups(dir);
  return found;
}

void SweepEmptyCgroups(const CgroupSupport& support) {
  if (support.kind == CgroupKind::kNone) return;
  const auto now = std::chrono::system_clock::now();
  for (const std::string& run : ChildGroups(support.base)) {
    const std::string name = run.substr(run.rfind('/') + 1);
    if (name.compare(0, 6, "ladle-") != 0) continue;
    for (const std::string& step : ChildGroups(run)) {
      struct stat st;
      if (::stat(step.c_str(), &st) != 0) continue;
      const auto made = std::chrono::system_clock::from_time_t(st.st_ctime);
      if (now - made > std::chrono::minutes(1) && AllPids(step).empty()) RemoveGroups(step);
    }
    ::rmdir(run.c_str());  // only once it has no step left
  }
}

std::vector<int64_t> RunsWithCgroups(const CgroupSupport& support, const std::string& data_dir) {
  std::vector<int64_t> runs;
  if (support.kind == CgroupKind::kNone) return runs;
  const std::string prefix = RunCgroupName(data_dir, 0);
  const std::string stem = prefix.substr(0, prefix.size() - 1);  // "ladle-HASH-r"
  for (const std::string& path : ChildGroups(support.base)) {
    std::string name = path.substr(path.rfind('/') + 1);
    if (name.compare(0, stem.size(), stem) != 0 || name.size() == stem.size()) continue;
    char* end = nullptr;
    long long id = std::strtoll(name.c_str() + stem.size(), &end, 10);
    if (*end == '\0' && id > 0) runs.push_back(id);
  }
  std::sort(runs.begin(), runs.end());
  return runs;
}

}  // namespace ladle::env
