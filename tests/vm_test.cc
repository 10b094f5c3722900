// Tests of the VM (bytecode/vm.h) on hand-assembled bundles: each opcode's
// semantics and every evaluation-error branch, route matching, denial
// statuses and WWW-Authenticate headers, DecisionToJson, JsonClaims, the
// zero-allocation guarantee of a warm decision and concurrent use of one
// Bundle from many threads (run it under TSan/ASan).
//
// Programs are assembled from `X` items that name their constants by value
// (a string, an int, a regex, a claim path); Builder interns them into a
// BundleData, builds the route trie the way the compiler does, and loads
// the result through Serialize + Bundle::Load so the verifier sees it too.
#include "bytecode/vm.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <atomic>
#include <cstdlib>
#include <limits>
#include <map>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "bytecode/bundle.h"

// ---- Allocation counting (for the zero-allocation test) ----

namespace {
std::atomic<uint64_t> g_allocations{0};
// Out of line so the compiler does not pair an inlined free() with `new`.
[[gnu::noinline]] void* AllocateBlock(std::size_t n, std::size_t align) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (n == 0) n = 1;
  if (align <= alignof(std::max_align_t)) return std::malloc(n);
  return std::aligned_alloc(align, (n + align - 1) / align * align);
}
[[gnu::noinline]] void FreeBlock(void* p) { std::free(p); }
void* AllocateOrThrow(std::size_t n, std::size_t align = 0) {
  if (void* p = AllocateBlock(n, align)) return p;
  throw std::bad_alloc();
}
}  // namespace

