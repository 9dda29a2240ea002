#include "config/tls.hpp"

namespace imeilock::config {

void load(http::tls_files& out, section s) {
  s.read("ca_file", out.ca_file);
  s.read("client_cert", out.client_cert);
  s.read("client_key", out.client_key);
  s.finish();
  if (auto usable = out.validate(); !usable)
    s.fail(usable.error().where(), usable.error().message());
}

} // namespace imeilock::config
