// The compact inventory index (no actors).
#include "actors/inventory.hpp"
#include "actors/sim_layer_config.hpp"
#include "config/section.hpp"

#include <catch2/catch.hpp>

#include <random>
#include <unordered_map>

using namespace imeilock;
using actors::no_sim;

TEST_CASE("u64_map agrees with std::unordered_map under inserts, overwrites and erases",
          "[inventory]") {
  actors::u64_map m;
  std::unordered_map<std::uint64_t, std::uint32_t> ref;
  std::mt19937_64 gen{42};
  for (int i = 0; i < 200000; ++i) {
    auto key = 1 + gen() % 5000;
    auto op = gen() % 3;
    if (op == 2) {
      m.erase(key);
      ref.erase(key);
    } else {
      auto v = static_cast<std::uint32_t>(gen());
      m.put(key, v);
      ref[key] = v;
    }
  }
  CHECK(m.size() == ref.size());
  for (std::uint64_t k = 1; k <= 5000; ++k) {
    auto it = ref.find(k);
    auto got = m.find(k);
    if (it == ref.end())
      CHECK_FALSE(got);
    else
      CHECK(got == it->second);
  }
}

TEST_CASE("the inventory maps IMSIs and ICCIDs to SIMs and interns networks", "[inventory]") {
  actors::inventory inv{lock::eligibility_config{}};
  std::uint64_t a[] = {234150000000001, 234150000000002};
  std::uint64_t b[] = {234150000000003};
  auto s1 = inv.add("89440000000000000011", "multinet", a);
  auto s2 = inv.add("89440000000000000029", "unknown_net", b);
  CHECK(s1 != s2);
  CHECK(inv.by_imsi(234150000000002) == s1);
  CHECK(inv.by_imsi(234150000000003) == s2);
  CHECK(inv.by_imsi(234150000000004) == no_sim);
  CHECK(inv.by_iccid("89440000000000000029") == s2);
  CHECK(inv.by_iccid("89440000000000000037") == no_sim);
  CHECK(inv.iccid(s1) == "89440000000000000011");
  CHECK(inv.policy(inv.intern("multinet")).lock_eligible);
  CHECK_FALSE(inv.policy(inv.intern("unknown_net")).lock_eligible);
  CHECK(inv.conflicts(s2, a).size() == 2);
  CHECK(inv.conflicts(s1, a).empty());
  std::uint64_t c[] = {234150000000009};
  inv.set_imsis(s1, c);
  CHECK(inv.by_imsi(234150000000001) == no_sim);
  CHECK(inv.by_imsi(234150000000002) == no_sim);
  CHECK(inv.by_imsi(234150000000009) == s1);
}

TEST_CASE("the inventory knows each SIM's IMSIs in order, so no actor reads them from the store",
          "[inventory]") {
  actors::inventory inv{lock::eligibility_config{}};
  std::uint64_t two[] = {234150000000002, 234150000000001};
  std::uint64_t one[] = {234150000000003};
  auto s1 = inv.add("89440000000000000011", "multinet", two);
  auto s2 = inv.add("89440000000000000029", "multinet", one);
  auto s3 = inv.add("89440000000000000037", "multinet", {}); // an upsert not committed yet
  CHECK(inv.imsis(s1) == std::vector<std::uint64_t>{234150000000002, 234150000000001});
  CHECK(inv.first_imsi(s1) == 234150000000002);
  CHECK(inv.imsis(s2) == std::vector<std::uint64_t>{234150000000003});
  CHECK(inv.imsis(s3).empty());
  CHECK(inv.first_imsi(s3) == 0);
  CHECK(inv.imsis(no_sim).empty());
  CHECK(inv.first_imsi(no_sim) == 0);

  // Replacing a set releases exactly the IMSIs the SIM had, whatever their number.
  std::uint64_t three[] = {234150000000007, 234150000000008, 234150000000009};
  inv.set_imsis(s2, three);
  CHECK(inv.imsis(s2) ==
        std::vector<std::uint64_t>{234150000000007, 234150000000008, 234150000000009});
  CHECK(inv.by_imsi(234150000000003) == no_sim);
  inv.set_imsis(s1, one);
  CHECK(inv.imsis(s1) == std::vector<std::uint64_t>{234150000000003});
  CHECK(inv.by_imsi(234150000000001) == no_sim);
  CHECK(inv.by_imsi(234150000000002) == no_sim);
  CHECK(inv.by_imsi(234150000000003) == s1);
  inv.set_imsis(s3, two);
  CHECK(inv.first_imsi(s3) == 234150000000002);
  CHECK(inv.by_imsi(234150000000001) == s3);
  inv.set_imsis(s2, {});
  CHECK(inv.imsis(s2).empty());
  CHECK(inv.by_imsi(234150000000008) == no_sim);
  CHECK(inv.by_imsi(234150000000003) == s1);
}

