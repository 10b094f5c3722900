// OpenAPI 3.0 and 3.1 documents, in JSON and YAML, as sources of schemas:
// components, request bodies and responses by status (exact, range,
// default), $ref between OpenAPI objects, and the 3.0 dialect (nullable,
// boolean exclusiveMinimum/Maximum, $ref siblings ignored).
#include <gtest/gtest.h>

#include <map>

#include "bytecode/schema.h"
#include "compiler/openapi.h"
#include "compiler/schema_compile.h"

namespace vakt {
namespace {

using compiler::OpenApiSelector;
using compiler::SchemaCompiler;

const char* kYaml30 = R"(openapi: 3.0.3
info: {title: records, version: "1"}
paths:
  /records/{id}:
    get:
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Record'}
        4XX:
          $ref: '#/components/responses/Problem'
    post:
      requestBody:
        $ref: '#/components/requestBodies/NewRecord'
      responses:
        default:
          description: any
          content:
            application/problem+json:
              schema: {type: object, required: [title]}
components:
  requestBodies:
    NewRecord:
      content:
        application/json; charset=utf-8:
          schema:
            type: object
            required: [text]
            properties:
              text: {type: string, minLength: 1}
              score: {type: number, minimum: 0, exclusiveMinimum: true, maximum: 10}
  responses:
    Problem:
      description: problem
      content:
        application/json:
          schema: {type: object, required: [title], properties: {title: {type: string}}}
  schemas:
    Record:
      type: object
      required: [id, patient_id]
      properties:
        id: {type: string}
        patient_id: {type: string, pattern: '^p-[0-9]+$'}
        note: {type: string, nullable: true}
        kind: {type: string, enum: [a, b], nullable: true}
        version: {type: integer}
        flag: {type: boolean}
        zip: {type: string}
        ref_with_sibling: {$ref: '#/components/schemas/Id', description: ignored, minLength: 99}
    Id: {type: string, minLength: 2}
)";

const char* kJson31 = R"({
  "openapi": "3.1.0",
  "info": {"title": "t", "version": "1"},
  "paths": {"/patients": {"post": {
    "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Patient"}}}},
    "responses": {"201": {"description": "created", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Patient"}}}}}}}},
  "components": {"schemas": {
    "Patient": {"type": "object", "required": ["name"],
                "properties": {"name": {"type": "string"}, "nick": {"type": ["string", "null"]},
                               "age": {"type": "integer", "exclusiveMinimum": 0},
                               "ids": {"type": "array", "prefixItems": [{"const": "nin"}]},
                               "addr": {"$ref": "#/components/schemas/Address", "description": "kept"}}},
    "Address": {"type": "object", "properties": {"zip": {"type": "string", "pattern": "^[0-9]{4}$"}}}}}})";

std::shared_ptr<const bytecode::SchemaSet> Load(SchemaCompiler& sc) {
  auto bytes = sc.Build();
  EXPECT_TRUE(bytes.ok()) << bytes.status().ToString();
  if (!bytes.ok()) return nullptr;
  auto set = bytecode::SchemaSet::Load(*bytes);
  EXPECT_TRUE(set.ok());
  return set.ok() ? *set : nullptr;
}

bool Valid(const bytecode::SchemaSet& set, const std::string& name, const std::string& doc) {
  bytecode::ValidationScratch scratch;
  auto root = set.FindRoot(name);
  EXPECT_TRUE(root.has_value()) << name;
  auto r = bytecode::Validate(set, *root, doc, {}, scratch);
  return r.valid();
}

