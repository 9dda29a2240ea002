#include "protocols/radius/clients.hpp"
#include "protocols/radius/config.hpp"

#include <catch2/catch.hpp>

using namespace imeilock;
using namespace imeilock::radius;

namespace {

const client* lookup(const client_table& t, std::string_view ip) {
  auto a = parse_ip(ip);
  REQUIRE(a);
  return t.find(*a);
}

radius_config load_yaml(const std::string& yaml) {
  radius_config cfg;
  auto root = config::load_string(yaml);
  load(cfg, root.child("radius"));
  root.finish();
  return cfg;
}

} // namespace

TEST_CASE("clients are found by exact address, else by the longest prefix") {
  auto built = client_table::build({{"all-10", "10.0.0.0/8", "a", false, 0, ""},
                                    {"pgw-net", "10.1.0.0/16", "b", false, 0, ""},
                                    {"pgw-1", "10.1.2.3", "c", false, 0, ""},
                                    {"v6", "2001:db8::/32", "d", false, 0, ""},
                                    {"lo6", "::1", "e", false, 0, ""}});
  REQUIRE(built);
  const auto& t = *built;
  CHECK(lookup(*t, "10.1.2.3")->cfg.name == "pgw-1");
  CHECK(lookup(*t, "10.1.9.9")->cfg.name == "pgw-net");
  CHECK(lookup(*t, "10.200.0.1")->cfg.name == "all-10");
  CHECK(lookup(*t, "2001:db8:1::5")->cfg.name == "v6");
  CHECK(lookup(*t, "::1")->cfg.name == "lo6");
  CHECK(lookup(*t, "11.0.0.1") == nullptr);
  CHECK(lookup(*t, "2001:db9::1") == nullptr);
  CHECK(lookup(*t, "::ffff:10.1.2.3")->cfg.name == "pgw-1"); // IPv4-mapped is IPv4
}

TEST_CASE("bad client entries are refused with the client named") {
  auto too_long = client_table::build({{"x", "10.0.0.0/33", "s", false, 0, ""}});
  REQUIRE_FALSE(too_long);
  CHECK(too_long.error() == config::ec::invalid);
  CHECK(too_long.error().message().find("'x'") != std::string::npos);
  CHECK_FALSE(client_table::build({{"y", "not-an-ip", "s", false, 0, ""}}));
  CHECK_FALSE(client_table::build({{"z", "10.0.0.1", "", false, 0, ""}}));
  auto twice = client_table::build(
      {{"a", "10.0.0.1", "s", false, 0, ""}, {"b", "10.0.0.1", "t", false, 0, ""}});
  REQUIRE_FALSE(twice);
  CHECK(twice.error().message().find("twice") != std::string::npos);
}

TEST_CASE("the radius section loads with documented defaults") {
  auto cfg = load_yaml("radius:\n  clients:\n    - address: 127.0.0.1\n      secret: s3cret\n");
  CHECK(cfg.enabled);
  REQUIRE(cfg.listen.size() == 1);
  CHECK(cfg.listen[0].to_string() == "127.0.0.1:1813");
  CHECK(cfg.io_threads == 1);
  CHECK(cfg.duplicate_window == std::chrono::seconds{10});
  CHECK_FALSE(cfg.disconnect.enabled);
  CHECK(cfg.disconnect.port == 3799);
  REQUIRE(cfg.clients.size() == 1);
  CHECK(cfg.clients[0].secret == "s3cret");
}

TEST_CASE("every key of the radius section is read") {
  auto cfg = load_yaml(R"(
radius:
  enabled: true
  listen: ["127.0.0.1:0", "[::1]:0"]
  io_threads: 2
  duplicate_window: 30s
  duplicate_cache_entries: 5000
  max_in_flight: 100
  socket_buffer: 1048576
  drain_timeout: 2s
  user_name:
    strip_realm: false
    strip_prefixes: ["imsi-"]
  clients:
    - name: pgw
      address: 10.0.0.0/8
      secret: abc
      require_message_authenticator: true
      disconnect_port: 1700
      disconnect_secret: def
  disconnect:
    enabled: true
    port: 3799
    timeout: 500ms
    retries: 2
)");
  CHECK(cfg.listen.size() == 2);
  CHECK(cfg.io_threads == 2);
  CHECK(cfg.duplicate_window == std::chrono::seconds{30});
  CHECK(cfg.duplicate_cache_entries == 5000);
  CHECK(cfg.max_in_flight == 100);
  CHECK_FALSE(cfg.user_name.strip_realm);
  CHECK(cfg.user_name.strip_prefixes == std::vector<std::string>{"imsi-"});
  CHECK(cfg.clients[0].require_message_authenticator);
  CHECK(cfg.clients[0].disconnect_port == 1700);
  CHECK(cfg.clients[0].disconnect_secret == "def");
  CHECK(cfg.disconnect.enabled);
  CHECK(cfg.disconnect.timeout == std::chrono::milliseconds{500});
  CHECK(cfg.disconnect.retries == 2);
}

TEST_CASE("radius config errors name the key") {
  auto fails_with = [](const std::string& yaml, std::string_view key) {
    try {
      load_yaml(yaml);
      FAIL("no error for: " << yaml);
    } catch (const config::error& e) {
      CHECK_THAT(e.what(), Catch::Contains(std::string{key}));
    }
  };
  fails_with("radius:\n  duplicate_window: 2s\n", "radius.duplicate_window");
  fails_with("radius:\n  duplicate_window: 31s\n", "radius.duplicate_window");
  fails_with("radius:\n  io_threads: 0\n", "radius.io_threads");
  fails_with("radius:\n  listen_on: 1.2.3.4:1\n", "radius.listen_on");
  fails_with("radius:\n  clients:\n    - address: 10.0.0.1\n", "secret");
  fails_with("radius:\n  clients:\n    - address: 10.0.0.0/40\n      secret: x\n", "address");
  fails_with("radius:\n  clients:\n    - address: 1.2.3.4\n      secret: x\n      scret: y\n",
             "scret");
  fails_with("radius:\n  disconnect:\n    port: 0\n", "radius.disconnect.port");
}
