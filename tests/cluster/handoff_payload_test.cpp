// The handoff payload's text form (cluster/inbox.hpp): what one node writes
// another must read back exactly, whatever bytes a peer sent, and a payload
// that is not this form is refused with the reason.
#include "cluster/inbox.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace imeilock;
using cluster::observation;

namespace {

observation radius_observation() {
  observation o;
  o.imsi = 234150000001234;
  o.msisdn = "447700900123";
  o.imei.status = lock::imei_status::ok;
  o.imei.device = 35349001234567;
  o.imei.svn = 12;
  o.source = cluster::protocol::radius;
  o.peer = "10.0.0.7";
  o.dedupe_key = 0xfedcba9876543210ULL;
  o.at_ms = 1'700'000'000'123;
  o.disconnect = cluster::disconnect_info{"10.0.0.7",  "nas-1",    "sess|1%",
                                          "user name", "10.1.2.3", "447700900123"};
  return o;
}

} // namespace

TEST_CASE("handoff payload: the version 1 text form is stable") {
  // A newer node must read what an older one wrote: this text is the format.
  CHECK(cluster::encode(radius_observation()) ==
        "1|234150000001234|447700900123|35349001234567/12|radius|10.0.0.7|18364758544493064720|"
        "1700000000123|10.0.0.7|nas-1|sess%7C1%25|user%20name|10.1.2.3|447700900123");
  observation d;
  d.imsi = 1;
  d.source = cluster::protocol::diameter;
  CHECK(cluster::encode(d) == "1|1||-|diameter||0|0|-");
}

TEST_CASE("handoff payload: every observation round-trips exactly") {
  std::vector<observation> cases;
  cases.push_back(radius_observation());
  auto no_imei = radius_observation();
  no_imei.imei = {};
  no_imei.disconnect.reset();
  cases.push_back(no_imei);
  auto bad_imei = no_imei;
  bad_imei.imei.status = lock::imei_status::malformed;
  bad_imei.source = cluster::protocol::diameter;
  bad_imei.peer = "pgw1.epc.mnc015.mcc234.3gppnetwork.org";
  cases.push_back(bad_imei);
  auto imei_only = no_imei;
  imei_only.imei.status = lock::imei_status::ok;
  imei_only.imei.device = 1;
  imei_only.at_ms = -5; // a clock before 1970 is odd, not unreadable
  cases.push_back(imei_only);
  // Whatever bytes a peer put in its strings: separators, escapes, quotes,
  // control bytes, NUL, invalid UTF-8, empty strings.
  auto hostile = radius_observation();
  hostile.peer = std::string{"a|b%c\"d\\e\n\t\x01\xff\xc3"} + std::string(1, '\0') + "end";
  hostile.msisdn = "";
  hostile.disconnect->nas_identifier = "%41|";
  hostile.disconnect->user_name = "";
  hostile.disconnect->calling_station_id = std::string(300, '\x80');
  cases.push_back(hostile);

  for (const auto& o : cases) {
    auto text = cluster::encode(o);
    INFO(text);
    for (char c : text) // one line of printable ASCII: safe in a TEXT column and a log
      REQUIRE((c >= '!' && c <= '~'));
    auto back = cluster::decode(text);
    REQUIRE(back);
    CHECK(*back == o);
  }
}

TEST_CASE("handoff payload: anything else is refused with the reason") {
  auto good = cluster::encode(radius_observation());
  struct bad {
    std::string text;
    std::string says;
  };
  std::vector<bad> cases = {
      {"", "version"},
      {"2|1||-|radius||0|0|-", "version"},
      {"1|1||-|radius||0|0", "fields"},
      {"1|1||-|radius||0|0|-|x", "fields"},
      {"1|12a||-|radius||0|0|-", "imsi"},
      {"1|||-|radius||0|0|-", "imsi"},
      {"1|-1||-|radius||0|0|-", "imsi"},
      {"1|99999999999999999999||-|radius||0|0|-", "imsi"},
      {"1|1||0|radius||0|0|-", "imei"},
      {"1|1||35349001234567/100|radius||0|0|-", "software version"},
      {"1|1||35349001234567/|radius||0|0|-", "software version"},
      {"1|1||-|sctp||0|0|-", "protocol"},
      {"1|1||-|radius||x|0|-", "number"},
      {"1|1||-|radius||0|+1|-", "number"},
      {"1|1||-|radius||0|0|x", "disconnect"},
      {"1|1|%4|-|radius||0|0|-", "percent"},
      {"1|1|%zz|-|radius||0|0|-", "percent"},
      {"1|1|a b|-|radius||0|0|-", "percent"},
      {good.substr(0, good.size() - 1) + "%", "percent"},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    auto r = cluster::decode(c.text);
    REQUIRE_FALSE(r);
    CHECK(r.error().is(cluster::ec::malformed));
    CHECK_THAT(r.error().message(), Catch::Contains(c.says));
  }
}
