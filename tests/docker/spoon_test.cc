// `ladle env` end to end (docs/spoons.md): the real `ladle` binary against
// the real daemon, on ladle-test-spoon:latest (busybox + the host's tmux,
// built by tests/env/docker_setup.sh). The interactive shell is driven under
// a tmux server of the test's own on the host (`tmux -L NAME`): send-keys
// types, capture-pane reads.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <sstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "env/docker_hijack.h"
#include "runner/spoon/spoon.h"
#include "runner/spoon/spoon_archive.h"
#include "tests/docker/docker_test_util.h"

namespace ladle::docker_test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kSpoonImage[] = "ladle-test-spoon:latest";
// Per test process: ctest runs tests side by side, and each one's clean-up
// removes the spoons of its own prefix only.
const std::string& Prefix() {
  static const std::string prefix = "ltest" + std::to_string(::getpid()) + "-";
  return prefix;
}
constexpr char kNetwork[] = "ladle-spoon-test";

std::string Unique(const std::string& base) {
  return base + std::to_string(::getpid() % 100000);
}

// A port nothing listens on now (the kernel's pick, released).
int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

bool Contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The row of `ladle env list` whose first column is `name`, its columns
// joined by one space: other tests' spoons and kept steps, listed too, widen
// the columns.
std::string RowOf(const std::string& list, const std::string& name) {
  std::istringstream in(list);
  for (std::string line; std::getline(in, line);) {
    std::istringstream cols(line);
    std::string col, row;
    while (cols >> col) row += (row.empty() ? "" : " ") + col;
    if (row.rfind(name + " ", 0) == 0) return row;
  }
  return "";
}

class SpoonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LADLE_REQUIRE_DOCKER();
    daemon_ = true;
    ASSERT_EQ(0, Docker({"image", "inspect", kSpoonImage}).code)
        << kSpoonImage << " is missing: run tests/env/docker_setup.sh";
    fs::create_directories(home_);
    fs::create_directories(work_);
  }
  void TearDown() override {
    if (!daemon_) return;
    CommandOutput r = Docker({"ps", "-a", "--filter", "label=ladle.spoon.prefix=" + Prefix(),
                              "--format", "{{.Names}}"});
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) Docker({"rm", "-f", line});
  }

  std::vector<std::string> LadleArgv(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"env", "NO_COLOR=1", "HOME=" + home_.string(), LADLE_BINARY, "env",
                                     "--prefix", Prefix()};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
  // `ladle env ARGS --prefix ltest-`, stdin from /dev/null.
  CommandOutput Env(const std::vector<std::string>& args) { return docker_test::Run(LadleArgv(args), work_.string()); }
  // The same as a shell command line (for pipes and the host tmux).
  std::string EnvLine(const std::vector<std::string>& args) {
    std::string line;
    for (const std::string& a : LadleArgv(args)) line += (line.empty() ? "" : " ") + Quote(a);
    return line;
  }
  static std::string Quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
  }
  CommandOutput Sh(const std::string& script) { return docker_test::Run({"sh", "-c", script}, work_.string()); }
  std::string State(const std::string& name) {
    CommandOutput r = Docker({"inspect", "-f", "{{.State.Status}}", Prefix() + name});
    return r.code == 0 ? r.out.substr(0, r.out.find('\n')) : "missing";
  }
  static void EnsureNetwork() {
    if (Docker({"network", "inspect", kNetwork}).code != 0)
      // No masquerading and no traffic: the network only carries the port
      // bindings the tests read back (docs/design.md "Tests on this machine").
      Docker({"network", "create", "-o", "com.docker.network.bridge.enable_ip_masquerade=false", kNetwork});
  }

  TempDir root_;
  fs::path home_ = root_.path() / "home";
  fs::path work_ = root_.path() / "work";
  bool daemon_ = false;
};

// --- Without a process boundary -------------------------------------------------

