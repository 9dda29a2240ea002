// Inventory identifiers: ICCID (E.118), IMSI (E.212), MSISDN (E.164).

#include "lock/identifiers.hpp"

#include <catch2/catch.hpp>

using namespace imeilock::lock;

TEST_CASE("ICCID: 89 prefix, 18 to 20 digits, Luhn check digit on 19 and 20", "[inventory]") {
  SECTION("valid 19- and 20-digit ICCIDs with their check digit") {
    // 8944110000000000001 + check digit computed by Luhn
    CHECK(luhn_valid("89441100000000000010") == false);
    for (const char* ok : {"8944110068256270054", "89014103211118510720"}) {
      INFO(ok);
      auto v = validate_iccid(ok);
      REQUIRE(v);
      CHECK(*v == ok);
    }
  }
  SECTION("a typo is caught by the check digit") {
    auto v = validate_iccid("8944110068256270055");
    CHECK_FALSE(v);
    CHECK(v.error().message().find("check digit") != std::string::npos);
    CHECK_FALSE(validate_iccid("89014103211118510721"));
  }
  SECTION("18 digits: accepted without a check digit") {
    CHECK(validate_iccid("894411006825627005"));
  }
  SECTION("wrong prefix, length or characters, each with its reason") {
    auto p = validate_iccid("9944110068256270054");
    CHECK_FALSE(p);
    CHECK(p.error().message().find("89") != std::string::npos);
    CHECK(p.error() == imeilock::ec::invalid); // the operator's value is wrong
    auto l = validate_iccid("89441100682562700");
    CHECK_FALSE(l);
    CHECK(l.error().message().find("17 digits") != std::string::npos);
    CHECK_FALSE(validate_iccid("894411006825627005412"));
    auto c = validate_iccid("894411006825627005F");
    CHECK_FALSE(c);
    CHECK(c.error().message().find("digits only") != std::string::npos);
    CHECK(validate_iccid("").error().message() == "ICCID is empty");
  }
}

TEST_CASE("IMSI: exactly 15 digits, as an integer", "[inventory]") {
  auto v = validate_imsi("234150999999999");
  REQUIRE(v);
  CHECK(*v == 234150999999999ULL);
  CHECK(format_imsi(*v) == "234150999999999");
  CHECK(format_imsi(1) == "000000000000001");
  CHECK_FALSE(validate_imsi("23415099999999"));
  CHECK(validate_imsi("23415099999999").error().message().find("14 digits") != std::string::npos);
  CHECK_FALSE(validate_imsi("2341509999999999"));
  CHECK_FALSE(validate_imsi("23415099999999a"));
  CHECK_FALSE(validate_imsi("+23415099999999"));
  CHECK_FALSE(validate_imsi(""));
  // 0 is the IMSI index's empty slot: refused here, never an assertion there.
  CHECK_FALSE(validate_imsi("000000000000000"));
  CHECK(validate_imsi("000000000000000").error().message().find("all zeros") != std::string::npos);
  CHECK(validate_imsi("000000000000001"));
}

TEST_CASE("MSISDN: E.164, optional +, returned as digits", "[inventory]") {
  CHECK(*validate_msisdn("+447700900123") == "447700900123");
  CHECK(*validate_msisdn("447700900123") == "447700900123");
  CHECK(*validate_msisdn("123456789012345") == "123456789012345");
  CHECK_FALSE(validate_msisdn("1234567890123456")); // 16 digits
  CHECK_FALSE(validate_msisdn("+"));
  CHECK_FALSE(validate_msisdn("++447700900123"));
  CHECK_FALSE(validate_msisdn("07700900123")); // national form
  CHECK(validate_msisdn("07700900123").error().message().find("international") !=
        std::string::npos);
  CHECK_FALSE(validate_msisdn("44 7700 900123"));
  CHECK_FALSE(validate_msisdn("123456"));
  CHECK_FALSE(validate_msisdn(""));
}

TEST_CASE("a long garbage value is cut short in the reason", "[inventory]") {
  std::string junk(500, 'x');
  auto v = validate_iccid(junk);
  CHECK_FALSE(v);
  CHECK(v.error().message().size() < 120);
}
