#include "daemon/daemon.hpp"

#include "actors/sim_layer.hpp"
#include "api/http_server.hpp"
#include "api/webhooks.hpp"
#include "cluster/inbox.hpp"
#include "cluster/lease_manager.hpp"
#include "cluster/shard.hpp"
#include "common/fault.hpp"
#include "common/log.hpp"
#include "daemon/service_manager.hpp"
#include "metrics/metrics.hpp"
#include "protocols/diameter/server.hpp"
#include "protocols/radius/disconnect.hpp"
#include "protocols/radius/server.hpp"
#include "store/store.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <future>
#include <thread>
#include <unistd.h>
#include <vector>

namespace imeilock::daemon {

namespace asio = boost::asio;

namespace {

unsigned or_cores(unsigned n) {
  if (n != 0)
    return n;
  auto hw = std::thread::hardware_concurrency();
  return hw == 0 ? 2 : hw;
}

/// Hands every SIM event to each subscriber (webhooks, RFC 5176 sender).
class fan_out final : public actors::sim_listener {
public:
  void add(actors::sim_listener* l) { listeners_.push_back(l); }
  void on_event(const actors::sim_event& ev) override {
    for (auto* l : listeners_)
      l->on_event(ev);
  }

private:
  std::vector<actors::sim_listener*> listeners_;
};

std::string join(const std::vector<config::endpoint>& eps) {
  std::string out;
  for (const auto& ep : eps) {
    if (!out.empty())
      out += ',';
    out += ep.to_string();
  }
  return out;
}

std::uint16_t first_port(const std::vector<config::endpoint>& eps) {
  return eps.empty() ? 0 : eps.front().port;
}

/// imeilock_cluster_*: per shard, what this node holds (more than one node).
struct cluster_metrics {
  struct shard_metrics {
    prometheus::Gauge* owned = nullptr;
    prometheus::Gauge* epoch = nullptr;
    prometheus::Counter* takeovers = nullptr;
    prometheus::Counter* step_downs = nullptr;
    prometheus::Counter* handed_off = nullptr; ///< handoffs_total{side="sent"}
    prometheus::Counter* applied = nullptr;    ///< handoffs_total{side="applied"}
  };
  std::vector<shard_metrics> shards;
  prometheus::Histogram* handoff_latency = nullptr;
  prometheus::Histogram* order_check = nullptr;   ///< imeilock_cluster_order_check_seconds
  prometheus::Counter* behind_handoffs = nullptr; ///< ..._direct_behind_handoffs_total

