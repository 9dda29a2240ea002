#include "protocols/diameter/requests.hpp"

#include <array>

namespace imeilock::diameter {

namespace {

std::array<std::uint8_t, 8> to_tbcd(const std::string& digits) {
  std::array<std::uint8_t, 8> out{};
  out.fill(0xff);
  for (std::size_t i = 0; i < digits.size() && i < 16; ++i) {
    const auto d = static_cast<std::uint8_t>(digits[i] - '0');
    auto& b = out[i / 2];
    b = (i % 2 == 0) ? static_cast<std::uint8_t>((b & 0xf0) | d)
                     : static_cast<std::uint8_t>((b & 0x0f) | (d << 4));
  }
  return out;
}

void add_identities(message_writer& w, const charging_spec& s) {
  if (!s.imsi.empty()) {
    const auto g = w.begin_group(avp_code::subscription_id);
    w.add_u32(avp_code::subscription_id_type, 1);
    w.add_string(avp_code::subscription_id_data, s.imsi);
    w.end_group(g);
  }
  if (!s.msisdn.empty()) {
    const auto g = w.begin_group(avp_code::subscription_id);
    w.add_u32(avp_code::subscription_id_type, 0);
    w.add_string(avp_code::subscription_id_data, s.msisdn);
    w.end_group(g);
  }
}

void add_imei(message_writer& w, const charging_spec& s) {
  switch (s.form) {
    case imei_form::none:
      return;
    case imei_form::uei_ascii:
    case imei_form::uei_hex:
    case imei_form::uei_tbcd: {
      const auto g = w.begin_group(avp_code::user_equipment_info, 0);
      w.add_u32(avp_code::user_equipment_info_type, 0, 0);
      if (s.form == imei_form::uei_ascii) {
        w.add_string(avp_code::user_equipment_info_value, s.imeisv, 0);
      } else if (s.form == imei_form::uei_hex) {
        w.add_string(avp_code::user_equipment_info_value, s.imeisv.substr(0, 15) + "F", 0);
      } else {
        const auto t = to_tbcd(s.imeisv);
        w.add_raw(avp_code::user_equipment_info_value, 0, 0, bytes{t.data(), t.size()});
      }
      w.end_group(g);
      return;
    }
    case imei_form::terminal_information: {
      const auto g =
          w.begin_group(avp_code::terminal_information, avp_flag::mandatory, vendor_3gpp);
      w.add_string(avp_code::imei, s.imeisv.substr(0, 14) + "0", avp_flag::mandatory, vendor_3gpp);
      w.add_string(avp_code::software_version, s.imeisv.substr(14, 2), avp_flag::mandatory,
                   vendor_3gpp);
      w.end_group(g);
      return;
    }
    case imei_form::imeisv_3gpp:
      w.add_string(avp_code::imeisv_3gpp, s.imeisv, avp_flag::mandatory, vendor_3gpp);
      return;
  }
}

} // namespace

void build_charging_request(std::vector<std::uint8_t>& out, const charging_spec& s) {
  const bool acr = s.command == command::accounting;
  message_writer w{out};
  w.begin(static_cast<std::uint8_t>(cmd_flag::request | cmd_flag::proxiable | s.extra_flags),
          s.command, acr ? application::accounting : application::credit_control, s.hop_by_hop,
          s.end_to_end);
  w.add_string(avp_code::session_id, s.session_id);
  w.add_string(avp_code::origin_host, s.origin_host);
  w.add_string(avp_code::origin_realm, s.origin_realm);
  w.add_string(avp_code::destination_realm, s.destination_realm);
  if (acr) {
    w.add_u32(avp_code::accounting_record_type, s.record_type);
    w.add_u32(avp_code::accounting_record_number, s.record_number);
    w.add_u32(avp_code::acct_application_id, application::accounting);
  } else {
    w.add_u32(avp_code::auth_application_id, application::credit_control);
    w.add_string(avp_code::service_context_id, "32251@3gpp.org");
    w.add_u32(avp_code::cc_request_type, s.record_type);
    w.add_u32(avp_code::cc_request_number, s.record_number);
  }
  if (!s.nested) {
    add_identities(w, s);
    add_imei(w, s);
  } else {
    // TS 32.299 §7.2.192/§7.2.158: Service-Information holds Subscription-Id and PS-Information.
    const auto si = w.begin_group(avp_code::service_information, avp_flag::mandatory, vendor_3gpp);
    add_identities(w, s);
    const auto ps = w.begin_group(avp_code::ps_information, avp_flag::mandatory, vendor_3gpp);
    add_imei(w, s);
    w.end_group(ps);
    w.end_group(si);
  }
  w.finish();
}

void build_cer(std::vector<std::uint8_t>& out, const std::string& origin_host,
               const std::string& origin_realm, std::uint32_t auth_app, std::uint32_t acct_app,
               std::uint32_t hop_by_hop, std::uint32_t end_to_end) {
  message_writer w{out};
  w.begin(cmd_flag::request, command::capabilities_exchange, application::common, hop_by_hop,
          end_to_end);
  w.add_string(avp_code::origin_host, origin_host);
  w.add_string(avp_code::origin_realm, origin_realm);
  const std::array<std::uint8_t, 6> ip{0, 1, 127, 0, 0, 1};
  w.add_raw(avp_code::host_ip_address, avp_flag::mandatory, 0, bytes{ip.data(), ip.size()});
  w.add_u32(avp_code::vendor_id, 0);
  w.add_string(avp_code::product_name, "imeilock-test", 0);
  w.add_u32(avp_code::origin_state_id, 1);
  if (auth_app != 0)
    w.add_u32(avp_code::auth_application_id, auth_app);
  if (acct_app != 0)
    w.add_u32(avp_code::acct_application_id, acct_app);
  w.finish();
}

} // namespace imeilock::diameter
