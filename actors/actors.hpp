#pragma once
// Every typed actor interface of the SIM layer, and the messages they
// exchange (STYLE.md §1). Included only by the few CAF translation units of
// actors/ (registry.cpp, sim_actor.cpp, order_actor.cpp, sim_layer.cpp) and
// their tests: never from a widely included header.
//
// The protocol in one picture:
//
//   sim_layer::submit ──sim_observation──▶ registry shard ──▶ SIM actor ──change──▶ store writer
//   sim_layer (API)   ──sim_order / sim_upsert_msg──▶ shard ──▶ SIM actor          │
//   SIM actor ◀──commit_atom── store done callback ◀─────────────────────────────────┘
//   SIM actor ──new_order──▶ order actor ──sim_order_outcome──▶ shard ──▶ SIM actor
//   sim_layer::start ──orders_resume──▶ order actor   (open orders read before the actors run)
//   sim_layer::reload_orders ──orders_reload──▶ order actor   (SIGHUP)
//   SIM actor ──sim_idle──▶ shard   (nothing in flight: the shard's row is the state again)
//   shard ──stop_atom──▶ idle SIM actor (passivation after `passivate_after`)
//   shard ──change (activities)──▶ store writer   (write-behind of when SIMs were last observed)
//   store done callback ──activity_unsaved──▶ shard   (that write failed: again next time)
//   sim_layer (cluster shard gained/lost) ──sims_loaded / sims_dropped──▶ shard
//   sim_layer (cluster shard gained/lost) ──orders_resume / orders_drop──▶ order actor
//
// Every reply travels as a callback inside the message (TOOLCHAIN pitfalls 3-5:
// no request/response bookkeeping, no timeouts, no blocking bridges).
//
// No handler reads the store (a SQLite read would stall every actor of its
// scheduler thread): what a handler needs of a SIM is in memory (its row or
// actor state, and the inventory index: ICCID, IMSIs, network). The one read,
// the open orders at startup, runs in sim_layer::start() and arrives as
// orders_resume. Writes go to the store's writer thread (store::submit) and
// come back as commit_atom.

