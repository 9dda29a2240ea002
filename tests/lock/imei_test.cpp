// R2: IMEI identity and the encodings feeds use.

#include "lock/imei.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <span>
#include <string>

using namespace imeilock::lock;

namespace {

imei_value decode_bytes(std::initializer_list<std::uint8_t> bytes) {
  std::vector<std::uint8_t> v(bytes);
  return decode_imei(std::span<const std::uint8_t>{v});
}

// TS 23.003 Annex B's example: TAC 35209900, SNR 176148, check digit 1.
constexpr device_id spec_example = 35209900176148ULL;

} // namespace

TEST_CASE("R2 Luhn check digit follows TS 23.003 Annex B", "[imei][R2]") {
  CHECK(luhn_digit(spec_example) == 1);
  CHECK(luhn_digit(49015420323751ULL) == 8);
  CHECK(luhn_digit(35349001234567ULL) == 0);
  // A single-digit change always changes the check digit.
  CHECK(luhn_digit(35209900176149ULL) != 1);
}

TEST_CASE("R2 format_imei shows 15 digits with the computed check digit", "[imei][R2]") {
  CHECK(format_imei(spec_example) == "352099001761481");
  CHECK(format_imei(no_device).empty());
  // Leading zeros of a TAC (reporting body 01) are kept.
  CHECK(format_imei(1234567890123ULL).size() == 15);
  CHECK(format_imei(1234567890123ULL).substr(0, 14) == "01234567890123");
  CHECK(format_imei(100'000'000'000'000ULL).empty()); // more than 14 digits is no device
}

TEST_CASE("R2 ASCII decimal of 14, 15 and 16 digits", "[imei][R2]") {
  SECTION("15 digits with the Luhn digit") {
    auto v = decode_imei("352099001761481");
    CHECK(v.status == imei_status::ok);
    CHECK(v.device == spec_example);
    CHECK_FALSE(v.svn.has_value());
  }
  SECTION("15 digits with a spare 0 instead of the Luhn digit is the same device") {
    auto v = decode_imei("352099001761480");
    CHECK(v.status == imei_status::ok);
    CHECK(v.device == spec_example);
  }
  SECTION("15 digits with a wrong check digit: the network's 15th digit is ignored") {
    CHECK(decode_imei("352099001761487").device == spec_example);
  }
  SECTION("14 digits, no check digit") {
    auto v = decode_imei("35209900176148");
    CHECK(v.status == imei_status::ok);
    CHECK(v.device == spec_example);
  }
  SECTION("16 digits: IMEISV, digits 15-16 are the software version") {
    auto v = decode_imei("3520990017614823");
    CHECK(v.status == imei_status::ok);
    CHECK(v.device == spec_example);
    REQUIRE(v.svn.has_value());
    CHECK(*v.svn == 23);
  }
  SECTION("a new software version is the same device") {
    CHECK(decode_imei("3520990017614801").device == decode_imei("3520990017614899").device);
  }
  SECTION("a different serial number is a different device") {
    CHECK(decode_imei("352099001761490").device != decode_imei("352099001761481").device);
  }
}

TEST_CASE("R2 TS 32.299 UTF-8 hexadecimal with an F filler", "[imei][R2]") {
  SECTION("IMEI (15 digits) + F filler") {
    auto v = decode_imei("352099001761481F");
    CHECK(v.status == imei_status::ok);
    CHECK(v.device == spec_example);
    CHECK_FALSE(v.svn.has_value());
  }
  SECTION("lower-case filler") {
    CHECK(decode_imei("352099001761481f").device == spec_example);
  }
  SECTION("14 digits + FF") {
    CHECK(decode_imei("35209900176148FF").device == spec_example);
  }
  SECTION("a filler inside the digits is malformed") {
    CHECK(decode_imei("3520990017614F81").status == imei_status::malformed);
    CHECK(decode_imei("F352099001761481").status == imei_status::malformed);
  }
  SECTION("other hexadecimal digits are malformed") {
    CHECK(decode_imei("352099001761481A").status == imei_status::malformed);
  }
  SECTION("too few digits before the filler") {
    CHECK(decode_imei("3520990017614FFF").status == imei_status::malformed);
  }
}

