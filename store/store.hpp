#pragma once
// The durable store (DESIGN §5): one writer thread with group commit, reader
// connections for everyone else, over one of two backends:
//   sqlite      (default) an embedded SQLite file in WAL mode (store/sqlite.cpp);
//   postgresql  a PostgreSQL server through libpq (store/postgres.cpp), the
//               shared store of more than one node (DESIGN §6).
//
//   auto db = store::open(cfg);                  // opens, migrates, starts the writer
//   if (!db) return db.error();                  // store::ec, naming the file or server
//   (*db)->submit(std::move(chg), [](bool ok) { ... });  // done runs on the writer thread
//   auto sim = (*db)->get_sim("8944...");        // any thread
//
// Durability: `done(true)` runs only after COMMIT returned. SQLite: WAL +
// synchronous=NORMAL by default: a commit is in the WAL (write(2) done), so a
// process crash (kill -9) loses no acknowledged change; a power loss may lose
// the last commits unless `synchronous_full` fsyncs the WAL on every commit.
// PostgreSQL: what the server's settings promise (synchronous_commit).
//
// Outage (PostgreSQL): when the database cannot be reached, changes get
// done(false), reads throw store::unavailable, `stats::connected` is false
// and one line is logged per change of state; the writer reconnects with a
// backoff (100 ms doubling to 5 s) and serves again when the server is back.
// An SQLite store is always connected.
//
// Fencing (the hook for more than one node): set_fence() installs a check
// that runs inside every committing transaction, before COMMIT, and can veto
// it (see fence_fn).
//
// No CAF, no prometheus: counters are plain atomics (`store::stats`) and the
// commit latency is reported through `on_commit`, both read by actors/.
//
// It stores the types every layer uses (lock::sim_record, orders::order); the
// columns and row readers of both backends are generated from their field
// lists (lock/sim.hpp, orders/order.hpp).

#include "common/error.hpp"
#include "lock/sim.hpp"
#include "lock/types.hpp"
#include "orders/order.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace imeilock::store {

/// Why the store could not be opened (store::open; see common/error.hpp for
/// the other layers). Every message names the file or the server.
enum class ec : std::uint8_t {
  /// The database cannot be opened or reached: a file that cannot be created
  /// or read, a PostgreSQL server that is down or refuses the login.
  unreachable = 1,
  /// The settings cannot be used: the PostgreSQL connection string's file is
  /// missing, unreadable, or readable by everyone (it holds a password).
  bad_settings,
  /// The database was written by a newer daemon (its schema version is
  /// higher than store::schema_version); nothing was changed.
  newer_schema,
  /// Migrating to this daemon's schema, or preparing its statements, failed;
  /// the migration was rolled back.
  migration_failed,
};

constexpr std::string_view to_string(ec e) {
  switch (e) {
    case ec::unreachable:
      return "unreachable";
    case ec::bad_settings:
      return "bad_settings";
    case ec::newer_schema:
      return "newer_schema";
    case ec::migration_failed:
      return "migration_failed";
  }
  return "unknown";
}

} // namespace imeilock::store

template <>
struct imeilock::error_category<imeilock::store::ec> {
  static constexpr std::string_view name = "store";
};

