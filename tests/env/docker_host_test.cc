// DOCKER_HOST forms beyond unix:// and plain tcp:// (env/docker_client.h,
// env/ssh_tunnel.h; docs/spoons.md "A shared host over ssh", "A shared host
// over tcp and TLS"). No daemon needed.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "env/docker_client.h"
#include "env/ssh_tunnel.h"
#include "tests/test_util.h"

namespace ladle::env {
namespace {

namespace fs = std::filesystem;

class TlsHostTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir("/tmp/ladle-tls-host-XXXXXX");
    for (const char* f : {"ca.pem", "cert.pem", "key.pem"}) std::ofstream(dir_ / f) << "x";
    tls_.cert_path = dir_.string();
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
  DockerTlsEnvironment tls_;
};

TEST_F(TlsHostTest, PlainTcpWithoutTlsVariables) {
  DockerEndpoint ep;
  ASSERT_TRUE(ParseDockerHost("tcp://127.0.0.1", tls_, &ep).ok());
  EXPECT_FALSE(ep.tls);
  EXPECT_EQ("http://127.0.0.1:2375", ep.base_url);
}

TEST_F(TlsHostTest, TlsVerifyMeansHttpsPort2376AndTheThreeFiles) {
  tls_.tls_verify = "1";
  DockerEndpoint ep;
  ASSERT_TRUE(ParseDockerHost("tcp://build.example", tls_, &ep).ok());
  EXPECT_TRUE(ep.tls);
  EXPECT_TRUE(ep.tls_verify);
  EXPECT_EQ("https://build.example:2376", ep.base_url);
  EXPECT_EQ((dir_ / "ca.pem").string(), ep.ca_file);
  EXPECT_EQ((dir_ / "cert.pem").string(), ep.cert_file);
  EXPECT_EQ((dir_ / "key.pem").string(), ep.key_file);
  ASSERT_TRUE(ParseDockerHost("tcp://build.example:12376", tls_, &ep).ok());
  EXPECT_EQ("https://build.example:12376", ep.base_url);
}

TEST_F(TlsHostTest, DockerTlsAloneDoesNotVerify) {
  tls_.tls = "1";
  DockerEndpoint ep;
  ASSERT_TRUE(ParseDockerHost("tcp://h:2376", tls_, &ep).ok());
  EXPECT_TRUE(ep.tls);
  EXPECT_FALSE(ep.tls_verify);
  fs::remove(dir_ / "ca.pem");  // no CA needed without verification
  ASSERT_TRUE(ParseDockerHost("tcp://h:2376", tls_, &ep).ok());
  EXPECT_EQ("", ep.ca_file);
}

TEST_F(TlsHostTest, MissingCertificateIsNamed) {
  tls_.tls_verify = "1";
  fs::remove(dir_ / "ca.pem");
  DockerEndpoint ep;
  Status s = ParseDockerHost("tcp://h:2376", tls_, &ep);
  EXPECT_EQ(Code::kInvalid, s.code());
  EXPECT_NE(std::string::npos, s.message().find((dir_ / "ca.pem").string())) << s.message();
  std::ofstream(dir_ / "ca.pem") << "x";
  fs::remove(dir_ / "key.pem");
  s = ParseDockerHost("tcp://h:2376", tls_, &ep);
  EXPECT_EQ(Code::kInvalid, s.code());
  EXPECT_NE(std::string::npos, s.message().find((dir_ / "key.pem").string())) << s.message();
}

TEST_F(TlsHostTest, CertPathDefaultsToDotDockerInHome) {
  tls_.tls_verify = "1";
  tls_.cert_path = "";
  tls_.home = (dir_ / "nohome").string();
  DockerEndpoint ep;
  Status s = ParseDockerHost("tcp://h", tls_, &ep);
  EXPECT_EQ(Code::kInvalid, s.code());
  EXPECT_NE(std::string::npos, s.message().find(tls_.home + "/.docker/ca.pem")) << s.message();
  EXPECT_NE(std::string::npos, s.message().find("~/.docker")) << s.message();
}

TEST(SshHostTest, UserHostPort) {
  DockerEndpoint ep;
  ASSERT_TRUE(ParseDockerHost("ssh://dev@build.example:2222", DockerTlsEnvironment{}, &ep).ok());
  EXPECT_EQ("dev", ep.ssh_user);
  EXPECT_EQ("build.example", ep.ssh_host);
  EXPECT_EQ(2222, ep.ssh_port);
  EXPECT_EQ("", ep.socket_path);  // set by Connect, once the tunnel is up
  EXPECT_EQ("ssh://dev@build.example:2222", ep.host);
  ASSERT_TRUE(ParseDockerHost("ssh://box", DockerTlsEnvironment{}, &ep).ok());
  EXPECT_EQ("", ep.ssh_user);
  EXPECT_EQ("box", ep.ssh_host);
  EXPECT_EQ(0, ep.ssh_port);
}

TEST(SshHostTest, MalformedIsInvalidNamingTheHost) {
  DockerEndpoint ep;
  for (const char* bad : {"ssh://", "ssh://me@", "ssh://-oProxyCommand=x", "ssh://-x@h", "ssh://h:0",
                          "ssh://h:99999", "ssh://h/var/run/docker.sock", "ssh://h:", "ssh://a b"}) {
    Status s = ParseDockerHost(bad, DockerTlsEnvironment{}, &ep);
    EXPECT_EQ(Code::kInvalid, s.code()) << bad;
    EXPECT_NE(std::string::npos, s.message().find(std::string("'") + bad + "'")) << s.message();
  }
}

TEST(SshUrlTest, Ipv6AndDestination) {
  SshTarget t;
  ASSERT_TRUE(ParseSshUrl("ssh://root@[::1]:22", "--host", &t).ok());
  EXPECT_EQ("::1", t.host);
  EXPECT_EQ(22, t.port);
  EXPECT_EQ("root@::1", t.Destination());
}

TEST(SshTunnelTest, SshThatFailsGivesItsOwnWords) {
  // A command standing in for ssh that fails at once, as ssh does on a
  // refused key: its stderr is the message.
  ::setenv("LADLE_SSH_COMMAND", "echo 'Permission denied (publickey).' >&2; exit 255; :", 1);
  std::unique_ptr<SshTunnel> tunnel;
  Status s = SshTunnel::ForwardSocket(SshTarget{"me", "127.0.0.1", 0}, SshTunnel::kRemoteDockerSocket,
                                      std::chrono::seconds(10), &tunnel);
  ::unsetenv("LADLE_SSH_COMMAND");
  EXPECT_EQ(Code::kUnavailable, s.code());
  EXPECT_NE(std::string::npos, s.message().find("Permission denied (publickey).")) << s.message();
  EXPECT_NE(std::string::npos, s.message().find("exit 255")) << s.message();
}

TEST(SshTunnelTest, ConnectThroughAFailingSshNamesTheDaemon) {
  ::setenv("LADLE_SSH_COMMAND", "echo 'ssh: connect to host 127.0.0.1 port 1: Connection refused' >&2; exit 255; :", 1);
  DockerEndpoint ep;
  ASSERT_TRUE(ParseDockerHost("ssh://me@127.0.0.1:1", DockerTlsEnvironment{}, &ep).ok());
  std::unique_ptr<DockerClient> client;
  Status s = DockerClient::Connect(ep, std::chrono::seconds(5), &client);
  ::unsetenv("LADLE_SSH_COMMAND");
  EXPECT_EQ(Code::kUnavailable, s.code());
  EXPECT_NE(std::string::npos, s.message().find("docker daemon at ssh://me@127.0.0.1:1")) << s.message();
  EXPECT_NE(std::string::npos, s.message().find("Connection refused")) << s.message();
}

}  // namespace
}  // namespace ladle::env
