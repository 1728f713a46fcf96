// The executor's `ladle serve` features against the FakeEngine, a real
// RunStore and a real ToggleStore: queued runs (run_id), resuming after an
// approval, rollbacks, secrets, toggles sync, rollout stages, deployments and
// the per-environment deployment lock.
#include "runner/exec/executor.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <thread>

#include "tests/fakes/fake_engine.h"
#include "runner/exec/toggle_ops.h"
#include "toggles/server/store.h"

namespace fs = std::filesystem;

namespace ladle::runner {
namespace {

// Records notes, step starts and stage changes; `on_step_running` is called
// when a step starts (from the step's thread).
class ServeRecorder : public RunObserver {
 public:
  void StepChanged(const RunRecord&, const std::string& stage, const StepRecord& step) override {
    if (step.status != kRunning) return;
    std::function<void(const std::string&)> hook;
    {
      std::lock_guard<std::mutex> lock(mu);
      started.push_back(stage + "/" + step.name);
      hook = on_step_running;
    }
    if (hook) hook(stage + "/" + step.name);
  }
  void StageChanged(const RunRecord&, const StageRecord& stage) override {
    std::lock_guard<std::mutex> lock(mu);
    stage_changes.push_back(stage.name + ":" + ToString(stage.status) + ":" + stage.message);
  }
  void Note(const std::string& text) override {
    std::lock_guard<std::mutex> lock(mu);
    notes.push_back(text);
  }
  bool SawStageChange(const std::string& needle) {
    std::lock_guard<std::mutex> lock(mu);
    for (const std::string& c : stage_changes)
      if (c.find(needle) != std::string::npos) return true;
    return false;
  }
  std::vector<std::string> Started() {
    std::lock_guard<std::mutex> lock(mu);
    return started;
  }
  std::string AllNotes() {
    std::lock_guard<std::mutex> lock(mu);
    std::string out;
    for (const std::string& n : notes) out += n + "\n";
    return out;
  }

  std::mutex mu;
  std::vector<std::string> started, notes, stage_changes;
  std::function<void(const std::string&)> on_step_running;
};

class ExecutorServeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ladle-exec-serve-XXXXXX";
    ASSERT_NE(nullptr, mkdtemp(tmpl));
    root_ = tmpl;
    fs::create_directories(root_ / "ws");
    ASSERT_TRUE(RunStore::Open(root_.string(), &store_).ok());
    Status s = toggles::ToggleStore::Open(root_.string(), &toggle_store_);
    ASSERT_TRUE(s.ok()) << s.ToString();
    ops_ = StoreToggleOps(toggle_store_.get());
  }
  void TearDown() override {
    ops_.reset();
    toggle_store_.reset();
    store_.reset();
    fs::remove_all(root_);
  }

  Pipeline Parse(const std::string& yaml) {
    Pipeline p;
    std::vector<Diagnostic> diags;
    std::string text;
    bool ok = ParsePipeline(yaml, "ladle.yml", &p, &diags);
    for (const Diagnostic& d : diags) text += d.ToString() + "\n";
    EXPECT_TRUE(ok) << text;
    return p;
  }
  RunOptions Options() {
    RunOptions options;
    options.data_dir = root_.string();
    options.workspace = (root_ / "ws").string();
    options.kill_grace = std::chrono::milliseconds(200);
    options.repo = "webshop";
    options.commit = "abc123def4567890";
    options.branch = "main";
    options.actor = "ladle serve";
    return options;
  }
  RunRecord Run(const std::string& yaml, const RunOptions& options) {
    Pipeline p = Parse(yaml);
    Executor executor(p, store_.get(), &engine_, &recorder_);
    RunRecord run;
    Status s = executor.Run(options, &run);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return run;
  }
  RunRecord Run(const std::string& yaml) { return Run(yaml, Options()); }
  // Runs `yaml` with the toggle service in the options.
  RunRecord RunWithToggles(const std::string& yaml) {
    RunOptions options = Options();
    options.toggles = ops_.get();
    return Run(yaml, options);
  }

