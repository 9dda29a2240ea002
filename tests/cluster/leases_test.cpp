#include "cluster/leases.hpp"
#include "tests/cluster/pg_conn.hpp"

#include <chrono>
#include <thread>

using namespace imeilock;
using namespace std::chrono_literals;
using cluster::shard_epoch;

namespace {

std::vector<std::uint32_t> range(std::uint32_t first, std::uint32_t last) {
  std::vector<std::uint32_t> out;
  for (auto s = first; s <= last; ++s)
    out.push_back(s);
  return out;
}

std::vector<std::uint32_t> shards_of(const std::vector<shard_epoch>& held) {
  std::vector<std::uint32_t> out;
  for (const auto& h : held)
    out.push_back(h.shard);
  return out;
}

} // namespace

TEST_CASE("cluster tables: migrated once, the shard count recorded, another count refused") {
  IMEILOCK_REQUIRE_POSTGRES(pg);
  auto db = test::connect(pg.fresh_database());
  REQUIRE(cluster::migrate(db.get(), 8));
  REQUIRE(cluster::migrate(db.get(), 8)); // a second node, or a restart
  CHECK(test::exec(db.get(), "SELECT version FROM cluster_schema_version") ==
        std::to_string(cluster::cluster_schema_version));
  auto leases = cluster::list_leases(db.get());
  REQUIRE(leases);
  REQUIRE(leases->size() == 8);
  for (const auto& l : *leases) {
    CHECK(l.owner.empty());
    CHECK(l.epoch == 0);
  }
  auto other = cluster::migrate(db.get(), 16);
  REQUIRE_FALSE(other);
  CHECK(other.error().is(cluster::ec::mismatch));
  CHECK_THAT(other.error().message(), Catch::Contains("8 shards") && Catch::Contains("16"));
}

TEST_CASE("leases: a node takes only free or expired shards, each taking with a new epoch") {
  IMEILOCK_REQUIRE_POSTGRES(pg);
  auto db = test::connect(pg.fresh_database());
  REQUIRE(cluster::migrate(db.get(), 8));
  auto a = cluster::acquire(db.get(), "a", range(0, 3), 400ms, false);
  REQUIRE(a);
  CHECK(*a == std::vector<shard_epoch>{{0, 1}, {1, 1}, {2, 1}, {3, 1}});
  // b asks for all: gets only the free ones.
  auto b = cluster::acquire(db.get(), "b", range(0, 7), 10s, false);
  REQUIRE(b);
  CHECK(shards_of(*b) == range(4, 7));
  // a renews within its lease: same epochs.
  auto renewed = cluster::renew(db.get(), "a", *a, 400ms);
  REQUIRE(renewed);
  CHECK(*renewed == *a);
  // a stops renewing; after expiry b takes 0..3 with epoch 2, and a's renewal finds nothing.
  std::this_thread::sleep_for(500ms);
  auto taken = cluster::acquire(db.get(), "b", range(0, 3), 10s, false);
  REQUIRE(taken);
  CHECK(*taken == std::vector<shard_epoch>{{0, 2}, {1, 2}, {2, 2}, {3, 2}});
  auto late = cluster::renew(db.get(), "a", *a, 400ms);
  REQUIRE(late);
  CHECK(late->empty());
  // b releases shard 0: a takes it at once, epoch 3.
  std::vector<shard_epoch> zero{{0, 2}};
  REQUIRE(cluster::release(db.get(), "b", zero));
  auto again = cluster::acquire(db.get(), "a", range(0, 7), 400ms, false);
  REQUIRE(again);
  CHECK(*again == std::vector<shard_epoch>{{0, 3}});
  // A release naming an old epoch changes nothing.
  std::vector<shard_epoch> stale{{1, 1}};
  REQUIRE(cluster::release(db.get(), "a", stale));
  auto leases = cluster::list_leases(db.get()).value();
  CHECK(leases[1].owner == "b");
  CHECK(leases[1].epoch == 2);
  CHECK(leases[1].remaining > 5s);
}

TEST_CASE("leases: a shard another live node prefers is left to it") {
  IMEILOCK_REQUIRE_POSTGRES(pg);
  auto db = test::connect(pg.fresh_database());
  REQUIRE(cluster::migrate(db.get(), 4));
  std::vector<std::uint32_t> b_prefers{2, 3};
  REQUIRE(cluster::heartbeat(db.get(), "b", "http://b:8080", b_prefers, 10s));
  auto a = cluster::acquire(db.get(), "a", range(0, 3), 10s, true);
  REQUIRE(a);
  CHECK(shards_of(*a) == range(0, 1));
  auto nodes = cluster::list_nodes(db.get()).value();
  REQUIRE(nodes.size() == 1);
  CHECK(nodes[0].node_id == "b");
  CHECK(nodes[0].api_url == "http://b:8080");
  CHECK(nodes[0].preferred_shards == b_prefers);
  CHECK(nodes[0].live);
  // b is gone (heartbeat with no duration): its preferred shards are anyone's.
  // Asking again for its own live shards, a takes them back with a new epoch
  // (a node that stepped down and returns fences off its earlier self).
  REQUIRE(cluster::heartbeat(db.get(), "b", "http://b:8080", b_prefers, 0ms));
  auto rest = cluster::acquire(db.get(), "a", range(0, 3), 10s, true);
  REQUIRE(rest);
  CHECK(*rest == std::vector<shard_epoch>{{0, 2}, {1, 2}, {2, 1}, {3, 1}});
}

