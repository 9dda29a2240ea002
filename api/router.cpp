#include "api/router.hpp"

#include "api/assets.hpp"
#include "api/json_views.hpp"
#include "api/validate.hpp"
#include "common/error.hpp"
#include "common/fault.hpp"
#include "config/section.hpp"
#include "lock/caveats.hpp"
#include "lock/identifiers.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

namespace imeilock::api {

using nlohmann::json;

namespace {

/// Constant-time comparison, so a token cannot be guessed byte by byte.
bool same_secret(std::string_view a, std::string_view b) {
  if (a.size() != b.size())
    return false; // leaks only the length
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

unsigned status_for(imeilock::ec e) {
  switch (e) {
    case imeilock::ec::ok:
      return 200;
    case imeilock::ec::unknown_sim:
      return 404;
    case imeilock::ec::conflict:
      return 409;
    case imeilock::ec::invalid:
      return 422;
    case imeilock::ec::overloaded:
    case imeilock::ec::store_failed:
    case imeilock::ec::shutting_down:
      return 503;
    case imeilock::ec::backend_failed:
      return 502;
  }
  return 500;
}

std::string_view default_message(imeilock::ec e) {
  switch (e) {
    case imeilock::ec::overloaded:
      return "the daemon is over capacity: retry shortly";
    case imeilock::ec::store_failed:
      return "the change could not be made durable: nothing was changed, retry";
    case imeilock::ec::shutting_down:
      return "the daemon is shutting down: retry against another node";
    case imeilock::ec::backend_failed:
      return "the provisioning backend failed";
    default:
      return "refused";
  }
}

response service_error(imeilock::ec e, const std::string& reason) {
  auto r =
      error_response(status_for(e), to_string(e), reason.empty() ? default_message(e) : reason);
  if (status_for(e) == 503)
    r.headers.emplace_back("Retry-After", "1");
  return r;
}

} // namespace

response owner_answer(std::string_view target, const actors::shard_owner& owner) {
  const auto shard = std::to_string(owner.shard);
  if (owner.node_id.empty()) {
    auto r = json_response(
        503, json{{"error",
                   {{"code", "no_shard_owner"},
                    {"message", "no node serves the SIM's cluster shard " + shard +
                                    " right now (its lease is free or expired): retry shortly, "
                                    "a node takes it over within the lease duration"}}},
                  {"shard", owner.shard},
                  {"owner", nullptr}});
    r.headers.emplace_back("Retry-After", "1");
    r.owner_outcome = "no_owner";
    return r;
  }
  std::string_view base = owner.api_url;
  while (!base.empty() && base.back() == '/')
    base.remove_suffix(1);
  if (base.empty()) {
    auto r = json_response(
        503, json{{"error",
                   {{"code", "owner_without_api_url"},
                    {"message", "the SIM's cluster shard " + shard + " is served by node " +
                                    owner.node_id +
                                    ", which advertises no API URL (cluster.api_url): send the "
                                    "request to that node"}}},
                  {"shard", owner.shard},
                  {"owner", owner.node_id}});
    r.headers.emplace_back("Retry-After", "1");
    r.owner_outcome = "no_api_url";
    return r;
  }
  auto location = std::string{base} + std::string{target};
  auto r = json_response(307, json{{"message", "the SIM's cluster shard " + shard +
                                                   " is served by node " + owner.node_id +
                                                   ": repeat the request (same method and "
                                                   "body) at the Location"},
                                   {"shard", owner.shard},
                                   {"owner", owner.node_id},
                                   {"location", location}});
  r.headers.emplace_back("Location", std::move(location));
  r.owner_outcome = "redirected";
  return r;
}

// -- The request in flight and the route table -------------------------------

struct router::call {
  call(actors::sim_service& svc, request r, respond_fn d, bool is_ready) :
      service(svc), req(std::move(r)), done(std::move(d)), ready(is_ready) {}

  actors::sim_service& service;
  request req;
  std::vector<std::string> params; ///< path parameters in template order
  query_map query;
  std::string route = "unmatched";
  respond_fn done;
  bool ready = false;
  std::atomic<bool> replied{false};          ///< exactly one answer, even after a fault
  std::shared_ptr<const forward_fn> forward; ///< router::set_forwarder's, may be null

