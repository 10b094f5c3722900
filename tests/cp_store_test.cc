// Tests of the SQLite store (controlplane/sqlite_store.cc) against the Store
// contract (controlplane/store.h): migrations and refusals on open, every
// method with its positive and negative cases, one audit entry per mutation
// and none for a refused one, tampered blobs, a full disk (max_page_count),
// a database locked by another connection, concurrent callers, and a crash
// loop that SIGKILLs a writer child at random moments and checks the file's
// invariants after each kill.
#include "controlplane/sqlite_store.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include "bytecode/sha256.h"

namespace vakt::controlplane {
namespace {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/vakt-cp-store-XXXXXX";
    char* p = mkdtemp(tmpl);
    EXPECT_NE(p, nullptr);
    path_ = p != nullptr ? p : "/tmp";
  }
  ~TempDir() {
    std::error_code ec;
    if (path_ != "/tmp") std::filesystem::remove_all(path_, ec);
  }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A second, raw connection to the same file.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db_), SQLITE_OK);
    sqlite3_busy_timeout(db_, 5000);
  }
  ~RawDb() { sqlite3_close(db_); }
  int Exec(const std::string& sql) {
    return sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
  }
  std::string Text(const std::string& sql) {
    sqlite3_stmt* st = nullptr;
    std::string out = "<error>";
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) == SQLITE_OK) {
      int rc = sqlite3_step(st);
      if (rc == SQLITE_ROW) {
        const unsigned char* t = sqlite3_column_text(st, 0);
        out = t != nullptr ? reinterpret_cast<const char*>(t) : "";
      } else if (rc == SQLITE_DONE) {
        out = "<none>";
      }
    }
    sqlite3_finalize(st);
    return out;
  }
  int64_t Int(const std::string& sql) { return std::stoll(Text(sql)); }
  // Replaces the bytes of one blob.
  int SetBlob(const std::string& digest, const std::string& bytes) {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db_, "UPDATE blobs SET bytes = ?1 WHERE digest = ?2", -1, &st, nullptr);
    sqlite3_bind_blob(st, 1, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, digest.c_str(), -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? sqlite3_changes(db_) : -1;
  }

 private:
  sqlite3* db_ = nullptr;
};

std::string Hex(std::string_view bytes) {
  auto md = bytecode::Sha256(bytes);
  return bytecode::HexLower(md.data(), md.size());
}

NewVersion MakeVersion(const std::string& policy, std::vector<SourceFile> files,
                       const std::string& bundle) {
  NewVersion v;
  v.policy = policy;
  v.files = std::move(files);
  v.source_digest = SourceDigest(v.files);
  v.bundle = bundle;
  v.bundle_digest = Hex(bundle);
  v.signature = std::string(64, '\x01');
  v.key_id = "key-1";
  v.author = "alice";
  v.message = "first";
  return v;
}

NewVersion Simple(const std::string& policy, const std::string& text) {
  return MakeVersion(policy, {{"lib/util.vakt", "fn x() = 1"}, {"main.vakt", text}},
                     "bundle:" + policy + ":" + text);
}

AuditEntry By(const std::string& who, const std::string& action = "") {
  AuditEntry a;
  a.principal = who;
  a.action = action;
  return a;
}

std::unique_ptr<SqliteStore> OpenOk(const std::string& path, SqliteOptions opts = {}) {
  auto s = SqliteStore::Open(path, std::move(opts));
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(s).value() : nullptr;
}

std::vector<AuditEntry> AllAudit(Store& store) {
  std::vector<AuditEntry> all;
  uint64_t after = 0;
  while (true) {
    auto page = store.ListAudit(after, 1000);
    EXPECT_TRUE(page.ok()) << page.status().ToString();
    if (!page.ok() || page->empty()) return all;
    for (auto& e : *page) all.push_back(e);
    after = all.back().id;
  }
}

size_t AuditCount(Store& store) { return AllAudit(store).size(); }

RolloutRecord Rollout(const std::string& policy, uint64_t version, Labels selector) {
  RolloutRecord r;
  r.policy = policy;
  r.version = version;
  r.selector = std::move(selector);
  r.stages = {10, 50, 100};
  r.created_by = "bob";
  return r;
}

// ---- migrations and open

TEST(CpStoreOpen, MigratesFreshFileAndReopens) {
  TempDir dir;
  const std::string path = dir.File("cp.db");
  {
    auto store = OpenOk(path);
    ASSERT_TRUE(store);
    auto v = store->SchemaVersion();
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(*v, kSqliteSchemaVersion);
    ASSERT_TRUE(store->Publish(Simple("p", "a"), By("alice")).ok());
  }
  {
    RawDb raw(path);
    EXPECT_EQ(raw.Int("PRAGMA user_version"), kSqliteSchemaVersion);
    EXPECT_EQ(raw.Int("PRAGMA application_id"), kSqliteApplicationId);
    EXPECT_EQ(raw.Text("PRAGMA journal_mode"), "wal");
    EXPECT_EQ(raw.Int("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN "
                      "('policies', 'blobs', 'versions', 'version_files', 'rollouts', "
                      "'agents', 'revocations', 'counters', 'principals', 'audit')"),
              10);
  }
  for (int i = 0; i < 2; ++i) {  // reopening migrates nothing and writes nothing
    auto store = OpenOk(path);
    ASSERT_TRUE(store);
    EXPECT_EQ(*store->SchemaVersion(), kSqliteSchemaVersion);
    auto list = store->ListVersions("", 0);
    ASSERT_TRUE(list.ok());
    ASSERT_EQ(list->size(), 1u);
    EXPECT_EQ(AuditCount(*store), 1u);
  }
}

