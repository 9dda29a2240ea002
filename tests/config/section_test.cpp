#include "config/section.hpp"

#include <catch2/catch.hpp>

using namespace imeilock;
using namespace std::chrono_literals;

namespace {

/// Runs `body` and returns the config::error it throws (fails the test if none).
template <class F>
config::error error_of(F body) {
  try {
    body();
  } catch (const config::error& e) {
    return e;
  }
  FAIL("expected a config::error");
  return config::error{"", 0, ""};
}

} // namespace

TEST_CASE("values are read with their types and ranges") {
  auto root = config::load_string("radius:\n  workers: 4\n  secret: s3\n  enabled: yes\n"
                                  "  listen: ['127.0.0.1:1813', '[::1]:1813']\n"
                                  "  window: 250ms\n  ratio: 0.5\n");
  auto radius = root.child("radius");
  unsigned workers = 1;
  std::string secret;
  bool enabled = false;
  std::vector<config::endpoint> listen;
  std::chrono::milliseconds window{};
  double ratio = 0;
  radius.read("workers", workers, 1u, 64u);
  radius.read("secret", secret);
  radius.read("enabled", enabled);
  radius.read("listen", listen);
  radius.read_duration("window", window, 1ms, 1h);
  radius.read("ratio", ratio, 0.0, 1.0);
  radius.finish();
  root.finish();
  CHECK(workers == 4);
  CHECK(secret == "s3");
  CHECK(enabled);
  REQUIRE(listen.size() == 2);
  CHECK(listen[0] == config::endpoint{"127.0.0.1", 1813});
  CHECK(listen[1] == config::endpoint{"::1", 1813});
  CHECK(listen[1].to_string() == "[::1]:1813");
  CHECK(window == 250ms);
  CHECK(ratio == 0.5);
}

TEST_CASE("absent keys keep their defaults") {
  auto root = config::load_string("{}");
  unsigned workers = 7;
  auto s = root.child("radius");
  s.read("workers", workers, 1u, 64u);
  s.finish();
  CHECK(workers == 7);
}

TEST_CASE("an unknown key is an error naming the key path and line") {
  auto root = config::load_string("radius:\n  workers: 2\n  wokers: 3\n");
  auto radius = root.child("radius");
  unsigned workers = 1;
  radius.read("workers", workers, 1u, 64u);
  auto e = error_of([&] { radius.finish(); });
  CHECK(e.key_path() == "radius.wokers");
  CHECK(e.line() == 3);
  CHECK(e.message() == "unknown key");
  CHECK(std::string{e.what()} == "line 3: radius.wokers: unknown key");
}

TEST_CASE("an out-of-range value names the key, the line and the range") {
  auto root = config::load_string("a: 1\nradius:\n  workers: 100\n");
  auto radius = root.child("radius");
  unsigned workers = 1;
  auto e = error_of([&] { radius.read("workers", workers, 1u, 64u); });
  CHECK(e.key_path() == "radius.workers");
  CHECK(e.line() == 3);
  CHECK(e.message() == "must be between 1 and 64, got 100");
  CHECK(workers == 1);
}

TEST_CASE("a wrong type is an error, not a silent default") {
  auto root = config::load_string("workers: many\nlisten: 'nohost'\nflag: maybe\nd: 5\n");
  unsigned workers = 1;
  config::endpoint ep;
  bool flag = false;
  std::chrono::milliseconds d{};
  CHECK(error_of([&] { root.read("workers", workers, 1u, 64u); }).message() ==
        "expected a whole number, got 'many'");
  CHECK(error_of([&] { root.read("listen", ep); }).key_path() == "listen");
  CHECK(error_of([&] { root.read("flag", flag); }).line() == 3);
  CHECK(error_of([&] { root.read_duration("d", d, 1ms, 1h); }).message().find("duration") !=
        std::string::npos);
}

TEST_CASE("YAML syntax errors carry the line") {
  auto e = error_of([] { config::load_string("a: 1\nb: [1, 2\nc: 3\n"); });
  CHECK(e.line() >= 2);
  CHECK(e.message().find("YAML syntax error") == 0);
}

