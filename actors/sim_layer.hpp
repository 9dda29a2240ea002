#pragma once
// The SIM layer itself: the actor system side of actors/ports.hpp.
// Only the daemon's main (and tests, benchmarks) include this; front-ends
// and the API see observation_sink / sim_service only. No CAF here either:
// the actor system and the io_context are forward declared.
//
//   auto opened = actors::sim_layer::open(system, cfg.sim_layer, cfg.lock, cfg.orders,
//                                         metrics.registry(), &listener, io);
//   if (!opened) ...;                    // the store cannot be opened (store::ec)
//   actors::sim_layer& layer = **opened;
//   layer.start();                       // load inventory, resume orders
//   layer.reload_orders(next.orders);    // on SIGHUP
//   radius_server radius{cfg.radius, layer.sink(), registry};   // observation_sink&
//   diameter_server diameter{io, cfg.diameter, layer.sink(), registry};
//   http_server api{io, cfg.api, layer.service(), registry};    // sim_service&
//   ...
//   layer.stop();                        // drain, stop actors, flush the store

#include "actors/ports.hpp"
#include "actors/sim_layer_config.hpp"
#include "common/error.hpp"
#include "lock/eligibility.hpp"
#include "orders/network.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace caf {
class actor_system;
}
namespace boost::asio {
class io_context;
}
namespace prometheus {
class Registry;
}
namespace imeilock::store {
class store;
}

namespace imeilock::actors {

struct handoff_run;     // sim_layer.cpp
struct sim_observation; // actors.hpp

class sim_layer final : public observation_sink, public sim_service {
public:
  /// Opens the store (creating/migrating it) and registers the metrics; the
  /// store's error (store::ec) when it cannot be opened. `listener` may be
  /// null; `io` runs the webhook backends (must be run by the caller and
  /// outlive the layer). Nothing is spawned until start().
  static expected<std::unique_ptr<sim_layer>>
  open(caf::actor_system& sys, const sim_layer_config& cfg,
       const lock::eligibility_config& eligibility, const orders::orders_config& orders_cfg,
       prometheus::Registry& registry, sim_listener* listener, boost::asio::io_context& io);
  /// Calls stop() if needed.
  ~sim_layer() override;
  sim_layer(const sim_layer&) = delete;
  sim_layer& operator=(const sim_layer&) = delete;

  /// Loads the inventory into the compact index, spawns the registry shards
  /// and the order actor, and resumes open orders with their remaining lead
  /// time. Observations before start() are answered ack::shutting_down.
  void start();
  /// Refuses new work (ack::shutting_down), waits up to stop_timeout for
  /// in-flight observations and writes, stops the actors and flushes the
  /// store. Idempotent.
  void stop();

  /// SIGHUP: applies a reloaded `orders:` section. Thread-safe, never blocks
  /// on the actors: the order actor reconfigures its scheduler (rates, limits,
  /// lead times and retry policies from now on; open orders keep their state
  /// and due times) and rebuilds the backends of networks whose backend
  /// settings changed. Before start() the config is taken for start(); after
  /// stop() it is ignored. `cfg` must have passed cfg.validate().
  /// The configured networks (what a SIM's network may be) follow: SIMs of a
  /// network no longer configured keep their state and keep working, and are
  /// reported (a log line per network, imeilock_sims_unconfigured_network).
  void reload_orders(const orders::orders_config& cfg);

  /// SIGHUP: applies reloaded violation actions (imei_lock.action/actions;
  /// the R1 lists and strict mode need a restart). Thread-safe: observations
  /// decided from now on use the new action; nothing is re-evaluated, so SIMs
  /// that violated in monitor mode are not barred retroactively.
  void reload_actions(const lock::eligibility_config& cfg);

  /// The networks a SIM may be on: the names of `orders.networks` and of the
  /// `imei_lock` lists, sorted. Upserts with any other name are refused.
  std::vector<std::string> configured_networks() const;
  /// SIMs whose network is no longer configured (the gauge's value).
  std::uint64_t sims_on_unconfigured_networks() const;

