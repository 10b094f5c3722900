// Tests of the agent's on-disk last-good bundle cache (agent/bundle_cache.h):
// round trips, atomic replacement, every way a file can be damaged
// (kCorruption), unwritable directories (kIoError) and the size limits.
// Loading a cached bundle into an Agent (signature re-check) is tested in
// agent_cp_test.cc, which has signed bundles.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "agent/bundle_cache.h"

namespace vakt::agent {
namespace {

namespace fs = std::filesystem;

class CacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "vakt-cache-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  static CachedBundle Sample(uint64_t version, std::string bytes = "bundle-bytes") {
    return CachedBundle{"clinic", version, "0123456789abcdef", std::string(64, 's'),
                        std::move(bytes)};
  }
  static std::string ReadAll(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  static void WriteAll(const std::string& p, const std::string& s) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << s;
  }
  std::string dir_;
};

TEST_F(CacheTest, MissingFileIsNotFound) {
  BundleCache cache(dir_);
  auto b = cache.Load();
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), StatusCode::kNotFound);
  auto r = cache.LoadRevocations();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
}

TEST_F(CacheTest, RoundTrip) {
  BundleCache cache(dir_ + "/");
  EXPECT_EQ(cache.path(), dir_ + "/bundle.vakt-cache");
  std::string bytes;
  for (int i = 0; i < 100000; ++i) bytes.push_back(static_cast<char>(i * 7));
  ASSERT_TRUE(cache.Save(Sample(7, bytes)).ok());
  auto b = cache.Load();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->policy, "clinic");
  EXPECT_EQ(b->version, 7u);
  EXPECT_EQ(b->key_id, "0123456789abcdef");
  EXPECT_EQ(b->signature, std::string(64, 's'));
  EXPECT_EQ(b->bundle, bytes);
  // Written private to the agent's user.
  struct stat st {};
  ASSERT_EQ(stat(cache.path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(CacheTest, EmptyBundleRoundTrips) {
  BundleCache cache(dir_);
  ASSERT_TRUE(cache.Save(Sample(1, "")).ok());
  auto b = cache.Load();
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->bundle, "");
}

TEST_F(CacheTest, CreatesMissingDirectory) {
  BundleCache cache(dir_ + "/sub");
  ASSERT_TRUE(cache.Save(Sample(1)).ok());
  EXPECT_TRUE(cache.Load().ok());
  struct stat st {};
  ASSERT_EQ(stat((dir_ + "/sub").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST_F(CacheTest, AtomicReplaceLeavesNoTemporaries) {
  BundleCache cache(dir_);
  ASSERT_TRUE(cache.Save(Sample(1, "one")).ok());
  ASSERT_TRUE(cache.Save(Sample(2, "two")).ok());
  auto b = cache.Load();
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->version, 2u);
  EXPECT_EQ(b->bundle, "two");
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir_)) {
    ++files;
    EXPECT_EQ(e.path().filename(), "bundle.vakt-cache");
  }
  EXPECT_EQ(files, 1);
}

TEST_F(CacheTest, SaveRemovesTemporariesLeftByACrash) {
  BundleCache cache(dir_);
  WriteAll(cache.path() + ".tmp.AbC123", "half a bundle");
  WriteAll(dir_ + "/unrelated.tmp.AbC123", "keep");
  WriteAll(cache.path() + ".tmp.toolong1", "keep");
  ASSERT_TRUE(cache.Save(Sample(1)).ok());
  EXPECT_FALSE(fs::exists(cache.path() + ".tmp.AbC123"));
  EXPECT_TRUE(fs::exists(dir_ + "/unrelated.tmp.AbC123"));
  EXPECT_TRUE(fs::exists(cache.path() + ".tmp.toolong1"));
  EXPECT_TRUE(cache.Load().ok());
}

TEST_F(CacheTest, FailedSaveKeepsTheOldFile) {
  BundleCache cache(dir_, /*max_bytes=*/16);
  ASSERT_TRUE(cache.Save(Sample(1, "small")).ok());
  Status st = cache.Save(Sample(2, std::string(17, 'x')));
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(st.message().find("exceeds the cache limit"), std::string::npos);
  auto b = cache.Load();
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->version, 1u);
}

