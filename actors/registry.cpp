// The registry shards (DESIGN §1, §5, §6).
//
// A shard owns the compact rows (lock state + network, 56 bytes) of the SIMs
// with sim_id % shards == its index. The row is the SIM's committed state
// whenever its actor (if any) has nothing in flight, so an observation that
// changes nothing (almost all traffic) is answered by the shard from the row,
// one hop, no actor. Anything that changes a SIM goes to the SIM's actor
// (sim_actor.cpp), spawned on demand; while it is busy everything for that
// SIM goes to it, in order; when idle it hands its state back (sim_idle).
// Actors idle for `passivate_after` are stopped: their row already holds the
// state.
//
// The shard also keeps each SIM's activity (when last observed, last with an
// IMEI: lock::sim_activity) in its row, for every observation it sees, in
// whole seconds: a SIM observed a thousand times a second changes it once a
// second. Changed rows are listed and written behind in batches every
// `activity_flush` (and at stop): never a write per observation.

#include "actors/context.hpp"

#include "common/fault.hpp"
#include "common/log.hpp"
#include "lock/eligibility.hpp"

#include <caf/actor_system.hpp>
#include <caf/error.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/sec.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <unordered_map>
#include <variant>

namespace imeilock::actors {

namespace {

using namespace std::chrono_literals;

// -- Registry shard -------------------------------------------------------------------

struct registry_state {
  static inline const char* name = "imeilock.registry";

  struct active {
    sim_actor hdl;
    std::int64_t last_ms = 0; ///< last time something was forwarded
    std::uint32_t epoch = 0;  ///< messages forwarded so far
    bool busy = false;        ///< forwarded something not yet reported idle
    bool bulk = false;        ///< spawned for an import, nothing else forwarded since
  };

