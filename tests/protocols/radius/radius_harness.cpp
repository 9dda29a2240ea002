// A small process around radius_server for the integration tests and the
// benchmark: the real server and Disconnect sender, with a recording
// observation sink standing in for the SIM layer (which is written in
// parallel; end-to-end stories through the real daemon come later).
//
//   radius_harness --config FILE [--ack ok|unknown_sim|overloaded|store_failed|shutting_down]
//                  [--ack-delay-ms N] [--ack-thread inline|thread] [--quiet]
//
// stdout: "PORT <host> <port>" per listener, then "READY"; then one JSON
// line per observation (unless --quiet). stdin commands, one per line:
//   stats                 -> one JSON line of server_stats
//   metrics               -> Prometheus text, then a line "END"
//   reload FILE           -> "RELOADED" or "RELOAD_FAILED <why>"
//   violation             -> a Disconnect-Request for the last observation's session
//   quit                  -> stop and exit 0
#include "actors/ports.hpp"
#include "common/log.hpp"
#include "config/section.hpp"
#include "protocols/radius/config.hpp"
#include "protocols/radius/disconnect.hpp"
#include "protocols/radius/server.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <condition_variable>
#include <cstdio>
#include <deque>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

using namespace imeilock;

namespace {

std::mutex out_mutex;

void say(const std::string& line) {
  std::lock_guard lock{out_mutex};
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\')
      o += '\\';
    if (static_cast<unsigned char>(c) < 0x20)
      continue;
    o += c;
  }
  return o;
}

struct harness_sink : actors::observation_sink {
  actors::ack answer = actors::ack::ok;
  std::chrono::milliseconds delay{0};
  bool inline_ack = false;
  bool quiet = false;

  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::pair<std::chrono::steady_clock::time_point, actors::ack_fn>> queue;
  bool done = false;
  std::thread acker;
  std::shared_ptr<const actors::disconnect_target> last_target;
  std::uint64_t last_imsi = 0;

  void start() {
    if (!inline_ack)
      acker = std::thread([this] { run(); });
  }
  void stop() {
    {
      std::lock_guard lock{mu};
      done = true;
    }
    cv.notify_all();
    if (acker.joinable())
      acker.join();
  }

  void run() {
    std::unique_lock lock{mu};
    while (true) {
      cv.wait(lock, [&] { return done || !queue.empty(); });
      if (done && queue.empty())
        return;
      auto [due, fn] = std::move(queue.front());
      queue.pop_front();
      if (due > std::chrono::steady_clock::now()) {
        lock.unlock();
        std::this_thread::sleep_until(due);
        lock.lock();
      }
      lock.unlock();
      fn(answer);
      lock.lock();
    }
  }

  void submit(actors::observation obs, actors::ack_fn fn) override {
    if (!quiet) {
      std::ostringstream j;
      j << "{\"imsi\":\"" << obs.imsi << "\",\"msisdn\":\"" << json_escape(obs.msisdn)
        << "\",\"imei_status\":\""
        << (obs.imei.status == lock::imei_status::ok       ? "ok"
            : obs.imei.status == lock::imei_status::absent ? "absent"
                                                           : "malformed")
        << "\",\"device\":\"" << obs.imei.device
        << "\",\"svn\":" << (obs.imei.svn ? int{*obs.imei.svn} : -1) << ",\"dedupe_key\":\""
        << obs.dedupe_key << "\",\"peer\":\"" << json_escape(obs.peer) << "\"";
      if (obs.disconnect)
        j << ",\"session\":\"" << json_escape(obs.disconnect->acct_session_id) << "\",\"nas\":\""
          << json_escape(obs.disconnect->nas_address) << "\"";
      j << "}";
      say(j.str());
    }
    {
      std::lock_guard lock{mu};
      if (obs.disconnect)
        last_target = obs.disconnect;
      last_imsi = obs.imsi;
    }
    if (inline_ack && delay.count() == 0) {
      fn(answer);
      return;
    }
    {
      std::lock_guard lock{mu};
      queue.emplace_back(std::chrono::steady_clock::now() + delay, std::move(fn));
    }
    cv.notify_one();
  }
};

bool parse_ack(const std::string& s, actors::ack& out) {
  if (s == "ok")
    out = actors::ack::ok;
  else if (s == "unknown_sim")
    out = actors::ack::unknown_sim;
  else if (s == "overloaded")
    out = actors::ack::overloaded;
  else if (s == "store_failed")
    out = actors::ack::store_failed;
  else if (s == "shutting_down")
    out = actors::ack::shutting_down;
  else
    return false;
  return true;
}

