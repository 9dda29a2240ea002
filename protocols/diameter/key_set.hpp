#pragma once
// A set of nonzero 64-bit keys (the dedupe keys of ACR/CCRs with the SIM
// layer, already hashes) in one array: open addressing with linear probing,
// no allocation per insert or erase (std::unordered_set makes one per node,
// twice per ACR). Erase shifts the entries after it back instead of leaving
// tombstones, so probes stay short however keys come and go. Grows at half
// full, never shrinks (it holds at most the requests in flight). Pure; not
// thread-safe.

#include "common/assert.hpp"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace imeilock::diameter {

class key_set {
public:
  key_set() : slots_(initial_slots, 0) {}

  bool contains(std::uint64_t key) const {
    for (std::size_t i = home(key);; i = (i + 1) & mask()) {
      if (slots_[i] == key)
        return true;
      if (slots_[i] == 0)
        return false;
    }
  }

  /// Adds `key`; false if it was there already. `key` must not be 0 (the
  /// empty slot): record_key() and end_to_end_key() never return it.
  bool insert(std::uint64_t key) {
    IMEILOCK_ASSERT(key != 0, "key_set: key 0");
    if ((size_ + 1) * 2 > slots_.size())
      grow();
    for (std::size_t i = home(key);; i = (i + 1) & mask()) {
      if (slots_[i] == key)
        return false;
      if (slots_[i] == 0) {
        slots_[i] = key;
        ++size_;
        return true;
      }
    }
  }

  /// Removes `key`; false if it was not there.
  bool erase(std::uint64_t key) {
    if (key == 0)
      return false;
    std::size_t hole = home(key);
    while (slots_[hole] != key) {
      if (slots_[hole] == 0)
        return false;
      hole = (hole + 1) & mask();
    }
    slots_[hole] = 0;
    --size_;
    // Move back every later entry of the run whose home is not in (hole, j]:
    // a lookup starting at its home must not meet the hole first.
    for (std::size_t j = (hole + 1) & mask(); slots_[j] != 0; j = (j + 1) & mask()) {
      const std::size_t h = home(slots_[j]);
      const bool stays = hole < j ? (hole < h && h <= j) : (hole < h || h <= j);
      if (!stays) {
        slots_[hole] = slots_[j];
        slots_[j] = 0;
        hole = j;
      }
    }
    return true;
  }

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

private:
  static constexpr std::size_t initial_slots = 64; // a power of 2

  std::size_t mask() const { return slots_.size() - 1; }
  /// Fibonacci hashing of the key onto the table (its top bits).
  std::size_t home(std::uint64_t key) const {
    return static_cast<std::size_t>((key * 0x9e3779b97f4a7c15ULL) >> shift_);
  }

  void grow() {
    std::vector<std::uint64_t> old(slots_.size() * 2, 0);
    old.swap(slots_);
    --shift_;
    size_ = 0;
    for (const auto k : old)
      if (k != 0)
        insert(k);
  }

  std::vector<std::uint64_t> slots_;
  std::size_t size_ = 0;
  unsigned shift_ = 64 - 6; // log2(initial_slots) bits of the hash
};

} // namespace imeilock::diameter
