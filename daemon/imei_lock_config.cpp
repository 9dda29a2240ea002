#include "daemon/imei_lock_config.hpp"

namespace imeilock::daemon {

namespace {

/// Parses one violation action; throws config::error naming `key` otherwise.
lock::violation_action parse_action(config::section& s, std::string_view key,
                                    const std::string& text) {
  lock::violation_action out{};
  if (!lock::parse(text, out))
    s.fail(key, "expected bar, alert or disconnect_and_bar; got '" + text + "'");
  return out;
}

} // namespace

void load(lock::eligibility_config& cfg, config::section s) {
  s.read("lock_networks", cfg.lock_networks);
  s.read("activation_lock_networks", cfg.activation_lock_networks);
  s.read("strict", cfg.strict);
  std::string action{lock::to_string(cfg.action)};
  s.read("action", action);
  cfg.action = parse_action(s, "action", action);
  std::vector<std::pair<std::string, std::string>> actions;
  s.read("actions", actions);
  cfg.actions.clear();
  for (const auto& [network, text] : actions)
    cfg.actions.emplace_back(network, parse_action(s, "actions." + network, text));
  std::vector<std::pair<std::string, std::vector<std::string>>> tacs;
  s.read("allowed_tacs", tacs);
  cfg.allowed_tacs.clear();
  for (const auto& [network, texts] : tacs) {
    std::vector<lock::tac_range> ranges;
    for (const auto& text : texts) {
      auto range = lock::parse_tac_range(text);
      if (!range)
        s.child("allowed_tacs").fail(network, range.error().message());
      ranges.push_back(*range);
    }
    cfg.allowed_tacs.emplace_back(network, lock::tac_list{std::move(ranges)});
  }
  s.finish();
  if (auto valid = lock::validate(cfg); !valid)
    s.fail(valid.error().where(), valid.error().message());
}

void apply_disconnect_alias(lock::eligibility_config& cfg, bool radius_disconnect) {
  if (radius_disconnect) {
    if (cfg.action == lock::violation_action::bar)
      cfg.action = lock::violation_action::disconnect_and_bar;
    for (auto& entry : cfg.actions)
      if (entry.second == lock::violation_action::bar)
        entry.second = lock::violation_action::disconnect_and_bar;
  }
}

} // namespace imeilock::daemon
