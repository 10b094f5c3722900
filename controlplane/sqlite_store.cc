// SqliteStore: the Store contract over one SQLite connection. Every mutation
// runs in BEGIN IMMEDIATE ... COMMIT together with its audit row, so a crash
// or an error leaves the file as it was before or after, never between; WAL
// with synchronous=FULL makes a committed mutation survive power loss. Every
// value is bound as a parameter (no SQL is built from caller data), every
// input is bounded (sqlite_store.h), stored blobs are re-hashed when read,
// and SQLite's result codes map onto Status codes in one place (SqlError).
// The schema lives in kMigrations, applied in order, one transaction each,
// with PRAGMA user_version recording how far a file has come.
// See docs/controlplane-store.md; tested by tests/cp_store_test.cc.
#include "controlplane/sqlite_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <ctime>
#include <limits>
#include <nlohmann/json.hpp>
#include <string_view>
#include <utility>

#include "bytecode/sha256.h"

namespace vakt::controlplane {

namespace {

// Migration N (1-based) takes a file from user_version N-1 to N. Append only:
// a released step is never edited, since files out there already ran it.
constexpr const char* kMigrations[] = {
    // 1: the initial schema.
    R"sql(
CREATE TABLE policies (
  name TEXT PRIMARY KEY,
  created_at INTEGER NOT NULL
) STRICT;
CREATE TABLE blobs (
  digest TEXT PRIMARY KEY,
  size INTEGER NOT NULL,
  bytes BLOB NOT NULL
) STRICT;
CREATE TABLE versions (
  version INTEGER PRIMARY KEY AUTOINCREMENT,
  policy TEXT NOT NULL REFERENCES policies(name),
  source_digest TEXT NOT NULL,
  bundle_digest TEXT NOT NULL REFERENCES blobs(digest),
  bundle_size INTEGER NOT NULL,
  signature BLOB NOT NULL,
  key_id TEXT NOT NULL,
  author TEXT NOT NULL,
  message TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  UNIQUE (policy, source_digest)
) STRICT;
CREATE INDEX versions_by_policy ON versions(policy, version);
CREATE TABLE version_files (
  version INTEGER NOT NULL REFERENCES versions(version),
  path TEXT NOT NULL,
  blob TEXT NOT NULL REFERENCES blobs(digest),
  PRIMARY KEY (version, path)
) STRICT, WITHOUT ROWID;
CREATE INDEX version_files_by_blob ON version_files(blob);
CREATE TABLE rollouts (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  policy TEXT NOT NULL REFERENCES policies(name),
  version INTEGER NOT NULL REFERENCES versions(version),
  previous_version INTEGER NOT NULL,
  selector TEXT NOT NULL,
  stages TEXT NOT NULL,
  stage INTEGER NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('progressing', 'paused', 'halted', 'complete',
                                       'rolled_back', 'superseded')),
  auto_advance INTEGER NOT NULL,
  nack_threshold_percent INTEGER NOT NULL,
  created_by TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  reason TEXT NOT NULL
) STRICT;
CREATE INDEX rollouts_by_policy ON rollouts(policy, id);
CREATE TABLE agents (
  id TEXT PRIMARY KEY,
  labels TEXT NOT NULL,
  first_seen INTEGER NOT NULL,
  last_seen INTEGER NOT NULL,
  active_version INTEGER NOT NULL,
  active_digest TEXT NOT NULL,
  nacked_version INTEGER NOT NULL,
  last_error TEXT NOT NULL,
  revocation_revision INTEGER NOT NULL,
  agent_version TEXT NOT NULL,
  peer TEXT NOT NULL
) STRICT;
CREATE TABLE revocations (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL CHECK (kind IN ('jti', 'sub', 'client_id')),
  value TEXT NOT NULL,
  not_after INTEGER NOT NULL,
  reason TEXT NOT NULL,
  created_by TEXT NOT NULL,
  created_at INTEGER NOT NULL
) STRICT;
CREATE TABLE counters (
  name TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) STRICT;
INSERT INTO counters (name, value) VALUES ('revocation_revision', 0);
CREATE TABLE principals (
  name TEXT PRIMARY KEY,
  role TEXT NOT NULL CHECK (role IN ('viewer', 'author', 'deployer', 'admin')),
  token_hash TEXT NOT NULL UNIQUE,
  created_by TEXT NOT NULL,
  created_at INTEGER NOT NULL
) STRICT;
CREATE TABLE audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  time INTEGER NOT NULL,
  principal TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  result TEXT NOT NULL,
  detail TEXT NOT NULL
) STRICT;
PRAGMA application_id = 1447119700;
)sql",
};
static_assert(std::size(kMigrations) == static_cast<size_t>(kSqliteSchemaVersion),
              "kSqliteSchemaVersion must equal the number of migrations");
static_assert(kSqliteApplicationId == 1447119700, "migration 1 writes the application id");

#define VAKT_TRY(expr)               \
  do {                               \
    Status vakt_try_s_ = (expr);     \
    if (!vakt_try_s_.ok()) return vakt_try_s_; \
  } while (0)

