// R1 as configuration.

#include "lock/eligibility.hpp"

#include <catch2/catch.hpp>

using namespace imeilock;
using namespace imeilock::lock;

TEST_CASE("R1 defaults are the product text's networks", "[eligibility][R1]") {
  eligibility_config cfg;
  CHECK(validate(cfg));
  for (const char* n : {"multinet", "roamnet901", "ee", "ee_big_data"}) {
    INFO(n);
    CHECK(policy_for(cfg, n).lock_eligible);
  }
  CHECK(policy_for(cfg, "roamnet901").lock_on_activation_eligible);
  CHECK_FALSE(policy_for(cfg, "ee").lock_on_activation_eligible);
  CHECK_FALSE(policy_for(cfg, "multinet").lock_on_activation_eligible);
  CHECK_FALSE(policy_for(cfg, "vodafone_uk").lock_eligible);
  CHECK_FALSE(policy_for(cfg, "").lock_eligible);
  CHECK_FALSE(policy_for(cfg, "EE").lock_eligible); // names compare exactly
  CHECK_FALSE(policy_for(cfg, "ee").strict);
}

TEST_CASE("R1 validate() explains what is wrong", "[eligibility][R1]") {
  eligibility_config cfg;
  cfg.activation_lock_networks.push_back("other");
  auto r = validate(cfg);
  REQUIRE_FALSE(r);
  CHECK(r.error() == config::ec::invalid);
  CHECK(r.error().where() == "activation_lock_networks");
  CHECK(r.error().message().find("other") != std::string::npos);
}
