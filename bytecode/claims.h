// Where `token.*` comes from during a decision. The FAPI layer
// (fapi_auth.h) backs it with the claims of a verified access token; tests,
// `vakt eval` and `vakt test` inject claims with JsonClaims.
#pragma once

#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include <simdjson.h>

#include "bytecode/status.h"

namespace vakt::bytecode {

inline constexpr int kMaxClaimsDepth = 64;             // nesting of the claims document
inline constexpr size_t kMaxClaimsBytes = 16u << 20;   // injected claims (tokens are far smaller)

// Finds a member name used twice in one object anywhere in `root`
// (*dup = it). Iterative with the caller's work lists (reused, so a warm
// caller allocates nothing), linear in the document plus a sort per object.
bool FindDuplicateJsonKey(simdjson::dom::element root, std::vector<simdjson::dom::element>* stack,
                          std::vector<std::string_view>* keys, std::string_view* dup);

// Implementations are read-only during a decision and must be safe to read
// from several threads at once.
class ClaimsProvider {
 public:
  virtual ~ClaimsProvider() = default;
  // Finds the claim at `path` ({"cnf","jkt"}). Returns false if absent.
  // *out stays valid for as long as the provider lives.
  virtual bool Find(std::span<const std::string_view> path, simdjson::dom::element* out) const = 0;
};

// Claims from a JSON object text (already verified or test-injected).
// Immutable after Parse; Find is safe from many threads.
class JsonClaims : public ClaimsProvider {
 public:
  // Parses `json`: it must be an object, at most kMaxClaimsBytes, nested at
  // most kMaxClaimsDepth, and no object in it may repeat a member name (a
  // duplicate would let two readers disagree on the claim's value).
  static Result<std::unique_ptr<JsonClaims>> Parse(std::string_view json);
  bool Find(std::span<const std::string_view> path, simdjson::dom::element* out) const override;
  simdjson::dom::element root() const { return root_; }

 private:
  JsonClaims() = default;
  simdjson::dom::parser parser_;
  simdjson::dom::element root_;
};

}  // namespace vakt::bytecode
