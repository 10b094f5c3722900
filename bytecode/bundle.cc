// Bundle container: Serialize() writes the layout of format.h, Parse() reads
// it back from untrusted bytes, Bundle::Load() adds the verifier, the regex
// compilation and the route index.
//
// Parse() is the first thing an attacker-supplied bundle meets, so it is
// written like leveldb's table/format.cc: every read goes through a bounds
// checked little-endian reader, every count is checked against the bytes
// that remain (in 64-bit arithmetic) before anything is reserved, and every
// section must be consumed exactly. Tables that expand into separately
// allocated objects (strings, claim paths) must be stored back to back, so
// the memory Parse() allocates is linear in the input size: a small file
// cannot make it build gigabytes of copies.
//
// The encoding is canonical: sections follow the directory at the first
// 8-byte boundary, one after the other with zero padding, so Serialize() of
// the same data always gives the same bytes and Parse() refuses any other
// arrangement. Complexity: O(bundle size) time and memory.
//
// Relations (format.h kRelations) are indexed at load: one open-addressing
// table per relation with a random per-load hash seed and a bounded probe
// length (kMaxRelationProbe), so FindRelation is O(1) whatever the bundle
// holds. Short entries live inside their 32-byte slot, so finding one costs
// a single cache miss; the table takes 64 bytes per entry (two slots),
// plus a copy of the entries too long to be inline.
//
// Tested by bundle_test.cc and the bundle fuzzer (tests/fuzz).
#include "bytecode/bundle.h"

#include "bytecode/schema.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/mman.h>

#include <cstdlib>
#include <re2/re2.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <string>
#include <utility>

#include "bytecode/fapi_auth.h"
#include "bytecode/verifier.h"

namespace vakt::bytecode {
namespace {

#define VAKT_BC_RETURN_IF_ERROR(expr)                  \
  do {                                                 \
    Status vakt_bc_status_ = (expr);                   \
    if (!vakt_bc_status_.ok()) return vakt_bc_status_; \
  } while (0)

constexpr size_t kDirectorySize = kSectionCount * kDirEntrySize;
constexpr size_t kAlignment = 8;
constexpr uint64_t AlignUp(uint64_t n) { return (n + kAlignment - 1) & ~uint64_t{kAlignment - 1}; }
constexpr size_t kMinBundleSize = kHeaderSize + kDirectorySize;
constexpr uint64_t kFirstSectionOffset = AlignUp(kMinBundleSize);

// Header field offsets (format.h).
constexpr size_t kVersionOffset = 8;
constexpr size_t kFlagsOffset = 10;
constexpr size_t kSectionCountOffset = 12;
constexpr size_t kFileSizeOffset = 16;
constexpr size_t kChecksumOffset = 24;
constexpr size_t kReservedOffset = 56;

// Record sizes on disk.
constexpr size_t kStringEntrySize = 8;
constexpr size_t kIntSize = 8;
constexpr size_t kRegexSize = 4;
constexpr size_t kClaimPathSize = 8;
constexpr size_t kClaimPartSize = 4;
constexpr size_t kRuleSize = 16;
constexpr size_t kRouteSize = 44;
constexpr size_t kIssuerSize = 24;
constexpr size_t kAuthSize = 16;
constexpr size_t kRelationSize = 16;
constexpr size_t kBodySize = 36;
constexpr size_t kParamSize = 8;
constexpr size_t kNodeSize = 24;
constexpr size_t kEdgeSize = 8;
constexpr size_t kMethodSize = 8;
constexpr size_t kInstrSize = 8;

// Each compiled regex may use at most this much memory (RE2 max_mem).
constexpr int64_t kRegexMaxMem = 8 << 20;

const char* SectionName(uint32_t id) {
  static constexpr const char* kNames[] = {"?",       "strings",     "ints",  "meta",
                                           "regexes", "claim_paths", "rules", "routes",
                                           "params",  "trie",        "code",
                                           "issuers", "auth",        "relations",
                                           "schemas", "bodies"};
  return id <= kSectionCount ? kNames[id] : "?";
}

// ---- Little-endian encoding --------------------------------------------

uint16_t LoadU16(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint16_t>(u[0] | (u[1] << 8));
}
uint32_t LoadU32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint32_t>(u[0]) | (static_cast<uint32_t>(u[1]) << 8) |
         (static_cast<uint32_t>(u[2]) << 16) | (static_cast<uint32_t>(u[3]) << 24);
}
uint64_t LoadU64(const char* p) {
  return static_cast<uint64_t>(LoadU32(p)) | (static_cast<uint64_t>(LoadU32(p + 4)) << 32);
}

void PutU8(std::string* out, uint8_t v) { out->push_back(static_cast<char>(v)); }
template <typename T>
void PutLE(std::string* out, T v) {
  char buf[sizeof(T)];
  for (size_t i = 0; i < sizeof(T); ++i) buf[i] = static_cast<char>(v >> (8 * i));
  out->append(buf, sizeof(T));
}
void PutU16(std::string* out, uint16_t v) { PutLE(out, v); }
void PutU32(std::string* out, uint32_t v) { PutLE(out, v); }
void PutU64(std::string* out, uint64_t v) { PutLE(out, v); }

// A bounds-checked cursor over one section's payload. Every read either
// succeeds within the section or reports which section ran short.
class Reader {
 public:
  Reader(std::string_view data, uint32_t section) : data_(data), section_(section) {}

  size_t remaining() const { return data_.size() - pos_; }
  std::string Where() const { return std::string("section `") + SectionName(section_) + "`: "; }

  Status U8(const char* what, uint8_t* v) {
    VAKT_BC_RETURN_IF_ERROR(Need(1, what));
    *v = static_cast<uint8_t>(data_[pos_]);
    pos_ += 1;
    return Status::Ok();
  }
  Status U16(const char* what, uint16_t* v) {
    VAKT_BC_RETURN_IF_ERROR(Need(2, what));
    *v = LoadU16(data_.data() + pos_);
    pos_ += 2;
    return Status::Ok();
  }
  Status U32(const char* what, uint32_t* v) {
    VAKT_BC_RETURN_IF_ERROR(Need(4, what));
    *v = LoadU32(data_.data() + pos_);
    pos_ += 4;
    return Status::Ok();
  }
  Status I64(const char* what, int64_t* v) {
    VAKT_BC_RETURN_IF_ERROR(Need(8, what));
    *v = static_cast<int64_t>(LoadU64(data_.data() + pos_));
    pos_ += 8;
    return Status::Ok();
  }
  Status Bytes(size_t n, const char* what, std::string_view* v) {
    VAKT_BC_RETURN_IF_ERROR(Need(n, what));
    *v = data_.substr(pos_, n);
    pos_ += n;
    return Status::Ok();
  }
  std::string_view Rest() {
    std::string_view v = data_.substr(pos_);
    pos_ = data_.size();
    return v;
  }

