#include "api/request.hpp"

#include "api/validate.hpp"
#include "lock/identifiers.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <functional>

namespace imeilock::api {

using nlohmann::json;

namespace {

std::string body_of(const json& j) {
  // Never throw on text that came from outside (invalid UTF-8 is replaced).
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/// RFC 3986 percent-decoding; '+' is a space in a query. An error
/// (ec::bad_request) on a '%' not followed by two hex digits.
expected<std::string> percent_decode(std::string_view in, bool plus_is_space) {
  auto bad_escape = [] { return error{ec::bad_request, "a '%' not followed by two hex digits"}; };
  std::string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size())
        return bad_escape();
      int hi = hex_value(in[i + 1]);
      int lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0)
        return bad_escape();
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    auto pos = s.find(sep, start);
    parts.push_back(s.substr(start, pos == std::string_view::npos ? pos : pos - start));
    if (pos == std::string_view::npos)
      break;
    start = pos + 1;
  }
  return parts;
}

} // namespace

response json_response(unsigned status, const json& j) {
  response r;
  r.status = status;
  r.body = body_of(j);
  return r;
}

response error_response(unsigned status, std::string_view code, std::string_view message) {
  return json_response(status, json{{"error", {{"code", code}, {"message", message}}}});
}

response error_response(const error& e) {
  for (auto code :
       {ec::bad_request, ec::bad_parameter, ec::unsupported_media_type, ec::malformed_json,
        ec::wrong_type, ec::unknown_field, ec::missing_field, ec::invalid_value})
    if (e.is(code))
      return error_response(http_status(code), to_string(code), e.describe());
  // Only the API's refusals are answered this way: anything else is our bug.
  IMEILOCK_ASSERT(false, "error_response of an error outside api::ec");
  return {};
}

std::string lower(std::string_view s) {
  std::string out{s};
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

/// The media type of a Content-Type header, lower case, parameters dropped.
std::string media_type(std::string_view content_type) {
  return lower(trim(content_type.substr(0, content_type.find(';'))));
}

bool parse_u64(std::string_view s, std::uint64_t& out) {
  if (s.empty())
    return false;
  auto [ptr, err] = std::from_chars(s.data(), s.data() + s.size(), out);
  return err == std::errc{} && ptr == s.data() + s.size();
}

// -- Query strings -----------------------------------------------------------

std::optional<std::string> query_value(const query_map& q, std::string_view key) {
  for (const auto& [k, v] : q)
    if (k == key)
      return v;
  return std::nullopt;
}

expected<std::size_t> read_limit(const query_map& q) {
  auto v = query_value(q, "limit");
  if (!v)
    return default_page;
  std::uint64_t n = 0;
  if (!parse_u64(*v, n) || n == 0 || n > max_page)
    return error{ec::bad_parameter,
                 "limit must be a whole number from 1 to " + std::to_string(max_page)};
  return static_cast<std::size_t>(n);
}

expected<target_parts> parse_target(std::string_view target) {
  target_parts out;
  auto qpos = target.find('?');
  std::string_view path = target.substr(0, qpos);
  if (path.empty() || path.front() != '/')
    return error{ec::bad_request, "the request target must be a path"};
  for (auto part : split(path.substr(1), '/')) {
    auto decoded = percent_decode(part, false);
    if (!decoded)
      return error{ec::bad_request,
                   "bad percent-encoding in the path: " + decoded.error().message()};
    out.segments.push_back(std::move(*decoded));
  }
  if (qpos != std::string_view::npos) {
    for (auto pair : split(target.substr(qpos + 1), '&')) {
      if (pair.empty())
        continue;
      auto eq = pair.find('=');
      auto key = percent_decode(pair.substr(0, eq), true);
      auto value = eq == std::string_view::npos ? expected<std::string>{std::string{}}
                                                : percent_decode(pair.substr(eq + 1), true);
      if (!key || !value)
        return error{ec::bad_request,
                     "bad percent-encoding in the query: " + (key ? value : key).error().message()};
      out.query.emplace_back(std::move(*key), std::move(*value));
    }
  }
  return out;
}

bool match_route(std::string_view tmpl, const std::vector<std::string>& segments,
                 std::vector<std::string>& params) {
  auto parts = split(tmpl.substr(1), '/');
  if (parts.size() != segments.size())
    return false;
  std::vector<std::string> found;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].starts_with('{')) {
      // "{id}" or "{id}:cancel": a parameter, then maybe a literal suffix.
      auto suffix = parts[i].substr(parts[i].find('}') + 1);
      if (segments[i].size() <= suffix.size() || !segments[i].ends_with(suffix))
        return false;
      found.push_back(segments[i].substr(0, segments[i].size() - suffix.size()));
    } else if (parts[i] != segments[i]) {
      return false;
    }
  }
  params = std::move(found);
  return true;
}

