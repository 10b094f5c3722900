// Tests for the bundle container (bytecode/bundle.cc) and the disassembler:
// Serialize/Parse round trips, determinism, Load and the route index, and
// one assertion per corruption branch of Parse() on the error code and
// message. Structural corruptions behind the checksum are reached by
// patching bytes and re-sealing (recomputing the checksum and size field).
//
// Setting VAKT_WRITE_BUNDLE_CORPUS=DIR makes BundleCorpus.Write write the
// fuzz seed corpus (tests/fuzz/corpus/bundle) into DIR.
#include "bytecode/bundle.h"

#include <gtest/gtest.h>
#include <re2/re2.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "bytecode/format.h"
#include "bytecode/schema.h"
#include "bytecode/verifier.h"

namespace vakt::bytecode {
namespace {

Instr I(Op op, uint8_t a = 0, uint16_t b = 0, uint32_t c = 0) { return Instr{op, a, b, c}; }
uint8_t A(Source s) { return static_cast<uint8_t>(s); }
uint8_t A(ValueType t) { return static_cast<uint8_t>(t); }

// String indices of the sample bundle.
enum : uint32_t {
  sEmpty,
  sName,
  sCompiler,
  sGet,
  sPost,
  sHealthRoute,
  sHealthPath,
  sPatientRoute,
  sPatientPath,
  sPatientId,
  sIdPattern,
  sV1,
  sHealth,
  sPatients,
  sScope,
  sScopeRule,
  sInsufficientScope,
  sScopeMessage,
  sPatientRead,
  sSpace,
  sCreateRoute,
  sCreatePath,
  sContentType,
  sJson,
  sJsonRule,
  sInvalidRequest,
  sJsonMessage,
  sRequestId,
};

// A small valid bundle: three routes, a trie with literal and parameter
// children, a regex shape, a claim path, two rules, and programs using
// several opcodes (including a response program).
BundleData Sample() {
  BundleData d;
  d.name = "healthcare";
  d.compiler_version = "vakt 0.1.0";
  for (int i = 0; i < 32; ++i) d.source_digest[i] = static_cast<uint8_t>(i * 7);
  d.strings = {"",
               "healthcare",
               "vakt 0.1.0",
               "GET",
               "POST",
               "records.health",
               "/v1/health",
               "records.get_patient",
               "/v1/patients/{patient_id}",
               "patient_id",
               "^[A-Za-z0-9-]{1,64}$",
               "v1",
               "health",
               "patients",
               "scope",
               "records.get_patient.scope",
               "insufficient_scope",
               "missing scope `patient.read`",
               "patient.read",
               " ",
               "records.create_patient",
               "/v1/patients",
               "content-type",
               "application/json",
               "records.create_patient.json",
               "invalid_request",
               "body must be \"json\"\n",
               "x-request-id"};
  d.ints = {200, -5};
  d.regexes = {sIdPattern};
  d.claim_paths = {{sScope}};
  d.rules = {RuleRecord{sScopeRule, sInsufficientScope, sScopeMessage, 403, 0},
             RuleRecord{sJsonRule, sInvalidRequest, sJsonMessage, 400, 0}};
  d.params = {ParamRecord{sPatientId, 0}};

  std::vector<Instr> health = {I(Op::kAllow)};
  std::vector<Instr> get = {
      I(Op::kRule, 0, 0, 0),
      I(Op::kPushStr, 0, 0, sPatientRead),
      I(Op::kLoadFirst, A(Source::kClaim), A(ValueType::kString), 0),
      I(Op::kPushStr, 0, 0, sSpace),
      I(Op::kCall, static_cast<uint8_t>(Builtin::kSplit), 2),
      I(Op::kIn),
      I(Op::kRequire, 0, 0, 0),
      I(Op::kLoadParam, 0, 0, 0),
      I(Op::kMatch, 0, 0, 0),
      I(Op::kRequire, 0, 0, 0),
      I(Op::kAllow),
  };
  std::vector<Instr> get_response = {
      I(Op::kLoadResp, 0), I(Op::kPushInt, A(ValueType::kInt), 0, 0),
      I(Op::kEq),          I(Op::kJumpIfFalse, 0, 0, 5),
      I(Op::kAllow),       I(Op::kDeny, 0, 0, 0),
  };
  std::vector<Instr> create = {
      I(Op::kRule, 0, 0, 1),
      I(Op::kLoadFirst, A(Source::kHeader), 0, sContentType),
      I(Op::kPushStr, 0, 0, sJson),
      I(Op::kEq),
      I(Op::kJumpIfFalseOrPop, 0, 0, 7),
      I(Op::kHas, A(Source::kHeader), 0, sRequestId),
      I(Op::kNop),
      I(Op::kRequire, 0, 0, 1),
      I(Op::kAllow),
  };
  auto append = [&](const std::vector<Instr>& p) {
    auto at = static_cast<uint32_t>(d.code.size());
    d.code.insert(d.code.end(), p.begin(), p.end());
    return at;
  };
  RouteRecord r0{sHealthRoute, sGet, sHealthPath, 0, 0, append(health), 1, 0, 0, 1};
  RouteRecord r1{sPatientRoute, sGet, sPatientPath, 0, 1, append(get), 11, 0, 6, 17};
  r1.response_code = append(get_response);
  RouteRecord r2{sCreateRoute, sPost, sCreatePath, 0, 0, append(create), 9, 0, 0, 9};
  d.routes = {r0, r1, r2};
  d.max_route_cost = 17;

  // /v1 -> n1; /v1/health -> n2 (GET r0); /v1/patients -> n3 (POST r2);
  // /v1/patients/{patient_id} -> n4 (GET r1).
  d.nodes = {
      TrieNode{0, 1, kNone, kNone, 0, 0}, TrieNode{1, 2, kNone, kNone, 0, 0},
      TrieNode{0, 0, kNone, kNone, 0, 1}, TrieNode{0, 0, 4, 0, 1, 1},
      TrieNode{0, 0, kNone, kNone, 2, 1},
  };
  d.edges = {TrieEdge{sV1, 1}, TrieEdge{sHealth, 2}, TrieEdge{sPatients, 3}};
  d.methods = {TrieMethod{sGet, 0}, TrieMethod{sPost, 2}, TrieMethod{sGet, 1}};
  return d;
}

// The smallest valid bundle: one GET / route that allows.
BundleData Tiny() {
  BundleData d;
  d.name = "tiny";
  d.compiler_version = "test";
  d.strings = {"", "tiny", "test", "GET", "root", "/"};
  d.routes = {RouteRecord{4, 3, 5, 0, 0, 0, 1, 0, 0, 1}};
  d.max_route_cost = 1;
  d.code = {I(Op::kAllow)};
  d.nodes = {TrieNode{0, 0, kNone, kNone, 0, 1}};
  d.methods = {TrieMethod{3, 0}};
  return d;
}

template <typename T>
bool SameBytes(const std::vector<T>& x, const std::vector<T>& y) {
  return x.size() == y.size() &&
         (x.empty() || std::memcmp(x.data(), y.data(), x.size() * sizeof(T)) == 0);
}

void ExpectSameData(const BundleData& x, const BundleData& y) {
  EXPECT_EQ(x.name, y.name);
  EXPECT_EQ(x.compiler_version, y.compiler_version);
  EXPECT_EQ(x.source_digest, y.source_digest);
  EXPECT_EQ(x.max_route_cost, y.max_route_cost);
  EXPECT_EQ(x.strings, y.strings);
  EXPECT_EQ(x.ints, y.ints);
  EXPECT_EQ(x.regexes, y.regexes);
  EXPECT_EQ(x.claim_paths, y.claim_paths);
  // The records have no padding, so byte equality is field equality.
  EXPECT_TRUE(SameBytes(x.rules, y.rules));
  EXPECT_TRUE(SameBytes(x.routes, y.routes));
  EXPECT_TRUE(SameBytes(x.params, y.params));
  EXPECT_TRUE(SameBytes(x.nodes, y.nodes));
  EXPECT_TRUE(SameBytes(x.edges, y.edges));
  EXPECT_TRUE(SameBytes(x.methods, y.methods));
  EXPECT_TRUE(SameBytes(x.code, y.code));
}

// ---- Byte patching helpers ----------------------------------------------

uint32_t GetU32(const std::string& b, size_t at) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i)
    v |= static_cast<uint32_t>(static_cast<uint8_t>(b[at + i])) << (8 * i);
  return v;
}
void SetU32(std::string* b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) (*b)[at + i] = static_cast<char>(v >> (8 * i));
}
void SetU16(std::string* b, size_t at, uint16_t v) {
  (*b)[at] = static_cast<char>(v);
  (*b)[at + 1] = static_cast<char>(v >> 8);
}
void SetU64(std::string* b, size_t at, uint64_t v) {
  SetU32(b, at, static_cast<uint32_t>(v));
  SetU32(b, at + 4, static_cast<uint32_t>(v >> 32));
}

