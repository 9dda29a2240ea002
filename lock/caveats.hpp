#pragma once
// The product text's caveats (DESIGN.md, the IMEI locking product text),
// quoted so operators recognise them. This is the one table of their wording:
// the API's order warnings and GET /v1/sims/{iccid}'s `caveats` (which the
// dashboard shows beside each action) both read it; no copy lives in the
// dashboard's HTML or JavaScript. Pure data and string building.

#include "lock/types.hpp"

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace imeilock::lock {

/// One caveat of the product text.
enum class caveat : std::uint8_t {
  bar_lead_time,          ///< a Bar order placed by an operator waits for the network
  imei_lock_bar,          ///< the IMEI Locking Bar (a violation's) waits for the network
  test_in_another_device, ///< disable the lock before testing the SIM in another device
  keep_lock,              ///< "Unbar and keep existing IMEI Lock" (R10)
  keep_lock_strict,       ///< the same option when strict enforcement is on
  update_to_last_seen,    ///< "Unbar and update to last seen IMEI" (R11)
  lock_on_activation,     ///< the activation tick box "Enable IMEI Locking" (R13)
  no_imei,                ///< networks that provide no IMEI (R3, R6)
};

/// A caveat's key (its name in the API's `caveats` object) and wording.
struct caveat_entry {
  caveat id;
  std::string_view key;
  std::string_view text;
};

/// Every caveat, in the enum's order.
std::span<const caveat_entry> caveats();
/// The key of `c`, e.g. "test_in_another_device".
std::string_view caveat_key(caveat c);
/// The wording of `c` as the table holds it.
std::string_view caveat_text(caveat c);

/// A bar caveat (bar_lead_time or imei_lock_bar) with the network's
/// configured bar lead time appended ("The bar takes effect after <network>'s
/// bar lead time: 5s."); the wording alone when `lead_time` is empty.
std::string bar_caveat(caveat c, std::string_view network, std::string_view lead_time);

/// The caveats an accepted order's answer carries as warnings (beyond the
/// rules' own, R10/R12): a Bar order, the bar lead time of its network
/// (`bar_lead_time`, as orders::lead_time::describe() writes it); an order
/// turning the lock on (enable_imei_lock, activate with the lock), the advice
/// to disable it before testing the SIM in another device.
std::vector<std::string> order_caveats(order_type type, bool with_lock, std::string_view network,
                                       std::string_view bar_lead_time);

} // namespace imeilock::lock
