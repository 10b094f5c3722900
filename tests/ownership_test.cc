// Ownership rules (`owns`), relation data (`relation NAME: T = "file"`) and
// request.json / response.json, end to end: the AST and the formatter, every
// diagnostic, the VM and the reference evaluator on each clause form, the
// relations section against hostile bytes, malformed bodies, and the
// ownership tests `vakt test` generates.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bytecode/bundle.h"
#include "bytecode/request_json.h"
#include "bytecode/verifier.h"
#include "bytecode/vm.h"
#include "compiler/compile.h"
#include "compiler/interp.h"
#include "compiler/policy_test.h"
#include "dsl/formatter.h"
#include "dsl/parser.h"

namespace vakt::compiler {
namespace {

using bytecode::Op;

// ---- Compiling with in-memory relation files ----------------------------------

struct Built {
  std::unique_ptr<SourceSet> sources;
  std::unique_ptr<Compilation> c;
  std::string diags;
  bool ok = false;
};

std::map<std::string, std::string> DefaultFiles() {
  return {{"teams.json", R"({"lis": ["p-1", "p-3"], "eva": [], "bob": ["p-2"]})"},
          {"owner.json", R"({"r-1": "p-1", "r-2": "p-2"})"}};
}

Built Build(const std::string& text, std::map<std::string, std::string> files = DefaultFiles()) {
  Built b;
  b.sources = std::make_unique<SourceSet>();
  AddSource(*b.sources, "p.vakt", text);
  dsl::Diagnostics d;
  CompileOptions o;
  o.read_asset = [files](const dsl::SourceFile&, const std::string& path) -> Result<std::string> {
    auto it = files.find(path);
    if (it == files.end()) return NotFound("no file `" + path + "`");
    return it->second;
  };
  b.c = Compile(*b.sources, o, d);
  b.diags = d.Format();
  b.ok = !d.HasErrors() && !b.c->bytes.empty();
  return b;
}

const char* kHeader = R"(
claims {
  patient_id: string
  role: string
  care_team: list<string>
  age: int
}
relation teams: list<string> = "teams.json"
relation owner_of: string = "owner.json"
)";

std::string Route(const std::string& body, const std::string& path = "/p/{id}/r/{rid}") {
  return std::string(kHeader) + "api a \"/v1\" {\n  route r GET \"" + path + "\" {\n" + body +
         "\n  }\n  route w POST \"/notes\" {\n    owns request.json.note.patient { == token.patient_id }\n  }\n}\n";
}

void ExpectError(const std::string& text, const std::string& fragment,
                 std::map<std::string, std::string> files = DefaultFiles()) {
  Built b = Build(text, files);
  EXPECT_FALSE(b.ok) << text;
  EXPECT_NE(b.diags.find(fragment), std::string::npos) << "diagnostics were:\n" << b.diags;
}

// Decides a request (and a response) on the VM and on the reference
// evaluator; they must agree. Returns "allow" or "deny STATUS ERROR rule".
std::string Decide(const Built& b, const std::string& path, nlohmann::json claims,
                   const std::string& body = "", const std::string& method = "GET",
                   const std::string* resp_body = nullptr) {
  auto bundle = bytecode::Bundle::Load(b.c->bytes);
  EXPECT_TRUE(bundle.ok()) << bundle.status().ToString();
  if (!bundle.ok()) return "no bundle";
  if (claims.is_null()) claims = nlohmann::json::object();
  nlohmann::json req = {{"method", method}, {"path", path}};
  auto r = bytecode::ParseRequestJson(req.dump());
  EXPECT_TRUE(r.ok());
  r->body = body;  // any bytes, invalid UTF-8 included
  auto cl = std::move(bytecode::JsonClaims::Parse(claims.dump())).value();
  bytecode::EvalScratch scratch;
  auto view = r->View();
  bytecode::Decision d = bytecode::DecideRequest(**bundle, view, cl.get(), scratch);
  RefDecision ref = RefEvaluate(b.c->ir, view, &claims, nullptr);
  std::optional<bytecode::OwnedResponse> resp;
  if (d.allow && resp_body) {
    nlohmann::json rj = {{"status", 200}, {"body", *resp_body}};
    resp = std::move(bytecode::ParseResponseJson(rj.dump())).value();
    auto rv = resp->View();
    d = bytecode::DecideResponse(**bundle, view, cl.get(), rv, scratch);
    ref = RefEvaluate(b.c->ir, view, &claims, &rv);
  }
  std::string vm = d.allow ? "allow"
                           : "deny " + std::to_string(d.status) + " " + std::string(d.error) +
                                 " " + std::string(d.rule);
  std::string rf = ref.allow ? "allow"
                             : "deny " + std::to_string(ref.status) + " " + ref.error + " " + ref.rule;
  EXPECT_EQ(vm, rf) << "VM and reference evaluator disagree on " << path << " " << claims.dump();
  return vm;
}

// ---- Parser and formatter -------------------------------------------------------

TEST(OwnershipParse, StatementKeepsItsStructure) {
  dsl::SourceFile src;
  src.path = "p.vakt";
  src.text = R"(relation teams: list<string> = "t.json"
api a "/v1" {
  route r GET "/p/{id}" {
    owner: owns params.id {
      == token.patient_id if token.role == "patient"
      in token.care_team if token.role == "clinician"
      in teams[token.sub]
    } else deny 404 not_found "no"
    owns request.json.owns { == token.sub }
  }
})";
  dsl::Diagnostics d;
  auto f = dsl::ParseFile(src, d);
  ASSERT_FALSE(d.HasErrors()) << d.Format();
  ASSERT_EQ(f->relations.size(), 1u);
  EXPECT_EQ(f->relations[0].name, "teams");
  EXPECT_EQ(f->relations[0].file, "t.json");
  EXPECT_EQ(f->relations[0].type.kind, dsl::ast::TypeRef::Kind::kList);
  const auto& stmts = f->apis[0].routes[0].body.request;
  ASSERT_EQ(stmts.size(), 2u);
  const auto& s = stmts[0];
  EXPECT_EQ(s.kind, dsl::ast::StmtKind::kOwns);
  EXPECT_EQ(s.label, "owner");
  ASSERT_EQ(s.clauses.size(), 3u);
  EXPECT_FALSE(s.clauses[0].in);
  EXPECT_TRUE(s.clauses[1].in);
  EXPECT_TRUE(s.clauses[0].cond != nullptr);
  EXPECT_TRUE(s.clauses[2].cond == nullptr);
  EXPECT_EQ(s.clauses[2].value->kind, dsl::ast::ExprKind::kIndex);
  EXPECT_TRUE(s.has_deny);
  EXPECT_EQ(s.deny.status, 404);
  EXPECT_EQ(s.deny.error, "not_found");
  EXPECT_FALSE(stmts[1].has_deny);
  EXPECT_EQ(stmts[1].expr->text, "owns");  // a keyword is a name after `.`
}

