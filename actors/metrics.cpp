#include "actors/metrics.hpp"

#include "actors/ports.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace imeilock::actors {

layer_metrics::layer_metrics(prometheus::Registry& reg) {
  auto& sims = prometheus::BuildGauge()
                   .Name("imeilock_sim_sims")
                   .Help("SIMs of the inventory by lock state")
                   .Register(reg);
  for (std::size_t i = 0; i < sims_by_lock.size(); ++i)
    sims_by_lock[i] =
        &sims.Add({{"lock", std::string(lock::to_string(static_cast<lock::lock_state>(i)))}});
  auto& bars = prometheus::BuildGauge()
                   .Name("imeilock_sim_sims_by_bar")
                   .Help("SIMs of the inventory by bar state")
                   .Register(reg);
  for (std::size_t i = 0; i < sims_by_bar.size(); ++i)
    sims_by_bar[i] =
        &bars.Add({{"bar", std::string(lock::to_string(static_cast<lock::bar_state>(i)))}});
  auto& obs = prometheus::BuildCounter()
                  .Name("imeilock_sim_observations_total")
                  .Help("Accounting observations handed to the SIM layer, by answer")
                  .Register(reg);
  const char* results[] = {"ok",           "unknown_sim",   "overloaded",
                           "store_failed", "shutting_down", "not_owner"};
  for (std::size_t i = 0; i < observations.size(); ++i)
    observations[i] = &obs.Add({{"result", results[i]}});
  auto counter = [&](const char* name, const char* help) {
    return &prometheus::BuildCounter().Name(name).Help(help).Register(reg).Add({});
  };
  change_events = counter("imeilock_sim_change_events_total", "IMEI change events (R5)");
  violations = counter("imeilock_sim_violations_total", "IMEI-lock violations (R7)");
  bars_raised =
      counter("imeilock_sim_bars_raised_total", "Bar orders raised by IMEI-lock violations");
  unknown_imsis = counter("imeilock_sim_unknown_imsis_total",
                          "Observations for IMSIs not in the inventory (R15)");
  malformed_imeis = counter("imeilock_sim_malformed_imeis_total",
                            "Observations with a malformed IMEI, treated as none (R2)");
  deduplicated = counter("imeilock_sim_deduplicated_total",
                         "Retransmitted observations recognised by their dedupe key");
  passivations =
      counter("imeilock_sim_passivations_total", "SIM actors folded back into compact rows");
  store_refused =
      counter("imeilock_store_refused_total", "Changes refused because the writer queue was full");
  actors_alive = &prometheus::BuildGauge()
                      .Name("imeilock_sim_actors")
                      .Help("SIM actors alive")
                      .Register(reg)
                      .Add({});
  sims_awaiting_imei = &prometheus::BuildGauge()
                            .Name("imeilock_sims_awaiting_imei")
                            .Help("SIMs with IMEI locking on that were observed but never with "
                                  "an IMEI (where no IMEI is provided the lock never takes)")
                            .Register(reg)
                            .Add({});
  auto& commits = prometheus::BuildCounter()
                      .Name("imeilock_store_commits_total")
                      .Help("Store transactions (group commits) by outcome")
                      .Register(reg);
  commits_ok = &commits.Add({{"result", "ok"}});
  commits_failed = &commits.Add({{"result", "failed"}});
  commit_seconds =
      &prometheus::BuildHistogram()
           .Name("imeilock_store_commit_seconds")
           .Help("Time to commit one group of changes")
           .Register(reg)
           .Add({}, prometheus::Histogram::BucketBoundaries{0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
                                                            0.05, 0.1, 0.25, 0.5, 1, 2.5});
  lead_time_seconds = &prometheus::BuildHistogram()
                           .Name("imeilock_orders_lead_time_seconds")
                           .Help("Time from an order's creation to its completion")
                           .Register(reg)
                           .Add({}, prometheus::Histogram::BucketBoundaries{
                                        0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600});
  orders_family_ = &prometheus::BuildCounter()
                        .Name("imeilock_orders_total")
                        .Help("Orders reaching a lifecycle state, by type and state")
                        .Register(reg);
  violation_family_ = &prometheus::BuildCounter()
                           .Name("imeilock_sim_violation_actions_total")
                           .Help("IMEI-lock violations (R7) by network and the action taken "
                                 "(bar, alert, disconnect_and_bar)")
                           .Register(reg);
  queue_family_ = &prometheus::BuildGauge()
                       .Name("imeilock_orders_queue_depth")
                       .Help("Orders waiting (queued or retrying) per network")
                       .Register(reg);
  in_flight_family_ = &prometheus::BuildGauge()
                           .Name("imeilock_orders_in_flight")
                           .Help("Orders sent and not yet completed per network")
                           .Register(reg);
  queue_limit_family_ = &prometheus::BuildGauge()
                             .Name("imeilock_orders_queue_limit")
                             .Help("Most orders a network may hold queued or retrying "
                                   "(its max_queue); beyond it new orders are refused")
                             .Register(reg);
}

