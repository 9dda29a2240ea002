#include "common/log.hpp"

#include <unistd.h>

#include <cstdio>
#include <mutex>

namespace imeilock::log {

namespace detail {
std::atomic<int> threshold{static_cast<int>(level::info)};
} // namespace detail

namespace {

std::mutex capture_mutex;
std::string* capture_sink = nullptr;

bool needs_quotes(std::string_view v) {
  if (v.empty())
    return true;
  for (char c : v)
    if (c == ' ' || c == '"' || c == '=' || c == '\t' || static_cast<unsigned char>(c) < 0x20)
      return true;
  return false;
}

void append_value(std::string& line, std::string_view v) {
  if (!needs_quotes(v)) {
    line += v;
    return;
  }
  line += '"';
  for (char c : v) {
    switch (c) {
      case '"':
        line += "\\\"";
        break;
      case '\\':
        line += "\\\\";
        break;
      case '\n':
        line += "\\n";
        break;
      case '\r':
        line += "\\r";
        break;
      case '\t':
        line += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
          line += buf;
        } else {
          line += c;
        }
    }
  }
  line += '"';
}

} // namespace

field::field(std::string_view k, double v) : key(k) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  value = buf;
}

bool parse_level(std::string_view text, level& out) {
  if (text == "error" || text == "err")
    out = level::err;
  else if (text == "warning" || text == "warn")
    out = level::warning;
  else if (text == "notice")
    out = level::notice;
  else if (text == "info")
    out = level::info;
  else if (text == "debug")
    out = level::debug;
  else
    return false;
  return true;
}

std::string_view to_string(level lvl) {
  switch (lvl) {
    case level::err:
      return "error";
    case level::warning:
      return "warning";
    case level::notice:
      return "notice";
    case level::info:
      return "info";
    case level::debug:
      return "debug";
  }
  return "unknown";
}

void set_level(level lvl) {
  detail::threshold.store(static_cast<int>(lvl), std::memory_order_relaxed);
}

level current_level() {
  return static_cast<level>(detail::threshold.load(std::memory_order_relaxed));
}

void write(level lvl, std::string_view event, fields fs) {
  if (!enabled(lvl))
    return;
  std::string line;
  line.reserve(64 + event.size() + fs.size() * 24);
  line += '<';
  line += static_cast<char>('0' + static_cast<int>(lvl));
  line += '>';
  line += event;
  for (const auto& f : fs) {
    line += ' ';
    line += f.key;
    line += '=';
    append_value(line, f.value);
  }
  line += '\n';
  {
    std::lock_guard<std::mutex> guard{capture_mutex};
    if (capture_sink != nullptr) {
      *capture_sink += line;
      return;
    }
  }
  // One write(2) per line: lines from different threads never interleave.
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    auto n = ::write(STDERR_FILENO, p, left);
    if (n <= 0)
      return; // stderr gone: nothing sensible left to do with a log line
    p += n;
    left -= static_cast<size_t>(n);
  }
}

void capture_for_testing(std::string* sink) {
  std::lock_guard<std::mutex> guard{capture_mutex};
  capture_sink = sink;
}

bool rate_limiter::allow(std::uint64_t& suppressed) {
  auto now = std::chrono::steady_clock::now().time_since_epoch().count();
  auto start = window_start_.load(std::memory_order_relaxed);
  if (now - start >= period_ns_ &&
      window_start_.compare_exchange_strong(start, now, std::memory_order_relaxed)) {
    in_window_.store(0, std::memory_order_relaxed);
  }
  if (in_window_.fetch_add(1, std::memory_order_relaxed) < burst_) {
    suppressed = suppressed_.exchange(0, std::memory_order_relaxed);
    return true;
  }
  suppressed_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

void write_limited(rate_limiter& limiter, level lvl, std::string_view event, fields fs) {
  if (!enabled(lvl))
    return;
  std::uint64_t suppressed = 0;
  if (!limiter.allow(suppressed))
    return;
  write(lvl, event, fs);
  if (suppressed > 0)
    write(lvl, "log.suppressed", {{"event", event}, {"count", suppressed}});
}

} // namespace imeilock::log
