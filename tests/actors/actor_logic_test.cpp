// The SIM layer's actor logic on CAF's deterministic scheduler (dsl_support.hpp):
// which actor gets which message in which order, when a change is
// acknowledged, when timers fire. No sleeps, no polling: the test delivers
// every message and store completion and moves time itself. The threads
// themselves (facade, writer thread, real timers) are sim_layer_test.cpp's.
#include "tests/actors/dsl_support.hpp"

#include <algorithm>

using namespace imeilock;
using namespace imeilock::testing;
using namespace std::chrono_literals;
using actors::ack;
using actors::backend_answer;
using actors::commit_atom;
using actors::new_order;
using actors::sim_idle;
using actors::sim_observation;
using actors::sim_order_outcome;
using actors::sim_work;
using actors::stop_atom;
using actors::sweep_atom;
using actors::tick_atom;

namespace {

/// Collects listener events (all on the test thread here).
struct recorder : actors::sim_listener {
  std::vector<actors::sim_event> events;
  void on_event(const actors::sim_event& ev) override { events.push_back(ev); }
  std::size_t count(lock::notice what) const {
    return static_cast<std::size_t>(
        std::count_if(events.begin(), events.end(), [&](auto& e) { return e.what == what; }));
  }
};

std::size_t bar_orders(store::store& db, const std::string& id) {
  auto orders = db.list_orders(id);
  return static_cast<std::size_t>(std::count_if(
      orders.begin(), orders.end(), [](auto& o) { return o.type == lock::order_type::bar; }));
}

/// A SIM with the IMEI lock enabled and no IMEI yet (R4), everything settled.
actors::sim_id awaiting_first_imei(dsl_fixture& f, const std::string& id,
                                   std::vector<std::uint64_t> imsis) {
  auto sim = f.add_sim(id, std::move(imsis));
  auto placed = f.order(id, lock::order_type::enable_imei_lock);
  f.settle();
  REQUIRE(placed->has_value());
  REQUIRE((*placed)->error == ec::ok);
  REQUIRE(f.committed(id).lock == lock::lock_state::awaiting_first_imei);
  return sim;
}

} // namespace

TEST_CASE("a change is acknowledged only once its write is committed, a no-change at once by "
          "the shard (R6)",
          "[actors][dsl]") {
  temp_dir dir;
  dsl_fixture f{config_for(dir), fast_orders(300ms)};
  auto& sched = f.sched;
  auto id = iccid(1);
  auto sim_id = awaiting_first_imei(f, id, {imsi(1)});
  auto shard = f.shard_of(sim_id);

  // The first IMEI changes the state: the shard hands it to the SIM's actor.
  auto answer = f.observe(imsi(1), imei(100));
  expect((sim_observation), from(_).to(shard));
  auto sim = f.receiver_of<sim_work>(shard);
  expect((sim_work), from(shard).to(sim));
  CHECK_FALSE(answer->has_value()); // the write is in flight
  REQUIRE(f.commit() == 1);         // SQLite committed it...
  CHECK_FALSE(answer->has_value()); // ...and the actor has not heard yet
  CHECK(f.committed(id).lock == lock::lock_state::locked);
  expect((commit_atom, bool), from(_).to(sim).with(_, true));
  REQUIRE(answer->has_value());
  CHECK(**answer == ack::ok);
  // Idle again: the shard's row is the state.
  expect((sim_idle), from(sim).to(shard));
  CHECK_FALSE(sched.has_job());

  // The same device again changes nothing: answered by the shard alone.
  auto again = f.observe(imsi(1), imei(100));
  expect((sim_observation), from(_).to(shard));
  REQUIRE(again->has_value());
  CHECK(**again == ack::ok);
  CHECK_FALSE(sched.has_job());
  CHECK(f.commit() == 0);
}

