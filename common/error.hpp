#pragma once
// How imeilockd reports what went wrong: one idiom for the whole tree.
//
// - A fallible operation returns `expected<T>`: the value, or an `error`.
//   `expected<void>` is the result of an operation that has no value
//   (validate(), start(), reload()). No optional<string>, no bool plus an out
//   string, no "empty string means OK".
// - An `error` is a code from the enum of the layer that detected it, one
//   sentence an operator can act on, and optionally what it is about (`where`:
//   a configuration key path, a file) and the 1-based line in a file.
// - One documented enum per layer (each registered with error_category<>):
//     imeilock::ec          (here)   operations on SIMs and orders; orders/,
//                                    actors/, api/ (HTTP status per code);
//     imeilock::sys_ec      (here)   the environment refused: a port, a file,
//                                    the store; start()/reload() of the
//                                    daemon's components;
//     imeilock::config::ec  (config/error.hpp) a configuration value or
//                                    file is wrong; every *_config::validate();
//     imeilock::store::ec   (store/store.hpp) the store cannot be opened;
//                                    store::open(), sim_layer::open();
//     imeilock::cluster::ec (cluster/leases.hpp) the cluster database:
//                                    unreachable, fenced off, wrong shard count;
//     imeilock::http::ec    (common/http_url.hpp) a URL or TLS files;
//     imeilock::api::ec     (api/error.hpp) a request the API refuses.
// - Exceptions: only the strict YAML reader (config/section.hpp) throws
//   config::error while it walks a file, at startup and on reload; one place
//   (config::capture, used by daemon::load_config) turns it into an error.
//   And a read of the store while its database cannot be reached throws
//   unavailable_error (below): the API's route guard answers it with 503.
//   Nothing throws on the packet path because of what a peer sent.
// - Our own invariants (states the code says cannot happen) are checked with
//   IMEILOCK_ASSERT (common/assert.hpp), on in every build. Untrusted input
//   (packets, API bodies, CSV rows, configuration, store contents) never
//   reaches one: it gets an error.
//
// Plain C++20 without CAF: the lower layers build without it (UNIT_ONLY,
// fuzzers). std::expected is C++23 and not in g++ 12's C++20 mode.

#include "common/assert.hpp"

#include <concepts>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace imeilock {

/// Outcome of an operation on a SIM or an order (orders/, actors/, api/).
/// Anything an untrusted peer can cause is one of these, returned (never
/// thrown) across component boundaries on the packet path.
enum class ec : std::uint8_t {
  ok = 0,
  /// The IMSI/ICCID is not in the inventory (R15).
  unknown_sim,
  /// The request is well formed but not allowed in the SIM's current state.
  conflict,
  /// The request is invalid (bad value, ineligible network, missing option).
  invalid,
  /// The daemon is over capacity; the peer should retry or fail over.
  overloaded,
  /// The store could not make the change durable; nothing was acknowledged.
  store_failed,
  /// The component is shutting down.
  shutting_down,
  /// An order's provisioning backend failed.
  backend_failed,
};

constexpr std::string_view to_string(ec e) {
  switch (e) {
    case ec::ok:
      return "ok";
    case ec::unknown_sim:
      return "unknown_sim";
    case ec::conflict:
      return "conflict";
    case ec::invalid:
      return "invalid";
    case ec::overloaded:
      return "overloaded";
    case ec::store_failed:
      return "store_failed";
    case ec::shutting_down:
      return "shutting_down";
    case ec::backend_failed:
      return "backend_failed";
  }
  return "unknown";
}

/// The environment refused what a component needs to start or reload
/// (metrics/, protocols/, api/, actors/ start() and reload(), daemon/).
enum class sys_ec : std::uint8_t {
  /// A listening socket could not be opened or bound (address in use, ...).
  listen_failed = 1,
  /// A file or directory could not be created, read or written.
  file_failed,
  /// The store could not be opened or its contents could not be loaded.
  store_unavailable,
};

constexpr std::string_view to_string(sys_ec e) {
  switch (e) {
    case sys_ec::listen_failed:
      return "listen_failed";
    case sys_ec::file_failed:
      return "file_failed";
    case sys_ec::store_unavailable:
      return "store_unavailable";
  }
  return "unknown";
}

/// A read of the store while its database cannot be reached (a PostgreSQL
/// outage: store::unavailable). The SIM layer's reads are synchronous calls
/// from the API's handlers, so it reaches the route guard (api/router.cpp),
/// which answers 503 with Retry-After; anything else caught there is a 500.
struct unavailable_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Registers an error enum: a specialisation names its layer. The enum also
/// needs a to_string() found by argument-dependent lookup.
template <class E>
struct error_category;

