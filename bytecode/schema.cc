// JSON Schema sets: serialization, the hostile-input loader and the
// validator. See schema.h for the contract and format.h for the layout.
//
// Validation is a recursive walk over (schema node, instance) pairs. Each
// application of a subschema counts against ValidationLimits::max_evaluations
// and the walk's nesting is bounded by kMaxEvalNesting, so a $ref cycle or a
// combinatorial schema fails closed with kOverLimit instead of running away.
// Annotations for unevaluatedProperties/Items are bitsets over the members or
// items of the instance, taken from a stack in the scratch (no allocation in
// steady state); applicators whose failure does not fail the node (anyOf,
// oneOf, if, not) evaluate into a temporary bitset that is merged only on
// success. Errors are recorded once, at the innermost failing keyword outside
// any such "quiet" applicator. Tested by tests/schema_test.cc and
// tests/schema_suite_test.cc.
#include "bytecode/schema.h"

#include <re2/re2.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

namespace vakt::bytecode {

namespace dom = simdjson::dom;

namespace {

constexpr uint32_t kMaxEvalNesting = 512;

template <typename T>
void Put(std::string& out, const T& v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

}  // namespace

std::string SerializeSchema(const SchemaTables& t) {
  static_assert(std::endian::native == std::endian::little, "the tables are little-endian");
  SchemaBlobHeader h{};
  std::memcpy(h.magic, kSchemaMagic, 4);
  h.version = kSchemaVersion;
  h.node_count = static_cast<uint32_t>(t.nodes.size());
  h.keyword_count = static_cast<uint32_t>(t.keywords.size());
  h.list_count = static_cast<uint32_t>(t.lists.size());
  h.string_count = static_cast<uint32_t>(t.strings.size());
  h.root_count = static_cast<uint32_t>(t.roots.size());
  h.regex_count = static_cast<uint32_t>(t.regexes.size());
  h.number_count = static_cast<uint32_t>(t.numbers.size());
  h.const_string = t.const_string;
  std::string pool;
  std::vector<SchemaString> refs;
  for (const auto& s : t.strings) {
    refs.push_back({static_cast<uint32_t>(pool.size()), static_cast<uint32_t>(s.size())});
    pool += s;
  }
  h.pool_bytes = static_cast<uint32_t>(pool.size());
  std::string out;
  Put(out, h);
  for (const auto& n : t.nodes) Put(out, n);
  for (const auto& k : t.keywords) Put(out, k);
  for (uint32_t v : t.lists) Put(out, v);
  for (const auto& r : refs) Put(out, r);
  for (const auto& r : t.roots) Put(out, r);
  for (uint32_t v : t.regexes) Put(out, v);
  for (uint32_t v : t.numbers) Put(out, v);
  out += pool;
  return out;
}

// Load-time view of everything the validator needs.
struct SchemaSet::Impl {
  std::vector<SchemaKeyword> keywords;
  std::vector<uint32_t> lists;
  std::vector<SchemaString> strings;
  std::string pool;
  std::vector<std::unique_ptr<re2::RE2>> regexes;
  std::vector<Decimal> numbers;
  std::vector<double> number_doubles;
  dom::parser const_parser;
  dom::document const_doc;
  std::vector<dom::element> consts;
  // Per node: index of its properties / patternProperties keyword, or none;
  // and whether it has unevaluated* keywords.
  std::vector<uint32_t> props_kw, pprops_kw, addl_kw;
  std::vector<uint8_t> has_unevaluated;  // bit 0 properties, bit 1 items
  const SchemaSet* owner = nullptr;