// Every replaceable form, so that no allocation escapes the count and
// every block is freed by the allocator that made it (ASan checks).
void* operator new(std::size_t n) { return AllocateOrThrow(n); }
void* operator new[](std::size_t n) { return AllocateOrThrow(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return AllocateBlock(n, 0); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return AllocateBlock(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) {
  return AllocateOrThrow(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return AllocateOrThrow(n, static_cast<std::size_t>(a));
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return AllocateBlock(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return AllocateBlock(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { FreeBlock(p); }
void operator delete[](void* p) noexcept { FreeBlock(p); }
void operator delete(void* p, std::size_t) noexcept { FreeBlock(p); }
void operator delete[](void* p, std::size_t) noexcept { FreeBlock(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { FreeBlock(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { FreeBlock(p); }
void operator delete(void* p, std::align_val_t) noexcept { FreeBlock(p); }
void operator delete[](void* p, std::align_val_t) noexcept { FreeBlock(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { FreeBlock(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { FreeBlock(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { FreeBlock(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { FreeBlock(p); }

namespace vakt::bytecode {
namespace {

constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

// One instruction whose constant operand is given by value.
struct X {
  enum Kind { kRaw, kStr, kInt, kRegex, kClaim, kRule } kind = kRaw;
  Instr in{Op::kNop, 0, 0, 0};
  std::string s;
  int64_t i = 0;
  std::vector<std::string> path;
};

X Raw(Op op, uint8_t a = 0, uint16_t b = 0, uint32_t c = 0) {
  X x;
  x.in = Instr{op, a, b, c};
  return x;
}
X StrOp(Op op, std::string s, uint8_t a = 0, uint16_t b = 0) {
  X x = Raw(op, a, b);
  x.kind = X::kStr;
  x.s = std::move(s);
  return x;
}
X S(std::string s) { return StrOp(Op::kPushStr, std::move(s)); }
X IntOf(ValueType t, int64_t v) {
  X x = Raw(Op::kPushInt, static_cast<uint8_t>(t));
  x.kind = X::kInt;
  x.i = v;
  return x;
}
X I(int64_t v) { return IntOf(ValueType::kInt, v); }
X Dur(int64_t v) { return IntOf(ValueType::kDuration, v); }
X Ts(int64_t v) { return IntOf(ValueType::kTimestamp, v); }
X B(bool v) { return Raw(Op::kPushBool, v ? 1 : 0); }
X Null() { return Raw(Op::kPushNull); }
X O(Op op) { return Raw(op); }
X Req(RequestField f) { return Raw(Op::kLoadReq, static_cast<uint8_t>(f)); }
X Resp(ResponseField f) { return Raw(Op::kLoadResp, static_cast<uint8_t>(f)); }
X Param(uint32_t i) { return Raw(Op::kLoadParam, 0, 0, i); }
X First(Source src, std::string name) {
  return StrOp(Op::kLoadFirst, name, static_cast<uint8_t>(src));
}
X Header(std::string name) { return First(Source::kHeader, std::move(name)); }
X Query(std::string name) { return First(Source::kQuery, std::move(name)); }
X All(Source src, std::string name) { return StrOp(Op::kLoadAll, name, static_cast<uint8_t>(src)); }
X Has(Source src, std::string name) { return StrOp(Op::kHas, name, static_cast<uint8_t>(src)); }
X ClaimOp(Op op, std::vector<std::string> path, ValueType t) {
  X x = Raw(op, static_cast<uint8_t>(Source::kClaim),
            op == Op::kLoadFirst ? static_cast<uint16_t>(t) : 0);
  x.kind = X::kClaim;
  x.path = std::move(path);
  return x;
}
X Claim(std::vector<std::string> path, ValueType t) {
  return ClaimOp(Op::kLoadFirst, std::move(path), t);
}
X HasClaim(std::vector<std::string> path) {
  return ClaimOp(Op::kHas, std::move(path), ValueType::kNull);
}
X Field(std::string name) { return StrOp(Op::kField, std::move(name)); }
X Convert(ValueType t, ValueType elem = ValueType::kNull) {
  return Raw(Op::kConvert, static_cast<uint8_t>(t), static_cast<uint16_t>(elem));
}
X Match(std::string re) {
  X x = Raw(Op::kMatch);
  x.kind = X::kRegex;
  x.s = std::move(re);
  return x;
}
X Call(Builtin f) {
  static constexpr uint8_t kArity[kBuiltinCount] = {2, 2, 2, 1, 1, 1, 2, 1};
  auto a = static_cast<uint8_t>(f);
  return Raw(Op::kCall, a, kArity[a]);
}
X MakeList(uint32_t n) { return Raw(Op::kMakeList, 0, 0, n); }

using Code = std::vector<X>;

struct RuleSpec {
  std::string id;
  uint16_t status = 403;
  std::string error = "access_denied";
  std::string message;
};

// Assembles a BundleData and loads it.
class Builder {
 public:
  Builder() {
    data_.name = "test";
    data_.compiler_version = "vm_test";
    data_.strings.push_back("");
    strings_[""] = 0;
  }

  uint32_t Str(const std::string& s) {
    auto [it, inserted] = strings_.emplace(s, static_cast<uint32_t>(data_.strings.size()));
    if (inserted) data_.strings.push_back(s);
    return it->second;
  }
  uint32_t Int(int64_t v) {
    data_.ints.push_back(v);
    return static_cast<uint32_t>(data_.ints.size() - 1);
  }
  uint32_t Regex(const std::string& pattern) {
    uint32_t s = Str(pattern);
    for (uint32_t k = 0; k < data_.regexes.size(); ++k) {
      if (data_.regexes[k] == s) return k;
    }
    data_.regexes.push_back(s);
    return static_cast<uint32_t>(data_.regexes.size() - 1);
  }
  uint32_t ClaimPath(const std::vector<std::string>& parts) {
    std::vector<uint32_t> ids;
    for (const auto& p : parts) ids.push_back(Str(p));
    for (uint32_t k = 0; k < data_.claim_paths.size(); ++k) {
      if (data_.claim_paths[k] == ids) return k;
    }
    data_.claim_paths.push_back(ids);
    return static_cast<uint32_t>(data_.claim_paths.size() - 1);
  }
  uint32_t Rule(const RuleSpec& r) {
    RuleRecord rec{};
    rec.id = Str(r.id);
    rec.error = Str(r.error);
    rec.message = Str(r.message);
    rec.status = r.status;
    data_.rules.push_back(rec);
    return static_cast<uint32_t>(data_.rules.size() - 1);
  }

  std::vector<Instr> Assemble(const Code& code) {
    std::vector<Instr> out;
    for (const X& x : code) {
      Instr in = x.in;
      switch (x.kind) {
        case X::kRaw:
          break;
        case X::kStr:
          in.c = Str(x.s);
          break;
        case X::kInt:
          in.c = Int(x.i);
          break;
        case X::kRegex:
          in.c = Regex(x.s);
          break;
        case X::kClaim:
          in.c = ClaimPath(x.path);
          break;
        case X::kRule:
          break;
      }
      out.push_back(in);
    }
    return out;
  }

  // Adds a route. Template segments "{name}" or "{name:regex}" are params.
  uint32_t Route(const std::string& name, const std::string& method, const std::string& tmpl,
                 const Code& request, const Code& response = {}) {
    RouteRecord r{};
    r.name = Str(name);
    r.method = Str(method);
    r.path_template = Str(tmpl);
    r.first_param = static_cast<uint32_t>(data_.params.size());
    size_t node = 0;
    size_t pos = 1;
    while (pos <= tmpl.size()) {
      size_t e = tmpl.find('/', pos);
      if (e == std::string::npos) e = tmpl.size();
      std::string seg = tmpl.substr(pos, e - pos);
      pos = e + 1;
      if (seg.empty()) continue;
      if (seg.front() == '{') {
        std::string inner = seg.substr(1, seg.size() - 2);
        size_t colon = inner.find(':');
        std::string pname = inner.substr(0, colon);
        std::string shape = colon == std::string::npos ? "" : inner.substr(colon + 1);
        ParamRecord p{};
        p.name = Str(pname);
        p.shape = shape.empty() ? kNone : Regex(shape);
        data_.params.push_back(p);
        ++r.param_count;
        if (nodes_[node].param < 0) {
          nodes_[node].param = static_cast<int>(nodes_.size());
          nodes_[node].shape = shape;
          nodes_.emplace_back();
        }
        node = static_cast<size_t>(nodes_[node].param);
      } else {
        auto it = nodes_[node].literal.find(seg);
        if (it == nodes_[node].literal.end()) {
          int child = static_cast<int>(nodes_.size());
          nodes_[node].literal[seg] = child;
          nodes_.emplace_back();
          node = static_cast<size_t>(child);
        } else {
          node = static_cast<size_t>(it->second);
        }
      }
    }
    uint32_t index = static_cast<uint32_t>(data_.routes.size());
    nodes_[node].methods[method] = index;
    std::vector<Instr> req = Assemble(request);
    r.request_code = static_cast<uint32_t>(data_.code.size());
    r.request_len = static_cast<uint32_t>(req.size());
    data_.code.insert(data_.code.end(), req.begin(), req.end());
    if (!response.empty()) {
      std::vector<Instr> resp = Assemble(response);
      r.response_code = static_cast<uint32_t>(data_.code.size());
      r.response_len = static_cast<uint32_t>(resp.size());
      data_.code.insert(data_.code.end(), resp.begin(), resp.end());
    }
    r.cost = r.request_len + r.response_len;
    data_.max_route_cost = std::max(data_.max_route_cost, r.cost);
    data_.routes.push_back(r);
    return index;
  }

  std::shared_ptr<const Bundle> Load() {
    // Pre-order numbering, as the compiler does (children after parents).
    std::vector<int> order;
    std::vector<uint32_t> id(nodes_.size());
    Number(0, order, id);
    data_.nodes.clear();
    data_.edges.clear();
    data_.methods.clear();
    for (int n : order) {
      const TNode& t = nodes_[static_cast<size_t>(n)];
      TrieNode tn{};
      tn.first_edge = static_cast<uint32_t>(data_.edges.size());
      tn.edge_count = static_cast<uint32_t>(t.literal.size());
      for (const auto& [seg, child] : t.literal) {
        data_.edges.push_back({Str(seg), id[static_cast<size_t>(child)]});
      }
      tn.param_child = t.param < 0 ? kNone : id[static_cast<size_t>(t.param)];
      tn.param_shape = t.param < 0 || t.shape.empty() ? kNone : Regex(t.shape);
      tn.first_method = static_cast<uint32_t>(data_.methods.size());
      tn.method_count = static_cast<uint32_t>(t.methods.size());
      for (const auto& [m, route] : t.methods) data_.methods.push_back({Str(m), route});
      data_.nodes.push_back(tn);
    }
    auto loaded = Bundle::Load(Serialize(data_));
    EXPECT_TRUE(loaded.ok()) << loaded.status().ToString();
    if (!loaded.ok()) return nullptr;
    return *loaded;
  }

  BundleData& data() { return data_; }

 private:
  struct TNode {
    std::map<std::string, int> literal;
    int param = -1;
    std::string shape;
    std::map<std::string, uint32_t> methods;
  };
  void Number(int n, std::vector<int>& order, std::vector<uint32_t>& id) {
    id[static_cast<size_t>(n)] = static_cast<uint32_t>(order.size());
    order.push_back(n);
    for (const auto& [seg, child] : nodes_[static_cast<size_t>(n)].literal)
      Number(child, order, id);
    if (nodes_[static_cast<size_t>(n)].param >= 0)
      Number(nodes_[static_cast<size_t>(n)].param, order, id);
  }

  BundleData data_;
  std::map<std::string, uint32_t> strings_;
  std::vector<TNode> nodes_ = std::vector<TNode>(1);
};

// A Decision with its strings copied out of the scratch.
struct Out {
  bool allow = false;
  int status = 0;
  std::string error, description, rule, route;
  std::vector<std::pair<std::string, std::string>> headers;
};

Out Copy(const Decision& d) {
  Out o;
  o.allow = d.allow;
  o.status = d.status;
  o.error = d.error;
  o.description = d.description;
  o.rule = d.rule;
  o.route = d.route;
  for (size_t k = 0; k < d.header_count; ++k) {
    o.headers.emplace_back(std::string(d.headers[k].name), std::string(d.headers[k].value));
  }
  return o;
}

std::unique_ptr<JsonClaims> ClaimsOf(std::string_view json) {
  auto c = JsonClaims::Parse(json);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? std::move(c).value() : nullptr;
}

// Runs one boolean expression as the requirement of rule "t.check" on
// route GET /t.
class VmExpr : public ::testing::Test {
 protected:
  Out Eval(const Code& expr) {
    Builder b;
    uint32_t r = b.Rule({"t.check", 403, "access_denied", "check failed"});
    Code prog = {Raw(Op::kRule, 0, 0, r)};
    prog.insert(prog.end(), expr.begin(), expr.end());
    prog.push_back(Raw(Op::kRequire, 0, 0, r));
    prog.push_back(Raw(Op::kAllow));
    b.Route("t", "GET", "/t", prog);
    auto bundle = b.Load();
    if (!bundle) return Out();
    HttpRequest req;
    req.method = "GET";
    req.target = target_;
    req.headers = headers_;
    req.body = body_;
    req.tls = tls_;
    req.time = time_;
    EvalScratch scratch;
    return Copy(DecideRequest(*bundle, req, claims_.get(), scratch));
  }
  void ExpectTrue(const Code& expr) {
    Out o = Eval(expr);
    EXPECT_TRUE(o.allow) << o.description;
  }
  void ExpectFalse(const Code& expr) {
    Out o = Eval(expr);
    EXPECT_FALSE(o.allow);
    EXPECT_EQ(o.description, "check failed");
    EXPECT_EQ(o.rule, "t.check");
  }
  void ExpectError(const Code& expr, std::string_view detail) {
    Out o = Eval(expr);
    EXPECT_FALSE(o.allow);
    EXPECT_EQ(o.status, 403);
    EXPECT_EQ(o.rule, "t.check");
    EXPECT_EQ(o.route, "t");
    EXPECT_EQ(o.description, "check failed (evaluation error: " + std::string(detail) + ")");
  }
  // x OP y == want, where want is pushed by `want`.
  void ExpectValue(Code expr, const X& want) {
    expr.push_back(want);
    expr.push_back(O(Op::kEq));
    ExpectTrue(expr);
  }

  std::string target_ = "/t";
  std::vector<HeaderField> headers_;
  std::string body_;
  TlsInfo tls_;
  int64_t time_ = 1700000000;
  std::unique_ptr<JsonClaims> claims_;
};

// ---- Constants, equality, comparison ----

TEST_F(VmExpr, PushAndEquality) {
  ExpectTrue({B(true)});
  ExpectFalse({B(false)});
  ExpectTrue({I(3), I(3), O(Op::kEq)});
  ExpectFalse({I(3), I(4), O(Op::kEq)});
  ExpectTrue({I(3), I(4), O(Op::kNe)});
  ExpectTrue({S("abc"), S("abc"), O(Op::kEq)});
  ExpectFalse({S("abc"), S("abd"), O(Op::kEq)});
  ExpectTrue({Null(), Null(), O(Op::kEq)});
  ExpectTrue({B(false), B(false), O(Op::kEq)});
  ExpectTrue({Dur(5), Dur(5), O(Op::kEq)});
  ExpectTrue({Ts(5), Ts(5), O(Op::kEq)});
  // Null against another kind: unequal, not an error.
  ExpectFalse({Null(), I(0), O(Op::kEq)});
  ExpectTrue({S(""), Null(), O(Op::kNe)});
  // Lists compare elementwise.
  ExpectTrue({S("a"), S("b"), MakeList(2), S("a"), S("b"), MakeList(2), O(Op::kEq)});
  ExpectFalse({S("a"), S("b"), MakeList(2), S("b"), S("a"), MakeList(2), O(Op::kEq)});
  ExpectFalse({S("a"), MakeList(1), S("a"), S("a"), MakeList(2), O(Op::kEq)});
  ExpectTrue({MakeList(0), MakeList(0), O(Op::kEq)});
}

TEST_F(VmExpr, EqualityTypeMismatch) {
  ExpectError({I(1), S("1"), O(Op::kEq)}, "type mismatch: int and string");
  ExpectError({I(1), Dur(1), O(Op::kNe)}, "type mismatch: int and duration");
  ExpectError({S("a"), MakeList(1), S("a"), O(Op::kEq)}, "type mismatch: list and string");
}

TEST_F(VmExpr, Ordering) {
  ExpectTrue({I(1), I(2), O(Op::kLt)});
  ExpectFalse({I(2), I(2), O(Op::kLt)});
  ExpectTrue({I(2), I(2), O(Op::kLe)});
  ExpectTrue({I(3), I(2), O(Op::kGt)});
  ExpectTrue({I(2), I(2), O(Op::kGe)});
  ExpectFalse({I(1), I(2), O(Op::kGe)});
  ExpectTrue({I(kMin), I(kMax), O(Op::kLt)});
  ExpectTrue({Dur(10), Dur(20), O(Op::kLt)});
  ExpectTrue({Ts(100), Ts(20), O(Op::kGt)});
  ExpectTrue({S("abc"), S("abd"), O(Op::kLt)});
  ExpectTrue({S("ab"), S("abc"), O(Op::kLt)});
  ExpectTrue({S("\xC3\xA9"), S("z"), O(Op::kGt)});  // bytewise
  ExpectError({I(1), S("a"), O(Op::kLt)}, "type mismatch: cannot order int and string");
  ExpectError({Ts(1), Dur(1), O(Op::kLt)}, "type mismatch: cannot order timestamp and duration");
  ExpectError({B(true), B(false), O(Op::kGt)}, "type mismatch: cannot order bool and bool");
}

// ---- Arithmetic ----

TEST_F(VmExpr, Arithmetic) {
  ExpectValue({I(2), I(3), O(Op::kAdd)}, I(5));
  ExpectValue({Dur(2), Dur(3), O(Op::kAdd)}, Dur(5));
  ExpectValue({Ts(100), Dur(3), O(Op::kAdd)}, Ts(103));
  ExpectValue({Dur(3), Ts(100), O(Op::kAdd)}, Ts(103));
  ExpectValue({I(2), I(3), O(Op::kSub)}, I(-1));
  ExpectValue({Dur(2), Dur(3), O(Op::kSub)}, Dur(-1));
  ExpectValue({Ts(100), Ts(40), O(Op::kSub)}, Dur(60));
  ExpectValue({Ts(100), Dur(40), O(Op::kSub)}, Ts(60));
  ExpectValue({I(6), I(7), O(Op::kMul)}, I(42));
  ExpectValue({Dur(6), I(7), O(Op::kMul)}, Dur(42));
  ExpectValue({I(6), Dur(7), O(Op::kMul)}, Dur(42));
  ExpectValue({I(7), I(2), O(Op::kDiv)}, I(3));
  ExpectValue({I(-7), I(2), O(Op::kDiv)}, I(-3));  // toward zero
  ExpectValue({Dur(7), I(2), O(Op::kDiv)}, Dur(3));
  ExpectValue({I(7), I(3), O(Op::kMod)}, I(1));
  ExpectValue({I(-7), I(3), O(Op::kMod)}, I(-1));
  ExpectValue({I(5), O(Op::kNeg)}, I(-5));
  ExpectValue({Dur(5), O(Op::kNeg)}, Dur(-5));
  ExpectValue({I(kMax), O(Op::kNeg)}, I(-kMax));
  ExpectTrue({B(false), O(Op::kNot)});
  ExpectFalse({B(true), O(Op::kNot)});
  ExpectValue({S("ab"), S("cd"), O(Op::kAdd)}, S("abcd"));
  ExpectValue({S(""), S(""), O(Op::kAdd)}, S(""));
}

TEST_F(VmExpr, ArithmeticErrors) {
  ExpectError({I(kMax), I(1), O(Op::kAdd), I(0), O(Op::kEq)}, "integer overflow");
  ExpectError({I(kMin), I(-1), O(Op::kAdd), I(0), O(Op::kEq)}, "integer overflow");
  ExpectError({Ts(kMax), Dur(1), O(Op::kAdd), I(0), O(Op::kEq)}, "integer overflow");
  ExpectError({I(kMin), I(1), O(Op::kSub), I(0), O(Op::kEq)}, "integer overflow");
  ExpectError({Ts(kMin), Ts(1), O(Op::kSub), I(0), O(Op::kEq)}, "integer overflow");
  ExpectError({I(kMax), I(2), O(Op::kMul), I(0), O(Op::kEq)}, "integer overflow");
  ExpectError({Dur(kMin), I(-1), O(Op::kMul), I(0), O(Op::kEq)}, "integer overflow");
  ExpectError({I(kMin), O(Op::kNeg), I(0), O(Op::kEq)}, "integer overflow");
  ExpectError({I(1), I(0), O(Op::kDiv), I(0), O(Op::kEq)}, "division by zero");
  ExpectError({Dur(1), I(0), O(Op::kDiv), I(0), O(Op::kEq)}, "division by zero");
  ExpectError({I(1), I(0), O(Op::kMod), I(0), O(Op::kEq)}, "division by zero");
  ExpectError({I(kMin), I(-1), O(Op::kDiv), I(0), O(Op::kEq)}, "integer overflow");
  ExpectError({I(kMin), I(-1), O(Op::kMod), I(0), O(Op::kEq)}, "integer overflow");
  ExpectError({I(1), S("a"), O(Op::kAdd), I(0), O(Op::kEq)}, "type mismatch: int ADD string");
  ExpectError({Ts(1), Ts(1), O(Op::kAdd), I(0), O(Op::kEq)},
              "type mismatch: timestamp ADD timestamp");
  ExpectError({Dur(1), Ts(1), O(Op::kSub), I(0), O(Op::kEq)},
              "type mismatch: duration SUB timestamp");
  ExpectError({Dur(1), Dur(1), O(Op::kMul), I(0), O(Op::kEq)},
              "type mismatch: duration MUL duration");
  ExpectError({I(1), Dur(1), O(Op::kDiv), I(0), O(Op::kEq)}, "type mismatch: int DIV duration");
  ExpectError({Dur(1), I(1), O(Op::kMod), I(0), O(Op::kEq)}, "type mismatch: duration MOD int");
  ExpectError({Ts(1), O(Op::kNeg), I(0), O(Op::kEq)}, "type mismatch");
  ExpectError({I(1), O(Op::kNot)}, "not a bool");
  ExpectError({I(1)}, "requirement is not a bool");
}

TEST_F(VmExpr, ArenaExhaustedByConcatenation) {
  // Each ADD copies both operands into the arena: a long straight-line
  // chain of concatenations needs quadratic space and must run out.
  std::string chunk(1000, 'x');
  Code code = {S(chunk)};
  for (int k = 0; k < 100; ++k) {
    code.push_back(S(chunk));
    code.push_back(O(Op::kAdd));
  }
  code.push_back(S(""));
  code.push_back(O(Op::kNe));
  ExpectError(code, "evaluation scratch exhausted");
  // A few concatenations fit.
  Code small = {S(chunk)};
  for (int k = 0; k < 5; ++k) {
    small.push_back(S(chunk));
    small.push_back(O(Op::kAdd));
  }
  small.push_back(Call(Builtin::kLen));
  small.push_back(I(6000));
  small.push_back(O(Op::kEq));
  ExpectTrue(small);
}

TEST_F(VmExpr, ArenaExhaustedByValues) {
  std::string many(5000, ',');
  ExpectError({S(many), S(","), Call(Builtin::kSplit), Call(Builtin::kLen), I(5001), O(Op::kEq)},
              "evaluation scratch exhausted");
  std::string fits(4000, ',');
  ExpectTrue({S(fits), S(","), Call(Builtin::kSplit), Call(Builtin::kLen), I(4001), O(Op::kEq)});
}

// ---- Membership, regex, builtins ----

TEST_F(VmExpr, In) {
  ExpectTrue({S("b"), S("a"), S("b"), MakeList(2), O(Op::kIn)});
  ExpectFalse({S("c"), S("a"), S("b"), MakeList(2), O(Op::kIn)});
  ExpectFalse({S("c"), MakeList(0), O(Op::kIn)});
  ExpectTrue({I(2), I(1), I(2), MakeList(2), O(Op::kIn)});
  ExpectTrue({S("ell"), S("hello"), O(Op::kIn)});
  ExpectFalse({S("elo"), S("hello"), O(Op::kIn)});
  ExpectTrue({S(""), S("hello"), O(Op::kIn)});
  ExpectError({I(1), S("a"), MakeList(1), O(Op::kIn)}, "type mismatch: int and string");
  ExpectError({I(1), I(2), O(Op::kIn)}, "type mismatch: int in int");
  ExpectError({S("a"), I(2), O(Op::kIn)}, "type mismatch: string in int");
}

TEST_F(VmExpr, Match) {
  ExpectTrue({S("abc-123"), Match("[0-9]+")});  // partial
  ExpectFalse({S("abc"), Match("^[0-9]+$")});
  ExpectTrue({S("123"), Match("^[0-9]+$")});
  ExpectError({I(123), Match("[0-9]+")}, "regex match of a value that is not a string");
}

TEST_F(VmExpr, Builtins) {
  ExpectTrue({S("Bearer abc"), S("Bearer "), Call(Builtin::kStartsWith)});
  ExpectFalse({S("Bearer abc"), S("DPoP "), Call(Builtin::kStartsWith)});
  ExpectTrue({S("file.json"), S(".json"), Call(Builtin::kEndsWith)});
  ExpectFalse({S("file.json"), S(".xml"), Call(Builtin::kEndsWith)});
  ExpectTrue({S("hello"), S("ll"), Call(Builtin::kContains)});
  ExpectFalse({S("hello"), S("lo!"), Call(Builtin::kContains)});
  ExpectTrue({S("a"), S("b"), MakeList(2), S("b"), Call(Builtin::kContains)});
  ExpectFalse({S("a"), S("b"), MakeList(2), S("c"), Call(Builtin::kContains)});
  ExpectValue({S("MiXeD-\xC3\x89"), Call(Builtin::kLower)}, S("mixed-\xC3\x89"));
  ExpectValue({S("MiXeD-\xC3\xA9"), Call(Builtin::kUpper)}, S("MIXED-\xC3\xA9"));
  ExpectValue({S("h\xC3\xA9"), Call(Builtin::kLen)}, I(3));
  ExpectValue({S("a"), S("b"), S("c"), MakeList(3), Call(Builtin::kLen)}, I(3));
  ExpectValue({S(" \t x y \r\n"), Call(Builtin::kTrim)}, S("x y"));
  ExpectValue({S("   "), Call(Builtin::kTrim)}, S(""));
}

TEST_F(VmExpr, Split) {
  auto list = [](std::vector<std::string> items) {
    Code c;
    for (auto& s : items) c.push_back(S(s));
    c.push_back(MakeList(static_cast<uint32_t>(items.size())));
    return c;
  };
  auto check = [&](std::string s, std::string sep, std::vector<std::string> want) {
    Code c = {S(s), S(sep), Call(Builtin::kSplit)};
    Code w = list(want);
    c.insert(c.end(), w.begin(), w.end());
    c.push_back(O(Op::kEq));
    ExpectTrue(c);
  };
  check("read write", " ", {"read", "write"});
  check("a  b", " ", {"a", "", "b"});
  check("", ",", {""});
  check("abc", ",", {"abc"});
  check(",a,", ",", {"", "a", ""});
  check("a::b::c", "::", {"a", "b", "c"});
  check("aaa", "aa", {"", "a"});
  // split + in, the scope check.
  ExpectTrue({S("write"), S("read write"), S(" "), Call(Builtin::kSplit), O(Op::kIn)});
  ExpectFalse({S("admin"), S("read write"), S(" "), Call(Builtin::kSplit), O(Op::kIn)});
  ExpectError({S("a,b"), S(""), Call(Builtin::kSplit), Call(Builtin::kLen), I(2), O(Op::kEq)},
              "`split` with an empty separator");
}

TEST_F(VmExpr, BuiltinTypeErrors) {
  ExpectError({I(1), S("a"), Call(Builtin::kStartsWith)}, "wrong argument types for `starts_with`");
  ExpectError({S("a"), I(1), Call(Builtin::kEndsWith)}, "wrong argument types for `ends_with`");
  ExpectError({I(1), I(1), Call(Builtin::kContains)}, "wrong argument types for `contains`");
  ExpectError({I(1), Call(Builtin::kLower), S(""), O(Op::kEq)}, "wrong argument types for `lower`");
  ExpectError({B(true), Call(Builtin::kUpper), S(""), O(Op::kEq)},
              "wrong argument types for `upper`");
  ExpectError({I(1), Call(Builtin::kLen), I(0), O(Op::kEq)}, "wrong argument types for `len`");
  ExpectError({S("a"), I(1), Call(Builtin::kSplit), Call(Builtin::kLen), I(0), O(Op::kEq)},
              "wrong argument types for `split`");
  ExpectError({Null(), Call(Builtin::kTrim), S(""), O(Op::kEq)}, "wrong argument types for `trim`");
}

TEST_F(VmExpr, ListsAndIndex) {
  ExpectValue({S("a"), S("b"), S("c"), MakeList(3), I(1), O(Op::kIndex)}, S("b"));
  ExpectValue({S("a"), S("b"), S("c"), MakeList(3), I(0), O(Op::kIndex)}, S("a"));
  ExpectError({S("a"), MakeList(1), I(1), O(Op::kIndex), S("a"), O(Op::kEq)}, "index out of range");
  ExpectError({S("a"), MakeList(1), I(-1), O(Op::kIndex), S("a"), O(Op::kEq)},
              "index out of range");
  ExpectError({S("a"), MakeList(1), S("0"), O(Op::kIndex), S("a"), O(Op::kEq)},
              "index is not an int");
  ExpectError({S("abc"), I(0), O(Op::kIndex), S("a"), O(Op::kEq)},
              "cannot index a value that is not a list");
  // Nested lists.
  ExpectValue({S("a"), MakeList(1), S("b"), S("c"), MakeList(2), MakeList(2), I(1), O(Op::kIndex),
               I(1), O(Op::kIndex)},
              S("c"));
}

TEST_F(VmExpr, Jumps) {
  // a && b compiled as: a; JUMP_IF_FALSE_OR_POP end; b; end:
  // Positions count from the program start: RULE is pc 0.
  ExpectTrue({B(true), Raw(Op::kJumpIfFalseOrPop, 0, 0, 4), B(true)});
  ExpectFalse({B(true), Raw(Op::kJumpIfFalseOrPop, 0, 0, 4), B(false)});
  ExpectFalse({B(false), Raw(Op::kJumpIfFalseOrPop, 0, 0, 4), I(1)});  // short circuit
  ExpectTrue({B(true), Raw(Op::kJumpIfTrueOrPop, 0, 0, 4), I(1)});     // short circuit
  ExpectTrue({B(false), Raw(Op::kJumpIfTrueOrPop, 0, 0, 4), B(true)});
  ExpectFalse({B(false), Raw(Op::kJumpIfTrueOrPop, 0, 0, 4), B(false)});
  // if c then x else y: c; JUMP_IF_FALSE else; x; JUMP end; else: y; end:
  ExpectTrue({B(true), Raw(Op::kJumpIfFalse, 0, 0, 5), B(true), Raw(Op::kJump, 0, 0, 6), B(false)});
  ExpectFalse(
      {B(false), Raw(Op::kJumpIfFalse, 0, 0, 5), B(true), Raw(Op::kJump, 0, 0, 6), B(false)});
  ExpectError({I(0), Raw(Op::kJumpIfFalse, 0, 0, 5), B(true), Raw(Op::kJump, 0, 0, 6), B(false)},
              "not a bool");
  ExpectError({I(0), Raw(Op::kJumpIfFalseOrPop, 0, 0, 4), B(true)}, "not a bool");
  ExpectError({I(0), Raw(Op::kJumpIfTrueOrPop, 0, 0, 4), B(true)}, "not a bool");
  // NOP and POP.
  ExpectTrue({O(Op::kNop), I(1), O(Op::kPop), B(true)});
}

// ---- Request loads ----

std::string MakeCertPem() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_issuer_name(x, X509_get_subject_name(x));
  X509_set_pubkey(x, key);
  X509_sign(x, key, EVP_sha256());
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, x);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(len));
  BIO_free(bio);
  X509_free(x);
  EVP_PKEY_free(key);
  return pem;
}

TEST_F(VmExpr, RequestFields) {
  target_ = "/t//?a=1&b=x+y";
  body_ = "{\"k\":1}";
  tls_.version = "TLSv1.3";
  tls_.cipher = "TLS_AES_128_GCM_SHA256";
  ExpectValue({Req(RequestField::kMethod)}, S("GET"));
  ExpectValue({Req(RequestField::kPath)}, S("/t"));
  ExpectValue({Req(RequestField::kBody)}, S("{\"k\":1}"));
  ExpectValue({Req(RequestField::kTlsVersion)}, S("TLSv1.3"));
  ExpectValue({Req(RequestField::kTlsCipher)}, S("TLS_AES_128_GCM_SHA256"));
  ExpectValue({Req(RequestField::kTime)}, Ts(1700000000));
  ExpectValue({Req(RequestField::kQueryString)}, S("a=1&b=x+y"));
  ExpectValue({Req(RequestField::kRoute)}, S("t"));
  ExpectValue({Req(RequestField::kTlsCertThumbprint)}, S(""));  // no certificate
  tls_ = {};
  ExpectValue({Req(RequestField::kTlsVersion)}, S(""));
}

TEST_F(VmExpr, CertThumbprint) {
  std::string pem = MakeCertPem();
  auto want = CertThumbprint(pem);
  ASSERT_TRUE(want.ok());
  tls_.client_cert_pem = pem;
  ExpectValue({Req(RequestField::kTlsCertThumbprint)}, S(*want));
  tls_.client_cert_pem = "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n";
  ExpectError({Req(RequestField::kTlsCertThumbprint), S(""), O(Op::kEq)}, "bad client certificate");
}

TEST_F(VmExpr, HeadersAndQuery) {
  headers_ = {{"X-Api-Key", "k1"}, {"Accept", "a/b"}, {"x-api-key", "k2"}};
  target_ = "/t?scope=a&scope=b&empty=&x=%41";
  ExpectValue({Header("x-api-key")}, S("k1"));
  ExpectValue({Header("accept")}, S("a/b"));
  ExpectError({Header("authorization"), S(""), O(Op::kEq)}, "missing header `authorization`");
  ExpectValue({Query("scope")}, S("a"));
  ExpectValue({Query("empty")}, S(""));
  ExpectValue({Query("x")}, S("A"));
  ExpectError({Query("nope"), S(""), O(Op::kEq)}, "missing query parameter `nope`");
}

TEST_F(VmExpr, LoadAllAndHas) {
  headers_ = {{"X-Api-Key", "k1"}, {"Accept", "a/b"}, {"x-api-key", "k2"}};
  target_ = "/t?scope=a&scope=b";
  Code two = {All(Source::kHeader, "x-api-key"), S("k1"), S("k2"), MakeList(2), O(Op::kEq)};
  ExpectTrue(two);
  ExpectTrue({All(Source::kQuery, "scope"), S("a"), S("b"), MakeList(2), O(Op::kEq)});
  ExpectTrue({All(Source::kHeader, "none"), Call(Builtin::kLen), I(0), O(Op::kEq)});
  ExpectTrue({Has(Source::kHeader, "accept")});
  ExpectFalse({Has(Source::kHeader, "authorization")});
  ExpectTrue({Has(Source::kQuery, "scope")});
  ExpectFalse({Has(Source::kQuery, "nope")});
}

// ---- Claims ----

TEST_F(VmExpr, ClaimConversions) {
  claims_ = ClaimsOf(R"({
    "sub": "alice", "age": 42, "admin": true, "nothing": null, "exp": 1700000600,
    "iat": 1699999999.75, "ttl": 300, "scopes": ["read", "write"], "mixed": ["a", 1],
    "big": 18446744073709551615, "neg_exp": -1.5, "nan_like": 1e300,
    "cnf": {"jkt": "thumb", "x5t#S256": "abc"},
    "obj": {"a": [1, {"b": "c"}]}
  })");
  ASSERT_NE(claims_, nullptr);
  ExpectValue({Claim({"sub"}, ValueType::kString)}, S("alice"));
  ExpectValue({Claim({"age"}, ValueType::kInt)}, I(42));
  ExpectTrue({Claim({"admin"}, ValueType::kBool)});
  ExpectTrue({Claim({"nothing"}, ValueType::kNull), Null(), O(Op::kEq)});
  ExpectValue({Claim({"exp"}, ValueType::kTimestamp)}, Ts(1700000600));
  ExpectValue({Claim({"iat"}, ValueType::kTimestamp)}, Ts(1699999999));  // floored
  ExpectValue({Claim({"neg_exp"}, ValueType::kTimestamp)}, Ts(-2));
  ExpectValue({Claim({"ttl"}, ValueType::kDuration)}, Dur(300));
  ExpectTrue({Claim({"scopes"}, ValueType::kList), S("read"), S("write"), MakeList(2), O(Op::kEq)});
  ExpectTrue({S("write"), Claim({"scopes"}, ValueType::kList), O(Op::kIn)});
  ExpectValue({Claim({"cnf", "jkt"}, ValueType::kString)}, S("thumb"));
  ExpectValue({Claim({"cnf", "x5t#S256"}, ValueType::kString)}, S("abc"));
  // A claim compared with the request time (exp > now).
  ExpectTrue({Claim({"exp"}, ValueType::kTimestamp), Req(RequestField::kTime), O(Op::kGt)});
  ExpectTrue({HasClaim({"cnf", "jkt"})});
  ExpectFalse({HasClaim({"cnf", "nope"})});
  ExpectFalse({HasClaim({"sub", "deeper"})});
}

TEST_F(VmExpr, ClaimErrors) {
  claims_ = ClaimsOf(R"({"sub": "alice", "age": 42, "scopes": ["a", 1], "big": 18446744073709551615,
                        "huge": 1e300, "f": 1.5, "cnf": {}})");
  ASSERT_NE(claims_, nullptr);
  ExpectError({Claim({"email"}, ValueType::kString), S(""), O(Op::kEq)}, "missing claim `email`");
  ExpectError({Claim({"cnf", "jkt"}, ValueType::kString), S(""), O(Op::kEq)},
              "missing claim `cnf.jkt`");
  ExpectError({Claim({"age"}, ValueType::kString), S(""), O(Op::kEq)},
              "claim `age` is a number, expected string");
  ExpectError({Claim({"sub"}, ValueType::kInt), I(0), O(Op::kEq)},
              "claim `sub` is a string, expected int");
  ExpectError({Claim({"f"}, ValueType::kInt), I(0), O(Op::kEq)},
              "claim `f` is a number, expected int");
  ExpectError({Claim({"big"}, ValueType::kInt), I(0), O(Op::kEq)},
              "claim `big` is a number, expected int");
  ExpectError({Claim({"huge"}, ValueType::kTimestamp), Ts(0), O(Op::kEq)},
              "claim `huge` is a number, expected timestamp");
  ExpectError({Claim({"sub"}, ValueType::kBool)}, "claim `sub` is a string, expected bool");
  ExpectError({Claim({"sub"}, ValueType::kNull), Null(), O(Op::kEq)},
              "claim `sub` is a string, expected null");
  ExpectError({Claim({"cnf"}, ValueType::kList), MakeList(0), O(Op::kEq)},
              "claim `cnf` is an object, expected list");
  ExpectError({Claim({"scopes"}, ValueType::kList), MakeList(0), O(Op::kEq)},
              "claim `scopes` element is a number, expected string");
  ExpectError({Claim({"sub"}, ValueType::kDuration), Dur(0), O(Op::kEq)},
              "claim `sub` is a string, expected duration");
}

TEST_F(VmExpr, NoClaimsProvider) {
  claims_ = nullptr;
  ExpectError({Claim({"sub"}, ValueType::kString), S(""), O(Op::kEq)}, "missing claim `sub`");
  ExpectFalse({HasClaim({"sub"})});
}

TEST_F(VmExpr, JsonValues) {
  claims_ = ClaimsOf(R"({
    "cnf": {"jkt": "thumb"}, "n": 7, "u": 9007199254740993, "f": 2.0, "t": true,
    "arr": ["x", "y", 3], "nums": [1, 2, 3], "nul": null, "s": "str",
    "o1": {"a": 1, "b": [true, null, {"c": "d"}]},
    "o2": {"b": [true, null, {"c": "d"}], "a": 1.0},
    "o3": {"a": 1, "b": [true, null, {"c": "e"}]}
  })");
  ASSERT_NE(claims_, nullptr);
  auto json = [](std::vector<std::string> path) {
    return Claim(std::move(path), ValueType::kJson);
  };
  // FIELD and CONVERT.
  ExpectTrue({json({"cnf"}), Field("jkt"), Convert(ValueType::kString), S("thumb"), O(Op::kEq)});
  ExpectError({json({"cnf"}), Field("nope"), Convert(ValueType::kString), S(""), O(Op::kEq)},
              "missing field `nope`");
  ExpectError({json({"n"}), Field("x"), Convert(ValueType::kString), S(""), O(Op::kEq)},
              "field `x` of a value that is not an object");
  ExpectError({json({"s"}), Convert(ValueType::kInt), I(0), O(Op::kEq)},
              "value is a string, expected int");
  ExpectTrue({json({"nums"}), Convert(ValueType::kList, ValueType::kInt), I(1), I(2), I(3),
              MakeList(3), O(Op::kEq)});
  ExpectError(
      {json({"arr"}), Convert(ValueType::kList, ValueType::kString), MakeList(0), O(Op::kEq)},
      "value element is a number, expected string");
  // Conversion of a typed value: same kind passes, others are errors.
  ExpectTrue({S("a"), Convert(ValueType::kString), S("a"), O(Op::kEq)});
  ExpectError({S("a"), Convert(ValueType::kInt), I(0), O(Op::kEq)}, "cannot convert string to int");
  // INDEX on a JSON array.
  ExpectTrue({json({"arr"}), I(1), O(Op::kIndex), S("y"), O(Op::kEq)});
  ExpectError({json({"arr"}), I(3), O(Op::kIndex), S("y"), O(Op::kEq)}, "index out of range");
  ExpectError({json({"cnf"}), I(0), O(Op::kIndex), S("y"), O(Op::kEq)},
              "cannot index a value that is not a list");
  // JSON against typed values: by value when the JSON type matches.
  ExpectTrue({json({"s"}), S("str"), O(Op::kEq)});
  ExpectTrue({S("str"), json({"s"}), O(Op::kEq)});
  ExpectFalse({json({"n"}), S("7"), O(Op::kEq)});
  ExpectTrue({json({"n"}), I(7), O(Op::kEq)});
  ExpectFalse({json({"f"}), I(2), O(Op::kEq)});  // a double is not an int
  ExpectTrue({json({"t"}), B(true), O(Op::kEq)});
  ExpectTrue({json({"nul"}), Null(), O(Op::kEq)});
  ExpectTrue({Null(), json({"nul"}), O(Op::kEq)});
  ExpectFalse({json({"s"}), Null(), O(Op::kEq)});
  ExpectError({json({"n"}), Dur(7), O(Op::kEq)}, "type mismatch: json and duration");
  ExpectError({json({"arr"}), S("x"), MakeList(1), O(Op::kEq)}, "type mismatch: json and list");
  // JSON against JSON: structural, numbers by value, key order ignored.
  ExpectTrue({json({"o1"}), json({"o2"}), O(Op::kEq)});
  ExpectFalse({json({"o1"}), json({"o3"}), O(Op::kEq)});
  ExpectFalse({json({"n"}), json({"s"}), O(Op::kEq)});
  ExpectTrue({json({"n"}), json({"n"}), O(Op::kEq)});
  ExpectFalse({json({"u"}), json({"n"}), O(Op::kEq)});
  // IN over a JSON array, and len of JSON.
  ExpectTrue({S("y"), json({"arr"}), O(Op::kIn)});
  ExpectTrue({I(3), json({"arr"}), O(Op::kIn)});
  ExpectFalse({S("z"), json({"arr"}), O(Op::kIn)});
  ExpectTrue({json({"arr"}), Call(Builtin::kLen), I(3), O(Op::kEq)});
  ExpectTrue({json({"o1"}), Call(Builtin::kLen), I(2), O(Op::kEq)});
  ExpectTrue({json({"s"}), Call(Builtin::kLen), I(3), O(Op::kEq)});
  ExpectError({json({"n"}), Call(Builtin::kLen), I(3), O(Op::kEq)},
              "wrong argument types for `len`");
  ExpectTrue({json({"arr"}), S("x"), Call(Builtin::kContains)});
}

TEST_F(VmExpr, DeepJsonCompare) {
  std::string deep;
  for (int k = 0; k < 60; ++k) deep += "[";
  for (int k = 0; k < 60; ++k) deep += "]";
  claims_ = ClaimsOf("{\"a\":" + deep + ",\"b\":" + deep + "}");
  ASSERT_NE(claims_, nullptr);
  ExpectTrue({Claim({"a"}, ValueType::kJson), Claim({"b"}, ValueType::kJson), O(Op::kEq)});
}

// ---- Rules, denies, errors ----

Out Decide(const Bundle& bundle, std::string_view method, std::string_view target,
           std::vector<HeaderField> headers = {}, const ClaimsProvider* claims = nullptr) {
  HttpRequest req;
  req.method = method;
  req.target = target;
  req.headers = headers;
  EvalScratch scratch;
  return Copy(DecideRequest(bundle, req, claims, scratch));
}

TEST(Vm, DenyByRuleAndFirstUnmetRequirement) {
  Builder b;
  uint32_t r1 = b.Rule({"t.one", 401, "invalid_token", "token missing"});
  uint32_t r2 = b.Rule({"t.two", 403, "access_denied", "not the owner"});
  b.Route("t", "GET", "/t",
          {Raw(Op::kRule, 0, 0, r1), Has(Source::kHeader, "authorization"),
           Raw(Op::kRequire, 0, 0, r1), Raw(Op::kRule, 0, 0, r2), Header("x-owner"), S("me"),
           O(Op::kEq), Raw(Op::kRequire, 0, 0, r2), Raw(Op::kAllow)});
  b.Route("d", "GET", "/d", {Raw(Op::kDeny, 0, 0, r2)});
  auto bundle = b.Load();
  ASSERT_NE(bundle, nullptr);

  Out none = Decide(*bundle, "GET", "/t");
  EXPECT_FALSE(none.allow);
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(none.error, "invalid_token");
  EXPECT_EQ(none.rule, "t.one");
  EXPECT_EQ(none.route, "t");
  EXPECT_EQ(none.description, "token missing");

  Out other = Decide(*bundle, "GET", "/t", {{"Authorization", "x"}, {"X-Owner", "you"}});
  EXPECT_EQ(other.status, 403);
  EXPECT_EQ(other.rule, "t.two");
  EXPECT_EQ(other.description, "not the owner");
  EXPECT_TRUE(other.headers.empty());

  Out ok = Decide(*bundle, "GET", "/t", {{"Authorization", "x"}, {"X-Owner", "me"}});
  EXPECT_TRUE(ok.allow);
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.description, "allowed");
  EXPECT_EQ(ok.error, "");
  EXPECT_EQ(ok.rule, "");
  EXPECT_EQ(ok.route, "t");

  // Evaluation error in rule two: its status and error, fail closed.
  Out missing = Decide(*bundle, "GET", "/t", {{"Authorization", "x"}});
  EXPECT_FALSE(missing.allow);
  EXPECT_EQ(missing.status, 403);
  EXPECT_EQ(missing.rule, "t.two");
  EXPECT_EQ(missing.description, "not the owner (evaluation error: missing header `x-owner`)");

  Out d = Decide(*bundle, "GET", "/d");
  EXPECT_FALSE(d.allow);
  EXPECT_EQ(d.rule, "t.two");
  EXPECT_EQ(d.route, "d");
}

TEST(Vm, ErrorBeforeAnyRule) {
  Builder b;
  b.Route("t", "GET", "/t", {Header("x"), O(Op::kPop), Raw(Op::kAllow)});
  auto bundle = b.Load();
  ASSERT_NE(bundle, nullptr);
  Out o = Decide(*bundle, "GET", "/t");
  EXPECT_FALSE(o.allow);
  EXPECT_EQ(o.status, 403);
  EXPECT_EQ(o.error, "access_denied");
  EXPECT_EQ(o.rule, "vakt.eval");
  EXPECT_EQ(o.description, "evaluation error: missing header `x`");
  EXPECT_TRUE(Decide(*bundle, "GET", "/t", {{"X", "1"}}).allow);
}

TEST(Vm, WwwAuthenticate) {
  Builder b;
  uint32_t r401 = b.Rule({"a.token", 401, "invalid_token", "token \"expired\"\r\n at \\ now"});
  uint32_t r401bare = b.Rule({"a.bare", 401, "", "no token"});
  uint32_t r403scope = b.Rule({"a.scope", 403, "insufficient_scope", "needs scope `write`"});
  uint32_t r403 = b.Rule({"a.owner", 403, "access_denied", "not yours"});
  b.Route("a", "GET", "/a", {Raw(Op::kDeny, 0, 0, r401)});
  b.Route("b", "GET", "/b", {Raw(Op::kDeny, 0, 0, r401bare)});
  b.Route("c", "GET", "/c", {Raw(Op::kDeny, 0, 0, r403scope)});
  b.Route("d", "GET", "/d", {Raw(Op::kDeny, 0, 0, r403)});
  b.Route("e", "GET", "/e",
          {Raw(Op::kRule, 0, 0, r401), Header("authorization"), O(Op::kPop), Raw(Op::kAllow)});
  auto bundle = b.Load();
  ASSERT_NE(bundle, nullptr);

  Out a = Decide(*bundle, "GET", "/a");
  ASSERT_EQ(a.headers.size(), 1u);
  EXPECT_EQ(a.headers[0].first, "WWW-Authenticate");
  EXPECT_EQ(
      a.headers[0].second,
      "Bearer error=\"invalid_token\", error_description=\"token \\\"expired\\\" at \\\\ now\"");
  Out bare = Decide(*bundle, "GET", "/b");
  ASSERT_EQ(bare.headers.size(), 1u);
  EXPECT_EQ(bare.headers[0].second, "Bearer");
  Out c = Decide(*bundle, "GET", "/c");
  ASSERT_EQ(c.headers.size(), 1u);
  EXPECT_EQ(c.headers[0].second,
            "Bearer error=\"insufficient_scope\", error_description=\"needs scope `write`\"");
  EXPECT_TRUE(Decide(*bundle, "GET", "/d").headers.empty());
  Out e = Decide(*bundle, "GET", "/e");
  EXPECT_EQ(e.status, 401);
  ASSERT_EQ(e.headers.size(), 1u);
  EXPECT_EQ(e.headers[0].second,
            "Bearer error=\"invalid_token\", error_description=\"token \\\"expired\\\" at \\\\ now "
            "(evaluation error: missing header `authorization`)\"");
}

TEST(Vm, LongMessagesAreBounded) {
  Builder b;
  std::string msg(5000, 'm');
  msg[10] = '"';
  uint32_t r = b.Rule({"a.long", 401, "invalid_token", msg});
  b.Route("a", "GET", "/a", {Raw(Op::kRule, 0, 0, r), Header("x"), O(Op::kPop), Raw(Op::kAllow)});
  auto bundle = b.Load();
  ASSERT_NE(bundle, nullptr);
  Out o = Decide(*bundle, "GET", "/a");
  EXPECT_EQ(o.status, 401);
  EXPECT_LE(o.description.size(), 1024u);
  EXPECT_EQ(o.description.substr(0, 100), msg.substr(0, 100));
  ASSERT_EQ(o.headers.size(), 1u);
  const std::string& h = o.headers[0].second;
  EXPECT_LE(h.size(), 1536u);
  EXPECT_EQ(h.back(), '"');  // still a well-formed quoted-string
  EXPECT_NE(h.find("mmmmmmmmmm\\\"m"), std::string::npos);
}

// ---- Routing ----

class Routing : public ::testing::Test {
 protected:
  void SetUp() override {
    Builder b;
    uint32_t r = b.Rule({"r.params", 403, "access_denied", "wrong params"});
    b.Route("root", "GET", "/", {Raw(Op::kAllow)});
    b.Route("records.latest", "GET", "/v1/records/latest", {Raw(Op::kAllow)});
    b.Route("records.get", "GET", "/v1/records/{id:[a-z0-9-]+}", {Raw(Op::kAllow)});
    b.Route("records.put", "PUT", "/v1/records/{id:[a-z0-9-]+}", {Raw(Op::kAllow)});
    b.Route("notes.get", "GET", "/v1/records/{id:[a-z0-9-]+}/notes/{note}",
            {Raw(Op::kRule, 0, 0, r), Param(0), S("r-1"), O(Op::kEq), Raw(Op::kRequire, 0, 0, r),
             First(Source::kParam, "ignored"), S("r-1"), O(Op::kEq), Raw(Op::kRequire, 0, 0, r),
             Param(1), S("n 2"), O(Op::kEq), Raw(Op::kRequire, 0, 0, r), Has(Source::kParam, ""),
             Raw(Op::kRequire, 0, 0, r), Raw(Op::kAllow)});
    b.Route("users.me", "GET", "/v1/users/me", {Raw(Op::kAllow)});
    b.Route("users.any", "GET", "/v1/users/{name}/x", {Raw(Op::kAllow)});
    // First(Source::kParam, name) encodes c as a string index; fix it to 0.
    for (Instr& in : b.data().code) {
      if (in.op == Op::kLoadFirst || in.op == Op::kHas) in.c = 0;
    }
    bundle_ = b.Load();
    ASSERT_NE(bundle_, nullptr);
  }
  Out Get(std::string_view target, std::string_view method = "GET") {
    return Decide(*bundle_, method, target);
  }
  std::shared_ptr<const Bundle> bundle_;
};

TEST_F(Routing, LiteralBeatsParam) {
  EXPECT_EQ(Get("/v1/records/latest").route, "records.latest");
  EXPECT_EQ(Get("/v1/records/r-1").route, "records.get");
  EXPECT_EQ(Get("/v1/records/r-1", "PUT").route, "records.put");
  EXPECT_EQ(Get("/").route, "root");
  EXPECT_EQ(Get("//v1//records/latest/").route, "records.latest");
  EXPECT_TRUE(Get("/v1/records/r-1").allow);
}

TEST_F(Routing, ParamsBoundInOrder) {
  Out o = Get("/v1/records/r-1/notes/n%202");
  EXPECT_TRUE(o.allow) << o.description;
  EXPECT_EQ(o.route, "notes.get");
  Out bad = Get("/v1/records/r-2/notes/n%202");
  EXPECT_FALSE(bad.allow);
  EXPECT_EQ(bad.rule, "r.params");
}

TEST_F(Routing, NotFound) {
  auto expect404 = [&](std::string_view target, std::string_view method = "GET") {
    Out o = Get(target, method);
    EXPECT_FALSE(o.allow) << target;
    EXPECT_EQ(o.status, 404) << target;
    EXPECT_EQ(o.error, "not_found");
    EXPECT_EQ(o.rule, "vakt.route");
    EXPECT_EQ(o.route, "");
    return o;
  };
  Out o = expect404("/v1/nothing");
  EXPECT_EQ(o.description, "no route for `GET /v1/nothing`");
  expect404("/v1/records/R-1");            // shape mismatch
  expect404("/v1/records/r_1");            // shape mismatch
  expect404("/v1/records/r-1", "DELETE");  // unknown method
  expect404("/v1/records/r-1", "get");     // methods are case-sensitive
  expect404("/v1/records");                // no route ends here
  expect404("/v1/records/r-1/notes");      // nor here
  expect404("/v1/records/r-1/notes/a/b");  // too deep
  // No backtracking: the literal "latest" is taken and has no "notes".
  expect404("/v1/records/latest/notes/n");
  // Likewise "me" is taken literally, although {name}/x would match.
  expect404("/v1/users/me/x");
  EXPECT_TRUE(Get("/v1/users/you/x").allow);
  // Long paths are truncated in the description.
  std::string long_path = "/v1/" + std::string(1000, 'z');
  Out l = expect404(long_path);
  EXPECT_EQ(l.description, "no route for `GET /v1/" + std::string(252, 'z') + "...`");
}

TEST_F(Routing, NormalisationRefusals) {
  Out bad = Get("/v1/records/%2e%2e");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.error, "invalid_request");
  EXPECT_EQ(bad.rule, "vakt.request");
  EXPECT_EQ(bad.description, "dot segment in path");
  EXPECT_EQ(bad.route, "");
  EXPECT_EQ(Get("/a%2fb").description, "encoded slash in path");
  EXPECT_EQ(Get("/", "BAD METHOD").status, 400);
  Out long_target = Get("/" + std::string(kMaxTargetBytes, 'a'));
  EXPECT_EQ(long_target.status, 414);
  EXPECT_EQ(long_target.description, "request target too long");
  std::vector<HeaderField> many(kMaxHeaders + 1, HeaderField{"a", "b"});
  Out big = Decide(*bundle_, "GET", "/", many);
  EXPECT_EQ(big.status, 431);
  EXPECT_EQ(big.error, "invalid_request");
  EXPECT_EQ(big.description, "too many headers");
}

TEST(Vm, EmptyTrieRoot) {
  // A bundle whose only route is elsewhere: the root has no methods.
  Builder b;
  b.Route("x", "GET", "/x", {Raw(Op::kAllow)});
  auto bundle = b.Load();
  ASSERT_NE(bundle, nullptr);
  EXPECT_EQ(Decide(*bundle, "GET", "/").status, 404);
  EXPECT_EQ(Decide(*bundle, "GET", "/y").status, 404);
  EXPECT_TRUE(Decide(*bundle, "GET", "/x").allow);
}

// ---- Responses ----

TEST(Vm, DecideResponse) {
  Builder b;
  uint32_t r = b.Rule({"resp.ok", 502, "bad_gateway", "upstream response refused"});
  b.Route("plain", "GET", "/plain", {Raw(Op::kAllow)});
  b.Route("checked", "GET", "/checked", {Raw(Op::kAllow)},
          {Raw(Op::kRule, 0, 0, r),
           Resp(ResponseField::kStatus),
           I(200),
           O(Op::kEq),
           Raw(Op::kRequire, 0, 0, r),
           First(Source::kResponseHeader, "content-type"),
           S("application/json"),
           O(Op::kEq),
           Raw(Op::kRequire, 0, 0, r),
           Resp(ResponseField::kBody),
           S("secret"),
           Call(Builtin::kContains),
           O(Op::kNot),
           Raw(Op::kRequire, 0, 0, r),
           All(Source::kResponseHeader, "set-cookie"),
           Call(Builtin::kLen),
           I(2),
           O(Op::kEq),
           Raw(Op::kRequire, 0, 0, r),
           Has(Source::kResponseHeader, "x-none"),
           O(Op::kNot),
           Raw(Op::kRequire, 0, 0, r),
           Raw(Op::kAllow)});
  auto bundle = b.Load();
  ASSERT_NE(bundle, nullptr);
  HttpRequest req;
  req.method = "GET";
  req.target = "/checked";
  std::vector<HeaderField> hs = {
      {"Content-Type", "application/json"}, {"Set-Cookie", "a"}, {"set-cookie", "b"}};
  HttpResponse resp;
  resp.status = 200;
  resp.headers = hs;
  resp.body = "{\"ok\":true}";
  EvalScratch scratch;
  Out ok = Copy(DecideResponse(*bundle, req, nullptr, resp, scratch));
  EXPECT_TRUE(ok.allow) << ok.description;
  EXPECT_EQ(ok.route, "checked");

  resp.body = "a secret";
  Out leak = Copy(DecideResponse(*bundle, req, nullptr, resp, scratch));
  EXPECT_FALSE(leak.allow);
  EXPECT_EQ(leak.status, 502);
  EXPECT_EQ(leak.rule, "resp.ok");

  resp.body = "";
  resp.status = 500;
  EXPECT_EQ(Copy(DecideResponse(*bundle, req, nullptr, resp, scratch)).status, 502);

  std::vector<HeaderField> none;
  resp.status = 200;
  resp.headers = none;
  Out missing = Copy(DecideResponse(*bundle, req, nullptr, resp, scratch));
  EXPECT_EQ(missing.description,
            "upstream response refused (evaluation error: missing header `content-type`)");

  // No response program: allow. Routing still applies.
  req.target = "/plain";
  EXPECT_TRUE(DecideResponse(*bundle, req, nullptr, resp, scratch).allow);
  req.target = "/nope";
  EXPECT_EQ(DecideResponse(*bundle, req, nullptr, resp, scratch).status, 404);
  // The request program of the checked route does not see a response.
  req.target = "/checked";
  EXPECT_TRUE(DecideRequest(*bundle, req, nullptr, scratch).allow);
}

// ---- DecisionToJson ----

TEST(Vm, DecisionToJson) {
  Decision allow;
  allow.allow = true;
  allow.status = 200;
  allow.description = "allowed";
  allow.route = "records.get";
  EXPECT_EQ(DecisionToJson(allow),
            R"({"decision":"allow","status":200,"error":"","error_description":"allowed",)"
            R"("rule":"","route":"records.get","headers":{}})");

  Decision deny;
  deny.status = 401;
  deny.error = "invalid_token";
  const std::string description =
      "q\"b\\s\n\t\x01\x1f\x7f \xC3\xA9 \xFF \xE2\x82 \xF0\x9F\x98\x80 \xC0\xAF";
  deny.description = description;
  deny.rule = "a.b";
  deny.headers[0] = {"WWW-Authenticate", "Bearer error=\"invalid_token\""};
  deny.headers[1] = {"X-Other", "v"};
  deny.header_count = 2;
  EXPECT_EQ(DecisionToJson(deny),
            "{\"decision\":\"deny\",\"status\":401,\"error\":\"invalid_token\","
            "\"error_description\":\"q\\\"b\\\\s\\u000a\\u0009\\u0001\\u001f\x7f \xC3\xA9 "
            "\xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD \xF0\x9F\x98\x80 \xEF\xBF\xBD\xEF\xBF\xBD\","
            "\"rule\":\"a.b\",\"route\":\"\",\"headers\":{\"WWW-Authenticate\":"
            "\"Bearer error=\\\"invalid_token\\\"\",\"X-Other\":\"v\"}}");
}

// ---- JsonClaims ----

TEST(JsonClaimsTest, Paths) {
  auto c = ClaimsOf(R"({"a": {"b": {"c": 1}}, "x": [1], "k.dot": "v"})");
  ASSERT_NE(c, nullptr);
  simdjson::dom::element e;
  std::vector<std::string_view> abc = {"a", "b", "c"};
  ASSERT_TRUE(c->Find(abc, &e));
  EXPECT_EQ(e.get_int64().value_unsafe(), 1);
  std::vector<std::string_view> ab = {"a", "b"};
  ASSERT_TRUE(c->Find(ab, &e));
  EXPECT_TRUE(e.is_object());
  std::vector<std::string_view> abcd = {"a", "b", "c", "d"};
  EXPECT_FALSE(c->Find(abcd, &e));
  std::vector<std::string_view> x0 = {"x", "0"};
  EXPECT_FALSE(c->Find(x0, &e));  // arrays are not walked by key
  std::vector<std::string_view> dot = {"k.dot"};
  EXPECT_TRUE(c->Find(dot, &e));
  std::vector<std::string_view> upper = {"A"};
  EXPECT_FALSE(c->Find(upper, &e));  // case-sensitive
  EXPECT_TRUE(c->Find({}, &e));      // the root
}

TEST(JsonClaimsTest, Errors) {
  auto arr = JsonClaims::Parse("[1]");
  ASSERT_FALSE(arr.ok());
  EXPECT_EQ(arr.status().message(), "claims: expected a JSON object, got an array");
  auto bad = JsonClaims::Parse("{\"a\":");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message().rfind("claims: malformed JSON: ", 0), 0u);
  std::string deep = "{\"a\":";
  for (int k = 0; k < 100; ++k) deep += "[";
  for (int k = 0; k < 100; ++k) deep += "]";
  deep += "}";
  EXPECT_FALSE(JsonClaims::Parse(deep).ok());
  EXPECT_FALSE(JsonClaims::Parse("").ok());
}

// ---- The warm path allocates nothing ----

// A FAPI-like route with ten requirements: header, claim, param, time,
// JSON field, split + in, list claims, query and shaped-parameter dispatch.
std::shared_ptr<const Bundle> RealisticBundle() {
  Builder b;
  std::vector<uint32_t> r;
  for (int k = 0; k < 10; ++k) {
    r.push_back(b.Rule({"acct.r" + std::to_string(k), static_cast<uint16_t>(k < 3 ? 401 : 403),
                        k < 3 ? "invalid_token" : "insufficient_scope",
                        "requirement " + std::to_string(k)}));
  }
  auto req = [&](int k, Code expr) {
    Code c = {Raw(Op::kRule, 0, 0, r[static_cast<size_t>(k)])};
    c.insert(c.end(), expr.begin(), expr.end());
    c.push_back(Raw(Op::kRequire, 0, 0, r[static_cast<size_t>(k)]));
    return c;
  };
  Code prog;
  auto add = [&](Code c) { prog.insert(prog.end(), c.begin(), c.end()); };
  add(req(0, {Header("authorization"), S("Bearer "), Call(Builtin::kStartsWith)}));
  add(req(1, {Claim({"exp"}, ValueType::kTimestamp), Req(RequestField::kTime), O(Op::kGt)}));
  add(req(2, {Claim({"iss"}, ValueType::kString), S("https://issuer.example"), O(Op::kEq)}));
  add(req(3, {S("accounts:read"), Claim({"scope"}, ValueType::kString), S(" "),
              Call(Builtin::kSplit), O(Op::kIn)}));
  add(req(4, {Claim({"sub"}, ValueType::kString), Param(0), O(Op::kEq)}));
  add(req(5, {Claim({"cnf"}, ValueType::kJson), Field("jkt"), Convert(ValueType::kString),
              Header("dpop-jkt"), O(Op::kEq)}));
  add(req(6, {S("fapi"), Claim({"acr"}, ValueType::kList), O(Op::kIn)}));
  add(req(7, {Query("page"), S("1"), O(Op::kEq), Raw(Op::kJumpIfTrueOrPop, 0, 0, 0),
              Has(Source::kHeader, "x-fapi-interaction-id")}));
  add(req(8, {Req(RequestField::kTime), Claim({"iat"}, ValueType::kTimestamp), O(Op::kSub),
              Dur(3600), O(Op::kLt)}));
  add(req(9, {Header("x-fapi-interaction-id"), Call(Builtin::kLen), I(0), O(Op::kGt), Param(1),
              Match("^[0-9]+$"), O(Op::kEq)}));
  prog.push_back(Raw(Op::kAllow));
  // Patch the jump in requirement 7 to land just after its right operand.
  for (size_t pc = 0; pc < prog.size(); ++pc) {
    if (prog[pc].in.op == Op::kJumpIfTrueOrPop) prog[pc].in.c = static_cast<uint32_t>(pc + 2);
  }
  b.Route("accounts.tx", "GET", "/v1/accounts/{account:[a-z0-9-]+}/transactions/{tx:[0-9]+}", prog);
  b.Route("accounts.list", "GET", "/v1/accounts", {Raw(Op::kAllow)});
  return b.Load();
}

constexpr char kRealisticClaims[] = R"({
  "iss": "https://issuer.example", "sub": "acc-1", "exp": 1700000600, "iat": 1699999000,
  "scope": "openid accounts:read payments:write", "acr": ["urn:x", "fapi"],
  "cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}
})";

struct RealisticRequest {
  std::vector<HeaderField> headers = {
      {"Authorization", "Bearer eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl"},
      {"DPoP-JKT", "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"},
      {"X-FAPI-Interaction-ID", "93bac548-d2de-4546-b106-880a5018460d"},
      {"Accept", "application/json"},
      {"User-Agent", "test/1.0"}};
  HttpRequest req;
  RealisticRequest(std::string_view target = "/v1/accounts/acc-1/transactions/42?page=1") {
    req.method = "GET";
    req.target = target;
    req.headers = headers;
    req.time = 1700000000;
  }
};

TEST(Vm, RealisticRouteAllowsAndDenies) {
  auto bundle = RealisticBundle();
  ASSERT_NE(bundle, nullptr);
  auto claims = ClaimsOf(kRealisticClaims);
  ASSERT_NE(claims, nullptr);
  EvalScratch scratch;
  RealisticRequest ok;
  Out o = Copy(DecideRequest(*bundle, ok.req, claims.get(), scratch));
  EXPECT_TRUE(o.allow) << o.description;
  RealisticRequest other("/v1/accounts/acc-2/transactions/42?page=1");
  Out d = Copy(DecideRequest(*bundle, other.req, claims.get(), scratch));
  EXPECT_FALSE(d.allow);
  EXPECT_EQ(d.rule, "acct.r4");
  EXPECT_EQ(d.status, 403);
  ASSERT_EQ(d.headers.size(), 1u);  // insufficient_scope
  RealisticRequest nontx("/v1/accounts/acc-1/transactions/4x2");
  EXPECT_EQ(DecideRequest(*bundle, nontx.req, claims.get(), scratch).status, 404);
  EXPECT_EQ(DecideRequest(*bundle, ok.req, nullptr, scratch).status, 401);
}

TEST(Vm, WarmDecisionsDoNotAllocate) {
  auto bundle = RealisticBundle();
  ASSERT_NE(bundle, nullptr);
  auto claims = ClaimsOf(kRealisticClaims);
  ASSERT_NE(claims, nullptr);
  RealisticRequest ok;
  RealisticRequest deny("/v1/accounts/acc-2/transactions/7?page=2");
  // The counter works: a cold scratch allocates.
  uint64_t cold = g_allocations.load();
  EvalScratch scratch;
  EXPECT_GT(g_allocations.load(), cold);
  // Warm-up: the first decisions size the scratch's vectors.
  ASSERT_TRUE(DecideRequest(*bundle, ok.req, claims.get(), scratch).allow);
  ASSERT_FALSE(DecideRequest(*bundle, deny.req, claims.get(), scratch).allow);
  uint64_t before = g_allocations.load();
  int allowed = 0;
  for (int k = 0; k < 1000; ++k) {
    if (DecideRequest(*bundle, (k % 10 == 9) ? deny.req : ok.req, claims.get(), scratch).allow) {
      ++allowed;
    }
  }
  uint64_t after = g_allocations.load();
  EXPECT_EQ(after - before, 0u) << "heap allocations in 1000 warm decisions";
  EXPECT_EQ(allowed, 900);
}

// ---- Concurrency ----

TEST(Vm, ManyThreadsShareOneBundle) {
  auto bundle = RealisticBundle();
  ASSERT_NE(bundle, nullptr);
  auto claims = ClaimsOf(kRealisticClaims);
  ASSERT_NE(claims, nullptr);
  constexpr int kThreads = 8;
  constexpr int kDecisions = 10000;
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      EvalScratch scratch;  // one per thread
      RealisticRequest ok;
      RealisticRequest other("/v1/accounts/acc-2/transactions/42?page=1");
      RealisticRequest missing("/v1/accounts");
      for (int k = 0; k < kDecisions; ++k) {
        int kind = (k + t) % 3;
        const HttpRequest& req = kind == 0 ? ok.req : kind == 1 ? other.req : missing.req;
        Decision d = DecideRequest(*bundle, req, claims.get(), scratch);
        bool good = kind == 0   ? d.allow && d.route == "accounts.tx"
                    : kind == 1 ? !d.allow && d.rule == "acct.r4" && d.status == 403
                                : d.allow && d.route == "accounts.list";
        if (!good) wrong.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace vakt::bytecode
