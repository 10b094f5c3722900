// FAPI 2.0 in the language: `issuer NAME { ... }`, `use fapi2 { ... }`,
// `has_scope` and the test items `token`, `dpop`, `cert` and `revoke`.
//
// Covers every diagnostic of compiler/lower.cc's LowerIssuer, ResolveIssuer
// and ApplyFapi2 (each error and warning, with its line:col), the positive
// cases and what they put in the bundle (IssuerRecord, AuthRecord, shared
// auth records), the JWKS as part of the source digest, `has_scope`
// decisions, parse errors of the new syntax, the formatter on it, and the
// policy test runner (compiler/policy_test.cc) with real tokens, including
// tests that must fail. JWKS files are served from memory through
// CompileOptions::read_asset; keys come from compiler/token_tool.h.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bytecode/bundle.h"
#include "bytecode/fapi_auth.h"
#include "bytecode/request_json.h"
#include "bytecode/vm.h"
#include "compiler/compile.h"
#include "compiler/lower.h"
#include "compiler/policy_test.h"
#include "compiler/token_tool.h"
#include "dsl/formatter.h"
#include "dsl/parser.h"

namespace vakt::compiler {
namespace {

using bytecode::AlgBit;
using bytecode::JwsAlg;
using bytecode::SenderConstraint;
using bytecode::TlsRequirement;

// ---------------------------------------------------------------------------
// Keys and JWKS texts, made once.

struct Keys {
  std::string es, ps, ed;  // public JWKs, kids "es", "ps", "ed"
  std::string full;        // {"keys": [es, ps, ed]}
  std::string es_only;     // {"keys": [es]}
  std::string es_no_kid;   // an ES256 key without `kid`
  std::string es_private;  // a JWKS holding a private key
  std::string es_twice;    // two ES256 keys with kid "es"
  std::string rsa1024;     // one 1024-bit RSA key, kid "weak", alg RS256
};

std::string Jwks(const std::vector<std::string>& keys) {
  std::string out = "{\"keys\": [";
  for (size_t i = 0; i < keys.size(); ++i) out += (i ? ", " : "") + keys[i];
  return out + "]}";
}

std::string PublicJwk(JwsAlg alg, const std::string& kid) {
  auto k = GenerateKey(alg, kid);
  EXPECT_TRUE(k.ok()) << k.status().ToString();
  return k.ok() ? k->PublicJwk() : std::string("{}");
}

const Keys& K() {
  static const Keys* keys = [] {
    auto* k = new Keys;
    k->es = PublicJwk(JwsAlg::kES256, "es");
    k->ps = PublicJwk(JwsAlg::kPS256, "ps");
    k->ed = PublicJwk(JwsAlg::kEdDSA, "ed");
    k->full = Jwks({k->es, k->ps, k->ed});
    k->es_only = Jwks({k->es});
    nlohmann::json no_kid = nlohmann::json::parse(k->es);
    no_kid.erase("kid");
    k->es_no_kid = Jwks({no_kid.dump()});
    auto priv = GenerateKey(JwsAlg::kES256, "priv");
    EXPECT_TRUE(priv.ok());
    k->es_private = Jwks({priv.ok() ? priv->PrivateJwk() : std::string("{}")});
    k->es_twice = Jwks({k->es, PublicJwk(JwsAlg::kES256, "es")});
    // GenerateKey makes no RSA key under 2048 bits: a fixed 1024-bit one.
    k->rsa1024 =
        Jwks({R"({"kty": "RSA", "kid": "weak", "alg": "RS256", "use": "sig", "e": "AQAB", )"
              R"("n": "03zytft0P3rK44XsoYgg-xEKBuchwMzJ8_E4fDZDM9aszvyq5-6dsPR2qVJ7fAls3gbAaamT)"
              R"(z2MGT-qKTmyRomoPlpRaSUfRX9H0u-bm6uwc4zb0LOzbN9L81WE8e_oRyxMWvd2J3byVyYF7WGy19)"
              R"(CvUZUTBdn4MaVMXNG6xUIk"})"});
    return k;
  }();
  return *keys;
}

// ---------------------------------------------------------------------------
// Compiling in memory.

using Assets = std::map<std::string, std::string>;

Assets DefaultAssets() {
  return {{"keys.json", K().full},       {"es.json", K().es_only},
          {"nokid.json", K().es_no_kid}, {"private.json", K().es_private},
          {"twice.json", K().es_twice},  {"weak.json", K().rsa1024},
          {"bad.json", "not json"},      {"big.json", std::string(kMaxAssetBytes + 1, ' ')}};
}

struct Out {
  std::unique_ptr<SourceSet> sources;  // outlives c: diagnostics point into it
  std::unique_ptr<Compilation> c;
  std::string text;  // the formatted diagnostics
  size_t errors = 0;
  size_t warnings = 0;
  bool ok = false;
  std::shared_ptr<std::vector<std::string>> reads;  // "FROM|PATH" per read_asset call
};

Out Build(const std::vector<std::pair<std::string, std::string>>& files,
          const Assets& assets = DefaultAssets()) {
  Out out;
  out.sources = std::make_unique<SourceSet>();
  for (const auto& [p, t] : files) AddSource(*out.sources, p, t);
  out.reads = std::make_shared<std::vector<std::string>>();
  CompileOptions o;
  o.read_asset = [assets, reads = out.reads](const dsl::SourceFile& from,
                                             const std::string& path) -> Result<std::string> {
    reads->push_back(from.path + "|" + path);
    auto it = assets.find(path);
    if (it == assets.end()) return NotFound("no such file");
    return it->second;
  };
  dsl::Diagnostics d;
  out.c = Compile(*out.sources, o, d);
  out.text = d.Format();
  out.errors = d.error_count();
  out.warnings = d.warning_count();
  out.ok = !d.HasErrors() && !out.c->bytes.empty();
  return out;
}

Out Build1(const std::string& text, const Assets& assets = DefaultAssets()) {
  return Build({{"p.vakt", text}}, assets);
}

// `at` is "LINE:COL"; `severity` is "error" or "warning". The whole message
// must match (it is followed by the newline before the source line).
bool Has(const Out& o, const std::string& at, const std::string& severity,
         const std::string& message) {
  return o.text.find("p.vakt:" + at + ": " + severity + ": " + message + "\n") != std::string::npos;
}

#define EXPECT_DIAG(o, at, severity, message)                                                     \
  EXPECT_TRUE(Has(o, at, severity, message)) << "want " << (at) << ": " << (message) << "\nin:\n" \
                                             << (o).text

constexpr const char* kUrl = "  url = \"https://idp.example\"\n";
constexpr const char* kAud = "  audience = \"https://api.example\"\n";
constexpr const char* kKeys = "  jwks = \"keys.json\"\n";

// `issuer idp {` on line 1, then `body` (lines from 2), then `}`.
std::string Issuer(const std::string& body, const std::string& name = "idp") {
  return "issuer " + name + " {\n" + body + "}\n";
}

std::string ValidIssuer(const std::string& name = "idp", const std::string& jwks = "keys.json") {
  return Issuer(std::string(kUrl) + kAud + "  jwks = \"" + jwks + "\"\n", name);
}

// A valid issuer on lines 1-5, then an api whose route `r` (line 7) has
// `stmt` on line 8, from column 5.
std::string RouteWith(const std::string& stmt) {
  return ValidIssuer() +
         "api a \"/v1\" {\n"
         "  route r GET \"/x\" {\n"
         "    " +
         stmt +
         "\n"
         "  }\n"
         "}\n";
}

const IrRoute* FindRoute(const Compilation& c, const std::string& name) {
  for (const auto& r : c.ir.routes) {
    if (r.name == name) return &r;
  }
  return nullptr;
}

std::shared_ptr<const bytecode::Bundle> Load(const Out& o) {
  auto b = bytecode::Bundle::Load(o.c->bytes);
  EXPECT_TRUE(b.ok()) << b.status().ToString();
  return b.ok() ? *b : nullptr;
}

uint32_t RouteIndex(const bytecode::BundleData& d, const std::string& name) {
  for (uint32_t i = 0; i < d.routes.size(); ++i) {
    if (d.strings[d.routes[i].name] == name) return i;
  }
  ADD_FAILURE() << "no route " << name;
  return 0;
}

constexpr uint32_t kFapiAlgs =
    AlgBit(JwsAlg::kPS256) | AlgBit(JwsAlg::kES256) | AlgBit(JwsAlg::kEdDSA);

// ---------------------------------------------------------------------------
// Issuers: positive cases and the bundle.

TEST(FapiLang, IssuerDefaultsAndBundleRecords) {
  Out o = Build1(ValidIssuer() +
                 "api a \"/v1\" {\n"
                 "  route r GET \"/x\" {\n"
                 "    use fapi2\n"
                 "  }\n"
                 "  route open GET \"/open\" {}\n"
                 "}\n");
  ASSERT_TRUE(o.ok) << o.text;
  EXPECT_EQ(o.warnings, 0u) << o.text;
  ASSERT_EQ(o.c->ir.issuers.size(), 1u);
  const IrIssuer& is = o.c->ir.issuers[0];
  EXPECT_EQ(is.name, "main.idp");
  EXPECT_EQ(is.url, "https://idp.example");
  EXPECT_EQ(is.audience, "https://api.example");
  EXPECT_EQ(is.jwks, K().full);
  EXPECT_EQ(is.algs, kFapiAlgs);
  EXPECT_EQ(is.leeway, 5);
  EXPECT_TRUE(is.fapi);
  // The JWKS was read once, relative to the naming file, and recorded.
  ASSERT_EQ(o.reads->size(), 1u);
  EXPECT_EQ((*o.reads)[0], "p.vakt|keys.json");
  ASSERT_EQ(o.c->assets.size(), 1u);
  EXPECT_EQ(o.c->assets[0].first, "keys.json");
  EXPECT_EQ(o.c->assets[0].second, K().full);

  const IrRoute* r = FindRoute(*o.c, "a.r");
  ASSERT_NE(r, nullptr);
  ASSERT_TRUE(r->auth.has_value());
  EXPECT_EQ(r->auth->issuer, 0u);
  EXPECT_EQ(r->auth->sender, static_cast<uint8_t>(SenderConstraint::kAny));
  EXPECT_EQ(r->auth->tls, static_cast<uint8_t>(TlsRequirement::kFapi));
  EXPECT_FALSE(r->auth->dpop_nonce);
  EXPECT_EQ(r->auth->dpop_window, 60);
  EXPECT_TRUE(r->auth->scopes.empty());
  EXPECT_TRUE(r->auth->loosened.empty());
  EXPECT_FALSE(FindRoute(*o.c, "a.open")->auth.has_value());

  auto b = Load(o);
  ASSERT_NE(b, nullptr);
  const auto& d = b->data();
  ASSERT_EQ(d.issuers.size(), 1u);
  const auto& rec = d.issuers[0];
  EXPECT_EQ(d.strings[rec.name], "main.idp");
  EXPECT_EQ(d.strings[rec.issuer], "https://idp.example");
  EXPECT_EQ(d.strings[rec.audience], "https://api.example");
  EXPECT_EQ(d.strings[rec.jwks], K().full);
  EXPECT_EQ(rec.leeway, 5u);
  EXPECT_EQ(rec.algs, kFapiAlgs);
  EXPECT_EQ(rec.flags, 0u);
  ASSERT_EQ(d.auth.size(), 1u);
  const auto& ar = d.auth[0];
  EXPECT_EQ(ar.issuer, 0u);
  EXPECT_EQ(d.strings[ar.scope], "");
  EXPECT_EQ(ar.dpop_window, 60u);
  EXPECT_EQ(ar.sender, static_cast<uint8_t>(SenderConstraint::kAny));
  EXPECT_EQ(ar.tls, static_cast<uint8_t>(TlsRequirement::kFapi));
  EXPECT_EQ(ar.flags, 0u);
  EXPECT_EQ(ar.reserved, 0u);
  EXPECT_EQ(d.routes[RouteIndex(d, "a.r")].auth, 0u);
  EXPECT_EQ(d.routes[RouteIndex(d, "a.open")].auth, bytecode::kNone);
  // The runtime form of the issuer was built from the embedded JWKS.
  EXPECT_EQ(b->issuer(0).keys.size(), 3u);
}

TEST(FapiLang, IssuerExplicitSettings) {
  Out o = Build1(Issuer(std::string(kUrl) + kAud + kKeys +
                        "  algs = [\"ES256\", \"EdDSA\", \"PS256\"]\n"
                        "  leeway = 0s\n"
                        "  fapi = true\n"));
  ASSERT_TRUE(o.ok) << o.text;
  EXPECT_EQ(o.warnings, 0u) << o.text;
  EXPECT_EQ(o.c->ir.issuers[0].algs, kFapiAlgs);
  EXPECT_EQ(o.c->ir.issuers[0].leeway, 0);
  // An issuer nobody uses is still checked and embedded; the bundle is
  // named `policy` (no api).
  auto b = Load(o);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->data().name, "policy");
  ASSERT_EQ(b->data().issuers.size(), 1u);
  EXPECT_EQ(b->data().issuers[0].leeway, 0u);

