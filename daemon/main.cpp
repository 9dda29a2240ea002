// imeilockd: IMEI locking for mobile operators. See README.md.

#include "common/allocator.hpp"
#include "common/log.hpp"
#include "daemon/daemon.hpp"
#include "daemon/daemon_config.hpp"
#include "metrics/metrics.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <string_view>

namespace {

constexpr int ex_usage = 64;  // sysexits.h EX_USAGE
constexpr int ex_config = 78; // sysexits.h EX_CONFIG

constexpr const char* usage_text =
    R"(Usage: imeilockd [--config FILE]     run the daemon (no FILE: embedded defaults)
       imeilockd --check-config FILE validate FILE and exit (0 ok, 78 invalid)
       imeilockd --version           print the version
       imeilockd --help              this text

imeilockd listens to RADIUS and Diameter accounting, learns which device
(IMEI) each SIM is in, and bars SIMs that move to another device while IMEI
locking is enabled. Every option of FILE is documented, with its default, in
the example configuration (installed as /etc/imeilockd/imeilockd.yaml).
Signals: SIGTERM/SIGINT stop gracefully, SIGHUP reloads the configuration.
)";

} // namespace

int main(int argc, char** argv) {
  using namespace imeilock;
  // Before anything allocates much (common/allocator.hpp); the benchmarks do
  // the same. A refusal costs memory, not correctness: say so and go on.
  if (!tune_allocator())
    log::warning("daemon.allocator_not_tuned", {});
  std::string config_file;
  bool check_only = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(usage_text, stdout);
      return 0;
    }
    if (arg == "--version") {
      std::printf("imeilockd %s\n", metrics::version_string().c_str());
      return 0;
    }
    if ((arg == "--config" || arg == "--check-config") && i + 1 < argc) {
      check_only = arg == "--check-config";
      config_file = argv[++i];
      continue;
    }
    std::fprintf(stderr, "imeilockd: unknown or incomplete argument '%s'\n\n%s", argv[i],
                 usage_text);
    return ex_usage;
  }
  // No --config: the embedded defaults (SQLite in ./var or $STATE_DIRECTORY,
  // simulated provisioning network, loopback listeners).
  auto loaded =
      config_file.empty() ? daemon::load_config_text("{}") : daemon::load_config(config_file);
  if (!loaded) {
    const auto& e = loaded.error();
    std::fprintf(stderr, "imeilockd: invalid configuration %s: %s\n", config_file.c_str(),
                 e.describe().c_str());
    if (!check_only)
      log::error("config.invalid", {{"file", config_file},
                                    {"key", e.where()},
                                    {"line", e.line()},
                                    {"message", e.message()}});
    return ex_config;
  }
  daemon::daemon_config cfg = std::move(loaded).value();
  if (check_only) {
    std::printf("%s: configuration is valid\n", config_file.c_str());
    return 0;
  }
  const char* state_dir = std::getenv("STATE_DIRECTORY"); // systemd's StateDirectory=
  if (auto paths = daemon::resolve_runtime_paths(cfg, state_dir ? state_dir : ""); !paths) {
    log::error("daemon.start_failed",
               {{"component", "state"}, {"reason", paths.error().describe()}});
    return 1;
  }
  daemon::daemon d{config_file, std::move(cfg)};
  return d.run();
}
