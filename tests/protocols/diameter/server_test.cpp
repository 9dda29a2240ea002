// The Diameter server over real loopback sockets: capabilities exchange
// (known/unknown peers, no common application), ACR/CCR answered only after
// the SIM layer's ack, duplicates, overload, error answers, framing errors,
// watchdogs in both directions, DPR in both directions and metrics.

#include "actors/ports.hpp"
#include "protocols/diameter/messages.hpp"
#include "protocols/diameter/requests.hpp"
#include "protocols/diameter/server.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

using namespace imeilock;
using namespace imeilock::diameter;
using namespace std::chrono_literals;
using buf = std::vector<std::uint8_t>;

namespace {

/// A sink that records observations and acks as told: at once, or when released.
class test_sink final : public actors::observation_sink {
public:
  void submit(actors::observation obs, actors::ack_fn done) override {
    std::unique_lock lk{mu_};
    seen.push_back(std::move(obs));
    if (hold || (hold_even && seen.size() % 2 == 0)) {
      held.push_back(std::move(done));
      return;
    }
    auto a = answer;
    lk.unlock();
    done(a);
  }
  void release_all() {
    std::vector<actors::ack_fn> h;
    {
      std::lock_guard lk{mu_};
      h.swap(held);
    }
    for (auto& f : h)
      f(actors::ack::ok);
  }
  std::size_t count() {
    std::lock_guard lk{mu_};
    return seen.size();
  }
  actors::observation at(std::size_t i) {
    std::lock_guard lk{mu_};
    return seen.at(i);
  }

  std::mutex mu_;
  std::vector<actors::observation> seen;
  std::vector<actors::ack_fn> held;
  bool hold = false;
  bool hold_even = false; ///< hold the 2nd, 4th, ... observation; ack the others at once
  actors::ack answer = actors::ack::ok;
};

diameter_config base_config() {
  diameter_config cfg;
  cfg.origin_host = "imeilockd.test";
  cfg.origin_realm = "localdomain";
  cfg.listen = {{"127.0.0.1", 0}};
  cfg.watchdog = 6s;
  cfg.dpr_timeout = 2s;
  cfg.peers = {peer_config{"pgw1.example.net", "example.net", {"127.0.0.1"}},
               peer_config{"far.example.net", "", {"10.9.9.9"}}};
  return cfg;
}

/// The server running on its own io thread.
struct harness {
  explicit harness(diameter_config c = base_config()) : cfg(std::move(c)) {
    server = std::make_unique<diameter_server>(io, cfg, sink, registry);
    REQUIRE(server->start());
    port = server->local_endpoints().at(0).port;
    // Two io threads, as the daemon may run: everything must hold on the server's strand.
    thread = std::thread([this] { io.run(); });
    thread2 = std::thread([this] { io.run(); });
  }
  ~harness() {
    std::promise<void> stopped;
    server->stop([&] { stopped.set_value(); });
    stopped.get_future().wait_for(10s);
    work.reset();
    io.stop();
    thread.join();
    thread2.join();
  }
  /// The value of a metric line starting with `prefix` (e.g. `name{label="x"}`), -1 if absent.
  double metric(const std::string& prefix) {
    const auto text = prometheus::TextSerializer{}.Serialize(registry.Collect());
    const auto at = text.find("\n" + prefix + " ");
    if (at == std::string::npos)
      return -1;
    return std::stod(text.substr(at + prefix.size() + 2));
  }