  // A subset of the algorithms, with only its keys: no warning.
  o = Build1(Issuer(std::string(kUrl) + kAud + "  jwks = \"es.json\"\n  algs = [\"ES256\"]\n"));
  ASSERT_TRUE(o.ok) << o.text;
  EXPECT_EQ(o.warnings, 0u) << o.text;
  EXPECT_EQ(o.c->ir.issuers[0].algs, AlgBit(JwsAlg::kES256));
  EXPECT_EQ(Load(o)->data().issuers[0].algs, AlgBit(JwsAlg::kES256));
}

TEST(FapiLang, IssuerLeavingFapiIsFlaggedInTheBundle) {
  Out o = Build1(Issuer("  url = \"http://idp.example\"\n" + std::string(kAud) +
                        "  jwks = \"weak.json\"\n"
                        "  algs = [\"RS256\"]\n"
                        "  loosen leeway = 2m\n"
                        "  loosen fapi = false\n"));
  ASSERT_TRUE(o.ok) << o.text;
  EXPECT_DIAG(o, "7:3", "warning",
              "issuer `idp` leaves the FAPI 2.0 profile: RS256, RSA keys under 2048 bits and long "
              "clock leeways are allowed");
  EXPECT_DIAG(o, "5:11", "warning", "RS256 is weak: FAPI 2.0 requires PS256, ES256 or EdDSA");
  EXPECT_DIAG(o, "6:19", "warning",
              "a clock leeway of 120s is weak: FAPI 2.0 suggests at most 10s");
  EXPECT_DIAG(o, "4:10", "warning",
              "key `weak` is a 1024-bit RSA key: weak, FAPI 2.0 requires at least 2048 bits");
  EXPECT_EQ(o.warnings, 4u) << o.text;
  const IrIssuer& is = o.c->ir.issuers[0];
  EXPECT_FALSE(is.fapi);
  EXPECT_EQ(is.url, "http://idp.example");
  EXPECT_EQ(is.algs, AlgBit(JwsAlg::kRS256));
  EXPECT_EQ(is.leeway, 120);
  auto b = Load(o);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->data().issuers[0].flags, bytecode::kIssuerNotFapi);
  EXPECT_EQ(b->data().issuers[0].algs, AlgBit(JwsAlg::kRS256));
  EXPECT_EQ(b->data().issuers[0].leeway, 120u);
  EXPECT_FALSE(b->issuer(0).fapi);
}

TEST(FapiLang, JwksContentsArePartOfTheSourceDigest) {
  std::string src = ValidIssuer() + "api a \"/v1\" {\n  route r GET \"/x\" { use fapi2 }\n}\n";
  Out a = Build1(src), same = Build1(src);
  ASSERT_TRUE(a.ok) << a.text;
  EXPECT_EQ(a.c->bytes, same.c->bytes);  // reproducible
  // Same sources, other keys: another digest (and another bundle).
  Assets other = DefaultAssets();
  other["keys.json"] = Jwks({PublicJwk(JwsAlg::kES256, "es"), K().ps, K().ed});
  Out b = Build1(src, other);
  ASSERT_TRUE(b.ok) << b.text;
  EXPECT_NE(a.c->data.source_digest, b.c->data.source_digest);
  EXPECT_NE(a.c->bytes, b.c->bytes);
  // Only whitespace changed in the JWKS: still another digest.
  other["keys.json"] = K().full + "\n";
  Out c = Build1(src, other);
  ASSERT_TRUE(c.ok) << c.text;
  EXPECT_NE(a.c->data.source_digest, c.c->data.source_digest);
  // The digest holds the asset's path as written too.
  Assets renamed = DefaultAssets();
  renamed["keys2.json"] = K().full;
  std::string src2 = src;
  src2.replace(src2.find("keys.json"), 9, "keys2.json");
  Out d = Build1(src2, renamed);
  ASSERT_TRUE(d.ok) << d.text;
  EXPECT_NE(a.c->data.source_digest, d.c->data.source_digest);
}

// ---------------------------------------------------------------------------
// LowerIssuer: every error and warning.

TEST(FapiLang, IssuerUnknownAndRepeatedSettings) {
  Out o = Build1(Issuer(std::string(kUrl) + kAud + kKeys + "  colour = \"red\"\n"));
  EXPECT_FALSE(o.ok);
  EXPECT_DIAG(o, "5:3", "error",
              "unknown issuer setting `colour` (known: url, audience, jwks, algs, leeway, fapi)");
  EXPECT_EQ(o.errors, 1u) << o.text;

  // `loosen` alone is a setting name, and not a known one.
  o = Build1(Issuer(std::string(kUrl) + kAud + kKeys + "  loosen = 5s\n"));
  EXPECT_DIAG(o, "5:3", "error",
              "unknown issuer setting `loosen` (known: url, audience, jwks, algs, leeway, fapi)");
  EXPECT_EQ(o.errors, 1u) << o.text;

  o = Build1(Issuer(std::string(kUrl) + kAud + kKeys + "  url = \"https://other.example\"\n"));
  EXPECT_FALSE(o.ok);
  EXPECT_DIAG(o, "5:3", "error", "issuer setting `url` is given twice");
  EXPECT_EQ(o.errors, 1u) << o.text;
}

TEST(FapiLang, IssuerSettingKinds) {
  struct Case {
    std::string line;  // line 2
    std::string at;
    std::string message;
  };
  std::vector<Case> cases = {
      {"  url = 5\n", "2:9", "issuer setting `url` must be a string, got an integer"},
      {"  audience = true\n", "2:14",
       "issuer setting `audience` must be a string, got `true` or `false`"},
      {"  jwks = keys\n", "2:10", "issuer setting `jwks` must be a string, got a name"},
      {"  algs = \"ES256\"\n", "2:10", "issuer setting `algs` must be a list, got a string"},
      {"  leeway = 5\n", "2:12", "issuer setting `leeway` must be a duration, got an integer"},
      {"  fapi = \"no\"\n", "2:10",
       "issuer setting `fapi` must be `true` or `false`, got a string"},
      {"  leeway = 5s + 1s\n", "2:15",  // a binary expression is located at its operator
       "issuer setting `leeway` must be a duration, got an expression"},
  };
  for (const auto& c : cases) {
    std::string body = c.line;
    // The other required settings, unless this line is one of them.
    for (const char* req : {kUrl, kAud, kKeys}) {
      std::string name = std::string(req).substr(2, std::string(req).find(' ', 2) - 2);
      if (c.line.rfind("  " + name + " ", 0) != 0) body += req;
    }
    Out o = Build1(Issuer(body));
    EXPECT_FALSE(o.ok) << c.line;
    EXPECT_DIAG(o, c.at, "error", c.message);
    // Only that: a bad setting does not make the (good) JWKS look unusable.
    EXPECT_EQ(o.errors, 1u) << o.text;
  }
}

TEST(FapiLang, IssuerFapiFalseNeedsLoosen) {
  Out o = Build1(Issuer(std::string(kUrl) + kAud + kKeys + "  fapi = false\n"));
  EXPECT_FALSE(o.ok);
  EXPECT_DIAG(o, "5:3", "error",
              "`fapi = false` leaves the FAPI 2.0 profile; write `loosen fapi = false` to do it on "
              "purpose");
  EXPECT_EQ(o.errors, 1u) << o.text;

  o = Build1(Issuer(std::string(kUrl) + kAud + kKeys + "  loosen fapi = false\n"));
  ASSERT_TRUE(o.ok) << o.text;
  EXPECT_DIAG(o, "5:3", "warning",
              "issuer `idp` leaves the FAPI 2.0 profile: RS256, RSA keys under 2048 bits and long "
              "clock leeways are allowed");
  EXPECT_EQ(o.warnings, 1u) << o.text;

  o = Build1(Issuer(std::string(kUrl) + kAud + kKeys + "  loosen fapi = true\n"));
  ASSERT_TRUE(o.ok) << o.text;
  EXPECT_DIAG(o, "5:3", "warning", "`loosen` has no effect: `fapi = true` is the default");
  EXPECT_EQ(o.warnings, 1u) << o.text;
  EXPECT_TRUE(o.c->ir.issuers[0].fapi);
}

TEST(FapiLang, IssuerRequiredSettings) {
  Out o = Build1("const X = 1\n\nissuer idp {\n}\n");
  EXPECT_FALSE(o.ok);
  EXPECT_DIAG(o, "3:1", "error", "issuer `idp` needs `url = \"...\"`");
  EXPECT_DIAG(o, "3:1", "error", "issuer `idp` needs `audience = \"...\"`");
  EXPECT_DIAG(o, "3:1", "error", "issuer `idp` needs `jwks = \"...\"`");
  EXPECT_EQ(o.errors, 3u) << o.text;
  // Each one alone.
  o = Build1(Issuer(std::string(kAud) + kKeys));
  EXPECT_DIAG(o, "1:1", "error", "issuer `idp` needs `url = \"...\"`");
  o = Build1(Issuer(std::string(kUrl) + kKeys));
  EXPECT_DIAG(o, "1:1", "error", "issuer `idp` needs `audience = \"...\"`");
  o = Build1(Issuer(std::string(kUrl) + kAud));
  EXPECT_DIAG(o, "1:1", "error", "issuer `idp` needs `jwks = \"...\"`");
  EXPECT_EQ(o.errors, 1u) << o.text;
  EXPECT_TRUE(o.reads->empty());
}

