#include "cluster/shard.hpp"

#include "common/assert.hpp"

#include <algorithm>

namespace imeilock::cluster {

std::uint32_t shard_of(std::uint64_t imsi, std::uint32_t shards) {
  IMEILOCK_ASSERT(shards >= 1 && shards <= max_shards, "shard count out of range");
  auto suffix = imsi % suffix_space;
  return static_cast<std::uint32_t>(suffix * shards / suffix_space);
}

std::uint32_t shard_of_sim(std::span<const std::uint64_t> imsis, std::uint32_t shards) {
  IMEILOCK_ASSERT(!imsis.empty(), "a SIM has at least one IMSI");
  return shard_of(*std::min_element(imsis.begin(), imsis.end()), shards);
}

suffix_bounds suffix_range(std::uint32_t shard, std::uint32_t shards) {
  IMEILOCK_ASSERT(shards >= 1 && shards <= max_shards, "shard count out of range");
  IMEILOCK_ASSERT(shard < shards, "shard out of range");
  // The smallest suffix x with x * shards / space >= s is ceil(s * space / shards).
  auto first_of = [&](std::uint64_t s) {
    return static_cast<std::uint32_t>((s * suffix_space + shards - 1) / shards);
  };
  return {first_of(shard), first_of(shard + 1) - 1};
}

} // namespace imeilock::cluster
