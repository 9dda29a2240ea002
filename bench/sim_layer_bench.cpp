// SIM layer benchmark (prints figures; not a test):
//  1. unchanged observations/s through the registry, passivated SIMs (the
//     shard answers from the compact row) and SIMs with a live actor;
//  2. durable state changes/s, each acknowledged after its group commit;
//  3. resident bytes per passivated SIM (1M in the inventory) and per live
//     SIM actor.
//
//   bench_sim_layer [--sims 1000000] [--seconds 3] [--actors 100000] [--workers 2]
//                   [--submitters 2] [--dir /tmp]
//                   [--backend sqlite|postgresql] [--conninfo "host=... dbname=..."]
//                   [--db FILE] [--load-only 1] [--synchronous normal|full]
//
// --db keeps the SQLite store in FILE (not removed at the end) and writes the
// SIMs only when it does not hold --sims of them already: repeated runs of
// the inventory load at 10 M SIMs skip the minute and a half of writing.
// --load-only 1 stops after the load's figures. --synchronous full makes
// SQLite fsync the WAL on every group commit (sim_layer.store.synchronous_full):
// the durable changes figure then survives power loss, not only kill -9.
//
// With --backend postgresql the store is the (empty) database of --conninfo;
// bench/store_backends.sh runs both backends side by side on a temporary
// PostgreSQL server.

#include "actors/sim_layer.hpp"
#include "common/allocator.hpp"
#include "lock/imei.hpp"
#include "store/store.hpp"

#include <boost/asio/io_context.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <malloc.h>
#include <prometheus/registry.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <semaphore>
#include <string>
#include <thread>
#include <vector>

using namespace imeilock;
using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;

namespace {

std::size_t rss_bytes() {
  std::ifstream f("/proc/self/statm");
  std::size_t pages = 0;
  std::size_t resident = 0;
  f >> pages >> resident;
  return resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

/// Bytes the program holds from malloc now, every arena and the blocks
/// mmap'ed on their own (glibc's mallinfo2): what the allocations cost,
/// without the free memory that fragmentation keeps resident between them.
std::size_t heap_bytes() {
  auto mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

/// Peak resident bytes of this process (VmHWM), 0 if unknown.
std::size_t peak_rss_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0)
      return std::stoull(line.substr(6)) * 1024; // "VmHWM:  123456 kB"
  return 0;
}

/// Starts a new peak (VmHWM := current RSS); false where the kernel refuses.
bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

/// CPU seconds used by this process so far (user + system).
double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto tv = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return tv(ru.ru_utime) + tv(ru.ru_stime);
}

/// The machine is shared: report work per wall second and per CPU second.
struct rate {
  double per_second = 0;
  double per_cpu_second = 0;
  double cores = 0; ///< CPU seconds / wall seconds
};

std::string iccid(std::uint64_t n) {
  return "8944" + std::to_string(100000000000000ull + n);
}
std::uint64_t imsi(std::uint64_t n) {
  return 234'150'000'000'000ull + n;
}
lock::imei_value device(std::uint64_t n) {
  lock::imei_value v;
  v.status = lock::imei_status::ok;
  v.device = 35'349'001'000'000ull + n;
  return v;
}

