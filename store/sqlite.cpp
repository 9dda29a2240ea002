// The SQLite backend: an embedded file in WAL mode, one writer connection,
// reader connections with query_only.

#include "common/log.hpp"
#include "store/backend.hpp"
#include "store/schema.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <span>
#include <stdexcept>
#include <thread>

namespace imeilock::store::detail {

namespace {

// -- A thin SQLite layer --------------------------------------------------------

/// A failed SQLite call; `code` is the extended result code.
struct sqlite_error : std::runtime_error {
  sqlite_error(int c, const std::string& what) : std::runtime_error(what), code(c) {}
  int code;
};

/// One prepared statement, reset after each use.
class statement {
public:
  statement(sqlite3* db, const char* sql, bool persistent) : db_(db) {
    const unsigned flags = persistent ? SQLITE_PREPARE_PERSISTENT : 0;
    int rc = sqlite3_prepare_v3(db, sql, -1, flags, &stmt_, nullptr);
    if (rc != SQLITE_OK)
      throw sqlite_error(rc, std::string("prepare: ") + sqlite3_errmsg(db) + ": " + sql);
  }
  ~statement() { sqlite3_finalize(stmt_); }
  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;

  statement& bind(int i, std::int64_t v) {
    check(sqlite3_bind_int64(stmt_, i, v));
    return *this;
  }
  statement& bind(int i, std::string_view v) {
    check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  /// bind() without SQLite's copy of the text: `v` must stay valid and
  /// unchanged until reset() (the writer's statements: each is reset right
  /// after its one step, while the change it binds from is alive).
  statement& bind_unowned(int i, std::string_view v) {
    check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC));
    return *this;
  }
  /// True while a row is available.
  bool step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW)
      return true;
    if (rc == SQLITE_DONE)
      return false;
    throw sqlite_error(sqlite3_extended_errcode(db_), sqlite3_errmsg(db_));
  }
  void run() {
    while (step()) {
    }
  }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  std::int64_t i64(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string_view text(int col) const {
    auto p = sqlite3_column_text(stmt_, col);
    if (p == nullptr)
      return {};
    return {reinterpret_cast<const char*>(p),
            static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col))};
  }
  bool is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

private:
  void check(int rc) {
    if (rc != SQLITE_OK)
      throw sqlite_error(rc, sqlite3_errmsg(db_));
  }
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

/// Resets a statement when the scope ends, whatever happened.
struct reset_guard {
  statement& s;
  ~reset_guard() { s.reset(); }
};

/// One connection with its cached statements (keyed by the SQL literal).
class connection {
public:
  connection(const std::string& path, bool create, std::chrono::milliseconds busy) {
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) {
      std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      sqlite3_close(db_);
      db_ = nullptr;
      throw sqlite_error(rc, "cannot open " + path + ": " + msg);
    }
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, static_cast<int>(busy.count()));
  }
  ~connection() {
    cache_.clear();
    sqlite3_close(db_);
  }
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  sqlite3* get() const { return db_; }

  void exec(const char* sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
      std::string msg = err ? err : sqlite3_errstr(rc);
      sqlite3_free(err);
      throw sqlite_error(sqlite3_extended_errcode(db_), msg + " (" + sql + ")");
    }
  }
  void exec(const std::string& sql) { exec(sql.c_str()); }

  /// The cached statement for a string literal.
  statement& prepare(const char* sql) {
    auto it = cache_.find(sql);
    if (it == cache_.end())
      it = cache_.emplace(sql, std::make_unique<statement>(db_, sql, true)).first;
    return *it->second;
  }

  std::int64_t scalar(const char* sql) {
    auto& s = prepare(sql);
    reset_guard g{s};
    return s.step() ? s.i64(0) : 0;
  }

private:
  sqlite3* db_ = nullptr;
  std::map<const char*, std::unique_ptr<statement>> cache_;
};

/// Errors after which the whole transaction is gone or the disk is unusable:
/// every change of the batch fails. Others (constraints) fail one change.
bool is_fatal(int code) {
  switch (code & 0xff) {
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_READONLY:
    case SQLITE_NOMEM:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_CORRUPT:
    case SQLITE_CANTOPEN:
    case SQLITE_NOTADB:
    case SQLITE_PROTOCOL:
      return true;
    default:
      return false;
  }
}

log::rate_limiter write_error_limiter{5, std::chrono::seconds{10}};

std::int64_t i64(std::uint64_t v) {
  return static_cast<std::int64_t>(v);
}

const generated_sql& q() {
  return sql(dialect::sqlite);
}

class sqlite_backend final : public backend {
private:
  /// Runs `fn` on a reader connection (round robin; waits if all are busy).
  template <class F>
  auto with_reader(F&& fn) {
    auto& r = *readers_[next_reader_.fetch_add(1, std::memory_order_relaxed) % readers_.size()];
    std::lock_guard g{r.mtx};
    return fn(*r.conn);
  }

public:
  sqlite_backend(const store_config& cfg) : cfg_(cfg), name_("sqlite " + cfg.path) {}

