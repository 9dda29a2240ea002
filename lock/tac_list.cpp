#include "lock/tac_list.hpp"

#include "config/error.hpp"

#include <algorithm>
#include <iterator>
#include <optional>
#include <string>

namespace imeilock::lock {

namespace {

/// The value of exactly 8 decimal digits, or nothing.
std::optional<std::uint32_t> eight_digits(std::string_view text) {
  if (text.size() != 8)
    return std::nullopt;
  std::uint32_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9')
      return std::nullopt;
    value = value * 10 + static_cast<std::uint32_t>(c - '0');
  }
  return value;
}

} // namespace

expected<tac_range> parse_tac_range(std::string_view text) {
  auto bad = [&](std::string why) {
    return error{config::ec::invalid, "\"" + std::string{text} + "\" " + std::move(why)};
  };
  auto dash = text.find('-');
  auto first = eight_digits(text.substr(0, dash));
  if (!first)
    return bad("is not a TAC (the first 8 digits of an IMEI) or a range such as "
               "35209900-35209999");
  if (dash == std::string_view::npos)
    return tac_range{*first, *first};
  auto last = eight_digits(text.substr(dash + 1));
  if (!last)
    return bad("is not a range of TACs: expected 8 digits on each side of the '-'");
  if (*last < *first)
    return bad("is a range whose end comes before its start");
  return tac_range{*first, *last};
}

tac_list::tac_list(std::vector<tac_range> ranges) {
  std::sort(ranges.begin(), ranges.end(),
            [](const tac_range& a, const tac_range& b) { return a.first < b.first; });
  for (const auto& r : ranges) {
    // Overlapping or adjacent ranges become one.
    if (!ranges_.empty() && r.first <= ranges_.back().last + 1)
      ranges_.back().last = std::max(ranges_.back().last, r.last);
    else
      ranges_.push_back(r);
  }
}

bool tac_list::allows(std::uint32_t tac) const {
  // The first range that starts after `tac`; the one before it may hold it.
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), tac,
                             [](std::uint32_t t, const tac_range& r) { return t < r.first; });
  return it != ranges_.begin() && tac <= std::prev(it)->last;
}

} // namespace imeilock::lock
