#include "api/webhooks.hpp"

#include "api/json_views.hpp"
#include "common/http_client.hpp"
#include "common/log.hpp"
#include "lock/identifiers.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <random>

namespace imeilock::api {

namespace net = boost::asio;

std::string_view webhook_event_name(lock::notice what) {
  switch (what) {
    case lock::notice::change_event:
      return "change_event";
    case lock::notice::violation:
      return "violation";
    case lock::notice::lock_set_first_imei:
      return "lock_set_first_imei";
    case lock::notice::lock_enabled:
      return "lock_enabled";
    case lock::notice::lock_disabled:
      return "lock_disabled";
    case lock::notice::bar_completed:
      return "bar_completed";
    case lock::notice::unbar_completed:
      return "unbar_completed";
    case lock::notice::order_failed:
      return "order_failed";
    case lock::notice::activated:
      return "activated";
  }
  return "unknown";
}

std::string webhook_payload(const actors::sim_event& ev) {
  nlohmann::json j{
      {"event", webhook_event_name(ev.what)},
      {"iccid", ev.iccid},
      {"imsi", ev.imsi == 0 ? nlohmann::json(nullptr) : nlohmann::json(lock::format_imsi(ev.imsi))},
      {"imei", imei_json(ev.imei)},
      {"locked_imei", imei_json(ev.locked_imei)},
      {"order_id", ev.order_id == 0 ? nlohmann::json(nullptr) : nlohmann::json(ev.order_id)},
      {"at", time_json(ev.at_ms)},
  };
  // What the network's violation action did: bar, alert (monitor mode: no
  // Bar order) or disconnect_and_bar.
  if (ev.what == lock::notice::violation)
    j["action"] = lock::to_string(ev.action);
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len);
  static constexpr char digits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    hex.push_back(digits[mac[i] >> 4]);
    hex.push_back(digits[mac[i] & 0x0f]);
  }
  return hex;
}

namespace {

/// One queued POST.
struct delivery {
  std::string event;
  std::string body;
  std::string id;
  std::uint32_t attempts = 0;
};

/// Delivers to one target, one POST at a time, in order, on its own strand.
class target_worker : public std::enable_shared_from_this<target_worker> {
public:
  target_worker(net::io_context& io, webhook_target target, const webhook_config& cfg,
                prometheus::Family<prometheus::Counter>& results,
                prometheus::Family<prometheus::Gauge>& queued) :
      io_(io),
      strand_(net::make_strand(io)),
      target_(std::move(target)),
      cfg_(cfg),
      timer_(strand_),
      delivered_(results.Add({{"target", target_.url}, {"result", "delivered"}})),
      retried_(results.Add({{"target", target_.url}, {"result", "retried"}})),
      gave_up_(results.Add({{"target", target_.url}, {"result", "gave_up"}})),
      dropped_(results.Add({{"target", target_.url}, {"result", "dropped"}})),
      queued_(queued.Add({{"target", target_.url}})) {
    if (auto parsed = http::parse_url(target_.url)) // load() refused any other
      url_ = std::move(*parsed);
    options_.timeout = cfg_.timeout;
    if (url_ && url_->tls()) {
      if (auto tls = http::make_tls_context(target_.tls)) {
        options_.tls = std::move(*tls);
      } else {
        tls_error_ = "tls." + tls.error().message();
        log::error("webhook.tls_unusable", {{"target", target_.url}, {"reason", tls_error_}});
      }
    }
    for (const auto& e : target_.events)
      events_.push_back(e);
  }

  const webhook_target& target() const { return target_; }
  /// Why this target's TLS settings cannot be used; empty when they can.
  const std::string& tls_error() const { return tls_error_; }

  bool wants(std::string_view event) const {
    return events_.empty() || std::find(events_.begin(), events_.end(), event) != events_.end();
  }

  void enqueue(delivery d) {
    std::lock_guard lock{mutex_};
    if (stopped_)
      return;
    if (queue_.size() >= cfg_.queue_size) {
      queue_.pop_front(); // the oldest waiting one: newer state matters more
      dropped_.Increment();
      static log::rate_limiter limiter;
      log::write_limited(limiter, log::level::warning, "webhook.queue_full",
                         {{"target", target_.url}, {"queue_size", cfg_.queue_size}});
    }
    queue_.push_back(std::move(d));
    queued_.Set(static_cast<double>(queue_.size() + (busy_ ? 1 : 0)));
    if (!busy_) {
      busy_ = true;
      net::post(strand_, [self = shared_from_this()] { self->next(); });
    }
  }

