// imeilockctl: the operator's command line over imeilockd's HTTP API.
//
//   export IMEILOCK_TOKEN=...            (or --token-file FILE)
//   imeilockctl sims get 8944100000000000001
//   imeilockctl order unbar 8944100000000000001 --update-to-last-seen
//
// Exit codes (documented in usage()): 0 done; 1 usage error; 2 the API
// refused the request (4xx: bad input, unknown SIM, conflict, bad token; an
// import with rejected lines); 3 server error (5xx) or no connection (or an
// import with lines a cluster could not apply now).

#include "api/client.hpp"

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using nlohmann::json;

enum exit_code : int { ok = 0, usage_error = 1, rejected = 2, server_error = 3 };

constexpr const char* usage_text = R"(usage: imeilockctl [options] COMMAND ...

Commands:
  sims get ICCID                      one SIM: lock, last seen IMEI, bar
  sims list [--lock-state S] [--bar-state S] [--network N] [--limit N] [--cursor C] [--all]
                                      SIMs, filtered (--all follows every page)
  sims import FILE                    import SIMs from CSV (header iccid,imsis,msisdn,network,status;
                                      IMSIs separated by ';'); FILE may be - for stdin
  sims put ICCID --imsi IMSI [--imsi IMSI...] --network N --status active|inactive [--msisdn M]
                                      create or update one SIM
  order enable ICCID [--lock-scope imei|device_model]
                                      Enable IMEI Locking (device_model: any device of the
                                      model the lock is set to, R16; default imei)
  order disable ICCID                 Disable IMEI Locking
  order bar ICCID                     bar the SIM (manual)
  order unbar ICCID [--keep-lock | --update-to-last-seen]
                                      unbar; an IMEI-lock bar needs one of the two options
  order activate ICCID [--lock [--lock-scope S]]
                                      activate, optionally with Enable IMEI Locking
  orders get ID                       one order
  orders list ICCID                   the SIM's orders, newest first
  events ICCID [--limit N]            the SIM's audit log, newest first
  bulk enable|disable|bar|unbar|activate SELECTOR [--keep-lock | --update-to-last-seen] [--lock]
                                      [--lock-scope S] [--watch]
                                      one order for many SIMs, as a job (placed one SIM at a time
                                      through the same rules and rate limits as single orders).
                                      SELECTOR: --iccid ICCID [--iccid ...] | --file CSV (an iccid
                                      column; - for stdin) | filters --network N --lock-state S
                                      --bar-state S --alerted true|false | --every (every SIM)
  job show ID                         a job's progress: placed, refused (with reasons), orders
  job watch ID                        follow a job until it ends (a progress bar on a terminal)
  job cancel ID                       stop a job: its orders stay, no more are placed
  jobs list [--running] [--limit N]   jobs, newest first

Options:
  --url URL          the API (default $IMEILOCK_URL, else http://127.0.0.1:8080)
  --token-file FILE  read the bearer token from FILE (default: the token in $IMEILOCK_TOKEN)
  --json             print the API's JSON instead of tables
  --timeout SECONDS  per request (default 30)
  -h, --help         this text

Exit codes:
  0  done
  1  usage error (bad command line, unreadable file)
  2  refused by the API (4xx: invalid input, unknown SIM or order, conflict,
     missing or wrong token, read-only token); an import with rejected lines
  3  server error (5xx) or the API could not be reached; an import with lines
     not applied now (a cluster shard without a reachable owner: send them again)
  (bulk --watch and job watch: 0 when the job completed with no SIM refused, 2 when
  it ended with refused SIMs or was cancelled)
)";

struct options {
  std::string url;
  std::string token;
  bool as_json = false;
  int timeout_s = 30;
  std::vector<std::string> args;                         ///< positional
  std::map<std::string, std::vector<std::string>> flags; ///< --name value(s) or "" for switches
};

[[noreturn]] void usage_fail(const std::string& why) {
  std::cerr << "imeilockctl: " << why << "\n(imeilockctl --help for usage)\n";
  std::exit(usage_error);
}

