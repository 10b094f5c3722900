// Snapshots and the snapshot cache. See snapshot.h.
#include "controlplane/snapshot.h"

#include <span>

#include "bytecode/sha256.h"

namespace vakt::controlplane {

Snapshot::Snapshot(uint64_t generation, std::vector<RolloutRecord> rollouts_newest_first,
                   std::map<uint64_t, std::shared_ptr<const BundleBlob>> bundles,
                   RevocationList revocations)
    : generation_(generation),
      rollouts_(std::move(rollouts_newest_first)),
      bundles_(std::move(bundles)),
      revocations_(std::move(revocations)) {}

Status Snapshot::Consistent() const {
  for (size_t i = 0; i < rollouts_.size(); ++i) {
    const RolloutRecord& r = rollouts_[i];
    if (i > 0 && rollouts_[i - 1].id <= r.id) {
      return Internal("snapshot rollouts are not newest first");
    }
    if (r.state == RolloutState::kRolledBack) continue;
    const BundleBlob* b = Bundle(r.version);
    if (b == nullptr) {
      return Internal("rollout " + std::to_string(r.id) + " names version " +
                      std::to_string(r.version) + " which the snapshot lacks");
    }
    if (b->policy != r.policy) {
      return Internal("rollout " + std::to_string(r.id) + " is for policy `" + r.policy +
                      "` but version " + std::to_string(r.version) + " belongs to `" + b->policy +
                      "`");
    }
  }
  for (const auto& [version, b] : bundles_) {
    if (b == nullptr || b->version != version) return Internal("snapshot bundle index is wrong");
    auto d = bytecode::Sha256(b->bytes);
    if (bytecode::HexLower(d.data(), d.size()) != b->digest) {
      return Corruption("bundle of version " + std::to_string(version) +
                        " does not match its digest");
    }
    if (b->signature.empty() || b->key_id.empty()) {
      return Internal("bundle of version " + std::to_string(version) + " is not signed");
    }
  }
  return Status::Ok();
}

Assignment Snapshot::DesiredFor(std::string_view agent_id, const Labels& labels) const {
  return controlplane::DesiredFor(std::span<const RolloutRecord>(rollouts_), agent_id, labels);
}

const BundleBlob* Snapshot::Bundle(uint64_t version) const {
  auto it = bundles_.find(version);
  return it == bundles_.end() ? nullptr : it->second.get();
}

SnapshotCache::SnapshotCache()
    : current_(std::make_shared<const Snapshot>(
          0, std::vector<RolloutRecord>{}, std::map<uint64_t, std::shared_ptr<const BundleBlob>>{},
          RevocationList{})) {}

SnapshotPtr SnapshotCache::Current() const {
  std::lock_guard<std::mutex> l(mu_);
  return current_;
}

Status SnapshotCache::Set(SnapshotPtr next) {
  if (next == nullptr) return InvalidArgument("null snapshot");
  if (Status st = next->Consistent(); !st.ok()) return st;
  std::lock_guard<std::mutex> order(notify_mu_);
  std::vector<std::function<void(const SnapshotPtr&)>> fns;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (next->generation() <= current_->generation()) {
      return InvalidArgument("snapshot generation " + std::to_string(next->generation()) +
                             " is not newer than " + std::to_string(current_->generation()));
    }
    current_ = next;
    for (const auto& [h, fn] : watchers_) fns.push_back(fn);
  }
  for (const auto& fn : fns) fn(next);
  return Status::Ok();
}

uint64_t SnapshotCache::Watch(std::function<void(const SnapshotPtr&)> fn) {
  std::lock_guard<std::mutex> l(mu_);
  uint64_t h = next_handle_++;
  watchers_.emplace(h, std::move(fn));
  return h;
}

void SnapshotCache::Unwatch(uint64_t handle) {
  std::lock_guard<std::mutex> l(mu_);
  watchers_.erase(handle);
}

}  // namespace vakt::controlplane