  diameter_config cfg;
  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
  prometheus::Registry registry;
  test_sink sink;
  std::unique_ptr<diameter_server> server;
  std::uint16_t port = 0;
  std::thread thread;
  std::thread thread2;
};

/// A blocking Diameter peer on a plain socket.
struct peer {
  /// Connects from `from` (any 127.0.0.0/8 address reaches the server on 127.0.0.1).
  explicit peer(std::uint16_t port, const char* from = "127.0.0.1") {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in local{};
    local.sin_family = AF_INET;
    ::inet_pton(AF_INET, from, &local.sin_addr);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) == 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  /// Adopts a connected socket.
  peer(int connected, std::nullptr_t) : fd(connected) {}
  ~peer() { ::close(fd); }
  void send(const buf& b) {
    REQUIRE(::send(fd, b.data(), b.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(b.size()));
  }

  /// Reads exactly n bytes within the deadline; false on timeout or EOF (sets eof).
  bool read_exact(std::uint8_t* p, std::size_t n, std::chrono::steady_clock::time_point deadline) {
    while (n > 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0)
        return false;
      pollfd pf{fd, POLLIN, 0};
      if (::poll(&pf, 1, static_cast<int>(left.count())) <= 0)
        return false;
      const ssize_t r = ::recv(fd, p, n, 0);
      if (r <= 0) {
        eof = true;
        return false;
      }
      p += r;
      n -= static_cast<std::size_t>(r);
    }
    return true;
  }
  /// The next message, or nullopt on timeout/EOF.
  std::optional<buf> recv(std::chrono::milliseconds timeout = 3000ms) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    buf b(4);
    if (!read_exact(b.data(), 4, deadline))
      return std::nullopt;
    const auto len = load_u24(b.data() + 1);
    if (len < header_size)
      return std::nullopt;
    b.resize(len);
    if (!read_exact(b.data() + 4, len - 4, deadline))
      return std::nullopt;
    return b;
  }
  /// True if the server closes the connection within the timeout.
  bool closed_within(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::uint8_t tmp[4096];
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd pf{fd, POLLIN, 0};
      if (::poll(&pf, 1, 100) > 0) {
        const ssize_t r = ::recv(fd, tmp, sizeof tmp, 0);
        if (r <= 0)
          return true;
      }
    }
    return false;
  }
  /// CER as `host`; returns the CEA's Result-Code.
  std::uint32_t handshake(const std::string& host = "pgw1.example.net",
                          const std::string& realm = "example.net", std::uint32_t auth = 4,
                          std::uint32_t acct = 3) {
    buf cer;
    build_cer(cer, host, realm, auth, acct, 1, 1);
    send(cer);
    auto cea = recv();
    REQUIRE(cea);
    REQUIRE(decode_header(bytes{cea->data(), cea->size()}).command ==
            command::capabilities_exchange);
    return result_of(*cea);
  }
  static std::uint32_t result_of(const buf& m) {
    avp a;
    std::uint32_t v = 0;
    if (find_avp(bytes{m.data(), m.size()}.subspan(header_size), avp_code::result_code, 0, a))
      a.u32(v);
    return v;
  }
  static std::uint32_t u32_of(const buf& m, std::uint32_t code) {
    avp a;
    std::uint32_t v = 0;
    if (find_avp(bytes{m.data(), m.size()}.subspan(header_size), code, 0, a))
      a.u32(v);
    return v;
  }
  int fd = -1;
  bool eof = false;
};

charging_spec acr(std::uint32_t number, std::uint32_t e2e) {
  charging_spec s;
  s.session_id = "pgw1.example.net;42;" + std::to_string(number / 100);
  s.origin_host = "pgw1.example.net";
  s.record_number = number;
  s.imsi = "234150999999999";
  s.msisdn = "447700900123";
  s.form = imei_form::uei_ascii;
  s.imeisv = "3534900123456789";
  s.hop_by_hop = e2e;
  s.end_to_end = e2e;
  return s;
}

buf encode(const charging_spec& s) {
  buf b;
  build_charging_request(b, s);
  return b;
}

} // namespace

TEST_CASE("unknown peer gets CEA 3010 and is closed (RFC 6733 §5.3)", "[diameter][server]") {
  harness h;
  peer p{h.port};
  CHECK(p.handshake("stranger.example.net") == result::unknown_peer);
  CHECK(p.closed_within(2s));
  // A configured peer connecting from an address not in its list is unknown too.
  peer q{h.port};
  CHECK(q.handshake("far.example.net", "x") == result::unknown_peer);
  CHECK(q.closed_within(2s));
  CHECK(h.metric("imeilock_diameter_rejected_connections_total{reason=\"unknown_peer\"}") == 1);
}