  // Reads a u32 record count and checks that `count * record_size` bytes
  // remain, before the caller reserves anything for them.
  Status Count(size_t record_size, const char* what, uint32_t* n) {
    VAKT_BC_RETURN_IF_ERROR(Need(4, (std::string(what) + " count").c_str()));
    VAKT_BC_RETURN_IF_ERROR(U32(what, n));
    uint64_t need = static_cast<uint64_t>(*n) * record_size;  // < 2^36: no overflow
    if (need > remaining()) {
      return Corruption(Where() + what + " count " + std::to_string(*n) + " needs " +
                        std::to_string(need) + " bytes, has " + std::to_string(remaining()));
    }
    return Status::Ok();
  }

  Status Finish() const {
    if (remaining() != 0) {
      return Corruption(Where() + std::to_string(remaining()) + " trailing bytes");
    }
    return Status::Ok();
  }

 private:
  Status Need(size_t n, const char* what) const {
    if (n > remaining()) {
      return Corruption(Where() + "truncated: " + what + " needs " + std::to_string(n) +
                        " bytes, has " + std::to_string(remaining()));
    }
    return Status::Ok();
  }

  std::string_view data_;
  size_t pos_ = 0;
  uint32_t section_;
};

// ---- Relation hashing -------------------------------------------------------

// A relation slot (Bundle::RelationSlot, 32 bytes, 32-aligned so it never
// straddles a cache line):
//
//   byte 0   state: kSlotEmpty, kSlotOffset, or key length + 1 (inline)
//   byte 1   u8 tag: bits 32..39 of the key's hash, a cheap first filter
//   inline:  bytes 2.. the key, then its value encoding exactly as the
//            entries hold it (u32 count, count x {u32 length, bytes}),
//            together at most Bundle::kRelationInlineBytes
//   offset:  bytes 4..7 u32 tag (hash >> 32), bytes 8..11 u32 offset of the
//            entry (u32 key length, key, value encoding) in RelationIndex::
//            entries
//
// Every byte copied into a slot or the entries was walked by the verifier
// (WalkRelation) first, so lookups read lengths without checking them.
constexpr unsigned char kSlotEmpty = 0;
constexpr unsigned char kSlotOffset = 0xff;
constexpr size_t kSlotBytes = 32;
constexpr size_t kSlotHeader = 2;
static_assert(kSlotHeader + Bundle::kRelationInlineBytes == kSlotBytes);
static_assert(Bundle::kRelationInlineBytes + 1 < kSlotOffset);

// A seeded 64-bit hash of the key: 8 bytes at a time, each mixed with a
// multiply-xorshift, then a finaliser (after splitmix64 / murmur3's fmix64).
// Not cryptographic; the per-load random seed and the probe bound keep a
// hostile key set from degrading lookups.
uint64_t Mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}
uint64_t RelationHash(uint64_t seed, std::string_view key) {
  uint64_t h = seed ^ (key.size() * 0x9e3779b97f4a7c15ull);
  const char* p = key.data();
  size_t n = key.size();
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    h = (h ^ (v * 0xbf58476d1ce4e5b9ull)) * 0x94d049bb133111ebull;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  uint64_t tail = 0;
  std::memcpy(&tail, p, n);
  h ^= tail * 0xbf58476d1ce4e5b9ull;
  return Mix(h);
}
// The home slot of hash h in a table of n slots: the low 32 bits scaled to
// [0, n) by a multiply-shift (Lemire's fastrange), so n need not be a power
// of two. The tags take the high 32 bits, independent of the home.
size_t HomeSlot(uint64_t h, size_t n) {
  return static_cast<size_t>((static_cast<uint64_t>(static_cast<uint32_t>(h)) * n) >> 32);
}

// Bytes of the value encoding that starts at count_at (u32 count, then
// count x {u32 length, bytes}). REQUIRES: walked by WalkRelation.
size_t ValueEncodingBytes(const char* count_at) {
  const uint32_t count = RelationU32(count_at);
  size_t n = 4;
  for (uint32_t v = 0; v < count; ++v) n += 4 + RelationU32(count_at + n);
  return n;
}

// Memory for large tables: 2 MiB aligned and advised as huge pages (where
// the kernel supports it), so random probes do not also miss the TLB.
void* HugeAlloc(size_t bytes) {
  constexpr size_t kHuge = size_t{2} << 20;
  size_t size = bytes < kHuge ? (bytes == 0 ? 8 : bytes) : (bytes + kHuge - 1) / kHuge * kHuge;
  void* p = nullptr;
  if (posix_memalign(&p, bytes < kHuge ? 64 : kHuge, size) != 0) return nullptr;
#ifdef MADV_HUGEPAGE
  if (bytes >= kHuge) madvise(p, size, MADV_HUGEPAGE);
#endif
  return p;
}

uint64_t RandomSeed() {
  uint64_t seed = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&seed), sizeof(seed)) != 1) {
    seed = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(&seed)) * 0x9e3779b97f4a7c15ull;
  }
  return seed;
}

// ---- Section readers ------------------------------------------------------

Status ReadStrings(Reader& r, BundleData* d) {
  uint32_t n;
  VAKT_BC_RETURN_IF_ERROR(r.Count(kStringEntrySize, "string", &n));
  std::vector<std::pair<uint32_t, uint32_t>> table(n);
  for (auto& [offset, length] : table) {
    VAKT_BC_RETURN_IF_ERROR(r.U32("string offset", &offset));
    VAKT_BC_RETURN_IF_ERROR(r.U32("string length", &length));
  }
  std::string_view blob = r.Rest();
  uint64_t expected = 0;
  for (uint32_t i = 0; i < n; ++i) {
    uint64_t offset = table[i].first;
    uint64_t end = offset + table[i].second;
    if (end > blob.size()) {
      return Corruption(r.Where() + "string " + std::to_string(i) + " [" + std::to_string(offset) +
                        ", " + std::to_string(end) + ") is outside the blob (" +
                        std::to_string(blob.size()) + " bytes)");
    }
    if (offset != expected) {
      return Corruption(r.Where() + "string " + std::to_string(i) + " starts at blob offset " +
                        std::to_string(offset) + ", expected " + std::to_string(expected) +
                        " (strings are stored back to back)");
    }
    expected = end;
  }
  if (expected != blob.size()) {
    return Corruption(r.Where() + std::to_string(blob.size() - expected) +
                      " trailing bytes after the last string");
  }
  if (n == 0) return Corruption(r.Where() + "no strings: string 0 must be \"\"");
  if (table[0].second != 0) return Corruption(r.Where() + "string 0 must be empty");
  d->strings.reserve(n);
  for (const auto& [offset, length] : table) d->strings.emplace_back(blob.substr(offset, length));
  return Status::Ok();
}

Status ReadInts(Reader& r, BundleData* d) {
  uint32_t n;
  VAKT_BC_RETURN_IF_ERROR(r.Count(kIntSize, "int", &n));
  d->ints.resize(n);
  for (int64_t& v : d->ints) VAKT_BC_RETURN_IF_ERROR(r.I64("int", &v));
  return r.Finish();
}

