// The store's writer loop, the same for every backend: the queue, group
// commit batching, overload refusal, counters, and for a database that can go
// away (PostgreSQL) outage detection and reconnect with backoff.

#include "store/store.hpp"

#include "common/assert.hpp"
#include "common/log.hpp"
#include "store/backend.hpp"

#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>

namespace imeilock::store {

namespace {

log::rate_limiter commit_error_limiter{5, std::chrono::seconds{10}};

/// Reconnect backoff (DESIGN §5: a database outage is survived, not fatal).
constexpr std::chrono::milliseconds first_retry{100};
constexpr std::chrono::milliseconds max_retry{5000};
/// How often an idle writer checks that a server-backed database still answers.
constexpr std::chrono::milliseconds probe_interval{1000};

} // namespace

struct store::impl {
  using clock = std::chrono::steady_clock;

  struct item {
    change chg;
    done_fn done;
    std::function<void()> special; ///< flush marker / testing hook instead of a change
    clock::time_point queued = clock::now();
  };

  /// Whether the oldest change still waiting for the writer has waited past
  /// max_queue_wait. Under `mtx`.
  bool waited_too_long() const {
    return cfg.max_queue_wait.count() > 0 && !queue.empty() &&
           clock::now() - queue.front().queued > cfg.max_queue_wait;
  }

  store_config cfg;
  stats& counters;
  std::unique_ptr<detail::backend> db;

  std::mutex mtx;
  std::condition_variable cv;
  std::deque<item> queue;
  bool stopping = false;
  std::thread thread;
  std::function<void(double, std::size_t, bool)> observer;
  fence_fn fence;

  /// Order ids reserved from a shared database (allocate_order_id), under `mtx`.
  struct order_ids {
    std::mutex mtx;
    bool shared = false;                ///< the backend reserves blocks (PostgreSQL)
    std::uint64_t next = 0, end = 0;    ///< the current block [next, end)
    std::optional<std::uint64_t> spare; ///< the first id of the next block, reserved
  } ids;

  /// Reserves a block (throws store::unavailable). Under ids.mtx.
  std::uint64_t reserve_block() {
    auto first = db->reserve_order_ids(order_id_block);
    IMEILOCK_ASSERT(first.has_value(), "a shared backend reserves order ids");
    return *first;
  }

  // Writer thread only.
  std::chrono::milliseconds retry_after{first_retry};
  clock::time_point next_retry{};
  clock::time_point last_activity = clock::now();

  impl(store_config c, stats& s) : cfg(std::move(c)), counters(s) {}

  bool connected() const { return counters.connected.load(std::memory_order_relaxed); }

  /// The database stopped answering: one line, then retries with backoff.
  void lost(const std::string& error) {
    if (connected()) {
      counters.connected.store(false);
      counters.disconnects.fetch_add(1, std::memory_order_relaxed);
      log::error("store.disconnected",
                 {{"store", db->describe()},
                  {"error", error},
                  {"action", "changes are refused (no answer / 3002 / 3004 / 503) until the "
                             "database answers again; reconnecting"}});
    }
    retry_after = first_retry;
    next_retry = clock::now() + retry_after;
  }

  /// Tries to reconnect when the backoff allows; true once connected.
  bool try_reconnect() {
    if (connected())
      return true;
    if (clock::now() < next_retry)
      return false;
    if (db->reconnect()) {
      counters.connected.store(true);
      log::notice("store.reconnected", {{"store", db->describe()}});
      return true;
    }
    retry_after = std::min(retry_after * 2, max_retry);
    next_retry = clock::now() + retry_after;
    return false;
  }

  // -- Writer -----------------------------------------------------------------

  void run() {
    std::vector<item> batch;
    for (;;) {
      {
        std::unique_lock lk{mtx};
        auto wake = [&] { return stopping || !queue.empty(); };
        if (!connected())
          cv.wait_until(lk, next_retry, wake);
        else if (db->needs_probe())
          cv.wait_until(lk, last_activity + probe_interval, wake);
        else
          cv.wait(lk, wake);
        if (queue.empty() && stopping)
          return;
        auto n = std::min(queue.size(), std::max<std::size_t>(1, cfg.max_batch));
        for (std::size_t i = 0; i < n; ++i) {
          // A special item runs alone, in order, between transactions.
          if (queue.front().special && !batch.empty())
            break;
          batch.push_back(std::move(queue.front()));
          queue.pop_front();
          if (batch.back().special)
            break;
        }
        counters.queue_depth.store(queue.size(), std::memory_order_relaxed);
      }
      if (batch.empty()) { // woken by a timer: reconnect or probe
        if (!try_reconnect())
          continue;
        if (db->needs_probe() && clock::now() - last_activity >= probe_interval) {
          if (!db->ping())
            lost("the database did not answer a probe");
          last_activity = clock::now();
        }
        continue;
      }
      if (batch.size() == 1 && batch.front().special) {
        batch.front().special();
      } else {
        if (cfg.commit_delay.count() > 0)
          std::this_thread::sleep_for(cfg.commit_delay); // test knob: a slow disk
        commit(batch);
      }
      last_activity = clock::now();
      batch.clear();
    }
  }

