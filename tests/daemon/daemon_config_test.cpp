#include "daemon/daemon_config.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>

using namespace imeilock;

TEST_CASE("the shipped example configuration loads and equals the built-in defaults") {
  auto cfg = daemon::load_config(IMEILOCK_EXAMPLE_CONFIG);
  daemon::daemon_config defaults = daemon::load_config_text("{}");
  CHECK(cfg.process.workers == defaults.process.workers);
  CHECK(cfg.process.io_threads == defaults.process.io_threads);
  CHECK(cfg.process.log_level == defaults.process.log_level);
  CHECK(cfg.process.shutdown_timeout == defaults.process.shutdown_timeout);
  CHECK(cfg.metrics == defaults.metrics);
  CHECK(cfg.orders.networks.size() == defaults.orders.networks.size());
  CHECK(cfg.orders.defaults == defaults.orders.defaults);
  CHECK(cfg.imei_lock.lock_networks == defaults.imei_lock.lock_networks);
  CHECK(cfg.imei_lock.activation_lock_networks == defaults.imei_lock.activation_lock_networks);
  CHECK(cfg.imei_lock.strict == defaults.imei_lock.strict);
  CHECK(cfg.sim_layer.store.path == defaults.sim_layer.store.path);
  CHECK(cfg.sim_layer.passivate_after == defaults.sim_layer.passivate_after);
  CHECK(cfg.sim_layer.max_in_flight == defaults.sim_layer.max_in_flight);
  CHECK(cfg.radius.listen == defaults.radius.listen);
  CHECK(cfg.radius.duplicate_window == defaults.radius.duplicate_window);
  CHECK(cfg.radius.clients.empty());
  CHECK(cfg.diameter.listen == defaults.diameter.listen);
  CHECK(cfg.diameter.watchdog == defaults.diameter.watchdog);
  CHECK(cfg.diameter.origin_host == defaults.diameter.origin_host);
  CHECK(cfg.api.listen == defaults.api.listen);
  CHECK(cfg.api.max_body_bytes == defaults.api.max_body_bytes);
  CHECK(cfg.api.header_timeout == defaults.api.header_timeout);
  CHECK(cfg.api.max_connections == defaults.api.max_connections);
  CHECK(cfg.api.max_connections_per_source == defaults.api.max_connections_per_source);
  CHECK(cfg.webhooks.max_attempts == defaults.webhooks.max_attempts);
}

TEST_CASE("a relative store path goes under the state directory, and a token is created once") {
  auto dir = std::filesystem::temp_directory_path() /
             ("imeilockd-cfg-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto cfg = daemon::load_config_text("{}");
  REQUIRE(daemon::resolve_runtime_paths(cfg, dir.string()).empty());
  CHECK(cfg.sim_layer.store.path == (dir / "imeilockd.db").string());
  CHECK(cfg.api.token_file == (dir / "api-token").string());
  auto perms = std::filesystem::status(dir / "api-token").permissions();
  CHECK((perms & std::filesystem::perms::group_all) == std::filesystem::perms::none);
  CHECK((perms & std::filesystem::perms::others_all) == std::filesystem::perms::none);
  std::string first;
  std::getline(std::ifstream{dir / "api-token"}, first);
  CHECK(first.rfind("rw ", 0) == 0);
  CHECK(first.size() == 3 + 32);
  // A second start keeps the same token.
  auto again = daemon::load_config_text("{}");
  REQUIRE(daemon::resolve_runtime_paths(again, dir.string()).empty());
  std::string second;
  std::getline(std::ifstream{dir / "api-token"}, second);
  CHECK(second == first);
  // Configured tokens: no file is made; absolute paths stay.
  auto configured = daemon::load_config_text(
    "api:\n  tokens: [example-only-not-a-secret]\nsim_layer:\n  store:\n    path: /tmp/x.db\n");
  REQUIRE(daemon::resolve_runtime_paths(configured, dir.string()).empty());
  CHECK(configured.api.token_file.empty());
  CHECK(configured.sim_layer.store.path == "/tmp/x.db");
  std::filesystem::remove_all(dir);
}

TEST_CASE("the shipped example documents every option the daemon reads") {
  auto root = config::load_file(IMEILOCK_EXAMPLE_CONFIG);
  (void)daemon::load_config_section(root);
  std::vector<std::string> undocumented;
  for (const auto& key : root.absent_keys()) {
    // A listed network overrides orders.defaults key by key; the example
    // documents every key once, under orders.defaults.
    if (key.rfind("orders.networks.", 0) == 0)
      continue;
    undocumented.push_back(key);
  }
  CHECK(undocumented == std::vector<std::string>{});
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
