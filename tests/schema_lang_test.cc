// Schema constraints in policies: the body check (content type, limits,
// outcomes and their denies, bytecode/body_check.h) and the schema
// declaration stage (compiler/schemas.h: files through the AssetReader,
// inline JSON, OpenAPI components and route bindings, diagnostics).
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "bytecode/body_check.h"
#include "bytecode/bundle.h"
#include "bytecode/request_json.h"
#include "bytecode/schema.h"
#include "bytecode/verifier.h"
#include "bytecode/vm.h"
#include "compiler/compile.h"
#include "compiler/interp.h"
#include "compiler/schema_compile.h"
#include "compiler/schemas.h"
#include "dsl/formatter.h"

namespace vakt {
namespace {

using bytecode::BodyCheckResult;
using bytecode::BodyCheckSpec;
using bytecode::BodyVerdict;
using bytecode::CheckBody;
using compiler::CompileSchemas;
using compiler::OpenApiBinding;
using compiler::SchemaDecl;

std::string ReadExample(const std::string& rel) {
  std::ifstream in(std::string(VAKT_SOURCE_DIR) + "/examples/healthcare/" + rel, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// ---------------------------------------------------------------------------
// Media types.

TEST(SchemaLangMediaType, Essence) {
  EXPECT_EQ(bytecode::MediaTypeEssence("Application/JSON; charset=utf-8"), "application/json");
  EXPECT_EQ(bytecode::MediaTypeEssence("  text/plain  "), "text/plain");
  EXPECT_EQ(bytecode::MediaTypeEssence("json"), "");
  EXPECT_EQ(bytecode::MediaTypeEssence("a/b/c"), "");
  EXPECT_EQ(bytecode::MediaTypeEssence("/json"), "");
  EXPECT_EQ(bytecode::MediaTypeEssence("application/"), "");
  EXPECT_EQ(bytecode::MediaTypeEssence("app lication/json"), "");
  EXPECT_EQ(bytecode::MediaTypeEssence(""), "");
}

TEST(SchemaLangMediaType, Json) {
  EXPECT_TRUE(bytecode::IsJsonMediaType("application/json"));
  EXPECT_TRUE(bytecode::IsJsonMediaType("application/json;charset=utf-8"));
  EXPECT_TRUE(bytecode::IsJsonMediaType("APPLICATION/merge-patch+json"));
  EXPECT_FALSE(bytecode::IsJsonMediaType("application/+json"));
  EXPECT_FALSE(bytecode::IsJsonMediaType("text/json"));
  EXPECT_FALSE(bytecode::IsJsonMediaType("application/jsonx"));
  EXPECT_FALSE(bytecode::IsJsonMediaType("text/plain"));
}

TEST(SchemaLangMediaType, Accepted) {
  EXPECT_TRUE(bytecode::MediaTypeAccepted("text/plain; charset=utf-8", "text/plain"));
  EXPECT_TRUE(bytecode::MediaTypeAccepted("TEXT/CSV", "application/xml, text/*"));
  EXPECT_FALSE(bytecode::MediaTypeAccepted("text/plain", "application/xml"));
  EXPECT_FALSE(bytecode::MediaTypeAccepted("text/plain", ""));
  EXPECT_FALSE(bytecode::MediaTypeAccepted("garbage", "garbage"));
  EXPECT_FALSE(bytecode::MediaTypeAccepted("textual/plain", "text/*"));
}

TEST(SchemaLangStatus, SelectResponseCheck) {
  const uint16_t keys[] = {200, 4, 0, 404};
  EXPECT_EQ(bytecode::SelectResponseCheck(200, keys), 0);
  EXPECT_EQ(bytecode::SelectResponseCheck(404, keys), 3);
  EXPECT_EQ(bytecode::SelectResponseCheck(403, keys), 1);
  EXPECT_EQ(bytecode::SelectResponseCheck(500, keys), 2);
  EXPECT_EQ(bytecode::SelectResponseCheck(201, keys), 2);
  const uint16_t only[] = {200};
  EXPECT_EQ(bytecode::SelectResponseCheck(201, only), -1);
  EXPECT_EQ(bytecode::SelectResponseCheck(200, std::span<const uint16_t>()), -1);
}

// ---------------------------------------------------------------------------
// Body checks against NewRecord (strict) and Record.

class SchemaLangBody : public ::testing::Test {
 protected:
  void SetUp() override {
    compiler::SchemaCompiler c([](const std::string&, const std::string& p) -> Result<std::string> {
      return NotFound(p);
    });
    compiler::SchemaOptions strict{true, false};
    ASSERT_TRUE(c.AddJsonText("NewRecord", ReadExample("schemas/new_record.json"), strict).ok());
    ASSERT_TRUE(c.AddJsonText("Patient", ReadExample("schemas/patient.json"), {false, true}).ok());
    auto blob = c.Build();
    ASSERT_TRUE(blob.ok()) << blob.status().message();
    auto set = bytecode::SchemaSet::Load(*blob);
    ASSERT_TRUE(set.ok());
    set_ = *set;
    request_.root = *set_->FindRoot("NewRecord");
    response_.root = *set_->FindRoot("Patient");
    response_.response = true;
  }

  BodyCheckResult Req(std::string_view body, std::string_view type = "application/json") {
    return CheckBody(*set_, request_, !type.empty(), type, body, scratch_);
  }
  BodyCheckResult Resp(std::string_view body, std::string_view type = "application/json") {
    return CheckBody(*set_, response_, !type.empty(), type, body, scratch_);
  }

  std::shared_ptr<const bytecode::SchemaSet> set_;
  BodyCheckSpec request_;
  BodyCheckSpec response_;
  bytecode::ValidationScratch scratch_;
};

TEST_F(SchemaLangBody, ValidRequestIsAllowed) {
  auto r = Req(R"({"type":"note","text":"fever","code":"R50.9"})");
  EXPECT_EQ(r.verdict, BodyVerdict::kValid);
  EXPECT_TRUE(r.allowed());
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(Req(R"({"type":"lab","text":"x"})", "application/json; charset=utf-8").allowed());
  EXPECT_TRUE(Req(R"({"type":"lab","text":"x"})", "application/vnd.records+json").allowed());
}

TEST_F(SchemaLangBody, ExtraFieldIsRefused) {
  auto r = Req(R"({"type":"note","text":"x","author":"mallory"})");
  EXPECT_EQ(r.verdict, BodyVerdict::kInvalid);
  EXPECT_EQ(r.status, 400);
  EXPECT_STREQ(r.error, "invalid_request");
  EXPECT_NE(r.description.find("/author"), std::string::npos) << r.description;
  EXPECT_EQ(r.description.rfind("body: ", 0), 0u) << r.description;
}

TEST_F(SchemaLangBody, WrongEnumTooLongAndPatternAreRefused) {
  auto e = Req(R"({"type":"diary","text":"x"})");
  EXPECT_EQ(e.status, 400);
  EXPECT_NE(e.description.find("enum at /type"), std::string::npos) << e.description;
  std::string long_text(10001, 'a');
  auto l = Req(R"({"type":"note","text":")" + long_text + R"("})");
  EXPECT_EQ(l.status, 400);
  EXPECT_NE(l.description.find("maxLength at /text"), std::string::npos) << l.description;
  auto p = Req(R"({"type":"note","text":"x","code":"r50"})");
  EXPECT_EQ(p.status, 400);
  EXPECT_NE(p.description.find("pattern at /code"), std::string::npos) << p.description;
  auto m = Req(R"({"text":"x"})");
  EXPECT_EQ(m.status, 400);
  EXPECT_NE(m.description.find("required"), std::string::npos) << m.description;
}

TEST_F(SchemaLangBody, ContentTypes) {
  auto t = Req("hello", "text/plain");
  EXPECT_EQ(t.verdict, BodyVerdict::kUnsupportedType);
  EXPECT_EQ(t.status, 415);
  EXPECT_STREQ(t.error, "invalid_request");
  EXPECT_NE(t.description.find("`text/plain`"), std::string::npos) << t.description;
  auto none = Req(R"({"type":"note","text":"x"})", "");
  EXPECT_EQ(none.status, 415);
  request_.accept = "text/plain,application/xml";
  auto ok = Req("hello", "text/plain; charset=utf-8");
  EXPECT_EQ(ok.verdict, BodyVerdict::kSkipped);
  EXPECT_TRUE(ok.allowed());
  EXPECT_EQ(Req("x", "text/csv").status, 415);
  // A JSON body is still checked when other types are accepted.
  EXPECT_EQ(Req(R"({"text":"x"})").status, 400);
}

TEST_F(SchemaLangBody, MissingMalformedAndLimits) {
  EXPECT_EQ(Req("").verdict, BodyVerdict::kMissing);
  EXPECT_EQ(Req("").status, 400);
  EXPECT_EQ(Req("", "").status, 400);
  auto bad = Req(R"({"type":"note",)");
  EXPECT_EQ(bad.verdict, BodyVerdict::kMalformed);
  EXPECT_EQ(bad.status, 400);
  auto dup = Req(R"({"type":"note","text":"x","text":"y"})");
  EXPECT_EQ(dup.verdict, BodyVerdict::kMalformed);
  EXPECT_EQ(dup.status, 400);
  auto utf8 = Req("{\"type\":\"note\",\"text\":\"\xff\"}");
  EXPECT_EQ(utf8.verdict, BodyVerdict::kMalformed);
  request_.limits.max_body_bytes = 32;
  auto big = Req(R"({"type":"note","text":"this text is longer than 32 bytes"})");
  EXPECT_EQ(big.verdict, BodyVerdict::kTooLarge);
  EXPECT_EQ(big.status, 413);
  EXPECT_STREQ(big.error, "invalid_request");
  request_.limits.max_body_bytes = 1 << 20;
  request_.limits.max_depth = 2;
  auto deep = Req(R"({"type":"note","text":"x","code":[[[1]]]})");
  EXPECT_EQ(deep.verdict, BodyVerdict::kOverLimit);
  EXPECT_EQ(deep.status, 400);
  request_.limits.max_depth = 64;
  request_.limits.max_string_bytes = 4;
  EXPECT_EQ(Req(R"({"type":"note","text":"longer"})").verdict, BodyVerdict::kOverLimit);
  request_.limits.max_string_bytes = 1 << 16;
  request_.limits.max_properties = 1;
  EXPECT_EQ(Req(R"({"type":"note","text":"x"})").verdict, BodyVerdict::kOverLimit);
}

TEST_F(SchemaLangBody, ResponseFailuresAre502) {
  EXPECT_TRUE(Resp(R"({"id":"p-1","name":"Anna","born":"1980-02-29"})").allowed());
  auto bad = Resp(R"({"id":"p-1","name":"Anna","born":"1981-02-29"})");
  EXPECT_EQ(bad.status, 502);
  EXPECT_STREQ(bad.error, "invalid_response");
  EXPECT_NE(bad.description.find("format at /born"), std::string::npos) << bad.description;
  EXPECT_EQ(bad.description.rfind("response body: ", 0), 0u) << bad.description;
  EXPECT_EQ(Resp(R"({"id":"p-1"})").status, 502);
  EXPECT_EQ(Resp("<html/>", "text/html").status, 502);
  EXPECT_EQ(Resp("").status, 502);
  response_.limits.max_body_bytes = 8;
  EXPECT_EQ(Resp(R"({"id":"p-1","name":"Anna","born":"1980-02-29"})").status, 502);
}

TEST_F(SchemaLangBody, DescriptionIsBounded) {
  std::string key(4000, 'k');
  auto r = Req(R"({"type":"note","text":"x",")" + key + R"(":1})");
  EXPECT_EQ(r.status, 400);
  EXPECT_LE(r.description.size(), 520u);
}

// ---------------------------------------------------------------------------
// The declaration stage.

struct Files {
  std::map<std::string, std::string> files;  // path relative to the .vakt file's directory
  std::vector<std::string> reads;
};

compiler::AssetReader FakeReader(Files& f) {
  return [&f](const dsl::SourceFile&, const std::string& path) -> Result<std::string> {
    f.reads.push_back(path);
    auto it = f.files.find(path);
    if (it == f.files.end()) return NotFound("`" + path + "` is not a readable file");
    return it->second;
  };
}

class SchemaLangStage : public ::testing::Test {
 protected:
  void SetUp() override {
    vakt_.path = "policy/records.vakt";
    vakt_.text = "schema X = \"x.json\"\n";
    for (const char* f : {"new_record.json", "record.json", "record_list.json", "patient.json"}) {
      files_.files[std::string("../schemas/") + f] = ReadExample(std::string("schemas/") + f);
    }
    files_.files["../openapi.yaml"] = ReadExample("openapi.yaml");
  }

  SchemaDecl Decl(std::string name, SchemaDecl::Kind kind, std::string source,
                  std::string component = "", compiler::SchemaOptions o = {}) {
    SchemaDecl d;
    d.name = std::move(name);
    d.kind = kind;
    d.source = std::move(source);
    d.component = std::move(component);
    d.options = o;
    d.loc = dsl::Location{&vakt_, 1, 1};
    return d;
  }

  OpenApiBinding Bind(std::string route, std::string method, std::string tmpl,
                      std::string base = "/v1") {
    OpenApiBinding b;
    b.route = std::move(route);
    b.method = std::move(method);
    b.path_template = compiler::OpenApiPathOf(tmpl);
    b.base_path = std::move(base);
    b.document = "../openapi.yaml";
    b.loc = dsl::Location{&vakt_, 1, 1};
    return b;
  }

  dsl::SourceFile vakt_;
  Files files_;
  dsl::Diagnostics diags_;
};

TEST_F(SchemaLangStage, FilesInlineAndComponents) {
  auto reader = FakeReader(files_);
  std::vector<SchemaDecl> decls = {
      Decl("NewRecord", SchemaDecl::Kind::kFile, "../schemas/new_record.json", "", {true, false}),
      Decl("RecordList", SchemaDecl::Kind::kFile, "../schemas/record_list.json"),
      Decl("Tiny", SchemaDecl::Kind::kInline, R"({"type":"integer","maximum":3})"),
      Decl("Patient", SchemaDecl::Kind::kOpenApi, "../openapi.yaml", "Patient", {false, true}),
  };
  auto out = CompileSchemas(decls, {}, reader, diags_);
  ASSERT_FALSE(diags_.HasErrors()) << diags_.Format();
  ASSERT_FALSE(out.blob.empty());
  EXPECT_EQ(out.roots.size(), 4u);
  // The $ref'd record.json was read relative to record_list.json.
  EXPECT_NE(std::find(files_.reads.begin(), files_.reads.end(), "../schemas/record.json"),
            files_.reads.end());
  auto set = bytecode::SchemaSet::Load(out.blob);
  ASSERT_TRUE(set.ok());
  bytecode::ValidationScratch s;
  bytecode::ValidationLimits lim;
  EXPECT_TRUE(bytecode::Validate(**set, out.roots["Tiny"], "3", lim, s).valid());
  EXPECT_FALSE(bytecode::Validate(**set, out.roots["Tiny"], "4", lim, s).valid());
  EXPECT_FALSE(bytecode::Validate(**set, out.roots["RecordList"], R"([{"id":1}])", lim, s).valid());
  EXPECT_TRUE(bytecode::Validate(**set, out.roots["RecordList"], "[]", lim, s).valid());
  EXPECT_FALSE(bytecode::Validate(**set, out.roots["Patient"],
                                  R"({"id":"a","name":"b","born":"yesterday"})", lim, s)
                   .valid());
}

TEST_F(SchemaLangStage, Diagnostics) {
  auto reader = FakeReader(files_);
  std::vector<SchemaDecl> decls = {
      Decl("A", SchemaDecl::Kind::kFile, "missing.json"),
      Decl("B", SchemaDecl::Kind::kInline, R"({"minLength": -1})"),
      Decl("C", SchemaDecl::Kind::kInline, R"({"type": "string"})"),
      Decl("C", SchemaDecl::Kind::kInline, R"({"type": "string"})"),
      Decl("D", SchemaDecl::Kind::kOpenApi, "../openapi.yaml", "Nope"),
      Decl("E", SchemaDecl::Kind::kInline, R"x({"pattern": "(?<=x)"})x"),
  };
  auto out = CompileSchemas(decls, {}, reader, diags_);
  EXPECT_TRUE(out.blob.empty());
  std::string all = diags_.Format();
  EXPECT_EQ(diags_.error_count(), 5u) << all;
  EXPECT_NE(all.find("policy/records.vakt:1:1: error: schema `A`: "), std::string::npos) << all;
  EXPECT_NE(all.find("missing.json"), std::string::npos) << all;
  EXPECT_NE(all.find("schema `B`: "), std::string::npos) << all;
  EXPECT_NE(all.find("#/minLength"), std::string::npos) << all;
  EXPECT_NE(all.find("schema `C` is declared twice"), std::string::npos) << all;
  EXPECT_NE(all.find("schema `D`: "), std::string::npos) << all;
  EXPECT_NE(all.find("Nope"), std::string::npos) << all;
  EXPECT_NE(all.find("schema `E`: "), std::string::npos) << all;
  EXPECT_NE(all.find("^"), std::string::npos) << all;  // a caret under the declaration
}

TEST_F(SchemaLangStage, NoReaderIsAnError) {
  auto out = CompileSchemas({Decl("A", SchemaDecl::Kind::kFile, "x.json")}, {}, {}, diags_);
  EXPECT_TRUE(diags_.HasErrors());
  EXPECT_TRUE(out.blob.empty());
}

TEST_F(SchemaLangStage, OpenApiRouteBinding) {
  auto reader = FakeReader(files_);
  std::vector<OpenApiBinding> binds = {
      Bind("records.create_record", "POST", "/patients/{patient_id:Id}/records"),
      Bind("records.get_patient", "GET", "/patients/{id}"),
      Bind("records.delete_record", "DELETE", "/patients/{p}/records/{r}"),
      // An api without a base path.
      Bind("records.list_records", "GET", "/patients/{patient_id}/records", ""),
  };
  auto out = CompileSchemas({}, binds, reader, diags_);
  ASSERT_FALSE(diags_.HasErrors()) << diags_.Format();
  ASSERT_EQ(out.bindings.size(), 4u);
  EXPECT_TRUE(out.bindings[0].has_request);
  EXPECT_EQ(out.bindings[0].request_schema, "openapi:records.create_record:request");
  ASSERT_EQ(out.bindings[0].responses.size(), 1u);
  EXPECT_EQ(out.bindings[0].responses[0].first, 201);
  EXPECT_FALSE(out.bindings[1].has_request);
  ASSERT_EQ(out.bindings[1].responses.size(), 1u);
  EXPECT_EQ(out.bindings[1].responses[0].first, 200);
  EXPECT_FALSE(out.bindings[2].has_request);
  EXPECT_TRUE(out.bindings[2].responses.empty());  // 204: no content
  EXPECT_EQ(out.bindings[3].responses.size(), 1u);
  auto set = bytecode::SchemaSet::Load(out.blob);
  ASSERT_TRUE(set.ok());
  bytecode::ValidationScratch s;
  uint32_t req = out.roots.at("openapi:records.create_record:request");
  EXPECT_TRUE(bytecode::Validate(**set, req, R"({"type":"lab","text":"x"})", {}, s).valid());
  EXPECT_FALSE(bytecode::Validate(**set, req, R"({"type":"lab","text":"x","a":1})", {}, s).valid());
}

TEST_F(SchemaLangStage, OpenApiStatusRangesAndDefault) {
  files_.files["api.json"] = R"({"openapi":"3.1.0","info":{"title":"t","version":"1"},
    "paths":{"/things":{"get":{"responses":{
      "200":{"description":"ok","content":{"application/json":{"schema":{"type":"array"}}}},
      "4XX":{"description":"client","content":{"application/problem+json":{"schema":{"type":"object","required":["title"]}}}},
      "default":{"description":"other","content":{"application/json":{"schema":{"type":"object"}}}},
      "x-extension":{}}}}}})";
  OpenApiBinding b = Bind("a.things", "GET", "/things", "");
  b.document = "api.json";
  auto reader = FakeReader(files_);
  auto out = CompileSchemas({}, {b}, reader, diags_);
  ASSERT_FALSE(diags_.HasErrors()) << diags_.Format();
  ASSERT_EQ(out.bindings[0].responses.size(), 3u);
  std::map<uint16_t, std::string> got(out.bindings[0].responses.begin(),
                                      out.bindings[0].responses.end());
  EXPECT_EQ(got[200], "openapi:a.things:200");
  EXPECT_EQ(got[4], "openapi:a.things:4XX");
  EXPECT_EQ(got[compiler::kDefaultStatus], "openapi:a.things:default");
  auto set = bytecode::SchemaSet::Load(out.blob);
  ASSERT_TRUE(set.ok());
  bytecode::ValidationScratch s;
  EXPECT_FALSE(bytecode::Validate(**set, out.roots.at(got[4]), "{}", {}, s).valid());
  EXPECT_TRUE(bytecode::Validate(**set, out.roots.at(got[0]), "{}", {}, s).valid());
}

TEST_F(SchemaLangStage, OpenApiBindingErrors) {
  auto reader = FakeReader(files_);
  std::vector<OpenApiBinding> binds = {
      Bind("records.put_patient", "PUT", "/patients/{id}"),
      Bind("records.nowhere", "GET", "/nowhere"),
  };
  OpenApiBinding missing = Bind("records.x", "GET", "/x");
  missing.document = "nope.yaml";
  binds.push_back(missing);
  files_.files["bad.yaml"] = "openapi: 2.0\npaths: {}\n";
  OpenApiBinding bad = Bind("records.y", "GET", "/y");
  bad.document = "bad.yaml";
  binds.push_back(bad);
  auto out = CompileSchemas({}, binds, reader, diags_);
  std::string all = diags_.Format();
  EXPECT_EQ(diags_.error_count(), 4u) << all;
  EXPECT_NE(all.find("route `records.put_patient` (PUT /v1/patients/{id}) has no operation in "
                     "`../openapi.yaml`"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("route `records.nowhere`"), std::string::npos) << all;
  EXPECT_NE(all.find("cannot read `nope.yaml`"), std::string::npos) << all;
  EXPECT_NE(all.find("not an OpenAPI document"), std::string::npos) << all;
}

TEST(SchemaLangPath, OpenApiPathOf) {
  EXPECT_EQ(compiler::OpenApiPathOf("/patients/{patient_id:Id}/records"),
            "/patients/{patient_id}/records");
  EXPECT_EQ(compiler::OpenApiPathOf("/a/{b}"), "/a/{b}");
  EXPECT_EQ(compiler::OpenApiPathOf("/a/{b"), "/a/{b");
}

// ---------------------------------------------------------------------------
// The language: `schema` declarations and `body` statements, end to end.

struct Built {
  std::unique_ptr<compiler::SourceSet> sources;
  std::unique_ptr<compiler::Compilation> c;
  std::string diags;
  bool ok = false;
};

std::map<std::string, std::string> SchemaFiles() {
  std::map<std::string, std::string> f;
  for (const char* n : {"new_record.json", "record.json", "record_list.json", "patient.json"}) {
    f[std::string("schemas/") + n] = ReadExample(std::string("schemas/") + n);
  }
  f["openapi.yaml"] = ReadExample("openapi.yaml");
  f["loose.json"] = R"({"type":"object","properties":{"a":{"type":"integer"}}})";
  return f;
}

Built BuildPolicy(const std::string& text, std::map<std::string, std::string> files = SchemaFiles()) {
  Built b;
  b.sources = std::make_unique<compiler::SourceSet>();
  compiler::AddSource(*b.sources, "p.vakt", text);
  dsl::Diagnostics d;
  compiler::CompileOptions o;
  o.read_asset = [files](const dsl::SourceFile&, const std::string& path) -> Result<std::string> {
    auto it = files.find(path);
    if (it == files.end()) return NotFound("no file `" + path + "`");
    return it->second;
  };
  b.c = compiler::Compile(*b.sources, o, d);
  b.diags = d.Format();
  b.ok = !d.HasErrors() && !b.c->bytes.empty();
  return b;
}

const char* kDecls = R"(
schema NewRecord = "schemas/new_record.json" { strict = true }
schema Record = "schemas/record.json" { format = true }
schema Loose = "loose.json"
schema Tiny = { "type": "object", "required": ["n"], "properties": { "n": { "type": "integer", "maximum": 3 } } }
schema Comp = openapi "openapi.yaml" "Patient" { format = true }
)";

std::string Policy(const std::string& route_body, const std::string& method = "POST",
                   const std::string& path = "/patients/{patient_id}/records") {
  return std::string(kDecls) + "api a \"/v1\" {\n  route r " + method + " \"" + path + "\" {\n" +
         route_body + "\n  }\n}\n";
}

void ExpectError(const std::string& text, const std::string& fragment) {
  Built b = BuildPolicy(text);
  EXPECT_FALSE(b.ok) << text;
  EXPECT_NE(b.diags.find(fragment), std::string::npos) << "diagnostics were:\n" << b.diags;
}

struct Outcome {
  std::string vm;        // "allow" or "deny STATUS ERROR RULE"
  std::string description;
};

// Decides on the VM and on the reference evaluator (they must agree).
Outcome Decide(const Built& b, const std::string& method, const std::string& path,
               const std::string& content_type, const std::string& body,
               const nlohmann::json* response = nullptr) {
  Outcome out;
  auto bundle = bytecode::Bundle::Load(b.c->bytes);
  EXPECT_TRUE(bundle.ok()) << bundle.status().ToString();
  if (!bundle.ok()) return out;
  nlohmann::json req = {{"method", method}, {"path", path}, {"headers", nlohmann::json::object()}};
  if (!content_type.empty()) req["headers"]["content-type"] = content_type;
  auto r = bytecode::ParseRequestJson(req.dump());
  EXPECT_TRUE(r.ok());
  r->body = body;
  nlohmann::json claims = nlohmann::json::object();
  auto cl = std::move(bytecode::JsonClaims::Parse(claims.dump())).value();
  bytecode::EvalScratch scratch;
  auto view = r->View();
  bytecode::Decision d = bytecode::DecideRequest(**bundle, view, cl.get(), scratch);
  compiler::RefDecision ref = compiler::RefEvaluate(b.c->ir, view, &claims, nullptr);
  std::optional<bytecode::OwnedResponse> resp;
  if (d.allow && response) {
    resp = std::move(bytecode::ParseResponseJson(response->dump())).value();
    auto rv = resp->View();
    d = bytecode::DecideResponse(**bundle, view, cl.get(), rv, scratch);
    ref = compiler::RefEvaluate(b.c->ir, view, &claims, &rv);
  }
  out.vm = d.allow ? "allow"
                   : "deny " + std::to_string(d.status) + " " + std::string(d.error) + " " +
                         std::string(d.rule);
  out.description = std::string(d.description);
  std::string rf = ref.allow ? "allow"
                             : "deny " + std::to_string(ref.status) + " " + ref.error + " " + ref.rule;
  EXPECT_EQ(out.vm, rf) << "VM and reference evaluator disagree on " << method << " " << path;
  // A body check's description is CheckBody's on both; other denies differ
  // by design (the VM's message, the evaluator's detail).
  if (!d.allow && !ref.allow && (d.error == "invalid_request" || d.error == "invalid_response")) {
    EXPECT_EQ(out.description, ref.detail);
  }
  return out;
}

const char* kPath = "/v1/patients/p-1/records";

TEST(SchemaLangPolicy, RequestOutcomes) {
  Built b = BuildPolicy(Policy("    body NewRecord { max_bytes = 200 }"));
  ASSERT_TRUE(b.ok) << b.diags;
  EXPECT_EQ(Decide(b, "POST", kPath, "application/json", R"({"type":"note","text":"x"})").vm, "allow");
  Outcome extra = Decide(b, "POST", kPath, "application/json", R"({"type":"note","text":"x","author":"m"})");
  EXPECT_EQ(extra.vm, "deny 400 invalid_request a.r.body");
  EXPECT_NE(extra.description.find("at /author"), std::string::npos) << extra.description;
  Outcome len = Decide(b, "POST", kPath, "application/json", R"({"type":"note","text":""})");
  EXPECT_EQ(len.vm, "deny 400 invalid_request a.r.body");
  EXPECT_EQ(len.description.rfind("body: minLength at /text: ", 0), 0u) << len.description;
  EXPECT_EQ(Decide(b, "POST", kPath, "text/plain", "hi").vm, "deny 415 invalid_request a.r.body");
  EXPECT_EQ(Decide(b, "POST", kPath, "", "{}").vm, "deny 415 invalid_request a.r.body");
  EXPECT_EQ(Decide(b, "POST", kPath, "application/json", "").vm, "deny 400 invalid_request a.r.body");
  EXPECT_EQ(Decide(b, "POST", kPath, "application/json", "{\"type\":").vm,
            "deny 400 invalid_request a.r.body");
  EXPECT_EQ(Decide(b, "POST", kPath, "application/json", "{\"text\":\"\xc3\x28\"}").vm,
            "deny 400 invalid_request a.r.body");
  std::string big = R"({"type":"note","text":")" + std::string(300, 'a') + "\"}";
  EXPECT_EQ(Decide(b, "POST", kPath, "application/json", big).vm, "deny 413 invalid_request a.r.body");
}

TEST(SchemaLangPolicy, OtherLimitsAre400) {
  Built b = BuildPolicy(Policy("    body Loose { max_depth = 2 max_items = 2 max_properties = 2 max_string = 4 }"));
  ASSERT_TRUE(b.ok) << b.diags;
  EXPECT_EQ(Decide(b, "POST", kPath, "application/json", R"({"a":1,"b":[1,2]})").vm, "allow");
  for (const char* body : {R"({"b":[[1]]})", R"({"b":[1,2,3]})", R"({"a":1,"b":2,"c":3})",
                           R"({"b":"longer"})"}) {
    EXPECT_EQ(Decide(b, "POST", kPath, "application/json", body).vm, "deny 400 invalid_request a.r.body")
        << body;
  }
}

TEST(SchemaLangPolicy, HostileBodiesAreBoundedDenies) {
  Built b = BuildPolicy(Policy("    body Loose"));
  ASSERT_TRUE(b.ok) << b.diags;
  std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_EQ(Decide(b, "POST", kPath, "application/json", deep).vm, "deny 400 invalid_request a.r.body");
  std::string wide = "[";
  for (int i = 0; i < 20000; ++i) wide += (i ? ",1" : "1");
  wide += "]";
  EXPECT_EQ(Decide(b, "POST", kPath, "application/json", wide).vm, "deny 400 invalid_request a.r.body");
  EXPECT_EQ(Decide(b, "POST", kPath, "application/json", R"({"a":1e999999})").vm,
            "deny 400 invalid_request a.r.body");
  EXPECT_EQ(Decide(b, "POST", kPath, "application/json", std::string("{\"a\":1}\0", 8)).vm,
            "deny 400 invalid_request a.r.body");
  std::string huge(2u << 20, ' ');
  EXPECT_EQ(Decide(b, "POST", kPath, "application/json", huge).vm, "deny 413 invalid_request a.r.body");
}

TEST(SchemaLangPolicy, StrictOverrideAndLabel) {
  Built open = BuildPolicy(Policy("    body Loose"));
  ASSERT_TRUE(open.ok) << open.diags;
  EXPECT_EQ(Decide(open, "POST", kPath, "application/json", R"({"a":1,"zz":2})").vm, "allow");
  Built strict = BuildPolicy(Policy("    new_body: body Loose { strict = true }"));
  ASSERT_TRUE(strict.ok) << strict.diags;
  EXPECT_EQ(Decide(strict, "POST", kPath, "application/json", R"({"a":1,"zz":2})").vm,
            "deny 400 invalid_request a.r.new_body");
  Built loosened = BuildPolicy(Policy("    body NewRecord { strict = false }"));
  ASSERT_TRUE(loosened.ok) << loosened.diags;
  // new_record.json says additionalProperties: false itself.
  EXPECT_EQ(Decide(loosened, "POST", kPath, "application/json", R"({"type":"lab","text":"x","q":1})").vm,
            "deny 400 invalid_request a.r.body");
}

TEST(SchemaLangPolicy, AcceptList) {
  Built b = BuildPolicy(Policy("    body Tiny { accept = [\"text/plain\", \"image/*\"] }"));
  ASSERT_TRUE(b.ok) << b.diags;
  EXPECT_EQ(Decide(b, "POST", kPath, "text/plain; charset=utf-8", "anything").vm, "allow");
  EXPECT_EQ(Decide(b, "POST", kPath, "image/png", "\x89PNG").vm, "allow");
  EXPECT_EQ(Decide(b, "POST", kPath, "text/csv", "a,b").vm, "deny 415 invalid_request a.r.body");
  EXPECT_EQ(Decide(b, "POST", kPath, "application/json", R"({"n":4})").vm,
            "deny 400 invalid_request a.r.body");
  EXPECT_EQ(Decide(b, "POST", kPath, "application/problem+json", R"({"n":3})").vm, "allow");
}

TEST(SchemaLangPolicy, ResponseOutcomesByStatus) {
  Built b = BuildPolicy(Policy("    on response {\n      body 200 Record\n      body 4 Tiny\n      "
                               "body default Comp\n    }",
                               "GET", "/patients/{patient_id}/records/{record_id}"));
  // `body 4 Tiny` is not a status: refused; use the default form only.
  EXPECT_FALSE(b.ok);
  EXPECT_NE(b.diags.find("between 100 and 599"), std::string::npos) << b.diags;
  b = BuildPolicy(Policy("    on response {\n      body 200 Record\n      body 404 Tiny\n      "
                         "body default Comp\n    }",
                         "GET", "/patients/{patient_id}/records/{record_id}"));
  ASSERT_TRUE(b.ok) << b.diags;
  std::string path = "/v1/patients/p-1/records/r-1";
  nlohmann::json rec = {{"id", "r-1"}, {"patient_id", "p-1"}, {"type", "note"}, {"text", "x"},
                        {"author", "bob"}, {"created", "2026-01-01T00:00:00Z"}};
  auto resp = [](int status, const nlohmann::json& body, const std::string& type = "application/json") {
    return nlohmann::json{{"status", status}, {"headers", {{"content-type", type}}}, {"body", body.dump()}};
  };
  nlohmann::json r = resp(200, rec);
  EXPECT_EQ(Decide(b, "GET", path, "", "", &r).vm, "allow");
  nlohmann::json bad = rec;
  bad["created"] = "soon";
  r = resp(200, bad);
  Outcome o = Decide(b, "GET", path, "", "", &r);
  EXPECT_EQ(o.vm, "deny 502 invalid_response a.r.body.200");
  EXPECT_NE(o.description.find("format at /created"), std::string::npos) << o.description;
  r = resp(404, nlohmann::json{{"n", 9}});
  EXPECT_EQ(Decide(b, "GET", path, "", "", &r).vm, "deny 502 invalid_response a.r.body.404");
  r = resp(500, nlohmann::json{{"id", "p"}, {"name", "n"}, {"born", "2000-01-01"}});
  EXPECT_EQ(Decide(b, "GET", path, "", "", &r).vm, "allow");
  r = resp(500, nlohmann::json{{"id", "p"}});
  EXPECT_EQ(Decide(b, "GET", path, "", "", &r).vm, "deny 502 invalid_response a.r.body.default");
  r = resp(200, rec, "text/html");
  EXPECT_EQ(Decide(b, "GET", path, "", "", &r).vm, "deny 502 invalid_response a.r.body.200");
}

TEST(SchemaLangPolicy, ResponseWithoutMatchingStatusIsNotChecked) {
  Built b = BuildPolicy(Policy("    on response { body 200 Tiny }", "GET", "/x"));
  ASSERT_TRUE(b.ok) << b.diags;
  nlohmann::json r = {{"status", 201}, {"body", "not json"}};
  EXPECT_EQ(Decide(b, "GET", "/v1/x", "", "", &r).vm, "allow");
  r = {{"status", 200}, {"headers", {{"content-type", "application/json"}}}, {"body", "{\"n\":1}"}};
  EXPECT_EQ(Decide(b, "GET", "/v1/x", "", "", &r).vm, "allow");
}

TEST(SchemaLangPolicy, OpenApiRouteBinding) {
  std::string text = std::string(kDecls) + R"(
api recs "/v1" {
  body openapi "openapi.yaml" { strict = true }
  route create POST "/patients/{patient_id:Id}/records" {}
  route get GET "/patients/{patient_id:Id}/records/{record_id:Id}" {}
}
shape Id = r"^[a-z0-9-]{1,64}$"
)";
  Built b = BuildPolicy(text);
  ASSERT_TRUE(b.ok) << b.diags;
  EXPECT_EQ(Decide(b, "POST", kPath, "application/json", R"({"type":"note","text":"x"})").vm, "allow");
  EXPECT_EQ(Decide(b, "POST", kPath, "application/json", R"({"type":"note","text":"x","a":1})").vm,
            "deny 400 invalid_request recs.create.body");
  nlohmann::json r = {{"status", 200}, {"headers", {{"content-type", "application/json"}}},
                      {"body", "{\"id\":\"r-1\"}"}};
  EXPECT_EQ(Decide(b, "GET", "/v1/patients/p-1/records/r-1", "", "", &r).vm,
            "deny 502 invalid_response recs.get.body.200");
  // 201 of the POST is a Record too.
  r["status"] = 201;
  EXPECT_EQ(Decide(b, "POST", kPath, "application/json", R"({"type":"note","text":"x"})", &r).vm,
            "deny 502 invalid_response recs.create.body.201");
  std::string dis = bytecode::Disassemble(std::move(bytecode::Parse(b.c->bytes)).value());
  EXPECT_NE(dis.find("CHECK_BODY"), std::string::npos);
  EXPECT_NE(dis.find("openapi:recs.get:200"), std::string::npos) << dis;
}