TEST_CASE("an IMSI 0 from a damaged store row is not indexed and aborts nothing", "[inventory]") {
  actors::inventory inv{lock::eligibility_config{}};
  std::uint64_t imsis[] = {0, 234150000000001};
  auto id = inv.add("89440000000000000011", "multinet", imsis);
  CHECK(inv.by_imsi(234150000000001) == id);
  CHECK(inv.by_imsi(0) == no_sim);
  std::uint64_t next[] = {0};
  inv.set_imsis(id, next);
  CHECK(inv.by_imsi(234150000000001) == no_sim);
  CHECK(inv.by_imsi(0) == no_sim);
}

TEST_CASE("the index stays compact: well under 100 bytes per SIM", "[inventory]") {
  actors::inventory inv{lock::eligibility_config{}};
  constexpr std::size_t n = 200000;
  inv.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::uint64_t imsi = 234150000000000ull + i;
    std::uint64_t one[] = {imsi};
    inv.add("8944" + std::to_string(100000000000000ull + i), "multinet", one);
  }
  for (std::size_t i = 0; i < n; i += 997)
    REQUIRE(inv.by_imsi(234150000000000ull + i) == i);
  auto per_sim = static_cast<double>(inv.bytes()) / n;
  INFO("bytes per SIM in the index: " << per_sim);
  CHECK(per_sim < 100);
}

TEST_CASE("sim_layer config: defaults, every key, and errors that name the key", "[config]") {
  actors::sim_layer_config defaults;
  actors::sim_layer_config cfg;
  actors::load(cfg, config::load_string("{}"));
  CHECK(cfg.shards == defaults.shards);
  CHECK(cfg.store.path == defaults.store.path);
  CHECK_FALSE(cfg.store.synchronous_full);

  actors::load(cfg, config::load_string(R"(
shards: 4
passivate_after: 5m
max_in_flight: 5000
max_queued_per_sim: 16
stop_timeout: 2s
store:
  path: /tmp/x.db
  synchronous: full
  max_queue: 100
  max_batch: 10
  readers: 3
)"));
  CHECK(cfg.shards == 4);
  CHECK(cfg.passivate_after == std::chrono::minutes{5});
  CHECK(cfg.max_in_flight == 5000);
  CHECK(cfg.max_queued_per_sim == 16);
  CHECK(cfg.stop_timeout == std::chrono::seconds{2});
  CHECK(cfg.store.path == "/tmp/x.db");
  CHECK(cfg.store.synchronous_full);
  CHECK(cfg.store.max_queue == 100);
  CHECK(cfg.store.max_batch == 10);
  CHECK(cfg.store.readers == 3);

  actors::sim_layer_config bad;
  CHECK_THROWS_WITH(actors::load(bad, config::load_string("store: {synchronous: sometimes}")),
                    Catch::Contains("synchronous"));
  CHECK_THROWS_WITH(actors::load(bad, config::load_string("shardz: 2")), Catch::Contains("shardz"));
  CHECK_THROWS_WITH(actors::load(bad, config::load_string("store: {path: ':memory:'}")),
                    Catch::Contains("store.path"));
}

TEST_CASE("the inventory refuses what it cannot hold instead of throwing", "[inventory]") {
  actors::inventory inv{lock::eligibility_config{}};
  for (std::size_t i = 0; i < actors::inventory::max_networks; ++i)
    REQUIRE(inv.intern("net" + std::to_string(i)) == i);
  CHECK(inv.intern("one_too_many") == actors::no_network);
  CHECK(inv.intern("net7") == 7); // known names still resolve
  std::uint64_t a[] = {234150000000001};
  CHECK(inv.add("89440000000000000011", "one_too_many", a) == no_sim);
  CHECK(inv.by_imsi(234150000000001) == no_sim);
  CHECK(inv.add(std::string(300, '8'), "net1", a) == no_sim);
  CHECK(inv.size() == 0);
  auto id = inv.add("89440000000000000011", "net1", a);
  CHECK(id != no_sim);
  CHECK(inv.sims_on(1) == 1);
  inv.moved(1, 2);
  CHECK(inv.sims_on(1) == 0);
  CHECK(inv.sims_on(2) == 1);
}

TEST_CASE("inventory: a reload changes each network's violation action, now and to come",
          "[inventory][actions]") {
  lock::eligibility_config cfg;
  cfg.actions = {{"ee", lock::violation_action::alert}};
  actors::inventory inv{cfg};
  auto ee = inv.intern("ee");
  auto multinet = inv.intern("multinet");
  CHECK(inv.policy(ee).action == lock::violation_action::alert);
  CHECK(inv.policy(multinet).action == lock::violation_action::bar);
  cfg.action = lock::violation_action::disconnect_and_bar;
  cfg.actions.clear();
  inv.reload_actions(cfg);
  CHECK(inv.policy(ee).action == lock::violation_action::disconnect_and_bar);
  CHECK(inv.policy(multinet).action == lock::violation_action::disconnect_and_bar);
  CHECK(inv.policy(ee).lock_eligible); // R1 unchanged
  CHECK(inv.policy(inv.intern("roamnet901")).action == lock::violation_action::disconnect_and_bar);
}
