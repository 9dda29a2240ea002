#pragma once
// R1 as configuration: which networks may use IMEI locking, and which may
// set it at activation (R13). Pure data and checks: the daemon reads it from
// the `imei_lock:` section of the YAML (daemon/imei_lock_config.hpp).

#include "config/error.hpp"
#include "lock/machine.hpp"

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace imeilock::lock {

/// Which networks the lock rules apply to. Network names are the names the
/// inventory gives each SIM's network ("multinet", "roamnet901", ...), and
/// compare exactly. Defaults are the product text's lists.
struct eligibility_config {
  /// R1: networks on which IMEI locking may be enabled.
  std::vector<std::string> lock_networks{"multinet", "roamnet901", "ee", "ee_big_data"};
  /// R1/R13: networks on which an activation order may enable the lock.
  /// Each must also be in lock_networks.
  std::vector<std::string> activation_lock_networks{"roamnet901"};
  /// Beyond the seed: bar on any observation whose IMEI is not the lock's,
  /// not only on a change event, closing the R10 caveat. Off by default.
  bool strict = false;
  /// What a violation does on networks not in `actions`: bar (the product
  /// text), alert (monitor mode) or disconnect_and_bar.
  violation_action action = violation_action::bar;
  /// Per-network overrides of `action`, in file order (network, action).
  std::vector<std::pair<std::string, violation_action>> actions;
  /// R17: per network, the device models (TACs) its SIMs may be used in
  /// (network, list), in file order; a network not listed allows any device.
  /// Read at start only (policies point into it): not reloadable.
  std::vector<std::pair<std::string, tac_list>> allowed_tacs;
};

/// The action on `network`: its entry in cfg.actions, else cfg.action.
violation_action action_for(const eligibility_config& cfg, std::string_view network);

/// True when some network (or the default) disconnects before barring: the
/// RADIUS front-end must then keep each session's Disconnect target.
bool any_disconnect(const eligibility_config& cfg);

/// Succeeds when `cfg` is usable, else a config::ec::invalid error whose
/// where() is the key and whose message names what is wrong (empty or
/// duplicate names, an activation network that cannot be locked).
expected<void> validate(const eligibility_config& cfg);

/// The rules' view of one network (R1): eligibility, strict mode, the
/// violation action and the allowed device models (R17, pointing into `cfg`).
/// An unknown or empty network name is eligible for nothing.
policy policy_for(const eligibility_config& cfg, std::string_view network);

} // namespace imeilock::lock
