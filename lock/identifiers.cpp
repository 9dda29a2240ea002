#include "lock/identifiers.hpp"

#include <algorithm>

namespace imeilock::lock {

namespace {

bool all_digits(std::string_view text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

/// A refused identifier: ec::invalid with the sentence an operator reads.
error refuse(std::string reason) {
  return error{ec::invalid, std::move(reason)};
}

/// Quotes an operator's value in a reason, cut short so a garbage field
/// cannot make the message unreadable.
std::string quoted(std::string_view text) {
  constexpr std::size_t max_shown = 32;
  std::string out = "\"";
  out.append(text.substr(0, max_shown));
  if (text.size() > max_shown)
    out += "...";
  out += '"';
  return out;
}

} // namespace

bool luhn_valid(std::string_view digits) {
  if (!all_digits(digits))
    return false;
  unsigned sum = 0;
  bool twice = false; // the check digit itself (rightmost) is not doubled
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
    auto d = static_cast<unsigned>(*it - '0');
    if (twice) {
      d *= 2;
      if (d > 9)
        d -= 9;
    }
    sum += d;
    twice = !twice;
  }
  return sum % 10 == 0;
}

expected<std::string> validate_iccid(std::string_view text) {
  if (text.empty())
    return refuse("ICCID is empty");
  if (!all_digits(text))
    return refuse("ICCID " + quoted(text) + " must contain decimal digits only");
  if (text.size() < 18 || text.size() > 20)
    return refuse("ICCID " + quoted(text) + " has " + std::to_string(text.size()) +
                  " digits; an ICCID has 18 to 20 (ITU-T E.118)");
  if (!text.starts_with("89"))
    return refuse("ICCID " + quoted(text) +
                  " must start with 89, the telecom industry identifier (ITU-T E.118)");
  if (text.size() >= 19 && !luhn_valid(text))
    return refuse("ICCID " + quoted(text) + " has a wrong check digit (Luhn): check it for a typo");
  return std::string{text};
}

expected<std::uint64_t> validate_imsi(std::string_view text) {
  if (text.empty())
    return refuse("IMSI is empty");
  if (!all_digits(text))
    return refuse("IMSI " + quoted(text) + " must contain decimal digits only");
  if (text.size() != 15)
    return refuse("IMSI " + quoted(text) + " has " + std::to_string(text.size()) +
                  " digits; an IMSI has exactly 15");
  std::uint64_t v = 0;
  for (char c : text)
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  // MCC 000 is not assigned (E.212), and 0 is the index's empty key.
  if (v == 0)
    return refuse("IMSI " + quoted(text) + " is all zeros");
  return v;
}

std::string format_imsi(std::uint64_t imsi) {
  std::string out(15, '0');
  for (int i = 14; i >= 0 && imsi != 0; --i) {
    out[static_cast<std::size_t>(i)] = static_cast<char>('0' + imsi % 10);
    imsi /= 10;
  }
  return out;
}

expected<std::string> validate_msisdn(std::string_view text) {
  if (text.empty())
    return refuse("MSISDN is empty");
  std::string_view digits = text;
  if (digits.front() == '+')
    digits.remove_prefix(1);
  if (!all_digits(digits))
    return refuse("MSISDN " + quoted(text) +
                  " must be digits in international form, optionally after a '+'");
  if (digits.size() < 7 || digits.size() > 15)
    return refuse("MSISDN " + quoted(text) + " has " + std::to_string(digits.size()) +
                  " digits; an international number (E.164) has 7 to 15");
  if (digits.front() == '0')
    return refuse("MSISDN " + quoted(text) +
                  " starts with 0: give it in international form with its country code");
  return std::string{digits};
}

} // namespace imeilock::lock
