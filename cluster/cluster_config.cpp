#include "cluster/cluster_config.hpp"

#include "cluster/shard.hpp"
#include "common/http_url.hpp"
#include "config/section.hpp"

#include <algorithm>
#include <charconv>
#include <set>

namespace imeilock::cluster {

using namespace std::chrono_literals;

namespace {

bool valid_node_id(const std::string& id) {
  if (id.empty() || id.size() > 64)
    return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

bool parse_number(std::string_view text, std::uint32_t& out) {
  if (text.empty())
    return false;
  auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), out);
  return err == std::errc{} && end == text.data() + text.size();
}

} // namespace

expected<void> cluster_config::validate() const {
  if (shards < 1 || shards > max_shards)
    return error{config::ec::invalid, "must be 1.." + std::to_string(max_shards), "shards"};
  std::set<std::uint32_t> seen;
  for (auto s : preferred_shards) {
    if (s >= shards)
      return error{config::ec::invalid,
                   "shard " + std::to_string(s) +
                       " does not exist (shards: " + std::to_string(shards) + ", numbered from 0)",
                   "preferred_shards"};
    if (!seen.insert(s).second)
      return error{config::ec::invalid, "shard " + std::to_string(s) + " is listed twice",
                   "preferred_shards"};
  }
  if (lease_duration < 100ms)
    return error{config::ec::invalid, "must be at least 100ms", "lease_duration"};
  if (renew_interval < 10ms || renew_interval * 2 > lease_duration)
    return error{config::ec::invalid,
                 "must be at least 10ms and at most half of lease_duration (a lease must "
                 "survive one failed renewal)",
                 "renew_interval"};
  if (!api_url.empty()) {
    if (auto parsed = http::parse_url(api_url); !parsed)
      return error{config::ec::invalid, parsed.error().message(), "api_url"};
  }
  if (enabled && !valid_node_id(node_id))
    return error{config::ec::invalid,
                 node_id.empty() ? "required when the cluster is enabled"
                                 : "must be 1..64 characters of A-Z a-z 0-9 . _ -",
                 "node_id"};
  if (!enabled && !node_id.empty() && !valid_node_id(node_id))
    return error{config::ec::invalid, "must be 1..64 characters of A-Z a-z 0-9 . _ -", "node_id"};
  return {};
}

void load(cluster_config& cfg, config::section s) {
  s.read("enabled", cfg.enabled);
  s.read("node_id", cfg.node_id);
  s.read("shards", cfg.shards, 1u, max_shards);
  if (s.has("preferred_shards")) {
    std::vector<std::string> items;
    s.read("preferred_shards", items);
    std::vector<std::uint32_t> shards;
    for (const auto& item : items) {
      std::uint32_t first = 0;
      std::uint32_t last = 0;
      auto dash = item.find('-');
      bool ok = false;
      if (dash == std::string::npos) {
        ok = parse_number(item, first);
        last = first;
      } else {
        std::string_view text{item};
        ok = parse_number(text.substr(0, dash), first) &&
             parse_number(text.substr(dash + 1), last) && first <= last;
      }
      if (!ok || last >= max_shards)
        s.fail("preferred_shards", "expected shard numbers (0.." + std::to_string(max_shards - 1) +
                                       ") or ranges like 4-7, got '" + item + "'");
      for (auto v = first; v <= last; ++v)
        shards.push_back(v);
    }
    cfg.preferred_shards = std::move(shards);
  }
  s.read_duration("lease_duration", cfg.lease_duration, 100ms, 600'000ms);
  s.read_duration("renew_interval", cfg.renew_interval, 10ms, 300'000ms);
  s.read_duration("claim_others_after", cfg.claim_others_after, 0ms, 600'000ms);
  s.read("api_url", cfg.api_url);
  s.finish();
  if (auto valid = cfg.validate(); !valid)
    s.fail(valid.error().where(), valid.error().message());
}

} // namespace imeilock::cluster