  /// Opens the writer, migrates, opens the readers; each message names the file.
  expected<void> open() {
    auto failed = [&](ec code, const std::exception& e) {
      return error{code, cfg_.path + ": " + e.what()};
    };
    try {
      writer_ = std::make_unique<connection>(cfg_.path, true, cfg_.busy_timeout);
      writer_->exec("PRAGMA journal_mode=WAL");
      writer_->exec(cfg_.synchronous_full ? "PRAGMA synchronous=FULL"
                                          : "PRAGMA synchronous=NORMAL");
      writer_->exec("PRAGMA foreign_keys=OFF");
      // The writer's page cache: SQLite's default is 2 MB. A durable change
      // touches a few random B-tree leaves (its SIM's row, its audit entry's
      // index), which at a million SIMs are mostly not among 2 MB of pages
      // and were read again (pread) for almost every change: 4.6 reads per
      // change. 64 MB holds about a million SIMs' rows; pages are allocated
      // only as they are read.
      writer_->exec("PRAGMA cache_size=-65536");
    } catch (const std::exception& e) {
      return failed(ec::unreachable, e);
    }
    if (auto migrated = migrate(); !migrated)
      return migrated;
    try {
      for (std::size_t i = 0; i < std::max<std::size_t>(1, cfg_.readers); ++i) {
        auto r = std::make_unique<reader>();
        r->conn = std::make_unique<connection>(cfg_.path, false, cfg_.busy_timeout);
        r->conn->exec("PRAGMA query_only=1");
        readers_.push_back(std::move(r));
      }
      // Checkpoints off the writer thread (see checkpoint_loop): the writer
      // only notes how long the WAL is after each commit.
      checkpointer_conn_ = std::make_unique<connection>(cfg_.path, false, cfg_.busy_timeout);
      checkpointer_conn_->exec(cfg_.synchronous_full ? "PRAGMA synchronous=FULL"
                                                     : "PRAGMA synchronous=NORMAL");
      sqlite3_wal_hook(writer_->get(), &sqlite_backend::on_wal_commit, this); // no autocheckpoint
      checkpointer_ = std::thread([this] { checkpoint_loop(); });
    } catch (const std::exception& e) {
      return failed(ec::unreachable, e);
    }
    return {};
  }

  ~sqlite_backend() override {
    if (checkpointer_.joinable()) {
      {
        std::lock_guard g{ckpt_signal_mtx_};
        ckpt_stop_ = true;
      }
      ckpt_signal_.notify_one();
      checkpointer_.join();
    }
    if (writer_)
      sqlite3_wal_hook(writer_->get(), nullptr, nullptr);
  }
  sqlite_backend(const sqlite_backend&) = delete;
  sqlite_backend& operator=(const sqlite_backend&) = delete;

  const std::string& describe() const override { return name_; }

  // -- Writer ---------------------------------------------------------------------

  batch_result commit(std::span<const change* const> batch, std::vector<bool>& ok,
                      const fence_fn& fence) override {
    batch_result r;
    auto result = attempt(batch, ok, false, fence, r.error);
    if (result == attempt_result::needs_savepoints)
      result = attempt(batch, ok, true, fence, r.error);
    r.committed = result == attempt_result::committed;
    if (r.committed)
      after_commit();
    return r;
  }

  bool ping() override { return true; }
  expected<void> reconnect() override { return {}; }
  bool needs_probe() const override { return false; }

  void exec_for_testing(const std::string& sql) override { writer_->exec(sql); }

  // -- Readers ----------------------------------------------------------------------

  std::optional<std::uint64_t> reserve_order_ids(std::uint64_t) override {
    return std::nullopt; // one process owns the file: the store's counter suffices
  }

  std::uint64_t max_order_id() override {
    return static_cast<std::uint64_t>(writer_->scalar(q().max_order_id.c_str()));
  }

  std::optional<lock::sim_record> get_sim(const std::string& iccid) override {
    return with_reader([&](connection& c) -> std::optional<lock::sim_record> {
      auto& s = c.prepare(q().select_sim.c_str());
      reset_guard g{s};
      s.bind(1, iccid);
      if (!s.step())
        return std::nullopt;
      auto r = read_sim(s);
      add_imsis(c, r);
      return r;
    });
  }

