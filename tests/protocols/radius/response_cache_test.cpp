// The RFC 5080 §2.2.2 response cache (protocols/radius/response_cache.hpp):
// retransmits are recognised by key and authenticator, answered ones get the
// stored response, entries expire and stay within capacity.

#include "protocols/radius/response_cache.hpp"

#include <catch2/catch.hpp>

#include <vector>

using namespace imeilock::radius;
using namespace std::chrono_literals;

namespace {

using response = std::vector<std::uint8_t>;
using cache_type = response_cache<response>;
using state = cache_type::state;
using clock = cache_type::clock;

request_key key(std::uint8_t identifier, std::uint16_t port = 1813, std::uint8_t last_octet = 1) {
  request_key k;
  k.addr = *parse_ip("192.0.2." + std::to_string(last_octet));
  k.port = port;
  k.identifier = identifier;
  return k;
}

std::array<std::uint8_t, 16> auth(std::uint8_t fill) {
  std::array<std::uint8_t, 16> a;
  a.fill(fill);
  return a;
}

const clock::time_point t0{std::chrono::seconds{1000}};

} // namespace

TEST_CASE("response cache: an unknown request is fresh", "[response_cache]") {
  cache_type c{16, 10s};
  CHECK(c.find(key(1), auth(1)).what == state::fresh);
  CHECK(c.find(key(1), auth(1)).response == nullptr);
  CHECK(c.size() == 0);
}

TEST_CASE("response cache: a retransmit in progress is dropped, once answered it is resent",
          "[response_cache]") {
  cache_type c{16, 10s};
  auto ticket = c.begin(key(7), auth(0xaa));
  CHECK(c.find(key(7), auth(0xaa)).what == state::in_progress);
  c.answered(key(7), ticket, response{5, 7, 0, 20}, t0);
  auto hit = c.find(key(7), auth(0xaa));
  REQUIRE(hit.what == state::answered);
  REQUIRE(hit.response);
  CHECK(*hit.response == response{5, 7, 0, 20});
  // Any part of the key differing is another request.
  CHECK(c.find(key(8), auth(0xaa)).what == state::fresh);
  CHECK(c.find(key(7, 1814), auth(0xaa)).what == state::fresh);
  CHECK(c.find(key(7, 1813, 2), auth(0xaa)).what == state::fresh);
  auto other_socket = key(7);
  other_socket.socket = 1;
  CHECK(c.find(other_socket, auth(0xaa)).what == state::fresh);
}

TEST_CASE("response cache: same key, another authenticator is a new request that takes over",
          "[response_cache]") {
  cache_type c{16, 10s};
  auto first = c.begin(key(7), auth(1));
  c.answered(key(7), first, response{1}, t0);
  // The NAS reused Identifier 7 for a new request.
  CHECK(c.find(key(7), auth(2)).what == state::fresh);
  auto second = c.begin(key(7), auth(2));
  CHECK(second != first);
  CHECK(c.size() == 1);
  CHECK(c.find(key(7), auth(1)).what == state::fresh); // the old one is gone
  CHECK(c.find(key(7), auth(2)).what == state::in_progress);
  // A late answer for the replaced request changes nothing.
  c.answered(key(7), first, response{9}, t0);
  CHECK(c.find(key(7), auth(2)).what == state::in_progress);
  c.answered(key(7), second, response{2}, t0);
  REQUIRE(c.find(key(7), auth(2)).what == state::answered);
  CHECK(*c.find(key(7), auth(2)).response == response{2});
}

TEST_CASE("response cache: forget lets the retransmit through afresh", "[response_cache]") {
  cache_type c{16, 10s};
  auto ticket = c.begin(key(3), auth(3));
  c.forget(key(3), ticket + 1); // not its ticket: nothing happens
  CHECK(c.find(key(3), auth(3)).what == state::in_progress);
  c.forget(key(3), ticket);
  CHECK(c.find(key(3), auth(3)).what == state::fresh);
  CHECK(c.size() == 0);
}

TEST_CASE("response cache: answered entries expire after the window", "[response_cache]") {
  cache_type c{16, 10s};
  c.answered(key(1), c.begin(key(1), auth(1)), response{1}, t0);
  c.answered(key(2), c.begin(key(2), auth(2)), response{2}, t0 + 5s);
  c.evict(t0 + 9s);
  CHECK(c.size() == 2);
  c.evict(t0 + 10s);
  CHECK(c.find(key(1), auth(1)).what == state::fresh);
  CHECK(c.find(key(2), auth(2)).what == state::answered);
  c.evict(t0 + 15s);
  CHECK(c.size() == 0);
  // A shorter window (reload) applies to answers stored from then on.
  c.set_limits(16, 1s);
  c.answered(key(3), c.begin(key(3), auth(3)), response{3}, t0 + 20s);
  c.evict(t0 + 21s);
  CHECK(c.size() == 0);
}

TEST_CASE("response cache: capacity bounds the answered entries, oldest first, in progress stays",
          "[response_cache]") {
  cache_type c{3, 10s};
  auto busy = c.begin(key(100), auth(100)); // in progress: never evicted
  for (std::uint8_t i = 1; i <= 5; ++i) {
    c.answered(key(i), c.begin(key(i), auth(i)), response{i}, t0 + std::chrono::seconds{i});
    c.evict(t0 + std::chrono::seconds{i});
    CHECK(c.size() <= 3);
  }
  CHECK(c.find(key(100), auth(100)).what == state::in_progress);
  CHECK(c.find(key(5), auth(5)).what == state::answered);
  CHECK(c.find(key(4), auth(4)).what == state::answered);
  CHECK(c.find(key(3), auth(3)).what == state::fresh);
  CHECK(c.find(key(1), auth(1)).what == state::fresh);
  c.answered(key(100), busy, response{100}, t0 + 6s);
  CHECK(c.find(key(100), auth(100)).what == state::answered);
}
