// diameter_load: a Diameter load generator (prints figures; not a test).
// Several TCP connections, each with a window of outstanding requests, ACR
// and CCR mixes over many distinct SIMs (every request a new record: its own
// Session-Id + record number, so no answer comes from a duplicate cache),
// bounded in time. Reports answers/s and p50/p99/p99.9 latency.
//
//   diameter_load --port N [--host 127.0.0.1] [--connections 4] [--window 64]
//                 [--duration 10] [--warmup 1] [--sims 100000] [--ccr-percent 0]
//                 [--rate 0 (requests/s in total, 0 = as fast as answered)]
//                 [--origin-host pgw1.example.net] [--realm example.net]
//                 [--compat 1 (identity AVPs without the M bit)] [--distinct-peers 1]
//                 [--imei-change-percent 0] [--seed 1] [--interval 0] [--record-acked FILE]
//                 [--first-sim 0 (the SIMs are first-sim .. first-sim + sims - 1)]
//                 [--requests 0 (send exactly N, no warm-up, then wait for the answers)]
//
// --imei-change-percent P: each send flips, with probability P/100, the SIM
// between two IMEIs (serial i and i+500000), so about P% of observations
// change the IMEI; 0 (the default) = IMEIs unchanged, the common steady state.
// Any P from 0 to 100; the measured share is printed as changes_pct.
// --rate R with a large --window is an open loop: a server that cannot keep
// up answers 3004 (DIAMETER_TOO_BUSY, counted as too_busy and in errors).
// --interval S: a line every S seconds with that interval's rate and latency
// percentiles. --record-acked FILE: every change moves the SIM to a new IMEI
// (TAC 86xxxxxx numbered per SIM) instead of flipping between two, and each
// 2001 answer to a request that carried a SIM's newest IMEI appends
// "<imsi> <14-digit IMEI>" to FILE: the acknowledged changes.
// Last line: "result answers=... rate=... changes_pct=... p50_us=... p99_us=... p999_us=...
// errors=... too_busy=... missing=..." (errors counts every answer other than 2001 and the answers
// still missing 5 s after the end).

#include "bench/load_support.hpp"
#include "protocols/diameter/messages.hpp"
#include "protocols/diameter/requests.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

using namespace imeilock::diameter;
using clk = std::chrono::steady_clock;
using imeilock::bench::chance;
using imeilock::bench::percentile;

namespace {

struct options : imeilock::bench::change_options {
  std::string host = "127.0.0.1";
  int port = 0;
  int connections = 4;
  int window = 64;
  double duration = 10;
  double warmup = 1;
  int sims = 100000;
  int first_sim = 0; ///< SIMs first_sim .. first_sim + sims - 1
  int ccr_percent = 0;
  double rate = 0;
  std::string origin_host = "pgw1.example.net";
  std::string realm = "example.net";
  /// Clear the M bit of the identity AVPs (Subscription-Id, User-Equipment-Info,
  /// 3GPP AVPs) so a server with only the base dictionary (freeDiameter
  /// without dict_dcca/3GPP extensions) does not answer 5001.
  bool compat = false;
  /// Connection c > 0 sends CER as "c<c>.<origin-host>" (freeDiameter accepts
  /// one connection per Origin-Host).
  bool distinct_peers = false;
  // change_options: --requests N sends N (bench/instructions.sh); 0 = run for `duration`.
};

/// A precomputed request with the offsets to patch per send.
struct request_template {
  std::vector<std::uint8_t> bytes;
  std::size_t number_offset = 0; ///< value of Accounting-Record-Number / CC-Request-Number
};

struct connection {
  int fd = -1;
  std::vector<std::uint8_t> rbuf = std::vector<std::uint8_t>(1 << 20);
  std::size_t rlen = 0;
  std::vector<std::uint8_t> wbuf;
  std::vector<clk::time_point> sent;  ///< by hop-by-hop slot
  std::vector<std::uint32_t> sim;     ///< by slot (--record-acked)
  std::vector<std::uint32_t> version; ///< by slot: the SIM's IMEI version sent
  std::vector<std::uint32_t> free_slots;
  int outstanding = 0;
};

[[noreturn]] void die(const char* what) {
  std::perror(what);
  std::exit(2);
}

int connect_to(const options& o) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(o.port));
  if (inet_pton(AF_INET, o.host.c_str(), &a.sin_addr) != 1)
    die("address");
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    die("connect");
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

