// The webhook provisioning backend against a real HTTP server on loopback
// (tests/orders/webhook_server.py): 2xx is submitted; errors, a failing
// server, a slow one and a refused connection are failures with a reason.

#include "orders/scheduler.hpp"
#include "orders/webhook.hpp"
#include "tests/common/child_process.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

using namespace imeilock;
using namespace imeilock::orders;
using namespace std::chrono_literals;

namespace {

/// The backend that was made (the test fails if it was refused).
std::unique_ptr<provisioning_backend> made(expected<std::unique_ptr<provisioning_backend>> b) {
  INFO((b ? std::string{} : b.error().message()));
  REQUIRE(b);
  return std::move(*b);
}

/// Why making a backend was refused (the test fails if it was made).
std::string refusal(expected<std::unique_ptr<provisioning_backend>> b) {
  REQUIRE_FALSE(b);
  CHECK(b.error() == ec::backend_failed);
  return b.error().message();
}

/// The Python server, started on 127.0.0.1 port 0, stopped at scope exit.
class http_server {
public:
  http_server() {
    dir_ = std::filesystem::temp_directory_path() /
           ("imeilock-webhook-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    std::filesystem::create_directories(dir_);
    record_ = (dir_ / "requests.jsonl").string();
    int out[2];
    REQUIRE(::pipe(out) == 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    std::string python = IMEILOCK_PYTHON;
    std::string script = IMEILOCK_WEBHOOK_SERVER;
    std::vector<char*> argv{python.data(), script.data(), record_.data(), nullptr};
    REQUIRE(posix_spawn(&pid_, python.c_str(), &actions, nullptr, argv.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    // The first line is "PORT <n>".
    std::string line;
    char c = 0;
    while (::read(out[0], &c, 1) == 1 && c != '\n')
      line += c;
    ::close(out[0]);
    REQUIRE(line.rfind("PORT ", 0) == 0);
    port_ = std::stoi(line.substr(5));
  }

  ~http_server() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

  /// Every request received so far.
  std::vector<nlohmann::json> requests() const {
    std::vector<nlohmann::json> out;
    std::ifstream in{record_};
    std::string line;
    while (std::getline(in, line))
      out.push_back(nlohmann::json::parse(line));
    return out;
  }

  const std::filesystem::path& dir() const { return dir_; }

private:
  static inline int counter_ = 0;
  std::filesystem::path dir_;
  std::string record_;
  pid_t pid_ = 0;
  int port_ = 0;
};

/// An io_context run by one thread for the test's duration.
class io_runner {
public:
  io_runner() : guard_(boost::asio::make_work_guard(io)), thread_([this] { io.run(); }) {}
  ~io_runner() {
    guard_.reset();
    io.stop();
    thread_.join();
  }
  boost::asio::io_context io;

private:
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  std::thread thread_;
};

order sample_order(std::uint64_t id = 7) {
  order o;
  o.id = id;
  o.iccid = "8944110000000000007";
  o.imsis = {234150000000007};
  o.network = "ee";
  o.type = lock::order_type::bar;
  o.reason = lock::bar_reason::imei_lock;
  o.created_at_ms = 1'764'038'764'123;
  return o;
}

backend_config webhook(const std::string& url, std::chrono::milliseconds timeout = 5s) {
  backend_config cfg;
  cfg.type = backend_config::kind::webhook;
  cfg.url = url;
  cfg.timeout = timeout;
  return cfg;
}

/// Submits and waits (bounded) for the answer.
submit_result submit_and_wait(provisioning_backend& backend, const order& o) {
  auto promise = std::make_shared<std::promise<submit_result>>();
  auto future = promise->get_future();
  backend.submit(o, [promise](submit_result r) { promise->set_value(std::move(r)); });
  REQUIRE(future.wait_for(20s) == std::future_status::ready);
  return future.get();
}

} // namespace

TEST_CASE("webhook: 2xx is submitted, the server gets the order as JSON", "[orders][webhook]") {
  http_server server;
  io_runner runner;
  auto token_file = server.dir() / "token";
  std::ofstream{token_file} << "s3cret-token\n";
  auto cfg = webhook(server.url("/ok"));
  cfg.bearer_token_file = token_file.string();
  auto backend = made(make_backend(cfg, runner.io));
  CHECK(backend->describe() == "webhook " + server.url("/ok"));

  auto r = submit_and_wait(*backend, sample_order());
  CHECK(r.accepted);
  CHECK(r.http_status == 200);
  CHECK(r.reason.empty());

  auto reqs = server.requests();
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0]["path"] == "/ok");
  CHECK(reqs[0]["headers"]["content-type"] == "application/json");
  CHECK(reqs[0]["headers"]["authorization"] == "Bearer s3cret-token");
  auto body = nlohmann::json::parse(reqs[0]["body"].get<std::string>());
  CHECK(body["order_id"] == 7);
  CHECK(body["iccid"] == "8944110000000000007");
  CHECK(body["imsis"] == nlohmann::json::array({"234150000000007"}));
  CHECK(body["network"] == "ee");
  CHECK(body["type"] == "bar");
  CHECK(body["reason"] == "imei_lock");
  CHECK(body["unbar_mode"] == "none");
  CHECK(body["with_lock"] == false);
  CHECK(body["created_at"] == "2025-11-25T02:46:04.123Z");
}

TEST_CASE("webhook: non-2xx is a failure naming the status", "[orders][webhook]") {
  http_server server;
  io_runner runner;
  auto backend = made(make_webhook_backend(webhook(server.url("/status/404")), runner.io));
  auto r = submit_and_wait(*backend, sample_order());
  CHECK_FALSE(r.accepted);
  CHECK(r.http_status == 404);
  CHECK(r.reason == "http 404");
}

TEST_CASE("webhook: a server failing at first is retried by the scheduler until it accepts",
          "[orders][webhook][retry]") {
  http_server server;
  io_runner runner;
  auto backend = made(make_webhook_backend(webhook(server.url("/fail-first/2")), runner.io));

  orders_config cfg;
  cfg.networks.clear();
  cfg.defaults.retry = retry_policy{5, 10ms, 100ms, 2.0};
  scheduler s{cfg, 1};
  std::int64_t now = 1'000'000;
  REQUIRE(s.add(sample_order(), now) == ec::ok);

  std::vector<std::string> reasons;
  std::optional<action> last;
  for (int guard = 0; guard < 20 && s.size() > 0; ++guard) {
    for (auto& a : s.poll(now)) {
      if (a.what == action::kind::send) {
        // The actor would get this as a message; here we wait for it.
        auto r = submit_and_wait(*backend, a.o);
        if (r.accepted) {
          last = s.on_submitted(a.o.id, now);
        } else {
          reasons.push_back(r.reason);
          last = s.on_submit_failed(a.o.id, r.reason, now);
        }
        REQUIRE(last);
      } else {
        last = a;
      }
    }
    if (auto wake = s.next_wakeup(now))
      now = *wake;
  }
  REQUIRE(last);
  CHECK(last->what == action::kind::completed);
  CHECK(last->o.attempts == 3);
  CHECK(reasons == std::vector<std::string>{"http 503", "http 503"});
  CHECK(server.requests().size() == 3);
}

TEST_CASE("webhook: a slow server trips the timeout", "[orders][webhook][timeout]") {
  http_server server;
  io_runner runner;
  auto backend = made(make_webhook_backend(webhook(server.url("/slow/3000"), 300ms), runner.io));
  auto start = std::chrono::steady_clock::now();
  auto r = submit_and_wait(*backend, sample_order());
  auto took = std::chrono::steady_clock::now() - start;
  CHECK_FALSE(r.accepted);
  CHECK(r.reason == "timeout after 300ms");
  CHECK(took >= 290ms);
  CHECK(took < 2500ms);
}

TEST_CASE("webhook: connection refused is a failure with the reason", "[orders][webhook]") {
  io_runner runner;
  // A port nobody listens on: bind one, note it, close it.
  unsigned short port = 0;
  {
    boost::asio::io_context tmp;
    boost::asio::ip::tcp::acceptor acceptor{
        tmp, boost::asio::ip::tcp::endpoint{boost::asio::ip::make_address("127.0.0.1"), 0}};
    port = acceptor.local_endpoint().port();
  }
  auto backend = made(make_webhook_backend(
      webhook("http://127.0.0.1:" + std::to_string(port) + "/ok", 2s), runner.io));
  auto r = submit_and_wait(*backend, sample_order());
  CHECK_FALSE(r.accepted);
  CHECK_THAT(r.reason, Catch::StartsWith("connect: "));
  CHECK_THAT(r.reason, Catch::Contains("refused"));
}

TEST_CASE("webhook: many orders at once each get their answer", "[orders][webhook]") {
  http_server server;
  io_runner runner;
  auto backend = made(make_webhook_backend(webhook(server.url("/ok")), runner.io));
  constexpr int n = 25;
  std::vector<std::future<submit_result>> futures;
  for (int i = 1; i <= n; ++i) {
    auto promise = std::make_shared<std::promise<submit_result>>();
    futures.push_back(promise->get_future());
    backend->submit(sample_order(static_cast<std::uint64_t>(i)),
                    [promise](submit_result r) { promise->set_value(std::move(r)); });
  }
  for (auto& f : futures) {
    REQUIRE(f.wait_for(20s) == std::future_status::ready);
    CHECK(f.get().accepted);
  }
  std::set<std::uint64_t> ids;
  for (const auto& req : server.requests())
    ids.insert(
        nlohmann::json::parse(req["body"].get<std::string>())["order_id"].get<std::uint64_t>());
  CHECK(ids.size() == n);
}

TEST_CASE("webhook: configuration problems are reported when the backend is made",
          "[orders][webhook]") {
  io_runner runner;
  // The URL is common/http_url's to judge (tested there); its message is passed on.
  CHECK_THAT(refusal(make_webhook_backend(webhook("ftp://x/"), runner.io)),
             Catch::Contains("expected an http:// or https:// URL"));
  auto tls = webhook("https://127.0.0.1:1/");
  tls.tls.ca_file = "/nonexistent/ca.pem";
  CHECK_THAT(refusal(make_webhook_backend(tls, runner.io)),
             Catch::StartsWith("webhook tls.ca_file '/nonexistent/ca.pem': "));
  CHECK(refusal(make_webhook_backend(webhook("http://host:0/"), runner.io)) ==
        "webhook url: bad port '0' (expected 1-65535) in 'http://host:0/'");
  auto cfg = webhook("http://127.0.0.1:1/");
  cfg.bearer_token_file = "/nonexistent/token";
  CHECK_THAT(refusal(make_webhook_backend(cfg, runner.io)),
             Catch::Contains("cannot read bearer_token_file"));
  // The simulated backend needs nothing.
  CHECK(made(make_backend(backend_config{}, runner.io))->describe() == "simulated");
}

TEST_CASE("webhook: over https with the CA file and a client certificate, an expired "
          "certificate is a failed submission saying so",
          "[orders][webhook][tls]") {
  // tests/common/http_test_server.py --tls: throwaway certificates made now.
  auto dir = std::filesystem::temp_directory_path() /
             ("imeilock-orders-tls-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  imeilock::test::child_process server{
      {IMEILOCK_PYTHON, IMEILOCK_HTTP_TEST_SERVER, "--tls", dir.string()}};
  auto line = server.read_line(30s);
  REQUIRE(line);
  auto ports = nlohmann::json::parse(*line);
  auto at = [&](const char* which) {
    return "https://127.0.0.1:" + std::to_string(ports[which].get<int>()) + "/echo";
  };
  io_runner runner;

  auto cfg = webhook(at("mtls"));
  cfg.tls = {(dir / "ca.pem").string(), (dir / "client.pem").string(),
             (dir / "client.key").string()};
  auto r = submit_and_wait(*made(make_webhook_backend(cfg, runner.io)), sample_order());
  CHECK(r.accepted);
  CHECK(r.http_status == 200);

  cfg.url = at("expired");
  r = submit_and_wait(*made(make_webhook_backend(cfg, runner.io)), sample_order());
  CHECK_FALSE(r.accepted);
  CHECK(r.http_status == 0);
  CHECK_THAT(r.reason, Catch::Contains("certificate has expired"));

  cfg.url = at("wrong_host");
  r = submit_and_wait(*made(make_webhook_backend(cfg, runner.io)), sample_order());
  CHECK_FALSE(r.accepted);
  CHECK_THAT(r.reason, Catch::Contains("hostname mismatch"));
  std::filesystem::remove_all(dir);
}
