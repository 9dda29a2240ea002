#include "daemon/service_manager.hpp"

#include <systemd/sd-daemon.h>

#include <string>

namespace imeilock::daemon {

namespace {
void notify(const std::string& text) {
  // 0: keep NOTIFY_SOCKET so later notifications (watchdog, stopping) work.
  sd_notify(0, text.c_str());
}
} // namespace

void service_manager::ready(std::string_view status) {
  notify("READY=1\nSTATUS=" + std::string{status});
}

void service_manager::status(std::string_view status) {
  notify("STATUS=" + std::string{status});
}

void service_manager::reloading() {
  notify("RELOADING=1\nSTATUS=reloading configuration");
}

void service_manager::stopping(std::string_view status) {
  notify("STOPPING=1\nSTATUS=" + std::string{status});
}

void service_manager::watchdog() {
  notify("WATCHDOG=1");
}

std::chrono::microseconds service_manager::watchdog_interval() {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
    return std::chrono::microseconds{0};
  return std::chrono::microseconds{usec / 2};
}

} // namespace imeilock::daemon
