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
//               [--imei-change-percent 0] [--seed 1]
//
// Every send is a distinct packet: Acct-Input-Octets grows per send and the
// Request Authenticator is recomputed, so a server's RFC 5080 response cache
// never answers for the SIM layer (a SIM comes round again every --sims
// requests, well inside a 10 s duplicate window). --imei-change-percent P:
// each send flips, with probability P/100, the SIM between two IMEIs (serial
// i and i+500000), so about P% of observations change the IMEI; 0 (the
// default) = IMEIs unchanged, the common steady state.
//
// Last line: "RESULT rate=<req/s> p50_us=.. p99_us=.. p999_us=.. lost=.. bad=.."
#include "protocols/radius/codec.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace imeilock::radius;
using steady = std::chrono::steady_clock;

namespace {

struct options {
  std::string host = "127.0.0.1";
  int port = 1813;
  std::string secret = "testing123";
  std::size_t sims = 100000;
  std::size_t window = 64;
  double seconds = 10;
  double warmup = 1;
  std::size_t sockets = 8;
  double timeout = 1.0; ///< a request unanswered this long counts as lost
  double imei_change_percent = 0;
  std::uint64_t seed = 1;
};

/// Where to patch a precomputed request per send.
struct patch_offsets {
  std::uint16_t input_octets = 0; ///< value of Acct-Input-Octets
  std::uint16_t imei_serial = 0;  ///< the 6 serial digits of the IMEISV
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

/// The Interim-Update SIM `i` sends, with Identifier `i % 256`.
std::vector<std::uint8_t> make_request(std::size_t i, const std::string& secret) {
  char imsi[32];
  std::snprintf(imsi, sizeof imsi, "23415%010zu", i % 10000000000);
  char imeisv[32];
  std::snprintf(imeisv, sizeof imeisv, "35349001%06zu01", i % 1000000);
  char msisdn[32];
  std::snprintf(msisdn, sizeof msisdn, "447%09zu", i);
  char session[32];
  std::snprintf(session, sizeof session, "pgw1-%zx", i);
  packet_builder b{code::accounting_request, static_cast<std::uint8_t>(i % 256)};
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
  steady::time_point sent;
};

double percentile(std::vector<std::uint32_t>& v, double p) {
  if (v.empty())
    return 0;
  const std::size_t k = std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k] / 1000.0;
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
    } else if (a == "--secret") o.secret = v;
    else if (a == "--sims") o.sims = std::stoul(v);
    else if (a == "--window") o.window = std::stoul(v);
    else if (a == "--seconds") o.seconds = std::stod(v);
    else if (a == "--warmup") o.warmup = std::stod(v);
    else if (a == "--sockets") o.sockets = std::stoul(v);
    else if (a == "--imei-change-percent") o.imei_change_percent = std::stod(v);
    else if (a == "--seed") o.seed = std::stoull(v);
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  o.sockets = std::clamp<std::size_t>(o.sockets, 1, 64);
  o.window = std::clamp<std::size_t>(o.window, 1, 200 * o.sockets);