namespace {

// -- Strict JSON bodies ------------------------------------------------------

/// No body of the API nests deeper than 2; nlohmann::json would build every
/// level of "[[[[..." before failing (about 100 bytes of memory per byte sent).
constexpr std::size_t max_json_depth = 32;

/// Whether `text` opens more than `limit` arrays/objects at once (strings skipped).
bool nests_deeper_than(std::string_view text, std::size_t limit) {
  std::size_t depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit)
        return true;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return false;
}

/// Reads a JSON object body field by field; the first problem becomes the
/// answer (400 for shape problems, 422 for bad values).
class body_reader {
public:
  explicit body_reader(const request& req) {
    auto type = media_type(req.content_type);
    if (type != "application/json") {
      fail_ = error{ec::unsupported_media_type, "send the body as Content-Type: application/json"};
      return;
    }
    if (nests_deeper_than(req.body, max_json_depth)) {
      fail_ = error{ec::malformed_json, "the body nests arrays or objects more than " +
                                            std::to_string(max_json_depth) + " levels deep"};
      return;
    }
    try {
      obj_ = json::parse(req.body);
    } catch (const json::parse_error& e) {
      fail_ =
          error{ec::malformed_json, "the body is not valid JSON (byte " + std::to_string(e.byte) +
                                        "): fix the syntax and resend"};
      return;
    } catch (const json::exception&) {
      // A number beyond a double (1e999) is out_of_range, not parse_error:
      // it must not escape to the I/O thread (fuzz/api_request_body).
      fail_ =
          error{ec::malformed_json, "the body holds a number too large to read: fix it and resend"};
      return;
    }
    if (!obj_.is_object())
      fail_ = error{ec::wrong_type, "the body must be a JSON object {...}"};
  }

  /// Fails on the first field not in `allowed`.
  void only(std::initializer_list<std::string_view> allowed) {
    if (fail_)
      return;
    for (auto it = obj_.begin(); it != obj_.end(); ++it) {
      if (std::find(allowed.begin(), allowed.end(), it.key()) != allowed.end())
        continue;
      std::string list;
      for (auto a : allowed)
        list += (list.empty() ? "" : ", ") + std::string{a};
      fail_ =
          error{ec::unknown_field, "unknown field \"" + it.key() + "\": the fields are " + list};
      return;
    }
  }

  bool has(const std::string& key) const { return !fail_ && obj_.contains(key); }

  /// A string field; `required` fields missing fail.
  std::optional<std::string> string(const std::string& key, bool required) {
    const json* f = field(key, required);
    if (!f)
      return std::nullopt;
    const auto& v = *f;
    if (!v.is_string()) {
      wrong(key, "a string");
      return std::nullopt;
    }
    return v.get<std::string>();
  }

  std::optional<bool> boolean(const std::string& key) {
    const json* f = field(key, false);
    if (!f)
      return std::nullopt;
    const auto& v = *f;
    if (!v.is_boolean()) {
      wrong(key, "true or false");
      return std::nullopt;
    }
    return v.get<bool>();
  }