TEST(SchemaLangPolicy, Diagnostics) {
  ExpectError(Policy("    body Nope"), "p.vakt:9:10: error: unknown schema `Nope`");
  ExpectError(Policy("    body NewRecord\n    body Tiny"), "already has a request `body`");
  ExpectError(Policy("    body 200 Tiny"), "a `body` with a status belongs in `on response`");
  ExpectError(Policy("    on response { body Tiny }"), "a response `body` needs a status");
  ExpectError(Policy("    on response {\n body 200 Tiny\n body 200 Record\n }"),
              "already has a response `body` for 200");
  ExpectError(Policy("    on response { body openapi \"openapi.yaml\" }"), "`body openapi` belongs in the route");
  ExpectError(Policy("    body Tiny { max_depth = 0 }"), "`max_depth` must be an integer from 1 to 256");
  ExpectError(Policy("    body Tiny { max_bytes = \"big\" }"), "`max_bytes` must be an integer");
  ExpectError(Policy("    body Tiny { strict = 1 }"), "`strict` must be `true` or `false`");
  ExpectError(Policy("    body Tiny { accept = \"text/plain\" }"), "`accept` is a list of media types");
  ExpectError(Policy("    body Tiny { accept = [\"application/json\"] }"), "JSON bodies are always validated");
  ExpectError(Policy("    body Tiny { accept = [\"plain\"] }"), "`accept` items are media types");
  ExpectError(Policy("    body Tiny { colour = 1 }"), "unknown body setting `colour`");
  ExpectError(Policy("    body Tiny { loosen strict = false }"), "`loosen` does not apply");
  ExpectError(Policy("    body default Tiny"), "belongs in `on response`");
  ExpectError(Policy("    body often Tiny"), "expected a status or `default`");
  ExpectError(Policy("    body: require true else deny 400\n    body Tiny"), "duplicate rule label `body` in `a.r`");
  ExpectError(Policy("    x: require true else deny 400\n    x: body Tiny"), "duplicate rule label `x` in `a.r`");
  ExpectError(Policy("    body openpi \"openapi.yaml\""), "expected `openapi` before a document name");
  ExpectError(std::string("schema A = \"missing.json\"\n") + Policy(""),
              "p.vakt:1:1: error: schema `main.A`: ");
  ExpectError(std::string("schema B = { \"minLength\": -1 }\n") + Policy(""), "#/minLength");
  ExpectError(std::string("schema C = { \"pattern\": \"(?<=a)\" }\n") + Policy(""), "schema `main.C`: ");
  ExpectError(std::string("schema D = openapi \"openapi.yaml\" \"Nope\"\n") + Policy(""), "Nope");
  ExpectError(std::string("schema E = nopeapi \"openapi.yaml\" \"X\"\n") + Policy(""),
              "expected a file name, `{` or `openapi`");
  ExpectError(std::string("schema F = \"loose.json\" { tight = true }\n") + Policy(""),
              "unknown schema setting `tight`");
  ExpectError(std::string("schema G = \"loose.json\" { strict = 1 }\n") + Policy(""),
              "`strict` must be `true` or `false`");
  ExpectError(std::string("schema Tiny = \"loose.json\"\n") + Policy(""), "`Tiny` is already defined");
  ExpectError(Policy("    body openapi \"openapi.yaml\"", "PUT", "/patients/{id}"),
              "route `a.r` (PUT /v1/patients/{id}) has no operation in `openapi.yaml`");
  ExpectError(Policy("    body openapi \"nope.yaml\""), "cannot read `nope.yaml`");
}

