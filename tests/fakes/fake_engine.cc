#include "tests/fakes/fake_engine.h"

#include <signal.h>

#include <condition_variable>
#include <cstdlib>
#include <regex>
#include <thread>

namespace ladle::env {
namespace {

class FakeStep : public Step {
 public:
  FakeStep(StepSpec spec, FakeOutcome outcome, std::shared_ptr<FakeJournal> journal)
      : spec_(std::move(spec)), outcome_(std::move(outcome)), journal_(std::move(journal)) {}

  Status Start() override {
    if (!outcome_.start_error.ok()) return outcome_.start_error;
    std::lock_guard<std::mutex> lock(mu_);
    started_ = true;
    return Status::OK();
  }

  Status Stream(OutputSink* sink) override {
    if (!Started()) return Status::Precondition("step '" + spec_.id + "' was not started");
    if (sink != nullptr && !outcome_.out.empty()) sink->Write(OutputStream::kStdout, outcome_.out);
    if (sink != nullptr && !outcome_.err.empty()) sink->Write(OutputStream::kStderr, outcome_.err);
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, outcome_.duration, [this] { return killed_by_ != 0; });
    finished_ = true;
    return Status::OK();
  }

  // A kept fake step can be "entered" with this (the executor's keep).
  std::string ShellCommand() const override { return "enter " + spec_.id; }

  Status Wait(ExitStatus* status) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!started_) return Status::Precondition("step '" + spec_.id + "' was not started");
    int signal = killed_by_ != 0 ? killed_by_ : outcome_.signal;
    status->signal = signal;
    status->code = signal != 0 ? 128 + signal : outcome_.exit_code;
    return Status::OK();
  }

  void Kill(int signal) override {
    {
      std::lock_guard<std::mutex> lock(journal_->mu);
      journal_->kills.push_back({spec_.id, signal});
    }
    if (outcome_.kill_blocks.count() > 0) {
      {
        std::lock_guard<std::mutex> lock(journal_->mu);
        journal_->kills_in_progress++;
      }
      std::this_thread::sleep_for(outcome_.kill_blocks);
      std::lock_guard<std::mutex> lock(journal_->mu);
      journal_->kills_in_progress--;
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (!started_ || finished_ || signal == 0 || killed_by_ != 0) return;
    if (signal == SIGTERM && outcome_.ignores_term) return;
    killed_by_ = signal;
    cv_.notify_all();
  }

  Status Remove() override {
    if (removed_) return Status::OK();
    removed_ = true;
    std::lock_guard<std::mutex> lock(journal_->mu);
    journal_->removed.push_back(spec_.id);
    return Status::OK();
  }

 private:
  bool Started() {
    std::lock_guard<std::mutex> lock(mu_);
    return started_;
  }

  const StepSpec spec_;
  const FakeOutcome outcome_;
  const std::shared_ptr<FakeJournal> journal_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool started_ = false;
  bool finished_ = false;
  int killed_by_ = 0;
  bool removed_ = false;
};

}  // namespace

FakeEngine::FakeEngine() : journal_(std::make_shared<FakeJournal>()) {}

void FakeEngine::AddRule(std::string match, FakeOutcome outcome) {
  std::lock_guard<std::mutex> lock(mu_);
  rules_.emplace_back(std::move(match), std::move(outcome));
}

FakeOutcome FakeEngine::OutcomeFor(const StepSpec& spec) const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [match, outcome] : rules_) {
      if (spec.id.find(match) != std::string::npos || spec.script.find(match) != std::string::npos) {
        return outcome;
      }
    }
  }
  FakeOutcome outcome;
  static const std::regex kExit(R"(\s*exit\s+(\d{1,3})\s*)");
  std::smatch m;
  if (std::regex_match(spec.script, m, kExit)) outcome.exit_code = std::atoi(m[1].str().c_str()) & 0xff;
  return outcome;
}

Status FakeEngine::Create(const StepSpec& spec, std::unique_ptr<Step>* step) {
  FakeOutcome outcome = OutcomeFor(spec);
  {
    std::lock_guard<std::mutex> lock(journal_->mu);
    journal_->created.push_back(spec);
  }
  if (!outcome.create_error.ok()) return outcome.create_error;
  step->reset(new FakeStep(spec, std::move(outcome), journal_));
  return Status::OK();
}

std::vector<StepSpec> FakeEngine::created() const {
  std::lock_guard<std::mutex> lock(journal_->mu);
  return journal_->created;
}

std::vector<FakeKill> FakeEngine::kills() const {
  std::lock_guard<std::mutex> lock(journal_->mu);
  return journal_->kills;
}

int FakeEngine::kills_in_progress() const {
  std::lock_guard<std::mutex> lock(journal_->mu);
  return journal_->kills_in_progress;
}

std::vector<std::string> FakeEngine::removed() const {
  std::lock_guard<std::mutex> lock(journal_->mu);
  return journal_->removed;
}

}  // namespace ladle::env
