// Regression (issue 10): the executor held its mutex while an engine's Kill
// blocked (a docker daemon slow to answer POST /kill, up to 120 s), stalling
// every step update and status read. Ordering, not timing: what must happen
// while the Kill is still blocking.
#include "runner/exec/executor.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "tests/fakes/fake_engine.h"

namespace fs = std::filesystem;

namespace ladle::runner {
namespace {

// Notes whether a Kill was blocking when the quick step's success arrived.
class KillWatcher : public RunObserver {
 public:
  explicit KillWatcher(env::FakeEngine* engine) : engine_(engine) {}
  void StepChanged(const RunRecord&, const std::string&, const StepRecord& step) override {
    if (step.name == "quick" && step.status == kSuccess) {
      quick_done = true;
      kill_blocking_at_quick_done = engine_->kills_in_progress() > 0;
    }
  }
  env::FakeEngine* engine_;
  std::atomic<bool> quick_done{false};
  std::atomic<bool> kill_blocking_at_quick_done{false};
};

TEST(ExecutorKillTest, BlockingKillDoesNotStallStepUpdatesOrStatusReads) {
  char tmpl[] = "/tmp/ladle-exec-kill-XXXXXX";
  fs::path root = mkdtemp(tmpl);
  fs::create_directories(root / "ws");
  std::unique_ptr<RunStore> store;
  ASSERT_TRUE(RunStore::Open(root.string(), &store).ok());

  env::FakeEngine engine;
  env::FakeOutcome slow;  // times out at once; its Kill then blocks 3 s
  slow.duration = std::chrono::seconds(30);
  slow.kill_blocks = std::chrono::seconds(3);
  engine.AddRule("slow-script", slow);
  env::FakeOutcome quick;  // ends while that Kill blocks
  quick.duration = std::chrono::milliseconds(1000);
  engine.AddRule("quick-script", quick);

  Pipeline pipeline;
  std::vector<Diagnostic> diags;
  ASSERT_TRUE(ParsePipeline(R"(name: p
stages:
  - name: s
    steps:
      - {name: slow, run: "slow-script", timeout: 200ms}
      - {name: quick, run: "quick-script"}
)",
                            "p.yml", &pipeline, &diags));
  KillWatcher watcher(&engine);
  Executor executor(pipeline, store.get(), &engine, &watcher);

  // A reader of the run's state (as the HTTP API's cancel does) while the
  // Kill blocks: it must get through before the Kill returns.
  std::atomic<bool> read_while_blocking{false};
  std::thread reader([&] {
    for (int i = 0; i < 1000 && engine.kills_in_progress() == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (engine.kills_in_progress() == 0) return;
    Status failure = executor.outside_failure();
    executor.Cancel(0);  // takes the same mutex; signal 0 records nothing
    read_while_blocking = failure.ok() && engine.kills_in_progress() > 0;
  });

  RunOptions options;
  options.data_dir = root.string();
  options.workspace = (root / "ws").string();
  // Long enough that the TERM (whose Kill blocks) ends the step: no second,
  // KILL, Kill blocks after it.
  options.kill_grace = std::chrono::seconds(10);
  RunRecord run;
  ASSERT_TRUE(executor.Run(options, &run).ok());
  reader.join();

  EXPECT_TRUE(watcher.quick_done);
  EXPECT_TRUE(watcher.kill_blocking_at_quick_done) << "the quick step's update waited for the Kill";
  EXPECT_TRUE(read_while_blocking) << "a status read waited for the Kill";
  EXPECT_EQ(kFailed, run.status);
  fs::remove_all(root);
}

}  // namespace
}  // namespace ladle::runner
