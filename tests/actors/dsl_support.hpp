#pragma once
// The SIM layer's actors on CAF's deterministic scheduler: one thread, every
// message delivered when the test says so, time moved by the test. The
// actors are the real ones (registry shards, SIM actors, order actor), with a
// real inventory index and a real SQLite store on disk. Two things the daemon
// takes from its threads are handed to the test instead (layer_context):
//  - the clock: unix ms derived from CAF's test clock, the one the timers run on;
//  - store completions: the writer thread commits for real, and the
//    completions wait in a queue until commit() delivers them (commit_atom)
//    from the test thread.
//
//   dsl_fixture f{config_for(dir), fast_orders(300ms)};
//   auto sim = f.add_sim(iccid(1), {imsi(1)});
//   auto answer = f.observe(imsi(1), imei(100));
//   expect((sim_observation), from(_).to(f.shard_of(sim)));
//   ...
//   f.commit();
//   expect((commit_atom, bool), from(_).to(sim_hdl).with(_, true));

#include "actors/context.hpp"
#include "tests/actors/test_support.hpp"

#include <caf/actor_cast.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "tests/actors/caf_dsl.hpp"

#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

namespace imeilock::testing {

/// Unix ms at the start of a fixture's clock unless told otherwise
/// (2026-11-27T00:00:00Z): every timestamp in these tests is exact.
inline constexpr std::int64_t test_epoch_ms = 1'795'737'600'000;

/// What a callback handed to the actors received, if it ran yet.
template <class T>
using answer = std::shared_ptr<std::optional<T>>;

struct dsl_fixture {
  static caf::actor_system_config& deterministic(caf::actor_system_config& cfg) {
    cfg.set("scheduler.policy", caf::atom("testing"));
    return cfg;
  }

  caf::actor_system_config caf_cfg;
  caf::actor_system sys{deterministic(caf_cfg)};
  caf::scheduler::test_coordinator& sched{
      dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler())};
  caf::actor_clock::time_point clock_start = sched.clock().now();
  std::int64_t start_ms;

  prometheus::Registry registry;
  actors::layer_metrics metrics{registry};
  actors::inventory inv;
  std::mutex commits_mtx;
  std::vector<std::pair<actors::sim_actor, bool>> commits; ///< settled, not yet delivered
  actors::layer_context ctx;
  std::unique_ptr<store::store> db; ///< last: its writer thread stops first

  /// Opens the store, loads the SIMs it has into the index and the shards'
  /// rows, spawns the actors and hands them the open orders (as
  /// sim_layer::start() does), and runs everything that startup causes.
  dsl_fixture(const actors::sim_layer_config& cfg, const orders::orders_config& ocfg,
              actors::sim_listener* listener = nullptr, std::int64_t epoch_ms = test_epoch_ms,
              lock::eligibility_config elig = {}) :
      start_ms(epoch_ms), inv(std::move(elig)) {
    ctx.cfg = cfg;
    ctx.orders_cfg = ocfg;
    auto opened = store::open(cfg.store);
    if (!opened) // Catch reports it as the test's failure
      throw std::runtime_error(opened.error().describe());
    db = std::move(*opened);
    ctx.db = db.get();
    ctx.inv = &inv;
    ctx.metrics = &metrics;
    ctx.listener = listener;
    ctx.io = nullptr; // simulated backends: they answer within submit()
    ctx.clock = [this] { return now_ms(); };
    ctx.deliver_commit = [this](const actors::sim_actor& hdl, bool ok) {
      std::lock_guard g{commits_mtx};
      commits.emplace_back(hdl, ok);
    };
    auto shards = std::max<std::uint32_t>(1, cfg.shards);
    ctx.initial_rows.assign(shards, {});
    db->load_inventory([&](const store::inventory_row& r) {
      auto net = inv.intern(r.network);
      auto id = inv.add(r.iccid, r.network, r.imsis);
      ctx.initial_rows[id % shards].push_back(
          actors::compact_row::loaded(r.state, r.activity, net));
    });
    ctx.orders = actors::spawn_order_actor(sys, &ctx);
    for (std::uint32_t i = 0; i < shards; ++i)
      ctx.shards.push_back(actors::spawn_registry_shard(sys, &ctx, i));
    caf::anon_send(ctx.orders, actors::orders_resume{db->open_orders()});
    settle();
  }

  ~dsl_fixture() {
    for (auto& s : ctx.shards)
      caf::anon_send(s, actors::stop_atom::value);
    caf::anon_send(ctx.orders, actors::stop_atom::value);
    sched.run();
    db.reset(); // commits what was submitted
    std::lock_guard g{commits_mtx};
    commits.clear();
  }

  dsl_fixture(const dsl_fixture&) = delete;
  dsl_fixture& operator=(const dsl_fixture&) = delete;

  // -- Time and the store ---------------------------------------------------------

  /// Unix ms as the actors see it.
  std::int64_t now_ms() const {
    return start_ms +
           std::chrono::duration_cast<std::chrono::milliseconds>(sched.clock().now() - clock_start)
               .count();
  }