expected<radius::radius_config> load_config(const std::string& file) {
  return config::capture([&] {
    auto root = config::load_file(file);
    radius::radius_config fresh;
    radius::load(fresh, root.child("radius"));
    root.finish();
    return fresh;
  });
}

} // namespace

int main(int argc, char** argv) {
  std::string config_file;
  harness_sink sink;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : std::string{}; };
    if (a == "--config")
      config_file = next();
    else if (a == "--ack") {
      if (!parse_ack(next(), sink.answer)) {
        std::cerr << "bad --ack\n";
        return 2;
      }
    } else if (a == "--ack-delay-ms")
      sink.delay = std::chrono::milliseconds{std::stoi(next())};
    else if (a == "--ack-thread")
      sink.inline_ack = next() == "inline";
    else if (a == "--quiet")
      sink.quiet = true;
    else {
      std::cerr << "unknown argument " << a << "\n";
      return 2;
    }
  }
  radius::radius_config cfg;
  if (config_file.empty()) {
    std::cerr << "config: --config is required\n";
    return 78;
  }
  if (auto loaded = load_config(config_file); loaded) {
    cfg = std::move(*loaded);
  } else {
    std::cerr << "config: " << loaded.error().describe() << "\n";
    return 78;
  }
  prometheus::Registry registry;
  sink.start();
  radius::radius_server server{cfg, sink, registry};
  if (auto started = server.start(); !started) {
    std::cerr << started.error().describe() << "\n";
    return 1;
  }
  boost::asio::io_context control;
  auto guard = boost::asio::make_work_guard(control);
  std::thread control_thread([&] { control.run(); });
  radius::disconnect_sender dsender{control, cfg, registry};
  dsender.set_result_hook([](const radius::disconnect_result& r) {
    std::ostringstream j;
    j << "{\"disconnect\":\"" << radius::to_string(r.outcome) << "\",\"nas\":\"" << r.nas_address
      << "\",\"port\":" << r.nas_port << ",\"session\":\"" << json_escape(r.acct_session_id)
      << "\",\"error_cause\":" << r.error_cause << ",\"attempts\":" << r.attempts << "}";
    say(j.str());
  });

  for (const auto& ep : server.local_endpoints())
    say("PORT " + ep.host + " " + std::to_string(ep.port));
  say("READY");

  std::string line;
  while (std::getline(std::cin, line)) {
    if (line == "quit")
      break;
    if (line == "stats") {
      const auto st = server.stats();
      std::ostringstream j;
      j << "{\"received\":" << st.received << ",\"answered\":" << st.answered
        << ",\"resent\":" << st.resent << ",\"in_progress\":" << st.in_progress
        << ",\"submitted\":" << st.submitted << ",\"no_imsi\":" << st.no_imsi << ",\"discarded\":{";
      for (std::size_t i = 0; i < radius::discard_reason_count; ++i)
        j << (i ? "," : "") << "\"" << radius::to_string(static_cast<radius::discard_reason>(i))
          << "\":" << st.discarded[i];
      j << "}}";
      say(j.str());
    } else if (line == "metrics") {
      std::ostringstream text;
      prometheus::TextSerializer{}.Serialize(text, registry.Collect());
      say(text.str() + "END");
    } else if (line.rfind("reload ", 0) == 0) {
      auto fresh = load_config(line.substr(7));
      expected<void> applied = fresh ? server.reload(*fresh) : expected<void>{fresh.error()};
      if (applied)
        applied = dsender.reload(*fresh);
      if (!applied)
        say("RELOAD_FAILED " + applied.error().describe());
      else
        say("RELOADED");
    } else if (line == "violation") {
      std::shared_ptr<const actors::disconnect_target> t;
      std::uint64_t imsi = 0;
      {
        std::lock_guard lock{sink.mu};
        t = sink.last_target;
        imsi = sink.last_imsi;
      }
      actors::sim_event ev;
      ev.what = lock::notice::violation;
      ev.iccid = "8944000000000000001";
      ev.imsi = imsi;
      ev.disconnect = t;
      dsender.on_event(ev);
      say(t ? "VIOLATION_SENT" : "VIOLATION_NO_TARGET");
    }
  }
  server.stop();
  dsender.stop();
  guard.reset();
  control.stop();
  control_thread.join();
  sink.stop();
  say("BYE");
  return 0;
}
