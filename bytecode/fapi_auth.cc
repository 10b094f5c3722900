// FAPI 2.0 resource-server authentication (fapi_auth.h): one function that
// turns an attacker-controlled request into either a verified access token
// or a deny with the exact RFC 6750 / RFC 9449 status, error, description,
// rule and WWW-Authenticate challenges. Why one file: the checks only make
// sense in a fixed order (cheap transport and placement checks first, the
// replay cache touched last so unauthenticated junk never fills it), and
// that order is the security argument, so it is written down in one place
// (and, check by check, in docs/fapi.md "Runtime checks").
//
// Costs: every step is linear in its (bounded) input: the access token at
// most JwsLimits{} (16 KiB), a DPoP proof at most kMaxProofBytes, the
// client certificate at most kMaxCertPem; at most two signature
// verifications (token, unless cached, and proof) and one replay-cache
// insertion per request. No recursion on attacker input, nothing throws.
// Per-thread memos of pure functions (the parse of the Authorization value,
// the `ath` digest of a token, the parsed key of a DPoP proof header, a
// certificate's thumbprint; see "memos" below) and a per-thread JSON parser spare a client's repeated requests the
// work that does not change between them, without changing any outcome.
//
// Tested by tests/fapi_auth_test.cc (a negative matrix, one test per check).
#include "bytecode/fapi_auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstring>
#include <functional>
#include <memory>
#include <span>
#include <utility>

#include "bytecode/claims.h"
#include "bytecode/sha256.h"

namespace vakt::bytecode {
namespace {

constexpr std::string_view kErrInvalidRequest = "invalid_request";
constexpr std::string_view kErrInvalidToken = "invalid_token";
constexpr std::string_view kErrInvalidProof = "invalid_dpop_proof";
constexpr std::string_view kErrUseNonce = "use_dpop_nonce";
constexpr std::string_view kErrTransport = "insecure_transport";
constexpr std::string_view kErrScope = "insufficient_scope";

constexpr size_t kMaxJtiBytes = 256;          // token and proof `jti`
constexpr size_t kMaxProofBytes = 8 * 1024;   // a whole DPoP proof
constexpr size_t kMaxCertPem = 64 * 1024;     // a client certificate
constexpr size_t kMaxHostBytes = 262;         // 255-byte name, ':' and a port
constexpr size_t kMaxDescription = 256;       // as Challenge() sends it

constexpr uint32_t kFapiAlgs =
    AlgBit(JwsAlg::kPS256) | AlgBit(JwsAlg::kES256) | AlgBit(JwsAlg::kEdDSA);
constexpr uint32_t kKnownAlgs = kFapiAlgs | AlgBit(JwsAlg::kRS256);

// Which challenges a deny carries (bit set; DPoP is sent first).
enum ChallengeBits : unsigned { kNoChallenge = 0, kBearerChallenge = 1, kDPoPChallenge = 2 };

// What a route advertises when the client sent no usable scheme.
unsigned RouteChallenges(SenderConstraint sender) {
  switch (sender) {
    case SenderConstraint::kDPoP:
      return kDPoPChallenge;
    case SenderConstraint::kMtls:
    case SenderConstraint::kNone:
      return kBearerChallenge;
    case SenderConstraint::kAny:
      break;
  }
  return kDPoPChallenge | kBearerChallenge;
}

// The challenge for a failure with `scheme`: that scheme when the route
// accepts it, else what the route advertises (so a client is never told to
// retry with a scheme the route refuses).
unsigned SchemeChallenges(AuthScheme scheme, SenderConstraint sender) {
  if (scheme == AuthScheme::kDPoP) {
    return sender == SenderConstraint::kMtls ? RouteChallenges(sender) : kDPoPChallenge;
  }
  return sender == SenderConstraint::kDPoP ? RouteChallenges(sender) : kBearerChallenge;
}

// Algorithms accepted for DPoP proofs (and advertised in `algs`): the FAPI
// algorithms the issuer allows, or all three if it allows none of them.
uint32_t ProofAlgs(const IssuerKeys* issuer) {
  uint32_t set = issuer != nullptr ? issuer->algs & kFapiAlgs : 0;
  return set != 0 ? set : kFapiAlgs;
}

// The `algs` text of every FAPI algorithm set, built once (no allocation
// per request). REQUIRES: set is a subset of kFapiAlgs.
std::string_view AlgsParam(uint32_t set) {
  static const std::array<std::string, 8> kText = [] {
    std::array<std::string, 8> out;
    for (uint32_t bits = 0; bits < 8; ++bits) {
      for (JwsAlg a : {JwsAlg::kES256, JwsAlg::kPS256, JwsAlg::kEdDSA}) {
        if ((bits & AlgBit(a)) == 0) continue;
        if (!out[bits].empty()) out[bits] += ' ';
        out[bits] += JwsAlgName(a);
      }
    }
    return out;
  }();
  return kText[set & kFapiAlgs];
}

// A simdjson parser per thread for the small JSON documents of a request
// (token and proof headers, proof claims): reused, so parsing allocates
// nothing once warm. Callers must be done with one document before parsing
// the next (nothing here keeps DOM values across parses).
simdjson::dom::parser& ThreadParser() {
  thread_local simdjson::dom::parser parser;
  return parser;
}

// Attacker or proxy text quoted in a description: bounded, printable ASCII.
std::string Shown(std::string_view s, size_t limit = 64) {
  std::string out;
  for (char c : s.substr(0, limit)) {
    unsigned char u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u >= 0x7f) ? '?' : c;
  }
  if (s.size() > limit) out += "...";
  return out;
}

AuthOutcome Deny(uint16_t status, std::string_view error, std::string description,
                 std::string_view rule, unsigned challenges, std::string_view algs,
                 std::string_view scope = {}) {
  AuthOutcome o;
  o.status = status;
  o.error = error;
  if (description.size() > kMaxDescription) description.resize(kMaxDescription);
  o.description = std::move(description);
  o.rule = rule;
  if (challenges & kDPoPChallenge) {
    o.challenges[o.challenge_count++] =
        Challenge(AuthScheme::kDPoP, error, o.description, scope, algs);
  }
  if (challenges & kBearerChallenge) {
    o.challenges[o.challenge_count++] = Challenge(AuthScheme::kBearer, error, o.description, scope);
  }
  return o;
}

AuthOutcome Ok() {
  AuthOutcome o;
  o.ok = true;
  return o;
}



std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// True if `text` is the base64url encoding of `bytes` (as Base64UrlEncode
// writes it), without building the encoding on the heap.
bool Base64UrlEquals(std::string_view text, const std::array<uint8_t, 32>& bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  char out[44];
  size_t n = 0;
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t v = (uint32_t{bytes[i]} << 16) | (uint32_t{bytes[i + 1]} << 8) | bytes[i + 2];
    out[n++] = kAlphabet[(v >> 18) & 63];
    out[n++] = kAlphabet[(v >> 12) & 63];
    out[n++] = kAlphabet[(v >> 6) & 63];
    out[n++] = kAlphabet[v & 63];
  }
  // 32 = 3 * 10 + 2: two bytes left, three characters, no padding.
  uint32_t v = (uint32_t{bytes[i]} << 16) | (uint32_t{bytes[i + 1]} << 8);
  out[n++] = kAlphabet[(v >> 18) & 63];
  out[n++] = kAlphabet[(v >> 12) & 63];
  out[n++] = kAlphabet[(v >> 6) & 63];
  return text == std::string_view(out, n);
}

