#include "daemon/daemon_config.hpp"

namespace imeilock::daemon {

namespace {

void load(process_config& cfg, config::section s) {
  s.read("workers", cfg.workers, 0u, 256u);
  s.read("io_threads", cfg.io_threads, 0u, 256u);
  if (s.has("log_level")) {
    std::string text;
    s.read("log_level", text);
    if (!log::parse_level(text, cfg.log_level))
      s.fail("log_level", "expected one of error, warning, notice, info, debug; got '" + text + "'");
  }
  s.read_duration("shutdown_timeout", cfg.shutdown_timeout, std::chrono::seconds{1},
                  std::chrono::minutes{10});
  s.finish();
}

} // namespace

daemon_config load_config_section(config::section root) {
  daemon_config cfg;
  load(cfg.process, root.child("daemon"));
  metrics::load(cfg.metrics, root.child("metrics"));
  root.finish();
  return cfg;
}

daemon_config load_config(const std::string& file_name) {
  return load_config_section(config::load_file(file_name));
}

daemon_config load_config_text(const std::string& text) {
  return load_config_section(config::load_string(text));
}

} // namespace imeilock::daemon
