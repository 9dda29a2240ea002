#include "protocols/radius/md5.hpp"

// OpenSSL's MD5_* functions are deprecated in 3.0 in favour of EVP, but they
// are OpenSSL's own (assembly) MD5 without EVP's per-call dispatch: through
// EVP a RADIUS request's two digests cost about 4,900 instructions, of which
// about 1,800 were EVP_DigestInit_ex2/Final bookkeeping (issue 12, measured with
// bench/instructions.sh). MD5 has no provider or FIPS variant to go through
// EVP for: RADIUS needs exactly this algorithm.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/md5.h>

#include <algorithm>
#include <array>

namespace imeilock::radius {

namespace {

void update(MD5_CTX& c, std::initializer_list<std::span<const std::uint8_t>> parts) {
  for (auto part : parts)
    if (!part.empty())
      MD5_Update(&c, part.data(), part.size());
}

md5_digest final(MD5_CTX& c) {
  md5_digest out;
  MD5_Final(out.data(), &c);
  return out;
}

} // namespace

md5_digest md5_of(std::initializer_list<std::span<const std::uint8_t>> parts) {
  MD5_CTX c;
  MD5_Init(&c);
  update(c, parts);
  return final(c);
}

md5_digest hmac_md5(std::span<const std::uint8_t> key,
                    std::initializer_list<std::span<const std::uint8_t>> parts) {
  // RFC 2104 §2: H(K XOR opad, H(K XOR ipad, text)), K hashed first when
  // longer than the block, then padded with zeros to the block.
  constexpr std::size_t block = 64;
  std::array<std::uint8_t, block> k{};
  if (key.size() > block) {
    const md5_digest h = md5_of(key);
    std::copy(h.begin(), h.end(), k.begin());
  } else {
    std::copy(key.begin(), key.end(), k.begin());
  }
  std::array<std::uint8_t, block> pad;
  MD5_CTX c;
  MD5_Init(&c);
  std::transform(k.begin(), k.end(), pad.begin(), [](std::uint8_t b) { return b ^ 0x36; });
  MD5_Update(&c, pad.data(), pad.size());
  update(c, parts);
  const md5_digest inner = final(c);
  MD5_Init(&c);
  std::transform(k.begin(), k.end(), pad.begin(), [](std::uint8_t b) { return b ^ 0x5c; });
  MD5_Update(&c, pad.data(), pad.size());
  MD5_Update(&c, inner.data(), inner.size());
  return final(c);
}

} // namespace imeilock::radius