TEST(SpoonConfigTest, PortSpecs) {
  std::string port, ip, host;
  ASSERT_TRUE(runner::spoon::ParsePortSpec("8080", &port, &ip, &host).ok());
  EXPECT_EQ("8080/tcp", port);
  EXPECT_EQ("", host);
  ASSERT_TRUE(runner::spoon::ParsePortSpec("9000:8080", &port, &ip, &host).ok());
  EXPECT_EQ("9000", host);
  ASSERT_TRUE(runner::spoon::ParsePortSpec("127.0.0.1:9000:53/udp", &port, &ip, &host).ok());
  EXPECT_EQ("53/udp", port);
  EXPECT_EQ("127.0.0.1", ip);
  ASSERT_TRUE(runner::spoon::ParsePortSpec("127.0.0.1::81", &port, &ip, &host).ok());
  EXPECT_EQ("", host);
  EXPECT_FALSE(runner::spoon::ParsePortSpec("http", &port, &ip, &host).ok());
  EXPECT_FALSE(runner::spoon::ParsePortSpec("70000", &port, &ip, &host).ok());
  EXPECT_FALSE(runner::spoon::ParsePortSpec("1:2:3:4", &port, &ip, &host).ok());
  EXPECT_FALSE(runner::spoon::ParsePortSpec("80/icmp", &port, &ip, &host).ok());
}

TEST(SpoonConfigTest, ContainerConfig) {
  runner::spoon::SpoonSettings s;
  s.image = "img:1";
  s.ports = {"9000:80", "81"};
  s.cpus = "1.5";
  s.memory = "256m";
  s.dns = {"127.0.0.53"};
  s.env = {{"A", "1"}};
  s.volumes = {"/tmp:/data:ro"};
  runner::spoon::CreateOptions o;
  o.workdir = "/workspace";
  json c;
  ASSERT_TRUE(runner::spoon::SpoonContainerConfig("dev", "spoon-", s, o, true, &c).ok());
  EXPECT_EQ("dev", c["Hostname"]);
  EXPECT_EQ("dev", c["Labels"]["ladle.spoon"]);
  EXPECT_EQ("spoon-", c["Labels"]["ladle.spoon.prefix"]);
  EXPECT_EQ("9000", c["HostConfig"]["PortBindings"]["80/tcp"][0]["HostPort"]);
  EXPECT_EQ("", c["HostConfig"]["PortBindings"]["81/tcp"][0]["HostPort"]);
  EXPECT_EQ(1500000000, c["HostConfig"]["NanoCpus"]);
  EXPECT_EQ(256 << 20, c["HostConfig"]["Memory"]);
  EXPECT_EQ("/tmp:/data:ro", c["HostConfig"]["Binds"][0]);
  EXPECT_EQ(json::array({"A=1"}), c["Env"]);
  EXPECT_EQ("/workspace", c["WorkingDir"]);
  EXPECT_TRUE(c["HostConfig"]["Init"].get<bool>());

  s.volumes = {"/no/such/ladle/dir:/data"};
  Status st = runner::spoon::SpoonContainerConfig("dev", "spoon-", s, o, true, &c);
  EXPECT_EQ(Code::kInvalid, st.code());
  EXPECT_TRUE(Contains(st.message(), "/no/such/ladle/dir does not exist")) << st.message();
  s.volumes = {};
  s.image = "";
  EXPECT_EQ(Code::kInvalid, runner::spoon::SpoonContainerConfig("dev", "spoon-", s, o, true, &c).code());
  s.image = "x";
  EXPECT_EQ(Code::kInvalid, runner::spoon::SpoonContainerConfig("-bad", "spoon-", s, o, true, &c).code());
}

TEST(SpoonConfigTest, ShellCommandLooksForTmuxInTheSameExec) {
  auto cmd = runner::spoon::ShellCommandFor("dev", "/bin/bash", true);
  ASSERT_EQ(5u, cmd.size());
  EXPECT_TRUE(Contains(cmd[2], "tmux -u new -A -s \"$0\""));
  EXPECT_EQ("dev", cmd[3]);
  EXPECT_EQ("/bin/bash", cmd[4]);
  EXPECT_FALSE(Contains(runner::spoon::ShellCommandFor("dev", "", false)[2], "tmux"));
}

TEST(HijackAnswerTest, StatusLineAndContentLength) {
  long status = 0;
  long long length = 0;
  ASSERT_TRUE(env::ParseHijackAnswer("HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
                                     "Connection: Upgrade\r\nUpgrade: tcp\r\n",
                                     &status, &length)
                  .ok());
  EXPECT_EQ(101, status);
  EXPECT_EQ(-1, length);
  ASSERT_TRUE(env::ParseHijackAnswer("HTTP/1.1 409 Conflict\r\ncontent-length: 42\r\n", &status, &length).ok());
  EXPECT_EQ(409, status);
  EXPECT_EQ(42, length);
  EXPECT_FALSE(env::ParseHijackAnswer("SSH-2.0-OpenSSH\r\n", &status, &length).ok());
  EXPECT_FALSE(env::ParseHijackAnswer("HTTP/1.1 2x0 OK\r\n", &status, &length).ok());
  EXPECT_FALSE(env::ParseHijackAnswer("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n", &status, &length).ok());
}