void layer_metrics::count(ack a) {
  auto i = static_cast<std::size_t>(a);
  if (i < observations.size())
    observations[i]->Increment();
}

void layer_metrics::awaiting_imei(int delta) {
  sims_awaiting_imei->Increment(static_cast<double>(delta));
}

void layer_metrics::added(const lock::sim_state& s) {
  sims_by_lock[static_cast<std::size_t>(s.lock) % 3]->Increment();
  sims_by_bar[static_cast<std::size_t>(s.bar) % 4]->Increment();
}

void layer_metrics::added(lock::lock_state lock, lock::bar_state bar, std::uint64_t n) {
  if (n == 0)
    return;
  sims_by_lock[static_cast<std::size_t>(lock) % 3]->Increment(static_cast<double>(n));
  sims_by_bar[static_cast<std::size_t>(bar) % 4]->Increment(static_cast<double>(n));
}

void layer_metrics::moved(const lock::sim_state& before, const lock::sim_state& after) {
  if (before.lock != after.lock) {
    sims_by_lock[static_cast<std::size_t>(before.lock) % 3]->Decrement();
    sims_by_lock[static_cast<std::size_t>(after.lock) % 3]->Increment();
  }
  if (before.bar != after.bar) {
    sims_by_bar[static_cast<std::size_t>(before.bar) % 4]->Decrement();
    sims_by_bar[static_cast<std::size_t>(after.bar) % 4]->Increment();
  }
}

void layer_metrics::order_state(lock::order_type type, std::string_view state) {
  std::string key = std::string(lock::to_string(type)) + "/" + std::string(state);
  std::lock_guard g{mtx_};
  auto it = orders_.find(key);
  if (it == orders_.end())
    it = orders_
             .emplace(key, &orders_family_->Add({{"type", std::string(lock::to_string(type))},
                                                 {"state", std::string(state)}}))
             .first;
  it->second->Increment();
}

void layer_metrics::violation(const std::string& network, lock::violation_action action) {
  const std::string name{lock::to_string(action)};
  const std::string key = network + "/" + name;
  std::lock_guard g{mtx_};
  auto it = violations_.find(key);
  if (it == violations_.end())
    it = violations_.emplace(key, &violation_family_->Add({{"network", network}, {"action", name}}))
             .first;
  it->second->Increment();
}

void layer_metrics::order_queue(const std::string& network, double depth, double in_flight,
                                double limit) {
  std::lock_guard g{mtx_};
  auto it = queues_.find(network);
  if (it == queues_.end())
    it = queues_
             .emplace(network, queue_gauges{&queue_family_->Add({{"network", network}}),
                                            &in_flight_family_->Add({{"network", network}}),
                                            &queue_limit_family_->Add({{"network", network}})})
             .first;
  it->second.depth->Set(depth);
  it->second.in_flight->Set(in_flight);
  it->second.limit->Set(limit);
}

} // namespace imeilock::actors
