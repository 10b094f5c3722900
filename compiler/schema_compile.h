// JSON Schema (draft 2020-12) and OpenAPI 3.0/3.1 schemas -> the compact
// tables of a bytecode::SchemaSet (format.h, "JSON Schema tables").
//
// Every schema is added under a name (the policy refers to it by name) from
// JSON text, a JSON file or an OpenAPI document; Build() serializes the set.
// $ref, $anchor, $dynamicAnchor and $id are resolved here, at build time:
// local refs (`#/json/pointer`, `#anchor`, `$id`-relative) and file refs
// (relative to the referring file), read through a SchemaReader so the
// control plane can serve files from memory. A reference cycle compiles to a
// cyclic node graph (a recursive schema), never an infinite compile.
//
// Errors name the file and the JSON pointer inside it:
//   record.json: #/properties/text/minLength: must be a non-negative integer
// A pattern RE2 cannot run is an error naming the pattern; unknown keywords
// are ignored (as the specification says), but an unknown `format` under
// format assertion is an error.
//
// Strict mode (mass-assignment protection): every schema applied to a value
// by position (the root, properties, items, additionalProperties, ... but not
// an in-place applicator such as allOf/anyOf/oneOf/if/then/else/$ref or
// dependentSchemas) that describes an object (`type` includes "object", or it
// has properties or patternProperties, counting everything reachable through
// in-place applicators) and in whose in-place closure no schema says
// additionalProperties or unevaluatedProperties, refuses any member that
// nothing in that closure evaluated, as if it said
// `unevaluatedProperties: false`. Saying `additionalProperties: true`
// keeps a free-form object open.
//
// Bounds: kMaxSchemaDocumentBytes per document, kMaxSchemaDocuments
// documents, kMaxSchemaCompileDepth nesting, kMaxCompiledNodes nodes.
// Tested by tests/schema_test.cc and tests/schema_suite_test.cc.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "bytecode/status.h"

namespace vakt::compiler {

// Reads the file `path` named by a $ref in `from_file` ("" for inline text).
// `path` is the reference as written when it is relative, else an absolute
// URI ("file:///...", "http://...").
using SchemaReader =
    std::function<Result<std::string>(const std::string& from_file, const std::string& path)>;

inline constexpr size_t kMaxSchemaDocumentBytes = 8u << 20;
inline constexpr size_t kMaxSchemaDocuments = 256;
inline constexpr int kMaxSchemaCompileDepth = 200;

// Maximum bracket nesting of JSON text (strings skipped), checked against
// kMaxSchemaCompileDepth before nlohmann parses a schema or OpenAPI text.
size_t JsonNesting(const std::string& t);
inline constexpr size_t kMaxCompiledNodes = 200000;

// The disk: a relative path is taken relative to the directory of
// `from_file`; file:// URIs are read; any other scheme is refused.
SchemaReader DiskSchemaReader();

struct SchemaOptions {
  bool strict = false;            // see above
  bool format_assertion = false;  // `format` asserts (nine formats) instead of annotating
};

// What an OpenAPI schema is taken from.
struct OpenApiSelector {
  std::string component;    // components/schemas/NAME; or else:
  std::string method;       // "post" (any case)
  std::string path;         // "/records/{id}" as written under paths
  int status = 0;           // 0: the request body; else the response for this status
                            // (falling back to "4XX"-style ranges, then "default")
};

class SchemaCompiler {
 public:
  explicit SchemaCompiler(SchemaReader reader = DiskSchemaReader());
  ~SchemaCompiler();
  SchemaCompiler(const SchemaCompiler&) = delete;
  SchemaCompiler& operator=(const SchemaCompiler&) = delete;

  // `display` names the text in errors and schema locations.
  Status AddJsonText(const std::string& name, const std::string& text,
                     const SchemaOptions& opts, const std::string& display = "");
  Status AddFile(const std::string& name, const std::string& path, const SchemaOptions& opts);
  // OpenAPI 3.0 or 3.1, JSON or YAML (compiler/openapi.h).
  Status AddOpenApi(const std::string& name, const std::string& path, const OpenApiSelector& sel,
                    const SchemaOptions& opts);
  Status AddOpenApiText(const std::string& name, const std::string& display,
                        const std::string& text, const OpenApiSelector& sel,
                        const SchemaOptions& opts);

  // The serialized SchemaSet (bytecode::SchemaSet::Load reads it).
  Result<std::string> Build() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace vakt::compiler