  /// Waits until the store's writer has settled every change submitted so far
  /// (committed for real, or rolled back), then sends each completion to its
  /// SIM actor from this thread, in commit order. Returns how many.
  std::size_t commit() {
    db->flush();
    std::vector<std::pair<actors::sim_actor, bool>> ready;
    {
      std::lock_guard g{commits_mtx};
      ready.swap(commits);
    }
    for (auto& [hdl, ok] : ready)
      caf::anon_send(hdl, actors::commit_atom::value, ok);
    return ready.size();
  }

  /// Runs every message, store commit and timer due now until nothing is left.
  void settle() {
    for (int round = 0;; ++round) {
      REQUIRE(round < 10000); // a message loop, not the test's subject
      auto ran = sched.run();
      auto committed = commit();
      auto fired = sched.clock().advance_time(caf::timespan{0});
      if (ran + committed + fired == 0)
        return;
    }
  }

  /// Moves time forward one millisecond at a time, settling whenever a timer
  /// fired (so every timer fires at its own time, as with a real clock).
  void advance(std::chrono::milliseconds d) {
    settle();
    for (auto i = 0; i < d.count(); ++i)
      if (sched.clock().advance_time(std::chrono::milliseconds{1}) > 0 || sched.has_job())
        settle();
  }

  // -- Handles ----------------------------------------------------------------------

  actors::registry_actor shard_of(actors::sim_id id) const { return ctx.shard_of(id); }

  /// The actor whose next message is a `T` from `sender`: how a test gets the
  /// handle of a SIM actor its shard just spawned.
  template <class T, class Handle>
  caf::actor receiver_of(const Handle& sender) {
    auto from = caf::actor_cast<caf::strong_actor_ptr>(sender);
    for (auto* job : sched.jobs) {
      auto* a = dynamic_cast<caf::abstract_actor*>(job);
      if (a == nullptr)
        continue;
      auto* next = a->peek_at_next_mailbox_element();
      if (next != nullptr && next->sender == from && next->content().match_elements<T>())
        return caf::actor_cast<caf::actor>(a);
    }
    FAIL("no actor has a message of that type from that sender next");
    return {};
  }

  /// SIM actors alive, as the shards count them (runs the shards).
  std::size_t sim_actors_alive() {
    caf::scoped_actor self{sys, true};
    std::size_t total = 0;
    for (auto& s : ctx.shards) {
      auto pending = self->request(s, caf::infinite, actors::counts_atom::value);
      sched.run();
      pending.receive([&](const actors::registry_counts& c) { total += c.active; },
                      [](const caf::error&) { FAIL("a shard did not answer"); });
    }
    return total;
  }

  // -- Work, as the sim_layer facade hands it to the shards -------------------------
  // Each call only sends the message; the test runs it (expect, settle).

  /// An observation on `imsi_value` (a SIM in the index).
  answer<actors::ack> observe(std::uint64_t imsi_value, lock::imei_value value,
                              std::uint64_t key = 0) {
    auto id = inv.by_imsi(imsi_value);
    REQUIRE(id != actors::no_sim);
    actors::observation obs;
    obs.imsi = imsi_value;
    obs.imei = value;
    obs.dedupe_key = key;
    obs.peer = "test";
    auto out = std::make_shared<std::optional<actors::ack>>();
    caf::anon_send(shard_of(id),
                   actors::sim_observation{id, std::move(obs), [out](actors::ack a) { *out = a; }});
    return out;
  }

  /// An operator order for the SIM `iccid_value`.
  answer<actors::write_result> order(const std::string& iccid_value, lock::order_type type,
                                     lock::unbar_mode mode = lock::unbar_mode::none) {
    auto id = inv.by_iccid(iccid_value);
    REQUIRE(id != actors::no_sim);
    auto out = std::make_shared<std::optional<actors::write_result>>();
    caf::anon_send(shard_of(id), actors::sim_order{id,
                                                   {type, mode, false},
                                                   now_ms(),
                                                   [out](actors::write_result r) { *out = r; }});
    return out;
  }

  /// An identity upsert of SIM `id` (in the index already), as sim_layer::upsert_sim
  /// sends it: `created` when the facade has just added the ICCID to the index.
  answer<actors::write_result> upsert(actors::sim_id id, const std::string& iccid_value,
                                      std::vector<std::uint64_t> imsis, bool created,
                                      const std::string& network = "multinet") {
    auto out = std::make_shared<std::optional<actors::write_result>>();
    caf::anon_send(shard_of(id),
                   actors::sim_upsert_msg{id,
                                          {iccid_value, std::move(imsis), "447700900001", network,
                                           lock::sim_status::active},
                                          inv.intern(network),
                                          created,
                                          now_ms(),
                                          [out](actors::write_result r) { *out = r; }});
    return out;
  }

  /// Adds a SIM (as sim_layer::upsert_sim does for a new ICCID) and settles:
  /// it is committed when this returns.
  actors::sim_id add_sim(const std::string& iccid_value, std::vector<std::uint64_t> imsis,
                         const std::string& network = "multinet") {
    auto id = inv.add(iccid_value, network, {});
    auto out = upsert(id, iccid_value, std::move(imsis), true, network);
    settle();
    REQUIRE(out->has_value());
    REQUIRE((*out)->error == ec::ok);
    return id;
  }

  /// The SIM's committed state, read back from the store.
  lock::sim_state committed(const std::string& iccid_value) {
    auto s = db->get_sim(iccid_value);
    REQUIRE(s);
    return s->state;
  }
};

} // namespace imeilock::testing
