// Verified-token cache; see token_cache.h.
#include "bytecode/token_cache.h"

namespace vakt::bytecode {

TokenCache::TokenCache(size_t capacity)
    : capacity_(capacity < kShards ? kShards : capacity), per_shard_(capacity_ / kShards) {}

std::shared_ptr<const VerifiedToken> TokenCache::Find(std::string_view token, int64_t now,
                                                      const RevocationSet* revoked) {
  DigestKey key = MakeDigestKey(token);
  Shard& s = ShardFor(key);
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.entries.find(key);
  if (it == s.entries.end()) return nullptr;
  const VerifiedToken& t = *it->second;
  if (now >= t.exp || (revoked && revoked->IsRevoked(t.jti, t.sub, t.client_id, t.iat))) {
    s.entries.erase(it);  // its `order` slot goes stale and is skipped on eviction
    return nullptr;
  }
  return it->second;
}

void TokenCache::Insert(std::string_view token, std::shared_ptr<const VerifiedToken> verified,
                        int64_t now) {
  if (!verified || now >= verified->exp) return;
  DigestKey key = MakeDigestKey(token);
  Shard& s = ShardFor(key);
  std::lock_guard<std::mutex> lock(s.mu);
  auto [it, inserted] = s.entries.insert_or_assign(key, std::move(verified));
  (void)it;
  if (inserted) s.order.push_back(key);
  while (s.entries.size() > per_shard_ && !s.order.empty()) {
    s.entries.erase(s.order.front());  // oldest (or a stale slot: erase is a no-op)
    s.order.pop_front();
  }
  // Stale slots (entries removed by Find) are bounded by the live ones.
  while (s.order.size() > 2 * per_shard_) {
    s.entries.erase(s.order.front());
    s.order.pop_front();
  }
}

size_t TokenCache::size() const {
  size_t n = 0;
  for (const auto& s : shards_) {
    std::lock_guard<std::mutex> lock(s.mu);
    n += s.entries.size();
  }
  return n;
}

}  // namespace vakt::bytecode
