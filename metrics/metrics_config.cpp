// The `metrics:` section, apart from the exposer so the configuration loader
// builds without prometheus-cpp (sanitizer and fuzz builds).
#include "metrics/metrics.hpp"

namespace imeilock::metrics {

void load(metrics_config& cfg, config::section s) {
  s.read("listen", cfg.listen);
  s.read("threads", cfg.threads, 1u, 16u);
  s.finish();
}

} // namespace imeilock::metrics
