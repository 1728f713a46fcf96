// Where the rollout hash lives: Unleash's bucketing, byte for byte, so that a
// user lands in the same bucket in ladle as in Unleash
// (docs/design.md "Toggle model and evaluation").
//
// Unleash (unleash-client-node util.ts, Yggdrasil) computes
//   normalized_hash(group, id, modulus, seed) = murmur3_x86_32("GROUP:ID", seed) % modulus + 1
// A rollout of P% holds when normalized_hash(group, id, 100, 0) <= P.
// Variants: Unleash takes target = normalized_hash(group, id, total, 86028157)
// (1..total) and picks the first variant whose running weight is >= target.
// ladle writes the same rule 0-based: bucket = murmur3(.., 86028157) % 1000
// and the first variant whose running weight is > bucket. With weights summing
// to 1000 the two pick the same variant (bucket = target - 1); VariantBucket
// follows ladle's form and returns the 0-based bucket.
//
// Ids are hashed as their UTF-8 bytes, as Yggdrasil does (Unleash's JS SDK
// hashes the low byte of each UTF-16 unit and disagrees on non-ASCII ids).
// Everything here is pure and thread-safe; nothing allocates for inputs up to
// 256 bytes.
#ifndef LADLE_TOGGLES_EVAL_BUCKETING_H_
#define LADLE_TOGGLES_EVAL_BUCKETING_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace ladle::toggles {

inline constexpr uint32_t kRolloutSeed = 0;
inline constexpr uint32_t kVariantSeed = 86028157;

// MurmurHash3 x86 32-bit (libmurmurhash's lmmh_x86_32).
uint32_t Murmur3(std::string_view data, uint32_t seed);

// Unleash's normalized_hash: murmur3("GROUP:ID", seed) % modulus + 1, in
// 1..modulus. REQUIRES: modulus > 0.
uint32_t NormalizedHash(std::string_view group, std::string_view id, uint32_t modulus,
                        uint32_t seed);

// The rollout bucket, 1..100: on at P% when the bucket is <= P.
int NormalizedBucket(std::string_view group, std::string_view id);

// The variant bucket, 0..999 (murmur3 with kVariantSeed % 1000).
int VariantBucket(std::string_view group, std::string_view id);

// A group with its "GROUP:" prefix built once, for the evaluation hot path.
class BucketGroup {
 public:
  explicit BucketGroup(std::string_view group);

  int Normalized(std::string_view id) const;  // == NormalizedBucket(group, id)
  int Variant(std::string_view id) const;     // == VariantBucket(group, id)

 private:
  std::string prefix_;  // "GROUP:"
};

}  // namespace ladle::toggles

#endif  // LADLE_TOGGLES_EVAL_BUCKETING_H_
