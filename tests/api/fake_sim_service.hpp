#pragma once
// An in-memory sim_service for the API tests. It runs the real lock rules
// (lock::apply) and refuses exactly what the SIM layer refuses (unknown
// networks with the daemon's default configured names, IMSIs of other SIMs),
// with the same error codes; only storage and actors are left out (the real
// SIM layer is tested in tests/actors and end to end by the integration
// tests). Callbacks run on the fake's own thread, as the real SIM layer's
// do, never on the caller's.

#include "actors/ports.hpp"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

namespace imeilock::api::test {

class fake_sim_service : public actors::sim_service {
public:
  fake_sim_service();
  ~fake_sim_service() override;

  void upsert_sim(actors::sim_upsert sim, std::function<void(actors::write_result)> done) override;
  void import_sims(std::vector<actors::sim_upsert> sims,
                   std::function<void(std::vector<actors::write_result>)> done) override;
  void get_sim(std::string iccid,
               std::function<void(std::optional<actors::sim_info>)> done) override;
  void list_sims(actors::sim_filter filter, std::string cursor, std::size_t limit,
                 std::function<void(actors::sim_page)> done) override;
  void place_order(std::string iccid, actors::order_request req,
                   std::function<void(actors::write_result)> done) override;
  void get_order(std::uint64_t id, std::function<void(std::optional<orders::order>)> done) override;
  void list_orders(std::string iccid,
                   std::function<void(std::vector<orders::order>)> done) override;
  void list_events(std::string iccid, std::size_t limit,
                   std::function<void(std::vector<actors::event_info>)> done) override;
  /// Its SIMs counted by network and state, its events with an R7 detail as
  /// the violations (all of them in the current hour); no orders, no jobs.
  void fleet(std::function<void(actors::fleet_info)> done) override;

  // -- Test controls ---------------------------------------------------------

  /// Orders complete as soon as they are placed (default) or wait for complete_orders().
  std::atomic<bool> auto_complete{true};
  /// Never answer (request timeout tests).
  std::atomic<bool> hang{false};
  /// A SIM is seen in a device (the accounting feeds): R5-R7, R9.
  void observe(const std::string& iccid, lock::device_id imei);
  /// Completes every open order.
  void complete_orders();
  /// The SIM as stored, without going through the API.
  std::optional<actors::sim_info> snapshot(const std::string& iccid);
  /// Number of successful writes so far (to check that bad input changed nothing).
  std::size_t writes() const { return writes_.load(); }
  /// Returns once every callback queued so far has run.
  void drain();
  /// Adds a SIM directly (test set-up).
  void add(actors::sim_info sim);
  /// More than one node: writes of `iccid` are refused as the SIM layer of a
  /// node not serving its shard refuses them (write_result::elsewhere = owner).
  void serve_elsewhere(const std::string& iccid, actors::shard_owner owner);

private:
  void post(std::function<void()> fn);
  void record(const std::string& iccid, const std::string& cause, const lock::sim_state& before,
              lock::device_id imei, std::string detail = {});
  void complete(orders::order& o);
  actors::write_result check_upsert(const actors::sim_upsert& sim) const;
  bool apply_upsert(const actors::sim_upsert& sim);
  /// Keeps a lock::apply outcome: state, audit records, new orders.
  void apply_outcome(const std::string& iccid, lock::outcome& out);
  std::int64_t now() const;

  mutable std::mutex mutex_;
  std::map<std::string, actors::sim_info> sims_;
  std::map<std::uint64_t, orders::order> orders_;
  std::map<std::string, actors::shard_owner> elsewhere_;
  /// The refusal of a write of `iccid` served elsewhere, if it is (mutex_ held).
  std::optional<actors::write_result> elsewhere(const std::string& iccid) const;
  std::vector<actors::event_info> events_;
  std::uint64_t next_order_ = 1;
  std::uint64_t next_event_ = 1;
  std::atomic<std::size_t> writes_{0};

  std::mutex queue_mutex_;
  std::condition_variable queue_cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::thread worker_;
};

} // namespace imeilock::api::test
