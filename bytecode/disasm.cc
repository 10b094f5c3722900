// Disassembler: a deterministic, human-readable listing of a bundle, for
// `vakt disasm` and the compiler's golden tests. Operands are shown resolved
// (strings quoted, regexes as /pattern/, claim paths joined with '.', enum
// names), so a listing reads like the policy it came from.
//
// It must also work on bundles that were parsed but not verified
// (`vakt disasm --no-verify`, the fuzzer): every index is range-checked and
// a bad one is shown as `<bad ...>` rather than followed.
//
// Shape of the output (two-space indentation; program offsets are
// program-relative, four digits, also for jump targets):
//
//   bundle `healthcare` format 1 compiler `vakt 0.1.0`
//   source sha256 6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b
//   strings 23, ints 1, regexes 1, claim paths 1, rules 1, params 1
//   trie nodes 4, edges 3, methods 2; code 18
//   routes 2, max route cost 12
//   route 0 `records.health` GET /v1/health cost 1
//     request:
//       0000  ALLOW
//   route 1 `records.get_patient` GET /v1/patients/{patient_id} cost 11
//     params: patient_id ~ /^[A-Za-z0-9-]{1,64}$/
//     request:
//       0000  RULE                 r0 `records.get_patient.scope`
//       0001  PUSH_STR             "patient.read"
//       0002  LOAD_FIRST           claim token.scope as string
//       0003  CALL                 split/2
//       ...
//     response:
//       ...
//   rules:
//     r0 `records.get_patient.scope`: deny 403 insufficient_scope "missing scope"
//   regexes:
//     x0 /^[A-Za-z0-9-]{1,64}$/
//   trie:
//     n0 "v1" -> n1
//     n1 "health" -> n2, "patients" -> n3
//     n2 GET -> route 0
//     n3 {param ~ x0} -> n4
//
// Complexity: linear in the size of the listing.
#include <cinttypes>
#include <cstdio>
#include <string>
#include <string_view>

#include "bytecode/bundle.h"
#include "bytecode/format.h"
#include "bytecode/schema.h"

namespace vakt::bytecode {
namespace {

std::string Num(uint64_t v) { return std::to_string(v); }

// C-style escaping of non-printable bytes; with `quoted`, also '"' and
// '\\', and the result in double quotes.
std::string Escape(std::string_view s, bool quoted) {
  std::string out = quoted ? "\"" : "";
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (quoted && (c == '"' || c == '\\')) {
          out.push_back('\\');
          out.push_back(static_cast<char>(c));
        } else if (c >= 0x20 && c < 0x7f) {
          out.push_back(static_cast<char>(c));
        } else {
          char buf[5];
          std::snprintf(buf, sizeof(buf), "\\x%02x", c);
          out += buf;
        }
    }
  }
  if (quoted) out += '"';
  return out;
}
std::string Quote(std::string_view s) { return Escape(s, true); }
// Unquoted text (names, methods, paths, patterns): only non-printables escaped.
std::string Plain(std::string_view s) { return Escape(s, false); }

const char* ValueTypeName(uint32_t t) {
  static constexpr const char* kNames[] = {"null",     "bool",      "int",  "string",
                                           "duration", "timestamp", "list", "json"};
  return t < kValueTypeCount ? kNames[t] : "?";
}
const char* RequestFieldName(uint32_t f) {
  static constexpr const char* kNames[] = {"method",      "path",         "body",
                                           "tls_version", "tls_cipher",   "tls_cert_thumbprint",
                                           "time",        "query_string", "route",
                                           "json"};
  return f < kRequestFieldCount ? kNames[f] : "?";
}
const char* ResponseFieldName(uint32_t f) {
  static constexpr const char* kNames[] = {"status", "body", "json"};
  return f < kResponseFieldCount ? kNames[f] : "?";
}
const char* BuiltinName(uint32_t b) {
  static constexpr const char* kNames[] = {"starts_with", "ends_with", "contains", "lower",
                                           "upper",       "len",       "split",    "trim"};
  return b < kBuiltinCount ? kNames[b] : "?";
}
const char* SourceName(uint32_t s) {
  static constexpr const char* kNames[] = {"header", "query", "response_header", "claim", "param"};
  return s < kSourceCount ? kNames[s] : "?";
}

class Disassembler {
 public:
  explicit Disassembler(const BundleData& d) : d_(d) {}

  std::string Run() {
    Header();
    for (uint32_t r = 0; r < d_.routes.size(); ++r) Route(r);
    Rules();
    Regexes();
    Trie();
    Issuers();
    Relations();
    Bodies();
    return std::move(out_);
  }

