#pragma once
// What the actors of one SIM layer share: configuration, the store, the
// inventory index, metrics, the listener and each other's handles. Owned by
// sim_layer, outlives every actor it starts. Internal to actors/.

#include "actors/actors.hpp"
#include "actors/inventory.hpp"
#include "actors/metrics.hpp"
#include "actors/sim_layer_config.hpp"
#include "common/fault.hpp"
#include "orders/network.hpp"
#include "orders/order.hpp"
#include "store/store.hpp"

#include <caf/abstract_actor.hpp>
#include <caf/error.hpp>
#include <caf/fwd.hpp>
#include <caf/sec.hpp>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace imeilock::actors {

/// Unix time in milliseconds.
inline std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// A passivated SIM: its lock state, network and activity, 64 bytes.
struct compact_row {
  /// 49 bytes of data padded to 56: [[no_unique_address]] lets the members
  /// below live in that tail padding (the Itanium ABI reuses it for a
  /// potentially-overlapping member, and assigning `state` copies its data
  /// only), which keeps the row at 64 bytes with the lock scope (R16).
  [[no_unique_address]] lock::sim_state state;
  /// The store holds the SIM: loaded at startup, or an upsert committed (a
  /// first upsert that failed leaves a row in the index only).
  bool stored : 1 = false;
  /// `activity` changed since the write-behind last took it (the row is in
  /// its stripe's dirty list).
  bool activity_dirty : 1 = false;
  /// `activity` moved since the write-behind last took it, within the same
  /// `activity_resolution` step (registry.cpp, note_activity): not listed
  /// dirty, written at stop or with the next change of step.
  bool activity_behind : 1 = false;
  /// The SIM's actor holds work it has not reported done (sim_idle): the row
  /// is not the SIM's state now. Set and cleared by the shard.
  bool busy : 1 = false;
  /// When the SIM was last observed (with an IMEI): owned by the shard and
  /// the fast path, which see every observation; never handed to the SIM
  /// actor nor taken back from it (sim_idle), written to the store by the
  /// write-behind.
  lock::sim_activity activity;
  network_id network = 0;
  /// Messages for the SIM on their way to its shard, counted by the sender
  /// (counted()) and not yet taken by the shard: while any is, the fast path
  /// answers nothing of the SIM (order per SIM). Saturates: a SIM that ever
  /// had 65,535 queued stays on the shard's path.
  std::uint16_t queued = 0;

  /// The row of a SIM read from the store.
  static compact_row loaded(const lock::sim_state& st, lock::sim_activity act, network_id net) {
    compact_row r;
    r.state = st;
    r.activity = act;
    r.network = net;
    r.stored = true;
    return r;
  }
};
static_assert(sizeof(compact_row) == 64, "a passivated SIM costs 64 bytes of row");

/// The compact rows of one registry shard (registry.cpp): shared by the shard
/// actor and the threads that submit observations, which answer one that
/// changes nothing from the row themselves (observe_here). Striped locks:
/// row `local` is read and written with stripe local % stripes held; the
/// vector itself (size, storage) changes only with every stripe held, in
/// order. No lock is held while waiting on anything, calling a callback or
/// sending a message.
struct row_table {
  static constexpr std::uint32_t stripes = 16;
  struct alignas(64) stripe {
    std::mutex mtx;
    /// Rows (local indices) of this stripe whose activity changed since the
    /// write-behind last took it.
    std::vector<std::uint32_t> dirty;
  };
  std::array<stripe, stripes> locks;
  std::vector<compact_row> rows;

  stripe& stripe_of(std::uint32_t local) { return locks[local % stripes]; }
};