  // -- More than one node (DESIGN §6, docs/cluster.md) -------------------------
  /// What the layer needs of the cluster: the shard count and the lease
  /// manager's view of a lease now (cluster::lease_manager::epoch_of).
  struct cluster_view {
    std::uint32_t shards = 0;
    std::function<std::optional<std::int64_t>(std::uint32_t shard)> epoch_of;
    /// The nodes and leases from the database (get_cluster; served_here is
    /// filled in by the layer); throws imeilock::unavailable_error.
    std::function<cluster_info()> describe;
    /// Hands an observation of a SIM whose shard this node does not serve
    /// to the shard's owner (cluster::inbox_sender); `done` with ack::ok
    /// once the handoff is committed. Empty: such observations are answered
    /// ack::not_owner.
    std::function<void(observation, ack_fn)> hand_off;
    /// A shard is served from now on (loaded): its handoffs can be applied.
    std::function<void(std::uint32_t shard)> served;
    /// Bulk jobs (actors/cluster_jobs.hpp): the database where their shard
    /// parts are kept (cluster::job_store) and this node's id. Empty: this
    /// node runs no bulk jobs (jobs() is null).
    std::string jobs_conninfo;
    std::string node_id;
    /// Order per SIM (docs/cluster.md): which SIMs ({ICCID, shard}) of a
    /// batch of observations received directly have handoffs committed to
    /// the inbox and not applied yet (cluster::inbox_gate; nullopt: the
    /// database could not be asked). Such an observation is handed off too,
    /// behind them; the others are applied at once. Empty: not asked.
    std::function<void(std::vector<std::pair<std::string, std::uint32_t>> sims,
                       std::function<void(std::optional<std::vector<bool>>)> done)>
        pending;
    /// Once per SIM answered pending, when its observation's handoff is
    /// answered (committed or not).
    std::function<void(const std::string& iccid)> released;
  };
  /// Before start(): this layer serves only the cluster shards it is given
  /// (shard_gained), loads nothing at start() and fences every change with
  /// the lease of its SIM's shard (store::change::shard/epoch). Without it
  /// the layer serves every SIM of the store (one node).
  void set_cluster(cluster_view view);
  /// The lease of `shard` was gained at `epoch`: its SIMs (lowest IMSI in
  /// the shard) are loaded from the store and their open orders resumed, on
  /// the layer's loader thread; the shard is served once that is done and
  /// only while the lease is held. Never blocks (a lease manager callback).
  void shard_gained(std::uint32_t shard, std::int64_t epoch);
  /// The lease of `shard` is lost: the shard is not served from now on
  /// (observations: ack::not_owner; writes: refused), then its SIMs are
  /// dropped (actors stopped, IMSIs forgotten, open orders forgotten) on the
  /// loader thread. Never blocks.
  void shard_lost(std::uint32_t shard);
  /// One handed-over observation to apply (a cluster inbox entry).
  struct handed_over {
    std::int64_t id = 0; ///< the entry: deleted by the change that applies it
    std::string sim_key; ///< the SIM (per-SIM order)
    observation obs;
  };
  /// Per entry of apply_handoffs: the time from the call until its
  /// deletion committed, or nullopt when it was not applied.
  using handoff_results = std::vector<std::optional<std::chrono::microseconds>>;
  /// The owner's side of a handoff (more than one node): applies entries of
  /// cluster shard `shard` (in inbox id order), each SIM's one after the
  /// other (the next once the previous has committed), every entry deleted
  /// in the transaction that commits its effect, or in one of its own, under
  /// the shard's lease, when it changes nothing. A SIM's chain stops at its
  /// first entry not applied (shard not served, overloaded, store failure):
  /// it and the SIM's later entries stay in the inbox. `done` once every
  /// chain has ended, from any thread. Never blocks.
  void apply_handoffs(std::uint32_t shard, std::vector<handed_over> items,
                      std::function<void(handoff_results)> done);
  /// The cluster shards served now, with the epoch each was loaded under.
  std::vector<std::pair<std::uint32_t, std::int64_t>> serving() const;
  /// No shard load or drop waiting or running (readiness).
  bool shards_settled() const;
  /// The fencing claim ({shard, epoch}) for a change of SIM `iccid` made
  /// outside the actors (the RFC 5176 audit note); nullopt when its shard is
  /// not served here. {-1, 0} on one node.
  std::optional<std::pair<std::int64_t, std::int64_t>> claim_of(const std::string& iccid) const;