  std::vector<lock::sim_record> list_sims(const lock::sim_filter& filter, const std::string& cursor,
                                          std::size_t limit) override {
    std::vector<param> params;
    auto text = list_sims_query(dialect::sqlite, filter, params, cursor, limit);
    return with_reader([&](connection& c) {
      std::vector<lock::sim_record> out;
      statement s{c.get(), text.c_str(), false};
      for (std::size_t i = 0; i < params.size(); ++i) {
        if (params[i].is_text)
          s.bind(static_cast<int>(i + 1), std::string_view{params[i].text});
        else
          s.bind(static_cast<int>(i + 1), params[i].integer);
      }
      while (s.step())
        out.push_back(read_sim(s));
      for (auto& r : out)
        add_imsis(c, r);
      return out;
    });
  }

  std::optional<orders::order> get_order(std::uint64_t id) override {
    return with_reader([&](connection& c) -> std::optional<orders::order> {
      auto& s = c.prepare(q().get_order.c_str());
      reset_guard g{s};
      s.bind(1, i64(id));
      if (!s.step())
        return std::nullopt;
      return read_order(s);
    });
  }

  std::vector<orders::order> list_orders(const std::string& iccid) override {
    return with_reader([&](connection& c) {
      std::vector<orders::order> out;
      auto& s = c.prepare(q().orders_of_sim.c_str());
      reset_guard g{s};
      s.bind(1, iccid);
      while (s.step())
        out.push_back(read_order(s));
      return out;
    });
  }

  std::vector<orders::order> open_orders() override {
    return with_reader([&](connection& c) {
      std::vector<orders::order> out;
      auto& s = c.prepare(q().open_orders.c_str());
      reset_guard g{s};
      while (s.step())
        out.push_back(read_order(s));
      return out;
    });
  }

  std::vector<audit_record> list_events(const std::string& iccid, std::size_t limit) override {
    return with_reader([&](connection& c) {
      std::vector<audit_record> out;
      auto& s = c.prepare(q().list_events.c_str());
      reset_guard g{s};
      s.bind(1, iccid).bind(2, static_cast<std::int64_t>(limit));
      while (s.step())
        out.push_back(read_audit(s));
      return out;
    });
  }

  std::optional<std::string> iccid_of(std::uint64_t imsi) override {
    return with_reader([&](connection& c) -> std::optional<std::string> {
      auto& s = c.prepare(q().iccid_of.c_str());
      reset_guard g{s};
      s.bind(1, i64(imsi));
      if (!s.step())
        return std::nullopt;
      return std::string(s.text(0));
    });
  }

  std::uint64_t count_sims() override {
    return with_reader(
        [](connection& c) { return static_cast<std::uint64_t>(c.scalar(q().count_sims.c_str())); });
  }

  std::uint64_t count_sims(const lock::sim_filter& filter) override {
    std::vector<param> params;
    auto text = count_sims_query(dialect::sqlite, filter, params);
    return with_reader([&](connection& c) {
      statement s{c.get(), text.c_str(), false};
      for (std::size_t i = 0; i < params.size(); ++i) {
        if (params[i].is_text)
          s.bind(static_cast<int>(i + 1), std::string_view{params[i].text});
        else
          s.bind(static_cast<int>(i + 1), params[i].integer);
      }
      return s.step() ? static_cast<std::uint64_t>(s.i64(0)) : std::uint64_t{0};
    });
  }

  std::optional<job_record> get_job(std::uint64_t id) override {
    return with_reader([&](connection& c) -> std::optional<job_record> {
      auto& s = c.prepare(q().get_job.c_str());
      reset_guard g{s};
      s.bind(1, i64(id));
      if (!s.step())
        return std::nullopt;
      return read_job(s);
    });
  }

  std::vector<job_record> list_jobs(std::optional<int> state, std::size_t limit) override {
    return with_reader([&](connection& c) {
      std::vector<job_record> out;
      auto& s = c.prepare(state ? q().list_jobs_in_state.c_str() : q().list_jobs.c_str());
      reset_guard g{s};
      if (state)
        s.bind(1, static_cast<std::int64_t>(*state)).bind(2, static_cast<std::int64_t>(limit));
      else
        s.bind(1, static_cast<std::int64_t>(limit));
      while (s.step())
        out.push_back(read_job(s));
      return out;
    });
  }

  std::uint64_t max_job_id() override {
    return with_reader(
        [](connection& c) { return static_cast<std::uint64_t>(c.scalar(q().max_job_id.c_str())); });
  }

  std::vector<std::string> job_iccids(std::uint64_t job_id, const std::string& after,
                                      std::size_t limit) override {
    return with_reader([&](connection& c) {
      std::vector<std::string> out;
      auto& s = c.prepare(q().job_iccids.c_str());
      reset_guard g{s};
      s.bind(1, i64(job_id)).bind(2, after).bind(3, static_cast<std::int64_t>(limit));
      while (s.step())
        out.emplace_back(s.text(0));
      return out;
    });
  }