// The one mapping from SQLite result codes to Status codes.
Status SqlError(sqlite3* db, int rc, std::string_view what) {
  std::string msg = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  if (msg.empty() || msg == "not an error") msg = sqlite3_errstr(rc);
  msg += " (";
  msg += what;
  msg += ")";
  switch (rc & 0xff) {
    case SQLITE_FULL:
      return ResourceExhausted("disk full: " + msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return ResourceExhausted("database is locked: " + msg);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Corruption("database corrupt: " + msg);
    case SQLITE_NOMEM:
      return ResourceExhausted("out of memory: " + msg);
    default:
      return IoError("sqlite: " + msg);
  }
}

Status Exec(sqlite3* db, const char* sql, std::string_view what) {
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  return rc == SQLITE_OK ? Status::Ok() : SqlError(db, rc, what);
}

// A prepared statement. Bind errors are remembered and reported by Step.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db), sql_(sql) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &st_, nullptr);
  }
  ~Stmt() { sqlite3_finalize(st_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& Int(int i, int64_t v) {
    if (rc_ == SQLITE_OK) rc_ = sqlite3_bind_int64(st_, i, v);
    return *this;
  }
  Stmt& Text(int i, std::string_view s) {
    if (rc_ == SQLITE_OK) {
      rc_ = sqlite3_bind_text64(st_, i, s.empty() ? "" : s.data(), s.size(), SQLITE_TRANSIENT,
                                SQLITE_UTF8);
    }
    return *this;
  }
  Stmt& Blob(int i, std::string_view s) {
    if (rc_ == SQLITE_OK) {
      rc_ = s.empty() ? sqlite3_bind_zeroblob(st_, i, 0)
                      : sqlite3_bind_blob64(st_, i, s.data(), s.size(), SQLITE_TRANSIENT);
    }
    return *this;
  }

  // true: a row is ready; false: done.
  Result<bool> Step() {
    if (rc_ != SQLITE_OK) return SqlError(db_, rc_, sql_);
    int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    rc_ = rc;
    return SqlError(db_, rc, Summary());
  }
  // Steps to the end, ignoring rows.
  Status Run() {
    while (true) {
      Result<bool> r = Step();
      if (!r.ok()) return r.status();
      if (!*r) return Status::Ok();
    }
  }

  int64_t I64(int c) const { return sqlite3_column_int64(st_, c); }
  uint64_t U64(int c) const {
    int64_t v = sqlite3_column_int64(st_, c);
    return v < 0 ? 0 : static_cast<uint64_t>(v);
  }
  bool IsNull(int c) const { return sqlite3_column_type(st_, c) == SQLITE_NULL; }
  std::string Str(int c) const {
    const void* p = sqlite3_column_blob(st_, c);
    int n = sqlite3_column_bytes(st_, c);
    return p == nullptr || n <= 0 ? std::string() : std::string(static_cast<const char*>(p),
                                                                static_cast<size_t>(n));
  }

 private:
  // The statement's first words, for error messages.
  std::string Summary() const {
    std::string_view s(sql_);
    while (!s.empty() && (s.front() == ' ' || s.front() == '\n')) s.remove_prefix(1);
    return std::string(s.substr(0, std::min<size_t>(s.size(), 40)));
  }

  sqlite3* db_;
  const char* sql_;
  sqlite3_stmt* st_ = nullptr;
  int rc_ = SQLITE_OK;
};

// A transaction: BEGIN IMMEDIATE for a mutation (the write lock up front, so
// a busy database fails before anything is done), plain BEGIN for a read
// snapshot; ROLLBACK on destruction unless committed (SQLite may already have
// rolled back after SQLITE_FULL or SQLITE_IOERR: then there is nothing to do).
class Txn {
 public:
  explicit Txn(sqlite3* db) : db_(db) {}
  ~Txn() {
    if (active_ && sqlite3_get_autocommit(db_) == 0) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
  }
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;

  Status Begin(const char* sql = "BEGIN IMMEDIATE") {
    VAKT_TRY(Exec(db_, sql, "begin transaction"));
    active_ = true;
    return Status::Ok();
  }
  Status Commit() {
    VAKT_TRY(Exec(db_, "COMMIT", "commit"));
    active_ = false;
    return Status::Ok();
  }

 private:
  sqlite3* db_;
  bool active_ = false;
};

Result<int64_t> QueryInt(sqlite3* db, const char* sql) {
  Stmt st(db, sql);
  Result<bool> row = st.Step();
  if (!row.ok()) return row.status();
  if (!*row) return Internal(std::string("no row from ") + sql);
  return st.I64(0);
}

Result<std::string> QueryText(sqlite3* db, const char* sql) {
  Stmt st(db, sql);
  Result<bool> row = st.Step();
  if (!row.ok()) return row.status();
  if (!*row) return Internal(std::string("no row from ") + sql);
  return st.Str(0);
}

std::string Sha256Hex(std::string_view bytes) {
  std::array<uint8_t, 32> md = bytecode::Sha256(bytes);
  return bytecode::HexLower(md.data(), md.size());
}

bool IsHex64(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// A user-visible quote, cut short and without control characters.
std::string Quote(std::string_view s) {
  std::string out = "`";
  for (char c : s.substr(0, std::min<size_t>(s.size(), 64))) {
    out.push_back(static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? '?' : c);
  }
  if (s.size() > 64) out += "...";
  out += "`";
  return out;
}

Status CheckName(std::string_view field, std::string_view s) {
  if (s.empty()) return InvalidArgument(std::string(field) + " is empty");
  if (s.size() > kMaxStoreNameBytes) {
    return InvalidArgument(std::string(field) + " is longer than " +
                           std::to_string(kMaxStoreNameBytes) + " bytes");
  }
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return InvalidArgument(std::string(field) + " " + Quote(s) + " has a control character");
    }
  }
  return Status::Ok();
}

Status CheckSize(std::string_view field, std::string_view s, size_t max) {
  if (s.size() > max) {
    return InvalidArgument(std::string(field) + " is longer than " + std::to_string(max) +
                           " bytes");
  }
  return Status::Ok();
}

Status CheckId(std::string_view field, uint64_t v) {
  if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return InvalidArgument(std::string(field) + " is out of range");
  }
  return Status::Ok();
}

Status CheckLabels(std::string_view field, const Labels& labels) {
  if (labels.size() > kMaxStoreLabels) {
    return InvalidArgument(std::string(field) + " has more than " +
                           std::to_string(kMaxStoreLabels) + " labels");
  }
  for (const auto& [k, v] : labels) {
    VAKT_TRY(CheckName(std::string(field) + " key", k));
    VAKT_TRY(CheckSize(std::string(field) + " value", v, kMaxStoreNameBytes));
  }
  return Status::Ok();
}

// Labels as a JSON object with sorted keys: one text per label set, so that
// selectors compare equal as strings.
Result<std::string> LabelsJson(std::string_view field, const Labels& labels) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : labels) j[k] = v;
  try {
    return j.dump();
  } catch (const nlohmann::json::exception&) {
    return InvalidArgument(std::string(field) + " is not valid UTF-8");
  }
}

Result<Labels> ParseLabels(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Corruption("stored labels are not an object");
  Labels out;
  for (const auto& [k, v] : j.items()) {
    if (!v.is_string()) return Corruption("stored label value is not a string");
    out[k] = v.get<std::string>();
  }
  return out;
}

Result<std::vector<uint32_t>> ParseStages(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_array() || j.size() > kMaxRolloutStages) {
    return Corruption("stored rollout stages are not an array");
  }
  std::vector<uint32_t> out;
  for (const auto& v : j) {
    if (!v.is_number_unsigned() || v.get<uint64_t>() > 100) {
      return Corruption("stored rollout stage is not a percentage");
    }
    out.push_back(static_cast<uint32_t>(v.get<uint64_t>()));
  }
  return out;
}

// Cuts s to at most max bytes on a UTF-8 boundary, marking the cut.
std::string Truncate(std::string_view s, size_t max) {
  if (s.size() <= max) return std::string(s);
  size_t n = max - 3;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xc0) == 0x80) --n;
  return std::string(s.substr(0, n)) + "...";
}

