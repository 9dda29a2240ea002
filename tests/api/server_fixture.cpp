#include "server_fixture.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <stdexcept>
#include <thread>

namespace imeilock::api::test {

struct server_fixture::impl {
  // The registry outlives the io_context: handlers destroyed with the
  // io_context still hold connections that count in it.
  prometheus::Registry registry;
  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard{io.get_executor()};
  std::unique_ptr<http_server> server;
  std::thread thread;
  std::string url;
};

server_fixture::server_fixture(const std::function<void(api_config&)>& tweak) :
    impl_(std::make_unique<impl>()) {
  api_config cfg;
  cfg.listen = {config::endpoint{"127.0.0.1", 0}};
  cfg.tokens = {rw_token};
  cfg.read_only_tokens = {ro_token};
  if (tweak)
    tweak(cfg);
  impl_->server = std::make_unique<http_server>(impl_->io, cfg, service, impl_->registry);
  if (auto started = impl_->server->start(); !started)
    throw std::runtime_error(started.error().describe());
  impl_->server->set_ready(true);
  auto eps = impl_->server->local_endpoints();
  if (eps.empty())
    throw std::runtime_error("no endpoint bound");
  impl_->url = "http://" + eps.front().to_string();
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

server_fixture::~server_fixture() {
  impl_->server->stop();
  // The SIM layer must not post answers into a destroyed io_context: let it
  // finish first (the daemon stops the SIM layer before its io_context too).
  service.hang = false;
  service.drain();
  impl_->guard.reset();
  impl_->io.stop();
  impl_->thread.join();
}

http_server& server_fixture::server() {
  return *impl_->server;
}

std::string server_fixture::url() const {
  return impl_->url;
}

std::string server_fixture::metrics() const {
  return prometheus::TextSerializer{}.Serialize(impl_->registry.Collect());
}

void server_fixture::seed_barred_sim() {
  actors::sim_info sim;
  sim.iccid = iccid_a;
  sim.imsis = {234100000000001};
  sim.msisdn = "447700900001";
  sim.network = "multinet";
  sim.state.status = lock::sim_status::active;
  sim.state.lock = lock::lock_state::locked;
  sim.state.lock_imei = device_a;
  sim.state.last_seen_imei = device_a;
  sim.state.updated_at_ms = 1764000000000;
  service.add(sim);
  service.observe(iccid_a, device_b);
}

} // namespace imeilock::api::test
