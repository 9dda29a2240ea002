#include "cluster/leases.hpp"
#include "cluster/shard.hpp"
#include "store/store.hpp"
#include "tests/cluster/pg_conn.hpp"

#include <chrono>
#include <future>
#include <mutex>
#include <thread>

using namespace imeilock;
using namespace std::chrono_literals;

namespace {

/// Submits `chg` and waits for its outcome.
bool commit(store::store& db, store::change chg) {
  std::promise<bool> done;
  auto result = done.get_future();
  REQUIRE(db.submit(std::move(chg), [&](bool ok) { done.set_value(ok); }));
  REQUIRE(result.wait_for(30s) == std::future_status::ready);
  return result.get();
}

store::change upsert(const std::string& iccid, std::uint64_t imsi, const std::string& msisdn) {
  store::change chg;
  lock::sim_record sim;
  sim.iccid = iccid;
  sim.imsis = {imsi};
  sim.msisdn = msisdn;
  sim.network = "multinet";
  chg.sims.push_back(sim);
  return chg;
}

} // namespace

TEST_CASE("the PostgreSQL store's writer runs the fence: after a takeover the old owner commits "
          "nothing for the shard, the new owner does") {
  IMEILOCK_REQUIRE_POSTGRES(pg);
  auto info = pg.fresh_database();
  auto leases_db = test::connect(info);
  constexpr std::uint32_t shards = 8;
  REQUIRE(cluster::migrate(leases_db.get(), shards));
  const std::uint64_t imsi = 234150000003750; // suffix 3750: shard 3 of 8
  const auto shard = cluster::shard_of(imsi, shards);
  REQUIRE(shard == 3);
  std::vector<std::uint32_t> wanted{shard};

  // Node a's store: its writer claims shard 3 at the epoch a believes it holds.
  store::store_config cfg;
  cfg.backend = store::backend_kind::postgresql;
  cfg.postgresql.conninfo = info;
  auto opened = store::open(cfg);
  REQUIRE(opened);
  auto& db = **opened;
  // The lease is taken once the store is open: on a loaded machine opening
  // it (migrations, readers) can take longer than a short lease. 2 s: the
  // first commit lands well within it.
  auto a = cluster::acquire(leases_db.get(), "a", wanted, 2s, false).value();
  REQUIRE(a.size() == 1);
  std::mutex mutex;
  std::string node = "a";
  cluster::shard_epoch claim = a[0];
  db.set_fence([&](std::span<const store::change* const> batch, const store::txn_query& query) {
    std::vector<cluster::shard_epoch> claims;
    std::lock_guard lock{mutex};
    // Catch's assertions are not for the writer thread: a SIM of another
    // shard just vetoes (the checks below would then fail).
    for (const auto* chg : batch)
      for (const auto& sim : chg->sims)
        if (cluster::shard_of_sim(sim.imsis, shards) != claim.shard)
          return false;
    claims.push_back(claim);
    return query(std::string{cluster::fence_sql()}, cluster::fence_params(node, claims)) == "t";
  });

  CHECK(commit(db, upsert("8944000000000000001", imsi, "447700900001")));
  // a is paused past its lease; b takes shard 3 over (epoch 2).
  std::this_thread::sleep_for(2100ms);
  auto b = cluster::acquire(leases_db.get(), "b", wanted, 10s, false).value();
  REQUIRE(b == std::vector<cluster::shard_epoch>{{shard, 2}});
  // a wakes up still claiming epoch 1: refused, nothing of it is stored.
  CHECK_FALSE(commit(db, upsert("8944000000000000001", imsi, "447700900002")));
  CHECK(db.get_sim("8944000000000000001")->msisdn == "447700900001");
  // The same writer as node b, at b's epoch, commits.
  {
    std::lock_guard lock{mutex};
    node = "b";
    claim = b[0];
  }
  CHECK(commit(db, upsert("8944000000000000001", imsi, "447700900003")));
  CHECK(db.get_sim("8944000000000000001")->msisdn == "447700900003");
}
