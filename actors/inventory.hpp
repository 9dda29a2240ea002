#pragma once
// The compact, shared index of the inventory: IMSI -> SIM, ICCID -> SIM, and
// each SIM's ICCID and IMSIs, in about 70 bytes per SIM (integer keys, open
// addressing, one byte arena for the ICCIDs, interned network names). The
// lock state itself lives in the registry shards (registry.cpp), one row per
// SIM. The actors read a SIM's IMSIs here, never from the store: a handler
// does not block on SQLite.
//
// Thread-safe: lookups take a shared lock (the packet path, many threads),
// changes an exclusive one (startup load, operator upserts). No CAF.

#include "lock/eligibility.hpp"
#include "lock/machine.hpp"

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace imeilock::actors {

/// Index of a SIM in the inventory: dense, assigned in load order, never reused.
using sim_id = std::uint32_t;
inline constexpr sim_id no_sim = 0xffffffffu;

/// Index of an interned network name.
using network_id = std::uint16_t;
/// No network: the name could not be interned (the table is full).
inline constexpr network_id no_network = 0xffff;

/// An open-addressing hash map from a non-zero 64-bit key to a 32-bit value
/// (linear probing, load factor <= 1/2, tombstones on erase). 16 bytes a slot.
class u64_map {
public:
  std::optional<std::uint32_t> find(std::uint64_t key) const;
  /// Inserts or overwrites. `key` must not be 0 or ~0 (IMEILOCK_ASSERT).
  void put(std::uint64_t key, std::uint32_t value);
  void erase(std::uint64_t key);
  std::size_t size() const { return size_; }
  std::size_t bytes() const { return slots_.capacity() * sizeof(slot); }
  void reserve(std::size_t n);

private:
  struct slot {
    std::uint64_t key = 0; ///< 0 empty, ~0 tombstone
    std::uint32_t value = 0;
  };
  void grow();
  std::vector<slot> slots_;
  std::size_t size_ = 0;
  std::size_t used_ = 0; ///< size_ + tombstones
};

/// The shared index.
class inventory {
public:
  /// At most this many distinct network names (ids fit a uint16, and the
  /// policy table never reallocates so lock-free reads stay valid).
  static constexpr std::size_t max_networks = 1024;

  explicit inventory(lock::eligibility_config cfg);

  /// Reserves room for `n` SIMs (startup, before a bulk load).
  void reserve(std::size_t n);

  /// Adds a SIM with its IMSIs; returns its id. The caller guarantees the
  /// ICCID is new and no IMSI belongs to another SIM (see conflicts()).
  /// Returns no_sim and adds nothing when the ICCID is longer than 255 bytes
  /// or its network cannot be interned (max_networks): never throws. An
  /// IMSI 0 (not an IMSI: only a damaged store row can hold it) is not indexed.
  sim_id add(std::string_view iccid, std::string_view network,
             std::span<const std::uint64_t> imsis);

  /// The SIM owning `imsi`, or no_sim.
  sim_id by_imsi(std::uint64_t imsi) const;
  /// The SIM with this ICCID, or no_sim.
  sim_id by_iccid(std::string_view iccid) const;
  /// The ICCID of `id` (copied: the arena may grow).
  std::string iccid(sim_id id) const;
  /// The IMSIs of `id` as last committed, in the order they were given
  /// (IMSI 0 left out); empty for no_sim or a SIM not committed yet.
  std::vector<std::uint64_t> imsis(sim_id id) const;
  /// The first of imsis(id), or 0 when it has none.
  std::uint64_t first_imsi(sim_id id) const;
  /// IMSIs of `imsis` owned by a SIM other than `id` (id may be no_sim).
  std::vector<std::uint64_t> conflicts(sim_id id, std::span<const std::uint64_t> imsis) const;
  /// Replaces the IMSI set of `id` (its committed upsert): the ones it had
  /// are released, `imsis` taken.
  void set_imsis(sim_id id, std::span<const std::uint64_t> imsis);

  /// Interns a network name (thread-safe); its policy is computed once.
  /// no_network when max_networks other names are interned already.
  network_id intern(std::string_view network);
  /// The name and R1 policy of an interned network (id != no_network); lock-free.
  const std::string& network_name(network_id id) const { return networks_[id].name; }
  /// The policy is returned by value: its action may change (reload_actions).
  lock::policy policy(network_id id) const {
    auto p = networks_[id].pol;
    p.action =
        static_cast<lock::violation_action>(networks_[id].action.load(std::memory_order_relaxed));
    return p;
  }
  /// SIGHUP: the violation actions of every network, interned or to come.
  void reload_actions(const lock::eligibility_config& cfg);
  /// Interned network names so far (ids 0 .. count-1); lock-free.
  std::size_t network_count() const { return network_count_.load(std::memory_order_acquire); }
  /// SIMs whose committed network is `id` (added, less moved away); lock-free.
  std::uint32_t sims_on(network_id id) const {
    return sims_per_network_[id].load(std::memory_order_relaxed);
  }
  /// A SIM's committed network changed (counts for sims_on()).
  void moved(network_id from, network_id to);

  /// SIMs in the index.
  std::size_t size() const;
  /// Heap bytes held by the index (benchmarks: bytes per SIM).
  std::size_t bytes() const;

private:
  struct network_entry {
    network_entry(std::string n, const lock::policy& p) :
        name(std::move(n)), pol(p), action(static_cast<std::uint8_t>(p.action)) {}
    /// For the vector's sake only: it is reserved and never reallocates.
    network_entry(network_entry&& o) noexcept :
        name(std::move(o.name)), pol(o.pol), action(o.action.load(std::memory_order_relaxed)) {}
    std::string name;
    lock::policy pol;                 ///< R1 and strict (fixed); pol.action is the startup one
    std::atomic<std::uint8_t> action; ///< the violation action now (reload_actions)
  };
  network_id intern_locked(std::string_view network);
  std::size_t iccid_slot(std::string_view iccid) const;
  std::string_view iccid_locked(sim_id id) const;
  void grow_iccids();
  void store_imsis_locked(sim_id id, std::span<const std::uint64_t> imsis);
  std::vector<std::uint64_t> imsis_locked(sim_id id) const;

  lock::eligibility_config cfg_;
  mutable std::shared_mutex mtx_;
  u64_map imsis_;
  std::vector<std::uint32_t> iccid_offsets_; ///< per sim id: offset of [len][digits] in arena_
  std::vector<char> arena_;
  std::vector<sim_id> iccid_table_; ///< open addressing on hash(iccid), no_sim = empty
  /// Per sim id: its first IMSI, 0 when none. Nearly every SIM has one IMSI:
  /// 8 bytes, and the rare others keep the rest in more_imsis_.
  std::vector<std::uint64_t> first_imsis_;
  std::unordered_map<sim_id, std::vector<std::uint64_t>> more_imsis_;
  std::vector<network_entry> networks_; ///< reserved to max_networks, never reallocates
  std::atomic<std::size_t> network_count_{0};
  /// Per network id, max_networks entries (never reallocates).
  std::unique_ptr<std::atomic<std::uint32_t>[]> sims_per_network_;
};

} // namespace imeilock::actors
