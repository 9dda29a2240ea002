// R1 as configuration: the `imei_lock:` section of the YAML.

#include "daemon/imei_lock_config.hpp"

#include <catch2/catch.hpp>

using namespace imeilock;
using imeilock::daemon::load;
using imeilock::lock::eligibility_config;
using imeilock::lock::policy_for;

TEST_CASE("R1 lists and strict mode load from YAML", "[eligibility][R1]") {
  eligibility_config cfg;
  auto root = config::load_string("lock:\n"
                                  "  lock_networks: [ee, three]\n"
                                  "  activation_lock_networks: [three]\n"
                                  "  strict: true\n");
  load(cfg, root.child("lock"));
  root.finish();
  CHECK(policy_for(cfg, "three").lock_eligible);
  CHECK(policy_for(cfg, "three").lock_on_activation_eligible);
  CHECK(policy_for(cfg, "three").strict);
  CHECK_FALSE(policy_for(cfg, "multinet").lock_eligible);
  CHECK_FALSE(policy_for(cfg, "roamnet901").lock_on_activation_eligible);
}

TEST_CASE("R1 an absent section keeps the defaults", "[eligibility][R1]") {
  eligibility_config cfg;
  load(cfg, config::section{});
  CHECK(cfg.lock_networks.size() == 4);
  CHECK(cfg.activation_lock_networks == std::vector<std::string>{"roamnet901"});
  CHECK_FALSE(cfg.strict);
}

TEST_CASE("R1 configuration errors name the key", "[eligibility][R1]") {
  auto load_text = [](const std::string& text) {
    eligibility_config cfg;
    auto root = config::load_string(text);
    load(cfg, root.child("lock"));
  };
  SECTION("activation network not lockable") {
    try {
      load_text("lock:\n  lock_networks: [ee]\n  activation_lock_networks: [roamnet901]\n");
      FAIL("expected config::error");
    } catch (const config::error& e) {
      CHECK(e.key_path() == "lock.activation_lock_networks");
      CHECK(e.message().find("roamnet901") != std::string::npos);
      CHECK(e.line() == 3);
    }
  }
  SECTION("duplicate name") {
    CHECK_THROWS_AS(load_text("lock:\n  lock_networks: [ee, ee]\n  activation_lock_networks: []\n"),
                    config::error);
  }
  SECTION("empty name") {
    CHECK_THROWS_AS(load_text("lock:\n  lock_networks: ['']\n  activation_lock_networks: []\n"),
                    config::error);
  }
  SECTION("unknown key (a typo)") {
    CHECK_THROWS_AS(load_text("lock:\n  stritc: true\n"), config::error);
  }
  SECTION("wrong type") {
    CHECK_THROWS_AS(load_text("lock:\n  strict: maybe\n"), config::error);
  }
}

TEST_CASE("violation actions load from YAML, errors name the key", "[eligibility][actions]") {
  using lock::violation_action;
  eligibility_config cfg;
  auto root = config::load_string("lock:\n"
                                  "  action: alert\n"
                                  "  actions:\n"
                                  "    roamnet901: disconnect_and_bar\n"
                                  "    ee: bar\n");
  load(cfg, root.child("lock"));
  root.finish();
  CHECK(policy_for(cfg, "multinet").action == violation_action::alert);
  CHECK(policy_for(cfg, "roamnet901").action == violation_action::disconnect_and_bar);
  CHECK(policy_for(cfg, "ee").action == violation_action::bar);

  auto load_text = [](const std::string& text) {
    eligibility_config c;
    auto r = config::load_string(text);
    load(c, r.child("lock"));
  };
  try {
    load_text("lock:\n  action: block\n");
    FAIL("expected config::error");
  } catch (const config::error& e) {
    CHECK(e.key_path() == "lock.action");
    CHECK(e.message().find("bar, alert or disconnect_and_bar") != std::string::npos);
  }
  try {
    load_text("lock:\n  actions:\n    ee: monitor\n");
    FAIL("expected config::error");
  } catch (const config::error& e) {
    CHECK(e.key_path() == "lock.actions.ee");
  }
  CHECK_THROWS_AS(load_text("lock:\n  actions: [ee]\n"), config::error);
  CHECK_THROWS_AS(load_text("lock:\n  actions: {vodafone: alert}\n"), config::error);
}

TEST_CASE("R17 allowed device models load per network, a bad TAC names the network and line",
          "[eligibility][tac]") {
  eligibility_config cfg;
  auto root = config::load_string("lock:\n"
                                  "  lock_networks: [ee, three]\n"
                                  "  activation_lock_networks: []\n"
                                  "  allowed_tacs:\n"
                                  "    three: ['35209900', '49015400-49015499']\n");
  load(cfg, root.child("lock"));
  root.finish();
  auto p = policy_for(cfg, "three");
  REQUIRE(p.allowed_tacs != nullptr);
  CHECK(p.allowed_tacs->allows(35209900));
  CHECK(p.allowed_tacs->allows(49015420));
  CHECK_FALSE(p.allowed_tacs->allows(35693803));
  CHECK(policy_for(cfg, "ee").allowed_tacs == nullptr);

  auto failure = [](const std::string& text) -> config::error {
    eligibility_config c;
    auto r = config::load_string(text);
    try {
      load(c, r.child("lock"));
    } catch (const config::error& e) {
      return e;
    }
    FAIL("expected config::error");
    return config::error{"", 0, ""};
  };
  auto e = failure("lock:\n  lock_networks: [ee]\n  activation_lock_networks: []\n  "
                   "allowed_tacs:\n    ee: ['3520990']\n");
  CHECK(e.key_path() == "lock.allowed_tacs.ee");
  CHECK(e.line() == 5);
  CHECK(e.message().find("\"3520990\"") != std::string::npos);
  e = failure("lock:\n  lock_networks: [ee]\n  activation_lock_networks: []\n  allowed_tacs:\n    "
              "three: ['35209900']\n");
  CHECK(e.key_path() == "lock.allowed_tacs.three");
  CHECK(e.message().find("lock_networks") != std::string::npos);
  e = failure("lock:\n  lock_networks: [ee]\n  activation_lock_networks: []\n  allowed_tacs:\n    "
              "ee: '35209900'\n");
  CHECK(e.key_path() == "lock.allowed_tacs.ee");
}
