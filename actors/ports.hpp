#pragma once
// The SIM layer as the rest of the daemon sees it, with no CAF in sight:
//  - protocol front-ends hand it observations (observation_sink);
//  - the operator API places orders and reads state (sim_service);
//  - event webhooks and the RADIUS Disconnect sender listen to it (sim_listener).
// The actor system implements these (actors/sim_layer.cpp); callers never
// block: every answer comes back through a callback, called exactly once,
// from any thread. A callback must not block: post to your own executor.

#include "common/error.hpp"
#include "lock/imei.hpp"
#include "lock/machine.hpp"
#include "lock/sim.hpp"
#include "lock/types.hpp"
#include "orders/order.hpp"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace imeilock::actors {

/// Where an observation came from.
enum class source_kind : std::uint8_t { radius, diameter };

/// What RFC 5176 needs to send a Disconnect-Request for the session that
/// reported an observation (RADIUS only).
struct disconnect_target {
  std::string nas_address;     ///< the NAS's IP (NAS-IP-Address, else packet source)
  std::string nas_identifier;  ///< NAS-Identifier, may be empty
  std::string acct_session_id; ///< Acct-Session-Id
  std::string user_name;       ///< User-Name, may be empty
  std::string framed_ip;       ///< Framed-IP-Address, dotted, may be empty
  std::string calling_station_id;
};

/// More than one node: the handoff an observation came from when its owner
/// applies it (sim_layer::apply_handoffs; cluster/inbox.hpp).
struct inbox_ref {
  std::int64_t id = 0; ///< the cluster_inbox entry
  /// A change that deletes the entry (store::change::inbox_done) was
  /// submitted with the observation's effect; else the entry is deleted on
  /// its own once the observation is answered.
  std::atomic<bool> consumed{false};
};

/// One accounting message, reduced to what the lock needs (DESIGN §1).
struct observation {
  std::uint64_t imsi = 0; ///< 15-digit IMSI as an integer
  std::string msisdn;     ///< may be empty
  lock::imei_value imei;  ///< absent/malformed -> no lock event (R2, R3)
  source_kind source = source_kind::radius;
  std::string peer; ///< NAS address / Diameter Origin-Host, for the audit log
  /// Application-level idempotency: a retransmit of the same accounting
  /// record (even with a new RADIUS Identifier / hop-by-hop id) carries the
  /// same key and must not cause a second state change or order. 0: none.
  std::uint64_t dedupe_key = 0;
  std::int64_t at_ms = 0;                              ///< receive time, unix ms
  std::shared_ptr<const disconnect_target> disconnect; ///< RADIUS sessions only
  /// Set when the owner applies a handoff (never by a front-end): the change
  /// carrying its effect deletes the inbox entry in the same transaction.
  std::shared_ptr<inbox_ref> inbox;
};

/// The SIM layer's answer to an observation.
enum class ack : std::uint8_t {
  ok,            ///< processed; any change it caused is durable: answer the peer
  unknown_sim,   ///< IMSI not in the inventory (R15): counted, answer the peer
  overloaded,    ///< shed: RADIUS sends nothing, Diameter answers 3004
  store_failed,  ///< not durable: do not answer, the peer retries
  shutting_down, ///< do not answer
  /// More than one node (DESIGN §6): this node does not serve the SIM's shard
  /// now. Nothing was done: RADIUS sends nothing (the proxy fails over),
  /// Diameter answers 3002 DIAMETER_UNABLE_TO_DELIVER.
  not_owner,
};

using ack_fn = std::function<void(ack)>;

/// One observation with its acknowledgement, for observation_sink::submit_many.
struct submission {
  observation obs;
  ack_fn done;
};

/// Front-ends -> SIM layer.
class observation_sink {
public:
  virtual ~observation_sink() = default;
  /// Hands over one observation without blocking; `done` runs exactly once,
  /// after any resulting change is committed to the store.
  virtual void submit(observation obs, ack_fn done) = 0;
  /// Hands over several at once (a front-end's read batch), as submit() on
  /// each in order would; leaves `batch` empty, its capacity kept for the
  /// caller's next batch. The SIM layer sends one message per shard for the
  /// whole batch instead of one per observation (issue 12).
  virtual void submit_many(std::vector<submission>& batch) {
    for (auto& s : batch)
      submit(std::move(s.obs), std::move(s.done));
    batch.clear();
  }
};

// -- Operator side -----------------------------------------------------------

/// A SIM of the inventory with its lock state (the one SIM type,
/// lock::sim_record), and what the configured eligibility lists (R1, R13)
/// allow on its network.
struct sim_info : lock::sim_record {
  lock::policy policy;
  /// False when the SIM's network is no longer in the configuration (removed
  /// by a reload): the SIM keeps its state and keeps working (api/README.md).
  bool network_configured = true;
};

/// Create or update a SIM's identity (not its lock state).
struct sim_upsert {
  std::string iccid;
  std::vector<std::uint64_t> imsis;
  std::string msisdn;
  std::string network;
  lock::sim_status status = lock::sim_status::inactive;
};

/// One audit record (R14).
struct event_info {
  std::uint64_t id = 0;
  std::string iccid;
  std::int64_t at_ms = 0;
  std::string cause;
  lock::sim_state before;
  lock::sim_state after;
  lock::device_id imei = lock::no_device;
  std::string detail;
};

struct order_request {
  lock::order_type type = lock::order_type::none;
  lock::unbar_mode mode = lock::unbar_mode::none;
  bool with_lock = false;
  /// What the lock holds the SIM to (R16): enable_imei_lock, activate with lock.
  lock::lock_scope scope = lock::lock_scope::imei;
};

