// The bridge between the daemon's threads and the actors: observations and
// operator writes are handed to the registry shards with their callbacks
// (anon_send, never a scoped_actor per request: TOOLCHAIN pitfall 5); reads
// go straight to the store's reader connections.

#include "actors/sim_layer.hpp"

#include "actors/context.hpp"
#include "actors/jobs.hpp"
#include "common/log.hpp"
#include "lock/identifiers.hpp"

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <atomic>
#include <iterator>
#include <map>
#include <mutex>
#include <set>
#include <thread>

namespace imeilock::actors {

namespace {

log::rate_limiter malformed_limiter{10, std::chrono::seconds{10}};

using name_list = std::shared_ptr<const std::vector<std::string>>;

sim_info to_info(lock::sim_record&& r, lock::policy policy,
                 const std::vector<std::string>& configured) {
  bool known = std::binary_search(configured.begin(), configured.end(), r.network);
  return {std::move(r), policy, known};
}

/// Every enum of a stored state is a known value (the rules may trust it).
bool usable(const lock::sim_state& st) {
  constexpr std::string_view unknown = "unknown";
  return lock::to_string(st.status) != unknown && lock::to_string(st.lock) != unknown &&
         lock::to_string(st.bar) != unknown && lock::to_string(st.reason) != unknown &&
         lock::to_string(st.pending_order) != unknown &&
         lock::to_string(st.pending_unbar) != unknown && lock::to_string(st.scope) != unknown;
}

/// The networks a SIM may be on: those of `orders.networks` and of the
/// `imei_lock` lists, sorted, each once.
name_list network_names(const lock::eligibility_config& elig, const orders::orders_config& ocfg) {
  std::set<std::string> names;
  for (const auto& [name, net] : ocfg.networks)
    names.insert(name);
  names.insert(elig.lock_networks.begin(), elig.lock_networks.end());
  names.insert(elig.activation_lock_networks.begin(), elig.activation_lock_networks.end());
  return std::make_shared<const std::vector<std::string>>(names.begin(), names.end());
}

write_result refused(ec e, std::string reason) {
  write_result r;
  r.error = e;
  r.reason = std::move(reason);
  return r;
}

} // namespace

struct sim_layer::impl {
  caf::actor_system& sys;
  layer_metrics metrics; ///< before db: the store's commit observer uses it until db is gone
  /// R1 lists and actions, for what reads report per SIM; the actions are
  /// guarded by networks_mtx (reload_actions).
  lock::eligibility_config eligibility;
  layer_context ctx;
  std::unique_ptr<inventory> inv;
  std::unique_ptr<store::store> db; ///< destroyed (writer joined) after the job runner
  std::unique_ptr<job_runner> jobs; ///< after db: stopped and destroyed before it
  std::atomic<bool> running{false};
  bool stopped = false;
  std::atomic<std::size_t> in_flight{0};     ///< observations not yet acknowledged
  std::atomic<std::size_t> api_in_flight{0}; ///< operator writes not yet answered
  std::mutex create_mtx;                     ///< serialises creating new SIMs
  std::mutex orders_mtx; ///< guards ctx.orders_cfg and ctx.orders between start/stop and reload
  std::size_t rows_bytes = 0;
  mutable std::mutex networks_mtx;
  name_list configured; ///< guarded by networks_mtx; replaced whole on reload
  prometheus::Gauge* unconfigured_gauge = nullptr; ///< imeilock_sims_unconfigured_network
  std::atomic<std::uint64_t> unconfigured_sims{0};

  name_list networks() const {
    std::lock_guard g{networks_mtx};
    return configured;
  }

  /// The rules' view of `network` as reads report it.
  lock::policy policy_of(std::string_view network) const {
    std::lock_guard g{networks_mtx};
    return lock::policy_for(eligibility, network);
  }

  /// SIMs per interned network name that is not configured (any more).
  std::vector<std::pair<std::string, std::uint64_t>> unconfigured() const {
    auto known = networks();
    std::vector<std::pair<std::string, std::uint64_t>> out;
    auto n = inv->network_count();
    for (std::size_t i = 0; i < n; ++i) {
      auto id = static_cast<network_id>(i);
      auto sims = inv->sims_on(id);
      const auto& name = inv->network_name(id);
      if (sims > 0 && !std::binary_search(known->begin(), known->end(), name))
        out.emplace_back(name, sims);
    }
    return out;
  }

