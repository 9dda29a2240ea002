#pragma once
// Reading the YAML configuration strictly: every value is type- and
// range-checked, every error names the key path and the line, and a key
// nobody read is an error (a typo must never be silently ignored).
//
// Each component loads its own part:
//
//   void load(radius_config& cfg, config::section s) {
//     s.read("listen", cfg.listen);                       // list of endpoints
//     s.read("workers", cfg.workers, 1u, 64u);
//     s.read_duration("duplicate_window", cfg.duplicate_window, 1s, 300s);
//     s.finish();                                         // unknown keys -> error
//   }

#include "config/error.hpp"

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <concepts>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace imeilock::config {

/// A host and port, as written "127.0.0.1:1813", "[::1]:3868" or "*:1813".
struct endpoint {
  std::string host;
  std::uint16_t port = 0;
  std::string to_string() const;
  friend bool operator==(const endpoint&, const endpoint&) = default;
};

/// Parses "host:port" ("*" is 0.0.0.0; port 0 is allowed: tests); an error
/// (ec::invalid) whose message says what is wrong and quotes `text`.
expected<endpoint> parse_endpoint(std::string_view text);

/// Parses "250ms", "5s", "2m" (or "2min"), "1h", "1d", with a decimal number
/// ("1.5s"); an error (ec::invalid) whose message quotes `text` otherwise.
expected<std::chrono::milliseconds> parse_duration(std::string_view text);

/// One YAML mapping being read. Copies share the set of keys read.
class section {
public:
  /// An empty section (the key was absent): every read keeps its default.
  section() = default;
  section(const YAML::Node& node, std::string path);

  const std::string& path() const { return path_; }
  bool has(std::string_view key) const;
  /// Line of `key` (or of this mapping when key is empty), 1-based; 0 unknown.
  int line(std::string_view key = {}) const;

  void read(std::string_view key, std::string& out);
  void read(std::string_view key, bool& out);
  void read(std::string_view key, std::vector<std::string>& out);
  /// A mapping of user-chosen names to strings (e.g. network -> action), in
  /// file order.
  void read(std::string_view key, std::vector<std::pair<std::string, std::string>>& out);
  /// A mapping of user-chosen names to lists of strings (e.g. network -> TACs),
  /// in file order.
  void read(std::string_view key,
            std::vector<std::pair<std::string, std::vector<std::string>>>& out);
  void read(std::string_view key, endpoint& out);
  void read(std::string_view key, std::vector<endpoint>& out);
  void read(std::string_view key, double& out, double min, double max);
  void read_duration(std::string_view key, std::chrono::milliseconds& out,
                     std::chrono::milliseconds min, std::chrono::milliseconds max);

  template <std::integral T>
  void read(std::string_view key, T& out, T min, T max) {
    if (auto value = read_integer(key, static_cast<long long>(min), static_cast<long long>(max)))
      out = static_cast<T>(*value);
  }

  /// A nested mapping; absent -> empty section.
  section child(std::string_view key);
  /// A sequence of mappings; absent -> empty.
  std::vector<section> children(std::string_view key);
  /// A mapping whose keys are names chosen by the user (e.g. networks).
  std::vector<std::pair<std::string, section>> named_children(std::string_view key);

  /// Throws config::error for the first key that no read() consumed.
  void finish() const;

  /// Full key paths that were read but absent from the file, across this
  /// section and every section derived from it. The test of the example
  /// configuration requires this to be empty: every option is documented.
  std::vector<std::string> absent_keys() const { return *absent_; }

  /// Throws config::error about `key` (empty: about this section).
  [[noreturn]] void fail(std::string_view key, std::string message) const;

private:
  /// The value of `key` when present (out of [min, max] or not a whole
  /// number: fail()).
  std::optional<long long> read_integer(std::string_view key, long long min, long long max);
  YAML::Node get(std::string_view key);
  std::string key_path(std::string_view key) const;

  YAML::Node node_;
  std::string path_;
  std::shared_ptr<std::unordered_set<std::string>> used_ =
      std::make_shared<std::unordered_set<std::string>>();
  std::shared_ptr<std::vector<std::string>> absent_ = std::make_shared<std::vector<std::string>>();
};

/// Parses a YAML file into its root section; syntax errors become
/// config::error with the line. The root must be a mapping.
section load_file(const std::string& file_name);
/// The same for YAML text (tests, --check-config on stdin).
section load_string(const std::string& text);

} // namespace imeilock::config
