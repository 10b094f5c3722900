// The control plane's agent protocol and admin API, in process over real
// gRPC on loopback (tests/cp_harness.h): pushes on change, nonce + version
// ACK/NACK, reconnects, agents that lie, bad messages, staged rollout,
// rollback, revocations, roles and the audit log, restart into the same
// state.
#include <gtest/gtest.h>

#include "bytecode/bundle.h"
#include "bytecode/bundle_signature.h"
#include "controlplane/rollout.h"
#include "tests/cp_harness.h"

namespace vakt::controlplane::testing {
namespace {

namespace pb = vakt::v1;

AgentStatus FindAgent(ControlPlane& cp, const std::string& id) {
  for (AgentStatus& a : cp.ListAgents({})) {
    if (a.record.id == id) return a;
  }
  return AgentStatus{};
}

std::string StateOf(ControlPlane& cp, const std::string& id) { return FindAgent(cp, id).state; }

TEST(AgentProtocol, PushesOnRolloutAndAckMarksInSync) {
  Server s;
  FakeAgent a(s);
  ASSERT_TRUE(a.Hello("agent-1", {{"service", "records"}}));
  // Nothing published: the agent is told no rollout selects it.
  auto notice = a.Next(pb::ServerMessage::kNotice);
  ASSERT_TRUE(notice);
  EXPECT_NE(notice->notice().message().find("no rollout"), std::string::npos);
  EXPECT_TRUE(Eventually([&] { return StateOf(s.plane(), "agent-1") == "unassigned"; }));

  uint64_t v1 = s.Publish("one");
  s.Rollout(v1);
  auto b = a.NextBundle();
  ASSERT_TRUE(b);
  EXPECT_EQ(b->version(), v1);
  EXPECT_EQ(b->policy(), "demo");
  EXPECT_FALSE(b->nonce().empty());
  EXPECT_EQ(StateOf(s.plane(), "agent-1"), "pending");

  // The bundle is signed by the server's key and loads.
  auto keys = bytecode::TrustedKeys::LoadFromFiles({s.dir() + "/signing.pub"});
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  EXPECT_TRUE(keys->Verify(b->policy(), b->version(), b->bundle(), b->signature(), b->key_id()).ok());
  EXPECT_TRUE(bytecode::Bundle::Load(b->bundle()).ok());

  ASSERT_TRUE(a.Ack(b->nonce(), b->version()));
  EXPECT_TRUE(Eventually([&] { return StateOf(s.plane(), "agent-1") == "in_sync"; }));
  EXPECT_EQ(FindAgent(s.plane(), "agent-1").record.active_version, v1);
}

TEST(AgentProtocol, AckWithWrongNonceOrVersionIsIgnored) {
  Server s;
  uint64_t v1 = s.Publish("one");
  s.Rollout(v1);
  FakeAgent a(s);
  ASSERT_TRUE(a.Hello("agent-1"));
  auto b = a.NextBundle();
  ASSERT_TRUE(b);
  ASSERT_TRUE(a.Ack("not-the-nonce", v1));
  ASSERT_TRUE(a.Ack(b->nonce(), v1 + 100));  // right nonce, wrong version
  EXPECT_TRUE(Eventually([&] { return s.agent_server().stats().stale_replies == 2; }));
  EXPECT_EQ(StateOf(s.plane(), "agent-1"), "pending");
  ASSERT_TRUE(a.Ack(b->nonce(), v1));
  EXPECT_TRUE(Eventually([&] { return StateOf(s.plane(), "agent-1") == "in_sync"; }));
  // A second ACK of the same nonce is stale.
  ASSERT_TRUE(a.Ack(b->nonce(), v1));
  EXPECT_TRUE(Eventually([&] { return s.agent_server().stats().stale_replies == 3; }));
}

TEST(AgentProtocol, NackRecordsErrorAndIsNotResentOnTheStream) {
  Server s;
  uint64_t v1 = s.Publish("one");
  s.Rollout(v1);
  FakeAgent a(s);
  ASSERT_TRUE(a.Hello("agent-1"));
  auto b = a.NextBundle();
  ASSERT_TRUE(b);
  ASSERT_TRUE(a.Nack(b->nonce(), v1, "verifier: bad section"));
  EXPECT_TRUE(Eventually([&] { return StateOf(s.plane(), "agent-1") == "nacked"; }));
  EXPECT_EQ(FindAgent(s.plane(), "agent-1").record.last_error, "verifier: bad section");
  // An unrelated change (a revocation) produces no second bundle push.
  ASSERT_TRUE(s.plane()
                  .AddRevocation(Principal{"t", Role::kAdmin},
                                 RevocationRecord{0, RevocationKind::kJti, "j1", 0, "", "", 0})
                  .ok());
  EXPECT_TRUE(a.Next(pb::ServerMessage::kRevocations));
  EXPECT_FALSE(a.NextBundle(300));
  // A new version is pushed and its ACK clears the error.
  uint64_t v2 = s.Publish("two");
  s.Rollout(v2);
  auto b2 = a.NextBundle();
  ASSERT_TRUE(b2);
  EXPECT_EQ(b2->version(), v2);
  ASSERT_TRUE(a.Ack(b2->nonce(), v2));
  EXPECT_TRUE(Eventually([&] { return StateOf(s.plane(), "agent-1") == "in_sync"; }));
  EXPECT_EQ(FindAgent(s.plane(), "agent-1").record.last_error, "");
}

TEST(AgentProtocol, ReconnectOnCurrentVersionGetsNothingResent) {
  Server s;
  uint64_t v1 = s.Publish("one");
  s.Rollout(v1);
  std::string digest;
  {
    FakeAgent a(s);
    ASSERT_TRUE(a.Hello("agent-1"));
    auto b = a.NextBundle();
    ASSERT_TRUE(b);
    digest = b->digest();
    ASSERT_TRUE(a.Ack(b->nonce(), v1));
    EXPECT_TRUE(Eventually([&] { return StateOf(s.plane(), "agent-1") == "in_sync"; }));
  }
  EXPECT_TRUE(Eventually([&] { return StateOf(s.plane(), "agent-1") == "disconnected"; }));
  const uint64_t sent = s.agent_server().stats().bundles_sent;
  FakeAgent again(s);
  ASSERT_TRUE(again.Hello("agent-1", {}, v1, digest));
  EXPECT_FALSE(again.NextBundle(300));
  EXPECT_EQ(s.agent_server().stats().bundles_sent, sent);
  EXPECT_TRUE(Eventually([&] { return StateOf(s.plane(), "agent-1") == "in_sync"; }));
}

TEST(AgentProtocol, AgentLyingAboutItsVersionGetsTheBundle) {
  Server s;
  uint64_t v1 = s.Publish("one");
  s.Rollout(v1);
  FakeAgent a(s);
  // Claims to run v1 with a made-up digest.
  ASSERT_TRUE(a.Hello("agent-1", {}, v1, std::string(64, 'a')));
  auto b = a.NextBundle();
  ASSERT_TRUE(b);
  EXPECT_EQ(b->version(), v1);
  EXPECT_EQ(FindAgent(s.plane(), "agent-1").record.active_version, 0u);
  // And one claiming a version that does not exist likewise.
  FakeAgent c(s);
  ASSERT_TRUE(c.Hello("agent-2", {}, 999, std::string(64, 'b')));
  EXPECT_TRUE(c.NextBundle());
}

TEST(AgentProtocol, NewStreamForTheSameIdReplacesTheOld) {
  Server s;
  FakeAgent a(s);
  ASSERT_TRUE(a.Hello("agent-1"));
  ASSERT_TRUE(a.Next(pb::ServerMessage::kNotice));
  FakeAgent b(s);
  ASSERT_TRUE(b.Hello("agent-1"));
  grpc::Status st = a.Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::ALREADY_EXISTS) << st.error_message();
  EXPECT_TRUE(Eventually([&] { return FindAgent(s.plane(), "agent-1").connected; }));
}

TEST(AgentProtocol, BadStreamsAreEndedWithClearStatus) {
  Server s;
  {  // first message not a hello
    FakeAgent a(s);
    ASSERT_TRUE(a.Ack("x", 1));
    grpc::Status st = a.Finish();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_NE(st.error_message().find("hello"), std::string::npos);
  }
  {  // hello twice
    FakeAgent a(s);
    ASSERT_TRUE(a.Hello("agent-2"));
    ASSERT_TRUE(a.Hello("agent-2"));
    EXPECT_EQ(a.Finish().error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  }
  {  // an empty message
    FakeAgent a(s);
    ASSERT_TRUE(a.Send(pb::AgentMessage{}));
    EXPECT_EQ(a.Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  {  // a bad id
    FakeAgent a(s);
    ASSERT_TRUE(a.Hello("agent one; drop table"));
    EXPECT_EQ(a.Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  {  // an empty id
    FakeAgent a(s);
    ASSERT_TRUE(a.Hello(""));
    EXPECT_EQ(a.Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  {  // too many labels
    FakeAgent a(s);
    Labels many;
    for (int i = 0; i < 40; ++i) many["k" + std::to_string(i)] = "v";
    ASSERT_TRUE(a.Hello("agent-3", many));
    EXPECT_EQ(a.Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  {  // an oversized message
    FakeAgent a(s);
    ASSERT_TRUE(a.Hello("agent-4"));
    pb::AgentMessage m;
    m.mutable_nack()->set_nonce("n");
    m.mutable_nack()->set_error(std::string(100 * 1024, 'x'));
    a.Send(m);
    EXPECT_EQ(a.Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  {  // a nonce that is too long
    FakeAgent a(s);
    ASSERT_TRUE(a.Hello("agent-5"));
    ASSERT_TRUE(a.Ack(std::string(100, 'n'), 1));
    EXPECT_EQ(a.Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  EXPECT_GE(s.agent_server().stats().refused, 7u);
}

TEST(AgentProtocol, IdentityIsRequiredWithoutTheInsecureFlag) {
  ServerOptions o;
  o.insecure_identity = false;
  Server s(o);
  FakeAgent a(s);
  ASSERT_TRUE(a.Hello("agent-1"));
  grpc::Status st = a.Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(st.error_message().find("client certificate"), std::string::npos);
}

TEST(AgentProtocol, SilentStreamIsEndedAfterTheHelloTimeout) {
  ServerOptions o;
  o.hello_timeout_ms = 300;
  Server s(o);
  FakeAgent a(s);
  grpc::Status st = a.Finish(5000);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
}

TEST(AgentProtocol, MessageFloodIsRefused) {
  ServerOptions o;
  o.message_burst = 20;
  o.messages_per_second = 5;
  Server s(o);
  FakeAgent a(s);
  ASSERT_TRUE(a.Hello("agent-1"));
  pb::AgentMessage hb;
  hb.mutable_heartbeat()->set_running_version(0);
  for (int i = 0; i < 200; ++i) {
    if (!a.Send(hb)) break;
  }
  EXPECT_EQ(a.Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST(AgentProtocol, ReconnectFloodIsRefused) {
  Server s;
  grpc::StatusCode last = grpc::StatusCode::OK;
  for (int i = 0; i < Fleet::kMaxConnectsPerWindow + 5; ++i) {
    FakeAgent a(s);
    ASSERT_TRUE(a.Hello("flappy"));
    a.CloseSend();
    last = a.Finish().error_code();
    if (last == grpc::StatusCode::RESOURCE_EXHAUSTED) break;
  }
  EXPECT_EQ(last, grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST(AgentProtocol, RevocationsArePushedAndAcked) {
  Server s;
  FakeAgent a(s);
  ASSERT_TRUE(a.Hello("agent-1"));
  Principal admin{"t", Role::kAdmin};
  ASSERT_TRUE(s.plane().AddRevocation(admin, {0, RevocationKind::kJti, "jti-1", 0, "", "", 0}).ok());
  ASSERT_TRUE(
      s.plane().AddRevocation(admin, {0, RevocationKind::kSub, "alice", 1700000000, "", "", 0}).ok());
  std::optional<pb::ServerMessage> m;
  // Two updates may coalesce into one; wait for the one holding both.
  for (int i = 0; i < 2; ++i) {
    m = a.Next(pb::ServerMessage::kRevocations);
    ASSERT_TRUE(m);
    if (m->revocations().jtis_size() == 1 && m->revocations().subjects_size() == 1) break;
  }
  EXPECT_EQ(m->revocations().jtis(0), "jti-1");
  EXPECT_EQ(m->revocations().subjects(0).value(), "alice");
  EXPECT_EQ(m->revocations().subjects(0).not_after(), 1700000000);
  ASSERT_TRUE(a.Ack(m->revocations().nonce(), m->revocations().revision()));
  EXPECT_TRUE(Eventually([&] {
    return FindAgent(s.plane(), "agent-1").record.revocation_revision ==
           m->revocations().revision();
  }));
  // Reconnecting at that revision: nothing resent.
  FakeAgent b(s);
  ASSERT_TRUE(b.Hello("agent-2", {}, 0, "", m->revocations().revision()));
  EXPECT_FALSE(b.Next(pb::ServerMessage::kRevocations, 300));
}

// Agents whose stable bucket is below `percent`.
std::vector<std::string> Ids(int n) {
  std::vector<std::string> ids;
  for (int i = 0; i < n; ++i) ids.push_back("agent-" + std::to_string(i));
  return ids;
}

TEST(Rollout, StagesSelectorAdvanceAndRollback) {
  Server s;
  uint64_t v1 = s.Publish("one");
  uint64_t v2 = s.Publish("two");
  auto ids = Ids(12);
  std::vector<std::unique_ptr<FakeAgent>> agents;
  for (size_t i = 0; i < ids.size(); ++i) {
    agents.push_back(std::make_unique<FakeAgent>(s));
    Labels l = {{"service", i < 10 ? "records" : "billing"}};
    ASSERT_TRUE(agents.back()->Hello(ids[i], l));
  }
  // v1 everywhere on records.
  s.Rollout(v1, {100}, {{"service", "records"}});
  for (size_t i = 0; i < 10; ++i) {
    auto b = agents[i]->NextBundle();
    ASSERT_TRUE(b) << ids[i];
    ASSERT_EQ(b->version(), v1);
    agents[i]->Ack(b->nonce(), v1);
  }
  // billing agents match no rollout.
  EXPECT_FALSE(agents[10]->NextBundle(200));
  EXPECT_EQ(StateOf(s.plane(), ids[10]), "unassigned");

  // v2 in two stages: 50% then 100%.
  uint64_t r2 = s.Rollout(v2, {50, 100}, {{"service", "records"}});
  RolloutRecord probe;
  probe.stages = {50, 100};
  probe.stage = 0;
  size_t first_stage = 0;
  for (size_t i = 0; i < 10; ++i) {
    bool in = InCurrentStage(probe, ids[i]);
    auto b = agents[i]->NextBundle(in ? 5000 : 200);
    EXPECT_EQ(b.has_value(), in) << ids[i];
    if (b) {
      EXPECT_EQ(b->version(), v2);
      agents[i]->Ack(b->nonce(), v2);
      ++first_stage;
    }
  }
  auto st = s.plane().GetRollout(r2);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->progress.in_stage, first_stage);
  EXPECT_EQ(st->rollout.previous_version, v1);
  EXPECT_EQ(st->rollout.state, RolloutState::kProgressing);

  // Advance by hand: the rest get v2.
  ASSERT_TRUE(s.plane().AdvanceRollout(Principal{"t", Role::kDeployer}, r2).ok());
  for (size_t i = 0; i < 10; ++i) {
    if (InCurrentStage(probe, ids[i])) continue;
    auto b = agents[i]->NextBundle();
    ASSERT_TRUE(b) << ids[i];
    EXPECT_EQ(b->version(), v2);
    agents[i]->Ack(b->nonce(), v2);
  }
  EXPECT_TRUE(Eventually([&] {
    for (size_t i = 0; i < 10; ++i) {
      if (StateOf(s.plane(), ids[i]) != "in_sync") return false;
    }
    return true;
  }));

  // Roll back: every records agent returns to v1 at once.
  auto rb = s.plane().Rollback(Principal{"t", Role::kDeployer}, 0, "demo");
  ASSERT_TRUE(rb.ok()) << rb.status().ToString();
  EXPECT_EQ(rb->rollout.state, RolloutState::kRolledBack);
  for (size_t i = 0; i < 10; ++i) {
    auto b = agents[i]->NextBundle();
    ASSERT_TRUE(b) << ids[i];
    EXPECT_EQ(b->version(), v1);
  }
}

TEST(Rollout, AutoAdvanceCompletesWhenStagesAck) {
  Server s;
  uint64_t v1 = s.Publish("one");
  auto ids = Ids(8);
  std::vector<std::unique_ptr<FakeAgent>> agents;
  for (const std::string& id : ids) {
    agents.push_back(std::make_unique<FakeAgent>(s));
    ASSERT_TRUE(agents.back()->Hello(id));
  }
  uint64_t r = s.Rollout(v1, {25, 50, 100}, {}, /*auto_advance=*/true);
  // Every agent eventually gets v1 because each ACKed stage advances; the
  // stages are visible as the order in which agents get it.
  std::vector<bool> done(agents.size(), false);
  size_t n_done = 0, rounds = 0;
  std::vector<size_t> done_per_round;
  while (n_done < agents.size() && rounds++ < 200) {
    size_t before = n_done;
    for (size_t i = 0; i < agents.size(); ++i) {
      if (done[i]) continue;
      if (auto b = agents[i]->NextBundle(20)) {
        EXPECT_EQ(b->version(), v1);
        agents[i]->Ack(b->nonce(), b->version());
        done[i] = true;
        ++n_done;
      }
    }
    if (n_done != before) done_per_round.push_back(n_done);
  }
  EXPECT_EQ(n_done, agents.size());
  EXPECT_GE(done_per_round.size(), 2u) << "all agents got the version in one stage";
  EXPECT_TRUE(Eventually([&] {
    auto st = s.plane().GetRollout(r);
    return st.ok() && st->rollout.state == RolloutState::kComplete;
  }));
}

TEST(Rollout, AutoAdvanceMovesThroughEmptyStagesWithoutFleetEvents) {
  Server s;
  uint64_t v1 = s.Publish("one");
  // No agent at all: every stage is empty, so it completes on its own.
  uint64_t r = s.Rollout(v1, {10, 50, 100}, {}, /*auto_advance=*/true);
  EXPECT_TRUE(Eventually([&] {
    auto st = s.plane().GetRollout(r);
    return st.ok() && st->rollout.state == RolloutState::kComplete;
  }));
  // Without auto_advance it stays at its first stage.
  uint64_t v2 = s.Publish("two");
  uint64_t manual = s.Rollout(v2, {10, 50, 100});
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto st = s.plane().GetRollout(manual);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->rollout.state, RolloutState::kProgressing);
  EXPECT_EQ(st->rollout.stage, 0u);
}

TEST(Rollout, NacksPastTheThresholdHaltTheRollout) {
  Server s;
  uint64_t v1 = s.Publish("one");
  auto ids = Ids(6);
  std::vector<std::unique_ptr<FakeAgent>> agents;
  for (const std::string& id : ids) {
    agents.push_back(std::make_unique<FakeAgent>(s));
    ASSERT_TRUE(agents.back()->Hello(id));
  }
  uint64_t r = s.Rollout(v1, {100}, {}, /*auto_advance=*/true, /*threshold=*/20);
  // One NACK of six (16%) stays under 20%; a second (33%) halts.
  auto b0 = agents[0]->NextBundle();
  ASSERT_TRUE(b0);
  agents[0]->Nack(b0->nonce(), v1, "bad");
  EXPECT_TRUE(Eventually([&] { return StateOf(s.plane(), ids[0]) == "nacked"; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(s.plane().GetRollout(r)->rollout.state, RolloutState::kProgressing);
  auto b1 = agents[1]->NextBundle();
  ASSERT_TRUE(b1);
  agents[1]->Nack(b1->nonce(), v1, "bad");
  EXPECT_TRUE(Eventually([&] {
    return s.plane().GetRollout(r)->rollout.state == RolloutState::kHalted;
  }));
  EXPECT_NE(s.plane().GetRollout(r)->rollout.reason.find("refused"), std::string::npos);
}

TEST(ControlPlaneCore, PublishIsIdempotentAndReportsDiagnostics) {
  Server s;
  Principal author{"alice", Role::kAuthor};
  auto a = s.plane().Publish(author, "demo", PolicyFiles("x"), "first");
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->created);
  auto b = s.plane().Publish(author, "demo", PolicyFiles("x"), "again");
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(b->created);
  EXPECT_EQ(a->version.version, b->version.version);
  // The same sources under another policy are a version of their own.
  auto c = s.plane().Publish(author, "other", PolicyFiles("x"), "");
  ASSERT_TRUE(c.ok());
  EXPECT_NE(c->version.version, a->version.version);

  std::vector<PublishDiagnostic> diags;
  auto bad = s.plane().Publish(author, "demo",
                               {SourceFile{"p/main.vakt", "api demo \"/\" {\n  route x GET {}\n}\n"}},
                               "", &diags);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("p/main.vakt:2:"), std::string::npos)
      << bad.status().message();
  EXPECT_NE(bad.status().message().find("^"), std::string::npos);
  ASSERT_FALSE(diags.empty());
  EXPECT_EQ(diags[0].file, "p/main.vakt");
  EXPECT_EQ(diags[0].line, 2u);
}

TEST(ControlPlaneCore, PublishRefusesBadFileSets) {
  Server s;
  Principal author{"alice", Role::kAuthor};
  auto refused = [&](std::vector<SourceFile> files, const std::string& policy = "demo") {
    auto r = s.plane().Publish(author, policy, std::move(files), "");
    return !r.ok();
  };
  EXPECT_TRUE(refused({}));
  EXPECT_TRUE(refused(PolicyFiles("a"), "Bad Name"));
  EXPECT_TRUE(refused({SourceFile{"../escape.vakt", "x"}}));
  EXPECT_TRUE(refused({SourceFile{"/abs.vakt", "x"}}));
  EXPECT_TRUE(refused({SourceFile{"a//b.vakt", "x"}}));
  EXPECT_TRUE(refused({SourceFile{"only.json", "{}"}}));
  EXPECT_TRUE(refused({PolicyFiles("a")[0], PolicyFiles("b")[0]}));  // same path twice
  // An asset outside the published files is a compile error.
  EXPECT_TRUE(refused({SourceFile{"main.vakt",
                                  "relation r: string = \"../../etc/passwd\"\napi demo \"/\" {\n"
                                  "  route ping GET \"/ping\" {}\n}\n"}}));
  // Every refusal is audited with its error.
  auto audit = s.store().ListAudit(0, 1000);
  ASSERT_TRUE(audit.ok());
  size_t refusals = 0;
  for (const AuditEntry& e : *audit) {
    if (e.action == "publish" && e.result != "ok") ++refusals;
  }
  EXPECT_EQ(refusals, 8u);
}

TEST(ControlPlaneCore, PublishReadsAssetsFromThePublishedFiles) {
  Server s;
  std::vector<SourceFile> files = {
      SourceFile{"policy/main.vakt",
                 "relation owner_of: string = \"../data/owners.json\"\n"
                 "api demo \"/\" {\n  route r GET \"/r/{id}\" {\n"
                 "    owner: owns params.id { == owner_of[token.sub] }\n  }\n}\n"},
      SourceFile{"data/owners.json", "{\"u1\": \"p1\"}"}};
  auto r = s.plane().Publish(Principal{"a", Role::kAuthor}, "demo", files, "");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
}

TEST(ControlPlaneCore, RestartKeepsVersionsRolloutsAgentsAndKey) {
  std::string dir = MakeTempDir();
  uint64_t v1 = 0, rollout = 0;
  std::string key_id;
  {
    Server s({}, dir);
    v1 = s.Publish("one");
    rollout = s.Rollout(v1);
    key_id = s.plane().signer().key_id();
    FakeAgent a(s);
    ASSERT_TRUE(a.Hello("agent-1", {{"zone", "a"}}));
    auto b = a.NextBundle();
    ASSERT_TRUE(b);
    a.Ack(b->nonce(), v1);
    EXPECT_TRUE(Eventually([&] { return StateOf(s.plane(), "agent-1") == "in_sync"; }));
  }
  {
    Server s({}, dir);
    EXPECT_EQ(s.plane().signer().key_id(), key_id);
    auto r = s.plane().GetRollout(rollout);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->rollout.version, v1);
    AgentStatus a = FindAgent(s.plane(), "agent-1");
    EXPECT_EQ(a.record.active_version, v1);
    EXPECT_EQ(a.record.labels.at("zone"), "a");
    EXPECT_EQ(a.state, "disconnected");
    // The same admin token still works.
    EXPECT_TRUE(s.plane().Authenticate(s.admin_token()).ok());
  }
  fs::remove_all(dir);
}

// ---- the admin API over gRPC: authentication, roles, audit

struct Call {
  std::string method;
  Role need;
  std::function<grpc::Status(pb::AdminService::Stub&, grpc::ClientContext*)> run;
};

std::vector<Call> Calls() {
  using S = pb::AdminService::Stub;
  using C = grpc::ClientContext;
  return {
      {"WhoAmI", Role::kViewer,
       [](S& s, C* c) {
         pb::WhoAmIResponse r;
         return s.WhoAmI(c, {}, &r);
       }},
      {"ListVersions", Role::kViewer,
       [](S& s, C* c) {
         pb::ListVersionsResponse r;
         return s.ListVersions(c, {}, &r);
       }},
      {"ListAgents", Role::kViewer,
       [](S& s, C* c) {
         pb::ListAgentsResponse r;
         return s.ListAgents(c, {}, &r);
       }},
      {"ListAudit", Role::kViewer,
       [](S& s, C* c) {
         pb::ListAuditResponse r;
         return s.ListAudit(c, {}, &r);
       }},
      {"Publish", Role::kAuthor,
       [](S& s, C* c) {
         pb::PublishRequest q;
         q.set_policy("demo");
         auto* f = q.add_files();
         f->set_path("main.vakt");
         f->set_content(PolicyFiles("rpc")[0].content);
         pb::PublishResponse r;
         return s.Publish(c, q, &r);
       }},
      {"AddRevocation", Role::kDeployer,
       [](S& s, C* c) {
         pb::AddRevocationRequest q;
         q.set_kind("jti");
         q.set_value("j");
         pb::RevocationInfo r;
         return s.AddRevocation(c, q, &r);
       }},
      {"StartRollout", Role::kDeployer,
       [](S& s, C* c) {
         pb::StartRolloutRequest q;
         q.set_policy("demo");
         q.set_version(1);
         pb::RolloutInfo r;
         return s.StartRollout(c, q, &r);
       }},
      {"CreateToken", Role::kAdmin,
       [](S& s, C* c) {
         static int n = 0;
         pb::CreateTokenRequest q;
         q.set_name("made-" + std::to_string(n++));
         q.set_role("viewer");
         pb::CreateTokenResponse r;
         return s.CreateToken(c, q, &r);
       }},
  };
}

TEST(AdminApi, EveryRoleIsAllowedAndRefusedAsItsRankSays) {
  Server s;
  s.Publish("base");  // version 1 exists for StartRollout
  auto stub = s.Admin();
  std::map<Role, std::string> tokens;
  for (Role r : {Role::kViewer, Role::kAuthor, Role::kDeployer, Role::kAdmin}) {
    auto t = s.plane().CreateToken(Principal{"admin", Role::kAdmin},
                                   std::string(RoleName(r)) + "-user", r);
    ASSERT_TRUE(t.ok());
    tokens[r] = *t;
  }
  for (const Call& call : Calls()) {
    for (const auto& [role, token] : tokens) {
      grpc::ClientContext ctx;
      ctx.AddMetadata("authorization", "Bearer " + token);
      grpc::Status st = call.run(*stub, &ctx);
      if (RoleAllows(role, call.need)) {
        EXPECT_TRUE(st.ok()) << call.method << " as " << RoleName(role) << ": "
                             << st.error_message();
      } else {
        EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED)
            << call.method << " as " << RoleName(role);
      }
    }
    // No token, a malformed header, an unknown token.
    for (std::string header : {std::string(), std::string("Basic abc"),
                               std::string("Bearer vakt_unknown")}) {
      grpc::ClientContext ctx;
      if (!header.empty()) ctx.AddMetadata("authorization", header);
      EXPECT_EQ(call.run(*stub, &ctx).error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << call.method << " with `" << header << "`";
    }
  }
  // Refusals of known principals are audited as such.
  auto audit = s.store().ListAudit(0, 1000);
  ASSERT_TRUE(audit.ok());
  bool saw = false;
  for (const AuditEntry& e : *audit) {
    if (e.principal == "viewer-user" && e.action == "Publish" &&
        e.result.find("permission denied") != std::string::npos) {
      saw = true;
    }
  }
  EXPECT_TRUE(saw);
}

TEST(AdminApi, PublishErrorsAndDiffOverGrpc) {
  Server s;
  auto stub = s.Admin();
  auto publish = [&](const std::string& text, pb::PublishResponse* r) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + s.admin_token());
    pb::PublishRequest q;
    q.set_policy("demo");
    q.set_message("msg");
    auto* f = q.add_files();
    f->set_path("main.vakt");
    f->set_content(text);
    return stub->Publish(&ctx, q, r);
  };
  pb::PublishResponse r1, r2, bad;
  ASSERT_TRUE(publish(PolicyFiles("one")[0].content, &r1).ok());
  ASSERT_TRUE(publish(PolicyFiles("two")[0].content, &r2).ok());
  EXPECT_TRUE(r1.created());
  EXPECT_EQ(r1.version().author(), "admin");
  grpc::Status st = publish("api {", &bad);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("main.vakt:1:"), std::string::npos) << st.error_message();

  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + s.admin_token());
  pb::DiffRequest dq;
  dq.set_policy("demo");
  dq.set_from_version(r1.version().version());
  dq.set_to_version(r2.version().version());
  pb::DiffResponse dr;
  ASSERT_TRUE(stub->Diff(&ctx, dq, &dr).ok());
  ASSERT_EQ(dr.files_size(), 1);
  EXPECT_EQ(dr.files(0).change(), "modified");
  EXPECT_NE(dr.files(0).unified().find("-// version one"), std::string::npos);
  EXPECT_NE(dr.files(0).unified().find("+// version two"), std::string::npos);
}

}  // namespace
}  // namespace vakt::controlplane::testing
