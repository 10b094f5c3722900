// End-to-end tests of FAPI 2.0 decisions: a policy with `issuer` and `use
// fapi2` routes (every sender mode, a TLS 1.3 route, a nonce route, a
// scope) is compiled in memory (its JWKS served by CompileOptions::
// read_asset from keys generated here), loaded, and decided by the VM with
// real tokens, DPoP proofs and client certificates minted by
// compiler/token_tool.h. Each test asserts the whole Decision: status,
// error, description, rule, route and every header, written out by hand.
//
// Also the bundle side of format version 2: the issuer and auth sections
// survive Serialize/Parse, every branch of the verifier's CheckAuthTables
// refuses with its message, Bundle::Load refuses an embedded JWKS that does
// not parse, and the disassembler lists the `fapi2:` line and `issuers:`.
//
// Covers bytecode/vm.cc (Decide, DecideRequest, DecideResponse with
// fapi2 routes), bytecode/bundle.cc, bytecode/verifier.cc and
// bytecode/disasm.cc for the FAPI sections.
#include <gtest/gtest.h>

#include <memory>
#include <regex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "bytecode/bundle.h"
#include "bytecode/claims.h"
#include "bytecode/fapi_auth.h"
#include "bytecode/sha256.h"
#include "bytecode/verifier.h"
#include "bytecode/vm.h"
#include "compiler/compile.h"
#include "compiler/token_tool.h"

namespace vakt {
namespace {

using bytecode::AuthEnv;
using bytecode::Bundle;
using bytecode::BundleData;
using bytecode::Decision;
using bytecode::EvalScratch;
using bytecode::HeaderField;
using bytecode::HttpRequest;
using bytecode::HttpResponse;
using bytecode::JsonClaims;
using bytecode::JwsAlg;
using bytecode::VerifiedToken;
using compiler::SigningKey;

constexpr int64_t kNow = 1'700'000'000;
constexpr char kIssuer[] = "https://as.example";
constexpr char kAudience[] = "https://api.example";
constexpr char kHost[] = "api.example";
constexpr char kTls13[] = "TLSv1.3";
constexpr char kTls13Cipher[] = "TLS_AES_128_GCM_SHA256";
// The issuer allows ES256 and EdDSA: DPoP challenges list exactly those.
constexpr char kDpopChallenge[] = "DPoP algs=\"ES256 EdDSA\"";

constexpr char kPolicy[] = R"(package t

issuer main {
  url = "https://as.example"
  audience = "https://api.example"
  jwks = "keys/main.jwks.json"
  algs = ["ES256", "EdDSA"]
  leeway = 5s
}

claims {
  role: string
  cnf.jkt: string
}

api a "/v1" {
  route open GET "/open" {
    flag: require request.headers["x-flag"] == "on"
      else deny 400 invalid_request "x-flag must be on"
  }

  route r_any GET "/any/{id}" {
    use fapi2 { scope = "records.read" }
    owner: require token.sub == params.id
      else deny 403 access_denied "only the owner"
    on response {
      mine: require response.headers["x-owner"] == token.sub
        else deny 502 bad_response "not the caller's record"
    }
  }

  route r_dpop GET "/dpop" {
    use fapi2 { sender = "dpop" }
    jkt: require token.cnf.jkt == request.headers["x-expect-jkt"]
      else deny 403 access_denied "jkt differs"
    country: require token.address.country == "NO"
      else deny 403 access_denied "wrong country"
  }

  route r_mtls GET "/mtls" {
    use fapi2 { sender = "mtls" tls = "1.3" }
    bound: require request.tls.client_cert_thumbprint == token.cnf["x5t#S256"]
      else deny 403 access_denied "certificate differs"
  }

  route r_bearer GET "/bearer" {
    use fapi2 { loosen sender = "none" loosen tls = "any" }
    step: require token.acr == "high"
      else deny 401 invalid_token "step-up authentication required"
  }

  route r_nonce POST "/nonce" {
    use fapi2 { sender = "dpop" dpop_nonce = true dpop_window = 30s }
  }
}
)";

// ---- the fixture: keys, the compiled policy, certificates ----

struct Fixture {
  SigningKey issuer_es = Key(JwsAlg::kES256, "k-es");
  SigningKey issuer_ed = Key(JwsAlg::kEdDSA, "k-ed");
  SigningKey dpop = Key(JwsAlg::kES256, "");
  SigningKey other_dpop = Key(JwsAlg::kES256, "");
  compiler::TestCertificate cert = Cert("client-1");
  compiler::TestCertificate other_cert = Cert("client-2");
  std::string jwks;
  std::unique_ptr<compiler::Compilation> comp;
  std::shared_ptr<const Bundle> bundle;

  static SigningKey Key(JwsAlg alg, const char* kid) {
    auto k = compiler::GenerateKey(alg, kid);
    if (!k.ok()) {
      ADD_FAILURE() << k.status().ToString();
      abort();
    }
    return std::move(k).value();
  }
  static compiler::TestCertificate Cert(const char* cn) {
    auto c = compiler::MakeTestCertificate(cn);
    if (!c.ok()) {
      ADD_FAILURE() << c.status().ToString();
      abort();
    }
    return std::move(c).value();
  }
};

const Fixture& F() {
  static const Fixture* f = [] {
    auto* fx = new Fixture;
    fx->jwks = "{\"keys\":[" + fx->issuer_es.PublicJwk() + "," + fx->issuer_ed.PublicJwk() + "]}";
    compiler::SourceSet sources;
    compiler::AddSource(sources, "policy/t.vakt", kPolicy);
    compiler::CompileOptions opts;
    std::string jwks = fx->jwks;
    opts.read_asset = [jwks](const dsl::SourceFile&,
                             const std::string& path) -> Result<std::string> {
      if (path == "keys/main.jwks.json") return jwks;
      return NotFound("no asset `" + path + "`");
    };
    dsl::Diagnostics diags;
    fx->comp = compiler::Compile(sources, opts, diags);
    if (diags.HasErrors() || fx->comp->bytes.empty()) {
      ADD_FAILURE() << diags.Format();
      abort();
    }
    auto loaded = Bundle::Load(fx->comp->bytes);
    if (!loaded.ok()) {
      ADD_FAILURE() << loaded.status().ToString();
      abort();
    }
    fx->bundle = std::move(loaded).value();
    return fx;
  }();
  return *f;
}

// ---- tokens and requests ----

constexpr char kClaims[] =
    R"({"iss":"https://as.example","aud":"https://api.example","sub":"anna",)"
    R"("client_id":"app-1","scope":"records.read profile","role":"patient",)"
    R"("address":{"country":"NO","city":"Bergen"}})";

enum class Bind { kDpop, kCert, kNone };

// kClaims with an `acr` claim (read by the r_bearer route).
std::string WithAcr(const char* acr) {
  std::string claims = kClaims;
  claims.insert(claims.size() - 1, std::string(",\"acr\":\"") + acr + "\"");
  return claims;
}

std::string Token(Bind bind, std::string claims = kClaims, const SigningKey* key = nullptr) {
  compiler::TokenOptions o;
  o.now = kNow;
  if (bind == Bind::kDpop) o.cnf_jkt = F().dpop.Thumbprint();
  if (bind == Bind::kCert) o.cnf_x5t = F().cert.x5t_s256;
  auto t = compiler::MintAccessToken(key ? *key : F().issuer_es, claims, o);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return t.ok() ? *t : std::string();
}

std::string Proof(const std::string& method, const std::string& path, const std::string& token,
                  const std::string& nonce = {}, const SigningKey* key = nullptr) {
  compiler::ProofOptions o;
  o.method = method;
  o.url = std::string("https://") + kHost + path;
  o.access_token = token;
  o.now = kNow;
  o.nonce = nonce;
  auto p = compiler::MintDpopProof(key ? *key : F().dpop, o);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return p.ok() ? *p : std::string();
}

// A request that owns its bytes; View() is valid while it lives.
struct Req {
  std::string method = "GET";
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string tls_version = kTls13;
  std::string tls_cipher = kTls13Cipher;
  std::string cert_pem;
  std::vector<HeaderField> fields;