Status ReadMeta(Reader& r, BundleData* d, uint32_t* route_count) {
  uint32_t name, compiler;
  std::string_view digest;
  VAKT_BC_RETURN_IF_ERROR(r.U32("name", &name));
  VAKT_BC_RETURN_IF_ERROR(r.U32("compiler version", &compiler));
  VAKT_BC_RETURN_IF_ERROR(r.Bytes(32, "source digest", &digest));
  VAKT_BC_RETURN_IF_ERROR(r.U32("route count", route_count));
  VAKT_BC_RETURN_IF_ERROR(r.U32("max route cost", &d->max_route_cost));
  VAKT_BC_RETURN_IF_ERROR(r.Finish());
  auto check = [&](const char* what, uint32_t i) {
    if (i >= d->strings.size()) {
      return Corruption(r.Where() + what + " string " + std::to_string(i) + " out of range (" +
                        std::to_string(d->strings.size()) + " strings)");
    }
    return Status::Ok();
  };
  VAKT_BC_RETURN_IF_ERROR(check("name", name));
  VAKT_BC_RETURN_IF_ERROR(check("compiler version", compiler));
  d->name = d->strings[name];
  d->compiler_version = d->strings[compiler];
  std::memcpy(d->source_digest.data(), digest.data(), 32);
  return Status::Ok();
}

Status ReadRegexes(Reader& r, BundleData* d) {
  uint32_t n;
  VAKT_BC_RETURN_IF_ERROR(r.Count(kRegexSize, "regex", &n));
  d->regexes.resize(n);
  for (uint32_t& v : d->regexes) VAKT_BC_RETURN_IF_ERROR(r.U32("regex", &v));
  return r.Finish();
}

Status ReadClaimPaths(Reader& r, BundleData* d) {
  uint32_t n;
  VAKT_BC_RETURN_IF_ERROR(r.Count(kClaimPathSize, "claim path", &n));
  std::vector<std::pair<uint32_t, uint32_t>> table(n);
  for (auto& [first, count] : table) {
    VAKT_BC_RETURN_IF_ERROR(r.U32("claim path first part", &first));
    VAKT_BC_RETURN_IF_ERROR(r.U32("claim path part count", &count));
  }
  uint32_t m;
  VAKT_BC_RETURN_IF_ERROR(r.Count(kClaimPartSize, "claim part", &m));
  std::vector<uint32_t> parts(m);
  for (uint32_t& v : parts) VAKT_BC_RETURN_IF_ERROR(r.U32("claim part", &v));
  VAKT_BC_RETURN_IF_ERROR(r.Finish());
  uint64_t expected = 0;
  for (uint32_t i = 0; i < n; ++i) {
    uint64_t first = table[i].first;
    uint64_t end = first + table[i].second;
    if (end > m) {
      return Corruption(r.Where() + "claim path " + std::to_string(i) + " parts [" +
                        std::to_string(first) + ", " + std::to_string(end) +
                        ") are outside the part list (" + std::to_string(m) + " parts)");
    }
    if (first != expected) {
      return Corruption(r.Where() + "claim path " + std::to_string(i) + " starts at part " +
                        std::to_string(first) + ", expected " + std::to_string(expected) +
                        " (paths are stored back to back)");
    }
    expected = end;
  }
  if (expected != m) {
    return Corruption(r.Where() + std::to_string(m - expected) +
                      " unused parts after the last claim path");
  }
  d->claim_paths.reserve(n);
  for (const auto& [first, count] : table) {
    d->claim_paths.emplace_back(parts.begin() + first, parts.begin() + first + count);
  }
  return Status::Ok();
}

Status ReadRules(Reader& r, BundleData* d) {
  uint32_t n;
  VAKT_BC_RETURN_IF_ERROR(r.Count(kRuleSize, "rule", &n));
  d->rules.resize(n);
  for (RuleRecord& v : d->rules) {
    VAKT_BC_RETURN_IF_ERROR(r.U32("rule id", &v.id));
    VAKT_BC_RETURN_IF_ERROR(r.U32("rule error", &v.error));
    VAKT_BC_RETURN_IF_ERROR(r.U32("rule message", &v.message));
    VAKT_BC_RETURN_IF_ERROR(r.U16("rule status", &v.status));
    VAKT_BC_RETURN_IF_ERROR(r.U16("rule flags", &v.flags));
  }
  return r.Finish();
}

Status ReadRoutes(Reader& r, BundleData* d) {
  uint32_t n;
  VAKT_BC_RETURN_IF_ERROR(r.Count(kRouteSize, "route", &n));
  d->routes.resize(n);
  for (RouteRecord& v : d->routes) {
    for (uint32_t* f :
         {&v.name, &v.method, &v.path_template, &v.first_param, &v.param_count, &v.request_code,
          &v.request_len, &v.response_code, &v.response_len, &v.cost, &v.auth}) {
      VAKT_BC_RETURN_IF_ERROR(r.U32("route field", f));
    }
  }
  return r.Finish();
}

Status ReadIssuers(Reader& r, BundleData* d) {
  uint32_t n;
  VAKT_BC_RETURN_IF_ERROR(r.Count(kIssuerSize, "issuer", &n));
  d->issuers.resize(n);
  for (IssuerRecord& v : d->issuers) {
    for (uint32_t* f : {&v.name, &v.issuer, &v.audience, &v.jwks, &v.leeway}) {
      VAKT_BC_RETURN_IF_ERROR(r.U32("issuer field", f));
    }
    VAKT_BC_RETURN_IF_ERROR(r.U16("issuer algs", &v.algs));
    VAKT_BC_RETURN_IF_ERROR(r.U16("issuer flags", &v.flags));
  }
  return r.Finish();
}

Status ReadAuth(Reader& r, BundleData* d) {
  uint32_t n;
  VAKT_BC_RETURN_IF_ERROR(r.Count(kAuthSize, "auth record", &n));
  d->auth.resize(n);
  for (AuthRecord& v : d->auth) {
    for (uint32_t* f : {&v.issuer, &v.scope, &v.dpop_window}) {
      VAKT_BC_RETURN_IF_ERROR(r.U32("auth field", f));
    }
    VAKT_BC_RETURN_IF_ERROR(r.U8("auth sender", &v.sender));
    VAKT_BC_RETURN_IF_ERROR(r.U8("auth tls", &v.tls));
    VAKT_BC_RETURN_IF_ERROR(r.U8("auth flags", &v.flags));
    VAKT_BC_RETURN_IF_ERROR(r.U8("auth reserved", &v.reserved));
  }
  return r.Finish();
}

