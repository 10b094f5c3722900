// The VM (vm.h): routes a normalised request through the bundle's trie and
// runs the route's verified stack program to an allow or a deny.
//
// Complexity: normalisation is O(target + headers); dispatch is one hash
// probe (plus at most one anchored RE2 match for a shaped parameter) per
// path segment, with no backtracking, so O(path length); a program runs at
// most `len` instructions because every jump goes strictly forward (checked
// here again, not only by the verifier), and each instruction is linear in
// the size of its operands. A decision is therefore O(request + route cost
// x operand size), with every operand bounded by the request limits
// (request.h), the claims document and the fixed scratch arena.
//
// Memory: all per-decision state lives in EvalScratch::Impl, allocated once:
// a fixed value stack of kMaxStack slots, a byte arena and a value arena
// (strings made by concatenation, lower/upper, lists from LOAD_ALL, split,
// MAKE_LIST and claim conversion), and fixed buffers for the formatted
// description and WWW-Authenticate header. Exhausting the arena is an
// evaluation error (a deny), never a reallocation, so a warm decision on
// the common path performs no heap allocation.
//
// request.json / response.json and the body checks (CHECK_BODY) parse a
// body with simdjson at most once per decision between them (bounded size
// and depth, duplicate member names refused) into a parser and buffers the
// scratch keeps; only a body that fails to parse may be parsed again, by
// the body check, to name the failure; RELATION is one O(1) lookup in the
// bundle's hash table (bundle.h FindRelation).
//
// Failure: nothing here throws. The bundle is verified, but every index,
// pop and jump is still bounds-checked; anything unexpected is an
// evaluation error, which denies with the current rule (fail closed).
//
// Tested by vm_test.cc (and the differential tests against the reference
// evaluator in compiler/interp.cc).
#include "bytecode/vm.h"

#include "bytecode/body_check.h"
#include "bytecode/schema.h"

#include <openssl/rand.h>

#include <re2/re2.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "bytecode/fapi_auth.h"
#include "bytecode/fapi_http.h"

namespace vakt::bytecode {
namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

constexpr size_t kArenaBytes = 64 * 1024;
constexpr size_t kArenaValues = 4096;
constexpr size_t kDetailBytes = 512;
constexpr size_t kDescBytes = 1024;
constexpr size_t kAuthBytes = 1536;
constexpr size_t kMaxPathInMessage = 256;
constexpr int kMaxJsonDepth = kMaxClaimsDepth;  // compare depth

// Number of arguments each builtin takes, by Builtin (as the verifier).
constexpr uint8_t kArity[kBuiltinCount] = {2, 2, 2, 1, 1, 1, 2, 1};
constexpr const char* kBuiltinName[kBuiltinCount] = {
    "starts_with", "ends_with", "contains", "lower", "upper", "len", "split", "trim"};

// A runtime value. Strings and lists point into memory that outlives the
// decision: the bundle, the request, the claims document or the arena.
struct Value {
  ValueType kind = ValueType::kNull;
  bool b = false;
  union {                          // by kind; 40 bytes in all keeps stack traffic low
    int64_t i = 0;                 // int, duration (seconds), timestamp (unix seconds)
    const char* s;                 // string bytes
    const Value* items;            // list elements
  };
  size_t n = 0;                    // string length or list count
  element j;                       // kJson

  std::string_view str() const { return {s, n}; }
};

Value Null() { return Value(); }
Value Bool(bool b) {
  Value v;
  v.kind = ValueType::kBool;
  v.b = b;
  return v;
}
Value Int(ValueType kind, int64_t i) {
  Value v;
  v.kind = kind;
  v.i = i;
  return v;
}
Value Str(std::string_view s) {
  Value v;
  v.kind = ValueType::kString;
  v.s = s.data();
  v.n = s.size();
  return v;
}
Value List(const Value* items, size_t n) {
  Value v;
  v.kind = ValueType::kList;
  v.items = items;
  v.n = n;
  return v;
}
Value Json(element e) {
  Value v;
  v.kind = ValueType::kJson;
  v.j = e;
  return v;
}

bool IsIntLike(ValueType k) {
  return k == ValueType::kInt || k == ValueType::kDuration || k == ValueType::kTimestamp;
}

const char* TypeName(ValueType k) {
  switch (k) {
    case ValueType::kNull:
      return "null";
    case ValueType::kBool:
      return "bool";
    case ValueType::kInt:
      return "int";
    case ValueType::kString:
      return "string";
    case ValueType::kDuration:
      return "duration";
    case ValueType::kTimestamp:
      return "timestamp";
    case ValueType::kList:
      return "list";
    case ValueType::kJson:
      return "json";
  }
  return "?";
}

const char* JsonTypeName(const element& e) {
  switch (e.type()) {
    case element_type::NULL_VALUE:
      return "null";
    case element_type::BOOL:
      return "a boolean";
    case element_type::STRING:
      return "a string";
    case element_type::ARRAY:
      return "an array";
    case element_type::OBJECT:
      return "an object";
    case element_type::INT64:
    case element_type::UINT64:
    case element_type::DOUBLE:
      return "a number";
  }
  return "a value";
}

bool JsonToInt(const element& e, int64_t* out) {
  if (e.type() == element_type::INT64) return e.get_int64().get(*out) == simdjson::SUCCESS;
  if (e.type() == element_type::UINT64) {
    uint64_t u;
    if (e.get_uint64().get(u) != simdjson::SUCCESS) return false;
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
    *out = static_cast<int64_t>(u);
    return true;
  }
  return false;
}

size_t JsonArraySize(simdjson::dom::array a) {
  size_t n = a.size();
  if (n < 0xffffff) return n;
  n = 0;  // the tape's count saturates: count by walking
  for (auto it = a.begin(); it != a.end(); ++it) ++n;
  return n;
}

size_t JsonObjectSize(simdjson::dom::object o) {
  size_t n = o.size();
  if (n < 0xffffff) return n;
  n = 0;
  for (auto it = o.begin(); it != o.end(); ++it) ++n;
  return n;
}

// Appends to a fixed buffer, silently truncating at its capacity.
class Writer {
 public:
  Writer(char* buf, size_t cap) : buf_(buf), cap_(cap) {}
  Writer& Add(std::string_view s) {
    size_t k = std::min(s.size(), cap_ - n_);
    if (k > 0) std::memcpy(buf_ + n_, s.data(), k);
    n_ += k;
    return *this;
  }
  Writer& AddInt(int64_t v) {
    char tmp[24];
    size_t k = 0;
    uint64_t u = v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
    do {
      tmp[k++] = static_cast<char>('0' + u % 10);
      u /= 10;
    } while (u != 0);
    if (v < 0) tmp[k++] = '-';
    while (k > 0) Add(std::string_view(&tmp[--k], 1));
    return *this;
  }
  // Appends `s` for use inside a quoted-string (RFC 9110): backslash and
  // double quote escaped, control bytes dropped; keeps `reserve` bytes free.
  Writer& AddQuoted(std::string_view s, size_t reserve) {
    for (char ch : s) {
      auto c = static_cast<unsigned char>(ch);
      if (c < 0x20 || c == 0x7f) continue;
      size_t need = (c == '"' || c == '\\') ? 2 : 1;
      if (n_ + need + reserve > cap_) break;
      if (need == 2) buf_[n_++] = '\\';
      buf_[n_++] = ch;
    }
    return *this;
  }
  size_t size() const { return n_; }
  std::string_view view() const { return {buf_, n_}; }

 private:
  char* buf_;
  size_t cap_;
  size_t n_ = 0;
};

}  // namespace

struct EvalScratch::Impl {
  NormalizedRequest norm;
  Value stack[kMaxStack];
  std::unique_ptr<char[]> bytes{new char[kArenaBytes]};
  std::unique_ptr<Value[]> values{new Value[kArenaValues]};
  size_t bytes_used = 0;
  size_t values_used = 0;
  std::string_view params[kMaxSegments];
  size_t param_count = 0;
  char detail[kDetailBytes];
  char desc[kDescBytes];
  char auth[kAuthBytes];
  // FAPI phase (fapi_auth.h): challenges and nonce of the last deny (their
  // capacity is kept), the scheme the request used, the verified token and
  // the x-fapi-interaction-id.
  std::string challenges[2];
  std::string dpop_nonce;
  bool send_nonce = false;  // authentication succeeded with a fresh DPoP-Nonce
  AuthScheme scheme = AuthScheme::kNone;
  std::string algs;  // DPoP challenge algs of the matched route
  std::shared_ptr<const VerifiedToken> token;
  char interaction[64];
  size_t interaction_len = 0;
  uint64_t rng = 0;  // interaction-id generator state (not a secret)
  // The client-certificate thumbprint of the last PEM seen (cached: a
  // connection presents the same certificate on every request).
  std::string thumb_pem;
  std::string thumbprint;
  bool thumb_valid = false;  // thumb_pem/thumbprint hold a computed result
  bool thumb_ok = false;     // ... and the PEM was a certificate
  // Per-decision cache of claim lookups and their last conversion, indexed
  // by claim path: a policy reads `token.role` in many rules, and a list
  // claim is converted once. Valid while `gen == generation`; grows to the
  // largest bundle seen and is never shrunk, so a warm scratch allocates
  // nothing.
  struct ClaimSlot {
    uint64_t gen = 0;
    bool found = false;
    simdjson::dom::element e;
    bool has_conv = false;
    ValueType conv_kind = ValueType::kNull;
    Value conv;
  };
  std::vector<ClaimSlot> claim_slots;
  uint64_t generation = 0;
  // Each body is parsed at most once per decision, for request.json /
  // response.json and the body checks alike (body_check.h SharedBodyParse).
  // The parse is valid while `gen == generation`; the walk over it (the
  // deepest non-empty nesting and repeated member names) is done on demand,
  // and request.json's own verdict is cached. The parser keeps the deepest
  // max_depth and the largest capacity asked for, and the padded copy and
  // the work lists keep their capacity, so a warm scratch allocates nothing.
  struct BodyJson {
    uint64_t gen = 0;           // a parse was attempted in this decision
    bool parsed = false;        // ... and succeeded
    bool alloc_failed = false;  // ... or the parser could not be allocated
    uint32_t depth = 0;         // the parser's max_depth for that parse
    simdjson::dom::parser parser;
    std::string padded;
    simdjson::dom::element root;
    uint64_t scan_gen = 0;      // the walk is done for this decision
    uint32_t nesting = 0;       // deepest non-empty array or object (simdjson's depth)
    bool dup = false;           // an object repeats a member name
    std::vector<std::pair<simdjson::dom::element, uint32_t>> stack;
    std::vector<std::string_view> keys;
    uint64_t json_gen = 0;      // request.json's verdict is for this decision
    bool ok = false;
    const char* error = "";
  };
  BodyJson body_json[2];  // 0 request, 1 response
  // CHECK_BODY: the schema validator's parser and stacks, kept warm.
  ValidationScratch validation;