Status InsertAudit(sqlite3* db, const AuditEntry& a, int64_t now) {
  Stmt st(db,
          "INSERT INTO audit (time, principal, action, target, result, detail) "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
  st.Int(1, a.time != 0 ? a.time : now)
      .Text(2, Truncate(a.principal.empty() ? "system" : a.principal, kMaxAuditFieldBytes))
      .Text(3, Truncate(a.action, kMaxAuditFieldBytes))
      .Text(4, Truncate(a.target, kMaxAuditFieldBytes))
      .Text(5, Truncate(a.result.empty() ? "ok" : a.result, kMaxAuditFieldBytes))
      .Text(6, Truncate(a.detail, kMaxAuditFieldBytes));
  return st.Run();
}

// The caller's entry with the store's defaults for a mutation.
AuditEntry Defaults(const AuditEntry& in, const char* action, const std::string& target) {
  AuditEntry a = in;
  if (a.action.empty()) a.action = action;
  if (a.target.empty()) a.target = target;
  return a;
}

uint32_t ClampLimit(uint32_t limit) {
  if (limit == 0) return kDefaultListLimit;
  return std::min(limit, kMaxListLimit);
}

constexpr const char* kVersionColumns =
    "version, policy, source_digest, bundle_digest, bundle_size, signature, key_id, author, "
    "message, created_at";

VersionRecord ReadVersion(const Stmt& st) {
  VersionRecord v;
  v.version = st.U64(0);
  v.policy = st.Str(1);
  v.source_digest = st.Str(2);
  v.bundle_digest = st.Str(3);
  v.bundle_size = st.U64(4);
  v.signature = st.Str(5);
  v.key_id = st.Str(6);
  v.author = st.Str(7);
  v.message = st.Str(8);
  v.created_at = st.I64(9);
  return v;
}

constexpr const char* kRolloutColumns =
    "id, policy, version, previous_version, selector, stages, stage, state, auto_advance, "
    "nack_threshold_percent, created_by, created_at, updated_at, reason";

Result<RolloutRecord> ReadRollout(const Stmt& st) {
  RolloutRecord r;
  r.id = st.U64(0);
  r.policy = st.Str(1);
  r.version = st.U64(2);
  r.previous_version = st.U64(3);
  Result<Labels> selector = ParseLabels(st.Str(4));
  if (!selector.ok()) return selector.status();
  r.selector = std::move(*selector);
  Result<std::vector<uint32_t>> stages = ParseStages(st.Str(5));
  if (!stages.ok()) return stages.status();
  r.stages = std::move(*stages);
  r.stage = static_cast<uint32_t>(st.U64(6));
  std::optional<RolloutState> state = ParseRolloutState(st.Str(7));
  if (!state) return Corruption("stored rollout state is unknown");
  r.state = *state;
  r.auto_advance = st.I64(8) != 0;
  r.nack_threshold_percent = static_cast<uint32_t>(st.U64(9));
  r.created_by = st.Str(10);
  r.created_at = st.I64(11);
  r.updated_at = st.I64(12);
  r.reason = st.Str(13);
  return r;
}

Result<std::vector<RolloutRecord>> ReadRollouts(Stmt& st) {
  std::vector<RolloutRecord> out;
  while (true) {
    Result<bool> row = st.Step();
    if (!row.ok()) return row.status();
    if (!*row) return out;
    Result<RolloutRecord> r = ReadRollout(st);
    if (!r.ok()) return r.status();
    out.push_back(std::move(*r));
  }
}

// The policy of a version; kNotFound if there is none.
Result<std::string> VersionPolicy(sqlite3* db, uint64_t version) {
  if (version == 0 || CheckId("version", version).ok() == false) {
    return NotFound("version " + std::to_string(version) + " not found");
  }
  Stmt st(db, "SELECT policy FROM versions WHERE version = ?1");
  st.Int(1, static_cast<int64_t>(version));
  Result<bool> row = st.Step();
  if (!row.ok()) return row.status();
  if (!*row) return NotFound("version " + std::to_string(version) + " not found");
  return st.Str(0);
}

Status CheckCount(sqlite3* db, const char* sql, size_t max, std::string_view what) {
  Result<int64_t> n = QueryInt(db, sql);
  if (!n.ok()) return n.status();
  if (*n > static_cast<int64_t>(max)) {
    return ResourceExhausted("more than " + std::to_string(max) + " " + std::string(what));
  }
  return Status::Ok();
}

Status BumpRevocationRevision(sqlite3* db) {
  return Stmt(db, "UPDATE counters SET value = value + 1 WHERE name = 'revocation_revision'")
      .Run();
}

}  // namespace

SqliteStore::SqliteStore(sqlite3* db, SqliteOptions opts) : db_(db), opts_(std::move(opts)) {}

SqliteStore::~SqliteStore() { sqlite3_close_v2(db_); }

int64_t SqliteStore::Now() const {
  return opts_.clock ? opts_.clock() : static_cast<int64_t>(std::time(nullptr));
}

Result<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path,
                                                       SqliteOptions opts) {
  if (path.empty() || path.find('\0') != std::string::npos) {
    return InvalidArgument("bad database path " + Quote(path));
  }
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  // The store owns the handle from here on, even when opening failed.
  std::unique_ptr<SqliteStore> store(new SqliteStore(db, std::move(opts)));
  if (rc != SQLITE_OK) {
    Status s = SqlError(db, rc, "open " + Quote(path));
    if (s.code() == StatusCode::kCorruption) return s;
    return IoError("cannot open " + Quote(path) + ": " + s.message());
  }
  Status s = store->Init(path);
  if (!s.ok()) return s;
  return store;
}