TEST_F(CacheTest, FieldLimits) {
  BundleCache cache(dir_);
  CachedBundle b = Sample(1);
  b.policy = std::string(kMaxCachedPolicyBytes + 1, 'p');
  EXPECT_EQ(cache.Save(b).code(), StatusCode::kInvalidArgument);
  b = Sample(1);
  b.key_id = std::string(kMaxCachedKeyIdBytes + 1, 'k');
  EXPECT_EQ(cache.Save(b).code(), StatusCode::kInvalidArgument);
  b = Sample(1);
  b.signature = std::string(kMaxCachedSignatureBytes + 1, 's');
  EXPECT_EQ(cache.Save(b).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(cache.Load().status().code(), StatusCode::kNotFound);  // nothing written
}

TEST_F(CacheTest, OversizeFileRefusedOnLoad) {
  BundleCache big(dir_);
  ASSERT_TRUE(big.Save(Sample(1, std::string(5000, 'x'))).ok());
  // The file (5000 + framing) is over any file a 100-byte cache can hold.
  BundleCache small(dir_, /*max_bytes=*/100);
  auto b = small.Load();
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), StatusCode::kResourceExhausted);
}

TEST_F(CacheTest, OversizeHeaderLengthIsCorruption) {
  // A file within the size limit whose header claims a bigger payload.
  BundleCache big(dir_);
  ASSERT_TRUE(big.Save(Sample(1, std::string(50, 'x'))).ok());
  BundleCache small(dir_, /*max_bytes=*/40);
  // File limit is header + 40 + field maxima: the 50-byte payload fits the
  // file limit but not the payload limit.
  auto b = small.Load();
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), StatusCode::kCorruption);
  EXPECT_NE(b.status().message().find("exceeds the limit"), std::string::npos);
}

// Every single-byte flip anywhere in the file is detected.
TEST_F(CacheTest, EveryByteFlipIsCorruption) {
  BundleCache cache(dir_);
  ASSERT_TRUE(cache.Save(Sample(3, "0123456789")).ok());
  const std::string good = ReadAll(cache.path());
  for (size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    WriteAll(cache.path(), bad);
    auto b = cache.Load();
    ASSERT_FALSE(b.ok()) << "flip at " << i;
    EXPECT_EQ(b.status().code(), StatusCode::kCorruption) << "flip at " << i;
    EXPECT_NE(b.status().message().find(cache.path()), std::string::npos);
  }
}

TEST_F(CacheTest, TruncationAndTrailingBytesAreCorruption) {
  BundleCache cache(dir_);
  ASSERT_TRUE(cache.Save(Sample(3, "0123456789")).ok());
  const std::string good = ReadAll(cache.path());
  for (size_t n : {size_t{0}, size_t{7}, size_t{80}, good.size() - 1}) {
    WriteAll(cache.path(), good.substr(0, n));
    auto b = cache.Load();
    ASSERT_FALSE(b.ok()) << n;
    EXPECT_EQ(b.status().code(), StatusCode::kCorruption) << n;
    EXPECT_NE(b.status().message().find("truncated"), std::string::npos) << b.status().message();
  }
  WriteAll(cache.path(), good + "x");
  auto b = cache.Load();
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), StatusCode::kCorruption);
}

TEST_F(CacheTest, SpecificCorruptionsAreNamed) {
  BundleCache cache(dir_);
  ASSERT_TRUE(cache.Save(Sample(3)).ok());
  const std::string good = ReadAll(cache.path());
  std::string bad = good;
  bad[0] = 'X';
  WriteAll(cache.path(), bad);
  EXPECT_NE(cache.Load().status().message().find("bad magic"), std::string::npos);
  bad = good;
  bad[8] = 9;  // format version
  WriteAll(cache.path(), bad);
  EXPECT_NE(cache.Load().status().message().find("format version 9"), std::string::npos);
  bad = good;
  bad[good.size() - 1] ^= 0x10;  // the checksum itself
  WriteAll(cache.path(), bad);
  EXPECT_NE(cache.Load().status().message().find("checksum"), std::string::npos);
  WriteAll(cache.path(), std::string(200, '\0'));
  EXPECT_EQ(cache.Load().status().code(), StatusCode::kCorruption);
}

TEST_F(CacheTest, BundleFileIsNotARevocationFile) {
  BundleCache cache(dir_);
  ASSERT_TRUE(cache.Save(Sample(3)).ok());
  fs::copy_file(cache.path(), cache.revocations_path());
  auto r = cache.LoadRevocations();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
  EXPECT_NE(r.status().message().find("wrong kind"), std::string::npos);
}

TEST_F(CacheTest, DirectoryInPlaceOfFile) {
  BundleCache cache(dir_);
  fs::create_directory(cache.path());
  auto b = cache.Load();
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().code(), StatusCode::kOk);
  // Saving cannot rename over a directory: kIoError, the old state stays.
  Status st = cache.Save(Sample(1));
  EXPECT_EQ(st.code(), StatusCode::kIoError);
  EXPECT_NE(st.message().find(cache.path()), std::string::npos);
}