  void Reset() {
    bytes_used = 0;
    values_used = 0;
    param_count = 0;
    scheme = AuthScheme::kNone;
    algs.clear();
    send_nonce = false;
    token.reset();
    interaction_len = 0;
    ++generation;
  }
  char* AllocBytes(size_t n) {
    if (n > kArenaBytes - bytes_used) return nullptr;
    char* p = bytes.get() + bytes_used;
    bytes_used += n;
    return p;
  }
  Value* AllocValues(size_t n) {
    if (n > kArenaValues - values_used) return nullptr;
    Value* p = values.get() + values_used;
    values_used += n;
    return p;
  }
};

EvalScratch::EvalScratch() : impl_(new Impl) {}
EvalScratch::~EvalScratch() = default;

namespace {

// The decision builders. Strings point into the bundle or the scratch.
void AddAuthHeader(Decision& d, EvalScratch::Impl& s) {
  bool bearer_error = false;
  if (d.status == 401) {
    bearer_error = !d.error.empty();
  } else if (d.status == 403 && d.error == "insufficient_scope") {
    bearer_error = true;
  } else {
    return;
  }
  Writer w(s.auth, kAuthBytes);
  // A request that authenticated with DPoP is answered in the DPoP scheme.
  const bool dpop = s.scheme == AuthScheme::kDPoP;
  w.Add(dpop ? "DPoP" : "Bearer");
  if (bearer_error) {
    // Reserve room for the fixed text after each quoted part.
    w.Add(" error=\"").AddQuoted(d.error, 64).Add("\", error_description=\"");
    w.AddQuoted(d.description, dpop ? 64 : 1).Add("\"");
  }
  if (dpop && !s.algs.empty()) w.Add(bearer_error ? ", algs=\"" : " algs=\"").Add(s.algs).Add("\"");
  d.headers[d.header_count++] = {"WWW-Authenticate", w.view()};
}

Decision RequestRefused(TargetError e, const NormalizedRequest& norm) {
  Decision d;
  d.status = e == TargetError::kTooLong ? 414 : e == TargetError::kHeadersTooBig ? 431 : 400;
  d.error = "invalid_request";
  d.description = norm.error_detail;
  d.rule = "vakt.request";
  return d;
}

Decision NoRoute(const HttpRequest& req, EvalScratch::Impl& s) {
  Decision d;
  d.status = 404;
  d.error = "not_found";
  d.rule = "vakt.route";
  Writer w(s.desc, kDescBytes);
  std::string_view path = s.norm.path;
  w.Add("no route for `").Add(req.method.substr(0, kMaxMethodBytes)).Add(" ");
  if (path.size() > kMaxPathInMessage) {
    w.Add(path.substr(0, kMaxPathInMessage)).Add("...");
  } else {
    w.Add(path);
  }
  w.Add("`");
  d.description = w.view();
  return d;
}

// Matches the normalised path and method against the trie. Returns the
// route index or kNone; records parameter values in s.params.
uint32_t MatchRoute(const Bundle& bundle, const HttpRequest& req, EvalScratch::Impl& s) {
  const BundleData& d = bundle.data();
  if (d.nodes.empty()) return kNone;
  uint32_t node = 0;
  for (std::string_view seg : s.norm.segments) {
    uint32_t child = bundle.FindEdge(node, seg);
    if (child == kNone) {
      const TrieNode& n = d.nodes[node];
      if (n.param_child == kNone) return kNone;
      if (n.param_shape != kNone) {
        if (n.param_shape >= d.regexes.size()) return kNone;
        if (!bundle.FullMatch(n.param_shape, seg)) return kNone;
      }
      if (s.param_count >= kMaxSegments) return kNone;
      s.params[s.param_count++] = seg;
      child = n.param_child;
    }
    if (child >= d.nodes.size()) return kNone;
    node = child;
  }
  const TrieNode& n = d.nodes[node];
  for (uint64_t k = n.first_method; k < uint64_t{n.first_method} + n.method_count; ++k) {
    if (k >= d.methods.size()) return kNone;
    const TrieMethod& m = d.methods[k];
    if (m.method < d.strings.size() && bundle.str(m.method) == req.method) {
      return m.route < d.routes.size() ? m.route : kNone;
    }
  }
  return kNone;
}

// One run of a route program.
class Machine {
 public:
  Machine(const Bundle& bundle, EvalScratch::Impl& s, const HttpRequest& req,
          const ClaimsProvider* claims, const HttpResponse* resp, const RouteRecord& route)
      : bundle_(bundle),
        d_(bundle.data()),
        s_(s),
        req_(req),
        claims_(claims),
        resp_(resp),
        route_(route) {}

  Decision Run(uint32_t start, uint32_t len) {
    const std::vector<Instr>& code = d_.code;
    if (start > code.size() || len > code.size() - start) return ErrorDeny("program out of range");
    const Instr* prog = code.data() + start;
    uint32_t pc = 0;
    while (pc < len) {
      const Instr& in = prog[pc];
      uint32_t next = pc + 1;
      bool ok = true;
      switch (in.op) {
        case Op::kNop:
          break;
        case Op::kPushNull:
          ok = Push(Null());
          break;
        case Op::kPushBool:
          ok = PushBool((in.a != 0));
          break;
        case Op::kPushInt: {
          auto t = static_cast<ValueType>(in.a);
          if (!IsIntLike(t) || in.c >= d_.ints.size()) {
            ok = Fail("bad operand");
            break;
          }
          ok = Push(Int(t, d_.ints[in.c]));
          break;
        }
        case Op::kPushStr:
          ok = in.c < d_.strings.size() ? PushStr((bundle_.str(in.c))) : Fail("bad operand");
          break;
        case Op::kLoadReq:
          ok = LoadReq(in.a);
          break;
        case Op::kLoadResp:
          ok = LoadResp(in.a);
          break;
        case Op::kLoadParam:
          ok = in.c < s_.param_count ? PushStr((s_.params[in.c])) : Fail("parameter out of range");
          break;
        case Op::kLoadFirst:
          ok = LoadFirst(in);
          break;
        case Op::kLoadAll:
          ok = LoadAll(in);
          break;
        case Op::kHas:
          ok = HasOp(in);
          break;
        case Op::kConvert:
          ok = ConvertOp(in);
          break;
        case Op::kField:
          ok = FieldOp(in.c);
          break;
        case Op::kRelation:
          ok = RelationOp(in);
          break;
        case Op::kIndex:
          ok = IndexOp();
          break;
        case Op::kEq:
        case Op::kNe: {
          if (sp_ < 2) return ErrorDeny("stack underflow");
          bool eq = false;
          ok = Equal(s_.stack[sp_ - 2], s_.stack[sp_ - 1], 0, &eq);
          if (ok) {
            sp_ -= 2;
            ok = PushBool(in.op == Op::kEq ? eq : !eq);
          }
          break;
        }
        case Op::kLt:
        case Op::kLe:
        case Op::kGt:
        case Op::kGe:
          ok = CompareOp(in.op);
          break;
        case Op::kAdd:
        case Op::kSub:
        case Op::kMul:
        case Op::kDiv:
        case Op::kMod:
          ok = ArithOp(in.op);
          break;
        case Op::kNeg: {
          Value x;
          if (!Pop(&x)) {
            ok = false;
          } else if (x.kind != ValueType::kInt && x.kind != ValueType::kDuration) {
            ok = Fail("type mismatch");
          } else if (x.i == std::numeric_limits<int64_t>::min()) {
            ok = Fail("integer overflow");
          } else {
            ok = Push(Int(x.kind, -x.i));
          }
          break;
        }
        case Op::kNot: {
          Value x;
          if (!Pop(&x)) {
            ok = false;
          } else if (x.kind != ValueType::kBool) {
            ok = Fail("not a bool");
          } else {
            ok = PushBool((!x.b));
          }
          break;
        }
        case Op::kIn:
          ok = InOp();
          break;
        case Op::kMatch:
          ok = MatchOp(in.c);
          break;
        case Op::kCall:
          ok = CallOp(in);
          break;
        case Op::kMakeList:
          ok = MakeListOp(in.c);
          break;
        case Op::kJump:
          if (in.c <= pc || in.c >= len) return ErrorDeny("bad jump");
          next = in.c;
          break;
        case Op::kJumpIfFalse: {
          if (in.c <= pc || in.c >= len) return ErrorDeny("bad jump");
          Value x;
          if (!Pop(&x)) return ErrorDeny();
          if (x.kind != ValueType::kBool) return ErrorDeny("not a bool");
          if (!x.b) next = in.c;
          break;
        }
        case Op::kJumpIfFalseOrPop:
        case Op::kJumpIfTrueOrPop: {
          if (in.c <= pc || in.c >= len) return ErrorDeny("bad jump");
          if (sp_ == 0) return ErrorDeny("stack underflow");
          const Value& top = s_.stack[sp_ - 1];
          if (top.kind != ValueType::kBool) return ErrorDeny("not a bool");
          if (top.b == (in.op == Op::kJumpIfTrueOrPop)) {
            next = in.c;
          } else {
            --sp_;
          }
          break;
        }
        case Op::kRule:
          if (in.c >= d_.rules.size()) return ErrorDeny("bad operand");
          rule_ = in.c;
          break;
        case Op::kRequire: {
          if (in.c >= d_.rules.size()) return ErrorDeny("bad operand");
          if (sp_ == 0) return ErrorDeny("stack underflow");
          const Value& x = s_.stack[--sp_];
          if (x.kind != ValueType::kBool) return ErrorDeny("requirement is not a bool");
          if (!x.b) return RuleDeny(in.c);
          break;
        }
        case Op::kDeny:
          if (in.c >= d_.rules.size()) return ErrorDeny("bad operand");
          return RuleDeny(in.c);
        case Op::kAllow:
          return Allow();
        case Op::kCheckBody: {
          std::optional<Decision> denied;
          if (!CheckBodyOp(in, &denied)) return ErrorDeny("bad body check");
          if (denied) return *denied;
          break;
        }
        case Op::kPop: {
          Value x;
          ok = Pop(&x);
          break;
        }
        default:
          return ErrorDeny("unknown opcode");
      }
      if (!ok) {
        // The failing expression belongs to the next REQUIRE or DENY: the
        // compiler emits each condition right before its REQUIRE.
        for (uint32_t k = pc; k < len; ++k) {
          if ((prog[k].op == Op::kRequire || prog[k].op == Op::kDeny) &&
              prog[k].c < d_.rules.size()) {
            rule_ = prog[k].c;
            break;
          }
        }
        return ErrorDeny();
      }
      pc = next;
    }
    return ErrorDeny("program ended without a decision");
  }

