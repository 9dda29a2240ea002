#include "fake_sim_service.hpp"

#include "lock/eligibility.hpp"
#include "lock/imei.hpp"
#include "lock/machine.hpp"

#include <algorithm>
#include <chrono>
#include <future>
#include <variant>

namespace imeilock::api::test {

namespace {

/// The daemon's configured networks with the default configuration (the
/// built-in orders.networks and the imei_lock lists), sorted.
const std::vector<std::string>& default_networks() {
  static const std::vector<std::string> names{"ee", "ee_big_data", "multinet", "roamnet901"};
  return names;
}

bool known_network(const std::string& network) {
  const auto& names = default_networks();
  return std::binary_search(names.begin(), names.end(), network);
}

/// R1 as the daemon's default imei_lock section says.
lock::policy policy_of(const std::string& network) {
  return lock::policy_for(lock::eligibility_config{}, network);
}

} // namespace

fake_sim_service::fake_sim_service() {
  worker_ = std::thread([this] {
    std::unique_lock lock{queue_mutex_};
    while (true) {
      queue_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty())
        return;
      auto fn = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      fn();
      lock.lock();
    }
  });
}

fake_sim_service::~fake_sim_service() {
  {
    std::lock_guard lock{queue_mutex_};
    stopping_ = true;
  }
  queue_cv_.notify_all();
  worker_.join();
}

void fake_sim_service::drain() {
  std::promise<void> done;
  auto ready = done.get_future();
  {
    std::lock_guard lock{queue_mutex_};
    queue_.push_back([&done] { done.set_value(); });
  }
  queue_cv_.notify_one();
  ready.wait();
}

void fake_sim_service::post(std::function<void()> fn) {
  if (hang.load())
    return;
  {
    std::lock_guard lock{queue_mutex_};
    queue_.push_back(std::move(fn));
  }
  queue_cv_.notify_one();
}

std::int64_t fake_sim_service::now() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void fake_sim_service::record(const std::string& iccid, const std::string& cause,
                              const lock::sim_state& before, lock::device_id imei,
                              std::string detail) {
  actors::event_info e;
  e.id = next_event_++;
  e.iccid = iccid;
  e.at_ms = now();
  e.cause = cause;
  e.before = before;
  e.after = sims_.at(iccid).state;
  e.imei = imei;
  e.detail = std::move(detail);
  events_.push_back(std::move(e));
}

actors::write_result fake_sim_service::check_upsert(const actors::sim_upsert& sim) const {
  // As the SIM layer (actors/sim_layer.cpp): a configured network, then no
  // IMSI of another SIM (ec::conflict).
  if (!known_network(sim.network))
    return actors::unknown_network(sim.network, default_networks());
  actors::write_result res;
  for (const auto& [iccid, other] : sims_) {
    if (iccid == sim.iccid)
      continue;
    for (auto imsi : sim.imsis)
      if (std::find(other.imsis.begin(), other.imsis.end(), imsi) != other.imsis.end()) {
        res.error = ec::conflict;
        res.reason = "IMSI " + std::to_string(imsi) + " belongs to another SIM";
        return res;
      }
  }
  return res;
}

bool fake_sim_service::apply_upsert(const actors::sim_upsert& sim) {
  auto [it, created] = sims_.try_emplace(sim.iccid);
  auto& s = it->second;
  auto before = s.state;
  s.iccid = sim.iccid;
  s.imsis = sim.imsis;
  s.msisdn = sim.msisdn;
  s.network = sim.network;
  s.policy = policy_of(sim.network);
  s.state.status = sim.status;
  if (created || s.state != before) { // audited as the SIM actor does
    s.state.updated_at_ms = now();
    record(sim.iccid, created ? "inventory_created" : "inventory_updated", before, lock::no_device);
  }
  ++writes_;
  return created;
}

void fake_sim_service::apply_outcome(const std::string& iccid, lock::outcome& out) {
  auto& sim = sims_.at(iccid);
  // A bar the rules raised (R7) gets its id before anything is kept.
  for (auto& e : out.effects)
    if (auto* so = std::get_if<lock::submit_order>(&e); so && so->order_id == 0) {
      lock::note_order_id(out, next_order_++);
      break;
    }
  sim.state = out.next;
  for (const auto& a : out.audits) {
    actors::event_info e;
    e.id = next_event_++;
    e.iccid = iccid;
    e.at_ms = now();
    e.cause = a.cause;
    e.before = a.before;
    e.after = a.after;
    e.imei = a.imei;
    e.detail = a.detail;
    events_.push_back(std::move(e));
  }
  std::vector<std::uint64_t> created;
  for (const auto& e : out.effects)
    if (const auto* so = std::get_if<lock::submit_order>(&e)) {
      orders::order o;
      o.id = so->order_id;
      o.iccid = iccid;
      o.type = so->type;
      o.reason = so->reason;
      o.mode = so->mode;
      o.with_lock = so->with_lock;
      o.scope = so->scope;
      o.network = sim.network;
      o.created_at_ms = now();
      o.due_at_ms = o.created_at_ms + 60000;
      orders_[o.id] = o;
      created.push_back(o.id);
    }
  if (auto_complete.load())
    for (auto id : created)
      complete(orders_.at(id));
}