TEST(SpoonArchiveTest, CarriesParentsFilesFoldersAndLinks) {
  TempDir dir;
  WriteFile(dir.path() / "dots" / ".vimrc", "set nu\n");
  WriteFile(dir.path() / "dots" / "sub" / "deep", "x");
  fs::create_symlink(".vimrc", dir.path() / "dots" / "link");
  std::string tar;
  ASSERT_TRUE(runner::spoon::BuildCopyArchive((dir.path() / "dots").string(), "a/b/dots", &tar).ok());
  fs::path out = dir.path() / "out";
  fs::create_directories(out);
  fs::path file = dir.path() / "t.tar";
  std::ofstream(file, std::ios::binary) << tar;
  CommandOutput r = docker_test::Run({"tar", "-xf", file.string(), "-C", out.string()});
  ASSERT_EQ(0, r.code) << r.err;
  EXPECT_EQ("set nu\n", ReadFile(out / "a/b/dots/.vimrc"));
  EXPECT_EQ("x", ReadFile(out / "a/b/dots/sub/deep"));
  EXPECT_EQ(".vimrc", fs::read_symlink(out / "a/b/dots/link").string());
  EXPECT_EQ(Code::kInvalid, runner::spoon::BuildCopyArchive("/no/such/ladle/file", "x", &tar).code());
}

// --- End to end ------------------------------------------------------------------

// docs/spoons.md "Commands": create, list, kill, restart, destroy.
TEST_F(SpoonTest, CreateListKillRestartDestroyCycle) {
  const std::string name = Unique("cyc");
  CommandOutput r = Env({name, "--image", kSpoonImage, "--", "hostname"});
  ASSERT_EQ(0, r.code) << r.out << r.err;
  EXPECT_EQ(name + "\n", r.out);
  EXPECT_TRUE(Contains(r.err, "creating spoon " + name)) << r.err;
  EXPECT_EQ("running", State(name));
  EXPECT_EQ(name, Docker({"inspect", "-f", "{{index .Config.Labels \"ladle.spoon\"}}", Prefix() + name})
                      .out.substr(0, name.size()));

  r = Env({"list"});
  ASSERT_EQ(0, r.code) << r.err;
  EXPECT_TRUE(Contains(r.out, "NAME")) << r.out;
  EXPECT_EQ(0u, RowOf(r.out, name).rfind(name + " running " + kSpoonImage + " ", 0)) << r.out;

  r = Env({"kill", name});
  ASSERT_EQ(0, r.code) << r.err;
  EXPECT_EQ("exited", State(name));
  EXPECT_EQ(0u, RowOf(Env({"list"}).out, name).rfind(name + " exited ", 0)) << Env({"list"}).out;

  // Entering a stopped spoon starts it; it is the same container (a file
  // written before is there).
  ASSERT_EQ(0, Env({name, "--", "sh", "-c", "echo kept > /root/mark"}).code);
  ASSERT_EQ(0, Env({"kill", name}).code);
  r = Env({name, "--", "cat", "/root/mark"});
  EXPECT_EQ(0, r.code) << r.err;
  EXPECT_EQ("kept\n", r.out);

  r = Env({"restart", name});
  ASSERT_EQ(0, r.code) << r.err;
  EXPECT_EQ("running", State(name));

  r = Env({"destroy", name});  // no terminal: no question
  ASSERT_EQ(0, r.code) << r.err;
  EXPECT_EQ("missing", State(name));
  r = Env({"list", "--json"});
  EXPECT_FALSE(Contains(r.out, name)) << r.out;
}

TEST_F(SpoonTest, ExitCodeAndPipedInputPassThrough) {
  const std::string name = Unique("ec");
  CommandOutput r = Env({name, "--image", kSpoonImage, "--", "sh", "-c", "exit 7"});
  EXPECT_EQ(7, r.code) << r.err;
  // No terminal: stdin is passed through and its end reaches the shell.
  r = Sh("printf 'echo piped-$((40+2))\\nexit 3\\n' | " + EnvLine({name}));
  EXPECT_EQ(3, r.code) << r.err;
  EXPECT_TRUE(Contains(r.out, "piped-42")) << r.out;
  r = Sh("printf 'line1\\nline2\\n' | " + EnvLine({name, "--", "wc", "-l"}));
  EXPECT_EQ(0, r.code) << r.err;
  EXPECT_TRUE(Contains(r.out, "2")) << r.out;
}