TEST_CASE("no common application gets CEA 5010 and is closed", "[diameter][server]") {
  harness h;
  peer p{h.port};
  CHECK(p.handshake("pgw1.example.net", "example.net", 16777251, 0) ==
        result::no_common_application);
  CHECK(p.closed_within(2s));
}

TEST_CASE("anything before CER closes the connection", "[diameter][server]") {
  harness h;
  peer p{h.port};
  p.send(encode(acr(1, 1)));
  CHECK(p.closed_within(2s));
  CHECK(h.metric("imeilock_diameter_discarded_frames_total{reason=\"before_cer\"}") == 1);
}

TEST_CASE("ACR and CCR become observations, answers leave only after the ack",
          "[diameter][server]") {
  harness h;
  h.sink.hold = true;
  peer p{h.port};
  REQUIRE(p.handshake() == result::success);
  CHECK(h.metric("imeilock_diameter_peers{state=\"open\"}") == 1);
  p.send(encode(acr(5, 100)));
  CHECK_FALSE(p.recv(300ms)); // nothing before the SIM layer acknowledges
  REQUIRE(h.sink.count() == 1);
  h.sink.release_all();
  auto aca = p.recv();
  REQUIRE(aca);
  CHECK(peer::result_of(*aca) == 2001);
  CHECK(peer::u32_of(*aca, avp_code::accounting_record_number) == 5);
  CHECK(decode_header(bytes{aca->data(), aca->size()}).end_to_end == 100);
  const auto obs = h.sink.at(0);
  CHECK(obs.imsi == 234150999999999ULL);
  CHECK(obs.msisdn == "447700900123");
  CHECK(obs.imei.status == lock::imei_status::ok);
  CHECK(obs.imei.device == 35349001234567ULL);
  CHECK(obs.source == actors::source_kind::diameter);
  CHECK(obs.peer == "pgw1.example.net");
  CHECK(obs.dedupe_key == record_key("pgw1.example.net;42;0", command::accounting, 5));

  h.sink.hold = false;
  auto ccr = acr(1, 101);
  ccr.command = command::credit_control;
  ccr.record_type = 1;
  ccr.form = imei_form::terminal_information;
  ccr.nested = true;
  p.send(encode(ccr));
  auto cca = p.recv();
  REQUIRE(cca);
  CHECK(peer::result_of(*cca) == 2001);
  CHECK(peer::u32_of(*cca, avp_code::cc_request_type) == 1);
  REQUIRE(h.sink.count() == 2);
  CHECK(h.sink.at(1).imei.device == 35349001234567ULL);
  CHECK(h.metric("imeilock_diameter_answers_total{command=\"ACA\",result_code=\"2001\"}") == 1);
  CHECK(h.metric("imeilock_diameter_processing_seconds_count") == 2);
}

TEST_CASE("a retransmitted record is answered again without a second observation",
          "[diameter][server]") {
  harness h;
  peer p{h.port};
  REQUIRE(p.handshake() == result::success);
  p.send(encode(acr(7, 200)));
  auto first = p.recv();
  REQUIRE(first);
  // RFC 6733 §9.4: same Session-Id + Accounting-Record-Number, T flag, new ids.
  auto again = acr(7, 201);
  again.extra_flags = cmd_flag::retransmit;
  p.send(encode(again));
  auto second = p.recv();
  REQUIRE(second);
  CHECK(peer::result_of(*second) == 2001);
  CHECK(decode_header(bytes{second->data(), second->size()}).hop_by_hop == 201);
  // Same End-to-End id + Origin-Host, different session: also a duplicate.
  auto e2e = acr(9999, 200);
  p.send(encode(e2e));
  REQUIRE(p.recv());
  CHECK(h.sink.count() == 1);
  CHECK(h.metric("imeilock_diameter_duplicates_total{kind=\"answered_from_cache\"}") == 2);
}

