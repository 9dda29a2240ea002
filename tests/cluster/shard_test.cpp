#include "cluster/shard.hpp"

#include <catch2/catch.hpp>

#include <map>
#include <vector>

using namespace imeilock;

TEST_CASE("a SIM's shard is the range its IMSI's last four digits fall in") {
  // 10 shards: the thousands digit of the suffix.
  CHECK(cluster::shard_of(234150000000000, 10) == 0);
  CHECK(cluster::shard_of(234150000003999, 10) == 3);
  CHECK(cluster::shard_of(234150000004000, 10) == 4);
  CHECK(cluster::shard_of(234159999999999, 10) == 9);
  // 4 shards: 0000-2499, 2500-4999, 5000-7499, 7500-9999.
  CHECK(cluster::shard_of(310260000002499, 4) == 0);
  CHECK(cluster::shard_of(310260000002500, 4) == 1);
  CHECK(cluster::shard_of(310260000007499, 4) == 2);
  CHECK(cluster::shard_of(310260000007500, 4) == 3);
  // One shard holds everything; the digits before the suffix never matter.
  CHECK(cluster::shard_of(1234, 1) == 0);
  CHECK(cluster::shard_of(999990000001234, 8) == cluster::shard_of(1234, 8));
}

TEST_CASE("every shard's suffix range is contiguous, and the ranges cover 0000-9999 once") {
  for (std::uint32_t shards : {1u, 2u, 3u, 7u, 8u, 10u, 16u, 64u, 1000u, 3333u, 10000u}) {
    std::uint32_t next = 0;
    for (std::uint32_t s = 0; s < shards; ++s) {
      auto r = cluster::suffix_range(s, shards);
      INFO("shards " << shards << " shard " << s);
      REQUIRE(r.first == next);
      REQUIRE(r.last >= r.first);
      // The function and the documented ranges agree at both ends.
      CHECK(cluster::shard_of(r.first, shards) == s);
      CHECK(cluster::shard_of(r.last, shards) == s);
      next = r.last + 1;
    }
    CHECK(next == cluster::suffix_space);
  }
  CHECK(cluster::suffix_range(3, 8).first == 3750);
  CHECK(cluster::suffix_range(3, 8).last == 4999);
}

TEST_CASE("sequentially allocated IMSIs spread evenly over the shards") {
  std::map<std::uint32_t, int> count;
  for (std::uint64_t imsi = 234150012340000; imsi < 234150012340000 + 80'000; ++imsi)
    ++count[cluster::shard_of(imsi, 8)];
  REQUIRE(count.size() == 8);
  for (const auto& [shard, n] : count)
    CHECK(n == 10'000);
}

TEST_CASE("a SIM with several IMSIs belongs to the shard of its lowest IMSI") {
  std::vector<std::uint64_t> imsis{234150000007777, 208010000001111, 901280000005555};
  CHECK(cluster::shard_of_sim(imsis, 10) == 1); // 208010000001111 is the lowest
  std::vector<std::uint64_t> one{234150000007777};
  CHECK(cluster::shard_of_sim(one, 10) == 7);
}
