// The handoff inbox (cluster/inbox.hpp) against a real PostgreSQL 15: order
// per shard and SIM, nothing lost when the consumer dies mid-batch, a stale
// owner neither commits nor consumes, a NOTIFY wakes an idle consumer, and
// the handoff latency (printed).
#include "cluster/inbox.hpp"
#include "tests/cluster/pg_conn.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <map>
#include <mutex>
#include <thread>

using namespace imeilock;
using namespace std::chrono_literals;
using cluster::shard_epoch;

namespace {

using steady = std::chrono::steady_clock;

/// A database with the cluster tables (4 shards) and a table the consumers'
/// effects go to (one row per applied entry, in apply order).
std::string fresh_cluster_db(test::postgres_server& pg) {
  auto conninfo = pg.fresh_database();
  auto db = test::connect(conninfo);
  REQUIRE(cluster::migrate(db.get(), 4));
  test::exec(db.get(), "CREATE TABLE effects (seq BIGSERIAL PRIMARY KEY, node TEXT NOT NULL, "
                       "shard INTEGER NOT NULL, sim_key TEXT NOT NULL, dedupe BIGINT NOT NULL)");
  return conninfo;
}

cluster::handoff handoff_of(std::uint32_t shard, const std::string& sim, std::uint64_t seq) {
  cluster::handoff h;
  h.shard = shard;
  h.sim_key = sim;
  h.obs.imsi = 234150000000000 + shard;
  h.obs.imei.status = lock::imei_status::ok;
  h.obs.imei.device = 35349001234567;
  h.obs.peer = "10.0.0.9";
  h.obs.dedupe_key = seq;
  h.obs.at_ms = static_cast<std::int64_t>(seq);
  return h;
}

/// Writes each entry's effect through the consuming transaction.
expected<void> write_effects(const std::string& node, std::uint32_t shard,
                             std::span<const cluster::inbox_entry> entries,
                             const cluster::txn_query& txn) {
  for (const auto& e : entries) {
    auto r = txn("INSERT INTO effects (node, shard, sim_key, dedupe) VALUES ($1, $2, $3, $4)",
                 {node, std::to_string(shard), e.sim_key, std::to_string(e.obs.dedupe_key)});
    if (!r)
      return r.error();
  }
  return {};
}

/// Waits (bounded) until `pred` holds.
template <class P>
bool eventually(P pred, std::chrono::milliseconds limit = 20s) {
  auto until = steady::now() + limit;
  while (!pred()) {
    if (steady::now() > until)
      return false;
    std::this_thread::sleep_for(100us);
  }
  return true;
}

std::int64_t count(const std::string& conninfo, const std::string& sql) {
  return std::stoll(test::pg_query(conninfo, sql).at(0).at(0));
}

/// The owned() hook of a node holding `claims`, changeable by the test.
struct holdings {
  std::mutex m;
  std::vector<shard_epoch> claims;
  std::atomic<int> asked{0};
  std::function<std::vector<shard_epoch>()> hook() {
    return [this] {
      asked.fetch_add(1);
      std::lock_guard g{m};
      return claims;
    };
  }
};

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

} // namespace

