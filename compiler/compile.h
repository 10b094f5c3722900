// The compiler driver: files and directories -> sources -> AST -> IR ->
// bundle bytes. Used by the `vakt` CLI, the policy test runner and (later)
// the control plane, so it reads nothing but what it is given.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "bytecode/bundle.h"
#include "compiler/codegen.h"
#include "compiler/ir.h"
#include "compiler/lower.h"
#include "dsl/ast.h"
#include "dsl/source.h"

namespace vakt::compiler {

// The inputs of one compilation. Paths are display paths: for a directory
// argument, "DIR/relative/path.vakt"; the source digest uses paths relative
// to the argument so the bundle does not depend on the working directory.
struct SourceSet {
  std::vector<std::unique_ptr<dsl::SourceFile>> files;
  std::vector<std::string> digest_names;  // parallel to files
};

// Expands files and directories (recursively, `*.vakt`, sorted) and reads
// them. Unreadable or missing paths are reported to diags.
void LoadSources(const std::vector<std::string>& paths, SourceSet& out, dsl::Diagnostics& diags);

// Adds an in-memory source (tests, the control plane's publish RPC).
void AddSource(SourceSet& set, std::string path, std::string text);

inline constexpr size_t kMaxParseThreads = 8;

struct CompileOptions {
  std::string name;  // bundle name; "" = the package name of the first api
  CodegenOptions codegen;
  // Reads files the policy names (an issuer's `jwks`). Empty: the disk,
  // relative to the directory of the naming .vakt file.
  AssetReader read_asset;
};

// The default AssetReader: `path` relative to the directory of `from`
// (absolute paths as they are), at most kMaxRelationFileBytes (the largest
// kind of asset; a JWKS is held to kMaxAssetBytes where it is used).
Result<std::string> ReadAssetFromDisk(const dsl::SourceFile& from,
                                                const std::string& path);

struct Compilation {
  std::vector<std::unique_ptr<dsl::ast::File>> files;  // parsed, in SourceSet order
  IrProgram ir;
  bytecode::BundleData data;
  std::string bytes;  // the serialized bundle; empty when there were errors
  // Files the policy read (path as written, contents), in reading order;
  // part of the source digest.
  std::vector<std::pair<std::string, std::string>> assets;
};

// Compiles `sources`. Diagnostics are sorted; on any error `bytes` is empty.
std::unique_ptr<Compilation> Compile(const SourceSet& sources, const CompileOptions& opts,
                                     dsl::Diagnostics& diags);

}  // namespace vakt::compiler
