// env/docker_engine: the pure helpers, then DockerEngine and DockerStep
// against the real daemon with the test image (tests/env/docker_setup.sh).
#include "env/docker_engine.h"

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/docker/docker_test_util.h"

namespace ladle::env {
namespace {

using docker_test::CollectingSink;
using docker_test::ContainersOf;
using docker_test::Docker;
using docker_test::kTestImage;
using docker_test::TempDir;
using nlohmann::json;
using std::chrono::steady_clock;

// --- Pure helpers -----------------------------------------------------------------

TEST(ParseMemoryBytesTest, DockerUnits) {
  int64_t b = 0;
  ASSERT_TRUE(ParseMemoryBytes("512m", &b).ok());
  EXPECT_EQ(512ll << 20, b);
  ASSERT_TRUE(ParseMemoryBytes("2g", &b).ok());
  EXPECT_EQ(2ll << 30, b);
  ASSERT_TRUE(ParseMemoryBytes("2G", &b).ok());
  EXPECT_EQ(2ll << 30, b);
  ASSERT_TRUE(ParseMemoryBytes("1.5g", &b).ok());
  EXPECT_EQ(3ll << 29, b);
  ASSERT_TRUE(ParseMemoryBytes("1024", &b).ok());
  EXPECT_EQ(1024, b);
  ASSERT_TRUE(ParseMemoryBytes("100b", &b).ok());
  EXPECT_EQ(100, b);
  ASSERT_TRUE(ParseMemoryBytes("64MiB", &b).ok());
  EXPECT_EQ(64ll << 20, b);
  for (const char* bad : {"", "m", "12x", "-5m", "1..5m", "0", "5 m b c"})
    EXPECT_EQ(Code::kInvalid, ParseMemoryBytes(bad, &b).code()) << bad;
}

TEST(ParseNanoCpusTest, Decimals) {
  int64_t n = 0;
  ASSERT_TRUE(ParseNanoCpus("1.5", &n).ok());
  EXPECT_EQ(1500000000, n);
  ASSERT_TRUE(ParseNanoCpus(".5", &n).ok());
  EXPECT_EQ(500000000, n);
  ASSERT_TRUE(ParseNanoCpus("2", &n).ok());
  EXPECT_EQ(2000000000, n);
  for (const char* bad : {"", "0", "-1", "1.", "two", "1.5.2"})
    EXPECT_EQ(Code::kInvalid, ParseNanoCpus(bad, &n).code()) << bad;
}

TEST(ContainerNameTest, ReadableAndSafe) {
  EXPECT_EQ("ladle-12-test-unit-2-ab12cd", ContainerName("12/test/unit#2", "ab12cd"));
  EXPECT_EQ("ladle-7-a_b-c.d-1-000000", ContainerName("7/a_b/c.d#1", "000000"));
  EXPECT_EQ("ladle-x-ffffff", ContainerName("//x##", "ffffff"));
  std::string name = ContainerName(std::string(500, 'a'), "123456");
  EXPECT_LT(name.size(), 120u);
  EXPECT_EQ("ladle-kept-12-test-unit-2-ab12cd", KeptContainerName("ladle-12-test-unit-2-ab12cd"));
}

StepSpec BaseSpec(const std::string& workspace) {
  StepSpec spec;
  spec.id = "1/test/unit#1";
  spec.image = kTestImage;
  spec.script = "true";
  spec.workspace = workspace;
  spec.resources.network = "none";
  return spec;
}

TEST(ContainerConfigTest, WhatTheStepAsksFor) {
  StepSpec spec = BaseSpec("/data/workspaces/1");
  spec.script = "make test";
  spec.workdir = "src";
  spec.env = {{"A", "1"}, {"B", "2"}, {"A", "3"}};
  spec.labels = {{"ladle.run", "1"}, {"ladle.data", "/data"}};
  spec.resources.cpus = "1.5";
  spec.resources.memory = "512m";
  spec.resources.privileged = true;
  spec.resources.dns = {"127.0.0.53"};
  spec.resources.volumes = {"/cache:/cache:ro"};
  json c;
  ASSERT_TRUE(ContainerConfig(spec, &c).ok());
  EXPECT_EQ(json({"sh", "-e", "-c", "make test"}), c["Cmd"]);
  EXPECT_EQ(json({"A=3", "B=2", "LADLE_STEP_ID=1/test/unit#1"}), c["Env"]) << "later ones win";
  EXPECT_EQ("/workspace/src", c["WorkingDir"]);
  EXPECT_EQ(json({{"ladle.run", "1"}, {"ladle.data", "/data"}}), c["Labels"]);
  const json& h = c["HostConfig"];
  EXPECT_EQ(true, h["Init"]);
  EXPECT_EQ("/data/workspaces/1", h["Mounts"][0]["Source"]);
  EXPECT_EQ("/workspace", h["Mounts"][0]["Target"]);
  EXPECT_EQ(json({"/cache:/cache:ro"}), h["Binds"]);
  EXPECT_EQ("none", h["NetworkMode"]);
  EXPECT_EQ(1500000000, h["NanoCpus"]);
  EXPECT_EQ(512ll << 20, h["Memory"]);
  EXPECT_EQ(true, h["Privileged"]);
  EXPECT_EQ(json({"127.0.0.53"}), h["Dns"]);
  spec.keep = true;
  ASSERT_TRUE(ContainerConfig(spec, &c).ok());
  EXPECT_EQ("true", c["Labels"]["ladle.keep"]);
}

// docs/server.md "How secrets reach a step": a file on a tmpfs that a shell
// sources back to the same values, and a configuration without them.
TEST(ContainerConfigTest, SecretsGoToASourcedFileNotTheConfiguration) {
  StepSpec spec = BaseSpec("/data/workspaces/1");
  spec.script = "make deploy";
  spec.env = {{"PLAIN", "1"}};
  spec.secrets = {{"QUOTED", "it's \"$HOME\" `x` \\n"}, {"LINES", "a\nb"}, {"EMPTY", ""}};
  json c;
  ASSERT_TRUE(ContainerConfig(spec, &c).ok());
  std::string dir;
  ASSERT_TRUE(WriteSecretsFile(spec, &dir).ok());
  AddSecretsFile(dir, &c);
  EXPECT_EQ(std::string::npos, c.dump().find("it's")) << c.dump();
  EXPECT_EQ(std::string::npos, c.dump().find("QUOTED")) << c.dump();
  EXPECT_EQ(json({"sh", "-c", ". /run/ladle-secrets && exec sh -e -c \"$0\"", "make deploy"}),
            c["Cmd"]);
  const json& mount = c["HostConfig"]["Mounts"].back();
  EXPECT_EQ(dir + "/env", mount["Source"]);
  EXPECT_EQ("/run/ladle-secrets", mount["Target"]);
  EXPECT_EQ(true, mount["ReadOnly"]);
  struct stat st;
  ASSERT_EQ(0, ::stat(dir.c_str(), &st));
  EXPECT_EQ(0700u, st.st_mode & 0777);
  docker_test::CommandOutput r = docker_test::Run(
      {"sh", "-c", ". " + dir + "/env && printf '%s|%s|%s' \"$QUOTED\" \"$LINES\" \"${EMPTY-unset}\""});
  EXPECT_EQ(0, r.code) << r.err;
  EXPECT_EQ("it's \"$HOME\" `x` \\n|a\nb|", r.out);
  RemoveSecretsFile(dir);
  EXPECT_FALSE(std::filesystem::exists(dir));
  spec.secrets = {{"A-B", "x"}};
  EXPECT_EQ(Code::kInvalid, ContainerConfig(spec, &c).code()) << "a shell could not assign it";
}

// docs/backends.md "Containers started ahead": the gate wraps the command it
// finds (the secrets' one too), a line written before anyone reads waits in
// the pipe, and closing the gate ends a waiting shell without the command.
TEST(ContainerConfigTest, GateHoldsTheCommandUntilALineComes) {
  StepSpec spec = BaseSpec("/data/workspaces/1");
  spec.script = "echo ran";
  spec.secrets = {{"TOKEN", "x"}};
  json c;
  ASSERT_TRUE(ContainerConfig(spec, &c).ok());
  std::string secrets;
  ASSERT_TRUE(WriteSecretsFile(spec, &secrets).ok());
  AddSecretsFile(secrets, &c);
  std::string dir;
  int fd = -1;
  ASSERT_TRUE(MakeStepDir(&dir).ok());
  ASSERT_TRUE(OpenGate(dir, &fd).ok());
  ASSERT_GE(fd, 0);
  AddGate(dir, &c);
  EXPECT_EQ(json({"sh", "-c", "read -r _ < /run/ladle-gate && exec \"$@\"", "sh", "sh", "-c",
                  ". /run/ladle-secrets && exec sh -e -c \"$0\"", "echo ran"}),
            c["Cmd"]);
  const json& mount = c["HostConfig"]["Mounts"].back();
  EXPECT_EQ(dir + "/go", mount["Source"]);
  EXPECT_EQ("/run/ladle-gate", mount["Target"]);
  EXPECT_EQ(true, mount["ReadOnly"]);
  struct stat st;
  ASSERT_EQ(0, ::stat((dir + "/go").c_str(), &st));
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  ASSERT_EQ(0, ::stat(dir.c_str(), &st));
  EXPECT_EQ(0700u, st.st_mode & 0777);
  // The gate's shell on the host, the FIFO in place of the mount: the line
  // is written before the shell runs, and waits for it.
  ASSERT_EQ(3, ::write(fd, "go\n", 3));
  docker_test::CommandOutput r = docker_test::Run(
      {"sh", "-c", "read -r _ < '" + dir + "/go' && exec \"$@\"", "sh", "echo", "ran"});
  EXPECT_EQ(0, r.code) << r.err;
  EXPECT_EQ("ran\n", r.out);
  // Closed with nobody's line: the shell reads end of file and runs nothing.
  std::string path = dir + "/go";
  std::thread closer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    RemoveStepDir(&dir, &fd);
  });
  r = docker_test::Run({"sh", "-c", "read -r _ < '" + path + "' && exec \"$@\"", "sh", "echo", "ran"});
  closer.join();
  EXPECT_NE(0, r.code);
  EXPECT_EQ("", r.out);
  EXPECT_EQ(-1, fd);
  EXPECT_TRUE(dir.empty());
  EXPECT_FALSE(std::filesystem::exists(path));
  RemoveSecretsFile(secrets);
}

