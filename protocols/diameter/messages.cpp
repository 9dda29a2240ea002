#include "protocols/diameter/messages.hpp"

#include "common/assert.hpp"

#include <array>
#include <cstring>

namespace imeilock::diameter {

namespace {

bytes body_of(bytes msg) {
  return msg.subspan(header_size);
}

/// A zero-filled copy of an AVP header for Failed-AVP when the AVP itself
/// cannot be carried (RFC 6733 §7.1.5 5014: "the offending AVP header and a
/// zero filled payload", an incomplete header padded with zeros). The length
/// field is set to the header alone so the Failed-AVP stays well formed.
std::vector<std::uint8_t> header_only(bytes seq, std::size_t offset) {
  std::array<std::uint8_t, 12> h{};
  const std::size_t avail = seq.size() - offset;
  std::memcpy(h.data(), seq.data() + offset, avail < h.size() ? avail : h.size());
  const bool v = (h[4] & avp_flag::vendor) != 0;
  const std::size_t hlen = v ? 12 : 8;
  if (!v)
    std::memset(h.data() + 8, 0, 4);
  store_u24(h.data() + 5, static_cast<std::uint32_t>(hlen));
  return {h.begin(), h.begin() + static_cast<std::ptrdiff_t>(hlen)};
}

std::vector<std::uint8_t> copy_padded(const avp& a) {
  std::vector<std::uint8_t> v(pad4(a.raw.size()), 0);
  std::memcpy(v.data(), a.raw.data(), a.raw.size());
  return v;
}

/// RFC 6733 §7.5: a missing AVP is reported with an example of it whose value
/// has the correct minimum length and is zero-filled. Strings and identities
/// get one zero octet: an empty value is what decoders (Wireshark) flag.
std::vector<std::uint8_t> missing_example(std::uint32_t code, std::size_t value_len,
                                          std::uint32_t vendor = 0) {
  std::vector<std::uint8_t> v;
  message_writer w{v};
  std::array<std::uint8_t, 8> zeros{};
  w.add_raw(code, avp_flag::mandatory, vendor, bytes{zeros.data(), value_len});
  return v;
}

request_error make_error(std::uint32_t code, std::vector<std::uint8_t> failed,
                         std::string_view msg) {
  request_error e;
  e.result_code = code;
  e.failed_avp = std::move(failed);
  e.message = msg;
  return e;
}

/// Vendor-0 AVPs we recognise in an ACR/CCR: RADIUS-derived attributes
/// (1..255, RFC 7155 §4), the base protocol (RFC 6733 §4.5: 257..299,
/// 480..485) and credit control (RFC 4006 §8: 411..461). An unknown AVP with
/// the M bit outside these gets 5001 (RFC 6733 §7.1.5).
bool known_base_avp(std::uint32_t code) {
  return (code >= 1 && code <= 255) || (code >= 257 && code <= 299) ||
         (code >= 411 && code <= 461) || (code >= 480 && code <= 485);
}

/// The raw IMEI candidates found while walking a request.
struct imei_candidates {
  bytes uei; ///< User-Equipment-Info-Value of type IMEISV
  bool has_uei = false;
  bytes ti_imei; ///< Terminal-Information/IMEI
  bytes ti_sv;   ///< Terminal-Information/Software-Version
  bool has_ti = false;
  bytes imeisv; ///< 3GPP-IMEISV
  bool has_imeisv = false;
};

/// Walks AVPs that may carry identities, at any depth we descend into.
class identity_walker {
public:
  identity_walker(charging_request& out, imei_candidates& c, std::uint32_t max_depth) :
      out_(out), c_(c), max_depth_(max_depth) {}