  Req(std::string m, std::string t) : method(std::move(m)), target(std::move(t)) {
    headers.emplace_back("host", kHost);
  }
  Req& H(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
    return *this;
  }
  HttpRequest View() {
    fields.clear();
    for (const auto& [n, v] : headers) fields.push_back({n, v});
    HttpRequest r;
    r.method = method;
    r.target = target;
    r.headers = fields;
    r.tls = {tls_version, tls_cipher, cert_pem};
    r.time = kNow;
    return r;
  }
};

// A DPoP request for `path` with `token` and a fresh proof.
Req DpopReq(const std::string& path, const std::string& token, const std::string& method = "GET") {
  Req r(method, path);
  std::string target_path = path.substr(0, path.find('?'));
  r.H("authorization", "DPoP " + token).H("dpop", Proof(method, target_path, token));
  return r;
}

// A Bearer request presenting F().cert on the connection.
Req CertReq(const std::string& path, const std::string& token) {
  Req r("GET", path);
  r.H("authorization", "Bearer " + token);
  r.cert_pem = F().cert.cert_pem;
  return r;
}

// The runtime state an agent keeps.
struct Env {
  bytecode::ReplayCache replay{4096, 600};
  bytecode::HmacNonceSource nonces{std::string(32, 's'), 60};
  bytecode::TokenCache tokens{64};
  AuthEnv env;
  explicit Env(bool with_token_cache = false) {
    env.replay = &replay;
    env.nonces = &nonces;
    if (with_token_cache) env.tokens = &tokens;
  }
};

// ---- decisions as comparable values ----

struct Expect {
  bool allow = false;
  int status = 0;
  std::string error;
  std::string description;
  std::string rule;
  std::string route;
  // (name, value); a value "<uuid>" matches any UUID v4.
  std::vector<std::pair<std::string, std::string>> headers;
};

bool IsUuidV4(std::string_view s) {
  static const std::regex kUuid(
      "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
  return std::regex_match(std::string(s), kUuid);
}

std::string Show(const Decision& d) {
  std::string out = bytecode::DecisionToJson(d);
  return out;
}

void ExpectDecision(const Decision& d, const Expect& e) {
  SCOPED_TRACE(Show(d));
  EXPECT_EQ(d.allow, e.allow);
  EXPECT_EQ(d.status, e.status);
  EXPECT_EQ(d.error, e.error);
  EXPECT_EQ(d.description, e.description);
  EXPECT_EQ(d.rule, e.rule);
  EXPECT_EQ(d.route, e.route);
  ASSERT_EQ(d.header_count, e.headers.size());
  for (size_t i = 0; i < e.headers.size(); ++i) {
    EXPECT_EQ(d.headers[i].name, e.headers[i].first) << "header " << i;
    if (e.headers[i].second == "<uuid>") {
      EXPECT_TRUE(IsUuidV4(d.headers[i].value)) << d.headers[i].value;
    } else {
      EXPECT_EQ(d.headers[i].value, e.headers[i].second) << "header " << i;
    }
  }
}

const std::pair<std::string, std::string> kNewInteraction = {"x-fapi-interaction-id", "<uuid>"};

Expect Allowed(const std::string& route, std::vector<std::pair<std::string, std::string>> headers) {
  Expect e;
  e.allow = true;
  e.status = 200;
  e.description = "allowed";
  e.route = route;
  e.headers = std::move(headers);
  return e;
}

std::pair<std::string, std::string> Www(std::string value) {
  return {"WWW-Authenticate", std::move(value)};
}

// ---- the bundle itself ----

TEST(FapiVm, PolicyCompilesToTheExpectedAuthTables) {
  const BundleData& d = F().bundle->data();
  ASSERT_EQ(d.issuers.size(), 1u);
  EXPECT_EQ(d.strings[d.issuers[0].name], "t.main");
  EXPECT_EQ(d.strings[d.issuers[0].issuer], kIssuer);
  EXPECT_EQ(d.strings[d.issuers[0].audience], kAudience);
  EXPECT_EQ(d.strings[d.issuers[0].jwks], F().jwks);
  EXPECT_EQ(d.issuers[0].leeway, 5u);
  EXPECT_EQ(d.issuers[0].algs, bytecode::AlgBit(JwsAlg::kES256) | bytecode::AlgBit(JwsAlg::kEdDSA));
  EXPECT_EQ(d.issuers[0].flags, 0);
  ASSERT_EQ(d.auth.size(), 5u);
  int with_auth = 0;
  for (const auto& r : d.routes) {
    std::string name(d.strings[r.name]);
    if (name == "a.open") {
      EXPECT_EQ(r.auth, bytecode::kNone);
      continue;
    }
    ASSERT_LT(r.auth, d.auth.size()) << name;
    ++with_auth;
    const bytecode::AuthRecord& a = d.auth[r.auth];
    EXPECT_EQ(a.issuer, 0u);
    EXPECT_EQ(a.reserved, 0);
    if (name == "a.r_any") {
      EXPECT_EQ(a.sender, 0);
      EXPECT_EQ(a.tls, 0);
      EXPECT_EQ(d.strings[a.scope], "records.read");
      EXPECT_EQ(a.dpop_window, 60u);
      EXPECT_EQ(a.flags, 0);
    } else if (name == "a.r_dpop") {
      EXPECT_EQ(a.sender, 1);
    } else if (name == "a.r_mtls") {
      EXPECT_EQ(a.sender, 2);
      EXPECT_EQ(a.tls, 1);
    } else if (name == "a.r_bearer") {
      EXPECT_EQ(a.sender, 3);
      EXPECT_EQ(a.tls, 2);
    } else if (name == "a.r_nonce") {
      EXPECT_EQ(a.sender, 1);
      EXPECT_EQ(a.flags, bytecode::kAuthDpopNonce);
      EXPECT_EQ(a.dpop_window, 30u);
    } else {
      ADD_FAILURE() << "unexpected route " << name;
    }
  }
  EXPECT_EQ(with_auth, 5);
  // Load turned the records into runtime policies.
  const bytecode::IssuerKeys& keys = F().bundle->issuer(0);
  EXPECT_EQ(keys.issuer, kIssuer);
  EXPECT_EQ(keys.keys.size(), 2u);
  EXPECT_TRUE(keys.fapi);
}

// ---- sender "any" ----

TEST(FapiVm, NoCredentialsOnAnAnyRouteAdvertisesDpopThenBearer) {
  Env env;
  EvalScratch scratch;
  Req r("GET", "/v1/any/anna");
  std::shared_ptr<const VerifiedToken> token = std::make_shared<VerifiedToken>();
  Decision d = bytecode::Decide(*F().bundle, r.View(), env.env, scratch, &token);
  Expect e;
  e.status = 401;
  e.description = "no access token";
  e.rule = "fapi2.token";
  e.route = "a.r_any";
  e.headers = {Www(kDpopChallenge), Www("Bearer"), kNewInteraction};
  ExpectDecision(d, e);
  EXPECT_EQ(token, nullptr);  // reset on an authentication failure
}

TEST(FapiVm, DpopTokenIsAuthenticatedAndTheProgramAllows) {
  Env env;
  EvalScratch scratch;
  std::string tok = Token(Bind::kDpop);
  Req r = DpopReq("/v1/any/anna", tok);
  r.H("x-fapi-interaction-id", "req-42_a.b");
  std::shared_ptr<const VerifiedToken> token;
  Decision d = bytecode::Decide(*F().bundle, r.View(), env.env, scratch, &token);
  ExpectDecision(d, Allowed("a.r_any", {{"x-fapi-interaction-id", "req-42_a.b"}}));
  ASSERT_NE(token, nullptr);
  EXPECT_EQ(token->sub, "anna");
  EXPECT_EQ(token->client_id, "app-1");
  EXPECT_EQ(token->cnf_jkt, F().dpop.Thumbprint());
  EXPECT_EQ(token->cnf_x5t, "");
  EXPECT_EQ(token->exp, kNow + 300);
  EXPECT_EQ(env.replay.size(), 1u);  // the proof took one replay slot
}

TEST(FapiVm, EdDsaTokensVerifyToo) {
  Env env;
  EvalScratch scratch;
  std::string tok = Token(Bind::kDpop, kClaims, &F().issuer_ed);
  Req r = DpopReq("/v1/any/anna", tok);
  std::shared_ptr<const VerifiedToken> token;
  Decision d = bytecode::Decide(*F().bundle, r.View(), env.env, scratch, &token);
  ExpectDecision(d, Allowed("a.r_any", {kNewInteraction}));
  EXPECT_NE(token, nullptr);
}

TEST(FapiVm, ProgramDenyKeepsTheVerifiedToken) {
  Env env;
  EvalScratch scratch;
  std::string tok = Token(Bind::kDpop);
  Req r = DpopReq("/v1/any/eva", tok);  // anna asks for eva's record (BOLA)
  std::shared_ptr<const VerifiedToken> token;
  Decision d = bytecode::Decide(*F().bundle, r.View(), env.env, scratch, &token);
  Expect e;
  e.status = 403;
  e.error = "access_denied";
  e.description = "only the owner";
  e.rule = "a.r_any.owner";
  e.route = "a.r_any";
  e.headers = {kNewInteraction};  // access_denied carries no challenge
  ExpectDecision(d, e);
  ASSERT_NE(token, nullptr);
  EXPECT_EQ(token->sub, "anna");
}

TEST(FapiVm, MissingScopeIs403WithTheSchemeChallenge) {
  Env env;
  EvalScratch scratch;
  std::string claims = kClaims;
  claims.replace(claims.find("records.read profile"), 20, "profile");
  std::string tok = Token(Bind::kDpop, claims);
  // A success first on the same scratch: its token must not leak into the deny.
  std::shared_ptr<const VerifiedToken> token;
  Req ok = DpopReq("/v1/any/anna", Token(Bind::kDpop));
  ASSERT_TRUE(bytecode::Decide(*F().bundle, ok.View(), env.env, scratch, &token).allow);
  ASSERT_NE(token, nullptr);
  Req r = DpopReq("/v1/any/anna", tok);
  Decision d = bytecode::Decide(*F().bundle, r.View(), env.env, scratch, &token);
  Expect e;
  e.status = 403;
  e.error = "insufficient_scope";
  e.description = "the token lacks scope records.read";
  e.rule = "fapi2.scope";
  e.route = "a.r_any";
  e.headers = {Www("DPoP error=\"insufficient_scope\", error_description=\"the token lacks scope "
                   "records.read\", scope=\"records.read\", algs=\"ES256 EdDSA\""),
               kNewInteraction};
  ExpectDecision(d, e);
  EXPECT_EQ(token, nullptr);
}

TEST(FapiVm, CertificateBoundBearerTokenOnAnAnyRoute) {
  Env env;
  EvalScratch scratch;
  std::string tok = Token(Bind::kCert);
  Req r = CertReq("/v1/any/anna", tok);
  r.tls_version = "TLSv1.2";
  r.tls_cipher = "ECDHE-RSA-AES128-GCM-SHA256";  // a BCP 195 suite: fine under "fapi"
  std::shared_ptr<const VerifiedToken> token;
  Decision d = bytecode::Decide(*F().bundle, r.View(), env.env, scratch, &token);
  ExpectDecision(d, Allowed("a.r_any", {kNewInteraction}));
  ASSERT_NE(token, nullptr);
  EXPECT_EQ(token->cnf_x5t, F().cert.x5t_s256);
  EXPECT_EQ(env.replay.size(), 0u);
}

TEST(FapiVm, WeakTls12CipherIsRefusedBeforeTheToken) {
  Env env;
  EvalScratch scratch;
  Req r = CertReq("/v1/any/anna", Token(Bind::kCert));
  r.tls_version = "TLSv1.2";
  r.tls_cipher = "AES128-SHA";
  Decision d = bytecode::Decide(*F().bundle, r.View(), env.env, scratch);
  Expect e;
  e.status = 403;
  e.error = "insecure_transport";
  e.description = "cipher AES128-SHA is not a BCP 195 suite for TLS 1.2";
  e.rule = "fapi2.transport";
  e.route = "a.r_any";
  e.headers = {kNewInteraction};
  ExpectDecision(d, e);
}

TEST(FapiVm, UnboundTokenOnAnAnyRouteIsRefused) {
  Env env;
  EvalScratch scratch;
  Req r("GET", "/v1/any/anna");
  r.H("authorization", "Bearer " + Token(Bind::kNone));
  std::shared_ptr<const VerifiedToken> token;
  Decision d = bytecode::Decide(*F().bundle, r.View(), env.env, scratch, &token);
  Expect e;
  e.status = 401;
  e.error = "invalid_token";
  e.description = "the token is not sender-constrained";
  e.rule = "fapi2.binding";
  e.route = "a.r_any";
  e.headers = {Www("Bearer error=\"invalid_token\", error_description=\"the token is not "
                   "sender-constrained\""),
               kNewInteraction};
  ExpectDecision(d, e);
  EXPECT_EQ(token, nullptr);
}

TEST(FapiVm, ReplayedProofIsRefused) {
  Env env;
  EvalScratch scratch;
  Req r = DpopReq("/v1/any/anna", Token(Bind::kDpop));
  EXPECT_TRUE(bytecode::Decide(*F().bundle, r.View(), env.env, scratch).allow);
  Decision d = bytecode::Decide(*F().bundle, r.View(), env.env, scratch);
  Expect e;
  e.status = 401;
  e.error = "invalid_dpop_proof";
  e.description = "the DPoP proof was replayed (jti already used)";
  e.rule = "fapi2.dpop";
  e.route = "a.r_any";
  e.headers = {Www("DPoP error=\"invalid_dpop_proof\", error_description=\"the DPoP proof was "
                   "replayed (jti already used)\", algs=\"ES256 EdDSA\""),
               kNewInteraction};
  ExpectDecision(d, e);
}

// ---- sender "dpop": nested claims ----

TEST(FapiVm, NoCredentialsOnADpopRouteAdvertisesDpopOnly) {
  Env env;
  EvalScratch scratch;
  Req r("GET", "/v1/dpop");
  Decision d = bytecode::Decide(*F().bundle, r.View(), env.env, scratch);
  Expect e;
  e.status = 401;
  e.description = "no access token";
  e.rule = "fapi2.token";
  e.route = "a.r_dpop";
  e.headers = {Www(kDpopChallenge), kNewInteraction};
  ExpectDecision(d, e);
}

TEST(FapiVm, RulesReadCnfJktAndNestedClaims) {
  Env env;
  EvalScratch scratch;
  std::string tok = Token(Bind::kDpop);
  {
    Req r = DpopReq("/v1/dpop", tok);
    r.H("x-expect-jkt", F().dpop.Thumbprint());
    ExpectDecision(bytecode::Decide(*F().bundle, r.View(), env.env, scratch),
                   Allowed("a.r_dpop", {kNewInteraction}));
  }
  {
    Req r = DpopReq("/v1/dpop", tok);
    r.H("x-expect-jkt", F().other_dpop.Thumbprint());
    std::shared_ptr<const VerifiedToken> token;
    Decision d = bytecode::Decide(*F().bundle, r.View(), env.env, scratch, &token);
    Expect e;
    e.status = 403;
    e.error = "access_denied";
    e.description = "jkt differs";
    e.rule = "a.r_dpop.jkt";
    e.route = "a.r_dpop";
    e.headers = {kNewInteraction};
    ExpectDecision(d, e);
    EXPECT_NE(token, nullptr);
  }
  {
    std::string claims = kClaims;
    claims.replace(claims.find("\"NO\""), 4, "\"SE\"");
    std::string se = Token(Bind::kDpop, claims);
    Req r = DpopReq("/v1/dpop", se);
    r.H("x-expect-jkt", F().dpop.Thumbprint());
    Decision d = bytecode::Decide(*F().bundle, r.View(), env.env, scratch);
    Expect e;
    e.status = 403;
    e.error = "access_denied";
    e.description = "wrong country";
    e.rule = "a.r_dpop.country";
    e.route = "a.r_dpop";
    e.headers = {kNewInteraction};
    ExpectDecision(d, e);
  }
}

TEST(FapiVm, CertificateBoundBearerOnADpopRouteIsRefused) {
  Env env;
  EvalScratch scratch;
  Req r = CertReq("/v1/dpop", Token(Bind::kCert));
  Decision d = bytecode::Decide(*F().bundle, r.View(), env.env, scratch);
  Expect e;
  e.status = 401;
  e.error = "invalid_token";
  e.description = "DPoP required";
  e.rule = "fapi2.binding";
  e.route = "a.r_dpop";
  e.headers = {Www("DPoP error=\"invalid_token\", error_description=\"DPoP required\", "
                   "algs=\"ES256 EdDSA\""),
               kNewInteraction};
  ExpectDecision(d, e);
}

TEST(FapiVm, ProofByAnotherKeyIsABindingFailure) {
  Env env;
  EvalScratch scratch;
  std::string tok = Token(Bind::kDpop);
  Req r("GET", "/v1/dpop");
  r.H("authorization", "DPoP " + tok).H("dpop", Proof("GET", "/v1/dpop", tok, "", &F().other_dpop));
  std::shared_ptr<const VerifiedToken> token;
  Decision d = bytecode::Decide(*F().bundle, r.View(), env.env, scratch, &token);
  Expect e;
  e.status = 401;
  e.error = "invalid_token";
  e.description = "the DPoP proof key does not match the token (cnf.jkt)";
  e.rule = "fapi2.binding";
  e.route = "a.r_dpop";
  e.headers = {Www("DPoP error=\"invalid_token\", error_description=\"the DPoP proof key does "
                   "not match the token (cnf.jkt)\", algs=\"ES256 EdDSA\""),
               kNewInteraction};
  ExpectDecision(d, e);
  EXPECT_EQ(token, nullptr);
  EXPECT_EQ(env.replay.size(), 0u);  // a refused proof takes no replay slot
}

// ---- sender "mtls", tls "1.3" ----

TEST(FapiVm, MtlsRouteAcceptsTheCertificateBoundToken) {
  Env env;
  EvalScratch scratch;
  Req r = CertReq("/v1/mtls", Token(Bind::kCert));
  std::shared_ptr<const VerifiedToken> token;
  Decision d = bytecode::Decide(*F().bundle, r.View(), env.env, scratch, &token);
  // The rule compares request.tls.client_cert_thumbprint with token.cnf["x5t#S256"].
  ExpectDecision(d, Allowed("a.r_mtls", {kNewInteraction}));
  ASSERT_NE(token, nullptr);
  EXPECT_EQ(token->cnf_x5t, F().cert.x5t_s256);
}

TEST(FapiVm, MtlsRouteRefusals) {
  Env env;
  EvalScratch scratch;
  const std::string bearer = "Bearer error=\"invalid_token\", error_description=\"";
  {  // no credentials: a Bearer challenge only
    Req r("GET", "/v1/mtls");
    Expect e;
    e.status = 401;
    e.description = "no access token";
    e.rule = "fapi2.token";
    e.route = "a.r_mtls";
    e.headers = {Www("Bearer"), kNewInteraction};
    ExpectDecision(bytecode::Decide(*F().bundle, r.View(), env.env, scratch), e);
  }
  {  // another client's certificate
    Req r = CertReq("/v1/mtls", Token(Bind::kCert));
    r.cert_pem = F().other_cert.cert_pem;
    Expect e;
    e.status = 401;
    e.error = "invalid_token";
    e.description = "the client certificate does not match the token (cnf x5t#S256)";
    e.rule = "fapi2.binding";
    e.route = "a.r_mtls";
    e.headers = {Www(bearer + e.description + "\""), kNewInteraction};
    ExpectDecision(bytecode::Decide(*F().bundle, r.View(), env.env, scratch), e);
  }
  {  // no certificate at all
    Req r = CertReq("/v1/mtls", Token(Bind::kCert));
    r.cert_pem.clear();
    Expect e;
    e.status = 401;
    e.error = "invalid_token";
    e.description = "no client certificate was presented";
    e.rule = "fapi2.binding";
    e.route = "a.r_mtls";
    e.headers = {Www(bearer + e.description + "\""), kNewInteraction};
    ExpectDecision(bytecode::Decide(*F().bundle, r.View(), env.env, scratch), e);
  }
  {  // the DPoP scheme on an mTLS route: answered with the route's Bearer challenge
    Req r = DpopReq("/v1/mtls", Token(Bind::kDpop));
    Expect e;
    e.status = 401;
    e.error = "invalid_token";
    e.description = "this route accepts only certificate-bound tokens (mTLS), not DPoP";
    e.rule = "fapi2.binding";
    e.route = "a.r_mtls";
    e.headers = {Www(bearer + e.description + "\""), kNewInteraction};
    ExpectDecision(bytecode::Decide(*F().bundle, r.View(), env.env, scratch), e);
  }
  {  // tls "1.3": TLS 1.2 is refused even with a BCP 195 suite
    Req r = CertReq("/v1/mtls", Token(Bind::kCert));
    r.tls_version = "TLSv1.2";
    r.tls_cipher = "ECDHE-RSA-AES128-GCM-SHA256";
    Expect e;
    e.status = 403;
    e.error = "insecure_transport";
    e.description = "TLS 1.3 is required; the connection uses TLSv1.2";
    e.rule = "fapi2.transport";
    e.route = "a.r_mtls";
    e.headers = {kNewInteraction};
    ExpectDecision(bytecode::Decide(*F().bundle, r.View(), env.env, scratch), e);
  }
}

// ---- sender "none", tls "any": a 401 from the program ----

TEST(FapiVm, LoosenedRouteAcceptsAnUnboundTokenWithoutTls) {
  Env env;
  EvalScratch scratch;
  Req r("GET", "/v1/bearer");
  r.H("authorization", "Bearer " + Token(Bind::kNone, WithAcr("high")));
  r.tls_version.clear();
  r.tls_cipher.clear();
  std::shared_ptr<const VerifiedToken> token;
  Decision d = bytecode::Decide(*F().bundle, r.View(), env.env, scratch, &token);
  ExpectDecision(d, Allowed("a.r_bearer", {kNewInteraction}));
  EXPECT_NE(token, nullptr);
}

TEST(FapiVm, ProgramDeny401CarriesTheChallengeOfTheSchemeUsed) {
  Env env;
  EvalScratch scratch;
  Expect e;
  e.status = 401;
  e.error = "invalid_token";
  e.description = "step-up authentication required";
  e.rule = "a.r_bearer.step";
  e.route = "a.r_bearer";
  {
    Req r("GET", "/v1/bearer");
    r.H("authorization", "Bearer " + Token(Bind::kNone, WithAcr("low")));
    std::shared_ptr<const VerifiedToken> token;
    e.headers = {Www("Bearer error=\"invalid_token\", error_description=\"step-up "
                     "authentication required\""),
                 kNewInteraction};
    ExpectDecision(bytecode::Decide(*F().bundle, r.View(), env.env, scratch, &token), e);
    EXPECT_NE(token, nullptr);  // authenticated; the program denied
  }
  {
    Req r = DpopReq("/v1/bearer", Token(Bind::kDpop, WithAcr("medium")));
    e.headers = {Www("DPoP error=\"invalid_token\", error_description=\"step-up authentication "
                     "required\", algs=\"ES256 EdDSA\""),
                 kNewInteraction};
    ExpectDecision(bytecode::Decide(*F().bundle, r.View(), env.env, scratch), e);
  }
  {  // no credentials: sender "none" advertises Bearer only
    Req r("GET", "/v1/bearer");
    Expect n;
    n.status = 401;
    n.description = "no access token";
    n.rule = "fapi2.token";
    n.route = "a.r_bearer";
    n.headers = {Www("Bearer"), kNewInteraction};
    ExpectDecision(bytecode::Decide(*F().bundle, r.View(), env.env, scratch), n);
  }
}

// ---- dpop_nonce ----

TEST(FapiVm, NonceRouteAsksForANonceThenAccepts) {
  Env env;
  EvalScratch scratch;
  const std::string nonce = env.nonces.Current(kNow);
  ASSERT_EQ(nonce.size(), 32u);
  std::string tok = Token(Bind::kDpop);
  {
    Req r = DpopReq("/v1/nonce", tok, "POST");
    std::shared_ptr<const VerifiedToken> token;
    Decision d = bytecode::Decide(*F().bundle, r.View(), env.env, scratch, &token);
    Expect e;
    e.status = 401;
    e.error = "use_dpop_nonce";
    e.description = "a DPoP nonce is required";
    e.rule = "fapi2.dpop";
    e.route = "a.r_nonce";
    e.headers = {Www("DPoP error=\"use_dpop_nonce\", error_description=\"a DPoP nonce is "
                     "required\", algs=\"ES256 EdDSA\""),
                 {"DPoP-Nonce", nonce},
                 kNewInteraction};
    ExpectDecision(d, e);
    EXPECT_EQ(token, nullptr);
  }
  {
    Req r("POST", "/v1/nonce");
    r.H("authorization", "DPoP " + tok).H("dpop", Proof("POST", "/v1/nonce", tok, "not-a-nonce"));
    Decision d = bytecode::Decide(*F().bundle, r.View(), env.env, scratch);
    EXPECT_EQ(d.status, 401);
    EXPECT_EQ(d.error, "use_dpop_nonce");
    EXPECT_EQ(d.description, "the DPoP nonce is invalid or expired");
    ASSERT_EQ(d.header_count, 3);
    EXPECT_EQ(d.headers[1].name, "DPoP-Nonce");
    EXPECT_EQ(d.headers[1].value, nonce);
  }
  {
    Req r("POST", "/v1/nonce");
    r.H("authorization", "DPoP " + tok).H("dpop", Proof("POST", "/v1/nonce", tok, nonce));
    r.H("x-fapi-interaction-id", "n-1");
    std::shared_ptr<const VerifiedToken> token;
    Decision d = bytecode::Decide(*F().bundle, r.View(), env.env, scratch, &token);
    // RFC 9449 8.2: a successful response carries the nonce to use next.
    ExpectDecision(d,
                   Allowed("a.r_nonce", {{"DPoP-Nonce", nonce}, {"x-fapi-interaction-id", "n-1"}}));
    EXPECT_NE(token, nullptr);
  }
}

// ---- x-fapi-interaction-id ----

TEST(FapiVm, InteractionIdIsEchoedWhenSaneElseGenerated) {
  Env env;
  EvalScratch scratch;
  auto decide = [&](std::vector<std::string> ids) {
    Req r("GET", "/v1/any/anna");  // no credentials: 401 with the id
    for (auto& id : ids) r.H("X-FAPI-Interaction-ID", id);
    Decision d = bytecode::Decide(*F().bundle, r.View(), env.env, scratch);
    EXPECT_EQ(d.status, 401);
    EXPECT_EQ(d.header_count, 3);
    EXPECT_EQ(d.headers[2].name, "x-fapi-interaction-id");
    return std::string(d.headers[2].value);
  };
  const std::string uuid = "c0ffee00-1234-4abc-8def-0123456789ab";
  EXPECT_EQ(decide({uuid}), uuid);
  std::string max64(64, 'a');
  EXPECT_EQ(decide({max64}), max64);
  std::set<std::string> generated;
  for (const auto& ids : std::vector<std::vector<std::string>>{
           {},                      // missing
           {""},                    // empty
           {"has space"},           // not a token
           {"quote\"d"},            // not a token
           {std::string(65, 'a')},  // too long
           {uuid, uuid},            // repeated, even if equal
           {"one", "two"},          // repeated
           {"bad id", uuid},        // repeated, the first malformed
       }) {
    std::string id = decide(ids);
    EXPECT_TRUE(IsUuidV4(id)) << id;
    EXPECT_NE(id, uuid);
    generated.insert(id);
  }
  EXPECT_EQ(generated.size(), 8u);  // fresh every time
}

TEST(FapiVm, InteractionIdIsNotAddedOnRoutesWithoutFapi2) {
  Env env;
  EvalScratch scratch;
  Req r("GET", "/v1/open");
  r.H("x-flag", "on").H("x-fapi-interaction-id", "abc");
  ExpectDecision(bytecode::Decide(*F().bundle, r.View(), env.env, scratch), Allowed("a.open", {}));
}

// ---- the token cache ----

TEST(FapiVm, TokenCacheHitGivesTheSameDecision) {
  Env env(/*with_token_cache=*/true);
  EvalScratch scratch;
  std::string tok = Token(Bind::kDpop);
  std::shared_ptr<const VerifiedToken> first, second;
  Req r1 = DpopReq("/v1/any/anna", tok);
  r1.H("x-fapi-interaction-id", "same");
  Decision d1 = bytecode::Decide(*F().bundle, r1.View(), env.env, scratch, &first);
  std::string j1 = bytecode::DecisionToJson(d1);
  EXPECT_EQ(env.tokens.size(), 1u);
  Req r2 = DpopReq("/v1/any/anna", tok);  // a fresh proof, the same token
  r2.H("x-fapi-interaction-id", "same");
  Decision d2 = bytecode::Decide(*F().bundle, r2.View(), env.env, scratch, &second);
  EXPECT_EQ(bytecode::DecisionToJson(d2), j1);
  ExpectDecision(d2, Allowed("a.r_any", {{"x-fapi-interaction-id", "same"}}));
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(second.get(), first.get());  // the cached object: no second verification
  EXPECT_EQ(env.tokens.size(), 1u);
  EXPECT_EQ(env.replay.size(), 2u);  // proofs are never cached

  // A cache hit still runs the program (and its denies) on the cached claims.
  Req r3 = DpopReq("/v1/any/eva", tok);
  std::shared_ptr<const VerifiedToken> third;
  Decision d3 = bytecode::Decide(*F().bundle, r3.View(), env.env, scratch, &third);
  EXPECT_EQ(d3.status, 403);
  EXPECT_EQ(d3.rule, "a.r_any.owner");
  EXPECT_EQ(third.get(), first.get());

  // Revocation applies to cached tokens.
  bytecode::RevocationSet revoked;
  revoked.RevokeJti(first->jti);
  env.env.revoked = &revoked;
  Req r4 = DpopReq("/v1/any/anna", tok);
  std::shared_ptr<const VerifiedToken> fourth;
  Decision d4 = bytecode::Decide(*F().bundle, r4.View(), env.env, scratch, &fourth);
  EXPECT_EQ(d4.status, 401);
  EXPECT_EQ(d4.error, "invalid_token");
  EXPECT_EQ(d4.description, "the token has been revoked");
  EXPECT_EQ(fourth, nullptr);
}

// ---- responses ----

TEST(FapiVm, DecideResponseReadsTheVerifiedClaims) {
  Env env;
  EvalScratch scratch;
  Req r = DpopReq("/v1/any/anna", Token(Bind::kDpop));
  HttpRequest view = r.View();
  std::shared_ptr<const VerifiedToken> token;
  ASSERT_TRUE(bytecode::Decide(*F().bundle, view, env.env, scratch, &token).allow);
  ASSERT_NE(token, nullptr);
  std::vector<HeaderField> mine = {{"X-Owner", "anna"}};
  std::vector<HeaderField> theirs = {{"X-Owner", "eva"}};
  HttpResponse ok;
  ok.headers = mine;
  ExpectDecision(bytecode::DecideResponse(*F().bundle, view, token->claims.get(), ok, scratch),
                 Allowed("a.r_any", {}));
  HttpResponse bad;
  bad.headers = theirs;
  Expect e;
  e.status = 502;
  e.error = "bad_response";
  e.description = "not the caller's record";
  e.rule = "a.r_any.mine";
  e.route = "a.r_any";
  ExpectDecision(bytecode::DecideResponse(*F().bundle, view, token->claims.get(), bad, scratch), e);
}

// ---- routes without fapi2 ----

TEST(FapiVm, RoutesWithoutFapi2IgnoreCredentials) {
  Env env;
  EvalScratch scratch;
  for (const char* authz : {"", "Bearer not.a.token", "DPoP x", "Basic, broken"}) {
    SCOPED_TRACE(authz);
    Req r("GET", "/v1/open?access_token=abc");
    if (*authz) r.H("authorization", authz);
    r.tls_version.clear();
    r.tls_cipher.clear();
    r.H("x-flag", "on");
    std::shared_ptr<const VerifiedToken> token = std::make_shared<VerifiedToken>();
    ExpectDecision(bytecode::Decide(*F().bundle, r.View(), env.env, scratch, &token),
                   Allowed("a.open", {}));
    EXPECT_EQ(token, nullptr);
    r.headers.back().second = "off";
    Expect e;
    e.status = 400;
    e.error = "invalid_request";
    e.description = "x-flag must be on";
    e.rule = "a.open.flag";
    e.route = "a.open";
    ExpectDecision(bytecode::Decide(*F().bundle, r.View(), env.env, scratch), e);
    ExpectDecision(bytecode::DecideRequest(*F().bundle, r.View(), nullptr, scratch), e);
  }
}

// ---- injected claims (DecideRequest) ----

std::unique_ptr<JsonClaims> Claims(const std::string& json) {
  auto c = JsonClaims::Parse(json);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? std::move(c).value() : nullptr;
}

TEST(FapiVm, InjectedClaimsStandForAVerifiedToken) {
  EvalScratch scratch;
  auto anna = Claims(R"({"sub":"anna","scope":"records.read"})");
  {
    Req r("GET", "/v1/any/anna");
    r.H("x-fapi-interaction-id", "inj-1");
    ExpectDecision(bytecode::DecideRequest(*F().bundle, r.View(), anna.get(), scratch),
                   Allowed("a.r_any", {{"x-fapi-interaction-id", "inj-1"}}));
  }
  {  // the program still runs on them
    Req r("GET", "/v1/any/eva");
    Decision d = bytecode::DecideRequest(*F().bundle, r.View(), anna.get(), scratch);
    EXPECT_EQ(d.status, 403);
    EXPECT_EQ(d.rule, "a.r_any.owner");
  }
}

TEST(FapiVm, InjectedModeStillChecksTransportQueryAndScope) {
  EvalScratch scratch;
  auto anna = Claims(R"({"sub":"anna","scope":"records.read"})");
  {  // transport
    Req r("GET", "/v1/any/anna");
    r.tls_version.clear();
    Expect e;
    e.status = 403;
    e.error = "insecure_transport";
    e.description = "the connection does not use TLS";
    e.rule = "fapi2.transport";
    e.route = "a.r_any";
    e.headers = {kNewInteraction};
    ExpectDecision(bytecode::DecideRequest(*F().bundle, r.View(), anna.get(), scratch), e);
  }
  {  // a token in the query (decoded name)
    Req r("GET", "/v1/any/anna?x=1&access%5Ftoken=abc");
    Expect e;
    e.status = 400;
    e.error = "invalid_request";
    e.description = "access tokens are not accepted in the query string";
    e.rule = "fapi2.request";
    e.route = "a.r_any";
    e.headers = {Www("Bearer error=\"invalid_request\", error_description=\"access tokens are "
                     "not accepted in the query string\""),
                 kNewInteraction};
    ExpectDecision(bytecode::DecideRequest(*F().bundle, r.View(), anna.get(), scratch), e);
    // Decide gives the same answer.
    Env env;
    ExpectDecision(bytecode::Decide(*F().bundle, r.View(), env.env, scratch), e);
  }
  {  // scope: the route's challenges, algs as the issuer allows
    auto weak = Claims(R"({"sub":"anna","scope":"records.readx profile"})");
    Req r("GET", "/v1/any/anna");
    Expect e;
    e.status = 403;
    e.error = "insufficient_scope";
    e.description = "the token lacks scope records.read";
    e.rule = "fapi2.scope";
    e.route = "a.r_any";
    e.headers = {Www("DPoP error=\"insufficient_scope\", error_description=\"the token lacks "
                     "scope records.read\", scope=\"records.read\", algs=\"ES256 EdDSA\""),
                 Www("Bearer error=\"insufficient_scope\", error_description=\"the token lacks "
                     "scope records.read\", scope=\"records.read\""),
                 kNewInteraction};
    ExpectDecision(bytecode::DecideRequest(*F().bundle, r.View(), weak.get(), scratch), e);
  }
}

TEST(FapiVm, InjectedNullClaimsAre401WithTheRoutesChallenges) {
  EvalScratch scratch;
  Env env;
  struct Case {
    const char* path;
    const char* route;
    std::vector<std::pair<std::string, std::string>> headers;
  };
  const Case cases[] = {
      {"/v1/any/anna", "a.r_any", {Www(kDpopChallenge), Www("Bearer"), kNewInteraction}},
      {"/v1/dpop", "a.r_dpop", {Www(kDpopChallenge), kNewInteraction}},
      {"/v1/mtls", "a.r_mtls", {Www("Bearer"), kNewInteraction}},
      {"/v1/bearer", "a.r_bearer", {Www("Bearer"), kNewInteraction}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.path);
    Req r("GET", c.path);
    Expect e;
    e.status = 401;
    e.description = "no access token";
    e.rule = "fapi2.token";
    e.route = c.route;
    e.headers = c.headers;
    ExpectDecision(bytecode::DecideRequest(*F().bundle, r.View(), nullptr, scratch), e);
    // The agent's path (no Authorization header) answers identically.
    ExpectDecision(bytecode::Decide(*F().bundle, r.View(), env.env, scratch), e);
  }
}

// ---- bundle level: round trip, verifier, load, disassembly ----

TEST(FapiBundle, SerializeParseRoundTripKeepsIssuersAndAuth) {
  const BundleData& d = F().bundle->data();
  std::string bytes = bytecode::Serialize(d);
  EXPECT_EQ(bytes, F().comp->bytes);
  auto parsed = bytecode::Parse(bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->issuers.size(), d.issuers.size());
  for (size_t i = 0; i < d.issuers.size(); ++i) {
    const auto &a = parsed->issuers[i], &b = d.issuers[i];
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.issuer, b.issuer);
    EXPECT_EQ(a.audience, b.audience);
    EXPECT_EQ(a.jwks, b.jwks);
    EXPECT_EQ(a.leeway, b.leeway);
    EXPECT_EQ(a.algs, b.algs);
    EXPECT_EQ(a.flags, b.flags);
  }
  ASSERT_EQ(parsed->auth.size(), d.auth.size());
  for (size_t i = 0; i < d.auth.size(); ++i) {
    const auto &a = parsed->auth[i], &b = d.auth[i];
    EXPECT_EQ(a.issuer, b.issuer);
    EXPECT_EQ(a.scope, b.scope);
    EXPECT_EQ(a.dpop_window, b.dpop_window);
    EXPECT_EQ(a.sender, b.sender);
    EXPECT_EQ(a.tls, b.tls);
    EXPECT_EQ(a.flags, b.flags);
    EXPECT_EQ(a.reserved, b.reserved);
  }
  ASSERT_EQ(parsed->routes.size(), d.routes.size());
  for (size_t i = 0; i < d.routes.size(); ++i) EXPECT_EQ(parsed->routes[i].auth, d.routes[i].auth);

  // Hand-made values of every field survive too (not only what the compiler writes).
  BundleData m = d;
  m.issuers[0].leeway = 300;
  m.issuers[0].algs = 0xf;
  m.issuers[0].flags = bytecode::kIssuerNotFapi;
  m.auth[0].dpop_window = 300;
  m.auth[0].sender = 3;
  m.auth[0].tls = 2;
  m.auth[0].flags = bytecode::kAuthDpopNonce;
  auto again = bytecode::Parse(bytecode::Serialize(m));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->issuers[0].leeway, 300u);
  EXPECT_EQ(again->issuers[0].algs, 0xf);
  EXPECT_EQ(again->issuers[0].flags, bytecode::kIssuerNotFapi);
  EXPECT_EQ(again->auth[0].dpop_window, 300u);
  EXPECT_EQ(again->auth[0].sender, 3);
  EXPECT_EQ(again->auth[0].tls, 2);
  EXPECT_EQ(again->auth[0].flags, bytecode::kAuthDpopNonce);
  EXPECT_EQ(bytecode::Serialize(*again), bytecode::Serialize(m));
}

