// The one HTTP client (common/http_client) against a real HTTP/1.1 server on
// loopback (tests/common/http_test_server.py): what goes on the wire, 2xx and
// other statuses, keep-alive and the retry on a connection the server closed,
// the timeout, a refused connection, the body limit, cancel.

#include "common/http_client.hpp"
#include "tests/common/child_process.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <future>
#include <thread>

using namespace imeilock;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

/// The Python server, stopped at scope exit.
struct test_server {
  test::child_process child{{IMEILOCK_PYTHON, IMEILOCK_HTTP_TEST_SERVER}};
  std::string port;
  test_server() {
    REQUIRE(child.running());
    auto line = child.read_line(10s);
    REQUIRE(line);
    port = *line;
  }
  http::url url(const std::string& target = "/") const {
    auto u = http::parse_url("http://127.0.0.1:" + port + target);
    REQUIRE(u);
    return *u;
  }
};

/// An io_context run by one thread for the test's duration.
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

/// A loopback port nobody listens on: bind one, note it, close it.
std::string closed_port() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor a{io, {boost::asio::ip::make_address("127.0.0.1"), 0}};
  return std::to_string(a.local_endpoint().port());
}

http::options with_timeout(std::chrono::milliseconds t) {
  http::options o;
  o.timeout = t;
  return o;
}

/// async_send and wait (bounded) for the answer.
http::response send_and_wait(boost::asio::io_context& io, const http::url& to, http::request req,
                             const http::options& opt = {}) {
  auto promise = std::make_shared<std::promise<http::response>>();
  auto future = promise->get_future();
  http::async_send(io, to, std::move(req), opt,
                   [promise](http::response r) { promise->set_value(std::move(r)); });
  REQUIRE(future.wait_for(20s) == std::future_status::ready);
  return future.get();
}

} // namespace

TEST_CASE("client: the request goes out with Host, User-Agent, headers and body", "[http_client]") {
  test_server server;
  http::client c{server.url()};
  auto r = c.send({"POST",
                   "/echo?x=1",
                   {{"Content-Type", "application/json"}, {"X-Extra", "1"}},
                   R"({"a":1})"});
  REQUIRE(r.status == 200);
  CHECK(r.ok());
  CHECK(r.failed == http::failure::none);
  CHECK(r.error.empty());
  CHECK(r.content_type == "application/json");
  CHECK(r.header("x-test-server") == "yes");
  CHECK(r.header("X-TEST-SERVER") == "yes");
  CHECK(r.header("X-Absent").empty());
  auto j = json::parse(r.body);
  CHECK(j["method"] == "POST");
  CHECK(j["path"] == "/echo?x=1");
  CHECK(j["body"] == R"({"a":1})");
  CHECK(j["headers"]["host"] == "127.0.0.1:" + server.port);
  CHECK(j["headers"]["user-agent"] == "imeilockd");
  CHECK(j["headers"]["content-type"] == "application/json");
  CHECK(j["headers"]["content-length"] == "7");
  CHECK(j["headers"]["x-extra"] == "1");
  CHECK_FALSE(j["headers"].contains("connection")); // kept alive: HTTP/1.1's default
}

TEST_CASE("client: an empty target means the URL's own", "[http_client]") {
  test_server server;
  http::client c{server.url("/echo/from-url")};
  auto r = c.send({"GET", {}, {}, {}});
  REQUIRE(r.status == 200);
  CHECK(json::parse(r.body)["path"] == "/echo/from-url");
}

TEST_CASE("client: a non-2xx status is an answer, not a failure", "[http_client]") {
  test_server server;
  http::client c{server.url()};
  auto r = c.send({"GET", "/status/503", {}, {}});
  CHECK(r.status == 503);
  CHECK_FALSE(r.ok());
  CHECK(r.failed == http::failure::none);
  CHECK(r.error.empty());
  CHECK(r.body == R"({"ok":false})");
  CHECK(c.send({"GET", "/status/404", {}, {}}).status == 404);
  CHECK(c.send({"GET", "/status/204", {}, {}}).ok());
}

TEST_CASE("client: the connection is kept, and replaced once when the server closed it",
          "[http_client]") {
  test_server server;
  http::client c{server.url()};
  auto first = json::parse(c.send({"GET", "/echo", {}, {}}).body);
  auto second = json::parse(c.send({"GET", "/echo", {}, {}}).body);
  CHECK(first["peer_port"] == second["peer_port"]);
  // /drop answers as if kept alive, then closes: the next request finds the
  // kept connection dead and goes out again on a new one.
  REQUIRE(c.send({"GET", "/drop", {}, {}}).status == 200);
  std::this_thread::sleep_for(50ms); // let the FIN arrive
  auto r = c.send({"GET", "/echo", {}, {}});
  REQUIRE(r.status == 200);
  CHECK(json::parse(r.body)["peer_port"] != first["peer_port"]);
}

