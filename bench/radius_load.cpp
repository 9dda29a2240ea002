// RADIUS accounting load generator (a benchmark, not a test).
//
// Precomputes one Interim-Update per SIM (>= 100,000 distinct IMSIs with
// 3GPP-IMSI/IMEISV VSAs, as a PGW sends them), then keeps a sliding window
// of requests outstanding for a bounded time, batching with sendmmsg and
// recvmmsg over several source sockets, and reports requests/s and latency
// percentiles. The same generator drives imeilockd and FreeRADIUS
// (bench/radius_vs_freeradius.sh).
//
//   radius_load --target 127.0.0.1:1813 [--secret testing123] [--sims 100000]
//               [--window 64] [--seconds 10] [--warmup 1] [--sockets 8]
//               [--imei-change-percent 0] [--seed 1] [--rate 0] [--timeout 1]
//               [--interval 0] [--record-acked FILE] [--first-sim 0]
//               [--requests 0] [--verify 1]
//
// Every send is a distinct packet: Acct-Input-Octets grows per send and the
// Request Authenticator is recomputed, so a server's RFC 5080 response cache
// never answers for the SIM layer (a SIM comes round again every --sims
// requests, well inside a 10 s duplicate window). --imei-change-percent P:
// each send flips, with probability P/100, the SIM between two IMEIs (serial
// i and i+500000), so about P% of observations change the IMEI; 0 (the
// default) = IMEIs unchanged, the common steady state. Any P from 0 to 100;
// the measured share is printed as changes_pct next to the rate.
//
// --rate R: open loop, R requests/s whatever the server answers (a server
// that sheds leaves requests unanswered; they hold their Identifier until
// --timeout); the window is then only bounded by the Identifiers free
// (256 per socket, --sockets up to 256). A send due while none is free is
// counted as `skipped`. --interval S: a line every S seconds with that
// interval's rate and latency percentiles. --record-acked FILE: every change
// moves the SIM to a new IMEI (TAC 86xxxxxx numbered per SIM, never seen
// before) instead of flipping between two, and each answered request that
// carried a SIM's newest IMEI appends "<imsi> <14-digit IMEI>" to FILE: the
// acknowledged changes, to be found in the store afterwards. Every answer is
// then checked against its request's authenticator; an answer to an earlier
// request on a reused Identifier counts as `stale`, not as an answer.
//
// --first-sim F: the SIMs are F .. F + sims - 1 (IMSI 234150000000000 + i).
//
// --requests N: send exactly N requests (no warm-up), wait for their answers
// (or --timeout), and stop: a fixed amount of work for bench/instructions.sh;
// the rate is then over the time it took. --verify 0: check no answer (for a
// server that is not RADIUS, the UDP echo of bench/udp_echo_server.cpp);
// every datagram back on an Identifier answers it.
//
// Last line: "RESULT rate=<req/s> changes_pct=.. p50_us=.. p99_us=.. p999_us=.. lost=.. bad=.."
#include "bench/load_support.hpp"
#include "protocols/radius/codec.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

using namespace imeilock::radius;
using imeilock::bench::chance;
using steady = std::chrono::steady_clock;

