// Semantic analysis: resolves names, checks types and inlines everything
// into the IR of ir.h. See lower.h for the contract.
//
// Scoping: a file sees its own package's declarations and, through
// `import pkg [as alias]`, another package's as `alias.name`. Inside a body,
// `let` bindings are visible to the statements after them (and to the
// `on response` block). Functions, lets and consts are macros over pure
// expressions: inlining them does not change meaning, only cost.
#include "compiler/lower.h"

#include "bytecode/body_check.h"
#include "compiler/schemas.h"

#include <re2/re2.h>

#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>

#include <simdjson.h>

#include "bytecode/fapi_auth.h"
#include "bytecode/jose.h"
#include "bytecode/request.h"
#include "dsl/parser.h"

namespace vakt::compiler {
namespace {

using dsl::Diagnostics;
using dsl::Location;
namespace ast = dsl::ast;

std::string Bt(const std::string& s) { return "`" + s + "`"; }

Type FromTypeRef(const ast::TypeRef& t, Diagnostics& diags) {
  using K = ast::TypeRef::Kind;
  switch (t.kind) {
    case K::kBool: return Type::Of(ValueType::kBool);
    case K::kInt: return Type::Of(ValueType::kInt);
    case K::kString: return Type::Of(ValueType::kString);
    case K::kDuration: return Type::Of(ValueType::kDuration);
    case K::kTimestamp: return Type::Of(ValueType::kTimestamp);
    case K::kJson: return Type::Of(ValueType::kJson);
    case K::kNull: return Type::Of(ValueType::kNull);
    case K::kList: {
      if (!t.elem) return Type::ListOf(ValueType::kJson);
      Type e = FromTypeRef(*t.elem, diags);
      if (e.kind == ValueType::kList) {
        diags.Error(t.loc, "nested lists are not supported");
        return Type::ListOf(ValueType::kJson);
      }
      return Type::ListOf(e.kind);
    }
  }
  return Type::Of(ValueType::kJson);
}

bool IsScalar(ValueType k) {
  return k == ValueType::kBool || k == ValueType::kInt || k == ValueType::kString ||
         k == ValueType::kDuration || k == ValueType::kTimestamp;
}

std::unique_ptr<IrExpr> Make(IrKind kind, Type type, const Location& loc) {
  auto e = std::make_unique<IrExpr>();
  e->kind = kind;
  e->type = type;
  e->loc = loc;
  return e;
}

// Claims every token carries, typed by the standards (RFC 9068, RFC 7519).
const std::map<std::string, Type>& DefaultClaims() {
  static const auto* m = new std::map<std::string, Type>{
      {"iss", Type::Of(ValueType::kString)},    {"sub", Type::Of(ValueType::kString)},
      {"aud", Type::Of(ValueType::kJson)},      {"exp", Type::Of(ValueType::kTimestamp)},
      {"nbf", Type::Of(ValueType::kTimestamp)}, {"iat", Type::Of(ValueType::kTimestamp)},
      {"jti", Type::Of(ValueType::kString)},    {"client_id", Type::Of(ValueType::kString)},
      {"scope", Type::Of(ValueType::kString)},
  };
  return *m;
}

struct Package;

// Per-file view: which package it belongs to and what it imports.
struct FileCtx {
  const ast::File* file = nullptr;
  Package* pkg = nullptr;
  std::map<std::string, Package*> imports;  // alias -> package
};

struct Package {
  std::string name;
  std::map<std::string, std::pair<const ast::Const*, FileCtx*>> consts;
  std::map<std::string, std::pair<const ast::Function*, FileCtx*>> functions;
  std::map<std::string, std::pair<const ast::Shape*, FileCtx*>> shapes;
  std::map<std::string, std::pair<const ast::Profile*, FileCtx*>> profiles;
  std::map<std::string, uint32_t> issuers;  // name -> IrProgram::issuers index
  std::map<std::string, uint32_t> relations;  // name -> IrProgram::relations index
  std::map<std::string, Location> defined;  // every top-level name, for duplicates
};

// A binding visible in a body or function: an already-lowered expression.
struct Local {
  std::string name;
  const IrExpr* value;
};

// Everything an expression needs to be lowered.
struct Env {
  FileCtx* file = nullptr;
  std::vector<Local>* locals = nullptr;
  const IrRoute* route = nullptr;  // null outside a route (e.g. const checks)
  bool in_response = false;
  int depth = 0;
  // Checking a function body on its own: path parameters and the response
  // are placeholders, checked again where the function is inlined.
  bool fn_check = false;
};

class Lowerer {
 public:
  Lowerer(Diagnostics& diags, const AssetReader& read_asset)
      : diags_(diags), read_asset_(read_asset) {}

  IrProgram Run(const std::vector<const ast::File*>& files, const std::string& name);

 private:
  void Error(const Location& loc, std::string msg) {
    // Profiles and lets are expanded once per route; report each problem once.
    auto key = std::make_tuple(loc.file, loc.line, loc.column, msg);
    if (!reported_.insert(key).second) return;
    diags_.Error(loc, std::move(msg));
  }

  void Warning(const Location& loc, std::string msg) {
    auto key = std::make_tuple(loc.file, loc.line, loc.column, "warning: " + msg);
    if (!reported_.insert(key).second) return;
    diags_.Warning(loc, std::move(msg));
  }

  void Declare(Package& pkg, const std::string& name, const Location& loc);
  void CollectClaims(const ast::File& f);

  // FAPI 2.0: issuers and the built-in `fapi2` profile.
  void LowerIssuer(const ast::Issuer& is, FileCtx* file, IrProgram& prog);
  void ApplyFapi2(const ast::Stmt& s, FileCtx* file, IrRoute& route);
  bool ResolveIssuer(const ast::Expr& e, FileCtx* file, uint32_t* index);

  // Relations and ownership.
  void LowerRelation(const ast::Relation& r, FileCtx* file, IrProgram& prog);
  bool ResolveRelation(const ast::Expr& e, Env& env, uint32_t* index);
  void LowerOwns(const ast::Stmt& s, FileCtx* file, IrRoute& route, bool response,
                 std::vector<Local>& locals, IrRule& rule);

  // Expressions.
  std::unique_ptr<IrExpr> LowerExpr(const ast::Expr& e, Env& env);
  std::unique_ptr<IrExpr> LowerPath(const ast::Expr& e, Env& env, bool* handled);
  std::unique_ptr<IrExpr> LowerName(const ast::Expr& e, Env& env);
  std::unique_ptr<IrExpr> LowerCall(const ast::Expr& e, Env& env);
  std::unique_ptr<IrExpr> LowerBinary(const ast::Expr& e, Env& env);
  std::unique_ptr<IrExpr> InlineConst(const ast::Const& c, FileCtx* def, const Location& use,
                                      Env& env);
  std::unique_ptr<IrExpr> InlineFunction(const ast::Function& f, FileCtx* def,
                                         std::vector<std::unique_ptr<IrExpr>> args,
                                         const Location& use, Env& env);
  std::unique_ptr<IrExpr> Coerce(std::unique_ptr<IrExpr> e, Type want);
  std::unique_ptr<IrExpr> Expect(std::unique_ptr<IrExpr> e, Type want, const char* what);
  std::unique_ptr<IrExpr> Bad(const Location& loc) {
    // An already-reported error: a JSON-typed placeholder converts to any
    // type silently, so one mistake yields one diagnostic.
    auto e = Make(IrKind::kConst, Type::Of(ValueType::kJson), loc);
    poisoned_ = true;
    return e;
  }

  // Bodies and routes.
  struct BodyOut {
    IrRoute* route;
    std::string scope;  // rule id prefix
    int rule_counter = 0;
    std::set<std::string> labels;
  };
  void ExpandBody(const ast::Body& body, FileCtx* file, IrRoute& route, const std::string& scope,
                  std::vector<const ast::Profile*>& stack, int depth);
  void ExpandStmts(const std::vector<ast::Stmt>& stmts, FileCtx* file, IrRoute& route,
                   bool response, BodyOut& out, std::vector<Local>& locals,
                   std::vector<std::unique_ptr<IrExpr>>& let_storage,
                   std::vector<const ast::Profile*>& stack, int depth);
  bool ParseTemplate(const std::string& base, const ast::Route& r, FileCtx* file, IrRoute& out);
  // Schemas (compiler/schemas.h): declarations, `body` statements, and the
  // final compile that fills in every check's root.
  void DeclareSchema(const ast::SchemaDef& d, FileCtx* file);
  void LowerBody(const ast::Stmt& s, FileCtx* file, IrRoute& route, bool response, BodyOut& out);
  void FinishSchemas(IrProgram& prog);
  struct SchemaUse {
    std::string name;  // qualified: "pkg.Name" (+ "#strict" for a strict variant)
    const ast::SchemaDef* def = nullptr;
    FileCtx* file = nullptr;
    bool strict = false;
  };
  std::map<std::string, std::pair<const ast::SchemaDef*, FileCtx*>> schema_defs_;  // "pkg.Name"
  std::map<std::string, SchemaUse> schema_uses_;  // roots to compile, by name
  std::vector<OpenApiBinding> openapi_bindings_;
  std::string current_base_;  // the api base path of the route being expanded
  std::string ResolveShape(const std::string& name, FileCtx* file, const Location& loc,
                           std::string* shape_name, bool* ok);
  const ast::Profile* FindProfile(const std::string& name, FileCtx* file, FileCtx** def,
                                  const Location& loc);