namespace imeilock::store {

/// One transition of one SIM (R14).
struct audit_record {
  std::uint64_t id = 0; ///< assigned by the store (ignored on write)
  std::string iccid;
  std::int64_t at_ms = 0;
  std::string cause;
  lock::sim_state before;
  lock::sim_state after;
  lock::device_id imei = lock::no_device;
  std::string detail;
};

/// A lock-state write for an existing SIM (identity untouched).
struct state_update {
  std::string iccid;
  lock::sim_state state;
};

/// The activity of an existing SIM (the write-behind of lock::sim_activity):
/// a SIM no longer in the store is skipped, not an error.
struct activity_update {
  std::string iccid;
  lock::sim_activity activity;
};

/// A bulk order job (POST /v1/orders:bulk) as the store keeps it. The store
/// does not read `spec` or `refusals` (the job runner's JSON, actors/jobs.cpp);
/// `state` is the runner's enumeration as an integer (0: running).
struct job_record {
  std::uint64_t id = 0; ///< > 0, chosen by the runner
  int state = 0;
  std::string spec; ///< the order and the selector; written once, at creation
  std::int64_t created_at_ms = 0;
  std::int64_t updated_at_ms = 0;
  std::int64_t finished_at_ms = 0; ///< 0 while running
  std::string after_iccid;         ///< every SIM up to this ICCID is done
  std::uint64_t total = 0;
  std::uint64_t processed = 0;
  std::uint64_t placed = 0;
  std::uint64_t refused = 0;
  std::string refusals; ///< why SIMs were refused (reasons counted, first ICCIDs)
};

/// One ICCID of a job's explicit list (job_iccids).
struct job_iccid {
  std::uint64_t job_id = 0;
  std::string iccid;
};

/// An order placed by a job, committed with the order itself: at most one per
/// job and SIM (the table's key), which is what keeps a resumed job from
/// placing an order twice.
struct job_order_link {
  std::uint64_t job_id = 0;
  std::string iccid;
  std::uint64_t order_id = 0;
};

/// The orders a job placed, by where they are now.
struct job_order_counts {
  std::uint64_t open = 0; ///< queued or submitted
  std::uint64_t completed = 0;
  std::uint64_t failed = 0;
};

/// The fleet overview's reads (GET /v1/fleet): counts and the latest events,
/// each one query on an index or a group-by.
struct fleet_counts {
  /// SIMs of one network in one lock and bar state.
  struct sims_in_state {
    std::string network;
    lock::lock_state lock = lock::lock_state::off;
    lock::bar_state bar = lock::bar_state::none;
    std::uint64_t sims = 0;
  };
  /// Open orders of one network.
  struct open_orders {
    std::string network;
    std::uint64_t queued = 0;    ///< waiting for their turn (order_status::queued)
    std::uint64_t submitted = 0; ///< sent, waiting for their lead time (in flight)
  };
  std::vector<sims_in_state> sims; ///< every (network, lock, bar) with at least one SIM
  std::vector<open_orders> orders; ///< networks with open orders
  /// Violations per hour since `since_ms`: [0] is the hour starting at since_ms.
  std::vector<std::uint64_t> violations_per_hour;
  std::vector<audit_record> latest_violations; ///< newest first (the R7 audit records)
  std::vector<audit_record> latest_bars;       ///< newest first (order_completed:bar)
};

/// Everything one caller wants committed atomically. The writer commits many
/// changes in one transaction (group commit); each change is all-or-nothing.
struct change {
  std::vector<lock::sim_record> sims;      ///< upserts; `imsis` replaces the SIM's IMSI set
  std::vector<state_update> states;        ///< lock state of existing SIMs
  std::vector<orders::order> orders;       ///< insert or replace by id (`imsis` not stored)
  std::vector<audit_record> audits;        ///< appended
  std::vector<activity_update> activities; ///< when SIMs were last observed (write-behind)
  std::vector<job_record> new_jobs;        ///< inserted (all columns)
  std::vector<job_iccid> job_iccids;       ///< inserted
  std::vector<job_record> job_updates;     ///< progress of existing jobs (all but spec, created_at)
  std::vector<job_order_link>
      job_orders; ///< inserted; a second link for a job and SIM fails the change
  /// The shard lease this change was made under (more than one node, DESIGN
  /// §6): the fence (set_fence) checks it inside the committing transaction.
  /// shard -1: no claim (one node).
  std::int64_t shard = -1;
  std::int64_t epoch = 0; ///< the lease's epoch (fencing token) when shard >= 0
  /// More than one node: the handoff inbox entries (cluster_inbox ids,
  /// cluster/inbox.hpp) this change applies, deleted in its transaction.
  /// Each must still be there, else the change fails (it was applied
  /// already: never twice). PostgreSQL only (SQLite fails the change).
  std::vector<std::int64_t> inbox_done;
  bool empty() const {
    return sims.empty() && states.empty() && orders.empty() && audits.empty() &&
           activities.empty() && new_jobs.empty() && job_iccids.empty() && job_updates.empty() &&
           job_orders.empty() && inbox_done.empty();
  }
};

/// Called once per change, on the writer thread, after the transaction that
/// holds it committed (true) or was rolled back (false). Must not block.
using done_fn = std::function<void(bool ok)>;

/// One SIM as the startup loader hands it out. Views are valid only during
/// the callback.
struct inventory_row {
  std::string_view iccid;
  std::string_view network;
  std::span<const std::uint64_t> imsis;
  lock::sim_state state;
  lock::sim_activity activity;
};

/// Called with loaded SIMs a batch at a time (views valid only during the
/// call): the startup loader's consumer can work on many rows at once.
using inventory_batch_fn = std::function<void(std::span<const inventory_row>)>;

/// Which database the store keeps its state in.
enum class backend_kind { sqlite, postgresql };

/// PostgreSQL settings (`store.postgresql`).
struct postgresql_config {
  /// A libpq connection string ("host=/run/postgresql dbname=imeilock" or a
  /// postgresql:// URI). Exactly one of conninfo and conninfo_file is set.
  std::string conninfo;
  /// A file holding the connection string (for the password): read at open,
  /// refused when readable by everyone.
  std::string conninfo_file;
};

/// The libpq connection string of `cfg` (conninfo, or conninfo_file read
/// now); throws std::runtime_error naming the file when it cannot be read or
/// is readable by everyone. The lease manager of a cluster node connects
/// with it too.
std::string resolve_conninfo(const postgresql_config& cfg);

/// Store settings (the `store` part of sim_layer_config).
struct store_config {
  /// Where the state lives (sqlite: `path`; postgresql: `postgresql`).
  backend_kind backend = backend_kind::sqlite;
  /// SQLite database file; created if missing. ":memory:" is not supported (WAL).
  std::string path = "imeilockd.db";
  /// false: synchronous=NORMAL (survives kill -9, not power loss);
  /// true: synchronous=FULL (fsync per group commit, survives power loss).
  /// SQLite only (PostgreSQL: the server's synchronous_commit).
  bool synchronous_full = false;
  /// The PostgreSQL server (backend postgresql).
  postgresql_config postgresql;
  /// Changes waiting for the writer beyond which submit() refuses (overload).
  std::size_t max_queue = 65536;
  /// submit() also refuses while the oldest change waiting for the writer has
  /// waited longer than this (0: only max_queue counts). A queue bounded by
  /// count alone holds minutes of work when the disk is slow, and answers
  /// that late are for peers that gave up long ago; this bounds it in time.
  std::chrono::milliseconds max_queue_wait{2000};
  /// Most changes committed in one transaction.
  std::size_t max_batch = 4096;
  /// Reader connections (concurrent readers from API/actor threads).
  std::size_t readers = 2;
  /// How long a connection waits for a lock held by another one (SQLite:
  /// busy_timeout; PostgreSQL: lock_timeout).
  std::chrono::milliseconds busy_timeout{5000};
  /// SQLite: the WAL's length (pages) past which the writer copies into the
  /// database file itself what the checkpointer thread has not yet, so that
  /// the next transaction writes the WAL from its start again: the WAL stays
  /// below about this many pages plus one group commit (16,384: 64 MB of
  /// 4 KB pages). Below it the writer never checkpoints (0: after every commit).
  int wal_max_pages = 16384;
  /// Test knob, 0 in production: the writer sleeps this long before each group
  /// commit, so the store commits at most max_batch / commit_delay changes/s.
  /// It stands for a slow disk in the overload tests (bench/overload_soak.py),
  /// where an fsync on the test machine's disk or tmpfs is not slow.
  std::chrono::milliseconds commit_delay{0};
};

/// Counters for the metrics layer; monotonic unless said otherwise.
struct stats {
  std::atomic<std::uint64_t> commits{0};         ///< transactions committed
  std::atomic<std::uint64_t> commit_failures{0}; ///< transactions rolled back
  std::atomic<std::uint64_t> changes_committed{0};
  std::atomic<std::uint64_t> changes_failed{0};  ///< done(false) for a store error
  std::atomic<std::uint64_t> changes_refused{0}; ///< submit() over max_queue
  std::atomic<std::uint64_t> queue_depth{0};     ///< gauge: changes waiting
  std::atomic<std::uint64_t> disconnects{0};     ///< times the database became unreachable
  std::atomic<bool> connected{true}; ///< flag: the writer reaches the database (SQLite: always)
};

/// Thrown by a read when the database cannot be reached (a PostgreSQL
/// outage); the API answers it with 503 (imeilock::unavailable_error).
struct unavailable : unavailable_error {
  using unavailable_error::unavailable_error;
};

/// Runs `sql` (the backend's placeholders: ?1 for SQLite, $1 for PostgreSQL)
/// with text parameters inside the transaction being committed; the first
/// column of its first row, nullopt when it returns no row. Throws on an
/// error (the transaction then fails).
using txn_query = std::function<std::optional<std::string>(const std::string& sql,
                                                           const std::vector<std::string>& params)>;

/// The fencing hook (the cluster part, DESIGN §6): called on the writer thread
/// inside every committing transaction, after the batch's statements and right
/// before COMMIT, with the changes in it and a way to query in that very
/// transaction (e.g. "SELECT epoch = $2 FROM leases WHERE shard = $1 FOR SHARE").
/// Returning false (or throwing) rolls the transaction back: every change of
/// the batch gets done(false) and nothing of it is visible to anyone.
using fence_fn = std::function<bool(std::span<const change* const> batch, const txn_query& query)>;

class store;

/// Opens (creating and migrating) the database and starts the writer; an
/// error (store::ec) naming the file or server when it cannot be opened (a
/// PostgreSQL server down at startup included).
expected<std::unique_ptr<store>> open(store_config cfg);

/// The store. Thread-safe: submit() and every read may be called from any
/// thread. Made by open(); it neither moves nor copies (the writer thread
/// holds it).
class store {
public:
  /// Commits what is queued, then stops the writer.
  ~store();
  store(const store&) = delete;
  store& operator=(const store&) = delete;