  int64_t EnqueuePush() {
    RunRecord queued;
    queued.repo = "webshop";
    queued.branch = "main";
    queued.commit = "abc123def4567890";
    queued.trigger = "push";
    queued.created_at = "2026-11-29T09:00:00.000Z";
    std::vector<int64_t> superseded;
    Status s = store_->EnqueueRun(&queued, &superseded);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return queued.id;
  }
  // Options that carry out the queued run `id`.
  RunOptions QueuedOptions(int64_t id) {
    RunOptions options = Options();
    options.run_id = id;
    return options;
  }
  RunRecord Stored(int64_t id) {
    RunRecord run;
    Status s = store_->GetRun(id, &run);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return run;
  }
  void WriteWorkspaceFile(const std::string& name, const std::string& text) {
    std::ofstream(root_ / "ws" / name) << text;
  }
  // "enabled 25", "disabled 0", or the error's message.
  std::string Toggle(const std::string& key, const std::string& env = "production") {
    bool enabled = false;
    int percent = 0;
    Status s = ops_->GetRollout(key, env, &enabled, &percent);
    if (!s.ok()) return s.ToString();
    return std::string(enabled ? "enabled " : "disabled ") + std::to_string(percent);
  }
  // The code of looking `key` up in `env` (kNotFound: never synced).
  Code RolloutCode(const std::string& key, const std::string& env = "production") {
    bool enabled;
    int percent;
    return ops_->GetRollout(key, env, &enabled, &percent).code();
  }
  // The text of a step's log as a reader sees it.
  std::string StepLog(int64_t run, const std::string& stage, const std::string& step) {
    std::ifstream in(StepLogPath(root_.string(), run, stage, step));
    std::stringstream log;
    log << in.rdbuf();
    return log.str();
  }
  // Ids of the steps the engine was asked to create, without the attempt.
  std::vector<std::string> Created() {
    std::vector<std::string> out;
    for (const env::StepSpec& spec : engine_.created()) out.push_back(spec.id.substr(0, spec.id.find('#')));
    return out;
  }
  bool CreatedStep(const std::string& stage_step) {
    for (const std::string& id : Created())
      if (id.size() > stage_step.size() &&
          id.compare(id.size() - stage_step.size() - 1, std::string::npos, "/" + stage_step) == 0)
        return true;
    return false;
  }
  std::vector<DeploymentRecord> Deployments(const std::string& env = "") {
    std::vector<DeploymentRecord> out;
    Status s = store_->ListDeployments(env, 0, 0, &out);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return out;
  }
  static const StepRecord& StepOf(const RunRecord& run, const std::string& stage,
                                  const std::string& step) {
    for (const StageRecord& s : run.stages)
      if (s.name == stage)
        for (const StepRecord& st : s.steps)
          if (st.name == step) return st;
    static StepRecord none;
    none.name = "<none>";
    return none;
  }
  static const StageRecord& StageOf(const RunRecord& run, const std::string& stage) {
    for (const StageRecord& s : run.stages)
      if (s.name == stage) return s;
    static StageRecord none;
    none.name = "<none>";
    return none;
  }
  static std::string StepNames(const StageRecord& stage) {
    std::string out;
    for (const StepRecord& st : stage.steps) out += (out.empty() ? "" : ",") + st.name;
    return out;
  }
  static std::string Env(const env::StepSpec& spec, const std::string& key) {
    std::string value = "<unset>";
    for (const auto& [k, v] : spec.env)
      if (k == key) value = v;
    for (const auto& [k, v] : spec.secrets)  // set after env
      if (k == key) value = v;
    return value;
  }
  // Polls `done` every 10 ms for up to 2 s.
  static bool Eventually(const std::function<bool()>& done) {
    for (int i = 0; i < 200; ++i) {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return done();
  }
  // Takes DATA/locks/ENV.lock as another ladle deploying there would.
  int HoldDeploymentLock(const std::string& environment) {
    const std::string path = DeploymentLockPath(root_.string(), environment);
    fs::create_directories(fs::path(path).parent_path());
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(0, ::flock(fd, LOCK_EX | LOCK_NB));
    return fd;
  }
  // Runs `yaml` with Options() on a thread of its own, so that a test can
  // watch it wait; the test joins `worker`.
  struct BackgroundRun {
    BackgroundRun(ExecutorServeTest* test, const std::string& yaml)
        : pipeline(test->Parse(yaml)),
          executor(pipeline, test->store_.get(), &test->engine_, &test->recorder_),
          worker([this, test] {
            status = executor.Run(test->Options(), &run);
            done = true;
          }) {}
    Pipeline pipeline;
    Executor executor;
    RunRecord run;
    Status status;
    std::atomic<bool> done{false};
    std::thread worker;  // last: it uses the members above
  };

  fs::path root_;
  std::unique_ptr<RunStore> store_;
  std::unique_ptr<toggles::ToggleStore> toggle_store_;
  std::unique_ptr<ToggleOps> ops_;
  env::FakeEngine engine_;
  ServeRecorder recorder_;
};

constexpr const char* kApprovalPipeline = R"(name: shop
stages:
  - name: test
    steps: [{name: t, run: "true"}]
  - name: production
    environment: production
    approval: manual
    steps: [{name: deploy, run: "./deploy.sh"}]
  - name: after
    steps: [{name: a, run: "true"}]
)";

TEST_F(ExecutorServeTest, RunIdCarriesOutTheQueuedRun) {
  const int64_t id = EnqueuePush();
  RunOptions options = QueuedOptions(id);
  RunRecord run = Run("name: shop\nstages:\n  - name: s\n    steps: [{name: x, run: 'true'}]\n",
                      options);
  EXPECT_EQ(id, run.id);
  EXPECT_EQ(kSuccess, run.status);
  EXPECT_EQ("push", run.trigger);
  EXPECT_EQ("2026-11-29T09:00:00.000Z", run.created_at);
  EXPECT_EQ(std::vector<std::string>{std::to_string(id) + "/s/x"}, Created());

  std::vector<RunRecord> all;
  ASSERT_TRUE(store_->ListRuns(RunFilter{}, &all).ok());
  ASSERT_EQ(1u, all.size()) << "no second run is recorded";
  RunRecord stored = Stored(id);
  EXPECT_EQ(kSuccess, stored.status);
  EXPECT_EQ("push", stored.trigger);
  EXPECT_EQ("2026-11-29T09:00:00.000Z", stored.created_at);
  EXPECT_EQ("shop", stored.pipeline);
  EXPECT_EQ("ladle.yml", stored.file);
  EXPECT_FALSE(stored.started_at.empty());
  EXPECT_FALSE(stored.finished_at.empty());
  EXPECT_EQ(kSuccess, StepOf(stored, "s", "x").status);
  std::vector<RunRecord> queued;
  ASSERT_TRUE(store_->ListQueued(&queued).ok());
  EXPECT_TRUE(queued.empty());
}

