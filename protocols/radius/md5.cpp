#include "protocols/radius/md5.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <cstdio>
#include <cstdlib>

namespace imeilock::radius {

namespace {

/// libcrypto failing on MD5 is our environment being broken (no default
/// provider, FIPS-only configuration), never something a peer sent: stop.
[[noreturn]] void crypto_failed(const char* what) {
  std::fprintf(stderr, "<2>radius.crypto_failed what=%s\n", what);
  std::abort();
}

/// The algorithms, fetched once (an implicit fetch per call costs a lookup).
EVP_MD* md5_algorithm() {
  static EVP_MD* md = [] {
    EVP_MD* m = EVP_MD_fetch(nullptr, "MD5", nullptr);
    if (!m)
      crypto_failed("EVP_MD_fetch MD5");
    return m;
  }();
  return md;
}

/// One digest context per thread, reset by each init.
struct md_context {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  md_context() {
    if (!ctx)
      crypto_failed("EVP_MD_CTX_new");
  }
  ~md_context() { EVP_MD_CTX_free(ctx); }
};

/// One HMAC-MD5 context per thread; EVP_MAC_init re-keys it.
struct mac_context {
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  EVP_MAC_CTX* ctx = mac ? EVP_MAC_CTX_new(mac) : nullptr;
  mac_context() {
    if (!ctx)
      crypto_failed("EVP_MAC_CTX_new HMAC");
    char digest[] = "MD5";
    const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                                 OSSL_PARAM_END};
    if (EVP_MAC_CTX_set_params(ctx, params) != 1)
      crypto_failed("EVP_MAC_CTX_set_params digest=MD5");
  }
  ~mac_context() {
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
  }
};

} // namespace

md5_digest md5_of(std::initializer_list<std::span<const std::uint8_t>> parts) {
  thread_local md_context c;
  if (EVP_DigestInit_ex2(c.ctx, md5_algorithm(), nullptr) != 1)
    crypto_failed("EVP_DigestInit_ex2");
  for (auto part : parts)
    if (!part.empty() && EVP_DigestUpdate(c.ctx, part.data(), part.size()) != 1)
      crypto_failed("EVP_DigestUpdate");
  md5_digest out;
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(c.ctx, out.data(), &len) != 1 || len != out.size())
    crypto_failed("EVP_DigestFinal_ex");
  return out;
}

md5_digest hmac_md5(std::span<const std::uint8_t> key,
                    std::initializer_list<std::span<const std::uint8_t>> parts) {
  thread_local mac_context c;
  // An empty key is legal in RFC 2104 but EVP_MAC_init reads a null pointer
  // as "keep the previous key": pass a real, empty buffer.
  static const std::uint8_t no_key[1] = {0};
  if (EVP_MAC_init(c.ctx, key.empty() ? no_key : key.data(), key.size(), nullptr) != 1)
    crypto_failed("EVP_MAC_init");
  for (auto part : parts)
    if (!part.empty() && EVP_MAC_update(c.ctx, part.data(), part.size()) != 1)
      crypto_failed("EVP_MAC_update");
  md5_digest out;
  std::size_t len = 0;
  if (EVP_MAC_final(c.ctx, out.data(), &len, out.size()) != 1 || len != out.size())
    crypto_failed("EVP_MAC_final");
  return out;
}

} // namespace imeilock::radius
