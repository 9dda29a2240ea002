#include "protocols/diameter/config.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace imeilock::diameter {

using namespace std::chrono_literals;

expected<address_prefix> parse_prefix(const std::string& text) {
  auto refuse = [&](std::string_view why) {
    return error{config::ec::invalid, std::string{why} + ", got '" + text + "'"};
  };
  std::string addr = text;
  long bits = -1;
  if (auto slash = text.find('/'); slash != std::string::npos) {
    addr = text.substr(0, slash);
    const std::string b = text.substr(slash + 1);
    if (b.empty() || b.size() > 3 ||
        !std::all_of(b.begin(), b.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return refuse("expected a prefix length after '/'");
    bits = std::stol(b);
  }
  address_prefix p;
  if (inet_pton(AF_INET, addr.c_str(), p.addr) == 1) {
    p.family = 4;
    if (bits > 32)
      return refuse("an IPv4 prefix is at most /32");
    p.bits = bits < 0 ? 32 : static_cast<std::uint32_t>(bits);
  } else if (inet_pton(AF_INET6, addr.c_str(), p.addr) == 1) {
    p.family = 6;
    if (bits > 128)
      return refuse("an IPv6 prefix is at most /128");
    p.bits = bits < 0 ? 128 : static_cast<std::uint32_t>(bits);
  } else {
    return refuse("expected an IPv4 or IPv6 address or CIDR prefix");
  }
  return p;
}

bool prefix_contains(const address_prefix& p, const unsigned char* addr, std::size_t len) {
  static constexpr unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (len == 16 && std::memcmp(addr, mapped, 12) == 0) {
    addr += 12;
    len = 4;
  }
  if ((p.family == 4) != (len == 4))
    return false;
  const std::uint32_t full = p.bits / 8, rest = p.bits % 8;
  if (std::memcmp(p.addr, addr, full) != 0)
    return false;
  if (rest == 0)
    return true;
  const auto mask = static_cast<unsigned char>(0xff << (8 - rest));
  return (p.addr[full] & mask) == (addr[full] & mask);
}

expected<void> diameter_config::validate() const {
  auto invalid = [](std::string why) { return error{config::ec::invalid, std::move(why)}; };
  if (origin_host.empty())
    return invalid("diameter.origin_host must not be empty");
  if (origin_realm.empty())
    return invalid("diameter.origin_realm must not be empty");
  if (enabled && listen.empty())
    return invalid("diameter.listen needs at least one address");
  for (std::size_t i = 0; i < peers.size(); ++i) {
    if (peers[i].origin_host.empty())
      return invalid("diameter.peers[" + std::to_string(i) + "].origin_host is empty");
    for (std::size_t j = 0; j < i; ++j) {
      std::string a = peers[i].origin_host, b = peers[j].origin_host;
      std::transform(a.begin(), a.end(), a.begin(), ::tolower);
      std::transform(b.begin(), b.end(), b.begin(), ::tolower);
      if (a == b)
        return invalid("diameter.peers: origin_host " + peers[i].origin_host + " appears twice");
    }
    for (const auto& addr : peers[i].addresses)
      if (auto p = parse_prefix(addr); !p)
        return invalid("diameter.peers[" + std::to_string(i) +
                       "].addresses: " + p.error().message());
  }
  return {};
}

void load(diameter_config& cfg, config::section s) {
  s.read("enabled", cfg.enabled);
  s.read("origin_host", cfg.origin_host);
  s.read("origin_realm", cfg.origin_realm);
  s.read("listen", cfg.listen);
  // RFC 3539 §3.4.1: Tw SHOULD NOT be set below 6 seconds.
  s.read_duration("watchdog", cfg.watchdog, 6s, 3600s);
  s.read_duration("cer_timeout", cfg.cer_timeout, 1s, 300s);
  s.read_duration("dpr_timeout", cfg.dpr_timeout, 100ms, 60s);
  s.read("vendor_id", cfg.vendor_id, 0u, 0xffffffffu);
  if (s.has("peers")) {
    cfg.peers.clear();
    for (auto p : s.children("peers")) {
      peer_config pc;
      p.read("origin_host", pc.origin_host);
      p.read("realm", pc.realm);
      p.read("addresses", pc.addresses);
      if (pc.origin_host.empty())
        p.fail("origin_host", "required");
      for (const auto& a : pc.addresses)
        if (auto pre = parse_prefix(a); !pre)
          p.fail("addresses", pre.error().message());
      p.finish();
      cfg.peers.push_back(std::move(pc));
    }
  }
  auto l = s.child("limits");
  auto& lim = cfg.limits;
  l.read("max_message_size", lim.max_message_size, 4096u, 16u << 20);
  l.read("max_avp_depth", lim.max_avp_depth, 2u, 64u);
  l.read("max_pending_per_connection", lim.max_pending_per_connection, 1u, 1u << 20);
  l.read("max_write_buffer", lim.max_write_buffer, 65536u, 1u << 30);
  l.read("max_connections", lim.max_connections, 1u, 100000u);
  l.read("max_connections_per_peer", lim.max_connections_per_peer, 1u, 1024u);
  l.read("duplicate_cache_entries", lim.duplicate_cache_entries, 0u, 100'000'000u);
  l.read_duration("duplicate_window", lim.duplicate_window, 1s, 3600s);
  l.finish();
  s.finish();
  if (auto valid = cfg.validate(); !valid)
    s.fail({}, valid.error().message());
}

} // namespace imeilock::diameter
