// Decision logs on the agent (agent/decision_log.{h,cc}, decision_log_proto.cc):
// every always-masked header and query parameter, configured masks, real
// tokens and DPoP proofs never reaching an event (JSON or protobuf), field
// bounds and sanitising, the ring's bound and drop count, batch order and
// size limits, concurrent Record while batches are taken (no loss beyond
// the counted drops), and the conversion to the control-plane message.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "agent/decision_log.h"
#include "compiler/token_tool.h"
#include "vakt/v1/agent.pb.h"

namespace vakt::agent {
namespace {

using bytecode::HeaderField;
using bytecode::HttpRequest;
using bytecode::HttpResponse;

constexpr int64_t kNowMs = 1'700'000'000'123;
int64_t FixedClock() { return kNowMs; }

DecisionLogOptions Opts() {
  DecisionLogOptions o;
  o.clock_ms = &FixedClock;
  return o;
}

Verdict Deny(std::string route = "get_patient") {
  Verdict v;
  v.allow = false;
  v.status = 403;
  v.error = "access_denied";
  v.description = "patients may only read their own record";
  v.rule = "records.get_patient.owner";
  v.route = std::move(route);
  v.bundle_version = 7;
  return v;
}

Verdict Allow() {
  Verdict v;
  v.allow = true;
  v.status = 200;
  v.route = "get_patient";
  v.bundle_version = 7;
  return v;
}

HttpRequest Req(std::string_view target, const std::vector<HeaderField>& headers) {
  HttpRequest r;
  r.method = "GET";
  r.target = target;
  r.headers = headers;
  return r;
}

std::string Header(const DecisionEvent& e, std::string_view name) {
  for (const auto& [k, v] : e.headers) {
    if (k == name) return v;
  }
  return "<absent>";
}

TEST(DecisionLog, EventHoldsTheDecision) {
  DecisionLog log(Opts());
  std::vector<HeaderField> h = {{"Host", "api.example"}};
  auto token = std::make_shared<bytecode::VerifiedToken>();
  token->sub = "anna";
  token->client_id = "portal";
  token->jti = "j-1";
  Verdict v = Deny();
  v.token = token;
  log.Record("forward_auth", Req("/v1/patients/p-2?x=1", h), nullptr, v, 1234);
  ASSERT_EQ(log.size(), 1u);
  std::vector<DecisionEvent> b = log.TakeBatch(10);
  ASSERT_EQ(b.size(), 1u);
  const DecisionEvent& e = b[0];
  EXPECT_EQ(e.time_unix_ms, kNowMs);
  EXPECT_EQ(e.interface, "forward_auth");
  EXPECT_EQ(e.method, "GET");
  EXPECT_EQ(e.path, "/v1/patients/p-2");
  EXPECT_EQ(e.query, "");  // queries are not logged by default
  EXPECT_EQ(e.route, "get_patient");
  EXPECT_FALSE(e.allow);
  EXPECT_EQ(e.status, 403u);
  EXPECT_EQ(e.rule, "records.get_patient.owner");
  EXPECT_EQ(e.error, "access_denied");
  EXPECT_EQ(e.bundle_version, 7u);
  EXPECT_EQ(e.latency_nanos, 1234u);
  EXPECT_EQ(e.sub, "anna");
  EXPECT_EQ(e.client_id, "portal");
  EXPECT_EQ(e.jti, "j-1");
  EXPECT_FALSE(e.response);
  EXPECT_TRUE(e.headers.empty());  // no header is logged unless configured
  EXPECT_EQ(log.recorded(), 1u);
  EXPECT_EQ(log.dropped(), 0u);
}

TEST(DecisionLog, NoTokenLeavesIdentifiersEmpty) {
  DecisionLog log(Opts());
  DecisionEvent e = log.MakeEvent("check", Req("/a", {}), nullptr, Allow(), 1);
  EXPECT_TRUE(e.allow);
  EXPECT_EQ(e.status, 200u);
  EXPECT_EQ(e.sub, "");
  EXPECT_EQ(e.client_id, "");
  EXPECT_EQ(e.jti, "");
}

TEST(DecisionLog, ResponseDecisionsCarryTheUpstreamStatus) {
  DecisionLog log(Opts());
  HttpResponse resp;
  resp.status = 200;
  Verdict v = Deny();
  v.status = 502;
  DecisionEvent e = log.MakeEvent("ext_authz", Req("/a", {}), &resp, v, 1);
  EXPECT_TRUE(e.response);
  EXPECT_EQ(e.upstream_status, 200u);
  EXPECT_EQ(e.status, 502u);
}

TEST(DecisionLog, EveryAlwaysMaskedHeaderIsMasked) {
  DecisionLogOptions o = Opts();
  o.log_headers = {"authorization", "proxy-authorization", "dpop",
                   "cookie",        "set-cookie",          "x-request-id"};
  DecisionLog log(o);
  std::vector<HeaderField> h = {{"AUTHORIZATION", "Bearer secret-a"},
                                {"Proxy-Authorization", "Basic c2VjcmV0LWI="},
                                {"DPoP", "secret-c"},
                                {"Cookie", "session=secret-d"},
                                {"Set-Cookie", "id=secret-e"},
                                {"X-Request-Id", "req-1"}};
  DecisionEvent e = log.MakeEvent("check", Req("/a", h), nullptr, Deny(), 1);
  EXPECT_EQ(Header(e, "authorization"), "Bearer ***");
  EXPECT_EQ(Header(e, "proxy-authorization"), "Basic ***");
  EXPECT_EQ(Header(e, "dpop"), "***");
  EXPECT_EQ(Header(e, "cookie"), "***");
  EXPECT_EQ(Header(e, "set-cookie"), "***");
  EXPECT_EQ(Header(e, "x-request-id"), "req-1");
  const std::string json = e.ToJson();
  for (const char* secret : {"secret-a", "c2VjcmV0LWI=", "secret-c", "secret-d", "secret-e"}) {
    EXPECT_EQ(json.find(secret), std::string::npos) << secret;
  }
  for (const char* n : {"authorization", "Proxy-Authorization", "DPOP", "cookie", "set-cookie"}) {
    EXPECT_TRUE(IsAlwaysMaskedHeader(n)) << n;
  }
  EXPECT_FALSE(IsAlwaysMaskedHeader("x-request-id"));
  EXPECT_FALSE(IsAlwaysMaskedHeader("authorizationx"));
}

TEST(DecisionLog, AuthorizationWithoutASchemeWordIsMaskedWhole) {
  DecisionLogOptions o = Opts();
  o.log_headers = {"authorization"};
  DecisionLog log(o);
  for (const char* value : {"secret", "a1 secret", " secret", "verylongschemeword0 secret"}) {
    std::vector<HeaderField> h = {{"authorization", value}};
    DecisionEvent e = log.MakeEvent("check", Req("/a", h), nullptr, Deny(), 1);
    EXPECT_EQ(Header(e, "authorization"), "***") << value;
  }
}

TEST(DecisionLog, ConfiguredMasksAndLoggedHeaders) {
  DecisionLogOptions o = Opts();
  o.log_headers = {"X-Api-Key", "x-tenant", "user-agent"};
  o.mask_headers = {"X-API-KEY"};
  DecisionLog log(o);
  std::vector<HeaderField> h = {
      {"x-api-key", "k-secret"}, {"X-Tenant", "t1"}, {"x-other", "not-logged"}, {"X-Tenant", "t2"}};
  DecisionEvent e = log.MakeEvent("check", Req("/a", h), nullptr, Deny(), 1);
  ASSERT_EQ(e.headers.size(), 3u);
  EXPECT_EQ(e.headers[0], (std::pair<std::string, std::string>{"x-api-key", "***"}));
  EXPECT_EQ(e.headers[1], (std::pair<std::string, std::string>{"x-tenant", "t1"}));
  EXPECT_EQ(e.headers[2], (std::pair<std::string, std::string>{"x-tenant", "t2"}));
  EXPECT_EQ(e.ToJson().find("not-logged"), std::string::npos);
  EXPECT_EQ(e.ToJson().find("k-secret"), std::string::npos);
}

TEST(DecisionLog, LoggedHeadersAreBounded) {
  DecisionLogOptions o = Opts();
  o.log_headers = {"x-a"};
  DecisionLog log(o);
  std::vector<HeaderField> h(40, HeaderField{"x-a", std::string_view("v")});
  std::string longv(1000, 'z');
  h[0].value = longv;
  DecisionEvent e = log.MakeEvent("check", Req("/a", h), nullptr, Deny(), 1);
  EXPECT_EQ(e.headers.size(), kMaxLoggedHeaders);
  EXPECT_EQ(e.headers[0].second.size(), kMaxLogHeaderValueBytes);
  EXPECT_TRUE(e.headers[0].second.ends_with("..."));
}

TEST(DecisionLog, QueryMasking) {
  const std::vector<std::string> none;
  for (const char* p : {"access_token", "id_token", "refresh_token", "client_secret",
                        "code_verifier", "password"}) {
    EXPECT_TRUE(IsAlwaysMaskedQueryParam(p)) << p;
    EXPECT_EQ(MaskQuery(std::string(p) + "=s3cret&a=1", none), std::string(p) + "=***&a=1") << p;
  }
  EXPECT_FALSE(IsAlwaysMaskedQueryParam("page"));
  // Case, percent-encoding and '+' in names do not hide a masked parameter.
  EXPECT_EQ(MaskQuery("ACCESS_TOKEN=s3cret", none), "ACCESS_TOKEN=***");
  EXPECT_EQ(MaskQuery("access%5Ftoken=s3cret", none), "access%5Ftoken=***");
  EXPECT_EQ(MaskQuery("access%5ftoken=s3cret", none), "access%5ftoken=***");
  // A name without a value, empty pairs and plain parameters stay.
  EXPECT_EQ(MaskQuery("access_token&&page=2&", none), "access_token=***&page=2");
  EXPECT_EQ(MaskQuery("page=2&sort=asc", none), "page=2&sort=asc");
  // ';' separates parameters too.
  EXPECT_EQ(MaskQuery("page=1;access_token=s3cret", none), "page=1;access_token=***");
  EXPECT_EQ(MaskQuery("a=1&b=2;c=3", none), "a=1&b=2;c=3");
  // Configured names.
  EXPECT_EQ(MaskQuery("api_key=k&page=2", {"api_key"}), "api_key=***&page=2");
  EXPECT_EQ(MaskQuery("api_key=k&page=2", none), "api_key=k&page=2");
  // Bounded and sanitised.
  std::string big(5000, 'a');
  std::string m = MaskQuery("x=" + big, none);
  EXPECT_EQ(m.size(), kMaxLogQueryBytes);
  EXPECT_EQ(MaskQuery("x=\x01\xff", none), "x=??");

  DecisionLogOptions o = Opts();
  o.log_query = true;
  o.mask_query_params = {"Session"};
  DecisionLog log(o);
  DecisionEvent e =
      log.MakeEvent("check", Req("/a?access_token=tok&session=s1&page=3", {}), nullptr, Deny(), 1);
  EXPECT_EQ(e.path, "/a");
  EXPECT_EQ(e.query, "access_token=***&session=***&page=3");
}

// Random queries: whatever surrounds them, the values of masked parameters
// (any case, percent-encoded names, either separator) never reach the output,
// and the output stays within its bound and printable.
TEST(DecisionLog, QueryMaskingRandomised) {
  std::mt19937 rng(20261129);
  const std::vector<std::string> names = {"access_token", "ACCESS_TOKEN", "access%5Ftoken",
                                          "Id_Token",     "password",     "client%5fsecret",
                                          "api_key"};
  const std::vector<std::string> plain = {"page", "q", "", "x%41", "a+b", "=", "%", "%4"};
  for (int round = 0; round < 2000; ++round) {
    std::string q;
    const int pairs = static_cast<int>(rng() % 12);
    for (int i = 0; i < pairs; ++i) {
      if (i) q += (rng() % 2) ? "&" : ";";
      if (rng() % 3 == 0) {
        q += names[rng() % names.size()] + "=SECRET" + std::to_string(rng() % 1000);
      } else {
        q += plain[rng() % plain.size()];
        if (rng() % 2) q += "=v" + std::string(rng() % 40, static_cast<char>(0x20 + rng() % 95));
      }
    }
    std::string m = MaskQuery(q, {"api_key"});
    ASSERT_EQ(m.find("SECRET"), std::string::npos) << q << " -> " << m;
    ASSERT_LE(m.size(), kMaxLogQueryBytes);
    for (char c : m) ASSERT_TRUE(c >= 0x20 && c < 0x7f) << q;
  }
}

TEST(DecisionLog, FieldsAreSanitisedAndBounded) {
  DecisionLog log(Opts());
  std::string path = "/a\x01\x7f\xc3\xa9" + std::string(2000, 'p');
  Verdict v = Deny(std::string(500, 'r'));
  v.rule = "rule\nwith newline";
  DecisionEvent e = log.MakeEvent("check\t", Req(path, {}), nullptr, v, 1);
  EXPECT_EQ(e.path.size(), kMaxLogPathBytes);
  EXPECT_TRUE(e.path.starts_with("/a????pp"));
  EXPECT_TRUE(e.path.ends_with("..."));
  EXPECT_EQ(e.route.size(), kMaxLogNameBytes);
  EXPECT_EQ(e.rule, "rule?with newline");
  EXPECT_EQ(e.interface, "check?");
  EXPECT_LE(e.EncodedSizeBound(), kMaxEventBytes);
  for (char c : e.ToJson()) {
    EXPECT_TRUE(c >= 0x20 && c < 0x7f) << static_cast<int>(c);
  }
}

// A real access token and DPoP proof (compiler/token_tool.h), sent in the
// headers and the query: neither the token, the proof nor any of their
// signature parts appears in the event's JSON or protobuf.
TEST(DecisionLog, RealTokenAndProofNeverReachAnEvent) {
  auto key = compiler::GenerateKey(bytecode::JwsAlg::kES256, "as-key");
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  auto holder = compiler::GenerateKey(bytecode::JwsAlg::kES256);
  ASSERT_TRUE(holder.ok());
  compiler::TokenOptions to;
  to.now = kNowMs / 1000;
  auto token = compiler::MintAccessToken(
      *key, R"({"iss":"https://as.example","sub":"anna","client_id":"portal","aud":"api"})", to);
  ASSERT_TRUE(token.ok()) << token.status().ToString();
  compiler::ProofOptions po;
  po.method = "GET";
  po.url = "https://api.example/v1/patients/p-1";
  po.access_token = *token;
  po.now = kNowMs / 1000;
  auto proof = compiler::MintDpopProof(*holder, po);
  ASSERT_TRUE(proof.ok()) << proof.status().ToString();

  DecisionLogOptions o = Opts();
  o.log_headers = {"authorization", "dpop", "cookie", "x-request-id"};
  o.log_query = true;
  DecisionLog log(o);
  const std::string auth = "DPoP " + *token;
  const std::string cookie = "at=" + *token;
  const std::string target = "/v1/patients/p-1?access_token=" + *token + "&page=1";
  std::vector<HeaderField> h = {
      {"Authorization", auth}, {"DPoP", *proof}, {"Cookie", cookie}, {"X-Request-Id", "r-9"}};
  auto verified = std::make_shared<bytecode::VerifiedToken>();
  verified->sub = "anna";
  verified->client_id = "portal";
  verified->jti = "jti-77";
  verified->claims_json = "{\"secret\":\"claims are not logged\"}";
  Verdict v = Allow();
  v.token = verified;
  log.Record("forward_auth", Req(target, h), nullptr, v, 10);
  vakt::v1::AgentMessage msg;
  ASSERT_TRUE(FillBatch(log, 10, &msg));
  ASSERT_EQ(msg.decisions().events_size(), 1);
  const vakt::v1::DecisionEvent& pe = msg.decisions().events(0);
  EXPECT_EQ(pe.sub(), "anna");
  EXPECT_EQ(pe.jti(), "jti-77");
  EXPECT_EQ(pe.query(), "access_token=***&page=1");
  const std::string wire = msg.SerializeAsString();
  const std::string text = msg.DebugString();

  log.Record("forward_auth", Req(target, h), nullptr, v, 10);
  std::vector<DecisionEvent> again = log.TakeBatch(1);
  ASSERT_EQ(again.size(), 1u);
  const std::string json = again[0].ToJson();
  EXPECT_EQ(Header(again[0], "authorization"), "DPoP ***");
  EXPECT_EQ(Header(again[0], "dpop"), "***");
  EXPECT_EQ(Header(again[0], "cookie"), "***");
  EXPECT_EQ(Header(again[0], "x-request-id"), "r-9");

  std::vector<std::string> secrets = {*token, *proof};
  for (const std::string& jws : {*token, *proof}) {  // each part on its own
    size_t a = jws.find('.'), b = jws.rfind('.');
    secrets.push_back(jws.substr(0, a));
    secrets.push_back(jws.substr(a + 1, b - a - 1));
    secrets.push_back(jws.substr(b + 1));
  }
  secrets.push_back("claims are not logged");
  for (const std::string& s : secrets) {
    ASSERT_GT(s.size(), 10u);
    EXPECT_EQ(wire.find(s), std::string::npos) << s;
    EXPECT_EQ(text.find(s), std::string::npos) << s;
    EXPECT_EQ(json.find(s), std::string::npos) << s;
  }
}

TEST(DecisionLog, RingDropsWhenFullAndCounts) {
  DecisionLogOptions o = Opts();
  o.capacity = 3;
  DecisionLog log(o);
  for (int i = 0; i < 5; ++i) {
    std::string path = "/" + std::to_string(i);
    log.Record("check", Req(path, {}), nullptr, Deny(), 1);
  }
  EXPECT_EQ(log.capacity(), 3u);
  EXPECT_EQ(log.size(), 3u);
  EXPECT_EQ(log.recorded(), 3u);
  EXPECT_EQ(log.dropped(), 2u);
  // Oldest first; the newest were the ones dropped.
  std::vector<DecisionEvent> b = log.TakeBatch(2);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].path, "/0");
  EXPECT_EQ(b[1].path, "/1");
  log.Record("check", Req("/5", {}), nullptr, Deny(), 1);
  log.Record("check", Req("/6", {}), nullptr, Deny(), 1);
  EXPECT_EQ(log.dropped(), 2u);
  log.Record("check", Req("/7", {}), nullptr, Deny(), 1);
  EXPECT_EQ(log.dropped(), 3u);
  b = log.TakeBatch(100);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0].path, "/2");
  EXPECT_EQ(b[1].path, "/5");
  EXPECT_EQ(b[2].path, "/6");
  EXPECT_TRUE(log.TakeBatch(100).empty());
  EXPECT_EQ(log.size(), 0u);
  log.MarkSent(5);
  log.MarkLost(1);
  EXPECT_EQ(log.sent(), 5u);
  EXPECT_EQ(log.dropped(), 4u);
}

