// The snapshot cache (after go-control-plane's): an immutable, versioned
// view of what agents should run, rebuilt from the store after every change
// and checked with Consistent() before it is published to the stream server.
// The stream server only reads snapshots and is told of new ones through the
// narrow SnapshotSource interface; it never reaches into the store.
//
// A Snapshot holds the rollouts (newest first, the layers DesiredFor walks),
// the bundles those rollouts name (bytes shared, never copied per agent) and
// the revocation set. Thread-safety: a Snapshot is immutable after
// construction; SnapshotCache is thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "bytecode/status.h"
#include "controlplane/rollout.h"
#include "controlplane/store.h"

namespace vakt::controlplane {

// One signed bundle as agents receive it.
struct BundleBlob {
  std::string policy;
  uint64_t version = 0;
  std::string bytes;
  std::string digest;     // SHA-256 hex of bytes
  std::string signature;  // Ed25519, bytecode/bundle_signature.h
  std::string key_id;
};

class Snapshot {
 public:
  Snapshot(uint64_t generation, std::vector<RolloutRecord> rollouts_newest_first,
           std::map<uint64_t, std::shared_ptr<const BundleBlob>> bundles,
           RevocationList revocations);

  // Every version a live rollout layer names has its bundle, of the same
  // policy, whose bytes hash to its digest and which carries a signature.
  // O(layers + total bundle bytes).
  Status Consistent() const;

  uint64_t generation() const { return generation_; }
  // What the rollouts give this agent (rollout.h DesiredFor).
  Assignment DesiredFor(std::string_view agent_id, const Labels& labels) const;
  // nullptr when the version is not in this snapshot.
  const BundleBlob* Bundle(uint64_t version) const;
  const std::vector<RolloutRecord>& rollouts() const { return rollouts_; }
  const RevocationList& revocations() const { return revocations_; }

 private:
  uint64_t generation_;
  std::vector<RolloutRecord> rollouts_;
  std::map<uint64_t, std::shared_ptr<const BundleBlob>> bundles_;
  RevocationList revocations_;
};

using SnapshotPtr = std::shared_ptr<const Snapshot>;

// What the stream server needs: the current snapshot and word of new ones.
class SnapshotSource {
 public:
  virtual ~SnapshotSource() = default;
  virtual SnapshotPtr Current() const = 0;
  // `fn` runs on the thread that calls Set(), after the swap; it must not
  // call Watch/Unwatch. Returns a handle for Unwatch.
  virtual uint64_t Watch(std::function<void(const SnapshotPtr&)> fn) = 0;
  virtual void Unwatch(uint64_t handle) = 0;
};

class SnapshotCache : public SnapshotSource {
 public:
  SnapshotCache();
  SnapshotPtr Current() const override;
  // Refuses (and keeps the current one) unless next->Consistent() and its
  // generation is newer; then notifies every watcher.
  Status Set(SnapshotPtr next);
  uint64_t Watch(std::function<void(const SnapshotPtr&)> fn) override;
  void Unwatch(uint64_t handle) override;

 private:
  mutable std::mutex mu_;
  SnapshotPtr current_;
  std::map<uint64_t, std::function<void(const SnapshotPtr&)>> watchers_;
  uint64_t next_handle_ = 1;
  std::mutex notify_mu_;  // one Set() notifies at a time, in order
};

}  // namespace vakt::controlplane
