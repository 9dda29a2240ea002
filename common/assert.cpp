#include "common/assert.hpp"

#include <unistd.h>

#include <cstdlib>
#include <string>

namespace imeilock::detail {

void assertion_failed(const char* condition, std::string_view message, const char* file,
                      int line) noexcept {
  // One write(2) so the line never interleaves with a log line; should the
  // allocation fail, std::terminate aborts just the same.
  std::string text = std::string{file} + ":" + std::to_string(line) +
                     ": assertion failed: " + condition + ": " + std::string{message} + "\n";
  auto ignored = ::write(STDERR_FILENO, text.data(), text.size());
  (void)ignored;
  std::abort();
}

} // namespace imeilock::detail
