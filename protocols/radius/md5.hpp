#pragma once
// MD5 (RFC 1321) and HMAC-MD5 (RFC 2104), as RADIUS needs them: the Request
// and Response Authenticators (RFC 2865 §3, RFC 2866 §3) and the
// Message-Authenticator (RFC 3579 §3.2). Computed by OpenSSL's libcrypto
// (its MD5_* functions: no EVP dispatch per call, no state between calls, so
// any thread may call them). Not for anything where MD5's weakness matters.

#include <array>
#include <cstdint>
#include <initializer_list>
#include <span>

namespace imeilock::radius {

/// A 16-octet MD5 digest.
using md5_digest = std::array<std::uint8_t, 16>;

/// MD5 of the concatenation of `parts`.
md5_digest md5_of(std::initializer_list<std::span<const std::uint8_t>> parts);

/// MD5 of one buffer.
inline md5_digest md5_of(std::span<const std::uint8_t> data) {
  return md5_of({data});
}

/// HMAC-MD5 (RFC 2104) over the concatenation of `parts`.
md5_digest hmac_md5(std::span<const std::uint8_t> key,
                    std::initializer_list<std::span<const std::uint8_t>> parts);

} // namespace imeilock::radius
