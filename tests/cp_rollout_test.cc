// The rollout state machine (controlplane/rollout.h): stable buckets and
// their spread, selector matching and label validation, stage membership,
// request validation, layering in DesiredFor (rollback, superseded, paused,
// halted and complete layers), progress counts, every branch of NextAction
// and every allowed and refused transition of the table.
#include <gtest/gtest.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "controlplane/rollout.h"

namespace vakt::controlplane {
namespace {

constexpr RolloutState kAllStates[] = {RolloutState::kProgressing, RolloutState::kPaused,
                                       RolloutState::kHalted,      RolloutState::kComplete,
                                       RolloutState::kRolledBack,  RolloutState::kSuperseded};

RolloutRecord Rollout(uint64_t id, uint64_t version, std::vector<uint32_t> stages,
                      uint32_t stage = 0, RolloutState state = RolloutState::kProgressing,
                      Labels selector = {}) {
  RolloutRecord r;
  r.id = id;
  r.policy = "p";
  r.version = version;
  r.stages = std::move(stages);
  r.stage = stage;
  r.state = state;
  r.selector = std::move(selector);
  return r;
}

// The first agent id whose bucket satisfies `pred`.
template <typename Pred>
std::string AgentWhere(Pred pred) {
  for (int i = 0; i < 1000000; ++i) {
    std::string id = "agent-" + std::to_string(i);
    if (pred(StableBucket(id))) return id;
  }
  ADD_FAILURE() << "no agent id found";
  return "";
}

// ---------------------------------------------------------------- buckets

TEST(StableBucket, StableAndInRange) {
  // Fixed values: the bucket must never change across versions or machines
  // (a change would move agents between stages of running rollouts).
  EXPECT_EQ(StableBucket("agent-1"), StableBucket("agent-1"));
  EXPECT_NE(StableBucket("agent-1"), StableBucket("agent-2"));
  // SHA-256("") = e3b0c44298fc1c14...; 0xe3b0c44298fc1c14 % 10000.
  EXPECT_EQ(StableBucket(""), static_cast<uint32_t>(0xe3b0c44298fc1c14ull % 10000));
  // SHA-256("abc") = ba7816bf8f01cfea...
  EXPECT_EQ(StableBucket("abc"), static_cast<uint32_t>(0xba7816bf8f01cfeaull % 10000));
  for (int i = 0; i < 1000; ++i) EXPECT_LT(StableBucket(std::to_string(i)), kBucketCount);
}

TEST(StableBucket, RoughlyUniform) {
  std::array<int, 10> deciles{};
  const int n = 10000;
  for (int i = 0; i < n; ++i) {
    ++deciles[StableBucket("node-" + std::to_string(i) + ".eu-west") / 1000];
  }
  for (int d = 0; d < 10; ++d) {
    EXPECT_GE(deciles[d], n * 8 / 100) << "decile " << d;
    EXPECT_LE(deciles[d], n * 12 / 100) << "decile " << d;
  }
}

// ---------------------------------------------------------------- selectors

TEST(Selector, Matches) {
  Labels labels = {{"env", "prod"}, {"region", "eu"}, {"tier", "api"}};
  EXPECT_TRUE(SelectorMatches({}, labels));
  EXPECT_TRUE(SelectorMatches({}, {}));
  EXPECT_TRUE(SelectorMatches({{"env", "prod"}}, labels));
  EXPECT_TRUE(SelectorMatches({{"env", "prod"}, {"region", "eu"}}, labels));
  EXPECT_TRUE(SelectorMatches(labels, labels));
  EXPECT_FALSE(SelectorMatches({{"env", "staging"}}, labels));
  EXPECT_FALSE(SelectorMatches({{"env", "prod"}, {"region", "us"}}, labels));
  EXPECT_FALSE(SelectorMatches({{"zone", "a"}}, labels));
  EXPECT_FALSE(SelectorMatches({{"env", "prod"}}, {}));
  EXPECT_FALSE(SelectorMatches({{"env", ""}}, labels));
  EXPECT_TRUE(SelectorMatches({{"env", ""}}, {{"env", ""}}));
  EXPECT_FALSE(SelectorMatches({{"env", "Prod"}}, labels));  // exact, case-sensitive
}

TEST(Selector, ValidateLabels) {
  EXPECT_TRUE(ValidateLabels({}, "selector").ok());
  EXPECT_TRUE(ValidateLabels({{"env", "prod"},
                              {"app.example.com/tier", "api-v2_1"},
                              {"k", ""},
                              {"0", "user@host:8080+x"}},
                             "selector")
                  .ok());
  Labels many;
  for (size_t i = 0; i < kMaxSelectorLabels; ++i) many["k" + std::to_string(i)] = "v";
  EXPECT_TRUE(ValidateLabels(many, "selector").ok());
  many["one-more"] = "v";
  Status s = ValidateLabels(many, "selector");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("more than 32 labels"), std::string::npos);

