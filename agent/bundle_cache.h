// The agent's on-disk cache of the last good bundle (and the last revocation
// set), so that an agent restarted while the control plane is unreachable
// starts protecting its service at once instead of failing closed until the
// control plane returns.
//
// Files, in the cache directory (created 0700 if missing):
//   bundle.vakt-cache       the bundle last activated from the control plane
//   revocations.vakt-cache  the revocation set last applied
//
// Both use one framing (little-endian integers):
//
//   offset  size  field
//   0       8     magic "VAKTCACH"
//   8       4     format version (kCacheFormatVersion = 1)
//   12      4     kind: 1 = bundle, 2 = revocations
//   16      8     version (bundle version, or revocation revision)
//   24      4     policy length P        (<= kMaxCachedPolicyBytes)
//   28      4     key id length K        (<= kMaxCachedKeyIdBytes)
//   32      4     signature length S     (<= kMaxCachedSignatureBytes)
//   36      4     reserved, 0
//   40      8     payload length L       (<= the cache's max_bytes)
//   48      32    SHA-256 of the payload
//   80      P+K+S policy, key id, signature
//   ...     L     payload: the bundle bytes, or the encoded revocation set
//   end-32  32    SHA-256 of every byte before it (the checksum)
//
// A revocation payload is: u32 jti count, u32 subject count, u32 client
// count, then each jti as (u32 length, bytes), each subject and client as
// (u32 length, bytes, i64 cut-off).
//
// Writes are atomic: a temporary file in the same directory (mode 0600),
// written fully, fsync'd, renamed over the old file, then the directory is
// fsync'd; a crash leaves the old file or the new one, never a mix (and
// perhaps a temporary file, removed by the next save).
//
// Trust: the checksum catches torn or damaged files, not an attacker. The
// bundle is re-verified by Agent::Load (signature by a pinned key, then the
// verifier) before it runs, so a tampered bundle is refused. The revocation
// set carries no signature: whoever can write the cache directory can drop
// revocations, so the directory must belong to the agent's user alone.
//
// Every byte read is untrusted: bounded sizes, no crash on any input.
// Cost: Save and Load are linear in the file (one SHA-256 pass each).
// Thread-safety: Save* and Load* may be called from several threads; saves
// are serialised. One agent per cache directory.
// Tested by tests/agent_cache_test.cc.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "agent/agent.h"
#include "bytecode/revocation.h"
#include "bytecode/status.h"

namespace vakt::agent {

inline constexpr char kCacheMagic[8] = {'V', 'A', 'K', 'T', 'C', 'A', 'C', 'H'};
inline constexpr uint32_t kCacheFormatVersion = 1;
inline constexpr size_t kDefaultMaxCacheBytes = size_t{64} << 20;  // 64 MiB payload
inline constexpr size_t kMaxCachedPolicyBytes = 256;
inline constexpr size_t kMaxCachedKeyIdBytes = 64;
inline constexpr size_t kMaxCachedSignatureBytes = 1024;
// Revocation sets: entries (jtis + subjects + clients) and bytes per value.
inline constexpr size_t kMaxRevocationEntries = size_t{1} << 20;
inline constexpr size_t kMaxRevocationValueBytes = 1024;

struct CachedBundle {
  std::string policy;
  uint64_t version = 0;
  std::string key_id;
  std::string signature;
  std::string bundle;
};

struct CachedRevocations {
  uint64_t revision = 0;
  std::vector<std::string> jtis;
  std::vector<std::pair<std::string, int64_t>> subjects;  // (sub, not_after)
  std::vector<std::pair<std::string, int64_t>> clients;   // (client_id, not_after)

  size_t entries() const { return jtis.size() + subjects.size() + clients.size(); }
};

// Checks the bounds above (entry count, value sizes, no empty value).
// kResourceExhausted or kInvalidArgument naming what is wrong.
Status CheckRevocations(const CachedRevocations& r);
// The immutable set for Agent::SetRevocations. REQUIRES: CheckRevocations ok.
std::shared_ptr<const bytecode::RevocationSet> BuildRevocationSet(const CachedRevocations& r);

class BundleCache {
 public:
  // `dir` is created (mode 0700, one level) by the first Save if missing.
  explicit BundleCache(std::string dir, size_t max_bytes = kDefaultMaxCacheBytes);

  // Writes `b` atomically. kInvalidArgument / kResourceExhausted for fields
  // over the limits; kIoError with the path and the errno text when the
  // directory or file cannot be written (the old file then stays).
  Status Save(const CachedBundle& b);
  // kNotFound if there is no cache file; kCorruption saying what is wrong
  // (magic, version, kind, lengths, digest, checksum, truncation);
  // kResourceExhausted for a file over the limit; kIoError if unreadable.
  // The bundle's signature is NOT checked here: Agent::Load does that.
  Result<CachedBundle> Load() const;

  Status SaveRevocations(const CachedRevocations& r);
  Result<CachedRevocations> LoadRevocations() const;

  const std::string& dir() const { return dir_; }
  const std::string& path() const { return bundle_path_; }
  const std::string& revocations_path() const { return revocations_path_; }
  size_t max_bytes() const { return max_bytes_; }

 private:
  std::string dir_;
  std::string bundle_path_;
  std::string revocations_path_;
  size_t max_bytes_;
  std::mutex save_mu_;
};

// What RestoreFromCache did.
struct RestoreResult {
  bool bundle_loaded = false;
  bool revocations_loaded = false;
  Status bundle_status;       // why the bundle was not loaded (kNotFound: no cache)
  Status revocations_status;  // likewise
};

// Start-up: loads the cached revocations and bundle into `agent` (the
// bundle through Agent::Load, so its signature and the verifier are checked
// again). Anything missing, corrupt or refused is logged and skipped: the
// agent then starts without it (fail closed) and waits for the control
// plane. Never fails as a whole.
RestoreResult RestoreFromCache(const BundleCache& cache, Agent* agent);

}  // namespace vakt::agent
