// Decision logs end to end, in process over real gRPC on loopback
// (tests/cp_harness.h): an agent's DecisionLog -> FillBatch -> the
// AgentService stream -> the control plane's bounded DecisionStore ->
// AdminService.ListDecisions (filters, newest first, agent id from the
// stream) and `vakt decisions`. Also the stream bounds (decisions before
// the Hello, oversized batches, the decision rate, field bounds; none ends
// a well-behaved stream), the store's own bounds, and the viewer role.
// Covers controlplane/decisions.cc, the decision parts of agent_server.cc,
// fleet.cc, admin_server.cc and admin_cli.cc.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "agent/decision_log.h"
#include "tests/cp_harness.h"

namespace vakt::controlplane::testing {
namespace {

namespace pb = vakt::v1;

pb::DecisionEvent Event(const std::string& path, bool allow, const std::string& route = "r",
                        int64_t time_ms = 1000) {
  pb::DecisionEvent e;
  e.set_time_unix_ms(time_ms);
  e.set_interface("check");
  e.set_method("GET");
  e.set_path(path);
  e.set_route(route);
  e.set_allow(allow);
  e.set_status(allow ? 200 : 403);
  if (!allow) e.set_error("access_denied");
  return e;
}

pb::AgentMessage Batch(const std::vector<pb::DecisionEvent>& events, uint64_t dropped = 0) {
  pb::AgentMessage m;
  for (const auto& e : events) *m.mutable_decisions()->add_events() = e;
  m.mutable_decisions()->set_dropped_total(dropped);
  return m;
}

grpc::Status List(Server& s, const pb::ListDecisionsRequest& q, pb::ListDecisionsResponse* r,
                  const std::string& token) {
  auto stub = s.Admin();
  grpc::ClientContext ctx;
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  return stub->ListDecisions(&ctx, q, r);
}

pb::ListDecisionsResponse ListAll(Server& s, pb::ListDecisionsRequest q = {}) {
  pb::ListDecisionsResponse r;
  grpc::Status st = List(s, q, &r, s.admin_token());
  EXPECT_TRUE(st.ok()) << st.error_message();
  return r;
}

TEST(Decisions, AgentBufferToAdminApi) {
  Server s;
  FakeAgent a(s);
  ASSERT_TRUE(a.Hello("agent-1"));
  ASSERT_TRUE(a.Next(pb::ServerMessage::kNotice));  // the Hello was processed

  agent::DecisionLogOptions o;
  o.log_headers = {"authorization", "x-request-id"};
  agent::DecisionLog log(o);
  std::vector<bytecode::HeaderField> h = {{"Authorization", "DPoP eyJsecret.token.value"},
                                          {"X-Request-Id", "r-1"}};
  auto token = std::make_shared<bytecode::VerifiedToken>();
  token->sub = "anna";
  token->client_id = "portal";
  token->jti = "j-1";
  for (int i = 0; i < 3; ++i) {
    agent::Verdict v;
    v.allow = i != 1;
    v.status = v.allow ? 200 : 403;
    v.route = "get_patient";
    v.rule = v.allow ? "" : "records.get_patient.owner";
    v.error = v.allow ? "" : "access_denied";
    v.bundle_version = 3;
    v.token = token;
    bytecode::HttpRequest req;
    req.method = "GET";
    std::string target = "/v1/patients/p-" + std::to_string(i) + "?access_token=x";
    req.target = target;
    req.headers = h;
    log.Record("forward_auth", req, nullptr, v, 500);
  }
  pb::AgentMessage m;
  ASSERT_TRUE(agent::FillBatch(log, 100, &m));
  ASSERT_TRUE(a.Send(m));
  ASSERT_TRUE(Eventually([&] { return s.agent_server().stats().decision_events == 3; }));

  pb::ListDecisionsResponse r = ListAll(s);
  ASSERT_EQ(r.decisions_size(), 3);
  EXPECT_EQ(r.stored(), 3u);
  EXPECT_EQ(r.received_total(), 3u);
  // Newest first, tagged with the stream's agent.
  EXPECT_EQ(r.decisions(0).event().path(), "/v1/patients/p-2");
  EXPECT_EQ(r.decisions(2).event().path(), "/v1/patients/p-0");
  EXPECT_GT(r.decisions(0).seq(), r.decisions(1).seq());
  for (const auto& d : r.decisions()) {
    EXPECT_EQ(d.agent_id(), "agent-1");
    EXPECT_GT(d.received_unix_ms(), 0);
    EXPECT_EQ(d.event().sub(), "anna");
    EXPECT_EQ(d.event().client_id(), "portal");
    EXPECT_EQ(d.event().jti(), "j-1");
    EXPECT_EQ(d.event().interface(), "forward_auth");
    EXPECT_EQ(d.event().query(), "");
    ASSERT_EQ(d.event().headers_size(), 2);
    EXPECT_EQ(d.event().headers(0).value(), "DPoP ***");
    EXPECT_EQ(d.event().headers(1).value(), "r-1");
    EXPECT_EQ(d.SerializeAsString().find("eyJsecret"), std::string::npos);
  }
  EXPECT_FALSE(r.decisions(1).event().allow());
  EXPECT_EQ(r.decisions(1).event().rule(), "records.get_patient.owner");
}

TEST(Decisions, FiltersAndLimit) {
  Server s;
  FakeAgent a(s), b(s);
  ASSERT_TRUE(a.Hello("agent-a"));
  ASSERT_TRUE(b.Hello("agent-b"));
  ASSERT_TRUE(a.Next(pb::ServerMessage::kNotice));
  ASSERT_TRUE(b.Next(pb::ServerMessage::kNotice));
  ASSERT_TRUE(a.Send(Batch({Event("/a1", true, "r1", 1000), Event("/a2", false, "r2", 2000),
                            Event("/a3", false, "r1", 3000)})));
  ASSERT_TRUE(Eventually([&] { return s.agent_server().stats().decision_events == 3; }));
  ASSERT_TRUE(b.Send(Batch({Event("/b1", true, "r1", 4000)}, 7)));
  ASSERT_TRUE(Eventually([&] { return s.agent_server().stats().decision_events == 4; }));

  auto paths = [&](pb::ListDecisionsRequest q) {
    std::vector<std::string> out;
    pb::ListDecisionsResponse r = ListAll(s, q);
    for (const auto& d : r.decisions()) out.push_back(d.event().path());
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(paths({}), (V{"/b1", "/a3", "/a2", "/a1"}));
  pb::ListDecisionsRequest q;
  q.set_agent_id("agent-a");
  EXPECT_EQ(paths(q), (V{"/a3", "/a2", "/a1"}));
  q.set_decision("deny");
  EXPECT_EQ(paths(q), (V{"/a3", "/a2"}));
  q.set_route("r1");
  EXPECT_EQ(paths(q), (V{"/a3"}));
  q = {};
  q.set_decision("allow");
  EXPECT_EQ(paths(q), (V{"/b1", "/a1"}));
  q = {};
  q.set_since_unix_ms(2000);
  EXPECT_EQ(paths(q), (V{"/b1", "/a3", "/a2"}));
  q = {};
  q.set_limit(2);
  EXPECT_EQ(paths(q), (V{"/b1", "/a3"}));
  q = {};
  q.set_agent_id("agent-none");
  EXPECT_TRUE(paths(q).empty());
  EXPECT_EQ(ListAll(s).agent_dropped_total(), 7u);

  // Bad filters.
  pb::ListDecisionsResponse r;
  q = {};
  q.set_decision("maybe");
  EXPECT_EQ(List(s, q, &r, s.admin_token()).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  q = {};
  q.set_limit(1001);
  EXPECT_EQ(List(s, q, &r, s.admin_token()).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  q = {};
  q.set_route(std::string(200, 'r'));
  EXPECT_EQ(List(s, q, &r, s.admin_token()).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST(Decisions, BeforeHelloEndsTheStream) {
  Server s;
  FakeAgent a(s);
  ASSERT_TRUE(a.Send(Batch({Event("/x", true)})));
  EXPECT_EQ(a.Finish().error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(ListAll(s).stored(), 0u);
}

TEST(Decisions, OversizedBatchIsTruncatedAndCountedStreamStays) {
  Server s;
  FakeAgent a(s);
  ASSERT_TRUE(a.Hello("agent-1"));
  ASSERT_TRUE(a.Next(pb::ServerMessage::kNotice));
  std::vector<pb::DecisionEvent> many;
  for (int i = 0; i < 1500; ++i) many.push_back(Event("/" + std::to_string(i), true));
  ASSERT_TRUE(a.Send(Batch(many)));
  ASSERT_TRUE(Eventually([&] { return s.agent_server().stats().decision_events == 1000; }));
  AgentServerStats st = s.agent_server().stats();
  EXPECT_EQ(st.decision_events_refused, 500u);
  EXPECT_EQ(st.refused, 0u);  // the stream was not ended
  pb::ListDecisionsResponse r = ListAll(s);
  EXPECT_EQ(r.stored(), 1000u);
  EXPECT_EQ(r.refused_total(), 500u);
  EXPECT_EQ(r.decisions(0).event().path(), "/999");  // the first 1000 were kept

  // Over-long and non-printable fields are cut and replaced, and counted.
  pb::DecisionEvent e = Event("/p" + std::string(2000, 'x'), false, std::string(300, 'r'));
  e.set_rule("a\x01\x7f");
  for (int i = 0; i < 20; ++i) {
    auto* h = e.add_headers();
    h->set_name("x-h");
    h->set_value(std::string(1000, 'v'));
  }
  ASSERT_TRUE(a.Send(Batch({e})));
  ASSERT_TRUE(Eventually([&] { return s.agent_server().stats().decision_events == 1001; }));
  pb::ListDecisionsRequest q;
  q.set_limit(1);
  r = ListAll(s, q);
  ASSERT_EQ(r.decisions_size(), 1);
  const pb::DecisionEvent& got = r.decisions(0).event();
  EXPECT_EQ(got.path().size(), 512u);
  EXPECT_EQ(got.route().size(), 128u);
  EXPECT_EQ(got.rule(), "a??");
  ASSERT_EQ(got.headers_size(), 16);
  EXPECT_EQ(got.headers(0).value().size(), 256u);
  EXPECT_GE(s.agent_server().stats().decision_fields_truncated, 4u);

  // The stream still works: a heartbeat and later batches are accepted.
  pb::AgentMessage hb;
  hb.mutable_heartbeat();
  ASSERT_TRUE(a.Send(hb));
  ASSERT_TRUE(a.Send(Batch({Event("/after", true)})));
  ASSERT_TRUE(Eventually([&] { return s.agent_server().stats().decision_events == 1002; }));
}

TEST(Decisions, RateBoundDropsBatchesButKeepsTheStream) {
  Server s;
  FakeAgent a(s);
  ASSERT_TRUE(a.Hello("agent-1"));
  ASSERT_TRUE(a.Next(pb::ServerMessage::kNotice));
  // 60 batches at once: the decision bucket (burst 10, 5/s) lets only some
  // through unless sending them took many seconds; the message bucket
  // (burst 200) is not exceeded, so the stream stays open.
  constexpr int kBatches = 60;
  for (int i = 0; i < kBatches; ++i) {
    ASSERT_TRUE(a.Send(Batch({Event("/" + std::to_string(i), true), Event("/y", false)})));
  }
  ASSERT_TRUE(Eventually([&] {
    AgentServerStats st = s.agent_server().stats();
    return st.decision_batches + st.decision_batches_refused == kBatches;
  }));
  AgentServerStats st = s.agent_server().stats();
  EXPECT_GE(st.decision_batches_refused, 1u);
  EXPECT_GE(st.decision_batches, 10u);
  EXPECT_EQ(st.decision_events_refused, 2 * st.decision_batches_refused);
  EXPECT_EQ(st.refused, 0u);
  EXPECT_EQ(ListAll(s).refused_total(), 2 * st.decision_batches_refused);
  EXPECT_EQ(s.agent_server().open_streams(), 1u);
}

TEST(Decisions, FloodOfMessagesIsRateLimitedLikeAnyOther) {
  ServerOptions o;
  o.message_burst = 5;
  o.messages_per_second = 1;
  Server s(o);
  FakeAgent a(s);
  ASSERT_TRUE(a.Hello("agent-1"));
  for (int i = 0; i < 50; ++i) {
    if (!a.Send(Batch({Event("/f", true)}))) break;
  }
  EXPECT_EQ(a.Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST(Decisions, ViewerRoleAndAuthentication) {
  Server s;
  EXPECT_EQ(RequiredRole("ListDecisions"), Role::kViewer);
  EXPECT_EQ(RequiredRole("/vakt.v1.AdminService/ListDecisions"), Role::kViewer);
  auto viewer = s.plane().CreateToken(Principal{"admin", Role::kAdmin}, "viewer-1", Role::kViewer);
  ASSERT_TRUE(viewer.ok());
  pb::ListDecisionsResponse r;
  EXPECT_TRUE(List(s, {}, &r, *viewer).ok());
  EXPECT_EQ(List(s, {}, &r, "").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(List(s, {}, &r, "vakt_unknown").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  // A deleted token no longer reads decisions.
  ASSERT_TRUE(s.plane().DeleteToken(Principal{"admin", Role::kAdmin}, "viewer-1").ok());
  EXPECT_EQ(List(s, {}, &r, *viewer).error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST(DecisionStore, EvictsOldestByCountAndBytes) {
  DecisionStore store(3, 1 << 20);
  std::vector<pb::DecisionEvent> ev;
  for (int i = 0; i < 5; ++i) ev.push_back(Event("/" + std::to_string(i), true));
  store.Add("a", ev, 0, 1);
  DecisionStats st = store.stats();
  EXPECT_EQ(st.stored, 3u);
  EXPECT_EQ(st.received, 5u);
  EXPECT_EQ(st.evicted, 2u);
  DecisionFilter f;
  auto list = store.List(f);
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0].event().path(), "/4");
  EXPECT_EQ(list[2].event().path(), "/2");
  EXPECT_EQ(list[0].seq(), 5u);

  DecisionStore small(1000, 200);  // bytes bound
  std::vector<pb::DecisionEvent> big;
  for (int i = 0; i < 10; ++i) big.push_back(Event("/" + std::string(50, 'a' + i), true));
  small.Add("a", big, 0, 1);
  EXPECT_LT(small.stats().stored, 10u);
  EXPECT_GE(small.stats().stored, 1u);
  EXPECT_LE(small.stats().stored_bytes, 200u);

  // Limit 0 means 100; more than kMaxListLimit is capped.
  DecisionStore many(5000);
  std::vector<pb::DecisionEvent> lots(1500, Event("/m", true));
  many.Add("a", lots, 0, 1);
  f.limit = 0;
  EXPECT_EQ(many.List(f).size(), 100u);
  f.limit = 100000;
  EXPECT_EQ(many.List(f).size(), DecisionStore::kMaxListLimit);
}

TEST(DecisionStore, AgentDropTotalsAreSummedPerAgent) {
  DecisionStore store;
  store.Add("a", {Event("/1", true)}, 5, 1);
  store.Add("a", {Event("/2", true)}, 8, 1);  // +3
  store.Add("b", {Event("/3", true)}, 2, 1);  // +2
  store.Add("a", {Event("/4", true)}, 1, 1);  // restarted: +1
  store.Add("a", {Event("/5", true)}, 1, 1);  // unchanged
  EXPECT_EQ(store.stats().agent_dropped, 5u + 3u + 2u + 1u);
  store.CountRefused(4);
  EXPECT_EQ(store.stats().refused, 4u);
}

// Events reach the store only through a live session; a replaced or
// unknown session's are refused and counted, and tagged with the session's
// id, never one the events could claim.
TEST(DecisionStore, FleetTagsBySessionAndRefusesStaleOnes) {
  Fleet fleet({}, 100);
  AgentRecord hello;
  hello.id = "agent-x";
  auto first = fleet.Connect(hello, 1, [] {});
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(fleet.RecordDecisions(*first, {Event("/1", true)}, 0, 1000));
  auto second = fleet.Connect(hello, 2, [] {});  // replaces the first stream
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(fleet.RecordDecisions(*first, {Event("/2", true), Event("/3", true)}, 0, 1000));
  EXPECT_FALSE(fleet.RecordDecisions(9999, {Event("/4", true)}, 0, 1000));
  EXPECT_TRUE(fleet.RecordDecisions(*second, {Event("/5", true)}, 0, 1000));
  DecisionStats st = fleet.decisions().stats();
  EXPECT_EQ(st.stored, 2u);
  EXPECT_EQ(st.refused, 3u);
  for (const auto& d : fleet.decisions().List({})) EXPECT_EQ(d.agent_id(), "agent-x");
  EXPECT_EQ(fleet.decisions().capacity(), 100u);
}

// `vakt decisions` against the in-process server.
std::string WriteToken(const std::string& dir, const std::string& token) {
  std::string path = dir + "/token";
  std::ofstream(path) << token << "\n";
  ::chmod(path.c_str(), 0600);
  return path;
}

struct CliRun {
  int code = -1;
  std::string out;
};

CliRun Vakt(const std::string& args) {
  std::string cmd = std::string(VAKT_BINARY) + " " + args + " 2>&1";
  CliRun r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

TEST(DecisionsCli, ListsTablesAndJson) {
  Server s;
  const std::string common = " --server " + s.address() + " --insecure --token-file " +
                             WriteToken(s.dir(), s.admin_token());
  CliRun r = Vakt("decisions" + common);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("no decisions logged yet"), std::string::npos) << r.out;

  FakeAgent a(s);
  ASSERT_TRUE(a.Hello("agent-1"));
  ASSERT_TRUE(a.Next(pb::ServerMessage::kNotice));
  pb::DecisionEvent deny = Event("/v1/patients/p-2", false, "get_patient", 1'700'000'000'000);
  deny.set_rule("records.get_patient.owner");
  deny.set_sub("anna\x1b[31m");  // a control character from an agent is not printed raw
  ASSERT_TRUE(a.Send(Batch({Event("/v1/ok", true, "ping"), deny})));
  ASSERT_TRUE(Eventually([&] { return s.agent_server().stats().decision_events == 2; }));

  r = Vakt("decisions" + common);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("TIME"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("2023-11-14T22:13:20Z  agent-1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("/v1/patients/p-2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("records.get_patient.owner"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("403 deny"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("/v1/ok"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("2 shown; 2 stored"), std::string::npos) << r.out;

  r = Vakt("decisions --deny --agent agent-1 --route get_patient --limit 5 --json" + common);
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  ASSERT_TRUE(j.is_array()) << r.out;
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["agent_id"], "agent-1");
  EXPECT_EQ(j[0]["event"]["path"], "/v1/patients/p-2");
  EXPECT_EQ(j[0]["event"]["allow"], false);
  EXPECT_EQ(j[0]["event"]["status"], 403);

  r = Vakt("decisions --allow --since 1h" + common);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("no decisions match"), std::string::npos) << r.out;  // event time 1000 ms

  // Usage errors.
  EXPECT_EQ(Vakt("decisions --deny --allow" + common).code, 2);
  EXPECT_EQ(Vakt("decisions --limit 0" + common).code, 2);
  EXPECT_EQ(Vakt("decisions --limit 1001" + common).code, 2);
  EXPECT_EQ(Vakt("decisions --since 10x" + common).code, 2);
  EXPECT_EQ(Vakt("decisions extra" + common).code, 2);
  // An unknown token: unauthenticated, exit 3.
  std::string bad_dir = s.dir() + "/bad";
  std::filesystem::create_directories(bad_dir);
  EXPECT_EQ(Vakt("decisions --server " + s.address() + " --insecure --token-file " +
                 WriteToken(bad_dir, "vakt_unknown"))
                .code,
            3);
}

}  // namespace
}  // namespace vakt::controlplane::testing