  job_order_counts job_orders(std::uint64_t job_id) override {
    return with_reader([&](connection& c) {
      job_order_counts out;
      auto& s = c.prepare(q().job_orders_by_status.c_str());
      reset_guard g{s};
      s.bind(1, i64(job_id));
      while (s.step())
        add_status_count(out, s.i64(0), static_cast<std::uint64_t>(s.i64(1)));
      return out;
    });
  }

  bool job_placed(std::uint64_t job_id, const std::string& iccid) override {
    return with_reader([&](connection& c) {
      auto& s = c.prepare(q().job_placed.c_str());
      reset_guard g{s};
      s.bind(1, i64(job_id)).bind(2, iccid);
      return s.step();
    });
  }

  fleet_counts fleet(std::int64_t since_ms, std::size_t hours, std::size_t latest) override {
    return with_reader([&](connection& c) {
      fleet_counts out;
      out.violations_per_hour.assign(hours, 0);
      {
        auto& s = c.prepare(q().fleet_sims.c_str());
        reset_guard g{s};
        while (s.step())
          add_fleet_sims(out, s.text(0), s.i64(1), s.i64(2), static_cast<std::uint64_t>(s.i64(3)));
      }
      {
        auto& s = c.prepare(q().fleet_orders.c_str());
        reset_guard g{s};
        while (s.step())
          add_fleet_orders(out, s.text(0), s.i64(1), static_cast<std::uint64_t>(s.i64(2)));
      }
      {
        auto& s = c.prepare(q().fleet_violations.c_str());
        reset_guard g{s};
        s.bind(1, since_ms);
        while (s.step())
          add_fleet_violations(out, s.i64(0), static_cast<std::uint64_t>(s.i64(1)));
      }
      for (auto [sql, list] : {std::pair{&q().latest_violations, &out.latest_violations},
                               std::pair{&q().latest_bars, &out.latest_bars}}) {
        auto& s = c.prepare(sql->c_str());
        reset_guard g{s};
        s.bind(1, since_ms).bind(2, static_cast<std::int64_t>(latest));
        while (s.step())
          list->push_back(read_audit(s));
      }
      return out;
    });
  }

  void load_inventory(const std::function<void(const inventory_row&)>& fn) override {
    load_inventory_batches([&](std::span<const inventory_row> rows) {
      for (const auto& r : rows)
        fn(r);
    });
  }

  void load_inventory_batches(const inventory_batch_fn& fn) override {
    // Startup, before anything writes. The ICCIDs are cut into ranges that
    // loader threads take in turn, each on a reader connection of its own in
    // one read transaction, so a SIM and its IMSIs come from one snapshot. A
    // thread merges two ordered scans of its range, the sims table (clustered
    // by ICCID) and the index of imsis by ICCID (which holds the IMSI): a
    // join would descend the index once per SIM. Both compare ICCIDs bytewise
    // (SQLite's BINARY collation, std::string_view's order). The threads
    // decode rows into batches (SQLite's steps and column reads: about two
    // thirds of the load's CPU) and this thread hands them to `fn` as they
    // come: ranges in no particular order, each range's SIMs in ICCID order.
    const auto threads = std::min<std::size_t>(
        {readers_.size(), std::max(1u, std::thread::hardware_concurrency()), 4});
    std::vector<std::string> cuts;
    if (threads > 1)
      with_reader([&](connection& c) {
        statement b{c.get(), q().iccid_bounds.c_str(), false};
        if (b.step() && !b.is_null(0))
          cuts = iccid_cuts(b.text(0), b.text(1), 8 * threads);
      });
    loader_queue lq;
    lq.ranges = cuts.size() + 1;
    lq.running = threads;
    std::vector<std::thread> workers;
    std::vector<inventory_row> rows;
    auto join = [&] {
      {
        std::lock_guard g{lq.mtx};
        lq.stop = true;
      }
      lq.cv.notify_all();
      for (auto& t : workers)
        t.join();
      workers.clear();
    };
    try {
      for (std::size_t i = 0; i < threads; ++i)
        workers.emplace_back([this, i, &lq, &cuts] { load_ranges(*readers_[i], cuts, lq); });
      for (;;) {
        inventory_batch b;
        {
          std::unique_lock lk{lq.mtx};
          lq.cv.wait(lk, [&] { return !lq.ready.empty() || lq.running == 0 || lq.error; });
          if (lq.error || lq.ready.empty())
            break;
          b = std::move(lq.ready.front());
          lq.ready.pop_front();
        }
        lq.cv.notify_all();
        rows.clear();
        const std::string_view text{b.text};
        const std::span<const std::uint64_t> imsis{b.imsis};
        for (const auto& e : b.rows)
          rows.push_back({text.substr(e.text_at, e.iccid_size),
                          text.substr(e.text_at + e.iccid_size, e.network_size),
                          imsis.subspan(e.imsis_at, e.imsi_count), e.state, e.activity});
        fn(rows);
        b.clear();
        std::lock_guard g{lq.mtx};
        lq.spare.push_back(std::move(b));
      }
    } catch (...) {
      join();
      throw;
    }
    join();
    if (lq.error)
      std::rethrow_exception(lq.error);
    // The scan filled each reader's page cache (2 MB) with pages no later
    // read wants: freed, they are 4 B per SIM resident at 1M SIMs (bench/README.md).
    for (auto& r : readers_) {
      std::lock_guard g{r->mtx};
      sqlite3_db_release_memory(r->conn->get());
    }
  }

