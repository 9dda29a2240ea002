// The `diameter:` configuration section: defaults, strictness, ranges, peers.

#include "protocols/diameter/config.hpp"

#include <catch2/catch.hpp>

using namespace imeilock;
using namespace imeilock::diameter;
using namespace std::chrono_literals;

namespace {
diameter_config load_yaml(const std::string& text) {
  diameter_config cfg;
  auto root = config::load_string(text);
  load(cfg, root.child("diameter"));
  return cfg;
}
} // namespace

TEST_CASE("diameter config defaults", "[diameter][config]") {
  auto cfg = load_yaml("other: 1\n");
  CHECK(cfg.listen == std::vector<config::endpoint>{{"127.0.0.1", 3868}});
  CHECK(cfg.watchdog == 30s);
  CHECK(cfg.origin_host == "imeilockd.localdomain");
  CHECK(cfg.limits.max_message_size == 65536);
  CHECK(cfg.peers.empty());
  CHECK(cfg.validate());
}

TEST_CASE("diameter config with peers, watchdog and limits", "[diameter][config]") {
  auto cfg = load_yaml(R"(
diameter:
  origin_host: mm1.operator.net
  origin_realm: operator.net
  listen: ["127.0.0.1:3868", "[::1]:3868"]
  watchdog: 6s
  peers:
    - origin_host: pgw1.operator.net
      realm: operator.net
      addresses: ["10.0.0.0/24", "2001:db8::1"]
    - origin_host: dra.operator.net
  limits:
    max_message_size: 8192
    max_pending_per_connection: 100
)");
  CHECK(cfg.origin_host == "mm1.operator.net");
  REQUIRE(cfg.listen.size() == 2);
  CHECK(cfg.listen[1].host == "::1");
  CHECK(cfg.watchdog == 6s);
  REQUIRE(cfg.peers.size() == 2);
  CHECK(cfg.peers[0].addresses.size() == 2);
  CHECK(cfg.peers[1].realm.empty());
  CHECK(cfg.limits.max_message_size == 8192);
  CHECK(cfg.limits.max_pending_per_connection == 100);
}

TEST_CASE("diameter config is strict", "[diameter][config]") {
  // RFC 3539 §3.4.1: Tw at least 6 s.
  CHECK_THROWS_AS(load_yaml("diameter:\n  watchdog: 5s\n"), config::error);
  CHECK_THROWS_AS(load_yaml("diameter:\n  watchdg: 10s\n"), config::error);
  CHECK_THROWS_AS(load_yaml("diameter:\n  limits:\n    max_message_size: 100\n"), config::error);
  CHECK_THROWS_AS(load_yaml("diameter:\n  peers:\n    - realm: x\n"), config::error);
  CHECK_THROWS_AS(
      load_yaml("diameter:\n  peers:\n    - origin_host: a\n      addresses: [\"10.0.0.0/33\"]\n"),
      config::error);
  CHECK_THROWS_AS(load_yaml("diameter:\n  peers:\n    - origin_host: a\n    - origin_host: A\n"),
                  config::error);
  try {
    load_yaml("diameter:\n  watchdog: 1s\n");
  } catch (const config::error& e) {
    CHECK(e.key_path() == "diameter.watchdog");
  }
}

TEST_CASE("address prefixes match IPv4, IPv6 and v4-mapped sources", "[diameter][config]") {
  auto parsed = parse_prefix("10.1.0.0/16");
  REQUIRE(parsed);
  auto p = *parsed;
  const unsigned char in[4] = {10, 1, 200, 3}, out[4] = {10, 2, 0, 1};
  CHECK(prefix_contains(p, in, 4));
  CHECK_FALSE(prefix_contains(p, out, 4));
  const unsigned char mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3};
  CHECK(prefix_contains(p, mapped, 16));
  parsed = parse_prefix("::1");
  REQUIRE(parsed);
  p = *parsed;
  unsigned char lo6[16] = {};
  lo6[15] = 1;
  CHECK(prefix_contains(p, lo6, 16));
  for (std::string bad : {"10.0.0.1/", "hello", "10.0.0.0/33", "::/129"}) {
    auto refused = parse_prefix(bad);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().is(config::ec::invalid));
    CHECK_THAT(refused.error().message(), Catch::Contains("'" + bad + "'"));
  }
}
