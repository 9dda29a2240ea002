// The one HTTP client (common/http_client) against a real HTTP/1.1 server on
// loopback (tests/common/http_test_server.py): what goes on the wire, 2xx and
// other statuses, keep-alive and the retry on a connection the server closed,
// the timeout, a refused connection, the body limit, cancel; and https
// against the same server wrapped in TLS with throwaway certificates made at
// test time (good, wrong hostname, expired, unknown CA, client certificate).

#include "common/http_client.hpp"
#include "tests/common/child_process.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
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

/// The same server over https on four ports (see http_test_server.py --tls),
/// its certificates in a fresh directory removed at scope exit.
/// A fresh directory under the temporary one.
std::string make_temp_dir() {
  std::string templ = (std::filesystem::temp_directory_path() / "imeilock-tls-XXXXXX").string();
  if (mkdtemp(templ.data()) == nullptr)
    FAIL("mkdtemp failed");
  return templ;
}

struct tls_server {
  std::string dir = make_temp_dir();
  test::child_process child{{IMEILOCK_PYTHON, IMEILOCK_HTTP_TEST_SERVER, "--tls", dir}};
  json ports;
  tls_server() {
    REQUIRE(child.running());
    auto line = child.read_line(30s);
    REQUIRE(line);
    ports = json::parse(*line);
  }
  ~tls_server() { std::filesystem::remove_all(dir); }
  tls_server(const tls_server&) = delete;
  tls_server& operator=(const tls_server&) = delete;
  /// https://HOST:<port of `which`>TARGET
  http::url url(const std::string& which, const std::string& host = "127.0.0.1",
                const std::string& target = "/echo") const {
    auto u = http::parse_url("https://" + host + ":" + std::to_string(ports.at(which).get<int>()) +
                             target);
    REQUIRE(u);
    return *u;
  }
  std::string file(const std::string& name) const { return dir + "/" + name; }
  /// Options trusting the test CA, with the client certificate if asked.
  http::options trusting(bool client_cert = false) const {
    http::tls_files files{file("ca.pem"), "", ""};
    if (client_cert) {
      files.client_cert = file("client.pem");
      files.client_key = file("client.key");
    }
    http::options o;
    o.timeout = 10s;
    auto tls = http::make_tls_context(files);
    INFO((tls ? std::string{} : tls.error().message()));
    REQUIRE(tls);
    o.tls = std::move(*tls);
    return o;
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
http::response send_and_wait(boost::asio::io_context& io, const http::url& to,
                             const http::request& req, const http::options& opt = {}) {
  auto promise = std::make_shared<std::promise<http::response>>();
  auto future = promise->get_future();
  http::async_send(io, to, req, opt,
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

TEST_CASE("https: a certificate from the configured CA is accepted, by address and by name",
          "[http_client][tls]") {
  tls_server server;
  for (const std::string host : {"127.0.0.1", "localhost"}) {
    INFO(host);
    http::client c{server.url("good", host), server.trusting()};
    auto r = c.send({"POST", {}, {}, "over tls"});
    REQUIRE(r.status == 200);
    auto echo = json::parse(r.body);
    CHECK(echo["body"] == "over tls");
    CHECK(echo["headers"]["host"] == host + ":" + std::to_string(server.ports["good"].get<int>()));
    // The TLS connection is kept like a plain one.
    auto again = c.send({"GET", {}, {}, {}});
    REQUIRE(again.status == 200);
    CHECK(json::parse(again.body)["peer_port"] == echo["peer_port"]);
  }
  io_thread t;
  auto r = send_and_wait(t.io, server.url("good"), {"POST", {}, {}, "x"}, server.trusting());
  CHECK(r.status == 200);
}

TEST_CASE("https: expired, wrong-hostname and unknown-CA certificates fail the handshake, saying "
          "which check failed",
          "[http_client][tls]") {
  tls_server server;
  io_thread t;
  auto opt = server.trusting();

  auto r = send_and_wait(t.io, server.url("expired"), {"POST", {}, {}, "x"}, opt);
  CHECK(r.status == 0);
  CHECK(r.failed == http::failure::tls);
  CHECK_THAT(r.error, Catch::StartsWith("tls handshake with 127.0.0.1:") &&
                          Catch::Contains("certificate has expired"));

  r = send_and_wait(t.io, server.url("wrong_host"), {"POST", {}, {}, "x"}, opt);
  CHECK(r.failed == http::failure::tls);
  CHECK_THAT(r.error, Catch::Contains("hostname mismatch"));
  r = send_and_wait(t.io, server.url("wrong_host", "localhost"), {"POST", {}, {}, "x"}, opt);
  CHECK(r.failed == http::failure::tls);
  CHECK_THAT(r.error, Catch::Contains("hostname mismatch (the certificate is not for localhost)"));

  // The system store does not know the test CA; nor does a file with another CA.
  r = send_and_wait(t.io, server.url("good"), {"POST", {}, {}, "x"}, with_timeout(10s));
  CHECK(r.failed == http::failure::tls);
  CHECK_THAT(r.error, Catch::Contains("unknown CA"));
  http::options other;
  auto other_ca = http::make_tls_context({server.file("other_ca.pem"), "", ""});
  REQUIRE(other_ca);
  other.tls = std::move(*other_ca);
  r = send_and_wait(t.io, server.url("good"), {"POST", {}, {}, "x"}, other);
  CHECK(r.failed == http::failure::tls);
  CHECK_THAT(r.error, Catch::Contains("unknown CA"));

  // The blocking client says the same.
  http::client c{server.url("expired"), opt};
  CHECK_THAT(c.send({"GET", {}, {}, {}}).error, Catch::Contains("certificate has expired"));
}

TEST_CASE("https: a server that requires a client certificate gets it when configured",
          "[http_client][tls]") {
  tls_server server;
  io_thread t;
  auto r = send_and_wait(t.io, server.url("mtls"), {"POST", {}, {}, "x"}, server.trusting(true));
  CHECK(r.status == 200);
  r = send_and_wait(t.io, server.url("mtls"), {"POST", {}, {}, "x"}, server.trusting(false));
  // TLS 1.3: the server refuses after the client's handshake completed, so
  // the client sees the refusal as the server's alert or as the connection
  // closed under the request, whichever comes first.
  CHECK(r.status == 0);
  CHECK((r.failed == http::failure::send || r.failed == http::failure::receive));
  CHECK_THAT(r.error, Catch::Contains("certificate required") || Catch::Contains("Broken pipe") ||
                          Catch::Contains("reset"));
}

TEST_CASE("make_tls_context names the file that is missing or wrong", "[http_client][tls]") {
  tls_server server;
  auto why = [](const http::tls_files& files) {
    auto made = http::make_tls_context(files);
    REQUIRE_FALSE(made);
    CHECK(made.error() == http::ec::bad_tls_files);
    return made.error().message();
  };
  CHECK(why({"/nonexistent/ca.pem", "", ""}) == "ca_file '/nonexistent/ca.pem': cannot read");
  // Not PEM at all.
  CHECK_THAT(why({server.file("serial"), "", ""}),
             Catch::StartsWith("ca_file '" + server.file("serial") + "': "));
  CHECK_THAT(why({"", server.file("client.pem"), server.file("good.key")}),
             Catch::StartsWith("client_key '") && Catch::Contains("mismatch"));
  CHECK_THAT(why({"", server.file("client.key"), server.file("client.key")}),
             Catch::StartsWith("client_cert '"));
  auto made = http::make_tls_context(
      {server.file("ca.pem"), server.file("client.pem"), server.file("client.key")});
  REQUIRE(made);
  CHECK(*made != nullptr);
}