  std::string_view Str(uint32_t i) const {
    return std::string_view(pool).substr(strings[i].offset, strings[i].length);
  }
};

SchemaSet::SchemaSet() : impl_(std::make_unique<Impl>()) {}
SchemaSet::~SchemaSet() = default;

std::string_view SchemaSet::Str(uint32_t i) const { return impl_->Str(i); }

std::optional<uint32_t> SchemaSet::FindRoot(std::string_view name) const {
  for (uint32_t i = 0; i < roots_.size(); ++i) {
    if (Str(roots_[i].name) == name) return i;
  }
  return std::nullopt;
}

namespace {

class Reader {
 public:
  explicit Reader(std::string_view b) : b_(b) {}
  template <typename T>
  bool Read(std::vector<T>& out, uint32_t count) {
    uint64_t need = static_cast<uint64_t>(count) * sizeof(T);
    if (need > b_.size() - pos_) return false;
    out.resize(count);
    if (count) std::memcpy(out.data(), b_.data() + pos_, need);
    pos_ += need;
    return true;
  }
  bool ReadBytes(std::string& out, uint32_t n) {
    if (n > b_.size() - pos_) return false;
    out.assign(b_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  bool AtEnd() const { return pos_ == b_.size(); }

 private:
  std::string_view b_;
  size_t pos_ = 0;
};

Status Bad(const std::string& m) { return Corruption("schema tables: " + m); }

bool ListOk(const std::vector<uint32_t>& lists, uint32_t off, uint64_t words) {
  return off <= lists.size() && words <= lists.size() - off;
}

}  // namespace

Result<std::shared_ptr<const SchemaSet>> SchemaSet::Load(std::string_view bytes) {
  if (bytes.size() > kMaxSchemaBlobBytes) return Bad("blob too large");
  if (bytes.size() < sizeof(SchemaBlobHeader)) return Bad("truncated header");
  SchemaBlobHeader h;
  std::memcpy(&h, bytes.data(), sizeof(h));
  if (std::memcmp(h.magic, kSchemaMagic, 4) != 0) return Bad("bad magic");
  if (h.version != kSchemaVersion) return Bad("unsupported version " + std::to_string(h.version));
  if (h.flags != 0) return Bad("unknown flags");
  if (h.node_count == 0 || h.node_count > kMaxSchemaNodes) return Bad("bad node count");
  // Every count is bounded by the blob size before anything is allocated.
  uint64_t total = sizeof(SchemaBlobHeader) + uint64_t{h.node_count} * sizeof(SchemaNode) +
                   uint64_t{h.keyword_count} * sizeof(SchemaKeyword) + uint64_t{h.list_count} * 4 +
                   uint64_t{h.string_count} * sizeof(SchemaString) +
                   uint64_t{h.root_count} * sizeof(SchemaRoot) + uint64_t{h.regex_count} * 4 +
                   uint64_t{h.number_count} * 4 + h.pool_bytes;
  if (total != bytes.size()) return Bad("section sizes do not add up to the blob size");

  std::shared_ptr<SchemaSet> set(new SchemaSet());
  Impl& im = *set->impl_;
  im.owner = set.get();
  Reader r(bytes.substr(sizeof(SchemaBlobHeader)));
  std::vector<uint32_t> regex_strs, number_strs;
  if (!r.Read(set->nodes_, h.node_count) || !r.Read(im.keywords, h.keyword_count) ||
      !r.Read(im.lists, h.list_count) || !r.Read(im.strings, h.string_count) ||
      !r.Read(set->roots_, h.root_count) || !r.Read(regex_strs, h.regex_count) ||
      !r.Read(number_strs, h.number_count) || !r.ReadBytes(im.pool, h.pool_bytes) || !r.AtEnd()) {
    return Bad("truncated");
  }
  const uint32_t nn = h.node_count, ns = h.string_count;
  for (const auto& s : im.strings) {
    if (s.offset > im.pool.size() || s.length > im.pool.size() - s.offset) {
      return Bad("string out of the pool");
    }
  }
  auto str_ok = [&](uint32_t i) { return i < ns; };
  auto node_ok = [&](uint32_t i) { return i < nn; };
  for (const auto& rt : set->roots_) {
    if (!str_ok(rt.name) || !node_ok(rt.node)) return Bad("bad root");
  }
  for (size_t i = 0; i < set->roots_.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (im.Str(set->roots_[i].name) == im.Str(set->roots_[j].name)) return Bad("duplicate root");
    }
  }
  // Regexes compile once here; a pattern RE2 refuses is corruption (the
  // compiler never emits one).
  for (uint32_t s : regex_strs) {
    if (!str_ok(s)) return Bad("bad regex string");
    RE2::Options o;
    o.set_log_errors(false);
    o.set_max_mem(8 << 20);
    auto re = std::make_unique<RE2>(re2::StringPiece(im.Str(s).data(), im.Str(s).size()), o);
    if (!re->ok()) return Bad("regex does not compile");
    im.regexes.push_back(std::move(re));
  }
  for (uint32_t s : number_strs) {
    if (!str_ok(s)) return Bad("bad number string");
    Decimal d;
    if (!ParseDecimal(im.Str(s), &d)) return Bad("bad number literal");
    im.numbers.push_back(d);
    std::string tmp(im.Str(s));
    im.number_doubles.push_back(std::strtod(tmp.c_str(), nullptr));
  }
  if (h.const_string != kSchemaNone) {
    if (!str_ok(h.const_string)) return Bad("bad constants string");
    std::string_view text = im.Str(h.const_string);
    if (im.const_parser.allocate(text.size() + 1, kMaxSchemaConstDepth) != simdjson::SUCCESS) {
      return Bad("constants too large");
    }
    dom::element root;
    if (im.const_parser.parse_into_document(im.const_doc, text.data(), text.size()).get(root) !=
        simdjson::SUCCESS) {
      return Bad("constants are not JSON");
    }
    dom::array arr;
    if (root.get_array().get(arr) != simdjson::SUCCESS) return Bad("constants are not an array");
    for (dom::element e : arr) im.consts.push_back(e);
  }
  const uint32_t nconst = static_cast<uint32_t>(im.consts.size());
  const uint32_t nre = h.regex_count, nnum = h.number_count;
  im.props_kw.assign(nn, kSchemaNone);
  im.pprops_kw.assign(nn, kSchemaNone);
  im.addl_kw.assign(nn, kSchemaNone);
  im.has_unevaluated.assign(nn, 0);
  for (uint32_t ni = 0; ni < nn; ++ni) {
    const SchemaNode& n = set->nodes_[ni];
    if (n.kind > 2) return Bad("bad node kind");
    if (n.flags & ~kSchemaNodeResource) return Bad("bad node flags");
    if (n.location != kSchemaNone && !str_ok(n.location)) return Bad("bad node location");
    if (n.kind != 2 && n.keyword_count != 0) return Bad("boolean node with keywords");
    if (n.first_keyword > im.keywords.size() ||
        n.keyword_count > im.keywords.size() - n.first_keyword) {
      return Bad("node keywords out of range");
    }
    if (n.dyn_count) {
      if (!ListOk(im.lists, n.dyn_anchors, uint64_t{n.dyn_count} * 2)) return Bad("bad anchors");
      for (uint32_t i = 0; i < n.dyn_count; ++i) {
        if (!str_ok(im.lists[n.dyn_anchors + 2 * i]) ||
            !node_ok(im.lists[n.dyn_anchors + 2 * i + 1])) {
          return Bad("bad dynamic anchor");
        }
      }
    }
    int prev_kind = -1;
    for (uint32_t k = n.first_keyword; k < n.first_keyword + n.keyword_count; ++k) {
      const SchemaKeyword& kw = im.keywords[k];
      if (kw.kind >= kSchemaKwCount) return Bad("unknown keyword kind");
      if (kw.flags != 0 &&
          !((kw.kind == static_cast<uint16_t>(SchemaKw::kUnevaluatedProperties) ||
             kw.kind == static_cast<uint16_t>(SchemaKw::kAdditionalProperties)) &&
            kw.flags == 1)) {
        return Bad("unknown keyword flags");
      }
      if (static_cast<int>(kw.kind) <= prev_kind) return Bad("keywords out of order");
      prev_kind = kw.kind;
      auto list = [&](uint32_t per) {
        return ListOk(im.lists, kw.a, uint64_t{kw.b} * per);
      };
      bool ok = true;
      switch (static_cast<SchemaKw>(kw.kind)) {
        case SchemaKw::kType: ok = kw.a != 0 && kw.a < 128; break;
        case SchemaKw::kConst: ok = kw.a < nconst; break;
        case SchemaKw::kEnum: ok = kw.a <= nconst && kw.b <= nconst - kw.a; break;
        case SchemaKw::kMinimum:
        case SchemaKw::kMaximum:
        case SchemaKw::kExclusiveMinimum:
        case SchemaKw::kExclusiveMaximum: ok = kw.a < nnum; break;
        case SchemaKw::kMultipleOf:
          ok = kw.a < nnum && !im.numbers[kw.a].IsZero() && !im.numbers[kw.a].neg &&
               im.numbers[kw.a].n <= kMaxMultipleOfDigits &&
               im.numbers[kw.a].exp >= -kMaxMultipleOfExponent &&
               im.numbers[kw.a].exp <= kMaxMultipleOfExponent;
          break;
        case SchemaKw::kPattern: ok = kw.a < nre; break;
        case SchemaKw::kFormat: ok = kw.a >= 1 && kw.a <= kSchemaFormatMax; break;
        case SchemaKw::kMinLength:
        case SchemaKw::kMaxLength:
        case SchemaKw::kMinItems:
        case SchemaKw::kMaxItems:
        case SchemaKw::kUniqueItems:
        case SchemaKw::kMinProperties:
        case SchemaKw::kMaxProperties: break;
        case SchemaKw::kRequired:
          ok = list(1);
          for (uint32_t i = 0; ok && i < kw.b; ++i) ok = str_ok(im.lists[kw.a + i]);
          break;
        case SchemaKw::kDependentRequired:
          ok = list(3);
          for (uint32_t i = 0; ok && i < kw.b; ++i) {
            uint32_t name = im.lists[kw.a + 3 * i], off = im.lists[kw.a + 3 * i + 1],
                     cnt = im.lists[kw.a + 3 * i + 2];
            ok = str_ok(name) && ListOk(im.lists, off, cnt);
            for (uint32_t j = 0; ok && j < cnt; ++j) ok = str_ok(im.lists[off + j]);
          }
          break;
        case SchemaKw::kProperties:
        case SchemaKw::kDependentSchemas:
          ok = list(2);
          for (uint32_t i = 0; ok && i < kw.b; ++i) {
            ok = str_ok(im.lists[kw.a + 2 * i]) && node_ok(im.lists[kw.a + 2 * i + 1]);
            // properties must be sorted for the binary search.
            if (ok && i > 0 && kw.kind == static_cast<uint16_t>(SchemaKw::kProperties)) {
              ok = SchemaNameLess(im.Str(im.lists[kw.a + 2 * i - 2]), im.Str(im.lists[kw.a + 2 * i]));
            }
          }
          if (kw.kind == static_cast<uint16_t>(SchemaKw::kProperties)) im.props_kw[ni] = k;
          break;
        case SchemaKw::kPatternProperties:
          ok = list(2);
          for (uint32_t i = 0; ok && i < kw.b; ++i) {
            ok = im.lists[kw.a + 2 * i] < nre && node_ok(im.lists[kw.a + 2 * i + 1]);
          }
          im.pprops_kw[ni] = k;
          break;
        case SchemaKw::kPrefixItems:
        case SchemaKw::kAllOf:
        case SchemaKw::kAnyOf:
        case SchemaKw::kOneOf:
          ok = list(1);
          for (uint32_t i = 0; ok && i < kw.b; ++i) ok = node_ok(im.lists[kw.a + i]);
          break;
        case SchemaKw::kAdditionalProperties:
          ok = node_ok(kw.a);
          im.addl_kw[ni] = k;
          break;
        case SchemaKw::kPropertyNames:
        case SchemaKw::kItems:
        case SchemaKw::kRef:
        case SchemaKw::kNot: ok = node_ok(kw.a); break;
        case SchemaKw::kContains: ok = node_ok(kw.a); break;
        case SchemaKw::kDynamicRef: ok = node_ok(kw.a) && (kw.b == kSchemaNone || str_ok(kw.b)); break;
        case SchemaKw::kIf:
          ok = node_ok(kw.a) && (kw.b == kSchemaNone || node_ok(kw.b)) &&
               (kw.c == kSchemaNone || node_ok(kw.c));
          break;
        case SchemaKw::kUnevaluatedProperties:
          ok = node_ok(kw.a);
          im.has_unevaluated[ni] |= 1;
          break;
        case SchemaKw::kUnevaluatedItems:
          ok = node_ok(kw.a);
          im.has_unevaluated[ni] |= 2;
          break;
      }
      if (!ok) return Bad(std::string("bad operands of ") + SchemaKwName(static_cast<SchemaKw>(kw.kind)));
    }
  }
  return std::shared_ptr<const SchemaSet>(std::move(set));
}

bool SchemaNameLess(std::string_view a, std::string_view b) {
  return a.size() != b.size() ? a.size() < b.size() : a < b;
}

const char* SchemaKwName(SchemaKw k) {
  static const char* const kNames[kSchemaKwCount] = {
      "type", "const", "enum", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
      "multipleOf", "minLength", "maxLength", "pattern", "format", "minItems", "maxItems",
      "uniqueItems", "minProperties", "maxProperties", "required", "dependentRequired",
      "propertyNames", "properties", "patternProperties", "additionalProperties",
      "dependentSchemas", "prefixItems", "items", "contains", "$ref", "$dynamicRef", "allOf",
      "anyOf", "oneOf", "not", "if", "unevaluatedItems", "unevaluatedProperties"};
  auto i = static_cast<uint16_t>(k);
  return i < kSchemaKwCount ? kNames[i] : "?";
}

std::string ValidationResult::ToString() const {
  switch (outcome) {
    case ValidationOutcome::kValid: return "valid";
    case ValidationOutcome::kInvalid:
      return "invalid: " + keyword + " at " + (instance_pointer.empty() ? "root" : instance_pointer) +
             " (" + schema_location + "): " + message;
    case ValidationOutcome::kMalformed: return "invalid: malformed JSON: " + message;
    case ValidationOutcome::kOverLimit: return "invalid: over a limit: " + message;
  }
  return "?";
}

// ---------------------------------------------------------------------------
// The validator.

struct PathSeg {
  std::string_view key;
  uint32_t index;
  bool is_index;
};

struct ValidationScratch::State {
  dom::parser parser;
  size_t parser_capacity = 0;
  uint32_t parser_depth = 0;
  std::string padded;
  std::vector<PathSeg> path;
  std::vector<uint64_t> bits;  // annotation bitsets, used as a stack
  std::vector<uint32_t> scope;  // dynamic scope: resource nodes entered
  std::vector<std::string_view> keys;
  std::vector<std::pair<uint64_t, uint32_t>> hashes;
};

ValidationScratch::ValidationScratch() : state_(std::make_unique<State>()) {}
ValidationScratch::~ValidationScratch() = default;

namespace {

// Accessors that never leave a reference into a temporary result.
dom::array Arr(dom::element e) {
  dom::array a;
  if (e.get_array().get(a) != simdjson::SUCCESS) return a;
  return a;
}
dom::object Obj(dom::element e) {
  dom::object o;
  if (e.get_object().get(o) != simdjson::SUCCESS) return o;
  return o;
}
std::string_view StrOf(dom::element e) {
  std::string_view s;
  if (e.get_string().get(s) != simdjson::SUCCESS) return s;
  return s;
}
int64_t I64(dom::element e) {
  int64_t v = 0;
  if (e.get_int64().get(v) != simdjson::SUCCESS) return v;
  return v;
}
uint64_t U64(dom::element e) {
  uint64_t v = 0;
  if (e.get_uint64().get(v) != simdjson::SUCCESS) return v;
  return v;
}
double Dbl(dom::element e) {
  double v = 0;
  if (e.get_double().get(v) != simdjson::SUCCESS) return v;
  return v;
}
dom::element ArrAt(dom::array a, size_t i) {
  dom::element e;
  if (a.at(i).get(e) != simdjson::SUCCESS) return e;
  return e;
}
bool Bool(dom::element e) {
  bool v = false;
  if (e.get_bool().get(v) != simdjson::SUCCESS) return v;
  return v;
}

// An instance: a DOM element, or an object key (for propertyNames).
struct Inst {
  dom::element e;
  std::string_view key;
  bool is_key = false;
};

uint32_t TypeBitOf(const Inst& in) {
  if (in.is_key) return kSchemaTypeString;
  switch (in.e.type()) {
    case dom::element_type::ARRAY: return kSchemaTypeArray;
    case dom::element_type::OBJECT: return kSchemaTypeObject;
    case dom::element_type::INT64:
    case dom::element_type::UINT64: return kSchemaTypeNumber | kSchemaTypeInteger;
    case dom::element_type::DOUBLE: {
      double d = Dbl(in.e);
      return std::floor(d) == d ? (kSchemaTypeNumber | kSchemaTypeInteger) : kSchemaTypeNumber;
    }
    case dom::element_type::STRING: return kSchemaTypeString;
    case dom::element_type::BOOL: return kSchemaTypeBoolean;
    case dom::element_type::NULL_VALUE: return kSchemaTypeNull;
  }
  return 0;
}

bool IsNumber(dom::element e) {
  auto t = e.type();
  return t == dom::element_type::INT64 || t == dom::element_type::UINT64 ||
         t == dom::element_type::DOUBLE;
}

Decimal ToDecimal(dom::element e) {
  switch (e.type()) {
    case dom::element_type::INT64: return DecimalFromInt64(I64(e));
    case dom::element_type::UINT64: return DecimalFromUint64(U64(e));
    default: return DecimalFromDouble(Dbl(e));
  }
}

double ToDouble(dom::element e) {
  switch (e.type()) {
    case dom::element_type::INT64: return static_cast<double>(I64(e));
    case dom::element_type::UINT64: return static_cast<double>(U64(e));
    default: return Dbl(e);
  }
}

// Exact comparison of an instance number with a schema number: the doubles
// decide when they differ (rounding is monotonic), the decimals otherwise.
int CompareNumber(dom::element e, const Decimal& lim, double lim_d) {
  if (e.type() == dom::element_type::INT64 && lim.IsInteger() &&
      static_cast<int64_t>(lim.n) + lim.exp <= 18) {
    // Both fit in int64: compare directly.
    int64_t l = 0;
    for (int i = 0; i < lim.n; ++i) l = l * 10 + (lim.digits[i] - '0');
    for (int i = 0; i < lim.exp; ++i) l *= 10;
    if (lim.neg) l = -l;
    int64_t v = I64(e);
    return v < l ? -1 : (v > l ? 1 : 0);
  }
  double d = ToDouble(e);
  if (d < lim_d) return -1;
  if (d > lim_d) return 1;
  return CompareDecimal(ToDecimal(e), lim);
}

bool NumbersEqual(dom::element a, dom::element b) {
  auto ta = a.type(), tb = b.type();
  if (ta == tb) {
    if (ta == dom::element_type::INT64) return I64(a) == I64(b);
    if (ta == dom::element_type::UINT64) return U64(a) == U64(b);
    return Dbl(a) == Dbl(b);
  }
  if (ToDouble(a) != ToDouble(b)) return false;
  return CompareDecimal(ToDecimal(a), ToDecimal(b)) == 0;
}

uint64_t Mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  return h;
}

uint64_t HashStr(std::string_view s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return h;
}

uint64_t HashNumber(dom::element e) {
  double d = ToDouble(e);
  if (e.type() == dom::element_type::INT64) return Mix(3, static_cast<uint64_t>(I64(e)));
  if (std::floor(d) == d && std::fabs(d) < 9.2e18) {
    if (e.type() == dom::element_type::UINT64) return Mix(3, U64(e));
    return Mix(3, static_cast<uint64_t>(static_cast<int64_t>(d)));
  }
  uint64_t bits;
  std::memcpy(&bits, &d, 8);
  return Mix(4, bits);
}

// Depth is bounded by the instance limits checked before validation.
uint64_t HashValue(dom::element e) {
  switch (e.type()) {
    case dom::element_type::ARRAY: {
      uint64_t h = 5;
      for (dom::element x : Arr(e)) h = Mix(h, HashValue(x));
      return h;
    }
    case dom::element_type::OBJECT: {
      uint64_t h = 6;  // order-independent
      for (auto kv : Obj(e)) h += Mix(HashStr(kv.key), HashValue(kv.value));
      return h;
    }
    case dom::element_type::STRING: return Mix(7, HashStr(StrOf(e)));
    case dom::element_type::BOOL: return Bool(e) ? 8 : 9;
    case dom::element_type::NULL_VALUE: return 10;
    default: return HashNumber(e);
  }
}

class Validator {
 public:
  Validator(const SchemaSet& set, const ValidationLimits& limits, ValidationScratch::State& st,
            ValidationResult& res)
      : set_(set), im_(set.impl()), lim_(limits), st_(st), res_(res) {
    // The path never grows past the instance depth (checked before
    // validation) plus one for propertyNames: sized once, no reallocation.
    if (st_.path.size() < size_t{limits.max_depth} + 2) st_.path.resize(size_t{limits.max_depth} + 2);
    path_len_ = 0;
    st_.bits.clear();
    st_.scope.clear();
  }