// docs/backends.md "Network none": no network set-up by the daemon, and the
// /etc/hosts it would have written.
TEST(ContainerConfigTest, HostsFileStandsInForTheDaemonsNetworkSetUp) {
  StepSpec spec = BaseSpec("/data/workspaces/1");
  spec.resources.network = "none";
  json c;
  ASSERT_TRUE(ContainerConfig(spec, &c).ok());
  std::string dir;
  int fd = -1;
  ASSERT_TRUE(MakeStepDir(&dir).ok());
  ASSERT_TRUE(WriteHostsFile(dir).ok());
  AddHostsFile(dir, &c);
  EXPECT_EQ(true, c["NetworkDisabled"]);
  EXPECT_EQ("none", c["HostConfig"]["NetworkMode"]);
  const json& mount = c["HostConfig"]["Mounts"].back();
  EXPECT_EQ(dir + "/hosts", mount["Source"]);
  EXPECT_EQ("/etc/hosts", mount["Target"]);
  const std::string hosts = docker_test::ReadFile(dir + "/hosts");
  EXPECT_NE(std::string::npos, hosts.find("127.0.0.1\tlocalhost\n")) << hosts;
  EXPECT_NE(std::string::npos, hosts.find("::1\tlocalhost ")) << hosts;
  const std::string path = dir;
  RemoveStepDir(&dir, &fd);
  EXPECT_FALSE(std::filesystem::exists(path));
}

