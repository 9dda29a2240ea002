#pragma once
// Bulk order jobs on a cluster node (docs/cluster.md, "Bulk jobs on more than
// one node"): the job_service of a node whose SIM layer serves some of the
// cluster's shards. No CAF: one thread of its own.
//
// A job is created on any node (its row and ICCIDs in the shared store, its
// id reserved from the database). Every node's runner works on the running
// jobs, oldest first, and places the orders of the SIMs of the shards it
// serves now, a shard at a time, through sim_service::place_order (the path
// of an operator's single order: the same rules, rate limits, and the order's
// commit fenced by the shard's lease). Each shard's part of a job keeps its
// cursor and counters in a row of its own (cluster::job_store), written by the
// shard's owner after each page under the lease: a shard taken over is
// continued by its new owner from the last page written, and the job-to-order
// link committed with each order (one per job and SIM) keeps any SIM from
// getting a second order of the job. A job's progress is the sum of its
// parts, read from the store on any node; it is completed once every shard's
// part is done; a cancel ends the job's row, which every runner reads before
// each window of orders.
//
// Idle, the thread waits: woken by a job created here or a shard gained, and
// otherwise every `poll` (jobs created on other nodes, cancels).

#include "actors/jobs.hpp"
#include "actors/ports.hpp"
#include "cluster/jobs.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

namespace imeilock::actors {

/// How a cluster node's job runner paces itself (not in imeilockd.yaml).
struct cluster_job_config {
  job_runner_config base;
  /// How often an idle runner looks for jobs created, and cancels made, on
  /// other nodes.
  std::chrono::milliseconds poll{1000};
};

class cluster_job_runner final : public job_service {
public:
  /// The shards this node serves now, with the epoch of their lease.
  using serving_fn = std::function<std::vector<std::pair<std::uint32_t, std::int64_t>>()>;
  /// Whether `shard` is still served at `epoch`.
  using still_fn = std::function<bool(std::uint32_t shard, std::int64_t epoch)>;

  /// `db`, `sims` and `parts` must outlive the runner.
  cluster_job_runner(store::store& db, sim_service& sims, cluster::job_store& parts,
                     std::uint32_t shards, serving_fn serving, still_fn still,
                     cluster_job_config cfg = {});
  ~cluster_job_runner() override;
  cluster_job_runner(const cluster_job_runner&) = delete;
  cluster_job_runner& operator=(const cluster_job_runner&) = delete;

  void start();
  /// Stops after the orders in hand are answered; the jobs stay running in
  /// the store. Idempotent.
  void stop();
  /// A shard was gained or a job created: look now rather than at the next poll.
  void poke();

  // job_service
  void create_job(order_request order, job_selector selector,
                  std::function<void(job_result)> done) override;
  void get_job(std::uint64_t id, std::function<void(std::optional<job_info>)> done) override;
  void list_jobs(bool running_only, std::size_t limit,
                 std::function<void(std::vector<job_info>)> done) override;
  void cancel_job(std::uint64_t id, std::function<void(job_result)> done) override;

private:
  /// How a shard's part of a job ended.
  enum class part_end : std::uint8_t { done, lost, cancelled, stopping, failed };

  void run();
  /// One look at the running jobs: runs the parts of the shards served here.
  /// Whether any SIM was processed.
  bool round();
  part_end run_part(const store::job_record& rec, const job_info& spec, cluster::job_part part,
                    std::int64_t epoch);
  /// Ends job `rec` as completed when every shard's part is done.
  void complete_if_done(const store::job_record& rec);
  /// `rec` with its parts summed (state completed once every part is done);
  /// throws what the reads throw.
  job_info aggregate(const store::job_record& rec, bool with_orders);
  bool stopping();
  /// Waits `d` or until stop(); false when stopping.
  bool pause(std::chrono::milliseconds d);

  store::store& db_;
  sim_service& sims_;
  cluster::job_store& parts_;
  std::uint32_t shards_;
  serving_fn serving_;
  still_fn still_;
  cluster_job_config cfg_;

  std::mutex mtx_;
  std::condition_variable cv_;
  bool poked_ = false;
  bool stopping_ = false;
  bool started_ = false;
  std::thread thread_;
};

} // namespace imeilock::actors