TEST(SchemaLangPolicy, FormatterKeepsInlineJson) {
  std::string text = "schema T = {\"type\": \"object\", \"required\": [\"a\"]} {strict = true}\n"
                     "schema U = \"u.json\"\n"
                     "test \"t\" {\n  request {\"method\": \"GET\"}\n  expect allow\n}\n"
                     "api a \"/v1\" {\n  route r GET \"/x\" {\n    label: body T {max_bytes = 10}\n"
                     "    on response {\n      body 200 T\n      body default U\n    }\n  }\n}\n";
  dsl::SourceFile src{"f.vakt", text};
  dsl::Diagnostics d;
  std::string once = dsl::FormatSource(src, d);
  ASSERT_FALSE(d.HasErrors()) << d.Format();
  EXPECT_NE(once.find("schema T = {\"type\": \"object\", \"required\": [\"a\"]} { strict = true }"),
            std::string::npos)
      << once;
  EXPECT_NE(once.find("test \"t\" {"), std::string::npos) << once;
  EXPECT_NE(once.find("label: body T { max_bytes = 10 }"), std::string::npos) << once;
  dsl::SourceFile again{"f.vakt", once};
  EXPECT_EQ(dsl::FormatSource(again, d), once);
}

// ---------------------------------------------------------------------------
// A body check and `owns request.json.x` on one route share one parse of the
// body (bytecode/vm.cc ParseBody); each keeps its own limits and outcomes.
// Decide() compares the VM with the reference evaluator, which parses twice
// (nlohmann for request.json, CheckBody on the text), description included.

