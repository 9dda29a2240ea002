#include "daemon/daemon.hpp"

#include "common/log.hpp"
#include "daemon/service_manager.hpp"
#include "metrics/metrics.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>

#include <atomic>
#include <csignal>
#include <thread>
#include <unistd.h>
#include <vector>

namespace imeilock::daemon {

namespace asio = boost::asio;

namespace {

unsigned or_cores(unsigned n) {
  if (n != 0)
    return n;
  auto hw = std::thread::hardware_concurrency();
  return hw == 0 ? 2 : hw;
}

} // namespace

struct daemon::impl {
  std::string config_file;
  daemon_config cfg;

  /// Signals, watchdog and the stop sequence run here, on the main thread.
  asio::io_context control;
  /// Network I/O of every front-end.
  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> io_guard;
  std::vector<std::thread> io_threads;

  std::unique_ptr<metrics::metrics_server> metrics;
  std::unique_ptr<caf::actor_system_config> caf_cfg;
  std::unique_ptr<caf::actor_system> system;

  asio::signal_set signals{control};
  asio::steady_timer watchdog_timer{control};
  /// Set by the probe posted to the io threads, cleared at each watchdog tick.
  std::atomic<bool> io_alive{true};
  bool stopping = false;

  impl(std::string file, daemon_config c) : config_file(std::move(file)), cfg(std::move(c)) {}

  std::string summary() const {
    std::string s = "serving";
    s += "; metrics on " + cfg.metrics.listen.host + ":" + std::to_string(metrics->port());
    return s;
  }

  bool start() {
    log::set_level(cfg.process.log_level);
    log::notice("daemon.starting", {{"version", metrics::version_string()},
                                    {"config", config_file.empty() ? std::string{"(embedded defaults)"} : config_file}});

    metrics = std::make_unique<metrics::metrics_server>(cfg.metrics);
    if (auto err = metrics->start()) {
      log::error("daemon.start_failed", {{"component", "metrics"}, {"reason", *err}});
      return false;
    }

    // CAF: work sharing with an explicit worker count, never its own config
    // file (TOOLCHAIN.md pitfalls 1, 2, 9).
    caf_cfg = std::make_unique<caf::actor_system_config>();
    caf_cfg->set("scheduler.policy", caf::atom("sharing"));
    caf_cfg->set("scheduler.max-threads", static_cast<size_t>(or_cores(cfg.process.workers)));
    system = std::make_unique<caf::actor_system>(*caf_cfg);

    io_guard.emplace(asio::make_work_guard(io));
    auto n_io = or_cores(cfg.process.io_threads);
    for (unsigned i = 0; i < n_io; ++i)
      io_threads.emplace_back([this] { io.run(); });

    log::notice("daemon.ready", {{"workers", or_cores(cfg.process.workers)},
                                 {"io_threads", n_io},
                                 {"metrics_port", metrics->port()}});
    service_manager::ready(summary());
    return true;
  }

  void wait_for_signals() {
    signals.add(SIGTERM);
    signals.add(SIGINT);
    signals.add(SIGHUP);
    arm_signals();
    arm_watchdog();
    control.run();
  }

  void arm_signals() {
    signals.async_wait([this](const boost::system::error_code& ec, int sig) {
      if (ec)
        return;
      if (sig == SIGHUP) {
        reload();
        arm_signals();
        return;
      }
      log::notice("daemon.signal", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
      begin_stop();
    });
  }

  /// WATCHDOG=1 only while the io threads still run work posted to them, so a
  /// wedged daemon (or a SIGSTOP) gets restarted by systemd.
  void arm_watchdog() {
    auto interval = service_manager::watchdog_interval();
    if (interval.count() == 0 || stopping)
      return;
    watchdog_timer.expires_after(interval);
    watchdog_timer.async_wait([this](const boost::system::error_code& ec) {
      if (ec || stopping)
        return;
      if (io_alive.exchange(false))
        service_manager::watchdog();
      else
        log::warning("daemon.watchdog_missed", {{"reason", "io threads did not answer"}});
      asio::post(io, [this] { io_alive = true; });
      arm_watchdog();
    });
  }

  void reload() {
    if (config_file.empty()) {
      log::notice("daemon.reload_ignored", {{"reason", "running on embedded defaults"}});
      return;
    }
    service_manager::reloading();
    log::notice("daemon.reloading", {{"config", config_file.empty() ? std::string{"(embedded defaults)"} : config_file}});
    try {
      auto next = load_config(config_file);
      if (!(next.metrics == cfg.metrics))
        log::warning("daemon.reload_needs_restart", {{"section", "metrics"}});
      log::set_level(next.process.log_level);
      cfg.process.log_level = next.process.log_level;
      log::notice("daemon.reloaded", {{"log_level", log::to_string(cfg.process.log_level)}});
    } catch (const config::error& e) {
      log::error("daemon.reload_rejected",
                 {{"reason", e.what()}, {"action", "keeping the running configuration"}});
    }
    service_manager::ready(summary());
  }

  void begin_stop() {
    if (stopping)
      return;
    stopping = true;
    service_manager::stopping("stopping: finishing in-flight work");
    signals.cancel();
    watchdog_timer.cancel();
    // A stop that hangs must not hang forever: systemd would SIGKILL us, but
    // a bounded exit with a clear log line is better.
    std::thread([timeout = cfg.process.shutdown_timeout] {
      std::this_thread::sleep_for(timeout);
      log::error("daemon.stop_timeout", {{"timeout_ms", static_cast<long long>(timeout.count())}});
      _exit(1);
    }).detach();
    control.stop();
  }

  void stop() {
    io_guard.reset();
    io.stop();
    for (auto& t : io_threads)
      t.join();
    io_threads.clear();
    system.reset(); // waits for every actor to finish
    caf_cfg.reset();
    metrics.reset();
    log::notice("daemon.stopped");
  }
};

daemon::daemon(std::string config_file, daemon_config cfg) :
  impl_(std::make_unique<impl>(std::move(config_file), std::move(cfg))) {
}

daemon::~daemon() = default;

int daemon::run() {
  if (!impl_->start()) {
    impl_->stop();
    return 1;
  }
  impl_->wait_for_signals();
  impl_->stop();
  return 0;
}

} // namespace imeilock::daemon
