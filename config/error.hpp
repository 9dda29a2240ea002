#pragma once
// The configuration layer's errors, without YAML: headers that declare a
// validate() include this, not config/section.hpp.

#include "common/error.hpp"

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace imeilock::config {

/// What is wrong with a configuration (the config layer's codes; see
/// common/error.hpp for the other layers).
enum class ec : std::uint8_t {
  /// The file could not be opened or read.
  unreadable = 1,
  /// The file is not valid YAML.
  syntax,
  /// A key nobody reads: a typo, or an option of another version.
  unknown_key,
  /// A value of the wrong type, out of range, or inconsistent with another
  /// (every *_config::validate() returns this code).
  invalid,
};

constexpr std::string_view to_string(ec e) {
  switch (e) {
    case ec::unreadable:
      return "unreadable";
    case ec::syntax:
      return "syntax";
    case ec::unknown_key:
      return "unknown_key";
    case ec::invalid:
      return "invalid";
  }
  return "unknown";
}

} // namespace imeilock::config

template <>
struct imeilock::error_category<imeilock::config::ec> {
  static constexpr std::string_view name = "config";
};

namespace imeilock::config {

/// The exception the strict reader throws while it walks a file (and only
/// there: load() functions of the components). Public entry points turn it
/// into an imeilock::error with capture(). what() reads "line <n>: <key.path>:
/// <message>".
class error : public std::runtime_error {
public:
  error(std::string key_path, int line, std::string message);
  error(ec code, std::string key_path, int line, std::string message);
  ec code() const { return code_; }
  const std::string& key_path() const { return key_path_; }
  /// 1-based line in the file, 0 when unknown.
  int line() const { return line_; }
  const std::string& message() const { return message_; }

  /// The same problem as a value: where = key path ("(root)" for the file
  /// itself), so describe() reads exactly like what().
  imeilock::error to_error() const;

private:
  ec code_ = ec::invalid;
  std::string key_path_;
  int line_;
  std::string message_;
};

/// Runs a reading function (one that may throw config::error) and returns
/// its result, or the problem as an error. The one place a configuration
/// exception turns into a value.
template <class F>
auto capture(F&& read) -> expected<decltype(read())> {
  try {
    return std::forward<F>(read)();
  } catch (const error& e) {
    return e.to_error();
  }
}

} // namespace imeilock::config