// Makes the header's size field and checksum match the (patched) bytes, so
// that Parse() gets past them to the structural checks.
void Reseal(std::string* b) {
  SetU64(b, 16, b->size());
  auto sum = Sha256(std::string_view(*b).substr(kHeaderSize));
  std::memcpy(b->data() + 24, sum.data(), sum.size());
}

size_t DirEntry(SectionId id) {
  return kHeaderSize + (static_cast<uint32_t>(id) - 1) * kDirEntrySize;
}
size_t SectionOffset(const std::string& b, SectionId id) { return GetU32(b, DirEntry(id) + 4); }
size_t SectionLength(const std::string& b, SectionId id) { return GetU32(b, DirEntry(id) + 8); }

// Returns `b` with section `id`'s payload replaced and the sections laid
// out again as Serialize() does (packed, 8-byte aligned), re-sealed.
std::string WithSection(const std::string& b, SectionId id, const std::string& payload) {
  std::string out = b.substr(0, kHeaderSize + kSectionCount * kDirEntrySize);
  for (uint32_t i = 1; i <= kSectionCount; ++i) {
    auto sid = static_cast<SectionId>(i);
    std::string p = sid == id ? payload : b.substr(SectionOffset(b, sid), SectionLength(b, sid));
    out.append((8 - out.size() % 8) % 8, '\0');
    SetU32(&out, DirEntry(sid) + 4, static_cast<uint32_t>(out.size()));
    SetU32(&out, DirEntry(sid) + 8, static_cast<uint32_t>(p.size()));
    out += p;
  }
  Reseal(&out);
  return out;
}

::testing::AssertionResult Refused(std::string_view bytes, StatusCode code,
                                   const std::string& fragment) {
  Result<BundleData> r = Parse(bytes);
  if (r.ok()) return ::testing::AssertionFailure() << "parsed, expected `" << fragment << "`";
  if (r.status().code() != code) {
    return ::testing::AssertionFailure() << "wrong code: " << r.status().ToString();
  }
  if (r.status().message().find(fragment) == std::string::npos) {
    return ::testing::AssertionFailure()
           << "message `" << r.status().message() << "` lacks `" << fragment << "`";
  }
  // Load must refuse it the same way.
  auto loaded = Bundle::Load(bytes);
  if (loaded.ok() || loaded.status().message() != r.status().message()) {
    return ::testing::AssertionFailure() << "Load disagrees with Parse";
  }
  return ::testing::AssertionSuccess() << r.status().message();
}

::testing::AssertionResult Corrupt(std::string_view bytes, const std::string& fragment) {
  return Refused(bytes, StatusCode::kCorruption, fragment);
}

// ---- Round trips ----------------------------------------------------------

