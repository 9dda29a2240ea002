#include "config/section.hpp"

#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <utility>

namespace imeilock::config {

namespace {

std::string describe(const std::string& key_path, int line, const std::string& message) {
  std::string out;
  if (line > 0)
    out = "line " + std::to_string(line) + ": ";
  out += key_path.empty() ? std::string{"(root)"} : key_path;
  out += ": ";
  out += message;
  return out;
}

int line_of(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull())
    return 0;
  auto mark = node.Mark();
  return mark.line >= 0 ? mark.line + 1 : 0;
}

/// A mapping key as text. YAML allows lists and mappings as keys ("? [a]"),
/// which no option has: a clean error, not yaml-cpp's bad conversion
/// (fuzz/config_load).
std::string key_text(const YAML::Node& key, const std::string& where) {
  if (!key.IsScalar())
    throw error{where, line_of(key), "a key must be a name, not a list, a mapping or null"};
  return key.Scalar();
}

} // namespace

error::error(std::string key_path, int line, std::string message) :
    error(ec::invalid, std::move(key_path), line, std::move(message)) {}

error::error(ec code, std::string key_path, int line, std::string message) :
    std::runtime_error(describe(key_path, line, message)),
    code_(code),
    key_path_(std::move(key_path)),
    line_(line),
    message_(std::move(message)) {}

imeilock::error error::to_error() const {
  return imeilock::error{code_, message_, key_path_.empty() ? std::string{"(root)"} : key_path_,
                         line_};
}

std::string endpoint::to_string() const {
  if (host.find(':') != std::string::npos)
    return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

expected<endpoint> parse_endpoint(std::string_view text) {
  auto refuse = [&](std::string_view why) {
    return imeilock::error{ec::invalid, std::string{why} + ", got '" + std::string{text} + "'"};
  };
  constexpr std::string_view shape = "expected host:port (e.g. 127.0.0.1:1813 or [::1]:1813)";
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return refuse(shape);
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon)
      return refuse(shape);
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (host.empty() || port.empty())
    return refuse(shape);
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc{} || ptr != port.data() + port.size() || value > 65535)
    return refuse("expected a port from 0 to 65535 after the host");
  endpoint out;
  out.host = host == "*" ? std::string{"0.0.0.0"} : std::string{host};
  out.port = static_cast<std::uint16_t>(value);
  return out;
}

expected<std::chrono::milliseconds> parse_duration(std::string_view text) {
  auto refuse = [&](std::string_view why) {
    return imeilock::error{ec::invalid, std::string{why} + ", got '" + std::string{text} + "'"};
  };
  constexpr std::string_view shape = "expected a duration such as 250ms, 5s, 2m or 1h";
  std::size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
    ++i;
  if (i == 0 || i == text.size())
    return refuse(shape);
  double value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + i, value);
  if (ec != std::errc{} || ptr != text.data() + i || !std::isfinite(value))
    return refuse(shape);
  auto unit = text.substr(i);
  double ms = 0;
  if (unit == "ms")
    ms = value;
  else if (unit == "s")
    ms = value * 1000;
  else if (unit == "m" || unit == "min")
    ms = value * 60'000;
  else if (unit == "h")
    ms = value * 3'600'000;
  else if (unit == "d")
    ms = value * 86'400'000;
  else
    return refuse(shape);
  if (ms > 1e15)
    return refuse("a duration too long to be meant");
  return std::chrono::milliseconds{static_cast<long long>(std::llround(ms))};
}

section::section(const YAML::Node& node, std::string path) : node_(node), path_(std::move(path)) {
  if (node_.IsDefined() && !node_.IsNull() && !node_.IsMap())
    fail({}, "expected a mapping of keys to values");
}

std::string section::key_path(std::string_view key) const {
  if (key.empty())
    return path_;
  if (path_.empty())
    return std::string{key};
  return path_ + "." + std::string{key};
}

bool section::has(std::string_view key) const {
  if (!node_.IsMap())
    return false;
  return static_cast<bool>(node_[std::string{key}]);
}

int section::line(std::string_view key) const {
  if (key.empty() || !node_.IsMap())
    return line_of(node_);
  auto n = node_[std::string{key}];
  return n ? line_of(n) : line_of(node_);
}

void section::fail(std::string_view key, std::string message) const {
  throw error{key_path(key), line(key), std::move(message)};
}

