#include "lock/eligibility.hpp"

#include <algorithm>

namespace imeilock::lock {

namespace {

bool contains(const std::vector<std::string>& list, std::string_view name) {
  return std::find(list.begin(), list.end(), name) != list.end();
}

/// What is wrong with a configuration: the key and one sentence.
struct problem {
  std::string key;
  std::string message;
};

/// Empty message if every name is non-empty and appears once.
problem check_names(const std::vector<std::string>& list, const std::string& key) {
  for (std::size_t i = 0; i < list.size(); ++i) {
    if (list[i].empty())
      return {key, "a network name is empty"};
    for (std::size_t j = 0; j < i; ++j)
      if (list[j] == list[i])
        return {key, "network \"" + list[i] + "\" is listed twice"};
  }
  return {};
}

problem find_problem(const eligibility_config& cfg) {
  if (auto p = check_names(cfg.lock_networks, "lock_networks"); !p.message.empty())
    return p;
  if (auto p = check_names(cfg.activation_lock_networks, "activation_lock_networks");
      !p.message.empty())
    return p;
  for (std::size_t i = 0; i < cfg.actions.size(); ++i) {
    if (cfg.actions[i].first.empty())
      return {"actions", "a network name is empty"};
    for (std::size_t j = 0; j < i; ++j)
      if (cfg.actions[j].first == cfg.actions[i].first)
        return {"actions", "network \"" + cfg.actions[i].first + "\" is listed twice"};
    // A typo here would silently leave the network on the default action.
    if (!contains(cfg.lock_networks, cfg.actions[i].first))
      return {"actions", "network \"" + cfg.actions[i].first +
                             "\" is not in lock_networks, so no SIM on it can violate a lock"};
  }
  for (std::size_t i = 0; i < cfg.allowed_tacs.size(); ++i) {
    const auto& [name, tacs] = cfg.allowed_tacs[i];
    for (std::size_t j = 0; j < i; ++j)
      if (cfg.allowed_tacs[j].first == name)
        return {"allowed_tacs", "network \"" + name + "\" is listed twice"};
    if (!contains(cfg.lock_networks, name))
      return {"allowed_tacs." + name,
              "network \"" + name + "\" is not in lock_networks, so no SIM on it can be locked"};
    // An empty list would make every device a violation; no entry allows all.
    if (tacs.empty())
      return {"allowed_tacs." + name,
              "the list is empty: list at least one TAC, or remove the network to allow any "
              "device"};
  }
  // R13 turns the lock on at activation: a network where the lock may not be
  // enabled at all cannot have it enabled at activation either.
  for (const auto& name : cfg.activation_lock_networks)
    if (!contains(cfg.lock_networks, name))
      return {"activation_lock_networks",
              "network \"" + name +
                  "\" is not in lock_networks, so IMEI locking cannot be enabled on it"};
  return {};
}

} // namespace

expected<void> validate(const eligibility_config& cfg) {
  if (auto p = find_problem(cfg); !p.message.empty())
    return error{config::ec::invalid, std::move(p.message), std::move(p.key)};
  return {};
}

policy policy_for(const eligibility_config& cfg, std::string_view network) {
  policy p;
  p.lock_eligible = !network.empty() && contains(cfg.lock_networks, network);
  p.lock_on_activation_eligible =
      p.lock_eligible && contains(cfg.activation_lock_networks, network);
  p.strict = cfg.strict;
  p.action = action_for(cfg, network);
  for (const auto& [name, tacs] : cfg.allowed_tacs)
    if (name == network)
      p.allowed_tacs = &tacs;
  return p;
}

violation_action action_for(const eligibility_config& cfg, std::string_view network) {
  for (const auto& [name, action] : cfg.actions)
    if (name == network)
      return action;
  return cfg.action;
}

bool any_disconnect(const eligibility_config& cfg) {
  if (cfg.action == violation_action::disconnect_and_bar)
    return true;
  return std::any_of(cfg.actions.begin(), cfg.actions.end(), [](const auto& entry) {
    return entry.second == violation_action::disconnect_and_bar;
  });
}

} // namespace imeilock::lock