  std::size_t pending() const {
    std::lock_guard lock{mutex_};
    return queue_.size() + (busy_ ? 1 : 0);
  }

  void stop() {
    {
      std::lock_guard lock{mutex_};
      stopped_ = true;
      dropped_.Increment(static_cast<double>(queue_.size()));
      queue_.clear();
    }
    net::post(strand_, [self = shared_from_this()] {
      self->timer_.cancel();
      if (self->inflight_)
        self->inflight_->cancel();
      if (self->current_) {
        self->dropped_.Increment();
        self->current_.reset();
      }
      std::lock_guard lock{self->mutex_};
      self->busy_ = false;
      self->queued_.Set(0);
    });
  }

private:
  void next() {
    {
      std::lock_guard lock{mutex_};
      if (stopped_ || queue_.empty()) {
        busy_ = false;
        queued_.Set(static_cast<double>(queue_.size()));
        return;
      }
      current_ = std::move(queue_.front());
      queue_.pop_front();
    }
    attempt();
  }

  void attempt() {
    if (!url_)
      return give_up("the URL cannot be parsed");
    if (!tls_error_.empty())
      return give_up(tls_error_);
    ++current_->attempts;
    http::request req{
        "POST",
        {},
        {{"Content-Type", "application/json"},
         {"X-Imeilock-Event", current_->event},
         {"X-Imeilock-Delivery", current_->id},
         {"X-Imeilock-Signature", "sha256=" + hmac_sha256_hex(target_.secret, current_->body)}},
        current_->body};
    inflight_ =
        http::async_send(io_, *url_, req, options_, [self = shared_from_this()](http::response r) {
          net::post(self->strand_, [self, r = std::move(r)] { self->answered(r); });
        });
  }

  void answered(const http::response& r) {
    inflight_.reset();
    if (!current_)
      return; // stopped meanwhile
    if (r.ok()) {
      delivered_.Increment();
      log::debug(
          "webhook.delivered",
          {{"target", target_.url}, {"delivery", current_->id}, {"attempts", current_->attempts}});
      current_.reset();
      return next();
    }
    failed(r.status != 0 ? "HTTP " + std::to_string(r.status) : r.error);
  }

  void failed(const std::string& why) {
    if (current_->attempts >= cfg_.max_attempts)
      return give_up(why);
    retried_.Increment();
    // Exponential backoff with +-20 % jitter, so many daemons do not retry in step.
    auto base = cfg_.initial_backoff * (1LL << std::min<std::uint32_t>(current_->attempts - 1, 30));
    auto delay = std::min<std::chrono::milliseconds>(
        std::chrono::duration_cast<std::chrono::milliseconds>(base), cfg_.max_backoff);
    std::uniform_real_distribution<double> jitter{0.8, 1.2};
    delay = std::chrono::milliseconds{
        static_cast<std::int64_t>(static_cast<double>(delay.count()) * jitter(rng_))};
    static log::rate_limiter limiter;
    log::write_limited(limiter, log::level::notice, "webhook.retry",
                       {{"target", target_.url},
                        {"delivery", current_->id},
                        {"attempt", current_->attempts},
                        {"error", why},
                        {"retry_in_ms", static_cast<std::int64_t>(delay.count())}});
    timer_.expires_after(delay);
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || !self->current_)
        return;
      self->attempt();
    });
  }

  void give_up(const std::string& why) {
    gave_up_.Increment();
    log::warning("webhook.gave_up", {{"target", target_.url},
                                     {"delivery", current_->id},
                                     {"event", current_->event},
                                     {"attempts", current_->attempts},
                                     {"error", why}});
    current_.reset();
    next();
  }

  net::io_context& io_;
  net::strand<net::io_context::executor_type> strand_;
  webhook_target target_;
  webhook_config cfg_;
  std::optional<http::url> url_; ///< nullopt: unparsable, every delivery gives up
  http::options options_;
  std::string tls_error_; ///< https settings unusable: every delivery gives up
  std::vector<std::string> events_;
  net::steady_timer timer_;
  std::shared_ptr<http::pending> inflight_; ///< the POST in flight (strand only)
  std::optional<delivery> current_;         ///< the one being attempted (strand only)
  std::minstd_rand rng_{std::random_device{}()};

  mutable std::mutex mutex_; ///< guards queue_, busy_, stopped_
  std::deque<delivery> queue_;
  bool busy_ = false;
  bool stopped_ = false;

  prometheus::Counter& delivered_;
  prometheus::Counter& retried_;
  prometheus::Counter& gave_up_;
  prometheus::Counter& dropped_;
  prometheus::Gauge& queued_;
};

} // namespace