TEST_CASE("overload: 3004 DIAMETER_TOO_BUSY with the E bit", "[diameter][server]") {
  SECTION("the SIM layer sheds") {
    harness h;
    h.sink.answer = actors::ack::overloaded;
    peer p{h.port};
    REQUIRE(p.handshake() == result::success);
    p.send(encode(acr(1, 1)));
    auto a = p.recv();
    REQUIRE(a);
    CHECK(peer::result_of(*a) == 3004);
    CHECK(((*a)[4] & cmd_flag::error) != 0);
    // Not cached: a retry after the overload goes to the SIM layer again.
    h.sink.answer = actors::ack::ok;
    p.send(encode(acr(1, 2)));
    auto b = p.recv();
    REQUIRE(b);
    CHECK(peer::result_of(*b) == 2001);
    CHECK(h.sink.count() == 2);
  }
  SECTION("too many requests pending on one connection") {
    auto cfg = base_config();
    cfg.limits.max_pending_per_connection = 2;
    harness h{cfg};
    h.sink.hold = true;
    peer p{h.port};
    REQUIRE(p.handshake() == result::success);
    for (std::uint32_t i = 1; i <= 3; ++i)
      p.send(encode(acr(i, i)));
    auto a = p.recv();
    REQUIRE(a);
    CHECK(peer::result_of(*a) == 3004);
    CHECK(decode_header(bytes{a->data(), a->size()}).end_to_end == 3);
    // The 3004 leaves as soon as the third is read; the first two reach the
    // sink with the read batch (submit_many), possibly a moment later.
    for (int i = 0; i < 300 && h.sink.count() < 2; ++i)
      std::this_thread::sleep_for(10ms);
    REQUIRE(h.sink.count() == 2);
    h.sink.release_all();
    CHECK(p.recv());
    CHECK(p.recv());
  }
}

TEST_CASE("one read's ACRs acked inside submit_many and later from another thread: each "
          "answered once",
          "[diameter][server]") {
  // The SIM layer may answer an unchanged observation inside submit_many, on
  // the server's own strand (the answer goes out when the read batch ends), and
  // the others later from its threads: both paths on one connection, one read.
  harness h;
  h.sink.hold_even = true;
  peer p{h.port};
  REQUIRE(p.handshake() == result::success);
  constexpr std::uint32_t n = 40;
  buf all;
  for (std::uint32_t i = 1; i <= n; ++i) {
    const buf b = encode(acr(1000 + i, 500 + i));
    all.insert(all.end(), b.begin(), b.end());
  }
  p.send(all); // one send: the server reads them in one or a few reads
  std::map<std::uint32_t, int> answered;
  auto take = [&](std::size_t want) {
    while (answered.size() < want) {
      auto a = p.recv(2000ms);
      if (!a)
        return;
      CHECK(peer::result_of(*a) == 2001);
      const auto e2e = decode_header(bytes{a->data(), a->size()}).end_to_end;
      ++answered[e2e];
      CHECK(peer::u32_of(*a, avp_code::accounting_record_number) == 1000 + e2e - 500);
    }
  };
  take(n / 2);
  CHECK(answered.size() == n / 2); // the inline half, without waiting for the held half
  CHECK_FALSE(p.recv(200ms));
  REQUIRE(h.sink.count() == n);
  h.sink.release_all(); // from this thread, as the SIM layer's threads do
  take(n);
  REQUIRE(answered.size() == n);
  for (const auto& [e2e, times] : answered) {
    CHECK(e2e > 500);
    CHECK(e2e <= 500 + n);
    CHECK(times == 1);
  }
  CHECK_FALSE(p.recv(200ms)); // no second answer to anything
  CHECK(h.metric("imeilock_diameter_answers_total{command=\"ACA\",result_code=\"2001\"}") == n);
}

