// JOSE primitives of the runtime: strict base64url (RFC 7515 section 2),
// compact JWS parsing with size limits on every part, JWK / JWKS parsing into
// OpenSSL 3 EVP keys, signature verification for the three FAPI 2.0
// algorithms (PS256, ES256 in IEEE P1363 form, EdDSA over Ed25519), RFC 7638
// thumbprints, key selection by `kid`, and a signer for tooling and tests.
//
// Every input is attacker-controlled. The key's own type fixes the algorithm
// (RSA -> PS256, EC P-256 -> ES256, OKP Ed25519 -> EdDSA), so a token cannot
// choose how it is verified (no algorithm confusion). Nothing here throws.
//
// Legacy mode (JwkOptions::legacy, ParseAlg's allow_legacy) exists only for
// policies that explicitly leave the FAPI profile: it adds RS256
// (RSASSA-PKCS1-v1_5 with SHA-256) for RSA JWKs that declare `"alg":"RS256"`
// and lowers the RSA minimum to 1024 bits. `none`, HS* and every other
// algorithm stay refused in every mode.
//
// Bounds: base64url input at most kMaxBase64UrlInput characters; a compact
// JWS at most JwsLimits::max_token_bytes; JSON parsed with simdjson with a
// bounded depth, linear in the input. Verification costs one EVP operation.
// Thread-safety: free functions are reentrant; a PublicKey is immutable after
// construction and may be shared between threads for verification.
// Tested by tests/jose_test.cc and tests/wycheproof_test.cc.
#pragma once

#include <openssl/types.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "bytecode/status.h"

namespace vakt::bytecode {

// Largest base64url text accepted (an RSA-8192 modulus is 1366 characters).
inline constexpr size_t kMaxBase64UrlInput = 64 * 1024;

// Strict RFC 7515 base64url: no padding, no whitespace, only [A-Za-z0-9_-],
// length mod 4 != 1, unused trailing bits zero (canonical form only).
Result<std::string> Base64UrlDecode(std::string_view in);
std::string Base64UrlEncode(std::string_view in);

struct JwsLimits {
  size_t max_token_bytes = 16 * 1024;    // whole compact serialization
  size_t max_header_bytes = 4 * 1024;    // decoded header JSON
  size_t max_payload_bytes = 12 * 1024;  // decoded payload JSON
  size_t max_json_depth = 16;            // nesting of arrays and objects
  // JWTs (access tokens, DPoP proofs) carry a JSON object; generic JWS
  // (tests, tooling) may carry any bytes, including none.
  bool require_json_payload = true;
};

// A parsed compact JWS. The string_views point into the token passed to
// ParseCompactJws: REQUIRES the token outlives this value.
struct CompactJws {
  std::string_view header_b64, payload_b64, signature_b64;
  std::string header_json, payload_json, signature;
  std::string_view signing_input;  // header_b64 "." payload_b64
};

// Splits and decodes a compact JWS: exactly three parts, each strict
// base64url, header and (if limits.require_json_payload) payload JSON objects
// without duplicate top-level members; header and signature non-empty, and the
// payload too when it must be JSON. Does not verify the signature.
Result<CompactJws> ParseCompactJws(std::string_view token, const JwsLimits& limits = {});

// kRS256 is legacy only (never under FAPI 2.0); keep it last so AlgBit
// values of the others stay put.
enum class JwsAlg { kPS256, kES256, kEdDSA, kRS256 };

const char* JwsAlgName(JwsAlg alg);
// Accepts exactly "PS256", "ES256" and "EdDSA", and "RS256" when
// allow_legacy; refuses everything else ("none", HS*, RS384, ...).
Result<JwsAlg> ParseAlg(std::string_view alg, bool allow_legacy = false);

struct JwkOptions {
  // Tooling only: accept (and ignore) private members.
  bool allow_private = false;
  // Outside FAPI: RSA keys of at least 1024 bits (not 2048), and an RSA
  // key with `"alg":"RS256"` is an RS256 key (without `alg` it stays PS256).
  bool legacy = false;
};

struct JwksOptions {
  bool legacy = false;  // as JwkOptions::legacy
  // Skip keys this runtime cannot use instead of failing the whole set:
  // an unknown `kty` (e.g. "oct"), another curve, `use` other than "sig",
  // `key_ops` without "verify", an `alg` the key cannot be used with here,
  // an RSA key below the minimum size: every key ParseJwk refuses with
  // kUnsupported. Malformed keys, and keys holding private members
  // (d, p, q, dp, dq, qi, oth) always fail the set. An "oct" key is
  // skipped (its `k` is a symmetric secret that never verifies here).
  bool skip_unsupported = false;
};

// A public verification key. Owns its EVP_PKEY; move-only, immutable.
class PublicKey {
 public:
  PublicKey(PublicKey&& other) noexcept;
  PublicKey& operator=(PublicKey&& other) noexcept;
  PublicKey(const PublicKey&) = delete;
  PublicKey& operator=(const PublicKey&) = delete;
  ~PublicKey();

