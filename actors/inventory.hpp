#pragma once
// The compact, shared index of the inventory: IMSI -> SIM, ICCID -> SIM, and
// each SIM's ICCID and IMSIs, in about 31 bytes per SIM: the ICCID packed as
// decimal digits in 10 bytes, the first IMSI in 8, and two open-addressing
// tables of 4-byte sim ids (IMSI -> SIM, ICCID -> SIM) whose keys are read
// back from those arrays; interned network names. The
// lock state itself lives in the registry shards (registry.cpp), one row per
// SIM. The actors read a SIM's IMSIs here, never from the store: a handler
// does not block on SQLite.
//
// Thread-safe: lookups take a shared lock (the packet path, many threads),
// changes an exclusive one (startup load, operator upserts). No CAF.

#include "lock/eligibility.hpp"
#include "lock/machine.hpp"

#include <algorithm>
#include <array>
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
/// The index holds at most this many SIMs (its tables keep two markers above);
/// add() refuses more.
inline constexpr sim_id max_sims = 0xfffffffdu;

/// Index of an interned network name.
using network_id = std::uint16_t;
/// No network: the name could not be interned (the table is full).
inline constexpr network_id no_network = 0xffff;

/// An open-addressing table of sim ids, 4 bytes a slot, whose keys live
/// elsewhere (the index's per-SIM arrays): the caller gives the key's hash and
/// says whether a slot's id holds the key. Linear probing from a slot picked by
/// multiply-shift, so any capacity works (reset() sizes it exactly: no
/// doubling overshoot); tombstones on erase. Values must be below `tombstone`.
/// It never grows by itself: the owner checks has_room() and rebuilds (it
/// alone can rehash a value). Not thread-safe (the inventory's lock guards it).
class id_table {
public:
  static constexpr std::uint32_t empty = 0xffffffffu;
  static constexpr std::uint32_t tombstone = 0xfffffffeu;

  /// `fill_pct`: the load reset(n) sizes for; `max_pct`: the load has_room()
  /// allows (< 100: a probe always ends on an empty slot).
  id_table(unsigned fill_pct, unsigned max_pct) : fill_pct_(fill_pct), max_pct_(max_pct) {}

  /// The value of the slot `match` accepts, or `empty`.
  template <class Match>
  std::uint32_t find(std::uint64_t hash, Match&& match) const {
    if (slots_.empty())
      return empty;
    for (auto i = start(hash);; i = next(i)) {
      auto v = slots_[i];
      if (v == empty)
        return empty;
      if (v != tombstone && match(v))
        return v;
    }
  }

  /// Room for one more value (put() and insert() need it).
  bool has_room() const { return 100 * (used_ + 1) <= max_pct_ * slots_.size(); }
  /// Empties the table and sizes it for `n` values at the fill load.
  void reset(std::size_t n) {
    slots_.assign(std::max<std::size_t>(16, n * 100 / fill_pct_ + 1), empty);
    size_ = 0;
    used_ = 0;
  }
  /// Asks the CPU to fetch the slot a probe for `hash` starts at (a bulk
  /// insert does it a few keys ahead: at 10 M SIMs each table is far larger
  /// than the caches).
  void prefetch(std::uint64_t hash) const {
    if (!slots_.empty())
      __builtin_prefetch(&slots_[start(hash)], 1);
  }
  /// Whether reset(n) would make it larger (a rebuild for n is worth it).
  bool smaller_than(std::size_t n) const { return 100 * n > fill_pct_ * slots_.size(); }

  /// Overwrites the slot `match` accepts with `value`, or takes a free one.
  template <class Match>
  void put(std::uint64_t hash, std::uint32_t value, Match&& match) {
    std::size_t first_free = slots_.size();
    for (auto i = start(hash);; i = next(i)) {
      auto v = slots_[i];
      if (v == empty) {
        if (first_free == slots_.size()) {
          first_free = i;
          ++used_;
        }
        slots_[first_free] = value;
        ++size_;
        return;
      }
      if (v == tombstone) {
        if (first_free == slots_.size())
          first_free = i;
      } else if (match(v)) {
        slots_[i] = value;
        return;
      }
    }
  }
  /// Adds a value whose key is not in the table (a rebuild).
  void insert(std::uint64_t hash, std::uint32_t value) {
    put(hash, value, [](std::uint32_t) { return false; });
  }

  /// Removes the slot `match` accepts; false when there is none.
  template <class Match>
  bool erase(std::uint64_t hash, Match&& match) {
    if (slots_.empty())
      return false;
    for (auto i = start(hash);; i = next(i)) {
      auto v = slots_[i];
      if (v == empty)
        return false;
      if (v != tombstone && match(v)) {
        slots_[i] = tombstone;
        --size_;
        return true;
      }
    }
  }