/// Drives `total` observations from `threads` submitters, at most `window`
/// outstanding per thread; returns acks per second. `pick(i)` gives the
/// observation number i's (sim, device).
template <class Pick>
rate drive(actors::sim_layer& layer, std::size_t threads, std::chrono::seconds duration,
           std::size_t window, Pick pick, std::atomic<std::uint64_t>& not_ok) {
  std::atomic<std::uint64_t> acked{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> ts;
  auto t0 = clk::now();
  auto c0 = cpu_seconds();
  for (std::size_t t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      // A full window blocks the submitter (no spinning: on 2 cores a
      // yielding loop took a quarter of the CPU from the layer it measures).
      std::counting_semaphore<> free_slots{static_cast<std::ptrdiff_t>(window)};
      std::uint64_t i = t;
      while (!stop.load(std::memory_order_relaxed)) {
        if (!free_slots.try_acquire_for(10ms))
          continue;
        auto [sim, dev] = pick(i);
        i += threads;
        actors::observation obs;
        obs.imsi = imsi(sim);
        obs.imei = device(dev);
        layer.submit(std::move(obs), [&](actors::ack a) {
          if (a != actors::ack::ok)
            not_ok.fetch_add(1, std::memory_order_relaxed);
          acked.fetch_add(1, std::memory_order_relaxed);
          free_slots.release();
        });
      }
      for (std::size_t k = 0; k < window; ++k)
        free_slots.acquire(); // every answer is in
    });
  std::this_thread::sleep_for(duration);
  auto n0 = acked.load();
  auto t1 = clk::now();
  auto c1 = cpu_seconds();
  stop = true;
  for (auto& th : ts)
    th.join();
  auto wall = std::chrono::duration<double>(t1 - t0).count();
  auto n = static_cast<double>(n0);
  return {n / wall, n / (c1 - c0), (c1 - c0) / wall};
}

} // namespace

