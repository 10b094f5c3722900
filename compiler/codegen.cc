// Code generation; see codegen.h. Expressions compile to stack code in
// post-order; stack depth is tracked as code is emitted so an expression
// too deep for the VM's fixed stack is a compile error, not a verifier
// rejection.
#include "compiler/codegen.h"

#include <algorithm>
#include <map>
#include <tuple>

#include "bytecode/format.h"
#include "compiler/routes.h"
#include "compiler/tables.h"

namespace vakt::compiler {
namespace {

using bytecode::Instr;
using bytecode::Op;

class Emitter {
 public:
  Emitter(Tables& t, bytecode::BundleData& data) : t_(t), data_(data) {}

  // Emits one program; returns its instructions.
  std::vector<Instr> Program(const std::vector<IrRule>& rules, const std::vector<uint32_t>& rule_ids) {
    code_.clear();
    depth_ = max_depth_ = 0;
    for (size_t i = 0; i < rules.size(); ++i) {
      if (!rules[i].bodies.empty()) {  // rule_ids[i]: the first body record
        Emit(Op::kCheckBody, 0, static_cast<uint16_t>(rules[i].bodies.size()), rule_ids[i], 0);
        continue;
      }
      Expr(*rules[i].cond);
      Emit(Op::kRequire, 0, 0, rule_ids[i], -1);
    }
    Emit(Op::kAllow, 0, 0, 0, 0);
    return code_;
  }
  uint32_t max_depth() const { return max_depth_; }

 private:
  size_t Emit(Op op, uint8_t a, uint16_t b, uint32_t c, int effect) {
    code_.push_back(Instr{op, a, b, c});
    depth_ += effect;
    max_depth_ = std::max<uint32_t>(max_depth_, static_cast<uint32_t>(std::max(depth_, 0)));
    return code_.size() - 1;
  }

  void Expr(const IrExpr& e) {
    switch (e.kind) {
      case IrKind::kConst:
        switch (e.type.kind) {
          case ValueType::kNull: Emit(Op::kPushNull, 0, 0, 0, 1); return;
          case ValueType::kBool: Emit(Op::kPushBool, e.bool_value ? 1 : 0, 0, 0, 1); return;
          case ValueType::kString: Emit(Op::kPushStr, 0, 0, t_.Str(e.str), 1); return;
          case ValueType::kInt:
          case ValueType::kDuration:
          case ValueType::kTimestamp:
            Emit(Op::kPushInt, static_cast<uint8_t>(e.type.kind), 0, t_.Int(e.int_value), 1);
            return;
          default: Emit(Op::kPushNull, 0, 0, 0, 1); return;  // unreachable after lowering
        }
      case IrKind::kList:
        for (const auto& c : e.children) Expr(*c);
        Emit(Op::kMakeList, 0, 0, static_cast<uint32_t>(e.children.size()),
             1 - static_cast<int>(e.children.size()));
        return;
      case IrKind::kReq: Emit(Op::kLoadReq, static_cast<uint8_t>(e.field), 0, 0, 1); return;
      case IrKind::kResp: Emit(Op::kLoadResp, static_cast<uint8_t>(e.rfield), 0, 0, 1); return;
      case IrKind::kParam: Emit(Op::kLoadParam, 0, 0, e.index, 1); return;
      case IrKind::kFirst:
      case IrKind::kHas:
      case IrKind::kAll: {
        Op op = e.kind == IrKind::kFirst ? Op::kLoadFirst : e.kind == IrKind::kHas ? Op::kHas : Op::kLoadAll;
        uint32_t c = 0;
        uint16_t b = 0;
        switch (e.source) {
          case Source::kClaim:
            c = t_.ClaimPath(e.claim_path);
            if (op == Op::kLoadFirst) {
              b = static_cast<uint16_t>(e.type.kind);
            }
            break;
          case Source::kParam: c = e.index; break;
          default: c = t_.Str(e.str); break;
        }
        if (op == Op::kLoadFirst && e.source == Source::kClaim && e.type.kind == ValueType::kList &&
            e.type.elem != ValueType::kString) {
          // Only list<string> converts in LOAD_FIRST; other lists go via CONVERT.
          Emit(Op::kLoadFirst, static_cast<uint8_t>(e.source),
               static_cast<uint16_t>(ValueType::kJson), c, 1);
          Emit(Op::kConvert, static_cast<uint8_t>(ValueType::kList),
               static_cast<uint16_t>(e.type.elem), 0, 0);
          return;
        }
        Emit(op, static_cast<uint8_t>(e.source), b, c, 1);
        return;
      }
      case IrKind::kConvert:
        Expr(*e.children[0]);
        Emit(Op::kConvert, static_cast<uint8_t>(e.type.kind),
             e.type.kind == ValueType::kList ? static_cast<uint16_t>(e.type.elem) : 0, 0, 0);
        return;
      case IrKind::kField:
        Expr(*e.children[0]);
        Emit(Op::kField, 0, 0, t_.Str(e.str), 0);
        return;
      case IrKind::kIndex:
        Expr(*e.children[0]);
        Expr(*e.children[1]);
        Emit(Op::kIndex, 0, 0, 0, -1);
        return;
      case IrKind::kNot:
        Expr(*e.children[0]);
        Emit(Op::kNot, 0, 0, 0, 0);
        return;
      case IrKind::kNeg:
        Expr(*e.children[0]);
        Emit(Op::kNeg, 0, 0, 0, 0);
        return;
      case IrKind::kAnd:
      case IrKind::kOr: {
        Expr(*e.children[0]);
        size_t j = Emit(e.kind == IrKind::kAnd ? Op::kJumpIfFalseOrPop : Op::kJumpIfTrueOrPop, 0,
                        0, 0, -1);
        Expr(*e.children[1]);
        code_[j].c = static_cast<uint32_t>(code_.size());
        return;
      }
      case IrKind::kBinary:
        Expr(*e.children[0]);
        Expr(*e.children[1]);
        Emit(e.op, 0, 0, 0, -1);
        return;
      case IrKind::kMatch:
        Expr(*e.children[0]);
        Emit(Op::kMatch, 0, 0, t_.Regex(e.str), 0);
        return;
      case IrKind::kRelation:
        Expr(*e.children[0]);
        Emit(Op::kRelation, e.bool_value ? 1 : 0, 0, e.index, 0);
        return;
      case IrKind::kCall:
        for (const auto& c : e.children) Expr(*c);
        Emit(Op::kCall, static_cast<uint8_t>(e.builtin), static_cast<uint16_t>(e.children.size()),
             0, 1 - static_cast<int>(e.children.size()));
        return;
    }
  }

