// The embeddable Agent (agent/agent.h): loading (signature, then the
// verifier, then activation; a refused bundle leaves the previous one),
// fail-closed decisions without a bundle, FAPI decisions with the agent's
// own replay cache, token cache and revocations, response decisions on the
// request's bundle and token, atomic swaps under concurrent decisions, the
// metrics exposition and the decision sink.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <thread>

#include "agent/agent.h"
#include "bytecode/sha256.h"
#include "compiler/compile.h"
#include "compiler/token_tool.h"
#include "controlplane/signing.h"

namespace vakt::agent {
namespace {

namespace fs = std::filesystem;
using bytecode::HeaderField;
using bytecode::HttpRequest;
using bytecode::HttpResponse;
using compiler::SigningKey;

constexpr int64_t kNow = 1'700'000'000;
constexpr char kHost[] = "api.example";

// `tag` changes the bytes; `deny_ping` makes GET /ping a 403.
std::string Policy(const std::string& tag, bool deny_ping) {
  std::string ping = deny_ping ? R"(route ping GET "/ping" {
    never: require request.headers["x-never"] == "set"
      else deny 403 access_denied "ping is closed in this version"
  })"
                               : R"(route ping GET "/ping" {})";
  return "// " + tag + R"(
package t

issuer main {
  url = "https://as.example"
  audience = "https://api.example"
  jwks = "keys/main.jwks.json"
  algs = ["ES256"]
  leeway = 5s
}

api a "/" {
  )" + ping + R"(
  route who GET "/who/{name}" {
    me: require request.headers["x-user"] == params.name
      else deny 403 access_denied "not you"
    on response {
      json: require response.headers["content-type"] == "application/json"
        else deny 502 invalid_response "not JSON"
    }
  }
  route mine GET "/mine/{id}" {
    use fapi2 { sender = "dpop" scope = "records.read" }
    owner: require token.sub == params.id else deny 403 access_denied "only the owner"
    on response {
      same: require response.headers["x-owner"] == token.sub
        else deny 502 bad_response "not the caller's record"
    }
  }
}
)";
}

SigningKey MakeKey(const char* kid) {
  auto k = compiler::GenerateKey(bytecode::JwsAlg::kES256, kid);
  if (!k.ok()) abort();
  return std::move(k).value();
}

struct Keys {
  SigningKey issuer = MakeKey("k1");
  SigningKey dpop = MakeKey("");
  std::string jwks = "{\"keys\":[" + issuer.PublicJwk() + "]}";
};

const Keys& K() {
  static const Keys* k = new Keys;
  return *k;
}

std::string Hex(const std::string& bytes) {
  auto d = bytecode::Sha256(bytes);
  return bytecode::HexLower(d.data(), d.size());
}

std::string Compile(const std::string& text) {
  compiler::SourceSet sources;
  compiler::AddSource(sources, "policy/t.vakt", text);
  compiler::CompileOptions opts;
  std::string jwks = K().jwks;
  opts.read_asset = [jwks](const dsl::SourceFile&, const std::string& path) -> Result<std::string> {
    if (path == "keys/main.jwks.json") return jwks;
    return NotFound("no asset `" + path + "`");
  };
  dsl::Diagnostics diags;
  auto comp = compiler::Compile(sources, opts, diags);
  EXPECT_FALSE(diags.HasErrors()) << diags.Format();
  return comp ? comp->bytes : std::string();
}

int64_t FixedClock() { return kNow; }

struct Signed {
  std::string bundle, signature, key_id;
};

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() / ("vakt-agent-core-" + std::to_string(::getpid()))).string();
    fs::create_directories(dir_);
    auto s = controlplane::BundleSigner::LoadOrCreate(dir_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    signer_ = std::make_unique<controlplane::BundleSigner>(std::move(s).value());
  }
  void TearDown() override { fs::remove_all(dir_); }

  AgentOptions Options() {
    AgentOptions o;
    EXPECT_TRUE(o.trusted_keys.AddPem(signer_->public_key_pem()).ok());
    o.clock = &FixedClock;
    return o;
  }
  Signed Sign(const std::string& bundle, const std::string& policy, uint64_t version) {
    auto sig = signer_->Sign(policy, version, Hex(bundle));
    EXPECT_TRUE(sig.ok()) << sig.status().ToString();
    return {bundle, sig.ok() ? *sig : std::string(), signer_->key_id()};
  }

  std::string dir_;
  std::unique_ptr<controlplane::BundleSigner> signer_;
};