  bool Run(uint32_t node, dom::element e) {
    Inst in{e, {}, false};
    return Eval(node, in, -1);
  }

  bool aborted() const { return aborted_; }

 private:
  const SchemaNode& Node(uint32_t i) const { return set_.node(i); }

 public:
  // Evaluates node against in; `ann` is the offset of the caller's annotation
  // bitset for this instance (-1: not wanted).
  bool Eval(uint32_t ni, const Inst& in, int64_t ann);

 private:
  bool EvalKeywords(uint32_t ni, const SchemaNode& n, const Inst& in, int64_t ann);
  bool Apply(SchemaKw kw, uint32_t ni, uint32_t child, const Inst& in, int64_t ann);
  void Fail(SchemaKw kw, uint32_t ni, std::string msg) { FailNamed(SchemaKwName(kw), ni, std::move(msg)); }
  void FailNamed(const char* kw, uint32_t ni, std::string msg);
  void Abort(LimitKind k, std::string msg) {
    if (!aborted_) {
      aborted_ = true;
      res_.outcome = ValidationOutcome::kOverLimit;
      res_.limit = k;
      res_.message = std::move(msg);
    }
  }
  bool Equal(const Inst& a, dom::element b);
  bool EqualEl(dom::element a, dom::element b);
  int64_t AllocBits(uint32_t count) {
    size_t words = (count + 63) / 64;
    int64_t off = static_cast<int64_t>(st_.bits.size());
    st_.bits.resize(st_.bits.size() + words, 0);
    return off;
  }
  void FreeBits(int64_t off) { st_.bits.resize(static_cast<size_t>(off)); }
  void SetBit(int64_t ann, uint32_t i) {
    if (ann >= 0) st_.bits[static_cast<size_t>(ann) + i / 64] |= uint64_t{1} << (i % 64);
  }
  bool GetBit(int64_t ann, uint32_t i) const {
    return (st_.bits[static_cast<size_t>(ann) + i / 64] >> (i % 64)) & 1;
  }
  void OrBits(int64_t dst, int64_t src, uint32_t count) {
    if (dst < 0) return;
    for (size_t w = 0; w < (count + 63) / 64; ++w) {
      st_.bits[static_cast<size_t>(dst) + w] |= st_.bits[static_cast<size_t>(src) + w];
    }
  }
  void PushSeg(PathSeg seg) {
    if (path_len_ < st_.path.size()) st_.path[path_len_] = seg;
    ++path_len_;  // beyond the array (impossible): the pointer is truncated
  }
  bool Budget() {
    if (++evals_ > lim_.max_evaluations) {
      Abort(LimitKind::kEvaluations, "schema evaluation budget of " +
                                         std::to_string(lim_.max_evaluations) + " exceeded");
      return false;
    }
    return true;
  }
  uint32_t CountOf(const Inst& in) const {
    if (in.is_key) return 0;
    if (in.e.type() == dom::element_type::OBJECT) return static_cast<uint32_t>(Obj(in.e).size());
    if (in.e.type() == dom::element_type::ARRAY) return static_cast<uint32_t>(Arr(in.e).size());
    return 0;
  }
  // Names are sorted by (length, bytes): most probes compare lengths only.
  uint32_t FindProp(const SchemaKeyword& kw, std::string_view key) const {
    uint32_t lo = 0, hi = kw.b;
    while (lo < hi) {
      uint32_t mid = (lo + hi) / 2;
      std::string_view s = im_.Str(im_.lists[kw.a + 2 * mid]);
      int c = s.size() != key.size() ? (s.size() < key.size() ? -1 : 1) : s.compare(key);
      if (c == 0) return im_.lists[kw.a + 2 * mid + 1];
      if (c < 0) lo = mid + 1; else hi = mid;
    }
    return kSchemaNone;
  }
  bool PatternMatch(uint32_t re, std::string_view s) const {
    return RE2::PartialMatch(re2::StringPiece(s.data(), s.size()), *im_.regexes[re]);
  }