TEST_F(ExecutorServeTest, ResumeStageKeepsEarlierStagesAndCountsAsApproved) {
  const int64_t id = EnqueuePush();
  RunOptions options = QueuedOptions(id);
  RunRecord first = Run(kApprovalPipeline, options);
  ASSERT_EQ(kWaiting, first.status);
  EXPECT_EQ(kWaiting, StageOf(first, "production").status);
  EXPECT_NE(std::string::npos, StageOf(first, "production")
                                   .message.find("ladle approve " + std::to_string(id) +
                                                 " production"))
      << StageOf(first, "production").message;
  const StepRecord test_before = StepOf(Stored(id), "test", "t");
  ASSERT_EQ(kSuccess, test_before.status);
  EXPECT_FALSE(CreatedStep("production/deploy"));
  EXPECT_TRUE(Deployments().empty()) << "a waiting stage deploys nothing";

  ASSERT_TRUE(store_->RequeueRun(id, "production").ok());
  options.resume_stage = "production";
  RunRecord second = Run(kApprovalPipeline, options);
  EXPECT_EQ(id, second.id);
  EXPECT_EQ(kSuccess, second.status);
  EXPECT_EQ("push", second.trigger);

  // test/t ran once, in the first execution; its record is the same.
  std::vector<std::string> ids = Created();
  EXPECT_EQ(1, std::count(ids.begin(), ids.end(), std::to_string(id) + "/test/t"));
  EXPECT_EQ(1, std::count(ids.begin(), ids.end(), std::to_string(id) + "/production/deploy"));
  EXPECT_EQ(1, std::count(ids.begin(), ids.end(), std::to_string(id) + "/after/a"));
  RunRecord stored = Stored(id);
  EXPECT_EQ(kSuccess, stored.status);
  EXPECT_EQ(kSuccess, StageOf(stored, "test").status);
  EXPECT_EQ(test_before.started_at, StepOf(stored, "test", "t").started_at);
  EXPECT_EQ(test_before.finished_at, StepOf(stored, "test", "t").finished_at);
  EXPECT_EQ(kSuccess, StageOf(stored, "production").status);
  EXPECT_EQ("", StageOf(stored, "production").message) << "the approval note is over once it runs";
  EXPECT_EQ(kSuccess, StageOf(stored, "after").status);
  EXPECT_EQ("", stored.resume_stage);
  ASSERT_TRUE(stored.deployment.has_value());
  EXPECT_EQ(kSuccess, stored.deployment->status);
  EXPECT_EQ("production", stored.deployment->environment);
}

TEST_F(ExecutorServeTest, ResumeDoesNotApproveALaterManualStage) {
  const std::string yaml = std::string(kApprovalPipeline) +
                           "  - name: final\n    approval: manual\n"
                           "    steps: [{name: f, run: 'true'}]\n";
  const int64_t id = EnqueuePush();
  RunOptions options = QueuedOptions(id);
  ASSERT_EQ(kWaiting, Run(yaml, options).status);
  ASSERT_TRUE(store_->RequeueRun(id, "production").ok());
  options.resume_stage = "production";
  RunRecord run = Run(yaml, options);
  EXPECT_EQ(kWaiting, run.status);
  EXPECT_EQ(kSuccess, StageOf(run, "production").status);
  EXPECT_EQ(kWaiting, StageOf(run, "final").status);
  EXPECT_FALSE(CreatedStep("final/f"));
}

constexpr const char* kRollbackPipeline = R"(name: shop
stages:
  - name: test
    gate: {min_tests: 1}
    steps: [{name: unit, run: "make test"}]
  - name: staging
    environment: staging
    steps: [{name: deploy, run: "./deploy.sh staging"}]
  - name: production
    environment: production
    gate: {min_tests: 5}
    approval: manual
    toggles: toggles.yml
    steps:
      - {name: deploy, run: "./deploy.sh production"}
      - {name: smoke, run: "./smoke.sh", needs: [deploy]}
    rollback: {run: "./deploy.sh production --previous"}
  - name: release
    rollout:
      toggle: new-checkout
      environment: production
      percent: [100]
      check: {run: health}
)";

TEST_F(ExecutorServeTest, RollbackRunsOnlyTheEnvironmentsRollbackScript) {
  WriteWorkspaceFile("toggles.yml", "- key: new-checkout\n  description: One-page checkout\n");
  RunOptions options = Options();
  options.rollback_environment = "production";
  options.toggles = ops_.get();
  RunRecord run = Run(kRollbackPipeline, options);
  EXPECT_EQ(kSuccess, run.status) << recorder_.AllNotes();
  EXPECT_EQ("production", run.rollback_environment);
  EXPECT_EQ(std::vector<std::string>{std::to_string(run.id) + "/production/rollback"}, Created());
  ASSERT_EQ(1u, engine_.created().size());
  EXPECT_EQ("./deploy.sh production --previous", engine_.created()[0].script);
  EXPECT_EQ("production", Env(engine_.created()[0], "LADLE_ENVIRONMENT"));

  RunRecord stored = Stored(run.id);
  EXPECT_EQ("production", stored.rollback_environment);
  EXPECT_EQ("rollback", StepNames(StageOf(stored, "production")));
  EXPECT_EQ(kSuccess, StageOf(stored, "production").status);
  EXPECT_EQ(kSuccess, StepOf(stored, "production", "rollback").status);
  for (const char* other : {"test", "staging", "release"}) {
    EXPECT_EQ(kSkipped, StageOf(stored, other).status) << other;
    EXPECT_EQ("a rollback of production runs only its stage", StageOf(stored, other).message)
        << other;
  }
  // No toggles sync: the file's toggle was not created.
  EXPECT_EQ(Code::kNotFound, RolloutCode("new-checkout"));

  std::vector<DeploymentRecord> deployments = Deployments();
  ASSERT_EQ(1u, deployments.size());
  EXPECT_TRUE(deployments[0].rollback);
  EXPECT_EQ("production", deployments[0].environment);
  EXPECT_EQ("production", deployments[0].stage);
  EXPECT_EQ(run.id, deployments[0].run_id);
  EXPECT_EQ(kSuccess, deployments[0].status);
  EXPECT_EQ("abc123def4567890", deployments[0].commit);
  ASSERT_TRUE(stored.deployment.has_value());
  EXPECT_TRUE(stored.deployment->rollback);
  EXPECT_TRUE(RunToJson(stored)["deployment"]["rollback"].get<bool>());
}

