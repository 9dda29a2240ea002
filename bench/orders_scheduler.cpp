// How many orders per second the pure scheduler moves through its whole
// lifecycle (add -> send -> submitted -> completed), and what one open order
// costs. Prints figures; not a test. The real limit is the network's token
// bucket: this shows the scheduler itself is never the bottleneck.
//
//   bench_orders [orders=1000000]

#include "orders/scheduler.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

using namespace imeilock;
using namespace imeilock::orders;

namespace {

long rss_kib() {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr)
    return 0;
  char line[256];
  long kib = 0;
  while (std::fgets(line, sizeof line, f) != nullptr)
    if (std::sscanf(line, "VmRSS: %ld kB", &kib) == 1)
      break;
  std::fclose(f);
  return kib;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

} // namespace

int main(int argc, char** argv) {
  const std::uint64_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1'000'000;
  orders_config cfg;
  cfg.networks.clear();
  cfg.defaults.rate_per_second = 100'000;
  cfg.defaults.burst = 1'000'000;
  cfg.defaults.max_in_flight = 1'000'000;
  cfg.defaults.max_queue = 10'000'000;
  cfg.defaults.lead_time_for(lock::order_type::bar) = lead_time::from_median_p95(
      std::chrono::milliseconds{5'000}, std::chrono::milliseconds{20'000});
  const char* networks[] = {"multinet", "roamnet901", "ee", "ee_big_data"};
  scheduler s{cfg, 1};
  std::int64_t now = 1'700'000'000'000;

  const long rss_before = rss_kib();
  auto start = std::chrono::steady_clock::now();
  for (std::uint64_t id = 1; id <= n; ++id) {
    order o;
    o.id = id;
    o.iccid = "894411" + std::to_string(id);
    o.imsis = {234150000000000 + id};
    o.network = networks[id % 4];
    o.type = lock::order_type::bar;
    o.reason = lock::bar_reason::imei_lock;
    o.created_at_ms = now;
    if (s.add(std::move(o), now) != ec::ok)
      return 1;
  }
  const double add_s = seconds_since(start);
  const long rss_open = rss_kib();

  start = std::chrono::steady_clock::now();
  std::uint64_t sent = 0, completed = 0;
  while (s.size() > 0) {
    for (auto& a : s.poll(now)) {
      if (a.what == action::kind::send) {
        ++sent;
        s.on_submitted(a.o.id, now);
      } else if (a.what == action::kind::completed) {
        ++completed;
      }
    }
    auto next = s.next_wakeup(now);
    if (!next)
      break;
    now = *next;
  }
  const double run_s = seconds_since(start);

  std::printf("orders                      %llu\n", static_cast<unsigned long long>(n));
  std::printf("add()                       %.0f orders/s\n", static_cast<double>(n) / add_s);
  std::printf("send+submit+complete        %.0f orders/s (sent %llu, completed %llu)\n",
              static_cast<double>(n) / run_s, static_cast<unsigned long long>(sent),
              static_cast<unsigned long long>(completed));
  std::printf("resident per open order     %.0f bytes\n",
              static_cast<double>(rss_open - rss_before) * 1024.0 / static_cast<double>(n));
  return completed == n ? 0 : 1;
}
