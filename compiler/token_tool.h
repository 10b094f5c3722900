// Test tooling for real tokens: key generation and loading, access-token
// minting (RFC 9068 `at+jwt`) and DPoP proof minting (RFC 9449). Used by
// `vakt token ...`, by the policy test runner (tests with `token { ... }`)
// and by the tests and the demo. NOT for production token issuance: keys are
// whatever the caller hands in, and no issuer-side checks are made.
//
// Runtime verification lives in bytecode/jose.h and bytecode/fapi_auth.h;
// this file only signs (through jose.h's SignJws). Nothing here throws.
// Tested by tests/token_tool_test.cc (and, through the CLI, token_cli_test.cc).
#pragma once

#include <openssl/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "bytecode/jose.h"
#include "bytecode/status.h"

namespace vakt::compiler {

// A private signing key with its JOSE identity. Move-only.
class SigningKey {
 public:
  SigningKey(SigningKey&&) noexcept;
  SigningKey& operator=(SigningKey&&) noexcept;
  SigningKey(const SigningKey&) = delete;
  SigningKey& operator=(const SigningKey&) = delete;
  ~SigningKey();

  EVP_PKEY* pkey() const { return pkey_; }
  bytecode::JwsAlg alg() const { return alg_; }
  const std::string& kid() const { return kid_; }
  void set_kid(std::string kid) { kid_ = std::move(kid); }

  // The public JWK (kty, crv/n/e or x/y, kid, alg, use "sig"), compact JSON
  // with members in a fixed order.
  std::string PublicJwk() const;
  // The private JWK (public members plus d, and p/q/dp/dq/qi for RSA).
  std::string PrivateJwk() const;
  // PKCS#8 PEM of the private key.
  std::string PrivatePem() const;
  // RFC 7638 thumbprint of the public key (what `cnf.jkt` holds).
  std::string Thumbprint() const;

 private:
  friend class SigningKeyFactory;
  SigningKey() = default;
  EVP_PKEY* pkey_ = nullptr;
  bytecode::JwsAlg alg_ = bytecode::JwsAlg::kES256;
  std::string kid_;
};

// Generates a fresh key for `alg` (ES256: P-256; PS256: RSA 2048 (or
// `rsa_bits`); EdDSA: Ed25519). An empty kid becomes the thumbprint.
Result<SigningKey> GenerateKey(bytecode::JwsAlg alg, std::string kid = {}, int rsa_bits = 2048);

// Loads a private key from PEM (PKCS#8 or traditional) or a private JWK
// (with `d`). The algorithm follows the key type (RSA -> PS256, P-256 ->
// ES256, Ed25519 -> EdDSA). kid: from the JWK, else `kid` if given, else the
// thumbprint. Errors say what is wrong with the text.
Result<SigningKey> LoadSigningKey(std::string_view pem_or_jwk, std::string kid = {});

// The RFC 7638 thumbprint of a key given as text: anything LoadSigningKey
// accepts, a public JWK, or a PEM public key (SubjectPublicKeyInfo).
Result<std::string> KeyThumbprint(std::string_view key_text);

struct TokenOptions {
  std::string typ = "at+jwt";      // header typ (empty: no typ)
  std::optional<std::string> kid;  // header kid (default: the key's kid; empty: no kid)
  std::optional<std::string> alg;  // header alg override (negative tests only)
  // Claims filled in unless `claims_json` already has them:
  //   iat = now, nbf = now, exp = now + ttl, jti = 16 random bytes base64url.
  int64_t now = 0;
  int64_t ttl = 300;
  std::string cnf_jkt;  // non-empty: adds "cnf": {"jkt": ...}
  std::string cnf_x5t;  // non-empty: adds "cnf": {"x5t#S256": ...}
  // (Both merge into a `cnf` object already in the claims; a `cnf` that is
  // not an object is an error.)
};

// Mints an access token: `claims_json` must be a JSON object (its members
// are kept as given, in order); see TokenOptions for what is added.
Result<std::string> MintAccessToken(const SigningKey& key, std::string_view claims_json,
                                    const TokenOptions& opts);

struct ProofOptions {
  std::string method;              // htm
  std::string url;                 // htu (as given; no normalisation)
  std::string access_token;        // non-empty: adds ath = b64url(SHA-256(token))
  int64_t now = 0;                 // iat
  std::string jti;                 // default: 16 random bytes base64url
  std::string nonce;               // non-empty: adds "nonce"
  std::string typ = "dpop+jwt";    // empty: no typ
  std::optional<std::string> alg;  // header alg override (negative tests only)
  bool embed_private_jwk = false;  // negative tests: put d etc. in the header jwk
};

// Mints a DPoP proof signed by `key`, whose public JWK goes in the header.
Result<std::string> MintDpopProof(const SigningKey& key, const ProofOptions& opts);

// A self-signed client certificate for mTLS tests: PEM of the certificate
// and RFC 8705 thumbprint (base64url SHA-256 of the DER).
struct TestCertificate {
  std::string cert_pem;
  std::string key_pem;
  std::string x5t_s256;
};
Result<TestCertificate> MakeTestCertificate(std::string_view common_name);

}  // namespace vakt::compiler
