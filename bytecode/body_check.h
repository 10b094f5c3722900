// Body checks: a route's request body, or its response body for one status,
// validated against a compiled JSON Schema (bytecode/schema.h). The VM and the
// reference evaluator (compiler/interp.cc) both decide a body check here, so
// the content-type rules, the limits and the mapping of a validation outcome
// to a deny (status, error code, description) exist once.
//
// Outcomes (docs/language.md, "Request and response bodies"):
//   request:  content type not JSON and not accepted -> 415 invalid_request;
//             accepted other type -> not checked; missing or empty body ->
//             400; over max_bytes -> 413; any other limit, malformed JSON,
//             duplicate keys, invalid UTF-8 or a schema failure -> 400
//             invalid_request.
//   response: any failure (content type included) -> 502 invalid_response.
// The description names the failing keyword and JSON pointer, e.g.
// "body: minLength at /text: string is shorter than 1".
//
// Bounds: the work is Validate()'s: linear in the body (at most max_bytes)
// and at most max_evaluations subschema applications. With a SharedBodyParse
// the body is not parsed again unless the shared parse failed (a malformed
// body may be parsed twice, never more). A valid body allocates
// nothing once the scratch is warm; a failing one allocates its description.
// Tested by tests/schema_lang_test.cc.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "bytecode/schema.h"

namespace vakt::bytecode {

// A media type's essence ("application/json"), lower-cased: the text before
// any ';', with optional white space trimmed. "" when it is not type/subtype.
std::string MediaTypeEssence(std::string_view content_type);

// application/json or application/<anything>+json, any parameters.
bool IsJsonMediaType(std::string_view content_type);

// Whether `content_type` is one of `accept`: a list of media types separated
// by ',' ("text/plain,application/octet-stream"), each an exact essence or
// "type/*". Case-insensitive; parameters of `content_type` ignored.
bool MediaTypeAccepted(std::string_view content_type, std::string_view accept);

enum class BodyVerdict : uint8_t {
  kValid = 0,        // validated
  kSkipped,          // a content type the check accepts unchecked
  kUnsupportedType,  // not JSON, not accepted: 415 (request), 502 (response)
  kMissing,          // no body or an empty one: 400 / 502
  kTooLarge,         // over max_bytes: 413 / 502
  kOverLimit,        // another limit: 400 / 502
  kMalformed,        // not JSON (syntax, UTF-8, duplicate keys): 400 / 502
  kInvalid,          // the schema refuses it: 400 / 502
};

const char* BodyVerdictName(BodyVerdict v);

// One check as the VM runs it (decoded from format.h's BodyRecord).
struct BodyCheckSpec {
  uint32_t root = 0;            // schema root in the bundle's SchemaSet
  bool response = false;        // false: the request body
  ValidationLimits limits;      // max_body_bytes .. max_string_bytes
  std::string_view accept;      // other media types let through unchecked
};

struct BodyCheckResult {
  BodyVerdict verdict = BodyVerdict::kValid;
  uint16_t status = 0;          // the deny status (0 when allowed)
  const char* error = "";       // "invalid_request" / "invalid_response"
  std::string description;      // "body: minLength at /text: ..."

  bool allowed() const {
    return verdict == BodyVerdict::kValid || verdict == BodyVerdict::kSkipped;
  }
};

// Response checks are keyed by status: an exact status (100..599), a class
// (1..5, "4XX"), or 0 ("default": any status no other key names). Returns
// the index in `keys` of the check that applies to `status` (exact before
// class before default), or -1 when none does (the body is not checked).
int SelectResponseCheck(int status, std::span<const uint16_t> keys);

// A parse of the body that another reader shares: the VM parses a body once
// per decision for both `request.json` (or `response.json`) and the body
// check. CheckBody asks for it only when it is about to validate (the content
// type is JSON, the body is not empty and within max_bytes).
class SharedBodyParse {
 public:
  // The body as parsed by simdjson with a max_depth of at least `depth`, or
  // null when that parse failed: CheckBody then parses the text itself, so a
  // failure is classified (malformed, too deep, number out of range) exactly
  // as without sharing. *too_deep is set when the document would fail a
  // parse with max_depth exactly `depth` (simdjson counts non-empty arrays
  // and objects). The element stays valid for the rest of the decision.
  virtual const simdjson::dom::element* Parse(uint32_t depth, bool* too_deep) = 0;

 protected:
  ~SharedBodyParse() = default;
};

// Runs `spec` on a body. `content_type` is the Content-Type header value
// (`has_content_type` false when absent: then a non-empty body is refused as
// not JSON, an empty one as missing). `shared` (may be null) supplies a parse
// of `body` made for another reader; the outcome is the same with or without
// it. REQUIRES: spec.root < set.root_count().
BodyCheckResult CheckBody(const SchemaSet& set, const BodyCheckSpec& spec,
                          bool has_content_type, std::string_view content_type,
                          std::string_view body, ValidationScratch& scratch,
                          SharedBodyParse* shared = nullptr);

}  // namespace vakt::bytecode
