// The VM: decides one request (or response) against a loaded Bundle.
//
// The Bundle is immutable and shared; all per-decision state lives in an
// EvalScratch that the caller owns (one per thread) and reuses, so a warm
// decision on the common path allocates nothing on the heap. Programs are
// verified forward-jump code, so evaluation is bounded by the route's cost.
//
// Order of a decision (docs/language.md, "Combining"):
//   1. Normalise the target (request.h); refusal -> 400/414/431
//      (rule "vakt.request", error "invalid_request").
//   2. Match the route: unknown path or method, or a parameter whose shape
//      does not match -> 404 (rule "vakt.route", error "not_found").
//   3. Run the route's request program: the first unmet requirement denies
//      with its status, error and message. An evaluation error (missing
//      value, JSON of the wrong type, overflow, scratch exhausted) denies
//      with the current rule's status and error: fail closed.
//   4. For a response, the route's response program, likewise.
// Evaluation never throws.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <simdjson.h>

#include "bytecode/bundle.h"
#include "bytecode/claims.h"
#include "bytecode/fapi_auth.h"
#include "bytecode/request.h"

namespace vakt::bytecode {

struct DecisionHeader {
  std::string_view name;
  std::string_view value;
};

struct Decision {
  bool allow = false;
  uint16_t status = 0;           // 200 on allow
  std::string_view error;        // "" on allow or when the rule has none
  std::string_view description;  // human-readable
  std::string_view rule;         // deciding rule id ("" on allow with no rules)
  std::string_view route;        // matched route name ("" if none)
  // WWW-Authenticate (up to two challenges), DPoP-Nonce, x-fapi-interaction-id.
  std::array<DecisionHeader, 4> headers{};
  uint8_t header_count = 0;
};

// Decision as the JSON documented for `vakt eval`:
// {"decision","status","error","error_description","rule","route","headers"}.
std::string DecisionToJson(const Decision& d);

// Per-thread reusable evaluation state. Not thread-safe; reuse across
// decisions. Strings in a Decision point into the Bundle or into this
// scratch and stay valid until the scratch is used again.
class EvalScratch {
 public:
  EvalScratch();
  ~EvalScratch();
  EvalScratch(const EvalScratch&) = delete;
  EvalScratch& operator=(const EvalScratch&) = delete;

  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// Decides `req` with `claims` standing for an already verified token (tests,
// `vakt eval`). `claims` may be null (no token: every claim is absent). On a
// route that uses `fapi2`, transport, token placement and scopes are still
// checked, and null claims deny with 401 and the route's challenges.
Decision DecideRequest(const Bundle& bundle, const HttpRequest& req,
                       const ClaimsProvider* claims, EvalScratch& scratch);

// Decides `req` as an agent does: on a route that uses `fapi2`, the
// request's own access token and DPoP proof or client certificate are
// authenticated (fapi_auth.h) with `env`'s caches, and `token.*` reads the
// verified claims. Routes without `fapi2` see no claims. *token (if given)
// receives the verified token when authentication succeeded (null
// otherwise), to decide the response with (DecideResponse(...,
// token->claims.get(), ...)).
Decision Decide(const Bundle& bundle, const HttpRequest& req, const AuthEnv& env,
                EvalScratch& scratch, std::shared_ptr<const VerifiedToken>* token = nullptr);

// Decides a response to `req`: routes again, runs the response program.
// A route without response rules allows.
Decision DecideResponse(const Bundle& bundle, const HttpRequest& req,
                        const ClaimsProvider* claims, const HttpResponse& resp,
                        EvalScratch& scratch);

}  // namespace vakt::bytecode