#include "actors/inventory.hpp"
#include "actors/ports.hpp"
#include "orders/network.hpp"
#include "orders/order.hpp"

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace imeilock::actors {

// -- Messages --------------------------------------------------------------------

/// An observation for a known SIM, with the front-end's acknowledgement.
struct sim_observation {
  sim_id sim = no_sim;
  observation obs;
  ack_fn done;
  /// What lock::apply made of it, when the shard decided it from the SIM's
  /// row with nothing in flight (the actor's state is that row): the actor
  /// carries it out instead of applying the observation a second time. A
  /// pointer: set only for the few observations that change something, so
  /// the message stays small on the path that changes nothing.
  std::shared_ptr<lock::outcome> decided{};
  /// Counted on its way to the shard (context.hpp, counted()): the shard
  /// takes it off the SIM's row's count.
  bool counted = false;
};

/// Observations of one front-end read batch for the SIMs of one shard
/// (sim_layer::submit_many): one message instead of one per observation, each
/// handled as a sim_observation of its own, in order.
struct sim_observation_batch {
  std::vector<sim_observation> items;
};

/// An operator order for a SIM (API place_order).
struct sim_order {
  sim_id sim = no_sim;
  order_request req;
  std::int64_t at_ms = 0;
  std::function<void(write_result)> done;
  /// The SIM's activity as its shard knows it (set by the shard): an order
  /// enabling the lock on a SIM never observed with an IMEI gets a warning.
  lock::sim_activity activity{};
  /// Counted on its way to the shard (context.hpp, counted()): the shard
  /// takes it off the SIM's row's count.
  bool counted = false;
};

/// An identity upsert for a SIM (API upsert/import). For a new SIM the
/// sim_layer has added it to the inventory index already (`created`).
struct sim_upsert_msg {
  sim_id sim = no_sim;
  sim_upsert rec;
  network_id network = no_network; ///< rec.network, interned (a configured network)
  bool created = false;
  std::int64_t at_ms = 0;
  std::function<void(write_result)> done;
  /// From an import: an actor spawned for it is stopped as soon as it is idle
  /// (its row holds the state), not after passivate_after, so a million SIMs
  /// imported do not leave a million actors alive for a minute.
  bool bulk = false;
  /// Counted on its way to the shard (context.hpp, counted()): the shard
  /// takes it off the SIM's row's count.
  bool counted = false;
};

/// The order actor reports an order completed or failed (o.status says which).
struct sim_order_outcome {
  sim_id sim = no_sim;
  orders::order o;
  /// Counted on its way to the shard (context.hpp, counted()): the shard
  /// takes it off the SIM's row's count.
  bool counted = false;
};

/// Anything the registry forwards to a SIM actor, as one message type (one
/// handler instead of four: every byte of an idle actor counts).
using sim_work = std::variant<sim_observation, sim_order, sim_upsert_msg, sim_order_outcome>;

/// A SIM actor has nothing in flight: its committed state, and how many
/// messages from the shard it has handled (the shard trusts the state only if
/// it has forwarded nothing since).
struct sim_idle {
  sim_id sim = no_sim;
  std::uint32_t epoch = 0;
  lock::sim_state state;
  network_id network = 0;
  bool stored = false; ///< the store holds the SIM (an upsert of it committed)
};

/// A SIM actor persisted a new order: the order actor takes it over.
struct new_order {
  orders::order o;
};

/// Startup: the open orders (queued or submitted), as sim_layer::start() read
/// them from the store before any actor ran. The order actor resumes them.
struct orders_resume {
  std::vector<orders::order> open;
};

/// A reloaded `orders:` section (SIGHUP): rate limits, lead times, retry
/// policies and backends from now on; open orders are kept.
struct orders_reload {
  orders::orders_config cfg;
};

/// A provisioning backend answered a submission.
struct backend_answer {
  std::uint64_t id = 0;
  bool accepted = false;
  std::string reason;
};

/// The write-behind of SIM activity failed (store refused or rolled back):
/// the shard marks these rows (local indices) dirty again.
struct activity_unsaved {
  std::vector<std::uint32_t> rows;
};

/// More than one node: SIMs of a cluster shard this node now serves, as
/// sim_layer loaded them from the store (their ids in the inventory index
/// are set); the registry shard takes their rows (`states`, `networks`
/// index-aligned with `sims`), replacing any it had.
struct sims_loaded {
  std::vector<sim_id> sims;
  std::vector<lock::sim_state> states;
  std::vector<lock::sim_activity> activities;
  std::vector<network_id> networks;
};

/// More than one node: SIMs of a cluster shard this node no longer serves.
/// The registry shard stops their actors (work still waiting is answered as
/// not stored) and forgets their rows.
struct sims_dropped {
  std::vector<sim_id> sims;
};

/// More than one node: the order actor forgets the open orders of these
/// SIMs (sorted ICCIDs): their shard is served by another node now, which
/// resumes them from the store.
struct orders_drop {
  std::vector<std::string> iccids;
};

/// Counts for tests and benchmarks.
struct registry_counts {
  std::size_t active = 0;
};

// -- Atoms (at most 10 characters, TOOLCHAIN pitfall 7) ---------------------------

using commit_atom = caf::atom_constant<caf::atom("commit")>;
using sweep_atom = caf::atom_constant<caf::atom("sweep")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using counts_atom = caf::atom_constant<caf::atom("counts")>;

// -- Interfaces ----------------------------------------------------------------

/// One SIM's lock state machine: a thin shell over lock::apply that persists
/// every change before it acknowledges, one write in flight at a time.
using sim_actor = caf::typed_actor<
    // Work forwarded by the registry, handled in arrival order:
    //  - an observation: apply it; ack after any change is committed;
    //  - an operator order: check, persist with its order, answer, hand it on;
    //  - an identity upsert: persist, update the index, answer;
    //  - an order completed or failed: apply, persist with the order's final state.
    caf::reacts_to<sim_work>,
    // The store committed (true) or rolled back (false) this SIM's write.
    caf::reacts_to<commit_atom, bool>,
    // The registry passivates this (idle) actor: quit now.
    caf::reacts_to<stop_atom>>;

/// One shard of the IMSI -> SIM registry: owns the compact rows of its SIMs
/// (sim_id % shards), answers unchanged observations itself whenever the SIM
/// has nothing in flight, spawns SIM actors for changes and passivates idle
/// ones.
using registry_actor = caf::typed_actor<
    // An observation for one of this shard's SIMs.
    caf::reacts_to<sim_observation>,
    // Several observations for this shard (one front-end read batch), each as above.
    caf::reacts_to<sim_observation_batch>,
    // An operator order for one of this shard's SIMs.
    caf::reacts_to<sim_order>,
    // An identity upsert for one of this shard's SIMs (adds the row if new).
    caf::reacts_to<sim_upsert_msg>,
    // An order outcome: re-spawns the SIM actor if passivated, forwards.
    caf::reacts_to<sim_order_outcome>,
    // A SIM actor went idle: its row is the state again.
    caf::reacts_to<sim_idle>,
    // More than one node: rows of SIMs of a cluster shard gained, loaded.
    caf::reacts_to<sims_loaded>,
    // More than one node: SIMs of a cluster shard lost: stop, forget.
    caf::reacts_to<sims_dropped>,
    // Timer: look for idle SIM actors; write changed SIM activity behind.
    caf::reacts_to<sweep_atom>,
    // The activity write-behind of these rows failed: write them again.
    caf::reacts_to<activity_unsaved>,
    // Stop every SIM actor, then quit.
    caf::reacts_to<stop_atom>,
    // Tests and benchmarks: how many SIM actors are alive.
    caf::replies_to<counts_atom>::with<registry_counts>>;

/// The order actor of this node: a thin shell over orders::scheduler that
/// owns time (one timer at a time), calls the provisioning backends and
/// reports outcomes to the SIMs through the registry.
using order_actor = caf::typed_actor<
    // A SIM actor persisted this order (queued): schedule it.
    caf::reacts_to<new_order>,
    // A backend answered a submission.
    caf::reacts_to<backend_answer>,
    // The one timer fired (its due time, unix ms).
    caf::reacts_to<tick_atom, std::int64_t>,
    // Startup: resume the open orders sim_layer::start() read from the store.
    caf::reacts_to<orders_resume>,
    // SIGHUP: reconfigure the scheduler, rebuild changed backends, re-arm the timer.
    caf::reacts_to<orders_reload>,
    // More than one node: forget the open orders of SIMs no longer served.
    caf::reacts_to<orders_drop>,
    // Quit.
    caf::reacts_to<stop_atom>>;

} // namespace imeilock::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(imeilock::actors::sim_observation)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(imeilock::actors::sim_observation_batch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(imeilock::actors::sim_order)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(imeilock::actors::sim_upsert_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(imeilock::actors::sim_order_outcome)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(imeilock::actors::sim_idle)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(imeilock::actors::sim_work)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(imeilock::actors::new_order)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(imeilock::actors::orders_resume)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(imeilock::actors::orders_reload)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(imeilock::actors::backend_answer)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(imeilock::actors::registry_counts)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(imeilock::actors::activity_unsaved)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(imeilock::actors::sims_loaded)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(imeilock::actors::sims_dropped)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(imeilock::actors::orders_drop)
