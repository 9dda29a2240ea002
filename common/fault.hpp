#pragma once
// Last-resort guards (issue 9). Input is validated at the edge and errors
// are returned, never thrown, on the packet and API paths; if an exception
// still reaches the edge of an I/O thread, an actor handler or a reload, it
// is a bug or an input nothing foresaw: it is logged (rate-limited), counted
// per place in imeilock_internal_errors_total{where} (metrics/), and the
// daemon keeps serving (STYLE §4: graceful for anything from outside).

#include <array>
#include <cstdint>
#include <exception>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace imeilock {

/// Where a guard caught an exception: the `where` label of
/// imeilock_internal_errors_total.
enum class fault_site : std::uint8_t {
  io_thread,   ///< a handler run by the daemon's io_context threads
  control,     ///< the main thread: signals, reload, watchdog
  api_request, ///< an API route handler (answered 500 internal)
  sim_actor,   ///< a SIM actor's handler
  registry,    ///< a registry shard's handler
  order_actor, ///< the order actor's handler
  store_read,  ///< the open orders could not be read at startup (none resumed)
  listener,    ///< a SIM event listener (webhooks, RFC 5176 sender)
};
inline constexpr std::size_t fault_site_count = 8;

/// The label value ("io_thread", ...).
std::string_view to_string(fault_site where);

/// What the exception `e` says (its what(), or "unknown exception").
std::string describe(const std::exception_ptr& e);

/// Logs (rate-limited, event "internal_error") and counts one fault.
void report_fault(fault_site where, std::string_view what) noexcept;
/// The same for the exception being handled (call it inside a catch block).
void report_current_exception(fault_site where) noexcept;

/// Faults counted so far at `where`, since the process started.
std::uint64_t faults(fault_site where) noexcept;

/// Runs `fn` (an io_context's run(), a handler), and again after every
/// exception that escapes it, until it returns normally. Asio allows run()
/// to be called again after a handler threw: the other handlers are kept.
template <class F>
void run_guarded(fault_site where, F&& fn) {
  for (;;) {
    try {
      fn();
      return;
    } catch (...) {
      report_current_exception(where);
    }
  }
}

/// Runs `fn` once; an exception is reported and swallowed. For actor
/// handlers and callbacks that must not unwind into their caller.
template <class F>
void guarded(fault_site where, F&& fn) noexcept {
  try {
    fn();
  } catch (...) {
    report_current_exception(where);
  }
}

namespace detail {

template <class F, class Member>
struct guarded_handler;

template <class F, class R, class C, class... Ts>
struct guarded_handler<F, R (C::*)(Ts...) const> {
  static auto wrap(fault_site where, F f) {
    // Same parameter types as `f`, so frameworks that read a handler's
    // signature (CAF behaviours) see the original one.
    return [where, f = std::move(f)](Ts... xs) -> R {
      try {
        return f(std::forward<Ts>(xs)...);
      } catch (...) {
        report_current_exception(where);
        if constexpr (!std::is_void_v<R>)
          return R{};
      }
    };
  }
};

} // namespace detail

/// `fn` (a lambda with fixed parameter types) wrapped so that an exception
/// escaping it is reported at `where` and swallowed (a non-void handler then
/// returns a default value). For actor behaviours: the actor stays alive.
template <class F>
auto guard(fault_site where, F fn) {
  return detail::guarded_handler<F, decltype(&F::operator())>::wrap(where, std::move(fn));
}

} // namespace imeilock