TEST_CASE("events for a SIM wait behind its write in flight and are answered in order",
          "[actors][dsl]") {
  temp_dir dir;
  dsl_fixture f{config_for(dir), fast_orders(300ms)};
  auto& sched = f.sched;
  auto id = iccid(2);
  auto sim_id = awaiting_first_imei(f, id, {imsi(2)});
  auto shard = f.shard_of(sim_id);
  auto audits = f.db->list_events(id, 100).size();

  auto first = f.observe(imsi(2), imei(100), 501);
  expect((sim_observation), from(_).to(shard));
  auto sim = f.receiver_of<sim_work>(shard);
  expect((sim_work), from(shard).to(sim));
  // A retransmit of the same record while the write is in flight: the row
  // does not hold the change yet, so the shard sends it behind the write...
  auto retransmit = f.observe(imsi(2), imei(100), 501);
  expect((sim_observation), from(_).to(shard));
  expect((sim_work), from(shard).to(sim));
  // ...where it is not acknowledged ahead of the change it repeats.
  CHECK_FALSE(first->has_value());
  CHECK_FALSE(retransmit->has_value());

  REQUIRE(f.commit() == 1);
  expect((commit_atom, bool), from(_).to(sim).with(_, true));
  REQUIRE(first->has_value());
  REQUIRE(retransmit->has_value()); // deduplicated: no second write
  CHECK(**first == ack::ok);
  CHECK(**retransmit == ack::ok);
  expect((sim_idle), from(sim).to(shard));
  CHECK(f.commit() == 0);
  CHECK(f.db->list_events(id, 100).size() == audits + 1); // one change, one audit row
}

TEST_CASE("a write the store rolls back is answered store_failed and leaves the committed "
          "state, the peer's retry commits",
          "[actors][dsl]") {
  temp_dir dir;
  dsl_fixture f{config_for(dir), fast_orders(300ms)};
  auto& sched = f.sched;
  auto id = iccid(3);
  auto sim_id = f.add_sim(id, {imsi(3)});
  auto shard = f.shard_of(sim_id);
  auto seen = f.observe(imsi(3), imei(1));
  f.settle();
  REQUIRE(**seen == ack::ok);

  f.db->exec_on_writer_for_testing("PRAGMA query_only=1"); // the file refuses writes
  auto refused = f.observe(imsi(3), imei(2));
  expect((sim_observation), from(_).to(shard));
  auto sim = f.receiver_of<sim_work>(shard);
  expect((sim_work), from(shard).to(sim));
  REQUIRE(f.commit() == 1);
  expect((commit_atom, bool), from(_).to(sim).with(_, false));
  REQUIRE(refused->has_value());
  CHECK(**refused == ack::store_failed);
  expect((sim_idle), from(sim).to(shard));
  CHECK(f.committed(id).last_seen_imei == imei(1).device);
  // Unchanged observations need no write: still answered.
  auto unchanged = f.observe(imsi(3), imei(1));
  f.settle();
  CHECK(**unchanged == ack::ok);

  f.db->exec_on_writer_for_testing("PRAGMA query_only=0");
  auto retry = f.observe(imsi(3), imei(2));
  f.settle();
  CHECK(**retry == ack::ok);
  CHECK(f.committed(id).last_seen_imei == imei(2).device);
}

