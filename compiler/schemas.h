// Schema declarations of a policy -> the bundle's JSON Schema set. One stage:
// every `schema NAME = ...` declaration (a JSON Schema file, inline JSON, or
// an OpenAPI component) and every `body openapi "doc.yaml"` binding of a
// route is compiled by compiler/schema_compile.h into one SchemaSet blob.
// Files are read through the policy's AssetReader (relative to the .vakt
// file that names them, $ref'd files relative to the referring file), so the
// control plane can serve them and every file read is part of the source
// digest. Engine errors (file and JSON pointer) are reported at the
// declaration's location; analysis goes on after an error.
//
// An OpenAPI binding matches the route's method and path template against
// the document's path keys (parameter names ignored: `/a/{x}` is `/a/{id}`),
// first with the api's base path, then without it. The request body's
// application/json schema and each response's (by status code, "4XX"-style
// ranges and "default") become schemas named
// `openapi:ROUTE:request` / `openapi:ROUTE:STATUS`.
//
// Bounds: those of SchemaCompiler (document bytes, documents, depth, nodes).
// Tested by tests/schema_lang_test.cc.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "compiler/lower.h"
#include "compiler/schema_compile.h"
#include "dsl/source.h"

namespace vakt::compiler {

struct SchemaDecl {
  enum class Kind : uint8_t { kFile, kInline, kOpenApi };
  std::string name;
  Kind kind = Kind::kFile;
  std::string source;     // kFile/kOpenApi: the file as written; kInline: JSON text
  std::string component;  // kOpenApi: components/schemas/COMPONENT
  SchemaOptions options;
  dsl::Location loc;      // of the declaration (file: the naming .vakt file)
};

// `body openapi "doc.yaml"` on a route (or inherited from its api).
struct OpenApiBinding {
  std::string route;          // "records.create_record": names the schemas
  std::string method;         // "POST"
  std::string path_template;  // the route's template without the base path,
                              // shapes removed: "/patients/{patient_id}"
  std::string base_path;      // "/v1" ("" or "/" for none)
  std::string document;       // as written, relative to loc.file
  SchemaOptions options;
  dsl::Location loc;
};

// Status keys of a response body check: an exact status 100..599, a class
// 1..5 ("4XX"), or kDefaultStatus ("default": any other status).
inline constexpr uint16_t kDefaultStatus = 0;

struct BoundBodies {
  bool has_request = false;
  std::string request_schema;                            // schema name
  std::vector<std::pair<uint16_t, std::string>> responses;  // (status key, schema name)
};

struct SchemaBuild {
  std::string blob;  // serialized SchemaSet; empty when nothing is declared
  std::map<std::string, uint32_t> roots;          // schema name -> root index
  std::vector<BoundBodies> bindings;              // one per OpenApiBinding, in order
};

// Compiles `decls` and `bindings`. Duplicate names, unreadable files and
// every engine error are diagnostics (diags.HasErrors() then: do not use the
// result). `read_asset` may be empty: naming a file is then an error.
SchemaBuild CompileSchemas(const std::vector<SchemaDecl>& decls,
                           const std::vector<OpenApiBinding>& bindings,
                           const AssetReader& read_asset, dsl::Diagnostics& diags);

// A route template as an OpenAPI path key: `{name:Shape}` -> `{name}`.
std::string OpenApiPathOf(const std::string& route_template);

}  // namespace vakt::compiler
