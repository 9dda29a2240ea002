// The one URL parser (common/http_url): what it splits, and the message for
// each kind of bad URL.

#include "common/http_url.hpp"

#include <catch2/catch.hpp>

using namespace imeilock;

namespace {
/// The parse error for `text` (the test fails if it parses).
std::string error_of(std::string_view text) {
  auto u = http::parse_url(text);
  REQUIRE_FALSE(u);
  CHECK(u.error() == http::ec::bad_url);
  return u.error().message();
}

/// What validate() says is wrong with `files`: "key: message".
std::string problem_of(const http::tls_files& files) {
  auto usable = files.validate();
  REQUIRE_FALSE(usable);
  CHECK(usable.error() == http::ec::bad_tls_files);
  return usable.error().describe();
}
} // namespace

TEST_CASE("http URLs split into host, port and target", "[http_url]") {
  auto u = http::parse_url("http://127.0.0.1:8080/prov/orders?x=1");
  REQUIRE(u);
  CHECK(u->scheme == "http");
  CHECK(u->host == "127.0.0.1");
  CHECK(u->port == "8080");
  CHECK(u->target == "/prov/orders?x=1");
  CHECK(u->host_header() == "127.0.0.1:8080");
  CHECK(u->authority() == "127.0.0.1:8080");
}

TEST_CASE("the port defaults to the scheme's and is left out of the Host header", "[http_url]") {
  auto u = http::parse_url("http://provisioning.example");
  REQUIRE(u);
  CHECK(u->host == "provisioning.example");
  CHECK(u->port == "80");
  CHECK(u->target == "/");
  CHECK(u->host_header() == "provisioning.example");
  CHECK(u->authority() == "provisioning.example:80");
  CHECK(http::default_port("http") == "80");
  CHECK(http::default_port("https") == "443");
  CHECK(http::default_port("gopher").empty());
  // An explicit default port is the same URL.
  u = http::parse_url("http://h:80/x");
  REQUIRE(u);
  CHECK(u->host_header() == "h");
  CHECK(!u->tls());
}

TEST_CASE("https URLs default to port 443 and ask for TLS", "[http_url]") {
  auto u = http::parse_url("https://hooks.example/in");
  REQUIRE(u);
  CHECK(u->tls());
  CHECK(u->port == "443");
  CHECK(u->host_header() == "hooks.example");
  u = http::parse_url("https://127.0.0.1:8443/");
  REQUIRE(u);
  CHECK(u->port == "8443");
  CHECK(u->host_header() == "127.0.0.1:8443");
}

TEST_CASE("TLS files: key and certificate go together, files must be readable", "[http_url]") {
  CHECK(http::tls_files{}.validate());
  CHECK(problem_of({"", "/etc/hostname", ""}) ==
        "client_key: client_cert needs its private key (client_key)");
  CHECK(problem_of({"", "", "/etc/hostname"}) ==
        "client_cert: client_key is set but client_cert is not");
  CHECK(problem_of({"/nonexistent/ca.pem", "", ""}) ==
        "ca_file: cannot read '/nonexistent/ca.pem'");
  CHECK(http::tls_files{"/etc/hostname", "", ""}.validate());
}

TEST_CASE("IPv6 hosts are written in brackets and kept without them", "[http_url]") {
  auto u = http::parse_url("http://[::1]:9000/o");
  REQUIRE(u);
  CHECK(u->host == "::1");
  CHECK(u->port == "9000");
  CHECK(u->target == "/o");
  CHECK(u->host_header() == "[::1]:9000");
  CHECK(u->authority() == "[::1]:9000");
  u = http::parse_url("http://[2001:db8::7]");
  REQUIRE(u);
  CHECK(u->host == "2001:db8::7");
  CHECK(u->host_header() == "[2001:db8::7]");
}

TEST_CASE("a query without a path gets '/', a fragment stays off the wire", "[http_url]") {
  auto u = http::parse_url("http://h:81?a=1");
  REQUIRE(u);
  CHECK(u->port == "81");
  CHECK(u->target == "/?a=1");
  u = http::parse_url("http://h/p#frag");
  REQUIRE(u);
  CHECK(u->target == "/p");
  u = http::parse_url("http://h#frag");
  REQUIRE(u);
  CHECK(u->host == "h");
  CHECK(u->target == "/");
}

TEST_CASE("bad URLs are refused with a message quoting them", "[http_url]") {
  CHECK(error_of("127.0.0.1:8080/x") ==
        "expected an http:// or https:// URL in '127.0.0.1:8080/x'");
  CHECK(error_of("ftp://h/") == "expected an http:// or https:// URL, not ftp:// in 'ftp://h/'");
  CHECK(error_of("http://:80/") == "no host in 'http://:80/'");
  CHECK(error_of("http:///path") == "no host in 'http:///path'");
  CHECK(error_of("http://[]:80/") == "no host in 'http://[]:80/'");
  CHECK(error_of("http://host:0/") == "bad port '0' (expected 1-65535) in 'http://host:0/'");
  CHECK(error_of("http://host:99999/") ==
        "bad port '99999' (expected 1-65535) in 'http://host:99999/'");
  CHECK(error_of("http://host:/") == "bad port '' (expected 1-65535) in 'http://host:/'");
  CHECK(error_of("http://host:8o/") == "bad port '8o' (expected 1-65535) in 'http://host:8o/'");
  CHECK(error_of("http://host:123456/") ==
        "bad port '123456' (expected 1-65535) in 'http://host:123456/'");
  CHECK(error_of("http://user@host/") ==
        "user:password@ is not supported (use a bearer token) in 'http://user@host/'");
  CHECK(error_of("http://[::1/") == "unterminated [IPv6] host in 'http://[::1/'");
  CHECK(error_of("http://[::1]x/") == "expected :port after the [IPv6] host in 'http://[::1]x/'");
  CHECK(error_of("") == "expected an http:// or https:// URL in ''");
}

TEST_CASE("parse_url refuses port 0 and accepts 1 to 65535", "[http_url]") {
  CHECK_FALSE(http::parse_url("http://host:0/"));
  CHECK(http::parse_url("http://host:65535/"));
  CHECK(http::parse_url("http://host:1/"));
}
