#pragma once
// Logging to stderr, one line per event, key=value fields, with sd-daemon
// priority prefixes (<3>..<7>) so journald keeps the levels (sd-daemon(3)).
//
//   log::info("radius.listening", {{"addr", "127.0.0.1:1813"}, {"threads", 2}});
//   -> <6>radius.listening addr=127.0.0.1:1813 threads=2
//
// Thread-safe; a line is written with one write(2) so lines never interleave.

#include <atomic>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace imeilock::log {

/// Severity, numerically equal to the syslog/sd-daemon priority.
enum class level : int { err = 3, warning = 4, notice = 5, info = 6, debug = 7 };

/// Parses "error", "warning", "notice", "info", "debug"; false if unknown.
bool parse_level(std::string_view text, level& out);
std::string_view to_string(level lvl);

/// Sets the most verbose level written (default info). Safe at any time.
void set_level(level lvl);
level current_level();
inline bool enabled(level lvl);

/// One key=value field. Values with spaces, quotes or '=' are quoted.
struct field {
  std::string_view key;
  std::string value;
  field(std::string_view k, std::string_view v) : key(k), value(v) {}
  field(std::string_view k, const std::string& v) : key(k), value(v) {}
  field(std::string_view k, const char* v) : key(k), value(v ? v : "") {}
  field(std::string_view k, bool v) : key(k), value(v ? "true" : "false") {}
  template <std::integral T>
  field(std::string_view k, T v) : key(k), value(std::to_string(v)) {}
  field(std::string_view k, double v);
};

using fields = std::initializer_list<field>;

/// Writes one event line if `lvl` is enabled.
void write(level lvl, std::string_view event, fields fs = {});

inline void error(std::string_view event, fields fs = {}) {
  write(level::err, event, fs);
}
inline void warning(std::string_view event, fields fs = {}) {
  write(level::warning, event, fs);
}
inline void notice(std::string_view event, fields fs = {}) {
  write(level::notice, event, fs);
}
inline void info(std::string_view event, fields fs = {}) {
  write(level::info, event, fs);
}
inline void debug(std::string_view event, fields fs = {}) {
  write(level::debug, event, fs);
}

/// Redirects output into a string (tests); pass nullptr to go back to stderr.
void capture_for_testing(std::string* sink);

/// Lets at most `burst` events through per `period`; counts the rest, and
/// reports how many were suppressed on the next event let through. For
/// per-packet errors, so a flood cannot fill the disk. Thread-safe, lock-free.
class rate_limiter {
public:
  explicit rate_limiter(std::uint32_t burst = 10,
                        std::chrono::milliseconds period = std::chrono::seconds{1}) :
      burst_(burst), period_ns_(std::chrono::nanoseconds{period}.count()) {}

  /// True if this event may be logged; `suppressed` gets the number dropped
  /// since the last one let through.
  bool allow(std::uint64_t& suppressed);

private:
  std::uint32_t burst_;
  std::int64_t period_ns_;
  std::atomic<std::int64_t> window_start_{0};
  std::atomic<std::uint32_t> in_window_{0};
  std::atomic<std::uint64_t> suppressed_{0};
};

/// Logs through `limiter`, adding suppressed=N when events were dropped.
void write_limited(rate_limiter& limiter, level lvl, std::string_view event, fields fs = {});

namespace detail {
extern std::atomic<int> threshold;
}

inline bool enabled(level lvl) {
  return static_cast<int>(lvl) <= detail::threshold.load(std::memory_order_relaxed);
}

} // namespace imeilock::log