std::string OwnedBodyPolicy(const std::string& settings, bool owns_first) {
  std::string owns = "    owner: owns request.json.patient_id { == params.patient_id }\n";
  std::string body = "    body Loose" + settings + "\n";
  return Policy(owns_first ? owns + body : body + owns);
}

TEST(SchemaLangPolicy, BodyCheckAndOwnsShareOneParse) {
  for (bool owns_first : {false, true}) {
    SCOPED_TRACE(owns_first ? "owns first" : "body first");
    Built b = BuildPolicy(OwnedBodyPolicy(" { max_bytes = 200 }", owns_first));
    ASSERT_TRUE(b.ok) << b.diags;
    EXPECT_EQ(Decide(b, "POST", kPath, "application/json", R"({"a":1,"patient_id":"p-1"})").vm,
              "allow");
    EXPECT_EQ(Decide(b, "POST", kPath, "application/json", R"({"a":1,"patient_id":"p-2"})").vm,
              "deny 403 access_denied a.r.owner");
    // The schema refuses `a`; the owner matches.
    Outcome invalid = Decide(b, "POST", kPath, "application/json", R"({"a":"x","patient_id":"p-1"})");
    EXPECT_EQ(invalid.vm, "deny 400 invalid_request a.r.body");
    EXPECT_EQ(invalid.description.rfind("body: type at /a", 0), 0u) << invalid.description;
    // Malformed, duplicate keys, invalid UTF-8: whichever rule runs first denies.
    const std::string first_deny =
        owns_first ? "deny 403 access_denied a.r.owner" : "deny 400 invalid_request a.r.body";
    for (const std::string& body : {std::string(R"({"patient_id":"p-1",)"),
                                   std::string(R"({"patient_id":"p-1","patient_id":"p-1"})"),
                                   std::string("{\"patient_id\":\"p-1\",\"t\":\"\xc3\x28\"}")}) {
      EXPECT_EQ(Decide(b, "POST", kPath, "application/json", body).vm, first_deny) << body;
    }
    // Over max_bytes (200) but well within request.json's 4 MiB: still 413.
    std::string big = R"({"patient_id":"p-1","s":")" + std::string(300, 'a') + "\"}";
    EXPECT_EQ(Decide(b, "POST", kPath, "application/json", big).vm,
              "deny 413 invalid_request a.r.body");
  }
}

