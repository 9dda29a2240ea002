#pragma once
// CAF 0.17's deterministic test DSL (caf/test/dsl.hpp: expect, allow,
// disallow, inject over a test_coordinator) inside Catch2 test cases.
//
// The DSL reports through the macros of CAF's own test framework
// (caf/test/unit_test.hpp). They are redefined here onto Catch2 before the DSL
// is read, so a failed expect() is a failed Catch2 assertion. CAF's runner
// (unit_test_impl.hpp) is not linked: test_coordinator_fixture, which needs it
// for its command line, is not used; dsl_fixture (dsl_support.hpp) is ours.
// Include this header last: expect, allow, disallow and inject are macros.

#include <catch2/catch.hpp>

#include <caf/test/unit_test.hpp>

#undef CAF_CHECK
#undef CAF_CHECK_EQUAL
#undef CAF_REQUIRE
#undef CAF_REQUIRE_EQUAL
#undef CAF_FAIL
#undef CAF_MESSAGE

#define CAF_CHECK(...) CHECK(__VA_ARGS__)
#define CAF_CHECK_EQUAL(x, y) CHECK((x) == (y))
#define CAF_REQUIRE(...) REQUIRE(__VA_ARGS__)
#define CAF_REQUIRE_EQUAL(x, y) REQUIRE((x) == (y))
// Throws (Catch2's FAIL): the DSL relies on CAF_FAIL not returning. Inside an
// expect() that throw leaves a destructor and ends the test binary; Catch2
// reports the failed assertion first, and ctest runs one test case per process.
#define CAF_FAIL(msg) FAIL(msg)
// The clause being evaluated, shown with any failure inside it.
#define CAF_MESSAGE(msg) INFO(msg)

#include <caf/test/dsl.hpp>