/// Blocking read of one message (handshake only).
std::vector<std::uint8_t> read_message(int fd) {
  std::vector<std::uint8_t> b(4);
  std::size_t have = 0;
  auto need = [&](std::size_t n) {
    while (have < n) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 5000) <= 0)
        die("handshake timeout");
      ssize_t r = ::recv(fd, b.data() + have, n - have, 0);
      if (r <= 0)
        die("handshake read");
      have += static_cast<std::size_t>(r);
    }
  };
  need(4);
  b.resize(load_u24(b.data() + 1));
  need(b.size());
  return b;
}

std::uint32_t result_code(bytes msg) {
  avp a;
  std::uint32_t v = 0;
  if (find_avp(msg.subspan(header_size), avp_code::result_code, 0, a))
    a.u32(v);
  return v;
}

std::string imeisv_for(int i, bool alternate = false, std::uint32_t version = 0) {
  char buf[40];
  if (version > 0) // a new device: TAC 86 + the version number
    std::snprintf(buf, sizeof buf, "86%06u%06d%02d", version % 1000000, i % 1000000, i % 100);
  else
    std::snprintf(buf, sizeof buf, "35349001%06d%02d", (i + (alternate ? 500000 : 0)) % 1000000,
                  i % 100);
  return buf;
}

} // namespace