std::string s(const json& v) {
  if (v.is_null())
    return "-";
  if (v.is_string())
    return v.get<std::string>();
  return v.dump();
}

/// Prints rows as aligned columns.
void table(const std::vector<std::string>& head,
           const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(head.size());
  for (std::size_t i = 0; i < head.size(); ++i)
    width[i] = head[i].size();
  for (const auto& r : rows)
    for (std::size_t i = 0; i < r.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], r[i].size());
  auto line = [&](const std::vector<std::string>& r) {
    std::string out;
    for (std::size_t i = 0; i < r.size(); ++i) {
      out += r[i];
      if (i + 1 < r.size())
        out += std::string(width[i] - r[i].size() + 2, ' ');
    }
    std::cout << out << "\n";
  };
  line(head);
  for (const auto& r : rows)
    line(r);
}

class cli {
public:
  explicit cli(options o) :
      opt_(std::move(o)), client_(opt_.url, std::chrono::seconds{opt_.timeout_s}) {
    if (auto usable = client_.valid(); !usable)
      usage_fail(usable.error().message());
  }

  /// Sends a request; on failure prints why and returns the exit code in `code`.
  std::optional<json> call(const std::string& method, const std::string& target, int& code,
                           const std::string& body = {}, const std::string& type = {}) {
    auto res = client_.request(method, target, opt_.token, body, type);
    if (res.status == 0) {
      std::cerr << "imeilockctl: " << res.error << "\n";
      code = server_error;
      return std::nullopt;
    }
    json j = json::parse(res.body, nullptr, false);
    if (res.status >= 400) {
      if (opt_.as_json && !j.is_discarded())
        std::cout << j.dump(2) << "\n";
      std::string message = res.body;
      std::string ecode;
      if (!j.is_discarded() && j.contains("error")) {
        message = s(j["error"].value("message", json("")));
        ecode = s(j["error"].value("code", json("")));
      }
      std::cerr << "imeilockctl: " << message << " (HTTP " << res.status
                << (ecode.empty() ? "" : " " + ecode) << ")\n";
      code = res.status >= 500 ? server_error : rejected;
      return std::nullopt;
    }
    if (j.is_discarded()) {
      std::cerr << "imeilockctl: the server's answer is not JSON (HTTP " << res.status << ")\n";
      code = server_error;
      return std::nullopt;
    }
    code = ok;
    return j;
  }

  /// Sends a request and prints its answer: the API's JSON with --json, else
  /// `print`'s rendering of it. The exit code.
  int show(const std::string& method, const std::string& target,
           const std::function<void(const json&)>& print, const std::string& body = {},
           const std::string& type = {}) {
    int code = ok;
    auto j = call(method, target, code, body, type);
    if (!j)
      return code;
    if (opt_.as_json)
      std::cout << j->dump(2) << "\n";
    else
      print(*j);
    return ok;
  }

