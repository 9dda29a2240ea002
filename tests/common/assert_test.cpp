// IMEILOCK_ASSERT stays on in release builds: this file is compiled with
// NDEBUG, like the RelWithDebInfo daemon, and a failed check still aborts.
#ifndef NDEBUG
#define NDEBUG
#endif

#include "common/assert.hpp"
#include "common/error.hpp"

#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <string>

namespace {

/// Runs `body` in a child process; returns how it ended and what it wrote to
/// stderr (a death test: an abort must not take the test runner with it).
struct outcome {
  bool aborted = false;
  int exit_code = -1;
  std::string stderr_text;
};

template <class F>
outcome run_in_child(F body) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    ::dup2(fds[1], STDERR_FILENO);
    body();
    ::_exit(0);
  }
  ::close(fds[1]);
  outcome out;
  char buf[512];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;)
    out.stderr_text.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  out.aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
  out.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

} // namespace

TEST_CASE("IMEILOCK_ASSERT aborts with file, line and message in a release build", "[assert]") {
  const int line = __LINE__ + 3;
  auto r = run_in_child([] {
    int in_flight = 3;
    IMEILOCK_ASSERT(in_flight == 0, "in-flight count " + std::to_string(in_flight));
  });
  CHECK(r.aborted);
  CHECK(r.stderr_text.find("assert_test.cpp:" + std::to_string(line)) != std::string::npos);
  CHECK(r.stderr_text.find("assertion failed: in_flight == 0: in-flight count 3") !=
        std::string::npos);
}

TEST_CASE("IMEILOCK_ASSERT that holds does nothing and does not build its message", "[assert]") {
  auto r = run_in_child([] {
    bool built = false;
    auto message = [&] {
      built = true;
      return std::string{"never"};
    };
    IMEILOCK_ASSERT(1 + 1 == 2, message());
    ::_exit(built ? 1 : 0);
  });
  CHECK_FALSE(r.aborted);
  CHECK(r.exit_code == 0);
  CHECK(r.stderr_text.empty());
}

TEST_CASE("reading the value of an expected that holds an error is an assertion", "[assert]") {
  auto r = run_in_child([] {
    imeilock::expected<int> e{imeilock::error{imeilock::sys_ec::file_failed, "no such file"}};
    (void)e.value();
  });
  CHECK(r.aborted);
  CHECK(r.stderr_text.find("expected::value() on an error") != std::string::npos);
}
