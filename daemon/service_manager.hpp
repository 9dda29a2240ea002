#pragma once
// Talking to systemd (sd_notify(3)) for Type=notify: READY, STATUS,
// RELOADING, STOPPING and the watchdog. Harmless when not run by systemd.

#include <chrono>
#include <string_view>

namespace imeilock::daemon {

class service_manager {
public:
  /// READY=1 with a STATUS= line.
  static void ready(std::string_view status);
  /// STATUS= only.
  static void status(std::string_view status);
  /// RELOADING=1 (systemd 252: READY=1 follows once the reload is done).
  static void reloading();
  /// STOPPING=1.
  static void stopping(std::string_view status);
  /// WATCHDOG=1.
  static void watchdog();
  /// Half of WATCHDOG_USEC when systemd asked for a watchdog (and the
  /// variable is meant for this process), else zero.
  static std::chrono::microseconds watchdog_interval();
};

} // namespace imeilock::daemon
