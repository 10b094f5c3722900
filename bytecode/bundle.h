// Bundles in memory. BundleData is the plain form the compiler fills and
// Serialize() writes (deterministically: the same data gives the same bytes).
// Bundle is a loaded, verified, immutable bundle that many threads share:
// Load() parses untrusted bytes, checks every bound, runs the verifier,
// compiles the regex table once and builds the route index.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "bytecode/format.h"
#include "bytecode/sha256.h"
#include "bytecode/status.h"

namespace re2 {
class RE2;
}

namespace vakt::bytecode {

class SchemaSet;  // bytecode/schema.h

struct IssuerKeys;   // fapi_auth.h
struct AuthPolicy;   // fapi_auth.h

// One relation table (format.h kRelations): its record and the encoded
// entries, as written (sorted by key, see AppendRelationEntry).
struct RelationData {
  uint32_t name = 0;   // string index
  uint32_t kind = 0;   // RelationKind
  uint32_t count = 0;  // entries
  std::string entries;
};

struct BundleData {
  // Stored as string-table entries: Serialize() appends them to the written
  // table if `strings` does not already hold them (intern them first for
  // Parse(Serialize(d)) to give back exactly `d`).
  std::string name;
  std::string compiler_version;
  std::array<uint8_t, 32> source_digest{};
  uint32_t max_route_cost = 0;

  std::vector<std::string> strings;  // strings[0] must be ""
  std::vector<int64_t> ints;
  std::vector<uint32_t> regexes;                   // pattern string indices
  std::vector<std::vector<uint32_t>> claim_paths;  // string indices per part
  std::vector<RuleRecord> rules;
  std::vector<RouteRecord> routes;
  std::vector<ParamRecord> params;
  std::vector<TrieNode> nodes;  // nodes[0] is the root
  std::vector<TrieEdge> edges;
  std::vector<TrieMethod> methods;
  std::vector<Instr> code;
  std::vector<IssuerRecord> issuers;
  std::vector<AuthRecord> auth;
  std::vector<RelationData> relations;
  std::string schemas;             // kSchemas: the SchemaSet blob ("" = none)
  std::vector<BodyRecord> bodies;  // kBodies
};

// Appends one relation entry in the encoding of format.h to *out.
// REQUIRES: keys are appended in strictly ascending byte order.
void AppendRelationEntry(std::string* out, std::string_view key,
                         std::span<const std::string> values);

// Reads a little-endian u32 at p (relation entries are not aligned).
inline uint32_t RelationU32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint32_t>(u[0]) | (static_cast<uint32_t>(u[1]) << 8) |
         (static_cast<uint32_t>(u[2]) << 16) | (static_cast<uint32_t>(u[3]) << 24);
}

// Walks the entries of `rel`, checking their structure: exactly rel.count
// entries filling rel.entries, keys strictly ascending (so none repeats),
// keys and values at most kMaxRelationKeyBytes, at most kMaxRelationValues
// values per entry and exactly one in a string relation. Calls
// f(key, value_count, values) for each entry, `values` pointing at its first
// {u32 length, bytes}. Errors are kCorruption. O(rel.entries.size()).
template <typename F>
Status WalkRelation(const RelationData& rel, F&& f) {
  const std::string& b = rel.entries;
  const size_t n = b.size();
  size_t pos = 0;
  std::string_view prev;
  for (uint32_t i = 0; i < rel.count; ++i) {
    auto at = [i] { return "entry " + std::to_string(i) + ": "; };  // only on errors
    if (n - pos < 4) return Corruption(at() + "truncated key length");
    uint32_t klen = RelationU32(b.data() + pos);
    pos += 4;
    if (klen > kMaxRelationKeyBytes) return Corruption(at() + "key over the length limit");
    if (n - pos < klen) return Corruption(at() + "truncated key");
    std::string_view key(b.data() + pos, klen);
    pos += klen;
    if (i > 0 && !(prev < key)) return Corruption(at() + "keys are not strictly ascending");
    prev = key;
    if (n - pos < 4) return Corruption(at() + "truncated value count");
    uint32_t count = RelationU32(b.data() + pos);
    pos += 4;
    if (rel.kind == static_cast<uint32_t>(RelationKind::kString) ? count != 1
                                                                 : count > kMaxRelationValues) {
      return Corruption(at() + "bad value count " + std::to_string(count));
    }
    const char* values = b.data() + pos;
    for (uint32_t v = 0; v < count; ++v) {
      if (n - pos < 4) return Corruption(at() + "truncated value length");
      uint32_t vlen = RelationU32(b.data() + pos);
      pos += 4;
      if (vlen > kMaxRelationKeyBytes) return Corruption(at() + "value over the length limit");
      if (n - pos < vlen) return Corruption(at() + "truncated value");
      pos += vlen;
    }
    f(key, count, values);
  }
  if (pos != n) return Corruption(std::to_string(n - pos) + " trailing bytes after the entries");
  return Status::Ok();
}

// Writes `data` in the format of format.h, SHA-256 included.
// REQUIRES: data is well formed (the compiler's output is).
std::string Serialize(const BundleData& data);

// Parses the container (header, directory, sections, hash) without running
// the verifier. Exposed for tests and `vakt disasm --no-verify`.
Result<BundleData> Parse(std::string_view bytes);

// A loaded and verified bundle. Immutable after Load; thread-safe to share.
class Bundle {
 public:
  // Parses, verifies and prepares `bytes`. Errors are kCorruption (bad
  // bytes), kUnsupported (newer format) or kResourceExhausted (too large).
  static Result<std::shared_ptr<const Bundle>> Load(std::string_view bytes);