  Decision Allow() const {
    Decision d;
    d.allow = true;
    d.status = 200;
    d.description = "allowed";
    d.route = RouteName();
    return d;
  }

 private:
  std::string_view RouteName() const {
    return route_.name < d_.strings.size() ? bundle_.str(route_.name) : std::string_view();
  }

  // CHECK_BODY (format.h): picks the record (by response status for a
  // response program), runs it (body_check.h) and, on failure, fills
  // *denied with the record's rule and the outcome's status, error and
  // description. False on operands the verifier should have refused.
  bool CheckBodyOp(const Instr& in, std::optional<Decision>* denied) {
    const SchemaSet* set = bundle_.schemas();
    if (set == nullptr || in.b == 0 || uint64_t{in.c} + in.b > d_.bodies.size()) return false;
    uint32_t index = in.c;
    if (d_.bodies[in.c].response != 0) {  // a response group (the verifier checked the kinds)
      if (resp_ == nullptr) return false;
      uint16_t keys[kMaxBodyGroup];
      if (in.b > kMaxBodyGroup) return false;
      for (uint32_t i = 0; i < in.b; ++i) keys[i] = d_.bodies[in.c + i].status;
      int pick = SelectResponseCheck(resp_->status, std::span<const uint16_t>(keys, in.b));
      if (pick < 0) return true;
      index = in.c + static_cast<uint32_t>(pick);
    }
    const BodyRecord& rec = d_.bodies[index];
    if (rec.root >= set->root_count() || rec.rule >= d_.rules.size()) return false;
    BodyCheckSpec spec;
    spec.root = rec.root;
    spec.response = rec.response != 0;
    spec.limits.max_body_bytes = rec.max_bytes;
    spec.limits.max_depth = rec.max_depth;
    spec.limits.max_properties = rec.max_properties;
    spec.limits.max_items = rec.max_items;
    spec.limits.max_string_bytes = rec.max_string;
    spec.accept = bundle_.str(rec.accept);
    bool has_type = false;
    std::string_view type;
    auto first = [&](std::string_view v) {
      has_type = true;
      type = v;
      return false;
    };
    std::string_view body;
    if (spec.response) {
      if (resp_ == nullptr) return false;
      if (!ForEachValue(Source::kResponseHeader, "content-type", first)) return false;
      body = resp_->body;
    } else {
      if (!ForEachValue(Source::kHeader, "content-type", first)) return false;
      body = req_.body;
    }
    // The body check and request.json (or response.json) share one parse.
    struct Shared final : SharedBodyParse {
      Machine* m;
      int which;
      std::string_view body;
      Shared(Machine* machine, int w, std::string_view b) : m(machine), which(w), body(b) {}
      const element* Parse(uint32_t depth, bool* too_deep) override {
        return m->ParseBody(which, body, depth, too_deep);
      }
    } shared(this, spec.response ? 1 : 0, body);
    BodyCheckResult r = CheckBody(*set, spec, has_type, type, body, s_.validation, &shared);
    if (r.allowed()) return true;
    const RuleRecord& rule = d_.rules[rec.rule];
    Decision d;
    d.status = r.status;
    d.error = r.error;  // static text
    Writer w(s_.desc, kDescBytes);
    w.Add(r.description);
    d.description = w.view();
    d.rule = bundle_.str(rule.id);
    d.route = RouteName();
    AddAuthHeader(d, s_);
    *denied = d;
    return true;
  }

  Decision RuleDeny(uint32_t r) {
    const RuleRecord& rule = d_.rules[r];
    Decision d;
    d.status = rule.status;
    d.error = bundle_.str(rule.error);
    d.description = bundle_.str(rule.message);
    d.rule = bundle_.str(rule.id);
    d.route = RouteName();
    AddAuthHeader(d, s_);
    return d;
  }

  Decision ErrorDeny(const char* detail = nullptr) {
    if (detail != nullptr) detail_ = detail;
    Decision d;
    Writer w(s_.desc, kDescBytes);
    if (rule_ != kNone) {
      const RuleRecord& rule = d_.rules[rule_];
      d.status = rule.status;
      d.error = bundle_.str(rule.error);
      d.rule = bundle_.str(rule.id);
      w.Add(bundle_.str(rule.message)).Add(" (evaluation error: ").Add(detail_).Add(")");
    } else {
      d.status = 403;
      d.error = "access_denied";
      d.rule = "vakt.eval";
      w.Add("evaluation error: ").Add(detail_);
    }
    d.description = w.view();
    d.route = RouteName();
    AddAuthHeader(d, s_);
    return d;
  }

  // Errors: the detail is static text or formatted into s_.detail.
  bool Fail(const char* detail) {
    detail_ = detail;
    return false;
  }
  Writer DetailWriter() { return Writer(s_.detail, kDetailBytes); }
  bool Fail(const Writer& w) {
    detail_ = w.view();
    return false;
  }

  bool Push(const Value& v) {
    if (sp_ >= kMaxStack) return Fail("stack overflow");
    s_.stack[sp_++] = v;
    return true;
  }
  // Writes only the fields the kind uses, straight into the slot: no
  // temporary is built and copied, so the next read of the slot forwards
  // from these stores instead of stalling on a wide copy.
  bool PushBool(bool b) {
    if (sp_ >= kMaxStack) return Fail("stack overflow");
    Value& v = s_.stack[sp_++];
    v.kind = ValueType::kBool;
    v.b = b;
    return true;
  }
  bool PushStr(std::string_view str) {
    if (sp_ >= kMaxStack) return Fail("stack overflow");
    Value& v = s_.stack[sp_++];
    v.kind = ValueType::kString;
    v.s = str.data();
    v.n = str.size();
    return true;
  }
  bool Pop(Value* v) {
    if (sp_ == 0) return Fail("stack underflow");
    *v = s_.stack[--sp_];
    return true;
  }
  bool Pop2(Value* x, Value* y) { return Pop(y) && Pop(x); }

  bool PushString(const std::string& s) { return PushStr((s)); }

  // ---- Loads ----

  bool LoadReq(uint8_t field) {
    switch (static_cast<RequestField>(field)) {
      case RequestField::kMethod:
        return PushStr((req_.method));
      case RequestField::kPath:
        return PushStr((s_.norm.path));
      case RequestField::kBody:
        return PushStr((req_.body));
      case RequestField::kTlsVersion:
        return PushStr((req_.tls.version));
      case RequestField::kTlsCipher:
        return PushStr((req_.tls.cipher));
      case RequestField::kTlsCertThumbprint: {
        std::string_view pem = req_.tls.client_cert_pem;
        if (pem.empty()) return PushStr((""));
        if (!s_.thumb_valid || s_.thumb_pem != pem) {
          s_.thumb_valid = false;
          Result<std::string> t = CertThumbprint(pem);
          s_.thumb_ok = t.ok();
          if (t.ok()) s_.thumbprint.assign(*t);
          s_.thumb_pem.assign(pem);
          s_.thumb_valid = true;
        }
        if (!s_.thumb_ok) return Fail("bad client certificate");
        return PushString(s_.thumbprint);
      }
      case RequestField::kTime:
        return Push(Int(ValueType::kTimestamp, req_.time));
      case RequestField::kQueryString:
        return PushStr((s_.norm.raw_query));
      case RequestField::kRoute:
        return PushStr((RouteName()));
      case RequestField::kJson:
        return PushBodyJson(0, req_.body);
    }
    return Fail("bad operand");
  }