TEST(CpStoreOpen, InMemoryWorks) {
  auto store = OpenOk(":memory:");
  ASSERT_TRUE(store);
  EXPECT_EQ(*store->SchemaVersion(), kSqliteSchemaVersion);
  EXPECT_TRUE(store->Publish(Simple("p", "a"), By("alice")).ok());
}

TEST(CpStoreOpen, RefusesSchemaFromTheFuture) {
  TempDir dir;
  const std::string path = dir.File("cp.db");
  ASSERT_TRUE(OpenOk(path));
  {
    RawDb raw(path);
    ASSERT_EQ(raw.Exec("PRAGMA user_version = " + std::to_string(kSqliteSchemaVersion + 1)),
              SQLITE_OK);
  }
  auto s = SqliteStore::Open(path);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(s.status().message().find("newer"), std::string::npos) << s.status().message();
}

TEST(CpStoreOpen, RefusesGarbageFile) {
  TempDir dir;
  const std::string path = dir.File("garbage.db");
  {
    std::ofstream out(path, std::ios::binary);
    std::mt19937 rng(7);
    for (int i = 0; i < 8192; ++i) out.put(static_cast<char>(rng()));
  }
  auto s = SqliteStore::Open(path);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kCorruption) << s.status().ToString();
  // The file was left alone.
  EXPECT_EQ(std::filesystem::file_size(path), 8192u);
}

TEST(CpStoreOpen, RefusesCorruptedHeader) {
  TempDir dir;
  const std::string path = dir.File("cp.db");
  {
    auto store = OpenOk(path);
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->Publish(Simple("p", "a"), By("alice")).ok());
  }
  {
    std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(0);
    f.write("NOT A SQLITE FILE", 16);
  }
  std::filesystem::remove(path + "-wal");
  std::filesystem::remove(path + "-shm");
  auto s = SqliteStore::Open(path);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kCorruption) << s.status().ToString();
}

TEST(CpStoreOpen, RefusesOtherApplicationsDatabase) {
  TempDir dir;
  const std::string path = dir.File("other.db");
  {
    RawDb raw(path);
    ASSERT_EQ(raw.Exec("CREATE TABLE notes (x TEXT)"), SQLITE_OK);
  }
  auto s = SqliteStore::Open(path);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kUnsupported);
  {
    RawDb raw(path);
    EXPECT_EQ(raw.Int("SELECT count(*) FROM sqlite_schema"), 1);  // untouched
    ASSERT_EQ(raw.Exec("PRAGMA application_id = 42"), SQLITE_OK);
  }
  s = SqliteStore::Open(path);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kUnsupported);
}

TEST(CpStoreOpen, RefusesBadPaths) {
  auto s = SqliteStore::Open("");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  s = SqliteStore::Open("/nonexistent-vakt-dir/sub/cp.db");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kIoError) << s.status().ToString();
}

// ---- versions

TEST(CpStoreVersions, PublishIsIdempotentPerPolicy) {
  auto store = OpenOk(":memory:");
  ASSERT_TRUE(store);
  auto first = store->Publish(Simple("p", "a"), By("alice"));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_TRUE(first->created);
  EXPECT_EQ(first->version.version, 1u);
  EXPECT_EQ(first->version.policy, "p");
  EXPECT_TRUE(first->version.files.empty());
  EXPECT_TRUE(first->version.bundle.empty());

  auto again = store->Publish(Simple("p", "a"), By("carol"));
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->version.version, 1u);
  EXPECT_EQ(again->version.author, "alice");  // the existing version, not the new call

  // Another policy with the same sources is another version.
  auto other = store->Publish(Simple("q", "a"), By("alice"));
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(other->created);
  EXPECT_EQ(other->version.version, 2u);
  auto next = store->Publish(Simple("p", "b"), By("alice"));
  ASSERT_TRUE(next.ok());
  EXPECT_TRUE(next->created);
  EXPECT_EQ(next->version.version, 3u);

  auto audit = AllAudit(*store);
  ASSERT_EQ(audit.size(), 4u);
  EXPECT_EQ(audit[0].action, "publish");
  EXPECT_EQ(audit[0].target, "p@1");
  EXPECT_EQ(audit[0].principal, "alice");
  EXPECT_EQ(audit[0].result, "ok");
  EXPECT_EQ(audit[0].detail.rfind("created version 1", 0), 0u) << audit[0].detail;
  EXPECT_EQ(audit[1].principal, "carol");
  EXPECT_EQ(audit[1].detail.rfind("unchanged", 0), 0u) << audit[1].detail;
  EXPECT_GT(audit[0].time, 0);
  EXPECT_LT(audit[0].id, audit[1].id);

  auto all = store->ListVersions("", 0);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].version, 3u);  // newest first
  EXPECT_EQ((*all)[2].version, 1u);
  auto only_p = store->ListVersions("p", 0);
  ASSERT_TRUE(only_p.ok());
  ASSERT_EQ(only_p->size(), 2u);
  EXPECT_EQ((*only_p)[0].version, 3u);
  auto one = store->ListVersions("", 1);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->size(), 1u);
  auto none = store->ListVersions("nope", 10);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(CpStoreVersions, PublishRefusesBadInputAndWritesNothing) {
  auto store = OpenOk(":memory:");
  ASSERT_TRUE(store);
  auto expect_invalid = [&](NewVersion v, const char* what) {
    auto r = store->Publish(v, By("alice"));
    ASSERT_FALSE(r.ok()) << what;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << what;
  };
  NewVersion v = Simple("p", "a");
  v.bundle_digest = Hex("something else");
  expect_invalid(v, "bundle digest");
  v = Simple("p", "a");
  v.source_digest = Hex("x");
  expect_invalid(v, "source digest");
  v = Simple("p", "a");
  v.bundle_digest[0] = v.bundle_digest[0] == 'A' ? 'B' : 'A';  // upper case hex
  expect_invalid(v, "hex case");
  v = MakeVersion("p", {{"b.vakt", "x"}, {"a.vakt", "y"}}, "bundle");
  expect_invalid(v, "unsorted");
  v = MakeVersion("p", {{"a.vakt", "x"}, {"a.vakt", "y"}}, "bundle");
  expect_invalid(v, "duplicate path");
  v = MakeVersion("p", {{"", "x"}}, "bundle");
  expect_invalid(v, "empty path");
  v = MakeVersion("p", {}, "bundle");
  expect_invalid(v, "no files");
  v = Simple("", "a");
  expect_invalid(v, "empty policy");
  v = Simple(std::string("p\nq"), "a");
  expect_invalid(v, "control character");
  v = Simple(std::string(kMaxStoreNameBytes + 1, 'p'), "a");
  expect_invalid(v, "long policy");
  v = MakeVersion("p", {{"a.vakt", "x"}}, "");
  expect_invalid(v, "empty bundle");
  EXPECT_EQ(AuditCount(*store), 0u);
  auto list = store->ListVersions("", 0);
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->empty());
}