  void load_inventory_suffixes(std::uint32_t first, std::uint32_t last,
                               const std::function<void(const inventory_row&)>& fn) override {
    with_reader([&](connection& c) {
      statement s{c.get(), q().load_inventory_suffixes.c_str(), false};
      s.bind(1, static_cast<std::int64_t>(first)).bind(2, static_cast<std::int64_t>(last));
      read_inventory(s, fn);
    });
  }

private:
  struct reader {
    std::mutex mtx;
    std::unique_ptr<connection> conn;
  };

  /// Decoded inventory rows, what a loader thread hands over: the rows' texts
  /// in one buffer and their IMSIs in another (offsets: both grow).
  struct inventory_batch {
    struct entry {
      std::size_t text_at; ///< the ICCID, then the network
      std::uint32_t iccid_size;
      std::uint32_t network_size;
      std::size_t imsis_at;
      std::size_t imsi_count;
      lock::sim_state state;
      lock::sim_activity activity;
    };
    std::string text;
    std::vector<std::uint64_t> imsis;
    std::vector<entry> rows;
    void clear() {
      text.clear();
      imsis.clear();
      rows.clear();
    }
  };
  static constexpr std::size_t batch_rows = 4096;

  /// What the loader threads and the consuming thread share.
  struct loader_queue {
    std::mutex mtx;
    std::condition_variable cv;
    std::deque<inventory_batch> ready;  ///< decoded, not yet handed to fn
    std::vector<inventory_batch> spare; ///< handed over: buffers to reuse
    std::size_t max_ready = 8;          ///< the decoded batches held at most
    std::size_t ranges = 1;
    std::size_t next_range = 0;
    std::size_t running = 0;  ///< loader threads not finished
    std::exception_ptr error; ///< the first thread's failure
    bool stop = false;        ///< the consumer is gone: threads stop
  };
  struct loader_stopped {};

  /// A loader thread: takes ranges until none is left, on `r`'s connection.
  static void load_ranges(reader& r, const std::vector<std::string>& cuts, loader_queue& lq) {
    try {
      std::lock_guard rg{r.mtx};
      connection& c = *r.conn;
      c.exec("BEGIN");
      try {
        statement sims_range{c.get(), q().inventory_sims_range.c_str(), false};
        statement sims_from{c.get(), q().inventory_sims_from.c_str(), false};
        statement imsis_range{c.get(), q().inventory_imsis_range.c_str(), false};
        statement imsis_from{c.get(), q().inventory_imsis_from.c_str(), false};
        inventory_batch b;
        for (;;) {
          std::size_t k = 0;
          {
            std::lock_guard g{lq.mtx};
            if (lq.stop || lq.next_range == lq.ranges)
              break;
            k = lq.next_range++;
          }
          const bool last = k + 1 == lq.ranges;
          auto& sims = last ? sims_from : sims_range;
          auto& imsis = last ? imsis_from : imsis_range;
          reset_guard gs{sims};
          reset_guard gi{imsis};
          // "" (not a null view: SQLite binds a null pointer as NULL) is below every ICCID.
          const std::string_view from = k == 0 ? std::string_view{""} : cuts[k - 1];
          sims.bind(1, from);
          imsis.bind(1, from);
          if (!last) {
            sims.bind(2, std::string_view{cuts[k]});
            imsis.bind(2, std::string_view{cuts[k]});
          }
          scan_range(sims, imsis, b, lq);
        }
        if (!b.rows.empty())
          hand_over(b, lq);
        c.exec("COMMIT");
      } catch (...) {
        c.exec("ROLLBACK");
        throw;
      }
    } catch (const loader_stopped&) {
    } catch (...) {
      std::lock_guard g{lq.mtx};
      if (!lq.error)
        lq.error = std::current_exception();
    }
    {
      std::lock_guard g{lq.mtx};
      --lq.running;
    }
    lq.cv.notify_all();
  }

