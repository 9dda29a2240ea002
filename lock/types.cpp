#include "lock/types.hpp"

#include <array>
#include <utility>

namespace imeilock::lock {

namespace {

// One table per enum: the to_string() spelling is also what parse() accepts,
// so the API, the store and the config can never disagree on a name.
template <class E, std::size_t N>
using names = std::array<std::pair<E, std::string_view>, N>;

constexpr names<sim_status, 2> sim_status_names{{
    {sim_status::inactive, "inactive"},
    {sim_status::active, "active"},
}};

constexpr names<lock_state, 3> lock_state_names{{
    {lock_state::off, "off"},
    {lock_state::awaiting_first_imei, "awaiting_first_imei"},
    {lock_state::locked, "locked"},
}};

constexpr names<bar_state, 4> bar_state_names{{
    {bar_state::none, "none"},
    {bar_state::bar_pending, "bar_pending"},
    {bar_state::barred, "barred"},
    {bar_state::unbar_pending, "unbar_pending"},
}};

constexpr names<bar_reason, 3> bar_reason_names{{
    {bar_reason::none, "none"},
    {bar_reason::imei_lock, "imei_lock"},
    {bar_reason::manual, "manual"},
}};

constexpr names<order_type, 6> order_type_names{{
    {order_type::none, "none"},
    {order_type::activate, "activate"},
    {order_type::enable_imei_lock, "enable_imei_lock"},
    {order_type::disable_imei_lock, "disable_imei_lock"},
    {order_type::bar, "bar"},
    {order_type::unbar, "unbar"},
}};

constexpr names<unbar_mode, 3> unbar_mode_names{{
    {unbar_mode::none, "none"},
    {unbar_mode::keep_lock, "keep_lock"},
    {unbar_mode::update_to_last_seen, "update_to_last_seen"},
}};

constexpr names<violation_action, 3> violation_action_names{{
    {violation_action::bar, "bar"},
    {violation_action::alert, "alert"},
    {violation_action::disconnect_and_bar, "disconnect_and_bar"},
}};

constexpr names<lock_scope, 2> lock_scope_names{{
    {lock_scope::imei, "imei"},
    {lock_scope::device_model, "device_model"},
}};

template <class E, std::size_t N>
std::string_view name_of(const names<E, N>& table, E value) {
  for (const auto& [v, n] : table)
    if (v == value)
      return n;
  return "unknown";
}

template <class E, std::size_t N>
bool value_of(const names<E, N>& table, std::string_view text, E& out) {
  for (const auto& [v, n] : table) {
    if (n == text) {
      out = v;
      return true;
    }
  }
  return false;
}

} // namespace

std::string_view to_string(sim_status v) {
  return name_of(sim_status_names, v);
}
std::string_view to_string(lock_state v) {
  return name_of(lock_state_names, v);
}
std::string_view to_string(bar_state v) {
  return name_of(bar_state_names, v);
}
std::string_view to_string(bar_reason v) {
  return name_of(bar_reason_names, v);
}
std::string_view to_string(order_type v) {
  return name_of(order_type_names, v);
}
std::string_view to_string(unbar_mode v) {
  return name_of(unbar_mode_names, v);
}
std::string_view to_string(violation_action v) {
  return name_of(violation_action_names, v);
}

std::string_view to_string(lock_scope v) {
  return name_of(lock_scope_names, v);
}

bool parse(std::string_view text, sim_status& out) {
  return value_of(sim_status_names, text, out);
}
bool parse(std::string_view text, lock_state& out) {
  return value_of(lock_state_names, text, out);
}
bool parse(std::string_view text, bar_state& out) {
  return value_of(bar_state_names, text, out);
}
bool parse(std::string_view text, bar_reason& out) {
  return value_of(bar_reason_names, text, out);
}
bool parse(std::string_view text, order_type& out) {
  return value_of(order_type_names, text, out);
}
bool parse(std::string_view text, unbar_mode& out) {
  return value_of(unbar_mode_names, text, out);
}
bool parse(std::string_view text, violation_action& out) {
  return value_of(violation_action_names, text, out);
}
bool parse(std::string_view text, lock_scope& out) {
  return value_of(lock_scope_names, text, out);
}

} // namespace imeilock::lock