// a + b, saturated at the int64 range.
int64_t SatAdd(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return b > 0 ? INT64_MAX : INT64_MIN;
  return r;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// ---- transport --------------------------------------------------------------

// TLS 1.2 suites of BCP 195 (RFC 9325 4.2) and the ECDHE ChaCha20-Poly1305
// suites, in OpenSSL and IANA spelling.
bool Bcp195Tls12Cipher(std::string_view c) {
  static constexpr std::string_view kSuites[] = {
      "ECDHE-ECDSA-AES128-GCM-SHA256",
      "ECDHE-ECDSA-AES256-GCM-SHA384",
      "ECDHE-RSA-AES128-GCM-SHA256",
      "ECDHE-RSA-AES256-GCM-SHA384",
      "ECDHE-ECDSA-CHACHA20-POLY1305",
      "ECDHE-RSA-CHACHA20-POLY1305",
      "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
      "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
      "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
      "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
      "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
      "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
  };
  return std::find(std::begin(kSuites), std::end(kSuites), c) != std::end(kSuites);
}

// ---- request facts ----------------------------------------------------------

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// True if a query parameter of `target` is named `access_token` (after
// '+' and percent decoding; a bad escape stays literal). One pass.
bool QueryHasAccessToken(std::string_view target) {
  constexpr std::string_view kName = "access_token";
  size_t q = target.find('?');
  if (q == std::string_view::npos) return false;
  std::string_view query = target.substr(q + 1);
  query = query.substr(0, query.find('#'));
  while (true) {
    size_t amp = query.find('&');
    std::string_view param = query.substr(0, amp);
    std::string_view raw_name = param.substr(0, param.find('='));
    std::string name;
    for (size_t i = 0; i < raw_name.size() && name.size() <= kName.size(); ++i) {
      char c = raw_name[i];
      if (c == '+') {
        c = ' ';
      } else if (c == '%' && i + 2 < raw_name.size() && HexValue(raw_name[i + 1]) >= 0 &&
                 HexValue(raw_name[i + 2]) >= 0) {
        c = static_cast<char>(HexValue(raw_name[i + 1]) * 16 + HexValue(raw_name[i + 2]));
        i += 2;
      }
      name += c;
    }
    if (name == kName) return true;
    if (amp == std::string_view::npos) return false;
    query.remove_prefix(amp + 1);
  }
}

// Host header characters: a reg-name, IPv4 or bracketed IPv6, and a port.
// Anything that could end the authority ('/', '?', '#', '@') is refused.
bool ValidHost(std::string_view host) {
  if (host.empty() || host.size() > kMaxHostBytes) return false;
  for (char c : host) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_' || c == ':' || c == '[' || c == ']';
    if (!ok) return false;
  }
  return true;
}

// The URI the request was sent to, for `htu`: scheme from the connection,
// authority from the one Host header, path from the target (no query).
Result<std::string> RequestUri(const HttpRequest& req) {
  std::string_view host;
  int hosts = 0;
  for (const HeaderField& h : req.headers) {
    if (EqualsIgnoreCase(h.name, "host")) {
      host = TrimOws(h.value);
      ++hosts;
    }
  }
  if (hosts == 0) return InvalidArgument("the request has no Host header to check htu against");
  if (hosts > 1) return InvalidArgument("the request has more than one Host header");
  if (!ValidHost(host)) return InvalidArgument("the Host header is malformed");
  std::string_view path = req.target.substr(0, req.target.find_first_of("?#"));
  if (path.empty() || path.front() != '/') {
    return InvalidArgument("the request target is not in origin form");
  }
  std::string uri = req.tls.version.empty() ? "http://" : "https://";
  uri.append(host);
  uri.append(path);
  return uri;
}

// ---- JSON helpers -----------------------------------------------------------

enum class Member { kAbsent, kWrongType, kOk };