TEST_CASE("named children and lists of mappings carry their paths") {
  auto root = config::load_string("networks:\n  ee:\n    rate: 5\n  multinet:\n    rate: x\n");
  auto nets = root.named_children("networks");
  REQUIRE(nets.size() == 2);
  CHECK(nets[0].first == "ee");
  double rate = 0;
  nets[0].second.read("rate", rate, 0.0, 1e6);
  CHECK(rate == 5);
  auto e = error_of([&] { nets[1].second.read("rate", rate, 0.0, 1e6); });
  CHECK(e.key_path() == "networks.multinet.rate");
  CHECK(e.line() == 5);
}

TEST_CASE("a key that is a list or a mapping is a config::error, not a YAML exception") {
  // Found by fuzz/config_load: yaml-cpp's bad conversion escaped the loader.
  auto root = config::load_string("a: 1\n[x, y]: 2\n");
  std::int64_t a = 0;
  root.read("a", a, std::int64_t{0}, std::int64_t{9});
  auto e = error_of([&] { root.finish(); });
  CHECK(e.line() == 2);
  CHECK(e.message().find("a key must be a name") == 0);

  auto nested = config::load_string("networks:\n  ee: {}\n  {x: 1}: {}\n");
  e = error_of([&] { nested.named_children("networks"); });
  CHECK(e.key_path() == "networks");
  CHECK(e.line() == 3);
}

TEST_CASE("durations and endpoints parse the documented forms only") {
  auto d = config::parse_duration("1.5s");
  REQUIRE(d);
  CHECK(*d == 1500ms);
  d = config::parse_duration("2m");
  REQUIRE(d);
  CHECK(*d == 120s);
  for (auto bad : {"5", "5 s", "s", "99999999999d"}) {
    auto refused = config::parse_duration(bad);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().is(config::ec::invalid));
    CHECK_THAT(refused.error().message(), Catch::Contains(std::string{"'"} + bad + "'"));
  }
  auto ep = config::parse_endpoint("*:9464");
  REQUIRE(ep);
  CHECK(ep->host == "0.0.0.0");
  CHECK(ep->port == 9464);
  ep = config::parse_endpoint("[::1]:3868");
  REQUIRE(ep);
  CHECK(ep->host == "::1");
  for (auto bad : {"::1:80", "host:", "[::1]80"}) {
    auto refused = config::parse_endpoint(bad);
    REQUIRE_FALSE(refused);
    CHECK_THAT(refused.error().message(), Catch::Contains("expected host:port"));
  }
  auto refused = config::parse_endpoint("host:99999");
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message() == "expected a port from 0 to 65535 after the host, got "
                                     "'host:99999'");
}

TEST_CASE("keys read but absent from the file are reported with their full paths") {
  auto root = config::load_string("radius:\n  workers: 2\nnets:\n  ee: {}\n");
  auto radius = root.child("radius");
  unsigned workers = 1;
  std::string secret;
  radius.read("workers", workers, 1u, 8u);
  radius.read("secret", secret);
  auto nets = root.named_children("nets");
  bool strict = false;
  nets[0].second.read("strict", strict);
  auto api = root.child("api");
  api.read("token", secret);
  CHECK(root.absent_keys() ==
        std::vector<std::string>{"radius.secret", "nets.ee.strict", "api", "api.token"});
}

TEST_CASE("a key that is not a plain string is a config error, never a yaml-cpp exception") {
  auto root = config::load_string("? [a, b]\n: 1\n");
  auto e = error_of([&] { root.finish(); });
  CHECK(e.message().find("must be a name") != std::string::npos);
  auto nets = config::load_string("networks:\n  ? {x: 1}\n  : {}\n");
  e = error_of([&] { nets.named_children("networks"); });
  CHECK(e.key_path() == "networks");
  e = error_of([] { config::load_string(std::string(100000, '[')); });
  CHECK(e.message().find("YAML") == 0);
}