template <>
struct error_category<ec> {
  static constexpr std::string_view name = "operation";
};

template <>
struct error_category<sys_ec> {
  static constexpr std::string_view name = "system";
};

/// An enum registered with error_category<>.
template <class E>
concept error_code_enum = std::is_enum_v<E> && requires(E e) {
  { error_category<E>::name } -> std::convertible_to<std::string_view>;
  { to_string(e) } -> std::convertible_to<std::string_view>;
};

/// What went wrong: a code of one layer's enum and one sentence for operators,
/// optionally what it is about (`where`) and a 1-based line in a file.
class error {
public:
  template <error_code_enum E>
  error(E code, std::string message, std::string where = {}, int line = 0) :
      category_(error_category<E>::name),
      code_name_(to_string(code)),
      code_(static_cast<std::uint8_t>(code)),
      message_(std::move(message)),
      where_(std::move(where)),
      line_(line) {}

  /// The layer of the code ("operation", "system", "config").
  std::string_view category() const { return category_; }
  /// The code's name ("invalid", "listen_failed").
  std::string_view code_name() const { return code_name_; }

  /// The code as an enum of layer E; false when the error is of another layer.
  template <error_code_enum E>
  bool is(E code) const {
    return category_ == error_category<E>::name && code_ == static_cast<std::uint8_t>(code);
  }

  /// The sentence an operator reads ("must be between 1 and 64, got 99").
  const std::string& message() const { return message_; }
  /// What the error is about ("radius.workers", a file name); may be empty.
  const std::string& where() const { return where_; }
  /// 1-based line in a file, 0 when unknown or not about a file.
  int line() const { return line_; }

  /// "line 3: radius.workers: must be ..." (each part only when known).
  std::string describe() const {
    std::string out;
    if (line_ > 0)
      out = "line " + std::to_string(line_) + ": ";
    if (!where_.empty())
      out += where_ + ": ";
    out += message_;
    return out;
  }

  /// Places the error inside an enclosing part: `where` "retry.max_attempts"
  /// within "defaults" becomes "defaults.retry.max_attempts".
  error& within(std::string_view outer) {
    if (!outer.empty())
      where_ = where_.empty() ? std::string{outer} : std::string{outer} + "." + where_;
    return *this;
  }

  template <error_code_enum E>
  friend bool operator==(const error& e, E code) {
    return e.is(code);
  }

private:
  std::string_view category_;
  std::string_view code_name_;
  std::uint8_t code_;
  std::string message_;
  std::string where_;
  int line_;
};

/// A value of type T, or the error that prevented it. expected<void> carries
/// only the error. Reading the value of an error is a bug (IMEILOCK_ASSERT).
template <class T>
class [[nodiscard]] expected {
public:
  expected(T value) : state_(std::in_place_index<0>, std::move(value)) {}
  expected(imeilock::error e) : state_(std::in_place_index<1>, std::move(e)) {}

  bool has_value() const { return state_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & {
    IMEILOCK_ASSERT(has_value(), "expected::value() on an error");
    return std::get<0>(state_);
  }
  const T& value() const& {
    IMEILOCK_ASSERT(has_value(), "expected::value() on an error");
    return std::get<0>(state_);
  }
  T&& value() && {
    IMEILOCK_ASSERT(has_value(), "expected::value() on an error");
    return std::get<0>(std::move(state_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const imeilock::error& error() const {
    IMEILOCK_ASSERT(!has_value(), "expected::error() on a value");
    return std::get<1>(state_);
  }
  imeilock::error& error() {
    IMEILOCK_ASSERT(!has_value(), "expected::error() on a value");
    return std::get<1>(state_);
  }

private:
  std::variant<T, imeilock::error> state_;
};

template <>
class [[nodiscard]] expected<void> {
public:
  /// Success.
  expected() = default;
  expected(imeilock::error e) : error_(std::move(e)) {}

  bool has_value() const { return !error_.has_value(); }
  explicit operator bool() const { return has_value(); }

  const imeilock::error& error() const {
    IMEILOCK_ASSERT(!has_value(), "expected::error() on success");
    return *error_;
  }
  imeilock::error& error() {
    IMEILOCK_ASSERT(!has_value(), "expected::error() on success");
    return *error_;
  }

private:
  std::optional<imeilock::error> error_;
};

} // namespace imeilock