TEST_F(ExecutorServeTest, RollbackWithoutAScriptRunsTheStagesSteps) {
  RunOptions options = Options();
  options.rollback_environment = "staging";
  RunRecord run = Run(kRollbackPipeline, options);
  EXPECT_EQ(kSuccess, run.status) << recorder_.AllNotes();
  EXPECT_EQ(std::vector<std::string>{std::to_string(run.id) + "/staging/deploy"}, Created());
  EXPECT_EQ(kSkipped, StageOf(run, "production").status);
  EXPECT_EQ(kSkipped, StageOf(run, "test").status);
  std::vector<DeploymentRecord> deployments = Deployments();
  ASSERT_EQ(1u, deployments.size());
  EXPECT_EQ("staging", deployments[0].environment);
  EXPECT_TRUE(deployments[0].rollback);
}

TEST_F(ExecutorServeTest, RollbackFailureIsRecordedAsAFailedDeployment) {
  env::FakeOutcome fail;
  fail.exit_code = 4;
  engine_.AddRule("--previous", fail);
  RunOptions options = Options();
  options.rollback_environment = "production";
  RunRecord run = Run(kRollbackPipeline, options);
  EXPECT_EQ(kFailed, run.status);
  EXPECT_EQ(kFailed, StepOf(run, "production", "rollback").status);
  std::vector<DeploymentRecord> deployments = Deployments("production");
  ASSERT_EQ(1u, deployments.size());
  EXPECT_EQ(kFailed, deployments[0].status);
  EXPECT_TRUE(deployments[0].rollback);
}

TEST_F(ExecutorServeTest, SecretsComeFromTheOptionsOverTheEnvironment) {
  setenv("LADLE_SERVE_SECRET_A", "env-value-a", 1);
  setenv("LADLE_SERVE_SECRET_B", "env-value-b", 1);
  env::FakeOutcome leak;
  leak.out = "a=file-value-a b=env-value-b\n";
  engine_.AddRule("leak", leak);
  RunOptions options = Options();
  options.secrets = {{"LADLE_SERVE_SECRET_A", "file-value-a"}};
  RunRecord run = Run(R"(name: shop
secrets: [LADLE_SERVE_SECRET_A, LADLE_SERVE_SECRET_B]
stages:
  - name: s
    steps: [{name: leak, run: leak}]
)",
                      options);
  unsetenv("LADLE_SERVE_SECRET_A");
  unsetenv("LADLE_SERVE_SECRET_B");
  EXPECT_EQ(kSuccess, run.status);
  ASSERT_EQ(1u, engine_.created().size());
  EXPECT_EQ("file-value-a", Env(engine_.created()[0], "LADLE_SERVE_SECRET_A"));
  EXPECT_EQ("env-value-b", Env(engine_.created()[0], "LADLE_SERVE_SECRET_B"));
  EXPECT_EQ("o a=*** b=***\n", StepLog(run.id, "s", "leak"));
}

TEST_F(ExecutorServeTest, SecretOnlyInTheOptionsIsSetAndMasked) {
  unsetenv("LADLE_SERVE_SECRET_C");
  env::FakeOutcome leak;
  leak.out = "c=only-in-file\n";
  engine_.AddRule("leak", leak);
  RunOptions options = Options();
  options.secrets = {{"LADLE_SERVE_SECRET_C", "only-in-file"}};
  RunRecord run = Run(
      "name: shop\nsecrets: [LADLE_SERVE_SECRET_C]\nstages:\n"
      "  - name: s\n    steps: [{name: leak, run: leak}]\n",
      options);
  ASSERT_EQ(1u, engine_.created().size());
  EXPECT_EQ("only-in-file", Env(engine_.created()[0], "LADLE_SERVE_SECRET_C"));
  EXPECT_EQ(std::string::npos, recorder_.AllNotes().find("LADLE_SERVE_SECRET_C is not set"));
  EXPECT_EQ("o c=***\n", StepLog(run.id, "s", "leak"));
}

// docs/server.md "Scoped secrets": per stage, from the run's repository,
// branch and the stage's environment; the server's environment is not read
// when secrets_from_environment is off.
constexpr const char* kScopedPipeline = R"(name: shop
secrets: [PROD_TOKEN, FREE, FROM_ENV]
stages:
  - name: build
    steps: [{name: b, run: b}]
  - name: production
    environment: production
    steps: [{name: d, run: d}]
)";

