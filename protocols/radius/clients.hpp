#pragma once
// The client table: which source addresses may talk to us and with which
// secret (RFC 2865 §3: "shared secret ... between the client and server").
// Exact addresses are found by hash, CIDR blocks by longest prefix.

#include "protocols/radius/config.hpp"

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace imeilock::radius {

/// An IPv4 or IPv6 address; IPv4 is kept IPv4-mapped (::ffff:a.b.c.d).
struct ip_address {
  std::array<std::uint8_t, 16> octets{};
  bool operator==(const ip_address&) const = default;
  bool is_v4() const;
  std::string to_string() const;
  /// From 4 (IPv4) or 16 (IPv6) octets.
  static ip_address from_bytes(bytes b);
};

/// Parses "1.2.3.4" or "2001:db8::1"; nullopt otherwise.
std::optional<ip_address> parse_ip(std::string_view text);

/// A client as the packet path sees it.
struct client {
  client_config cfg;
  ip_address network;
  unsigned prefix = 128; ///< on the mapped form: IPv4 /n is 96+n
  /// Opaque slot for the server (e.g. its per-client metrics); not owned.
  void* user = nullptr;
};

/// Built, then completed by the server (each client's `user` slot, through
/// all_mutable()) before it is published; from then on read-only on the
/// packet path. A reload builds and swaps in a new table.
class client_table {
public:
  /// Builds the table, or config::ec::invalid naming the first bad entry.
  static expected<std::shared_ptr<client_table>> build(const std::vector<client_config>& clients);
  /// The client for `addr`: an exact entry, else the longest matching prefix.
  const client* find(const ip_address& addr) const;
  const std::vector<client>& all() const { return clients_; }
  std::vector<client>& all_mutable() { return clients_; }

private:
  struct hash {
    std::size_t operator()(const ip_address& a) const;
  };
  std::vector<client> clients_;
  std::unordered_map<ip_address, std::size_t, hash> exact_;
  std::vector<std::size_t> prefixes_; ///< longest prefix first
};

} // namespace imeilock::radius
