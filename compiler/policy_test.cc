// Policy test runner; see policy_test.h.
//
// Tests with `claims { ... }` inject claims that stand for a verified token.
// Tests with `token { ... }` use real ones: the runner makes test keys (one
// per FAPI algorithm), builds a copy of the bundle whose issuers trust only
// those keys, mints the access token (and, with `dpop`, a DPoP proof bound
// to it; with `cert`, a client certificate it is bound to), and decides the
// request the way an agent does (vm.h Decide), so every FAPI check runs.
#include "compiler/policy_test.h"

#include <map>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "bytecode/fapi_auth.h"
#include "bytecode/request_json.h"
#include "bytecode/vm.h"
#include "compiler/interp.h"
#include "compiler/token_tool.h"

namespace vakt::compiler {

std::string DescribeDecision(bool allow, int status, const std::string& error) {
  if (allow) return "allow";
  std::string s = "deny " + std::to_string(status);
  if (!error.empty()) s += " " + error;
  return s;
}

namespace {

using ojson = nlohmann::ordered_json;

constexpr int64_t kDefaultTestTime = 1767225600;  // 2026-01-01T00:00:00Z
constexpr const char* kTestHost = "api.vakt.test";
constexpr const char* kTestClient = "vakt-test-client";

// Keys, certificates and the re-keyed bundle shared by the token tests of
// one run. Made on first use (RSA key generation takes a moment).
struct Fixture {
  std::map<std::string, SigningKey> issuer_keys;  // by algorithm name
  std::optional<SigningKey> dpop, dpop_other;
  std::optional<TestCertificate> cert, cert_other;
  std::shared_ptr<const bytecode::Bundle> bundle;
  std::unique_ptr<bytecode::HmacNonceSource> nonces;
};

Status MakeFixture(const Compilation& c, Fixture& f) {
  std::string jwks = "{\"keys\":[";
  bool first = true;
  for (auto alg : {bytecode::JwsAlg::kES256, bytecode::JwsAlg::kPS256, bytecode::JwsAlg::kEdDSA}) {
    std::string name = bytecode::JwsAlgName(alg);
    std::string kid = "vakt-test-";
    for (char ch : name) kid.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
    auto key = GenerateKey(alg, kid);
    if (!key.ok()) return key.status();
    if (!first) jwks += ",";
    first = false;
    jwks += key->PublicJwk();
    f.issuer_keys.emplace(name, std::move(key).value());
  }
  jwks += "]}";
  for (auto* slot : {&f.dpop, &f.dpop_other}) {
    auto key = GenerateKey(bytecode::JwsAlg::kES256);
    if (!key.ok()) return key.status();
    slot->emplace(std::move(key).value());
  }
  for (auto [slot, cn] : {std::pair{&f.cert, "vakt-test-client"}, {&f.cert_other, "other-client"}}) {
    auto cert = MakeTestCertificate(cn);
    if (!cert.ok()) return cert.status();
    slot->emplace(std::move(cert).value());
  }
  bytecode::BundleData data = c.data;
  uint32_t idx = static_cast<uint32_t>(data.strings.size());
  data.strings.push_back(jwks);
  for (auto& is : data.issuers) is.jwks = idx;
  auto loaded = bytecode::Bundle::Load(bytecode::Serialize(data));
  if (!loaded.ok()) return loaded.status();
  f.bundle = std::move(loaded).value();
  f.nonces = std::make_unique<bytecode::HmacNonceSource>("vakt policy tests nonce secret", 300);
  return Status::Ok();
}

// What a token test adds to the request, and the state it decides with.
struct TokenSetup {
  std::string token;
  bytecode::ReplayCache replay{1024, 600};
  bytecode::RevocationSet revoked;
};

Status SetUpToken(const Compilation& c, const dsl::ast::Test& t, Fixture& fx,
                  bytecode::OwnedRequest& req, TokenSetup& out) {
  ojson claims = ojson::parse(t.token_json, nullptr, false);
  if (!claims.is_object()) return InvalidArgument("`token` takes a JSON object of claims");
  const int64_t now = req.time;
  // Defaults from the (first) issuer; `null` removes a claim.
  if (!c.ir.issuers.empty()) {
    if (!claims.contains("iss")) claims["iss"] = c.ir.issuers[0].url;
    if (!claims.contains("aud")) claims["aud"] = c.ir.issuers[0].audience;
  }
  if (!claims.contains("client_id")) claims["client_id"] = kTestClient;
  for (auto it = claims.begin(); it != claims.end();) {
    it = it.value().is_null() ? claims.erase(it) : std::next(it);
  }
  std::string alg = t.token_alg.empty() ? "ES256" : t.token_alg;
  auto key = fx.issuer_keys.find(alg);
  if (key == fx.issuer_keys.end()) {
    return InvalidArgument("unknown token algorithm `" + alg + "` (ES256, PS256 or EdDSA)");
  }
  TokenOptions topts;
  topts.now = now;
  if (!claims.contains("cnf")) {
    if (t.has_dpop) {
      topts.cnf_jkt = fx.dpop->Thumbprint();
    } else if (t.has_cert) {
      topts.cnf_x5t = fx.cert->x5t_s256;
    }
  }
  auto token = MintAccessToken(key->second, claims.dump(), topts);
  if (!token.ok()) return token.status();
  out.token = *token;

  bool has_auth = false, has_host = false;
  for (auto& [name, value] : req.headers) {
    std::string lower;
    for (char ch : name) lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
    if (lower == "authorization") {
      has_auth = true;
      if (auto pos = value.find("{token}"); pos != std::string::npos) {
        value.replace(pos, 7, out.token);
      }
    }
    if (lower == "host") has_host = true;
  }
  if (!has_auth) req.headers.emplace_back("authorization", (t.has_dpop ? "DPoP " : "Bearer ") + out.token);
  if (!has_host) req.headers.emplace_back("host", kTestHost);

  if (t.has_dpop) {
    ojson o = t.dpop_json.empty() ? ojson::object() : ojson::parse(t.dpop_json, nullptr, false);
    if (!o.is_object()) return InvalidArgument("`dpop` takes a JSON object of overrides");
    static const std::set<std::string> kKnown = {"htm", "htu", "iat", "age", "jti", "nonce",
                                                 "typ", "key", "ath", "omit", "alg", "private"};
    for (auto& [k, v] : o.items()) {
      if (!kKnown.count(k)) {
        return InvalidArgument("unknown `dpop` override `" + k +
                               "` (htm, htu, iat, age, jti, nonce, typ, key, ath, omit, alg, private)");
      }
      (void)v;
    }
    if (o.value("omit", false)) return Status::Ok();
    std::string host = kTestHost;
    for (const auto& [name, value] : req.headers) {
      if (name == "host" || name == "Host") host = value;
    }
    std::string path = req.target.substr(0, req.target.find('?'));
    ProofOptions p;
    p.method = o.value("htm", req.method);
    p.url = o.value("htu", std::string(req.tls_version.empty() ? "http" : "https") + "://" + host + path);
    p.now = o.contains("iat") ? o["iat"].get<int64_t>() : now - o.value("age", int64_t{0});
    p.jti = o.value("jti", std::string());
    p.access_token = o.value("ath", std::string()) == "wrong" ? out.token + "x" : out.token;
    std::string nonce = o.value("nonce", std::string());
    p.nonce = nonce == "server" ? fx.nonces->Current(now) : nonce;
    p.typ = o.value("typ", std::string("dpop+jwt"));
    if (o.contains("alg")) p.alg = o["alg"].get<std::string>();
    p.embed_private_jwk = o.value("private", false);
    const SigningKey& dk = o.value("key", std::string()) == "other" ? *fx.dpop_other : *fx.dpop;
    auto proof = MintDpopProof(dk, p);
    if (!proof.ok()) return proof.status();
    req.headers.emplace_back("dpop", *proof);
  }
  if (t.has_cert) req.client_cert = t.cert == "other" ? fx.cert_other->cert_pem : fx.cert->cert_pem;
  if (!t.revoke_json.empty()) {
    if (Status st = ParseRevocationsJson(t.revoke_json, &out.revoked); !st.ok()) return st;
  }
  return Status::Ok();
}

}  // namespace

Status ParseRevocationsJson(std::string_view json, bytecode::RevocationSet* out) {
  ojson r = ojson::parse(json, nullptr, false);
  if (!r.is_object()) return InvalidArgument("revocations must be a JSON object");
  const char* kShape =
      "revocations take {\"jti\": [...], \"sub\": {NAME: CUTOFF}, \"client_id\": {NAME: CUTOFF}}";
  for (auto& [k, v] : r.items()) {
    if (k == "jti" && v.is_array()) {
      for (const auto& j : v) {
        if (!j.is_string()) return InvalidArgument(kShape);
        out->RevokeJti(j.get<std::string>());
      }
    } else if ((k == "sub" || k == "client_id") && v.is_object()) {
      for (auto& [who, cutoff] : v.items()) {
        if (!cutoff.is_number_integer()) return InvalidArgument("revocation cut-offs are unix times");
        if (k == "sub") {
          out->RevokeSubject(who, cutoff.get<int64_t>());
        } else {
          out->RevokeClient(who, cutoff.get<int64_t>());
        }
      }
    } else {
      return InvalidArgument(kShape);
    }
  }
  return Status::Ok();
}

std::vector<TestOutcome> RunPolicyTests(const Compilation& c) {
  std::vector<TestOutcome> out;
  auto loaded = bytecode::Bundle::Load(c.bytes);
  std::set<std::string> names;
  bytecode::EvalScratch scratch;
  Fixture fixture;
  std::optional<Status> fixture_status;
  for (const auto& file : c.files) {
    for (const auto& t : file->tests) {
      TestOutcome o;
      o.name = t.name;
      o.loc = t.loc;
      auto fail = [&](std::string msg) {
        o.passed = false;
        o.message = std::move(msg);
        out.push_back(o);
      };
      if (!names.insert(t.name).second) {
        fail("duplicate test name `" + t.name + "`");
        continue;
      }
      if (!loaded.ok()) {
        fail("bundle does not load: " + loaded.status().ToString());
        continue;
      }
      if (!t.has_expect) {
        fail("test has no `expect`");
        continue;
      }
      if (t.request_json.empty()) {
        fail("test has no `request`");
        continue;
      }
      if (t.has_token && !t.claims_json.empty()) {
        fail("a test takes `claims` (injected) or `token` (real), not both");
        continue;
      }
      if (!t.has_token && (t.has_dpop || t.has_cert || !t.revoke_json.empty())) {
        fail("`dpop`, `cert` and `revoke` need a `token`");
        continue;
      }
      auto req = bytecode::ParseRequestJson(t.request_json);
      if (!req.ok()) {
        fail("bad request: " + req.status().message());
        continue;
      }
      if (t.now) {
        req->time = *t.now;
        req->has_time = true;
      }
      std::unique_ptr<bytecode::JsonClaims> claims;
      nlohmann::json claims_json;
      if (!t.claims_json.empty()) {
        auto cl = bytecode::JsonClaims::Parse(t.claims_json);
        if (!cl.ok()) {
          fail("bad claims: " + cl.status().message());
          continue;
        }
        claims = std::move(cl).value();
        claims_json = nlohmann::json::parse(t.claims_json, nullptr, false);
      }
      std::optional<bytecode::OwnedResponse> resp;
      if (!t.response_json.empty()) {
        auto r = bytecode::ParseResponseJson(t.response_json);
        if (!r.ok()) {
          fail("bad response: " + r.status().message());
          continue;
        }
        resp = std::move(r).value();
      }

      const bytecode::Bundle* bundle = loaded->get();
      std::unique_ptr<TokenSetup> setup;
      std::shared_ptr<const bytecode::VerifiedToken> verified;
      bytecode::Decision d;
      bytecode::HttpRequest view;
      if (t.has_token) {
        if (!fixture_status) fixture_status = MakeFixture(c, fixture);
        if (!fixture_status->ok()) {
          fail("cannot make test keys: " + fixture_status->ToString());
          continue;
        }
        if (!req->has_time) {
          req->time = kDefaultTestTime;
          req->has_time = true;
        }
        setup = std::make_unique<TokenSetup>();
        Status st;
        try {
          st = SetUpToken(c, t, fixture, *req, *setup);
        } catch (const nlohmann::json::exception& e) {
          // A value of the wrong type in `token` or `dpop` (e.g. "iat": "soon").
          st = InvalidArgument(std::string("a value has the wrong type: ") + e.what());
        }
        if (!st.ok()) {
          fail("cannot make the token: " + st.message());
          continue;
        }
        bundle = fixture.bundle.get();
        bytecode::AuthEnv env;
        env.replay = &setup->replay;
        env.revoked = &setup->revoked;
        env.nonces = fixture.nonces.get();
        view = req->View();
        d = bytecode::Decide(*bundle, view, env, scratch, &verified);
        if (verified) {
          claims_json = nlohmann::json::parse(verified->claims_json, nullptr, false);
        }
      } else {
        view = req->View();
        d = bytecode::DecideRequest(*bundle, view, claims.get(), scratch);
      }
      const bytecode::ClaimsProvider* used =
          t.has_token ? (verified ? verified->claims.get() : nullptr) : claims.get();
      const nlohmann::json* cj = used ? &claims_json : nullptr;
      bool allow = d.allow;
      int status = d.status;
      std::string error(d.error);
      std::string rule(d.rule);
      // The reference evaluator checks no signatures: after a real token
      // failed authentication it has nothing to say.
      bool compare = !(t.has_token && !verified && rule != "fapi2.transport" &&
                       rule != "fapi2.request");
      RefDecision ref = RefEvaluate(c.ir, view, cj, nullptr);
      if (d.allow && resp) {
        bytecode::HttpResponse rv = resp->View();
        bytecode::Decision dr = bytecode::DecideResponse(*bundle, view, used, rv, scratch);
        allow = dr.allow;
        status = dr.status;
        error = std::string(dr.error);
        rule = std::string(dr.rule);
        if (ref.allow) ref = RefEvaluate(c.ir, view, cj, &rv);
      }
      if (compare && (ref.allow != allow || (!allow && (ref.status != status || ref.rule != rule)))) {
        fail("the VM (" + DescribeDecision(allow, status, error) + " by `" + rule +
             "`) and the reference evaluator (" +
             DescribeDecision(ref.allow, ref.status, ref.error) + " by `" + ref.rule +
             "`) disagree; please report this as a bug");
        continue;
      }
      const auto& ex = t.expect;
      bool match = ex.allow == allow;
      if (match && !allow) {
        if (ex.status != 0 && ex.status != status) match = false;
        if (!ex.error.empty() && ex.error != error) match = false;
      }
      if (!match) {
        std::string got = DescribeDecision(allow, status, error);
        if (!allow && !rule.empty()) got += " (rule `" + rule + "`)";
        if (!allow && d.description.size() > 0 && !d.allow) {
          got += ": " + std::string(d.description);
        }
        fail("expected " + DescribeDecision(ex.allow, ex.status, ex.error) + ", got " + got);
        continue;
      }
      o.passed = true;
      out.push_back(o);
    }
  }
  return out;
}

}  // namespace vakt::compiler
