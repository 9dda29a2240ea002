#pragma once
// The order scheduler of one node: a pure, clock-free object that owns every
// open order and decides what happens to it next (DESIGN.md §3).
//
//  - per network a token bucket (rate, burst) and a limit on orders in flight;
//  - FIFO per network; a failed submission is retried with backoff up to the
//    retry policy's limit, then the order fails with the reason;
//  - a submitted order completes when its lead time (drawn from the network's
//    model for its type) has run out;
//  - enable/disable_imei_lock are internal orders: no backend, no rate limit,
//    they complete after their own lead time (default 0);
//  - bounded: a network's queue holds at most max_queue orders.
//
// Time comes in as `now_ms` (unix ms, never decreasing in practice; a clock
// step back only delays things). The scheduler never calls the backend or
// the store: it returns actions and the owner carries them out.
//
// How the order actor (actors/order_actor.cpp) drives it (all on the
// actor's thread; not thread-safe):
//
//   on start:      for each open order in the store: restore(o, now)
//                  then step(now)
//   on new order:  the SIM actor has persisted o (queued) with the SIM's new
//                  state already; add(o, now) -> ec::ok; on ec::overloaded
//                  restore(o, now) instead (a durable order is never dropped,
//                  only late); then step(now)
//   on backend ok:     carry_out(on_submitted(id, now));          step(now)
//   on backend failed: carry_out(on_submit_failed(id, why, now)); step(now)
//   on timer:      step(now)
//
//   step(now):     for (auto& a : poll(now)) carry_out(a);
//                  if (auto t = next_wakeup(now)) arm ONE timer for *t unless
//                  one already fires at or before *t (CAF 0.17 timeouts are
//                  never cancelled: keep at most one outstanding per instant).
//
//   carry_out(a):  switch (a.what)
//                    send:      backend(a.o.network).submit(a.o, done -> post result to self)
//                    submitted: persist a.o (status submitted, due_at_ms)
//                    retry:     persist a.o (status queued, attempts, retry_at_ms, failure_reason)
//                    completed,
//                    failed:    hand a.o to the SIM actor (through its registry
//                               shard), which applies order_completed /
//                               order_failed and persists the order's final
//                               state in the same transaction as the SIM's
//                               new state; persist a.o alone only when the SIM
//                               is no longer in the inventory