  /// An array of strings field; `required` fields missing fail.
  std::optional<std::vector<std::string>> strings(const std::string& key, bool required) {
    const json* f = field(key, required);
    if (!f)
      return std::nullopt;
    const auto& v = *f;
    if (!v.is_array()) {
      wrong(key, "an array of strings");
      return std::nullopt;
    }
    std::vector<std::string> out;
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (!v[i].is_string()) {
        wrong(key + "[" + std::to_string(i) + "]", "a string");
        return std::nullopt;
      }
      out.push_back(v[i].get<std::string>());
    }
    return out;
  }

  /// An object field, absent: nullopt.
  std::optional<json> object(const std::string& key) {
    if (fail_ || !obj_.contains(key))
      return std::nullopt;
    const auto& v = obj_[key];
    if (!v.is_object()) {
      wrong(key, "an object {...}");
      return std::nullopt;
    }
    return v;
  }

  void invalid(const std::string& message) {
    if (!fail_)
      fail_ = error{ec::invalid_value, message};
  }

  /// The first problem, if any.
  const std::optional<error>& failure() const { return fail_; }

private:
  /// The field's value; null when an earlier field failed or it is absent
  /// (which fails it if `required`).
  const json* field(const std::string& key, bool required) {
    if (fail_)
      return nullptr;
    auto it = obj_.find(key);
    if (it == obj_.end()) {
      if (required)
        missing(key);
      return nullptr;
    }
    return &*it;
  }

  void missing(const std::string& key) {
    fail_ = error{ec::missing_field, "the field \"" + key + "\" is required"};
  }
  void wrong(const std::string& key, const std::string& expected) {
    fail_ = error{ec::wrong_type, "the field \"" + key + "\" must be " + expected};
  }

  json obj_;
  std::optional<error> fail_;
};

} // namespace

expected<actors::sim_upsert> read_sim_upsert(const request& req, const std::string& iccid_of_path) {
  body_reader body{req};
  body.only({"iccid", "imsis", "msisdn", "network", "status"});
  auto iccid = body.string("iccid", false);
  auto imsis = body.strings("imsis", true);
  auto msisdn = body.string("msisdn", false);
  auto network = body.string("network", true);
  auto status = body.string("status", true);
  actors::sim_upsert up;
  up.iccid = iccid_of_path;
  if (iccid && *iccid != up.iccid)
    body.invalid("the body's iccid " + *iccid + " differs from the one in the path " + up.iccid);
  if (imsis) {
    if (auto values = parse_imsis(*imsis))
      up.imsis = std::move(*values);
    else
      body.invalid(values.error().message());
  }
  if (msisdn) {
    if (auto digits = parse_msisdn(*msisdn))
      up.msisdn = std::move(*digits);
    else
      body.invalid(digits.error().message());
  }
  if (network) {
    if (auto name = check_network(*network); !name)
      body.invalid(name.error().message());
    up.network = *network;
  }
  if (status && !lock::parse(*status, up.status))
    body.invalid("status must be \"active\" or \"inactive\", not \"" + *status + "\"");
  if (const auto& problem = body.failure())
    return *problem;
  return up;
}

namespace {

/// An order's fields (a JSON body, or a CSV bulk order's query) into `out`;
/// `invalid` is told each problem. One set of checks for single and bulk orders.
void check_order(const std::optional<std::string>& type, const std::optional<std::string>& mode,
                 std::optional<bool> with_lock, const std::optional<std::string>& scope,
                 actors::order_request& out,
                 const std::function<void(const std::string&)>& invalid) {
  if (type && (!lock::parse(*type, out.type) || out.type == lock::order_type::none))
    invalid("type must be one of enable_imei_lock, disable_imei_lock, bar, unbar, activate; "
            "not \"" +
            *type + "\"");
  if (mode) {
    if (out.type != lock::order_type::unbar)
      invalid("unbar_mode applies only to unbar orders");
    else if (!lock::parse(*mode, out.mode) || out.mode == lock::unbar_mode::none)
      invalid("unbar_mode must be keep_lock or update_to_last_seen, not \"" + *mode + "\"");
  }
  if (with_lock) {
    if (out.type != lock::order_type::activate)
      invalid("enable_imei_lock applies only to activate orders");
    out.with_lock = *with_lock;
  }
  if (scope) {
    if (out.type != lock::order_type::enable_imei_lock &&
        !(out.type == lock::order_type::activate && out.with_lock))
      invalid("lock_scope applies only to enable_imei_lock and to activate with "
              "enable_imei_lock");
    else if (!lock::parse(*scope, out.scope))
      invalid("lock_scope must be imei or device_model, not \"" + *scope + "\"");
  }
}

} // namespace