// Records first, then each relation's entry bytes back to back; the
// entries' structure is the verifier's (WalkRelation).
Status ReadRelations(Reader& r, BundleData* d) {
  uint32_t n;
  VAKT_BC_RETURN_IF_ERROR(r.Count(kRelationSize, "relation", &n));
  d->relations.resize(n);
  std::vector<uint32_t> lengths(n);
  for (uint32_t i = 0; i < n; ++i) {
    RelationData& v = d->relations[i];
    VAKT_BC_RETURN_IF_ERROR(r.U32("relation name", &v.name));
    VAKT_BC_RETURN_IF_ERROR(r.U32("relation kind", &v.kind));
    VAKT_BC_RETURN_IF_ERROR(r.U32("relation count", &v.count));
    VAKT_BC_RETURN_IF_ERROR(r.U32("relation bytes", &lengths[i]));
  }
  for (uint32_t i = 0; i < n; ++i) {
    std::string_view body;
    VAKT_BC_RETURN_IF_ERROR(r.Bytes(lengths[i], "relation entries", &body));
    d->relations[i].entries.assign(body);
  }
  return r.Finish();
}

// The schema blob is kept as is; SchemaSet::Load (at Bundle::Load) checks it.
Status ReadSchemas(Reader& r, BundleData* d) {
  d->schemas.assign(r.Rest());
  return r.Finish();
}

Status ReadBodies(Reader& r, BundleData* d) {
  uint32_t n;
  VAKT_BC_RETURN_IF_ERROR(r.Count(kBodySize, "body check", &n));
  d->bodies.resize(n);
  for (BodyRecord& v : d->bodies) {
    for (uint32_t* f : {&v.root, &v.rule, &v.accept, &v.max_bytes, &v.max_depth,
                        &v.max_properties, &v.max_items, &v.max_string}) {
      VAKT_BC_RETURN_IF_ERROR(r.U32("body check field", f));
    }
    VAKT_BC_RETURN_IF_ERROR(r.U16("body check status", &v.status));
    VAKT_BC_RETURN_IF_ERROR(r.U8("body check kind", &v.response));
    VAKT_BC_RETURN_IF_ERROR(r.U8("body check reserved", &v.reserved));
  }
  return r.Finish();
}

Status ReadParams(Reader& r, BundleData* d) {
  uint32_t n;
  VAKT_BC_RETURN_IF_ERROR(r.Count(kParamSize, "param", &n));
  d->params.resize(n);
  for (ParamRecord& v : d->params) {
    VAKT_BC_RETURN_IF_ERROR(r.U32("param name", &v.name));
    VAKT_BC_RETURN_IF_ERROR(r.U32("param shape", &v.shape));
  }
  return r.Finish();
}

Status ReadTrie(Reader& r, BundleData* d) {
  uint32_t n;
  VAKT_BC_RETURN_IF_ERROR(r.Count(kNodeSize, "node", &n));
  d->nodes.resize(n);
  for (TrieNode& v : d->nodes) {
    for (uint32_t* f : {&v.first_edge, &v.edge_count, &v.param_child, &v.param_shape,
                        &v.first_method, &v.method_count}) {
      VAKT_BC_RETURN_IF_ERROR(r.U32("node field", f));
    }
  }
  VAKT_BC_RETURN_IF_ERROR(r.Count(kEdgeSize, "edge", &n));
  d->edges.resize(n);
  for (TrieEdge& v : d->edges) {
    VAKT_BC_RETURN_IF_ERROR(r.U32("edge segment", &v.segment));
    VAKT_BC_RETURN_IF_ERROR(r.U32("edge child", &v.child));
  }
  VAKT_BC_RETURN_IF_ERROR(r.Count(kMethodSize, "method", &n));
  d->methods.resize(n);
  for (TrieMethod& v : d->methods) {
    VAKT_BC_RETURN_IF_ERROR(r.U32("method string", &v.method));
    VAKT_BC_RETURN_IF_ERROR(r.U32("method route", &v.route));
  }
  return r.Finish();
}

Status ReadCode(Reader& r, BundleData* d) {
  uint32_t n;
  VAKT_BC_RETURN_IF_ERROR(r.Count(kInstrSize, "instruction", &n));
  d->code.resize(n);
  for (Instr& v : d->code) {
    std::string_view bytes;
    VAKT_BC_RETURN_IF_ERROR(r.Bytes(kInstrSize, "instruction", &bytes));
    // Any byte is a valid Op value (the enum has a fixed underlying type);
    // unknown opcodes are the verifier's to refuse.
    v.op = static_cast<Op>(static_cast<uint8_t>(bytes[0]));
    v.a = static_cast<uint8_t>(bytes[1]);
    v.b = LoadU16(bytes.data() + 2);
    v.c = LoadU32(bytes.data() + 4);
  }
  return r.Finish();
}

// ---- Section writers ------------------------------------------------------

// Index of `s` in `strings`, appended if absent.
uint32_t Intern(std::vector<std::string_view>* strings, std::string_view s) {
  for (size_t i = 0; i < strings->size(); ++i) {
    if ((*strings)[i] == s) return static_cast<uint32_t>(i);
  }
  strings->push_back(s);
  return static_cast<uint32_t>(strings->size() - 1);
}

std::string WriteStrings(const std::vector<std::string_view>& strings) {
  std::string out;
  PutU32(&out, static_cast<uint32_t>(strings.size()));
  uint32_t offset = 0;
  for (std::string_view s : strings) {
    PutU32(&out, offset);
    PutU32(&out, static_cast<uint32_t>(s.size()));
    offset += static_cast<uint32_t>(s.size());
  }
  for (std::string_view s : strings) out.append(s);
  return out;
}

}  // namespace

// ---- Public API -------------------------------------------------------------

// Sha256 and HexLower moved to sha256.cc (declared in sha256.h, included by bundle.h).