TEST(DecisionLog, AllowsCanBeSkipped) {
  DecisionLogOptions o = Opts();
  o.log_allows = false;
  DecisionLog log(o);
  log.Record("check", Req("/a", {}), nullptr, Allow(), 1);
  log.Record("check", Req("/b", {}), nullptr, Deny(), 1);
  EXPECT_EQ(log.skipped(), 1u);
  EXPECT_EQ(log.recorded(), 1u);
  std::vector<DecisionEvent> b = log.TakeBatch(10);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].path, "/b");
}

TEST(DecisionLog, BatchSizeAndByteLimits) {
  DecisionLogOptions o = Opts();
  o.max_batch = 4;
  DecisionLog log(o);
  for (int i = 0; i < 10; ++i) log.Record("check", Req("/x", {}), nullptr, Deny(), 1);
  EXPECT_EQ(log.TakeBatch(100).size(), 4u);  // max_batch caps
  EXPECT_EQ(log.TakeBatch(2).size(), 2u);
  EXPECT_EQ(log.TakeBatch(0).size(), 0u);
  // A byte budget smaller than one event still yields one event.
  EXPECT_EQ(log.TakeBatch(10, 1).size(), 1u);
  const size_t one =
      DecisionLog(Opts()).MakeEvent("check", Req("/x", {}), nullptr, Deny(), 1).EncodedSizeBound();
  EXPECT_EQ(log.TakeBatch(10, 2 * one).size(), 2u);
  EXPECT_EQ(log.size(), 1u);
  // An event pushed by hand over the size bound is dropped.
  DecisionEvent huge;
  huge.path = std::string(kMaxEventBytes, 'x');
  EXPECT_FALSE(log.Push(std::move(huge)));
  EXPECT_EQ(log.dropped(), 1u);
}

