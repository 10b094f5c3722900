// The FAPI runtime state: the DPoP replay cache, the revocation set and
// its atomic holder, and the verified-token cache. Each bound and each
// branch, plus concurrent use (meaningful under the sanitizer build).
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "bytecode/replay_cache.h"
#include "bytecode/revocation.h"
#include "bytecode/token_cache.h"

namespace vakt::bytecode {
namespace {

using Outcome = ReplayCache::Outcome;

TEST(ReplayCache, NewThenReplayWithinWindow) {
  ReplayCache c(1000, 60);
  EXPECT_EQ(c.Use("a", 100), Outcome::kNew);
  EXPECT_EQ(c.Use("a", 100), Outcome::kReplay);
  EXPECT_EQ(c.Use("a", 159), Outcome::kReplay);
  EXPECT_EQ(c.Use("b", 159), Outcome::kNew);
  // Expired with the window: usable again (the proof's own iat check
  // refuses old proofs long before this).
  EXPECT_EQ(c.Use("a", 160), Outcome::kNew);
  EXPECT_EQ(c.Use("a", 161), Outcome::kReplay);
}

TEST(ReplayCache, BoundedAndFailsClosedWhenFull) {
  ReplayCache c(64, 60);  // 4 per shard
  int fresh = 0, full = 0;
  for (int i = 0; i < 1000; ++i) {
    Outcome o = c.Use("id-" + std::to_string(i), 100);
    fresh += o == Outcome::kNew;
    full += o == Outcome::kFull;
  }
  EXPECT_LE(c.size(), 64u);
  EXPECT_LE(fresh, 64);
  EXPECT_GT(full, 900);
  // Nothing remembered was forgotten: every accepted id is still a replay.
  int replays = 0;
  for (int i = 0; i < 1000; ++i) replays += c.Use("id-" + std::to_string(i), 101) == Outcome::kReplay;
  EXPECT_EQ(replays, fresh);
  // Once the window has passed the space is reclaimed.
  EXPECT_EQ(c.Use("later", 200), Outcome::kNew);
}

TEST(ReplayCache, HugeIdsCostADigest) {
  ReplayCache c(100, 60);
  std::string huge(1 << 20, 'x');
  EXPECT_EQ(c.Use(huge, 1), Outcome::kNew);
  EXPECT_EQ(c.Use(huge, 2), Outcome::kReplay);
  huge.back() = 'y';
  EXPECT_EQ(c.Use(huge, 2), Outcome::kNew);
}

TEST(ReplayCache, ClockGoingBackwardsDoesNotForget) {
  ReplayCache c(1000, 60);
  EXPECT_EQ(c.Use("a", 1000), Outcome::kNew);
  EXPECT_EQ(c.Use("a", 10), Outcome::kReplay);
  EXPECT_EQ(c.Use("a", INT64_MAX - 1), Outcome::kNew);  // far future: expired
  EXPECT_EQ(c.Use("b", INT64_MAX), Outcome::kNew);      // no overflow
}

TEST(ReplayCache, ConcurrentUseAcceptsEachIdOnce) {
  ReplayCache c(1 << 16, 60);
  std::atomic<int> accepted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        if (c.Use("jti-" + std::to_string(i), 100) == Outcome::kNew) ++accepted;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(accepted.load(), 2000);  // each id accepted by exactly one thread
}

TEST(Revocation, JtiSubjectAndClientCutOffs) {
  RevocationSet r;
  r.RevokeJti("j1");
  r.RevokeSubject("anna", 1000);
  r.RevokeClient("app", 500);
  EXPECT_TRUE(r.IsRevoked("j1", "", "", 0));
  EXPECT_FALSE(r.IsRevoked("j2", "", "", 0));
  EXPECT_TRUE(r.IsRevoked("j2", "anna", "", 1000));   // issued at the cut-off
  EXPECT_FALSE(r.IsRevoked("j2", "anna", "", 1001));  // issued after
  EXPECT_TRUE(r.IsRevoked("j2", "bob", "app", 400));
  EXPECT_FALSE(r.IsRevoked("j2", "bob", "app", 501));
  EXPECT_FALSE(r.IsRevoked("", "", "", 0));
  // A later cut-off raises it; an earlier one does not lower it.
  r.RevokeSubject("anna", 2000);
  EXPECT_TRUE(r.IsRevoked("j2", "anna", "", 1500));
  r.RevokeSubject("anna", 10);
  EXPECT_TRUE(r.IsRevoked("j2", "anna", "", 1500));
  EXPECT_EQ(r.size(), 3u);
}

TEST(Revocation, HolderSwapsAtomically) {
  RevocationHolder h;
  EXPECT_FALSE(h.Get()->IsRevoked("j", "", "", 0));
  std::atomic<bool> stop{false};
  std::atomic<int> inconsistent{0};
  std::thread reader([&] {
    while (!stop) {
      auto snap = h.Get();
      // Each published set revokes both or neither.
      if (snap->IsRevoked("a", "", "", 0) != snap->IsRevoked("b", "", "", 0)) ++inconsistent;
    }
  });
  for (int i = 0; i < 2000; ++i) {
    auto next = std::make_shared<RevocationSet>();
    if (i % 2) {
      next->RevokeJti("a");
      next->RevokeJti("b");
    }
    h.Replace(next);
  }
  stop = true;
  reader.join();
  EXPECT_EQ(inconsistent.load(), 0);
  h.Replace(nullptr);  // null means empty, never a dangling set
  EXPECT_FALSE(h.Get()->IsRevoked("a", "", "", 0));
}

std::shared_ptr<const VerifiedToken> Tok(const std::string& jti, int64_t exp) {
  auto t = std::make_shared<VerifiedToken>();
  t->claims_json = "{\"jti\":\"" + jti + "\"}";
  t->jti = jti;
  t->sub = "anna";
  t->client_id = "app";
  t->iat = 100;
  t->exp = exp;
  return t;
}

TEST(TokenCache, HitMissExpiryAndRevocation) {
  TokenCache c(100);
  EXPECT_EQ(c.Find("tok", 100, nullptr), nullptr);
  c.Insert("tok", Tok("j1", 200), 100);
  auto hit = c.Find("tok", 150, nullptr);
  ASSERT_NE(hit, nullptr);
  EXPECT_EQ(hit->jti, "j1");
  EXPECT_EQ(c.Find("tok2", 150, nullptr), nullptr);
  // Dropped at exp.
  EXPECT_EQ(c.Find("tok", 200, nullptr), nullptr);
  EXPECT_EQ(c.size(), 0u);
  // Dropped when revoked, by jti or by subject cut-off.
  c.Insert("tok", Tok("j1", 300), 100);
  RevocationSet none, by_jti, by_sub;
  by_jti.RevokeJti("j1");
  by_sub.RevokeSubject("anna", 100);
  EXPECT_NE(c.Find("tok", 150, &none), nullptr);
  EXPECT_EQ(c.Find("tok", 150, &by_jti), nullptr);
  c.Insert("tok", Tok("j1", 300), 100);
  EXPECT_EQ(c.Find("tok", 150, &by_sub), nullptr);
  // Already expired tokens are not cached.
  c.Insert("old", Tok("j9", 50), 100);
  EXPECT_EQ(c.Find("old", 10, nullptr), nullptr);
}

TEST(TokenCache, Bounded) {
  TokenCache c(64);
  for (int i = 0; i < 10000; ++i) c.Insert("tok-" + std::to_string(i), Tok("j", 1000), 1);
  EXPECT_LE(c.size(), 64u);
  // The newest survive.
  int recent = 0;
  for (int i = 9990; i < 10000; ++i) recent += c.Find("tok-" + std::to_string(i), 2, nullptr) != nullptr;
  EXPECT_GE(recent, 5);
}

TEST(TokenCache, Concurrent) {
  TokenCache c(4096);
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 3000; ++i) {
        std::string k = "tok-" + std::to_string((i * 7 + t) % 500);
        c.Insert(k, Tok(k, 1000), 1);
        auto hit = c.Find(k, 2, nullptr);
        if (hit && hit->jti != k) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_LE(c.size(), 4096u);
}

}  // namespace
}  // namespace vakt::bytecode