/// The answer to an operator write. error == ec::ok means accepted.
struct write_result {
  ec error = ec::ok;
  std::string reason;                 ///< why refused (the operator reads it)
  std::vector<std::string> warnings;  ///< accepted, but read this (R10 caveat)
  bool created = false;               ///< upsert: a new SIM
  std::optional<orders::order> order; ///< place_order: the new order
  /// Refused because the network is not configured: the configured names.
  std::vector<std::string> known_networks;
};

/// The API error of an order the rules refused (lock::apply): ec::invalid when
/// the order can never be accepted as asked, ec::conflict when it clashes with
/// the SIM's current state. ec::ok for rejection::none.
inline ec rejection_error(lock::rejection r) {
  switch (r) {
    case lock::rejection::network_not_eligible:
    case lock::rejection::activation_lock_not_eligible:
    case lock::rejection::unbar_mode_required:
    case lock::rejection::unbar_mode_not_applicable:
    case lock::rejection::invalid_order:
      return ec::invalid;
    case lock::rejection::not_active:
    case lock::rejection::already_active:
    case lock::rejection::order_in_flight:
    case lock::rejection::nothing_to_unbar:
    case lock::rejection::already_barred:
    case lock::rejection::lock_already_enabled:
    case lock::rejection::lock_not_enabled:
      return ec::conflict;
    case lock::rejection::none:
      break;
  }
  return ec::ok;
}

/// The refusal of a SIM upsert whose network is not a configured one
/// (`orders.networks` and the `imei_lock` lists): ec::invalid, naming the
/// configured networks. One wording for the SIM layer and the API tests' fake.
inline write_result unknown_network(const std::string& network, std::vector<std::string> known) {
  write_result r;
  r.error = ec::invalid;
  r.reason = "network \"" + network + "\" is not configured; the configured networks are: ";
  for (std::size_t i = 0; i < known.size(); ++i)
    r.reason += (i == 0 ? "" : ", ") + known[i];
  if (known.empty())
    r.reason += "(none)";
  r.known_networks = std::move(known);
  return r;
}

using lock::sim_filter;

struct sim_page {
  std::vector<sim_info> items;
  std::string next_cursor; ///< empty: no more
};

/// More than one node (DESIGN §6): the cluster as GET /v1/cluster shows it,
/// read from the database (the leases and nodes tables) plus what this node
/// serves.
struct cluster_info {
  struct node {
    std::string node_id;
    std::string api_url; ///< where its operator API is reached (may be empty)
    std::vector<std::uint32_t> preferred_shards;
    bool live = false; ///< its heartbeat has not expired
  };
  struct lease {
    std::uint32_t shard = 0;
    std::string owner; ///< empty: free
    std::int64_t epoch = 0;
    std::int64_t expires_in_ms = 0; ///< by the database's clock; <= 0: expired
    bool served_here = false;       ///< this node serves the shard (loaded, at this epoch)
  };
  bool enabled = false; ///< false: one node, nothing else is set
  std::string node_id;  ///< this node
  std::uint32_t shards = 0;
  std::vector<node> nodes;
  std::vector<lease> leases;
};

/// API -> SIM layer. Every write goes through the SIM actor (one path to a
/// SIM's state); reads come from the store's committed state.
class sim_service {
public:
  virtual ~sim_service() = default;
  virtual void upsert_sim(sim_upsert sim, std::function<void(write_result)> done) = 0;
  /// Validates all, writes the valid ones in one transaction; results[i] per input.
  virtual void import_sims(std::vector<sim_upsert> sims,
                           std::function<void(std::vector<write_result>)> done) = 0;
  virtual void get_sim(std::string iccid, std::function<void(std::optional<sim_info>)> done) = 0;
  virtual void list_sims(sim_filter filter, std::string cursor, std::size_t limit,
                         std::function<void(sim_page)> done) = 0;
  virtual void place_order(std::string iccid, order_request req,
                           std::function<void(write_result)> done) = 0;
  virtual void get_order(std::uint64_t id,
                         std::function<void(std::optional<orders::order>)> done) = 0;
  virtual void list_orders(std::string iccid,
                           std::function<void(std::vector<orders::order>)> done) = 0;
  /// Newest first, at most `limit`.
  virtual void list_events(std::string iccid, std::size_t limit,
                           std::function<void(std::vector<event_info>)> done) = 0;
  /// The cluster (GET /v1/cluster); enabled false on one node. Throws
  /// imeilock::unavailable_error when the database cannot be read (503).
  virtual void get_cluster(std::function<void(cluster_info)> done) {
    auto answer = std::move(done); // taken by value like every override's
    answer({});
  }
};

/// Something happened to a SIM (lock::notify effects, order outcomes).
struct sim_event {
  lock::notice what;
  std::string iccid;
  std::uint64_t imsi = 0;
  lock::device_id imei = lock::no_device;
  lock::device_id locked_imei = lock::no_device;
  std::uint64_t order_id = 0;
  std::int64_t at_ms = 0;
  /// For violations: what the network's action did about it (lock::policy).
  lock::violation_action action = lock::violation_action::bar;
  /// For violations seen over RADIUS whose action is disconnect_and_bar:
  /// where to send a Disconnect-Request.
  std::shared_ptr<const disconnect_target> disconnect;
};

/// SIM layer -> webhooks, Disconnect sender. Called after the change is
/// durable; must not block.
class sim_listener {
public:
  virtual ~sim_listener() = default;
  virtual void on_event(const sim_event& ev) = 0;
};

} // namespace imeilock::actors
