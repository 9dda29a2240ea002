#pragma once
// Checks of operator-supplied SIM identities, with messages that say what to
// fix, and the CSV import format. No I/O.

#include "actors/ports.hpp"
#include "api/error.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace imeilock::api {

/// `s` without leading and trailing blanks (space, tab, CR).
std::string_view trim(std::string_view s);

/// The integer forms of `imsis` (each lock::validate_imsi); ec::invalid_value when
/// there is none, one is malformed or one is listed twice.
expected<std::vector<std::uint64_t>> parse_imsis(const std::vector<std::string>& imsis);
/// The E.164 digits of `msisdn` without '+' (lock::validate_msisdn); empty
/// stays empty (unknown). ec::invalid_value when malformed.
expected<std::string> parse_msisdn(std::string_view msisdn);
/// Whether `network` can be a network name (ec::invalid_value if not). Whether the
/// network is configured is the SIM layer's decision.
expected<void> check_network(std::string_view network);

/// One data line of a CSV import.
struct csv_line {
  std::size_t line_no = 0; ///< 1-based line in the body (the header is line 1)
  actors::sim_upsert sim;  ///< what the line asks for (iccid always set)
  expected<void> valid;    ///< the line can be imported, or why not (ec::invalid_value)
};

/// The most data lines one import may hold (8 MiB of real lines is about
/// 140,000); beyond, the whole body is refused before it costs memory.
constexpr std::size_t max_csv_lines = 200'000;

/// Parses `iccid,imsis,msisdn,network,status` CSV (RFC 4180 quoting; IMSIs
/// separated by ';') into its data lines (blank lines skipped). Checks each
/// line, and ICCIDs or IMSIs repeated within the file. The whole body is
/// refused (ec::invalid_value; its line when there is one) when the header is
/// wrong or missing, or it holds more than max_csv_lines lines.
expected<std::vector<csv_line>> parse_sim_csv(std::string_view body);

} // namespace imeilock::api
