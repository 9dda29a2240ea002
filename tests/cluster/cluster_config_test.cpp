#include "cluster/cluster_config.hpp"
#include "config/section.hpp"

#include <catch2/catch.hpp>

using namespace imeilock;

namespace {

/// Loads `yaml` as the `cluster:` section; the error's describe() or "".
std::string load_error(const std::string& yaml, cluster::cluster_config* out = nullptr) {
  auto loaded = config::capture([&] {
    cluster::cluster_config cfg;
    auto root = config::load_string(yaml);
    cluster::load(cfg, root.child("cluster"));
    return cfg;
  });
  if (!loaded)
    return loaded.error().describe();
  if (out)
    *out = *loaded;
  return {};
}

} // namespace

TEST_CASE("cluster: off by default, and the defaults are valid") {
  cluster::cluster_config cfg;
  CHECK_FALSE(cfg.enabled);
  CHECK(cfg.lease_duration == std::chrono::seconds{10});
  CHECK(cfg.validate());
  cluster::cluster_config loaded;
  CHECK(load_error("{}", &loaded).empty());
  CHECK(loaded == cfg);
}

TEST_CASE("cluster: a full section loads, preferred shards as numbers and ranges") {
  cluster::cluster_config cfg;
  auto err = load_error("cluster:\n  enabled: true\n  node_id: node-a.dc1\n  shards: 8\n"
                        "  preferred_shards: [0, \"2-4\", 7]\n  lease_duration: 2s\n"
                        "  renew_interval: 500ms\n  api_url: http://10.0.0.1:8080\n",
                        &cfg);
  REQUIRE(err.empty());
  CHECK(cfg.enabled);
  CHECK(cfg.node_id == "node-a.dc1");
  CHECK(cfg.shards == 8);
  CHECK(cfg.preferred_shards == std::vector<std::uint32_t>{0, 2, 3, 4, 7});
  CHECK(cfg.lease_duration == std::chrono::seconds{2});
  CHECK(cfg.renew_interval == std::chrono::milliseconds{500});
  CHECK(cfg.api_url == "http://10.0.0.1:8080");
}

TEST_CASE("cluster: each wrong value is refused with its key") {
  auto enabled = std::string{"cluster:\n  enabled: true\n  node_id: a\n"};
  CHECK_THAT(load_error("cluster:\n  enabled: true\n"),
             Catch::Contains("cluster.node_id") && Catch::Contains("required"));
  CHECK_THAT(load_error("cluster:\n  enabled: true\n  node_id: \"a b\"\n"),
             Catch::Contains("cluster.node_id"));
  CHECK_THAT(load_error(enabled + "  shards: 0\n"), Catch::Contains("cluster.shards"));
  CHECK_THAT(load_error(enabled + "  shards: 10001\n"), Catch::Contains("cluster.shards"));
  CHECK_THAT(load_error(enabled + "  shards: 4\n  preferred_shards: [4]\n"),
             Catch::Contains("cluster.preferred_shards") && Catch::Contains("does not exist"));
  CHECK_THAT(load_error(enabled + "  preferred_shards: [1, \"0-2\"]\n"),
             Catch::Contains("cluster.preferred_shards") && Catch::Contains("twice"));
  CHECK_THAT(load_error(enabled + "  preferred_shards: [\"3-1\"]\n"),
             Catch::Contains("cluster.preferred_shards") && Catch::Contains("'3-1'"));
  CHECK_THAT(load_error(enabled + "  preferred_shards: [x]\n"),
             Catch::Contains("cluster.preferred_shards"));
  CHECK_THAT(load_error(enabled + "  lease_duration: 1s\n  renew_interval: 600ms\n"),
             Catch::Contains("cluster.renew_interval") && Catch::Contains("half"));
  CHECK_THAT(load_error(enabled + "  api_url: ftp://x\n"), Catch::Contains("cluster.api_url"));
  CHECK_THAT(load_error(enabled + "  lease: 1s\n"), Catch::Contains("cluster.lease"));
}

TEST_CASE("cluster: validate() names the key") {
  cluster::cluster_config cfg;
  cfg.enabled = true;
  auto missing = cfg.validate();
  REQUIRE_FALSE(missing);
  CHECK(missing.error().is(config::ec::invalid));
  CHECK(missing.error().where() == "node_id");
  cfg.node_id = "n1";
  CHECK(cfg.validate());
}
