#include "cluster/lease_manager.hpp"

#include "cluster/pq.hpp"
#include "common/assert.hpp"
#include "common/log.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <set>

namespace imeilock::cluster {

using clock = std::chrono::steady_clock;

std::string_view to_string(loss_reason r) {
  switch (r) {
    case loss_reason::refused:
      return "taken_over_or_expired";
    case loss_reason::database:
      return "database_error";
    case loss_reason::released:
      return "released";
  }
  return "unknown";
}

lease_manager::lease_manager(cluster_config cfg, std::string conninfo, callbacks cb) :
    cfg_(std::move(cfg)), conninfo_(std::move(conninfo)), cb_(std::move(cb)) {
  IMEILOCK_ASSERT(cfg_.validate().has_value(), "the cluster configuration was validated");
  IMEILOCK_ASSERT(!cfg_.node_id.empty(), "a lease manager needs a node id");
}

lease_manager::~lease_manager() {
  stop(true);
}

expected<void> lease_manager::start() {
  IMEILOCK_ASSERT(!thread_.joinable(), "start() once");
  if (!ensure_connected()) {
    auto why = connection_error(conn_);
    disconnect();
    return error{ec::database, "cannot connect to the cluster database: " + why};
  }
  if (auto migrated = migrate(conn_, cfg_.shards); !migrated) {
    disconnect();
    return migrated.error();
  }
  log::notice("cluster.started", {{"node", cfg_.node_id},
                                  {"shards", cfg_.shards},
                                  {"preferred", cfg_.preferred_shards.size()},
                                  {"lease_ms", cfg_.lease_duration.count()}});
  started_at_ = clock::now();
  thread_ = std::thread{[this] { run(); }};
  return {};
}

void lease_manager::stop(bool release_leases) {
  {
    std::lock_guard lock{mutex_};
    if (stopping_)
      return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable())
    thread_.join();
  if (release_leases) {
    auto held = held_snapshot();
    bool released = false;
    if (conn_ && PQstatus(conn_) == CONNECTION_OK) {
      if (auto r = release(conn_, cfg_.node_id, held); !r)
        log::warning("cluster.release_failed",
                     {{"node", cfg_.node_id}, {"error", r.error().message()}});
      else
        released = true;
      (void)heartbeat(conn_, cfg_.node_id, cfg_.api_url, cfg_.preferred_shards,
                      std::chrono::milliseconds{0});
    }
    {
      std::lock_guard lock{mutex_};
      held_.clear();
    }
    stats_.owned = 0;
    if (released)
      stats_.released += held.size();
    else
      stats_.step_downs += held.size();
    auto why = released ? loss_reason::released : loss_reason::database;
    for (const auto& h : held) {
      log::notice("cluster.lease_released", {{"node", cfg_.node_id},
                                             {"shard", h.shard},
                                             {"epoch", h.epoch},
                                             {"reason", to_string(why)}});
      if (cb_.lost)
        cb_.lost(h, why);
    }
  }
  disconnect();
}

std::vector<shard_epoch> lease_manager::owned() const {
  auto now = clock::now();
  std::lock_guard lock{mutex_};
  std::vector<shard_epoch> out;
  for (const auto& [shard, lease] : held_)
    if (now < lease.valid_until)
      out.push_back({shard, lease.epoch});
  return out;
}

std::optional<std::int64_t> lease_manager::epoch_of(std::uint32_t shard) const {
  auto now = clock::now();
  std::lock_guard lock{mutex_};
  auto it = held_.find(shard);
  if (it == held_.end() || now >= it->second.valid_until)
    return std::nullopt;
  return it->second.epoch;
}

void lease_manager::suspend_for_testing(bool suspended) {
  {
    std::lock_guard lock{mutex_};
    suspended_ = suspended;
    round_now_ = !suspended;
  }
  wake_.notify_all();
}

std::vector<shard_epoch> lease_manager::held_snapshot() const {
  std::lock_guard lock{mutex_};
  std::vector<shard_epoch> out;
  for (const auto& [shard, lease] : held_)
    out.push_back({shard, lease.epoch});
  return out;
}

bool lease_manager::ensure_connected() {
  if (conn_ && PQstatus(conn_) == CONNECTION_OK)
    return true;
  disconnect();
  conn_ = cluster::connect(conninfo_);
  if (PQstatus(conn_) != CONNECTION_OK)
    return false;
  // The server's notices (a shutdown's "terminating connection") go to our
  // log, not to stderr.
  PQsetNoticeProcessor(
      conn_,
      [](void*, const char* message) {
        std::string text{message};
        while (!text.empty() && text.back() == '\n')
          text.pop_back();
        log::info("cluster.database_notice", {{"message", text}});
      },
      nullptr);
  // A hung database must not hold a renewal past the lease it renews.
  auto timeout = "SET statement_timeout = " + std::to_string(cfg_.lease_duration.count());
  PQclear(PQexec(conn_, timeout.c_str()));
  return true;
}

expected<lease_manager::cluster_rows> lease_manager::read_cluster() const {
  pg_conn* conn = cluster::connect(conninfo_);
  auto close = [conn] { PQfinish(conn); };
  if (PQstatus(conn) != CONNECTION_OK) {
    auto why = connection_error(conn);
    close();
    return error{ec::database, "the cluster database cannot be reached: " + why};
  }
  cluster_rows out;
  auto nodes = list_nodes(conn);
  auto leases = nodes ? list_leases(conn) : expected<std::vector<lease_row>>{nodes.error()};
  close();
  if (!nodes)
    return nodes.error();
  if (!leases)
    return leases.error();
  out.nodes = std::move(*nodes);
  out.leases = std::move(*leases);
  return out;
}

void lease_manager::disconnect() {
  if (conn_)
    PQfinish(conn_);
  conn_ = nullptr;
}

void lease_manager::run() {
  std::unique_lock lock{mutex_};
  while (!stopping_) {
    auto pause = cfg_.renew_interval;
    if (!suspended_) {
      lock.unlock();
      pause = round();
      lock.lock();
    }
    // Asleep until the next round, a stop or a resume: no polling when idle.
    wake_.wait_for(lock, pause, [&] { return stopping_ || round_now_; });
    round_now_ = false;
  }
}

void lease_manager::lose_all(loss_reason why) {
  std::map<std::uint32_t, held_lease> lost;
  {
    std::lock_guard lock{mutex_};
    lost.swap(held_);
  }
  stats_.owned = 0;
  for (const auto& [shard, lease] : lost) {
    ++stats_.step_downs;
    log::warning("cluster.step_down", {{"node", cfg_.node_id},
                                       {"shard", shard},
                                       {"epoch", lease.epoch},
                                       {"reason", to_string(why)}});
    if (cb_.lost)
      cb_.lost({shard, lease.epoch}, why);
  }
}

std::chrono::milliseconds lease_manager::round() {
  auto database_failed = [&](const std::string& what) {
    ++stats_.database_errors;
    if (database_ok_)
      log::warning("cluster.database_unavailable", {{"node", cfg_.node_id}, {"error", what}});
    database_ok_ = false;
    lose_all(loss_reason::database);
    disconnect();
  };
  if (!ensure_connected()) {
    database_failed(connection_error(conn_));
    return cfg_.renew_interval;
  }
  if (!database_ok_)
    log::notice("cluster.database_available", {{"node", cfg_.node_id}});
  database_ok_ = true;

  // 1. Say we are alive (and what we prefer). Before the renewal, so this
  // node's heartbeat never outlives its leases: once they expire, no
  // heartbeat keeps others from claiming the shards it prefers.
  if (auto hb =
          heartbeat(conn_, cfg_.node_id, cfg_.api_url, cfg_.preferred_shards, cfg_.lease_duration);
      !hb) {
    database_failed(hb.error().message());
    return cfg_.renew_interval;
  }

  // 2. Renew what we hold; what does not come back is lost.
  auto held = held_snapshot();
  auto sent = clock::now();
  if (!held.empty()) {
    auto renewed = renew(conn_, cfg_.node_id, held, cfg_.lease_duration);
    if (!renewed) {
      database_failed(renewed.error().message());
      return cfg_.renew_interval;
    }
    std::vector<shard_epoch> lost;
    std::set_difference(held.begin(), held.end(), renewed->begin(), renewed->end(),
                        std::back_inserter(lost));
    {
      std::lock_guard lock{mutex_};
      for (const auto& r : *renewed)
        held_[r.shard].valid_until = sent + cfg_.lease_duration;
      for (const auto& l : lost)
        held_.erase(l.shard);
    }
    stats_.renewals += renewed->size();
    for (const auto& l : lost) {
      ++stats_.step_downs;
      log::warning("cluster.step_down", {{"node", cfg_.node_id},
                                         {"shard", l.shard},
                                         {"epoch", l.epoch},
                                         {"reason", to_string(loss_reason::refused)}});
      if (cb_.lost)
        cb_.lost(l, loss_reason::refused);
    }
  }

  // 3. Claim free or expired shards: ours first, then those nobody live prefers.
  std::set<std::uint32_t> mine;
  {
    std::lock_guard lock{mutex_};
    for (const auto& [shard, lease] : held_)
      mine.insert(shard);
  }
  std::set<std::uint32_t> preferred{cfg_.preferred_shards.begin(), cfg_.preferred_shards.end()};
  std::vector<std::uint32_t> first;
  std::vector<std::uint32_t> others;
  for (std::uint32_t s = 0; s < cfg_.shards; ++s) {
    if (mine.contains(s))
      continue;
    (preferred.contains(s) ? first : others).push_back(s);
  }
  if (clock::now() - started_at_ < cfg_.claim_others_after)
    others.clear();
  std::vector<shard_epoch> gained;
  for (auto [candidates, unless_preferred] : {std::pair{&first, false}, std::pair{&others, true}}) {
    sent = clock::now();
    auto taken = acquire(conn_, cfg_.node_id, *candidates, cfg_.lease_duration, unless_preferred);
    if (!taken) {
      database_failed(taken.error().message());
      return cfg_.renew_interval;
    }
    std::lock_guard lock{mutex_};
    for (const auto& t : *taken) {
      held_[t.shard] = {t.epoch, sent + cfg_.lease_duration};
      gained.push_back(t);
    }
  }
  {
    std::lock_guard lock{mutex_};
    stats_.owned = held_.size();
  }
  stats_.acquired += gained.size();
  for (const auto& g : gained) {
    log::notice("cluster.lease_acquired",
                {{"node", cfg_.node_id}, {"shard", g.shard}, {"epoch", g.epoch}});
    if (cb_.gained)
      cb_.gained(g);
  }
  ++stats_.rounds;

  // 4. Wake up when the first lease we could take expires, if before the next round.
  std::vector<std::uint32_t> wanted{first};
  wanted.insert(wanted.end(), others.begin(), others.end());
  auto expiry = next_expiry(conn_, cfg_.node_id, wanted);
  if (!expiry) {
    database_failed(expiry.error().message());
    return cfg_.renew_interval;
  }
  if (*expiry)
    return std::clamp(**expiry + std::chrono::milliseconds{1}, std::chrono::milliseconds{1},
                      cfg_.renew_interval);
  return cfg_.renew_interval;
}

} // namespace imeilock::cluster