using worker_list = std::vector<std::shared_ptr<target_worker>>;

struct webhook_notifier::impl {
  net::io_context* io = nullptr;
  prometheus::Family<prometheus::Counter>* results = nullptr;
  prometheus::Family<prometheus::Gauge>* queued = nullptr;
  std::atomic<std::uint64_t> sequence{0};
  std::string instance; ///< makes delivery ids unique across restarts

  mutable std::mutex mutex; ///< guards cfg and workers (replaced whole by reload)
  webhook_config cfg;
  std::shared_ptr<const worker_list> workers = std::make_shared<worker_list>();

  std::shared_ptr<const worker_list> snapshot() const {
    std::lock_guard lock{mutex};
    return workers;
  }
};

webhook_notifier::webhook_notifier(net::io_context& io, const webhook_config& cfg,
                                   prometheus::Registry& registry) :
    impl_(std::make_shared<impl>()) {
  impl_->io = &io;
  impl_->instance = std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count());
  auto& results = prometheus::BuildCounter()
                      .Name("imeilock_webhook_deliveries_total")
                      .Help("Webhook deliveries by target and result: delivered, retried (one "
                            "failed attempt), gave_up (max_attempts reached), dropped (queue full "
                            "or shutdown)")
                      .Register(registry);
  auto& queued = prometheus::BuildGauge()
                     .Name("imeilock_webhook_queued")
                     .Help("Webhook deliveries waiting or in flight, by target")
                     .Register(registry);
  impl_->results = &results;
  impl_->queued = &queued;
  impl_->cfg = cfg;
  auto workers = std::make_shared<worker_list>();
  for (const auto& t : cfg.targets)
    workers->push_back(std::make_shared<target_worker>(io, t, cfg, results, queued));
  impl_->workers = std::move(workers);
}

expected<void> webhook_notifier::reload(const webhook_config& next) {
  std::lock_guard lock{impl_->mutex};
  if (next == impl_->cfg)
    return {};
  auto shared_settings = [](webhook_config c) {
    c.targets.clear();
    return c;
  };
  bool same_settings = shared_settings(next) == shared_settings(impl_->cfg);
  auto fresh = std::make_shared<worker_list>();
  std::vector<bool> kept(impl_->workers->size(), false);
  std::size_t changed = 0;
  for (const auto& t : next.targets) {
    std::shared_ptr<target_worker> w;
    for (std::size_t i = 0; same_settings && !w && i < kept.size(); ++i)
      if (!kept[i] && (*impl_->workers)[i]->target() == t) {
        kept[i] = true;
        w = (*impl_->workers)[i];
      }
    if (!w) {
      w = std::make_shared<target_worker>(*impl_->io, t, next, *impl_->results, *impl_->queued);
      if (!w->tls_error().empty())
        return error{http::ec::bad_tls_files,
                     "webhook " + t.url + ": " + w->tls_error()}; // nothing changed yet
      ++changed;
    }
    fresh->push_back(std::move(w));
  }
  std::size_t removed = 0;
  for (std::size_t i = 0; i < kept.size(); ++i)
    if (!kept[i]) {
      (*impl_->workers)[i]->stop();
      ++removed;
    }
  impl_->workers = std::move(fresh);
  impl_->cfg = next;
  log::notice(
      "webhook.reloaded",
      {{"targets", next.targets.size()}, {"new", changed}, {"replaced_or_removed", removed}});
  return {};
}

webhook_notifier::~webhook_notifier() {
  stop();
}

void webhook_notifier::on_event(const actors::sim_event& ev) {
  auto workers = impl_->snapshot();
  if (workers->empty())
    return;
  auto event = std::string{webhook_event_name(ev.what)};
  std::string body;
  for (const auto& w : *workers) {
    if (!w->wants(event))
      continue;
    if (body.empty())
      body = webhook_payload(ev);
    w->enqueue(
        {event, body, impl_->instance + "-" + std::to_string(impl_->sequence.fetch_add(1) + 1), 0});
  }
}

void webhook_notifier::stop() {
  for (const auto& w : *impl_->snapshot())
    w->stop();
}

std::size_t webhook_notifier::pending() const {
  std::size_t n = 0;
  for (const auto& w : *impl_->snapshot())
    n += w->pending();
  return n;
}

} // namespace imeilock::api