  const SchemaSet& set_;
  const SchemaSet::Impl& im_;
  const ValidationLimits& lim_;
  ValidationScratch::State& st_;
  ValidationResult& res_;
  uint32_t evals_ = 0;
  uint32_t nesting_ = 0;
  uint32_t quiet_ = 0;
  bool failed_ = false;
  bool aborted_ = false;
  bool strict_visit_ = false;  // applying strict mode's implied additional/unevaluatedProperties
  uint32_t path_len_ = 0;      // used prefix of st_.path
};

}  // namespace

namespace {

std::string Quote(std::string_view s) {
  std::string out = "`";
  for (char c : s.substr(0, 64)) out += (static_cast<unsigned char>(c) < 0x20) ? '?' : c;
  if (s.size() > 64) out += "...";
  return out + "`";
}

void AppendPointerToken(std::string& out, std::string_view key) {
  out += '/';
  for (char c : key) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
}

// Code points of valid UTF-8: bytes that are not continuation bytes
// (10xxxxxx), counted eight at a time.
size_t CodePoints(std::string_view s) {
  size_t n = 0, i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    uint64_t cont = w & ~(w << 1) & 0x8080808080808080ULL;
    n += 8 - static_cast<size_t>(std::popcount(cont));
  }
  for (; i < s.size(); ++i) n += (static_cast<unsigned char>(s[i]) & 0xC0) != 0x80;
  return n;
}

void Validator::FailNamed(const char* kw, uint32_t ni, std::string msg) {
  if (quiet_ || failed_ || aborted_) return;
  failed_ = true;
  res_.outcome = ValidationOutcome::kInvalid;
  res_.keyword = kw;
  res_.instance_pointer.clear();
  for (uint32_t i = 0; i < path_len_ && i < st_.path.size(); ++i) {
    const PathSeg& seg = st_.path[i];
    if (seg.is_index) {
      res_.instance_pointer += '/';
      res_.instance_pointer += std::to_string(seg.index);
    } else {
      AppendPointerToken(res_.instance_pointer, seg.key);
    }
  }
  const SchemaNode& n = Node(ni);
  res_.schema_location = n.location == kSchemaNone ? std::string("#") : std::string(im_.Str(n.location));
  if (res_.schema_location.find('#') == std::string::npos) res_.schema_location += '#';
  res_.schema_location += '/';
  res_.schema_location += res_.keyword;
  res_.message = std::move(msg);
}

bool Validator::EqualEl(dom::element a, dom::element b) {
  if (!Budget()) return false;
  bool na = IsNumber(a), nb = IsNumber(b);
  if (na || nb) return na && nb && NumbersEqual(a, b);
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case dom::element_type::STRING: return StrOf(a) == StrOf(b);
    case dom::element_type::BOOL: return Bool(a) == Bool(b);
    case dom::element_type::NULL_VALUE: return true;
    case dom::element_type::ARRAY: {
      dom::array x = Arr(a), y = Arr(b);
      if (x.size() != y.size()) return false;
      auto it = y.begin();
      for (dom::element v : x) {
        if (!EqualEl(v, *it)) return false;
        ++it;
      }
      return true;
    }
    case dom::element_type::OBJECT: {
      dom::object x = Obj(a), y = Obj(b);
      if (x.size() != y.size()) return false;
      for (auto kv : x) {
        dom::element other;
        if (y.at_key(kv.key).get(other) != simdjson::SUCCESS) return false;
        if (!EqualEl(kv.value, other)) return false;
      }
      return true;
    }
    default: return false;
  }
}

bool Validator::Equal(const Inst& a, dom::element b) {
  if (a.is_key) return b.type() == dom::element_type::STRING && StrOf(b) == a.key;
  return EqualEl(a.e, b);
}

// Applies child to the same instance (in place) or, with a pushed path, to a
// member or item; a `false` child fails at the applying keyword.
bool Validator::Apply(SchemaKw kw, uint32_t ni, uint32_t child, const Inst& in, int64_t ann) {
  const SchemaNode& c = Node(child);
  if (c.kind == static_cast<uint8_t>(SchemaNodeKind::kTrue)) return Budget();
  if (c.kind == static_cast<uint8_t>(SchemaNodeKind::kFalse)) {
    if (!Budget()) return false;
    std::string msg;
    const bool have_key = path_len_ > 0 && path_len_ <= st_.path.size();
    if (have_key && strict_visit_) {
      msg = "unknown property " + Quote(st_.path[path_len_ - 1].key) + " is not allowed (strict mode)";
    } else if (have_key && (kw == SchemaKw::kAdditionalProperties ||
                                     kw == SchemaKw::kUnevaluatedProperties)) {
      msg = "property " + Quote(st_.path[path_len_ - 1].key) + " is not allowed";
    } else if (kw == SchemaKw::kItems || kw == SchemaKw::kUnevaluatedItems) {
      msg = "no further items are allowed";
    } else if (kw == SchemaKw::kPropertyNames) {
      msg = "property name " + Quote(in.key) + " is not allowed";
    } else {
      msg = "the schema `false` allows no value";
    }
    Fail(kw, ni, std::move(msg));
    return false;
  }
  return Eval(child, in, ann);
}

bool Validator::Eval(uint32_t ni, const Inst& in, int64_t ann) {
  if (aborted_) return false;
  if (!Budget()) return false;
  const SchemaNode& n = Node(ni);
  if (n.kind == static_cast<uint8_t>(SchemaNodeKind::kTrue)) return true;
  if (n.kind == static_cast<uint8_t>(SchemaNodeKind::kFalse)) {
    FailNamed("false", ni, "the schema `false` allows no value");
    return false;
  }
  if (++nesting_ > kMaxEvalNesting) {
    Abort(LimitKind::kEvaluations, "schema nesting deeper than " + std::to_string(kMaxEvalNesting) +
                                       " (a $ref cycle that consumes no input?)");
    --nesting_;
    return false;
  }
  bool pushed = false;
  if (n.flags & kSchemaNodeResource) {
    st_.scope.push_back(ni);
    pushed = true;
  }
  bool ok;
  if (im_.has_unevaluated[ni] && !in.is_key) {
    // Collect this node's annotations locally; merge them up on success.
    uint32_t count = CountOf(in);
    int64_t local = AllocBits(count);
    ok = EvalKeywords(ni, n, in, local);
    if (ok && ann >= 0) OrBits(ann, local, count);
    FreeBits(local);
  } else {
    ok = EvalKeywords(ni, n, in, ann);
  }
  if (pushed) st_.scope.pop_back();
  --nesting_;
  return ok && !aborted_;
}

bool Validator::EvalKeywords(uint32_t ni, const SchemaNode& n, const Inst& in, int64_t ann) {
  const uint32_t type = TypeBitOf(in);
  const bool is_obj = type == kSchemaTypeObject, is_arr = type == kSchemaTypeArray;
  const bool is_str = type == kSchemaTypeString, is_num = (type & kSchemaTypeNumber) != 0;
  bool all_ok = true;
  // With annotations wanted, a failure ends the node too: a failed node's
  // annotations are dropped by whoever tolerates the failure.
  for (uint32_t k = n.first_keyword; k < n.first_keyword + n.keyword_count; ++k) {
    const SchemaKeyword& kw = im_.keywords[k];
    const SchemaKw kind = static_cast<SchemaKw>(kw.kind);
    bool ok = true;
    switch (kind) {
      case SchemaKw::kType:
        if (!(kw.a & type)) {
          ok = false;
          static const char* const kTypeNames[] = {"null", "boolean", "object", "array",
                                                   "number", "string", "integer"};
          std::string want;
          for (int b = 0; b < 7; ++b) {
            if (kw.a & (1u << b)) want += (want.empty() ? "" : " or ") + std::string(kTypeNames[b]);
          }
          const char* got = "number";
          for (int b = 0; b < 7; ++b) {
            if (type == (1u << b)) got = kTypeNames[b];
          }
          Fail(kind, ni, "expected " + want + ", got " + got);
        }
        break;
      case SchemaKw::kConst:
        if (!Equal(in, im_.consts[kw.a])) {
          ok = false;
          Fail(kind, ni, "value does not equal the constant");
        }
        break;
      case SchemaKw::kEnum: {
        ok = false;
        for (uint32_t i = 0; i < kw.b && !ok && !aborted_; ++i) ok = Equal(in, im_.consts[kw.a + i]);
        if (!ok) Fail(kind, ni, "value is not one of the " + std::to_string(kw.b) + " allowed values");
        break;
      }
      case SchemaKw::kMinimum:
      case SchemaKw::kMaximum:
      case SchemaKw::kExclusiveMinimum:
      case SchemaKw::kExclusiveMaximum:
        if (is_num) {
          int c = CompareNumber(in.e, im_.numbers[kw.a], im_.number_doubles[kw.a]);
          ok = kind == SchemaKw::kMinimum            ? c >= 0
               : kind == SchemaKw::kMaximum          ? c <= 0
               : kind == SchemaKw::kExclusiveMinimum ? c > 0
                                                     : c < 0;
          if (!ok) {
            const char* rel = kind == SchemaKw::kMinimum            ? "less than"
                              : kind == SchemaKw::kMaximum          ? "greater than"
                              : kind == SchemaKw::kExclusiveMinimum ? "not greater than"
                                                                    : "not less than";
            Fail(kind, ni, "number is " + std::string(rel) + " " + im_.numbers[kw.a].ToString());
          }
        }
        break;
      case SchemaKw::kMultipleOf:
        if (is_num) {
          bool exact;
          ok = IsMultipleOf(ToDecimal(in.e), im_.numbers[kw.a], &exact);
          if (!ok) Fail(kind, ni, "number is not a multiple of " + im_.numbers[kw.a].ToString());
        }
        break;
      case SchemaKw::kMinLength:
      case SchemaKw::kMaxLength:
        if (is_str) {
          std::string_view s = in.is_key ? in.key : StrOf(in.e);
          // A code point takes 1 to 4 bytes: the byte length often decides.
          size_t cp = 0;
          if (kind == SchemaKw::kMinLength) {
            ok = (s.size() + 3) / 4 >= kw.a || (s.size() >= kw.a && (cp = CodePoints(s)) >= kw.a);
          } else {
            ok = s.size() <= kw.a || (s.size() / 4 <= kw.a && CodePoints(s) <= kw.a);
          }
          if (!ok) cp = CodePoints(s);
          if (!ok) {
            Fail(kind, ni, "string has " + std::to_string(cp) + " characters, " +
                               (kind == SchemaKw::kMinLength ? "fewer than " : "more than ") +
                               std::to_string(kw.a));
          }
        }
        break;
      case SchemaKw::kPattern:
        if (is_str) {
          std::string_view s = in.is_key ? in.key : StrOf(in.e);
          ok = PatternMatch(kw.a, s);
          if (!ok) Fail(kind, ni, "string does not match " + Quote(im_.regexes[kw.a]->pattern()));
        }
        break;
      case SchemaKw::kFormat:
        if (is_str) {
          std::string_view s = in.is_key ? in.key : StrOf(in.e);
          ok = CheckSchemaFormat(static_cast<SchemaFormat>(kw.a), s);
          if (!ok) {
            Fail(kind, ni, "string is not a valid " +
                               std::string(SchemaFormatName(static_cast<SchemaFormat>(kw.a))));
          }
        }
        break;
      case SchemaKw::kMinItems:
      case SchemaKw::kMaxItems:
        if (is_arr) {
          uint32_t c = CountOf(in);
          ok = kind == SchemaKw::kMinItems ? c >= kw.a : c <= kw.a;
          if (!ok) {
            Fail(kind, ni, "array has " + std::to_string(c) + " items, " +
                               (kind == SchemaKw::kMinItems ? "fewer than " : "more than ") +
                               std::to_string(kw.a));
          }
        }
        break;
      case SchemaKw::kMinProperties:
      case SchemaKw::kMaxProperties:
        if (is_obj) {
          uint32_t c = CountOf(in);
          ok = kind == SchemaKw::kMinProperties ? c >= kw.a : c <= kw.a;
          if (!ok) {
            Fail(kind, ni, "object has " + std::to_string(c) + " properties, " +
                               (kind == SchemaKw::kMinProperties ? "fewer than " : "more than ") +
                               std::to_string(kw.a));
          }
        }
        break;
      case SchemaKw::kUniqueItems:
        if (is_arr) {
          dom::array arr = Arr(in.e);
          auto& hs = st_.hashes;
          hs.clear();
          uint32_t i = 0;
          for (dom::element x : arr) hs.emplace_back(HashValue(x), i++);
          std::sort(hs.begin(), hs.end());
          for (size_t j = 1; j < hs.size() && ok; ++j) {
            for (size_t m = j; m-- > 0 && hs[m].first == hs[j].first && ok;) {
              if (EqualEl(ArrAt(arr, hs[m].second), ArrAt(arr, hs[j].second))) {
                ok = false;
                uint32_t a = std::min(hs[m].second, hs[j].second), b = std::max(hs[m].second, hs[j].second);
                Fail(kind, ni, "items " + std::to_string(a) + " and " + std::to_string(b) + " are equal");
              }
              if (aborted_) return false;
            }
          }
        }
        break;
      case SchemaKw::kRequired:
        if (is_obj) {
          dom::object obj = Obj(in.e);
          for (uint32_t i = 0; i < kw.b && ok; ++i) {
            std::string_view name = im_.Str(im_.lists[kw.a + i]);
            dom::element tmp;
            if (obj.at_key(name).get(tmp) != simdjson::SUCCESS) {
              ok = false;
              Fail(kind, ni, "required property " + Quote(name) + " is missing");
            }
          }
        }
        break;
      case SchemaKw::kDependentRequired:
        if (is_obj) {
          dom::object obj = Obj(in.e);
          for (uint32_t i = 0; i < kw.b && ok; ++i) {
            std::string_view name = im_.Str(im_.lists[kw.a + 3 * i]);
            dom::element tmp;
            if (obj.at_key(name).get(tmp) != simdjson::SUCCESS) continue;
            uint32_t off = im_.lists[kw.a + 3 * i + 1], cnt = im_.lists[kw.a + 3 * i + 2];
            for (uint32_t j = 0; j < cnt && ok; ++j) {
              std::string_view dep = im_.Str(im_.lists[off + j]);
              if (obj.at_key(dep).get(tmp) != simdjson::SUCCESS) {
                ok = false;
                Fail(kind, ni, "property " + Quote(dep) + " is required when " + Quote(name) + " is present");
              }
            }
          }
        }
        break;
      case SchemaKw::kPropertyNames:
        if (is_obj) {
          for (auto kv : Obj(in.e)) {
            Inst key{dom::element(), kv.key, true};
            PushSeg({kv.key, 0, false});
            ok = Apply(kind, ni, kw.a, key, -1);
            --path_len_;
            if (!ok) break;
          }
        }
        break;
      case SchemaKw::kProperties:
      case SchemaKw::kPatternProperties:
      case SchemaKw::kAdditionalProperties:
        if (is_obj) {
          const uint32_t pk = im_.props_kw[ni], ppk = im_.pprops_kw[ni], ak = im_.addl_kw[ni];
          // additionalProperties ran inside the properties pass.
          if (kind == SchemaKw::kAdditionalProperties && pk != kSchemaNone) break;
          uint32_t idx = 0;
          for (auto kv : Obj(in.e)) {
            Inst member{kv.value, {}, false};
            PushSeg({kv.key, 0, false});
            if (kind == SchemaKw::kProperties) {
              uint32_t child = FindProp(kw, kv.key);
              if (child != kSchemaNone) {
                SetBit(ann, idx);
                ok = Apply(kind, ni, child, member, -1);
              } else if (ak != kSchemaNone) {
                // Fused with additionalProperties: one pass over the members.
                bool matched = false;
                if (ppk != kSchemaNone) {
                  const SchemaKeyword& pp = im_.keywords[ppk];
                  for (uint32_t i = 0; i < pp.b && !matched; ++i) {
                    matched = PatternMatch(im_.lists[pp.a + 2 * i], kv.key);
                  }
                }
                if (!matched) {
                  const SchemaKeyword& ad = im_.keywords[ak];
                  SetBit(ann, idx);
                  strict_visit_ = (ad.flags & 1) != 0;
                  ok = Apply(SchemaKw::kAdditionalProperties, ni, ad.a, member, -1);
                  strict_visit_ = false;
                }
              }
            } else if (kind == SchemaKw::kPatternProperties) {
              for (uint32_t i = 0; i < kw.b && ok; ++i) {
                if (PatternMatch(im_.lists[kw.a + 2 * i], kv.key)) {
                  SetBit(ann, idx);
                  ok = Apply(kind, ni, im_.lists[kw.a + 2 * i + 1], member, -1);
                }
              }
            } else {
              bool matched = pk != kSchemaNone && FindProp(im_.keywords[pk], kv.key) != kSchemaNone;
              if (!matched && ppk != kSchemaNone) {
                const SchemaKeyword& pp = im_.keywords[ppk];
                for (uint32_t i = 0; i < pp.b && !matched; ++i) {
                  matched = PatternMatch(im_.lists[pp.a + 2 * i], kv.key);
                }
              }
              if (!matched) {
                SetBit(ann, idx);
                strict_visit_ = (kw.flags & 1) != 0;
                ok = Apply(kind, ni, kw.a, member, -1);
                strict_visit_ = false;
              }
            }
            --path_len_;
            ++idx;
            if (!ok) break;
          }
        }
        break;
      case SchemaKw::kDependentSchemas:
        if (is_obj) {
          dom::object obj = Obj(in.e);
          for (uint32_t i = 0; i < kw.b && ok; ++i) {
            dom::element tmp;
            if (obj.at_key(im_.Str(im_.lists[kw.a + 2 * i])).get(tmp) != simdjson::SUCCESS) continue;
            ok = Apply(kind, ni, im_.lists[kw.a + 2 * i + 1], in, ann);
          }
        }
        break;
      case SchemaKw::kPrefixItems:
      case SchemaKw::kItems:
        if (is_arr) {
          uint32_t idx = 0;
          for (dom::element x : Arr(in.e)) {
            uint32_t child;
            if (kind == SchemaKw::kPrefixItems) {
              if (idx >= kw.b) break;
              child = im_.lists[kw.a + idx];
            } else {
              if (idx < kw.b) {
                ++idx;
                continue;
              }
              child = kw.a;
            }
            SetBit(ann, idx);
            PushSeg({{}, idx, true});
            ok = Apply(kind, ni, child, Inst{x, {}, false}, -1);
            --path_len_;
            ++idx;
            if (!ok) break;
          }
        }
        break;
      case SchemaKw::kContains:
        if (is_arr) {
          uint32_t idx = 0, matches = 0;
          const bool need_all = ann >= 0 || kw.c != kSchemaNone;
          ++quiet_;
          for (dom::element x : Arr(in.e)) {
            PushSeg({{}, idx, true});
            bool m = Eval(kw.a, Inst{x, {}, false}, -1);
            --path_len_;
            if (aborted_) {
              --quiet_;
              return false;
            }
            if (m) {
              ++matches;
              SetBit(ann, idx);
              if (!need_all && matches >= kw.b) break;
            }
            ++idx;
          }
          --quiet_;
          if (matches < kw.b) {
            ok = false;
            Fail(kind, ni, kw.b == 1 ? std::string("no item matches the contains schema")
                                     : std::to_string(matches) + " items match the contains schema, fewer than minContains " + std::to_string(kw.b));
          } else if (kw.c != kSchemaNone && matches > kw.c) {
            ok = false;
            Fail(kind, ni, std::to_string(matches) + " items match the contains schema, more than maxContains " + std::to_string(kw.c));
          }
        }
        break;
      case SchemaKw::kRef: {
        // Entering another resource by reference puts it on the dynamic scope.
        bool push = Node(kw.a).dyn_count > 0;
        if (push) st_.scope.push_back(kw.a);
        ok = Apply(kind, ni, kw.a, in, ann);
        if (push) st_.scope.pop_back();
        break;
      }
      case SchemaKw::kDynamicRef: {
        uint32_t target = kw.a;
        if (kw.b != kSchemaNone) {
          std::string_view name = im_.Str(kw.b);
          bool found = false;
          for (uint32_t r : st_.scope) {
            const SchemaNode& rn = Node(r);
            for (uint32_t i = 0; i < rn.dyn_count && !found; ++i) {
              if (im_.Str(im_.lists[rn.dyn_anchors + 2 * i]) == name) {
                target = im_.lists[rn.dyn_anchors + 2 * i + 1];
                found = true;
              }
            }
            if (found) break;
          }
        }
        bool push = Node(target).dyn_count > 0;
        if (push) st_.scope.push_back(target);
        ok = Apply(kind, ni, target, in, ann);
        if (push) st_.scope.pop_back();
        break;
      }
      case SchemaKw::kAllOf:
        for (uint32_t i = 0; i < kw.b && ok; ++i) ok = Apply(kind, ni, im_.lists[kw.a + i], in, ann);
        break;
      case SchemaKw::kAnyOf:
      case SchemaKw::kOneOf: {
        uint32_t count = CountOf(in), passed = 0, first = 0;
        ++quiet_;
        for (uint32_t i = 0; i < kw.b; ++i) {
          int64_t tmp = ann >= 0 ? AllocBits(count) : -1;
          bool m = Eval(im_.lists[kw.a + i], in, tmp);
          if (tmp >= 0) {
            if (m) OrBits(ann, tmp, count);
            FreeBits(tmp);
          }
          if (aborted_) {
            --quiet_;
            return false;
          }
          if (m) {
            if (passed == 0) first = i;
            ++passed;
            if (kind == SchemaKw::kAnyOf && ann < 0) break;
            if (kind == SchemaKw::kOneOf && passed > 1) break;
          }
        }
        --quiet_;
        if (kind == SchemaKw::kAnyOf) {
          ok = passed > 0;
          if (!ok) Fail(kind, ni, "value matches none of the " + std::to_string(kw.b) + " anyOf schemas");
        } else {
          ok = passed == 1;
          if (passed == 0) Fail(kind, ni, "value matches none of the " + std::to_string(kw.b) + " oneOf schemas");
          if (passed > 1) {
            Fail(kind, ni, "value matches more than one oneOf schema (" + std::to_string(first) + " and another)");
          }
        }
        break;
      }
      case SchemaKw::kNot: {
        ++quiet_;
        bool m = Eval(kw.a, in, -1);
        --quiet_;
        if (aborted_) return false;
        if (m) {
          ok = false;
          Fail(kind, ni, "value matches the schema it must not match");
        }
        break;
      }
      case SchemaKw::kIf: {
        // `if` alone only contributes annotations.
        if (kw.b == kSchemaNone && kw.c == kSchemaNone && ann < 0) break;
        uint32_t count = CountOf(in);
        int64_t tmp = ann >= 0 ? AllocBits(count) : -1;
        ++quiet_;
        bool cond = Eval(kw.a, in, tmp);
        --quiet_;
        if (tmp >= 0) {
          if (cond) OrBits(ann, tmp, count);
          FreeBits(tmp);
        }
        if (aborted_) return false;
        uint32_t branch = cond ? kw.b : kw.c;
        if (branch != kSchemaNone) ok = Apply(cond ? SchemaKw::kIf : SchemaKw::kIf, ni, branch, in, ann);
        break;
      }
      case SchemaKw::kUnevaluatedItems:
      case SchemaKw::kUnevaluatedProperties:
        if ((kind == SchemaKw::kUnevaluatedItems && is_arr) ||
            (kind == SchemaKw::kUnevaluatedProperties && is_obj)) {
          // ann is this node's local bitset (has_unevaluated).
          uint32_t idx = 0;
          auto visit = [&](std::string_view key, dom::element v) {
            if (GetBit(ann, idx)) return true;
            PushSeg({key, idx, is_arr});
            strict_visit_ = (kw.flags & 1) != 0;
            bool r = Apply(kind, ni, kw.a, Inst{v, {}, false}, -1);
            strict_visit_ = false;
            --path_len_;
            if (r) SetBit(ann, idx);
            return r;
          };
          if (is_arr) {
            for (dom::element x : Arr(in.e)) {
              ok = visit({}, x);
              ++idx;
              if (!ok) break;
            }
          } else {
            for (auto kv : Obj(in.e)) {
              ok = visit(kv.key, kv.value);
              ++idx;
              if (!ok) break;
            }
          }
        }
        break;
    }
    if (aborted_) return false;
    if (!ok) {
      all_ok = false;
      break;
    }
  }
  return all_ok;
}

}  // namespace