// A ladle killed with -9 leaves its secrets and gates on the tmpfs: the next
// one's start-up removes those whose ladle is gone, and nothing else.
TEST(ContainerConfigTest, SweepRemovesOnlyTheStepFilesOfAGoneLadle) {
  namespace fs = std::filesystem;
  docker_test::TempDir base;
  const pid_t gone = ::fork();
  if (gone == 0) ::_exit(0);
  ASSERT_GT(gone, 0);
  ::waitpid(gone, nullptr, 0);
  const std::string dead = std::to_string(gone), me = std::to_string(::getpid());
  auto make = [&](const std::string& name, std::vector<std::string> files) {
    fs::create_directories(base.path() / name);
    for (const std::string& f : files) docker_test::WriteFile(base.path() / name / f, "x");
  };
  make("ladle-step-" + dead + "-aaaaaa", {"go", "hosts"});
  make("ladle-secrets-" + dead + "-bbbbbb", {"env"});
  make("ladle-step-" + me + "-cccccc", {"hosts"});
  make("ladle-step-1-dddddd", {"hosts"});  // pid 1 is alive
  make("ladle-step-x-eeeeee", {"hosts"});
  make("other-" + dead + "-ffffff", {"hosts"});
  EXPECT_EQ(2, SweepStaleStepFiles({base.path().string(), (base.path() / "missing").string()}));
  EXPECT_FALSE(fs::exists(base.path() / ("ladle-step-" + dead + "-aaaaaa")));
  EXPECT_FALSE(fs::exists(base.path() / ("ladle-secrets-" + dead + "-bbbbbb")));
  for (const std::string& kept : {"ladle-step-" + me + "-cccccc", std::string("ladle-step-1-dddddd"),
                                  std::string("ladle-step-x-eeeeee"), "other-" + dead + "-ffffff"})
    EXPECT_TRUE(fs::exists(base.path() / kept / "hosts")) << kept;
  std::string dir;
  ASSERT_TRUE(MakeStepDir(&dir).ok());
  EXPECT_NE(std::string::npos, dir.find("/ladle-step-" + me + "-")) << dir;
  int fd = -1;
  RemoveStepDir(&dir, &fd);
}