TEST_CASE(
    "inbox: enqueue commits and notifies, and the owner applies each shard's entries in order, "
    "each SIM's in the order its handoffs committed, once") {
  IMEILOCK_REQUIRE_POSTGRES(pg);
  auto conninfo = fresh_cluster_db(pg);
  auto admin = test::connect(conninfo);
  auto held =
      cluster::acquire(admin.get(), "a", std::vector<std::uint32_t>{0, 1, 2, 3}, 60s, false);
  REQUIRE(held);
  REQUIRE(held->size() == 4);
  holdings a;
  a.claims = *held;

  std::mutex seen_m;
  std::map<std::string, std::vector<std::uint64_t>> seen; // per SIM, in apply order
  cluster::inbox_consumer consumer{
      {.node_id = "a", .sweep_interval = 60s, .max_batch = 7},
      conninfo,
      {.owned = a.hook(),
       .apply = [&](std::uint32_t shard, std::span<const cluster::inbox_entry> entries,
                    const cluster::txn_query& txn) -> expected<void> {
         std::lock_guard g{seen_m};
         for (const auto& e : entries)
           seen[e.sim_key].push_back(e.obs.dedupe_key);
         return write_effects("a", shard, entries, txn);
       }}};
  consumer.start();

  // Three sending nodes, each a thread per SIM, SIMs of two shards; each
  // handoff is acknowledged (returns) before the SIM's next one is sent, as
  // a network sends the next record after the answer. Some in batches.
  constexpr int per_sim = 40;
  const std::vector<std::pair<std::uint32_t, std::string>> sims = {
      {0, "sim-0a"}, {0, "sim-0b"}, {2, "sim-2a"}, {2, "sim-2b"}, {3, "sim-3a"}};
  std::vector<std::thread> senders;
  std::atomic<int> failures{0};
  for (std::size_t i = 0; i < sims.size(); ++i)
    senders.emplace_back([&, i] {
      test::conn_ptr c{PQconnectdb(conninfo.c_str())};
      std::string node = "sender-" + std::to_string(i % 3);
      for (int k = 0; k < per_sim;) {
        std::vector<cluster::handoff> batch;
        int n = (k % 3 == 0) ? 3 : 1;
        for (int j = 0; j < n && k < per_sim; ++j, ++k)
          batch.push_back(handoff_of(sims[i].first, sims[i].second, static_cast<std::uint64_t>(k)));
        if (!cluster::enqueue(c.get(), node, batch))
          failures.fetch_add(1);
      }
    });
  for (auto& t : senders)
    t.join();
  REQUIRE(failures.load() == 0);

  const auto total = static_cast<std::int64_t>(per_sim * sims.size());
  REQUIRE(eventually([&] { return count(conninfo, "SELECT count(*) FROM effects") == total; }));
  CHECK(count(conninfo, "SELECT count(*) FROM cluster_inbox") == 0);
  CHECK(consumer.stats().consumed.load() == static_cast<std::uint64_t>(total));
  CHECK(consumer.stats().notifications.load() > 0);
  consumer.stop();
  std::lock_guard g{seen_m};
  for (const auto& [shard, sim] : sims) {
    INFO(sim);
    std::vector<std::uint64_t> expected(per_sim);
    for (int k = 0; k < per_sim; ++k)
      expected[static_cast<std::size_t>(k)] = static_cast<std::uint64_t>(k);
    CHECK(seen[sim] == expected);
  }
  // Every effect once, and in the same order as applied.
  CHECK(count(conninfo, "SELECT count(DISTINCT (sim_key, dedupe)) FROM effects") == total);
  CHECK(count(conninfo, "SELECT count(*) FROM (SELECT sim_key, dedupe, lag(dedupe) OVER "
                        "(PARTITION BY sim_key ORDER BY seq) AS prev FROM effects) x "
                        "WHERE prev IS NOT NULL AND prev >= dedupe") == 0);
}

TEST_CASE("inbox: a consumer that dies mid-batch consumed nothing, and its entries are delivered "
          "again and applied once") {
  IMEILOCK_REQUIRE_POSTGRES(pg);
  auto conninfo = fresh_cluster_db(pg);
  auto admin = test::connect(conninfo);
  auto held = cluster::acquire(admin.get(), "a", std::vector<std::uint32_t>{1}, 60s, false);
  REQUIRE(held);
  holdings a;
  a.claims = *held;

  std::vector<cluster::handoff> items;
  for (std::uint64_t k = 0; k < 30; ++k)
    items.push_back(handoff_of(1, "sim-1", k));
  REQUIRE(cluster::enqueue(admin.get(), "b", items));

  // The first two batches: the effect is written, then the consumer's
  // connection is killed before its COMMIT (as when the process dies: the
  // server rolls the transaction back).
  std::atomic<int> deliveries{0};
  std::atomic<int> killed{0};
  std::vector<std::uint64_t> first_seen;
  cluster::inbox_consumer consumer{
      {.node_id = "a", .sweep_interval = 60s, .max_batch = 10, .retry_after = 20ms},
      conninfo,
      {.owned = a.hook(),
       .apply = [&](std::uint32_t shard, std::span<const cluster::inbox_entry> entries,
                    const cluster::txn_query& txn) -> expected<void> {
         deliveries.fetch_add(static_cast<int>(entries.size()));
         if (auto w = write_effects("a", shard, entries, txn); !w)
           return w;
         if (killed.load() < 2) {
           killed.fetch_add(1);
           first_seen.push_back(entries.front().obs.dedupe_key);
           auto pid = txn("SELECT pg_backend_pid()", {});
           if (!pid || !*pid)
             return error{cluster::ec::database, "no backend pid"};
           // Waits (up to 5 s) until the backend has exited.
           test::pg_query(conninfo, "SELECT pg_terminate_backend(" + **pid + ", 5000)");
           return txn("SELECT 1", {}).has_value()
                      ? expected<void>{}
                      : expected<void>{error{cluster::ec::database, "connection killed"}};
         }
         return {};
       }}};
  consumer.start();
  REQUIRE(eventually([&] { return count(conninfo, "SELECT count(*) FROM effects") == 30; }));
  CHECK(count(conninfo, "SELECT count(*) FROM cluster_inbox") == 0);
  consumer.stop();
  CHECK(killed.load() == 2);
  // The killed batches were the first entries both times: nothing was
  // consumed without its effect, and nothing was skipped.
  CHECK(first_seen == std::vector<std::uint64_t>{0, 0});
  CHECK(deliveries.load() == 30 + 2 * 10);
  CHECK(count(conninfo, "SELECT count(DISTINCT dedupe) FROM effects") == 30);
  CHECK(consumer.stats().failed.load() >= 2);
}

