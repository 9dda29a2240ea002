#include "cluster/jobs.hpp"
#include "cluster/leases.hpp"
#include "cluster/shard.hpp"
#include "store/store.hpp"
#include "tests/cluster/pg_conn.hpp"

#include <chrono>
#include <future>
#include <set>
#include <thread>

using namespace imeilock;
using namespace std::chrono_literals;

namespace {

constexpr std::uint32_t shards = 4;

/// A database with the store's tables (migrated by opening a store) and the
/// cluster's.
struct fixture {
  std::string info;
  std::unique_ptr<store::store> db;
  test::conn_ptr conn;

  explicit fixture(test::postgres_server& pg) : info(pg.fresh_database()) {
    store::store_config cfg;
    cfg.backend = store::backend_kind::postgresql;
    cfg.postgresql.conninfo = info;
    auto opened = store::open(cfg);
    REQUIRE(opened);
    db = std::move(*opened);
    conn = test::connect(info);
    REQUIRE(cluster::migrate(conn.get(), shards));
  }

  /// A SIM in the store (one IMSI), written on one node (no fence set).
  void sim(const std::string& iccid, std::uint64_t imsi, const std::string& network) {
    store::change chg;
    lock::sim_record s;
    s.iccid = iccid;
    s.imsis = {imsi};
    s.network = network;
    chg.sims.push_back(s);
    std::promise<bool> done;
    auto result = done.get_future();
    REQUIRE(db->submit(std::move(chg), [&](bool ok) { done.set_value(ok); }));
    REQUIRE(result.get());
  }
};

std::vector<std::string> iccids_of(const std::vector<cluster::job_sim>& sims) {
  std::vector<std::string> out;
  for (const auto& s : sims)
    out.push_back(s.iccid);
  return out;
}

} // namespace

TEST_CASE("cluster jobs: ids from the database, unique across nodes, above the ids stored") {
  IMEILOCK_REQUIRE_POSTGRES(pg);
  fixture f{pg};
  // A job written before the cluster (one node): ids go on above it.
  test::exec(f.conn.get(), "INSERT INTO jobs (id, state, spec) VALUES (41, 1, '{}')");
  cluster::job_store a{f.info, "a"};
  cluster::job_store b{f.info, "b"};
  cluster::new_job row;
  row.spec = R"({"type":"bar","by_list":true})";
  row.total = 2;
  // Two nodes creating at once (Catch's assertions stay on this thread).
  std::vector<std::uint64_t> made[2];
  std::vector<std::thread> creators;
  cluster::job_store* nodes[] = {&a, &b};
  for (int n = 0; n < 2; ++n)
    creators.emplace_back([&, n] {
      for (int i = 0; i < 10; ++i) {
        auto id = nodes[n]->create(row, {"8944000000000000011", "8944000000000000029"});
        made[n].push_back(id ? *id : 0);
      }
    });
  for (auto& t : creators)
    t.join();
  std::set<std::uint64_t> ids{made[0].begin(), made[0].end()};
  ids.insert(made[1].begin(), made[1].end());
  CHECK_FALSE(ids.count(0)); // every create succeeded
  CHECK(ids.size() == 20);
  CHECK(*ids.begin() == 42);
  CHECK(*ids.rbegin() == 61);
  auto stored = f.db->get_job(42);
  REQUIRE(stored);
  CHECK(stored->state == 0);
  CHECK(stored->total == 2);
  CHECK(f.db->job_iccids(42, "", 10) ==
        std::vector<std::string>{"8944000000000000011", "8944000000000000029"});
}