TEST(FapiLang, IssuerLoosenOnlyOnFapiAndLeeway) {
  for (std::string name : {"url", "audience", "jwks", "algs"}) {
    std::string body = std::string(kUrl) + kAud + kKeys;
    std::string value = name == "algs" ? "[\"ES256\", \"PS256\", \"EdDSA\"]" : "";
    if (name != "algs") {
      // Rewrite the existing line with `loosen` in front.
      size_t at = body.find("  " + name + " = ");
      body.insert(at + 2, "loosen ");
    } else {
      body += "  loosen algs = " + value + "\n";
    }
    Out o = Build1(Issuer(body));
    EXPECT_FALSE(o.ok) << name;
    std::string line = name == "url" ? "2" : name == "audience" ? "3" : name == "jwks" ? "4" : "5";
    EXPECT_DIAG(o, line + ":3", "error",
                "`loosen` applies to `fapi` and `leeway` of an issuer, not `" + name + "`");
    EXPECT_EQ(o.errors, 1u) << o.text;
  }
}

TEST(FapiLang, IssuerUrl) {
  Out o = Build1(Issuer("  url = \"http://idp.example\"\n" + std::string(kAud) + kKeys));
  EXPECT_FALSE(o.ok);
  EXPECT_DIAG(o, "2:9", "error",
              "issuer `url` must be an https URL under FAPI 2.0, got `http://idp.example`");
  EXPECT_EQ(o.errors, 1u) << o.text;
  o = Build1(Issuer("  url = \"https://\"\n" + std::string(kAud) + kKeys));
  EXPECT_DIAG(o, "2:9", "error",
              "issuer `url` must be an https URL under FAPI 2.0, got `https://`");
  o = Build1(Issuer("  url = \"idp.example\"\n" + std::string(kAud) + kKeys));
  EXPECT_DIAG(o, "2:9", "error",
              "issuer `url` must be an https URL under FAPI 2.0, got `idp.example`");
  // Outside the profile plain http is allowed, other schemes are not.
  o = Build1(Issuer("  url = \"ftp://idp.example\"\n" + std::string(kAud) + kKeys +
                    "  loosen fapi = false\n"));
  EXPECT_FALSE(o.ok);
  EXPECT_DIAG(o, "2:9", "error", "issuer `url` must be an http(s) URL, got `ftp://idp.example`");
  o = Build1(
      Issuer("  url = \"http://\"\n" + std::string(kAud) + kKeys + "  loosen fapi = false\n"));
  EXPECT_DIAG(o, "2:9", "error", "issuer `url` must be an http(s) URL, got `http://`");
  o = Build1(Issuer("  url = \"http://idp.example\"\n" + std::string(kAud) + kKeys +
                    "  loosen fapi = false\n"));
  EXPECT_TRUE(o.ok) << o.text;
}

TEST(FapiLang, IssuerAudienceMustNotBeEmpty) {
  Out o = Build1(Issuer(std::string(kUrl) + "  audience = \"\"\n" + kKeys));
  EXPECT_FALSE(o.ok);
  EXPECT_DIAG(o, "3:14", "error", "issuer `audience` must not be empty");
  EXPECT_EQ(o.errors, 1u) << o.text;
}

TEST(FapiLang, IssuerLeeway) {
  auto with = [](const std::string& line) {
    return Build1(Issuer(std::string(kUrl) + kAud + kKeys + line));
  };
  Out o = with("  leeway = 301s\n");
  EXPECT_FALSE(o.ok);
  EXPECT_DIAG(o, "5:12", "error", "clock leeway of 301s is over the limit of 300s");
  EXPECT_EQ(o.errors, 1u) << o.text;
  o = with("  loosen leeway = 1h\n");  // loosen does not lift the hard limit
  EXPECT_DIAG(o, "5:19", "error", "clock leeway of 3600s is over the limit of 300s");

  o = with("  leeway = 61s\n");
  EXPECT_FALSE(o.ok);
  EXPECT_DIAG(o, "5:12", "error",
              "FAPI 2.0 rejects clock skew over 60s; write `loosen leeway = ...` to allow 61s on "
              "purpose");
  EXPECT_EQ(o.errors, 1u) << o.text;

  o = with("  loosen leeway = 5m\n");
  ASSERT_TRUE(o.ok) << o.text;
  EXPECT_DIAG(o, "5:19", "warning",
              "a clock leeway of 300s is weak: FAPI 2.0 suggests at most 10s");
  EXPECT_EQ(o.c->ir.issuers[0].leeway, 300);

  o = with("  leeway = 1m\n");  // 60s: allowed, but weak
  ASSERT_TRUE(o.ok) << o.text;
  EXPECT_DIAG(o, "5:12", "warning", "a clock leeway of 60s is weak: FAPI 2.0 suggests at most 10s");
  o = with("  leeway = 11s\n");
  ASSERT_TRUE(o.ok) << o.text;
  EXPECT_DIAG(o, "5:12", "warning", "a clock leeway of 11s is weak: FAPI 2.0 suggests at most 10s");
  EXPECT_EQ(o.warnings, 1u) << o.text;
  o = with("  leeway = 10s\n");
  ASSERT_TRUE(o.ok) << o.text;
  EXPECT_EQ(o.warnings, 0u) << o.text;

  // Outside the FAPI profile 61s needs no `loosen leeway` (but is weak).
  o = with("  leeway = 61s\n  loosen fapi = false\n");
  ASSERT_TRUE(o.ok) << o.text;
  EXPECT_DIAG(o, "5:12", "warning", "a clock leeway of 61s is weak: FAPI 2.0 suggests at most 10s");
}

TEST(FapiLang, IssuerAlgs) {
  auto with = [](const std::string& line, const std::string& jwks = "keys.json") {
    return Build1(Issuer(std::string(kUrl) + kAud + "  jwks = \"" + jwks + "\"\n" + line));
  };
  Out o = with("  algs = [\"ES256\", 5]\n");
  EXPECT_FALSE(o.ok);
  EXPECT_DIAG(o, "5:20", "error", "`algs` lists algorithm names, e.g. `[\"ES256\", \"PS256\"]`");
  EXPECT_EQ(o.errors, 1u) << o.text;

  o = with("  algs = [\"ES256\", \"RS256\"]\n");
  EXPECT_FALSE(o.ok);
  EXPECT_DIAG(o, "5:20", "error",
              "algorithm `RS256` is below FAPI 2.0 (PS256, ES256, EdDSA); leave the profile with "
              "`loosen fapi = false` to allow it");
  EXPECT_EQ(o.errors, 1u) << o.text;

  for (std::string alg : {"HS256", "none", "RS384", "es256"}) {
    o = with("  algs = [\"" + alg + "\"]\n");
    EXPECT_FALSE(o.ok) << alg;
    EXPECT_DIAG(
        o, "5:11", "error",
        "algorithm `" + alg + "` is not supported (PS256, ES256, EdDSA; RS256 outside FAPI)");
  }
  // Outside the profile too, HS256 is refused.
  o = with("  algs = [\"HS256\"]\n  loosen fapi = false\n");
  EXPECT_DIAG(o, "5:11", "error",
              "algorithm `HS256` is not supported (PS256, ES256, EdDSA; RS256 outside FAPI)");

  o = with("  algs = []\n");
  EXPECT_FALSE(o.ok);
  EXPECT_DIAG(o, "5:10", "error", "`algs` must allow at least one algorithm");
  EXPECT_EQ(o.errors, 1u) << o.text;

  // RS256 outside the profile: weak, and the PS256 key is still usable.
  o = with("  algs = [\"RS256\", \"ES256\"]\n  loosen fapi = false\n", "es.json");
  ASSERT_TRUE(o.ok) << o.text;
  EXPECT_DIAG(o, "5:11", "warning", "RS256 is weak: FAPI 2.0 requires PS256, ES256 or EdDSA");
  EXPECT_DIAG(o, "4:10", "warning", "`algs` allows RS256 but the JWKS has no key for it");
  EXPECT_EQ(o.c->ir.issuers[0].algs, AlgBit(JwsAlg::kRS256) | AlgBit(JwsAlg::kES256));
}

TEST(FapiLang, IssuerJwksErrors) {
  auto with = [](const std::string& jwks, const Assets& assets = DefaultAssets()) {
    return Build1(Issuer(std::string(kUrl) + kAud + "  jwks = \"" + jwks + "\"\n"), assets);
  };
  Out o = with("missing.json");
  EXPECT_FALSE(o.ok);
  EXPECT_DIAG(o, "4:10", "error", "cannot read the JWKS `missing.json`: no such file");
  EXPECT_EQ(o.errors, 1u) << o.text;
  EXPECT_TRUE(o.c->assets.empty());

  o = with("big.json");
  EXPECT_FALSE(o.ok);
  EXPECT_DIAG(o, "4:10", "error", "the JWKS `big.json` is over the limit of 1 MiB");
  EXPECT_EQ(o.errors, 1u) << o.text;

  o = with("bad.json");
  EXPECT_FALSE(o.ok);
  EXPECT_NE(o.text.find("p.vakt:4:10: error: the JWKS `bad.json` is not usable: issuer `main.idp`: "
                        "jwks: malformed JSON"),
            std::string::npos)
      << o.text;
  EXPECT_EQ(o.errors, 1u) << o.text;

  Assets empty = DefaultAssets();
  empty["empty.json"] = "{\"keys\": []}";
  o = with("empty.json", empty);
  EXPECT_FALSE(o.ok);
  EXPECT_DIAG(o, "4:10", "error",
              "the JWKS `empty.json` is not usable: issuer `main.idp`: the JWKS has no key");

  // A private key in the JWKS is refused, never embedded.
  o = with("private.json");
  EXPECT_FALSE(o.ok);
  EXPECT_DIAG(o, "4:10", "error",
              "the JWKS `private.json` is not usable: issuer `main.idp`: jwks: key 0 (kid "
              "`priv`): jwk: holds private member `d`");
  EXPECT_TRUE(o.c->bytes.empty());

  o = with("twice.json");
  EXPECT_FALSE(o.ok);
  EXPECT_DIAG(o, "4:10", "error",
              "the JWKS has two ES256 keys with kid `es`: tokens could not choose between them");
}

TEST(FapiLang, IssuerJwksWarnings) {
  // A key without kid (the other algorithms have no key either).
  Out o =
      Build1(Issuer(std::string(kUrl) + kAud + "  jwks = \"nokid.json\"\n  algs = [\"ES256\"]\n"));
  ASSERT_TRUE(o.ok) << o.text;
  EXPECT_DIAG(o, "4:10", "warning",
              "ES256 key in the JWKS without a `kid`: tokens cannot select it");
  EXPECT_EQ(o.warnings, 1u) << o.text;

  // Keys whose algorithm `algs` does not allow.
  o = Build1(Issuer(std::string(kUrl) + kAud + kKeys + "  algs = [\"ES256\"]\n"));
  ASSERT_TRUE(o.ok) << o.text;
  EXPECT_DIAG(o, "4:10", "warning", "key `ps` (PS256) is never used: `algs` does not allow PS256");
  EXPECT_DIAG(o, "4:10", "warning", "key `ed` (EdDSA) is never used: `algs` does not allow EdDSA");
  EXPECT_EQ(o.warnings, 2u) << o.text;

  // Algorithms without a key (the default algs, an ES256-only JWKS).
  o = Build1(Issuer(std::string(kUrl) + kAud + "  jwks = \"es.json\"\n"));
  ASSERT_TRUE(o.ok) << o.text;
  EXPECT_DIAG(o, "4:10", "warning", "`algs` allows PS256 but the JWKS has no key for it");
  EXPECT_DIAG(o, "4:10", "warning", "`algs` allows EdDSA but the JWKS has no key for it");
  EXPECT_EQ(o.warnings, 2u) << o.text;
}

