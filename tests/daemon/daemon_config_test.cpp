#include "daemon/daemon_config.hpp"

#include <catch2/catch.hpp>

using namespace imeilock;

TEST_CASE("the shipped example configuration loads and equals the built-in defaults") {
  auto cfg = daemon::load_config(IMEILOCK_EXAMPLE_CONFIG);
  daemon::daemon_config defaults = daemon::load_config_text("{}");
  CHECK(cfg.process.workers == defaults.process.workers);
  CHECK(cfg.process.io_threads == defaults.process.io_threads);
  CHECK(cfg.process.log_level == defaults.process.log_level);
  CHECK(cfg.process.shutdown_timeout == defaults.process.shutdown_timeout);
  CHECK(cfg.metrics == defaults.metrics);
}

TEST_CASE("the shipped example documents every option the daemon reads") {
  auto root = config::load_file(IMEILOCK_EXAMPLE_CONFIG);
  (void)daemon::load_config_section(root);
  CHECK(root.absent_keys() == std::vector<std::string>{});
}

TEST_CASE("an unknown top-level section is rejected with its line") {
  try {
    daemon::load_config_text("daemon:\n  workers: 1\nradiuss:\n  listen: 1\n");
    FAIL("expected an error");
  } catch (const config::error& e) {
    CHECK(e.key_path() == "radiuss");
    CHECK(e.line() == 3);
  }
}

TEST_CASE("log_level must be one of the documented names") {
  try {
    daemon::load_config_text("daemon:\n  log_level: loud\n");
    FAIL("expected an error");
  } catch (const config::error& e) {
    CHECK(e.key_path() == "daemon.log_level");
    CHECK(e.message().find("expected one of error, warning") == 0);
  }
}