TEST(OwnershipParse, ALineBreakBeforeAComparisonStartsTheNextClause) {
  dsl::SourceFile src;
  src.path = "p.vakt";
  src.text = "api a \"/\" {\n route r GET \"/p/{id}\" {\n  owns params.id {\n"
             "   == token.a if has(token.b)\n   == token.c if token.d == \"x\"\n   in token.e\n  }\n }\n}\n";
  dsl::Diagnostics d;
  auto f = dsl::ParseFile(src, d);
  ASSERT_FALSE(d.HasErrors()) << d.Format();
  EXPECT_EQ(f->apis[0].routes[0].body.request[0].clauses.size(), 3u);
}

TEST(OwnershipParse, SyntaxErrors) {
  dsl::SourceFile src;
  src.path = "p.vakt";
  src.text = "api a \"/\" {\n route r GET \"/p/{id}\" {\n  owns params.id == token.a\n }\n}\n";
  dsl::Diagnostics d;
  dsl::ParseFile(src, d);
  EXPECT_TRUE(d.HasErrors());
  EXPECT_NE(d.Format().find("p.vakt:3:"), std::string::npos) << d.Format();
  dsl::SourceFile bad;
  bad.path = "q.vakt";
  bad.text = "relation r: = \"x.json\"\n";
  dsl::Diagnostics d2;
  dsl::ParseFile(bad, d2);
  EXPECT_TRUE(d2.HasErrors());
}