std::string Serialize(const BundleData& d) {
  // The name and compiler version live in the string table; they are
  // appended to it if the compiler did not intern them already.
  std::vector<std::string_view> strings(d.strings.begin(), d.strings.end());
  if (strings.empty()) strings.push_back("");
  uint32_t name = Intern(&strings, d.name);
  uint32_t compiler = Intern(&strings, d.compiler_version);

  std::string sections[kSectionCount];
  auto& s_strings = sections[0];
  auto& s_ints = sections[1];
  auto& s_meta = sections[2];
  auto& s_regexes = sections[3];
  auto& s_claims = sections[4];
  auto& s_rules = sections[5];
  auto& s_routes = sections[6];
  auto& s_params = sections[7];
  auto& s_trie = sections[8];
  auto& s_code = sections[9];
  auto& s_issuers = sections[10];
  auto& s_auth = sections[11];
  auto& s_relations = sections[12];
  auto& s_schemas = sections[13];
  auto& s_bodies = sections[14];

  s_strings = WriteStrings(strings);

  PutU32(&s_ints, static_cast<uint32_t>(d.ints.size()));
  for (int64_t v : d.ints) PutU64(&s_ints, static_cast<uint64_t>(v));

  PutU32(&s_meta, name);
  PutU32(&s_meta, compiler);
  s_meta.append(reinterpret_cast<const char*>(d.source_digest.data()), d.source_digest.size());
  PutU32(&s_meta, static_cast<uint32_t>(d.routes.size()));
  PutU32(&s_meta, d.max_route_cost);

  PutU32(&s_regexes, static_cast<uint32_t>(d.regexes.size()));
  for (uint32_t v : d.regexes) PutU32(&s_regexes, v);

  PutU32(&s_claims, static_cast<uint32_t>(d.claim_paths.size()));
  uint32_t part = 0;
  for (const auto& path : d.claim_paths) {
    PutU32(&s_claims, part);
    PutU32(&s_claims, static_cast<uint32_t>(path.size()));
    part += static_cast<uint32_t>(path.size());
  }
  PutU32(&s_claims, part);
  for (const auto& path : d.claim_paths) {
    for (uint32_t v : path) PutU32(&s_claims, v);
  }

  PutU32(&s_rules, static_cast<uint32_t>(d.rules.size()));
  for (const RuleRecord& v : d.rules) {
    PutU32(&s_rules, v.id);
    PutU32(&s_rules, v.error);
    PutU32(&s_rules, v.message);
    PutU16(&s_rules, v.status);
    PutU16(&s_rules, v.flags);
  }

  PutU32(&s_routes, static_cast<uint32_t>(d.routes.size()));
  for (const RouteRecord& v : d.routes) {
    for (uint32_t f : {v.name, v.method, v.path_template, v.first_param, v.param_count,
                       v.request_code, v.request_len, v.response_code, v.response_len, v.cost,
                       v.auth}) {
      PutU32(&s_routes, f);
    }
  }

  PutU32(&s_issuers, static_cast<uint32_t>(d.issuers.size()));
  for (const IssuerRecord& v : d.issuers) {
    for (uint32_t f : {v.name, v.issuer, v.audience, v.jwks, v.leeway}) PutU32(&s_issuers, f);
    PutU16(&s_issuers, v.algs);
    PutU16(&s_issuers, v.flags);
  }

  PutU32(&s_auth, static_cast<uint32_t>(d.auth.size()));
  for (const AuthRecord& v : d.auth) {
    for (uint32_t f : {v.issuer, v.scope, v.dpop_window}) PutU32(&s_auth, f);
    PutU8(&s_auth, v.sender);
    PutU8(&s_auth, v.tls);
    PutU8(&s_auth, v.flags);
    PutU8(&s_auth, v.reserved);
  }

  PutU32(&s_relations, static_cast<uint32_t>(d.relations.size()));
  for (const RelationData& v : d.relations) {
    PutU32(&s_relations, v.name);
    PutU32(&s_relations, v.kind);
    PutU32(&s_relations, v.count);
    PutU32(&s_relations, static_cast<uint32_t>(v.entries.size()));
  }
  for (const RelationData& v : d.relations) s_relations.append(v.entries);

  s_schemas = d.schemas;
  PutU32(&s_bodies, static_cast<uint32_t>(d.bodies.size()));
  for (const BodyRecord& v : d.bodies) {
    for (uint32_t f : {v.root, v.rule, v.accept, v.max_bytes, v.max_depth, v.max_properties,
                       v.max_items, v.max_string}) {
      PutU32(&s_bodies, f);
    }
    PutU16(&s_bodies, v.status);
    PutU8(&s_bodies, v.response);
    PutU8(&s_bodies, v.reserved);
  }

  PutU32(&s_params, static_cast<uint32_t>(d.params.size()));
  for (const ParamRecord& v : d.params) {
    PutU32(&s_params, v.name);
    PutU32(&s_params, v.shape);
  }

  PutU32(&s_trie, static_cast<uint32_t>(d.nodes.size()));
  for (const TrieNode& v : d.nodes) {
    for (uint32_t f : {v.first_edge, v.edge_count, v.param_child, v.param_shape, v.first_method,
                       v.method_count}) {
      PutU32(&s_trie, f);
    }
  }
  PutU32(&s_trie, static_cast<uint32_t>(d.edges.size()));
  for (const TrieEdge& v : d.edges) {
    PutU32(&s_trie, v.segment);
    PutU32(&s_trie, v.child);
  }
  PutU32(&s_trie, static_cast<uint32_t>(d.methods.size()));
  for (const TrieMethod& v : d.methods) {
    PutU32(&s_trie, v.method);
    PutU32(&s_trie, v.route);
  }

  s_code.reserve(4 + kInstrSize * d.code.size());
  PutU32(&s_code, static_cast<uint32_t>(d.code.size()));
  for (const Instr& v : d.code) {
    PutU8(&s_code, static_cast<uint8_t>(v.op));
    PutU8(&s_code, v.a);
    PutU16(&s_code, v.b);
    PutU32(&s_code, v.c);
  }

  // Lay out: header, directory, then each section at the next 8-byte
  // boundary with zero padding in between.
  uint64_t offsets[kSectionCount];
  uint64_t pos = kFirstSectionOffset;
  for (uint32_t i = 0; i < kSectionCount; ++i) {
    offsets[i] = pos;
    pos = AlignUp(pos + sections[i].size());
  }
  uint64_t total = offsets[kSectionCount - 1] + sections[kSectionCount - 1].size();

  std::string out;
  out.reserve(total);
  out.append(kMagic, sizeof(kMagic));
  PutU16(&out, kCurrentVersion);
  PutU16(&out, 0);  // flags
  PutU32(&out, kSectionCount);
  PutU64(&out, total);
  out.append(32, '\0');  // checksum, filled in below
  out.append(kHeaderSize - kReservedOffset, '\0');
  for (uint32_t i = 0; i < kSectionCount; ++i) {
    PutU32(&out, i + 1);
    PutU32(&out, static_cast<uint32_t>(offsets[i]));
    PutU32(&out, static_cast<uint32_t>(sections[i].size()));
  }
  for (uint32_t i = 0; i < kSectionCount; ++i) {
    out.append(offsets[i] - out.size(), '\0');
    out.append(sections[i]);
  }
  std::array<uint8_t, 32> sum = Sha256(std::string_view(out).substr(kHeaderSize));
  std::memcpy(out.data() + kChecksumOffset, sum.data(), sum.size());
  return out;
}