  layer_context* ctx = nullptr;
  std::uint32_t index = 0;
  std::vector<compact_row> rows;
  std::unordered_map<std::uint32_t, active> actors;
  /// Rows (local indices) whose activity changed since the last write-behind.
  std::vector<std::uint32_t> dirty;
  std::int64_t last_flush_ms = 0;
};

using registry_pointer = registry_actor::stateful_pointer<registry_state>;

compact_row& row_of(registry_pointer self, sim_id id) {
  auto& s = self->state;
  auto local = s.ctx->local_index(id);
  if (local >= s.rows.size())
    s.rows.resize(local + 1);
  return s.rows[local];
}

/// Whether a row counts in imeilock_sims_awaiting_imei: locking on, observed,
/// never with an IMEI.
bool awaiting_imei(const compact_row& row) {
  return row.state.lock != lock::lock_state::off && row.activity.never_with_imei();
}

/// Changes `row` with `fn`, keeping imeilock_sims_awaiting_imei in step.
template <class Fn>
void change_row(registry_pointer self, compact_row& row, Fn&& fn) {
  bool before = awaiting_imei(row);
  fn(row);
  if (bool after = awaiting_imei(row); after != before)
    self->state.ctx->metrics->awaiting_imei(after ? 1 : -1);
}

/// Records an observation of the SIM of `row` (local index `local`) in its activity.
void note_activity(registry_pointer self, std::uint32_t local, compact_row& row, std::int64_t at_ms,
                   bool with_imei) {
  auto now_s = static_cast<std::uint32_t>(std::clamp<std::int64_t>(at_ms / 1000, 0, 0xffffffff));
  if (now_s == row.activity.observed_s && (!with_imei || now_s == row.activity.imei_seen_s))
    return; // the common case: seen this second already
  change_row(self, row, [&](compact_row& r) {
    if (lock::note_observed(r.activity, now_s, with_imei) && !r.activity_dirty) {
      r.activity_dirty = true;
      self->state.dirty.push_back(local);
    }
  });
}

/// Writes the activity of the dirty rows to the store, in changes of at most
/// `chunk` SIMs. Rows not in the store yet (an upsert not committed) stay
/// dirty; a change the store refuses or rolls back comes back as
/// activity_unsaved and is written again next time. More than one node:
/// one change per cluster shard, under its lease (stamp_claim); the activity
/// of a SIM whose shard this node no longer serves is its new owner's.
void flush_activity(registry_pointer self) {
  auto& st = self->state;
  st.last_flush_ms = st.ctx->clock();
  if (st.dirty.empty())
    return;
  constexpr std::size_t chunk = 4096;
  const auto shards = static_cast<std::uint32_t>(st.ctx->shards.size());
  std::vector<std::uint32_t> later;
  struct pending {
    store::change chg;
    std::vector<std::uint32_t> locals;
  };
  std::vector<pending> open; // one per claim (one on a single node)
  auto submit = [&](pending& p) {
    if (p.chg.activities.empty())
      return;
    auto hdl = caf::actor_cast<registry_actor>(self);
    auto shard = p.chg.shard;
    auto epoch = p.chg.epoch;
    st.ctx->db->submit(std::move(p.chg), [hdl, locals = std::move(p.locals)](bool ok) mutable {
      if (!ok)
        caf::anon_send(hdl, activity_unsaved{std::move(locals)});
    });
    p.chg = {};
    p.chg.shard = shard;
    p.chg.epoch = epoch;
    p.locals = {};
  };
  // In SIM order, which is the store's order for SIMs loaded at start (the
  // loader reads them by ICCID): the updates then walk the sims table's
  // B-tree instead of hitting a random page each (the write-behind of 1M
  // SIMs observed in random order took 16 s).
  std::sort(st.dirty.begin(), st.dirty.end());
  for (auto local : st.dirty) {
    auto& row = st.rows[local];
    if (!row.activity_dirty)
      continue; // the row was replaced (its cluster shard dropped or loaded again)
    if (!row.stored) {
      later.push_back(local);
      continue;
    }
    auto id = local * shards + st.index;
    store::change claim;
    if (!stamp_claim(st.ctx, claim, st.ctx->inv->lowest_imsi(id))) {
      row.activity_dirty = false;
      continue;
    }
    auto it = std::find_if(open.begin(), open.end(), [&](const pending& p) {
      return p.chg.shard == claim.shard && p.chg.epoch == claim.epoch;
    });
    if (it == open.end()) {
      it = open.emplace(open.end());
      it->chg.shard = claim.shard;
      it->chg.epoch = claim.epoch;
    }
    row.activity_dirty = false;
    it->chg.activities.push_back({st.ctx->inv->iccid(id), row.activity});
    it->locals.push_back(local);
    if (it->chg.activities.size() == chunk)
      submit(*it);
  }
  for (auto& p : open)
    submit(p);
  st.dirty = std::move(later);
}

/// Sends `m` to the SIM's actor, spawned from its row if it has none.
/// `bulk`: an import's upsert (sim_upsert_msg::bulk).
template <class Msg>
void forward(registry_pointer self, Msg&& m, bool bulk = false) {
  auto& s = self->state;
  auto id = m.sim;
  auto local = s.ctx->local_index(id);
  auto it = s.actors.find(local);
  if (it == s.actors.end()) {
    auto hdl = spawn_sim_actor(*self, s.ctx, id, row_of(self, id));
    it = s.actors.emplace(local, registry_state::active{std::move(hdl), 0, 0, false, bulk}).first;
    s.ctx->metrics->actors_alive->Increment();
  } else if (!bulk) {
    it->second.bulk = false; // the SIM has other work: passivated as usual
  }
  auto& a = it->second;
  a.last_ms = s.ctx->clock();
  ++a.epoch;
  a.busy = true;
  self->send(a.hdl, sim_work{std::forward<Msg>(m)});
}

/// Stops the actor of `it` (not busy: its row holds the state).
void passivate(registry_pointer self,
               std::unordered_map<std::uint32_t, registry_state::active>::iterator it) {
  auto& st = self->state;
  self->send(it->second.hdl, stop_atom::value);
  st.actors.erase(it);
  st.ctx->metrics->actors_alive->Decrement();
  st.ctx->metrics->passivations->Increment();
}

/// An observation for one of this shard's SIMs.
void observe(registry_pointer self, sim_observation& m) {
  auto& st = self->state;
  auto local = st.ctx->local_index(m.sim);
  const lock::observed ev{m.obs.imei};
  if (m.obs.at_ms == 0)
    m.obs.at_ms = st.ctx->clock();
  auto& row = row_of(self, m.sim);
  note_activity(self, local, row, m.obs.at_ms, lock::is_lock_event(ev));
  auto it = st.actors.find(local);
  if (it == st.actors.end() || !it->second.busy) {
    // Nothing in flight: the row is the state. The common case.
    if (!lock::is_lock_event(ev)) {
      m.done(ack::ok); // R2/R3
      return;
    }
    auto out = lock::apply(st.ctx->inv->policy(row.network), row.state, ev, m.obs.at_ms);
    if (!out.changed && out.effects.empty()) {
      m.done(ack::ok);
      return;
    }
    m.decided = std::make_shared<lock::outcome>(std::move(out)); // carried out as decided
  }
  forward(self, std::move(m));
}

/// Stops the actor of `id` if it has one (work it holds is answered as not
/// done: sim_actor.cpp, fail_pending).
void stop_actor(registry_pointer self, sim_id id) {
  auto& st = self->state;
  auto it = st.actors.find(st.ctx->local_index(id));
  if (it == st.actors.end())
    return;
  self->send(it->second.hdl, stop_atom::value);
  st.actors.erase(it);
  st.ctx->metrics->actors_alive->Decrement();
}

registry_actor::behavior_type registry_behavior(registry_pointer self, layer_context* ctx,
                                                std::uint32_t index) {
  auto& s = self->state;
  s.ctx = ctx;
  s.index = index;
  if (index < ctx->initial_rows.size())
    s.rows = std::move(ctx->initial_rows[index]);
  auto sweep_every = std::max<std::chrono::milliseconds>(
      std::min(ctx->cfg.passivate_after / 4, ctx->cfg.activity_flush), 50ms);
  s.last_flush_ms = ctx->clock();
  self->delayed_send(self, sweep_every, sweep_atom::value);
  self->set_exception_handler(last_resort<fault_site::registry>);
  auto observe_one = guard(fault_site::registry, [self](sim_observation& m) { observe(self, m); });
  return {
      observe_one,
      guard(fault_site::registry,
            [observe_one](sim_observation_batch& b) {
              for (auto& m : b.items)
                observe_one(m); // guarded each: one failing leaves the others answered
            }),
      guard(fault_site::registry,
            [self](sim_order& m) {
              m.activity = row_of(self, m.sim).activity;
              forward(self, std::move(m));
            }),
      guard(fault_site::registry,
            [self](sim_upsert_msg& m) {
              if (m.created)
                row_of(self, m.sim).network = m.network;
              auto bulk = m.bulk;
              forward(self, std::move(m), bulk);
            }),
      guard(fault_site::registry, [self](sim_order_outcome& m) { forward(self, std::move(m)); }),
      guard(fault_site::registry,
            [self](sim_idle& m) {
              auto& st = self->state;
              auto it = st.actors.find(st.ctx->local_index(m.sim));
              if (it == st.actors.end() || it->second.epoch != m.epoch)
                return; // forwarded more since: still busy, it reports again
              it->second.busy = false;
              change_row(self, row_of(self, m.sim), [&](compact_row& row) {
                row.state = m.state;
                row.network = m.network;
                row.stored = m.stored;
              });
              if (it->second.bulk)
                passivate(self, it);
            }),
      guard(fault_site::registry,
            [self](activity_unsaved& m) {
              auto& st = self->state;
              for (auto local : m.rows)
                if (local < st.rows.size() && !st.rows[local].activity_dirty) {
                  st.rows[local].activity_dirty = true;
                  st.dirty.push_back(local);
                }
            }),
      guard(fault_site::registry,
            [self](sims_loaded& m) {
              for (std::size_t i = 0; i < m.sims.size(); ++i) {
                // An actor left from an earlier period of ownership holds a
                // state older than the store's.
                stop_actor(self, m.sims[i]);
                change_row(self, row_of(self, m.sims[i]), [&](compact_row& r) {
                  r = compact_row{m.states[i], m.activities[i], m.networks[i], true};
                });
              }
            }),
      guard(fault_site::registry,
            [self](sims_dropped& m) {
              for (auto id : m.sims) {
                stop_actor(self, id);
                change_row(self, row_of(self, id), [](compact_row& r) { r = compact_row{}; });
              }
            }),
      [self, sweep_every](sweep_atom) {
        auto& st = self->state;
        auto now = st.ctx->clock();
        auto idle = st.ctx->cfg.passivate_after.count();
        std::size_t stopped = 0;
        for (auto it = st.actors.begin(); it != st.actors.end();) {
          if (!it->second.busy && now - it->second.last_ms >= idle) {
            self->send(it->second.hdl, stop_atom::value);
            it = st.actors.erase(it);
            ++stopped;
          } else {
            ++it;
          }
        }
        if (stopped > 0) {
          st.ctx->metrics->actors_alive->Decrement(static_cast<double>(stopped));
          st.ctx->metrics->passivations->Increment(static_cast<double>(stopped));
        }
        if (now - st.last_flush_ms >= st.ctx->cfg.activity_flush.count())
          guarded(fault_site::registry, [self] { flush_activity(self); });
        self->delayed_send(self, sweep_every, sweep_atom::value);
      },
      [self](stop_atom) {
        auto& st = self->state;
        guarded(fault_site::registry, [self] { flush_activity(self); });
        for (auto& [local, a] : st.actors)
          self->send(a.hdl, stop_atom::value);
        st.ctx->metrics->actors_alive->Decrement(static_cast<double>(st.actors.size()));
        st.actors.clear();
        self->quit();
      },
      [self](counts_atom) { return registry_counts{self->state.actors.size()}; },
  };
}

} // namespace

registry_actor spawn_registry_shard(caf::actor_system& sys, layer_context* ctx,
                                    std::uint32_t index) {
  return count_running(ctx, sys.spawn(registry_behavior, ctx, index));
}

} // namespace imeilock::actors
