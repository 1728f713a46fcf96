#include "toggles/eval/bucketing.h"

#include <murmurhash.h>

#include <cstring>

namespace ladle::toggles {
namespace {

constexpr size_t kStackBuffer = 256;

// murmur3 of a + b + c, joined in a stack buffer so that the hot path does not
// allocate; longer inputs (rare: ids are short) fall back to the heap.
uint32_t HashJoined(std::string_view a, std::string_view b, std::string_view c, uint32_t seed) {
  const size_t n = a.size() + b.size() + c.size();
  char stack[kStackBuffer];
  std::string heap;
  char* buf = stack;
  if (n > kStackBuffer) {
    heap.resize(n);
    buf = heap.data();
  }
  // memcpy with a null source is undefined even for 0 bytes; views may be {}.
  if (!a.empty()) std::memcpy(buf, a.data(), a.size());
  if (!b.empty()) std::memcpy(buf + a.size(), b.data(), b.size());
  if (!c.empty()) std::memcpy(buf + a.size() + b.size(), c.data(), c.size());
  return Murmur3(std::string_view(buf, n), seed);
}

}  // namespace

uint32_t Murmur3(std::string_view data, uint32_t seed) {
  uint32_t out[1] = {0};
  // lmmh_x86_32 takes an unsigned length; toggle inputs are far below 4 GiB.
  lmmh_x86_32(data.data(), static_cast<unsigned int>(data.size()), seed, out);
  return out[0];
}

uint32_t NormalizedHash(std::string_view group, std::string_view id, uint32_t modulus,
                        uint32_t seed) {
  return HashJoined(group, ":", id, seed) % modulus + 1;
}

int NormalizedBucket(std::string_view group, std::string_view id) {
  return static_cast<int>(NormalizedHash(group, id, 100, kRolloutSeed));
}

int VariantBucket(std::string_view group, std::string_view id) {
  return static_cast<int>(HashJoined(group, ":", id, kVariantSeed) % 1000);
}

BucketGroup::BucketGroup(std::string_view group) : prefix_(group) { prefix_ += ':'; }

int BucketGroup::Normalized(std::string_view id) const {
  return static_cast<int>(HashJoined(prefix_, id, {}, kRolloutSeed) % 100 + 1);
}

int BucketGroup::Variant(std::string_view id) const {
  return static_cast<int>(HashJoined(prefix_, id, {}, kVariantSeed) % 1000);
}

}  // namespace ladle::toggles