  cluster_metrics(prometheus::Registry& reg, std::uint32_t count) {
    auto& owned = prometheus::BuildGauge()
                      .Name("imeilock_cluster_shard_owned")
                      .Help("1 while this node holds the shard's lease, else 0")
                      .Register(reg);
    auto& epoch = prometheus::BuildGauge()
                      .Name("imeilock_cluster_shard_epoch")
                      .Help("The epoch (fencing token) of the shard's lease this node holds "
                            "or last held")
                      .Register(reg);
    auto& takeovers = prometheus::BuildCounter()
                          .Name("imeilock_cluster_takeovers_total")
                          .Help("Times this node acquired the shard's lease (each with a new "
                                "epoch: a start, a takeover, a return after stepping down)")
                          .Register(reg);
    auto& step_downs = prometheus::BuildCounter()
                           .Name("imeilock_cluster_step_downs_total")
                           .Help("Times this node lost the shard's lease without releasing it "
                                 "(taken over after a pause, or the database unreachable)")
                           .Register(reg);
    auto& handoffs = prometheus::BuildCounter()
                         .Name("imeilock_cluster_handoffs_total")
                         .Help("Observations handed over through the inbox: side=sent, those "
                               "this node received for a shard it did not serve and enqueued "
                               "for the owner (then acknowledged); side=applied, those this "
                               "node applied as the shard's owner")
                         .Register(reg);
    handoff_latency = &prometheus::BuildHistogram()
                           .Name("imeilock_cluster_handoff_seconds")
                           .Help("From a handoff's enqueue (committed at the receiving node) "
                                 "until the owner committed it applied (database clock to the "
                                 "read, then this node's)")
                           .Register(reg)
                           .Add({}, prometheus::Histogram::BucketBoundaries{
                                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
    order_check = &prometheus::BuildHistogram()
                       .Name("imeilock_cluster_order_check_seconds")
                       .Help("Order per SIM: how long an observation received directly waited "
                             "for the inbox check (one query per batch) before it was applied "
                             "or put behind its SIM's handoffs")
                       .Register(reg)
                       .Add({}, prometheus::Histogram::BucketBoundaries{0.0001, 0.00025, 0.0005,
                                                                        0.001, 0.0025, 0.005, 0.01,
                                                                        0.025, 0.05, 0.1, 0.25, 1});
    behind_handoffs = &prometheus::BuildCounter()
                           .Name("imeilock_cluster_direct_behind_handoffs_total")
                           .Help("Observations received directly for a SIM with handoffs "
                                 "waiting in the inbox: handed off behind them (order per SIM)")
                           .Register(reg)
                           .Add({});
    for (std::uint32_t s = 0; s < count; ++s) {
      prometheus::Labels l{{"shard", std::to_string(s)}};
      auto sent = l;
      sent["side"] = "sent";
      auto applied = l;
      applied["side"] = "applied";
      shards.push_back({&owned.Add(l), &epoch.Add(l), &takeovers.Add(l), &step_downs.Add(l),
                        &handoffs.Add(sent), &handoffs.Add(applied)});
    }
  }
  void handed_off(std::uint32_t shard) {
    if (shard < shards.size())
      shards[shard].handed_off->Increment();
  }
  void applied(std::uint32_t shard, std::chrono::microseconds latency) {
    if (shard < shards.size())
      shards[shard].applied->Increment();
    handoff_latency->Observe(static_cast<double>(latency.count()) / 1e6);
  }
  void gained(cluster::shard_epoch g) {
    if (g.shard >= shards.size())
      return;
    shards[g.shard].owned->Set(1);
    shards[g.shard].epoch->Set(static_cast<double>(g.epoch));
    shards[g.shard].takeovers->Increment();
  }
  void lost(cluster::shard_epoch l, cluster::loss_reason why) {
    if (l.shard >= shards.size())
      return;
    shards[l.shard].owned->Set(0);
    if (why != cluster::loss_reason::released)
      shards[l.shard].step_downs->Increment();
  }
};

/// The handoff payload (cluster/inbox.hpp) of an observation, and back.
cluster::observation to_handoff(const actors::observation& o) {
  cluster::observation c;
  c.imsi = o.imsi;
  c.msisdn = o.msisdn;
  c.imei = o.imei;
  c.source = o.source == actors::source_kind::diameter ? cluster::protocol::diameter
                                                       : cluster::protocol::radius;
  c.peer = o.peer;
  c.dedupe_key = o.dedupe_key;
  c.at_ms = o.at_ms;
  if (o.disconnect) {
    const auto& d = *o.disconnect;
    c.disconnect = cluster::disconnect_info{d.nas_address, d.nas_identifier, d.acct_session_id,
                                            d.user_name,   d.framed_ip,      d.calling_station_id};
  }
  return c;
}

actors::observation from_handoff(cluster::observation c) {
  actors::observation o;
  o.imsi = c.imsi;
  o.msisdn = std::move(c.msisdn);
  o.imei = c.imei;
  o.source = c.source == cluster::protocol::diameter ? actors::source_kind::diameter
                                                     : actors::source_kind::radius;
  o.peer = std::move(c.peer);
  o.dedupe_key = c.dedupe_key;
  o.at_ms = c.at_ms;
  if (c.disconnect) {
    auto& d = *c.disconnect;
    o.disconnect = std::make_shared<const actors::disconnect_target>(actors::disconnect_target{
        std::move(d.nas_address), std::move(d.nas_identifier), std::move(d.acct_session_id),
        std::move(d.user_name), std::move(d.framed_ip), std::move(d.calling_station_id)});
  }
  return o;
}

} // namespace

struct daemon::impl {
  std::string config_file;
  daemon_config cfg;

  /// Signals, watchdog and the stop sequence run here, on the main thread.
  asio::io_context control;
  /// Network I/O: Diameter, HTTP, webhooks, Disconnect (RADIUS has its own threads).
  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> io_guard;
  std::vector<std::thread> io_threads;