TEST_F(SpoonTest, MissingNameIsExitTwo) {
  for (const char* verb : {"kill", "restart", "destroy", "ports"}) {
    CommandOutput r = Env({verb, "nosuch"});
    EXPECT_EQ(2, r.code) << verb << r.err;
    EXPECT_TRUE(Contains(r.err, "no spoon named 'nosuch'")) << r.err;
  }
  CommandOutput r = Env({"commit", "nosuch", "img:1"});
  EXPECT_EQ(2, r.code) << r.err;
  r = Env({"nosuch"});  // no image to make it from
  EXPECT_EQ(2, r.code) << r.err;
  EXPECT_TRUE(Contains(r.err, "no spoon named 'nosuch'")) << r.err;
  r = Env({"bad/name", "--image", kSpoonImage});
  EXPECT_EQ(2, r.code) << r.err;
}

TEST_F(SpoonTest, DaemonNotAnsweringIsExitThree) {
  CommandOutput r = Env({"list", "--host", "unix://" + (root_.path() / "no.sock").string()});
  EXPECT_EQ(3, r.code) << r.err;
  EXPECT_TRUE(Contains(r.err, "is dockerd running")) << r.err;
}

TEST_F(SpoonTest, ImageThatDoesNotExistShowsThePullError) {
  // A registry on a closed loopback port: the pull is tried and fails here.
  CommandOutput r = Env({Unique("img"), "--image", "127.0.0.1:9/ladle/nope:1", "--", "true"});
  EXPECT_EQ(3, r.code) << r.err;
  EXPECT_TRUE(Contains(r.err, "pulling 127.0.0.1:9/ladle/nope:1")) << r.err;
  EXPECT_TRUE(Contains(r.err, "could not be pulled")) << r.err;
  EXPECT_EQ("missing", State(Unique("img")));
}

TEST_F(SpoonTest, PortsDynamicAndFixedAreShown) {
  EnsureNetwork();
  const std::string name = Unique("ports");
  int fixed = FreePort();
  CommandOutput r = Env({name, "--image", kSpoonImage, "--network", kNetwork, "--port",
                         "127.0.0.1:" + std::to_string(fixed) + ":80", "--port", "127.0.0.1::81", "--", "true"});
  ASSERT_EQ(0, r.code) << r.err;
  r = Env({"ports", name});
  ASSERT_EQ(0, r.code) << r.err;
  EXPECT_TRUE(Contains(r.out, "80/tcp -> 127.0.0.1:" + std::to_string(fixed) + "\n")) << r.out;
  EXPECT_TRUE(Contains(r.out, "81/tcp -> 127.0.0.1:")) << r.out;
  CommandOutput d = Docker({"port", Prefix() + name});
  EXPECT_TRUE(Contains(d.out, "80/tcp -> 127.0.0.1:" + std::to_string(fixed))) << d.out;
  std::string dynamic = d.out.substr(d.out.find("81/tcp -> "));
  EXPECT_TRUE(Contains(r.out, dynamic.substr(0, dynamic.find('\n')))) << r.out << d.out;
  EXPECT_TRUE(Contains(Env({"list"}).out, "80/tcp -> 127.0.0.1:" + std::to_string(fixed)));
}

TEST_F(SpoonTest, PortTakenOnTheHostIsTheDaemonsErrorNamed) {
  EnsureNetwork();
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(0, ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)));
  ASSERT_EQ(0, ::listen(fd, 1));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  std::string port = std::to_string(ntohs(a.sin_port));
  const std::string name = Unique("taken");
  CommandOutput r = Env({name, "--image", kSpoonImage, "--network", kNetwork, "--port", "127.0.0.1:" + port + ":80",
                         "--", "true"});
  ::close(fd);
  EXPECT_EQ(3, r.code) << r.err;
  EXPECT_TRUE(Contains(r.err, port)) << r.err;
  EXPECT_TRUE(Contains(r.err, "a host port of --port is taken")) << r.err;
  EXPECT_TRUE(Contains(r.err, "removed the half-made container")) << r.err;
  EXPECT_EQ("missing", State(name));
}