TEST_F(ExecutorServeTest, ScopedSecretsReachOnlyMatchingStages) {
  setenv("FROM_ENV", "server-environment", 1);
  RunOptions options = Options();
  options.secrets = {{"PROD_TOKEN", "prod-value"}, {"FREE", "free-value"}};
  options.secrets_from_environment = false;
  SecretScope scope;
  scope.name = "PROD_TOKEN";
  scope.branches = {"main"};
  scope.environments = {"production"};
  options.secret_scopes = {scope};
  RunRecord run = Run(kScopedPipeline, options);
  EXPECT_EQ(kSuccess, run.status);
  const std::vector<env::StepSpec> created = engine_.created();  // a copy
  ASSERT_EQ(2u, created.size());
  const env::StepSpec& build = created[0];
  const env::StepSpec& deploy = created[1];
  EXPECT_EQ("<unset>", Env(build, "PROD_TOKEN")) << "a stage without environment";
  EXPECT_EQ("prod-value", Env(deploy, "PROD_TOKEN"));
  EXPECT_EQ("free-value", Env(build, "FREE"));
  EXPECT_EQ("", Env(deploy, "FROM_ENV")) << "not read from the server's environment";
  for (const auto& [name, value] : deploy.env) EXPECT_NE("prod-value", value) << name;

  options.branch = "feature/leak";
  run = Run(kScopedPipeline, options);
  unsetenv("FROM_ENV");
  ASSERT_EQ(4u, engine_.created().size());
  EXPECT_EQ("<unset>", Env(engine_.created()[3], "PROD_TOKEN")) << "a branch outside the scope";
  EXPECT_NE(std::string::npos,
            recorder_.AllNotes().find("secret PROD_TOKEN is withheld from this run"))
      << recorder_.AllNotes();
  EXPECT_EQ("free-value", Env(engine_.created()[3], "FREE"));
}

TEST_F(ExecutorServeTest, ProtectedEnvironmentFailsBeforeAnyStepOfOtherBranches) {
  RunOptions options = Options();
  options.branch = "feature/leak";
  ProtectedEnvironment env;
  env.name = "production";
  env.branches = {"main"};
  options.protected_environments = {env};
  RunRecord run = Run(kScopedPipeline, options);
  EXPECT_EQ(kFailed, run.status);
  EXPECT_EQ(kSuccess, StageOf(run, "build").status);
  EXPECT_EQ(kFailed, StageOf(run, "production").status);
  EXPECT_EQ("environment 'production' takes deployments from branches main only",
            StageOf(run, "production").message);
  EXPECT_EQ(kSkipped, StepOf(run, "production", "d").status);
  EXPECT_EQ(1u, engine_.created().size()) << "only the build step ran";
  EXPECT_TRUE(Deployments("production").empty());

  options.branch = "main";
  EXPECT_EQ(kSuccess, Run(kScopedPipeline, options).status);
}

// docs/server.md "Webhook trust": no deployment of an ancestor of the
// environment's current commit of the branch, except by a rollback.
TEST_F(ExecutorServeTest, OlderCommitIsNotDeployedOverANewerOne) {
  RunOptions options = Options();
  options.commit = "newer0000000";
  std::vector<std::string> asked;
  options.is_ancestor = [&](const std::string& a, const std::string& d, bool* is) {
    asked.push_back(a + "<" + d);
    *is = a == "older0000000" && d == "newer0000000";
    return Status::OK();
  };
  ASSERT_EQ(kSuccess, Run(kScopedPipeline, options).status);
  options.commit = "older0000000";
  RunRecord run = Run(kScopedPipeline, options);
  EXPECT_EQ(kFailed, run.status);
  EXPECT_EQ("commit older0000000 is older than newer0000000, which run 1 deployed to production "
            "from branch main: an environment goes back only by `ladle rollback production`",
            StageOf(run, "production").message);
  EXPECT_EQ(kSkipped, StepOf(run, "production", "d").status);
  EXPECT_EQ((std::vector<std::string>{"older0000000<newer0000000"}), asked);
  // Another branch's deployments do not count.
  options.branch = "hotfix";
  EXPECT_EQ(kSuccess, Run(kScopedPipeline, options).status);
}

constexpr const char* kTogglesPipeline = R"(name: shop
stages:
  - name: production
    environment: production
    toggles: toggles.yml
    steps: [{name: deploy, run: "./deploy.sh"}]
)";

TEST_F(ExecutorServeTest, TogglesSyncBeforeTheSteps) {
  WriteWorkspaceFile("toggles.yml",
                     "- key: new-checkout\n  description: One-page checkout\n"
                     "- key: dark-mode\n  type: experiment\n");
  std::string seen_at_deploy;
  recorder_.on_step_running = [&](const std::string& step) {
    if (step == "production/deploy") seen_at_deploy = Toggle("new-checkout");
  };
  RunRecord run = RunWithToggles(kTogglesPipeline);
  EXPECT_EQ(kSuccess, run.status) << recorder_.AllNotes();
  EXPECT_EQ("disabled 0", seen_at_deploy) << "the toggle exists before the step starts";
  EXPECT_EQ("disabled 0", Toggle("dark-mode"));
  toggles::Toggle t;
  ASSERT_TRUE(toggle_store_->Get("new-checkout", std::nullopt, &t).ok());
  EXPECT_EQ("One-page checkout", t.description);
  std::vector<toggles::AuditEvent> history;
  ASSERT_TRUE(toggle_store_->History("new-checkout", &history).ok());
  ASSERT_FALSE(history.empty());
  EXPECT_EQ("ladle serve", history.back().actor);
  EXPECT_NE(std::string::npos, history.back().note.find("run " + std::to_string(run.id)))
      << history.back().note;
  EXPECT_NE(std::string::npos, recorder_.AllNotes().find("synced toggles.yml"))
      << recorder_.AllNotes();
}