TEST(OwnershipFormat, RoundTripsAndIsIdempotent) {
  dsl::SourceFile src;
  src.path = "p.vakt";
  src.text = "relation   teams :list< string > = \"t.json\"\napi a \"/\" {\nroute r GET \"/p/{id}\" {\n"
             "owner:owns params.id {\n== token.sub if token.role==\"patient\"\n    in teams[token.sub]\n"
             "}else deny 403 access_denied \"no\"\n}\n}\n";
  dsl::Diagnostics d;
  std::string once = dsl::FormatSource(src, d);
  ASSERT_FALSE(d.HasErrors()) << d.Format();
  EXPECT_EQ(once,
            "relation teams: list<string> = \"t.json\"\napi a \"/\" {\n  route r GET \"/p/{id}\" {\n"
            "    owner: owns params.id {\n      == token.sub if token.role == \"patient\"\n"
            "      in teams[token.sub]\n    } else deny 403 access_denied \"no\"\n  }\n}\n");
  dsl::SourceFile again = src;
  again.text = once;
  EXPECT_EQ(dsl::FormatSource(again, d), once);
}

// ---- Diagnostics ------------------------------------------------------------------

TEST(OwnershipDiagnostics, Relations) {
  ExpectError("relation r: int = \"owner.json\"\n",
              "relation `r` must map keys to `string` or `list<string>`, got `int`");
  ExpectError("relation r: list<int> = \"owner.json\"\n", "got `list<int>`");
  ExpectError("relation r: string = \"missing.json\"\n",
              "cannot read the relation file `missing.json`: no file `missing.json`");
  ExpectError("relation r: string = \"bad.json\"\n", "relation `r`: `bad.json`: malformed JSON",
              {{"bad.json", "{\"a\": "}});
  ExpectError("relation r: string = \"arr.json\"\n",
              "relation `r`: `arr.json`: expected a JSON object of keys to strings, got an array",
              {{"arr.json", "[]"}});
  ExpectError("relation r: string = \"n.json\"\n",
              "relation `r`: `n.json`: key `k` maps to a number, expected a string",
              {{"n.json", R"({"ok": "x", "k": 5})"}});
  ExpectError("relation r: list<string> = \"l.json\"\n",
              "relation `r`: `l.json`: key `k` maps to a string, expected an array of strings",
              {{"l.json", R"({"k": "x"})"}});
  ExpectError("relation r: list<string> = \"l.json\"\n",
              "relation `r`: `l.json`: key `k`: element 1 is null, expected a string",
              {{"l.json", R"({"k": ["a", null]})"}});
  ExpectError("relation r: string = \"d.json\"\n", "relation `r`: `d.json`: key `k` appears twice",
              {{"d.json", R"({"k": "a", "j": "b", "k": "c"})"}});
  ExpectError("relation r: string = \"big.json\"\n", "is longer than 4096 bytes",
              {{"big.json", "{\"" + std::string(5000, 'k') + "\": \"v\"}"}});
  ExpectError("relation r: string = \"owner.json\"\nrelation r: string = \"owner.json\"\n",
              "`r` is already defined");
  ExpectError(Route("    require owner_of == \"x\" else deny 403"),
              "relation `owner_of` is a table: look a key up with `owner_of[key]`");
  ExpectError(Route("    require owner_of[1] == \"x\" else deny 403"), "a relation key");
  ExpectError(Route("    require teams[params.id] == \"x\" else deny 403"),
              "cannot apply `==` to `list<string>` and `string`");
}

TEST(OwnershipDiagnostics, Statements) {
  ExpectError(Route("    owns request.headers.x { == token.sub }"),
              "the object of `owns` must be a path parameter, a query value or a value of the JSON "
              "body (`params.id`, `request.query.id`, `request.json.id`), got "
              "`request.headers.x`");
  ExpectError(Route("    owns token.sub { == params.id }"), "got `token.sub`");
  ExpectError(Route("    owns params.id { in token.patient_id }"),
              "the value of an `in` ownership clause must be a `list<string>` (a list claim or a "
              "list relation), got `string`");
  ExpectError(Route("    owns params.id { == token.age }"), "the value of an `==` ownership clause");
  ExpectError(Route("    owns params.id { == token.care_team }"),
              "the value of an `==` ownership clause");
  ExpectError(Route("    owns params.id { == token.sub if token.age }"),
              "the condition of an ownership clause");
  ExpectError(Route("    owns params.id { }"), "`owns` needs at least one clause");
  ExpectError(Route("    owns params.nope { == token.sub }"), "has no path parameter `nope`");
  ExpectError(Route("    owns response.json.id { == token.sub }"),
              "`response` is only available in `on response` rules");
  ExpectError(Route("    owns params.id { == token.sub } else deny 200 ok"),
              "deny status must be between 400 and 599, got 200");
  ExpectError(Route("    o: owns params.id { == token.sub }\n    o: owns params.rid { == token.sub }"),
              "duplicate rule label `o`");
  ExpectError(Route("    on response {\n      owns response.headers.x { == params.id }\n    }"),
              "`response.json.id`), got `response.headers.x`");
}