TEST(SchemaLangPolicy, SharedParseKeepsEachReadersDepth) {
  // 70 levels: within the check's max_depth = 100, beyond request.json's 64.
  std::string deep = R"({"patient_id":"p-1","d":)" + std::string(69, '[') + "1" +
                     std::string(69, ']') + "}";
  // 4 levels: beyond the check's max_depth = 3, well within request.json's.
  std::string four = R"({"patient_id":"p-1","d":[[[1]]]})";
  for (bool owns_first : {false, true}) {
    SCOPED_TRACE(owns_first ? "owns first" : "body first");
    Built loose = BuildPolicy(OwnedBodyPolicy(" { max_depth = 100 }", owns_first));
    ASSERT_TRUE(loose.ok) << loose.diags;
    Outcome o = Decide(loose, "POST", kPath, "application/json", deep);
    EXPECT_EQ(o.vm, "deny 403 access_denied a.r.owner");
    EXPECT_EQ(Decide(loose, "POST", kPath, "application/json", four).vm, "allow");
    Built tight = BuildPolicy(OwnedBodyPolicy(" { max_depth = 3 max_string = 10 }", owns_first));
    ASSERT_TRUE(tight.ok) << tight.diags;
    o = Decide(tight, "POST", kPath, "application/json", four);
    EXPECT_EQ(o.vm, "deny 400 invalid_request a.r.body");
    EXPECT_EQ(o.description, "body: over a limit: nesting deeper than 3");
    // Depth is reported before an earlier over-long string, as a parse
    // limited to the check's depth would (owns first: parsed 64 deep).
    o = Decide(tight, "POST", kPath, "application/json",
               R"({"patient_id":"p-1","d":[[[1]]],"s":"longer than ten bytes"})");
    EXPECT_EQ(o.description, "body: over a limit: nesting deeper than 3");
    // Empty arrays add no simdjson level; the check still counts them.
    o = Decide(tight, "POST", kPath, "application/json", R"({"patient_id":"p-1","d":[[[]]]})");
    EXPECT_EQ(o.description, "body: over a limit: nesting deeper than 3");
    EXPECT_EQ(Decide(tight, "POST", kPath, "application/json", R"({"patient_id":"p-1","d":[[]]})").vm,
              "allow");
  }
  // 63 levels are within request.json's limit, 66 are not. (At exactly 64
  // the VM, whose simdjson parse refuses 64 levels, and the reference
  // evaluator, which allows them, disagree, as they did before the parse
  // was shared.)
  Built loose = BuildPolicy(OwnedBodyPolicy(" { max_depth = 100 }", false));
  ASSERT_TRUE(loose.ok) << loose.diags;
  auto nested = [](int levels) {  // the object is one level
    return R"({"patient_id":"p-1","d":)" + std::string(levels - 1, '[') + "1" +
           std::string(levels - 1, ']') + "}";
  };
  EXPECT_EQ(Decide(loose, "POST", kPath, "application/json", nested(63)).vm, "allow");
  EXPECT_EQ(Decide(loose, "POST", kPath, "application/json", nested(66)).vm,
            "deny 403 access_denied a.r.owner");
}