Result<BundleData> Parse(std::string_view bytes) {
  const size_t size = bytes.size();
  const char* p = bytes.data();
  if (size > kMaxBundleBytes) {
    return ResourceExhausted("bundle is " + std::to_string(size) + " bytes, over the limit of " +
                             std::to_string(kMaxBundleBytes));
  }
  // Magic and version first, so that a file that is not a bundle, or a
  // bundle of a newer format, is named as such even if it is short.
  if (size >= sizeof(kMagic) && std::memcmp(p, kMagic, sizeof(kMagic)) != 0) {
    return Corruption("bad magic: not a vakt bundle");
  }
  if (size >= kVersionOffset + 2) {
    uint16_t version = LoadU16(p + kVersionOffset);
    if (version > kCurrentVersion) {
      return Unsupported("bundle format version " + std::to_string(version) +
                         " is newer than this build supports (newest " +
                         std::to_string(kCurrentVersion) + ")");
    }
    if (version < kOldestSupportedVersion) {
      return Unsupported("bundle format version " + std::to_string(version) +
                         " is older than this build supports (oldest " +
                         std::to_string(kOldestSupportedVersion) + ")");
    }
  }
  if (size < kMinBundleSize) {
    return Corruption("truncated bundle: " + std::to_string(size) +
                      " bytes, the header and directory alone are " +
                      std::to_string(kMinBundleSize));
  }
  uint64_t file_size = LoadU64(p + kFileSizeOffset);
  if (file_size > size) {
    return Corruption("truncated bundle: header says " + std::to_string(file_size) +
                      " bytes, got " + std::to_string(size));
  }
  if (file_size < size) {
    return Corruption("trailing data: header says " + std::to_string(file_size) + " bytes, got " +
                      std::to_string(size));
  }
  uint32_t section_count = LoadU32(p + kSectionCountOffset);
  if (section_count != kSectionCount) {
    return Corruption("header section count is " + std::to_string(section_count) + ", expected " +
                      std::to_string(kSectionCount));
  }
  if (uint16_t flags = LoadU16(p + kFlagsOffset); flags != 0) {
    return Corruption("header flags " + std::to_string(flags) + " are reserved and must be 0");
  }
  for (size_t i = kReservedOffset; i < kHeaderSize; ++i) {
    if (p[i] != 0) return Corruption("reserved header bytes are not zero");
  }
  std::array<uint8_t, 32> sum = Sha256(bytes.substr(kHeaderSize));
  if (std::memcmp(sum.data(), p + kChecksumOffset, sum.size()) != 0) {
    return Corruption("checksum mismatch: the bundle is damaged");
  }

  // Directory: ids 1..kSectionCount in order, each section at the next
  // 8-byte boundary after the previous one, zero padding between.
  std::string_view payload[kSectionCount];
  uint64_t expected = kFirstSectionOffset;
  uint64_t end = kMinBundleSize;
  for (uint32_t i = 0; i < kSectionCount; ++i) {
    const char* e = p + kHeaderSize + i * kDirEntrySize;
    uint32_t id = LoadU32(e);
    uint64_t offset = LoadU32(e + 4);
    uint64_t length = LoadU32(e + 8);
    std::string where =
        "directory entry " + std::to_string(i) + " (`" + SectionName(i + 1) + "`): ";
    if (id != i + 1) {
      return Corruption(where + "section id " + std::to_string(id) + ", expected " +
                        std::to_string(i + 1));
    }
    if (offset % kAlignment != 0) {
      return Corruption(where + "offset " + std::to_string(offset) + " is not 8-byte aligned");
    }
    if (offset + length > size) {
      return Corruption(where + "range [" + std::to_string(offset) + ", " +
                        std::to_string(offset + length) + ") is outside the file (" +
                        std::to_string(size) + " bytes)");
    }
    if (offset < kMinBundleSize) {
      return Corruption(where + "offset " + std::to_string(offset) +
                        " overlaps the header or directory");
    }
    if (offset < end) {
      return Corruption(where + "offset " + std::to_string(offset) +
                        " overlaps the previous section, which ends at " + std::to_string(end));
    }
    if (offset != expected) {
      return Corruption(where + "offset " + std::to_string(offset) + ", expected " +
                        std::to_string(expected) + " (sections are packed in order)");
    }
    for (uint64_t j = end; j < offset; ++j) {
      if (p[j] != 0) return Corruption(where + "padding before the section is not zero");
    }
    payload[i] = bytes.substr(offset, length);
    end = offset + length;
    expected = AlignUp(end);
  }
  if (end != size) {
    return Corruption(std::to_string(size - end) + " trailing bytes after the last section");
  }

  BundleData d;
  uint32_t route_count = 0;
  auto reader = [&](SectionId id) {
    auto n = static_cast<uint32_t>(id);
    return Reader(payload[n - 1], n);
  };
  {
    Reader r = reader(SectionId::kStrings);
    VAKT_BC_RETURN_IF_ERROR(ReadStrings(r, &d));
  }
  {
    Reader r = reader(SectionId::kInts);
    VAKT_BC_RETURN_IF_ERROR(ReadInts(r, &d));
  }
  {
    Reader r = reader(SectionId::kMeta);
    VAKT_BC_RETURN_IF_ERROR(ReadMeta(r, &d, &route_count));
  }
  {
    Reader r = reader(SectionId::kRegexes);
    VAKT_BC_RETURN_IF_ERROR(ReadRegexes(r, &d));
  }
  {
    Reader r = reader(SectionId::kClaimPaths);
    VAKT_BC_RETURN_IF_ERROR(ReadClaimPaths(r, &d));
  }
  {
    Reader r = reader(SectionId::kRules);
    VAKT_BC_RETURN_IF_ERROR(ReadRules(r, &d));
  }
  {
    Reader r = reader(SectionId::kRoutes);
    VAKT_BC_RETURN_IF_ERROR(ReadRoutes(r, &d));
  }
  if (route_count != d.routes.size()) {
    return Corruption("section `meta`: route count " + std::to_string(route_count) +
                      ", but section `routes` has " + std::to_string(d.routes.size()));
  }
  {
    Reader r = reader(SectionId::kParams);
    VAKT_BC_RETURN_IF_ERROR(ReadParams(r, &d));
  }
  {
    Reader r = reader(SectionId::kTrie);
    VAKT_BC_RETURN_IF_ERROR(ReadTrie(r, &d));
  }
  {
    Reader r = reader(SectionId::kCode);
    VAKT_BC_RETURN_IF_ERROR(ReadCode(r, &d));
  }
  {
    Reader r = reader(SectionId::kIssuers);
    VAKT_BC_RETURN_IF_ERROR(ReadIssuers(r, &d));
  }
  {
    Reader r = reader(SectionId::kAuth);
    VAKT_BC_RETURN_IF_ERROR(ReadAuth(r, &d));
  }
  {
    Reader r = reader(SectionId::kRelations);
    VAKT_BC_RETURN_IF_ERROR(ReadRelations(r, &d));
  }
  {
    Reader r = reader(SectionId::kSchemas);
    VAKT_BC_RETURN_IF_ERROR(ReadSchemas(r, &d));
  }
  {
    Reader r = reader(SectionId::kBodies);
    VAKT_BC_RETURN_IF_ERROR(ReadBodies(r, &d));
  }
  return d;
}

// ---- Bundle -----------------------------------------------------------------

Bundle::~Bundle() = default;

void Bundle::FreeDeleter::operator()(void* p) const { std::free(p); }

size_t Bundle::EdgeKeyHash::operator()(const EdgeKey& k) const {
  return std::hash<std::string_view>{}(k.segment) ^ (k.node * size_t{0x9e3779b97f4a7c15});
}

