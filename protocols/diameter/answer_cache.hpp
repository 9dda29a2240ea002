#pragma once
// Answers kept for duplicate detection: a retransmitted ACR/CCR (same
// Session-Id + record number, RFC 6733 §9.4, or same End-to-End Identifier
// + Origin-Host, RFC 6733 §3) gets the stored answer again and causes no
// second state change. Bounded in entries and age; oldest evicted first.
// Not thread-safe: owned by the server's strand.

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <unordered_map>
#include <vector>

namespace imeilock::diameter {

class answer_cache {
public:
  using answer_ptr = std::shared_ptr<const std::vector<std::uint8_t>>;

  /// `capacity` 0 disables the cache.
  answer_cache(std::size_t capacity, std::chrono::milliseconds window) :
      capacity_(capacity), window_ms_(window.count()) {}

  /// The stored answer for `key`, or nullptr if none or older than the window.
  answer_ptr find(std::uint64_t key, std::int64_t now_ms) const {
    auto it = map_.find(key);
    if (it == map_.end() || now_ms - it->second.at_ms > window_ms_)
      return nullptr;
    return it->second.answer;
  }

  /// Stores (or replaces) the answer for `key`.
  void insert(std::uint64_t key, answer_ptr answer, std::int64_t now_ms) {
    if (capacity_ == 0 || key == 0)
      return;
    map_[key] = entry{std::move(answer), now_ms};
    order_.emplace_back(key, now_ms);
    evict(now_ms);
  }

  std::size_t size() const { return map_.size(); }
  void set_limits(std::size_t capacity, std::chrono::milliseconds window) {
    capacity_ = capacity;
    window_ms_ = window.count();
  }

  /// Drops expired entries and those beyond capacity.
  void evict(std::int64_t now_ms) {
    while (!order_.empty() && (map_.size() > capacity_ || order_.size() > 2 * capacity_ + 16 ||
                               now_ms - order_.front().second > window_ms_)) {
      auto [key, at] = order_.front();
      order_.pop_front();
      auto it = map_.find(key);
      // Only the newest insertion of a key owns the entry.
      if (it != map_.end() && it->second.at_ms == at)
        map_.erase(it);
    }
  }

private:
  struct entry {
    answer_ptr answer;
    std::int64_t at_ms = 0;
  };
  std::size_t capacity_;
  std::int64_t window_ms_;
  std::unordered_map<std::uint64_t, entry> map_;
  std::deque<std::pair<std::uint64_t, std::int64_t>> order_;
};

} // namespace imeilock::diameter