TEST(FapiLang, IssuerWithoutAssetReader) {
  // Lower() on its own, with no way to read files.
  dsl::SourceFile src{"p.vakt", ValidIssuer()};
  dsl::Diagnostics d;
  auto file = dsl::ParseFile(src, d);
  ASSERT_FALSE(d.HasErrors()) << d.Format();
  IrProgram prog = Lower({file.get()}, "t", d);
  EXPECT_TRUE(d.HasErrors());
  EXPECT_NE(
      d.Format().find("p.vakt:4:10: error: cannot read `keys.json`: files cannot be read here\n"),
      std::string::npos)
      << d.Format();
  EXPECT_TRUE(prog.issuers.empty());
}

TEST(FapiLang, AtMost64Issuers) {
  std::string src;
  for (int i = 0; i < 64; ++i) src += ValidIssuer("i" + std::to_string(i));
  Out o = Build1(src);
  ASSERT_TRUE(o.ok) << o.text;
  ASSERT_NE(Load(o), nullptr);
  EXPECT_EQ(Load(o)->data().issuers.size(), 64u);
  // One more is refused by the compiler, not only by the bundle verifier.
  o = Build1(src + ValidIssuer("extra"));
  EXPECT_FALSE(o.ok);
  EXPECT_DIAG(o, "321:1", "error", "a policy may declare at most 64 issuers");
  EXPECT_EQ(o.errors, 1u) << o.text;
}

TEST(FapiLang, IssuerNameIsATopLevelName) {
  Out o = Build1("const idp = 1\n" + ValidIssuer());
  EXPECT_FALSE(o.ok);
  EXPECT_DIAG(o, "2:1", "error", "`idp` is already defined in package `main`");
  EXPECT_NE(o.text.find("p.vakt:1:1: note: previous definition of `idp` is here"),
            std::string::npos)
      << o.text;
  o = Build1(ValidIssuer() + ValidIssuer());
  EXPECT_DIAG(o, "6:1", "error", "`idp` is already defined in package `main`");
}

// ---------------------------------------------------------------------------
// use fapi2: positive cases.

TEST(FapiLang, TighteningAtApiThenRoute) {
  Out o = Build1(ValidIssuer() +
                 "api a \"/v1\" {\n"
                 "  use fapi2 { sender = \"dpop\" dpop_window = 30s scope = \"a.read\" }\n"
                 "  route r GET \"/x\" {\n"
                 "    use fapi2 { tls = \"1.3\" dpop_nonce = true dpop_window = 10s scope = "
                 "\"a.write a.read\" }\n"
                 "  }\n"
                 "  route s GET \"/y\" {}\n"
                 "}\n");
  ASSERT_TRUE(o.ok) << o.text;
  EXPECT_EQ(o.warnings, 0u) << o.text;
  const IrRoute* r = FindRoute(*o.c, "a.r");
  ASSERT_TRUE(r && r->auth);
  EXPECT_EQ(r->auth->sender, static_cast<uint8_t>(SenderConstraint::kDPoP));
  EXPECT_EQ(r->auth->tls, static_cast<uint8_t>(TlsRequirement::kTls13));
  EXPECT_TRUE(r->auth->dpop_nonce);
  EXPECT_EQ(r->auth->dpop_window, 10);
  EXPECT_EQ(r->auth->scopes, (std::vector<std::string>{"a.read", "a.write"}));
  const IrRoute* s = FindRoute(*o.c, "a.s");
  ASSERT_TRUE(s && s->auth);
  EXPECT_EQ(s->auth->sender, static_cast<uint8_t>(SenderConstraint::kDPoP));
  EXPECT_EQ(s->auth->tls, static_cast<uint8_t>(TlsRequirement::kFapi));
  EXPECT_FALSE(s->auth->dpop_nonce);
  EXPECT_EQ(s->auth->dpop_window, 30);
  EXPECT_EQ(s->auth->scopes, (std::vector<std::string>{"a.read"}));

  auto b = Load(o);
  ASSERT_NE(b, nullptr);
  const auto& d = b->data();
  ASSERT_EQ(d.auth.size(), 2u);
  const auto& ra = d.auth[d.routes[RouteIndex(d, "a.r")].auth];
  EXPECT_EQ(d.strings[ra.scope], "a.read a.write");
  EXPECT_EQ(ra.sender, static_cast<uint8_t>(SenderConstraint::kDPoP));
  EXPECT_EQ(ra.tls, static_cast<uint8_t>(TlsRequirement::kTls13));
  EXPECT_EQ(ra.flags, bytecode::kAuthDpopNonce);
  EXPECT_EQ(ra.dpop_window, 10u);
  const auto& sa = d.auth[d.routes[RouteIndex(d, "a.s")].auth];
  EXPECT_EQ(d.strings[sa.scope], "a.read");
  EXPECT_EQ(sa.flags, 0u);
  EXPECT_EQ(sa.dpop_window, 30u);
  EXPECT_EQ(sa.tls, static_cast<uint8_t>(TlsRequirement::kFapi));
  // The runtime policy of route a.r.
  const auto& pol = b->auth(d.routes[RouteIndex(d, "a.r")].auth);
  EXPECT_EQ(pol.sender, SenderConstraint::kDPoP);
  EXPECT_TRUE(pol.dpop_nonce);
}

TEST(FapiLang, SameStrengthAndTighterSettingsNeedNoLoosen) {
  // mTLS after DPoP is as strong; "any" -> "dpop", "fapi" -> "1.3" tighten;
  // an equal window or `dpop_nonce = false` at the default change nothing.
  Out o = Build1(
      ValidIssuer() +
      "api a \"/v1\" {\n"
      "  use fapi2 { sender = \"any\" tls = \"fapi\" dpop_window = 60s dpop_nonce = false }\n"
      "  route r GET \"/x\" {\n"
      "    use fapi2 { sender = \"dpop\" }\n"
      "    use fapi2 { sender = \"mtls\" dpop_window = 60s }\n"
      "  }\n"
      "}\n");
  ASSERT_TRUE(o.ok) << o.text;
  EXPECT_EQ(o.warnings, 0u) << o.text;
  EXPECT_EQ(FindRoute(*o.c, "a.r")->auth->sender, static_cast<uint8_t>(SenderConstraint::kMtls));
}

TEST(FapiLang, ScopesAccumulateAndDedupe) {
  Out o = Build1(ValidIssuer() +
                 "profile reads { use fapi2 { scope = \"a b\" } }\n"
                 "api a \"/v1\" {\n"
                 "  use reads\n"
                 "  route r GET \"/x\" {\n"
                 "    use fapi2 { scope = \"b  c a \" }\n"
                 "    use fapi2 { scope = \"d d\" }\n"
                 "    use reads\n"
                 "  }\n"
                 "}\n");
  ASSERT_TRUE(o.ok) << o.text;
  const IrRoute* r = FindRoute(*o.c, "a.r");
  ASSERT_TRUE(r && r->auth);
  EXPECT_EQ(r->auth->scopes, (std::vector<std::string>{"a", "b", "c", "d"}));
  auto b = Load(o);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->data().strings[b->data().auth[0].scope], "a b c d");
}

TEST(FapiLang, RoutesWithEqualSettingsShareOneAuthRecord) {
  Out o = Build1(ValidIssuer() +
                 "api a \"/v1\" {\n"
                 "  route r1 GET \"/1\" { use fapi2 { scope = \"x\" } }\n"
                 "  route r2 GET \"/2\" { use fapi2 { scope = \"x\" } }\n"
                 "  route r3 GET \"/3\" { use fapi2 { scope = \"y\" } }\n"
                 "  route r4 GET \"/4\" { use fapi2 { scope = \"x\" sender = \"dpop\" } }\n"
                 "  route r5 GET \"/5\" {}\n"
                 "}\n"
                 "api b \"/v2\" {\n"
                 "  use fapi2 { scope = \"x\" }\n"
                 "  route r6 GET \"/6\" {}\n"
                 "}\n");
  ASSERT_TRUE(o.ok) << o.text;
  auto b = Load(o);
  ASSERT_NE(b, nullptr);
  const auto& d = b->data();
  ASSERT_EQ(d.auth.size(), 3u);
  uint32_t r1 = d.routes[RouteIndex(d, "a.r1")].auth;
  EXPECT_EQ(d.routes[RouteIndex(d, "a.r2")].auth, r1);
  EXPECT_EQ(d.routes[RouteIndex(d, "b.r6")].auth, r1);
  EXPECT_NE(d.routes[RouteIndex(d, "a.r3")].auth, r1);
  EXPECT_NE(d.routes[RouteIndex(d, "a.r4")].auth, r1);
  EXPECT_NE(d.routes[RouteIndex(d, "a.r4")].auth, d.routes[RouteIndex(d, "a.r3")].auth);
  EXPECT_EQ(d.routes[RouteIndex(d, "a.r5")].auth, bytecode::kNone);
}

TEST(FapiLang, RouteChoosesAmongTwoIssuers) {
  std::string issuers =
      ValidIssuer() +
      Issuer("  url = \"https://other.example\"\n  audience = \"other-api\"\n" + std::string(kKeys),
             "other");
  Out o = Build1(issuers +
                 "api a \"/v1\" {\n"
                 "  use fapi2 { issuer = idp }\n"
                 "  route r1 GET \"/1\" { use fapi2 { issuer = other } }\n"
                 "  route r2 GET \"/2\" {}\n"
                 "  route r3 GET \"/3\" { use fapi2 { issuer = idp } }\n"
                 "}\n");
  ASSERT_TRUE(o.ok) << o.text;
  ASSERT_EQ(o.c->ir.issuers.size(), 2u);
  EXPECT_EQ(o.c->ir.issuers[1].name, "main.other");
  EXPECT_EQ(FindRoute(*o.c, "a.r1")->auth->issuer, 1u);
  EXPECT_EQ(FindRoute(*o.c, "a.r2")->auth->issuer, 0u);
  EXPECT_EQ(FindRoute(*o.c, "a.r3")->auth->issuer, 0u);
  auto b = Load(o);
  ASSERT_NE(b, nullptr);
  const auto& d = b->data();
  ASSERT_EQ(d.issuers.size(), 2u);
  EXPECT_EQ(d.strings[d.issuers[1].audience], "other-api");
  EXPECT_EQ(d.auth[d.routes[RouteIndex(d, "a.r1")].auth].issuer, 1u);
  EXPECT_EQ(d.auth[d.routes[RouteIndex(d, "a.r2")].auth].issuer, 0u);
  EXPECT_EQ(b->auth(d.routes[RouteIndex(d, "a.r1")].auth).issuer->audience, "other-api");

  // Without a choice, several issuers are an error at the route.
  o = Build1(issuers +
             "api a \"/v1\" {\n"
             "  route r GET \"/x\" { use fapi2 { scope = \"s\" } }\n"
             "}\n");
  EXPECT_FALSE(o.ok);
  EXPECT_DIAG(o, "12:3", "error",
              "route `a.r` uses `fapi2` and several issuers are declared: choose one with `use "
              "fapi2 { issuer = NAME }`");
  EXPECT_EQ(o.errors, 1u) << o.text;
}