TEST(BundleTest, SampleVerifies) {
  Status s = Verify(Sample());
  EXPECT_TRUE(s.ok()) << s.ToString();
  s = Verify(Tiny());
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST(BundleTest, RoundTrip) {
  for (const BundleData& d : {Sample(), Tiny()}) {
    std::string bytes = Serialize(d);
    Result<BundleData> parsed = Parse(bytes);
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    ExpectSameData(d, *parsed);
  }
}

TEST(BundleTest, SerializeIsDeterministic) {
  std::string a = Serialize(Sample());
  std::string b = Serialize(Sample());
  EXPECT_EQ(a, b);
  Result<BundleData> parsed = Parse(a);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(Serialize(*parsed), a);
}

TEST(BundleTest, LayoutFollowsFormatH) {
  std::string b = Serialize(Sample());
  EXPECT_EQ(b.substr(0, 8), std::string(kMagic, 8));
  EXPECT_EQ(GetU32(b, 8) & 0xffff, kCurrentVersion);
  EXPECT_EQ(GetU32(b, 8) >> 16, 0u);  // flags
  EXPECT_EQ(GetU32(b, 12), kSectionCount);
  EXPECT_EQ(GetU32(b, 16), b.size());
  EXPECT_EQ(GetU32(b, 20), 0u);
  auto sum = Sha256(std::string_view(b).substr(kHeaderSize));
  EXPECT_EQ(0, std::memcmp(b.data() + 24, sum.data(), 32));
  EXPECT_EQ(b.substr(56, 8), std::string(8, '\0'));
  size_t end = kHeaderSize + kSectionCount * kDirEntrySize;
  for (uint32_t id = 1; id <= kSectionCount; ++id) {
    size_t e = kHeaderSize + (id - 1) * kDirEntrySize;
    EXPECT_EQ(GetU32(b, e), id);
    size_t offset = GetU32(b, e + 4);
    EXPECT_EQ(offset % 8, 0u);
    EXPECT_EQ(offset, (end + 7) / 8 * 8);
    end = offset + GetU32(b, e + 8);
  }
  EXPECT_EQ(end, b.size());
  // Spot-check one record: route 1's request program starts at code 1.
  size_t routes = SectionOffset(b, SectionId::kRoutes);
  EXPECT_EQ(GetU32(b, routes), 3u);
  EXPECT_EQ(GetU32(b, routes + 4 + 40 + 5 * 4), 1u);
  // ... and one instruction: code[1] is RULE r0 = {35, 0, 0, 0}.
  size_t code = SectionOffset(b, SectionId::kCode);
  EXPECT_EQ(static_cast<uint8_t>(b[code + 4 + 8]), static_cast<uint8_t>(Op::kRule));
}

TEST(BundleTest, NameAndCompilerVersionAreInternedWhenAbsent) {
  BundleData d = Tiny();
  d.name = "other";
  d.compiler_version = "other";
  std::string bytes = Serialize(d);
  Result<BundleData> parsed = Parse(bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->name, "other");
  EXPECT_EQ(parsed->compiler_version, "other");
  EXPECT_EQ(parsed->strings.size(), d.strings.size() + 1);
  EXPECT_EQ(Serialize(*parsed), bytes);
}

TEST(BundleTest, LoadPreparesTheBundle) {
  std::string bytes = Serialize(Sample());
  auto loaded = Bundle::Load(bytes);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const Bundle& b = **loaded;
  auto sum = Sha256(bytes);
  EXPECT_EQ(b.digest(), HexLower(sum.data(), sum.size()));
  EXPECT_EQ(b.digest().size(), 64u);
  EXPECT_EQ(b.size_bytes(), bytes.size());
  EXPECT_EQ(b.data().routes.size(), 3u);
  EXPECT_EQ(b.str(sGet), "GET");
  EXPECT_EQ(b.FindEdge(0, "v1"), 1u);
  EXPECT_EQ(b.FindEdge(1, "health"), 2u);
  EXPECT_EQ(b.FindEdge(1, "patients"), 3u);
  EXPECT_EQ(b.FindEdge(1, "v1"), kNone);
  EXPECT_EQ(b.FindEdge(0, "health"), kNone);
  EXPECT_EQ(b.FindEdge(1, ""), kNone);
  EXPECT_EQ(b.FindEdge(99, "v1"), kNone);
  EXPECT_EQ(b.FindEdge(kNone, "v1"), kNone);
  EXPECT_TRUE(RE2::PartialMatch("abc-123", b.regex(0)));
  EXPECT_FALSE(RE2::PartialMatch("a/b", b.regex(0)));
}

TEST(BundleTest, Hashing) {
  auto sum = Sha256("abc");
  EXPECT_EQ(HexLower(sum.data(), sum.size()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  sum = Sha256("");
  EXPECT_EQ(HexLower(sum.data(), sum.size()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

// ---- Header -----------------------------------------------------------------

TEST(BundleParseTest, EmptyAndShortInput) {
  EXPECT_TRUE(Corrupt("", "truncated bundle: 0 bytes, the header and directory alone are 244"));
  std::string b = Serialize(Tiny());
  EXPECT_TRUE(Corrupt(b.substr(0, 100), "truncated bundle: 100 bytes"));
  EXPECT_TRUE(Corrupt(b.substr(0, 5), "truncated bundle: 5 bytes"));
}

TEST(BundleParseTest, BadMagic) {
  std::string b = Serialize(Tiny());
  b[0] = 'X';
  EXPECT_TRUE(Corrupt(b, "bad magic: not a vakt bundle"));
  EXPECT_TRUE(Corrupt("{\"json\": true}", "bad magic: not a vakt bundle"));
}

TEST(BundleParseTest, NewerVersionIsUnsupported) {
  std::string b = Serialize(Tiny());
  SetU16(&b, 8, kCurrentVersion + 1);
  EXPECT_TRUE(Refused(b, StatusCode::kUnsupported,
                      "bundle format version 4 is newer than this build supports (newest 3)"));
  // Even when the rest is of a layout this build cannot know.
  EXPECT_TRUE(Refused(b.substr(0, 10), StatusCode::kUnsupported, "is newer than"));
  SetU16(&b, 8, 0xffff);
  EXPECT_TRUE(Refused(b, StatusCode::kUnsupported, "version 65535 is newer"));
}

TEST(BundleParseTest, OlderVersionIsUnsupported) {
  std::string b = Serialize(Tiny());
  SetU16(&b, 8, kOldestSupportedVersion - 1);
  EXPECT_TRUE(Refused(b, StatusCode::kUnsupported,
                      "bundle format version 2 is older than this build supports (oldest 3)"));
}

TEST(BundleParseTest, TooLargeIsResourceExhausted) {
  std::string huge(kMaxBundleBytes + 1, '\0');
  std::memcpy(huge.data(), kMagic, sizeof(kMagic));
  EXPECT_TRUE(Refused(huge, StatusCode::kResourceExhausted,
                      "bundle is 268435457 bytes, over the limit of 268435456"));
}

TEST(BundleParseTest, EveryPrefixIsRefused) {
  std::string b = Serialize(Sample());
  for (size_t n = 0; n < b.size(); ++n) {
    Result<BundleData> r = Parse(std::string_view(b).substr(0, n));
    ASSERT_FALSE(r.ok()) << n;
    EXPECT_EQ(r.status().code(), StatusCode::kCorruption) << n;
    EXPECT_NE(r.status().message().find("truncated bundle"), std::string::npos)
        << n << ": " << r.status().message();
  }
}

TEST(BundleParseTest, FileSizeField) {
  std::string b = Serialize(Tiny());
  std::string bigger = b;
  SetU64(&bigger, 16, b.size() + 1);
  EXPECT_TRUE(Corrupt(bigger, "truncated bundle: header says " + std::to_string(b.size() + 1) +
                                  " bytes, got " + std::to_string(b.size())));
  std::string smaller = b;
  SetU64(&smaller, 16, b.size() - 1);
  EXPECT_TRUE(Corrupt(smaller, "trailing data: header says " + std::to_string(b.size() - 1) +
                                   " bytes, got " + std::to_string(b.size())));
  EXPECT_TRUE(Corrupt(b + '\0', "trailing data"));
  SetU64(&bigger, 16, ~uint64_t{0});
  EXPECT_TRUE(Corrupt(bigger, "truncated bundle: header says 18446744073709551615 bytes"));
}

TEST(BundleParseTest, HeaderReservedFields) {
  std::string b = Serialize(Tiny());
  std::string x = b;
  SetU32(&x, 12, kSectionCount + 1);
  EXPECT_TRUE(Corrupt(x, "header section count is 16, expected 15"));
  x = b;
  SetU16(&x, 10, 1);
  EXPECT_TRUE(Corrupt(x, "header flags 1 are reserved and must be 0"));
  for (size_t i = 56; i < 64; ++i) {
    x = b;
    x[i] = 1;
    EXPECT_TRUE(Corrupt(x, "reserved header bytes are not zero")) << i;
  }
}

TEST(BundleParseTest, AnyFlippedByteIsRefused) {
  const std::string b = Serialize(Sample());
  for (size_t i = 0; i < b.size(); ++i) {
    std::string x = b;
    x[i] ^= 0x20;
    Result<BundleData> r = Parse(x);
    ASSERT_FALSE(r.ok()) << "byte " << i;
    if (i >= kHeaderSize || (i >= 24 && i < 56)) {
      EXPECT_EQ(r.status().message(), "checksum mismatch: the bundle is damaged") << i;
    }
  }
}

// ---- Directory ----------------------------------------------------------------

TEST(BundleParseTest, DirectoryIdsInOrder) {
  std::string b = Serialize(Tiny());
  SetU32(&b, DirEntry(SectionId::kStrings), 2);
  SetU32(&b, DirEntry(SectionId::kInts), 1);
  Reseal(&b);
  EXPECT_TRUE(Corrupt(b, "directory entry 0 (`strings`): section id 2, expected 1"));
  b = Serialize(Tiny());
  SetU32(&b, DirEntry(SectionId::kCode), 11);
  Reseal(&b);
  EXPECT_TRUE(Corrupt(b, "directory entry 9 (`code`): section id 11, expected 10"));
}

TEST(BundleParseTest, DirectoryOffsets) {
  const std::string b = Serialize(Sample());
  std::string x = b;
  SetU32(&x, DirEntry(SectionId::kInts) + 4, SectionOffset(b, SectionId::kInts) + 4);
  Reseal(&x);
  EXPECT_TRUE(Corrupt(x, "directory entry 1 (`ints`): offset " +
                             std::to_string(SectionOffset(b, SectionId::kInts) + 4) +
                             " is not 8-byte aligned"));
  // Out of range, with and without 32-bit wrap-around.
  x = b;
  SetU32(&x, DirEntry(SectionId::kCode) + 8, 0xffffffff);
  Reseal(&x);
  EXPECT_TRUE(Corrupt(x, "directory entry 9 (`code`): range [" +
                             std::to_string(SectionOffset(b, SectionId::kCode)) + ", " +
                             std::to_string(SectionOffset(b, SectionId::kCode) + 0xffffffffull) +
                             ") is outside the file (" + std::to_string(b.size()) + " bytes)"));
  x = b;
  SetU32(&x, DirEntry(SectionId::kCode) + 4, 0xfffffff8);
  Reseal(&x);
  EXPECT_TRUE(Corrupt(x, "directory entry 9 (`code`): range [4294967288, "));
  // Inside the header or directory.
  x = b;
  SetU32(&x, DirEntry(SectionId::kStrings) + 4, 64);
  Reseal(&x);
  EXPECT_TRUE(
      Corrupt(x, "directory entry 0 (`strings`): offset 64 overlaps the header or directory"));
  // Overlapping the previous section.
  x = b;
  SetU32(&x, DirEntry(SectionId::kMeta) + 4, SectionOffset(b, SectionId::kInts));
  Reseal(&x);
  EXPECT_TRUE(Corrupt(x, "directory entry 2 (`meta`): offset " +
                             std::to_string(SectionOffset(b, SectionId::kInts)) +
                             " overlaps the previous section"));
  // A gap: sections are packed.
  x = b;
  SetU32(&x, DirEntry(SectionId::kCode) + 4, SectionOffset(b, SectionId::kCode) + 8);
  SetU32(&x, DirEntry(SectionId::kCode) + 8, SectionLength(b, SectionId::kCode) - 8);
  Reseal(&x);
  EXPECT_TRUE(Corrupt(x, "directory entry 9 (`code`): offset " +
                             std::to_string(SectionOffset(b, SectionId::kCode) + 8) +
                             ", expected " + std::to_string(SectionOffset(b, SectionId::kCode)) +
                             " (sections are packed in order)"));
}

TEST(BundleParseTest, PaddingMustBeZero) {
  const std::string b = Serialize(Sample());
  bool found = false;
  for (uint32_t id = 1; id < kSectionCount; ++id) {
    size_t end = SectionOffset(b, SectionId(id)) + SectionLength(b, SectionId(id));
    if (end == SectionOffset(b, SectionId(id + 1))) continue;
    found = true;
    std::string x = b;
    x[end] = 1;
    Reseal(&x);
    EXPECT_TRUE(Corrupt(x, "padding before the section is not zero")) << id;
  }
  EXPECT_TRUE(found) << "the sample bundle has no padding to test";
}

TEST(BundleParseTest, TrailingBytesAfterTheLastSection) {
  std::string b = Serialize(Tiny());
  b.append(8, '\0');
  Reseal(&b);
  EXPECT_TRUE(Corrupt(b, "8 trailing bytes after the last section"));
}

// ---- Sections -----------------------------------------------------------------

TEST(BundleParseTest, HugeCountsAreRefusedBeforeAllocating) {
  const std::string b = Serialize(Sample());
  struct Case {
    SectionId id;
    size_t at;  // offset of the count within the section
    const char* fragment;
  };
  const size_t claim_parts = 4 + 8 * Sample().claim_paths.size();
  const size_t edges = 4 + 24 * Sample().nodes.size();
  const size_t methods = edges + 4 + 8 * Sample().edges.size();
  const Case cases[] = {
      {SectionId::kStrings, 0,
       "section `strings`: string count 4294967295 needs 34359738360 bytes"},
      {SectionId::kInts, 0, "section `ints`: int count 4294967295 needs 34359738360 bytes"},
      {SectionId::kRegexes, 0, "section `regexes`: regex count 4294967295 needs 17179869180 bytes"},
      {SectionId::kClaimPaths, 0, "section `claim_paths`: claim path count 4294967295 needs"},
      {SectionId::kClaimPaths, claim_parts, "section `claim_paths`: claim part count 4294967295"},
      {SectionId::kRules, 0, "section `rules`: rule count 4294967295 needs 68719476720 bytes"},
      {SectionId::kRoutes, 0, "section `routes`: route count 4294967295 needs 188978560980 bytes"},
      {SectionId::kParams, 0, "section `params`: param count 4294967295 needs"},
      {SectionId::kTrie, 0, "section `trie`: node count 4294967295 needs 103079215080 bytes"},
      {SectionId::kTrie, edges, "section `trie`: edge count 4294967295 needs"},
      {SectionId::kTrie, methods, "section `trie`: method count 4294967295 needs"},
      {SectionId::kCode, 0, "section `code`: instruction count 4294967295 needs 34359738360 bytes"},
  };
  for (const Case& c : cases) {
    std::string x = b;
    SetU32(&x, SectionOffset(b, c.id) + c.at, 0xffffffff);
    Reseal(&x);
    EXPECT_TRUE(Corrupt(x, c.fragment)) << c.fragment;
  }
}

TEST(BundleParseTest, CountOneTooMany) {
  const std::string b = Serialize(Sample());
  std::string x = b;
  size_t routes = SectionOffset(b, SectionId::kRoutes);
  SetU32(&x, routes, 4);
  Reseal(&x);
  EXPECT_TRUE(Corrupt(x, "section `routes`: route count 4 needs 176 bytes, has 132"));
}

TEST(BundleParseTest, TrailingBytesInASection) {
  const std::string b = Serialize(Sample());
  struct Case {
    SectionId id;
    const char* fragment;
  };
  const Case cases[] = {
      {SectionId::kInts, "section `ints`: 8 trailing bytes"},
      {SectionId::kRegexes, "section `regexes`: 4 trailing bytes"},
      {SectionId::kRules, "section `rules`: 16 trailing bytes"},
      {SectionId::kRoutes, "section `routes`: 44 trailing bytes"},
      {SectionId::kParams, "section `params`: 8 trailing bytes"},
      {SectionId::kCode, "section `code`: 8 trailing bytes"},
  };
  for (const Case& c : cases) {
    std::string x = b;
    size_t at = SectionOffset(b, c.id);
    SetU32(&x, at, GetU32(b, at) - 1);
    Reseal(&x);
    EXPECT_TRUE(Corrupt(x, c.fragment)) << c.fragment;
  }
  // The trie's method count is last: one fewer leaves 8 bytes.
  std::string x = b;
  size_t methods = SectionOffset(b, SectionId::kTrie) + 4 + 24 * 5 + 4 + 8 * 3;
  SetU32(&x, methods, 2);
  Reseal(&x);
  EXPECT_TRUE(Corrupt(x, "section `trie`: 8 trailing bytes"));
}

TEST(BundleParseTest, TruncatedSections) {
  const std::string b = Serialize(Sample());
  auto payload = [&](SectionId id) { return b.substr(SectionOffset(b, id), SectionLength(b, id)); };
  // Meta is fixed-size: 8 bytes short, its route count is missing.
  EXPECT_TRUE(Corrupt(WithSection(b, SectionId::kMeta, payload(SectionId::kMeta).substr(0, 40)),
                      "section `meta`: truncated: route count needs 4 bytes, has 0"));
  // An empty section has no count.
  EXPECT_TRUE(Corrupt(WithSection(b, SectionId::kInts, ""),
                      "section `ints`: truncated: int count needs 4 bytes, has 0"));
  EXPECT_TRUE(Corrupt(WithSection(b, SectionId::kCode, "\x01\x02"),
                      "section `code`: truncated: instruction count needs 4 bytes, has 2"));
  // Counts after the first: the claim part count, the trie's edge count.
  EXPECT_TRUE(Corrupt(
      WithSection(b, SectionId::kClaimPaths, payload(SectionId::kClaimPaths).substr(0, 4 + 8)),
      "section `claim_paths`: truncated: claim part count needs 4 bytes, has 0"));
  EXPECT_TRUE(
      Corrupt(WithSection(b, SectionId::kTrie, payload(SectionId::kTrie).substr(0, 4 + 24 * 5)),
              "section `trie`: truncated: edge count needs 4 bytes, has 0"));
  // And the opposite: a fixed-size section with bytes left over.
  EXPECT_TRUE(Corrupt(WithSection(b, SectionId::kMeta, payload(SectionId::kMeta) + "xyz"),
                      "section `meta`: 3 trailing bytes"));
  EXPECT_TRUE(Corrupt(WithSection(b, SectionId::kClaimPaths, payload(SectionId::kClaimPaths) + "x"),
                      "section `claim_paths`: 1 trailing bytes"));
  // A re-laid-out copy of the unchanged sections is the original.
  EXPECT_EQ(WithSection(b, SectionId::kMeta, payload(SectionId::kMeta)), b);
}

TEST(BundleParseTest, MetaChecks) {
  const std::string b = Serialize(Sample());
  size_t meta = SectionOffset(b, SectionId::kMeta);
  std::string x = b;
  SetU32(&x, meta + 40, 2);
  Reseal(&x);
  EXPECT_TRUE(Corrupt(x, "section `meta`: route count 2, but section `routes` has 3"));
  x = b;
  SetU32(&x, meta, 999);
  Reseal(&x);
  EXPECT_TRUE(Corrupt(x, "section `meta`: name string 999 out of range (28 strings)"));
  x = b;
  SetU32(&x, meta + 4, 28);
  Reseal(&x);
  EXPECT_TRUE(Corrupt(x, "section `meta`: compiler version string 28 out of range"));
}

TEST(BundleParseTest, StringTable) {
  const std::string b = Serialize(Sample());
  const size_t strings = SectionOffset(b, SectionId::kStrings);
  const size_t blob = SectionLength(b, SectionId::kStrings) - 4 - 8 * 28;
  // An offset outside the blob.
  std::string x = b;
  SetU32(&x, strings + 4 + 8 * 3, 0x7fffffff);
  Reseal(&x);
  EXPECT_TRUE(Corrupt(x,
                      "section `strings`: string 3 [2147483647, 2147483650) is outside the "
                      "blob (" +
                          std::to_string(blob) + " bytes)"));
  // A length outside the blob, with 32-bit wrap-around.
  x = b;
  SetU32(&x, strings + 4 + 8 * 3 + 4, 0xffffffff);
  Reseal(&x);
  EXPECT_TRUE(Corrupt(x, "section `strings`: string 3 ["));
  // In the blob but not back to back: strings may not overlap.
  x = b;
  SetU32(&x, strings + 4 + 8 * 2, 0);
  Reseal(&x);
  EXPECT_TRUE(Corrupt(x,
                      "section `strings`: string 2 starts at blob offset 0, expected 10 "
                      "(strings are stored back to back)"));
  // Blob bytes no string uses.
  x = b;
  SetU32(&x, strings + 4 + 8 * 27 + 4, 11);  // "x-request-id" is 12 bytes
  Reseal(&x);
  EXPECT_TRUE(Corrupt(x, "section `strings`: 1 trailing bytes after the last string"));
}

TEST(BundleParseTest, StringZeroMustBeEmpty) {
  BundleData d = Tiny();
  d.strings[0] = "x";
  EXPECT_TRUE(Corrupt(Serialize(d), "section `strings`: string 0 must be empty"));
  // No strings at all.
  std::string b = Serialize(Tiny());
  EXPECT_TRUE(Corrupt(WithSection(b, SectionId::kStrings, std::string(4, '\0')),
                      "section `strings`: no strings: string 0 must be \"\""));
  // A zero count in front of a table: its bytes are blob bytes no string uses.
  const size_t len = SectionLength(b, SectionId::kStrings);
  std::string x = b;
  SetU32(&x, SectionOffset(b, SectionId::kStrings), 0);
  Reseal(&x);
  EXPECT_TRUE(Corrupt(x, "section `strings`: " + std::to_string(len - 4) +
                             " trailing bytes after the last string"));
}

TEST(BundleParseTest, ClaimPathTable) {
  BundleData d = Sample();
  d.claim_paths = {{sScope}, {sScope, sV1}};
  const std::string b = Serialize(d);
  const size_t claims = SectionOffset(b, SectionId::kClaimPaths);
  std::string x = b;
  SetU32(&x, claims + 4 + 8 + 4, 3);  // path 1: parts [1, 4) of 3
  Reseal(&x);
  EXPECT_TRUE(Corrupt(x,
                      "section `claim_paths`: claim path 1 parts [1, 4) are outside the part "
                      "list (3 parts)"));
  x = b;
  SetU32(&x, claims + 4 + 8, 0);  // path 1 starts at part 0, overlapping path 0
  SetU32(&x, claims + 4 + 8 + 4, 1);
  Reseal(&x);
  EXPECT_TRUE(Corrupt(x,
                      "section `claim_paths`: claim path 1 starts at part 0, expected 1 "
                      "(paths are stored back to back)"));
  x = b;
  SetU32(&x, claims + 4 + 8 + 4, 1);  // path 1 uses 1 of its 2 parts
  Reseal(&x);
  EXPECT_TRUE(Corrupt(x, "section `claim_paths`: 1 unused parts after the last claim path"));
}

// ---- Load -----------------------------------------------------------------------

TEST(BundleLoadTest, VerifierErrorsSurface) {
  BundleData d = Sample();
  d.code[d.routes[2].request_code + 4].c = 2;  // JUMP_IF_FALSE_OR_POP backwards
  auto loaded = Bundle::Load(Serialize(d));
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().ToString(),
            "corruption: route 2 (`records.create_patient`): request program: jump at pc 4 goes "
            "backwards (to pc 2)");
  // Parse alone accepts it (`vakt disasm --no-verify`).
  EXPECT_TRUE(Parse(Serialize(d)).ok());
}

TEST(BundleLoadTest, BadRegex) {
  BundleData d = Sample();
  d.strings[sIdPattern] = "([a-z]";
  auto loaded = Bundle::Load(Serialize(d));
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::kCorruption);
  EXPECT_EQ(loaded.status().message().rfind("regex 0 (`([a-z]`) does not compile: ", 0), 0u)
      << loaded.status().message();
}

TEST(BundleLoadTest, RegexMemoryIsBounded) {
  BundleData d = Sample();
  d.strings[sIdPattern] = "((((a{100}){100}){100}){100})";
  auto loaded = Bundle::Load(Serialize(d));
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("does not compile"), std::string::npos)
      << loaded.status().message();
}

// ---- Disassembly ------------------------------------------------------------------

constexpr char kSampleListing[] = R"(bundle `healthcare` format 3 compiler `vakt 0.1.0`
source sha256 00070e151c232a31383f464d545b626970777e858c939aa1a8afb6bdc4cbd2d9
strings 28, ints 2, regexes 1, claim paths 1, rules 2, params 1
trie nodes 5, edges 3, methods 3; code 27
routes 3, max route cost 17
route 0 `records.health` GET /v1/health cost 1
  request:
    0000  ALLOW
route 1 `records.get_patient` GET /v1/patients/{patient_id} cost 17
  params: patient_id ~ /^[A-Za-z0-9-]{1,64}$/
  request:
    0000  RULE                 r0 `records.get_patient.scope`
    0001  PUSH_STR             "patient.read"
    0002  LOAD_FIRST           claim token.scope as string
    0003  PUSH_STR             " "
    0004  CALL                 split/2
    0005  IN
    0006  REQUIRE              r0 `records.get_patient.scope`
    0007  LOAD_PARAM           p0 patient_id
    0008  MATCH                x0 /^[A-Za-z0-9-]{1,64}$/
    0009  REQUIRE              r0 `records.get_patient.scope`
    0010  ALLOW
  response:
    0000  LOAD_RESP            status
    0001  PUSH_INT             int 200
    0002  EQ
    0003  JUMP_IF_FALSE        0005
    0004  ALLOW
    0005  DENY                 r0 `records.get_patient.scope`
route 2 `records.create_patient` POST /v1/patients cost 9
  request:
    0000  RULE                 r1 `records.create_patient.json`
    0001  LOAD_FIRST           header "content-type"
    0002  PUSH_STR             "application/json"
    0003  EQ
    0004  JUMP_IF_FALSE_OR_POP 0007
    0005  HAS                  header "x-request-id"
    0006  NOP
    0007  REQUIRE              r1 `records.create_patient.json`
    0008  ALLOW
rules:
  r0 `records.get_patient.scope`: deny 403 insufficient_scope "missing scope `patient.read`"
  r1 `records.create_patient.json`: deny 400 invalid_request "body must be \"json\"\n"
regexes:
  x0 /^[A-Za-z0-9-]{1,64}$/
trie:
  n0 "v1" -> n1
  n1 "health" -> n2, "patients" -> n3
  n2 GET -> route 0
  n3 {param ~ x0} -> n4, POST -> route 2
  n4 GET -> route 1
)";

TEST(DisassembleTest, SampleListing) {
  EXPECT_EQ(Disassemble(Sample()), kSampleListing);
  // Deterministic, and the same after a round trip through the bytes.
  Result<BundleData> parsed = Parse(Serialize(Sample()));
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(Disassemble(*parsed), kSampleListing);
}

TEST(DisassembleTest, OperandForms) {
  BundleData d = Tiny();
  d.strings.push_back("\x01\xff\t");  // 6
  d.ints = {3600, 1700000000};
  d.claim_paths = {{6}};
  d.code = {
      I(Op::kPushBool, 1),
      I(Op::kPushInt, A(ValueType::kDuration), 0, 0),
      I(Op::kPushInt, A(ValueType::kTimestamp), 0, 1),
      I(Op::kPushStr, 0, 0, 6),
      I(Op::kLoadReq, static_cast<uint8_t>(RequestField::kTlsCertThumbprint)),
      I(Op::kLoadAll, A(Source::kQuery), 0, 3),
      I(Op::kLoadFirst, A(Source::kClaim), A(ValueType::kList), 0),
      I(Op::kConvert, A(ValueType::kList), A(ValueType::kInt)),
      I(Op::kConvert, A(ValueType::kDuration)),
      I(Op::kField, 0, 0, 3),
      I(Op::kMakeList, 0, 0, 4),
      I(Op::kJumpIfTrueOrPop, 0, 0, 12),
      I(static_cast<Op>(200), 1, 2, 3),
      I(Op::kPushStr, 0, 0, 99),
      I(Op::kAllow),
  };
  d.routes[0].request_len = static_cast<uint32_t>(d.code.size());
  std::string listing = Disassemble(d);
  for (const char* line : {
           "0000  PUSH_BOOL            true\n",
           "0001  PUSH_INT             duration 3600\n",
           "0002  PUSH_INT             timestamp 1700000000\n",
           "0003  PUSH_STR             \"\\x01\\xff\\t\"\n",
           "0004  LOAD_REQ             tls_cert_thumbprint\n",
           "0005  LOAD_ALL             query \"GET\"\n",
           "0006  LOAD_FIRST           claim token.\\x01\\xff\\t as list\n",
           "0007  CONVERT              to list<int>\n",
           "0008  CONVERT              to duration\n",
           "0009  FIELD                \"GET\"\n",
           "0010  MAKE_LIST            4\n",
           "0011  JUMP_IF_TRUE_OR_POP  0012\n",
           "0012  ?200                 a=1 b=2 c=3\n",
           "0013  PUSH_STR             <bad string 99>\n",
       }) {
    EXPECT_NE(listing.find(line), std::string::npos) << line << "\n" << listing;
  }
}

TEST(DisassembleTest, UnverifiedDataDoesNotCrash) {
  BundleData d = Sample();
  d.routes[1].request_code = 0xfffffff0;
  d.routes[1].first_param = 77;
  d.routes[2].name = 1000;
  d.rules[0].id = 1000;
  d.regexes[0] = 1000;
  d.nodes[1].first_edge = 2;
  d.nodes[3].first_method = 0xffffffff;
  d.claim_paths.clear();
  d.ints.clear();
  for (Instr& in : d.code) in.c = 0xffffffff;
  std::string listing = Disassemble(d);
  EXPECT_NE(listing.find("request: <bad range [4294967280, 4294967291) of 27 instructions>"),
            std::string::npos)
      << listing;
  EXPECT_NE(listing.find("params: <bad param 77>"), std::string::npos);
  EXPECT_NE(listing.find("<bad rule 4294967295>"), std::string::npos);
  EXPECT_NE(listing.find("<bad edge 3>"), std::string::npos);
  EXPECT_NE(listing.find("<bad method 4294967295>"), std::string::npos);
}

// ---- Fuzz corpus ------------------------------------------------------------------

TEST(BundleCorpus, Write) {
  const char* dir = std::getenv("VAKT_WRITE_BUNDLE_CORPUS");
  if (dir == nullptr) GTEST_SKIP() << "set VAKT_WRITE_BUNDLE_CORPUS=DIR to write the seed corpus";
  std::filesystem::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(std::filesystem::path(dir) / name, std::ios::binary) << bytes;
  };
  const std::string sample = Serialize(Sample());
  write("valid_sample.bin", sample);
  write("valid_tiny.bin", Serialize(Tiny()));
  BundleData empty = Tiny();
  empty.routes.clear();
  empty.code.clear();
  empty.methods.clear();
  empty.nodes[0].method_count = 0;
  write("valid_no_routes.bin", Serialize(empty));
  write("broken_truncated.bin", sample.substr(0, sample.size() / 2));
  write("broken_header_only.bin", sample.substr(0, 208));
  std::string x = sample;
  x[0] = 'X';
  write("broken_magic.bin", x);
  x = sample;
  SetU16(&x, 8, kCurrentVersion + 1);
  write("broken_newer_version.bin", x);
  x = sample;
  x[x.size() - 3] ^= 1;
  write("broken_checksum.bin", x);
  x = sample;
  SetU32(&x, SectionOffset(sample, SectionId::kRoutes), 0xffffffff);
  Reseal(&x);
  write("broken_huge_count.bin", x);
  BundleData d = Sample();
  d.code[d.routes[2].request_code + 4].c = 2;
  write("broken_backward_jump.bin", Serialize(d));
  d = Sample();
  d.strings[sIdPattern] = "([a-z]";
  write("broken_regex.bin", Serialize(d));
  d = Sample();
  d.nodes[3].param_child = 2;
  write("broken_trie.bin", Serialize(d));
  // Format 3: relation tables and RELATION (one string, one list relation).
  d = Tiny();
  RelationData str{1, static_cast<uint32_t>(RelationKind::kString), 2, ""};
  RelationData list{2, static_cast<uint32_t>(RelationKind::kList), 2, ""};
  const std::vector<std::string> one = {"p-1"}, two = {"p-1", "p-2"}, none = {};
  AppendRelationEntry(&str.entries, "r-1", one);
  AppendRelationEntry(&str.entries, "r-2", one);
  AppendRelationEntry(&list.entries, "anna", none);
  AppendRelationEntry(&list.entries, "bob", two);
  d.relations = {str, list};
  d.code = {I(Op::kPushStr, 0, 0, 4), I(Op::kRelation, 0, 0, 1), I(Op::kPop),
            I(Op::kPushStr, 0, 0, 4), I(Op::kRelation, 1, 0, 0), I(Op::kRequire, 0, 0, 0),
            I(Op::kAllow)};
  d.rules = {RuleRecord{4, 0, 4, 403, kRuleOwnership}};
  d.routes[0].request_len = d.routes[0].cost = d.max_route_cost = 7;
  write("valid_relations.bin", Serialize(d));
  std::swap(d.relations[1].entries, d.relations[0].entries);
  write("broken_relation_kind.bin", Serialize(d));
  std::swap(d.relations[1].entries, d.relations[0].entries);
  d.relations[1].entries.clear();
  AppendRelationEntry(&d.relations[1].entries, "bob", two);
  AppendRelationEntry(&d.relations[1].entries, "anna", none);
  write("broken_relation_order.bin", Serialize(d));
  // Schema constraints: a schema set (one root, `true`) and a CHECK_BODY.
  d = Tiny();
  SchemaTables t;
  t.strings = {"", "S", "#"};
  t.nodes = {SchemaNode{0, 0, static_cast<uint8_t>(SchemaNodeKind::kTrue), 0, 2, kSchemaNone, 0}};
  t.roots = {SchemaRoot{1, 0}};
  d.schemas = SerializeSchema(t);
  d.rules = {RuleRecord{4, 0, 4, 400, 0}};
  d.bodies = {BodyRecord{0, 0, 0, 1024, 8, 16, 16, 64, 0, 0, 0}};
  d.code = {I(Op::kCheckBody, 0, 1, 0), I(Op::kAllow)};
  d.routes[0].request_len = d.routes[0].cost = d.max_route_cost = 2;
  write("valid_schemas.bin", Serialize(d));
  d.bodies[0].root = 3;
  write("broken_body_root.bin", Serialize(d));
}

// ---- Relation index (Bundle::FindRelation) ---------------------------------

// The load-time index keeps an entry inside its hash slot when its key and
// value encoding fit kRelationInlineBytes, and behind an offset otherwise;
// these tables mix both so every lookup path is hit and missed.

// A bundle with one relation of `kind` holding `entries` (sorted here).
Result<std::shared_ptr<const Bundle>> LoadRelation(
    uint32_t kind, std::vector<std::pair<std::string, std::vector<std::string>>> entries) {
  BundleData d;
  d.name = "rel";
  d.compiler_version = "test";
  d.strings = {"", "rel", "test", "GET", "root", "/", "rel"};
  d.routes = {RouteRecord{4, 3, 5, 0, 0, 0, 1, 0, 0, 1}};
  d.max_route_cost = 1;
  d.code = {Instr{Op::kAllow, 0, 0, 0}};
  d.nodes = {TrieNode{0, 0, kNone, kNone, 0, 1}};
  d.methods = {TrieMethod{3, 0}};
  std::sort(entries.begin(), entries.end());
  RelationData rel{6, kind, static_cast<uint32_t>(entries.size()), ""};
  for (const auto& [k, v] : entries) AppendRelationEntry(&rel.entries, k, v);
  d.relations = {rel};
  return Bundle::Load(Serialize(d));
}

// The values FindRelation points at, or nullopt when it finds nothing.
std::optional<std::vector<std::string>> Lookup(const Bundle& b, std::string_view key) {
  const char* p = b.FindRelation(0, key);
  if (p == nullptr) return std::nullopt;
  std::vector<std::string> out;
  const uint32_t count = RelationU32(p);
  p += 4;
  for (uint32_t i = 0; i < count; ++i) {
    const uint32_t len = RelationU32(p);
    out.emplace_back(p + 4, len);
    p += 4 + len;
  }
  return out;
}

// Bytes an entry needs inline: key, u32 count, u32 length + bytes per value.
size_t InlineBytes(const std::string& key, const std::vector<std::string>& values) {
  size_t n = key.size() + 4;
  for (const auto& v : values) n += 4 + v.size();
  return n;
}

TEST(RelationIndex, LookupInlineAndOffsetEntriesHitAndMiss) {
  constexpr size_t kInline = Bundle::kRelationInlineBytes;
  const std::string long_key(200, 'k');
  const std::string max_key(kMaxRelationKeyBytes, 'm');
  // Key + 8 bytes of value encoding exactly at the limit, and one over.
  const std::string at_limit(kInline - 8, 'a');
  const std::string over_limit(kInline - 7, 'a');
  std::vector<std::pair<std::string, std::vector<std::string>>> e = {
      {"", {"empty-key"}},
      {"u1", {"p1"}},
      {"u2", {"p2"}},
      {at_limit, {""}},
      {over_limit, {""}},
      {"short", {std::string(kInline, 'v')}},  // short key, long value
      {long_key, {"long"}},
      {long_key + "x", {"long-x"}},
      {long_key.substr(0, 199) + "j", {"long-j"}},  // differs in the last byte
      {max_key, {"max"}},
  };
  ASSERT_EQ(InlineBytes(at_limit, {""}), kInline);
  ASSERT_EQ(InlineBytes(over_limit, {""}), kInline + 1);
  auto b = LoadRelation(0, e);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  for (const auto& [k, v] : e) {
    auto got = Lookup(**b, k);
    ASSERT_TRUE(got.has_value()) << k.size() << " " << k.substr(0, 16);
    EXPECT_EQ(*got, v) << k.substr(0, 16);
  }
  // Misses: prefixes, extensions and last-byte changes of inline and offset
  // keys, and a key longer than any slot or entry.
  for (const std::string& k :
       {std::string("u"), std::string("u3"), std::string("u1 "), std::string("U1"),
        std::string(" "), at_limit.substr(1), at_limit + "b", over_limit + "a",
        std::string(kInline - 6, 'a'), long_key.substr(0, 199), long_key.substr(0, 199) + "l",
        long_key + "y", max_key.substr(1), max_key + "m", std::string(10000, 'k')}) {
    EXPECT_FALSE(Lookup(**b, k).has_value()) << k.size() << " " << k.substr(0, 16);
  }
}

TEST(RelationIndex, LookupListValuesInlineAndOffset) {
  std::vector<std::string> many;
  for (int i = 0; i < 4096; ++i) many.push_back("member-" + std::to_string(i));
  std::vector<std::pair<std::string, std::vector<std::string>>> e = {
      {"none", {}},                       // an empty list
      {"", {}},                           // empty key, empty list
      {"few", {"a", "b", "c"}},           // inline: 3 + 4 + 3 * 5 = 22 bytes
      {"more", {"a", "b", "c", "d", "e", "f"}},  // 4 + 4 + 6 * 5 = 38: offset
      {"many", many},
      {"empties", {"", "", "", "", "", ""}},
  };
  ASSERT_LE(InlineBytes("few", e[2].second), Bundle::kRelationInlineBytes);
  ASSERT_GT(InlineBytes("more", e[3].second), Bundle::kRelationInlineBytes);
  auto b = LoadRelation(1, e);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  for (const auto& [k, v] : e) {
    auto got = Lookup(**b, k);
    ASSERT_TRUE(got.has_value()) << k;
    EXPECT_EQ(*got, v) << k;
  }
  for (const char* k : {"non", "nonf", "fex", "mor", "manz", "empties!"}) {
    EXPECT_FALSE(Lookup(**b, k).has_value()) << k;
  }
}

TEST(RelationIndex, LookupInAnEmptyRelationFindsNothing) {
  for (uint32_t kind : {0u, 1u}) {
    auto b = LoadRelation(kind, {});
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    for (const std::string& k : {std::string(), std::string("a"), std::string(300, 'z')}) {
      EXPECT_TRUE((*b)->FindRelation(0, k) == nullptr) << k.size();
    }
  }
}

// Many keys of one length that differ only in their last bytes, half of
// them inline and half behind offsets, in tables small and large: probe
// sequences run across both kinds of slot and (with 1 in 256 odds per
// probe) over slots whose 8-bit tag matches a different key. The seed is
// random per load, so collisions cannot be forced from outside; loading
// each table several times varies them.
TEST(RelationIndex, LookupKeysDifferingInTheLastBytes) {
  for (int n : {1, 2, 3, 7, 64, 5000}) {
    std::vector<std::pair<std::string, std::vector<std::string>>> e;
    for (int i = 0; i < n; ++i) {
      std::string key = "key-" + std::string(1, static_cast<char>('A' + i / 256 % 26)) +
                        std::string(1, static_cast<char>(i % 256));
      // Even entries inline (short value), odd ones too long for a slot.
      std::string value = i % 2 == 0 ? "v" + std::to_string(i)
                                      : std::string(Bundle::kRelationInlineBytes, 'w') +
                                            std::to_string(i);
      e.push_back({key, {value}});
    }
    for (int load = 0; load < 3; ++load) {
      auto b = LoadRelation(0, e);
      ASSERT_TRUE(b.ok()) << b.status().ToString();
      for (const auto& [k, v] : e) {
        auto got = Lookup(**b, k);
        ASSERT_TRUE(got.has_value()) << n;
        ASSERT_EQ(*got, v) << n;
        std::string absent = k;
        absent.back() = static_cast<char>(absent.back() ^ 0x80);
        if (n <= 128) {  // with more keys the flipped byte may name another entry
          EXPECT_FALSE(Lookup(**b, absent).has_value()) << n;
        }
        EXPECT_FALSE(Lookup(**b, k + '\0').has_value()) << n;
        EXPECT_FALSE(Lookup(**b, k.substr(0, k.size() - 1)).has_value()) << n;
      }
    }
  }
}

}  // namespace
}  // namespace vakt::bytecode
