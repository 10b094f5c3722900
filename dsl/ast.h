// The Vakt abstract syntax tree: what the front end (parser.cc, the only
// file that sees ANTLR) hands to the compiler. Plain structs owned by their
// File; every node carries the Location that diagnostics point at. No ANTLR
// type appears here.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dsl/source.h"

namespace vakt::dsl::ast {

struct TypeRef {
  enum class Kind : uint8_t { kBool, kInt, kString, kDuration, kTimestamp, kJson, kNull, kList };
  Kind kind = Kind::kJson;
  std::unique_ptr<TypeRef> elem;  // kList only
  Location loc;
};

enum class ExprKind : uint8_t {
  kNull,      // null
  kBool,      // true / false             -> bool_value
  kInt,       // 42                       -> int_value
  kDuration,  // 10s, 5m, 2h, 1d          -> int_value (seconds)
  kString,    // "text" or r"raw"         -> text (escapes already decoded)
  kList,      // [a, b, c]                -> children
  kName,      // identifier               -> text
  kMember,    // x.name                   -> children[0] = x, text = name
  kIndex,     // x[i]                     -> children[0] = x, children[1] = i
  kCall,      // f(a, b)                  -> children[0] = callee, rest = args
  kUnary,     // !x, -x                   -> uop, children[0]
  kBinary,    // x op y                   -> bop, children[0], children[1]
};

enum class UnaryOp : uint8_t { kNot, kNeg };

enum class BinaryOp : uint8_t {
  kOr, kAnd,                          // ||  &&
  kEq, kNe, kLt, kLe, kGt, kGe,       // == != < <= > >=
  kIn, kMatches,                      // in  matches
  kAdd, kSub, kMul, kDiv, kMod,       // + - * / %
};

struct Expr {
  ExprKind kind = ExprKind::kNull;
  Location loc;
  bool bool_value = false;
  int64_t int_value = 0;
  std::string text;
  UnaryOp uop = UnaryOp::kNot;
  BinaryOp bop = BinaryOp::kEq;
  std::vector<std::unique_ptr<Expr>> children;
};

// `deny STATUS [error_code] ["message"]`
struct DenySpec {
  int status = 403;
  std::string error;    // "" when omitted
  std::string message;  // "" when omitted
  Location loc;
};

enum class StmtKind : uint8_t {
  kUse,      // use profile_name | use pkg.profile_name   -> name
  kLet,      // let name = expr                           -> name, expr
  kRequire,  // [label:] require expr else deny ...       -> label, expr, deny
  kDenyIf,   // [label:] deny ... if expr                 -> label, expr, deny
  kOwns,     // [label:] owns obj { clauses } [else deny]  -> label, expr (the
             //   object), clauses, deny if has_deny
  kBody,     // [label:] body [STATUS|4XX|default] NAME [settings] -> label, name,
             //   body_status, settings; `body openapi "doc"` -> body_openapi
};

// `body` statement status: the request body, or a response status key.
inline constexpr int kBodyRequest = -1;  // `body NAME` (request side)
inline constexpr int kBodyDefault = 0;   // `body default NAME`

// One clause of `owns`: `== value [if cond]` or `in value [if cond]`.
struct OwnClause {
  bool in = false;
  std::unique_ptr<Expr> value;
  std::unique_ptr<Expr> cond;  // null without `if`
  Location loc;
};

// `name = value` in an issuer or `use fapi2 { ... }`; `loosen` marks a
// deliberate weakening of the FAPI 2.0 defaults.
struct Setting {
  std::string name;
  Location loc;
  bool loosen = false;
  std::unique_ptr<Expr> value;
};

struct Stmt {
  StmtKind kind = StmtKind::kRequire;
  Location loc;
  std::string label;  // optional rule label ("" = none)
  std::string name;   // kUse: profile (maybe qualified "pkg.name"); kLet: variable
  Location name_loc;
  std::unique_ptr<Expr> expr;
  DenySpec deny;
  bool has_settings = false;       // kUse: `use fapi2 { ... }`
  std::vector<Setting> settings;
  std::vector<OwnClause> clauses;  // kOwns
  bool has_deny = false;           // kOwns: an explicit `else deny ...`
  int body_status = kBodyRequest;  // kBody: kBodyRequest, kBodyDefault, 1..5 (`4XX`) or 100..599
  bool body_status_class = false;  // kBody: body_status 1..5 was written `1XX`..`5XX`
  Location status_loc;             // kBody: of the status, when written
  std::string body_openapi;        // kBody: `body openapi "doc.yaml"` (name empty)
};

// A rule body: request statements and optional `on response { ... }`.
struct Body {
  std::vector<Stmt> request;
  bool has_response = false;
  Location response_loc;
  std::vector<Stmt> response;
};

struct Route {
  std::string name;    // optional; "" = derived from method and path
  std::string method;  // as written ("GET")
  std::string path;    // template as written, relative to the api base
  Location loc;
  Location method_loc;
  Location path_loc;
  Body body;
};

struct Api {
  std::string name;
  std::string base_path;
  Location loc;
  Location base_loc;
  Body body;  // applies to every route of the api, before the route's own
  std::vector<Route> routes;
};

struct Profile {
  std::string name;
  Location loc;
  Body body;
};

// `issuer NAME { url = ... audience = ... jwks = ... }`
struct Issuer {
  std::string name;
  Location loc;
  std::vector<Setting> settings;
};

// `relation NAME: string = "file.json"` (or `list<string>`).
struct Relation {
  std::string name;
  TypeRef type;
  std::string file;
  Location loc;
  Location file_loc;
};

// `schema NAME = "file.json" | { json } | openapi "doc.yaml" "Component"`
// with optional settings (`strict`, `format`).
struct SchemaDef {
  enum class Kind : uint8_t { kFile, kInline, kOpenApi };
  std::string name;
  Kind kind = Kind::kFile;
  std::string source;     // the file as written, or the inline JSON text
  std::string component;  // kOpenApi
  Location loc;
  Location source_loc;
  bool has_settings = false;
  std::vector<Setting> settings;
};

struct Const {
  std::string name;
  std::optional<TypeRef> type;
  std::unique_ptr<Expr> value;
  Location loc;
  bool is_let = false;  // `let` at file level (a named expression, maybe not constant)
};

struct Param {
  std::string name;
  TypeRef type;
  Location loc;
};

struct Function {
  std::string name;
  std::vector<Param> params;
  TypeRef result;
  std::unique_ptr<Expr> body;
  Location loc;
};

// `shape Id = "^[A-Za-z0-9-]{1,64}$"`: a named shape for path parameters.
struct Shape {
  std::string name;
  std::string pattern;
  Location loc;
  Location pattern_loc;
};

// One entry of `claims { name: type ... }`; name may be dotted ("cnf.jkt").
struct ClaimDecl {
  std::string path;
  TypeRef type;
  Location loc;
};

struct Expectation {
  bool allow = true;
  int status = 0;     // 0 = any
  std::string error;  // "" = any
  Location loc;
};

struct Test {
  std::string name;
  Location loc;
  std::string request_json;   // raw JSON text of `request {...}`
  Location request_loc;
  std::string claims_json;    // "" when absent
  Location claims_loc;
  std::string response_json;  // "" when absent
  Location response_loc;
  std::optional<int64_t> now;  // `now 1700000000`
  // `token ["ALG"] { claims }`: a real access token signed by a test key.
  bool has_token = false;
  std::string token_alg;       // "" = ES256
  std::string token_json;
  Location token_loc;
  // `dpop [{ overrides }]`: a DPoP proof for the request, token bound to it.
  bool has_dpop = false;
  std::string dpop_json;       // "" = no overrides
  Location dpop_loc;
  // `cert ["other"]`: present the test client certificate (or another one).
  bool has_cert = false;
  std::string cert;            // "" = the client's own
  Location cert_loc;
  // `revoke { "jti": [...], "sub": {"s": cutoff}, "client_id": {...} }`
  std::string revoke_json;
  Location revoke_loc;
  Expectation expect;
  bool has_expect = false;
};

struct Import {
  std::string package;
  std::string alias;  // "" = the package name
  Location loc;
};

struct File {
  const SourceFile* source = nullptr;
  std::string package;  // "" when the file has no `package` line ("main")
  Location package_loc;
  std::vector<Import> imports;
  std::vector<Const> consts;
  std::vector<Function> functions;
  std::vector<Shape> shapes;
  std::vector<ClaimDecl> claims;
  std::vector<Profile> profiles;
  std::vector<Api> apis;
  std::vector<Issuer> issuers;
  std::vector<Relation> relations;
  std::vector<SchemaDef> schemas;
  std::vector<Test> tests;
};

}  // namespace vakt::dsl::ast
