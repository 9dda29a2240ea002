#include "daemon/imei_lock_config.hpp"

namespace imeilock::daemon {

void load(lock::eligibility_config& cfg, config::section s) {
  s.read("lock_networks", cfg.lock_networks);
  s.read("activation_lock_networks", cfg.activation_lock_networks);
  s.read("strict", cfg.strict);
  s.finish();
  if (auto valid = lock::validate(cfg); !valid)
    s.fail(valid.error().where(), valid.error().message());
}

} // namespace imeilock::daemon
