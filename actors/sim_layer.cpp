// The bridge between the daemon's threads and the actors: observations and
// operator writes are handed to the registry shards with their callbacks
// (anon_send, never a scoped_actor per request: TOOLCHAIN pitfall 5); reads
// go straight to the store's reader connections.

#include "actors/sim_layer.hpp"

#include "actors/cluster_jobs.hpp"
#include "actors/context.hpp"
#include "actors/jobs.hpp"
#include "cluster/jobs.hpp"
#include "cluster/shard.hpp"
#include "common/allocator.hpp"
#include "common/assert.hpp"
#include "common/log.hpp"
#include "lock/caveats.hpp"
#include "lock/identifiers.hpp"

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <iterator>
#include <map>
#include <mutex>
#include <set>
#include <string_view>
#include <thread>
#include <unordered_map>

namespace imeilock::actors {

namespace {

log::rate_limiter malformed_limiter{10, std::chrono::seconds{10}};

using name_list = std::shared_ptr<const std::vector<std::string>>;

sim_info to_info(lock::sim_record&& r, lock::policy policy,
                 const std::vector<std::string>& configured) {
  bool known = std::binary_search(configured.begin(), configured.end(), r.network);
  return {std::move(r), policy, known, {}};
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

/// More than one node: a write for a SIM whose shard another node serves.
write_result not_served_here() {
  return refused(ec::store_failed, "this node does not serve the SIM's cluster shard; send the "
                                   "request to its owner (GET /v1/cluster) or retry");
}

std::uint64_t lowest_of(const std::vector<std::uint64_t>& imsis) {
  return imsis.empty() ? 0 : *std::min_element(imsis.begin(), imsis.end());
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
  /// More than one node: bulk jobs by shard (set_cluster), instead of `jobs`.
  std::unique_ptr<cluster::job_store> job_parts;
  std::unique_ptr<cluster_job_runner> cluster_jobs; ///< after job_parts: destroyed before it
  std::atomic<bool> running{false};
  bool stopped = false;
  std::atomic<std::size_t> in_flight{0};     ///< observations not yet acknowledged
  std::atomic<std::size_t> api_in_flight{0}; ///< operator writes not yet answered
  std::mutex create_mtx;                     ///< serialises creating new SIMs
  std::mutex orders_mtx; ///< guards ctx.orders_cfg and ctx.orders between start/stop and reload
  /// The `orders:` section as last loaded or reloaded (ctx.orders_cfg stays
  /// the startup one): the limits the fleet shows and the lead times the
  /// answers quote. Guarded by orders_now_mtx alone, which is never held
  /// while waiting on anything (answers take it on actor threads).
  orders::orders_config orders_now;
  mutable std::mutex orders_now_mtx;
  std::size_t rows_bytes = 0;
  mutable std::mutex networks_mtx;
  name_list configured; ///< guarded by networks_mtx; replaced whole on reload
  prometheus::Gauge* unconfigured_gauge = nullptr; ///< imeilock_sims_unconfigured_network
  std::atomic<std::uint64_t> unconfigured_sims{0};

  /// More than one node (set_cluster): which cluster shards are served, and
  /// the loader thread that loads and drops them. shards == 0: one node.
  struct cluster_part {
    /// A shard to load at `epoch`, or to drop (epoch 0).
    struct job {
      std::uint32_t shard = 0;
      std::int64_t epoch = 0;
    };
    std::uint32_t shards = 0;
    std::function<std::optional<std::int64_t>(std::uint32_t)> epoch_of;
    std::function<cluster_info()> describe;
    std::function<void(observation, ack_fn)> hand_off;
    std::function<void(std::uint32_t)> served_fn;
    decltype(cluster_view::pending) pending;
    decltype(cluster_view::released) released;
    /// Per shard: the epoch it is served at, 0 when not. Written under mtx,
    /// read lock-free on the packet path.
    std::unique_ptr<std::atomic<std::int64_t>[]> serving;
    mutable std::mutex mtx;
    std::condition_variable cv;
    std::vector<std::int64_t> wanted; ///< under mtx: the lease's epoch per shard, 0: none
    std::deque<job> jobs;             ///< under mtx
    bool busy = false;                ///< under mtx: a job is running
    bool stopping = false;            ///< under mtx
    std::thread loader;
  };
  cluster_part cl;

  bool clustered() const { return cl.shards > 0; }
  /// An observation received directly at a cluster node serving its SIM:
  /// applied only behind the SIM's handoffs waiting in the inbox.
  bool ordered_after_handoffs(const observation& obs) const {
    return clustered() && cl.pending && !obs.inbox;
  }

  /// The fencing claim of a SIM whose lowest IMSI is `lowest`: its shard and
  /// the epoch this node serves it at, if it serves it now and still holds
  /// the lease at that epoch (the lease manager's local deadline included).
  std::optional<std::pair<std::int64_t, std::int64_t>> claim(std::uint64_t lowest) const {
    if (lowest == 0)
      return std::nullopt;
    return claim_shard(cluster::shard_of(lowest, cl.shards));
  }
  /// claim() by shard.
  std::optional<std::pair<std::int64_t, std::int64_t>> claim_shard(std::uint32_t shard) const {
    if (shard >= cl.shards)
      return std::nullopt;
    auto epoch = cl.serving[shard].load(std::memory_order_acquire);
    if (epoch == 0)
      return std::nullopt;
    if (auto held = cl.epoch_of(shard); !held || *held != epoch)
      return std::nullopt;
    return std::pair<std::int64_t, std::int64_t>{shard, epoch};
  }
  bool served(std::uint64_t lowest) const { return claim(lowest).has_value(); }

  void loader_run() {
    for (;;) {
      cluster_part::job j;
      {
        std::unique_lock lk{cl.mtx};
        cl.cv.wait(lk, [&] { return cl.stopping || !cl.jobs.empty(); });
        if (cl.stopping)
          return;
        j = cl.jobs.front();
        cl.jobs.pop_front();
        cl.busy = true;
      }
      bool retry = false;
      try {
        if (j.epoch == 0)
          drop_shard(j.shard);
        else
          load_shard(j.shard, j.epoch);
      } catch (const std::exception& e) {
        // The store cannot be read (an outage): the shard stays unserved
        // while the lease is held; tried again shortly.
        log::error("cluster.shard_load_failed",
                   {{"shard", j.shard}, {"epoch", j.epoch}, {"error", e.what()}});
        retry = j.epoch != 0;
      }
      std::unique_lock lk{cl.mtx};
      cl.busy = false;
      if (retry) {
        cl.cv.wait_for(lk, std::chrono::milliseconds{500}, [&] { return cl.stopping; });
        if (!cl.stopping && cl.wanted[j.shard] == j.epoch)
          cl.jobs.push_front(j);
      }
    }
  }

  /// Loads the SIMs of `shard` (lowest IMSI in it) into the index and the
  /// registry shards, resumes their open orders, then serves the shard if
  /// its lease is still held at `epoch`.
  void load_shard(std::uint32_t shard, std::int64_t epoch) {
    {
      std::lock_guard g{cl.mtx};
      if (cl.wanted[shard] != epoch)
        return; // lost again before it was loaded
    }
    auto t0 = std::chrono::steady_clock::now();
    auto bounds = cluster::suffix_range(shard, cl.shards);
    std::vector<sims_loaded> rows(ctx.shards.size());
    std::size_t loaded = 0;
    std::size_t skipped = 0;
    db->load_inventory_suffixes(bounds.first, bounds.last, [&](const store::inventory_row& r) {
      auto net = inv->intern(r.network);
      if (!usable(r.state) || net == no_network) {
        ++skipped;
        return;
      }
      auto id = inv->by_iccid(r.iccid);
      if (id == no_sim)
        id = inv->add(r.iccid, r.network, r.imsis);
      else // served here before: the same id again
        inv->set_imsis(id, r.imsis);
      if (id == no_sim) {
        ++skipped;
        return;
      }
      auto& m = rows[ctx.shard_index(id)];
      m.sims.push_back(id);
      m.states.push_back(r.state);
      m.activities.push_back(r.activity);
      m.networks.push_back(net);
      ++loaded;
    });
    for (std::size_t i = 0; i < rows.size(); ++i)
      if (!rows[i].sims.empty())
        caf::anon_send(ctx.shards[i], std::move(rows[i]));
    // Their open orders resume with their remaining lead time (orders_resume).
    orders_resume resume;
    for (auto& o : db->open_orders()) {
      auto lowest = inv->lowest_imsi(inv->by_iccid(o.iccid));
      if (lowest != 0 && cluster::shard_of(lowest, cl.shards) == shard)
        resume.open.push_back(std::move(o));
    }
    auto orders = resume.open.size();
    bool serve = false;
    {
      std::lock_guard g{cl.mtx};
      serve = cl.wanted[shard] == epoch;
      if (serve)
        cl.serving[shard].store(epoch, std::memory_order_release);
    }
    // Only once served: an order due at once is carried out straight away,
    // and its changes are written under the shard's lease (stamp_claim),
    // which a shard not served yet does not give (they were lost).
    if (serve) {
      std::lock_guard g{orders_mtx};
      if (ctx.orders)
        caf::anon_send(ctx.orders, std::move(resume));
    }
    if (serve && cl.served_fn)
      cl.served_fn(shard);
    if (serve && cluster_jobs)
      cluster_jobs->poke(); // the shard's part of running jobs goes on here
    auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    log::notice(serve ? "cluster.shard_served" : "cluster.shard_lost_while_loading",
                {{"shard", shard},
                 {"epoch", epoch},
                 {"sims", loaded},
                 {"skipped", skipped},
                 {"open_orders", orders},
                 {"load_ms", ms}});
  }

  /// Drops the SIMs of `shard`: forgets their IMSIs (their ICCIDs keep their
  /// ids for a later load), stops their actors, forgets their open orders.
  void drop_shard(std::uint32_t shard) {
    std::vector<sims_dropped> drops(ctx.shards.size());
    std::vector<std::string> iccids;
    auto total = static_cast<sim_id>(inv->size());
    for (sim_id id = 0; id < total; ++id) {
      auto lowest = inv->lowest_imsi(id);
      if (lowest == 0 || cluster::shard_of(lowest, cl.shards) != shard)
        continue;
      inv->forget_imsis(id);
      drops[ctx.shard_index(id)].sims.push_back(id);
      iccids.push_back(inv->iccid(id));
    }
    for (std::size_t i = 0; i < drops.size(); ++i)
      if (!drops[i].sims.empty())
        caf::anon_send(ctx.shards[i], std::move(drops[i]));
    auto n = iccids.size();
    std::sort(iccids.begin(), iccids.end());
    {
      std::lock_guard g{orders_mtx};
      if (ctx.orders)
        caf::anon_send(ctx.orders, orders_drop{std::move(iccids)});
    }
    log::notice("cluster.shard_dropped", {{"shard", shard}, {"sims", n}});
  }

  void stop_loader() {
    {
      std::lock_guard g{cl.mtx};
      cl.stopping = true;
      cl.jobs.clear();
    }
    cl.cv.notify_all();
    if (cl.loader.joinable())
      cl.loader.join();
  }

  name_list networks() const {
    std::lock_guard g{networks_mtx};
    return configured;
  }

  /// The bar lead time of `network` as configured now ("5s",
  /// "lognormal(median 5s, p95 20s)"): what the bar caveat quotes.
  std::string bar_lead_time(std::string_view network) const {
    std::lock_guard g{orders_now_mtx};
    return orders_now.network(network).lead_time_for(lock::order_type::bar).describe();
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
    orders_now = ocfg;
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

  /// More than one node: why an upsert cannot be done here, if it cannot.
  /// The SIM's shard (that of its lowest IMSI) must be served here, before
  /// and after; a SIM does not move to another shard (not supported yet:
  /// the two shards' leases would both have to fence the change).
  /// `bulk` (an import): the owner is not looked up (one database read per
  /// SIM), the refusal names no owner.
  std::optional<write_result> cluster_refusal(const sim_upsert& sim, bool bulk) const {
    auto lowest = lowest_of(sim.imsis);
    if (lowest == 0)
      return refused(ec::invalid, "imsis: a SIM needs at least one IMSI in a cluster");
    if (!served(lowest))
      return bulk ? not_served_here() : served_elsewhere(cluster::shard_of(lowest, cl.shards));
    auto stored = db->get_sim(sim.iccid); // the store: the SIM may be in no index here
    if (stored && !stored->imsis.empty()) {
      auto before = lowest_of(stored->imsis);
      if (cluster::shard_of(before, cl.shards) != cluster::shard_of(lowest, cl.shards))
        return refused(ec::conflict, "the new IMSIs put the SIM in cluster shard " +
                                         std::to_string(cluster::shard_of(lowest, cl.shards)) +
                                         ", it is in shard " +
                                         std::to_string(cluster::shard_of(before, cl.shards)) +
                                         "; moving a SIM between shards is not supported yet");
    }
    return std::nullopt;
  }

  /// The refusal of an operator write for a SIM of `shard`, which this node
  /// does not serve now, naming who does (write_result::elsewhere) as the
  /// lease table and cluster_nodes say: the API redirects the write there.
  /// The shard's live lease holder, unless that is this node (a shard it
  /// is still loading: retry here) or the database cannot be read (no owner
  /// named: retry).
  write_result served_elsewhere(std::uint32_t shard) const {
    cluster_info info;
    try {
      if (cl.describe)
        info = cl.describe();
    } catch (const unavailable_error&) {
      return not_served_here(); // the database: the caller retries
    }
    return served_elsewhere(info, shard);
  }
  /// served_elsewhere() as `info` (read once for many SIMs: an import) says.
  static write_result served_elsewhere(const cluster_info& info, std::uint32_t shard) {
    auto lease = std::find_if(info.leases.begin(), info.leases.end(),
                              [&](const cluster_info::lease& l) { return l.shard == shard; });
    shard_owner owner{shard, {}, {}};
    if (lease != info.leases.end() && !lease->owner.empty() && lease->expires_in_ms > 0) {
      if (lease->owner == info.node_id)
        return refused(ec::store_failed, "this node is loading the SIM's cluster shard " +
                                             std::to_string(shard) + ": retry shortly");
      owner.node_id = lease->owner;
      auto node =
          std::find_if(info.nodes.begin(), info.nodes.end(),
                       [&](const cluster_info::node& n) { return n.node_id == owner.node_id; });
      if (node != info.nodes.end())
        owner.api_url = node->api_url;
    }
    auto r = not_served_here();
    r.elsewhere = std::move(owner);
    return r;
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
  ctx.fast_path = !d.clustered(); // docs/cluster.md: a cluster node decides on the shards
  ctx.initial_rows.assign(shards, {});
  auto expected = d.clustered() ? 0 : d.db->count_sims(); // cluster: loaded by shard
  d.inv->reserve(expected);
  for (auto& rows : ctx.initial_rows)
    rows.reserve(expected / shards + 1);
  std::size_t skipped = 0;
  // More than one node: nothing now; each shard as its lease is gained.
  if (!d.clustered()) {
    std::vector<inventory::new_sim> sims;
    std::vector<const store::inventory_row*> rows;
    std::vector<network_id> nets;
    std::vector<sim_id> ids;
    std::string last_network;
    auto last_net = no_network;
    // The state gauges and imeilock_sims_awaiting_imei, counted here and set once.
    std::array<std::array<std::uint64_t, 4>, 3> by_lock_bar{};
    std::int64_t awaiting = 0;
    d.db->load_inventory_batches([&](std::span<const store::inventory_row> batch) {
      sims.clear();
      rows.clear();
      nets.clear();
      for (const auto& r : batch) {
        // A row the index or the rules cannot hold (a corrupted or hand-edited
        // store) is not served: kept in the store, logged, its IMSIs unknown.
        auto skip = [&](std::string_view why) {
          if (++skipped <= 10)
            log::error("sim_layer.row_skipped",
                       {{"iccid", r.iccid.substr(0, 40)}, {"reason", why}});
        };
        if (!usable(r.state)) {
          skip("a state value out of range");
          continue;
        }
        if (r.network != last_network || last_net == no_network) {
          last_net = d.inv->intern(r.network);
          last_network = r.network;
        }
        if (last_net == no_network) {
          skip("more distinct networks than the index holds");
          continue;
        }
        sims.push_back({r.iccid, r.network, r.imsis});
        rows.push_back(&r);
        nets.push_back(last_net);
      }
      ids.resize(sims.size());
      d.inv->add_many(sims, ids);
      for (std::size_t i = 0; i < ids.size(); ++i) {
        const auto& r = *rows[i];
        if (ids[i] == no_sim) {
          if (++skipped <= 10)
            log::error("sim_layer.row_skipped", {{"iccid", r.iccid.substr(0, 40)},
                                                 {"reason", "ICCID longer than 255 bytes"}});
          continue;
        }
        // Ids are dense and in load order: shard id % shards gets them in order.
        ctx.initial_rows[ids[i] % shards].push_back(
            compact_row::loaded(r.state, r.activity, nets[i]));
        ++by_lock_bar[static_cast<std::size_t>(r.state.lock) % 3]
                     [static_cast<std::size_t>(r.state.bar) % 4];
        if (r.state.lock != lock::lock_state::off && r.activity.never_with_imei())
          ++awaiting; // then kept in step by the shards (registry.cpp)
      }
    });
    for (std::size_t l = 0; l < 3; ++l)
      for (std::size_t b = 0; b < 4; ++b)
        d.metrics.added(static_cast<lock::lock_state>(l), static_cast<lock::bar_state>(b),
                        by_lock_bar[l][b]);
    d.metrics.awaiting_imei(static_cast<int>(awaiting));
  }
  if (skipped > 0)
    log::error("sim_layer.rows_skipped", {{"rows", skipped}});
  d.report_unconfigured(true);
  d.rows_bytes = 0;
  for (auto& rows : ctx.initial_rows)
    d.rows_bytes += rows.capacity() * sizeof(compact_row);
  // The load's batches and buffers are free now: their pages go back to the
  // kernel once, before anything runs (common/allocator.hpp).
  release_free_memory();
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
  if (!d.clustered())
    guarded(fault_site::store_read, [&] { resume.open = d.db->open_orders(); });
  caf::anon_send(ctx.orders, std::move(resume));
  d.running = true;
  if (d.jobs)
    d.jobs->start();
  if (d.cluster_jobs)
    d.cluster_jobs->start();
  if (d.clustered())
    d.cl.loader = std::thread([&d] { d.loader_run(); });
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
  if (d.jobs)
    d.jobs->stop();
  if (d.cluster_jobs)
    d.cluster_jobs->stop();
  bool was_running = d.running.exchange(false);
  d.stop_loader();
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
  {
    std::lock_guard n{d.orders_now_mtx};
    d.orders_now = cfg;
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
  // More than one node: a SIM of a shard served elsewhere (or an IMSI of
  // one: the owner may know it) is handed to the owner through the inbox,
  // answered once that has committed; without a handoff (or for a handoff
  // being applied) it is not answered here.
  if (d.clustered() && !d.served(sim == no_sim ? obs.imsi : d.inv->lowest_imsi(sim))) {
    if (d.cl.hand_off && !obs.inbox) {
      d.cl.hand_off(std::move(obs), [&d, done = std::move(done)](ack a) {
        if (a == ack::unknown_sim) // R15 at the node that received it: the store knows no such IMSI
          d.metrics.unknown_imsis->Increment();
        d.metrics.count(a);
        done(a);
      });
      return false;
    }
    d.metrics.count(ack::not_owner);
    done(ack::not_owner);
    return false;
  }
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
  return true;
}

void sim_layer::answered_here(ack_fn& done) {
  auto& d = *impl_;
  d.metrics.count(ack::ok);
  d.in_flight.fetch_sub(1, std::memory_order_relaxed);
  done(ack::ok);
}

void sim_layer::tracked(ack_fn& done) {
  done = [&d = *impl_, done = std::move(done)](ack a) {
    d.metrics.count(a);
    d.in_flight.fetch_sub(1, std::memory_order_relaxed);
    done(a);
  };
}

void sim_layer::submit(observation obs, ack_fn done) {
  sim_id id = no_sim;
  if (!admit(obs, done, id))
    return;
  if (impl_->ordered_after_handoffs(obs)) {
    tracked(done);
    std::vector<sim_observation> one;
    one.push_back(sim_observation{id, std::move(obs), std::move(done)});
    after_handoffs(std::move(one));
    return;
  }
  sim_observation m{id, std::move(obs), std::move(done)};
  if (observe_here(impl_->ctx, m)) {
    answered_here(m.done); // on this thread: it changed nothing
    return;
  }
  tracked(m.done);
  caf::anon_send(impl_->ctx.shard_of(id), std::move(m));
}

void sim_layer::after_handoffs(std::vector<sim_observation> items) {
  auto& d = *impl_;
  std::vector<std::pair<std::string, std::uint32_t>> sims;
  sims.reserve(items.size());
  for (const auto& it : items)
    sims.emplace_back(d.inv->iccid(it.sim),
                      cluster::shard_of(d.inv->lowest_imsi(it.sim), d.cl.shards));
  std::vector<std::string> iccids;
  iccids.reserve(sims.size());
  for (const auto& s : sims)
    iccids.push_back(s.first);
  auto held = std::make_shared<std::vector<sim_observation>>(std::move(items));
  d.cl.pending(std::move(sims), [this, held, iccids = std::move(iccids)](
                                    std::optional<std::vector<bool>> pending) {
    auto& dd = *impl_;
    if (!pending || pending->size() != held->size()) {
      // Whether the inbox holds a handoff of the SIM is unknown (the
      // database): not applied, not acknowledged; the peer retransmits.
      for (auto& it : *held)
        it.done(ack::store_failed);
      return;
    }
    const std::size_t shards = dd.ctx.shards.size();
    std::vector<std::vector<sim_observation>> by_shard(shards);
    for (std::size_t i = 0; i < held->size(); ++i) {
      auto& it = (*held)[i];
      if (!(*pending)[i]) {
        auto& group = by_shard[dd.ctx.shard_index(it.sim)];
        group.push_back(counted(dd.ctx, std::move(it)));
        continue;
      }
      // Behind the SIM's handoffs: into the inbox too, applied in id order.
      dd.cl.hand_off(std::move(it.obs), [&dd, iccid = iccids[i], done = std::move(it.done)](ack a) {
        dd.cl.released(iccid);
        done(a);
      });
    }
    for (std::size_t i = 0; i < shards; ++i) {
      auto& group = by_shard[i];
      if (group.size() == 1)
        caf::anon_send(dd.ctx.shards[i], std::move(group.front()));
      else if (!group.empty())
        caf::anon_send(dd.ctx.shards[i], sim_observation_batch{std::move(group)});
    }
  });
}

void sim_layer::submit_many(std::vector<submission>& batch) {
  auto& d = *impl_;
  // Most are answered here, on the caller's thread (observe_here); the rest
  // are grouped by shard in arrival order (a SIM's observations stay in order:
  // one SIM, one shard), one message per shard: the per-message cost of CAF (a
  // mailbox element, a scheduling, a dispatch) is paid once per batch.
  const std::size_t shards = d.ctx.shards.size();
  std::vector<std::vector<sim_observation>> by_shard(shards);
  std::vector<sim_observation> gated; // more than one node: behind the SIMs' handoffs
  for (auto& s : batch) {
    sim_id id = no_sim;
    if (!admit(s.obs, s.done, id))
      continue;
    if (d.ordered_after_handoffs(s.obs)) {
      tracked(s.done);
      gated.push_back(sim_observation{id, std::move(s.obs), std::move(s.done)});
      continue;
    }
    sim_observation m{id, std::move(s.obs), std::move(s.done)};
    // Answered here when it changes nothing (the front-end's own thread: its
    // callback runs inline); else counted, behind the SIM's earlier work.
    if (observe_here(d.ctx, m)) {
      answered_here(m.done);
      continue;
    }
    tracked(m.done);
    by_shard[d.ctx.shard_index(id)].push_back(std::move(m));
  }
  batch.clear();
  if (!gated.empty())
    after_handoffs(std::move(gated));
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
  if (d.clustered()) {
    if (auto refusal = d.cluster_refusal(sim, bulk)) {
      done(std::move(*refusal));
      return;
    }
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
  caf::anon_send(shard,
                 counted(d.ctx, sim_upsert_msg{id, std::move(sim), net, created, now_ms(),
                                               d.track<write_result>(std::move(reply)), bulk}));
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
  // More than one node: a SIM of a shard served elsewhere is answered with
  // its owner (write_result::elsewhere; the API forwards those lines there),
  // the lease table read once for the whole import, not once per SIM.
  std::vector<bool> elsewhere(sims.size(), false);
  auto& d = *impl_;
  if (d.clustered() && d.running.load()) {
    std::optional<cluster_info> info;
    bool unreadable = false;
    for (std::size_t i = 0; i < sims.size(); ++i) {
      auto lowest = lowest_of(sims[i].imsis);
      if (lowest == 0 || d.served(lowest))
        continue;
      if (!info && !unreadable) {
        try {
          info = d.cl.describe ? d.cl.describe() : cluster_info{};
        } catch (const unavailable_error&) {
          unreadable = true; // the database: these lines are refused, the caller retries
        }
      }
      g->results[i] = info ? impl::served_elsewhere(*info, cluster::shard_of(lowest, d.cl.shards))
                           : not_served_here();
      elsewhere[i] = true;
    }
    auto n = static_cast<std::size_t>(std::count(elsewhere.begin(), elsewhere.end(), true));
    g->remaining -= n;
    if (g->remaining == 0) {
      g->done(std::move(g->results));
      return;
    }
  }
  for (std::size_t i = 0; i < sims.size(); ++i)
    if (!elsewhere[i])
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
  auto lead = impl_->bar_lead_time(r->network);
  auto info = to_info(std::move(*r), policy, *impl_->networks());
  info.bar_lead_time = std::move(lead);
  done(std::move(info));
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
  std::map<std::string, std::string, std::less<>> leads; // per network, read once
  for (auto& r : rows) {
    auto lead = leads.find(r.network);
    if (lead == leads.end())
      lead = leads.emplace(r.network, impl_->bar_lead_time(r.network)).first;
    page.items.push_back(to_info(std::move(r), impl_->policy_of(r.network), *known));
    page.items.back().bar_lead_time = lead->second;
  }
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
  if (d.clustered() && (id == no_sim || !d.served(d.inv->lowest_imsi(id)))) {
    // Not served here: the store says whether it exists at all, and its
    // lowest IMSI names the shard.
    if (auto stored = d.db->get_sim(iccid)) {
      auto lowest = lowest_of(stored->imsis);
      done(lowest == 0 ? not_served_here()
                       : d.served_elsewhere(cluster::shard_of(lowest, d.cl.shards)));
      return;
    }
    id = no_sim;
  }
  if (id == no_sim) {
    done(refused(ec::unknown_sim, "no SIM with ICCID " + iccid));
    return;
  }
  // The product text's caveats for this order (lock/caveats.hpp): the bar
  // lead time of the SIM's network as configured now, the advice to disable
  // the lock before testing in another device.
  auto answer = [&d, type = req.type, with_lock = req.with_lock,
                 done = std::move(done)](write_result r) {
    if (r.error == ec::ok && r.order) {
      auto lead = type == lock::order_type::bar ? d.bar_lead_time(r.order->network) : "";
      for (auto& w : lock::order_caveats(type, with_lock, r.order->network, lead))
        r.warnings.push_back(std::move(w));
    }
    done(std::move(r));
  };
  caf::anon_send(
      d.ctx.shard_of(id),
      counted(d.ctx, sim_order{id, req, now_ms(), d.track<write_result>(std::move(answer))}));
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
  if (impl_->cluster_jobs)
    return impl_->cluster_jobs.get();
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
    std::lock_guard g{d.orders_now_mtx};
    ocfg = d.orders_now;
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
  if (auto* js = jobs())
    js->list_jobs(true, 20, [&](std::vector<job_info> jobs) {
      // list_jobs is newest first: the oldest runs first.
      out.running_jobs.assign(std::make_move_iterator(jobs.rbegin()),
                              std::make_move_iterator(jobs.rend()));
    });
  done(std::move(out));
}

void sim_layer::set_cluster(cluster_view view) {
  auto& d = *impl_;
  IMEILOCK_ASSERT(view.shards > 0 && view.epoch_of, "set_cluster without shards or leases");
  IMEILOCK_ASSERT(!d.running.load(), "set_cluster after start()");
  d.cl.shards = view.shards;
  // Bulk jobs by shard: each node places the orders of the SIMs of the
  // shards it serves (docs/cluster.md, "Bulk jobs on more than one node").
  d.jobs.reset();
  if (!view.jobs_conninfo.empty()) {
    d.job_parts = std::make_unique<cluster::job_store>(view.jobs_conninfo, view.node_id);
    d.cluster_jobs = std::make_unique<cluster_job_runner>(
        *d.db, service(), *d.job_parts, view.shards, [this] { return serving(); },
        [&d](std::uint32_t shard, std::int64_t epoch) {
          auto c = d.claim_shard(shard);
          return c && c->second == epoch;
        });
  }
  d.cl.epoch_of = std::move(view.epoch_of);
  d.cl.describe = std::move(view.describe);
  d.cl.serving = std::make_unique<std::atomic<std::int64_t>[]>(view.shards);
  for (std::uint32_t i = 0; i < view.shards; ++i)
    d.cl.serving[i].store(0);
  d.cl.wanted.assign(view.shards, 0);
  d.ctx.claim = [&d](std::uint64_t lowest) { return d.claim(lowest); };
  d.cl.hand_off = std::move(view.hand_off);
  d.cl.served_fn = std::move(view.served);
  IMEILOCK_ASSERT(!view.pending == !view.released && (!view.pending || d.cl.hand_off),
                  "set_cluster: pending needs released and hand_off");
  d.cl.pending = std::move(view.pending);
  d.cl.released = std::move(view.released);
}

/// One apply_handoffs call: its entries, grouped into per-SIM chains.
struct handoff_run {
  std::uint32_t shard = 0;
  std::vector<sim_layer::handed_over> items;
  std::vector<std::vector<std::size_t>> chains; ///< indices into items, in order
  sim_layer::handoff_results results;           ///< each written by its chain only
  std::atomic<std::size_t> running{0};          ///< chains not ended
  std::chrono::steady_clock::time_point t0;
  std::function<void(sim_layer::handoff_results)> done;
};

void sim_layer::apply_handoffs(std::uint32_t shard, std::vector<handed_over> items,
                               std::function<void(handoff_results)> done) {
  auto r = std::make_shared<handoff_run>();
  r->shard = shard;
  r->t0 = std::chrono::steady_clock::now();
  r->results.assign(items.size(), std::nullopt);
  std::unordered_map<std::string_view, std::size_t> chain_of;
  for (std::size_t i = 0; i < items.size(); ++i) {
    auto [it, added] = chain_of.try_emplace(items[i].sim_key, r->chains.size());
    if (added)
      r->chains.emplace_back();
    r->chains[it->second].push_back(i);
  }
  r->items = std::move(items); // the keys above are not used past here
  r->done = std::move(done);
  if (r->chains.empty()) {
    r->done(std::move(r->results));
    return;
  }
  r->running.store(r->chains.size());
  for (std::size_t c = 0; c < r->chains.size(); ++c)
    handoff_step(r, c, 0);
}

void sim_layer::handoff_step(const std::shared_ptr<handoff_run>& r, std::size_t chain,
                             std::size_t pos) {
  auto ended = [r] {
    if (r->running.fetch_sub(1, std::memory_order_acq_rel) == 1)
      r->done(std::move(r->results));
  };
  const auto& indices = r->chains[chain];
  if (pos == indices.size())
    return ended();
  auto index = indices[pos];
  auto applied = [this, r, chain, pos, index] {
    r->results[index] = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - r->t0);
    handoff_step(r, chain, pos + 1);
  };
  auto ref = std::make_shared<inbox_ref>();
  ref->id = r->items[index].id;
  observation obs = std::move(r->items[index].obs);
  obs.inbox = ref;
  submit(std::move(obs), [this, r, ref, applied, ended](ack a) {
    if (a != ack::ok && a != ack::unknown_sim)
      return ended(); // it and the SIM's later entries stay: read again
    if (ref->consumed.load())
      return applied(); // its effect's change deleted it
    // Nothing to commit for it (R2/R3, no change, a retransmit, R15): its
    // entry goes on its own, under the shard's lease.
    auto claim = impl_->claim_shard(r->shard);
    if (!claim)
      return ended();
    store::change chg;
    chg.inbox_done.push_back(ref->id);
    chg.shard = claim->first;
    chg.epoch = claim->second;
    impl_->db->submit(std::move(chg), [applied, ended](bool ok) {
      if (ok)
        applied();
      else
        ended();
    });
  });
}

void sim_layer::shard_gained(std::uint32_t shard, std::int64_t epoch) {
  auto& d = *impl_;
  if (!d.clustered() || shard >= d.cl.shards)
    return;
  {
    std::lock_guard g{d.cl.mtx};
    if (d.cl.stopping)
      return;
    d.cl.wanted[shard] = epoch;
    d.cl.jobs.push_back({shard, epoch});
  }
  d.cl.cv.notify_all();
}

void sim_layer::shard_lost(std::uint32_t shard) {
  auto& d = *impl_;
  if (!d.clustered() || shard >= d.cl.shards)
    return;
  {
    std::lock_guard g{d.cl.mtx};
    d.cl.wanted[shard] = 0;
    d.cl.serving[shard].store(0, std::memory_order_release);
    if (!d.cl.stopping)
      d.cl.jobs.push_back({shard, 0});
  }
  d.cl.cv.notify_all();
}

std::vector<std::pair<std::uint32_t, std::int64_t>> sim_layer::serving() const {
  auto& d = *impl_;
  std::vector<std::pair<std::uint32_t, std::int64_t>> out;
  for (std::uint32_t s = 0; s < d.cl.shards; ++s)
    if (auto e = d.cl.serving[s].load(std::memory_order_acquire); e != 0)
      out.emplace_back(s, e);
  return out;
}

bool sim_layer::shards_settled() const {
  std::lock_guard g{impl_->cl.mtx};
  return impl_->cl.jobs.empty() && !impl_->cl.busy;
}

std::optional<std::pair<std::int64_t, std::int64_t>>
sim_layer::claim_of(const std::string& iccid) const {
  auto& d = *impl_;
  if (!d.clustered())
    return std::pair<std::int64_t, std::int64_t>{-1, 0};
  return d.claim(d.inv->lowest_imsi(d.inv->by_iccid(iccid)));
}

void sim_layer::get_cluster(std::function<void(cluster_info)> done) {
  auto& d = *impl_;
  if (!d.clustered() || !d.cl.describe) {
    done({});
    return;
  }
  auto info = d.cl.describe();
  for (auto& l : info.leases)
    l.served_here = l.shard < d.cl.shards && l.epoch != 0 &&
                    d.cl.serving[l.shard].load(std::memory_order_acquire) == l.epoch;
  done(std::move(info));
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
