// The reference evaluator: decides a request by walking the typed IR tree
// directly, with nlohmann::json for claims and a linear scan for routing.
// Slow and simple on purpose: it is the oracle the VM is checked against in
// the differential tests (after re2's tester.h), and `vakt test` runs it
// beside the VM on every policy test.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "bytecode/request.h"
#include "compiler/ir.h"

namespace vakt::compiler {

struct RefDecision {
  bool allow = false;
  int status = 0;
  std::string error;
  std::string rule;
  std::string route;
  std::string detail;  // evaluation error text, if any
};

// `claims` is null when there is no token. `resp` is null to decide the
// request only; otherwise the request must pass and the response program
// decides.
RefDecision RefEvaluate(const IrProgram& prog, const bytecode::HttpRequest& req,
                        const nlohmann::json* claims, const bytecode::HttpResponse* resp);

}  // namespace vakt::compiler
