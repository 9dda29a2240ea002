#pragma once
// Shard leases in PostgreSQL (DESIGN §6): the table, its migration, and the
// statements the lease manager and the store's writer run. Every statement
// uses the DATABASE's clock (clock_timestamp()), never the node's, so nodes
// whose clocks disagree still agree on who holds what.
//
// Rules (docs/cluster.md):
// - A lease is a row {shard, owner, epoch, expires_at, renewed_at}. A node
//   takes a shard only when it is free (no owner), expired, or already its
//   own (it stepped down and comes back): never from a healthy owner.
// - The epoch is the fencing token: it increments on every acquisition, so
//   two holders of a shard, one after the other, never share an epoch.
//   Renewal keeps it; release keeps it (the next acquisition increments it).
// - Fencing: every transaction that commits a change of a SIM runs
//   fence_sql() (or check_fence()) inside the transaction, before COMMIT. It
//   fails the transaction unless this node still holds each shard at the
//   epoch it claims and the lease has not expired, and it takes a share lock
//   on those lease rows until the transaction ends: a takeover (an UPDATE of
//   the row) waits for the commit, so a commit never lands after a takeover.
//   A node that was paused or partitioned past its lease can therefore
//   never commit for a lost shard again.
// - Lock order: statements that lock several lease rows lock them by
//   ascending shard, so a writer's fence and another node's takeover cannot
//   deadlock.
//
// Tables (migration `cluster_schema_version` 1; the store has its own
// schema_version): cluster_settings (the shard count every node must agree
// on), cluster_leases, cluster_nodes (node id, advertised API URL, preferred
// shards, liveness) and the function imeilock_fence(); version 2 adds the
// handoff inbox (cluster_inbox, inbox.hpp), version 3 the parts of bulk
// jobs (cluster_job_parts, jobs.hpp). Not thread-safe: one
// connection per thread (libpq).

#include "common/error.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

struct pg_conn;

namespace imeilock::cluster {

/// What went wrong in the cluster layer.
enum class ec : std::uint8_t {
  /// The database could not be reached or a statement failed.
  database = 1,
  /// The fencing check failed: this node no longer holds a shard at the
  /// epoch it claims (the transaction is aborted).
  fenced,
  /// The database was set up for another shard count (or a newer schema).
  mismatch,
  /// A handoff payload that does not decode (inbox.hpp).
  malformed,
};

constexpr std::string_view to_string(ec e) {
  switch (e) {
    case ec::database:
      return "database";
    case ec::fenced:
      return "fenced";
    case ec::mismatch:
      return "mismatch";
    case ec::malformed:
      return "malformed";
  }
  return "unknown";
}

} // namespace imeilock::cluster

template <>
struct imeilock::error_category<imeilock::cluster::ec> {
  static constexpr std::string_view name = "cluster";
};

namespace imeilock::cluster {

/// The version of the cluster tables this code writes (cluster_schema_version).
inline constexpr int cluster_schema_version = 3;

/// A shard held at an epoch: what a lease gives and what a fence claims.
struct shard_epoch {
  std::uint32_t shard = 0;
  std::int64_t epoch = 0;
  // clang-tidy 14 takes the 0 the defaulted <=> compares its result with for
  // a null pointer (fixed in later releases).
  // NOLINTNEXTLINE(modernize-use-nullptr)
  friend auto operator<=>(const shard_epoch&, const shard_epoch&) = default;
};

/// One row of cluster_leases, as the database sees it now.
struct lease_row {
  std::uint32_t shard = 0;
  std::string owner; ///< empty when free
  std::int64_t epoch = 0;
  /// Until expiry by the database's clock (negative: expired).
  std::chrono::milliseconds remaining{0};
};

/// One row of cluster_nodes.
struct node_row {
  std::string node_id;
  std::string api_url;
  std::vector<std::uint32_t> preferred_shards;
  bool live = false; ///< its heartbeat has not expired
};

/// The connection's last error (libpq's PQerrorMessage) on one line, for logs.
std::string connection_error(pg_conn* conn);

/// Creates or upgrades the cluster tables (under an advisory lock: nodes
/// starting together migrate once), records the shard count on first use,
/// and makes sure every shard has a lease row. ec::mismatch when the
/// database holds another shard count or a newer schema; ec::database when
/// a statement fails.
expected<void> migrate(pg_conn* conn, std::uint32_t shards);

/// Takes those of `candidates` that are free, expired or already `node`'s,
/// each with a new epoch, for `duration`. With `unless_preferred_elsewhere`,
/// skips a shard that another live node prefers (it claims it itself).
/// Rows locked by another transaction are skipped (claimed next round).
/// Returns what was taken.
expected<std::vector<shard_epoch>> acquire(pg_conn* conn, std::string_view node,
                                           std::span<const std::uint32_t> candidates,
                                           std::chrono::milliseconds duration,
                                           bool unless_preferred_elsewhere);

/// Extends the leases `node` holds at exactly these epochs and that have
/// not expired; returns those renewed (a missing one is lost: taken over,
/// or expired).
expected<std::vector<shard_epoch>> renew(pg_conn* conn, std::string_view node,
                                         std::span<const shard_epoch> held,
                                         std::chrono::milliseconds duration);

/// How long until the first of `candidates` held by another node expires
/// (by the database's clock); nullopt when none is held by another node. The
/// lease manager wakes up then, so a takeover follows the expiry closely.
expected<std::optional<std::chrono::milliseconds>>
next_expiry(pg_conn* conn, std::string_view node, std::span<const std::uint32_t> candidates);

/// Gives up these leases at once (clean shutdown): another node may take
/// them in its next round. Leases no longer ours are left alone.
expected<void> release(pg_conn* conn, std::string_view node, std::span<const shard_epoch> held);

/// Publishes this node (its API URL and preferred shards) as live for
/// `duration`; `duration` 0 marks it gone (clean shutdown).
expected<void> heartbeat(pg_conn* conn, std::string_view node, std::string_view api_url,
                         std::span<const std::uint32_t> preferred,
                         std::chrono::milliseconds duration);

/// Every lease, by shard (GET /v1/cluster, tests).
expected<std::vector<lease_row>> list_leases(pg_conn* conn);
/// Every node that ever heartbeat, by id.
expected<std::vector<node_row>> list_nodes(pg_conn* conn);

/// The fencing statement, for a writer that runs statements with text
/// parameters inside its own transaction (store::fence_fn's txn_query):
/// $1 the node id, $2 the claimed shards, $3 their epochs, both as array
/// literals from fence_params(). It returns one row "t" when the node holds
/// every claimed shard at its epoch, and otherwise raises SQLSTATE
/// fence_sqlstate, which aborts the transaction. It also share-locks the
/// lease rows until the transaction ends (see above).
std::string_view fence_sql();
/// The parameters of fence_sql() for `claims` (any order, no repeats).
std::vector<std::string> fence_params(std::string_view node, std::span<const shard_epoch> claims);
/// The SQLSTATE fence_sql() raises when the node is fenced off.
inline constexpr std::string_view fence_sqlstate = "IL001";

/// Runs the fencing check on `txn`, a connection inside an open transaction:
/// ec::fenced (the transaction is then aborted: roll it back) when a claim
/// no longer holds, ec::database on another failure.
expected<void> check_fence(pg_conn* txn, std::string_view node,
                           std::span<const shard_epoch> claims);

} // namespace imeilock::cluster