TEST(DecisionLog, OptionsAreChecked) {
  EXPECT_TRUE(CheckDecisionLogOptions(DecisionLogOptions{}).ok());
  auto bad = [](auto mutate) {
    DecisionLogOptions o;
    mutate(o);
    return !CheckDecisionLogOptions(o).ok();
  };
  EXPECT_TRUE(bad([](DecisionLogOptions& o) { o.capacity = 0; }));
  EXPECT_TRUE(bad([](DecisionLogOptions& o) { o.capacity = kMaxLogCapacity + 1; }));
  EXPECT_TRUE(bad([](DecisionLogOptions& o) { o.max_batch = 0; }));
  EXPECT_TRUE(bad([](DecisionLogOptions& o) { o.max_batch = kMaxLogBatch + 1; }));
  EXPECT_TRUE(
      bad([](DecisionLogOptions& o) { o.log_headers.assign(kMaxLoggedHeaders + 1, "x-a"); }));
  EXPECT_TRUE(bad([](DecisionLogOptions& o) { o.mask_headers.assign(kMaxMaskNames + 1, "x"); }));
  EXPECT_TRUE(bad([](DecisionLogOptions& o) { o.mask_query_params = {""}; }));
  EXPECT_TRUE(bad([](DecisionLogOptions& o) { o.log_headers = {"x a"}; }));
  EXPECT_TRUE(bad([](DecisionLogOptions& o) { o.log_headers = {std::string(200, 'x')}; }));
  EXPECT_TRUE(bad([](DecisionLogOptions& o) { o.mask_headers = {"x\x01"}; }));
  // Out-of-range options are clamped by the constructor.
  DecisionLogOptions o;
  o.capacity = 0;
  o.max_batch = 1u << 30;
  DecisionLog log(o);
  EXPECT_EQ(log.capacity(), 1u);
  EXPECT_EQ(log.options().max_batch, kMaxLogBatch);
}