  /// Sets the gauge; with `log_each`, one line per unconfigured network.
  void report_unconfigured(bool log_each) {
    std::uint64_t total = 0;
    for (const auto& [name, sims] : unconfigured()) {
      total += sims;
      if (log_each)
        log::warning("sim_layer.unconfigured_network",
                     {{"network", name},
                      {"sims", sims},
                      {"action", "kept: observations are processed with the network's lock "
                                 "policy, orders use orders.defaults; move the SIMs to a "
                                 "configured network or configure it again"}});
    }
    unconfigured_sims.store(total);
    unconfigured_gauge->Set(static_cast<double>(total));
  }

  impl(std::unique_ptr<store::store> store, caf::actor_system& s, const sim_layer_config& cfg,
       const lock::eligibility_config& elig, const orders::orders_config& ocfg,
       prometheus::Registry& reg, sim_listener* listener, boost::asio::io_context& io) :
      sys(s),
      metrics(reg),
      eligibility(elig),
      db(std::move(store)),
      configured(network_names(elig, ocfg)) {
    unconfigured_gauge = &prometheus::BuildGauge()
                              .Name("imeilock_sims_unconfigured_network")
                              .Help("SIMs whose network is no longer configured (they keep "
                                    "working; see api/README.md)")
                              .Register(reg)
                              .Add({});
    ctx.cfg = cfg;
    ctx.orders_cfg = ocfg;
    inv = std::make_unique<inventory>(elig);
    ctx.db = db.get();
    ctx.inv = inv.get();
    ctx.metrics = &metrics;
    ctx.listener = listener;
    ctx.io = &io;
    db->set_commit_observer([m = &metrics](double seconds, std::size_t, bool ok) {
      m->commit_seconds->Observe(seconds);
      (ok ? m->commits_ok : m->commits_failed)->Increment();
    });
  }