TEST_F(ExecutorServeTest, InvalidTogglesFileFailsTheStageBeforeAnyStep) {
  WriteWorkspaceFile("toggles.yml", "- key: new-checkout\n  type: bogus\n");
  RunRecord run = RunWithToggles(kTogglesPipeline +
                                 std::string("  - name: after\n    steps: [{name: a, run: 'true'}]\n"));
  EXPECT_EQ(kFailed, run.status);
  EXPECT_TRUE(engine_.created().empty()) << "no step may run";
  RunRecord stored = Stored(run.id);
  EXPECT_EQ(kFailed, StageOf(stored, "production").status);
  EXPECT_EQ(0u, StageOf(stored, "production").message.find("toggles sync: toggles.yml is invalid"))
      << StageOf(stored, "production").message;
  EXPECT_EQ(kSkipped, StepOf(stored, "production", "deploy").status);
  EXPECT_EQ(kSkipped, StageOf(stored, "after").status);
  EXPECT_EQ(Code::kNotFound, RolloutCode("new-checkout"));
  // The deployment it began is recorded as failed.
  std::vector<DeploymentRecord> deployments = Deployments();
  ASSERT_EQ(1u, deployments.size());
  EXPECT_EQ(kFailed, deployments[0].status);
}

TEST_F(ExecutorServeTest, MissingTogglesFileFailsTheStageBeforeAnyStep) {
  RunRecord run = RunWithToggles(kTogglesPipeline);
  EXPECT_EQ(kFailed, run.status);
  EXPECT_TRUE(engine_.created().empty());
  EXPECT_EQ(kFailed, StageOf(run, "production").status);
}

TEST_F(ExecutorServeTest, TogglesSyncWithoutAToggleServiceIsSkippedWithANote) {
  RunRecord run = Run(kTogglesPipeline);  // no options.toggles
  EXPECT_EQ(kSuccess, run.status);
  EXPECT_TRUE(CreatedStep("production/deploy"));
  EXPECT_NE(std::string::npos, recorder_.AllNotes().find("no toggle service"))
      << recorder_.AllNotes();
}

constexpr const char* kRolloutPipeline = R"(name: shop
stages:
  - name: staging
    environment: staging
    steps: [{name: deploy, run: "./deploy.sh staging"}]
  - name: production
    environment: production
    when: {branch: [main]}
    toggles: toggles.yml
    steps: [{name: deploy, run: "./deploy.sh production"}]
  - name: release
    rollout:
      toggle: new-checkout
      environment: production
      percent: [10, 50, 100]
      interval: 20ms
      check: {run: health}
)";

