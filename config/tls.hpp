#pragma once
// The `tls:` mapping of an https peer (event webhook targets, the orders
// webhook backend), read the same way everywhere:
//
//   tls:
//     ca_file: ""       # PEM CAs to trust; "" = the system CA store
//     client_cert: ""   # PEM client certificate to present; "" = none
//     client_key: ""    # its private key (both or neither)

#include "common/http_url.hpp"
#include "config/section.hpp"

namespace imeilock::config {

/// Reads `s` strictly into `out` (absent keys keep their value); fails
/// naming the key when http::tls_files::validate() does.
void load(http::tls_files& out, section s);

} // namespace imeilock::config
