#include "toggles/eval/semver.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace ladle::toggles {
namespace {

bool Valid(std::string_view text) {
  Semver v;
  return ParseSemver(text, &v);
}

int Compare(std::string_view a, std::string_view b) {
  Semver x, y;
  EXPECT_TRUE(ParseSemver(a, &x)) << a;
  EXPECT_TRUE(ParseSemver(b, &y)) << b;
  return CompareSemver(x, y);
}

TEST(SemverTest, ParsesParts) {
  Semver v;
  ASSERT_TRUE(ParseSemver("1.22.333-rc.1+build.5", &v));
  EXPECT_EQ(1u, v.major);
  EXPECT_EQ(22u, v.minor);
  EXPECT_EQ(333u, v.patch);
  EXPECT_EQ("rc.1", v.prerelease);
}

TEST(SemverTest, AcceptsSemverOrgForms) {
  for (const char* s : {"0.0.0", "1.0.0", "10.20.30", "1.0.0-alpha", "1.0.0-alpha.1",
                        "1.0.0-0.3.7", "1.0.0-x.7.z.92", "1.0.0-x-y-z.--", "1.0.0+20130313144700",
                        "1.0.0-beta+exp.sha.5114f85", "1.0.0+21AF26D3---117B344092BD"}) {
    EXPECT_TRUE(Valid(s)) << s;
  }
}

TEST(SemverTest, RejectsMalformed) {
  for (const char* s : {"", "1", "1.2", "1.2.3.4", "v1.2.3", "01.2.3", "1.02.3", "1.2.03",
                        "1.2.3-", "1.2.3-01", "1.2.3-a..b", "1.2.3+", "1.2.3+a..b", "1.2.3 ",
                        "a.b.c", "1.2.-3", "1.2.3-ä", "99999999999999999999.0.0"}) {
    EXPECT_FALSE(Valid(s)) << s;
  }
}

// semver.org section 11's example chain, each lower than the next.
TEST(SemverTest, PrecedenceChain) {
  std::vector<std::string> chain = {"1.0.0-alpha",  "1.0.0-alpha.1", "1.0.0-alpha.beta",
                                    "1.0.0-beta",   "1.0.0-beta.2",  "1.0.0-beta.11",
                                    "1.0.0-rc.1",   "1.0.0",         "1.0.1",
                                    "1.1.0",        "2.0.0",         "10.0.0"};
  for (size_t i = 0; i + 1 < chain.size(); ++i) {
    EXPECT_EQ(-1, Compare(chain[i], chain[i + 1])) << chain[i] << " < " << chain[i + 1];
    EXPECT_EQ(1, Compare(chain[i + 1], chain[i])) << chain[i + 1] << " > " << chain[i];
  }
}

TEST(SemverTest, BuildMetadataIsIgnored) {
  EXPECT_EQ(0, Compare("1.0.0+a", "1.0.0+b"));
  EXPECT_EQ(0, Compare("1.0.0-rc.1+a", "1.0.0-rc.1"));
}

}  // namespace
}  // namespace ladle::toggles
