// Verified-token cache; see token_cache.h.
#include "bytecode/token_cache.h"

#include <openssl/evp.h>

#include <cstring>

namespace vakt::bytecode {
namespace {

// Longest token whose digest is remembered (JwsLimits' default token size:
// a longer one never verifies, so it is never cached either).
constexpr size_t kMaxMemoToken = 16 * 1024;

// Equality of two equally long strings in time independent of where they
// differ (the remembered token is another request's secret).
bool SameBytes(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  uint64_t diff = 0;
  size_t i = 0;
  for (; i + 8 <= a.size(); i += 8) {
    uint64_t x, y;
    std::memcpy(&x, a.data() + i, 8);
    std::memcpy(&y, b.data() + i, 8);
    diff |= x ^ y;
  }
  for (; i < a.size(); ++i) diff |= static_cast<uint8_t>(a[i] ^ b[i]);
  return diff == 0;
}

// MakeDigestKey(text), the same SHA-256, through an implementation fetched
// once (with EVP_sha256() OpenSSL 3 fetches it again on every call).
DigestKey Digest(std::string_view text) {
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  DigestKey key{};
  unsigned int len = 0;
  if (md == nullptr || EVP_Digest(text.data(), text.size(), key.data(), &len, md, nullptr) != 1 ||
      len != key.size()) {
    return MakeDigestKey(text);
  }
  return key;
}

// MakeDigestKey(token), remembered per thread for the last few tokens: a
// miss looks a token up and then inserts it (two digests of one text), and a
// client presents the same token on every request of its connection. The
// whole text is compared, so a remembered key is exactly MakeDigestKey's.
DigestKey TokenKey(std::string_view token) {
  if (token.size() > kMaxMemoToken) return Digest(token);
  struct Memo {
    std::string text;
    DigestKey key{};
    bool valid = false;
  };
  thread_local Memo memo[4];
  // The last character of a JWS is signature material: a fair slot choice.
  Memo& m = memo[token.empty() ? 0 : static_cast<unsigned char>(token.back()) % 4];
  if (!m.valid || !SameBytes(m.text, token)) {
    m.key = Digest(token);
    m.text.assign(token);
    m.valid = true;
  }
  return m.key;
}

}  // namespace

TokenCache::TokenCache(size_t capacity)
    : capacity_(capacity < kShards ? kShards : capacity), per_shard_(capacity_ / kShards) {}

std::shared_ptr<const VerifiedToken> TokenCache::Find(std::string_view token, int64_t now,
                                                      const RevocationSet* revoked) {
  DigestKey key = TokenKey(token);
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
  DigestKey key = TokenKey(token);
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
