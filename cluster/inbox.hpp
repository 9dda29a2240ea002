#pragma once
// The handoff inbox (DESIGN §6, issue 11): a node that receives an
// observation for a SIM whose shard another node owns hands it to the owner
// through PostgreSQL alone, and acknowledges the network only once the
// handoff is committed.
//
//   // the receiving node (not the owner), on its own connection:
//   cluster::handoff h{shard, sim_key, obs};
//   if (auto ok = cluster::enqueue(conn, node_id, {&h, 1}); ok)
//     answer_the_network();                  // committed: the owner will apply it
//
//   // the owner:
//   cluster::inbox_consumer inbox{{.node_id = "node-a"}, conninfo,
//       {.owned = [&] { return leases.owned(); },  // lease_manager
//        .apply = [&](std::uint32_t shard, std::span<const cluster::inbox_entry> batch,
//                     const cluster::txn_query& txn) -> expected<void> { ... }}};
//   inbox.start();   ...   inbox.poke();   // a shard was gained: look now
//   inbox.stop();
//
// Rules (what tests/cluster/inbox_test.cpp checks):
// - enqueue() returns only after COMMIT: what it returned success for is
//   durable. Its transaction NOTIFYs channel `imeilock_inbox` with each
//   shard it wrote (delivered at commit).
// - Order: entries of one shard are consumed in id order. enqueue() takes a
//   transaction-level advisory lock per SIM key before its rows get their
//   ids, so for one SIM id order is commit order: the owner sees a SIM's
//   observations in the order their handoffs committed, whichever nodes sent
//   them.
// - Consuming: the consumer LISTENs (it does not poll while idle; a slow
//   sweep every `sweep_interval` is the safety net, e.g. for a NOTIFY lost
//   while its connection was down). For each owned shard, in ONE
//   transaction: the fencing check (this node holds the shard at the epoch
//   `owned` says), the shard's first `max_batch` entries locked (FOR UPDATE,
//   by id), `apply` (which commits their effect through the same
//   transaction), their DELETE, the fencing check again, COMMIT. So the
//   effect and the consumption commit together or not at all: a consumer
//   that dies mid-batch consumed nothing (the entries are delivered again,
//   to it or to the next owner), and a stale owner (its lease taken over or
//   expired) can neither commit an effect nor consume an entry.
// - An entry whose payload does not decode (a bug, or a newer node's
//   format) is logged (`cluster.inbox_malformed`, with the payload), counted,
//   and deleted with the batch, so it does not block its shard; `apply` never
//   sees it.
//
// Table (cluster_schema_version 2, leases.cpp's migrations): cluster_inbox
// {id identity, shard, sim_key, payload TEXT, from_node, enqueued_at}.
// No CAF; libpq; the consumer owns a thread and one connection.

#include "cluster/leases.hpp"
#include "lock/imei.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace imeilock::cluster {

/// Which front-end an observation came in through.
enum class protocol : std::uint8_t { radius, diameter };

/// What a Disconnect-Request needs (RADIUS sessions; actors::disconnect_target).
struct disconnect_info {
  std::string nas_address;
  std::string nas_identifier;
  std::string acct_session_id;
  std::string user_name;
  std::string framed_ip;
  std::string calling_station_id;
  friend bool operator==(const disconnect_info&, const disconnect_info&) = default;
};

/// One observation as RADIUS or Diameter gave it to the SIM layer
/// (actors::observation without its callback): what crosses to the owner.
struct observation {
  std::uint64_t imsi = 0; ///< the identity: 15-digit IMSI as an integer
  std::string msisdn;     ///< may be empty
  lock::imei_value imei;  ///< absent, malformed, or the device (and SVN)
  protocol source = protocol::radius;
  std::string peer;             ///< NAS address / Diameter Origin-Host (the network side)
  std::uint64_t dedupe_key = 0; ///< retransmit identity (0: none)
  std::int64_t at_ms = 0;       ///< receive time at the node that took it, unix ms
  std::optional<disconnect_info> disconnect; ///< RADIUS sessions
  friend bool operator==(const observation& a, const observation& b) {
    return a.imsi == b.imsi && a.msisdn == b.msisdn && a.imei.status == b.imei.status &&
           a.imei.device == b.imei.device && a.imei.svn == b.imei.svn && a.source == b.source &&
           a.peer == b.peer && a.dedupe_key == b.dedupe_key && a.at_ms == b.at_ms &&
           a.disconnect == b.disconnect;
  }
};

/// The payload's text form, version 1: ASCII, one line, stable (a newer node
/// must still read it). Fields in this order, separated by '|', each
/// percent-encoded (every byte outside '!'..'~', and '|' and '%', as %XX):
///   1|imsi|msisdn|imei|protocol|peer|dedupe_key|at_ms|disconnect...
/// imei: "-" absent, "x" malformed, "<device>" or "<device>/<svn>";
/// protocol: "radius" | "diameter"; disconnect: "-" when none, else its six
/// fields (nas_address ... calling_station_id) as six more fields.
std::string encode(const observation& o);
/// Parses encode()'s text; ec::malformed naming what is wrong.
expected<observation> decode(std::string_view text);