namespace {

// Checks the instance against the structural limits and for duplicate keys,
// before any keyword runs. Recursion is bounded by limits.max_depth.
struct Prewalk {
  const ValidationLimits& lim;
  ValidationScratch::State& st;
  ValidationResult& res;

  bool Over(LimitKind k, std::string m) {
    res.outcome = ValidationOutcome::kOverLimit;
    res.limit = k;
    res.message = std::move(m);
    return false;
  }

  bool Walk(dom::element e, uint32_t depth) {
    switch (e.type()) {
      case dom::element_type::ARRAY: {
        if (depth + 1 > lim.max_depth) return Over(LimitKind::kDepth, "nesting deeper than " + std::to_string(lim.max_depth));
        dom::array a = Arr(e);
        if (a.size() > lim.max_items) return Over(LimitKind::kItems, "array has more than " + std::to_string(lim.max_items) + " items");
        for (dom::element x : a) {
          if (!Walk(x, depth + 1)) return false;
        }
        return true;
      }
      case dom::element_type::OBJECT: {
        if (depth + 1 > lim.max_depth) return Over(LimitKind::kDepth, "nesting deeper than " + std::to_string(lim.max_depth));
        dom::object o = Obj(e);
        size_t n = o.size();
        if (n > lim.max_properties) return Over(LimitKind::kProperties, "object has more than " + std::to_string(lim.max_properties) + " properties");
        // Duplicate keys: simdjson keeps them; a schema must not see them.
        size_t base = st.keys.size();
        for (auto kv : o) {
          if (kv.key.size() > lim.max_string_bytes) return Over(LimitKind::kStringLength, "key longer than " + std::to_string(lim.max_string_bytes) + " bytes");
          st.keys.push_back(kv.key);
        }
        auto b = st.keys.begin() + static_cast<ptrdiff_t>(base);
        bool dup = false;
        if (n <= 16) {
          for (size_t i = 0; i < n && !dup; ++i)
            for (size_t j = 0; j < i && !dup; ++j) dup = b[static_cast<ptrdiff_t>(i)] == b[static_cast<ptrdiff_t>(j)];
        } else {
          std::sort(b, st.keys.end());
          dup = std::adjacent_find(b, st.keys.end()) != st.keys.end();
        }
        if (dup) {
          res.outcome = ValidationOutcome::kMalformed;
          res.message = "duplicate object key";
          return false;
        }
        st.keys.resize(base);
        for (auto kv : o) {
          if (!Walk(kv.value, depth + 1)) return false;
        }
        return true;
      }
      case dom::element_type::STRING:
        if (StrOf(e).size() > lim.max_string_bytes) {
          return Over(LimitKind::kStringLength, "string longer than " + std::to_string(lim.max_string_bytes) + " bytes");
        }
        return true;
      default: return true;
    }
  }
};

// simdjson refuses integers beyond 64 bits and numbers beyond double range
// with NUMBER_ERROR, as it does malformed numbers: tell them apart.
bool HasBigNumber(std::string_view t) {
  bool in_str = false;
  for (size_t i = 0; i < t.size(); ++i) {
    char c = t[i];
    if (in_str) {
      if (c == '\\') ++i;
      else if (c == '"') in_str = false;
      continue;
    }
    if (c == '"') {
      in_str = true;
      continue;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
      size_t j = i;
      while (j < t.size() && (t[j] == '-' || t[j] == '+' || t[j] == '.' || t[j] == 'e' || t[j] == 'E' || (t[j] >= '0' && t[j] <= '9'))) ++j;
      std::string_view num = t.substr(i, j - i);
      Decimal d;
      if (ParseDecimal(num, &d) || num.size() > 64) {
        std::string tmp(num);
        double v = std::strtod(tmp.c_str(), nullptr);
        bool is_int = num.find_first_of(".eE") == std::string_view::npos;
        if (!std::isfinite(v) || (is_int && num.size() >= 19)) return true;
      }
      i = j - 1;
    }
  }
  return false;
}

ValidationResult Finish(const SchemaSet& set, uint32_t root, dom::element e,
                        const ValidationLimits& asked, ValidationScratch::State& st) {
  ValidationLimits limits = asked;
  limits.max_depth = std::min(limits.max_depth, kMaxValidationDepth);
  ValidationResult res;
  st.keys.clear();
  Prewalk pw{limits, st, res};
  if (!pw.Walk(e, 0)) return res;
  Validator v(set, limits, st, res);
  bool ok = v.Run(set.root_node(root), e);
  if (v.aborted()) return res;
  if (ok) return ValidationResult{};
  if (res.outcome != ValidationOutcome::kInvalid) {
    // Every failure records a keyword; keep a safe answer if one did not.
    res.outcome = ValidationOutcome::kInvalid;
    res.keyword = "schema";
    res.message = "the instance does not match the schema";
  }
  return res;
}

}  // namespace