TEST(SchemaOpenApi, Yaml30ComponentsBodiesResponses) {
  SchemaCompiler sc;
  Status st = sc.AddOpenApiText("Record", "api.yaml", kYaml30, OpenApiSelector{"Record", "", "", 0}, {});
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_TRUE(sc.AddOpenApiText("new", "api.yaml", kYaml30, {"", "POST", "/records/{id}", 0}, {}).ok());
  ASSERT_TRUE(sc.AddOpenApiText("get200", "api.yaml", kYaml30, {"", "get", "/records/{id}", 200}, {}).ok());
  ASSERT_TRUE(sc.AddOpenApiText("get404", "api.yaml", kYaml30, {"", "get", "/records/{id}", 404}, {}).ok());
  ASSERT_TRUE(sc.AddOpenApiText("post500", "api.yaml", kYaml30, {"", "post", "/records/{id}", 500}, {}).ok());
  auto set = Load(sc);
  ASSERT_TRUE(set);
  EXPECT_TRUE(Valid(*set, "Record", R"({"id": "r1", "patient_id": "p-1", "note": null, "kind": null, "ref_with_sibling": "ab"})"));
  EXPECT_FALSE(Valid(*set, "Record", R"({"id": "r1", "patient_id": "x-1"})"));
  EXPECT_FALSE(Valid(*set, "Record", R"({"id": "r1", "patient_id": "p-1", "kind": "c"})"));
  EXPECT_FALSE(Valid(*set, "Record", R"({"id": "r1", "patient_id": "p-1", "ref_with_sibling": "a"})"));
  EXPECT_FALSE(Valid(*set, "Record", R"({"id": 1, "patient_id": "p-1"})"));
  EXPECT_TRUE(Valid(*set, "get200", R"({"id": "r1", "patient_id": "p-2"})"));
  EXPECT_TRUE(Valid(*set, "new", R"({"text": "hi", "score": 10})"));
  EXPECT_FALSE(Valid(*set, "new", R"({"text": "hi", "score": 0})"));  // exclusiveMinimum: true
  EXPECT_FALSE(Valid(*set, "new", R"({"text": ""})"));
  EXPECT_TRUE(Valid(*set, "get404", R"({"title": "gone"})"));
  EXPECT_FALSE(Valid(*set, "get404", R"({})"));
  EXPECT_FALSE(Valid(*set, "post500", R"({})"));  // default, application/problem+json
}

TEST(SchemaOpenApi, Json31AndStrict) {
  SchemaCompiler sc;
  compiler::SchemaOptions strict;
  strict.strict = true;
  ASSERT_TRUE(sc.AddOpenApiText("Patient", "api.json", kJson31, {"Patient", "", "", 0}, {}).ok());
  ASSERT_TRUE(sc.AddOpenApiText("create", "api.json", kJson31, {"", "post", "/patients", 0}, strict).ok());
  ASSERT_TRUE(sc.AddOpenApiText("created", "api.json", kJson31, {"", "post", "/patients", 201}, {}).ok());
  auto set = Load(sc);
  ASSERT_TRUE(set);
  EXPECT_TRUE(Valid(*set, "Patient", R"({"name": "a", "nick": null, "age": 1, "ids": ["nin", 5], "addr": {"zip": "0150"}})"));
  EXPECT_FALSE(Valid(*set, "Patient", R"({"name": "a", "age": 0})"));
  EXPECT_FALSE(Valid(*set, "Patient", R"({"name": "a", "addr": {"zip": "15"}})"));
  EXPECT_TRUE(Valid(*set, "Patient", R"({"name": "a", "admin": true})"));
  EXPECT_FALSE(Valid(*set, "create", R"({"name": "a", "admin": true})"));
  EXPECT_FALSE(Valid(*set, "create", R"({"name": "a", "addr": {"zip": "0150", "x": 1}})"));
  EXPECT_TRUE(Valid(*set, "create", R"({"name": "a", "addr": {"zip": "0150"}})"));
  EXPECT_TRUE(Valid(*set, "created", R"({"name": "a", "admin": true})"));
}