YAML::Node section::get(std::string_view key) {
  if (!node_.IsMap()) {
    absent_->push_back(key_path(key));
    return YAML::Node{YAML::NodeType::Undefined};
  }
  used_->insert(std::string{key});
  // A const lookup: yaml-cpp's non-const operator[] adds an undefined entry
  // to the map for every key that is absent, and most keys are.
  auto n = std::as_const(node_)[std::string{key}];
  if (!n) {
    absent_->push_back(key_path(key));
    return YAML::Node{YAML::NodeType::Undefined};
  }
  if (n.IsNull())
    return YAML::Node{YAML::NodeType::Undefined};
  return n;
}

void section::read(std::string_view key, std::string& out) {
  auto n = get(key);
  if (!n.IsDefined())
    return;
  if (!n.IsScalar())
    fail(key, "expected a string");
  out = n.Scalar();
}

void section::read(std::string_view key, bool& out) {
  auto n = get(key);
  if (!n.IsDefined())
    return;
  const auto& s = n.IsScalar() ? n.Scalar() : std::string{};
  if (s == "true" || s == "yes" || s == "on")
    out = true;
  else if (s == "false" || s == "no" || s == "off")
    out = false;
  else
    fail(key, "expected true or false, got '" + s + "'");
}

void section::read(std::string_view key, std::vector<std::string>& out) {
  auto n = get(key);
  if (!n.IsDefined())
    return;
  if (!n.IsSequence())
    fail(key, "expected a list");
  std::vector<std::string> values;
  for (const auto& item : n) {
    if (!item.IsScalar())
      throw error{key_path(key), line_of(item), "expected a list of strings"};
    values.push_back(item.Scalar());
  }
  out = std::move(values);
}

void section::read(std::string_view key, std::vector<std::pair<std::string, std::string>>& out) {
  auto n = get(key);
  if (!n.IsDefined())
    return;
  if (!n.IsMap())
    fail(key, "expected a mapping of names to values");
  std::vector<std::pair<std::string, std::string>> values;
  for (const auto& kv : n) {
    auto name = key_text(kv.first, key_path(key));
    if (!kv.second.IsScalar())
      throw error{key_path(key) + "." + name, line_of(kv.second), "expected a string"};
    values.emplace_back(std::move(name), kv.second.Scalar());
  }
  out = std::move(values);
}

void section::read(std::string_view key,
                   std::vector<std::pair<std::string, std::vector<std::string>>>& out) {
  auto n = get(key);
  if (!n.IsDefined())
    return;
  if (!n.IsMap())
    fail(key, "expected a mapping of names to lists");
  std::vector<std::pair<std::string, std::vector<std::string>>> values;
  for (const auto& kv : n) {
    auto name = key_text(kv.first, key_path(key));
    if (!kv.second.IsSequence())
      throw error{key_path(key) + "." + name, line_of(kv.second), "expected a list of strings"};
    std::vector<std::string> items;
    for (const auto& item : kv.second) {
      if (!item.IsScalar())
        throw error{key_path(key) + "." + name, line_of(item), "expected a list of strings"};
      items.push_back(item.Scalar());
    }
    values.emplace_back(std::move(name), std::move(items));
  }
  out = std::move(values);
}

void section::read(std::string_view key, endpoint& out) {
  auto n = get(key);
  if (!n.IsDefined())
    return;
  if (!n.IsScalar())
    fail(key, "expected host:port (e.g. 127.0.0.1:1813 or [::1]:1813), got a non-scalar");
  auto parsed = parse_endpoint(n.Scalar());
  if (!parsed)
    fail(key, parsed.error().message());
  out = std::move(*parsed);
}

void section::read(std::string_view key, std::vector<endpoint>& out) {
  auto n = get(key);
  if (!n.IsDefined())
    return;
  std::vector<endpoint> values;
  auto one = [&](const YAML::Node& item) {
    auto parsed = item.IsScalar() ? parse_endpoint(item.Scalar())
                                  : imeilock::error{ec::invalid, "expected host:port (e.g. "
                                                                 "127.0.0.1:1813 or [::1]:1813)"};
    if (!parsed)
      throw error{key_path(key), line_of(item), parsed.error().message()};
    values.push_back(std::move(*parsed));
  };
  if (n.IsScalar())
    one(n);
  else if (n.IsSequence())
    for (const auto& item : n)
      one(item);
  else
    fail(key, "expected host:port or a list of them");
  out = std::move(values);
}

