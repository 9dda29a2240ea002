#pragma once
// The `imei_lock:` section of imeilockd.yaml: R1 eligibility lists and strict
// mode, read into lock::eligibility_config. The YAML reader stays up here so
// that lock/ needs no YAML (it only checks the values: lock::validate).

#include "config/section.hpp"
#include "lock/eligibility.hpp"

namespace imeilock::daemon {

/// Reads `lock_networks`, `activation_lock_networks` and `strict` from `s`
/// (absent keys keep their defaults), then checks them. Throws config::error
/// naming the key for a wrong type, an invalid list or an unknown key.
void load(lock::eligibility_config& cfg, config::section s);

} // namespace imeilock::daemon