TEST_F(ExecutorServeTest, RolloutRaisesStepByStepWithACheckAfterEach) {
  WriteWorkspaceFile("toggles.yml", "- key: new-checkout\n");
  std::mutex mu;
  std::vector<std::string> checks;  // "check-P at STATE"
  std::atomic<int> running_checks{0}, max_running{0};
  recorder_.on_step_running = [&](const std::string& step) {
    if (step.rfind("release/", 0) != 0) return;
    int now = ++running_checks;
    max_running = std::max(max_running.load(), now);
    std::string state = Toggle("new-checkout");
    {
      std::lock_guard<std::mutex> lock(mu);
      checks.push_back(step + " at " + state);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    --running_checks;
  };
  RunRecord run = RunWithToggles(kRolloutPipeline);
  EXPECT_EQ(kSuccess, run.status) << recorder_.AllNotes();
  EXPECT_EQ((std::vector<std::string>{"release/check-10 at enabled 10",
                                      "release/check-50 at enabled 50",
                                      "release/check-100 at enabled 100"}),
            checks);
  EXPECT_EQ(1, max_running.load()) << "checks run one at a time";
  EXPECT_EQ("enabled 100", Toggle("new-checkout"));

  RunRecord stored = Stored(run.id);
  EXPECT_EQ(kSuccess, StageOf(stored, "release").status);
  EXPECT_EQ("check-10,check-50,check-100", StepNames(StageOf(stored, "release")));
  for (const char* check : {"check-10", "check-50", "check-100"}) {
    EXPECT_EQ(kSuccess, StepOf(stored, "release", check).status) << check;
    EXPECT_EQ(1, StepOf(stored, "release", check).attempts) << check;
  }
  std::vector<std::string> ids = Created();
  const std::string prefix = std::to_string(run.id) + "/";
  EXPECT_EQ((std::vector<std::string>{prefix + "staging/deploy", prefix + "production/deploy",
                                      prefix + "release/check-10", prefix + "release/check-50",
                                      prefix + "release/check-100"}),
            ids);
  for (const env::StepSpec& spec : engine_.created())
    if (spec.id.find("/release/") != std::string::npos) {
      EXPECT_EQ("health", spec.script);
    }

  std::vector<toggles::AuditEvent> history;
  ASSERT_TRUE(toggle_store_->History("new-checkout", &history).ok());
  ASSERT_FALSE(history.empty());
  EXPECT_EQ("ladle serve", history.back().actor);
  EXPECT_NE(std::string::npos, history.back().note.find("run " + std::to_string(run.id)));
  // A rollout stage is not a deployment: only staging and production are.
  EXPECT_EQ(2u, Deployments().size());
}

TEST_F(ExecutorServeTest, RolloutFailedCheckTurnsTheToggleOffAndFailsTheStage) {
  WriteWorkspaceFile("toggles.yml", "- key: new-checkout\n");
  env::FakeOutcome bad;
  bad.exit_code = 1;
  engine_.AddRule("/release/check-50#", bad);
  RunRecord run = RunWithToggles(kRolloutPipeline);
  EXPECT_EQ(kFailed, run.status);
  RunRecord stored = Stored(run.id);
  EXPECT_EQ(kFailed, StageOf(stored, "release").status);
  EXPECT_NE(std::string::npos, StageOf(stored, "release").message.find("turned"))
      << StageOf(stored, "release").message;
  EXPECT_EQ(kSuccess, StepOf(stored, "release", "check-10").status);
  EXPECT_EQ(kFailed, StepOf(stored, "release", "check-50").status);
  EXPECT_EQ(kSkipped, StepOf(stored, "release", "check-100").status);
  EXPECT_FALSE(CreatedStep("release/check-100"));
  EXPECT_EQ("disabled 0", Toggle("new-checkout"));
}

TEST_F(ExecutorServeTest, RolloutIsSkippedWhenTheRunDidNotDeployToItsEnvironment) {
  WriteWorkspaceFile("toggles.yml", "- key: new-checkout\n");
  RunOptions options = Options();
  options.branch = "feature/x";  // production's `when` skips it; staging still deploys
  options.toggles = ops_.get();
  RunRecord run = Run(kRolloutPipeline, options);
  EXPECT_EQ(kSuccess, run.status) << recorder_.AllNotes();
  EXPECT_EQ(kSuccess, StageOf(run, "staging").status);
  EXPECT_EQ(kSkipped, StageOf(run, "production").status);
  RunRecord stored = Stored(run.id);
  EXPECT_EQ(kSkipped, StageOf(stored, "release").status);
  EXPECT_EQ("rollout: this run did not deploy to production", StageOf(stored, "release").message);
  for (const char* check : {"check-10", "check-50", "check-100"})
    EXPECT_EQ(kSkipped, StepOf(stored, "release", check).status) << check;
  EXPECT_FALSE(CreatedStep("release/check-10"));
  EXPECT_EQ(Code::kNotFound, RolloutCode("new-checkout")) << "neither synced nor raised";
}

TEST_F(ExecutorServeTest, RolloutIsSkippedWhenTheRunDeployedOnlyElsewhere) {
  WriteWorkspaceFile("toggles.yml", "- key: new-checkout\n");
  RunRecord run = RunWithToggles(R"(name: shop
stages:
  - name: staging
    environment: staging
    steps: [{name: deploy, run: "./deploy.sh staging"}]
  - name: release
    rollout:
      toggle: new-checkout
      environment: production
      percent: [10]
      check: {run: health}
)");
  EXPECT_EQ(kSuccess, run.status);
  EXPECT_EQ(kSkipped, StageOf(run, "release").status);
  EXPECT_FALSE(CreatedStep("release/check-10"));
}

TEST_F(ExecutorServeTest, DeploymentsAreRecordedWithTheStagesResult) {
  env::FakeOutcome fail;
  fail.exit_code = 3;
  engine_.AddRule("deploy.sh production", fail);
  RunRecord run = Run(R"(name: shop
stages:
  - name: build
    steps: [{name: b, run: "true"}]
  - name: staging
    environment: staging
    steps: [{name: deploy, run: "./deploy.sh staging"}]
  - name: prod
    environment: production
    steps: [{name: deploy, run: "./deploy.sh production"}]
)");
  EXPECT_EQ(kFailed, run.status);
  std::vector<DeploymentRecord> deployments = Deployments();
  ASSERT_EQ(2u, deployments.size());
  const DeploymentRecord& prod = deployments[0];
  const DeploymentRecord& staging = deployments[1];
  EXPECT_EQ("production", prod.environment);
  EXPECT_EQ("prod", prod.stage);
  EXPECT_EQ(kFailed, prod.status);
  EXPECT_FALSE(prod.finished_at.empty());
  EXPECT_FALSE(prod.rollback);
  EXPECT_EQ(run.id, prod.run_id);
  EXPECT_EQ("webshop", prod.repo);
  EXPECT_EQ("abc123def4567890", prod.commit);
  EXPECT_EQ("main", prod.branch);
  EXPECT_EQ("staging", staging.environment);
  EXPECT_EQ(kSuccess, staging.status);
  EXPECT_FALSE(staging.rollback);
  ASSERT_TRUE(run.deployment.has_value());
  EXPECT_EQ(kFailed, run.deployment->status);
  RunRecord stored = Stored(run.id);
  ASSERT_TRUE(stored.deployment.has_value());
  EXPECT_EQ(prod.id, stored.deployment->id);
  EXPECT_EQ(DeploymentToJson(prod), RunToJson(stored)["deployment"]);
  // The lock is released when the stage ends: another holder gets it at once.
  const std::string path = DeploymentLockPath(root_.string(), "production");
  EXPECT_EQ((root_ / "locks" / "production.lock").string(), path);
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(0, ::flock(fd, LOCK_EX | LOCK_NB));
  ::close(fd);
}

TEST_F(ExecutorServeTest, StagesWithoutAnEnvironmentRecordNoDeployment) {
  RunRecord run = Run("name: shop\nstages:\n  - name: s\n    steps: [{name: x, run: 'true'}]\n");
  EXPECT_EQ(kSuccess, run.status);
  EXPECT_TRUE(Deployments().empty());
  EXPECT_FALSE(Stored(run.id).deployment.has_value());
}

constexpr const char* kLockPipeline = R"(name: shop
stages:
  - name: build
    steps: [{name: b, run: "true"}]
  - name: production
    environment: production
    steps: [{name: deploy, run: "./deploy.sh production"}]
  - name: after
    steps: [{name: a, run: "true"}]
)";

