// Bulk order jobs (actors/jobs.hpp) over a real SIM layer and SQLite on disk:
// a job places through the SIM layer's own place_order, counts what the rules
// refuse with the reason, is cancellable, and a runner stopped in the middle
// of a page (as a kill would leave it) is resumed by the next one without a
// second order for any SIM.
#include "actors/jobs.hpp"
#include "tests/actors/test_support.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <future>

using namespace imeilock;
using namespace imeilock::testing;
using namespace std::chrono_literals;

namespace {

/// The SIM layer's service, counting place_order calls; `on_place` runs after each.
struct counting_service : actors::sim_service {
  actors::sim_service& inner;
  std::atomic<std::size_t> placed{0};
  std::function<void(std::size_t)> on_place;
  explicit counting_service(actors::sim_service& s) : inner(s) {}

  void upsert_sim(actors::sim_upsert sim, std::function<void(actors::write_result)> done) override {
    inner.upsert_sim(std::move(sim), std::move(done));
  }
  void import_sims(std::vector<actors::sim_upsert> sims,
                   std::function<void(std::vector<actors::write_result>)> done) override {
    inner.import_sims(std::move(sims), std::move(done));
  }
  void get_sim(std::string iccid,
               std::function<void(std::optional<actors::sim_info>)> done) override {
    inner.get_sim(std::move(iccid), std::move(done));
  }
  void list_sims(actors::sim_filter filter, std::string cursor, std::size_t limit,
                 std::function<void(actors::sim_page)> done) override {
    inner.list_sims(std::move(filter), std::move(cursor), limit, std::move(done));
  }
  void place_order(std::string iccid, actors::order_request req,
                   std::function<void(actors::write_result)> done) override {
    auto n = ++placed;
    inner.place_order(std::move(iccid), req, std::move(done));
    if (on_place)
      on_place(n);
  }
  void get_order(std::uint64_t id,
                 std::function<void(std::optional<orders::order>)> done) override {
    inner.get_order(id, std::move(done));
  }
  void list_orders(std::string iccid,
                   std::function<void(std::vector<orders::order>)> done) override {
    inner.list_orders(std::move(iccid), std::move(done));
  }
  void list_events(std::string iccid, std::size_t limit,
                   std::function<void(std::vector<actors::event_info>)> done) override {
    inner.list_events(std::move(iccid), limit, std::move(done));
  }
  void fleet(std::function<void(actors::fleet_info)> done) override {
    inner.fleet(std::move(done));
  }
};

actors::job_result create(actors::job_service& jobs, actors::order_request order,
                          actors::job_selector sel) {
  std::promise<actors::job_result> p;
  auto f = p.get_future();
  jobs.create_job(order, std::move(sel), [&p](actors::job_result r) { p.set_value(std::move(r)); });
  return f.get();
}

std::optional<actors::job_info> job(actors::job_service& jobs, std::uint64_t id) {
  std::optional<actors::job_info> out;
  jobs.get_job(id, [&](std::optional<actors::job_info> j) { out = std::move(j); });
  return out;
}

actors::order_request bar() {
  actors::order_request r;
  r.type = lock::order_type::bar;
  return r;
}

/// Bar orders of one SIM.
std::size_t bars_of(layer_fixture& f, const std::string& id) {
  std::size_t n = 0;
  for (const auto& o : f.orders_of(id))
    n += o.type == lock::order_type::bar ? 1 : 0;
  return n;
}

} // namespace