  ~Bundle();
  Bundle(const Bundle&) = delete;

  // A character-class shape: every byte in `allowed`, length in [min, max].
  struct SimpleShapeView {
    bool valid = false;
    bool allowed[256] = {};
    size_t min = 0;
    size_t max = 0;
  };
  Bundle& operator=(const Bundle&) = delete;

  const BundleData& data() const { return data_; }
  std::string_view str(uint32_t i) const { return data_.strings[i]; }
  const re2::RE2& regex(uint32_t i) const { return *regexes_[i]; }
  // True if all of `s` matches regex i (a parameter shape). Shapes of the
  // common form `^[class]{m,n}$` run on a byte table instead of RE2.
  // REQUIRES: i < data().regexes.size()
  bool FullMatch(uint32_t i, std::string_view s) const;
  // SHA-256 of the whole bundle file, lowercase hex.
  const std::string& digest() const { return digest_hex_; }
  size_t size_bytes() const { return size_bytes_; }

  // The parts of claim path i as views into the string table (built once
  // at load, so a lookup needs no per-decision copy).
  // REQUIRES: i < data().claim_paths.size()
  std::span<const std::string_view> ClaimPath(uint32_t i) const {
    return {claim_parts_.data() + claim_offsets_[i], claim_offsets_[i + 1] - claim_offsets_[i]};
  }

  // Child of trie node `node` by literal segment, or kNone. O(segment).
  uint32_t FindEdge(uint32_t node, std::string_view segment) const;

  // The runtime form of auth record i (fapi_auth.h): its issuer's parsed
  // keys and settings, built once at load.
  // REQUIRES: i < data().auth.size()
  const AuthPolicy& auth(uint32_t i) const;

  // Looks `key` up in relation r: a pointer to the entry's u32 value count
  // (followed by the values, see WalkRelation), or nullptr if absent. O(1):
  // one hash and at most kMaxRelationProbe probes of the table built at
  // load (keyed with a per-load random seed). The pointer is into the
  // bundle's index (not data().relations) and lives as long as the bundle.
  // REQUIRES: r < data().relations.size()
  const char* FindRelation(uint32_t r, std::string_view key) const;
  // An entry whose key length plus value encoding (u32 count, then u32
  // length and bytes per value) is at most this many bytes is held inside
  // its hash slot, so a hit reads one cache line; a longer one is copied
  // beside the table and found through the slot's offset.
  static constexpr size_t kRelationInlineBytes = 30;
  const IssuerKeys& issuer(uint32_t i) const;

  // The JSON Schema set (kSchemas), loaded and verified once; null when the
  // bundle has none (then it has no body checks).
  const SchemaSet* schemas() const { return schemas_.get(); }

 private:
  Bundle() = default;
  BundleData data_;
  std::vector<std::unique_ptr<re2::RE2>> regexes_;
  // A character-class shape: every byte in `allowed`, length in [min, max].
  std::vector<SimpleShapeView> simple_;
  std::vector<std::string_view> claim_parts_;
  std::vector<size_t> claim_offsets_;  // claim path i is [offsets[i], offsets[i+1])
  // Literal edges keyed by (parent node, segment); built once at load.
  struct EdgeKey {
    uint32_t node;
    std::string_view segment;
    bool operator==(const EdgeKey& o) const { return node == o.node && segment == o.segment; }
  };
  struct EdgeKeyHash {
    size_t operator()(const EdgeKey& k) const;
  };
  std::unordered_map<EdgeKey, uint32_t, EdgeKeyHash> edge_index_;
  std::vector<std::shared_ptr<const IssuerKeys>> issuers_;
  std::vector<AuthPolicy> auth_;  // parallel to data_.auth
  // Relation hash tables, parallel to data_.relations: open addressing with
  // linear probing over exactly twice as many 32-byte slots as entries (at
  // least 4; the home slot is a multiply-shift of the hash, so the size
  // need not be a power of two and the load factor stays 0.5). A slot holds
  // a short entry's key and value encoding itself (one cache line per hit)
  // or a hash tag and the offset of a longer entry in `entries`, a packed
  // copy of just those entries. Layout in bundle.cc (RelationSlot).
  // Slots and entries live in 2 MiB-aligned memory marked for transparent
  // huge pages: a random probe into a table of millions of entries then
  // costs a cache miss, not also a TLB miss.
  struct FreeDeleter {
    void operator()(void* p) const;
  };
  struct alignas(32) RelationSlot {
    unsigned char b[32];
  };
  struct RelationIndex {
    std::unique_ptr<RelationSlot[], FreeDeleter> slots;
    size_t slot_count = 0;
    std::unique_ptr<char[], FreeDeleter> entries;  // null if every entry is inline
    uint64_t seed = 0;
    uint32_t max_probe = 0;  // longest probe sequence any key needs
  };
  std::vector<RelationIndex> relation_index_;
  std::shared_ptr<const SchemaSet> schemas_;
  std::string digest_hex_;
  size_t size_bytes_ = 0;
};

// Human-readable listing of a bundle: header, tables, routes, code.
// Deterministic; used by `vakt disasm` and the golden tests.
std::string Disassemble(const BundleData& data);

// Sha256() and HexLower() live in sha256.h (included above) so that code
// needing only a digest does not depend on the bundle container.

}  // namespace vakt::bytecode
