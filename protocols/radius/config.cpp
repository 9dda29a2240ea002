#include "protocols/radius/config.hpp"

#include "protocols/radius/clients.hpp"

namespace imeilock::radius {

using namespace std::chrono_literals;

expected<void> radius_config::validate() const {
  auto invalid = [](std::string key, std::string why) {
    return error{config::ec::invalid, std::move(why), std::move(key)};
  };
  if (enabled && listen.empty())
    return invalid("listen", "at least one address is needed");
  if (io_threads < 1 || io_threads > 64)
    return invalid("io_threads", "must be between 1 and 64");
  if (duplicate_window < 5s || duplicate_window > 30s)
    return invalid("duplicate_window", "must be between 5s and 30s (RFC 5080 §2.2.2)");
  if (auto table = client_table::build(clients); !table)
    return invalid("clients", table.error().message());
  return {};
}

void load(radius_config& cfg, config::section s) {
  s.read("enabled", cfg.enabled);
  s.read("listen", cfg.listen);
  s.read("io_threads", cfg.io_threads, 1u, 64u);
  s.read_duration("duplicate_window", cfg.duplicate_window, 5s, 30s);
  s.read("duplicate_cache_entries", cfg.duplicate_cache_entries, 1024u, 100'000'000u);
  s.read("max_in_flight", cfg.max_in_flight, 1u, 10'000'000u);
  s.read("socket_buffer", cfg.socket_buffer, 65536u, 1u << 30);
  s.read_duration("drain_timeout", cfg.drain_timeout, 0ms, 60s);

  config::section un = s.child("user_name");
  un.read("strip_realm", cfg.user_name.strip_realm);
  un.read("strip_prefixes", cfg.user_name.strip_prefixes);
  un.finish();

  std::vector<client_config> clients;
  for (config::section c : s.children("clients")) {
    client_config cc;
    c.read("name", cc.name);
    c.read("address", cc.address);
    c.read("secret", cc.secret);
    c.read("require_message_authenticator", cc.require_message_authenticator);
    c.read("disconnect_port", cc.disconnect_port, std::uint16_t{1}, std::uint16_t{65535});
    c.read("disconnect_secret", cc.disconnect_secret);
    c.finish();
    if (cc.address.empty())
      c.fail("address", "every client needs an address or CIDR block");
    if (cc.secret.empty())
      c.fail("secret", "every client needs a non-empty shared secret");
    if (auto table = client_table::build({cc}); !table)
      c.fail("address", table.error().message());
    clients.push_back(std::move(cc));
  }
  if (s.has("clients"))
    cfg.clients = std::move(clients);

  config::section d = s.child("disconnect");
  d.read("enabled", cfg.disconnect.enabled);
  d.read("port", cfg.disconnect.port, std::uint16_t{1}, std::uint16_t{65535});
  d.read_duration("timeout", cfg.disconnect.timeout, 100ms, 60s);
  d.read("retries", cfg.disconnect.retries, 0u, 10u);
  d.finish();

  s.finish();
  if (auto valid = cfg.validate(); !valid)
    s.fail({}, valid.error().describe());
}

} // namespace imeilock::radius