void fake_sim_service::add(actors::sim_info sim) {
  std::lock_guard lock{mutex_};
  sim.policy = policy_of(sim.network); // as the SIM layer reports it
  sims_[sim.iccid] = std::move(sim);
}

void fake_sim_service::serve_elsewhere(const std::string& iccid, actors::shard_owner owner) {
  std::lock_guard lock{mutex_};
  elsewhere_[iccid] = std::move(owner);
}

std::optional<actors::write_result> fake_sim_service::elsewhere(const std::string& iccid) const {
  auto it = elsewhere_.find(iccid);
  if (it == elsewhere_.end())
    return std::nullopt;
  actors::write_result res;
  res.error = ec::store_failed;
  res.reason = "this node does not serve the SIM's cluster shard";
  res.elsewhere = it->second;
  return res;
}

void fake_sim_service::upsert_sim(actors::sim_upsert sim,
                                  std::function<void(actors::write_result)> done) {
  actors::write_result res;
  {
    std::lock_guard lock{mutex_};
    if (auto other = elsewhere(sim.iccid)) {
      post([done = std::move(done), res = std::move(*other)] { done(res); });
      return;
    }
    res = check_upsert(sim);
    if (res.error == ec::ok)
      res.created = apply_upsert(sim);
  }
  post([done = std::move(done), res] { done(res); });
}

void fake_sim_service::import_sims(std::vector<actors::sim_upsert> sims,
                                   std::function<void(std::vector<actors::write_result>)> done) {
  std::vector<actors::write_result> results(sims.size());
  {
    std::lock_guard lock{mutex_};
    // Each SIM on its own, in order, as the SIM layer's import does.
    for (std::size_t i = 0; i < sims.size(); ++i) {
      if (auto other = elsewhere(sims[i].iccid)) {
        results[i] = std::move(*other);
        continue;
      }
      results[i] = check_upsert(sims[i]);
      if (results[i].error == ec::ok)
        results[i].created = apply_upsert(sims[i]);
    }
  }
  post([done = std::move(done), results] { done(results); });
}

void fake_sim_service::get_sim(std::string iccid,
                               std::function<void(std::optional<actors::sim_info>)> done) {
  auto sim = snapshot(iccid);
  post([done = std::move(done), sim] { done(sim); });
}

std::optional<actors::sim_info> fake_sim_service::snapshot(const std::string& iccid) {
  std::lock_guard lock{mutex_};
  auto it = sims_.find(iccid);
  if (it == sims_.end())
    return std::nullopt;
  return it->second;
}

void fake_sim_service::list_sims(actors::sim_filter filter, std::string cursor, std::size_t limit,
                                 std::function<void(actors::sim_page)> done) {
  actors::sim_page page;
  {
    std::lock_guard lock{mutex_};
    // The cursor is the last ICCID of the previous page.
    for (auto it = sims_.upper_bound(cursor); it != sims_.end(); ++it) {
      const auto& s = it->second;
      if ((filter.lock && s.state.lock != *filter.lock) ||
          (filter.bar && s.state.bar != *filter.bar) ||
          (filter.network && s.network != *filter.network) ||
          (filter.alerted && s.state.alerted != *filter.alerted) ||
          (filter.never_with_imei && s.activity.never_with_imei() != *filter.never_with_imei) ||
          (filter.awaiting_imei_since_ms &&
           (s.state.lock != lock::lock_state::awaiting_first_imei ||
            s.state.updated_at_ms > *filter.awaiting_imei_since_ms)))
        continue;
      if (page.items.size() == limit) {
        page.next_cursor = page.items.back().iccid;
        break;
      }
      page.items.push_back(s);
    }
  }
  post([done = std::move(done), page] { done(page); });
}

