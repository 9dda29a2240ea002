// The SIM actor (DESIGN §1, §5, §6): one SIM's lock state machine while
// something changes it, a thin shell over lock::apply. The registry shard
// (registry.cpp) spawns it on demand and passivates it when idle.
//
// A SIM actor has at most one write in flight; events arriving meanwhile wait
// in order behind it, so an observation is acknowledged only once everything
// before it is durable (a retransmit is never acked ahead of the change it
// repeats), and a failed write leaves the committed state untouched.

#include "actors/context.hpp"

#include "common/fault.hpp"
#include "common/log.hpp"
#include "lock/eligibility.hpp"

#include <caf/actor_system.hpp>
#include <caf/error.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/local_actor.hpp>
#include <caf/sec.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <variant>

namespace imeilock::actors {

namespace {

using namespace std::chrono_literals;

/// Called once the in-flight write is settled: committed, or not (and then
/// whether the store refused it for overload), with the orders it created.
using settle_fn =
    std::function<void(bool ok, bool refused, const std::vector<orders::order>& new_orders)>;

/// What a SIM actor keeps only while a write is in flight, in as few blocks
/// as it can (no copy of the ICCID; an observation's callback moved in, not
/// wrapped): tens of thousands are in flight in a burst of changes, and the
/// blocks they hold while the burst spawns actors stay behind as holes
/// between those actors once they commit (bench/README.md, memory).
struct write_in_flight {
  lock::sim_state next; ///< state once it commits
  network_id next_network = 0;
  std::vector<orders::order> new_orders; ///< hand to the order actor once committed
  std::vector<lock::notify> notices;     ///< tell the listener once committed
  std::shared_ptr<const disconnect_target> disconnect;
  /// The rules asked for a Disconnect (lock::disconnect_session): the
  /// violation notice carries `disconnect`, and goes out before the bar.
  bool disconnect_wanted = false;
  std::uint64_t dedupe_key = 0;
  /// The IMSI the observation came in on; 0 for other causes (the notices
  /// then name the SIM's first IMSI).
  std::uint64_t imsi = 0;
  bool refused = false;   ///< the store refused it (queue full)
  bool submitted = false; ///< handed to the store: a commit_atom will come
  /// An observation's caller, answered when the write is settled (its own
  /// callback moved here: no settle_fn wrapping it).
  ack_fn acked;
  settle_fn settle; ///< the other causes' continuation
};

struct sim_actor_state {
  static inline const char* name = "imeilock.sim";

  // Ordered by size so no padding is left between the members: one of these
  // lives in every live SIM actor (152 bytes in the order of meaning, 144 so).
  layer_context* ctx = nullptr;
  std::unique_ptr<write_in_flight> w; ///< set while a write is in flight
  std::vector<sim_work> queue;        ///< events waiting behind the write
  /// Recent dedupe keys (observations already applied).
  std::array<std::uint64_t, 4> keys{};
  lock::sim_state st; ///< committed state (the ICCID is in the inventory index)
  sim_id id = no_sim;
  std::uint32_t received = 0; ///< messages handled from the shard (its epoch)
  network_id network = 0;
  std::uint8_t key_pos = 0;
  bool stored = false; ///< the store holds the SIM (loaded, or an upsert committed)