Member GetString(const simdjson::dom::object& obj, std::string_view name, std::string_view* out) {
  simdjson::dom::element e;
  if (obj.at_key(name).get(e) != simdjson::SUCCESS) return Member::kAbsent;
  return e.get(*out) == simdjson::SUCCESS ? Member::kOk : Member::kWrongType;
}

// NumericDate as an integer (RFC 7519 allows fractions; RFC 9068 tokens
// and RFC 9449 proofs use whole seconds, and integers keep comparisons exact).
Member GetInt(const simdjson::dom::object& obj, std::string_view name, int64_t* out) {
  simdjson::dom::element e;
  if (obj.at_key(name).get(e) != simdjson::SUCCESS) return Member::kAbsent;
  return e.get_int64().get(*out) == simdjson::SUCCESS ? Member::kOk : Member::kWrongType;
}

bool ParseObject(simdjson::dom::parser& parser, std::string_view json,
                 simdjson::dom::object* out) {
  simdjson::dom::element root;
  return parser.parse(json.data(), json.size()).get(root) == simdjson::SUCCESS &&
         root.get(*out) == simdjson::SUCCESS;
}

// ---- the access token -------------------------------------------------------

// `typ` of an RFC 9068 token: "at+jwt", or "application/at+jwt" with the
// media-type prefix in any case (RFC 7515 4.1.9); "at+jwt" itself exact.
bool AccessTokenTyp(std::string_view typ) {
  constexpr std::string_view kPrefix = "application/";
  if (typ.size() > kPrefix.size() && EqualsIgnoreCase(typ.substr(0, kPrefix.size()), kPrefix)) {
    typ.remove_prefix(kPrefix.size());
  }
  return typ == "at+jwt";
}

// Verifies `token` against `iss` at `now` (RFC 9068 section 4, in order).
// Null with `*why` set on failure.
std::shared_ptr<const VerifiedToken> VerifyAccessToken(const IssuerKeys& iss,
                                                       std::string_view token, int64_t now,
                                                       int64_t leeway, std::string* why) {
  auto fail = [&](std::string m) -> std::shared_ptr<const VerifiedToken> {
    *why = std::move(m);
    return nullptr;
  };
  auto jws = ParseCompactJws(token, JwsLimits{});
  if (!jws.ok()) return fail("malformed access token: " + jws.status().message());

  simdjson::dom::parser& parser = ThreadParser();
  simdjson::dom::object header;
  if (!ParseObject(parser, jws->header_json, &header)) return fail("malformed token header");
  std::string_view typ, alg_name, kid;
  if (GetString(header, "typ", &typ) != Member::kOk) return fail("the token has no typ");
  if (!AccessTokenTyp(typ)) return fail("the token typ is not at+jwt");
  if (GetString(header, "alg", &alg_name) != Member::kOk) return fail("the token has no alg");
  auto alg = ParseAlg(alg_name, /*allow_legacy=*/!iss.fapi);
  if (!alg.ok() || (iss.algs & AlgBit(*alg)) == 0) {
    return fail("the token algorithm " + Shown(alg_name, 16) + " is not allowed");
  }
  simdjson::dom::element crit;
  if (header.at_key("crit").get(crit) == simdjson::SUCCESS) {
    return fail("the token header has critical extensions (crit) that are not understood");
  }
  Member has_kid = GetString(header, "kid", &kid);
  if (has_kid == Member::kWrongType) return fail("the token kid is not a string");
  auto key = SelectKey(iss.keys, kid, *alg);
  if (!key.ok()) {
    if (key.status().code() == StatusCode::kNotFound) return fail("unknown key (kid)");
    return fail("no single key of the issuer matches kid and alg");
  }
  if (!VerifyJws(**key, *alg, jws->signing_input, jws->signature).ok()) {
    return fail("the token signature does not verify");
  }

  // The verified payload, parsed once (duplicate members refused at any depth).
  auto parsed = JsonClaims::Parse(jws->payload_json);
  if (!parsed.ok()) return fail("malformed token claims: " + parsed.status().message());
  std::shared_ptr<const JsonClaims> claims(std::move(parsed).value());
  simdjson::dom::object c;
  if (claims->root().get(c) != simdjson::SUCCESS) return fail("the token claims are not an object");

  std::string_view iss_claim;
  Member m = GetString(c, "iss", &iss_claim);
  if (m == Member::kAbsent) return fail("the token has no iss");
  if (m == Member::kWrongType || iss_claim != iss.issuer) return fail("wrong issuer");

  simdjson::dom::element aud;
  if (c.at_key("aud").get(aud) != simdjson::SUCCESS) return fail("the token has no aud");
  bool aud_ok = false;
  std::string_view one;
  simdjson::dom::array auds;
  if (aud.get(one) == simdjson::SUCCESS) {
    aud_ok = one == iss.audience;
  } else if (aud.get(auds) == simdjson::SUCCESS) {
    for (simdjson::dom::element a : auds) {
      if (a.get(one) != simdjson::SUCCESS) return fail("the token aud holds a non-string");
      aud_ok = aud_ok || one == iss.audience;
    }
  } else {
    return fail("the token aud is neither a string nor an array");
  }
  if (!aud_ok) return fail("wrong audience");

  int64_t exp = 0, nbf = 0, iat = 0;
  m = GetInt(c, "exp", &exp);
  if (m != Member::kOk) return fail("the token has no integer exp");
  if (now >= SatAdd(exp, leeway)) return fail("the token has expired");
  m = GetInt(c, "nbf", &nbf);
  if (m == Member::kWrongType) return fail("the token nbf is not an integer");
  if (m == Member::kOk && nbf > SatAdd(now, leeway)) return fail("the token is not yet valid (nbf)");
  m = GetInt(c, "iat", &iat);
  if (m != Member::kOk) return fail("the token has no integer iat");
  if (iat > SatAdd(now, leeway)) return fail("the token was issued in the future (iat)");

  std::string_view sub, client_id, jti, scope;
  if (GetString(c, "sub", &sub) != Member::kOk) return fail("the token has no string sub");
  if (GetString(c, "client_id", &client_id) != Member::kOk) {
    return fail("the token has no string client_id");
  }
  if (GetString(c, "jti", &jti) != Member::kOk) return fail("the token has no string jti");
  if (jti.empty() || jti.size() > kMaxJtiBytes) {
    return fail("the token jti is empty or longer than 256 bytes");
  }
  if (GetString(c, "scope", &scope) == Member::kWrongType) {
    return fail("the token scope is not a string");
  }

  std::string_view jkt, x5t;
  simdjson::dom::element cnf_el;
  if (c.at_key("cnf").get(cnf_el) == simdjson::SUCCESS) {
    simdjson::dom::object cnf;
    if (cnf_el.get(cnf) != simdjson::SUCCESS) return fail("the token cnf is not an object");
    Member mj = GetString(cnf, "jkt", &jkt);
    Member mx = GetString(cnf, "x5t#S256", &x5t);
    if (mj == Member::kWrongType || mx == Member::kWrongType ||
        (mj == Member::kOk && jkt.empty()) || (mx == Member::kOk && x5t.empty())) {
      return fail("the token cnf holds a malformed jkt or x5t#S256");
    }
    // A confirmation method this server cannot check must not pass as "unbound".
    if (mj == Member::kAbsent && mx == Member::kAbsent) {
      return fail("the token cnf has no supported confirmation method (jkt, x5t#S256)");
    }
  }

  auto v = std::make_shared<VerifiedToken>();
  v->claims_json = std::move(jws->payload_json);
  v->claims = std::move(claims);
  v->jti = std::string(jti);
  v->sub = std::string(sub);
  v->client_id = std::string(client_id);
  v->cnf_jkt = std::string(jkt);
  v->cnf_x5t = std::string(x5t);
  v->iat = iat;
  v->exp = exp;
  v->verifier = iss.config_digest;
  return v;
}

