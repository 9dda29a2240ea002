// Names of the lock's enums as the API, store and config spell them.

#include "lock/machine.hpp"
#include "lock/types.hpp"

#include <catch2/catch.hpp>

using namespace imeilock::lock;

namespace {

template <class E>
void round_trip(std::initializer_list<E> values) {
  for (E v : values) {
    E back{};
    INFO(to_string(v));
    REQUIRE(parse(to_string(v), back));
    CHECK(back == v);
  }
  E ignored{};
  CHECK_FALSE(parse("no_such_value", ignored));
  CHECK_FALSE(parse("", ignored));
}

} // namespace

TEST_CASE("enum names round-trip through parse", "[types]") {
  round_trip({sim_status::inactive, sim_status::active});
  round_trip({lock_state::off, lock_state::awaiting_first_imei, lock_state::locked});
  round_trip(
      {bar_state::none, bar_state::bar_pending, bar_state::barred, bar_state::unbar_pending});
  round_trip({bar_reason::none, bar_reason::imei_lock, bar_reason::manual});
  round_trip({order_type::none, order_type::activate, order_type::enable_imei_lock,
              order_type::disable_imei_lock, order_type::bar, order_type::unbar});
  round_trip({unbar_mode::none, unbar_mode::keep_lock, unbar_mode::update_to_last_seen});
  CHECK(to_string(lock_state::awaiting_first_imei) == "awaiting_first_imei");
  CHECK(to_string(order_type::enable_imei_lock) == "enable_imei_lock");
}

TEST_CASE("every rejection has a name and a sentence", "[types]") {
  for (int i = 0; i <= static_cast<int>(rejection::invalid_order); ++i) {
    auto r = static_cast<rejection>(i);
    CHECK(to_string(r) != "unknown");
    CHECK(explain(r).size() > 10);
    CHECK(explain(r).back() == '.');
  }
  for (int i = 0; i <= static_cast<int>(notice::activated); ++i)
    CHECK(to_string(static_cast<notice>(i)) != "unknown");
}

TEST_CASE("sim_state stays compact", "[types]") {
  // 48 bytes until the lock scope (R16) took one more byte, which the
  // alignment of the 8-byte members rounds up to 8.
  CHECK(sizeof(sim_state) <= 56);
}
