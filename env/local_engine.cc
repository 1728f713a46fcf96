#include "env/local_engine.h"
#include "core/base/text.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <utility>

namespace ladle::env {
namespace {

constexpr char kShell[] = "/bin/sh";

// A name with '=' or a NUL byte, or any NUL in a value, would silently
// become a different environment (or a cut script) at exec.
Status CheckText(const StepSpec& spec) {
  if (spec.script.find('\0') != std::string::npos) return Status::Invalid("the script contains a NUL byte");
  for (const auto& [name, value] : spec.env) {
    if (name.empty() || name.find_first_of(std::string("=\0", 2)) != std::string::npos) {
      return Status::Invalid("invalid environment variable name '" + name + "'");
    }
    if (value.find('\0') != std::string::npos) return Status::Invalid("the value of " + name + " contains a NUL byte");
  }
  return Status::OK();
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

}  // namespace

Status LocalEngine::Create(const StepSpec& spec, std::unique_ptr<Step>* step) {
  Status s = CheckText(spec);
  if (!s.ok()) return s;
  std::string dir;
  s = ResolveDir(spec, &dir);
  if (!s.ok()) return s;
  if (::access(kShell, X_OK) != 0) return Status::FromErrno(std::string("cannot run ") + kShell, errno);
  step->reset(new LocalStep(spec, std::move(dir)));
  return Status::OK();
}

LocalStep::LocalStep(StepSpec spec, std::string dir) : spec_(std::move(spec)), dir_(std::move(dir)) {}

// The executor calls Remove() and reports its error; a destructor has nobody
// to tell.
LocalStep::~LocalStep() { Remove().IgnoreError(); }

Status LocalStep::Start() {
  if (proc_ != nullptr || removed_) return Status::Precondition("step '" + spec_.id + "' was started or removed already");
  LaunchSpec launch;
  launch.exe = kShell;
  launch.args = {"-e", "-c", spec_.script};
  launch.env = spec_.env;
  launch.env.emplace_back(kStepIdVariable, spec_.id);  // last: the step cannot hide it
  launch.cwd = dir_;
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
