// Semantic analysis: AST files -> typed IR (compiler/ir.h). One stage:
// packages and imports are resolved, names bound, types checked, functions,
// `let` and `const` inlined, profiles expanded into every route that uses
// them, route templates parsed and shapes validated (RE2). Every problem is
// reported with its location; analysis goes on after an error so a user sees
// all of them at once.
//
// Bounds: inlining depth is limited (kMaxInlineDepth) and recursion between
// functions, constants or profiles is an error, so lowering terminates on
// any input.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "bytecode/status.h"

#include "compiler/ir.h"
#include "dsl/ast.h"
#include "dsl/source.h"

namespace vakt::compiler {

inline constexpr int kMaxInlineDepth = 32;
// Expression nodes lowering may create in all (after inlining).
inline constexpr size_t kMaxIrNodes = 4u << 20;

// Reads a file a policy names (an issuer's `jwks`), given as written,
// relative to the directory of the .vakt file `from`. The compiler driver
// reads the disk; the control plane serves files sent with the sources.
using AssetReader =
    std::function<Result<std::string>(const dsl::SourceFile& from, const std::string& path)>;

inline constexpr size_t kMaxAssetBytes = 1u << 20;  // a JWKS file
// A relation file (`relation NAME: T = "file.json"`); also the most the
// default AssetReader reads. Each kind of file is checked against its own
// limit when it is used.
inline constexpr size_t kMaxRelationFileBytes = 64u << 20;

// Lowers every api/route of `files` into one IrProgram named `name`.
// On errors (diags.HasErrors()) the program is incomplete and must not be
// used for code generation. `read_asset` may be empty: naming a file is then
// an error.
IrProgram Lower(const std::vector<const dsl::ast::File*>& files, const std::string& name,
                dsl::Diagnostics& diags, const AssetReader& read_asset = {});

// The RE2 pattern behind a built-in parameter shape ("int", "uuid"), or
// nullptr if `name` is not a built-in shape. "any" and "string" have none.
const char* BuiltinShape(const std::string& name);

}  // namespace vakt::compiler
