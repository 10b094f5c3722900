// Tests for the bytecode verifier (bytecode/verifier.cc). For each rule of
// the verifier's contract there is a minimal BundleData that breaks only that
// rule, and an assertion on the error code and message fragment; on the
// positive side, programs using every opcode (and every operand form) pass.
#include "bytecode/verifier.h"

#include <gtest/gtest.h>

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "bytecode/bundle.h"
#include "bytecode/format.h"
#include "bytecode/schema.h"

namespace vakt::bytecode {
namespace {

Instr I(Op op, uint8_t a = 0, uint16_t b = 0, uint32_t c = 0) { return Instr{op, a, b, c}; }
uint8_t A(Source s) { return static_cast<uint8_t>(s); }
uint8_t A(ValueType t) { return static_cast<uint8_t>(t); }
uint8_t A(Builtin b) { return static_cast<uint8_t>(b); }
uint8_t A(RequestField f) { return static_cast<uint8_t>(f); }
uint8_t A(ResponseField f) { return static_cast<uint8_t>(f); }

// String indices of the base bundle.
enum : uint32_t {
  kEmpty = 0,
  kGet,
  kPost,
  kRouteName,
  kPath,
  kRuleId,
  kError,
  kMessage,
  kSegment,
  kPattern,
  kParamName,
  kHeaderName,
  kClaimPart,
  kStringCount
};

// A minimal valid bundle: one GET route whose request program is `req`
// (and response program `resp` if non-empty), with `params` path
// parameters; the trie is a chain of `params` parameter nodes from the root
// with the route's method entry on the last one.
BundleData Make(std::vector<Instr> req = {I(Op::kAllow)}, std::vector<Instr> resp = {},
                uint32_t params = 0) {
  BundleData d;
  d.name = "t";
  d.compiler_version = "test";
  d.strings = {"",    "GET", "POST",     "r", "/",   "rule.id", "err",
               "msg", "seg", "^[a-z]+$", "p", "x-h", "scope"};
  d.ints = {42};
  d.regexes = {kPattern};
  d.claim_paths = {{kClaimPart}};
  d.rules = {RuleRecord{kRuleId, kError, kMessage, 403, 0}};
  for (uint32_t i = 0; i < params; ++i) d.params.push_back(ParamRecord{kParamName, 0});
  RouteRecord r{};
  r.name = kRouteName;
  r.method = kGet;
  r.path_template = kPath;
  r.first_param = 0;
  r.param_count = params;
  r.request_code = 0;
  r.request_len = static_cast<uint32_t>(req.size());
  r.response_code = static_cast<uint32_t>(req.size());
  r.response_len = static_cast<uint32_t>(resp.size());
  r.cost = r.request_len + r.response_len;
  d.routes = {r};
  d.max_route_cost = 1000;
  d.code = req;
  d.code.insert(d.code.end(), resp.begin(), resp.end());
  for (uint32_t i = 0; i <= params; ++i) {
    TrieNode n{0, 0, kNone, kNone, 0, 0};
    if (i < params) {
      n.param_child = i + 1;
      n.param_shape = 0;
    } else {
      n.first_method = 0;
      n.method_count = 1;
    }
    d.nodes.push_back(n);
  }
  d.methods = {TrieMethod{kGet, 0}};
  return d;
}

::testing::AssertionResult Rejected(const BundleData& d, const std::string& fragment) {
  Status s = Verify(d);
  if (s.ok()) return ::testing::AssertionFailure() << "verified, expected `" << fragment << "`";
  if (s.code() != StatusCode::kCorruption) {
    return ::testing::AssertionFailure() << "wrong code: " << s.ToString();
  }
  if (s.message().find(fragment) == std::string::npos) {
    return ::testing::AssertionFailure()
           << "message `" << s.message() << "` lacks `" << fragment << "`";
  }
  return ::testing::AssertionSuccess() << s.message();
}

::testing::AssertionResult Verified(const BundleData& d) {
  Status s = Verify(d);
  if (!s.ok()) return ::testing::AssertionFailure() << s.ToString();
  return ::testing::AssertionSuccess();
}

// Request program that checks `in` in isolation: [in..., ALLOW].
BundleData Req(std::vector<Instr> ins, uint32_t params = 1) {
  ins.push_back(I(Op::kAllow));
  return Make(std::move(ins), {}, params);
}

// ---- Positive side ----------------------------------------------------------

TEST(VerifierTest, MinimalBundleVerifies) { EXPECT_TRUE(Verified(Make())); }

TEST(VerifierTest, EmptyRouteTableVerifies) {
  BundleData d = Make();
  d.routes.clear();
  d.code.clear();
  d.methods.clear();
  d.nodes = {TrieNode{0, 0, kNone, kNone, 0, 0}};
  EXPECT_TRUE(Verified(d));
}

// A request and a response program between them use every opcode and
// every operand form; the test checks that they do.
TEST(VerifierTest, EveryOpcodeVerifies) {
  std::vector<Instr> p;
  auto here = [&] { return static_cast<uint32_t>(p.size()); };
  auto net0 = [&](std::initializer_list<Instr> ins) { p.insert(p.end(), ins); };
  p.push_back(I(Op::kRule, 0, 0, 0));
  p.push_back(I(Op::kNop));
  net0({I(Op::kPushNull), I(Op::kPop)});
  net0({I(Op::kPushBool, 1), I(Op::kRequire, 0, 0, 0)});
  net0({I(Op::kPushBool, 0), I(Op::kNot), I(Op::kPop)});
  for (ValueType t : {ValueType::kInt, ValueType::kDuration, ValueType::kTimestamp}) {
    net0({I(Op::kPushInt, A(t), 0, 0), I(Op::kNeg), I(Op::kPop)});
  }
  for (Op op : {Op::kEq, Op::kNe, Op::kLt, Op::kLe, Op::kGt, Op::kGe, Op::kAdd, Op::kSub, Op::kMul,
                Op::kDiv, Op::kMod, Op::kIn, Op::kIndex}) {
    net0({I(Op::kPushInt, A(ValueType::kInt), 0, 0), I(Op::kPushInt, A(ValueType::kInt), 0, 0),
          I(op), I(Op::kPop)});
  }
  for (uint8_t f = 0; f < kRequestFieldCount; ++f) net0({I(Op::kLoadReq, f), I(Op::kPop)});
  net0({I(Op::kLoadParam, 0, 0, 0), I(Op::kMatch, 0, 0, 0), I(Op::kPop)});
  net0({I(Op::kPushStr, 0, 0, kHeaderName), I(Op::kField, 0, 0, kClaimPart), I(Op::kPop)});
  for (uint8_t t = 0; t < kValueTypeCount; ++t) {
    net0({I(Op::kPushStr, 0, 0, kEmpty), I(Op::kConvert, t, A(ValueType::kString)), I(Op::kPop)});
    net0({I(Op::kLoadFirst, A(Source::kClaim), t, 0), I(Op::kPop)});
  }
  net0({I(Op::kLoadFirst, A(Source::kHeader), 0, kHeaderName), I(Op::kPop)});
  net0({I(Op::kLoadFirst, A(Source::kQuery), 0, kHeaderName), I(Op::kPop)});
  net0({I(Op::kLoadFirst, A(Source::kParam), 0, 1), I(Op::kPop)});
  net0({I(Op::kLoadAll, A(Source::kHeader), 0, kHeaderName), I(Op::kPop)});
  net0({I(Op::kLoadAll, A(Source::kQuery), 0, kHeaderName), I(Op::kPop)});
  for (Source s : {Source::kHeader, Source::kQuery, Source::kClaim, Source::kParam}) {
    net0({I(Op::kHas, A(s), 0, 0), I(Op::kPop)});
  }
  const uint8_t arity[] = {2, 2, 2, 1, 1, 1, 2, 1};
  for (uint8_t b = 0; b < kBuiltinCount; ++b) {
    for (int k = 0; k < arity[b]; ++k) p.push_back(I(Op::kPushStr, 0, 0, kSegment));
    net0({I(Op::kCall, b, arity[b]), I(Op::kPop)});
  }
  net0({I(Op::kPushNull), I(Op::kPushNull), I(Op::kPushNull), I(Op::kMakeList, 0, 0, 3),
        I(Op::kPop)});
  net0({I(Op::kMakeList, 0, 0, 0), I(Op::kPop)});
  net0({I(Op::kPushStr, 0, 0, kSegment), I(Op::kRelation, 0, 0, 0), I(Op::kPop)});
  net0({I(Op::kPushStr, 0, 0, kSegment), I(Op::kRelation, 1, 0, 0), I(Op::kPop)});
  net0({I(Op::kCheckBody, 0, 1, 0)});
  // if (false) { nop }: both edges at depth 0.
  p.push_back(I(Op::kPushBool, 0));
  p.push_back(I(Op::kJumpIfFalse, 0, 0, here() + 2));
  p.push_back(I(Op::kNop));
  // a && b, a || b: the jump edge keeps the value, the fall-through pushes b.
  for (Op op : {Op::kJumpIfFalseOrPop, Op::kJumpIfTrueOrPop}) {
    p.push_back(I(Op::kPushBool, 1));
    p.push_back(I(op, 0, 0, here() + 2));
    p.push_back(I(Op::kPushBool, 0));
    p.push_back(I(Op::kPop));
  }
  // An unconditional jump over unreachable code (operands still valid).
  p.push_back(I(Op::kJump, 0, 0, here() + 3));
  p.push_back(I(Op::kPushNull));
  p.push_back(I(Op::kPop));
  // if (true) allow else deny: ALLOW in the middle, DENY last, both with
  // values left on the stack (terminators accept any depth).
  p.push_back(I(Op::kPushNull));
  p.push_back(I(Op::kPushBool, 1));
  p.push_back(I(Op::kJumpIfFalse, 0, 0, here() + 2));
  p.push_back(I(Op::kAllow));
  p.push_back(I(Op::kDeny, 0, 0, 0));

  std::vector<Instr> resp = {
      I(Op::kLoadResp, A(ResponseField::kStatus)),
      I(Op::kLoadResp, A(ResponseField::kBody)),
      I(Op::kLoadFirst, A(Source::kResponseHeader), 0, kHeaderName),
      I(Op::kLoadAll, A(Source::kResponseHeader), 0, kHeaderName),
      I(Op::kHas, A(Source::kResponseHeader), 0, kHeaderName),
      I(Op::kPop),
      I(Op::kPop),
      I(Op::kPop),
      I(Op::kPop),
      I(Op::kPop),
      I(Op::kCheckBody, 0, 2, 1),
      I(Op::kAllow),
  };
  BundleData d = Make(p, resp, 2);
  d.relations = {RelationData{0, 1, 0, ""}};
  SchemaTables t;
  t.strings = {"", "S", "#"};
  t.nodes = {SchemaNode{0, 0, static_cast<uint8_t>(SchemaNodeKind::kTrue), 0, 2, kSchemaNone, 0}};
  t.roots = {SchemaRoot{1, 0}};
  d.schemas = SerializeSchema(t);
  d.bodies = {BodyRecord{0, 0, 0, 1024, 8, 16, 16, 64, 0, 0, 0},
              BodyRecord{0, 0, 0, 1024, 8, 16, 16, 64, 200, 1, 0},
              BodyRecord{0, 0, 0, 1024, 8, 16, 16, 64, 0, 1, 0}};
  EXPECT_TRUE(Verified(d));

  std::set<uint8_t> seen;
  for (const Instr& in : d.code) seen.insert(static_cast<uint8_t>(in.op));
  for (uint8_t op = 0; op < kOpCount; ++op) {
    EXPECT_TRUE(seen.count(op)) << "opcode " << OpName(static_cast<Op>(op)) << " not covered";
  }
}

TEST(VerifierTest, StackMayReachExactlyMaxStack) {
  std::vector<Instr> p(kMaxStack, I(Op::kPushNull));
  p.push_back(I(Op::kMakeList, 0, 0, kMaxStack));
  EXPECT_TRUE(Verified(Req(p)));
}

TEST(VerifierTest, IdenticalProgramRangesMayBeShared) {
  BundleData d = Make({I(Op::kAllow)});
  RouteRecord r2 = d.routes[0];
  r2.method = kPost;
  d.routes.push_back(r2);  // same request range [0, 1)
  d.nodes[0].method_count = 2;
  d.methods = {TrieMethod{kGet, 0}, TrieMethod{kPost, 1}};
  EXPECT_TRUE(Verified(d));
}

TEST(VerifierTest, TrieWithLiteralAndParamChildren) {
  BundleData d = Make({I(Op::kAllow)}, {}, 0);
  // root -"seg"-> n1 -{p}-> n2 (GET route 1 with one param); root has GET route 0.
  RouteRecord r1 = d.routes[0];
  r1.param_count = 1;
  d.params = {ParamRecord{kParamName, 0}};
  d.routes.push_back(r1);
  d.nodes = {TrieNode{0, 1, kNone, kNone, 0, 1}, TrieNode{0, 0, 2, 0, 0, 0},
             TrieNode{0, 0, kNone, kNone, 1, 1}};
  d.edges = {TrieEdge{kSegment, 1}};
  d.methods = {TrieMethod{kGet, 0}, TrieMethod{kGet, 1}};
  EXPECT_TRUE(Verified(d));
}

// ---- Tables -----------------------------------------------------------------

TEST(VerifierTest, StringZeroMustBeEmpty) {
  BundleData d = Make();
  d.strings[0] = "x";
  EXPECT_TRUE(Rejected(d, "string 0 must be \"\""));
  d.strings.clear();
  EXPECT_TRUE(Rejected(d, "string 0 must be \"\""));
}

TEST(VerifierTest, RegexPatternOutOfRange) {
  BundleData d = Make();
  d.regexes[0] = kStringCount;
  EXPECT_TRUE(Rejected(d, "regex 0: pattern string 13 out of range (13 strings)"));
}

TEST(VerifierTest, ClaimPathPartCount) {
  BundleData d = Make();
  d.claim_paths[0].clear();
  EXPECT_TRUE(Rejected(d, "claim path 0 has 0 parts, expected 1..16"));
  d.claim_paths[0].assign(kMaxClaimPathParts + 1, kClaimPart);
  EXPECT_TRUE(Rejected(d, "claim path 0 has 17 parts"));
  d.claim_paths[0].assign(kMaxClaimPathParts, kClaimPart);
  EXPECT_TRUE(Verified(d));
}

TEST(VerifierTest, ClaimPathPartOutOfRange) {
  BundleData d = Make();
  d.claim_paths[0] = {kClaimPart, 999};
  EXPECT_TRUE(Rejected(d, "claim path 0: part 1 string 999 out of range"));
}

TEST(VerifierTest, RuleStrings) {
  BundleData d = Make();
  d.rules[0].id = 999;
  EXPECT_TRUE(Rejected(d, "rule 0: id string 999 out of range"));
  d = Make();
  d.rules[0].error = 999;
  EXPECT_TRUE(Rejected(d, "rule 0 (`rule.id`): error string 999"));
  d = Make();
  d.rules[0].message = 999;
  EXPECT_TRUE(Rejected(d, "rule 0 (`rule.id`): message string 999"));
}

TEST(VerifierTest, RuleStatus) {
  BundleData d = Make();
  d.rules[0].status = kMinStatus - 1;
  EXPECT_TRUE(Rejected(d, "rule 0 (`rule.id`): status 99 outside 100..599"));
  d.rules[0].status = kMaxStatus + 1;
  EXPECT_TRUE(Rejected(d, "status 600 outside"));
  d.rules[0].status = kMaxStatus;
  EXPECT_TRUE(Verified(d));
}

TEST(VerifierTest, RuleFlags) {
  BundleData d = Make();
  d.rules[0].flags = kRuleOwnership;  // an `owns` rule
  EXPECT_TRUE(Verified(d));
  d.rules[0].flags = 2;
  EXPECT_TRUE(Rejected(d, "rule 0 (`rule.id`): unknown flags 2"));
}

TEST(VerifierTest, ParamRecord) {
  BundleData d = Make();
  d.params = {ParamRecord{999, kNone}};
  EXPECT_TRUE(Rejected(d, "param 0: name string 999"));
  d.params = {ParamRecord{kParamName, 1}};
  EXPECT_TRUE(Rejected(d, "param 0: shape regex 1 out of range (1 regexes)"));
  d.params = {ParamRecord{kParamName, kNone}};
  EXPECT_TRUE(Verified(d));
}

TEST(VerifierTest, MaxRouteCostLimit) {
  BundleData d = Make();
  d.max_route_cost = kMaxRouteCost + 1;
  EXPECT_TRUE(Rejected(d, "max route cost 1048577 exceeds the limit"));
}

// ---- Routes -----------------------------------------------------------------

TEST(VerifierTest, RouteStrings) {
  BundleData d = Make();
  d.routes[0].name = 999;
  EXPECT_TRUE(Rejected(d, "route 0: name string 999"));
  d = Make();
  d.routes[0].method = 999;
  EXPECT_TRUE(Rejected(d, "route 0 (`r`): method string 999"));
  d = Make();
  d.routes[0].method = kEmpty;
  EXPECT_TRUE(Rejected(d, "route 0 (`r`): method is empty"));
  d = Make();
  d.routes[0].path_template = 999;
  EXPECT_TRUE(Rejected(d, "route 0 (`r`): path template string 999"));
}

TEST(VerifierTest, RouteParams) {
  BundleData d = Make();
  d.routes[0].param_count = kMaxParams + 1;
  EXPECT_TRUE(Rejected(d, "param count 33 exceeds 32"));
  d = Make({I(Op::kAllow)}, {}, 1);
  d.routes[0].first_param = 1;
  EXPECT_TRUE(Rejected(d, "params [1, 2) out of range (1 params)"));
  d.routes[0].first_param = 0xffffffff;  // no 32-bit wrap-around
  EXPECT_TRUE(Rejected(d, "params [4294967295, 4294967296) out of range"));
}

TEST(VerifierTest, RouteProgramRanges) {
  BundleData d = Make();
  d.routes[0].request_len = 0;
  d.routes[0].cost = 0;
  EXPECT_TRUE(Rejected(d, "request program is empty"));
  d = Make();
  d.routes[0].request_code = 0xffffffff;
  EXPECT_TRUE(
      Rejected(d, "request program [4294967295, 4294967296) out of range (1 instructions)"));
  d = Make();
  d.routes[0].response_code = 0xffffffff;
  d.routes[0].response_len = 2;
  d.routes[0].cost = 3;
  EXPECT_TRUE(Rejected(d, "response program [4294967295, 4294967297) out of range"));
}

TEST(VerifierTest, RouteCost) {
  BundleData d = Make({I(Op::kNop), I(Op::kAllow)}, {I(Op::kAllow)});
  EXPECT_TRUE(Verified(d));
  d.routes[0].cost = 2;
  EXPECT_TRUE(Rejected(d, "route 0 (`r`): cost 2, expected 3 (request + response length)"));
  d.routes[0].cost = 3;
  d.max_route_cost = 2;
  EXPECT_TRUE(Rejected(d, "cost 3 exceeds the bundle's max route cost 2"));
}

TEST(VerifierTest, RouteCostLimit) {
  std::vector<Instr> p(kMaxRouteCost, I(Op::kNop));
  p.push_back(I(Op::kAllow));
  BundleData d = Make(p);
  d.max_route_cost = kMaxRouteCost;
  EXPECT_TRUE(Rejected(d, "cost 1048577 exceeds the limit 1048576"));
}

TEST(VerifierTest, OverlappingProgramRanges) {
  BundleData d = Make({I(Op::kNop), I(Op::kAllow)}, {I(Op::kAllow)});
  d.routes[0].response_code = 1;  // [1, 2) inside the request program [0, 2)
  EXPECT_TRUE(Rejected(d, "response program [1, 2) overlaps route 0 (`r`) request program [0, 2)"));
}

// ---- Programs: control flow and stack --------------------------------------

TEST(VerifierTest, StackUnderflow) {
  EXPECT_TRUE(
      Rejected(Req({I(Op::kPop)}), "route 0 (`r`): request program: stack underflow at pc 0"));
  EXPECT_TRUE(Rejected(Req({I(Op::kPushNull), I(Op::kEq)}), "stack underflow at pc 1"));
  EXPECT_TRUE(Rejected(Req({I(Op::kJumpIfTrueOrPop, 0, 0, 1)}), "stack underflow at pc 0"));
  EXPECT_TRUE(
      Rejected(Req({I(Op::kPushNull), I(Op::kMakeList, 0, 0, 2)}), "stack underflow at pc 1"));
}

TEST(VerifierTest, StackOverflow) {
  std::vector<Instr> p(kMaxStack + 1, I(Op::kPushNull));
  EXPECT_TRUE(Rejected(Req(p), "stack overflow at pc 64 (depth 65 exceeds 64)"));
}

TEST(VerifierTest, DepthMismatchAtJoin) {
  // if (true) push null: the join at pc 3 is reached at depth 0 and 1.
  EXPECT_TRUE(Rejected(Req({I(Op::kPushBool, 1), I(Op::kJumpIfFalse, 0, 0, 3), I(Op::kPushNull)}),
                       "stack depth mismatch at pc 3"));
  // The jump edge of JUMP_IF_FALSE_OR_POP keeps the value, the fall-through does not.
  EXPECT_TRUE(Rejected(Req({I(Op::kPushBool, 1), I(Op::kJumpIfFalseOrPop, 0, 0, 2)}),
                       "stack depth mismatch at pc 2"));
}

TEST(VerifierTest, JumpsGoForwardWithinTheProgram) {
  EXPECT_TRUE(Rejected(Req({I(Op::kNop), I(Op::kJump, 0, 0, 0)}),
                       "request program: jump at pc 1 goes backwards (to pc 0)"));
  EXPECT_TRUE(Rejected(Req({I(Op::kNop), I(Op::kJump, 0, 0, 1)}), "jump at pc 1 targets itself"));
  EXPECT_TRUE(Rejected(Req({I(Op::kJump, 0, 0, 2)}),
                       "jump at pc 0 to pc 2 is past the end of the program (length 2)"));
  // Targets count from the program start: a response program cannot jump
  // by absolute code index.
  BundleData d = Make({I(Op::kAllow)}, {I(Op::kJump, 0, 0, 2), I(Op::kAllow)});
  EXPECT_TRUE(Rejected(d, "response program: jump at pc 0 to pc 2 is past the end"));
  d = Make({I(Op::kAllow)}, {I(Op::kJump, 0, 0, 1), I(Op::kAllow)});
  EXPECT_TRUE(Verified(d));
}

TEST(VerifierTest, MustNotFallOffTheEnd) {
  EXPECT_TRUE(Rejected(Make({I(Op::kNop)}), "last instruction (pc 0) is NOP, not ALLOW or DENY"));
  EXPECT_TRUE(Rejected(Make({I(Op::kAllow), I(Op::kPushNull)}), "is PUSH_NULL, not ALLOW or DENY"));
  EXPECT_TRUE(Rejected(Make({I(Op::kAllow)}, {I(Op::kJump, 0, 0, 1), I(Op::kRule)}),
                       "response program: last instruction (pc 1) is RULE"));
}

TEST(VerifierTest, UnknownOpcode) {
  EXPECT_TRUE(Rejected(Req({I(static_cast<Op>(kOpCount))}), "unknown opcode 42 at pc 0"));
  EXPECT_TRUE(Rejected(Make({I(Op::kNop), I(static_cast<Op>(255))}), "unknown opcode 255 at pc 1"));
}

TEST(VerifierTest, UnreachableCodeIsStillChecked) {
  EXPECT_TRUE(Rejected(Req({I(Op::kJump, 0, 0, 2), I(Op::kPushBool, 5)}),
                       "pc 1: PUSH_BOOL: operand a = 5, expected 0 or 1"));
  // But its stack effect is not: an unreachable POP is fine.
  EXPECT_TRUE(Verified(Req({I(Op::kJump, 0, 0, 2), I(Op::kPop)})));
}

// ---- Programs: operands -----------------------------------------------------

TEST(VerifierTest, PushOperands) {
  EXPECT_TRUE(Rejected(Req({I(Op::kPushBool, 2)}), "PUSH_BOOL: operand a = 2, expected 0 or 1"));
  EXPECT_TRUE(Rejected(Req({I(Op::kPushInt, A(ValueType::kString), 0, 0)}),
                       "PUSH_INT: type 3 is not int, duration or timestamp"));
  EXPECT_TRUE(Rejected(Req({I(Op::kPushInt, A(ValueType::kInt), 0, 1)}),
                       "PUSH_INT: int 1 out of range (1 ints)"));
  EXPECT_TRUE(Rejected(Req({I(Op::kPushStr, 0, 0, kStringCount)}),
                       "PUSH_STR: string 13 out of range (13 strings)"));
  EXPECT_TRUE(Rejected(Req({I(Op::kPushStr), I(Op::kField, 0, 0, kStringCount)}),
                       "pc 1: FIELD: string 13 out of range"));
}

TEST(VerifierTest, LoadReqAndRespOperands) {
  EXPECT_TRUE(Verified(Req({I(Op::kLoadReq, A(RequestField::kRoute))})));
  EXPECT_TRUE(Rejected(Req({I(Op::kLoadReq, kRequestFieldCount)}),
                       "LOAD_REQ: request field 10 out of range (10 fields)"));
  EXPECT_TRUE(Rejected(Req({I(Op::kLoadResp, 0)}),
                       "request program: pc 0: LOAD_RESP: not allowed in a request program"));
  EXPECT_TRUE(
      Rejected(Make({I(Op::kAllow)}, {I(Op::kLoadResp, kResponseFieldCount), I(Op::kAllow)}),
               "response program: pc 0: LOAD_RESP: response field 3 out of range"));
}

TEST(VerifierTest, LoadParamOperand) {
  EXPECT_TRUE(Verified(Req({I(Op::kLoadParam, 0, 0, 0)}, 1)));
  EXPECT_TRUE(Rejected(Req({I(Op::kLoadParam, 0, 0, 1)}, 1),
                       "LOAD_PARAM: param 1 out of range (1 params)"));
  EXPECT_TRUE(Rejected(Req({I(Op::kLoadParam, 0, 0, 0)}, 0), "param 0 out of range (0 params)"));
}

TEST(VerifierTest, SourceOperands) {
  EXPECT_TRUE(Rejected(Req({I(Op::kLoadFirst, kSourceCount, 0, 0)}),
                       "LOAD_FIRST: source 5 out of range (5 sources)"));
  EXPECT_TRUE(Rejected(Req({I(Op::kHas, kSourceCount, 0, 0)}), "HAS: source 5 out of range"));
  EXPECT_TRUE(
      Rejected(Req({I(Op::kLoadAll, kSourceCount, 0, 0)}), "LOAD_ALL: source 5 out of range"));
  EXPECT_TRUE(Rejected(Req({I(Op::kLoadFirst, A(Source::kHeader), 0, kStringCount)}),
                       "LOAD_FIRST: name string 13 out of range"));
  EXPECT_TRUE(Rejected(Req({I(Op::kLoadAll, A(Source::kQuery), 0, kStringCount)}),
                       "LOAD_ALL: name string 13 out of range"));
  EXPECT_TRUE(Rejected(Req({I(Op::kHas, A(Source::kClaim), 0, 1)}),
                       "HAS: claim path 1 out of range (1 claim paths)"));
  EXPECT_TRUE(Rejected(Req({I(Op::kLoadFirst, A(Source::kParam), 0, 1)}, 1),
                       "LOAD_FIRST: param 1 out of range (1 params)"));
  EXPECT_TRUE(
      Rejected(Req({I(Op::kHas, A(Source::kParam), 0, 0)}, 0), "HAS: param 0 out of range"));
}

TEST(VerifierTest, ResponseHeaderOnlyInResponsePrograms) {
  for (Op op : {Op::kLoadFirst, Op::kLoadAll, Op::kHas}) {
    EXPECT_TRUE(Rejected(Req({I(op, A(Source::kResponseHeader), 0, kHeaderName)}),
                         "response header source in a request program"));
    EXPECT_TRUE(Verified(
        Make({I(Op::kAllow)}, {I(op, A(Source::kResponseHeader), 0, kHeaderName), I(Op::kAllow)})));
  }
  EXPECT_TRUE(
      Rejected(Make({I(Op::kAllow)},
                    {I(Op::kHas, A(Source::kResponseHeader), 0, kStringCount), I(Op::kAllow)}),
               "HAS: name string 13 out of range"));
}

TEST(VerifierTest, LoadAllRefusesClaimAndParam) {
  EXPECT_TRUE(Rejected(Req({I(Op::kLoadAll, A(Source::kClaim), 0, 0)}),
                       "LOAD_ALL: claim source is not allowed"));
  EXPECT_TRUE(Rejected(Req({I(Op::kLoadAll, A(Source::kParam), 0, 0)}, 1),
                       "LOAD_ALL: param source is not allowed"));
}

TEST(VerifierTest, LoadFirstClaimType) {
  EXPECT_TRUE(Rejected(Req({I(Op::kLoadFirst, A(Source::kClaim), kValueTypeCount, 0)}),
                       "LOAD_FIRST: value type 8 out of range (8 types)"));
  // For other sources b is unused and must be zero.
  EXPECT_TRUE(Rejected(Req({I(Op::kLoadFirst, A(Source::kHeader), 3, kHeaderName)}),
                       "LOAD_FIRST: unused operand b = 3 must be 0"));
}

TEST(VerifierTest, ConvertOperands) {
  EXPECT_TRUE(Rejected(Req({I(Op::kPushNull), I(Op::kConvert, kValueTypeCount, 0)}),
                       "CONVERT: value type 8 out of range"));
  EXPECT_TRUE(
      Rejected(Req({I(Op::kPushNull), I(Op::kConvert, A(ValueType::kList), kValueTypeCount)}),
               "CONVERT: list element type 8 out of range"));
  EXPECT_TRUE(Rejected(Req({I(Op::kPushNull), I(Op::kConvert, 0, 0, 1)}),
                       "CONVERT: unused operand c = 1 must be 0"));
}

TEST(VerifierTest, MatchOperand) {
  EXPECT_TRUE(Rejected(Req({I(Op::kPushStr), I(Op::kMatch, 0, 0, 1)}),
                       "MATCH: regex 1 out of range (1 regexes)"));
}

TEST(VerifierTest, CallOperands) {
  EXPECT_TRUE(Rejected(Req({I(Op::kPushStr), I(Op::kCall, kBuiltinCount, 1)}),
                       "CALL: builtin 8 out of range (8 builtins)"));
  EXPECT_TRUE(Rejected(Req({I(Op::kPushStr), I(Op::kCall, A(Builtin::kSplit), 1)}),
                       "CALL: builtin 6 takes 2 arguments, not 1"));
  EXPECT_TRUE(Rejected(Req({I(Op::kPushStr), I(Op::kPushStr), I(Op::kCall, A(Builtin::kLen), 2)}),
                       "CALL: builtin 5 takes 1 arguments, not 2"));
  EXPECT_TRUE(Rejected(Req({I(Op::kPushStr), I(Op::kCall, A(Builtin::kLen), 1, 7)}),
                       "CALL: unused operand c = 7 must be 0"));
}

TEST(VerifierTest, MakeListOperand) {
  std::vector<Instr> p(kMaxStack, I(Op::kPushNull));
  p.push_back(I(Op::kMakeList, 0, 0, kMaxStack + 1));
  EXPECT_TRUE(Rejected(Req(p), "MAKE_LIST: count 65 exceeds the stack size 64"));
}

TEST(VerifierTest, RuleOperands) {
  EXPECT_TRUE(Rejected(Req({I(Op::kRule, 0, 0, 1)}), "RULE: rule 1 out of range (1 rules)"));
  EXPECT_TRUE(Rejected(Req({I(Op::kPushBool, 1), I(Op::kRequire, 0, 0, 1)}),
                       "REQUIRE: rule 1 out of range"));
  EXPECT_TRUE(Rejected(Make({I(Op::kDeny, 0, 0, 1)}), "DENY: rule 1 out of range"));
}

TEST(VerifierTest, UnusedOperandsMustBeZero) {
  EXPECT_TRUE(Rejected(Req({I(Op::kNop, 1)}), "pc 0: NOP: unused operand a = 1 must be 0"));
  EXPECT_TRUE(Rejected(Req({I(Op::kPushNull, 0, 1)}), "PUSH_NULL: unused operand b = 1"));
  EXPECT_TRUE(Rejected(Req({I(Op::kPushStr, 1, 0, 0)}), "PUSH_STR: unused operand a = 1"));
  EXPECT_TRUE(Rejected(Req({I(Op::kPushBool, 1, 0, 9)}), "PUSH_BOOL: unused operand c = 9"));
  EXPECT_TRUE(Rejected(Req({I(Op::kLoadReq, 0, 0, 1)}), "LOAD_REQ: unused operand c = 1"));
  EXPECT_TRUE(Rejected(Req({I(Op::kLoadParam, 1, 0, 0)}, 1), "LOAD_PARAM: unused operand a = 1"));
  EXPECT_TRUE(Rejected(Req({I(Op::kJump, 1, 0, 1)}), "JUMP: unused operand a = 1"));
  EXPECT_TRUE(Rejected(Req({I(Op::kRule, 0, 2, 0)}), "RULE: unused operand b = 2"));
  EXPECT_TRUE(Rejected(Make({I(Op::kAllow, 0, 0, 1)}), "ALLOW: unused operand c = 1"));
  EXPECT_TRUE(Rejected(Make({I(Op::kDeny, 1, 0, 0)}), "DENY: unused operand a = 1"));
  EXPECT_TRUE(Rejected(Req({I(Op::kPushNull), I(Op::kPop, 0, 0, 3)}), "POP: unused operand c = 3"));
}

// ---- Trie -------------------------------------------------------------------

// Root -"seg"-> n1 (GET route 0); the base for the trie tests.
BundleData TrieBase() {
  BundleData d = Make();
  d.nodes = {TrieNode{0, 1, kNone, kNone, 0, 0}, TrieNode{0, 0, kNone, kNone, 0, 1}};
  d.edges = {TrieEdge{kSegment, 1}};
  return d;
}

TEST(VerifierTest, TrieBaseVerifies) { EXPECT_TRUE(Verified(TrieBase())); }

TEST(VerifierTest, TrieNeedsARoot) {
  BundleData d = Make();
  d.routes.clear();
  d.methods.clear();
  d.nodes.clear();
  EXPECT_TRUE(Rejected(d, "trie has no nodes"));
}

TEST(VerifierTest, TrieRanges) {
  BundleData d = TrieBase();
  d.nodes[0].edge_count = 2;
  EXPECT_TRUE(Rejected(d, "trie node 0: edges [0, 2) out of range (1 edges)"));
  d = TrieBase();
  d.nodes[0].first_edge = 0xffffffff;
  EXPECT_TRUE(Rejected(d, "trie node 0: edges [4294967295, 4294967296) out of range"));
  d = TrieBase();
  d.nodes[1].first_method = 1;
  EXPECT_TRUE(Rejected(d, "trie node 1: methods [1, 2) out of range (1 methods)"));
}

TEST(VerifierTest, TrieChildMustFollowParent) {
  BundleData d = TrieBase();
  d.edges[0].child = 0;
  EXPECT_TRUE(Rejected(d, "trie node 0: edge 0 child 0 is not after its parent"));
  d = TrieBase();
  d.edges[0].child = 2;
  EXPECT_TRUE(Rejected(d, "trie node 0: edge 0 child 2 out of range (2 nodes)"));
  d = TrieBase();
  d.nodes[1].param_child = 1;
  EXPECT_TRUE(Rejected(d, "trie node 1: param child 1 is not after its parent"));
  d = TrieBase();
  d.nodes[1].param_child = 7;
  EXPECT_TRUE(Rejected(d, "trie node 1: param child 7 out of range"));
}

TEST(VerifierTest, TrieNodeHasExactlyOneParent) {
  BundleData d = TrieBase();
  d.nodes[0].param_child = 1;  // n1 is also the literal child
  EXPECT_TRUE(Rejected(d, "trie node 1 has two parents"));
  d = TrieBase();
  d.nodes.push_back(TrieNode{0, 0, kNone, kNone, 0, 0});
  EXPECT_TRUE(Rejected(d, "trie node 2 has no parent"));
  // Two nodes sharing one edge range also give its child two parents.
  d = TrieBase();
  d.nodes = {TrieNode{0, 1, 1, kNone, 0, 0}, TrieNode{0, 1, kNone, kNone, 0, 0},
             TrieNode{0, 0, kNone, kNone, 0, 1}};
  d.edges = {TrieEdge{kSegment, 2}};
  EXPECT_TRUE(Rejected(d, "trie node 2 has two parents"));
}

TEST(VerifierTest, TrieEdgeSegments) {
  BundleData d = TrieBase();
  d.edges[0].segment = 999;
  EXPECT_TRUE(Rejected(d, "trie node 0: edge 0: segment string 999 out of range"));
  d.edges[0].segment = kEmpty;
  EXPECT_TRUE(Rejected(d, "trie node 0: edge 0: empty segment"));
  d.edges[0].segment = kPath;
  EXPECT_TRUE(Rejected(d, "trie node 0: edge 0: segment `/` contains '/'"));
}

TEST(VerifierTest, TrieEdgesStrictlyAscending) {
  BundleData d = TrieBase();
  d.nodes.push_back(TrieNode{0, 0, kNone, kNone, 0, 0});
  d.nodes[0].edge_count = 2;
  d.edges = {TrieEdge{kSegment, 1}, TrieEdge{kPattern, 2}};  // "seg" > "^[a-z]+$"
  EXPECT_TRUE(Rejected(d, "trie node 0: edges not strictly ascending: `^[a-z]+$` after `seg`"));
  d.edges = {TrieEdge{kSegment, 1}, TrieEdge{kSegment, 2}};  // duplicate
  EXPECT_TRUE(Rejected(d, "edges not strictly ascending: `seg` after `seg`"));
  d.edges = {TrieEdge{kPattern, 1}, TrieEdge{kSegment, 2}};
  EXPECT_TRUE(Verified(d));
}

TEST(VerifierTest, TrieParamShape) {
  BundleData d = Make({I(Op::kAllow)}, {}, 1);
  d.nodes[0].param_shape = 1;
  EXPECT_TRUE(Rejected(d, "trie node 0: param shape regex 1 out of range (1 regexes)"));
  d = TrieBase();
  d.nodes[1].param_shape = 0;
  EXPECT_TRUE(Rejected(d, "trie node 1: param shape without a param child"));
  d = Make({I(Op::kAllow)}, {}, 1);
  d.nodes[0].param_shape = kNone;
  EXPECT_TRUE(Verified(d));
}

// Root with GET route 0 and POST route 1.
BundleData TwoMethods() {
  BundleData d = Make();
  RouteRecord r1 = d.routes[0];
  r1.method = kPost;
  d.routes.push_back(r1);
  d.nodes[0].method_count = 2;
  d.methods = {TrieMethod{kGet, 0}, TrieMethod{kPost, 1}};
  return d;
}

TEST(VerifierTest, TrieMethods) {
  EXPECT_TRUE(Verified(TwoMethods()));
  BundleData d = TwoMethods();
  std::swap(d.methods[0], d.methods[1]);
  EXPECT_TRUE(Rejected(d, "trie node 0: methods not strictly ascending: `GET` after `POST`"));
  d = TwoMethods();
  d.methods[1] = TrieMethod{kGet, 1};
  d.routes[1].method = kGet;
  EXPECT_TRUE(Rejected(d, "methods not strictly ascending: `GET` after `GET`"));
  d = TwoMethods();
  d.methods[1].method = 999;
  EXPECT_TRUE(Rejected(d, "trie node 0: method 1: string 999 out of range"));
  d = TwoMethods();
  d.methods[1].route = 2;
  EXPECT_TRUE(Rejected(d, "trie node 0: method 1: route 2 out of range (2 routes)"));
}

TEST(VerifierTest, TrieMethodMustMatchRoute) {
  BundleData d = TwoMethods();
  d.methods[1].route = 0;  // POST -> a GET route
  EXPECT_TRUE(
      Rejected(d, "trie node 0: method `POST` points at route 0 (`r`), whose method is `GET`"));
}

TEST(VerifierTest, EveryRouteInExactlyOneMethodEntry) {
  BundleData d = TwoMethods();
  d.nodes[0].method_count = 1;  // route 1 unreachable
  EXPECT_TRUE(Rejected(d, "route 1 (`r`) is not reachable in the trie"));
  // Route 0 listed at the root and at a child.
  d = TwoMethods();
  d.routes.pop_back();
  d.methods = {TrieMethod{kGet, 0}, TrieMethod{kGet, 0}};
  d.nodes = {TrieNode{0, 1, kNone, kNone, 0, 1}, TrieNode{0, 0, kNone, kNone, 1, 1}};
  d.edges = {TrieEdge{kSegment, 1}};
  EXPECT_TRUE(Rejected(d, "route 0 (`r`) appears in more than one trie method entry"));
  // Also when two nodes share one method range.
  d.methods = {TrieMethod{kGet, 0}};
  d.nodes[1].first_method = 0;
  EXPECT_TRUE(Rejected(d, "appears in more than one trie method entry"));
}

TEST(VerifierTest, TrieParamDepthMatchesRoute) {
  // Route with one param listed at the root (depth 0).
  BundleData d = Make({I(Op::kAllow)}, {}, 1);
  d.nodes[0].first_method = 0;
  d.nodes[0].method_count = 1;
  d.nodes[1].method_count = 0;
  EXPECT_TRUE(Rejected(d,
                       "trie node 0: route 0 (`r`) has 1 params, but the node is 0 param "
                       "segments deep"));
  // Route without params below a param node.
  d = Make({I(Op::kAllow)}, {}, 1);
  d.routes[0].param_count = 0;
  EXPECT_TRUE(Rejected(d, "trie node 1: route 0 (`r`) has 0 params, but the node is 1 param"));
  // Depth is inherited through literal edges.
  d = Make({I(Op::kAllow)}, {}, 1);
  d.nodes = {TrieNode{0, 0, 1, kNone, 0, 0}, TrieNode{0, 1, kNone, kNone, 0, 0},
             TrieNode{0, 0, kNone, kNone, 0, 1}};
  d.edges = {TrieEdge{kSegment, 2}};
  EXPECT_TRUE(Verified(d));
}

// ---- Whole-bundle properties ------------------------------------------------

TEST(VerifierTest, SharedProgramIsVerifiedPerParamCount) {
  // One program shared by a route with a param and one without: LOAD_PARAM 0
  // is valid for the first and not for the second.
  BundleData d = Make({I(Op::kLoadParam, 0, 0, 0), I(Op::kAllow)}, {}, 1);
  RouteRecord r1 = d.routes[0];
  r1.param_count = 0;
  r1.method = kPost;
  d.routes.push_back(r1);
  d.nodes[0].method_count = 1;
  d.nodes[0].first_method = 1;
  d.methods = {TrieMethod{kGet, 0}, TrieMethod{kPost, 1}};
  EXPECT_TRUE(
      Rejected(d, "route 1 (`r`): request program: pc 0: LOAD_PARAM: param 0 out of range"));
}

TEST(VerifierTest, ErrorsAreCorruptionAndLowercase) {
  Status s = Verify(Req({I(Op::kPop)}));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_EQ(s.ToString(),
            "corruption: route 0 (`r`): request program: stack underflow at pc 0 "
            "(POP pops 1, depth 0)");
}

}  // namespace
}  // namespace vakt::bytecode
