#pragma once
// Bulk jobs (POST /v1/orders:bulk) on more than one node (docs/cluster.md,
// "Bulk jobs on more than one node"): the rows a job runner of a cluster node
// reads and writes in PostgreSQL beside the store's.
//
// A job is created on any node: its row in the store's `jobs` table (its id
// reserved from the database, meta row `next_job_id`, so nodes never hand
// out the same one) and its ICCIDs (`job_iccids`), one transaction. Each
// node's runner then works on the job's SIMs of the shards it serves, a
// shard at a time: one row per job and shard in `cluster_job_parts`
// (cluster_schema_version 3) with the part's cursor and counters, written
// only by the shard's owner and fenced by its lease (save()), so two nodes
// never write the same row and a deposed owner writes nothing. The job's
// progress is the sum of its parts; it is completed once every shard's part
// is done; cancel is the job row's state, which every runner reads.
//
//   cluster::job_store jobs{conninfo, node_id};
//   auto id = jobs.create(row, iccids);                // any node
//   auto sims = jobs.sims_by_list(id, bounds, true, after, 200);
//   jobs.save(part, epoch);                            // the shard's owner, fenced
//   jobs.end(id, cancelled, now_ms);                   // once: only a running job
//
// Thread-safe: one connection under a mutex, reconnected when it broke.

#include "cluster/leases.hpp"
#include "cluster/shard.hpp"
#include "common/error.hpp"

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace imeilock::cluster {

/// One shard's part of a bulk job (a cluster_job_parts row).
struct job_part {
  std::uint64_t job_id = 0;
  std::uint32_t shard = 0;
  bool done = false;       ///< every SIM of the shard is placed or refused
  std::string after_iccid; ///< every SIM of the shard up to this ICCID is done
  std::uint64_t processed = 0;
  std::uint64_t placed = 0;
  std::uint64_t refused = 0;
  std::string refusals; ///< the job runner's JSON (actors/jobs.cpp)
  std::int64_t updated_at_ms = 0;
  std::int64_t finished_at_ms = 0; ///< 0 while not done
  std::string node;                ///< the node that wrote it last
};

/// A new job's row in the store's `jobs` table (its id is reserved by create()).
struct new_job {
  int state = 0; ///< the runner's enumeration (0: running)
  std::string spec;
  std::int64_t created_at_ms = 0;
  std::int64_t finished_at_ms = 0;
  std::uint64_t total = 0;
  std::string refusals;
};

/// The SIMs a job by filter selects: the store's `sims` columns, as stored.
struct job_filter {
  std::optional<std::int64_t> lock;
  std::optional<std::int64_t> bar;
  std::optional<std::string> network;
  std::optional<bool> alerted;
};

/// One SIM of a shard's part of a job.
struct job_sim {
  std::string iccid;
  /// Its lowest IMSI's last four digits; -1: it has no IMSI or is not in the
  /// store (a job by list), so no shard holds it (shard 0's part takes it).
  int home_suffix = -1;
};

class job_store {
public:
  job_store(std::string conninfo, std::string node_id);
  ~job_store();
  job_store(const job_store&) = delete;
  job_store& operator=(const job_store&) = delete;

  /// Inserts the job and its ICCIDs in one transaction; its id.
  expected<std::uint64_t> create(const new_job& job, const std::vector<std::string>& iccids);
  /// The parts written so far of job `job_id` (a shard not begun has none).
  expected<std::vector<job_part>> parts(std::uint64_t job_id);
  /// Writes `part` (insert or replace) in a transaction fenced by the lease of
  /// its shard at `epoch`: ec::fenced when this node no longer holds it.
  expected<void> save(const job_part& part, std::int64_t epoch);
  /// Ends job `job_id` (state: the runner's enumeration) if it is still
  /// running: whether it did.
  expected<bool> end(std::uint64_t job_id, int state, std::int64_t at_ms);
  /// A job by list: its ICCIDs after `after` whose home suffix is in
  /// `bounds` (and, with `homeless`, those without one), in order.
  expected<std::vector<job_sim>> sims_by_list(std::uint64_t job_id, suffix_bounds bounds,
                                              bool homeless, const std::string& after,
                                              std::size_t limit);
  /// A job by filter: the SIMs `filter` selects after `after` whose home
  /// suffix is in `bounds` (with `homeless`, those without one too), in order.
  expected<std::vector<job_sim>> sims_by_filter(const job_filter& filter, suffix_bounds bounds,
                                                bool homeless, const std::string& after,
                                                std::size_t limit);

private:
  /// Runs f(conn) on the connection, connecting first; drops the connection
  /// when it broke.
  template <class F>
  auto with_conn(F&& f) -> decltype(f(static_cast<pg_conn*>(nullptr)));

  std::string conninfo_;
  std::string node_;
  std::mutex mtx_;
  pg_conn* conn_ = nullptr; ///< under mtx_
};

} // namespace imeilock::cluster