  std::unique_ptr<metrics::metrics_server> metrics;
  std::unique_ptr<caf::actor_system_config> caf_cfg;
  std::unique_ptr<caf::actor_system> system;
  fan_out listeners;
  std::unique_ptr<api::webhook_notifier> webhooks;
  std::unique_ptr<radius::disconnect_sender> disconnect;
  std::unique_ptr<actors::sim_layer> layer;
  /// More than one node (cluster.enabled): this node's shard leases.
  std::unique_ptr<cluster::lease_manager> leases;
  std::unique_ptr<cluster_metrics> shard_metrics;
  /// More than one node: observations of shards served elsewhere go to their
  /// owner through the inbox (handoff_out); this node applies its shards'
  /// (handoff_in).
  std::unique_ptr<cluster::inbox_sender> handoff_out;
  std::unique_ptr<cluster::inbox_consumer> handoff_in;
  /// Order per SIM: an observation received directly waits for its SIM's
  /// handoffs already in the inbox (docs/cluster.md "Order per SIM").
  std::unique_ptr<cluster::inbox_gate> order_gate;
  std::unique_ptr<api::http_server> api;
  std::unique_ptr<radius::radius_server> radius;
  std::unique_ptr<diameter::diameter_server> diameter;

  asio::signal_set signals{control};
  asio::steady_timer watchdog_timer{control};
  /// Follows the store's connection into /readyz (a PostgreSQL outage).
  asio::steady_timer readiness_timer{control};
  bool store_ready = true;
  /// Set by the probe posted to the io threads, cleared at each watchdog tick.
  std::atomic<bool> io_alive{true};
  bool stopping = false;

  impl(std::string file, daemon_config c) : config_file(std::move(file)), cfg(std::move(c)) {}

  std::string summary() const {
    std::string s = "serving; RADIUS " + (radius ? join(radius->local_endpoints()) : "off");
    s += ", Diameter " + (diameter ? join(diameter->local_endpoints()) : "off");
    s += ", API " + join(api->local_endpoints());
    s += ", metrics " + cfg.metrics.listen.host + ":" + std::to_string(metrics->port());
    s += ", " + std::to_string(layer->inventory_size()) + " SIMs";
    return s;
  }

  bool fail(std::string_view component, const error& why) {
    const auto reason = why.describe();
    log::error("daemon.start_failed", {{"component", component}, {"reason", reason}});
    service_manager::status("failed to start " + std::string{component} + ": " + reason);
    return false;
  }

