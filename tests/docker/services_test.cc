// Services beside docker steps (docs/pipeline.md "Services"): env/docker_services
// through DockerEngine against the real daemon, then `ladle run` end to end.
// Every container runs with network "none": the services and the step share
// the first service's namespace, loopback only.
#include "env/docker_services.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "env/docker_engine.h"
#include "runner/store/step_log.h"
#include "tests/docker/docker_test_util.h"

namespace fs = std::filesystem;

namespace ladle::docker_test {
namespace {

env::ServiceSpec Service(const std::string& name, const std::string& command, int port) {
  env::ServiceSpec s;
  s.name = name;
  s.image = kTestImage;
  s.command = {command};
  s.shell = true;
  s.port = port;
  s.ready_port = port;
  return s;
}

// --- Pure helpers ------------------------------------------------------------

TEST(ServiceContainerConfigTest, OwnerCarriesHostsAndDnsOthersJoinIt) {
  env::StepSpec spec;
  spec.id = "1/test/unit#1";
  spec.labels = {{"ladle.run", "1"}, {"ladle.data", "/d"}};
  spec.resources.dns = {"127.0.0.53"};
  spec.services = {Service("db", "httpd -f -p 5432", 5432), Service("mq", "nc -lk -p 9", 9)};
  spec.services[1].command = {"nc", "-lk", "-p", "9"};
  spec.services[1].shell = false;
  spec.services[1].env = {{"A", "1"}};
  nlohmann::json owner = env::ServiceContainerConfig(spec, 0, "none");
  EXPECT_EQ("none", owner["HostConfig"]["NetworkMode"]);
  EXPECT_EQ(nlohmann::json({"db:127.0.0.1", "mq:127.0.0.1"}), owner["HostConfig"]["ExtraHosts"]);
  EXPECT_EQ(nlohmann::json({"127.0.0.53"}), owner["HostConfig"]["Dns"]);
  EXPECT_EQ(nlohmann::json({"sh", "-c", "httpd -f -p 5432"}), owner["Cmd"]);
  EXPECT_EQ(nlohmann::json::array({""}), owner["Entrypoint"]);
  EXPECT_EQ("db", owner["Labels"]["ladle.service"]);
  EXPECT_EQ("1", owner["Labels"]["ladle.run"]) << "found by the cleanup of dead runs";
  nlohmann::json other = env::ServiceContainerConfig(spec, 1, "container:abc");
  EXPECT_EQ("container:abc", other["HostConfig"]["NetworkMode"]);
  EXPECT_FALSE(other["HostConfig"].contains("ExtraHosts")) << "docker refuses it with container:";
  EXPECT_FALSE(other["HostConfig"].contains("Dns"));
  EXPECT_EQ(nlohmann::json({"nc", "-lk", "-p", "9"}), other["Cmd"]);
  EXPECT_FALSE(other.contains("Entrypoint")) << "a list keeps the image's entrypoint";
  EXPECT_EQ(nlohmann::json({"A=1"}), other["Env"]);
}

// --- Against the daemon ------------------------------------------------------

class DockerServicesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LADLE_REQUIRE_DOCKER();
    env::DockerEngineOptions options;
    options.data_dir = data_.str();
    Status s = env::DockerEngine::Open(options, &engine_);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  void TearDown() override {
    if (!engine_) return;
    for (const std::string& name : ContainersOf(data_.str())) Docker({"rm", "-f", name});
  }
  env::StepSpec Spec(const std::string& script) {
    env::StepSpec spec;
    spec.id = "1/test/unit#1";
    spec.image = kTestImage;
    spec.script = script;
    spec.workspace = ws_.str();
    spec.resources.network = "none";
    spec.labels = {{"ladle.run", "1"}, {"ladle.data", data_.str()}};
    return spec;
  }
  // Runs the step to its end; its exit code.
  int RunStep(std::unique_ptr<env::Step>& step, CollectingSink* sink) {
    Status s = step->Start();
    EXPECT_TRUE(s.ok()) << s.ToString();
    s = step->Stream(sink);
    EXPECT_TRUE(s.ok()) << s.ToString();
    env::ExitStatus exit;
    s = step->Wait(&exit);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return exit.code;
  }

