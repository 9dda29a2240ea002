#include "protocols/diameter/wire.hpp"

#include "common/assert.hpp"

#include <cstring>

namespace imeilock::diameter {

header decode_header(bytes raw) {
  // Callers pass frames check_frame() accepted (length >= header_size), so
  // no packet can fail this.
  IMEILOCK_ASSERT(raw.size() >= header_size, "decode_header on a short frame");
  const std::uint8_t* p = raw.data();
  header h;
  h.version = p[0];
  h.length = load_u24(p + 1);
  h.flags = p[4];
  h.command = load_u24(p + 5);
  h.application = load_u32(p + 8);
  h.hop_by_hop = load_u32(p + 12);
  h.end_to_end = load_u32(p + 16);
  return h;
}

std::string_view to_string(frame_status s) {
  switch (s) {
    case frame_status::complete:
      return "complete";
    case frame_status::need_more:
      return "need_more";
    case frame_status::bad_version:
      return "bad_version";
    case frame_status::bad_length:
      return "bad_length";
    case frame_status::too_long:
      return "too_long";
  }
  return "unknown";
}

frame_status check_frame(bytes buf, std::size_t max_message_size, std::uint32_t& length) {
  if (buf.empty())
    return frame_status::need_more;
  // RFC 6733 §3: Version MUST be 1; checked on the first byte so garbage is
  // refused before we wait for a length that will never come.
  if (buf[0] != version)
    return frame_status::bad_version;
  if (buf.size() < 4)
    return frame_status::need_more;
  length = load_u24(buf.data() + 1);
  // RFC 6733 §3: the length includes the header and is always a multiple of 4.
  if (length < header_size || (length & 3U) != 0)
    return frame_status::bad_length;
  if (length > max_message_size)
    return frame_status::too_long;
  if (buf.size() < length)
    return frame_status::need_more;
  return frame_status::complete;
}

bool avp_reader::next(avp& out) {
  if (error_ != avp_error::none)
    return false;
  const std::size_t left = data_.size() - pos_;
  if (left == 0)
    return false;
  if (left < 8) {
    error_ = avp_error::truncated_header;
    return false;
  }
  const std::uint8_t* p = data_.data() + pos_;
  const std::uint8_t flags = p[4];
  const std::uint32_t len = load_u24(p + 5);
  const std::size_t hdr = (flags & avp_flag::vendor) ? 12 : 8;
  if (left < hdr) {
    error_ = avp_error::truncated_header;
    return false;
  }
  // RFC 6733 §4.1: AVP Length covers header and data but not the padding; the
  // last AVP of a message may omit padding only if it ends exactly there.
  if (len < hdr || len > left) {
    error_ = avp_error::bad_length;
    return false;
  }
  out.code = load_u32(p);
  out.flags = flags;
  out.vendor = hdr == 12 ? load_u32(p + 8) : 0;
  out.raw = data_.subspan(pos_, len);
  out.data = out.raw.subspan(hdr);
  const std::size_t padded = pad4(len);
  pos_ += padded > left ? left : padded;
  return true;
}

bool find_avp(bytes data, std::uint32_t code, std::uint32_t vendor, avp& out) {
  avp_reader r{data};
  avp a;
  while (r.next(a)) {
    if (a.code == code && a.vendor == vendor) {
      out = a;
      return true;
    }
  }
  return false;
}

void message_writer::begin(std::uint8_t flags, std::uint32_t command_code, std::uint32_t app,
                           std::uint32_t hop_by_hop, std::uint32_t end_to_end) {
  start_ = out_.size();
  out_.resize(start_ + header_size);
  std::uint8_t* p = out_.data() + start_;
  p[0] = version;
  store_u24(p + 1, 0);
  p[4] = flags;
  store_u24(p + 5, command_code);
  store_u32(p + 8, app);
  store_u32(p + 12, hop_by_hop);
  store_u32(p + 16, end_to_end);
}

std::size_t message_writer::put_avp_header(std::uint32_t code, std::uint8_t flags,
                                           std::uint32_t vendor, std::size_t value_len) {
  const bool v = vendor != 0;
  if (v)
    flags |= avp_flag::vendor;
  else
    flags = static_cast<std::uint8_t>(flags & ~avp_flag::vendor);
  const std::size_t hdr = v ? 12 : 8;
  const std::size_t at = out_.size();
  out_.resize(at + hdr + pad4(value_len)); // value-initialised: the padding is zero
  std::uint8_t* p = out_.data() + at;
  store_u32(p, code);
  p[4] = flags;
  store_u24(p + 5, static_cast<std::uint32_t>(hdr + value_len));
  if (v)
    store_u32(p + 8, vendor);
  return at + hdr;
}

void message_writer::add_raw(std::uint32_t code, std::uint8_t flags, std::uint32_t vendor,
                             bytes value) {
  const std::size_t at = put_avp_header(code, flags, vendor, value.size());
  if (!value.empty())
    std::memcpy(out_.data() + at, value.data(), value.size());
}

void message_writer::add_string(std::uint32_t code, std::string_view value, std::uint8_t flags,
                                std::uint32_t vendor) {
  add_raw(code, flags, vendor,
          bytes{reinterpret_cast<const std::uint8_t*>(value.data()), value.size()});
}

void message_writer::add_u32(std::uint32_t code, std::uint32_t value, std::uint8_t flags,
                             std::uint32_t vendor) {
  const std::size_t at = put_avp_header(code, flags, vendor, 4);
  store_u32(out_.data() + at, value);
}

void message_writer::add_u64(std::uint32_t code, std::uint64_t value, std::uint8_t flags,
                             std::uint32_t vendor) {
  const std::size_t at = put_avp_header(code, flags, vendor, 8);
  store_u32(out_.data() + at, static_cast<std::uint32_t>(value >> 32));
  store_u32(out_.data() + at + 4, static_cast<std::uint32_t>(value));
}

void message_writer::copy(const avp& a) {
  const std::size_t at = out_.size();
  out_.resize(at + pad4(a.raw.size()), 0);
  std::memcpy(out_.data() + at, a.raw.data(), a.raw.size());
}

void message_writer::append_avps(bytes encoded) {
  out_.insert(out_.end(), encoded.begin(), encoded.end());
}

std::size_t message_writer::begin_group(std::uint32_t code, std::uint8_t flags,
                                        std::uint32_t vendor) {
  const std::size_t at = out_.size();
  put_avp_header(code, flags, vendor, 0);
  return at;
}

void message_writer::end_group(std::size_t mark) {
  // Grouped data is a sequence of padded AVPs, so its length is already aligned.
  store_u24(out_.data() + mark + 5, static_cast<std::uint32_t>(out_.size() - mark));
}

bytes message_writer::finish() {
  const std::size_t len = out_.size() - start_;
  store_u24(out_.data() + start_ + 1, static_cast<std::uint32_t>(len));
  return bytes{out_.data() + start_, len};
}

} // namespace imeilock::diameter
