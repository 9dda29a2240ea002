#pragma once
// FUZZ_CHECK(cond): an invariant a fuzz target asserts about the code under
// test. A failure prints the condition and aborts, so libFuzzer saves the
// input as a crash (unlike assert, it stays on in release builds).

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);            \
      std::abort();                                                                                \
    }                                                                                              \
  } while (false)
