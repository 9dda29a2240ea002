#pragma once
// Reading one API request, free of networking, CAF and Boost: the request
// target (path segments, percent-decoding, the query), route templates, and
// the strict JSON bodies of PUT /v1/sims/{iccid} and POST .../orders. The
// router calls exactly this code; the fuzzers in fuzz/api_*.cpp feed it
// arbitrary bytes. Every problem becomes an error answer, never an exception.

#include "actors/ports.hpp"
#include "api/error.hpp"

#include <nlohmann/json_fwd.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace imeilock::api {

/// One HTTP request as the router needs it.
struct request {
  std::string method;        ///< "GET", "PUT", ...
  std::string target;        ///< path and query, e.g. "/v1/sims?limit=10"
  std::string authorization; ///< the Authorization header, may be empty
  std::string content_type;  ///< the Content-Type header, may be empty
  std::string forwarded_by;  ///< the X-Imeilock-Forwarded-By header (router.hpp), may be empty
  std::string body;
};

/// One HTTP answer.
struct response {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers; ///< extra headers
  std::string route = "unmatched";                          ///< route template, the metrics label
  /// A write for a SIM another cluster node serves (owner_answer): "redirected",
  /// "no_owner" or "no_api_url", counted by the server; empty otherwise.
  std::string_view owner_outcome;
};

/// Builds the JSON error body {"error":{"code","message"}}.
response error_response(unsigned status, std::string_view code, std::string_view message);
/// The answer to a refusal `e` of the API layer (an api::ec): its status
/// (http_status), its code and e.describe() as the message.
response error_response(const error& e);
/// An answer with `j` as its body (invalid UTF-8 from outside is replaced, never thrown).
response json_response(unsigned status, const nlohmann::json& j);

/// `s` in ASCII lower case.
std::string lower(std::string_view s);
/// The media type of a Content-Type header, lower case, parameters dropped.
std::string media_type(std::string_view content_type);
/// A whole decimal number, nothing else; false otherwise.
bool parse_u64(std::string_view s, std::uint64_t& out);

/// The query parameters in the order sent, percent-decoded.
using query_map = std::vector<std::pair<std::string, std::string>>;

/// The first value of `key`, or nullopt.
std::optional<std::string> query_value(const query_map& q, std::string_view key);

/// The most records a list route returns in one page, and the default.
constexpr std::size_t max_page = 1000;
constexpr std::size_t default_page = 100;

/// Parses `limit`: absent -> default_page, otherwise 1..max_page
/// (ec::bad_parameter otherwise).
expected<std::size_t> read_limit(const query_map& q);

/// A request target split into what the routes match on.
struct target_parts {
  std::vector<std::string> segments; ///< percent-decoded path segments after the first '/'
  query_map query;
};

/// Splits and decodes "/a/b?k=v&..."; ec::bad_request for a target that is
/// not a path or has bad percent-encoding.
expected<target_parts> parse_target(std::string_view target);

/// Matches decoded path `segments` against a route template such as
/// "/v1/sims/{iccid}/orders"; on a match fills `params` in template order.
bool match_route(std::string_view tmpl, const std::vector<std::string>& segments,
                 std::vector<std::string>& params);

/// The body of PUT /v1/sims/{iccid} for the (already checked) `iccid` of the
/// path, or why it is refused (the first problem, an api::ec: 400/415/422).
expected<actors::sim_upsert> read_sim_upsert(const request& req, const std::string& iccid_of_path);

/// The body of POST /v1/sims/{iccid}/orders, or why it is refused (the first
/// problem, an api::ec: 400/415/422).
expected<actors::order_request> read_order(const request& req);

/// The most ICCIDs one bulk order may list (a CSV of them is about 21 MB:
/// api.max_body_bytes bounds it first by default).
constexpr std::size_t max_bulk_iccids = 1'000'000;

/// A bulk order: one order for many SIMs.
struct bulk_request {
  actors::order_request order;
  actors::job_selector selector;
};

/// POST /v1/orders:bulk: a JSON body {"type", "unbar_mode"?, "enable_imei_lock"?}
/// with exactly one of "iccids" (a list) or "filter" ({"network", "lock_state",
/// "bar_state", "alerted"}; {} selects every SIM), or a text/csv body with an
/// iccid column and the order in the query (?type=bar, unbar_mode,
/// enable_imei_lock). Every ICCID is checked (the first bad one refuses the
/// whole request, naming it); the first problem is the answer (400/415/422).
expected<bulk_request> read_bulk(const request& req, const query_map& query);

} // namespace imeilock::api
