// The api: and webhooks: configuration sections: defaults, strictness, token files.

#include "api/api_config.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <unistd.h>

using namespace imeilock;
using namespace imeilock::api;

namespace {

api_config load_api(const std::string& yaml) {
  auto root = config::load_string(yaml);
  api_config cfg;
  load(cfg, root.child("api"));
  root.finish();
  return cfg;
}

webhook_config load_hooks(const std::string& yaml) {
  auto root = config::load_string(yaml);
  webhook_config cfg;
  load(cfg, root.child("webhooks"));
  root.finish();
  return cfg;
}

} // namespace

TEST_CASE("api: absent section keeps the documented defaults", "[api][config]") {
  auto cfg = load_api("{}\n");
  REQUIRE(cfg.listen.size() == 1);
  CHECK(cfg.listen[0].to_string() == "127.0.0.1:8080");
  CHECK(cfg.tokens.empty());
  CHECK(cfg.max_body_bytes == 8u * 1024 * 1024);
  CHECK(cfg.max_header_bytes == 16u * 1024);
  CHECK(cfg.ui);
}

TEST_CASE("api: every key read, unknown keys and bad values refused with the key path",
          "[api][config]") {
  auto cfg = load_api("api:\n"
                      "  listen: ['127.0.0.1:0', '[::1]:8081']\n"
                      "  tokens: [rw-0123456789abcdef]\n"
                      "  read_only_tokens: [ro-0123456789abcdef]\n"
                      "  max_header_bytes: 4096\n"
                      "  max_body_bytes: 65536\n"
                      "  idle_timeout: 5s\n"
                      "  request_timeout: 2s\n"
                      "  max_connections: 10\n"
                      "  ui: false\n");
  CHECK(cfg.listen.size() == 2);
  CHECK(cfg.listen[1].host == "::1");
  CHECK(cfg.read_only_tokens.size() == 1);
  CHECK(cfg.idle_timeout == std::chrono::seconds{5});
  CHECK_FALSE(cfg.ui);
  CHECK_THROWS_WITH(load_api("api:\n  tokenz: [x]\n"), Catch::Contains("api.tokenz"));
  CHECK_THROWS_WITH(load_api("api:\n  tokens: [short]\n"), Catch::Contains("at least 16"));
  CHECK_THROWS_WITH(load_api("api:\n  max_body_bytes: 10\n"),
                    Catch::Contains("api.max_body_bytes"));
  CHECK_THROWS_WITH(load_api("api:\n  listen: nowhere\n"), Catch::Contains("api.listen"));
}

TEST_CASE("api: token file with rw and ro lines, errors name the file and line", "[api][config]") {
  auto file = "/tmp/imeilock-tokens-" + std::to_string(getpid());
  {
    std::ofstream out(file);
    out << "# operators\nrw rw-file-0123456789abcdef\n\nro ro-file-0123456789abcdef\n";
  }
  api_config cfg;
  cfg.tokens = {"rw-conf-0123456789abcdef"};
  cfg.token_file = file;
  auto resolved = resolve_tokens(cfg);
  REQUIRE(resolved);
  const auto& tokens = *resolved;
  CHECK(tokens.read_write.size() == 2);
  CHECK(tokens.read_only == std::vector<std::string>{"ro-file-0123456789abcdef"});
  {
    std::ofstream out(file);
    out << "rw rw-file-0123456789abcdef\nadmin x-0123456789abcdef\n";
  }
  auto bad = resolve_tokens(cfg);
  REQUIRE_FALSE(bad);
  CHECK(bad.error() == config::ec::invalid);
  CHECK(bad.error().message().find(file + ":2") != std::string::npos);
  cfg.token_file = file + ".missing";
  auto missing = resolve_tokens(cfg);
  REQUIRE_FALSE(missing);
  CHECK(missing.error() == sys_ec::file_failed);
  CHECK_THROWS_WITH(load_api("api:\n  token_file: " + file + "\n"),
                    Catch::Contains("unknown kind"));
  std::remove(file.c_str());
}

TEST_CASE("webhooks: targets with events and secrets, bad ones refused", "[api][config]") {
  auto cfg = load_hooks("webhooks:\n"
                        "  targets:\n"
                        "    - url: http://127.0.0.1:9000/hook\n"
                        "      events: [violation, bar_completed]\n"
                        "      secret: abc\n"
                        "  max_attempts: 3\n"
                        "  initial_backoff: 100ms\n");
  REQUIRE(cfg.targets.size() == 1);
  CHECK(cfg.targets[0].events.size() == 2);
  CHECK(cfg.max_attempts == 3u);
  CHECK(load_hooks("{}\n").targets.empty());
  CHECK_THROWS_WITH(load_hooks("webhooks:\n  targets:\n    - url: ftp://x/\n      secret: a\n"),
                    Catch::Contains("expected an http:// or https:// URL"));
  CHECK_THROWS_WITH(load_hooks("webhooks:\n  targets:\n    - url: http://x:0/\n      secret: a\n"),
                    Catch::Contains("bad port"));
}

TEST_CASE("webhooks: https targets take a CA file and a client certificate", "[api][config]") {
  auto cfg = load_hooks("webhooks:\n  targets:\n    - url: https://hooks.example/in\n"
                        "      secret: a\n");
  REQUIRE(cfg.targets.size() == 1);
  CHECK(cfg.targets[0].tls == http::tls_files{}); // the system CA store, no client certificate
  cfg = load_hooks("webhooks:\n  targets:\n    - url: https://hooks.example/in\n"
                   "      secret: a\n      tls:\n        ca_file: /etc/hostname\n"
                   "        client_cert: /etc/hostname\n        client_key: /etc/hostname\n");
  CHECK(cfg.targets[0].tls == http::tls_files{"/etc/hostname", "/etc/hostname", "/etc/hostname"});
  CHECK_THROWS_WITH(load_hooks("webhooks:\n  targets:\n    - url: https://x/\n      secret: a\n"
                               "      tls: {ca_file: /nonexistent/ca.pem}\n"),
                    Catch::Contains("tls.ca_file") && Catch::Contains("cannot read"));
  CHECK_THROWS_WITH(load_hooks("webhooks:\n  targets:\n    - url: https://x/\n      secret: a\n"
                               "      tls: {client_cert: /etc/hostname}\n"),
                    Catch::Contains("client_key"));
  CHECK_THROWS_WITH(load_hooks("webhooks:\n  targets:\n    - url: https://x/\n      secret: a\n"
                               "      tls: {verify: false}\n"),
                    Catch::Contains("verify"));
  CHECK_THROWS_WITH(load_hooks("webhooks:\n  targets:\n    - url: http://x/\n      events: [boom]\n"
                               "      secret: a\n"),
                    Catch::Contains("unknown event 'boom'"));
  CHECK_THROWS_WITH(load_hooks("webhooks:\n  targets:\n    - url: http://x/\n"),
                    Catch::Contains("secret"));
}