// ---- Both evaluators on every clause form ---------------------------------------

TEST(OwnershipEval, ClauseForms) {
  Built b = Build(Route(R"(    owner: owns params.id {
      == token.patient_id if token.role == "patient"
      in token.care_team if token.role == "clinician"
      in teams[token.sub]
      == owner_of[params.rid]
    })"));
  ASSERT_TRUE(b.ok) << b.diags;
  const std::string deny = "deny 403 access_denied a.r.owner";
  // == claim, with its condition.
  EXPECT_EQ(Decide(b, "/v1/p/p-9/r/x", {{"sub", "a"}, {"role", "patient"}, {"patient_id", "p-9"}}), "allow");
  EXPECT_EQ(Decide(b, "/v1/p/p-8/r/x", {{"sub", "a"}, {"role", "patient"}, {"patient_id", "p-9"}}), deny);
  EXPECT_EQ(Decide(b, "/v1/p/p-9/r/x", {{"sub", "a"}, {"role", "admin"}, {"patient_id", "p-9"}}), deny);
  // in list claim.
  EXPECT_EQ(Decide(b, "/v1/p/p-7/r/x", {{"sub", "a"}, {"role", "clinician"}, {"care_team", {"p-6", "p-7"}}}), "allow");
  EXPECT_EQ(Decide(b, "/v1/p/p-5/r/x", {{"sub", "a"}, {"role", "clinician"}, {"care_team", {"p-6", "p-7"}}}), deny);
  // A missing claim whose clause applies is an error: the rule denies.
  EXPECT_EQ(Decide(b, "/v1/p/p-7/r/x", {{"sub", "a"}, {"role", "clinician"}}), deny);
  // in list relation (present, present without the object, missing key).
  EXPECT_EQ(Decide(b, "/v1/p/p-3/r/x", {{"sub", "lis"}, {"role", "nurse"}}), "allow");
  EXPECT_EQ(Decide(b, "/v1/p/p-2/r/x", {{"sub", "lis"}, {"role", "nurse"}}), deny);
  EXPECT_EQ(Decide(b, "/v1/p/p-3/r/x", {{"sub", "eva"}, {"role", "nurse"}}), deny);
  // == string relation: present and equal, present and different, missing
  // (an error, so the rule denies: fail closed).
  EXPECT_EQ(Decide(b, "/v1/p/p-2/r/r-2", {{"sub", "nobody"}, {"role", "nurse"}}), "allow");
  EXPECT_EQ(Decide(b, "/v1/p/p-1/r/r-2", {{"sub", "nobody"}, {"role", "nurse"}}), deny);
  EXPECT_EQ(Decide(b, "/v1/p/p-1/r/r-404", {{"sub", "nobody"}, {"role", "nurse"}}), deny);
}