TEST(FapiLang, IssuerOfAnImportedPackage) {
  std::string idp = "package idp\n" + ValidIssuer("main");
  std::string app =
      "package app\n"
      "import idp\n"
      "import idp as login\n" +
      Issuer(std::string("  url = \"https://local.example\"\n") + kAud + kKeys, "local") +
      "api a \"/v1\" {\n"
      "  route r GET \"/r\" { use fapi2 { issuer = idp.main } }\n"
      "  route s GET \"/s\" { use fapi2 { issuer = login.main } }\n"
      "  route t GET \"/t\" { use fapi2 { issuer = local } }\n"
      "}\n";
  Out o = Build({{"idp.vakt", idp}, {"app.vakt", app}});
  ASSERT_TRUE(o.ok) << o.text;
  ASSERT_EQ(o.c->ir.issuers.size(), 2u);
  EXPECT_EQ(o.c->ir.issuers[0].name, "idp.main");
  EXPECT_EQ(o.c->ir.issuers[1].name, "app.local");
  EXPECT_EQ(FindRoute(*o.c, "a.r")->auth->issuer, 0u);
  EXPECT_EQ(FindRoute(*o.c, "a.s")->auth->issuer, 0u);
  EXPECT_EQ(FindRoute(*o.c, "a.t")->auth->issuer, 1u);
  // Each JWKS is read relative to the file that names it.
  EXPECT_EQ(*o.reads, (std::vector<std::string>{"idp.vakt|keys.json", "app.vakt|keys.json"}));
  auto b = Load(o);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->data().strings[b->data().issuers[0].name], "idp.main");

  // Another package's issuer needs its import, and must exist.
  o = Build({{"idp.vakt", idp},
             {"p.vakt",
              "package app\n"
              "import idp\n"
              "api a \"/v1\" {\n"
              "  route r GET \"/r\" { use fapi2 { issuer = nope.main } }\n"
              "  route s GET \"/s\" { use fapi2 { issuer = idp.nope } }\n"
              "  route t GET \"/t\" { use fapi2 { issuer = main } }\n"
              "}\n"}});
  EXPECT_FALSE(o.ok);
  EXPECT_DIAG(o, "4:43", "error", "unknown package `nope`");
  EXPECT_DIAG(o, "5:43", "error", "unknown issuer `nope`");
  EXPECT_DIAG(o, "6:43", "error", "unknown issuer `main`");  // not visible without `idp.`
  EXPECT_EQ(o.errors, 3u) << o.text;
}

TEST(FapiLang, FapiInAProfileAndEmptySettings) {
  Out o = Build1(ValidIssuer() +
                 "profile secured { use fapi2 {} }\n"
                 "api a \"/v1\" {\n"
                 "  route r GET \"/x\" { use secured }\n"
                 "  route s GET \"/y\" { use fapi2 }\n"
                 "}\n");
  ASSERT_TRUE(o.ok) << o.text;
  ASSERT_TRUE(FindRoute(*o.c, "a.r")->auth.has_value());
  auto b = Load(o);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->data().auth.size(), 1u);  // `use fapi2 {}` is `use fapi2`
}

// ---------------------------------------------------------------------------
// use fapi2: every error and warning. The statement is on line 8 from
// column 5, so its first setting starts at column 17.

TEST(FapiLang, Fapi2SettingGivenTwice) {
  Out o = Build1(RouteWith("use fapi2 { sender = \"dpop\" sender = \"mtls\" }"));
  EXPECT_FALSE(o.ok);
  EXPECT_DIAG(o, "8:33", "error", "fapi2 setting `sender` is given twice");
  EXPECT_EQ(o.errors, 1u) << o.text;
  // In two statements a setting may be repeated.
  o = Build1(RouteWith("use fapi2 { sender = \"dpop\" } use fapi2 { sender = \"dpop\" }"));
  EXPECT_TRUE(o.ok) << o.text;
}

TEST(FapiLang, Fapi2LooseningNeedsLoosen) {
  struct Case {
    std::string stmt;
    std::string at;
    std::string what;
    std::string name;
  };
  std::vector<Case> cases = {
      {"use fapi2 { sender = \"none\" }", "8:17",
       "tokens without a sender constraint (plain bearer tokens) are accepted", "sender"},
      {"use fapi2 { sender = \"dpop\" } use fapi2 { sender = \"any\" }", "8:47",
       "tokens without a sender constraint (plain bearer tokens) are accepted", "sender"},
      {"use fapi2 { tls = \"any\" }", "8:17", "the TLS version and cipher are not checked", "tls"},
      {"use fapi2 { tls = \"1.3\" } use fapi2 { tls = \"fapi\" }", "8:43",
       "the TLS version and cipher are not checked", "tls"},
      {"use fapi2 { dpop_nonce = true } use fapi2 { dpop_nonce = false }", "8:49",
       "DPoP proofs need no server nonce", "dpop_nonce"},
      {"use fapi2 { dpop_window = 90s }", "8:17", "DPoP proofs up to 90s old are accepted",
       "dpop_window"},
      {"use fapi2 { dpop_window = 10s } use fapi2 { dpop_window = 20s }", "8:49",
       "DPoP proofs up to 20s old are accepted", "dpop_window"},
  };
  for (const auto& c : cases) {
    Out o = Build1(RouteWith(c.stmt));
    EXPECT_FALSE(o.ok) << c.stmt;
    EXPECT_DIAG(o, c.at, "error",
                "`" + c.name + "` loosens the fapi2 profile (" + c.what + "); write `loosen " +
                    c.name + " = ...` to do it on purpose");
    EXPECT_EQ(o.errors, 1u) << o.text;

    // With `loosen` in front it is a warning, and it takes effect.
    std::string loosened = c.stmt;
    size_t at = loosened.rfind(c.name + " = ");
    loosened.insert(at, "loosen ");
    o = Build1(RouteWith(loosened));
    ASSERT_TRUE(o.ok) << loosened << "\n" << o.text;
    EXPECT_DIAG(o, c.at, "warning", "fapi2 loosened: " + c.what);
    EXPECT_EQ(o.warnings, 1u) << o.text;
    EXPECT_EQ(FindRoute(*o.c, "a.r")->auth->loosened, std::vector<std::string>{c.what});
  }
}

TEST(FapiLang, Fapi2LoosenedSettingsReachTheBundle) {
  Out o = Build1(RouteWith(
      "use fapi2 { loosen sender = \"none\" loosen tls = \"any\" loosen dpop_window = 5m }"));
  ASSERT_TRUE(o.ok) << o.text;
  EXPECT_EQ(o.warnings, 3u) << o.text;
  const IrRoute* r = FindRoute(*o.c, "a.r");
  EXPECT_EQ(r->auth->loosened.size(), 3u);
  auto b = Load(o);
  ASSERT_NE(b, nullptr);
  const auto& a = b->data().auth[0];
  EXPECT_EQ(a.sender, static_cast<uint8_t>(SenderConstraint::kNone));
  EXPECT_EQ(a.tls, static_cast<uint8_t>(TlsRequirement::kAny));
  EXPECT_EQ(a.dpop_window, 300u);
}

TEST(FapiLang, Fapi2LoosenWithoutEffectWarns) {
  for (std::string stmt :
       {"use fapi2 { loosen sender = \"dpop\" }", "use fapi2 { loosen sender = \"any\" }",
        "use fapi2 { loosen tls = \"fapi\" }", "use fapi2 { loosen dpop_nonce = false }",
        "use fapi2 { loosen dpop_window = 60s }"}) {
    Out o = Build1(RouteWith(stmt));
    ASSERT_TRUE(o.ok) << stmt << "\n" << o.text;
    std::string name = stmt.substr(19, stmt.find(' ', 19) - 19);
    EXPECT_DIAG(o, "8:17", "warning",
                "`loosen` has no effect: `" + name + "` here does not loosen fapi2");
    EXPECT_EQ(o.warnings, 1u) << o.text;
    EXPECT_TRUE(FindRoute(*o.c, "a.r")->auth->loosened.empty());
  }
}

TEST(FapiLang, Fapi2SettingKindsAndValues) {
  struct Case {
    std::string stmt;
    std::string at;
    std::string message;
  };
  std::vector<Case> cases = {
      {"use fapi2 { sender = 1 }", "8:26",
       "fapi2 setting `sender` must be a string, got an integer"},
      {"use fapi2 { sender = \"bearer\" }", "8:26",
       "`sender` is one of \"dpop\", \"mtls\", \"any\" (DPoP or mTLS) or \"none\""},
      {"use fapi2 { tls = true }", "8:23",
       "fapi2 setting `tls` must be a string, got `true` or `false`"},
      {"use fapi2 { tls = \"1.2\" }", "8:23",
       "`tls` is one of \"fapi\" (TLS 1.2 with BCP 195 suites or TLS 1.3), \"1.3\" or \"any\""},
      {"use fapi2 { dpop_nonce = \"yes\" }", "8:30",
       "fapi2 setting `dpop_nonce` must be `true` or `false`, got a string"},
      {"use fapi2 { dpop_window = 30 }", "8:31",
       "fapi2 setting `dpop_window` must be a duration, got an integer"},
      {"use fapi2 { dpop_window = 0s }", "8:31", "`dpop_window` must be between 1s and 300s"},
      {"use fapi2 { loosen dpop_window = 301s }", "8:38",
       "`dpop_window` must be between 1s and 300s"},
      {"use fapi2 { scope = [\"a\"] }", "8:25",
       "fapi2 setting `scope` must be a string, got a list"},
      {"use fapi2 { scope = \"\" }", "8:25", "`scope` names one or more space-separated scopes"},
      {"use fapi2 { scope = \"   \" }", "8:25", "`scope` names one or more space-separated scopes"},
      {"use fapi2 { scope = \"ok bad\\\\x\" }", "8:25",
       "scope `bad\\x` is not a valid scope token (RFC 6749 3.3)"},
      {"use fapi2 { scope = \"a\\\"b\" }", "8:25",
       "scope `a\"b` is not a valid scope token (RFC 6749 3.3)"},
      {"use fapi2 { scope = \"caf\\u00e9\" }", "8:25",
       "scope `caf\xc3\xa9` is not a valid scope token (RFC 6749 3.3)"},
      {"use fapi2 { scope = \"" + std::string(257, 's') + "\" }", "8:25",
       "scope `" + std::string(257, 's') + "` is not a valid scope token (RFC 6749 3.3)"},
      {"use fapi2 { loosen scope = \"a\" }", "8:17",
       "scopes cannot be loosened; a route adds the scopes it needs"},
      {"use fapi2 { audience = \"x\" }", "8:17",
       "unknown fapi2 setting `audience` (known: issuer, sender, tls, dpop_nonce, dpop_window, "
       "scope)"},
      {"use fapi2 { issuer = \"idp\" }", "8:26",
       "`issuer` takes the name of an issuer declared with `issuer NAME { ... }`"},
      {"use fapi2 { issuer = idp.a.b }", "8:26",
       "`issuer` takes the name of an issuer declared with `issuer NAME { ... }`"},
      {"use fapi2 { issuer = nobody }", "8:26", "unknown issuer `nobody`"},
  };
  for (const auto& c : cases) {
    Out o = Build1(RouteWith(c.stmt));
    EXPECT_FALSE(o.ok) << c.stmt;
    EXPECT_DIAG(o, c.at, "error", c.message);
    EXPECT_EQ(o.errors, 1u) << c.stmt << "\n" << o.text;
  }
  // A 256-byte scope token is fine.
  Out o = Build1(RouteWith("use fapi2 { scope = \"" + std::string(256, 's') + "\" }"));
  EXPECT_TRUE(o.ok) << o.text;
}

