#include "protocols/radius/disconnect.hpp"

#include "common/log.hpp"
#include "protocols/radius/clients.hpp"
#include "protocols/radius/codec.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/registry.h>

#include <array>
#include <chrono>
#include <deque>
#include <mutex>

namespace imeilock::radius {

namespace asio = boost::asio;
using udp = asio::ip::udp;

std::string_view to_string(disconnect_outcome o) {
  switch (o) {
    case disconnect_outcome::ack:
      return "ack";
    case disconnect_outcome::nak:
      return "nak";
    case disconnect_outcome::timeout:
      return "timeout";
    case disconnect_outcome::no_client:
      return "no_client";
    case disconnect_outcome::send_error:
      return "send_error";
  }
  return "unknown";
}

namespace {

std::int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// One Disconnect-Request in flight.
struct pending {
  std::vector<std::uint8_t> packet;
  authenticator request_auth{};
  std::string secret;
  udp::endpoint to;
  disconnect_result result;
  std::unique_ptr<asio::steady_timer> timer;
  std::chrono::milliseconds next_timeout{};
  std::uint32_t retries_left = 0;
};

} // namespace

struct disconnect_sender::impl : std::enable_shared_from_this<impl> {
  asio::io_context& io;
  std::mutex cfg_mutex;
  disconnect_config cfg;
  std::shared_ptr<client_table> clients;
  std::function<void(const disconnect_result&)> hook;
  prometheus::Family<prometheus::Counter>& family;
  std::array<prometheus::Counter*, 5> outcomes{};
  prometheus::Counter& sent;
  log::rate_limiter log_limit{20, std::chrono::seconds{1}};

  // io thread only:
  std::unique_ptr<udp::socket> v4;
  std::unique_ptr<udp::socket> v6;
  std::array<std::unique_ptr<pending>, 256> by_id{}; ///< Identifier -> request
  std::uint8_t next_id = 0;
  std::deque<std::unique_ptr<pending>> waiting; ///< all 256 Identifiers busy
  std::array<std::uint8_t, max_packet_size + 1> rx{};
  udp::endpoint rx_from;
  bool stopped = false;

  impl(asio::io_context& i, prometheus::Registry& r) :
      io(i),
      family(prometheus::BuildCounter()
                 .Name("imeilock_radius_disconnect_total")
                 .Help("Disconnect-Requests (RFC 5176) by outcome")
                 .Register(r)),
      sent(prometheus::BuildCounter()
               .Name("imeilock_radius_disconnect_sent_total")
               .Help("Disconnect-Request datagrams sent, retransmissions included")
               .Register(r)
               .Add({})) {
    for (std::size_t i2 = 0; i2 < outcomes.size(); ++i2)
      outcomes[i2] =
          &family.Add({{"outcome", std::string{to_string(static_cast<disconnect_outcome>(i2))}}});
  }

  void finish(std::unique_ptr<pending> p, disconnect_outcome o, std::uint32_t cause = 0) {
    p->result.outcome = o;
    p->result.error_cause = cause;
    p->result.at_ms = unix_ms();
    outcomes[static_cast<std::size_t>(o)]->Increment();
    const log::level lvl = o == disconnect_outcome::ack ? log::level::info : log::level::warning;
    log::write(lvl, "radius.disconnect",
               {{"outcome", to_string(o)},
                {"nas", p->result.nas_address},
                {"port", p->result.nas_port},
                {"session", p->result.acct_session_id},
                {"iccid", p->result.iccid},
                {"error_cause", p->result.error_cause},
                {"attempts", p->result.attempts}});
    std::function<void(const disconnect_result&)> h;
    {
      std::lock_guard lock{cfg_mutex};
      h = hook;
    }
    if (h)
      h(p->result);
  }

  udp::socket* socket_for(const udp::endpoint& to) {
    auto& slot = to.address().is_v4() ? v4 : v6;
    if (!slot) {
      auto s = std::make_unique<udp::socket>(io);
      boost::system::error_code ec;
      s->open(to.protocol(), ec);
      if (!ec)
        s->bind(udp::endpoint{to.protocol(), 0}, ec);
      if (ec)
        return nullptr;
      slot = std::move(s);
      receive(slot.get());
    }
    return slot.get();
  }