TEST(SchemaLangPolicy, SharedParseSizeLimits) {
  // max_bytes over request.json's 4 MiB: the check passes, request.json does
  // not; and the other way round.
  std::string body = R"({"patient_id":"p-1"})" + std::string((4u << 20) + 10, ' ');
  for (bool owns_first : {false, true}) {
    SCOPED_TRACE(owns_first ? "owns first" : "body first");
    Built big = BuildPolicy(OwnedBodyPolicy(" { max_bytes = 8388608 }", owns_first));
    ASSERT_TRUE(big.ok) << big.diags;
    EXPECT_EQ(Decide(big, "POST", kPath, "application/json", body).vm,
              "deny 403 access_denied a.r.owner");
    Built small = BuildPolicy(OwnedBodyPolicy(" { max_bytes = 100 }", owns_first));
    ASSERT_TRUE(small.ok) << small.diags;
    EXPECT_EQ(Decide(small, "POST", kPath, "application/json", body).vm,
              owns_first ? "deny 403 access_denied a.r.owner" : "deny 413 invalid_request a.r.body");
  }
}

TEST(SchemaLangPolicy, ResponseBodyCheckAndOwnsShareOneParse) {
  for (bool owns_first : {false, true}) {
    SCOPED_TRACE(owns_first ? "owns first" : "body first");
    std::string owns = "      owner: owns response.json.patient_id { == params.patient_id }\n";
    std::string body = "      body 200 Record { max_depth = 3 }\n";
    Built b = BuildPolicy(Policy("    on response {\n" + (owns_first ? owns + body : body + owns) +
                                     "    }",
                                 "GET", "/patients/{patient_id}/records/{record_id}"));
    ASSERT_TRUE(b.ok) << b.diags;
    std::string path = "/v1/patients/p-1/records/r-1";
    nlohmann::json rec = {{"id", "r-1"}, {"patient_id", "p-1"}, {"type", "note"}, {"text", "x"},
                          {"author", "bob"}, {"created", "2026-01-01T00:00:00Z"}};
    auto resp = [](const std::string& text) {
      return nlohmann::json{{"status", 200},
                            {"headers", {{"content-type", "application/json"}}},
                            {"body", text}};
    };
    nlohmann::json r = resp(rec.dump());
    EXPECT_EQ(Decide(b, "GET", path, "", "", &r).vm, "allow");
    nlohmann::json other = rec;
    other["patient_id"] = "p-2";
    r = resp(other.dump());
    EXPECT_EQ(Decide(b, "GET", path, "", "", &r).vm, "deny 403 access_denied a.r.owner");
    r = resp(R"({"patient_id":"p-1")");
    EXPECT_EQ(Decide(b, "GET", path, "", "", &r).vm,
              owns_first ? "deny 403 access_denied a.r.owner" : "deny 502 invalid_response a.r.body.200");
    nlohmann::json deep = rec;
    deep["extra"] = {{"a", {{"b", {1}}}}};
    r = resp(deep.dump());
    Outcome o = Decide(b, "GET", path, "", "", &r);
    EXPECT_EQ(o.vm, "deny 502 invalid_response a.r.body.200");
    EXPECT_EQ(o.description, "response body: over a limit: nesting deeper than 3");
  }
}