 private:
  bool StrOk(uint64_t i) const { return i < d_.strings.size(); }
  std::string Str(uint64_t i) const {
    return StrOk(i) ? Quote(d_.strings[i]) : "<bad string " + Num(i) + ">";
  }
  std::string Name(uint64_t i) const {
    return StrOk(i) ? Plain(d_.strings[i]) : "<bad string " + Num(i) + ">";
  }
  std::string Regex(uint64_t i) const {
    if (i >= d_.regexes.size()) return "<bad regex " + Num(i) + ">";
    uint32_t s = d_.regexes[i];
    return StrOk(s) ? "/" + Plain(d_.strings[s]) + "/" : "/<bad string " + Num(s) + ">/";
  }
  std::string Rule(uint64_t i) const {
    if (i >= d_.rules.size()) return "<bad rule " + Num(i) + ">";
    return "r" + Num(i) + " `" + Name(d_.rules[i].id) + "`";
  }
  std::string ClaimPath(uint64_t i) const {
    if (i >= d_.claim_paths.size()) return "<bad claim path " + Num(i) + ">";
    std::string out = "token";
    for (uint32_t part : d_.claim_paths[i]) out += "." + Name(part);
    return out;
  }
  std::string Param(const RouteRecord& route, uint64_t i) const {
    std::string out = "p" + Num(i);
    uint64_t p = uint64_t{route.first_param} + i;
    if (i < route.param_count && p < d_.params.size()) out += " " + Name(d_.params[p].name);
    return out;
  }

  void Header() {
    out_ += "bundle `" + Plain(d_.name) + "` format " + Num(kCurrentVersion) + " compiler `" +
            Plain(d_.compiler_version) + "`\n";
    out_ += "source sha256 " + HexLower(d_.source_digest.data(), d_.source_digest.size()) + "\n";
    out_ += "strings " + Num(d_.strings.size()) + ", ints " + Num(d_.ints.size()) + ", regexes " +
            Num(d_.regexes.size()) + ", claim paths " + Num(d_.claim_paths.size()) + ", rules " +
            Num(d_.rules.size()) + ", params " + Num(d_.params.size()) + "\n";
    out_ += "trie nodes " + Num(d_.nodes.size()) + ", edges " + Num(d_.edges.size()) +
            ", methods " + Num(d_.methods.size()) + "; code " + Num(d_.code.size()) + "\n";
    out_ += "routes " + Num(d_.routes.size()) + ", max route cost " + Num(d_.max_route_cost) + "\n";
  }

  void Route(uint32_t r) {
    const RouteRecord& route = d_.routes[r];
    out_ += "route " + Num(r) + " `" + Name(route.name) + "` " + Name(route.method) + " " +
            Name(route.path_template) + " cost " + Num(route.cost) + "\n";
    if (route.param_count != 0) {
      out_ += "  params:";
      for (uint64_t i = 0; i < route.param_count; ++i) {
        uint64_t p = uint64_t{route.first_param} + i;
        out_ += i == 0 ? " " : ", ";
        if (p >= d_.params.size()) {
          out_ += "<bad param " + Num(p) + ">";
          break;
        }
        out_ += Name(d_.params[p].name);
        if (d_.params[p].shape != kNone) out_ += " ~ " + Regex(d_.params[p].shape);
      }
      out_ += "\n";
    }
    if (route.auth != kNone) Auth(route.auth);
    Program("request", route, route.request_code, route.request_len);
    if (route.response_len != 0)
      Program("response", route, route.response_code, route.response_len);
  }

  void Program(const char* label, const RouteRecord& route, uint32_t start, uint32_t len) {
    out_ += std::string("  ") + label + ":";
    if (uint64_t{start} + len > d_.code.size()) {
      out_ += " <bad range [" + Num(start) + ", " + Num(uint64_t{start} + len) + ") of " +
              Num(d_.code.size()) + " instructions>\n";
      return;
    }
    out_ += "\n";
    for (uint32_t pc = 0; pc < len; ++pc) Instruction(route, pc, d_.code[start + pc]);
  }

