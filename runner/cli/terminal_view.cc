#include "runner/cli/terminal_view.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "core/base/time_util.h"

namespace ladle::runner {
namespace {

const char* kReset = "\x1b[0m";

const char* StatusColor(RunStatus status) {
  if (status == kSuccess) return "\x1b[32m";
  if (status == kFailed) return "\x1b[31m";
  if (status == kRunning) return "\x1b[36m";
  if (status == kWaiting) return "\x1b[33m";
  if (status == kCancelled || status == kInterrupted) return "\x1b[35m";
  return "\x1b[2m";  // queued, skipped, superseded
}

const char* StatusIcon(RunStatus status) {
  if (status == kSuccess) return "✓";
  if (status == kFailed) return "✗";
  if (status == kRunning) return "●";
  if (status == kWaiting) return "⏸";
  if (status == kSkipped) return "-";
  if (status == kCancelled || status == kInterrupted) return "⊘";
  return "○";
}

std::string Paint(const std::string& text, RunStatus status, bool color) {
  return color ? StatusColor(status) + text + kReset : text;
}

// "12.3s" between two RFC 3339 times; empty when either is missing.
std::string Elapsed(const std::string& from, const std::string& to) {
  std::chrono::system_clock::time_point a, b;
  if (from.empty() || !ParseRfc3339(from, &a)) return "";
  if (to.empty()) b = std::chrono::system_clock::now();
  else if (!ParseRfc3339(to, &b)) return "";
  return FormatDuration(std::chrono::duration_cast<std::chrono::milliseconds>(b - a));
}

// At least one space after the text, so that a word as wide as its column
// ("interrupted") does not run into the next ("interrupted74ms").
std::string Pad(std::string text, size_t width) {
  text.append(text.size() < width ? width - text.size() : 1, ' ');
  return text;
}

std::string TestsText(const StageRecord& stage) {
  if (!stage.tests) return "";
  const TestCounts& t = *stage.tests;
  std::string text = "tests " + std::to_string(t.passed) + " passed, " +
                     std::to_string(t.failed) + " failed";
  if (t.skipped) text += ", " + std::to_string(t.skipped) + " skipped";
  return text;
}

// Cuts `text` to `width` columns, counting UTF-8 code points, not bytes.
std::string FitWidth(const std::string& text, size_t width) {
  size_t cols = 0, i = 0;
  for (; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) continue;
    if (text[i] == '\x1b') {  // skip our own color codes
      while (i < text.size() && text[i] != 'm') ++i;
      continue;
    }
    if (++cols > width) break;
  }
  return i >= text.size() ? text : text.substr(0, i) + (text.find('\x1b') != std::string::npos ? kReset : "");
}

bool AskYesNo(const std::string& question) {
  std::fprintf(stdout, "%s [y/N] ", question.c_str());
  std::fflush(stdout);
  std::string answer;
  if (!std::getline(std::cin, answer)) return false;
  return answer == "y" || answer == "Y" || answer == "yes";
}

// Plain lines: "[stage/step] text". Safe for pipes, CI logs and NO_COLOR.
class PlainView : public RunObserver {
 public:
  explicit PlainView(const ViewOptions& options) : o_(options) {}

