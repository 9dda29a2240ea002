#include "protocols/radius/codec.hpp"

#include <algorithm>
#include <cstring>

namespace imeilock::radius {

std::string_view to_string(discard_reason r) {
  switch (r) {
    case discard_reason::too_short:
      return "too_short";
    case discard_reason::oversize:
      return "oversize";
    case discard_reason::bad_length_field:
      return "bad_length_field";
    case discard_reason::length_mismatch:
      return "length_mismatch";
    case discard_reason::attribute_too_short:
      return "attribute_too_short";
    case discard_reason::attribute_overrun:
      return "attribute_overrun";
    case discard_reason::unexpected_code:
      return "unexpected_code";
    case discard_reason::unknown_client:
      return "unknown_client";
    case discard_reason::bad_authenticator:
      return "bad_authenticator";
    case discard_reason::bad_message_authenticator:
      return "bad_message_authenticator";
    case discard_reason::missing_status_type:
      return "missing_status_type";
    case discard_reason::in_progress:
      return "in_progress";
    case discard_reason::overloaded:
      return "overloaded";
    case discard_reason::not_durable:
      return "not_durable";
    case discard_reason::shutting_down:
      return "shutting_down";
    case discard_reason::not_owner:
      return "not_owner";
  }
  return "unknown";
}

std::optional<bytes> packet_view::find(std::uint8_t type) const {
  std::optional<bytes> out;
  for_each([&](const attribute& a) {
    if (a.type != type)
      return true;
    out = a.value;
    return false;
  });
  return out;
}

std::optional<bytes> packet_view::find_vendor(std::uint32_t vendor, std::uint8_t type) const {
  std::optional<bytes> out;
  for_each([&](const attribute& a) {
    if (a.type != attr::vendor_specific || a.value.size() < 4)
      return true;
    const std::uint32_t id = (std::uint32_t{a.value[0]} << 24) | (std::uint32_t{a.value[1]} << 16) |
                             (std::uint32_t{a.value[2]} << 8) | std::uint32_t{a.value[3]};
    if (id != vendor)
      return true;
    // RFC 2865 §5.26 recommended format: vendor-type(1) vendor-length(1) value.
    bytes sub = a.value.subspan(4);
    while (sub.size() >= 2) {
      const std::uint8_t len = sub[1];
      if (len < 2 || len > sub.size())
        return true; // malformed VSA: treat as unknown (RFC 6929 §2.8)
      if (sub[0] == type) {
        out = sub.subspan(2, len - 2u);
        return false;
      }
      sub = sub.subspan(len);
    }
    return true;
  });
  return out;
}

parse_result parse(bytes datagram) {
  parse_result r;
  if (datagram.size() > max_packet_size) {
    r.reason = discard_reason::oversize;
    return r;
  }
  if (datagram.size() < header_size) {
    r.reason = discard_reason::too_short;
    return r;
  }
  const std::size_t length = (std::size_t{datagram[2]} << 8) | datagram[3];
  // RFC 2865 §3: Length outside 20..4096 is invalid; a datagram shorter than
  // Length is discarded; octets past Length are padding.
  if (length < header_size) {
    r.reason = discard_reason::bad_length_field;
    return r;
  }
  if (length > max_packet_size) {
    r.reason = discard_reason::oversize;
    return r;
  }
  if (datagram.size() < length) {
    r.reason = discard_reason::length_mismatch;
    return r;
  }
  const bytes packet = datagram.first(length);
  // RFC 2865 §5: each attribute is at least 2 octets and must fit the packet.
  std::size_t pos = header_size;
  while (pos < length) {
    if (pos + 2 > length) {
      r.reason = discard_reason::attribute_overrun;
      return r;
    }
    const std::size_t alen = packet[pos + 1];
    if (alen < 2) {
      r.reason = discard_reason::attribute_too_short;
      return r;
    }
    if (pos + alen > length) {
      r.reason = discard_reason::attribute_overrun;
      return r;
    }
    pos += alen;
  }
  r.packet = packet_view{packet};
  return r;
}

namespace {

const std::uint8_t zero16[authenticator_size] = {};

} // namespace

authenticator request_authenticator(bytes packet, bytes secret) {
  return md5_of(
      {packet.first(4), bytes{zero16, authenticator_size}, packet.subspan(header_size), secret});
}

bool verify_request_authenticator(const packet_view& p, bytes secret) {
  const authenticator expect = request_authenticator(p.raw(), secret);
  // Not secret-dependent timing that matters here: the value is public on the wire.
  return std::equal(expect.begin(), expect.end(), p.authenticator_bytes().begin());
}

authenticator response_authenticator(bytes response, bytes request_auth, bytes secret) {
  return md5_of({response.first(4), request_auth, response.subspan(header_size), secret});
}

bool verify_response_authenticator(const packet_view& response, bytes request_auth, bytes secret) {
  const authenticator expect = response_authenticator(response.raw(), request_auth, secret);
  return std::equal(expect.begin(), expect.end(), response.authenticator_bytes().begin());
}

namespace {

/// HMAC-MD5 over `packet` with `auth_field` in place of octets 4..19 and the
/// Message-Authenticator value (16 octets at `ma_at`) zeroed.
md5_digest message_auth_hmac(bytes packet, bytes auth_field, std::size_t ma_at, bytes secret) {
  return hmac_md5(secret,
                  {packet.first(4), auth_field, packet.subspan(header_size, ma_at - header_size),
                   bytes{zero16, authenticator_size}, packet.subspan(ma_at + authenticator_size)});
}

message_auth_status check_message_auth(const packet_view& p, bytes auth_field, bytes secret) {
  const bytes raw = p.raw();
  std::size_t pos = header_size;
  std::size_t found = 0;
  while (pos + 2 <= raw.size()) {
    const std::size_t len = raw[pos + 1];
    if (raw[pos] == attr::message_authenticator) {
      // RFC 3579 §3.2: Length = 18; more than one is invalid.
      if (len != 2 + authenticator_size || found != 0)
        return message_auth_status::bad;
      found = pos + 2;
    }
    pos += len;
  }
  if (found == 0)
    return message_auth_status::absent;
  const md5_digest expect = message_auth_hmac(raw, auth_field, found, secret);
  return std::equal(expect.begin(), expect.end(), raw.begin() + static_cast<std::ptrdiff_t>(found))
             ? message_auth_status::ok
             : message_auth_status::bad;
}

} // namespace

message_auth_status check_request_message_authenticator(const packet_view& p, bytes secret) {
  return check_message_auth(p, bytes{zero16, authenticator_size}, secret);
}

message_auth_status check_response_message_authenticator(const packet_view& p, bytes request_auth,
                                                         bytes secret) {
  return check_message_auth(p, request_auth, secret);
}

std::array<std::uint8_t, header_size> make_accounting_response(std::uint8_t identifier,
                                                               bytes request_auth, bytes secret) {
  std::array<std::uint8_t, header_size> out{};
  out[0] = static_cast<std::uint8_t>(code::accounting_response);
  out[1] = identifier;
  out[2] = 0;
  out[3] = static_cast<std::uint8_t>(header_size);
  const authenticator a = response_authenticator(out, request_auth, secret);
  std::memcpy(out.data() + 4, a.data(), a.size());
  return out;
}

std::size_t accounting_response_size(const packet_view& request) {
  std::size_t len = header_size;
  request.for_each([&](const attribute& a) {
    if (a.type == attr::proxy_state)
      len += 2 + a.value.size();
    return true;
  });
  return len;
}

std::size_t write_accounting_response(const packet_view& request, bytes secret,
                                      std::span<std::uint8_t> out) {
  std::size_t len = header_size;
  request.for_each([&](const attribute& a) {
    if (a.type == attr::proxy_state && len + 2 + a.value.size() <= out.size()) {
      out[len] = attr::proxy_state;
      out[len + 1] = static_cast<std::uint8_t>(2 + a.value.size());
      std::copy(a.value.begin(), a.value.end(), out.begin() + static_cast<std::ptrdiff_t>(len + 2));
      len += 2 + a.value.size();
    }
    return true;
  });
  out[0] = static_cast<std::uint8_t>(code::accounting_response);
  out[1] = request.identifier();
  out[2] = static_cast<std::uint8_t>(len >> 8);
  out[3] = static_cast<std::uint8_t>(len);
  const authenticator a =
      response_authenticator(out.first(len), request.authenticator_bytes(), secret);
  std::copy(a.begin(), a.end(), out.begin() + 4);
  return len;
}

packet_builder::packet_builder(code c, std::uint8_t identifier) {
  buf_.reserve(128);
  buf_.resize(header_size, 0);
  buf_[0] = static_cast<std::uint8_t>(c);
  buf_[1] = identifier;
  set_length();
}

bool packet_builder::add(std::uint8_t type, bytes value) {
  if (value.size() > 253 || buf_.size() + 2 + value.size() > max_packet_size)
    return false;
  buf_.push_back(type);
  buf_.push_back(static_cast<std::uint8_t>(2 + value.size()));
  buf_.insert(buf_.end(), value.begin(), value.end());
  set_length();
  return true;
}

bool packet_builder::add(std::uint8_t type, std::string_view value) {
  return add(type, as_bytes(value));
}

bool packet_builder::add_u32(std::uint8_t type, std::uint32_t value) {
  const std::uint8_t v[4] = {
      static_cast<std::uint8_t>(value >> 24), static_cast<std::uint8_t>(value >> 16),
      static_cast<std::uint8_t>(value >> 8), static_cast<std::uint8_t>(value)};
  return add(type, bytes{v, 4});
}

bool packet_builder::add_message_authenticator() {
  if (message_auth_at_ != 0 || !add(attr::message_authenticator, bytes{zero16, authenticator_size}))
    return false;
  message_auth_at_ = buf_.size() - authenticator_size;
  return true;
}

void packet_builder::set_length() {
  buf_[2] = static_cast<std::uint8_t>(buf_.size() >> 8);
  buf_[3] = static_cast<std::uint8_t>(buf_.size());
}

std::vector<std::uint8_t> packet_builder::finish_request(bytes secret) {
  std::fill(buf_.begin() + 4, buf_.begin() + 4 + authenticator_size, std::uint8_t{0});
  if (message_auth_at_ != 0) {
    const md5_digest m =
        message_auth_hmac(buf_, bytes{zero16, authenticator_size}, message_auth_at_, secret);
    std::memcpy(buf_.data() + message_auth_at_, m.data(), m.size());
  }
  const authenticator a = request_authenticator(buf_, secret);
  std::memcpy(buf_.data() + 4, a.data(), a.size());
  return std::move(buf_);
}

std::vector<std::uint8_t> packet_builder::finish_response(bytes request_auth, bytes secret) {
  if (message_auth_at_ != 0) {
    const md5_digest m = message_auth_hmac(buf_, request_auth, message_auth_at_, secret);
    std::memcpy(buf_.data() + message_auth_at_, m.data(), m.size());
  }
  const authenticator a = response_authenticator(buf_, request_auth, secret);
  std::memcpy(buf_.data() + 4, a.data(), a.size());
  return std::move(buf_);
}

std::optional<std::uint32_t> read_u32(bytes value) {
  if (value.size() != 4)
    return std::nullopt;
  return (std::uint32_t{value[0]} << 24) | (std::uint32_t{value[1]} << 16) |
         (std::uint32_t{value[2]} << 8) | std::uint32_t{value[3]};
}

} // namespace imeilock::radius
