// The control plane's store: the one place its state lives (policies,
// versions with their sources and signed bundles, rollouts, agents,
// revocations, API principals and the audit log). A narrow interface, after
// go-control-plane's split of store, snapshot cache and stream server, so
// that the embedded SQLite store (sqlite_store.h) can later be joined by a
// PostgreSQL one for several replicas without touching the servers.
//
// Contract for every implementation:
// - Each mutation and its audit entry commit in one transaction: either both
//   are durable or neither is. A crash at any point leaves the store as it
//   was before or after the mutation, never between.
// - Sources and bundles are content-addressed by SHA-256 (lowercase hex).
//   Publishing sources identical to an existing version of the same policy
//   returns that version (created = false) and writes nothing but the audit
//   entry.
// - Version numbers are global (across policies), start at 1 and increase;
//   0 means "none". Rollout and revocation ids likewise.
// - Reads return copies; the store is thread-safe (callers may share one).
// - Errors: kNotFound for a missing id, kInvalidArgument for a caller's bad
//   value, kIoError / kResourceExhausted (disk full, database locked past
//   the busy timeout) with the backend's message, kCorruption when stored
//   bytes fail their digest.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bytecode/status.h"

namespace vakt::controlplane {

using Labels = std::map<std::string, std::string>;

// Who did what, committed with the mutation it describes.
struct AuditEntry {
  uint64_t id = 0;         // assigned by the store
  int64_t time = 0;        // unix seconds; 0 = now (the store fills it)
  std::string principal;   // token name, or "system"
  std::string action;      // e.g. "publish", "rollout.start", "token.create"
  std::string target;      // e.g. "healthcare@7", "rollout 3"
  std::string result = "ok";  // "ok" or the error
  std::string detail;
};

struct SourceFile {
  std::string path;     // relative, '/'-separated
  std::string content;
};

struct NewVersion {
  std::string policy;
  std::vector<SourceFile> files;   // sorted by path
  std::string source_digest;       // SHA-256 hex over the files (SourceDigest)
  std::string bundle;              // compiled bytes
  std::string bundle_digest;       // SHA-256 hex of bundle
  std::string signature;           // Ed25519 over SignedBundleMessage
  std::string key_id;
  std::string author;
  std::string message;
};

struct VersionRecord {
  std::string policy;
  uint64_t version = 0;
  std::string source_digest;
  std::string bundle_digest;
  uint64_t bundle_size = 0;
  std::string signature;
  std::string key_id;
  std::string author;
  std::string message;
  int64_t created_at = 0;
  std::vector<SourceFile> files;   // only when asked for
  std::string bundle;              // only when asked for
};

struct PublishOutcome {
  VersionRecord version;   // without files and bundle
  bool created = false;
};

enum class RolloutState { kProgressing, kPaused, kHalted, kComplete, kRolledBack, kSuperseded };
const char* RolloutStateName(RolloutState s);
std::optional<RolloutState> ParseRolloutState(std::string_view s);

struct RolloutRecord {
  uint64_t id = 0;                   // assigned by CreateRollout
  std::string policy;
  uint64_t version = 0;
  uint64_t previous_version = 0;
  Labels selector;
  std::vector<uint32_t> stages;      // percentages, increasing, last 100
  uint32_t stage = 0;                // index into stages
  RolloutState state = RolloutState::kProgressing;
  bool auto_advance = false;
  uint32_t nack_threshold_percent = 0;
  std::string created_by;
  int64_t created_at = 0;
  int64_t updated_at = 0;
  std::string reason;
};

struct AgentRecord {
  std::string id;
  Labels labels;
  int64_t first_seen = 0;
  int64_t last_seen = 0;
  uint64_t active_version = 0;       // last ACKed bundle version
  std::string active_digest;
  uint64_t nacked_version = 0;       // last NACKed bundle version (0: none)
  std::string last_error;
  uint64_t revocation_revision = 0;  // last ACKed revocation revision
  std::string agent_version;
  std::string peer;
};

enum class RevocationKind { kJti, kSub, kClientId };
const char* RevocationKindName(RevocationKind k);
std::optional<RevocationKind> ParseRevocationKind(std::string_view s);

struct RevocationRecord {
  uint64_t id = 0;
  RevocationKind kind = RevocationKind::kJti;
  std::string value;
  int64_t not_after = 0;   // sub/client_id cut-off, unix seconds
  std::string reason;
  std::string created_by;
  int64_t created_at = 0;
};

struct RevocationList {
  uint64_t revision = 0;   // increases with every add or remove
  std::vector<RevocationRecord> items;
};

enum class Role { kViewer = 1, kAuthor = 2, kDeployer = 3, kAdmin = 4 };
const char* RoleName(Role r);
std::optional<Role> ParseRole(std::string_view s);

struct PrincipalRecord {
  std::string name;
  Role role = Role::kViewer;
  std::string token_hash;  // SHA-256 hex of the bearer token
  std::string created_by;
  int64_t created_at = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  // The schema version the store has migrated to.
  virtual Result<int> SchemaVersion() = 0;