  /// Merges one range's two scans into batches (see load_inventory).
  static void scan_range(statement& sims, statement& imsis, inventory_batch& b, loader_queue& lq) {
    constexpr int state_at = 2;
    constexpr int activity_at = state_at + static_cast<int>(sim_state_count);
    bool imsi_ready = imsis.step();
    while (sims.step()) {
      const std::string_view id = sims.text(0);
      const std::string_view network = sims.text(1);
      auto& e = b.rows.emplace_back();
      e.text_at = b.text.size();
      e.iccid_size = static_cast<std::uint32_t>(id.size());
      e.network_size = static_cast<std::uint32_t>(network.size());
      b.text.append(id).append(network);
      read_fields(sims, state_at, lock::sim_state_fields, e.state);
      read_fields(sims, activity_at, lock::sim_activity_fields, e.activity);
      e.imsis_at = b.imsis.size();
      // IMSIs of no SIM (a hand-edited store) sort before the next SIM's: skipped.
      while (imsi_ready && imsis.text(0) < id)
        imsi_ready = imsis.step();
      while (imsi_ready && imsis.text(0) == id) {
        b.imsis.push_back(static_cast<std::uint64_t>(imsis.i64(1)));
        imsi_ready = imsis.step();
      }
      e.imsi_count = b.imsis.size() - e.imsis_at;
      if (b.rows.size() == batch_rows)
        hand_over(b, lq);
    }
  }

  /// Queues `b` for the consumer (waiting while it is behind) and gives the
  /// thread an empty one back, a spare if there is one.
  static void hand_over(inventory_batch& b, loader_queue& lq) {
    {
      std::unique_lock lk{lq.mtx};
      lq.cv.wait(lk, [&] { return lq.ready.size() < lq.max_ready || lq.stop; });
      if (lq.stop)
        throw loader_stopped{};
      lq.ready.push_back(std::move(b));
      b = inventory_batch{};
      if (!lq.spare.empty()) {
        b = std::move(lq.spare.back());
        lq.spare.pop_back();
      }
    }
    lq.cv.notify_all();
  }

  /// One pass over sims joined with their IMSIs, grouped by ICCID.
  static void read_inventory(statement& s, const std::function<void(const inventory_row&)>& fn) {
    constexpr int imsi_column = static_cast<int>(sim_select_count);
    inventory_grouper sims{fn};
    while (s.step())
      sims.add(
          s.text(0), [&] { return read_sim(s); },
          s.is_null(imsi_column) ? std::nullopt
                                 : std::optional{static_cast<std::uint64_t>(s.i64(imsi_column))});
    sims.finish();
  }

  expected<void> migrate() {
    int version = 0;
    try {
      version = static_cast<int>(writer_->scalar("PRAGMA user_version"));
    } catch (const std::exception& e) {
      return error{ec::unreachable, cfg_.path + ": " + e.what()};
    }
    if (version > store::schema_version)
      return error{ec::newer_schema, cfg_.path + ": schema version " + std::to_string(version) +
                                         " is newer than this daemon's " +
                                         std::to_string(store::schema_version)};
    for (int v = version; v < store::schema_version; ++v) {
      try {
        writer_->exec("BEGIN IMMEDIATE");
        try {
          writer_->exec(migrations[v]);
          writer_->exec("PRAGMA user_version=" + std::to_string(v + 1));
          writer_->exec("COMMIT");
        } catch (...) {
          writer_->exec("ROLLBACK");
          throw;
        }
      } catch (const std::exception& e) {
        return error{ec::migration_failed, cfg_.path + ": migration to schema version " +
                                               std::to_string(v + 1) + ": " + e.what()};
      }
      log::notice("store.migrated", {{"path", cfg_.path}, {"to_version", v + 1}});
    }
    return {};
  }

  static void add_imsis(connection& c, lock::sim_record& r) {
    auto& im = c.prepare(q().imsis_of_sim.c_str());
    reset_guard g{im};
    im.bind(1, r.iccid);
    while (im.step())
      r.imsis.push_back(static_cast<std::uint64_t>(im.i64(0)));
  }

  /// Runs one cached statement that returns no rows.
  void run(const char* sql) {
    auto& st = writer_->prepare(sql);
    reset_guard g{st};
    st.run();
  }

  enum class attempt_result { committed, needs_savepoints, failed };

  /// One try at committing `batch`. Without savepoints (the fast path) any
  /// constraint error undoes the batch and asks for the careful path; with
  /// them, a change that violates a constraint is dropped alone.
  attempt_result attempt(std::span<const change* const> batch, std::vector<bool>& ok,
                         bool savepoints, const fence_fn& fence, std::string& error) {
    try {
      run("BEGIN IMMEDIATE");
      for (std::size_t i = 0; i < batch.size(); ++i) {
        if (savepoints)
          run("SAVEPOINT c");
        try {
          apply(*batch[i]);
        } catch (const sqlite_error& e) {
          if (is_fatal(e.code) || sqlite3_get_autocommit(writer_->get()))
            throw;
          if (!savepoints) {
            run("ROLLBACK");
            return attempt_result::needs_savepoints;
          }
          run("ROLLBACK TO c");
          ok[i] = false;
          log::write_limited(write_error_limiter, log::level::warning, "store.change_rejected",
                             {{"error", e.what()}});
        }
        if (savepoints)
          run("RELEASE c");
      }
      if (fence &&
          !fence(batch, [this](const std::string& sql, const std::vector<std::string>& params) {
            return query(sql, params);
          })) {
        error = "the fencing check vetoed the commit";
        run("ROLLBACK");
        return attempt_result::failed;
      }
      run("COMMIT");
      return attempt_result::committed;
    } catch (const std::exception& e) {
      error = e.what();
      if (!sqlite3_get_autocommit(writer_->get())) {
        char* err = nullptr;
        sqlite3_exec(writer_->get(), "ROLLBACK", nullptr, nullptr, &err);
        sqlite3_free(err);
      }
      return attempt_result::failed;
    }
  }

