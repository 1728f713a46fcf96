// The texts ladle prints about a daemon, worked out from its answers alone
// (no daemon needed): Podman's missing init binary, and which CLI to name.
#include <gtest/gtest.h>

#include <string>

#include "env/docker_client.h"

namespace ladle::env {
namespace {

bool Has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(ExplainDaemonErrorTest, PodmanWithoutCatatonitNamesThePackage) {
  // Podman 4.3 (Debian 12), POST /containers/{id}/start with HostConfig.Init.
  const std::string stat_error =
      "container-init binary not found on the host: stat /usr/libexec/podman/catatonit: no such file or directory";
  std::string text = ExplainDaemonError(stat_error);
  EXPECT_TRUE(Has(text, stat_error)) << text;
  EXPECT_TRUE(Has(text, "apt-get install catatonit")) << text;

  text = ExplainDaemonError("lookup init binary: exec: \"catatonit\": executable file not found in $PATH");
  EXPECT_TRUE(Has(text, "apt-get install catatonit")) << text;
}

TEST(ExplainDaemonErrorTest, OtherErrorsAreLeftAlone) {
  EXPECT_EQ("No such image: busybox:latest", ExplainDaemonError("No such image: busybox:latest"));
  EXPECT_EQ("", ExplainDaemonError(""));
}

TEST(DaemonCliFromVersionTest, PodmanByPlatformOrComponent) {
  EXPECT_EQ("podman", DaemonCliFromVersion(
                          R"({"Platform":{"Name":"linux/amd64/debian-12"},"Components":[{"Name":"Podman Engine","Version":"4.3.1"}],"ApiVersion":"1.41"})"));
  EXPECT_EQ("podman", DaemonCliFromVersion(R"({"Platform":{"Name":"Podman Engine"}})"));
}

TEST(DaemonCliFromVersionTest, DockerAndAnythingElse) {
  EXPECT_EQ("docker", DaemonCliFromVersion(
                          R"({"Platform":{"Name":"Docker Engine - Community"},"Components":[{"Name":"Engine","Version":"20.10.24"}]})"));
  EXPECT_EQ("docker", DaemonCliFromVersion("not json"));
  EXPECT_EQ("docker", DaemonCliFromVersion(R"({"Platform":"x","Components":{"Name":"Podman"}})"));
  EXPECT_EQ("docker", DaemonCliFromVersion("[]"));
}

}  // namespace
}  // namespace ladle::env
