// End-to-end tests of `ladle repro` (docs/running.md "Reproduce a server's
// step"): a real `ladle serve` on a loopback port runs a pipeline whose test
// step fails; the real `ladle repro` fetches the run, its commit's tree, and
// the build step's artifacts over HTTP, and fails the same way here; then
// passes once the fix is in the working tree (--worktree) and the missing
// secret is given.
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "env/subprocess.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

constexpr const char* kToken = "e2e-repro-admin-token-0123456789";

struct Result {
  int code = -1;
  std::string out, err;
  std::string all() const { return out + err; }
};

// Build keeps out/ (100 kB of random bytes and their checksum, and a
// version); test checks them, prints its commit and fails.
const char* kPipeline = R"Y(name: app
secrets: [DEPLOY_KEY]
stages:
  - name: build
    steps:
      - name: compile
        run: |
          mkdir -p out
          head -c 100000 /dev/urandom > out/blob
          md5sum out/blob > out/blob.md5
          echo v1 > out/version
        artifacts: [out/]
  - name: test
    steps:
      - name: unit
        run: sh ./check.sh
)Y";

const char* kFailingCheck = R"S(md5sum -c out/blob.md5
echo "version $(cat out/version) at $LADLE_COMMIT"
echo "expected 2, got 3"
exit 1
)S";

const char* kFixedCheck = R"S(md5sum -c out/blob.md5
echo "version $(cat out/version) at $LADLE_COMMIT"
test "$DEPLOY_KEY" = s3cr3t-given || { echo "no DEPLOY_KEY"; exit 1; }
echo "key: $DEPLOY_KEY"
echo "all good"
)S";

class ReproTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = ladle::testing::MakeTempDir("/tmp/ladle-repro-e2e-XXXXXX");
    repo_ = root_ / "repo";
    fs::create_directories(repo_);
    port_ = ladle::testing::FreePort();
    Git({"init", "-q", "-b", "main"});
  }
  void TearDown() override {
    if (server_) {
      ::kill(server_->pid(), SIGKILL);
      server_->Wait();
    }
    server_.reset();
    if (HasFailure())
      std::fprintf(stderr, "---- server log ----\n%s\n", ladle::testing::ReadFile(root_ / "server.log").c_str());
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  Result Exec(const std::vector<std::string>& argv, const fs::path& cwd) {
    ladle::env::CommandResult r;
    ladle::Status s = ladle::env::RunCommand(argv, cwd.string(), &r, std::chrono::seconds(120));
    EXPECT_TRUE(s.ok()) << s.ToString();
    return {r.exit_code, r.out, r.err};
  }
  Result Git(std::vector<std::string> args, const fs::path& cwd = {}) {
    std::vector<std::string> argv = {"git", "-c", "user.name=ladle e2e", "-c",
                                     "user.email=e2e@ladle.invalid", "-c", "commit.gpgsign=false"};
    argv.insert(argv.end(), args.begin(), args.end());
    Result r = Exec(argv, cwd.empty() ? repo_ : cwd);
    EXPECT_EQ(0, r.code) << "git " << args.front() << ": " << r.all();
    return r;
  }
  void Write(const std::string& rel, const std::string& text) {
    fs::create_directories((repo_ / rel).parent_path());
    std::ofstream(repo_ / rel) << text;
  }
  std::string Commit() {
    Git({"add", "-A"});
    Git({"commit", "-q", "-m", "commit"});
    std::string head = Git({"rev-parse", "HEAD"}).out;
    return head.substr(0, head.find('\n'));
  }

  void Start() {
    std::ofstream(root_ / "server.yml") << "listen: 127.0.0.1:" << port_ << "\n"
                                        << "data: " << (root_ / "server-data").string() << "\n"
                                        << "backend: local\n"
                                        << "repositories:\n"
                                        << "  - name: app\n"
                                        << "    url: " << repo_.string() << "\n"
                                        << "    pipeline: ladle.yml\n"
                                        << "    poll: 1s\n";
    ladle::env::LaunchSpec spec;
    spec.exe = "/bin/sh";
    std::string log = (root_ / "server.log").string();
    spec.args = {"-c", "exec \"$0\" \"$@\" >>'" + log + "' 2>&1", LADLE_BINARY, "serve", "--config",
                 (root_ / "server.yml").string()};
    spec.env = {{"LADLE_ADMIN_TOKEN", kToken}, {"NO_COLOR", "1"}, {"DEPLOY_KEY", "server-secret"}};
    spec.cwd = root_.string();
    ASSERT_TRUE(ladle::env::Subprocess::Start(spec, &server_).ok());
    httplib::Client c("127.0.0.1", port_);
    c.set_connection_timeout(1, 0);
    for (auto end = Clock::now() + 20s; Clock::now() < end;) {
      if (auto r = c.Get("/healthz"); r && r->status == 200) return;
      std::this_thread::sleep_for(50ms);
    }
    FAIL() << "ladle serve did not answer /healthz within 20 s";
  }

  // Waits for the run of `commit` to finish; returns it.
  json WaitFinishedRunOf(const std::string& commit) {
    httplib::Client c("127.0.0.1", port_);
    c.set_bearer_token_auth(kToken);
    json found;
    std::string last;
    for (auto end = Clock::now() + 30s; Clock::now() < end; std::this_thread::sleep_for(100ms)) {
      auto r = c.Get("/api/v1/runs");
      last = r ? std::to_string(r->status) + " " + r->body : "no answer";
      if (!r || r->status != 200) continue;
      const json list = json::parse(r->body, nullptr, false);
      if (!list.is_object() || !list.contains("runs")) continue;
      for (const json& run : list["runs"]) {
        std::string st = run["status"];
        if (run["commit"] == commit && st != "queued" && st != "running") found = run;
      }
      if (found.is_object()) return found;
    }
    ADD_FAILURE() << "no finished run of " << commit << "; the runs: " << last;
    return json();
  }

  // `ladle --data LOCAL repro ARGS...` in `cwd`, against the server.
  Result Repro(std::vector<std::string> args, const fs::path& cwd = {}) {
    std::vector<std::string> argv = {"env", "-u", "DEPLOY_KEY", "NO_COLOR=1", LADLE_BINARY, "--data",
                                     (root_ / "local-data").string(), "repro"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--server", "http://127.0.0.1:" + std::to_string(port_), "--token", kToken,
                             "--backend", "local"});
    return Exec(argv, cwd.empty() ? repo_ : cwd);
  }

  fs::path root_, repo_;
  int port_ = 0;
  std::unique_ptr<ladle::env::Subprocess> server_;
};