  void reply(response r) {
    if (replied.exchange(true))
      return;
    r.route = route;
    done(std::move(r));
  }
};

namespace {

using call_ptr = std::shared_ptr<router::call>;
using handler = void (*)(const call_ptr&);

struct route_def {
  route_info info;
  std::vector<std::string_view> query; ///< accepted query parameters
  handler fn;
};

void reply_asset(const call_ptr& c, std::string_view name) {
  const auto* a = find_asset(name);
  if (!a) {
    c->reply(error_response(404, "not_found", "no such file: " + std::string{name}));
    return;
  }
  response r;
  r.content_type = std::string{a->content_type};
  r.body = std::string{a->data};
  r.headers.emplace_back("Cache-Control", "no-cache");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  if (name.starts_with("ui/"))
    r.headers.emplace_back("Content-Security-Policy",
                           "default-src 'self'; frame-ancestors 'none'; base-uri 'none'");
  c->reply(std::move(r));
}

void get_healthz(const call_ptr& c) {
  c->reply(json_response(200, {{"status", "ok"}}));
}

void get_readyz(const call_ptr& c) {
  c->reply(c->ready ? json_response(200, {{"status", "ready"}})
                    : json_response(503, {{"status", "not_ready"}}));
}

void get_openapi(const call_ptr& c) {
  reply_asset(c, "openapi.json");
}
void get_ui(const call_ptr& c) {
  reply_asset(c, "ui/index.html");
}
void get_ui_asset(const call_ptr& c) {
  if (c->params[0] == "index.html" || c->params[0].find('/') != std::string::npos) {
    c->reply(error_response(404, "not_found", "no such file"));
    return;
  }
  reply_asset(c, "ui/" + c->params[0]);
}

/// The answer to a refused operator write of one SIM: redirected to the node
/// serving the SIM's shard when that is the reason (owner_answer), else
/// service_error. The one place where write routes answer a refusal.
response write_refusal(const call_ptr& c, const actors::write_result& res) {
  if (res.elsewhere)
    return owner_answer(c->req.target, *res.elsewhere);
  return service_error(res.error, res.reason);
}

/// Checks the ICCID path parameter; answers 422 and returns false if malformed.
bool check_iccid(const call_ptr& c) {
  if (auto iccid = lock::validate_iccid(c->params[0]); !iccid) {
    c->reply(error_response(422, "invalid_value", iccid.error().message()));
    return false;
  }
  return true;
}

/// 422 for a SIM whose network is not configured, with the configured names.
response unknown_network(const actors::write_result& res) {
  return json_response(422, json{{"error",
                                  {{"code", "unknown_network"},
                                   {"message", res.reason},
                                   {"known_networks", res.known_networks}}}});
}

response unknown_sim(const std::string& iccid) {
  return error_response(404, "unknown_sim",
                        "no SIM with ICCID " + iccid + ": create it with PUT /v1/sims/" + iccid);
}

void get_sim(const call_ptr& c) {
  if (!check_iccid(c))
    return;
  c->service.get_sim(c->params[0], [c](std::optional<actors::sim_info> sim) {
    if (!sim)
      c->reply(unknown_sim(c->params[0]));
    else {
      auto j = sim_json(*sim);
      j["caveats"] = caveats_json(*sim);
      c->reply(json_response(200, j));
    }
  });
}

void put_sim(const call_ptr& c) {
  if (!check_iccid(c))
    return;
  auto up = read_sim_upsert(c->req, c->params[0]);
  if (!up) {
    c->reply(error_response(up.error()));
    return;
  }
  c->service.upsert_sim(std::move(*up), [c](const actors::write_result& res) {
    if (!res.known_networks.empty()) {
      c->reply(unknown_network(res));
      return;
    }
    if (res.error == imeilock::ec::conflict) {
      // The only conflict of an upsert is an IMSI of another SIM: a bad value (issue 6: 422).
      c->reply(error_response(422, "conflict", res.reason));
      return;
    }
    if (res.error != imeilock::ec::ok) {
      c->reply(write_refusal(c, res));
      return;
    }
    unsigned code = res.created ? 201 : 200;
    c->service.get_sim(c->params[0], [c, code](std::optional<actors::sim_info> sim) {
      auto r = sim ? json_response(code, sim_json(*sim))
                   : json_response(code, {{"iccid", c->params[0]}});
      if (code == 201)
        r.headers.emplace_back("Location", "/v1/sims/" + c->params[0]);
      c->reply(std::move(r));
    });
  });
}

/// A valid import line as CSV again (RFC 4180 quoting), for its owner.
std::string csv_of(const actors::sim_upsert& sim) {
  auto quoted = [](std::string_view v) {
    std::string out = "\"";
    for (char ch : v)
      out += ch == '"' ? std::string{"\"\""} : std::string(1, ch);
    return out + "\"";
  };
  std::string imsis;
  for (auto imsi : sim.imsis)
    imsis += (imsis.empty() ? "" : ";") + lock::format_imsi(imsi);
  return quoted(sim.iccid) + "," + quoted(imsis) + "," + quoted(sim.msisdn) + "," +
         quoted(sim.network) + "," + std::string{lock::to_string(sim.status)} + "\n";
}

/// One import in progress: its lines and their answers (docs/cluster.md
/// "Imports"). Lines of shards another node serves are sent there, one
/// owner's lines forward_chunk_lines at a time, owners in parallel; the
/// answer goes once every line has its own.
struct import_job {
  call_ptr c;
  std::vector<csv_line> lines;
  std::vector<json> items; ///< per line, in input order
  std::mutex mtx;
  std::size_t owners_left = 0; ///< under mtx