// Several threads record while one takes batches: every event recorded is
// taken exactly once, in each thread's order, and recorded + dropped is
// what was offered.
TEST(DecisionLog, ConcurrentRecordAndTake) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 5000;
  DecisionLogOptions o = Opts();
  o.capacity = 256;
  o.max_batch = 50;
  DecisionLog log(o);
  std::atomic<int> done{0};
  std::vector<std::vector<int>> seen(kThreads);
  size_t taken = 0;
  std::thread consumer([&] {
    while (true) {
      const bool finished = done.load() == kThreads;
      std::vector<DecisionEvent> b = log.TakeBatch(50);
      for (const DecisionEvent& e : b) {
        size_t slash = e.path.find('/', 1);
        int t = std::stoi(e.path.substr(1, slash - 1));
        seen[t].push_back(std::stoi(e.path.substr(slash + 1)));
      }
      taken += b.size();
      if (b.empty()) {
        if (finished) break;
        std::this_thread::yield();
      }
    }
  });
  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t) {
    producers.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string path = "/" + std::to_string(t) + "/" + std::to_string(i);
        log.Record("check", Req(path, {}), nullptr, Deny(), 1);
      }
      done.fetch_add(1);
    });
  }
  for (auto& p : producers) p.join();
  consumer.join();
  EXPECT_EQ(log.recorded() + log.dropped(), uint64_t{kThreads} * kPerThread);
  EXPECT_EQ(taken, log.recorded());
  EXPECT_EQ(log.size(), 0u);
  for (int t = 0; t < kThreads; ++t) {
    for (size_t i = 1; i < seen[t].size(); ++i) {
      ASSERT_LT(seen[t][i - 1], seen[t][i]) << "thread " << t;
    }
  }
}