  /// The fence's query, on the writer connection inside the transaction.
  std::optional<std::string> query(const std::string& sql, const std::vector<std::string>& params) {
    statement s{writer_->get(), sql.c_str(), false};
    for (std::size_t i = 0; i < params.size(); ++i)
      s.bind(static_cast<int>(i + 1), std::string_view{params[i]});
    if (!s.step())
      return std::nullopt;
    return std::string(s.text(0));
  }

  void apply(const change& c) {
    for (auto& s : c.sims) {
      auto& up = writer_->prepare(q().upsert_sim.c_str());
      {
        reset_guard g{up};
        bind_sim(up, s);
        up.run();
      }
      auto& del = writer_->prepare(q().delete_imsis.c_str());
      {
        reset_guard g{del};
        del.bind(1, s.iccid).run();
      }
      auto& ins = writer_->prepare(q().insert_imsi.c_str());
      for (auto imsi : s.imsis) {
        reset_guard g{ins};
        ins.bind(1, i64(imsi)).bind(2, s.iccid).run();
      }
    }
    for (auto& u : c.states) {
      // One statement when lock and bar stay (generated_sql::update_state_same_index),
      // else the whole row and its sims_by_state entry.
      bool written = false;
      {
        auto& st = writer_->prepare(q().update_state_same_index.c_str());
        reset_guard g{st};
        st.bind_unowned(1, u.iccid);
        bind_fields(st, 2, lock::sim_state_fields, u.state);
        st.run();
        written = sqlite3_changes(writer_->get()) == 1;
      }
      if (written)
        continue;
      auto& st = writer_->prepare(q().update_state.c_str());
      reset_guard g{st};
      st.bind(1, u.iccid);
      bind_fields(st, 2, lock::sim_state_fields, u.state);
      st.run();
      if (sqlite3_changes(writer_->get()) != 1)
        throw sqlite_error(SQLITE_NOTFOUND, "state update for unknown SIM " + u.iccid);
    }
    for (auto& a : c.activities) {
      auto& st = writer_->prepare(q().update_activity.c_str());
      reset_guard g{st};
      st.bind(1, a.iccid);
      bind_fields(st, 2, lock::sim_activity_fields, a.activity);
      st.run();
    }
    for (auto& o : c.orders) {
      auto& st = writer_->prepare(q().upsert_order.c_str());
      reset_guard g{st};
      bind_fields(st, 1, orders::order_fields, o);
      st.run();
    }
    for (auto& a : c.audits) {
      // bind_audit's binds, the texts not copied by SQLite (they outlive the step).
      const std::string before = state_json(a.before);
      const std::string after = state_json(a.after);
      auto& st = writer_->prepare(q().insert_audit.c_str());
      reset_guard g{st};
      st.bind_unowned(1, a.iccid)
          .bind(2, a.at_ms)
          .bind_unowned(3, a.cause)
          .bind_unowned(4, before)
          .bind_unowned(5, after)
          .bind(6, static_cast<std::int64_t>(a.imei))
          .bind_unowned(7, a.detail);
      st.run();
    }
    for (auto& j : c.new_jobs) {
      auto& st = writer_->prepare(q().insert_job.c_str());
      reset_guard g{st};
      bind_job(st, j);
      st.run();
    }
    for (auto& j : c.job_iccids) {
      auto& st = writer_->prepare(q().insert_job_iccid.c_str());
      reset_guard g{st};
      st.bind(1, i64(j.job_id)).bind(2, j.iccid).run();
    }
    for (auto& j : c.job_updates) {
      auto& st = writer_->prepare(q().update_job.c_str());
      reset_guard g{st};
      bind_job_progress(st, j);
      st.run();
      if (sqlite3_changes(writer_->get()) != 1)
        throw sqlite_error(SQLITE_NOTFOUND, "progress of unknown job " + std::to_string(j.id));
    }
    for (auto& l : c.job_orders) {
      auto& st = writer_->prepare(q().insert_job_order.c_str());
      reset_guard g{st};
      st.bind(1, i64(l.job_id)).bind(2, l.iccid).bind(3, i64(l.order_id)).run();
    }
    if (!c.inbox_done.empty()) // a cluster node's change: cluster.enabled requires PostgreSQL
      throw sqlite_error(SQLITE_NOTFOUND, "a handoff inbox entry in a change to a SQLite store");
  }

