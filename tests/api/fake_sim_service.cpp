#include "fake_sim_service.hpp"

#include <algorithm>
#include <chrono>
#include <future>

namespace imeilock::api::test {

namespace {

bool lock_eligible(const std::string& network) {
  return network == "multinet" || network == "roamnet901" || network == "ee" ||
         network == "ee_big_data";
}

bool known_network(const std::string& network) {
  return lock_eligible(network) || network == "other";
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

std::optional<std::string> fake_sim_service::check_upsert(const actors::sim_upsert& sim) const {
  if (!known_network(sim.network))
    return "unknown network \"" + sim.network + "\": configure it under networks:";
  for (const auto& [iccid, other] : sims_) {
    if (iccid == sim.iccid)
      continue;
    for (auto imsi : sim.imsis)
      if (std::find(other.imsis.begin(), other.imsis.end(), imsi) != other.imsis.end())
        return "the IMSI " + std::to_string(imsi) + " belongs to the SIM " + iccid;
  }
  return std::nullopt;
}

bool fake_sim_service::apply_upsert(const actors::sim_upsert& sim) {
  auto [it, created] = sims_.try_emplace(sim.iccid);
  auto& s = it->second;
  s.iccid = sim.iccid;
  s.imsis = sim.imsis;
  s.msisdn = sim.msisdn;
  s.network = sim.network;
  s.state.status = sim.status;
  s.state.updated_at_ms = now();
  ++writes_;
  return created;
}

void fake_sim_service::add(actors::sim_info sim) {
  std::lock_guard lock{mutex_};
  sims_[sim.iccid] = std::move(sim);
}

void fake_sim_service::upsert_sim(actors::sim_upsert sim,
                                  std::function<void(actors::write_result)> done) {
  actors::write_result res;
  {
    std::lock_guard lock{mutex_};
    if (auto err = check_upsert(sim)) {
      // As the real SIM layer: an IMSI of another SIM is a conflict.
      res.error = err->find("belongs to") != std::string::npos ? ec::conflict : ec::invalid;
      res.reason = *err;
    } else {
      res.created = apply_upsert(sim);
    }
  }
  post([done = std::move(done), res] { done(res); });
}

void fake_sim_service::import_sims(std::vector<actors::sim_upsert> sims,
                                   std::function<void(std::vector<actors::write_result>)> done) {
  std::vector<actors::write_result> results(sims.size());
  {
    std::lock_guard lock{mutex_};
    for (std::size_t i = 0; i < sims.size(); ++i) {
      if (auto err = check_upsert(sims[i])) {
        results[i].error = ec::invalid;
        results[i].reason = *err;
      }
    }
    for (std::size_t i = 0; i < sims.size(); ++i)
      if (results[i].error == ec::ok)
        results[i].created = apply_upsert(sims[i]);
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
          (filter.network && s.network != *filter.network))
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
    auto refuse = [&](ec e, std::string why) {
      res.error = e;
      res.reason = std::move(why);
    };
    if (it == sims_.end()) {
      refuse(ec::unknown_sim, "no such SIM");
    } else {
      auto& st = it->second.state;
      const auto& net = it->second.network;
      bool active = st.status == lock::sim_status::active;
      using lock::order_type;
      if (st.pending_order_id != 0)
        refuse(ec::conflict, "an order is already in flight for this SIM: wait for it");
      else if (req.type == order_type::enable_imei_lock && !lock_eligible(net))
        refuse(ec::invalid, "IMEI locking is not available on the " + net + " network");
      else if (req.type == order_type::enable_imei_lock && st.lock != lock::lock_state::off)
        refuse(ec::conflict, "IMEI locking is already enabled");
      else if (req.type == order_type::disable_imei_lock && st.lock == lock::lock_state::off)
        refuse(ec::conflict, "IMEI locking is not enabled");
      else if ((req.type == order_type::enable_imei_lock || req.type == order_type::bar) && !active)
        refuse(ec::conflict, "the SIM is not active");
      else if (req.type == order_type::bar && st.bar != lock::bar_state::none)
        refuse(ec::conflict, "the SIM is already barred");
      else if (req.type == order_type::unbar && st.bar != lock::bar_state::barred)
        refuse(ec::conflict, "nothing to unbar: the SIM is not barred");
      else if (req.type == order_type::unbar && st.reason == lock::bar_reason::imei_lock &&
               req.mode == lock::unbar_mode::none)
        refuse(ec::invalid, "unbar of an IMEI-lock bar needs unbar_mode keep_lock or "
                            "update_to_last_seen");
      else if (req.type == order_type::unbar && st.reason == lock::bar_reason::manual &&
               req.mode != lock::unbar_mode::none)
        refuse(ec::invalid, "unbar_mode applies only to an IMEI-lock bar");
      else if (req.type == order_type::activate && active)
        refuse(ec::conflict, "the SIM is already active");
      else if (req.type == order_type::activate && req.with_lock && net != "roamnet901")
        refuse(ec::invalid, "IMEI locking on activation is not available on the " + net +
                              " network");
      if (res.error == ec::ok) {
        if (req.type == order_type::unbar && req.mode == lock::unbar_mode::keep_lock &&
            st.last_seen_imei != st.lock_imei)
          res.warnings.push_back(
            "the SIM was last seen in another device than the locked one: it will not be "
            "barred again unless it moves to a third device (move it back before unbarring)");
        actors::order_info o;
        o.id = next_order_++;
        o.iccid = iccid;
        o.type = req.type;
        o.mode = req.mode;
        o.with_lock = req.with_lock;
        o.reason = req.type == order_type::bar ? lock::bar_reason::manual : lock::bar_reason::none;
        o.network = net;
        o.created_at_ms = now();
        o.due_at_ms = o.created_at_ms + 60000;
        auto before = st;
        st.pending_order_id = o.id;
        st.pending_order = o.type;
        st.pending_unbar = o.mode;
        if (req.type == order_type::bar) {
          st.bar = lock::bar_state::bar_pending;
          st.reason = lock::bar_reason::manual;
        }
        if (req.type == order_type::unbar)
          st.bar = lock::bar_state::unbar_pending;
        st.updated_at_ms = now();
        record(iccid, "order_placed:" + std::string{lock::to_string(req.type)}, before,
               lock::no_device, res.warnings.empty() ? "" : res.warnings.front());
        auto& stored = orders_[o.id] = o;
        if (auto_complete.load())
          complete(stored);
        res.order = stored;
        ++writes_;
      }
    }
  }
  post([done = std::move(done), res] { done(res); });
}

void fake_sim_service::complete(actors::order_info& o) {
  auto& sim = sims_.at(o.iccid);
  auto& st = sim.state;
  auto before = st;
  using lock::order_type;
  switch (o.type) {
    case order_type::enable_imei_lock:
      if (st.last_seen_imei != lock::no_device) {
        st.lock = lock::lock_state::locked;
        st.lock_imei = st.last_seen_imei;
      } else {
        st.lock = lock::lock_state::awaiting_first_imei;
      }
      break;
    case order_type::disable_imei_lock:
      st.lock = lock::lock_state::off;
      st.lock_imei = lock::no_device;
      break;
    case order_type::bar:
      st.bar = lock::bar_state::barred;
      break;
    case order_type::unbar:
      if (o.mode == lock::unbar_mode::update_to_last_seen)
        st.lock_imei = st.last_seen_imei;
      st.bar = lock::bar_state::none;
      st.reason = lock::bar_reason::none;
      st.trigger_imei = lock::no_device;
      break;
    case order_type::activate:
      st.status = lock::sim_status::active;
      if (o.with_lock)
        st.lock = lock::lock_state::awaiting_first_imei;
      break;
    case order_type::none: break;
  }
  st.pending_order_id = 0;
  st.pending_order = order_type::none;
  st.pending_unbar = lock::unbar_mode::none;
  st.updated_at_ms = now();
  o.status = actors::order_status::completed;
  o.completed_at_ms = now();
  record(o.iccid, "order_completed:" + std::string{lock::to_string(o.type)}, before,
         lock::no_device);
}

void fake_sim_service::complete_orders() {
  std::lock_guard lock{mutex_};
  for (auto& [id, o] : orders_)
    if (o.status == actors::order_status::queued)
      complete(o);
}

void fake_sim_service::observe(const std::string& iccid, lock::device_id imei) {
  std::lock_guard lock{mutex_};
  auto& st = sims_.at(iccid).state;
  if (imei == st.last_seen_imei)
    return;
  auto before = st;
  bool imei_bar = st.reason == lock::bar_reason::imei_lock && st.bar != lock::bar_state::none;
  if (st.lock == lock::lock_state::awaiting_first_imei) { // R6
    st.lock = lock::lock_state::locked;
    st.lock_imei = imei;
  } else if (st.lock == lock::lock_state::locked && imei != st.lock_imei && !imei_bar) { // R7
    st.bar = lock::bar_state::bar_pending;
    st.reason = lock::bar_reason::imei_lock;
    st.trigger_imei = imei;
    actors::order_info o;
    o.id = next_order_++;
    o.iccid = iccid;
    o.type = lock::order_type::bar;
    o.reason = lock::bar_reason::imei_lock;
    o.network = sims_.at(iccid).network;
    o.created_at_ms = now();
    o.due_at_ms = o.created_at_ms + 60000;
    orders_[o.id] = o;
    st.last_seen_imei = imei;
    st.updated_at_ms = now();
    record(iccid, "observation", before, imei, "violation");
    if (auto_complete.load()) {
      auto& stored = orders_[o.id];
      auto b2 = st;
      st.bar = lock::bar_state::barred;
      stored.status = actors::order_status::completed;
      stored.completed_at_ms = now();
      record(iccid, "order_completed:bar", b2, lock::no_device);
    }
    return;
  }
  if (!imei_bar) // R9: frozen while an IMEI-lock bar is pending or in force
    st.last_seen_imei = imei;
  st.updated_at_ms = now();
  record(iccid, "observation", before, imei);
}

void fake_sim_service::get_order(std::uint64_t id,
                                 std::function<void(std::optional<actors::order_info>)> done) {
  std::optional<actors::order_info> o;
  {
    std::lock_guard lock{mutex_};
    if (auto it = orders_.find(id); it != orders_.end())
      o = it->second;
  }
  post([done = std::move(done), o] { done(o); });
}

void fake_sim_service::list_orders(std::string iccid,
                                   std::function<void(std::vector<actors::order_info>)> done) {
  std::vector<actors::order_info> out;
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

} // namespace imeilock::api::test