  EXPECT_TRUE(ValidateLabels({{std::string(kMaxLabelKeyBytes, 'k'), "v"}}, "s").ok());
  EXPECT_TRUE(ValidateLabels({{"k", std::string(kMaxLabelValueBytes, 'v')}}, "s").ok());
  const Labels bad[] = {
      {{"", "v"}},
      {{std::string(kMaxLabelKeyBytes + 1, 'k'), "v"}},
      {{"-env", "v"}},
      {{".env", "v"}},
      {{"en v", "v"}},
      {{"env=", "v"}},
      {{"caf\xc3\xa9", "v"}},
      {{"k", std::string(kMaxLabelValueBytes + 1, 'v')}},
      {{"k", "a b"}},
      {{"k", "a\nb"}},
      {{"k", std::string("a\0b", 3)}},
      {{"k", "a,b"}},
  };
  for (const Labels& l : bad) {
    Status st = ValidateLabels(l, "agent labels");
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << l.begin()->first;
    EXPECT_EQ(st.message().rfind("agent labels: ", 0), 0u) << st.message();
  }
}

// ---------------------------------------------------------------- stages

TEST(Stages, InCurrentStage) {
  RolloutRecord r = Rollout(1, 5, {10, 50, 100});
  std::string low = AgentWhere([](uint32_t b) { return b < 1000; });
  std::string mid = AgentWhere([](uint32_t b) { return b >= 1000 && b < 5000; });
  std::string high = AgentWhere([](uint32_t b) { return b >= 5000; });
  std::string edge = AgentWhere([](uint32_t b) { return b == 999; });
  std::string just_out = AgentWhere([](uint32_t b) { return b == 1000; });
  EXPECT_TRUE(InCurrentStage(r, low));
  EXPECT_TRUE(InCurrentStage(r, edge));
  EXPECT_FALSE(InCurrentStage(r, just_out));
  EXPECT_FALSE(InCurrentStage(r, mid));
  EXPECT_FALSE(InCurrentStage(r, high));
  r.stage = 1;
  EXPECT_TRUE(InCurrentStage(r, low));
  EXPECT_TRUE(InCurrentStage(r, mid));
  EXPECT_FALSE(InCurrentStage(r, high));
  r.stage = 2;
  EXPECT_TRUE(InCurrentStage(r, high));
  // A broken record includes nobody.
  r.stage = 3;
  EXPECT_FALSE(InCurrentStage(r, low));
  r.stages.clear();
  r.stage = 0;
  EXPECT_FALSE(InCurrentStage(r, low));
  // The state and the selector do not matter here.
  RolloutRecord paused = Rollout(1, 5, {100}, 0, RolloutState::kRolledBack, {{"env", "x"}});
  EXPECT_TRUE(InCurrentStage(paused, high));
}

TEST(Stages, MembershipIsMonotone) {
  RolloutRecord r = Rollout(1, 5, {1, 2, 5, 10, 25, 50, 75, 99, 100});
  std::vector<uint32_t> counts(r.stages.size());
  for (int i = 0; i < 5000; ++i) {
    std::string id = "m-" + std::to_string(i);
    bool was_in = false;
    for (uint32_t k = 0; k < r.stages.size(); ++k) {
      r.stage = k;
      bool in = InCurrentStage(r, id);
      if (was_in) {
        EXPECT_TRUE(in) << id << " left at stage " << k;
      }
      if (in) ++counts[k];
      was_in = in;
    }
    EXPECT_TRUE(was_in) << id << " not in the 100% stage";
  }
  for (size_t k = 1; k < counts.size(); ++k) EXPECT_GE(counts[k], counts[k - 1]);
  EXPECT_EQ(counts.back(), 5000u);
}

// ---------------------------------------------------------------- validation

TEST(ValidateRollout, NormalisesDefaults) {
  RolloutRecord r;
  r.policy = "healthcare";
  r.version = 3;
  r.stage = 4;
  r.state = RolloutState::kHalted;
  ASSERT_TRUE(ValidateRolloutRequest(&r).ok());
  EXPECT_EQ(r.stages, std::vector<uint32_t>{100});
  EXPECT_EQ(r.stage, 0u);
  EXPECT_EQ(r.state, RolloutState::kProgressing);

  RolloutRecord ok;
  ok.policy = "a0_.-z";
  ok.version = 1;
  ok.stages = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 20, 30, 40, 50, 60, 70, 80, 90, 99, 100};
  ok.nack_threshold_percent = 100;
  ok.selector = {{"env", "prod"}};
  EXPECT_TRUE(ValidateRolloutRequest(&ok).ok());
  EXPECT_EQ(ok.stages.size(), 20u);
  ok.nack_threshold_percent = 0;
  EXPECT_TRUE(ValidateRolloutRequest(&ok).ok());
  ok.policy = std::string(64, 'a');
  EXPECT_TRUE(ValidateRolloutRequest(&ok).ok());
}