ValidationResult Validate(const SchemaSet& set, uint32_t root, std::string_view json_text,
                          const ValidationLimits& limits, ValidationScratch& scratch) {
  ValidationResult res;
  auto& st = scratch.state();
  if (json_text.size() > limits.max_body_bytes) {
    res.outcome = ValidationOutcome::kOverLimit;
    res.limit = LimitKind::kBodyBytes;
    res.message = "body larger than " + std::to_string(limits.max_body_bytes) + " bytes";
    return res;
  }
  // simdjson counts the document itself as one level. The parser keeps the
  // largest depth asked for (no reallocation when routes alternate limits);
  // the prewalk enforces each call's exact limit.
  uint32_t want_depth = std::min(limits.max_depth, kMaxValidationDepth) + 1;
  size_t want_cap = std::max<size_t>(json_text.size(), 4096);
  if (st.parser_capacity < want_cap || st.parser_depth < want_depth) {
    size_t cap = std::max(want_cap, st.parser_capacity);
    want_depth = std::max(want_depth, st.parser_depth);
    if (st.parser.allocate(cap, want_depth) != simdjson::SUCCESS) {
      res.outcome = ValidationOutcome::kOverLimit;
      res.limit = LimitKind::kBodyBytes;
      res.message = "cannot allocate a parser for this body";
      return res;
    }
    st.parser_capacity = cap;
    st.parser_depth = want_depth;
  }
  size_t need = json_text.size() + simdjson::SIMDJSON_PADDING;
  if (st.padded.size() < need) st.padded.resize(std::max(need, st.padded.size() * 2));
  std::memcpy(st.padded.data(), json_text.data(), json_text.size());
  std::memset(st.padded.data() + json_text.size(), 0, simdjson::SIMDJSON_PADDING);
  dom::element e;
  auto err = st.parser.parse(st.padded.data(), json_text.size(), false).get(e);
  if (err != simdjson::SUCCESS) {
    if (err == simdjson::DEPTH_ERROR) {
      res.outcome = ValidationOutcome::kOverLimit;
      res.limit = LimitKind::kDepth;
      res.message = "nesting deeper than " + std::to_string(limits.max_depth);
    } else if (err == simdjson::NUMBER_ERROR && HasBigNumber(json_text)) {
      res.outcome = ValidationOutcome::kOverLimit;
      res.limit = LimitKind::kNumberRange;
      res.message = "number out of range (integers are limited to 64 bits, others to double range)";
    } else if (err == simdjson::UTF8_ERROR) {
      res.outcome = ValidationOutcome::kMalformed;
      res.message = "invalid UTF-8";
    } else {
      res.outcome = ValidationOutcome::kMalformed;
      res.message = std::string("not JSON: ") + simdjson::error_message(err);
    }
    return res;
  }
  return Finish(set, root, e, limits, st);
}

ValidationResult ValidateElement(const SchemaSet& set, uint32_t root, dom::element instance,
                                 const ValidationLimits& limits, ValidationScratch& scratch) {
  return Finish(set, root, instance, limits, scratch.state());
}

}  // namespace vakt::bytecode