  Diagnostics& diags_;
  const AssetReader& read_asset_;
  IrProgram* prog_ = nullptr;
  std::set<std::tuple<const dsl::SourceFile*, uint32_t, uint32_t, std::string>> reported_;
  std::map<std::string, std::unique_ptr<Package>> packages_;
  std::vector<std::unique_ptr<FileCtx>> file_ctxs_;
  std::map<std::string, std::pair<Type, Location>> claims_;
  std::vector<const ast::Const*> const_stack_;
  std::vector<const ast::Function*> fn_stack_;
  std::set<const ast::Profile*> route_profiles_;  // expanded into the current route
  bool poisoned_ = false;
  size_t ir_nodes_ = 0;
  bool too_big_reported_ = false;
};

// ---------------------------------------------------------------------------
// Declarations

void Lowerer::Declare(Package& pkg, const std::string& name, const Location& loc) {
  auto [it, inserted] = pkg.defined.emplace(name, loc);
  if (!inserted) {
    Error(loc, Bt(name) + " is already defined in package " + Bt(pkg.name));
    diags_.Note(it->second, "previous definition of " + Bt(name) + " is here");
  }
}

void Lowerer::CollectClaims(const ast::File& f) {
  for (const auto& c : f.claims) {
    Type t = FromTypeRef(c.type, diags_);
    auto it = claims_.find(c.path);
    if (it != claims_.end()) {
      if (it->second.first != t) {
        Error(c.loc, "claim " + Bt(c.path) + " is declared as " + Bt(TypeName(t)) +
                         " here but as " + Bt(TypeName(it->second.first)) + " elsewhere");
      }
      continue;
    }
    claims_.emplace(c.path, std::make_pair(t, c.loc));
  }
}

const char* BuiltinShapeImpl(const std::string& name) {
  if (name == "int") return "-?[0-9]{1,19}";
  if (name == "uuid") return "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}";
  return nullptr;
}

// ---------------------------------------------------------------------------
// Expressions

std::unique_ptr<IrExpr> Lowerer::Coerce(std::unique_ptr<IrExpr> e, Type want) {
  if (e->type == want) return e;
  if (e->type.kind == ValueType::kJson &&
      (IsScalar(want.kind) || want.kind == ValueType::kNull ||
       (want.kind == ValueType::kList && (IsScalar(want.elem) || want.elem == ValueType::kJson)))) {
    auto c = Make(IrKind::kConvert, want, e->loc);
    c->children.push_back(std::move(e));
    return c;
  }
  return nullptr;
}

std::unique_ptr<IrExpr> Lowerer::Expect(std::unique_ptr<IrExpr> e, Type want, const char* what) {
  Location loc = e->loc;
  Type got = e->type;
  auto c = Coerce(std::move(e), want);
  if (!c) {
    Error(loc, std::string(what) + " must be " + Bt(TypeName(want)) + ", got " +
                   Bt(TypeName(got)));
    auto b = Make(IrKind::kConst, want, loc);
    return b;
  }
  return c;
}

size_t CountNodes(const IrExpr& e) {
  size_t n = 1;
  for (const auto& c : e.children) n += CountNodes(*c);
  return n;
}

std::unique_ptr<IrExpr> Lowerer::LowerExpr(const ast::Expr& e, Env& env) {
  // Inlining can grow a policy exponentially (let a = b + b, b = c + c, ...):
  // bound the work before the cost budget is ever computed.
  if (++ir_nodes_ > kMaxIrNodes) {
    if (!too_big_reported_) {
      too_big_reported_ = true;
      Error(e.loc, "the policy is too large after inlining functions, lets and constants (over " +
                       std::to_string(kMaxIrNodes) + " expression nodes)");
    }
    return Bad(e.loc);
  }
  if (env.depth > 4 * dsl::kMaxNesting) {
    Error(e.loc, "expression nests too deeply");
    return Bad(e.loc);
  }
  struct DepthGuard {
    Env& env;
    explicit DepthGuard(Env& e) : env(e) { ++env.depth; }
    ~DepthGuard() { --env.depth; }
  } guard(env);

  switch (e.kind) {
    case ast::ExprKind::kNull: return Make(IrKind::kConst, Type::Of(ValueType::kNull), e.loc);
    case ast::ExprKind::kBool: {
      auto r = Make(IrKind::kConst, Type::Of(ValueType::kBool), e.loc);
      r->bool_value = e.bool_value;
      return r;
    }
    case ast::ExprKind::kInt: {
      auto r = Make(IrKind::kConst, Type::Of(ValueType::kInt), e.loc);
      r->int_value = e.int_value;
      return r;
    }
    case ast::ExprKind::kDuration: {
      auto r = Make(IrKind::kConst, Type::Of(ValueType::kDuration), e.loc);
      r->int_value = e.int_value;
      return r;
    }
    case ast::ExprKind::kString: {
      auto r = Make(IrKind::kConst, Type::Of(ValueType::kString), e.loc);
      r->str = e.text;
      return r;
    }
    case ast::ExprKind::kList: {
      if (e.children.empty()) {
        Error(e.loc, "an empty list literal has no type; leave it out or use a non-empty list");
        return Bad(e.loc);
      }
      std::vector<std::unique_ptr<IrExpr>> elems;
      Type elem = Type::Of(ValueType::kJson);
      for (const auto& c : e.children) {
        if (!c) return Bad(e.loc);
        elems.push_back(LowerExpr(*c, env));
        if (elem.kind == ValueType::kJson && elems.back()->type.kind != ValueType::kJson) {
          elem = elems.back()->type;  // the first typed element decides
        }
      }
      if (elem.kind == ValueType::kList) {
        Error(e.loc, "nested lists are not supported");
        return Bad(e.loc);
      }
      if (elems.size() > bytecode::kMaxStack - 2) {
        Error(e.loc, "a list literal may have at most " + std::to_string(bytecode::kMaxStack - 2) +
                         " elements");
        return Bad(e.loc);
      }
      auto r = Make(IrKind::kList, Type::ListOf(elem.kind), e.loc);
      for (auto& x : elems) r->children.push_back(Expect(std::move(x), elem, "a list element"));
      return r;
    }
    case ast::ExprKind::kName: return LowerName(e, env);
    case ast::ExprKind::kMember:
    case ast::ExprKind::kIndex: {
      uint32_t rel = 0;
      if (e.kind == ast::ExprKind::kIndex && e.children.size() == 2 && e.children[0] &&
          e.children[1] && ResolveRelation(*e.children[0], env, &rel)) {
        const IrRelation& r = prog_->relations[rel];
        auto key = Expect(LowerExpr(*e.children[1], env), Type::Of(ValueType::kString),
                          "a relation key");
        auto out = Make(IrKind::kRelation,
                        r.list ? Type::ListOf(ValueType::kString) : Type::Of(ValueType::kString),
                        e.loc);
        out->index = rel;
        out->children.push_back(std::move(key));
        return out;
      }
      bool handled = false;
      auto r = LowerPath(e, env, &handled);
      if (handled) return r;
      if (e.children.empty() || !e.children[0]) return Bad(e.loc);
      auto base = LowerExpr(*e.children[0], env);
      if (e.kind == ast::ExprKind::kMember) {
        if (base->type.kind != ValueType::kJson) {
          if (!poisoned_) {
            Error(e.loc, "a value of type " + Bt(TypeName(base->type)) + " has no field " +
                             Bt(e.text));
          }
          return Bad(e.loc);
        }
        auto f = Make(IrKind::kField, Type::Of(ValueType::kJson), e.loc);
        f->str = e.text;
        f->children.push_back(std::move(base));
        return f;
      }
      if (e.children.size() < 2 || !e.children[1]) return Bad(e.loc);
      const ast::Expr& idx = *e.children[1];
      if (base->type.kind == ValueType::kJson && idx.kind == ast::ExprKind::kString) {
        auto f = Make(IrKind::kField, Type::Of(ValueType::kJson), e.loc);
        f->str = idx.text;
        f->children.push_back(std::move(base));
        return f;
      }
      auto i = Expect(LowerExpr(idx, env), Type::Of(ValueType::kInt), "a list index");
      Type result;
      if (base->type.kind == ValueType::kList) {
        result = Type::Of(base->type.elem);
      } else if (base->type.kind == ValueType::kJson) {
        result = Type::Of(ValueType::kJson);
      } else {
        Error(e.loc, "cannot index a value of type " + Bt(TypeName(base->type)));
        return Bad(e.loc);
      }
      auto r2 = Make(IrKind::kIndex, result, e.loc);
      r2->children.push_back(std::move(base));
      r2->children.push_back(std::move(i));
      return r2;
    }
    case ast::ExprKind::kCall: return LowerCall(e, env);
    case ast::ExprKind::kUnary: {
      if (e.children.empty() || !e.children[0]) return Bad(e.loc);
      auto x = LowerExpr(*e.children[0], env);
      if (e.uop == ast::UnaryOp::kNot) {
        auto r = Make(IrKind::kNot, Type::Of(ValueType::kBool), e.loc);
        r->children.push_back(Expect(std::move(x), Type::Of(ValueType::kBool), "the operand of `!`"));
        return r;
      }
      if (x->type.kind == ValueType::kJson) x = Coerce(std::move(x), Type::Of(ValueType::kInt));
      if (x->type.kind != ValueType::kInt && x->type.kind != ValueType::kDuration) {
        Error(e.loc, "the operand of `-` must be `int` or `duration`, got " +
                         Bt(TypeName(x->type)));
        return Bad(e.loc);
      }
      auto r = Make(IrKind::kNeg, x->type, e.loc);
      r->children.push_back(std::move(x));
      return r;
    }
    case ast::ExprKind::kBinary: return LowerBinary(e, env);
  }
  return Bad(e.loc);
}

std::unique_ptr<IrExpr> Lowerer::LowerName(const ast::Expr& e, Env& env) {
  const std::string& n = e.text;
  if (env.locals) {
    for (auto it = env.locals->rbegin(); it != env.locals->rend(); ++it) {
      if (it->name == n) {
        ir_nodes_ += CountNodes(*it->value);
        if (ir_nodes_ > kMaxIrNodes) return Bad(e.loc);  // reported by the next LowerExpr
        return Clone(*it->value);
      }
    }
  }
  Package* pkg = env.file->pkg;
  if (auto it = pkg->consts.find(n); it != pkg->consts.end()) {
    return InlineConst(*it->second.first, it->second.second, e.loc, env);
  }
  if (n == "now") {
    auto r = Make(IrKind::kReq, Type::Of(ValueType::kTimestamp), e.loc);
    r->field = RequestField::kTime;
    return r;
  }
  if (n == "request" || n == "response" || n == "token" || n == "params") {
    Error(e.loc, Bt(n) + " needs a field, e.g. " +
                     Bt(n == "request"    ? "request.method"
                        : n == "response" ? "response.status"
                        : n == "token"    ? "token.sub"
                                          : "params.id"));
    return Bad(e.loc);
  }
  if (pkg->functions.count(n)) {
    Error(e.loc, "function " + Bt(n) + " must be called");
    return Bad(e.loc);
  }
  if (pkg->relations.count(n)) {
    Error(e.loc, "relation " + Bt(n) + " is a table: look a key up with " + Bt(n + "[key]"));
    return Bad(e.loc);
  }
  if (env.file->imports.count(n)) {
    Error(e.loc, "package " + Bt(n) + " is not a value; name one of its declarations");
    return Bad(e.loc);
  }
  Error(e.loc, "unknown name " + Bt(n));
  return Bad(e.loc);
}

std::unique_ptr<IrExpr> Lowerer::InlineConst(const ast::Const& c, FileCtx* def,
                                             const Location& use, Env& env) {
  if (std::find(const_stack_.begin(), const_stack_.end(), &c) != const_stack_.end()) {
    Error(c.loc, Bt(c.name) + " is defined in terms of itself");
    return Bad(use);
  }
  if (!c.value) return Bad(use);
  const_stack_.push_back(&c);
  Env inner;
  inner.file = def;
  inner.locals = nullptr;
  inner.route = env.route;
  inner.in_response = env.in_response;
  inner.depth = env.depth;
  inner.fn_check = env.fn_check;
  auto v = LowerExpr(*c.value, inner);
  const_stack_.pop_back();
  if (c.type) {
    Type want = FromTypeRef(*c.type, diags_);
    v = Expect(std::move(v), want, ("the value of " + Bt(c.name)).c_str());
  }
  if (!c.is_let) {
    // A const may not depend on the request.
    std::vector<const IrExpr*> todo{v.get()};
    while (!todo.empty()) {
      const IrExpr* x = todo.back();
      todo.pop_back();
      if (x->kind == IrKind::kReq || x->kind == IrKind::kResp || x->kind == IrKind::kParam ||
          x->kind == IrKind::kFirst || x->kind == IrKind::kAll || x->kind == IrKind::kHas) {
        Error(c.loc, "const " + Bt(c.name) +
                         " depends on the request; use `let` for request-dependent values");
        break;
      }
      for (const auto& ch : x->children) todo.push_back(ch.get());
    }
  }
  return v;
}

// request.*, response.*, token.*, params.*, alias.name: the dotted forms
// that name request data rather than compute on values.
std::unique_ptr<IrExpr> Lowerer::LowerPath(const ast::Expr& e, Env& env, bool* handled) {
  *handled = false;
  // Collect the chain root.part.part["part"] ...
  std::vector<std::string> parts;
  std::vector<const ast::Expr*> chain;
  const ast::Expr* cur = &e;
  while (cur && (cur->kind == ast::ExprKind::kMember ||
                 (cur->kind == ast::ExprKind::kIndex && cur->children.size() == 2 &&
                  cur->children[1] && cur->children[1]->kind == ast::ExprKind::kString))) {
    parts.push_back(cur->kind == ast::ExprKind::kMember ? cur->text : cur->children[1]->text);
    chain.push_back(cur);
    cur = cur->children.empty() ? nullptr : cur->children[0].get();
  }
  if (!cur || cur->kind != ast::ExprKind::kName || parts.empty()) return nullptr;
  std::reverse(parts.begin(), parts.end());
  const std::string& root = cur->text;
  // Locals and consts shadow the roots.
  if (env.locals) {
    for (const auto& l : *env.locals) {
      if (l.name == root) return nullptr;
    }
  }
  if (env.file->pkg->consts.count(root)) return nullptr;

  auto joined = [&](size_t n) {
    std::string s = root;
    for (size_t i = 0; i < n && i < parts.size(); ++i) s += "." + parts[i];
    return s;
  };

  if (auto imp = env.file->imports.find(root); imp != env.file->imports.end()) {
    *handled = true;
    Package* p = imp->second;
    if (parts.size() != 1) {
      Error(e.loc, "unknown name " + Bt(joined(parts.size())));
      return Bad(e.loc);
    }
    if (auto it = p->consts.find(parts[0]); it != p->consts.end()) {
      return InlineConst(*it->second.first, it->second.second, e.loc, env);
    }
    Error(e.loc, "package " + Bt(p->name) + " has no constant " + Bt(parts[0]));
    return Bad(e.loc);
  }

  auto param = [&](const std::string& name) -> std::unique_ptr<IrExpr> {
    if (env.fn_check) return Make(IrKind::kParam, Type::Of(ValueType::kString), e.loc);
    if (!env.route) {
      Error(e.loc, "path parameters are only available inside a route");
      return Bad(e.loc);
    }
    const auto& names = env.route->param_names;
    auto it = std::find(names.begin(), names.end(), name);
    if (it == names.end()) {
      std::string known;
      for (const auto& n : names) known += (known.empty() ? "" : ", ") + Bt(n);
      Error(e.loc, "route " + Bt(env.route->method + " " + env.route->path_template) +
                       " has no path parameter " + Bt(name) +
                       (known.empty() ? "" : " (it has " + known + ")"));
      return Bad(e.loc);
    }
    auto r = Make(IrKind::kParam, Type::Of(ValueType::kString), e.loc);
    r->index = static_cast<uint32_t>(it - names.begin());
    r->source = Source::kParam;
    return r;
  };
  auto multi = [&](IrKind kind, Source src, const std::string& name) {
    auto r = Make(kind, kind == IrKind::kAll ? Type::ListOf(ValueType::kString)
                                             : Type::Of(ValueType::kString),
                  e.loc);
    r->source = src;
    r->str = name;
    if (src == Source::kHeader || src == Source::kResponseHeader) {
      std::transform(r->str.begin(), r->str.end(), r->str.begin(),
                     [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    }
    return r;
  };

  if (root == "params") {
    *handled = true;
    if (parts.size() != 1) {
      Error(e.loc, "unknown name " + Bt(joined(parts.size())));
      return Bad(e.loc);
    }
    return param(parts[0]);
  }
  // request.json.a.b / response.json["a"]: the body parsed as JSON, then
  // member access as on claims.
  auto body_json = [&](IrKind kind) {
    auto r = Make(kind, Type::Of(ValueType::kJson), e.loc);
    if (kind == IrKind::kReq) {
      r->field = RequestField::kJson;
    } else {
      r->rfield = ResponseField::kJson;
    }
    for (size_t i = 1; i < parts.size(); ++i) {
      auto f = Make(IrKind::kField, Type::Of(ValueType::kJson), e.loc);
      f->str = parts[i];
      f->children.push_back(std::move(r));
      r = std::move(f);
    }
    return r;
  };
  if (root == "request") {
    *handled = true;
    const std::string& p0 = parts[0];
    if (p0 == "json") return body_json(IrKind::kReq);
    if (parts.size() == 1) {
      static const std::map<std::string, std::pair<RequestField, ValueType>> kFields = {
          {"method", {RequestField::kMethod, ValueType::kString}},
          {"path", {RequestField::kPath, ValueType::kString}},
          {"body", {RequestField::kBody, ValueType::kString}},
          {"time", {RequestField::kTime, ValueType::kTimestamp}},
          {"query_string", {RequestField::kQueryString, ValueType::kString}},
          {"route", {RequestField::kRoute, ValueType::kString}},
      };
      if (auto it = kFields.find(p0); it != kFields.end()) {
        auto r = Make(IrKind::kReq, Type::Of(it->second.second), e.loc);
        r->field = it->second.first;
        return r;
      }
    } else if (parts.size() == 2) {
      if (p0 == "tls") {
        static const std::map<std::string, RequestField> kTls = {
            {"version", RequestField::kTlsVersion},
            {"cipher", RequestField::kTlsCipher},
            {"client_cert_thumbprint", RequestField::kTlsCertThumbprint},
        };
        if (auto it = kTls.find(parts[1]); it != kTls.end()) {
          auto r = Make(IrKind::kReq, Type::Of(ValueType::kString), e.loc);
          r->field = it->second;
          return r;
        }
      }
      if (p0 == "headers") return multi(IrKind::kFirst, Source::kHeader, parts[1]);
      if (p0 == "header_values") return multi(IrKind::kAll, Source::kHeader, parts[1]);
      if (p0 == "query") return multi(IrKind::kFirst, Source::kQuery, parts[1]);
      if (p0 == "query_values") return multi(IrKind::kAll, Source::kQuery, parts[1]);
      if (p0 == "params") return param(parts[1]);
    }
    Error(e.loc, "unknown request field " + Bt(joined(parts.size())));
    return Bad(e.loc);
  }
  if (root == "response") {
    *handled = true;
    if (!env.in_response && !env.fn_check) {
      Error(e.loc, "`response` is only available in `on response` rules");
      return Bad(e.loc);
    }
    if (parts[0] == "json") return body_json(IrKind::kResp);
    if (parts.size() == 1 && parts[0] == "status") {
      auto r = Make(IrKind::kResp, Type::Of(ValueType::kInt), e.loc);
      r->rfield = ResponseField::kStatus;
      return r;
    }
    if (parts.size() == 1 && parts[0] == "body") {
      auto r = Make(IrKind::kResp, Type::Of(ValueType::kString), e.loc);
      r->rfield = ResponseField::kBody;
      return r;
    }
    if (parts.size() == 2 && parts[0] == "headers") {
      return multi(IrKind::kFirst, Source::kResponseHeader, parts[1]);
    }
    if (parts.size() == 2 && parts[0] == "header_values") {
      return multi(IrKind::kAll, Source::kResponseHeader, parts[1]);
    }
    Error(e.loc, "unknown response field " + Bt(joined(parts.size())));
    return Bad(e.loc);
  }
  if (root == "token") {
    *handled = true;
    if (parts.size() > bytecode::kMaxClaimPathParts) {
      Error(e.loc, "claim paths may have at most " +
                       std::to_string(bytecode::kMaxClaimPathParts) + " parts");
      return Bad(e.loc);
    }
    std::string path;
    for (const auto& p : parts) path += (path.empty() ? "" : ".") + p;
    Type t = Type::Of(ValueType::kJson);
    if (auto it = claims_.find(path); it != claims_.end()) {
      t = it->second.first;
    } else if (auto d = DefaultClaims().find(path); d != DefaultClaims().end()) {
      t = d->second;
    }
    auto r = Make(IrKind::kFirst, t, e.loc);
    r->source = Source::kClaim;
    r->claim_path = parts;
    return r;
  }
  return nullptr;
}

std::unique_ptr<IrExpr> Lowerer::LowerCall(const ast::Expr& e, Env& env) {
  if (e.children.empty() || !e.children[0]) return Bad(e.loc);
  const ast::Expr& callee = *e.children[0];
  std::vector<const ast::Expr*> arg_ast;
  for (size_t i = 1; i < e.children.size(); ++i) {
    if (!e.children[i]) return Bad(e.loc);
    arg_ast.push_back(e.children[i].get());
  }

  // Imported function: alias.fn(...)
  if (callee.kind == ast::ExprKind::kMember && !callee.children.empty() && callee.children[0] &&
      callee.children[0]->kind == ast::ExprKind::kName) {
    auto imp = env.file->imports.find(callee.children[0]->text);
    if (imp != env.file->imports.end()) {
      Package* p = imp->second;
      auto it = p->functions.find(callee.text);
      if (it == p->functions.end()) {
        Error(callee.loc, "package " + Bt(p->name) + " has no function " + Bt(callee.text));
        return Bad(e.loc);
      }
      std::vector<std::unique_ptr<IrExpr>> args;
      for (const auto* a : arg_ast) args.push_back(LowerExpr(*a, env));
      return InlineFunction(*it->second.first, it->second.second, std::move(args), e.loc, env);
    }
  }
  if (callee.kind != ast::ExprKind::kName) {
    Error(callee.loc, "only named functions can be called");
    return Bad(e.loc);
  }
  const std::string& name = callee.text;
  bool shadowed = false;
  if (env.locals) {
    for (const auto& l : *env.locals) shadowed |= l.name == name;
  }
  if (!shadowed) {
    if (auto it = env.file->pkg->functions.find(name); it != env.file->pkg->functions.end()) {
      std::vector<std::unique_ptr<IrExpr>> args;
      for (const auto* a : arg_ast) args.push_back(LowerExpr(*a, env));
      return InlineFunction(*it->second.first, it->second.second, std::move(args), e.loc, env);
    }
  }

  auto arity = [&](size_t n) {
    if (arg_ast.size() != n) {
      Error(e.loc, Bt(name) + " takes " + std::to_string(n) + " argument" + (n == 1 ? "" : "s") +
                       ", got " + std::to_string(arg_ast.size()));
      return false;
    }
    return true;
  };

  if (name == "has") {
    if (!arity(1)) return Bad(e.loc);
    auto x = LowerExpr(*arg_ast[0], env);
    if (x->kind == IrKind::kRelation) {
      x->bool_value = true;  // presence, not the value
      x->type = Type::Of(ValueType::kBool);
      x->loc = e.loc;
      return x;
    }
    IrExpr* base = x.get();
    if (base->kind == IrKind::kConvert) base = base->children[0].get();
    if (base->kind == IrKind::kFirst || base->kind == IrKind::kParam) {
      auto r = Make(IrKind::kHas, Type::Of(ValueType::kBool), e.loc);
      r->source = base->source;
      r->str = base->str;
      r->claim_path = base->claim_path;
      r->index = base->index;
      return r;
    }
    if (!poisoned_) {
      Error(arg_ast[0]->loc,
            "`has` takes a header, query parameter, path parameter or claim, e.g. "
            "`has(token.sub)`");
    }
    return Bad(e.loc);
  }
  if (name == "has_scope") {
    // has_scope("a") == "a" in split(token.scope, " "): `scope` is a
    // space-separated list (RFC 6749 3.3); a missing claim is an error,
    // so the rule denies.
    if (!arity(1)) return Bad(e.loc);
    auto wanted = Expect(LowerExpr(*arg_ast[0], env), Type::Of(ValueType::kString),
                         "the argument of `has_scope`");
    ast::Expr call;
    call.kind = ast::ExprKind::kCall;
    call.loc = e.loc;
    auto mk = [&](ast::ExprKind k) {
      auto x = std::make_unique<ast::Expr>();
      x->kind = k;
      x->loc = e.loc;
      return x;
    };
    auto callee_split = mk(ast::ExprKind::kName);
    callee_split->text = "split";
    auto token = mk(ast::ExprKind::kName);
    token->text = "token";
    auto member = mk(ast::ExprKind::kMember);
    member->text = "scope";
    member->children.push_back(std::move(token));
    auto sep = mk(ast::ExprKind::kString);
    sep->text = " ";
    call.children.push_back(std::move(callee_split));
    call.children.push_back(std::move(member));
    call.children.push_back(std::move(sep));
    Env plain = env;
    plain.locals = nullptr;  // `token` and `split` are the built-ins here
    auto list = LowerExpr(call, plain);
    auto r = Make(IrKind::kBinary, Type::Of(ValueType::kBool), e.loc);
    r->op = bytecode::Op::kIn;
    r->children.push_back(std::move(wanted));
    r->children.push_back(std::move(list));
    return r;
  }
  if (name == "string" || name == "int" || name == "bool" || name == "timestamp" ||
      name == "duration") {
    if (!arity(1)) return Bad(e.loc);
    auto x = LowerExpr(*arg_ast[0], env);
    ValueType want = name == "string"      ? ValueType::kString
                     : name == "int"       ? ValueType::kInt
                     : name == "bool"      ? ValueType::kBool
                     : name == "timestamp" ? ValueType::kTimestamp
                                           : ValueType::kDuration;
    if (x->type.kind == want) return x;
    if (x->type.kind != ValueType::kJson) {
      Error(e.loc, Bt(name + "()") + " converts a JSON value; got " + Bt(TypeName(x->type)));
      return Bad(e.loc);
    }
    return Coerce(std::move(x), Type::Of(want));
  }

  static const std::map<std::string, Builtin> kBuiltins = {
      {"starts_with", Builtin::kStartsWith}, {"ends_with", Builtin::kEndsWith},
      {"contains", Builtin::kContains},      {"lower", Builtin::kLower},
      {"upper", Builtin::kUpper},            {"len", Builtin::kLen},
      {"split", Builtin::kSplit},            {"trim", Builtin::kTrim},
  };
  auto bi = kBuiltins.find(name);
  if (bi == kBuiltins.end()) {
    Error(callee.loc, "unknown function " + Bt(name));
    return Bad(e.loc);
  }
  std::vector<std::unique_ptr<IrExpr>> args;
  for (const auto* a : arg_ast) args.push_back(LowerExpr(*a, env));
  const Type kStr = Type::Of(ValueType::kString);
  auto r = Make(IrKind::kCall, Type::Of(ValueType::kBool), e.loc);
  r->builtin = bi->second;
  switch (bi->second) {
    case Builtin::kStartsWith:
    case Builtin::kEndsWith:
      if (!arity(2)) return Bad(e.loc);
      r->children.push_back(Expect(std::move(args[0]), kStr, ("the first argument of " + Bt(name)).c_str()));
      r->children.push_back(Expect(std::move(args[1]), kStr, ("the second argument of " + Bt(name)).c_str()));
      return r;
    case Builtin::kContains: {
      if (!arity(2)) return Bad(e.loc);
      Type t0 = args[0]->type;
      if (t0.kind == ValueType::kList) {
        Type elem = Type::Of(t0.elem);
        r->children.push_back(std::move(args[0]));
        r->children.push_back(Expect(std::move(args[1]), elem, "the second argument of `contains`"));
        return r;
      }
      if (t0.kind == ValueType::kJson && args[1]->type.kind != ValueType::kJson &&
          IsScalar(args[1]->type.kind)) {
        r->children.push_back(Coerce(std::move(args[0]), Type::ListOf(args[1]->type.kind)));
        r->children.push_back(std::move(args[1]));
        return r;
      }
      r->children.push_back(Expect(std::move(args[0]), kStr, "the first argument of `contains`"));
      r->children.push_back(Expect(std::move(args[1]), kStr, "the second argument of `contains`"));
      return r;
    }
    case Builtin::kLower:
    case Builtin::kUpper:
    case Builtin::kTrim:
      if (!arity(1)) return Bad(e.loc);
      r->type = kStr;
      r->children.push_back(Expect(std::move(args[0]), kStr, ("the argument of " + Bt(name)).c_str()));
      return r;
    case Builtin::kLen: {
      if (!arity(1)) return Bad(e.loc);
      r->type = Type::Of(ValueType::kInt);
      ValueType k = args[0]->type.kind;
      if (k != ValueType::kString && k != ValueType::kList && k != ValueType::kJson) {
        Error(e.loc, "`len` takes a string, a list or a JSON value, got " +
                         Bt(TypeName(args[0]->type)));
        return Bad(e.loc);
      }
      r->children.push_back(std::move(args[0]));
      return r;
    }
    case Builtin::kSplit:
      if (!arity(2)) return Bad(e.loc);
      r->type = Type::ListOf(ValueType::kString);
      r->children.push_back(Expect(std::move(args[0]), kStr, "the first argument of `split`"));
      r->children.push_back(Expect(std::move(args[1]), kStr, "the separator of `split`"));
      if (r->children[1]->kind == IrKind::kConst && r->children[1]->str.empty() &&
          r->children[1]->type.kind == ValueType::kString) {
        Error(e.loc, "the separator of `split` must not be empty");
      }
      return r;
  }
  return Bad(e.loc);
}

std::unique_ptr<IrExpr> Lowerer::InlineFunction(const ast::Function& f, FileCtx* def,
                                                std::vector<std::unique_ptr<IrExpr>> args,
                                                const Location& use, Env& env) {
  if (std::find(fn_stack_.begin(), fn_stack_.end(), &f) != fn_stack_.end()) {
    Error(use, "function " + Bt(f.name) + " is recursive; recursion is not allowed");
    return Bad(use);
  }
  if (static_cast<int>(fn_stack_.size()) >= kMaxInlineDepth) {
    Error(use, "functions nest more than " + std::to_string(kMaxInlineDepth) + " calls deep");
    return Bad(use);
  }
  if (args.size() != f.params.size()) {
    Error(use, Bt(f.name) + " takes " + std::to_string(f.params.size()) + " argument" +
                   (f.params.size() == 1 ? "" : "s") + ", got " + std::to_string(args.size()));
    return Bad(use);
  }
  std::vector<Local> locals;
  std::vector<std::unique_ptr<IrExpr>> storage;
  for (size_t i = 0; i < args.size(); ++i) {
    Type want = FromTypeRef(f.params[i].type, diags_);
    storage.push_back(Expect(std::move(args[i]), want,
                             ("argument " + Bt(f.params[i].name) + " of " + Bt(f.name)).c_str()));
    locals.push_back({f.params[i].name, storage.back().get()});
  }
  if (!f.body) return Bad(use);
  fn_stack_.push_back(&f);
  Env inner;
  inner.file = def;
  inner.locals = &locals;
  inner.route = env.route;
  inner.in_response = env.in_response;
  inner.depth = env.depth;
  inner.fn_check = env.fn_check;
  auto body = LowerExpr(*f.body, inner);
  fn_stack_.pop_back();
  return Expect(std::move(body), FromTypeRef(f.result, diags_),
                ("the result of " + Bt(f.name)).c_str());
}

std::unique_ptr<IrExpr> Lowerer::LowerBinary(const ast::Expr& e, Env& env) {
  if (e.children.size() != 2 || !e.children[0] || !e.children[1]) return Bad(e.loc);
  auto x = LowerExpr(*e.children[0], env);
  using B = ast::BinaryOp;
  const Type kBool = Type::Of(ValueType::kBool);

  if (e.bop == B::kAnd || e.bop == B::kOr) {
    auto y = LowerExpr(*e.children[1], env);
    auto r = Make(e.bop == B::kAnd ? IrKind::kAnd : IrKind::kOr, kBool, e.loc);
    const char* what = e.bop == B::kAnd ? "an operand of `&&`" : "an operand of `||`";
    r->children.push_back(Expect(std::move(x), kBool, what));
    r->children.push_back(Expect(std::move(y), kBool, what));
    return r;
  }
  if (e.bop == B::kMatches) {
    const ast::Expr& pat = *e.children[1];
    if (pat.kind != ast::ExprKind::kString) {
      Error(pat.loc, "the right side of `matches` must be a string literal (a regular expression)");
      return Bad(e.loc);
    }
    RE2::Options opts;
    opts.set_log_errors(false);
    opts.set_max_mem(8 << 20);
    RE2 re(pat.text, opts);
    if (!re.ok()) {
      Error(pat.loc, "invalid regular expression " + Bt(pat.text) + ": " + re.error());
      return Bad(e.loc);
    }
    auto r = Make(IrKind::kMatch, kBool, e.loc);
    r->str = pat.text;
    r->children.push_back(Expect(std::move(x), Type::Of(ValueType::kString),
                                 "the left side of `matches`"));
    return r;
  }
  auto y = LowerExpr(*e.children[1], env);
  Type tx = x->type, ty = y->type;
  const bool jx = tx.kind == ValueType::kJson, jy = ty.kind == ValueType::kJson;
  auto bin = [&](bytecode::Op op, Type result) {
    auto r = Make(IrKind::kBinary, result, e.loc);
    r->op = op;
    r->children.push_back(std::move(x));
    r->children.push_back(std::move(y));
    return r;
  };
  auto mismatch = [&](const char* op) {
    Error(e.loc, std::string("cannot apply `") + op + "` to " + Bt(TypeName(tx)) + " and " +
                     Bt(TypeName(ty)));
    return Bad(e.loc);
  };

  switch (e.bop) {
    case B::kEq:
    case B::kNe: {
      bytecode::Op op = e.bop == B::kEq ? bytecode::Op::kEq : bytecode::Op::kNe;
      const char* name = e.bop == B::kEq ? "==" : "!=";
      if (tx.kind == ValueType::kNull || ty.kind == ValueType::kNull) return bin(op, kBool);
      if (jx && !jy) {
        x = Coerce(std::move(x), ty);
        if (!x) return mismatch(name);
      } else if (jy && !jx) {
        y = Coerce(std::move(y), tx);
        if (!y) return mismatch(name);
      } else if (tx != ty) {
        return mismatch(name);
      }
      return bin(op, kBool);
    }
    case B::kLt:
    case B::kLe:
    case B::kGt:
    case B::kGe: {
      const char* name = e.bop == B::kLt ? "<" : e.bop == B::kLe ? "<=" : e.bop == B::kGt ? ">" : ">=";
      bytecode::Op op = e.bop == B::kLt   ? bytecode::Op::kLt
                        : e.bop == B::kLe ? bytecode::Op::kLe
                        : e.bop == B::kGt ? bytecode::Op::kGt
                                          : bytecode::Op::kGe;
      if (jx && jy) {
        Error(e.loc, std::string("cannot order two JSON values with `") + name +
                         "`; convert one with int() or string()");
        return Bad(e.loc);
      }
      if (jx) x = Coerce(std::move(x), ty);
      if (jy) y = Coerce(std::move(y), tx);
      if (!x || !y) return mismatch(name);
      tx = x->type;
      ty = y->type;
      if (tx != ty || !(tx.kind == ValueType::kInt || tx.kind == ValueType::kDuration ||
                        tx.kind == ValueType::kTimestamp || tx.kind == ValueType::kString)) {
        return mismatch(name);
      }
      return bin(op, kBool);
    }
    case B::kIn: {
      if (ty.kind == ValueType::kList) {
        Type elem = Type::Of(ty.elem);
        if (tx != elem) {
          if (jx && elem.kind != ValueType::kJson) {
            x = Coerce(std::move(x), elem);
          } else if (elem.kind == ValueType::kJson) {
            // json element list: compare by value
          } else {
            return mismatch("in");
          }
        }
        return bin(bytecode::Op::kIn, kBool);
      }
      if (jy) {
        if (jx) return bin(bytecode::Op::kIn, kBool);
        if (!IsScalar(tx.kind)) return mismatch("in");
        y = Coerce(std::move(y), Type::ListOf(tx.kind));
        return bin(bytecode::Op::kIn, kBool);
      }
      if (ty.kind == ValueType::kString) {
        if (jx) x = Coerce(std::move(x), ty);
        if (!x || x->type.kind != ValueType::kString) return mismatch("in");
        return bin(bytecode::Op::kIn, kBool);
      }
      return mismatch("in");
    }
    case B::kAdd:
    case B::kSub:
    case B::kMul:
    case B::kDiv:
    case B::kMod: {
      const char* name = e.bop == B::kAdd   ? "+"
                         : e.bop == B::kSub ? "-"
                         : e.bop == B::kMul ? "*"
                         : e.bop == B::kDiv ? "/"
                                            : "%";
      bytecode::Op op = e.bop == B::kAdd   ? bytecode::Op::kAdd
                        : e.bop == B::kSub ? bytecode::Op::kSub
                        : e.bop == B::kMul ? bytecode::Op::kMul
                        : e.bop == B::kDiv ? bytecode::Op::kDiv
                                           : bytecode::Op::kMod;
      if (jx && jy) return mismatch(name);
      if (jx) x = Coerce(std::move(x), ty.kind == ValueType::kString ? ty : Type::Of(ValueType::kInt));
      if (jy) y = Coerce(std::move(y), tx.kind == ValueType::kString ? tx : Type::Of(ValueType::kInt));
      if (!x || !y) return mismatch(name);
      tx = x->type;
      ty = y->type;
      using V = ValueType;
      V a = tx.kind, b = ty.kind;
      V result = V::kNull;
      switch (op) {
        case bytecode::Op::kAdd:
          if (a == V::kInt && b == V::kInt) result = V::kInt;
          else if (a == V::kDuration && b == V::kDuration) result = V::kDuration;
          else if ((a == V::kTimestamp && b == V::kDuration) || (a == V::kDuration && b == V::kTimestamp)) result = V::kTimestamp;
          else if (a == V::kString && b == V::kString) result = V::kString;
          break;
        case bytecode::Op::kSub:
          if (a == V::kInt && b == V::kInt) result = V::kInt;
          else if (a == V::kDuration && b == V::kDuration) result = V::kDuration;
          else if (a == V::kTimestamp && b == V::kTimestamp) result = V::kDuration;
          else if (a == V::kTimestamp && b == V::kDuration) result = V::kTimestamp;
          break;
        case bytecode::Op::kMul:
          if (a == V::kInt && b == V::kInt) result = V::kInt;
          else if ((a == V::kDuration && b == V::kInt) || (a == V::kInt && b == V::kDuration)) result = V::kDuration;
          break;
        case bytecode::Op::kDiv:
          if (a == V::kInt && b == V::kInt) result = V::kInt;
          else if (a == V::kDuration && b == V::kInt) result = V::kDuration;
          break;
        default:
          if (a == V::kInt && b == V::kInt) result = V::kInt;
          break;
      }
      if (result == V::kNull) return mismatch(name);
      return bin(op, Type::Of(result));
    }
    default: break;
  }
  return Bad(e.loc);
}

// ---------------------------------------------------------------------------
// Bodies, profiles, routes

// ---------------------------------------------------------------------------
// FAPI 2.0: issuers and the built-in `fapi2` profile

namespace {

const char* SettingKind(ast::ExprKind k) {
  switch (k) {
    case ast::ExprKind::kString: return "a string";
    case ast::ExprKind::kBool: return "`true` or `false`";
    case ast::ExprKind::kDuration: return "a duration";
    case ast::ExprKind::kInt: return "an integer";
    case ast::ExprKind::kList: return "a list";
    case ast::ExprKind::kName: return "a name";
    default: return "an expression";
  }
}

// RFC 6749 3.3 scope-token: %x21 / %x23-5B / %x5D-7E.
bool ValidScopeToken(std::string_view s) {
  if (s.empty() || s.size() > 256) return false;
  for (unsigned char c : s) {
    if (c < 0x21 || c > 0x7e || c == '"' || c == '\\') return false;
  }
  return true;
}

}  // namespace

bool Lowerer::ResolveIssuer(const ast::Expr& e, FileCtx* file, uint32_t* index) {
  Package* pkg = file->pkg;
  std::string name;
  if (e.kind == ast::ExprKind::kName) {
    name = e.text;
  } else if (e.kind == ast::ExprKind::kMember && e.children.size() == 1 &&
             e.children[0]->kind == ast::ExprKind::kName) {
    auto it = file->imports.find(e.children[0]->text);
    if (it == file->imports.end()) {
      Error(e.loc, "unknown package " + Bt(e.children[0]->text));
      return false;
    }
    pkg = it->second;
    name = e.text;
  } else {
    Error(e.loc, "`issuer` takes the name of an issuer declared with `issuer NAME { ... }`");
    return false;
  }
  auto it = pkg->issuers.find(name);
  if (it == pkg->issuers.end()) {
    Error(e.loc, "unknown issuer " + Bt(name));
    return false;
  }
  *index = it->second;
  return true;
}

void Lowerer::LowerIssuer(const ast::Issuer& is, FileCtx* file, IrProgram& prog) {
  using bytecode::AlgBit;
  using bytecode::JwsAlg;
  Package& pkg = *file->pkg;
  Declare(pkg, is.name, is.loc);
  IrIssuer out;
  out.name = pkg.name + "." + is.name;
  out.loc = is.loc;
  out.algs = AlgBit(JwsAlg::kPS256) | AlgBit(JwsAlg::kES256) | AlgBit(JwsAlg::kEdDSA);
  out.leeway = 5;
  std::map<std::string, const ast::Setting*> set;
  bool ok = true;
  for (const auto& st : is.settings) {
    static const std::set<std::string> kKnown = {"url", "audience", "jwks", "algs", "leeway",
                                                 "fapi"};
    if (!kKnown.count(st.name)) {
      Error(st.loc, "unknown issuer setting " + Bt(st.name) +
                        " (known: url, audience, jwks, algs, leeway, fapi)");
      ok = false;
      continue;
    }
    if (!set.emplace(st.name, &st).second) {
      Error(st.loc, "issuer setting " + Bt(st.name) + " is given twice");
      ok = false;
    }
  }
  auto want = [&](const char* name, ast::ExprKind kind) -> const ast::Setting* {
    auto it = set.find(name);
    if (it == set.end() || !it->second->value) return nullptr;
    if (it->second->value->kind != kind) {
      Error(it->second->value->loc, "issuer setting " + Bt(name) + " must be " +
                                        SettingKind(kind) + ", got " +
                                        SettingKind(it->second->value->kind));
      ok = false;
      return nullptr;
    }
    return it->second;
  };
  // Opting out of the FAPI profile comes first: it changes what is allowed.
  if (const ast::Setting* f = want("fapi", ast::ExprKind::kBool)) {
    out.fapi = f->value->bool_value;
    if (!out.fapi && !f->loosen) {
      Error(f->loc, "`fapi = false` leaves the FAPI 2.0 profile; write `loosen fapi = false` to do "
                    "it on purpose");
      ok = false;
    } else if (!out.fapi) {
      Warning(f->loc, "issuer " + Bt(is.name) +
                          " leaves the FAPI 2.0 profile: RS256, RSA keys under 2048 bits and "
                          "long clock leeways are allowed");
    } else if (f->loosen) {
      Warning(f->loc, "`loosen` has no effect: `fapi = true` is the default");
    }
  }
  for (const char* required : {"url", "audience", "jwks"}) {
    if (!set.count(required)) {
      Error(is.loc, "issuer " + Bt(is.name) + " needs `" + required + " = \"...\"`");
      ok = false;
    }
  }
  for (const auto& [name, st] : set) {
    if (st->loosen && name != "fapi" && name != "leeway") {
      Error(st->loc, "`loosen` applies to `fapi` and `leeway` of an issuer, not " + Bt(name));
      ok = false;
    }
  }
  if (const ast::Setting* u = want("url", ast::ExprKind::kString)) {
    out.url = u->value->text;
    bool https = out.url.rfind("https://", 0) == 0 && out.url.size() > 8;
    bool http = out.url.rfind("http://", 0) == 0 && out.url.size() > 7;
    if (!https && !(http && !out.fapi)) {
      Error(u->value->loc, out.fapi ? "issuer `url` must be an https URL under FAPI 2.0, got " +
                                          Bt(out.url)
                                    : "issuer `url` must be an http(s) URL, got " + Bt(out.url));
      ok = false;
    }
  }
  if (const ast::Setting* a = want("audience", ast::ExprKind::kString)) {
    out.audience = a->value->text;
    if (out.audience.empty()) {
      Error(a->value->loc, "issuer `audience` must not be empty");
      ok = false;
    }
  }
  if (const ast::Setting* l = want("leeway", ast::ExprKind::kDuration)) {
    out.leeway = l->value->int_value;
    if (out.leeway > 300) {
      Error(l->value->loc, "clock leeway of " + std::to_string(out.leeway) +
                               "s is over the limit of 300s");
      ok = false;
    } else if (out.leeway > 60 && out.fapi && !l->loosen) {
      Error(l->value->loc, "FAPI 2.0 rejects clock skew over 60s; write `loosen leeway = ...` "
                           "to allow " + std::to_string(out.leeway) + "s on purpose");
      ok = false;
    } else if (out.leeway > 10) {
      Warning(l->value->loc, "a clock leeway of " + std::to_string(out.leeway) +
                                 "s is weak: FAPI 2.0 suggests at most 10s");
    }
  }
  if (const ast::Setting* al = want("algs", ast::ExprKind::kList)) {
    out.algs = 0;
    for (const auto& item : al->value->children) {
      if (item->kind != ast::ExprKind::kString) {
        Error(item->loc, "`algs` lists algorithm names, e.g. `[\"ES256\", \"PS256\"]`");
        ok = false;
        continue;
      }
      auto alg = bytecode::ParseAlg(item->text, /*allow_legacy=*/!out.fapi);
      if (!alg.ok()) {
        bool legacy = bytecode::ParseAlg(item->text, /*allow_legacy=*/true).ok();
        Error(item->loc, legacy ? "algorithm " + Bt(item->text) +
                                      " is below FAPI 2.0 (PS256, ES256, EdDSA); leave the profile "
                                      "with `loosen fapi = false` to allow it"
                                : "algorithm " + Bt(item->text) +
                                      " is not supported (PS256, ES256, EdDSA; RS256 outside FAPI)");
        ok = false;
        continue;
      }
      if (*alg == JwsAlg::kRS256) {
        Warning(item->loc, "RS256 is weak: FAPI 2.0 requires PS256, ES256 or EdDSA");
      }
      out.algs |= AlgBit(*alg);
    }
    if (out.algs == 0 && ok) {
      Error(al->value->loc, "`algs` must allow at least one algorithm");
      ok = false;
    }
  }
  if (const ast::Setting* j = want("jwks", ast::ExprKind::kString)) {
    const Location& at = j->value->loc;
    // The keys are judged on their own: a setting already reported (a
    // missing url, bad algs, a leeway over the limit) must not make a good
    // JWKS look unusable.
    const std::string check_url = out.url.empty() ? "https://issuer.invalid" : out.url;
    const std::string check_audience = out.audience.empty() ? "audience" : out.audience;
    const uint32_t check_algs =
        out.algs ? out.algs
                 : AlgBit(JwsAlg::kPS256) | AlgBit(JwsAlg::kES256) | AlgBit(JwsAlg::kEdDSA);
    const int64_t check_leeway = std::clamp<int64_t>(out.leeway, 0, bytecode::kMaxIssuerLeeway);
    if (!read_asset_) {
      Error(at, "cannot read " + Bt(j->value->text) + ": files cannot be read here");
      ok = false;
    } else if (auto text = read_asset_(*is.loc.file, j->value->text); !text.ok()) {
      Error(at, "cannot read the JWKS " + Bt(j->value->text) + ": " + text.status().message());
      ok = false;
    } else if (text->size() > kMaxAssetBytes) {
      Error(at, "the JWKS " + Bt(j->value->text) + " is over the limit of 1 MiB");
      ok = false;
    } else if (auto keys = bytecode::MakeIssuerKeys(out.name, check_url, check_audience, *text,
                                                    check_algs, check_leeway, out.fapi);
               !keys.ok()) {
      Error(at, "the JWKS " + Bt(j->value->text) + " is not usable: " + keys.status().message());
      ok = false;
    } else {
      out.jwks = std::move(*text);
      std::map<std::pair<std::string, int>, int> kids;
      for (const auto& k : (*keys)->keys) {
        std::string kid = k.kid().empty() ? "(no kid)" : k.kid();
        if (k.kid().empty()) {
          Warning(at, std::string(bytecode::JwsAlgName(k.alg())) +
                          " key in the JWKS without a `kid`: tokens cannot select it");
        }
        if (++kids[std::make_pair(k.kid(), static_cast<int>(k.alg()))] == 2) {
          Error(at, "the JWKS has two " + std::string(bytecode::JwsAlgName(k.alg())) +
                        " keys with kid " + Bt(kid) + ": tokens could not choose between them");
          ok = false;
        }
        if (out.algs && !(out.algs & AlgBit(k.alg()))) {
          Warning(at, "key " + Bt(kid) + " (" + bytecode::JwsAlgName(k.alg()) +
                          ") is never used: `algs` does not allow " + bytecode::JwsAlgName(k.alg()));
        }
        if (k.kty() == "RSA" && k.bits() < 2048) {
          Warning(at, "key " + Bt(kid) + " is a " + std::to_string(k.bits()) +
                          "-bit RSA key: weak, FAPI 2.0 requires at least 2048 bits");
        }
      }
      for (JwsAlg a : {JwsAlg::kPS256, JwsAlg::kES256, JwsAlg::kEdDSA, JwsAlg::kRS256}) {
        if (!(out.algs & AlgBit(a))) continue;
        bool any = false;
        for (const auto& k : (*keys)->keys) any |= k.alg() == a;
        if (!any) {
          Warning(at, "`algs` allows " + std::string(bytecode::JwsAlgName(a)) +
                          " but the JWKS has no key for it");
        }
      }
    }
  }
  if (!ok) return;
  if (prog.issuers.size() >= bytecode::kMaxIssuers) {
    // The bundle verifier refuses more: say so here, not at `vakt build`.
    Error(is.loc,
          "a policy may declare at most " + std::to_string(bytecode::kMaxIssuers) + " issuers");
    return;
  }
  pkg.issuers[is.name] = static_cast<uint32_t>(prog.issuers.size());
  prog.issuers.push_back(std::move(out));
}

void Lowerer::ApplyFapi2(const ast::Stmt& s, FileCtx* file, IrRoute& route) {
  using bytecode::SenderConstraint;
  using bytecode::TlsRequirement;
  if (!route.auth) {
    route.auth.emplace();
    route.auth->issuer = bytecode::kNone;
  }
  IrAuth& a = *route.auth;
  std::set<std::string> seen;
  for (const auto& st : s.settings) {
    if (!st.value) continue;
    if (!seen.insert(st.name).second) {
      Error(st.loc, "fapi2 setting " + Bt(st.name) + " is given twice");
      continue;
    }
    const ast::Expr& v = *st.value;
    // A setting that is looser than what the route has so far (the FAPI 2.0
    // defaults, then earlier `use fapi2`) must say `loosen`.
    auto judge = [&](bool looser, const std::string& what) {
      if (looser && !st.loosen) {
        Error(st.loc, Bt(st.name) + " loosens the fapi2 profile (" + what + "); write `loosen " +
                          st.name + " = ...` to do it on purpose");
        return false;
      }
      if (looser) {
        Warning(st.loc, "fapi2 loosened: " + what);
        if (std::find(a.loosened.begin(), a.loosened.end(), what) == a.loosened.end()) {
          a.loosened.push_back(what);
        }
      } else if (st.loosen) {
        Warning(st.loc, "`loosen` has no effect: " + Bt(st.name) + " here does not loosen fapi2");
      }
      return true;
    };
    auto kind = [&](ast::ExprKind k) {
      if (v.kind == k) return true;
      Error(v.loc, "fapi2 setting " + Bt(st.name) + " must be " + SettingKind(k) + ", got " +
                       SettingKind(v.kind));
      return false;
    };
    if (st.name == "issuer") {
      uint32_t idx = 0;
      if (ResolveIssuer(v, file, &idx)) a.issuer = idx;
    } else if (st.name == "sender") {
      if (!kind(ast::ExprKind::kString)) continue;
      static const std::map<std::string, std::pair<SenderConstraint, int>> kSender = {
          {"none", {SenderConstraint::kNone, 0}},
          {"any", {SenderConstraint::kAny, 1}},
          {"dpop", {SenderConstraint::kDPoP, 2}},
          {"mtls", {SenderConstraint::kMtls, 2}}};
      auto it = kSender.find(v.text);
      if (it == kSender.end()) {
        Error(v.loc, "`sender` is one of \"dpop\", \"mtls\", \"any\" (DPoP or mTLS) or \"none\"");
        continue;
      }
      int cur = a.sender == static_cast<uint8_t>(SenderConstraint::kNone)  ? 0
                : a.sender == static_cast<uint8_t>(SenderConstraint::kAny) ? 1
                                                                            : 2;
      if (judge(it->second.second < cur,
                "tokens without a sender constraint (plain bearer tokens) are accepted")) {
        a.sender = static_cast<uint8_t>(it->second.first);
      }
    } else if (st.name == "tls") {
      if (!kind(ast::ExprKind::kString)) continue;
      static const std::map<std::string, std::pair<TlsRequirement, int>> kTls = {
          {"any", {TlsRequirement::kAny, 0}},
          {"fapi", {TlsRequirement::kFapi, 1}},
          {"1.3", {TlsRequirement::kTls13, 2}}};
      auto it = kTls.find(v.text);
      if (it == kTls.end()) {
        Error(v.loc, "`tls` is one of \"fapi\" (TLS 1.2 with BCP 195 suites or TLS 1.3), \"1.3\" "
                     "or \"any\"");
        continue;
      }
      int cur = a.tls == static_cast<uint8_t>(TlsRequirement::kAny)    ? 0
                : a.tls == static_cast<uint8_t>(TlsRequirement::kFapi) ? 1
                                                                        : 2;
      if (judge(it->second.second < cur, "the TLS version and cipher are not checked")) {
        a.tls = static_cast<uint8_t>(it->second.first);
      }
    } else if (st.name == "dpop_nonce") {
      if (!kind(ast::ExprKind::kBool)) continue;
      if (judge(a.dpop_nonce && !v.bool_value, "DPoP proofs need no server nonce")) {
        a.dpop_nonce = v.bool_value;
      }
    } else if (st.name == "dpop_window") {
      if (!kind(ast::ExprKind::kDuration)) continue;
      if (v.int_value < 1 || v.int_value > 300) {
        Error(v.loc, "`dpop_window` must be between 1s and 300s");
        continue;
      }
      if (judge(v.int_value > a.dpop_window,
                "DPoP proofs up to " + std::to_string(v.int_value) + "s old are accepted")) {
        a.dpop_window = v.int_value;
      }
    } else if (st.name == "scope") {
      if (!kind(ast::ExprKind::kString)) continue;
      if (st.loosen) Error(st.loc, "scopes cannot be loosened; a route adds the scopes it needs");
      size_t pos = 0;
      bool any = false;
      const std::string& text = v.text;
      while (pos < text.size()) {
        size_t end = text.find(' ', pos);
        if (end == std::string::npos) end = text.size();
        std::string tok = text.substr(pos, end - pos);
        pos = end + 1;
        if (tok.empty()) continue;
        any = true;
        if (!ValidScopeToken(tok)) {
          Error(v.loc, "scope " + Bt(tok) + " is not a valid scope token (RFC 6749 3.3)");
          continue;
        }
        if (std::find(a.scopes.begin(), a.scopes.end(), tok) == a.scopes.end()) {
          a.scopes.push_back(tok);
        }
      }
      if (!any) Error(v.loc, "`scope` names one or more space-separated scopes");
    } else {
      Error(st.loc, "unknown fapi2 setting " + Bt(st.name) +
                        " (known: issuer, sender, tls, dpop_nonce, dpop_window, scope)");
    }
  }
}

const ast::Profile* Lowerer::FindProfile(const std::string& name, FileCtx* file, FileCtx** def,
                                         const Location& loc) {
  Package* pkg = file->pkg;
  std::string local = name;
  if (auto dot = name.find('.'); dot != std::string::npos) {
    std::string alias = name.substr(0, dot);
    local = name.substr(dot + 1);
    auto it = file->imports.find(alias);
    if (it == file->imports.end()) {
      Error(loc, "unknown package " + Bt(alias) + " (add `import " + alias + "`)");
      return nullptr;
    }
    pkg = it->second;
  }
  auto it = pkg->profiles.find(local);
  if (it == pkg->profiles.end()) {
    Error(loc, "unknown profile " + Bt(name));
    return nullptr;
  }
  *def = it->second.second;
  return it->second.first;
}

void Lowerer::ExpandStmts(const std::vector<ast::Stmt>& stmts, FileCtx* file, IrRoute& route,
                          bool response, BodyOut& out, std::vector<Local>& locals,
                          std::vector<std::unique_ptr<IrExpr>>& let_storage,
                          std::vector<const ast::Profile*>& stack, int depth) {
  for (const auto& s : stmts) {
    switch (s.kind) {
      case ast::StmtKind::kUse: {
        if (s.name == "fapi2") {
          if (response) {
            Error(s.loc, "`use` is not allowed inside `on response`; use the profile in the body");
          } else {
            ApplyFapi2(s, file, route);
          }
          break;
        }
        if (s.has_settings) {
          Error(s.loc, "only the built-in `fapi2` profile takes settings; " + Bt(s.name) +
                           " is a profile of this policy");
        }
        FileCtx* def = nullptr;
        const ast::Profile* p = FindProfile(s.name, file, &def, s.name_loc.file ? s.name_loc : s.loc);
        if (!p) break;
        if (std::find(stack.begin(), stack.end(), p) != stack.end()) {
          Error(s.loc, "profile " + Bt(p->name) + " uses itself");
          break;
        }
        // A profile applies once per route, however many paths use it.
        if (!route_profiles_.insert(p).second) break;
        if (depth >= kMaxInlineDepth) {
          Error(s.loc, "profiles nest more than " + std::to_string(kMaxInlineDepth) + " deep");
          break;
        }
        stack.push_back(p);
        // A profile used in a request section contributes its request rules
        // there and its response rules to the response program.
        if (!response) {
          ExpandBody(p->body, def, route, p->name, stack, depth + 1);
        } else {
          Error(s.loc, "`use` is not allowed inside `on response`; use the profile in the body");
        }
        stack.pop_back();
        break;
      }
      case ast::StmtKind::kLet: {
        if (!s.expr) break;
        Env env{file, &locals, &route, response, 0};
        let_storage.push_back(LowerExpr(*s.expr, env));
        locals.push_back({s.name, let_storage.back().get()});
        break;
      }
      case ast::StmtKind::kRequire:
      case ast::StmtKind::kDenyIf: {
        if (!s.expr) break;
        IrRule rule;
        ++out.rule_counter;
        if (!s.label.empty()) {
          if (!out.labels.insert(s.label).second) {
            Error(s.loc, "duplicate rule label " + Bt(s.label) + " in " + Bt(out.scope));
          }
          rule.id = out.scope + "." + s.label;
        } else {
          rule.id = out.scope + "#" + std::to_string(out.rule_counter);
        }
        if (s.deny.status < 400 || s.deny.status > 599) {
          Error(s.deny.loc.file ? s.deny.loc : s.loc,
                "deny status must be between 400 and 599, got " + std::to_string(s.deny.status));
        }
        rule.status = s.deny.status;
        rule.error = s.deny.error;
        rule.message = s.deny.message.empty() ? "denied by rule " + rule.id : s.deny.message;
        rule.loc = s.loc;
        Env env{file, &locals, &route, response, 0};
        poisoned_ = false;
        auto cond = Expect(LowerExpr(*s.expr, env), Type::Of(ValueType::kBool),
                           s.kind == ast::StmtKind::kRequire ? "a `require` condition"
                                                             : "a `deny ... if` condition");
        poisoned_ = false;
        if (s.kind == ast::StmtKind::kDenyIf) {
          auto n = Make(IrKind::kNot, Type::Of(ValueType::kBool), s.expr->loc);
          n->children.push_back(std::move(cond));
          cond = std::move(n);
        }
        rule.cond = std::move(cond);
        (response ? route.response_rules : route.request_rules).push_back(std::move(rule));
        break;
      }
      case ast::StmtKind::kOwns: {
        IrRule rule;
        ++out.rule_counter;
        if (!s.label.empty()) {
          if (!out.labels.insert(s.label).second) {
            Error(s.loc, "duplicate rule label " + Bt(s.label) + " in " + Bt(out.scope));
          }
          rule.id = out.scope + "." + s.label;
        } else {
          rule.id = out.scope + "#" + std::to_string(out.rule_counter);
        }
        LowerOwns(s, file, route, response, locals, rule);
        (response ? route.response_rules : route.request_rules).push_back(std::move(rule));
        break;
      }
      case ast::StmtKind::kBody:
        LowerBody(s, file, route, response, out);
        break;
    }
  }
}

// ---------------------------------------------------------------------------
// Schemas and body checks

void Lowerer::DeclareSchema(const ast::SchemaDef& d, FileCtx* file) {
  Package& pkg = *file->pkg;
  Declare(pkg, d.name, d.loc);
  std::string q = pkg.name.empty() ? d.name : pkg.name + "." + d.name;
  if (schema_defs_.count(q)) return;
  schema_defs_[q] = {&d, file};
  if (d.kind != ast::SchemaDef::Kind::kInline && d.source.empty()) {
    Error(d.source_loc.file ? d.source_loc : d.loc, "empty file name");
  }
  if (d.kind == ast::SchemaDef::Kind::kOpenApi && d.component.empty()) {
    Error(d.loc, "`schema " + d.name + " = openapi \"doc\" \"Component\"` needs a component name");
  }
  for (const auto& st : d.settings) {
    if (st.name != "strict" && st.name != "format") {
      Error(st.loc, "unknown schema setting " + Bt(st.name) + " (known: strict, format)");
    } else if (!st.value || st.value->kind != ast::ExprKind::kBool) {
      Error(st.loc, Bt(st.name) + " must be `true` or `false`");
    }
    if (st.loosen) Error(st.loc, "`loosen` does not apply to schema settings");
  }
}

namespace {

bool SettingBool(const ast::SchemaDef& d, const std::string& name) {
  for (const auto& st : d.settings) {
    if (st.name == name && st.value && st.value->kind == ast::ExprKind::kBool) return st.value->bool_value;
  }
  return false;
}

std::string StatusKeyText(uint16_t k) {
  if (k == 0) return "default";
  if (k <= 5) return std::to_string(k) + "XX";
  return std::to_string(k);
}

}  // namespace

void Lowerer::LowerBody(const ast::Stmt& s, FileCtx* file, IrRoute& route, bool response,
                        BodyOut& out) {
  const bool openapi = !s.body_openapi.empty();
  if (openapi && response) {
    Error(s.loc, "`body openapi` belongs in the route, not in `on response` (it covers both)");
    return;
  }
  if (!openapi && response && s.body_status == ast::kBodyRequest) {
    Error(s.loc, "a response `body` needs a status: `body 200 " + s.name + "` or `body default " + s.name + "`");
    return;
  }
  if (!openapi && !response && s.body_status != ast::kBodyRequest) {
    Error(s.status_loc.file ? s.status_loc : s.loc,
          "a `body` with a status belongs in `on response`; the request body is `body " + s.name + "`");
    return;
  }
  if (!response && s.body_status == ast::kBodyRequest && !openapi && s.name.empty()) return;
  const bool status_class = s.body_status_class;  // `4XX`: 1..5
  if (response && (s.body_status < 100 || s.body_status > 599) && s.body_status != ast::kBodyDefault &&
      !status_class) {
    Error(s.status_loc.file ? s.status_loc : s.loc,
          "response status must be between 100 and 599, got " + std::to_string(s.body_status));
    return;
  }
  IrBodyCheck check;
  check.loc = s.loc;
  check.response = response;
  check.status = response ? static_cast<uint16_t>(s.body_status) : 0;
  bool strict_set = false, strict = false;
  for (const auto& st : s.settings) {
    const ast::Expr* v = st.value.get();
    if (st.loosen) Error(st.loc, "`loosen` does not apply to body settings");
    auto limit = [&](uint32_t* out, uint32_t max) {
      if (!v || v->kind != ast::ExprKind::kInt || v->int_value < 1 || static_cast<uint64_t>(v->int_value) > max) {
        Error(st.loc, Bt(st.name) + " must be an integer from 1 to " + std::to_string(max));
        return;
      }
      *out = static_cast<uint32_t>(v->int_value);
    };
    if (st.name == "strict") {
      if (!v || v->kind != ast::ExprKind::kBool) {
        Error(st.loc, "`strict` must be `true` or `false`");
      } else {
        strict_set = true;
        strict = v->bool_value;
      }
    } else if (st.name == "max_bytes") {
      limit(&check.max_bytes, 64u << 20);
    } else if (st.name == "max_depth") {
      limit(&check.max_depth, bytecode::kMaxBodyDepth);
    } else if (st.name == "max_properties") {
      limit(&check.max_properties, 1u << 24);
    } else if (st.name == "max_items") {
      limit(&check.max_items, 1u << 24);
    } else if (st.name == "max_string") {
      limit(&check.max_string, 64u << 20);
    } else if (st.name == "accept") {
      if (!v || v->kind != ast::ExprKind::kList) {
        Error(st.loc, "`accept` is a list of media types, e.g. `[\"text/plain\"]`");
        continue;
      }
      for (const auto& item : v->children) {
        if (!item || item->kind != ast::ExprKind::kString || bytecode::MediaTypeEssence(item->text).empty() ||
            item->text.find(',') != std::string::npos) {
          Error(item ? item->loc : st.loc, "`accept` items are media types such as `\"text/plain\"` or `\"text/*\"`");
          continue;
        }
        if (bytecode::IsJsonMediaType(item->text)) {
          Error(item->loc, "JSON bodies are always validated; `accept` lists other media types");
          continue;
        }
        check.accept += (check.accept.empty() ? "" : ",") + bytecode::MediaTypeEssence(item->text);
      }
    } else {
      Error(st.loc, "unknown body setting " + Bt(st.name) +
                        " (known: strict, max_bytes, max_depth, max_properties, max_items, max_string, accept)");
    }
  }
  // The id is the route's (a body check belongs to one route), but a label
  // still shares the namespace of the labels around it.
  const std::string label = s.label.empty() ? "body" : s.label;
  if (!(response && s.label.empty()) && !out.labels.insert(label).second) {
    Error(s.loc, "duplicate rule label " + Bt(label) + " in " + Bt(out.scope) +
                     (s.label.empty() ? " (a `body` is labelled `body`; give one of them another label)" : ""));
  }
  std::string base_id = route.name + "." + label;
  if (openapi) {
    // `strict = false` is the default here: OpenAPI schemas compile as written.
    OpenApiBinding b;
    b.route = route.name;
    b.method = route.method;
    b.base_path = current_base_ == "/" ? "" : current_base_;
    b.path_template = route.path_template.substr(b.base_path.size());
    if (b.path_template.empty()) b.path_template = "/";
    b.document = s.body_openapi;
    b.options.strict = strict;
    b.loc = s.loc;
    check.strict = strict;
    // A placeholder request rule keeps the statement's position; FinishSchemas
    // fills it (or drops it when the operation has no request body) and adds
    // the responses.
    IrRule rule;
    rule.id = base_id;
    rule.loc = s.loc;
    check.rule_id = base_id;
    check.schema = "openapi#" + std::to_string(openapi_bindings_.size());
    rule.bodies.push_back(check);
    for (const auto& r : route.request_rules) {
      if (!r.bodies.empty()) {
        Error(s.loc, "route " + Bt(route.name) + " already has a request `body`");
        return;
      }
    }
    openapi_bindings_.push_back(std::move(b));
    route.request_rules.push_back(std::move(rule));
    return;
  }
  // Resolve the schema in this file's package.
  std::string q = file->pkg->name.empty() ? s.name : file->pkg->name + "." + s.name;
  auto it = schema_defs_.find(q);
  if (it == schema_defs_.end()) {
    Error(s.name_loc.file ? s.name_loc : s.loc, "unknown schema " + Bt(s.name) + " (declare it: `schema " + s.name + " = \"file.json\"`)");
    return;
  }
  const ast::SchemaDef& def = *it->second.first;
  bool use_strict = strict_set ? strict : SettingBool(def, "strict");
  std::string root = q + (use_strict != SettingBool(def, "strict") ? (use_strict ? "#strict" : "#open") : "");
  schema_uses_[root] = SchemaUse{root, &def, it->second.second, use_strict};
  check.schema = root;
  check.strict = use_strict;
  check.rule_id = response ? base_id + "." + StatusKeyText(check.status) : base_id;
  auto& rules = response ? route.response_rules : route.request_rules;
  for (auto& r : rules) {
    if (r.bodies.empty()) continue;
    if (!response) {
      Error(s.loc, "route " + Bt(route.name) + " already has a request `body`");
      return;
    }
    for (const auto& b : r.bodies) {
      if (b.status == check.status) {
        Error(s.loc, "route " + Bt(route.name) + " already has a response `body` for " +
                         StatusKeyText(check.status));
        return;
      }
    }
    if (r.bodies.size() >= bytecode::kMaxBodyGroup) {
      Error(s.loc, "at most " + std::to_string(bytecode::kMaxBodyGroup) + " response bodies per route");
      return;
    }
    r.bodies.push_back(std::move(check));
    return;
  }
  IrRule rule;
  rule.id = check.rule_id;
  rule.loc = s.loc;
  rule.status = response ? 502 : 400;
  rule.bodies.push_back(std::move(check));
  rules.push_back(std::move(rule));
}

void Lowerer::FinishSchemas(IrProgram& prog) {
  std::vector<SchemaDecl> decls;
  // Declared schemas compile even when unused, so their errors show.
  for (const auto& [q, def_file] : schema_defs_) {
    if (!schema_uses_.count(q)) schema_uses_[q] = SchemaUse{q, def_file.first, def_file.second, SettingBool(*def_file.first, "strict")};
  }
  for (const auto& [name, use] : schema_uses_) {
    SchemaDecl d;
    d.name = name;
    d.kind = use.def->kind == ast::SchemaDef::Kind::kFile     ? SchemaDecl::Kind::kFile
             : use.def->kind == ast::SchemaDef::Kind::kInline ? SchemaDecl::Kind::kInline
                                                              : SchemaDecl::Kind::kOpenApi;
    d.source = use.def->source;
    d.component = use.def->component;
    d.options.strict = use.strict;
    d.options.format_assertion = SettingBool(*use.def, "format");
    d.loc = use.def->loc;
    decls.push_back(std::move(d));
  }
  if (decls.empty() && openapi_bindings_.empty()) return;
  SchemaBuild built = CompileSchemas(decls, openapi_bindings_, read_asset_, diags_);
  if (diags_.HasErrors()) return;
  for (IrRoute& route : prog.routes) {
    for (size_t i = 0; i < route.request_rules.size(); ++i) {
      IrRule& r = route.request_rules[i];
      if (r.bodies.empty() || r.bodies[0].schema.rfind("openapi#", 0) != 0) continue;
      size_t bi = std::stoul(r.bodies[0].schema.substr(8));
      const BoundBodies& bb = built.bindings[bi];
      IrBodyCheck tmpl = r.bodies[0];
      if (!bb.responses.empty()) {
        bool has_group = false;
        for (const auto& rr : route.response_rules) has_group |= !rr.bodies.empty();
        if (has_group) {
          Error(r.loc, "route " + Bt(route.name) + " has response `body` checks and `body openapi`; use one");
        } else {
          IrRule resp;
          resp.id = tmpl.rule_id + ".response";
          resp.loc = r.loc;
          resp.status = 502;
          for (const auto& [key, name] : bb.responses) {
            IrBodyCheck c = tmpl;
            c.response = true;
            c.status = key;
            c.schema = name;
            c.accept.clear();
            c.rule_id = tmpl.rule_id + "." + StatusKeyText(key);
            resp.bodies.push_back(std::move(c));
          }
          route.response_rules.insert(route.response_rules.begin(), std::move(resp));
        }
      }
      if (bb.has_request) {
        r.bodies[0].schema = bb.request_schema;
      } else {
        route.request_rules.erase(route.request_rules.begin() + static_cast<long>(i));
        --i;
      }
    }
  }
  for (IrRoute& route : prog.routes) {
    for (auto* rules : {&route.request_rules, &route.response_rules}) {
      for (IrRule& r : *rules) {
        for (IrBodyCheck& b : r.bodies) {
          auto it = built.roots.find(b.schema);
          if (it == built.roots.end()) {
            Error(b.loc, "schema " + Bt(b.schema) + " did not compile");
            continue;
          }
          b.root = it->second;
        }
      }
    }
  }
  prog.schemas = std::move(built.blob);
}

// ---------------------------------------------------------------------------
// Relations and ownership rules

namespace {

// The source form of an expression, for tools and messages (`vakt check`,
// the generated tests): canonical spacing, not the original text.
std::string ExprText(const ast::Expr& e, int depth = 0) {
  if (depth > 64) return "...";
  auto child = [&](size_t i) {
    return i < e.children.size() && e.children[i] ? ExprText(*e.children[i], depth + 1)
                                                  : std::string("?");
  };
  switch (e.kind) {
    case ast::ExprKind::kNull: return "null";
    case ast::ExprKind::kBool: return e.bool_value ? "true" : "false";
    case ast::ExprKind::kInt: return std::to_string(e.int_value);
    case ast::ExprKind::kDuration: return std::to_string(e.int_value) + "s";
    case ast::ExprKind::kString: {
      std::string out = "\"";
      for (char c : e.text) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
      }
      return out + "\"";
    }
    case ast::ExprKind::kName: return e.text;
    case ast::ExprKind::kMember: return child(0) + "." + e.text;
    case ast::ExprKind::kIndex: return child(0) + "[" + child(1) + "]";
    case ast::ExprKind::kList:
    case ast::ExprKind::kCall: {
      std::string out = e.kind == ast::ExprKind::kCall ? child(0) + "(" : "[";
      for (size_t i = e.kind == ast::ExprKind::kCall ? 1 : 0; i < e.children.size(); ++i) {
        if (out.back() != '(' && out.back() != '[') out += ", ";
        out += child(i);
      }
      return out + (e.kind == ast::ExprKind::kCall ? ")" : "]");
    }
    case ast::ExprKind::kUnary: return (e.uop == ast::UnaryOp::kNot ? "!" : "-") + child(0);
    case ast::ExprKind::kBinary: {
      static constexpr const char* kOps[] = {"||", "&&", "==", "!=", "<", "<=", ">", ">=",
                                             "in", "matches", "+", "-", "*", "/", "%"};
      return child(0) + " " + kOps[static_cast<int>(e.bop)] + " " + child(1);
    }
  }
  return "?";
}

const char* JsonKind(simdjson::dom::element_type t) {
  switch (t) {
    case simdjson::dom::element_type::ARRAY: return "an array";
    case simdjson::dom::element_type::OBJECT: return "an object";
    case simdjson::dom::element_type::STRING: return "a string";
    case simdjson::dom::element_type::BOOL: return "a boolean";
    case simdjson::dom::element_type::NULL_VALUE: return "null";
    default: return "a number";
  }
}

std::string ShortKey(std::string_view k) {
  return std::string(k.substr(0, 64)) + (k.size() > 64 ? "..." : "");
}

}  // namespace

void Lowerer::LowerRelation(const ast::Relation& r, FileCtx* file, IrProgram& prog) {
  Package& pkg = *file->pkg;
  Declare(pkg, r.name, r.loc);
  IrRelation out;
  out.name = pkg.name + "." + r.name;
  out.file = r.file;
  out.loc = r.loc;
  bool ok = true;
  const bool is_string = r.type.kind == ast::TypeRef::Kind::kString;
  const bool is_list = r.type.kind == ast::TypeRef::Kind::kList && r.type.elem &&
                       r.type.elem->kind == ast::TypeRef::Kind::kString;
  if (!is_string && !is_list) {
    Error(r.type.loc.file ? r.type.loc : r.loc,
          "relation " + Bt(r.name) + " must map keys to `string` or `list<string>`, got " +
              Bt(TypeName(FromTypeRef(r.type, diags_))));
    ok = false;
  }
  out.list = is_list;
  const Location& at = r.file_loc.file ? r.file_loc : r.loc;
  const std::string where = "relation " + Bt(r.name) + ": " + Bt(r.file) + ": ";
  std::string text;
  if (!read_asset_) {
    Error(at, "cannot read " + Bt(r.file) + ": files cannot be read here");
    ok = false;
  } else if (auto t = read_asset_(*r.loc.file, r.file); !t.ok()) {
    Error(at, "cannot read the relation file " + Bt(r.file) + ": " + t.status().message());
    ok = false;
  } else if (t->size() > kMaxRelationFileBytes) {
    Error(at, where + "over the limit of 64 MiB");
    ok = false;
  } else {
    text = std::move(*t);
  }
  if (ok) {
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    if (auto err = parser.parse(text).get(root); err != simdjson::SUCCESS) {
      Error(at, where + "malformed JSON: " + simdjson::error_message(err));
      ok = false;
    } else if (!root.is_object()) {
      Error(at, where + "expected a JSON object of keys to " +
                    (is_list ? "lists of strings" : "strings") + ", got " +
                    JsonKind(root.type()));
      ok = false;
    } else {
      int errors = 0;
      auto bad = [&](std::string msg) {
        ok = false;
        if (++errors <= 5) Error(at, where + msg);
      };
      for (auto field : simdjson::dom::object(root)) {
        std::string_view key = field.key;
        if (key.size() > bytecode::kMaxRelationKeyBytes) {
          bad("key " + Bt(ShortKey(key)) + " is longer than " +
              std::to_string(bytecode::kMaxRelationKeyBytes) + " bytes");
          continue;
        }
        std::vector<std::string> values;
        std::string_view sv;
        if (!is_list) {
          if (field.value.get_string().get(sv) != simdjson::SUCCESS) {
            bad("key " + Bt(ShortKey(key)) + " maps to " + JsonKind(field.value.type()) +
                ", expected a string");
            continue;
          }
          values.emplace_back(sv);
        } else {
          simdjson::dom::array arr;
          if (field.value.get_array().get(arr) != simdjson::SUCCESS) {
            bad("key " + Bt(ShortKey(key)) + " maps to " + JsonKind(field.value.type()) +
                ", expected an array of strings");
            continue;
          }
          bool elems_ok = true;
          for (auto v : arr) {
            if (v.get_string().get(sv) != simdjson::SUCCESS) {
              bad("key " + Bt(ShortKey(key)) + ": element " + std::to_string(values.size()) +
                  " is " + JsonKind(v.type()) + ", expected a string");
              elems_ok = false;
              break;
            }
            values.emplace_back(sv);
          }
          if (!elems_ok) continue;
          if (values.size() > bytecode::kMaxRelationValues) {
            bad("key " + Bt(ShortKey(key)) + " lists " + std::to_string(values.size()) +
                " values, the limit is " + std::to_string(bytecode::kMaxRelationValues));
            continue;
          }
        }
        bool long_value = false;
        for (const auto& v : values) long_value |= v.size() > bytecode::kMaxRelationKeyBytes;
        if (long_value) {
          bad("key " + Bt(ShortKey(key)) + " has a value longer than " +
              std::to_string(bytecode::kMaxRelationKeyBytes) + " bytes");
          continue;
        }
        out.entries.emplace_back(std::string(key), std::move(values));
        if (out.entries.size() > bytecode::kMaxRelationEntries) {
          bad("more than " + std::to_string(bytecode::kMaxRelationEntries) + " keys");
          break;
        }
      }
      std::sort(out.entries.begin(), out.entries.end(),
                [](const auto& a, const auto& b) { return a.first < b.first; });
      for (size_t i = 1; i < out.entries.size(); ++i) {
        if (out.entries[i].first == out.entries[i - 1].first) {
          bad("key " + Bt(ShortKey(out.entries[i].first)) + " appears twice");
        }
      }
    }
  }
  pkg.relations.emplace(r.name, static_cast<uint32_t>(prog.relations.size()));
  if (prog.relations.size() >= bytecode::kMaxRelations) {
    Error(r.loc, "a policy may declare at most " + std::to_string(bytecode::kMaxRelations) +
                     " relations");
    return;
  }
  if (!ok) out.entries.clear();
  prog.relations.push_back(std::move(out));
}

bool Lowerer::ResolveRelation(const ast::Expr& e, Env& env, uint32_t* index) {
  Package* pkg = env.file->pkg;
  std::string name;
  if (e.kind == ast::ExprKind::kName) {
    name = e.text;
    if (env.locals) {
      for (const auto& l : *env.locals) {
        if (l.name == name) return false;
      }
    }
    if (pkg->consts.count(name)) return false;
  } else if (e.kind == ast::ExprKind::kMember && e.children.size() == 1 && e.children[0] &&
             e.children[0]->kind == ast::ExprKind::kName) {
    auto it = env.file->imports.find(e.children[0]->text);
    if (it == env.file->imports.end()) return false;
    pkg = it->second;
    name = e.text;
  } else {
    return false;
  }
  auto it = pkg->relations.find(name);
  if (it == pkg->relations.end() || it->second >= prog_->relations.size()) return false;
  *index = it->second;
  return true;
}

void Lowerer::LowerOwns(const ast::Stmt& s, FileCtx* file, IrRoute& route, bool response,
                        std::vector<Local>& locals, IrRule& rule) {
  auto own = std::make_shared<IrOwnership>();
  own->response = response;
  own->object_text = s.expr ? ExprText(*s.expr) : "?";
  rule.loc = s.loc;
  if (s.has_deny) {
    if (s.deny.status < 400 || s.deny.status > 599) {
      Error(s.deny.loc.file ? s.deny.loc : s.loc,
            "deny status must be between 400 and 599, got " + std::to_string(s.deny.status));
    }
    rule.status = s.deny.status;
    rule.error = s.deny.error;
    rule.message = s.deny.message;
  } else {
    rule.status = 403;
    rule.error = "access_denied";
  }
  if (rule.message.empty()) {
    rule.message = response ? "the response names an object the caller does not own (" +
                                  Bt(own->object_text) + "); the response is withheld"
                            : "the caller does not own " + Bt(own->object_text);
  }
  Env env{file, &locals, &route, response, 0};
  poisoned_ = false;
  if (!s.expr) return;
  auto object = LowerExpr(*s.expr, env);
  // The object: a path parameter, a query value, or a value of the JSON body.
  const IrExpr* base = object.get();
  while (base->kind == IrKind::kField || base->kind == IrKind::kConvert) {
    base = base->children[0].get();
  }
  bool object_ok = object->kind == IrKind::kParam ||
                   (object->kind == IrKind::kFirst && object->source == Source::kQuery) ||
                   (object->kind == IrKind::kField &&
                    ((base->kind == IrKind::kReq && base->field == RequestField::kJson) ||
                     (base->kind == IrKind::kResp && base->rfield == ResponseField::kJson)));
  if (!object_ok && !poisoned_) {
    Error(s.expr->loc, "the object of `owns` must be a path parameter, a query value or a value "
                       "of the JSON body (`params.id`, `request.query.id`, `request.json.id`" +
                           std::string(response ? ", `response.json.id`" : "") + "), got " +
                           Bt(own->object_text));
  }
  object = Expect(std::move(object), Type::Of(ValueType::kString), "the object of `owns`");
  if (s.clauses.empty()) {
    Error(s.loc, "`owns` needs at least one clause: `== VALUE` or `in LIST`, each maybe with "
                 "`if CONDITION`");
  }
  std::unique_ptr<IrExpr> any;
  for (const auto& c : s.clauses) {
    IrOwnClause clause;
    clause.in = c.in;
    clause.loc = c.loc;
    clause.value_text = c.value ? ExprText(*c.value) : "?";
    clause.cond_text = c.cond ? ExprText(*c.cond) : "";
    if (!c.value) continue;
    poisoned_ = false;
    auto value = LowerExpr(*c.value, env);
    if (!c.in) {
      value = Expect(std::move(value), Type::Of(ValueType::kString),
                     "the value of an `==` ownership clause");
    } else {
      if (value->type.kind == ValueType::kJson) {
        value = Coerce(std::move(value), Type::ListOf(ValueType::kString));
      }
      if (value->type != Type::ListOf(ValueType::kString) && !poisoned_) {
        Error(c.value->loc, "the value of an `in` ownership clause must be a `list<string>` (a "
                            "list claim or a list relation), got " +
                                Bt(TypeName(value->type)));
        value = Bad(c.value->loc);
      }
    }
    std::unique_ptr<IrExpr> cond;
    if (c.cond) {
      poisoned_ = false;
      cond = Expect(LowerExpr(*c.cond, env), Type::Of(ValueType::kBool),
                    "the condition of an ownership clause");
    }
    auto test = Make(IrKind::kBinary, Type::Of(ValueType::kBool), c.loc);
    test->op = c.in ? bytecode::Op::kIn : bytecode::Op::kEq;
    test->children.push_back(Clone(*object));
    test->children.push_back(Clone(*value));
    if (cond) {
      auto both = Make(IrKind::kAnd, Type::Of(ValueType::kBool), c.loc);
      both->children.push_back(Clone(*cond));
      both->children.push_back(std::move(test));
      test = std::move(both);
    }
    if (!any) {
      any = std::move(test);
    } else {
      auto either = Make(IrKind::kOr, Type::Of(ValueType::kBool), c.loc);
      either->children.push_back(std::move(any));
      either->children.push_back(std::move(test));
      any = std::move(either);
    }
    clause.value = std::move(value);
    clause.cond = std::move(cond);
    own->clauses.push_back(std::move(clause));
  }
  poisoned_ = false;
  if (!any) {
    any = Make(IrKind::kConst, Type::Of(ValueType::kBool), s.loc);  // false: deny
  }
  own->object = std::move(object);
  rule.cond = std::move(any);
  rule.owns = std::move(own);
}

void Lowerer::ExpandBody(const ast::Body& body, FileCtx* file, IrRoute& route,
                         const std::string& scope, std::vector<const ast::Profile*>& stack,
                         int depth) {
  BodyOut out{&route, scope};
  std::vector<Local> locals;
  std::vector<std::unique_ptr<IrExpr>> let_storage;
  ExpandStmts(body.request, file, route, false, out, locals, let_storage, stack, depth);
  if (body.has_response) {
    ExpandStmts(body.response, file, route, true, out, locals, let_storage, stack, depth);
  }
}

std::string Lowerer::ResolveShape(const std::string& name, FileCtx* file, const Location& loc,
                                  std::string* shape_name, bool* ok) {
  *shape_name = name;
  if (name.empty() || name == "any" || name == "string") return "";
  Package* pkg = file->pkg;
  std::string local = name;
  if (auto dot = name.find('.'); dot != std::string::npos) {
    auto it = file->imports.find(name.substr(0, dot));
    if (it == file->imports.end()) {
      Error(loc, "unknown package " + Bt(name.substr(0, dot)) + " in shape " + Bt(name));
      *ok = false;
      return "";
    }
    pkg = it->second;
    local = name.substr(dot + 1);
  }
  if (auto it = pkg->shapes.find(local); it != pkg->shapes.end()) {
    return it->second.first->pattern;
  }
  if (const char* b = BuiltinShapeImpl(name)) return b;
  Error(loc, "unknown shape " + Bt(name) + " (declare it with `shape " + name +
                 " = \"regex\"` or use `int`, `uuid`, `any`)");
  *ok = false;
  return "";
}

bool ValidLiteralSegment(const std::string& s) {
  if (s.empty() || s == "." || s == "..") return false;
  for (unsigned char c : s) {
    if (c < 0x21 || c == 0x7f || c == '{' || c == '}' || c == '%' || c == '?' || c == '#' ||
        c == '\\') {
      return false;
    }
  }
  return bytecode::IsValidUtf8(s);
}

bool IsIdent(const std::string& s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  for (unsigned char c : s) {
    if (!(std::isalnum(c) || c == '_')) return false;
  }
  return true;
}

bool Lowerer::ParseTemplate(const std::string& base, const ast::Route& r, FileCtx* file,
                            IrRoute& out) {
  const Location& loc = r.path_loc.file ? r.path_loc : r.loc;
  if (r.path.empty() || r.path[0] != '/') {
    Error(loc, "route path " + Bt(r.path) + " must start with `/`");
    return false;
  }
  std::string full = base == "/" ? r.path : (r.path == "/" ? base : base + r.path);
  out.path_template = full;
  bool ok = true;
  size_t pos = 1;
  if (full == "/") return true;
  while (pos <= full.size()) {
    size_t slash = full.find('/', pos);
    if (slash == std::string::npos) slash = full.size();
    std::string seg = full.substr(pos, slash - pos);
    pos = slash + 1;
    if (seg.empty()) {
      Error(loc, "route path " + Bt(full) + " has an empty segment (`//` or a trailing `/`)");
      return false;
    }
    if (seg.front() == '{') {
      if (seg.back() != '}') {
        Error(loc, "malformed parameter " + Bt(seg) + " in route path " + Bt(full));
        ok = false;
        continue;
      }
      std::string inner = seg.substr(1, seg.size() - 2);
      std::string pname = inner, shape;
      if (auto c = inner.find(':'); c != std::string::npos) {
        pname = inner.substr(0, c);
        shape = inner.substr(c + 1);
      }
      if (!IsIdent(pname)) {
        Error(loc, "parameter name " + Bt(pname) + " in route path " + Bt(full) +
                       " is not an identifier");
        ok = false;
        continue;
      }
      if (std::find(out.param_names.begin(), out.param_names.end(), pname) !=
          out.param_names.end()) {
        Error(loc, "parameter " + Bt(pname) + " appears twice in route path " + Bt(full));
        ok = false;
        continue;
      }
      IrSegment s;
      s.is_param = true;
      s.text = pname;
      s.shape = ResolveShape(shape, file, loc, &s.shape_name, &ok);
      out.segments.push_back(s);
      out.param_names.push_back(pname);
      if (out.param_names.size() > bytecode::kMaxParams) {
        Error(loc, "a route may have at most " + std::to_string(bytecode::kMaxParams) +
                       " parameters");
        return false;
      }
      continue;
    }
    if (!ValidLiteralSegment(seg)) {
      Error(loc, "invalid path segment " + Bt(seg) + " in route path " + Bt(full));
      ok = false;
      continue;
    }
    IrSegment s;
    s.text = seg;
    out.segments.push_back(s);
    if (pos > full.size()) break;
  }
  if (out.segments.size() > bytecode::kMaxSegments) {
    Error(loc, "route path " + Bt(full) + " has too many segments");
    ok = false;
  }
  return ok;
}

std::string DeriveRouteName(const std::string& method, const std::string& path) {
  std::string n;
  for (char c : method) n += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  // Keep letters, digits and '_' of each segment; parameters lose braces and shapes.
  size_t pos = 0;
  while (pos < path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string::npos) slash = path.size();
    std::string s = path.substr(pos, slash - pos);
    pos = slash + 1;
    if (s.empty()) continue;
    if (s.front() == '{') {
      s = s.substr(1, s.size() >= 2 ? s.size() - 2 : 0);
      if (auto c = s.find(':'); c != std::string::npos) s = s.substr(0, c);
    }
    std::string clean;
    for (unsigned char c : s) clean += std::isalnum(c) ? static_cast<char>(std::tolower(c)) : '_';
    n += "_" + clean;
  }
  return n;
}

IrProgram Lowerer::Run(const std::vector<const ast::File*>& files, const std::string& name) {
  IrProgram prog;
  prog.name = name;
  prog_ = &prog;
  // Packages and declarations.
  for (const ast::File* f : files) {
    std::string pname = f->package.empty() ? "main" : f->package;
    auto& pkg = packages_[pname];
    if (!pkg) {
      pkg = std::make_unique<Package>();
      pkg->name = pname;
    }
    auto ctx = std::make_unique<FileCtx>();
    ctx->file = f;
    ctx->pkg = pkg.get();
    for (const auto& c : f->consts) {
      Declare(*pkg, c.name, c.loc);
      pkg->consts.emplace(c.name, std::make_pair(&c, ctx.get()));
    }
    for (const auto& fn : f->functions) {
      Declare(*pkg, fn.name, fn.loc);
      pkg->functions.emplace(fn.name, std::make_pair(&fn, ctx.get()));
      static const std::set<std::string> kReserved = {
          "has", "string", "int", "bool", "timestamp", "duration", "starts_with", "ends_with",
          "contains", "lower", "upper", "len", "split", "trim", "has_scope"};
      if (kReserved.count(fn.name)) {
        Error(fn.loc, "function " + Bt(fn.name) + " would hide the built-in of the same name");
      }
    }
    for (const auto& s : f->shapes) {
      Declare(*pkg, s.name, s.loc);
      if (s.name == "any" || s.name == "string" || BuiltinShapeImpl(s.name)) {
        Error(s.loc, "shape " + Bt(s.name) + " would hide the built-in shape of the same name");
      }
      pkg->shapes.emplace(s.name, std::make_pair(&s, ctx.get()));
      RE2::Options opts;
      opts.set_log_errors(false);
      opts.set_max_mem(8 << 20);
      RE2 re(s.pattern, opts);
      if (!re.ok()) {
        Error(s.pattern_loc.file ? s.pattern_loc : s.loc,
              "invalid regular expression " + Bt(s.pattern) + " in shape " + Bt(s.name) + ": " +
                  re.error());
      }
    }
    for (const auto& p : f->profiles) {
      Declare(*pkg, p.name, p.loc);
      if (p.name == "fapi2") {
        Error(p.loc, "profile `fapi2` would hide the built-in FAPI 2.0 profile");
      }
      pkg->profiles.emplace(p.name, std::make_pair(&p, ctx.get()));
    }
    CollectClaims(*f);
    file_ctxs_.push_back(std::move(ctx));
  }
  // Imports (after every package is known).
  for (auto& ctx : file_ctxs_) {
    for (const auto& imp : ctx->file->imports) {
      auto it = packages_.find(imp.package);
      if (it == packages_.end()) {
        Error(imp.loc, "unknown package " + Bt(imp.package));
        continue;
      }
      std::string alias = imp.alias.empty() ? imp.package : imp.alias;
      if (!ctx->imports.emplace(alias, it->second.get()).second) {
        Error(imp.loc, "package alias " + Bt(alias) + " is imported twice");
      }
    }
  }
  // Issuers (their keys are read and checked here, once).
  for (auto& ctx : file_ctxs_) {
    for (const auto& is : ctx->file->issuers) LowerIssuer(is, ctx.get(), prog);
  }
  // Relations (their files are read and checked here, once).
  for (auto& ctx : file_ctxs_) {
    for (const auto& r : ctx->file->relations) LowerRelation(r, ctx.get(), prog);
  }
  for (auto& ctx : file_ctxs_) {
    for (const auto& sd : ctx->file->schemas) DeclareSchema(sd, ctx.get());
  }
  // Functions are checked once on their own so that unused ones get errors too.
  for (auto& ctx : file_ctxs_) {
    for (const auto& fn : ctx->file->functions) {
      std::vector<std::unique_ptr<IrExpr>> args;
      for (const auto& p : fn.params) {
        auto a = Make(IrKind::kConst, FromTypeRef(p.type, diags_), p.loc);
        args.push_back(std::move(a));
      }
      // Parameters as opaque typed placeholders; path parameters are unknown here.
      std::vector<Local> locals;
      for (size_t i = 0; i < args.size(); ++i) locals.push_back({fn.params[i].name, args[i].get()});
      if (!fn.body) continue;
      Env env{ctx.get(), &locals, nullptr, false, 0, true};
      fn_stack_.push_back(&fn);
      auto body = LowerExpr(*fn.body, env);
      fn_stack_.pop_back();
      if (!poisoned_) Expect(std::move(body), FromTypeRef(fn.result, diags_),
                             ("the result of " + Bt(fn.name)).c_str());
      poisoned_ = false;
    }
    for (const auto& c : ctx->file->consts) {
      Env env{ctx.get(), nullptr, nullptr, false, 0, c.is_let};
      auto checked = InlineConst(c, ctx.get(), c.loc, env);
      poisoned_ = false;
    }
  }

  // APIs and routes.
  std::map<std::string, Location> api_names;
  std::map<std::string, Location> route_names;
  std::map<std::string, Location> route_keys;
  for (auto& ctx : file_ctxs_) {
    for (const auto& api : ctx->file->apis) {
      if (auto [it, ins] = api_names.emplace(api.name, api.loc); !ins) {
        Error(api.loc, "api " + Bt(api.name) + " is already defined");
        diags_.Note(it->second, "previous definition of " + Bt(api.name) + " is here");
      }
      std::string base = api.base_path;
      const Location& bloc = api.base_loc.file ? api.base_loc : api.loc;
      if (base.empty() || base[0] != '/') {
        Error(bloc, "api base path " + Bt(base) + " must start with `/`");
        continue;
      }
      if (base.size() > 1 && base.back() == '/') {
        Error(bloc, "api base path " + Bt(base) + " must not end with `/`");
        continue;
      }
      if (base.find('{') != std::string::npos) {
        Error(bloc, "api base path " + Bt(base) + " cannot have parameters");
        continue;
      }
      for (const auto& r : api.routes) {
        IrRoute route;
        route.method = r.method;
        route.loc = r.loc;
        bool method_ok = !r.method.empty() && r.method.size() <= bytecode::kMaxMethodBytes;
        for (unsigned char c : r.method) method_ok &= (c >= 'A' && c <= 'Z');
        if (!method_ok) {
          Error(r.method_loc.file ? r.method_loc : r.loc,
                "http method " + Bt(r.method) + " must be upper case, e.g. `GET`");
        }
        if (!ParseTemplate(base, r, ctx.get(), route)) continue;
        std::string rname = r.name.empty() ? DeriveRouteName(r.method, route.path_template.substr(
                                                                           base == "/" ? 0 : base.size()))
                                           : r.name;
        route.name = api.name + "." + rname;
        if (auto [it, ins] = route_names.emplace(route.name, r.loc); !ins) {
          Error(r.loc, "route name " + Bt(route.name) + " is already used; name the route (`route NAME " +
                           r.method + " \"...\"`)");
          diags_.Note(it->second, "previous route named " + Bt(route.name) + " is here");
        }
        // Duplicate detection ignores parameter names: /a/{x} == /a/{y}.
        std::string key = r.method + " ";
        for (const auto& s : route.segments) key += "/" + (s.is_param ? "{}" : s.text);
        if (auto [it, ins] = route_keys.emplace(key, r.loc); !ins) {
          Error(r.loc, "duplicate route " + Bt(r.method + " " + route.path_template));
          diags_.Note(it->second, "first defined here");
        }
        std::vector<const ast::Profile*> stack;
        route_profiles_.clear();
        current_base_ = base;
        ExpandBody(api.body, ctx.get(), route, api.name, stack, 0);
        ExpandBody(r.body, ctx.get(), route, route.name, stack, 0);
        if (route.auth && route.auth->issuer == bytecode::kNone) {
          // `use fapi2` without `issuer = NAME`: the only issuer there is.
          if (prog.issuers.size() == 1) {
            route.auth->issuer = 0;
          } else if (prog.issuers.empty()) {
            Error(r.loc, "route " + Bt(route.name) +
                             " uses `fapi2` but no issuer is declared (add `issuer NAME { url = ... "
                             "audience = ... jwks = ... }`)");
          } else {
            Error(r.loc, "route " + Bt(route.name) +
                             " uses `fapi2` and several issuers are declared: choose one with "
                             "`use fapi2 { issuer = NAME }`");
          }
        }
        prog.routes.push_back(std::move(route));
      }
    }
  }
  FinishSchemas(prog);
  return prog;
}

}  // namespace

const char* BuiltinShape(const std::string& name) { return BuiltinShapeImpl(name); }

std::string TypeName(Type t) {
  switch (t.kind) {
    case ValueType::kNull: return "null";
    case ValueType::kBool: return "bool";
    case ValueType::kInt: return "int";
    case ValueType::kString: return "string";
    case ValueType::kDuration: return "duration";
    case ValueType::kTimestamp: return "timestamp";
    case ValueType::kJson: return "json";
    case ValueType::kList: return "list<" + TypeName(Type::Of(t.elem)) + ">";
  }
  return "?";
}

std::unique_ptr<IrExpr> Clone(const IrExpr& e) {
  auto c = std::make_unique<IrExpr>();
  c->kind = e.kind;
  c->type = e.type;
  c->loc = e.loc;
  c->bool_value = e.bool_value;
  c->int_value = e.int_value;
  c->str = e.str;
  c->claim_path = e.claim_path;
  c->field = e.field;
  c->rfield = e.rfield;
  c->source = e.source;
  c->index = e.index;
  c->op = e.op;
  c->builtin = e.builtin;
  for (const auto& ch : e.children) c->children.push_back(Clone(*ch));
  return c;
}

IrProgram Lower(const std::vector<const dsl::ast::File*>& files, const std::string& name,
                dsl::Diagnostics& diags, const AssetReader& read_asset) {
  Lowerer l(diags, read_asset);
  return l.Run(files, name);
}

}  // namespace vakt::compiler
