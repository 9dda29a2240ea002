// The bridge between the daemon's threads and the actors: observations and
// operator writes are handed to the registry shards with their callbacks
// (anon_send, never a scoped_actor per request: TOOLCHAIN pitfall 5); reads
// go straight to the store's reader connections.

#include "actors/sim_layer_impl.hpp"

#include "actors/context.hpp"
#include "common/log.hpp"
#include "lock/inventory.hpp"

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include <atomic>
#include <mutex>
#include <thread>

namespace imeilock::actors {

namespace {

log::rate_limiter malformed_limiter{10, std::chrono::seconds{10}};

sim_info to_info(store::sim_record&& r, const lock::eligibility_config& eligibility) {
  auto policy = lock::policy_for(eligibility, r.network);
  return {std::move(r.iccid), std::move(r.imsis), std::move(r.msisdn), std::move(r.network),
          r.state, policy};
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
  lock::eligibility_config eligibility; ///< R1 lists, for what reads report per SIM
  layer_context ctx;
  std::unique_ptr<inventory> inv;
  std::unique_ptr<store::store> db; ///< last: destroyed (writer joined) first
  std::atomic<bool> running{false};
  bool stopped = false;
  std::atomic<std::size_t> in_flight{0};     ///< observations not yet acknowledged
  std::atomic<std::size_t> api_in_flight{0}; ///< operator writes not yet answered
  std::mutex create_mtx;                     ///< serialises creating new SIMs
  std::mutex orders_mtx; ///< guards ctx.orders_cfg and ctx.orders between start/stop and reload
  std::size_t rows_bytes = 0;

  impl(caf::actor_system& s, const sim_layer_config& cfg, const lock::eligibility_config& elig,
       const orders::orders_config& ocfg, prometheus::Registry& reg, sim_listener* listener,
       boost::asio::io_context& io)
    : sys(s), metrics(reg), eligibility(elig) {
    ctx.cfg = cfg;
    ctx.orders_cfg = ocfg;
    db = std::make_unique<store::store>(cfg.store);
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

sim_layer::sim_layer(caf::actor_system& sys, const sim_layer_config& cfg,
                     const lock::eligibility_config& eligibility,
                     const orders::orders_config& orders_cfg, prometheus::Registry& registry,
                     sim_listener* listener, boost::asio::io_context& io)
  : impl_(std::make_unique<impl>(sys, cfg, eligibility, orders_cfg, registry, listener, io)) {}

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
  d.db->load_inventory([&](const store::inventory_row& r) {
    auto net = d.inv->intern(r.network);
    auto id = d.inv->add(r.iccid, r.network, r.imsis);
    ctx.initial_rows[id % shards].push_back({r.state, net});
    d.metrics.added(r.state);
  });
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
  caf::anon_send(ctx.orders, resume_atom::value);
  d.running = true;
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
              std::chrono::steady_clock::now() - t0)
              .count();
  log::notice("sim_layer.started", {{"sims", d.inv->size()},
                                    {"shards", shards},
                                    {"store", ctx.cfg.store.path},
                                    {"load_ms", ms}});
}

void sim_layer::stop() {
  auto& d = *impl_;
  {
    std::lock_guard g{d.orders_mtx};
    if (d.stopped)
      return;
    d.stopped = true;
  }
  bool was_running = d.running.exchange(false);
  if (!was_running)
    return;
  auto deadline = std::chrono::steady_clock::now() + d.ctx.cfg.stop_timeout;
  while ((d.in_flight.load() > 0 || d.api_in_flight.load() > 0) &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds{2});
  if (d.in_flight.load() > 0 || d.api_in_flight.load() > 0)
    log::warning("sim_layer.stop_timeout", {{"observations", d.in_flight.load()},
                                            {"writes", d.api_in_flight.load()}});
  for (auto& s : d.ctx.shards)
    caf::anon_send(s, stop_atom::value);
  caf::anon_send(d.ctx.orders, stop_atom::value);
  d.db->flush();
  log::notice("sim_layer.stopped");
}

void sim_layer::reload_orders(const orders::orders_config& cfg) {
  auto& d = *impl_;
  std::lock_guard g{d.orders_mtx};
  if (d.stopped)
    return;
  if (!d.ctx.orders) { // not started: start() spawns the order actor with it
    d.ctx.orders_cfg = cfg;
    return;
  }
  // The order actor owns its scheduler's copy; ctx.orders_cfg stays the
  // startup config (nothing reads it after start()).
  caf::anon_send(d.ctx.orders, orders_reload{cfg});
}

void sim_layer::submit(observation obs, ack_fn done) {
  auto& d = *impl_;
  if (!d.running.load(std::memory_order_relaxed)) {
    d.metrics.count(ack::shutting_down);
    done(ack::shutting_down);
    return;
  }
  if (obs.imei.status == lock::imei_status::malformed) { // R2: counted, then no IMEI
    d.metrics.malformed_imeis->Increment();
    log::write_limited(malformed_limiter, log::level::info, "sim.malformed_imei",
                       {{"imsi", obs.imsi}, {"peer", obs.peer}});
    obs.imei = {};
  }
  auto id = d.inv->by_imsi(obs.imsi);
  if (id == no_sim) { // R15
    d.metrics.unknown_imsis->Increment();
    d.metrics.count(ack::unknown_sim);
    done(ack::unknown_sim);
    return;
  }
  if (d.in_flight.fetch_add(1, std::memory_order_relaxed) >= d.ctx.cfg.max_in_flight) {
    d.in_flight.fetch_sub(1, std::memory_order_relaxed);
    d.metrics.count(ack::overloaded);
    done(ack::overloaded);
    return;
  }
  ack_fn wrapped = [&d, done = std::move(done)](ack a) {
    d.metrics.count(a);
    d.in_flight.fetch_sub(1, std::memory_order_relaxed);
    done(a);
  };
  caf::anon_send(d.ctx.shard_of(id), sim_observation{id, std::move(obs), std::move(wrapped)});
}

void sim_layer::upsert_sim(sim_upsert sim, std::function<void(write_result)> done) {
  auto& d = *impl_;
  if (!d.running.load()) {
    done(refused(ec::shutting_down, "the daemon is stopping"));
    return;
  }
  if (auto v = lock::validate_iccid(sim.iccid); !v) {
    done(refused(ec::invalid, v.reason));
    return;
  }
  if (sim.network.empty()) {
    done(refused(ec::invalid, "network: must not be empty"));
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
      created = true;
    }
  }
  auto shard = d.ctx.shard_of(id);
  caf::anon_send(shard, sim_upsert_msg{id, std::move(sim), created, now_ms(),
                                       d.track<write_result>(std::move(done))});
}

void sim_layer::import_sims(std::vector<sim_upsert> sims,
                            std::function<void(std::vector<write_result>)> done) {
  if (sims.empty()) {
    done({});
    return;
  }
  // Each SIM goes through its own actor (one path to a SIM's state); group
  // commit folds them into few transactions. Each result is per SIM.
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
    upsert_sim(std::move(sims[i]), [g, i](write_result r) {
      std::unique_lock lk{g->mtx};
      g->results[i] = std::move(r);
      if (--g->remaining == 0) {
        lk.unlock();
        g->done(std::move(g->results));
      }
    });
}

void sim_layer::get_sim(std::string iccid, std::function<void(std::optional<sim_info>)> done) {
  auto r = impl_->db->get_sim(iccid);
  if (!r) {
    done(std::nullopt);
    return;
  }
  done(to_info(std::move(*r), impl_->eligibility));
}

void sim_layer::list_sims(sim_filter filter, std::string cursor, std::size_t limit,
                          std::function<void(sim_page)> done) {
  store::sim_filter f;
  f.lock = filter.lock;
  f.bar = filter.bar;
  f.network = filter.network;
  limit = std::clamp<std::size_t>(limit, 1, 10'000);
  auto rows = impl_->db->list_sims(f, cursor, limit);
  sim_page page;
  if (rows.size() == limit)
    page.next_cursor = rows.back().iccid;
  page.items.reserve(rows.size());
  for (auto& r : rows)
    page.items.push_back(to_info(std::move(r), impl_->eligibility));
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

void sim_layer::get_order(std::uint64_t id, std::function<void(std::optional<order_info>)> done) {
  auto r = impl_->db->get_order(id);
  if (!r) {
    done(std::nullopt);
    return;
  }
  done(to_info(*r));
}

void sim_layer::list_orders(std::string iccid, std::function<void(std::vector<order_info>)> done) {
  std::vector<order_info> out;
  for (auto& r : impl_->db->list_orders(iccid))
    out.push_back(to_info(r));
  done(std::move(out));
}

void sim_layer::list_events(std::string iccid, std::size_t limit,
                            std::function<void(std::vector<event_info>)> done) {
  std::vector<event_info> out;
  for (auto& a : impl_->db->list_events(iccid, limit))
    out.push_back({a.id, std::move(a.iccid), a.at_ms, std::move(a.cause), a.before, a.after,
                   a.imei, std::move(a.detail)});
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
      .receive([&](const registry_counts& c) { total += c.active; },
               [](const caf::error&) {});
  return total;
}

} // namespace imeilock::actors
