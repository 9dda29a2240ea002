// The API server over the fake SIM layer, as a process: for the dashboard
// test in headless Chromium (ui_test.py). Seeds the SIM iccid_a locked to
// device A and barred after being seen in device B, prints
// "URL TOKEN ICCID" on stdout, and runs until SIGTERM/SIGINT.

#include "server_fixture.hpp"

#include <csignal>
#include <iostream>

int main() {
  using namespace imeilock::api::test;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr); // before any thread starts
  server_fixture f;
  f.seed_barred_sim();
  std::cout << f.url() << " " << rw_token << " " << iccid_a << std::endl;
  int sig = 0;
  sigwait(&set, &sig);
  return 0;
}