TEST(SchemaLangPolicy, ResponseStatusClass) {
  Built b = BuildPolicy(Policy("    on response {\n      body 404 Tiny\n      body 4XX Loose\n"
                               "      body default Record\n    }",
                               "GET", "/x"));
  ASSERT_TRUE(b.ok) << b.diags;
  auto resp = [](int status, const std::string& text) {
    return nlohmann::json{{"status", status},
                          {"headers", {{"content-type", "application/json"}}},
                          {"body", text}};
  };
  nlohmann::json r = resp(404, R"({"n":1})");  // exact 404 first
  EXPECT_EQ(Decide(b, "GET", "/v1/x", "", "", &r).vm, "allow");
  r = resp(403, R"({"a":1})");  // then the class
  EXPECT_EQ(Decide(b, "GET", "/v1/x", "", "", &r).vm, "allow");
  r = resp(403, R"({"a":"x"})");
  EXPECT_EQ(Decide(b, "GET", "/v1/x", "", "", &r).vm, "deny 502 invalid_response a.r.body.4XX");
  r = resp(500, R"({"a":1})");  // then default
  EXPECT_EQ(Decide(b, "GET", "/v1/x", "", "", &r).vm, "deny 502 invalid_response a.r.body.default");
  // `body 4 T` is still not a status, nor is a class outside 1XX..5XX, nor
  // a class outside `on response`.
  ExpectError(Policy("    on response { body 4 Tiny }", "GET", "/x"), "between 100 and 599");
  ExpectError(Policy("    on response { body 6XX Tiny }", "GET", "/x"), "6XX");
  ExpectError(Policy("    body 4XX Tiny"), "a `body` with a status belongs in `on response`");
  ExpectError(Policy("    on response {\n body 4XX Tiny\n body 4XX Loose\n }", "GET", "/x"),
              "already has a response `body` for 4XX");
  std::string text = "schema T = {}\napi a \"/v1\" {\n  route r GET \"/x\" {\n    on response {\n"
                     "      body 4XX T\n    }\n  }\n}\n";
  dsl::SourceFile src{"f.vakt", text};
  dsl::Diagnostics d;
  EXPECT_EQ(dsl::FormatSource(src, d), text) << d.Format();
}

