// Code generation: typed IR -> BundleData (tables, rules, routes, trie and
// the straight-line programs of format.h). Each requirement becomes
//   <condition>; REQUIRE r
// and each program ends in ALLOW. `&&`/`||` short-circuit with forward
// jumps only. The worst-case cost of a route is its instruction count
// (every instruction runs at most once); a route over the budget is an
// error, as is an expression deeper than the VM stack.
#pragma once

#include <cstdint>
#include <string>

#include "bytecode/bundle.h"
#include "compiler/ir.h"
#include "dsl/source.h"

namespace vakt::compiler {

inline constexpr uint32_t kDefaultRouteBudget = 4096;
inline constexpr const char* kCompilerVersion = "vakt 0.1.0";

struct CodegenOptions {
  uint32_t route_budget = kDefaultRouteBudget;
};

// Returns false after reporting errors. data.source_digest and name are
// left to the caller.
bool Generate(const IrProgram& prog, const CodegenOptions& opts, bytecode::BundleData& data,
              dsl::Diagnostics& diags);

}  // namespace vakt::compiler