expected<actors::order_request> read_order(const request& req) {
  body_reader body{req};
  body.only({"type", "unbar_mode", "enable_imei_lock", "lock_scope"});
  auto type = body.string("type", true);
  auto mode = body.string("unbar_mode", false);
  auto with_lock = body.boolean("enable_imei_lock");
  auto scope = body.string("lock_scope", false);
  actors::order_request out;
  check_order(type, mode, with_lock, scope, out, [&](const std::string& m) { body.invalid(m); });
  if (const auto& problem = body.failure())
    return *problem;
  return out;
}

namespace {

/// The ICCID column of a CSV body ("iccid" in the header line; other columns
/// are ignored, so a sims:import file will do). ec::invalid_value naming the
/// line for a malformed ICCID or a missing column.
expected<std::vector<std::string>> csv_iccids(std::string_view body, std::size_t max_lines) {
  std::vector<std::string> out;
  std::size_t line_no = 0;
  std::size_t column = std::string::npos;
  while (!body.empty()) {
    auto nl = body.find('\n');
    auto line = trim(body.substr(0, nl));
    body = nl == std::string_view::npos ? std::string_view{} : body.substr(nl + 1);
    ++line_no;
    if (line.empty())
      continue;
    std::vector<std::string_view> cells;
    for (std::size_t from = 0;;) {
      auto comma = line.find(',', from);
      cells.push_back(
          trim(line.substr(from, comma == std::string_view::npos ? comma : comma - from)));
      if (comma == std::string_view::npos)
        break;
      from = comma + 1;
    }
    if (column == std::string::npos) {
      for (std::size_t i = 0; i < cells.size(); ++i)
        if (lower(cells[i]) == "iccid" || lower(cells[i]) == "\"iccid\"")
          column = i;
      if (column == std::string::npos)
        return error{ec::invalid_value,
                     "the CSV's first line must be a header with an iccid column, e.g. \"iccid\""};
      continue;
    }
    if (out.size() >= max_lines)
      return error{ec::invalid_value, "a bulk order takes at most " + std::to_string(max_lines) +
                                          " ICCIDs: split the file"};
    auto cell = column < cells.size() ? cells[column] : std::string_view{};
    if (cell.size() >= 2 && cell.front() == '"' && cell.back() == '"')
      cell = cell.substr(1, cell.size() - 2);
    auto iccid = lock::validate_iccid(cell);
    if (!iccid)
      return error{ec::invalid_value,
                   "line " + std::to_string(line_no) + ": " + iccid.error().message()};
    out.push_back(std::move(*iccid));
  }
  if (column == std::string::npos)
    return error{ec::invalid_value, "the CSV is empty: send a header line iccid and one ICCID "
                                    "per line"};
  return out;
}

} // namespace

