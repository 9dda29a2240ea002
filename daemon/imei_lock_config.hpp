#pragma once
// The `imei_lock:` section of imeilockd.yaml: R1 eligibility lists, strict
// mode and the violation actions, read into lock::eligibility_config. The
// YAML reader stays up here so that lock/ needs no YAML (it only checks the
// values: lock::validate).

#include "config/section.hpp"
#include "lock/eligibility.hpp"

namespace imeilock::daemon {

/// Reads `lock_networks`, `activation_lock_networks`, `strict`, `action` and
/// `actions` from `s` (absent keys keep their defaults), then checks them.
/// Throws config::error naming the key for a wrong type, an invalid list, an
/// unknown action or an unknown key.
void load(lock::eligibility_config& cfg, config::section s);

/// The old `radius.disconnect.enabled: true` switch, kept as an alias: every
/// network whose action is `bar` (the default included) behaves as
/// `disconnect_and_bar`. Does nothing when `radius_disconnect` is false.
void apply_disconnect_alias(lock::eligibility_config& cfg, bool radius_disconnect);

} // namespace imeilock::daemon
