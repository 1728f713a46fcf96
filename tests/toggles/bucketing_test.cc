#include "toggles/eval/bucketing.h"

#include <string>

#include <gtest/gtest.h>

namespace ladle::toggles {
namespace {

TEST(Murmur3Test, MatchesReferenceImplementation) {
  EXPECT_EQ(613153351u, Murmur3("hello", 0));
  EXPECT_EQ(531314519u, Murmur3("my-feature:user-123", 0));
  EXPECT_EQ(0u, Murmur3("", 0));
}

// Unleash client-specification 10-flexible-rollout-strategy.json.
TEST(NormalizedBucketTest, UnleashFlexibleRolloutVectors) {
  EXPECT_EQ(10, NormalizedBucket("Feature.flexibleRollout.10", "174"));  // on at 10%
  EXPECT_EQ(32, NormalizedBucket("Feature.flexibleRollout.10", "499"));  // off at 10%
  EXPECT_EQ(55, NormalizedBucket("Feature.flexibleRollout.userId.55", "25"));
  EXPECT_EQ(42, NormalizedBucket("Feature.flexibleRollout.sessionId.42", "147"));
}

// Unleash client-specification 08-variants.json: normalized_hash with the
// variant seed and the total weight as modulus.
TEST(NormalizedHashTest, UnleashVariantVectors) {
  EXPECT_EQ(2u, NormalizedHash("Feature.Variants.B", "2", 2, kVariantSeed));
  EXPECT_EQ(1u, NormalizedHash("Feature.Variants.B", "0", 2, kVariantSeed));
  EXPECT_EQ(18u, NormalizedHash("Feature.Variants.C", "232", 99, kVariantSeed));
  EXPECT_EQ(58u, NormalizedHash("Feature.Variants.C", "607", 99, kVariantSeed));
  EXPECT_EQ(94u, NormalizedHash("Feature.Variants.C", "656", 99, kVariantSeed));
}

TEST(NormalizedBucketTest, MoreVectors) {
  EXPECT_EQ(20, NormalizedBucket("my-feature", "user-123"));
  EXPECT_EQ(42, NormalizedBucket("checkout-v2", "42"));
  EXPECT_EQ(63, NormalizedBucket("", "abc"));
}

// ladle's 0-based bucket is Unleash's 1-based target minus one
// (docs/design.md "Toggle model and evaluation").
TEST(VariantBucketTest, IsUnleashTargetMinusOne) {
  EXPECT_EQ(217, VariantBucket("my-feature", "user-123"));  // Unleash: 218
  EXPECT_EQ(164, VariantBucket("checkout-v2", "42"));       // 165
  EXPECT_EQ(514, VariantBucket("", "abc"));                 // 515
  for (int i = 0; i < 1000; ++i) {
    std::string id = "u" + std::to_string(i);
    EXPECT_EQ(NormalizedHash("g", id, 1000, kVariantSeed) - 1,
              static_cast<uint32_t>(VariantBucket("g", id)));
  }
}

// Yggdrasil hashes UTF-8 bytes; unleash's JS SDK would give 6 here.
TEST(NormalizedBucketTest, HashesUtf8Bytes) {
  EXPECT_EQ(88, NormalizedBucket("grp", "\xc3\xb8"));  // "ø"
  EXPECT_EQ(Murmur3("grp:\xc3\xb8", 0) % 100 + 1, 88u);
}

TEST(BucketGroupTest, AgreesWithFreeFunctions) {
  BucketGroup group("Feature.flexibleRollout.10");
  EXPECT_EQ(10, group.Normalized("174"));
  EXPECT_EQ(32, group.Normalized("499"));
  for (int i = 0; i < 200; ++i) {
    std::string id = "id-" + std::to_string(i);
    EXPECT_EQ(NormalizedBucket("Feature.flexibleRollout.10", id), group.Normalized(id));
    EXPECT_EQ(VariantBucket("Feature.flexibleRollout.10", id), group.Variant(id));
  }
}

// Past the stack buffer the hash falls back to the heap: same answer.
TEST(BucketGroupTest, LongInputsHashTheWholeText) {
  std::string group(200, 'g'), id(300, 'i');
  EXPECT_EQ(Murmur3(group + ":" + id, 0) % 100 + 1,
            static_cast<uint32_t>(NormalizedBucket(group, id)));
  EXPECT_EQ(NormalizedBucket(group, id), BucketGroup(group).Normalized(id));
}

TEST(NormalizedBucketTest, SpreadsEvenly) {
  int at_most_25 = 0;
  for (int i = 0; i < 10000; ++i) {
    int b = NormalizedBucket("spread", "user-" + std::to_string(i));
    ASSERT_GE(b, 1);
    ASSERT_LE(b, 100);
    at_most_25 += b <= 25;
  }
  EXPECT_NEAR(2500, at_most_25, 200);
}

}  // namespace
}  // namespace ladle::toggles