namespace {

// Recognises `^?[class](+|*|{m}|{m,}|{m,n})$?` over printable ASCII without
// escapes or negation; anything else keeps using RE2. Both engines agree on
// what they accept (tested in bundle_test), the table is just faster.
Bundle::SimpleShapeView ParseSimpleShape(const std::string& p) {
  Bundle::SimpleShapeView out;
  size_t i = 0;
  if (i < p.size() && p[i] == '^') ++i;
  if (i >= p.size() || p[i] != '[') return out;
  ++i;
  if (i < p.size() && p[i] == '^') return out;
  bool allowed[256] = {};
  size_t items = 0;
  while (i < p.size() && p[i] != ']') {
    unsigned char c = static_cast<unsigned char>(p[i]);
    if (c < 0x20 || c > 0x7e || c == '\\' || c == '[') return out;
    if (i + 2 < p.size() && p[i + 1] == '-' && p[i + 2] != ']') {
      unsigned char hi = static_cast<unsigned char>(p[i + 2]);
      if (hi < c || hi > 0x7e || hi == '\\' || hi == '[') return out;
      for (unsigned v = c; v <= hi; ++v) allowed[v] = true;
      i += 3;
    } else {
      allowed[c] = true;
      ++i;
    }
    ++items;
  }
  if (i >= p.size() || items == 0) return out;
  ++i;  // ']'
  size_t min = 1, max = 1;
  if (i < p.size() && p[i] == '+') {
    min = 1;
    max = SIZE_MAX;
    ++i;
  } else if (i < p.size() && p[i] == '*') {
    min = 0;
    max = SIZE_MAX;
    ++i;
  } else if (i < p.size() && p[i] == '{') {
    ++i;
    auto number = [&](size_t* v) {
      size_t start = i;
      *v = 0;
      while (i < p.size() && p[i] >= '0' && p[i] <= '9' && i - start < 6) {
        *v = *v * 10 + static_cast<size_t>(p[i] - '0');
        ++i;
      }
      // RE2 reads a count with a leading zero ({01,2}) as literal text:
      // leave such patterns to RE2 so both engines agree.
      if (i - start > 1 && p[start] == '0') return false;
      return i > start;
    };
    if (!number(&min)) return out;
    max = min;
    if (i < p.size() && p[i] == ',') {
      ++i;
      if (i < p.size() && p[i] == '}') {
        max = SIZE_MAX;
      } else if (!number(&max) || max < min) {
        return out;
      }
    }
    if (i >= p.size() || p[i] != '}') return out;
    ++i;
    if (min > 1000 || (max != SIZE_MAX && max > 1000)) return out;  // RE2's repeat limit
  }
  if (i < p.size() && p[i] == '$') ++i;
  if (i != p.size()) return out;
  out.valid = true;
  for (int v = 0; v < 256; ++v) out.allowed[v] = allowed[v];
  out.min = min;
  out.max = max;
  return out;
}

}  // namespace

bool Bundle::FullMatch(uint32_t i, std::string_view s) const {
  const SimpleShapeView& sh = simple_[i];
  if (sh.valid) {
    if (s.size() < sh.min || s.size() > sh.max) return false;
    for (unsigned char c : s) {
      if (!sh.allowed[c]) return false;
    }
    return true;
  }
  return RE2::FullMatch(re2::StringPiece(s.data(), s.size()), *regexes_[i]);
}