TEST_CASE("errors over the wire: 5005, 3001, 3007, 3008 keep the connection",
          "[diameter][server]") {
  harness h;
  peer p{h.port};
  REQUIRE(p.handshake() == result::success);
  // 5005: no Accounting-Record-Number.
  {
    charging_spec s = acr(1, 1);
    buf b;
    message_writer w{b};
    w.begin(cmd_flag::request | cmd_flag::proxiable, command::accounting, application::accounting,
            1, 1);
    w.add_string(avp_code::session_id, s.session_id);
    w.add_string(avp_code::origin_host, s.origin_host);
    w.add_string(avp_code::origin_realm, s.origin_realm);
    w.add_string(avp_code::destination_realm, s.destination_realm);
    w.add_u32(avp_code::accounting_record_type, 2);
    w.finish();
    p.send(b);
    auto a = p.recv();
    REQUIRE(a);
    CHECK(peer::result_of(*a) == result::missing_avp);
    avp f, in;
    REQUIRE(find_avp(bytes{a->data(), a->size()}.subspan(header_size), avp_code::failed_avp, 0, f));
    REQUIRE(find_avp(f.data, avp_code::accounting_record_number, 0, in));
    CHECK(in.data.size() == 4);
  }
  // 3001: command 258 (RAR) in application 3.
  {
    buf b = encode(acr(2, 2));
    store_u24(b.data() + 5, 258);
    p.send(b);
    auto a = p.recv();
    REQUIRE(a);
    CHECK(peer::result_of(*a) == result::command_unsupported);
    CHECK(((*a)[4] & cmd_flag::error) != 0);
  }
  // 3007: an application we do not serve.
  {
    buf b = encode(acr(3, 3));
    store_u32(b.data() + 8, 16777238);
    p.send(b);
    auto a = p.recv();
    REQUIRE(a);
    CHECK(peer::result_of(*a) == result::application_unsupported);
  }
  // 3008: E bit on a request.
  {
    buf b = encode(acr(4, 4));
    b[4] |= cmd_flag::error;
    p.send(b);
    auto a = p.recv();
    REQUIRE(a);
    CHECK(peer::result_of(*a) == result::invalid_hdr_bits);
  }
  p.send(encode(acr(5, 5)));
  auto ok = p.recv();
  REQUIRE(ok);
  CHECK(peer::result_of(*ok) == 2001);
  CHECK(h.sink.count() == 1);
}

TEST_CASE("framing errors close the connection and are counted", "[diameter][server]") {
  harness h;
  SECTION("bad version") {
    peer p{h.port};
    REQUIRE(p.handshake() == result::success);
    buf b = encode(acr(1, 1));
    b[0] = 2;
    p.send(b);
    CHECK(p.closed_within(2s));
    CHECK(h.metric("imeilock_diameter_discarded_frames_total{reason=\"bad_version\"}") == 1);
  }
  SECTION("length not a multiple of 4") {
    peer p{h.port};
    REQUIRE(p.handshake() == result::success);
    buf b = encode(acr(1, 1));
    store_u24(b.data() + 1, static_cast<std::uint32_t>(b.size() + 2));
    p.send(b);
    CHECK(p.closed_within(2s));
    CHECK(h.metric("imeilock_diameter_discarded_frames_total{reason=\"bad_length\"}") == 1);
  }
  SECTION("oversize frame: refused from its header, nothing allocated for it") {
    peer p{h.port};
    REQUIRE(p.handshake() == result::success);
    buf b = {1, 0xff, 0xff, 0xfc, 0x80, 0, 1, 15, 0, 0, 0, 3};
    p.send(b);
    CHECK(p.closed_within(2s));
    CHECK(h.metric("imeilock_diameter_discarded_frames_total{reason=\"too_long\"}") == 1);
  }
  SECTION("truncated frame then the peer goes away: nothing answered, no crash") {
    {
      peer p{h.port};
      REQUIRE(p.handshake() == result::success);
      buf b = encode(acr(1, 1));
      b.resize(b.size() / 2);
      p.send(b);
      CHECK_FALSE(p.recv(300ms));
    }
    peer q{h.port};
    CHECK(q.handshake() == result::success);
    CHECK(h.sink.count() == 0);
  }
  SECTION("a large valid frame split in many writes is reassembled") {
    peer p{h.port};
    REQUIRE(p.handshake() == result::success);
    auto s = acr(1, 1);
    s.session_id.append(30000, 'x');
    buf b = encode(s);
    for (std::size_t off = 0; off < b.size(); off += 1000) {
      p.send(buf(b.begin() + static_cast<std::ptrdiff_t>(off),
                 b.begin() + static_cast<std::ptrdiff_t>(std::min(off + 1000, b.size()))));
    }
    auto a = p.recv();
    REQUIRE(a);
    CHECK(peer::result_of(*a) == 2001);
  }
}

