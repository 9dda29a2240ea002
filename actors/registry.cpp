// The registry shards (DESIGN §1, §5, §6) and the fast path.
//
// A shard owns the compact rows (lock state + network, 64 bytes: context.hpp)
// of the SIMs with sim_id % shards == its index, in a row table it shares with
// the threads that submit observations. The row is the SIM's committed state
// whenever its actor (if any) has nothing in flight, so an observation that
// changes nothing (almost all traffic) is answered from the row: by the
// submitting thread itself (observe_here: no hop, no wake-up; the RADIUS
// and Diameter I/O threads call it inside submit_many), or by the shard when
// the observation had to go there. Anything that changes a SIM goes to the
// SIM's actor (sim_actor.cpp) through the shard, spawned on demand; while it
// is busy everything for that SIM goes to it, in order; when idle it hands
// its state back (sim_idle). Actors idle for `passivate_after` are stopped:
// their row already holds the state.
//
// Order per SIM: every message sent to a shard for a SIM is counted in the
// SIM's row on its way (counted(): compact_row::queued) and taken off by the
// shard when it handles it, in the same critical section that marks the row
// busy when the shard hands the work to the actor. The submitting thread
// answers from the row only when both are clear, so no observation is ever
// answered ahead of earlier work of its SIM. The rows are guarded by striped
// locks (row_table), held for a few hundred nanoseconds at most: never over
// a callback, a send, or more than `flush_chunk` rows.
//
// The shard and the fast path also keep each SIM's activity (when last
// observed, last with an IMEI: lock::sim_activity) in its row, for every
// observation, in whole seconds: a SIM observed a thousand times a second
// changes it once a second. A row is listed (per stripe) for the write-behind
// only when one of its times moves to another step of `activity_resolution`
// (or is set for the first time; each SIM's steps start at an offset of its
// own, so that SIMs observed all the time do not all move at once); the listed rows are written in
// batches every `activity_flush`, and at stop every row that moved at all: never a write per
// observation, and a SIM observed all the time is written once a step, not once a flush.
//
// Passivation: the sweep (every `sweep_every`) lists the actors idle for
// `passivate_after` and stops them `passivate_chunk` at a time, one chunk
// every `passivate_pace`: a burst of SIMs gone idle together (a wave of
// changes a minute ago) is not one long stall of the worker that the front-
// ends' threads share the cores with.

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
#include <cassert>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
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
  row_table* table = nullptr; ///< ctx->row_tables[index]
  std::unordered_map<std::uint32_t, active> actors;
  std::int64_t last_flush_ms = 0;
  /// Actors (local indices) the last scan found idle, stopped from `next_stop` on
  /// a chunk at a time (each checked again: it may have had work since).
  std::vector<std::uint32_t> idle;
  std::size_t next_stop = 0;
};

using registry_pointer = registry_actor::stateful_pointer<registry_state>;
using actor_map = std::unordered_map<std::uint32_t, registry_state::active>;

constexpr std::uint16_t queued_saturated = 0xffff;
/// Rows the write-behind handles per hold of a stripe's lock.
constexpr std::size_t flush_chunk = 4096;
/// Idle actors the sweep stops at most per turn, and its pace while more are
/// listed: 25,600 a second per shard, a few milliseconds of a worker per turn.
constexpr std::size_t passivate_chunk = 256;
constexpr auto passivate_pace = std::chrono::milliseconds{10};

/// Grows `t` to at least `n` rows, with every stripe held.
void grow(row_table& t, std::size_t n) {
  std::array<std::unique_lock<std::mutex>, row_table::stripes> all;
  for (std::uint32_t i = 0; i < row_table::stripes; ++i)
    all[i] = std::unique_lock{t.locks[i].mtx};
  if (t.rows.size() < n)
    t.rows.resize(n);
}

/// Locks the stripe of row `local` of `t`, the row made if missing.
std::unique_lock<std::mutex> lock_row(row_table& t, std::uint32_t local) {
  std::unique_lock lk{t.stripe_of(local).mtx};
  if (local < t.rows.size())
    return lk;
  lk.unlock();
  grow(t, std::size_t{local} + 1);
  lk.lock();
  return lk;
}

