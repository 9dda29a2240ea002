#pragma once
// The state of one SIM as the lock rules see it (DESIGN.md §2), in the
// compact form that is kept in memory for every SIM of the inventory and
// written to the store. Pure data: no actors, no I/O.

#include <cstdint>
#include <string_view>

namespace imeilock::lock {

/// A device: TAC (8 digits) + serial number (6 digits), the first 14 digits of
/// an IMEI/IMEISV, as an integer (R2). 0 means "no device". The check digit
/// and software version are not part of the identity.
using device_id = std::uint64_t;
inline constexpr device_id no_device = 0;

/// SIM lifecycle as far as the lock cares.
enum class sim_status : std::uint8_t { inactive, active };

/// `lock.state` (DESIGN §2).
enum class lock_state : std::uint8_t { off, awaiting_first_imei, locked };

/// `bar.state` (DESIGN §2).
enum class bar_state : std::uint8_t { none, bar_pending, barred, unbar_pending };

/// `bar.reason`: why the current (or pending) bar exists.
enum class bar_reason : std::uint8_t { none, imei_lock, manual };

/// The operator orders (DESIGN §3). enable/disable are Mobile Manager
/// internal (lead time usually 0); bar, unbar and activate go to the network.
enum class order_type : std::uint8_t {
  none,
  activate,
  enable_imei_lock,
  disable_imei_lock,
  bar,
  unbar,
};

/// How an unbar of an IMEI-lock bar treats the lock (R10, R11).
enum class unbar_mode : std::uint8_t { none, keep_lock, update_to_last_seen };

/// What a violation (R7) does on a SIM's network (imei_lock.action/actions):
/// `bar` raises the Bar order (the product text); `alert` is monitor mode
/// (recorded, counted, notified, no order: the SIM keeps working);
/// `disconnect_and_bar` asks the NAS to end the RADIUS session (RFC 5176)
/// before raising the Bar order.
enum class violation_action : std::uint8_t { bar, alert, disconnect_and_bar };

/// What a lock holds a SIM to (R16): `imei`, one device (the product text,
/// the default); `device_model`, the model of the lock's device (its TAC, the
/// IMEI's first 8 digits), so the SIM may move between devices of that model.
enum class lock_scope : std::uint8_t { imei, device_model };

/// The Type Allocation Code of a device (R2): its first 8 digits, the model.
constexpr std::uint32_t tac_of(std::uint64_t device) {
  return static_cast<std::uint32_t>(device / 1'000'000);
}

/// Everything the rules need to know about one SIM. 56 bytes; one of these
/// per SIM lives in memory (passivated SIMs) so keep it small.
struct sim_state {
  device_id lock_imei = no_device;      ///< `lock.imei`, set only when lock == locked
  device_id last_seen_imei = no_device; ///< reference for change detection (R5, R9)
  device_id trigger_imei = no_device;   ///< first device seen after a violation (R7)
  std::uint64_t pending_order_id = 0;   ///< operator/bar order in flight, 0 if none
  std::int64_t updated_at_ms = 0;       ///< unix ms of the last state change
  sim_status status = sim_status::inactive;
  lock_state lock = lock_state::off;
  bar_state bar = bar_state::none;
  bar_reason reason = bar_reason::none;
  order_type pending_order = order_type::none; ///< type of pending_order_id
  unbar_mode pending_unbar = unbar_mode::none; ///< mode of a pending unbar
  bool activate_with_lock = false;             ///< pending activation carries "enable IMEI locking"
  /// A violation was seen in monitor mode (violation_action::alert) and no
  /// Bar order raised; cleared when the operator acts (a bar completes, the
  /// lock is disabled or updated to another device).
  bool alerted = false;
  /// What the lock holds the SIM to (R16); set when an order enabling the lock
  /// is placed (enable_imei_lock, activate with lock), read while the lock is on.
  lock_scope scope = lock_scope::imei;

  friend bool operator==(const sim_state&, const sim_state&) = default;
};

/// The API/store spelling of each value: the enumerator's name ("awaiting_first_imei").
std::string_view to_string(sim_status v);
std::string_view to_string(lock_state v);
std::string_view to_string(bar_state v);
std::string_view to_string(bar_reason v);
std::string_view to_string(order_type v);
std::string_view to_string(unbar_mode v);
std::string_view to_string(violation_action v);
std::string_view to_string(lock_scope v);

/// Parsers for the API/config spelling (the to_string() forms); false if unknown.
bool parse(std::string_view text, sim_status& out);
bool parse(std::string_view text, lock_state& out);
bool parse(std::string_view text, bar_state& out);
bool parse(std::string_view text, bar_reason& out);
bool parse(std::string_view text, order_type& out);
bool parse(std::string_view text, unbar_mode& out);
bool parse(std::string_view text, violation_action& out);
bool parse(std::string_view text, lock_scope& out);

} // namespace imeilock::lock
