#pragma once
// The whole configuration of imeilockd: one section per component, each
// loaded by that component's own load() (config/section.hpp), so this file
// only says which key holds which component. Documented example with every
// default: config/imeilockd.yaml.

#include "common/log.hpp"
#include "config/section.hpp"
#include "metrics/metrics.hpp"

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
  process_config process;
  metrics::metrics_config metrics;
};

/// Loads and validates the file. Throws config::error naming key and line.
daemon_config load_config(const std::string& file_name);

/// Loads from an already parsed root section (tests inspect the section after).
daemon_config load_config_section(config::section root);

/// The same, from YAML text (tests).
daemon_config load_config_text(const std::string& text);

} // namespace imeilock::daemon