Status SqliteStore::Init(const std::string& path) {
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, std::clamp(opts_.busy_timeout_ms, 0, 600000));
  if (sqlite3_db_readonly(db_, "main") == 1) {
    return IoError("database " + Quote(path) + " is read-only");
  }

  // The first read of the header: a file that is not SQLite fails here.
  Result<int64_t> app_id = QueryInt(db_, "PRAGMA application_id");
  if (!app_id.ok()) return app_id.status();
  Result<int64_t> version = QueryInt(db_, "PRAGMA user_version");
  if (!version.ok()) return version.status();
  if (*app_id != 0 && *app_id != kSqliteApplicationId) {
    return Unsupported("database " + Quote(path) + " belongs to another application (id " +
                       std::to_string(*app_id) + ")");
  }
  if (*version > kSqliteSchemaVersion) {
    return Unsupported("database schema version " + std::to_string(*version) +
                       " is newer than this build supports (" +
                       std::to_string(kSqliteSchemaVersion) + "); upgrade vakt-controlplane");
  }
  if (*version < 0) return Corruption("negative schema version");
  if (*version == 0) {
    Result<int64_t> tables = QueryInt(db_, "SELECT count(*) FROM sqlite_schema");
    if (!tables.ok()) return tables.status();
    if (*tables > 0) {
      return Unsupported("database " + Quote(path) +
                         " has tables but no Vakt schema version; not a Vakt store");
    }
  }

  const bool in_memory = path == ":memory:";
  Result<std::string> mode = QueryText(db_, "PRAGMA journal_mode = WAL");
  if (!mode.ok()) return mode.status();
  if (*mode != "wal" && !(in_memory && *mode == "memory")) {
    return IoError("cannot enable WAL journal mode (got " + Quote(*mode) + ")");
  }
  VAKT_TRY(Exec(db_, "PRAGMA synchronous = FULL", "synchronous"));
  VAKT_TRY(Exec(db_, "PRAGMA foreign_keys = ON", "foreign_keys"));
  Result<int64_t> fk = QueryInt(db_, "PRAGMA foreign_keys");
  if (!fk.ok()) return fk.status();
  if (*fk != 1) return IoError("cannot enable foreign keys");
  if (opts_.max_page_count != 0) {
    // An integer we own, not caller data.
    std::string sql = "PRAGMA max_page_count = " + std::to_string(opts_.max_page_count);
    VAKT_TRY(Exec(db_, sql.c_str(), "max_page_count"));
  }
  if (opts_.quick_check_on_open) {
    Result<std::string> check = QueryText(db_, "PRAGMA quick_check(1)");
    if (!check.ok()) return check.status();
    if (*check != "ok") return Corruption("quick_check: " + Truncate(*check, 200));
  }

  for (int64_t v = *version + 1; v <= kSqliteSchemaVersion; ++v) {
    Txn txn(db_);
    VAKT_TRY(txn.Begin());
    // Another process may have migrated while we waited for the lock.
    Result<int64_t> now_at = QueryInt(db_, "PRAGMA user_version");
    if (!now_at.ok()) return now_at.status();
    if (*now_at >= v) continue;
    VAKT_TRY(Exec(db_, kMigrations[v - 1], "migration " + std::to_string(v)));
    std::string set = "PRAGMA user_version = " + std::to_string(v);
    VAKT_TRY(Exec(db_, set.c_str(), "set user_version"));
    VAKT_TRY(txn.Commit());
  }
  return Status::Ok();
}

Result<int> SqliteStore::SchemaVersion() {
  std::lock_guard<std::mutex> lock(mu_);
  Result<int64_t> v = QueryInt(db_, "PRAGMA user_version");
  if (!v.ok()) return v.status();
  return static_cast<int>(*v);
}

// ---- versions

Result<PublishOutcome> SqliteStore::Publish(const NewVersion& v, const AuditEntry& audit) {
  VAKT_TRY(CheckName("policy name", v.policy));
  if (v.files.empty()) return InvalidArgument("a version needs at least one source file");
  if (v.files.size() > kMaxStoreFiles) {
    return InvalidArgument("more than " + std::to_string(kMaxStoreFiles) + " source files");
  }
  size_t total = v.bundle.size();
  for (size_t i = 0; i < v.files.size(); ++i) {
    const SourceFile& f = v.files[i];
    if (f.path.empty() || f.path.size() > kMaxStorePathBytes ||
        f.path.find('\0') != std::string::npos) {
      return InvalidArgument("bad source path " + Quote(f.path));
    }
    if (i > 0 && !(v.files[i - 1].path < f.path)) {
      return InvalidArgument("source files are not sorted by path or repeat " + Quote(f.path));
    }
    VAKT_TRY(CheckSize("source file " + Quote(f.path), f.content, kMaxStoreBlobBytes));
    total += f.content.size();
  }
  if (v.bundle.empty()) return InvalidArgument("empty bundle");
  VAKT_TRY(CheckSize("bundle", v.bundle, kMaxStoreBlobBytes));
  if (total > kMaxStoreVersionBytes) {
    return InvalidArgument("version is larger than " + std::to_string(kMaxStoreVersionBytes) +
                           " bytes");
  }
  VAKT_TRY(CheckSize("signature", v.signature, kMaxStoreNameBytes));
  VAKT_TRY(CheckSize("key id", v.key_id, kMaxStoreNameBytes));
  VAKT_TRY(CheckSize("author", v.author, kMaxStoreNameBytes));
  VAKT_TRY(CheckSize("message", v.message, kMaxStoreTextBytes));
  if (!IsHex64(v.bundle_digest) || Sha256Hex(v.bundle) != v.bundle_digest) {
    return InvalidArgument("bundle digest " + Quote(v.bundle_digest) +
                           " is not the SHA-256 of the bundle");
  }
  if (!IsHex64(v.source_digest) || SourceDigest(v.files) != v.source_digest) {
    return InvalidArgument("source digest " + Quote(v.source_digest) +
                           " is not the digest of the files");
  }
  std::vector<std::string> file_digests;
  file_digests.reserve(v.files.size());
  for (const SourceFile& f : v.files) file_digests.push_back(Sha256Hex(f.content));

  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = Now();
  Txn txn(db_);
  VAKT_TRY(txn.Begin());

  PublishOutcome out;
  {
    std::string sql = std::string("SELECT ") + kVersionColumns +
                      " FROM versions WHERE policy = ?1 AND source_digest = ?2";
    Stmt st(db_, sql.c_str());
    st.Text(1, v.policy).Text(2, v.source_digest);
    Result<bool> row = st.Step();
    if (!row.ok()) return row.status();
    if (*row) {
      out.version = ReadVersion(st);
      std::string target = v.policy + "@" + std::to_string(out.version.version);
      AuditEntry a = Defaults(audit, "publish", target);
      a.detail = "unchanged: same sources as version " + std::to_string(out.version.version) +
                 (a.detail.empty() ? "" : "; " + a.detail);
      VAKT_TRY(InsertAudit(db_, a, now));
      VAKT_TRY(txn.Commit());
      return out;
    }
  }

  VAKT_TRY(Stmt(db_, "INSERT INTO policies (name, created_at) VALUES (?1, ?2) "
                     "ON CONFLICT (name) DO NOTHING")
               .Text(1, v.policy)
               .Int(2, now)
               .Run());
  auto put_blob = [&](const std::string& digest, const std::string& bytes) {
    return Stmt(db_, "INSERT INTO blobs (digest, size, bytes) VALUES (?1, ?2, ?3) "
                     "ON CONFLICT (digest) DO NOTHING")
        .Text(1, digest)
        .Int(2, static_cast<int64_t>(bytes.size()))
        .Blob(3, bytes)
        .Run();
  };
  VAKT_TRY(put_blob(v.bundle_digest, v.bundle));
  for (size_t i = 0; i < v.files.size(); ++i) VAKT_TRY(put_blob(file_digests[i], v.files[i].content));

  VAKT_TRY(Stmt(db_,
                "INSERT INTO versions (policy, source_digest, bundle_digest, bundle_size, "
                "signature, key_id, author, message, created_at) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")
               .Text(1, v.policy)
               .Text(2, v.source_digest)
               .Text(3, v.bundle_digest)
               .Int(4, static_cast<int64_t>(v.bundle.size()))
               .Blob(5, v.signature)
               .Text(6, v.key_id)
               .Text(7, v.author)
               .Text(8, v.message)
               .Int(9, now)
               .Run());
  const int64_t version = sqlite3_last_insert_rowid(db_);
  for (size_t i = 0; i < v.files.size(); ++i) {
    VAKT_TRY(Stmt(db_, "INSERT INTO version_files (version, path, blob) VALUES (?1, ?2, ?3)")
                 .Int(1, version)
                 .Text(2, v.files[i].path)
                 .Text(3, file_digests[i])
                 .Run());
  }
  std::string target = v.policy + "@" + std::to_string(version);
  AuditEntry a = Defaults(audit, "publish", target);
  a.detail = "created version " + std::to_string(version) +
             (a.detail.empty() ? "" : "; " + a.detail);
  VAKT_TRY(InsertAudit(db_, a, now));
  VAKT_TRY(txn.Commit());

  out.created = true;
  out.version.policy = v.policy;
  out.version.version = static_cast<uint64_t>(version);
  out.version.source_digest = v.source_digest;
  out.version.bundle_digest = v.bundle_digest;
  out.version.bundle_size = v.bundle.size();
  out.version.signature = v.signature;
  out.version.key_id = v.key_id;
  out.version.author = v.author;
  out.version.message = v.message;
  out.version.created_at = now;
  return out;
}

