#pragma once
// IMEI values as the feeds carry them (R2) and as operators read them.

#include "lock/types.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace imeilock::lock {

/// What a feed's IMEI field turned out to be.
enum class imei_status : std::uint8_t {
  absent,    ///< the feed carried no IMEI (R3)
  ok,        ///< a valid IMEI/IMEISV; `device` is set
  malformed, ///< wrong length, non-digits, bad hex/TBCD: counted, treated as absent (R2)
};

/// A decoded IMEI: the device identity and, for an IMEISV, the software version.
struct imei_value {
  imei_status status = imei_status::absent;
  device_id device = no_device;
  std::optional<std::uint8_t> svn; ///< 0..99 when the value was an IMEISV
};

/// Decodes a raw IMEI field in any encoding seen in the wild:
///  - ASCII decimal of 14 (no check digit), 15 (IMEI; the 15th digit, Luhn or
///    a spare 0, is ignored) or 16 digits (IMEISV);
///  - TS 32.299 UTF-8 hexadecimal with an 'F' filler (e.g. "3534900123456789"
///    as hex digits, or 15 digits + 'F');
///  - 8-byte TBCD (swapped nibbles, 0xF filler), as in User-Equipment-Value.
/// An empty input is `absent`; anything else unreadable is `malformed`.
imei_value decode_imei(std::span<const std::uint8_t> raw);
inline imei_value decode_imei(std::string_view raw) {
  return decode_imei(std::span<const std::uint8_t>{
    reinterpret_cast<const std::uint8_t*>(raw.data()), raw.size()});
}

/// The Luhn check digit (0-9) of a 14-digit device identity.
std::uint8_t luhn_digit(device_id device);

/// The 15-digit display form: the 14 identity digits + the computed Luhn digit.
/// Empty string for no_device.
std::string format_imei(device_id device);

/// Parses an operator-entered IMEI (14, 15 or 16 ASCII digits); nullopt if invalid.
/// A 15-digit value must carry the right Luhn digit (or 0) to be accepted.
std::optional<device_id> parse_imei_strict(std::string_view text);

} // namespace imeilock::lock