TEST_CASE("DWR from the peer is answered, DPR from the peer gets DPA", "[diameter][server]") {
  harness h;
  peer p{h.port};
  REQUIRE(p.handshake() == result::success);
  local_identity them;
  them.origin_host = "pgw1.example.net";
  them.origin_realm = "example.net";
  buf dwr;
  build_dwr(dwr, them, 77, 78);
  p.send(dwr);
  auto dwa = p.recv();
  REQUIRE(dwa);
  CHECK(classify(decode_header(bytes{dwa->data(), dwa->size()})) == message_kind::dwa);
  CHECK(peer::result_of(*dwa) == 2001);
  buf dpr;
  build_dpr(dpr, them, 79, 80, disconnect_cause::rebooting);
  p.send(dpr);
  auto dpa = p.recv();
  REQUIRE(dpa);
  CHECK(classify(decode_header(bytes{dpa->data(), dpa->size()})) == message_kind::dpa);
  CHECK(p.closed_within(4s)); // we close if the DPR sender does not
}

TEST_CASE("a peer that stops answering watchdogs is declared down and closed (RFC 3539)",
          "[diameter][server][slow]") {
  harness h; // Tw = 6 s, jittered +-2 s
  peer p{h.port};
  REQUIRE(p.handshake() == result::success);
  const auto t0 = std::chrono::steady_clock::now();
  auto dwr = p.recv(10s);
  REQUIRE(dwr);
  const auto hdr = decode_header(bytes{dwr->data(), dwr->size()});
  CHECK(hdr.is_request());
  CHECK(hdr.command == command::device_watchdog);
  CHECK(std::chrono::steady_clock::now() - t0 >= 3900ms);
  // Do not answer it.
  CHECK(p.closed_within(9s));
  CHECK(h.metric("imeilock_diameter_watchdog_failures_total") == 1);
  CHECK(h.metric("imeilock_diameter_peers{state=\"down\"}") == 2);
}

TEST_CASE("a peer answering watchdogs stays up", "[diameter][server][slow]") {
  harness h;
  peer p{h.port};
  REQUIRE(p.handshake() == result::success);
  local_identity them;
  them.origin_host = "pgw1.example.net";
  them.origin_realm = "example.net";
  for (int i = 0; i < 2; ++i) {
    auto dwr = p.recv(10s);
    REQUIRE(dwr);
    const auto hdr = decode_header(bytes{dwr->data(), dwr->size()});
    REQUIRE(hdr.command == command::device_watchdog);
    buf dwa;
    build_dwa(dwa, hdr, them);
    p.send(dwa);
  }
  p.send(encode(acr(1, 1)));
  auto a = p.recv();
  REQUIRE(a);
  CHECK(peer::result_of(*a) == 2001);
  CHECK(h.metric("imeilock_diameter_watchdog_failures_total") == 0);
}

