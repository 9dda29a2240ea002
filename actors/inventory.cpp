#include "actors/inventory.hpp"

#include "common/assert.hpp"

#include <algorithm>
#include <mutex>

namespace imeilock::actors {

namespace {

std::uint64_t mix(std::uint64_t x) {
  // splitmix64 finaliser: IMSIs are sequential, the table needs them spread.
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

std::uint64_t hash_bytes(const unsigned char* p, std::size_t n) {
  std::uint64_t h = 1469598103934665603ull; // FNV-1a
  for (std::size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return mix(h);
}

std::uint64_t hash_text(std::string_view s) {
  return hash_bytes(reinterpret_cast<const unsigned char*>(s.data()), s.size());
}

} // namespace

// -- inventory --------------------------------------------------------------------

inventory::inventory(lock::eligibility_config cfg) :
    cfg_(std::move(cfg)), sims_per_network_(new std::atomic<std::uint32_t>[max_networks]) {
  for (std::size_t i = 0; i < max_networks; ++i)
    sims_per_network_[i].store(0, std::memory_order_relaxed);
  networks_.reserve(max_networks);
}

std::optional<inventory::packed_iccid> inventory::pack(std::string_view iccid) {
  if (iccid.size() > 2 * std::tuple_size_v<packed_iccid>)
    return std::nullopt;
  packed_iccid p;
  p.fill(0xff);
  auto digit = [&](std::size_t at) { return static_cast<unsigned>(iccid[at]) - '0'; };
  // Two digits a byte (every ICCID's bytes on the startup load's path).
  std::size_t i = 0;
  for (; i + 1 < iccid.size(); i += 2) {
    auto hi = digit(i);
    auto lo = digit(i + 1);
    if (hi > 9 || lo > 9)
      return std::nullopt;
    p[i / 2] = static_cast<std::uint8_t>((hi << 4) | lo);
  }
  if (i < iccid.size()) {
    auto hi = digit(i);
    if (hi > 9)
      return std::nullopt;
    p[i / 2] = static_cast<std::uint8_t>((hi << 4) | 0x0f);
  }
  return p;
}

std::string inventory::unpack(const packed_iccid& p) {
  std::string out;
  out.reserve(2 * p.size());
  for (auto byte : p) {
    for (auto d : {byte >> 4, byte & 0x0f}) {
      if (d > 9)
        return out;
      out.push_back(static_cast<char>('0' + d));
    }
  }
  return out;
}

void inventory::reserve(std::size_t n) {
  std::unique_lock g{mtx_};
  n = std::max(n, iccids_.size());
  iccids_.reserve(n);
  first_imsis_.reserve(n);
  if (iccid_table_.smaller_than(n))
    rebuild_iccids_locked(n);
  if (imsi_table_.smaller_than(n))
    rebuild_imsis_locked(n);
}

std::string inventory::iccid_locked(sim_id id) const {
  const auto& p = iccids_[id];
  if (is_other(p)) {
    auto it = long_iccids_.find(id);
    return it == long_iccids_.end() ? std::string{} : it->second;
  }
  return unpack(p);
}

std::uint64_t inventory::iccid_hash_of(sim_id id) const {
  const auto& p = iccids_[id];
  if (is_other(p))
    return hash_text(iccid_locked(id));
  return hash_bytes(p.data(), p.size());
}

bool inventory::holds_iccid_locked(sim_id id, const std::optional<packed_iccid>& packed,
                                   std::string_view iccid) const {
  const auto& p = iccids_[id];
  if (packed)
    return p == *packed;
  if (!is_other(p))
    return false;
  auto it = long_iccids_.find(id);
  return it != long_iccids_.end() && it->second == iccid;
}

void inventory::put_imsi_locked(std::uint64_t imsi, sim_id id, bool first) {
  // The last SIM given an IMSI owns it (only a damaged store lists one twice).
  auto is_key = [&](std::uint32_t v) { return first_is_locked(v, imsi); };
  if (first) {
    if (!other_imsis_.empty())
      other_imsis_.erase(imsi);
    if (!imsi_table_.has_room())
      rebuild_imsis_locked((imsi_table_.size() + 1) * 3 / 2);
    imsi_table_.put(mix(imsi), id, is_key);
  } else {
    imsi_table_.erase(mix(imsi), is_key);
    other_imsis_[imsi] = id;
  }
}

void inventory::put_iccid_locked(sim_id id, std::uint64_t hash) {
  if (!iccid_table_.has_room())
    rebuild_iccids_locked((iccid_table_.size() + 1) * 3 / 2);
  iccid_table_.insert(hash, id);
}

void inventory::rebuild_imsis_locked(std::size_t n) {
  imsi_table_.reset(std::max(n, imsi_table_.size()));
  for (sim_id id = 0; id < first_imsis_.size(); ++id) {
    auto imsi = first_imsis_[id];
    if (imsi != 0 && !other_imsis_.contains(imsi))
      imsi_table_.put(mix(imsi), id, [&](std::uint32_t v) { return first_is_locked(v, imsi); });
  }
}

void inventory::rebuild_iccids_locked(std::size_t n) {
  iccid_table_.reset(std::max(n, iccid_table_.size()));
  for (sim_id id = 0; id < iccids_.size(); ++id)
    iccid_table_.insert(iccid_hash_of(id), id);
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

std::uint64_t inventory::hash_of(const std::optional<packed_iccid>& packed,
                                 std::string_view iccid) {
  return packed ? hash_bytes(packed->data(), packed->size()) : hash_text(iccid);
}

sim_id inventory::add(std::string_view iccid, std::string_view network,
                      std::span<const std::uint64_t> imsis) {
  if (iccid.size() > 255) // not an ICCID; the API refuses far shorter ones
    return no_sim;
  auto packed = pack(iccid);
  auto hash = hash_of(packed, iccid);
  std::unique_lock g{mtx_};
  return add_locked(iccid, network, imsis, packed, hash);
}

void inventory::add_many(std::span<const new_sim> sims, std::span<sim_id> ids) {
  IMEILOCK_ASSERT(ids.size() == sims.size(), "add_many: one id per SIM");
  // Outside the lock: the packed ICCIDs and both hashes.
  std::vector<std::optional<packed_iccid>> packed(sims.size());
  std::vector<std::uint64_t> iccid_hashes(sims.size());
  std::vector<std::uint64_t> imsi_hashes(sims.size());
  for (std::size_t i = 0; i < sims.size(); ++i) {
    const auto& s = sims[i];
    if (s.iccid.size() > 255)
      continue; // refused below, as add() does
    packed[i] = pack(s.iccid);
    iccid_hashes[i] = hash_of(packed[i], s.iccid);
    auto first = std::find_if(s.imsis.begin(), s.imsis.end(), [](auto v) { return v != 0; });
    imsi_hashes[i] = first == s.imsis.end() ? 0 : mix(*first);
  }
  constexpr std::size_t ahead = 8;
  std::unique_lock g{mtx_};
  for (std::size_t i = 0; i < sims.size(); ++i) {
    if (i + ahead < sims.size()) {
      iccid_table_.prefetch(iccid_hashes[i + ahead]);
      imsi_table_.prefetch(imsi_hashes[i + ahead]);
    }
    const auto& s = sims[i];
    ids[i] = s.iccid.size() > 255
                 ? no_sim
                 : add_locked(s.iccid, s.network, s.imsis, packed[i], iccid_hashes[i]);
  }
}

sim_id inventory::add_locked(std::string_view iccid, std::string_view network,
                             std::span<const std::uint64_t> imsis,
                             const std::optional<packed_iccid>& packed, std::uint64_t hash) {
  if (iccids_.size() >= max_sims)
    return no_sim;
  auto net = intern_locked(network);
  if (net == no_network)
    return no_sim;
  sims_per_network_[net].fetch_add(1, std::memory_order_relaxed);
  auto id = static_cast<sim_id>(iccids_.size());
  if (packed) {
    iccids_.push_back(*packed);
  } else {
    packed_iccid other;
    other.fill(0xee);
    iccids_.push_back(other);
    long_iccids_.emplace(id, std::string(iccid));
  }
  put_iccid_locked(id, hash);
  first_imsis_.push_back(0);
  store_imsis_locked(id, imsis);
  return id;
}

void inventory::store_imsis_locked(sim_id id, std::span<const std::uint64_t> imsis) {
  // The arrays first: the table's slots are checked against them.
  std::vector<std::uint64_t> more;
  std::uint64_t first = 0;
  for (auto imsi : imsis) {
    if (imsi == 0) // not an IMSI (validate_imsi refuses it); a damaged store row
      continue;
    if (first == 0)
      first = imsi;
    else
      more.push_back(imsi);
  }
  first_imsis_[id] = first;
  if (!more.empty())
    more_imsis_[id] = more;
  else if (!more_imsis_.empty())
    more_imsis_.erase(id);
  if (first != 0)
    put_imsi_locked(first, id, true);
  for (auto imsi : more)
    put_imsi_locked(imsi, id, false);
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
  if (imsi == 0)
    return no_sim;
  std::shared_lock g{mtx_};
  auto id = imsi_table_.find(mix(imsi), [&](std::uint32_t v) { return first_is_locked(v, imsi); });
  if (id != id_table::empty)
    return id;
  if (other_imsis_.empty())
    return no_sim;
  auto it = other_imsis_.find(imsi);
  return it == other_imsis_.end() ? no_sim : it->second;
}

sim_id inventory::by_iccid(std::string_view iccid) const {
  auto packed = pack(iccid);
  auto hash = hash_of(packed, iccid);
  std::shared_lock g{mtx_};
  auto id = iccid_table_.find(
      hash, [&](std::uint32_t v) { return holds_iccid_locked(v, packed, iccid); });
  return id == id_table::empty ? no_sim : id;
}

std::string inventory::iccid(sim_id id) const {
  std::shared_lock g{mtx_};
  if (id >= iccids_.size())
    return {};
  return iccid_locked(id);
}

std::vector<std::uint64_t> inventory::conflicts(sim_id id,
                                                std::span<const std::uint64_t> imsis) const {
  std::vector<std::uint64_t> out;
  for (auto imsi : imsis) {
    auto owner = by_imsi(imsi);
    if (owner != no_sim && owner != id)
      out.push_back(imsi);
  }
  return out;
}

void inventory::set_imsis(sim_id id, std::span<const std::uint64_t> imsis) {
  std::unique_lock g{mtx_};
  IMEILOCK_ASSERT(id < first_imsis_.size(), "set_imsis of a SIM not in the index");
  // Release the slots that stand for this SIM's IMSIs while the arrays still
  // hold them (an IMSI another SIM took over since is that SIM's slot now).
  if (auto first = first_imsis_[id]; first != 0)
    imsi_table_.erase(mix(first), [&](std::uint32_t v) { return v == id; });
  if (auto it = more_imsis_.find(id); it != more_imsis_.end())
    for (auto imsi : it->second)
      if (auto owner = other_imsis_.find(imsi); owner != other_imsis_.end() && owner->second == id)
        other_imsis_.erase(owner);
  store_imsis_locked(id, imsis);
}

std::uint64_t inventory::lowest_imsi(sim_id id) const {
  std::shared_lock g{mtx_};
  if (id >= first_imsis_.size())
    return 0;
  auto lowest = first_imsis_[id];
  if (lowest == 0)
    return 0;
  if (auto it = more_imsis_.find(id); it != more_imsis_.end())
    for (auto imsi : it->second)
      lowest = std::min(lowest, imsi);
  return lowest;
}

std::size_t inventory::size() const {
  std::shared_lock g{mtx_};
  return iccids_.size();
}

std::size_t inventory::bytes() const {
  std::shared_lock g{mtx_};
  // A node of an unordered_map: its pair, the link, the allocator's header.
  using more_node = decltype(more_imsis_)::value_type;
  std::size_t more = more_imsis_.bucket_count() * sizeof(void*);
  for (const auto& entry : more_imsis_)
    more += sizeof(more_node) + 2 * sizeof(void*) + entry.second.capacity() * sizeof(std::uint64_t);
  using other_node = decltype(other_imsis_)::value_type;
  more += other_imsis_.bucket_count() * sizeof(void*) +
          other_imsis_.size() * (sizeof(other_node) + 2 * sizeof(void*));
  using long_node = decltype(long_iccids_)::value_type;
  std::size_t longs = long_iccids_.bucket_count() * sizeof(void*);
  for (const auto& entry : long_iccids_)
    longs += sizeof(long_node) + 2 * sizeof(void*) + entry.second.capacity();
  return imsi_table_.bytes() + iccid_table_.bytes() + iccids_.capacity() * sizeof(packed_iccid) +
         first_imsis_.capacity() * sizeof(std::uint64_t) + more + longs;
}

} // namespace imeilock::actors