// A request that owns its bytes.
struct Req {
  std::string method = "GET", target;
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<HeaderField> fields;
  explicit Req(std::string t) : target(std::move(t)) { headers.emplace_back("host", kHost); }
  Req& H(std::string n, std::string v) {
    headers.emplace_back(std::move(n), std::move(v));
    return *this;
  }
  HttpRequest View() {
    fields.clear();
    for (const auto& [n, v] : headers) fields.push_back({n, v});
    HttpRequest r;
    r.method = method;
    r.target = target;
    r.headers = fields;
    r.tls = {"TLSv1.3", "TLS_AES_128_GCM_SHA256", ""};
    return r;  // time 0: the agent's clock
  }
};

std::string Token(const std::string& sub, const std::string& jti = "") {
  compiler::TokenOptions o;
  o.now = kNow;
  o.cnf_jkt = K().dpop.Thumbprint();
  std::string claims = R"({"iss":"https://as.example","aud":"https://api.example","sub":")" + sub +
                       R"(","client_id":"app","scope":"records.read")" +
                       (jti.empty() ? "" : ",\"jti\":\"" + jti + "\"") + "}";
  auto t = compiler::MintAccessToken(K().issuer, claims, o);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return t.ok() ? *t : "";
}

Req DpopReq(const std::string& path, const std::string& token) {
  compiler::ProofOptions o;
  o.method = "GET";
  o.url = std::string("https://") + kHost + path;
  o.access_token = token;
  o.now = kNow;
  auto p = compiler::MintDpopProof(K().dpop, o);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  Req r(path);
  r.H("authorization", "DPoP " + token).H("dpop", p.ok() ? *p : "");
  return r;
}

TEST_F(AgentTest, NoBundleFailsClosed) {
  Agent agent(Options());
  EXPECT_FALSE(agent.ready());
  Req r("/ping");
  Verdict v = agent.Decide(r.View());
  EXPECT_FALSE(v.allow);
  EXPECT_EQ(v.status, 503);
  EXPECT_EQ(v.rule, kRuleNoPolicy);
  EXPECT_EQ(v.error, kErrorNoPolicy);
  EXPECT_EQ(v.active, nullptr);
  // A response decision without a bundle is the same deny.
  HttpResponse resp;
  EXPECT_EQ(agent.DecideResponse(v, r.View(), resp).status, 503);
  EXPECT_NE(v.ToJson().find("\"no_policy\""), std::string::npos);
}

TEST_F(AgentTest, SignedBundleLoadsAndDecides) {
  Agent agent(Options());
  Signed s = Sign(Compile(Policy("a", false)), "t", 1);
  ASSERT_TRUE(agent.Load("t", 1, s.bundle, s.signature, s.key_id).ok());
  ASSERT_TRUE(agent.ready());
  EXPECT_EQ(agent.active()->version, 1u);
  EXPECT_EQ(agent.active()->policy, "t");
  EXPECT_EQ(agent.active()->key_id, s.key_id);
  EXPECT_EQ(agent.active()->digest, Hex(s.bundle));
  Req ping("/ping");
  Verdict v = agent.Decide(ping.View());
  EXPECT_TRUE(v.allow);
  EXPECT_EQ(v.status, 200);
  EXPECT_EQ(v.route, "a.ping");
  EXPECT_EQ(v.bundle_version, 1u);
  Req nf("/nowhere");
  EXPECT_EQ(agent.Decide(nf.View()).status, 404);
  Req who("/who/anna");
  who.H("x-user", "bob");
  Verdict d = agent.Decide(who.View());
  EXPECT_FALSE(d.allow);
  EXPECT_EQ(d.status, 403);
  EXPECT_EQ(d.description, "not you");
}