struct layer_context {
  sim_layer_config cfg;
  orders::orders_config orders_cfg;
  store::store* db = nullptr;
  inventory* inv = nullptr;
  layer_metrics* metrics = nullptr;
  sim_listener* listener = nullptr;
  boost::asio::io_context* io = nullptr;
  std::vector<registry_actor> shards;
  order_actor orders;
  /// Rows loaded at startup, per shard, moved into its row table when it spawns.
  std::vector<std::vector<compact_row>> initial_rows;
  /// Per shard: its rows (made by spawn_registry_shard), shared with the
  /// submitting threads.
  std::vector<std::unique_ptr<row_table>> row_tables;
  /// The submitting thread answers an observation that changes nothing
  /// itself (observe_here). Off on a cluster node (docs/cluster.md): its
  /// rows are replaced as cluster shards are loaded and dropped, and its
  /// observations wait for the inbox check first.
  bool fast_path = true;
  /// Unix time in milliseconds as the actors read it: the wall clock in the
  /// daemon; the deterministic tests (tests/actors) derive it from CAF's test
  /// clock, the one their timers run on.
  std::function<std::int64_t()> clock = now_ms;
  /// Hands a store completion to the SIM actor whose change it settles; runs on
  /// the store's writer thread. Empty in the daemon: a message sent from there
  /// straight away. The deterministic tests collect completions here and
  /// deliver them from the test thread.
  std::function<void(const sim_actor&, bool ok)> deliver_commit;
  /// More than one node (DESIGN §6): the shard lease a change of a SIM whose
  /// lowest IMSI is this one is made under ({shard, epoch}, written into
  /// store::change for the fence), or nullopt when this node does not serve
  /// that shard now: the write then fails without reaching the store. Empty
  /// on one node (no claim).
  std::function<std::optional<std::pair<std::int64_t, std::int64_t>>(std::uint64_t lowest_imsi)>
      claim;
  /// Actors of this layer (registry shards, SIM actors, the order actor) not
  /// yet terminated. They all point at this context, so sim_layer::stop()
  /// waits for zero before the context may go (count_running()).
  std::atomic<std::size_t> actors_running{0};

  std::size_t shard_index(sim_id id) const { return id % shards.size(); }
  registry_actor shard_of(sim_id id) const { return shards[shard_index(id)]; }
  std::uint32_t local_index(sim_id id) const {
    return static_cast<std::uint32_t>(id / shards.size());
  }
};

/// Writes the fencing claim of a SIM whose lowest IMSI is `lowest_imsi` into
/// `chg` (layer_context::claim). False when this node does not serve that
/// SIM's cluster shard now; always true on one node.
inline bool stamp_claim(const layer_context* ctx, store::change& chg, std::uint64_t lowest_imsi) {
  if (!ctx->claim)
    return true;
  auto c = ctx->claim(lowest_imsi);
  if (!c)
    return false;
  chg.shard = c->first;
  chg.epoch = c->second;
  return true;
}

/// Counts `hdl` in ctx->actors_running until it terminates; returns it.
template <class Handle>
Handle count_running(layer_context* ctx, Handle hdl) {
  ctx->actors_running.fetch_add(1, std::memory_order_relaxed);
  // Runs at once if the actor already terminated.
  hdl->attach_functor([ctx] { ctx->actors_running.fetch_sub(1, std::memory_order_acq_rel); });
  return hdl;
}

/// Spawns the actor of SIM `id` from its compact row, as a child of `parent`
/// (its registry shard), started lazily (sim_actor.cpp).
sim_actor spawn_sim_actor(caf::local_actor& parent, layer_context* ctx, sim_id id, compact_row row);
/// The last resort of an actor (CAF calls it for an exception that escaped a
/// handler; the actor then terminates, CAF 0.17 has no way to resume it).
/// The handlers catch what they can themselves (guarded, guard_sim), so this
/// only counts what slipped through.
template <fault_site Where>
inline caf::error last_resort(caf::scheduled_actor*, std::exception_ptr& e) {
  report_fault(Where, describe(e));
  return caf::make_error(caf::sec::runtime_error);
}

/// The fast path (registry.cpp), on the thread that submits `m`: when its
/// SIM has nothing queued to its shard nor in flight at its actor and `m`
/// changes nothing but the SIM's activity, notes the activity and returns
/// true: the caller answers m.done with ack::ok (no lock held). Otherwise
/// counts `m` on its way to the shard (counted(), m.counted) and returns
/// false: the caller sends it there.
bool observe_here(layer_context& ctx, sim_observation& m);
/// Counts a message for SIM `id` on its way to its shard (compact_row::queued).
void note_queued(layer_context& ctx, sim_id id);
/// `m` (a message for one SIM's shard: sim_observation, sim_order,
/// sim_upsert_msg, sim_order_outcome), counted: send it to the shard at once.
/// Everything sent to a shard for a SIM while the layer runs goes through
/// here, so that no observation is answered from the row before it.
template <class Msg>
Msg counted(layer_context& ctx, Msg m) {
  note_queued(ctx, m.sim);
  m.counted = true;
  return m;
}

/// Spawns registry shard `index` (registry.cpp).
registry_actor spawn_registry_shard(caf::actor_system& sys, layer_context* ctx,
                                    std::uint32_t index);
/// Spawns the order actor (order_actor.cpp).
order_actor spawn_order_actor(caf::actor_system& sys, layer_context* ctx);

} // namespace imeilock::actors
