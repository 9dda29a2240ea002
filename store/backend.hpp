#pragma once
// Inside store/: what a database backend provides to the store's writer loop
// (store.cpp). The queue, group commit batching, overload refusal, counters,
// outage detection and reconnect backoff live in store.cpp once; a backend
// commits one batch, reads, and reconnects when asked.
//
//   sqlite.cpp    sqlite_backend   (an embedded file, WAL)
//   postgres.cpp  postgres_backend (a server through libpq)

#include "store/store.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace imeilock::store::detail {

/// Turns the rows of the inventory queries (a SIM joined with its IMSIs, one
/// row per IMSI, ordered by ICCID) into one inventory_row per SIM, for either
/// backend's row type:
///
///   inventory_grouper g{fn};
///   while (next row r)
///     g.add(r.iccid, [&] { return read_sim(r); }, r.imsi or nullopt);
///   g.finish();
class inventory_grouper {
public:
  explicit inventory_grouper(const std::function<void(const inventory_row&)>& fn) : fn_{fn} {}

  /// One row: `read()` makes the SIM from its first row; a NULL IMSI (a SIM
  /// without one) adds none.
  template <class Read>
  void add(std::string_view iccid, Read&& read, std::optional<std::uint64_t> imsi) {
    if (!have_ || iccid != sim_.iccid) {
      finish();
      sim_ = std::forward<Read>(read)();
      have_ = true;
    }
    if (imsi)
      sim_.imsis.push_back(*imsi);
  }

  /// Hands over the SIM of the last rows.
  void finish() {
    if (have_)
      fn_(inventory_row{sim_.iccid, sim_.network, sim_.imsis, sim_.state, sim_.activity});
    have_ = false;
  }

private:
  const std::function<void(const inventory_row&)>& fn_;
  lock::sim_record sim_;
  bool have_ = false;
};

/// What one try at committing a batch came to.
struct batch_result {
  bool committed = false;       ///< the transaction committed (ok[] says which changes are in)
  bool connection_lost = false; ///< failed because the database cannot be reached
  std::string error;            ///< why it failed (for the log)
};

class backend {
public:
  virtual ~backend() = default;

  /// "sqlite /path/file.db", "postgresql host=... dbname=..." (no password).
  virtual const std::string& describe() const = 0;

  // -- Writer thread only ------------------------------------------------------
  /// Commits `batch` in one transaction. Sets ok[i] = false for a change that
  /// was rejected alone (a constraint); the others commit. Runs `fence` (if
  /// set) inside the transaction before COMMIT.
  virtual batch_result commit(std::span<const change* const> batch, std::vector<bool>& ok,
                              const fence_fn& fence) = 0;
  /// Whether the writer's connection works (a cheap round trip; SQLite: true).
  virtual bool ping() = 0;
  /// Reconnects the writer (and lets readers reconnect); an error while the
  /// database still cannot be reached.
  virtual expected<void> reconnect() = 0;
  /// Runs `sql` on the writer connection between transactions (tests).
  virtual void exec_for_testing(const std::string& sql) = 0;
  /// Whether the store must probe an idle connection (a server can go away).
  virtual bool needs_probe() const = 0;

  // -- Any thread (reader connections) ------------------------------------------
  virtual std::uint64_t max_order_id() = 0;
  /// Reserves `n` consecutive order ids that no other store on this database
  /// hands out (several nodes share a PostgreSQL database); the first of them.
  /// nullopt: the backend has one user (SQLite), the store counts from
  /// max_order_id(). Throws store::unavailable when the database cannot be reached.
  virtual std::optional<std::uint64_t> reserve_order_ids(std::uint64_t n) = 0;
  virtual std::optional<lock::sim_record> get_sim(const std::string& iccid) = 0;
  virtual std::vector<lock::sim_record> list_sims(const lock::sim_filter& filter,
                                                  const std::string& cursor, std::size_t limit) = 0;
  virtual std::optional<orders::order> get_order(std::uint64_t id) = 0;
  virtual std::vector<orders::order> list_orders(const std::string& iccid) = 0;
  virtual std::vector<audit_record> list_events(const std::string& iccid, std::size_t limit) = 0;
  virtual std::optional<std::string> iccid_of(std::uint64_t imsi) = 0;
  virtual std::vector<orders::order> open_orders() = 0;
  virtual void load_inventory(const std::function<void(const inventory_row&)>& fn) = 0;
  /// Batches of one SIM unless a backend reads faster.
  virtual void load_inventory_batches(const inventory_batch_fn& fn) {
    load_inventory([&](const inventory_row& r) { fn(std::span<const inventory_row>{&r, 1}); });
  }
  virtual void load_inventory_suffixes(std::uint32_t first, std::uint32_t last,
                                       const std::function<void(const inventory_row&)>& fn) = 0;
  virtual std::uint64_t count_sims() = 0;
  virtual std::uint64_t count_sims(const lock::sim_filter& filter) = 0;
  virtual std::optional<job_record> get_job(std::uint64_t id) = 0;
  virtual std::vector<job_record> list_jobs(std::optional<int> state, std::size_t limit) = 0;
  virtual std::uint64_t max_job_id() = 0;
  virtual std::vector<std::string> job_iccids(std::uint64_t job_id, const std::string& after,
                                              std::size_t limit) = 0;
  virtual job_order_counts job_orders(std::uint64_t job_id) = 0;
  virtual bool job_placed(std::uint64_t job_id, const std::string& iccid) = 0;
  virtual fleet_counts fleet(std::int64_t since_ms, std::size_t hours, std::size_t latest) = 0;
};

/// Open, migrate, connect the readers; an error (store::ec) naming the
/// database when that fails. `counters.connected` is read by the readers.
expected<std::unique_ptr<backend>> open_sqlite(const store_config& cfg, stats& counters);
expected<std::unique_ptr<backend>> open_postgres(const store_config& cfg, stats& counters);

} // namespace imeilock::store::detail
