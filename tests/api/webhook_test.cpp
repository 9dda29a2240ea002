// Webhooks against a real HTTP server on loopback (tests/api/webhook_sink.py)
// that fails first, then succeeds.

#include "api/webhooks.hpp"
#include "tests/common/child_process.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <cstdio>
#include <fstream>
#include <thread>

using namespace imeilock;
using namespace imeilock::api;
using namespace imeilock::test;
using nlohmann::json;

namespace {

/// An io_context on its own thread.
struct io_thread {
  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard{io.get_executor()};
  std::thread thread{[this] { io.run(); }};
  ~io_thread() {
    guard.reset();
    io.stop();
    thread.join();
  }
};

std::vector<json> read_lines(const std::string& file) {
  std::vector<json> out;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty())
      out.push_back(json::parse(line));
  return out;
}

template <class Pred>
bool wait_for(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds{10}) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred())
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
  }
  return pred();
}

actors::sim_event event(lock::notice what, std::uint64_t order_id = 0) {
  actors::sim_event ev;
  ev.what = what;
  ev.iccid = "89441000000000000018";
  ev.imsi = 234100000000001;
  ev.imei = 35209900176148;
  ev.locked_imei = 35349001234567;
  ev.order_id = order_id;
  ev.at_ms = 1764036364123;
  return ev;
}

std::string temp_file(const char* stem) {
  auto name = std::string{"/tmp/"} + stem + "-" + std::to_string(getpid()) + "-" +
              std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
  std::remove(name.c_str());
  return name;
}

/// A loopback port nobody listens on.
std::uint16_t closed_port() {
  io_thread t;
  boost::asio::ip::tcp::acceptor a{t.io, {boost::asio::ip::make_address("127.0.0.1"), 0}};
  auto port = a.local_endpoint().port();
  a.close();
  return port;
}

} // namespace

TEST_CASE("webhook payload: the documented fields, IMEIs as 15 digits", "[webhooks]") {
  auto j = json::parse(webhook_payload(event(lock::notice::violation, 17)));
  CHECK(j == json{{"event", "violation"},
                  {"iccid", "89441000000000000018"},
                  {"imsi", "234100000000001"},
                  {"imei", "352099001761481"},
                  {"locked_imei", "353490012345670"},
                  {"order_id", 17},
                  {"at", "2025-11-25T02:06:04.123Z"},
                  {"action", "bar"}});
  // Monitor mode: the violation says so, and names no order.
  auto alert = event(lock::notice::violation);
  alert.action = lock::violation_action::alert;
  j = json::parse(webhook_payload(alert));
  CHECK(j["action"] == "alert");
  CHECK(j["order_id"].is_null());
  auto none = event(lock::notice::lock_disabled);
  none.imei = lock::no_device;
  none.locked_imei = lock::no_device;
  j = json::parse(webhook_payload(none));
  CHECK(j["imei"].is_null());
  CHECK(j["locked_imei"].is_null());
  CHECK(j["order_id"].is_null());
  CHECK_FALSE(j.contains("action")); // only violations carry it
}

