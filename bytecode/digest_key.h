// The key layout shared by the runtime's digest-keyed caches (the DPoP
// replay cache, replay_cache.h, and the verified-token cache,
// token_cache.h): an attacker-sized string (a proof id, a token) is keyed by
// its SHA-256, so every entry costs 32 bytes whatever the input size, and
// the digest's own bytes serve as the hash and pick one of kDigestShards
// shards (no extra hashing, and an attacker cannot aim at one bucket
// without breaking SHA-256). Header-only; O(input) to build a key, O(1)
// after that. Thread-safe (no state).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "bytecode/sha256.h"

namespace vakt::bytecode {

using DigestKey = std::array<uint8_t, 32>;

// Hash of a DigestKey for unordered containers: its first bytes (already a
// cryptographic digest).
struct DigestKeyHash {
  size_t operator()(const DigestKey& k) const noexcept {
    size_t h;
    std::memcpy(&h, k.data(), sizeof h);
    return h;
  }
};

// Shards of a digest-keyed cache, one mutex each.
inline constexpr size_t kDigestShards = 16;

// The shard of `k`: from its last byte, independent of DigestKeyHash's bytes.
inline size_t DigestShard(const DigestKey& k) { return k[31] % kDigestShards; }

// The key of `text`.
inline DigestKey MakeDigestKey(std::string_view text) { return Sha256(text); }

}  // namespace vakt::bytecode