TEST(ContainerConfigTest, RefusesWhatAContainerCannotCarry) {
  json c;
  StepSpec spec = BaseSpec("/ws");
  spec.image = "";
  EXPECT_NE(std::string::npos, ContainerConfig(spec, &c).message().find("no image"));
  spec = BaseSpec("relative/ws");
  EXPECT_NE(std::string::npos, ContainerConfig(spec, &c).message().find("not an absolute host path"));
  spec = BaseSpec("/ws");
  spec.workdir = "a/../../etc";
  EXPECT_EQ(Code::kInvalid, ContainerConfig(spec, &c).code());
  spec.workdir = "/etc";
  EXPECT_EQ(Code::kInvalid, ContainerConfig(spec, &c).code());
  spec.workdir = "a/../b";
  EXPECT_TRUE(ContainerConfig(spec, &c).ok()) << "inside the workspace after all";
  spec = BaseSpec("/ws");
  spec.env = {{"A=B", "1"}};
  EXPECT_EQ(Code::kInvalid, ContainerConfig(spec, &c).code());
  spec = BaseSpec("/ws");
  spec.resources.memory = "lots";
  EXPECT_EQ(Code::kInvalid, ContainerConfig(spec, &c).code());
  spec = BaseSpec("/ws");
  spec.image = "bad image";
  EXPECT_EQ(Code::kInvalid, ContainerConfig(spec, &c).code());
}

// --- Against the daemon ------------------------------------------------------------

struct Outcome {
  Status status;
  ExitStatus exit;
  std::string out, err;
};

class DockerEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LADLE_REQUIRE_DOCKER();
    DockerEngineOptions options;
    options.data_dir = data_.str();
    options.connect_timeout = std::chrono::seconds(3);
    Status s = DockerEngine::Open(options, &engine_);
    ASSERT_TRUE(s.ok()) << s.ToString();
    engine_->SetNoteCallback([this](const std::string& line) {
      std::lock_guard<std::mutex> lock(notes_mu_);
      notes_.push_back(line);
    });
  }
  void TearDown() override {
    if (engine_ == nullptr) return;  // skipped: no daemon
    for (const std::string& name : ContainersOf(data_.str())) Docker({"rm", "-f", name});
  }

  StepSpec Spec(const std::string& script, const std::string& run = "1") {
    StepSpec spec = BaseSpec(ws_.str());
    spec.id = run + "/test/unit#1";
    spec.script = script;
    spec.labels = {{"ladle.run", run}, {"ladle.stage", "test"}, {"ladle.step", "unit"},
                   {"ladle.data", data_.str()}};
    return spec;
  }

  Outcome RunStep(const StepSpec& spec, bool remove = true) {
    Outcome o;
    std::unique_ptr<Step> step;
    o.status = engine_->Create(spec, &step);
    if (o.status.ok()) o.status = step->Start();
    CollectingSink sink;
    if (o.status.ok()) o.status = step->Stream(&sink);
    if (o.status.ok()) o.status = step->Wait(&o.exit);
    if (step && remove) {
      Status r = step->Remove();
      EXPECT_TRUE(r.ok()) << r.ToString();
    }
    o.out = sink.out();
    o.err = sink.err();
    return o;
  }

  bool Exists(const std::string& name) { return Docker({"inspect", name}).code == 0; }

  TempDir data_, ws_;
  std::unique_ptr<DockerEngine> engine_;
  std::mutex notes_mu_;
  std::vector<std::string> notes_;
};

TEST_F(DockerEngineTest, ExitCodesComeThrough) {
  EXPECT_EQ(0, RunStep(Spec("exit 0")).exit.code);
  EXPECT_EQ(7, RunStep(Spec("exit 7")).exit.code);
  Outcome o = RunStep(Spec("echo before; false; echo after"));
  EXPECT_EQ(1, o.exit.code) << "sh -e stops at the first failure";
  EXPECT_EQ("before\n", o.out);
  EXPECT_EQ(0, o.exit.signal);
}

TEST_F(DockerEngineTest, StdoutAndStderrStayApart) {
  Outcome o = RunStep(Spec("echo out1; echo err1 >&2; echo out2; echo err2 >&2"));
  ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  EXPECT_EQ("out1\nout2\n", o.out);
  EXPECT_EQ("err1\nerr2\n", o.err);
}

TEST_F(DockerEngineTest, EnvironmentWorkdirAndWorkspace) {
  std::filesystem::create_directories(ws_.path() / "sub");
  StepSpec spec = Spec("pwd; echo \"$GREETING $WHO\"; echo \"$LADLE_STEP_ID\"; echo made > /workspace/made.txt");
  spec.workdir = "sub";
  spec.env = {{"GREETING", "hello"}, {"WHO", "nobody"}, {"WHO", "world"}};
  Outcome o = RunStep(spec);
  ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  EXPECT_EQ("/workspace/sub\nhello world\n1/test/unit#1\n", o.out);
  EXPECT_EQ("made\n", docker_test::ReadFile(ws_.path() / "made.txt")) << "the workspace is the host's";
}

TEST_F(DockerEngineTest, MissingWorkdirFailsBeforeAnythingRuns) {
  StepSpec spec = Spec("true");
  spec.workdir = "nope";
  std::unique_ptr<Step> step;
  Status s = engine_->Create(spec, &step);
  EXPECT_EQ(Code::kNotFound, s.code());
  EXPECT_NE(std::string::npos, s.message().find("workdir 'nope' does not exist in the workspace")) << s.message();
  EXPECT_TRUE(ContainersOf(data_.str()).empty());
}

TEST_F(DockerEngineTest, LargeOutputArrivesIntact) {
  // 8 MB on stdout and 1 MB on stderr, checked byte for byte.
  Outcome o = RunStep(Spec("yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 8000000; "
                           "yes ERR | head -c 1000000 >&2"));
  ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  ASSERT_EQ(8000000u, o.out.size());
  ASSERT_EQ(1000000u, o.err.size());
  std::string line = "0123456789abcdefghijklmnopqrstuvwxyz\n";
  for (size_t i = 0; i < o.out.size(); i += line.size())
    ASSERT_EQ(0, o.out.compare(i, std::min(line.size(), o.out.size() - i), line, 0,
                               std::min(line.size(), o.out.size() - i)))
        << "at byte " << i;
  EXPECT_EQ(std::string::npos, o.err.find_first_not_of("ERR\n"));
}

// Output is passed on while the step runs, not when it ends.
class TimedSink : public OutputSink {
 public:
  void Write(OutputStream, std::string_view data) override {
    if (first_ == steady_clock::time_point()) first_ = steady_clock::now();
    text_.append(data);
  }
  steady_clock::time_point first_;
  std::string text_;
};