  /// The schema version this code writes (SQLite: PRAGMA user_version;
  /// PostgreSQL: the schema_version table).
  static constexpr int schema_version = 7;

  /// Queues `chg`; `done` runs exactly once on the writer thread. Returns false
  /// (and runs done(false) before returning) when the queue is full or the
  /// store is stopping.
  bool submit(change chg, done_fn done);

  /// Blocks until everything submitted before this call is committed or failed.
  void flush();

  /// A new order id, unique for the life of the database, also across nodes
  /// sharing it. SQLite: a counter initialised from max(orders.id) at open.
  /// PostgreSQL: ids come in blocks of `order_id_block` reserved in the
  /// database (meta row next_order_id), the next block reserved when half of
  /// the current one is used, so two nodes never hand out the same id (ids
  /// are unique and increasing per node, not dense: a node that stops leaves
  /// the rest of its block unused). An id is never handed out unreserved:
  /// when none is left and the database cannot be reached, it waits and
  /// retries (at most once a second) until the database answers; an order
  /// could not be committed before that anyway. Any thread.
  std::uint64_t allocate_order_id();
  /// Order ids reserved at once from a shared (PostgreSQL) database.
  static constexpr std::uint64_t order_id_block = 1000;

  // -- Reads (committed state; reader connections; any thread) ---------------
  // Each throws store::unavailable while the database cannot be reached.
  std::optional<lock::sim_record> get_sim(const std::string& iccid);
  /// SIMs ordered by ICCID, starting after `cursor` (an ICCID, empty: first).
  std::vector<lock::sim_record> list_sims(const lock::sim_filter& filter, const std::string& cursor,
                                          std::size_t limit);
  std::optional<orders::order> get_order(std::uint64_t id);
  /// Orders of one SIM, newest first.
  std::vector<orders::order> list_orders(const std::string& iccid);
  /// Audit records of one SIM, newest first, at most `limit`.
  std::vector<audit_record> list_events(const std::string& iccid, std::size_t limit);
  /// The ICCID owning `imsi`, if any.
  std::optional<std::string> iccid_of(std::uint64_t imsi);
  /// Orders still queued or submitted (startup: resume them).
  std::vector<orders::order> open_orders();
  /// Calls `fn` for every SIM (startup: build the compact inventory).
  void load_inventory(const std::function<void(const inventory_row&)>& fn);
  /// load_inventory() a batch of SIMs at a time (SQLite: read by several
  /// threads, so the batches come in no particular order; PostgreSQL: batches
  /// of one SIM, in ICCID order). Nothing may write meanwhile (startup).
  void load_inventory_batches(const inventory_batch_fn& fn);
  /// Calls `fn` for every SIM whose lowest IMSI ends in `first`..`last` (its
  /// last four digits, inclusive: the SIMs of one cluster shard,
  /// cluster::suffix_range), with all its IMSIs. SIMs without an IMSI are in
  /// no shard.
  void load_inventory_suffixes(std::uint32_t first, std::uint32_t last,
                               const std::function<void(const inventory_row&)>& fn);
  /// Number of SIMs in the database.
  std::uint64_t count_sims();
  /// Number of SIMs matching `filter`.
  std::uint64_t count_sims(const lock::sim_filter& filter);