  observation_sink& sink() { return *this; }
  sim_service& service() { return *this; }

  // observation_sink
  void submit(observation obs, ack_fn done) override;
  /// One registry message per shard for the whole batch.
  void submit_many(std::vector<submission>& batch) override;

  // sim_service
  void upsert_sim(sim_upsert sim, std::function<void(write_result)> done) override;
  void import_sims(std::vector<sim_upsert> sims,
                   std::function<void(std::vector<write_result>)> done) override;
  void get_sim(std::string iccid, std::function<void(std::optional<sim_info>)> done) override;
  void list_sims(sim_filter filter, std::string cursor, std::size_t limit,
                 std::function<void(sim_page)> done) override;
  void place_order(std::string iccid, order_request req,
                   std::function<void(write_result)> done) override;
  void get_order(std::uint64_t id, std::function<void(std::optional<orders::order>)> done) override;
  void list_orders(std::string iccid,
                   std::function<void(std::vector<orders::order>)> done) override;
  void list_events(std::string iccid, std::size_t limit,
                   std::function<void(std::vector<event_info>)> done) override;
  /// The bulk jobs (actors/jobs.hpp): started by start(), stopped first by
  /// stop(); null on a cluster node (set_cluster: jobs run on one node only).
  job_service* jobs() override;
  void fleet(std::function<void(fleet_info)> done) override;
  void get_cluster(std::function<void(cluster_info)> done) override;

  // -- For tests and benchmarks -------------------------------------------------
  /// The store (reads, counters).
  store::store& db();
  /// SIMs in the inventory index.
  std::size_t inventory_size() const;
  /// Heap bytes of the inventory index plus the shards' compact rows.
  std::size_t inventory_bytes() const;
  /// SIM actors alive (asks every shard; blocks the caller, tests only).
  std::size_t sim_actors_alive();
  /// Observations handed over and not yet acknowledged.
  std::size_t in_flight() const;

private:
  sim_layer(std::unique_ptr<store::store> db, caf::actor_system& sys, const sim_layer_config& cfg,
            const lock::eligibility_config& eligibility, const orders::orders_config& orders_cfg,
            prometheus::Registry& registry, sim_listener* listener, boost::asio::io_context& io);

  struct impl;
  std::unique_ptr<impl> impl_;

  /// The checks of submit(): answers `done` at once (shutting down, unknown
  /// SIM, overloaded) and returns false, or counts the observation in flight,
  /// sets `sim` and returns true: then the caller answers it here
  /// (answered_here) or wraps `done` (tracked) and sends it on.
  bool admit(observation& obs, ack_fn& done, std::uint32_t& sim);
  /// An admitted observation answered on the submitting thread (observe_here):
  /// counted, out of flight, `done` called with ack::ok. No wrapper made: no
  /// allocation per observation on the fast path.
  void answered_here(ack_fn& done);
  /// `done` of an admitted observation sent on: wrapped with the accounting
  /// answered_here does, for whichever thread answers it.
  void tracked(ack_fn& done);
  /// More than one node: applies observations received directly once the
  /// inbox holds no handoff of their SIMs (cluster_view::pending), else hands
  /// them off behind those.
  void after_handoffs(std::vector<sim_observation> items);
  /// upsert_sim(); `bulk` for import_sims (sim_upsert_msg::bulk).
  void upsert(sim_upsert sim, std::function<void(write_result)> done, bool bulk);
  /// apply_handoffs(): applies entry `pos` of chain `chain`, then the next.
  void handoff_step(const std::shared_ptr<handoff_run>& r, std::size_t chain, std::size_t pos);
};

} // namespace imeilock::actors