  TempDir data_, ws_;
  std::unique_ptr<env::DockerEngine> engine_;
};

TEST_F(DockerServicesTest, StepReachesItsServicesByNameAndPort) {
  env::StepSpec spec = Spec(
      "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc db 5432 | head -1; "
      "printf 'GET /from-step HTTP/1.0\\r\\n\\r\\n' | nc mq 6379 | head -1; grep -w db /etc/hosts");
  spec.services = {Service("db", "echo db up; exec httpd -f -vv -p 5432", 5432),
                   Service("mq", "echo mq up; exec httpd -f -vv -p 6379", 6379)};
  std::unique_ptr<env::Step> step;
  Status s = engine_->Create(spec, &step);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(3u, ContainersOf(data_.str()).size()) << "two services and the step";
  CollectingSink sink;
  EXPECT_EQ(0, RunStep(step, &sink)) << sink.out() << sink.err();
  EXPECT_NE(std::string::npos, sink.out().find("HTTP/1.1 404")) << sink.out();
  EXPECT_NE(std::string::npos, sink.out().find("127.0.0.1\tdb")) << sink.out();
  CollectingSink logs;
  step->WriteServiceLogs(&logs);
  EXPECT_NE(std::string::npos, logs.out().find("[service db] db up\n")) << logs.out();
  EXPECT_NE(std::string::npos, logs.out().find("[service mq] mq up\n")) << logs.out();
  EXPECT_NE(std::string::npos, logs.out().find("url:/from-step")) << logs.out();
  ASSERT_TRUE(step->Remove().ok());
  EXPECT_TRUE(ContainersOf(data_.str()).empty());
}

TEST_F(DockerServicesTest, NeverReadyServiceFailsNamingItWithItsLastLines) {
  env::StepSpec spec = Spec("echo never runs");
  spec.services = {Service("db", "echo booting; echo still booting; exec sleep 600", 5432)};
  spec.services[0].ready_timeout = std::chrono::seconds(1);
  std::unique_ptr<env::Step> step;
  const auto start = std::chrono::steady_clock::now();
  Status s = engine_->Create(spec, &step);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(15));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(Code::kFailed, s.code());
  EXPECT_EQ(
      "step '1/test/unit#1': service 'db' was not ready after 1s: nothing listens on port 5432; "
      "its last lines:\n  booting\n  still booting",
      s.message());
  EXPECT_TRUE(ContainersOf(data_.str()).empty()) << "the service goes with the failure";
}

TEST_F(DockerServicesTest, ServiceThatExitsFailsAtOnce) {
  env::StepSpec spec = Spec("true");
  spec.services = {Service("db", "echo 'bad config line 3'; exit 3", 5432)};
  std::unique_ptr<env::Step> step;
  Status s = engine_->Create(spec, &step);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string::npos, s.message().find("service 'db' exited with code 3 before it was ready"))
      << s.message();
  EXPECT_NE(std::string::npos, s.message().find("bad config line 3")) << s.message();
  EXPECT_TRUE(ContainersOf(data_.str()).empty());
}

TEST_F(DockerServicesTest, ReadyCommandRunsInTheService) {
  env::StepSpec spec = Spec("echo step ran");
  env::ServiceSpec svc = Service("db", "sleep 1; touch /tmp/up; exec sleep 600", 0);
  svc.ready_command = "test -e /tmp/up";
  spec.services = {svc};
  std::unique_ptr<env::Step> step;
  const auto start = std::chrono::steady_clock::now();
  Status s = engine_->Create(spec, &step);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::seconds(1))
      << "waited for the command to succeed";
  CollectingSink sink;
  EXPECT_EQ(0, RunStep(step, &sink));
  ASSERT_TRUE(step->Remove().ok());
  EXPECT_TRUE(ContainersOf(data_.str()).empty());
}

TEST_F(DockerServicesTest, KeptStepStillRemovesItsServices) {
  env::StepSpec spec = Spec("echo hi");
  spec.keep = true;
  spec.services = {Service("db", "exec httpd -f -p 5432", 5432)};
  std::unique_ptr<env::Step> step;
  ASSERT_TRUE(engine_->Create(spec, &step).ok());
  CollectingSink sink;
  EXPECT_EQ(0, RunStep(step, &sink));
  ASSERT_TRUE(step->Remove().ok());
  std::vector<std::string> left = ContainersOf(data_.str());
  ASSERT_EQ(1u, left.size()) << "the kept step only";
  EXPECT_EQ(std::string::npos, left[0].find("svc-db"));
}

// --- ladle run ---------------------------------------------------------------

class ServicesRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    src_ = root_.path() / "src";
    data_ = (root_.path() / "data").string();
    fs::create_directories(src_);
  }
  void TearDown() override {
    if (!daemon_) return;
    for (const std::string& name : ContainersOf(data_)) Docker({"rm", "-f", name});
  }
  void Pipeline(const std::string& steps) {
    WriteFile(src_ / "ladle.yml",
              "name: svc\nimage: " + std::string(kTestImage) +
                  "\nstages:\n  - name: test\n    network: none\n    services:\n"
                  "      - {name: db, image: " +
                  kTestImage + ", command: 'echo db listening; exec httpd -f -p 5432', port: 5432}\n"
                  "    steps:\n" + steps);
  }
  CommandOutput Ladle(std::vector<std::string> args) {
    std::vector<std::string> argv = {"env", "NO_COLOR=1", LADLE_BINARY, "--data", data_};
    argv.insert(argv.end(), args.begin(), args.end());
    return docker_test::Run(argv, src_.string());
  }
  std::string Log(const std::string& step) {
    return ReadFile(runner::StepLogPath(data_, 1, "test", step));
  }

  TempDir root_;
  fs::path src_;
  std::string data_;
  bool daemon_ = false;
};