  // -- Checkpoints ------------------------------------------------------------------
  // SQLite's own (wal_autocheckpoint) runs on the committing connection: the
  // writer copied every commit's pages from the WAL into the database file
  // (preads, pwrites, two fdatasyncs) before it could start the next
  // transaction, 40 % of its time at a million SIMs (a throwaway program
  // committing 200,000 durable changes: 35,000 changes/s with it, 63,000
  // without any checkpoint). Here a thread of its own checkpoints on its own
  // connection while the writer goes on (PASSIVE: it never blocks the
  // writer). The WAL restarts from its beginning only when a write starts
  // with every frame of it copied, which under a steady load the background
  // never quite reaches: past store_config::wal_max_pages the writer copies
  // what is left itself, between two transactions, and the next one
  // restarts it. The WAL then stays below about wal_max_pages plus a commit.

  /// WAL frames (pages) from which the background thread checkpoints:
  /// SQLite's default autocheckpoint (fewer writes to the database file
  /// when the load is light).
  static constexpr int wal_checkpoint_frames = 1000;

  /// sqlite3_wal_hook on the writer connection: after each commit, the WAL's
  /// length in frames. Replaces the autocheckpoint.
  static int on_wal_commit(void* self, sqlite3*, const char*, int frames) {
    static_cast<sqlite_backend*>(self)->wal_frames_ = frames;
    return SQLITE_OK;
  }

  /// Writer thread, after each committed transaction.
  void after_commit() {
    if (wal_frames_ >= cfg_.wal_max_pages) {
      std::lock_guard g{ckpt_mtx_}; // waits for the background's checkpoint, then copies the rest
      checkpoint(*writer_);
      return;
    }
    if (wal_frames_ >= std::min(wal_checkpoint_frames, cfg_.wal_max_pages / 2)) {
      {
        std::lock_guard g{ckpt_signal_mtx_};
        ckpt_wanted_ = true;
      }
      ckpt_signal_.notify_one();
    }
  }

  /// The checkpointer thread: one PASSIVE checkpoint per wake-up.
  void checkpoint_loop() {
    for (;;) {
      {
        std::unique_lock lk{ckpt_signal_mtx_};
        ckpt_signal_.wait(lk, [this] { return ckpt_wanted_ || ckpt_stop_; });
        if (ckpt_stop_)
          return;
        ckpt_wanted_ = false;
      }
      std::lock_guard g{ckpt_mtx_};
      checkpoint(*checkpointer_conn_);
    }
  }

  /// Copies what it can of the WAL into the database file (holding ckpt_mtx_).
  /// A failure loses nothing (the WAL keeps every commit): logged, retried
  /// after a later commit.
  void checkpoint(connection& c) {
    int rc =
        sqlite3_wal_checkpoint_v2(c.get(), nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY)
      log::write_limited(write_error_limiter, log::level::warning, "store.checkpoint_failed",
                         {{"path", cfg_.path}, {"error", sqlite3_errmsg(c.get())}});
  }

  store_config cfg_;
  std::string name_;
  std::unique_ptr<connection> writer_;
  std::vector<std::unique_ptr<reader>> readers_;
  std::atomic<std::size_t> next_reader_{0};
  int wal_frames_ = 0; ///< the WAL's frames after the last commit (writer thread)
  std::unique_ptr<connection> checkpointer_conn_;
  std::mutex ckpt_mtx_; ///< one checkpoint at a time (background or writer)
  std::mutex ckpt_signal_mtx_;
  std::condition_variable ckpt_signal_;
  bool ckpt_wanted_ = false; ///< guarded by ckpt_signal_mtx_
  bool ckpt_stop_ = false;   ///< guarded by ckpt_signal_mtx_
  std::thread checkpointer_; ///< last: started when everything above exists
};

} // namespace

expected<std::unique_ptr<backend>> open_sqlite(const store_config& cfg, stats&) {
  // SQLite keeps memory statistics by default, taking a process-wide mutex
  // around every allocation; Debian's build has no lookaside, so a SIM's
  // upsert allocates dozens of times (callgrind, POST /v1/sims:import: a
  // tenth of the writer's instructions). Nothing here reads the statistics.
  // Only possible before SQLite initialises: once, before the first open.
  static const bool no_memstatus = [] {
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); // SQLITE_MISUSE once initialised: kept
    return true;
  }();
  (void)no_memstatus;
  auto b = std::make_unique<sqlite_backend>(cfg);
  if (auto opened = b->open(); !opened)
    return std::move(opened.error());
  return std::unique_ptr<backend>{std::move(b)};
}

} // namespace imeilock::store::detail