/// The shard takes a message of the SIM of `row` (counted: compact_row::queued).
void take(compact_row& row, bool counted) {
  if (counted && row.queued != queued_saturated) {
    assert(row.queued > 0);
    --row.queued;
  }
}

/// Whether a row counts in imeilock_sims_awaiting_imei: locking on, observed,
/// never with an IMEI.
bool awaiting_imei(const compact_row& row) {
  return row.state.lock != lock::lock_state::off && row.activity.never_with_imei();
}

/// Changes `row` with `fn`, keeping imeilock_sims_awaiting_imei in step.
template <class Fn>
void change_row(layer_context& ctx, compact_row& row, Fn&& fn) {
  bool before = awaiting_imei(row);
  fn(row);
  if (bool after = awaiting_imei(row); after != before)
    ctx.metrics->awaiting_imei(after ? 1 : -1);
}

/// Whether activity `after` must be written when the store holds `before`
/// (or older, within the same steps): a time set for the first time, or
/// moved to another step of `step_s` seconds. The steps of a SIM start at
/// `phase` (0..step_s-1) past a multiple of `step_s`: spread over the SIMs, so
/// that SIMs observed all the time do not all move to their next step in the
/// same second (one write-behind of every SIM a step).
bool activity_moved_step(const lock::sim_activity& before, const lock::sim_activity& after,
                         std::uint32_t step_s, std::uint32_t phase) {
  auto step = [&](std::uint32_t t) { return (std::uint64_t{t} + step_s - phase) / step_s; };
  auto moved = [&](std::uint32_t b, std::uint32_t a) {
    return a != b && (b == 0 || step(a) != step(b));
  };
  return moved(before.observed_s, after.observed_s) || moved(before.imei_seen_s, after.imei_seen_s);
}

/// Records an observation of the SIM of `row` (local index `local`) in its
/// activity; its stripe's lock held. The row is listed for the write-behind
/// when a time moved to another `activity_resolution` step, else only marked
/// behind (written at stop, or with the next listing).
void note_activity(layer_context& ctx, row_table& t, std::uint32_t local, compact_row& row,
                   std::int64_t at_ms, bool with_imei) {
  auto now_s = static_cast<std::uint32_t>(std::clamp<std::int64_t>(at_ms / 1000, 0, 0xffffffff));
  if (now_s == row.activity.observed_s && (!with_imei || now_s == row.activity.imei_seen_s))
    return; // the common case: seen this second already
  change_row(ctx, row, [&](compact_row& r) {
    auto before = r.activity;
    if (!lock::note_observed(r.activity, now_s, with_imei) || r.activity_dirty)
      return;
    auto step_s = static_cast<std::uint32_t>(
        std::max<std::int64_t>(ctx.cfg.activity_resolution.count() / 1000, 1));
    if (activity_moved_step(before, r.activity, step_s, local % step_s)) {
      r.activity_dirty = true;
      r.activity_behind = false;
      t.stripe_of(local).dirty.push_back(local);
    } else {
      r.activity_behind = true;
    }
  });
}

/// Whether observation `ev` at `at_ms` leaves `row` as it is (R2/R3: no IMEI
/// changes nothing); otherwise what lock::apply decided, in `out`.
bool changes_nothing(layer_context& ctx, const compact_row& row, const lock::observed& ev,
                     std::int64_t at_ms, std::optional<lock::outcome>& out) {
  if (!lock::is_lock_event(ev))
    return true;
  out = lock::apply(ctx.inv->policy(row.network), row.state, ev, at_ms);
  return !out->changed && out->effects.empty();
}