  std::vector<std::vector<std::uint8_t>> packets(o.sims);
  std::vector<patch_offsets> offsets(o.sims);
  std::vector<std::uint32_t> sends(o.sims, 0);
  std::vector<std::uint8_t> alternate(o.sims, 0);
  for (std::size_t i = 0; i < o.sims; ++i) {
    packets[i] = make_request(i, o.secret);
    offsets[i] = find_offsets(packets[i]);
    if (offsets[i].input_octets == 0 || offsets[i].imei_serial == 0) {
      std::fprintf(stderr, "cannot find the attributes to patch\n");
      return 2;
    }
  }
  const auto secret_bytes = as_bytes(o.secret);
  std::uint64_t rng = o.seed * 0x9E3779B97F4A7C15ULL + 1;
  const auto change_threshold = static_cast<std::uint64_t>(
    std::clamp(o.imei_change_percent, 0.0, 100.0) / 100.0 * 18446744073709551615.0);
  std::uint64_t imei_changes = 0;
  // A distinct packet per send (see the header comment).
  auto prepare = [&](std::size_t sim) {
    auto& p = packets[sim];
    const auto& off = offsets[sim];
    const std::uint32_t n = ++sends[sim];
    p[off.input_octets] = static_cast<std::uint8_t>(n >> 24);
    p[off.input_octets + 1] = static_cast<std::uint8_t>(n >> 16);
    p[off.input_octets + 2] = static_cast<std::uint8_t>(n >> 8);
    p[off.input_octets + 3] = static_cast<std::uint8_t>(n);
    if (o.imei_change_percent > 0) {
      rng ^= rng << 13;
      rng ^= rng >> 7;
      rng ^= rng << 17;
      if (rng < change_threshold) {
        alternate[sim] ^= 1;
        ++imei_changes;
        char serial[8];
        std::snprintf(serial, sizeof serial, "%06zu", (sim + (alternate[sim] ? 500000 : 0)) % 1000000);
        std::memcpy(p.data() + off.imei_serial, serial, 6);
      }
    }
    sign(p, secret_bytes);
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
  latencies.reserve(static_cast<std::size_t>(o.seconds * 300000));

  std::size_t next_sim = 0;
  std::size_t outstanding = 0;
  std::uint64_t answered = 0, lost = 0, bad = 0, sent_total = 0;
  const auto t0 = steady::now();
  const auto measure_from = t0 + std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(o.warmup));
  const auto end = measure_from + std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(o.seconds));
  const auto timeout = std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(o.timeout));
  std::uint64_t measured = 0;

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
    // Fill the window, round-robin over SIMs; SIM i uses Identifier i%256 on
    // socket (i/256)%sockets, so its precomputed packet stays valid.
    for (auto& v : per_socket)
      v.clear();
    std::size_t scanned = 0;
    while (outstanding < o.window && scanned < slots.size()) {
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
      per_socket[s].push_back(sim);
      ++outstanding;
    }
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
          // Check every 16th answer fully: cheap enough, and catches a server
          // that answers with the wrong authenticator.
          if (sl.sim % 16 == 0) {
            auto pr = parse(bytes{d.data(), len});
            const auto& req = packets[sl.sim];
            if (!pr.packet || pr.packet->packet_code() != code::accounting_response ||
                !verify_response_authenticator(*pr.packet, bytes{req.data() + 4, 16}, as_bytes(o.secret)))
              ++bad;
          }
          sl.busy = false;
          --outstanding;
          ++answered;
          if (sl.sent >= measure_from) {
            ++measured;
            latencies.push_back(static_cast<std::uint32_t>(
              std::chrono::duration_cast<std::chrono::nanoseconds>(rnow - sl.sent).count()));
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
        }
    }
  }
  const double rate = static_cast<double>(measured) / o.seconds;
  const double p50 = percentile(latencies, 0.50);
  const double p99 = percentile(latencies, 0.99);
  const double p999 = percentile(latencies, 0.999);
  std::printf("sims=%zu window=%zu sockets=%zu seconds=%.1f sent=%llu answered=%llu lost=%llu bad=%llu "
              "imei_changes=%llu\n",
              o.sims, o.window, o.sockets, o.seconds, static_cast<unsigned long long>(sent_total),
              static_cast<unsigned long long>(answered), static_cast<unsigned long long>(lost),
              static_cast<unsigned long long>(bad), static_cast<unsigned long long>(imei_changes));
  std::printf("RESULT rate=%.0f p50_us=%.0f p99_us=%.0f p999_us=%.0f lost=%llu bad=%llu\n", rate, p50, p99, p999,
              static_cast<unsigned long long>(lost), static_cast<unsigned long long>(bad));
  for (int fd : fds)
    ::close(fd);
  return bad == 0 ? 0 : 1;
}