int main(int argc, char** argv) {
  options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--host")
      o.host = v;
    else if (k == "--port")
      o.port = std::stoi(v);
    else if (k == "--connections")
      o.connections = std::stoi(v);
    else if (k == "--window")
      o.window = std::stoi(v);
    else if (k == "--duration")
      o.duration = std::stod(v);
    else if (k == "--warmup")
      o.warmup = std::stod(v);
    else if (k == "--sims")
      o.sims = std::stoi(v);
    else if (k == "--first-sim")
      o.first_sim = std::stoi(v);
    else if (k == "--ccr-percent")
      o.ccr_percent = std::stoi(v);
    else if (k == "--rate")
      o.rate = std::stod(v);
    else if (k == "--origin-host")
      o.origin_host = v;
    else if (k == "--realm")
      o.realm = v;
    else if (k == "--compat")
      o.compat = v == "1" || v == "yes" || v == "true";
    else if (k == "--distinct-peers")
      o.distinct_peers = v == "1" || v == "yes" || v == "true";
    else if (!o.take(k, v)) {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 64;
    }
  }
  if (o.port == 0 || o.window < 1 || o.window > 65536 || o.connections < 1 || o.sims < 1) {
    std::fprintf(stderr, "usage: diameter_load --port N [options]\n");
    return 64;
  }

  // One ACR (and CCR) for SIM i carrying `imeisv`, each IMEI encoding in turn.
  const imei_form forms[] = {imei_form::uei_ascii, imei_form::uei_hex, imei_form::uei_tbcd,
                             imei_form::terminal_information, imei_form::imeisv_3gpp};
  const auto run_started = static_cast<long long>(std::time(nullptr));
  // `i` counts from 0; the SIM is first_sim + i.
  auto build_templates = [&](int local, const std::string& imeisv, request_template& acr,
                             request_template* ccr) -> bool {
    const int i = o.first_sim + local;
    charging_spec s;
    s.session_id = o.origin_host + ";" + std::to_string(run_started) + ";" + std::to_string(i);
    s.origin_host = o.origin_host;
    s.origin_realm = o.realm;
    char imsi[24];
    std::snprintf(imsi, sizeof imsi, "2341500%08d", i % 100000000);
    s.imsi = imsi;
    s.msisdn = "4477" + std::to_string(10000000 + i);
    s.form = forms[i % 5];
    s.imeisv = imeisv;
    s.nested = (i % 2) == 1;
    s.record_type = 3;
    for (int k = 0; k < (ccr ? 2 : 1); ++k) {
      s.command = k == 0 ? command::accounting : command::credit_control;
      s.record_type = k == 0 ? 3 : 2;
      auto& t = k == 0 ? acr : *ccr;
      t.bytes.clear(); // build_charging_request appends
      build_charging_request(t.bytes, s);
      avp a;
      const std::uint32_t code =
          k == 0 ? avp_code::accounting_record_number : avp_code::cc_request_number;
      if (!find_avp(bytes{t.bytes.data(), t.bytes.size()}.subspan(header_size), code, 0, a))
        return false;
      t.number_offset = static_cast<std::size_t>(a.data.data() - t.bytes.data());
      if (o.compat) {
        avp_reader r{bytes{t.bytes.data(), t.bytes.size()}.subspan(header_size)};
        avp x;
        while (r.next(x)) {
          const bool base = x.vendor == 0 && x.code != avp_code::subscription_id &&
                            x.code != avp_code::user_equipment_info;
          if (!base)
            t.bytes[static_cast<std::size_t>(x.raw.data() - t.bytes.data()) + 4] &=
                static_cast<std::uint8_t>(~avp_flag::mandatory);
        }
      }
    }
    return true;
  };

  // One ACR and one CCR per SIM, each IMEI encoding in turn; a second set
  // with the alternate IMEI when IMEIs are to change.
  const int variants = o.imei_change_percent > 0 && o.record_acked.empty() ? 2 : 1;
  std::vector<request_template> acrs_by_variant[2], ccrs_by_variant[2];
  for (int variant = 0; variant < variants; ++variant) {
    auto& acrs = acrs_by_variant[variant];
    auto& ccrs = ccrs_by_variant[variant];
    acrs.resize(static_cast<std::size_t>(o.sims));
    if (o.ccr_percent > 0)
      ccrs.resize(static_cast<std::size_t>(o.sims));
    for (int i = 0; i < o.sims; ++i)
      if (!build_templates(i, imeisv_for(o.first_sim + i, variant == 1),
                           acrs[static_cast<std::size_t>(i)],
                           o.ccr_percent > 0 ? &ccrs[static_cast<std::size_t>(i)] : nullptr))
        return 3;
  }
  std::vector<std::uint32_t> record_numbers(static_cast<std::size_t>(o.sims), 0);
  std::vector<std::uint8_t> alternate(static_cast<std::size_t>(o.sims), 0);
  std::uint64_t rng = o.seed * 0x9E3779B97F4A7C15ULL + 1, imei_changes = 0;
  const chance change{o.imei_change_percent};
  const bool recording = !o.record_acked.empty();
  std::vector<std::uint32_t> version(recording ? static_cast<std::size_t>(o.sims) : 0, 0);
  std::vector<std::uint32_t> acked_version(version.size(), 0);
  std::FILE* acked_out = nullptr;
  if (recording && !(acked_out = std::fopen(o.record_acked.c_str(), "w")))
    die(o.record_acked.c_str());
  std::uint64_t acked_changes = 0, too_busy = 0;

  // Connect and exchange capabilities.
  std::vector<connection> conns(static_cast<std::size_t>(o.connections));
  const int ep = epoll_create1(0);
  for (std::size_t c = 0; c < conns.size(); ++c) {
    auto& cn = conns[c];
    cn.fd = connect_to(o);
    std::vector<std::uint8_t> cer;
    const std::string host =
        (o.distinct_peers && c > 0) ? "c" + std::to_string(c) + "." + o.origin_host : o.origin_host;
    build_cer(cer, host, o.realm, application::credit_control, application::accounting, 1, 1);
    if (::send(cn.fd, cer.data(), cer.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(cer.size()))
      die("send CER");
    auto cea = read_message(cn.fd);
    if (result_code(bytes{cea.data(), cea.size()}) != result::success) {
      std::fprintf(stderr, "CEA Result-Code %u\n", result_code(bytes{cea.data(), cea.size()}));
      return 2;
    }
    std::size_t slots = 1;
    while (slots < static_cast<std::size_t>(o.window))
      slots <<= 1;
    cn.sent.resize(slots);
    cn.sim.resize(slots);
    cn.version.resize(slots);
    for (std::uint32_t s = 0; s < static_cast<std::uint32_t>(o.window); ++s)
      cn.free_slots.push_back(s);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = c;
    epoll_ctl(ep, EPOLL_CTL_ADD, cn.fd, &ev);
  }

  std::vector<std::uint32_t> latencies_us;
  latencies_us.reserve(8'000'000);
  std::vector<std::uint32_t> interval_us; // --interval
  std::uint64_t interval_answers = 0, interval_busy = 0;
  std::uint64_t answers = 0, errors = 0, sent_total = 0, measured_answers = 0;
  std::uint64_t missing = 0; ///< unanswered 5 s after the end (also in errors)
  // RFC 6733 §3: End-to-End Identifiers start with the low 12 bits of the
  // time in the high bits, and Session-Ids carry the start time (below), so a
  // second run against the same server is not answered from its duplicate
  // cache (§9.4 keys on Origin-Host + End-to-End and on Session-Id + record
  // number, kept for minutes).
  std::uint32_t next_sim = 0, gen = 0;
  std::uint32_t e2e = (static_cast<std::uint32_t>(run_started) & 0xfffU) << 20 |
                      (static_cast<std::uint32_t>(::getpid()) & 0xfffffU);
  if (o.requests > 0)
    o.warmup = 0;
  const auto start = clk::now();
  const auto measure_from =
      start + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(o.warmup));
  if (o.requests > 0)
    o.duration = 24 * 3600.0; // bounded by the count instead
  auto end = measure_from +
             std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(o.duration));
  // How long answers may still come after the end.
  const auto drain = std::chrono::seconds{o.requests > 0 ? 60 : 5};
  std::vector<std::uint8_t> reply;
  local_identity me;
  me.origin_host = o.origin_host;
  me.origin_realm = o.realm;
  bool running = true;
  auto next_interval =
      start + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(o.interval));
  auto interval_start = start;

  auto fill = [&](connection& cn, clk::time_point now) {
    while (!cn.free_slots.empty() && running && (o.requests == 0 || sent_total < o.requests)) {
      if (o.rate > 0) {
        const double elapsed = std::chrono::duration<double>(now - start).count();
        if (static_cast<double>(sent_total) >= elapsed * o.rate)
          break;
      }
      const std::uint32_t slot = cn.free_slots.back();
      cn.free_slots.pop_back();
      const std::uint32_t sim = next_sim;
      next_sim = (next_sim + 1) % static_cast<std::uint32_t>(o.sims);
      const bool ccr = o.ccr_percent > 0 && static_cast<int>(sent_total % 100) < o.ccr_percent;
      if (o.imei_change_percent > 0 && change.draw(rng)) {
        ++imei_changes;
        if (recording) {
          // A new device: rebuild this SIM's requests with the next IMEI.
          ++version[sim];
          if (!build_templates(static_cast<int>(sim),
                               imeisv_for(o.first_sim + static_cast<int>(sim), false, version[sim]),
                               acrs_by_variant[0][sim],
                               o.ccr_percent > 0 ? &ccrs_by_variant[0][sim] : nullptr)) {
            std::fprintf(stderr, "cannot rebuild a request\n");
            std::exit(3);
          }
        } else {
          alternate[sim] ^= 1;
        }
      }
      const int v = recording ? 0 : alternate[sim];
      const auto& t = (ccr ? ccrs_by_variant[v] : acrs_by_variant[v])[sim];
      const std::size_t at = cn.wbuf.size();
      cn.wbuf.insert(cn.wbuf.end(), t.bytes.begin(), t.bytes.end());
      std::uint8_t* p = cn.wbuf.data() + at;
      // hop-by-hop: slot in the low 16 bits, a generation above (answers are matched by slot).
      store_u32(p + 12, (++gen << 16) | slot);
      store_u32(p + 16, e2e++);
      store_u32(p + t.number_offset, ++record_numbers[sim]);
      cn.sent[slot] = now;
      cn.sim[slot] = sim;
      cn.version[slot] = recording ? version[sim] : 0;
      ++cn.outstanding;
      ++sent_total;
    }
    std::size_t off = 0;
    while (off < cn.wbuf.size()) {
      ssize_t w =
          ::send(cn.fd, cn.wbuf.data() + off, cn.wbuf.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w <= 0)
        break;
      off += static_cast<std::size_t>(w);
    }
    cn.wbuf.erase(cn.wbuf.begin(), cn.wbuf.begin() + static_cast<std::ptrdiff_t>(off));
  };

  for (auto& cn : conns)
    fill(cn, clk::now());
  epoll_event events[64];
  while (true) {
    auto now = clk::now();
    if (running && o.requests > 0 && sent_total >= o.requests)
      end = now; // all sent: wait for the answers
    if (now >= end)
      running = false;
    int outstanding = 0;
    for (auto& cn : conns)
      outstanding += cn.outstanding;
    if (!running && outstanding == 0)
      break;
    if (!running && now >= end + drain) {
      std::fprintf(stderr, "%d answers missing at the end\n", outstanding);
      errors += static_cast<std::uint64_t>(outstanding);
      missing = static_cast<std::uint64_t>(outstanding);
      break;
    }
    const int n = epoll_wait(ep, events, 64, o.rate > 0 ? 1 : 100);
    now = clk::now();
    for (int e = 0; e < n; ++e) {
      auto& cn = conns[events[e].data.u64];
      ssize_t r = ::recv(cn.fd, cn.rbuf.data() + cn.rlen, cn.rbuf.size() - cn.rlen, MSG_DONTWAIT);
      if (r == 0) {
        std::fprintf(stderr, "server closed a connection\n");
        return 2;
      }
      if (r < 0)
        continue;
      cn.rlen += static_cast<std::size_t>(r);
      std::size_t off = 0;
      while (true) {
        std::uint32_t len = 0;
        const auto st =
            check_frame(bytes{cn.rbuf.data() + off, cn.rlen - off}, cn.rbuf.size(), len);
        if (st != frame_status::complete) {
          if (st != frame_status::need_more) {
            std::fprintf(stderr, "bad frame from server: %s\n", std::string{to_string(st)}.c_str());
            return 2;
          }
          break;
        }
        const bytes msg{cn.rbuf.data() + off, len};
        const header h = decode_header(msg);
        off += len;
        if (h.is_request()) {
          // The server's watchdog (RFC 3539): answer it.
          if (h.command == command::device_watchdog) {
            reply.clear();
            build_dwa(reply, h, me);
            cn.wbuf.insert(cn.wbuf.end(), reply.begin(), reply.end());
          }
          continue;
        }
        if (h.command != command::accounting && h.command != command::credit_control)
          continue;
        const std::uint32_t slot = h.hop_by_hop & 0xffffU;
        if (slot >= static_cast<std::uint32_t>(o.window))
          continue;
        ++answers;
        ++interval_answers;
        if (const auto rc = result_code(msg); rc != result::success) {
          if (rc == result::too_busy) {
            ++too_busy;
            ++interval_busy;
          }
          if (errors++ == 0)
            std::fprintf(stderr, "first error answer: Result-Code %u\n", rc);
        } else if (recording && cn.version[slot] > acked_version[cn.sim[slot]]) {
          // An acknowledged change: the SIM's IMEI of that version is durable.
          const std::uint32_t sim = cn.sim[slot];
          acked_version[sim] = cn.version[slot];
          ++acked_changes;
          const int g = o.first_sim + static_cast<int>(sim);
          std::fprintf(acked_out, "2341500%08d %.14s\n", g % 100000000,
                       imeisv_for(g, false, cn.version[slot]).c_str());
        }
        const auto us = static_cast<std::uint32_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(now - cn.sent[slot]).count());
        if (o.interval > 0)
          interval_us.push_back(us);
        if (cn.sent[slot] >= measure_from && cn.sent[slot] < end) {
          ++measured_answers;
          latencies_us.push_back(us);
        }
        cn.free_slots.push_back(slot);
        --cn.outstanding;
      }
      std::memmove(cn.rbuf.data(), cn.rbuf.data() + off, cn.rlen - off);
      cn.rlen -= off;
    }
    for (auto& cn : conns)
      fill(cn, now);
    if (o.interval > 0 && now >= next_interval) {
      const double secs = std::chrono::duration<double>(now - interval_start).count();
      std::printf("INTERVAL t=%.0f rate=%.0f p50_us=%.0f p99_us=%.0f p999_us=%.0f too_busy=%llu\n",
                  std::chrono::duration<double>(now - start).count(),
                  static_cast<double>(interval_answers) / secs, percentile(interval_us, 0.50),
                  percentile(interval_us, 0.99), percentile(interval_us, 0.999),
                  static_cast<unsigned long long>(interval_busy));
      std::fflush(stdout);
      interval_us.clear();
      interval_answers = interval_busy = 0;
      interval_start = now;
      next_interval +=
          std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(o.interval));
    }
  }
  std::sort(latencies_us.begin(), latencies_us.end());
  auto pct = [&](double p) -> double {
    if (latencies_us.empty())
      return 0;
    return latencies_us[std::min(
        latencies_us.size() - 1,
        static_cast<std::size_t>(p * static_cast<double>(latencies_us.size())))];
  };
  if (o.requests > 0)
    o.duration = std::chrono::duration<double>(end - start).count();
  const double rate = static_cast<double>(measured_answers) / o.duration;
  const double changes_pct =
      sent_total > 0 ? 100.0 * static_cast<double>(imei_changes) / static_cast<double>(sent_total)
                     : 0;
  if (acked_out)
    std::fclose(acked_out);
  std::printf(
      "connections=%d window=%d sims=%d ccr_percent=%d duration=%.1fs sent=%llu imei_changes=%llu "
      "acked_changes=%llu\n",
      o.connections, o.window, o.sims, o.ccr_percent, o.duration,
      static_cast<unsigned long long>(sent_total), static_cast<unsigned long long>(imei_changes),
      static_cast<unsigned long long>(acked_changes));
  std::printf("result answers=%llu rate=%.0f changes_pct=%.2f p50_us=%.0f p99_us=%.0f p999_us=%.0f "
              "max_us=%.0f "
              "errors=%llu too_busy=%llu missing=%llu\n",
              static_cast<unsigned long long>(measured_answers), rate, changes_pct, pct(0.50),
              pct(0.99), pct(0.999),
              latencies_us.empty() ? 0.0 : static_cast<double>(latencies_us.back()),
              static_cast<unsigned long long>(errors), static_cast<unsigned long long>(too_busy),
              static_cast<unsigned long long>(missing));
  for (auto& cn : conns)
    ::close(cn.fd);
  return errors == 0 ? 0 : 1;
}
