#include "actors/cluster_jobs.hpp"

#include "common/fields.hpp"
#include "common/log.hpp"
#include "store/store.hpp"

#include <algorithm>
#include <map>
#include <memory>

namespace imeilock::actors {

namespace {

constexpr int running_state = static_cast<int>(job_state::running);

/// A job's filter as the store's columns hold it.
cluster::job_filter filter_of(const sim_filter& f) {
  cluster::job_filter out;
  if (f.lock)
    out.lock = fields::to_integer(*f.lock);
  if (f.bar)
    out.bar = fields::to_integer(*f.bar);
  out.network = f.network;
  out.alerted = f.alerted;
  return out;
}

/// A part's counters and refusals, as the runner keeps them while it runs.
struct part_state {
  cluster::job_part row;
  std::map<std::string, std::uint64_t> reasons;
  std::vector<job_refusal> first;

  void refuse(const std::string& iccid, const std::string& reason, std::size_t keep) {
    ++row.refused;
    ++row.processed;
    ++reasons[reason];
    if (first.size() < keep)
      first.push_back({iccid, reason});
  }
  void placed() {
    ++row.placed;
    ++row.processed;
  }
};

/// Why a SIM without an IMSI (or unknown) is refused on a cluster node.
constexpr const char* no_shard_reason = "the SIM has no IMSI: no cluster shard serves it";

} // namespace

cluster_job_runner::cluster_job_runner(store::store& db, sim_service& sims,
                                       cluster::job_store& parts, std::uint32_t shards,
                                       serving_fn serving, still_fn still, cluster_job_config cfg) :
    db_(db),
    sims_(sims),
    parts_(parts),
    shards_(shards),
    serving_(std::move(serving)),
    still_(std::move(still)),
    cfg_(cfg) {}

cluster_job_runner::~cluster_job_runner() {
  stop();
}

void cluster_job_runner::start() {
  std::lock_guard g{mtx_};
  if (started_)
    return;
  started_ = true;
  thread_ = std::thread([this] { run(); });
}

void cluster_job_runner::stop() {
  {
    std::lock_guard g{mtx_};
    if (stopping_)
      return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable())
    thread_.join();
}

void cluster_job_runner::poke() {
  {
    std::lock_guard g{mtx_};
    poked_ = true;
  }
  cv_.notify_all();
}

bool cluster_job_runner::stopping() {
  std::lock_guard g{mtx_};
  return stopping_;
}

bool cluster_job_runner::pause(std::chrono::milliseconds d) {
  std::unique_lock lk{mtx_};
  return !cv_.wait_for(lk, d, [this] { return stopping_; });
}

job_info cluster_job_runner::aggregate(const store::job_record& rec, bool with_orders) {
  auto parts = parts_.parts(rec.id);
  if (!parts)
    throw store::unavailable{parts.error().message()};
  store::job_record sum = rec;
  std::map<std::string, std::uint64_t> reasons;
  std::vector<job_refusal> first;
  std::size_t done = 0;
  std::int64_t finished = 0;
  for (const auto& p : *parts) {
    sum.processed += p.processed;
    sum.placed += p.placed;
    sum.refused += p.refused;
    sum.updated_at_ms = std::max(sum.updated_at_ms, p.updated_at_ms);
    finished = std::max(finished, p.finished_at_ms);
    if (p.done && p.shard < shards_)
      ++done;
    std::vector<job_refusal> theirs;
    job_runner::decode_refusals(p.refusals, reasons, theirs);
    for (auto& f : theirs)
      if (first.size() < cfg_.base.kept_refusals)
        first.push_back(std::move(f));
  }
  sum.refusals = job_runner::encode_refusals(reasons, first);
  // Every part done: completed, even before a runner has ended the job's row.
  if (sum.state == running_state && done == shards_) {
    sum.state = static_cast<int>(job_state::completed);
    sum.finished_at_ms = finished;
  }
  auto out = job_runner::info_of(sum);
  if (with_orders)
    job_runner::add_order_counts(db_, out);
  return out;
}

void cluster_job_runner::create_job(order_request order, job_selector selector,
                                    std::function<void(job_result)> done) {
  order.job_id = 0;
  const bool by_list = !selector.iccids.empty();
  auto& iccids = selector.iccids;
  if (by_list) {
    if (auto refusal = job_runner::normalize_list(iccids, cfg_.base.max_iccids)) {
      done({ec::invalid, std::move(*refusal), std::nullopt});
      return;
    }
  }
  {
    std::lock_guard g{mtx_};
    if (!started_ || stopping_) {
      done({ec::shutting_down, "the daemon is stopping", std::nullopt});
      return;
    }
  }
  const std::uint64_t total = by_list ? iccids.size() : db_.count_sims(selector.filter);
  const auto now = job_runner::wall_ms();
  const bool running = total > 0;
  cluster::new_job row;
  row.state = static_cast<int>(running ? job_state::running : job_state::completed);
  row.spec = job_runner::encode_spec(order, selector.filter, by_list);
  row.created_at_ms = now;
  row.finished_at_ms = running ? 0 : now;
  row.total = total;
  row.refusals = job_runner::encode_refusals({}, {});
  auto id = parts_.create(row, iccids);
  if (!id) {
    log::warning("jobs.create_failed", {{"error", id.error().message()}});
    done(
        {ec::store_failed, "the job could not be stored: nothing was placed, retry", std::nullopt});
    return;
  }
  store::job_record rec;
  rec.id = *id;
  rec.state = row.state;
  rec.spec = row.spec;
  rec.created_at_ms = now;
  rec.updated_at_ms = now;
  rec.finished_at_ms = row.finished_at_ms;
  rec.total = total;
  rec.refusals = row.refusals;
  auto info = job_runner::info_of(rec);
  log::notice("jobs.created",
              {{"job", *id}, {"type", lock::to_string(info.order.type)}, {"total", info.total}});
  if (running)
    poke();
  done({ec::ok, {}, std::move(info)});
}

void cluster_job_runner::get_job(std::uint64_t id,
                                 std::function<void(std::optional<job_info>)> done) {
  auto rec = db_.get_job(id);
  if (!rec) {
    done(std::nullopt);
    return;
  }
  done(aggregate(*rec, true));
}

void cluster_job_runner::list_jobs(bool running_only, std::size_t limit,
                                   std::function<void(std::vector<job_info>)> done) {
  auto recs = db_.list_jobs(running_only ? std::optional<int>{running_state} : std::nullopt, limit);
  std::vector<job_info> out;
  out.reserve(recs.size());
  for (const auto& r : recs) {
    auto info = aggregate(r, true);
    if (!running_only || info.state == job_state::running)
      out.push_back(std::move(info));
  }
  done(std::move(out));
}

void cluster_job_runner::cancel_job(std::uint64_t id, std::function<void(job_result)> done) {
  auto rec = db_.get_job(id);
  if (!rec) {
    done({ec::invalid, "no job with id " + std::to_string(id), std::nullopt});
    return;
  }
  auto finished = [&](const job_info& info) {
    done({ec::conflict,
          "job " + std::to_string(id) + " is " + std::string{to_string(info.state)} + " already",
          std::nullopt});
  };
  auto info = aggregate(*rec, false);
  if (info.state != job_state::running)
    return finished(info);
  auto ended = parts_.end(id, static_cast<int>(job_state::cancelled), job_runner::wall_ms());
  if (!ended) {
    log::warning("jobs.cancel_failed", {{"job", id}, {"error", ended.error().message()}});
    done({ec::store_failed, "the cancellation could not be stored: retry", std::nullopt});
    return;
  }
  // Whoever ended the row first decided: a cancel, or a runner completing it.
  if (auto now = db_.get_job(id))
    info = aggregate(*now, false);
  if (!*ended || info.state != job_state::cancelled)
    return finished(info);
  log::notice("jobs.cancelled", {{"job", id}, {"placed", info.placed}});
  done({ec::ok, {}, std::move(info)});
}

void cluster_job_runner::run() {
  for (;;) {
    bool worked = false;
    try {
      worked = round();
    } catch (const std::exception& e) {
      // A store read failed (a PostgreSQL outage): the jobs stay running and
      // are taken up again at the next round.
      log::warning("jobs.store_read_failed", {{"error", e.what()}});
    }
    std::unique_lock lk{mtx_};
    if (stopping_)
      return;
    if (!worked)
      cv_.wait_for(lk, cfg_.poll, [this] { return stopping_ || poked_; });
    poked_ = false;
    if (stopping_)
      return;
  }
}

bool cluster_job_runner::round() {
  auto recs = db_.list_jobs(running_state, cfg_.base.max_iccids);
  bool worked = false;
  // list_jobs is newest first: the oldest first.
  for (auto it = recs.rbegin(); it != recs.rend(); ++it) {
    const auto& rec = *it;
    if (stopping())
      return worked;
    auto spec = job_runner::decode_spec(rec.spec);
    if (!spec) {
      log::error("jobs.unreadable",
                 {{"job", rec.id}, {"action", "the job is ended, nothing placed"}});
      (void)parts_.end(rec.id, static_cast<int>(job_state::completed), job_runner::wall_ms());
      continue;
    }
    auto parts = parts_.parts(rec.id);
    if (!parts) {
      log::warning("jobs.store_read_failed", {{"job", rec.id}, {"error", parts.error().message()}});
      return worked;
    }
    for (auto [shard, epoch] : serving_()) {
      auto part = std::find_if(parts->begin(), parts->end(),
                               [shard = shard](const auto& p) { return p.shard == shard; });
      cluster::job_part row;
      if (part != parts->end()) {
        if (part->done)
          continue;
        row = *part;
      } else {
        row.job_id = rec.id;
        row.shard = shard;
      }
      auto end = run_part(rec, *spec, std::move(row), epoch);
      // A part that failed (the database) or whose shard just moved is
      // looked at again after the poll interval, not at once.
      if (end != part_end::failed && end != part_end::lost)
        worked = true;
      if (end == part_end::cancelled || end == part_end::stopping)
        break;
    }
    complete_if_done(rec);
  }
  return worked;
}

void cluster_job_runner::complete_if_done(const store::job_record& rec) {
  auto parts = parts_.parts(rec.id);
  if (!parts)
    return;
  std::size_t done = 0;
  std::int64_t finished = 0;
  std::uint64_t placed = 0;
  std::uint64_t refused = 0;
  for (const auto& p : *parts)
    if (p.done && p.shard < shards_) {
      ++done;
      finished = std::max(finished, p.finished_at_ms);
      placed += p.placed;
      refused += p.refused;
    }
  if (done != shards_)
    return;
  if (auto ended = parts_.end(rec.id, static_cast<int>(job_state::completed), finished);
      ended && *ended)
    log::notice("jobs.completed", {{"job", rec.id}, {"placed", placed}, {"refused", refused}});
}

cluster_job_runner::part_end cluster_job_runner::run_part(const store::job_record& rec,
                                                          const job_info& spec,
                                                          cluster::job_part row,
                                                          std::int64_t epoch) {
  const auto id = rec.id;
  const auto shard = row.shard;
  part_state st;
  st.row = std::move(row);
  job_runner::decode_refusals(st.row.refusals, st.reasons, st.first);
  order_request order = spec.order;
  order.job_id = id;
  const auto bounds = cluster::suffix_range(shard, shards_);
  const auto filter = filter_of(spec.filter);

  // Writes the part (fenced by the shard's lease): false when it cannot.
  auto save = [&]() -> std::optional<part_end> {
    st.row.refusals = job_runner::encode_refusals(st.reasons, st.first);
    st.row.updated_at_ms = job_runner::wall_ms();
    auto saved = parts_.save(st.row, epoch);
    if (saved)
      return std::nullopt;
    if (saved.error().is(cluster::ec::fenced)) {
      log::notice("jobs.part_lost", {{"job", id}, {"shard", shard}});
      return part_end::lost;
    }
    log::warning("jobs.part_not_saved",
                 {{"job", id}, {"shard", shard}, {"error", saved.error().message()}});
    return part_end::failed;
  };
  auto cancelled = [&] {
    auto now = db_.get_job(id);
    return !now || now->state != running_state;
  };

  struct gather {
    std::mutex mtx;
    std::condition_variable cv;
    std::size_t waiting = 0;
  };

  // The first page after the part's cursor may hold SIMs the part's last run
  // placed orders for (a node that died, or lost the shard, after its orders
  // committed and before its page was written); later pages were not begun.
  bool verify = true;
  for (;;) {
    // Pace: the job's orders still queued or submitted stay under the bound.
    for (;;) {
      if (stopping())
        return part_end::stopping;
      if (!still_(shard, epoch))
        return part_end::lost;
      if (cancelled())
        return part_end::cancelled;
      if (db_.job_orders(id).open < cfg_.base.max_open_orders)
        break;
      if (!pause(cfg_.base.pause))
        return part_end::stopping;
    }
    auto page =
        spec.by_list
            ? parts_.sims_by_list(id, bounds, shard == 0, st.row.after_iccid, cfg_.base.page)
            : parts_.sims_by_filter(filter, bounds, shard == 0, st.row.after_iccid, cfg_.base.page);
    if (!page) {
      log::warning("jobs.store_read_failed",
                   {{"job", id}, {"shard", shard}, {"error", page.error().message()}});
      return part_end::failed;
    }
    if (page->empty()) {
      st.row.done = true;
      st.row.finished_at_ms = job_runner::wall_ms();
      if (auto end = save())
        return *end;
      return part_end::done;
    }

    for (std::size_t from = 0; from < page->size(); from += cfg_.base.window) {
      struct slot {
        const cluster::job_sim* sim;
        std::uint32_t tries = 0;
        bool done = false;
      };
      std::vector<slot> slots;
      for (std::size_t i = from; i < std::min(page->size(), from + cfg_.base.window); ++i)
        slots.push_back({&(*page)[i]});
      for (;;) {
        std::vector<std::size_t> sent;
        for (std::size_t i = 0; i < slots.size(); ++i) {
          auto& s = slots[i];
          if (s.done)
            continue;
          // On the first page, or after a write that may have committed: the
          // order the job has for this SIM counts as placed, none is added
          // (a second one could not commit: one job_orders row per job and SIM).
          if ((verify || s.tries > 0) && db_.job_placed(id, s.sim->iccid)) {
            st.placed();
            s.done = true;
            continue;
          }
          ++s.tries;
          sent.push_back(i);
        }
        if (sent.empty())
          break;
        auto g = std::make_shared<gather>();
        g->waiting = sent.size();
        auto results = std::make_shared<std::vector<write_result>>(slots.size());
        for (auto i : sent)
          sims_.place_order(slots[i].sim->iccid, order, [g, results, i](write_result r) {
            std::lock_guard lk{g->mtx};
            (*results)[i] = std::move(r);
            if (--g->waiting == 0)
              g->cv.notify_all();
          });
        {
          std::unique_lock lk{g->mtx};
          g->cv.wait(lk, [&] { return g->waiting == 0; });
        }
        bool retry = false;
        for (auto i : sent) {
          auto& s = slots[i];
          auto& r = (*results)[i];
          switch (r.error) {
            case ec::ok:
              st.placed();
              s.done = true;
              break;
            case ec::unknown_sim:
            case ec::conflict:
            case ec::invalid:
            case ec::backend_failed:
              st.refuse(s.sim->iccid, job_runner::reason_of(r), cfg_.base.kept_refusals);
              s.done = true;
              break;
            case ec::shutting_down:
              return part_end::stopping; // the page is done again by the shard's owner
            case ec::overloaded:
            case ec::store_failed:
              if (r.elsewhere || !still_(shard, epoch))
                return part_end::lost; // the shard moved: its new owner goes on
              if (s.sim->home_suffix < 0) {
                st.refuse(s.sim->iccid, no_shard_reason, cfg_.base.kept_refusals);
                s.done = true;
              } else if (s.tries >= cfg_.base.max_tries) {
                st.refuse(s.sim->iccid, job_runner::reason_of(r), cfg_.base.kept_refusals);
                s.done = true;
              } else {
                retry = true;
              }
              break;
          }
        }
        if (!retry)
          break;
        if (!pause(cfg_.base.pause))
          return part_end::stopping;
      }
      if (cancelled()) {
        st.row.after_iccid = slots.back().sim->iccid;
        if (auto end = save())
          return *end;
        return part_end::cancelled;
      }
      if (stopping())
        return part_end::stopping; // as a kill would: the page is checked and done again
    }
    st.row.after_iccid = page->back().iccid;
    if (auto end = save())
      return *end;
    verify = false;
  }
}

} // namespace imeilock::actors
