#pragma once
// Describing a struct's fields once (STYLE.md §10). A field list is a tuple of
// `field`s, each naming a column and pointing at a member; SQL statements, row
// readers and views are generated from it with for_each_field(), so adding a
// field to a persisted type is one change. No SQL, no JSON here: each backend
// (store/ for SQLite, a later PostgreSQL one) generates its own text from the
// same list and converts values with the codec below.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

namespace imeilock::fields {

/// How an operator-facing JSON view shows a field (api/json_views.cpp).
enum class shape : std::uint8_t {
  hidden,          ///< not in the view
  name,            ///< an enumeration, as its to_string() spelling
  name_or_null,    ///< an enumeration, null when it holds its default ("none")
  text_or_null,    ///< a string, null when empty
  text,            ///< a string
  imei_or_null,    ///< a device id as 15 digits, null when no device
  time_or_null,    ///< unix ms as an RFC 3339 UTC time, null when 0
  seconds_or_null, ///< unix seconds as an RFC 3339 UTC time, null when 0
  number,          ///< an integer
  boolean,         ///< true or false
};

/// Where and how a field appears in the operator JSON view.
template <class Owner>
struct view {
  shape how = shape::hidden;
  /// JSON pointer of the value ("/bar/state"); empty when hidden.
  std::string_view path{};
  /// When set and false for the object, `null` is written at `null_at` instead.
  bool (*shown)(const Owner&) = nullptr;
  /// JSON pointer that becomes null when `shown` is false (empty: `path`).
  std::string_view null_at{};
  /// Only in the full view of the owner, not where it is shown as part of
  /// something else (e.g. a state inside an audit record).
  bool top_level_only = false;
};

/// One column of a persisted struct: its name (SQL column, compact JSON key),
/// the member that holds it, and how the operator view shows it.
template <class Owner, class T>
struct field {
  using owner_type = Owner;
  using value_type = T;
  std::string_view name;
  T Owner::*member;
  view<Owner> api{};

  const T& get(const Owner& o) const { return o.*member; }
  T& get(Owner& o) const { return o.*member; }
};

/// Calls `fn(f)` for every field `f` of the tuple `list`, in order.
template <class List, class Fn>
constexpr void for_each_field(const List& list, Fn&& fn) {
  std::apply([&](const auto&... f) { (fn(f), ...); }, list);
}

/// Calls `fn(f, i)` with each field and its position (0-based).
template <class List, class Fn>
constexpr void for_each_field_indexed(const List& list, Fn&& fn) {
  std::size_t i = 0;
  std::apply([&](const auto&... f) { (fn(f, i++), ...); }, list);
}

/// Number of fields in a list.
template <class List>
inline constexpr std::size_t count = std::tuple_size_v<List>;

// -- Codec: how a value is stored ---------------------------------------------------
//
// Strings are stored as text; everything else (enumerations as their
// underlying value, bool as 0/1, device ids and counters) as a 64-bit signed
// integer, the one integer type SQLite and PostgreSQL (BIGINT) share.

/// True when T is stored as text.
template <class T>
inline constexpr bool is_text = std::is_same_v<T, std::string>;

/// The stored integer of a non-text value.
template <class T>
requires(!is_text<T>) constexpr std::int64_t to_integer(T v) {
  if constexpr (std::is_same_v<T, bool>)
    return v ? 1 : 0;
  else
    return static_cast<std::int64_t>(v);
}

/// The value of a stored integer (the inverse of to_integer).
template <class T>
requires(!is_text<T>) constexpr T from_integer(std::int64_t i) {
  if constexpr (std::is_same_v<T, bool>)
    return i != 0;
  else
    return static_cast<T>(i);
}

} // namespace imeilock::fields
