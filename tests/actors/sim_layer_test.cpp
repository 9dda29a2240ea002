// The SIM layer through its facade: a real actor system, a real store on
// disk, the product stories end to end (observations + orders -> state).
#include "tests/actors/test_support.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>

using namespace imeilock;
using namespace imeilock::testing;
using namespace std::chrono_literals;
using actors::ack;

namespace {

actors::sim_layer_config config_for(const temp_dir& dir) {
  actors::sim_layer_config cfg;
  cfg.store.path = dir.db();
  cfg.passivate_after = 60s;
  return cfg;
}

/// Collects listener events.
struct recorder : actors::sim_listener {
  std::mutex mtx;
  std::vector<actors::sim_event> events;
  void on_event(const actors::sim_event& ev) override {
    std::lock_guard g{mtx};
    events.push_back(ev);
  }
  std::size_t count(lock::notice what) {
    std::lock_guard g{mtx};
    return static_cast<std::size_t>(
      std::count_if(events.begin(), events.end(), [&](auto& e) { return e.what == what; }));
  }
};

} // namespace

TEST_CASE("the lock story: enable, first IMEI, a 2nd device raises exactly one bar, barred "
          "after the lead time",
          "[actors]") {
  temp_dir dir;
  recorder rec;
  layer_fixture f{config_for(dir), fast_orders(300ms), &rec};
  auto id = iccid(1);
  REQUIRE(f.upsert(id, {imsi(1)}).created);
  CHECK(f.sim(id)->state.status == lock::sim_status::active);

  // R4 without a known IMEI: awaiting the first one.
  auto r = f.order(id, lock::order_type::enable_imei_lock);
  REQUIRE(r.error == ec::ok);
  REQUIRE(r.order);
  CHECK(r.order->type == lock::order_type::enable_imei_lock);
  REQUIRE(f.wait_for([&] { return f.sim(id)->state.lock == lock::lock_state::awaiting_first_imei; }));

  // R6: the first IMEI becomes the lock.
  CHECK(f.observe(imsi(1), imei(100)) == ack::ok);
  auto s = f.sim(id)->state;
  CHECK(s.lock == lock::lock_state::locked);
  CHECK(s.lock_imei == imei(100).device);

  // Same device again: nothing changes (and the answer is ok).
  CHECK(f.observe(imsi(1), imei(100)) == ack::ok);

  // R7: a 2nd device raises one bar; the SIM keeps working meanwhile (R8).
  CHECK(f.observe(imsi(1), imei(200)) == ack::ok);
  s = f.sim(id)->state;
  CHECK(s.bar == lock::bar_state::bar_pending);
  CHECK(s.reason == lock::bar_reason::imei_lock);
  CHECK(s.trigger_imei == imei(200).device);
  CHECK(s.pending_order_id != 0);
  CHECK(f.observe(imsi(1), imei(300)) == ack::ok);
  CHECK(f.observe(imsi(1), imei(200)) == ack::ok);

  REQUIRE(f.wait_for([&] { return f.sim(id)->state.bar == lock::bar_state::barred; }));
  auto orders = f.orders_of(id);
  std::size_t bars = 0;
  for (auto& o : orders)
    if (o.type == lock::order_type::bar) {
      ++bars;
      CHECK(o.status == actors::order_status::completed);
      CHECK(o.reason == lock::bar_reason::imei_lock);
    }
  CHECK(bars == 1);
  // R9: last seen stayed at the trigger.
  CHECK(f.sim(id)->state.last_seen_imei == imei(200).device);
  CHECK(rec.count(lock::notice::violation) == 1);

  // R14: the audit log tells the story, newest first.
  std::vector<actors::event_info> events;
  f.layer->list_events(id, 100, [&](std::vector<actors::event_info> v) { events = std::move(v); });
  REQUIRE(events.size() >= 4);
  CHECK(events.front().after.bar == lock::bar_state::barred);

  // R11: unbar updating to last seen locks to the 2nd device.
  r = f.order(id, lock::order_type::unbar, lock::unbar_mode::update_to_last_seen);
  REQUIRE(r.error == ec::ok);
  REQUIRE(f.wait_for([&] { return f.sim(id)->state.bar == lock::bar_state::none; }));
  CHECK(f.sim(id)->state.lock_imei == imei(200).device);
}

