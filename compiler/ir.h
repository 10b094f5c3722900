// The typed intermediate form between semantic analysis (lower.cc) and code
// generation (codegen.cc). Every name is resolved, every function, `let` and
// `const` is inlined, every `use` of a profile is expanded, every JSON value
// in a typed position is wrapped in an explicit conversion. The reference
// evaluator (interp.cc) runs this tree directly; the differential tests hold
// the VM to it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bytecode/format.h"
#include "dsl/ast.h"

namespace vakt::compiler {

using bytecode::Builtin;
using bytecode::RequestField;
using bytecode::ResponseField;
using bytecode::Source;
using bytecode::ValueType;

// A static type. Lists hold scalars or json (no nested lists).
struct Type {
  ValueType kind = ValueType::kNull;
  ValueType elem = ValueType::kNull;  // kList only

  static Type Of(ValueType k) { return Type{k, ValueType::kNull}; }
  static Type ListOf(ValueType e) { return Type{ValueType::kList, e}; }
  bool operator==(const Type& o) const {
    return kind == o.kind && (kind != ValueType::kList || elem == o.elem);
  }
  bool operator!=(const Type& o) const { return !(*this == o); }
};

std::string TypeName(Type t);

enum class IrKind : uint8_t {
  kConst,    // literal: type + bool_value / int_value / str
  kList,     // list literal: children
  kReq,      // request field: field
  kResp,     // response field: rfield
  kParam,    // path parameter: index
  kFirst,    // first value of source/name (claim: claim_path, converted to type)
  kAll,      // all values of source/name as list<string>
  kHas,      // presence of source/name (or claim_path)
  kConvert,  // children[0] (json) converted to type
  kField,    // children[0] (json object) member str
  kIndex,    // children[0][children[1]]
  kNot,      // !children[0]
  kNeg,      // -children[0]
  kAnd,      // children[0] && children[1] (short-circuit)
  kOr,       // children[0] || children[1] (short-circuit)
  kBinary,   // op(children[0], children[1]); op is one of kEq..kMod, kIn
  kMatch,    // children[0] matches regex `str` (validated RE2)
  kCall,     // builtin(children...)
  kRelation, // relation `index` looked up by children[0] (string key);
             //   bool_value: presence test (`has(rel[key])`) instead
};

struct IrExpr {
  IrKind kind = IrKind::kConst;
  Type type;
  dsl::Location loc;
  bool bool_value = false;
  int64_t int_value = 0;
  std::string str;                      // string value, header/query name, field name, regex
  std::vector<std::string> claim_path;  // kFirst/kHas with Source::kClaim
  RequestField field = RequestField::kMethod;
  ResponseField rfield = ResponseField::kStatus;
  Source source = Source::kHeader;
  uint32_t index = 0;      // kParam / kFirst|kHas with Source::kParam
  bytecode::Op op = bytecode::Op::kEq;  // kBinary
  Builtin builtin = Builtin::kLen;      // kCall
  std::vector<std::unique_ptr<IrExpr>> children;
};

std::unique_ptr<IrExpr> Clone(const IrExpr& e);

// One clause of an ownership rule: `== value` or `in value`, if `cond`.
struct IrOwnClause {
  bool in = false;                // false: object == value; true: object in value
  std::unique_ptr<IrExpr> value;  // string (==) or list<string> (in), already typed
  std::unique_ptr<IrExpr> cond;   // null: always applies
  std::string value_text;         // as written, for tools: "token.patient_id"
  std::string cond_text;          // "" or as written: "token.role == \"patient\""
  dsl::Location loc;
};

// `owns OBJECT { clauses }`: the rule passes when a clause whose condition
// holds matches. Kept as a structure so that tools (vakt check, the test
// generator) can read it; IrRule::cond holds the same logic as code:
// (c1 && obj == v1) || (c2 && obj in v2) || ...
struct IrOwnership {
  std::unique_ptr<IrExpr> object;  // string
  std::string object_text;         // as written: "params.patient_id"
  std::vector<IrOwnClause> clauses;
  bool response = false;           // in `on response`
};

// One body check (`body NAME`, `body 200 NAME`, `body openapi "doc"`): the
// body validated against schema root `root` of IrProgram::schemas.
struct IrBodyCheck {
  std::string rule_id;  // "records.create_record.body", "...get_record.body.200"
  std::string schema;   // the schema's name
  uint32_t root = 0;    // root index in the compiled set (after CompileSchemas)
  bool response = false;
  uint16_t status = 0;  // response: 100..599, 1..5 ("4XX"), 0 default
  uint32_t max_bytes = 1u << 20;
  uint32_t max_depth = 64;
  uint32_t max_properties = 1000;
  uint32_t max_items = 10000;
  uint32_t max_string = 1u << 16;
  std::string accept;   // comma-separated media types let through unchecked
  bool strict = false;  // strict mode (schema setting or this check's), for tools
  dsl::Location loc;
};

// One requirement: the request passes it when `cond` is true.
struct IrRule {
  std::string id;          // e.g. "records.get_record.owner"
  int status = 403;
  std::string error;       // RFC 6750/9449-style code, may be ""
  std::string message;
  std::unique_ptr<IrExpr> cond;
  dsl::Location loc;
  std::shared_ptr<const IrOwnership> owns;  // set for `owns` rules
  // Non-empty: a body check rule (cond is null). A request rule holds one
  // check; a response rule every `body STATUS` check of the route, of
  // which the one matching the response status runs.
  std::vector<IrBodyCheck> bodies;
};

// A path template segment: a literal or a parameter with an optional shape.
struct IrSegment {
  bool is_param = false;
  std::string text;     // literal text, or parameter name
  std::string shape;    // regex (RE2) the parameter must fully match; "" = any
  std::string shape_name;
};

// A declared token issuer (`issuer NAME { ... }`), keys read at build time.
struct IrIssuer {
  std::string name;      // "healthcare.main"
  std::string url;       // exact `iss`
  std::string audience;  // must be in `aud`
  std::string jwks;      // the JWKS text, public keys only (validated)
  uint32_t algs = 0;     // bytecode::AlgBit set
  int64_t leeway = 10;   // seconds
  bool fapi = true;      // false: `loosen fapi = false`
  dsl::Location loc;
};

// What `use fapi2 { ... }` demands of a route (format.h AuthRecord).
struct IrAuth {
  uint32_t issuer = 0;  // index into IrProgram::issuers
  uint8_t sender = 0;   // bytecode::SenderConstraint
  uint8_t tls = 0;      // bytecode::TlsRequirement
  bool dpop_nonce = false;
  int64_t dpop_window = 60;
  std::vector<std::string> scopes;  // required, in order of first mention
  std::vector<std::string> loosened;  // what was loosened, for `vakt check`
};

struct IrRoute {
  std::string name;           // "records.get_record"
  std::string method;         // "GET"
  std::string path_template;  // "/v1/patients/{patient_id}"
  std::vector<IrSegment> segments;
  std::vector<std::string> param_names;
  std::vector<IrRule> request_rules;
  std::vector<IrRule> response_rules;
  std::optional<IrAuth> auth;  // set by `use fapi2`
  dsl::Location loc;
};

// `relation NAME: string|list<string> = "file.json"`: read and checked at
// build time, entries sorted by key bytes (no key twice).
struct IrRelation {
  std::string name;  // "healthcare.care_teams"
  bool list = false;
  std::vector<std::pair<std::string, std::vector<std::string>>> entries;
  std::string file;  // as written
  dsl::Location loc;
};

struct IrProgram {
  std::string name;
  std::vector<IrIssuer> issuers;
  std::vector<IrRelation> relations;
  std::vector<IrRoute> routes;
  std::string schemas;  // the compiled SchemaSet blob ("" = no schemas)
};

}  // namespace vakt::compiler