  /// The contents of `file`, or of stdin for "-"; nullopt (said on stderr) when unreadable.
  static std::optional<std::string> read_input(const std::string& file) {
    std::string out;
    if (file == "-") {
      out.assign(std::istreambuf_iterator<char>(std::cin), {});
      return out;
    }
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      std::cerr << "imeilockctl: cannot read " << file << "\n";
      return std::nullopt;
    }
    out.assign(std::istreambuf_iterator<char>(in), {});
    return out;
  }

  int run() {
    auto& a = opt_.args;
    if (a.empty())
      usage_fail("no command given");
    auto need = [&](std::size_t n, const char* what) {
      if (a.size() != n)
        usage_fail(std::string{"expected: "} + what);
    };
    const auto& cmd = a[0];
    const std::string sub = a.size() > 1 ? a[1] : "";
    // A command: its first two words (an empty `sub`: any, given to it), how
    // many words it takes with its arguments, its usage.
    struct command {
      std::string_view cmd, sub;
      std::size_t words;
      const char* usage;
      std::function<int()> run;
    };
    const command commands[] = {
        {"sims", "get", 3, "sims get ICCID", [&] { return sim_get(a[2]); }},
        {"sims", "list", 2, "sims list [filters]", [&] { return sim_list(); }},
        {"sims", "import", 3, "sims import FILE", [&] { return sim_import(a[2]); }},
        {"sims", "put", 3, "sims put ICCID --imsi IMSI --network N --status S",
         [&] { return sim_put(a[2]); }},
        {"order", "", 3, "order enable|disable|bar|unbar|activate ICCID",
         [&] { return place(sub, a[2]); }},
        {"orders", "get", 3, "orders get ID", [&] { return order_get(a[2]); }},
        {"orders", "list", 3, "orders list ICCID", [&] { return order_list(a[2]); }},
        {"events", "", 2, "events ICCID [--limit N]", [&] { return events(a[1]); }},
        {"bulk", "", 2, "bulk enable|disable|bar|unbar|activate SELECTOR",
         [&] { return bulk(sub); }},
        {"job", "show", 3, "job show|watch|cancel ID", [&] { return job_show(a[2]); }},
        {"job", "watch", 3, "job show|watch|cancel ID", [&] { return job_watch(a[2]); }},
        {"job", "cancel", 3, "job show|watch|cancel ID", [&] { return job_cancel(a[2]); }},
        {"jobs", "list", 2, "jobs list [--running] [--limit N]", [&] { return jobs_list(); }},
    };
    for (const auto& c : commands) {
      if (cmd == c.cmd && (c.sub.empty() || sub == c.sub)) {
        need(c.words, c.usage);
        return c.run();
      }
    }
    usage_fail("unknown command: " + cmd + (sub.empty() ? "" : " " + sub));
  }