  /// A line not applied for a reason that passes (retry: send it again).
  void not_applied(std::size_t i, std::string_view code, const std::string& reason) {
    items[i]["result"] = "rejected";
    items[i]["code"] = std::string{code};
    items[i]["reason"] = reason;
    items[i]["retry"] = true;
  }

  void answer() {
    std::size_t imported = 0;
    std::size_t rejected = 0;
    std::size_t retry = 0;
    json results = json::array();
    for (auto& item : items) {
      if (item.value("result", "") == "rejected")
        ++rejected;
      else
        ++imported;
      if (item.value("retry", false))
        ++retry;
      results.push_back(std::move(item));
    }
    json body{{"imported", imported}, {"rejected", rejected}, {"results", std::move(results)}};
    if (retry == 0) {
      c->reply(json_response(200, body));
      return;
    }
    // Some lines could not be applied now (their shard has no reachable
    // owner): 207, the lines to send again marked "retry".
    body["retry"] = retry;
    auto r = json_response(207, body);
    r.headers.emplace_back("Retry-After", "1");
    c->reply(std::move(r));
  }

  /// One owner's lines are settled; the last one answers.
  void owner_done() {
    std::unique_lock lk{mtx};
    if (--owners_left == 0) {
      lk.unlock();
      answer();
    }
  }
};

/// Sends `rows` (line indexes of `job`, all of one owner) to the owner,
/// forward_chunk_lines from `from` on, then the rest once answered.
void forward_lines(const std::shared_ptr<import_job>& job, std::shared_ptr<const forward_fn> fwd,
                   actors::shard_owner owner, http::url to,
                   std::shared_ptr<std::vector<std::size_t>> rows, std::size_t from) {
  auto until = std::min(rows->size(), from + forward_chunk_lines);
  std::string body = "iccid,imsis,msisdn,network,status\n";
  for (auto k = from; k < until; ++k)
    body += csv_of(job->lines[(*rows)[k]].sim);
  std::string_view prefix = to.target; // the owner's api_url may carry a path prefix (a proxy's)
  while (!prefix.empty() && prefix.back() == '/')
    prefix.remove_suffix(1);
  http::request req{"POST", std::string{prefix} + "/v1/sims:import", {}, std::move(body)};
  req.headers.emplace_back("Content-Type", "text/csv");
  if (!job->c->req.authorization.empty())
    req.headers.emplace_back("Authorization", job->c->req.authorization);
  req.headers.emplace_back(std::string{forwarded_header}, "1");
  (*fwd)(to, std::move(req),
         [job, fwd, owner, to, rows, from, until](const http::response& r) mutable {
           // Data line k of the chunk is line k + 2 of its body (the header is line 1).
           auto settle_all = [&](std::string_view code, const std::string& why, bool retry) {
             for (auto k = from; k < until; ++k) {
               auto i = (*rows)[k];
               if (retry) {
                 job->not_applied(i, code, why);
               } else {
                 job->items[i]["result"] = "rejected";
                 job->items[i]["code"] = std::string{code};
                 job->items[i]["reason"] = why;
               }
             }
           };
           const auto who = "node " + owner.node_id + " (" + owner.api_url + ")";
           json j = r.status == 0 ? json() : json::parse(r.body, nullptr, false);
           if (r.status == 0) {
             settle_all("owner_unreachable",
                        "the SIM's cluster shard is served by " + who + ", which did not answer (" +
                            r.error +
                            "): whether the line was applied there is unknown; send it again "
                            "(an import is idempotent)",
                        true);
           } else if ((r.status == 200 || r.status == 207) && j.is_object() &&
                      j.contains("results") && j["results"].is_array()) {
             std::vector<bool> seen(until - from, false);
             for (auto& res : j["results"]) {
               if (!res.is_object() || !res.contains("line") || !res["line"].is_number_unsigned())
                 continue;
               auto line = res["line"].get<std::size_t>();
               if (line < 2 || line - 2 >= until - from || seen[line - 2])
                 continue;
               seen[line - 2] = true;
               auto& item = job->items[(*rows)[from + line - 2]];
               for (const auto* key : {"result", "reason", "code", "retry", "known_networks"})
                 if (res.contains(key))
                   item[key] = std::move(res[key]);
               item["node"] = owner.node_id;
             }
             for (std::size_t k = 0; k < seen.size(); ++k)
               if (!seen[k])
                 job->not_applied((*rows)[from + k], "owner_failed",
                                  who + " gave no answer for this line: send it again");
           } else {
             std::string code;
             std::string message = r.body.substr(0, 200);
             if (j.is_object() && j.contains("error") && j["error"].is_object()) {
               code = j["error"].value("code", "");
               message = j["error"].value("message", message);
             }
             settle_all("owner_failed",
                        who + " serves the SIM's cluster shard and answered HTTP " +
                            std::to_string(r.status) + (code.empty() ? "" : " " + code) + ": " +
                            message,
                        r.status >= 500);
           }
           if (until < rows->size())
             forward_lines(job, std::move(fwd), std::move(owner), std::move(to), std::move(rows),
                           until);
           else
             job->owner_done();
         });
}

void import_sims(const call_ptr& c) {
  if (media_type(c->req.content_type) != "text/csv") {
    c->reply(error_response(415, "unsupported_media_type",
                            "send the SIMs as Content-Type: text/csv with the header line "
                            "iccid,imsis,msisdn,network,status"));
    return;
  }
  auto parsed = parse_sim_csv(c->req.body);
  if (!parsed) {
    c->reply(error_response(parsed.error()));
    return;
  }
  c->req.body.clear(); // parsed: the lines hold what is needed
  c->req.body.shrink_to_fit();
  auto job = std::make_shared<import_job>();
  job->c = c;
  job->lines = std::move(*parsed);
  std::vector<actors::sim_upsert> valid;
  for (const auto& line : job->lines)
    if (line.valid)
      valid.push_back(line.sim);
  auto finish = [job, c](std::vector<actors::write_result> results) {
    // The owners of shards served elsewhere, each with its lines (input order).
    std::map<std::pair<std::string, std::string>,
             std::pair<actors::shard_owner, std::shared_ptr<std::vector<std::size_t>>>>
        owners;
    std::size_t next = 0;
    for (std::size_t i = 0; i < job->lines.size(); ++i) {
      const auto& line = job->lines[i];
      json item{{"line", line.line_no}, {"iccid", line.sim.iccid}};
      if (!line.valid) {
        item["result"] = "rejected";
        item["reason"] = line.valid.error().message();
        job->items.push_back(std::move(item));
        continue;
      }
      const auto& res = results[next++];
      job->items.push_back(std::move(item));
      if (res.elsewhere) {
        const auto& owner = *res.elsewhere;
        const auto shard = std::to_string(owner.shard);
        if (owner.node_id.empty())
          job->not_applied(i, "no_shard_owner",
                           "no node serves the SIM's cluster shard " + shard +
                               " right now (its lease is free or expired): send the line again "
                               "shortly, a node takes the shard over within the lease duration");
        else if (!c->req.forwarded_by.empty())
          job->not_applied(i, "not_served_here",
                           "this node does not serve the SIM's cluster shard " + shard +
                               " (it moved to node " + owner.node_id +
                               " meanwhile): send the line again");
        else if (owner.api_url.empty())
          job->not_applied(i, "owner_without_api_url",
                           "the SIM's cluster shard " + shard + " is served by node " +
                               owner.node_id +
                               ", which advertises no API URL (cluster.api_url): send the line "
                               "to that node");
        else {
          auto& slot = owners[{owner.node_id, owner.api_url}];
          if (!slot.second) {
            slot.first = owner;
            slot.second = std::make_shared<std::vector<std::size_t>>();
          }
          slot.second->push_back(i);
        }
        continue;
      }
      if (res.error == imeilock::ec::store_failed || res.error == imeilock::ec::overloaded ||
          res.error == imeilock::ec::shutting_down) {
        c->reply(service_error(res.error, res.reason));
        return;
      }
      auto& it = job->items.back();
      if (res.error == imeilock::ec::ok) {
        it["result"] = res.created ? "created" : "updated";
      } else {
        it["result"] = "rejected";
        it["reason"] = res.reason.empty() ? std::string{to_string(res.error)} : res.reason;
        if (!res.known_networks.empty())
          it["known_networks"] = res.known_networks;
      }
    }
    // Every owner's lines: sent there (below), or not applied when the
    // owner's URL is unusable or this node cannot send.
    std::vector<
        std::tuple<actors::shard_owner, http::url, std::shared_ptr<std::vector<std::size_t>>>>
        sends;
    for (auto& [key, slot] : owners) {
      auto& [owner, rows] = slot;
      std::string_view base = owner.api_url;
      while (!base.empty() && base.back() == '/')
        base.remove_suffix(1);
      auto url = http::parse_url(base);
      if (!url || !c->forward) {
        for (auto i : *rows)
          job->not_applied(i, "owner_unreachable",
                           "the SIM's cluster shard " + std::to_string(owner.shard) +
                               " is served by node " + owner.node_id + ", which this node " +
                               (url ? std::string{"cannot send to"}
                                    : "cannot reach (" + url.error().message() + ")") +
                               ": send the line to that node");
        continue;
      }
      sends.emplace_back(owner, std::move(*url), rows);
    }
    if (sends.empty()) {
      job->answer();
      return;
    }
    job->owners_left = sends.size();
    for (auto& [owner, url, rows] : sends)
      forward_lines(job, c->forward, owner, std::move(url), rows, 0);
  };
  if (valid.empty()) {
    finish({});
    return;
  }
  auto expected = valid.size();
  c->service.import_sims(
      std::move(valid), [c, finish, expected](std::vector<actors::write_result> results) mutable {
        if (results.size() != expected) {
          c->reply(error_response(500, "internal", "the SIM layer answered the import badly"));
          return;
        }
        finish(std::move(results));
      });
}

void list_sims(const call_ptr& c) {
  actors::sim_filter filter;
  if (auto v = query_value(c->query, "lock_state")) {
    lock::lock_state s{};
    if (!lock::parse(*v, s)) {
      c->reply(error_response(400, "bad_parameter",
                              "lock_state must be off, awaiting_first_imei or locked"));
      return;
    }
    filter.lock = s;
  }
  if (auto v = query_value(c->query, "bar_state")) {
    lock::bar_state s{};
    if (!lock::parse(*v, s)) {
      c->reply(error_response(400, "bad_parameter",
                              "bar_state must be none, bar_pending, barred or unbar_pending"));
      return;
    }
    filter.bar = s;
  }
  if (auto v = query_value(c->query, "network"))
    filter.network = *v;
  if (auto v = query_value(c->query, "alerted")) {
    if (*v != "true" && *v != "false") {
      c->reply(error_response(400, "bad_parameter", "alerted must be true or false"));
      return;
    }
    filter.alerted = *v == "true";
  }
  if (auto v = query_value(c->query, "never_with_imei")) {
    if (*v != "true" && *v != "false") {
      c->reply(error_response(400, "bad_parameter", "never_with_imei must be true or false"));
      return;
    }
    filter.never_with_imei = *v == "true";
  }
  if (auto v = query_value(c->query, "awaiting_imei_for")) {
    auto d = config::parse_duration(*v);
    if (!d || d->count() < 0) {
      c->reply(error_response(400, "bad_parameter",
                              "awaiting_imei_for must be a duration such as 90s, 30m, 24h or 7d"));
      return;
    }
    auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
    filter.awaiting_imei_since_ms = now - d->count();
  }
  auto limit = read_limit(c->query);
  if (!limit) {
    c->reply(error_response(limit.error()));
    return;
  }
  auto cursor = query_value(c->query, "cursor").value_or("");
  c->service.list_sims(
      std::move(filter), std::move(cursor), *limit, [c](const actors::sim_page& page) {
        json items = json::array();
        for (const auto& s : page.items)
          items.push_back(sim_json(s));
        json next = page.next_cursor.empty() ? json(nullptr) : json(page.next_cursor);
        c->reply(
            json_response(200, {{"items", std::move(items)}, {"next_cursor", std::move(next)}}));
      });
}

void place_order(const call_ptr& c) {
  if (!check_iccid(c))
    return;
  auto order = read_order(c->req);
  if (!order) {
    c->reply(error_response(order.error()));
    return;
  }
  c->service.place_order(c->params[0], *order, [c, req = *order](actors::write_result res) {
    if (res.error == imeilock::ec::unknown_sim) {
      c->reply(unknown_sim(c->params[0]));
      return;
    }
    if (res.error != imeilock::ec::ok) {
      c->reply(write_refusal(c, res));
      return;
    }
    json j;
    if (res.order) {
      j = order_json(*res.order);
    } else {
      j = {{"id", nullptr},
           {"iccid", c->params[0]},
           {"type", lock::to_string(req.type)},
           {"status", "completed"}};
    }
    j["warnings"] = res.warnings;
    auto r = json_response(202, j);
    if (res.order)
      r.headers.emplace_back("Location", "/v1/orders/" + std::to_string(res.order->id));
    c->reply(std::move(r));
  });
}

void get_order(const call_ptr& c) {
  std::uint64_t id = 0;
  if (!parse_u64(c->params[0], id) || id == 0) {
    c->reply(
        error_response(422, "invalid_value",
                       "an order id is a positive whole number, not \"" + c->params[0] + "\""));
    return;
  }
  c->service.get_order(id, [c](std::optional<orders::order> order) {
    if (!order)
      c->reply(error_response(404, "unknown_order", "no order with id " + c->params[0]));
    else
      c->reply(json_response(200, order_json(*order)));
  });
}

/// Runs `next` once the SIM of the path is known to exist; 404 otherwise.
template <class Next>
void with_sim(const call_ptr& c, Next next) {
  if (!check_iccid(c))
    return;
  c->service.get_sim(c->params[0], [c, next](const std::optional<actors::sim_info>& sim) mutable {
    if (!sim)
      c->reply(unknown_sim(c->params[0]));
    else
      next();
  });
}

void list_sim_orders(const call_ptr& c) {
  with_sim(c, [c] {
    c->service.list_orders(c->params[0], [c](std::vector<orders::order> orders) {
      std::sort(orders.begin(), orders.end(),
                [](const auto& a, const auto& b) { return a.id > b.id; });
      json items = json::array();
      for (const auto& o : orders)
        items.push_back(order_json(o));
      c->reply(json_response(200, {{"items", std::move(items)}}));
    });
  });
}

void list_sim_events(const call_ptr& c) {
  auto limit = read_limit(c->query);
  if (!limit) {
    c->reply(error_response(limit.error()));
    return;
  }
  with_sim(c, [c, limit = *limit] {
    c->service.list_events(c->params[0], limit, [c](const std::vector<actors::event_info>& events) {
      json items = json::array();
      for (const auto& e : events)
        items.push_back(event_json(e));
      c->reply(json_response(200, {{"items", std::move(items)}}));
    });
  });
}

// -- Bulk jobs ------------------------------------------------------------------

/// The job service, or a 503 answered (a SIM service without jobs; the
/// daemon's has them, on one node and on a cluster node alike).
actors::job_service* jobs_of(const call_ptr& c) {
  auto* jobs = c->service.jobs();
  if (!jobs)
    c->reply(error_response(503, "jobs_unavailable",
                            "bulk jobs are not available on this node: place the orders one "
                            "by one"));
  return jobs;
}

/// The {id} of a job route; 422 answered when it is not a positive number.
std::optional<std::uint64_t> job_id(const call_ptr& c) {
  std::uint64_t id = 0;
  if (!parse_u64(c->params[0], id) || id == 0) {
    c->reply(error_response(422, "invalid_value",
                            "a job id is a positive whole number, not \"" + c->params[0] + "\""));
    return std::nullopt;
  }
  return id;
}

void bulk_orders(const call_ptr& c) {
  auto* jobs = jobs_of(c);
  if (!jobs)
    return;
  auto bulk = read_bulk(c->req, c->query);
  if (!bulk) {
    c->reply(error_response(bulk.error()));
    return;
  }
  jobs->create_job(bulk->order, std::move(bulk->selector), [c](actors::job_result res) {
    if (res.error != imeilock::ec::ok || !res.job) {
      c->reply(service_error(res.error, res.reason));
      return;
    }
    auto body = job_json(*res.job);
    // The product text's caveats, as a single order's answer carries them (the
    // bar's wording without a lead time: the SIMs may be on several networks).
    body["warnings"] = lock::order_caveats(res.job->order.type, res.job->order.with_lock, {}, {});
    auto r = json_response(202, body);
    r.headers.emplace_back("Location", "/v1/jobs/" + std::to_string(res.job->id));
    c->reply(std::move(r));
  });
}

void list_jobs(const call_ptr& c) {
  bool running_only = false;
  if (auto v = query_value(c->query, "state")) {
    if (*v != "running" && *v != "all") {
      c->reply(error_response(400, "bad_parameter", "state must be running or all"));
      return;
    }
    running_only = *v == "running";
  }
  auto limit = read_limit(c->query);
  if (!limit) {
    c->reply(error_response(limit.error()));
    return;
  }
  auto* jobs = jobs_of(c);
  if (!jobs)
    return;
  jobs->list_jobs(running_only, *limit, [c](const std::vector<actors::job_info>& list) {
    json items = json::array();
    for (const auto& j : list)
      items.push_back(job_json(j));
    c->reply(json_response(200, {{"items", std::move(items)}}));
  });
}

void get_job(const call_ptr& c) {
  auto* jobs = jobs_of(c);
  auto id = jobs ? job_id(c) : std::nullopt;
  if (!id)
    return;
  jobs->get_job(*id, [c](const std::optional<actors::job_info>& job) {
    if (!job)
      c->reply(error_response(404, "unknown_job", "no job with id " + c->params[0]));
    else
      c->reply(json_response(200, job_json(*job)));
  });
}

void cancel_job(const call_ptr& c) {
  auto* jobs = jobs_of(c);
  auto id = jobs ? job_id(c) : std::nullopt;
  if (!id)
    return;
  jobs->cancel_job(*id, [c](actors::job_result res) {
    if (res.error == imeilock::ec::invalid)
      c->reply(error_response(404, "unknown_job", res.reason));
    else if (res.error != imeilock::ec::ok || !res.job)
      c->reply(service_error(res.error, res.reason));
    else
      c->reply(json_response(200, job_json(*res.job)));
  });
}

void get_fleet(const call_ptr& c) {
  c->service.fleet(
      [c](const actors::fleet_info& fleet) { c->reply(json_response(200, fleet_json(fleet))); });
}

/// GET /v1/cluster: the nodes and leases from the database (more than one
/// node, docs/cluster.md); {"enabled": false} on one node.
void get_cluster(const call_ptr& c) {
  c->service.get_cluster([c](const actors::cluster_info& info) {
    if (!info.enabled) {
      c->reply(json_response(200, {{"enabled", false}}));
      return;
    }
    json nodes = json::array();
    for (const auto& n : info.nodes)
      nodes.push_back({{"node_id", n.node_id},
                       {"api_url", n.api_url},
                       {"preferred_shards", n.preferred_shards},
                       {"live", n.live}});
    json leases = json::array();
    for (const auto& l : info.leases) {
      json j{{"shard", l.shard},
             {"owner", l.owner.empty() ? json(nullptr) : json(l.owner)},
             {"epoch", l.epoch},
             {"expires_in_ms", l.expires_in_ms},
             {"served_here", l.served_here}};
      leases.push_back(std::move(j));
    }
    c->reply(json_response(200, {{"enabled", true},
                                 {"node_id", info.node_id},
                                 {"shards", info.shards},
                                 {"nodes", std::move(nodes)},
                                 {"leases", std::move(leases)}}));
  });
}

const std::vector<route_def>& route_table() {
  static const std::vector<route_def> table{
      {{"GET", "/healthz", false, true}, {}, get_healthz},
      {{"GET", "/readyz", false, true}, {}, get_readyz},
      {{"GET", "/v1/openapi.json", false, true}, {}, get_openapi},
      {{"GET", "/ui", false, true}, {}, get_ui},
      {{"GET", "/ui/{file}", false, true}, {}, get_ui_asset},
      {{"GET", "/v1/sims", false, false},
       {"lock_state", "bar_state", "network", "alerted", "never_with_imei", "awaiting_imei_for",
        "limit", "cursor"},
       list_sims},
      {{"POST", "/v1/sims:import", true, false}, {}, import_sims},
      {{"GET", "/v1/sims/{iccid}", false, false}, {}, get_sim},
      {{"PUT", "/v1/sims/{iccid}", true, false}, {}, put_sim},
      {{"GET", "/v1/sims/{iccid}/orders", false, false}, {}, list_sim_orders},
      {{"POST", "/v1/sims/{iccid}/orders", true, false}, {}, place_order},
      {{"GET", "/v1/sims/{iccid}/events", false, false}, {"limit"}, list_sim_events},
      {{"GET", "/v1/orders/{id}", false, false}, {}, get_order},
      {{"POST", "/v1/orders:bulk", true, false},
       {"type", "unbar_mode", "enable_imei_lock"},
       bulk_orders},
      {{"GET", "/v1/jobs", false, false}, {"state", "limit"}, list_jobs},
      {{"GET", "/v1/fleet", false, false}, {}, get_fleet},
      {{"POST", "/v1/jobs/{id}:cancel", true, false}, {}, cancel_job},
      {{"GET", "/v1/jobs/{id}", false, false}, {}, get_job},
      {{"DELETE", "/v1/jobs/{id}", true, false}, {}, cancel_job},
      {{"GET", "/v1/cluster", false, false}, {}, get_cluster},
  };
  return table;
}

} // namespace

const std::vector<route_info>& routes() {
  static const std::vector<route_info> list = [] {
    std::vector<route_info> out;
    for (const auto& r : route_table())
      out.push_back(r.info);
    return out;
  }();
  return list;
}

router::router(actors::sim_service& service) :
    service_(service), tokens_(std::make_shared<const token_set>()) {}

void router::set_tokens(token_set tokens) {
  auto fresh = std::make_shared<const token_set>(std::move(tokens));
  std::lock_guard lock{tokens_mutex_};
  tokens_ = std::move(fresh);
}

router::access router::authenticate(std::string_view authorization) const {
  std::shared_ptr<const token_set> tokens;
  {
    std::lock_guard lock{tokens_mutex_};
    tokens = tokens_;
  }
  auto space = authorization.find(' ');
  if (space == std::string_view::npos || lower(authorization.substr(0, space)) != "bearer")
    return access::none;
  auto token = trim(authorization.substr(space + 1));
  if (token.empty())
    return access::none;
  // Compare against every token so timing does not say which one matched.
  bool rw = false;
  bool ro = false;
  for (const auto& t : tokens->read_write)
    rw |= same_secret(token, t);
  for (const auto& t : tokens->read_only)
    ro |= same_secret(token, t);
  return rw ? access::read_write : ro ? access::read_only : access::none;
}

void router::handle(request req, respond_fn done) {
  auto c = std::make_shared<call>(service_, std::move(req), std::move(done), ready_.load());
  c->forward = forward_;
  auto target = parse_target(c->req.target);
  if (!target) {
    c->reply(error_response(target.error()));
    return;
  }
  const auto segments = std::move(target->segments);
  c->query = std::move(target->query);

  const route_def* found = nullptr;
  std::string allowed;
  for (const auto& r : route_table()) {
    std::vector<std::string> params;
    if (!match_route(r.info.path, segments, params))
      continue;
    if (r.info.method == c->req.method || (r.info.method == "GET" && c->req.method == "HEAD")) {
      found = &r;
      c->params = std::move(params);
      break;
    }
    allowed += (allowed.empty() ? "" : ", ") + std::string{r.info.method};
  }
  if (!found) {
    if (!allowed.empty()) {
      auto r = error_response(405, "method_not_allowed",
                              c->req.method + " is not allowed here; allowed: " + allowed);
      r.headers.emplace_back("Allow", allowed);
      c->reply(std::move(r));
    } else {
      c->reply(error_response(404, "not_found", "no such route; see /v1/openapi.json for the API"));
    }
    return;
  }
  c->route = std::string{found->info.path};

  if ((found->info.path == "/ui" || found->info.path == "/ui/{file}") && !ui_.load()) {
    c->reply(error_response(404, "not_found", "the dashboard is disabled (api.ui: false)"));
    return;
  }
  if (!found->info.open) {
    auto who = authenticate(c->req.authorization);
    if (who == access::none) {
      bool none_configured = false;
      {
        std::lock_guard lock{tokens_mutex_};
        none_configured = tokens_->empty();
      }
      auto r = error_response(
          401, "unauthorized",
          none_configured ? "no API tokens are configured: set api.tokens or api.token_file"
          : c->req.authorization.empty()
              ? "send the header Authorization: Bearer <token>"
              : "the bearer token is not valid: check the token you were given");
      r.headers.emplace_back("WWW-Authenticate",
                             c->req.authorization.empty()
                                 ? "Bearer realm=\"imeilockd\""
                                 : "Bearer realm=\"imeilockd\", error=\"invalid_token\"");
      c->reply(std::move(r));
      return;
    }
    if (found->info.write && who != access::read_write) {
      c->reply(error_response(403, "forbidden",
                              "this token may only read: writes need a read-write token"));
      return;
    }
  }
  for (const auto& [key, value] : c->query) {
    if (std::find(found->query.begin(), found->query.end(), key) == found->query.end()) {
      std::string list;
      for (auto q : found->query)
        list += (list.empty() ? "" : ", ") + std::string{q};
      c->reply(error_response(
          400, "unknown_parameter",
          "unknown query parameter \"" + key + "\"" +
              (list.empty() ? ": this route takes none" : ": this route takes " + list)));
      return;
    }
  }
  try {
    found->fn(c);
  } catch (const unavailable_error&) {
    // The store's database cannot be reached (a PostgreSQL outage; the store
    // logged it once): retry shortly, or another node.
    c->reply(service_error(imeilock::ec::store_failed,
                           "the store's database cannot be reached: retry shortly"));
  } catch (...) {
    // A bug or a store that cannot be read: answer, count, keep serving.
    report_current_exception(fault_site::api_request);
    c->reply(error_response(500, "internal",
                            "the request failed inside the daemon; it was logged and counted "
                            "(imeilock_internal_errors_total): retry, or report it"));
  }
}

} // namespace imeilock::api
