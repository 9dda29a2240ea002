#include "lock/imei.hpp"

#include <algorithm>
#include <array>

namespace imeilock::lock {

namespace {

constexpr std::uint8_t filler = 0xF;
constexpr std::size_t tbcd_length = 8;
constexpr std::size_t max_digits = 16;
constexpr device_id identity_limit = 100'000'000'000'000ULL; // 10^14: 14 digits

/// Up to 16 decimal digits read from a feed, before they become an identity.
struct digit_string {
  std::array<std::uint8_t, max_digits> d{};
  std::size_t n = 0;
};

imei_value malformed() {
  return imei_value{imei_status::malformed, no_device, std::nullopt};
}

/// R2: TAC + SNR (the first 14 digits) are the device; digits 15-16 of an
/// IMEISV are the software version; a 15th IMEI digit (check or spare) is
/// dropped. `n` must be 14, 15 or 16.
imei_value from_digits(const digit_string& ds) {
  if (ds.n < 14 || ds.n > 16)
    return malformed();
  device_id dev = 0;
  for (std::size_t i = 0; i < 14; ++i)
    dev = dev * 10 + ds.d[i];
  if (dev == no_device)
    return malformed(); // all zeros: a placeholder some equipment sends, not a device
  imei_value v{imei_status::ok, dev, std::nullopt};
  if (ds.n == 16)
    v.svn = static_cast<std::uint8_t>(ds.d[14] * 10 + ds.d[15]);
  return v;
}

/// Nibbles (0-15) in transmission order -> digits; 0xF only as trailing filler.
bool push_nibble(digit_string& ds, std::uint8_t nibble, bool& in_filler) {
  if (nibble == filler) {
    in_filler = true;
    return true;
  }
  if (nibble > 9 || in_filler) // A-E, or a digit after the filler started
    return false;
  ds.d[ds.n++] = nibble;
  return true;
}

imei_value decode_tbcd(std::span<const std::uint8_t> raw) {
  // TS 29.274 §8.10 / TS 24.008 §10.5.1.4: low nibble first, 0xF end mark.
  digit_string ds;
  bool in_filler = false;
  for (std::uint8_t byte : raw) {
    if (!push_nibble(ds, static_cast<std::uint8_t>(byte & 0x0F), in_filler) ||
        !push_nibble(ds, static_cast<std::uint8_t>(byte >> 4), in_filler))
      return malformed();
  }
  return from_digits(ds);
}

imei_value decode_text(std::span<const std::uint8_t> raw) {
  // ASCII/UTF-8 decimal, with TS 32.299 §7.1.17's trailing 'F' filler allowed.
  digit_string ds;
  bool in_filler = false;
  for (std::uint8_t c : raw) {
    std::uint8_t nibble = 0;
    if (c >= '0' && c <= '9')
      nibble = static_cast<std::uint8_t>(c - '0');
    else if (c == 'F' || c == 'f')
      nibble = filler;
    else
      return malformed();
    if (!push_nibble(ds, nibble, in_filler))
      return malformed();
  }
  return from_digits(ds);
}

} // namespace

imei_value decode_imei(std::span<const std::uint8_t> raw) {
  if (raw.empty())
    return imei_value{}; // R3: no IMEI
  if (raw.size() == tbcd_length) {
    // Eight ASCII digits are a truncated textual value, not TBCD: as TBCD
    // every other digit would be 3 (0x30-0x39), which no real IMEI is.
    if (std::all_of(raw.begin(), raw.end(), [](std::uint8_t c) { return c >= '0' && c <= '9'; }))
      return malformed();
    return decode_tbcd(raw);
  }
  if (raw.size() >= 14 && raw.size() <= max_digits)
    return decode_text(raw);
  return malformed();
}

std::uint8_t luhn_digit(device_id device) {
  // TS 23.003 Annex B: from the right, double D1, D3, ... D13 (D1 is the
  // rightmost of the 14 digits), add the digits of the products and the
  // undoubled digits; the check digit brings the sum to a multiple of 10.
  unsigned sum = 0;
  device_id rest = device % identity_limit;
  for (int i = 0; i < 14; ++i) {
    auto digit = static_cast<unsigned>(rest % 10);
    rest /= 10;
    if (i % 2 == 0) {
      digit *= 2;
      if (digit > 9)
        digit -= 9;
    }
    sum += digit;
  }
  return static_cast<std::uint8_t>((10 - sum % 10) % 10);
}

std::string format_imei(device_id device) {
  if (device == no_device || device >= identity_limit)
    return {};
  std::string out(15, '0');
  device_id rest = device;
  for (int i = 13; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = static_cast<char>('0' + rest % 10);
    rest /= 10;
  }
  out[14] = static_cast<char>('0' + luhn_digit(device));
  return out;
}

std::optional<device_id> parse_imei_strict(std::string_view text) {
  if (text.size() < 14 || text.size() > 16)
    return std::nullopt;
  for (char c : text)
    if (c < '0' || c > '9')
      return std::nullopt;
  auto v = decode_imei(text);
  if (v.status != imei_status::ok)
    return std::nullopt;
  if (text.size() == 15) {
    auto check = static_cast<std::uint8_t>(text[14] - '0');
    if (check != 0 && check != luhn_digit(v.device))
      return std::nullopt; // a typo: the operator must look again
  }
  return v.device;
}

} // namespace imeilock::lock
