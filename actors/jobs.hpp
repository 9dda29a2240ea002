#pragma once
// Bulk order jobs (POST /v1/orders:bulk): one order type for many SIMs, placed
// one SIM at a time through sim_service::place_order, the path of an
// operator's single order (the same rules, validation and rate limits; no
// second way to the scheduler). No CAF: one thread of its own.
//
//   job_runner jobs{layer.db(), layer.service()};
//   jobs.start();   // resumes the jobs a previous run left running
//   ...             // job_service for the API
//   jobs.stop();    // before the SIM layer stops; running jobs stay running in the store
//
// Durable: a job and its progress are in the store (jobs, job_iccids); each
// order it places is linked to it in the commit of the order itself
// (job_orders, one per job and SIM). Progress is written after each page of
// SIMs; a daemon killed in the middle of a page resumes at that page and skips
// the SIMs the job already has an order for, so no order is placed twice.
//
// Bounded memory: a job by filter pages through the SIMs by ICCID, a job by
// list through its stored ICCIDs; a page at a time. A job also waits while
// max_open_orders of its orders are queued or submitted, so a million-SIM job
// does not pile a million orders into the scheduler.

#include "actors/ports.hpp"

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace imeilock::store {
class store;
struct job_record;
} // namespace imeilock::store

namespace imeilock::actors {

/// How a job runner paces itself (not in imeilockd.yaml: tests set them).
struct job_runner_config {
  /// SIMs read and placed per page; progress is written after each page.
  std::size_t page = 200;
  /// Orders handed to the SIM layer at once.
  std::size_t window = 16;
  /// A job waits while this many of its orders are queued or submitted.
  std::uint64_t max_open_orders = 1000;
  /// Pause after the SIM layer said overloaded (and while waiting for open orders).
  std::chrono::milliseconds pause{100};
  /// Tries per SIM while the SIM layer says overloaded or the store failed;
  /// then the SIM is refused with that reason.
  std::uint32_t max_tries = 100;
  /// Refused SIMs kept with their reason (every reason is counted).
  std::size_t kept_refusals = 100;
  /// Most ICCIDs in a job by list.
  std::size_t max_iccids = 1'000'000;
};

class job_runner final : public job_service {
public:
  /// `db` and `sims` must outlive the runner.
  job_runner(store::store& db, sim_service& sims, job_runner_config cfg = {});
  /// Calls stop().
  ~job_runner() override;
  job_runner(const job_runner&) = delete;
  job_runner& operator=(const job_runner&) = delete;

  /// Reads the jobs left running and starts the runner's thread. Throws what
  /// the store's reads throw.
  void start();
  /// Stops after the orders in hand are answered; running jobs stay running
  /// (the next start() resumes them). Idempotent.
  void stop();

  // job_service
  void create_job(order_request order, job_selector selector,
                  std::function<void(job_result)> done) override;
  void get_job(std::uint64_t id, std::function<void(std::optional<job_info>)> done) override;
  void list_jobs(bool running_only, std::size_t limit,
                 std::function<void(std::vector<job_info>)> done) override;
  void cancel_job(std::uint64_t id, std::function<void(job_result)> done) override;

  /// The JSON `spec` column of a job (order and selector) and its inverse;
  /// nullopt for a text that is not one (a hand-edited store).
  static std::string encode_spec(const order_request& order, const sim_filter& filter,
                                 bool by_list);
  static std::optional<job_info> decode_spec(const std::string& spec);
  /// The JSON `refusals` column (reasons counted, the first refused SIMs) and
  /// its inverse, which adds to `reasons` and `first` (an unreadable text
  /// reads as none).
  static std::string encode_refusals(const std::map<std::string, std::uint64_t>& reasons,
                                     const std::vector<job_refusal>& first);
  static void decode_refusals(const std::string& text,
                              std::map<std::string, std::uint64_t>& reasons,
                              std::vector<job_refusal>& first);
  /// A job_info of `rec` (its spec decoded, its refusals sorted by count);
  /// without the orders' counts.
  static job_info info_of(const store::job_record& rec);

  // What the cluster's runner (cluster_jobs.hpp) shares with this one.

  /// Sorts a job's ICCID list and drops repeats; the refusal when more than
  /// `max` ICCIDs are left.
  static std::optional<std::string> normalize_list(std::vector<std::string>& iccids,
                                                   std::size_t max);
  /// Adds the counts of the job's orders by state (open, completed, failed).
  static void add_order_counts(store::store& db, job_info& info);
  /// The reason a refused order is counted under.
  static std::string reason_of(const write_result& r);
  /// Now, unix ms (a job's timestamps).
  static std::int64_t wall_ms();

private:
  struct active; ///< the job being run (jobs.cpp)

  void run();
  /// Runs job `id` until it is completed or cancelled (true), or until the
  /// runner or the SIM layer stops (false: it stays running).
  bool run_job(std::uint64_t id, bool resumed);
  /// Writes the running job's progress, retrying until it is committed;
  /// false when the runner stops first.
  bool write_progress();
  job_info info_of(const store::job_record& rec, bool with_orders);

  store::store& db_;
  sim_service& sims_;
  job_runner_config cfg_;

  std::mutex mtx_;
  std::condition_variable cv_;
  std::deque<std::uint64_t> queue_;    ///< running jobs in order, the first is the one run
  std::shared_ptr<active> current_;    ///< guarded by mtx_
  std::vector<std::uint64_t> resumed_; ///< jobs found running at start()
  std::uint64_t next_id_ = 1;          ///< guarded by mtx_
  bool stopping_ = false;
  bool started_ = false;
  std::thread thread_;
};

} // namespace imeilock::actors
