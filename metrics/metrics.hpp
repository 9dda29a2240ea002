#pragma once
// The daemon's Prometheus endpoint. One registry for every component (each
// registers its own families, named imeilock_<component>_...), served by
// prometheus-cpp's exposer at http://<listen>/metrics, plus the metrics every
// production daemon has from the start: build info and process metrics.

#include "common/error.hpp"
#include "config/section.hpp"

#include <chrono>
#include <memory>
#include <string>

namespace prometheus {
class Registry;
class Exposer;
} // namespace prometheus

namespace imeilock::metrics {

/// `metrics:` in the configuration.
struct metrics_config {
  /// Where /metrics is served. Loopback by default: expose it deliberately.
  config::endpoint listen{"127.0.0.1", 9464};
  /// Threads serving scrapes.
  unsigned threads = 1;
  friend bool operator==(const metrics_config&, const metrics_config&) = default;
};

void load(metrics_config& cfg, config::section s);

/// Owns the registry and, once started, the HTTP exposer.
class metrics_server {
public:
  explicit metrics_server(metrics_config cfg);
  ~metrics_server();
  metrics_server(const metrics_server&) = delete;
  metrics_server& operator=(const metrics_server&) = delete;

  /// The registry components register their families in.
  prometheus::Registry& registry() { return *registry_; }
  std::shared_ptr<prometheus::Registry> shared_registry() { return registry_; }

  /// Binds the listener; sys_ec::listen_failed naming the address if it cannot.
  expected<void> start();
  /// The bound port (useful with port 0), 0 before start().
  std::uint16_t port() const;
  const metrics_config& config() const { return cfg_; }

private:
  metrics_config cfg_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<class process_collector> process_;
  std::unique_ptr<prometheus::Exposer> exposer_;
};

/// The version string, e.g. "0.1.0 (git 8e63673)".
std::string version_string();

} // namespace imeilock::metrics
