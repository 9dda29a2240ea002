// The compact inventory index (no actors).
#include "actors/context.hpp"
#include "actors/inventory.hpp"
#include "actors/sim_layer_config.hpp"
#include "config/section.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <unordered_map>
#include <utility>

using namespace imeilock;
using actors::no_sim;

TEST_CASE("id_table agrees with std::unordered_map under inserts, overwrites and erases",
          "[inventory]") {
  // The keys live outside the table, as in the inventory: key_of[value].
  std::vector<std::uint64_t> key_of;
  actors::id_table t{50, 65};
  std::unordered_map<std::uint64_t, std::uint32_t> ref;
  auto hash = [](std::uint64_t k) { return k * 0x9e3779b97f4a7c15ull; };
  std::mt19937_64 gen{42};
  for (int i = 0; i < 200000; ++i) {
    auto key = 1 + gen() % 5000;
    auto is_key = [&](std::uint32_t v) { return key_of[v] == key; };
    if (gen() % 3 == 2) {
      CHECK(t.erase(hash(key), is_key) == (ref.erase(key) == 1));
    } else {
      if (!t.has_room()) { // the owner rebuilds: every live value again
        t.reset(t.size() * 2);
        for (auto [k, v] : ref)
          t.insert(hash(k), v);
      }
      auto v = static_cast<std::uint32_t>(key_of.size());
      key_of.push_back(key);
      t.put(hash(key), v, is_key);
      ref[key] = v;
    }
    REQUIRE(t.size() == ref.size());
  }
  for (std::uint64_t k = 1; k <= 5000; ++k) {
    auto it = ref.find(k);
    auto got = t.find(hash(k), [&](std::uint32_t v) { return key_of[v] == k; });
    CHECK(got == (it == ref.end() ? actors::id_table::empty : it->second));
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

TEST_CASE("the index stays compact: under 40 bytes per SIM once reserved", "[inventory]") {
  actors::inventory inv{lock::eligibility_config{}};
  constexpr std::size_t n = 200000;
  inv.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::uint64_t imsi = 234150000000000ull + i;
    std::uint64_t one[] = {imsi};
    inv.add("8944" + std::to_string(100000000000000ull + i), "multinet", one);
  }
  for (std::size_t i = 0; i < n; i += 997) {
    REQUIRE(inv.by_imsi(234150000000000ull + i) == i);
    REQUIRE(inv.by_iccid("8944" + std::to_string(100000000000000ull + i)) == i);
  }
  auto per_sim = static_cast<double>(inv.bytes()) / n;
  INFO("bytes per SIM in the index: " << per_sim);
  // 10 (ICCID) + 8 (first IMSI) + 8 (IMSI table at load 1/2) + ~5.7 (ICCID table).
  CHECK(per_sim < 33);
}

TEST_CASE("the index grows without a reserve and finds every SIM after each rebuild",
          "[inventory]") {
  actors::inventory inv{lock::eligibility_config{}};
  constexpr std::size_t n = 50000;
  for (std::size_t i = 0; i < n; ++i) {
    std::uint64_t two[] = {234150000000000ull + i, 234160000000000ull + i};
    REQUIRE(inv.add("8944" + std::to_string(100000000000000ull + i), "multinet",
                    std::span{two, i % 10 == 0 ? 2u : 1u}) == i);
  }
  for (std::size_t i = 0; i < n; ++i) {
    REQUIRE(inv.by_imsi(234150000000000ull + i) == i);
    REQUIRE(inv.by_imsi(234160000000000ull + i) == (i % 10 == 0 ? i : no_sim));
    REQUIRE(inv.by_iccid("8944" + std::to_string(100000000000000ull + i)) == i);
  }
  CHECK(inv.by_imsi(234150000000000ull + n) == no_sim);
  CHECK(inv.by_iccid("8944" + std::to_string(100000000000000ull + n)) == no_sim);
  inv.reserve(4 * n); // a rebuild in place keeps everything
  CHECK(inv.by_imsi(234160000000000ull + 10) == 10);
  CHECK(inv.by_iccid("89441000000000000049999") == no_sim);
  CHECK(inv.by_iccid("8944" + std::to_string(100000000000000ull + 49999)) == 49999);
}

TEST_CASE("add_many gives each SIM the id add() would, and refuses what add() refuses",
          "[inventory]") {
  // The same SIMs one at a time and in batches (the startup load), across a
  // rebuild of both tables (no reserve), with odd ICCIDs and IMSI sets.
  actors::inventory one{lock::eligibility_config{}};
  actors::inventory many{lock::eligibility_config{}};
  constexpr std::size_t n = 20000;
  std::vector<std::string> iccids;
  std::vector<std::vector<std::uint64_t>> imsis;
  for (std::size_t i = 0; i < n; ++i) {
    iccids.push_back(i % 997 == 5   ? std::string(256, '8')       // too long: refused
                     : i % 101 == 7 ? "8944X" + std::to_string(i) // kept whole
                                    : "8944" + std::to_string(100000000000000ull + i));
    std::vector<std::uint64_t> set{234150000000000ull + i};
    if (i % 10 == 0)
      set.push_back(234160000000000ull + i);
    if (i % 333 == 0)
      set = {}; // no IMSI
    imsis.push_back(set);
  }
  std::vector<actors::sim_id> want;
  for (std::size_t i = 0; i < n; ++i)
    want.push_back(one.add(iccids[i], i % 7 == 0 ? "othernet" : "multinet", imsis[i]));
  std::vector<actors::sim_id> got(n);
  for (std::size_t at = 0; at < n; at += 4096) {
    std::vector<actors::inventory::new_sim> batch;
    for (std::size_t i = at; i < std::min(n, at + 4096); ++i)
      batch.push_back({iccids[i], i % 7 == 0 ? "othernet" : "multinet", imsis[i]});
    many.add_many(batch, std::span{got}.subspan(at, batch.size()));
  }
  CHECK(got == want);
  CHECK(std::count(got.begin(), got.end(), no_sim) > 0);
  REQUIRE(many.size() == one.size());
  for (std::size_t i = 0; i < n; ++i) {
    if (got[i] == no_sim)
      continue;
    REQUIRE(many.by_iccid(iccids[i]) == got[i]);
    REQUIRE(many.imsis(got[i]) == imsis[i]);
    for (auto imsi : imsis[i])
      REQUIRE(many.by_imsi(imsi) == got[i]);
  }
  CHECK(many.sims_on(many.intern("othernet")) == one.sims_on(one.intern("othernet")));
}

TEST_CASE("ICCIDs the packed form cannot hold are kept whole", "[inventory]") {
  actors::inventory inv{lock::eligibility_config{}};
  std::uint64_t a[] = {234150000000001};
  std::uint64_t b[] = {234150000000002};
  std::uint64_t c[] = {234150000000003};
  std::uint64_t d[] = {234150000000004};
  // A damaged or hand-edited store row may hold anything up to 255 bytes.
  auto letters = inv.add("8944ABC", "multinet", a);
  auto long21 = inv.add("894400000000000000111", "multinet", b);
  auto short1 = inv.add("8", "multinet", c);
  auto twenty = inv.add("89440000000000000011", "multinet", d);
  CHECK(inv.iccid(letters) == "8944ABC");
  CHECK(inv.iccid(long21) == "894400000000000000111");
  CHECK(inv.iccid(short1) == "8");
  CHECK(inv.iccid(twenty) == "89440000000000000011");
  CHECK(inv.by_iccid("8944ABC") == letters);
  CHECK(inv.by_iccid("894400000000000000111") == long21);
  CHECK(inv.by_iccid("8") == short1);
  CHECK(inv.by_iccid("89440000000000000011") == twenty);
  // Prefixes and the same digits differently long are other ICCIDs.
  CHECK(inv.by_iccid("89") == no_sim);
  CHECK(inv.by_iccid("8944000000000000001") == no_sim);
  CHECK(inv.by_iccid("8944abc") == no_sim);
  CHECK(inv.by_iccid("") == no_sim);
  CHECK(inv.iccid(no_sim).empty());
}

TEST_CASE("an IMSI listed by two SIMs (a damaged store) belongs to the last one given it",
          "[inventory]") {
  actors::inventory inv{lock::eligibility_config{}};
  std::uint64_t x[] = {234150000000001, 234150000000002};
  std::uint64_t y[] = {234150000000002};
  std::uint64_t z[] = {234150000000005, 234150000000001};
  auto sx = inv.add("89440000000000000011", "multinet", x);
  auto sy = inv.add("89440000000000000029", "multinet", y); // takes ...02 as its first
  CHECK(inv.by_imsi(234150000000002) == sy);
  auto sz = inv.add("89440000000000000037", "multinet", z); // takes ...01 as another
  CHECK(inv.by_imsi(234150000000001) == sz);
  CHECK(inv.by_imsi(234150000000005) == sz);
  // X lets go of what it listed: the IMSIs others took stay theirs.
  std::uint64_t none[] = {234150000000009};
  inv.set_imsis(sx, none);
  CHECK(inv.by_imsi(234150000000001) == sz);
  CHECK(inv.by_imsi(234150000000002) == sy);
  CHECK(inv.by_imsi(234150000000009) == sx);
  inv.set_imsis(sz, {});
  CHECK(inv.by_imsi(234150000000001) == no_sim);
  CHECK(inv.by_imsi(234150000000005) == no_sim);
  CHECK(inv.by_imsi(234150000000002) == sy);
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

TEST_CASE("a passivated SIM's row is 64 bytes, and writing its state leaves the rest of the row",
          "[inventory][memory]") {
  // The row's network, flags and activity live in the state's tail padding
  // ([[no_unique_address]]): a state assignment must copy the state's data
  // only, never its padding.
  STATIC_REQUIRE(sizeof(actors::compact_row) == 64);
  actors::compact_row row;
  row.network = 0x1234;
  row.stored = true;
  row.activity_dirty = true;
  row.activity = {1'796'083'200, 1'796'083'100};
  lock::sim_state next;
  next.lock = lock::lock_state::locked;
  next.scope = lock::lock_scope::device_model;
  next.alerted = true;
  next.lock_imei = 353490012345670;
  row.state = next;
  auto copy = next;
  std::swap(row.state, copy);
  row.state = copy;
  CHECK(row.state == next);
  CHECK(row.network == 0x1234);
  CHECK(row.stored);
  CHECK(row.activity_dirty);
  CHECK(row.activity.observed_s == 1'796'083'200);
  CHECK(row.activity.imei_seen_s == 1'796'083'100);
}
