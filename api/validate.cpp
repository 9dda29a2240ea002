#include "api/validate.hpp"

#include "lock/identifiers.hpp"

#include <algorithm>
#include <optional>
#include <unordered_map>

namespace imeilock::api {

namespace {

/// Splits one CSV record (RFC 4180: "a ""quoted"" field"); an error
/// (ec::invalid_value) on a quote that is not closed or has text after it.
expected<std::vector<std::string>> split_csv(std::string_view line) {
  auto bad_quote = [] {
    return error{ec::invalid_value,
                 "a quoted field is not closed or has text after its closing quote"};
  };
  std::vector<std::string> fields;
  fields.reserve(5); // a sims:import line
  if (line.find('"') ==
      std::string_view::npos) { // no quoting: the common case, no copy per character
    while (true) {
      auto comma = line.find(',');
      fields.emplace_back(trim(line.substr(0, comma)));
      if (comma == std::string_view::npos)
        return fields;
      line.remove_prefix(comma + 1);
    }
  }
  std::string cur;
  bool quoted = false;
  bool was_quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < line.size() && line[i + 1] == '"') {
          cur.push_back('"');
          ++i;
        } else {
          quoted = false;
        }
      } else {
        cur.push_back(c);
      }
    } else if (c == '"') {
      if (!trim(cur).empty() || was_quoted)
        return bad_quote();
      cur.clear();
      quoted = true;
      was_quoted = true;
    } else if (c == ',') {
      fields.emplace_back(was_quoted ? cur : std::string{trim(cur)});
      cur.clear();
      was_quoted = false;
    } else {
      if (was_quoted && c != ' ' && c != '\t' && c != '\r')
        return bad_quote();
      cur.push_back(c);
    }
  }
  if (quoted)
    return bad_quote();
  fields.emplace_back(was_quoted ? cur : std::string{trim(cur)});
  return fields;
}

} // namespace

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

expected<std::vector<std::uint64_t>> parse_imsis(const std::vector<std::string>& imsis) {
  if (imsis.empty())
    return error{ec::invalid_value, "a SIM needs at least one IMSI"};
  std::vector<std::uint64_t> values;
  for (const auto& imsi : imsis) {
    auto v = lock::validate_imsi(imsi);
    if (!v)
      return error{ec::invalid_value, v.error().message()};
    if (std::find(values.begin(), values.end(), *v) != values.end())
      return error{ec::invalid_value, "the IMSI " + imsi + " is listed twice"};
    values.push_back(*v);
  }
  return values;
}

expected<std::string> parse_msisdn(std::string_view msisdn) {
  if (msisdn.empty())
    return std::string{};
  auto v = lock::validate_msisdn(msisdn);
  if (!v)
    return error{ec::invalid_value, v.error().message()};
  return std::move(*v);
}

expected<void> check_network(std::string_view network) {
  bool ok = !network.empty() && network.size() <= 64 &&
            std::all_of(network.begin(), network.end(), [](char c) {
              return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
            });
  if (!ok)
    return error{ec::invalid_value,
                 "a network is a configured name such as multinet, roamnet901, ee or ee_big_data "
                 "(lower case, digits, _ or -), not \"" +
                     std::string{network} + "\""};
  return {};
}