namespace {

struct options : imeilock::bench::change_options {
  std::string host = "127.0.0.1";
  int port = 1813;
  std::string secret = "testing123";
  std::size_t sims = 100000;
  std::size_t first_sim = 0; ///< SIMs first_sim .. first_sim + sims - 1
  std::size_t window = 64;
  double seconds = 10;
  double warmup = 1;
  std::size_t sockets = 8;
  double timeout = 1.0; ///< a request unanswered this long counts as lost
  double rate = 0;      ///< requests/s, open loop; 0 = keep `window` outstanding
  bool verify = true;   ///< check answers' Response Authenticators
  // change_options: --requests N sends N, then stops; 0 = run for `seconds`.
};

/// Where to patch a precomputed request per send.
struct patch_offsets {
  std::uint16_t input_octets = 0; ///< value of Acct-Input-Octets
  std::uint16_t imei_serial = 0;  ///< the 6 serial digits of the IMEISV (the TAC's 8 are before)
};

patch_offsets find_offsets(const std::vector<std::uint8_t>& p) {
  patch_offsets o;
  for (std::size_t at = header_size; at + 2 <= p.size() && p[at + 1] >= 2; at += p[at + 1]) {
    if (p[at] == attr::acct_input_octets)
      o.input_octets = static_cast<std::uint16_t>(at + 2);
    else if (p[at] == attr::vendor_specific && p[at + 1] >= 8 && p[at + 6] == tgpp::imeisv)
      o.imei_serial = static_cast<std::uint16_t>(at + 8 + 8);
  }
  return o;
}

/// Recomputes the Request Authenticator (RFC 2866 §3) after a patch.
void sign(std::vector<std::uint8_t>& p, bytes secret) {
  std::memset(p.data() + 4, 0, 16);
  const auto d = md5_of({bytes{p.data(), p.size()}, secret});
  std::memcpy(p.data() + 4, d.data(), 16);
}

std::vector<std::uint8_t> vsa(std::uint8_t type, const std::string& value) {
  std::vector<std::uint8_t> v(6 + value.size());
  v[2] = 0x28;
  v[3] = 0xaf;
  v[4] = type;
  v[5] = static_cast<std::uint8_t>(2 + value.size());
  std::memcpy(v.data() + 6, value.data(), value.size());
  return v;
}

/// The Interim-Update SIM `i` sends, with Identifier `ident`.
std::vector<std::uint8_t> make_request(std::size_t i, std::uint8_t ident,
                                       const std::string& secret) {
  char imsi[32];
  std::snprintf(imsi, sizeof imsi, "23415%010zu", i % 10000000000);
  char imeisv[32];
  std::snprintf(imeisv, sizeof imeisv, "35349001%06zu01", i % 1000000);
  char msisdn[32];
  std::snprintf(msisdn, sizeof msisdn, "447%09zu", i);
  char session[32];
  std::snprintf(session, sizeof session, "pgw1-%zx", i);
  packet_builder b{code::accounting_request, ident};
  b.add_u32(attr::acct_status_type, 3);
  b.add(attr::user_name, std::string{imsi} + "@iot.example");
  b.add(attr::vendor_specific, vsa(tgpp::imsi, imsi));
  b.add(attr::vendor_specific, vsa(tgpp::imeisv, imeisv));
  b.add(attr::calling_station_id, msisdn);
  b.add_u32(attr::nas_ip_address, 0x7f000001);
  b.add(attr::acct_session_id, session);
  b.add_u32(attr::framed_ip_address, 0x64400000u + static_cast<std::uint32_t>(i));
  b.add_u32(attr::acct_input_octets, static_cast<std::uint32_t>(i * 7));
  b.add_u32(attr::acct_output_octets, static_cast<std::uint32_t>(i * 13));
  b.add_u32(attr::acct_session_time, 600);
  return b.finish_request(as_bytes(secret));
}

struct slot {
  bool busy = false;
  std::size_t sim = 0;
  std::uint32_t version = 0; ///< the SIM's IMEI version sent (--record-acked)
  steady::time_point sent;
  /// Request Authenticators of the last sends on this Identifier, newest at
  /// [sends % 32]: a late answer to an earlier one is stale, not bad.
  std::array<std::array<std::uint8_t, 16>, 32> auth{};
  std::uint32_t sends = 0;
  const std::array<std::uint8_t, 16>& current() const { return auth[sends % 32]; }
};

/// Latencies are recorded in ns; the percentiles are printed in µs.
double percentile(std::vector<std::uint32_t>& ns, double p) {
  return imeilock::bench::percentile(ns, p) / 1000.0;
}

} // namespace