void section::read(std::string_view key, double& out, double min, double max) {
  auto n = get(key);
  if (!n.IsDefined())
    return;
  double value = 0;
  const auto& s = n.IsScalar() ? n.Scalar() : std::string{};
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (s.empty() || ec != std::errc{} || ptr != s.data() + s.size() || !std::isfinite(value))
    fail(key, "expected a number, got '" + s + "'");
  if (value < min || value > max) {
    std::ostringstream msg;
    msg << "must be between " << min << " and " << max << ", got " << s;
    fail(key, msg.str());
  }
  out = value;
}

std::optional<long long> section::read_integer(std::string_view key, long long min, long long max) {
  auto n = get(key);
  if (!n.IsDefined())
    return std::nullopt;
  long long value = 0;
  const auto& s = n.IsScalar() ? n.Scalar() : std::string{};
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (s.empty() || ec != std::errc{} || ptr != s.data() + s.size())
    fail(key, "expected a whole number, got '" + s + "'");
  if (value < min || value > max)
    fail(key,
         "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " + s);
  return value;
}

void section::read_duration(std::string_view key, std::chrono::milliseconds& out,
                            std::chrono::milliseconds min, std::chrono::milliseconds max) {
  auto n = get(key);
  if (!n.IsDefined())
    return;
  const auto& s = n.IsScalar() ? n.Scalar() : std::string{};
  auto parsed = parse_duration(s);
  if (!parsed)
    fail(key, parsed.error().message());
  auto value = *parsed;
  if (value < min || value > max)
    fail(key, "must be between " + std::to_string(min.count()) + "ms and " +
                  std::to_string(max.count()) + "ms, got " + s);
  out = value;
}

section section::child(std::string_view key) {
  auto n = get(key);
  section out{n.IsDefined() ? n : YAML::Node{YAML::NodeType::Undefined}, key_path(key)};
  out.absent_ = absent_;
  return out;
}

std::vector<section> section::children(std::string_view key) {
  auto n = get(key);
  std::vector<section> out;
  if (!n.IsDefined())
    return out;
  if (!n.IsSequence())
    fail(key, "expected a list");
  std::size_t i = 0;
  for (const auto& item : n) {
    out.emplace_back(item, key_path(key) + "[" + std::to_string(i++) + "]");
    out.back().absent_ = absent_;
  }
  return out;
}

std::vector<std::pair<std::string, section>> section::named_children(std::string_view key) {
  auto n = get(key);
  std::vector<std::pair<std::string, section>> out;
  if (!n.IsDefined())
    return out;
  if (!n.IsMap())
    fail(key, "expected a mapping of names to settings");
  for (const auto& kv : n) {
    auto name = key_text(kv.first, key_path(key));
    out.emplace_back(name, section{kv.second, key_path(key) + "." + name});
    out.back().second.absent_ = absent_;
  }
  return out;
}

void section::finish() const {
  if (!node_.IsMap())
    return;
  for (const auto& kv : node_) {
    auto name = key_text(kv.first, path_);
    if (!used_->contains(name))
      throw error{ec::unknown_key, key_path(name), line_of(kv.first), "unknown key"};
  }
}

namespace {

section parse_root(const std::function<YAML::Node()>& parse) {
  YAML::Node root;
  try {
    root = parse();
  } catch (const YAML::Exception& e) { // ParserException and anything else yaml-cpp raises
    throw error{ec::syntax, "", e.mark.line >= 0 ? e.mark.line + 1 : 0,
                "YAML syntax error: " + e.msg};
  }
  if (!root.IsDefined() || root.IsNull())
    return section{YAML::Node{YAML::NodeType::Map}, ""};
  return section{root, ""};
}

} // namespace

section load_file(const std::string& file_name) {
  std::ifstream in{file_name};
  if (!in)
    throw error{ec::unreadable, "", 0, "cannot open configuration file '" + file_name + "'"};
  std::stringstream buf;
  buf << in.rdbuf();
  auto text = buf.str();
  return parse_root([&] { return YAML::Load(text); });
}

section load_string(const std::string& text) {
  return parse_root([&] { return YAML::Load(text); });
}

} // namespace imeilock::config