private:
  bool flag(const std::string& name) const { return opt_.flags.count(name) > 0; }
  std::string value(const std::string& name) const {
    auto it = opt_.flags.find(name);
    return it == opt_.flags.end() || it->second.empty() ? std::string{} : it->second.back();
  }

  static void print_sim(const json& j) {
    std::vector<std::vector<std::string>> rows{
        {"iccid", s(j["iccid"])},
        {"imsis",
         [&] {
           std::string out;
           for (const auto& i : j["imsis"])
             out += (out.empty() ? "" : ", ") + s(i);
           return out;
         }()},
        {"msisdn", s(j["msisdn"])},
        {"network", s(j["network"])},
        {"status", s(j["status"])},
        {"lock", s(j["lock"]["state"])},
        {"locked imei", s(j["lock"]["imei"])},
        {"last seen imei", s(j["last_seen_imei"])},
        {"bar", s(j["bar"]["state"])},
        {"bar reason", s(j["bar"]["reason"])},
        {"trigger imei", s(j["bar"]["trigger_imei"])},
        {"pending order", j["pending_order"].is_null() ? std::string{"-"}
                                                       : "#" + s(j["pending_order"]["id"]) + " " +
                                                             s(j["pending_order"]["type"])},
        {"updated", s(j["updated_at"])},
    };
    for (const auto& r : rows)
      std::cout << r[0] << ":" << std::string(16 - r[0].size(), ' ') << r[1] << "\n";
  }

  int sim_get(const std::string& iccid) { return show("GET", "/v1/sims/" + iccid, print_sim); }

  int sim_list() {
    std::string query;
    auto add = [&](const std::string& key, const std::string& flag_name) {
      auto v = value(flag_name);
      if (!v.empty())
        query += (query.empty() ? "?" : "&") + key + "=" + v;
    };
    add("lock_state", "lock-state");
    add("bar_state", "bar-state");
    add("network", "network");
    add("limit", "limit");
    std::string cursor = value("cursor");
    json all = json::array();
    std::vector<std::vector<std::string>> rows;
    while (true) {
      auto target =
          "/v1/sims" + query +
          (cursor.empty() ? "" : (query.empty() ? "?" : "&") + std::string{"cursor="} + cursor);
      int code = ok;
      auto j = call("GET", target, code);
      if (!j)
        return code;
      for (const auto& item : (*j)["items"]) {
        all.push_back(item);
        rows.push_back({s(item["iccid"]), s(item["network"]), s(item["status"]),
                        s(item["lock"]["state"]), s(item["lock"]["imei"]),
                        s(item["last_seen_imei"]), s(item["bar"]["state"])});
      }
      cursor = (*j)["next_cursor"].is_string() ? (*j)["next_cursor"].get<std::string>() : "";
      if (!flag("all") || cursor.empty())
        break;
    }
    if (opt_.as_json) {
      std::cout << json{{"items", all},
                        {"next_cursor", cursor.empty() ? json(nullptr) : json(cursor)}}
                       .dump(2)
                << "\n";
    } else {
      table({"ICCID", "NETWORK", "STATUS", "LOCK", "LOCKED IMEI", "LAST SEEN IMEI", "BAR"}, rows);
      if (!cursor.empty())
        std::cout << "(more: --cursor " << cursor << " or --all)\n";
    }
    return ok;
  }

  int sim_import(const std::string& file) {
    auto body = read_input(file);
    if (!body)
      return usage_error;
    int code = ok;
    auto j = call("POST", "/v1/sims:import", code, *body, "text/csv");
    if (!j)
      return code;
    if (opt_.as_json) {
      std::cout << j->dump(2) << "\n";
    } else {
      std::vector<std::vector<std::string>> rows;
      for (const auto& r : (*j)["results"])
        rows.push_back({s(r["line"]), s(r["iccid"]), s(r["result"]),
                        r.contains("reason") ? s(r["reason"]) : ""});
      table({"LINE", "ICCID", "RESULT", "REASON"}, rows);
      std::cout << s((*j)["imported"]) << " imported, " << s((*j)["rejected"]) << " rejected";
      if (j->contains("retry"))
        std::cout << " (" << s((*j)["retry"]) << " not applied now: send them again)";
      std::cout << "\n";
    }
    // A cluster node could not have some lines applied now (their shard has no
    // reachable owner; HTTP 207): a server-side failure, retry.
    const auto& again = j->contains("retry") ? (*j)["retry"] : json();
    if (again.is_number() && again.get<double>() > 0)
      return server_error;
    const auto& n = (*j)["rejected"];
    return n.is_number() && n.get<double>() > 0 ? rejected : ok;
  }

  int sim_put(const std::string& iccid) {
    json body{
        {"imsis", opt_.flags.count("imsi") ? opt_.flags.at("imsi") : std::vector<std::string>{}},
        {"network", value("network")},
        {"status", value("status")}};
    if (flag("msisdn"))
      body["msisdn"] = value("msisdn");
    return show("PUT", "/v1/sims/" + iccid, print_sim, body.dump(), "application/json");
  }

  int place(const std::string& kind, const std::string& iccid) {
    json body = order_body(kind);
    int code = ok;
    auto j = call("POST", "/v1/sims/" + iccid + "/orders", code, body.dump(), "application/json");
    if (!j)
      return code;
    if (opt_.as_json) {
      std::cout << j->dump(2) << "\n";
    } else {
      std::cout << "order " << s((*j)["id"]) << " " << s((*j)["type"]) << " " << s((*j)["status"]);
      if (j->contains("due_at") && !(*j)["due_at"].is_null())
        std::cout << ", due " << s((*j)["due_at"]);
      std::cout << "\n";
    }
    for (const auto& w : (*j)["warnings"])
      std::cerr << "warning: " << s(w) << "\n";
    return ok;
  }

  static std::vector<std::string> order_row(const json& o) {
    std::string option = s(o.value("unbar_mode", json(nullptr)));
    if (o.value("enable_imei_lock", json(nullptr)) == json(true))
      option = "with lock";
    return {s(o["id"]),           s(o["type"]),          option,
            s(o["status"]),       s(o["created_at"]),    s(o["due_at"]),
            s(o["completed_at"]), s(o["failure_reason"])};
  }

  int order_get(const std::string& id) {
    return show("GET", "/v1/orders/" + id, [](const json& j) {
      std::cout << "iccid: " << s(j["iccid"]) << "\n";
      table({"ID", "TYPE", "OPTION", "STATUS", "CREATED", "DUE", "COMPLETED", "FAILURE"},
            {order_row(j)});
    });
  }

  int order_list(const std::string& iccid) {
    return show("GET", "/v1/sims/" + iccid + "/orders", [](const json& j) {
      std::vector<std::vector<std::string>> rows;
      for (const auto& o : j["items"])
        rows.push_back(order_row(o));
      table({"ID", "TYPE", "OPTION", "STATUS", "CREATED", "DUE", "COMPLETED", "FAILURE"}, rows);
    });
  }

  int events(const std::string& iccid) {
    auto limit = value("limit");
    return show(
        "GET", "/v1/sims/" + iccid + "/events" + (limit.empty() ? "" : "?limit=" + limit),
        [](const json& j) {
          std::vector<std::vector<std::string>> rows;
          for (const auto& e : j["items"])
            rows.push_back(
                {s(e["at"]), s(e["cause"]), s(e["imei"]),
                 s(e["before"]["lock"]["state"]) + " -> " + s(e["after"]["lock"]["state"]),
                 s(e["after"]["lock"]["imei"]), s(e["after"]["last_seen_imei"]),
                 s(e["before"]["bar"]["state"]) + " -> " + s(e["after"]["bar"]["state"]),
                 s(e["detail"])});
          table({"AT", "CAUSE", "IMEI", "LOCK", "LOCKED IMEI", "LAST SEEN", "BAR", "DETAIL"}, rows);
        });
  }

  /// The body fields of an order of `kind` (place() and bulk()).
  json order_body(const std::string& kind) {
    json body;
    if (kind == "enable") {
      body["type"] = "enable_imei_lock";
    } else if (kind == "disable") {
      body["type"] = "disable_imei_lock";
    } else if (kind == "bar") {
      body["type"] = "bar";
    } else if (kind == "unbar") {
      body["type"] = "unbar";
      if (flag("keep-lock") && flag("update-to-last-seen"))
        usage_fail("choose one of --keep-lock and --update-to-last-seen");
      if (flag("keep-lock"))
        body["unbar_mode"] = "keep_lock";
      if (flag("update-to-last-seen"))
        body["unbar_mode"] = "update_to_last_seen";
    } else if (kind == "activate") {
      body["type"] = "activate";
      if (flag("lock"))
        body["enable_imei_lock"] = true;
    } else {
      usage_fail("unknown order: " + kind + " (enable, disable, bar, unbar, activate)");
    }
    if (flag("lock-scope"))
      body["lock_scope"] = value("lock-scope"); // the API checks it and says why
    return body;
  }

  int bulk(const std::string& kind) {
    auto body = order_body(kind);
    const bool by_list = flag("iccid");
    const bool by_file = flag("file");
    json filter = json::object();
    auto add = [&](const std::string& key, const std::string& flag_name) {
      if (flag(flag_name))
        filter[key] = value(flag_name);
    };
    add("network", "network");
    add("lock_state", "lock-state");
    add("bar_state", "bar-state");
    if (flag("alerted")) {
      auto v = value("alerted");
      if (v != "true" && v != "false")
        usage_fail("--alerted must be true or false");
      filter["alerted"] = v == "true";
    }
    const bool by_filter = !filter.empty() || flag("every");
    if (static_cast<int>(by_list) + static_cast<int>(by_file) + static_cast<int>(by_filter) != 1)
      usage_fail("choose the SIMs with one of --iccid, --file, filters (--network, --lock-state, "
                 "--bar-state, --alerted) or --every");
    int code = ok;
    std::optional<json> j;
    if (by_file) {
      auto csv = read_input(value("file"));
      if (!csv)
        return usage_error;
      std::string query = "?type=" + body["type"].get<std::string>();
      if (body.contains("unbar_mode"))
        query += "&unbar_mode=" + body["unbar_mode"].get<std::string>();
      if (body.contains("enable_imei_lock"))
        query += "&enable_imei_lock=true";
      if (body.contains("lock_scope"))
        query += "&lock_scope=" + body["lock_scope"].get<std::string>();
      j = call("POST", "/v1/orders:bulk" + query, code, *csv, "text/csv");
    } else {
      if (by_list)
        body["iccids"] = opt_.flags.at("iccid");
      else
        body["filter"] = filter;
      j = call("POST", "/v1/orders:bulk", code, body.dump(), "application/json");
    }
    if (!j)
      return code;
    for (const auto& w : j->value("warnings", json::array()))
      std::cerr << "warning: " << s(w) << "\n";
    if (flag("watch"))
      return job_watch(s((*j)["id"]));
    if (opt_.as_json)
      std::cout << j->dump(2) << "\n";
    else
      std::cout << "job " << s((*j)["id"]) << ": " << s((*j)["type"]) << " for " << s((*j)["total"])
                << " SIMs, " << s((*j)["state"]) << " (imeilockctl job watch " << s((*j)["id"])
                << ")\n";
    return ok;
  }

  static void print_job(const json& j) {
    std::cout << "job " << s(j["id"]) << ": " << s(j["type"]);
    if (!j["unbar_mode"].is_null())
      std::cout << " (" << s(j["unbar_mode"]) << ")";
    std::cout << ", " << s(j["state"]) << "\n";
    std::cout << "selected:  " << s(j["total"]) << " SIMs " << j["selector"].dump() << "\n";
    std::cout << "processed: " << s(j["processed"]) << " (placed " << s(j["placed"]) << ", refused "
              << s(j["refused"]) << ")\n";
    std::cout << "orders:    " << s(j["orders"]["open"]) << " open, " << s(j["orders"]["completed"])
              << " completed, " << s(j["orders"]["failed"]) << " failed\n";
    std::cout << "created:   " << s(j["created_at"]) << "   finished: " << s(j["finished_at"])
              << "\n";
    if (!j["refused_reasons"].empty()) {
      std::vector<std::vector<std::string>> rows;
      for (const auto& r : j["refused_reasons"])
        rows.push_back({s(r["count"]), s(r["reason"])});
      table({"REFUSED", "REASON"}, rows);
      rows.clear();
      for (const auto& r : j["refusals"])
        rows.push_back({s(r["iccid"]), s(r["reason"])});
      table({"ICCID", "REASON"}, rows);
    }
  }

  int job_show(const std::string& id) { return show("GET", "/v1/jobs/" + id, print_job); }

  int job_cancel(const std::string& id) {
    return show("POST", "/v1/jobs/" + id + ":cancel", print_job, "", "application/json");
  }

  /// Polls the job until it ends: a progress bar redrawn in place on a
  /// terminal, else a line whenever the counts change.
  int job_watch(const std::string& id) {
    const bool tty = ::isatty(STDOUT_FILENO) == 1;
    std::string last;
    for (;;) {
      int code = ok;
      auto j = call("GET", "/v1/jobs/" + id, code);
      if (!j)
        return code;
      const auto total = (*j)["total"].get<std::uint64_t>();
      const auto done = (*j)["processed"].get<std::uint64_t>();
      const bool running = (*j)["state"] == "running";
      std::ostringstream line;
      line << done << "/" << total << " placed " << s((*j)["placed"]) << " refused "
           << s((*j)["refused"]) << " | orders completed " << s((*j)["orders"]["completed"])
           << " failed " << s((*j)["orders"]["failed"]) << " | " << s((*j)["state"]);
      if (tty && !opt_.as_json) {
        constexpr std::size_t width = 30;
        const auto filled =
            total == 0 ? width : static_cast<std::size_t>(std::min(done, total) * width / total);
        const auto pct = total == 0 ? 100 : std::min(done, total) * 100 / total;
        std::cout << "\r[" << std::string(filled, '#') << std::string(width - filled, '.') << "] "
                  << pct << "% " << line.str() << "\x1b[K" << std::flush;
      } else if (line.str() != last && !opt_.as_json) {
        std::cout << line.str() << "\n" << std::flush;
      }
      last = line.str();
      if (!running) {
        if (tty && !opt_.as_json)
          std::cout << "\n";
        if (opt_.as_json)
          std::cout << j->dump(2) << "\n";
        else
          print_job(*j);
        return (*j)["state"] == "completed" && (*j)["refused"] == 0 ? ok : rejected;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{500});
    }
  }

  int jobs_list() {
    std::string query = flag("running") ? "?state=running" : "";
    if (auto limit = value("limit"); !limit.empty())
      query += (query.empty() ? "?" : "&") + std::string{"limit="} + limit;
    return show("GET", "/v1/jobs" + query, [](const json& j) {
      std::vector<std::vector<std::string>> rows;
      for (const auto& item : j["items"])
        rows.push_back({s(item["id"]), s(item["type"]), s(item["state"]), s(item["total"]),
                        s(item["placed"]), s(item["refused"]), s(item["created_at"])});
      table({"ID", "TYPE", "STATE", "TOTAL", "PLACED", "REFUSED", "CREATED"}, rows);
    });
  }

  options opt_;
  imeilock::api::http_client client_;
};