TEST(ValidateRollout, Refuses) {
  struct Case {
    const char* what;
    void (*edit)(RolloutRecord*);
    const char* text;
  };
  const Case cases[] = {
      {"no policy", [](RolloutRecord* r) { r->policy = ""; }, "policy name"},
      {"upper policy", [](RolloutRecord* r) { r->policy = "Health"; }, "policy name"},
      {"policy starts with dot", [](RolloutRecord* r) { r->policy = ".p"; }, "policy name"},
      {"policy with slash", [](RolloutRecord* r) { r->policy = "a/b"; }, "policy name"},
      {"long policy", [](RolloutRecord* r) { r->policy = std::string(65, 'a'); }, "policy name"},
      {"version 0", [](RolloutRecord* r) { r->version = 0; }, "needs a version"},
      {"bad selector", [](RolloutRecord* r) { r->selector = {{"a b", "c"}}; }, "selector: "},
      {"stage 0%", [](RolloutRecord* r) { r->stages = {0, 100}; }, "1 to 100 percent"},
      {"stage 101%", [](RolloutRecord* r) { r->stages = {50, 101}; }, "1 to 100 percent"},
      {"equal stages", [](RolloutRecord* r) { r->stages = {10, 10, 100}; }, "strictly increase"},
      {"decreasing", [](RolloutRecord* r) { r->stages = {50, 10, 100}; }, "strictly increase"},
      {"last not 100", [](RolloutRecord* r) { r->stages = {10, 50}; }, "last stage must be 100"},
      {"too many stages",
       [](RolloutRecord* r) {
         r->stages.clear();
         for (uint32_t i = 1; i <= 21; ++i) r->stages.push_back(i == 21 ? 100 : i);
       },
       "more than 20 stages"},
      {"threshold 101", [](RolloutRecord* r) { r->nack_threshold_percent = 101; },
       "nack_threshold_percent"},
  };
  for (const Case& c : cases) {
    RolloutRecord r;
    r.policy = "p";
    r.version = 1;
    c.edit(&r);
    Status s = ValidateRolloutRequest(&r);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.what;
    EXPECT_NE(s.message().find(c.text), std::string::npos) << c.what << ": " << s.message();
  }
}

// ---------------------------------------------------------------- layering

TEST(DesiredFor, NothingWithoutRollouts) {
  Assignment a = DesiredFor({}, "a", {});
  EXPECT_EQ(a.version, 0u);
  EXPECT_EQ(a.rollout_id, 0u);
  EXPECT_EQ(a.policy, "");
}

