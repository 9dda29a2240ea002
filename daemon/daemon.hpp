#pragma once
// The daemon's lifecycle: start every component in order, tell systemd when
// it is ready, reload on SIGHUP, stop gracefully on SIGTERM/SIGINT.

#include "daemon/daemon_config.hpp"

#include <memory>
#include <string>

namespace imeilock::daemon {

class daemon {
public:
  daemon(std::string config_file, daemon_config cfg);
  ~daemon();
  daemon(const daemon&) = delete;
  daemon& operator=(const daemon&) = delete;

  /// Starts everything, serves until SIGTERM/SIGINT, stops. Returns the exit
  /// code: 0 after a clean stop, 1 if a component could not start.
  int run();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace imeilock::daemon