TEST(CpStoreVersions, GetVersionWithAndWithoutContent) {
  auto store = OpenOk(":memory:");
  ASSERT_TRUE(store);
  std::string binary_bundle("\0\x01\xff\x00zz", 6);
  NewVersion nv = MakeVersion("p", {{"a.vakt", "aaa"}, {"b/c.vakt", ""}, {"d.vakt", "aaa"}},
                              binary_bundle);
  auto pub = store->Publish(nv, By("alice"));
  ASSERT_TRUE(pub.ok()) << pub.status().ToString();
  const uint64_t id = pub->version.version;

  auto bare = store->GetVersion(id, false, false);
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->policy, "p");
  EXPECT_EQ(bare->source_digest, nv.source_digest);
  EXPECT_EQ(bare->bundle_digest, nv.bundle_digest);
  EXPECT_EQ(bare->bundle_size, binary_bundle.size());
  EXPECT_EQ(bare->signature, nv.signature);
  EXPECT_EQ(bare->key_id, "key-1");
  EXPECT_EQ(bare->author, "alice");
  EXPECT_EQ(bare->message, "first");
  EXPECT_TRUE(bare->files.empty());
  EXPECT_TRUE(bare->bundle.empty());

  auto full = store->GetVersion(id, true, true);
  ASSERT_TRUE(full.ok()) << full.status().ToString();
  EXPECT_EQ(full->bundle, binary_bundle);
  ASSERT_EQ(full->files.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(full->files[i].path, nv.files[i].path);
    EXPECT_EQ(full->files[i].content, nv.files[i].content);
  }
  auto files_only = store->GetVersion(id, true, false);
  ASSERT_TRUE(files_only.ok());
  EXPECT_EQ(files_only->files.size(), 3u);
  EXPECT_TRUE(files_only->bundle.empty());

  for (uint64_t missing : {uint64_t{0}, uint64_t{2}, UINT64_MAX}) {
    auto r = store->GetVersion(missing, true, true);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  }
}

TEST(CpStoreVersions, TamperedBlobsAreCorruption) {
  TempDir dir;
  const std::string path = dir.File("cp.db");
  auto store = OpenOk(path);
  ASSERT_TRUE(store);
  NewVersion nv = Simple("p", "policy text");
  auto pub = store->Publish(nv, By("alice"));
  ASSERT_TRUE(pub.ok());
  const uint64_t id = pub->version.version;
  {
    RawDb raw(path);
    ASSERT_EQ(raw.SetBlob(nv.bundle_digest, "evil bundle"), 1);
  }
  auto r = store->GetVersion(id, false, true);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption) << r.status().ToString();
  EXPECT_TRUE(store->GetVersion(id, true, false).ok());  // the files are intact
  EXPECT_TRUE(store->GetVersion(id, false, false).ok());
  {
    RawDb raw(path);
    ASSERT_EQ(raw.SetBlob(Hex(nv.files[0].content), "fn evil() = 1"), 1);
  }
  r = store->GetVersion(id, true, false);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption) << r.status().ToString();
  // A file row pointed at another (intact) blob fails the source digest.
  {
    RawDb raw(path);
    ASSERT_EQ(raw.SetBlob(Hex(nv.files[0].content), nv.files[0].content), 1);  // repair
    ASSERT_EQ(raw.Exec("UPDATE version_files SET path = 'zz.vakt' WHERE path = 'main.vakt'"),
              SQLITE_OK);
  }
  r = store->GetVersion(id, true, false);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption) << r.status().ToString();
}

TEST(CpStoreVersions, SetSignature) {
  auto store = OpenOk(":memory:");
  ASSERT_TRUE(store);
  auto pub = store->Publish(Simple("p", "a"), By("alice"));
  ASSERT_TRUE(pub.ok());
  ASSERT_TRUE(store->SetSignature(1, "key-2", std::string(64, '\x02'), By("admin")).ok());
  auto v = store->GetVersion(1, false, false);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->key_id, "key-2");
  EXPECT_EQ(v->signature, std::string(64, '\x02'));
  Status missing = store->SetSignature(9, "key-2", "sig", By("admin"));
  EXPECT_EQ(missing.code(), StatusCode::kNotFound);
  Status bad = store->SetSignature(1, "", "sig", By("admin"));
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument);
  auto audit = AllAudit(*store);
  ASSERT_EQ(audit.size(), 2u);
  EXPECT_EQ(audit[1].action, "version.sign");
  EXPECT_EQ(audit[1].target, "p@1");
}

// ---- rollouts