  // request.json / response.json: the body as JSON, at most
  // kMaxJsonBodyBytes, nested at most kMaxJsonBodyDepth (as a parse with that
  // max_depth would allow), valid UTF-8 (simdjson checks), and no object may
  // repeat a member name (two readers could disagree on it). Anything else
  // is an evaluation error: the rule denies. The parse is shared with the
  // body checks (ParseBody).
  bool PushBodyJson(int which, std::string_view body) {
    EvalScratch::Impl::BodyJson& bj = s_.body_json[which];
    if (bj.json_gen != s_.generation) {
      bj.json_gen = s_.generation;
      bj.ok = false;
      bj.error = which == 0 ? "the request body is not JSON" : "the response body is not JSON";
      if (body.size() > kMaxJsonBodyBytes) {
        bj.error = which == 0 ? "the request body is over the JSON size limit"
                              : "the response body is over the JSON size limit";
        return Fail(bj.error);
      }
      bool too_deep = false;
      const element* root = ParseBody(which, body, kMaxJsonBodyDepth, &too_deep);
      if (root == nullptr && bj.alloc_failed) bj.error = "cannot allocate the JSON parser";
      if (root == nullptr || too_deep) return Fail(bj.error);
      ScanBody(bj);
      if (bj.dup) {
        bj.error = which == 0 ? "the request body repeats a member name in one object"
                              : "the response body repeats a member name in one object";
        return Fail(bj.error);
      }
      bj.ok = true;
    }
    if (!bj.ok) return Fail(bj.error);
    return Push(Json(bj.root));
  }

  // The one parse of `body` (0 request, 1 response) in this decision, with
  // a simdjson max_depth of at least `depth` and kMaxJsonBodyDepth; null
  // when it failed (or an earlier attempt in this decision did). *too_deep:
  // a parse with max_depth exactly `depth` would have refused the document
  // (it succeeded here only because the parser allows deeper nesting).
  // A parse that fails with max_depth P also fails with any smaller one, and
  // one that succeeds gives the same document whatever the depth, so each
  // reader sees exactly what its own parse would have given.
  const element* ParseBody(int which, std::string_view body, uint32_t depth, bool* too_deep) {
    EvalScratch::Impl::BodyJson& bj = s_.body_json[which];
    *too_deep = false;
    if (bj.gen != s_.generation) {
      bj.gen = s_.generation;
      bj.parsed = false;
      bj.alloc_failed = false;
      bj.scan_gen = 0;
      size_t want_depth = std::max<size_t>(depth, static_cast<size_t>(kMaxJsonBodyDepth));
      if (bj.parser.capacity() < body.size() || bj.parser.max_depth() < want_depth) {
        size_t cap = std::max({body.size(), size_t{4096}, bj.parser.capacity()});
        want_depth = std::max(want_depth, bj.parser.max_depth());
        if (bj.parser.allocate(cap, want_depth) != simdjson::SUCCESS) {
          bj.alloc_failed = true;
          return nullptr;
        }
      }
      bj.depth = static_cast<uint32_t>(bj.parser.max_depth());
      bj.padded.assign(body);
      bj.padded.resize(body.size() + simdjson::SIMDJSON_PADDING, '\0');
      if (bj.parser.parse(bj.padded.data(), body.size(), false).get(bj.root) != simdjson::SUCCESS) {
        return nullptr;
      }
      bj.parsed = true;
    }
    if (!bj.parsed) return nullptr;
    if (bj.depth > depth) {
      ScanBody(bj);
      *too_deep = bj.nesting >= depth;
    }
    return &bj.root;
  }

  // One walk over the parsed body (an explicit stack, no recursion): the
  // deepest nesting of non-empty arrays and objects, counted as simdjson
  // counts depth (an empty one adds no level), and whether an object
  // repeats a member name. O(body) plus sorting each object's names.
  void ScanBody(EvalScratch::Impl::BodyJson& bj) {
    if (bj.scan_gen == s_.generation) return;
    bj.scan_gen = s_.generation;
    bj.nesting = 0;
    bj.dup = false;
    bj.stack.clear();
    bj.stack.emplace_back(bj.root, 0);
    while (!bj.stack.empty()) {
      auto [e, level] = bj.stack.back();
      bj.stack.pop_back();
      simdjson::dom::object obj;
      simdjson::dom::array arr;
      if (e.get_object().get(obj) == simdjson::SUCCESS) {
        if (obj.size() == 0) continue;
        bj.nesting = std::max(bj.nesting, level + 1);
        bj.keys.clear();
        for (auto field : obj) {
          bj.keys.push_back(field.key);
          bj.stack.emplace_back(field.value, level + 1);
        }
        if (!bj.dup) {
          std::sort(bj.keys.begin(), bj.keys.end());
          bj.dup = std::adjacent_find(bj.keys.begin(), bj.keys.end()) != bj.keys.end();
        }
      } else if (e.get_array().get(arr) == simdjson::SUCCESS) {
        if (arr.size() == 0) continue;
        bj.nesting = std::max(bj.nesting, level + 1);
        for (element v : arr) bj.stack.emplace_back(v, level + 1);
      }
    }
  }

  // ---- Relations ----

  bool RelationOp(const Instr& in) {
    Value key;
    if (!Pop(&key)) return false;
    if (in.c >= d_.relations.size() || in.a > 1) return Fail("bad operand");
    if (key.kind != ValueType::kString) {
      Writer w = DetailWriter();
      w.Add("relation `").Add(bundle_.str(d_.relations[in.c].name)).Add("` key is ")
          .Add(TypeName(key.kind)).Add(", expected string");
      return Fail(w);
    }
    const char* p = bundle_.FindRelation(in.c, key.str());
    if (in.a == 1) return PushBool(p != nullptr);
    const bool is_list = d_.relations[in.c].kind == static_cast<uint32_t>(RelationKind::kList);
    if (p == nullptr) {
      if (is_list) return Push(List(nullptr, 0));
      Writer w = DetailWriter();
      w.Add("relation `").Add(bundle_.str(d_.relations[in.c].name)).Add("` has no key \"");
      std::string_view k = key.str();
      w.Add(k.substr(0, 64)).Add(k.size() > 64 ? "...\"" : "\"");
      return Fail(w);
    }
    // The entry was walked by the verifier: counts and lengths are in range.
    const uint32_t count = RelationU32(p);
    p += 4;
    if (!is_list) return PushStr(std::string_view(p + 4, RelationU32(p)));
    Value* items = s_.AllocValues(count);
    if (items == nullptr && count != 0) return Fail("evaluation scratch exhausted");
    for (uint32_t i = 0; i < count; ++i) {
      const uint32_t len = RelationU32(p);
      items[i] = Str(std::string_view(p + 4, len));
      p += 4 + len;
    }
    return Push(List(items, count));
  }

  bool LoadResp(uint8_t field) {
    if (resp_ == nullptr) return Fail("no response");
    switch (static_cast<ResponseField>(field)) {
      case ResponseField::kStatus:
        return Push(Int(ValueType::kInt, resp_->status));
      case ResponseField::kBody:
        return PushStr((resp_->body));
      case ResponseField::kJson:
        return PushBodyJson(1, resp_->body);
    }
    return Fail("bad operand");
  }

  // Calls f(value) for every value of header/query/response header `name`
  // until f returns false. Returns false (with detail) on a bad source.
  template <typename F>
  bool ForEachValue(Source src, std::string_view name, F&& f) {
    switch (src) {
      case Source::kHeader:
        for (const auto& [n, v] : s_.norm.headers) {
          if (n == name && !f(v)) break;
        }
        return true;
      case Source::kQuery:
        for (const auto& [n, v] : s_.norm.query) {
          if (n == name && !f(v)) break;
        }
        return true;
      case Source::kResponseHeader:
        if (resp_ == nullptr) return Fail("no response");
        for (const HeaderField& h : resp_->headers) {
          if (EqualsIgnoreCase(h.name, name) && !f(h.value)) break;
        }
        return true;
      default:
        return Fail("bad operand");
    }
  }

  // Resolves claim path `c` into parts; false (with detail) if invalid.
  bool ClaimParts(uint32_t c, std::string_view* parts, size_t* count) {
    if (c >= d_.claim_paths.size()) return Fail("bad operand");
    const std::vector<uint32_t>& path = d_.claim_paths[c];
    if (path.empty() || path.size() > kMaxClaimPathParts) return Fail("bad operand");
    for (size_t k = 0; k < path.size(); ++k) {
      if (path[k] >= d_.strings.size()) return Fail("bad operand");
      parts[k] = bundle_.str(path[k]);
    }
    *count = path.size();
    return true;
  }