TEST_CASE("R2 8-byte TBCD with swapped nibbles and an F filler", "[imei][R2]") {
  SECTION("IMEISV 3520990017614823") {
    // digit pairs 35 20 99 00 17 61 48 23 -> bytes with nibbles swapped
    auto v = decode_bytes({0x53, 0x02, 0x99, 0x00, 0x71, 0x16, 0x84, 0x32});
    CHECK(v.status == imei_status::ok);
    CHECK(v.device == spec_example);
    REQUIRE(v.svn.has_value());
    CHECK(*v.svn == 23);
  }
  SECTION("IMEI 352099001761481 with the end mark 0xF") {
    auto v = decode_bytes({0x53, 0x02, 0x99, 0x00, 0x71, 0x16, 0x84, 0xF1});
    CHECK(v.status == imei_status::ok);
    CHECK(v.device == spec_example);
    CHECK_FALSE(v.svn.has_value());
  }
  SECTION("a nibble A-E is malformed") {
    CHECK(decode_bytes({0x53, 0x02, 0x99, 0x00, 0x71, 0x16, 0x84, 0x3A}).status ==
          imei_status::malformed);
  }
  SECTION("a filler before the end is malformed") {
    CHECK(decode_bytes({0x53, 0x02, 0xF9, 0x00, 0x71, 0x16, 0x84, 0x32}).status ==
          imei_status::malformed);
  }
  SECTION("eight ASCII digits are a truncated text, not TBCD") {
    CHECK(decode_imei("35209900").status == imei_status::malformed);
    CHECK(decode_imei("12345678").status == imei_status::malformed);
  }
  SECTION("all zero is malformed") {
    CHECK(decode_bytes({0, 0, 0, 0, 0, 0, 0, 0}).status == imei_status::malformed);
  }
}

TEST_CASE("R2 R3 absent and malformed values are no device", "[imei][R2][R3]") {
  CHECK(decode_imei("").status == imei_status::absent);
  CHECK(decode_imei(std::string_view{}).device == no_device);
  for (const char* bad : {"3520990017614", "35209900176148231", "35209900176148x",
                          " 352099001761481", "352099001761481 ", "-35209900176148",
                          "000000000000000", "0000000000000000", "1234567", "abcdefghijklmnop"}) {
    INFO(bad);
    auto v = decode_imei(bad);
    CHECK(v.status == imei_status::malformed);
    CHECK(v.device == no_device);
  }
  // A NUL inside a 15-byte value is not a digit.
  CHECK(decode_imei(std::string_view{"35209900176\0481", 15}).status == imei_status::malformed);
}

TEST_CASE("R2 parse_imei_strict checks what an operator typed", "[imei][R2]") {
  CHECK(parse_imei_strict("352099001761481") == spec_example);
  CHECK(parse_imei_strict("352099001761480") == spec_example);   // spare 0
  CHECK_FALSE(parse_imei_strict("352099001761482").has_value()); // typo caught by Luhn
  CHECK(parse_imei_strict("35209900176148") == spec_example);
  CHECK(parse_imei_strict("3520990017614823") == spec_example);
  CHECK_FALSE(parse_imei_strict("352099001761481F").has_value()); // operators type digits only
  CHECK_FALSE(parse_imei_strict("000000000000000").has_value());
  CHECK_FALSE(parse_imei_strict("").has_value());
  CHECK_FALSE(parse_imei_strict("35209900-1761481").has_value());
}

TEST_CASE("R2 format and parse round-trip for any identity", "[imei][R2]") {
  for (device_id d : {device_id{1}, spec_example, device_id{99'999'999'999'999ULL},
                      device_id{1234567890123ULL}}) {
    auto text = format_imei(d);
    REQUIRE(text.size() == 15);
    CHECK(parse_imei_strict(text) == d);
    CHECK(decode_imei(text).device == d);
  }
}
