// libFuzzer target for the configuration loader: any text given to
// imeilockd -c (or reloaded by SIGHUP) yields either a whole configuration or
// a config error naming the key and line (daemon::load_config_text returns
// expected<daemon_config>). An exception escaping it, a crash or a hang is a
// finding.
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
    const auto loaded = daemon::load_config_text(text);
    if (loaded) {
      FUZZ_CHECK(loaded->sim_layer.validate().has_value());
      FUZZ_CHECK(!loaded->api.listen.empty());
    } else {
      const auto& e = loaded.error();
      FUZZ_CHECK(e.category() == "config");
      FUZZ_CHECK(e.line() >= 0);
      FUZZ_CHECK(!e.message().empty());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "config loader threw %s: %s\n", typeid(e).name(), e.what());
    std::abort();
  }
  return 0;
}