  // Looks up claim c: *found says whether it is present.
  bool FindClaim(uint32_t c, element* out, bool* found) {
    EvalScratch::Impl::ClaimSlot* slot = c < s_.claim_slots.size() ? &s_.claim_slots[c] : nullptr;
    if (slot && slot->gen == s_.generation) {
      *found = slot->found;
      if (slot->found) *out = slot->e;
      return true;
    }
    if (c >= d_.claim_paths.size()) return Fail("bad operand");
    *found = claims_ != nullptr && claims_->Find(bundle_.ClaimPath(c), out);
    if (slot) {
      slot->gen = s_.generation;
      slot->found = *found;
      if (*found) slot->e = *out;
      slot->has_conv = false;
    }
    return true;
  }

  void AddClaimName(Writer& w, uint32_t c) {
    const std::vector<uint32_t>& path = d_.claim_paths[c];
    for (size_t k = 0; k < path.size(); ++k) {
      if (k > 0) w.Add(".");
      w.Add(bundle_.str(path[k]));
    }
  }

  // What a conversion error names: a claim path, or "value".
  struct What {
    uint32_t claim = kNone;
    bool element = false;
  };

  bool ConvertFail(const element& e, ValueType want, What what) {
    Writer w = DetailWriter();
    if (what.claim != kNone) {
      w.Add("claim `");
      AddClaimName(w, what.claim);
      w.Add("`");
    } else {
      w.Add("value");
    }
    if (what.element) w.Add(" element");
    w.Add(" is ").Add(JsonTypeName(e)).Add(", expected ").Add(TypeName(want));
    return Fail(w);
  }

  // Converts JSON `e` to `kind` (lists: elements to `elem`).
  bool Convert(const element& e, ValueType kind, ValueType elem, What what, Value* out) {
    switch (kind) {
      case ValueType::kNull:
        if (!e.is_null()) return ConvertFail(e, kind, what);
        *out = Null();
        return true;
      case ValueType::kBool: {
        bool b;
        if (e.get_bool().get(b) != simdjson::SUCCESS) return ConvertFail(e, kind, what);
        *out = Bool(b);
        return true;
      }
      case ValueType::kInt: {
        int64_t v;
        if (!JsonToInt(e, &v)) return ConvertFail(e, kind, what);
        *out = Int(kind, v);
        return true;
      }
      case ValueType::kString: {
        std::string_view sv;
        if (e.get_string().get(sv) != simdjson::SUCCESS) return ConvertFail(e, kind, what);
        *out = Str(sv);
        return true;
      }
      case ValueType::kDuration:
      case ValueType::kTimestamp: {
        int64_t v;
        if (JsonToInt(e, &v)) {
          *out = Int(kind, v);
          return true;
        }
        double dv;
        if (e.type() == element_type::DOUBLE && e.get_double().get(dv) == simdjson::SUCCESS &&
            std::isfinite(dv) && dv >= -9.2e18 && dv <= 9.2e18) {
          *out = Int(kind, static_cast<int64_t>(std::floor(dv)));
          return true;
        }
        return ConvertFail(e, kind, what);
      }
      case ValueType::kList: {
        simdjson::dom::array arr;
        if (e.get_array().get(arr) != simdjson::SUCCESS) return ConvertFail(e, kind, what);
        if (elem == ValueType::kList) return Fail("unsupported list element type");
        size_t n = JsonArraySize(arr);
        Value* items = s_.AllocValues(n);
        if (items == nullptr) return Fail("evaluation scratch exhausted");
        size_t k = 0;
        What ew = what;
        ew.element = true;
        for (element x : arr) {
          if (k >= n) break;
          if (!Convert(x, elem, ValueType::kNull, ew, &items[k])) return false;
          ++k;
        }
        *out = List(items, k);
        return true;
      }
      case ValueType::kJson:
        *out = Json(e);
        return true;
    }
    return Fail("bad operand");
  }

  bool LoadFirst(const Instr& in) {
    auto src = static_cast<Source>(in.a);
    if (src == Source::kParam) {
      return in.c < s_.param_count ? PushStr((s_.params[in.c])) : Fail("parameter out of range");
    }
    if (src == Source::kClaim) {
      if (in.b >= kValueTypeCount) return Fail("bad operand");
      element e;
      bool found = false;
      if (!FindClaim(in.c, &e, &found)) return false;
      if (!found) {
        Writer w = DetailWriter();
        w.Add("missing claim `");
        AddClaimName(w, in.c);
        w.Add("`");
        return Fail(w);
      }
      auto kind = static_cast<ValueType>(in.b);
      EvalScratch::Impl::ClaimSlot* slot =
          in.c < s_.claim_slots.size() ? &s_.claim_slots[in.c] : nullptr;
      if (slot && slot->has_conv && slot->conv_kind == kind) return Push(slot->conv);
      Value v;
      What what;
      what.claim = in.c;
      if (!Convert(e, kind, ValueType::kString, what, &v)) return false;
      if (slot) {
        slot->has_conv = true;
        slot->conv_kind = kind;
        slot->conv = v;
      }
      return Push(v);
    }
    if (in.c >= d_.strings.size()) return Fail("bad operand");
    std::string_view name = bundle_.str(in.c);
    bool found = false;
    std::string_view value;
    if (!ForEachValue(src, name, [&](std::string_view v) {
          value = v;
          found = true;
          return false;
        })) {
      return false;
    }
    if (!found) {
      Writer w = DetailWriter();
      w.Add(src == Source::kQuery ? "missing query parameter `" : "missing header `");
      w.Add(name).Add("`");
      return Fail(w);
    }
    return PushStr((value));
  }

  bool LoadAll(const Instr& in) {
    auto src = static_cast<Source>(in.a);
    if (src != Source::kHeader && src != Source::kQuery && src != Source::kResponseHeader) {
      return Fail("bad operand");
    }
    if (in.c >= d_.strings.size()) return Fail("bad operand");
    std::string_view name = bundle_.str(in.c);
    size_t count = 0;
    if (!ForEachValue(src, name, [&](std::string_view) {
          ++count;
          return true;
        })) {
      return false;
    }
    Value* items = s_.AllocValues(count);
    if (items == nullptr) return Fail("evaluation scratch exhausted");
    size_t k = 0;
    (void)ForEachValue(src, name, [&](std::string_view v) {
      if (k < count) items[k++] = Str(v);
      return k < count;
    });
    return Push(List(items, k));
  }

  bool HasOp(const Instr& in) {
    auto src = static_cast<Source>(in.a);
    switch (src) {
      case Source::kParam:
        return PushBool((true));
      case Source::kClaim: {
        element e;
        bool found = false;
        if (!FindClaim(in.c, &e, &found)) return false;
        return PushBool((found));
      }
      case Source::kHeader:
      case Source::kQuery:
      case Source::kResponseHeader: {
        if (in.c >= d_.strings.size()) return Fail("bad operand");
        bool found = false;
        if (!ForEachValue(src, bundle_.str(in.c), [&](std::string_view) {
              found = true;
              return false;
            })) {
          return false;
        }
        return PushBool((found));
      }
    }
    return Fail("bad operand");
  }

  // ---- JSON access ----

  bool ConvertOp(const Instr& in) {
    if (in.a >= kValueTypeCount || in.b >= kValueTypeCount) return Fail("bad operand");
    auto kind = static_cast<ValueType>(in.a);
    Value x;
    if (!Pop(&x)) return false;
    if (x.kind == kind) return Push(x);
    if (x.kind != ValueType::kJson) {
      Writer w = DetailWriter();
      w.Add("cannot convert ").Add(TypeName(x.kind)).Add(" to ").Add(TypeName(kind));
      return Fail(w);
    }
    Value v;
    if (!Convert(x.j, kind, static_cast<ValueType>(in.b), What(), &v)) return false;
    return Push(v);
  }

  bool FieldOp(uint32_t c) {
    if (c >= d_.strings.size()) return Fail("bad operand");
    std::string_view name = bundle_.str(c);
    Value x;
    if (!Pop(&x)) return false;
    simdjson::dom::object obj;
    if (x.kind != ValueType::kJson || x.j.get_object().get(obj) != simdjson::SUCCESS) {
      Writer w = DetailWriter();
      w.Add("field `").Add(name).Add("` of a value that is not an object");
      return Fail(w);
    }
    element e;
    if (obj.at_key(name).get(e) != simdjson::SUCCESS) {
      Writer w = DetailWriter();
      w.Add("missing field `").Add(name).Add("`");
      return Fail(w);
    }
    return Push(Json(e));
  }

  bool IndexOp() {
    Value x, i;
    if (!Pop2(&x, &i)) return false;
    if (i.kind != ValueType::kInt) return Fail("index is not an int");
    if (x.kind == ValueType::kList) {
      if (i.i < 0 || static_cast<uint64_t>(i.i) >= x.n) return Fail("index out of range");
      return Push(x.items[i.i]);
    }
    simdjson::dom::array arr;
    if (x.kind == ValueType::kJson && x.j.get_array().get(arr) == simdjson::SUCCESS) {
      element e;
      if (i.i < 0 || arr.at(static_cast<size_t>(i.i)).get(e) != simdjson::SUCCESS) {
        return Fail("index out of range");
      }
      return Push(Json(e));
    }
    return Fail("cannot index a value that is not a list");
  }

  // ---- Comparison ----

