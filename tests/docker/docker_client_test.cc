// env/docker_client: DOCKER_HOST, the log stream framing, image references
// and the messages for a daemon that is not there (no daemon needed), then
// a few calls against the real daemon.
#include "env/docker_client.h"

#include <gtest/gtest.h>

#include <errno.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "tests/docker/docker_test_util.h"

namespace ladle::env {
namespace {

using docker_test::TempDir;

TEST(ParseDockerHostTest, UnixSocket) {
  DockerEndpoint ep;
  ASSERT_TRUE(ParseDockerHost("unix:///run/podman/podman.sock", &ep).ok());
  EXPECT_EQ("/run/podman/podman.sock", ep.socket_path);
  EXPECT_EQ("http://localhost", ep.base_url);
  EXPECT_EQ("unix:///run/podman/podman.sock", ep.host);
}

TEST(ParseDockerHostTest, EmptyIsTheDefaultSocket) {
  DockerEndpoint ep;
  ASSERT_TRUE(ParseDockerHost("", &ep).ok());
  EXPECT_EQ("/var/run/docker.sock", ep.socket_path);
  EXPECT_EQ("unix:///var/run/docker.sock", ep.host);
}

TEST(ParseDockerHostTest, TcpWithAndWithoutPort) {
  DockerEndpoint ep;
  ASSERT_TRUE(ParseDockerHost("tcp://127.0.0.1:2376", &ep).ok());
  EXPECT_EQ("http://127.0.0.1:2376", ep.base_url);
  EXPECT_TRUE(ep.socket_path.empty());
  ASSERT_TRUE(ParseDockerHost("tcp://localhost", &ep).ok());
  EXPECT_EQ("http://localhost:2375", ep.base_url);
  ASSERT_TRUE(ParseDockerHost("tcp://[::1]:2375/", &ep).ok());
  EXPECT_EQ("http://[::1]:2375", ep.base_url);
}

TEST(ParseDockerHostTest, OtherSchemesAreRefusedByName) {
  DockerEndpoint ep;
  Status s = ParseDockerHost("npipe:////./pipe/docker_engine", &ep);  // ssh:// is spoken (env/ssh_tunnel.h)
  EXPECT_EQ(Code::kInvalid, s.code());
  EXPECT_NE(std::string::npos, s.message().find("DOCKER_HOST 'npipe:////./pipe/docker_engine'")) << s.message();
  EXPECT_EQ(Code::kInvalid, ParseDockerHost("unix://relative.sock", &ep).code());
  EXPECT_EQ(Code::kInvalid, ParseDockerHost("tcp://", &ep).code());
}

TEST(CompareApiVersionsTest, NumericNotLexical) {
  EXPECT_LT(CompareApiVersions("1.9", "1.41"), 0);
  EXPECT_GT(CompareApiVersions("1.43", "1.41"), 0);
  EXPECT_EQ(0, CompareApiVersions("1.41", "1.41"));
  EXPECT_LT(CompareApiVersions("junk", "1.12"), 0);
}

TEST(SplitImageReferenceTest, TagsDigestsAndRegistryPorts) {
  std::string name, tag;
  SplitImageReference("busybox", &name, &tag);
  EXPECT_EQ("busybox", name);
  EXPECT_EQ("latest", tag);
  SplitImageReference("127.0.0.1:5000/ladle/busybox:pulltest", &name, &tag);
  EXPECT_EQ("127.0.0.1:5000/ladle/busybox", name);
  EXPECT_EQ("pulltest", tag);
  SplitImageReference("127.0.0.1:5000/ladle/busybox", &name, &tag);
  EXPECT_EQ("127.0.0.1:5000/ladle/busybox", name);
  EXPECT_EQ("latest", tag);
  SplitImageReference("alpine@sha256:abcd", &name, &tag);
  EXPECT_EQ("alpine", name);
  EXPECT_EQ("sha256:abcd", tag);
}

std::string Frame(int stream, const std::string& payload) {
  std::string f(8, '\0');
  f[0] = static_cast<char>(stream);
  uint32_t n = static_cast<uint32_t>(payload.size());
  f[4] = static_cast<char>(n >> 24);
  f[5] = static_cast<char>(n >> 16);
  f[6] = static_cast<char>(n >> 8);
  f[7] = static_cast<char>(n);
  return f + payload;
}

struct Demuxed {
  std::string out, err, order;  // order: "o"/"e" per callback
};

Demuxed Demux(const std::string& stream, size_t chunk) {
  Demuxed d;
  LogDemuxer demux([&](OutputStream s, std::string_view data) {
    (s == OutputStream::kStdout ? d.out : d.err).append(data);
    d.order += s == OutputStream::kStdout ? "o" : "e";
  });
  for (size_t i = 0; i < stream.size(); i += chunk) demux.Feed(std::string_view(stream).substr(i, chunk));
  EXPECT_FALSE(demux.MidFrame());
  return d;
}

TEST(LogDemuxerTest, SplitsStreamsWhateverTheChunking) {
  std::string stream = Frame(1, "out one\n") + Frame(2, "err one\n") + Frame(1, "") + Frame(1, "out two\n");
  for (size_t chunk : {1u, 3u, 8u, 9u, 1000u}) {
    Demuxed d = Demux(stream, chunk);
    EXPECT_EQ("out one\nout two\n", d.out) << "chunk " << chunk;
    EXPECT_EQ("err one\n", d.err) << "chunk " << chunk;
  }
  EXPECT_EQ("oeo", Demux(stream, 1000).order) << "time order across the streams is kept";
}

TEST(LogDemuxerTest, PassesPayloadOnBeforeTheFrameIsComplete) {
  std::string big(100000, 'x');
  std::string stream = Frame(2, big);
  size_t calls = 0, bytes = 0;
  LogDemuxer demux([&](OutputStream s, std::string_view data) {
    EXPECT_EQ(OutputStream::kStderr, s);
    calls++;
    bytes += data.size();
  });
  demux.Feed(std::string_view(stream).substr(0, 5000));
  EXPECT_EQ(4992u, bytes) << "what arrived is passed on at once";
  EXPECT_TRUE(demux.MidFrame());
  demux.Feed(std::string_view(stream).substr(5000));
  EXPECT_EQ(big.size(), bytes);
  EXPECT_FALSE(demux.MidFrame());
}

TEST(LogDemuxerTest, StreamThreeIsADaemonErrorNotOutput) {
  Demuxed d;
  LogDemuxer demux([&](OutputStream s, std::string_view data) { d.out.append(data); });
  demux.Feed(Frame(1, "fine\n") + Frame(3, "log file is gone"));
  EXPECT_EQ("fine\n", d.out);
  EXPECT_EQ("log file is gone", demux.daemon_error());
}

TEST(DescribeConnectErrorTest, SaysWhatToDo) {
  DockerEndpoint ep;
  ASSERT_TRUE(ParseDockerHost("unix:///var/run/docker.sock", &ep).ok());
  EXPECT_EQ(
      "docker daemon at unix:///var/run/docker.sock: connection refused (is dockerd running? start "
      "it, or use --backend local)",
      DescribeConnectError(ep, ECONNREFUSED, "Couldn't connect to server", false));
  EXPECT_EQ("permission denied on /var/run/docker.sock (add yourself to the docker group or run as root)",
            DescribeConnectError(ep, EACCES, "", false));
  EXPECT_NE(std::string::npos, DescribeConnectError(ep, ENOENT, "", false).find("no such socket"));
}

TEST(DockerClientTest, NoSocketFileIsUnavailableWithAdvice) {
  TempDir dir;
  DockerEndpoint ep;
  ASSERT_TRUE(ParseDockerHost("unix://" + dir.str() + "/nothing.sock", &ep).ok());
  std::unique_ptr<DockerClient> client;
  Status s = DockerClient::Connect(ep, std::chrono::milliseconds(500), &client);
  EXPECT_EQ(Code::kUnavailable, s.code());
  EXPECT_EQ(3, s.ExitCode());
  EXPECT_NE(std::string::npos, s.message().find("no such socket (is dockerd running?")) << s.message();
}

// A socket file that is bound but not listening: connect() is refused.
TEST(DockerClientTest, RefusedConnectionIsUnavailableWithAdvice) {
  TempDir dir;
  std::string path = dir.str() + "/dead.sock";
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
  ASSERT_EQ(0, ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)));
  DockerEndpoint ep;
  ASSERT_TRUE(ParseDockerHost("unix://" + path, &ep).ok());
  std::unique_ptr<DockerClient> client;
  Status s = DockerClient::Connect(ep, std::chrono::milliseconds(500), &client);
  ::close(fd);
  EXPECT_EQ(Code::kUnavailable, s.code());
  EXPECT_EQ("docker daemon at unix://" + path +
                ": connection refused (is dockerd running? start it, or use --backend local)",
            s.message());
}