TEST(FapiLang, Fapi2WhereItMayBeUsed) {
  Out o = Build1(ValidIssuer() +
                 "api a \"/v1\" {\n"
                 "  route r GET \"/x\" {\n"
                 "    on response { use fapi2 }\n"
                 "  }\n"
                 "}\n");
  EXPECT_FALSE(o.ok);
  EXPECT_DIAG(o, "8:19", "error",
              "`use` is not allowed inside `on response`; use the profile in the body");

  o = Build1(ValidIssuer() +
             "profile mine { require true else deny 403 }\n"
             "api a \"/v1\" {\n"
             "  route r GET \"/x\" {\n"
             "    use mine { scope = \"a\" }\n"
             "  }\n"
             "}\n");
  EXPECT_FALSE(o.ok);
  EXPECT_DIAG(
      o, "9:5", "error",
      "only the built-in `fapi2` profile takes settings; `mine` is a profile of this policy");

  o = Build1("profile fapi2 { require true else deny 403 }\n");
  EXPECT_FALSE(o.ok);
  EXPECT_DIAG(o, "1:1", "error", "profile `fapi2` would hide the built-in FAPI 2.0 profile");

  o = Build1("api a \"/v1\" {\n  route r GET \"/x\" { use fapi2 }\n}\n");
  EXPECT_FALSE(o.ok);
  EXPECT_DIAG(o, "2:3", "error",
              "route `a.r` uses `fapi2` but no issuer is declared (add `issuer NAME { url = ... "
              "audience = ... jwks = ... }`)");
  EXPECT_EQ(o.errors, 1u) << o.text;
}

TEST(FapiLang, LoosenInAProfileIsReportedOnce) {
  Out o = Build1(ValidIssuer() +
                 "profile relaxed { use fapi2 { loosen tls = \"any\" } }\n"
                 "api a \"/v1\" {\n"
                 "  route r GET \"/x\" { use relaxed }\n"
                 "  route s GET \"/y\" { use relaxed }\n"
                 "}\n");
  ASSERT_TRUE(o.ok) << o.text;
  EXPECT_DIAG(o, "6:31", "warning", "fapi2 loosened: the TLS version and cipher are not checked");
  EXPECT_EQ(o.warnings, 1u) << o.text;
  EXPECT_EQ(FindRoute(*o.c, "a.s")->auth->tls, static_cast<uint8_t>(TlsRequirement::kAny));
}

// ---------------------------------------------------------------------------
// has_scope

struct Decider {
  std::shared_ptr<const bytecode::Bundle> bundle;
  bytecode::EvalScratch scratch;
  bytecode::OwnedRequest req;
  std::unique_ptr<bytecode::JsonClaims> claims;

  // "allow" or "deny STATUS ERROR RULE".
  std::string Decide(const std::string& req_json, const std::string& claims_json) {
    auto r = bytecode::ParseRequestJson(req_json);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return "bad request";
    req = std::move(r).value();
    claims.reset();
    if (!claims_json.empty()) {
      auto c = bytecode::JsonClaims::Parse(claims_json);
      EXPECT_TRUE(c.ok()) << c.status().ToString();
      if (c.ok()) claims = std::move(c).value();
    }
    last = bytecode::DecideRequest(*bundle, req.View(), claims.get(), scratch);
    if (last.allow) return "allow";
    return "deny " + std::to_string(last.status) + " " + std::string(last.error) + " " +
           std::string(last.rule);
  }
  bytecode::Decision last;
};

TEST(FapiLang, HasScopeDecides) {
  Out o = Build1(
      "claims { wanted: string }\n"
      "api a \"/v1\" {\n"
      "  route r GET \"/x\" {\n"
      "    let split = \"shadowed\"\n"
      "    sc: require has_scope(\"read\") else deny 403 insufficient_scope \"read needed\"\n"
      "  }\n"
      "  route w GET \"/w\" {\n"
      "    sc: require has_scope(token.wanted) && !has_scope(\"admin\") else deny 403 "
      "access_denied\n"
      "  }\n"
      "}\n");
  ASSERT_TRUE(o.ok) << o.text;
  Decider d;
  d.bundle = Load(o);
  ASSERT_NE(d.bundle, nullptr);
  const std::string x = R"({"method": "GET", "path": "/v1/x"})";
  EXPECT_EQ(d.Decide(x, R"({"scope": "read"})"), "allow");
  EXPECT_EQ(d.Decide(x, R"({"scope": "write read"})"), "allow");
  EXPECT_EQ(d.Decide(x, R"({"scope": "reader"})"), "deny 403 insufficient_scope a.r.sc");
  EXPECT_EQ(d.Decide(x, R"({"scope": "rea"})"), "deny 403 insufficient_scope a.r.sc");
  EXPECT_EQ(d.Decide(x, R"({"scope": "READ"})"), "deny 403 insufficient_scope a.r.sc");
  EXPECT_EQ(d.Decide(x, R"({"scope": ""})"), "deny 403 insufficient_scope a.r.sc");
  // A missing or mistyped `scope` claim is an evaluation error: deny.
  EXPECT_EQ(d.Decide(x, R"({"sub": "u"})"), "deny 403 insufficient_scope a.r.sc");
  EXPECT_NE(std::string(d.last.description).find("evaluation error"), std::string::npos)
      << d.last.description;
  EXPECT_EQ(d.Decide(x, R"({"scope": ["read"]})"), "deny 403 insufficient_scope a.r.sc");
  EXPECT_EQ(d.Decide(x, ""), "deny 403 insufficient_scope a.r.sc");

  const std::string w = R"({"method": "GET", "path": "/v1/w"})";
  EXPECT_EQ(d.Decide(w, R"({"scope": "x y", "wanted": "y"})"), "allow");
  EXPECT_EQ(d.Decide(w, R"({"scope": "x y admin", "wanted": "y"})"),
            "deny 403 access_denied a.w.sc");
  EXPECT_EQ(d.Decide(w, R"({"scope": "x y", "wanted": "z"})"), "deny 403 access_denied a.w.sc");
}

TEST(FapiLang, HasScopeErrors) {
  auto route = [](const std::string& cond) {
    return Build1("api a \"/v1\" {\n  route r GET \"/x\" {\n    require " + cond +
                  " else deny 403\n  }\n}\n");
  };
  Out o = route("has_scope(\"a\", \"b\")");
  EXPECT_FALSE(o.ok);
  EXPECT_DIAG(o, "3:13", "error", "`has_scope` takes 1 argument, got 2");
  o = route("has_scope()");
  EXPECT_DIAG(o, "3:13", "error", "`has_scope` takes 1 argument, got 0");
  o = route("has_scope(1)");
  EXPECT_FALSE(o.ok);
  EXPECT_NE(o.text.find("the argument of `has_scope` must be `string`, got `int`"),
            std::string::npos)
      << o.text;
  o = Build1("fn has_scope(s: string) -> bool { true }\n");
  EXPECT_FALSE(o.ok);
  EXPECT_DIAG(o, "1:1", "error", "function `has_scope` would hide the built-in of the same name");
}

// On a fapi2 route, injected claims (tests, `vakt eval`) still meet the
// transport, placement and scope checks, and the interaction id is echoed.
TEST(FapiLang, Fapi2RouteWithInjectedClaims) {
  Out o = Build1(RouteWith("use fapi2 { scope = \"read\" }"));
  ASSERT_TRUE(o.ok) << o.text;
  Decider d;
  d.bundle = Load(o);
  ASSERT_NE(d.bundle, nullptr);
  const std::string tls = R"("tls": {"version": "TLSv1.3", "cipher": "TLS_AES_128_GCM_SHA256"})";
  const std::string ok_req =
      R"({"method": "GET", "path": "/v1/x", "headers": {"authorization": "DPoP x", "x-fapi-interaction-id": "c0ffee"}, )" +
      tls + "}";
  EXPECT_EQ(d.Decide(ok_req, R"({"sub": "u", "scope": "read"})"), "allow");
  bool echoed = false;
  for (size_t i = 0; i < d.last.header_count; ++i) {
    echoed |=
        d.last.headers[i].name == "x-fapi-interaction-id" && d.last.headers[i].value == "c0ffee";
  }
  EXPECT_TRUE(echoed);
  EXPECT_EQ(d.Decide(ok_req, R"({"sub": "u", "scope": "write"})"),
            "deny 403 insufficient_scope fapi2.scope");
  // A deny carries it too: here a fresh UUID, since the request sent none.
  EXPECT_EQ(d.Decide(R"({"method": "GET", "path": "/v1/x", )" + tls + "}", ""),
            "deny 401  fapi2.token");
  std::string id;
  for (size_t i = 0; i < d.last.header_count; ++i) {
    if (d.last.headers[i].name == "x-fapi-interaction-id") id = d.last.headers[i].value;
  }
  EXPECT_EQ(id.size(), 36u) << id;
  EXPECT_EQ(
      d.Decide(R"({"method": "GET", "path": "/v1/x", "headers": {"authorization": "DPoP x"}})",
               R"({"sub": "u", "scope": "read"})"),
      "deny 403 insecure_transport fapi2.transport");
  EXPECT_EQ(
      d.Decide(
          R"({"method": "GET", "path": "/v1/x?access_token=t", "headers": {"authorization": "DPoP x"}, )" +
              tls + "}",
          R"({"sub": "u", "scope": "read"})"),
      "deny 400 invalid_request fapi2.request");
  EXPECT_EQ(d.Decide(R"({"method": "GET", "path": "/v1/x", )" + tls + "}", ""),
            "deny 401  fapi2.token");
}

// ---------------------------------------------------------------------------
// Parse errors of the new syntax.

struct Parsed {
  std::unique_ptr<dsl::SourceFile> src;
  std::unique_ptr<dsl::ast::File> file;
  dsl::Diagnostics diags;
  // "line:col: message" per diagnostic.
  std::string Errors() const {
    std::string out;
    for (const auto& d : diags.all()) {
      out +=
          std::to_string(d.loc.line) + ":" + std::to_string(d.loc.column) + ": " + d.message + "\n";
    }
    return out;
  }
};

std::unique_ptr<Parsed> Parse(const std::string& text) {
  auto p = std::make_unique<Parsed>();
  p->src = std::make_unique<dsl::SourceFile>(dsl::SourceFile{"t.vakt", text});
  p->file = dsl::ParseFile(*p->src, p->diags);
  return p;
}