  static bool JsonNumberEqual(const element& a, const element& b) {
    element_type ta = a.type(), tb = b.type();
    if (ta == element_type::DOUBLE || tb == element_type::DOUBLE) {
      double x, y;
      if (a.get_double().get(x) != simdjson::SUCCESS) return false;
      if (b.get_double().get(y) != simdjson::SUCCESS) return false;
      return x == y;
    }
    if (ta == tb) {
      if (ta == element_type::INT64)
        return a.get_int64().value_unsafe() == b.get_int64().value_unsafe();
      return a.get_uint64().value_unsafe() == b.get_uint64().value_unsafe();
    }
    // One int64, one uint64 (which is above INT64_MAX): never equal unless
    // the uint64 fits, which simdjson never produces as UINT64.
    int64_t x, y;
    return JsonToInt(a, &x) && JsonToInt(b, &y) && x == y;
  }

  static bool IsJsonNumber(element_type t) {
    return t == element_type::INT64 || t == element_type::UINT64 || t == element_type::DOUBLE;
  }

  bool JsonEqual(const element& a, const element& b, int depth, bool* eq) {
    if (depth > kMaxJsonDepth) return Fail("JSON too deeply nested to compare");
    element_type ta = a.type(), tb = b.type();
    if (IsJsonNumber(ta) && IsJsonNumber(tb)) {
      *eq = JsonNumberEqual(a, b);
      return true;
    }
    if (ta != tb) {
      *eq = false;
      return true;
    }
    switch (ta) {
      case element_type::NULL_VALUE:
        *eq = true;
        return true;
      case element_type::BOOL:
        *eq = a.get_bool().value_unsafe() == b.get_bool().value_unsafe();
        return true;
      case element_type::STRING:
        *eq = a.get_string().value_unsafe() == b.get_string().value_unsafe();
        return true;
      case element_type::ARRAY: {
        simdjson::dom::array x = a.get_array().value_unsafe();
        simdjson::dom::array y = b.get_array().value_unsafe();
        if (JsonArraySize(x) != JsonArraySize(y)) {
          *eq = false;
          return true;
        }
        auto ix = x.begin(), iy = y.begin();
        for (; ix != x.end() && iy != y.end(); ++ix, ++iy) {
          if (!JsonEqual(*ix, *iy, depth + 1, eq)) return false;
          if (!*eq) return true;
        }
        *eq = true;
        return true;
      }
      case element_type::OBJECT: {
        simdjson::dom::object x = a.get_object().value_unsafe();
        simdjson::dom::object y = b.get_object().value_unsafe();
        if (JsonObjectSize(x) != JsonObjectSize(y)) {
          *eq = false;
          return true;
        }
        for (auto field : x) {
          element other;
          if (y.at_key(field.key).get(other) != simdjson::SUCCESS) {
            *eq = false;
            return true;
          }
          if (!JsonEqual(field.value, other, depth + 1, eq)) return false;
          if (!*eq) return true;
        }
        *eq = true;
        return true;
      }
      default:
        *eq = false;
        return true;
    }
  }

  // x == y per the EQ rules (format.h): same kind by value; null equals
  // only null (a JSON null included); JSON against string/int/bool by the
  // JSON value when its type matches; any other mix is a type mismatch.
  bool Equal(const Value& x, const Value& y, int depth, bool* eq) {
    if (depth > kMaxJsonDepth) return Fail("value too deeply nested to compare");
    if (x.kind == y.kind) {
      switch (x.kind) {
        case ValueType::kNull:
          *eq = true;
          return true;
        case ValueType::kBool:
          *eq = x.b == y.b;
          return true;
        case ValueType::kInt:
        case ValueType::kDuration:
        case ValueType::kTimestamp:
          *eq = x.i == y.i;
          return true;
        case ValueType::kString:
          *eq = x.str() == y.str();
          return true;
        case ValueType::kList:
          if (x.n != y.n) {
            *eq = false;
            return true;
          }
          for (size_t k = 0; k < x.n; ++k) {
            if (!Equal(x.items[k], y.items[k], depth + 1, eq)) return false;
            if (!*eq) return true;
          }
          *eq = true;
          return true;
        case ValueType::kJson:
          return JsonEqual(x.j, y.j, depth, eq);
      }
      return Fail("type mismatch");
    }
    auto is_null = [](const Value& v) {
      return v.kind == ValueType::kNull || (v.kind == ValueType::kJson && v.j.is_null());
    };
    if (x.kind == ValueType::kNull || y.kind == ValueType::kNull) {
      *eq = is_null(x) && is_null(y);
      return true;
    }
    const Value* jv = x.kind == ValueType::kJson ? &x : y.kind == ValueType::kJson ? &y : nullptr;
    if (jv != nullptr) {
      const Value& tv = jv == &x ? y : x;
      switch (tv.kind) {
        case ValueType::kString: {
          std::string_view sv;
          *eq = jv->j.get_string().get(sv) == simdjson::SUCCESS && sv == tv.str();
          return true;
        }
        case ValueType::kBool: {
          bool b;
          *eq = jv->j.get_bool().get(b) == simdjson::SUCCESS && b == tv.b;
          return true;
        }
        case ValueType::kInt: {
          int64_t v;
          *eq = JsonToInt(jv->j, &v) && v == tv.i;
          return true;
        }
        default:
          break;
      }
    }
    Writer w = DetailWriter();
    w.Add("type mismatch: ").Add(TypeName(x.kind)).Add(" and ").Add(TypeName(y.kind));
    return Fail(w);
  }

  bool CompareOp(Op op) {
    Value x, y;
    if (!Pop2(&x, &y)) return false;
    int c;
    if (x.kind == ValueType::kString && y.kind == ValueType::kString) {
      int r = x.str().compare(y.str());
      c = r < 0 ? -1 : r > 0 ? 1 : 0;
    } else if (x.kind == y.kind && IsIntLike(x.kind)) {
      c = x.i < y.i ? -1 : x.i > y.i ? 1 : 0;
    } else {
      Writer w = DetailWriter();
      w.Add("type mismatch: cannot order ")
          .Add(TypeName(x.kind))
          .Add(" and ")
          .Add(TypeName(y.kind));
      return Fail(w);
    }
    bool r = op == Op::kLt ? c < 0 : op == Op::kLe ? c <= 0 : op == Op::kGt ? c > 0 : c >= 0;
    return PushBool((r));
  }

  // ---- Arithmetic ----

  bool ArithOp(Op op) {
    using K = ValueType;
    Value x, y;
    if (!Pop2(&x, &y)) return false;
    K a = x.kind, b = y.kind;
    int64_t r = 0;
    K out;
    switch (op) {
      case Op::kAdd:
        if (a == K::kString && b == K::kString) return Concat(x, y);
        if (a == K::kInt && b == K::kInt) {
          out = K::kInt;
        } else if (a == K::kDuration && b == K::kDuration) {
          out = K::kDuration;
        } else if ((a == K::kTimestamp && b == K::kDuration) ||
                   (a == K::kDuration && b == K::kTimestamp)) {
          out = K::kTimestamp;
        } else {
          break;
        }
        if (__builtin_add_overflow(x.i, y.i, &r)) return Fail("integer overflow");
        return Push(Int(out, r));
      case Op::kSub:
        if (a == K::kInt && b == K::kInt) {
          out = K::kInt;
        } else if (a == K::kDuration && b == K::kDuration) {
          out = K::kDuration;
        } else if (a == K::kTimestamp && b == K::kTimestamp) {
          out = K::kDuration;
        } else if (a == K::kTimestamp && b == K::kDuration) {
          out = K::kTimestamp;
        } else {
          break;
        }
        if (__builtin_sub_overflow(x.i, y.i, &r)) return Fail("integer overflow");
        return Push(Int(out, r));
      case Op::kMul:
        if (a == K::kInt && b == K::kInt) {
          out = K::kInt;
        } else if ((a == K::kDuration && b == K::kInt) || (a == K::kInt && b == K::kDuration)) {
          out = K::kDuration;
        } else {
          break;
        }
        if (__builtin_mul_overflow(x.i, y.i, &r)) return Fail("integer overflow");
        return Push(Int(out, r));
      case Op::kDiv:
      case Op::kMod:
        if (a == K::kInt && b == K::kInt) {
          out = K::kInt;
        } else if (op == Op::kDiv && a == K::kDuration && b == K::kInt) {
          out = K::kDuration;
        } else {
          break;
        }
        if (y.i == 0) return Fail("division by zero");
        if (x.i == std::numeric_limits<int64_t>::min() && y.i == -1) {
          return Fail("integer overflow");
        }
        return Push(Int(out, op == Op::kDiv ? x.i / y.i : x.i % y.i));
      default:
        break;
    }
    Writer w = DetailWriter();
    w.Add("type mismatch: ").Add(TypeName(a)).Add(" ").Add(OpName(op)).Add(" ").Add(TypeName(b));
    return Fail(w);
  }

  bool Concat(const Value& x, const Value& y) {
    char* p = s_.AllocBytes(x.n + y.n);
    if (p == nullptr) return Fail("evaluation scratch exhausted");
    if (x.n > 0) std::memcpy(p, x.s, x.n);
    if (y.n > 0) std::memcpy(p + x.n, y.s, y.n);
    return PushStr((std::string_view(p, x.n + y.n)));
  }

  // ---- Membership, regex, builtins ----

  // Sets *found if x equals an element of `container` (list or JSON array).
  // Returns false with detail on an error; *handled = false if `container`
  // is neither.
  bool Member(const Value& x, const Value& container, bool* found, bool* handled) {
    *handled = true;
    *found = false;
    if (container.kind == ValueType::kList) {
      for (size_t k = 0; k < container.n; ++k) {
        bool eq = false;
        if (!Equal(x, container.items[k], 0, &eq)) return false;
        if (eq) {
          *found = true;
          return true;
        }
      }
      return true;
    }
    simdjson::dom::array arr;
    if (container.kind == ValueType::kJson &&
        container.j.get_array().get(arr) == simdjson::SUCCESS) {
      for (element e : arr) {
        bool eq = false;
        if (!Equal(x, Json(e), 0, &eq)) return false;
        if (eq) {
          *found = true;
          return true;
        }
      }
      return true;
    }
    *handled = false;
    return true;
  }

