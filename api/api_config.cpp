#include "api/api_config.hpp"

#include "config/tls.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>

namespace imeilock::api {

namespace {

// A bearer token shorter than this is guessable; refuse it at load time.
constexpr std::size_t min_token_length = 16;

bool token_chars_ok(const std::string& t) {
  // RFC 6750 §2.1 b64token characters.
  return std::all_of(t.begin(), t.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '=';
  });
}

/// Whether `t` can be a bearer token (config::ec::invalid if not).
expected<void> check_token(const std::string& t) {
  if (t.size() < min_token_length)
    return error{config::ec::invalid,
                 "a token must be at least " + std::to_string(min_token_length) + " characters"};
  if (!token_chars_ok(t))
    return error{config::ec::invalid, "a token may hold only letters, digits and -._~+/="};
  return {};
}

} // namespace

void load(api_config& cfg, config::section s) {
  s.read("listen", cfg.listen);
  if (cfg.listen.empty())
    s.fail("listen", "at least one address is needed");
  s.read("tokens", cfg.tokens);
  for (const auto& t : cfg.tokens)
    if (auto usable = check_token(t); !usable)
      s.fail("tokens", usable.error().message());
  s.read("read_only_tokens", cfg.read_only_tokens);
  for (const auto& t : cfg.read_only_tokens)
    if (auto usable = check_token(t); !usable)
      s.fail("read_only_tokens", usable.error().message());
  s.read("token_file", cfg.token_file);
  s.read("max_header_bytes", cfg.max_header_bytes, 1024u, 1024u * 1024u);
  s.read("max_body_bytes", cfg.max_body_bytes, 1024u, 1024u * 1024u * 1024u);
  s.read_duration("idle_timeout", cfg.idle_timeout, 1s, 1h);
  s.read_duration("header_timeout", cfg.header_timeout, 100ms, 10min);
  s.read_duration("request_timeout", cfg.request_timeout, 100ms, 10min);
  s.read("max_connections", cfg.max_connections, 1u, 100000u);
  s.read("max_connections_per_source", cfg.max_connections_per_source, 1u, 100000u);
  s.read("ui", cfg.ui);
  s.finish();
  if (!cfg.token_file.empty()) {
    if (auto probe = resolve_tokens(cfg); !probe)
      s.fail("token_file", probe.error().message());
  }
}

expected<token_set> resolve_tokens(const api_config& cfg) {
  token_set result;
  result.read_write = cfg.tokens;
  result.read_only = cfg.read_only_tokens;
  if (!cfg.token_file.empty()) {
    std::ifstream in(cfg.token_file);
    if (!in)
      return error{sys_ec::file_failed, "cannot read token file " + cfg.token_file};
    std::string line;
    int line_no = 0;
    while (std::getline(in, line)) {
      ++line_no;
      if (!line.empty() && line.back() == '\r')
        line.pop_back();
      std::istringstream words(line);
      std::string kind;
      std::string token;
      std::string extra;
      if (!(words >> kind) || kind.front() == '#')
        continue;
      auto where = cfg.token_file + ":" + std::to_string(line_no) + ": ";
      if (!(words >> token) || (words >> extra))
        return error{config::ec::invalid, where + "expected 'rw TOKEN' or 'ro TOKEN'"};
      if (auto usable = check_token(token); !usable)
        return error{config::ec::invalid, where + usable.error().message()};
      if (kind == "rw")
        result.read_write.push_back(token);
      else if (kind == "ro")
        result.read_only.push_back(token);
      else
        return error{config::ec::invalid,
                     where.append("unknown kind '").append(kind).append("': expected rw or ro")};
    }
  }
  return result;
}

const std::vector<std::string>& webhook_event_names() {
  // The lock::notice values, spelled as the "event" field carries them.
  static const std::vector<std::string> names{
      "change_event",  "violation",       "lock_set_first_imei", "lock_enabled", "lock_disabled",
      "bar_completed", "unbar_completed", "order_failed",        "activated"};
  return names;
}

void load(webhook_config& cfg, config::section s) {
  for (auto& t : s.children("targets")) {
    webhook_target target;
    t.read("url", target.url);
    if (auto parsed = http::parse_url(target.url); !parsed)
      t.fail("url", parsed.error().message());
    t.read("events", target.events);
    for (const auto& e : target.events) {
      const auto& names = webhook_event_names();
      if (std::find(names.begin(), names.end(), e) == names.end()) {
        std::string all;
        for (const auto& n : names)
          all.append(all.empty() ? "" : ", ").append(n);
        t.fail("events", std::string("unknown event '").append(e).append("'; known: ").append(all));
      }
    }
    t.read("secret", target.secret);
    t.read("secret_file", target.secret_file);
    if (target.secret.empty() && !target.secret_file.empty()) {
      std::ifstream in(target.secret_file);
      if (!in)
        t.fail("secret_file", "cannot read " + target.secret_file);
      std::getline(in, target.secret);
      if (!target.secret.empty() && target.secret.back() == '\r')
        target.secret.pop_back();
    }
    if (target.secret.empty())
      t.fail("secret", "a target needs a secret (or secret_file) to sign its deliveries");
    if (t.has("tls"))
      config::load(target.tls, t.child("tls"));
    t.finish();
    cfg.targets.push_back(std::move(target));
  }
  s.read("queue_size", cfg.queue_size, 1u, 10000000u);
  s.read("max_attempts", cfg.max_attempts, 1u, 1000u);
  s.read_duration("initial_backoff", cfg.initial_backoff, 10ms, 1h);
  s.read_duration("max_backoff", cfg.max_backoff, 10ms, 24h);
  s.read_duration("timeout", cfg.timeout, 100ms, 10min);
  s.finish();
}

} // namespace imeilock::api