Result<std::shared_ptr<const Bundle>> Bundle::Load(std::string_view bytes) {
  Result<BundleData> parsed = Parse(bytes);
  if (!parsed.ok()) return parsed.status();
  VAKT_BC_RETURN_IF_ERROR(Verify(*parsed));

  std::shared_ptr<Bundle> b(new Bundle());
  b->data_ = std::move(parsed).value();
  const BundleData& d = b->data_;

  RE2::Options options;
  options.set_log_errors(false);
  options.set_max_mem(kRegexMaxMem);
  b->regexes_.reserve(d.regexes.size());
  b->simple_.reserve(d.regexes.size());
  for (size_t i = 0; i < d.regexes.size(); ++i) {
    const std::string& pattern = d.strings[d.regexes[i]];
    auto re = std::make_unique<RE2>(re2::StringPiece(pattern.data(), pattern.size()), options);
    if (!re->ok()) {
      std::string shown = pattern.size() > 200 ? pattern.substr(0, 200) + "..." : pattern;
      return Corruption("regex " + std::to_string(i) + " (`" + shown +
                        "`) does not compile: " + re->error());
    }
    b->regexes_.push_back(std::move(re));
    b->simple_.push_back(ParseSimpleShape(pattern));
  }

  b->claim_offsets_.reserve(d.claim_paths.size() + 1);
  b->claim_offsets_.push_back(0);
  for (const auto& path : d.claim_paths) {
    for (uint32_t part : path) b->claim_parts_.push_back(d.strings[part]);
    b->claim_offsets_.push_back(b->claim_parts_.size());
  }

  // The verifier proved each edge belongs to exactly one node, so this
  // index holds every literal edge once. Keys view strings in data_, which
  // is never modified again.
  b->edge_index_.reserve(d.edges.size());
  for (uint32_t n = 0; n < d.nodes.size(); ++n) {
    const TrieNode& node = d.nodes[n];
    for (uint32_t e = node.first_edge; e < node.first_edge + node.edge_count; ++e) {
      const TrieEdge& edge = d.edges[e];
      b->edge_index_.emplace(EdgeKey{n, d.strings[edge.segment]}, edge.child);
    }
  }

  // The schema set: every table index checked once, regexes compiled once.
  if (!d.schemas.empty()) {
    auto set = SchemaSet::Load(d.schemas);
    if (!set.ok()) return Corruption("section `schemas`: " + set.status().message());
    for (size_t i = 0; i < d.bodies.size(); ++i) {
      if (d.bodies[i].root >= (*set)->root_count()) {
        return Corruption("body check " + std::to_string(i) + ": schema root " +
                          std::to_string(d.bodies[i].root) + " out of range");
      }
    }
    b->schemas_ = std::move(set).value();
  }

  // Issuers: the embedded JWKS is parsed here, once; a key the runtime
  // cannot use fails the load (the compiler checked it, so this is damage).
  for (size_t i = 0; i < d.issuers.size(); ++i) {
    const IssuerRecord& rec = d.issuers[i];
    auto keys = MakeIssuerKeys(d.strings[rec.name], d.strings[rec.issuer], d.strings[rec.audience],
                               d.strings[rec.jwks], rec.algs, rec.leeway,
                               (rec.flags & kIssuerNotFapi) == 0);
    if (!keys.ok()) {
      return Corruption("issuer " + std::to_string(i) + ": " + keys.status().message());
    }
    b->issuers_.push_back(std::move(keys).value());
  }
  b->auth_.reserve(d.auth.size());
  for (const AuthRecord& rec : d.auth) {
    AuthPolicy p;
    p.issuer = b->issuers_[rec.issuer].get();
    p.sender = static_cast<SenderConstraint>(rec.sender);
    p.tls = static_cast<TlsRequirement>(rec.tls);
    p.dpop_nonce = (rec.flags & kAuthDpopNonce) != 0;
    p.dpop_window = rec.dpop_window;
    p.scope = d.strings[rec.scope];
    b->auth_.push_back(p);
  }

  // Relations: one hash table each, keyed with a random seed so that no
  // key set can be chosen to collide; a table whose longest probe would
  // exceed kMaxRelationProbe is rebuilt with another seed (a few tries).
  // A first walk sizes the copy of the entries that do not fit a slot.
  static_assert(sizeof(RelationSlot) == kSlotBytes && alignof(RelationSlot) == kSlotBytes);
  b->relation_index_.resize(d.relations.size());
  for (size_t i = 0; i < d.relations.size(); ++i) {
    const RelationData& rel = d.relations[i];
    RelationIndex& idx = b->relation_index_[i];
    auto failed = [i](const Status& st) {
      return Corruption("relation " + std::to_string(i) + ": " + st.message());
    };
    size_t outside = 0;  // bytes of the entries that are not inline
    Status st = WalkRelation(rel, [&](std::string_view key, uint32_t, const char* values) {
      const size_t vbytes = ValueEncodingBytes(values - 4);
      if (key.size() + vbytes > kRelationInlineBytes) outside += 4 + key.size() + vbytes;
    });
    if (!st.ok()) return failed(st);
    const size_t slots = std::max<size_t>(4, 2 * size_t{rel.count});
    idx.slot_count = slots;
    idx.slots.reset(static_cast<RelationSlot*>(HugeAlloc(slots * sizeof(RelationSlot))));
    if (!idx.slots) return ResourceExhausted("relation table allocation failed");
    if (outside > 0) {
      idx.entries.reset(static_cast<char*>(HugeAlloc(outside)));
      if (!idx.entries) return ResourceExhausted("relation table allocation failed");
    }
    bool built = false;
    for (int attempt = 0; attempt < 8 && !built; ++attempt) {
      std::memset(static_cast<void*>(idx.slots.get()), 0, slots * sizeof(RelationSlot));
      idx.seed = RandomSeed();
      idx.max_probe = 0;
      built = true;
      size_t copied = 0;  // entries written to idx.entries so far
      st = WalkRelation(rel, [&](std::string_view key, uint32_t, const char* values) {
        if (!built) return;
        const uint64_t h = RelationHash(idx.seed, key);
        size_t at = HomeSlot(h, slots);
        uint32_t probe = 0;
        while (idx.slots[at].b[0] != kSlotEmpty) {
          at = at + 1 == slots ? 0 : at + 1;
          if (++probe > kMaxRelationProbe) {
            built = false;
            return;
          }
        }
        idx.max_probe = std::max(idx.max_probe, probe);
        unsigned char* slot = idx.slots[at].b;
        slot[1] = static_cast<unsigned char>(h >> 32);
        const size_t vbytes = ValueEncodingBytes(values - 4);
        if (key.size() + vbytes <= kRelationInlineBytes) {
          slot[0] = static_cast<unsigned char>(key.size() + 1);
          std::memcpy(slot + kSlotHeader, key.data(), key.size());
          std::memcpy(slot + kSlotHeader + key.size(), values - 4, vbytes);
          return;
        }
        // The whole entry, from its key length on; offsets fit a u32 since
        // the entries of one relation do (format.h).
        const size_t bytes = 4 + key.size() + vbytes;
        std::memcpy(idx.entries.get() + copied, key.data() - 4, bytes);
        const auto tag = static_cast<uint32_t>(h >> 32);
        const auto offset = static_cast<uint32_t>(copied);
        slot[0] = kSlotOffset;
        std::memcpy(slot + 4, &tag, 4);
        std::memcpy(slot + 8, &offset, 4);
        copied += bytes;
      });
      if (!st.ok()) return failed(st);
    }
    if (!built) {
      return Corruption("relation " + std::to_string(i) + ": a key needs more than " +
                        std::to_string(kMaxRelationProbe) + " hash probes");
    }
  }

  std::array<uint8_t, 32> digest = Sha256(bytes);
  b->digest_hex_ = HexLower(digest.data(), digest.size());
  b->size_bytes_ = bytes.size();
  return std::shared_ptr<const Bundle>(std::move(b));
}

const AuthPolicy& Bundle::auth(uint32_t i) const { return auth_[i]; }
const IssuerKeys& Bundle::issuer(uint32_t i) const { return *issuers_[i]; }

const char* Bundle::FindRelation(uint32_t r, std::string_view key) const {
  const RelationIndex& idx = relation_index_[r];
  const uint64_t h = RelationHash(idx.seed, key);
  const auto tag8 = static_cast<unsigned char>(h >> 32);
  const auto tag = static_cast<uint32_t>(h >> 32);
  const size_t n = idx.slot_count;
  size_t at = HomeSlot(h, n);
  for (uint32_t probe = 0; probe <= idx.max_probe; ++probe) {
    const unsigned char* slot = idx.slots[at].b;
    const unsigned char state = slot[0];
    if (state == kSlotEmpty) return nullptr;
    if (slot[1] == tag8) {
      if (state == kSlotOffset) {
        uint32_t slot_tag, offset;
        std::memcpy(&slot_tag, slot + 4, 4);
        std::memcpy(&offset, slot + 8, 4);
        if (slot_tag == tag) {
          // The offset was taken from the verified walk: the entry is in range.
          const char* p = idx.entries.get() + offset;
          const uint32_t klen = RelationU32(p);
          if (klen == key.size() && (klen == 0 || std::memcmp(p + 4, key.data(), klen) == 0)) {
            return p + 4 + klen;
          }
        }
      } else if (size_t{state} == key.size() + 1) {
        const char* k = reinterpret_cast<const char*>(slot) + kSlotHeader;
        if (key.empty() || std::memcmp(k, key.data(), key.size()) == 0) return k + key.size();
      }
    }
    at = at + 1 == n ? 0 : at + 1;
  }
  return nullptr;
}

void AppendRelationEntry(std::string* out, std::string_view key,
                         std::span<const std::string> values) {
  PutU32(out, static_cast<uint32_t>(key.size()));
  out->append(key);
  PutU32(out, static_cast<uint32_t>(values.size()));
  for (const std::string& v : values) {
    PutU32(out, static_cast<uint32_t>(v.size()));
    out->append(v);
  }
}

uint32_t Bundle::FindEdge(uint32_t node, std::string_view segment) const {
  auto it = edge_index_.find(EdgeKey{node, segment});
  return it == edge_index_.end() ? kNone : it->second;
}

}  // namespace vakt::bytecode

#undef VAKT_BC_RETURN_IF_ERROR