options parse_args(int argc, char** argv) {
  options o;
  if (const char* url = std::getenv("IMEILOCK_URL"))
    o.url = url;
  if (o.url.empty())
    o.url = "http://127.0.0.1:8080";
  if (const char* tok = std::getenv("IMEILOCK_TOKEN"))
    o.token = tok;
  // Flags that take a value; the others are switches.
  static const std::vector<std::string> with_value{
      "url",  "token-file", "timeout", "lock-state", "bar-state", "network", "limit",     "cursor",
      "imsi", "msisdn",     "status",  "iccid",      "file",      "alerted", "lock-scope"};
  static const std::vector<std::string> switches{
      "json", "all", "keep-lock", "update-to-last-seen", "lock", "watch", "every", "running"};
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::cout << usage_text;
      std::exit(ok);
    }
    if (arg.rfind("--", 0) != 0 || arg == "-") {
      o.args.push_back(arg);
      continue;
    }
    auto name = arg.substr(2);
    std::string val;
    auto eq = name.find('=');
    bool has_inline = eq != std::string::npos;
    if (has_inline) {
      val = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (std::find(with_value.begin(), with_value.end(), name) != with_value.end()) {
      if (!has_inline) {
        if (i + 1 >= argc)
          usage_fail("--" + name + " needs a value");
        val = argv[++i];
      }
      o.flags[name].push_back(val);
    } else if (std::find(switches.begin(), switches.end(), name) != switches.end()) {
      if (has_inline)
        usage_fail("--" + name + " takes no value");
      o.flags[name].push_back("");
    } else {
      usage_fail("unknown option --" + name);
    }
  }
  if (o.flags.count("url"))
    o.url = o.flags["url"].back();
  if (o.flags.count("token-file")) {
    auto file = o.flags["token-file"].back();
    std::ifstream in(file);
    if (!in)
      usage_fail("cannot read the token file " + file);
    // Either a bare token, or the daemon's token file ("rw TOKEN" / "ro TOKEN"
    // lines, '#' comments), so the generated $STATE_DIRECTORY/api-token works as is.
    for (std::string line; std::getline(in, line);) {
      std::istringstream words{line};
      std::string first, second;
      words >> first >> second;
      if (first.empty() || first.front() == '#')
        continue;
      o.token = (first == "rw" || first == "ro") && !second.empty() ? second : first;
      break;
    }
  }
  if (o.flags.count("timeout")) {
    try {
      o.timeout_s = std::stoi(o.flags["timeout"].back());
    } catch (const std::exception&) {
      usage_fail("--timeout needs a whole number of seconds");
    }
    if (o.timeout_s < 1 || o.timeout_s > 3600)
      usage_fail("--timeout must be 1 to 3600 seconds");
  }
  o.as_json = o.flags.count("json") > 0;
  return o;
}

} // namespace

int main(int argc, char** argv) {
  auto opts = parse_args(argc, argv);
  cli c{std::move(opts)};
  return c.run();
}
