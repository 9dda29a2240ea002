#include "daemon/daemon_config.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>

using namespace imeilock;

TEST_CASE("the shipped example configuration loads and equals the built-in defaults") {
  auto loaded = daemon::load_config(IMEILOCK_EXAMPLE_CONFIG);
  REQUIRE(loaded);
  auto& cfg = *loaded;
  daemon::daemon_config defaults = daemon::load_config_text("{}").value();
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
  CHECK(cfg.imei_lock.action == defaults.imei_lock.action);
  CHECK(cfg.imei_lock.actions == defaults.imei_lock.actions);
  CHECK(cfg.sim_layer.store.path == defaults.sim_layer.store.path);
  CHECK(cfg.sim_layer.passivate_after == defaults.sim_layer.passivate_after);
  CHECK(cfg.sim_layer.max_in_flight == defaults.sim_layer.max_in_flight);
  CHECK(cfg.cluster == defaults.cluster);
  CHECK_FALSE(cfg.cluster.enabled);
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
  auto dir =
      std::filesystem::temp_directory_path() / ("imeilockd-cfg-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto cfg = daemon::load_config_text("{}").value();
  REQUIRE(daemon::resolve_runtime_paths(cfg, dir.string()));
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
  auto again = daemon::load_config_text("{}").value();
  REQUIRE(daemon::resolve_runtime_paths(again, dir.string()));
  std::string second;
  std::getline(std::ifstream{dir / "api-token"}, second);
  CHECK(second == first);
  // Configured tokens: no file is made; absolute paths stay.
  auto configured =
      daemon::load_config_text("api:\n  tokens: [example-only-not-a-secret]\nsim_layer:\n  "
                               "store:\n    path: /tmp/x.db\n")
          .value();
  REQUIRE(daemon::resolve_runtime_paths(configured, dir.string()));
  CHECK(configured.api.token_file.empty());
  CHECK(configured.sim_layer.store.path == "/tmp/x.db");
  std::filesystem::remove_all(dir);
}

TEST_CASE("the shipped example documents every option the daemon reads") {
  auto root = config::load_file(IMEILOCK_EXAMPLE_CONFIG);
  REQUIRE(daemon::load_config_section(root));
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
  auto r = daemon::load_config_text("daemon:\n  workers: 1\nradiuss:\n  listen: 1\n");
  REQUIRE_FALSE(r);
  CHECK(r.error() == config::ec::unknown_key);
  CHECK(r.error().where() == "radiuss");
  CHECK(r.error().line() == 3);
  CHECK(r.error().describe() == "line 3: radiuss: unknown key");
}

TEST_CASE("a cluster needs the PostgreSQL store: the error names cluster.enabled and its line") {
  auto sqlite = daemon::load_config_text("cluster:\n  enabled: true\n  node_id: a\n");
  REQUIRE_FALSE(sqlite);
  CHECK(sqlite.error().describe() ==
        "line 2: cluster.enabled: needs sim_layer.store.backend: postgresql (the nodes share "
        "its database)");
  auto postgresql = daemon::load_config_text(
      "cluster:\n  enabled: true\n  node_id: a\nsim_layer:\n  store:\n    backend: postgresql\n"
      "    postgresql:\n      conninfo: \"host=/run/postgresql dbname=imeilock\"\n");
  INFO((postgresql ? std::string{} : postgresql.error().describe()));
  REQUIRE(postgresql);
  CHECK(postgresql->cluster.enabled);
  CHECK(postgresql->cluster.node_id == "a");
}

TEST_CASE("log_level must be one of the documented names") {
  auto r = daemon::load_config_text("daemon:\n  log_level: loud\n");
  REQUIRE_FALSE(r);
  CHECK(r.error() == config::ec::invalid);
  CHECK(r.error().where() == "daemon.log_level");
  CHECK(r.error().message().find("expected one of error, warning") == 0);
}

TEST_CASE("loading returns every kind of configuration problem as an error, never throws") {
  auto syntax = daemon::load_config_text("daemon: [1, 2\n");
  REQUIRE_FALSE(syntax);
  CHECK(syntax.error() == config::ec::syntax);
  CHECK(syntax.error().describe().find("(root): YAML syntax error") != std::string::npos);

  auto missing = daemon::load_config("/nonexistent/imeilockd.yaml");
  REQUIRE_FALSE(missing);
  CHECK(missing.error() == config::ec::unreadable);
  CHECK(missing.error().describe() ==
        "(root): cannot open configuration file '/nonexistent/imeilockd.yaml'");

  // A cross-field check of a component (validate()) names the section and line.
  auto inconsistent =
      daemon::load_config_text("sim_layer:\n  shards: 2\n  store:\n    path: \"\"\n");
  REQUIRE_FALSE(inconsistent);
  CHECK(inconsistent.error() == config::ec::invalid);
  CHECK(inconsistent.error().describe() == "line 2: sim_layer: store.path: must not be empty");
}

TEST_CASE("runtime paths: a state directory that cannot be created is a file error") {
  auto cfg =
      daemon::load_config_text("sim_layer:\n  store:\n    path: /proc/imeilockd/x.db\n").value();
  auto r = daemon::resolve_runtime_paths(cfg, "/tmp");
  REQUIRE_FALSE(r);
  CHECK(r.error() == sys_ec::file_failed);
  CHECK(r.error().message().find("cannot create the state directory /proc/imeilockd") == 0);
}

TEST_CASE("sim_layer.store.backend: sqlite by default, postgresql with exactly one connection "
          "string source") {
  auto defaults = daemon::load_config_text("{}").value();
  CHECK(defaults.sim_layer.store.backend == store::backend_kind::sqlite);
  CHECK(defaults.sim_layer.store.postgresql.conninfo.empty());

  auto pg =
      daemon::load_config_text("sim_layer:\n  store:\n    backend: postgresql\n"
                               "    postgresql:\n      conninfo: \"host=/run/pg dbname=x\"\n");
  REQUIRE(pg);
  CHECK(pg->sim_layer.store.backend == store::backend_kind::postgresql);
  CHECK(pg->sim_layer.store.postgresql.conninfo == "host=/run/pg dbname=x");

  auto none = daemon::load_config_text("sim_layer:\n  store:\n    backend: postgresql\n");
  REQUIRE_FALSE(none);
  CHECK(none.error().describe().find("exactly one of conninfo and conninfo_file") !=
        std::string::npos);
  auto both = daemon::load_config_text(
      "sim_layer:\n  store:\n    backend: postgresql\n    postgresql:\n      conninfo: a=b\n"
      "      conninfo_file: /etc/x\n");
  REQUIRE_FALSE(both);

  auto unknown = daemon::load_config_text("sim_layer:\n  store:\n    backend: mysql\n");
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().where() == "sim_layer.store.backend");
  CHECK(unknown.error().line() == 3);
}

