// Route table: builds the dispatch trie of format.h from the lowered routes
// and rejects what would make dispatch ambiguous (two shapes for one
// parameter position). Dispatch is one hash probe per path segment, literal
// segments before the parameter child, no backtracking: O(path length)
// whatever the number of routes.
#pragma once

#include "bytecode/bundle.h"
#include "compiler/ir.h"
#include "compiler/tables.h"
#include "dsl/source.h"

namespace vakt::compiler {

// Fills data.nodes/edges/methods and data.params (route i's parameters are
// written at data.routes[i].first_param, which this sets along with
// param_count). REQUIRES: data.routes has one record per program route.
// Returns false after reporting conflicts to diags.
bool BuildRouteTable(const IrProgram& prog, Tables& tables, bytecode::BundleData& data,
                     dsl::Diagnostics& diags);

}  // namespace vakt::compiler