  void commit(std::vector<item>& batch) {
    auto t0 = clock::now();
    std::vector<bool> ok(batch.size(), true);
    detail::batch_result result;
    if (try_reconnect()) {
      std::vector<const change*> changes;
      changes.reserve(batch.size());
      for (auto& i : batch)
        changes.push_back(&i.chg);
      result = db->commit(changes, ok, fence);
      if (result.connection_lost)
        lost(result.error);
    } else {
      result.error = "the database cannot be reached";
    }
    bool all_failed = !result.committed;
    auto seconds = std::chrono::duration<double>(clock::now() - t0).count();
    if (all_failed) {
      counters.commit_failures.fetch_add(1, std::memory_order_relaxed);
      counters.changes_failed.fetch_add(batch.size(), std::memory_order_relaxed);
      // While disconnected that was said once (store.disconnected).
      if (connected())
        log::write_limited(
            commit_error_limiter, log::level::err, "store.commit_failed",
            {{"store", db->describe()}, {"changes", batch.size()}, {"error", result.error}});
    } else {
      counters.commits.fetch_add(1, std::memory_order_relaxed);
      std::size_t good = 0;
      for (bool b : ok)
        good += b ? 1 : 0;
      counters.changes_committed.fetch_add(good, std::memory_order_relaxed);
      counters.changes_failed.fetch_add(batch.size() - good, std::memory_order_relaxed);
    }
    if (observer)
      observer(seconds, batch.size(), !all_failed);
    for (std::size_t i = 0; i < batch.size(); ++i)
      if (batch[i].done)
        batch[i].done(!all_failed && ok[i]);
  }