TEST(OwnershipEval, ObjectsFromQueryAndBodyAndTheDefaultDeny) {
  Built b = Build(Route("    q: owns request.query.pid { in teams[token.sub] }"));
  ASSERT_TRUE(b.ok) << b.diags;
  EXPECT_EQ(Decide(b, "/v1/p/a/r/b?pid=p-1", {{"sub", "lis"}}), "allow");
  EXPECT_EQ(Decide(b, "/v1/p/a/r/b?pid=p-2", {{"sub", "lis"}}), "deny 403 access_denied a.r.q");
  EXPECT_EQ(Decide(b, "/v1/p/a/r/b", {{"sub", "lis"}}), "deny 403 access_denied a.r.q");
  const IrRule& rule = b.c->ir.routes[0].request_rules[0];
  EXPECT_EQ(rule.message, "the caller does not own `request.query.pid`");
  ASSERT_TRUE(rule.owns);
  EXPECT_EQ(rule.owns->object_text, "request.query.pid");
  EXPECT_EQ(rule.owns->clauses[0].value_text, "teams[token.sub]");
  // request.json: the POST route.
  nlohmann::json anna = {{"sub", "anna"}, {"patient_id", "p-1"}};
  EXPECT_EQ(Decide(b, "/v1/notes", anna, R"({"note": {"patient": "p-1"}})", "POST"), "allow");
  EXPECT_EQ(Decide(b, "/v1/notes", anna, R"({"note": {"patient": "p-2"}})", "POST"),
            "deny 403 access_denied a.w#1");
}

TEST(OwnershipEval, RelationLookupsAndPresence) {
  Built b = Build(Route(R"(    k: require has(owner_of[params.rid]) && owner_of[params.rid] == params.id
      else deny 404 not_found
    t: require len(teams[params.id]) == 2 || !has(teams[params.id]) else deny 400)"));
  ASSERT_TRUE(b.ok) << b.diags;
  EXPECT_EQ(Decide(b, "/v1/p/p-1/r/r-1", {}), "allow");  // `p-1` is no team key: !has
  EXPECT_EQ(Decide(b, "/v1/p/bob/r/r-1", {}), "deny 404 not_found a.r.k");
  EXPECT_EQ(Decide(b, "/v1/p/p-2/r/r-1", {}), "deny 404 not_found a.r.k");
  EXPECT_EQ(Decide(b, "/v1/p/p-1/r/r-404", {}), "deny 404 not_found a.r.k");
  Built c = Build(Route("    t: require len(teams[params.id]) == 2 else deny 400"));
  ASSERT_TRUE(c.ok) << c.diags;
  EXPECT_EQ(Decide(c, "/v1/p/lis/r/x", {}), "allow");
  EXPECT_EQ(Decide(c, "/v1/p/eva/r/x", {}), "deny 400  a.r.t");
  EXPECT_EQ(Decide(c, "/v1/p/nobody/r/x", {}), "deny 400  a.r.t");  // missing: empty list
}

TEST(OwnershipEval, ResponseSideWithholds) {
  Built b = Build(Route(R"(    on response {
      back: owns response.json.patient_id { == params.id }
    })"));
  ASSERT_TRUE(b.ok) << b.diags;
  const std::string withheld = "deny 403 access_denied a.r.back";
  std::string good = R"({"patient_id": "p-1"})", other = R"({"patient_id": "p-2"})";
  EXPECT_EQ(Decide(b, "/v1/p/p-1/r/x", {}, "", "GET", &good), "allow");
  EXPECT_EQ(Decide(b, "/v1/p/p-1/r/x", {}, "", "GET", &other), withheld);
  for (std::string bad : {std::string("<html/>"), std::string(""), std::string(R"({"patient_id": 1})"),
                          std::string(R"({"patient_id": "p-1", "patient_id": "p-1"})"),
                          std::string(R"({"x": 1})"), std::string(R"({"patient_id": "p-1")")}) {
    EXPECT_EQ(Decide(b, "/v1/p/p-1/r/x", {}, "", "GET", &bad), withheld) << bad;
  }
  EXPECT_NE(b.c->ir.routes[0].response_rules[0].message.find("withheld"), std::string::npos);
}

TEST(OwnershipEval, MalformedRequestBodiesFailClosed) {
  Built b = Build(Route("    owns params.id { == token.sub }"));
  ASSERT_TRUE(b.ok) << b.diags;
  nlohmann::json anna = {{"sub", "anna"}, {"patient_id", "p-1"}};
  const std::string deny = "deny 403 access_denied a.w#1";
  std::string deep;
  for (int i = 0; i < 100; ++i) deep += "{\"a\":";
  deep += "1";
  for (int i = 0; i < 100; ++i) deep += "}";
  std::string huge = R"({"note": {"patient": "p-1"}, "pad": ")" +
                     std::string(bytecode::kMaxJsonBodyBytes, 'x') + "\"}";
  for (const std::string& body :
       {std::string(""), std::string("not json"), std::string(R"({"note": {"patient": "p-1")"),
        std::string(R"({"note": {"patient": "p-1", "patient": "p-1"}})"),
        std::string(R"({"note": {"patient": "p-1"}, "note": {"patient": "p-1"}})"),
        std::string("{\"note\": {\"patient\": \"p-\xff\"}}"), std::string("[1, 2]"),
        std::string(R"({"note": "p-1"})"), std::string(R"({"note": {"patient": 12345678901234567890123}})"),
        deep, huge}) {
    EXPECT_EQ(Decide(b, "/v1/notes", anna, body, "POST"), deny) << body.substr(0, 80);
  }
}