TEST(DesiredFor, NewestMatchingLayerWins) {
  std::string low = AgentWhere([](uint32_t b) { return b < 1000; });
  std::string high = AgentWhere([](uint32_t b) { return b >= 5000; });
  Labels prod = {{"env", "prod"}};
  Labels dev = {{"env", "dev"}};
  // Newest first: r3 (v3, 10%, prod), r2 (v2 complete, prod), r1 (v1 complete, all).
  std::vector<RolloutRecord> rs = {
      Rollout(3, 3, {10, 100}, 0, RolloutState::kProgressing, prod),
      Rollout(2, 2, {100}, 0, RolloutState::kComplete, prod),
      Rollout(1, 1, {50, 100}, 0, RolloutState::kComplete),  // complete: 100% though stage 0
  };
  auto v = [&](std::string_view id, const Labels& l) { return DesiredFor(rs, id, l).version; };
  EXPECT_EQ(v(low, prod), 3u);   // in r3's first stage
  EXPECT_EQ(v(high, prod), 2u);  // not yet reached by r3
  EXPECT_EQ(v(low, dev), 1u);    // no prod selector matches
  EXPECT_EQ(v(high, dev), 1u);   // complete counts as 100% whatever its stage index
  Assignment a = DesiredFor(rs, low, prod);
  EXPECT_EQ(a.policy, "p");
  EXPECT_EQ(a.rollout_id, 3u);
  EXPECT_EQ(DesiredFor(rs, high, prod).rollout_id, 2u);

  // Nothing selects an agent labelled otherwise when every rollout selects.
  std::vector<RolloutRecord> only_prod = {rs[0], rs[1]};
  EXPECT_EQ(DesiredFor(only_prod, high, dev).rollout_id, 0u);
  // A progressing rollout that has not reached the agent leaves it unassigned.
  std::vector<RolloutRecord> first = {Rollout(1, 1, {10, 100})};
  EXPECT_EQ(DesiredFor(first, high, {}).version, 0u);
  EXPECT_EQ(DesiredFor(first, low, {}).version, 1u);
}

TEST(DesiredFor, RollbackReturnsToExactlyThePreviousLayer) {
  std::vector<std::string> agents;
  for (int i = 0; i < 300; ++i) agents.push_back("fleet-" + std::to_string(i));
  // r1: v1 complete; r2: v2 at 50% (stage 1); r3: v3 at 10%.
  std::vector<RolloutRecord> before = {
      Rollout(2, 2, {10, 50, 100}, 1),
      Rollout(1, 1, {100}, 0, RolloutState::kComplete),
  };
  std::vector<RolloutRecord> with_r3 = {Rollout(3, 3, {10, 100}, 0), before[0], before[1]};
  int on_v3 = 0;
  for (const std::string& id : agents) {
    if (DesiredFor(with_r3, id, {}).version == 3) ++on_v3;
  }
  EXPECT_GT(on_v3, 0);
  // Roll back r3: every agent gets exactly what it had before r3.
  with_r3[0].state = RolloutState::kRolledBack;
  for (const std::string& id : agents) {
    Assignment was = DesiredFor(before, id, {});
    Assignment now = DesiredFor(with_r3, id, {});
    EXPECT_EQ(now.version, was.version) << id;
    EXPECT_EQ(now.rollout_id, was.rollout_id) << id;
  }
  // Then roll back r2 as well: everyone on v1.
  with_r3[1].state = RolloutState::kRolledBack;
  for (const std::string& id : agents) EXPECT_EQ(DesiredFor(with_r3, id, {}).version, 1u);
  // And r1: nobody is assigned.
  with_r3[2].state = RolloutState::kRolledBack;
  for (const std::string& id : agents) EXPECT_EQ(DesiredFor(with_r3, id, {}).rollout_id, 0u);
}

TEST(DesiredFor, StoppedRolloutsStayLayers) {
  std::string low = AgentWhere([](uint32_t b) { return b < 1000; });
  std::string high = AgentWhere([](uint32_t b) { return b >= 5000; });
  for (RolloutState s : {RolloutState::kSuperseded, RolloutState::kPaused,
                         RolloutState::kHalted, RolloutState::kProgressing}) {
    std::vector<RolloutRecord> rs = {
        Rollout(2, 2, {10, 100}, 0, s),
        Rollout(1, 1, {100}, 0, RolloutState::kComplete),
    };
    EXPECT_EQ(DesiredFor(rs, low, {}).version, 2u) << RolloutStateName(s);
    EXPECT_EQ(DesiredFor(rs, high, {}).version, 1u) << RolloutStateName(s);
  }
  // A superseded rollout under a newer one still holds the agents the newer
  // one has not reached.
  std::string mid = AgentWhere([](uint32_t b) { return b >= 1000 && b < 5000; });
  std::vector<RolloutRecord> rs = {
      Rollout(3, 3, {10, 100}, 0),
      Rollout(2, 2, {10, 50, 100}, 1, RolloutState::kSuperseded),
      Rollout(1, 1, {100}, 0, RolloutState::kComplete),
  };
  EXPECT_EQ(DesiredFor(rs, low, {}).version, 3u);
  EXPECT_EQ(DesiredFor(rs, mid, {}).version, 2u);
  EXPECT_EQ(DesiredFor(rs, high, {}).version, 1u);
  // A broken record (stage out of range, not complete) includes nobody.
  std::vector<RolloutRecord> broken = {Rollout(2, 2, {100}, 5),
                                       Rollout(1, 1, {100}, 0, RolloutState::kComplete)};
  EXPECT_EQ(DesiredFor(broken, low, {}).version, 1u);
}