expected<std::vector<csv_line>> parse_sim_csv(std::string_view body) {
  std::vector<csv_line> out;
  if (body.starts_with("\xEF\xBB\xBF")) // a BYTE ORDER MARK from spreadsheets
    body.remove_prefix(3);
  std::size_t line_no = 0;
  std::size_t pos = 0;
  bool header_seen = false;
  // Hashed, sized for the body's lines up front: a 20,000-line import looked
  // each ICCID up in a tree of strings (a tenth of the daemon's work per line).
  auto expected_lines = std::min<std::size_t>(
      max_csv_lines + 1, static_cast<std::size_t>(std::count(body.begin(), body.end(), '\n')) + 1);
  std::unordered_map<std::string, std::size_t> iccid_line;
  std::unordered_map<std::uint64_t, std::size_t> imsi_line;
  iccid_line.reserve(expected_lines);
  imsi_line.reserve(expected_lines);
  out.reserve(expected_lines);
  while (pos <= body.size()) {
    auto end = body.find('\n', pos);
    auto raw = body.substr(pos, end == std::string_view::npos ? end : end - pos);
    pos = end == std::string_view::npos ? body.size() + 1 : end + 1;
    ++line_no;
    auto line = trim(raw);
    if (line.empty())
      continue;
    if (!header_seen) {
      header_seen = true;
      std::string h;
      auto header = split_csv(line);
      for (auto& f : header ? *header : std::vector<std::string>{}) {
        std::transform(f.begin(), f.end(), f.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        h += (h.empty() ? "" : ",") + f;
      }
      if (h != "iccid,imsis,msisdn,network,status")
        return error{ec::invalid_value,
                     "the first line must be the header iccid,imsis,msisdn,network,status", "",
                     static_cast<int>(line_no)};
      continue;
    }
    if (out.size() == max_csv_lines) // 8 MiB of "x\n" made 4 million rejected lines: 1 GiB
      return error{ec::invalid_value,
                   "more than " + std::to_string(max_csv_lines) +
                       " SIM lines in one import: split the file",
                   "", static_cast<int>(line_no)};
    csv_line item;
    item.line_no = line_no;
    auto fail = [&](error why) {
      item.valid = std::move(why);
      out.push_back(std::move(item));
    };
    auto refuse = [&](std::string why) { fail(error{ec::invalid_value, std::move(why)}); };
    auto split = split_csv(line);
    if (!split) {
      fail(std::move(split.error()));
      continue;
    }
    auto& fields = *split;
    if (fields.size() != 5) {
      item.sim.iccid = fields.empty() ? std::string{} : fields[0];
      refuse("expected 5 fields (iccid,imsis,msisdn,network,status), found " +
             std::to_string(fields.size()));
      continue;
    }
    item.sim.iccid = fields[0];
    if (auto iccid = lock::validate_iccid(fields[0]); !iccid) {
      refuse(iccid.error().message());
      continue;
    }
    std::vector<std::string> imsis;
    for (auto part : [&] {
           std::vector<std::string_view> parts;
           std::string_view rest = fields[1];
           while (true) {
             auto semi = rest.find(';');
             parts.push_back(trim(rest.substr(0, semi)));
             if (semi == std::string_view::npos)
               break;
             rest.remove_prefix(semi + 1);
           }
           return parts;
         }())
      imsis.emplace_back(part);
    if (fields[1].empty())
      imsis.clear();
    auto imsi_values = parse_imsis(imsis);
    if (!imsi_values) {
      fail(std::move(imsi_values.error()));
      continue;
    }
    item.sim.imsis = std::move(*imsi_values);
    auto msisdn = parse_msisdn(fields[2]);
    if (!msisdn) {
      fail(std::move(msisdn.error()));
      continue;
    }
    item.sim.msisdn = std::move(*msisdn);
    if (auto network = check_network(fields[3]); !network) {
      fail(std::move(network.error()));
      continue;
    }
    item.sim.network = fields[3];
    if (!lock::parse(fields[4], item.sim.status)) {
      refuse("status must be active or inactive, not \"" + fields[4] + "\"");
      continue;
    }
    if (auto it = iccid_line.find(item.sim.iccid); it != iccid_line.end()) {
      refuse("the ICCID is already on line " + std::to_string(it->second));
      continue;
    }
    std::optional<std::string> clash;
    for (auto imsi : item.sim.imsis)
      if (auto it = imsi_line.find(imsi); it != imsi_line.end() && !clash)
        clash = "the IMSI " + lock::format_imsi(imsi) + " is already on line " +
                std::to_string(it->second);
    if (clash) {
      refuse(std::move(*clash));
      continue;
    }
    iccid_line.emplace(item.sim.iccid, line_no);
    for (auto imsi : item.sim.imsis)
      imsi_line.emplace(imsi, line_no);
    out.push_back(std::move(item));
  }
  if (!header_seen)
    return error{ec::invalid_value,
                 "the body is empty: send the header iccid,imsis,msisdn,network,status "
                 "and one line per SIM"};
  return out;
}

} // namespace imeilock::api
