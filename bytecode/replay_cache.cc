// DPoP replay cache; see replay_cache.h.
#include "bytecode/replay_cache.h"

#include <openssl/evp.h>

namespace vakt::bytecode {
namespace {

// MakeDigestKey(id), the same SHA-256, through an implementation fetched
// once: with EVP_sha256() OpenSSL 3 fetches it again on every call, which
// costs as much as hashing a proof id does.
DigestKey IdKey(std::string_view id) {
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  DigestKey key{};
  unsigned int len = 0;
  if (md == nullptr || EVP_Digest(id.data(), id.size(), key.data(), &len, md, nullptr) != 1 ||
      len != key.size()) {
    return MakeDigestKey(id);
  }
  return key;
}

}  // namespace

ReplayCache::ReplayCache(size_t capacity, int64_t window_seconds)
    : capacity_(capacity < kShards ? kShards : capacity),
      per_shard_(capacity_ / kShards),
      window_(window_seconds < 1 ? 1 : window_seconds) {}

void ReplayCache::Expire(Shard& s, int64_t now) {
  while (!s.order.empty() && s.order.front().first <= now) {
    auto it = s.expiry.find(s.order.front().second);
    // A later re-insert of the same key (after expiry) has a newer time.
    if (it != s.expiry.end() && it->second <= now) s.expiry.erase(it);
    s.order.pop_front();
  }
}

ReplayCache::Outcome ReplayCache::Use(std::string_view id, int64_t now) {
  DigestKey key = IdKey(id);
  Shard& s = shards_[DigestShard(key)];
  std::lock_guard<std::mutex> lock(s.mu);
  Expire(s, now);
  auto it = s.expiry.find(key);
  if (it != s.expiry.end() && it->second > now) return Outcome::kReplay;
  if (s.expiry.size() >= per_shard_ && it == s.expiry.end()) return Outcome::kFull;
  // `order` may hold stale entries (keys re-used after expiry, or a clock
  // that went backwards). Drop stale ones from the front; never a live one.
  while (s.order.size() >= 2 * per_shard_) {
    auto front = s.expiry.find(s.order.front().second);
    if (front != s.expiry.end() && front->second == s.order.front().first) return Outcome::kFull;
    s.order.pop_front();
  }
  const int64_t window = window_.load(std::memory_order_relaxed);
  int64_t until = now > INT64_MAX - window ? INT64_MAX : now + window;
  // `it` is still valid: nothing above erased from the map.
  if (it != s.expiry.end()) {
    it->second = until;
  } else {
    s.expiry.emplace(key, until);
  }
  s.order.emplace_back(until, key);
  return Outcome::kNew;
}

size_t ReplayCache::size() const {
  size_t n = 0;
  for (const auto& s : shards_) {
    std::lock_guard<std::mutex> lock(s.mu);
    n += s.expiry.size();
  }
  return n;
}

}  // namespace vakt::bytecode
