#pragma once
// Checks of operator-supplied SIM identities, with messages that say what to
// fix, and the CSV import format. No I/O.

#include "actors/ports.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace imeilock::api {

/// `s` without leading and trailing blanks (space, tab, CR).
std::string_view trim(std::string_view s);

/// Why `iccid` is not a valid ICCID, or nullopt.
std::optional<std::string> iccid_problem(std::string_view iccid);
/// Why one of `imsis` is invalid (or there are none, or one is repeated);
/// on success fills `out` with their integer forms.
std::optional<std::string> imsis_problem(const std::vector<std::string>& imsis,
                                         std::vector<std::uint64_t>& out);
/// Why `msisdn` is invalid (empty is allowed: unknown), or nullopt; on
/// success `normalised` holds its E.164 digits without '+'.
std::optional<std::string> msisdn_problem(std::string_view msisdn, std::string& normalised);
/// Why `network` cannot be a network name, or nullopt. Whether the network
/// is configured is the SIM layer's decision.
std::optional<std::string> network_problem(std::string_view network);

/// One data line of a CSV import.
struct csv_line {
  std::size_t line_no = 0;          ///< 1-based line in the body (the header is line 1)
  actors::sim_upsert sim;           ///< what the line asks for (iccid always set)
  std::optional<std::string> error; ///< why the line cannot be imported
};

/// A parsed CSV import body.
struct csv_import {
  std::optional<std::string> header_error; ///< the whole body is refused
  std::vector<csv_line> lines;             ///< data lines, blank lines skipped
};

/// The most data lines one import may hold (8 MiB of real lines is about
/// 140,000); beyond, the whole body is refused before it costs memory.
constexpr std::size_t max_csv_lines = 200'000;

/// Parses `iccid,imsis,msisdn,network,status` CSV (RFC 4180 quoting; IMSIs
/// separated by ';'). Checks each line, and ICCIDs or IMSIs repeated within
/// the file.
csv_import parse_sim_csv(std::string_view body);

} // namespace imeilock::api
