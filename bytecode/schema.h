// Compiled JSON Schema (draft 2020-12) sets and their validator.
//
// The compiler (compiler/schema_compile.h) turns schemas into the fixed-size
// tables of format.h ("JSON Schema tables"); this file loads such a blob,
// verifying every index against hostile bytes, and validates JSON instances
// against a named root without interpreting any schema text at request time.
// $ref, $anchor and $id are resolved at build time; $dynamicRef is resolved
// at run time against the dynamic scope of resources entered.
//
// Bounds: a validation does at most ValidationLimits::max_evaluations
// subschema applications (plus a fixed nesting bound on schema recursion), so
// $ref cycles and pathological applicator nesting fail closed with kOverLimit;
// the instance is bounded in bytes, depth, members, items and string length
// before any keyword runs. uniqueItems is O(n log n) by hashing.
//
// Tested by tests/schema_test.cc and tests/schema_suite_test.cc.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bytecode/format.h"
#include "bytecode/json_number.h"
#include "bytecode/status.h"

namespace re2 {
class RE2;
}

namespace vakt::bytecode {

// In-memory form of the tables, as the compiler builds them; SerializeSchema
// writes the blob SchemaSet::Load reads.
struct SchemaTables {
  std::vector<SchemaNode> nodes;
  std::vector<SchemaKeyword> keywords;
  std::vector<uint32_t> lists;
  std::vector<std::string> strings;
  std::vector<SchemaRoot> roots;
  std::vector<uint32_t> regexes;  // string indices
  std::vector<uint32_t> numbers;  // string indices
  uint32_t const_string = kSchemaNone;
};
std::string SerializeSchema(const SchemaTables& t);

// Load-time bounds.
inline constexpr uint32_t kMaxSchemaNodes = 1u << 20;
inline constexpr uint32_t kMaxSchemaBlobBytes = 64u << 20;
inline constexpr uint32_t kMaxSchemaConstDepth = 128;

// An immutable, verified schema set. Thread-safe: any number of threads may
// validate against one SchemaSet concurrently (each with its own scratch).
class SchemaSet {
 public:
  // Verifies `bytes` completely (kCorruption on any malformed field, never
  // UB) and compiles the regexes once.
  static Result<std::shared_ptr<const SchemaSet>> Load(std::string_view bytes);
  ~SchemaSet();

  // The root index of the schema named `name`, if any.
  std::optional<uint32_t> FindRoot(std::string_view name) const;
  uint32_t root_count() const { return static_cast<uint32_t>(roots_.size()); }
  std::string_view root_name(uint32_t i) const { return Str(roots_[i].name); }
  uint32_t node_count() const { return static_cast<uint32_t>(nodes_.size()); }
  // REQUIRES: i < node_count() / i < root_count()
  const SchemaNode& node(uint32_t i) const { return nodes_[i]; }
  uint32_t root_node(uint32_t i) const { return roots_[i].node; }

  // Internal to the validator (schema.cc).
  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  SchemaSet();
  std::string_view Str(uint32_t i) const;

  std::vector<SchemaNode> nodes_;
  std::vector<SchemaRoot> roots_;
  std::unique_ptr<Impl> impl_;
  friend struct Impl;
};

enum class ValidationOutcome : uint8_t {
  kValid = 0,
  kInvalid,    // well-formed JSON that the schema refuses
  kMalformed,  // not JSON: syntax, invalid UTF-8, duplicate keys, truncated
  kOverLimit,  // a ValidationLimits bound was hit (fail closed)
};

enum class LimitKind : uint8_t {
  kNone = 0,
  kBodyBytes,     // callers map this one to 413
  kDepth,
  kProperties,
  kItems,
  kStringLength,
  kEvaluations,   // the subschema evaluation budget or schema recursion bound
  kNumberRange,   // an integer beyond 64 bits or a number beyond double range
};

// The recursion bound behind max_depth, whatever a policy asks: validation
// recurses once per level (and at most 512 nested subschema applications).
inline constexpr uint32_t kMaxValidationDepth = 256;

// Safe defaults; a policy may tighten or loosen them (max_depth is capped at
// kMaxValidationDepth).
struct ValidationLimits {
  size_t max_body_bytes = 1u << 20;       // 1 MiB
  uint32_t max_depth = 64;                // nesting of arrays and objects
  uint32_t max_properties = 1000;         // members of one object
  uint32_t max_items = 10000;             // items of one array
  uint32_t max_string_bytes = 1u << 16;   // bytes of one string or key
  uint32_t max_evaluations = 100000;      // subschema applications per validation
};

struct ValidationResult {
  ValidationOutcome outcome = ValidationOutcome::kValid;
  LimitKind limit = LimitKind::kNone;
  std::string keyword;           // first failing keyword ("minLength"), or ""
  std::string instance_pointer;  // JSON pointer into the instance ("" = root)
  std::string schema_location;   // "file#/pointer/keyword"
  std::string message;           // lower case, for humans

  bool valid() const { return outcome == ValidationOutcome::kValid; }
  // "invalid: minLength at /text (record.json#/properties/text/minLength): ..."
  std::string ToString() const;
};

// Per-thread reusable state: the padded input buffer, the simdjson parser and
// the evaluation stacks. After warm-up a validation allocates nothing unless
// it fails (the result's strings). Not thread-safe; one per thread.
class ValidationScratch {
 public:
  ValidationScratch();
  ~ValidationScratch();
  ValidationScratch(const ValidationScratch&) = delete;
  ValidationScratch& operator=(const ValidationScratch&) = delete;

  struct State;
  State& state() { return *state_; }

 private:
  std::unique_ptr<State> state_;
};

// Validates `json_text` against root `root` (REQUIRES: root < set.root_count()).
ValidationResult Validate(const SchemaSet& set, uint32_t root, std::string_view json_text,
                          const ValidationLimits& limits, ValidationScratch& scratch);

// Validates an already parsed element (the VM parses a body once). The
// element is checked against the limits (depth, members, items, strings) and
// for duplicate keys first. max_body_bytes does not apply.
ValidationResult ValidateElement(const SchemaSet& set, uint32_t root,
                                 simdjson::dom::element instance, const ValidationLimits& limits,
                                 ValidationScratch& scratch);

// Format checkers (bytecode/schema_format.cc), exposed for tests.
bool CheckSchemaFormat(SchemaFormat f, std::string_view s);
const char* SchemaFormatName(SchemaFormat f);
const char* SchemaKwName(SchemaKw k);
// The order of `properties` names in the tables: by length, then bytes.
bool SchemaNameLess(std::string_view a, std::string_view b);

}  // namespace vakt::bytecode
