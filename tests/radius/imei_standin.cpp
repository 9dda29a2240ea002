// Temporary stand-in for lock::decode_imei while the lock component is being
// written in parallel (tests/radius/CMakeLists.txt uses it only when the
// imeilock_lock target does not exist). ASCII digits only.
#include "lock/imei.hpp"

namespace imeilock::lock {

imei_value decode_imei(std::span<const std::uint8_t> raw) {
  imei_value v;
  if (raw.empty())
    return v;
  v.status = imei_status::malformed;
  if (raw.size() < 14 || raw.size() > 16)
    return v;
  device_id d = 0;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] < '0' || raw[i] > '9')
      return v;
    if (i < 14)
      d = d * 10 + static_cast<device_id>(raw[i] - '0');
  }
  v.status = imei_status::ok;
  v.device = d;
  if (raw.size() == 16)
    v.svn = static_cast<std::uint8_t>((raw[14] - '0') * 10 + (raw[15] - '0'));
  return v;
}

} // namespace imeilock::lock