TEST_F(SpoonTest, VolumesAreVisibleInsideAndAMissingPathIsRefused) {
  fs::path shared = root_.path() / "shared";
  WriteFile(shared / "hello.txt", "from the host\n");
  const std::string name = Unique("vol");
  CommandOutput r = Env({name, "--image", kSpoonImage, "--volume", shared.string() + ":/data", "--", "cat",
                         "/data/hello.txt"});
  ASSERT_EQ(0, r.code) << r.err;
  EXPECT_EQ("from the host\n", r.out);

  const std::string other = Unique("novol");
  r = Env({other, "--image", kSpoonImage, "--volume", (root_.path() / "nowhere").string() + ":/data", "--", "true"});
  EXPECT_EQ(2, r.code) << r.err;
  EXPECT_TRUE(Contains(r.err, "nowhere does not exist")) << r.err;
  EXPECT_EQ("missing", State(other));
}

TEST_F(SpoonTest, CopyAndRunOnCreateInOrder) {
  WriteFile(home_ / ".ssh" / "id_ed25519.pub", "ssh-ed25519 AAAA test@host\n");
  WriteFile(home_ / "dotfiles" / ".profile", "export DOT=1\n");
  WriteFile(home_ / "dotfiles" / "nested" / "a.conf", "a\n");
  const std::string name = Unique("copy");
  CommandOutput r = Env({name, "--image", kSpoonImage, "--copy", "~/.ssh/id_ed25519.pub:/root/.ssh/authorized_keys",
                         "--copy", (home_ / "dotfiles").string() + ":/home/dev/dots", "--run",
                         "echo one > /order", "--run", "cat /root/.ssh/authorized_keys >> /order", "--run",
                         "echo three >> /order", "--", "sh", "-c",
                         "cat /order; cat /home/dev/dots/.profile /home/dev/dots/nested/a.conf"});
  ASSERT_EQ(0, r.code) << r.err;
  EXPECT_EQ("one\nssh-ed25519 AAAA test@host\nthree\nexport DOT=1\na\n", r.out);
  EXPECT_TRUE(Contains(r.err, "running: echo one > /order")) << r.err;
  // Run on creation only: entering again does not run them.
  r = Env({name, "--", "wc", "-l", "/order"});
  EXPECT_TRUE(Contains(r.out, "3 /order")) << r.out;
}

TEST_F(SpoonTest, FailingRunOnCreateStopsNamesShowsAndRemoves) {
  const std::string name = Unique("fail");
  std::vector<std::string> args = {name, "--image", kSpoonImage, "--run", "echo first",
                                   "--run", "echo oops-output >&2; exit 5", "--run", "touch /never",
                                   "--", "true"};
  CommandOutput r = Env(args);
  EXPECT_EQ(1, r.code) << r.err;
  EXPECT_TRUE(Contains(r.err, "run_on_create command 2 'echo oops-output >&2; exit 5' failed with exit code 5"))
      << r.err;
  EXPECT_TRUE(Contains(r.err, "oops-output")) << r.err;
  EXPECT_TRUE(Contains(r.err, "removed the half-made container")) << r.err;
  EXPECT_EQ("missing", State(name));

  args.insert(args.begin() + 1, "--keep");
  r = Env(args);
  EXPECT_EQ(1, r.code) << r.err;
  EXPECT_TRUE(Contains(r.err, "kept the half-made container")) << r.err;
  EXPECT_EQ("running", State(name));
  EXPECT_NE(0, Docker({"exec", Prefix() + name, "test", "-e", "/never"}).code) << "the third never ran";
}

TEST_F(SpoonTest, InterruptDuringCreationLeavesNothing) {
  const std::string name = Unique("int");
  CommandOutput r = Sh(EnvLine({name, "--image", kSpoonImage, "--run", "sleep 30", "--", "true"}) +
                       " & pid=$!; i=0; while [ $i -lt 100 ] && ! docker exec " + Prefix() + name +
                       " true 2>/dev/null; do sleep 0.1; i=$((i+1)); done; sleep 0.3; kill -INT $pid; "
                       "wait $pid; echo code=$?");
  EXPECT_TRUE(Contains(r.out, "code=130")) << r.out << r.err;
  EXPECT_EQ("missing", State(name));
}