  /// Wraps an API callback so stop() can wait for it.
  template <class T>
  std::function<void(T)> track(std::function<void(T)> done) {
    api_in_flight.fetch_add(1);
    return [this, d = std::move(done)](T v) {
      d(std::move(v));
      api_in_flight.fetch_sub(1);
    };
  }
};

expected<std::unique_ptr<sim_layer>>
sim_layer::open(caf::actor_system& sys, const sim_layer_config& cfg,
                const lock::eligibility_config& eligibility,
                const orders::orders_config& orders_cfg, prometheus::Registry& registry,
                sim_listener* listener, boost::asio::io_context& io) {
  auto db = store::open(cfg.store);
  if (!db)
    return std::move(db.error());
  return std::unique_ptr<sim_layer>{
      new sim_layer(std::move(*db), sys, cfg, eligibility, orders_cfg, registry, listener, io)};
}

sim_layer::sim_layer(std::unique_ptr<store::store> db, caf::actor_system& sys,
                     const sim_layer_config& cfg, const lock::eligibility_config& eligibility,
                     const orders::orders_config& orders_cfg, prometheus::Registry& registry,
                     sim_listener* listener, boost::asio::io_context& io) :
    impl_(std::make_unique<impl>(std::move(db), sys, cfg, eligibility, orders_cfg, registry,
                                 listener, io)) {
  impl_->jobs = std::make_unique<job_runner>(*impl_->db, service());
}

sim_layer::~sim_layer() {
  stop();
}

void sim_layer::start() {
  auto& d = *impl_;
  auto& ctx = d.ctx;
  auto t0 = std::chrono::steady_clock::now();
  auto shards = std::max<std::uint32_t>(1, ctx.cfg.shards);
  ctx.initial_rows.assign(shards, {});
  auto expected = d.db->count_sims();
  d.inv->reserve(expected);
  for (auto& rows : ctx.initial_rows)
    rows.reserve(expected / shards + 1);
  std::size_t skipped = 0;
  d.db->load_inventory([&](const store::inventory_row& r) {
    // A row the index or the rules cannot hold (a corrupted or hand-edited
    // store) is not served: kept in the store, logged, its IMSIs unknown.
    auto skip = [&](std::string_view why) {
      if (++skipped <= 10)
        log::error("sim_layer.row_skipped", {{"iccid", r.iccid.substr(0, 40)}, {"reason", why}});
    };
    if (!usable(r.state))
      return skip("a state value out of range");
    auto net = d.inv->intern(r.network);
    if (net == no_network)
      return skip("more distinct networks than the index holds");
    auto id = d.inv->add(r.iccid, r.network, r.imsis);
    if (id == no_sim)
      return skip("ICCID longer than 255 bytes");
    // Ids are dense and in load order: shard id % shards gets them in order.
    ctx.initial_rows[id % shards].push_back({r.state, r.activity, net, true});
    d.metrics.added(r.state);
    if (r.state.lock != lock::lock_state::off && r.activity.never_with_imei())
      d.metrics.awaiting_imei(1); // then kept in step by the shards (registry.cpp)
  });
  if (skipped > 0)
    log::error("sim_layer.rows_skipped", {{"rows", skipped}});
  d.report_unconfigured(true);
  d.rows_bytes = 0;
  for (auto& rows : ctx.initial_rows)
    d.rows_bytes += rows.capacity() * sizeof(compact_row);
  {
    std::lock_guard g{d.orders_mtx};
    ctx.orders = spawn_order_actor(d.sys, &ctx);
  }
  ctx.shards.reserve(shards);
  for (std::uint32_t i = 0; i < shards; ++i)
    ctx.shards.push_back(spawn_registry_shard(d.sys, &ctx, i));
  // Read here, before the order actor runs: its handlers never wait on SQLite.
  // An unreadable orders table is counted and resumes nothing (the daemon serves).
  orders_resume resume;
  guarded(fault_site::store_read, [&] { resume.open = d.db->open_orders(); });
  caf::anon_send(ctx.orders, std::move(resume));
  d.running = true;
  d.jobs->start();
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  log::notice(
      "sim_layer.started",
      {{"sims", d.inv->size()}, {"shards", shards}, {"store", d.db->describe()}, {"load_ms", ms}});
}

void sim_layer::stop() {
  auto& d = *impl_;
  {
    std::lock_guard g{d.orders_mtx};
    if (d.stopped)
      return;
    d.stopped = true;
  }
  // First: a running job finishes the orders in hand while the layer still answers.
  d.jobs->stop();
  bool was_running = d.running.exchange(false);
  if (!was_running)
    return;
  auto deadline = std::chrono::steady_clock::now() + d.ctx.cfg.stop_timeout;
  while ((d.in_flight.load() > 0 || d.api_in_flight.load() > 0) &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds{2});
  if (d.in_flight.load() > 0 || d.api_in_flight.load() > 0)
    log::warning("sim_layer.stop_timeout",
                 {{"observations", d.in_flight.load()}, {"writes", d.api_in_flight.load()}});
  for (auto& s : d.ctx.shards)
    caf::anon_send(s, stop_atom::value);
  caf::anon_send(d.ctx.orders, stop_atom::value);
  // The actors hold &d.ctx: a shard still working through its mailbox (a
  // sim_idle queued before the stop) must be done before the context goes.
  deadline = std::chrono::steady_clock::now() + d.ctx.cfg.stop_timeout;
  while (d.ctx.actors_running.load(std::memory_order_acquire) > 0 &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
  if (auto left = d.ctx.actors_running.load(); left > 0)
    log::warning("sim_layer.actors_still_running", {{"actors", left}});
  d.db->flush();
  log::notice("sim_layer.stopped");
}

void sim_layer::reload_orders(const orders::orders_config& cfg) {
  auto& d = *impl_;
  std::lock_guard g{d.orders_mtx};
  if (d.stopped)
    return;
  {
    std::lock_guard n{d.networks_mtx};
    d.configured = network_names(d.eligibility, cfg);
  }
  if (!d.ctx.orders) { // not started: start() spawns the order actor with it
    d.ctx.orders_cfg = cfg;
    return;
  }
  // The order actor owns its scheduler's copy; ctx.orders_cfg stays the
  // startup config (nothing reads it after start()).
  caf::anon_send(d.ctx.orders, orders_reload{cfg});
  d.report_unconfigured(true);
}

void sim_layer::reload_actions(const lock::eligibility_config& cfg) {
  auto& d = *impl_;
  {
    std::lock_guard n{d.networks_mtx};
    d.eligibility.action = cfg.action;
    d.eligibility.actions = cfg.actions;
  }
  d.inv->reload_actions(cfg);
  log::notice("sim_layer.actions_reloaded",
              {{"default", lock::to_string(cfg.action)},
               {"networks", static_cast<std::uint64_t>(cfg.actions.size())}});
}

std::vector<std::string> sim_layer::configured_networks() const {
  return *impl_->networks();
}

std::uint64_t sim_layer::sims_on_unconfigured_networks() const {
  return impl_->unconfigured_sims.load();
}

bool sim_layer::admit(observation& obs, ack_fn& done, sim_id& sim) {
  auto& d = *impl_;
  if (!d.running.load(std::memory_order_relaxed)) {
    d.metrics.count(ack::shutting_down);
    done(ack::shutting_down);
    return false;
  }
  // R2: a malformed IMEI is counted here; the rules treat it as absent
  // (lock::is_lock_event).
  if (obs.imei.status == lock::imei_status::malformed) {
    d.metrics.malformed_imeis->Increment();
    log::write_limited(malformed_limiter, log::level::info, "sim.malformed_imei",
                       {{"imsi", obs.imsi}, {"peer", obs.peer}});
  }
  sim = d.inv->by_imsi(obs.imsi);
  if (sim == no_sim) { // R15
    d.metrics.unknown_imsis->Increment();
    d.metrics.count(ack::unknown_sim);
    done(ack::unknown_sim);
    return false;
  }
  if (d.in_flight.fetch_add(1, std::memory_order_relaxed) >= d.ctx.cfg.max_in_flight) {
    d.in_flight.fetch_sub(1, std::memory_order_relaxed);
    d.metrics.count(ack::overloaded);
    done(ack::overloaded);
    return false;
  }
  done = [&d, done = std::move(done)](ack a) {
    d.metrics.count(a);
    d.in_flight.fetch_sub(1, std::memory_order_relaxed);
    done(a);
  };
  return true;
}

void sim_layer::submit(observation obs, ack_fn done) {
  sim_id id = no_sim;
  if (admit(obs, done, id))
    caf::anon_send(impl_->ctx.shard_of(id), sim_observation{id, std::move(obs), std::move(done)});
}

void sim_layer::submit_many(std::vector<submission>& batch) {
  auto& d = *impl_;
  // Grouped by shard in arrival order (a SIM's observations stay in order: one
  // SIM, one shard), one message per shard: the per-message cost of CAF (a
  // mailbox element, a scheduling, a dispatch) is paid once per batch.
  const std::size_t shards = d.ctx.shards.size();
  std::vector<std::vector<sim_observation>> by_shard(shards);
  for (auto& s : batch) {
    sim_id id = no_sim;
    if (admit(s.obs, s.done, id))
      by_shard[d.ctx.shard_index(id)].push_back(
          sim_observation{id, std::move(s.obs), std::move(s.done)});
  }
  batch.clear();
  for (std::size_t i = 0; i < shards; ++i) {
    auto& items = by_shard[i];
    if (items.size() == 1)
      caf::anon_send(d.ctx.shards[i], std::move(items.front()));
    else if (!items.empty())
      caf::anon_send(d.ctx.shards[i], sim_observation_batch{std::move(items)});
  }
}

void sim_layer::upsert_sim(sim_upsert sim, std::function<void(write_result)> done) {
  upsert(std::move(sim), std::move(done), false);
}

void sim_layer::upsert(sim_upsert sim, std::function<void(write_result)> done, bool bulk) {
  auto& d = *impl_;
  if (!d.running.load()) {
    done(refused(ec::shutting_down, "the daemon is stopping"));
    return;
  }
  if (auto v = lock::validate_iccid(sim.iccid); !v) {
    done(refused(ec::invalid, v.error().message()));
    return;
  }
  if (sim.network.empty()) {
    done(refused(ec::invalid, "network: must not be empty"));
    return;
  }
  if (auto known = d.networks(); !std::binary_search(known->begin(), known->end(), sim.network)) {
    done(unknown_network(sim.network, *known));
    return;
  }
  auto net = d.inv->intern(sim.network);
  if (net == no_network) { // more configured networks than the index holds
    done(refused(ec::invalid, "network \"" + sim.network + "\": the inventory holds at most " +
                                  std::to_string(inventory::max_networks) + " distinct networks"));
    return;
  }
  for (auto imsi : sim.imsis)
    if (imsi == 0 || imsi > 999'999'999'999'999ull) {
      done(refused(ec::invalid, "IMSI " + std::to_string(imsi) + " is not 15 digits"));
      return;
    }
  bool created = false;
  auto id = d.inv->by_iccid(sim.iccid);
  if (id == no_sim) {
    std::lock_guard g{d.create_mtx};
    id = d.inv->by_iccid(sim.iccid);
    if (id == no_sim) {
      if (auto taken = d.inv->conflicts(no_sim, sim.imsis); !taken.empty()) {
        done(refused(ec::conflict,
                     "IMSI " + std::to_string(taken.front()) + " belongs to another SIM"));
        return;
      }
      // Indexed by ICCID now, by IMSI only once the SIM is committed.
      id = d.inv->add(sim.iccid, sim.network, {});
      if (id == no_sim) { // validated above: cannot happen, but never throw here
        done(refused(ec::invalid, "the SIM cannot be added to the inventory index"));
        return;
      }
      created = true;
    }
  }
  auto shard = d.ctx.shard_of(id);
  // While SIMs sit on unconfigured networks, an upsert may move one away.
  std::function<void(write_result)> reply = std::move(done);
  if (d.unconfigured_sims.load() > 0)
    reply = [&d, inner = std::move(reply)](write_result r) {
      if (r.error == ec::ok)
        d.report_unconfigured(false);
      inner(std::move(r));
    };
  caf::anon_send(shard, sim_upsert_msg{id, std::move(sim), net, created, now_ms(),
                                       d.track<write_result>(std::move(reply)), bulk});
}

void sim_layer::import_sims(std::vector<sim_upsert> sims,
                            std::function<void(std::vector<write_result>)> done) {
  if (sims.empty()) {
    done({});
    return;
  }
  // Each SIM goes through its own actor (one path to a SIM's state); group
  // commit folds them into few transactions. Each result is per SIM. An
  // actor spawned for the import goes as soon as it is idle (bulk).
  struct gather {
    std::mutex mtx;
    std::vector<write_result> results;
    std::size_t remaining;
    std::function<void(std::vector<write_result>)> done;
  };
  auto g = std::make_shared<gather>();
  g->results.resize(sims.size());
  g->remaining = sims.size();
  g->done = std::move(done);
  for (std::size_t i = 0; i < sims.size(); ++i)
    upsert(
        std::move(sims[i]),
        [g, i](write_result r) {
          std::unique_lock lk{g->mtx};
          g->results[i] = std::move(r);
          if (--g->remaining == 0) {
            lk.unlock();
            g->done(std::move(g->results));
          }
        },
        true);
}

void sim_layer::get_sim(std::string iccid, std::function<void(std::optional<sim_info>)> done) {
  auto r = impl_->db->get_sim(iccid);
  if (!r) {
    done(std::nullopt);
    return;
  }
  auto policy = impl_->policy_of(r->network);
  done(to_info(std::move(*r), policy, *impl_->networks()));
}

void sim_layer::list_sims(sim_filter filter, std::string cursor, std::size_t limit,
                          std::function<void(sim_page)> done) {
  limit = std::clamp<std::size_t>(limit, 1, 10'000);
  auto rows = impl_->db->list_sims(filter, cursor, limit);
  sim_page page;
  if (rows.size() == limit)
    page.next_cursor = rows.back().iccid;
  page.items.reserve(rows.size());
  auto known = impl_->networks();
  for (auto& r : rows)
    page.items.push_back(to_info(std::move(r), impl_->policy_of(r.network), *known));
  done(std::move(page));
}

void sim_layer::place_order(std::string iccid, order_request req,
                            std::function<void(write_result)> done) {
  auto& d = *impl_;
  if (!d.running.load()) {
    done(refused(ec::shutting_down, "the daemon is stopping"));
    return;
  }
  auto id = d.inv->by_iccid(iccid);
  if (id == no_sim) {
    done(refused(ec::unknown_sim, "no SIM with ICCID " + iccid));
    return;
  }
  caf::anon_send(d.ctx.shard_of(id),
                 sim_order{id, req, now_ms(), d.track<write_result>(std::move(done))});
}

void sim_layer::get_order(std::uint64_t id,
                          std::function<void(std::optional<orders::order>)> done) {
  done(impl_->db->get_order(id));
}

void sim_layer::list_orders(std::string iccid,
                            std::function<void(std::vector<orders::order>)> done) {
  done(impl_->db->list_orders(iccid));
}

void sim_layer::list_events(std::string iccid, std::size_t limit,
                            std::function<void(std::vector<event_info>)> done) {
  std::vector<event_info> out;
  for (auto& a : impl_->db->list_events(iccid, limit))
    out.push_back({a.id, std::move(a.iccid), a.at_ms, std::move(a.cause), a.before, a.after, a.imei,
                   std::move(a.detail)});
  done(std::move(out));
}

job_service* sim_layer::jobs() {
  return impl_->jobs.get();
}

void sim_layer::fleet(std::function<void(fleet_info)> done) {
  constexpr std::int64_t hour_ms = 3'600'000;
  constexpr std::size_t hours = 24;
  constexpr std::size_t latest = 10;
  auto& d = *impl_;
  fleet_info out;
  out.at_ms = now_ms();
  // The current hour and the 23 before it, whole hours (a chart's bars).
  out.since_ms = (out.at_ms / hour_ms - static_cast<std::int64_t>(hours - 1)) * hour_ms;
  auto counts = d.db->fleet(out.since_ms, hours, latest);
  orders::orders_config ocfg;
  {
    std::lock_guard g{d.orders_mtx};
    ocfg = d.ctx.orders_cfg;
  }
  std::map<std::string, fleet_network, std::less<>> nets;
  auto net = [&](const std::string& name) -> fleet_network& {
    auto [it, added] = nets.try_emplace(name);
    if (added) {
      const auto& c = ocfg.network(name);
      it->second.name = name;
      it->second.rate_per_second = c.rate_per_second;
      it->second.burst = c.burst;
      it->second.max_in_flight = c.max_in_flight;
      it->second.max_queue = c.max_queue;
    }
    return it->second;
  };
  for (const auto& name : *d.networks())
    net(name);
  for (auto& s : counts.sims)
    net(s.network).sims.push_back({s.lock, s.bar, s.sims});
  for (auto& o : counts.orders) {
    auto& n = net(o.network);
    n.orders_queued = o.queued;
    n.orders_in_flight = o.submitted;
  }
  for (auto& [name, n] : nets)
    out.networks.push_back(std::move(n));
  out.violations_per_hour = std::move(counts.violations_per_hour);
  auto events = [](std::vector<store::audit_record>& from, std::vector<event_info>& to) {
    for (auto& a : from)
      to.push_back({a.id, std::move(a.iccid), a.at_ms, std::move(a.cause), a.before, a.after,
                    a.imei, std::move(a.detail)});
  };
  events(counts.latest_violations, out.latest_violations);
  events(counts.latest_bars, out.latest_bars);
  d.jobs->list_jobs(true, 20, [&](std::vector<job_info> jobs) {
    // list_jobs is newest first: the oldest runs first.
    out.running_jobs.assign(std::make_move_iterator(jobs.rbegin()),
                            std::make_move_iterator(jobs.rend()));
  });
  done(std::move(out));
}

store::store& sim_layer::db() {
  return *impl_->db;
}

std::size_t sim_layer::inventory_size() const {
  return impl_->inv->size();
}

std::size_t sim_layer::inventory_bytes() const {
  return impl_->inv->bytes() + impl_->rows_bytes;
}

std::size_t sim_layer::in_flight() const {
  return impl_->in_flight.load();
}

std::size_t sim_layer::sim_actors_alive() {
  std::size_t total = 0;
  caf::scoped_actor self{impl_->sys};
  for (auto& s : impl_->ctx.shards)
    self->request(s, caf::infinite, counts_atom::value)
        .receive([&](const registry_counts& c) { total += c.active; }, [](const caf::error&) {});
  return total;
}

} // namespace imeilock::actors