/// Writes the activity of the dirty rows to the store, in changes of at most
/// `flush_chunk` SIMs. Rows not in the store yet (an upsert not committed)
/// stay dirty; a change the store refuses or rolls back comes back as
/// activity_unsaved and is written again next time. More than one node:
/// one change per cluster shard, under its lease (stamp_claim); the activity
/// of a SIM whose shard this node no longer serves is its new owner's.
/// The rows are read under their stripe's lock, `flush_chunk` at a time (the
/// fast path writes them meanwhile); the store is fed with no lock held.
/// `all` (at stop): also the rows behind (moved within their step), found by
/// a walk over every row.
void flush_activity(registry_pointer self, bool all = false) {
  auto& st = self->state;
  auto& t = *st.table;
  st.last_flush_ms = st.ctx->clock();
  struct taken {
    std::uint32_t local;
    lock::sim_activity activity;
  };
  std::vector<taken> todo;
  std::vector<std::uint32_t> list;
  for (std::size_t si = 0; si < row_table::stripes; ++si) {
    auto& stripe = t.locks[si];
    {
      std::lock_guard g{stripe.mtx};
      list.swap(stripe.dirty);
    }
    if (all) {
      // `flush_chunk` rows per hold of the lock; the rows only grow.
      for (std::size_t from = si; true; from += flush_chunk * row_table::stripes) {
        std::lock_guard g{stripe.mtx};
        if (from >= t.rows.size())
          break;
        auto to = std::min(t.rows.size(), from + flush_chunk * row_table::stripes);
        for (auto local = from; local < to; local += row_table::stripes) {
          auto& row = t.rows[local];
          if (row.activity_behind && !row.activity_dirty) {
            row.activity_dirty = true;
            list.push_back(static_cast<std::uint32_t>(local));
          }
        }
      }
    }
    for (std::size_t from = 0; from < list.size(); from += flush_chunk) {
      std::lock_guard g{stripe.mtx};
      auto to = std::min(list.size(), from + flush_chunk);
      for (auto i = from; i < to; ++i) {
        auto local = list[i];
        auto& row = t.rows[local];
        if (!row.activity_dirty)
          continue; // the row was replaced (its cluster shard dropped or loaded again)
        if (!row.stored) {
          stripe.dirty.push_back(local); // written once the store holds it
          continue;
        }
        row.activity_dirty = false;
        row.activity_behind = false; // written as it is now
        todo.push_back({local, row.activity});
      }
    }
    list.clear();
  }
  if (todo.empty())
    return;
  const auto shards = static_cast<std::uint32_t>(st.ctx->shards.size());
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
  std::sort(todo.begin(), todo.end(),
            [](const taken& a, const taken& b) { return a.local < b.local; });
  for (const auto& [local, activity] : todo) {
    auto id = local * shards + st.index;
    store::change claim;
    if (!stamp_claim(st.ctx, claim, st.ctx->inv->lowest_imsi(id)))
      continue;
    auto it = std::find_if(open.begin(), open.end(), [&](const pending& p) {
      return p.chg.shard == claim.shard && p.chg.epoch == claim.epoch;
    });
    if (it == open.end()) {
      it = open.emplace(open.end());
      it->chg.shard = claim.shard;
      it->chg.epoch = claim.epoch;
    }
    it->chg.activities.push_back({st.ctx->inv->iccid(id), activity});
    it->locals.push_back(local);
    if (it->chg.activities.size() == flush_chunk)
      submit(*it);
  }
  for (auto& p : open)
    submit(p);
}