// ---- The bundle section against hostile bytes ---------------------------------

bytecode::BundleData Compiled(const std::string& text) {
  Built b = Build(text);
  EXPECT_TRUE(b.ok) << b.diags;
  return b.c->data;
}

std::string Rejection(const bytecode::BundleData& d) {
  auto st = bytecode::Verify(d);
  return st.ok() ? "verified" : st.message();
}

TEST(OwnershipBundle, RoundTripAndDisassembly) {
  auto d = Compiled(Route("    owner: owns params.id { in teams[token.sub] }"));
  ASSERT_EQ(d.relations.size(), 2u);
  auto parsed = bytecode::Parse(bytecode::Serialize(d));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  for (size_t i = 0; i < d.relations.size(); ++i) {
    EXPECT_EQ(parsed->relations[i].name, d.relations[i].name);
    EXPECT_EQ(parsed->relations[i].kind, d.relations[i].kind);
    EXPECT_EQ(parsed->relations[i].count, d.relations[i].count);
    EXPECT_EQ(parsed->relations[i].entries, d.relations[i].entries);
  }
  EXPECT_EQ(bytecode::Serialize(*parsed), bytecode::Serialize(d));
  std::string text = bytecode::Disassemble(d);
  EXPECT_NE(text.find("RELATION             R0 `main.teams`"), std::string::npos) << text;
  EXPECT_NE(text.find("r0 `a.r.owner`: owns, deny 403 access_denied"), std::string::npos) << text;
  EXPECT_NE(text.find("R0 `main.teams` list<string> 3 entries"), std::string::npos) << text;
  EXPECT_NE(text.find("R1 `main.owner_of` string 2 entries"), std::string::npos) << text;
}

TEST(OwnershipBundle, VerifierRefusesBrokenRelations) {
  const auto good = Compiled(Route("    owner: owns params.id { in teams[token.sub] }"));
  ASSERT_EQ(Rejection(good), "verified");
  auto d = good;
  d.relations[0].kind = 2;
  EXPECT_EQ(Rejection(d), "relation 0: unknown kind 2");
  d = good;
  d.relations[0].name = 100000;
  EXPECT_NE(Rejection(d).find("relation 0: name string 100000 out of range"), std::string::npos);
  d = good;
  d.relations[0].count += 1;
  EXPECT_EQ(Rejection(d), "relation 0: entry 3: truncated key length");
  d = good;
  d.relations[0].count -= 1;
  EXPECT_NE(Rejection(d).find("trailing bytes after the entries"), std::string::npos);
  d = good;
  d.relations[0].entries.pop_back();
  EXPECT_NE(Rejection(d).find("relation 0: entry 2: truncated"), std::string::npos);
  d = good;
  d.relations[1].kind = 1;  // now a list relation: fine, one value each
  EXPECT_EQ(Rejection(d), "verified");
  d = good;
  d.relations[0].kind = 0;  // "eva" has no value: not a string relation
  EXPECT_EQ(Rejection(d), "relation 0: entry 1: bad value count 0");
  d = good;
  d.relations[0].entries.clear();
  const std::vector<std::string> v = {"x"};
  bytecode::AppendRelationEntry(&d.relations[0].entries, "b", v);
  bytecode::AppendRelationEntry(&d.relations[0].entries, "a", v);
  bytecode::AppendRelationEntry(&d.relations[0].entries, "a", v);
  EXPECT_EQ(Rejection(d), "relation 0: entry 1: keys are not strictly ascending");
  d.relations[0].entries.clear();
  bytecode::AppendRelationEntry(&d.relations[0].entries, "a", v);
  bytecode::AppendRelationEntry(&d.relations[0].entries, "a", v);
  bytecode::AppendRelationEntry(&d.relations[0].entries, "b", v);
  EXPECT_EQ(Rejection(d), "relation 0: entry 1: keys are not strictly ascending");
  d = good;
  d.relations[0].entries = std::string("\xff\xff\xff\xff", 4) + d.relations[0].entries;
  d.relations[0].count = 1;
  EXPECT_EQ(Rejection(d), "relation 0: entry 0: key over the length limit");
  d = good;
  d.relations.resize(bytecode::kMaxRelations + 1);
  EXPECT_EQ(Rejection(d), "257 relations, the limit is 256");
  // RELATION operands.
  d = good;
  for (auto& in : d.code) {
    if (in.op == Op::kRelation) in.c = 7;
  }
  EXPECT_NE(Rejection(d).find("RELATION: relation 7 out of range (2 relations)"), std::string::npos)
      << Rejection(d);
  d = good;
  for (auto& in : d.code) {
    if (in.op == Op::kRelation) in.a = 2;
  }
  EXPECT_NE(Rejection(d).find("RELATION: operand a = 2, expected 0 or 1"), std::string::npos);
  d = good;
  for (auto& in : d.code) {
    if (in.op == Op::kRelation) in.b = 1;
  }
  EXPECT_NE(Rejection(d).find("unused operand b = 1 must be 0"), std::string::npos);
}

