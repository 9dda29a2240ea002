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
#include <string_view>
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
  /// The bar lead time of its network as configured now ("5s"; as
  /// orders::lead_time::describe() writes it): the bar caveat quotes it.
  std::string bar_lead_time;
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
  /// The bulk job placing it (0: an operator's single order). The order is
  /// linked to the job in the same commit, at most once per job and SIM.
  std::uint64_t job_id = 0;
};

/// More than one node: who serves the shard of a SIM that this node does not
/// serve, as the lease table and cluster_nodes say now (an operator write is
/// redirected there: docs/cluster.md "Serving").
struct shard_owner {
  std::uint32_t shard = 0;
  std::string node_id; ///< the lease's holder; empty: no live owner right now
  std::string api_url; ///< its advertised operator API URL (cluster.api_url); may be empty
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
  /// More than one node: refused because another node serves the SIM's
  /// shard (error ec::store_failed); the API redirects the write there (an
  /// import's line: forwards it there).
  std::optional<shard_owner> elsewhere;
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

// -- Bulk jobs (POST /v1/orders:bulk; actors/jobs.hpp) ---------------------------

/// Which SIMs a bulk job places its order for.
struct job_selector {
  /// Exactly these SIMs (any order, duplicates once); empty: by `filter`.
  std::vector<std::string> iccids;
  /// When `iccids` is empty: every SIM matching it (an empty filter: all SIMs).
  sim_filter filter;
};

/// Where a job is. Stored as its integer value (keep them).
enum class job_state : std::uint8_t {
  running = 0,   ///< placing (or waiting its turn: jobs run one at a time, oldest first)
  completed = 1, ///< every selected SIM was placed or refused
  cancelled = 2, ///< stopped by an operator: what was placed stays, nothing more is
};

constexpr std::string_view to_string(job_state s) {
  switch (s) {
    case job_state::running:
      return "running";
    case job_state::completed:
      return "completed";
    case job_state::cancelled:
      return "cancelled";
  }
  return "unknown";
}

/// One SIM a job could not place its order for, and why.
struct job_refusal {
  std::string iccid;
  std::string reason;
};

/// A bulk job and its progress.
struct job_info {
  std::uint64_t id = 0;
  job_state state = job_state::running;
  order_request order;
  /// The filter of a job by filter; for a job by list, `by_list` and no ICCIDs.
  sim_filter filter;
  bool by_list = false;
  std::int64_t created_at_ms = 0;
  std::int64_t updated_at_ms = 0;
  std::int64_t finished_at_ms = 0; ///< 0 while running
  std::uint64_t total = 0;         ///< SIMs selected when the job was created
  std::uint64_t processed = 0;     ///< placed + refused
  std::uint64_t placed = 0;        ///< orders placed (accepted by the rules)
  std::uint64_t refused = 0;       ///< SIMs the rules (or the inventory) refused
  /// Refusals counted by reason, most frequent first.
  std::vector<std::pair<std::string, std::uint64_t>> reasons;
  /// The first refused SIMs with their reason (at most job_runner_config::kept_refusals).
  std::vector<job_refusal> refusals;
  /// Where the placed orders are now (from the store).
  std::uint64_t orders_open = 0;
  std::uint64_t orders_completed = 0;
  std::uint64_t orders_failed = 0;
};

/// The answer to creating or cancelling a job. error == ec::ok: done.
struct job_result {
  ec error = ec::ok;
  std::string reason;
  std::optional<job_info> job;
};

/// API -> bulk jobs. A job places its order on each selected SIM through
/// sim_service::place_order, exactly as an operator's single order (the same
/// rules, validation and rate limits), and survives a restart.
class job_service {
public:
  virtual ~job_service() = default;
  /// Creates a job (durable before `done`); it starts when the jobs before it are done.
  virtual void create_job(order_request order, job_selector selector,
                          std::function<void(job_result)> done) = 0;
  virtual void get_job(std::uint64_t id, std::function<void(std::optional<job_info>)> done) = 0;
  /// Newest first, at most `limit`; only running ones with `running_only`.
  virtual void list_jobs(bool running_only, std::size_t limit,
                         std::function<void(std::vector<job_info>)> done) = 0;
  /// Stops a running job: the orders it placed stay, it places no more.
  /// ec::conflict when it has finished already, ec::invalid when there is no
  /// such job; the job as it is now otherwise.
  virtual void cancel_job(std::uint64_t id, std::function<void(job_result)> done) = 0;
};

// -- The fleet overview (GET /v1/fleet) --------------------------------------------

/// SIMs in one lock and bar state.
struct fleet_state_count {
  lock::lock_state lock = lock::lock_state::off;
  lock::bar_state bar = lock::bar_state::none;
  std::uint64_t sims = 0;
};

/// One network: its SIMs by state, its open orders against its rate limits.
struct fleet_network {
  std::string name;
  std::vector<fleet_state_count> sims; ///< each (lock, bar) with at least one SIM
  std::uint64_t orders_queued = 0;     ///< stored orders waiting their turn
  std::uint64_t orders_in_flight = 0;  ///< sent, waiting for their lead time
  double rate_per_second = 0;          ///< orders.networks.<name>: the token bucket
  std::uint32_t burst = 0;
  std::uint32_t max_in_flight = 0;
  std::uint32_t max_queue = 0;
};

/// The whole fleet at one moment (counts from the store's committed state).
struct fleet_info {
  std::int64_t at_ms = 0;    ///< when it was read
  std::int64_t since_ms = 0; ///< start of the violation window: 24 whole hours
  /// Configured networks and those SIMs are on, by name.
  std::vector<fleet_network> networks;
  /// Violations per hour: [0] is the hour starting at since_ms.
  std::vector<std::uint64_t> violations_per_hour;
  std::vector<event_info> latest_violations; ///< newest first, since since_ms
  std::vector<event_info> latest_bars;       ///< completed bars, newest first, since since_ms
  std::vector<job_info> running_jobs;        ///< oldest first runs first
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
  /// More than one node: a SIM of a shard served elsewhere is not written;
  /// its result names the owner (write_result::elsewhere).
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
  /// The bulk jobs, or null where there are none (a test's fake SIM service).
  virtual job_service* jobs() { return nullptr; }
  /// The fleet overview: SIMs by network and state, the last 24 hours of
  /// violations, the latest violations and bars, open orders, running jobs.
  virtual void fleet(std::function<void(fleet_info)> done) = 0;
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
