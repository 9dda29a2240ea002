// When a SIM was last observed, and last with an IMEI (lock::sim_activity):
// the product text's "if no IMEI is provided by the network ... Mobile Manager
// will not bar the SIM", made visible (issue 13).

#include "lock/sim.hpp"

#include <catch2/catch.hpp>

using namespace imeilock::lock;

TEST_CASE("a SIM never observed is not 'never with an IMEI'", "[activity]") {
  sim_activity a;
  CHECK_FALSE(a.never_with_imei());
  CHECK(no_imei_warning(a).empty());
}

TEST_CASE("observations without an IMEI make a SIM 'observed, never with an IMEI'", "[activity]") {
  sim_activity a;
  CHECK(note_observed(a, 1'800'000'000, false));
  CHECK(a.observed_s == 1'800'000'000);
  CHECK(a.imei_seen_s == 0);
  CHECK(a.never_with_imei());
  // The same second again changes nothing: no write-behind for it.
  CHECK_FALSE(note_observed(a, 1'800'000'000, false));
  CHECK(note_observed(a, 1'800'000'001, false));
  CHECK(a.never_with_imei());
}

TEST_CASE("one observation with an IMEI ends 'never with an IMEI' for good", "[activity]") {
  sim_activity a;
  note_observed(a, 100, false);
  CHECK(note_observed(a, 200, true));
  CHECK(a.observed_s == 200);
  CHECK(a.imei_seen_s == 200);
  CHECK_FALSE(a.never_with_imei());
  // Later observations without an IMEI move only last observed.
  CHECK(note_observed(a, 300, false));
  CHECK(a.observed_s == 300);
  CHECK(a.imei_seen_s == 200);
  CHECK_FALSE(a.never_with_imei());
  // An IMEI in the second already recorded as observed still counts.
  CHECK(note_observed(a, 300, true));
  CHECK(a.imei_seen_s == 300);
}

TEST_CASE("activity times never go back (a peer with a slower clock)", "[activity]") {
  sim_activity a;
  note_observed(a, 500, true);
  CHECK_FALSE(note_observed(a, 400, true));
  CHECK(a.observed_s == 500);
  CHECK(a.imei_seen_s == 500);
}

TEST_CASE("the no-IMEI warning names the last observation and the consequence", "[activity]") {
  sim_activity a;
  note_observed(a, 1'796'083'200, false); // 2026-12-01T00:00:00Z
  auto w = no_imei_warning(a);
  CHECK(w.find("2026-12-01T00:00:00Z") != std::string::npos);
  CHECK(w.find("never with an IMEI") != std::string::npos);
  CHECK(w.find("no change event can bar the SIM") != std::string::npos);
  note_observed(a, 1'796'083'201, true);
  CHECK(no_imei_warning(a).empty());
}
