#include "orders/scheduler.hpp"

#include "common/assert.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

namespace imeilock::orders {

namespace {

/// Float slack when comparing token counts: refills add rate * elapsed in
/// binary floating point, so 10/s for 100 ms may give 0.9999999999999999.
constexpr double token_epsilon = 1e-9;

std::uint64_t pick_seed(std::uint64_t explicit_seed, std::uint64_t config_seed) {
  if (explicit_seed != 0)
    return explicit_seed;
  if (config_seed != 0)
    return config_seed;
  std::random_device rd;
  return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
}

} // namespace

std::string_view to_string(action::kind k) {
  switch (k) {
    case action::kind::send:
      return "send";
    case action::kind::submitted:
      return "submitted";
    case action::kind::retry:
      return "retry";
    case action::kind::completed:
      return "completed";
    case action::kind::failed:
      return "failed";
  }
  return "unknown";
}

// -- token_bucket ----------------------------------------------------------------

token_bucket::token_bucket(double rate_per_second, std::uint32_t burst, std::int64_t now_ms) :
    rate_per_ms_(rate_per_second / 1000.0),
    burst_(static_cast<double>(burst)),
    tokens_(static_cast<double>(burst)),
    last_ms_(now_ms) {
  // network_config::validate() keeps rate >= 0.001 and burst >= 1.
  IMEILOCK_ASSERT(rate_per_second > 0 && burst >= 1,
                  "token bucket needs a positive rate and burst");
}

void token_bucket::refill(std::int64_t now_ms) {
  // A clock step back leaves the level alone rather than draining it.
  if (now_ms <= last_ms_)
    return;
  tokens_ = std::min(burst_, tokens_ + static_cast<double>(now_ms - last_ms_) * rate_per_ms_);
  last_ms_ = now_ms;
}

double token_bucket::available(std::int64_t now_ms) const {
  if (now_ms <= last_ms_)
    return tokens_;
  return std::min(burst_, tokens_ + static_cast<double>(now_ms - last_ms_) * rate_per_ms_);
}

bool token_bucket::try_take(std::int64_t now_ms) {
  refill(now_ms);
  if (tokens_ < 1.0 - token_epsilon)
    return false;
  tokens_ = std::max(0.0, tokens_ - 1.0);
  return true;
}

std::int64_t token_bucket::next_token_at(std::int64_t now_ms) const {
  const auto base = std::max(now_ms, last_ms_);
  const double have = available(base);
  if (have >= 1.0 - token_epsilon)
    return base;
  const double wait = std::ceil((1.0 - have - token_epsilon) / rate_per_ms_);
  return base + std::max<std::int64_t>(1, static_cast<std::int64_t>(wait));
}

void token_bucket::reconfigure(double rate_per_second, std::uint32_t burst, std::int64_t now_ms) {
  IMEILOCK_ASSERT(rate_per_second > 0 && burst >= 1,
                  "token bucket needs a positive rate and burst");
  refill(now_ms);
  rate_per_ms_ = rate_per_second / 1000.0;
  burst_ = static_cast<double>(burst);
  tokens_ = std::min(tokens_, burst_);
}

// -- scheduler --------------------------------------------------------------------

scheduler::scheduler(orders_config cfg, std::uint64_t seed) :
    cfg_(std::move(cfg)), gen_(pick_seed(seed, cfg_.seed)) {}

void scheduler::reconfigure(orders_config cfg, std::int64_t now_ms) {
  cfg_ = std::move(cfg);
  for (auto& [name, n] : nets_) {
    const auto& nc = cfg_.network(name);
    n.bucket.reconfigure(nc.rate_per_second, nc.burst, now_ms);
  }
}

scheduler::net_state& scheduler::net(const std::string& name, std::int64_t now_ms) {
  auto it = nets_.find(name);
  if (it == nets_.end()) {
    const auto& nc = cfg_.network(name);
    it = nets_.emplace(name, net_state{token_bucket{nc.rate_per_second, nc.burst, now_ms}}).first;
  }
  return it->second;
}

const scheduler::net_state* scheduler::find_net(std::string_view name) const {
  auto it = nets_.find(name);
  return it == nets_.end() ? nullptr : &it->second;
}

ec scheduler::check_new(const order& o) const {
  // The type may come from the store's contents: one outside the enum is an
  // error here, never an index into the lead-time table.
  if (o.id == 0 || o.type == lock::order_type::none ||
      static_cast<std::uint8_t>(o.type) > static_cast<std::uint8_t>(lock::order_type::unbar))
    return ec::invalid;
  if (orders_.contains(o.id))
    return ec::conflict;
  return ec::ok;
}

void scheduler::start_lead_time(entry& e, std::int64_t now_ms, bool keep_due) {
  e.ph = phase::submitted;
  e.o.status = order_status::submitted;
  if (e.o.submitted_at_ms == 0 || !keep_due)
    e.o.submitted_at_ms = now_ms;
  if (!keep_due || e.o.due_at_ms == 0) {
    const auto lead = cfg_.network(e.o.network).lead_time_for(e.o.type).sample(gen_);
    e.o.due_at_ms = now_ms + lead.count();
  }
  due_.emplace(e.o.due_at_ms, e.o.id);
}

ec scheduler::add(order o, std::int64_t now_ms) {
  if (auto err = check_new(o); err != ec::ok)
    return err;
  o.status = order_status::queued;
  o.attempts = 0;
  o.submitted_at_ms = 0;
  o.due_at_ms = 0;
  o.retry_at_ms = 0;
  o.finished_at_ms = 0;
  o.failure_reason.clear();

  const auto id = o.id;
  if (!goes_to_network(o.type)) {
    net(o.network, now_ms); // so the network shows up in stats
    orders_.emplace(id, entry{std::move(o), phase::internal_wait});
    internal_.push_back(id);
    return ec::ok;
  }
  auto& n = net(o.network, now_ms);
  if (n.ready.size() + n.retries.size() >= cfg_.network(o.network).max_queue)
    return ec::overloaded;
  orders_.emplace(id, entry{std::move(o), phase::queued});
  n.ready.push_back(id);
  return ec::ok;
}

ec scheduler::restore(order o, std::int64_t now_ms) {
  if (auto err = check_new(o); err != ec::ok)
    return err;
  if (o.status == order_status::completed || o.status == order_status::failed)
    return ec::invalid;

  const auto id = o.id;
  auto& n = net(o.network, now_ms);
  const bool network_order = goes_to_network(o.type);
  auto& e = orders_.emplace(id, entry{std::move(o), phase::queued}).first->second;

  if (e.o.status == order_status::submitted) {
    // Keep the stored due time: the order resumes with its remaining lead time.
    start_lead_time(e, now_ms, true);
    if (network_order)
      ++n.submitted;
    return ec::ok;
  }
  if (!network_order) {
    e.ph = phase::internal_wait;
    internal_.push_back(id);
  } else if (e.o.retry_at_ms > now_ms) {
    e.ph = phase::retry_wait;
    n.retries.emplace(e.o.retry_at_ms, id);
  } else {
    n.ready.push_back(id);
  }
  return ec::ok;
}

std::vector<action> scheduler::poll(std::int64_t now_ms) {
  std::vector<action> out;

  // Internal orders need no backend: their lead time starts now.
  for (auto id : internal_) {
    auto& e = orders_.at(id);
    start_lead_time(e, now_ms, false);
    out.push_back(action{action::kind::submitted, e.o});
  }
  internal_.clear();

  // Lead times that ran out. Completing first frees in-flight slots for the
  // submissions below.
  while (!due_.empty() && due_.begin()->first <= now_ms) {
    const auto id = due_.begin()->second;
    due_.erase(due_.begin());
    auto it = orders_.find(id);
    // due_ holds exactly the orders in phase::submitted (start_lead_time).
    IMEILOCK_ASSERT(it != orders_.end() && it->second.ph == phase::submitted,
                    "a due lead time without its submitted order, id " + std::to_string(id));
    auto& o = it->second.o;
    o.status = order_status::completed;
    o.finished_at_ms = now_ms;
    auto& n = net(o.network, now_ms);
    if (goes_to_network(o.type))
      --n.submitted;
    ++n.completed;
    out.push_back(action{action::kind::completed, std::move(o)});
    orders_.erase(it);
  }

  for (auto& [name, n] : nets_) {
    // Retries that became due go ahead of newer orders (they are older).
    std::vector<std::uint64_t> due_retries;
    while (!n.retries.empty() && n.retries.begin()->first <= now_ms) {
      due_retries.push_back(n.retries.begin()->second);
      n.retries.erase(n.retries.begin());
    }
    for (auto id : due_retries)
      orders_.at(id).ph = phase::queued;
    n.ready.insert(n.ready.begin(), due_retries.begin(), due_retries.end());

    const auto& nc = cfg_.network(name);
    while (!n.ready.empty() && n.sending + n.submitted < nc.max_in_flight &&
           n.bucket.try_take(now_ms)) {
      const auto id = n.ready.front();
      n.ready.pop_front();
      auto& e = orders_.at(id);
      e.ph = phase::sending;
      ++e.o.attempts;
      e.o.retry_at_ms = 0;
      ++n.sending;
      out.push_back(action{action::kind::send, e.o});
    }
    n.tokens = n.bucket.available(now_ms);
  }
  return out;
}

std::optional<std::int64_t> scheduler::next_wakeup(std::int64_t now_ms) const {
  std::optional<std::int64_t> best;
  auto consider = [&](std::int64_t t) {
    t = std::max(t, now_ms);
    if (!best || t < *best)
      best = t;
  };
  if (!internal_.empty())
    consider(now_ms);
  if (!due_.empty())
    consider(due_.begin()->first);
  for (const auto& [name, n] : nets_) {
    if (!n.retries.empty())
      consider(n.retries.begin()->first);
    // A full in-flight window opens only when something completes (in due_)
    // or a backend answers (outside input): no timer for that here.
    if (!n.ready.empty() && n.sending + n.submitted < cfg_.network(name).max_in_flight)
      consider(n.bucket.next_token_at(now_ms));
  }
  return best;
}

std::size_t scheduler::forget_if(const std::function<bool(const order&)>& pred) {
  std::size_t n = 0;
  for (auto it = orders_.begin(); it != orders_.end();) {
    if (!pred(it->second.o)) {
      ++it;
      continue;
    }
    const auto id = it->first;
    const auto& o = it->second.o;
    auto net_it = nets_.find(o.network);
    switch (it->second.ph) {
      case phase::internal_wait:
        std::erase(internal_, id);
        break;
      case phase::queued:
        if (net_it != nets_.end())
          std::erase(net_it->second.ready, id);
        break;
      case phase::retry_wait:
        if (net_it != nets_.end())
          std::erase_if(net_it->second.retries, [id](const auto& r) { return r.second == id; });
        break;
      case phase::sending:
        if (net_it != nets_.end())
          --net_it->second.sending;
        break;
      case phase::submitted:
        due_.erase({o.due_at_ms, id});
        if (net_it != nets_.end() && goes_to_network(o.type))
          --net_it->second.submitted;
        break;
    }
    it = orders_.erase(it);
    ++n;
  }
  return n;
}

scheduler::entry* scheduler::take_sending(std::uint64_t id, std::int64_t now_ms) {
  auto it = orders_.find(id);
  if (it == orders_.end() || it->second.ph != phase::sending)
    return nullptr;
  --net(it->second.o.network, now_ms).sending;
  return &it->second;
}

std::optional<action> scheduler::on_submitted(std::uint64_t id, std::int64_t now_ms) {
  auto* found = take_sending(id, now_ms);
  if (found == nullptr)
    return std::nullopt;
  auto& e = *found;
  ++net(e.o.network, now_ms).submitted;
  start_lead_time(e, now_ms, false);
  return action{action::kind::submitted, e.o};
}

std::optional<action> scheduler::on_submit_failed(std::uint64_t id, std::string_view reason,
                                                  std::int64_t now_ms) {
  auto* found = take_sending(id, now_ms);
  if (found == nullptr)
    return std::nullopt;
  auto& e = *found;
  auto& n = net(e.o.network, now_ms);
  const auto& policy = cfg_.network(e.o.network).retry;
  if (e.o.attempts >= policy.max_attempts) {
    e.o.status = order_status::failed;
    e.o.finished_at_ms = now_ms;
    e.o.failure_reason = std::string{reason} + " (after " + std::to_string(e.o.attempts) +
                         (e.o.attempts == 1 ? " attempt)" : " attempts)");
    ++n.failed;
    action a{action::kind::failed, std::move(e.o)};
    orders_.erase(id);
    return a;
  }
  e.ph = phase::retry_wait;
  e.o.status = order_status::queued;
  e.o.failure_reason = std::string{reason};
  e.o.retry_at_ms = now_ms + policy.backoff(e.o.attempts).count();
  n.retries.emplace(e.o.retry_at_ms, id);
  ++n.retried;
  return action{action::kind::retry, e.o};
}

const order* scheduler::find(std::uint64_t id) const {
  auto it = orders_.find(id);
  return it == orders_.end() ? nullptr : &it->second.o;
}

network_stats scheduler::stats_of(const net_state& n) {
  network_stats s;
  s.queued = n.ready.size();
  s.retrying = n.retries.size();
  s.sending = n.sending;
  s.submitted = n.submitted;
  s.completed = n.completed;
  s.failed = n.failed;
  s.retries = n.retried;
  s.tokens = n.tokens;
  return s;
}

network_stats scheduler::stats(std::string_view network) const {
  if (const auto* n = find_net(network))
    return stats_of(*n);
  network_stats s;
  s.tokens = cfg_.network(network).burst;
  return s;
}

std::vector<std::pair<std::string, network_stats>> scheduler::all_stats() const {
  std::vector<std::pair<std::string, network_stats>> out;
  for (const auto& [name, cfg] : cfg_.networks)
    if (!nets_.contains(name))
      out.emplace_back(name, stats(name));
  for (const auto& [name, n] : nets_)
    out.emplace_back(name, stats_of(n));
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

} // namespace imeilock::orders