  bool start() {
    log::set_level(cfg.process.log_level);
    log::notice(
        "daemon.starting",
        {{"version", metrics::version_string()},
         {"config", config_file.empty() ? std::string{"(embedded defaults)"} : config_file}});

    metrics = std::make_unique<metrics::metrics_server>(cfg.metrics);
    if (auto started = metrics->start(); !started)
      return fail("metrics", started.error());
    auto& registry = metrics->registry();

    // CAF: work sharing with an explicit worker count, never its own config
    // file (TOOLCHAIN.md pitfalls 1, 2, 9).
    caf_cfg = std::make_unique<caf::actor_system_config>();
    caf_cfg->set("scheduler.policy", caf::atom("sharing"));
    caf_cfg->set("scheduler.max-threads", static_cast<size_t>(or_cores(cfg.process.workers)));
    system = std::make_unique<caf::actor_system>(*caf_cfg);

    io_guard.emplace(asio::make_work_guard(io));
    auto n_io = or_cores(cfg.process.io_threads);
    for (unsigned i = 0; i < n_io; ++i)
      io_threads.emplace_back([this] { run_guarded(fault_site::io_thread, [this] { io.run(); }); });

    webhooks = std::make_unique<api::webhook_notifier>(io, cfg.webhooks, registry);
    listeners.add(webhooks.get());
    // Always there with RADIUS: a SIGHUP may turn a network's action into
    // disconnect_and_bar. It sends only while radius.disconnect.enabled (which
    // the loader sets from the actions) and for violations the rules ask it for.
    if (cfg.radius.enabled) {
      disconnect = std::make_unique<radius::disconnect_sender>(io, cfg.radius, registry);
      listeners.add(disconnect.get());
    }

    auto opened = actors::sim_layer::open(*system, cfg.sim_layer, cfg.imei_lock, cfg.orders,
                                          registry, &listeners, io);
    if (!opened)
      return fail("store", opened.error());
    layer = std::move(*opened);
    // Loading the inventory reads the store: a PostgreSQL server gone since
    // the open makes that read throw (store::unavailable).
    try {
      if (cfg.cluster.enabled)
        join_cluster(registry);
      layer->start();
    } catch (const std::exception& e) {
      return fail("store", error{sys_ec::store_unavailable, e.what()});
    }
    if (leases) {
      // The first round runs at once; the SIMs of each shard gained are
      // loaded as it comes (/readyz waits for that).
      if (auto started = leases->start(); !started)
        return fail("cluster", started.error());
      // The inbox table exists now (the lease manager migrated the cluster schema).
      handoff_out->start();
      handoff_in->start();
      order_gate->start();
      log::notice("cluster.joined", {{"node", cfg.cluster.node_id},
                                     {"shards", cfg.cluster.shards},
                                     {"lease_ms", cfg.cluster.lease_duration.count()}});
    }
    if (disconnect)
      wire_disconnect_audit();

    api = std::make_unique<api::http_server>(io, cfg.api, layer->service(), registry);
    if (auto started = api->start(); !started)
      return fail("api", started.error());

    if (cfg.radius.enabled) {
      radius = std::make_unique<radius::radius_server>(cfg.radius, layer->sink(), registry);
      if (auto started = radius->start(); !started)
        return fail("radius", started.error());
    }
    if (cfg.diameter.enabled) {
      diameter =
          std::make_unique<diameter::diameter_server>(io, cfg.diameter, layer->sink(), registry);
      if (auto started = diameter->start(); !started)
        return fail("diameter", started.error());
    }

    // A cluster node is ready once it knows its leases (arm_readiness).
    store_ready = !leases;
    api->set_ready(!leases);
    log::notice("daemon.ready",
                {{"workers", or_cores(cfg.process.workers)},
                 {"io_threads", n_io},
                 {"sims", static_cast<std::uint64_t>(layer->inventory_size())},
                 {"metrics_port", metrics->port()},
                 {"radius_port", radius ? first_port(radius->local_endpoints()) : 0},
                 {"diameter_port", diameter ? first_port(diameter->local_endpoints()) : 0},
                 {"api_port", first_port(api->local_endpoints())}});
    service_manager::ready(summary());
    // systemd's watchdog clock starts at READY: ping at once, then every
    // half interval, so even a daemon stopped early has proven it is alive.
    if (service_manager::watchdog_interval().count() != 0)
      service_manager::watchdog();
    return true;
  }

  /// More than one node (DESIGN §6): the lease manager, the SIM layer
  /// serving only the shards it holds, and the fence in every committing
  /// transaction of the store's writer. Before layer->start().
  void join_cluster(prometheus::Registry& registry) {
    shard_metrics = std::make_unique<cluster_metrics>(registry, cfg.cluster.shards);
    leases = std::make_unique<cluster::lease_manager>(
        cfg.cluster, store::resolve_conninfo(cfg.sim_layer.store.postgresql),
        cluster::lease_manager::callbacks{
            .gained =
                [this](cluster::shard_epoch g) {
                  shard_metrics->gained(g);
                  layer->shard_gained(g.shard, g.epoch);
                },
            .lost =
                [this](cluster::shard_epoch l, cluster::loss_reason why) {
                  shard_metrics->lost(l, why);
                  layer->shard_lost(l.shard);
                }});
    auto* held = leases.get();
    join_inbox();
    layer->set_cluster(
        {cfg.cluster.shards, [held](std::uint32_t shard) { return held->epoch_of(shard); },
         [held, node = cfg.cluster.node_id, shards = cfg.cluster.shards] {
           return describe_cluster(*held, node, shards);
         },
         [this](const actors::observation& obs, actors::ack_fn done) {
           hand_off(obs, std::move(done));
         },
         [this](std::uint32_t) { handoff_in->poke(); },
         store::resolve_conninfo(cfg.sim_layer.store.postgresql), cfg.cluster.node_id,
         [this](const std::vector<std::pair<std::string, std::uint32_t>>& sims,
                std::function<void(std::optional<std::vector<bool>>)> done) {
           check_order(sims, std::move(done));
         },
         [this](const std::string& iccid) { order_gate->release(iccid); }});
    layer->db().set_fence([held,
                           node = cfg.cluster.node_id](std::span<const store::change* const> batch,
                                                       const store::txn_query& query) {
      // One claim per shard of the batch; every change of a cluster node
      // carries the lease it was made under (store::change::shard/epoch).
      std::vector<cluster::shard_epoch> claims;
      for (const auto* c : batch) {
        if (c->shard < 0)
          return false;
        auto shard = static_cast<std::uint32_t>(c->shard);
        auto it = std::find_if(claims.begin(), claims.end(),
                               [&](const cluster::shard_epoch& e) { return e.shard == shard; });
        if (it == claims.end())
          claims.push_back({shard, c->epoch});
        else if (it->epoch != c->epoch)
          return false; // made under two periods of ownership: the older is stale
      }
      // Not even asked when this node knows it lost one of them.
      for (const auto& c : claims)
        if (held->epoch_of(c.shard) != c.epoch)
          return false;
      return query(std::string{cluster::fence_sql()}, cluster::fence_params(node, claims)) == "t";
    });
  }