// A cached token is reused only under the same issuer configuration and
// while its time claims still hold (the cache itself drops it at exp).
bool CachedStillValid(const VerifiedToken& t, const IssuerKeys& iss, int64_t now,
                      int64_t leeway) {
  if (t.verifier != iss.config_digest || !t.claims) return false;
  if (now >= SatAdd(t.exp, leeway) || t.iat > SatAdd(now, leeway)) return false;
  simdjson::dom::object c;
  int64_t nbf = 0;
  if (t.claims->root().get(c) != simdjson::SUCCESS) return false;
  Member m = GetInt(c, "nbf", &nbf);
  return m == Member::kAbsent || (m == Member::kOk && nbf <= SatAdd(now, leeway));
}

// RFC 8705 3: the presented client certificate must be the token's.
// Empty on success, else the description.
std::string CheckCertificate(const TlsInfo& tls, std::string_view x5t) {
  if (tls.client_cert_pem.empty()) return "no client certificate was presented";
  if (tls.client_cert_pem.size() > kMaxCertPem) return "the client certificate is too large";
  // A memo of the last certificate this thread read (see "memos" below): a
  // connection presents the same one on every request, so a byte comparison
  // of the PEM (public data) replaces the decoding and the SHA-256.
  thread_local std::string last_pem;
  thread_local std::string last_thumb;
  if (last_thumb.empty() || last_pem != tls.client_cert_pem) {
    auto thumb = CertThumbprint(tls.client_cert_pem);
    if (!thumb.ok()) return "the client certificate cannot be read";
    last_pem.assign(tls.client_cert_pem);
    last_thumb = std::move(thumb).value();
  }
  if (!ConstantTimeEquals(last_thumb, x5t)) {
    return "the client certificate does not match the token (cnf x5t#S256)";
  }
  return {};
}

// ---- memos: per-thread results of pure functions -----------------------------

// A client presents the same access token, DPoP key and certificate on
// every request of its connection, and each costs real work to digest or
// import. The memos below remember, per thread (no lock), the results of
// pure functions for the last inputs seen, keyed by the whole input text:
// a hit is exactly what computing again would give, only successes are
// kept, memory is bounded by a fixed number of slots, and a flood of fresh
// inputs costs no more than computing each, which is what happens without
// them.

// Equality of two strings in time independent of where they differ (a
// remembered token is another request's secret).
bool SameBytes(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  uint64_t diff = 0;
  size_t i = 0;
  for (; i + 8 <= a.size(); i += 8) {
    uint64_t x, y;
    std::memcpy(&x, a.data() + i, 8);
    std::memcpy(&y, b.data() + i, 8);
    diff |= x ^ y;
  }
  for (; i < a.size(); ++i) diff |= static_cast<uint8_t>(a[i] ^ b[i]);
  return diff == 0;
}

// Sha256(token), for `ath` (four slots, by the token's last character,
// which is signature material). Tokens over the JWS limit are not kept.
std::array<uint8_t, 32> TokenDigest(std::string_view token) {
  if (token.size() > JwsLimits{}.max_token_bytes) return Sha256(token);
  struct Slot {
    std::string text;
    std::array<uint8_t, 32> digest{};
    bool valid = false;
  };
  thread_local std::array<Slot, 4> slots;
  Slot& slot = slots[token.empty() ? 0 : static_cast<unsigned char>(token.back()) % 4];
  if (!slot.valid || !SameBytes(slot.text, token)) {
    slot.digest = Sha256(token);
    slot.text.assign(token);
    slot.valid = true;
  }
  return slot.digest;
}

