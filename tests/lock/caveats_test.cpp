// The product text's caveats (lock/caveats.hpp): the one table the API's
// warnings and the dashboard read, quoting the product text, and the warnings
// each order type carries (issue 13).

#include "lock/caveats.hpp"

#include <catch2/catch.hpp>

#include <set>
#include <string>

using namespace imeilock::lock;

namespace {
bool has(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}
} // namespace

TEST_CASE("every caveat has a key and a wording, looked up by its id", "[caveats]") {
  std::set<std::string_view> keys;
  for (const auto& c : caveats()) {
    CHECK(caveat_key(c.id) == c.key);
    CHECK(caveat_text(c.id) == c.text);
    CHECK_FALSE(c.text.empty());
    keys.insert(c.key);
  }
  // Strict mode words the keep-lock caveat differently under the same key.
  CHECK(caveat_key(caveat::keep_lock) == caveat_key(caveat::keep_lock_strict));
  CHECK(keys.size() + 1 == caveats().size());
}

TEST_CASE("the wording quotes the product text", "[caveats]") {
  CHECK(has(caveat_text(caveat::imei_lock_bar),
            "N.B. the IMEI Locking Bar order is subject to regular bar lead times and may not "
            "complete immediately, some data usage may occur before the SIM is barred."));
  CHECK(has(caveat_text(caveat::bar_lead_time), "some data usage may occur before the SIM is "
                                                "barred"));
  CHECK(has(caveat_text(caveat::test_in_another_device),
            "Disable IMEI Locking before testing the SIM in another device"));
  CHECK(has(caveat_text(caveat::test_in_another_device),
            "is recommended if testing in another device is required"));
  CHECK(has(caveat_text(caveat::keep_lock),
            "the IMEI Locking Bar will not trigger again unless the SIM is used in another (i.e. "
            "3rd) device"));
  CHECK(has(caveat_text(caveat::keep_lock_strict), "barred again"));
  CHECK(has(caveat_text(caveat::update_to_last_seen), "first device used"));
  CHECK(has(caveat_text(caveat::lock_on_activation), "locking to the next seen IMEI"));
  CHECK(has(caveat_text(caveat::no_imei), "If no IMEI is provided by the Network"));
}

TEST_CASE("a bar caveat carries the network's bar lead time", "[caveats]") {
  auto with = bar_caveat(caveat::imei_lock_bar, "roamnet901", "lognormal(median 5s, p95 20s)");
  CHECK(has(with, caveat_text(caveat::imei_lock_bar)));
  CHECK(has(with, "The bar takes effect after roamnet901's bar lead time: lognormal(median 5s, p95 "
                  "20s)."));
  CHECK(bar_caveat(caveat::bar_lead_time, "ee", "") == caveat_text(caveat::bar_lead_time));
  CHECK(has(bar_caveat(caveat::bar_lead_time, "", "5s"), "after the network's bar lead time: 5s."));
}

TEST_CASE("the caveats each accepted order carries as warnings", "[caveats]") {
  auto bar = order_caveats(order_type::bar, false, "multinet", "300ms");
  REQUIRE(bar.size() == 1);
  CHECK(has(bar[0], "some data usage may occur before the SIM is barred"));
  CHECK(has(bar[0], "multinet's bar lead time: 300ms."));

  for (auto [type, with_lock] :
       {std::pair{order_type::enable_imei_lock, false}, std::pair{order_type::activate, true}}) {
    auto w = order_caveats(type, with_lock, "roamnet901", "5s");
    REQUIRE(w.size() == 1);
    CHECK(w[0] == caveat_text(caveat::test_in_another_device));
  }
  CHECK(order_caveats(order_type::activate, false, "roamnet901", "5s").empty());
  CHECK(order_caveats(order_type::disable_imei_lock, false, "ee", "5s").empty());
  CHECK(order_caveats(order_type::unbar, false, "ee", "5s").empty());
}