TEST_CASE("inbox: a stale owner can neither commit an effect nor consume an entry") {
  IMEILOCK_REQUIRE_POSTGRES(pg);
  auto conninfo = fresh_cluster_db(pg);
  auto admin = test::connect(conninfo);
  std::vector<std::uint32_t> shard2{2};

  std::vector<cluster::handoff> items;
  for (std::uint64_t k = 0; k < 5; ++k)
    items.push_back(handoff_of(2, "sim-2", k));
  REQUIRE(cluster::enqueue(admin.get(), "c", items));

  // Node a holds shard 2 with a short lease; its apply outlives the lease
  // (a pause): the fence before COMMIT refuses, nothing of the batch lands.
  // 3 s: long enough for the first batch to start within it on a loaded
  // machine; apply then sleeps until the lease has surely run out.
  constexpr auto lease = 3s;
  auto a_held = cluster::acquire(admin.get(), "a", shard2, lease, false);
  auto lease_over = steady::now() + lease + 300ms;
  REQUIRE(a_held);
  REQUIRE(a_held->size() == 1);
  holdings a;
  a.claims = *a_held;

  std::atomic<int> a_applied{0};
  cluster::inbox_consumer stale{
      {.node_id = "a", .sweep_interval = 100ms, .retry_after = 50ms},
      conninfo,
      {.owned = a.hook(),
       .apply = [&](std::uint32_t shard, std::span<const cluster::inbox_entry> entries,
                    const cluster::txn_query& txn) -> expected<void> {
         a_applied.fetch_add(1);
         auto w = write_effects("a", shard, entries, txn);
         std::this_thread::sleep_until(lease_over); // past the lease
         return w;
       }}};
  stale.start();
  REQUIRE(eventually([&] { return stale.stats().fenced.load() >= 1; }, 10s));
  CHECK(a_applied.load() == 1); // once: later batches were fenced before apply
  CHECK(count(conninfo, "SELECT count(*) FROM effects") == 0);
  CHECK(count(conninfo, "SELECT count(*) FROM cluster_inbox") == 5);

  // Node b takes the expired shard (a new epoch). a still believes it holds
  // the old one (a paused node would): still fenced at every sweep.
  auto b_held = cluster::acquire(admin.get(), "b", shard2, 60s, false);
  REQUIRE(b_held);
  REQUIRE(b_held->size() == 1);
  CHECK(b_held->at(0).epoch == a_held->at(0).epoch + 1);
  auto fenced_before = stale.stats().fenced.load();
  REQUIRE(eventually([&] { return stale.stats().fenced.load() >= fenced_before + 3; }, 10s));
  CHECK(a_applied.load() == 1);
  CHECK(count(conninfo, "SELECT count(*) FROM cluster_inbox") == 5);
  stale.stop();
  CHECK(stale.stats().consumed.load() == 0);

  // The new owner consumes them all, in order.
  holdings b;
  b.claims = *b_held;
  cluster::inbox_consumer owner{
      {.node_id = "b", .sweep_interval = 60s},
      conninfo,
      {.owned = b.hook(),
       .apply = [&](std::uint32_t shard, std::span<const cluster::inbox_entry> entries,
                    const cluster::txn_query& txn) {
         return write_effects("b", shard, entries, txn);
       }}};
  owner.start();
  REQUIRE(eventually([&] { return count(conninfo, "SELECT count(*) FROM effects") == 5; }));
  owner.stop();
  CHECK(count(conninfo, "SELECT count(*) FROM effects WHERE node = 'b'") == 5);
  CHECK(count(conninfo, "SELECT count(*) FROM cluster_inbox") == 0);
}