TEST_CASE("a job by list places one order per SIM and counts refusals with their reason",
          "[actors][jobs]") {
  temp_dir dir;
  layer_fixture f{config_for(dir), fast_orders(50ms)};
  for (std::uint64_t i = 1; i <= 25; ++i)
    REQUIRE(f.upsert(iccid(i), {imsi(i)}).error == ec::ok);
  // SIM 3 is barred already: the rules refuse a second bar.
  REQUIRE(f.order(iccid(3), lock::order_type::bar).error == ec::ok);
  REQUIRE(f.wait_for([&] { return f.sim(iccid(3))->state.bar == lock::bar_state::barred; }));

  actors::job_runner_config cfg;
  cfg.page = 4; // several pages
  cfg.window = 3;
  actors::job_runner jobs{f.layer->db(), *f.layer, cfg};
  jobs.start();
  actors::job_selector sel;
  for (std::uint64_t i = 1; i <= 25; ++i)
    sel.iccids.push_back(iccid(i));
  sel.iccids.push_back(iccid(7));   // listed twice: once
  sel.iccids.push_back(iccid(999)); // no such SIM
  auto r = create(jobs, bar(), sel);
  REQUIRE(r.error == ec::ok);
  REQUIRE(r.job);
  CHECK(r.job->total == 26);
  CHECK(r.job->by_list);
  const auto id = r.job->id;

  REQUIRE(f.wait_for([&] { return job(jobs, id)->state == actors::job_state::completed; }));
  auto j = *job(jobs, id);
  CHECK(j.processed == 26);
  CHECK(j.placed == 24);
  CHECK(j.refused == 2);
  REQUIRE(j.refusals.size() == 2);
  std::map<std::string, std::string> why;
  for (const auto& x : j.refusals)
    why[x.iccid] = x.reason;
  CHECK(why.at(iccid(999)).find("no SIM") != std::string::npos);
  CHECK(why.at(iccid(3)).find("barred") != std::string::npos);
  CHECK(j.reasons.size() == 2);
  for (std::uint64_t i = 1; i <= 25; ++i)
    CHECK(bars_of(f, iccid(i)) == 1);
  // The placed orders run their course and the job's view follows them.
  REQUIRE(f.wait_for([&] { return job(jobs, id)->orders_completed == 24; }));
  CHECK(job(jobs, id)->orders_open == 0);
  jobs.stop();
}

TEST_CASE("a job by filter pages through the matching SIMs only", "[actors][jobs]") {
  temp_dir dir;
  auto ocfg = fast_orders(50ms);
  ocfg.networks.emplace("other", ocfg.defaults);
  layer_fixture f{config_for(dir), ocfg};
  for (std::uint64_t i = 1; i <= 12; ++i)
    REQUIRE(f.upsert(iccid(i), {imsi(i)}, i % 3 == 0 ? "other" : "multinet").error == ec::ok);
  actors::job_runner_config cfg;
  cfg.page = 3;
  actors::job_runner jobs{f.layer->db(), *f.layer, cfg};
  jobs.start();
  actors::job_selector sel;
  sel.filter.network = "other";
  auto r = create(jobs, bar(), sel);
  REQUIRE(r.error == ec::ok);
  CHECK(r.job->total == 4);
  REQUIRE(f.wait_for([&] { return job(jobs, r.job->id)->state == actors::job_state::completed; }));
  CHECK(job(jobs, r.job->id)->placed == 4);
  for (std::uint64_t i = 1; i <= 12; ++i)
    CHECK(bars_of(f, iccid(i)) == (i % 3 == 0 ? 1u : 0u));
  // Nothing matches: the job is complete at once.
  actors::job_selector none;
  none.filter.network = "nowhere";
  auto empty = create(jobs, bar(), none);
  REQUIRE(empty.error == ec::ok);
  CHECK(empty.job->state == actors::job_state::completed);
  CHECK(empty.job->total == 0);
  jobs.stop();
}

TEST_CASE("a cancelled job keeps what it placed and places nothing more", "[actors][jobs]") {
  temp_dir dir;
  layer_fixture f{config_for(dir), fast_orders(60s)}; // orders stay open
  for (std::uint64_t i = 1; i <= 20; ++i)
    REQUIRE(f.upsert(iccid(i), {imsi(i)}).error == ec::ok);
  actors::job_runner_config cfg;
  cfg.page = 2;
  cfg.window = 1;
  cfg.max_open_orders = 4; // the job waits once 4 of its orders are open
  actors::job_runner jobs{f.layer->db(), *f.layer, cfg};
  jobs.start();
  actors::job_selector sel; // every SIM
  auto r = create(jobs, bar(), sel);
  REQUIRE(r.error == ec::ok);
  const auto id = r.job->id;
  REQUIRE(f.wait_for([&] { return job(jobs, id)->orders_open >= 4; }));
  std::this_thread::sleep_for(300ms); // it waits, placing nothing more
  CHECK(job(jobs, id)->placed == 4);

  std::promise<actors::job_result> p;
  jobs.cancel_job(id, [&p](actors::job_result res) { p.set_value(std::move(res)); });
  auto c = p.get_future().get();
  REQUIRE(c.error == ec::ok);
  CHECK(c.job->state == actors::job_state::cancelled);
  CHECK(c.job->finished_at_ms != 0);
  std::this_thread::sleep_for(300ms);
  auto j = *job(jobs, id);
  CHECK(j.state == actors::job_state::cancelled);
  CHECK(j.placed == 4);
  CHECK(j.orders_open == 4); // the placed orders stay
  std::size_t total_bars = 0;
  for (std::uint64_t i = 1; i <= 20; ++i)
    total_bars += bars_of(f, iccid(i));
  CHECK(total_bars == 4);

  // Cancelling again is a conflict; an unknown job is not found.
  std::promise<actors::job_result> again;
  jobs.cancel_job(id, [&again](actors::job_result res) { again.set_value(std::move(res)); });
  CHECK(again.get_future().get().error == ec::conflict);
  std::promise<actors::job_result> unknown;
  jobs.cancel_job(id + 100,
                  [&unknown](actors::job_result res) { unknown.set_value(std::move(res)); });
  CHECK(unknown.get_future().get().error == ec::invalid);
  jobs.stop();
}

