#pragma once
// A real SIM layer for tests and benchmarks: a CAF system (sharing policy,
// explicit workers), an on-disk store in a temporary directory, and
// synchronous helpers around the callback API.

#include "actors/sim_layer.hpp"
#include "lock/imei.hpp"
#include "store/store.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <prometheus/registry.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>

namespace imeilock::testing {

/// A fresh directory, removed at the end.
struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    std::random_device rd;
    path = std::filesystem::temp_directory_path() / ("imeilock-actors-" + std::to_string(rd()));
    std::filesystem::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string db() const { return (path / "sims.db").string(); }
};

/// An ICCID with a valid Luhn check digit: "8944" + 14 digits of n + check.
inline std::string iccid(std::uint64_t n) {
  std::string body = "8944" + std::string(14 - std::to_string(n).size(), '0') + std::to_string(n);
  int sum = 0;
  for (std::size_t i = 0; i < body.size(); ++i) {
    int d = body[body.size() - 1 - i] - '0';
    if (i % 2 == 0) {
      d *= 2;
      if (d > 9)
        d -= 9;
    }
    sum += d;
  }
  return body + static_cast<char>('0' + (10 - sum % 10) % 10);
}

inline std::uint64_t imsi(std::uint64_t n) {
  return 234'150'000'000'000ull + n;
}

/// A 15-digit IMEI of device n (check digit computed).
inline lock::imei_value imei(std::uint64_t n) {
  auto device = 35'349'001'000'000ull + n;
  auto text = std::to_string(device);
  text += static_cast<char>('0' + lock::luhn_digit(device));
  return lock::decode_imei(text);
}

/// Order lead times short enough for tests.
inline orders::orders_config fast_orders(std::chrono::milliseconds bar_lead) {
  orders::orders_config cfg;
  auto tune = [&](orders::network_config& n) {
    n.lead_time_for(lock::order_type::bar) = orders::lead_time::constant(bar_lead);
    n.lead_time_for(lock::order_type::unbar) = orders::lead_time::constant(bar_lead);
    n.lead_time_for(lock::order_type::activate) = orders::lead_time::constant(bar_lead);
    n.rate_per_second = 100000;
    n.burst = 100000;
    n.max_in_flight = 1000000;
    n.max_queue = 1000000;
  };
  tune(cfg.defaults);
  for (auto& [name, n] : cfg.networks)
    tune(n);
  cfg.seed = 1;
  return cfg;
}

/// A SIM layer over a store file in `dir`; SIMs passivate after a minute.
inline actors::sim_layer_config config_for(const temp_dir& dir) {
  actors::sim_layer_config cfg;
  cfg.store.path = dir.db();
  cfg.passivate_after = std::chrono::seconds{60};
  return cfg;
}

/// The actor system as the daemon configures it.
inline std::unique_ptr<caf::actor_system_config> caf_config(std::size_t workers = 2) {
  auto cfg = std::make_unique<caf::actor_system_config>();
  cfg->set("scheduler.policy", caf::atom("sharing"));
  cfg->set("scheduler.max-threads", workers);
  return cfg;
}

/// One SIM layer over a store file; destroy and rebuild it to "restart".
struct layer_fixture {
  std::unique_ptr<caf::actor_system_config> caf_cfg = caf_config();
  caf::actor_system sys{*caf_cfg};
  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard{io.get_executor()};
  std::thread io_thread{[this] { io.run(); }};
  prometheus::Registry registry;
  std::unique_ptr<actors::sim_layer> layer;

  layer_fixture(const actors::sim_layer_config& cfg, const orders::orders_config& ocfg,
                actors::sim_listener* listener = nullptr, lock::eligibility_config elig = {}) {
    auto opened = actors::sim_layer::open(sys, cfg, elig, ocfg, registry, listener, io);
    if (!opened) // Catch reports it as the test's failure
      throw std::runtime_error(opened.error().describe());
    layer = std::move(*opened);
    layer->start();
  }
  ~layer_fixture() {
    layer->stop();
    layer.reset();
    guard.reset();
    io.stop();
    io_thread.join();
  }

  actors::ack observe(std::uint64_t imsi_value, lock::imei_value value, std::uint64_t key = 0) {
    actors::observation obs;
    obs.imsi = imsi_value;
    obs.imei = value;
    obs.dedupe_key = key;
    obs.peer = "test";
    std::promise<actors::ack> p;
    auto f = p.get_future();
    layer->submit(std::move(obs), [&p](actors::ack a) { p.set_value(a); });
    return f.get();
  }

  actors::write_result upsert(std::string id, std::vector<std::uint64_t> imsis,
                              std::string network = "multinet",
                              lock::sim_status status = lock::sim_status::active) {
    std::promise<actors::write_result> p;
    auto f = p.get_future();
    layer->upsert_sim({std::move(id), std::move(imsis), "447700900001", std::move(network), status},
                      [&p](actors::write_result r) { p.set_value(std::move(r)); });
    return f.get();
  }

  actors::write_result order(std::string id, lock::order_type type,
                             lock::unbar_mode mode = lock::unbar_mode::none,
                             bool with_lock = false) {
    std::promise<actors::write_result> p;
    auto f = p.get_future();
    layer->place_order(std::move(id), {type, mode, with_lock},
                       [&p](actors::write_result r) { p.set_value(std::move(r)); });
    return f.get();
  }

  std::optional<actors::sim_info> sim(std::string id) {
    std::optional<actors::sim_info> out;
    layer->get_sim(std::move(id), [&](std::optional<actors::sim_info> s) { out = std::move(s); });
    return out;
  }

  std::vector<orders::order> orders_of(std::string id) {
    std::vector<orders::order> out;
    layer->list_orders(std::move(id), [&](std::vector<orders::order> v) { out = std::move(v); });
    return out;
  }

  /// Waits until `pred` holds (polling the committed state), up to `limit`.
  bool wait_for(const std::function<bool()>& pred,
                std::chrono::milliseconds limit = std::chrono::seconds{10}) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (pred())
        return true;
      std::this_thread::sleep_for(std::chrono::milliseconds{10});
    }
    return pred();
  }
};

} // namespace imeilock::testing