  void RunStarted(const RunRecord& run) override {
    Print("ladle: run " + std::to_string(run.id) + " of " + run.pipeline + " (" + run.file + ")");
  }
  void Note(const std::string& text) override { Print("ladle: " + text); }
  void StageChanged(const RunRecord&, const StageRecord& stage) override {
    if (stage.status == kRunning) Print("[" + stage.name + "] running");
    else if (stage.status != kQueued)
      Print("[" + stage.name + "] " + ToString(stage.status) +
            (stage.message.empty() ? "" : ": " + stage.message));
  }
  void StepChanged(const RunRecord&, const std::string& stage, const StepRecord& step) override {
    if (step.status == kSkipped || step.status == kQueued) return;
    std::string text = "[" + stage + "/" + step.name + "] " + ToString(step.status);
    if (step.status != kRunning) {
      text += " in " + Elapsed(step.started_at, step.finished_at);
      if (step.exit_code && *step.exit_code != 0) text += " (exit " + std::to_string(*step.exit_code) + ")";
      if (step.failure_reason != FailureReason::kNone && step.failure_reason != FailureReason::kExitCode)
        text += std::string(" (") + ToString(step.failure_reason) + ")";
      if (step.allow_failure) text += " (allowed to fail)";
    } else if (step.attempts > 1) {
      text += " (attempt " + std::to_string(step.attempts) + ")";
    }
    Print(text);
  }
  void StepOutput(const std::string& stage, const std::string& step, env::OutputStream,
                  std::string_view line) override {
    if (!o_.quiet) Print("[" + stage + "/" + step + "] " + SanitizeForTerminal(line));
  }
  void RunFinished(const RunRecord& run) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::fputs(("\n" + FormatSummary(run, o_.color)).c_str(), o_.out);
    std::fflush(o_.out);
  }
  bool Approve(const std::string& stage) override {
    if (!o_.ask) return false;
    std::lock_guard<std::mutex> lock(mu_);
    return AskYesNo("Stage '" + stage + "' needs approval. Run it now?");
  }

 private:
  void Print(const std::string& line) {
    std::lock_guard<std::mutex> lock(mu_);
    std::fputs(line.c_str(), o_.out);
    std::fputc('\n', o_.out);
    std::fflush(o_.out);
  }

  ViewOptions o_;
  std::mutex mu_;
};

// The live view: a block at the bottom of the terminal, redrawn in place.
class LiveView : public RunObserver {
 public:
  explicit LiveView(const ViewOptions& options) : o_(options) {}
  ~LiveView() override { StopRenderer(); }