TEST_CASE("orders the rules refuse are answered with the reason and change nothing (R1)",
          "[actors]") {
  temp_dir dir;
  layer_fixture f{config_for(dir), fast_orders(100ms)};
  auto id = iccid(2);
  REQUIRE(f.upsert(id, {imsi(2)}, "some_other_network").error == ec::ok);
  auto r = f.order(id, lock::order_type::enable_imei_lock);
  CHECK(r.error == ec::invalid);
  CHECK_FALSE(r.reason.empty());
  CHECK(f.sim(id)->state.lock == lock::lock_state::off);
  CHECK(f.orders_of(id).empty());
  CHECK(f.order(iccid(3), lock::order_type::bar).error == ec::unknown_sim);
}

TEST_CASE("unknown IMSIs are answered and counted (R15), malformed IMEIs are no IMEI (R2, R3)",
          "[actors]") {
  temp_dir dir;
  layer_fixture f{config_for(dir), fast_orders(100ms)};
  CHECK(f.observe(imsi(999), imei(1)) == ack::unknown_sim);
  auto id = iccid(4);
  REQUIRE(f.upsert(id, {imsi(4)}).error == ec::ok);
  CHECK(f.observe(imsi(4), lock::decode_imei("12AB")) == ack::ok);
  CHECK(f.observe(imsi(4), lock::imei_value{}) == ack::ok);
  CHECK(f.sim(id)->state.last_seen_imei == lock::no_device);
}

TEST_CASE("an IMSI belongs to exactly one SIM", "[actors]") {
  temp_dir dir;
  layer_fixture f{config_for(dir), fast_orders(100ms)};
  REQUIRE(f.upsert(iccid(5), {imsi(5), imsi(6)}).error == ec::ok);
  CHECK(f.upsert(iccid(7), {imsi(6)}).error == ec::conflict);
  // Moving IMSIs within a SIM is fine and re-indexes it.
  REQUIRE(f.upsert(iccid(5), {imsi(8)}).error == ec::ok);
  CHECK(f.observe(imsi(6), imei(1)) == ack::unknown_sim);
  CHECK(f.observe(imsi(8), imei(1)) == ack::ok);
  CHECK(f.upsert(iccid(7), {imsi(6)}).error == ec::ok);
}

TEST_CASE("durable before acknowledged: a change the store cannot commit is not acknowledged",
          "[actors]") {
  temp_dir dir;
  layer_fixture f{config_for(dir), fast_orders(100ms)};
  auto id = iccid(10);
  REQUIRE(f.upsert(id, {imsi(10)}).error == ec::ok);
  CHECK(f.observe(imsi(10), imei(1)) == ack::ok);

  f.layer->db().exec_on_writer_for_testing("PRAGMA query_only=1"); // read-only file
  CHECK(f.observe(imsi(10), imei(2)) == ack::store_failed);
  CHECK(f.sim(id)->state.last_seen_imei == imei(1).device);
  // Unchanged observations need no write and are still answered.
  CHECK(f.observe(imsi(10), imei(1)) == ack::ok);

  f.layer->db().exec_on_writer_for_testing("PRAGMA query_only=0");
  // The peer retries: now it is durable.
  CHECK(f.observe(imsi(10), imei(2)) == ack::ok);
  CHECK(f.sim(id)->state.last_seen_imei == imei(2).device);
}

TEST_CASE("a full disk surfaces as store_failed and nothing acknowledged is lost", "[actors]") {
  temp_dir dir;
  layer_fixture f{config_for(dir), fast_orders(100ms)};
  auto id = iccid(11);
  REQUIRE(f.upsert(id, {imsi(11)}).error == ec::ok);
  CHECK(f.observe(imsi(11), imei(1)) == ack::ok);
  f.layer->db().exec_on_writer_for_testing("PRAGMA max_page_count=1");
  // Audit rows need new pages: the write fails as on a full disk.
  bool failed = false;
  for (int i = 2; i < 400 && !failed; ++i)
    failed = f.observe(imsi(11), imei(static_cast<std::uint64_t>(i))) == ack::store_failed;
  CHECK(failed);
  auto last = f.sim(id)->state.last_seen_imei;
  f.layer->db().exec_on_writer_for_testing("PRAGMA max_page_count=1073741823");
  CHECK(f.observe(imsi(11), imei(5000)) == ack::ok);
  CHECK(f.sim(id)->state.last_seen_imei == imei(5000).device);
  CHECK(last != imei(5000).device);
}

