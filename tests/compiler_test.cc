// Semantic analysis and code generation: every class of compile error is
// reported with its location and no bundle is produced; valid policies
// compile reproducibly to bundles that load and verify. Tested through the
// public driver (compile.h) as the CLI and control plane use it.
#include <gtest/gtest.h>

#include "bytecode/bundle.h"
#include "bytecode/request_json.h"
#include "bytecode/vm.h"
#include "compiler/compile.h"

namespace vakt::compiler {
namespace {

struct Out {
  std::unique_ptr<SourceSet> sources;  // outlives c: diagnostics and the AST point into it
  std::unique_ptr<Compilation> c;
  std::string diags;
  bool ok;
};

Out Build(std::vector<std::pair<std::string, std::string>> files, uint32_t budget = kDefaultRouteBudget) {
  Out out;
  out.sources = std::make_unique<SourceSet>();
  for (auto& [p, t] : files) AddSource(*out.sources, p, t);
  dsl::Diagnostics d;
  CompileOptions o;
  o.codegen.route_budget = budget;
  out.c = Compile(*out.sources, o, d);
  out.diags = d.Format();
  out.ok = !d.HasErrors() && !out.c->bytes.empty();
  return out;
}

Out Build1(const std::string& text) { return Build({{"p.vakt", text}}); }

void ExpectError(const std::string& text, const std::string& fragment) {
  Out o = Build1(text);
  EXPECT_FALSE(o.ok) << text;
  EXPECT_TRUE(o.c->bytes.empty());
  EXPECT_NE(o.diags.find(fragment), std::string::npos) << "diagnostics were:\n" << o.diags;
}

const char* kApi = R"(
api a "/v1" {
  route r GET "/x/{id}" {
    %s
  }
}
)";

std::string InRoute(const std::string& stmt) {
  char buf[4096];
  snprintf(buf, sizeof buf, kApi, stmt.c_str());
  return buf;
}

TEST(Compiler, MinimalPolicyCompilesAndVerifies) {
  Out o = Build1(InRoute("require params.id == \"1\" else deny 403 access_denied \"no\""));
  ASSERT_TRUE(o.ok) << o.diags;
  auto b = bytecode::Bundle::Load(o.c->bytes);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ((*b)->data().routes.size(), 1u);
  EXPECT_EQ((*b)->data().name, "main");
}

TEST(Compiler, Reproducible) {
  std::string src = InRoute(
      "let s = split(token.scope, \" \")\n"
      "require \"a\" in s && lower(request.method) == \"get\" else deny 403 insufficient_scope\n"
      "require request.path matches r\"^/v1/x/[0-9]+$\" else deny 404 not_found");
  Out a = Build1(src), b = Build1(src);
  ASSERT_TRUE(a.ok) << a.diags;
  EXPECT_EQ(a.c->bytes, b.c->bytes);
  // A different file name does not change the bundle (digest is by name and content).
  Out c = Build({{"p.vakt", src}});
  EXPECT_EQ(a.c->bytes, c.c->bytes);
  // A changed source changes the digest.
  Out d = Build1(src + "\n// comment\n");
  EXPECT_NE(a.c->bytes, d.c->bytes);
}

TEST(Compiler, ErrorLocationHasCaret) {
  Out o = Build1("api a \"/v1\" {\n  route GET \"/x\" {\n    require nope == 1 else deny 403\n  }\n}\n");
  EXPECT_FALSE(o.ok);
  EXPECT_NE(o.diags.find("p.vakt:3:13: error: unknown name `nope`\n"
                         "      require nope == 1 else deny 403\n"
                         "              ^\n"),
            std::string::npos)
      << o.diags;
}

TEST(Compiler, TypeErrors) {
  ExpectError(InRoute("require 1 else deny 403"), "a `require` condition must be `bool`, got `int`");
  ExpectError(InRoute("require \"a\" == 1 else deny 403"), "cannot apply `==` to `string` and `int`");
  ExpectError(InRoute("require \"a\" < 1 else deny 403"), "cannot apply `<`");
  ExpectError(InRoute("require \"a\" + 1 == \"b\" else deny 403"), "cannot apply `+`");
  ExpectError(InRoute("require 1 in \"abc\" else deny 403"), "cannot apply `in`");
  ExpectError(InRoute("require !1 else deny 403"), "the operand of `!` must be `bool`");
  ExpectError(InRoute("require -\"a\" == 1 else deny 403"), "the operand of `-` must be");
  ExpectError(InRoute("require len(1) == 1 else deny 403"), "`len` takes a string, a list or a JSON value");
  ExpectError(InRoute("require starts_with(1, \"a\") else deny 403"), "the first argument of `starts_with` must be `string`");
  ExpectError(InRoute("require lower(\"a\", \"b\") == \"a\" else deny 403"), "`lower` takes 1 argument, got 2");
  ExpectError(InRoute("require split(\"a\", \"\") == [\"a\"] else deny 403"), "separator of `split` must not be empty");
  ExpectError(InRoute("require now < 5s else deny 403"), "cannot apply `<` to `timestamp` and `duration`");
  ExpectError(InRoute("require 10s * 5s == 1s else deny 403"), "cannot apply `*` to `duration` and `duration`");
  ExpectError(InRoute("require [1, \"a\"] == [1] else deny 403"), "a list element must be `int`, got `string`");
  ExpectError(InRoute("require [] == [1] else deny 403"), "an empty list literal has no type");
  ExpectError(InRoute("require \"a\".b == \"c\" else deny 403"), "has no field `b`");
  ExpectError(InRoute("require token.a < token.b else deny 403"), "cannot order two JSON values");
}

TEST(Compiler, NamesAndRequestModel) {
  ExpectError(InRoute("require params.nope == \"1\" else deny 403"), "has no path parameter `nope` (it has `id`)");
  ExpectError(InRoute("require request.nope == \"1\" else deny 403"), "unknown request field `request.nope`");
  ExpectError(InRoute("require response.status == 200 else deny 403"), "`response` is only available in `on response` rules");
  ExpectError(InRoute("require request == 1 else deny 403"), "`request` needs a field");
  ExpectError(InRoute("require frob(1) else deny 403"), "unknown function `frob`");
  ExpectError(InRoute("require has(\"x\") else deny 403"), "`has` takes a header, query parameter, path parameter or claim");
  ExpectError(InRoute("use nothing"), "unknown profile `nothing`");
  ExpectError(InRoute("use other.p"), "unknown package `other`");
  ExpectError("import ghost\n" + InRoute(""), "unknown package `ghost`");
  ExpectError(InRoute("require x.y == 1 else deny 403"), "unknown name `x`");
}

TEST(Compiler, Declarations) {
  ExpectError("const A = 1\nconst A = 2\n", "`A` is already defined in package `main`");
  ExpectError("const A = B\nconst B = A\n" + InRoute("require A == 1 else deny 403"), "is defined in terms of itself");
  ExpectError("const A = request.method\n", "const `A` depends on the request; use `let`");
  ExpectError("fn f(x: int) -> bool { f(x) }\n", "function `f` is recursive");
  ExpectError("fn f(x: int) -> bool { g(x) }\nfn g(x: int) -> bool { f(x) }\n", "is recursive");
  ExpectError("fn f(x: int) -> string { x }\n", "the result of `f` must be `string`, got `int`");
  ExpectError("fn f(x: int) -> bool { x == 1 }\n" + InRoute("require f(\"a\") else deny 403"), "argument `x` of `f` must be `int`, got `string`");
  ExpectError("fn f(x: int) -> bool { x == 1 }\n" + InRoute("require f(1, 2) else deny 403"), "`f` takes 1 argument, got 2");
  ExpectError("fn len(x: int) -> bool { x == 1 }\n", "would hide the built-in");
  ExpectError("shape S = \"(\"\n", "invalid regular expression `(` in shape `S`");
  ExpectError("claims { a: string }\nclaims { a: int }\n", "claim `a` is declared as `int` here but as `string` elsewhere");
  ExpectError("profile p { use p }\n" + InRoute("use p"), "profile `p` uses itself");
  ExpectError("claims { a: list<list<string>> }\n", "nested lists are not supported");
}

TEST(Compiler, RoutesAndRules) {
  ExpectError("api a \"/v1\" { route GET \"/x\" {} route GET \"/x\" {} }", "duplicate route `GET /v1/x`");
  ExpectError("api a \"/v1\" { route GET \"/x/{a}\" {} route g2 GET \"/x/{b}\" {} }", "duplicate route `GET /v1/x/{b}`");
  ExpectError("api a \"/v1\" { route GET \"/x\" {} }\napi a \"/v2\" { route GET \"/y\" {} }", "api `a` is already defined");
  ExpectError("api a \"v1\" { }", "api base path `v1` must start with `/`");
  ExpectError("api a \"/v1/\" { }", "must not end with `/`");
  ExpectError("api a \"/v1\" { route GET \"x\" {} }", "route path `x` must start with `/`");
  ExpectError("api a \"/v1\" { route GET \"/x//y\" {} }", "has an empty segment");
  ExpectError("api a \"/v1\" { route GET \"/x/{a}/{a}\" {} }", "parameter `a` appears twice");
  ExpectError("api a \"/v1\" { route GET \"/x/{1a}\" {} }", "is not an identifier");
  ExpectError("api a \"/v1\" { route GET \"/x/{a:Nope}\" {} }", "unknown shape `Nope`");
  ExpectError("api a \"/v1\" { route GET \"/x/..\" {} }", "invalid path segment `..`");
  ExpectError("api a \"/v1\" { route get \"/x\" {} }", "http method `get` must be upper case");
  ExpectError("api a \"/v1\" { route GET \"/x/{a:int}\" {} route POST \"/x/{b:uuid}\" {} }", "one position takes one shape");
  ExpectError(InRoute("require true else deny 200"), "deny status must be between 400 and 599, got 200");
  ExpectError(InRoute("l: require true else deny 403\nl: require true else deny 403"), "duplicate rule label `l`");
  ExpectError(InRoute("require request.path matches \"(\" else deny 403"), "invalid regular expression `(`");
  ExpectError(InRoute("require request.path matches \"a{1001}\" else deny 403"), "invalid regular expression");
}

TEST(Compiler, FunctionsMayReadParamsAndResponse) {
  Out o = Build1("fn mine() -> bool { params.id == token.sub }\n"
                 "fn ok() -> bool { response.status < 500 }\n" +
                 InRoute("require mine() else deny 403\non response { require ok() else deny 502 }"));
  EXPECT_TRUE(o.ok) << o.diags;
  // ...but only where the route has the parameter.
  ExpectError("fn mine() -> bool { params.nope == token.sub }\n" + InRoute("require mine() else deny 403"),
              "has no path parameter `nope`");
  // An unused file-level let is still checked.
  ExpectError("let broken = 1 + \"a\"\n", "cannot apply `+` to `int` and `string`");
}

TEST(Compiler, RuleIdsAreUniquePerRoute) {
  ExpectError(InRoute("l: require true else deny 403\non response { l: require true else deny 502 }"),
              "duplicate rule label `l`");
  // A profile used by the api and again by the route applies once.
  Out o = Build1("profile p { x: require true else deny 403 }\n"
                 "api a \"/v1\" { use p\n route r GET \"/x\" { use p } }\n");
  ASSERT_TRUE(o.ok) << o.diags;
  EXPECT_EQ(o.c->ir.routes[0].request_rules.size(), 1u);
  ExpectError("shape uuid = \"[0-9]+\"\n", "would hide the built-in shape");
}

TEST(Compiler, NotesFollowTheirError) {
  Out o = Build1("api a \"/v1\" {\n route GET \"/x\" {}\n route GET \"/x\" {}\n}\n");
  auto err = o.diags.find("error: duplicate route");
  auto note = o.diags.find("note: first defined here");
  ASSERT_NE(err, std::string::npos) << o.diags;
  ASSERT_NE(note, std::string::npos) << o.diags;
  EXPECT_LT(err, note);
}

TEST(Compiler, ParallelParsingIsDeterministic) {
  // Files parse on several threads; results and diagnostics must not depend
  // on scheduling.
  std::vector<std::pair<std::string, std::string>> files;
  for (int i = 0; i < 24; ++i) {
    std::string body;
    for (int r = 0; r < 20; ++r) {
      body += "  route r" + std::to_string(r) + " GET \"/x" + std::to_string(r) +
              "/{id}\" { require params.id == token.sub else deny 403 }\n";
    }
    files.emplace_back("f" + std::to_string(100 + i) + ".vakt",
                       "package p\napi a" + std::to_string(i) + " \"/a" + std::to_string(i) + "\" {\n" + body + "}\n");
  }
  Out first = Build(files);
  ASSERT_TRUE(first.ok) << first.diags;
  for (int k = 0; k < 5; ++k) EXPECT_EQ(Build(files).c->bytes, first.c->bytes);
  files[3].second += "api broken {";
  files[17].second += "route";
  Out bad = Build(files);
  EXPECT_FALSE(bad.ok);
  for (int k = 0; k < 5; ++k) EXPECT_EQ(Build(files).diags, bad.diags);
  EXPECT_LT(bad.diags.find("f103.vakt"), bad.diags.find("f117.vakt")) << bad.diags;
}

TEST(Compiler, ExponentialInliningIsBounded) {
  std::string lets = "let a0 = request.method\n";
  for (int i = 1; i <= 40; ++i) {
    lets += "let a" + std::to_string(i) + " = a" + std::to_string(i - 1) + " + a" + std::to_string(i - 1) + "\n";
  }
  ExpectError(lets + InRoute("require a40 == \"x\" else deny 403"), "too large after inlining");
  std::string fns = "fn f0(x: string) -> string { x }\n";
  for (int i = 1; i <= 40; ++i) {
    fns += "fn f" + std::to_string(i) + "(x: string) -> string { f" + std::to_string(i - 1) + "(x) + f" +
           std::to_string(i - 1) + "(x) }\n";
  }
  ExpectError(fns + InRoute("require f40(\"a\") == \"x\" else deny 403"), "too large after inlining");
}

TEST(Compiler, BudgetExceeded) {
  std::string rules;
  for (int i = 0; i < 50; ++i) rules += "require request.method == \"GET\" else deny 403\n";
  Out ok = Build({{"p.vakt", InRoute(rules)}}, 1000);
  EXPECT_TRUE(ok.ok) << ok.diags;
  Out o = Build({{"p.vakt", InRoute(rules)}}, 100);
  EXPECT_FALSE(o.ok);
  EXPECT_NE(o.diags.find("route `a.r` costs 201 instructions in the worst case, over the budget of 100"),
            std::string::npos)
      << o.diags;
}

TEST(Compiler, StackTooDeep) {
  // Source nesting is bounded by the parser; inlining can still build an
  // expression deeper than the VM stack, and that is a compile error.
  std::string fns = "fn g0(x: int) -> int { x }\n";
  for (int i = 1; i <= 30; ++i) {
    fns += "fn g" + std::to_string(i) + "(x: int) -> int { 1 + (2 + (3 + g" + std::to_string(i - 1) + "(x))) }\n";
  }
  ExpectError(fns + InRoute("require g30(1) == 1 else deny 403"), "stack slots; the VM has 64");
}

TEST(Compiler, EveryErrorReportedAtOnce) {
  Out o = Build1("api a \"/v1\" {\n route GET \"/x\" {\n  require a else deny 403\n  require b else deny 403\n }\n}\n");
  EXPECT_NE(o.diags.find("unknown name `a`"), std::string::npos);
  EXPECT_NE(o.diags.find("unknown name `b`"), std::string::npos);
}

TEST(Compiler, PackagesAndImports) {
  Out o = Build({{"lib.vakt", "package lib\nconst ADMIN = \"admin\"\nfn is_admin(r: string) -> bool { r == ADMIN }\n"
                              "profile admins { require is_admin(token.role) else deny 403 access_denied \"admins only\" }\n"},
                 {"main.vakt", "package app\nimport lib\nimport lib as l2\n"
                               "api a \"/v1\" { route GET \"/x\" { use lib.admins\n require l2.is_admin(lib.ADMIN) else deny 403 } }\n"}});
  ASSERT_TRUE(o.ok) << o.diags;
  EXPECT_EQ(o.c->data.name, "app");
  ASSERT_EQ(o.c->ir.routes.size(), 1u);
  ASSERT_EQ(o.c->ir.routes[0].request_rules.size(), 2u);
  EXPECT_EQ(o.c->ir.routes[0].request_rules[0].id, "admins#1");
  EXPECT_EQ(o.c->ir.routes[0].request_rules[1].id, "a.get_x#1");
  // A package's names are not visible without an import.
  Out bad = Build({{"lib.vakt", "package lib\nconst X = 1\n"},
                   {"main.vakt", "package app\napi a \"/v1\" { route GET \"/x\" { require X == 1 else deny 403 } }\n"}});
  EXPECT_FALSE(bad.ok);
  EXPECT_NE(bad.diags.find("unknown name `X`"), std::string::npos);
}

// Decide helper on a compiled policy.
bytecode::Decision Decide(const Compilation& c, const std::string& req_json, const std::string& claims,
                          std::shared_ptr<const bytecode::Bundle>* keep, bytecode::EvalScratch& s,
                          std::unique_ptr<bytecode::JsonClaims>* keep_claims, bytecode::OwnedRequest* keep_req) {
  auto b = bytecode::Bundle::Load(c.bytes);
  EXPECT_TRUE(b.ok());
  *keep = *b;
  auto r = bytecode::ParseRequestJson(req_json);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  *keep_req = *r;
  keep_claims->reset();
  if (!claims.empty()) {
    auto cl = bytecode::JsonClaims::Parse(claims);
    EXPECT_TRUE(cl.ok());
    *keep_claims = std::move(cl).value();
  }
  return bytecode::DecideRequest(**keep, keep_req->View(), keep_claims->get(), s);
}

TEST(Compiler, CombiningOrderFirstUnmetDecides) {
  Out o = Build1(
      "profile p { first: require has(token.sub) else deny 401 invalid_token \"who\" }\n"
      "api a \"/v1\" {\n use p\n api_rule: deny 400 invalid_request \"q\" if has(request.query.bad)\n"
      " route r GET \"/x\" {\n  route_rule: require token.sub == \"ok\" else deny 403 access_denied \"no\"\n }\n}\n");
  ASSERT_TRUE(o.ok) << o.diags;
  std::shared_ptr<const bytecode::Bundle> b;
  bytecode::EvalScratch s;
  std::unique_ptr<bytecode::JsonClaims> cl;
  bytecode::OwnedRequest rq;
  auto d = Decide(*o.c, R"({"method":"GET","path":"/v1/x?bad=1"})", "", &b, s, &cl, &rq);
  EXPECT_EQ(d.status, 401);  // profile of the api first
  EXPECT_EQ(d.rule, "p.first");
  d = Decide(*o.c, R"({"method":"GET","path":"/v1/x?bad=1"})", R"({"sub":"nope"})", &b, s, &cl, &rq);
  EXPECT_EQ(d.status, 400);  // then the api's own rules
  EXPECT_EQ(d.rule, "a.api_rule");
  d = Decide(*o.c, R"({"method":"GET","path":"/v1/x"})", R"({"sub":"nope"})", &b, s, &cl, &rq);
  EXPECT_EQ(d.status, 403);  // then the route's
  EXPECT_EQ(d.rule, "a.r.route_rule");
  d = Decide(*o.c, R"({"method":"GET","path":"/v1/x"})", R"({"sub":"ok"})", &b, s, &cl, &rq);
  EXPECT_TRUE(d.allow);
  EXPECT_EQ(d.route, "a.r");
}

TEST(Compiler, EvaluationErrorDeniesWithTheRule) {
  Out o = Build1("claims { n: int }\n" + InRoute("big: require token.n + 1 > 0 else deny 403 access_denied \"nope\""));
  ASSERT_TRUE(o.ok) << o.diags;
  std::shared_ptr<const bytecode::Bundle> b;
  bytecode::EvalScratch s;
  std::unique_ptr<bytecode::JsonClaims> cl;
  bytecode::OwnedRequest rq;
  auto d = Decide(*o.c, R"({"method":"GET","path":"/v1/x/1"})", R"({"n": 9223372036854775807})", &b, s, &cl, &rq);
  EXPECT_FALSE(d.allow);
  EXPECT_EQ(d.rule, "a.r.big");
  EXPECT_NE(std::string(d.description).find("overflow"), std::string::npos) << d.description;
  d = Decide(*o.c, R"({"method":"GET","path":"/v1/x/1"})", R"({"n": "7"})", &b, s, &cl, &rq);
  EXPECT_FALSE(d.allow);
  d = Decide(*o.c, R"({"method":"GET","path":"/v1/x/1"})", "", &b, s, &cl, &rq);
  EXPECT_FALSE(d.allow);
  EXPECT_NE(std::string(d.description).find("missing claim"), std::string::npos) << d.description;
  d = Decide(*o.c, R"({"method":"GET","path":"/v1/x/1"})", R"({"n": 1})", &b, s, &cl, &rq);
  EXPECT_TRUE(d.allow);
}

}  // namespace
}  // namespace vakt::compiler