Result<std::vector<VersionRecord>> SqliteStore::ListVersions(std::string_view policy,
                                                             uint32_t limit) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string sql = std::string("SELECT ") + kVersionColumns + " FROM versions " +
                    (policy.empty() ? "" : "WHERE policy = ?2 ") +
                    "ORDER BY version DESC LIMIT ?1";
  Stmt st(db_, sql.c_str());
  st.Int(1, ClampLimit(limit));
  if (!policy.empty()) st.Text(2, policy);
  std::vector<VersionRecord> out;
  while (true) {
    Result<bool> row = st.Step();
    if (!row.ok()) return row.status();
    if (!*row) return out;
    out.push_back(ReadVersion(st));
  }
}

Result<VersionRecord> SqliteStore::GetVersion(uint64_t version, bool with_files,
                                              bool with_bundle) {
  std::string missing = "version " + std::to_string(version) + " not found";
  if (version == 0 || !CheckId("version", version).ok()) return NotFound(missing);
  std::lock_guard<std::mutex> lock(mu_);
  // One read transaction, so the row and its blobs are one snapshot.
  Txn txn(db_);
  VAKT_TRY(txn.Begin("BEGIN"));
  VersionRecord out;
  {
    std::string sql = std::string("SELECT ") + kVersionColumns + " FROM versions WHERE version = ?1";
    Stmt st(db_, sql.c_str());
    st.Int(1, static_cast<int64_t>(version));
    Result<bool> row = st.Step();
    if (!row.ok()) return row.status();
    if (!*row) return NotFound(missing);
    out = ReadVersion(st);
  }
  const std::string where = "version " + std::to_string(version);
  if (with_bundle) {
    Stmt st(db_, "SELECT bytes FROM blobs WHERE digest = ?1");
    st.Text(1, out.bundle_digest);
    Result<bool> row = st.Step();
    if (!row.ok()) return row.status();
    if (!*row) return Corruption("the bundle blob of " + where + " is missing");
    out.bundle = st.Str(0);
    if (out.bundle.size() != out.bundle_size || Sha256Hex(out.bundle) != out.bundle_digest) {
      return Corruption("the bundle blob of " + where + " fails its digest " + out.bundle_digest);
    }
  }
  if (with_files) {
    Stmt st(db_,
            "SELECT f.path, f.blob, b.bytes FROM version_files f "
            "LEFT JOIN blobs b ON b.digest = f.blob WHERE f.version = ?1 ORDER BY f.path");
    st.Int(1, static_cast<int64_t>(version));
    while (true) {
      Result<bool> row = st.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      if (out.files.size() >= kMaxStoreFiles) return Corruption(where + " has too many files");
      SourceFile f{st.Str(0), st.Str(2)};
      if (st.IsNull(2)) return Corruption("the blob of " + Quote(f.path) + " in " + where +
                                          " is missing");
      if (Sha256Hex(f.content) != st.Str(1)) {
        return Corruption("the blob of " + Quote(f.path) + " in " + where +
                          " fails its digest " + st.Str(1));
      }
      out.files.push_back(std::move(f));
    }
    if (SourceDigest(out.files) != out.source_digest) {
      return Corruption("the files of " + where + " do not match its source digest");
    }
  }
  return out;
}

Status SqliteStore::SetSignature(uint64_t version, const std::string& key_id,
                                 const std::string& signature, const AuditEntry& audit) {
  VAKT_TRY(CheckName("key id", key_id));
  VAKT_TRY(CheckSize("signature", signature, kMaxStoreNameBytes));
  if (signature.empty()) return InvalidArgument("empty signature");
  std::lock_guard<std::mutex> lock(mu_);
  Txn txn(db_);
  VAKT_TRY(txn.Begin());
  Result<std::string> policy = VersionPolicy(db_, version);
  if (!policy.ok()) return policy.status();
  VAKT_TRY(Stmt(db_, "UPDATE versions SET key_id = ?1, signature = ?2 WHERE version = ?3")
               .Text(1, key_id)
               .Blob(2, signature)
               .Int(3, static_cast<int64_t>(version))
               .Run());
  VAKT_TRY(InsertAudit(
      db_, Defaults(audit, "version.sign", *policy + "@" + std::to_string(version)), Now()));
  return txn.Commit();
}

// ---- rollouts