// ReadAuthorization(headers), with the parse of the one Authorization value
// remembered (one slot): checking a long token68 credential character by
// character costs more than all the rest of a cached-token decision, and a
// client sends the same value on every request. The header list is still
// searched on every call, so a missing or repeated header takes the usual
// path; only a successful parse of the very same text is reused.
Result<AuthorizationToken> ReadAuthorizationMemo(std::span<const HeaderField> headers) {
  const HeaderField* found = nullptr;
  for (const HeaderField& h : headers) {
    if (!EqualsIgnoreCase(h.name, "authorization")) continue;
    if (found != nullptr) return ReadAuthorization(headers);  // refused there
    found = &h;
  }
  if (found == nullptr || found->value.size() > JwsLimits{}.max_token_bytes + 64) {
    return ReadAuthorization(headers);
  }
  struct Memo {
    std::string value;
    AuthScheme scheme = AuthScheme::kNone;
    size_t offset = 0;  // of the token in `value`
    size_t length = 0;
  };
  thread_local Memo memo;
  if (memo.scheme != AuthScheme::kNone && SameBytes(memo.value, found->value)) {
    AuthorizationToken out;
    out.scheme = memo.scheme;
    out.token = found->value.substr(memo.offset, memo.length);
    return out;
  }
  auto parsed = ReadAuthorization(headers);
  if (parsed.ok() && parsed->scheme != AuthScheme::kNone) {
    memo.value.assign(found->value);
    memo.scheme = parsed->scheme;
    memo.offset = static_cast<size_t>(parsed->token.data() - found->value.data());
    memo.length = parsed->token.size();
  }
  return parsed;
}

// The key of a DPoP proof, by the exact decoded text of the proof's header
// (typ, alg and jwk: the same on every proof of a client): ParseJwk of the
// minified `jwk` member, and its RFC 7638 thumbprint. Importing a key into
// OpenSSL costs a good part of a verification. Direct-mapped, 32 slots.
constexpr size_t kProofKeySlots = 32;

struct ProofKeySlot {
  std::string header;                // the decoded proof header
  std::unique_ptr<PublicKey> key;    // ParseJwk(minify(header.jwk))
  std::string thumbprint;            // JwkThumbprint(*key)
};

// The parsed key of `jwk` (a member of the header whose text is
// `header_json`) and its thumbprint, valid until the next call on this
// thread. Errors are ParseJwk's.
Result<const ProofKeySlot*> ProofKey(std::string_view header_json,
                                     const simdjson::dom::element& jwk) {
  thread_local std::array<ProofKeySlot, kProofKeySlots> slots;
  ProofKeySlot& slot = slots[std::hash<std::string_view>{}(header_json) % kProofKeySlots];
  if (slot.key != nullptr && slot.header == header_json) return &slot;
  auto key = ParseJwk(simdjson::minify(jwk));
  if (!key.ok()) return key.status();
  slot.key = std::make_unique<PublicKey>(std::move(key).value());
  slot.header.assign(header_json);
  slot.thumbprint = JwkThumbprint(*slot.key);
  return &slot;
}

// Private members a DPoP proof's public `jwk` must not carry.
bool HasPrivateMember(const simdjson::dom::object& jwk) {
  for (const char* m : {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}) {
    simdjson::dom::element e;
    if (jwk.at_key(m).get(e) == simdjson::SUCCESS) return true;
  }
  return false;
}

// Splits `s` on spaces, calling f(word) for each non-empty word until f
// returns false. Returns false if f did.
template <typename F>
bool ForEachWord(std::string_view s, F f) {
  while (!s.empty()) {
    size_t sp = s.find(' ');
    std::string_view w = s.substr(0, sp);
    if (!w.empty() && !f(w)) return false;
    if (sp == std::string_view::npos) break;
    s.remove_prefix(sp + 1);
  }
  return true;
}

// The first scope of `required` missing from `granted` ("" if none is).
std::string_view MissingScope(std::string_view required, std::string_view granted) {
  std::string_view missing;
  ForEachWord(required, [&](std::string_view need) {
    bool found = !ForEachWord(granted, [&](std::string_view have) { return have != need; });
    if (!found) missing = need;
    return found;
  });
  return missing;
}

std::string_view ScopeClaim(const ClaimsProvider* claims) {
  if (claims == nullptr) return {};
  std::string_view path[] = {"scope"};
  simdjson::dom::element e;
  std::string_view s;
  if (!claims->Find(path, &e) || e.get(s) != simdjson::SUCCESS) return {};
  return s;
}

AuthOutcome ScopeOutcome(std::string_view required, const ClaimsProvider* claims,
                         unsigned challenges, std::string_view algs) {
  std::string_view missing = MissingScope(required, ScopeClaim(claims));
  if (missing.empty()) return Ok();
  return Deny(403, kErrScope, "the token lacks scope " + Shown(missing), kRuleScope, challenges,
              algs, required);
}

void PutBigEndian(int64_t v, unsigned char out[8]) {
  uint64_t u = static_cast<uint64_t>(v);
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<unsigned char>(u & 0xff);
    u >>= 8;
  }
}

int64_t FloorDiv(int64_t a, int64_t b) {  // REQUIRES: b > 0
  int64_t q = a / b;
  if (a % b != 0 && a < 0) --q;
  return q;
}

void AppendField(std::string& out, std::string_view field) {
  unsigned char len[8];
  PutBigEndian(static_cast<int64_t>(field.size()), len);
  out.append(reinterpret_cast<const char*>(len), 8);
  out.append(field);
}

}  // namespace