TEST(DesiredFor, ConsidersAtMostTheNewestCap) {
  std::vector<RolloutRecord> rs;
  rs.reserve(kMaxRolloutsConsidered + 1);
  for (size_t i = 0; i < kMaxRolloutsConsidered; ++i) {
    rs.push_back(Rollout(kMaxRolloutsConsidered + 1 - i, 9, {100}, 0, RolloutState::kRolledBack));
  }
  rs.push_back(Rollout(1, 1, {100}, 0, RolloutState::kComplete));
  EXPECT_EQ(DesiredFor(rs, "a", {}).rollout_id, 0u);  // beyond the cap
  rs.erase(rs.begin());
  EXPECT_EQ(DesiredFor(rs, "a", {}).rollout_id, 1u);  // now within it
}

// ---------------------------------------------------------------- progress

TEST(Progress, Counts) {
  RolloutRecord r = Rollout(1, 7, {50, 100}, 0, RolloutState::kProgressing, {{"env", "prod"}});
  Labels prod = {{"env", "prod"}, {"zone", "a"}};
  Labels dev = {{"env", "dev"}};
  auto in = [](uint32_t b) { return b < 5000; };
  auto out = [](uint32_t b) { return b >= 5000; };
  std::vector<std::string> ids;
  int n = 0;
  auto next = [&](auto pred) {
    for (;; ++n) {
      std::string id = "p-" + std::to_string(n);
      if (pred(StableBucket(id))) {
        ++n;
        ids.push_back(id);
        return;
      }
    }
  };
  for (int i = 0; i < 6; ++i) next(in);
  for (int i = 0; i < 2; ++i) next(out);
  next(in);  // a dev agent in the bucket range
  std::vector<AgentView> views = {
      {ids[0], &prod, true, 7, 0},    // connected, acked
      {ids[1], &prod, true, 6, 7},    // connected, nacked
      {ids[2], &prod, false, 7, 0},   // disconnected, acked
      {ids[3], &prod, false, 6, 7},   // disconnected, nacked
      {ids[4], &prod, true, 6, 0},    // connected, pending
      {ids[5], &prod, true, 7, 7},    // nacked once, then acked: acked, not nacked
      {ids[6], &prod, true, 7, 0},    // selected, not in stage (even if running v7)
      {ids[7], &prod, true, 6, 7},    // selected, not in stage
      {ids[8], &dev, true, 7, 0},     // not selected
      {"x", nullptr, true, 7, 0},     // no labels: ignored
  };
  StageProgress p = ComputeProgress(r, views);
  EXPECT_EQ(p.selected, 8u);
  EXPECT_EQ(p.in_stage, 6u);
  EXPECT_EQ(p.connected_in_stage, 4u);
  EXPECT_EQ(p.acked, 3u);
  EXPECT_EQ(p.connected_acked, 2u);
  EXPECT_EQ(p.nacked, 2u);

  StageProgress none = ComputeProgress(r, {});
  EXPECT_EQ(none.selected + none.in_stage + none.connected_in_stage + none.acked + none.nacked +
                none.connected_acked,
            0u);
}

// ---------------------------------------------------------------- NextAction

