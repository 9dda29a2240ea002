#pragma once
// `cluster:` - running more than one node (DESIGN §6, docs/cluster.md).
// Off by default: a single node with its SQLite store changes nothing.

#include "config/error.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace imeilock::config {
class section;
}

namespace imeilock::cluster {

struct cluster_config {
  /// false: one node, no leases, no fencing.
  bool enabled = false;
  /// This node's name, unique in the cluster and stable across restarts
  /// (the owner written in the leases): 1..64 of [A-Za-z0-9._-]. Required
  /// when enabled.
  std::string node_id;
  /// How many shards the estate is split into (cluster/shard.hpp),
  /// 1..10000. The same on every node: the database records it and a node
  /// configured otherwise refuses to start.
  std::uint32_t shards = 20;
  /// Shards this node claims first, each below `shards`, no repeats. A
  /// shard no live node prefers is claimed by any node once free (after
  /// claim_others_after). A shard held by a healthy node is never taken
  /// from it, preferred or not.
  std::vector<std::uint32_t> preferred_shards;
  /// How long after its start a node waits before it claims free shards it
  /// does not prefer: at a cold start of the cluster every node gets this
  /// long to claim its preferred shards. 0 = at once.
  std::chrono::milliseconds claim_others_after{std::chrono::seconds{10}};
  /// How long a lease lasts without renewal: a dead node's shards are taken
  /// over at most this long after its last renewal (plus one round trip).
  std::chrono::milliseconds lease_duration{std::chrono::seconds{10}};
  /// How often the lease manager renews and claims; below lease_duration / 2
  /// so one lost round trip does not lose the leases.
  std::chrono::milliseconds renew_interval{std::chrono::seconds{3}};
  /// The operator API URL other nodes and imeilockctl reach this node at
  /// (http(s)://host:port), published in the database; may be empty. Other
  /// nodes redirect operator writes of this node's SIMs there (307); empty:
  /// they answer 503.
  std::string api_url;

  /// config::ec::invalid naming the key when a value is wrong.
  expected<void> validate() const;

  friend bool operator==(const cluster_config&, const cluster_config&) = default;
};

/// Reads `cluster:`; throws config::error (the reader's idiom).
/// preferred_shards is a list of shard numbers and ranges: [0, 1, "4-7"].
void load(cluster_config& cfg, config::section s);

} // namespace imeilock::cluster