  void receive(udp::socket* s) {
    auto self = shared_from_this();
    s->async_receive_from(asio::buffer(rx), rx_from,
                          [this, self, s](boost::system::error_code ec, std::size_t n) {
                            if (stopped || ec == asio::error::operation_aborted)
                              return;
                            if (!ec)
                              on_response(n);
                            receive(s);
                          });
  }

  void on_response(std::size_t n) {
    const parse_result pr = parse(bytes{rx.data(), n});
    if (!pr.packet)
      return;
    const packet_view& r = *pr.packet;
    auto& slot = by_id[r.identifier()];
    // RFC 5176 §2.3 / RFC 2865 §3: an answer must come from where we sent,
    // answer our Identifier and carry a Response Authenticator made with our
    // request's authenticator and the secret.
    if (!slot || slot->to != rx_from)
      return;
    if (r.packet_code() != code::disconnect_ack && r.packet_code() != code::disconnect_nak)
      return;
    const bytes secret = as_bytes(slot->secret);
    if (!verify_response_authenticator(r, slot->request_auth, secret) ||
        check_response_message_authenticator(r, slot->request_auth, secret) ==
            message_auth_status::bad) {
      std::uint64_t suppressed = 0;
      if (log_limit.allow(suppressed))
        log::warning("radius.disconnect_bad_response", {{"nas", slot->result.nas_address}});
      return;
    }
    std::unique_ptr<pending> p = std::move(slot);
    p->timer->cancel();
    std::uint32_t cause = 0;
    if (auto ec = r.find(attr::error_cause))
      cause = read_u32(*ec).value_or(0);
    finish(std::move(p),
           r.packet_code() == code::disconnect_ack ? disconnect_outcome::ack
                                                   : disconnect_outcome::nak,
           cause);
    start_waiting();
  }

  void transmit(std::uint8_t id) {
    pending& p = *by_id[id];
    udp::socket* s = socket_for(p.to);
    boost::system::error_code ec;
    if (s)
      s->send_to(asio::buffer(p.packet), p.to, 0, ec);
    if (!s || ec) {
      auto owned = std::move(by_id[id]);
      finish(std::move(owned), disconnect_outcome::send_error);
      start_waiting();
      return;
    }
    ++p.result.attempts;
    sent.Increment();
    p.timer->expires_after(p.next_timeout);
    auto self = shared_from_this();
    pending* raw = &p;
    p.timer->async_wait([this, self, id, raw](boost::system::error_code tec) {
      if (tec || stopped || by_id[id].get() != raw)
        return;
      if (raw->retries_left == 0) {
        auto owned = std::move(by_id[id]);
        finish(std::move(owned), disconnect_outcome::timeout);
        start_waiting();
        return;
      }
      // RFC 5080 §2.2.1: a retransmission is the same packet (same
      // Identifier and authenticator); back off exponentially.
      --raw->retries_left;
      raw->next_timeout *= 2;
      transmit(id);
    });
  }

  void launch(std::unique_ptr<pending> p) {
    for (int tries = 0; tries < 256; ++tries) {
      const std::uint8_t id = next_id++;
      if (by_id[id])
        continue;
      // The Identifier is part of the signed packet: sign it now.
      packet_builder b{code::disconnect_request, id};
      p->packet[1] = id;
      const auto parsed = parse(p->packet);
      if (!parsed.packet)
        return;
      parsed.packet->for_each([&](const attribute& a) {
        if (a.type == attr::message_authenticator)
          b.add_message_authenticator();
        else
          b.add(a.type, a.value);
        return true;
      });
      p->packet = b.finish_request(as_bytes(p->secret));
      std::copy(p->packet.begin() + 4, p->packet.begin() + 20, p->request_auth.begin());
      p->timer = std::make_unique<asio::steady_timer>(io);
      by_id[id] = std::move(p);
      transmit(id);
      return;
    }
    waiting.push_back(std::move(p));
  }

  void start_waiting() {
    while (!waiting.empty()) {
      bool free = false;
      for (const auto& s : by_id)
        free = free || !s;
      if (!free)
        return;
      auto p = std::move(waiting.front());
      waiting.pop_front();
      launch(std::move(p));
    }
  }

