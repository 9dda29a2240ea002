// imeilockctl against the real server (fake SIM layer): exit codes, tables, --json.

#include "server_fixture.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <sys/wait.h>
#include <unistd.h>

using namespace imeilock;
using namespace imeilock::api;
using namespace imeilock::api::test;
using nlohmann::json;

namespace {

struct run_result {
  int code = -1;
  std::string out;
  std::string err;
};

std::string slurp(const std::string& file) {
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Runs imeilockctl with `args` (already shell-quoted where needed).
run_result ctl(const std::string& url, const std::string& args,
               const std::string& token = rw_token) {
  static int seq = 0;
  auto base = "/tmp/imeilockctl-test-" + std::to_string(getpid()) + "-" + std::to_string(++seq);
  std::string cmd =
      (token.empty() ? std::string{"env -u IMEILOCK_TOKEN "} : "IMEILOCK_TOKEN=" + token + " ") +
      IMEILOCKCTL + " --url " + url + " " + args + " >" + base + ".out 2>" + base + ".err";
  int status = std::system(cmd.c_str());
  run_result r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(base + ".out");
  r.err = slurp(base + ".err");
  std::remove((base + ".out").c_str());
  std::remove((base + ".err").c_str());
  return r;
}

} // namespace

TEST_CASE("imeilockctl sims get: a table by default, the API's JSON with --json", "[ctl]") {
  server_fixture f;
  f.seed_barred_sim();
  auto r = ctl(f.url(), std::string{"sims get "} + iccid_a);
  INFO(r.err);
  CHECK(r.code == 0);
  CHECK(r.out.find("locked imei:") != std::string::npos);
  CHECK(r.out.find("353490012345670") != std::string::npos);
  CHECK(r.out.find("barred") != std::string::npos);

  r = ctl(f.url(), std::string{"--json sims get "} + iccid_a);
  CHECK(r.code == 0);
  auto j = json::parse(r.out);
  CHECK(j["bar"]["trigger_imei"] == "352099001761481");
}

TEST_CASE("imeilockctl exit codes: 1 usage, 2 refused, 3 unreachable", "[ctl]") {
  server_fixture f;
  f.seed_barred_sim();
  CHECK(ctl(f.url(), "").code == 1);
  CHECK(ctl(f.url(), "--frobnicate sims list").code == 1);
  CHECK(ctl(f.url(), "sims get").code == 1);
  CHECK(ctl(f.url(), "order unbar " + std::string{iccid_a} + " --keep-lock --update-to-last-seen")
            .code == 1);
  auto r = ctl(f.url(), "sims get " + std::string{iccid_b});
  CHECK(r.code == 2);
  CHECK(r.err.find("unknown_sim") != std::string::npos);
  r = ctl(f.url(), "sims list", "");
  CHECK(r.code == 2);
  CHECK(r.err.find("401") != std::string::npos);
  r = ctl(f.url(), "order bar " + std::string{iccid_a}, ro_token);
  CHECK(r.code == 2);
  CHECK(r.err.find("403") != std::string::npos);
  r = ctl("http://127.0.0.1:1", "sims list");
  CHECK(r.code == 3);
  CHECK(r.err.find("127.0.0.1:1") != std::string::npos);
  CHECK(ctl(f.url(), "--help").code == 0);
}

TEST_CASE("imeilockctl orders: unbar needs an option, --update-to-last-seen moves the lock",
          "[ctl]") {
  server_fixture f;
  f.seed_barred_sim();
  auto iccid = std::string{iccid_a};
  auto r = ctl(f.url(), "order unbar " + iccid);
  CHECK(r.code == 2);
  // The daemon's words (lock::explain), which the fake now returns too.
  CHECK(r.err.find("keep the existing lock or to update it") != std::string::npos);

  SECTION("keep-lock prints the R10 caveat as a warning") {
    r = ctl(f.url(), "order unbar " + iccid + " --keep-lock");
    CHECK(r.code == 0);
    CHECK(r.err.find("warning:") != std::string::npos);
  }
  SECTION("update-to-last-seen, then orders and events") {
    r = ctl(f.url(), "--json order unbar " + iccid + " --update-to-last-seen");
    REQUIRE(r.code == 0);
    auto id = json::parse(r.out)["id"].get<int>();
    CHECK(f.service.snapshot(iccid)->state.lock_imei == device_b);

    r = ctl(f.url(), "orders get " + std::to_string(id));
    CHECK(r.code == 0);
    CHECK(r.out.find("update_to_last_seen") != std::string::npos);
    r = ctl(f.url(), "--json orders list " + iccid);
    CHECK(r.code == 0);
    CHECK(json::parse(r.out)["items"].size() == 2);
    r = ctl(f.url(), "orders list " + iccid);
    CHECK(r.out.find("STATUS") != std::string::npos);
    r = ctl(f.url(), "events " + iccid + " --limit 2");
    CHECK(r.code == 0);
    CHECK(r.out.find("order_completed:unbar") != std::string::npos);
    CHECK(ctl(f.url(), "orders get 4242").code == 2);
  }
  SECTION("enable, disable, bar and activate map to their order types") {
    CHECK(ctl(f.url(), "order disable " + iccid).code == 0);
    CHECK(f.service.snapshot(iccid)->state.lock == lock::lock_state::off);
    CHECK(ctl(f.url(), "order enable " + iccid).code == 0);
    CHECK(f.service.snapshot(iccid)->state.lock == lock::lock_state::locked);
    CHECK(ctl(f.url(), "order activate " + iccid + " --lock").code == 2); // already active
  }
  SECTION("--lock-scope sets a device-model lock (R16); a wrong scope is the API's refusal") {
    CHECK(ctl(f.url(), "order disable " + iccid).code == 0);
    auto bad = ctl(f.url(), "order enable " + iccid + " --lock-scope tac");
    CHECK(bad.code == 2);
    CHECK(bad.err.find("lock_scope must be imei or device_model") != std::string::npos);
    CHECK(ctl(f.url(), "order enable " + iccid + " --lock-scope device_model").code == 0);
    CHECK(f.service.snapshot(iccid)->state.scope == lock::lock_scope::device_model);
  }
}

TEST_CASE("imeilockctl sims import/list/put and a token file", "[ctl]") {
  server_fixture f;
  auto csv = "/tmp/imeilockctl-import-" + std::to_string(getpid()) + ".csv";
  {
    std::ofstream out(csv);
    out << "iccid,imsis,msisdn,network,status\n"
           "89441000000000000018,234100000000001,447700900001,multinet,active\n"
           "89441000000000000026,23410,447700900002,multinet,active\n";
  }
  auto r = ctl(f.url(), "sims import " + csv);
  CHECK(r.code == 2); // one line rejected
  CHECK(r.out.find("created") != std::string::npos);
  CHECK(r.out.find("1 imported, 1 rejected") != std::string::npos);
  std::remove(csv.c_str());
  CHECK(ctl(f.url(), "sims import /nonexistent.csv").code == 1);

  r = ctl(f.url(), "sims put 89441000000000000034 --imsi 234100000000003 --network vodafone_uk "
                   "--status inactive");
  CHECK(r.code == 2); // refused: not a configured network, and the message lists them
  CHECK(r.err.find("unknown_network") != std::string::npos);
  CHECK(r.err.find("multinet, roamnet901") != std::string::npos);
  CHECK_FALSE(f.service.snapshot("89441000000000000034"));

  r = ctl(f.url(), "sims put 89441000000000000034 --imsi 234100000000003 --imsi 234100000000004 "
                   "--network roamnet901 --status inactive --msisdn 447700900003");
  INFO(r.err);
  CHECK(r.code == 0);
  r = ctl(f.url(), "--json sims list --network roamnet901");
  CHECK(r.code == 0);
  auto items = json::parse(r.out)["items"];
  REQUIRE(items.size() == 1);
  CHECK(items[0]["imsis"].size() == 2);
  r = ctl(f.url(), "sims list --all --limit 1");
  CHECK(r.code == 0);
  CHECK(r.out.find("89441000000000000018") != std::string::npos);
  CHECK(r.out.find("89441000000000000034") != std::string::npos);

  auto token_file = "/tmp/imeilockctl-token-" + std::to_string(getpid());
  {
    std::ofstream out(token_file);
    out << ro_token << "\n";
  }
  r = ctl(f.url(), "--token-file " + token_file + " sims list", "");
  CHECK(r.code == 0);
  std::remove(token_file.c_str());
}