TEST_CASE("a retransmitted observation (same dedupe key) changes nothing a second time",
          "[actors]") {
  temp_dir dir;
  layer_fixture f{config_for(dir), fast_orders(100ms)};
  auto id = iccid(12);
  REQUIRE(f.upsert(id, {imsi(12)}).error == ec::ok);
  CHECK(f.observe(imsi(12), imei(1), 1001) == ack::ok);
  CHECK(f.observe(imsi(12), imei(2), 1002) == ack::ok);
  CHECK(f.sim(id)->state.last_seen_imei == imei(2).device);
  // The first record again, late: without the key it would move last seen back.
  CHECK(f.observe(imsi(12), imei(1), 1001) == ack::ok);
  CHECK(f.sim(id)->state.last_seen_imei == imei(2).device);
}

TEST_CASE("idle SIM actors are passivated into compact rows and come back with their state",
          "[actors]") {
  temp_dir dir;
  auto cfg = config_for(dir);
  cfg.passivate_after = 200ms;
  layer_fixture f{cfg, fast_orders(100ms)};
  auto id = iccid(20);
  REQUIRE(f.upsert(id, {imsi(20)}).error == ec::ok);
  REQUIRE(f.order(id, lock::order_type::enable_imei_lock).error == ec::ok);
  REQUIRE(f.wait_for([&] { return f.sim(id)->state.lock == lock::lock_state::awaiting_first_imei; }));
  CHECK(f.observe(imsi(20), imei(1)) == ack::ok);
  CHECK(f.layer->sim_actors_alive() >= 1);
  REQUIRE(f.wait_for([&] { return f.layer->sim_actors_alive() == 0; }, 5s));

  // The row answers unchanged observations without an actor...
  CHECK(f.observe(imsi(20), imei(1)) == ack::ok);
  CHECK(f.layer->sim_actors_alive() == 0);
  // ...and a violation re-spawns the actor from the row: still locked to device 1.
  CHECK(f.observe(imsi(20), imei(2)) == ack::ok);
  auto s = f.sim(id)->state;
  CHECK(s.lock_imei == imei(1).device);
  CHECK(s.bar == lock::bar_state::bar_pending);
  // The bar completes even if the actor is passivated meanwhile.
  REQUIRE(f.wait_for([&] { return f.sim(id)->state.bar == lock::bar_state::barred; }));
}

TEST_CASE("a restart resumes open orders with their remaining lead time", "[actors]") {
  temp_dir dir;
  auto id = iccid(30);
  {
    layer_fixture f{config_for(dir), fast_orders(1500ms)};
    REQUIRE(f.upsert(id, {imsi(30)}).error == ec::ok);
    REQUIRE(f.order(id, lock::order_type::bar).error == ec::ok);
    CHECK(f.sim(id)->state.bar == lock::bar_state::bar_pending);
  } // "crash" before the lead time ran out (the store has everything acknowledged)
  layer_fixture f{config_for(dir), fast_orders(1500ms)};
  CHECK(f.sim(id)->state.bar == lock::bar_state::bar_pending);
  REQUIRE(f.wait_for([&] { return f.sim(id)->state.bar == lock::bar_state::barred; }));
  auto orders = f.orders_of(id);
  REQUIRE(orders.size() == 1);
  CHECK(orders[0].status == actors::order_status::completed);
  // The inventory came back from the store: observations are routed.
  CHECK(f.observe(imsi(30), imei(1)) == ack::ok);
}

TEST_CASE("import writes every valid SIM and reports each one", "[actors]") {
  temp_dir dir;
  layer_fixture f{config_for(dir), fast_orders(100ms)};
  std::vector<actors::sim_upsert> sims;
  for (std::uint64_t i = 0; i < 50; ++i)
    sims.push_back({iccid(100 + i), {imsi(100 + i)}, "", "multinet", lock::sim_status::active});
  sims.push_back({"12345", {imsi(999)}, "", "multinet", lock::sim_status::active});
  std::promise<std::vector<actors::write_result>> p;
  f.layer->import_sims(std::move(sims), [&](std::vector<actors::write_result> r) { p.set_value(std::move(r)); });
  auto results = p.get_future().get();
  REQUIRE(results.size() == 51);
  for (std::size_t i = 0; i < 50; ++i)
    CHECK(results[i].error == ec::ok);
  CHECK(results[50].error == ec::invalid);
  CHECK(f.layer->db().count_sims() == 50);
  actors::sim_page page;
  f.layer->list_sims({}, "", 20, [&](actors::sim_page pg) { page = std::move(pg); });
  CHECK(page.items.size() == 20);
  CHECK_FALSE(page.next_cursor.empty());
}