  /// The handoff inbox's two sides (cluster/inbox.hpp), not started yet.
  void join_inbox() {
    auto conninfo = store::resolve_conninfo(cfg.sim_layer.store.postgresql);
    using target = cluster::inbox_sender::target;
    handoff_out = std::make_unique<cluster::inbox_sender>(
        cluster::sender_config{.node_id = cfg.cluster.node_id}, conninfo,
        [this, shards = cfg.cluster.shards](std::uint64_t imsi) -> expected<std::optional<target>> {
          // The SIM as the store has it: its ICCID orders its handoffs, its
          // lowest IMSI names the shard (throws store::unavailable: failed).
          auto& db = layer->db();
          auto iccid = db.iccid_of(imsi);
          if (!iccid)
            return std::optional<target>{};
          auto sim = db.get_sim(*iccid);
          if (!sim || sim->imsis.empty())
            return std::optional<target>{};
          return std::optional<target>{target{*iccid, cluster::shard_of_sim(sim->imsis, shards)}};
        });
    order_gate = std::make_unique<cluster::inbox_gate>(
        cluster::gate_config{.node_id = cfg.cluster.node_id}, conninfo);
    handoff_in = std::make_unique<cluster::inbox_consumer>(
        cluster::inbox_config{.node_id = cfg.cluster.node_id}, conninfo,
        cluster::inbox_consumer::hooks{
            .owned =
                [this] {
                  // The shards served (loaded), not merely leased: a shard
                  // being loaded gets its handoffs once it is (served hook).
                  std::vector<cluster::shard_epoch> out;
                  for (auto [shard, epoch] : layer->serving())
                    out.push_back({shard, epoch});
                  return out;
                },
            .apply = nullptr,
            .dispatch =
                [this](std::uint32_t shard, std::vector<cluster::inbox_entry> entries,
                       std::function<void(bool)> settled) {
                  std::vector<actors::sim_layer::handed_over> items;
                  std::vector<std::chrono::microseconds> waited;
                  items.reserve(entries.size());
                  waited.reserve(entries.size());
                  for (auto& e : entries) {
                    waited.push_back(e.waited);
                    items.push_back({e.id, std::move(e.sim_key), from_handoff(std::move(e.obs))});
                  }
                  layer->apply_handoffs(
                      shard, std::move(items),
                      [this, shard, waited = std::move(waited),
                       settled = std::move(settled)](actors::sim_layer::handoff_results r) {
                        bool all = true;
                        for (std::size_t i = 0; i < r.size(); ++i) {
                          if (r[i])
                            shard_metrics->applied(shard, waited[i] + *r[i]);
                          else
                            all = false;
                        }
                        settled(all);
                      });
                }});
  }

