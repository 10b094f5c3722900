// OpenAPI 3.0 / 3.1 documents (JSON or YAML) as a source of JSON Schemas:
// the document becomes JSON text (YAML through yaml-cpp: plain scalars are
// typed as YAML 1.2's core schema says, quoted ones are strings), and a
// selector (components/schemas/NAME, or an operation's application/json
// request body or response by status code) becomes the JSON pointer of the
// schema inside it. Requests bodies, responses and media types that are
// `$ref`s to components are followed (bounded). The schema dialect of 3.0
// (nullable, boolean exclusiveMinimum/Maximum, $ref siblings ignored) is
// handled by compiler/schema_compile.cc. Tested by tests/schema_test.cc
// (SchemaOpenApi.*).
#pragma once

#include <string>

#include "bytecode/status.h"
#include "compiler/schema_compile.h"

namespace vakt::compiler {

struct OpenApiDocument {
  std::string json_text;  // the whole document as JSON
  bool v30 = false;       // OpenAPI 3.0.x (else 3.1.x)
};

// YAML text -> JSON text (plain scalars typed by the YAML 1.2 core schema,
// number literals kept as written). `display` names the text in errors.
Result<std::string> YamlToJsonText(const std::string& display, const std::string& text);

// Whether text starts (after white space) with `{` or `[`: JSON, not YAML.
bool LooksLikeJson(const std::string& text);

// `display` names the document in errors.
Result<OpenApiDocument> ParseOpenApi(const std::string& display, const std::string& text);

// The escaped JSON pointer ("/components/schemas/Record") of the selected
// schema in `doc`.
Result<std::string> FindOpenApiSchema(const std::string& display, const OpenApiDocument& doc,
                                      const OpenApiSelector& sel);

}  // namespace vakt::compiler