  void send(const actors::disconnect_target& target, std::string iccid, std::uint64_t imsi) {
    auto p = std::make_unique<pending>();
    p->result.iccid = std::move(iccid);
    p->result.imsi = imsi;
    p->result.nas_address = target.nas_address;
    p->result.acct_session_id = target.acct_session_id;
    disconnect_config dc;
    std::shared_ptr<client_table> table;
    {
      std::lock_guard lock{cfg_mutex};
      dc = cfg;
      table = clients;
    }
    const auto ip = parse_ip(target.nas_address);
    const client* c = ip && table ? table->find(*ip) : nullptr;
    if (!c) {
      finish(std::move(p), disconnect_outcome::no_client);
      return;
    }
    const std::uint16_t port = c->cfg.disconnect_port != 0 ? c->cfg.disconnect_port : dc.port;
    p->result.nas_port = port;
    p->secret = c->cfg.disconnect_secret.empty() ? c->cfg.secret : c->cfg.disconnect_secret;
    boost::system::error_code ec;
    p->to = udp::endpoint{asio::ip::make_address(target.nas_address, ec), port};
    p->next_timeout = dc.timeout;
    p->retries_left = dc.retries;
    // RFC 5176 §3: NAS identification and session identification only.
    packet_builder b{code::disconnect_request, 0};
    if (ip->is_v4())
      b.add(attr::nas_ip_address, bytes{ip->octets.data() + 12, 4});
    else
      b.add(attr::nas_ipv6_address, bytes{ip->octets.data(), 16});
    if (!target.nas_identifier.empty())
      b.add(attr::nas_identifier, target.nas_identifier);
    if (!target.user_name.empty())
      b.add(attr::user_name, target.user_name);
    if (!target.acct_session_id.empty())
      b.add(attr::acct_session_id, target.acct_session_id);
    if (!target.calling_station_id.empty())
      b.add(attr::calling_station_id, target.calling_station_id);
    if (auto fip = parse_ip(target.framed_ip); fip && fip->is_v4())
      b.add(attr::framed_ip_address, bytes{fip->octets.data() + 12, 4});
    // RFC 5176 §3.5: Event-Timestamp against replays; Message-Authenticator
    // so NASes that require it (RFC 5080 §2.2.2 practice) accept us.
    b.add_u32(attr::event_timestamp, static_cast<std::uint32_t>(unix_ms() / 1000));
    b.add_message_authenticator();
    p->packet = b.finish_request(as_bytes(p->secret));
    launch(std::move(p));
  }
};

disconnect_sender::disconnect_sender(boost::asio::io_context& io, const radius_config& cfg,
                                     prometheus::Registry& registry) :
    impl_(std::make_shared<impl>(io, registry)) {
  // The daemon's configuration passed radius_config::validate(), which builds
  // the same table: this cannot fail for it, and a table-less sender only
  // skips events (no client to send to).
  (void)reload(cfg);
}

disconnect_sender::~disconnect_sender() {
  stop();
}

expected<void> disconnect_sender::reload(const radius_config& cfg) {
  auto table = client_table::build(cfg.clients);
  if (!table)
    return std::move(table.error().within("radius.clients"));
  std::lock_guard lock{impl_->cfg_mutex};
  impl_->cfg = cfg.disconnect;
  impl_->clients = std::move(*table);
  return {};
}

void disconnect_sender::set_result_hook(std::function<void(const disconnect_result&)> hook) {
  std::lock_guard lock{impl_->cfg_mutex};
  impl_->hook = std::move(hook);
}

void disconnect_sender::on_event(const actors::sim_event& ev) {
  if (ev.what != lock::notice::violation || !ev.disconnect)
    return;
  {
    std::lock_guard lock{impl_->cfg_mutex};
    if (!impl_->cfg.enabled)
      return;
  }
  disconnect(*ev.disconnect, ev.iccid, ev.imsi);
}

void disconnect_sender::disconnect(const actors::disconnect_target& target, std::string iccid,
                                   std::uint64_t imsi) {
  auto d = impl_;
  asio::post(d->io, [d, target, iccid = std::move(iccid), imsi]() mutable {
    if (!d->stopped)
      d->send(target, std::move(iccid), imsi);
  });
}

void disconnect_sender::stop() {
  auto d = impl_;
  asio::post(d->io, [d] {
    d->stopped = true;
    boost::system::error_code ignore;
    if (d->v4)
      d->v4->close(ignore);
    if (d->v6)
      d->v6->close(ignore);
    for (auto& p : d->by_id)
      if (p && p->timer)
        p->timer->cancel();
  });
}

} // namespace imeilock::radius
