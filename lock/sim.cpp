#include "lock/sim.hpp"

#include <cstdio>
#include <ctime>

namespace imeilock::lock {

std::string no_imei_warning(const sim_activity& a) {
  if (!a.never_with_imei())
    return {};
  std::time_t secs = static_cast<std::time_t>(a.observed_s);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char at[64];
  std::snprintf(at, sizeof at, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return std::string{"this SIM has been observed (last at "} + at +
         ") but never with an IMEI: its network may not provide one, and where no IMEI is "
         "provided the lock cannot take (it stays awaiting its first IMEI) and no change event "
         "can bar the SIM";
}

} // namespace imeilock::lock