// A listening socket that only root may use, tried as nobody (in a child,
// since the test process must stay root).
TEST(DockerClientTest, SocketWithoutPermissionSaysWhichGroup) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to try the socket as another user";
  TempDir dir;
  ::chmod(dir.str().c_str(), 0755);
  std::string path = dir.str() + "/root-only.sock";
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
  ASSERT_EQ(0, ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)));
  ASSERT_EQ(0, ::listen(fd, 4));
  ASSERT_EQ(0, ::chmod(path.c_str(), 0600));
  int pipefd[2];
  ASSERT_EQ(0, ::pipe(pipefd));
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(pipefd[0]);
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) _exit(2);
    DockerEndpoint ep;
    std::unique_ptr<DockerClient> client;
    Status s = ParseDockerHost("unix://" + path, &ep);
    if (s.ok()) s = DockerClient::Connect(ep, std::chrono::milliseconds(500), &client);
    std::string msg = std::to_string(static_cast<int>(s.code())) + " " + s.message();
    (void)!::write(pipefd[1], msg.data(), msg.size());
    _exit(0);
  }
  ::close(pipefd[1]);
  std::string got;
  char buf[512];
  for (ssize_t n; (n = ::read(pipefd[0], buf, sizeof(buf))) > 0;) got.append(buf, n);
  ::close(pipefd[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(fd);
  EXPECT_EQ(std::to_string(static_cast<int>(Code::kUnavailable)) + " permission denied on " + path +
                " (add yourself to the docker group or run as root)",
            got);
}

TEST(DockerClientTest, NegotiatesAVersionNoNewerThanOurs) {
  LADLE_REQUIRE_DOCKER();
  auto client = docker_test::Client();
  ASSERT_NE(nullptr, client);
  EXPECT_LE(CompareApiVersions(client->api_version(), DockerClient::kMaxApiVersion), 0);
  EXPECT_GE(CompareApiVersions(client->api_version(), DockerClient::kMinApiVersion), 0);
  DockerResponse r;
  ASSERT_TRUE(client->Call("GET", "/version", "", &r).ok());
  EXPECT_EQ(200, r.status);
}

TEST(DockerClientTest, MissingThingsAreNotFoundOrHarmless) {
  LADLE_REQUIRE_DOCKER();
  auto client = docker_test::Client();
  ASSERT_NE(nullptr, client);
  bool exists = true;
  ASSERT_TRUE(client->ImageExists("ladle-no-such-image:never", &exists).ok());
  EXPECT_FALSE(exists);
  EXPECT_TRUE(client->RemoveContainer("ladle-no-such-container").ok()) << "removing twice is fine";
  EXPECT_TRUE(client->KillContainer("ladle-no-such-container", 15).ok());
  std::string id;
  Status s = client->CreateContainer("ladle-test-missing-image", {{"Image", "ladle-no-such-image:never"}}, &id);
  EXPECT_EQ(Code::kNotFound, s.code()) << s.ToString();
}

// The attach stream is read, not the logs: a container whose logging driver
// keeps nothing ("none": /logs refuses it) still has its whole output, each
// stream apart, from the first byte (attached before it started).
TEST(DockerClientTest, AttachedBeforeStartGetsAllOutputWithoutTheLogs) {
  LADLE_REQUIRE_DOCKER();
  auto client = docker_test::Client();
  ASSERT_NE(nullptr, client);
  const std::string name = "ladle-test-attach-" + std::to_string(getpid());
  client->RemoveContainer(name).IgnoreError();  // a leftover of a crashed run
  nlohmann::json config = {
      {"Image", docker_test::kTestImage},
      {"Cmd", {"sh", "-c", "echo first; echo oops >&2; yes 0123456789 | head -c 3000000"}},
      {"HostConfig", {{"NetworkMode", "none"}, {"LogConfig", {{"Type", "none"}}}}}};
  std::string id;
  ASSERT_TRUE(client->CreateContainer(name, config, &id).ok());
  std::unique_ptr<AttachedOutput> output;
  Status s = client->AttachOutput(id, &output);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_TRUE(client->StartContainer(id).ok());
  std::string out, err;
  s = output->Follow([&](OutputStream stream, std::string_view d) {
    (stream == OutputStream::kStderr ? err : out).append(d);
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ("oops\n", err);
  EXPECT_EQ(6u + 3000000u, out.size());
  EXPECT_EQ(0u, out.rfind("first\n0123456789\n", 0));
  int code = -1;
  EXPECT_TRUE(client->WaitContainer(id, &code).ok());
  EXPECT_EQ(0, code);
  EXPECT_FALSE(client->FollowLogs(id, nullptr).ok()) << "the logs of driver 'none' cannot be read";
  EXPECT_TRUE(client->RemoveContainer(id).ok());
}

TEST(DockerClientTest, AttachingToAMissingContainerIsNotFound) {
  LADLE_REQUIRE_DOCKER();
  auto client = docker_test::Client();
  ASSERT_NE(nullptr, client);
  std::unique_ptr<AttachedOutput> output;
  Status s = client->AttachOutput("ladle-no-such-container", &output);
  EXPECT_EQ(Code::kNotFound, s.code()) << s.ToString();
  EXPECT_EQ(nullptr, output);
}

}  // namespace
}  // namespace ladle::env
