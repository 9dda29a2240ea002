#include "actors/jobs.hpp"

#include "common/log.hpp"
#include "store/store.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <future>
#include <map>

namespace imeilock::actors {

using nlohmann::json;

namespace {

/// What a job does with the SIM layer's answer to one of its orders.
enum class verdict : std::uint8_t {
  placed,  ///< accepted: the order is placed (or took effect at once)
  refused, ///< the rules or the inventory refused it: counted with the reason
  retry,   ///< overloaded or not stored: try this SIM again shortly
  stop,    ///< the SIM layer is stopping: leave the page for the next start
};

verdict judge(ec e) {
  switch (e) {
    case ec::ok:
      return verdict::placed;
    case ec::overloaded:
    case ec::store_failed:
      return verdict::retry;
    case ec::shutting_down:
      return verdict::stop;
    case ec::unknown_sim:
    case ec::conflict:
    case ec::invalid:
    case ec::backend_failed:
      break;
  }
  return verdict::refused;
}

/// A sim_filter as JSON and back (the spec column).
json filter_json(const sim_filter& f) {
  json j = json::object();
  if (f.lock)
    j["lock_state"] = lock::to_string(*f.lock);
  if (f.bar)
    j["bar_state"] = lock::to_string(*f.bar);
  if (f.network)
    j["network"] = *f.network;
  if (f.alerted)
    j["alerted"] = *f.alerted;
  return j;
}

bool read_filter(const json& j, sim_filter& f) {
  if (!j.is_object())
    return false;
  for (const auto& [key, v] : j.items()) {
    if (key == "lock_state" && v.is_string()) {
      lock::lock_state s{};
      if (!lock::parse(v.get<std::string>(), s))
        return false;
      f.lock = s;
    } else if (key == "bar_state" && v.is_string()) {
      lock::bar_state s{};
      if (!lock::parse(v.get<std::string>(), s))
        return false;
      f.bar = s;
    } else if (key == "network" && v.is_string()) {
      f.network = v.get<std::string>();
    } else if (key == "alerted" && v.is_boolean()) {
      f.alerted = v.get<bool>();
    } else {
      return false;
    }
  }
  return true;
}

} // namespace

/// The job being run: its record (the live counts) and its refusals. Guarded
/// by job_runner::mtx_.
struct job_runner::active {
  store::job_record rec;
  std::map<std::string, std::uint64_t> reasons;
  std::vector<job_refusal> refusals;
  bool cancelled = false;

  /// The record with the refusals encoded, as written to the store.
  store::job_record snapshot() const {
    auto r = rec;
    r.refusals = encode_refusals(reasons, refusals);
    return r;
  }

