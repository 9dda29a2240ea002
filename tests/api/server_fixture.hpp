#pragma once
// A real http_server on 127.0.0.1:0 over the fake SIM layer, with its own
// io_context thread, for the API tests and the dashboard test's daemon.

#include "api/api_config.hpp"
#include "api/http_server.hpp"
#include "fake_sim_service.hpp"

#include <functional>
#include <memory>
#include <string>

namespace imeilock::api::test {

inline constexpr const char* rw_token = "rw-token-0123456789abcdef";
inline constexpr const char* ro_token = "ro-token-0123456789abcdef";

/// The ICCIDs, IMSIs and IMEIs the tests use (valid Luhn where it matters).
inline constexpr const char* iccid_a = "89441000000000000018";
inline constexpr const char* iccid_b = "89441000000000000026";
inline constexpr lock::device_id device_a = 35349001234567; ///< shown as 353490012345670
inline constexpr lock::device_id device_b = 35209900176148; ///< shown as 352099001761481
inline constexpr lock::device_id device_c = 49015420323751; ///< shown as 490154203237518

class server_fixture {
public:
  /// Starts the server; `tweak` may change the configuration first.
  explicit server_fixture(const std::function<void(api_config&)>& tweak = {});
  ~server_fixture();

  fake_sim_service service;
  http_server& server();
  /// http://127.0.0.1:PORT
  std::string url() const;
  /// The registry in the Prometheus text format.
  std::string metrics() const;
  /// Adds the SIM iccid_a: active multinet, locked to device A, seen in device B,
  /// so barred by an IMEI-lock bar with trigger B.
  void seed_barred_sim();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace imeilock::api::test
