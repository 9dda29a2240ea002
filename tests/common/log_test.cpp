#include "common/log.hpp"

#include <catch2/catch.hpp>

#include <thread>

using namespace imeilock;

namespace {
struct captured {
  std::string text;
  captured() { log::capture_for_testing(&text); }
  ~captured() {
    log::capture_for_testing(nullptr);
    log::set_level(log::level::info);
  }
};
} // namespace

TEST_CASE("log lines carry the sd-daemon priority prefix and key=value fields") {
  captured out;
  log::warning("radius.discard",
               {{"reason", "bad_authenticator"}, {"client", "10.0.0.1"}, {"n", 3}});
  CHECK(out.text == "<4>radius.discard reason=bad_authenticator client=10.0.0.1 n=3\n");
}

TEST_CASE("values with spaces, quotes or control characters are quoted and escaped") {
  captured out;
  log::error("config.invalid",
             {{"message", "expected a \"number\""}, {"raw", "a\nb"}, {"empty", ""}});
  CHECK(out.text ==
        "<3>config.invalid message=\"expected a \\\"number\\\"\" raw=\"a\\nb\" empty=\"\"\n");
}

TEST_CASE("events above the configured level are not written") {
  captured out;
  log::set_level(log::level::notice);
  log::info("hidden");
  log::debug("hidden");
  log::notice("shown");
  CHECK(out.text == "<5>shown\n");
}

TEST_CASE("parse_level accepts the documented names only") {
  log::level l{};
  CHECK(log::parse_level("debug", l));
  CHECK(l == log::level::debug);
  CHECK(log::parse_level("warning", l));
  CHECK(l == log::level::warning);
  CHECK_FALSE(log::parse_level("verbose", l));
}

TEST_CASE("the rate limiter lets a burst through, then reports how many it suppressed") {
  captured out;
  log::rate_limiter limiter{3, std::chrono::hours{1}};
  for (int i = 0; i < 10; ++i)
    log::write_limited(limiter, log::level::warning, "flood", {{"i", i}});
  CHECK(out.text == "<4>flood i=0\n<4>flood i=1\n<4>flood i=2\n");
  std::uint64_t suppressed = 0;
  CHECK_FALSE(limiter.allow(suppressed));
}

TEST_CASE("after the period the limiter opens again and reports the suppressed count") {
  captured out;
  log::rate_limiter limiter{1, std::chrono::milliseconds{1}};
  log::write_limited(limiter, log::level::warning, "flood");
  log::write_limited(limiter, log::level::warning, "flood");
  log::write_limited(limiter, log::level::warning, "flood");
  std::this_thread::sleep_for(std::chrono::milliseconds{5});
  log::write_limited(limiter, log::level::warning, "flood");
  CHECK(out.text == "<4>flood\n<4>flood\n<4>log.suppressed event=flood count=2\n");
}