TEST_F(ExecutorServeTest, DeploymentWaitsForTheEnvironmentLock) {
  int held = HoldDeploymentLock("production");
  BackgroundRun bg(this, kLockPipeline);
  const bool waiting = Eventually(
      [&] { return recorder_.SawStageChange("production:queued:waits for"); });
  EXPECT_TRUE(waiting) << "the stage says it waits";
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(bg.done.load());
  EXPECT_TRUE(CreatedStep("build/b"));
  EXPECT_FALSE(CreatedStep("production/deploy")) << "deployed while another held the lock";
  EXPECT_TRUE(Deployments().empty()) << "no deployment is recorded before the lock is held";
  // The store shows why the stage waits.
  std::vector<RunRecord> runs;
  ASSERT_TRUE(store_->ListRuns(RunFilter{}, &runs).ok());
  ASSERT_EQ(1u, runs.size());
  RunRecord mid = Stored(runs[0].id);
  EXPECT_EQ(kQueued, StageOf(mid, "production").status);
  EXPECT_NE(std::string::npos, StageOf(mid, "production").message.find("waits for"))
      << StageOf(mid, "production").message;

  ::close(held);  // the other deployment ends
  EXPECT_TRUE(Eventually([&] { return bg.done.load(); }));
  bg.worker.join();
  ASSERT_TRUE(bg.status.ok()) << bg.status.ToString();
  EXPECT_EQ(kSuccess, bg.run.status);
  EXPECT_TRUE(CreatedStep("production/deploy"));
  EXPECT_TRUE(CreatedStep("after/a"));
  RunRecord stored = Stored(bg.run.id);
  EXPECT_EQ(kSuccess, StageOf(stored, "production").status);
  EXPECT_EQ("", StageOf(stored, "production").message) << "the waiting message is cleared";
  std::vector<DeploymentRecord> deployments = Deployments("production");
  ASSERT_EQ(1u, deployments.size());
  EXPECT_EQ(kSuccess, deployments[0].status);
}

TEST_F(ExecutorServeTest, WaitingMessageNamesTheRunThatDeploys) {
  RunRecord other;
  other.repo = "webshop";
  other.pipeline = "shop";
  other.file = "ladle.yml";
  other.status = kRunning;
  ASSERT_TRUE(store_->CreateRun(&other).ok());
  DeploymentRecord d;
  d.environment = "production";
  d.run_id = other.id;
  d.stage = "production";
  ASSERT_TRUE(store_->BeginDeployment(&d).ok());
  int held = HoldDeploymentLock("production");
  BackgroundRun bg(this, kLockPipeline);
  EXPECT_TRUE(Eventually([&] {
    return recorder_.SawStageChange("waits for run " + std::to_string(other.id) +
                                    " to finish deploying to production");
  })) << recorder_.AllNotes();
  ::close(held);
  bg.worker.join();
  EXPECT_EQ(kSuccess, bg.run.status);
}

TEST_F(ExecutorServeTest, CancelWhileWaitingForTheLockEndsTheRunCancelled) {
  int held = HoldDeploymentLock("production");
  BackgroundRun bg(this, kLockPipeline);
  ASSERT_TRUE(Eventually([&] { return recorder_.SawStageChange("production:queued:waits for"); }))
      << "the stage never waited";
  bg.executor.Cancel(SIGTERM);
  const bool finished = Eventually([&] { return bg.done.load(); });
  if (!finished) ::close(held), held = -1;  // let the run end rather than hang the test
  bg.worker.join();
  EXPECT_TRUE(finished) << "Cancel does not end a wait for the lock";
  if (held >= 0) ::close(held);
  ASSERT_TRUE(bg.status.ok()) << bg.status.ToString();
  EXPECT_EQ(kCancelled, bg.run.status);
  EXPECT_EQ(SIGTERM, bg.executor.cancel_signal());
  EXPECT_FALSE(CreatedStep("production/deploy"));
  EXPECT_FALSE(CreatedStep("after/a"));
  RunRecord stored = Stored(bg.run.id);
  EXPECT_EQ(kCancelled, stored.status);
  EXPECT_EQ(kCancelled, StageOf(stored, "production").status);
  EXPECT_NE(kSuccess, StepOf(stored, "production", "deploy").status);
  EXPECT_NE(kRunning, StepOf(stored, "production", "deploy").status);
  EXPECT_EQ(kSkipped, StageOf(stored, "after").status);
  EXPECT_EQ(kSuccess, StageOf(stored, "build").status);
  EXPECT_TRUE(Deployments().empty()) << "nothing was deployed";
}

TEST_F(ExecutorServeTest, LocksAreIndependentPerEnvironment) {
  int held = HoldDeploymentLock("staging");
  RunRecord run = Run(kLockPipeline);  // deploys to production only
  ::close(held);
  EXPECT_EQ(kSuccess, run.status);
  EXPECT_TRUE(CreatedStep("production/deploy"));
}

}  // namespace
}  // namespace ladle::runner