  // -- Bulk jobs (actors/jobs.hpp) -------------------------------------------------
  std::optional<job_record> get_job(std::uint64_t id);
  /// Newest first, at most `limit`; only those in `state` when given.
  std::vector<job_record> list_jobs(std::optional<int> state, std::size_t limit);
  /// The largest job id, 0 when none.
  std::uint64_t max_job_id();
  /// A job's explicit ICCIDs after `after`, in order, at most `limit`.
  std::vector<std::string> job_iccids(std::uint64_t job_id, const std::string& after,
                                      std::size_t limit);
  /// The orders job `job_id` placed, by status.
  job_order_counts job_orders(std::uint64_t job_id);
  /// Whether job `job_id` placed an order for `iccid`.
  bool job_placed(std::uint64_t job_id, const std::string& iccid);
  /// The fleet overview: SIMs by network, lock and bar; open orders by
  /// network; violations per hour for `hours` hours from `since_ms`; the
  /// latest `latest` violations and completed bars since `since_ms`.
  fleet_counts fleet(std::int64_t since_ms, std::size_t hours, std::size_t latest);

  /// Counters for metrics.
  const stats& counters() const { return stats_; }
  /// Called on the writer thread after every transaction: seconds spent,
  /// changes in it, committed or not. Set before the first submit().
  void set_commit_observer(std::function<void(double seconds, std::size_t changes, bool ok)> fn);

  /// Installs the fencing hook (see fence_fn). Set before the first submit().
  void set_fence(fence_fn fn);

  /// Runs one statement on the writer connection between transactions
  /// (tests: "PRAGMA max_page_count=...", "PRAGMA query_only=1",
  /// "SET default_transaction_read_only = on").
  void exec_on_writer_for_testing(const std::string& sql);

  /// The backend's name ("sqlite", "postgresql") and where it stores
  /// (the file, or the server without its password), for logs.
  const std::string& describe() const;

private:
  friend expected<std::unique_ptr<store>> open(store_config cfg);
  /// Not opened yet: open() connects the backend, then starts the writer.
  explicit store(store_config cfg);

  struct impl;
  std::unique_ptr<impl> impl_;
  stats stats_;
  std::atomic<std::uint64_t> next_order_id_{1}; ///< SQLite
};

} // namespace imeilock::store
