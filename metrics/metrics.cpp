#include "metrics/metrics.hpp"

#include "common/fault.hpp"
#include "common/log.hpp"
#include "metrics/build_info.hpp" // generated

#include <prometheus/client_metric.h>
#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace imeilock::metrics {

std::string version_string() {
  return std::string{build_version} + " (git " + build_git_revision + ")";
}

/// The standard process_* metrics (as the Go and Python clients export them),
/// read from /proc at scrape time.
class process_collector : public prometheus::Collectable {
public:
  process_collector() {
    // Start time: boot time + starttime ticks; simpler and exact enough: now.
    start_time_ = static_cast<double>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count()) /
                  1000.0;
  }

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> out;
    auto gauge = [&](std::string name, std::string help, double value, bool counter = false) {
      prometheus::MetricFamily fam;
      fam.name = std::move(name);
      fam.help = std::move(help);
      fam.type = counter ? prometheus::MetricType::Counter : prometheus::MetricType::Gauge;
      prometheus::ClientMetric m;
      if (counter)
        m.counter.value = value;
      else
        m.gauge.value = value;
      fam.metric.push_back(std::move(m));
      out.push_back(std::move(fam));
    };
    const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
    const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
    std::ifstream stat{"/proc/self/stat"};
    std::string line;
    if (std::getline(stat, line)) {
      // Fields after the parenthesised command name (which may contain spaces).
      auto close = line.rfind(')');
      std::istringstream in{line.substr(close + 2)};
      std::vector<std::string> f;
      for (std::string tok; in >> tok;)
        f.push_back(tok);
      // f[0] is field 3 (state); utime=14, stime=15, num_threads=20, vsize=23, rss=24.
      if (f.size() > 21) {
        double cpu = (std::stod(f[11]) + std::stod(f[12])) / ticks;
        gauge("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", cpu,
              true);
        gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", std::stod(f[20]));
        gauge("process_resident_memory_bytes", "Resident memory size in bytes.",
              std::stod(f[21]) * page);
        gauge("process_threads", "Number of OS threads in the process.", std::stod(f[17]));
      }
    }
    double fds = 0;
    if (auto* dir = opendir("/proc/self/fd")) {
      while (auto* e = readdir(dir))
        if (e->d_name[0] != '.')
          ++fds;
      closedir(dir);
      fds -= 1; // the directory handle itself
    }
    gauge("process_open_fds", "Number of open file descriptors.", fds);
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
      gauge("process_max_fds", "Maximum number of open file descriptors.",
            static_cast<double>(rl.rlim_cur));
    gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
          start_time_);
    // Last-resort guards (common/fault.hpp): every label present from the start.
    prometheus::MetricFamily guard_family;
    guard_family.name = "imeilock_internal_errors_total";
    guard_family.help =
        "Exceptions caught by a last-resort guard (a bug or an unforeseen input), by "
        "where; the daemon kept serving";
    guard_family.type = prometheus::MetricType::Counter;
    for (std::size_t i = 0; i < fault_site_count; ++i) {
      auto where = static_cast<fault_site>(i);
      prometheus::ClientMetric m;
      m.label.push_back({"where", std::string{to_string(where)}});
      m.counter.value = static_cast<double>(imeilock::faults(where));
      guard_family.metric.push_back(std::move(m));
    }
    out.push_back(std::move(guard_family));
    return out;
  }

private:
  double start_time_ = 0;
};

metrics_server::metrics_server(metrics_config cfg) :
    cfg_(std::move(cfg)),
    registry_(std::make_shared<prometheus::Registry>()),
    process_(std::make_shared<process_collector>()) {
  prometheus::BuildGauge()
      .Name("imeilock_build_info")
      .Help("Build information of the running imeilockd; the value is always 1.")
      .Register(*registry_)
      .Add({{"version", build_version},
            {"revision", build_git_revision},
            {"compiler", build_compiler}})
      .Set(1);
}

metrics_server::~metrics_server() = default;

expected<void> metrics_server::start() {
  auto addr = cfg_.listen.to_string();
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(addr, cfg_.threads);
  } catch (const std::exception& e) {
    // prometheus-cpp (civetweb) reports a failed bind by throwing.
    return error{sys_ec::listen_failed, "cannot serve /metrics on " + addr + ": " + e.what()};
  }
  exposer_->RegisterCollectable(registry_);
  exposer_->RegisterCollectable(process_);
  log::info("metrics.listening", {{"addr", addr}, {"port", port()}});
  return {};
}

std::uint16_t metrics_server::port() const {
  if (!exposer_)
    return 0;
  auto ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : static_cast<std::uint16_t>(ports.front());
}

} // namespace imeilock::metrics
