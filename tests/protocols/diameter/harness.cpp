// diameter_harness: the Diameter front-end alone, with a recording sink that
// acknowledges at once, for interop tests with real Diameter stacks and for
// the benchmark. The real SIM layer replaces the sink in the daemon.
//
//   diameter_harness CONFIG.yaml [--record FILE] [--ack ok|unknown_sim|overloaded]
//                    [--threads N] [--metrics FILE]
// CONFIG.yaml holds a `diameter:` section. Prints "listening HOST PORT" per
// listener on stdout; SIGTERM/SIGINT -> stop() (DPR to every peer) -> exit 0.

#include "actors/ports.hpp"
#include "common/log.hpp"
#include "config/section.hpp"
#include "lock/imei.hpp"
#include "protocols/diameter/server.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>

using namespace imeilock;

namespace {

/// Writes one line per observation and acknowledges immediately.
class recording_sink final : public actors::observation_sink {
public:
  recording_sink(std::string file, actors::ack answer) : answer_(answer) {
    if (!file.empty())
      out_.open(file, std::ios::trunc);
  }
  void submit(actors::observation obs, actors::ack_fn done) override {
    if (out_.is_open()) {
      std::lock_guard lk{mu_};
      out_ << "imsi=" << obs.imsi << " msisdn=" << (obs.msisdn.empty() ? "-" : obs.msisdn)
           << " imei="
           << (obs.imei.status == lock::imei_status::ok ? lock::format_imei(obs.imei.device) : "-")
           << " svn=" << (obs.imei.svn ? std::to_string(*obs.imei.svn) : "-") << " status="
           << (obs.imei.status == lock::imei_status::ok       ? "ok"
               : obs.imei.status == lock::imei_status::absent ? "absent"
                                                              : "malformed")
           << " peer=" << obs.peer << " key=" << obs.dedupe_key << "\n";
      out_.flush();
    }
    done(answer_);
  }

private:
  std::mutex mu_;
  std::ofstream out_;
  actors::ack answer_;
};

} // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: diameter_harness CONFIG.yaml [--record FILE] [--ack MODE] [--threads N] "
                 "[--metrics FILE]\n";
    return 64;
  }
  std::string record, metrics_file;
  actors::ack answer = actors::ack::ok;
  unsigned threads = 1;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--record")
      record = v;
    else if (k == "--metrics")
      metrics_file = v;
    else if (k == "--threads")
      threads = static_cast<unsigned>(std::stoul(v));
    else if (k == "--ack")
      answer = v == "overloaded"    ? actors::ack::overloaded
               : v == "unknown_sim" ? actors::ack::unknown_sim
                                    : actors::ack::ok;
    else {
      std::cerr << "unknown option " << k << "\n";
      return 64;
    }
  }
  diameter::diameter_config cfg;
  try {
    auto root = config::load_file(argv[1]);
    diameter::load(cfg, root.child("diameter"));
  } catch (const config::error& e) {
    std::cerr << e.what() << "\n";
    return 78;
  }
  boost::asio::io_context io;
  prometheus::Registry registry;
  recording_sink sink{record, answer};
  diameter::diameter_server server{io, cfg, sink, registry};
  if (auto started = server.start(); !started) {
    std::cerr << started.error().describe() << "\n";
    return 1;
  }
  for (const auto& ep : server.local_endpoints())
    std::cout << "listening " << ep.host << " " << ep.port << "\n";
  std::cout.flush();
  boost::asio::signal_set signals{io, SIGTERM, SIGINT};
  signals.async_wait([&](boost::system::error_code, int) { server.stop([&] { io.stop(); }); });
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads; ++i)
    pool.emplace_back([&] { io.run(); });
  io.run();
  for (auto& t : pool)
    t.join();
  if (!metrics_file.empty()) {
    std::ofstream m{metrics_file};
    m << prometheus::TextSerializer{}.Serialize(registry.Collect());
  }
  return 0;
}
