#include "config/tls.hpp"

namespace imeilock::config {

void load(http::tls_files& out, section s) {
  s.read("ca_file", out.ca_file);
  s.read("client_cert", out.client_cert);
  s.read("client_key", out.client_key);
  s.finish();
  if (auto why = out.validate(); !why.empty()) {
    auto colon = why.find(": ");
    s.fail(why.substr(0, colon), why.substr(colon + 2));
  }
}

} // namespace imeilock::config