TEST(SchemaOpenApi, YamlScalarsAndErrors) {
  auto doc = compiler::ParseOpenApi("a.yaml", "openapi: 3.1.0\nx: [1, +2, .5, 1., 007, \"3\", yes, ~, true, 1e3, 0x1F]\n");
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  EXPECT_NE(doc->json_text.find("[1,2,0.5,1.0,7,\"3\",\"yes\",null,true,1e3,\"0x1F\"]"), std::string::npos)
      << doc->json_text;
  EXPECT_FALSE(doc->v30);
  EXPECT_EQ(compiler::ParseOpenApi("a.yaml", "swagger: '2.0'\n").status().message(),
            "a.yaml: #/openapi: not an OpenAPI document (no `openapi` version string)");
  EXPECT_EQ(compiler::ParseOpenApi("a.yaml", "openapi: 2.0.0\n").status().message(),
            "a.yaml: #/openapi: version `2.0.0` is not 3.0 or 3.1");
  EXPECT_NE(compiler::ParseOpenApi("a.yaml", "openapi: [\n").status().message().find("a.yaml:"), std::string::npos);
  SchemaCompiler sc;
  EXPECT_EQ(sc.AddOpenApiText("x", "api.yaml", kYaml30, {"Nope", "", "", 0}, {}).message(),
            "api.yaml: #/components/schemas/Nope: no such component schema");
  EXPECT_EQ(sc.AddOpenApiText("x", "api.yaml", kYaml30, {"", "put", "/records/{id}", 0}, {}).message(),
            "api.yaml: #/paths/~1records~1{id}/put: no operation `put /records/{id}`");
  EXPECT_EQ(sc.AddOpenApiText("x", "api.yaml", kYaml30, {"", "get", "/records/{id}", 0}, {}).message(),
            "api.yaml: #/paths/~1records~1{id}/get: the operation has no requestBody");
  EXPECT_EQ(sc.AddOpenApiText("x", "api.yaml", kYaml30, {"", "get", "/nope", 200}, {}).message(),
            "api.yaml: #/paths/~1nope: no path `/nope`");
  EXPECT_EQ(sc.AddOpenApiText("x", "api.yaml", kYaml30, {"", "get", "/records/{id}", 500}, {}).message(),
            "api.yaml: #/paths/~1records~1{id}/get/responses: no response for status 500");
  // A schema error inside an OpenAPI document names the pointer in it.
  std::string bad = std::string(kYaml30) + "    Bad: {type: object, properties: {a: {minLength: -1}}}\n";
  EXPECT_EQ(sc.AddOpenApiText("x", "bad.yaml", bad, {"Bad", "", "", 0}, {}).message(),
            "bad.yaml: #/components/schemas/Bad/properties/a/minLength: must be a non-negative integer");
}

TEST(SchemaOpenApi, ExternalYamlFilesKeepTheDialect) {
  std::map<std::string, std::string> files = {
      {"api/openapi.yaml",
       "openapi: 3.0.1\ninfo: {title: t, version: '1'}\npaths: {}\ncomponents:\n  schemas:\n"
       "    Visit:\n      type: object\n      properties:\n        note: {$ref: 'common/note.yaml#/Note'}\n"},
      {"api/common/note.yaml", "Note:\n  type: string\n  nullable: true\n  maxLength: 3\n"}};
  SchemaCompiler sc([&](const std::string& from, const std::string& path) -> Result<std::string> {
    std::string key = from.empty() ? path : from.substr(0, from.rfind('/') + 1) + path;
    auto it = files.find(key);
    if (it == files.end()) return NotFound("no " + key);
    return it->second;
  });
  Status st = sc.AddOpenApi("Visit", "api/openapi.yaml", {"Visit", "", "", 0}, {});
  ASSERT_TRUE(st.ok()) << st.ToString();
  auto set = Load(sc);
  ASSERT_TRUE(set);
  EXPECT_TRUE(Valid(*set, "Visit", R"({"note": null})"));
  EXPECT_TRUE(Valid(*set, "Visit", R"({"note": "abc"})"));
  EXPECT_FALSE(Valid(*set, "Visit", R"({"note": "abcd"})"));
}

}  // namespace
}  // namespace vakt