// ---- nonces -----------------------------------------------------------------

HmacNonceSource::HmacNonceSource(std::string secret, int64_t period_seconds)
    : secret_(std::move(secret)), period_(period_seconds < 1 ? 1 : period_seconds) {}

std::string HmacNonceSource::Make(int64_t bucket) const {
  unsigned char msg[8];
  PutBigEndian(bucket, msg);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  static const unsigned char kEmpty = 0;
  const void* key = secret_.empty() ? static_cast<const void*>(&kEmpty) : secret_.data();
  if (HMAC(EVP_sha256(), key, static_cast<int>(secret_.size()), msg, sizeof msg, mac, &mac_len) ==
          nullptr ||
      mac_len < 16) {
    return {};
  }
  std::string raw(reinterpret_cast<const char*>(msg), sizeof msg);
  raw.append(reinterpret_cast<const char*>(mac), 16);
  return raw;
}

bool HmacNonceSource::Valid(std::string_view nonce, int64_t now) const {
  if (secret_.size() < 16 || secret_.size() > INT_MAX) return false;  // fail closed
  if (nonce.size() != 32) return false;  // base64url of 8 + 16 bytes
  auto raw = Base64UrlDecode(nonce);
  if (!raw.ok() || raw->size() != 24) return false;
  uint64_t u = 0;
  for (int i = 0; i < 8; ++i) u = (u << 8) | static_cast<unsigned char>((*raw)[i]);
  int64_t bucket = static_cast<int64_t>(u);
  int64_t current = FloorDiv(now, period_);
  if (bucket != current && !(current > INT64_MIN && bucket == current - 1)) return false;
  std::string expected = Make(bucket);
  return expected.size() == 24 && ConstantTimeEquals(expected, *raw);
}

std::string HmacNonceSource::Current(int64_t now) const {
  return Base64UrlEncode(Make(FloorDiv(now, period_)));
}

// ---- checks -----------------------------------------------------------------

AuthOutcome CheckTransport(TlsRequirement tls, const TlsInfo& info) {
  if (tls == TlsRequirement::kAny) return Ok();
  auto deny = [](std::string d) {
    return Deny(403, kErrTransport, std::move(d), kRuleTransport, kNoChallenge, {});
  };
  if (info.version.empty()) return deny("the connection does not use TLS");
  if (info.version == "TLSv1.3") return Ok();
  if (tls == TlsRequirement::kTls13) {
    return deny("TLS 1.3 is required; the connection uses " + Shown(info.version, 16));
  }
  if (info.version != "TLSv1.2") {
    return deny("TLS version " + Shown(info.version, 16) + " is not allowed (TLS 1.2 or later)");
  }
  if (!Bcp195Tls12Cipher(info.cipher)) {
    return deny("cipher " + (info.cipher.empty() ? std::string("(unknown)") : Shown(info.cipher)) +
                " is not a BCP 195 suite for TLS 1.2");
  }
  return Ok();
}

AuthOutcome CheckScope(std::string_view required, const ClaimsProvider* claims,
                       SenderConstraint sender) {
  return ScopeOutcome(required, claims, RouteChallenges(sender), AlgsParam(kFapiAlgs));
}