void ExpectRefused(const BundleData& d, const std::string& message) {
  Status st = bytecode::Verify(d);
  EXPECT_EQ(st.code(), StatusCode::kCorruption) << st.ToString();
  EXPECT_EQ(st.message(), message);
}

uint32_t RouteIndex(const BundleData& d, std::string_view name) {
  for (uint32_t r = 0; r < d.routes.size(); ++r) {
    if (d.strings[d.routes[r].name] == name) return r;
  }
  ADD_FAILURE() << "no route " << name;
  return 0;
}

TEST(FapiBundle, VerifierRefusesBadIssuers) {
  const BundleData& base = F().bundle->data();
  ASSERT_TRUE(bytecode::Verify(base).ok());
  const std::string n = std::to_string(base.strings.size());
  const std::string range = " string " + n + " out of range (" + n + " strings)";
  {
    BundleData d = base;
    d.issuers.assign(bytecode::kMaxIssuers + 1, base.issuers[0]);
    ExpectRefused(d, "65 issuers, the limit is 64");
    d.issuers.resize(bytecode::kMaxIssuers);  // at the limit: fine
    EXPECT_TRUE(bytecode::Verify(d).ok());
  }
  for (auto [field, what] : {std::pair{&bytecode::IssuerRecord::name, "name"},
                             std::pair{&bytecode::IssuerRecord::issuer, "iss"},
                             std::pair{&bytecode::IssuerRecord::audience, "audience"},
                             std::pair{&bytecode::IssuerRecord::jwks, "jwks"}}) {
    BundleData d = base;
    d.issuers[0].*field = static_cast<uint32_t>(d.strings.size());
    ExpectRefused(d, std::string("issuer 0: ") + what + range);
  }
  {
    BundleData d = base;
    d.issuers[0].issuer = 0;  // ""
    ExpectRefused(d, "issuer 0: empty iss or audience");
    d = base;
    d.issuers[0].audience = 0;
    ExpectRefused(d, "issuer 0: empty iss or audience");
  }
  {
    BundleData d = base;
    d.strings.push_back(std::string(bytecode::kMaxJwksBytes + 1, ' '));
    d.issuers[0].jwks = static_cast<uint32_t>(d.strings.size() - 1);
    ExpectRefused(d, "issuer 0: JWKS over 1048576 bytes");
  }
  {
    BundleData d = base;
    d.issuers[0].leeway = bytecode::kMaxLeewaySeconds + 1;
    ExpectRefused(d, "issuer 0: leeway 301s over 300s");
    d.issuers[0].leeway = bytecode::kMaxLeewaySeconds;
    EXPECT_TRUE(bytecode::Verify(d).ok());
  }
  {
    BundleData d = base;
    d.issuers[0].algs = 0;
    ExpectRefused(d, "issuer 0: algorithm set 0 is empty or unknown");
    d.issuers[0].algs = 0x12;  // ES256 and an unknown bit
    ExpectRefused(d, "issuer 0: algorithm set 18 is empty or unknown");
    d.issuers[0].algs = 0x8000;
    ExpectRefused(d, "issuer 0: algorithm set 32768 is empty or unknown");
  }
  {
    BundleData d = base;
    d.issuers[0].algs = 0xa;  // ES256 and RS256
    ExpectRefused(d, "issuer 0: a FAPI issuer allows an algorithm outside PS256/ES256/EdDSA");
    d.issuers[0].flags = bytecode::kIssuerNotFapi;  // outside FAPI RS256 is allowed
    EXPECT_TRUE(bytecode::Verify(d).ok());
  }
  for (uint16_t flags : {uint16_t{2}, uint16_t{3}, uint16_t{0x8000}}) {
    BundleData d = base;
    d.issuers[0].flags = flags;
    ExpectRefused(d, "issuer 0: unknown flags " + std::to_string(flags));
  }
}