  Tables& t_;
  bytecode::BundleData& data_;
  std::vector<Instr> code_;
  int depth_ = 0;
  uint32_t max_depth_ = 0;
};

uint32_t AddRule(const IrRule& r, Tables& t, bytecode::BundleData& data) {
  bytecode::RuleRecord rec{};
  rec.id = t.Str(r.id);
  rec.error = t.Str(r.error);
  rec.message = t.Str(r.message);
  rec.status = static_cast<uint16_t>(r.status);
  rec.flags = r.owns ? bytecode::kRuleOwnership : 0;
  data.rules.push_back(rec);
  return static_cast<uint32_t>(data.rules.size() - 1);
}

// A body check rule: one RuleRecord (id and label; the outcome decides the
// status) and one BodyRecord per check. Returns the first BodyRecord.
uint32_t AddBodies(const IrRule& r, Tables& t, bytecode::BundleData& data) {
  uint32_t first = static_cast<uint32_t>(data.bodies.size());
  for (const IrBodyCheck& b : r.bodies) {
    bytecode::RuleRecord rule{};
    rule.id = t.Str(b.rule_id);
    rule.error = t.Str(b.response ? "invalid_response" : "invalid_request");
    rule.message = t.Str((b.response ? "response body: schema `" : "body: schema `") + b.schema + "`");
    rule.status = b.response ? 502 : 400;
    data.rules.push_back(rule);
    bytecode::BodyRecord rec{};
    rec.root = b.root;
    rec.rule = static_cast<uint32_t>(data.rules.size() - 1);
    rec.accept = t.Str(b.accept);
    rec.max_bytes = b.max_bytes;
    rec.max_depth = b.max_depth;
    rec.max_properties = b.max_properties;
    rec.max_items = b.max_items;
    rec.max_string = b.max_string;
    rec.status = b.status;
    rec.response = b.response ? 1 : 0;
    data.bodies.push_back(rec);
  }
  return first;
}

}  // namespace

bool Generate(const IrProgram& prog, const CodegenOptions& opts, bytecode::BundleData& data,
              dsl::Diagnostics& diags) {
  Tables t(data);
  data.ints.clear();
  data.regexes.clear();
  data.claim_paths.clear();
  data.rules.clear();
  data.routes.assign(prog.routes.size(), bytecode::RouteRecord{});
  data.code.clear();
  data.issuers.clear();
  data.auth.clear();
  data.compiler_version = kCompilerVersion;
  t.Str(data.name);
  t.Str(data.compiler_version);
  bool ok = BuildRouteTable(prog, t, data, diags);
  for (const IrIssuer& is : prog.issuers) {
    bytecode::IssuerRecord rec{};
    rec.name = t.Str(is.name);
    rec.issuer = t.Str(is.url);
    rec.audience = t.Str(is.audience);
    rec.jwks = t.Str(is.jwks);
    rec.leeway = static_cast<uint32_t>(is.leeway);
    rec.algs = static_cast<uint16_t>(is.algs);
    rec.flags = is.fapi ? 0 : bytecode::kIssuerNotFapi;
    data.issuers.push_back(rec);
  }
  data.schemas = prog.schemas;
  data.bodies.clear();
  data.relations.clear();
  for (const IrRelation& rel : prog.relations) {
    bytecode::RelationData rd;
    rd.name = t.Str(rel.name);
    rd.kind = static_cast<uint32_t>(rel.list ? bytecode::RelationKind::kList
                                             : bytecode::RelationKind::kString);
    rd.count = static_cast<uint32_t>(rel.entries.size());
    for (const auto& [key, values] : rel.entries) {
      bytecode::AppendRelationEntry(&rd.entries, key, values);
    }
    data.relations.push_back(std::move(rd));
  }
  // Routes with identical fapi2 settings share one auth record.
  std::map<std::tuple<uint32_t, uint32_t, uint32_t, uint8_t, uint8_t, uint8_t>, uint32_t> auth_ids;
  Emitter em(t, data);
  uint32_t max_cost = 0;
  for (size_t ri = 0; ri < prog.routes.size(); ++ri) {
    const IrRoute& r = prog.routes[ri];
    bytecode::RouteRecord& rec = data.routes[ri];
    rec.name = t.Str(r.name);
    rec.method = t.Str(r.method);
    rec.path_template = t.Str(r.path_template);
    rec.auth = bytecode::kNone;
    if (r.auth) {
      std::string scope;
      for (const auto& sc : r.auth->scopes) scope += (scope.empty() ? "" : " ") + sc;
      bytecode::AuthRecord a{};
      a.issuer = r.auth->issuer;
      a.scope = t.Str(scope);
      a.dpop_window = static_cast<uint32_t>(r.auth->dpop_window);
      a.sender = r.auth->sender;
      a.tls = r.auth->tls;
      a.flags = r.auth->dpop_nonce ? bytecode::kAuthDpopNonce : 0;
      auto key = std::make_tuple(a.issuer, a.scope, a.dpop_window, a.sender, a.tls, a.flags);
      auto [it, inserted] = auth_ids.emplace(key, static_cast<uint32_t>(data.auth.size()));
      if (inserted) data.auth.push_back(a);
      rec.auth = it->second;
    }
    auto emit = [&](const std::vector<IrRule>& rules, uint32_t* start, uint32_t* len) {
      std::vector<uint32_t> ids;
      for (const auto& rule : rules) {
        ids.push_back(rule.bodies.empty() ? AddRule(rule, t, data) : AddBodies(rule, t, data));
      }
      std::vector<Instr> code = em.Program(rules, ids);
      if (em.max_depth() > bytecode::kMaxStack) {
        diags.Error(r.loc, "an expression in route `" + r.name + "` needs " +
                               std::to_string(em.max_depth()) + " stack slots; the VM has " +
                               std::to_string(bytecode::kMaxStack));
        ok = false;
      }
      *start = static_cast<uint32_t>(data.code.size());
      *len = static_cast<uint32_t>(code.size());
      data.code.insert(data.code.end(), code.begin(), code.end());
    };
    emit(r.request_rules, &rec.request_code, &rec.request_len);
    if (!r.response_rules.empty()) {
      emit(r.response_rules, &rec.response_code, &rec.response_len);
    } else {
      rec.response_code = 0;
      rec.response_len = 0;
    }
    uint64_t cost = uint64_t{rec.request_len} + rec.response_len;
    if (cost > opts.route_budget || cost > bytecode::kMaxRouteCost) {
      diags.Error(r.loc, "route `" + r.name + "` costs " + std::to_string(cost) +
                             " instructions in the worst case, over the budget of " +
                             std::to_string(std::min(opts.route_budget, bytecode::kMaxRouteCost)));
      ok = false;
    }
    rec.cost = static_cast<uint32_t>(cost);
    max_cost = std::max(max_cost, rec.cost);
  }
  data.max_route_cost = max_cost;
  return ok;
}

}  // namespace vakt::compiler