/// Sends `m` to the SIM's actor (`it`, or spawned from `row`, the SIM's row
/// as the shard marked it busy, when `it` is the end). `bulk`: an import's
/// upsert (sim_upsert_msg::bulk).
template <class Msg>
void forward(registry_pointer self, actor_map::iterator it, const compact_row& row, Msg&& m,
             bool bulk = false) {
  auto& s = self->state;
  auto id = m.sim;
  if (it == s.actors.end()) {
    auto hdl = spawn_sim_actor(*self, s.ctx, id, row);
    it = s.actors
             .emplace(s.ctx->local_index(id),
                      registry_state::active{std::move(hdl), 0, 0, false, bulk})
             .first;
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

/// Work other than an observation for the SIM of `m`: taken off its row's
/// count, `on_row` applied to its row, the row marked busy (one critical
/// section), then forwarded to the actor.
template <class Msg, class Fn>
void forward_work(registry_pointer self, Msg&& m, bool bulk, Fn&& on_row) {
  auto& s = self->state;
  auto local = s.ctx->local_index(m.sim);
  auto it = s.actors.find(local);
  compact_row snapshot;
  {
    auto lk = lock_row(*s.table, local);
    auto& row = s.table->rows[local];
    take(row, m.counted);
    on_row(row);
    row.busy = true;
    if (it == s.actors.end())
      snapshot = row;
  }
  forward(self, it, snapshot, std::forward<Msg>(m), bulk);
}

/// Stops the actor of `it` (not busy: its row holds the state).
void passivate(registry_pointer self, actor_map::iterator it) {
  auto& st = self->state;
  self->send(it->second.hdl, stop_atom::value);
  st.actors.erase(it);
  st.ctx->metrics->actors_alive->Decrement();
  st.ctx->metrics->passivations->Increment();
}

/// An observation for one of this shard's SIMs (one the submitting thread
/// could not answer, or one sent straight here).
void observe(registry_pointer self, sim_observation& m) {
  auto& st = self->state;
  auto local = st.ctx->local_index(m.sim);
  const lock::observed ev{m.obs.imei};
  if (m.obs.at_ms == 0)
    m.obs.at_ms = st.ctx->clock();
  auto it = st.actors.find(local);
  const bool idle = it == st.actors.end() || !it->second.busy;
  bool answer = false;
  std::optional<lock::outcome> out;
  compact_row snapshot;
  {
    auto lk = lock_row(*st.table, local);
    auto& row = st.table->rows[local];
    take(row, m.counted);
    note_activity(*st.ctx, *st.table, local, row, m.obs.at_ms, lock::is_lock_event(ev));
    // Nothing in flight: the row is the state.
    answer = idle && changes_nothing(*st.ctx, row, ev, m.obs.at_ms, out);
    if (!answer) {
      row.busy = true;
      if (it == st.actors.end())
        snapshot = row;
    }
  }
  if (answer) {
    m.done(ack::ok);
    return;
  }
  if (out)
    m.decided = std::make_shared<lock::outcome>(std::move(*out)); // carried out as decided
  forward(self, it, snapshot, std::move(m));
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
  s.table = ctx->row_tables[index].get();
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
              auto* order = &m;
              forward_work(self, std::move(m), false,
                           [order](compact_row& row) { order->activity = row.activity; });
            }),
      guard(fault_site::registry,
            [self](sim_upsert_msg& m) {
              auto bulk = m.bulk;
              auto created = m.created;
              auto network = m.network;
              forward_work(self, std::move(m), bulk, [&](compact_row& row) {
                if (created)
                  row.network = network;
              });
            }),
      guard(fault_site::registry,
            [self](sim_order_outcome& m) {
              forward_work(self, std::move(m), false, [](compact_row&) {});
            }),
      guard(fault_site::registry,
            [self](sim_idle& m) {
              auto& st = self->state;
              auto local = st.ctx->local_index(m.sim);
              auto it = st.actors.find(local);
              if (it == st.actors.end() || it->second.epoch != m.epoch)
                return; // forwarded more since: still busy, it reports again
              it->second.busy = false;
              {
                auto lk = lock_row(*st.table, local);
                change_row(*st.ctx, st.table->rows[local], [&](compact_row& row) {
                  row.state = m.state;
                  row.network = m.network;
                  row.stored = m.stored;
                  row.busy = false;
                });
              }
              if (it->second.bulk)
                passivate(self, it);
            }),
      guard(fault_site::registry,
            [self](activity_unsaved& m) {
              auto& t = *self->state.table;
              for (auto local : m.rows) {
                auto& stripe = t.stripe_of(local);
                std::lock_guard g{stripe.mtx};
                if (local < t.rows.size() && !t.rows[local].activity_dirty) {
                  t.rows[local].activity_dirty = true;
                  stripe.dirty.push_back(local);
                }
              }
            }),
      guard(fault_site::registry,
            [self](sims_loaded& m) {
              auto& st = self->state;
              for (std::size_t i = 0; i < m.sims.size(); ++i) {
                // An actor left from an earlier period of ownership holds a
                // state older than the store's.
                stop_actor(self, m.sims[i]);
                auto local = st.ctx->local_index(m.sims[i]);
                auto lk = lock_row(*st.table, local);
                change_row(*st.ctx, st.table->rows[local], [&](compact_row& r) {
                  auto queued = r.queued; // messages on their way: still taken off
                  r = compact_row::loaded(m.states[i], m.activities[i], m.networks[i]);
                  r.queued = queued;
                });
              }
            }),
      guard(fault_site::registry,
            [self](sims_dropped& m) {
              auto& st = self->state;
              for (auto id : m.sims) {
                stop_actor(self, id);
                auto local = st.ctx->local_index(id);
                auto lk = lock_row(*st.table, local);
                change_row(*st.ctx, st.table->rows[local], [](compact_row& r) {
                  auto queued = r.queued;
                  r = compact_row{};
                  r.queued = queued;
                });
              }
            }),
      [self, sweep_every](sweep_atom) {
        auto& st = self->state;
        auto now = st.ctx->clock();
        auto idle = st.ctx->cfg.passivate_after.count();
        if (st.next_stop == st.idle.size()) { // a turn of the period: list the idle ones
          st.idle.clear();
          st.next_stop = 0;
          for (const auto& [local, a] : st.actors)
            if (!a.busy && now - a.last_ms >= idle)
              st.idle.push_back(local);
        }
        std::size_t stopped = 0;
        for (; st.next_stop < st.idle.size() && stopped < passivate_chunk; ++st.next_stop) {
          auto it = st.actors.find(st.idle[st.next_stop]);
          if (it == st.actors.end() || it->second.busy || now - it->second.last_ms < idle)
            continue; // stopped meanwhile, or had work since
          self->send(it->second.hdl, stop_atom::value);
          st.actors.erase(it);
          ++stopped;
        }
        if (stopped > 0) {
          st.ctx->metrics->actors_alive->Decrement(static_cast<double>(stopped));
          st.ctx->metrics->passivations->Increment(static_cast<double>(stopped));
        }
        if (now - st.last_flush_ms >= st.ctx->cfg.activity_flush.count())
          guarded(fault_site::registry, [self] { flush_activity(self); });
        if (st.next_stop < st.idle.size()) {
          self->delayed_send(self, passivate_pace, sweep_atom::value);
        } else {
          st.idle = {}; // a burst's list is not kept until the next one
          st.next_stop = 0;
          self->delayed_send(self, sweep_every, sweep_atom::value);
        }
      },
      [self](stop_atom) {
        auto& st = self->state;
        guarded(fault_site::registry, [self] { flush_activity(self, true); });
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

// -- The fast path ----------------------------------------------------------------------

void note_queued(layer_context& ctx, sim_id id) {
  auto& t = *ctx.row_tables[ctx.shard_index(id)];
  auto local = ctx.local_index(id);
  auto lk = lock_row(t, local);
  auto& row = t.rows[local];
  if (row.queued != queued_saturated)
    ++row.queued;
}

bool observe_here(layer_context& ctx, sim_observation& m) {
  auto& t = *ctx.row_tables[ctx.shard_index(m.sim)];
  auto local = ctx.local_index(m.sim);
  const lock::observed ev{m.obs.imei};
  if (m.obs.at_ms == 0)
    m.obs.at_ms = ctx.clock();
  {
    auto lk = lock_row(t, local);
    auto& row = t.rows[local];
    // The same decision as observe() takes on the shard, when nothing of
    // the SIM is queued to the shard or in flight at its actor. Should it
    // throw (nothing in lock/ does), the shard decides, guarded: nothing
    // escapes onto a front-end's thread.
    bool answer = false;
    if (ctx.fast_path && row.queued == 0 && !row.busy) {
      try {
        std::optional<lock::outcome> out;
        if (changes_nothing(ctx, row, ev, m.obs.at_ms, out)) {
          note_activity(ctx, t, local, row, m.obs.at_ms, lock::is_lock_event(ev));
          answer = true;
        }
      } catch (const std::exception&) {
        answer = false;
      }
    }
    if (!answer) {
      if (row.queued != queued_saturated)
        ++row.queued;
      m.counted = true;
      return false; // sent to the shard, which decides again
    }
  }
  return true; // R2/R3, or nothing to change: the caller answers
}

registry_actor spawn_registry_shard(caf::actor_system& sys, layer_context* ctx,
                                    std::uint32_t index) {
  // The table first: submitting threads reach it through ctx once the layer runs.
  if (ctx->row_tables.size() <= index)
    ctx->row_tables.resize(index + 1);
  ctx->row_tables[index] = std::make_unique<row_table>();
  if (index < ctx->initial_rows.size())
    ctx->row_tables[index]->rows = std::move(ctx->initial_rows[index]);
  return count_running(ctx, sys.spawn(registry_behavior, ctx, index));
}

} // namespace imeilock::actors
