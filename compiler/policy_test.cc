// Policy test runner; see policy_test.h.
//
// After the written tests come the generated ownership tests: for each
// clause of each `owns` rule, an owner/other-user pair derived from the
// route's first allowed written test (or a synthesised request), run
// through the same RunOne as the written tests. Bounded: two tests per
// clause, and at most 10,000 relation entries are looked at per clause.
//
// Tests with `claims { ... }` inject claims that stand for a verified token.
// Tests with `token { ... }` use real ones: the runner makes test keys (one
// per FAPI algorithm), builds a copy of the bundle whose issuers trust only
// those keys, mints the access token (and, with `dpop`, a DPoP proof bound
// to it; with `cert`, a client certificate it is bound to), and decides the
// request the way an agent does (vm.h Decide), so every FAPI check runs.
#include "compiler/policy_test.h"

#include <re2/re2.h>

#include <algorithm>
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

namespace {

// Runs tests one at a time against one compilation; keeps the loaded bundle,
// the scratch and the token fixture between them.
struct Runner {
  explicit Runner(const Compilation& comp) : c(comp), loaded(bytecode::Bundle::Load(comp.bytes)) {}

  const Compilation& c;
  Result<std::shared_ptr<const bytecode::Bundle>> loaded;
  bytecode::EvalScratch scratch;
  Fixture fixture;
  std::optional<Status> fixture_status;