TEST_F(AgentTest, RefusedBundlesLeaveThePreviousOneActive) {
  Agent agent(Options());
  Signed good = Sign(Compile(Policy("a", false)), "t", 1);
  ASSERT_TRUE(agent.Load("t", 1, good.bundle, good.signature, good.key_id).ok());
  Signed next = Sign(Compile(Policy("b", true)), "t", 2);

  // Unsigned.
  Status st = agent.Load("t", 2, next.bundle, "", next.key_id);
  EXPECT_EQ(st.code(), StatusCode::kPermissionDenied) << st.ToString();
  // Signed by a key the agent does not trust.
  st = agent.Load("t", 2, next.bundle, next.signature, "0123456789abcdef");
  EXPECT_EQ(st.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(st.message().find("unknown key"), std::string::npos) << st.message();
  // The signature of version 2 replayed as version 3, or for another policy.
  EXPECT_EQ(agent.Load("t", 3, next.bundle, next.signature, next.key_id).code(),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(agent.Load("u", 2, next.bundle, next.signature, next.key_id).code(),
            StatusCode::kPermissionDenied);
  // A flipped byte in the bundle.
  std::string flipped = next.bundle;
  flipped[flipped.size() / 2] ^= 1;
  EXPECT_EQ(agent.Load("t", 2, flipped, next.signature, next.key_id).code(),
            StatusCode::kPermissionDenied);
  // Validly signed garbage: the signature holds, the verifier refuses.
  Signed garbage = Sign("not a bundle at all", "t", 2);
  st = agent.Load("t", 2, garbage.bundle, garbage.signature, garbage.key_id);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.code(), StatusCode::kPermissionDenied) << st.ToString();
  // A downgrade when the caller forbids it.
  Signed old = Sign(Compile(Policy("z", true)), "t", 0 + 1);
  Signed v5 = Sign(Compile(Policy("c", false)), "t", 5);
  ASSERT_TRUE(agent.Load("t", 5, v5.bundle, v5.signature, v5.key_id).ok());
  EXPECT_EQ(agent.Load("t", 1, old.bundle, old.signature, old.key_id, false).code(),
            StatusCode::kInvalidArgument);

  EXPECT_EQ(agent.active()->version, 5u);
  Req ping("/ping");
  EXPECT_TRUE(agent.Decide(ping.View()).allow);
  // The metrics count every refusal by reason.
  EXPECT_EQ(agent.metrics().Value("vakt_agent_bundle_loads_total",
                                  "result=\"refused\",reason=\"signature\""),
            5);
  EXPECT_EQ(agent.metrics().Value("vakt_agent_bundle_loads_total",
                                  "result=\"refused\",reason=\"downgrade\""),
            1);
  EXPECT_EQ(agent.metrics().Value("vakt_agent_bundle_loads_total", "result=\"ok\",reason=\"\""),
            2);
  // The downgrade is allowed by default: the control plane rolls back so.
  EXPECT_TRUE(agent.Load("t", 1, old.bundle, old.signature, old.key_id).ok());
  EXPECT_FALSE(agent.Decide(ping.View()).allow);
}

TEST_F(AgentTest, ReplayWindowOnlyGrowsAndCanBeFixed) {
  Agent agent(Options());
  EXPECT_EQ(agent.replay_window_seconds(), 1);  // no bundle yet: nothing is accepted anyway
  Signed a = Sign(Compile(Policy("a", false)), "t", 1);
  ASSERT_TRUE(agent.Load("t", 1, a.bundle, a.signature, a.key_id).ok());
  EXPECT_EQ(agent.replay_window_seconds(), 70);
  // A bundle without fapi2 routes leaves the window as it is.
  Signed plain = Sign(Compile("package t\napi a \"/\" { route ping GET \"/ping\" {} }\n"), "t", 2);
  ASSERT_TRUE(agent.Load("t", 2, plain.bundle, plain.signature, plain.key_id).ok());
  EXPECT_EQ(agent.replay_window_seconds(), 70);
  // A fixed window is kept whatever the bundles say.
  AgentOptions o = Options();
  o.replay_window_seconds = 900;
  Agent fixed(std::move(o));
  ASSERT_TRUE(fixed.Load("t", 1, a.bundle, a.signature, a.key_id).ok());
  EXPECT_EQ(fixed.replay_window_seconds(), 900);
}

TEST_F(AgentTest, WithoutTrustedKeysOnlyUnsignedLoadsWork) {
  AgentOptions o;
  Agent agent(std::move(o));
  Signed s = Sign(Compile(Policy("a", false)), "t", 1);
  Status st = agent.Load("t", 1, s.bundle, s.signature, s.key_id);
  EXPECT_EQ(st.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(st.message().find("no trusted bundle keys"), std::string::npos);
  EXPECT_FALSE(agent.LoadUnsigned("garbage").ok());
  EXPECT_FALSE(agent.ready());
  ASSERT_TRUE(agent.LoadUnsigned(s.bundle).ok());
  EXPECT_EQ(agent.active()->version, 0u);
  EXPECT_EQ(agent.active()->policy, "");
}

TEST_F(AgentTest, FapiDecisionsUseTheAgentsReplayCacheAndRevocations) {
  Agent agent(Options());
  Signed s = Sign(Compile(Policy("a", false)), "t", 1);
  ASSERT_TRUE(agent.Load("t", 1, s.bundle, s.signature, s.key_id).ok());

  // The replay window follows the bundle: dpop_window (60 s, the default)
  // plus twice the issuer's leeway (5 s).
  EXPECT_EQ(agent.replay_window_seconds(), 70);
  std::string token = Token("anna", "jti-1");
  Req r = DpopReq("/mine/anna", token);
  Verdict v = agent.Decide(r.View());
  ASSERT_TRUE(v.allow) << v.ToJson();
  ASSERT_NE(v.token, nullptr);
  EXPECT_EQ(v.token->sub, "anna");
  EXPECT_GE(agent.replay_cache_size(), 1u);
  EXPECT_GE(agent.token_cache_size(), 1u);

  // The same proof again is a replay.
  Verdict replay = agent.Decide(r.View());
  EXPECT_EQ(replay.status, 401);
  EXPECT_EQ(replay.error, "invalid_dpop_proof");

  // Another owner: the token is valid, the rule denies.
  Req other = DpopReq("/mine/bob", token);
  EXPECT_EQ(agent.Decide(other.View()).status, 403);

  // The response is decided with the request's token.
  std::vector<HeaderField> rh = {{"x-owner", "anna"}};
  HttpResponse resp;
  resp.headers = rh;
  Verdict ok = agent.DecideResponse(v, r.View(), resp);
  EXPECT_TRUE(ok.allow) << ok.ToJson();
  std::vector<HeaderField> bad = {{"x-owner", "bob"}};
  resp.headers = bad;
  Verdict withheld = agent.DecideResponse(v, r.View(), resp);
  EXPECT_EQ(withheld.status, 502);
  EXPECT_EQ(withheld.error, "bad_response");
  // A denied request's verdict comes back as it is.
  EXPECT_EQ(agent.DecideResponse(replay, r.View(), resp).status, 401);

  // Revoke the token's jti: the next request with a fresh proof is refused.
  auto set = std::make_shared<bytecode::RevocationSet>();
  set->RevokeJti("jti-1");
  agent.SetRevocations(set, 7);
  EXPECT_EQ(agent.revocation_revision(), 7u);
  EXPECT_EQ(agent.revocation_entries(), 1u);
  Req again = DpopReq("/mine/anna", token);
  Verdict revoked = agent.Decide(again.View());
  EXPECT_EQ(revoked.status, 401) << revoked.ToJson();
  EXPECT_EQ(revoked.error, "invalid_token");
  // A subject cut-off works the same way for another token of anna's.
  agent.SetRevocations(nullptr, 8);
  EXPECT_EQ(agent.revocation_entries(), 0u);
  std::string token2 = Token("anna", "jti-2");
  Req fresh = DpopReq("/mine/anna", token2);
  EXPECT_TRUE(agent.Decide(fresh.View()).allow);
  auto subj = std::make_shared<bytecode::RevocationSet>();
  subj->RevokeSubject("anna", kNow + 10);
  agent.SetRevocations(subj, 9);
  Req after = DpopReq("/mine/anna", token2);
  EXPECT_EQ(agent.Decide(after.View()).status, 401);
}

TEST_F(AgentTest, ResponsesAreDecidedOnTheRequestsBundle) {
  Agent agent(Options());
  Signed a = Sign(Compile(Policy("a", false)), "t", 1);
  ASSERT_TRUE(agent.Load("t", 1, a.bundle, a.signature, a.key_id).ok());
  Req who("/who/anna");
  who.H("x-user", "anna");
  Verdict v = agent.Decide(who.View());
  ASSERT_TRUE(v.allow);
  // A new bundle without the `who` route arrives between request and response.
  std::string only_ping = Compile(R"(package t
api a "/" { route ping GET "/ping" {} }
)");
  Signed b = Sign(only_ping, "t", 2);
  ASSERT_TRUE(agent.Load("t", 2, b.bundle, b.signature, b.key_id).ok());
  std::vector<HeaderField> json = {{"content-type", "application/json"}};
  std::vector<HeaderField> html = {{"content-type", "text/html"}};
  HttpResponse resp;
  resp.headers = json;
  Verdict ok = agent.DecideResponse(v, who.View(), resp);
  EXPECT_TRUE(ok.allow);
  EXPECT_EQ(ok.bundle_version, 1u);
  resp.headers = html;
  Verdict bad = agent.DecideResponse(v, who.View(), resp);
  EXPECT_EQ(bad.status, 502);
  EXPECT_EQ(bad.bundle_version, 1u);
  // A new request sees the new bundle.
  EXPECT_EQ(agent.Decide(who.View()).status, 404);
}

TEST_F(AgentTest, SwapsUnderConcurrentDecisionsAreAtomic) {
  Agent agent(Options());
  Signed open = Sign(Compile(Policy("open", false)), "t", 1);
  Signed closed = Sign(Compile(Policy("closed", true)), "t", 2);
  ASSERT_TRUE(agent.Load("t", 1, open.bundle, open.signature, open.key_id).ok());
  std::atomic<bool> stop{false};
  std::atomic<int> inconsistent{0}, decided{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&] {
      Req ping("/ping");
      while (!stop.load()) {
        Verdict v = agent.Decide(ping.View());
        // Version 1 allows ping, version 2 denies it: a decision must match
        // the bundle it reports.
        bool want = v.bundle_version == 1;
        if (v.allow != want || (v.status != 200 && v.status != 403)) ++inconsistent;
        ++decided;
      }
    });
  }
  for (int i = 0; i < 200; ++i) {
    const Signed& s = (i % 2 == 0) ? closed : open;
    ASSERT_TRUE(agent.Load("t", (i % 2 == 0) ? 2 : 1, s.bundle, s.signature, s.key_id).ok());
  }
  stop = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(inconsistent.load(), 0);
  EXPECT_GT(decided.load(), 0);
  // Every decision was counted exactly once in the histogram.
  EXPECT_EQ(agent.metrics().decision_latency().count(), static_cast<uint64_t>(decided.load()));
}

