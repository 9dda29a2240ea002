#pragma once
// The whole configuration of imeilockd: one section per component, each
// loaded by that component's own load() (config/section.hpp), so this file
// only says which key holds which component. Documented example with every
// default: config/imeilockd.yaml.

#include "actors/sim_layer_config.hpp"
#include "api/api_config.hpp"
#include "cluster/cluster_config.hpp"
#include "common/log.hpp"
#include "config/section.hpp"
#include "lock/eligibility.hpp"
#include "metrics/metrics.hpp"
#include "orders/network.hpp"
#include "protocols/diameter/config.hpp"
#include "protocols/radius/config.hpp"

#include <chrono>
#include <string>

namespace imeilock::daemon {

/// `daemon:` - process-wide settings.
struct process_config {
  /// CAF scheduler threads (policy: sharing, TOOLCHAIN.md). 0 = number of cores.
  unsigned workers = 0;
  /// Threads running the network I/O (RADIUS, Diameter, HTTP). 0 = number of cores.
  unsigned io_threads = 0;
  /// error, warning, notice, info or debug. Reloadable.
  log::level log_level = log::level::info;
  /// How long a graceful stop may take before the process gives up.
  std::chrono::milliseconds shutdown_timeout{std::chrono::seconds{15}};
};

struct daemon_config {
  process_config process;             ///< `daemon:`
  metrics::metrics_config metrics;    ///< `metrics:`
  lock::eligibility_config imei_lock; ///< `imei_lock:` (R1 eligibility, strict mode)
  orders::orders_config orders;       ///< `orders:` (networks, rate limits, lead times, backends)
  actors::sim_layer_config sim_layer; ///< `sim_layer:` (registry, SIM actors, store)
  cluster::cluster_config cluster;    ///< `cluster:` (more than one node; off by default)
  radius::radius_config radius;       ///< `radius:`
  diameter::diameter_config diameter; ///< `diameter:`
  api::api_config api;                ///< `api:`
  api::webhook_config webhooks;       ///< `webhooks:`
};

/// Makes the configuration runnable where it was started: a relative store
/// path is placed under `state_dir` ($STATE_DIRECTORY, else the working
/// directory), and with no API token configured at all a random read-write
/// token is created (once) in <state_dir>/api-token, mode 0600, and used.
/// sys_ec::file_failed when a directory or the token file cannot be made.
expected<void> resolve_runtime_paths(daemon_config& cfg, const std::string& state_dir);

/// Loads and validates the file: the configuration, or a config::ec error
/// whose describe() reads "line N: key.path: what is wrong". Never throws for
/// what the file holds (the reader's config::error is captured here).
expected<daemon_config> load_config(const std::string& file_name);

/// Loads from an already parsed root section (tests inspect the section after).
expected<daemon_config> load_config_section(config::section root);

/// The same, from YAML text (tests, the embedded defaults).
expected<daemon_config> load_config_text(const std::string& text);

} // namespace imeilock::daemon