#include "common/error.hpp"
#include "orders/network.hpp"
#include "orders/order.hpp"

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace imeilock::orders {

/// A token bucket: `rate` tokens per second up to `burst`, starting full.
/// Pure: time comes in as now_ms.
class token_bucket {
public:
  token_bucket(double rate_per_second, std::uint32_t burst, std::int64_t now_ms);
  /// Takes one token if one is available at now_ms.
  bool try_take(std::int64_t now_ms);
  /// Earliest time >= now_ms at which a token is available.
  std::int64_t next_token_at(std::int64_t now_ms) const;
  /// Tokens available at now_ms (fractional).
  double available(std::int64_t now_ms) const;
  /// Takes a new rate and burst at now_ms, keeping the level (capped at burst).
  void reconfigure(double rate_per_second, std::uint32_t burst, std::int64_t now_ms);

private:
  void refill(std::int64_t now_ms);

  double rate_per_ms_;
  double burst_;
  double tokens_;
  std::int64_t last_ms_;
};

/// What the owner must do for one order. `o` is a snapshot of the order after
/// the change (persist it as is).
struct action {
  enum class kind : std::uint8_t {
    send,      ///< hand `o` to the network's backend; report with on_submitted / on_submit_failed
    submitted, ///< persist: the backend took it (or internal order started), due_at_ms set
    retry,     ///< persist: a submission failed, retried at retry_at_ms (status queued)
    completed, ///< persist, tell the SIM: took effect at finished_at_ms
    failed,    ///< persist, tell the SIM: gave up, failure_reason says why
  };
  kind what = kind::send;
  order o;
};

std::string_view to_string(action::kind k);

/// Observable state of one network (metrics: queue depth per network).
struct network_stats {
  std::size_t queued = 0;      ///< waiting for a token / slot (retries not yet due excluded)
  std::size_t retrying = 0;    ///< waiting for their retry time
  std::size_t sending = 0;     ///< handed to the backend, no answer yet
  std::size_t submitted = 0;   ///< waiting for their lead time to run out
  std::uint64_t completed = 0; ///< since start
  std::uint64_t failed = 0;    ///< since start
  std::uint64_t retries = 0;   ///< failed submissions that were retried, since start
  double tokens = 0;           ///< bucket level at the last poll
  /// queued + retrying: what max_queue bounds.
  std::size_t depth() const { return queued + retrying; }
  /// sending + submitted: what max_in_flight bounds.
  std::size_t in_flight() const { return sending + submitted; }
};

/// The scheduler. Holds open orders only: completed and failed ones are
/// forgotten once reported.
class scheduler {
public:
  /// `seed` drives lead-time draws; 0 = cfg.seed, and if that is 0 too,
  /// std::random_device.
  explicit scheduler(orders_config cfg, std::uint64_t seed = 0);

  /// Accepts a new order (its lifecycle fields are reset: queued, 0 attempts).
  /// ec::invalid: id 0, type none or outside the enum; ec::conflict: the id
  /// is already open; ec::overloaded: the network's queue is full (nothing
  /// changed).
  ec add(order o, std::int64_t now_ms);

  /// Takes back an open order loaded from the store after a restart, keeping
  /// its lifecycle: queued -> queued (a pending retry keeps its retry time);
  /// submitted -> completes at its due_at_ms, i.e. with its REMAINING lead
  /// time (immediately if that has passed; a fresh draw if due_at_ms is 0).
  /// Never refused for a full queue (durable orders are never dropped).
  /// ec::invalid: id 0, type none or outside the enum (a damaged store), or
  /// status completed/failed;
  /// ec::conflict: the id is already open.
  ec restore(order o, std::int64_t now_ms);

  /// Everything due at now_ms: internal orders started, completions whose
  /// lead time ran out, retries that became due, and submissions allowed by
  /// the token buckets and in-flight limits (FIFO per network).
  std::vector<action> poll(std::int64_t now_ms);

  /// When poll() next has something to do without outside input (absolute
  /// unix ms, >= now_ms), or nullopt when only a backend answer or a new
  /// order can change anything.
  std::optional<std::int64_t> next_wakeup(std::int64_t now_ms) const;

  /// The backend accepted order `id`: it is submitted and its lead time
  /// starts. Returns the `submitted` action, or nullopt if `id` is not being
  /// sent (a stale or duplicate answer: ignore it).
  std::optional<action> on_submitted(std::uint64_t id, std::int64_t now_ms);

  /// The backend refused order `id` (or timed out). Returns `retry` (queued
  /// again after the backoff) or, when the retry policy is exhausted,
  /// `failed` with reason "<reason> (after N attempts)"; nullopt if `id` is
  /// not being sent.
  std::optional<action> on_submit_failed(std::uint64_t id, std::string_view reason,
                                         std::int64_t now_ms);

  /// Forgets the open orders `pred` selects (their SIMs are now served by
  /// another node, DESIGN §6: that node resumes them from the store). No
  /// action comes for them any more; a backend answer still on its way is
  /// ignored as stale. Returns how many were forgotten.
  std::size_t forget_if(const std::function<bool(const order&)>& pred);

  /// The open order `id`, or nullptr.
  const order* find(std::uint64_t id) const;

  /// Open orders (all states but completed/failed).
  std::size_t size() const { return orders_.size(); }

  /// Stats of one network (zeroes if it has never had an order).
  network_stats stats(std::string_view network) const;
  /// Stats of every network that has had an order, plus every configured one.
  std::vector<std::pair<std::string, network_stats>> all_stats() const;

  const orders_config& config() const { return cfg_; }

  /// Applies a reloaded configuration (SIGHUP). Open orders keep their state
  /// and the due times already drawn; token buckets take the new rate and
  /// burst (keeping their level, capped at the new burst); in-flight and
  /// queue limits, lead times and retry policies apply from now on. The
  /// lead-time generator keeps its sequence (cfg.seed is not re-read).
  void reconfigure(orders_config cfg, std::int64_t now_ms);

private:
  enum class phase : std::uint8_t { internal_wait, queued, retry_wait, sending, submitted };

  struct entry {
    order o;
    phase ph = phase::queued;
  };

  struct net_state {
    explicit net_state(token_bucket b) : bucket(b) {}
    token_bucket bucket;
    std::deque<std::uint64_t> ready;                          ///< FIFO of queued ids
    std::set<std::pair<std::int64_t, std::uint64_t>> retries; ///< (retry_at, id)
    std::size_t sending = 0;
    std::size_t submitted = 0;
    std::uint64_t completed = 0;
    std::uint64_t failed = 0;
    std::uint64_t retried = 0;
    double tokens = 0;
  };

  net_state& net(const std::string& name, std::int64_t now_ms);
  const net_state* find_net(std::string_view name) const;
  /// Marks `e` submitted at now_ms; draws its due time unless `keep_due`.
  void start_lead_time(entry& e, std::int64_t now_ms, bool keep_due);
  ec check_new(const order& o) const;
  /// The order `id` if it is with the backend (no longer counted as sending), else nullptr.
  entry* take_sending(std::uint64_t id, std::int64_t now_ms);
  static network_stats stats_of(const net_state& n);

  orders_config cfg_;
  rng gen_;
  std::unordered_map<std::uint64_t, entry> orders_;
  std::map<std::string, net_state, std::less<>> nets_;
  /// (due_at, id) of submitted and internal orders, all networks.
  std::set<std::pair<std::int64_t, std::uint64_t>> due_;
  /// Internal orders (no backend) waiting for the next poll to start.
  std::vector<std::uint64_t> internal_;
};

} // namespace imeilock::orders
