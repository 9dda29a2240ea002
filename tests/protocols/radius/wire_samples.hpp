#pragma once
// Real packets captured from radclient (freeradius-utils 3.2.1) and answers
// computed by pyrad 2.1, secret "testing123". Shared by the codec tests.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace imeilock::radius::samples {

inline std::vector<std::uint8_t> from_hex(std::string_view hex) {
  std::vector<std::uint8_t> out;
  auto nib = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<std::uint8_t>(nib(hex[i]) * 16 + nib(hex[i + 1])));
  return out;
}

inline const std::string secret = "testing123";

/// radclient: Accounting-Request Id 200, Start, User-Name "234150000000001@iot.example",
/// 3GPP-IMSI 234150000000001, 3GPP-IMEISV 3534900123456701, Calling-Station-Id
/// 447700900001, NAS-IP-Address 10.0.0.1, Acct-Session-Id sess-0001,
/// Framed-IP-Address 100.64.0.1, Message-Authenticator.
inline const std::string start_with_ma_hex =
    "04c8009d725a32f999e4cbef34724c12a135a90d280600000001011d32333431353030303030303030303140696f"
    "742e6578616d706c651a17000028af01113233343135303030303030303030311a18000028af14123335333439"
    "3030313233343536373031"
    "1f0e34343737303039303030303104060a0000012c0b736573732d3030303108"
    "066440000150122c1d3acf41f14913706bb14293a923fc";

/// radclient: the same as Interim-Update, Id 60, no Message-Authenticator.
inline const std::string interim_hex =
    "043c008bf302229071a44744f74aaec864f0c414280600000003011d32333431353030303030303030303140696f"
    "742e6578616d706c651a17000028af01113233343135303030303030303030311a18000028af14123335333439"
    "3030313233343536373031"
    "1f0e34343737303039303030303104060a0000012c0b736573732d3030303108"
    "0664400001";

/// pyrad's Accounting-Response to interim_hex.
inline const std::string interim_response_hex = "053c0014be2d44550bca71016ea72e1dc54d0461";

} // namespace imeilock::radius::samples
