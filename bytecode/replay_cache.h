// DPoP `jti` replay cache (RFC 9449 section 11.1): remembers every proof id
// seen within the acceptance window and refuses a second use. Bounded in
// memory (a fixed capacity, split over shards), entries expire with the
// window, safe under concurrency (one mutex per shard). Keys are SHA-256
// digests of the id, so a huge `jti` costs 32 bytes.
//
// When a shard is full of live entries the cache refuses new ids (kFull):
// the caller denies the proof. Failing closed under a flood is the price of
// never forgetting an id inside its window.
//
// Complexity: O(1) expected per call, plus amortised O(1) expiry work.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "bytecode/digest_key.h"

namespace vakt::bytecode {

class ReplayCache {
 public:
  enum class Outcome : uint8_t { kNew, kReplay, kFull };

  // `capacity` entries in all (at least one per shard); ids are remembered
  // for `window_seconds` after first use.
  ReplayCache(size_t capacity, int64_t window_seconds);
  ReplayCache(const ReplayCache&) = delete;
  ReplayCache& operator=(const ReplayCache&) = delete;

  // Records `id` as used at `now` (unix seconds). kReplay if it was used
  // within the window; kFull if it cannot be remembered.
  Outcome Use(std::string_view id, int64_t now);

  // Live entries (for metrics); expired ones may still be counted until the
  // next call on their shard.
  size_t size() const;
  size_t capacity() const { return capacity_; }

  // How long new ids are remembered from now on (at least 1 s). An agent
  // sets it to the longest acceptance span of the active bundle's routes
  // (dpop_window + 2 * leeway), so the cache holds no longer than needed.
  // Ids already remembered keep their expiry.
  void set_window(int64_t window_seconds) {
    window_.store(window_seconds < 1 ? 1 : window_seconds, std::memory_order_relaxed);
  }
  int64_t window() const { return window_.load(std::memory_order_relaxed); }

 private:
  static constexpr size_t kShards = kDigestShards;
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<DigestKey, int64_t, DigestKeyHash> expiry;  // key -> expiry time
    std::deque<std::pair<int64_t, DigestKey>> order;                // insertion order
  };
  void Expire(Shard& s, int64_t now);

  size_t capacity_;
  size_t per_shard_;
  std::atomic<int64_t> window_;
  std::array<Shard, kShards> shards_;
};

}  // namespace vakt::bytecode