TEST_CASE("a runner stopped in the middle of a page is resumed without a second order",
          "[actors][jobs]") {
  temp_dir dir;
  layer_fixture f{config_for(dir), fast_orders(50ms)};
  for (std::uint64_t i = 1; i <= 20; ++i)
    REQUIRE(f.upsert(iccid(i), {imsi(i)}).error == ec::ok);
  actors::job_runner_config cfg;
  cfg.page = 5;
  cfg.window = 1;
  std::uint64_t id = 0;
  {
    counting_service counted{*f.layer};
    std::promise<void> seven;
    counted.on_place = [&seven](std::size_t n) {
      if (n == 7)
        seven.set_value();
    };
    actors::job_runner first{f.layer->db(), counted, cfg};
    first.start();
    auto r = create(first, bar(), {});
    REQUIRE(r.error == ec::ok);
    id = r.job->id;
    seven.get_future().wait();
    first.stop(); // mid-page: 5 placed and written, the page of SIMs 6-10 not
    CHECK(counted.placed.load() >= 7);
    CHECK(counted.placed.load() < 20);
  }
  auto stored = *f.layer->db().get_job(id);
  CHECK(stored.state == static_cast<int>(actors::job_state::running));
  CHECK(stored.processed == 5);
  CHECK(stored.after_iccid == iccid(5));
  CHECK(f.layer->db().job_placed(id, iccid(6)));

  counting_service counted{*f.layer};
  actors::job_runner second{f.layer->db(), counted, cfg};
  second.start();
  REQUIRE(f.wait_for([&] { return job(second, id)->state == actors::job_state::completed; }));
  auto j = *job(second, id);
  CHECK(j.placed == 20);
  CHECK(j.refused == 0);
  CHECK(j.processed == 20);
  // The SIMs the first runner had placed were not asked again.
  CHECK(counted.placed.load() <= 13);
  for (std::uint64_t i = 1; i <= 20; ++i)
    CHECK(bars_of(f, iccid(i)) == 1);
  second.stop();
}

TEST_CASE("a job's spec reads back as written, a hand-edited one reads as none", "[jobs]") {
  actors::order_request unbar;
  unbar.type = lock::order_type::unbar;
  unbar.mode = lock::unbar_mode::keep_lock;
  actors::sim_filter filter;
  filter.network = "multinet";
  filter.bar = lock::bar_state::barred;
  filter.alerted = true;
  auto spec = actors::job_runner::encode_spec(unbar, filter, false);
  auto back = actors::job_runner::decode_spec(spec);
  REQUIRE(back);
  CHECK(back->order.type == lock::order_type::unbar);
  CHECK(back->order.mode == lock::unbar_mode::keep_lock);
  CHECK_FALSE(back->by_list);
  CHECK(back->filter.network == std::optional<std::string>{"multinet"});
  CHECK(back->filter.bar == std::optional<lock::bar_state>{lock::bar_state::barred});
  CHECK(back->filter.alerted == std::optional<bool>{true});
  CHECK_FALSE(back->filter.lock);
  CHECK(actors::job_runner::decode_spec(actors::job_runner::encode_spec(bar(), {}, true))->by_list);
  actors::order_request by_model;
  by_model.type = lock::order_type::enable_imei_lock;
  by_model.scope = lock::lock_scope::device_model;
  auto model_back =
      actors::job_runner::decode_spec(actors::job_runner::encode_spec(by_model, {}, true));
  REQUIRE(model_back);
  CHECK(model_back->order.scope == lock::lock_scope::device_model);
  CHECK(actors::job_runner::decode_spec(actors::job_runner::encode_spec(bar(), {}, true))
            ->order.scope == lock::lock_scope::imei);
  CHECK_FALSE(actors::job_runner::decode_spec(R"({"type":"enable_imei_lock","lock_scope":"x"})"));
  CHECK_FALSE(actors::job_runner::decode_spec("not json"));
  CHECK_FALSE(actors::job_runner::decode_spec(R"({"type":"explode"})"));
  CHECK_FALSE(actors::job_runner::decode_spec(R"({"type":"bar","filter":{"color":"red"}})"));
}
