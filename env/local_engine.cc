#include "env/local_engine.h"

#include <atomic>
#include "core/base/text.h"

#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <thread>
#include <utility>

#include "env/cgroup.h"

namespace ladle::env {
namespace {

constexpr char kShell[] = "/bin/sh";

// A NUL in the script would cut it at exec; the variables as every backend
// checks them.
Status CheckText(const StepSpec& spec) {
  if (spec.script.find('\0') != std::string::npos) return Status::Invalid("the script contains a NUL byte");
  return CheckStepVariables(spec);
}

Status ResolveDir(const StepSpec& spec, std::string* dir) {
  if (spec.workspace.empty()) return Status::Invalid("no workspace given");
  if (!IsDirectory(spec.workspace)) return Status::NotFound("workspace '" + spec.workspace + "' does not exist");
  *dir = spec.workdir.empty() ? spec.workspace : spec.workspace + "/" + spec.workdir;
  if (!IsDirectory(*dir)) {
    return Status::NotFound("workdir '" + spec.workdir + "' does not exist in the workspace");
  }
  return Status::OK();
}

// The run's marker, and the step's cgroup below the run's (env/cgroup.h):
// docs/backends.md "How kill works".
void SetRunGroup(const StepSpec& spec, LaunchSpec* launch) {
  auto data = spec.labels.find("ladle.data");
  auto run = spec.labels.find("ladle.run");
  int64_t run_id = run == spec.labels.end() ? 0 : std::atoll(run->second.c_str());
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, "-%08x", static_cast<unsigned>(UniqueLaunchNumber()));
  std::string leaf;
  for (char c : spec.id) leaf += std::isalnum(static_cast<unsigned char>(c)) ? c : '-';
  launch->cgroup_leaf = leaf.substr(0, 100) + suffix;
  if (data != spec.labels.end() && run_id > 0) {
    launch->env.emplace_back(RunMarkerName(data->second, run_id), "1");
    launch->cgroup_parent = RunCgroupName(data->second, run_id);
  } else {
    launch->cgroup_parent = ProcessCgroupName();
  }
}

}  // namespace

std::string RunMarkerName(const std::string& data_dir, int64_t run_id) {
  const std::string group = RunCgroupName(data_dir, run_id);  // "ladle-HASH-rRUN"
  return "LADLE_RUN_" + group.substr(6, 16) + "_" + std::to_string(run_id);
}

int EndLocalRunProcesses(const std::string& data_dir, int64_t run_id, std::chrono::milliseconds wait) {
  int found = EndRunCgroups(DetectCgroups(), data_dir, run_id, wait);
  const std::string marker = RunMarkerName(data_dir, run_id) + "=";
  found += SignalProcessesWith(marker, SIGKILL);
  const auto deadline = std::chrono::steady_clock::now() + wait;
  while (AnyProcessWith(marker) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return found;
}

std::vector<int64_t> LocalRunsWithProcesses(const std::string& data_dir) {
  SweepEmptyCgroups(DetectCgroups());
  std::set<int64_t> runs;
  for (int64_t id : RunsWithCgroups(DetectCgroups(), data_dir)) runs.insert(id);
  const std::string prefix = RunMarkerName(data_dir, 0);  // "LADLE_RUN_HASH_0"
  const std::string stem = prefix.substr(0, prefix.size() - 1);
  for (const std::string& name : EnvironmentNamesWithPrefix(stem)) {
    char* end = nullptr;
    long long id = std::strtoll(name.c_str() + stem.size(), &end, 10);
    if (*end == '\0' && id > 0) runs.insert(id);
  }
  return std::vector<int64_t>(runs.begin(), runs.end());
}

Status LocalEngine::Create(const StepSpec& spec, std::unique_ptr<Step>* step) {
  Status s = CheckText(spec);
  if (!s.ok()) return s;
  std::string dir;
  s = ResolveDir(spec, &dir);
  if (!s.ok()) return s;
  if (::access(kShell, X_OK) != 0) return Status::FromErrno(std::string("cannot run ") + kShell, errno);
  step->reset(new LocalStep(spec, std::move(dir), cgroups_));
  return Status::OK();
}

namespace {
std::atomic<bool> steps_die_with_ladle{false};
}  // namespace

void SetLocalStepsDieWithLadle(bool on) { steps_die_with_ladle = on; }

LocalStep::LocalStep(StepSpec spec, std::string dir, std::shared_ptr<CgroupPool> cgroups)
    : spec_(std::move(spec)), dir_(std::move(dir)), cgroups_(std::move(cgroups)) {}

// The executor calls Remove() and reports its error; a destructor has nobody
// to tell.
LocalStep::~LocalStep() { Remove().IgnoreError(); }

Status LocalStep::Start() {
  if (proc_ != nullptr || removed_) return Status::Precondition("step '" + spec_.id + "' was started or removed already");
  LaunchSpec launch;
  launch.exe = kShell;
  launch.args = {"-e", "-c", spec_.script};
  launch.env = spec_.env;
  launch.base_environment_only = !spec_.host_environment;
  // A process's environment is readable only by its user: secrets go there.
  launch.env.insert(launch.env.end(), spec_.secrets.begin(), spec_.secrets.end());
  launch.env.emplace_back(kStepIdVariable, spec_.id);  // last: the step cannot hide it
  launch.cwd = dir_;
  // The executor starts, follows and waits for a step on one thread.
  launch.die_with_ladle = steps_die_with_ladle;
  SetRunGroup(spec_, &launch);
  launch.cgroup_pool = cgroups_;
  std::unique_ptr<Subprocess> proc;
  Status s = Subprocess::Start(launch, &proc);
  if (!s.ok()) return s.WithContext("step '" + spec_.id + "'");
  std::lock_guard<std::mutex> lock(mu_);
  proc_ = std::move(proc);
  return Status::OK();
}

Status LocalStep::Stream(OutputSink* sink) {
  if (proc_ == nullptr) return Status::Precondition("step '" + spec_.id + "' was not started");
  proc_->Pump(sink);
  return Status::OK();
}

Status LocalStep::Wait(ExitStatus* status) {
  if (proc_ == nullptr) return Status::Precondition("step '" + spec_.id + "' was not started");
  *status = proc_->Wait();
  return Status::OK();
}

void LocalStep::Kill(int signal) {
  std::lock_guard<std::mutex> lock(mu_);
  if (proc_ != nullptr) proc_->Kill(signal);
}

Status LocalStep::Remove() {
  removed_ = true;
  if (proc_ != nullptr) proc_->Close();
  return Status::OK();
}

}  // namespace ladle::env
