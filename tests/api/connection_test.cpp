// The API's connection slots (issue 9): clients without a token cannot hold
// the server's slots against an operator, a connection that never completes
// its request head is closed after header_timeout, and one source address
// holds at most max_connections_per_source slots. Raw sockets play the
// unauthenticated clients; the real http_client plays the operator.

#include "api/client.hpp"
#include "server_fixture.hpp"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <regex>
#include <string>
#include <thread>
#include <vector>

using namespace imeilock;
using namespace imeilock::api;
using namespace imeilock::api::test;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

/// A raw TCP connection from a chosen loopback address (127.0.0.0/8 all
/// reach the server on 127.0.0.1, each a different source for the server).
class raw_conn {
public:
  raw_conn(std::uint16_t port, const char* from = "127.0.0.1") {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in local{};
    local.sin_family = AF_INET;
    ::inet_pton(AF_INET, from, &local.sin_addr);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) == 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    ::inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0);
  }
  ~raw_conn() {
    if (fd_ >= 0)
      ::close(fd_);
  }
  raw_conn(raw_conn&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  raw_conn(const raw_conn&) = delete;
  raw_conn& operator=(const raw_conn&) = delete;
  raw_conn& operator=(raw_conn&&) = delete;

  /// False if the server already closed the connection.
  bool send(const std::string& data) {
    return ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size());
  }

  /// True once the server has closed the connection (EOF or reset) within
  /// `timeout`; data the server sent before is skipped.
  bool closed_within(std::chrono::milliseconds timeout) {
    auto deadline = steady::now() + timeout;
    char buf[4096];
    while (steady::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
      if (::poll(&p, 1, static_cast<int>(std::max<long>(left.count(), 1))) <= 0)
        continue;
      auto n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0)
        return true;
    }
    return false;
  }

  /// Reads one answer with a Content-Length body; returns its status, 0 if none.
  unsigned read_answer(std::chrono::milliseconds timeout = 5s) {
    std::string in;
    auto deadline = steady::now() + timeout;
    char buf[4096];
    while (steady::now() < deadline) {
      auto head_end = in.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        std::smatch m;
        std::string head = in.substr(0, head_end);
        std::size_t length = 0;
        if (std::regex_search(head, m, std::regex{"[Cc]ontent-[Ll]ength: *([0-9]+)"}))
          length = std::stoul(m[1]);
        if (in.size() >= head_end + 4 + length)
          return static_cast<unsigned>(std::stoul(in.substr(9, 3)));
      }
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0)
        continue;
      auto n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0)
        return 0;
      in.append(buf, static_cast<std::size_t>(n));
    }
    return 0;
  }

private:
  int fd_ = -1;
};

std::uint16_t port_of(server_fixture& f) {
  return f.server().local_endpoints().front().port;
}

/// The value of one sample in the Prometheus text (0 if absent).
double sample(const std::string& text, const std::string& series) {
  auto at = text.find("\n" + series + " ");
  if (at == std::string::npos)
    return 0;
  return std::stod(text.substr(at + series.size() + 2));
}

/// Waits until `series` reads `n` (admission and eviction are asynchronous
/// to the client's connect).
bool wait_sample(server_fixture& f, const std::string& series, double n,
                 std::chrono::milliseconds timeout = 5s) {
  auto deadline = steady::now() + timeout;
  while (steady::now() < deadline) {
    if (sample(f.metrics(), series) == n)
      return true;
    std::this_thread::sleep_for(5ms);
  }
  INFO(series << " is " << sample(f.metrics(), series) << ", expected " << n);
  return false;
}

/// Waits until the server holds exactly `n` connections.
bool wait_open(server_fixture& f, double n) {
  return wait_sample(f, "imeilock_api_connections", n);
}

const std::string evicted_max =
    R"(imeilock_api_connections_evicted_total{limit="max_connections"})";
const std::string rejected_max =
    R"(imeilock_api_connections_rejected_total{limit="max_connections"})";
const std::string evicted_source = R"(imeilock_api_connections_evicted_total{limit="per_source"})";
const std::string rejected_source =
    R"(imeilock_api_connections_rejected_total{limit="per_source"})";

std::string sim_path() {
  return std::string{"/v1/sims/"} + iccid_a;
}

std::string get_with_token(const std::string& path, const char* token) {
  return "GET " + path + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token + "\r\n\r\n";
}

} // namespace

TEST_CASE("max_connections idle and trickling clients without a token do not keep an operator out",
          "[api][connections]") {
  constexpr std::uint32_t max = 40;
  server_fixture f{[](api_config& cfg) {
    cfg.max_connections = max;
    cfg.max_connections_per_source = 1000;
    cfg.header_timeout = 20s; // so eviction, not the timeout, frees the slots here
  }};
  f.seed_barred_sim();
  auto port = port_of(f);
  std::vector<raw_conn> idle;
  for (std::uint32_t i = 0; i < max; ++i) {
    idle.emplace_back(port, "127.0.0.2");
    // Half of them start a request head and never finish it.
    if (i % 2 == 1)
      REQUIRE(idle.back().send("GET /v1/sims HTTP/1.1\r\nHost: x\r\n"));
    REQUIRE(wait_open(f, i + 1)); // admitted in this order: idle[0] is the oldest
  }

  auto start = steady::now();
  http_client operator_client{f.url(), 5s};
  auto r = operator_client.request("GET", sim_path(), ro_token);
  auto took = std::chrono::duration<double, std::milli>(steady::now() - start).count();
  CHECK(r.status == 200);
  INFO("operator answered in " << took << " ms with " << max << " idle connections open");
  CHECK(took < 2000);
  // The oldest connection without a token made room; the server stays at its limit.
  CHECK(idle[0].closed_within(2s));
  CHECK_FALSE(idle[1].closed_within(100ms));
  CHECK(wait_open(f, max));
  CHECK(sample(f.metrics(), evicted_max) == 1);

  // The operator's connection now carries a valid token: more clients
  // without one evict each other, never it.
  for (int i = 0; i < 5; ++i)
    idle.emplace_back(port, "127.0.0.3");
  CHECK(wait_sample(f, evicted_max, 6));
  CHECK(operator_client.request("GET", sim_path(), ro_token).status == 200);
  CHECK(wait_open(f, max));
  CHECK(sample(f.metrics(), rejected_max) == 0);
}

