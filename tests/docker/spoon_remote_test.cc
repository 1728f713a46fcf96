// A shared Docker host (docs/spoons.md "A shared host over ssh", "A shared
// host over tcp and TLS"): the real `ladle` binary reaching the test daemon
// through OpenSSH's sshd on 127.0.0.1 (a throwaway host key, client key and
// user, all made here) and through a TLS front (socat with certificates
// made here by openssl, client certificates verified).
//
// Needs root (useradd, sshd), sshd and socat (scripts/install-deps.sh
// --test); without them: a skip, a failure under CI=true.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "tests/docker/docker_test_util.h"
#include "tests/test_util.h"

namespace ladle::docker_test {
namespace {

namespace fs = std::filesystem;
using std::chrono::steady_clock;

constexpr char kSpoonImage[] = "ladle-test-spoon:latest";

#define LADLE_REQUIRE(cond, why)                                                      \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      if (std::getenv("CI") != nullptr && *std::getenv("CI") != '\0')                 \
        FAIL() << (why) << " (CI is set, so this is a failure)";                      \
      GTEST_SKIP() << (why);                                                          \
    }                                                                                 \
  } while (0)

bool Exists(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

bool WaitForPort(int port, std::chrono::seconds limit) {
  auto deadline = steady_clock::now() + limit;
  while (steady_clock::now() < deadline) {
    CommandOutput r = docker_test::Run({"bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(port)}, "",
                          std::chrono::seconds(5));
    if (r.code == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// A process the test started (sshd, socat), ended with the test.
class Background {
 public:
  Status Start(const std::vector<std::string>& argv) {
    env::LaunchSpec spec;
    Status s = env::FindInPath(argv[0], &spec.exe);
    if (!s.ok()) return s;
    spec.args.assign(argv.begin() + 1, argv.end());
    s = env::Subprocess::Start(spec, &proc_);
    if (!s.ok()) return s;
    pump_ = std::thread([this] {
      while (!proc_->Pump(&sink_)) {
      }
      ended_ = true;
    });
    return Status::OK();
  }
  std::string Output() const { return sink_.out() + sink_.err(); }
  // Whether it ended by itself within `limit`.
  bool WaitEnded(std::chrono::seconds limit) {
    auto deadline = steady_clock::now() + limit;
    while (!ended_ && steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return ended_;
  }
  ~Background() {
    if (proc_) proc_->Kill(SIGTERM);
    if (pump_.joinable()) pump_.join();
  }

 private:
  std::unique_ptr<env::Subprocess> proc_;
  CollectingSink sink_;
  std::thread pump_;
  std::atomic<bool> ended_{false};
};

class SpoonRemoteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LADLE_REQUIRE_DOCKER();
    daemon_ = true;
    ASSERT_EQ(0, Docker({"image", "inspect", kSpoonImage}).code)
        << kSpoonImage << " is missing: run tests/env/docker_setup.sh";
    ::chmod(root_.str().c_str(), 0711);  // the test user reaches its key file
    data_ = (root_.path() / "data").string();
    src_ = root_.path() / "src";
    fs::create_directories(src_);
  }
  void TearDown() override {
    if (!daemon_) return;
    for (const std::string& c : created_) Docker({"rm", "-f", c});
    for (const std::string& name : ContainersOf(data_)) Docker({"rm", "-f", name});
    if (!user_.empty()) docker_test::Run({"userdel", user_});
  }

  // sshd on 127.0.0.1:port_ with a user of the docker group who logs in
  // with a fresh key; LADLE_SSH_COMMAND for ladle's ssh.
  void StartSshd() {
    LADLE_REQUIRE(::geteuid() == 0, "the ssh tests make a user and run sshd: they need root");
    LADLE_REQUIRE(Exists("/usr/sbin/sshd"), "no /usr/sbin/sshd (apt-get install openssh-server)");
    std::string d = root_.str();
    ASSERT_EQ(0, docker_test::Run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", d + "/host_key"}).code);
    ASSERT_EQ(0, docker_test::Run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", d + "/client_key"}).code);
    user_ = "ltssh" + std::to_string(::getpid() % 100000);
    docker_test::Run({"userdel", user_});  // a leftover of a killed run
    CommandOutput add = docker_test::Run({"useradd", "-M", "-N", "-G", "docker", "-d", d, "-s", "/bin/sh", user_});
    ASSERT_EQ(0, add.code) << add.err;
    ASSERT_EQ(0, docker_test::Run({"usermod", "-p", "*", user_}).code);  // no password, not locked
    fs::create_directories(d + "/keys");
    fs::copy_file(d + "/client_key.pub", d + "/keys/" + user_);
    ::chmod((d + "/keys").c_str(), 0755);
    ::chmod((d + "/keys/" + user_).c_str(), 0644);
    fs::create_directories("/run/sshd");  // sshd's privilege separation folder
    port_ = testing::FreePort();
    WriteFile(d + "/sshd_config",
              "Port " + std::to_string(port_) + "\nListenAddress 127.0.0.1\nHostKey " + d +
                  "/host_key\nPidFile " + d + "/sshd.pid\nAuthorizedKeysFile " + d +
                  "/keys/%u\nStrictModes no\nPasswordAuthentication no\n"
                  "KbdInteractiveAuthentication no\nUsePAM no\nAllowUsers " + user_ +
                  "\nAllowTcpForwarding yes\nAllowStreamLocalForwarding yes\n");
    Status s = sshd_.Start({"/usr/sbin/sshd", "-D", "-e", "-f", d + "/sshd_config"});
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_TRUE(WaitForPort(port_, std::chrono::seconds(10))) << "sshd did not listen: " << sshd_.Output();
    std::string host_pub = ReadFile(d + "/host_key.pub");
    WriteFile(d + "/known_hosts", "[127.0.0.1]:" + std::to_string(port_) + " " + host_pub);
    ssh_command_ = "ssh -F /dev/null -i " + d + "/client_key -o IdentitiesOnly=yes -o UserKnownHostsFile=" + d +
                   "/known_hosts -o StrictHostKeyChecking=yes";
    host_ = "ssh://" + user_ + "@127.0.0.1:" + std::to_string(port_);
  }

  CommandOutput LadleArgs(std::vector<std::string> args, std::vector<std::string> env = {}) {
    std::vector<std::string> argv = {"sh", "-c", "exec \"$@\" </dev/null", "sh",
                                     "env", "NO_COLOR=1", "HOME=" + root_.str(),
                                     "LADLE_SSH_COMMAND=" + ssh_command_};
    argv.insert(argv.end(), env.begin(), env.end());
    argv.insert(argv.end(), {LADLE_BINARY, "--data", data_});
    argv.insert(argv.end(), args.begin(), args.end());
    return docker_test::Run(argv, src_.string());
  }

  TempDir root_;
  std::string data_;
  fs::path src_;
  bool daemon_ = false;
  std::string user_, ssh_command_, host_;
  int port_ = 0;
  Background sshd_;
  std::vector<std::string> created_;
};

TEST_F(SpoonRemoteTest, EnvListCreateAndDestroyOverSsh) {
  StartSshd();
  if (HasFatalFailure() || IsSkipped()) return;
  std::string name = "rssh" + std::to_string(::getpid());
  created_.push_back("spoon-" + name);
  CommandOutput list = LadleArgs({"env", "list", "--host", host_});
  EXPECT_EQ(0, list.code) << list.out << list.err;

  CommandOutput made = LadleArgs({"env", name, "--host", host_, "--image", kSpoonImage, "--network", "none",
                                  "--", "sh", "-c", "echo inside-$(hostname)"});
  EXPECT_EQ(0, made.code) << made.out << made.err;
  EXPECT_NE(std::string::npos, made.out.find("inside-" + name)) << made.out << made.err;
  // Made on the daemon behind the ssh host (here the same one).
  EXPECT_EQ(0, Docker({"inspect", "spoon-" + name}).code);

  list = LadleArgs({"env", "list", "--host", host_});
  EXPECT_EQ(0, list.code) << list.err;
  EXPECT_NE(std::string::npos, list.out.find(name)) << list.out;

  // DOCKER_HOST is honoured the same way.
  CommandOutput ports = LadleArgs({"env", "ports", name}, {"DOCKER_HOST=" + host_});
  EXPECT_EQ(0, ports.code) << ports.err;

  CommandOutput gone = LadleArgs({"env", "destroy", name, "--force", "--host", host_});
  EXPECT_EQ(0, gone.code) << gone.err;
  EXPECT_NE(0, Docker({"inspect", "spoon-" + name}).code);
  // The tunnel's ssh child ended with ladle: no ssh of this test is left.
  CommandOutput left = docker_test::Run({"sh", "-c", "pgrep -f '[s]sh -F /dev/null -i " + root_.str() + "' || true"});
  EXPECT_EQ("", left.out);
}

TEST_F(SpoonRemoteTest, RunDockerBackendOverSsh) {
  StartSshd();
  if (HasFatalFailure() || IsSkipped()) return;
  WriteFile(src_ / "ladle.yml", "name: remote\nimage: " + std::string(kTestImage) +
                                    "\nstages:\n  - name: build\n    network: none\n    steps:\n"
                                    "      - {name: hello, run: 'echo hello-over-ssh > out.txt; cat out.txt'}\n");
  CommandOutput r = LadleArgs({"run", "--backend", "docker", "--host", host_});
  EXPECT_EQ(0, r.code) << r.out << r.err;
  EXPECT_NE(std::string::npos, (r.out + r.err).find("hello-over-ssh")) << r.out << r.err;
  EXPECT_NE(std::string::npos, (r.out + r.err).find(host_)) << r.out << r.err;  // backend: docker (...)
}

TEST_F(SpoonRemoteTest, SshRefusingTheKeyGivesSshsWords) {
  StartSshd();
  if (HasFatalFailure() || IsSkipped()) return;
  ASSERT_EQ(0, docker_test::Run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", root_.str() + "/other_key"}).code);
  ssh_command_ = "ssh -F /dev/null -i " + root_.str() + "/other_key -o IdentitiesOnly=yes -o UserKnownHostsFile=" +
                 root_.str() + "/known_hosts -o StrictHostKeyChecking=yes";
  CommandOutput r = LadleArgs({"env", "list", "--host", host_});
  EXPECT_EQ(3, r.code) << r.out << r.err;
  EXPECT_NE(std::string::npos, r.err.find("Permission denied")) << r.err;
  EXPECT_NE(std::string::npos, r.err.find(host_)) << r.err;
}

TEST_F(SpoonRemoteTest, UnreachableSshHostSaysSo) {
  LADLE_REQUIRE(Exists("/usr/bin/ssh"), "no ssh client (apt-get install openssh-client)");
  int port = testing::FreePort();  // nothing listens
  ssh_command_ = "ssh -F /dev/null -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes";
  CommandOutput r = LadleArgs({"env", "list", "--host", "ssh://nobody@127.0.0.1:" + std::to_string(port)});
  EXPECT_EQ(3, r.code) << r.out << r.err;
  EXPECT_NE(std::string::npos, r.err.find("Connection refused")) << r.err;
}

TEST_F(SpoonRemoteTest, ForwardBringsASpoonPortHere) {
  StartSshd();
  if (HasFatalFailure() || IsSkipped()) return;
  std::string name = "rfwd" + std::to_string(::getpid());
  created_.push_back("spoon-" + name);
  int spoon_port = testing::FreePort();
  int local_port = testing::FreePort();
  while (local_port == spoon_port) local_port = testing::FreePort();
  // A spoon on the host network serving one answer on spoon_port; ladle
  // forwards it to local_port here while the command runs.
  Background ladle;
  Status s = ladle.Start({"env", "NO_COLOR=1", "HOME=" + root_.str(), "LADLE_SSH_COMMAND=" + ssh_command_,
                          LADLE_BINARY, "--data", data_, "env", name, "--host", host_, "--image", kSpoonImage,
                          "--network", "host", "--forward",
                          std::to_string(local_port) + ":" + std::to_string(spoon_port), "--", "sh", "-c",
                          "echo forwarded-answer | nc -l -p " + std::to_string(spoon_port)});
  ASSERT_TRUE(s.ok()) << s.ToString();
  std::string got;
  auto deadline = steady_clock::now() + std::chrono::seconds(40);
  while (steady_clock::now() < deadline) {
    CommandOutput r = docker_test::Run({"bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(local_port) +
                                             " && timeout 3 cat <&3"},
                          "", std::chrono::seconds(10));
    if (r.out.find("forwarded-answer") != std::string::npos) {
      got = r.out;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_NE(std::string::npos, got.find("forwarded-answer")) << ladle.Output();
  // The command ended, so ladle ends, and its tunnels with it.
  EXPECT_TRUE(ladle.WaitEnded(std::chrono::seconds(20))) << ladle.Output();
}

TEST_F(SpoonRemoteTest, ForwardNeedsAnSshHost) {
  std::string name = "rnof" + std::to_string(::getpid());
  created_.push_back("spoon-" + name);
  CommandOutput r = LadleArgs({"env", name, "--image", kSpoonImage, "--network", "none", "--forward", "8080",
                               "--", "true"});
  EXPECT_EQ(2, r.code) << r.out << r.err;
  EXPECT_NE(std::string::npos, r.err.find("--forward needs an ssh:// host")) << r.err;
}

// --- TLS ------------------------------------------------------------------

class SpoonTlsTest : public SpoonRemoteTest {
 protected:
  // A CA, a server certificate for 127.0.0.1 and a client certificate in
  // certs_, and socat on 127.0.0.1:port_ speaking TLS (client certificates
  // required) to the daemon's socket.
  void StartTlsFront() {
    LADLE_REQUIRE(Exists("/usr/bin/socat"), "no socat (apt-get install socat)");
    certs_ = root_.str() + "/certs";
    fs::create_directories(certs_);
    std::string script =
        "set -e; cd " + certs_ + "\n"
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=ladle-test-ca -keyout ca-key.pem -out ca.pem 2>/dev/null\n"
        "openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout server-key.pem -out server.csr 2>/dev/null\n"
        "printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > server.ext\n"
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 -extfile server.ext -out server.pem 2>/dev/null\n"
        "openssl req -newkey rsa:2048 -nodes -subj /CN=client -keyout key.pem -out client.csr 2>/dev/null\n"
        "printf 'extendedKeyUsage=clientAuth\\n' > client.ext\n"
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 -extfile client.ext -out cert.pem 2>/dev/null\n";
    CommandOutput made = docker_test::Run({"sh", "-c", script});
    ASSERT_EQ(0, made.code) << made.err;
    port_ = testing::FreePort();
    std::string daemon = "/var/run/docker.sock";
    Status s = socat_.Start({"socat",
                             "OPENSSL-LISTEN:" + std::to_string(port_) + ",bind=127.0.0.1,reuseaddr,fork,cert=" +
                                 certs_ + "/server.pem,key=" + certs_ + "/server-key.pem,cafile=" + certs_ +
                                 "/ca.pem,verify=1",
                             "UNIX-CONNECT:" + daemon});
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_TRUE(WaitForPort(port_, std::chrono::seconds(10))) << socat_.Output();
    host_ = "tcp://127.0.0.1:" + std::to_string(port_);
  }
  std::string certs_;
  Background socat_;
};

TEST_F(SpoonTlsTest, EnvOverTcpWithClientCertificates) {
  StartTlsFront();
  if (HasFatalFailure() || IsSkipped()) return;
  std::vector<std::string> tls = {"DOCKER_TLS_VERIFY=1", "DOCKER_CERT_PATH=" + certs_};
  std::string name = "rtls" + std::to_string(::getpid());
  created_.push_back("spoon-" + name);
  CommandOutput made = LadleArgs({"env", name, "--host", host_, "--image", kSpoonImage, "--network", "none",
                                  "--", "sh", "-c", "echo tls-$(hostname)"},
                                 tls);
  EXPECT_EQ(0, made.code) << made.out << made.err;
  EXPECT_NE(std::string::npos, made.out.find("tls-" + name)) << made.out << made.err;  // hijacked exec over TLS
  CommandOutput list = LadleArgs({"env", "list", "--host", host_}, tls);
  EXPECT_EQ(0, list.code) << list.err;
  EXPECT_NE(std::string::npos, list.out.find(name)) << list.out;

  // The docker backend of `ladle run` through the same TLS host.
  WriteFile(src_ / "ladle.yml", "name: tls\nimage: " + std::string(kTestImage) +
                                    "\nstages:\n  - name: b\n    network: none\n    steps:\n"
                                    "      - {name: s, run: 'echo run-over-tls'}\n");
  CommandOutput run = LadleArgs({"run", "--backend", "docker", "--host", host_}, tls);
  EXPECT_EQ(0, run.code) << run.out << run.err;
  EXPECT_NE(std::string::npos, (run.out + run.err).find("run-over-tls")) << run.out << run.err;
}

TEST_F(SpoonTlsTest, WithoutTlsVariablesOrCertificatesItFailsClearly) {
  StartTlsFront();
  if (HasFatalFailure() || IsSkipped()) return;
  // Plain HTTP to a TLS port: the daemon does not answer usefully.
  CommandOutput plain = LadleArgs({"env", "list", "--host", host_});
  EXPECT_EQ(3, plain.code) << plain.out << plain.err;
  // A missing client key is named.
  fs::remove(certs_ + "/key.pem");
  CommandOutput nokey = LadleArgs({"env", "list", "--host", host_},
                                  {"DOCKER_TLS_VERIFY=1", "DOCKER_CERT_PATH=" + certs_});
  EXPECT_EQ(2, nokey.code) << nokey.out << nokey.err;
  EXPECT_NE(std::string::npos, nokey.err.find(certs_ + "/key.pem")) << nokey.err;
}

TEST_F(SpoonTlsTest, AnUntrustedClientIsRefused) {
  StartTlsFront();
  if (HasFatalFailure() || IsSkipped()) return;
  // A client certificate from another CA: the TLS front refuses it.
  std::string other = root_.str() + "/other";
  fs::create_directories(other);
  CommandOutput made = docker_test::Run({"sh", "-c", "set -e; cd " + other + "; cp " + certs_ + "/ca.pem .; "
                                        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=stranger "
                                        "-keyout key.pem -out cert.pem 2>/dev/null"});
  ASSERT_EQ(0, made.code) << made.err;
  CommandOutput r = LadleArgs({"env", "list", "--host", host_}, {"DOCKER_TLS_VERIFY=1", "DOCKER_CERT_PATH=" + other});
  EXPECT_EQ(3, r.code) << r.out << r.err;
  EXPECT_NE(std::string::npos, r.err.find(host_)) << r.err;
}

}  // namespace
}  // namespace ladle::docker_test