Result<RolloutRecord> SqliteStore::CreateRollout(const RolloutRecord& r, const AuditEntry& audit) {
  VAKT_TRY(CheckName("policy name", r.policy));
  VAKT_TRY(CheckLabels("selector", r.selector));
  if (r.stages.empty() || r.stages.size() > kMaxRolloutStages) {
    return InvalidArgument("a rollout needs 1 to " + std::to_string(kMaxRolloutStages) +
                           " stages");
  }
  for (size_t i = 0; i < r.stages.size(); ++i) {
    if (r.stages[i] == 0 || r.stages[i] > 100 || (i > 0 && r.stages[i] <= r.stages[i - 1])) {
      return InvalidArgument("rollout stages must be increasing percentages in 1..100");
    }
  }
  if (r.stages.back() != 100) return InvalidArgument("the last rollout stage must be 100");
  if (r.stage >= r.stages.size()) return InvalidArgument("rollout stage index out of range");
  if (!ParseRolloutState(RolloutStateName(r.state))) {
    return InvalidArgument("unknown rollout state");
  }
  if (r.nack_threshold_percent > 100) return InvalidArgument("nack threshold above 100%");
  VAKT_TRY(CheckSize("created_by", r.created_by, kMaxStoreNameBytes));
  VAKT_TRY(CheckSize("reason", r.reason, kMaxStoreTextBytes));
  Result<std::string> selector = LabelsJson("selector", r.selector);
  if (!selector.ok()) return selector.status();
  nlohmann::json stages_json = r.stages;
  const std::string stages = stages_json.dump();

  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = Now();
  Txn txn(db_);
  VAKT_TRY(txn.Begin());
  Result<std::string> vp = VersionPolicy(db_, r.version);
  if (!vp.ok()) return vp.status();
  if (*vp != r.policy) {
    return InvalidArgument("version " + std::to_string(r.version) + " is not of policy " +
                           Quote(r.policy));
  }
  if (r.previous_version != 0) {
    Result<std::string> pp = VersionPolicy(db_, r.previous_version);
    if (!pp.ok()) return pp.status();
    if (*pp != r.policy) {
      return InvalidArgument("previous version " + std::to_string(r.previous_version) +
                             " is not of policy " + Quote(r.policy));
    }
  }
  VAKT_TRY(Stmt(db_,
                "INSERT INTO rollouts (policy, version, previous_version, selector, stages, "
                "stage, state, auto_advance, nack_threshold_percent, created_by, created_at, "
                "updated_at, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, "
                "?12)")
               .Text(1, r.policy)
               .Int(2, static_cast<int64_t>(r.version))
               .Int(3, static_cast<int64_t>(r.previous_version))
               .Text(4, *selector)
               .Text(5, stages)
               .Int(6, r.stage)
               .Text(7, RolloutStateName(r.state))
               .Int(8, r.auto_advance ? 1 : 0)
               .Int(9, r.nack_threshold_percent)
               .Text(10, r.created_by)
               .Int(11, now)
               .Text(12, r.reason)
               .Run());
  const int64_t id = sqlite3_last_insert_rowid(db_);
  VAKT_TRY(Stmt(db_,
                "UPDATE rollouts SET state = 'superseded', updated_at = ?1, reason = ?2 "
                "WHERE policy = ?3 AND selector = ?4 AND id < ?5 "
                "AND state IN ('progressing', 'paused', 'halted')")
               .Int(1, now)
               .Text(2, "superseded by rollout " + std::to_string(id))
               .Text(3, r.policy)
               .Text(4, *selector)
               .Int(5, id)
               .Run());
  VAKT_TRY(InsertAudit(db_, Defaults(audit, "rollout.create", "rollout " + std::to_string(id)),
                       now));
  VAKT_TRY(txn.Commit());
  RolloutRecord out = r;
  out.id = static_cast<uint64_t>(id);
  out.created_at = now;
  out.updated_at = now;
  return out;
}

Status SqliteStore::UpdateRollout(const RolloutRecord& r, const AuditEntry& audit) {
  if (!ParseRolloutState(RolloutStateName(r.state))) {
    return InvalidArgument("unknown rollout state");
  }
  VAKT_TRY(CheckSize("reason", r.reason, kMaxStoreTextBytes));
  const std::string missing = "rollout " + std::to_string(r.id) + " not found";
  if (r.id == 0 || !CheckId("rollout id", r.id).ok()) return NotFound(missing);
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = Now();
  Txn txn(db_);
  VAKT_TRY(txn.Begin());
  {
    Stmt st(db_, "SELECT stages FROM rollouts WHERE id = ?1");
    st.Int(1, static_cast<int64_t>(r.id));
    Result<bool> row = st.Step();
    if (!row.ok()) return row.status();
    if (!*row) return NotFound(missing);
    Result<std::vector<uint32_t>> stages = ParseStages(st.Str(0));
    if (!stages.ok()) return stages.status();
    if (r.stage >= stages->size()) return InvalidArgument("rollout stage index out of range");
  }
  VAKT_TRY(Stmt(db_,
                "UPDATE rollouts SET stage = ?1, state = ?2, reason = ?3, updated_at = ?4 "
                "WHERE id = ?5")
               .Int(1, r.stage)
               .Text(2, RolloutStateName(r.state))
               .Text(3, r.reason)
               .Int(4, now)
               .Int(5, static_cast<int64_t>(r.id))
               .Run());
  VAKT_TRY(InsertAudit(db_, Defaults(audit, "rollout.update", "rollout " + std::to_string(r.id)),
                       now));
  return txn.Commit();
}

Result<RolloutRecord> SqliteStore::GetRollout(uint64_t id) {
  const std::string missing = "rollout " + std::to_string(id) + " not found";
  if (id == 0 || !CheckId("rollout id", id).ok()) return NotFound(missing);
  std::lock_guard<std::mutex> lock(mu_);
  std::string sql = std::string("SELECT ") + kRolloutColumns + " FROM rollouts WHERE id = ?1";
  Stmt st(db_, sql.c_str());
  st.Int(1, static_cast<int64_t>(id));
  Result<bool> row = st.Step();
  if (!row.ok()) return row.status();
  if (!*row) return NotFound(missing);
  return ReadRollout(st);
}

Result<std::vector<RolloutRecord>> SqliteStore::ListRollouts(std::string_view policy,
                                                             uint32_t limit) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string sql = std::string("SELECT ") + kRolloutColumns + " FROM rollouts " +
                    (policy.empty() ? "" : "WHERE policy = ?2 ") + "ORDER BY id DESC LIMIT ?1";
  Stmt st(db_, sql.c_str());
  st.Int(1, ClampLimit(limit));
  if (!policy.empty()) st.Text(2, policy);
  return ReadRollouts(st);
}