  // Decides `t` on the VM and the reference evaluator. `forbidden`: the
  // expectation is a deny with 403 or 404 (generated tests). *route and
  // *rule receive the matched route and the deciding rule.
  TestOutcome RunOne(const dsl::ast::Test& t, bool forbidden, std::string* route_out,
                     std::string* rule_out) {
    TestOutcome o;
    o.name = t.name;
    o.loc = t.loc;
    auto fail = [&](std::string msg) {
      o.passed = false;
      o.message = std::move(msg);
      return o;
    };
    if (!loaded.ok()) {
      return fail("bundle does not load: " + loaded.status().ToString());
    }
    if (!t.has_expect) {
      return fail("test has no `expect`");
    }
    if (t.request_json.empty()) {
      return fail("test has no `request`");
    }
    if (t.has_token && !t.claims_json.empty()) {
      return fail("a test takes `claims` (injected) or `token` (real), not both");
    }
    if (!t.has_token && (t.has_dpop || t.has_cert || !t.revoke_json.empty())) {
      return fail("`dpop`, `cert` and `revoke` need a `token`");
    }
    auto req = bytecode::ParseRequestJson(t.request_json);
    if (!req.ok()) {
      return fail("bad request: " + req.status().message());
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
        return fail("bad claims: " + cl.status().message());
      }
      claims = std::move(cl).value();
      claims_json = nlohmann::json::parse(t.claims_json, nullptr, false);
    }
    std::optional<bytecode::OwnedResponse> resp;
    if (!t.response_json.empty()) {
      auto r = bytecode::ParseResponseJson(t.response_json);
      if (!r.ok()) {
        return fail("bad response: " + r.status().message());
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
        return fail("cannot make test keys: " + fixture_status->ToString());
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
        return fail("cannot make the token: " + st.message());
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
      return fail("the VM (" + DescribeDecision(allow, status, error) + " by `" + rule +
           "`) and the reference evaluator (" +
           DescribeDecision(ref.allow, ref.status, ref.error) + " by `" + ref.rule +
           "`) disagree; please report this as a bug");
    }
    if (route_out) *route_out = std::string(d.route);
    if (rule_out) *rule_out = rule;
    const auto& ex = t.expect;
    bool match = ex.allow == allow;
    if (match && !allow) {
      if (ex.status != 0 && ex.status != status) match = false;
      if (!ex.error.empty() && ex.error != error) match = false;
      if (forbidden && status != 403 && status != 404) match = false;
    }
    if (!match) {
      std::string got = DescribeDecision(allow, status, error);
      if (!allow && !rule.empty()) got += " (rule `" + rule + "`)";
      if (!allow && d.description.size() > 0 && !d.allow) {
        got += ": " + std::string(d.description);
      }
      return fail("expected " +
                  (forbidden ? std::string("deny 403 or 404")
                             : DescribeDecision(ex.allow, ex.status, ex.error)) +
                  ", got " + got);
    }
    o.passed = true;
    return o;
  }
};

// ---- Generated ownership tests ----------------------------------------------

// A claim path read by `e` (maybe through a conversion), or null.
const std::vector<std::string>* ClaimOf(const IrExpr& e) {
  const IrExpr* x = &e;
  if (x->kind == IrKind::kConvert) x = x->children[0].get();
  if (x->kind == IrKind::kFirst && x->source == Source::kClaim) return &x->claim_path;
  return nullptr;
}

// Conditions the generator can satisfy: `token.X == "literal"`, joined by &&.
bool CollectConds(const IrExpr& e, std::vector<std::pair<std::vector<std::string>, std::string>>* out) {
  if (e.kind == IrKind::kAnd) {
    return CollectConds(*e.children[0], out) && CollectConds(*e.children[1], out);
  }
  if (e.kind != IrKind::kBinary || e.op != bytecode::Op::kEq) return false;
  for (int i = 0; i < 2; ++i) {
    const IrExpr& a = *e.children[i];
    const IrExpr& b = *e.children[1 - i];
    const auto* claim = ClaimOf(a);
    if (claim && b.kind == IrKind::kConst && b.type.kind == ValueType::kString) {
      out->emplace_back(*claim, b.str);
      return true;
    }
  }
  return false;
}

void SetClaim(ojson& claims, const std::vector<std::string>& path, ojson value) {
  ojson* cur = &claims;
  for (size_t i = 0; i + 1 < path.size(); ++i) {
    if (!cur->contains(path[i]) || !(*cur)[path[i]].is_object()) (*cur)[path[i]] = ojson::object();
    cur = &(*cur)[path[i]];
  }
  (*cur)[path.back()] = std::move(value);
}

bool Unreserved(std::string_view v) {
  if (v.empty()) return false;
  for (unsigned char ch : v) {
    if (!(std::isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~')) return false;
  }
  return true;
}

bool ShapeAccepts(const std::string& shape, const std::string& v) {
  if (shape.empty()) return true;
  RE2::Options o;
  o.set_log_errors(false);
  RE2 re(shape, o);
  return re.ok() && RE2::FullMatch(v, re);
}

// What one clause needs of the caller and of the object.
struct ClausePlan {
  std::string object_value;  // "" = keep the base test's value
  std::vector<std::pair<std::vector<std::string>, ojson>> owner_claims;
  std::vector<std::pair<std::vector<std::string>, ojson>> other_claims;
};

// Every claim a clause reads, set so that it cannot match `value` (the
// other user's claims for every clause, not only the generated one).
void Neutralise(const IrOwnClause& cl, const std::string& value,
                std::vector<std::pair<std::vector<std::string>, ojson>>* out) {
  if (const auto* claim = ClaimOf(*cl.value)) {
    if (cl.in) {
      out->emplace_back(*claim, ojson::array({"vakt-generated-other"}));
    } else {
      out->emplace_back(*claim, value + "-other");
    }
    return;
  }
  if (cl.value->kind == IrKind::kRelation) {
    if (const auto* key = ClaimOf(*cl.value->children[0])) {
      out->emplace_back(*key, "vakt-generated-nonowner");
    }
  }
}

// Plans a clause, or says why it cannot be generated.
bool PlanClause(const IrProgram& prog, const IrOwnClause& cl, const IrExpr& object,
                const IrRoute& route, std::string* why, ClausePlan* plan) {
  std::vector<std::pair<std::vector<std::string>, std::string>> conds;
  if (cl.cond && !CollectConds(*cl.cond, &conds)) {
    *why = "its condition `" + cl.cond_text + "` is not of the form token.X == \"literal\"";
    return false;
  }
  for (const auto& [path, lit] : conds) plan->owner_claims.emplace_back(path, lit);
  if (const auto* claim = ClaimOf(*cl.value)) {
    // Filled in by the caller with the object's value.
    plan->owner_claims.emplace_back(*claim, cl.in ? ojson::array() : ojson());
    return true;
  }
  if (cl.value->kind == IrKind::kRelation) {
    const auto* key = ClaimOf(*cl.value->children[0]);
    if (!key) {
      *why = "the relation is not looked up by a claim";
      return false;
    }
    const IrRelation& rel = prog.relations.at(cl.value->index);
    std::string param_shape;
    if (object.kind == IrKind::kParam) {
      size_t k = 0;
      for (const auto& seg : route.segments) {
        if (!seg.is_param) continue;
        if (k++ == object.index) param_shape = seg.shape;
      }
    }
    size_t tried = 0;
    for (const auto& [k, values] : rel.entries) {
      if (++tried > 10000) break;
      if (values.empty() || !Unreserved(values[0]) || !ShapeAccepts(param_shape, values[0])) continue;
      plan->object_value = values[0];
      plan->owner_claims.emplace_back(*key, k);
      return true;
    }
    *why = "relation `" + rel.name + "` has no entry whose value can stand for the object";
    return false;
  }
  *why = "it compares with `" + cl.value_text + "`, not a claim or a relation looked up by a claim";
  return false;
}

// Sets the object's value in the request: a path segment, a query value or
// a member of the JSON body.
bool SetObject(const IrExpr& object, const IrRoute& route, const std::string& value, ojson& req,
               std::string* why) {
  if (object.kind == IrKind::kParam) {
    std::string path = req.value("path", std::string());
    std::string query;
    if (auto q = path.find('?'); q != std::string::npos) {
      query = path.substr(q);
      path = path.substr(0, q);
    }
    std::vector<std::string> segs;
    size_t pos = 1;
    while (pos <= path.size()) {
      size_t slash = path.find('/', pos);
      if (slash == std::string::npos) slash = path.size();
      segs.push_back(path.substr(pos, slash - pos));
      pos = slash + 1;
    }
    if (segs.size() != route.segments.size()) {
      *why = "the base request's path does not have the route's segments";
      return false;
    }
    uint32_t k = 0;
    for (size_t i = 0; i < segs.size(); ++i) {
      if (!route.segments[i].is_param) continue;
      if (k++ == object.index) segs[i] = value;
    }
    std::string out;
    for (const auto& s : segs) out += "/" + s;
    req["path"] = out + query;
    return true;
  }
  if (object.kind == IrKind::kFirst && object.source == Source::kQuery) {
    std::string path = req.value("path", std::string());
    // Drop any value of the parameter already there, then add ours.
    std::string base = path.substr(0, path.find('?'));
    std::string query = path.find('?') == std::string::npos ? "" : path.substr(path.find('?') + 1);
    std::string kept;
    size_t pos = 0;
    while (pos <= query.size() && !query.empty()) {
      size_t amp = query.find('&', pos);
      if (amp == std::string::npos) amp = query.size();
      std::string part = query.substr(pos, amp - pos);
      if (part.substr(0, part.find('=')) != object.str && !part.empty()) {
        kept += (kept.empty() ? "" : "&") + part;
      }
      pos = amp + 1;
    }
    kept += (kept.empty() ? "" : "&") + object.str + "=" + value;
    req["path"] = base + "?" + kept;
    return true;
  }
  // A member of the JSON body: request.json.a.b (kField chain over LOAD_REQ json).
  std::vector<std::string> members;
  const IrExpr* x = &object;
  if (x->kind == IrKind::kConvert) x = x->children[0].get();
  while (x->kind == IrKind::kField) {
    members.push_back(x->str);
    x = x->children[0].get();
  }
  if (x->kind != IrKind::kReq || x->field != RequestField::kJson || members.empty()) {
    *why = "its object is not a path parameter, query value or request body value";
    return false;
  }
  std::reverse(members.begin(), members.end());
  ojson body = ojson::object();
  if (req.contains("body") && req["body"].is_string()) {
    body = ojson::parse(req["body"].get<std::string>(), nullptr, false);
    if (!body.is_object()) {
      *why = "the base request's body is not a JSON object";
      return false;
    }
  }
  SetClaim(body, members, value);
  req["body"] = body.dump();
  if (!req.contains("headers") || !req["headers"].is_object()) req["headers"] = ojson::object();
  bool has_type = false;
  for (auto& [k, v] : req["headers"].items()) {
    std::string lower;
    for (char ch : k) lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
    has_type |= lower == "content-type";
    (void)v;
  }
  if (!has_type) req["headers"]["content-type"] = "application/json";
  return true;
}

// The object's current value in a request, if it can be read back.
std::string CurrentObject(const IrExpr& object, const IrRoute& route, const ojson& req) {
  if (object.kind != IrKind::kParam) return "";
  std::string path = req.value("path", std::string());
  path = path.substr(0, path.find('?'));
  size_t pos = 1;
  uint32_t k = 0;
  for (size_t i = 0; pos <= path.size() && i < route.segments.size(); ++i) {
    size_t slash = path.find('/', pos);
    if (slash == std::string::npos) slash = path.size();
    std::string seg = path.substr(pos, slash - pos);
    pos = slash + 1;
    if (route.segments[i].is_param && k++ == object.index) return Unreserved(seg) ? seg : "";
  }
  return "";
}

// A request for `route` when no written test is there to base one on.
bool Synthesise(const IrRoute& route, dsl::ast::Test* t, std::string* why) {
  ojson req = ojson::object();
  req["method"] = route.method;
  std::string path;
  for (const auto& seg : route.segments) {
    if (!seg.is_param) {
      path += "/" + seg.text;
      continue;
    }
    std::string v;
    for (const char* cand : {"vakt-1", "p-1", "1", "a", "00000000-0000-4000-8000-000000000001",
                             "x1", "A1"}) {
      if (ShapeAccepts(seg.shape, cand)) {
        v = cand;
        break;
      }
    }
    if (v.empty()) {
      *why = "no value for path parameter `" + seg.text + "` matches its shape";
      return false;
    }
    path += "/" + v;
  }
  req["path"] = path.empty() ? "/" : path;
  ojson claims = ojson::object();
  claims["sub"] = "vakt-generated-owner";
  if (route.auth) {
    req["tls"] = {{"version", "TLSv1.3"}, {"cipher", "TLS_AES_128_GCM_SHA256"}};
    std::string scope;
    for (const auto& s : route.auth->scopes) scope += (scope.empty() ? "" : " ") + s;
    if (!scope.empty()) claims["scope"] = scope;
    t->has_token = true;
    t->token_json = claims.dump();
    if (route.auth->sender == static_cast<uint8_t>(bytecode::SenderConstraint::kMtls)) {
      t->has_cert = true;
    } else {
      t->has_dpop = true;
    }
  } else {
    t->claims_json = claims.dump();
  }
  t->request_json = req.dump();
  return true;
}

// The report name of clause `ci` of an ownership rule, e.g.
// "records.get_record.owner clause 1 (== token.patient_id)".
std::string ClauseTestName(const IrRule& rule, size_t ci, const char* suffix) {
  const IrOwnClause& cl = rule.owns->clauses[ci];
  return rule.id + " clause " + std::to_string(ci + 1) + " (" + (cl.in ? "in " : "== ") +
         cl.value_text + suffix + ")";
}

// A generated test that could not be built, reported with the reason.
TestOutcome SkippedClause(const std::string& name, const IrOwnClause& cl, const std::string& why) {
  TestOutcome o;
  o.name = name;
  o.loc = cl.loc;
  o.generated = true;
  o.skipped = true;
  o.message = why;
  return o;
}

// Response-side rules (`owns response.json.x { == params.y }`): the base is
// the route's first allowed written test with a `response`; the owner test
// puts the expected value in the body, the other test another one.
void GenerateResponseTests(const IrRoute& route, const IrRule& rule,
                           const std::map<std::string, const dsl::ast::Test*>& bases,
                           Runner& runner, std::vector<TestOutcome>& out) {
  const IrOwnership& own = *rule.owns;
  for (size_t ci = 0; ci < own.clauses.size(); ++ci) {
    const IrOwnClause& cl = own.clauses[ci];
    const std::string name = ClauseTestName(rule, ci, ", response");
    auto skip = [&](const std::string& why) { out.push_back(SkippedClause(name, cl, why)); };
    auto it = bases.find(route.name + "#response");
    if (it == bases.end()) {
      skip("no allowed written test with a `response` for route `" + route.name + "` to base it on");
      continue;
    }
    if (cl.in || cl.cond) {
      skip("only `== VALUE` clauses without a condition are generated for responses");
      continue;
    }
    const dsl::ast::Test& b = *it->second;
    ojson req = ojson::parse(b.request_json, nullptr, false);
    ojson resp = ojson::parse(b.response_json, nullptr, false);
    ojson claims = ojson::parse(b.has_token ? b.token_json : b.claims_json, nullptr, false);
    std::string value;
    const IrExpr& v = *cl.value;
    if (v.kind == IrKind::kParam) {
      value = CurrentObject(v, route, req);
    } else if (const auto* claim = ClaimOf(v); claim && claims.is_object()) {
      const ojson* cur = &claims;
      for (const auto& part : *claim) {
        cur = cur->is_object() && cur->contains(part) ? &(*cur)[part] : nullptr;
        if (!cur) break;
      }
      if (cur && cur->is_string()) value = cur->get<std::string>();
    }
    if (value.empty()) {
      skip("its value `" + cl.value_text + "` is not a path parameter or a claim of the base test");
      continue;
    }
    std::vector<std::string> members;
    const IrExpr* x = own.object.get();
    if (x->kind == IrKind::kConvert) x = x->children[0].get();
    while (x->kind == IrKind::kField) {
      members.push_back(x->str);
      x = x->children[0].get();
    }
    std::reverse(members.begin(), members.end());
    ojson body = ojson::object();
    if (resp.is_object() && resp.contains("body")) {
      body = resp["body"].is_string() ? ojson::parse(resp["body"].get<std::string>(), nullptr, false)
                                      : resp["body"];
    }
    if (!resp.is_object() || !body.is_object() || members.empty()) {
      skip("the base test's response body is not a JSON object");
      continue;
    }
    for (int which = 0; which < 2; ++which) {
      ojson rb = body;
      SetClaim(rb, members, which == 0 ? value : value + "-other");
      ojson r = resp;
      r["body"] = rb.dump();
      dsl::ast::Test t;
      t.request_json = b.request_json;
      t.claims_json = b.claims_json;
      t.response_json = r.dump();
      t.now = b.now;
      t.has_token = b.has_token;
      t.token_alg = b.token_alg;
      t.token_json = b.token_json;
      t.has_dpop = b.has_dpop;
      t.dpop_json = b.dpop_json;
      t.has_cert = b.has_cert;
      t.cert = b.cert;
      t.loc = cl.loc;
      t.has_expect = true;
      t.expect.allow = which == 0;
      t.name = name + (which == 0 ? " allows the owner's object" : " withholds another's object");
      TestOutcome o = runner.RunOne(t, which == 1, nullptr, nullptr);
      o.generated = true;
      out.push_back(std::move(o));
    }
  }
}

void GenerateOwnershipTests(const Compilation& c,
                            const std::map<std::string, const dsl::ast::Test*>& bases,
                            Runner& runner, std::vector<TestOutcome>& out) {
  for (const IrRoute& route : c.ir.routes) {
    for (const IrRule& rule : route.request_rules) {
      if (!rule.owns) continue;
      const IrOwnership& own = *rule.owns;
      for (size_t ci = 0; ci < own.clauses.size(); ++ci) {
        const IrOwnClause& cl = own.clauses[ci];
        const std::string name = ClauseTestName(rule, ci, "");
        auto skip = [&](const std::string& why) { out.push_back(SkippedClause(name, cl, why)); };
        ClausePlan plan;
        std::string why;
        if (!PlanClause(c.ir, cl, *own.object, route, &why, &plan)) {
          skip(why);
          continue;
        }
        // The base: the route's first allowed written test, or a synthesised one.
        dsl::ast::Test base;
        bool synthesised = false;
        if (auto it = bases.find(route.name); it != bases.end()) {
          const dsl::ast::Test& b = *it->second;
          base.request_json = b.request_json;
          base.claims_json = b.claims_json;
          base.response_json = b.response_json;
          base.now = b.now;
          base.has_token = b.has_token;
          base.token_alg = b.token_alg;
          base.token_json = b.token_json;
          base.has_dpop = b.has_dpop;
          base.dpop_json = b.dpop_json;
          base.has_cert = b.has_cert;
          base.cert = b.cert;
          base.loc = b.loc;
        } else {
          if (!Synthesise(route, &base, &why)) {
            skip(why);
            continue;
          }
          synthesised = true;
          base.loc = cl.loc;
        }
        ojson req = ojson::parse(base.request_json, nullptr, false);
        ojson claims = ojson::parse(base.has_token ? base.token_json : base.claims_json, nullptr,
                                    false);
        if (!req.is_object() || !claims.is_object()) {
          skip("the base test's request or claims are not JSON objects");
          continue;
        }
        std::string value = plan.object_value;
        if (value.empty()) value = CurrentObject(*own.object, route, req);
        if (value.empty()) value = "vakt-owned-1";
        if (!SetObject(*own.object, route, value, req, &why)) {
          skip(why);
          continue;
        }
        ojson owner = claims;
        for (const auto& [path, v] : plan.owner_claims) {
          ojson set = v;
          if (set.is_null()) set = value;  // `== token.X`: X is the object
          if (set.is_array() && set.empty()) set = ojson::array({value});  // `in token.X`
          SetClaim(owner, path, set);
        }
        // The other user: the same claims and scopes, but no clause may hold.
        ojson other = owner;
        if (other.contains("sub")) other["sub"] = "vakt-generated-other-user";
        std::vector<std::pair<std::vector<std::string>, ojson>> neutral;
        for (const auto& any : own.clauses) Neutralise(any, value, &neutral);
        for (const auto& [path, v] : neutral) SetClaim(other, path, v);
        for (int which = 0; which < 2; ++which) {
          dsl::ast::Test t;
          t.request_json = req.dump();
          // The request decision only: the response-side rules have their own.
          t.response_json.clear();
          t.now = base.now;
          t.has_token = base.has_token;
          t.token_alg = base.token_alg;
          t.has_dpop = base.has_dpop;
          t.dpop_json = base.dpop_json;
          t.has_cert = base.has_cert;
          t.cert = base.cert;
          (base.has_token ? t.token_json : t.claims_json) = (which == 0 ? owner : other).dump();
          t.loc = base.loc;
          t.has_expect = true;
          t.expect.allow = which == 0;
          t.name = name + (which == 0 ? " allows the owner" : " denies another user");
          std::string got_route, got_rule;
          TestOutcome o = runner.RunOne(t, which == 1, &got_route, &got_rule);
          o.generated = true;
          o.loc = cl.loc;
          if (!o.passed && which == 0 && synthesised && got_rule != rule.id) {
            o.skipped = true;
            o.message = "the synthesised request is denied by `" + got_rule +
                        "` before the ownership rule (write an allowed test for route `" +
                        route.name + "` to base the generated ones on)";
          }
          out.push_back(std::move(o));
        }
      }
    }
    for (const IrRule& rule : route.response_rules) {
      if (rule.owns) GenerateResponseTests(route, rule, bases, runner, out);
    }
  }
}

}  // namespace

std::vector<TestOutcome> RunPolicyTests(const Compilation& c, const PolicyTestOptions& opts) {
  std::vector<TestOutcome> out;
  Runner runner(c);
  std::set<std::string> names;
  // The first written test per route that was allowed: the base of the
  // generated ownership tests.
  std::map<std::string, const dsl::ast::Test*> allowed_base;
  for (const auto& file : c.files) {
    for (const auto& t : file->tests) {
      if (!names.insert(t.name).second) {
        TestOutcome o;
        o.name = t.name;
        o.loc = t.loc;
        o.message = "duplicate test name `" + t.name + "`";
        out.push_back(o);
        continue;
      }
      std::string route, rule;
      TestOutcome o = runner.RunOne(t, false, &route, &rule);
      if (o.passed && t.expect.allow && !route.empty()) {
        allowed_base.emplace(route, &t);
        if (!t.response_json.empty()) allowed_base.emplace(route + "#response", &t);
      }
      out.push_back(std::move(o));
    }
  }
  if (opts.generate_ownership) GenerateOwnershipTests(c, allowed_base, runner, out);
  return out;
}

}  // namespace vakt::compiler