TEST_CASE("when every slot carries a valid token a new connection is closed at once and counted",
          "[api][connections]") {
  server_fixture f{[](api_config& cfg) {
    cfg.max_connections = 3;
    cfg.max_connections_per_source = 1000;
  }};
  f.seed_barred_sim();
  auto port = port_of(f);
  std::vector<raw_conn> operators;
  for (int i = 0; i < 3; ++i) {
    operators.emplace_back(port);
    REQUIRE(operators.back().send(get_with_token(sim_path(), ro_token)));
    REQUIRE(operators.back().read_answer() == 200);
  }
  raw_conn late{port, "127.0.0.2"};
  CHECK(late.closed_within(2s));
  CHECK(wait_sample(f, rejected_max, 1));
  // The three keep their slots and keep being served.
  for (auto& c : operators) {
    REQUIRE(c.send(get_with_token(sim_path(), ro_token)));
    CHECK(c.read_answer() == 200);
  }
}

TEST_CASE("a connection that does not complete its request head is closed after header_timeout",
          "[api][connections]") {
  server_fixture f{[](api_config& cfg) {
    cfg.header_timeout = 500ms;
    cfg.idle_timeout = 60s;
  }};
  f.seed_barred_sim();
  auto port = port_of(f);
  raw_conn keep_alive{port};
  REQUIRE(keep_alive.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  REQUIRE(keep_alive.read_answer() == 200);
  raw_conn silent{port};
  raw_conn trickle{port};
  auto start = steady::now();

  // One byte every 100 ms: never a complete head, never idle.
  const std::string head = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
  std::size_t sent = 0;
  bool trickle_closed = false;
  while (steady::now() - start < 3s && !trickle_closed) {
    trickle.send(std::string(1, sent < head.size() ? head[sent] : 'y'));
    ++sent;
    trickle_closed = trickle.closed_within(100ms);
  }
  auto trickle_ms = std::chrono::duration<double, std::milli>(steady::now() - start).count();
  CHECK(trickle_closed);
  INFO("trickling client closed after " << trickle_ms << " ms");
  CHECK(trickle_ms >= 400);
  CHECK(trickle_ms < 2500);
  CHECK(silent.closed_within(1s));

  // keep_alive sent a complete request first and has been quiet since, for
  // longer than header_timeout: the keep-alive wait is idle_timeout.
  CHECK_FALSE(keep_alive.closed_within(500ms));
  // Its next head, once started, has header_timeout again.
  REQUIRE(keep_alive.send(get_with_token(sim_path(), ro_token)));
  CHECK(keep_alive.read_answer() == 200);
  REQUIRE(keep_alive.send("GET /healthz HTTP/1.1\r\n"));
  CHECK(keep_alive.closed_within(2s));

  CHECK(wait_sample(f, "imeilock_api_header_timeouts_total", 3));
}

TEST_CASE(
    "one source holds at most max_connections_per_source slots, an operator from it still gets in",
    "[api][connections]") {
  server_fixture f{[](api_config& cfg) {
    cfg.max_connections = 100;
    cfg.max_connections_per_source = 5;
    cfg.header_timeout = 20s;
  }};
  f.seed_barred_sim();
  auto port = port_of(f);
  std::vector<raw_conn> crowd;
  for (int i = 0; i < 5; ++i) {
    crowd.emplace_back(port, "127.0.0.2");
    REQUIRE(wait_open(f, i + 1));
  }
  // A sixth from the same source: its oldest slot without a token goes.
  crowd.emplace_back(port, "127.0.0.2");
  CHECK(crowd[0].closed_within(2s));
  CHECK(wait_open(f, 5));
  CHECK(sample(f.metrics(), evicted_source) == 1);

  // Another source is not limited by the first one's slots.
  std::vector<raw_conn> others;
  for (int i = 0; i < 5; ++i)
    others.emplace_back(port, "127.0.0.3");
  CHECK(wait_open(f, 10));
  for (auto& c : others)
    CHECK_FALSE(c.closed_within(20ms));

  // An operator sharing the crowded address is served (it takes a slot of
  // the crowd), and once five connections with a token hold the source's
  // slots, a sixth connection from it is closed at once.
  std::vector<raw_conn> ops;
  for (int i = 0; i < 5; ++i) {
    ops.emplace_back(port, "127.0.0.2");
    REQUIRE(ops.back().send(get_with_token(sim_path(), rw_token)));
    CHECK(ops.back().read_answer() == 200);
  }
  for (std::size_t i = 1; i < crowd.size(); ++i)
    CHECK(crowd[i].closed_within(2s));
  raw_conn sixth{port, "127.0.0.2"};
  CHECK(sixth.closed_within(2s));
  CHECK(wait_sample(f, evicted_source, 6));
  CHECK(wait_sample(f, rejected_source, 1));
  for (auto& c : ops) {
    REQUIRE(c.send(get_with_token(sim_path(), rw_token)));
    CHECK(c.read_answer() == 200);
  }
}