class RecordingSink : public DecisionSink {
 public:
  void Record(std::string_view interface, const HttpRequest& req, const HttpResponse* response,
              const Verdict& verdict, uint64_t) override {
    std::lock_guard<std::mutex> lock(mu);
    events.push_back(std::string(interface) + " " + std::string(req.target) + " " +
                     std::to_string(verdict.status) + (response ? " response" : ""));
  }
  std::mutex mu;
  std::vector<std::string> events;
};

TEST_F(AgentTest, MetricsAndSinkSeeEveryDecision) {
  Agent agent(Options());
  RecordingSink sink;
  agent.set_decision_sink(&sink);
  Req ping("/ping");
  agent.Decide(ping.View(), "check");  // no bundle yet: 503
  Signed a = Sign(Compile(Policy("a", false)), "t", 1);
  ASSERT_TRUE(agent.Load("t", 1, a.bundle, a.signature, a.key_id).ok());
  agent.Decide(ping.View(), "forward_auth");
  agent.Decide(ping.View(), "forward_auth");
  Req who("/who/anna");
  who.H("x-user", "eve");
  Verdict denied = agent.Decide(who.View());
  Req nf("/missing");
  agent.Decide(nf.View());
  // Swap: the counts of version 1 stay in the totals.
  Signed b = Sign(Compile(Policy("b", true)), "t", 2);
  ASSERT_TRUE(agent.Load("t", 2, b.bundle, b.signature, b.key_id).ok());
  agent.Decide(ping.View());
  who.headers[1].second = "anna";
  Verdict allowed = agent.Decide(who.View());
  std::vector<HeaderField> json = {{"content-type", "application/json"}};
  HttpResponse resp;
  resp.headers = json;
  agent.DecideResponse(allowed, who.View(), resp, "embedded");

  std::string text = agent.metrics().Render(agent.active()->counters.get());
  EXPECT_NE(text.find(R"(vakt_agent_decisions_total{route="a.ping",status="200",outcome="allow"} 2)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(vakt_agent_decisions_total{route="a.ping",status="403",outcome="deny"} 1)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(vakt_agent_decisions_total{route="a.who",status="403",outcome="deny"} 1)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(vakt_agent_decisions_total{route="a.who",status="200",outcome="allow"} 2)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(vakt_agent_decisions_total{route="",status="404",outcome="deny"} 1)"),
            std::string::npos);
  EXPECT_NE(text.find("vakt_agent_no_policy_denials_total 1"), std::string::npos);
  EXPECT_NE(text.find("vakt_agent_decision_duration_seconds_count 8"), std::string::npos) << text;
  EXPECT_NE(text.find("vakt_agent_decision_duration_seconds_bucket{le=\"+Inf\"} 8"),
            std::string::npos);
  EXPECT_NE(text.find("vakt_agent_bundle_version 2"), std::string::npos);

  std::lock_guard<std::mutex> lock(sink.mu);
  ASSERT_EQ(sink.events.size(), 8u);
  EXPECT_EQ(sink.events[0], "check /ping 503");
  EXPECT_EQ(sink.events[1], "forward_auth /ping 200");
  EXPECT_EQ(sink.events[3], "embedded /who/anna 403");
  EXPECT_EQ(sink.events[7], "embedded /who/anna 200 response");
  agent.set_decision_sink(nullptr);
}

TEST(AgentMetrics, LabelsAreEscapedAndUnknownStatusesBucketed) {
  EXPECT_EQ(EscapeLabel("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  RouteCounters c({"r\"1", "r2"});
  EXPECT_EQ(c.RouteIndex("r2"), 2u);
  EXPECT_EQ(c.RouteIndex("nope"), RouteCounters::kNoRoute);
  c.Count(c.RouteIndex("r\"1"), 418);
  c.Count(99, 200);  // out of range: counted under route ""
  Metrics m;
  std::string text = m.Render(&c);
  EXPECT_NE(text.find(R"(route="r\"1",status="other",outcome="deny"} 1)"), std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(route="",status="200",outcome="allow"} 1)"), std::string::npos);
  m.Add("bad name!", "", 2);
  EXPECT_NE(m.Render(nullptr).find("bad_name_ 2"), std::string::npos);
}

}  // namespace
}  // namespace vakt::agent