  void refuse(const std::string& iccid, const std::string& reason, std::size_t keep) {
    ++rec.refused;
    ++rec.processed;
    ++reasons[reason];
    if (refusals.size() < keep)
      refusals.push_back({iccid, reason});
  }
};

std::string job_runner::encode_refusals(const std::map<std::string, std::uint64_t>& reasons,
                                        const std::vector<job_refusal>& first) {
  json reasons_j = json::object();
  for (const auto& [reason, n] : reasons)
    reasons_j[reason] = n;
  json first_j = json::array();
  for (const auto& f : first)
    first_j.push_back({{"iccid", f.iccid}, {"reason", f.reason}});
  return json{{"reasons", std::move(reasons_j)}, {"first", std::move(first_j)}}.dump(
      -1, ' ', false, json::error_handler_t::replace);
}

void job_runner::decode_refusals(const std::string& text,
                                 std::map<std::string, std::uint64_t>& reasons,
                                 std::vector<job_refusal>& first) {
  auto j = json::parse(text, nullptr, false);
  if (!j.is_object())
    return;
  if (auto it = j.find("reasons"); it != j.end() && it->is_object())
    for (const auto& [reason, n] : it->items())
      if (n.is_number_unsigned())
        reasons[reason] = n.get<std::uint64_t>();
  if (auto it = j.find("first"); it != j.end() && it->is_array())
    for (const auto& f : *it)
      if (f.is_object() && f.value("iccid", json()).is_string() &&
          f.value("reason", json()).is_string())
        first.push_back({f["iccid"].get<std::string>(), f["reason"].get<std::string>()});
}

namespace {

/// Reads a job's refusals column (an unreadable one reads as none).
void read_refusals(const std::string& text, std::map<std::string, std::uint64_t>& reasons,
                   std::vector<job_refusal>& first) {
  job_runner::decode_refusals(text, reasons, first);
}

} // namespace

job_runner::job_runner(store::store& db, sim_service& sims, job_runner_config cfg) :
    db_(db), sims_(sims), cfg_(cfg) {}

job_runner::~job_runner() {
  stop();
}

void job_runner::start() {
  auto last = db_.max_job_id();
  auto running = db_.list_jobs(static_cast<int>(job_state::running), cfg_.max_iccids);
  std::lock_guard g{mtx_};
  if (started_)
    return;
  started_ = true;
  next_id_ = last + 1;
  // list_jobs is newest first: run the oldest first.
  for (auto it = running.rbegin(); it != running.rend(); ++it) {
    queue_.push_back(it->id);
    resumed_.push_back(it->id);
  }
  if (!running.empty())
    log::notice("jobs.resumed", {{"jobs", static_cast<std::uint64_t>(running.size())},
                                 {"first", running.back().id}});
  thread_ = std::thread([this] { run(); });
}

void job_runner::stop() {
  {
    std::lock_guard g{mtx_};
    if (stopping_)
      return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable())
    thread_.join();
  // Callbacks of changes in the writer's queue capture this runner.
  db_.flush();
}

std::string job_runner::encode_spec(const order_request& order, const sim_filter& filter,
                                    bool by_list) {
  json j{{"type", lock::to_string(order.type)}};
  if (order.mode != lock::unbar_mode::none)
    j["unbar_mode"] = lock::to_string(order.mode);
  if (order.type == lock::order_type::activate)
    j["enable_imei_lock"] = order.with_lock;
  if (order.scope != lock::lock_scope::imei)
    j["lock_scope"] = lock::to_string(order.scope);
  if (by_list)
    j["by_list"] = true;
  else
    j["filter"] = filter_json(filter);
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<job_info> job_runner::decode_spec(const std::string& spec) {
  auto j = json::parse(spec, nullptr, false);
  if (!j.is_object() || !j.value("type", json()).is_string())
    return std::nullopt;
  job_info out;
  if (!lock::parse(j["type"].get<std::string>(), out.order.type) ||
      out.order.type == lock::order_type::none)
    return std::nullopt;
  if (auto it = j.find("unbar_mode"); it != j.end())
    if (!it->is_string() || !lock::parse(it->get<std::string>(), out.order.mode))
      return std::nullopt;
  if (auto it = j.find("enable_imei_lock"); it != j.end()) {
    if (!it->is_boolean())
      return std::nullopt;
    out.order.with_lock = it->get<bool>();
  }
  if (auto it = j.find("lock_scope"); it != j.end())
    if (!it->is_string() || !lock::parse(it->get<std::string>(), out.order.scope))
      return std::nullopt;
  out.by_list = j.value("by_list", false);
  if (!out.by_list && !read_filter(j.value("filter", json::object()), out.filter))
    return std::nullopt;
  return out;
}

job_info job_runner::info_of(const store::job_record& rec) {
  job_info out = decode_spec(rec.spec).value_or(job_info{});
  out.id = rec.id;
  out.state = static_cast<job_state>(rec.state);
  out.created_at_ms = rec.created_at_ms;
  out.updated_at_ms = rec.updated_at_ms;
  out.finished_at_ms = rec.finished_at_ms;
  out.total = rec.total;
  out.processed = rec.processed;
  out.placed = rec.placed;
  out.refused = rec.refused;
  std::map<std::string, std::uint64_t> reasons;
  read_refusals(rec.refusals, reasons, out.refusals);
  out.reasons.assign(reasons.begin(), reasons.end());
  std::stable_sort(out.reasons.begin(), out.reasons.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  return out;
}

job_info job_runner::info_of(const store::job_record& rec, bool with_orders) {
  auto out = info_of(rec);
  if (with_orders)
    add_order_counts(db_, out);
  return out;
}

std::optional<std::string> job_runner::normalize_list(std::vector<std::string>& iccids,
                                                      std::size_t max) {
  std::sort(iccids.begin(), iccids.end());
  iccids.erase(std::unique(iccids.begin(), iccids.end()), iccids.end());
  if (iccids.size() > max)
    return "a job by list takes at most " + std::to_string(max) + " ICCIDs, not " +
           std::to_string(iccids.size()) + ": split it";
  return std::nullopt;
}

void job_runner::add_order_counts(store::store& db, job_info& info) {
  auto counts = db.job_orders(info.id);
  info.orders_open = counts.open;
  info.orders_completed = counts.completed;
  info.orders_failed = counts.failed;
}

std::string job_runner::reason_of(const write_result& r) {
  return r.reason.empty() ? std::string{to_string(r.error)} : r.reason;
}

std::int64_t job_runner::wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void job_runner::create_job(order_request order, job_selector selector,
                            std::function<void(job_result)> done) {
  order.job_id = 0;
  const bool by_list = !selector.iccids.empty();
  auto& iccids = selector.iccids;
  if (by_list) {
    if (auto refusal = normalize_list(iccids, cfg_.max_iccids)) {
      done({ec::invalid, std::move(*refusal), std::nullopt});
      return;
    }
  }
  const std::uint64_t total = by_list ? iccids.size() : db_.count_sims(selector.filter);
  const auto now = wall_ms();
  store::job_record rec;
  {
    std::lock_guard g{mtx_};
    if (!started_ || stopping_) {
      done({ec::shutting_down, "the daemon is stopping", std::nullopt});
      return;
    }
    rec.id = next_id_++;
  }
  const bool running = total > 0;
  rec.state = static_cast<int>(running ? job_state::running : job_state::completed);
  rec.spec = encode_spec(order, selector.filter, by_list);
  rec.created_at_ms = now;
  rec.updated_at_ms = now;
  rec.finished_at_ms = running ? 0 : now;
  rec.total = total;
  rec.refusals = active{}.snapshot().refusals;
  store::change chg;
  chg.job_iccids.reserve(iccids.size());
  for (auto& iccid : iccids)
    chg.job_iccids.push_back({rec.id, std::move(iccid)});
  chg.new_jobs.push_back(rec);
  auto info = info_of(rec, false);
  db_.submit(std::move(chg), [this, id = rec.id, running, info = std::move(info),
                              done = std::move(done)](bool ok) mutable {
    if (!ok) {
      done({ec::store_failed, "the job could not be stored: nothing was placed, retry",
            std::nullopt});
      return;
    }
    if (running) {
      std::lock_guard g{mtx_};
      queue_.push_back(id);
      cv_.notify_all();
    }
    log::notice("jobs.created",
                {{"job", id}, {"type", lock::to_string(info.order.type)}, {"total", info.total}});
    done({ec::ok, {}, std::move(info)});
  });
}

void job_runner::get_job(std::uint64_t id, std::function<void(std::optional<job_info>)> done) {
  std::optional<store::job_record> rec;
  {
    std::lock_guard g{mtx_};
    if (current_ && current_->rec.id == id)
      rec = current_->snapshot();
  }
  if (!rec)
    rec = db_.get_job(id);
  if (!rec) {
    done(std::nullopt);
    return;
  }
  done(info_of(*rec, true));
}

void job_runner::list_jobs(bool running_only, std::size_t limit,
                           std::function<void(std::vector<job_info>)> done) {
  auto recs = db_.list_jobs(running_only ? std::optional<int>{static_cast<int>(job_state::running)}
                                         : std::nullopt,
                            limit);
  {
    std::lock_guard g{mtx_};
    if (current_)
      for (auto& r : recs)
        if (r.id == current_->rec.id)
          r = current_->snapshot();
  }
  std::vector<job_info> out;
  out.reserve(recs.size());
  for (const auto& r : recs)
    out.push_back(info_of(r, true));
  done(std::move(out));
}

void job_runner::cancel_job(std::uint64_t id, std::function<void(job_result)> done) {
  auto now = wall_ms();
  // Takes `done` only when the cancellation is written (the refusals below answer it directly).
  auto answer = [this, &done](store::job_record rec) {
    auto info = info_of(rec, false);
    store::change chg;
    chg.job_updates.push_back(std::move(rec));
    db_.submit(std::move(chg), [info = std::move(info), done = std::move(done)](bool ok) mutable {
      if (!ok) {
        done({ec::store_failed, "the cancellation could not be stored: retry", std::nullopt});
        return;
      }
      log::notice("jobs.cancelled", {{"job", info.id}, {"placed", info.placed}});
      done({ec::ok, {}, std::move(info)});
    });
  };
  {
    std::lock_guard g{mtx_};
    if (current_ && current_->rec.id == id) {
      if (current_->cancelled || current_->rec.state != static_cast<int>(job_state::running)) {
        done({ec::conflict, "job " + std::to_string(id) + " has finished already", std::nullopt});
        return;
      }
      current_->cancelled = true;
      current_->rec.state = static_cast<int>(job_state::cancelled);
      current_->rec.finished_at_ms = now;
      current_->rec.updated_at_ms = now;
      // Submitted under the lock: the runner's later progress writes carry the state.
      answer(current_->snapshot());
      return;
    }
    if (auto it = std::find(queue_.begin(), queue_.end(), id); it != queue_.end())
      queue_.erase(it);
  }
  // Not being run (any more): its stored record is the whole truth.
  auto rec = db_.get_job(id);
  if (!rec) {
    done({ec::invalid, "no job with id " + std::to_string(id), std::nullopt});
    return;
  }
  if (rec->state != static_cast<int>(job_state::running)) {
    done({ec::conflict,
          "job " + std::to_string(id) + " is " +
              std::string{to_string(static_cast<job_state>(rec->state))} + " already",
          std::nullopt});
    return;
  }
  rec->state = static_cast<int>(job_state::cancelled);
  rec->finished_at_ms = now;
  rec->updated_at_ms = now;
  std::lock_guard g{mtx_};
  answer(std::move(*rec));
}

bool job_runner::write_progress() {
  // Waits for each write to commit: the next page starts only when this one
  // is durable, so a restart resumes exactly after it.
  for (;;) {
    std::promise<bool> committed;
    auto result = committed.get_future();
    {
      std::lock_guard g{mtx_};
      if (!current_)
        return false;
      auto snap = current_->snapshot();
      snap.updated_at_ms = wall_ms();
      store::change chg;
      chg.job_updates.push_back(std::move(snap));
      db_.submit(std::move(chg), [&committed](bool ok) { committed.set_value(ok); });
    }
    if (result.get())
      return true;
    std::unique_lock lk{mtx_};
    if (cv_.wait_for(lk, cfg_.pause * 10, [this] { return stopping_; }))
      return false;
  }
}

void job_runner::run() {
  for (;;) {
    std::uint64_t id = 0;
    bool resumed = false;
    {
      std::unique_lock lk{mtx_};
      cv_.wait(lk, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_)
        return;
      id = queue_.front();
      if (auto it = std::find(resumed_.begin(), resumed_.end(), id); it != resumed_.end()) {
        resumed_.erase(it);
        resumed = true;
      }
    }
    bool again = false;
    try {
      // Not finished: stopping, or the SIM layer is (the job stays running).
      again = !run_job(id, resumed);
    } catch (const std::exception& e) {
      // A store read failed (a PostgreSQL outage): the job stays running and
      // is taken up again, checking what it placed, after a pause.
      log::warning("jobs.store_read_failed", {{"job", id}, {"error", e.what()}});
      again = true;
    }
    std::unique_lock lk{mtx_};
    current_.reset();
    if (stopping_)
      return;
    if (again) {
      resumed_.push_back(id);
      if (cv_.wait_for(lk, cfg_.pause * 10, [this] { return stopping_; }))
        return;
      continue;
    }
    if (!queue_.empty() && queue_.front() == id)
      queue_.pop_front();
  }
}

bool job_runner::run_job(std::uint64_t id, bool resumed) {
  auto rec = db_.get_job(id);
  if (!rec || rec->state != static_cast<int>(job_state::running))
    return true;
  auto a = std::make_shared<active>();
  a->rec = *rec;
  read_refusals(rec->refusals, a->reasons, a->refusals);
  auto spec = decode_spec(rec->spec);
  {
    std::lock_guard g{mtx_};
    if (std::find(queue_.begin(), queue_.end(), id) == queue_.end())
      return true; // cancelled while it was read
    current_ = a;
  }
  if (!spec) {
    log::error("jobs.unreadable", {{"job", id}, {"action", "the job is ended, nothing placed"}});
    {
      std::lock_guard g{mtx_};
      a->rec.state = static_cast<int>(job_state::completed);
      a->rec.finished_at_ms = wall_ms();
    }
    return write_progress();
  }
  order_request order = spec->order;
  order.job_id = id;

  // A SIM's order: its outcome once the SIM layer answered.
  struct slot {
    std::string iccid;
    std::optional<write_result> result;
    std::uint32_t tries = 0;
    bool done = false;
  };
  struct gather {
    std::mutex mtx;
    std::condition_variable cv;
    std::size_t waiting = 0;
  };
  auto stopping = [this] {
    std::lock_guard g{mtx_};
    return stopping_;
  };
  auto cancelled = [this, &a] {
    std::lock_guard g{mtx_};
    return a->cancelled;
  };
  bool verify = resumed; // the first page after a restart may hold orders placed already

  for (;;) {
    // Pace: the job's orders still queued or submitted stay under the bound.
    for (;;) {
      if (stopping())
        return false;
      if (cancelled())
        return write_progress();
      if (db_.job_orders(id).open < cfg_.max_open_orders)
        break;
      std::unique_lock lk{mtx_};
      cv_.wait_for(lk, cfg_.pause, [this] { return stopping_; });
    }
    std::string after;
    {
      std::lock_guard g{mtx_};
      after = a->rec.after_iccid;
    }
    std::vector<std::string> page;
    if (spec->by_list) {
      page = db_.job_iccids(id, after, cfg_.page);
    } else {
      for (auto& s : db_.list_sims(spec->filter, after, cfg_.page))
        page.push_back(std::move(s.iccid));
    }
    if (page.empty()) {
      {
        std::lock_guard g{mtx_};
        a->rec.state = static_cast<int>(job_state::completed);
        a->rec.finished_at_ms = wall_ms();
      }
      log::notice("jobs.completed",
                  {{"job", id}, {"placed", a->rec.placed}, {"refused", a->rec.refused}});
      return write_progress();
    }

    for (std::size_t from = 0; from < page.size(); from += cfg_.window) {
      std::vector<slot> slots;
      for (std::size_t i = from; i < std::min(page.size(), from + cfg_.window); ++i)
        slots.push_back({page[i], std::nullopt, 0, false});
      // Until every SIM of the window is placed or refused.
      for (;;) {
        auto g = std::make_shared<gather>();
        std::vector<std::size_t> sent;
        for (std::size_t i = 0; i < slots.size(); ++i) {
          auto& s = slots[i];
          if (s.done)
            continue;
          // After a restart, or after a write that may have committed: the
          // order the job has for this SIM counts as placed, none is added.
          if ((verify || s.tries > 0) && db_.job_placed(id, s.iccid)) {
            write_result r;
            s.result = r;
            s.done = true;
            std::lock_guard lk{mtx_};
            ++a->rec.placed;
            ++a->rec.processed;
            continue;
          }
          ++s.tries;
          sent.push_back(i);
        }
        if (sent.empty())
          break;
        {
          std::lock_guard lk{g->mtx};
          g->waiting = sent.size();
        }
        auto results = std::make_shared<std::vector<write_result>>(slots.size());
        for (auto i : sent)
          sims_.place_order(slots[i].iccid, order, [g, results, i](write_result r) {
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
          switch (judge(r.error)) {
            case verdict::placed: {
              std::lock_guard lk{mtx_};
              ++a->rec.placed;
              ++a->rec.processed;
              s.done = true;
              break;
            }
            case verdict::refused: {
              std::lock_guard lk{mtx_};
              a->refuse(s.iccid, reason_of(r), cfg_.kept_refusals);
              s.done = true;
              break;
            }
            case verdict::retry:
              if (s.tries >= cfg_.max_tries) {
                std::lock_guard lk{mtx_};
                a->refuse(s.iccid, reason_of(r), cfg_.kept_refusals);
                s.done = true;
              } else {
                retry = true;
              }
              break;
            case verdict::stop:
              return false; // the page is done again at the next start
          }
        }
        if (!retry)
          break;
        std::unique_lock lk{mtx_};
        if (cv_.wait_for(lk, cfg_.pause, [this] { return stopping_; }))
          return false;
      }
      if (cancelled()) {
        {
          std::lock_guard lk{mtx_};
          a->rec.after_iccid = slots.back().iccid;
        }
        return write_progress();
      }
      if (stopping())
        return false; // as a kill would: the page is checked and done again at the next start
    }
    {
      std::lock_guard lk{mtx_};
      a->rec.after_iccid = page.back();
    }
    if (!write_progress())
      return false;
    verify = false;
  }
}

} // namespace imeilock::actors
