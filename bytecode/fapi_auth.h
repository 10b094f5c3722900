// FAPI 2.0 resource-server authentication of one request (the checklist in
// docs/fapi.md, drawn from shared/reference/fapi2-resource-server.md):
// transport (TLS version and cipher), where the token may be (Authorization
// header only, never the query), the access token (compact JWS, RFC 9068
// section 4 in order, revocation), the sender constraint (DPoP proof per
// RFC 9449 4.3 with a replay cache and optional server nonces, or an mTLS
// certificate binding per RFC 8705), then the route's required scopes.
//
// The VM (vm.cc) runs Authenticate() after routing and before the route's
// program when the route uses the `fapi2` profile; the verified token's
// claims then back `token.*`. Everything is attacker-controlled; every
// failure is a deny with the RFC 6750 / RFC 9449 status, error and
// challenge, never a crash, and memory stays bounded (limits of jose.h,
// the bounded caches of replay_cache.h and token_cache.h).
//
// Thread-safety: Authenticate is reentrant; IssuerKeys and AuthPolicy are
// immutable; the caches in AuthEnv are internally synchronised.
//
// Scheme rules (the choices the RFCs leave open, fixed here):
//  - Accepted schemes per route: kDPoP accepts the DPoP scheme only; kMtls
//    the Bearer scheme only (with a certificate-bound token); kAny and
//    kNone both. With no Authorization header the route advertises: kDPoP
//    a DPoP challenge, kMtls and kNone a Bearer one, kAny both (DPoP first).
//  - A deny after the scheme is known carries the challenge of the scheme
//    used, or the route's challenges if the route does not accept it.
//  - A token in the query: 400 invalid_request with a Bearer challenge
//    (RFC 6750 2.3 is a Bearer method). A malformed or repeated
//    Authorization header: 400 invalid_request, the route's challenges.
//  - DPoP scheme on a kMtls route, or with a token without cnf.jkt: 401
//    invalid_token (rule kRuleBinding). Two or more DPoP headers: 401
//    invalid_dpop_proof (RFC 9449 4.3 makes it a proof check). A missing,
//    repeated or malformed Host header (needed for `htu`): 400
//    invalid_request.
//  - Bearer scheme: a DPoP-bound token is refused (RFC 9449 7.2); a DPoP
//    header beside a Bearer credential is ignored (the token decides);
//    on a kDPoP route: 401 invalid_token "DPoP required".
//  - The DPoP replay cache is the very last check, after the signature, the
//    claims, the nonce and the cnf binding, so only authenticated, bound
//    proofs take a slot. Its window must cover the proof acceptance span:
//    ReplayCache window >= dpop_window + 2 * leeway.
//  - DPoP proof algorithms: the issuer's allowed algorithms among PS256,
//    ES256 and EdDSA (all three if it allows none of them); never RS256.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bytecode/fapi_http.h"
#include "bytecode/jose.h"
#include "bytecode/replay_cache.h"
#include "bytecode/request.h"
#include "bytecode/revocation.h"
#include "bytecode/token_cache.h"

namespace vakt::bytecode {

// Which proof of possession a route accepts (format.h AuthRecord::sender).
enum class SenderConstraint : uint8_t {
  kAny = 0,   // DPoP or mTLS (the fapi2 default)
  kDPoP = 1,  // DPoP only
  kMtls = 2,  // certificate-bound tokens only
  kNone = 3,  // loosened: plain bearer tokens accepted too
};

// What the connection must be (format.h AuthRecord::tls).
enum class TlsRequirement : uint8_t {
  kFapi = 0,   // TLS 1.3, or TLS 1.2 with a BCP 195 suite (the default)
  kTls13 = 1,  // TLS 1.3 only
  kAny = 2,    // loosened: not checked
};

// Largest IssuerKeys::leeway MakeIssuerKeys accepts (seconds).
inline constexpr int64_t kMaxIssuerLeeway = 300;

// Bit of JwsAlg `a` in an algorithm set.
constexpr uint32_t AlgBit(JwsAlg a) { return 1u << static_cast<uint32_t>(a); }

// One issuer a bundle trusts, ready for verification (built when a bundle
// loads; immutable).
struct IssuerKeys {
  std::string name;      // declared name, for messages
  std::string issuer;    // `iss` must equal this exactly
  std::string audience;  // `aud` (string or array) must contain this
  std::vector<PublicKey> keys;
  uint32_t algs = 0;     // allowed token algorithms (AlgBit set)
  int64_t leeway = 0;    // seconds of clock skew on exp / nbf / iat
  bool fapi = true;      // false: the policy opted out of the FAPI profile
  // SHA-256 over everything above (the cache identity of this verifier).
  std::array<uint8_t, 32> config_digest{};
};

// A route's authentication settings (from its AuthRecord).
struct AuthPolicy {
  const IssuerKeys* issuer = nullptr;  // REQUIRED non-null
  SenderConstraint sender = SenderConstraint::kAny;
  TlsRequirement tls = TlsRequirement::kFapi;
  bool dpop_nonce = false;     // proofs must carry a server nonce
  int64_t dpop_window = 60;    // seconds a proof's iat may lie in the past
  std::string_view scope;      // required scopes, space-separated ("" none)
};

// Server-issued DPoP nonces (RFC 9449 section 8).
class NonceSource {
 public:
  virtual ~NonceSource() = default;
  // True if `nonce` was issued by this source and is still fresh at `now`.
  virtual bool Valid(std::string_view nonce, int64_t now) const = 0;
  // The nonce to hand out at `now` (sent in the DPoP-Nonce header).
  virtual std::string Current(int64_t now) const = 0;
};

// Stateless nonces: base64url(bucket || HMAC-SHA256(secret, bucket)[0..16))
// where bucket = floor(now / period) as 8 bytes big-endian; the current and
// previous buckets are valid (a nonce lives between one and two periods).
// The MAC is compared in constant time. A secret shorter than 16 bytes
// makes Valid() always false (fail closed).
class HmacNonceSource : public NonceSource {
 public:
  // `secret` must be at least 16 bytes (random per agent or fleet).
  HmacNonceSource(std::string secret, int64_t period_seconds);
  bool Valid(std::string_view nonce, int64_t now) const override;
  std::string Current(int64_t now) const override;

