// Tests for the DSL front end (dsl/parser.h): the AST shape of every
// construct, operator precedence, keywords as names, locations, every error
// branch with its line:col, the nesting and size limits, Lex(), and a
// fuzz-style robustness run over random bytes and token soups.
#include "dsl/parser.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "dsl/formatter.h"

namespace vakt::dsl {
namespace {

using ast::BinaryOp;
using ast::ExprKind;
using ast::StmtKind;

// A parse result that keeps its source alive (locations point into it).
struct Parsed {
  std::unique_ptr<SourceFile> src;
  std::unique_ptr<ast::File> file;
  Diagnostics diags;

  // "line:col: message" per diagnostic, one per line.
  std::string Errors() const {
    std::string out;
    for (const auto& d : diags.all()) {
      out +=
          std::to_string(d.loc.line) + ":" + std::to_string(d.loc.column) + ": " + d.message + "\n";
    }
    return out;
  }
};

Parsed Parse(std::string text, std::string path = "t.vakt") {
  Parsed p;
  p.src = std::make_unique<SourceFile>(SourceFile{std::move(path), std::move(text)});
  p.file = ParseFile(*p.src, p.diags);
  return p;
}

std::string LocStr(const Location& l) {
  return std::to_string(l.line) + ":" + std::to_string(l.column);
}

const char* BinOpName(BinaryOp op) {
  switch (op) {
    case BinaryOp::kOr:
      return "||";
    case BinaryOp::kAnd:
      return "&&";
    case BinaryOp::kEq:
      return "==";
    case BinaryOp::kNe:
      return "!=";
    case BinaryOp::kLt:
      return "<";
    case BinaryOp::kLe:
      return "<=";
    case BinaryOp::kGt:
      return ">";
    case BinaryOp::kGe:
      return ">=";
    case BinaryOp::kIn:
      return "in";
    case BinaryOp::kMatches:
      return "matches";
    case BinaryOp::kAdd:
      return "+";
    case BinaryOp::kSub:
      return "-";
    case BinaryOp::kMul:
      return "*";
    case BinaryOp::kDiv:
      return "/";
    case BinaryOp::kMod:
      return "%";
  }
  return "?";
}

// An S-expression of the tree: (op a b), (! a), (neg a), (. x name),
// ([] x i), (call f args...), [a b], "str", 5, 300s, name.
std::string Sexp(const ast::Expr* e) {
  if (!e) return "<null>";
  std::string out;
  auto kids = [&](size_t from) {
    for (size_t i = from; i < e->children.size(); ++i) out += " " + Sexp(e->children[i].get());
  };
  switch (e->kind) {
    case ExprKind::kNull:
      return "null";
    case ExprKind::kBool:
      return e->bool_value ? "true" : "false";
    case ExprKind::kInt:
      return std::to_string(e->int_value);
    case ExprKind::kDuration:
      return std::to_string(e->int_value) + "s";
    case ExprKind::kString:
      return "\"" + e->text + "\"";
    case ExprKind::kName:
      return e->text;
    case ExprKind::kList:
      out = "[";
      for (size_t i = 0; i < e->children.size(); ++i) {
        if (i) out += " ";
        out += Sexp(e->children[i].get());
      }
      return out + "]";
    case ExprKind::kMember:
      out = "(. " + Sexp(e->children.empty() ? nullptr : e->children[0].get()) + " " + e->text;
      return out + ")";
    case ExprKind::kIndex:
      out = "([]";
      kids(0);
      return out + ")";
    case ExprKind::kCall:
      out = "(call";
      kids(0);
      return out + ")";
    case ExprKind::kUnary:
      out = e->uop == ast::UnaryOp::kNot ? "(!" : "(neg";
      kids(0);
      return out + ")";
    case ExprKind::kBinary:
      out = std::string("(") + BinOpName(e->bop);
      kids(0);
      return out + ")";
  }
  return "?";
}

// Parses `const x = <expr>` and returns the tree of <expr>.
std::string ExprTree(const std::string& expr) {
  Parsed p = Parse("const x = " + expr + "\n");
  EXPECT_EQ(p.Errors(), "") << expr;
  if (p.file->consts.size() != 1) return "<no const>";
  return Sexp(p.file->consts[0].value.get());
}

// The errors of parsing `text`, as "line:col: message" lines.
std::string ErrorsOf(const std::string& text) { return Parse(text).Errors(); }

std::string Nest(const std::string& open, const std::string& mid, const std::string& close, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += open;
  s += mid;
  for (int i = 0; i < n; ++i) s += close;
  return s;
}

// ---------------------------------------------------------------- declarations

TEST(Parser, EmptyFile) {
  Parsed p = Parse("");
  EXPECT_EQ(p.Errors(), "");
  EXPECT_EQ(p.file->source, p.src.get());
  EXPECT_EQ(p.file->package, "");
  Parsed q = Parse("  // only a comment\n/* and a block */\n");
  EXPECT_EQ(q.Errors(), "");
}

TEST(Parser, PackageAndImports) {
  Parsed p = Parse("package acme\nimport lib\n  import other as o\n");
  ASSERT_EQ(p.Errors(), "");
  const ast::File& f = *p.file;
  EXPECT_EQ(f.package, "acme");
  EXPECT_EQ(LocStr(f.package_loc), "1:1");
  EXPECT_EQ(f.package_loc.file, p.src.get());
  ASSERT_EQ(f.imports.size(), 2u);
  EXPECT_EQ(f.imports[0].package, "lib");
  EXPECT_EQ(f.imports[0].alias, "");
  EXPECT_EQ(LocStr(f.imports[0].loc), "2:1");
  EXPECT_EQ(f.imports[1].package, "other");
  EXPECT_EQ(f.imports[1].alias, "o");
  EXPECT_EQ(LocStr(f.imports[1].loc), "3:3");
}

TEST(Parser, PackageMustComeFirst) {
  EXPECT_EQ(ErrorsOf("const a = 1\npackage p\n"), "2:1: syntax error: unexpected `package`\n");
  EXPECT_EQ(ErrorsOf("const a = 1\nimport p\n"), "2:1: syntax error: unexpected `import`\n");
}

TEST(Parser, ConstsAndLets) {
  Parsed p = Parse(
      "const A = 1\n"
      "const B: list<string> = [\"x\", \"y\",]\n"
      "let c = request.method\n"
      "const D: duration = 10s\n");
  ASSERT_EQ(p.Errors(), "");
  const auto& cs = p.file->consts;
  ASSERT_EQ(cs.size(), 4u);
  EXPECT_EQ(cs[0].name, "A");
  EXPECT_FALSE(cs[0].type.has_value());
  EXPECT_FALSE(cs[0].is_let);
  EXPECT_EQ(Sexp(cs[0].value.get()), "1");
  EXPECT_EQ(LocStr(cs[0].loc), "1:1");
  EXPECT_EQ(cs[1].name, "B");
  ASSERT_TRUE(cs[1].type.has_value());
  EXPECT_EQ(cs[1].type->kind, ast::TypeRef::Kind::kList);
  ASSERT_TRUE(cs[1].type->elem);
  EXPECT_EQ(cs[1].type->elem->kind, ast::TypeRef::Kind::kString);
  EXPECT_EQ(LocStr(cs[1].type->loc), "2:10");
  EXPECT_EQ(LocStr(cs[1].type->elem->loc), "2:15");
  EXPECT_EQ(Sexp(cs[1].value.get()), "[\"x\" \"y\"]");
  EXPECT_EQ(cs[2].name, "c");
  EXPECT_TRUE(cs[2].is_let);
  EXPECT_EQ(Sexp(cs[2].value.get()), "(. request method)");
  EXPECT_EQ(LocStr(cs[2].loc), "3:1");
  EXPECT_EQ(cs[3].type->kind, ast::TypeRef::Kind::kDuration);
}

TEST(Parser, AllTypes) {
  Parsed p = Parse(
      "fn f(a: bool, b: int, c: string, d: duration, e: timestamp, g: json, h: null,\n"
      "     i: list<list<int>>,) -> bool { true }\n");
  ASSERT_EQ(p.Errors(), "");
  ASSERT_EQ(p.file->functions.size(), 1u);
  const ast::Function& f = p.file->functions[0];
  using K = ast::TypeRef::Kind;
  std::vector<K> want = {K::kBool,      K::kInt,  K::kString, K::kDuration,
                         K::kTimestamp, K::kJson, K::kNull,   K::kList};
  ASSERT_EQ(f.params.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(f.params[i].type.kind, want[i]) << i;
  const ast::TypeRef& nested = f.params[7].type;
  ASSERT_TRUE(nested.elem);
  EXPECT_EQ(nested.elem->kind, K::kList);
  ASSERT_TRUE(nested.elem->elem);
  EXPECT_EQ(nested.elem->elem->kind, K::kInt);
  EXPECT_EQ(f.params[7].name, "i");
  EXPECT_EQ(LocStr(f.params[7].loc), "2:6");
  EXPECT_EQ(f.result.kind, K::kBool);
}

TEST(Parser, Function) {
  Parsed p = Parse(
      "\n  fn has_scope(wanted: string) -> bool {\n    wanted in split(token.scope, \" \")\n  }\n");
  ASSERT_EQ(p.Errors(), "");
  const ast::Function& f = p.file->functions.at(0);
  EXPECT_EQ(f.name, "has_scope");
  EXPECT_EQ(LocStr(f.loc), "2:3");
  ASSERT_EQ(f.params.size(), 1u);
  EXPECT_EQ(f.params[0].name, "wanted");
  EXPECT_EQ(LocStr(f.params[0].loc), "2:16");
  EXPECT_EQ(f.params[0].type.kind, ast::TypeRef::Kind::kString);
  EXPECT_EQ(f.result.kind, ast::TypeRef::Kind::kBool);
  EXPECT_EQ(Sexp(f.body.get()), "(in wanted (call split (. token scope) \" \"))");
  EXPECT_EQ(LocStr(f.body->loc), "3:12");  // the `in`
  Parsed q = Parse("fn now_ok() -> bool { true }\n");
  ASSERT_EQ(q.Errors(), "");
  EXPECT_TRUE(q.file->functions.at(0).params.empty());
}

TEST(Parser, Shapes) {
  Parsed p = Parse("shape Id = r\"^[A-Za-z0-9-]{1,64}$\"\nshape Num = \"^\\\\d+$\"\n");
  ASSERT_EQ(p.Errors(), "");
  ASSERT_EQ(p.file->shapes.size(), 2u);
  EXPECT_EQ(p.file->shapes[0].name, "Id");
  EXPECT_EQ(p.file->shapes[0].pattern, "^[A-Za-z0-9-]{1,64}$");
  EXPECT_EQ(LocStr(p.file->shapes[0].loc), "1:1");
  EXPECT_EQ(LocStr(p.file->shapes[0].pattern_loc), "1:12");
  EXPECT_EQ(p.file->shapes[1].pattern, "^\\d+$");
}

TEST(Parser, Claims) {
  Parsed p = Parse(
      "claims {\n"
      "  patient_id: string\n"
      "  cnf.jkt: string care_team: list<string>\n"
      "  request.if.json: json\n"
      "}\n"
      "claims { iat: timestamp }\n");
  ASSERT_EQ(p.Errors(), "");
  const auto& c = p.file->claims;
  ASSERT_EQ(c.size(), 5u);
  EXPECT_EQ(c[0].path, "patient_id");
  EXPECT_EQ(LocStr(c[0].loc), "2:3");
  EXPECT_EQ(c[0].type.kind, ast::TypeRef::Kind::kString);
  EXPECT_EQ(c[1].path, "cnf.jkt");
  EXPECT_EQ(c[2].path, "care_team");
  EXPECT_EQ(LocStr(c[2].loc), "3:19");
  EXPECT_EQ(c[2].type.kind, ast::TypeRef::Kind::kList);
  EXPECT_EQ(c[3].path, "request.if.json");
  EXPECT_EQ(c[3].type.kind, ast::TypeRef::Kind::kJson);
  EXPECT_EQ(c[4].path, "iat");
  EXPECT_EQ(c[4].type.kind, ast::TypeRef::Kind::kTimestamp);
}

TEST(Parser, ProfileBodyStatements) {
  Parsed p = Parse(
      "profile authenticated {\n"
      "  use transport\n"
      "  use lib.base\n"
      "  let s = split(token.scope, \" \")\n"
      "  token: require has(request.headers.authorization)\n"
      "    else deny 401 \"an access token is required\"\n"
      "  require a else deny 403\n"
      "  q: deny 400 invalid_request \"no tokens in the query\" if has(request.query.t)\n"
      "  deny 429 if b\n"
      "  json: require c else deny 403 access_denied\n"
      "}\n");
  ASSERT_EQ(p.Errors(), "");
  ASSERT_EQ(p.file->profiles.size(), 1u);
  const ast::Profile& pr = p.file->profiles[0];
  EXPECT_EQ(pr.name, "authenticated");
  EXPECT_EQ(LocStr(pr.loc), "1:1");
  EXPECT_FALSE(pr.body.has_response);
  const auto& s = pr.body.request;
  ASSERT_EQ(s.size(), 8u);

  EXPECT_EQ(s[0].kind, StmtKind::kUse);
  EXPECT_EQ(s[0].name, "transport");
  EXPECT_EQ(LocStr(s[0].loc), "2:3");
  EXPECT_EQ(LocStr(s[0].name_loc), "2:7");
  EXPECT_EQ(s[1].kind, StmtKind::kUse);
  EXPECT_EQ(s[1].name, "lib.base");
  EXPECT_EQ(LocStr(s[1].name_loc), "3:7");

  EXPECT_EQ(s[2].kind, StmtKind::kLet);
  EXPECT_EQ(s[2].name, "s");
  EXPECT_EQ(LocStr(s[2].name_loc), "4:7");
  EXPECT_EQ(Sexp(s[2].expr.get()), "(call split (. token scope) \" \")");

  EXPECT_EQ(s[3].kind, StmtKind::kRequire);
  EXPECT_EQ(s[3].label, "token");
  EXPECT_EQ(LocStr(s[3].loc), "5:3");
  EXPECT_EQ(Sexp(s[3].expr.get()), "(call has (. (. request headers) authorization))");
  EXPECT_EQ(s[3].deny.status, 401);
  EXPECT_EQ(s[3].deny.error, "");
  EXPECT_EQ(s[3].deny.message, "an access token is required");
  EXPECT_EQ(LocStr(s[3].deny.loc), "6:10");

  EXPECT_EQ(s[4].kind, StmtKind::kRequire);
  EXPECT_EQ(s[4].label, "");
  EXPECT_EQ(s[4].deny.status, 403);
  EXPECT_EQ(s[4].deny.error, "");
  EXPECT_EQ(s[4].deny.message, "");

  EXPECT_EQ(s[5].kind, StmtKind::kDenyIf);
  EXPECT_EQ(s[5].label, "q");
  EXPECT_EQ(s[5].deny.status, 400);
  EXPECT_EQ(s[5].deny.error, "invalid_request");
  EXPECT_EQ(s[5].deny.message, "no tokens in the query");
  EXPECT_EQ(LocStr(s[5].deny.loc), "8:6");
  EXPECT_EQ(Sexp(s[5].expr.get()), "(call has (. (. request query) t))");

  EXPECT_EQ(s[6].kind, StmtKind::kDenyIf);
  EXPECT_EQ(s[6].deny.status, 429);
  EXPECT_EQ(s[6].deny.error, "");
  EXPECT_EQ(LocStr(s[6].loc), "9:3");

  EXPECT_EQ(s[7].label, "json");  // a keyword as a label
  EXPECT_EQ(s[7].deny.error, "access_denied");
}

TEST(Parser, OnResponseAnywhere) {
  Parsed p = Parse(
      "profile p {\n"
      "  require a else deny 403\n"
      "  on response {\n"
      "    ok: require response.status < 500 else deny 502 invalid_response \"upstream\"\n"
      "  }\n"
      "  require b else deny 403\n"
      "}\n");
  ASSERT_EQ(p.Errors(), "");
  const ast::Body& b = p.file->profiles.at(0).body;
  ASSERT_EQ(b.request.size(), 2u);
  EXPECT_EQ(Sexp(b.request[0].expr.get()), "a");
  EXPECT_EQ(Sexp(b.request[1].expr.get()), "b");
  EXPECT_TRUE(b.has_response);
  EXPECT_EQ(LocStr(b.response_loc), "3:3");
  ASSERT_EQ(b.response.size(), 1u);
  EXPECT_EQ(b.response[0].label, "ok");
  EXPECT_EQ(Sexp(b.response[0].expr.get()), "(< (. response status) 500)");
  EXPECT_EQ(b.response[0].deny.status, 502);
  EXPECT_EQ(b.response[0].deny.error, "invalid_response");
}

TEST(Parser, ApiAndRoutes) {
  Parsed p = Parse(
      "api records \"/v1\" {\n"
      "  use transport\n"
      "  route health GET \"/health\" {}\n"
      "  require api_ok else deny 503\n"
      "  route GET \"/patients/{id:Id}\" {\n"
      "    use authenticated\n"
      "    on response { require response.status != 500 else deny 502 }\n"
      "  }\n"
      "  on response { require true else deny 502 }\n"
      "  route delete_record DELETE \"/r/{id}\" { deny 403 if !admin }\n"
      "}\n");
  ASSERT_EQ(p.Errors(), "");
  ASSERT_EQ(p.file->apis.size(), 1u);
  const ast::Api& api = p.file->apis[0];
  EXPECT_EQ(api.name, "records");
  EXPECT_EQ(api.base_path, "/v1");
  EXPECT_EQ(LocStr(api.loc), "1:1");
  EXPECT_EQ(LocStr(api.base_loc), "1:13");
  ASSERT_EQ(api.body.request.size(), 2u);
  EXPECT_EQ(api.body.request[0].kind, StmtKind::kUse);
  EXPECT_EQ(api.body.request[1].kind, StmtKind::kRequire);
  EXPECT_TRUE(api.body.has_response);
  EXPECT_EQ(LocStr(api.body.response_loc), "9:3");
  ASSERT_EQ(api.routes.size(), 3u);

  const ast::Route& r0 = api.routes[0];
  EXPECT_EQ(r0.name, "health");
  EXPECT_EQ(r0.method, "GET");
  EXPECT_EQ(r0.path, "/health");
  EXPECT_EQ(LocStr(r0.loc), "3:3");
  EXPECT_EQ(LocStr(r0.method_loc), "3:16");
  EXPECT_EQ(LocStr(r0.path_loc), "3:20");
  EXPECT_TRUE(r0.body.request.empty());

  const ast::Route& r1 = api.routes[1];
  EXPECT_EQ(r1.name, "");
  EXPECT_EQ(r1.method, "GET");
  EXPECT_EQ(LocStr(r1.method_loc), "5:9");
  EXPECT_EQ(r1.path, "/patients/{id:Id}");
  ASSERT_EQ(r1.body.request.size(), 1u);
  EXPECT_TRUE(r1.body.has_response);
  ASSERT_EQ(r1.body.response.size(), 1u);

  const ast::Route& r2 = api.routes[2];
  EXPECT_EQ(r2.name, "delete_record");
  EXPECT_EQ(r2.method, "DELETE");
  ASSERT_EQ(r2.body.request.size(), 1u);
  EXPECT_EQ(Sexp(r2.body.request[0].expr.get()), "(! admin)");
}

TEST(Parser, MethodIsKeptAsWritten) {
  Parsed p = Parse("api a \"/\" { route get \"/x\" {} route x_1 patch \"/y\" {} }");
  ASSERT_EQ(p.Errors(), "");
  ASSERT_EQ(p.file->apis.at(0).routes.size(), 2u);
  EXPECT_EQ(p.file->apis[0].routes[0].name, "");
  EXPECT_EQ(p.file->apis[0].routes[0].method, "get");
  EXPECT_EQ(p.file->apis[0].routes[1].name, "x_1");
  EXPECT_EQ(p.file->apis[0].routes[1].method, "patch");
}

TEST(Parser, Tests) {
  Parsed p = Parse(
      "test \"a patient reads\" {\n"
      "  request {\"method\": \"GET\", \"path\": \"/v1/p/1\",\n"
      "           \"headers\": {\"authorization\": \"DPoP x\"}, \"n\": [1, -2.5e3, true, false, "
      "null]}\n"
      "  claims {\"sub\": \"anna\", \"esc\": \"\\u00e9\\n\"}\n"
      "  response {}\n"
      "  now 1700000000\n"
      "  expect allow\n"
      "}\n"
      "test \"refused\" { expect deny 403 access_denied request {\"method\": \"GET\"} }\n"
      "test \"status only\" { expect deny 401 }\n"
      "test \"empty\" {}\n");
  ASSERT_EQ(p.Errors(), "");
  const auto& ts = p.file->tests;
  ASSERT_EQ(ts.size(), 4u);
  EXPECT_EQ(ts[0].name, "a patient reads");
  EXPECT_EQ(LocStr(ts[0].loc), "1:1");
  EXPECT_EQ(ts[0].request_json,
            "{\"method\": \"GET\", \"path\": \"/v1/p/1\",\n"
            "           \"headers\": {\"authorization\": \"DPoP x\"}, \"n\": [1, -2.5e3, true, "
            "false, null]}");
  EXPECT_EQ(LocStr(ts[0].request_loc), "2:11");
  EXPECT_EQ(ts[0].claims_json, "{\"sub\": \"anna\", \"esc\": \"\\u00e9\\n\"}");
  EXPECT_EQ(LocStr(ts[0].claims_loc), "4:10");
  EXPECT_EQ(ts[0].response_json, "{}");
  EXPECT_EQ(LocStr(ts[0].response_loc), "5:12");
  ASSERT_TRUE(ts[0].now.has_value());
  EXPECT_EQ(*ts[0].now, 1700000000);
  EXPECT_TRUE(ts[0].has_expect);
  EXPECT_TRUE(ts[0].expect.allow);
  EXPECT_EQ(LocStr(ts[0].expect.loc), "7:3");

  EXPECT_TRUE(ts[1].has_expect);
  EXPECT_FALSE(ts[1].expect.allow);
  EXPECT_EQ(ts[1].expect.status, 403);
  EXPECT_EQ(ts[1].expect.error, "access_denied");
  EXPECT_EQ(ts[1].request_json, "{\"method\": \"GET\"}");
  EXPECT_EQ(ts[1].claims_json, "");
  EXPECT_FALSE(ts[1].now.has_value());

  EXPECT_EQ(ts[2].expect.status, 401);
  EXPECT_EQ(ts[2].expect.error, "");
  EXPECT_FALSE(ts[3].has_expect);
  EXPECT_EQ(ts[3].request_json, "");
}

// ---------------------------------------------------------------- expressions

TEST(Parser, Precedence) {
  EXPECT_EQ(ExprTree("a || b && c == d + e * -f"), "(|| a (&& b (== c (+ d (* e (neg f))))))");
  EXPECT_EQ(ExprTree("-f * e + d == c && b || a"), "(|| (&& (== (+ (* (neg f) e) d) c) b) a)");
  EXPECT_EQ(ExprTree("a - b - c"), "(- (- a b) c)");
  EXPECT_EQ(ExprTree("a / b * c % d"), "(% (* (/ a b) c) d)");
  EXPECT_EQ(ExprTree("a || b || c"), "(|| (|| a b) c)");
  EXPECT_EQ(ExprTree("(a || b) && c"), "(&& (|| a b) c)");
  EXPECT_EQ(ExprTree("a - -b"), "(- a (neg b))");
  EXPECT_EQ(ExprTree("!!a"), "(! (! a))");
  EXPECT_EQ(ExprTree("-(3 % 2) == -1"), "(== (neg (% 3 2)) (neg 1))");
  EXPECT_EQ(ExprTree("!a.b(c)[d]"), "(! ([] (call (. a b) c) d))");
  EXPECT_EQ(ExprTree("f(a)(b)"), "(call (call f a) b)");
  EXPECT_EQ(ExprTree("x in [1, 2,]"), "(in x [1 2])");
  EXPECT_EQ(ExprTree("[]"), "[]");
  EXPECT_EQ(ExprTree("f()"), "(call f)");
  EXPECT_EQ(ExprTree("f(a, b,)"), "(call f a b)");
  EXPECT_EQ(ExprTree("request.path matches r\"^/v1/[0-9]+$\""),
            "(matches (. request path) \"^/v1/[0-9]+$\")");
  EXPECT_EQ(ExprTree("a != b && a <= b && a >= b && a < b && a > b"),
            "(&& (&& (&& (&& (!= a b) (<= a b)) (>= a b)) (< a b)) (> a b))");
  EXPECT_EQ(ExprTree("now - t < MAX_AGE"), "(< (- now t) MAX_AGE)");
  EXPECT_EQ(ExprTree("a\n  && b\n  || c"), "(|| (&& a b) c)");  // newlines do not matter
}

TEST(Parser, Literals) {
  EXPECT_EQ(ExprTree("[10s, 5m, 2h, 1d, 0s]"), "[10s 300s 7200s 86400s 0s]");
  EXPECT_EQ(ExprTree("9223372036854775807"), "9223372036854775807");
  EXPECT_EQ(ExprTree("[true, false, null]"), "[true false null]");
  EXPECT_EQ(ExprTree("\"a\\\"b\\\\c\\/d\\te\""), "\"a\"b\\c/d\te\"");
  EXPECT_EQ(ExprTree("r\"a\\d+\\\""), "\"a\\d+\\\"");

  Parsed p = Parse("const s = \"\\n\\t\\r\\b\\f\\u00e9\\u20AC\\ud83d\\ude00\\u0041\"\n");
  ASSERT_EQ(p.Errors(), "");
  EXPECT_EQ(p.file->consts[0].value->kind, ExprKind::kString);
  EXPECT_EQ(p.file->consts[0].value->text,
            "\n\t\r\b\f\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"
            "A");

  Parsed d = Parse("const d = 106751991167300d\n");
  ASSERT_EQ(d.Errors(), "");
  EXPECT_EQ(d.file->consts[0].value->kind, ExprKind::kDuration);
  EXPECT_EQ(d.file->consts[0].value->int_value, 106751991167300LL * 86400);

  Parsed u = Parse("const s = \"caf\xC3\xA9\"\n");  // raw UTF-8 is fine
  ASSERT_EQ(u.Errors(), "");
  EXPECT_EQ(u.file->consts[0].value->text, "caf\xC3\xA9");
}

TEST(Parser, KeywordsAsNames) {
  EXPECT_EQ(ExprTree("request.method == \"GET\" && response.status < 500"),
            "(&& (== (. request method) \"GET\") (< (. response status) 500))");
  EXPECT_EQ(ExprTree("[claims.sub, now, route.name, api.name, test, shape, profile, use]"),
            "[(. claims sub) now (. route name) (. api name) test shape profile use]");
  EXPECT_EQ(ExprTree("[bool, int(x), string(y), duration(\"5m\"), timestamp(z), json, list]"),
            "[bool (call int x) (call string y) (call duration \"5m\") (call timestamp z) json "
            "list]");
  // After `.` every keyword is a plain member name.
  EXPECT_EQ(ExprTree("x.if.else.deny.require.in.matches.true.null.package.expect.allow.on"),
            "(. (. (. (. (. (. (. (. (. (. (. (. x if) else) deny) require) in) matches) "
            "true) null) package) expect) allow) on)");
}

TEST(Parser, ExpressionLocations) {
  Parsed p = Parse("const x = a  ==  f(b)[c].d\nconst y = !z\nconst l = [1]\n");
  ASSERT_EQ(p.Errors(), "");
  const ast::Expr* e = p.file->consts[0].value.get();
  EXPECT_EQ(e->kind, ExprKind::kBinary);
  EXPECT_EQ(LocStr(e->loc), "1:14");  // the operator
  EXPECT_EQ(LocStr(e->children[0]->loc), "1:11");
  const ast::Expr* m = e->children[1].get();  // f(b)[c].d: every postfix node at `f`
  EXPECT_EQ(m->kind, ExprKind::kMember);
  EXPECT_EQ(LocStr(m->loc), "1:18");
  EXPECT_EQ(LocStr(m->children[0]->loc), "1:18");
  EXPECT_EQ(LocStr(m->children[0]->children[1]->loc), "1:23");  // c
  EXPECT_EQ(LocStr(p.file->consts[1].value->loc), "2:11");
  EXPECT_EQ(LocStr(p.file->consts[1].value->children[0]->loc), "2:12");
  EXPECT_EQ(LocStr(p.file->consts[2].value->loc), "3:11");
  EXPECT_EQ(p.file->consts[0].value->loc.file, p.src.get());
}

// ---------------------------------------------------------------- errors

TEST(ParserErrors, MissingElse) {
  EXPECT_EQ(ErrorsOf("profile p {\n  require x deny 403\n}\n"),
            "2:13: syntax error: unexpected `deny`, expected `else`\n");
}

TEST(ParserErrors, FormatWithCaret) {
  Parsed p = Parse("api a \"/v1\" {\n  route GET \"/x\" {\n    require x deny 403\n  }\n}\n",
                   "policy/main.vakt");
  ASSERT_EQ(p.diags.all().size(), 1u);
  EXPECT_EQ(p.diags.Format(),
            "policy/main.vakt:3:15: error: syntax error: unexpected `deny`, expected `else`\n"
            "      require x deny 403\n"
            "                ^\n");
}

TEST(ParserErrors, Strings) {
  EXPECT_EQ(ErrorsOf("const s = \"abc\nconst t = 1\n"), "1:11: unterminated string\n");
  EXPECT_EQ(ErrorsOf("const s = \"abc\\\"\n"), "1:11: unterminated string\n");
  EXPECT_EQ(ErrorsOf("const s = r\"abc\n"), "1:11: unterminated string\n");
  EXPECT_EQ(ErrorsOf("const s = \"ab\\qc\"\n"), "1:14: invalid escape sequence `\\q`\n");
  EXPECT_EQ(ErrorsOf("const s = \"\\u12\"\n"), "1:12: invalid unicode escape `\\u12`\n");
  EXPECT_EQ(ErrorsOf("const s = \"\\uZZZZ\"\n"), "1:12: invalid unicode escape `\\u`\n");
  EXPECT_EQ(ErrorsOf("const s = \"x\\ud800\"\n"),
            "1:13: invalid unicode escape `\\ud800`: lone surrogate\n");
  EXPECT_EQ(ErrorsOf("const s = \"\\ud800\\u0041\"\n"),
            "1:12: invalid unicode escape `\\ud800`: lone surrogate\n");
  EXPECT_EQ(ErrorsOf("const s = \"\\udc00\"\n"),
            "1:12: invalid unicode escape `\\udc00`: lone surrogate\n");
  EXPECT_EQ(ErrorsOf("const s = \"a\xff\"\n"), "1:13: invalid utf-8 in string\n");
  EXPECT_EQ(ErrorsOf("const s = \"a\\\xC3\xA9\"\n"),
            "1:13: invalid escape sequence `\\\xC3\xA9`\n");
}

TEST(ParserErrors, InvalidCharacters) {
  EXPECT_EQ(ErrorsOf("const a = 1 # x\n"),
            "1:13: invalid character `#`\n"
            "1:15: syntax error: unexpected `x`\n");
  EXPECT_EQ(ErrorsOf("const a = 1;\n"), "1:12: invalid character `;`\n");
  EXPECT_EQ(ErrorsOf("const \xC3\xA9 = 1\n"),
            "1:7: invalid character `\xC3\xA9`\n"
            "1:10: syntax error: unexpected `=`, expected a name\n");
  EXPECT_EQ(ErrorsOf("const a = 1 \x01\n"), "1:13: invalid character `\\x01`\n");
  EXPECT_EQ(ErrorsOf("const a = b & c\n"),
            "1:13: invalid character `&`\n"
            "1:15: syntax error: unexpected `c`\n");
}

TEST(ParserErrors, Numbers) {
  EXPECT_EQ(ErrorsOf("const a = 9223372036854775808\n"),
            "1:11: integer literal `9223372036854775808` is out of range\n");
  EXPECT_EQ(ErrorsOf("const a = 99999999999999999999s\n"),
            "1:11: duration literal `99999999999999999999s` is out of range\n");
  EXPECT_EQ(ErrorsOf("const a = 106751991167301d\n"),  // overflows when scaled to seconds
            "1:11: duration literal `106751991167301d` is out of range\n");
  EXPECT_EQ(ErrorsOf("const a = 10ms\n"), "1:11: invalid number `10ms`\n");
  EXPECT_EQ(ErrorsOf("const a = 1.5\n"), "1:11: syntax error: unexpected `1.5`\n");
  EXPECT_EQ(ErrorsOf("profile p { deny 99999999999 if x }\n"),
            "1:18: integer literal `99999999999` is out of range\n");
  EXPECT_EQ(ErrorsOf("test \"t\" { now 99999999999999999999 }\n"),
            "1:16: integer literal `99999999999999999999` is out of range\n");
  // A long literal is shortened in the message.
  std::string digits(500, '7');
  EXPECT_EQ(ErrorsOf("const a = " + digits + "\n"),
            "1:11: integer literal `" + std::string(40, '7') + "...` is out of range\n");
}

TEST(ParserErrors, TwoOnResponseBlocks) {
  EXPECT_EQ(ErrorsOf("profile p {\n  on response {}\n  require a else deny 403\n"
                     "  on response { require b else deny 502 }\n}\n"),
            "4:3: duplicate `on response` block\n");
  EXPECT_EQ(ErrorsOf("profile p { on response { on response {} } }\n"),
            "1:27: `on response` blocks cannot be nested\n");
}

TEST(ParserErrors, ChainedComparison) {
  // Comparisons are non-associative.
  EXPECT_EQ(ErrorsOf("profile p { require 1 == 1 == 1 else deny 403 }\n"),
            "1:28: syntax error: unexpected `==`, expected `else`\n");
  EXPECT_EQ(ErrorsOf("const a = x < y > z\n"), "1:17: syntax error: unexpected `>`\n");
  // Recovery resumes at the next statement: one error per broken statement.
  EXPECT_EQ(ErrorsOf("profile p {\n  deny 403 if a == == b\n  q: require c else deny 403\n"
                     "  let x = (y\n  require d else deny 403\n}\nconst ok = 1\n"),
            "2:20: syntax error: unexpected `==`\n"
            "5:3: syntax error: unexpected `require`, expected `)`\n");
  EXPECT_EQ(ExprTree("(a == b) == c"), "(== (== a b) c)");
}

TEST(ParserErrors, TestItems) {
  EXPECT_EQ(ErrorsOf("test \"t\" {\n  request {}\n  expect allow\n  request {}\n"
                     "  expect deny 403\n  now 1 now 2\n}\n"),
            "4:3: duplicate `request` in test\n"
            "5:3: duplicate `expect` in test\n"
            "6:9: duplicate `now` in test\n");
  EXPECT_EQ(ErrorsOf("test \"t\" { request {\"a\": r\"x\"} }\n"),
            "1:26: syntax error: unexpected `r\"x\"`\n");
  EXPECT_EQ(ErrorsOf("test \"t\" { request {\"a\": 01, \"b\": - 1} }\n"),
            "1:26: invalid json number `01`: leading zero\n"
            "1:35: invalid json number: space after `-`\n");
  EXPECT_EQ(ErrorsOf("test \"t\" { request {\"a\": \"\\x\"} }\n"),
            "1:27: invalid escape sequence `\\x`\n");
  EXPECT_EQ(ErrorsOf("test \"t\" { request {\"a\": 1 // no\n} }\n"),
            "1:28: comments are not allowed inside json\n");
  EXPECT_EQ(ErrorsOf("test \"t\" { request {\"a\" 1} }\n"),
            "1:25: syntax error: unexpected `1`, expected `:`\n");
  EXPECT_EQ(ErrorsOf("test \"t\" { request [1] }\n"),
            "1:20: syntax error: unexpected `[`, expected `{`\n");
}

TEST(ParserErrors, Comments) {
  EXPECT_EQ(ErrorsOf("const a = 1 /* never closed\nconst b = 2\n"),
            "1:13: unterminated block comment\n");
  EXPECT_EQ(ErrorsOf("const a = /* inline */ 1 // trailing\n/** stars **/\n"), "");
}

TEST(ParserErrors, EndOfFile) {
  EXPECT_EQ(ErrorsOf("api a \"/v1\" {\n  route GET \"/x\" {\n"),
            "3:1: syntax error: unexpected end of file\n");
  EXPECT_EQ(ErrorsOf("const a ="), "1:10: syntax error: unexpected end of file\n");
}

TEST(ParserErrors, AllErrorsCollectedAndPartialAst) {
  Parsed p = Parse(
      "api a \"/v1\" {\n"
      "  route r1 GET \"/1\" { require x deny 403 }\n"
      "  route r2 GET \"/2\" { require y else deny 403 }\n"
      "  route r3 GET \"/3\" { require (z else deny 403 }\n"
      "}\n"
      "const ok = 1\n");
  EXPECT_EQ(p.Errors(),
            "2:33: syntax error: unexpected `deny`, expected `else`\n"
            "4:34: syntax error: unexpected `else`, expected `)`\n");
  ASSERT_EQ(p.file->apis.size(), 1u);
  ASSERT_EQ(p.file->apis[0].routes.size(), 3u);
  EXPECT_EQ(p.file->apis[0].routes[1].name, "r2");
  ASSERT_EQ(p.file->apis[0].routes[1].body.request.size(), 1u);
  EXPECT_EQ(Sexp(p.file->apis[0].routes[1].body.request[0].expr.get()), "y");
  ASSERT_EQ(p.file->consts.size(), 1u);
  EXPECT_EQ(p.file->consts[0].name, "ok");
}

TEST(ParserErrors, ErrorCountIsCapped) {
  Parsed p = Parse(std::string(5000, '$'));
  EXPECT_EQ(p.diags.error_count(), 101u);
  EXPECT_EQ(p.diags.all().back().message, "too many errors (100), giving up");
  std::string junk;
  for (int i = 0; i < 3000; ++i) junk += "const = ) ";
  Parsed q = Parse(junk);
  EXPECT_EQ(q.diags.error_count(), 101u);
}

TEST(ParserErrors, FileTooLarge) {
  std::string big(kMaxSourceBytes + 1, ' ');
  Parsed p = Parse(big);
  EXPECT_EQ(p.Errors(), "1:1: file is too large (8388609 bytes; the limit is 8388608)\n");
  Diagnostics d;
  SourceFile src{"big.vakt", big};
  EXPECT_TRUE(Lex(src, d).empty());
  EXPECT_EQ(d.error_count(), 1u);
  // At the limit is fine.
  EXPECT_EQ(Parse(std::string(kMaxSourceBytes, ' ')).Errors(), "");
}

TEST(ParserErrors, TooManyTokens) {
  // More than 2^20 tokens (about ten times a realistic policy's density).
  std::string many;
  for (int i = 0; i < 600000; ++i) many += "1,";
  Parsed p = Parse("const a = [" + many + "]\n");
  EXPECT_EQ(p.Errors(), "1:1: file has too many tokens (more than 1048576)\n");
  Diagnostics d;
  SourceFile src{"many.vakt", many};
  EXPECT_TRUE(Lex(src, d).empty());
  EXPECT_EQ(d.error_count(), 1u);
}

// ---------------------------------------------------------------- nesting

TEST(ParserNesting, ParenthesesAtAndBeyondTheLimit) {
  EXPECT_EQ(ErrorsOf("const a = " + Nest("(", "1", ")", 64) + "\n"), "");
  EXPECT_EQ(ErrorsOf("const a = " + Nest("(", "1", ")", 65) + "\n"),
            "1:75: nesting deeper than 64 levels\n");
  EXPECT_EQ(ErrorsOf("const a = " + Nest("[", "1", "]", 64) + "\n"), "");
  EXPECT_EQ(ErrorsOf("const a = " + Nest("[", "1", "]", 65) + "\n"),
            "1:75: nesting deeper than 64 levels\n");
  EXPECT_EQ(ErrorsOf("const a = " + std::string(64, '!') + "x\n"), "");
  EXPECT_EQ(ErrorsOf("const a = " + std::string(65, '!') + "x\n"),
            "1:11: nesting deeper than 64 levels\n");
  EXPECT_EQ(ErrorsOf("const a = " + Nest("f(", "1", ")", 64) + "\n"), "");
  EXPECT_EQ(ErrorsOf("const a = " + Nest("f(", "1", ")", 65) + "\n"),  // at the 65th call
            "1:139: nesting deeper than 64 levels\n");
  // Operator chains are nesting too (the AST is a binary tree).
  std::string chain = "a";
  for (int i = 0; i < 64; ++i) chain += " || a";
  EXPECT_EQ(ErrorsOf("const a = " + chain + "\n"), "");
  EXPECT_EQ(ErrorsOf("const a = " + chain + " || a\n"), "1:11: nesting deeper than 64 levels\n");
  // Each top-level expression reports at most once.
  EXPECT_EQ(ErrorsOf("const a = " + Nest("(", Nest("[", "1", "]", 30), ")", 40) + "\n"),
            "1:75: nesting deeper than 64 levels\n");
}

TEST(ParserNesting, HostileDepthNeverReachesTheParser) {
  const int kDeep = 100000;
  EXPECT_EQ(ErrorsOf("const a = " + Nest("(", "1", ")", kDeep) + "\n"),
            "1:83: nesting deeper than 64 levels\n");
  EXPECT_EQ(ErrorsOf("const a = " + std::string(kDeep, '(')),
            "1:83: nesting deeper than 64 levels\n");
  EXPECT_EQ(ErrorsOf("const a = " + Nest("[", "", "]", kDeep)),
            "1:83: nesting deeper than 64 levels\n");
  EXPECT_EQ(ErrorsOf("const a = " + std::string(kDeep, '-') + "1"),
            "1:83: nesting deeper than 64 levels\n");
  EXPECT_EQ(ErrorsOf("const a = " + Nest("!(", "x", ")", kDeep)),
            "1:83: nesting deeper than 64 levels\n");
  EXPECT_EQ(ErrorsOf("claims { a: " + Nest("list<", "int", ">", kDeep) + " }"),
            "1:372: nesting deeper than 64 levels\n");
  // Long flat chains parse iteratively and are cut at the limit.
  std::string chain = "a";
  for (int i = 0; i < kDeep; ++i) chain += i % 2 ? " + a" : ".b";
  EXPECT_EQ(ErrorsOf("const a = " + chain + "\n"), "1:11: nesting deeper than 64 levels\n");
}

TEST(ParserNesting, Json) {
  auto test_with = [](const std::string& json) {
    return "test \"t\" {\n  request " + json + "\n}\n";
  };
  std::string ok = Nest("{\"a\": ", "1", "}", 64);
  EXPECT_EQ(ErrorsOf(test_with(ok)), "");
  EXPECT_EQ(ErrorsOf(test_with(Nest("{\"a\": ", "1", "}", 65))),
            "2:395: nesting deeper than 64 levels\n");
  EXPECT_EQ(ErrorsOf(test_with("{\"a\": " + Nest("[", "1", "]", 63) + "}")), "");
  EXPECT_EQ(ErrorsOf(test_with("{\"a\": " + Nest("[", "1", "]", 64) + "}")),
            "2:80: nesting deeper than 64 levels\n");
  // 100000 levels: one error, no crash.
  EXPECT_EQ(ErrorsOf(test_with(Nest("{\"a\": ", "1", "}", 100000))),
            "2:437: nesting deeper than 64 levels\n");
  EXPECT_EQ(ErrorsOf(test_with("{\"a\": " + Nest("[", "1", "]", 100000) + "}")),
            "2:87: nesting deeper than 64 levels\n");
}

// ---------------------------------------------------------------- Lex

TEST(Lexer, TokensWithCommentsAndPositions) {
  SourceFile src{"l.vakt", "// head\nconst x = f(1, 5m) /* b\n c */ \"s\\n\" r\"r\" -> in ab_1\n"};
  Diagnostics d;
  std::vector<Token> toks = Lex(src, d);
  EXPECT_FALSE(d.HasErrors());
  using K = Token::Kind;
  struct Want {
    K kind;
    std::string text;
    uint32_t line, column;
  };
  std::vector<Want> want = {
      {K::kLineComment, "// head", 1, 1},
      {K::kKeyword, "const", 2, 1},
      {K::kIdent, "x", 2, 7},
      {K::kPunct, "=", 2, 9},
      {K::kIdent, "f", 2, 11},
      {K::kPunct, "(", 2, 12},
      {K::kNumber, "1", 2, 13},
      {K::kPunct, ",", 2, 14},
      {K::kDuration, "5m", 2, 16},
      {K::kPunct, ")", 2, 18},
      {K::kBlockComment, "/* b\n c */", 2, 20},
      {K::kString, "\"s\\n\"", 3, 7},
      {K::kString, "r\"r\"", 3, 13},
      {K::kPunct, "->", 3, 18},
      {K::kKeyword, "in", 3, 21},
      {K::kIdent, "ab_1", 3, 24},
  };
  ASSERT_EQ(toks.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(toks[i].kind, want[i].kind) << i;
    EXPECT_EQ(toks[i].text, want[i].text) << i;
    EXPECT_EQ(toks[i].line, want[i].line) << i;
    EXPECT_EQ(toks[i].column, want[i].column) << i;
  }
}

TEST(Lexer, ErrorsAreReported) {
  SourceFile src{"l.vakt", "a $ \"open\n"};
  Diagnostics d;
  std::vector<Token> toks = Lex(src, d);
  ASSERT_EQ(d.all().size(), 2u);
  EXPECT_EQ(d.all()[0].message, "invalid character `$`");
  EXPECT_EQ(d.all()[1].message, "unterminated string");
  ASSERT_EQ(toks.size(), 2u);  // `a` and the open string; the `$` is dropped
  EXPECT_EQ(toks[1].kind, Token::Kind::kString);
  EXPECT_EQ(toks[1].text, "\"open");
}

// ---------------------------------------------------------------- robustness

// The language's tokens, for token soups.
const std::vector<std::string>& Vocabulary() {
  static const std::vector<std::string> v = {"package",
                                             "import",
                                             "as",
                                             "const",
                                             "let",
                                             "shape",
                                             "claims",
                                             "fn",
                                             "profile",
                                             "api",
                                             "route",
                                             "on",
                                             "response",
                                             "use",
                                             "require",
                                             "else",
                                             "deny",
                                             "if",
                                             "test",
                                             "request",
                                             "now",
                                             "expect",
                                             "allow",
                                             "true",
                                             "false",
                                             "null",
                                             "in",
                                             "matches",
                                             "bool",
                                             "int",
                                             "string",
                                             "duration",
                                             "timestamp",
                                             "json",
                                             "list",
                                             "(",
                                             ")",
                                             "[",
                                             "]",
                                             "{",
                                             "}",
                                             ",",
                                             ":",
                                             ".",
                                             "->",
                                             "=",
                                             "==",
                                             "!=",
                                             "<",
                                             "<=",
                                             ">",
                                             ">=",
                                             "&&",
                                             "||",
                                             "+",
                                             "-",
                                             "*",
                                             "/",
                                             "%",
                                             "!",
                                             "x",
                                             "GET",
                                             "403",
                                             "5m",
                                             "1.5",
                                             "\"s\"",
                                             "r\"^a$\"",
                                             "\"\\u00e9\"",
                                             "// c\n",
                                             "/* c */",
                                             "\n",
                                             "access_denied",
                                             "\"{\\\"a\\\": 1}\"",
                                             "9999999999999999999999",
                                             "\"\\ud800\"",
                                             "$",
                                             "\"open",
                                             "/* open",
                                             "01",
                                             "-1",
                                             "1e5"};
  return v;
}

// Runs the parser and the formatter on `text`; checks the formatter's
// contract (refuse iff errors; idempotent otherwise).
void CheckRobust(const std::string& text) {
  SourceFile src{"fuzz.vakt", text};
  Diagnostics pd;
  auto file = ParseFile(src, pd);
  ASSERT_NE(file, nullptr);
  (void)pd.Format();
  Diagnostics fd;
  std::string once = FormatSource(src, fd);
  ASSERT_EQ(pd.HasErrors(), fd.HasErrors()) << text;
  if (fd.HasErrors()) {
    ASSERT_EQ(once, text);
    return;
  }
  SourceFile again{"fuzz.vakt", once};
  Diagnostics ad;
  ASSERT_EQ(FormatSource(again, ad), once) << text;
  ASSERT_FALSE(ad.HasErrors()) << once;
}

TEST(ParserRobustness, RandomBytes) {
  std::mt19937 rng(20240601);
  for (int i = 0; i < 1000; ++i) {
    std::string s(rng() % 200, '\0');
    for (char& c : s) c = static_cast<char>(rng() % 256);
    CheckRobust(s);
  }
  // Printable ASCII finds more lexer paths than arbitrary bytes.
  for (int i = 0; i < 500; ++i) {
    std::string s(rng() % 200, '\0');
    for (char& c : s) c = static_cast<char>(32 + rng() % 95);
    CheckRobust(s);
  }
}

TEST(ParserRobustness, TokenSoups) {
  std::mt19937 rng(7);
  const auto& vocab = Vocabulary();
  int accepted = 0;
  for (int i = 0; i < 1500; ++i) {
    std::string s;
    size_t n = rng() % 60;
    for (size_t k = 0; k < n; ++k) {
      s += vocab[rng() % vocab.size()];
      s += rng() % 4 ? " " : "";
    }
    CheckRobust(s);
    Diagnostics d;
    SourceFile src{"s.vakt", s};
    ParseFile(src, d);
    accepted += !d.HasErrors();
  }
  EXPECT_GT(accepted, 0);
}

// Mutations of a valid policy: deletions, duplications and swaps of tokens
// reach deep into the grammar where random soups rarely get.
TEST(ParserRobustness, MutatedPolicies) {
  const std::string base =
      "package p\nimport lib as l\nshape Id = r\"^[a-z]+$\"\nclaims { role: string cnf.jkt: "
      "string }\nconst A: list<int> = [1, 2,]\nfn f(a: int) -> bool { a > 1 && !(a == 3) }\n"
      "profile pr { use l.base\n q: deny 400 bad \"m\" if has(request.query.t) }\n"
      "api a \"/v1\" { use pr\n route r GET \"/x/{id:Id}\" { let n = len(params.id) * 2 - 1\n"
      " require n in A || f(n) else deny 403 access_denied \"no\"\n on response { require "
      "response.status < 500 else deny 502 } } }\n"
      "test \"t\" { request {\"method\": \"GET\", \"a\": [1, -2.5, {\"b\": null}]} now 5 expect "
      "deny 403 access_denied }\n";
  SourceFile src{"base.vakt", base};
  Diagnostics d;
  std::vector<Token> toks = Lex(src, d);
  ASSERT_FALSE(d.HasErrors());
  CheckRobust(base);
  std::mt19937 rng(99);
  for (int i = 0; i < 1000; ++i) {
    std::vector<std::string> t;
    for (const Token& tok : toks) t.push_back(tok.text);
    int edits = 1 + rng() % 3;
    for (int e = 0; e < edits && !t.empty(); ++e) {
      size_t a = rng() % t.size(), b = rng() % t.size();
      switch (rng() % 3) {
        case 0:
          t.erase(t.begin() + a);
          break;
        case 1:
          t.insert(t.begin() + a, t[b]);
          break;
        default:
          std::swap(t[a], t[b]);
          break;
      }
    }
    std::string s;
    for (const auto& x : t) s += x + (x.rfind("//", 0) == 0 ? "\n" : " ");
    CheckRobust(s);
  }
}

}  // namespace
}  // namespace vakt::dsl