  /// Handles `a` if it is an identity AVP (or a group holding some).
  /// Returns true if handled. `depth` is a's depth (top level = 1).
  /// Errors inside groups are reported against `top` (the top-level AVP).
  bool visit(const avp& a, std::uint32_t depth, const avp& top, request_error& err) {
    if (a.is(avp_code::subscription_id)) {
      if (deep_enough(depth, top, err))
        subscription(a, top, err);
      return true;
    }
    if (a.is(avp_code::user_equipment_info)) {
      if (deep_enough(depth, top, err))
        equipment(a, top, err);
      return true;
    }
    if (a.is(avp_code::imeisv_3gpp, vendor_3gpp)) {
      if (!c_.has_imeisv) {
        c_.imeisv = a.data;
        c_.has_imeisv = true;
      }
      return true;
    }
    if (a.is(avp_code::terminal_information, vendor_3gpp)) {
      if (deep_enough(depth, top, err))
        terminal(a, top, err);
      return true;
    }
    if (a.is(avp_code::service_information, vendor_3gpp) ||
        a.is(avp_code::ps_information, vendor_3gpp)) {
      if (!descend(a, depth, top, err))
        return true;
      avp_reader r{a.data};
      avp inner;
      while (r.next(inner) && !err)
        visit(inner, depth + 1, top, err);
      return true;
    }
    return false;
  }

private:
  /// False (and `err` set) if a Grouped AVP at `depth` is nested too deep.
  bool deep_enough(std::uint32_t depth, const avp& top, request_error& err) const {
    if (err)
      return false;
    if (depth > max_depth_) {
      err = make_error(result::invalid_avp_value, header_only(top.raw, 0), "AVP nesting too deep");
      return false;
    }
    return true;
  }

  /// RFC 6733 §7.1.5: for a Grouped AVP its header with an empty payload suffices.
  static void group_length_error(const avp& top, request_error& err) {
    err = make_error(result::invalid_avp_length, header_only(top.raw, 0),
                     "invalid AVP length in group");
  }

  /// Checks that a Grouped AVP's content can be walked and is not too deep.
  bool descend(const avp& a, std::uint32_t depth, const avp& top, request_error& err) {
    if (!deep_enough(depth, top, err))
      return false;
    avp_reader r{a.data};
    avp inner;
    while (r.next(inner)) {
    }
    if (r.error() != avp_error::none) {
      group_length_error(top, err);
      return false;
    }
    return true;
  }

  // The leaf groups below are walked once: the first of each wanted AVP is
  // kept, and nothing is taken from a group whose AVP lengths are invalid.

  void subscription(const avp& a, const avp& top, request_error& err) {
    avp_reader r{a.data};
    avp in, t, d;
    bool has_type = false, has_data = false;
    while (r.next(in)) {
      if (in.vendor != 0)
        continue;
      if (in.code == avp_code::subscription_id_type && !has_type) {
        t = in;
        has_type = true;
      } else if (in.code == avp_code::subscription_id_data && !has_data) {
        d = in;
        has_data = true;
      }
    }
    if (r.error() != avp_error::none)
      return group_length_error(top, err);
    std::uint32_t type = 0;
    if (!has_type || !t.u32(type) || !has_data)
      return;
    // RFC 4006 §8.47: 0 END_USER_E164, 1 END_USER_IMSI.
    if (type == 1 && out_.imsi.empty())
      out_.imsi.assign(d.text());
    else if (type == 0 && out_.msisdn.empty())
      out_.msisdn.assign(d.text());
  }

  void equipment(const avp& a, const avp& top, request_error& err) {
    avp_reader r{a.data};
    avp in, t, v;
    bool has_type = false, has_value = false;
    while (r.next(in)) {
      if (in.vendor != 0)
        continue;
      if (in.code == avp_code::user_equipment_info_type && !has_type) {
        t = in;
        has_type = true;
      } else if (in.code == avp_code::user_equipment_info_value && !has_value) {
        v = in;
        has_value = true;
      }
    }
    if (r.error() != avp_error::none)
      return group_length_error(top, err);
    std::uint32_t type = 0;
    if (!has_type || !t.u32(type))
      return;
    // RFC 4006 §8.50: 0 IMEISV; MAC, EUI64 and MODIFIED_EUI64 are not devices we lock.
    if (type != 0 || c_.has_uei || !has_value)
      return;
    c_.uei = v.data;
    c_.has_uei = true;
  }

  void terminal(const avp& a, const avp& top, request_error& err) {
    avp_reader r{a.data};
    avp in, i, s;
    bool has_imei = false, has_sv = false;
    while (r.next(in)) {
      if (in.vendor != vendor_3gpp)
        continue;
      if (in.code == avp_code::imei && !has_imei) {
        i = in;
        has_imei = true;
      } else if (in.code == avp_code::software_version && !has_sv) {
        s = in;
        has_sv = true;
      }
    }
    if (r.error() != avp_error::none)
      return group_length_error(top, err);
    if (c_.has_ti || !has_imei)
      return;
    c_.ti_imei = i.data;
    if (has_sv)
      c_.ti_sv = s.data;
    c_.has_ti = true;
  }

