// libFuzzer target for the configuration loader: any text given to
// imeilockd -c (or reloaded by SIGHUP) yields either a whole configuration or
// a config::error naming the key and line. Any other exception type, a crash
// or a hang is a finding.
#include "daemon/daemon_config.hpp"
#include "fuzz_check.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <typeinfo>

using namespace imeilock;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text{reinterpret_cast<const char*>(data), size};
  try {
    // Only "a configuration or config::error": the validate() signatures are
    // the components' own business.
    const auto cfg = daemon::load_config_text(text);
    FUZZ_CHECK(!cfg.api.listen.empty());
  } catch (const config::error& e) {
    FUZZ_CHECK(e.line() >= 0);
    FUZZ_CHECK(!e.message().empty());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "config loader threw %s: %s\n", typeid(e).name(), e.what());
    std::abort();
  }
  return 0;
}