TEST(FapiBundle, VerifierRefusesBadAuthRecordsAndRoutes) {
  const BundleData& base = F().bundle->data();
  const std::string n = std::to_string(base.strings.size());
  {
    BundleData d = base;
    d.auth[2].issuer = 1;
    ExpectRefused(d, "auth record 2: issuer 1 out of range (1 issuers)");
    d.auth[2].issuer = bytecode::kNone;
    ExpectRefused(d, "auth record 2: issuer 4294967295 out of range (1 issuers)");
  }
  {
    BundleData d = base;
    d.auth[0].scope = static_cast<uint32_t>(d.strings.size());
    ExpectRefused(d, "auth record 0: scope string " + n + " out of range (" + n + " strings)");
  }
  {
    BundleData d = base;
    d.auth[1].dpop_window = 0;
    ExpectRefused(d, "auth record 1: DPoP window 0s outside 1..300");
    d.auth[1].dpop_window = bytecode::kMaxDpopWindowSeconds + 1;
    ExpectRefused(d, "auth record 1: DPoP window 301s outside 1..300");
    d.auth[1].dpop_window = 1;
    EXPECT_TRUE(bytecode::Verify(d).ok());
    d.auth[1].dpop_window = bytecode::kMaxDpopWindowSeconds;
    EXPECT_TRUE(bytecode::Verify(d).ok());
  }
  const std::string bad = "auth record 0: sender, tls, flags or reserved out of range";
  for (int which = 0; which < 4; ++which) {
    BundleData d = base;
    bytecode::AuthRecord& a = d.auth[0];
    switch (which) {
      case 0:
        a.sender = 4;
        break;
      case 1:
        a.tls = 3;
        break;
      case 2:
        a.flags = 2;
        break;
      case 3:
        a.reserved = 1;
        break;
    }
    SCOPED_TRACE(which);
    ExpectRefused(d, bad);
  }
  {  // the largest valid values pass
    BundleData d = base;
    d.auth[0].sender = 3;
    d.auth[0].tls = 2;
    d.auth[0].flags = bytecode::kAuthDpopNonce;
    EXPECT_TRUE(bytecode::Verify(d).ok());
  }
  {
    BundleData d = base;
    uint32_t r = RouteIndex(d, "a.r_dpop");
    d.routes[r].auth = static_cast<uint32_t>(d.auth.size());
    ExpectRefused(
        d, "route " + std::to_string(r) + " (`a.r_dpop`): auth record 5 out of range (5 records)");
    // kNone is "no auth", and any record may be shared.
    d.routes[r].auth = bytecode::kNone;
    EXPECT_TRUE(bytecode::Verify(d).ok());
    d.routes[r].auth = 0;
    EXPECT_TRUE(bytecode::Verify(d).ok());
  }
  {  // Load runs the verifier: the same refusal through the bytes
    BundleData d = base;
    d.auth[0].reserved = 7;
    auto loaded = Bundle::Load(bytecode::Serialize(d));
    ASSERT_FALSE(loaded.ok());
    EXPECT_EQ(loaded.status().code(), StatusCode::kCorruption);
    EXPECT_EQ(loaded.status().message(), bad);
  }
}

