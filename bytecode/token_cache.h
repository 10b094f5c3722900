// A bounded cache of verified access tokens, so a token presented again
// skips its signature check (DPoP proofs are never cached: each is checked).
// Keyed by the SHA-256 of the token text; an entry holds what verification
// established (the claims JSON and the fields revocation needs) and is
// dropped at the token's `exp`, and on lookup when the current revocation
// set revokes it. Sharded with one mutex per shard; each shard evicts its
// oldest entry when full.
//
// Complexity: O(1) expected per call. Memory: at most `capacity` entries,
// each bounded by the token size limit of the JWS parser.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "bytecode/claims.h"
#include "bytecode/digest_key.h"
#include "bytecode/revocation.h"

namespace vakt::bytecode {

// What verifying an access token established. Immutable once built; shared
// between the cache and the decisions that use it.
struct VerifiedToken {
  std::string claims_json;  // the payload, verified
  std::shared_ptr<const JsonClaims> claims;  // claims_json parsed (read by `token.*`)
  std::string jti;
  std::string sub;
  std::string client_id;
  std::string cnf_jkt;       // cnf.jkt ("" if the token is not DPoP-bound)
  std::string cnf_x5t;       // cnf["x5t#S256"] ("" if not certificate-bound)
  int64_t iat = 0;
  int64_t exp = 0;  // unix seconds; the entry is dropped at exp
  // Identity of the issuer configuration that verified it (IssuerKeys::
  // config_digest): a cached token is only reused under the same issuer,
  // audience, keys and settings.
  std::array<uint8_t, 32> verifier{};
};

class TokenCache {
 public:
  explicit TokenCache(size_t capacity);
  TokenCache(const TokenCache&) = delete;
  TokenCache& operator=(const TokenCache&) = delete;

  // The verified token for `token`, or null if absent, expired at `now`,
  // or revoked by `revoked` (which may be null). Expired or revoked
  // entries are removed.
  std::shared_ptr<const VerifiedToken> Find(std::string_view token, int64_t now,
                                            const RevocationSet* revoked);

  // Remembers a token that verified. Tokens already expired are ignored.
  void Insert(std::string_view token, std::shared_ptr<const VerifiedToken> verified, int64_t now);

  size_t size() const;
  size_t capacity() const { return capacity_; }

 private:
  static constexpr size_t kShards = kDigestShards;
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<DigestKey, std::shared_ptr<const VerifiedToken>, DigestKeyHash> entries;
    std::deque<DigestKey> order;  // insertion order, for eviction
  };
  Shard& ShardFor(const DigestKey& k) { return shards_[DigestShard(k)]; }

  size_t capacity_;
  size_t per_shard_;
  std::array<Shard, kShards> shards_;
};

}  // namespace vakt::bytecode