// ---- agents

Status SqliteStore::UpsertAgents(const std::vector<AgentRecord>& agents) {
  if (agents.size() > kMaxStoreAgents) {
    return InvalidArgument("more than " + std::to_string(kMaxStoreAgents) + " agents");
  }
  std::vector<std::string> labels;
  labels.reserve(agents.size());
  for (const AgentRecord& a : agents) {
    VAKT_TRY(CheckName("agent id", a.id));
    VAKT_TRY(CheckLabels("agent labels", a.labels));
    VAKT_TRY(CheckId("active version", a.active_version));
    VAKT_TRY(CheckId("nacked version", a.nacked_version));
    VAKT_TRY(CheckId("revocation revision", a.revocation_revision));
    VAKT_TRY(CheckSize("active digest", a.active_digest, kMaxStoreNameBytes));
    VAKT_TRY(CheckSize("last error", a.last_error, kMaxStoreTextBytes));
    VAKT_TRY(CheckSize("agent version", a.agent_version, kMaxStoreNameBytes));
    VAKT_TRY(CheckSize("peer", a.peer, kMaxStoreNameBytes));
    Result<std::string> j = LabelsJson("agent labels", a.labels);
    if (!j.ok()) return j.status();
    labels.push_back(std::move(*j));
  }
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = Now();
  Txn txn(db_);
  VAKT_TRY(txn.Begin());
  for (size_t i = 0; i < agents.size(); ++i) {
    const AgentRecord& a = agents[i];
    VAKT_TRY(Stmt(db_,
                  "INSERT INTO agents (id, labels, first_seen, last_seen, active_version, "
                  "active_digest, nacked_version, last_error, revocation_revision, "
                  "agent_version, peer) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) "
                  "ON CONFLICT (id) DO UPDATE SET labels = excluded.labels, "
                  "last_seen = excluded.last_seen, active_version = excluded.active_version, "
                  "active_digest = excluded.active_digest, "
                  "nacked_version = excluded.nacked_version, last_error = excluded.last_error, "
                  "revocation_revision = excluded.revocation_revision, "
                  "agent_version = excluded.agent_version, peer = excluded.peer")
                 .Text(1, a.id)
                 .Text(2, labels[i])
                 .Int(3, a.first_seen != 0 ? a.first_seen : now)
                 .Int(4, a.last_seen != 0 ? a.last_seen : now)
                 .Int(5, static_cast<int64_t>(a.active_version))
                 .Text(6, a.active_digest)
                 .Int(7, static_cast<int64_t>(a.nacked_version))
                 .Text(8, a.last_error)
                 .Int(9, static_cast<int64_t>(a.revocation_revision))
                 .Text(10, a.agent_version)
                 .Text(11, a.peer)
                 .Run());
  }
  VAKT_TRY(CheckCount(db_, "SELECT count(*) FROM agents", kMaxStoreAgents, "agents"));
  return txn.Commit();
}

Result<std::vector<AgentRecord>> SqliteStore::ListAgents() {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st(db_,
          "SELECT id, labels, first_seen, last_seen, active_version, active_digest, "
          "nacked_version, last_error, revocation_revision, agent_version, peer "
          "FROM agents ORDER BY id LIMIT ?1");
  st.Int(1, static_cast<int64_t>(kMaxStoreAgents));
  std::vector<AgentRecord> out;
  while (true) {
    Result<bool> row = st.Step();
    if (!row.ok()) return row.status();
    if (!*row) return out;
    AgentRecord a;
    a.id = st.Str(0);
    Result<Labels> labels = ParseLabels(st.Str(1));
    if (!labels.ok()) return labels.status();
    a.labels = std::move(*labels);
    a.first_seen = st.I64(2);
    a.last_seen = st.I64(3);
    a.active_version = st.U64(4);
    a.active_digest = st.Str(5);
    a.nacked_version = st.U64(6);
    a.last_error = st.Str(7);
    a.revocation_revision = st.U64(8);
    a.agent_version = st.Str(9);
    a.peer = st.Str(10);
    out.push_back(std::move(a));
  }
}

// ---- revocations