TEST_CASE("cluster jobs: a shard's SIMs of a job by list or by filter, in ICCID order, SIMs "
          "without a shard go with shard 0") {
  IMEILOCK_REQUIRE_POSTGRES(pg);
  fixture f{pg};
  // 4 shards: suffixes 0-2499, 2500-4999, 5000-7499, 7500-9999.
  f.sim("8944000000000000100", 234150000000100, "multinet"); // shard 0
  f.sim("8944000000000000200", 234150000002600, "multinet"); // shard 1
  f.sim("8944000000000000300", 234150000002700, "other");    // shard 1
  f.sim("8944000000000000400", 234150000009999, "multinet"); // shard 3
  cluster::job_store js{f.info, "a"};
  cluster::new_job row;
  row.spec = "{}";
  auto id = js.create(row, {"8944000000000000100", "8944000000000000200", "8944000000000000300",
                            "8944000000000000400", "8944000000000000999"}); // the last: unknown
  REQUIRE(id);
  auto part = [&](std::uint32_t shard, const std::string& after = "") {
    auto sims = js.sims_by_list(*id, cluster::suffix_range(shard, shards), shard == 0, after, 10);
    REQUIRE(sims);
    return iccids_of(*sims);
  };
  CHECK(part(0) == std::vector<std::string>{"8944000000000000100", "8944000000000000999"});
  CHECK(part(1) == std::vector<std::string>{"8944000000000000200", "8944000000000000300"});
  CHECK(part(1, "8944000000000000200") == std::vector<std::string>{"8944000000000000300"});
  CHECK(part(2).empty());
  CHECK(part(3) == std::vector<std::string>{"8944000000000000400"});

  cluster::job_filter multinet;
  multinet.network = "multinet";
  auto by_filter = js.sims_by_filter(multinet, cluster::suffix_range(1, shards), false, "", 10);
  REQUIRE(by_filter);
  CHECK(iccids_of(*by_filter) == std::vector<std::string>{"8944000000000000200"});
  auto every = js.sims_by_filter({}, cluster::suffix_range(1, shards), false, "", 1);
  REQUIRE(every);
  CHECK(iccids_of(*every) == std::vector<std::string>{"8944000000000000200"});
  REQUIRE(every->front().home_suffix == 2600);
}

TEST_CASE("cluster jobs: a part is written only under its shard's lease, a deposed owner "
          "writes nothing, a job ends once") {
  IMEILOCK_REQUIRE_POSTGRES(pg);
  fixture f{pg};
  cluster::job_store a{f.info, "a"};
  cluster::job_store b{f.info, "b"};
  cluster::new_job row;
  row.spec = "{}";
  auto id = a.create(row, {});
  REQUIRE(id);
  std::vector<std::uint32_t> two{2};
  auto held = cluster::acquire(f.conn.get(), "a", two, 1s, false);
  REQUIRE(held);
  REQUIRE(held->size() == 1);
  auto epoch = held->front().epoch;

  cluster::job_part p;
  p.job_id = *id;
  p.shard = 2;
  p.after_iccid = "8944000000000000100";
  p.processed = 5;
  p.placed = 4;
  p.refused = 1;
  REQUIRE(a.save(p, epoch));
  // b does not hold shard 2: fenced, nothing written.
  auto theirs = p;
  theirs.processed = 99;
  auto refused = b.save(theirs, epoch);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().is(cluster::ec::fenced));
  // b takes the shard once a's lease has expired: a is fenced off, b writes.
  std::this_thread::sleep_for(1200ms);
  auto taken = cluster::acquire(f.conn.get(), "b", two, 10s, false);
  REQUIRE(taken);
  REQUIRE(taken->size() == 1);
  p.processed = 6;
  auto late = a.save(p, epoch);
  REQUIRE_FALSE(late);
  CHECK(late.error().is(cluster::ec::fenced));
  auto parts = a.parts(*id);
  REQUIRE(parts);
  REQUIRE(parts->size() == 1);
  CHECK(parts->front().processed == 5);
  CHECK(parts->front().node == "a");
  theirs.processed = 7;
  theirs.done = true;
  REQUIRE(b.save(theirs, taken->front().epoch));
  parts = b.parts(*id);
  REQUIRE(parts);
  CHECK(parts->front().processed == 7);
  CHECK(parts->front().done);
  CHECK(parts->front().node == "b");

  // Ended once: the first decides (a cancel, or a runner completing it).
  auto first = a.end(*id, 2, 1000);
  REQUIRE(first);
  CHECK(*first);
  auto second = b.end(*id, 1, 2000);
  REQUIRE(second);
  CHECK_FALSE(*second);
  auto stored = f.db->get_job(*id);
  REQUIRE(stored);
  CHECK(stored->state == 2);
  CHECK(stored->finished_at_ms == 1000);
}