  charging_request& out_;
  imei_candidates& c_;
  std::uint32_t max_depth_;
};

bool all_digits(bytes b) {
  for (auto ch : b)
    if (ch < '0' || ch > '9')
      return false;
  return true;
}

/// Terminal-Information: IMEI (14 or 15 digits) + Software-Version (2 digits)
/// form the IMEISV (TS 29.272 §7.3.3-7.3.5).
lock::imei_value decode_terminal(bytes imei, bytes sv) {
  if (sv.size() == 2 && all_digits(sv) && (imei.size() == 14 || imei.size() == 15) &&
      all_digits(imei)) {
    std::array<std::uint8_t, 16> s{};
    std::memcpy(s.data(), imei.data(), 14);
    s[14] = sv[0];
    s[15] = sv[1];
    return lock::decode_imei(bytes{s.data(), s.size()});
  }
  return lock::decode_imei(imei);
}

/// Origin-Host and Origin-Realm, which every peer-control message carries
/// (RFC 6733 §5.3.1, §5.4.1, §5.5.1): read while walking its AVPs, then
/// checked for presence.
struct peer_identity {
  std::string& host;
  std::string& realm;
  bool has_host = false;
  bool has_realm = false;

  /// Takes `a` if it is one of the two; false otherwise.
  bool read(const avp& a) {
    if (a.code == avp_code::origin_host) {
      host.assign(a.text());
      has_host = true;
    } else if (a.code == avp_code::origin_realm) {
      realm.assign(a.text());
      has_realm = true;
    } else {
      return false;
    }
    return true;
  }