  bool writing() const { return w != nullptr; }
  bool seen(std::uint64_t key) const {
    return key != 0 && std::find(keys.begin(), keys.end(), key) != keys.end();
  }
  void remember(std::uint64_t key) {
    if (key == 0 || seen(key))
      return;
    keys[key_pos] = key;
    key_pos = static_cast<std::uint8_t>((key_pos + 1) % keys.size());
  }
};

static_assert(sizeof(sim_actor_state) <= 144, "sim_actor_state grew: mind the member order");

using sim_pointer = sim_actor::stateful_pointer<sim_actor_state>;

/// An operator write refused with `e` and `reason`, nothing else set.
write_result refusal(ec e, std::string reason) {
  write_result r;
  r.error = e;
  r.reason = std::move(reason);
  return r;
}

/// The API error of a refused order (rejection_error, shared with the API
/// tests' fake). none is not a refusal, and a value outside the enum is
/// memory corruption: our own bug either way (STYLE §4).
ec rejection_code(lock::rejection r) {
  auto e = rejection_error(r);
  if (e != ec::ok)
    return e;
  log::error("sim.rejection_unmapped", {{"rejection", static_cast<int>(r)}});
  std::abort();
}

/// Starts the write of `out` (plus `extra`), calling `settle` when it is done.
void begin_write(sim_pointer self, lock::outcome out, std::int64_t at_ms, store::change extra,
                 settle_fn settle) {
  auto& s = self->state;
  auto* ctx = s.ctx;
  // A bar raised by a violation (R7) asks for an id: assign it everywhere
  // (pending order, audit, notice) before anything is persisted.
  for (auto& e : out.effects)
    if (auto* so = std::get_if<lock::submit_order>(&e); so && so->order_id == 0) {
      lock::note_order_id(out, ctx->db->allocate_order_id());
      break;
    }
  s.w = std::make_unique<write_in_flight>();
  auto& w = *s.w;
  w.next = out.next;
  w.next_network = s.network;
  const auto iccid = ctx->inv->iccid(s.id);
  store::change chg = std::move(extra);
  for (auto& e : out.effects) {
    if (auto* so = std::get_if<lock::submit_order>(&e)) {
      orders::order o;
      o.id = so->order_id;
      o.iccid = iccid;
      o.network = ctx->inv->network_name(s.network);
      o.type = so->type;
      o.reason = so->reason;
      o.mode = so->mode;
      o.with_lock = so->with_lock;
      o.scope = so->scope;
      o.created_at_ms = at_ms;
      o.status = orders::order_status::queued;
      chg.orders.push_back(o);
      w.new_orders.push_back(std::move(o));
    } else if (auto* n = std::get_if<lock::notify>(&e)) {
      w.notices.push_back(*n);
    } else if (std::holds_alternative<lock::disconnect_session>(e)) {
      w.disconnect_wanted = true;
    }
  }
  if (out.changed)
    chg.states.push_back({iccid, w.next});
  for (auto& a : out.audits) {
    store::audit_record r;
    r.iccid = iccid;
    r.at_ms = at_ms;
    r.cause = a.cause;
    r.before = a.before;
    r.after = a.after;
    r.imei = a.imei;
    r.detail = a.detail;
    chg.audits.push_back(std::move(r));
  }
  w.settle = std::move(settle);
  auto hdl = caf::actor_cast<sim_actor>(self);
  auto on_done = [hdl, ctx](bool ok) {
    if (ctx->deliver_commit)
      ctx->deliver_commit(hdl, ok);
    else
      caf::anon_send(hdl, commit_atom::value, ok);
  };
  // More than one node: the change carries the lease it is made under. A
  // shard this node no longer serves fails the write here; one it lost
  // after this point is failed by the fence in the store's transaction.
  std::uint64_t lowest = 0;
  if (!chg.sims.empty() && !chg.sims.front().imsis.empty())
    lowest = *std::min_element(chg.sims.front().imsis.begin(), chg.sims.front().imsis.end());
  else
    lowest = ctx->inv->lowest_imsi(s.id);
  if (!stamp_claim(ctx, chg, lowest)) {
    on_done(false);
  } else if (!ctx->db->submit(std::move(chg), on_done)) {
    w.refused = true;
    ctx->metrics->store_refused->Increment();
  }
  w.submitted = true;
}

/// The actor is stopped with work in flight or waiting (its cluster shard
/// is no longer served here): nothing of it is acknowledged as done.
void fail_pending(sim_pointer self) {
  auto& s = self->state;
  if (s.w) {
    auto w = std::move(s.w);
    if (w->acked)
      w->acked(ack::store_failed);
    else if (w->settle)
      w->settle(false, false, {});
  }
  auto not_stored = [] {
    return refusal(ec::store_failed, "this node no longer serves the SIM's shard, retry");
  };
  for (auto& work : s.queue) {
    if (auto* o = std::get_if<sim_observation>(&work))
      o->done(ack::not_owner);
    else if (auto* p = std::get_if<sim_order>(&work))
      p->done(not_stored());
    else if (auto* u = std::get_if<sim_upsert_msg>(&work))
      u->done(not_stored());
  }
  s.queue.clear();
}

void process(sim_pointer self, sim_work&& w);

/// Works the queue until a write starts; tells the shard when nothing is in
/// flight any more (its row is the state again).
void drain(sim_pointer self) {
  auto& s = self->state;
  while (!s.writing() && !s.queue.empty()) {
    auto pending = std::move(s.queue);
    s.queue.clear();
    std::size_t i = 0;
    for (; i < pending.size() && !s.writing(); ++i)
      process(self, std::move(pending[i]));
    s.queue.insert(s.queue.end(),
                   std::make_move_iterator(pending.begin() + static_cast<std::ptrdiff_t>(i)),
                   std::make_move_iterator(pending.end()));
  }
  if (!s.writing()) {
    s.queue = {}; // give the memory back: idle actors stay small
    self->send(s.ctx->shard_of(s.id), sim_idle{s.id, s.received, s.st, s.network, s.stored});
  }
}

/// The write in flight is settled: answer, publish its effects, work the queue.
void on_commit(sim_pointer self, bool ok) {
  auto& s = self->state;
  auto* ctx = s.ctx;
  if (!s.writing())
    return;
  auto w = std::move(s.w);
  if (ok) {
    ctx->metrics->moved(s.st, w->next);
    ctx->inv->moved(s.network, w->next_network);
    s.st = w->next;
    s.network = w->next_network;
    s.remember(w->dedupe_key);
  }
  // Answer the caller first (it waits on the network), then publish.
  if (w->acked)
    w->acked(ok ? ack::ok : w->refused ? ack::overloaded : ack::store_failed);
  else if (w->settle)
    w->settle(ok, w->refused, w->new_orders);
  if (ok) {
    auto hand_on_orders = [&] {
      for (auto& o : w->new_orders) {
        if (o.type == lock::order_type::bar && o.reason == lock::bar_reason::imei_lock)
          ctx->metrics->bars_raised->Increment();
        self->send(ctx->orders, new_order{std::move(o)});
      }
    };
    // disconnect_and_bar: the Disconnect-Request is on its way before the
    // Bar order reaches the order actor.
    if (!w->disconnect_wanted)
      hand_on_orders();
    std::string iccid; // read once, for the listener's events
    for (auto& n : w->notices) {
      if (n.what == lock::notice::change_event) {
        ctx->metrics->change_events->Increment();
      } else if (n.what == lock::notice::violation) {
        ctx->metrics->violations->Increment();
        ctx->metrics->violation(ctx->inv->network_name(s.network), n.action);
      }
      if (ctx->listener) {
        if (w->imsi == 0) // order outcomes, placements: the SIM's first IMSI
          w->imsi = ctx->inv->first_imsi(s.id);
        sim_event ev;
        ev.what = n.what;
        if (iccid.empty())
          iccid = ctx->inv->iccid(s.id);
        ev.iccid = iccid;
        ev.imsi = w->imsi;
        ev.imei = n.imei;
        ev.locked_imei = n.locked_imei;
        ev.order_id = n.order_id;
        ev.at_ms = ctx->clock();
        ev.action = n.action;
        if (n.what == lock::notice::violation && w->disconnect_wanted)
          ev.disconnect = w->disconnect;
        guarded(fault_site::listener, [&] { ctx->listener->on_event(ev); });
      }
    }
    if (w->disconnect_wanted)
      hand_on_orders();
  }
  drain(self);
}

void handle_observation(sim_pointer self, sim_observation&& m) {
  auto& s = self->state;
  auto& obs = m.obs;
  const lock::observed ev{obs.imei};
  if (!lock::is_lock_event(ev)) { // R2/R3: nothing to apply, nothing to remember
    m.done(ack::ok);
    return;
  }
  if (s.seen(obs.dedupe_key)) {
    s.ctx->metrics->deduplicated->Increment();
    m.done(ack::ok);
    return;
  }
  auto at = obs.at_ms != 0 ? obs.at_ms : s.ctx->clock();
  // Decided by the shard from this very state when the actor was idle.
  auto out =
      m.decided ? std::move(*m.decided) : lock::apply(s.ctx->inv->policy(s.network), s.st, ev, at);
  if (!out.changed && out.effects.empty()) {
    s.remember(obs.dedupe_key);
    m.done(ack::ok);
    return;
  }
  // A handoff being applied (more than one node): its inbox entry is
  // deleted in the transaction that commits its effect, never on its own.
  store::change extra;
  if (obs.inbox) {
    extra.inbox_done.push_back(obs.inbox->id);
    obs.inbox->consumed.store(true);
  }
  begin_write(self, std::move(out), at, std::move(extra), nullptr);
  s.w->acked = std::move(m.done);
  s.w->disconnect = obs.disconnect;
  s.w->dedupe_key = obs.dedupe_key;
  s.w->imsi = obs.imsi;
}

void handle_order(sim_pointer self, sim_order&& m) {
  auto& s = self->state;
  auto* ctx = s.ctx;
  auto at = m.at_ms != 0 ? m.at_ms : ctx->clock();
  lock::order_placed ev;
  ev.order_id = ctx->db->allocate_order_id();
  ev.type = m.req.type;
  ev.mode = m.req.mode;
  ev.with_lock = m.req.with_lock;
  ev.scope = m.req.scope;
  auto out = lock::apply(ctx->inv->policy(s.network), s.st, ev, at);
  if (out.rejected != lock::rejection::none) {
    write_result r;
    r.error = rejection_code(out.rejected);
    r.reason = std::string(lock::explain(out.rejected));
    m.done(std::move(r));
    return;
  }
  auto warnings = out.warnings;
  // The product text's caveat, where it bites: a SIM whose network never
  // sent an IMEI will not lock.
  if (ev.type == lock::order_type::enable_imei_lock ||
      (ev.type == lock::order_type::activate && ev.with_lock))
    if (auto w = lock::no_imei_warning(m.activity); !w.empty())
      warnings.push_back(std::move(w));
  // A bulk job's order is linked to the job in the same commit (at most one
  // per job and SIM: a second one fails the write, placing nothing).
  store::change link;
  if (m.req.job_id != 0)
    link.job_orders.push_back({m.req.job_id, std::string{ctx->inv->iccid(s.id)}, ev.order_id});
  begin_write(self, std::move(out), at, std::move(link),
              [done = std::move(m.done), warnings = std::move(warnings), id = ev.order_id](
                  bool ok, bool refused, const std::vector<orders::order>& created) mutable {
                write_result r;
                if (!ok) {
                  r.error = refused ? ec::overloaded : ec::store_failed;
                  r.reason = refused ? "the store is overloaded, retry later"
                                     : "the change could not be stored, retry later";
                  done(std::move(r));
                  return;
                }
                r.warnings = std::move(warnings);
                for (auto& o : created)
                  if (o.id == id)
                    r.order = o;
                done(std::move(r));
              });
}

void handle_upsert(sim_pointer self, sim_upsert_msg&& m) {
  auto& s = self->state;
  auto* ctx = s.ctx;
  auto at = m.at_ms != 0 ? m.at_ms : ctx->clock();
  if (auto taken = ctx->inv->conflicts(s.id, m.rec.imsis); !taken.empty()) {
    write_result r;
    r.error = ec::conflict;
    r.reason = "IMSI " + std::to_string(taken.front()) + " belongs to another SIM";
    m.done(std::move(r));
    return;
  }
  // Nothing is read from the store: whether the SIM is in it is the actor's
  // own state, its IMSIs so far are the index's (released on commit).
  auto iccid = ctx->inv->iccid(s.id);
  bool created = !s.stored;
  lock::outcome out;
  out.next = s.st;
  out.next.status = m.rec.status;
  out.changed = created || out.next != s.st;
  if (out.changed) {
    out.next.updated_at_ms = at;
    lock::audit a;
    a.cause = created ? "inventory_created" : "inventory_updated";
    a.before = s.st;
    a.after = out.next;
    out.audits.push_back(std::move(a));
  }
  store::change chg;
  chg.sims.push_back({iccid, m.rec.imsis, m.rec.msisdn, m.rec.network, out.next, {}});
  auto net = m.network;
  out.changed = false; // the sims upsert carries the state
  begin_write(self, std::move(out), at, std::move(chg),
              [self, created, imsis = m.rec.imsis, done = std::move(m.done)](bool ok, bool refused,
                                                                             const auto&) {
                write_result r;
                if (!ok) {
                  r.error = refused ? ec::overloaded : ec::store_failed;
                  r.reason = "the SIM could not be stored, retry later";
                  done(std::move(r));
                  return;
                }
                auto& st = self->state;
                st.ctx->inv->set_imsis(st.id, imsis);
                st.stored = true;
                if (created)
                  st.ctx->metrics->added(st.st);
                r.created = created;
                done(std::move(r));
              });
  s.w->next_network = net;
}

void handle_outcome(sim_pointer self, sim_order_outcome&& m) {
  auto& s = self->state;
  auto* ctx = s.ctx;
  auto at = m.o.finished_at_ms != 0 ? m.o.finished_at_ms : ctx->clock();
  lock::event ev;
  if (m.o.status == orders::order_status::completed)
    ev = lock::order_completed{m.o.id};
  else
    ev = lock::order_failed{m.o.id, m.o.failure_reason};
  auto out = lock::apply(ctx->inv->policy(s.network), s.st, ev, at);
  store::change chg;
  chg.orders.push_back(m.o); // closed in the same transaction as the state
  // Every audit goes into the change, also the one (changed == false) the
  // machine returns for an outcome that matches no order in flight.
  begin_write(self, std::move(out), at, std::move(chg), [](bool, bool, const auto&) {});
  if (!m.o.imsis.empty())
    s.w->imsi = m.o.imsis.front();
}

void process(sim_pointer self, sim_work&& w) {
  std::visit(
      [&](auto&& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, sim_observation>)
          handle_observation(self, std::forward<decltype(m)>(m));
        else if constexpr (std::is_same_v<T, sim_order>)
          handle_order(self, std::forward<decltype(m)>(m));
        else if constexpr (std::is_same_v<T, sim_upsert_msg>)
          handle_upsert(self, std::forward<decltype(m)>(m));
        else
          handle_outcome(self, std::forward<decltype(m)>(m));
      },
      std::move(w));
}

/// Runs `w` now, or queues it behind the write in flight (shedding when the
/// queue is full; order outcomes are never shed: they are durable elsewhere
/// and must close their order).
void enqueue(sim_pointer self, sim_work&& w) {
  auto& s = self->state;
  ++s.received;
  if (!s.writing()) {
    process(self, std::move(w));
    drain(self);
    return;
  }
  if (s.queue.size() >= s.ctx->cfg.max_queued_per_sim) {
    if (auto* o = std::get_if<sim_observation>(&w)) {
      o->done(ack::overloaded);
      return;
    }
    if (auto* p = std::get_if<sim_order>(&w)) {
      p->done(refusal(ec::overloaded, "too many changes pending for this SIM"));
      return;
    }
    if (auto* u = std::get_if<sim_upsert_msg>(&w)) {
      u->done(refusal(ec::overloaded, "too many changes pending for this SIM"));
      return;
    }
  }
  // Decided against a state that the write in flight is about to change
  // (the shard forwards decisions only to idle actors: defensive).
  if (auto* o = std::get_if<sim_observation>(&w))
    o->decided.reset();
  s.queue.push_back(std::move(w));
}

/// Runs a SIM actor handler; an exception that escapes it is counted and the
/// actor stays usable: a write that never reached the store is forgotten (the
/// committed state stays, its caller is not answered: the peer retries, the
/// API times out) and the queue is worked on.
template <class F>
void guard_sim(sim_pointer self, F&& fn) {
  try {
    fn();
  } catch (...) {
    report_current_exception(fault_site::sim_actor);
    auto& s = self->state;
    if (s.w && !s.w->submitted)
      s.w.reset();
    guarded(fault_site::sim_actor, [&] { drain(self); });
  }
}

sim_actor::behavior_type sim_behavior(sim_pointer self, layer_context* ctx, sim_id id,
                                      compact_row row) {
  auto& s = self->state;
  s.ctx = ctx;
  s.id = id;
  s.network = row.network;
  s.st = row.state;
  s.stored = row.stored;
  self->set_exception_handler(last_resort<fault_site::sim_actor>);
  return {
      [self](sim_work& w) { guard_sim(self, [&] { enqueue(self, std::move(w)); }); },
      [self](commit_atom, bool ok) { guard_sim(self, [&] { on_commit(self, ok); }); },
      [self](stop_atom) {
        guarded(fault_site::sim_actor, [&] { fail_pending(self); });
        self->quit();
      },
  };
}

} // namespace

sim_actor spawn_sim_actor(caf::local_actor& parent, layer_context* ctx, sim_id id,
                          compact_row row) {
  return count_running(ctx, parent.spawn<caf::lazy_init>(sim_behavior, ctx, id, row));
}

} // namespace imeilock::actors