TEST_F(ServicesRunTest, FailedStepRemovesItsServicesAndKeepsTheirLogs) {
  LADLE_REQUIRE_DOCKER();
  daemon_ = true;
  Pipeline("      - {name: unit, run: \"printf 'GET / HTTP/1.0\\\\r\\\\n\\\\r\\\\n' | nc db 5432 | "
           "head -1; exit 4\"}\n");
  CommandOutput r = Ladle({"run"});
  EXPECT_EQ(1, r.code) << r.out << r.err;
  const std::string log = Log("unit");
  EXPECT_NE(std::string::npos, log.find("HTTP/1.1 404")) << log;
  EXPECT_NE(std::string::npos, log.find("[service db] db listening")) << log;
  EXPECT_TRUE(ContainersOf(data_).empty());
}

TEST_F(ServicesRunTest, CancelledStepRemovesItsServices) {
  LADLE_REQUIRE_DOCKER();
  daemon_ = true;
  Pipeline("      - {name: unit, run: 'echo started; sleep 1017'}\n");
  std::string ladle = std::string(LADLE_BINARY) + " --data " + data_;
  CommandOutput r = docker_test::Run(
      {"sh", "-c",
       "NO_COLOR=1 " + ladle + " run > out.txt 2>&1 & pid=$!; i=0; "
       "while ! grep -q started out.txt && [ $i -lt 150 ]; do sleep 0.2; i=$((i+1)); done; "
       "kill -TERM $pid; wait $pid; echo $?"},
      src_.string());
  EXPECT_EQ("143\n", r.out) << ReadFile(src_ / "out.txt");
  EXPECT_TRUE(ContainersOf(data_).empty()) << ReadFile(src_ / "out.txt");
}

TEST_F(ServicesRunTest, NeverReadyServiceFailsTheStepWithItsLines) {
  LADLE_REQUIRE_DOCKER();
  daemon_ = true;
  WriteFile(src_ / "ladle.yml",
            "name: svc\nimage: " + std::string(kTestImage) +
                "\nstages:\n  - name: test\n    network: none\n    steps:\n"
                "      - name: unit\n        run: echo never\n        services:\n"
                "          - {name: pg, image: " + kTestImage +
                ", command: 'echo FATAL no config; sleep 600', port: 5432, ready: {timeout: 1s}}\n");
  CommandOutput r = Ladle({"run"});
  EXPECT_EQ(1, r.code) << r.out << r.err;
  const std::string log = Log("unit");
  EXPECT_NE(std::string::npos, log.find("service 'pg' was not ready after 1s")) << log;
  EXPECT_NE(std::string::npos, log.find("FATAL no config")) << log;
  EXPECT_EQ(std::string::npos, log.find("never\n")) << "the step did not run";
  EXPECT_TRUE(ContainersOf(data_).empty());
}

// docs/pipeline.md "Caches": restored and saved on the host around a docker
// step, as around a local one.
TEST_F(ServicesRunTest, CacheOfADockerStepIsRestoredInTheNextRun) {
  LADLE_REQUIRE_DOCKER();
  daemon_ = true;
  WriteFile(src_ / "ladle.yml",
            "name: c\nimage: " + std::string(kTestImage) +
                "\nstages:\n  - name: test\n    network: none\n    steps:\n"
                "      - name: unit\n"
                "        run: 'if [ -f deps/got ]; then echo \"restored: $(cat deps/got)\"; else "
                "mkdir -p deps; echo \"in $(hostname)\" > deps/got; echo fresh; fi'\n"
                "        cache: {paths: [deps], key: 'deps-${LADLE_STAGE}'}\n");
  CommandOutput r = Ladle({"run"});
  ASSERT_EQ(0, r.code) << r.out << r.err;
  EXPECT_NE(std::string::npos, Log("unit").find("fresh")) << Log("unit");
  EXPECT_NE(std::string::npos, Log("unit").find("cache: saved deps-test (1 files")) << Log("unit");
  r = Ladle({"run"});
  ASSERT_EQ(0, r.code) << r.out << r.err;
  const std::string log = ReadFile(runner::StepLogPath(data_, 2, "test", "unit"));
  EXPECT_NE(std::string::npos, log.find("restored: in ")) << log;
  EXPECT_TRUE(ContainersOf(data_).empty());
}

// No daemon needed: the local backend refuses before anything starts.
TEST_F(ServicesRunTest, NoDaemonLocalBackendRefusesServicesNamingTheStep) {
  Pipeline("      - {name: unit, run: 'echo ran'}\n");
  CommandOutput r = Ladle({"run", "--backend", "local"});
  EXPECT_EQ(1, r.code) << r.out << r.err;
  const std::string all = r.out + r.err;
  EXPECT_NE(std::string::npos,
            all.find("step 'test/unit' has services: they run on the docker backend only, and "
                     "this run uses the local backend"))
      << all;
  EXPECT_EQ(std::string::npos, Log("unit").find("ran\n"));
}

}  // namespace
}  // namespace ladle::docker_test
