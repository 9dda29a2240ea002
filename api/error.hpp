#pragma once
// The API layer's errors: why a request is refused before it reaches the SIM
// layer (its target, query or body). The SIM layer's own outcomes are
// imeilock::ec (common/error.hpp), answered with one HTTP status per code by
// the router. Pure: built into the fuzzers.

#include "common/error.hpp"

#include <cstdint>
#include <string_view>

namespace imeilock::api {

/// Why the API refuses a request (the error body's "code" is to_string(),
/// the answer's status http_status()).
enum class ec : std::uint8_t {
  /// 400: the request target is not a path, or its percent-encoding is bad.
  bad_request = 1,
  /// 400: a query parameter is out of range (limit).
  bad_parameter,
  /// 415: the body is not sent as the Content-Type the route reads.
  unsupported_media_type,
  /// 400: the body is not JSON, nests too deep or holds a number too large.
  malformed_json,
  /// 400: the body or one of its fields has the wrong JSON type.
  wrong_type,
  /// 400: the body has a field the route does not read.
  unknown_field,
  /// 400: a required field is absent.
  missing_field,
  /// 422: a well-formed value that is not allowed (an ICCID with a wrong
  /// check digit, an unknown order type, a CSV body without its header).
  invalid_value,
};

constexpr std::string_view to_string(ec e) {
  switch (e) {
    case ec::bad_request:
      return "bad_request";
    case ec::bad_parameter:
      return "bad_parameter";
    case ec::unsupported_media_type:
      return "unsupported_media_type";
    case ec::malformed_json:
      return "malformed_json";
    case ec::wrong_type:
      return "wrong_type";
    case ec::unknown_field:
      return "unknown_field";
    case ec::missing_field:
      return "missing_field";
    case ec::invalid_value:
      return "invalid_value";
  }
  return "unknown";
}

/// The HTTP status a refusal with `e` is answered with.
constexpr unsigned http_status(ec e) {
  switch (e) {
    case ec::unsupported_media_type:
      return 415;
    case ec::invalid_value:
      return 422;
    default:
      return 400;
  }
}

} // namespace imeilock::api

template <>
struct imeilock::error_category<imeilock::api::ec> {
  static constexpr std::string_view name = "api";
};