TEST(CpStoreRollouts, CreateUpdateListSupersede) {
  int64_t clock = 1000;
  SqliteOptions opts;
  opts.clock = [&clock] { return clock; };
  auto store = OpenOk(":memory:", opts);
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->Publish(Simple("p", "a"), By("alice")).ok());  // 1
  ASSERT_TRUE(store->Publish(Simple("p", "b"), By("alice")).ok());  // 2
  ASSERT_TRUE(store->Publish(Simple("q", "a"), By("alice")).ok());  // 3

  auto r1 = store->CreateRollout(Rollout("p", 1, {{"env", "prod"}}), By("bob"));
  ASSERT_TRUE(r1.ok()) << r1.status().ToString();
  EXPECT_EQ(r1->id, 1u);
  EXPECT_EQ(r1->created_at, 1000);
  EXPECT_EQ(r1->updated_at, 1000);
  clock = 2000;
  auto other_selector = store->CreateRollout(Rollout("p", 1, {{"env", "dev"}}), By("bob"));
  ASSERT_TRUE(other_selector.ok());
  auto q = store->CreateRollout(Rollout("q", 3, {{"env", "prod"}}), By("bob"));
  ASSERT_TRUE(q.ok());
  RolloutRecord second = Rollout("p", 2, {{"env", "prod"}});
  second.previous_version = 1;
  auto r2 = store->CreateRollout(second, By("bob"));
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->id, 4u);

  auto got1 = store->GetRollout(r1->id);
  ASSERT_TRUE(got1.ok());
  EXPECT_EQ(got1->state, RolloutState::kSuperseded);
  EXPECT_EQ(got1->updated_at, 2000);
  EXPECT_NE(got1->reason.find("4"), std::string::npos);
  // Other selectors and policies are untouched.
  EXPECT_EQ(store->GetRollout(other_selector->id)->state, RolloutState::kProgressing);
  EXPECT_EQ(store->GetRollout(q->id)->state, RolloutState::kProgressing);

  auto got2 = store->GetRollout(r2->id);
  ASSERT_TRUE(got2.ok());
  EXPECT_EQ(got2->selector, (Labels{{"env", "prod"}}));
  EXPECT_EQ(got2->stages, (std::vector<uint32_t>{10, 50, 100}));
  EXPECT_EQ(got2->previous_version, 1u);
  EXPECT_EQ(got2->created_by, "bob");

  // Update: stage, state, reason and updated_at change; nothing else.
  clock = 3000;
  RolloutRecord upd = *got2;
  upd.stage = 2;
  upd.state = RolloutState::kComplete;
  upd.reason = "done";
  upd.stages = {100};        // ignored
  upd.created_by = "mallory";  // ignored
  ASSERT_TRUE(store->UpdateRollout(upd, By("bob")).ok());
  auto got3 = store->GetRollout(r2->id);
  ASSERT_TRUE(got3.ok());
  EXPECT_EQ(got3->stage, 2u);
  EXPECT_EQ(got3->state, RolloutState::kComplete);
  EXPECT_EQ(got3->reason, "done");
  EXPECT_EQ(got3->updated_at, 3000);
  EXPECT_EQ(got3->created_at, 2000);
  EXPECT_EQ(got3->stages.size(), 3u);
  EXPECT_EQ(got3->created_by, "bob");

  // A complete rollout is not superseded by a newer one.
  auto r5 = store->CreateRollout(Rollout("p", 2, {{"env", "prod"}}), By("bob"));
  ASSERT_TRUE(r5.ok());
  EXPECT_EQ(store->GetRollout(r2->id)->state, RolloutState::kComplete);

  auto list = store->ListRollouts("", 0);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 5u);
  EXPECT_EQ((*list)[0].id, 5u);
  EXPECT_EQ((*list)[4].id, 1u);
  auto only_q = store->ListRollouts("q", 0);
  ASSERT_TRUE(only_q.ok());
  ASSERT_EQ(only_q->size(), 1u);
  EXPECT_EQ((*only_q)[0].policy, "q");
  EXPECT_EQ(store->ListRollouts("", 2)->size(), 2u);

  // Refusals write nothing.
  const size_t audit_before = AuditCount(*store);
  RolloutRecord bad = Rollout("p", 3, {});  // version 3 is q's
  EXPECT_EQ(store->CreateRollout(bad, By("bob")).status().code(), StatusCode::kInvalidArgument);
  bad = Rollout("p", 99, {});
  EXPECT_EQ(store->CreateRollout(bad, By("bob")).status().code(), StatusCode::kNotFound);
  bad = Rollout("p", 1, {});
  bad.stages = {50, 10, 100};
  EXPECT_EQ(store->CreateRollout(bad, By("bob")).status().code(), StatusCode::kInvalidArgument);
  bad.stages = {10, 50};
  EXPECT_EQ(store->CreateRollout(bad, By("bob")).status().code(), StatusCode::kInvalidArgument);
  bad.stages = {};
  EXPECT_EQ(store->CreateRollout(bad, By("bob")).status().code(), StatusCode::kInvalidArgument);
  bad = Rollout("p", 1, {});
  bad.stage = 3;
  EXPECT_EQ(store->CreateRollout(bad, By("bob")).status().code(), StatusCode::kInvalidArgument);
  bad = Rollout("p", 1, {});
  bad.state = static_cast<RolloutState>(77);
  EXPECT_EQ(store->CreateRollout(bad, By("bob")).status().code(), StatusCode::kInvalidArgument);
  bad = Rollout("p", 1, {{"k", std::string("\xff\xfe", 2)}});  // not UTF-8
  EXPECT_EQ(store->CreateRollout(bad, By("bob")).status().code(), StatusCode::kInvalidArgument);
  upd.stage = 7;
  EXPECT_EQ(store->UpdateRollout(upd, By("bob")).code(), StatusCode::kInvalidArgument);
  upd.stage = 0;
  upd.id = 42;
  EXPECT_EQ(store->UpdateRollout(upd, By("bob")).code(), StatusCode::kNotFound);
  EXPECT_EQ(store->GetRollout(42).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store->GetRollout(0).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(AuditCount(*store), audit_before);
}