TEST(NextAction, EachBranch) {
  RolloutRecord r = Rollout(1, 7, {10, 50, 100}, 0);
  r.auto_advance = true;
  r.nack_threshold_percent = 0;
  auto progress = [](uint32_t in_stage, uint32_t connected, uint32_t connected_acked,
                     uint32_t nacked) {
    StageProgress p;
    p.selected = in_stage + 5;
    p.in_stage = in_stage;
    p.connected_in_stage = connected;
    p.connected_acked = connected_acked;
    p.acked = connected_acked;
    p.nacked = nacked;
    return p;
  };
  // Not progressing: nothing, whatever the counts.
  for (RolloutState s : kAllStates) {
    if (s == RolloutState::kProgressing) continue;
    r.state = s;
    EXPECT_EQ(NextAction(r, progress(10, 10, 0, 10)), RolloutAction::kNone) << RolloutStateName(s);
    EXPECT_EQ(NextAction(r, progress(10, 10, 10, 0)), RolloutAction::kNone) << RolloutStateName(s);
  }
  r.state = RolloutState::kProgressing;
  // Threshold 0: the first NACK halts, even with everyone else ACKed.
  EXPECT_EQ(NextAction(r, progress(10, 10, 9, 1)), RolloutAction::kHalt);
  EXPECT_EQ(NextAction(r, progress(10, 10, 10, 0)), RolloutAction::kAdvance);
  // Threshold 20%: 2 of 10 is not more than 20%, 3 of 10 is.
  r.nack_threshold_percent = 20;
  EXPECT_EQ(NextAction(r, progress(10, 10, 5, 2)), RolloutAction::kNone);
  EXPECT_EQ(NextAction(r, progress(10, 10, 5, 3)), RolloutAction::kHalt);
  // Halting has priority over advancing (NACKs from disconnected agents).
  EXPECT_EQ(NextAction(r, progress(10, 5, 5, 3)), RolloutAction::kHalt);
  // Threshold 100: never halts.
  r.nack_threshold_percent = 100;
  EXPECT_EQ(NextAction(r, progress(10, 10, 0, 10)), RolloutAction::kNone);
  r.nack_threshold_percent = 0;
  // Disconnected agents do not block; an empty stage counts as done.
  EXPECT_EQ(NextAction(r, progress(10, 4, 4, 0)), RolloutAction::kAdvance);
  EXPECT_EQ(NextAction(r, progress(10, 0, 0, 0)), RolloutAction::kAdvance);
  EXPECT_EQ(NextAction(r, progress(0, 0, 0, 0)), RolloutAction::kAdvance);
  // One connected agent still pending blocks.
  EXPECT_EQ(NextAction(r, progress(10, 4, 3, 0)), RolloutAction::kNone);
  // Without auto_advance: halts still, never advances.
  r.auto_advance = false;
  EXPECT_EQ(NextAction(r, progress(10, 10, 10, 0)), RolloutAction::kNone);
  EXPECT_EQ(NextAction(r, progress(10, 10, 9, 1)), RolloutAction::kHalt);
  r.auto_advance = true;
  // The last stage completes instead of advancing.
  r.stage = 2;
  EXPECT_EQ(NextAction(r, progress(10, 10, 10, 0)), RolloutAction::kComplete);
  r.stage = 1;
  EXPECT_EQ(NextAction(r, progress(10, 10, 10, 0)), RolloutAction::kAdvance);
  // A single-stage rollout completes at once.
  RolloutRecord single = Rollout(2, 7, {100}, 0);
  single.auto_advance = true;
  EXPECT_EQ(NextAction(single, progress(3, 3, 3, 0)), RolloutAction::kComplete);
  // Large counts do not overflow the percentage arithmetic.
  r.nack_threshold_percent = 50;
  EXPECT_EQ(NextAction(r, progress(4000000000u, 0, 0, 2000000000u)), RolloutAction::kAdvance);
  EXPECT_EQ(NextAction(r, progress(4000000000u, 0, 0, 2000000001u)), RolloutAction::kHalt);
  EXPECT_STREQ(RolloutActionName(RolloutAction::kNone), "none");
  EXPECT_STREQ(RolloutActionName(RolloutAction::kAdvance), "advance");
  EXPECT_STREQ(RolloutActionName(RolloutAction::kComplete), "complete");
  EXPECT_STREQ(RolloutActionName(RolloutAction::kHalt), "halt");
}

