#pragma once
// The webhook provisioning backend: POSTs each order as JSON (orders::to_json)
// to an operator's provisioning system over HTTP/1.1 and treats a 2xx answer
// as "submitted". Anything else — another status, a timeout, a refused or
// reset connection, a name that does not resolve — is a failed submission
// with a reason, which the scheduler retries with backoff.
//
// http:// or https:// (TLS: the server's certificate verified against the
// system CA store or backend.tls.ca_file, and its host name; an optional
// client certificate). A failed check ("certificate has expired", "hostname
// mismatch", "unknown CA") is a failed submission like any other. One
// connection per order ("Connection: close"): orders are rare next to
// accounting traffic.
//
// The HTTP exchange is common/http_client's; this file only builds the
// request and reads the status. Asio stays out of this header (TOOLCHAIN.md:
// keep heavy headers out of widely included ones); the backend runs on an
// io_context you own and run.

#include "common/error.hpp"
#include "orders/backend.hpp"

#include <memory>
#include <string>

namespace boost::asio {
class io_context;
}

namespace imeilock::orders {

/// Creates the webhook backend for `cfg` (type webhook). Reads
/// cfg.bearer_token_file and, for https, cfg.tls's files now. A problem is
/// ec::backend_failed naming it (bad URL, as http::parse_url words it;
/// unreadable token file; unusable CA file or client certificate). `io` must
/// outlive the backend and be run by someone; `done` callbacks run on io's
/// threads.
expected<std::unique_ptr<provisioning_backend>> make_webhook_backend(const backend_config& cfg,
                                                                     boost::asio::io_context& io);

/// Creates the backend `cfg` asks for: simulated (always) or webhook (as
/// make_webhook_backend). `seed` is for the simulated backend's failure draws.
expected<std::unique_ptr<provisioning_backend>>
make_backend(const backend_config& cfg, boost::asio::io_context& io, std::uint64_t seed = 1);

} // namespace imeilock::orders
