// The SIM layer through its facade with its real threads: CAF's scheduler,
// the store's writer thread, real timers, SQLite on disk. What these tests are
// about is the facade and the threading (index and validation in the facade,
// in-flight accounting and shedding, import fan-in, a store that fails under
// load, one story end to end); the actors' logic, message by message and with
// time moved by the test, is actor_logic_test.cpp's.
#include "tests/actors/test_support.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <future>
#include <memory>
#include <mutex>
#include <thread>

using namespace imeilock;
using namespace imeilock::testing;
using namespace std::chrono_literals;
using actors::ack;

namespace {

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
  REQUIRE(
      f.wait_for([&] { return f.sim(id)->state.lock == lock::lock_state::awaiting_first_imei; }));

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
      CHECK(o.status == orders::order_status::completed);
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
  auto ocfg = fast_orders(100ms);
  ocfg.networks.emplace("m2m_private", ocfg.defaults); // configured, not lock-eligible
  layer_fixture f{config_for(dir), ocfg};
  auto id = iccid(2);
  REQUIRE(f.upsert(id, {imsi(2)}, "m2m_private").error == ec::ok);
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

TEST_CASE("import writes every valid SIM and reports each one", "[actors]") {
  temp_dir dir;
  layer_fixture f{config_for(dir), fast_orders(100ms)};
  std::vector<actors::sim_upsert> sims;
  for (std::uint64_t i = 0; i < 50; ++i)
    sims.push_back({iccid(100 + i), {imsi(100 + i)}, "", "multinet", lock::sim_status::active});
  sims.push_back({"12345", {imsi(999)}, "", "multinet", lock::sim_status::active});
  std::promise<std::vector<actors::write_result>> p;
  f.layer->import_sims(std::move(sims),
                       [&](std::vector<actors::write_result> r) { p.set_value(std::move(r)); });
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

TEST_CASE("an import leaves no SIM actor behind once written, an upsert's waits for "
          "passivate_after",
          "[actors]") {
  temp_dir dir;
  layer_fixture f{config_for(dir), fast_orders(100ms)}; // passivate_after 60 s
  std::vector<actors::sim_upsert> sims;
  for (std::uint64_t i = 0; i < 300; ++i)
    sims.push_back({iccid(200 + i), {imsi(200 + i)}, "", "multinet", lock::sim_status::active});
  std::promise<std::vector<actors::write_result>> p;
  f.layer->import_sims(std::move(sims),
                       [&](std::vector<actors::write_result> r) { p.set_value(std::move(r)); });
  auto results = p.get_future().get();
  REQUIRE(results.size() == 300);
  for (const auto& r : results)
    REQUIRE(r.error == ec::ok);
  // Each actor goes when it reports idle: well before the 60 s.
  CHECK(f.wait_for([&] { return f.layer->sim_actors_alive() == 0; }));
  // The rows hold what was written: an unchanged SIM is answered from its row,
  // a change spawns an actor from it.
  auto s = f.sim(iccid(250));
  REQUIRE(s);
  CHECK(s->state.status == lock::sim_status::active);
  CHECK(f.observe(imsi(250), imei(7)) == ack::ok);
  CHECK(f.wait_for([&] {
    auto now = f.sim(iccid(250));
    return now && now->state.last_seen_imei == imei(7).device;
  }));
  // That actor, and one for a single upsert, stay until passivate_after.
  CHECK(f.upsert(iccid(251), {imsi(251)}).error == ec::ok);
  CHECK(f.layer->sim_actors_alive() == 2);
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

TEST_CASE("a SIM's network must be a configured one: any other name is refused with the list",
          "[actors][networks]") {
  temp_dir dir;
  auto ocfg = fast_orders(100ms);
  ocfg.networks.emplace("m2m_private", ocfg.defaults);
  layer_fixture f{config_for(dir), ocfg};
  const std::vector<std::string> configured{"ee", "ee_big_data", "m2m_private", "multinet",
                                            "roamnet901"};
  CHECK(f.layer->configured_networks() == configured);

  auto r = f.upsert(iccid(80), {imsi(80)}, "vodafone_uk");
  CHECK(r.error == ec::invalid);
  CHECK(r.known_networks == configured);
  CHECK(r.reason.find("vodafone_uk") != std::string::npos);
  CHECK(r.reason.find("m2m_private") != std::string::npos);
  CHECK_FALSE(f.sim(iccid(80)));

  // More distinct names than the inventory index could ever intern (1024):
  // every one refused, nothing indexed, nothing thrown, the layer still serves.
  for (int i = 0; i < 1100; ++i)
    REQUIRE(f.upsert(iccid(1000 + static_cast<std::uint64_t>(i)),
                     {imsi(1000 + static_cast<std::uint64_t>(i))}, "net" + std::to_string(i))
                .error == ec::invalid);
  CHECK(f.layer->inventory_size() == 0);
  REQUIRE(f.upsert(iccid(81), {imsi(81)}, "m2m_private").error == ec::ok);
  CHECK(f.observe(imsi(81), imei(1)) == ack::ok);
  CHECK(f.sim(iccid(81))->network_configured);
}

TEST_CASE("a network removed by a reload: its SIMs keep their state, keep working and are "
          "reported, they can only move to a configured network",
          "[actors][networks]") {
  temp_dir dir;
  auto ocfg = fast_orders(50ms);
  ocfg.networks.emplace("m2m_private", ocfg.defaults);
  layer_fixture f{config_for(dir), ocfg};
  auto id = iccid(90);
  REQUIRE(f.upsert(id, {imsi(90)}, "m2m_private").error == ec::ok);
  REQUIRE(f.upsert(iccid(91), {imsi(91)}, "multinet").error == ec::ok);
  CHECK(f.observe(imsi(90), imei(1)) == ack::ok);
  CHECK(f.layer->sims_on_unconfigured_networks() == 0);

  f.layer->reload_orders(fast_orders(50ms)); // m2m_private is gone
  CHECK(f.layer->sims_on_unconfigured_networks() == 1);
  auto sim = f.sim(id);
  REQUIRE(sim);
  CHECK(sim->network == "m2m_private");
  CHECK_FALSE(sim->network_configured);
  CHECK(sim->state.last_seen_imei == imei(1).device); // state kept
  CHECK(f.sim(iccid(91))->network_configured);

  // Observations are still processed (R5), orders still go through (orders.defaults).
  CHECK(f.observe(imsi(90), imei(2)) == ack::ok);
  REQUIRE(f.wait_for([&] { return f.sim(id)->state.last_seen_imei == imei(2).device; }));
  REQUIRE(f.order(id, lock::order_type::bar).error == ec::ok);
  REQUIRE(f.wait_for([&] { return f.sim(id)->state.bar == lock::bar_state::barred; }));

  // Its own network is refused like any unknown name; a configured one is accepted.
  CHECK(f.upsert(id, {imsi(90)}, "m2m_private").error == ec::invalid);
  REQUIRE(f.upsert(id, {imsi(90)}, "ee").error == ec::ok);
  CHECK(f.layer->sims_on_unconfigured_networks() == 0);
  CHECK(f.sim(id)->network_configured);
  CHECK(f.sim(id)->state.bar == lock::bar_state::barred);
}

TEST_CASE("SIMs on a network missing from the configuration at startup are loaded and reported",
          "[actors][networks]") {
  temp_dir dir;
  auto ocfg = fast_orders(50ms);
  ocfg.networks.emplace("m2m_private", ocfg.defaults);
  {
    layer_fixture f{config_for(dir), ocfg};
    REQUIRE(f.upsert(iccid(95), {imsi(95)}, "m2m_private").error == ec::ok);
    REQUIRE(f.upsert(iccid(96), {imsi(96)}, "m2m_private").error == ec::ok);
  }
  layer_fixture f{config_for(dir), fast_orders(50ms)};
  CHECK(f.layer->inventory_size() == 2);
  CHECK(f.layer->sims_on_unconfigured_networks() == 2);
  CHECK(f.observe(imsi(95), imei(3)) == ack::ok);
  REQUIRE(f.wait_for([&] { return f.sim(iccid(95))->state.last_seen_imei == imei(3).device; }));
}

TEST_CASE("submit_many: a batch over several shards answers each observation once, in order "
          "per SIM, as submit would",
          "[actors]") {
  temp_dir dir;
  auto cfg = config_for(dir);
  cfg.shards = 3;
  layer_fixture f{cfg, fast_orders(100ms)};
  for (std::uint64_t i = 0; i < 6; ++i)
    REQUIRE(f.upsert(iccid(60 + i), {imsi(60 + i)}).error == ec::ok);
  std::mutex mtx;
  std::vector<std::pair<std::uint64_t, ack>> answers;
  std::vector<actors::submission> batch;
  auto add = [&](std::uint64_t imsi_value, lock::imei_value imei_value) {
    actors::observation obs;
    obs.imsi = imsi_value;
    obs.imei = imei_value;
    obs.peer = "test";
    batch.push_back({std::move(obs), [&, imsi_value](ack a) {
                       std::lock_guard g{mtx};
                       answers.emplace_back(imsi_value, a);
                     }});
  };
  // Every SIM twice (first contact, then a second device: the last IMEI wins),
  // and one IMSI the inventory does not know.
  for (std::uint64_t i = 0; i < 6; ++i)
    add(imsi(60 + i), imei(1));
  add(imsi(999), imei(1));
  for (std::uint64_t i = 0; i < 6; ++i)
    add(imsi(60 + i), imei(2));
  f.layer->submit_many(batch);
  CHECK(batch.empty());
  REQUIRE(f.wait_for([&] {
    std::lock_guard g{mtx};
    return answers.size() == 13;
  }));
  std::lock_guard g{mtx};
  CHECK(std::count_if(answers.begin(), answers.end(),
                      [](auto& a) { return a.second == ack::unknown_sim; }) == 1);
  CHECK(std::count_if(answers.begin(), answers.end(),
                      [](auto& a) { return a.second == ack::ok; }) == 12);
  for (std::uint64_t i = 0; i < 6; ++i)
    CHECK(f.sim(iccid(60 + i))->state.last_seen_imei == imei(2).device);
  CHECK(f.layer->in_flight() == 0);
}

TEST_CASE("stop() returns only once every actor of the layer has ended: none runs on a freed layer",
          "[actors]") {
  temp_dir dir;
  auto cfg = config_for(dir);
  cfg.store.commit_delay = 5ms; // writes and their sim_idle reports still on the way at stop
  layer_fixture f{cfg, fast_orders(100ms)};
  constexpr int sims = 40;
  for (int i = 0; i < sims; ++i)
    REQUIRE(f.upsert(iccid(500 + i), {imsi(500 + i)}).error == ec::ok);
  std::atomic<int> answered{0};
  for (int round = 1; round <= 3; ++round)
    for (int i = 0; i < sims; ++i) {
      actors::observation obs;
      obs.imsi = imsi(500 + i);
      obs.imei = imei(round);
      f.layer->submit(std::move(obs), [&](ack) { answered.fetch_add(1); });
    }
  CHECK(f.sys.registry().running() > 0);
  f.layer->stop();
  // The shards, SIM actors and the order actor all point into the layer,
  // which the caller may free as soon as stop() returns.
  CHECK(f.sys.registry().running() == 0);
  CHECK(answered.load() == 3 * sims);
}

TEST_CASE("violation actions: alert records without a bar, a reload to bar bars the next "
          "violation, disconnect_and_bar hands the Disconnect target on",
          "[actors][actions]") {
  temp_dir dir;
  recorder rec;
  lock::eligibility_config elig;
  elig.actions = {{"multinet", lock::violation_action::alert},
                  {"ee", lock::violation_action::disconnect_and_bar}};
  layer_fixture f{config_for(dir), fast_orders(100ms), &rec, elig};
  auto lock_to_100 = [&](const std::string& id, std::uint64_t i) {
    CHECK(f.observe(imsi(i), imei(100)) == ack::ok);
    REQUIRE(f.order(id, lock::order_type::enable_imei_lock).error == ec::ok);
    REQUIRE(f.wait_for([&] { return f.sim(id)->state.lock == lock::lock_state::locked; }));
  };
  auto violations = [&] {
    std::lock_guard g{rec.mtx};
    std::vector<actors::sim_event> out;
    for (const auto& e : rec.events)
      if (e.what == lock::notice::violation)
        out.push_back(e);
    return out;
  };

  auto id = iccid(40);
  REQUIRE(f.upsert(id, {imsi(40)}).created);
  lock_to_100(id, 40);
  CHECK(f.observe(imsi(40), imei(200)) == ack::ok);
  auto s = f.sim(id)->state;
  CHECK(s.alerted);
  CHECK(s.bar == lock::bar_state::none);
  CHECK(s.pending_order_id == 0);
  CHECK(s.last_seen_imei == imei(200).device);
  REQUIRE(f.wait_for([&] { return violations().size() == 1; }));
  CHECK(violations()[0].action == lock::violation_action::alert);
  CHECK(violations()[0].order_id == 0);
  CHECK(f.orders_of(id).size() == 1); // the enable only
  CHECK(f.sim(id)->policy.action == lock::violation_action::alert);

  // SIGHUP: multinet bars now. Nothing retroactive; the next violation bars.
  auto bar_all = elig;
  bar_all.actions = {{"ee", lock::violation_action::disconnect_and_bar}};
  f.layer->reload_actions(bar_all);
  CHECK(f.sim(id)->policy.action == lock::violation_action::bar);
  CHECK(f.observe(imsi(40), imei(200), 4001) == ack::ok);
  CHECK(f.sim(id)->state.bar == lock::bar_state::none);
  CHECK(f.observe(imsi(40), imei(300)) == ack::ok);
  CHECK(f.sim(id)->state.bar == lock::bar_state::bar_pending);
  REQUIRE(f.wait_for([&] { return violations().size() == 2; }));
  CHECK(violations()[1].action == lock::violation_action::bar);
  CHECK(violations()[1].disconnect == nullptr);
  REQUIRE(f.wait_for([&] { return f.sim(id)->state.bar == lock::bar_state::barred; }));
  CHECK_FALSE(f.sim(id)->state.alerted);

  // disconnect_and_bar: the observation's Disconnect target reaches the listener.
  auto ee = iccid(41);
  REQUIRE(f.upsert(ee, {imsi(41)}, "ee").created);
  lock_to_100(ee, 41);
  actors::observation obs;
  obs.imsi = imsi(41);
  obs.imei = imei(200);
  obs.peer = "test";
  auto target = std::make_shared<actors::disconnect_target>();
  target->nas_address = "127.0.0.1";
  target->acct_session_id = "s-41";
  obs.disconnect = target;
  std::promise<ack> p;
  auto answered = p.get_future();
  f.layer->submit(std::move(obs), [&p](ack a) { p.set_value(a); });
  CHECK(answered.get() == ack::ok);
  CHECK(f.sim(ee)->state.bar == lock::bar_state::bar_pending);
  REQUIRE(f.wait_for([&] { return violations().size() == 3; }));
  CHECK(violations()[2].action == lock::violation_action::disconnect_and_bar);
  REQUIRE(violations()[2].disconnect != nullptr);
  CHECK(violations()[2].disconnect->acct_session_id == "s-41");
}

namespace {

/// Submits an observation of `imsi_value` with `value`; `on_ack` gets the
/// answer and whether it came on the submitting thread, inside submit().
void submit_one(actors::sim_layer& layer, std::uint64_t imsi_value, lock::imei_value value,
                std::function<void(ack, bool inline_answer)> on_ack) {
  actors::observation obs;
  obs.imsi = imsi_value;
  obs.imei = value;
  obs.peer = "test";
  auto self = std::this_thread::get_id();
  auto inside = std::make_shared<std::atomic<bool>>(true);
  layer.submit(std::move(obs), [self, inside, on_ack = std::move(on_ack)](ack a) {
    on_ack(a, inside->load() && std::this_thread::get_id() == self);
  });
  inside->store(false);
}

} // namespace

TEST_CASE("the fast path: an observation that changes nothing is answered on the submitting "
          "thread, one that changes something is not",
          "[actors]") {
  temp_dir dir;
  layer_fixture f{config_for(dir), fast_orders(100ms)};
  REQUIRE(f.upsert(iccid(70), {imsi(70)}).error == ec::ok);
  REQUIRE(f.observe(imsi(70), imei(1)) == ack::ok); // first contact: a change, on the shard

  std::atomic<int> answered{0};
  std::atomic<int> inline_answers{0};
  std::atomic<int> not_ok{0};
  auto count = [&](ack a, bool here) {
    if (a != ack::ok)
      not_ok.fetch_add(1);
    if (here)
      inline_answers.fetch_add(1);
    answered.fetch_add(1);
  };
  // The shard takes the actor's report (sim_idle) shortly after the answer:
  // from then on the row is the state and nothing is in flight.
  REQUIRE(f.wait_for([&] {
    auto here = std::make_shared<std::promise<bool>>();
    auto answer = here->get_future();
    submit_one(*f.layer, imsi(70), imei(1), [here](ack, bool h) { here->set_value(h); });
    return answer.get(); // waits for an answer from the shard
  }));
  // Unchanged, and without an IMEI (R2/R3): all answered inside submit().
  for (int i = 0; i < 1000; ++i)
    submit_one(*f.layer, imsi(70), i % 2 == 0 ? imei(1) : lock::imei_value{}, count);
  CHECK(answered.load() == 1000);
  CHECK(inline_answers.load() == 1000);
  CHECK(not_ok.load() == 0);
  CHECK(f.layer->in_flight() == 0);

  // A second device changes the SIM: written through its actor, answered
  // from a CAF thread once durable. The first device right behind it looks
  // unchanged to the row, but is a change after it: not answered here either.
  answered = 0;
  inline_answers = 0;
  submit_one(*f.layer, imsi(70), imei(2), count);
  submit_one(*f.layer, imsi(70), imei(1), count);
  REQUIRE(f.wait_for([&] { return answered.load() == 2; }));
  CHECK(inline_answers.load() == 0);
  CHECK(not_ok.load() == 0);
  CHECK(f.sim(iccid(70))->state.last_seen_imei == imei(1).device);
}

TEST_CASE("the fast path keeps order per SIM: two submitting threads, changes in flight, no "
          "observation answered ahead of an earlier one of its SIM",
          "[actors]") {
  temp_dir dir;
  recorder rec;
  auto cfg = config_for(dir);
  cfg.shards = 3;
  layer_fixture f{cfg, fast_orders(100ms), &rec};
  constexpr std::uint64_t sims = 8;
  constexpr int rounds = 25;
  for (std::uint64_t i = 0; i < sims; ++i) {
    REQUIRE(f.upsert(iccid(80 + i), {imsi(80 + i)}).error == ec::ok);
    REQUIRE(f.observe(imsi(80 + i), imei(1)) == ack::ok);
  }
  // First contact is a change (R5); its notice may follow the answer.
  REQUIRE(f.wait_for([&] { return rec.count(lock::notice::change_event) == sims; }));
  const auto changes_before = rec.count(lock::notice::change_event);

  // Per SIM, in order: IMEI 2 (a change), 2 again, then 1 three times (a
  // change back: answered from the row it would look unchanged while the
  // first change is still in flight). Each answer is stamped with its
  // position; per SIM they must come back in submission order.
  std::mutex mtx;
  std::vector<std::vector<int>> acks(sims);
  std::atomic<int> answered{0};
  std::atomic<int> not_ok{0};
  auto make_done = [&](std::uint64_t sim, int pos) {
    return [&, sim, pos](ack a) {
      if (a != ack::ok)
        not_ok.fetch_add(1);
      {
        std::lock_guard g{mtx};
        acks[sim].push_back(pos);
      }
      answered.fetch_add(1);
    };
  };
  const std::array<int, 5> pattern{2, 2, 1, 1, 1};
  auto run = [&](std::uint64_t first, bool batched) {
    for (int r = 0; r < rounds; ++r) {
      std::vector<actors::submission> batch;
      for (std::size_t k = 0; k < pattern.size(); ++k)
        for (std::uint64_t s = first; s < first + sims / 2; ++s) {
          actors::observation obs;
          obs.imsi = imsi(80 + s);
          obs.imei = imei(static_cast<std::uint64_t>(pattern[k]));
          obs.peer = "test";
          auto done = make_done(s, r * static_cast<int>(pattern.size()) + static_cast<int>(k));
          if (batched)
            batch.push_back({std::move(obs), std::move(done)});
          else
            f.layer->submit(std::move(obs), std::move(done));
        }
      if (batched)
        f.layer->submit_many(batch);
    }
  };
  std::thread a{[&] { run(0, false); }};
  std::thread b{[&] { run(sims / 2, true); }};
  a.join();
  b.join();
  const int total = static_cast<int>(sims) * rounds * static_cast<int>(pattern.size());
  REQUIRE(f.wait_for([&] { return answered.load() == total; }, 30s));
  CHECK(not_ok.load() == 0);
  {
    std::lock_guard g{mtx};
    for (std::uint64_t s = 0; s < sims; ++s) {
      INFO("SIM " << s);
      CHECK(acks[s].size() == rounds * pattern.size());
      CHECK(std::is_sorted(acks[s].begin(), acks[s].end()));
    }
  }
  // Every change took effect, in order: two per SIM per round (R5), and
  // each SIM was last seen with IMEI 1.
  REQUIRE(f.wait_for(
      [&] { return rec.count(lock::notice::change_event) == changes_before + 2 * sims * rounds; }));
  for (std::uint64_t s = 0; s < sims; ++s)
    CHECK(f.sim(iccid(80 + s))->state.last_seen_imei == imei(1).device);
  CHECK(f.layer->in_flight() == 0);
}

TEST_CASE("the fast path: a locked SIM hammered from two threads with its own device and a "
          "second one raises exactly one violation and one bar",
          "[actors]") {
  temp_dir dir;
  recorder rec;
  auto cfg = config_for(dir);
  cfg.max_queued_per_sim = 1000; // none shed behind the bar's write
  layer_fixture f{cfg, fast_orders(200ms), &rec};
  auto id = iccid(90);
  REQUIRE(f.upsert(id, {imsi(90)}).error == ec::ok);
  REQUIRE(f.order(id, lock::order_type::enable_imei_lock).error == ec::ok);
  REQUIRE(
      f.wait_for([&] { return f.sim(id)->state.lock == lock::lock_state::awaiting_first_imei; }));
  REQUIRE(f.observe(imsi(90), imei(100)) == ack::ok);
  REQUIRE(f.sim(id)->state.lock_imei == imei(100).device);

  std::atomic<int> answered{0};
  std::atomic<int> not_ok{0};
  auto hammer = [&](int second_device_at) {
    for (int i = 0; i < 400; ++i) {
      actors::observation obs;
      obs.imsi = imsi(90);
      obs.imei = i == second_device_at ? imei(200) : imei(100);
      obs.peer = "test";
      f.layer->submit(std::move(obs), [&](ack a) {
        if (a != ack::ok)
          not_ok.fetch_add(1);
        answered.fetch_add(1);
      });
    }
  };
  std::thread a{[&] { hammer(100); }};
  std::thread b{[&] { hammer(150); }};
  a.join();
  b.join();
  REQUIRE(f.wait_for([&] { return answered.load() == 800; }));
  CHECK(not_ok.load() == 0);
  REQUIRE(f.wait_for([&] { return f.sim(id)->state.bar == lock::bar_state::barred; }));
  std::size_t bars = 0;
  for (auto& o : f.orders_of(id))
    if (o.type == lock::order_type::bar)
      ++bars;
  CHECK(bars == 1);
  CHECK(rec.count(lock::notice::violation) == 1);
  CHECK(f.sim(id)->state.lock_imei == imei(100).device);
}