TEST_CASE("fencing: the holder commits, after a takeover its check fails and nothing commits") {
  IMEILOCK_REQUIRE_POSTGRES(pg);
  auto info = pg.fresh_database();
  auto leases_db = test::connect(info);
  auto writer = test::connect(info);
  REQUIRE(cluster::migrate(leases_db.get(), 4));
  test::exec(writer.get(), "CREATE TABLE changes (shard INTEGER, note TEXT)");
  auto a = cluster::acquire(leases_db.get(), "a", range(0, 1), 500ms, false).value();

  test::exec(writer.get(), "BEGIN");
  test::exec(writer.get(), "INSERT INTO changes VALUES (0, 'while held')");
  REQUIRE(cluster::check_fence(writer.get(), "a", a));
  test::exec(writer.get(), "COMMIT");

  // The statement a store writer runs through its hook: one row, "t".
  auto params = cluster::fence_params("a", a);
  std::vector<const char*> values;
  for (const auto& p : params)
    values.push_back(p.c_str());
  std::string sql{cluster::fence_sql()};
  PGresult* r =
      PQexecParams(writer.get(), sql.c_str(), 3, nullptr, values.data(), nullptr, nullptr, 0);
  REQUIRE(PQresultStatus(r) == PGRES_TUPLES_OK);
  CHECK(std::string{PQgetvalue(r, 0, 0)} == "t");
  PQclear(r);

  // a is paused past its lease; b takes shard 0 over.
  std::this_thread::sleep_for(600ms);
  auto b = cluster::acquire(leases_db.get(), "b", range(0, 0), 10s, false).value();
  REQUIRE(b == std::vector<shard_epoch>{{0, 2}});

  // a wakes up and tries to commit for shard 0 at its old epoch: fenced.
  test::exec(writer.get(), "BEGIN");
  test::exec(writer.get(), "INSERT INTO changes VALUES (0, 'after takeover')");
  auto fenced = cluster::check_fence(writer.get(), "a", std::vector<shard_epoch>{{0, 1}});
  REQUIRE_FALSE(fenced);
  CHECK(fenced.error().is(cluster::ec::fenced));
  CHECK_THAT(fenced.error().message(), Catch::Contains("node a"));
  test::exec(writer.get(), "ROLLBACK");
  // Shard 1 expired too (nobody took it): a's claim on it fails as well.
  test::exec(writer.get(), "BEGIN");
  CHECK(cluster::check_fence(writer.get(), "a", std::vector<shard_epoch>{{1, 1}})
            .error()
            .is(cluster::ec::fenced));
  test::exec(writer.get(), "ROLLBACK");
  CHECK(test::exec(writer.get(), "SELECT count(*) FROM changes") == "1");
  // b, the new holder, commits.
  test::exec(writer.get(), "BEGIN");
  REQUIRE(cluster::check_fence(writer.get(), "b", b));
  test::exec(writer.get(), "COMMIT");
}

TEST_CASE("fencing: a takeover waits for a commit that passed the check, it never lands after") {
  IMEILOCK_REQUIRE_POSTGRES(pg);
  auto info = pg.fresh_database();
  auto leases_db = test::connect(info);
  auto writer = test::connect(info);
  REQUIRE(cluster::migrate(leases_db.get(), 2));
  auto a = cluster::acquire(leases_db.get(), "a", range(0, 0), 300ms, false).value();
  test::exec(writer.get(), "BEGIN");
  REQUIRE(cluster::check_fence(writer.get(), "a", a));
  // The lease expires while a's transaction is open (passed the check,
  // not yet committed): b's claim skips the row while a holds it.
  std::this_thread::sleep_for(400ms);
  auto meanwhile = cluster::acquire(leases_db.get(), "b", range(0, 0), 10s, false);
  REQUIRE(meanwhile);
  CHECK(meanwhile->empty());
  test::exec(writer.get(), "COMMIT");
  auto after = cluster::acquire(leases_db.get(), "b", range(0, 0), 10s, false);
  REQUIRE(after);
  CHECK(*after == std::vector<shard_epoch>{{0, 2}});
}
