#include "daemon/daemon_config.hpp"

#include "common/log.hpp"
#include "daemon/imei_lock_config.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

namespace imeilock::daemon {

namespace {

void load(process_config& cfg, config::section s) {
  s.read("workers", cfg.workers, 0u, 256u);
  s.read("io_threads", cfg.io_threads, 0u, 256u);
  if (s.has("log_level")) {
    std::string text;
    s.read("log_level", text);
    if (!log::parse_level(text, cfg.log_level))
      s.fail("log_level",
             "expected one of error, warning, notice, info, debug; got '" + text + "'");
  }
  s.read_duration("shutdown_timeout", cfg.shutdown_timeout, std::chrono::seconds{1},
                  std::chrono::minutes{10});
  s.finish();
}

/// Reads every section; throws config::error (the reader's idiom) for the
/// first problem. Only the public functions below call it, through capture().
daemon_config read_all(config::section root) {
  daemon_config cfg;
  load(cfg.process, root.child("daemon"));
  metrics::load(cfg.metrics, root.child("metrics"));
  daemon::load(cfg.imei_lock, root.child("imei_lock"));
  orders::load(cfg.orders, root.child("orders"));
  actors::load(cfg.sim_layer, root.child("sim_layer"));
  cluster::load(cfg.cluster, root.child("cluster"));
  radius::load(cfg.radius, root.child("radius"));
  diameter::load(cfg.diameter, root.child("diameter"));
  api::load(cfg.api, root.child("api"));
  api::load(cfg.webhooks, root.child("webhooks"));
  root.finish();
  // radius.disconnect.enabled, the old global switch, is an alias: networks
  // whose action is bar disconnect first. The RADIUS front-end keeps each
  // session's Disconnect target, and the sender sends, exactly when some
  // network's action is disconnect_and_bar.
  apply_disconnect_alias(cfg.imei_lock, cfg.radius.disconnect.enabled);
  cfg.radius.disconnect.enabled = lock::any_disconnect(cfg.imei_lock);
  // Cross-field checks the components own; the message names the key.
  auto check = [&](const std::string& section, const expected<void>& valid) {
    if (!valid)
      throw config::error{section, root.line(section), valid.error().describe()};
  };
  check("sim_layer", cfg.sim_layer.validate());
  check("radius", cfg.radius.validate());
  check("diameter", cfg.diameter.validate());
  check("orders", cfg.orders.validate());
  // The nodes of a cluster share one PostgreSQL database (docs/cluster.md).
  if (cfg.cluster.enabled && cfg.sim_layer.store.backend != store::backend_kind::postgresql)
    throw config::error{"cluster.enabled", root.child("cluster").line("enabled"),
                        "needs sim_layer.store.backend: postgresql (the nodes share its database)"};
  return cfg;
}

} // namespace

expected<daemon_config> load_config_section(config::section root) {
  return config::capture([&] { return read_all(std::move(root)); });
}

expected<daemon_config> load_config(const std::string& file_name) {
  return config::capture([&] { return read_all(config::load_file(file_name)); });
}

expected<daemon_config> load_config_text(const std::string& text) {
  return config::capture([&] { return read_all(config::load_string(text)); });
}

} // namespace imeilock::daemon

namespace imeilock::daemon {

namespace {

std::string random_token() {
  std::random_device rd; // getrandom(2) on Linux
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 16; ++i) {
    auto v = rd();
    out += hex[v & 0xF];
    out += hex[(v >> 4) & 0xF];
  }
  return out;
}

} // namespace

expected<void> resolve_runtime_paths(daemon_config& cfg, const std::string& state_dir) {
  namespace fs = std::filesystem;
  fs::path dir = state_dir.empty() ? fs::current_path() : fs::path{state_dir};
  auto& store_path = cfg.sim_layer.store.path;
  if (fs::path{store_path}.is_relative())
    store_path = (dir / store_path).string();
  std::error_code ec;
  fs::create_directories(fs::path{store_path}.parent_path(), ec);
  if (ec)
    return error{sys_ec::file_failed, "cannot create the state directory " +
                                          fs::path{store_path}.parent_path().string() + ": " +
                                          ec.message()};

  auto& api = cfg.api;
  if (!api.tokens.empty() || !api.read_only_tokens.empty() || !api.token_file.empty())
    return {};
  auto token_path = (dir / "api-token").string();
  if (!fs::exists(token_path)) {
    // O_EXCL + 0600: never overwrite, never readable by others.
    int fd = ::open(token_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
      return error{sys_ec::file_failed,
                   "cannot create " + token_path + ": " + std::strerror(errno)};
    auto line = "rw " + random_token() + "\n";
    auto n = ::write(fd, line.data(), line.size());
    ::close(fd);
    if (n != static_cast<ssize_t>(line.size()))
      return error{sys_ec::file_failed, "cannot write " + token_path};
    log::notice("api.token_created",
                {{"path", token_path}, {"hint", "imeilockctl --token-file " + token_path}});
  }
  api.token_file = token_path;
  return {};
}

} // namespace imeilock::daemon
