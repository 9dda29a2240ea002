#include "protocols/radius/clients.hpp"

#include "protocols/radius/accounting.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace imeilock::radius {
namespace {

constexpr std::array<std::uint8_t, 12> v4_mapped_prefix = {0, 0, 0, 0, 0,    0,
                                                           0, 0, 0, 0, 0xff, 0xff};

bool prefix_matches(const ip_address& net, const ip_address& addr, unsigned bits) {
  const unsigned whole = bits / 8;
  if (std::memcmp(net.octets.data(), addr.octets.data(), whole) != 0)
    return false;
  if (const unsigned rest = bits % 8; rest != 0) {
    const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
    return (net.octets[whole] & mask) == (addr.octets[whole] & mask);
  }
  return true;
}

void mask_to(ip_address& a, unsigned bits) {
  for (unsigned i = 0; i < 16; ++i) {
    if (bits >= 8 * (i + 1))
      continue;
    const unsigned keep = bits > 8 * i ? bits - 8 * i : 0;
    a.octets[i] &= static_cast<std::uint8_t>(keep == 0 ? 0 : 0xff << (8 - keep));
  }
}

} // namespace

bool ip_address::is_v4() const {
  return std::equal(v4_mapped_prefix.begin(), v4_mapped_prefix.end(), octets.begin());
}

std::string ip_address::to_string() const {
  if (is_v4()) // the common case, on the packet path: without inet_ntop's sprintf
    return format_ipv4(bytes{octets.data() + 12, 4});
  char buf[INET6_ADDRSTRLEN];
  ::inet_ntop(AF_INET6, octets.data(), buf, sizeof buf);
  return buf;
}

ip_address ip_address::from_bytes(bytes b) {
  ip_address a;
  if (b.size() == 4) {
    std::copy(v4_mapped_prefix.begin(), v4_mapped_prefix.end(), a.octets.begin());
    std::copy(b.begin(), b.end(), a.octets.begin() + 12);
  } else if (b.size() == 16) {
    std::copy(b.begin(), b.end(), a.octets.begin());
  }
  return a;
}

std::optional<ip_address> parse_ip(std::string_view text) {
  const std::string s{text};
  std::uint8_t buf[16];
  if (::inet_pton(AF_INET, s.c_str(), buf) == 1)
    return ip_address::from_bytes(bytes{buf, 4});
  if (::inet_pton(AF_INET6, s.c_str(), buf) == 1)
    return ip_address::from_bytes(bytes{buf, 16});
  return std::nullopt;
}

std::size_t client_table::hash::operator()(const ip_address& a) const {
  std::uint64_t hi;
  std::uint64_t lo;
  std::memcpy(&hi, a.octets.data(), 8);
  std::memcpy(&lo, a.octets.data() + 8, 8);
  return std::hash<std::uint64_t>{}(hi * 0x9e3779b97f4a7c15ull ^ lo);
}

expected<std::shared_ptr<client_table>>
client_table::build(const std::vector<client_config>& clients) {
  auto invalid = [](std::string why) { return error{config::ec::invalid, std::move(why)}; };
  auto t = std::make_shared<client_table>();
  for (const client_config& cc : clients) {
    client c;
    c.cfg = cc;
    if (c.cfg.name.empty())
      c.cfg.name = cc.address;
    std::string_view addr = cc.address;
    std::optional<unsigned> bits;
    if (const auto slash = addr.find('/'); slash != std::string_view::npos) {
      unsigned b = 0;
      const std::string_view num = addr.substr(slash + 1);
      auto [ptr, ec] = std::from_chars(num.data(), num.data() + num.size(), b);
      if (ec != std::errc{} || ptr != num.data() + num.size()) {
        return invalid("client '" + c.cfg.name + "': bad prefix length in '" + cc.address + "'");
      }
      bits = b;
      addr = addr.substr(0, slash);
    }
    auto ip = parse_ip(addr);
    if (!ip) {
      return invalid("client '" + c.cfg.name + "': '" + cc.address +
                     "' is not an IP address or CIDR block");
    }
    const unsigned max_bits = ip->is_v4() ? 32 : 128;
    if (bits && *bits > max_bits) {
      return invalid("client '" + c.cfg.name + "': prefix /" + std::to_string(*bits) +
                     " is too long");
    }
    if (cc.secret.empty()) {
      return invalid("client '" + c.cfg.name + "': secret must not be empty");
    }
    c.prefix = (ip->is_v4() ? 96 : 0) + bits.value_or(max_bits);
    mask_to(*ip, c.prefix);
    c.network = *ip;
    const std::size_t index = t->clients_.size();
    if (c.prefix == 128) {
      if (!t->exact_.emplace(c.network, index).second) {
        return invalid("client '" + c.cfg.name + "': address " + c.network.to_string() +
                       " listed twice");
      }
    } else {
      t->prefixes_.push_back(index);
    }
    t->clients_.push_back(std::move(c));
  }
  std::stable_sort(t->prefixes_.begin(), t->prefixes_.end(), [&](std::size_t a, std::size_t b) {
    return t->clients_[a].prefix > t->clients_[b].prefix;
  });
  return t;
}

const client* client_table::find(const ip_address& addr) const {
  if (auto it = exact_.find(addr); it != exact_.end())
    return &clients_[it->second];
  for (std::size_t i : prefixes_)
    if (prefix_matches(clients_[i].network, addr, clients_[i].prefix))
      return &clients_[i];
  return nullptr;
}

} // namespace imeilock::radius