AuthOutcome Authenticate(const AuthPolicy& policy, const HttpRequest& req, const AuthEnv& env) {
  // 1. Transport.
  if (AuthOutcome t = CheckTransport(policy.tls, req.tls); !t.ok) return t;
  const int64_t now = req.time;
  const IssuerKeys* iss = policy.issuer;
  const uint32_t proof_algs = ProofAlgs(iss);
  const std::string_view algs = AlgsParam(proof_algs);
  const unsigned route_challenges = RouteChallenges(policy.sender);

  // 2. Never a token in the query (RFC 6750 2.3 is a Bearer method).
  if (QueryHasAccessToken(req.target)) {
    return Deny(400, kErrInvalidRequest, "access tokens are not accepted in the query string",
                kRuleRequest, kBearerChallenge, algs);
  }

  // 3. The Authorization header.
  auto authz = ReadAuthorizationMemo(req.headers);
  if (!authz.ok()) {
    return Deny(400, kErrInvalidRequest, authz.status().message(), kRuleRequest,
                route_challenges, algs);
  }
  if (authz->scheme == AuthScheme::kNone) {
    return Deny(401, "", "no access token", kRuleToken, route_challenges, algs);
  }
  const AuthScheme scheme = authz->scheme;
  const std::string_view token = authz->token;
  const unsigned challenges = SchemeChallenges(scheme, policy.sender);
  auto token_fail = [&](std::string d) {
    return Deny(401, kErrInvalidToken, std::move(d), kRuleToken, challenges, algs);
  };
  auto binding_fail = [&](std::string d) {
    return Deny(401, kErrInvalidToken, std::move(d), kRuleBinding, challenges, algs);
  };
  if (iss == nullptr) return token_fail("no issuer is configured for this route");
  const int64_t leeway = std::max<int64_t>(0, iss->leeway);

  // 4. The access token: the cache, else full verification.
  std::shared_ptr<const VerifiedToken> verified;
  if (env.tokens != nullptr) {
    auto cached = env.tokens->Find(token, now, env.revoked);
    if (cached && CachedStillValid(*cached, *iss, now, leeway)) verified = std::move(cached);
  }
  const bool from_cache = verified != nullptr;
  if (!from_cache) {
    std::string why;
    verified = VerifyAccessToken(*iss, token, now, leeway, &why);
    if (!verified) return token_fail(std::move(why));
  }
  const VerifiedToken& vt = *verified;

  // 5. Revocation (checked on cache hits too).
  if (env.revoked != nullptr && env.revoked->IsRevoked(vt.jti, vt.sub, vt.client_id, vt.iat)) {
    return token_fail("the token has been revoked");
  }
  if (!from_cache && env.tokens != nullptr) env.tokens->Insert(token, verified, now);

  // 6. The sender constraint.
  if (scheme == AuthScheme::kDPoP) {
    if (policy.sender == SenderConstraint::kMtls) {
      return binding_fail("this route accepts only certificate-bound tokens (mTLS), not DPoP");
    }
    if (vt.cnf_jkt.empty()) return binding_fail("the token is not DPoP-bound (no cnf.jkt)");
    auto proof_fail = [&](std::string d) {
      return Deny(401, kErrInvalidProof, std::move(d), kRuleDPoP, challenges, algs);
    };
    std::string_view proof_text;
    int proofs = 0;
    for (const HeaderField& h : req.headers) {
      if (EqualsIgnoreCase(h.name, "dpop")) {
        proof_text = TrimOws(h.value);
        ++proofs;
      }
    }
    if (proofs == 0) return proof_fail("missing DPoP proof");
    if (proofs > 1) return proof_fail("more than one DPoP header");
    JwsLimits limits;
    limits.max_token_bytes = kMaxProofBytes;
    limits.max_header_bytes = 4 * 1024;
    limits.max_payload_bytes = 4 * 1024;
    limits.max_json_depth = 8;
    auto proof = ParseCompactJws(proof_text, limits);
    if (!proof.ok()) return proof_fail("malformed DPoP proof: " + proof.status().message());

    simdjson::dom::parser& parser = ThreadParser();
    simdjson::dom::object header;
    if (!ParseObject(parser, proof->header_json, &header)) return proof_fail("malformed DPoP header");
    std::string_view typ, alg_name;
    if (GetString(header, "typ", &typ) != Member::kOk || typ != "dpop+jwt") {
      return proof_fail("the DPoP proof typ is not dpop+jwt");
    }
    if (GetString(header, "alg", &alg_name) != Member::kOk) {
      return proof_fail("the DPoP proof has no alg");
    }
    auto alg = ParseAlg(alg_name);
    if (!alg.ok() || (proof_algs & AlgBit(*alg)) == 0) {
      return proof_fail("the DPoP proof algorithm " + Shown(alg_name, 16) + " is not allowed");
    }
    simdjson::dom::element crit;
    if (header.at_key("crit").get(crit) == simdjson::SUCCESS) {
      return proof_fail("the DPoP proof has critical extensions (crit) that are not understood");
    }
    simdjson::dom::element jwk_el;
    simdjson::dom::object jwk_obj;
    if (header.at_key("jwk").get(jwk_el) != simdjson::SUCCESS ||
        jwk_el.get(jwk_obj) != simdjson::SUCCESS) {
      return proof_fail("the DPoP proof has no jwk");
    }
    if (HasPrivateMember(jwk_obj)) return proof_fail("private key in jwk");
    auto cached_key = ProofKey(proof->header_json, jwk_el);
    if (!cached_key.ok()) {
      return proof_fail("the DPoP proof jwk is not usable: " + cached_key.status().message());
    }
    const PublicKey& key = *(*cached_key)->key;
    const std::string& key_thumbprint = (*cached_key)->thumbprint;
    if (key.alg() != *alg) return proof_fail("the DPoP proof jwk does not match its alg");
    if (!VerifyJws(key, *alg, proof->signing_input, proof->signature).ok()) {
      return proof_fail("the DPoP proof signature does not verify");
    }

    simdjson::dom::object claims;
    if (!ParseObject(parser, proof->payload_json, &claims)) {
      return proof_fail("malformed DPoP proof claims");
    }
    std::string_view jti, htm, htu, ath, nonce;
    if (GetString(claims, "jti", &jti) != Member::kOk) return proof_fail("the DPoP proof has no jti");
    if (jti.empty()) return proof_fail("the DPoP proof jti is empty");
    if (jti.size() > kMaxJtiBytes) return proof_fail("the DPoP proof jti is longer than 256 bytes");
    if (GetString(claims, "htm", &htm) != Member::kOk) return proof_fail("the DPoP proof has no htm");
    if (htm != req.method) return proof_fail("htm does not match the request method");
    if (GetString(claims, "htu", &htu) != Member::kOk) return proof_fail("the DPoP proof has no htu");
    auto uri = RequestUri(req);
    if (!uri.ok()) {
      return Deny(400, kErrInvalidRequest, uri.status().message(), kRuleRequest, challenges, algs);
    }
    auto normalized_uri = NormalizeHtu(*uri);
    if (!normalized_uri.ok()) {
      return Deny(400, kErrInvalidRequest, "the request URI cannot be normalised", kRuleRequest,
                  challenges, algs);
    }
    // HtuMatches(htu, *uri) with the request side normalised once; an htu
    // spelled exactly as the request URI (the usual case) normalises to the
    // same text, so it needs no second normalisation.
    if (htu != *uri) {
      auto normalized_htu = NormalizeHtu(htu);
      if (!normalized_htu.ok() || *normalized_htu != *normalized_uri) {
        return proof_fail("htu does not match the request URI");
      }
    }
    int64_t iat = 0;
    if (GetInt(claims, "iat", &iat) != Member::kOk) {
      return proof_fail("the DPoP proof has no integer iat");
    }
    const int64_t window = std::max<int64_t>(0, policy.dpop_window);
    if (iat < SatAdd(SatAdd(now, -window), -leeway)) return proof_fail("the DPoP proof is too old");
    if (iat > SatAdd(now, leeway)) return proof_fail("the DPoP proof iat is in the future");
    if (GetString(claims, "ath", &ath) != Member::kOk) return proof_fail("the DPoP proof has no ath");
    if (!Base64UrlEquals(ath, TokenDigest(token))) {
      return proof_fail("ath does not match the access token");
    }
    if (policy.dpop_nonce) {
      if (env.nonces == nullptr) {
        return proof_fail("server nonces are required but no nonce source is configured");
      }
      Member m = GetString(claims, "nonce", &nonce);
      if (m != Member::kOk || !env.nonces->Valid(nonce, now)) {
        AuthOutcome o = Deny(401, kErrUseNonce,
                             m == Member::kAbsent ? "a DPoP nonce is required"
                                                  : "the DPoP nonce is invalid or expired",
                             kRuleDPoP, challenges, algs);
        o.dpop_nonce = env.nonces->Current(now);
        return o;
      }
    }
    // The binding (RFC 9449 6.1, RFC 8705 3), before the replay cache.
    if (!ConstantTimeEquals(key_thumbprint, vt.cnf_jkt)) {
      return binding_fail("the DPoP proof key does not match the token (cnf.jkt)");
    }
    if (!vt.cnf_x5t.empty()) {
      if (std::string why = CheckCertificate(req.tls, vt.cnf_x5t); !why.empty()) {
        return binding_fail(std::move(why));
      }
    }
    // Last: the replay cache, so only authenticated, bound proofs take a slot.
    if (env.replay == nullptr) {
      return proof_fail("no DPoP replay cache is configured");
    }
    // The replay key, built in a per-thread buffer (no allocation once warm).
    thread_local std::string replay_key;
    replay_key.assign(*normalized_uri).append(1, ' ').append(jti);
    switch (env.replay->Use(replay_key, now)) {
      case ReplayCache::Outcome::kNew:
        break;
      case ReplayCache::Outcome::kReplay:
        return proof_fail("the DPoP proof was replayed (jti already used)");
      case ReplayCache::Outcome::kFull:
        return proof_fail("the DPoP replay cache is full; proof refused");
    }
  } else {
    // Bearer. A DPoP header beside it is ignored: the token decides.
    if (!vt.cnf_jkt.empty()) {
      return binding_fail("a DPoP-bound token must be presented with the DPoP scheme");
    }
    if (policy.sender == SenderConstraint::kDPoP) return binding_fail("DPoP required");
    if (!vt.cnf_x5t.empty()) {
      if (std::string why = CheckCertificate(req.tls, vt.cnf_x5t); !why.empty()) {
        return binding_fail(std::move(why));
      }
    } else if (policy.sender != SenderConstraint::kNone) {
      return binding_fail("the token is not sender-constrained");
    }
  }

  // 7. Scope.
  AuthOutcome out = ScopeOutcome(policy.scope, vt.claims.get(), challenges, algs);
  if (!out.ok) return out;
  if (scheme == AuthScheme::kDPoP && policy.dpop_nonce && env.nonces != nullptr) {
    out.dpop_nonce = env.nonces->Current(now);  // RFC 9449 8.2: a fresh nonce for next time
  }
  out.token = std::move(verified);
  return out;
}