TEST_CASE("stop() sends DPR (REBOOTING), answers pending requests first, and completes",
          "[diameter][server]") {
  auto h = std::make_unique<harness>();
  h->sink.hold = true;
  peer p{h->port};
  REQUIRE(p.handshake() == result::success);
  p.send(encode(acr(1, 1)));
  for (int i = 0; i < 50 && h->sink.count() == 0; ++i)
    std::this_thread::sleep_for(10ms);
  REQUIRE(h->sink.count() == 1);
  std::promise<void> stopped;
  auto fut = stopped.get_future();
  h->server->stop([&] { stopped.set_value(); });
  CHECK_FALSE(p.recv(200ms)); // the pending ACR is answered before the DPR
  h->sink.release_all();
  auto aca = p.recv();
  REQUIRE(aca);
  CHECK(peer::result_of(*aca) == 2001);
  auto dpr = p.recv();
  REQUIRE(dpr);
  const auto hdr = decode_header(bytes{dpr->data(), dpr->size()});
  CHECK(hdr.command == command::disconnect_peer);
  CHECK(hdr.is_request());
  CHECK(peer::u32_of(*dpr, avp_code::disconnect_cause) == disconnect_cause::rebooting);
  local_identity them;
  them.origin_host = "pgw1.example.net";
  them.origin_realm = "example.net";
  buf dpa;
  build_dpa(dpa, hdr, them);
  p.send(dpa);
  CHECK(fut.wait_for(3s) == std::future_status::ready);
  CHECK(p.closed_within(2s));
}

TEST_CASE("start() names the address it cannot bind", "[diameter][server]") {
  harness h;
  auto cfg = base_config();
  cfg.listen = {{"127.0.0.1", h.port}};
  boost::asio::io_context io;
  prometheus::Registry reg;
  test_sink sink;
  diameter_server second{io, cfg, sink, reg};
  const auto started = second.start();
  REQUIRE_FALSE(started);
  CHECK(started.error() == sys_ec::listen_failed);
  CHECK(started.error().message().find("127.0.0.1:" + std::to_string(h.port)) != std::string::npos);
}

TEST_CASE("IPv6 listener", "[diameter][server]") {
  auto cfg = base_config();
  cfg.listen = {{"::1", 0}};
  cfg.peers = {peer_config{"pgw1.example.net", "", {"::1"}}};
  harness h{cfg};
  const int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(h.port);
  a.sin6_addr = in6addr_loopback;
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  peer p{fd, nullptr};
  CHECK(p.handshake() == result::success);
}

TEST_CASE("a retransmission while the original is with the SIM layer causes no second observation",
          "[diameter][server]") {
  harness h;
  h.sink.hold = true;
  peer p{h.port};
  REQUIRE(p.handshake() == result::success);
  p.send(encode(acr(3, 300)));
  auto again = acr(3, 301);
  again.extra_flags = cmd_flag::retransmit;
  p.send(encode(again));
  CHECK_FALSE(p.recv(300ms));
  CHECK(h.sink.count() == 1);
  h.sink.release_all();
  auto a = p.recv();
  REQUIRE(a);
  CHECK(decode_header(bytes{a->data(), a->size()}).hop_by_hop == 300);
  CHECK(h.metric("imeilock_diameter_duplicates_total{kind=\"in_flight\"}") == 1);
  // Once answered, the retransmission gets the cached answer.
  p.send(encode(again));
  auto b = p.recv();
  REQUIRE(b);
  CHECK(decode_header(bytes{b->data(), b->size()}).hop_by_hop == 301);
  CHECK(h.sink.count() == 1);
}

TEST_CASE("reload: a peer removed from the configuration gets DPR and new CERs from it are refused",
          "[diameter][server]") {
  harness h;
  peer p{h.port};
  REQUIRE(p.handshake() == result::success);
  auto cfg = base_config();
  cfg.peers = {peer_config{"other.example.net", "", {}}};
  h.server->reload(cfg);
  auto dpr = p.recv();
  REQUIRE(dpr);
  const auto hdr = decode_header(bytes{dpr->data(), dpr->size()});
  CHECK(hdr.command == command::disconnect_peer);
  CHECK(peer::u32_of(*dpr, avp_code::disconnect_cause) ==
        disconnect_cause::do_not_want_to_talk_to_you);
  peer q{h.port};
  CHECK(q.handshake() == result::unknown_peer);
  peer r{h.port};
  CHECK(r.handshake("other.example.net", "anything") == result::success);
}