  void Instruction(const RouteRecord& route, uint32_t pc, const Instr& in) {
    char head[48];
    const auto op = static_cast<uint8_t>(in.op);
    std::string mnemonic = op < kOpCount ? OpName(in.op) : "?" + Num(op);
    std::snprintf(head, sizeof(head), "    %04" PRIu32 "  %-20s ", pc, mnemonic.c_str());
    std::string operands;
    auto source = [&]() {
      std::string s = SourceName(in.a);
      switch (in.a) {
        case static_cast<uint8_t>(Source::kClaim):
          return s + " " + ClaimPath(in.c);
        case static_cast<uint8_t>(Source::kParam):
          return s + " " + Param(route, in.c);
        default:
          return s + " " + Str(in.c);
      }
    };
    switch (in.op) {
      case Op::kPushBool:
        operands = in.a ? "true" : "false";
        break;
      case Op::kPushInt:
        operands =
            std::string(ValueTypeName(in.a)) + " " +
            (in.c < d_.ints.size() ? std::to_string(d_.ints[in.c]) : "<bad int " + Num(in.c) + ">");
        break;
      case Op::kPushStr:
      case Op::kField:
        operands = Str(in.c);
        break;
      case Op::kLoadReq:
        operands = RequestFieldName(in.a);
        break;
      case Op::kLoadResp:
        operands = ResponseFieldName(in.a);
        break;
      case Op::kLoadParam:
        operands = Param(route, in.c);
        break;
      case Op::kLoadFirst:
        operands = source();
        if (in.a == static_cast<uint8_t>(Source::kClaim)) {
          operands += std::string(" as ") + ValueTypeName(in.b);
        }
        break;
      case Op::kLoadAll:
      case Op::kHas:
        operands = source();
        break;
      case Op::kConvert:
        operands = std::string("to ") + ValueTypeName(in.a);
        if (in.a == static_cast<uint8_t>(ValueType::kList)) {
          operands += std::string("<") + ValueTypeName(in.b) + ">";
        }
        break;
      case Op::kMatch:
        operands = "x" + Num(in.c) + " " + Regex(in.c);
        break;
      case Op::kCall:
        operands = std::string(BuiltinName(in.a)) + "/" + Num(in.b);
        break;
      case Op::kMakeList:
        operands = Num(in.c);
        break;
      case Op::kJump:
      case Op::kJumpIfFalse:
      case Op::kJumpIfFalseOrPop:
      case Op::kJumpIfTrueOrPop: {
        char target[16];
        std::snprintf(target, sizeof(target), "%04" PRIu32, in.c);
        operands = target;
        break;
      }
      case Op::kRule:
      case Op::kRequire:
      case Op::kDeny:
        operands = Rule(in.c);
        break;
      case Op::kRelation:
        operands = std::string(in.a == 1 ? "has " : in.a == 0 ? "" : "<bad mode> ") + Relation(in.c);
        break;
      case Op::kCheckBody:
        operands = "B" + Num(in.c) + (in.b > 1 ? ".." + Num(uint64_t{in.c} + in.b - 1) : "");
        break;
      default:
        if (op >= kOpCount) {
          operands = "a=" + Num(in.a) + " b=" + Num(in.b) + " c=" + Num(in.c);
        }
        break;
    }
    std::string line = head + operands;
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out_ += line + "\n";
  }

  static std::string Algs(uint32_t bits) {
    static constexpr const char* kNames[] = {"PS256", "ES256", "EdDSA", "RS256"};
    std::string out;
    for (uint32_t i = 0; i < 16; ++i) {
      if (!(bits & (1u << i))) continue;
      if (!out.empty()) out += " ";
      out += i < 4 ? kNames[i] : "alg" + Num(i);
    }
    return out.empty() ? "-" : out;
  }

  void Auth(uint32_t i) {
    out_ += "  fapi2:";
    if (i >= d_.auth.size()) {
      out_ += " <bad auth record " + Num(i) + ">\n";
      return;
    }
    const AuthRecord& a = d_.auth[i];
    static constexpr const char* kSender[] = {"any", "dpop", "mtls", "none"};
    static constexpr const char* kTls[] = {"fapi", "1.3", "any"};
    out_ += " issuer i" + Num(a.issuer) + " sender " +
            (a.sender < 4 ? kSender[a.sender] : "<bad " + Num(a.sender) + ">") + " tls " +
            (a.tls < 3 ? kTls[a.tls] : "<bad " + Num(a.tls) + ">") + " dpop_window " +
            Num(a.dpop_window) + "s";
    if (a.flags & kAuthDpopNonce) out_ += " dpop_nonce";
    if (StrOk(a.scope) && !d_.strings[a.scope].empty()) out_ += " scope " + Str(a.scope);
    out_ += "\n";
  }

  std::string Relation(uint32_t i) const {
    if (i >= d_.relations.size()) return "<bad relation " + Num(i) + ">";
    return "R" + Num(i) + " `" + Name(d_.relations[i].name) + "`";
  }

  void Relations() {
    if (d_.relations.empty()) return;
    out_ += "relations:\n";
    for (uint32_t i = 0; i < d_.relations.size(); ++i) {
      const RelationData& rel = d_.relations[i];
      auto digest = Sha256(rel.entries);
      out_ += "  " + Relation(i) + " " +
              (rel.kind == 0 ? "string" : rel.kind == 1 ? "list<string>" : "<bad kind>") + " " +
              Num(rel.count) + " entries " + Num(rel.entries.size()) + " bytes sha256 " +
              HexLower(digest.data(), 8) + "\n";
    }
  }