// ---- issuers ----------------------------------------------------------------

Result<std::shared_ptr<const IssuerKeys>> MakeIssuerKeys(std::string name, std::string issuer,
                                                        std::string audience,
                                                        std::string_view jwks_json, uint32_t algs,
                                                        int64_t leeway, bool fapi) {
  const std::string what = "issuer `" + Shown(name) + "`: ";
  if (issuer.empty()) return InvalidArgument(what + "empty issuer");
  if (audience.empty()) return InvalidArgument(what + "empty audience");
  if (algs == 0) return InvalidArgument(what + "no token algorithm allowed");
  if ((algs & ~kKnownAlgs) != 0) return InvalidArgument(what + "unknown algorithm bit");
  if (fapi && (algs & AlgBit(JwsAlg::kRS256)) != 0) {
    return InvalidArgument(what + "RS256 is only allowed for issuers outside the FAPI profile");
  }
  if (leeway < 0 || leeway > kMaxIssuerLeeway) {
    return InvalidArgument(what + "leeway must be between 0 and " +
                           std::to_string(kMaxIssuerLeeway) + " seconds");
  }
  // Strict: every key must be usable here (a bundle's keys were checked by
  // the compiler, so a refusal means damage or a runtime that is too old).
  JwksOptions options;
  options.legacy = !fapi;
  auto keys = ParseJwks(jwks_json, options);
  if (!keys.ok()) return Status(keys.status().code(), what + keys.status().message());
  if (keys->empty()) return InvalidArgument(what + "the JWKS has no key");

  auto out = std::make_shared<IssuerKeys>();
  std::string input = "vakt.issuer.v1";
  AppendField(input, name);
  AppendField(input, issuer);
  AppendField(input, audience);
  AppendField(input, jwks_json);
  unsigned char num[8];
  PutBigEndian(static_cast<int64_t>(algs), num);
  input.append(reinterpret_cast<const char*>(num), 8);
  PutBigEndian(leeway, num);
  input.append(reinterpret_cast<const char*>(num), 8);
  input.push_back(fapi ? '\1' : '\0');
  out->config_digest = Sha256(input);
  out->name = std::move(name);
  out->issuer = std::move(issuer);
  out->audience = std::move(audience);
  out->keys = std::move(keys).value();
  out->algs = algs;
  out->leeway = leeway;
  out->fapi = fapi;
  return std::shared_ptr<const IssuerKeys>(std::move(out));
}

}  // namespace vakt::bytecode