TEST_CASE("a violation raises exactly one bar, the SIM keeps working, and is barred exactly "
          "when the lead time runs out (R7 R8 R9)",
          "[actors][dsl]") {
  temp_dir dir;
  recorder rec;
  dsl_fixture f{config_for(dir), fast_orders(300ms), &rec};
  auto& sched = f.sched;
  auto id = iccid(4);
  auto sim_id = awaiting_first_imei(f, id, {imsi(4)});
  auto shard = f.shard_of(sim_id);
  auto orders = f.ctx.orders;
  auto locked = f.observe(imsi(4), imei(100));
  f.settle();
  REQUIRE(**locked == ack::ok);

  // R7: a second device. Once the bar is durable with the state, the order
  // actor takes it over and submits it (the simulated backend accepts).
  auto t0 = f.now_ms();
  auto violation = f.observe(imsi(4), imei(200));
  expect((sim_observation), from(_).to(shard));
  auto sim = f.receiver_of<sim_work>(shard);
  expect((sim_work), from(shard).to(sim));
  REQUIRE(f.commit() == 1);
  expect((commit_atom, bool), from(_).to(sim).with(_, true));
  CHECK(**violation == ack::ok);
  expect((new_order), from(sim).to(orders));
  expect((backend_answer), from(_).to(orders));
  expect((sim_idle), from(sim).to(shard));
  f.settle();
  auto s = f.committed(id);
  CHECK(s.bar == lock::bar_state::bar_pending);
  CHECK(s.reason == lock::bar_reason::imei_lock);
  CHECK(s.trigger_imei == imei(200).device);
  CHECK(rec.count(lock::notice::violation) == 1);
  auto open = f.db->list_orders(id);
  REQUIRE(open.size() == 2); // the enable order and the bar
  CHECK(open.front().type == lock::order_type::bar);
  CHECK(open.front().status == orders::order_status::submitted);
  CHECK(open.front().due_at_ms == t0 + 300);

  // R8: the SIM keeps working meanwhile; further devices raise no 2nd bar.
  auto third = f.observe(imsi(4), imei(300));
  auto back = f.observe(imsi(4), imei(200));
  f.settle();
  CHECK(**third == ack::ok);
  CHECK(**back == ack::ok);
  CHECK(bar_orders(*f.db, id) == 1);

  f.advance(299ms);
  CHECK(f.committed(id).bar == lock::bar_state::bar_pending);
  sched.clock().advance_time(1ms);
  expect((tick_atom, std::int64_t), from(orders).to(orders).with(_, t0 + 300));
  expect((sim_order_outcome), from(orders).to(shard));
  expect((sim_work), from(shard).to(sim));
  REQUIRE(f.commit() == 1);
  expect((commit_atom, bool), from(_).to(sim).with(_, true));
  s = f.committed(id);
  CHECK(s.bar == lock::bar_state::barred);
  CHECK(s.last_seen_imei == imei(200).device); // R9: frozen at the trigger
  auto done = f.db->list_orders(id).front();
  CHECK(done.status == orders::order_status::completed);
  CHECK(done.finished_at_ms == t0 + 300);
  f.settle();
  CHECK(bar_orders(*f.db, id) == 1);
  CHECK(rec.count(lock::notice::bar_completed) == 1);
}

TEST_CASE("a retransmitted observation (same dedupe key) changes nothing a second time",
          "[actors][dsl]") {
  temp_dir dir;
  dsl_fixture f{config_for(dir), fast_orders(100ms)};
  auto& sched = f.sched;
  auto id = iccid(12);
  auto sim_id = f.add_sim(id, {imsi(12)});
  auto shard = f.shard_of(sim_id);
  auto a = f.observe(imsi(12), imei(1), 1001);
  f.settle();
  auto b = f.observe(imsi(12), imei(2), 1002);
  f.settle();
  CHECK(**a == ack::ok);
  CHECK(**b == ack::ok);
  CHECK(f.committed(id).last_seen_imei == imei(2).device);

  // The first record again, late: a change by the row, so the shard forwards
  // it; the SIM actor knows the key and answers without a write.
  auto late = f.observe(imsi(12), imei(1), 1001);
  expect((sim_observation), from(_).to(shard));
  auto sim = f.receiver_of<sim_work>(shard);
  expect((sim_work), from(shard).to(sim));
  REQUIRE(late->has_value());
  CHECK(**late == ack::ok);
  CHECK(f.commit() == 0);
  expect((sim_idle), from(sim).to(shard));
  CHECK_FALSE(sched.has_job());
  CHECK(f.committed(id).last_seen_imei == imei(2).device);
}

