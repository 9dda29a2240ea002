// The RADIUS server with a sink that acknowledges at once, for
// bench/radius_vs_freeradius.sh: it measures the front-end alone (the lead
// later points the script at the real daemon).
//
//   radius_bench_server --listen 127.0.0.1:0 --secret S [--threads N] [--ack inline|thread]
// Prints "PORT <port>" then serves until stdin closes.
#include "actors/ports.hpp"
#include "common/log.hpp"
#include "protocols/radius/server.hpp"

#include <prometheus/registry.h>

#include <condition_variable>
#include <cstdio>
#include <deque>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>

using namespace imeilock;

namespace {

/// Acknowledges every observation: in the caller (inline) or from one other
/// thread, as the actor system would.
struct immediate_sink : actors::observation_sink {
  bool inline_ack = true;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<actors::ack_fn> q;
  bool done = false;
  std::thread t;

  void start() {
    if (!inline_ack)
      t = std::thread([this] {
        std::deque<actors::ack_fn> batch;
        while (true) {
          {
            std::unique_lock lock{mu};
            cv.wait(lock, [&] { return done || !q.empty(); });
            if (done && q.empty())
              return;
            batch.swap(q);
          }
          for (auto& fn : batch)
            fn(actors::ack::ok);
          batch.clear();
        }
      });
  }
  void stop() {
    {
      std::lock_guard lock{mu};
      done = true;
    }
    cv.notify_all();
    if (t.joinable())
      t.join();
  }
  void submit(actors::observation, actors::ack_fn fn) override {
    if (inline_ack) {
      fn(actors::ack::ok);
      return;
    }
    bool wake;
    {
      std::lock_guard lock{mu};
      wake = q.empty();
      q.push_back(std::move(fn));
    }
    if (wake)
      cv.notify_one();
  }
};

} // namespace

int main(int argc, char** argv) {
  radius::radius_config cfg;
  cfg.listen.clear();
  std::string secret = "testing123";
  immediate_sink sink;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const std::string v = argv[i + 1];
    if (a == "--listen") {
      auto ep = config::parse_endpoint(v);
      if (!ep) {
        std::cerr << "--listen: " << ep.error().message() << "\n";
        return 2;
      }
      cfg.listen.push_back(*ep);
    } else if (a == "--secret")
      secret = v;
    else if (a == "--threads")
      cfg.io_threads = static_cast<std::uint32_t>(std::stoul(v));
    else if (a == "--ack")
      sink.inline_ack = v == "inline";
    else {
      std::cerr << "unknown option " << a << "\n";
      return 2;
    }
  }
  if (cfg.listen.empty())
    cfg.listen.push_back({"127.0.0.1", 0});
  cfg.clients.push_back({"bench", "127.0.0.0/8", secret, false, 0, ""});
  log::set_level(log::level::warning);
  prometheus::Registry registry;
  sink.start();
  radius::radius_server server{cfg, sink, registry};
  if (auto started = server.start(); !started) {
    std::cerr << started.error().describe() << "\n";
    return 1;
  }
  std::printf("PORT %u\n", unsigned{server.local_endpoints().at(0).port});
  std::fflush(stdout);
  std::string line;
  while (std::getline(std::cin, line)) {
  }
  server.stop();
  sink.stop();
  return 0;
}
