// The bytecode verifier (verifier.h): everything the VM relies on without
// checking again at run time is proved here, once, when a bundle is loaded.
//
// Order: the tables (strings, regexes, claim paths, rules, params), then each
// route's fields, then that no two route programs overlap unless they are the
// same range, then each program, then the trie. The first problem found is
// reported as kCorruption with a lowercase message naming what and where,
// e.g. "route 3 (`records.get`): request program: jump at pc 4 goes backwards".
//
// Programs are checked by abstract interpretation in a single forward pass:
// jumps only go forward, so when the pass reaches an instruction every edge
// into it (fall-through or jump) has been seen and its stack depth is known.
// Each instruction's operands are checked even when it is unreachable, so the
// encoding is canonical (operand fields an op does not use must be zero).
//
// Complexity: O(bundle size). Programs shared by several routes must be the
// same range (or disjoint), and a shared range is verified once per distinct
// (parameter count, request/response) pair, so the work is at most a small
// constant times the code size. The trie pass stops at the first node or
// route reached twice, so overlapping ranges cannot make it quadratic.
#include "bytecode/verifier.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "bytecode/format.h"

namespace vakt::bytecode {
namespace {

#define VAKT_BC_RETURN_IF_ERROR(expr)                  \
  do {                                                 \
    Status vakt_bc_status_ = (expr);                   \
    if (!vakt_bc_status_.ok()) return vakt_bc_status_; \
  } while (0)

std::string Num(uint64_t v) { return std::to_string(v); }

// User text for a message: at most 64 bytes, non-printables escaped.
std::string Show(std::string_view s) {
  std::string out;
  size_t n = std::min<size_t>(s.size(), 64);
  for (size_t i = 0; i < n; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  if (s.size() > n) out += "...";
  return out;
}

// Number of arguments each builtin takes (CALL's b operand), by Builtin.
constexpr uint8_t kBuiltinArity[kBuiltinCount] = {2, 2, 2, 1, 1, 1, 2, 1};

enum class ProgramKind { kRequest, kResponse };

// Algorithm bits of IssuerRecord::algs (jose.h JwsAlg order: PS256, ES256,
// EdDSA, then RS256, allowed only outside FAPI).
constexpr uint16_t kFapiAlgBits = 0x7;
constexpr uint16_t kKnownAlgBits = 0xf;

class Verifier {
 public:
  explicit Verifier(const BundleData& d) : d_(d) {}

  Status Run() {
    VAKT_BC_RETURN_IF_ERROR(CheckTables());
    VAKT_BC_RETURN_IF_ERROR(CheckAuthTables());
    VAKT_BC_RETURN_IF_ERROR(CheckRelations());
    VAKT_BC_RETURN_IF_ERROR(CheckBodies());
    for (uint32_t r = 0; r < d_.routes.size(); ++r) VAKT_BC_RETURN_IF_ERROR(CheckRoute(r));
    VAKT_BC_RETURN_IF_ERROR(CheckProgramsDisjoint());
    for (uint32_t r = 0; r < d_.routes.size(); ++r) {
      const RouteRecord& route = d_.routes[r];
      VAKT_BC_RETURN_IF_ERROR(
          CheckProgram(r, route.request_code, route.request_len, ProgramKind::kRequest));
      if (route.response_len != 0) {
        VAKT_BC_RETURN_IF_ERROR(
            CheckProgram(r, route.response_code, route.response_len, ProgramKind::kResponse));
      }
    }
    return CheckTrie();
  }

 private:
  bool StrOk(uint32_t i) const { return i < d_.strings.size(); }
  std::string StrRange(uint32_t i) const {
    return "string " + Num(i) + " out of range (" + Num(d_.strings.size()) + " strings)";
  }
  std::string RouteName(uint32_t r) const {
    const RouteRecord& route = d_.routes[r];
    std::string out = "route " + Num(r);
    if (StrOk(route.name)) out += " (`" + Show(d_.strings[route.name]) + "`)";
    return out;
  }

  // ---- Relations: every entry walked once, O(section size) ----

  Status CheckRelations() const {
    if (d_.relations.size() > kMaxRelations) {
      return Corruption(Num(d_.relations.size()) + " relations, the limit is " +
                        Num(kMaxRelations));
    }
    for (uint32_t i = 0; i < d_.relations.size(); ++i) {
      const RelationData& rel = d_.relations[i];
      std::string where = "relation " + Num(i) + ": ";
      if (!StrOk(rel.name)) return Corruption(where + "name " + StrRange(rel.name));
      if (rel.kind > static_cast<uint32_t>(RelationKind::kList)) {
        return Corruption(where + "unknown kind " + Num(rel.kind));
      }
      if (rel.count > kMaxRelationEntries) {
        return Corruption(where + Num(rel.count) + " entries, the limit is " +
                          Num(kMaxRelationEntries));
      }
      Status st = WalkRelation(rel, [](std::string_view, uint32_t, const char*) {});
      if (!st.ok()) return Corruption(where + st.message());
    }
    return Status::Ok();
  }

  // ---- Body checks: records in range; the schema blob's own tables are
  // checked by SchemaSet::Load (Bundle::Load), its root count read here ----

  Status CheckBodies() const {
    if (d_.bodies.empty()) return Status::Ok();
    // SchemaBlobHeader: magic, u16 version, u16 flags, then u32 counts;
    // root_count is the sixth u32 (format.h).
    constexpr size_t kRootCountOffset = 8 + 4 * 4;
    if (d_.schemas.size() < sizeof(SchemaBlobHeader) ||
        std::memcmp(d_.schemas.data(), kSchemaMagic, 4) != 0) {
      return Corruption(Num(d_.bodies.size()) + " body checks but no schema set");
    }
    uint32_t roots;
    std::memcpy(&roots, d_.schemas.data() + kRootCountOffset, 4);
    for (uint32_t i = 0; i < d_.bodies.size(); ++i) {
      const BodyRecord& b = d_.bodies[i];
      std::string where = "body check " + Num(i) + ": ";
      if (b.root >= roots) return Corruption(where + "schema root " + Num(b.root) + " out of range (" + Num(roots) + " roots)");
      if (b.rule >= d_.rules.size()) return Corruption(where + "rule " + Num(b.rule) + " out of range");
      if (!StrOk(b.accept)) return Corruption(where + "accept " + StrRange(b.accept));
      if (b.response > 1 || b.reserved != 0) return Corruption(where + "bad kind or reserved byte");
      if (b.max_bytes == 0 || b.max_depth == 0 || b.max_depth > kMaxBodyDepth ||
          b.max_properties == 0 || b.max_items == 0 || b.max_string == 0) {
        return Corruption(where + "a limit is zero or over its bound");
      }
      bool status_ok = b.response ? (b.status <= 5 || (b.status >= kMinStatus && b.status <= kMaxStatus))
                                  : b.status == 0;
      if (!status_ok) return Corruption(where + "bad status key " + Num(b.status));
    }
    return Status::Ok();
  }

  // ---- FAPI tables: issuers and route auth records ----

  Status CheckAuthTables() const {
    if (d_.issuers.size() > kMaxIssuers) {
      return Corruption(Num(d_.issuers.size()) + " issuers, the limit is " + Num(kMaxIssuers));
    }
    for (size_t i = 0; i < d_.issuers.size(); ++i) {
      const IssuerRecord& is = d_.issuers[i];
      std::string where = "issuer " + Num(i);
      for (auto [field, what] : {std::pair{is.name, "name"}, std::pair{is.issuer, "iss"},
                                 std::pair{is.audience, "audience"}, std::pair{is.jwks, "jwks"}}) {
        if (!StrOk(field)) return Corruption(where + ": " + what + " " + StrRange(field));
      }
      if (d_.strings[is.issuer].empty() || d_.strings[is.audience].empty()) {
        return Corruption(where + ": empty iss or audience");
      }
      if (d_.strings[is.jwks].size() > kMaxJwksBytes) {
        return Corruption(where + ": JWKS over " + Num(kMaxJwksBytes) + " bytes");
      }
      if (is.leeway > kMaxLeewaySeconds) {
        return Corruption(where + ": leeway " + Num(is.leeway) + "s over " +
                          Num(kMaxLeewaySeconds) + "s");
      }
      if (is.algs == 0 || (is.algs & ~uint16_t{kKnownAlgBits}) != 0) {
        return Corruption(where + ": algorithm set " + Num(is.algs) + " is empty or unknown");
      }
      if ((is.flags & ~kIssuerNotFapi) != 0) {
        return Corruption(where + ": unknown flags " + Num(is.flags));
      }
      // Outside FAPI only, RS256 (bit 3) may be allowed.
      if (!(is.flags & kIssuerNotFapi) && (is.algs & ~uint16_t{kFapiAlgBits}) != 0) {
        return Corruption(where + ": a FAPI issuer allows an algorithm outside PS256/ES256/EdDSA");
      }
    }
    for (size_t i = 0; i < d_.auth.size(); ++i) {
      const AuthRecord& a = d_.auth[i];
      std::string where = "auth record " + Num(i);
      if (a.issuer >= d_.issuers.size()) {
        return Corruption(where + ": issuer " + Num(a.issuer) + " out of range (" +
                          Num(d_.issuers.size()) + " issuers)");
      }
      if (!StrOk(a.scope)) return Corruption(where + ": scope " + StrRange(a.scope));
      if (a.dpop_window < 1 || a.dpop_window > kMaxDpopWindowSeconds) {
        return Corruption(where + ": DPoP window " + Num(a.dpop_window) + "s outside 1.." +
                          Num(kMaxDpopWindowSeconds));
      }
      if (a.sender > 3 || a.tls > 2 || (a.flags & ~kAuthDpopNonce) != 0 || a.reserved != 0) {
        return Corruption(where + ": sender, tls, flags or reserved out of range");
      }
    }
    for (uint32_t r = 0; r < d_.routes.size(); ++r) {
      uint32_t a = d_.routes[r].auth;
      if (a != kNone && a >= d_.auth.size()) {
        return Corruption(RouteName(r) + ": auth record " + Num(a) + " out of range (" +
                          Num(d_.auth.size()) + " records)");
      }
    }
    return Status::Ok();
  }

  // ---- Tables ----

  Status CheckTables() {
    if (d_.strings.empty() || !d_.strings[0].empty()) {
      return Corruption("string 0 must be \"\"");
    }
    for (size_t i = 0; i < d_.regexes.size(); ++i) {
      if (!StrOk(d_.regexes[i]))
        return Corruption("regex " + Num(i) + ": pattern " + StrRange(d_.regexes[i]));
    }
    for (size_t i = 0; i < d_.claim_paths.size(); ++i) {
      const auto& path = d_.claim_paths[i];
      if (path.empty() || path.size() > kMaxClaimPathParts) {
        return Corruption("claim path " + Num(i) + " has " + Num(path.size()) +
                          " parts, expected 1.." + Num(kMaxClaimPathParts));
      }
      for (size_t j = 0; j < path.size(); ++j) {
        if (!StrOk(path[j])) {
          return Corruption("claim path " + Num(i) + ": part " + Num(j) + " " + StrRange(path[j]));
        }
      }
    }
    for (size_t i = 0; i < d_.rules.size(); ++i) {
      const RuleRecord& rule = d_.rules[i];
      std::string where = "rule " + Num(i);
      if (!StrOk(rule.id)) return Corruption(where + ": id " + StrRange(rule.id));
      where += " (`" + Show(d_.strings[rule.id]) + "`)";
      if (!StrOk(rule.error)) return Corruption(where + ": error " + StrRange(rule.error));
      if (!StrOk(rule.message)) return Corruption(where + ": message " + StrRange(rule.message));
      if (rule.status < kMinStatus || rule.status > kMaxStatus) {
        return Corruption(where + ": status " + Num(rule.status) + " outside " + Num(kMinStatus) +
                          ".." + Num(kMaxStatus));
      }
      if ((rule.flags & ~kRuleOwnership) != 0) {
        return Corruption(where + ": unknown flags " + Num(rule.flags));
      }
    }
    for (size_t i = 0; i < d_.params.size(); ++i) {
      const ParamRecord& param = d_.params[i];
      if (!StrOk(param.name))
        return Corruption("param " + Num(i) + ": name " + StrRange(param.name));
      if (param.shape != kNone && param.shape >= d_.regexes.size()) {
        return Corruption("param " + Num(i) + ": shape regex " + Num(param.shape) +
                          " out of range (" + Num(d_.regexes.size()) + " regexes)");
      }
    }
    if (d_.max_route_cost > kMaxRouteCost) {
      return Corruption("max route cost " + Num(d_.max_route_cost) + " exceeds the limit " +
                        Num(kMaxRouteCost));
    }
    return Status::Ok();
  }

  // ---- Routes ----

  Status CheckRoute(uint32_t r) {
    const RouteRecord& route = d_.routes[r];
    if (!StrOk(route.name)) return Corruption("route " + Num(r) + ": name " + StrRange(route.name));
    std::string where = RouteName(r) + ": ";
    if (!StrOk(route.method)) return Corruption(where + "method " + StrRange(route.method));
    if (d_.strings[route.method].empty()) return Corruption(where + "method is empty");
    if (!StrOk(route.path_template)) {
      return Corruption(where + "path template " + StrRange(route.path_template));
    }
    if (route.param_count > kMaxParams) {
      return Corruption(where + "param count " + Num(route.param_count) + " exceeds " +
                        Num(kMaxParams));
    }
    if (uint64_t{route.first_param} + route.param_count > d_.params.size()) {
      return Corruption(where + "params [" + Num(route.first_param) + ", " +
                        Num(uint64_t{route.first_param} + route.param_count) + ") out of range (" +
                        Num(d_.params.size()) + " params)");
    }
    if (route.request_len == 0) return Corruption(where + "request program is empty");
    if (uint64_t{route.request_code} + route.request_len > d_.code.size()) {
      return Corruption(where + "request program [" + Num(route.request_code) + ", " +
                        Num(uint64_t{route.request_code} + route.request_len) + ") out of range (" +
                        Num(d_.code.size()) + " instructions)");
    }
    if (route.response_len != 0 &&
        uint64_t{route.response_code} + route.response_len > d_.code.size()) {
      return Corruption(where + "response program [" + Num(route.response_code) + ", " +
                        Num(uint64_t{route.response_code} + route.response_len) +
                        ") out of range (" + Num(d_.code.size()) + " instructions)");
    }
    uint64_t cost = uint64_t{route.request_len} + route.response_len;
    if (route.cost != cost) {
      return Corruption(where + "cost " + Num(route.cost) + ", expected " + Num(cost) +
                        " (request + response length)");
    }
    if (route.cost > kMaxRouteCost) {
      return Corruption(where + "cost " + Num(route.cost) + " exceeds the limit " +
                        Num(kMaxRouteCost));
    }
    if (route.cost > d_.max_route_cost) {
      return Corruption(where + "cost " + Num(route.cost) +
                        " exceeds the bundle's max route cost " + Num(d_.max_route_cost));
    }
    return Status::Ok();
  }

  // Program ranges of different routes may be shared only whole: two
  // ranges are either identical or disjoint.
  Status CheckProgramsDisjoint() {
    struct Range {
      uint64_t start, end;
      uint32_t route;
      ProgramKind kind;
    };
    std::vector<Range> ranges;
    ranges.reserve(2 * d_.routes.size());
    for (uint32_t r = 0; r < d_.routes.size(); ++r) {
      const RouteRecord& route = d_.routes[r];
      ranges.push_back({route.request_code, uint64_t{route.request_code} + route.request_len, r,
                        ProgramKind::kRequest});
      if (route.response_len != 0) {
        ranges.push_back({route.response_code, uint64_t{route.response_code} + route.response_len,
                          r, ProgramKind::kResponse});
      }
    }
    std::sort(ranges.begin(), ranges.end(), [](const Range& x, const Range& y) {
      if (x.start != y.start) return x.start < y.start;
      if (x.end != y.end) return x.end < y.end;
      return x.route < y.route;
    });
    for (size_t i = 1; i < ranges.size(); ++i) {
      const Range& prev = ranges[i - 1];
      const Range& cur = ranges[i];
      if (cur.start == prev.start && cur.end == prev.end) continue;
      if (cur.start < prev.end) {
        auto describe = [&](const Range& x) {
          return RouteName(x.route) + " " +
                 (x.kind == ProgramKind::kRequest ? "request" : "response") + " program [" +
                 Num(x.start) + ", " + Num(x.end) + ")";
        };
        return Corruption(describe(cur) + " overlaps " + describe(prev));
      }
    }
    return Status::Ok();
  }

  // ---- Programs ----

  // Checks one instruction's operands; `where` is prepended to errors.
  Status CheckOperands(const Instr& in, uint32_t pc, uint32_t len, const RouteRecord& route,
                       ProgramKind kind, const std::string& where) const {
    const auto op = static_cast<uint8_t>(in.op);
    if (op >= kOpCount)
      return Corruption(where + "unknown opcode " + Num(op) + " at pc " + Num(pc));
    // Built only when there is an error to report.
    auto at = [&] { return where + "pc " + Num(pc) + ": " + OpName(in.op) + ": "; };
    bool uses_a = false, uses_b = false, uses_c = false;
    auto range = [&](const char* what, uint64_t v, uint64_t n, const char* unit) {
      return Corruption(at() + what + " " + Num(v) + " out of range (" + Num(n) + " " + unit + ")");
    };
    auto source = [&](bool all) -> Status {
      uses_a = uses_c = true;
      if (in.a >= kSourceCount) return range("source", in.a, kSourceCount, "sources");
      auto src = static_cast<Source>(in.a);
      switch (src) {
        case Source::kResponseHeader:
          if (kind != ProgramKind::kResponse) {
            return Corruption(at() + "response header source in a request program");
          }
          [[fallthrough]];
        case Source::kHeader:
        case Source::kQuery:
          if (!StrOk(in.c)) return Corruption(at() + "name " + StrRange(in.c));
          break;
        case Source::kClaim:
          if (all) return Corruption(at() + "claim source is not allowed");
          if (in.c >= d_.claim_paths.size()) {
            return range("claim path", in.c, d_.claim_paths.size(), "claim paths");
          }
          break;
        case Source::kParam:
          if (all) return Corruption(at() + "param source is not allowed");
          if (in.c >= route.param_count) return range("param", in.c, route.param_count, "params");
          break;
      }
      return Status::Ok();
    };
    switch (in.op) {
      case Op::kNop:
      case Op::kPushNull:
      case Op::kIndex:
      case Op::kEq:
      case Op::kNe:
      case Op::kLt:
      case Op::kLe:
      case Op::kGt:
      case Op::kGe:
      case Op::kAdd:
      case Op::kSub:
      case Op::kMul:
      case Op::kDiv:
      case Op::kMod:
      case Op::kNeg:
      case Op::kNot:
      case Op::kIn:
      case Op::kAllow:
      case Op::kPop:
        break;
      case Op::kPushBool:
        uses_a = true;
        if (in.a > 1) return Corruption(at() + "operand a = " + Num(in.a) + ", expected 0 or 1");
        break;
      case Op::kPushInt: {
        uses_a = uses_c = true;
        auto t = static_cast<ValueType>(in.a);
        if (t != ValueType::kInt && t != ValueType::kDuration && t != ValueType::kTimestamp) {
          return Corruption(at() + "type " + Num(in.a) + " is not int, duration or timestamp");
        }
        if (in.c >= d_.ints.size()) return range("int", in.c, d_.ints.size(), "ints");
        break;
      }
      case Op::kPushStr:
      case Op::kField:
        uses_c = true;
        if (!StrOk(in.c)) return Corruption(at() + StrRange(in.c));
        break;
      case Op::kLoadReq:
        uses_a = true;
        if (in.a >= kRequestFieldCount)
          return range("request field", in.a, kRequestFieldCount, "fields");
        break;
      case Op::kLoadResp:
        uses_a = true;
        if (kind != ProgramKind::kResponse)
          return Corruption(at() + "not allowed in a request program");
        if (in.a >= kResponseFieldCount) {
          return range("response field", in.a, kResponseFieldCount, "fields");
        }
        break;
      case Op::kLoadParam:
        uses_c = true;
        if (in.c >= route.param_count) return range("param", in.c, route.param_count, "params");
        break;
      case Op::kLoadFirst:
        VAKT_BC_RETURN_IF_ERROR(source(false));
        if (static_cast<Source>(in.a) == Source::kClaim) {
          uses_b = true;
          if (in.b >= kValueTypeCount) return range("value type", in.b, kValueTypeCount, "types");
        }
        break;
      case Op::kLoadAll:
        VAKT_BC_RETURN_IF_ERROR(source(true));
        break;
      case Op::kHas:
        VAKT_BC_RETURN_IF_ERROR(source(false));
        break;
      case Op::kConvert:
        uses_a = uses_b = true;
        if (in.a >= kValueTypeCount) return range("value type", in.a, kValueTypeCount, "types");
        if (in.b >= kValueTypeCount) {
          return range("list element type", in.b, kValueTypeCount, "types");
        }
        break;
      case Op::kMatch:
        uses_c = true;
        if (in.c >= d_.regexes.size()) return range("regex", in.c, d_.regexes.size(), "regexes");
        break;
      case Op::kCall:
        uses_a = uses_b = true;
        if (in.a >= kBuiltinCount) return range("builtin", in.a, kBuiltinCount, "builtins");
        if (in.b != kBuiltinArity[in.a]) {
          return Corruption(at() + "builtin " + Num(in.a) + " takes " + Num(kBuiltinArity[in.a]) +
                            " arguments, not " + Num(in.b));
        }
        break;
      case Op::kMakeList:
        uses_c = true;
        if (in.c > kMaxStack) {
          return Corruption(at() + "count " + Num(in.c) + " exceeds the stack size " +
                            Num(kMaxStack));
        }
        break;
      case Op::kJump:
      case Op::kJumpIfFalse:
      case Op::kJumpIfFalseOrPop:
      case Op::kJumpIfTrueOrPop:
        uses_c = true;
        if (in.c == pc) return Corruption(where + "jump at pc " + Num(pc) + " targets itself");
        if (in.c < pc) {
          return Corruption(where + "jump at pc " + Num(pc) + " goes backwards (to pc " +
                            Num(in.c) + ")");
        }
        if (in.c >= len) {
          return Corruption(where + "jump at pc " + Num(pc) + " to pc " + Num(in.c) +
                            " is past the end of the program (length " + Num(len) + ")");
        }
        break;
      case Op::kRule:
      case Op::kRequire:
      case Op::kDeny:
        uses_c = true;
        if (in.c >= d_.rules.size()) return range("rule", in.c, d_.rules.size(), "rules");
        break;
      case Op::kRelation:
        uses_a = uses_c = true;
        if (in.a > 1) return Corruption(at() + "operand a = " + Num(in.a) + ", expected 0 or 1");
        if (in.c >= d_.relations.size()) {
          return range("relation", in.c, d_.relations.size(), "relations");
        }
        break;
      case Op::kCheckBody: {
        uses_b = uses_c = true;
        bool response = kind == ProgramKind::kResponse;
        if (in.b == 0 || in.b > kMaxBodyGroup || (!response && in.b != 1)) {
          return Corruption(at() + "group size b = " + Num(in.b) + " is not allowed here");
        }
        if (uint64_t{in.c} + in.b > d_.bodies.size()) {
          return range("body check", uint64_t{in.c} + in.b - 1, d_.bodies.size(), "body checks");
        }
        for (uint32_t i = in.c; i < in.c + in.b; ++i) {
          if ((d_.bodies[i].response != 0) != response) {
            return Corruption(at() + "body check " + Num(i) + " is for the " +
                              (response ? "request" : "response") + ", not this program");
          }
        }
        break;
      }
    }
    if (!uses_a && in.a != 0)
      return Corruption(at() + "unused operand a = " + Num(in.a) + " must be 0");
    if (!uses_b && in.b != 0)
      return Corruption(at() + "unused operand b = " + Num(in.b) + " must be 0");
    if (!uses_c && in.c != 0)
      return Corruption(at() + "unused operand c = " + Num(in.c) + " must be 0");
    return Status::Ok();
  }

  Status CheckProgram(uint32_t r, uint32_t start, uint32_t len, ProgramKind kind) {
    const RouteRecord& route = d_.routes[r];
    // A shared range is verified once per (param count, kind): nothing
    // else about the route affects the result.
    uint64_t key = (uint64_t{start} << 8) | (uint64_t{route.param_count} << 1) |
                   (kind == ProgramKind::kResponse ? 1 : 0);
    if (!verified_.insert(key).second) return Status::Ok();

    const std::string where = RouteName(r) + ": " +
                              (kind == ProgramKind::kRequest ? "request" : "response") +
                              " program: ";
    const Instr* prog = d_.code.data() + start;
    // Nothing may fall off the end. (An unknown opcode there is reported
    // as such by the operand check below.)
    const Op last = prog[len - 1].op;
    if (static_cast<uint8_t>(last) < kOpCount && last != Op::kAllow && last != Op::kDeny) {
      return Corruption(where + "last instruction (pc " + Num(len - 1) + ") is " + OpName(last) +
                        ", not ALLOW or DENY: execution could fall off the end");
    }

    // depth_[pc]: stack depth on entry, or -1 if no edge reaches pc yet.
    depth_.assign(len, -1);
    depth_[0] = 0;
    auto join = [&](uint32_t target, int32_t depth) -> Status {
      if (depth_[target] < 0) {
        depth_[target] = depth;
      } else if (depth_[target] != depth) {
        return Corruption(where + "stack depth mismatch at pc " + Num(target) + " (" +
                          Num(depth_[target]) + " vs " + Num(depth) + ")");
      }
      return Status::Ok();
    };
    for (uint32_t pc = 0; pc < len; ++pc) {
      const Instr& in = prog[pc];
      VAKT_BC_RETURN_IF_ERROR(CheckOperands(in, pc, len, route, kind, where));
      const int32_t depth = depth_[pc];
      if (depth < 0) continue;  // unreachable: operands checked, no stack
      int32_t pops = 0, pushes = 0;
      bool falls_through = true;
      switch (in.op) {
        case Op::kNop:
        case Op::kRule:
        case Op::kJump:
        case Op::kCheckBody:
          break;
        case Op::kPushNull:
        case Op::kPushBool:
        case Op::kPushInt:
        case Op::kPushStr:
        case Op::kLoadReq:
        case Op::kLoadResp:
        case Op::kLoadParam:
        case Op::kLoadFirst:
        case Op::kLoadAll:
        case Op::kHas:
          pushes = 1;
          break;
        case Op::kConvert:
        case Op::kField:
        case Op::kNot:
        case Op::kNeg:
        case Op::kMatch:
        case Op::kRelation:
          pops = pushes = 1;
          break;
        case Op::kIndex:
        case Op::kEq:
        case Op::kNe:
        case Op::kLt:
        case Op::kLe:
        case Op::kGt:
        case Op::kGe:
        case Op::kAdd:
        case Op::kSub:
        case Op::kMul:
        case Op::kDiv:
        case Op::kMod:
        case Op::kIn:
          pops = 2;
          pushes = 1;
          break;
        case Op::kCall:
          pops = in.b;
          pushes = 1;
          break;
        case Op::kMakeList:
          pops = static_cast<int32_t>(in.c);
          pushes = 1;
          break;
        case Op::kJumpIfFalse:
        case Op::kRequire:
        case Op::kPop:
          pops = 1;
          break;
        case Op::kJumpIfFalseOrPop:
        case Op::kJumpIfTrueOrPop:
          pops = 1;  // on the fall-through edge; the jump edge keeps it
          break;
        case Op::kDeny:
        case Op::kAllow:
          falls_through = false;
          break;
      }
      if (depth < pops) {
        return Corruption(where + "stack underflow at pc " + Num(pc) + " (" + OpName(in.op) +
                          " pops " + Num(pops) + ", depth " + Num(depth) + ")");
      }
      const int32_t next = depth - pops + pushes;
      if (next > static_cast<int32_t>(kMaxStack)) {
        return Corruption(where + "stack overflow at pc " + Num(pc) + " (depth " + Num(next) +
                          " exceeds " + Num(kMaxStack) + ")");
      }
      switch (in.op) {
        case Op::kJump:
          falls_through = false;
          VAKT_BC_RETURN_IF_ERROR(join(in.c, depth));
          break;
        case Op::kJumpIfFalse:
          VAKT_BC_RETURN_IF_ERROR(join(in.c, next));
          break;
        case Op::kJumpIfFalseOrPop:
        case Op::kJumpIfTrueOrPop:
          VAKT_BC_RETURN_IF_ERROR(join(in.c, depth));
          break;
        default:
          break;
      }
      // The last instruction is ALLOW or DENY, so pc + 1 < len here.
      if (falls_through) VAKT_BC_RETURN_IF_ERROR(join(pc + 1, next));
    }
    return Status::Ok();
  }

  // ---- Trie ----

  Status CheckTrie() {
    const size_t n = d_.nodes.size();
    if (n == 0) return Corruption("trie has no nodes (node 0 is the root)");
    std::vector<uint8_t> parents(n, 0);
    // `edge` is the edge index, or kNone for the parameter child.
    auto add_parent = [&](uint32_t node, uint32_t child, uint32_t edge) -> Status {
      if (child <= node || child >= n) {
        std::string what = edge == kNone ? "param child" : "edge " + Num(edge) + " child";
        return Corruption(
            "trie node " + Num(node) + ": " + what + " " + Num(child) +
            (child <= node ? " is not after its parent" : " out of range (" + Num(n) + " nodes)"));
      }
      if (++parents[child] > 1) return Corruption("trie node " + Num(child) + " has two parents");
      return Status::Ok();
    };
    // Pass 1: ranges, edges and the tree shape.
    for (uint32_t i = 0; i < n; ++i) {
      const TrieNode& node = d_.nodes[i];
      auto where = [i] { return "trie node " + Num(i) + ": "; };
      if (uint64_t{node.first_edge} + node.edge_count > d_.edges.size()) {
        return Corruption(where() + "edges [" + Num(node.first_edge) + ", " +
                          Num(uint64_t{node.first_edge} + node.edge_count) + ") out of range (" +
                          Num(d_.edges.size()) + " edges)");
      }
      if (uint64_t{node.first_method} + node.method_count > d_.methods.size()) {
        return Corruption(where() + "methods [" + Num(node.first_method) + ", " +
                          Num(uint64_t{node.first_method} + node.method_count) +
                          ") out of range (" + Num(d_.methods.size()) + " methods)");
      }
      if (node.param_child != kNone) {
        VAKT_BC_RETURN_IF_ERROR(add_parent(i, node.param_child, kNone));
      }
      if (node.param_shape != kNone) {
        if (node.param_child == kNone) {
          return Corruption(where() + "param shape without a param child");
        }
        if (node.param_shape >= d_.regexes.size()) {
          return Corruption(where() + "param shape regex " + Num(node.param_shape) +
                            " out of range (" + Num(d_.regexes.size()) + " regexes)");
        }
      }
      std::string_view prev;
      for (uint32_t k = 0; k < node.edge_count; ++k) {
        const uint32_t e = node.first_edge + k;
        const TrieEdge& edge = d_.edges[e];
        if (!StrOk(edge.segment))
          return Corruption(where() + "edge " + Num(e) + ": segment " + StrRange(edge.segment));
        std::string_view seg = d_.strings[edge.segment];
        if (seg.empty()) return Corruption(where() + "edge " + Num(e) + ": empty segment");
        if (seg.find('/') != std::string_view::npos) {
          return Corruption(where() + "edge " + Num(e) + ": segment `" + Show(seg) +
                            "` contains '/'");
        }
        if (k > 0 && !(prev < seg)) {
          return Corruption(where() + "edges not strictly ascending: `" + Show(seg) + "` after `" +
                            Show(prev) + "`");
        }
        prev = seg;
        VAKT_BC_RETURN_IF_ERROR(add_parent(i, edge.child, e));
      }
    }
    for (uint32_t i = 1; i < n; ++i) {
      if (parents[i] == 0) return Corruption("trie node " + Num(i) + " has no parent");
    }
    // Pass 2: parameter depth (parents come first) and methods.
    std::vector<uint32_t> param_depth(n, 0);
    std::vector<uint8_t> route_seen(d_.routes.size(), 0);
    for (uint32_t i = 0; i < n; ++i) {
      const TrieNode& node = d_.nodes[i];
      auto where = [i] { return "trie node " + Num(i) + ": "; };
      for (uint32_t k = 0; k < node.edge_count; ++k) {
        param_depth[d_.edges[node.first_edge + k].child] = param_depth[i];
      }
      if (node.param_child != kNone) param_depth[node.param_child] = param_depth[i] + 1;
      std::string_view prev;
      for (uint32_t k = 0; k < node.method_count; ++k) {
        const uint32_t m = node.first_method + k;
        const TrieMethod& method = d_.methods[m];
        if (!StrOk(method.method))
          return Corruption(where() + "method " + Num(m) + ": " + StrRange(method.method));
        std::string_view name = d_.strings[method.method];
        if (k > 0 && !(prev < name)) {
          return Corruption(where() + "methods not strictly ascending: `" + Show(name) +
                            "` after `" + Show(prev) + "`");
        }
        prev = name;
        if (method.route >= d_.routes.size()) {
          return Corruption(where() + "method " + Num(m) + ": route " + Num(method.route) +
                            " out of range (" + Num(d_.routes.size()) + " routes)");
        }
        const RouteRecord& route = d_.routes[method.route];
        if (d_.strings[route.method] != name) {
          return Corruption(where() + "method `" + Show(name) + "` points at " +
                            RouteName(method.route) + ", whose method is `" +
                            Show(d_.strings[route.method]) + "`");
        }
        if (++route_seen[method.route] > 1) {
          return Corruption(RouteName(method.route) +
                            " appears in more than one trie method entry");
        }
        if (route.param_count != param_depth[i]) {
          return Corruption(where() + RouteName(method.route) + " has " + Num(route.param_count) +
                            " params, but the node is " + Num(param_depth[i]) +
                            " param segments deep");
        }
      }
    }
    for (uint32_t r = 0; r < d_.routes.size(); ++r) {
      if (route_seen[r] == 0) return Corruption(RouteName(r) + " is not reachable in the trie");
    }
    return Status::Ok();
  }

  const BundleData& d_;
  std::vector<int32_t> depth_;
  std::unordered_set<uint64_t> verified_;
};

}  // namespace

Status Verify(const BundleData& data) { return Verifier(data).Run(); }

}  // namespace vakt::bytecode

#undef VAKT_BC_RETURN_IF_ERROR