/// One handoff to enqueue.
struct handoff {
  std::uint32_t shard = 0;
  std::string sim_key; ///< the SIM's identity (e.g. its ICCID or lowest IMSI): per-SIM order
  observation obs;
};

/// Enqueues `items` (in this order) in one transaction, NOTIFYs their
/// shards, and returns once it has committed; ec::database when it did not
/// (nothing of it is then in the inbox). `conn` must not be inside a
/// transaction.
expected<void> enqueue(pg_conn* conn, std::string_view from_node, std::span<const handoff> items);

/// The NOTIFY channel (payload: the shard, decimal).
inline constexpr std::string_view inbox_channel = "imeilock_inbox";

/// One entry as the owner reads it.
struct inbox_entry {
  std::int64_t id = 0; ///< enqueue order within the shard
  std::uint32_t shard = 0;
  std::string sim_key;
  std::string from_node;
  observation obs;
  /// How long it had waited when it was read (database clock).
  std::chrono::microseconds waited{0};
};

/// Runs `sql` ($1.. text parameters) inside the consuming transaction; the
/// first column of the first row, nullopt when no row; an error fails the
/// batch (the transaction is rolled back).
using txn_query = std::function<expected<std::optional<std::string>>(
    const std::string& sql, const std::vector<std::string>& params)>;

/// Consumer settings.
struct inbox_config {
  std::string node_id; ///< this node (the fence's owner)
  /// How often every owned shard is looked at even without a NOTIFY.
  std::chrono::milliseconds sweep_interval{5000};
  /// Entries consumed per transaction.
  std::size_t max_batch = 256;
  /// Wait after a failed batch or a lost connection before trying again
  /// (doubling up to 5 s for a connection).
  std::chrono::milliseconds retry_after{100};
  /// How long the consumer's statements wait for a row lock (lock_timeout).
  std::chrono::milliseconds lock_timeout{5000};
  /// Dispatch mode: how long a batch handed over may take to settle before
  /// the consumer gives up waiting and reads the shard again.
  std::chrono::milliseconds settle_timeout{60000};
};

/// Counters (monotonic).
struct inbox_stats {
  std::atomic<std::uint64_t> consumed{0};      ///< entries deleted with their effect committed
  std::atomic<std::uint64_t> batches{0};       ///< transactions committed
  std::atomic<std::uint64_t> failed{0};        ///< batches rolled back (apply or database error)
  std::atomic<std::uint64_t> fenced{0};        ///< batches refused by the fence (not our shard)
  std::atomic<std::uint64_t> malformed{0};     ///< entries dropped because they did not decode
  std::atomic<std::uint64_t> notifications{0}; ///< NOTIFYs received
  std::atomic<std::uint64_t> sweeps{0};        ///< periodic looks at every shard
};

/// The owner's side: LISTENs, and applies and deletes its shards' entries.
class inbox_consumer {
public:
  /// Applies one shard's batch (entries in id order) through `txn`, the
  /// transaction that will delete them. An error rolls the batch back (it is
  /// delivered again). Called on the consumer's thread.
  using apply_fn = std::function<expected<void>(
      std::uint32_t shard, std::span<const inbox_entry> entries, const txn_query& txn)>;
  /// The daemon's way (instead of `apply`): hands a shard's entries (id
  /// order) to the SIM layer and returns at once. Their effects are
  /// committed by the store's writer, each change deleting its entry in the
  /// same fenced transaction (store::change::inbox_done), so the consumer
  /// neither locks nor deletes them. `settled` must be called once, from
  /// any thread, when every entry is applied (true) or some were not (false:
  /// what is left is read again after retry_after). The consumer reads the
  /// shard again only once the batch is settled, so no entry is handed out
  /// twice while its effect may still commit.
  using dispatch_fn = std::function<void(std::uint32_t shard, std::vector<inbox_entry> entries,
                                         std::function<void(bool all_applied)> settled)>;
  struct hooks {
    /// The shards this node holds now and their epochs (lease_manager). Any thread.
    std::function<std::vector<shard_epoch>()> owned{};
    apply_fn apply{};       ///< one of apply and dispatch
    dispatch_fn dispatch{}; ///< one of apply and dispatch
  };

  inbox_consumer(inbox_config cfg, std::string conninfo, hooks h);
  /// Stops.
  ~inbox_consumer();
  inbox_consumer(const inbox_consumer&) = delete;
  inbox_consumer& operator=(const inbox_consumer&) = delete;

  /// Starts the thread (it connects, LISTENs and drains every owned shard,
  /// reconnecting by itself when the connection breaks). Once.
  void start();
  /// Wakes the consumer to look at every owned shard now (a shard was gained).
  void poke();
  /// Ends the thread; a batch in progress finishes (or rolls back) first.
  void stop();

  const inbox_stats& stats() const { return stats_; }

private:
  struct impl;
  std::unique_ptr<impl> impl_;
  inbox_stats stats_;
};

// -- The receiving side in the daemon ------------------------------------------------