TEST(NextAction, ApplyAction) {
  StageProgress p;
  p.in_stage = 10;
  p.nacked = 3;
  RolloutRecord r = Rollout(4, 7, {10, 100}, 0);
  r.nack_threshold_percent = 20;
  ASSERT_TRUE(ApplyAction(&r, RolloutAction::kNone, p).ok());
  EXPECT_EQ(r.state, RolloutState::kProgressing);
  EXPECT_EQ(r.stage, 0u);
  ASSERT_TRUE(ApplyAction(&r, RolloutAction::kAdvance, p).ok());
  EXPECT_EQ(r.stage, 1u);
  EXPECT_EQ(r.state, RolloutState::kProgressing);
  ASSERT_TRUE(ApplyAction(&r, RolloutAction::kComplete, p).ok());
  EXPECT_EQ(r.state, RolloutState::kComplete);

  RolloutRecord h = Rollout(5, 7, {10, 100}, 1);
  h.nack_threshold_percent = 20;
  ASSERT_TRUE(ApplyAction(&h, RolloutAction::kHalt, p).ok());
  EXPECT_EQ(h.state, RolloutState::kHalted);
  EXPECT_EQ(h.reason, "3 of 10 agents in stage 1 NACKed version 7 (threshold 20%)");
  // Automatic actions apply only to progressing rollouts.
  RolloutRecord paused = Rollout(6, 7, {10, 100}, 0, RolloutState::kPaused);
  EXPECT_EQ(ApplyAction(&paused, RolloutAction::kAdvance, p).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ApplyAction(&paused, RolloutAction::kComplete, p).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ApplyAction(&paused, RolloutAction::kHalt, p).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(paused.state, RolloutState::kPaused);
  EXPECT_EQ(paused.stage, 0u);
  EXPECT_TRUE(ApplyAction(&paused, RolloutAction::kNone, p).ok());
  EXPECT_EQ(ApplyAction(&paused, static_cast<RolloutAction>(99), p).code(),
            StatusCode::kInternal);
}

// ---------------------------------------------------------------- transitions

enum class Op { kAdvance, kPause, kResume, kHalt, kRollBack, kSupersede };
constexpr Op kAllOps[] = {Op::kAdvance, Op::kPause,    Op::kResume,
                          Op::kHalt,    Op::kRollBack, Op::kSupersede};
const char* OpName(Op op) {
  switch (op) {
    case Op::kAdvance: return "advance";
    case Op::kPause: return "pause";
    case Op::kResume: return "resume";
    case Op::kHalt: return "halt";
    case Op::kRollBack: return "roll back";
    case Op::kSupersede: return "supersede";
  }
  return "?";
}

Status Do(Op op, RolloutRecord* r) {
  switch (op) {
    case Op::kAdvance: return Advance(r);
    case Op::kPause: return Pause(r);
    case Op::kResume: return Resume(r);
    case Op::kHalt: return Halt(r, "why halted");
    case Op::kRollBack: return RollBack(r, "why rolled back");
    case Op::kSupersede: return Supersede(r);
  }
  return Internal("?");
}

// The expected outcome of op from state at a non-last stage: the new state,
// or nullopt when refused. Mirrors the table at the top of rollout.h.
std::optional<RolloutState> Expected(RolloutState from, Op op) {
  using S = RolloutState;
  const bool live = from == S::kProgressing || from == S::kPaused || from == S::kHalted;
  switch (op) {
    case Op::kAdvance: return live ? std::optional(from) : std::nullopt;
    case Op::kPause: return from == S::kProgressing ? std::optional(S::kPaused) : std::nullopt;
    case Op::kResume:
      return from == S::kPaused || from == S::kHalted ? std::optional(S::kProgressing)
                                                      : std::nullopt;
    case Op::kHalt: return from == S::kProgressing ? std::optional(S::kHalted) : std::nullopt;
    case Op::kRollBack: return from != S::kRolledBack ? std::optional(S::kRolledBack) : std::nullopt;
    case Op::kSupersede: return live ? std::optional(S::kSuperseded) : std::nullopt;
  }
  return std::nullopt;
}

TEST(Transitions, EveryStateAndOperation) {
  int allowed = 0, refused = 0;
  for (RolloutState from : kAllStates) {
    for (Op op : kAllOps) {
      RolloutRecord r = Rollout(9, 7, {10, 50, 100}, 1, from);
      r.reason = "earlier";
      const RolloutRecord before = r;
      Status s = Do(op, &r);
      std::optional<RolloutState> want = Expected(from, op);
      SCOPED_TRACE(std::string(OpName(op)) + " from " + RolloutStateName(from));
      if (!want) {
        ++refused;
        EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
        EXPECT_EQ(s.message(), std::string("cannot ") + OpName(op) + " rollout 9: it is " +
                                   RolloutStateName(from));
        // Unchanged.
        EXPECT_EQ(r.state, before.state);
        EXPECT_EQ(r.stage, before.stage);
        EXPECT_EQ(r.reason, before.reason);
        continue;
      }
      ++allowed;
      ASSERT_TRUE(s.ok()) << s.ToString();
      EXPECT_EQ(r.state, *want);
      EXPECT_EQ(r.stage, op == Op::kAdvance ? 2u : 1u);
      switch (op) {
        case Op::kResume: EXPECT_EQ(r.reason, ""); break;
        case Op::kHalt: EXPECT_EQ(r.reason, "why halted"); break;
        case Op::kRollBack: EXPECT_EQ(r.reason, "why rolled back"); break;
        default: EXPECT_EQ(r.reason, "earlier"); break;
      }
    }
  }
  // 6 states x 6 operations, as in the table.
  EXPECT_EQ(allowed, 15);
  EXPECT_EQ(refused, 21);
}

TEST(Transitions, AdvanceAtTheLastStageCompletes) {
  for (RolloutState from : kAllStates) {
    RolloutRecord r = Rollout(9, 7, {10, 50, 100}, 2, from);
    Status s = Advance(&r);
    if (from == RolloutState::kProgressing || from == RolloutState::kPaused ||
        from == RolloutState::kHalted) {
      ASSERT_TRUE(s.ok()) << RolloutStateName(from);
      EXPECT_EQ(r.state, RolloutState::kComplete);
      EXPECT_EQ(r.stage, 2u);
    } else {
      EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << RolloutStateName(from);
      EXPECT_EQ(r.state, from);
    }
  }
  // Single stage, and a broken record whose stage is past the end.
  RolloutRecord single = Rollout(1, 7, {100}, 0);
  ASSERT_TRUE(Advance(&single).ok());
  EXPECT_EQ(single.state, RolloutState::kComplete);
  RolloutRecord broken = Rollout(1, 7, {10, 100}, 7);
  ASSERT_TRUE(Advance(&broken).ok());
  EXPECT_EQ(broken.state, RolloutState::kComplete);
  EXPECT_EQ(broken.stage, 1u);
  RolloutRecord empty = Rollout(1, 7, {}, 0);
  ASSERT_TRUE(Advance(&empty).ok());
  EXPECT_EQ(empty.state, RolloutState::kComplete);
  EXPECT_EQ(empty.stage, 0u);
}

TEST(Transitions, AWholeRolloutByHand) {
  RolloutRecord r;
  r.id = 1;
  r.policy = "p";
  r.version = 2;
  r.stages = {10, 50, 100};
  ASSERT_TRUE(ValidateRolloutRequest(&r).ok());
  ASSERT_TRUE(Advance(&r).ok());                 // 50%
  ASSERT_TRUE(Pause(&r).ok());
  EXPECT_FALSE(Pause(&r).ok());                  // already paused
  ASSERT_TRUE(Advance(&r).ok());                 // 100%, still paused
  EXPECT_EQ(r.state, RolloutState::kPaused);
  EXPECT_EQ(r.stage, 2u);
  ASSERT_TRUE(Resume(&r).ok());
  ASSERT_TRUE(Halt(&r, "nacks").ok());
  ASSERT_TRUE(Resume(&r).ok());
  EXPECT_EQ(r.reason, "");
  ASSERT_TRUE(Advance(&r).ok());                 // complete
  EXPECT_EQ(r.state, RolloutState::kComplete);
  EXPECT_FALSE(Advance(&r).ok());
  EXPECT_FALSE(Supersede(&r).ok());
  ASSERT_TRUE(RollBack(&r, "bad release").ok());
  EXPECT_FALSE(RollBack(&r, "again").ok());
  EXPECT_EQ(r.reason, "bad release");
}

}  // namespace
}  // namespace vakt::controlplane
