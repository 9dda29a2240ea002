#pragma once
// Which shard a SIM belongs to (DESIGN §6). The estate is split into a fixed
// number of shards (`cluster.shards`, the same on every node); a node serves
// the SIMs of the shards it holds a lease on (cluster/lease_manager.hpp).
//
// The shard of an IMSI is a contiguous range of its last four digits:
//
//   suffix = imsi mod 10000                  (the IMSI's last 4 digits, 0000..9999)
//   shard  = suffix * shards / 10000         (integer division)
//
// so shard s holds the suffixes [ceil(s*10000/shards), ceil((s+1)*10000/shards)),
// e.g. with 10 shards shard 3 is every IMSI ending in 3000..3999, with 4
// shards shard 1 is 2500..4999. suffix_range() gives the bounds; docs/cluster.md
// shows how a RADIUS proxy or a Diameter routing agent matches them.
//
// Why the last digits: the low digits of the MSIN are spread evenly whatever
// order the operator allocated IMSIs in (sequential blocks, per customer,
// per MNC), so every shard carries the same share of the estate; they do not
// depend on the length of the MNC (2 or 3 digits); and a routing agent
// expresses "ends in 2500..4999" as a suffix match or a regular expression on
// the IMSI it already routes by (User-Name / Calling-Station-Id in RADIUS,
// Subscription-Id / User-Name in Diameter). A modulo of the MSIN would spread
// as well but is not something routing tables can express; ranges of whole
// IMSIs can be expressed but put a block of new SIMs all in one shard.
//
// A SIM with several IMSIs (MultiNet) belongs to the shard of its lowest
// IMSI. The routing agent routes by the IMSI it sees, so an observation of
// another IMSI of that SIM may reach a node that does not own it; that node
// hands it to the owner (DESIGN §6, handoff).
//
// Pure: no I/O.

#include <cstdint>
#include <span>

namespace imeilock::cluster {

/// How many suffixes the shards split: the IMSI's last 4 digits.
inline constexpr std::uint32_t suffix_space = 10'000;
/// The most shards an estate may have (one suffix each).
inline constexpr std::uint32_t max_shards = suffix_space;

/// The shard (0..shards-1) of `imsi`. `shards` is 1..max_shards (asserted:
/// the configuration is validated before).
std::uint32_t shard_of(std::uint64_t imsi, std::uint32_t shards);

/// The shard of a SIM: that of its lowest IMSI. `imsis` must not be empty
/// (asserted: the inventory refuses a SIM without an IMSI).
std::uint32_t shard_of_sim(std::span<const std::uint64_t> imsis, std::uint32_t shards);

/// The IMSI suffixes (last 4 digits, inclusive bounds) of shard `shard`.
/// With shards <= max_shards every shard has at least one suffix.
struct suffix_bounds {
  std::uint32_t first = 0; ///< lowest suffix of the shard, 0..9999
  std::uint32_t last = 0;  ///< highest suffix of the shard, first..9999
};
suffix_bounds suffix_range(std::uint32_t shard, std::uint32_t shards);

} // namespace imeilock::cluster
