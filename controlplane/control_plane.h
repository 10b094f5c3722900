// The control plane's core: every admin operation (publish, rollouts,
// rollback, revocations, tokens) as a method that checks its input, commits
// through the Store with its audit entry, and then rebuilds the snapshot
// that the agent stream server pushes from. It also runs the background
// loop that writes agent telemetry to the store and moves rollouts on their
// own (auto-advance when a stage has ACKed, halt when NACKs pass the
// threshold).
//
// The admin gRPC service (admin_server.h) is a thin layer over this class:
// authentication and roles there, semantics here, so tests can drive the
// semantics without a network.
//
// Thread-safety: all methods may be called from any thread; mutations are
// serialised by one mutex (the store's transactions are short; publish
// compiles outside the lock).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bytecode/status.h"
#include "controlplane/decisions.h"
#include "controlplane/fleet.h"
#include "controlplane/rollout.h"
#include "controlplane/signing.h"
#include "controlplane/snapshot.h"
#include "controlplane/store.h"

namespace vakt::controlplane {

struct Principal {
  std::string name;
  Role role = Role::kViewer;
};

struct PublishDiagnostic {
  std::string severity;  // "error" | "warning"
  std::string file;
  uint32_t line = 0;
  uint32_t column = 0;
  std::string message;
  std::string formatted;
};

struct PublishResult {
  VersionRecord version;
  bool created = false;
  std::vector<PublishDiagnostic> diagnostics;  // warnings
};

// The fleet view of one agent.
struct AgentStatus {
  AgentRecord record;
  bool connected = false;
  Assignment desired;
  std::string state;  // in_sync | pending | nacked | unassigned | disconnected
};

struct RolloutStatus {
  RolloutRecord rollout;
  StageProgress progress;
};

struct ControlPlaneOptions {
  // Limits on a published policy set.
  size_t max_files = 1000;
  size_t max_total_bytes = 64u << 20;
  size_t max_path_bytes = 256;
  // How many rollouts (newest first) are layers of the snapshot.
  size_t max_layers = 1000;
  int64_t flush_interval_ms = 1000;
  int64_t evaluate_interval_ms = 50;
  // Decision logs kept in memory (newest; decisions.h). Not persisted.
  size_t max_decisions = DecisionStore::kDefaultCapacity;
  std::function<int64_t()> now_unix;  // default: the system clock
};

class ControlPlane {
 public:
  // REQUIRES: store outlives the ControlPlane.
  ControlPlane(Store* store, BundleSigner signer, ControlPlaneOptions opts = {});
  ~ControlPlane();

  // Signs versions the current key has not signed (first start after a key
  // rotation, or a crash between publish and sign), loads the fleet and the
  // first snapshot, and starts the background loop.
  Status Start();
  // Stops the loop and flushes agent records. Idempotent.
  void Stop();

  // ---- operations (each audited under `who`)
  // Compile errors: kInvalidArgument whose message holds every formatted
  // diagnostic; `diagnostics` (if given) gets them one by one as well.
  Result<PublishResult> Publish(const Principal& who, const std::string& policy,
                                std::vector<SourceFile> files, const std::string& message,
                                std::vector<PublishDiagnostic>* diagnostics = nullptr);
  Result<RolloutStatus> StartRollout(const Principal& who, RolloutRecord request);
  Result<RolloutStatus> AdvanceRollout(const Principal& who, uint64_t id);
  Result<RolloutStatus> PauseRollout(const Principal& who, uint64_t id);
  Result<RolloutStatus> ResumeRollout(const Principal& who, uint64_t id);
  // id 0: the newest live rollout of `policy`.
  Result<RolloutStatus> Rollback(const Principal& who, uint64_t id, const std::string& policy);
  Result<RolloutStatus> GetRollout(uint64_t id);
  Result<std::vector<RolloutStatus>> ListRollouts(const std::string& policy, uint32_t limit);
  std::vector<AgentStatus> ListAgents(const Labels& selector);
  Result<RevocationRecord> AddRevocation(const Principal& who, RevocationRecord r);
  Status RemoveRevocation(const Principal& who, uint64_t id);
  // Returns the new token (shown once).
  Result<std::string> CreateToken(const Principal& who, const std::string& name, Role role);
  Status DeleteToken(const Principal& who, const std::string& name);
  // Records a refused or failed call (nothing changed).
  void AuditRefusal(const Principal& who, const std::string& action, const std::string& target,
                    const std::string& error);

  // Looks a bearer token up: kUnauthenticated if unknown.
  Result<Principal> Authenticate(std::string_view token);

  // If no principal exists: creates "admin" (role admin) with a new token
  // written to DATA_DIR/admin.token (0600) and returns true; else false.
  Result<bool> BootstrapAdmin(const std::string& data_dir);

  bool KnownVersion(uint64_t version, const std::string& digest);
  SnapshotCache& snapshots() { return snapshots_; }
  Fleet& fleet() { return *fleet_; }
  Store& store() { return *store_; }
  const BundleSigner& signer() const { return signer_; }

 private:
  int64_t Now() const;
  Status RebuildSnapshotLocked();
  // Signs `v` with the current key (and stores it) unless it already is.
  Status EnsureSignedLocked(VersionRecord* v);
  Status StorePrincipal(const Principal& who, const std::string& name, Role role,
                        const std::string& token);
  Result<RolloutStatus> Transition(const Principal& who, uint64_t id, const std::string& action,
                                   const std::function<Status(RolloutRecord*)>& step);
  StageProgress ProgressOf(const RolloutRecord& r, const std::vector<AgentLive>& agents) const;
  RolloutStatus StatusOf(const RolloutRecord& r);
  void Loop();
  void EvaluateRollouts();
  void FlushAgents();

  Store* store_;
  BundleSigner signer_;
  ControlPlaneOptions opts_;
  std::unique_ptr<Fleet> fleet_;
  SnapshotCache snapshots_;

  std::mutex mu_;  // serialises mutations and snapshot rebuilds
  uint64_t generation_ = 0;
  std::map<uint64_t, std::shared_ptr<const BundleBlob>> bundle_cache_;

  std::mutex loop_mu_;
  std::condition_variable loop_cv_;
  bool stop_ = false;
  bool started_ = false;
  std::atomic<bool> kick_{false};  // a rollout changed: evaluate now
  std::thread loop_;
};

// Checks a policy name: [a-z0-9][a-z0-9_.-]{0,63}.
Status CheckPolicyName(std::string_view name);
// Checks and normalises a published file set: relative '/'-separated paths
// without '.', '..' or empty segments, no duplicates, within the limits;
// at least one `.vakt` file. Sorts by path.
Status CheckFileSet(std::vector<SourceFile>* files, const ControlPlaneOptions& opts);

}  // namespace vakt::controlplane
