#pragma once
// MD5 (RFC 1321) and HMAC-MD5 (RFC 2104), as RADIUS needs them: the Request
// and Response Authenticators (RFC 2865 §3, RFC 2866 §3) and the
// Message-Authenticator (RFC 3579 §3.2). Small and allocation-free so the
// packet path stays cheap; not for anything where MD5's weakness matters.

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>

namespace imeilock::radius {

/// A 16-octet MD5 digest.
using md5_digest = std::array<std::uint8_t, 16>;

/// Incremental MD5: update() any number of times, then final() once.
class md5 {
public:
  md5();
  void update(std::span<const std::uint8_t> data);
  md5_digest final();

private:
  void block(const std::uint8_t* p);

  std::array<std::uint32_t, 4> state_;
  std::uint64_t total_ = 0; ///< bytes hashed so far
  std::array<std::uint8_t, 64> buffer_{};
  std::size_t buffered_ = 0;
};

/// MD5 of one buffer.
md5_digest md5_of(std::span<const std::uint8_t> data);

/// HMAC-MD5 (RFC 2104) over the concatenation of `parts`.
md5_digest hmac_md5(std::span<const std::uint8_t> key,
                    std::initializer_list<std::span<const std::uint8_t>> parts);

} // namespace imeilock::radius