  bool InOp() {
    Value x, y;
    if (!Pop2(&x, &y)) return false;
    bool found = false, handled = false;
    if (!Member(x, y, &found, &handled)) return false;
    if (handled) return PushBool((found));
    if (x.kind == ValueType::kString && y.kind == ValueType::kString) {
      return PushBool((y.str().find(x.str()) != std::string_view::npos));
    }
    Writer w = DetailWriter();
    w.Add("type mismatch: ").Add(TypeName(x.kind)).Add(" in ").Add(TypeName(y.kind));
    return Fail(w);
  }

  bool MatchOp(uint32_t c) {
    if (c >= d_.regexes.size()) return Fail("bad operand");
    Value x;
    if (!Pop(&x)) return false;
    if (x.kind != ValueType::kString) return Fail("regex match of a value that is not a string");
    return PushBool((RE2::PartialMatch(re2::StringPiece(x.s, x.n), bundle_.regex(c))));
  }

  bool BuiltinFail(Builtin f) {
    Writer w = DetailWriter();
    w.Add("wrong argument types for `").Add(kBuiltinName[static_cast<uint8_t>(f)]).Add("`");
    return Fail(w);
  }

  static bool IsSpace(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  }

  bool CallOp(const Instr& in) {
    if (in.a >= kBuiltinCount || in.b != kArity[in.a]) return Fail("bad operand");
    if (sp_ < in.b) return Fail("stack underflow");
    auto f = static_cast<Builtin>(in.a);
    const Value a0 = s_.stack[sp_ - in.b];
    const Value a1 = in.b > 1 ? s_.stack[sp_ - in.b + 1] : Value();
    sp_ -= in.b;
    const bool strs = a0.kind == ValueType::kString && (in.b == 1 || a1.kind == ValueType::kString);
    switch (f) {
      case Builtin::kStartsWith:
        if (!strs) return BuiltinFail(f);
        return PushBool((a0.str().starts_with(a1.str())));
      case Builtin::kEndsWith:
        if (!strs) return BuiltinFail(f);
        return PushBool((a0.str().ends_with(a1.str())));
      case Builtin::kContains: {
        bool found = false, handled = false;
        if (!Member(a1, a0, &found, &handled)) return false;
        if (handled) return PushBool((found));
        if (!strs) return BuiltinFail(f);
        return PushBool((a0.str().find(a1.str()) != std::string_view::npos));
      }
      case Builtin::kLower:
      case Builtin::kUpper: {
        if (!strs) return BuiltinFail(f);
        char* p = s_.AllocBytes(a0.n);
        if (p == nullptr) return Fail("evaluation scratch exhausted");
        for (size_t k = 0; k < a0.n; ++k) {
          char c = a0.s[k];
          if (f == Builtin::kLower && c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
          if (f == Builtin::kUpper && c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
          p[k] = c;
        }
        return PushStr((std::string_view(p, a0.n)));
      }
      case Builtin::kLen: {
        if (a0.kind == ValueType::kString || a0.kind == ValueType::kList) {
          return Push(Int(ValueType::kInt, static_cast<int64_t>(a0.n)));
        }
        if (a0.kind == ValueType::kJson) {
          std::string_view sv;
          simdjson::dom::array arr;
          simdjson::dom::object obj;
          if (a0.j.get_string().get(sv) == simdjson::SUCCESS) {
            return Push(Int(ValueType::kInt, static_cast<int64_t>(sv.size())));
          }
          if (a0.j.get_array().get(arr) == simdjson::SUCCESS) {
            return Push(Int(ValueType::kInt, static_cast<int64_t>(JsonArraySize(arr))));
          }
          if (a0.j.get_object().get(obj) == simdjson::SUCCESS) {
            return Push(Int(ValueType::kInt, static_cast<int64_t>(JsonObjectSize(obj))));
          }
        }
        return BuiltinFail(f);
      }
      case Builtin::kSplit: {
        if (!strs) return BuiltinFail(f);
        std::string_view s = a0.str(), sep = a1.str();
        if (sep.empty()) return Fail("`split` with an empty separator");
        size_t count = 1;
        for (size_t pos = s.find(sep); pos != std::string_view::npos;
             pos = s.find(sep, pos + sep.size())) {
          ++count;
        }
        Value* items = s_.AllocValues(count);
        if (items == nullptr) return Fail("evaluation scratch exhausted");
        size_t k = 0, start = 0;
        while (k + 1 < count) {
          size_t pos = s.find(sep, start);
          items[k++] = Str(s.substr(start, pos - start));
          start = pos + sep.size();
        }
        items[k++] = Str(s.substr(start));
        return Push(List(items, k));
      }
      case Builtin::kTrim: {
        if (!strs) return BuiltinFail(f);
        std::string_view s = a0.str();
        size_t b = 0, e = s.size();
        while (b < e && IsSpace(s[b])) ++b;
        while (e > b && IsSpace(s[e - 1])) --e;
        return PushStr((s.substr(b, e - b)));
      }
    }
    return Fail("bad operand");
  }

  bool MakeListOp(uint32_t c) {
    if (c > sp_) return Fail("stack underflow");
    Value* items = s_.AllocValues(c);
    if (items == nullptr) return Fail("evaluation scratch exhausted");
    for (uint32_t k = 0; k < c; ++k) items[k] = s_.stack[sp_ - c + k];
    sp_ -= c;
    return Push(List(items, c));
  }

  const Bundle& bundle_;
  const BundleData& d_;
  EvalScratch::Impl& s_;
  const HttpRequest& req_;
  const ClaimsProvider* claims_;
  const HttpResponse* resp_;
  const RouteRecord& route_;
  uint32_t sp_ = 0;
  uint32_t rule_ = kNone;
  std::string_view detail_ = "internal error";
};

// Normalises and routes; on success *route is the matched route index.
bool Prepare(const Bundle& bundle, const HttpRequest& req, EvalScratch::Impl& s, Decision* deny,
             uint32_t* route) {
  s.Reset();
  if (s.claim_slots.size() < bundle.data().claim_paths.size()) {
    s.claim_slots.resize(bundle.data().claim_paths.size());  // once per larger bundle
  }
  TargetError e = Normalize(req, s.norm);
  if (e != TargetError::kNone) {
    *deny = RequestRefused(e, s.norm);
    return false;
  }
  *route = MatchRoute(bundle, req, s);
  if (*route == kNone) {
    *deny = NoRoute(req, s);
    return false;
  }
  return true;
}

// ---- FAPI phase ----

// x-fapi-interaction-id: the client's (when it is a sane token of at most
// 64 bytes) or a fresh UUID v4. Not a secret, so a per-scratch splitmix64
// seeded once from the OS suffices and costs no system call per request.
void SetInteractionId(const NormalizedRequest& norm, EvalScratch::Impl& s) {
  std::string_view given;
  int count = 0;
  for (const auto& [name, value] : norm.headers) {
    if (name != "x-fapi-interaction-id") continue;
    given = value;
    if (++count > 1) break;
  }
  if (count == 1) {
    bool ok = !given.empty() && given.size() <= sizeof(s.interaction);
    for (char c : given) {
      ok &= (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            c == '-' || c == '_' || c == '.';
    }
    if (ok) {
      std::memcpy(s.interaction, given.data(), given.size());
      s.interaction_len = given.size();
      return;
    }
  }
  // Missing, malformed or repeated: answer with a fresh id.
  if (s.rng == 0) {
    if (RAND_bytes(reinterpret_cast<unsigned char*>(&s.rng), sizeof(s.rng)) != 1 || s.rng == 0) {
      s.rng = 0x9e3779b97f4a7c15ull ^ reinterpret_cast<uintptr_t>(&s);
    }
  }
  uint8_t b[16];
  for (int half = 0; half < 2; ++half) {
    uint64_t z = (s.rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    std::memcpy(b + 8 * half, &z, 8);
  }
  b[6] = static_cast<uint8_t>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);
  static constexpr char kHex[] = "0123456789abcdef";
  size_t n = 0;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s.interaction[n++] = '-';
    s.interaction[n++] = kHex[b[i] >> 4];
    s.interaction[n++] = kHex[b[i] & 15];
  }
  s.interaction_len = n;
}

// DPoP-Nonce on a decision after successful authentication (RFC 9449 8.2:
// the nonce the client should use next).
void AddNonceHeader(Decision& d, const EvalScratch::Impl& s) {
  if (!s.send_nonce || d.header_count >= d.headers.size()) return;
  d.headers[d.header_count++] = {"DPoP-Nonce", s.dpop_nonce};
}

void AddInteractionHeader(Decision& d, const EvalScratch::Impl& s) {
  if (s.interaction_len == 0 || d.header_count >= d.headers.size()) return;
  d.headers[d.header_count++] = {"x-fapi-interaction-id",
                                 std::string_view(s.interaction, s.interaction_len)};
}

// A deny from the FAPI phase; its strings are copied into the scratch.
Decision AuthDeny(AuthOutcome& o, const Bundle& bundle, const RouteRecord& route,
                  EvalScratch::Impl& s) {
  Decision d;
  d.status = o.status;
  d.error = o.error;
  Writer w(s.desc, kDescBytes);
  w.Add(o.description);
  d.description = w.view();
  d.rule = o.rule;
  d.route = bundle.str(route.name);
  for (uint8_t i = 0; i < o.challenge_count && i < 2; ++i) {
    s.challenges[i].swap(o.challenges[i]);
    d.headers[d.header_count++] = {"WWW-Authenticate", s.challenges[i]};
  }
  if (!o.dpop_nonce.empty()) {
    s.dpop_nonce.swap(o.dpop_nonce);
    d.headers[d.header_count++] = {"DPoP-Nonce", s.dpop_nonce};
  }
  return d;
}

// DPoP challenge algs for an issuer allowing `set` (as fapi_auth.cc's
// ProofAlgs: the FAPI algorithms it allows, or all three if none). The
// texts are built once, so a decision does not allocate for them.
std::string_view AlgsOf(uint32_t set) {
  constexpr uint32_t kFapi =
      AlgBit(JwsAlg::kES256) | AlgBit(JwsAlg::kPS256) | AlgBit(JwsAlg::kEdDSA);
  static const std::array<std::string, kFapi + 1> kText = [] {
    std::array<std::string, kFapi + 1> out;
    for (uint32_t bits = 0; bits <= kFapi; ++bits) {
      const uint32_t used = (bits & kFapi) != 0 ? bits & kFapi : kFapi;
      for (JwsAlg a : {JwsAlg::kES256, JwsAlg::kPS256, JwsAlg::kEdDSA}) {
        if (!(used & AlgBit(a))) continue;
        if (!out[bits].empty()) out[bits] += ' ';
        out[bits] += JwsAlgName(a);
      }
    }
    return out;
  }();
  return kText[set & kFapi];
}

// Runs the fapi2 checks of `route` (which has an auth record). With `env`
// the request's own token is authenticated; without, `injected` claims
// (tests, `vakt eval`) stand for a verified token: transport, token
// placement and scopes are still checked. Returns false with *deny set, or
// true with *claims pointing at the claims to decide with.
bool AuthPhase(const Bundle& bundle, const HttpRequest& req, const RouteRecord& route,
               const AuthEnv* env, const ClaimsProvider* injected, EvalScratch::Impl& s,
               Decision* deny, const ClaimsProvider** claims) {
  const AuthPolicy& policy = bundle.auth(route.auth);
  SetInteractionId(s.norm, s);
  if (policy.sender != SenderConstraint::kMtls) s.algs.assign(AlgsOf(policy.issuer->algs));
  auto fail = [&](AuthOutcome& o) {
    *deny = AuthDeny(o, bundle, route, s);
    AddInteractionHeader(*deny, s);
    return false;
  };
  if (env != nullptr) {
    AuthOutcome o = Authenticate(policy, req, *env);
    if (!o.ok) return fail(o);
    // Authenticated: there is exactly one Authorization header and its
    // scheme is Bearer or DPoP (ReadAuthorization accepted it), so its first
    // word decides; the token need not be scanned again.
    s.scheme = AuthScheme::kBearer;
    for (const HeaderField& h : req.headers) {
      if (!EqualsIgnoreCase(h.name, "authorization")) continue;
      std::string_view scheme = h.value.substr(0, h.value.find(' '));  // as ReadAuthorization
      if (EqualsIgnoreCase(scheme, "dpop")) s.scheme = AuthScheme::kDPoP;
      break;
    }
    if (!o.dpop_nonce.empty()) {
      s.dpop_nonce.swap(o.dpop_nonce);
      s.send_nonce = true;
    }
    s.token = std::move(o.token);
    *claims = s.token ? s.token->claims.get() : nullptr;
    if (*claims == nullptr) {
      AuthOutcome broken;
      broken.status = 401;
      broken.error = "invalid_token";
      broken.description = "the token's claims are unavailable";
      broken.rule = kRuleToken;
      return fail(broken);
    }
    return true;
  }
  auto authz = ReadAuthorization(req.headers);
  s.scheme = authz.ok() ? authz->scheme : AuthScheme::kNone;
  if (AuthOutcome t = CheckTransport(policy.tls, req.tls); !t.ok) return fail(t);
  for (const auto& [name, value] : s.norm.query) {
    if (name != "access_token") continue;
    AuthOutcome o;
    o.status = 400;
    o.error = "invalid_request";
    o.description = "access tokens are not accepted in the query string";
    o.rule = kRuleRequest;
    o.challenges[o.challenge_count++] =
        Challenge(AuthScheme::kBearer, o.error, o.description);
    return fail(o);
  }
  // What the route advertises (fapi_auth.h scheme rules): DPoP for kAny and
  // kDPoP, Bearer for kAny, kMtls and kNone.
  const bool dpop_challenge =
      policy.sender == SenderConstraint::kAny || policy.sender == SenderConstraint::kDPoP;
  const bool bearer_challenge = policy.sender != SenderConstraint::kDPoP;
  auto route_challenges = [&](AuthOutcome& o, std::string_view scope) {
    o.challenge_count = 0;
    if (dpop_challenge) {
      o.challenges[o.challenge_count++] =
          Challenge(AuthScheme::kDPoP, o.error, o.description, scope, s.algs);
    }
    if (bearer_challenge) {
      o.challenges[o.challenge_count++] =
          Challenge(AuthScheme::kBearer, o.error, o.description, scope);
    }
  };
  if (injected == nullptr) {
    AuthOutcome o;
    o.status = 401;
    o.description = "no access token";
    o.rule = kRuleToken;
    route_challenges(o, {});
    return fail(o);
  }
  if (AuthOutcome sc = CheckScope(policy.scope, injected, policy.sender); !sc.ok) {
    route_challenges(sc, policy.scope);  // with the issuer's DPoP algs
    return fail(sc);
  }
  *claims = injected;
  return true;
}

Decision RunRequest(const Bundle& bundle, const HttpRequest& req, const AuthEnv* env,
                    const ClaimsProvider* claims, EvalScratch::Impl& s) {
  Decision deny;
  uint32_t r = kNone;
  if (!Prepare(bundle, req, s, &deny, &r)) return deny;
  const RouteRecord& route = bundle.data().routes[r];
  if (route.auth != kNone) {
    if (!AuthPhase(bundle, req, route, env, claims, s, &deny, &claims)) return deny;
  }
  Machine m(bundle, s, req, claims, nullptr, route);
  Decision d = m.Run(route.request_code, route.request_len);
  if (route.auth != kNone) {
    AddNonceHeader(d, s);
    AddInteractionHeader(d, s);
  }
  return d;
}

}  // namespace

Decision DecideRequest(const Bundle& bundle, const HttpRequest& req, const ClaimsProvider* claims,
                       EvalScratch& scratch) {
  return RunRequest(bundle, req, nullptr, claims, scratch.impl());
}

Decision Decide(const Bundle& bundle, const HttpRequest& req, const AuthEnv& env,
                EvalScratch& scratch, std::shared_ptr<const VerifiedToken>* token) {
  EvalScratch::Impl& s = scratch.impl();
  Decision d = RunRequest(bundle, req, &env, nullptr, s);
  if (token != nullptr) *token = s.token;
  return d;
}

Decision DecideResponse(const Bundle& bundle, const HttpRequest& req, const ClaimsProvider* claims,
                        const HttpResponse& resp, EvalScratch& scratch) {
  EvalScratch::Impl& s = scratch.impl();
  Decision deny;
  uint32_t r = kNone;
  if (!Prepare(bundle, req, s, &deny, &r)) return deny;
  const RouteRecord& route = bundle.data().routes[r];
  Machine m(bundle, s, req, claims, &resp, route);
  if (route.response_len == 0) return m.Allow();
  return m.Run(route.response_code, route.response_len);
}

// ---- DecisionToJson ----

namespace {

// Appends `s` as a JSON string: quotes, backslashes and control bytes
// escaped, invalid UTF-8 bytes replaced by U+FFFD.
void AppendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c == '"' || c == '\\') {
        out.push_back('\\');
        out.push_back(static_cast<char>(c));
      } else if (c < 0x20) {
        out += "\\u00";
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 15]);
      } else {
        out.push_back(static_cast<char>(c));
      }
      ++i;
      continue;
    }
    // The longest valid sequence here, or 0.
    size_t n = 0;
    for (size_t len = 2; len <= 4 && i + len <= s.size(); ++len) {
      if (IsValidUtf8(s.substr(i, len))) {
        n = len;
        break;
      }
    }
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  out.push_back('"');
}

}  // namespace

std::string DecisionToJson(const Decision& d) {
  std::string out;
  out.reserve(256);
  out += "{\"decision\":";
  out += d.allow ? "\"allow\"" : "\"deny\"";
  out += ",\"status\":";
  out += std::to_string(d.status);
  out += ",\"error\":";
  AppendJsonString(out, d.error);
  out += ",\"error_description\":";
  AppendJsonString(out, d.description);
  out += ",\"rule\":";
  AppendJsonString(out, d.rule);
  out += ",\"route\":";
  AppendJsonString(out, d.route);
  out += ",\"headers\":{";
  for (size_t k = 0; k < d.header_count && k < d.headers.size(); ++k) {
    if (k > 0) out.push_back(',');
    AppendJsonString(out, d.headers[k].name);
    out.push_back(':');
    AppendJsonString(out, d.headers[k].value);
  }
  out += "}}";
  return out;
}

}  // namespace vakt::bytecode