TEST_CASE(
    "inbox: an idle consumer waits for a NOTIFY (no polling) and wakes on it, and the handoff "
    "latency") {
  IMEILOCK_REQUIRE_POSTGRES(pg);
  auto conninfo = fresh_cluster_db(pg);
  auto admin = test::connect(conninfo);
  auto held =
      cluster::acquire(admin.get(), "a", std::vector<std::uint32_t>{0, 1, 2, 3}, 60s, false);
  REQUIRE(held);
  holdings a;
  a.claims = *held;
  std::atomic<std::int64_t> applied_at_ns{0};
  cluster::inbox_consumer consumer{
      {.node_id = "a", .sweep_interval = 600s},
      conninfo,
      {.owned = a.hook(),
       .apply = [&](std::uint32_t shard, std::span<const cluster::inbox_entry> entries,
                    const cluster::txn_query& txn) -> expected<void> {
         applied_at_ns.store(steady::now().time_since_epoch().count());
         return write_effects("a", shard, entries, txn);
       }}};
  consumer.start();
  // Its first look at every shard, then quiet: over a second idle it asks
  // nothing (no loop that polls the database).
  REQUIRE(eventually([&] { return a.asked.load() >= 1; }));
  std::this_thread::sleep_for(200ms);
  auto asked = a.asked.load();
  std::this_thread::sleep_for(1s);
  CHECK(a.asked.load() == asked);
  CHECK(consumer.stats().sweeps.load() == 0);

  // Each handoff: enqueue (returns after COMMIT), then the owner applies it
  // (woken by the NOTIFY) and commits the consumption.
  constexpr int rounds = 200;
  std::vector<double> commit_ms, apply_ms, total_ms;
  for (int i = 0; i < rounds; ++i) {
    auto h = handoff_of(static_cast<std::uint32_t>(i % 4), "sim-" + std::to_string(i % 4),
                        static_cast<std::uint64_t>(i));
    auto t0 = steady::now();
    REQUIRE(cluster::enqueue(admin.get(), "b", {&h, 1}));
    auto t1 = steady::now();
    REQUIRE(eventually(
        [&] { return consumer.stats().consumed.load() == static_cast<std::uint64_t>(i + 1); }, 5s));
    auto t2 = steady::now();
    auto applied = steady::time_point{steady::duration{applied_at_ns.load()}};
    commit_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    apply_ms.push_back(std::chrono::duration<double, std::milli>(applied - t0).count());
    total_ms.push_back(std::chrono::duration<double, std::milli>(t2 - t0).count());
  }
  CHECK(consumer.stats().sweeps.load() == 0); // every one was a NOTIFY's doing
  CHECK(consumer.stats().notifications.load() >= static_cast<std::uint64_t>(rounds));
  consumer.stop();
  std::printf("inbox handoff latency over %d handoffs (ms, p50 / p99): enqueue committed %.2f / "
              "%.2f; owner applies %.2f / %.2f; owner's consumption committed %.2f / %.2f\n",
              rounds, percentile(commit_ms, 0.5), percentile(commit_ms, 0.99),
              percentile(apply_ms, 0.5), percentile(apply_ms, 0.99), percentile(total_ms, 0.5),
              percentile(total_ms, 0.99));
  CHECK(percentile(total_ms, 0.5) < 1000.0); // woken, not waiting for a 600 s sweep
}

TEST_CASE("inbox: an enqueue that fails leaves nothing and the connection usable") {
  IMEILOCK_REQUIRE_POSTGRES(pg);
  auto conninfo = fresh_cluster_db(pg);
  auto c = test::connect(conninfo);
  std::vector<cluster::handoff> items{handoff_of(0, "sim-0", 1), handoff_of(1, "sim-1", 2),
                                      handoff_of(0xffffffffU, "sim-x", 3)}; // not an integer
  auto r = cluster::enqueue(c.get(), "b", items);
  REQUIRE_FALSE(r);
  CHECK(r.error().is(cluster::ec::database));
  CHECK(count(conninfo, "SELECT count(*) FROM cluster_inbox") == 0);
  items.pop_back();
  REQUIRE(cluster::enqueue(c.get(), "b", items));
  CHECK(count(conninfo, "SELECT count(*) FROM cluster_inbox") == 2);
  // Keys with quotes and backslashes reach the table as they are.
  cluster::handoff odd = handoff_of(2, "a\"b\\c{d},e", 4);
  REQUIRE(cluster::enqueue(c.get(), "b", {&odd, 1}));
  CHECK(test::pg_query(conninfo, "SELECT sim_key FROM cluster_inbox WHERE shard = 2").at(0).at(0) ==
        "a\"b\\c{d},e");
}

