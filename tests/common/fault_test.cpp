// The last-resort guards (common/fault.hpp): an exception that reaches them is
// counted per place and swallowed; the work goes on.
#include "common/fault.hpp"

#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>

using namespace imeilock;

TEST_CASE("a guarded handler counts an escaping exception and returns normally", "[fault]") {
  auto before = faults(fault_site::registry);
  int calls = 0;
  auto h = guard(fault_site::registry, [&calls](int& x, const std::string& s) {
    ++calls;
    if (s == "bad")
      throw std::runtime_error("boom");
    x = 7;
  });
  int x = 0;
  h(x, "good");
  CHECK(x == 7);
  CHECK(faults(fault_site::registry) == before);
  h(x, "bad");
  CHECK(calls == 2);
  CHECK(faults(fault_site::registry) == before + 1);

  auto counted = guard(fault_site::registry, [](int n) -> int {
    if (n < 0)
      throw std::invalid_argument("negative");
    return n * 2;
  });
  CHECK(counted(4) == 8);
  CHECK(counted(-1) == 0); // the default value after a fault
  CHECK(faults(fault_site::registry) == before + 2);
}

TEST_CASE("run_guarded runs the loop again after each escaping exception", "[fault]") {
  auto before = faults(fault_site::io_thread);
  int runs = 0;
  run_guarded(fault_site::io_thread, [&runs] {
    if (++runs < 4)
      throw std::out_of_range("handler failed");
  });
  CHECK(runs == 4);
  CHECK(faults(fault_site::io_thread) == before + 3);
  CHECK(to_string(fault_site::store_read) == "store_read");
  CHECK(describe(std::make_exception_ptr(std::runtime_error("x"))) == "x");
  CHECK(describe(std::make_exception_ptr(42)) == "unknown exception");
}