int main(int argc, char** argv) {
  // The daemon's allocator settings (daemon/main.cpp): the memory figures are its.
  if (!tune_allocator())
    std::fprintf(stderr, "tune_allocator: glibc refused a setting\n");
  // Line by line: the figures must reach a pipe even if the teardown fails.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::size_t sims = 1'000'000;
  std::size_t seconds = 3;
  std::size_t live = 100'000;
  std::size_t workers = 2;
  std::size_t submitters = 2;
  std::string dir = "/tmp";
  std::string backend = "sqlite";
  std::string conninfo;
  std::string db_file;
  bool load_only = false;
  bool synchronous_full = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    std::string v = argv[i + 1];
    if (k == "--sims")
      sims = std::stoul(v);
    else if (k == "--seconds")
      seconds = std::stoul(v);
    else if (k == "--actors")
      live = std::stoul(v);
    else if (k == "--workers")
      workers = std::stoul(v);
    else if (k == "--submitters")
      submitters = std::stoul(v);
    else if (k == "--dir")
      dir = v;
    else if (k == "--backend")
      backend = v;
    else if (k == "--conninfo")
      conninfo = v;
    else if (k == "--db")
      db_file = v;
    else if (k == "--load-only")
      load_only = v != "0";
    else if (k == "--synchronous")
      synchronous_full = v == "full";
  }
  live = std::min(live, sims);
  auto path = db_file.empty() ? std::filesystem::path(dir) /
                                    ("imeilock-bench-" + std::to_string(getpid()) + ".db")
                              : std::filesystem::path(db_file);
  auto remove_store = [&] {
    if (db_file.empty()) {
      std::error_code ec;
      std::filesystem::remove(path, ec);
      std::filesystem::remove(path.string() + "-wal", ec);
      std::filesystem::remove(path.string() + "-shm", ec);
    }
    return 0;
  };

  caf::actor_system_config caf_cfg;
  caf_cfg.set("scheduler.policy", caf::atom("sharing"));
  caf_cfg.set("scheduler.max-threads", workers);
  caf::actor_system sys{caf_cfg};
  boost::asio::io_context io;
  prometheus::Registry registry;
  actors::sim_layer_config cfg;
  cfg.store.path = path.string();
  cfg.store.synchronous_full = synchronous_full;
  if (backend == "postgresql") {
    cfg.store.backend = store::backend_kind::postgresql;
    cfg.store.postgresql.conninfo = conninfo;
  } else if (backend != "sqlite") {
    std::fprintf(stderr, "--backend: sqlite or postgresql\n");
    return 2;
  }
  cfg.shards = static_cast<std::uint32_t>(workers);
  cfg.max_in_flight = 1'000'000;
  cfg.max_queued_per_sim = 100'000;
  // A throughput bench, not a shedding one: with the default 2 s bound on the
  // store queue's wait, a loaded machine refuses part of the spawning phase,
  // those SIMs keep their old IMEI, and the "unchanged" phase that follows
  // measures durable writes instead. The queue stays bounded by count.
  cfg.store.max_queue_wait = std::chrono::milliseconds{0};
  // The write-behind of when SIMs were last observed (issue 13) writes every
  // SIM an unchanged phase touched: a million rows after the passivated
  // phase. Every 0.5 s (not the default 10 s) its writes land in the phase
  // whose observations made them, and settle() lets them finish before a
  // durable phase: otherwise that phase's changes queue behind a million
  // activity updates and it measures those.
  cfg.activity_flush = std::chrono::milliseconds{500};
  orders::orders_config ocfg;

  std::printf(
      "sim_layer bench: %zu SIMs, %zu CAF workers (sharing), %zu shards, %zu submitter threads\n",
      sims, workers, static_cast<std::size_t>(cfg.shards), submitters);
  {
    auto opened =
        actors::sim_layer::open(sys, cfg, lock::eligibility_config{}, ocfg, registry, nullptr, io);
    if (!opened) {
      std::fprintf(stderr, "%s\n", opened.error().describe().c_str());
      return 1;
    }
    actors::sim_layer& layer = **opened;
    std::printf("store: %s\n", layer.db().describe().c_str());

    // The inventory: every SIM active, lock off, last seen = device(sim).
    auto t0 = clk::now();
    constexpr std::size_t chunk = 50'000;
    const bool written = !db_file.empty() && layer.db().count_sims() == sims;
    for (std::size_t base = 0; !written && base < sims; base += chunk) {
      if (base % (4 * chunk) == 0)
        layer.db().flush(); // at most 4 chunks queued: the writing's peak RSS stays small
      store::change c;
      for (std::size_t i = base; i < std::min(sims, base + chunk); ++i) {
        lock::sim_record r{iccid(i), {imsi(i)}, "", "multinet", {}, {}};
        r.state.status = lock::sim_status::active;
        r.state.last_seen_imei = device(i).device;
        c.sims.push_back(std::move(r));
      }
      layer.db().submit(std::move(c), nullptr);
    }
    layer.db().flush();
    if (written)
      std::printf("inventory: the %zu SIMs already in %s\n", sims, path.c_str());
    else
      std::printf("inventory written: %.1f s\n",
                  std::chrono::duration<double>(clk::now() - t0).count());

    release_free_memory();
    auto rss0 = rss_bytes();
    // The load's own peak: what the process needs to start with this inventory
    // (the writing above, the bench's own doing, is not counted).
    auto peak_reset = reset_peak_rss();
    t0 = clk::now();
    auto load_cpu0 = cpu_seconds();
    layer.start();
    auto load_s = std::chrono::duration<double>(clk::now() - t0).count();
    auto load_cpu = cpu_seconds() - load_cpu0;
    auto peak = peak_rss_bytes();
    // No trim here: start() gives the load's free pages back itself (the daemon's figure).
    auto rss1 = rss_bytes();
    std::printf(
        "inventory loaded: %.1f s (%.1f CPU-s); resident per passivated SIM: %.0f B (index + "
        "rows: %.0f B)\n",
        load_s, load_cpu, static_cast<double>(rss1 - rss0) / static_cast<double>(sims),
        static_cast<double>(layer.inventory_bytes()) / static_cast<double>(sims));
    std::printf("peak RSS while loading: %.1f MB%s; RSS before the load %.1f MB, after %.1f MB\n",
                static_cast<double>(peak) / 1e6, peak_reset ? "" : " (of the whole run)",
                static_cast<double>(rss0) / 1e6, static_cast<double>(rss1) / 1e6);
    if (load_only) {
      layer.stop();
      return remove_store();
    }

    std::atomic<std::uint64_t> not_ok{0};
    auto window = std::size_t{4096};
    auto r = drive(
        layer, submitters, std::chrono::seconds{seconds}, window,
        [&](std::uint64_t i) {
          auto s = (i * 2654435761u) % sims;
          return std::pair{s, s};
        },
        not_ok);
    std::printf("unchanged observations, passivated SIMs: %.0f /s, %.0f per CPU-s, %.2f cores busy "
                "(not ok: %llu)\n",
                r.per_second, r.per_cpu_second, r.cores,
                static_cast<unsigned long long>(not_ok.load()));

    auto settle = [&] {
      auto t = clk::now();
      std::this_thread::sleep_for(cfg.activity_flush + 100ms);
      layer.db().flush();
      std::printf("store settled in %.1f s (the write-behind of the phase before)\n",
                  std::chrono::duration<double>(clk::now() - t).count());
    };

    // Live actors: one change each (a durable write) spawns them.
    settle();
    not_ok = 0;
    release_free_memory();
    auto rss2 = rss_bytes();
    auto heap2 = heap_bytes();
    t0 = clk::now();
    auto cs0 = cpu_seconds();
    std::atomic<std::uint64_t> done{0};
    for (std::size_t i = 0; i < live; ++i) {
      actors::observation obs;
      obs.imsi = imsi(i);
      obs.imei = device(i + 10'000'000);
      layer.submit(std::move(obs), [&](actors::ack a) {
        if (a != actors::ack::ok)
          not_ok.fetch_add(1);
        done.fetch_add(1);
      });
      while (layer.in_flight() > 50'000)
        std::this_thread::sleep_for(200us); // no spinning: see drive()
    }
    while (done.load() < live)
      std::this_thread::sleep_for(1ms);
    auto spawn_s = std::chrono::duration<double>(clk::now() - t0).count();
    auto spawn_cpu = cpu_seconds() - cs0;
    release_free_memory();
    auto rss3 = rss_bytes();
    auto heap3 = heap_bytes();
    auto alive = layer.sim_actors_alive();
    std::printf("durable state changes (one per SIM, spawning its actor): %.0f /s, %.0f per CPU-s "
                "(not ok: %llu)\n",
                static_cast<double>(live) / spawn_s, static_cast<double>(live) / spawn_cpu,
                static_cast<unsigned long long>(not_ok.load()));
    auto per_alive = [&](std::size_t before, std::size_t after) {
      return alive ? (static_cast<double>(after) - static_cast<double>(before)) /
                         static_cast<double>(alive)
                   : 0.0;
    };
    // Resident counts the holes that the spawning writes' freed buffers left
    // between the actors (after malloc_trim); allocated is what the actors
    // and their registry entries hold.
    std::printf("SIM actors alive: %zu; resident per live SIM actor: %.0f B (allocated: %.0f B)\n",
                alive, per_alive(rss2, rss3), per_alive(heap2, heap3));

    not_ok = 0;
    r = drive(
        layer, submitters, std::chrono::seconds{seconds}, window,
        [&](std::uint64_t i) {
          auto s = (i * 2654435761u) % live;
          return std::pair{s, s + 10'000'000};
        },
        not_ok);
    std::printf("unchanged observations, SIMs with a live actor: %.0f /s, %.0f per CPU-s, %.2f "
                "cores busy (not ok: %llu)\n",
                r.per_second, r.per_cpu_second, r.cores,
                static_cast<unsigned long long>(not_ok.load()));

    // Durable changes: every observation moves last seen (toggling devices).
    settle();
    not_ok = 0;
    r = drive(
        layer, submitters, std::chrono::seconds{seconds}, window,
        [&](std::uint64_t i) {
          auto s = i % live;
          auto round = i / live;
          return std::pair{s, s + (round % 2 ? 10'000'000 : 20'000'000)};
        },
        not_ok);
    auto& c = layer.db().counters();
    std::printf("durable state changes, steady (synchronous=%s): %.0f /s, %.0f per CPU-s, %.2f "
                "cores busy (not ok: %llu; %llu commits, %.1f changes/commit)\n",
                synchronous_full ? "full" : "normal", r.per_second, r.per_cpu_second, r.cores,
                static_cast<unsigned long long>(not_ok.load()),
                static_cast<unsigned long long>(c.commits.load()),
                static_cast<double>(c.changes_committed.load()) /
                    static_cast<double>(std::max<std::uint64_t>(1, c.commits.load())));
    layer.stop();
  }
  std::printf("peak RSS of the whole run: %.1f MB\n", static_cast<double>(peak_rss_bytes()) / 1e6);
  return remove_store();
}