TEST_CASE("overload: observations beyond max_in_flight are shed", "[actors]") {
  temp_dir dir;
  auto cfg = config_for(dir);
  cfg.max_in_flight = 1;
  layer_fixture f{cfg, fast_orders(100ms)};
  REQUIRE(f.upsert(iccid(40), {imsi(40)}).error == ec::ok);
  std::atomic<int> ok{0};
  std::atomic<int> shed{0};
  std::atomic<int> answered{0};
  for (int i = 0; i < 2000; ++i) {
    actors::observation obs;
    obs.imsi = imsi(40);
    obs.imei = imei(1);
    f.layer->submit(std::move(obs), [&](ack a) {
      (a == ack::ok ? ok : shed).fetch_add(1);
      answered.fetch_add(1);
    });
  }
  REQUIRE(f.wait_for([&] { return answered.load() == 2000; }));
  CHECK(ok.load() >= 1);
  CHECK(ok.load() + shed.load() == 2000);
  CHECK(f.layer->in_flight() == 0);
}

TEST_CASE("a reload (SIGHUP) gives orders placed afterwards the new bar lead time and keeps open "
          "orders",
          "[actors]") {
  temp_dir dir;
  layer_fixture f{config_for(dir), fast_orders(3000ms)};
  auto before = iccid(60);
  auto after = iccid(61);
  REQUIRE(f.upsert(before, {imsi(60)}).error == ec::ok);
  REQUIRE(f.upsert(after, {imsi(61)}).error == ec::ok);
  REQUIRE(f.order(before, lock::order_type::bar).error == ec::ok);
  // Submitted: its lead time (3 s) is drawn before the reload arrives.
  REQUIRE(f.wait_for([&] {
    auto o = f.orders_of(before);
    return o.size() == 1 && o[0].status == actors::order_status::submitted;
  }));

  auto next = fast_orders(100ms);
  // A changed backend is rebuilt: this one refuses its first submission.
  auto tune = [](orders::network_config& n) {
    n.backend.fail_first = 1;
    n.retry.initial_backoff = 10ms;
  };
  tune(next.defaults);
  for (auto& [name, n] : next.networks)
    tune(n);
  f.layer->reload_orders(next);

  REQUIRE(f.order(after, lock::order_type::bar).error == ec::ok);
  REQUIRE(f.wait_for([&] { return f.sim(after)->state.bar == lock::bar_state::barred; }, 2s));
  // The open order kept its state and due time: not barred yet, not lost.
  auto open = f.orders_of(before);
  REQUIRE(open.size() == 1);
  CHECK(open[0].status == actors::order_status::submitted);
  CHECK(f.sim(before)->state.bar == lock::bar_state::bar_pending);
  auto done = f.orders_of(after);
  REQUIRE(done.size() == 1);
  CHECK(done[0].status == actors::order_status::completed);
  CHECK(done[0].attempts == 2); // the rebuilt backend refused the first one
  REQUIRE(f.wait_for([&] { return f.sim(before)->state.bar == lock::bar_state::barred; }));
  CHECK(f.orders_of(before)[0].status == actors::order_status::completed);
}

TEST_CASE("events name the IMSI of the observation, or the SIM's first IMSI for order outcomes",
          "[actors]") {
  temp_dir dir;
  recorder rec;
  layer_fixture f{config_for(dir), fast_orders(100ms), &rec};
  auto id = iccid(70);
  REQUIRE(f.upsert(id, {imsi(70), imsi(71)}).error == ec::ok);
  REQUIRE(f.order(id, lock::order_type::enable_imei_lock).error == ec::ok);
  REQUIRE(f.wait_for([&] { return rec.count(lock::notice::lock_enabled) == 1; }));
  CHECK(f.observe(imsi(71), imei(1)) == ack::ok); // R6 on the 2nd IMSI
  CHECK(f.observe(imsi(71), imei(2)) == ack::ok); // R7
  REQUIRE(f.wait_for([&] { return rec.count(lock::notice::bar_completed) == 1; }));
  std::lock_guard g{rec.mtx};
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
  }
  CHECK(checked >= 4);
}

TEST_CASE("an order with no type is refused as invalid, not as a conflict", "[actors]") {
  temp_dir dir;
  layer_fixture f{config_for(dir), fast_orders(100ms)};
  auto id = iccid(80);
  REQUIRE(f.upsert(id, {imsi(80)}).error == ec::ok);
  auto r = f.order(id, lock::order_type::none);
  CHECK(r.error == ec::invalid);
  CHECK_FALSE(r.reason.empty());
  CHECK(f.orders_of(id).empty());
}
