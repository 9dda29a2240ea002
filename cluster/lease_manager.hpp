#pragma once
// The lease manager: holds this node's shard leases in PostgreSQL
// (cluster/leases.hpp) from a background thread with its own connection.
//
//   cluster::lease_manager leases{cfg, conninfo, {.gained = ..., .lost = ...}};
//   if (auto ok = leases.start(); !ok) ...        // connects, migrates, starts the thread
//   leases.owned();                               // shards held now, with their epochs
//   leases.epoch_of(7);                           // the fencing claim for shard 7
//   leases.stop();                                // releases: another node takes at once
//
// Every renew_interval the thread (asleep in between, no polling) renews the
// leases it holds, publishes the node (API URL, preferred shards), claims its
// free or expired preferred shards, then (once it has run claim_others_after)
// any other free or expired shard no live node prefers. It never takes a
// shard from a healthy owner. When a lease it could take (another node's)
// runs out before the next round, it wakes up at that moment instead: a
// takeover follows the expiry within a round trip.
//
// Stepping down: when a renewal does not return a lease (another node took
// it over with a newer epoch, or it expired), or fails (database error), the
// shard is dropped at once: `lost` is called, it leaves owned(), the loss is
// logged and counted. owned() also leaves out a lease whose local deadline
// (when its last renewal was sent + lease_duration) has passed, so a node
// whose thread was paused does not claim it. The database's fencing check
// (check_fence) is what guarantees a lost shard is never committed to; this
// bookkeeping makes the node stop trying.
//
// Callbacks run on the manager's thread, one at a time, outside its lock;
// they must not call stop().

#include "cluster/cluster_config.hpp"
#include "cluster/leases.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace imeilock::cluster {

/// Why this node stopped holding a shard.
enum class loss_reason {
  /// A renewal did not find the lease at our epoch: taken over, or expired.
  refused,
  /// A renewal failed (database unreachable, statement error).
  database,
  /// Released on a clean stop.
  released,
};
std::string_view to_string(loss_reason r);

/// Counters for metrics (plain atomics: cluster/ has no prometheus).
struct lease_stats {
  std::atomic<std::uint64_t> acquired{0};        ///< leases taken, each with a new epoch
  std::atomic<std::uint64_t> renewals{0};        ///< leases renewed
  std::atomic<std::uint64_t> step_downs{0};      ///< leases lost without release
  std::atomic<std::uint64_t> released{0};        ///< leases released on a clean stop
  std::atomic<std::uint64_t> database_errors{0}; ///< rounds that failed on the database
  std::atomic<std::uint64_t> owned{0};           ///< gauge: leases held
  /// Rounds that got through claiming (the gained callbacks ran): after the
  /// first, this node knows which shards it holds, none included.
  std::atomic<std::uint64_t> rounds{0};
};

class lease_manager {
public:
  struct callbacks {
    /// A shard is ours at this epoch (serve it: load its SIMs).
    std::function<void(shard_epoch)> gained;
    /// A shard is no longer ours (stop serving it; commits would be fenced).
    std::function<void(shard_epoch, loss_reason)> lost;
  };

  /// `cfg` must have passed validate() and have enabled set; `conninfo` is a
  /// libpq connection string to the cluster's database.
  lease_manager(cluster_config cfg, std::string conninfo, callbacks cb = {});
  /// stop(true).
  ~lease_manager();
  lease_manager(const lease_manager&) = delete;
  lease_manager& operator=(const lease_manager&) = delete;

  /// Connects, migrates the cluster tables (cluster::migrate) and starts the
  /// thread, whose first round runs at once. ec::database or ec::mismatch.
  expected<void> start();

  /// Stops the thread. `release`: gives the leases up (`lost` with
  /// `released`) and marks the node gone, so other nodes take its shards in
  /// their next round. Without: leaves them to expire, as a crash would
  /// (tests). Stop committing before releasing: after it, commits are fenced.
  void stop(bool release = true);

  /// The shards held now (local deadline not passed), by shard.
  std::vector<shard_epoch> owned() const;
  /// The epoch this node holds `shard` at, if it holds it now.
  std::optional<std::int64_t> epoch_of(std::uint32_t shard) const;

  /// The cluster as the database records it now: every node and every
  /// lease (GET /v1/cluster). Any thread: a connection of its own, opened
  /// and closed per call. ec::database when the database cannot be read.
  struct cluster_rows {
    std::vector<node_row> nodes;
    std::vector<lease_row> leases;
  };
  expected<cluster_rows> read_cluster() const;

  const lease_stats& stats() const { return stats_; }
  const cluster_config& config() const { return cfg_; }

  /// Tests: while suspended the thread does nothing, as if the process were
  /// stopped (SIGSTOP); resuming runs a round at once.
  void suspend_for_testing(bool suspended);

private:
  struct held_lease {
    std::int64_t epoch = 0;
    std::chrono::steady_clock::time_point valid_until;
  };
  void run();
  /// One round; returns how long to sleep before the next.
  std::chrono::milliseconds round();
  bool ensure_connected();
  void disconnect();
  void lose_all(loss_reason why);
  std::vector<shard_epoch> held_snapshot() const;

  cluster_config cfg_;
  std::string conninfo_;
  callbacks cb_;
  lease_stats stats_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::map<std::uint32_t, held_lease> held_;         ///< guarded by mutex_
  bool stopping_ = false;                            ///< guarded by mutex_
  bool suspended_ = false;                           ///< guarded by mutex_
  bool round_now_ = false;                           ///< guarded by mutex_: skip the wait once
  std::chrono::steady_clock::time_point started_at_; ///< set by start()
  bool database_ok_ = true;                          ///< thread only: for logging state changes
  pg_conn* conn_ = nullptr;                          ///< thread only (and start/stop around it)
  std::thread thread_;
};

} // namespace imeilock::cluster