  /// 5005 for the first one missing, or no error.
  request_error missing() const {
    if (!has_host)
      return make_error(result::missing_avp, missing_example(avp_code::origin_host, 1),
                        "missing Origin-Host");
    if (!has_realm)
      return make_error(result::missing_avp, missing_example(avp_code::origin_realm, 1),
                        "missing Origin-Realm");
    return {};
  }
};

/// 5014 for an AVP sequence that does not parse (its reader's error), or no error.
request_error avp_sequence_error(const avp_reader& r, bytes body) {
  if (r.error() == avp_error::none)
    return {};
  return make_error(result::invalid_avp_length, header_only(body, r.error_offset()),
                    "invalid AVP length");
}

} // namespace

message_kind classify(const header& h) {
  const bool req = h.is_request();
  switch (h.command) {
    case command::capabilities_exchange:
      return req ? message_kind::cer : message_kind::cea;
    case command::device_watchdog:
      return req ? message_kind::dwr : message_kind::dwa;
    case command::disconnect_peer:
      return req ? message_kind::dpr : message_kind::dpa;
    case command::accounting:
      return req ? message_kind::acr : message_kind::other_answer;
    case command::credit_control:
      return req ? message_kind::ccr : message_kind::other_answer;
    default:
      return req ? message_kind::other_request : message_kind::other_answer;
  }
}

std::string_view command_name(std::uint32_t c) {
  switch (c) {
    case command::capabilities_exchange:
      return "CE";
    case command::accounting:
      return "AC";
    case command::credit_control:
      return "CC";
    case command::device_watchdog:
      return "DW";
    case command::disconnect_peer:
      return "DP";
    default:
      return "other";
  }
}

request_error check_request_header(const header& h) {
  // RFC 6733 §3: the E bit MUST NOT be set in requests; reserved bits MUST be 0.
  if ((h.flags & cmd_flag::error) != 0 || (h.flags & cmd_flag::reserved) != 0)
    return make_error(result::invalid_hdr_bits, {}, "invalid header bits");
  switch (h.application) {
    case application::common:
      if (h.command == command::capabilities_exchange || h.command == command::device_watchdog ||
          h.command == command::disconnect_peer)
        return {};
      return make_error(result::command_unsupported, {}, "command not supported");
    case application::accounting:
      if (h.command == command::accounting)
        return {};
      return make_error(result::command_unsupported, {}, "command not supported");
    case application::credit_control:
      if (h.command == command::credit_control)
        return {};
      return make_error(result::command_unsupported, {}, "command not supported");
    default:
      // RFC 6733 §7.1.3: 3007 for a request of an application we do not support.
      return make_error(result::application_unsupported, {}, "application not supported");
  }
}

request_error parse_charging_request(bytes msg, const decode_limits& lim, charging_request& out) {
  out.ctx.request = decode_header(msg);
  const header& h = out.ctx.request;
  const bool acr = h.command == command::accounting;
  const bytes body = body_of(msg);

  request_error err;
  bool session = false, host = false, realm = false, dest_realm = false, rec_type = false,
       rec_num = false, auth_app = false, svc_ctx = false, type_ok = false, num_ok = false;
  imei_candidates cand;
  identity_walker walker{out, cand, lim.max_avp_depth};

  avp_reader r{body};
  avp a;
  while (!err && r.next(a)) {
    if (a.vendor == 0) {
      std::uint32_t v = 0;
      switch (a.code) {
        case avp_code::session_id:
          if (!session)
            out.ctx.session_id.assign(a.text());
          session = true;
          continue;
        case avp_code::origin_host:
          if (!host)
            out.origin_host.assign(a.text());
          host = true;
          continue;
        case avp_code::origin_realm:
          if (!realm)
            out.origin_realm.assign(a.text());
          realm = true;
          continue;
        case avp_code::destination_realm:
          dest_realm = true;
          continue;
        case avp_code::proxy_info: {
          const auto p = copy_padded(a);
          out.ctx.proxy_info.insert(out.ctx.proxy_info.end(), p.begin(), p.end());
          continue;
        }
        case avp_code::acct_application_id:
          if (!a.u32(v))
            err = make_error(result::invalid_avp_length, copy_padded(a), "invalid AVP length");
          out.ctx.has_acct_application_id = true;
          out.ctx.acct_application_id = v;
          continue;
        case avp_code::auth_application_id:
          if (!a.u32(v))
            err = make_error(result::invalid_avp_length, copy_padded(a), "invalid AVP length");
          out.ctx.auth_application_id = v;
          auth_app = true;
          continue;
        case avp_code::service_context_id:
          svc_ctx = true;
          continue;
        default:
          break;
      }
      const bool type_avp =
          acr ? a.code == avp_code::accounting_record_type : a.code == avp_code::cc_request_type;
      const bool num_avp = acr ? a.code == avp_code::accounting_record_number
                               : a.code == avp_code::cc_request_number;
      if (type_avp) {
        if (!a.u32(v)) {
          err = make_error(result::invalid_avp_length, copy_padded(a), "invalid AVP length");
        } else if (v < 1 || v > 4) {
          // RFC 6733 §9.8.1 / RFC 4006 §8.3: EVENT 1, START/INITIAL 2, INTERIM/UPDATE 3,
          // STOP/TERMINATION 4.
          err = make_error(result::invalid_avp_value, copy_padded(a), "invalid record type");
        } else if (!rec_type) {
          out.ctx.record_type = v;
          type_ok = true;
        }
        rec_type = true;
        continue;
      }
      if (num_avp) {
        if (!a.u32(v))
          err = make_error(result::invalid_avp_length, copy_padded(a), "invalid AVP length");
        else if (!rec_num) {
          out.ctx.record_number = v;
          num_ok = true;
        }
        rec_num = true;
        continue;
      }
    }
    const avp top = a;
    if (walker.visit(a, 1, top, err))
      continue;
    // RFC 6733 §7.1.5: an AVP with the M bit we do not understand -> 5001.
    // 3GPP vendor AVPs are tolerated: we are a tap on Rf/Gy, not a charging
    // system, and TS 32.299 defines hundreds of them.
    if (a.mandatory() &&
        ((a.vendor == 0 && !known_base_avp(a.code)) || (a.vendor != 0 && a.vendor != vendor_3gpp)))
      err = make_error(result::avp_unsupported, copy_padded(a), "AVP not supported");
  }
  if (!err && r.error() != avp_error::none)
    err = make_error(result::invalid_avp_length, header_only(body, r.error_offset()),
                     "invalid AVP length");

  // Echo the record's type and number whenever both were read intact, even in an error answer.
  out.ctx.has_record = type_ok && num_ok;
  if (err)
    return err;

  // RFC 6733 §9.7.1 (ACR) and RFC 4006 §3.1 (CCR): required AVPs, in ABNF order.
  if (!session)
    return make_error(result::missing_avp, missing_example(avp_code::session_id, 1),
                      "missing Session-Id");
  if (!host)
    return make_error(result::missing_avp, missing_example(avp_code::origin_host, 1),
                      "missing Origin-Host");
  if (!realm)
    return make_error(result::missing_avp, missing_example(avp_code::origin_realm, 1),
                      "missing Origin-Realm");
  if (!dest_realm)
    return make_error(result::missing_avp, missing_example(avp_code::destination_realm, 1),
                      "missing Destination-Realm");
  if (acr) {
    if (!rec_type)
      return make_error(result::missing_avp, missing_example(avp_code::accounting_record_type, 4),
                        "missing Accounting-Record-Type");
    if (!rec_num)
      return make_error(result::missing_avp, missing_example(avp_code::accounting_record_number, 4),
                        "missing Accounting-Record-Number");
  } else {
    if (!auth_app)
      return make_error(result::missing_avp, missing_example(avp_code::auth_application_id, 4),
                        "missing Auth-Application-Id");
    if (!svc_ctx)
      return make_error(result::missing_avp, missing_example(avp_code::service_context_id, 1),
                        "missing Service-Context-Id");
    if (!rec_type)
      return make_error(result::missing_avp, missing_example(avp_code::cc_request_type, 4),
                        "missing CC-Request-Type");
    if (!rec_num)
      return make_error(result::missing_avp, missing_example(avp_code::cc_request_number, 4),
                        "missing CC-Request-Number");
  }

  // The IMEI, by preference: User-Equipment-Info, Terminal-Information, 3GPP-IMEISV.
  if (cand.has_uei) {
    out.imei = lock::decode_imei(cand.uei);
    out.imei_source = "uei";
  } else if (cand.has_ti) {
    out.imei = decode_terminal(cand.ti_imei, cand.ti_sv);
    out.imei_source = "terminal_information";
  } else if (cand.has_imeisv) {
    out.imei = lock::decode_imei(cand.imeisv);
    out.imei_source = "3gpp_imeisv";
  }
  return {};
}

request_error parse_cer(bytes msg, cer_info& out) {
  out.request = decode_header(msg);
  peer_identity id{out.origin_host, out.origin_realm};
  bool ip = false, vendor = false, product = false;
  avp_reader r{body_of(msg)};
  avp a;
  while (r.next(a)) {
    if (a.vendor != 0 || id.read(a))
      continue;
    std::uint32_t v = 0;
    switch (a.code) {
      case avp_code::host_ip_address:
        ip = true;
        break;
      case avp_code::vendor_id:
        vendor = true;
        break;
      case avp_code::product_name:
        out.product_name.assign(a.text());
        product = true;
        break;
      case avp_code::origin_state_id:
        if (a.u32(v))
          out.origin_state_id = v;
        break;
      case avp_code::auth_application_id:
        if (!a.u32(v))
          return make_error(result::invalid_avp_length, copy_padded(a), "invalid AVP length");
        out.auth_applications.push_back(v);
        break;
      case avp_code::acct_application_id:
        if (!a.u32(v))
          return make_error(result::invalid_avp_length, copy_padded(a), "invalid AVP length");
        out.acct_applications.push_back(v);
        break;
      case avp_code::vendor_specific_application_id: {
        avp_reader g{a.data};
        avp in;
        while (g.next(in)) {
          if (in.vendor == 0 && in.u32(v)) {
            if (in.code == avp_code::auth_application_id)
              out.auth_applications.push_back(v);
            if (in.code == avp_code::acct_application_id)
              out.acct_applications.push_back(v);
          }
        }
        if (g.error() != avp_error::none)
          return make_error(result::invalid_avp_length, header_only(a.raw, 0),
                            "invalid AVP length in group");
        break;
      }
      default:
        break;
    }
  }
  if (auto e = avp_sequence_error(r, body_of(msg)); e)
    return e;
  // RFC 6733 §5.3.1 CER ABNF.
  if (auto e = id.missing(); e)
    return e;
  if (!ip)
    return make_error(result::missing_avp, missing_example(avp_code::host_ip_address, 6),
                      "missing Host-IP-Address");
  if (!vendor)
    return make_error(result::missing_avp, missing_example(avp_code::vendor_id, 4),
                      "missing Vendor-Id");
  if (!product)
    return make_error(result::missing_avp, missing_example(avp_code::product_name, 1),
                      "missing Product-Name");
  return {};
}

request_error parse_base(bytes msg, base_info& out) {
  out.hdr = decode_header(msg);
  peer_identity id{out.origin_host, out.origin_realm};
  bool cause = false;
  avp_reader r{body_of(msg)};
  avp a;
  while (r.next(a)) {
    if (a.vendor != 0 || id.read(a))
      continue;
    std::uint32_t v = 0;
    switch (a.code) {
      case avp_code::result_code:
        if (a.u32(v))
          out.result_code = v;
        break;
      case avp_code::disconnect_cause:
        if (!a.u32(v))
          return make_error(result::invalid_avp_length, copy_padded(a), "invalid AVP length");
        out.disconnect_cause = v;
        cause = true;
        break;
      default:
        break;
    }
  }
  if (auto e = avp_sequence_error(r, body_of(msg)); e)
    return e;
  if (!out.hdr.is_request())
    return {};
  if (auto e = id.missing(); e)
    return e;
  if (out.hdr.command == command::disconnect_peer && !cause)
    return make_error(result::missing_avp, missing_example(avp_code::disconnect_cause, 4),
                      "missing Disconnect-Cause");
  return {};
}

namespace {

void add_failed(message_writer& w, bytes failed_avp, std::string_view error_message,
                const local_identity& self) {
  if (!error_message.empty()) {
    // RFC 6733 §7.3, §7.4: Error-Message and Error-Reporting-Host carry no M bit.
    w.add_string(avp_code::error_message, error_message, 0);
  }
  (void)self;
  if (!failed_avp.empty()) {
    const auto g = w.begin_group(avp_code::failed_avp);
    w.append_avps(failed_avp);
    w.end_group(g);
  }
}

std::uint8_t answer_flags(const header& request, std::uint32_t result_code) {
  std::uint8_t f = request.flags & cmd_flag::proxiable;
  // RFC 6733 §7.1.3: protocol errors (3xxx) are answered with the E bit.
  if (result_code >= 3000 && result_code < 4000)
    f |= cmd_flag::error;
  return f;
}

} // namespace

namespace {

/// Writes vendor-0 AVPs through a raw pointer into space sized beforehand:
/// the ACA/CCA of every accepted record is the one answer on the hot path,
/// and message_writer grows its vector once per AVP.
struct avp_out {
  std::uint8_t* p;