 private:
  std::string Make(int64_t bucket) const;
  std::string secret_;
  int64_t period_;
};

// Runtime state shared by decisions. All optional except `replay` when a
// route accepts DPoP (without it every DPoP proof is refused: fail closed).
struct AuthEnv {
  ReplayCache* replay = nullptr;
  TokenCache* tokens = nullptr;              // verified-token cache
  const RevocationSet* revoked = nullptr;    // consulted on every request
  const NonceSource* nonces = nullptr;       // required if a route demands nonces
};

// Stable rule ids of authentication denies (the Decision's `rule`).
inline constexpr std::string_view kRuleTransport = "fapi2.transport";  // TLS facts
inline constexpr std::string_view kRuleRequest = "fapi2.request";      // token placement
inline constexpr std::string_view kRuleToken = "fapi2.token";          // the access token
inline constexpr std::string_view kRuleDPoP = "fapi2.dpop";            // the DPoP proof
inline constexpr std::string_view kRuleBinding = "fapi2.binding";      // cnf vs proof / cert
inline constexpr std::string_view kRuleScope = "fapi2.scope";          // required scopes

struct AuthOutcome {
  bool ok = false;
  // On a deny:
  uint16_t status = 0;       // 400, 401 or 403
  std::string_view error;    // invalid_request, invalid_token, invalid_dpop_proof,
                             // use_dpop_nonce, insecure_transport, insufficient_scope,
                             // or "" (no credentials at all)
  std::string description;   // human-readable, names the failed check
  std::string_view rule;     // one of the kRule* ids
  // Complete WWW-Authenticate values (Challenge() of fapi_http.h), 0 to 2:
  // DPoP (with algs) and/or Bearer depending on the scheme used and what the
  // route accepts.
  std::array<std::string, 2> challenges;
  uint8_t challenge_count = 0;
  std::string dpop_nonce;    // non-empty: send as the DPoP-Nonce header
  // On success: the verified token (from the cache or just verified).
  std::shared_ptr<const VerifiedToken> token;
};

// Authenticates `req` (req.time is "now") for a route with `policy`.
AuthOutcome Authenticate(const AuthPolicy& policy, const HttpRequest& req, const AuthEnv& env);

// Only the transport check (TLS version and cipher). Ok outcome if it holds.
AuthOutcome CheckTransport(TlsRequirement tls, const TlsInfo& info);

// Only the scope check against verified claims. Ok outcome if every scope
// in `required` is in the space-separated `scope` claim of `claims` (exact
// words, no prefixes). Else 403 insufficient_scope with the challenges the
// route advertises for `sender` (see the scheme rules above), with scope=.
AuthOutcome CheckScope(std::string_view required, const ClaimsProvider* claims,
                       SenderConstraint sender);

// Builds IssuerKeys from a declared issuer (used by Bundle::Load): parses
// the JWKS, computes config_digest. Errors name the failing key (index and
// kid). Strict: every key must parse (ParseJwks without skipping; tooling
// that imports a foreign JWKS can use JwksOptions::skip_unsupported first);
// an empty key set is an error. fapi=false parses in legacy mode (RS256 for
// RSA keys declaring it, RSA >= 1024 bits). Also refused: empty issuer or
// audience, algs empty or with unknown bits, RS256 under fapi, leeway
// outside [0, kMaxIssuerLeeway].
Result<std::shared_ptr<const IssuerKeys>> MakeIssuerKeys(std::string name, std::string issuer,
                                                        std::string audience,
                                                        std::string_view jwks_json, uint32_t algs,
                                                        int64_t leeway, bool fapi);

}  // namespace vakt::bytecode
