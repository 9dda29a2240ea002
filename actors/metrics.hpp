#pragma once
// The SIM layer's Prometheus metrics (registry, SIM actors, orders, store),
// grouped in one struct owned by the sim_layer and shared by its actors.
// prometheus-cpp's counters are thread-safe; no CAF here.

#include "lock/types.hpp"

#include <array>
#include <map>
#include <mutex>
#include <string>

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Histogram;
template <class T>
class Family;
} // namespace prometheus

namespace imeilock::actors {

enum class ack : std::uint8_t;

/// Every family of the SIM layer. Names start with imeilock_sim_,
/// imeilock_orders_ or imeilock_store_.
struct layer_metrics {
  explicit layer_metrics(prometheus::Registry& reg);

  /// imeilock_sim_sims{lock}: SIMs of the inventory per lock state.
  std::array<prometheus::Gauge*, 3> sims_by_lock{};
  /// imeilock_sim_sims_by_bar{bar}: SIMs per bar state.
  std::array<prometheus::Gauge*, 4> sims_by_bar{};
  /// imeilock_sim_observations_total{result}: observations by their answer.
  std::array<prometheus::Counter*, 6> observations{};
  prometheus::Counter* change_events = nullptr;    ///< imeilock_sim_change_events_total (R5)
  prometheus::Counter* violations = nullptr;       ///< imeilock_sim_violations_total (R7)
  prometheus::Counter* bars_raised = nullptr;      ///< imeilock_sim_bars_raised_total
  prometheus::Counter* unknown_imsis = nullptr;    ///< imeilock_sim_unknown_imsis_total (R15)
  prometheus::Counter* malformed_imeis = nullptr;  ///< imeilock_sim_malformed_imeis_total (R2)
  prometheus::Counter* deduplicated = nullptr;     ///< imeilock_sim_deduplicated_total
  prometheus::Gauge* actors_alive = nullptr;       ///< imeilock_sim_actors
  prometheus::Counter* passivations = nullptr;     ///< imeilock_sim_passivations_total
  prometheus::Histogram* commit_seconds = nullptr; ///< imeilock_store_commit_seconds
  prometheus::Counter* commits_ok = nullptr;       ///< imeilock_store_commits_total{result="ok"}
  prometheus::Counter* commits_failed = nullptr; ///< imeilock_store_commits_total{result="failed"}
  prometheus::Counter* store_refused = nullptr;  ///< imeilock_store_refused_total (queue full)
  prometheus::Histogram* lead_time_seconds = nullptr; ///< imeilock_orders_lead_time_seconds
  /// imeilock_sims_awaiting_imei: SIMs with locking on that were observed
  /// but never with an IMEI (the product text: such a SIM never locks).
  prometheus::Gauge* sims_awaiting_imei = nullptr;

  /// One observation answered.
  void count(ack a);
  /// A committed state change of one SIM: moves it between the state gauges.
  void moved(const lock::sim_state& before, const lock::sim_state& after);
  /// A SIM present in the inventory at startup or created.
  void added(const lock::sim_state& s);
  /// `n` SIMs in lock state `lock` and bar state `bar` present at startup
  /// (the load counts them first: one gauge update per state, not per SIM).
  void added(lock::lock_state lock, lock::bar_state bar, std::uint64_t n);
  /// A SIM started (+1) or stopped (-1) counting in imeilock_sims_awaiting_imei.
  void awaiting_imei(int delta);

  /// imeilock_orders_total{type,state}: orders reaching a lifecycle state.
  void order_state(lock::order_type type, std::string_view state);
  /// imeilock_sim_violation_actions_total{network,action}: violations (R7)
  /// by what was done about them (bar, alert, disconnect_and_bar).
  void violation(const std::string& network, lock::violation_action action);

  /// imeilock_orders_queue_depth{network} / imeilock_orders_in_flight{network}, and
  /// imeilock_orders_queue_limit{network}: the network's max_queue (alerts compare the two).
  void order_queue(const std::string& network, double depth, double in_flight, double limit);

private:
  prometheus::Family<prometheus::Counter>* orders_family_ = nullptr;
  prometheus::Family<prometheus::Counter>* violation_family_ = nullptr;
  prometheus::Family<prometheus::Gauge>* queue_family_ = nullptr;
  prometheus::Family<prometheus::Gauge>* in_flight_family_ = nullptr;
  prometheus::Family<prometheus::Gauge>* queue_limit_family_ = nullptr;
  /// One network's order gauges.
  struct queue_gauges {
    prometheus::Gauge* depth;
    prometheus::Gauge* in_flight;
    prometheus::Gauge* limit;
  };
  std::mutex mtx_;
  std::map<std::string, prometheus::Counter*> orders_;
  std::map<std::string, prometheus::Counter*> violations_; ///< key: network/action
  std::map<std::string, queue_gauges> queues_;
};

} // namespace imeilock::actors