TEST_CASE("HMAC-SHA256 matches RFC 4231 test case 2", "[webhooks]") {
  CHECK(hmac_sha256_hex("Jefe", "what do ya want for nothing?") ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST_CASE("webhooks: retried after failures, delivered in order, signed, filtered by event",
          "[webhooks][integration]") {
  auto out = temp_file("imeilock-webhook");
  child_process sink{{"python3", WEBHOOK_SINK, "--fail", "2", "--out", out}};
  REQUIRE(sink.running());
  auto port = sink.read_line(std::chrono::seconds{10});
  REQUIRE(port);

  io_thread t;
  prometheus::Registry registry;
  webhook_config cfg;
  cfg.initial_backoff = std::chrono::milliseconds{50};
  cfg.max_attempts = 5;
  cfg.timeout = std::chrono::seconds{5};
  cfg.targets.push_back({"http://127.0.0.1:" + *port + "/hooks/imei",
                         {"violation", "unbar_completed"},
                         "s3cret-webhook-key",
                         "",
                         {}});
  webhook_notifier hooks{t.io, cfg, registry};

  auto started = std::chrono::steady_clock::now();
  hooks.on_event(event(lock::notice::violation, 17));
  hooks.on_event(event(lock::notice::lock_enabled)); // not subscribed
  hooks.on_event(event(lock::notice::unbar_completed, 18));
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::milliseconds{50});

  REQUIRE(wait_for([&] { return read_lines(out).size() >= 4 && hooks.pending() == 0; }));
  auto lines = read_lines(out);
  REQUIRE(lines.size() == 4);
  CHECK(lines[0]["status"] == 500);
  CHECK(lines[1]["status"] == 500);
  CHECK(lines[2]["status"] == 200);
  CHECK(lines[3]["status"] == 200);
  // The first delivery was retried with the same id and body.
  CHECK(lines[0]["headers"]["x-imeilock-delivery"] == lines[2]["headers"]["x-imeilock-delivery"]);
  CHECK(lines[0]["body"] == lines[2]["body"]);
  CHECK(lines[3]["headers"]["x-imeilock-delivery"] != lines[2]["headers"]["x-imeilock-delivery"]);
  CHECK(json::parse(lines[2]["body"].get<std::string>())["event"] == "violation");
  CHECK(json::parse(lines[3]["body"].get<std::string>())["event"] == "unbar_completed");
  CHECK(lines[3]["headers"]["x-imeilock-event"] == "unbar_completed");
  for (const auto& l : lines) {
    CHECK(l["path"] == "/hooks/imei");
    CHECK(l["headers"]["content-type"] == "application/json");
    CHECK(l["headers"]["x-imeilock-signature"] ==
          "sha256=" + hmac_sha256_hex("s3cret-webhook-key", l["body"].get<std::string>()));
  }
  auto text = prometheus::TextSerializer{}.Serialize(registry.Collect());
  CHECK(text.find("result=\"delivered\"") != std::string::npos);
  std::remove(out.c_str());
}

TEST_CASE("webhooks: a dead target is given up after max_attempts, the queue is bounded",
          "[webhooks][integration]") {
  io_thread t;
  prometheus::Registry registry;
  webhook_config cfg;
  cfg.initial_backoff = std::chrono::milliseconds{20};
  cfg.max_attempts = 2;
  cfg.queue_size = 3;
  cfg.timeout = std::chrono::seconds{2};
  cfg.targets.push_back(
      {"http://127.0.0.1:" + std::to_string(closed_port()) + "/", {}, "k", "", {}});
  webhook_notifier hooks{t.io, cfg, registry};

  auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < 100; ++i)
    hooks.on_event(event(lock::notice::violation, static_cast<std::uint64_t>(i + 1)));
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::milliseconds{200});
  CHECK(hooks.pending() <= 4);
  REQUIRE(wait_for([&] { return hooks.pending() == 0; }));
  auto text = prometheus::TextSerializer{}.Serialize(registry.Collect());
  INFO(text);
  CHECK(text.find("result=\"gave_up\"") != std::string::npos);
  CHECK(text.find("result=\"dropped\",target=\"http://127.0.0.1") != std::string::npos);
}

TEST_CASE("webhooks: reload moves a target to a new URL, unusable TLS files change nothing",
          "[webhooks][integration]") {
  auto out_a = temp_file("imeilock-webhook-a");
  auto out_b = temp_file("imeilock-webhook-b");
  child_process sink_a{{"python3", WEBHOOK_SINK, "--out", out_a}};
  child_process sink_b{{"python3", WEBHOOK_SINK, "--out", out_b}};
  auto port_a = sink_a.read_line(std::chrono::seconds{10});
  auto port_b = sink_b.read_line(std::chrono::seconds{10});
  REQUIRE(port_a);
  REQUIRE(port_b);

  io_thread t;
  prometheus::Registry registry;
  webhook_config cfg;
  cfg.targets.push_back({"http://127.0.0.1:" + *port_a + "/a", {}, "key-a", "", {}});
  webhook_notifier hooks{t.io, cfg, registry};
  CHECK(hooks.reload(cfg)); // unchanged: nothing to do

  hooks.on_event(event(lock::notice::violation, 1));
  REQUIRE(wait_for([&] { return read_lines(out_a).size() == 1 && hooks.pending() == 0; }));

  auto next = cfg;
  next.targets[0] = {"http://127.0.0.1:" + *port_b + "/b", {}, "key-b", "", {}};
  CHECK(hooks.reload(next));
  hooks.on_event(event(lock::notice::violation, 2));
  REQUIRE(wait_for([&] { return read_lines(out_b).size() == 1 && hooks.pending() == 0; }));
  auto b = read_lines(out_b)[0];
  CHECK(b["path"] == "/b");
  CHECK(b["headers"]["x-imeilock-signature"] ==
        "sha256=" + hmac_sha256_hex("key-b", b["body"].get<std::string>()));
  CHECK(read_lines(out_a).size() == 1); // the old target got nothing more

  // A new https target whose CA file is gone: refused, the running target stays.
  auto broken = next;
  broken.targets.push_back(
      {"https://127.0.0.1:" + *port_a + "/", {}, "k", "", {"/nonexistent/ca.pem", "", ""}});
  auto refused = hooks.reload(broken);
  REQUIRE_FALSE(refused);
  CHECK(refused.error() == http::ec::bad_tls_files);
  CHECK_THAT(refused.error().message(),
             Catch::Contains("tls.ca_file '/nonexistent/ca.pem': cannot read"));
  hooks.on_event(event(lock::notice::violation, 3));
  REQUIRE(wait_for([&] { return read_lines(out_b).size() == 2 && hooks.pending() == 0; }));
  CHECK(read_lines(out_a).size() == 1);
  std::remove(out_a.c_str());
  std::remove(out_b.c_str());
}