  std::size_t size() const { return size_; }
  std::size_t bytes() const { return slots_.capacity() * sizeof(std::uint32_t); }

private:
  std::size_t start(std::uint64_t hash) const {
    // The hash's top 32 bits scaled to the capacity (below 2^32 slots).
    return static_cast<std::size_t>(((hash >> 32) * slots_.size()) >> 32);
  }
  std::size_t next(std::size_t i) const { return i + 1 == slots_.size() ? 0 : i + 1; }

  unsigned fill_pct_;
  unsigned max_pct_;
  std::vector<std::uint32_t> slots_;
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
  /// Returns no_sim and adds nothing when the ICCID is longer than 255 bytes,
  /// its network cannot be interned (max_networks) or the index is full
  /// (max_sims): never throws. An
  /// IMSI 0 (not an IMSI: only a damaged store row can hold it) is not indexed.
  sim_id add(std::string_view iccid, std::string_view network,
             std::span<const std::uint64_t> imsis);

  /// What add_many() takes for each SIM.
  struct new_sim {
    std::string_view iccid;
    std::string_view network;
    std::span<const std::uint64_t> imsis;
  };
  /// add() of each of `sims` in turn under one lock, with the tables' slots
  /// fetched a few SIMs ahead (the startup load): ids[i] is what add() would
  /// return for sims[i]. `ids` has the size of `sims`.
  void add_many(std::span<const new_sim> sims, std::span<sim_id> ids);

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
  /// The lowest of imsis(id) (what its cluster shard follows), 0 when none.
  std::uint64_t lowest_imsi(sim_id id) const;
  /// Forgets the IMSIs of `id` (a cluster shard this node no longer serves):
  /// by_imsi() no longer finds it. Its ICCID stays indexed with its id, so
  /// serving the shard again reuses the id (set_imsis).
  void forget_imsis(sim_id id) { set_imsis(id, {}); }

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
  /// An ICCID as the index keeps it: up to 20 decimal digits, one per nibble,
  /// the rest 0xf; anything else (not digits, longer) is `other_iccid` and
  /// kept whole in long_iccids_.
  using packed_iccid = std::array<std::uint8_t, 10>;
  static std::optional<packed_iccid> pack(std::string_view iccid);
  static std::string unpack(const packed_iccid& p);
  static bool is_other(const packed_iccid& p) { return p[0] == 0xee; }

  network_id intern_locked(std::string_view network);
  std::string iccid_locked(sim_id id) const;
  std::uint64_t iccid_hash_of(sim_id id) const;
  /// Whether `imsi` is the first IMSI of `id` (a slot of the IMSI table).
  bool first_is_locked(sim_id id, std::uint64_t imsi) const { return first_imsis_[id] == imsi; }
  bool holds_iccid_locked(sim_id id, const std::optional<packed_iccid>& packed,
                          std::string_view iccid) const;
  void put_imsi_locked(std::uint64_t imsi, sim_id id, bool first);
  void put_iccid_locked(sim_id id, std::uint64_t hash);
  /// add() once the lock is held; `packed` is pack(iccid), `hash` its hash.
  sim_id add_locked(std::string_view iccid, std::string_view network,
                    std::span<const std::uint64_t> imsis, const std::optional<packed_iccid>& packed,
                    std::uint64_t hash);
  static std::uint64_t hash_of(const std::optional<packed_iccid>& packed, std::string_view iccid);
  /// Rebuild a table for `n` entries (it is full, or a reserve()).
  void rebuild_imsis_locked(std::size_t n);
  void rebuild_iccids_locked(std::size_t n);
  void store_imsis_locked(sim_id id, std::span<const std::uint64_t> imsis);
  std::vector<std::uint64_t> imsis_locked(sim_id id) const;

  lock::eligibility_config cfg_;
  mutable std::shared_mutex mtx_;
  /// First IMSI -> SIM (a slot's key is first_imsis_[id]). Load <= 1/2 after
  /// a reserve: the packet path probes it, and each probe reads first_imsis_.
  id_table imsi_table_{50, 65};
  /// The other IMSIs (few SIMs have more than one) -> SIM.
  std::unordered_map<std::uint64_t, sim_id> other_imsis_;
  /// ICCID -> SIM (the API's lookups, not the packet path): fuller.
  id_table iccid_table_{70, 80};
  std::vector<packed_iccid> iccids_; ///< per sim id
  std::unordered_map<sim_id, std::string> long_iccids_;
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