  EVP_PKEY* pkey() const { return pkey_; }
  const std::string& kid() const { return kid_; }
  const std::string& kty() const { return kty_; }  // "RSA", "EC", "OKP"
  const std::string& crv() const { return crv_; }  // "P-256", "Ed25519", "" for RSA
  JwsAlg alg() const { return alg_; }              // fixed by the key type (and legacy alg)
  int bits() const { return bits_; }
  // The RFC 7638 canonical JSON of the required members.
  const std::string& thumbprint_input() const { return thumbprint_input_; }

 private:
  friend Result<PublicKey> ParseJwk(std::string_view jwk_json, const JwkOptions& options);
  PublicKey() = default;

  EVP_PKEY* pkey_ = nullptr;
  std::string kid_, kty_, crv_;
  JwsAlg alg_ = JwsAlg::kPS256;
  int bits_ = 0;
  std::string thumbprint_input_;
};

// Parses one JWK (RFC 7517): RSA (>= 2048 bits), EC P-256 (point on the
// curve), OKP Ed25519. Refuses private members unless allow_private (tooling
// only; the private part is ignored), an `alg` other than the key type's,
// a `use` other than "sig", and `key_ops` without "verify". Malformed input
// is kInvalidArgument; a well-formed key this runtime does not use (type,
// curve, size, use, key_ops, alg) is kUnsupported.
Result<PublicKey> ParseJwk(std::string_view jwk_json, bool allow_private = false);
Result<PublicKey> ParseJwk(std::string_view jwk_json, const JwkOptions& options);
// Parses a JWKS {"keys":[...]} (at most 64 keys, 256 KiB); any key that
// fails ParseJwk fails the set, unless options.skip_unsupported (see
// JwksOptions). `skipped`, if non-null, receives one entry per skipped key:
// its `kid` (or "#<index>" when it has none).
Result<std::vector<PublicKey>> ParseJwks(std::string_view jwks_json,
                                         const JwksOptions& options = {},
                                         std::vector<std::string>* skipped = nullptr);

// Ok, or kUnauthenticated with a message. REQUIRES nothing of the inputs.
Status VerifyJws(const PublicKey& key, JwsAlg alg, std::string_view signing_input,
                 std::string_view signature);

// RFC 7638 SHA-256 JWK thumbprint, base64url.
std::string JwkThumbprint(const PublicKey& key);

// The key with this kid whose type fixes `alg`. Unknown kid: kNotFound; kid
// known but no key for alg: kUnauthenticated; two candidates: kUnauthenticated.
Result<const PublicKey*> SelectKey(const std::vector<PublicKey>& keys, std::string_view kid,
                                   JwsAlg alg);

// Tooling and tests: signs header.payload with a private key of the type alg
// needs and returns the compact JWS (ES256 signature in P1363 r||s form;
// kRS256 signs with PKCS#1 v1.5 padding).
Result<std::string> SignJws(EVP_PKEY* private_key, JwsAlg alg, std::string_view header_json,
                            std::string_view payload_json);

}  // namespace vakt::bytecode