TEST(OwnershipBundle, ParseRefusesShortSections) {
  auto d = Compiled(Route("    owner: owns params.id { in teams[token.sub] }"));
  std::string bytes = bytecode::Serialize(d);
  // Every prefix and every flipped byte of the file is refused or verified:
  // never a crash (the checksum catches flips; the fuzzer goes further).
  for (size_t n = 0; n < bytes.size(); n += 7) {
    EXPECT_FALSE(bytecode::Parse(bytes.substr(0, n)).ok());
  }
  // A relation record whose byte length runs past the section.
  d.relations[1].entries += "zz";
  auto parsed = bytecode::Parse(bytecode::Serialize(d));
  ASSERT_TRUE(parsed.ok());
  EXPECT_FALSE(bytecode::Bundle::Load(bytecode::Serialize(d)).ok());
}

TEST(OwnershipBundle, LookupFindsEveryKeyOfALargeTable) {
  bytecode::BundleData d;
  d.name = "big";
  d.compiler_version = "test";
  d.strings = {"", "big", "test", "GET", "root", "/", "rel"};
  d.routes = {bytecode::RouteRecord{4, 3, 5, 0, 0, 0, 1, 0, 0, 1}};
  d.max_route_cost = 1;
  d.code = {bytecode::Instr{Op::kAllow, 0, 0, 0}};
  d.nodes = {bytecode::TrieNode{0, 0, bytecode::kNone, bytecode::kNone, 0, 1}};
  d.methods = {bytecode::TrieMethod{3, 0}};
  std::vector<std::string> keys;
  for (int i = 0; i < 100000; ++i) keys.push_back("k" + std::to_string(i));
  std::sort(keys.begin(), keys.end());
  bytecode::RelationData rel{6, 0, static_cast<uint32_t>(keys.size()), ""};
  for (const auto& k : keys) {
    std::vector<std::string> v = {"v" + k};
    bytecode::AppendRelationEntry(&rel.entries, k, v);
  }
  d.relations = {rel};
  auto b = bytecode::Bundle::Load(bytecode::Serialize(d));
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  for (const auto& k : keys) {
    const char* p = (*b)->FindRelation(0, k);
    ASSERT_TRUE(p != nullptr) << k;
    ASSERT_EQ(bytecode::RelationU32(p), 1u);
    ASSERT_EQ(std::string_view(p + 8, bytecode::RelationU32(p + 4)), "v" + k);
  }
  for (const char* absent : {"", "k", "k100000", "x", "k1 "}) {
    EXPECT_TRUE((*b)->FindRelation(0, absent) == nullptr) << absent;
  }
}

// ---- Generated tests ------------------------------------------------------------

std::vector<TestOutcome> Generated(const Built& b) {
  std::vector<TestOutcome> out;
  for (auto& o : RunPolicyTests(*b.c)) {
    if (o.generated) out.push_back(o);
  }
  return out;
}

