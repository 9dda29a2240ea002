// The one error idiom: expected<T> carries a value or an error whose code
// belongs to one layer's enum.
#include "common/error.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace imeilock;

namespace {

expected<int> parse_port(const std::string& text) {
  if (text.empty() || text.size() > 5 || text.find_first_not_of("0123456789") != std::string::npos)
    return error{ec::invalid, "expected a port number, got '" + text + "'", "radius.listen", 4};
  return std::stoi(text);
}

expected<void> check_even(int n) {
  if (n % 2 != 0)
    return error{ec::invalid, "must be even"};
  return {};
}

} // namespace

TEST_CASE("expected<T> holds the value or the error, never both", "[error]") {
  auto ok = parse_port("1813");
  REQUIRE(ok);
  CHECK(ok.has_value());
  CHECK(*ok == 1813);

  auto bad = parse_port("18x3");
  REQUIRE_FALSE(bad);
  CHECK(bad.error() == ec::invalid);
  CHECK(bad.error().message() == "expected a port number, got '18x3'");
  CHECK(bad.error().describe() == "line 4: radius.listen: expected a port number, got '18x3'");
}

TEST_CASE("expected<void>: success is empty, failure carries the error", "[error]") {
  CHECK(check_even(2));
  auto r = check_even(3);
  REQUIRE_FALSE(r);
  CHECK(r.error().describe() == "must be even");
}

TEST_CASE("an error knows its layer: codes of two enums never compare equal", "[error]") {
  error e{sys_ec::listen_failed, "address in use", "127.0.0.1:1813"};
  CHECK(e.is(sys_ec::listen_failed));
  CHECK_FALSE(e.is(sys_ec::file_failed));
  // ec::unknown_sim and sys_ec::listen_failed have the same value, 1.
  CHECK(static_cast<int>(ec::unknown_sim) == static_cast<int>(sys_ec::listen_failed));
  CHECK_FALSE(e.is(ec::unknown_sim));
  CHECK(e.category() == "system");
  CHECK(e.code_name() == "listen_failed");
  CHECK(e.describe() == "127.0.0.1:1813: address in use");
}

TEST_CASE("within() places an error's key inside its enclosing section", "[error]") {
  error e{ec::invalid, "must be between 1 and 1000", "retry.max_attempts"};
  e.within("ee").within("networks");
  CHECK(e.where() == "networks.ee.retry.max_attempts");
  error bare{ec::invalid, "min must not exceed max"};
  bare.within("lead_times.unbar");
  CHECK(bare.where() == "lead_times.unbar");
}