// ---- agents

TEST(CpStoreAgents, UpsertAndListWithoutAudit) {
  int64_t clock = 100;
  SqliteOptions opts;
  opts.clock = [&clock] { return clock; };
  auto store = OpenOk(":memory:", opts);
  ASSERT_TRUE(store);
  AgentRecord a;
  a.id = "agent-a";
  a.labels = {{"env", "prod"}, {"region", "eu-1"}, {"unicode", "gr\xc3\xbc\xc3\x9f"}};
  a.active_version = 3;
  a.active_digest = std::string(64, 'a');
  a.agent_version = "1.2.3";
  a.peer = "10.0.0.1:4000";
  AgentRecord b;
  b.id = "agent-b";
  ASSERT_TRUE(store->UpsertAgents({a, b}).ok());
  auto list = store->ListAgents();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].id, "agent-a");
  EXPECT_EQ((*list)[0].labels, a.labels);
  EXPECT_EQ((*list)[0].active_version, 3u);
  EXPECT_EQ((*list)[0].first_seen, 100);
  EXPECT_EQ((*list)[0].last_seen, 100);
  EXPECT_EQ((*list)[0].peer, a.peer);
  EXPECT_TRUE((*list)[1].labels.empty());

  clock = 200;
  a.labels = {{"env", "staging"}};
  a.nacked_version = 4;
  a.last_error = "verify failed";
  a.revocation_revision = 9;
  ASSERT_TRUE(store->UpsertAgents({a}).ok());
  list = store->ListAgents();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].labels, a.labels);
  EXPECT_EQ((*list)[0].first_seen, 100);  // kept
  EXPECT_EQ((*list)[0].last_seen, 200);
  EXPECT_EQ((*list)[0].nacked_version, 4u);
  EXPECT_EQ((*list)[0].last_error, "verify failed");
  EXPECT_EQ((*list)[0].revocation_revision, 9u);

  AgentRecord bad;
  EXPECT_EQ(store->UpsertAgents({a, bad}).code(), StatusCode::kInvalidArgument);  // empty id
  bad.id = "x";
  bad.active_version = UINT64_MAX;
  EXPECT_EQ(store->UpsertAgents({bad}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->ListAgents()->size(), 2u);
  EXPECT_EQ(AuditCount(*store), 0u);  // telemetry is not audited
}

// ---- revocations

TEST(CpStoreRevocations, AddRemoveAndRevision) {
  auto store = OpenOk(":memory:");
  ASSERT_TRUE(store);
  auto empty = store->ListRevocations();
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->revision, 0u);
  EXPECT_TRUE(empty->items.empty());

  RevocationRecord r;
  r.kind = RevocationKind::kJti;
  r.value = "jti-1";
  r.reason = "leaked";
  r.created_by = "admin";
  auto a = store->AddRevocation(r, By("admin"));
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->id, 1u);
  EXPECT_GT(a->created_at, 0);
  r.kind = RevocationKind::kSub;
  r.value = "user-7";
  r.not_after = 12345;
  auto b = store->AddRevocation(r, By("admin"));
  ASSERT_TRUE(b.ok());
  auto list = store->ListRevocations();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->revision, 2u);
  ASSERT_EQ(list->items.size(), 2u);
  EXPECT_EQ(list->items[1].kind, RevocationKind::kSub);
  EXPECT_EQ(list->items[1].value, "user-7");
  EXPECT_EQ(list->items[1].not_after, 12345);
  EXPECT_EQ(list->items[0].reason, "leaked");

  ASSERT_TRUE(store->RemoveRevocation(a->id, By("admin")).ok());
  list = store->ListRevocations();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->revision, 3u);
  ASSERT_EQ(list->items.size(), 1u);
  EXPECT_EQ(list->items[0].id, b->id);

  EXPECT_EQ(store->RemoveRevocation(a->id, By("admin")).code(), StatusCode::kNotFound);
  EXPECT_EQ(store->RemoveRevocation(0, By("admin")).code(), StatusCode::kNotFound);
  r.value = "";
  EXPECT_EQ(store->AddRevocation(r, By("admin")).status().code(), StatusCode::kInvalidArgument);
  r.value = "x";
  r.kind = static_cast<RevocationKind>(9);
  EXPECT_EQ(store->AddRevocation(r, By("admin")).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->ListRevocations()->revision, 3u);  // refusals change nothing

  auto audit = AllAudit(*store);
  ASSERT_EQ(audit.size(), 3u);
  EXPECT_EQ(audit[0].action, "revocation.add");
  EXPECT_EQ(audit[2].action, "revocation.remove");
  EXPECT_EQ(audit[2].target, "revocation 1");
}

// ---- principals