TEST(DecisionLogProto, FillBatchConvertsEveryField) {
  DecisionLogOptions o = Opts();
  o.log_headers = {"x-request-id"};
  o.log_query = true;
  DecisionLog log(o);
  vakt::v1::AgentMessage msg;
  EXPECT_FALSE(FillBatch(log, 10, &msg));
  EXPECT_EQ(msg.kind_case(), vakt::v1::AgentMessage::KIND_NOT_SET);

  auto token = std::make_shared<bytecode::VerifiedToken>();
  token->sub = "anna";
  token->client_id = "portal";
  token->jti = "j-1";
  Verdict v = Deny();
  v.token = token;
  std::vector<HeaderField> h = {{"X-Request-Id", "r-1"}};
  HttpResponse resp;
  resp.status = 201;
  log.Record("ext_authz", Req("/v1/p?page=2", h), &resp, v, 99);
  ASSERT_TRUE(FillBatch(log, 10, &msg));
  ASSERT_EQ(msg.kind_case(), vakt::v1::AgentMessage::kDecisions);
  ASSERT_EQ(msg.decisions().events_size(), 1);
  const vakt::v1::DecisionEvent& e = msg.decisions().events(0);
  EXPECT_EQ(e.time_unix_ms(), kNowMs);
  EXPECT_EQ(e.interface(), "ext_authz");
  EXPECT_EQ(e.method(), "GET");
  EXPECT_EQ(e.path(), "/v1/p");
  EXPECT_EQ(e.query(), "page=2");
  EXPECT_EQ(e.route(), "get_patient");
  EXPECT_FALSE(e.allow());
  EXPECT_EQ(e.status(), 403u);
  EXPECT_EQ(e.rule(), "records.get_patient.owner");
  EXPECT_EQ(e.error(), "access_denied");
  EXPECT_EQ(e.bundle_version(), 7u);
  EXPECT_EQ(e.latency_nanos(), 99u);
  EXPECT_EQ(e.sub(), "anna");
  EXPECT_EQ(e.client_id(), "portal");
  EXPECT_EQ(e.jti(), "j-1");
  EXPECT_TRUE(e.response());
  EXPECT_EQ(e.upstream_status(), 201u);
  ASSERT_EQ(e.headers_size(), 1);
  EXPECT_EQ(e.headers(0).name(), "x-request-id");
  EXPECT_EQ(e.headers(0).value(), "r-1");
  EXPECT_EQ(msg.decisions().dropped_total(), 0u);
  EXPECT_FALSE(FillBatch(log, 10, &msg));  // drained; msg kept as it was
  EXPECT_EQ(msg.decisions().events_size(), 1);
}