TEST_CASE(
    "inbox sender: each post answered once its batch committed (unknown SIMs and store "
    "errors too), a SIM's in post order, and a dispatch consumer hands a shard's entries over "
    "and reads them again only once settled") {
  IMEILOCK_REQUIRE_POSTGRES(pg);
  auto conninfo = fresh_cluster_db(pg);
  // The store's view: IMSIs ending 9 are unknown, ending 8 cannot be read;
  // the others belong to one of three SIMs, SIM k in shard k.
  cluster::inbox_sender sender{
      {.node_id = "b", .max_batch = 8},
      conninfo,
      [](std::uint64_t imsi) -> expected<std::optional<cluster::inbox_sender::target>> {
        if (imsi % 10 == 9)
          return std::optional<cluster::inbox_sender::target>{};
        if (imsi % 10 == 8)
          return error{cluster::ec::database, "the store cannot be read"};
        auto k = static_cast<std::uint32_t>(imsi % 3);
        return std::optional<cluster::inbox_sender::target>{
            cluster::inbox_sender::target{"sim-" + std::to_string(k), k}};
      }};
  using outcome = cluster::inbox_sender::outcome;
  std::mutex m;
  std::map<std::uint64_t, std::pair<outcome, std::uint32_t>> answers; // dedupe key -> answer
  sender.start();
  constexpr std::uint64_t posts = 60;
  std::uint64_t want_enqueued = 0;
  for (std::uint64_t i = 1; i <= posts; ++i) {
    cluster::observation o;
    o.imsi = 234150000000000 + i;
    o.dedupe_key = i;
    o.at_ms = static_cast<std::int64_t>(i);
    if (i % 10 != 9 && i % 10 != 8)
      ++want_enqueued;
    REQUIRE(sender.post(o, [&, i](outcome out, std::uint32_t shard) {
      std::lock_guard g{m};
      CHECK(answers.emplace(i, std::pair{out, shard}).second); // once
    }));
  }
  REQUIRE(eventually([&] {
    std::lock_guard g{m};
    return answers.size() == posts;
  }));
  std::size_t enqueued = 0;
  for (const auto& [key, a] : answers) {
    INFO("post " << key);
    auto [out, shard] = a;
    if (key % 10 == 9)
      CHECK(out == outcome::unknown_sim);
    else if (key % 10 == 8)
      CHECK(out == outcome::failed);
    else {
      CHECK(out == outcome::enqueued);
      CHECK(shard == (234150000000000 + key) % 3);
      ++enqueued;
    }
  }
  CHECK(enqueued == want_enqueued);
  CHECK(static_cast<std::uint64_t>(count(conninfo, "SELECT count(*) FROM cluster_inbox")) ==
        want_enqueued);
  CHECK(sender.stats().enqueued.load() == want_enqueued);

  // The owner: entries handed over, deleted by "the writer" (here the test's
  // own connection), settled. The first batch of shard 0 is settled as not
  // applied (nothing deleted): it must come again, the same entries.
  auto writer = test::connect(conninfo);
  std::mutex dm;
  std::map<std::uint32_t, std::vector<std::int64_t>> delivered; // shard -> ids, in order
  std::map<std::string, std::vector<std::uint64_t>> per_sim;    // applied dedupe keys
  std::vector<std::int64_t> refused_once;
  std::atomic<int> dispatches{0};
  std::atomic<bool> in_flight{false};
  cluster::inbox_consumer owner{
      {.node_id = "a", .sweep_interval = 200ms, .max_batch = 5, .retry_after = 50ms},
      conninfo,
      {.owned =
           [] {
             return std::vector<shard_epoch>{{0, 1}, {1, 1}, {2, 1}};
           },
       .apply = nullptr,
       .dispatch =
           [&](std::uint32_t shard, std::vector<cluster::inbox_entry> entries,
               std::function<void(bool)> settled) {
             CHECK_FALSE(in_flight.exchange(true)); // one batch at a time
             dispatches.fetch_add(1);
             std::lock_guard g{dm};
             std::vector<std::int64_t> ids;
             for (const auto& e : entries)
               ids.push_back(e.id);
             if (shard == 0 && refused_once.empty()) {
               refused_once = ids;
               in_flight.store(false);
               settled(false);
               return;
             }
             if (shard == 0 && delivered[0].empty())
               CHECK(ids == refused_once); // delivered again, the same
             for (const auto& e : entries) {
               delivered[shard].push_back(e.id);
               per_sim[e.sim_key].push_back(e.obs.dedupe_key);
               test::exec(writer.get(),
                          "DELETE FROM cluster_inbox WHERE id = " + std::to_string(e.id));
             }
             in_flight.store(false);
             std::thread{[settled = std::move(settled)] { settled(true); }}.detach();
           }}};
  owner.start();
  REQUIRE(eventually([&] { return count(conninfo, "SELECT count(*) FROM cluster_inbox") == 0; }));
  owner.stop();
  std::lock_guard g{dm};
  std::size_t total = 0;
  for (auto& [shard, ids] : delivered) {
    CHECK(std::is_sorted(ids.begin(), ids.end()));
    total += ids.size();
  }
  CHECK(total == want_enqueued);
  for (auto& [sim, keys] : per_sim) {
    INFO(sim);
    CHECK(std::is_sorted(keys.begin(), keys.end())); // post order
  }
  CHECK(owner.stats().failed.load() >= 1);
  CHECK(owner.stats().consumed.load() == want_enqueued);
  sender.stop();
}

