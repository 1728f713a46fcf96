// core/base/text.h: the text helpers every part shares.
#include "core/base/text.h"

#include <string>

#include <gtest/gtest.h>

namespace ladle {
namespace {

TEST(TextTest, TrimLowerAndPrefix) {
  EXPECT_EQ("a b", Trim(" \t a b\r\n"));
  EXPECT_EQ("", Trim(" \t "));
  EXPECT_EQ("abc-é", Lower("AbC-é"));
  EXPECT_TRUE(StartsWithNoCase("Bearer x", "bEARER "));
  EXPECT_FALSE(StartsWithNoCase("Bear", "Bearer"));
}

TEST(TextTest, PercentEncodingRoundTrips) {
  EXPECT_EQ("a%2Fb%20c~", PercentEncode("a/b c~"));
  std::string out;
  EXPECT_TRUE(PercentDecode("a%2Fb+c", true, &out));
  EXPECT_EQ("a/b c", out);
  EXPECT_FALSE(PercentDecode("a%2", false, &out));
  EXPECT_FALSE(PercentDecode("a%00", false, &out));
}

TEST(TextTest, JsonDepthCountsBracketsOutsideStrings) {
  EXPECT_FALSE(JsonDeeperThan("{}", 1));
  EXPECT_TRUE(JsonDeeperThan("{\"a\":[1]}", 1));
  EXPECT_FALSE(JsonDeeperThan("{\"a\":[1]}", 2));
  EXPECT_FALSE(JsonDeeperThan("[[],[],[]]", 2));  // siblings, not nesting
  // Brackets inside strings, escaped quotes included, do not count.
  EXPECT_FALSE(JsonDeeperThan(R"(["[[[[", "\"[[[[", "\\"])", 1));
  EXPECT_TRUE(JsonDeeperThan(std::string(65, '[') + std::string(65, ']'), kMaxJsonDepth));
  EXPECT_FALSE(JsonDeeperThan(std::string(64, '[') + std::string(64, ']'), kMaxJsonDepth));
}

}  // namespace
}  // namespace ladle
