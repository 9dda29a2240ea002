#include "actors/inventory.hpp"

#include "common/assert.hpp"

#include <mutex>

namespace imeilock::actors {

namespace {

constexpr std::uint64_t tombstone = ~std::uint64_t{0};

std::uint64_t mix(std::uint64_t x) {
  // splitmix64 finaliser: IMSIs are sequential, the table needs them spread.
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

std::uint64_t hash_text(std::string_view s) {
  std::uint64_t h = 1469598103934665603ull; // FNV-1a
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return mix(h);
}

} // namespace

// -- u64_map --------------------------------------------------------------------

std::optional<std::uint32_t> u64_map::find(std::uint64_t key) const {
  if (slots_.empty() || key == 0 || key == tombstone)
    return std::nullopt;
  auto mask = slots_.size() - 1;
  for (auto i = mix(key) & mask;; i = (i + 1) & mask) {
    const auto& s = slots_[i];
    if (s.key == key)
      return s.value;
    if (s.key == 0)
      return std::nullopt;
  }
}

void u64_map::reserve(std::size_t n) {
  std::size_t cap = 16;
  while (cap < 2 * n)
    cap *= 2;
  if (cap <= slots_.size())
    return;
  std::vector<slot> old;
  old.swap(slots_);
  slots_.assign(cap, slot{});
  size_ = 0;
  used_ = 0;
  for (auto& s : old)
    if (s.key != 0 && s.key != tombstone)
      put(s.key, s.value);
}

void u64_map::grow() {
  // Rehash at the same size when tombstones are the problem, else double.
  std::size_t target = slots_.empty()                    ? 16
                       : 4 * (size_ + 1) > slots_.size() ? slots_.size() * 2
                                                         : slots_.size();
  std::vector<slot> old;
  old.swap(slots_);
  slots_.assign(target, slot{});
  size_ = 0;
  used_ = 0;
  for (auto& s : old)
    if (s.key != 0 && s.key != tombstone)
      put(s.key, s.value);
}

void u64_map::put(std::uint64_t key, std::uint32_t value) {
  // inventory::add/set_imsis never pass 0; ~0 is not a 15-digit number.
  IMEILOCK_ASSERT(key != 0 && key != tombstone, "u64_map key 0 or tombstone");
  if (2 * (used_ + 1) > slots_.size())
    grow();
  auto mask = slots_.size() - 1;
  std::size_t first_free = slots_.size();
  for (auto i = mix(key) & mask;; i = (i + 1) & mask) {
    auto& s = slots_[i];
    if (s.key == key) {
      s.value = value;
      return;
    }
    if (s.key == tombstone && first_free == slots_.size())
      first_free = i;
    if (s.key == 0) {
      if (first_free == slots_.size()) {
        first_free = i;
        ++used_;
      }
      slots_[first_free] = {key, value};
      ++size_;
      return;
    }
  }
}

void u64_map::erase(std::uint64_t key) {
  if (slots_.empty() || key == 0 || key == tombstone)
    return;
  auto mask = slots_.size() - 1;
  for (auto i = mix(key) & mask;; i = (i + 1) & mask) {
    auto& s = slots_[i];
    if (s.key == key) {
      s.key = tombstone;
      --size_;
      return;
    }
    if (s.key == 0)
      return;
  }
}

// -- inventory --------------------------------------------------------------------

inventory::inventory(lock::eligibility_config cfg) :
    cfg_(std::move(cfg)), sims_per_network_(new std::atomic<std::uint32_t>[max_networks]) {
  for (std::size_t i = 0; i < max_networks; ++i)
    sims_per_network_[i].store(0, std::memory_order_relaxed);
  networks_.reserve(max_networks);
  iccid_table_.assign(16, no_sim);
}

void inventory::reserve(std::size_t n) {
  std::unique_lock g{mtx_};
  imsis_.reserve(n);
  iccid_offsets_.reserve(n);
  first_imsis_.reserve(n);
  arena_.reserve(n * 21);
  if (iccid_table_.size() < 2 * n) {
    std::size_t cap = iccid_table_.size();
    while (cap < 2 * n)
      cap *= 2;
    std::vector<sim_id> old(cap, no_sim);
    old.swap(iccid_table_);
    for (auto id : old)
      if (id != no_sim)
        iccid_table_[iccid_slot(iccid_locked(id))] = id;
  }
}

std::string_view inventory::iccid_locked(sim_id id) const {
  auto off = iccid_offsets_[id];
  auto len = static_cast<unsigned char>(arena_[off]);
  return {arena_.data() + off + 1, len};
}

std::size_t inventory::iccid_slot(std::string_view iccid) const {
  auto mask = iccid_table_.size() - 1;
  for (auto i = hash_text(iccid) & mask;; i = (i + 1) & mask) {
    auto id = iccid_table_[i];
    if (id == no_sim || iccid_locked(id) == iccid)
      return i;
  }
}

void inventory::grow_iccids() {
  std::vector<sim_id> old(iccid_table_.size() * 2, no_sim);
  old.swap(iccid_table_);
  for (auto id : old)
    if (id != no_sim)
      iccid_table_[iccid_slot(iccid_locked(id))] = id;
}

network_id inventory::intern_locked(std::string_view network) {
  auto n = network_count_.load(std::memory_order_acquire);
  for (std::size_t i = 0; i < n; ++i)
    if (networks_[i].name == network)
      return static_cast<network_id>(i);
  if (n == max_networks)
    return no_network;
  networks_.emplace_back(std::string(network), lock::policy_for(cfg_, network));
  network_count_.store(n + 1, std::memory_order_release);
  return static_cast<network_id>(n);
}

void inventory::reload_actions(const lock::eligibility_config& cfg) {
  std::unique_lock g{mtx_};
  cfg_.action = cfg.action;
  cfg_.actions = cfg.actions;
  auto n = network_count_.load(std::memory_order_acquire);
  for (std::size_t i = 0; i < n; ++i)
    networks_[i].action.store(static_cast<std::uint8_t>(lock::action_for(cfg_, networks_[i].name)),
                              std::memory_order_relaxed);
}

network_id inventory::intern(std::string_view network) {
  {
    std::shared_lock g{mtx_};
    auto n = network_count_.load(std::memory_order_acquire);
    for (std::size_t i = 0; i < n; ++i)
      if (networks_[i].name == network)
        return static_cast<network_id>(i);
  }
  std::unique_lock g{mtx_};
  return intern_locked(network);
}

sim_id inventory::add(std::string_view iccid, std::string_view network,
                      std::span<const std::uint64_t> imsis) {
  if (iccid.size() > 255) // the arena stores the length in one byte
    return no_sim;
  std::unique_lock g{mtx_};
  auto net = intern_locked(network);
  if (net == no_network)
    return no_sim;
  sims_per_network_[net].fetch_add(1, std::memory_order_relaxed);
  auto id = static_cast<sim_id>(iccid_offsets_.size());
  iccid_offsets_.push_back(static_cast<std::uint32_t>(arena_.size()));
  arena_.push_back(static_cast<char>(iccid.size()));
  arena_.insert(arena_.end(), iccid.begin(), iccid.end());
  if (2 * (iccid_offsets_.size() + 1) > iccid_table_.size())
    grow_iccids();
  iccid_table_[iccid_slot(iccid)] = id;
  first_imsis_.push_back(0);
  store_imsis_locked(id, imsis);
  for (auto imsi : imsis)
    if (imsi != 0) // not an IMSI (validate_imsi refuses it); a damaged store row
      imsis_.put(imsi, id);
  return id;
}

void inventory::store_imsis_locked(sim_id id, std::span<const std::uint64_t> imsis) {
  std::vector<std::uint64_t> more;
  std::uint64_t first = 0;
  for (auto imsi : imsis) {
    if (imsi == 0)
      continue;
    if (first == 0)
      first = imsi;
    else
      more.push_back(imsi);
  }
  first_imsis_[id] = first;
  if (more.empty())
    more_imsis_.erase(id);
  else
    more_imsis_[id] = std::move(more);
}

std::vector<std::uint64_t> inventory::imsis_locked(sim_id id) const {
  std::vector<std::uint64_t> out;
  if (id >= first_imsis_.size() || first_imsis_[id] == 0)
    return out;
  out.push_back(first_imsis_[id]);
  if (auto it = more_imsis_.find(id); it != more_imsis_.end())
    out.insert(out.end(), it->second.begin(), it->second.end());
  return out;
}

std::vector<std::uint64_t> inventory::imsis(sim_id id) const {
  std::shared_lock g{mtx_};
  return imsis_locked(id);
}

std::uint64_t inventory::first_imsi(sim_id id) const {
  std::shared_lock g{mtx_};
  return id < first_imsis_.size() ? first_imsis_[id] : 0;
}

void inventory::moved(network_id from, network_id to) {
  if (from == to || from >= max_networks || to >= max_networks)
    return;
  sims_per_network_[from].fetch_sub(1, std::memory_order_relaxed);
  sims_per_network_[to].fetch_add(1, std::memory_order_relaxed);
}

sim_id inventory::by_imsi(std::uint64_t imsi) const {
  std::shared_lock g{mtx_};
  auto v = imsis_.find(imsi);
  return v ? *v : no_sim;
}

sim_id inventory::by_iccid(std::string_view iccid) const {
  std::shared_lock g{mtx_};
  return iccid_table_[iccid_slot(iccid)];
}

std::string inventory::iccid(sim_id id) const {
  std::shared_lock g{mtx_};
  if (id >= iccid_offsets_.size())
    return {};
  return std::string(iccid_locked(id));
}

std::vector<std::uint64_t> inventory::conflicts(sim_id id,
                                                std::span<const std::uint64_t> imsis) const {
  std::vector<std::uint64_t> out;
  std::shared_lock g{mtx_};
  for (auto imsi : imsis) {
    auto owner = imsis_.find(imsi);
    if (owner && *owner != id)
      out.push_back(imsi);
  }
  return out;
}

void inventory::set_imsis(sim_id id, std::span<const std::uint64_t> imsis) {
  std::unique_lock g{mtx_};
  IMEILOCK_ASSERT(id < first_imsis_.size(), "set_imsis of a SIM not in the index");
  for (auto imsi : imsis_locked(id)) {
    auto owner = imsis_.find(imsi);
    if (owner && *owner == id)
      imsis_.erase(imsi);
  }
  store_imsis_locked(id, imsis);
  for (auto imsi : imsis)
    if (imsi != 0)
      imsis_.put(imsi, id);
}

std::size_t inventory::size() const {
  std::shared_lock g{mtx_};
  return iccid_offsets_.size();
}

std::size_t inventory::bytes() const {
  std::shared_lock g{mtx_};
  // A node of more_imsis_: its pair, the link, the allocator's header.
  using node = decltype(more_imsis_)::value_type;
  std::size_t more = more_imsis_.bucket_count() * sizeof(void*);
  for (const auto& entry : more_imsis_)
    more += sizeof(node) + 2 * sizeof(void*) + entry.second.capacity() * sizeof(std::uint64_t);
  return imsis_.bytes() + iccid_offsets_.capacity() * sizeof(std::uint32_t) + arena_.capacity() +
         iccid_table_.capacity() * sizeof(sim_id) +
         first_imsis_.capacity() * sizeof(std::uint64_t) + more;
}

} // namespace imeilock::actors
