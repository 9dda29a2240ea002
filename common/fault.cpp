#include "common/fault.hpp"

#include "common/log.hpp"

#include <atomic>

namespace imeilock {

namespace {

std::array<std::atomic<std::uint64_t>, fault_site_count> counters{};
log::rate_limiter fault_limiter{10, std::chrono::seconds{10}};

} // namespace

std::string_view to_string(fault_site where) {
  switch (where) {
    case fault_site::io_thread:
      return "io_thread";
    case fault_site::control:
      return "control";
    case fault_site::api_request:
      return "api_request";
    case fault_site::sim_actor:
      return "sim_actor";
    case fault_site::registry:
      return "registry";
    case fault_site::order_actor:
      return "order_actor";
    case fault_site::store_read:
      return "store_read";
    case fault_site::listener:
      return "listener";
  }
  return "unknown";
}

std::string describe(const std::exception_ptr& e) {
  if (!e)
    return "no exception";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    return "unknown exception";
  }
}

void report_fault(fault_site where, std::string_view what) noexcept {
  auto i = static_cast<std::size_t>(where);
  if (i < counters.size())
    counters[i].fetch_add(1, std::memory_order_relaxed);
  try {
    log::write_limited(
        fault_limiter, log::level::err, "internal_error",
        {{"where", to_string(where)},
         {"what", what},
         {"action", "caught, counted in imeilock_internal_errors_total; serving on"}});
  } catch (...) { // logging must not turn a caught fault into a crash
  }
}

void report_current_exception(fault_site where) noexcept {
  std::string what;
  try {
    what = describe(std::current_exception());
  } catch (...) {
    what = "unknown exception";
  }
  report_fault(where, what);
}

std::uint64_t faults(fault_site where) noexcept {
  auto i = static_cast<std::size_t>(where);
  return i < counters.size() ? counters[i].load(std::memory_order_relaxed) : 0;
}

} // namespace imeilock
