// SHA-256 and lowercase hex, shared by the bundle seal (bundle.cc), the
// digest-keyed caches (digest_key.h) and the FAPI layer (fapi_auth.cc).
// Split out of bundle.h so that code needing only a digest does not pull
// in the bundle container. One OpenSSL EVP call; linear in the input.
// Thread-safe (no state).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace vakt::bytecode {

// SHA-256 of `bytes` (OpenSSL EVP).
std::array<uint8_t, 32> Sha256(std::string_view bytes);
// `n` bytes at `p` as lowercase hex (2n characters).
std::string HexLower(const uint8_t* p, size_t n);

}  // namespace vakt::bytecode