  void RunStarted(const RunRecord& run) override {
    std::lock_guard<std::mutex> lock(mu_);
    run_ = run;
    Above("ladle: run " + std::to_string(run.id) + " of " + run.pipeline + " (" + run.file + ")");
    renderer_ = std::thread([this] { RenderLoop(); });
  }
  void Note(const std::string& text) override {
    std::lock_guard<std::mutex> lock(mu_);
    Above("ladle: " + text);
  }
  void StageChanged(const RunRecord&, const StageRecord& stage) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (StageRecord& s : run_.stages)
      if (s.name == stage.name) {
        auto steps = std::move(s.steps);
        s = stage;
        s.steps = std::move(steps);
      }
  }
  void StepChanged(const RunRecord&, const std::string& stage, const StepRecord& step) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (StageRecord& s : run_.stages)
      if (s.name == stage)
        for (StepRecord& st : s.steps)
          if (st.name == step.name) st = step;
  }
  void StepOutput(const std::string& stage, const std::string& step, env::OutputStream,
                  std::string_view line) override {
    std::string clean = SanitizeForTerminal(line);
    if (clean.find_first_not_of(' ') == std::string::npos) return;
    std::lock_guard<std::mutex> lock(mu_);
    tails_[stage + "/" + step] = std::move(clean);
  }
  void RunFinished(const RunRecord& run) override {
    StopRenderer();
    std::lock_guard<std::mutex> lock(mu_);
    run_ = run;
    Draw();
    drawn_ = 0;
    std::fputs(("\n" + FormatSummary(run, o_.color)).c_str(), o_.out);
    std::fflush(o_.out);
  }
  bool Approve(const std::string& stage) override {
    if (!o_.ask) return false;
    std::lock_guard<std::mutex> lock(mu_);
    Clear();
    bool yes = AskYesNo("Stage '" + stage + "' needs approval. Run it now?");
    Draw();
    return yes;
  }

 private:
  void StopRenderer() {
    stop_ = true;
    cv_.notify_all();
    if (renderer_.joinable()) renderer_.join();
  }

  void RenderLoop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      Draw();
      cv_.wait_for(lock, std::chrono::milliseconds(100));
    }
  }

  // Prints a line above the live block. REQUIRES: mu_ held.
  void Above(const std::string& line) {
    Clear();
    std::fputs((line + "\n").c_str(), o_.out);
    Draw();
  }

  void Clear() {
    for (int i = 0; i < drawn_; ++i) std::fputs("\x1b[1A\x1b[2K", o_.out);
    drawn_ = 0;
  }

  void Draw() {
    struct winsize ws {};
    size_t width = 100, height = 40;
    if (ioctl(fileno(o_.out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
      width = ws.ws_col;
      height = ws.ws_row;
    }
    std::vector<std::string> lines = Lines(height > 4 ? height - 2 : 2);
    std::string frame;
    for (int i = 0; i < drawn_; ++i) frame += "\x1b[1A";
    for (const std::string& line : lines) frame += "\r\x1b[2K" + FitWidth(line, width - 1) + "\n";
    for (int i = static_cast<int>(lines.size()); i < drawn_; ++i) frame += "\r\x1b[2K\n";
    int extra = drawn_ - static_cast<int>(lines.size());
    for (int i = 0; i < extra; ++i) frame += "\x1b[1A";
    std::fputs(frame.c_str(), o_.out);
    std::fflush(o_.out);
    drawn_ = static_cast<int>(lines.size());
  }

  std::vector<std::string> Lines(size_t max_lines) {
    std::vector<std::string> lines;
    for (const StageRecord& stage : run_.stages) {
      std::string line = Paint(std::string(StatusIcon(stage.status)) + " " + Pad(stage.name, 14) +
                                   Pad(ToString(stage.status), 11),
                               stage.status, o_.color) +
                         Pad(Elapsed(FirstStart(stage), stage.status == kRunning ? "" : LastEnd(stage)), 9) +
                         TestsText(stage);
      lines.push_back(line);
      if (stage.status != kRunning) continue;
      for (const StepRecord& step : stage.steps) {
        if (step.status == kQueued || step.status == kSkipped) continue;
        std::string text = "    " + Paint(std::string(StatusIcon(step.status)) + " " + Pad(step.name, 16),
                                          step.status, o_.color) +
                           Pad(Elapsed(step.started_at, step.finished_at), 9);
        auto tail = tails_.find(stage.name + "/" + step.name);
        if (step.status == kRunning && tail != tails_.end()) text += "│ " + tail->second;
        lines.push_back(text);
      }
    }
    if (lines.size() > max_lines) lines.erase(lines.begin(), lines.end() - max_lines);
    return lines;
  }

  static std::string FirstStart(const StageRecord& stage) {
    std::string first;
    for (const StepRecord& s : stage.steps)
      if (!s.started_at.empty() && (first.empty() || s.started_at < first)) first = s.started_at;
    return first;
  }
  static std::string LastEnd(const StageRecord& stage) {
    std::string last;
    for (const StepRecord& s : stage.steps)
      if (s.finished_at > last) last = s.finished_at;
    return last;
  }

  ViewOptions o_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> stop_{false};
  std::thread renderer_;
  RunRecord run_;
  std::map<std::string, std::string> tails_;
  int drawn_ = 0;
};

}  // namespace

ViewOptions DetectViewOptions(bool quiet) {
  ViewOptions o;
  o.quiet = quiet;
  bool tty = isatty(STDOUT_FILENO) == 1;
  const char* term = std::getenv("TERM");
  bool no_color = std::getenv("NO_COLOR") != nullptr && *std::getenv("NO_COLOR") != '\0';
  bool dumb = term == nullptr || std::strcmp(term, "dumb") == 0;
  o.live = tty && !no_color && !dumb;
  o.color = o.live;
  o.ask = tty && isatty(STDIN_FILENO) == 1;
  return o;
}