TEST(CpStorePrincipals, CreateFindDelete) {
  auto store = OpenOk(":memory:");
  ASSERT_TRUE(store);
  PrincipalRecord p;
  p.name = "ci";
  p.role = Role::kDeployer;
  p.token_hash = Hex("token-1");
  p.created_by = "admin";
  ASSERT_TRUE(store->CreatePrincipal(p, By("admin", "token.create")).ok());

  PrincipalRecord dup = p;
  dup.token_hash = Hex("token-2");
  Status s = store->CreatePrincipal(dup, By("admin"));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("exists"), std::string::npos) << s.message();
  PrincipalRecord same_hash = p;
  same_hash.name = "other";
  EXPECT_EQ(store->CreatePrincipal(same_hash, By("admin")).code(), StatusCode::kInvalidArgument);
  PrincipalRecord bad_hash = p;
  bad_hash.name = "third";
  bad_hash.token_hash = "not-hex";
  EXPECT_EQ(store->CreatePrincipal(bad_hash, By("admin")).code(), StatusCode::kInvalidArgument);
  PrincipalRecord bad_role = p;
  bad_role.name = "fourth";
  bad_role.token_hash = Hex("token-4");
  bad_role.role = static_cast<Role>(0);
  EXPECT_EQ(store->CreatePrincipal(bad_role, By("admin")).code(), StatusCode::kInvalidArgument);

  auto found = store->FindPrincipalByTokenHash(Hex("token-1"));
  ASSERT_TRUE(found.ok());
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->name, "ci");
  EXPECT_EQ((*found)->role, Role::kDeployer);
  EXPECT_EQ((*found)->created_by, "admin");
  EXPECT_GT((*found)->created_at, 0);
  auto absent = store->FindPrincipalByTokenHash(Hex("token-2"));
  ASSERT_TRUE(absent.ok());
  EXPECT_FALSE(absent->has_value());
  absent = store->FindPrincipalByTokenHash(std::string("\0'; DROP TABLE x", 16));
  ASSERT_TRUE(absent.ok());
  EXPECT_FALSE(absent->has_value());

  PrincipalRecord viewer;
  viewer.name = "audit-reader";
  viewer.role = Role::kViewer;
  viewer.token_hash = Hex("token-5");
  ASSERT_TRUE(store->CreatePrincipal(viewer, By("admin")).ok());
  auto list = store->ListPrincipals();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, "audit-reader");

  ASSERT_TRUE(store->DeletePrincipal("ci", By("admin")).ok());
  EXPECT_EQ(store->DeletePrincipal("ci", By("admin")).code(), StatusCode::kNotFound);
  EXPECT_FALSE(store->FindPrincipalByTokenHash(Hex("token-1"))->has_value());
  EXPECT_EQ(store->ListPrincipals()->size(), 1u);

  auto audit = AllAudit(*store);
  ASSERT_EQ(audit.size(), 3u);
  EXPECT_EQ(audit[0].action, "token.create");
  EXPECT_EQ(audit[2].action, "token.delete");
  EXPECT_EQ(audit[2].target, "principal ci");
}

// ---- audit

TEST(CpStoreAudit, AppendAndPage) {
  auto store = OpenOk(":memory:");
  ASSERT_TRUE(store);
  EXPECT_EQ(store->AppendAudit(AuditEntry{}).code(), StatusCode::kInvalidArgument);
  AuditEntry e;
  e.principal = "alice";
  e.action = "publish";
  e.result = "invalid_argument: bad digest";
  e.time = 77;
  e.detail = std::string(kMaxAuditFieldBytes * 2, 'd');
  ASSERT_TRUE(store->AppendAudit(e).ok());
  auto first = store->ListAudit(0, 10);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->size(), 1u);
  EXPECT_EQ((*first)[0].time, 77);
  EXPECT_EQ((*first)[0].result, e.result);
  EXPECT_EQ((*first)[0].detail.size(), kMaxAuditFieldBytes);  // truncated, marked
  EXPECT_EQ((*first)[0].detail.substr(kMaxAuditFieldBytes - 3), "...");

  e.detail = "";
  for (int i = 0; i < 1099; ++i) ASSERT_TRUE(store->AppendAudit(e).ok());
  auto page = store->ListAudit(0, 0);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->size(), kDefaultListLimit);
  page = store->ListAudit(0, 100000);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->size(), kMaxListLimit);
  page = store->ListAudit(1095, 2);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->size(), 2u);
  EXPECT_EQ((*page)[0].id, 1096u);
  EXPECT_EQ((*page)[1].id, 1097u);
  page = store->ListAudit(1100, 10);
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->empty());
  page = store->ListAudit(UINT64_MAX, 10);
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->empty());
  EXPECT_EQ(AuditCount(*store), 1100u);
}

TEST(CpStoreAudit, OneEntryPerMutationNoneForRefusals) {
  auto store = OpenOk(":memory:");
  ASSERT_TRUE(store);
  size_t expected = 0;
  auto check = [&](const char* step) { EXPECT_EQ(AuditCount(*store), expected) << step; };
  ASSERT_TRUE(store->Publish(Simple("p", "a"), By("a")).ok());
  ++expected;
  check("publish");
  ASSERT_TRUE(store->Publish(Simple("p", "a"), By("a")).ok());
  ++expected;
  check("republish");
  ASSERT_TRUE(store->SetSignature(1, "k", "s", By("a")).ok());
  ++expected;
  check("sign");
  ASSERT_TRUE(store->CreateRollout(Rollout("p", 1, {}), By("a")).ok());
  ++expected;
  check("rollout");
  RolloutRecord r = *store->GetRollout(1);
  r.state = RolloutState::kPaused;
  ASSERT_TRUE(store->UpdateRollout(r, By("a")).ok());
  ++expected;
  check("update");
  ASSERT_TRUE(store->AddRevocation(RevocationRecord{0, RevocationKind::kJti, "j", 0, "", "", 0},
                                   By("a"))
                  .ok());
  ++expected;
  ASSERT_TRUE(store->RemoveRevocation(1, By("a")).ok());
  ++expected;
  ASSERT_TRUE(store->CreatePrincipal({"n", Role::kAdmin, Hex("t"), "", 0}, By("a")).ok());
  ++expected;
  ASSERT_TRUE(store->DeletePrincipal("n", By("a")).ok());
  ++expected;
  check("all");
  // Reads, telemetry and refusals add nothing.
  ASSERT_TRUE(store->ListVersions("", 0).ok());
  ASSERT_TRUE(store->GetVersion(1, true, true).ok());
  ASSERT_TRUE(store->UpsertAgents({AgentRecord{"x", {}, 0, 0, 0, "", 0, "", 0, "", ""}}).ok());
  EXPECT_FALSE(store->SetSignature(5, "k", "s", By("a")).ok());
  EXPECT_FALSE(store->RemoveRevocation(1, By("a")).ok());
  EXPECT_FALSE(store->DeletePrincipal("n", By("a")).ok());
  check("refusals");
}