TEST_F(ReproTest, ReproOfAFailedStepFailsTheSameWayHereThenPassesAfterAFix) {
  Write("ladle.yml", kPipeline);
  Write("check.sh", kFailingCheck);
  const std::string commit = Commit();
  Start();
  json run = WaitFinishedRunOf(commit);
  ASSERT_EQ("failed", run.value("status", "")) << run.dump(1);
  const std::string id = std::to_string(run["id"].get<int64_t>());

  // The same failure, with the build step's artifacts from the server.
  Result r = Repro({id, "test/unit"});
  EXPECT_EQ(1, r.code) << r.all();
  EXPECT_NE(std::string::npos, r.all().find("out/blob: OK")) << r.all();
  EXPECT_NE(std::string::npos, r.all().find("version v1 at " + commit)) << r.all();
  EXPECT_NE(std::string::npos, r.all().find("expected 2, got 3")) << r.all();
  EXPECT_NE(std::string::npos, r.all().find("downloaded the artifacts of build/compile")) << r.all();
  EXPECT_NE(std::string::npos, r.all().find("secrets not set here: DEPLOY_KEY")) << r.all();
  // The artifacts come from the server, not from runs of this data dir.
  EXPECT_EQ(std::string::npos, r.all().find("no earlier run")) << r.all();
  // A bare step name and the web UI's address work as well.
  r = Repro({"http://127.0.0.1:" + std::to_string(port_) + "/#/runs/" + id + "/test/unit"});
  EXPECT_EQ(1, r.code) << r.all();
  EXPECT_NE(std::string::npos, r.all().find("expected 2, got 3")) << r.all();

  // The fix, not committed yet: --worktree takes it; --env gives the secret.
  Write("check.sh", kFixedCheck);
  r = Repro({id, "unit", "--worktree"});
  EXPECT_EQ(1, r.code) << r.all();
  EXPECT_NE(std::string::npos, r.all().find("no DEPLOY_KEY")) << r.all();
  r = Repro({id, "unit", "--worktree", "--env", "DEPLOY_KEY=s3cr3t-given"});
  EXPECT_EQ(0, r.code) << r.all();
  EXPECT_NE(std::string::npos, r.all().find("all good")) << r.all();
  EXPECT_NE(std::string::npos, r.all().find("key: ")) << r.all();
  EXPECT_EQ(std::string::npos, r.all().find("s3cr3t-given")) << "a secret given with --env is masked: " << r.all();
  EXPECT_NE(std::string::npos, r.all().find("out/blob: OK")) << r.all();
  // The fix in the working tree did not change the commit's repro.
  r = Repro({id, "unit", "--env", "DEPLOY_KEY=s3cr3t-given"});
  EXPECT_EQ(1, r.code) << r.all();
  // Each repro is recorded here as a run of its own, marked as a repro.
  r = Exec({LADLE_BINARY, "--data", (root_ / "local-data").string(), "--json", "runs"}, repo_);
  json local = json::parse(r.out, nullptr, false);
  ASSERT_TRUE(local.is_array() && !local.empty()) << r.all();
  for (const json& lr : local) EXPECT_EQ("repro", lr.value("trigger", "")) << lr.dump();
}

TEST_F(ReproTest, ReproNamesWhatIsMissing) {
  Write("ladle.yml", kPipeline);
  Write("check.sh", kFailingCheck);
  const std::string commit = Commit();
  Start();
  json run = WaitFinishedRunOf(commit);
  ASSERT_TRUE(run.is_object());
  const std::string id = std::to_string(run["id"].get<int64_t>());

  Result r = Repro({id, "test/nope"});
  EXPECT_NE(0, r.code);
  EXPECT_NE(std::string::npos, r.err.find("run " + id + " has no step 'test/nope'")) << r.all();
  r = Repro({"999", "test/unit"});
  EXPECT_NE(0, r.code);
  EXPECT_NE(std::string::npos, r.err.find("run 999 not found")) << r.all();
  // A clone without the run's commit: the message names it and says how to get it.
  fs::path other = root_ / "other";
  fs::create_directories(other);
  Git({"init", "-q", "-b", "main"}, other);
  r = Repro({id, "test/unit"}, other);
  EXPECT_NE(0, r.code);
  EXPECT_NE(std::string::npos, r.err.find("commit " + commit)) << r.all();
  EXPECT_NE(std::string::npos, r.err.find("git fetch origin main")) << r.all();
}

}  // namespace