/// Sender settings.
struct sender_config {
  std::string node_id;          ///< this node (the entries' from_node)
  std::size_t max_queue = 4096; ///< post() refuses beyond this many waiting
  std::size_t max_batch = 256;  ///< handoffs enqueued per transaction
  /// Wait before connecting again after a failure (doubling up to 5 s).
  std::chrono::milliseconds retry_after{100};
};

/// Counters (monotonic).
struct sender_stats {
  std::atomic<std::uint64_t> enqueued{0}; ///< committed to the inbox
  std::atomic<std::uint64_t> unknown{0};  ///< the store knows no SIM with the IMSI
  std::atomic<std::uint64_t> failed{0};   ///< not committed (database, or stopping)
  std::atomic<std::uint64_t> refused{0};  ///< post() with a full queue
};

/// A node that receives observations for shards it does not serve: a
/// thread with its own connection that enqueues them (enqueue(), one
/// transaction per batch of what is waiting) and tells each caller once its
/// handoff has committed, or that it did not. Per SIM, the order of post()
/// calls is the order of the entries.
class inbox_sender {
public:
  /// Where a SIM's handoffs go.
  struct target {
    std::string sim_key;     ///< the SIM's identity (its ICCID)
    std::uint32_t shard = 0; ///< its cluster shard (of its lowest IMSI)
  };
  /// The SIM of `imsi` (the store's view): nullopt when there is none, an
  /// error when it cannot be read. Called on the sender's thread.
  using resolve_fn = std::function<expected<std::optional<target>>(std::uint64_t imsi)>;
  enum class outcome : std::uint8_t { enqueued, unknown_sim, failed };
  /// Called once per post(), on the sender's thread (or in stop()); `shard`
  /// is meaningful for `enqueued`.
  using done_fn = std::function<void(outcome, std::uint32_t shard)>;

  inbox_sender(sender_config cfg, std::string conninfo, resolve_fn resolve);
  /// Stops.
  ~inbox_sender();
  inbox_sender(const inbox_sender&) = delete;
  inbox_sender& operator=(const inbox_sender&) = delete;

  /// Starts the thread (it connects when it has something to send). Once.
  void start();
  /// Queues `obs` for its SIM's owner; false (and `done` not called) when
  /// the queue is full. Never blocks on the database. Any thread.
  bool post(observation obs, done_fn done);
  /// Sends what is queued (or answers it failed if the database is gone),
  /// then ends the thread.
  void stop();

  const sender_stats& stats() const { return stats_; }

private:
  struct impl;
  std::unique_ptr<impl> impl_;
  sender_stats stats_;
};

// -- The owner's order per SIM -------------------------------------------------------

/// Gate settings.
struct gate_config {
  std::string node_id;          ///< this node (for the log)
  std::size_t max_batch = 4096; ///< SIMs asked about in one query
  /// Wait before connecting again after a failure (doubling up to 5 s).
  std::chrono::milliseconds retry_after{100};
};

/// Counters (monotonic).
struct gate_stats {
  std::atomic<std::uint64_t> queries{0}; ///< queries run (one per batch)
  std::atomic<std::uint64_t> asked{0};   ///< SIMs asked about
  std::atomic<std::uint64_t> pending{0}; ///< SIMs answered pending
  std::atomic<std::uint64_t> failed{0};  ///< SIMs answered unknown (the database)
};

/// Order per SIM at the owner (docs/cluster.md "Order per SIM"): before an
/// observation received directly is applied, are handoffs of its SIM
/// already committed to the inbox? Such an observation must go behind them
/// (the daemon enqueues it too, so the consumer applies the SIM's entries in
/// id order). A thread with its own connection: what is asked while a query
/// runs is asked in the next one, so the owner pays one indexed query per
/// batch of observations, not one per observation.
///
/// A SIM answered pending stays pending for later checks until release()
/// (its observation's own enqueue committed or failed): a later observation
/// of the SIM cannot overtake it while that enqueue is in flight.
class inbox_gate {
public:
  /// One SIM to ask about: its key in the inbox (the ICCID) and its shard.
  struct key {
    std::string sim_key;
    std::uint32_t shard = 0;
  };
  /// pending[i] for keys[i]; nullopt when the database could not be asked.
  /// On the gate's thread (or in stop()).
  using done_fn = std::function<void(std::optional<std::vector<bool>> pending)>;

  inbox_gate(gate_config cfg, std::string conninfo);
  /// Stops.
  ~inbox_gate();
  inbox_gate(const inbox_gate&) = delete;
  inbox_gate& operator=(const inbox_gate&) = delete;

  /// Starts the thread (it connects when asked something). Once.
  void start();
  /// Asks about `keys`; never blocks on the database. Any thread. Each key
  /// answered pending must be release()d once.
  void check(std::vector<key> keys, done_fn done);
  /// A key answered pending is settled (its observation went into the inbox,
  /// or failed). Any thread.
  void release(const std::string& sim_key);
  /// Answers what is waiting (nullopt), then ends the thread.
  void stop();

  const gate_stats& stats() const { return stats_; }

private:
  struct impl;
  std::unique_ptr<impl> impl_;
  gate_stats stats_;
};

} // namespace imeilock::cluster