void fake_sim_service::place_order(std::string iccid, actors::order_request req,
                                   std::function<void(actors::write_result)> done) {
  actors::write_result res;
  {
    std::lock_guard lock{mutex_};
    auto it = sims_.find(iccid);
    if (auto other = elsewhere(iccid)) {
      res = std::move(*other);
    } else if (it == sims_.end()) {
      res.error = ec::unknown_sim;
      res.reason = "no SIM with ICCID " + iccid;
    } else {
      // The real rules (lock::apply), as the SIM actor runs them.
      lock::order_placed ev{next_order_, req.type, req.mode, req.with_lock, req.scope};
      auto out = lock::apply(policy_of(it->second.network), it->second.state, ev, now());
      if (out.rejected != lock::rejection::none) {
        res.error = actors::rejection_error(out.rejected);
        res.reason = std::string{lock::explain(out.rejected)};
      } else {
        ++next_order_;
        res.warnings = out.warnings;
        apply_outcome(iccid, out);
        if (auto o = orders_.find(ev.order_id); o != orders_.end())
          res.order = o->second;
        ++writes_;
      }
    }
  }
  post([done = std::move(done), res] { done(res); });
}

void fake_sim_service::complete(orders::order& o) {
  o.status = orders::order_status::completed;
  o.finished_at_ms = now();
  auto& sim = sims_.at(o.iccid);
  auto out = lock::apply(policy_of(sim.network), sim.state, lock::order_completed{o.id}, now());
  apply_outcome(o.iccid, out);
}

void fake_sim_service::complete_orders() {
  std::lock_guard lock{mutex_};
  std::vector<std::uint64_t> open;
  for (auto& [id, o] : orders_)
    if (o.status == orders::order_status::queued)
      open.push_back(id);
  for (auto id : open)
    complete(orders_.at(id));
}

void fake_sim_service::observe(const std::string& iccid, lock::device_id imei) {
  std::lock_guard lock{mutex_};
  auto& sim = sims_.at(iccid);
  auto value = lock::decode_imei(lock::format_imei(imei));
  auto out = lock::apply(policy_of(sim.network), sim.state, lock::observed{value}, now());
  apply_outcome(iccid, out);
}

void fake_sim_service::get_order(std::uint64_t id,
                                 std::function<void(std::optional<orders::order>)> done) {
  std::optional<orders::order> o;
  {
    std::lock_guard lock{mutex_};
    if (auto it = orders_.find(id); it != orders_.end())
      o = it->second;
  }
  post([done = std::move(done), o] { done(o); });
}

void fake_sim_service::list_orders(std::string iccid,
                                   std::function<void(std::vector<orders::order>)> done) {
  std::vector<orders::order> out;
  {
    std::lock_guard lock{mutex_};
    for (const auto& [id, o] : orders_)
      if (o.iccid == iccid)
        out.push_back(o);
  }
  post([done = std::move(done), out] { done(out); });
}

void fake_sim_service::list_events(std::string iccid, std::size_t limit,
                                   std::function<void(std::vector<actors::event_info>)> done) {
  std::vector<actors::event_info> out;
  {
    std::lock_guard lock{mutex_};
    for (auto it = events_.rbegin(); it != events_.rend() && out.size() < limit; ++it)
      if (it->iccid == iccid)
        out.push_back(*it);
  }
  post([done = std::move(done), out] { done(out); });
}

void fake_sim_service::fleet(std::function<void(actors::fleet_info)> done) {
  actors::fleet_info out;
  out.at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
  out.since_ms = (out.at_ms / 3'600'000 - 23) * 3'600'000;
  out.violations_per_hour.assign(24, 0);
  {
    std::lock_guard lock{mutex_};
    for (const auto& [iccid, s] : sims_) {
      auto it = std::find_if(out.networks.begin(), out.networks.end(),
                             [&](const auto& n) { return n.name == s.network; });
      if (it == out.networks.end()) {
        actors::fleet_network n;
        n.name = s.network;
        it = out.networks.insert(out.networks.end(), std::move(n));
      }
      auto c = std::find_if(it->sims.begin(), it->sims.end(), [&](const auto& x) {
        return x.lock == s.state.lock && x.bar == s.state.bar;
      });
      if (c == it->sims.end())
        it->sims.push_back({s.state.lock, s.state.bar, 1});
      else
        ++c->sims;
    }
    for (auto e = events_.rbegin(); e != events_.rend(); ++e)
      if (e->detail.starts_with("R7: violation")) {
        ++out.violations_per_hour.back();
        out.latest_violations.push_back(*e);
      }
  }
  post([done = std::move(done), out] { done(out); });
}

} // namespace imeilock::api::test