TEST_F(DockerEngineTest, OutputStreamsAsItComes) {
  std::unique_ptr<Step> step;
  ASSERT_TRUE(engine_->Create(Spec("echo first; sleep 3; echo second"), &step).ok());
  ASSERT_TRUE(step->Start().ok());
  TimedSink sink;
  ASSERT_TRUE(step->Stream(&sink).ok());
  auto ended = steady_clock::now();
  EXPECT_EQ("first\nsecond\n", sink.text_);
  EXPECT_GT(ended - sink.first_, std::chrono::seconds(2));
  EXPECT_TRUE(step->Remove().ok());
}

// Runs `spec`, sends `signals` (with a pause between them) once "ready" was
// printed, and returns how the step ended and how long it took after the first.
struct Killed {
  ExitStatus exit;
  std::string out;
  std::chrono::milliseconds after_kill{0};
  std::string name;
};

class ReadySink : public OutputSink {
 public:
  void Write(OutputStream, std::string_view data) override {
    std::lock_guard<std::mutex> lock(mu);
    text.append(data);
    if (text.find("ready") != std::string::npos) ready = true;
  }
  std::mutex mu;
  std::string text;
  std::atomic<bool> ready{false};
};

Killed RunAndKill(DockerEngine* engine, const StepSpec& spec, std::vector<int> signals) {
  Killed k;
  std::unique_ptr<Step> step;
  Status s = engine->Create(spec, &step);
  EXPECT_TRUE(s.ok()) << s.ToString();
  if (!s.ok()) return k;
  k.name = static_cast<DockerStep*>(step.get())->name();
  EXPECT_TRUE(step->Start().ok());
  ReadySink sink;
  std::atomic<bool> streamed{false};
  std::thread streamer([&] {
    EXPECT_TRUE(step->Stream(&sink).ok());
    streamed = true;
  });
  auto deadline = steady_clock::now() + std::chrono::seconds(30);
  while (!sink.ready && steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto killed_at = steady_clock::now();
  for (size_t i = 0; i < signals.size(); ++i) {
    if (i > 0) std::this_thread::sleep_for(std::chrono::seconds(1));
    step->Kill(signals[i]);  // from another thread than Stream's, as the executor does
  }
  deadline = steady_clock::now() + std::chrono::seconds(15);
  while (!streamed && steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (!streamed) {
    ADD_FAILURE() << "the step did not end within 15 s of the signals; killing it";
    step->Kill(SIGKILL);
  }
  streamer.join();
  EXPECT_TRUE(step->Wait(&k.exit).ok());
  k.after_kill = std::chrono::duration_cast<std::chrono::milliseconds>(steady_clock::now() - killed_at);
  k.out = sink.text;
  EXPECT_TRUE(step->Remove().ok());
  return k;
}

TEST_F(DockerEngineTest, TermReachesTheScriptThroughInit) {
  Killed k = RunAndKill(engine_.get(),
                        Spec("trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 1; done"),
                        {SIGTERM});
  EXPECT_EQ(42, k.exit.code) << k.out;
  EXPECT_NE(std::string::npos, k.out.find("got-term"));
  EXPECT_LT(k.after_kill, std::chrono::seconds(8));
}

TEST_F(DockerEngineTest, TermEndsASleepingStepAt143) {
  Killed k = RunAndKill(engine_.get(), Spec("echo ready; sleep 1011"), {SIGTERM});
  EXPECT_EQ(143, k.exit.code);
  EXPECT_EQ(SIGTERM, k.exit.signal);
  EXPECT_LT(k.after_kill, std::chrono::seconds(8)) << "PID 1 must not swallow TERM";
  EXPECT_FALSE(Exists(k.name)) << "removed";
}

TEST_F(DockerEngineTest, KillAfterIgnoredTermEndsItAndRemoveLeavesNothing) {
  Killed k = RunAndKill(engine_.get(), Spec("trap '' TERM; echo ready; sleep 1012"), {SIGTERM, SIGKILL});
  EXPECT_EQ(137, k.exit.code);
  EXPECT_EQ(SIGKILL, k.exit.signal);
  EXPECT_LT(k.after_kill, std::chrono::seconds(10));
  EXPECT_FALSE(Exists(k.name));
  EXPECT_NE(0, docker_test::Run({"pgrep", "-f", "sleep 1012"}).code) << "nothing of it survives";
}

TEST_F(DockerEngineTest, RemoveIsIdempotentAndDestructionRemoves) {
  std::unique_ptr<Step> step;
  ASSERT_TRUE(engine_->Create(Spec("true"), &step).ok());
  std::string name = static_cast<DockerStep*>(step.get())->name();
  EXPECT_EQ(0u, name.rfind("ladle-1-test-unit-1-", 0)) << name;
  EXPECT_TRUE(Exists(name));
  EXPECT_TRUE(step->Remove().ok());
  EXPECT_TRUE(step->Remove().ok());
  EXPECT_FALSE(Exists(name));
  ASSERT_TRUE(engine_->Create(Spec("true"), &step).ok());
  name = static_cast<DockerStep*>(step.get())->name();
  step.reset();
  EXPECT_FALSE(Exists(name)) << "a step dropped without Remove() leaves no container";
}

TEST_F(DockerEngineTest, ContainerCarriesLabelsInitAndResources) {
  StepSpec spec = Spec("true");
  spec.resources.cpus = "0.5";
  spec.resources.memory = "64m";
  std::unique_ptr<Step> step;
  ASSERT_TRUE(engine_->Create(spec, &step).ok());
  auto r = Docker({"inspect", static_cast<DockerStep*>(step.get())->container_id()});
  ASSERT_EQ(0, r.code) << r.err;
  json c = json::parse(r.out)[0];
  EXPECT_EQ(true, c["HostConfig"]["Init"]);
  EXPECT_EQ("none", c["HostConfig"]["NetworkMode"]);
  EXPECT_EQ(500000000, c["HostConfig"]["NanoCpus"]);
  EXPECT_EQ(64 << 20, c["HostConfig"]["Memory"]);
  EXPECT_EQ("1", c["Config"]["Labels"]["ladle.run"]);
  EXPECT_EQ("test", c["Config"]["Labels"]["ladle.stage"]);
  EXPECT_EQ("unit", c["Config"]["Labels"]["ladle.step"]);
  EXPECT_EQ(data_.str(), c["Config"]["Labels"]["ladle.data"]);
  EXPECT_FALSE(c["Config"]["Labels"].contains("ladle.keep"));
  EXPECT_EQ("/workspace", c["Config"]["WorkingDir"]);
}

TEST_F(DockerEngineTest, ImageEntrypointDoesNotWrapTheScript) {
  auto made = Docker({"create", "--name", "ladle-test-ep-src-" + std::to_string(getpid()), kTestImage, "true"});
  ASSERT_EQ(0, made.code) << made.err;
  std::string image = "ladle-test-entrypoint:" + std::to_string(getpid());
  ASSERT_EQ(0, Docker({"commit", "--change", "ENTRYPOINT [\"echo\", \"WRAPPED\"]",
                       "ladle-test-ep-src-" + std::to_string(getpid()), image}).code);
  Docker({"rm", "-f", "ladle-test-ep-src-" + std::to_string(getpid())});
  StepSpec spec = Spec("echo script ran");
  spec.image = image;
  Outcome o = RunStep(spec);
  Docker({"rmi", "-f", image});
  EXPECT_EQ("script ran\n", o.out);
}

TEST_F(DockerEngineTest, UnpullableImageIsUnavailableAndSaysWhy) {
  // Port 1 on loopback: refused at once, and nothing leaves this machine.
  StepSpec spec = Spec("true");
  spec.image = "127.0.0.1:1/ladle/nope:1";
  std::unique_ptr<Step> step;
  Status s = engine_->Create(spec, &step);
  EXPECT_EQ(Code::kUnavailable, s.code()) << s.ToString();
  EXPECT_EQ(3, s.ExitCode());
  EXPECT_NE(std::string::npos,
            s.message().find("image '127.0.0.1:1/ladle/nope:1' not found locally and could not be pulled: "))
      << s.message();
  EXPECT_TRUE(ContainersOf(data_.str()).empty());
}

TEST_F(DockerEngineTest, KeptFailedStepCanBeEnteredWithoutRunningTheScriptAgain) {
  StepSpec spec = Spec("echo run >> /workspace/runs; echo state > /marker; exit 3");
  std::unique_ptr<Step> step;
  ASSERT_TRUE(engine_->Create(spec, &step).ok());
  ASSERT_TRUE(step->Start().ok());
  ASSERT_TRUE(step->Stream(nullptr).ok());
  ExitStatus exit;
  ASSERT_TRUE(step->Wait(&exit).ok());
  EXPECT_EQ(3, exit.code);
  // What the executor does with keep: on-failure: ask for the command, no Remove.
  std::string command = step->ShellCommand();
  ASSERT_FALSE(command.empty()) << (notes_.empty() ? "" : notes_.back());
  EXPECT_EQ(command, step->ShellCommand()) << "asked again, the same";
  std::string kept = KeptContainerName(static_cast<DockerStep*>(step.get())->name());
  EXPECT_EQ("ladle env " + kept, command);
  step.reset();
  EXPECT_EQ(std::vector<std::string>{kept}, ContainersOf(data_.str())) << "only the kept one";

  // The start-up cleanup leaves it, even though run 1 is over.
  std::vector<std::string> removed;
  ASSERT_TRUE(engine_->CleanupStale([](int64_t) { return false; }, &removed).ok());
  EXPECT_TRUE(removed.empty());

  // The printed command itself (this build's ladle), without a terminal,
  // with a command added (docs/backends.md "keep"): it runs it in the
  // step's file system.
  ASSERT_EQ(0u, command.rfind("ladle ", 0)) << command;
  auto r = docker_test::Run({"sh", "-c", std::string(LADLE_BINARY) + command.substr(5) +
                                             " -- sh -c 'cat /marker; pwd; cat /workspace/runs'"});
  EXPECT_EQ(0, r.code) << r.err;
  EXPECT_EQ("state\n/workspace\nrun\n", r.out) << "the script did not run again";
  auto image = Docker({"inspect", "-f", "{{.Image}}", kept});
  Docker({"rm", "-f", kept});
  Docker({"rmi", image.out.substr(0, image.out.find('\n'))});
}

TEST_F(DockerEngineTest, KeepAlwaysIsLabelledFromTheStartAndRemoveLeavesIt) {
  StepSpec spec = Spec("true");
  spec.keep = true;
  std::unique_ptr<Step> step;
  ASSERT_TRUE(engine_->Create(spec, &step).ok());
  std::string id = static_cast<DockerStep*>(step.get())->container_id();
  EXPECT_EQ("true\n", Docker({"inspect", "-f", "{{index .Config.Labels \"ladle.keep\"}}", id}).out);
  EXPECT_TRUE(step->Remove().ok());
  step.reset();
  EXPECT_TRUE(Exists(id));
}

TEST_F(DockerEngineTest, CleanupRemovesOnlyWhatDeadRunsOfThisDataDirLeft) {
  std::unique_ptr<Step> dead, live, other;
  ASSERT_TRUE(engine_->Create(Spec("true", "5"), &dead).ok());
  ASSERT_TRUE(engine_->Create(Spec("true", "6"), &live).ok());
  StepSpec foreign = Spec("true", "5");
  TempDir other_data;
  foreign.labels["ladle.data"] = other_data.str();
  ASSERT_TRUE(engine_->Create(foreign, &other).ok());
  std::string dead_name = static_cast<DockerStep*>(dead.get())->name();
  std::string live_name = static_cast<DockerStep*>(live.get())->name();
  std::string other_name = static_cast<DockerStep*>(other.get())->name();
  std::vector<std::string> removed;
  ASSERT_TRUE(engine_->CleanupStale([](int64_t run) { return run == 6; }, &removed).ok());
  EXPECT_EQ(std::vector<std::string>{dead_name}, removed);
  EXPECT_FALSE(Exists(dead_name));
  EXPECT_TRUE(Exists(live_name));
  EXPECT_TRUE(Exists(other_name)) << "another data dir's containers are not ours";
}

}  // namespace
}  // namespace ladle::env