Result<RevocationRecord> SqliteStore::AddRevocation(const RevocationRecord& r,
                                                    const AuditEntry& audit) {
  if (!ParseRevocationKind(RevocationKindName(r.kind))) {
    return InvalidArgument("unknown revocation kind");
  }
  if (r.value.empty()) return InvalidArgument("empty revocation value");
  VAKT_TRY(CheckSize("revocation value", r.value, kMaxRevocationValueBytes));
  VAKT_TRY(CheckSize("reason", r.reason, kMaxStoreTextBytes));
  VAKT_TRY(CheckSize("created_by", r.created_by, kMaxStoreNameBytes));
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = Now();
  RevocationRecord out = r;
  out.created_at = r.created_at != 0 ? r.created_at : now;
  Txn txn(db_);
  VAKT_TRY(txn.Begin());
  VAKT_TRY(Stmt(db_,
                "INSERT INTO revocations (kind, value, not_after, reason, created_by, "
                "created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
               .Text(1, RevocationKindName(r.kind))
               .Text(2, r.value)
               .Int(3, r.not_after)
               .Text(4, r.reason)
               .Text(5, r.created_by)
               .Int(6, out.created_at)
               .Run());
  out.id = static_cast<uint64_t>(sqlite3_last_insert_rowid(db_));
  VAKT_TRY(CheckCount(db_, "SELECT count(*) FROM revocations", kMaxStoreRevocations,
                      "revocations"));
  VAKT_TRY(BumpRevocationRevision(db_));
  VAKT_TRY(InsertAudit(
      db_, Defaults(audit, "revocation.add", "revocation " + std::to_string(out.id)), now));
  VAKT_TRY(txn.Commit());
  return out;
}

Status SqliteStore::RemoveRevocation(uint64_t id, const AuditEntry& audit) {
  const std::string missing = "revocation " + std::to_string(id) + " not found";
  if (id == 0 || !CheckId("revocation id", id).ok()) return NotFound(missing);
  std::lock_guard<std::mutex> lock(mu_);
  Txn txn(db_);
  VAKT_TRY(txn.Begin());
  VAKT_TRY(Stmt(db_, "DELETE FROM revocations WHERE id = ?1")
               .Int(1, static_cast<int64_t>(id))
               .Run());
  if (sqlite3_changes(db_) == 0) return NotFound(missing);
  VAKT_TRY(BumpRevocationRevision(db_));
  VAKT_TRY(InsertAudit(
      db_, Defaults(audit, "revocation.remove", "revocation " + std::to_string(id)), Now()));
  return txn.Commit();
}

Result<RevocationList> SqliteStore::ListRevocations() {
  std::lock_guard<std::mutex> lock(mu_);
  Txn txn(db_);  // a read snapshot: the revision matches the items
  VAKT_TRY(txn.Begin("BEGIN"));
  RevocationList out;
  Result<int64_t> rev =
      QueryInt(db_, "SELECT value FROM counters WHERE name = 'revocation_revision'");
  if (!rev.ok()) return rev.status();
  out.revision = static_cast<uint64_t>(*rev);
  Stmt st(db_,
          "SELECT id, kind, value, not_after, reason, created_by, created_at FROM revocations "
          "ORDER BY id LIMIT ?1");
  st.Int(1, static_cast<int64_t>(kMaxStoreRevocations));
  while (true) {
    Result<bool> row = st.Step();
    if (!row.ok()) return row.status();
    if (!*row) return out;
    RevocationRecord r;
    r.id = st.U64(0);
    std::optional<RevocationKind> kind = ParseRevocationKind(st.Str(1));
    if (!kind) return Corruption("stored revocation kind is unknown");
    r.kind = *kind;
    r.value = st.Str(2);
    r.not_after = st.I64(3);
    r.reason = st.Str(4);
    r.created_by = st.Str(5);
    r.created_at = st.I64(6);
    out.items.push_back(std::move(r));
  }
}

// ---- principals

Status SqliteStore::CreatePrincipal(const PrincipalRecord& p, const AuditEntry& audit) {
  VAKT_TRY(CheckName("principal name", p.name));
  if (!ParseRole(RoleName(p.role))) return InvalidArgument("unknown role");
  if (!IsHex64(p.token_hash)) {
    return InvalidArgument("token hash is not 64 lowercase hex digits");
  }
  VAKT_TRY(CheckSize("created_by", p.created_by, kMaxStoreNameBytes));
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = Now();
  Txn txn(db_);
  VAKT_TRY(txn.Begin());
  {
    Stmt st(db_, "SELECT name = ?1 AS same FROM principals WHERE name = ?1 OR token_hash = ?2 "
                 "ORDER BY same DESC LIMIT 1");
    st.Text(1, p.name).Text(2, p.token_hash);
    Result<bool> row = st.Step();
    if (!row.ok()) return row.status();
    if (*row) {
      return InvalidArgument(st.I64(0) != 0 ? "principal " + Quote(p.name) + " exists"
                                            : std::string("token hash already in use"));
    }
  }
  VAKT_TRY(Stmt(db_,
                "INSERT INTO principals (name, role, token_hash, created_by, created_at) "
                "VALUES (?1, ?2, ?3, ?4, ?5)")
               .Text(1, p.name)
               .Text(2, RoleName(p.role))
               .Text(3, p.token_hash)
               .Text(4, p.created_by)
               .Int(5, p.created_at != 0 ? p.created_at : now)
               .Run());
  VAKT_TRY(CheckCount(db_, "SELECT count(*) FROM principals", kMaxStorePrincipals,
                      "principals"));
  VAKT_TRY(InsertAudit(db_, Defaults(audit, "token.create", "principal " + p.name), now));
  return txn.Commit();
}

Status SqliteStore::DeletePrincipal(std::string_view name, const AuditEntry& audit) {
  std::lock_guard<std::mutex> lock(mu_);
  Txn txn(db_);
  VAKT_TRY(txn.Begin());
  VAKT_TRY(Stmt(db_, "DELETE FROM principals WHERE name = ?1").Text(1, name).Run());
  if (sqlite3_changes(db_) == 0) return NotFound("principal " + Quote(name) + " not found");
  VAKT_TRY(InsertAudit(
      db_, Defaults(audit, "token.delete", "principal " + std::string(name)), Now()));
  return txn.Commit();
}

namespace {
PrincipalRecord ReadPrincipal(const Stmt& st) {
  PrincipalRecord p;
  p.name = st.Str(0);
  p.role = ParseRole(st.Str(1)).value_or(Role::kViewer);  // CHECK constraint keeps it known
  p.token_hash = st.Str(2);
  p.created_by = st.Str(3);
  p.created_at = st.I64(4);
  return p;
}
}  // namespace

Result<std::optional<PrincipalRecord>> SqliteStore::FindPrincipalByTokenHash(
    std::string_view token_hash) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st(db_,
          "SELECT name, role, token_hash, created_by, created_at FROM principals "
          "WHERE token_hash = ?1");
  st.Text(1, token_hash);
  Result<bool> row = st.Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<PrincipalRecord>();
  return std::optional<PrincipalRecord>(ReadPrincipal(st));
}

Result<std::vector<PrincipalRecord>> SqliteStore::ListPrincipals() {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st(db_,
          "SELECT name, role, token_hash, created_by, created_at FROM principals "
          "ORDER BY name LIMIT ?1");
  st.Int(1, static_cast<int64_t>(kMaxStorePrincipals));
  std::vector<PrincipalRecord> out;
  while (true) {
    Result<bool> row = st.Step();
    if (!row.ok()) return row.status();
    if (!*row) return out;
    out.push_back(ReadPrincipal(st));
  }
}

// ---- audit

Status SqliteStore::AppendAudit(const AuditEntry& audit) {
  if (audit.action.empty()) return InvalidArgument("audit entry without an action");
  std::lock_guard<std::mutex> lock(mu_);
  Txn txn(db_);
  VAKT_TRY(txn.Begin());
  VAKT_TRY(InsertAudit(db_, audit, Now()));
  return txn.Commit();
}

Result<std::vector<AuditEntry>> SqliteStore::ListAudit(uint64_t after_id, uint32_t limit) {
  std::vector<AuditEntry> out;
  if (!CheckId("audit id", after_id).ok()) return out;
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st(db_,
          "SELECT id, time, principal, action, target, result, detail FROM audit "
          "WHERE id > ?1 ORDER BY id LIMIT ?2");
  st.Int(1, static_cast<int64_t>(after_id)).Int(2, ClampLimit(limit));
  while (true) {
    Result<bool> row = st.Step();
    if (!row.ok()) return row.status();
    if (!*row) return out;
    AuditEntry a;
    a.id = st.U64(0);
    a.time = st.I64(1);
    a.principal = st.Str(2);
    a.action = st.Str(3);
    a.target = st.Str(4);
    a.result = st.Str(5);
    a.detail = st.Str(6);
    out.push_back(std::move(a));
  }
}

#undef VAKT_TRY

}  // namespace vakt::controlplane