TEST(OwnershipGenerated, EachFormYieldsTwoPassingTests) {
  Built b = Build(Route(R"(    owner: owns params.id {
      == token.patient_id if token.role == "patient"
      in token.care_team if token.role == "clinician"
      in teams[token.sub]
      == owner_of[token.sub]
    }
    on response {
      back: owns response.json.patient_id { == params.id }
    })") + R"(
test "a patient reads" {
  request {"method": "GET", "path": "/v1/p/p-1/r/r-1"}
  claims {"sub": "anna", "role": "patient", "patient_id": "p-1"}
  response {"status": 200, "body": "{\"patient_id\": \"p-1\"}"}
  expect allow
}
)");
  ASSERT_TRUE(b.ok) << b.diags;
  auto gen = Generated(b);
  // 4 clauses x 2, the response clause x 2, the POST route (synthesised) x 2.
  ASSERT_EQ(gen.size(), 12u);
  for (const auto& o : gen) {
    EXPECT_TRUE(o.passed) << o.name << ": " << o.message;
    EXPECT_FALSE(o.skipped) << o.name << ": " << o.message;
  }
  EXPECT_EQ(gen[0].name, "a.r.owner clause 1 (== token.patient_id) allows the owner");
  EXPECT_EQ(gen[1].name, "a.r.owner clause 1 (== token.patient_id) denies another user");
  EXPECT_EQ(gen[6].name, "a.r.owner clause 4 (== owner_of[token.sub]) allows the owner");
  // Turned off, nothing is generated.
  PolicyTestOptions off;
  off.generate_ownership = false;
  for (const auto& o : RunPolicyTests(*b.c, off)) EXPECT_FALSE(o.generated);
}

TEST(OwnershipGenerated, ImpossibleClausesAreSkippedWithTheReason) {
  Built b = Build(Route(R"(    owner: owns params.id {
      == token.sub if token.age > 3
      == request.headers.x
      in teams[params.rid]
    })"));
  ASSERT_TRUE(b.ok) << b.diags;
  auto gen = Generated(b);
  ASSERT_GE(gen.size(), 3u);
  EXPECT_TRUE(gen[0].skipped);
  EXPECT_EQ(gen[0].message, "its condition `token.age > 3` is not of the form token.X == \"literal\"");
  EXPECT_TRUE(gen[1].skipped);
  EXPECT_EQ(gen[1].message,
            "it compares with `request.headers.x`, not a claim or a relation looked up by a claim");
  EXPECT_TRUE(gen[2].skipped);
  EXPECT_EQ(gen[2].message, "the relation is not looked up by a claim");
}

TEST(OwnershipGenerated, AGeneratedTestCatchesABrokenRule) {
  // The clause `in teams[token.sub]` where the relation holds no list with
  // a usable value: skipped; and a rule that lets everyone in fails the
  // generated "denies another user" test.
  Built b = Build(Route(R"(    owner: owns params.id {
      == token.patient_id
      == "p-1"
    })") + R"(
test "base" {
  request {"method": "GET", "path": "/v1/p/p-1/r/r-1"}
  claims {"sub": "anna", "patient_id": "p-1"}
  expect allow
}
)");
  ASSERT_TRUE(b.ok) << b.diags;
  auto gen = Generated(b);
  ASSERT_GE(gen.size(), 2u);
  EXPECT_TRUE(gen[0].passed) << gen[0].message;
  EXPECT_FALSE(gen[1].passed);
  EXPECT_NE(gen[1].message.find("expected deny 403 or 404, got allow"), std::string::npos)
      << gen[1].message;
}

TEST(OwnershipGenerated, HealthcareExampleTestsPass) {
  SourceSet s;
  dsl::Diagnostics d;
  LoadSources({std::string(VAKT_SOURCE_DIR) + "/examples/healthcare/policy"}, s, d);
  auto c = Compile(s, {}, d);
  ASSERT_FALSE(d.HasErrors()) << d.Format();
  size_t generated = 0;
  for (const auto& o : RunPolicyTests(*c)) {
    EXPECT_TRUE(o.passed) << o.name << ": " << o.message;
    generated += o.generated;
  }
  EXPECT_GE(generated, 16u);
}

}  // namespace
}  // namespace vakt::compiler
