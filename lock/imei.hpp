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
/// Two values are the same device exactly when `device` is equal (R2).
struct imei_value {
  imei_status status = imei_status::absent;
  device_id device = no_device;
  std::optional<std::uint8_t> svn; ///< 0..99 when the value was an IMEISV
};

/// Decodes a raw IMEI field in any encoding seen in the wild (R2). The input
/// length decides the encoding, so no value is ambiguous:
///  - 8 bytes: TBCD as in TS 29.274 §8.10 / TS 29.060 §7.7.53 / the
///    User-Equipment-Value of some PCEFs (Wireshark decodes 8-byte values so):
///    digit 1 in the low nibble of byte 1, digit 2 in its high nibble, ...;
///    16 digits (IMEISV), or 15 (IMEI) / 14 followed by 0xF filler nibbles.
///    Eight ASCII digits ("12345678") are a truncated text, hence malformed.
///  - 14 to 16 bytes: characters. ASCII decimal of 14 (no check digit), 15
///    (IMEI; the 15th digit, Luhn or a spare 0, is ignored: TS 23.003 §6.2.1
///    says the network does not transmit it) or 16 digits (IMEISV: TAC, SNR,
///    SVN). This includes TS 32.299 §7.1.17 (User-Equipment-Info) PS charging's "UTF-8 encoded
///    hexadecimal" User-Equipment-Info-Value, which writes the IMEISV digits
///    in order as characters and, when only an IMEI is known, appends a filler
///    'F' (or 'f') to make 16 characters ("353490012345678F"). Fillers are
///    accepted only after the digits, and only up to 16 characters in all.
///    (IMS charging's "UTF-8 encoded decimal" is the 15/16-digit case.)
/// A hexadecimal dump of TBCD octets (swapped nibbles written as characters)
/// is not an encoding any specification or implementation we know uses; it
/// decodes to a wrong device or, with its filler inside, to `malformed`.
/// An empty input is `absent`. Any other length, a non-digit (other than a
/// trailing filler), or an all-zero TAC+SNR is `malformed`. Never throws.
imei_value decode_imei(std::span<const std::uint8_t> raw);
inline imei_value decode_imei(std::string_view raw) {
  return decode_imei(
      std::span<const std::uint8_t>{reinterpret_cast<const std::uint8_t*>(raw.data()), raw.size()});
}

/// The Luhn check digit (0-9) of a 14-digit device identity (TS 23.003 Annex B:
/// double every other digit starting from the rightmost of the 14).
std::uint8_t luhn_digit(device_id device);

/// The 15-digit display form: the 14 identity digits (leading zeros kept) + the
/// computed Luhn digit (R2). Empty string for no_device or a value >= 10^14.
std::string format_imei(device_id device);

/// Parses an operator-entered IMEI (14, 15 or 16 ASCII digits, nothing else);
/// nullopt if invalid. A 15-digit value must carry the right Luhn digit (or a
/// spare 0) to be accepted, so a typo in an IMEI is caught; all-zero is invalid.
std::optional<device_id> parse_imei_strict(std::string_view text);

} // namespace imeilock::lock