TEST(FapiLang, ParsesTheNewSyntax) {
  auto p = Parse(
      "issuer idp {\n"
      "  url = \"https://idp.example\"\n"
      "  loosen leeway = 90s\n"
      "  algs = [\"ES256\"]\n"
      "}\n"
      "api a \"/v1\" {\n"
      "  use fapi2 { issuer = idp loosen sender = \"none\" scope = \"a b\" }\n"
      "  route GET \"/x\" { use fapi2 }\n"
      "}\n"
      "test \"t\" {\n"
      "  request {\"method\": \"GET\", \"path\": \"/v1/x\"}\n"
      "  token \"PS256\" {\"sub\": \"u\", \"iss\": null}\n"
      "  dpop {\"htm\": \"POST\"}\n"
      "  cert \"other\"\n"
      "  revoke {\"jti\": [\"j\"]}\n"
      "  expect allow\n"
      "}\n"
      "test \"bare\" {\n"
      "  token {}\n"
      "  dpop\n"
      "  cert\n"
      "}\n");
  ASSERT_FALSE(p->diags.HasErrors()) << p->Errors();
  const auto& f = *p->file;
  ASSERT_EQ(f.issuers.size(), 1u);
  const auto& is = f.issuers[0];
  EXPECT_EQ(is.name, "idp");
  EXPECT_EQ(is.loc.line, 1u);
  ASSERT_EQ(is.settings.size(), 3u);
  EXPECT_EQ(is.settings[0].name, "url");
  EXPECT_FALSE(is.settings[0].loosen);
  EXPECT_EQ(is.settings[0].value->kind, dsl::ast::ExprKind::kString);
  EXPECT_EQ(is.settings[1].name, "leeway");
  EXPECT_TRUE(is.settings[1].loosen);
  EXPECT_EQ(is.settings[1].loc.line, 3u);
  EXPECT_EQ(is.settings[1].loc.column, 3u);  // at `loosen`
  EXPECT_EQ(is.settings[1].value->kind, dsl::ast::ExprKind::kDuration);
  EXPECT_EQ(is.settings[1].value->int_value, 90);
  EXPECT_EQ(is.settings[2].value->kind, dsl::ast::ExprKind::kList);

  const auto& use = f.apis[0].body.request[0];
  EXPECT_EQ(use.kind, dsl::ast::StmtKind::kUse);
  EXPECT_EQ(use.name, "fapi2");
  EXPECT_TRUE(use.has_settings);
  ASSERT_EQ(use.settings.size(), 3u);
  EXPECT_EQ(use.settings[0].value->kind, dsl::ast::ExprKind::kName);
  EXPECT_TRUE(use.settings[1].loosen);
  EXPECT_EQ(use.settings[1].name, "sender");
  EXPECT_FALSE(f.apis[0].routes[0].body.request[0].has_settings);

  ASSERT_EQ(f.tests.size(), 2u);
  const auto& t = f.tests[0];
  EXPECT_TRUE(t.has_token);
  EXPECT_EQ(t.token_alg, "PS256");
  EXPECT_EQ(t.token_json, "{\"sub\": \"u\", \"iss\": null}");
  EXPECT_EQ(t.token_loc.line, 12u);
  EXPECT_TRUE(t.has_dpop);
  EXPECT_EQ(t.dpop_json, "{\"htm\": \"POST\"}");
  EXPECT_TRUE(t.has_cert);
  EXPECT_EQ(t.cert, "other");
  EXPECT_EQ(t.revoke_json, "{\"jti\": [\"j\"]}");
  EXPECT_EQ(t.revoke_loc.line, 15u);
  const auto& bare = f.tests[1];
  EXPECT_TRUE(bare.has_token);
  EXPECT_EQ(bare.token_alg, "");
  EXPECT_EQ(bare.token_json, "{}");
  EXPECT_TRUE(bare.has_dpop);
  EXPECT_EQ(bare.dpop_json, "");
  EXPECT_TRUE(bare.has_cert);
  EXPECT_EQ(bare.cert, "");

  // The new keywords are still names after `.` and in expressions.
  p = Parse(
      "api a \"/v1\" { route GET \"/x\" { require token.cert.issuer == token.dpop.loosen && "
      "has(token.revoke) else deny 403 } }\n");
  EXPECT_FALSE(p->diags.HasErrors()) << p->Errors();
}

TEST(FapiLang, ParseErrorsOfTheNewSyntax) {
  struct Case {
    std::string text;
    std::string want;  // "line:col: message\n"
  };
  std::vector<Case> cases = {
      // `use fapi2 {` never closed.
      {"api a \"/v1\" {\n  route GET \"/x\" {\n    use fapi2 { scope = \"a\"\n",
       "4:1: syntax error: unexpected end of file\n"},
      // `loosen` without a setting.
      {"api a \"/v1\" {\n  route GET \"/x\" {\n    use fapi2 { loosen }\n  }\n}\n",
       "3:24: syntax error: unexpected `}`\n"},
      {"issuer idp { loosen }\n", "1:21: syntax error: unexpected `}`\n"},
      // A setting without a value.
      {"issuer idp { url = }\n", "1:20: syntax error: unexpected `}`\n"},
      // An issuer without a name or without settings.
      {"issuer { url = \"x\" }\n", "1:8: syntax error: unexpected `{`, expected a name\n"},
      {"issuer idp\n", "2:1: syntax error: unexpected end of file, expected `{`\n"},
      // `token` without an object.
      {"test \"t\" {\n  token \"PS256\"\n  expect allow\n}\n",
       "3:3: syntax error: unexpected `expect`, expected `{`\n"},
      {"test \"t\" {\n  token\n}\n",
       "3:1: syntax error: unexpected `}`, expected `{`, a raw string or a string\n"},
      // `revoke` needs an object, `cert` takes a string.
      {"test \"t\" {\n  revoke\n}\n", "3:1: syntax error: unexpected `}`, expected `{`\n"},
      {"test \"t\" {\n  cert {}\n}\n", "2:8: syntax error: unexpected `{`\n"},
      // Each item once.
      {"test \"t\" {\n  token {}\n  token {}\n}\n", "3:3: duplicate `token` in test\n"},
      {"test \"t\" {\n  dpop\n  dpop {}\n}\n", "3:3: duplicate `dpop` in test\n"},
      {"test \"t\" {\n  cert\n  cert\n}\n", "3:3: duplicate `cert` in test\n"},
      {"test \"t\" {\n  revoke {}\n  revoke {}\n}\n", "3:3: duplicate `revoke` in test\n"},
      // Comments are not allowed in test JSON, here neither.
      {"test \"t\" {\n  token {\"sub\": /* no */ \"u\"}\n}\n",
       "2:17: comments are not allowed inside json\n"},
      // The new keywords cannot name declarations.
      {"profile token { }\n", "1:9: syntax error: unexpected `token`, expected a name\n"},
      {"issuer dpop { }\n", "1:8: syntax error: unexpected `dpop`, expected a name\n"},
  };
  for (const auto& c : cases) {
    auto p = Parse(c.text);
    EXPECT_TRUE(p->diags.HasErrors()) << c.text;
    EXPECT_NE(p->Errors().find(c.want), std::string::npos) << "want `" << c.want << "` for:\n"
                                                           << c.text << "\ngot:\n"
                                                           << p->Errors();
  }
}

// ---------------------------------------------------------------------------
// The formatter on the new syntax.

std::string Fmt(const std::string& text, dsl::Diagnostics* diags) {
  dsl::SourceFile src{"f.vakt", text};
  return dsl::FormatSource(src, *diags);
}

TEST(FapiLang, FormatterIsIdempotentOnTheNewSyntax) {
  const std::string messy =
      "issuer   idp{\n"
      "url=\"https://idp.example\"\n"
      "        audience = \"https://api.example\"   jwks=\"keys.json\"\n"
      "  algs = [ \"ES256\" ,\"PS256\" ]\n"
      "loosen   leeway=90s\n"
      "    loosen fapi=false\n"
      "}\n"
      "api a \"/v1\"{\n"
      "use fapi2{issuer=idp loosen sender=\"none\"\n"
      "      scope=\"a b\"}\n"
      "route r GET \"/x\"{\n"
      "      use fapi2 {   loosen tls = \"any\"   dpop_nonce=true dpop_window=30s }  // why\n"
      "require has_scope( \"a\" )else deny 403\n"
      "}\n"
      "}\n"
      "test \"t\"{\n"
      "request {\"method\": \"GET\", \"path\": \"/v1/x\"}\n"
      "   token   \"PS256\"{\"sub\": \"u\"}\n"
      "dpop {\"htm\": \"POST\"}\n"
      "   cert   \"other\"\n"
      "  revoke {\"jti\": [\"j\"]}\n"
      "expect deny 401\n"
      "}\n"
      "test \"bare\" {\n"
      "request {\"method\": \"GET\", \"path\": \"/v1/x\"}\n"
      "token{}\n"
      "     dpop\n"
      "cert\n"
      "expect allow\n"
      "}\n";
  dsl::Diagnostics d;
  std::string once = Fmt(messy, &d);
  ASSERT_FALSE(d.HasErrors()) << d.Format();
  EXPECT_NE(once, messy);
  std::string twice = Fmt(once, &d);
  EXPECT_EQ(twice, once);
  // The formatted file still parses to the same program, comments kept.
  auto p = Parse(once);
  EXPECT_FALSE(p->diags.HasErrors()) << p->Errors() << once;
  EXPECT_NE(once.find("// why"), std::string::npos) << once;
  EXPECT_NE(once.find("  loosen leeway = 90s\n"), std::string::npos) << once;
  EXPECT_NE(once.find("  use fapi2 { issuer = idp loosen sender = \"none\"\n"), std::string::npos)
      << once;
  EXPECT_NE(once.find("    use fapi2 { loosen tls = \"any\" dpop_nonce = true dpop_window = 30s }"),
            std::string::npos)
      << once;
  EXPECT_NE(once.find("  token \"PS256\" {\"sub\": \"u\"}\n"), std::string::npos) << once;
  EXPECT_NE(once.find("  cert \"other\"\n"), std::string::npos) << once;
  EXPECT_NE(once.find("  dpop\n"), std::string::npos) << once;

  // The healthcare example is already canonical.
  for (const char* name : {"common.vakt", "fapi_tests.vakt", "records.vakt"}) {
    std::string path = std::string(VAKT_SOURCE_DIR) + "/examples/healthcare/policy/" + name;
    FILE* f = fopen(path.c_str(), "rb");
    ASSERT_NE(f, nullptr) << path;
    std::string text;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    fclose(f);
    EXPECT_EQ(Fmt(text, &d), text) << name;
  }
}

// ---------------------------------------------------------------------------
// The policy test runner with real tokens.

const char* kRunnerPolicy = R"(
issuer idp {
  url = "https://idp.example"
  audience = "https://api.example"
  jwks = "keys.json"
}

claims { role: string }

api a "/v1" {
  route read GET "/r" {
    use fapi2 { scope = "read" }
    role: require token.role == "reader" else deny 403 access_denied "readers only"
  }
  route nonce GET "/n" { use fapi2 { sender = "dpop" dpop_nonce = true } }
  route mtls GET "/m" { use fapi2 { sender = "mtls" } }
  route bearer GET "/b" { use fapi2 { loosen sender = "none" } }
  route scoped GET "/s" {
    use fapi2
    extra: require has_scope("extra") else deny 403 insufficient_scope "extra needed"
  }
}
)";

// A test block: request on a route of kRunnerPolicy over TLS 1.3, then items.
std::string T(const std::string& name, const std::string& path, const std::string& items,
              const std::string& tls = "TLSv1.3") {
  return "test \"" + name + "\" {\n  request {\"method\": \"GET\", \"path\": \"" + path +
         "\", \"tls\": {\"version\": \"" + tls + "\", \"cipher\": \"TLS_AES_128_GCM_SHA256\"}}\n" +
         items + "\n}\n";
}

const std::string kReader = R"({"sub": "u", "role": "reader", "scope": "read"})";

std::string msg_of(std::map<std::string, TestOutcome>& out, const std::string& name) {
  return out[name].message;
}

std::map<std::string, TestOutcome> RunTests(const std::string& tests) {
  Out o = Build1(std::string(kRunnerPolicy) + tests);
  EXPECT_TRUE(o.ok) << o.text;
  std::map<std::string, TestOutcome> out;
  if (!o.ok) return out;
  for (auto& t : RunPolicyTests(*o.c)) out[t.name] = t;
  return out;
}

