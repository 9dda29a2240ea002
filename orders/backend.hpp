#pragma once
// Provisioning backends: where a network's orders are sent (DESIGN.md §3).
// The scheduler decides *when* to send; a backend only sends and reports
// whether the provisioning system took the order ("submitted"). Completion
// is modelled by the scheduler's lead time, not reported by the backend.
//
// Built here: the simulated network (default; accepts at once, can be told
// to fail for tests). The webhook backend (HTTP POST of the order as JSON)
// lives in orders/webhook.hpp, in its own library because it needs Asio.

#include "orders/network.hpp"
#include "orders/order.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

namespace imeilock::orders {

/// What the provisioning system said about one submission.
struct submit_result {
  bool accepted = false; ///< true: the order is submitted (webhook: HTTP 2xx)
  /// Why not accepted, for the operator: "http 503", "timeout after 5000ms",
  /// "connect: Connection refused", "simulated failure". Empty when accepted.
  std::string reason;
  int http_status = 0; ///< webhook: the HTTP status if one was received, else 0
};

/// Called exactly once per submit(), from any thread, possibly before
/// submit() returns. Must not block: post the result to your own executor.
using submit_done = std::function<void(submit_result)>;

/// A provisioning system. Implementations are thread-safe: submit() may be
/// called from any thread, concurrently.
class provisioning_backend {
public:
  virtual ~provisioning_backend() = default;
  /// Sends `o` (its identity fields: id, iccid, imsis, network, type, reason,
  /// mode, with_lock, created_at_ms) and reports the outcome through `done`.
  /// Delivery is at least once: after a restart an order whose submission
  /// was not confirmed is sent again, so receivers deduplicate by order id.
  virtual void submit(const order& o, submit_done done) = 0;
  /// "simulated", "webhook http://..." for logs.
  virtual std::string describe() const = 0;
};

/// The simulated network: accepts every order immediately (done is called
/// before submit() returns), unless told to fail by `fail_first` /
/// `failure_probability` in its backend_config.
class simulated_backend final : public provisioning_backend {
public:
  /// `seed` drives failure_probability draws (0: std::random_device).
  explicit simulated_backend(const backend_config& cfg, std::uint64_t seed = 1);
  void submit(const order& o, submit_done done) override;
  std::string describe() const override;

  /// Submissions seen so far (accepted or not).
  std::uint64_t submissions() const;

private:
  mutable std::mutex mutex_;
  std::uint32_t fail_first_;
  double failure_probability_;
  rng gen_;
  std::uint64_t submissions_ = 0;
};

/// The JSON body a provisioning system receives for `o`:
/// {"order_id":7,"iccid":"...","imsis":["..."],"network":"ee","type":"bar",
///  "reason":"imei_lock","unbar_mode":"none","with_lock":false,
///  "created_at":"2026-11-25T02:46:04.123Z"}
/// Enum spellings are those of lock::to_string; IMSIs are 15-digit strings
/// (zero-padded); created_at is RFC 3339 UTC with milliseconds.
std::string to_json(const order& o);

} // namespace imeilock::orders