// ---- failure modes

TEST(CpStoreFailures, DiskFullIsResourceExhaustedAndLeavesStoreUsable) {
  TempDir dir;
  const std::string path = dir.File("cp.db");
  SqliteOptions opts;
  opts.max_page_count = 120;  // ~480 KiB with 4 KiB pages
  auto store = OpenOk(path, opts);
  ASSERT_TRUE(store);
  std::mt19937 rng(3);
  size_t published = 0;
  Status failure;
  for (int i = 0; i < 100 && failure.ok(); ++i) {
    std::string bundle(40000, '\0');
    for (char& c : bundle) c = static_cast<char>(rng());  // incompressible, unique
    auto r = store->Publish(MakeVersion("p", {{"main.vakt", "v" + std::to_string(i)}}, bundle),
                            By("alice"));
    if (r.ok()) {
      ++published;
    } else {
      failure = r.status();
    }
  }
  ASSERT_FALSE(failure.ok()) << "the page limit was never reached";
  EXPECT_EQ(failure.code(), StatusCode::kResourceExhausted) << failure.ToString();
  EXPECT_NE(failure.message().find("disk full"), std::string::npos) << failure.message();
  EXPECT_GT(published, 0u);

  // Nothing half-written: reads work and the counts agree.
  auto list = store->ListVersions("", 0);
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  EXPECT_EQ(list->size(), published);
  for (const auto& v : *list) EXPECT_TRUE(store->GetVersion(v.version, true, true).ok());
  EXPECT_EQ(AuditCount(*store), published);
  // The refusal can still be audited in the space that is left... or not;
  // either way the store stays consistent.
  AuditEntry e = By("alice", "publish");
  e.result = failure.ToString();
  Status audited = store->AppendAudit(e);
  EXPECT_TRUE(audited.ok() || audited.code() == StatusCode::kResourceExhausted);
  store.reset();
  {
    RawDb raw(path);
    EXPECT_EQ(raw.Text("PRAGMA integrity_check"), "ok");
  }
  // With room again, publishing continues.
  store = OpenOk(path);
  ASSERT_TRUE(store);
  auto more = store->Publish(Simple("p", "after"), By("alice"));
  ASSERT_TRUE(more.ok()) << more.status().ToString();
  EXPECT_EQ(more->version.version, published + 1);
}

TEST(CpStoreFailures, LockedDatabaseIsResourceExhausted) {
  TempDir dir;
  const std::string path = dir.File("cp.db");
  SqliteOptions opts;
  opts.busy_timeout_ms = 50;
  auto store = OpenOk(path, opts);
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->Publish(Simple("p", "a"), By("alice")).ok());
  {
    RawDb other(path);
    ASSERT_EQ(other.Exec("BEGIN EXCLUSIVE"), SQLITE_OK);
    auto r = store->Publish(Simple("p", "b"), By("alice"));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
    EXPECT_NE(r.status().message().find("locked"), std::string::npos) << r.status().message();
    Status a = store->AppendAudit(By("alice", "x"));
    EXPECT_EQ(a.code(), StatusCode::kResourceExhausted);
    Status rev = store->RemoveRevocation(1, By("alice"));
    EXPECT_EQ(rev.code(), StatusCode::kResourceExhausted);
    // Readers are not blocked (WAL).
    auto list = store->ListVersions("", 0);
    ASSERT_TRUE(list.ok()) << list.status().ToString();
    EXPECT_EQ(list->size(), 1u);
    ASSERT_EQ(other.Exec("ROLLBACK"), SQLITE_OK);
  }
  EXPECT_EQ(AuditCount(*store), 1u);
  EXPECT_EQ(store->ListVersions("", 0)->size(), 1u);
  auto r = store->Publish(Simple("p", "b"), By("alice"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->version.version, 2u);
}

TEST(CpStoreFailures, ConcurrentCallersAreSerialized) {
  TempDir dir;
  auto store = OpenOk(dir.File("cp.db"));
  ASSERT_TRUE(store);
  constexpr int kThreads = 4, kEach = 15;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        auto r = store->Publish(Simple("p" + std::to_string(t), std::to_string(i)), By("t"));
        if (!r.ok() || !r->created) ++failures;
        if (!store->ListVersions("", 5).ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  auto list = store->ListVersions("", 1000);
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), static_cast<size_t>(kThreads * kEach));
  EXPECT_EQ((*list)[0].version, static_cast<uint64_t>(kThreads * kEach));
  EXPECT_EQ(AuditCount(*store), static_cast<size_t>(kThreads * kEach));
}

// ---- crash consistency