  /// Order per SIM: which of `sims` have handoffs waiting in the inbox
  /// (cluster::inbox_gate), timed and counted.
  void check_order(const std::vector<std::pair<std::string, std::uint32_t>>& sims,
                   std::function<void(std::optional<std::vector<bool>>)> done) {
    std::vector<cluster::inbox_gate::key> keys;
    keys.reserve(sims.size());
    for (const auto& [iccid, shard] : sims)
      keys.push_back({iccid, shard});
    order_gate->check(
        std::move(keys), [this, t0 = std::chrono::steady_clock::now(),
                          done = std::move(done)](std::optional<std::vector<bool>> pending) {
          shard_metrics->order_check->Observe(
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
          if (pending)
            for (bool p : *pending)
              if (p)
                shard_metrics->behind_handoffs->Increment();
          done(std::move(pending));
        });
  }

  /// An observation of a SIM whose shard this node does not serve: enqueued
  /// for the owner, acknowledged once that committed.
  void hand_off(const actors::observation& obs, actors::ack_fn done) {
    using outcome = cluster::inbox_sender::outcome;
    auto shared = std::make_shared<actors::ack_fn>(std::move(done));
    bool queued = handoff_out->post(to_handoff(obs), [this, shared](outcome o,
                                                                    std::uint32_t shard) {
      if (o == outcome::enqueued) {
        shard_metrics->handed_off(shard);
        (*shared)(actors::ack::ok);
      } else {
        (*shared)(o == outcome::unknown_sim ? actors::ack::unknown_sim : actors::ack::store_failed);
      }
    });
    if (!queued)
      (*shared)(actors::ack::overloaded);
  }

  /// GET /v1/cluster: the nodes and leases from the database.
  static actors::cluster_info describe_cluster(const cluster::lease_manager& held,
                                               const std::string& node, std::uint32_t shards) {
    auto rows = held.read_cluster();
    if (!rows)
      throw unavailable_error(rows.error().message());
    actors::cluster_info info;
    info.enabled = true;
    info.node_id = node;
    info.shards = shards;
    for (auto& n : rows->nodes)
      info.nodes.push_back(
          {std::move(n.node_id), std::move(n.api_url), std::move(n.preferred_shards), n.live});
    for (auto& l : rows->leases)
      info.leases.push_back({l.shard, std::move(l.owner), l.epoch,
                             static_cast<std::int64_t>(l.remaining.count()), false});
    return info;
  }

  /// Whether a cluster node knows its leases and serves every shard it holds.
  bool cluster_ready() const {
    if (!leases)
      return true;
    if (leases->stats().rounds.load() == 0 || !layer->shards_settled())
      return false;
    auto served = layer->serving();
    for (const auto& held : leases->owned())
      if (std::find(served.begin(), served.end(),
                    std::pair<std::uint32_t, std::int64_t>{held.shard, held.epoch}) == served.end())
        return false;
    return true;
  }

  /// RFC 5176 outcomes go into the SIM's audit log (R14) next to the violation.
  void wire_disconnect_audit() {
    // The hook runs on an io thread: a committed-state read and a queued
    // write, neither blocks an actor.
    disconnect->set_result_hook([this](const radius::disconnect_result& r) {
      auto& db = layer->db();
      auto sim = db.get_sim(r.iccid);
      if (!sim)
        return;
      store::audit_record note;
      note.iccid = r.iccid;
      note.at_ms = r.at_ms;
      note.cause = "disconnect:" + std::string{radius::to_string(r.outcome)};
      note.before = sim->state;
      note.after = sim->state;
      note.detail = "nas=" + r.nas_address + " session=" + r.acct_session_id +
                    " attempts=" + std::to_string(r.attempts);
      if (r.error_cause != 0)
        note.detail += " error_cause=" + std::to_string(r.error_cause);
      store::change chg;
      chg.audits.push_back(std::move(note));
      auto claim = layer->claim_of(r.iccid); // more than one node: under the SIM's lease
      if (!claim)
        return;
      chg.shard = claim->first;
      chg.epoch = claim->second;
      db.submit(std::move(chg), [iccid = r.iccid](bool ok) {
        if (!ok)
          log::warning("radius.disconnect_audit_failed", {{"iccid", iccid}});
      });
    });
  }

  void wait_for_signals() {
    signals.add(SIGTERM);
    signals.add(SIGINT);
    signals.add(SIGHUP);
    arm_signals();
    arm_watchdog();
    arm_readiness();
    run_guarded(fault_site::control, [this] { control.run(); });
  }

  void arm_signals() {
    signals.async_wait([this](const boost::system::error_code& ec, int sig) {
      if (ec)
        return;
      if (sig == SIGHUP) {
        reload();
        arm_signals();
        return;
      }
      log::notice("daemon.signal", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
      begin_stop();
    });
  }

  /// WATCHDOG=1 only while the io threads still run work posted to them, so a
  /// wedged daemon (or a SIGSTOP) gets restarted by systemd.
  void arm_watchdog() {
    auto interval = service_manager::watchdog_interval();
    if (interval.count() == 0 || stopping)
      return;
    watchdog_timer.expires_after(interval);
    watchdog_timer.async_wait([this](const boost::system::error_code& ec) {
      if (ec || stopping)
        return;
      if (io_alive.exchange(false))
        service_manager::watchdog();
      else
        log::warning("daemon.watchdog_missed", {{"reason", "io threads did not answer"}});
      asio::post(io, [this] { io_alive = true; });
      arm_watchdog();
    });
  }

  /// /readyz follows the store: not ready while its database cannot be
  /// reached (the store logs the change and reconnects by itself).
  void arm_readiness() {
    if (stopping)
      return;
    readiness_timer.expires_after(std::chrono::milliseconds{200});
    readiness_timer.async_wait([this](const boost::system::error_code& ec) {
      if (ec || stopping)
        return;
      bool connected = layer->db().counters().connected.load();
      bool ready = connected && cluster_ready();
      if (ready != store_ready) {
        store_ready = ready;
        api->set_ready(ready);
        if (ready)
          service_manager::ready(summary());
        else if (!connected)
          service_manager::status("not ready: the store's database cannot be reached");
        else
          service_manager::status("not ready: loading the shards this node holds");
      }
      arm_readiness();
    });
  }

  /// SIGHUP: everything that can change at run time; an invalid file changes nothing.
  void reload() {
    if (config_file.empty()) {
      log::notice("daemon.reload_ignored", {{"reason", "running on embedded defaults"}});
      return;
    }
    service_manager::reloading();
    log::notice("daemon.reloading", {{"config", config_file}});
    try {
      if (auto applied = apply_reload(); !applied)
        log::error("daemon.reload_rejected", {{"reason", applied.error().describe()},
                                              {"action", "keeping the running configuration"}});
      else
        log::notice("daemon.reloaded", {{"log_level", log::to_string(cfg.process.log_level)}});
    } catch (const std::exception& e) { // a file no loader check foresaw: never fatal
      log::error("daemon.reload_rejected",
                 {{"reason", e.what()}, {"action", "keeping the running configuration"}});
    }
    service_manager::ready(summary());
  }

  /// Loads the file and applies it. An error before anything was applied
  /// (file, paths, RADIUS settings) leaves the running configuration intact.
  expected<void> apply_reload() {
    auto loaded = load_config(config_file);
    if (!loaded)
      return loaded.error();
    auto& next = *loaded;
    const char* state_dir = std::getenv("STATE_DIRECTORY");
    if (auto paths = resolve_runtime_paths(next, state_dir ? state_dir : ""); !paths)
      return paths;
    if (next.sim_layer.store.path != cfg.sim_layer.store.path)
      log::warning("daemon.reload_needs_restart", {{"section", "sim_layer.store.path"}});
    if (next.sim_layer.store.backend != cfg.sim_layer.store.backend ||
        next.sim_layer.store.postgresql.conninfo != cfg.sim_layer.store.postgresql.conninfo ||
        next.sim_layer.store.postgresql.conninfo_file !=
            cfg.sim_layer.store.postgresql.conninfo_file)
      log::warning("daemon.reload_needs_restart", {{"section", "sim_layer.store"}});
    // Validate what the components check themselves before touching anything.
    if (radius) {
      if (auto applied = radius->reload(next.radius); !applied)
        return applied;
    }
    if (disconnect) {
      if (auto applied = disconnect->reload(next.radius); !applied)
        log::warning("daemon.reload_partial",
                     {{"component", "disconnect"}, {"reason", applied.error().describe()}});
    }
    if (auto applied = api->reload(next.api); !applied)
      log::warning("daemon.reload_partial", {{"component", "api"},
                                             {"reason", applied.error().describe()},
                                             {"action", "the previous tokens stay in force"}});
    if (auto applied = webhooks->reload(next.webhooks); !applied)
      log::warning("daemon.reload_partial",
                   {{"component", "webhooks"}, {"reason", applied.error().describe()}});
    else
      cfg.webhooks = next.webhooks;
    if (diameter)
      diameter->reload(next.diameter);
    layer->reload_orders(next.orders); // validated by load_config; the SIMs' networks follow
    if (next.imei_lock.lock_networks != cfg.imei_lock.lock_networks ||
        next.imei_lock.activation_lock_networks != cfg.imei_lock.activation_lock_networks ||
        next.imei_lock.strict != cfg.imei_lock.strict)
      log::warning("daemon.reload_needs_restart", {{"section", "imei_lock"}});
    // The violation actions apply at once (validated by load_config).
    layer->reload_actions(next.imei_lock);
    cfg.imei_lock.action = next.imei_lock.action;
    cfg.imei_lock.actions = next.imei_lock.actions;

    log::set_level(next.process.log_level);
    if (!(next.metrics == cfg.metrics))
      log::warning("daemon.reload_needs_restart", {{"section", "metrics"}});
    cfg.process.log_level = next.process.log_level;
    cfg.radius = next.radius;
    cfg.diameter = next.diameter;
    cfg.api = next.api;
    cfg.orders = next.orders;
    return {};
  }

  void begin_stop() {
    if (stopping)
      return;
    stopping = true;
    service_manager::stopping("stopping: finishing in-flight work");
    signals.cancel();
    watchdog_timer.cancel();
    readiness_timer.cancel();
    // A stop that hangs must not hang forever: systemd would SIGKILL us, but
    // a bounded exit with a clear log line is better.
    std::thread([timeout = cfg.process.shutdown_timeout] {
      std::this_thread::sleep_for(timeout);
      log::error("daemon.stop_timeout", {{"timeout_ms", static_cast<long long>(timeout.count())}});
      _exit(1);
    }).detach();
    control.stop();
  }

  /// Stop accepting, let in-flight work finish, flush the store, end threads.
  void stop() {
    if (api)
      api->set_ready(false);
    if (radius)
      radius->stop();
    if (diameter) {
      std::promise<void> done;
      diameter->stop([&done] { done.set_value(); });
      done.get_future().wait();
    }
    if (api)
      api->stop();
    // Handoffs received so far are enqueued (and answered); a batch being
    // applied is left to the layer's drain (what it does not apply stays in
    // the inbox for the shard's next owner).
    // Observations waiting for the order check are answered (not applied).
    if (order_gate)
      order_gate->stop();
    if (handoff_out)
      handoff_out->stop();
    if (handoff_in)
      handoff_in->stop();
    if (layer)
      layer->stop();
    // After the layer's last commit (the fence needs the leases): released,
    // so the other nodes take the shards in their next round.
    if (leases)
      leases->stop(true);
    if (disconnect)
      disconnect->stop();
    if (webhooks)
      webhooks->stop();
    io_guard.reset();
    io.stop();
    for (auto& t : io_threads)
      t.join();
    io_threads.clear();
    diameter.reset();
    radius.reset();
    api.reset();
    leases.reset();
    layer.reset();
    handoff_in.reset(); // their callbacks are done once the layer is gone
    handoff_out.reset();
    order_gate.reset();
    shard_metrics.reset();
    disconnect.reset();
    webhooks.reset();
    system.reset(); // waits for every actor to finish
    caf_cfg.reset();
    metrics.reset();
    log::notice("daemon.stopped");
  }
};

daemon::daemon(std::string config_file, daemon_config cfg) :
    impl_(std::make_unique<impl>(std::move(config_file), std::move(cfg))) {}

daemon::~daemon() = default;

int daemon::run() {
  if (!impl_->start()) {
    impl_->stop();
    return 1;
  }
  impl_->wait_for_signals();
  impl_->stop();
  return 0;
}

} // namespace imeilock::daemon