  // ---- versions
  virtual Result<PublishOutcome> Publish(const NewVersion& v, const AuditEntry& audit) = 0;
  // Newest first; without files and bundle. policy "" = all.
  virtual Result<std::vector<VersionRecord>> ListVersions(std::string_view policy,
                                                          uint32_t limit) = 0;
  virtual Result<VersionRecord> GetVersion(uint64_t version, bool with_files,
                                           bool with_bundle) = 0;
  // Re-signing after a key rotation.
  virtual Status SetSignature(uint64_t version, const std::string& key_id,
                              const std::string& signature, const AuditEntry& audit) = 0;

  // ---- rollouts
  // Assigns id, created_at and updated_at; marks the older progressing,
  // paused or halted rollouts of the same policy and selector superseded.
  virtual Result<RolloutRecord> CreateRollout(const RolloutRecord& r, const AuditEntry& audit) = 0;
  // Replaces the record with r.id (stage, state, reason; sets updated_at).
  virtual Status UpdateRollout(const RolloutRecord& r, const AuditEntry& audit) = 0;
  virtual Result<RolloutRecord> GetRollout(uint64_t id) = 0;
  // Newest first. policy "" = all.
  virtual Result<std::vector<RolloutRecord>> ListRollouts(std::string_view policy,
                                                          uint32_t limit) = 0;

  // ---- agents (telemetry: not audited)
  virtual Status UpsertAgents(const std::vector<AgentRecord>& agents) = 0;
  virtual Result<std::vector<AgentRecord>> ListAgents() = 0;

  // ---- revocations
  virtual Result<RevocationRecord> AddRevocation(const RevocationRecord& r,
                                                 const AuditEntry& audit) = 0;
  virtual Status RemoveRevocation(uint64_t id, const AuditEntry& audit) = 0;
  virtual Result<RevocationList> ListRevocations() = 0;

  // ---- API principals
  // kInvalidArgument if the name exists.
  virtual Status CreatePrincipal(const PrincipalRecord& p, const AuditEntry& audit) = 0;
  virtual Status DeletePrincipal(std::string_view name, const AuditEntry& audit) = 0;
  virtual Result<std::optional<PrincipalRecord>> FindPrincipalByTokenHash(
      std::string_view token_hash) = 0;
  virtual Result<std::vector<PrincipalRecord>> ListPrincipals() = 0;

  // ---- audit
  // For calls that change nothing (refused or failed): the entry alone.
  virtual Status AppendAudit(const AuditEntry& audit) = 0;
  virtual Result<std::vector<AuditEntry>> ListAudit(uint64_t after_id, uint32_t limit) = 0;
};

// SHA-256 hex over a sorted file set, each file as
// u32 path length, path, u64 content length, content (little endian), so
// that no two file sets share a digest by concatenation.
std::string SourceDigest(const std::vector<SourceFile>& sorted_files);

}  // namespace vakt::controlplane