// The child: opens the store and mutates it forever, reporting each
// published version on `fd`; any failure exits with a distinct code.
[[noreturn]] void CrashChild(const std::string& path, int round, int fd) {
  auto opened = SqliteStore::Open(path);
  if (!opened.ok()) _exit(3);
  SqliteStore& store = **opened;
  std::mt19937 rng(static_cast<unsigned>(round) * 7919u + 1);
  for (int i = 0;; ++i) {
    const std::string tag = std::to_string(round) + "-" + std::to_string(i);
    std::string bundle(1000 + rng() % 30000, '\0');
    for (char& c : bundle) c = static_cast<char>(rng());
    std::string padding(rng() % 6000, 'x');
    NewVersion v = MakeVersion("policy-" + std::to_string(i % 3),
                               {{"a.vakt", "allow " + tag}, {"lib/b.vakt", padding + tag}},
                               bundle);
    auto r = store.Publish(v, By("child", "publish"));
    if (!r.ok() || !r->created) _exit(4);
    uint64_t id = r->version.version;
    if (write(fd, &id, sizeof(id)) != sizeof(id)) _exit(5);
    if (i % 3 == 0 && !store.Publish(v, By("child", "publish")).ok()) _exit(6);
    if (i % 4 == 0) {
      RevocationRecord rec;
      rec.kind = RevocationKind::kJti;
      rec.value = "jti-" + tag;
      if (!store.AddRevocation(rec, By("child")).ok()) _exit(7);
    }
    if (i % 8 == 7) {
      auto list = store.ListRevocations();
      if (!list.ok()) _exit(8);
      if (!list->items.empty() &&
          !store.RemoveRevocation(list->items.front().id, By("child")).ok()) {
        _exit(9);
      }
    }
    if (i % 5 == 0) {
      RolloutRecord ro = Rollout(v.policy, id, {{"ring", std::to_string(i % 2)}});
      if (!store.CreateRollout(ro, By("child")).ok()) _exit(10);
    }
    if (i % 6 == 0) {
      AgentRecord a{"agent-" + std::to_string(i % 10), {{"ring", tag}}, 0, 0, id, "", 0, "",
                    0, "", ""};
      if (!store.UpsertAgents({a}).ok()) _exit(11);
    }
    if (i % 7 == 0) {
      const std::string name = "principal-" + tag;
      if (!store.CreatePrincipal({name, Role::kAuthor, Hex(name), "child", 0}, By("child"))
               .ok()) {
        _exit(12);
      }
      if (i % 14 == 0 && !store.DeletePrincipal(name, By("child")).ok()) _exit(13);
    }
    if (!store.AppendAudit(By("child", "heartbeat")).ok()) _exit(14);
  }
}

// The invariants a crash must not break.
void CheckConsistent(const std::string& path, const std::set<uint64_t>& reported,
                     const std::string& round) {
  auto store = OpenOk(path);  // recovers the WAL
  ASSERT_TRUE(store) << round;
  EXPECT_EQ(*store->SchemaVersion(), kSqliteSchemaVersion) << round;
  RawDb raw(path);
  ASSERT_EQ(raw.Text("PRAGMA integrity_check"), "ok") << round;
  ASSERT_EQ(raw.Text("PRAGMA foreign_key_check"), "<none>") << round;

  // Every acknowledged publish is there, and every version reads back intact.
  std::set<uint64_t> versions;
  const int64_t max_version = raw.Int("SELECT ifnull(max(version), 0) FROM versions");
  for (int64_t v = 1; v <= max_version; ++v) {
    auto got = store->GetVersion(static_cast<uint64_t>(v), true, true);
    if (got.ok()) {
      versions.insert(static_cast<uint64_t>(v));
      EXPECT_EQ(got->files.size(), 2u) << round;
    } else {
      EXPECT_EQ(got.status().code(), StatusCode::kNotFound) << round << ": "
                                                             << got.status().ToString();
    }
  }
  EXPECT_EQ(static_cast<int64_t>(versions.size()), max_version) << round << ": gaps";
  for (uint64_t v : reported) EXPECT_TRUE(versions.count(v)) << round << ": lost version " << v;

  // Each mutation has exactly its audit entry.
  std::set<uint64_t> created;
  size_t rollouts = 0, rev_changes = 0, principals = 0;
  for (const AuditEntry& e : AllAudit(*store)) {
    if (e.action == "publish" && e.detail.rfind("created version ", 0) == 0) {
      created.insert(std::stoull(e.detail.substr(16)));
    }
    if (e.action == "rollout.create") ++rollouts;
    if (e.action == "revocation.add" || e.action == "revocation.remove") ++rev_changes;
    if (e.action == "token.create") ++principals;
    if (e.action == "token.delete") --principals;
  }
  EXPECT_EQ(created, versions) << round;
  EXPECT_EQ(static_cast<size_t>(raw.Int("SELECT count(*) FROM rollouts")), rollouts) << round;
  auto revs = store->ListRevocations();
  ASSERT_TRUE(revs.ok()) << round;
  EXPECT_EQ(revs->revision, rev_changes) << round;
  EXPECT_EQ(store->ListPrincipals()->size(), principals) << round;

  // And the store goes on.
  auto more = store->Publish(Simple("parent", round), By("parent"));
  ASSERT_TRUE(more.ok()) << round << ": " << more.status().ToString();
  EXPECT_TRUE(more->created);
  EXPECT_EQ(more->version.version, static_cast<uint64_t>(max_version) + 1) << round;
}

TEST(CpStoreCrash, SigkillAtRandomMomentsLeavesConsistentStore) {
  TempDir dir;
  const std::string path = dir.File("cp.db");
  std::mt19937 rng(20261129);
  size_t total_reported = 0;
  for (int round = 0; round < 20; ++round) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      CrashChild(path, round, fds[1]);
    }
    close(fds[1]);
    std::set<uint64_t> reported;
    uint64_t id = 0;
    // Early rounds kill during open and migration, later ones mid-stream:
    // after the child's first publish (however loaded the machine is), then
    // a random delay.
    if (round >= 3 && read(fds[0], &id, sizeof(id)) == sizeof(id)) reported.insert(id);
    const int delay_us = round < 3 ? static_cast<int>(rng() % 3000)
                                   : 5000 + static_cast<int>(rng() % 250000);
    usleep(static_cast<useconds_t>(delay_us));
    kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "round " << round << ": child exited with " << WEXITSTATUS(status);
    while (read(fds[0], &id, sizeof(id)) == sizeof(id)) reported.insert(id);
    close(fds[0]);
    total_reported += reported.size();
    CheckConsistent(path, reported, "round " + std::to_string(round));
    if (HasFatalFailure()) return;
  }
  // The children got somewhere: the kills landed in the middle of real work.
  EXPECT_GE(total_reported, 17u);
  std::printf("crash loop: %zu versions published by killed children\n", total_reported);
}

}  // namespace
}  // namespace vakt::controlplane
