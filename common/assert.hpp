#pragma once
// IMEILOCK_ASSERT(cond, message): a check of our own invariants, on in every
// build (release included, unlike assert()). When `cond` is false it writes
// "file:line: assertion failed: cond: message" to stderr and aborts. Only for
// states the code says cannot happen: anything a peer, a client, a CSV row, a
// configuration file or the store's contents can cause gets an error
// (common/error.hpp), never an assertion. `message` is evaluated only on
// failure and may be a std::string built on the spot.

#include <string_view>

namespace imeilock::detail {

/// Writes the failure to stderr (one write) and calls std::abort().
[[noreturn]] void assertion_failed(const char* condition, std::string_view message,
                                   const char* file, int line) noexcept;

} // namespace imeilock::detail

#define IMEILOCK_ASSERT(cond, message)                                                             \
  ((cond) ? static_cast<void>(0)                                                                   \
          : ::imeilock::detail::assertion_failed(#cond, (message), __FILE__, __LINE__))