std::unique_ptr<RunObserver> MakeTerminalView(const ViewOptions& options) {
  if (options.live) return std::make_unique<LiveView>(options);
  return std::make_unique<PlainView>(options);
}

std::string SanitizeForTerminal(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == 0x1b) {  // CSI ... final byte, or a two-byte escape
      if (i + 1 < text.size() && text[i + 1] == '[') {
        i += 2;
        while (i < text.size() && !(text[i] >= 0x40 && text[i] <= 0x7e)) ++i;
      } else {
        ++i;
      }
      continue;
    }
    if (c == '\t') out += "    ";
    else if (c == '\r') out.clear();  // a progress bar: keep what was drawn last
    else if (c >= 0x20 && c != 0x7f) out += static_cast<char>(c);
  }
  return out;
}

// docs/running.md "Tests by name": the stage's failed test cases, at most
// kShownFailedTests, then how many more.
std::string FailedTestsText(const StageRecord& stage) {
  constexpr size_t kShownFailedTests = 10;
  std::string out;
  size_t shown = 0;
  long long more = 0;
  for (const StepRecord& step : stage.steps) {
    for (const FailedTest& test : step.failed_tests) {
      if (shown == kShownFailedTests) {
        ++more;
        continue;
      }
      out += "        ✗ " + SanitizeForTerminal(FailedTestLine(test)) + "\n";
      ++shown;
    }
    more += step.failed_tests_more;
  }
  if (more > 0)
    out += "        and " + std::to_string(more) + " more failed test" + (more == 1 ? "" : "s") + "\n";
  return out;
}

std::string FormatSummary(const RunRecord& run, bool color) {
  std::string started, finished;
  for (const StageRecord& stage : run.stages)
    for (const StepRecord& step : stage.steps) {
      if (!step.started_at.empty() && (started.empty() || step.started_at < started))
        started = step.started_at;
      if (step.finished_at > finished) finished = step.finished_at;
    }
  std::string out = Paint("run " + std::to_string(run.id) + " " + ToString(run.status), run.status, color);
  std::string took = Elapsed(run.started_at, run.finished_at);
  if (!took.empty()) out += " in " + took;
  out += "\n";
  for (const StageRecord& stage : run.stages) {
    out += "  " + Paint(std::string(StatusIcon(stage.status)) + " " + Pad(stage.name, 14) +
                            Pad(ToString(stage.status), 11),
                        stage.status, color);
    std::string detail = TestsText(stage);
    if (!stage.message.empty()) detail += (detail.empty() ? "" : "; ") + stage.message;
    out += detail + "\n";
    for (const StepRecord& step : stage.steps) {
      if (step.status == kSkipped && stage.status == kSkipped) continue;
      // docs/pipeline.md "Matrix": a combination shows as "test [GO=1.21]".
      out += "      " + Paint(std::string(StatusIcon(step.status)) + " " + Pad(step.DisplayName(), 16), step.status, color) +
             Pad(ToString(step.status), 11) + Pad(Elapsed(step.started_at, step.finished_at), 9);
      if (step.status == kFailed) {
        if (step.failure_reason == FailureReason::kTimeout) out += "timed out; ";
        else if (step.exit_code) out += "exit " + std::to_string(*step.exit_code) + "; ";
        if (step.allow_failure) out += "allowed to fail; ";
        out += "log: ladle logs " + std::to_string(run.id) + " " + stage.name + "/" + step.name;
      } else if (step.attempts > 1) {
        out += std::to_string(step.attempts) + " attempts";
      }
      out += "\n";
      // docs/backends.md "keep": repeated here, where it is not lost in the output.
      if (!step.kept.empty()) out += "        container kept; enter it with: " + step.kept + "\n";
    }
    out += FailedTestsText(stage);
  }
  return out;
}

}  // namespace ladle::runner