  void Bodies() {
    if (d_.schemas.empty() && d_.bodies.empty()) return;
    auto set = SchemaSet::Load(d_.schemas);
    if (!d_.schemas.empty()) {
      auto digest = Sha256(d_.schemas);
      out_ += "schemas: " + Num(d_.schemas.size()) + " bytes sha256 " + HexLower(digest.data(), 8);
      if (set.ok()) {
        out_ += " " + Num((*set)->root_count()) + " roots " + Num((*set)->node_count()) + " nodes";
      } else {
        out_ += " <bad schema set>";
      }
      out_ += "\n";
    }
    if (d_.bodies.empty()) return;
    out_ += "bodies:\n";
    for (uint32_t i = 0; i < d_.bodies.size(); ++i) {
      const BodyRecord& b = d_.bodies[i];
      std::string root = "<bad root " + Num(b.root) + ">";
      if (set.ok() && b.root < (*set)->root_count()) {
        root = "`" + std::string((*set)->root_name(b.root)) + "`";
      }
      std::string status;
      if (b.response) {
        status = b.status == 0 ? " default" : b.status <= 5 ? " " + Num(b.status) + "XX" : " " + Num(b.status);
      }
      out_ += "  B" + Num(i) + (b.response ? " response" : " request") + status + " " + root +
              " " + Rule(b.rule) + " max_bytes " + Num(b.max_bytes) + " max_depth " +
              Num(b.max_depth) + " max_properties " + Num(b.max_properties) + " max_items " +
              Num(b.max_items) + " max_string " + Num(b.max_string);
      if (StrOk(b.accept) && !d_.strings[b.accept].empty()) out_ += " accept " + Str(b.accept);
      out_ += "\n";
    }
  }

  void Issuers() {
    if (d_.issuers.empty()) return;
    out_ += "issuers:\n";
    for (uint32_t i = 0; i < d_.issuers.size(); ++i) {
      const IssuerRecord& is = d_.issuers[i];
      out_ += "  i" + Num(i) + " `" + Name(is.name) + "` iss " + Str(is.issuer) + " aud " +
              Str(is.audience) + " algs " + Algs(is.algs) + " leeway " + Num(is.leeway) + "s";
      if (is.flags & kIssuerNotFapi) out_ += " NOT-FAPI";
      if (StrOk(is.jwks)) {
        auto digest = Sha256(d_.strings[is.jwks]);
        out_ += " jwks " + Num(d_.strings[is.jwks].size()) + " bytes sha256 " +
                HexLower(digest.data(), 8);
      } else {
        out_ += " jwks <bad string " + Num(is.jwks) + ">";
      }
      out_ += "\n";
    }
  }

  void Rules() {
    if (d_.rules.empty()) return;
    out_ += "rules:\n";
    for (uint32_t i = 0; i < d_.rules.size(); ++i) {
      const RuleRecord& rule = d_.rules[i];
      std::string error =
          StrOk(rule.error) && d_.strings[rule.error].empty() ? "-" : Name(rule.error);
      out_ += "  " + Rule(i) + ": " + ((rule.flags & kRuleOwnership) ? "owns, " : "") + "deny " +
              Num(rule.status) + " " + error + " " + Str(rule.message) + "\n";
    }
  }

  void Regexes() {
    if (d_.regexes.empty()) return;
    out_ += "regexes:\n";
    for (uint32_t i = 0; i < d_.regexes.size(); ++i) out_ += "  x" + Num(i) + " " + Regex(i) + "\n";
  }

  void Trie() {
    out_ += "trie:\n";
    for (uint32_t i = 0; i < d_.nodes.size(); ++i) {
      const TrieNode& node = d_.nodes[i];
      std::string line = "  n" + Num(i);
      bool first = true;
      auto sep = [&]() {
        line += first ? " " : ", ";
        first = false;
      };
      for (uint64_t e = node.first_edge; e < uint64_t{node.first_edge} + node.edge_count; ++e) {
        sep();
        if (e >= d_.edges.size()) {
          line += "<bad edge " + Num(e) + ">";
          break;
        }
        line += Str(d_.edges[e].segment) + " -> n" + Num(d_.edges[e].child);
      }
      if (node.param_child != kNone) {
        sep();
        line += "{param";
        if (node.param_shape != kNone) line += " ~ x" + Num(node.param_shape);
        line += "} -> n" + Num(node.param_child);
      }
      for (uint64_t m = node.first_method; m < uint64_t{node.first_method} + node.method_count;
           ++m) {
        sep();
        if (m >= d_.methods.size()) {
          line += "<bad method " + Num(m) + ">";
          break;
        }
        line += Name(d_.methods[m].method) + " -> route " + Num(d_.methods[m].route);
      }
      out_ += line + "\n";
    }
  }

  const BundleData& d_;
  std::string out_;
};

}  // namespace

std::string Disassemble(const BundleData& data) { return Disassembler(data).Run(); }

}  // namespace vakt::bytecode