TEST(FapiBundle, LoadRefusesAnEmbeddedJwksThatDoesNotParse) {
  const BundleData& base = F().bundle->data();
  struct Case {
    std::string jwks;
    std::string contains;
  };
  const Case cases[] = {
      {"not json at all", "jwks: malformed JSON"},
      {"{\"keys\":[]}", "the JWKS has no key"},
      {"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"}]}",
       "jwks: key 0: jwk: P-256 coordinates must be 32 bytes each"},
      {"{\"nokeys\":1}", "jwks: missing array member `keys`"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.jwks);
    BundleData d = base;
    d.strings[d.issuers[0].jwks] = c.jwks;
    ASSERT_TRUE(bytecode::Verify(d).ok());  // the verifier checks only the size
    auto loaded = Bundle::Load(bytecode::Serialize(d));
    ASSERT_FALSE(loaded.ok());
    EXPECT_EQ(loaded.status().code(), StatusCode::kCorruption);
    const std::string& m = loaded.status().message();
    EXPECT_EQ(m.rfind("issuer 0: issuer `t.main`: ", 0), 0u) << m;
    EXPECT_NE(m.find(c.contains), std::string::npos) << m;
  }
}

TEST(FapiBundle, DisassemblyListsFapi2AndIssuers) {
  const BundleData& d = F().bundle->data();
  std::string text = bytecode::Disassemble(d);
  EXPECT_NE(text.find("format 3 "), std::string::npos) << text;
  EXPECT_NE(text.find("  fapi2: issuer i0 sender any tls fapi dpop_window 60s scope "
                      "\"records.read\"\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("  fapi2: issuer i0 sender mtls tls 1.3 dpop_window 60s\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("  fapi2: issuer i0 sender none tls any dpop_window 60s\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("  fapi2: issuer i0 sender dpop tls fapi dpop_window 30s dpop_nonce\n"),
            std::string::npos)
      << text;
  auto digest = bytecode::Sha256(F().jwks);
  std::string issuers =
      "issuers:\n  i0 `t.main` iss \"https://as.example\" aud "
      "\"https://api.example\" algs ES256 EdDSA leeway 5s jwks " +
      std::to_string(F().jwks.size()) + " bytes sha256 " + bytecode::HexLower(digest.data(), 8) +
      "\n";
  EXPECT_NE(text.find(issuers), std::string::npos) << text;
  // The `fapi2:` line sits right under its route's header line.
  size_t route = text.find("`a.r_nonce` POST /v1/nonce");
  ASSERT_NE(route, std::string::npos) << text;
  size_t eol = text.find('\n', route);
  EXPECT_EQ(text.compare(eol + 1, 15, "  fapi2: issuer"), 0) << text.substr(route, 200);
  // Not-FAPI issuers and bad records are listed, not hidden.
  BundleData m = d;
  m.issuers[0].flags = bytecode::kIssuerNotFapi;
  m.issuers[0].algs = 0xf;
  m.auth[0].sender = 9;
  m.routes[RouteIndex(m, "a.r_dpop")].auth = 77;
  std::string broken = bytecode::Disassemble(m);
  EXPECT_NE(broken.find("algs PS256 ES256 EdDSA RS256 leeway 5s NOT-FAPI jwks"), std::string::npos)
      << broken;
  EXPECT_NE(broken.find("sender <bad 9>"), std::string::npos) << broken;
  EXPECT_NE(broken.find("  fapi2: <bad auth record 77>\n"), std::string::npos) << broken;
}

}  // namespace
}  // namespace vakt