TEST_CASE("client: a slow server trips the timeout", "[http_client][timeout]") {
  test_server server;
  http::client c{server.url(), with_timeout(300ms)};
  auto start = std::chrono::steady_clock::now();
  auto r = c.send({"GET", "/slow/3000", {}, {}});
  auto took = std::chrono::steady_clock::now() - start;
  CHECK(r.status == 0);
  CHECK(r.failed == http::failure::timeout);
  CHECK(r.error == "timeout after 300ms");
  CHECK(took >= 290ms);
  CHECK(took < 2500ms);
  // The client is usable again afterwards, on a new connection.
  CHECK(c.send({"GET", "/echo", {}, {}}).status == 200);
}

TEST_CASE("client: a refused connection fails with the reason", "[http_client]") {
  auto u = http::parse_url("http://127.0.0.1:" + closed_port() + "/");
  REQUIRE(u);
  http::client c{*u, with_timeout(2s)};
  auto r = c.send({"GET", "/", {}, {}});
  CHECK(r.status == 0);
  CHECK(r.failed == http::failure::connect);
  CHECK_THAT(r.error, Catch::StartsWith("connect: "));
  CHECK_THAT(r.error, Catch::Contains("refused"));
}

TEST_CASE("client: a body over the limit fails the exchange", "[http_client]") {
  test_server server;
  http::options opt;
  opt.body_limit = 1000;
  http::client c{server.url(), opt};
  CHECK(c.send({"GET", "/big/1000", {}, {}}).body.size() == 1000);
  auto r = c.send({"GET", "/big/1001", {}, {}});
  CHECK(r.status == 0);
  CHECK(r.failed == http::failure::receive);
  CHECK_THAT(r.error, Catch::StartsWith("read answer: "));
}

TEST_CASE("async_send: many requests at once each get their answer, on a fresh connection",
          "[http_client][async]") {
  test_server server;
  io_thread t;
  constexpr int n = 20;
  std::vector<std::future<http::response>> futures;
  for (int i = 0; i < n; ++i) {
    auto promise = std::make_shared<std::promise<http::response>>();
    futures.push_back(promise->get_future());
    http::async_send(t.io, server.url("/echo"),
                     {"POST", "/echo/" + std::to_string(i), {}, std::to_string(i)}, {},
                     [promise](http::response r) { promise->set_value(std::move(r)); });
  }
  for (int i = 0; i < n; ++i) {
    REQUIRE(futures[i].wait_for(20s) == std::future_status::ready);
    auto r = futures[i].get();
    REQUIRE(r.status == 200);
    auto j = json::parse(r.body);
    CHECK(j["path"] == "/echo/" + std::to_string(i));
    CHECK(j["body"] == std::to_string(i));
    CHECK(j["headers"]["connection"] == "close");
  }
}

TEST_CASE("async_send: non-2xx, timeout and refused connection", "[http_client][async]") {
  test_server server;
  io_thread t;
  auto r = send_and_wait(t.io, server.url(), {"POST", "/status/500", {}, "x"});
  CHECK(r.status == 500);
  CHECK(r.failed == http::failure::none);

  auto start = std::chrono::steady_clock::now();
  r = send_and_wait(t.io, server.url(), {"POST", "/slow/3000", {}, {}}, with_timeout(300ms));
  CHECK(std::chrono::steady_clock::now() - start < 2500ms);
  CHECK(r.failed == http::failure::timeout);
  CHECK(r.error == "timeout after 300ms");

  auto refused = http::parse_url("http://127.0.0.1:" + closed_port() + "/");
  REQUIRE(refused);
  r = send_and_wait(t.io, *refused, {"POST", {}, {}, {}}, with_timeout(2s));
  CHECK(r.failed == http::failure::connect);
  CHECK_THAT(r.error, Catch::Contains("refused"));
}

TEST_CASE("async_send: cancel ends the exchange at once, done runs once", "[http_client][async]") {
  test_server server;
  io_thread t;
  auto calls = std::make_shared<std::atomic<int>>(0);
  auto promise = std::make_shared<std::promise<http::response>>();
  auto future = promise->get_future();
  auto start = std::chrono::steady_clock::now();
  auto handle = http::async_send(t.io, server.url("/slow/3000"), {"GET", {}, {}, {}},
                                 with_timeout(10s), [promise, calls](http::response r) {
                                   if (calls->fetch_add(1) == 0)
                                     promise->set_value(std::move(r));
                                 });
  std::this_thread::sleep_for(100ms);
  handle->cancel();
  handle->cancel();
  REQUIRE(future.wait_for(5s) == std::future_status::ready);
  auto r = future.get();
  CHECK(std::chrono::steady_clock::now() - start < 2s);
  CHECK(r.failed == http::failure::cancelled);
  CHECK(r.error == "cancelled");
  std::this_thread::sleep_for(100ms);
  CHECK(calls->load() == 1);
}
