// The embedded Store (store.h) over one SQLite file: the control plane's
// single-node state, durable (WAL, synchronous=FULL), with every mutation and
// its audit entry in one BEGIN IMMEDIATE transaction. The schema, the
// migrations, the error mapping and how to back the file up are described in
// docs/controlplane-store.md. Tested by tests/cp_store_test.cc, including a
// SIGKILL crash-consistency loop.
//
// Thread-safety: one connection guarded by one mutex; every method takes it,
// so calls from several threads are serialized (a control plane does a few
// mutations a second; the agents' telemetry is batched by UpsertAgents).
// Several processes may open the same file: SQLite's locks arbitrate, and a
// writer that waits past the busy timeout gets kResourceExhausted.
//
// Costs: a read is one or a few indexed queries, bounded by the list limits
// below; Publish and GetVersion are linear in the bytes of the sources and
// the bundle (one SHA-256 over each).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "bytecode/status.h"
#include "controlplane/store.h"

struct sqlite3;

namespace vakt::controlplane {

// The schema version this build migrates to (PRAGMA user_version).
inline constexpr int kSqliteSchemaVersion = 1;
// PRAGMA application_id of a Vakt store ("VAKT"), so that another program's
// SQLite file is not mistaken for ours.
inline constexpr int32_t kSqliteApplicationId = 0x56414b54;

// Bounds on what a caller may store (kInvalidArgument beyond them) and on the
// lists without a limit parameter (kResourceExhausted when adding past them).
inline constexpr size_t kMaxStoreNameBytes = 256;       // policy, principal, agent id, key id
inline constexpr size_t kMaxStoreTextBytes = 64 * 1024;  // messages, reasons, values
inline constexpr size_t kMaxStorePathBytes = 1024;       // a source file's path
inline constexpr size_t kMaxStoreFiles = 4096;           // files per version
inline constexpr size_t kMaxStoreBlobBytes = 64u << 20;  // one source file or bundle
inline constexpr size_t kMaxStoreLabels = 64;            // labels per agent or selector
inline constexpr size_t kMaxStoreVersionBytes = 256u << 20;  // all files and the bundle
inline constexpr size_t kMaxRevocationValueBytes = 1024;
inline constexpr size_t kMaxRolloutStages = 32;
inline constexpr size_t kMaxStoreAgents = 100000;
inline constexpr size_t kMaxStoreRevocations = 100000;
inline constexpr size_t kMaxStorePrincipals = 10000;
// Audit text fields longer than this are truncated (an audit entry is never
// refused for its length; "..." marks the cut).
inline constexpr size_t kMaxAuditFieldBytes = 4096;
// ListVersions / ListRollouts / ListAudit: limit 0 means this...
inline constexpr uint32_t kDefaultListLimit = 100;
// ...and larger limits are clamped to this.
inline constexpr uint32_t kMaxListLimit = 1000;

struct SqliteOptions {
  // How long a writer waits for another connection's lock before failing
  // with kResourceExhausted ("database is locked: ...").
  int busy_timeout_ms = 5000;
  // PRAGMA max_page_count for this connection: a quota, and the tests' way
  // to simulate a full disk (0 = SQLite's default, effectively unlimited).
  uint32_t max_page_count = 0;
  // Run PRAGMA quick_check when opening (linear in the file size).
  bool quick_check_on_open = false;
  // Unix seconds for created_at / updated_at / audit times; null = time().
  std::function<int64_t()> clock;
};

class SqliteStore : public Store {
 public:
  // Opens (creating if needed) and migrates the database at `path`
  // (":memory:" for a private in-memory database). kCorruption if the file
  // is not SQLite or is damaged, kUnsupported if its schema is newer than
  // kSqliteSchemaVersion or it belongs to another application, kIoError if
  // it cannot be opened.
  static Result<std::unique_ptr<SqliteStore>> Open(const std::string& path,
                                                   SqliteOptions opts = {});
  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  Result<int> SchemaVersion() override;

  Result<PublishOutcome> Publish(const NewVersion& v, const AuditEntry& audit) override;
  Result<std::vector<VersionRecord>> ListVersions(std::string_view policy,
                                                  uint32_t limit) override;
  Result<VersionRecord> GetVersion(uint64_t version, bool with_files, bool with_bundle) override;
  Status SetSignature(uint64_t version, const std::string& key_id, const std::string& signature,
                      const AuditEntry& audit) override;

  Result<RolloutRecord> CreateRollout(const RolloutRecord& r, const AuditEntry& audit) override;
  Status UpdateRollout(const RolloutRecord& r, const AuditEntry& audit) override;
  Result<RolloutRecord> GetRollout(uint64_t id) override;
  Result<std::vector<RolloutRecord>> ListRollouts(std::string_view policy,
                                                  uint32_t limit) override;

  Status UpsertAgents(const std::vector<AgentRecord>& agents) override;
  Result<std::vector<AgentRecord>> ListAgents() override;

  Result<RevocationRecord> AddRevocation(const RevocationRecord& r,
                                         const AuditEntry& audit) override;
  Status RemoveRevocation(uint64_t id, const AuditEntry& audit) override;
  Result<RevocationList> ListRevocations() override;

  Status CreatePrincipal(const PrincipalRecord& p, const AuditEntry& audit) override;
  Status DeletePrincipal(std::string_view name, const AuditEntry& audit) override;
  Result<std::optional<PrincipalRecord>> FindPrincipalByTokenHash(
      std::string_view token_hash) override;
  Result<std::vector<PrincipalRecord>> ListPrincipals() override;

  Status AppendAudit(const AuditEntry& audit) override;
  Result<std::vector<AuditEntry>> ListAudit(uint64_t after_id, uint32_t limit) override;

 private:
  SqliteStore(sqlite3* db, SqliteOptions opts);
  Status Init(const std::string& path);
  int64_t Now() const;

  std::mutex mu_;
  sqlite3* db_;  // owned; guarded by mu_
  SqliteOptions opts_;
};

}  // namespace vakt::controlplane
