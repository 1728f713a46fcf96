// Pulling missing images, against a real registry: Debian's docker-registry
// on 127.0.0.1 (dockerd trusts loopback registries without TLS), storage in a
// temp dir, stopped after the test. Nothing leaves 127.0.0.0/8.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "env/docker_engine.h"
#include "env/subprocess.h"
#include "tests/test_util.h"
#include "tests/docker/docker_test_util.h"

namespace ladle::env {
namespace {

using docker_test::Docker;
using docker_test::kTestImage;
using docker_test::TempDir;

bool PortAnswers(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

// The registry's port: as a test server's (tests/test_util.h).
int PickPort() { return testing::FreePort(); }

// A registry on 127.0.0.1:PORT for the life of the object.
class LocalRegistry {
 public:
  Status Start(const std::string& exe) {
    port_ = PickPort();
    std::string config = dir_.str() + "/config.yml";
    docker_test::WriteFile(config, "version: 0.1\n"
                                   "log: {level: warn}\n"
                                   "storage:\n  filesystem: {rootdirectory: " + dir_.str() + "/storage}\n"
                                   "  delete: {enabled: true}\n"
                                   "http: {addr: \"127.0.0.1:" + std::to_string(port_) + "\"}\n");
    LaunchSpec spec;
    spec.exe = "/bin/sh";
    // Its log goes to a file: an unread pipe would stall it.
    spec.args = {"-c", "exec \"$0\" serve \"$1\" >\"$2\" 2>&1", exe, config, dir_.str() + "/registry.log"};
    Status s = Subprocess::Start(spec, &proc_);
    if (!s.ok()) return s;
    for (int i = 0; i < 100 && !PortAnswers(port_); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!PortAnswers(port_))
      return Status::Unavailable("registry did not listen: " + docker_test::ReadFile(dir_.path() / "registry.log"));
    return Status::OK();
  }
  ~LocalRegistry() {
    if (proc_ != nullptr) {
      proc_->Kill(SIGTERM);
      proc_->Close();
    }
  }
  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  TempDir dir_;
  int port_ = 0;
  std::unique_ptr<Subprocess> proc_;
};

class PullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LADLE_REQUIRE_DOCKER();
    std::string exe;
    if (!FindInPath("docker-registry", &exe).ok()) {
      if (std::getenv("CI") != nullptr) FAIL() << "docker-registry is not installed";
      GTEST_SKIP() << "docker-registry is not installed (tests/env/docker_setup.sh installs it)";
    }
    Status s = registry_.Start(exe);
    ASSERT_TRUE(s.ok()) << s.ToString();
    DockerEngineOptions options;
    options.data_dir = data_.str();
    options.connect_timeout = std::chrono::seconds(3);
    ASSERT_TRUE(DockerEngine::Open(options, &engine_).ok());
    engine_->SetNoteCallback([this](const std::string& line) {
      std::lock_guard<std::mutex> lock(mu_);
      notes_ += line + "\n";
    });
  }

  // Pushes an image with a layer of its own (so that a pull has something to
  // download), then removes it here.
  std::string PushTestImage() {
    std::string image = registry_.host() + "/ladle/busybox:pulltest-" + std::to_string(::getpid());
    std::string builder = "ladle-test-pull-src-" + std::to_string(::getpid());
    // A layer no other image has, though ctest may run two pull tests in the
    // same second: else the pull finds it "Already exists", with nothing to download.
    auto r = Docker({"run", "--network", "none", "--name", builder, kTestImage, "sh", "-c",
                     "echo pulled > /pulled && echo " + builder + "-" +
                         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()) +
                         " > /.pulltest"});
    EXPECT_EQ(0, r.code) << r.err;
    EXPECT_EQ(0, Docker({"commit", builder, image}).code);
    Docker({"rm", "-f", builder});
    r = Docker({"push", image});
    EXPECT_EQ(0, r.code) << r.out << r.err;
    EXPECT_EQ(0, Docker({"rmi", image}).code);
    return image;
  }

  StepSpec Spec(const std::string& image, const std::string& script) {
    StepSpec spec;
    spec.id = "1/build/pull#1";
    spec.image = image;
    spec.script = script;
    spec.workspace = ws_.str();
    spec.resources.network = "none";
    spec.labels = {{"ladle.run", "1"}, {"ladle.data", data_.str()}};
    return spec;
  }

  LocalRegistry registry_;
  TempDir data_, ws_;
  std::unique_ptr<DockerEngine> engine_;
  std::mutex mu_;
  std::string notes_;
};

TEST_F(PullTest, MissingImageIsPulledWithProgressThenRuns) {
  std::string image = PushTestImage();
  bool exists = true;
  ASSERT_TRUE(engine_->client().ImageExists(image, &exists).ok());
  ASSERT_FALSE(exists) << "the test needs the image gone locally";

  std::unique_ptr<Step> step;
  Status s = engine_->Create(Spec(image, "cat /pulled"), &step);
  ASSERT_TRUE(s.ok()) << s.ToString() << "\n" << notes_;
  docker_test::CollectingSink sink;
  ASSERT_TRUE(step->Start().ok());
  ASSERT_TRUE(step->Stream(&sink).ok());
  ExitStatus exit;
  ASSERT_TRUE(step->Wait(&exit).ok());
  EXPECT_EQ(0, exit.code);
  EXPECT_EQ("pulled\n", sink.out());
  EXPECT_TRUE(step->Remove().ok());

  EXPECT_NE(std::string::npos, notes_.find("pulling image " + image + "\n")) << notes_;
  EXPECT_NE(std::string::npos, notes_.find("Pull complete")) << notes_;
  EXPECT_NE(std::string::npos, notes_.find("pulled image " + image + "\n")) << notes_;
  // One line per layer state change, not one per progress tick.
  size_t downloading = 0;
  for (size_t at = 0; (at = notes_.find(": Downloading", at)) != std::string::npos; ++at) downloading++;
  EXPECT_LE(downloading, 2u) << notes_;
  Docker({"rmi", image});
}

TEST_F(PullTest, ImageTheRegistryDoesNotHaveIsUnavailable) {
  std::string image = registry_.host() + "/ladle/absent:1";
  std::unique_ptr<Step> step;
  Status s = engine_->Create(Spec(image, "true"), &step);
  EXPECT_EQ(Code::kUnavailable, s.code()) << s.ToString();
  EXPECT_NE(std::string::npos, s.message().find("image '" + image + "' not found locally and could not be pulled: "))
      << s.message();
}

TEST_F(PullTest, LadleRunPullsAndPrintsProgress) {
  std::string image = PushTestImage();
  TempDir src;
  docker_test::WriteFile(src.path() / "ladle.yml", "name: pull\nimage: " + image +
                                                       "\nstages:\n  - name: build\n    network: none\n"
                                                       "    steps:\n      - {name: show, run: cat /pulled}\n");
  auto r = docker_test::Run({"env", "NO_COLOR=1", LADLE_BINARY, "--data", data_.str(), "run"}, src.str());
  EXPECT_EQ(0, r.code) << r.out << r.err;
  std::string all = r.out + r.err;
  EXPECT_NE(std::string::npos, all.find("pulling image " + image)) << all;
  EXPECT_NE(std::string::npos, all.find("Pull complete")) << all;
  EXPECT_NE(std::string::npos, all.find("pulled\n")) << all;
  Docker({"rmi", image});
}

}  // namespace
}  // namespace ladle::env
