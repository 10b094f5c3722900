// Policy tests: the `test "name" { ... }` blocks written beside a policy.
// Each runs its request (and response) through the compiled bundle on the
// VM, and through the reference evaluator; a test fails if the decision
// differs from its expectation, or if the two evaluators disagree.
#pragma once

#include <string>
#include <vector>

#include "bytecode/revocation.h"
#include "compiler/compile.h"

namespace vakt::compiler {

struct TestOutcome {
  std::string name;
  dsl::Location loc;
  bool passed = false;
  std::string message;     // "expected deny 403 access_denied, got allow" on failure
  bool generated = false;  // made from an ownership rule, not written in a `test` block
  bool skipped = false;    // generated, but could not be built: `message` says why
};

struct PolicyTestOptions {
  // For every clause of every `owns` rule of a common form (the object
  // `==` a claim, `in` a list claim, or `==` / `in` a relation looked up by
  // a claim), run two generated tests after the written ones: the owner is
  // allowed, and another authenticated user with the same scopes is denied
  // with 403 or 404. Each is based on the route's first written test that
  // is allowed (same request and token set-up, only the owner's claims and
  // ids changed), else on a synthesised request. A clause of another form
  // is reported as skipped, with the reason.
  bool generate_ownership = true;
};

// REQUIRES: c.bytes is a bundle built from c (no compile errors).
std::vector<TestOutcome> RunPolicyTests(const Compilation& c,
                                        const PolicyTestOptions& opts = PolicyTestOptions());

// A revocation set from JSON: {"jti": ["id", ...], "sub": {"name": cutoff},
// "client_id": {"name": cutoff}} (cut-offs in unix seconds). Used by test
// `revoke { ... }` items and `vakt eval --revoked FILE`.
Status ParseRevocationsJson(std::string_view json, bytecode::RevocationSet* out);

// "allow" or "deny 403 access_denied" for messages.
std::string DescribeDecision(bool allow, int status, const std::string& error);

}  // namespace vakt::compiler