TEST(FapiLang, RunnerTokenItemsDecide) {
  std::string tests =
      T("dpop", "/v1/r", "  token " + kReader + "\n  dpop\n  expect allow") +
      T("ps256", "/v1/r", "  token \"PS256\" " + kReader + "\n  dpop\n  expect allow") +
      T("eddsa cert", "/v1/r", "  token \"EdDSA\" " + kReader + "\n  cert\n  expect allow") +
      T("es256 explicit", "/v1/r", "  token \"ES256\" " + kReader + "\n  dpop {}\n  expect allow") +
      T("cert other", "/v1/r",
        "  token " + kReader + "\n  cert \"other\"\n  expect deny 401 invalid_token") +
      T("unbound", "/v1/r", "  token " + kReader + "\n  expect deny 401 invalid_token") +
      T("htm", "/v1/r",
        "  token " + kReader +
            "\n  dpop {\"htm\": \"POST\"}\n  expect deny 401 invalid_dpop_proof") +
      T("htu", "/v1/r",
        "  token " + kReader +
            "\n  dpop {\"htu\": \"https://api.vakt.test/v1/other\"}\n  expect deny 401 "
            "invalid_dpop_proof") +
      T("age", "/v1/r",
        "  token " + kReader + "\n  dpop {\"age\": 600}\n  expect deny 401 invalid_dpop_proof") +
      T("iat future", "/v1/r",
        "  token " + kReader +
            "\n  dpop {\"iat\": 1767229200}\n  expect deny 401 invalid_dpop_proof") +
      T("ath", "/v1/r",
        "  token " + kReader +
            "\n  dpop {\"ath\": \"wrong\"}\n  expect deny 401 invalid_dpop_proof") +
      T("other key", "/v1/r",
        "  token " + kReader + "\n  dpop {\"key\": \"other\"}\n  expect deny 401 invalid_token") +
      T("omit", "/v1/r",
        "  token " + kReader + "\n  dpop {\"omit\": true}\n  expect deny 401 invalid_dpop_proof") +
      T("private", "/v1/r",
        "  token " + kReader +
            "\n  dpop {\"private\": true}\n  expect deny 401 invalid_dpop_proof") +
      T("typ", "/v1/r",
        "  token " + kReader +
            "\n  dpop {\"typ\": \"jwt\"}\n  expect deny 401 invalid_dpop_proof") +
      T("alg", "/v1/r",
        "  token " + kReader +
            "\n  dpop {\"alg\": \"PS256\"}\n  expect deny 401 invalid_dpop_proof") +
      T("jti", "/v1/r", "  token " + kReader + "\n  dpop {\"jti\": \"my-proof\"}\n  expect allow") +
      T("nonce missing", "/v1/n",
        "  token " + kReader + "\n  dpop\n  expect deny 401 use_dpop_nonce") +
      T("nonce server", "/v1/n",
        "  token " + kReader + "\n  dpop {\"nonce\": \"server\"}\n  expect allow") +
      T("nonce forged", "/v1/n",
        "  token " + kReader +
            "\n  dpop {\"nonce\": \"made-up\"}\n  expect deny 401 use_dpop_nonce") +
      T("mtls cert", "/v1/m", "  token " + kReader + "\n  cert\n  expect allow") +
      T("mtls dpop", "/v1/m", "  token " + kReader + "\n  dpop\n  expect deny 401 invalid_token") +
      T("bearer", "/v1/b", "  token " + kReader + "\n  expect allow") +
      T("scope", "/v1/r",
        "  token {\"sub\": \"u\", \"role\": \"reader\", \"scope\": \"write\"}\n  dpop\n  expect "
        "deny 403 insufficient_scope") +
      T("policy rule", "/v1/r",
        "  token {\"sub\": \"u\", \"role\": \"writer\", \"scope\": \"read\"}\n  dpop\n  expect "
        "deny 403 access_denied") +
      T("has_scope", "/v1/s",
        "  token {\"sub\": \"u\", \"scope\": \"extra\"}\n  dpop\n  expect allow") +
      T("has_scope missing", "/v1/s",
        "  token {\"sub\": \"u\", \"scope\": \"read\"}\n  dpop\n  expect deny 403 "
        "insufficient_scope") +
      T("no iss", "/v1/r",
        "  token {\"iss\": null, \"sub\": \"u\", \"role\": \"reader\", \"scope\": \"read\"}\n  "
        "dpop\n  expect deny 401 invalid_token") +
      T("other aud", "/v1/r",
        "  token {\"aud\": \"https://other.example\", \"sub\": \"u\", \"role\": \"reader\", "
        "\"scope\": \"read\"}\n  dpop\n  expect deny 401 invalid_token") +
      T("no client_id", "/v1/r",
        "  token {\"client_id\": null, \"sub\": \"u\", \"role\": \"reader\", \"scope\": "
        "\"read\"}\n  dpop\n  expect deny 401 invalid_token") +
      T("expired", "/v1/r",
        "  now 1767225600\n  token {\"sub\": \"u\", \"role\": \"reader\", \"scope\": \"read\", "
        "\"iat\": 1767220000, \"exp\": 1767222000}\n  dpop\n  expect deny 401 invalid_token") +
      T("revoked jti", "/v1/r",
        "  token {\"jti\": \"j-1\", \"sub\": \"u\", \"role\": \"reader\", \"scope\": \"read\"}\n  "
        "dpop\n  revoke {\"jti\": [\"j-1\"]}\n  expect deny 401 invalid_token") +
      T("other jti revoked", "/v1/r",
        "  token {\"jti\": \"j-1\", \"sub\": \"u\", \"role\": \"reader\", \"scope\": \"read\"}\n  "
        "dpop\n  revoke {\"jti\": [\"j-2\"]}\n  expect allow") +
      T("revoked sub", "/v1/r",
        "  token " + kReader +
            "\n  dpop\n  revoke {\"sub\": {\"u\": 1767225600}}\n  expect deny 401 invalid_token") +
      T("revoked client", "/v1/r",
        "  token " + kReader +
            "\n  dpop\n  revoke {\"client_id\": {\"vakt-test-client\": 1767225600}}\n  expect deny "
            "401 invalid_token") +
      T("revoked other client", "/v1/r",
        "  token " + kReader +
            "\n  dpop\n  revoke {\"client_id\": {\"someone-else\": 1767225600}}\n  expect allow") +
      // Expected to fail: TLS 1.1 is refused before the token is looked at.
      T("old tls", "/v1/r", "  token " + kReader + "\n  dpop\n  expect allow", "TLSv1.1");
  auto out = RunTests(tests);
  ASSERT_FALSE(out.empty());
  for (const auto& [name, o] : out) {
    if (name == "old tls") continue;
    EXPECT_TRUE(o.passed) << "test `" << name << "`: " << o.message;
  }
  ASSERT_TRUE(out.count("old tls"));
  EXPECT_FALSE(out["old tls"].passed);
  EXPECT_NE(out["old tls"].message.find("got deny 403 insecure_transport (rule `fapi2.transport`)"),
            std::string::npos)
      << out["old tls"].message;
  EXPECT_EQ(out.size(), 37u);
}

TEST(FapiLang, RunnerFailures) {
  std::string tests =
      T("claims and token", "/v1/r",
        "  claims {\"sub\": \"u\"}\n  token " + kReader + "\n  dpop\n  expect allow") +
      T("unknown override", "/v1/r",
        "  token " + kReader + "\n  dpop {\"bogus\": 1}\n  expect allow") +
      T("expects 403", "/v1/r", "  token " + kReader + "\n  dpop\n  expect deny 403") +
      T("expects allow", "/v1/r", "  token " + kReader + "\n  expect allow") +
      T("wrong error", "/v1/r",
        "  token " + kReader + "\n  dpop {\"htm\": \"PUT\"}\n  expect deny 401 invalid_token") +
      T("dpop alone", "/v1/r", "  claims " + kReader + "\n  dpop\n  expect allow") +
      T("cert alone", "/v1/r", "  cert\n  expect allow") +
      T("revoke alone", "/v1/r", "  revoke {\"jti\": [\"x\"]}\n  expect allow") +
      T("unknown alg", "/v1/r", "  token \"RS256\" " + kReader + "\n  dpop\n  expect allow") +
      T("bad revoke", "/v1/r",
        "  token " + kReader + "\n  dpop\n  revoke {\"jti\": \"x\"}\n  expect allow") +
      T("bad cutoff", "/v1/r",
        "  token " + kReader + "\n  dpop\n  revoke {\"sub\": {\"u\": \"soon\"}}\n  expect allow") +
      T("bad cnf", "/v1/r", "  token {\"sub\": \"u\", \"cnf\": 5}\n  expect allow") +
      T("override of the wrong type", "/v1/r",
        "  token " + kReader + "\n  dpop {\"iat\": \"soon\"}\n  expect allow");
  auto out = RunTests(tests);
  ASSERT_EQ(out.size(), 13u);
  EXPECT_EQ(msg_of(out, "override of the wrong type")
                .rfind("cannot make the token: a value has the wrong type: ", 0),
            0u)
      << msg_of(out, "override of the wrong type");
  for (const auto& [name, o] : out) EXPECT_FALSE(o.passed) << name;
  auto msg = [&](const std::string& name) { return out[name].message; };
  EXPECT_EQ(msg("claims and token"),
            "a test takes `claims` (injected) or `token` (real), not both");
  EXPECT_EQ(msg("unknown override"),
            "cannot make the token: unknown `dpop` override `bogus` (htm, htu, iat, age, jti, "
            "nonce, typ, key, ath, omit, alg, private)");
  EXPECT_EQ(msg("expects 403"), "expected deny 403, got allow");
  EXPECT_EQ(msg("expects allow")
                .rfind("expected allow, got deny 401 invalid_token (rule `fapi2.binding`)", 0),
            0u)
      << msg("expects allow");
  EXPECT_EQ(msg("wrong error")
                .rfind("expected deny 401 invalid_token, got deny 401 invalid_dpop_proof (rule "
                       "`fapi2.dpop`)",
                       0),
            0u)
      << msg("wrong error");
  for (const char* name : {"dpop alone", "cert alone", "revoke alone"}) {
    EXPECT_EQ(msg(name), "`dpop`, `cert` and `revoke` need a `token`") << name;
  }
  EXPECT_EQ(msg("unknown alg"),
            "cannot make the token: unknown token algorithm `RS256` (ES256, PS256 or EdDSA)");
  EXPECT_EQ(msg("bad revoke"),
            "cannot make the token: revocations take {\"jti\": [...], \"sub\": {NAME: CUTOFF}, "
            "\"client_id\": {NAME: CUTOFF}}");
  EXPECT_EQ(msg("bad cutoff"), "cannot make the token: revocation cut-offs are unix times");
  // A `cnf` that is not an object is minted as written, and refused.
  EXPECT_EQ(msg("bad cnf"),
            "expected allow, got deny 401 invalid_token (rule `fapi2.token`): the token cnf is not "
            "an object");
}

TEST(FapiLang, RevocationsJson) {
  bytecode::RevocationSet set;
  EXPECT_TRUE(
      ParseRevocationsJson(R"({"jti": ["a", "b"], "sub": {"s": 10}, "client_id": {"c": 20}})", &set)
          .ok());
  EXPECT_FALSE(ParseRevocationsJson("[]", &set).ok());
  EXPECT_FALSE(ParseRevocationsJson(R"({"jti": [1]})", &set).ok());
  EXPECT_FALSE(ParseRevocationsJson(R"({"kid": []})", &set).ok());
  EXPECT_FALSE(ParseRevocationsJson(R"({"client_id": {"c": 1.5}})", &set).ok());
}

}  // namespace
}  // namespace vakt::compiler