TEST_F(SpoonTest, CommitMakesAnImage) {
  const std::string name = Unique("commit");
  ASSERT_EQ(0, Env({name, "--image", kSpoonImage, "--", "sh", "-c", "echo baked > /baked"}).code);
  const std::string image = "ladle-test-committed:" + name;
  CommandOutput r = Env({"commit", name, image});
  ASSERT_EQ(0, r.code) << r.err;
  CommandOutput inside = Docker({"run", "--rm", "--network", "none", image, "cat", "/baked"});
  EXPECT_EQ("baked\n", inside.out) << inside.err;
  Docker({"rmi", image});
}

// --- Interactive, under a tmux server of the test's own --------------------------

// The host tmux, through popen: its server daemonizes and must outlive the
// command that started it (RunCommand ends the command's whole group).
CommandOutput Tmux(const std::string& socket, const std::vector<std::string>& args) {
  std::string line = "tmux -L " + socket + " -f /dev/null";
  for (const std::string& a : args) {
    std::string q = "'";
    for (char c : a) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    line += " " + q + "'";
  }
  CommandOutput out;
  FILE* p = ::popen((line + " 2>&1").c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof(buf), p)) > 0;) out.out.append(buf, n);
  int status = ::pclose(p);
  out.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

class SpoonTerminalTest : public SpoonTest {
 protected:
  void SetUp() override {
    SpoonTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    socket_ = "ladletest" + std::to_string(::getpid());
    ASSERT_EQ(0, docker_test::Run({"sh", "-c", "command -v tmux"}).code) << "tmux is not installed (scripts/install-deps.sh --test)";
  }
  void TearDown() override {
    if (started_) Tmux(socket_, {"kill-server"});
    SpoonTest::TearDown();
  }
  // A host tmux window running `ladle env ARGS`, then "EXIT=CODE".
  void Open(const std::string& window, const std::vector<std::string>& args, int cols = 100, int rows = 30) {
    std::string cmd = EnvLine(args) + "; echo EXIT=$?; sleep 600";
    std::vector<std::string> argv;
    if (!started_) {
      argv.insert(argv.end(), {"new-session", "-d", "-s", "host", "-c", work_.string(), "-n", window, "-x", std::to_string(cols), "-y",
                               std::to_string(rows), "env TERM=xterm sh -c " + Quote(cmd)});
    } else {
      argv.insert(argv.end(), {"new-window", "-d", "-t", "host", "-c", work_.string(), "-n", window, "env TERM=xterm sh -c " + Quote(cmd)});
    }
    // Its exit status may be reaped by the test's own child reaper (pclose
    // then says -1): what tmux printed tells a failure.
    CommandOutput r = Tmux(socket_, argv);
    ASSERT_FALSE(r.code > 0) << r.out;
    started_ = true;
  }
  void Type(const std::string& window, const std::string& text) {
    Tmux(socket_, {"send-keys", "-t", "host:" + window, "-l", text});
  }
  void Key(const std::string& window, const std::string& key) {
    Tmux(socket_, {"send-keys", "-t", "host:" + window, key});
  }
  std::string Screen(const std::string& window) {
    return Tmux(socket_, {"capture-pane", "-p", "-t", "host:" + window}).out;
  }
  // Waits until the window shows `text` (up to 20 s); the screen either way.
  std::string WaitFor(const std::string& window, const std::string& text) {
    std::string screen;
    for (int i = 0; i < 200; ++i) {
      screen = Screen(window);
      if (Contains(screen, text)) return screen;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "'" << text << "' did not show in window " << window << ":\n" << screen;
    return screen;
  }

  std::string socket_;
  bool started_ = false;
};

TEST_F(SpoonTerminalTest, TypedCommandRunsInsideAndWindowSizeFollows) {
  const std::string name = Unique("tty");
  Open("a", {name, "--image", kSpoonImage, "--no-tmux"}, 100, 30);
  WaitFor("a", "#");
  Type("a", "echo in-$(hostname)-$((6*7))");
  Key("a", "Enter");
  WaitFor("a", "in-" + name + "-42");
  Type("a", "stty size");
  Key("a", "Enter");
  WaitFor("a", "30 100");
  Tmux(socket_, {"resize-window", "-t", "host:a", "-x", "80", "-y", "24"});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  Type("a", "stty size");
  Key("a", "Enter");
  WaitFor("a", "24 80");
  // Ctrl-C reaches the shell's foreground job, not ladle.
  Type("a", "sleep 100");
  Key("a", "Enter");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  Key("a", "C-c");
  Type("a", "echo after-$((1+1))");
  Key("a", "Enter");
  WaitFor("a", "after-2");
  Type("a", "exit 5");
  Key("a", "Enter");
  WaitFor("a", "EXIT=5");
  EXPECT_EQ("running", State(name)) << "the spoon outlives the shell";
}

TEST_F(SpoonTerminalTest, PairingDetachAndReattachInTmux) {
  const std::string name = Unique("pair");
  Open("a", {name, "--image", kSpoonImage});
  WaitFor("a", "[" + name);  // the tmux status line inside: "[NAME] 0:sh"
  Open("b", {name});
  WaitFor("b", "[" + name);
  Type("a", "echo typed-by-$((2*21))");
  Key("a", "Enter");
  WaitFor("a", "typed-by-42");
  WaitFor("b", "typed-by-42");  // the same session, seen from the other client

  // A long command, then detach (tmux's prefix inside the spoon): ladle ends,
  // the command goes on.
  Type("a", "while :; do date +%s > /tmp/alive; sleep 0.2; done");
  Key("a", "Enter");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  Key("b", "C-b");
  Key("b", "d");
  WaitFor("b", "EXIT=0");
  Key("a", "C-b");
  Key("a", "d");
  WaitFor("a", "EXIT=0");
  CommandOutput first = Docker({"exec", Prefix() + name, "cat", "/tmp/alive"});
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  CommandOutput second = Docker({"exec", Prefix() + name, "cat", "/tmp/alive"});
  EXPECT_NE(first.out, second.out) << "the loop still runs after both detached";

  Open("c", {name});
  WaitFor("c", "[" + name);
  Key("c", "C-c");  // stops the loop found still running
  Type("c", "echo back-$((3*3))");
  Key("c", "Enter");
  WaitFor("c", "back-9");
}

// docs/spoons.md "Commands": the terminal closes (its tmux window killed:
// SIGHUP) while attached; the spoon and what runs in it go on.
TEST_F(SpoonTerminalTest, TerminalClosedWhileAttachedLeavesTheSpoonRunning) {
  const std::string name = Unique("hup");
  Open("a", {name, "--image", kSpoonImage});
  WaitFor("a", "[" + name);
  Type("a", "while :; do date +%s > /tmp/alive; sleep 0.2; done");
  Key("a", "Enter");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  Open("keep", {"list"});  // keeps the host's tmux server up without window a
  Tmux(socket_, {"kill-window", "-t", "host:a"});
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ("running", State(name));
  CommandOutput first = Docker({"exec", Prefix() + name, "cat", "/tmp/alive"});
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  CommandOutput second = Docker({"exec", Prefix() + name, "cat", "/tmp/alive"});
  EXPECT_NE(first.out, second.out) << "the loop still runs after the terminal closed";
  Open("b", {name});
  WaitFor("b", "[" + name);  // the same tmux session, entered again
}

TEST_F(SpoonTerminalTest, DestroyWhileAttachedEndsTheShellWithAMessage) {
  const std::string name = Unique("gone");
  Open("a", {name, "--image", kSpoonImage, "--no-tmux"});
  WaitFor("a", "#");
  Type("a", "echo ready-$((1+1))");
  Key("a", "Enter");
  WaitFor("a", "ready-2");
  CommandOutput r = Env({"destroy", name, "--force"});
  EXPECT_EQ(0, r.code) << r.err;
  std::string screen = WaitFor("a", "EXIT=");
  EXPECT_TRUE(Contains(screen, "was destroyed while you were attached")) << screen;
  EXPECT_TRUE(Contains(screen, "EXIT=3")) << screen;
}

TEST_F(SpoonTerminalTest, DestroyAsksOnATerminal) {
  const std::string name = Unique("ask");
  ASSERT_EQ(0, Env({name, "--image", kSpoonImage, "--", "true"}).code);
  Open("a", {"destroy", name});
  WaitFor("a", "[y/N]");
  Type("a", "n");
  Key("a", "Enter");
  WaitFor("a", "EXIT=0");
  EXPECT_TRUE(Contains(Screen("a"), "not destroyed")) << Screen("a");
  EXPECT_EQ("running", State(name));
  Open("b", {"destroy", name});
  WaitFor("b", "[y/N]");
  Type("b", "y");
  Key("b", "Enter");
  WaitFor("b", "EXIT=0");
  EXPECT_EQ("missing", State(name));
}

}  // namespace
}  // namespace ladle::docker_test
