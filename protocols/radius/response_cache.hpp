#pragma once
// Responses kept for duplicate detection (RFC 5080 §2.2.2): a request with
// the same client address, port, Identifier and receiving socket, and the
// same Request Authenticator, is a retransmit. While the first copy is still
// being processed the retransmit is dropped; once it is answered the stored
// response is sent again and nothing reaches the SIM layer a second time. A
// request with the same key but another authenticator is a new request (the
// NAS reused the Identifier) and takes the entry over.
//
// Answered entries are kept for `window`, and while more than `capacity`
// entries are held the oldest answered ones go first; entries in progress
// are never evicted (the server's in-flight limit bounds them). Shaped like
// diameter/answer_cache.hpp. Not thread-safe: each server worker owns one. Pure (no Asio),
// header-only, generic over the response's byte container so the server keeps its small-buffer
// vector and the tests use std::vector.

#include "protocols/radius/clients.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <deque>
#include <span>
#include <unordered_map>

namespace imeilock::radius {

/// What makes two requests the same (RFC 5080 §2.2.2), the authenticator aside.
struct request_key {
  ip_address addr;
  std::uint16_t port = 0;
  std::uint8_t identifier = 0;
  std::uint8_t socket = 0; ///< index of the receiving socket
  bool operator==(const request_key&) const = default;
};

struct request_key_hash {
  std::size_t operator()(const request_key& k) const {
    std::uint64_t hi;
    std::uint64_t lo;
    std::memcpy(&hi, k.addr.octets.data(), 8);
    std::memcpy(&lo, k.addr.octets.data() + 8, 8);
    std::uint64_t h = hi * 0x9e3779b97f4a7c15ull ^ lo;
    h ^= (std::uint64_t{k.port} << 16 | std::uint64_t{k.identifier} << 8 | k.socket) *
         0xff51afd7ed558ccdull;
    return static_cast<std::size_t>(h ^ (h >> 29));
  }
};

template <class Response>
class response_cache {
public:
  using clock = std::chrono::steady_clock;

  /// What find() knows about a request.
  enum class state : std::uint8_t {
    fresh,       ///< not a retransmit: process it
    in_progress, ///< a retransmit of a request still being processed: drop it
    answered,    ///< a retransmit of an answered request: resend `response`
  };
  struct lookup {
    state what = state::fresh;
    const Response* response =
        nullptr; ///< set when `what` is answered; valid until the next change
  };

  /// `capacity`: answered entries kept at most; `window`: how long each is kept.
  response_cache(std::size_t capacity, clock::duration window) :
      capacity_(capacity), window_(window) {}

  /// Whether the request (`key`, Request Authenticator `request_auth`) is a retransmit.
  lookup find(const request_key& key, std::span<const std::uint8_t> request_auth) const {
    auto it = map_.find(key);
    if (it == map_.end() || !std::equal(request_auth.begin(), request_auth.end(),
                                        it->second.auth.begin(), it->second.auth.end()))
      return {};
    if (!it->second.done)
      return {state::in_progress, nullptr};
    return {state::answered, &it->second.response};
  }

  /// Records a fresh request as in progress, replacing what the key held;
  /// returns its ticket for answered() / forget().
  std::uint64_t begin(const request_key& key, std::span<const std::uint8_t> request_auth) {
    entry& e = map_[key];
    std::copy_n(request_auth.begin(), std::min(request_auth.size(), e.auth.size()), e.auth.begin());
    e.ticket = next_ticket_++;
    e.done = false;
    return e.ticket;
  }

  /// Stores the response of request `ticket`, kept for the window from
  /// `now`. A no-op when a newer request took the key over meanwhile.
  void answered(const request_key& key, std::uint64_t ticket, const Response& response,
                clock::time_point now) {
    auto it = map_.find(key);
    if (it == map_.end() || it->second.ticket != ticket)
      return;
    it->second.done = true;
    it->second.response = response;
    order_.push_back({now + window_, key, ticket});
  }

  /// Forgets request `ticket` unanswered, so its retransmit is processed afresh.
  void forget(const request_key& key, std::uint64_t ticket) {
    if (auto it = map_.find(key); it != map_.end() && it->second.ticket == ticket)
      map_.erase(it);
  }

  /// Drops answered entries older than the window, and the oldest beyond capacity.
  void evict(clock::time_point now) {
    while (!order_.empty() && (order_.front().expires <= now || map_.size() > capacity_)) {
      const auto& o = order_.front();
      // Only the entry's newest answer owns it (the key may have been reused).
      if (auto it = map_.find(o.key);
          it != map_.end() && it->second.ticket == o.ticket && it->second.done)
        map_.erase(it);
      order_.pop_front();
    }
  }

  /// Entries held, answered or in progress.
  std::size_t size() const { return map_.size(); }

  /// New limits (configuration reload); applied by the next evict().
  void set_limits(std::size_t capacity, clock::duration window) {
    capacity_ = capacity;
    window_ = window;
  }

private:
  struct entry {
    std::array<std::uint8_t, 16> auth{}; ///< the Request Authenticator
    std::uint64_t ticket = 0;            ///< which request owns the entry
    bool done = false;
    Response response{};
  };
  struct answered_at {
    clock::time_point expires;
    request_key key;
    std::uint64_t ticket;
  };

  std::size_t capacity_;
  clock::duration window_;
  std::uint64_t next_ticket_ = 1;
  std::unordered_map<request_key, entry, request_key_hash> map_;
  std::deque<answered_at> order_;
};

} // namespace imeilock::radius