  void u32(std::uint32_t code, std::uint32_t value) {
    store_u32(p, code);
    p[4] = avp_flag::mandatory;
    store_u24(p + 5, 12);
    store_u32(p + 8, value);
    p += 12;
  }
  void text(std::uint32_t code, std::string_view value) {
    store_u32(p, code);
    p[4] = avp_flag::mandatory;
    store_u24(p + 5, static_cast<std::uint32_t>(8 + value.size()));
    if (!value.empty())
      std::memcpy(p + 8, value.data(), value.size());
    const std::size_t padded = pad4(value.size());
    std::memset(p + 8 + value.size(), 0, padded - value.size());
    p += 8 + padded;
  }
  static constexpr std::size_t text_size(std::string_view value) { return 8 + pad4(value.size()); }
};

} // namespace

void build_charging_answer(std::vector<std::uint8_t>& out, const answer_context& ctx,
                           const local_identity& self, std::uint32_t result_code, bytes failed_avp,
                           std::string_view error_message) {
  if (result_code >= 3000 && result_code < 4000) {
    build_error_answer(out, ctx.request, ctx.session_id, self, result_code, failed_avp,
                       error_message);
    return;
  }
  const header& h = ctx.request;
  if (!failed_avp.empty() || !error_message.empty()) {
    // A 5xxx answer to a request that failed validation: rare, so the general writer.
    message_writer w{out};
    w.begin(answer_flags(h, result_code), h.command, h.application, h.hop_by_hop, h.end_to_end);
    if (!ctx.session_id.empty())
      w.add_string(avp_code::session_id, ctx.session_id);
    w.add_u32(avp_code::result_code, result_code);
    w.add_string(avp_code::origin_host, self.origin_host);
    w.add_string(avp_code::origin_realm, self.origin_realm);
    if (h.command == command::accounting) {
      if (ctx.has_record) {
        w.add_u32(avp_code::accounting_record_type, ctx.record_type);
        w.add_u32(avp_code::accounting_record_number, ctx.record_number);
      }
      if (ctx.has_acct_application_id)
        w.add_u32(avp_code::acct_application_id, ctx.acct_application_id);
    } else {
      w.add_u32(avp_code::auth_application_id, application::credit_control);
      if (ctx.has_record) {
        w.add_u32(avp_code::cc_request_type, ctx.record_type);
        w.add_u32(avp_code::cc_request_number, ctx.record_number);
      }
    }
    add_failed(w, failed_avp, error_message, self);
    w.add_u32(avp_code::origin_state_id, self.origin_state_id);
    if (!ctx.proxy_info.empty())
      w.append_avps(ctx.proxy_info);
    w.finish();
    return;
  }
  // The same AVPs in the same order, sized first and written in one pass.
  const bool acr = h.command == command::accounting;
  const std::size_t u32s =
      2 + (ctx.has_record ? 2 : 0) +
      (acr ? (ctx.has_acct_application_id ? 1 : 0) : 1); // + Result-Code, Origin-State-Id
  const std::size_t len = header_size +
                          (ctx.session_id.empty() ? 0 : avp_out::text_size(ctx.session_id)) +
                          avp_out::text_size(self.origin_host) +
                          avp_out::text_size(self.origin_realm) + 12 * u32s + ctx.proxy_info.size();
  const std::size_t start = out.size();
  out.resize(start + len);
  std::uint8_t* p = out.data() + start;
  p[0] = version;
  store_u24(p + 1, static_cast<std::uint32_t>(len));
  p[4] = answer_flags(h, result_code);
  store_u24(p + 5, h.command);
  store_u32(p + 8, h.application);
  store_u32(p + 12, h.hop_by_hop);
  store_u32(p + 16, h.end_to_end);
  avp_out w{p + header_size};
  if (!ctx.session_id.empty())
    w.text(avp_code::session_id, ctx.session_id);
  w.u32(avp_code::result_code, result_code);
  w.text(avp_code::origin_host, self.origin_host);
  w.text(avp_code::origin_realm, self.origin_realm);
  if (acr) {
    // RFC 6733 §9.7.2: the ACA echoes the record's type and number.
    if (ctx.has_record) {
      w.u32(avp_code::accounting_record_type, ctx.record_type);
      w.u32(avp_code::accounting_record_number, ctx.record_number);
    }
    if (ctx.has_acct_application_id)
      w.u32(avp_code::acct_application_id, ctx.acct_application_id);
  } else {
    // RFC 4006 §3.2: Auth-Application-Id, CC-Request-Type and -Number are echoed.
    w.u32(avp_code::auth_application_id, application::credit_control);
    if (ctx.has_record) {
      w.u32(avp_code::cc_request_type, ctx.record_type);
      w.u32(avp_code::cc_request_number, ctx.record_number);
    }
  }
  w.u32(avp_code::origin_state_id, self.origin_state_id);
  // RFC 6733 §6.2: Proxy-Info AVPs are copied to the answer in the same order.
  if (!ctx.proxy_info.empty()) {
    std::memcpy(w.p, ctx.proxy_info.data(), ctx.proxy_info.size());
    w.p += ctx.proxy_info.size();
  }
  IMEILOCK_ASSERT(w.p == out.data() + out.size(), "charging answer sized wrongly");
}

void build_error_answer(std::vector<std::uint8_t>& out, const header& h,
                        std::string_view session_id, const local_identity& self,
                        std::uint32_t result_code, bytes failed_avp,
                        std::string_view error_message) {
  message_writer w{out};
  w.begin(answer_flags(h, result_code), h.command, h.application, h.hop_by_hop, h.end_to_end);
  // RFC 6733 §7.2 answer-message: 0*1< Session-Id > { Origin-Host } { Origin-Realm } { Result-Code
  // } ...
  if (!session_id.empty())
    w.add_string(avp_code::session_id, session_id);
  w.add_string(avp_code::origin_host, self.origin_host);
  w.add_string(avp_code::origin_realm, self.origin_realm);
  w.add_u32(avp_code::result_code, result_code);
  w.add_u32(avp_code::origin_state_id, self.origin_state_id);
  add_failed(w, failed_avp, error_message, self);
  w.finish();
}

void build_cea(std::vector<std::uint8_t>& out, const header& h, const local_identity& self,
               std::uint32_t result_code, const std::vector<host_address>& addresses,
               bytes failed_avp, std::string_view error_message) {
  message_writer w{out};
  w.begin(answer_flags(h, result_code), command::capabilities_exchange, application::common,
          h.hop_by_hop, h.end_to_end);
  w.add_u32(avp_code::result_code, result_code);
  w.add_string(avp_code::origin_host, self.origin_host);
  w.add_string(avp_code::origin_realm, self.origin_realm);
  for (const auto& a : addresses) {
    std::array<std::uint8_t, 18> v{};
    v[0] = static_cast<std::uint8_t>(a.family >> 8);
    v[1] = static_cast<std::uint8_t>(a.family);
    const std::size_t n = a.addr.size() < 16 ? a.addr.size() : 16;
    std::memcpy(v.data() + 2, a.addr.data(), n);
    w.add_raw(avp_code::host_ip_address, avp_flag::mandatory, 0, bytes{v.data(), n + 2});
  }
  w.add_u32(avp_code::vendor_id, self.vendor_id);
  w.add_string(avp_code::product_name, self.product_name, 0);
  w.add_u32(avp_code::origin_state_id, self.origin_state_id);
  w.add_u32(avp_code::supported_vendor_id, vendor_3gpp);
  // Gy is RFC 4006 (auth application 4), Rf is base accounting (acct application 3);
  // 3GPP peers often advertise Rf inside a Vendor-Specific-Application-Id.
  w.add_u32(avp_code::auth_application_id, application::credit_control);
  w.add_u32(avp_code::acct_application_id, application::accounting);
  const auto g = w.begin_group(avp_code::vendor_specific_application_id);
  w.add_u32(avp_code::vendor_id, vendor_3gpp);
  w.add_u32(avp_code::acct_application_id, application::accounting);
  w.end_group(g);
  add_failed(w, failed_avp, error_message, self);
  w.add_u32(avp_code::firmware_revision, self.firmware_revision, 0);
  w.finish();
}

void build_dwa(std::vector<std::uint8_t>& out, const header& h, const local_identity& self,
               std::uint32_t result_code) {
  message_writer w{out};
  w.begin(answer_flags(h, result_code), command::device_watchdog, application::common, h.hop_by_hop,
          h.end_to_end);
  w.add_u32(avp_code::result_code, result_code);
  w.add_string(avp_code::origin_host, self.origin_host);
  w.add_string(avp_code::origin_realm, self.origin_realm);
  w.add_u32(avp_code::origin_state_id, self.origin_state_id);
  w.finish();
}

void build_dpa(std::vector<std::uint8_t>& out, const header& h, const local_identity& self,
               std::uint32_t result_code) {
  message_writer w{out};
  w.begin(answer_flags(h, result_code), command::disconnect_peer, application::common, h.hop_by_hop,
          h.end_to_end);
  w.add_u32(avp_code::result_code, result_code);
  w.add_string(avp_code::origin_host, self.origin_host);
  w.add_string(avp_code::origin_realm, self.origin_realm);
  w.finish();
}

void build_dwr(std::vector<std::uint8_t>& out, const local_identity& self, std::uint32_t hop_by_hop,
               std::uint32_t end_to_end) {
  message_writer w{out};
  w.begin(cmd_flag::request, command::device_watchdog, application::common, hop_by_hop, end_to_end);
  w.add_string(avp_code::origin_host, self.origin_host);
  w.add_string(avp_code::origin_realm, self.origin_realm);
  w.add_u32(avp_code::origin_state_id, self.origin_state_id);
  w.finish();
}

void build_dpr(std::vector<std::uint8_t>& out, const local_identity& self, std::uint32_t hop_by_hop,
               std::uint32_t end_to_end, std::uint32_t cause) {
  message_writer w{out};
  w.begin(cmd_flag::request, command::disconnect_peer, application::common, hop_by_hop, end_to_end);
  w.add_string(avp_code::origin_host, self.origin_host);
  w.add_string(avp_code::origin_realm, self.origin_realm);
  w.add_u32(avp_code::disconnect_cause, cause);
  w.finish();
}

namespace {
constexpr std::uint64_t fnv_offset = 14695981039346656037ULL;
constexpr std::uint64_t fnv_prime = 1099511628211ULL;
std::uint64_t fnv(std::uint64_t h, std::string_view s) {
  for (unsigned char c : s)
    h = (h ^ c) * fnv_prime;
  return h;
}
std::uint64_t fnv_u32(std::uint64_t h, std::uint32_t v) {
  for (int i = 0; i < 4; ++i)
    h = (h ^ ((v >> (8 * i)) & 0xffU)) * fnv_prime;
  return h;
}
std::uint64_t nonzero(std::uint64_t h) {
  return h == 0 ? 1 : h;
}
} // namespace

std::uint64_t record_key(std::string_view session_id, std::uint32_t command_code,
                         std::uint32_t record_number) {
  return nonzero(fnv_u32(fnv_u32(fnv(fnv_offset, session_id), command_code), record_number));
}

std::uint64_t end_to_end_key(std::string_view origin_host, std::uint32_t end_to_end) {
  // A different seed than record_key so the two kinds of key never collide by construction.
  return nonzero(fnv_u32(fnv(fnv_offset ^ 0x9e3779b97f4a7c15ULL, origin_host), end_to_end));
}

std::uint64_t imsi_to_integer(std::string_view digits) {
  if (digits.size() < 5 || digits.size() > 15)
    return 0;
  std::uint64_t v = 0;
  for (char c : digits) {
    if (c < '0' || c > '9')
      return 0;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return v;
}

} // namespace imeilock::diameter