TEST_F(CacheTest, UnwritableDirectoryIsIoError) {
  // A regular file where the directory should be: fails even as root.
  const std::string file = dir_ + "/not-a-dir";
  WriteAll(file, "x");
  BundleCache cache(file + "/cache");
  Status st = cache.Save(Sample(1));
  EXPECT_EQ(st.code(), StatusCode::kIoError);
  EXPECT_NE(st.message().find(file + "/cache"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("Not a directory"), std::string::npos) << st.message();
  EXPECT_EQ(cache.SaveRevocations(CachedRevocations{}).code(), StatusCode::kIoError);

  BundleCache inside(file);  // the directory itself is a file
  st = inside.Save(Sample(1));
  EXPECT_EQ(st.code(), StatusCode::kIoError);
  EXPECT_NE(st.message().find("Not a directory"), std::string::npos) << st.message();
}

TEST_F(CacheTest, ReadOnlyDirectoryIsIoErrorUnlessRoot) {
  if (geteuid() == 0) GTEST_SKIP() << "root ignores directory permissions";
  BundleCache cache(dir_);
  ASSERT_EQ(chmod(dir_.c_str(), 0500), 0);
  Status st = cache.Save(Sample(1));
  chmod(dir_.c_str(), 0700);
  EXPECT_EQ(st.code(), StatusCode::kIoError);
  EXPECT_NE(st.message().find("Permission denied"), std::string::npos) << st.message();
}

CachedRevocations SampleRevocations() {
  CachedRevocations r;
  r.revision = 42;
  r.jtis = {"jti-1", "jti-2"};
  r.subjects = {{"anna", 1700000000}, {"bob", -5}};
  r.clients = {{"client-a", 1800000000}};
  return r;
}

TEST_F(CacheTest, RevocationsRoundTrip) {
  BundleCache cache(dir_);
  ASSERT_TRUE(cache.SaveRevocations(SampleRevocations()).ok());
  auto r = cache.LoadRevocations();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->revision, 42u);
  EXPECT_EQ(r->jtis, SampleRevocations().jtis);
  EXPECT_EQ(r->subjects, SampleRevocations().subjects);
  EXPECT_EQ(r->clients, SampleRevocations().clients);
  // Empty sets too.
  ASSERT_TRUE(cache.SaveRevocations(CachedRevocations{7, {}, {}, {}}).ok());
  r = cache.LoadRevocations();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->revision, 7u);
  EXPECT_EQ(r->entries(), 0u);
}

TEST_F(CacheTest, RevocationByteFlipsAreCorruption) {
  BundleCache cache(dir_);
  ASSERT_TRUE(cache.SaveRevocations(SampleRevocations()).ok());
  const std::string good = ReadAll(cache.revocations_path());
  for (size_t i = 0; i < good.size(); i += 3) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0x40);
    WriteAll(cache.revocations_path(), bad);
    auto r = cache.LoadRevocations();
    ASSERT_FALSE(r.ok()) << i;
    EXPECT_EQ(r.status().code(), StatusCode::kCorruption) << i;
  }
}

TEST_F(CacheTest, RevocationLimits) {
  CachedRevocations r;
  r.jtis = {""};
  EXPECT_EQ(CheckRevocations(r).code(), StatusCode::kInvalidArgument);
  r.jtis = {std::string(kMaxRevocationValueBytes + 1, 'j')};
  EXPECT_EQ(CheckRevocations(r).code(), StatusCode::kInvalidArgument);
  r.jtis.clear();
  r.subjects = {{"", 1}};
  EXPECT_EQ(CheckRevocations(r).code(), StatusCode::kInvalidArgument);
  r.subjects.clear();
  r.clients = {{std::string(kMaxRevocationValueBytes + 1, 'c'), 1}};
  EXPECT_EQ(CheckRevocations(r).code(), StatusCode::kInvalidArgument);
  r.clients.clear();
  r.jtis.assign(kMaxRevocationEntries + 1, "j");
  EXPECT_EQ(CheckRevocations(r).code(), StatusCode::kResourceExhausted);
  BundleCache cache(dir_);
  EXPECT_EQ(cache.SaveRevocations(r).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(cache.LoadRevocations().status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(CheckRevocations(SampleRevocations()).ok());
}

TEST_F(CacheTest, BuildRevocationSet) {
  auto set = BuildRevocationSet(SampleRevocations());
  EXPECT_EQ(set->size(), 5u);
  EXPECT_TRUE(set->IsRevoked("jti-1", "x", "y", 100));
  EXPECT_FALSE(set->IsRevoked("jti-3", "x", "y", 100));
  EXPECT_TRUE(set->IsRevoked("j", "anna", "y", 1700000000));
  EXPECT_FALSE(set->IsRevoked("j", "anna", "y", 1700000001));
  EXPECT_TRUE(set->IsRevoked("j", "z", "client-a", 1800000000));
  EXPECT_FALSE(set->IsRevoked("j", "z", "client-b", 1));
}

}  // namespace
}  // namespace vakt::agent