expected<bulk_request> read_bulk(const request& req, const query_map& query) {
  bulk_request out;
  std::optional<error> problem;
  auto invalid = [&](const std::string& m) {
    if (!problem)
      problem = error{ec::invalid_value, m};
  };
  if (media_type(req.content_type) == "text/csv") {
    for (const auto& [key, value] : query)
      if (key != "type" && key != "unbar_mode" && key != "enable_imei_lock" && key != "lock_scope")
        return error{ec::bad_parameter, "unknown query parameter \"" + key +
                                            "\": a CSV bulk order takes type, unbar_mode, "
                                            "enable_imei_lock, lock_scope"};
    auto type = query_value(query, "type");
    if (!type)
      return error{ec::bad_parameter, "a CSV bulk order names its order in the query: "
                                      "?type=bar (or unbar&unbar_mode=..., ...)"};
    std::optional<bool> with_lock;
    if (auto v = query_value(query, "enable_imei_lock")) {
      if (*v != "true" && *v != "false")
        return error{ec::bad_parameter, "enable_imei_lock must be true or false"};
      with_lock = *v == "true";
    }
    check_order(type, query_value(query, "unbar_mode"), with_lock, query_value(query, "lock_scope"),
                out.order, invalid);
    if (problem)
      return *problem;
    auto iccids = csv_iccids(req.body, max_bulk_iccids);
    if (!iccids)
      return iccids.error();
    if (iccids->empty())
      return error{ec::invalid_value, "the CSV lists no ICCID"};
    out.selector.iccids = std::move(*iccids);
    return out;
  }
  if (!query.empty())
    return error{ec::bad_parameter, "unknown query parameter \"" + query.front().first +
                                        "\": a JSON bulk order takes its fields in the body"};
  body_reader body{req};
  body.only({"type", "unbar_mode", "enable_imei_lock", "lock_scope", "iccids", "filter"});
  auto type = body.string("type", true);
  auto mode = body.string("unbar_mode", false);
  auto with_lock = body.boolean("enable_imei_lock");
  auto scope = body.string("lock_scope", false);
  auto iccids = body.strings("iccids", false);
  auto filter = body.object("filter");
  if (const auto& p = body.failure())
    return *p;
  check_order(type, mode, with_lock, scope, out.order, invalid);
  if (iccids.has_value() == filter.has_value())
    invalid("give exactly one of iccids (a list) or filter (an object; {} selects every SIM)");
  if (iccids) {
    if (iccids->empty())
      invalid("iccids is empty: list at least one ICCID");
    if (iccids->size() > max_bulk_iccids)
      invalid("a bulk order takes at most " + std::to_string(max_bulk_iccids) + " ICCIDs");
    for (std::size_t i = 0; i < iccids->size() && !problem; ++i) {
      auto iccid = lock::validate_iccid((*iccids)[i]);
      if (!iccid)
        invalid("iccids[" + std::to_string(i) + "]: " + iccid.error().message());
      else
        out.selector.iccids.push_back(std::move(*iccid));
    }
  }
  if (filter) {
    auto& f = out.selector.filter;
    for (const auto& [key, v] : filter->items()) {
      if (key == "lock_state" && v.is_string()) {
        lock::lock_state st{};
        if (!lock::parse(v.get<std::string>(), st))
          invalid("filter.lock_state must be off, awaiting_first_imei or locked");
        f.lock = st;
      } else if (key == "bar_state" && v.is_string()) {
        lock::bar_state st{};
        if (!lock::parse(v.get<std::string>(), st))
          invalid("filter.bar_state must be none, bar_pending, barred or unbar_pending");
        f.bar = st;
      } else if (key == "network" && v.is_string()) {
        if (auto name = check_network(v.get<std::string>()); !name)
          invalid("filter.network: " + name.error().message());
        f.network = v.get<std::string>();
      } else if (key == "alerted" && v.is_boolean()) {
        f.alerted = v.get<bool>();
      } else if (key == "lock_state" || key == "bar_state" || key == "network" ||
                 key == "alerted") {
        return error{ec::wrong_type, "the field \"filter." + key + "\" must be " +
                                         (key == "alerted" ? "true or false" : "a string")};
      } else {
        return error{ec::unknown_field, "unknown field \"filter." + key +
                                            "\": the fields are lock_state, bar_state, "
                                            "network, alerted"};
      }
    }
  }
  if (problem)
    return *problem;
  return out;
}

} // namespace imeilock::api