TEST_CASE("violation actions: radius.disconnect.enabled is an alias for disconnect_and_bar") {
  using lock::violation_action;
  SECTION("nothing set: bar everywhere, no Disconnect targets kept") {
    auto cfg = daemon::load_config_text("{}").value();
    CHECK(cfg.imei_lock.action == violation_action::bar);
    CHECK_FALSE(cfg.radius.disconnect.enabled);
  }
  SECTION("the old switch: every network whose action is bar disconnects first") {
    auto cfg = daemon::load_config_text("imei_lock:\n"
                                        "  actions: {ee: alert, multinet: bar}\n"
                                        "radius:\n"
                                        "  disconnect: {enabled: true}\n")
                   .value();
    CHECK(cfg.imei_lock.action == violation_action::disconnect_and_bar);
    CHECK(lock::action_for(cfg.imei_lock, "ee") == violation_action::alert);
    CHECK(lock::action_for(cfg.imei_lock, "multinet") == violation_action::disconnect_and_bar);
    CHECK(cfg.radius.disconnect.enabled);
  }
  SECTION("one network's disconnect_and_bar turns the sender on") {
    auto cfg = daemon::load_config_text("imei_lock:\n  actions: {roamnet901: disconnect_and_bar}\n")
                   .value();
    CHECK(cfg.imei_lock.action == violation_action::bar);
    CHECK(lock::action_for(cfg.imei_lock, "roamnet901") == violation_action::disconnect_and_bar);
    CHECK(cfg.radius.disconnect.enabled);
  }
  SECTION("the switch on, but every network in monitor mode: nothing to disconnect") {
    auto cfg = daemon::load_config_text("imei_lock: {action: alert}\n"
                                        "radius:\n  disconnect: {enabled: true}\n")
                   .value();
    CHECK(cfg.imei_lock.action == violation_action::alert);
    CHECK_FALSE(cfg.radius.disconnect.enabled);
  }
}