TEST_CASE("idle SIM actors are passivated after passivate_after and come back with their state",
          "[actors][dsl]") {
  temp_dir dir;
  auto cfg = config_for(dir); // passivate_after 60 s: the shard sweeps every 15 s
  dsl_fixture f{cfg, fast_orders(90s)};
  auto& sched = f.sched;
  auto id = iccid(20);
  auto sim_id = awaiting_first_imei(f, id, {imsi(20)});
  auto shard = f.shard_of(sim_id);
  auto first = f.observe(imsi(20), imei(1));
  f.settle();
  REQUIRE(**first == ack::ok);
  REQUIRE(f.sim_actors_alive() == 1);

  // Everything above happened at t = 0; the sweep at 60 s stops the actor.
  f.advance(59'999ms);
  CHECK(f.sim_actors_alive() == 1);
  sched.clock().advance_time(1ms);
  expect((sweep_atom), from(shard).to(shard));
  auto sim = f.receiver_of<stop_atom>(shard);
  expect((stop_atom), from(shard).to(sim));
  CHECK(f.sim_actors_alive() == 0);

  // The row answers unchanged observations without an actor...
  auto unchanged = f.observe(imsi(20), imei(1));
  expect((sim_observation), from(_).to(shard));
  REQUIRE(unchanged->has_value());
  CHECK(**unchanged == ack::ok);
  CHECK_FALSE(sched.has_job());
  // ...and a violation spawns a new actor from the row: still locked to device 1.
  auto t0 = f.now_ms();
  auto violation = f.observe(imsi(20), imei(2));
  expect((sim_observation), from(_).to(shard));
  auto respawned = f.receiver_of<sim_work>(shard);
  CHECK(respawned != sim);
  f.settle();
  CHECK(**violation == ack::ok);
  auto s = f.committed(id);
  CHECK(s.lock_imei == imei(1).device);
  CHECK(s.bar == lock::bar_state::bar_pending);

  // Idle past passivate_after before the 90 s lead time runs out: passivated
  // again, and the completion brings the actor back to close the bar.
  f.advance(75s);
  CHECK(f.sim_actors_alive() == 0);
  CHECK(f.committed(id).bar == lock::bar_state::bar_pending);
  f.advance(std::chrono::milliseconds{t0 + 90'000 - f.now_ms()});
  CHECK(f.committed(id).bar == lock::bar_state::barred);
  CHECK(f.sim_actors_alive() == 1);
  CHECK(f.metrics.passivations->Value() == 2);
}

TEST_CASE("a burst of idle SIM actors is passivated a chunk at a time, not in one sweep",
          "[actors][dsl]") {
  temp_dir dir;
  dsl_fixture f{config_for(dir), fast_orders(90s)}; // 2 shards, passivate_after 60 s
  // 600 SIMs, 300 per shard, each with the actor of its upsert, all at t = 0.
  for (std::uint64_t i = 0; i < 600; ++i)
    f.add_sim(iccid(1000 + i), {imsi(1000 + i)});
  REQUIRE(f.sim_actors_alive() == 600);
  f.advance(59'999ms);
  CHECK(f.sim_actors_alive() == 600);
  // The sweep at 60 s stops 256 per shard; the rest 10 ms later.
  f.advance(1ms);
  CHECK(f.sim_actors_alive() == 600 - 2 * 256);
  CHECK(f.metrics.passivations->Value() == 2 * 256);
  f.advance(9ms);
  CHECK(f.sim_actors_alive() == 600 - 2 * 256);
  f.advance(1ms);
  CHECK(f.sim_actors_alive() == 0);
  CHECK(f.metrics.passivations->Value() == 600);
  // An actor that had work since the scan is not stopped.
  auto changed = f.observe(imsi(1000), imei(3));
  f.settle();
  REQUIRE(**changed == ack::ok);
  CHECK(f.sim_actors_alive() == 1);
  f.advance(30s);
  CHECK(f.sim_actors_alive() == 1);
  CHECK(f.committed(iccid(1000)).last_seen_imei == imei(3).device);
}

TEST_CASE("the activity write-behind writes a SIM's times again only when they move to another "
          "step of activity_resolution, and a clean stop writes the rest",
          "[actors][dsl]") {
  temp_dir dir;
  auto cfg = config_for(dir);
  cfg.activity_flush = 1s;
  cfg.activity_resolution = 60s;
  auto id = iccid(40);
  // A multiple of 60 s; the SIM is the store's first (row 0): its steps
  // start at the multiples of 60 s (registry.cpp, activity_moved_step).
  const auto t0 = static_cast<std::uint32_t>(test_epoch_ms / 1000);
  auto stored = [&](dsl_fixture& f) {
    auto s = f.db->get_sim(id);
    REQUIRE(s);
    return s->activity;
  };
  auto observe = [](dsl_fixture& f, lock::imei_value value) {
    auto a = f.observe(imsi(40), value);
    f.settle();
    REQUIRE(a->has_value());
    REQUIRE(**a == ack::ok);
  };
  {
    dsl_fixture f{cfg, fast_orders(1s)};
    f.add_sim(id, {imsi(40)});
    f.advance(1s);
    observe(f, imei(1)); // t0 + 1: the first observation is written at once
    f.advance(1500ms);
    CHECK(stored(f) == lock::sim_activity{t0 + 1, t0 + 1});
    f.advance(28'500ms);
    observe(f, imei(1)); // t0 + 31: the same step
    f.advance(2s);
    CHECK(stored(f) == lock::sim_activity{t0 + 1, t0 + 1});
    f.advance(28s);
    observe(f, imei(1)); // t0 + 61: the next step
    f.advance(2s);
    CHECK(stored(f) == lock::sim_activity{t0 + 61, t0 + 61});
    f.advance(8s);
    observe(f, lock::imei_value{}); // t0 + 71, no IMEI: the same step
    f.advance(2s);
    CHECK(stored(f) == lock::sim_activity{t0 + 61, t0 + 61});

    // Each SIM's steps start at an offset of its own (its row's index, in
    // seconds): SIMs observed all the time do not all move at once. The
    // fourth SIM is row 1 of shard 1: its steps start 1 s past the minute.
    for (std::uint64_t i = 41; i <= 43; ++i)
      f.add_sim(iccid(i), {imsi(i)});
    REQUIRE(f.inv.by_iccid(iccid(43)) == 3);
    f.advance(std::chrono::milliseconds{(std::int64_t{t0} + 120) * 1000 - f.now_ms()});
    for (auto i : {40, 43}) {
      auto a = f.observe(imsi(i), imei(1)); // t0 + 120
      f.settle();
      REQUIRE(**a == ack::ok);
    }
    f.advance(1s);
    for (auto i : {40, 43}) {
      auto a = f.observe(imsi(i), imei(1)); // t0 + 121
      f.settle();
      REQUIRE(**a == ack::ok);
    }
    f.advance(2s);
    CHECK(stored(f) == lock::sim_activity{t0 + 120, t0 + 120}); // steps at the minute
    auto other = f.db->get_sim(iccid(43));
    REQUIRE(other);
    CHECK(other->activity == lock::sim_activity{t0 + 121, t0 + 121}); // 1 s past it
  } // a clean stop: the rows that moved within their step are written too
  dsl_fixture f{cfg, fast_orders(1s), nullptr, test_epoch_ms + 130'000};
  CHECK(stored(f) == lock::sim_activity{t0 + 121, t0 + 121});
}

TEST_CASE("a restart resumes open orders with their remaining lead time", "[actors][dsl]") {
  temp_dir dir;
  auto id = iccid(30);
  std::int64_t due = 0;
  {
    dsl_fixture f{config_for(dir), fast_orders(1500ms)};
    f.add_sim(id, {imsi(30)});
    auto placed = f.order(id, lock::order_type::bar);
    f.settle();
    REQUIRE((*placed)->error == ec::ok);
    due = f.now_ms() + 1500;
    f.advance(500ms);
    CHECK(f.committed(id).bar == lock::bar_state::bar_pending);
  } // "crash" 500 ms into the lead time (the store has everything acknowledged)

  // Back 1 s after the order was placed: 500 ms of lead time are left.
  dsl_fixture f{config_for(dir), fast_orders(1500ms), nullptr, test_epoch_ms + 1000};
  CHECK(f.committed(id).bar == lock::bar_state::bar_pending);
  f.advance(499ms);
  CHECK(f.committed(id).bar == lock::bar_state::bar_pending);
  f.advance(1ms);
  CHECK(f.committed(id).bar == lock::bar_state::barred);
  auto orders = f.db->list_orders(id);
  REQUIRE(orders.size() == 1);
  CHECK(orders[0].status == orders::order_status::completed);
  CHECK(orders[0].finished_at_ms == due);
  // The inventory came back from the store: observations are routed.
  auto seen = f.observe(imsi(30), imei(1));
  f.settle();
  CHECK(**seen == ack::ok);
}

TEST_CASE("a reload (SIGHUP) gives orders placed afterwards the new lead time and backend, open "
          "orders keep their due time",
          "[actors][dsl]") {
  temp_dir dir;
  dsl_fixture f{config_for(dir), fast_orders(3000ms)};
  auto before = iccid(60);
  auto after = iccid(61);
  f.add_sim(before, {imsi(60)});
  f.add_sim(after, {imsi(61)});
  auto t0 = f.now_ms();
  auto first = f.order(before, lock::order_type::bar);
  f.settle();
  REQUIRE((*first)->error == ec::ok);
  REQUIRE(f.db->list_orders(before).at(0).due_at_ms == t0 + 3000);

  auto next = fast_orders(100ms);
  // A changed backend is rebuilt: this one refuses its first submission.
  auto tune = [](orders::network_config& n) {
    n.backend.fail_first = 1;
    n.retry.initial_backoff = 10ms;
  };
  tune(next.defaults);
  for (auto& [name, n] : next.networks)
    tune(n);
  caf::anon_send(f.ctx.orders, actors::orders_reload{next});
  f.settle();

  auto second = f.order(after, lock::order_type::bar);
  f.settle();
  REQUIRE((*second)->error == ec::ok);
  // Refused at t0, retried at t0 + 10 ms, accepted: due 100 ms later.
  f.advance(109ms);
  CHECK(f.committed(after).bar == lock::bar_state::bar_pending);
  f.advance(1ms);
  CHECK(f.committed(after).bar == lock::bar_state::barred);
  auto done = f.db->list_orders(after);
  REQUIRE(done.size() == 1);
  CHECK(done[0].status == orders::order_status::completed);
  CHECK(done[0].attempts == 2);
  CHECK(done[0].finished_at_ms == t0 + 110);

  // The open order kept its state and due time.
  f.advance(std::chrono::milliseconds{t0 + 2999 - f.now_ms()});
  CHECK(f.committed(before).bar == lock::bar_state::bar_pending);
  CHECK(f.db->list_orders(before).at(0).status == orders::order_status::submitted);
  f.advance(1ms);
  CHECK(f.committed(before).bar == lock::bar_state::barred);
  CHECK(f.db->list_orders(before).at(0).finished_at_ms == t0 + 3000);
}

TEST_CASE("events name the IMSI of the observation, or the SIM's first IMSI for order outcomes",
          "[actors][dsl]") {
  temp_dir dir;
  recorder rec;
  dsl_fixture f{config_for(dir), fast_orders(100ms), &rec};
  auto id = iccid(70);
  awaiting_first_imei(f, id, {imsi(70), imsi(71)});
  CHECK(rec.count(lock::notice::lock_enabled) == 1);
  auto first = f.observe(imsi(71), imei(1)); // R6 on the 2nd IMSI
  f.settle();
  auto second = f.observe(imsi(71), imei(2)); // R7
  f.settle();
  CHECK(**first == ack::ok);
  CHECK(**second == ack::ok);
  f.advance(100ms);
  REQUIRE(rec.count(lock::notice::bar_completed) == 1);
  std::size_t checked = 0;
  for (auto& ev : rec.events) {
    CHECK(ev.iccid == id);
    switch (ev.what) {
      case lock::notice::lock_enabled:
      case lock::notice::bar_completed:
        CHECK(ev.imsi == imsi(70));
        ++checked;
        break;
      case lock::notice::lock_set_first_imei:
      case lock::notice::change_event:
      case lock::notice::violation:
        CHECK(ev.imsi == imsi(71));
        ++checked;
        break;
      default:
        CHECK(ev.imsi != 0);
        break;
    }
    CHECK(ev.at_ms >= test_epoch_ms);
    CHECK(ev.at_ms <= f.now_ms());
  }
  CHECK(checked >= 4);
}

TEST_CASE("no actor reads a SIM from the store: events and orders take its IMSIs from the index",
          "[actors][dsl]") {
  temp_dir dir;
  recorder rec;
  dsl_fixture f{config_for(dir), fast_orders(100ms), &rec};
  auto id = iccid(80);
  awaiting_first_imei(f, id, {imsi(80), imsi(81)});
  // From here on a SIM cannot be read from the store (its IMSI table is
  // gone); writing states, orders and audits does not touch that table.
  f.db->exec_on_writer_for_testing("ALTER TABLE imsis RENAME TO imsis_gone");
  CHECK_THROWS(f.db->get_sim(id));
  auto failed_reads = faults(fault_site::store_read);

  auto first = f.observe(imsi(81), imei(1)); // R6
  f.settle();
  auto second = f.observe(imsi(81), imei(2)); // R7: a bar order, sent to the backend
  f.settle();
  REQUIRE(**first == ack::ok);
  REQUIRE(**second == ack::ok);
  f.advance(100ms);
  // The bar was submitted with the SIM's IMSIs and its completion names the
  // first one: both came from the index, no read failed.
  REQUIRE(rec.count(lock::notice::bar_completed) == 1);
  for (auto& ev : rec.events)
    if (ev.what == lock::notice::bar_completed)
      CHECK(ev.imsi == imsi(80));
  CHECK(faults(fault_site::store_read) == failed_reads);

  f.db->exec_on_writer_for_testing("ALTER TABLE imsis_gone RENAME TO imsis");
  CHECK(f.committed(id).bar == lock::bar_state::barred);
}

TEST_CASE("upserts take the SIM's IMSIs from the index: each releases what the one before "
          "committed, and a first upsert the store refused still creates the SIM",
          "[actors][dsl]") {
  temp_dir dir;
  dsl_fixture f{config_for(dir), fast_orders(300ms)};
  auto id = iccid(81);
  auto sim = f.inv.add(id, "multinet", {}); // as the facade adds a new ICCID

  f.db->exec_on_writer_for_testing("PRAGMA query_only=1"); // the file refuses writes
  auto refused = f.upsert(sim, id, {imsi(90)}, true);
  f.settle();
  REQUIRE(refused->has_value());
  CHECK((*refused)->error == ec::store_failed);
  CHECK(f.inv.by_imsi(imsi(90)) == actors::no_sim);
  f.db->exec_on_writer_for_testing("PRAGMA query_only=0");

  // The retry finds the ICCID in the index (not created there), but the
  // store has no such SIM: it is created.
  auto retry = f.upsert(sim, id, {imsi(90)}, false);
  f.settle();
  REQUIRE(retry->has_value());
  CHECK((*retry)->error == ec::ok);
  CHECK((*retry)->created);
  auto events = f.db->list_events(id, 10);
  REQUIRE(events.size() == 1);
  CHECK(events.front().cause == "inventory_created");
  CHECK(f.inv.by_imsi(imsi(90)) == sim);

  // Two upserts back to back: the second waits behind the first's write and
  // then releases exactly the IMSIs the first committed.
  auto a = f.upsert(sim, id, {imsi(91), imsi(92)}, false);
  auto b = f.upsert(sim, id, {imsi(93)}, false);
  f.settle();
  REQUIRE(a->has_value());
  REQUIRE(b->has_value());
  CHECK((*a)->error == ec::ok);
  CHECK((*b)->error == ec::ok);
  CHECK_FALSE((*a)->created);
  CHECK_FALSE((*b)->created);
  for (auto gone : {imsi(90), imsi(91), imsi(92)})
    CHECK(f.inv.by_imsi(gone) == actors::no_sim);
  CHECK(f.inv.by_imsi(imsi(93)) == sim);
  CHECK(f.inv.imsis(sim) == std::vector<std::uint64_t>{imsi(93)});
  CHECK(f.db->get_sim(id)->imsis == std::vector<std::uint64_t>{imsi(93)});
}
