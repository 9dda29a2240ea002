// The order actor: a thin CAF shell over orders::scheduler (DESIGN §3).
// It owns time for every order of this node with ONE outstanding timer at a
// time (CAF 0.17 timeouts are never cancelled, TOOLCHAIN pitfall 4), calls
// the provisioning backends, persists lifecycle changes (submitted, retry)
// and hands completions and failures to the SIM through the registry, which
// persists the final order state together with the SIM's new state.

#include "actors/context.hpp"

#include "common/fault.hpp"
#include "common/log.hpp"
#include "orders/backend.hpp"
#include "orders/scheduler.hpp"
#include "orders/webhook.hpp"

#include <caf/actor_system.hpp>
#include <caf/error.hpp>
#include <caf/sec.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <algorithm>
#include <map>
#include <optional>

namespace imeilock::actors {

namespace {

struct order_state {
  static inline const char* name = "imeilock.orders";

  layer_context* ctx = nullptr;
  std::unique_ptr<orders::scheduler> sched;
  std::map<std::string, std::unique_ptr<orders::provisioning_backend>, std::less<>> backends;
  /// Due time of the earliest timer outstanding, if any.
  std::optional<std::int64_t> armed;
};

using order_pointer = order_actor::stateful_pointer<order_state>;

log::rate_limiter order_log_limiter{10, std::chrono::seconds{10}};

/// The backend of `network`, built on first use; ec::backend_failed when it
/// cannot be built (token file, TLS files), tried again on the next use.
expected<orders::provisioning_backend*> backend_for(order_pointer self,
                                                    const std::string& network) {
  auto& s = self->state;
  auto it = s.backends.find(network);
  if (it == s.backends.end()) {
    const auto& cfg = s.sched->config().network(network).backend;
    std::unique_ptr<orders::provisioning_backend> b;
    if (s.ctx->io != nullptr) {
      auto made =
          orders::make_backend(cfg, *s.ctx->io, s.sched->config().seed + s.backends.size() + 1);
      if (!made)
        return std::move(made.error());
      b = std::move(*made);
    } else {
      b = std::make_unique<orders::simulated_backend>(cfg, s.sched->config().seed + 1);
    }
    log::info("orders.backend", {{"network", network}, {"backend", b->describe()}});
    it = s.backends.emplace(network, std::move(b)).first;
  }
  return it->second.get();
}

void persist(order_pointer self, const orders::order& o) {
  auto* ctx = self->state.ctx;
  store::change chg;
  chg.orders.push_back(o);
  // More than one node: written under the lease of the SIM's shard; a shard
  // no longer served here is the new owner's to write (it resumed the order).
  if (!stamp_claim(ctx, chg, ctx->inv->lowest_imsi(ctx->inv->by_iccid(o.iccid))))
    return;
  if (!ctx->db->submit(std::move(chg), nullptr))
    ctx->metrics->store_refused->Increment();
}

void carry_out(order_pointer self, orders::action& a) {
  auto* ctx = self->state.ctx;
  using kind = orders::action::kind;
  switch (a.what) {
    case kind::send: {
      if (a.o.imsis.empty()) // the webhook body names them: the index has them
        a.o.imsis = ctx->inv->imsis(ctx->inv->by_iccid(a.o.iccid));
      auto hdl = caf::actor_cast<order_actor>(self);
      auto id = a.o.id;
      auto backend = backend_for(self, a.o.network);
      if (!backend) {
        // A backend that cannot even be built (bad URL, token file) is a
        // failed submission: retried, then failed visibly.
        self->send(self, backend_answer{id, false, backend.error().message()});
        break;
      }
      (*backend)->submit(a.o, [hdl, id](orders::submit_result r) {
        caf::anon_send(hdl, backend_answer{id, r.accepted, std::move(r.reason)});
      });
      break;
    }
    case kind::submitted:
      ctx->metrics->order_state(a.o.type, "submitted");
      persist(self, a.o);
      break;
    case kind::retry:
      ctx->metrics->order_state(a.o.type, "retry");
      log::write_limited(order_log_limiter, log::level::warning, "orders.retry",
                         {{"order", a.o.id},
                          {"network", a.o.network},
                          {"reason", a.o.failure_reason},
                          {"attempts", a.o.attempts}});
      persist(self, a.o);
      break;
    case kind::completed:
    case kind::failed: {
      bool done = a.what == kind::completed;
      ctx->metrics->order_state(a.o.type, done ? "completed" : "failed");
      if (done && a.o.finished_at_ms >= a.o.created_at_ms)
        ctx->metrics->lead_time_seconds->Observe(
            static_cast<double>(a.o.finished_at_ms - a.o.created_at_ms) / 1000.0);
      if (!done)
        log::write_limited(
            order_log_limiter, log::level::warning, "orders.failed",
            {{"order", a.o.id}, {"iccid", a.o.iccid}, {"reason", a.o.failure_reason}});
      auto sim = ctx->inv->by_iccid(a.o.iccid);
      if (sim == no_sim)
        persist(self, a.o); // the SIM is gone: close the order on its own
      else
        self->send(ctx->shard_of(sim), counted(*ctx, sim_order_outcome{sim, std::move(a.o)}));
      break;
    }
  }
}

/// Carries out everything due, then keeps exactly one timer for the next
/// wake-up unless one already fires at or before it.
void step(order_pointer self) {
  auto& s = self->state;
  auto now = s.ctx->clock();
  for (auto& a : s.sched->poll(now))
    carry_out(self, a);
  for (auto& [network, st] : s.sched->all_stats())
    s.ctx->metrics->order_queue(network, static_cast<double>(st.depth()),
                                static_cast<double>(st.in_flight()),
                                static_cast<double>(s.sched->config().network(network).max_queue));
  auto next = s.sched->next_wakeup(now);
  if (!next || (s.armed && *s.armed <= *next))
    return;
  s.armed = *next;
  self->delayed_send(self, std::chrono::milliseconds{std::max<std::int64_t>(0, *next - now)},
                     tick_atom::value, *next);
}

/// An order row the scheduler can work on: every enum a known value (a
/// corrupted or hand-edited store must not reach lead_time_for()).
bool usable(const orders::order& o) {
  return o.type != lock::order_type::none && lock::to_string(o.type) != "unknown" &&
         lock::to_string(o.reason) != "unknown" && lock::to_string(o.mode) != "unknown" &&
         (o.status == orders::order_status::queued || o.status == orders::order_status::submitted);
}

/// CAF's last resort (see registry.cpp): counts; the handlers guard themselves.
caf::error last_resort(caf::scheduled_actor*, std::exception_ptr& e) {
  report_fault(fault_site::order_actor, describe(e));
  return caf::make_error(caf::sec::runtime_error);
}

order_actor::behavior_type order_behavior(order_pointer self, layer_context* ctx) {
  self->state.ctx = ctx;
  self->state.sched = std::make_unique<orders::scheduler>(ctx->orders_cfg);
  self->set_exception_handler(last_resort);
  return {
      guard(fault_site::order_actor,
            [self](new_order& m) {
              auto& s = self->state;
              auto now = s.ctx->clock();
              auto rc = s.sched->add(m.o, now);
              if (rc == ec::overloaded) {
                // The order is durable already: it is never dropped, only late.
                rc = s.sched->restore(m.o, now);
                log::write_limited(order_log_limiter, log::level::warning, "orders.queue_full",
                                   {{"network", m.o.network}, {"order", m.o.id}});
              }
              if (rc != ec::ok && rc != ec::conflict)
                log::error("orders.refused", {{"order", m.o.id}, {"error", to_string(rc)}});
              s.ctx->metrics->order_state(m.o.type, "queued");
              step(self);
            }),
      guard(fault_site::order_actor,
            [self](backend_answer& m) {
              auto& s = self->state;
              auto now = s.ctx->clock();
              auto a = m.accepted ? s.sched->on_submitted(m.id, now)
                                  : s.sched->on_submit_failed(m.id, m.reason, now);
              if (a)
                carry_out(self, *a);
              step(self);
            }),
      guard(fault_site::order_actor,
            [self](tick_atom, std::int64_t due) {
              auto& s = self->state;
              if (s.armed && *s.armed == due)
                s.armed.reset();
              step(self);
            }),
      guard(fault_site::order_actor,
            [self](orders_resume& m) {
              auto& s = self->state;
              auto now = s.ctx->clock();
              std::size_t n = 0;
              std::size_t skipped = 0;
              for (auto& o : m.open) {
                if (!usable(o)) { // kept in the store for an operator to look at
                  if (++skipped <= 10)
                    log::error("orders.row_skipped",
                               {{"order", o.id},
                                {"iccid", o.iccid},
                                {"reason", "an unknown type, reason, mode or status"}});
                  continue;
                }
                o.imsis = s.ctx->inv->imsis(s.ctx->inv->by_iccid(o.iccid));
                if (s.sched->restore(std::move(o), now) == ec::ok)
                  ++n;
              }
              if (n > 0)
                log::notice("orders.resumed", {{"orders", n}});
              step(self);
            }),
      guard(fault_site::order_actor,
            [self](orders_reload& m) {
              auto& s = self->state;
              // Backends whose settings changed are dropped here and rebuilt from the
              // new settings on their next submission (backend_for). Safe with
              // submissions in flight: a webhook request owns copies of what it
              // needs, and its answer comes back by order id.
              std::vector<std::string> rebuilt;
              for (auto it = s.backends.begin(); it != s.backends.end();) {
                if (s.sched->config().network(it->first).backend !=
                    m.cfg.network(it->first).backend) {
                  rebuilt.push_back(it->first);
                  it = s.backends.erase(it);
                } else {
                  ++it;
                }
              }
              s.sched->reconfigure(std::move(m.cfg), s.ctx->clock());
              for (auto& network : rebuilt)
                log::notice("orders.backend_changed", {{"network", network}});
              log::notice("orders.reloaded", {{"open_orders", s.sched->size()}});
              // New lead times or rates may bring the next wake-up forward: step()
              // arms one timer for it unless one already fires at or before it.
              step(self);
            }),
      guard(fault_site::order_actor,
            [self](orders_drop& m) {
              auto& s = self->state;
              auto n = s.sched->forget_if([&](const orders::order& o) {
                return std::binary_search(m.iccids.begin(), m.iccids.end(), o.iccid);
              });
              if (n > 0)
                log::notice("orders.handed_over", {{"orders", n}});
              step(self);
            }),
      [self](stop_atom) { self->quit(); },
  };
}

} // namespace

order_actor spawn_order_actor(caf::actor_system& sys, layer_context* ctx) {
  return count_running(ctx, sys.spawn(order_behavior, ctx));
}

} // namespace imeilock::actors