TEST_CASE("inbox gate: a SIM with entries in the inbox is pending, and stays so until released, "
          "one query per batch") {
  IMEILOCK_REQUIRE_POSTGRES(pg);
  auto conninfo = fresh_cluster_db(pg);
  auto admin = test::connect(conninfo);
  std::vector<cluster::handoff> items{handoff_of(1, "sim-x", 1), handoff_of(1, "sim-x", 2),
                                      handoff_of(3, "sim-z", 3)};
  REQUIRE(cluster::enqueue(admin.get(), "b", items));

  cluster::inbox_gate gate{{.node_id = "a"}, conninfo};
  gate.start();
  using key = cluster::inbox_gate::key;
  auto ask = [&](std::vector<key> keys) {
    std::promise<std::optional<std::vector<bool>>> p;
    auto f = p.get_future();
    gate.check(std::move(keys), [&p](std::optional<std::vector<bool>> r) { p.set_value(r); });
    REQUIRE(f.wait_for(20s) == std::future_status::ready);
    return f.get();
  };
  // sim-z's entries are of shard 3: asked under shard 3 only (the index).
  auto r = ask({{"sim-x", 1}, {"sim-y", 1}, {"sim-z", 3}, {"sim-x", 1}});
  REQUIRE(r);
  CHECK(*r == std::vector<bool>{true, false, true, true});
  CHECK(gate.stats().queries.load() == 1);

  // The entries are applied (deleted): sim-x stays pending while its answers
  // are not released (its observation's own enqueue may not have committed).
  test::exec(admin.get(), "DELETE FROM cluster_inbox");
  r = ask({{"sim-x", 1}, {"sim-z", 3}});
  REQUIRE(r);
  CHECK(*r == std::vector<bool>{true, true});
  for (const char* k : {"sim-x", "sim-x", "sim-z", "sim-x", "sim-z"})
    gate.release(k);
  r = ask({{"sim-x", 1}, {"sim-z", 3}});
  REQUIRE(r);
  CHECK(*r == std::vector<bool>{false, false});

  // Many checks asked at once share a query.
  std::atomic<int> answered{0};
  auto queries = gate.stats().queries.load();
  for (int i = 0; i < 200; ++i)
    gate.check({{"sim-" + std::to_string(i), 0}}, [&answered](std::optional<std::vector<bool>> a) {
      if (a && a->size() == 1 && !a->front())
        answered.fetch_add(1);
    });
  REQUIRE(eventually([&] { return answered.load() == 200; }));
  auto used = gate.stats().queries.load() - queries;
  CHECK(used < 200);
  std::printf("inbox gate: 200 checks asked at once answered by %llu queries\n",
              static_cast<unsigned long long>(used));

  // No database: unknown (nullopt), never "not pending".
  gate.stop();
  cluster::inbox_gate nowhere{{.node_id = "a"}, "host=/nonexistent dbname=x connect_timeout=1"};
  nowhere.start();
  std::promise<std::optional<std::vector<bool>>> p;
  auto f = p.get_future();
  nowhere.check({{"sim-x", 1}}, [&p](std::optional<std::vector<bool>> a) { p.set_value(a); });
  REQUIRE(f.wait_for(20s) == std::future_status::ready);
  CHECK_FALSE(f.get());
}