TEST(DecisionLogProto, BatchesStayUnderTheWireLimit) {
  DecisionLogOptions o = Opts();
  o.capacity = 2000;
  o.max_batch = kMaxLogBatch;
  o.log_headers = {"x-a"};
  DecisionLog log(o);
  std::string path = "/" + std::string(3000, 'p');
  std::string val(3000, 'v');
  std::vector<HeaderField> h(20, HeaderField{"x-a", val});
  for (int i = 0; i < 200; ++i) log.Record("check", Req(path, h), nullptr, Deny(), 1);
  EXPECT_EQ(log.dropped(), 0u);
  size_t events = 0;
  vakt::v1::AgentMessage msg;
  while (FillBatch(log, kMaxLogBatch, &msg)) {
    EXPECT_LE(msg.ByteSizeLong(), kMaxBatchWireBytes);
    EXPECT_GT(msg.decisions().events_size(), 0);
    events += static_cast<size_t>(msg.decisions().events_size());
  }
  EXPECT_EQ(events, 200u);
  // The drop total travels with each batch.
  DecisionLogOptions small = Opts();
  small.capacity = 1;
  DecisionLog full(small);
  full.Record("check", Req("/a", {}), nullptr, Deny(), 1);
  full.Record("check", Req("/b", {}), nullptr, Deny(), 1);
  ASSERT_TRUE(FillBatch(full, 10, &msg));
  EXPECT_EQ(msg.decisions().dropped_total(), 1u);
}

}  // namespace
}  // namespace vakt::agent
