#pragma once
// Validators for the identifiers of a SIM in the inventory (ICCID, IMSI,
// MSISDN). Operators import these by the million from other systems: every
// refusal says in one sentence what is wrong, so a bad row can be fixed.
// Each returns the normalised value, or an error with ec::invalid and that
// sentence as its message (common/error.hpp).

#include "common/error.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace imeilock::lock {

/// Validates an ICCID (ITU-T E.118): decimal digits only, starting with the
/// telecom major industry identifier "89", 18 to 20 digits long.
/// The check digit rule: 19- and 20-digit ICCIDs end in their Luhn check
/// digit, and it must be right. That is the form printed on every card and
/// stored on the SIM itself (EF_ICCID, ETSI TS 102 221 §13.2), and it is what
/// operators' SIM files carry; checking it catches every single-digit typo and
/// most swaps in an import. An 18-digit value is the only length that is
/// never a complete ICCID with its check digit in practice: it is accepted as
/// a 19-digit ICCID written without its check digit (some billing exports do
/// this), with no check possible. Returns the ICCID unchanged.
expected<std::string> validate_iccid(std::string_view text);

/// Validates an IMSI (ITU-T E.212 / TS 23.003 §2.2): exactly 15 decimal
/// digits (MCC + MNC + MSIN), not all zeros. Returns it as an integer (it
/// fits in 50 bits).
expected<std::uint64_t> validate_imsi(std::string_view text);

/// The 15-digit form of an IMSI integer (leading zeros restored).
std::string format_imsi(std::uint64_t imsi);

/// Validates an MSISDN in ITU-T E.164 international form: an optional
/// leading '+', then 7 to 15 digits, the first not 0 (country codes never
/// start with 0: a leading 0 is a national trunk prefix, not E.164).
/// Returns the digits without the '+' (the form RADIUS and Diameter carry).
expected<std::string> validate_msisdn(std::string_view text);

/// True when the digits of `text` (all decimal) pass the Luhn check, the
/// check digit being the last one (ISO/IEC 7812-1 Annex B, used by E.118).
bool luhn_valid(std::string_view digits);

} // namespace imeilock::lock