// ---------------------------------------------------------------------------
// Hostile bundles: the verifier and the loader refuse damaged body records
// and schema blobs.

TEST(SchemaLangBundle, CorruptedSectionsAreRefused) {
  Built b = BuildPolicy(Policy("    body NewRecord\n    on response { body 200 Record }"));
  ASSERT_TRUE(b.ok) << b.diags;
  auto good = bytecode::Parse(b.c->bytes);
  ASSERT_TRUE(good.ok());
  ASSERT_TRUE(bytecode::Verify(*good).ok());
  ASSERT_EQ(good->bodies.size(), 2u);
  auto refused = [&](auto mutate, const char* what) {
    bytecode::BundleData d = *good;
    mutate(d);
    std::string bytes = bytecode::Serialize(d);
    auto loaded = bytecode::Bundle::Load(bytes);
    EXPECT_FALSE(loaded.ok()) << what;
    if (!loaded.ok()) {
      EXPECT_EQ(loaded.status().code(), StatusCode::kCorruption) << what;
    }
  };
  refused([](bytecode::BundleData& d) { d.bodies[0].root = 99; }, "root out of range");
  refused([](bytecode::BundleData& d) { d.bodies[0].rule = 9999; }, "rule out of range");
  refused([](bytecode::BundleData& d) { d.bodies[0].accept = 99999; }, "accept out of range");
  refused([](bytecode::BundleData& d) { d.bodies[0].max_depth = 0; }, "zero depth");
  refused([](bytecode::BundleData& d) { d.bodies[0].max_depth = 100000; }, "huge depth");
  refused([](bytecode::BundleData& d) { d.bodies[0].max_bytes = 0; }, "zero bytes");
  refused([](bytecode::BundleData& d) { d.bodies[0].reserved = 1; }, "reserved");
  refused([](bytecode::BundleData& d) { d.bodies[0].response = 2; }, "kind");
  refused([](bytecode::BundleData& d) { d.bodies[1].status = 42; }, "status key");
  refused([](bytecode::BundleData& d) { d.bodies[0].response ^= 1; d.bodies[1].response ^= 1; },
          "request/response swapped");
  refused([](bytecode::BundleData& d) { d.schemas.clear(); }, "no schema set");
  refused([](bytecode::BundleData& d) { d.schemas[0] = 'X'; }, "schema magic");
  refused([](bytecode::BundleData& d) { d.schemas.resize(d.schemas.size() / 2); }, "truncated set");
  refused([](bytecode::BundleData& d) { d.schemas[60] ^= 0x7f; }, "schema table bytes");
  refused(
      [](bytecode::BundleData& d) {
        for (auto& in : d.code) {
          if (in.op == bytecode::Op::kCheckBody) in.c = 77;
        }
      },
      "CHECK_BODY operand");
  refused(
      [](bytecode::BundleData& d) {
        for (auto& in : d.code) {
          if (in.op == bytecode::Op::kCheckBody) in.b = 2;
        }
      },
      "CHECK_BODY group");
  // Every single-byte flip of the two sections either loads or is refused;
  // none crashes (run under ASan in CI).
  for (size_t i = 0; i < good->schemas.size(); i += 7) {
    bytecode::BundleData d = *good;
    d.schemas[i] = static_cast<char>(d.schemas[i] ^ 0x5a);
    (void)bytecode::Bundle::Load(bytecode::Serialize(d));
  }
}

}  // namespace
}  // namespace vakt