TEST_CASE("an observation without IMSI is answered and not handed over", "[diameter][server]") {
  harness h;
  peer p{h.port};
  REQUIRE(p.handshake() == result::success);
  auto s = acr(1, 1);
  s.imsi.clear();
  p.send(encode(s));
  auto a = p.recv();
  REQUIRE(a);
  CHECK(peer::result_of(*a) == 2001);
  CHECK(h.sink.count() == 0);
  CHECK(h.metric("imeilock_diameter_observations_total{imei=\"no_imsi\"}") == 1);
}

TEST_CASE("max_connections idle connections from unknown addresses do not keep a configured peer "
          "out (issue 9)",
          "[diameter][server]") {
  auto cfg = base_config();
  cfg.limits.max_connections = 8;
  cfg.cer_timeout = 20s; // eviction, not the CER timeout, frees the slots here
  harness h{cfg};
  auto wait_connections = [&](double n) {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (h.metric("imeilock_diameter_connections{state=\"wait_cer\"}") +
              h.metric("imeilock_diameter_connections{state=\"open\"}") ==
          n)
        return true;
      std::this_thread::sleep_for(5ms);
    }
    return false;
  };
  std::vector<std::unique_ptr<peer>> idle;
  for (int i = 0; i < 8; ++i) {
    idle.push_back(std::make_unique<peer>(h.port, "127.0.0.2"));
    REQUIRE(wait_connections(i + 1)); // accepted in this order: idle[0] is the oldest
  }

  // The configured peer connects (its address is 127.0.0.1): the oldest
  // unknown connection waiting for CER makes room.
  peer pgw{h.port};
  CHECK(idle[0]->closed_within(2s));
  // More strangers take each other's slots, never the configured peer's,
  // even before it has sent its CER.
  for (int i = 0; i < 3; ++i)
    idle.push_back(std::make_unique<peer>(h.port, "127.0.0.3"));
  CHECK(idle[1]->closed_within(2s));
  CHECK(idle[3]->closed_within(2s));
  CHECK(pgw.handshake() == result::success);
  pgw.send(encode(acr(7, 700)));
  auto aca = pgw.recv();
  REQUIRE(aca);
  CHECK(peer::result_of(*aca) == 2001);
  CHECK(h.metric("imeilock_diameter_rejected_connections_total{reason=\"evicted_in_cer_wait\"}") ==
        4);

  CHECK(h.metric("imeilock_diameter_rejected_connections_total{reason=\"connection_limit\"}") ==
        -1);
}

TEST_CASE("open peers are never evicted: with every slot past CER a newcomer is refused",
          "[diameter][server]") {
  auto cfg = base_config();
  cfg.limits.max_connections = 2;
  harness h{cfg};
  peer a{h.port};
  REQUIRE(a.handshake() == result::success);
  peer b{h.port};
  REQUIRE(b.handshake() == result::success);
  peer stranger{h.port, "127.0.0.2"};
  CHECK(stranger.closed_within(2s));
  CHECK(h.metric("imeilock_diameter_rejected_connections_total{reason=\"connection_limit\"}") == 1);
  CHECK(h.metric("imeilock_diameter_rejected_connections_total{reason=\"evicted_in_cer_wait\"}") ==
        -1);
  // Both peers are still served.
  a.send(encode(acr(1, 1)));
  b.send(encode(acr(2, 2)));
  auto aa = a.recv();
  auto ab = b.recv();
  REQUIRE(aa);
  REQUIRE(ab);
  CHECK(peer::result_of(*aa) == 2001);
  CHECK(peer::result_of(*ab) == 2001);
}