int main(int argc, char** argv) {
  options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const std::string v = argv[i + 1];
    if (a == "--target") {
      const auto colon = v.rfind(':');
      o.host = v.substr(0, colon);
      o.port = std::atoi(v.c_str() + colon + 1);
    } else if (a == "--secret")
      o.secret = v;
    else if (a == "--sims")
      o.sims = std::stoul(v);
    else if (a == "--first-sim")
      o.first_sim = std::stoul(v);
    else if (a == "--window")
      o.window = std::stoul(v);
    else if (a == "--seconds")
      o.seconds = std::stod(v);
    else if (a == "--warmup")
      o.warmup = std::stod(v);
    else if (a == "--sockets")
      o.sockets = std::stoul(v);
    else if (a == "--rate")
      o.rate = std::stod(v);
    else if (a == "--timeout")
      o.timeout = std::stod(v);
    else if (a == "--verify")
      o.verify = v != "0";
    else if (!o.take(a, v)) {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  o.sockets = std::clamp<std::size_t>(o.sockets, 1, 256);
  if (o.requests > 0) {
    o.warmup = 0;
    o.seconds = 24 * 3600.0; // bounded by the count instead
  }
  o.window = std::clamp<std::size_t>(o.window, 1, 200 * o.sockets);

  std::vector<std::vector<std::uint8_t>> packets(o.sims);
  std::vector<patch_offsets> offsets(o.sims);
  std::vector<std::uint32_t> sends(o.sims, 0);
  std::vector<std::uint8_t> alternate(o.sims, 0);
  const bool recording = !o.record_acked.empty();
  std::vector<std::uint32_t> version(recording ? o.sims : 0, 0);       // IMEI version per SIM
  std::vector<std::uint32_t> acked_version(recording ? o.sims : 0, 0); // newest acknowledged
  std::FILE* acked_out = nullptr;
  if (recording && !(acked_out = std::fopen(o.record_acked.c_str(), "w"))) {
    std::perror(o.record_acked.c_str());
    return 2;
  }
  std::uint64_t acked_changes = 0;
  for (std::size_t i = 0; i < o.sims; ++i) {
    packets[i] = make_request(o.first_sim + i, static_cast<std::uint8_t>(i % 256), o.secret);
    offsets[i] = find_offsets(packets[i]);
    if (offsets[i].input_octets == 0 || offsets[i].imei_serial == 0) {
      std::fprintf(stderr, "cannot find the attributes to patch\n");
      return 2;
    }
  }
  const auto secret_bytes = as_bytes(o.secret);
  std::uint64_t rng = o.seed * 0x9E3779B97F4A7C15ULL + 1;
  const chance change{o.imei_change_percent};
  std::uint64_t imei_changes = 0, prepared = 0;
  // A distinct packet per send (see the header comment).
  auto prepare = [&](std::size_t sim) {
    auto& p = packets[sim];
    const auto& off = offsets[sim];
    const std::uint32_t n = ++sends[sim];
    ++prepared;
    p[off.input_octets] = static_cast<std::uint8_t>(n >> 24);
    p[off.input_octets + 1] = static_cast<std::uint8_t>(n >> 16);
    p[off.input_octets + 2] = static_cast<std::uint8_t>(n >> 8);
    p[off.input_octets + 3] = static_cast<std::uint8_t>(n);
    if (o.imei_change_percent > 0 && change.draw(rng)) {
      ++imei_changes;
      if (recording) {
        // A new device: TAC 86 + the SIM's version number, serial unchanged.
        char tac[16];
        std::snprintf(tac, sizeof tac, "86%06u", ++version[sim] % 1000000);
        std::memcpy(p.data() + off.imei_serial - 8, tac, 8);
      } else {
        alternate[sim] ^= 1;
        char serial[8];
        std::snprintf(serial, sizeof serial, "%06zu",
                      (sim + (alternate[sim] ? 500000 : 0)) % 1000000);
        std::memcpy(p.data() + off.imei_serial, serial, 6);
      }
    }
    sign(p, secret_bytes);
  };
  // The acknowledged IMEI of a SIM: IMSI and the 14 identity digits.
  auto record = [&](std::size_t sim, std::uint32_t v) {
    if (v <= acked_version[sim])
      return;
    acked_version[sim] = v;
    ++acked_changes;
    const auto& p = packets[sim];
    const auto at = offsets[sim].imei_serial - 8u;
    std::fprintf(acked_out, "23415%010zu %.14s\n", (o.first_sim + sim) % 10000000000,
                 reinterpret_cast<const char*>(p.data() + at));
  };

  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<std::uint16_t>(o.port));
  if (::inet_pton(AF_INET, o.host.c_str(), &to.sin_addr) != 1) {
    std::fprintf(stderr, "IPv4 target expected\n");
    return 2;
  }
  std::vector<int> fds;
  std::vector<pollfd> pfds;
  for (std::size_t s = 0; s < o.sockets; ++s) {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int buf = 4 << 20;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) {
      std::perror("connect");
      return 1;
    }
    fds.push_back(fd);
    pfds.push_back(pollfd{fd, POLLIN, 0});
  }
  std::vector<slot> slots(o.sockets * 256);
  std::vector<std::uint32_t> latencies;
  latencies.reserve(o.requests > 0 ? o.requests : static_cast<std::size_t>(o.seconds * 300000));
  std::vector<std::uint32_t> interval_latencies; // --interval
  std::uint64_t interval_answered = 0, interval_lost = 0;

  std::size_t next_sim = 0;
  std::size_t outstanding = 0;
  std::uint64_t answered = 0, lost = 0, bad = 0, sent_total = 0, skipped = 0, stale = 0,
                due_total = 0;
  const bool check_all = recording || o.rate > 0;
  const auto t0 = steady::now();
  const auto measure_from =
      t0 + std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(o.warmup));
  const auto end = measure_from + std::chrono::duration_cast<steady::duration>(
                                      std::chrono::duration<double>(o.seconds));
  const auto timeout =
      std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(o.timeout));
  std::uint64_t measured = 0;
  auto next_interval =
      t0 + std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(o.interval));
  auto interval_start = t0;

  constexpr std::size_t batch = 64;
  std::vector<mmsghdr> msgs(batch);
  std::vector<iovec> iovs(batch);
  std::vector<std::array<std::uint8_t, 64>> rx(batch);
  std::vector<std::vector<std::size_t>> per_socket(o.sockets);
  auto last_sweep = t0;

  while (true) {
    const auto now = steady::now();
    if (now >= end)
      break;
    if (o.requests > 0 && prepared >= o.requests && outstanding == 0)
      break;
    // Fill the window, round-robin over SIMs; SIM i uses Identifier i%256 on
    // socket (i/256)%sockets, so its precomputed packet stays valid.
    for (auto& v : per_socket)
      v.clear();
    std::size_t scanned = 0;
    // Open loop: what the rate asks for by now; closed loop: the window.
    std::uint64_t due = 0;
    if (o.rate > 0) {
      const auto want =
          static_cast<std::uint64_t>(std::chrono::duration<double>(now - t0).count() * o.rate);
      due = want > due_total ? want - due_total : 0;
      due_total += due;
    }
    while ((o.rate > 0 ? due > 0 : outstanding < o.window) && scanned < slots.size() &&
           (o.requests == 0 || prepared < o.requests)) {
      const std::size_t sim = next_sim;
      next_sim = (next_sim + 1) % o.sims;
      ++scanned;
      const std::size_t s = (sim / 256) % o.sockets;
      slot& sl = slots[s * 256 + sim % 256];
      if (sl.busy)
        continue;
      sl.busy = true;
      sl.sim = sim;
      sl.sent = now;
      prepare(sim);
      if (recording)
        sl.version = version[sim];
      ++sl.sends;
      std::memcpy(sl.auth[sl.sends % 32].data(), packets[sim].data() + 4, 16);
      per_socket[s].push_back(sim);
      ++outstanding;
      if (due > 0)
        --due;
    }
    skipped += due; // no Identifier free for them
    for (std::size_t s = 0; s < o.sockets; ++s) {
      auto& list = per_socket[s];
      for (std::size_t off = 0; off < list.size(); off += batch) {
        const std::size_t n = std::min(batch, list.size() - off);
        for (std::size_t k = 0; k < n; ++k) {
          auto& pkt = packets[list[off + k]];
          iovs[k] = iovec{pkt.data(), pkt.size()};
          msgs[k].msg_hdr = msghdr{};
          msgs[k].msg_hdr.msg_iov = &iovs[k];
          msgs[k].msg_hdr.msg_iovlen = 1;
        }
        const int r = ::sendmmsg(fds[s], msgs.data(), static_cast<unsigned>(n), 0);
        if (r > 0)
          sent_total += static_cast<std::uint64_t>(r);
      }
    }
    ::poll(pfds.data(), pfds.size(), 1);
    const auto rnow = steady::now();
    for (std::size_t s = 0; s < o.sockets; ++s) {
      while (true) {
        for (std::size_t k = 0; k < batch; ++k) {
          iovs[k] = iovec{rx[k].data(), rx[k].size()};
          msgs[k].msg_hdr = msghdr{};
          msgs[k].msg_hdr.msg_iov = &iovs[k];
          msgs[k].msg_hdr.msg_iovlen = 1;
        }
        const int r = ::recvmmsg(fds[s], msgs.data(), batch, MSG_DONTWAIT, nullptr);
        if (r <= 0)
          break;
        for (int k = 0; k < r; ++k) {
          const auto& d = rx[static_cast<std::size_t>(k)];
          const std::size_t len = msgs[static_cast<std::size_t>(k)].msg_len;
          if (len < header_size)
            continue;
          slot& sl = slots[s * 256 + d[1]];
          if (!sl.busy)
            continue; // late answer to a request already counted lost
          // Check every 16th answer fully (cheap enough, and catches a server
          // that answers with the wrong authenticator); every answer when
          // Identifiers are reused after a timeout (--rate, --record-acked).
          if (o.verify && (check_all || sl.sim % 16 == 0)) {
            auto pr = parse(bytes{d.data(), len});
            const auto ok = [&](const std::array<std::uint8_t, 16>& auth) {
              return pr.packet && pr.packet->packet_code() == code::accounting_response &&
                     verify_response_authenticator(*pr.packet, bytes{auth.data(), 16},
                                                   as_bytes(o.secret));
            };
            if (!ok(sl.current())) {
              if (check_all && std::any_of(sl.auth.begin(), sl.auth.end(), ok)) {
                ++stale; // the answer to a request this Identifier carried before
                continue;
              }
              ++bad;
              if (check_all)
                continue; // not an answer to this request
            }
          }
          sl.busy = false;
          --outstanding;
          ++answered;
          if (recording && sl.version > 0)
            record(sl.sim, sl.version);
          const auto ns = static_cast<std::uint32_t>(std::min<std::int64_t>(
              std::chrono::duration_cast<std::chrono::nanoseconds>(rnow - sl.sent).count(),
              std::numeric_limits<std::uint32_t>::max()));
          if (sl.sent >= measure_from) {
            ++measured;
            latencies.push_back(ns);
          }
          if (o.interval > 0) {
            ++interval_answered;
            interval_latencies.push_back(ns);
          }
        }
        if (static_cast<std::size_t>(r) < batch)
          break;
      }
    }
    if (rnow - last_sweep > std::chrono::milliseconds{100}) {
      last_sweep = rnow;
      for (auto& sl : slots)
        if (sl.busy && rnow - sl.sent > timeout) {
          sl.busy = false;
          --outstanding;
          ++lost;
          ++interval_lost;
        }
    }
    if (o.interval > 0 && rnow >= next_interval) {
      const double secs = std::chrono::duration<double>(rnow - interval_start).count();
      const double t = std::chrono::duration<double>(rnow - t0).count();
      std::printf("INTERVAL t=%.0f rate=%.0f p50_us=%.0f p99_us=%.0f p999_us=%.0f lost=%llu\n", t,
                  static_cast<double>(interval_answered) / secs,
                  percentile(interval_latencies, 0.50), percentile(interval_latencies, 0.99),
                  percentile(interval_latencies, 0.999),
                  static_cast<unsigned long long>(interval_lost));
      std::fflush(stdout);
      interval_latencies.clear();
      interval_answered = interval_lost = 0;
      interval_start = rnow;
      next_interval +=
          std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(o.interval));
    }
  }
  const double took =
      o.requests > 0 ? std::chrono::duration<double>(steady::now() - t0).count() : o.seconds;
  const double rate = static_cast<double>(measured) / took;
  const double p50 = percentile(latencies, 0.50);
  const double p99 = percentile(latencies, 0.99);
  const double p999 = percentile(latencies, 0.999);
  const double changes_pct =
      prepared > 0 ? 100.0 * static_cast<double>(imei_changes) / static_cast<double>(prepared) : 0;
  if (acked_out)
    std::fclose(acked_out);
  std::printf(
      "sims=%zu window=%zu sockets=%zu seconds=%.1f sent=%llu answered=%llu lost=%llu bad=%llu "
      "imei_changes=%llu skipped=%llu stale=%llu acked_changes=%llu\n",
      o.sims, o.window, o.sockets, took, static_cast<unsigned long long>(sent_total),
      static_cast<unsigned long long>(answered), static_cast<unsigned long long>(lost),
      static_cast<unsigned long long>(bad), static_cast<unsigned long long>(imei_changes),
      static_cast<unsigned long long>(skipped), static_cast<unsigned long long>(stale),
      static_cast<unsigned long long>(acked_changes));
  std::printf(
      "RESULT rate=%.0f changes_pct=%.2f p50_us=%.0f p99_us=%.0f p999_us=%.0f lost=%llu bad=%llu\n",
      rate, changes_pct, p50, p99, p999, static_cast<unsigned long long>(lost),
      static_cast<unsigned long long>(bad));
  for (int fd : fds)
    ::close(fd);
  return bad == 0 ? 0 : 1;
}