  /// Runs `fn` on the writer thread between transactions and waits for it.
  void on_writer(std::function<void()> fn) {
    std::promise<void> p;
    auto f = p.get_future();
    {
      std::lock_guard g{mtx};
      if (stopping)
        return;
      queue.push_back({{}, {}, [&] {
                         fn();
                         p.set_value();
                       }});
    }
    cv.notify_one();
    f.wait();
  }
};

store::store(store_config cfg) : impl_(std::make_unique<impl>(std::move(cfg), stats_)) {}

expected<std::unique_ptr<store>> open(store_config cfg) {
  std::unique_ptr<store> s{new store(std::move(cfg))};
  auto& d = *s->impl_;
  auto db = d.cfg.backend == backend_kind::postgresql ? detail::open_postgres(d.cfg, s->stats_)
                                                      : detail::open_sqlite(d.cfg, s->stats_);
  if (!db)
    return std::move(db.error());
  d.db = std::move(*db);
  try {
    if (auto first = d.db->reserve_order_ids(store::order_id_block)) {
      d.ids.shared = true;
      d.ids.next = *first;
      d.ids.end = *first + store::order_id_block;
    } else {
      s->next_order_id_.store(d.db->max_order_id() + 1);
    }
  } catch (const std::exception& e) {
    return error{ec::unreachable, d.db->describe() + ": " + e.what()};
  }
  d.thread = std::thread([&d] { d.run(); });
  return s;
}

store::~store() {
  {
    std::lock_guard g{impl_->mtx};
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->thread.joinable())
    impl_->thread.join();
}

std::uint64_t store::allocate_order_id() {
  auto& ids = impl_->ids;
  if (!ids.shared)
    return next_order_id_.fetch_add(1);
  std::lock_guard g{ids.mtx};
  if (ids.next == ids.end) {
    if (!ids.spare) {
      // Nothing reserved is left: wait for the database rather than hand out
      // an id another node may have.
      for (std::chrono::milliseconds wait{first_retry};;
           wait = std::min<std::chrono::milliseconds>(wait * 2, std::chrono::seconds{1})) {
        try {
          ids.spare = impl_->reserve_block();
          break;
        } catch (const std::exception& e) {
          log::write_limited(commit_error_limiter, log::level::err, "store.order_ids_unavailable",
                             {{"store", impl_->db->describe()}, {"error", e.what()}});
          std::this_thread::sleep_for(wait);
        }
      }
    }
    ids.next = *ids.spare;
    ids.end = *ids.spare + order_id_block;
    ids.spare.reset();
  }
  auto id = ids.next++;
  if (!ids.spare && ids.end - ids.next < order_id_block / 2) {
    try {
      ids.spare = impl_->reserve_block();
    } catch (const std::exception& e) {
      // Half a block is still left: the next allocation tries again.
      log::write_limited(commit_error_limiter, log::level::warning, "store.order_ids_unavailable",
                         {{"store", impl_->db->describe()}, {"error", e.what()}});
    }
  }
  return id;
}

bool store::submit(change chg, done_fn done) {
  {
    std::lock_guard g{impl_->mtx};
    if (!impl_->stopping && impl_->queue.size() < impl_->cfg.max_queue &&
        !impl_->waited_too_long()) {
      impl_->queue.push_back({std::move(chg), std::move(done), {}});
      stats_.queue_depth.store(impl_->queue.size(), std::memory_order_relaxed);
      impl_->cv.notify_one();
      return true;
    }
  }
  stats_.changes_refused.fetch_add(1, std::memory_order_relaxed);
  if (done)
    done(false);
  return false;
}

void store::flush() {
  impl_->on_writer([] {});
}

void store::exec_on_writer_for_testing(const std::string& sql) {
  impl_->on_writer([&] {
    try {
      impl_->db->exec_for_testing(sql);
    } catch (...) {
    }
  });
}

void store::set_commit_observer(std::function<void(double, std::size_t, bool)> fn) {
  impl_->observer = std::move(fn);
}

void store::set_fence(fence_fn fn) {
  impl_->fence = std::move(fn);
}

const std::string& store::describe() const {
  return impl_->db->describe();
}

std::optional<lock::sim_record> store::get_sim(const std::string& iccid) {
  return impl_->db->get_sim(iccid);
}

std::vector<lock::sim_record> store::list_sims(const lock::sim_filter& filter,
                                               const std::string& cursor, std::size_t limit) {
  return impl_->db->list_sims(filter, cursor, limit);
}

std::optional<orders::order> store::get_order(std::uint64_t id) {
  return impl_->db->get_order(id);
}

std::vector<orders::order> store::list_orders(const std::string& iccid) {
  return impl_->db->list_orders(iccid);
}

std::vector<orders::order> store::open_orders() {
  return impl_->db->open_orders();
}

std::vector<audit_record> store::list_events(const std::string& iccid, std::size_t limit) {
  return impl_->db->list_events(iccid, limit);
}

std::optional<std::string> store::iccid_of(std::uint64_t imsi) {
  return impl_->db->iccid_of(imsi);
}

std::uint64_t store::count_sims() {
  return impl_->db->count_sims();
}

std::uint64_t store::count_sims(const lock::sim_filter& filter) {
  return impl_->db->count_sims(filter);
}

std::optional<job_record> store::get_job(std::uint64_t id) {
  return impl_->db->get_job(id);
}

std::vector<job_record> store::list_jobs(std::optional<int> state, std::size_t limit) {
  return impl_->db->list_jobs(state, limit);
}

std::uint64_t store::max_job_id() {
  return impl_->db->max_job_id();
}

std::vector<std::string> store::job_iccids(std::uint64_t job_id, const std::string& after,
                                           std::size_t limit) {
  return impl_->db->job_iccids(job_id, after, limit);
}

job_order_counts store::job_orders(std::uint64_t job_id) {
  return impl_->db->job_orders(job_id);
}

bool store::job_placed(std::uint64_t job_id, const std::string& iccid) {
  return impl_->db->job_placed(job_id, iccid);
}

fleet_counts store::fleet(std::int64_t since_ms, std::size_t hours, std::size_t latest) {
  return impl_->db->fleet(since_ms, hours, latest);
}

void store::load_inventory(const std::function<void(const inventory_row&)>& fn) {
  impl_->db->load_inventory(fn);
}

void store::load_inventory_batches(const inventory_batch_fn& fn) {
  impl_->db->load_inventory_batches(fn);
}

void store::load_inventory_suffixes(std::uint32_t first, std::uint32_t last,
                                    const std::function<void(const inventory_row&)>& fn) {
  impl_->db->load_inventory_suffixes(first, last, fn);
}

} // namespace imeilock::store
