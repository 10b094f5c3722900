// Token revocation: a set of revoked token ids (`jti`) and, per subject
// (`sub`) and per client (`client_id`), a cut-off time: every token issued
// at or before the cut-off is revoked. The control plane replaces the whole
// set atomically; deciders read an immutable snapshot, so a decision sees
// one consistent set however often it is swapped.
//
// Complexity: O(1) expected per check; a snapshot costs O(entries) memory.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace vakt::bytecode {

class RevocationSet {
 public:
  void RevokeJti(std::string jti) { jtis_.insert(std::move(jti)); }
  // Tokens of `sub` issued at or before `cutoff` (unix seconds) are revoked.
  void RevokeSubject(std::string sub, int64_t cutoff) { Raise(subjects_, std::move(sub), cutoff); }
  void RevokeClient(std::string client_id, int64_t cutoff) {
    Raise(clients_, std::move(client_id), cutoff);
  }

  // True if a token with these claims is revoked. `iat` is the token's
  // issue time; a token without `iat` counts as issued at the epoch, so a
  // subject cut-off revokes it.
  bool IsRevoked(std::string_view jti, std::string_view sub, std::string_view client_id,
                 int64_t iat) const;

  size_t size() const { return jtis_.size() + subjects_.size() + clients_.size(); }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using CutOffs = std::unordered_map<std::string, int64_t, Hash, std::equal_to<>>;
  static void Raise(CutOffs& m, std::string key, int64_t cutoff);

  std::unordered_set<std::string, Hash, std::equal_to<>> jtis_;
  CutOffs subjects_;
  CutOffs clients_;
};

// Holds the current RevocationSet. Replace() swaps it atomically; Get()
// returns a snapshot that stays valid for as long as the caller keeps it.
// Thread-safe.
class RevocationHolder {
 public:
  RevocationHolder() : current_(std::make_shared<const RevocationSet>()) {}
  std::shared_ptr<const RevocationSet> Get() const {
    std::lock_guard<std::mutex> lock(mu_);
    return current_;
  }
  void Replace(std::shared_ptr<const RevocationSet> next) {
    if (!next) next = std::make_shared<const RevocationSet>();
    std::lock_guard<std::mutex> lock(mu_);
    current_.swap(next);
  }

 private:
  mutable std::mutex mu_;  // guards the pointer only; sets are immutable
  std::shared_ptr<const RevocationSet> current_;
};

}  // namespace vakt::bytecode
